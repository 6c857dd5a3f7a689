//! A gateway's stable **instance identity**: the name under which it holds leases in a
//! shared state store, so that the same machine restarting is recognised as the same
//! instance and can take back at once the leases its previous process left behind (see
//! `redis::presence`).
//!
//! The id is `server.instance_id` from the configuration, or, when that is absent, an id
//! generated once and kept in `<data_dir>/instance-id` (mode 0600, created atomically: it is
//! written to a temporary file and linked into place, so two processes starting at once
//! both end up reading the one that won, and a crash never leaves a half-written id).
//!
//! Not here: presence and heartbeats (the Redis adapter), what an id means to a lease.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::secret::{FilePolicy, PrivateFileError, read_private_file};

/// Longest instance id accepted.
pub const MAX_INSTANCE_ID_LEN: usize = 64;

/// The file under the data directory that keeps a generated instance id.
pub const INSTANCE_ID_FILE: &str = "instance-id";

/// A validated instance id: 1 to 64 characters of `[A-Za-z0-9._-]`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct InstanceId(String);

/// Why an instance id could not be parsed, read or created.
#[derive(Debug, thiserror::Error)]
pub enum InstanceIdError {
    /// The text is not a valid id.
    #[error("an instance id must be 1 to 64 characters of A-Z a-z 0-9 . _ -")]
    Invalid,
    /// The id file holds something that is not a valid id.
    #[error(
        "{path} does not hold a valid instance id (1 to 64 characters of A-Z a-z 0-9 . _ -); delete it to have a new one generated, or set server.instance_id"
    )]
    BadFile {
        /// The file.
        path: PathBuf,
    },
    /// The id file was refused by the strict file check (a link, not a regular file, owned
    /// by someone else, open to group or others).
    #[error(transparent)]
    Refused(crate::secret::PrivateFileError),
    /// The id file could not be read or written.
    #[error("instance id file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

impl InstanceId {
    /// Parses `text` as an id.
    pub fn parse(text: &str) -> Result<Self, InstanceIdError> {
        let ok = (1..=MAX_INSTANCE_ID_LEN).contains(&text.len())
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if ok {
            Ok(Self(text.to_owned()))
        } else {
            Err(InstanceIdError::Invalid)
        }
    }

    /// A fresh random id (`i-` and 26 characters of lowercase base32).
    pub fn generate() -> Self {
        Self(format!("i-{}", crate::ids::OpaqueId::random()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InstanceId({})", self.0)
    }
}

/// The configured id, or the one kept in `<data_dir>/instance-id`, created if missing.
pub fn resolve(
    configured: Option<&InstanceId>,
    data_dir: &Path,
) -> Result<InstanceId, InstanceIdError> {
    match configured {
        Some(id) => Ok(id.clone()),
        None => load_or_create(&data_dir.join(INSTANCE_ID_FILE)),
    }
}

/// Reads the id kept in `path`, or generates one and stores it there (0600) atomically.
pub fn load_or_create(path: &Path) -> Result<InstanceId, InstanceIdError> {
    let io = |source| InstanceIdError::Io {
        path: path.to_owned(),
        source,
    };
    match read(path) {
        Err(InstanceIdError::Io { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound => {}
        other => return other,
    }
    let id = InstanceId::generate();
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{INSTANCE_ID_FILE}.{}.tmp",
        crate::ids::OpaqueId::random()
    ));
    let written = write_new(&tmp, id.as_str());
    let linked = written.and_then(|()| std::fs::hard_link(&tmp, path));
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            // The new name must survive a crash, or the next start would be a stranger.
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io)?;
            Ok(id)
        }
        // Another process created it first: its id is the one.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read(path),
        Err(e) => Err(io(e)),
    }
}

/// Reads the id file through the one strict file check. A link is refused, since the
/// gateway itself creates this file in its data directory; others may read it (an id is no
/// secret) but not write it (whoever rewrites it can make this gateway take over another
/// instance's leases).
fn read(path: &Path) -> Result<InstanceId, InstanceIdError> {
    let policy = FilePolicy {
        what: "instance id file",
        max_bytes: 1024,
        others_may_read: true,
        ..FilePolicy::secret(false).no_symlinks()
    };
    let bytes = read_private_file(path, policy).map_err(|e| match e {
        PrivateFileError::Io { source, .. } => InstanceIdError::Io {
            path: path.to_owned(),
            source,
        },
        refused => InstanceIdError::Refused(refused),
    })?;
    std::str::from_utf8(&bytes)
        .ok()
        .and_then(|text| InstanceId::parse(text.trim()).ok())
        .ok_or_else(|| InstanceIdError::BadFile {
            path: path.to_owned(),
        })
}

fn write_new(path: &Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn ids_are_short_and_plain() {
        for ok in ["a", "gw-1.eu_west", &"x".repeat(64)] {
            assert!(InstanceId::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a b", "a:b", "é", "a/b", &"x".repeat(65)] {
            assert!(InstanceId::parse(bad).is_err(), "{bad:?}");
        }
        assert!(InstanceId::parse(InstanceId::generate().as_str()).is_ok());
    }

    #[test]
    fn a_generated_id_is_kept_0600_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let first = resolve(None, dir.path()).unwrap();
        let path = dir.path().join(INSTANCE_ID_FILE);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o600);
        assert_eq!(resolve(None, dir.path()).unwrap(), first);
        // Nothing but the id file is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        let configured = InstanceId::parse("gw-a").unwrap();
        assert_eq!(resolve(Some(&configured), dir.path()).unwrap(), configured);
    }

    #[test]
    fn a_linked_or_writable_id_file_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = dir.path().join("elsewhere");
        std::fs::write(&elsewhere, "gw-x\n").unwrap();
        std::fs::set_permissions(&elsewhere, std::fs::Permissions::from_mode(0o600)).unwrap();
        let path = dir.path().join(INSTANCE_ID_FILE);
        std::os::unix::fs::symlink(&elsewhere, &path).unwrap();
        let err = load_or_create(&path).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        std::fs::remove_file(&path).unwrap();
        std::fs::rename(&elsewhere, &path).unwrap();
        assert_eq!(load_or_create(&path).unwrap().as_str(), "gw-x");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(load_or_create(&path).unwrap().as_str(), "gw-x");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o606)).unwrap();
        let err = load_or_create(&path).unwrap_err();
        assert!(err.to_string().contains("chmod go-w"), "{err}");
    }

    #[test]
    fn a_broken_id_file_is_an_error_not_a_new_identity() {
        use std::os::unix::fs::OpenOptionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(INSTANCE_ID_FILE);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .unwrap();
        f.write_all(b"not an id\n").unwrap();
        let err = resolve(None, dir.path()).unwrap_err();
        assert!(matches!(err, InstanceIdError::BadFile { .. }), "{err}");
    }
}
