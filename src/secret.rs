//! Secrets: values that must never be printed, logged or left in memory.
//!
//! A [`Secret`] wraps bytes that are zeroised on drop and print as `[redacted]`. Any secret
//! in the configuration can be given inline or as a path to a file ([`read_secret_file`]).
//! Every file whose content the gateway trusts — secret files, the keyring, link keys, TLS
//! keys, the configuration file — is read by one function, [`read_private_file`], with one
//! strict check (`private_file`): a regular file, owned by this user or root, never
//! writable by group or others, not readable by them unless the [`FilePolicy`] allows it
//! (secrets: only with `allow_world_readable_secrets`, for container platforms that mount
//! secrets with loose modes, because a readable key file is a leaked key), and capped in
//! size.
//!
//! Not here: key hierarchies and crypto (see `keys`), token hashing (see `auth`).

use std::fmt;
use std::path::{Path, PathBuf};

use zeroize::{Zeroize, Zeroizing};

mod private_file;

pub use private_file::{
    FilePolicy, MAX_CONFIG_BYTES, MAX_SECRET_BYTES, MAX_STATIC_KEY_BYTES, PrivateFileError,
    read_private_file,
};

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
    /// The file was refused by the one strict check, or could not be read.
    #[error(transparent)]
    File(#[from] PrivateFileError),
    /// The file is empty (after trimming a trailing newline).
    #[error("secret file {path} is empty")]
    Empty {
        /// The file.
        path: PathBuf,
    },
}

/// Reads a secret from a file through [`read_private_file`] (a regular file, owned by this
/// user or root, not writable by group or others, not readable by them unless
/// `allow_open`, at most 1 MiB). One trailing `\n` (or `\r\n`) is removed, since editors
/// add one.
pub fn read_secret_file(path: &Path, allow_open: bool) -> Result<Secret, SecretFileError> {
    let mut buf = read_private_file(path, FilePolicy::secret(allow_open))?;
    // Moved out, not copied; the emptied buffer is zeroised on drop as before.
    let mut bytes = std::mem::take(&mut *buf);
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
            assert!(
                matches!(
                    err,
                    SecretFileError::File(PrivateFileError::Readable { .. })
                ),
                "{mode:o}"
            );
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
            Err(SecretFileError::File(PrivateFileError::Io { .. }))
        ));
        assert!(write_private_file(&path, b"x").is_err(), "create_new");
    }
}
