//! The token endpoint's audit events: every access token issued, and every request
//! refused with its reason. Neither ever carries a token or an assertion: an assertion is
//! named by the SHA-256 of its `jti`, a token by its random id.

use serde::Serialize;

use crate::audit::{AuditEvent, Outcome};

/// An access token was issued (`POST /auth/token`).
#[derive(Debug, Serialize)]
pub struct TokenIssued {
    /// The registered client.
    pub client_id: String,
    /// The granted scope.
    pub scope: String,
    /// The token's lifetime in seconds.
    pub expires_in: u64,
    /// The token's random id (also the entry's subject).
    pub token_id: String,
    /// SHA-256 (hex) of the assertion's `jti`.
    pub jti_sha256: String,
    /// The key that signed the assertion.
    pub kid: String,
    /// `RS384` or `ES384`.
    pub alg: &'static str,
}

impl AuditEvent for TokenIssued {
    const ACTION: &'static str = "smart.token_issued";
    fn subject(&self) -> Option<String> {
        Some(self.token_id.clone())
    }
}

/// A token request was refused (rate-limited per address like other security events).
#[derive(Debug, Serialize)]
pub struct TokenRefused {
    /// Why (a stable reason code: `docs/smart-backend-services.md`, "Refusals").
    pub reason: &'static str,
    /// The OAuth error answered.
    pub error: &'static str,
    /// The registered client the assertion named, when it named one (an unregistered
    /// `iss` is never recorded: it is attacker-chosen text).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// SHA-256 (hex) of the assertion's `jti`, once the signature verified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti_sha256: Option<String>,
}

impl AuditEvent for TokenRefused {
    const ACTION: &'static str = "smart.token_refused";
    fn outcome(&self) -> Outcome {
        Outcome::Denied
    }
}
