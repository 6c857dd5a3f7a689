//! The keyring-file key provider: versioned KEKs in a JSON file in the data directory.
//!
//! On first start the file is created with one fresh KEK version, mode 0600, written to a
//! temporary file in the same directory, fsynced, renamed into place and the directory
//! fsynced, so a crash leaves either no keyring or a whole one. A keyring that group or
//! others can access is refused unless the constructor is told
//! `allow_world_readable_secrets` (the `[keys] danger_allow_world_readable_secrets` switch).
//!
//! File format (normative in `proto/at-rest-v1.md` §Keyring file):
//!
//! ```json
//! { "format": "sallyport-keyring/v1", "kek_id": "k1a2b3c4d5e6f", "current": 2,
//!   "versions": [ { "version": 1, "created_unix": 1700000000, "key": null },
//!                 { "version": 2, "created_unix": 1710000000, "key": "<base64, 32 bytes>" } ] }
//! ```
//!
//! A `null` key is a retired version. The provider re-reads the file when its size,
//! modification time or inode changes (one `stat` per operation), so a `keys rotate` or
//! `keys retire` run by the CLI reaches a running gateway without a restart.
//!
//! Not here: KEKs from configuration (the `static_keks` provider), the wrap crypto
//! ([`super::kek_set`]).
//!
//! Size: just past ~400 lines: the file format, its locking and atomic rewrite, and the
//! provider over it change together.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::kek_set::{KekMaterial, KekSet, KekVersion};
use super::{
    Dek, KEY_LEN, KekId, KekRef, KekVersionInfo, KeyError, KeyProvider, Unreferenced, WrapContext,
    WrappedDek,
};
use crate::secret::{FilePolicy, read_private_file};

/// The `format` value of a keyring file.
pub const KEYRING_FORMAT: &str = "sallyport-keyring/v1";

/// A keyring file larger than this is refused (a real one is well under 1 KiB per version).
const MAX_KEYRING_BYTES: u64 = 1 << 20;

/// The keyring-file provider.
pub struct KeyringFile {
    path: PathBuf,
    allow_world_readable_secrets: bool,
    // A std mutex: held only for in-memory work and small synchronous file I/O, never
    // across an await.
    loaded: Mutex<Loaded>,
}

struct Loaded {
    set: KekSet,
    stamp: FileStamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    len: u64,
    modified: Option<SystemTime>,
    ino: u64,
}

impl KeyringFile {
    /// Opens the keyring at `path`, creating it with one fresh KEK version if it does not
    /// exist.
    pub fn open_or_create(
        path: &Path,
        allow_world_readable_secrets: bool,
    ) -> Result<Self, KeyError> {
        remove_stale_temp(path)?;
        match fs::symlink_metadata(path) {
            Ok(_) => Self::open(path, allow_world_readable_secrets),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let id = random_kek_id()?;
                let set = KekSet::generate(id, now_unix())?;
                write_atomically(path, &set)?;
                Self::open(path, allow_world_readable_secrets)
            }
            Err(e) => Err(io_error(path, e)),
        }
    }

    /// Opens an existing keyring.
    pub fn open(path: &Path, allow_world_readable_secrets: bool) -> Result<Self, KeyError> {
        let (set, stamp) = load(path, allow_world_readable_secrets)?;
        Ok(Self {
            path: path.to_owned(),
            allow_world_readable_secrets,
            loaded: Mutex::new(Loaded { set, stamp }),
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// An exclusive advisory lock on `<keyring>.lock`, held until the returned file drops.
    /// Blocks while another process holds it (rotations are rare and quick).
    fn lock_file(&self) -> Result<fs::File, KeyError> {
        let mut name = self.path.as_os_str().to_owned();
        name.push(".lock");
        let lock_path = std::path::PathBuf::from(name);
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|e| io_error(&lock_path, e))?;
        file.lock().map_err(|e| io_error(&lock_path, e))?;
        Ok(file)
    }

    /// The lock, with the file re-read first if it changed on disk.
    fn fresh(&self) -> Result<MutexGuard<'_, Loaded>, KeyError> {
        let mut guard = self
            .loaded
            .lock()
            .map_err(|_| KeyError::Crypto("keyring lock poisoned"))?;
        let stamp = stamp_of(&self.path)?;
        if stamp != guard.stamp {
            let (set, stamp) = load(&self.path, self.allow_world_readable_secrets)?;
            *guard = Loaded { set, stamp };
        }
        Ok(guard)
    }
}

impl fmt::Debug for KeyringFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyringFile")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl KeyProvider for KeyringFile {
    fn kind(&self) -> &'static str {
        "keyring"
    }

    async fn current(&self) -> Result<KekRef, KeyError> {
        Ok(self.fresh()?.set.current_ref())
    }

    async fn versions(&self) -> Result<Vec<KekVersionInfo>, KeyError> {
        Ok(self.fresh()?.set.versions_info())
    }

    async fn wrap(
        &self,
        ctx: &WrapContext,
        dek: &Dek,
        kek: Option<&KekRef>,
    ) -> Result<WrappedDek, KeyError> {
        self.fresh()?.set.wrap(ctx, dek, kek)
    }

    async fn unwrap(&self, ctx: &WrapContext, wrapped: &WrappedDek) -> Result<Dek, KeyError> {
        self.fresh()?.set.unwrap(ctx, wrapped)
    }

    async fn rotate(&self) -> Result<KekRef, KeyError> {
        // Read-modify-write under an exclusive file lock, so two `keys rotate` runs (or a
        // rotate and a retire) in different processes cannot overwrite each other's new
        // version. `fresh()` re-reads the file after the lock is held.
        let _lock = self.lock_file()?;
        let mut guard = self.fresh()?;
        let new = guard.set.rotate(now_unix())?;
        write_atomically(&self.path, &guard.set)?;
        guard.stamp = stamp_of(&self.path)?;
        Ok(new)
    }

    async fn retire(&self, kek: Unreferenced) -> Result<(), KeyError> {
        let _lock = self.lock_file()?;
        let mut guard = self.fresh()?;
        guard.set.retire(kek.kek())?;
        write_atomically(&self.path, &guard.set)?;
        guard.stamp = stamp_of(&self.path)?;
        Ok(())
    }
}

// === file format ===

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileKeyring<K> {
    format: String,
    kek_id: String,
    current: u32,
    versions: Vec<FileVersion<K>>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileVersion<K> {
    version: u32,
    created_unix: u64,
    key: Option<K>,
}

/// Serialises KEK material as base64 through a zeroised buffer.
struct KeyOut<'a>(&'a KekMaterial);

impl Serialize for KeyOut<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let text = Zeroizing::new(STANDARD.encode(self.0.expose()));
        s.serialize_str(&text)
    }
}

/// KEK material as read from configuration or a keyring file: standard base64 of 32
/// bytes, decoded straight into a zeroised buffer. Never printed.
pub struct KeyIn(pub(crate) Zeroizing<[u8; KEY_LEN]>);

impl fmt::Debug for KeyIn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyIn(<redacted>)")
    }
}

impl<'de> Deserialize<'de> for KeyIn {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = KeyIn;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a base64 string of 32 bytes")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<KeyIn, E> {
                decode_key_b64(s.trim())
                    .map(KeyIn)
                    .ok_or_else(|| E::custom("a KEK is base64 of exactly 32 bytes"))
            }
        }
        d.deserialize_str(V)
    }
}

/// Decodes standard base64 of exactly 32 bytes into a zeroised buffer.
pub(crate) fn decode_key_b64(text: &str) -> Option<Zeroizing<[u8; KEY_LEN]>> {
    let mut buf = Zeroizing::new([0u8; KEY_LEN + 16]);
    let n = STANDARD.decode_slice(text.as_bytes(), buf.as_mut()).ok()?;
    if n != KEY_LEN {
        return None;
    }
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    key.copy_from_slice(&buf[..KEY_LEN]);
    Some(key)
}

fn load(path: &Path, allow_world_readable: bool) -> Result<(KekSet, FileStamp), KeyError> {
    let bytes = read_secret_file(path, allow_world_readable, MAX_KEYRING_BYTES)?;
    let stamp = stamp_of(path)?;
    let format_err = |reason: String| KeyError::KeyringFormat {
        path: path.display().to_string(),
        reason,
    };
    let raw: FileKeyring<KeyIn> =
        serde_json::from_slice(&bytes).map_err(|e| format_err(e.to_string()))?;
    if raw.format != KEYRING_FORMAT {
        return Err(format_err(format!("format is not {KEYRING_FORMAT:?}")));
    }
    let id: KekId = raw
        .kek_id
        .parse()
        .map_err(|_| format_err("kek_id is not 1-32 characters of [a-z0-9_-]".into()))?;
    let mut versions = BTreeMap::new();
    for v in raw.versions {
        let entry = KekVersion {
            created_unix: v.created_unix,
            material: v.key.map(|k| KekMaterial::from_bytes(k.0)),
        };
        if versions.insert(v.version, entry).is_some() {
            return Err(format_err(format!("version {} appears twice", v.version)));
        }
    }
    let set = KekSet::new(id, raw.current, versions).map_err(format_err)?;
    Ok((set, stamp))
}

/// Reads a secret file whole into a zeroised buffer through the one strict file check
/// (`secret::read_private_file`), capped at `max` bytes.
pub(crate) fn read_secret_file(
    path: &Path,
    allow_world_readable: bool,
    max: u64,
) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let policy = FilePolicy::secret(allow_world_readable).with_max_bytes(max);
    Ok(read_private_file(path, policy)?)
}

fn write_atomically(path: &Path, set: &KekSet) -> Result<(), KeyError> {
    let doc = FileKeyring {
        format: KEYRING_FORMAT.to_owned(),
        kek_id: set.id().to_string(),
        current: set.current_version(),
        versions: set
            .iter()
            .map(|(version, v)| FileVersion {
                version,
                created_unix: v.created_unix,
                key: v.material.as_ref().map(KeyOut),
            })
            .collect(),
    };
    // Reserve generously so serialisation never reallocates (and leaves copies behind).
    let mut bytes = Zeroizing::new(Vec::with_capacity(4096 + 160 * set.iter().count()));
    serde_json::to_writer_pretty(&mut *bytes, &doc).map_err(|e| KeyError::KeyringFormat {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    bytes.push(b'\n');

    let dir = parent_dir(path);
    fs::create_dir_all(&dir).map_err(|e| io_error(&dir, e))?;
    let tmp = temp_path(path);
    let result = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        fs::File::open(&dir)?.sync_all()
    })();
    if let Err(e) = result {
        // Best effort: never leave key material in a stray temporary file.
        let _ = fs::remove_file(&tmp);
        return Err(io_error(path, e));
    }
    Ok(())
}

/// A temporary keyring left by a crash mid-write holds key material: remove it.
fn remove_stale_temp(path: &Path) -> Result<(), KeyError> {
    let tmp = temp_path(path);
    match fs::remove_file(&tmp) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error(&tmp, e)),
    }
}

fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "keyring".into());
    parent_dir(path).join(format!(".{name}.new"))
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    }
}

fn stamp_of(path: &Path) -> Result<FileStamp, KeyError> {
    let meta = fs::metadata(path).map_err(|e| io_error(path, e))?;
    Ok(FileStamp {
        len: meta.len(),
        modified: meta.modified().ok(),
        ino: meta.ino(),
    })
}

fn random_kek_id() -> Result<KekId, KeyError> {
    let mut bytes = [0u8; 6];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| KeyError::Random)?;
    format!("k{}", hex::encode(bytes)).parse()
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn io_error(path: &Path, source: std::io::Error) -> KeyError {
    KeyError::KeyringIo {
        path: path.display().to_string(),
        source,
    }
}
