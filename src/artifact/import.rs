//! Importing a file from the gateway's import directory into an encrypted at-rest object.
//!
//! The operator (or an export job on the same host) drops a finished file into the import
//! directory (`[artifacts] import_dir`, default `<data_dir>/import`); a publisher then names
//! it in `POST /v1/artifacts`. The name is a plain file name, checked strictly
//! ([`ImportName`]): no `/`, no `..`, no leading dot, no control characters. The file is
//! opened with `O_NOFOLLOW | O_NONBLOCK` (a symlink is refused by the kernel, a FIFO cannot
//! block the open) and must be a regular file with one name (a hard link could bring in a
//! file from outside the directory). It is read in 1 MiB pieces straight into the
//! at-rest writer, which seals segments and computes the SHA-256 on the way; no plaintext
//! is written anywhere else. If the file changes while it is read (its size or
//! modification time differ afterwards, or it ends early), the import fails and the partial
//! object is shredded.
//!
//! **Removal rule:** after the artifact record is stored, the source file is removed when
//! `[artifacts] remove_imported = true` (the default: plaintext PHI should not linger on
//! disk) — but only if the directory entry still names the very file that was read (same
//! device and inode). A failed import never removes anything.
//!
//! Not here: the artifact record (see [`super::Artifacts`]), HTTP.

use std::fmt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use tokio::io::AsyncReadExt;

use crate::at_rest::{AtRest, AtRestError};
use crate::ids::OpaqueId;

/// Longest accepted import name, in bytes (a common file-system limit).
pub const MAX_IMPORT_NAME_LEN: usize = 255;
/// Bytes read per step.
const READ_CHUNK: usize = 1 << 20;

/// A validated import file name. May be PHI: `Debug` prints only its length.
#[derive(Clone, PartialEq, Eq)]
pub struct ImportName(String);

/// Why a string is not an acceptable import name. Never echoes the name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ImportNameError {
    /// Empty or longer than 255 bytes.
    #[error("an import name has 1 to 255 bytes")]
    Length,
    /// Contains `/`, `\`, a NUL or another control character.
    #[error("an import name is a plain file name: no '/', '\\' or control characters")]
    Character,
    /// Starts with a dot (hidden files, `.` and `..`).
    #[error("an import name must not start with '.'")]
    LeadingDot,
}

impl ImportName {
    /// The name (PHI: do not log).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ImportName {
    type Err = ImportNameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() || s.len() > MAX_IMPORT_NAME_LEN {
            return Err(ImportNameError::Length);
        }
        if s.starts_with('.') {
            return Err(ImportNameError::LeadingDot);
        }
        if s.chars().any(|c| c == '/' || c == '\\' || c.is_control()) {
            return Err(ImportNameError::Character);
        }
        Ok(Self(s.to_owned()))
    }
}

impl fmt::Debug for ImportName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ImportName(<{} bytes>)", self.0.len())
    }
}

/// Why an import failed. Never names the file (PHI).
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// No such file in the import directory.
    #[error("no such file in the import directory")]
    NotFound,
    /// The name is a symbolic link.
    #[error("the import name is a symbolic link; only regular files are imported")]
    Symlink,
    /// A directory, FIFO, socket or device.
    #[error("the import name is not a regular file")]
    NotRegularFile,
    /// The file has other names (hard links): it may be a file from outside the import
    /// directory (one the import directory's writers could not otherwise read), and it
    /// could be changed through its other name. Copy it in instead.
    #[error("the import file has other hard links; only a file with a single name is imported")]
    HardLinked,
    /// The file changed while it was read.
    #[error("the file changed while it was being imported")]
    Changed,
    /// Reading the file failed.
    #[error("reading the import file failed: {0}")]
    Io(std::io::Error),
    /// Encrypting it failed.
    #[error(transparent)]
    AtRest(#[from] AtRestError),
}

/// What an import produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Imported {
    /// Plaintext length.
    pub length: u64,
    /// SHA-256 of the plaintext.
    pub sha256: [u8; 32],
    /// Identity of the file that was read, for [`ImportDir::remove`].
    source: FileIdentity,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileIdentity {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
}

impl FileIdentity {
    fn of(m: &std::fs::Metadata) -> Self {
        Self {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
            mtime: (m.mtime(), m.mtime_nsec()),
        }
    }
}

/// The import directory.
#[derive(Debug, Clone)]
pub struct ImportDir {
    dir: PathBuf,
    remove_imported: bool,
}

impl ImportDir {
    /// The directory `dir`; `remove_imported` is the removal rule (module docs).
    pub fn new(dir: PathBuf, remove_imported: bool) -> Self {
        Self {
            dir,
            remove_imported,
        }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Whether sources are removed after a successful import.
    pub fn removes_imported(&self) -> bool {
        self.remove_imported
    }

    /// Encrypts `name` into the new at-rest object `object`. On any failure the partial
    /// object is shredded and the source is left as it was.
    pub async fn import(
        &self,
        at_rest: &AtRest,
        name: &ImportName,
        object: OpaqueId,
    ) -> Result<Imported, ImportError> {
        let path = self.dir.join(name.as_str());
        let file = tokio::task::spawn_blocking(move || open_regular(&path))
            .await
            .map_err(|e| ImportError::Io(std::io::Error::other(e)))??;
        let before = FileIdentity::of(&file.metadata().map_err(ImportError::Io)?);
        let result = encrypt(at_rest, file, object, before).await;
        if result.is_err() {
            // Shred whatever was written; the source stays for a retry.
            if let Err(e) = at_rest.delete(object).await {
                tracing::warn!(%object, error = %e, "could not shred a failed import");
            }
        }
        result
    }

    /// Applies the removal rule after the artifact record is stored: removes the source if
    /// configured and the directory entry still names the file that was read. Returns
    /// whether it was removed.
    pub async fn remove(&self, name: &ImportName, imported: &Imported) -> bool {
        if !self.remove_imported {
            return false;
        }
        let path = self.dir.join(name.as_str());
        let source = imported.source;
        let result = tokio::task::spawn_blocking(move || -> std::io::Result<bool> {
            let now = std::fs::symlink_metadata(&path)?;
            if now.dev() != source.dev || now.ino() != source.ino || !now.is_file() {
                return Ok(false);
            }
            std::fs::remove_file(&path)?;
            Ok(true)
        })
        .await;
        match result {
            Ok(Ok(removed)) => removed,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "could not remove an imported file");
                false
            }
            Err(_) => false,
        }
    }
}

fn open_regular(path: &Path) -> Result<std::fs::File, ImportError> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => ImportError::Symlink,
            _ if e.kind() == std::io::ErrorKind::NotFound => ImportError::NotFound,
            _ => ImportError::Io(e),
        })?;
    let meta = file.metadata().map_err(ImportError::Io)?;
    if !meta.file_type().is_file() {
        return Err(ImportError::NotRegularFile);
    }
    if meta.nlink() != 1 {
        return Err(ImportError::HardLinked);
    }
    Ok(file)
}

async fn encrypt(
    at_rest: &AtRest,
    file: std::fs::File,
    object: OpaqueId,
    before: FileIdentity,
) -> Result<Imported, ImportError> {
    let mut file = tokio::fs::File::from_std(file);
    let mut writer = at_rest.create(object).await?;
    let mut buf = vec![0u8; READ_CHUNK];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buf).await.map_err(ImportError::Io)?;
        if n == 0 {
            break;
        }
        writer.append(&buf[..n]).await?;
        total += n as u64;
    }
    let after = FileIdentity::of(&file.metadata().await.map_err(ImportError::Io)?);
    if after != before || total != before.len {
        return Err(ImportError::Changed);
    }
    let finished = writer.finish().await?;
    if finished.plaintext_len != total {
        return Err(AtRestError::Inconsistent("import length").into());
    }
    Ok(Imported {
        length: total,
        sha256: finished.sha256,
        source: before,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!("Observation.ndjson".parse::<ImportName>().is_ok());
        assert!("Patient 1 (copy).ndjson".parse::<ImportName>().is_ok());
        for (bad, e) in [
            ("", ImportNameError::Length),
            (".hidden", ImportNameError::LeadingDot),
            ("..", ImportNameError::LeadingDot),
            (".", ImportNameError::LeadingDot),
            ("a/b", ImportNameError::Character),
            ("../x", ImportNameError::LeadingDot),
            ("a\\b", ImportNameError::Character),
            ("a\0b", ImportNameError::Character),
            ("a\nb", ImportNameError::Character),
        ] {
            assert_eq!(bad.parse::<ImportName>(), Err(e), "{bad:?}");
        }
        assert_eq!(
            "a".repeat(256).parse::<ImportName>(),
            Err(ImportNameError::Length)
        );
        assert!(!format!("{:?}", "secret-name".parse::<ImportName>().unwrap()).contains("secret"));
    }
}
