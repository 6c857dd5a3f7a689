//! The audit events of the gateway core. Feature modules define their own events next to
//! the code that emits them (uploads in `tus`, links in `signed_link`…), each a struct
//! implementing [`AuditEvent`].
//!
//! Details never carry PHI: no file names, no metadata values, no tokens.
//!
//! Every event's action and `details` members are listed in
//! `proto/audit-event-v1.schema.json` (members closed with `additionalProperties: false`):
//! a new event, or a new member of one, needs its schema entry, or `tests/audit_schema.rs`
//! and every test whose exported audit trail holds it fail.

use serde::Serialize;

use super::{AuditEvent, Outcome};

/// The gateway started serving.
#[derive(Debug, Serialize)]
pub struct ServerStarted {
    /// The package version.
    pub version: &'static str,
    /// The listen address.
    pub listen: String,
    /// `https` or `http` (danger_plaintext_http).
    pub scheme: &'static str,
    /// Mutual TLS mode.
    pub client_auth: &'static str,
    /// State store kind.
    pub state_store: &'static str,
    /// Blob store kind.
    pub blob_store: &'static str,
}

impl AuditEvent for ServerStarted {
    const ACTION: &'static str = "server.started";
}

/// The gateway stopped after a graceful shutdown.
#[derive(Debug, Serialize)]
pub struct ServerStopped {
    /// Requests still running when the grace period ended (0 after a clean drain).
    pub abandoned_connections: usize,
}

impl AuditEvent for ServerStopped {
    const ACTION: &'static str = "server.stopped";
}

/// The TLS configuration was reloaded (SIGHUP).
#[derive(Debug, Serialize)]
pub struct TlsReloaded {
    /// Whether the new configuration was taken.
    pub ok: bool,
    /// Why not, when it was not (a file or parse error; never key material).
    pub error: Option<String>,
}

impl AuditEvent for TlsReloaded {
    const ACTION: &'static str = "tls.reloaded";
    fn outcome(&self) -> Outcome {
        if self.ok {
            Outcome::Success
        } else {
            Outcome::Failure
        }
    }
}

/// An authenticated principal was refused for lack of a role.
#[derive(Debug, Serialize)]
pub struct AccessDenied {
    /// The endpoint it tried.
    pub endpoint: &'static str,
    /// The role it lacked.
    pub missing_role: &'static str,
}

impl AuditEvent for AccessDenied {
    const ACTION: &'static str = "access.denied";
    fn outcome(&self) -> Outcome {
        Outcome::Denied
    }
}

/// The audit chain was verified through the API or CLI.
#[derive(Debug, Serialize)]
pub struct AuditVerified {
    /// Entries checked.
    pub length: u64,
    /// Whether the chain was intact.
    pub intact: bool,
}

impl AuditEvent for AuditVerified {
    const ACTION: &'static str = "audit.verified";
    fn outcome(&self) -> Outcome {
        if self.intact {
            Outcome::Success
        } else {
            Outcome::Failure
        }
    }
}

/// Sealed journal segments older than `audit.retention` were moved to the archive
/// (`audit::archive`): written after the move, by the gateway's sweep or `sallyport audit
/// archive`. The chain before `first_seq` was archived by earlier sweeps.
#[derive(Debug, Serialize)]
pub struct AuditArchived {
    /// Segment files moved.
    pub segments: u64,
    /// The first entry they hold.
    pub first_seq: u64,
    /// The last entry they hold: the signed checkpoint closing the run has this length.
    pub last_seq: u64,
    /// The archive directory (`audit.archive_dir`).
    pub destination: String,
    /// The checkpoint file closing the run, in the archive directory.
    pub checkpoint: String,
    /// `rename` (same filesystem) or `copy` (copied, verified by SHA-256, then removed).
    pub method: &'static str,
}

impl AuditEvent for AuditArchived {
    const ACTION: &'static str = "audit.archived";
}

/// An operator asked to rotate or retire a key-encryption key (`sallyport keys rotate`,
/// `keys retire`): written, durably, before anything changes, so a key change whose
/// outcome entry then fails to write is still on the trail.
#[derive(Debug, Serialize)]
pub struct KeyChangeRequested {
    /// `rotate` or `retire`.
    pub operation: &'static str,
    /// The version to retire (absent for a rotation).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
}

impl AuditEvent for KeyChangeRequested {
    const ACTION: &'static str = "key.change_requested";
}

/// A KEK version became current (`sallyport keys rotate`).
#[derive(Debug, Serialize)]
pub struct KekRotated {
    /// The new current version, `id:vN`.
    pub kek: String,
}

impl AuditEvent for KekRotated {
    const ACTION: &'static str = "key.rotated";
    fn subject(&self) -> Option<String> {
        Some(self.kek.clone())
    }
}

/// One object's data key was re-wrapped under another KEK version (no data touched).
#[derive(Debug, Serialize)]
pub struct DekRewrapped {
    /// The object id.
    pub object: String,
    /// The version it was wrapped under.
    pub from: String,
    /// The version it is wrapped under now.
    pub to: String,
}

impl AuditEvent for DekRewrapped {
    const ACTION: &'static str = "key.rewrapped";
    fn subject(&self) -> Option<String> {
        Some(self.object.clone())
    }
}

/// One object's data key could not be re-wrapped.
#[derive(Debug, Serialize)]
pub struct DekRewrapFailed {
    /// The object id.
    pub object: String,
    /// Why (a key error message; never key material).
    pub error: String,
}

impl AuditEvent for DekRewrapFailed {
    const ACTION: &'static str = "key.rewrap_failed";
    fn outcome(&self) -> Outcome {
        Outcome::Failure
    }
    fn subject(&self) -> Option<String> {
        Some(self.object.clone())
    }
}

/// A rewrap run started.
#[derive(Debug, Serialize)]
pub struct RewrapStarted {
    /// Data keys counted at the start.
    pub total: u64,
    /// The target version.
    pub to: String,
}

impl AuditEvent for RewrapStarted {
    const ACTION: &'static str = "key.rewrap_started";
}

/// A KEK version's material was destroyed.
#[derive(Debug, Serialize)]
pub struct KekRetired {
    /// The version, `id:vN`.
    pub kek: String,
}

impl AuditEvent for KekRetired {
    const ACTION: &'static str = "key.retired";
    fn subject(&self) -> Option<String> {
        Some(self.kek.clone())
    }
}

/// The audit trail was queried or a trace was assembled through the API. Names the filter
/// (ids, client names, addresses, actions: never an entry's contents) and how many
/// entries were returned.
#[derive(Debug, Serialize)]
pub struct AuditQueried {
    /// `events` (a query) or `trace`.
    pub kind: &'static str,
    /// The filter's conditions, canonical (`since`, `until`, `principal`, `client`,
    /// `upload`, `batch`, `artifact`, `grant`, `action`, `outcome`), or `{"id": …}` for a
    /// trace.
    pub filter: std::collections::BTreeMap<&'static str, String>,
    /// Entries returned.
    pub returned: u64,
}

impl AuditQueried {
    /// A query's record.
    pub fn events(filter: &super::query::Filter, returned: usize) -> Self {
        Self {
            kind: "events",
            filter: filter.conditions_with_values(),
            returned: returned as u64,
        }
    }

    /// A trace's record.
    pub fn trace(id: &str, returned: usize) -> Self {
        Self {
            kind: "trace",
            filter: std::collections::BTreeMap::from([("id", id.to_owned())]),
            returned: returned as u64,
        }
    }
}

impl AuditEvent for AuditQueried {
    const ACTION: &'static str = "audit.queried";
}
