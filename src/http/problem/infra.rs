//! Rows for the infrastructure errors every flow can meet: the state store, the blob store,
//! the at-rest layer, the audit trail, and authentication. Whatever a retry may cure is a
//! 503 (the edge adds `Retry-After`); a corrupt store or a bug is a 500.

use http::header::WWW_AUTHENTICATE;
use http::{HeaderMap, HeaderValue, StatusCode};

use super::row::{Describe, INTERNAL, Problem, row};
use crate::at_rest::AtRestError;
use crate::audit::AuditError;
use crate::auth::AuthError;
use crate::blob::BlobError;
use crate::state::StateError;

/// The state store failed in a way a retry may cure.
pub const STATE_UNAVAILABLE: Problem = row(
    StatusCode::SERVICE_UNAVAILABLE,
    "server.state_unavailable",
    "State store unavailable",
);
const STORAGE_UNAVAILABLE: Problem = row(
    StatusCode::SERVICE_UNAVAILABLE,
    "server.storage_unavailable",
    "Storage unavailable",
);
const KEY_UNAVAILABLE: Problem = row(
    StatusCode::SERVICE_UNAVAILABLE,
    "server.key_unavailable",
    "Encryption key unavailable",
);
/// The audit trail could not record the action, so it was not performed (fail closed).
pub const AUDIT_UNAVAILABLE: Problem = row(
    StatusCode::SERVICE_UNAVAILABLE,
    "server.audit_unavailable",
    "Audit trail unavailable; the action was not performed",
);

impl Describe for StateError {
    fn problem(&self) -> Problem {
        match self {
            StateError::Unavailable(_) | StateError::Locked(_) => STATE_UNAVAILABLE,
            StateError::Corrupt(_) | StateError::Invalid(_) => INTERNAL,
        }
    }
}

impl Describe for BlobError {
    fn problem(&self) -> Problem {
        match self {
            BlobError::NotFound(_) => row(
                StatusCode::NOT_FOUND,
                "object.not_found",
                "Object not found",
            ),
            BlobError::Io(_) => STORAGE_UNAVAILABLE,
            _ => INTERNAL,
        }
    }
}

impl Describe for AtRestError {
    fn problem(&self) -> Problem {
        match self {
            AtRestError::State(e) => e.problem(),
            AtRestError::Blob(BlobError::Io(_)) => STORAGE_UNAVAILABLE,
            AtRestError::Key(_) => KEY_UNAVAILABLE,
            _ => INTERNAL,
        }
    }
}

/// The audit writer halted on a lost or rewritten tail: nothing audited is performed
/// until an operator has looked and restarted the gateway.
pub const AUDIT_HALTED: Problem = row(
    StatusCode::SERVICE_UNAVAILABLE,
    "server.audit_halted",
    "Audit trail halted after its stored tail was lost or rewritten; the action was not performed",
);

impl Describe for AuditError {
    fn problem(&self) -> Problem {
        match self {
            AuditError::Halted(_) => AUDIT_HALTED,
            _ => AUDIT_UNAVAILABLE,
        }
    }
}

impl Describe for AuthError {
    fn problem(&self) -> Problem {
        match self {
            AuthError::Missing => row(
                StatusCode::UNAUTHORIZED,
                "auth.missing",
                "Authentication required",
            ),
            AuthError::Malformed => row(
                StatusCode::UNAUTHORIZED,
                "auth.malformed",
                "Malformed Authorization header",
            ),
            AuthError::Invalid => row(
                StatusCode::UNAUTHORIZED,
                "auth.invalid",
                "Invalid credentials",
            ),
            AuthError::CertificateRequired => row(
                StatusCode::UNAUTHORIZED,
                "auth.certificate_required",
                "This client must present its TLS client certificate with its token",
            ),
            AuthError::MissingRole(_) => row(
                StatusCode::FORBIDDEN,
                "auth.missing_role",
                "Not allowed for this principal",
            ),
        }
    }

    fn headers(&self, h: &mut HeaderMap) {
        let value = match self {
            AuthError::MissingRole(_) => return,
            AuthError::Missing => r#"Bearer realm="sallyport""#,
            AuthError::Malformed | AuthError::Invalid | AuthError::CertificateRequired => {
                r#"Bearer realm="sallyport", error="invalid_token""#
            }
        };
        h.insert(WWW_AUTHENTICATE, HeaderValue::from_static(value));
    }
}
