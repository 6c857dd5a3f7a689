//! The one strict reader for every file whose content the gateway trusts: secret files (keys,
//! token hashes, the Redis URL, the keyring, link keys) and the configuration file.
//!
//! [`read_private_file`] opens the path once (`O_RDONLY | O_NONBLOCK | O_CLOEXEC`, plus
//! `O_NOFOLLOW` when the [`FilePolicy`] says so) and checks what it opened with `fstat` on
//! that descriptor, so nothing can be swapped between the check and the read. It refuses:
//!
//! * anything but a regular file (a directory, a FIFO — `O_NONBLOCK` keeps a FIFO from
//!   hanging start-up until a writer comes —, a socket or a device);
//! * a file owned by anyone but the effective user or root (whoever owns a file can change
//!   its mode back and forth);
//! * a file its group or others can **write**, always (whoever can edit a token hash, a key
//!   or the configuration can let themselves in);
//! * a file its group or others can **read**, unless the policy allows it (the
//!   configuration holds no secrets; secret files only with `allow_world_readable_secrets`);
//! * a file larger than the policy's cap (it may have grown since `fstat`: the read stops
//!   one byte past the cap).
//!
//! Symbolic links: followed for files an operator names (container platforms mount secrets
//! through links, e.g. Kubernetes' `..data/`), and every check applies to the file the link
//! points at; refused (`O_NOFOLLOW`) for files the gateway creates itself in its data
//! directory, where a link can only be someone else's doing.
//!
//! Errors name the path, what is wrong and how to fix it; never the content.

use std::io::Read;
use std::path::{Path, PathBuf};

use rustix::fs::{FileType, Mode, OFlags};
use zeroize::Zeroizing;

/// What a file may be, and what it is called in errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FilePolicy {
    /// What the file is, for messages (`"secret file"`, `"config file"`).
    pub what: &'static str,
    /// Largest accepted size in bytes.
    pub max_bytes: u64,
    /// Whether group and others may read it.
    pub others_may_read: bool,
    /// Whether a symbolic link at the path is followed (`false`: refused).
    pub follow_symlinks: bool,
}

/// 1 MiB: more than any key, token hash, URL or keyring this gateway writes.
pub const MAX_SECRET_BYTES: u64 = 1 << 20;
/// 4 MiB for the configuration file.
pub const MAX_CONFIG_BYTES: u64 = 4 << 20;
/// 4 KiB for one static KEK (base64 of 32 bytes).
pub const MAX_STATIC_KEY_BYTES: u64 = 4 << 10;

impl FilePolicy {
    /// A secret file: private unless `allow_open` (`allow_world_readable_secrets`); 1 MiB.
    pub const fn secret(allow_open: bool) -> Self {
        Self {
            what: "secret file",
            max_bytes: MAX_SECRET_BYTES,
            others_may_read: allow_open,
            follow_symlinks: true,
        }
    }

    /// A static KEK file: like [`Self::secret`], but 4 KiB.
    pub const fn static_key(allow_open: bool) -> Self {
        Self {
            what: "key file",
            max_bytes: MAX_STATIC_KEY_BYTES,
            others_may_read: allow_open,
            follow_symlinks: true,
        }
    }

    /// The configuration file: others may read it (it holds no secrets), nobody but its
    /// owner may write it; 4 MiB.
    pub const CONFIG: Self = Self {
        what: "config file",
        max_bytes: MAX_CONFIG_BYTES,
        others_may_read: true,
        follow_symlinks: true,
    };

    /// The same policy with another size cap.
    pub const fn with_max_bytes(self, max_bytes: u64) -> Self {
        Self { max_bytes, ..self }
    }

    /// The same policy, refusing a symbolic link at the path.
    pub const fn no_symlinks(self) -> Self {
        Self {
            follow_symlinks: false,
            ..self
        }
    }
}

/// Why a private file was refused or could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PrivateFileError {
    /// Opening or reading failed (missing, no permission, a refused symbolic link…).
    #[error("cannot read {what} {path}: {source}")]
    Io {
        /// What the file is.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A symbolic link where the policy refuses one.
    #[error(
        "{what} {path} is a symbolic link, which is refused here; replace it with the file itself"
    )]
    Symlink {
        /// What the file is.
        what: &'static str,
        /// The file.
        path: PathBuf,
    },
    /// Not a regular file.
    #[error("{what} {path} is {kind}, not a regular file")]
    NotRegular {
        /// What the file is.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What it is instead (`"a directory"`, `"a FIFO"`…).
        kind: &'static str,
    },
    /// Owned by someone who is neither this process's effective user nor root.
    #[error(
        "{what} {path} is owned by uid {owner}, not by this process's user (uid {euid}) or root; run `chown {euid} {path}`"
    )]
    Owner {
        /// What the file is.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Its owner.
        owner: u32,
        /// This process's effective uid.
        euid: u32,
    },
    /// Group or others can write it.
    #[error(
        "{what} {path} is writable by group or others (mode {mode:o}); run `chmod go-w {path}`"
    )]
    Writable {
        /// What the file is.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// Group or others can read it, and the policy does not allow that.
    #[error(
        "{what} {path} is readable by group or others (mode {mode:o}); run `chmod 600 {path}` or set allow_world_readable_secrets = true"
    )]
    Readable {
        /// What the file is.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// Larger than the policy's cap.
    #[error("{what} {path} is larger than the limit of {max} bytes")]
    TooBig {
        /// What the file is.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cap.
        max: u64,
    },
}

impl PrivateFileError {
    /// The file's permission bits, when the refusal is about them.
    pub fn mode(&self) -> Option<u32> {
        match self {
            Self::Writable { mode, .. } | Self::Readable { mode, .. } => Some(*mode),
            _ => None,
        }
    }
}

/// Reads `path` whole into a zeroised buffer after the checks in the module docs.
pub fn read_private_file(
    path: &Path,
    policy: FilePolicy,
) -> Result<Zeroizing<Vec<u8>>, PrivateFileError> {
    let what = policy.what;
    let io = |source: std::io::Error| PrivateFileError::Io {
        what,
        path: path.to_owned(),
        source,
    };
    let mut flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY;
    if !policy.follow_symlinks {
        flags |= OFlags::NOFOLLOW;
    }
    let fd = match rustix::fs::open(path, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::LOOP) if !policy.follow_symlinks => {
            return Err(PrivateFileError::Symlink {
                what,
                path: path.to_owned(),
            });
        }
        Err(e) => return Err(io(e.into())),
    };
    let stat = rustix::fs::fstat(&fd).map_err(|e| io(e.into()))?;
    check(path, policy, &stat)?;
    let size = u64::try_from(stat.st_size).unwrap_or(0);
    let mut file = std::fs::File::from(fd);
    // Reserve once so the content is never copied by a reallocation; read one byte past
    // the cap to see a file that grew after `fstat`.
    let capacity = usize::try_from(size.min(policy.max_bytes) + 1).unwrap_or(0);
    let mut buf = Zeroizing::new(Vec::with_capacity(capacity));
    (&mut file)
        .take(policy.max_bytes + 1)
        .read_to_end(&mut buf)
        .map_err(io)?;
    if buf.len() as u64 > policy.max_bytes {
        return Err(too_big(path, policy));
    }
    Ok(buf)
}

/// The checks on what `fstat` said about the opened file.
fn check(path: &Path, policy: FilePolicy, stat: &rustix::fs::Stat) -> Result<(), PrivateFileError> {
    let what = policy.what;
    let kind = match FileType::from_raw_mode(stat.st_mode) {
        FileType::RegularFile => None,
        FileType::Directory => Some("a directory"),
        FileType::Fifo => Some("a FIFO (named pipe)"),
        FileType::Socket => Some("a socket"),
        FileType::CharacterDevice => Some("a character device"),
        FileType::BlockDevice => Some("a block device"),
        FileType::Symlink | FileType::Unknown => Some("not a plain file"),
    };
    if let Some(kind) = kind {
        return Err(PrivateFileError::NotRegular {
            what,
            path: path.to_owned(),
            kind,
        });
    }
    let euid = rustix::process::geteuid().as_raw();
    let owner = stat.st_uid;
    if owner != euid && owner != 0 {
        return Err(PrivateFileError::Owner {
            what,
            path: path.to_owned(),
            owner,
            euid,
        });
    }
    let mode = stat.st_mode & 0o7777;
    if mode & 0o022 != 0 {
        return Err(PrivateFileError::Writable {
            what,
            path: path.to_owned(),
            mode,
        });
    }
    if mode & 0o044 != 0 && !policy.others_may_read {
        return Err(PrivateFileError::Readable {
            what,
            path: path.to_owned(),
            mode,
        });
    }
    if u64::try_from(stat.st_size).unwrap_or(u64::MAX) > policy.max_bytes {
        return Err(too_big(path, policy));
    }
    Ok(())
}

fn too_big(path: &Path, policy: FilePolicy) -> PrivateFileError {
    PrivateFileError::TooBig {
        what: policy.what,
        path: path.to_owned(),
        max: policy.max_bytes,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn file(dir: &tempfile::TempDir, mode: u32, content: &[u8]) -> PathBuf {
        let path = dir.path().join("f");
        std::fs::write(&path, content).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn a_private_file_is_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = file(&dir, 0o600, b"k3y\n");
        let got = read_private_file(&path, FilePolicy::secret(false)).unwrap();
        assert_eq!(got.as_slice(), b"k3y\n");
    }

    #[test]
    fn write_bits_are_refused_whatever_the_policy() {
        let dir = tempfile::tempdir().unwrap();
        for mode in [0o620, 0o602, 0o666] {
            let path = file(&dir, mode, b"x");
            for policy in [FilePolicy::secret(true), FilePolicy::CONFIG] {
                let err = read_private_file(&path, policy).unwrap_err();
                assert!(matches!(err, PrivateFileError::Writable { .. }), "{mode:o}");
                assert!(err.to_string().contains("chmod go-w"), "{err}");
            }
        }
    }

    #[test]
    fn read_bits_are_refused_for_secrets_unless_allowed() {
        let dir = tempfile::tempdir().unwrap();
        for mode in [0o640, 0o604, 0o644] {
            let path = file(&dir, mode, b"topsecret");
            let err = read_private_file(&path, FilePolicy::secret(false)).unwrap_err();
            assert!(matches!(err, PrivateFileError::Readable { .. }), "{mode:o}");
            assert!(err.to_string().contains("chmod 600"), "{err}");
            assert!(!err.to_string().contains("topsecret"));
            assert!(read_private_file(&path, FilePolicy::secret(true)).is_ok());
            assert!(read_private_file(&path, FilePolicy::CONFIG).is_ok());
        }
    }

    #[test]
    fn the_size_cap_names_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = file(&dir, 0o600, &[b'a'; 4097]);
        let err = read_private_file(&path, FilePolicy::static_key(false)).unwrap_err();
        assert!(
            matches!(err, PrivateFileError::TooBig { max: 4096, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("4096 bytes"), "{err}");
        let path = file(&dir, 0o600, &[b'a'; 4096]);
        assert_eq!(
            read_private_file(&path, FilePolicy::static_key(false))
                .unwrap()
                .len(),
            4096
        );
    }

    #[test]
    fn a_symlink_is_followed_or_refused_as_the_policy_says() {
        let dir = tempfile::tempdir().unwrap();
        let target = file(&dir, 0o600, b"x");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(read_private_file(&link, FilePolicy::secret(false)).is_ok());
        let err = read_private_file(&link, FilePolicy::secret(false).no_symlinks()).unwrap_err();
        assert!(matches!(err, PrivateFileError::Symlink { .. }), "{err}");
    }
}
