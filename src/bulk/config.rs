//! `[bulk]`: the FHIR Bulk Data flow's timings.
//!
//! ```toml
//! [bulk]
//! link_ttl = "5m"          # lifetime of the signed file links in a manifest (1s to 1h)
//! job_ttl = "1h"           # an export job is forgotten this long after kick-off (1m to 7d)
//! retry_after = "5s"       # what Retry-After tells a polling client (1s to 1h)
//! requires_access_token = false  # true: file URLs need the client's access token
//! ```

use std::time::Duration;

use serde::Deserialize;

use crate::config::units::parse_duration;

/// The `[bulk]` table as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBulkConfig {
    /// Lifetime of a manifest's signed file links.
    pub link_ttl: Option<String>,
    /// How long a job lives after kick-off.
    pub job_ttl: Option<String>,
    /// The polling interval a client is told.
    pub retry_after: Option<String>,
    /// Whether the manifest's file URLs need the client's access token.
    pub requires_access_token: Option<bool>,
}

/// The validated `[bulk]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkSettings {
    /// Lifetime of a manifest's signed file links (default 5 min).
    pub link_ttl: Duration,
    /// How long a job lives after kick-off (default 1 h).
    pub job_ttl: Duration,
    /// The polling interval (`Retry-After`; polling sooner is 429). Default 5 s.
    pub retry_after: Duration,
    /// `true`: the manifest says `requiresAccessToken: true` and its file URLs are
    /// `/fhir/bulk/{job}/files/{artifact}`, served only with the kicking-off client's access
    /// token; `false` (default): they are signed links that live `link_ttl`.
    pub requires_access_token: bool,
}

impl Default for BulkSettings {
    fn default() -> Self {
        Self {
            link_ttl: Duration::from_secs(300),
            job_ttl: Duration::from_secs(3600),
            retry_after: Duration::from_secs(5),
            requires_access_token: false,
        }
    }
}

/// A `[bulk]` problem, naming the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkConfigError {
    /// Dotted key.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl BulkSettings {
    /// Validates the raw table.
    pub fn from_raw(raw: &RawBulkConfig) -> Result<Self, BulkConfigError> {
        let d = Self::default();
        Ok(Self {
            link_ttl: within(
                "bulk.link_ttl",
                raw.link_ttl.as_deref(),
                d.link_ttl,
                1,
                3600,
            )?,
            job_ttl: within(
                "bulk.job_ttl",
                raw.job_ttl.as_deref(),
                d.job_ttl,
                60,
                7 * 86_400,
            )?,
            retry_after: within(
                "bulk.retry_after",
                raw.retry_after.as_deref(),
                d.retry_after,
                1,
                3600,
            )?,
            requires_access_token: raw.requires_access_token.unwrap_or(d.requires_access_token),
        })
    }
}

fn within(
    key: &str,
    value: Option<&str>,
    default: Duration,
    min_secs: u64,
    max_secs: u64,
) -> Result<Duration, BulkConfigError> {
    let err = |message: String| BulkConfigError {
        key: key.to_owned(),
        message,
    };
    let d = match value {
        None => return Ok(default),
        Some(v) => parse_duration(v).map_err(err)?,
    };
    if d.subsec_nanos() != 0 || d.as_secs() < min_secs || d.as_secs() > max_secs {
        return Err(err(format!(
            "must be whole seconds from {min_secs}s to {max_secs}s"
        )));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_bounds() {
        assert_eq!(
            BulkSettings::from_raw(&RawBulkConfig::default()),
            Ok(BulkSettings::default())
        );
        let raw = RawBulkConfig {
            link_ttl: Some("2h".into()),
            ..Default::default()
        };
        assert_eq!(
            BulkSettings::from_raw(&raw).unwrap_err().key,
            "bulk.link_ttl"
        );
        let raw = RawBulkConfig {
            retry_after: Some("1500ms".into()),
            ..Default::default()
        };
        assert_eq!(
            BulkSettings::from_raw(&raw).unwrap_err().key,
            "bulk.retry_after"
        );
        let raw = RawBulkConfig {
            job_ttl: Some("10m".into()),
            retry_after: Some("1s".into()),
            link_ttl: Some("30s".into()),
            requires_access_token: Some(true),
        };
        let s = BulkSettings::from_raw(&raw).unwrap();
        assert_eq!(s.job_ttl, Duration::from_secs(600));
        assert_eq!(s.retry_after, Duration::from_secs(1));
        assert!(s.requires_access_token);
        assert!(!BulkSettings::default().requires_access_token);
    }
}
