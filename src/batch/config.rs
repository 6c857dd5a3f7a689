//! The `[batches]` section and the `[[profiles]]` tables: raw serde structs, validated once
//! into [`BatchSettings`] (see `docs/configuration.md` and `docs/batches.md`).
//!
//! ```toml
//! [batches]
//! four_eyes = false            # true: releasing a quarantined batch takes two auditors
//! open_ttl = "7days"           # an open batch not sealed by then expires (1m..=366days)
//! retention = "30days"         # a released batch is purged this long after release (1h..=10years)
//! sweep_interval = "30s"       # expiry, retention and interrupted seals are looked at this often (1s..=1h)
//! max_manifest_bytes = "1MiB"  # 1KiB..=64MiB
//! max_provenance_bytes = "64KiB"  # 1KiB..=16MiB
//! # max_request_bytes: default the two limits plus 4KiB; at least their sum
//! max_members = 10000          # 1..=10000 (the manifest format's ceiling)
//! ndjson_max_line_bytes = "16MiB"  # 1KiB..=256MiB
//!
//! [[profiles]]
//! name = "bulk-export"         # as a manifest's `profile` names it: [a-z0-9][a-z0-9._-]{0,63}
//! resources = ["Patient", "Observation"]   # FHIR resource types; ["*"]: any
//! purpose_of_use = ["TREAT", "HPAYMT"]     # provenance purpose-of-use codes; ["*"]: any
//! delivery = "signed_url"      # the only delivery today
//! link_ttl = "7days"           # at most links.max_ttl; default links.default_ttl
//! checksum = "sha256"          # the only checksum
//! encryption_at_rest = true    # the gateway always encrypts; false is refused
//! provenance_required = true
//! on_validation_failure = "quarantine"     # fail closed; nothing else is accepted
//! retention = "90days"         # default batches.retention
//! ```
//!
//! Errors name the key: `batches.open_ttl`, `profiles[0].name` (the name itself is wrong or
//! missing), `profiles[bulk-export].link_ttl` (once the table's name is known). Every
//! `[batches]` key can be overridden from the environment (`SALLYPORT_BATCHES__FOUR_EYES`);
//! `[[profiles]]`, an array, cannot. A profile key left out takes its default here;
//! `sallyport preflight` reads [`RawProfile::unset`] to insist each one is written.

use std::time::Duration;

use serde::Deserialize;

use super::profile::{Checksum, Delivery, OnValidationFailure, Profile};
use crate::batch::ndjson::NdjsonLimits;
use crate::config::units::{ByteSize, parse_duration};
use crate::links::config::LinksSettings;
use crate::manifest::{MAX_MEMBERS, ManifestLimits, ProfileName, PurposeOfUse, ResourceType};

/// What a request body may add around the two documents by default (`{"manifest": …,
/// "provenance": …}` and whitespace).
pub const REQUEST_ENVELOPE_BYTES: usize = 4 << 10;
/// Most `[[profiles]]` tables.
pub const MAX_PROFILES: usize = 256;
/// The list that means "any" in `resources` and `purpose_of_use`.
pub const ANY: &str = "*";

const MINUTE: u64 = 60;
const HOUR: u64 = 3600;
const DAY: u64 = 24 * HOUR;
const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;

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
    /// Largest `POST /v1/batches` body.
    pub max_request_bytes: Option<String>,
    /// Most members in one manifest.
    pub max_members: Option<usize>,
    /// Longest NDJSON line.
    pub ndjson_max_line_bytes: Option<String>,
}

/// One `[[profiles]]` table as written. Every key is optional to serde so that a missing one
/// is reported by name, and so that `sallyport preflight` can tell a written value from a
/// default ([`RawProfile::unset`]).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProfile {
    /// The profile's name (required).
    pub name: Option<String>,
    /// Allowed FHIR resource types, or `["*"]`.
    pub resources: Option<Vec<String>>,
    /// Allowed purpose-of-use codes, or `["*"]`.
    pub purpose_of_use: Option<Vec<String>>,
    /// `signed_url`.
    pub delivery: Option<String>,
    /// Lifetime of links to the batch's members.
    pub link_ttl: Option<String>,
    /// `sha256`.
    pub checksum: Option<String>,
    /// Must be `true`.
    pub encryption_at_rest: Option<bool>,
    /// A provenance record is required at open.
    pub provenance_required: Option<bool>,
    /// `quarantine`.
    pub on_validation_failure: Option<String>,
    /// How long a released batch is kept.
    pub retention: Option<String>,
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
    /// Largest `POST /v1/batches` body, refused with 413 before it is parsed; at least
    /// `limits.max_manifest_bytes + limits.max_provenance_bytes`.
    pub max_request_bytes: usize,
    /// NDJSON checker limits.
    pub ndjson: NdjsonLimits,
    /// The configured release profiles.
    pub profiles: Vec<Profile>,
}

/// A `[batches]` or `[[profiles]]` value that is not valid: the key and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("config key `{key}`: {message}")]
pub struct BatchConfigError {
    /// Dotted key path (`batches.open_ttl`, `profiles[bulk].link_ttl`).
    pub key: String,
    /// What is wrong and what would be right.
    pub message: String,
}

impl Default for BatchSettings {
    fn default() -> Self {
        let limits = ManifestLimits::default();
        Self {
            four_eyes: false,
            open_ttl: Duration::from_secs(7 * DAY),
            retention: Duration::from_secs(30 * DAY),
            sweep_interval: Duration::from_secs(30),
            max_request_bytes: limits.max_manifest_bytes
                + limits.max_provenance_bytes
                + REQUEST_ENVELOPE_BYTES,
            limits,
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

    /// Validates `[batches]` and the `[[profiles]]`; a profile's `link_ttl` defaults to
    /// `links.default_ttl` and may not exceed `links.max_ttl`.
    pub fn from_raw(
        raw: &RawBatchesConfig,
        profiles: &[RawProfile],
        links: &LinksSettings,
    ) -> Result<Self, BatchConfigError> {
        let d = Self::default();
        let open_ttl = bounded_duration(
            "batches.open_ttl",
            raw.open_ttl.as_deref(),
            d.open_ttl,
            (MINUTE, 366 * DAY),
            "1m to 366days",
        )?;
        let retention = retention("batches.retention", raw.retention.as_deref(), d.retention)?;
        let sweep_interval = bounded_duration(
            "batches.sweep_interval",
            raw.sweep_interval.as_deref(),
            d.sweep_interval,
            (1, HOUR),
            "1s to 1h",
        )?;
        let max_manifest_bytes = size(
            "batches.max_manifest_bytes",
            raw.max_manifest_bytes.as_deref(),
            d.limits.max_manifest_bytes,
            (KIB, 64 * MIB),
            "1KiB..=64MiB",
        )?;
        let max_provenance_bytes = size(
            "batches.max_provenance_bytes",
            raw.max_provenance_bytes.as_deref(),
            d.limits.max_provenance_bytes,
            (KIB, 16 * MIB),
            "1KiB..=16MiB",
        )?;
        let documents = max_manifest_bytes + max_provenance_bytes;
        let max_request_bytes = match raw.max_request_bytes.as_deref() {
            None => documents + REQUEST_ENVELOPE_BYTES,
            Some(v) => {
                let n = v
                    .parse::<ByteSize>()
                    .map_err(|m| err("batches.max_request_bytes", m))?;
                let n = usize::try_from(n.bytes()).unwrap_or(usize::MAX);
                if n < documents || n > documents + 64 * MIB as usize {
                    return Err(err(
                        "batches.max_request_bytes",
                        format!(
                            "must be at least max_manifest_bytes + max_provenance_bytes ({}) \
                             and at most 64MiB more",
                            ByteSize(documents as u64)
                        ),
                    ));
                }
                n
            }
        };
        let max_members = raw.max_members.unwrap_or(MAX_MEMBERS);
        if !(1..=MAX_MEMBERS).contains(&max_members) {
            return Err(err(
                "batches.max_members",
                format!("{max_members} is not in 1..={MAX_MEMBERS}"),
            ));
        }
        let max_line_bytes = size(
            "batches.ndjson_max_line_bytes",
            raw.ndjson_max_line_bytes.as_deref(),
            d.ndjson.max_line_bytes,
            (KIB, 256 * MIB),
            "1KiB..=256MiB",
        )?;
        if profiles.len() > MAX_PROFILES {
            return Err(err(
                "profiles",
                format!("at most {MAX_PROFILES} profiles can be configured"),
            ));
        }
        let mut out: Vec<Profile> = Vec::with_capacity(profiles.len());
        for (i, p) in profiles.iter().enumerate() {
            let profile = profile(i, p, links)?;
            if out.iter().any(|o| o.name == profile.name) {
                return Err(err(
                    format!("profiles[{i}].name"),
                    format!("profile {:?} is configured twice", profile.name),
                ));
            }
            out.push(profile);
        }
        Ok(Self {
            four_eyes: raw.four_eyes.unwrap_or(d.four_eyes),
            open_ttl,
            retention,
            sweep_interval,
            limits: ManifestLimits {
                max_manifest_bytes,
                max_members,
                max_provenance_bytes,
            },
            max_request_bytes,
            ndjson: NdjsonLimits {
                max_line_bytes,
                ..d.ndjson
            },
            profiles: out,
        })
    }
}

impl RawProfile {
    /// The keys this table leaves to their defaults, in the order the docs list them.
    /// `name` is never among them (it has no default).
    pub fn unset(&self) -> Vec<&'static str> {
        [
            ("resources", self.resources.is_none()),
            ("purpose_of_use", self.purpose_of_use.is_none()),
            ("delivery", self.delivery.is_none()),
            ("link_ttl", self.link_ttl.is_none()),
            ("checksum", self.checksum.is_none()),
            ("encryption_at_rest", self.encryption_at_rest.is_none()),
            ("provenance_required", self.provenance_required.is_none()),
            (
                "on_validation_failure",
                self.on_validation_failure.is_none(),
            ),
            ("retention", self.retention.is_none()),
        ]
        .into_iter()
        .filter_map(|(key, unset)| unset.then_some(key))
        .collect()
    }
}

/// One profile: its name first (so later errors can name the table by it), then each key.
fn profile(i: usize, raw: &RawProfile, links: &LinksSettings) -> Result<Profile, BatchConfigError> {
    let name = raw
        .name
        .as_deref()
        .ok_or_else(|| err(format!("profiles[{i}].name"), "every profile needs a name"))?;
    name.parse::<ProfileName>().map_err(|_| {
        err(
            format!("profiles[{i}].name"),
            format!("{name:?} is not a profile name: 1-64 of a-z, 0-9, '.', '_', '-', starting with a letter or digit"),
        )
    })?;
    let key = |k: &str| format!("profiles[{name}].{k}");
    let mut p = Profile::named(name);
    p.link_ttl = links.default_ttl;

    p.resources = list(raw.resources.as_deref(), |r| {
        r.parse::<ResourceType>().is_ok()
    })
    .map_err(|m| {
        err(
            key("resources"),
            format!("{m}: FHIR resource type names ([A-Z][A-Za-z]{{0,63}}, e.g. \"Patient\"), or [\"*\"] for any"),
        )
    })?;
    p.purpose_of_use = list(raw.purpose_of_use.as_deref(), |c| {
        PurposeOfUse::is_code(c)
    })
    .map_err(|m| {
        err(
            key("purpose_of_use"),
            format!("{m}: purpose-of-use codes (1-64 of A-Z, a-z, 0-9, '.', '_', '-', e.g. \"TREAT\"), or [\"*\"] for any"),
        )
    })?;
    if let Some(v) = raw.delivery.as_deref() {
        p.delivery = one_of(&key("delivery"), v, Delivery::ALL, |d| d.as_str())?;
    }
    if let Some(v) = raw.link_ttl.as_deref() {
        let ttl = parse_duration(v).map_err(|m| err(key("link_ttl"), m))?;
        if ttl < Duration::from_secs(1) || ttl > links.max_ttl {
            return Err(err(
                key("link_ttl"),
                format!(
                    "must be from 1s to links.max_ttl ({})",
                    crate::config::units::format_duration(links.max_ttl)
                ),
            ));
        }
        p.link_ttl = ttl;
    }
    if let Some(v) = raw.checksum.as_deref() {
        p.checksum = one_of(&key("checksum"), v, Checksum::ALL, |c| c.as_str())?;
    }
    if raw.encryption_at_rest == Some(false) {
        return Err(err(
            key("encryption_at_rest"),
            "cannot be false: the gateway encrypts every stored byte (proto/at-rest-v1.md) and \
             has no unencrypted mode; write true or leave it out",
        ));
    }
    p.provenance_required = raw.provenance_required.unwrap_or(false);
    if let Some(v) = raw.on_validation_failure.as_deref() {
        p.on_validation_failure = one_of(
            &key("on_validation_failure"),
            v,
            OnValidationFailure::ALL,
            |o| o.as_str(),
        )
        .map_err(|e| BatchConfigError {
            message: format!(
                "{}; a batch with any finding is quarantined (fail closed), never released",
                e.message
            ),
            ..e
        })?;
    }
    if let Some(v) = raw.retention.as_deref() {
        p.retention = Some(retention(&key("retention"), Some(v), Duration::ZERO)?);
    }
    Ok(p)
}

/// A `resources` or `purpose_of_use` list: absent or `["*"]` is `None` (any); otherwise one
/// or more distinct entries, each passing `valid`. The error is the part before the hint.
fn list(
    raw: Option<&[String]>,
    valid: impl Fn(&str) -> bool,
) -> Result<Option<Vec<String>>, String> {
    let Some(items) = raw else {
        return Ok(None);
    };
    if items.len() == 1 && items[0] == ANY {
        return Ok(None);
    }
    if items.is_empty() {
        return Err("is empty, so nothing would be allowed; list".to_owned());
    }
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for item in items {
        if item == ANY {
            return Err("\"*\" must stand alone; list".to_owned());
        }
        if !valid(item) {
            return Err(format!("{item:?} is not valid; list"));
        }
        if out.contains(item) {
            return Err(format!("{item:?} appears twice; list"));
        }
        out.push(item.clone());
    }
    Ok(Some(out))
}

fn one_of<T: Copy>(
    key: &str,
    value: &str,
    all: &[T],
    name: impl Fn(T) -> &'static str,
) -> Result<T, BatchConfigError> {
    all.iter()
        .copied()
        .find(|t| name(*t) == value)
        .ok_or_else(|| {
            let names: Vec<String> = all.iter().map(|t| format!("{:?}", name(*t))).collect();
            err(
                key,
                format!(
                    "{value:?} is not supported (supported: {})",
                    names.join(", ")
                ),
            )
        })
}

fn retention(key: &str, v: Option<&str>, default: Duration) -> Result<Duration, BatchConfigError> {
    bounded_duration(key, v, default, (HOUR, 10 * 366 * DAY), "1h to 10 years")
}

fn bounded_duration(
    key: &str,
    v: Option<&str>,
    default: Duration,
    (min, max): (u64, u64),
    range: &str,
) -> Result<Duration, BatchConfigError> {
    let Some(v) = v else {
        return Ok(default);
    };
    let d = parse_duration(v).map_err(|m| err(key, m))?;
    if d < Duration::from_secs(min) || d > Duration::from_secs(max) {
        return Err(err(key, format!("must be from {range}")));
    }
    Ok(d)
}

fn size(
    key: &str,
    v: Option<&str>,
    default: usize,
    (min, max): (u64, u64),
    range: &str,
) -> Result<usize, BatchConfigError> {
    let Some(v) = v else {
        return Ok(default);
    };
    let n = v.parse::<ByteSize>().map_err(|m| err(key, m))?.bytes();
    if !(min..=max).contains(&n) {
        return Err(err(key, format!("must be in {range}")));
    }
    // In range, so at most 256MiB: fits any usize this gateway builds for.
    usize::try_from(n).map_err(|_| err(key, format!("must be in {range}")))
}

fn err(key: impl Into<String>, message: impl Into<String>) -> BatchConfigError {
    BatchConfigError {
        key: key.into(),
        message: message.into(),
    }
}
