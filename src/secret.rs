//! Secrets: values that must never be printed, logged or left in memory.
//!
//! A [`Secret`] wraps bytes that are zeroised on drop and print as `[redacted]`. Any secret
//! in the configuration can be given inline or as a path to a file ([`read_secret_file`]);
//! a secret file that is readable by its group or by everyone is refused, unless the
//! operator set `allow_world_readable_secrets` (for container platforms that mount secrets
//! with loose modes), because a readable key file is a leaked key.
//!
//! Not here: key hierarchies and crypto (see `keys`), token hashing (see `auth`).

use std::fmt;
use std::path::{Path, PathBuf};

use zeroize::{Zeroize, Zeroizing};

/// Secret bytes: zeroised on drop, redacted in `Debug` and `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    /// Wraps bytes.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// Wraps a string's bytes.
    pub fn from_string(mut s: String) -> Self {
        let secret = Self::new(s.as_bytes().to_vec());
        s.zeroize();
        secret
    }

    /// The secret bytes. Callers must not copy them anywhere that outlives the use.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// The secret as UTF-8 text, if it is.
    pub fn expose_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Why a secret file could not be used. The messages name the file, never its content.
#[derive(Debug, thiserror::Error)]
pub enum SecretFileError {
    /// The file could not be read.
    #[error("cannot read secret file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file's mode lets its group or everyone read it.
    #[error(
        "secret file {path} is readable by group or others (mode {mode:o}); \
         run `chmod 600 {path}` or set allow_world_readable_secrets = true"
    )]
    TooOpen {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The file's mode lets its group or everyone write it: whoever can replace a key or
    /// a token hash can let themselves in. Refused whatever `allow_open` says.
    #[error(
        "secret file {path} is writable by group or others (mode {mode:o}); \
         run `chmod go-w {path}`"
    )]
    Writable {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The file is empty (after trimming a trailing newline).
    #[error("secret file {path} is empty")]
    Empty {
        /// The file.
        path: PathBuf,
    },
}

/// Reads a secret from a file, refusing group- or world-readable files unless `allow_open`.
/// One trailing `\n` (or `\r\n`) is removed, since editors add one.
pub fn read_secret_file(path: &Path, allow_open: bool) -> Result<Secret, SecretFileError> {
    check_file_mode(path, allow_open)?;
    let mut bytes = std::fs::read(path).map_err(|source| SecretFileError::Read {
        path: path.to_owned(),
        source,
    })?;
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
    }
    if bytes.is_empty() {
        return Err(SecretFileError::Empty {
            path: path.to_owned(),
        });
    }
    Ok(Secret::new(bytes))
}

/// Refuses a file that holds key material when its group or others can write it, or read
/// it unless `allow_open`.
pub fn check_file_mode(path: &Path, allow_open: bool) -> Result<(), SecretFileError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|source| SecretFileError::Read {
        path: path.to_owned(),
        source,
    })?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(SecretFileError::Writable {
            path: path.to_owned(),
            mode,
        });
    }
    if mode & 0o044 != 0 && !allow_open {
        return Err(SecretFileError::TooOpen {
            path: path.to_owned(),
            mode,
        });
    }
    Ok(())
}

/// Writes a new file with mode 0600 (failing if it exists), and syncs it.
pub fn write_private_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn debug_and_display_are_redacted() {
        let s = Secret::from_string("hunter2".into());
        assert_eq!(format!("{s:?}"), "Secret([redacted])");
        assert_eq!(format!("{s}"), "[redacted]");
        assert_eq!(s.expose(), b"hunter2");
    }

    #[test]
    fn refuses_group_or_world_readable_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, "topsecret\n").unwrap();
        for mode in [0o644, 0o640, 0o604] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let err = read_secret_file(&path, false).unwrap_err();
            assert!(matches!(err, SecretFileError::TooOpen { .. }), "{mode:o}");
            assert!(!err.to_string().contains("topsecret"));
            assert_eq!(
                read_secret_file(&path, true).unwrap().expose(),
                b"topsecret"
            );
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(
            read_secret_file(&path, false).unwrap().expose(),
            b"topsecret"
        );
    }

    #[test]
    fn refuses_empty_and_missing_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        write_private_file(&path, b"\n").unwrap();
        assert!(matches!(
            read_secret_file(&path, false),
            Err(SecretFileError::Empty { .. })
        ));
        assert!(matches!(
            read_secret_file(&dir.path().join("nope"), false),
            Err(SecretFileError::Read { .. })
        ));
        assert!(write_private_file(&path, b"x").is_err(), "create_new");
    }
}
