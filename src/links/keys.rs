//! Building the link keyring from the configuration — or, when no keys are configured, from
//! a key file the gateway generates on first start.
//!
//! The generated file (`<data_dir>/link-keys`, mode 0600, created once and never rewritten)
//! is JSON:
//!
//! ```text
//! {"v":1,"keys":[{"id":"g20260101-1a2b3c","state":"current","secret":"<base64 of 32 bytes>"}]}
//! ```
//!
//! It lets `sallyport serve` issue links with no configuration at all. Several instances
//! sharing a data directory share it; instances on separate hosts need the same keys, so
//! production lists them under `[[links.keys]]` (from secret files) and rotates them there.
//! A file readable by group or others is refused like any other secret file.

use std::path::Path;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::config::{KeyState, LinkKeySetting, LinkKeysSource, LinksSettings, decode_secret};
use crate::secret::{Secret, read_secret_file, write_private_file};
use crate::signed_link::{KeyringError, LinkKeySpec, LinkKeyring};

/// Why the keyring could not be built.
#[derive(Debug, thiserror::Error)]
pub enum LinkKeysError {
    /// The keys do not make a valid keyring.
    #[error(transparent)]
    Keyring(#[from] KeyringError),
    /// The generated key file could not be read or written.
    #[error("link key file {path}: {message}")]
    File {
        /// The file.
        path: String,
        /// What went wrong (never key material).
        message: String,
    },
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    v: u32,
    keys: Vec<KeyFileEntry>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFileEntry {
    id: String,
    state: String,
    #[serde(default)]
    secret: Option<String>,
}

/// The configured link keys, or those of the generated key file (creating it if needed):
/// also the root of the SMART access-token keys (`smart::access_token` derives its own from
/// each, so both rotate together).
pub fn load_keys(
    settings: &LinksSettings,
    allow_open: bool,
) -> Result<Vec<LinkKeySetting>, LinkKeysError> {
    Ok(match &settings.keys {
        LinkKeysSource::Configured(keys) => keys.clone(),
        LinkKeysSource::Generated(path) => load_or_generate(path, allow_open)?,
    })
}

/// Builds the keyring the settings describe (creating the generated key file if needed).
pub fn build_keyring(
    settings: &LinksSettings,
    allow_open: bool,
) -> Result<LinkKeyring, LinkKeysError> {
    let keys = load_keys(settings, allow_open)?;
    let specs = keys.iter().map(|k| match (k.state, &k.secret) {
        (KeyState::Current, Some(s)) => LinkKeySpec::Current {
            id: k.id.clone(),
            secret: s.expose(),
        },
        (KeyState::Verify, Some(s)) => LinkKeySpec::VerifyOnly {
            id: k.id.clone(),
            secret: s.expose(),
        },
        // Validation guarantees non-retired keys have secrets; a retired one needs none.
        _ => LinkKeySpec::Retired { id: k.id.clone() },
    });
    Ok(LinkKeyring::new(specs, settings.clock_skew)?)
}

fn load_or_generate(path: &Path, allow_open: bool) -> Result<Vec<LinkKeySetting>, LinkKeysError> {
    let file_err = |message: String| LinkKeysError::File {
        path: path.display().to_string(),
        message,
    };
    if !path.exists() {
        generate(path).map_err(|e| file_err(e.to_string()))?;
        tracing::info!(path = %path.display(), "generated a link-signing key");
    }
    let text = read_secret_file(path, allow_open).map_err(|e| file_err(e.to_string()))?;
    let file: KeyFile = serde_json::from_slice(text.expose())
        .map_err(|e| file_err(format!("not a key file: {e}")))?;
    if file.v != 1 {
        return Err(file_err(format!("version {} is not supported", file.v)));
    }
    let mut out = Vec::with_capacity(file.keys.len());
    for entry in file.keys {
        let id = entry
            .id
            .parse()
            .map_err(|e| file_err(format!("key id: {e}")))?;
        let state = match entry.state.as_str() {
            "current" => KeyState::Current,
            "verify" => KeyState::Verify,
            "retired" => KeyState::Retired,
            _ => {
                return Err(file_err(
                    "a key state is not current, verify or retired".into(),
                ));
            }
        };
        let secret = match (state, entry.secret) {
            (KeyState::Retired, _) => None,
            (_, Some(s)) => Some(decode_secret(&Secret::from_string(s)).map_err(file_err)?),
            (_, None) => return Err(file_err("a key has no secret".into())),
        };
        out.push(LinkKeySetting { id, state, secret });
    }
    Ok(out)
}

fn generate(path: &Path) -> std::io::Result<()> {
    let mut secret = Zeroizing::new([0u8; 32]);
    aws_lc_rs::rand::fill(&mut secret[..]).map_err(|_| std::io::Error::other("no randomness"))?;
    let mut tag = [0u8; 3];
    aws_lc_rs::rand::fill(&mut tag).map_err(|_| std::io::Error::other("no randomness"))?;
    let date = time::OffsetDateTime::now_utc();
    let id = format!(
        "g{:04}{:02}{:02}-{}",
        date.year(),
        u8::from(date.month()),
        date.day(),
        hex::encode(tag)
    );
    let file = KeyFile {
        v: 1,
        keys: vec![KeyFileEntry {
            id,
            state: "current".into(),
            secret: Some(base64::engine::general_purpose::STANDARD.encode(&secret[..])),
        }],
    };
    let bytes = Zeroizing::new(serde_json::to_vec(&file).map_err(std::io::Error::other)?);
    if let Some(parent) = path.parent() {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)?;
    }
    write_private_file(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::links::config::RawLinksConfig;

    #[test]
    fn generates_once_with_mode_0600_and_reuses() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let settings =
            LinksSettings::from_raw(&RawLinksConfig::default(), dir.path(), false).unwrap();
        let a = build_keyring(&settings, false).unwrap();
        let path = dir.path().join("link-keys");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let first = std::fs::read(&path).unwrap();
        let b = build_keyring(&settings, false).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), first, "not rewritten");
        assert_eq!(a.current_key_id(), b.current_key_id());
        assert!(a.current_key_id().as_str().starts_with('g'));
        // Debug shows ids, never secrets.
        let text = String::from_utf8(first).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let secret = v["keys"][0]["secret"].as_str().unwrap();
        assert!(!format!("{a:?}").contains(secret));
        // A loosened mode is refused.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(build_keyring(&settings, false).is_err());
        assert!(build_keyring(&settings, true).is_ok());
    }

    #[test]
    fn corrupt_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("link-keys");
        write_private_file(
            &path,
            b"{\"v\":1,\"keys\":[{\"id\":\"k\",\"state\":\"current\"}]}",
        )
        .unwrap();
        let settings =
            LinksSettings::from_raw(&RawLinksConfig::default(), dir.path(), false).unwrap();
        let e = build_keyring(&settings, false).unwrap_err().to_string();
        assert!(e.contains("no secret"), "{e}");
    }
}
