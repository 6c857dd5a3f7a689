//! The audit events of upload invitations. Details never carry the token (a bearer
//! credential); the invitation is named by its id.

use serde::Serialize;

use crate::audit::{AuditEvent, Outcome};

/// An invitation was issued (`invitation.issued`).
#[derive(Debug, Serialize)]
pub struct InvitationIssued {
    /// The invitation id.
    pub invitation: String,
    /// The partner it was issued to.
    pub partner: String,
    /// The batch its uploads go into, if any.
    pub batch: Option<String>,
    /// Most uploads.
    pub max_files: u64,
    /// Most bytes held.
    pub max_bytes: u64,
    /// Expiry (Unix seconds).
    pub expires_at: u64,
    /// The signing key id.
    pub key_id: String,
}

impl AuditEvent for InvitationIssued {
    const ACTION: &'static str = "invitation.issued";
    fn subject(&self) -> Option<String> {
        Some(self.invitation.clone())
    }
}

/// An invitation was revoked (`invitation.revoked`).
#[derive(Debug, Serialize)]
pub struct InvitationRevoked {
    /// The invitation id.
    pub invitation: String,
    /// The reason given.
    pub reason: String,
}

impl AuditEvent for InvitationRevoked {
    const ACTION: &'static str = "invitation.revoked";
    fn subject(&self) -> Option<String> {
        Some(self.invitation.clone())
    }
}

/// A request presented an invitation that no longer admits it (`invitation.refused`):
/// revoked, expired, or unknown to this gateway's store.
#[derive(Debug, Serialize)]
pub struct InvitationRefused {
    /// The invitation id (from the verified token).
    pub invitation: String,
    /// `revoked`, `expired` or `unknown`.
    pub reason: &'static str,
}

impl AuditEvent for InvitationRefused {
    const ACTION: &'static str = "invitation.refused";
    fn outcome(&self) -> Outcome {
        Outcome::Denied
    }
    fn subject(&self) -> Option<String> {
        Some(self.invitation.clone())
    }
}
