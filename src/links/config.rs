//! The `[links]` and `[artifacts]` configuration sections: raw serde structs, validated
//! once into [`LinksSettings`] and [`ArtifactsSettings`].
//!
//! ```toml
//! [links]
//! clock_skew = "30s"              # not-before allowance, 0s..=1h
//! default_ttl = "1day"            # when an issue request names no ttl
//! max_ttl = "30days"
//! grant_retention = "30days"      # grant records are kept this long past expiry
//! # public_base_url = "https://files.example.org"
//! bad_signature_burst = 10        # forged/malformed links per client before 429
//! bad_signature_window = "1m"     # ... refilled at burst per window
//! artifact_cache_ttl = "30s"      # artifact records, open readers, small ciphertexts
//! danger_queued_download_audit = false  # true: serve once the audit entry is queued
//! key_file = "link-keys"          # generated keys, used only when no keys are listed
//! # [[links.keys]]
//! # id = "k2026a"
//! # secret_file = "/run/secrets/link-k2026a"   # or secret = "<base64>", 32-64 bytes
//! # state = "current"                           # "current" | "verify" | "retired"
//!
//! [artifacts]
//! # import_dir = "sallyport-data/import"
//! remove_imported = true
//! ```
//!
//! Secrets are read (and permission-checked) here, so `check-config` catches a missing or
//! world-readable key file; they are held as [`Secret`]s (zeroised, redacted).

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use serde::Deserialize;

use crate::config::units::parse_duration;
use crate::secret::{Secret, read_secret_file};
use crate::signed_link::{KeyId, MAX_CLOCK_SKEW, MAX_SECRET_LEN, MIN_SECRET_LEN};

/// Default name of the generated key file, inside the data directory.
pub const DEFAULT_KEY_FILE: &str = "link-keys";
/// Default name of the import directory, inside the data directory.
pub const DEFAULT_IMPORT_DIR: &str = "import";

/// The `[links]` table as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLinksConfig {
    /// Not-before clock-skew allowance.
    pub clock_skew: Option<String>,
    /// TTL of a link whose issue request names none.
    pub default_ttl: Option<String>,
    /// Longest TTL an issue request may ask for.
    pub max_ttl: Option<String>,
    /// How long grant records are kept after they expire.
    pub grant_retention: Option<String>,
    /// Scheme and authority put in front of issued links.
    pub public_base_url: Option<String>,
    /// Forgery-suspect rejections a client address may cause before it gets 429.
    pub bad_signature_burst: Option<u32>,
    /// The time in which a client's allowance refills completely.
    pub bad_signature_window: Option<String>,
    /// How long artifact records and open readers are cached.
    pub artifact_cache_ttl: Option<String>,
    /// The generated key file (relative to the data directory).
    pub key_file: Option<String>,
    /// Answer downloads once their audit entry is queued instead of durable.
    #[serde(default)]
    pub danger_queued_download_audit: bool,
    /// Configured HMAC keys.
    #[serde(default)]
    pub keys: Vec<RawLinkKey>,
}

/// One configured key.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLinkKey {
    /// The key id.
    pub id: String,
    /// Inline secret: standard base64 of 32–64 bytes.
    pub secret: Option<String>,
    /// A file holding the base64 secret.
    pub secret_file: Option<String>,
    /// `current`, `verify` or `retired`.
    pub state: String,
}

impl std::fmt::Debug for RawLinkKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawLinkKey")
            .field("id", &self.id)
            .field("secret", &self.secret.as_ref().map(|_| "[redacted]"))
            .field("secret_file", &self.secret_file)
            .field("state", &self.state)
            .finish()
    }
}

/// The `[artifacts]` table as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawArtifactsConfig {
    /// Where files to import are placed.
    pub import_dir: Option<String>,
    /// Remove a file after it was imported.
    pub remove_imported: Option<bool>,
}

/// A configured key's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// Signs new links (exactly one key).
    Current,
    /// Verifies links it signed; signs nothing.
    Verify,
    /// Its links are refused.
    Retired,
}

/// One validated key.
#[derive(Debug, Clone)]
pub struct LinkKeySetting {
    /// The id.
    pub id: KeyId,
    /// The role.
    pub state: KeyState,
    /// The decoded secret (`None` for retired keys, whose secret is never read).
    pub secret: Option<Secret>,
}

/// Where link keys come from.
#[derive(Debug, Clone)]
pub enum LinkKeysSource {
    /// Listed in the configuration.
    Configured(Vec<LinkKeySetting>),
    /// None listed: generated into this file on first start, read afterwards.
    Generated(PathBuf),
}

/// The validated `[links]` settings.
#[derive(Debug, Clone)]
pub struct LinksSettings {
    /// The keys.
    pub keys: LinkKeysSource,
    /// Not-before allowance.
    pub clock_skew: Duration,
    /// Default link TTL.
    pub default_ttl: Duration,
    /// Longest link TTL.
    pub max_ttl: Duration,
    /// Grant records are kept this long past expiry.
    pub grant_retention: Duration,
    /// `https://host[:port]` for issued links; `None`: from the issuing request's Host.
    pub public_base_url: Option<String>,
    /// Rate limiter burst.
    pub bad_signature_burst: u32,
    /// Rate limiter full-refill time.
    pub bad_signature_window: Duration,
    /// Artifact/reader cache TTL (zero disables the cache).
    pub artifact_cache_ttl: Duration,
    /// Downloads wait only for their audit entry to be queued, not durable: faster under
    /// load (no fsync per download batch on the embedded store), but a crash can lose the
    /// last milliseconds of `download.served` entries for bytes already sent.
    pub danger_queued_download_audit: bool,
}

/// The validated `[artifacts]` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactsSettings {
    /// The import directory.
    pub import_dir: PathBuf,
    /// Whether imported files are removed.
    pub remove_imported: bool,
}

/// A `[links]` or `[artifacts]` value that is not valid: the key and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("config key `{key}`: {message}")]
pub struct LinksConfigError {
    /// Dotted key path.
    pub key: String,
    /// What is wrong (never a secret).
    pub message: String,
}

fn err(key: impl Into<String>, message: impl Into<String>) -> LinksConfigError {
    LinksConfigError {
        key: key.into(),
        message: message.into(),
    }
}

fn duration(key: &str, v: Option<&str>, default: Duration) -> Result<Duration, LinksConfigError> {
    v.map_or(Ok(default), |v| parse_duration(v).map_err(|m| err(key, m)))
}

const DAY: u64 = 24 * 3600;

impl LinksSettings {
    /// Validates the raw table; relative paths are inside `data_dir`; `allow_open` accepts
    /// secret files readable by group or others.
    pub fn from_raw(
        raw: &RawLinksConfig,
        data_dir: &Path,
        allow_open: bool,
    ) -> Result<Self, LinksConfigError> {
        let clock_skew = duration(
            "links.clock_skew",
            raw.clock_skew.as_deref(),
            Duration::from_secs(30),
        )?;
        if clock_skew > MAX_CLOCK_SKEW {
            return Err(err("links.clock_skew", "must be at most 1h"));
        }
        let default_ttl = duration(
            "links.default_ttl",
            raw.default_ttl.as_deref(),
            Duration::from_secs(DAY),
        )?;
        let max_ttl = duration(
            "links.max_ttl",
            raw.max_ttl.as_deref(),
            Duration::from_secs(30 * DAY),
        )?;
        if max_ttl.as_secs() < 1 || max_ttl.as_secs() > 366 * DAY {
            return Err(err("links.max_ttl", "must be from 1s to 366days"));
        }
        if default_ttl.as_secs() < 1 || default_ttl > max_ttl {
            return Err(err(
                "links.default_ttl",
                "must be at least 1s and at most links.max_ttl",
            ));
        }
        let grant_retention = duration(
            "links.grant_retention",
            raw.grant_retention.as_deref(),
            Duration::from_secs(30 * DAY),
        )?;
        if grant_retention.as_secs() > 10 * 366 * DAY {
            return Err(err("links.grant_retention", "must be at most 10 years"));
        }
        let public_base_url = raw
            .public_base_url
            .as_deref()
            .map(|u| {
                let rest = u
                    .strip_prefix("https://")
                    .or_else(|| u.strip_prefix("http://"));
                let ok = rest.is_some_and(|r| {
                    !r.is_empty()
                        && r.len() <= 253
                        && r.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
                });
                if ok {
                    Ok(u.to_owned())
                } else {
                    Err(err(
                        "links.public_base_url",
                        "must be https://host[:port] (no path, no trailing slash)",
                    ))
                }
            })
            .transpose()?;
        let bad_signature_burst = raw.bad_signature_burst.unwrap_or(10);
        if !(1..=10_000).contains(&bad_signature_burst) {
            return Err(err("links.bad_signature_burst", "must be in 1..=10000"));
        }
        let bad_signature_window = duration(
            "links.bad_signature_window",
            raw.bad_signature_window.as_deref(),
            Duration::from_secs(60),
        )?;
        if bad_signature_window.is_zero() || bad_signature_window.as_secs() > DAY {
            return Err(err("links.bad_signature_window", "must be from 1s to 1day"));
        }
        let artifact_cache_ttl = duration(
            "links.artifact_cache_ttl",
            raw.artifact_cache_ttl.as_deref(),
            Duration::from_secs(30),
        )?;
        if artifact_cache_ttl.as_secs() > 3600 {
            return Err(err("links.artifact_cache_ttl", "must be at most 1h"));
        }
        let keys = if raw.keys.is_empty() {
            let file = raw.key_file.as_deref().unwrap_or(DEFAULT_KEY_FILE);
            let path = PathBuf::from(file);
            LinkKeysSource::Generated(if path.is_absolute() {
                path
            } else {
                data_dir.join(path)
            })
        } else {
            if raw.key_file.is_some() {
                return Err(err(
                    "links.key_file",
                    "applies only when no [[links.keys]] are configured",
                ));
            }
            LinkKeysSource::Configured(configured_keys(&raw.keys, allow_open)?)
        };
        Ok(Self {
            keys,
            clock_skew,
            default_ttl,
            max_ttl,
            grant_retention,
            public_base_url,
            bad_signature_burst,
            bad_signature_window,
            artifact_cache_ttl,
            danger_queued_download_audit: raw.danger_queued_download_audit,
        })
    }
}

fn configured_keys(
    raw: &[RawLinkKey],
    allow_open: bool,
) -> Result<Vec<LinkKeySetting>, LinksConfigError> {
    let mut out: Vec<LinkKeySetting> = Vec::with_capacity(raw.len());
    for (i, k) in raw.iter().enumerate() {
        let key = |f: &str| format!("links.keys[{i}].{f}");
        let id: KeyId = k.id.parse().map_err(|e| err(key("id"), format!("{e}")))?;
        if out.iter().any(|o| o.id == id) {
            return Err(err(key("id"), format!("key id {id} appears twice")));
        }
        let state = match k.state.as_str() {
            "current" => KeyState::Current,
            "verify" => KeyState::Verify,
            "retired" => KeyState::Retired,
            other => {
                return Err(err(
                    key("state"),
                    format!("{other:?} is not \"current\", \"verify\" or \"retired\""),
                ));
            }
        };
        let secret = if state == KeyState::Retired {
            // A retired key's secret is never needed; its file may be gone already.
            None
        } else {
            let text = match (&k.secret, &k.secret_file) {
                (Some(s), None) => Secret::from_string(s.clone()),
                (None, Some(f)) => read_secret_file(Path::new(f), allow_open)
                    .map_err(|e| err(key("secret_file"), e.to_string()))?,
                _ => {
                    return Err(err(
                        key("secret"),
                        "set exactly one of secret or secret_file",
                    ));
                }
            };
            Some(decode_secret(&text).map_err(|m| err(key("secret"), m))?)
        };
        out.push(LinkKeySetting { id, state, secret });
    }
    let current = out.iter().filter(|k| k.state == KeyState::Current).count();
    if current != 1 {
        return Err(err(
            "links.keys",
            format!("exactly one key must have state = \"current\" ({current} do)"),
        ));
    }
    Ok(out)
}

/// Decodes a base64 secret of 32–64 bytes. The message never contains the secret.
pub fn decode_secret(text: &Secret) -> Result<Secret, String> {
    let s = text
        .expose_str()
        .ok_or_else(|| "the secret is not base64 text".to_owned())?
        .trim();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(s)
        .map_err(|_| "the secret is not standard base64".to_owned())?;
    let secret = Secret::new(bytes);
    let n = secret.expose().len();
    if !(MIN_SECRET_LEN..=MAX_SECRET_LEN).contains(&n) {
        return Err(format!(
            "the secret decodes to {n} bytes; {MIN_SECRET_LEN} to {MAX_SECRET_LEN} are required"
        ));
    }
    Ok(secret)
}

impl ArtifactsSettings {
    /// Validates the raw table.
    pub fn from_raw(raw: &RawArtifactsConfig, data_dir: &Path) -> Result<Self, LinksConfigError> {
        let import_dir = match raw.import_dir.as_deref() {
            None => data_dir.join(DEFAULT_IMPORT_DIR),
            Some("") => return Err(err("artifacts.import_dir", "must not be empty")),
            Some(p) => PathBuf::from(p),
        };
        Ok(Self {
            import_dir,
            remove_imported: raw.remove_imported.unwrap_or(true),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<LinksSettings, String> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Doc {
            #[serde(default)]
            links: RawLinksConfig,
        }
        let doc: Doc = toml::from_str(text).map_err(|e| e.message().to_owned())?;
        LinksSettings::from_raw(&doc.links, Path::new("/data"), false).map_err(|e| e.to_string())
    }

    const S32: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    #[test]
    fn defaults() {
        let s = parse("").unwrap();
        assert_eq!(s.clock_skew, Duration::from_secs(30));
        assert_eq!(s.default_ttl, Duration::from_secs(DAY));
        assert!(
            matches!(s.keys, LinkKeysSource::Generated(ref p) if p == Path::new("/data/link-keys"))
        );
    }

    #[test]
    fn configured_keys_are_validated() {
        let ok = format!(
            "[[links.keys]]\nid = \"k1\"\nsecret = \"{S32}\"\nstate = \"verify\"\n\
             [[links.keys]]\nid = \"k2\"\nsecret = \"{S32}\"\nstate = \"current\"\n\
             [[links.keys]]\nid = \"k0\"\nstate = \"retired\"\n"
        );
        let s = parse(&ok).unwrap();
        let LinkKeysSource::Configured(keys) = &s.keys else {
            panic!("configured");
        };
        assert_eq!(keys.len(), 3);
        assert!(!format!("{s:?}").contains(S32));
        for (text, needle) in [
            (
                format!("[[links.keys]]\nid = \"k1\"\nsecret = \"{S32}\"\nstate = \"verify\"\n"),
                "exactly one key",
            ),
            (
                format!("[[links.keys]]\nid = \"K1\"\nsecret = \"{S32}\"\nstate = \"current\"\n"),
                "links.keys[0].id",
            ),
            (
                "[[links.keys]]\nid = \"k1\"\nsecret = \"c2hvcnQ=\"\nstate = \"current\"\n".into(),
                "decodes to 5 bytes",
            ),
            (
                "[[links.keys]]\nid = \"k1\"\nsecret = \"not base64!\"\nstate = \"current\"\n"
                    .into(),
                "links.keys[0].secret",
            ),
            (
                "[[links.keys]]\nid = \"k1\"\nstate = \"current\"\n".into(),
                "exactly one of secret",
            ),
            (
                format!("[[links.keys]]\nid = \"k1\"\nsecret = \"{S32}\"\nstate = \"primary\"\n"),
                "links.keys[0].state",
            ),
            ("[links]\nclock_skew = \"2h\"\n".into(), "links.clock_skew"),
            (
                "[links]\ndefault_ttl = \"40days\"\n".into(),
                "links.default_ttl",
            ),
            (
                "[links]\npublic_base_url = \"https://x/y\"\n".into(),
                "links.public_base_url",
            ),
            ("[links]\nnope = 1\n".into(), "nope"),
        ] {
            let e = parse(&text).unwrap_err();
            assert!(e.contains(needle), "{text:?} -> {e}");
            assert!(!e.contains(S32));
        }
    }

    #[test]
    fn secret_files_are_read_and_checked() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("k");
        std::fs::write(&f, format!("{S32}\n")).unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        let text = format!(
            "[[links.keys]]\nid = \"k1\"\nsecret_file = {:?}\nstate = \"current\"\n",
            f.display().to_string()
        );
        assert!(parse(&text).unwrap_err().contains("readable by group"));
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        let s = parse(&text).unwrap();
        let LinkKeysSource::Configured(keys) = s.keys else {
            panic!("configured");
        };
        assert_eq!(keys[0].secret.as_ref().unwrap().expose().len(), 32);
    }
}
