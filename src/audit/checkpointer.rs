//! Taking signed checkpoints of the audit chain and writing them to sinks the writer
//! cannot rewrite.
//!
//! The audit writer calls [`Checkpointer::on_append`] after every durable append and
//! [`Checkpointer::on_timer`] every `audit.checkpoint_interval`: a checkpoint is signed
//! when `audit.checkpoint_every` entries were appended since the last one, or when the
//! interval passed with any entry appended since. Each checkpoint goes to
//!
//! - the log stream: one `tracing` line (target `audit.checkpoint`) with the note text, and
//! - `audit.checkpoint_dir`, when set: a new file `<length, 20 digits>.checkpoint` created
//!   with `O_EXCL` (never overwritten) and synced. The directory is meant to be a WORM or
//!   object-lock mount, or one shipped off the box.
//! - the S3-compatible store, when the blob store is one (`audit.checkpoint_bucket`): a
//!   new object `audit-checkpoints/<key id, 8 hex>/<2^64 − 1 − length, 20 digits>-<length,
//!   20 digits>.checkpoint`, created with a conditional PUT (never overwritten), in a
//!   bucket meant to have Object Lock. The key id keeps the checkpoints of gateways with
//!   different keys (several instances on one chain) apart; the inverted length makes a
//!   listing return the newest first, so a start reads one listing page however many
//!   there are. An object of that name that exists already is accepted only when this key
//!   signed it for the same length and head (another instance sharing the key
//!   checkpointed the same state).
//!
//! A checkpoint that cannot be written to a sink is logged and counted
//! (`sallyport_audit_checkpoint_failures`), never silently dropped; the audited action it
//! follows is not affected (the entry is already durable).
//!
//! The key is an Ed25519 key in a PKCS#8 PEM file (`audit.checkpoint_key`, default
//! `<data_dir>/audit-checkpoint.key`), generated on first use with mode 0600 and read back
//! through the one strict private-file check. The note format is in [`super::checkpoint`].
//!
//! At start the highest checkpoint in the directory or the bucket that this key signed
//! seeds the writer's "highest head seen", so a writer restarted over a truncated store
//! halts before its first append instead of chaining over the lost tail.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey};
use zeroize::Zeroizing;

use super::checkpoint::{self, Checkpoint, NoteVerifier};
use super::{AUDIT_LOG, now_rfc3339};
use crate::blob::s3::write_once::WriteOnceFolder;
use crate::metrics::Metrics;
use crate::secret::{FilePolicy, read_private_file, write_private_file};

/// Suffix of checkpoint files in `audit.checkpoint_dir` and objects in the bucket.
pub const FILE_SUFFIX: &str = ".checkpoint";

/// The bucket folder (under the blob store's prefix) that checkpoints are written to.
pub const BUCKET_FOLDER: &str = "audit-checkpoints";

/// The folder of the checkpoints signed by the key with this id (hex).
pub fn bucket_folder(key_id_hex: &str) -> String {
    format!("{BUCKET_FOLDER}/{key_id_hex}")
}

/// The object name of a checkpoint of `length` entries: newest first in a listing.
pub fn object_name(length: u64) -> String {
    format!("{:020}-{length:020}{FILE_SUFFIX}", u64::MAX - length)
}

/// How many of the newest objects in the key's bucket folder are read, at start, to find
/// the highest checkpoint this key signed (the others would not be checkpoints).
const RECALL_READS: usize = 64;

/// The origin line and key name of this gateway's audit checkpoints.
pub fn origin() -> String {
    format!("sallyport/{}", AUDIT_LOG.0)
}

/// Why the checkpoint key could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointKeyError {
    /// The file was refused or could not be read.
    #[error(transparent)]
    File(#[from] crate::secret::PrivateFileError),
    /// The file is not a PKCS#8 PEM Ed25519 private key.
    #[error("audit checkpoint key {0} is not a PKCS#8 PEM Ed25519 private key")]
    Format(PathBuf),
    /// Generating or writing a new key failed.
    #[error("cannot create audit checkpoint key {path}: {source}")]
    Create {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// The gateway's checkpoint signing key. Debug never shows the secret.
pub struct CheckpointKey {
    name: String,
    signing: SigningKey,
}

impl std::fmt::Debug for CheckpointKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckpointKey")
            .field("vkey", &self.verifier().to_vkey())
            .finish_non_exhaustive()
    }
}

impl CheckpointKey {
    /// Reads the key at `path`, generating it (mode 0600, parent 0700) if it is missing.
    pub fn load_or_generate(path: &Path, allow_open: bool) -> Result<Self, CheckpointKeyError> {
        if std::fs::symlink_metadata(path).is_err() {
            match generate(path) {
                Ok(()) => {
                    tracing::info!(path = %path.display(), "generated the audit checkpoint key")
                }
                // Another process made it first: read theirs.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(source) => {
                    return Err(CheckpointKeyError::Create {
                        path: path.to_owned(),
                        source,
                    });
                }
            }
        }
        let bytes = read_private_file(path, FilePolicy::secret(allow_open))?;
        let pem =
            std::str::from_utf8(&bytes).map_err(|_| CheckpointKeyError::Format(path.into()))?;
        let signing =
            SigningKey::from_pkcs8_pem(pem).map_err(|_| CheckpointKeyError::Format(path.into()))?;
        Ok(Self {
            name: origin(),
            signing,
        })
    }

    /// The public half, as a note verifier.
    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier {
            name: self.name.clone(),
            key: self.signing.verifying_key(),
        }
    }

    /// The public key as SPKI PEM (`openssl pkey -pubin` reads it).
    pub fn public_pem(&self) -> String {
        self.signing
            .verifying_key()
            .to_public_key_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
            // Encoding a 32-byte key into PEM cannot fail.
            .unwrap_or_default()
    }

    /// The key id of notes signed with this key (`proto/audit-checkpoint-v1.md`), hex.
    pub fn key_id_hex(&self) -> String {
        hex::encode(checkpoint::key_id(
            &self.name,
            &self.signing.verifying_key(),
        ))
    }

    /// Signs a checkpoint of `length` entries with head `head`, timed now.
    pub fn sign(&self, length: u64, head: &[u8; 32]) -> String {
        let cp = Checkpoint {
            origin: self.name.clone(),
            length,
            head: *head,
            time: now_rfc3339(),
        };
        checkpoint::sign(&cp, &self.name, &self.signing)
    }
}

fn generate(path: &Path) -> std::io::Result<()> {
    let mut seed = Zeroizing::new([0u8; 32]);
    aws_lc_rs::rand::fill(&mut seed[..]).map_err(|_| std::io::Error::other("no randomness"))?;
    let key = SigningKey::from_bytes(&seed);
    let pem = key
        .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
        .map_err(|_| std::io::Error::other("cannot encode the key"))?;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)?;
    }
    write_private_file(path, pem.as_bytes())
}

/// Decides when to checkpoint, signs, and writes to the sinks.
#[derive(Debug)]
pub struct Checkpointer {
    key: Arc<CheckpointKey>,
    every: u64,
    interval: Duration,
    dir: Option<PathBuf>,
    /// The bucket folder, when checkpoints go to the S3-compatible store.
    bucket: Option<Arc<WriteOnceFolder>>,
    /// The highest checkpoint this key signed in the bucket, found by [`Self::recall_bucket`].
    bucket_known: Option<(u64, [u8; 32])>,
    /// The length of the last checkpoint taken (or found at start).
    last: u64,
    metrics: Arc<Metrics>,
}

impl Checkpointer {
    /// A checkpointer signing with `key` every `every` entries or `interval`, writing to
    /// `dir` when set.
    pub fn new(
        key: CheckpointKey,
        every: u64,
        interval: Duration,
        dir: Option<PathBuf>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            key: Arc::new(key),
            every: every.max(1),
            interval,
            dir,
            bucket: None,
            bucket_known: None,
            last: 0,
            metrics,
        }
    }

    /// The signing key's id (hex): names its folder in the bucket ([`bucket_folder`]).
    pub fn key_id_hex(&self) -> String {
        self.key.key_id_hex()
    }

    /// Also writes every checkpoint to `folder` in the S3-compatible store.
    pub fn with_bucket(mut self, folder: WriteOnceFolder) -> Self {
        self.bucket = Some(Arc::new(folder));
        self
    }

    /// Finds the highest checkpoint this key signed in the bucket (none configured: `Ok`),
    /// for [`Self::last_known`]. Reads the newest objects first (the first listing page)
    /// and stops at the first this key verifies; an unreadable bucket is an error, so a
    /// writer never starts without knowing what it signed there.
    pub async fn recall_bucket(&mut self) -> std::io::Result<()> {
        let Some(bucket) = self.bucket.clone() else {
            return Ok(());
        };
        let verifier = self.key.verifier();
        for name in bucket.first_names(RECALL_READS).await? {
            let name = name.as_str();
            let note = bucket.read(name, checkpoint::MAX_NOTE_BYTES as u64).await?;
            match verifier.verify(&note) {
                // Its name must say its length: an older note copied under a newer name
                // would otherwise lower what the writer knows.
                Ok(cp) if object_name(cp.length) == name => {
                    self.bucket_known = Some((cp.length, cp.head));
                    return Ok(());
                }
                Ok(cp) => tracing::warn!(
                    target: "audit.checkpoint",
                    object = %format!("{}{name}", bucket.location()),
                    length = cp.length,
                    "ignoring a checkpoint object whose name does not match its length"
                ),
                Err(e) => tracing::warn!(
                    target: "audit.checkpoint",
                    object = %format!("{}{name}", bucket.location()),
                    error = %e,
                    "ignoring a checkpoint object this key does not verify"
                ),
            }
        }
        Ok(())
    }

    /// How often the writer calls [`Checkpointer::on_timer`].
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// The highest checkpoint this key signed in the directory: (length, head). The writer
    /// starts from it as the highest head seen.
    pub fn last_known(&mut self) -> Option<(u64, [u8; 32])> {
        let in_dir = self
            .dir
            .as_ref()
            .and_then(|dir| highest_in_dir(dir, &self.key.verifier()));
        let found = [in_dir, self.bucket_known]
            .into_iter()
            .flatten()
            .max_by_key(|(len, _)| *len);
        if let Some((len, _)) = found {
            self.last = len;
        }
        found
    }

    /// After a durable append: checkpoint when `every` entries accumulated.
    pub async fn on_append(&mut self, length: u64, head: &[u8; 32]) {
        if length >= self.last.saturating_add(self.every) {
            self.take(length, head).await;
        }
    }

    /// Every interval: checkpoint when anything was appended since the last one.
    pub async fn on_timer(&mut self, length: u64, head: &[u8; 32]) {
        if length > self.last {
            self.take(length, head).await;
        }
    }

    async fn take(&mut self, length: u64, head: &[u8; 32]) {
        self.last = length;
        let note = self.key.sign(length, head);
        self.metrics.audit_checkpoints.inc();
        tracing::info!(
            target: "audit.checkpoint",
            length,
            head = %hex::encode(head),
            note = %note,
            "audit checkpoint"
        );
        if let Some(dir) = self.dir.clone() {
            // Awaited (on a blocking thread): the file is durable before the writer goes
            // on, and a graceful stop does not drop the last one. About one fsync per
            // `checkpoint_every` entries.
            let written = {
                let (dir, note) = (dir.clone(), note.clone());
                tokio::task::spawn_blocking(move || write_checkpoint_file(&dir, length, &note))
                    .await
            };
            let error = match written {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e.to_string()),
                Err(e) => Some(e.to_string()),
            };
            if let Some(error) = error {
                self.failed(length, &dir.display().to_string(), &error);
            }
        }
        if let Some(bucket) = self.bucket.clone() {
            // Awaited too: one PUT per checkpoint, acknowledged once stored.
            if let Err(e) = self.write_to_bucket(&bucket, length, head, note).await {
                self.failed(length, bucket.location(), &e.to_string());
            }
        }
    }

    /// Creates the checkpoint's object; an existing one is accepted only when this key
    /// signed it for the same length and head.
    async fn write_to_bucket(
        &self,
        bucket: &WriteOnceFolder,
        length: u64,
        head: &[u8; 32],
        note: String,
    ) -> std::io::Result<()> {
        let name = object_name(length);
        match bucket.create(&name, note.into()).await {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let there = bucket
                    .read(&name, checkpoint::MAX_NOTE_BYTES as u64)
                    .await?;
                match self.key.verifier().verify(&there) {
                    Ok(cp) if cp.length == length && cp.head == *head => Ok(()),
                    _ => Err(e),
                }
            }
            other => other,
        }
    }

    fn failed(&self, length: u64, sink: &str, error: &str) {
        self.metrics.audit_checkpoint_failures.inc();
        tracing::error!(
            target: "audit.checkpoint",
            length,
            sink,
            error,
            "audit checkpoint could not be written to a sink"
        );
    }
}

/// Writes `note` as a new file `<length>.checkpoint` in `dir` (`O_EXCL`, synced).
pub fn write_checkpoint_file(dir: &Path, length: u64, note: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(format!("{length:020}{FILE_SUFFIX}"));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(&path)?;
    f.write_all(note.as_bytes())?;
    f.sync_all()?;
    // The new name is durable once the directory is.
    std::fs::File::open(dir)?.sync_all()
}

/// The checkpoint files in `dir`, sorted by name (= by length).
pub fn files_in_dir(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(FILE_SUFFIX))
        })
        .collect();
    files.sort();
    Ok(files)
}

fn highest_in_dir(dir: &Path, verifier: &NoteVerifier) -> Option<(u64, [u8; 32])> {
    let files = files_in_dir(dir).ok()?;
    let mut best: Option<(u64, [u8; 32])> = None;
    for f in files {
        let Ok(bytes) = read_note(&f) else { continue };
        match verifier.verify(&bytes) {
            Ok(cp) if best.is_none_or(|(len, _)| cp.length > len) => {
                best = Some((cp.length, cp.head));
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(
                target: "audit.checkpoint",
                file = %f.display(),
                error = %e,
                "ignoring a checkpoint this key does not verify"
            ),
        }
    }
    best
}

/// Reads a checkpoint file, at most [`checkpoint::MAX_NOTE_BYTES`] + 1 bytes.
pub fn read_note(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut buf = Vec::new();
    std::fs::File::open(path)?
        .take(checkpoint::MAX_NOTE_BYTES as u64 + 1)
        .read_to_end(&mut buf)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_key_is_generated_once_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/audit-checkpoint.key");
        let a = CheckpointKey::load_or_generate(&path, false).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let first = std::fs::read(&path).unwrap();
        assert!(first.starts_with(b"-----BEGIN PRIVATE KEY-----\n"));
        let b = CheckpointKey::load_or_generate(&path, false).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), first, "not rewritten");
        assert_eq!(a.verifier(), b.verifier());
        // Debug shows the public verifier key only.
        let pem = String::from_utf8(first).unwrap();
        let secret_line = pem.lines().nth(1).unwrap();
        assert!(!format!("{a:?}").contains(secret_line));
        // What it signs, its verifier accepts.
        let note = a.sign(7, &[1; 32]);
        assert_eq!(b.verifier().verify(note.as_bytes()).unwrap().length, 7);
        // A loosened mode is refused; garbage is refused by name.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(CheckpointKey::load_or_generate(&path, false).is_err());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(&path, "not a key").unwrap();
        let e = CheckpointKey::load_or_generate(&path, false).unwrap_err();
        assert!(matches!(e, CheckpointKeyError::Format(_)), "{e}");
    }
}
