//! The stored shape of a batch: its record (state, documents, verdict, decisions), the
//! member bindings (which upload is which member) and the per-member facts a seal in
//! progress keeps. Versioned JSON, owned by this module (`docs/architecture.md`: records
//! belong to the module that writes them).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::batch::ndjson::NdjsonReport;
use crate::ids::{IdError, OpaqueId};
use crate::tus::record::UploadId;

/// The record encoding version.
pub const BATCH_RECORD_VERSION: u32 = 1;

/// A batch's id: a server-generated [`OpaqueId`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BatchId(OpaqueId);

impl BatchId {
    /// A fresh random id.
    pub fn random() -> Self {
        Self(OpaqueId::random())
    }
}

impl FromStr for BatchId {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(Self)
    }
}

impl fmt::Display for BatchId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for BatchId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BatchId({})", self.0)
    }
}

/// Where a batch stands (`proto/batches-v1.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BatchState {
    /// Members may be added.
    Open,
    /// Sealed; verification has not finished.
    Sealing,
    /// Verified with no finding, or released by auditors.
    Released,
    /// Verified with findings: nothing of it may leave.
    Quarantined,
    /// Members shredded; the record, documents, report and audit trail stay.
    Purged,
    /// Never sealed in time; its member uploads are gone.
    Expired,
}

impl BatchState {
    /// The name used in the API and the audit trail.
    pub fn as_str(self) -> &'static str {
        match self {
            BatchState::Open => "open",
            BatchState::Sealing => "sealing",
            BatchState::Released => "released",
            BatchState::Quarantined => "quarantined",
            BatchState::Purged => "purged",
            BatchState::Expired => "expired",
        }
    }

    /// Parses an API state filter.
    pub fn parse(s: &str) -> Option<Self> {
        [
            BatchState::Open,
            BatchState::Sealing,
            BatchState::Released,
            BatchState::Quarantined,
            BatchState::Purged,
            BatchState::Expired,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }
}

/// A stored document (manifest, provenance, report): an at-rest object and its digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Document {
    /// The encrypted object holding the exact bytes.
    pub object: OpaqueId,
    /// SHA-256 of the bytes, lowercase hex.
    pub sha256: String,
    /// Length in bytes.
    pub len: u64,
}

/// Who decided what, why and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// The principal (or `system`).
    pub by: String,
    /// Why (as given; an operator's text, never shown in logs).
    pub reason: String,
    /// Unix seconds.
    pub at: u64,
}

/// The verdict, once verification finished.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerdictSummary {
    /// Unix seconds.
    pub at: u64,
    /// No finding.
    pub passed: bool,
    /// How many findings.
    pub findings: u64,
    /// The report document.
    pub report: Document,
}

/// How far a seal has come.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// Members whose facts are stored.
    pub members_checked: u64,
    /// Member uploads to check.
    pub members_total: u64,
    /// Bytes read so far (finished members, plus the one in progress when last saved).
    pub bytes_checked: u64,
    /// Bytes to read.
    pub bytes_total: u64,
}

/// A batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchRecord {
    /// Encoding version.
    pub v: u32,
    /// Its id.
    pub id: BatchId,
    /// The principal that opened it.
    pub owner: String,
    /// Where it stands.
    pub state: BatchState,
    /// The profile the manifest names.
    pub profile: Option<String>,
    /// Unix seconds.
    pub created_at: u64,
    /// When an open batch expires (Unix seconds).
    pub expires_at: Option<u64>,
    /// The manifest as given.
    pub manifest: Document,
    /// The provenance record as given.
    pub provenance: Option<Document>,
    /// Members the manifest lists.
    pub listed: u64,
    /// Bytes the manifest lists.
    pub listed_bytes: u64,
    /// Who sealed it and when.
    pub sealed: Option<Decision>,
    /// Verification progress (while sealing, and kept after).
    pub progress: Option<Progress>,
    /// The verdict.
    pub verdict: Option<VerdictSummary>,
    /// Release approvals recorded so far (four eyes).
    pub approvals: Vec<Decision>,
    /// Who released it (an auditor, or `system` for a clean verdict).
    pub released: Option<Decision>,
    /// When a released batch is purged (Unix seconds).
    pub retain_until: Option<u64>,
    /// Who purged it.
    pub purged: Option<Decision>,
    /// When the members of a purged or expired batch were all destroyed (Unix seconds);
    /// `None` while some may remain (the sweeper finishes an interrupted purge).
    pub shredded_at: Option<u64>,
}

/// Why stored bytes are not a batch record (never echoes them).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchRecordError {
    /// Not the expected JSON.
    #[error("the batch record does not decode")]
    Malformed,
    /// Another encoding version.
    #[error("unsupported batch record version {0}")]
    Version(u32),
}

impl BatchRecord {
    /// The JSON encoding.
    pub fn encode(&self) -> Vec<u8> {
        // Plain data with string keys: serialising into a Vec cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Decodes a stored record.
    pub fn decode(bytes: &[u8]) -> Result<Self, BatchRecordError> {
        let r: Self = serde_json::from_slice(bytes).map_err(|_| BatchRecordError::Malformed)?;
        if r.v != BATCH_RECORD_VERSION {
            return Err(BatchRecordError::Version(r.v));
        }
        Ok(r)
    }
}

/// Which upload is which member of which batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberBinding {
    /// The batch.
    pub batch: BatchId,
    /// The logical name (as the manifest lists it).
    pub member: String,
    /// The upload.
    pub upload: UploadId,
    /// Unix seconds.
    pub at: u64,
}

/// What a seal found about one member upload, stored as soon as it is known so that a
/// seal interrupted by a restart resumes with the next member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberFacts {
    /// The logical name.
    pub member: String,
    /// The upload.
    pub upload: UploadId,
    /// The upload still existed when checked.
    pub present: bool,
    /// All bytes arrived.
    pub complete: bool,
    /// Bytes received.
    pub size: u64,
    /// The upload's recorded whole-file SHA-256 (hex).
    pub upload_sha256: Option<String>,
    /// SHA-256 over the decrypted stored bytes (hex); `None` when they could not be read
    /// back whole (at-rest authentication failed, object missing).
    pub stream_sha256: Option<String>,
    /// The stored bytes could not be read back (authentication failure, missing object).
    pub unreadable: bool,
    /// The NDJSON checker's report, for NDJSON members read whole.
    pub ndjson: Option<NdjsonReport>,
}
