//! The audit events of the gateway core. Feature modules define their own events next to
//! the code that emits them (uploads in `tus`, links in `signed_link`…), each a struct
//! implementing [`AuditEvent`].
//!
//! Details never carry PHI: no file names, no metadata values, no tokens.

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
