//! The `[batches]` section and the `[[profiles]]` tables: raw serde structs, validated once
//! into [`BatchSettings`] (see `docs/configuration.md` and `docs/batches.md`).
//!
//! ```toml
//! [batches]
//! four_eyes = false            # true: releasing a quarantined batch takes two auditors
//! open_ttl = "7days"           # an open batch not sealed by then expires
//! retention = "30days"         # a released batch is purged this long after release
//! sweep_interval = "30s"       # expiry, retention and interrupted seals are looked at this often
//! max_manifest_bytes = "1MiB"
//! max_provenance_bytes = "64KiB"
//! max_members = 10000
//! ndjson_max_line_bytes = "16MiB"
//! ```

use std::time::Duration;

use serde::Deserialize;

use super::profile::Profile;
use crate::batch::ndjson::NdjsonLimits;
use crate::manifest::ManifestLimits;

/// The `[batches]` table as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBatchesConfig {
    /// Two different auditors must approve a release.
    pub four_eyes: Option<bool>,
    /// How long a batch may stay open.
    pub open_ttl: Option<String>,
    /// How long a released batch is kept.
    pub retention: Option<String>,
    /// How often the batch sweeper runs.
    pub sweep_interval: Option<String>,
    /// Largest manifest.
    pub max_manifest_bytes: Option<String>,
    /// Largest provenance record.
    pub max_provenance_bytes: Option<String>,
    /// Most members in one manifest.
    pub max_members: Option<usize>,
    /// Longest NDJSON line.
    pub ndjson_max_line_bytes: Option<String>,
}

/// The validated batch settings.
#[derive(Debug, Clone)]
pub struct BatchSettings {
    /// Two different auditors must approve a release.
    pub four_eyes: bool,
    /// How long a batch may stay open before it expires.
    pub open_ttl: Duration,
    /// How long a released batch is kept when its profile names no retention.
    pub retention: Duration,
    /// How often the sweeper looks for expired batches, retention ends and interrupted seals.
    pub sweep_interval: Duration,
    /// Manifest and provenance limits.
    pub limits: ManifestLimits,
    /// NDJSON checker limits.
    pub ndjson: NdjsonLimits,
    /// The configured release profiles.
    pub profiles: Vec<Profile>,
}

impl Default for BatchSettings {
    fn default() -> Self {
        Self {
            four_eyes: false,
            open_ttl: Duration::from_secs(7 * 86_400),
            retention: Duration::from_secs(30 * 86_400),
            sweep_interval: Duration::from_secs(30),
            limits: ManifestLimits::default(),
            ndjson: NdjsonLimits::default(),
            profiles: Vec::new(),
        }
    }
}

impl BatchSettings {
    /// The profile named `name`, if configured.
    pub fn profile(&self, name: &str) -> Option<&Profile> {
        self.profiles.iter().find(|p| p.name == name)
    }
}
