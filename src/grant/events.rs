//! The audit events of grants: a link issued, a revocation requested (the intent, written
//! before anything is revoked), grants revoked (the outcome).
//!
//! Details never carry the link's signature (a bearer credential) or the response file name
//! (possibly PHI). Revocation reasons are operator text restricted to a narrow alphabet
//! ([`super::Reason`]).

use serde::Serialize;

use crate::audit::AuditEvent;

/// A link was issued (`link.issued`).
#[derive(Debug, Serialize)]
pub struct LinkIssued {
    /// The new grant.
    pub grant: String,
    /// The partner it was issued to.
    pub partner: String,
    /// The artifacts it covers.
    pub artifacts: Vec<String>,
    /// The batch, if any.
    pub batch: Option<String>,
    /// The signing key id.
    pub key_id: String,
    /// `GET`, `HEAD` or `GET,HEAD`.
    pub methods: &'static str,
    /// Validity start (Unix seconds).
    pub not_before: u64,
    /// Expiry (Unix seconds, exclusive).
    pub expires: u64,
    /// Completed-download limit.
    pub max_downloads: Option<u32>,
    /// Byte limit.
    pub max_bytes: Option<u64>,
    /// The client-network binding, if any.
    pub client_net: Option<String>,
    /// Whether the link is bound to a client certificate.
    pub client_cert_bound: bool,
    /// Whether the grant sets its own response file name (the name itself is not logged).
    pub file_name_set: bool,
}

impl AuditEvent for LinkIssued {
    const ACTION: &'static str = "link.issued";
    fn subject(&self) -> Option<String> {
        Some(self.grant.clone())
    }
}

/// Grants were revoked (`link.revoked`): one by id, or in bulk.
#[derive(Debug, Serialize)]
pub struct LinksRevoked {
    /// `grant`, `artifact`, `partner` or `batch`.
    pub scope: &'static str,
    /// The grant id, artifact id, partner or batch name.
    pub target: String,
    /// The reason given.
    pub reason: String,
    /// How many grants this call revoked.
    pub count: u64,
    /// How many were revoked already.
    pub already_revoked: u64,
    /// The revoked grant ids (at most the first 100; `count` is exact).
    pub grants: Vec<String>,
}

impl AuditEvent for LinksRevoked {
    const ACTION: &'static str = "link.revoked";
    fn subject(&self) -> Option<String> {
        Some(self.target.clone())
    }
}

/// A revocation is about to be made (`link.revoke_requested`): the intent entry, written
/// before any grant is revoked; `link.revoked` follows with the outcome.
#[derive(Debug, Serialize)]
pub struct RevokeRequested {
    /// `grant`, `artifact`, `partner` or `batch`.
    pub scope: &'static str,
    /// The grant id, artifact id, partner or batch name.
    pub target: String,
    /// The reason given.
    pub reason: String,
}

impl AuditEvent for RevokeRequested {
    const ACTION: &'static str = "link.revoke_requested";
    fn subject(&self) -> Option<String> {
        Some(self.target.clone())
    }
}
