//! Rows for the SMART token endpoint (`docs/smart-backend-services.md`). A refusal is
//! answered as an OAuth 2.0 error (RFC 6749 §5.2): `{"error": "...", "error_description":
//! "..."}` with `application/json` — what every OAuth client parses — instead of a problem
//! body; the table still gives its status and a stable code (`oauth.*`, logged and
//! documented). `invalid_client` is 401, every other refusal 400. Store and audit failures
//! are the usual 503 problems.

use http::StatusCode;

use super::row::{Describe, Problem, row};
use crate::smart::{OAuthError, SmartError};

const INVALID_REQUEST: Problem = row(
    StatusCode::BAD_REQUEST,
    "oauth.invalid_request",
    "The token request is missing, repeats or misspells a parameter (grant_type, client_assertion_type, client_assertion, scope), or is not form-encoded",
);
const INVALID_CLIENT: Problem = row(
    StatusCode::UNAUTHORIZED,
    "oauth.invalid_client",
    "Client authentication failed: the client assertion was not accepted",
);
const INVALID_SCOPE: Problem = row(
    StatusCode::BAD_REQUEST,
    "oauth.invalid_scope",
    "No requested scope is allowed for this client, or the scope is malformed",
);
const UNSUPPORTED_GRANT_TYPE: Problem = row(
    StatusCode::BAD_REQUEST,
    "oauth.unsupported_grant_type",
    "Only grant_type=client_credentials is supported",
);
const NOT_CONFIGURED: Problem = row(
    StatusCode::NOT_FOUND,
    "request.not_found",
    "No such endpoint",
);

impl Describe for SmartError {
    fn problem(&self) -> Problem {
        match self {
            SmartError::Refused(r) => match r.error {
                OAuthError::InvalidRequest => INVALID_REQUEST,
                OAuthError::InvalidClient => INVALID_CLIENT,
                OAuthError::InvalidScope => INVALID_SCOPE,
                OAuthError::UnsupportedGrantType => UNSUPPORTED_GRANT_TYPE,
            },
            SmartError::NotConfigured => NOT_CONFIGURED,
            SmartError::State(e) => e.problem(),
            SmartError::Audit(e) => e.problem(),
        }
    }
}

impl SmartError {
    /// The OAuth `error` value when this is an OAuth refusal (rendered as an OAuth error
    /// body, not a problem).
    pub fn oauth_error(&self) -> Option<&'static str> {
        match self {
            SmartError::Refused(r) => Some(r.error.as_str()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smart::Refusal;

    #[test]
    fn oauth_statuses() {
        let e = |error| SmartError::Refused(Refusal { error, reason: "x" });
        assert_eq!(e(OAuthError::InvalidClient).problem().status, 401);
        for o in [
            OAuthError::InvalidRequest,
            OAuthError::InvalidScope,
            OAuthError::UnsupportedGrantType,
        ] {
            assert_eq!(e(o).problem().status, 400);
        }
        assert_eq!(
            e(OAuthError::InvalidScope).oauth_error(),
            Some("invalid_scope")
        );
    }
}
