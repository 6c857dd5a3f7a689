//! The invitation record, as stored in the state store (namespace `invitations`, JSON).

use serde::{Deserialize, Serialize};

use crate::state::Namespace;

/// Invitation records by id.
pub const INVITATIONS: Namespace = Namespace::new("invitations");

/// The record's encoding version.
pub const VERSION: u32 = 1;

/// One upload invitation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InvitationRecord {
    /// Encoding version.
    pub v: u32,
    /// Its random id (also in its token).
    pub id: String,
    /// The partner organisation it was issued to.
    pub partner: String,
    /// The principal that issued it.
    pub issuer: String,
    /// The batch its uploads go into (issued with a manifest), if any.
    pub batch: Option<String>,
    /// Most uploads it may create.
    pub max_files: u64,
    /// Most bytes its uploads may hold.
    pub max_bytes: u64,
    /// Unix seconds.
    pub created_at: u64,
    /// Unix seconds; its token stops working then.
    pub expires_at: u64,
    /// The signing key id (which link key's derivation signed its token).
    pub key_id: String,
    /// Who revoked it, when, and why.
    pub revoked: Option<Revocation>,
}

/// A revocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Revocation {
    /// Unix seconds.
    pub at: u64,
    /// The principal.
    pub by: String,
    /// The reason given.
    pub reason: String,
}

impl InvitationRecord {
    /// `active`, `revoked` or `expired` at `now`.
    pub fn state(&self, now: u64) -> &'static str {
        if self.revoked.is_some() {
            "revoked"
        } else if now >= self.expires_at {
            "expired"
        } else {
            "active"
        }
    }
}
