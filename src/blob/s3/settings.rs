//! The validated settings of the S3 blob store, and where its credentials come from.
//!
//! Keys never appear in the configuration: they come from `blob.credentials_file` (read
//! through the one strict secret-file check, so a group- or world-readable file is refused
//! unless `allow_world_readable_secrets`) or from the standard AWS environment variables
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`), read when the store
//! opens. Every value is a [`Secret`]: zeroised on drop, redacted in `Debug`.
//!
//! Not here: parsing the `[blob]` section (`config::blob`), talking to S3 (`super`).

use std::path::{Path, PathBuf};

use crate::config::units::ByteSize;
use crate::secret::{Secret, read_secret_file};

/// The smallest piece size: S3's minimum multipart part size, so a later compaction of
/// pieces into one object can copy them as parts.
pub const MIN_PIECE_SIZE: ByteSize = ByteSize(5 << 20);
/// The default piece size.
pub const DEFAULT_PIECE_SIZE: ByteSize = ByteSize(8 << 20);
/// The largest piece size: a piece is buffered in memory per blob being written.
pub const MAX_PIECE_SIZE: ByteSize = ByteSize(256 << 20);

/// `[blob] backend = "s3"`, validated.
#[derive(Debug, Clone)]
pub struct S3Settings {
    /// The S3 endpoint URL; `None`: AWS's own regional endpoint.
    pub endpoint: Option<String>,
    /// Whether the endpoint is plain `http://` (only ever a loopback address).
    pub allow_http: bool,
    /// The signing region.
    pub region: String,
    /// The bucket.
    pub bucket: String,
    /// Key prefix: empty, or ends with `/`.
    pub prefix: String,
    /// Path-style requests (`endpoint/bucket/key`) rather than virtual-hosted ones.
    pub path_style: bool,
    /// Where the keys come from.
    pub credentials: S3Credentials,
    /// A PEM CA (bundle) to trust, instead of the system's roots, for the store's TLS.
    pub ca_file: Option<PathBuf>,
    /// Appended bytes are buffered up to this size, then written as one piece.
    pub piece_size: ByteSize,
    /// Start even when the server does not refuse a second `If-None-Match: *` create of
    /// one key (a warning instead of a refusal; one gateway only).
    pub allow_unconditional_create: bool,
}

/// Where the S3 keys come from.
#[derive(Debug, Clone)]
pub enum S3Credentials {
    /// Read from `blob.credentials_file` at configuration time.
    Keys(S3Keys),
    /// The standard AWS environment variables, read when the store opens.
    Environment,
}

/// An access key pair and an optional session token.
#[derive(Debug, Clone)]
pub struct S3Keys {
    /// `access_key_id`.
    pub access_key_id: Secret,
    /// `secret_access_key`.
    pub secret_access_key: Secret,
    /// `session_token`, for temporary credentials.
    pub session_token: Option<Secret>,
}

/// Why credentials could not be had. Messages name files, keys and line numbers, never
/// a value.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// The file was refused or unreadable.
    #[error(transparent)]
    File(#[from] crate::secret::SecretFileError),
    /// A line is not `name = value` with a known name.
    #[error("{path} line {line}: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong (never the line's text).
        message: &'static str,
    },
    /// A required name is missing.
    #[error("{source_name} has no {name}")]
    Missing {
        /// The file, or "the environment".
        source_name: String,
        /// The missing name.
        name: &'static str,
    },
}

impl S3Keys {
    /// Reads a credentials file: lines `access_key_id = …`, `secret_access_key = …` and
    /// optionally `session_token = …` (values may be in double quotes); blank lines and
    /// lines starting with `#` are skipped.
    pub fn from_file(path: &Path, allow_open: bool) -> Result<Self, CredentialsError> {
        let text = read_secret_file(path, allow_open)?;
        let syntax = |line, message| CredentialsError::Syntax {
            path: path.to_owned(),
            line,
            message,
        };
        let text = text
            .expose_str()
            .ok_or_else(|| syntax(1, "the file is not UTF-8 text"))?;
        let (mut id, mut secret, mut token) = (None, None, None);
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (name, value) = line
                .split_once('=')
                .ok_or_else(|| syntax(n + 1, "expected `name = value`"))?;
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            if value.is_empty() {
                return Err(syntax(n + 1, "the value is empty"));
            }
            let slot = match name.trim() {
                "access_key_id" => &mut id,
                "secret_access_key" => &mut secret,
                "session_token" => &mut token,
                _ => {
                    return Err(syntax(
                        n + 1,
                        "unknown name (expected access_key_id, secret_access_key or session_token)",
                    ));
                }
            };
            if slot.is_some() {
                return Err(syntax(n + 1, "the name is given twice"));
            }
            *slot = Some(Secret::from_string(value.to_owned()));
        }
        let missing = |name| CredentialsError::Missing {
            source_name: path.display().to_string(),
            name,
        };
        Ok(Self {
            access_key_id: id.ok_or_else(|| missing("access_key_id"))?,
            secret_access_key: secret.ok_or_else(|| missing("secret_access_key"))?,
            session_token: token,
        })
    }

    /// Reads `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN` through
    /// `var` (the process environment in the gateway, a map in tests).
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Self, CredentialsError> {
        let get = |name: &'static str| var(name).filter(|v| !v.is_empty()).map(Secret::from_string);
        let missing = |name| CredentialsError::Missing {
            source_name: "the environment (and blob.credentials_file is not set)".into(),
            name,
        };
        Ok(Self {
            access_key_id: get("AWS_ACCESS_KEY_ID").ok_or_else(|| missing("AWS_ACCESS_KEY_ID"))?,
            secret_access_key: get("AWS_SECRET_ACCESS_KEY")
                .ok_or_else(|| missing("AWS_SECRET_ACCESS_KEY"))?,
            session_token: get("AWS_SESSION_TOKEN"),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn file(text: &str, mode: u32) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s3.credentials");
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        (dir, path)
    }

    #[test]
    fn a_credentials_file_is_read_and_never_printed() {
        let (_d, path) = file(
            "# test keys\naccess_key_id = AKIDEXAMPLE\nsecret_access_key = \"s3cr3t-value\"\n\nsession_token=tok3n\n",
            0o600,
        );
        let keys = S3Keys::from_file(&path, false).unwrap();
        assert_eq!(keys.access_key_id.expose(), b"AKIDEXAMPLE");
        assert_eq!(keys.secret_access_key.expose(), b"s3cr3t-value");
        assert_eq!(keys.session_token.as_ref().unwrap().expose(), b"tok3n");
        let debug = format!("{keys:?}");
        assert!(!debug.contains("s3cr3t") && !debug.contains("tok3n") && !debug.contains("AKID"));
    }

    #[test]
    fn bad_credentials_files_are_refused_without_quoting_them() {
        for (text, want) in [
            ("access_key_id = a\n", "has no secret_access_key"),
            ("secret_access_key = s3cr3t\n", "has no access_key_id"),
            ("access_key_id a\n", "line 1: expected `name = value`"),
            (
                "access_key_id = a\nsecret = s3cr3t\n",
                "line 2: unknown name",
            ),
            (
                "access_key_id = a\naccess_key_id = b\n",
                "line 2: the name is given twice",
            ),
            ("access_key_id = \"\"\n", "line 1: the value is empty"),
        ] {
            let (_d, path) = file(text, 0o600);
            let err = S3Keys::from_file(&path, false).unwrap_err().to_string();
            assert!(err.contains(want), "{text:?}: {err}");
            assert!(!err.contains("s3cr3t"), "{err}");
        }
    }

    #[test]
    fn a_readable_credentials_file_is_refused_unless_allowed() {
        let (_d, path) = file("access_key_id = a\nsecret_access_key = b\n", 0o644);
        let err = S3Keys::from_file(&path, false).unwrap_err().to_string();
        assert!(err.contains("readable"), "{err}");
        S3Keys::from_file(&path, true).unwrap();
    }

    #[test]
    fn environment_credentials() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        let keys = S3Keys::from_env(env(&[
            ("AWS_ACCESS_KEY_ID", "id"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
        ]))
        .unwrap();
        assert_eq!(keys.secret_access_key.expose(), b"secret");
        assert!(keys.session_token.is_none());
        let err = S3Keys::from_env(env(&[("AWS_ACCESS_KEY_ID", "id")])).unwrap_err();
        assert!(err.to_string().contains("AWS_SECRET_ACCESS_KEY"), "{err}");
        let err = S3Keys::from_env(env(&[])).unwrap_err();
        assert!(err.to_string().contains("AWS_ACCESS_KEY_ID"), "{err}");
    }
}
