//! The Bulk flow's audit events. Each names the SMART client id and, once the job is bound
//! to a batch, the batch and its purpose of use (from the provenance record); the subject
//! is the job (or the publication). Never a link, a token or a file name.

use serde::Serialize;

use crate::audit::{AuditEvent, Outcome};

/// A publisher bound a batch to a client and level (`POST /v1/exports`).
#[derive(Debug, Serialize)]
pub struct ExportPublished {
    /// The publication id (subject).
    pub publication: String,
    /// The batch.
    pub batch: String,
    /// The SMART client.
    pub client_id: String,
    /// `system`, `patient` or `group/{id}`.
    pub level: String,
    /// The batch's state when published.
    pub batch_state: &'static str,
    /// When it stops binding new jobs (Unix seconds).
    pub expires_at: u64,
    /// The purpose of use of the batch's provenance record.
    pub purpose_of_use: Option<String>,
}

impl AuditEvent for ExportPublished {
    const ACTION: &'static str = "bulk.export_published";
    fn subject(&self) -> Option<String> {
        Some(self.publication.clone())
    }
}

/// A kick-off was accepted (or refused, with its reason).
#[derive(Debug, Serialize)]
pub struct Kickoff {
    /// The job id (accepted only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    /// The SMART client.
    pub client_id: String,
    /// `system`, `patient` or `group/{id}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
    /// `_type`, if given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub types: Option<Vec<String>>,
    /// `_since`, if given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// Why it was refused (a stable reason code), when it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<&'static str>,
}

impl AuditEvent for Kickoff {
    const ACTION: &'static str = "bulk.kickoff";
    fn outcome(&self) -> Outcome {
        if self.refused.is_some() {
            Outcome::Denied
        } else {
            Outcome::Success
        }
    }
    fn subject(&self) -> Option<String> {
        self.job.clone()
    }
}

/// A status poll and what it answered.
#[derive(Debug, Clone, Serialize)]
pub struct StatusPolled {
    /// The job (subject).
    pub job: String,
    /// The SMART client.
    pub client_id: String,
    /// `in_progress`, `complete`, `failed` or `too_fast`.
    pub status: &'static str,
    /// The batch, once bound.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch: Option<String>,
    /// Its purpose of use, once bound.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purpose_of_use: Option<String>,
    /// For `complete`: the grant behind the manifest's links (its downloads are
    /// `download.served` entries of this grant).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grant: Option<String>,
    /// For `complete`: the files listed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files: Option<u64>,
    /// For `failed`: the batch's state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_state: Option<&'static str>,
}

impl AuditEvent for StatusPolled {
    const ACTION: &'static str = "bulk.status";
    fn outcome(&self) -> Outcome {
        match self.status {
            "failed" => Outcome::Failure,
            "too_fast" => Outcome::Denied,
            _ => Outcome::Success,
        }
    }
    fn subject(&self) -> Option<String> {
        Some(self.job.clone())
    }
}

/// A job was cancelled (`DELETE` on its status URL).
#[derive(Debug, Serialize)]
pub struct Cancelled {
    /// The job (subject).
    pub job: String,
    /// The SMART client.
    pub client_id: String,
    /// The batch, if the job was bound.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch: Option<String>,
    /// Its purpose of use, if bound.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purpose_of_use: Option<String>,
}

impl AuditEvent for Cancelled {
    const ACTION: &'static str = "bulk.cancelled";
    fn subject(&self) -> Option<String> {
        Some(self.job.clone())
    }
}

/// A publisher built an outbound batch (`POST /v1/exports/batches`): written once the
/// batch is open and before it is filled, naming what it is built from.
#[derive(Debug, Serialize)]
pub struct BatchBuilt {
    /// The batch (subject).
    pub batch: String,
    /// `artifacts` or `batch`.
    pub source: &'static str,
    /// The artifacts its members are copied from, in member order.
    pub artifacts: Vec<String>,
    /// The released inbound batch it was built from, when it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_batch: Option<String>,
    /// Members.
    pub members: u64,
    /// Bytes of all members.
    pub bytes: u64,
    /// SHA-256 of the generated manifest (the batch's manifest document).
    pub manifest_sha256: String,
}

impl AuditEvent for BatchBuilt {
    const ACTION: &'static str = "bulk.batch_built";
    fn subject(&self) -> Option<String> {
        Some(self.batch.clone())
    }
}
