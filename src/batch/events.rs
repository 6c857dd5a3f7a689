//! Audit events of the batch service. Each names the batch id as its subject; members are
//! named by their index in the manifest and their upload id, never by name (the audit
//! trail is shipped to SIEMs; logical names stay in the encrypted manifest and report).

use serde::Serialize;

use crate::audit::{AuditEvent, Outcome};

macro_rules! batch_event {
    ($name:ident, $action:literal) => {
        impl AuditEvent for $name {
            const ACTION: &'static str = $action;
            fn subject(&self) -> Option<String> {
                Some(self.batch.clone())
            }
        }
    };
    ($name:ident, $action:literal, $outcome:expr) => {
        impl AuditEvent for $name {
            const ACTION: &'static str = $action;
            fn outcome(&self) -> Outcome {
                $outcome
            }
            fn subject(&self) -> Option<String> {
                Some(self.batch.clone())
            }
        }
    };
}

/// A batch was opened.
#[derive(Debug, Serialize)]
pub struct BatchOpened {
    /// The batch id.
    pub batch: String,
    /// SHA-256 of the manifest as given.
    pub manifest_sha256: String,
    /// SHA-256 of the provenance record, when one was given.
    pub provenance_sha256: Option<String>,
    /// Members listed.
    pub members: u64,
    /// Bytes listed.
    pub bytes: u64,
    /// The profile the manifest names.
    pub profile: Option<String>,
}
batch_event!(BatchOpened, "batch.opened");

/// An upload was admitted as a member.
#[derive(Debug, Serialize)]
pub struct MemberAdded {
    /// The batch id.
    pub batch: String,
    /// The member's index in the manifest.
    pub member_index: usize,
    /// The upload id.
    pub upload: String,
}
batch_event!(MemberAdded, "batch.member_added");

/// A batch was sealed: no member can be added; verification starts.
#[derive(Debug, Serialize)]
pub struct BatchSealed {
    /// The batch id.
    pub batch: String,
    /// Member uploads bound when sealed.
    pub uploads: u64,
}
batch_event!(BatchSealed, "batch.sealed");

/// Verification finished.
#[derive(Debug, Serialize)]
pub struct BatchVerdict {
    /// The batch id.
    pub batch: String,
    /// `released` or `quarantined`.
    pub verdict: &'static str,
    /// How many findings.
    pub findings: u64,
    /// SHA-256 of the report as served.
    pub report_sha256: String,
    /// Bytes read back and checked.
    pub bytes_checked: u64,
}
batch_event!(BatchVerdict, "batch.verdict");

/// The batch was quarantined by its verdict.
#[derive(Debug, Serialize)]
pub struct BatchQuarantined {
    /// The batch id.
    pub batch: String,
    /// The finding codes, deduplicated, in report order.
    pub codes: Vec<&'static str>,
}
batch_event!(BatchQuarantined, "batch.quarantined", Outcome::Failure);

/// A first release approval was recorded (four eyes): one more is needed.
#[derive(Debug, Serialize)]
pub struct ApprovalRecorded {
    /// The batch id.
    pub batch: String,
    /// The approver's reason.
    pub reason: String,
    /// Approvals so far.
    pub approvals: usize,
}
batch_event!(ApprovalRecorded, "batch.approval_recorded");

/// The batch was released (by its verdict, or by auditors from quarantine).
#[derive(Debug, Serialize)]
pub struct BatchReleased {
    /// The batch id.
    pub batch: String,
    /// `verdict` or `auditor`.
    pub by: &'static str,
    /// The reason (auditors), `None` for a clean verdict.
    pub reason: Option<String>,
    /// The principals who approved (auditors).
    pub approvers: Vec<String>,
    /// When it will be purged (Unix seconds).
    pub retain_until: u64,
}
batch_event!(BatchReleased, "batch.released");

/// The batch's members were shredded.
#[derive(Debug, Serialize)]
pub struct BatchPurged {
    /// The batch id.
    pub batch: String,
    /// The reason.
    pub reason: String,
    /// The state it was purged from.
    pub from: &'static str,
    /// Member uploads destroyed.
    pub uploads_destroyed: u64,
}
batch_event!(BatchPurged, "batch.purged");

/// An open batch was never sealed in time.
#[derive(Debug, Serialize)]
pub struct BatchExpired {
    /// The batch id.
    pub batch: String,
    /// Member uploads destroyed.
    pub uploads_destroyed: u64,
}
batch_event!(BatchExpired, "batch.expired");

/// A released batch reached the end of its retention; it is purged next.
#[derive(Debug, Serialize)]
pub struct RetentionExpired {
    /// The batch id.
    pub batch: String,
    /// The retention end (Unix seconds).
    pub retain_until: u64,
}
batch_event!(RetentionExpired, "batch.retention_expired");

/// A change of a batch's state is about to be made (`batch.change_requested`): the intent
/// entry, written before the record changes or any member is destroyed; the outcome entry
/// (`batch.sealed`, `batch.approval_recorded`/`batch.released`, `batch.purged`,
/// `batch.expired`) follows. When this entry cannot be written nothing changes.
#[derive(Debug, Serialize)]
pub struct ChangeRequested {
    /// The batch id.
    pub batch: String,
    /// `seal`, `release`, `purge` or `expire`.
    pub change: &'static str,
    /// The state the batch is in now.
    pub from: &'static str,
    /// The reason given (release, purge), if any.
    pub reason: Option<String>,
}
batch_event!(ChangeRequested, "batch.change_requested");
