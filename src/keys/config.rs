//! The `[keys]` configuration section: a raw serde struct, validated once into
//! [`KeysSettings`], which builds the [`KeyProvider`].
//!
//! ```toml
//! [keys]
//! provider = "keyring"              # or "static"
//! keyring_path = "keyring.json"     # relative to the data directory
//! segment_size = 65536              # plaintext bytes per segment of new objects
//!
//! # provider = "static": KEK material provisioned from outside, read-only here
//! # static_kek_id = "prod"
//! # static_current_version = 2
//! # [[keys.static_keks]]
//! # version = 1
//! # key_file = "/run/secrets/kek-v1"  # base64 of 32 bytes, mode 0600
//! # [[keys.static_keks]]
//! # version = 2
//! # key = "base64 of 32 bytes"        # inline; prefer key_file
//! ```
//!
//! `segment_size` is written in this table but is the at-rest format's setting: it is kept
//! here raw and validated by `at_rest::settings` (this module does not import `at_rest`,
//! which builds on `keys`).
//!
//! Not here: loading the whole configuration file (the lead's `config` module embeds
//! [`RawKeysConfig`] as its `[keys]` table).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use zeroize::Zeroizing;

use super::kek_set::{KekMaterial, KekSet, KekVersion};
use super::keyring::{KeyIn, KeyringFile, decode_key_b64};
use super::static_keks::StaticKeks;
use super::{KEY_LEN, KekId, KeyError, KeyProvider};
use crate::secret::{FilePolicy, read_private_file};

/// Default keyring file name, inside the data directory.
pub const DEFAULT_KEYRING_FILE: &str = "keyring.json";

/// Where KEKs come from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RawProvider {
    /// A keyring file in the data directory, created on first start.
    #[default]
    Keyring,
    /// KEK material from this configuration or secret files; read-only.
    Static,
}

/// The `[keys]` table as written. Every field has a default.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawKeysConfig {
    /// Where KEKs come from: `"keyring"` (default) or `"static"`.
    pub provider: RawProvider,
    /// The keyring file (provider `"keyring"`); relative paths are inside the data
    /// directory. Default: `keyring.json`.
    pub keyring_path: Option<PathBuf>,
    /// Accept keyring and KEK files that group or others can read. Weakens security; for
    /// containers whose secret mounts cannot be 0600. Default: false.
    pub danger_allow_world_readable_secrets: bool,
    /// The KEK id (provider `"static"`): 1–32 characters of `[a-z0-9_-]`.
    pub static_kek_id: Option<String>,
    /// The version new DEKs are wrapped under (provider `"static"`).
    pub static_current_version: Option<u32>,
    /// The KEK versions (provider `"static"`).
    pub static_keks: Vec<RawStaticKek>,
    /// Plaintext bytes per segment for new objects: a power of two from 4096 to 16777216.
    /// Default: 65536. Existing objects keep the size recorded in their header. Validated
    /// by `at_rest::settings::AtRestSettings`, not by [`KeysSettings`].
    pub segment_size: Option<u64>,
}

/// One configured KEK version: exactly one of `key` and `key_file`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStaticKek {
    /// The version number (1, 2, …).
    pub version: u32,
    /// The material inline: standard base64 of 32 bytes.
    #[serde(default)]
    pub key: Option<KeyIn>,
    /// A file holding the material as base64 (mode 0600 unless the danger switch is on).
    #[serde(default)]
    pub key_file: Option<PathBuf>,
}

impl fmt::Debug for RawStaticKek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawStaticKek")
            .field("version", &self.version)
            .field("key", &self.key.as_ref().map(|_| "<redacted>"))
            .field("key_file", &self.key_file)
            .finish()
    }
}

/// The validated `[keys]` settings.
#[derive(Debug, Clone)]
pub struct KeysSettings {
    /// Where KEKs come from.
    pub provider: ProviderSettings,
}

/// The validated provider choice.
#[derive(Debug, Clone)]
pub enum ProviderSettings {
    /// A keyring file.
    Keyring {
        /// Absolute or data-directory-relative path, resolved.
        path: PathBuf,
        /// The danger switch.
        allow_world_readable_secrets: bool,
    },
    /// KEKs from configuration.
    Static {
        /// The KEK id.
        kek_id: KekId,
        /// The current version.
        current_version: u32,
        /// The versions and where each one's material is.
        versions: BTreeMap<u32, StaticKekSource>,
        /// The danger switch (applies to `key_file`s).
        allow_world_readable_secrets: bool,
    },
}

/// Where one configured KEK version's material is.
#[derive(Clone)]
pub enum StaticKekSource {
    /// Given inline (already decoded).
    Inline(Zeroizing<[u8; KEY_LEN]>),
    /// In a file, read when the provider is built.
    File(PathBuf),
}

impl fmt::Debug for StaticKekSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StaticKekSource::Inline(_) => f.write_str("Inline(<redacted>)"),
            StaticKekSource::File(p) => f.debug_tuple("File").field(p).finish(),
        }
    }
}

/// A `[keys]` value that is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeysConfigError {
    /// Static provider without a KEK id, or with a malformed one.
    #[error(
        "keys.static_kek_id is required for provider \"static\": 1-32 characters of a-z, 0-9, '_' and '-'"
    )]
    StaticKekId,
    /// Static provider without versions, or with a bad one.
    #[error("keys.static_keks: {0}")]
    StaticKeks(String),
    /// Static settings given for the keyring provider (or the reverse).
    #[error("keys.{0} only applies to provider \"{1}\"")]
    Misplaced(&'static str, &'static str),
}

impl KeysSettings {
    /// Validates the raw table; relative paths are resolved against `data_dir`.
    /// `segment_size` is not looked at (see the module docs).
    pub fn from_raw(raw: RawKeysConfig, data_dir: &Path) -> Result<Self, KeysConfigError> {
        let resolve = |p: PathBuf| if p.is_absolute() { p } else { data_dir.join(p) };
        let allow = raw.danger_allow_world_readable_secrets;
        let provider = match raw.provider {
            RawProvider::Keyring => {
                if raw.static_kek_id.is_some() {
                    return Err(KeysConfigError::Misplaced("static_kek_id", "static"));
                }
                if raw.static_current_version.is_some() {
                    return Err(KeysConfigError::Misplaced(
                        "static_current_version",
                        "static",
                    ));
                }
                if !raw.static_keks.is_empty() {
                    return Err(KeysConfigError::Misplaced("static_keks", "static"));
                }
                ProviderSettings::Keyring {
                    path: resolve(
                        raw.keyring_path
                            .unwrap_or_else(|| PathBuf::from(DEFAULT_KEYRING_FILE)),
                    ),
                    allow_world_readable_secrets: allow,
                }
            }
            RawProvider::Static => {
                if raw.keyring_path.is_some() {
                    return Err(KeysConfigError::Misplaced("keyring_path", "keyring"));
                }
                let kek_id: KekId = raw
                    .static_kek_id
                    .as_deref()
                    .and_then(|s| s.parse().ok())
                    .ok_or(KeysConfigError::StaticKekId)?;
                let mut versions = BTreeMap::new();
                for kek in raw.static_keks {
                    let source = match (kek.key, kek.key_file) {
                        (Some(k), None) => StaticKekSource::Inline(k.0),
                        (None, Some(p)) => StaticKekSource::File(resolve(p)),
                        _ => {
                            return Err(KeysConfigError::StaticKeks(format!(
                                "version {} needs exactly one of key and key_file",
                                kek.version
                            )));
                        }
                    };
                    if kek.version == 0 {
                        return Err(KeysConfigError::StaticKeks("versions start at 1".into()));
                    }
                    if versions.insert(kek.version, source).is_some() {
                        return Err(KeysConfigError::StaticKeks(format!(
                            "version {} appears twice",
                            kek.version
                        )));
                    }
                }
                let current_version = raw.static_current_version.ok_or_else(|| {
                    KeysConfigError::StaticKeks("static_current_version is required".into())
                })?;
                if !versions.contains_key(&current_version) {
                    return Err(KeysConfigError::StaticKeks(format!(
                        "static_current_version {current_version} is not among the versions"
                    )));
                }
                ProviderSettings::Static {
                    kek_id,
                    current_version,
                    versions,
                    allow_world_readable_secrets: allow,
                }
            }
        };
        Ok(Self { provider })
    }

    /// Builds the provider: opens (or on first start creates) the keyring file, or reads
    /// the configured KEK files.
    pub fn build_provider(&self) -> Result<Arc<dyn KeyProvider>, KeyError> {
        match &self.provider {
            ProviderSettings::Keyring {
                path,
                allow_world_readable_secrets,
            } => Ok(Arc::new(KeyringFile::open_or_create(
                path,
                *allow_world_readable_secrets,
            )?)),
            ProviderSettings::Static {
                kek_id,
                current_version,
                versions,
                allow_world_readable_secrets,
            } => {
                let mut set = BTreeMap::new();
                for (&version, source) in versions {
                    let material = match source {
                        StaticKekSource::Inline(bytes) => bytes.clone(),
                        StaticKekSource::File(path) => {
                            let text = read_private_file(
                                path,
                                FilePolicy::static_key(*allow_world_readable_secrets),
                            )?;
                            std::str::from_utf8(&text)
                                .ok()
                                .and_then(|s| decode_key_b64(s.trim()))
                                .ok_or_else(|| KeyError::KeyringFormat {
                                    path: path.display().to_string(),
                                    reason: "a KEK file holds base64 of exactly 32 bytes".into(),
                                })?
                        }
                    };
                    set.insert(
                        version,
                        KekVersion {
                            created_unix: 0,
                            material: Some(KekMaterial::from_bytes(material)),
                        },
                    );
                }
                let set = KekSet::new(kek_id.clone(), *current_version, set).map_err(|reason| {
                    KeyError::KeyringFormat {
                        path: "configuration".into(),
                        reason,
                    }
                })?;
                Ok(Arc::new(StaticKeks::new(set)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<KeysSettings, String> {
        // `message()`, not `Display`: toml's Display quotes the offending source line,
        // which for an inline key would echo the secret.
        let raw: RawKeysConfig = toml::from_str(text).map_err(|e| e.message().to_owned())?;
        KeysSettings::from_raw(raw, Path::new("/data")).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults() {
        let s = parse("").unwrap();
        match s.provider {
            ProviderSettings::Keyring {
                path,
                allow_world_readable_secrets,
            } => {
                assert_eq!(path, Path::new("/data/keyring.json"));
                assert!(!allow_world_readable_secrets);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_values_are_specific_errors() {
        assert!(parse("bogus = 1").unwrap_err().contains("unknown field"));
        // `segment_size` is at_rest's to validate (at_rest::settings); keys accepts the key.
        assert!(parse("segment_size = 1000").is_ok());
        assert!(
            parse("provider = \"hsm\"")
                .unwrap_err()
                .contains("unknown variant")
        );
        assert!(
            parse("provider = \"static\"")
                .unwrap_err()
                .contains("static_kek_id")
        );
        assert!(
            parse("static_kek_id = \"x\"")
                .unwrap_err()
                .contains("only applies")
        );
        let no_current = "provider = \"static\"\nstatic_kek_id = \"p\"\n[[static_keks]]\nversion = 1\nkey_file = \"k\"\n";
        assert!(
            parse(no_current)
                .unwrap_err()
                .contains("static_current_version")
        );
        let both = "provider = \"static\"\nstatic_kek_id = \"p\"\nstatic_current_version = 1\n[[static_keks]]\nversion = 1\nkey_file = \"k\"\nkey = \"AAAA\"\n";
        assert!(
            parse(both).unwrap_err().contains("base64")
                || parse(both).unwrap_err().contains("exactly one")
        );
        let short = "provider = \"static\"\nstatic_kek_id = \"p\"\nstatic_current_version = 1\n[[static_keks]]\nversion = 1\nkey = \"AAAA\"\n";
        let err = parse(short).unwrap_err();
        assert!(err.contains("32 bytes"), "{err}");
        assert!(!err.contains("AAAA"), "the key must not be echoed: {err}");
    }

    #[test]
    fn static_inline_key_builds_a_provider_and_never_prints() {
        let key = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [7u8; 32]);
        let text = format!(
            "provider = \"static\"\nstatic_kek_id = \"prod\"\nstatic_current_version = 1\n[[static_keks]]\nversion = 1\nkey = \"{key}\"\n"
        );
        let s = parse(&text).unwrap();
        assert!(!format!("{s:?}").contains(&key));
        let provider = s.build_provider().unwrap();
        assert_eq!(provider.kind(), "static");
    }
}
