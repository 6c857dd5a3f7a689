//! `[invitations]`: upload invitations' lifetimes and limits.
//!
//! ```toml
//! [invitations]
//! default_ttl = "72h"   # lifetime when the issuer gives none (1m to max_ttl)
//! max_ttl = "30d"       # longest lifetime an issuer may ask for (1m to 90d)
//! max_files = 1000      # most files one invitation may allow (1 to 100000)
//! ```
//!
//! An invitation's byte limit is bounded by `uploads.max_bytes_per_principal`: the
//! invitation is the owner of its uploads, and that quota is per owner.

use std::time::Duration;

use serde::Deserialize;

use crate::config::units::parse_duration;

/// The `[invitations]` table as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInviteConfig {
    /// Lifetime when the issuer gives none.
    pub default_ttl: Option<String>,
    /// Longest lifetime.
    pub max_ttl: Option<String>,
    /// Most files one invitation may allow.
    pub max_files: Option<u64>,
}

/// The validated `[invitations]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InviteSettings {
    /// Lifetime when the issuer gives none (default 72 h).
    pub default_ttl: Duration,
    /// Longest lifetime an issuer may ask for (default 30 days).
    pub max_ttl: Duration,
    /// Most files one invitation may allow (default 1000).
    pub max_files: u64,
}

impl Default for InviteSettings {
    fn default() -> Self {
        Self {
            default_ttl: Duration::from_secs(72 * 3600),
            max_ttl: Duration::from_secs(30 * 86_400),
            max_files: 1000,
        }
    }
}

/// An `[invitations]` problem, naming the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InviteConfigError {
    /// Dotted key.
    pub key: &'static str,
    /// What is wrong.
    pub message: String,
}

const MIN_TTL: u64 = 60;
const MAX_MAX_TTL: u64 = 90 * 86_400;

impl InviteSettings {
    /// Validates the raw table.
    pub fn from_raw(raw: &RawInviteConfig) -> Result<Self, InviteConfigError> {
        let d = Self::default();
        let max_ttl = seconds("invitations.max_ttl", raw.max_ttl.as_deref(), d.max_ttl)?;
        if max_ttl.as_secs() < MIN_TTL || max_ttl.as_secs() > MAX_MAX_TTL {
            return Err(InviteConfigError {
                key: "invitations.max_ttl",
                message: format!("must be from {MIN_TTL}s to {MAX_MAX_TTL}s (90 days)"),
            });
        }
        let default_ttl = seconds(
            "invitations.default_ttl",
            raw.default_ttl.as_deref(),
            d.default_ttl.min(max_ttl),
        )?;
        if default_ttl.as_secs() < MIN_TTL || default_ttl > max_ttl {
            return Err(InviteConfigError {
                key: "invitations.default_ttl",
                message: format!("must be from {MIN_TTL}s to invitations.max_ttl"),
            });
        }
        let max_files = raw.max_files.unwrap_or(d.max_files);
        if !(1..=100_000).contains(&max_files) {
            return Err(InviteConfigError {
                key: "invitations.max_files",
                message: "must be from 1 to 100000".into(),
            });
        }
        Ok(Self {
            default_ttl,
            max_ttl,
            max_files,
        })
    }
}

fn seconds(
    key: &'static str,
    value: Option<&str>,
    default: Duration,
) -> Result<Duration, InviteConfigError> {
    let Some(v) = value else {
        return Ok(default);
    };
    let d = parse_duration(v).map_err(|message| InviteConfigError { key, message })?;
    if d.subsec_nanos() != 0 {
        return Err(InviteConfigError {
            key,
            message: "must be whole seconds".into(),
        });
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(
        default_ttl: Option<&str>,
        max_ttl: Option<&str>,
        files: Option<u64>,
    ) -> RawInviteConfig {
        RawInviteConfig {
            default_ttl: default_ttl.map(str::to_owned),
            max_ttl: max_ttl.map(str::to_owned),
            max_files: files,
        }
    }

    #[test]
    fn defaults_bounds_and_named_keys() {
        assert_eq!(
            InviteSettings::from_raw(&RawInviteConfig::default()),
            Ok(InviteSettings::default())
        );
        // A max_ttl below the default default brings the default down with it.
        let s = InviteSettings::from_raw(&raw(None, Some("1h"), None)).unwrap();
        assert_eq!(s.default_ttl, Duration::from_secs(3600));
        for (r, key) in [
            (raw(Some("2h"), Some("1h"), None), "invitations.default_ttl"),
            (raw(Some("10s"), None, None), "invitations.default_ttl"),
            (raw(None, Some("91d"), None), "invitations.max_ttl"),
            (raw(None, Some("soon"), None), "invitations.max_ttl"),
            (raw(None, None, Some(0)), "invitations.max_files"),
            (raw(None, None, Some(100_001)), "invitations.max_files"),
        ] {
            assert_eq!(InviteSettings::from_raw(&r).unwrap_err().key, key);
        }
    }
}
