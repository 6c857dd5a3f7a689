//! SMART Backend Services authorization (HL7 SMART App Launch, "Backend Services"): the
//! token endpoint's flow, from the parsed form to an issued access token or an OAuth
//! refusal, audited inside the flow.
//!
//! * [`config`] — `[smart]` and `[[smart.clients]]`: public JWKS, scopes, principal;
//! * [`scope`] — SMART v1/v2 system scopes and the granted intersection (pure);
//! * [`assertion`] — client-assertion verification (`jsonwebtoken`, one algorithm per key);
//! * [`access_token`] — the stateless HMAC access tokens and their [`Authenticator`];
//! * [`events`] — `smart.token_issued`, `smart.token_refused`.
//!
//! The flow of `POST /auth/token` ([`Smart::issue`]): form → `grant_type` →
//! `client_assertion_type` → assertion (signature and claims) → the client's certificate
//! when it must present one → `jti` never seen before (an atomic insert-if-absent in the
//! state store, kept until the assertion's `exp` plus leeway, so a replay is caught by any
//! instance sharing the store) → scope intersection → token minted → `smart.token_issued`
//! written durably → answer. Every refusal is audited as `smart.token_refused` with its
//! reason, rate-limited per address like other security events.
//!
//! Not here: HTTP (the handler in `http::handlers::smart`, the OAuth error rows in
//! `http::problem::smart`), the FHIR Bulk endpoints that will accept the tokens.
//!
//! [`Authenticator`]: crate::auth::Authenticator

use std::sync::Arc;

use sha2::{Digest, Sha256};

pub mod access_token;
pub mod assertion;
pub mod config;
pub mod events;
pub mod scope;

use crate::audit::{Actor, AuditContext, AuditError, Auditor};
use crate::auth::ClientIdentity;
use crate::proxy::ClientAddr;
use crate::state::{CasOutcome, Expect, Namespace, PutOptions, StateError, StateStore};
use access_token::{AccessClaims, TokenKeys, unix_now};
use config::SmartSettings;
use events::{TokenIssued, TokenRefused};

/// Seen assertion `jti`s, by SHA-256 of `client_id NUL jti`; each expires with its assertion.
const JTI_NS: Namespace = Namespace::new("smart_jti");
/// The assertion type SMART requires (RFC 7523).
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Largest token-request form accepted.
pub const MAX_FORM_BYTES: u64 = 16 * 1024;

/// The OAuth 2.0 error codes the token endpoint answers (RFC 6749 §5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OAuthError {
    /// A parameter is missing, repeated, unsupported or malformed.
    InvalidRequest,
    /// Client authentication (the assertion, or its certificate) failed.
    InvalidClient,
    /// No requested scope is allowed, or the scope is malformed.
    InvalidScope,
    /// `grant_type` is not `client_credentials`.
    UnsupportedGrantType,
}

impl OAuthError {
    /// The RFC 6749 `error` value.
    pub const fn as_str(self) -> &'static str {
        match self {
            OAuthError::InvalidRequest => "invalid_request",
            OAuthError::InvalidClient => "invalid_client",
            OAuthError::InvalidScope => "invalid_scope",
            OAuthError::UnsupportedGrantType => "unsupported_grant_type",
        }
    }
}

/// A refused token request: the OAuth error and the audited reason code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// What the client is told.
    pub error: OAuthError,
    /// Why, for the audit trail (`docs/smart-backend-services.md`, "Refusals").
    pub reason: &'static str,
}

/// Why the token endpoint did not issue a token.
#[derive(Debug, thiserror::Error)]
pub enum SmartError {
    /// The request was refused (OAuth error body).
    #[error("token request refused ({})", .0.reason)]
    Refused(Refusal),
    /// No SMART client is registered, so there is no token endpoint.
    #[error("SMART Backend Services is not configured")]
    NotConfigured,
    /// The replay cache could not be read or written: fail closed.
    #[error(transparent)]
    State(#[from] StateError),
    /// The issuance could not be audited: no token.
    #[error(transparent)]
    Audit(#[from] AuditError),
}

/// A token request as the handler parsed it.
#[derive(Debug)]
pub struct TokenRequest<'a> {
    /// The form body.
    pub form: &'a [u8],
    /// Whether `Content-Type` is `application/x-www-form-urlencoded`.
    pub form_content_type: bool,
    /// The verified TLS client certificate, if any.
    pub client_cert: Option<&'a ClientIdentity>,
    /// The request's audit context (anonymous, with its id and address).
    pub audit: AuditContext,
    /// The client address (refusals are rate-limited by it).
    pub client_addr: ClientAddr,
}

/// An issued access token.
pub struct IssuedToken {
    /// The bearer token.
    pub access_token: String,
    /// Seconds until it expires.
    pub expires_in: u64,
    /// The granted scope.
    pub scope: String,
}

impl std::fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedToken")
            .field("access_token", &"[redacted]")
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .finish()
    }
}

/// The SMART token service.
#[derive(Debug, Clone)]
pub struct Smart {
    settings: Arc<SmartSettings>,
    keys: Arc<TokenKeys>,
    state: Arc<dyn StateStore>,
    auditor: Auditor,
    security: crate::audit::security::SecurityEvents,
}

/// The parameters of a token request.
#[derive(Default)]
struct Form {
    grant_type: Option<String>,
    client_assertion_type: Option<String>,
    client_assertion: Option<String>,
    scope: Option<String>,
    client_id: Option<String>,
}

impl Smart {
    /// The service.
    pub fn new(
        settings: Arc<SmartSettings>,
        keys: Arc<TokenKeys>,
        state: Arc<dyn StateStore>,
        auditor: Auditor,
        security: crate::audit::security::SecurityEvents,
    ) -> Self {
        Self {
            settings,
            keys,
            state,
            auditor,
            security,
        }
    }

    /// The settings (for the discovery document).
    pub fn settings(&self) -> &SmartSettings {
        &self.settings
    }

    /// `POST /auth/token`: verifies the client assertion and issues an access token.
    pub async fn issue(&self, req: TokenRequest<'_>) -> Result<IssuedToken, SmartError> {
        if self.settings.clients.is_empty() {
            return Err(SmartError::NotConfigured);
        }
        match self.try_issue(&req).await {
            Ok(t) => Ok(t),
            Err(Failure::Refused {
                refusal,
                client_id,
                jti_sha256,
            }) => {
                let event = TokenRefused {
                    reason: refusal.reason,
                    error: refusal.error.as_str(),
                    client_id,
                    jti_sha256,
                };
                self.security
                    .token_refused(&req.audit, req.client_addr, &event)
                    .await;
                Err(SmartError::Refused(refusal))
            }
            Err(Failure::Error(e)) => Err(e),
        }
    }

    async fn try_issue(&self, req: &TokenRequest<'_>) -> Result<IssuedToken, Failure> {
        let bad_request = |reason| Failure::refused(OAuthError::InvalidRequest, reason);
        if !req.form_content_type {
            return Err(bad_request("not_form_encoded"));
        }
        let form = parse_form(req.form).ok_or_else(|| bad_request("malformed_form"))?;
        match form.grant_type.as_deref() {
            None => return Err(bad_request("missing_grant_type")),
            Some("client_credentials") => {}
            Some(_) => {
                return Err(Failure::refused(
                    OAuthError::UnsupportedGrantType,
                    "unsupported_grant_type",
                ));
            }
        }
        if form.client_assertion_type.as_deref() != Some(JWT_BEARER) {
            return Err(bad_request("bad_assertion_type"));
        }
        let assertion = form
            .client_assertion
            .as_deref()
            .ok_or_else(|| bad_request("missing_assertion"))?;
        let requested_scope = form
            .scope
            .as_deref()
            .ok_or_else(|| bad_request("missing_scope"))?;
        let now = unix_now();
        let verified =
            assertion::verify(&self.settings, assertion, now).map_err(|r| Failure::Refused {
                refusal: Refusal {
                    error: OAuthError::InvalidClient,
                    reason: r.reason,
                },
                client_id: r.client_id,
                jti_sha256: None,
            })?;
        let client = verified.client;
        let jti_sha256 = hex::encode(Sha256::digest(verified.jti.as_bytes()));
        let refuse = |error, reason| Failure::Refused {
            refusal: Refusal { error, reason },
            client_id: Some(client.client_id.clone()),
            jti_sha256: Some(jti_sha256.clone()),
        };
        if form
            .client_id
            .as_deref()
            .is_some_and(|id| id != client.client_id)
        {
            return Err(refuse(OAuthError::InvalidClient, "client_id_mismatch"));
        }
        if client.cert.is_set() && !client.cert.matches(req.client_cert) {
            return Err(refuse(OAuthError::InvalidClient, "certificate_required"));
        }
        let granted = scope::grant(requested_scope, &client.scopes).map_err(|e| match e {
            scope::ScopeError::Malformed => refuse(OAuthError::InvalidScope, "malformed_scope"),
            scope::ScopeError::NothingGranted => {
                refuse(OAuthError::InvalidScope, "scope_not_allowed")
            }
        })?;
        // Remember the jti until the assertion could no longer pass the `exp` check
        // anywhere: its `exp` plus the leeway. Insert-if-absent is atomic in every store.
        let keep = verified
            .exp
            .saturating_add(self.settings.clock_skew.as_secs())
            .saturating_sub(now)
            .max(1);
        let id = hex::encode(Sha256::digest(
            [client.client_id.as_bytes(), b"\0", verified.jti.as_bytes()].concat(),
        ));
        let put = self
            .state
            .put(
                JTI_NS,
                &id,
                b"1",
                Expect::Absent,
                PutOptions {
                    ttl: Some(std::time::Duration::from_secs(keep)),
                    index: Vec::new(),
                },
            )
            .await
            .map_err(|e| Failure::Error(e.into()))?;
        if let CasOutcome::Conflict(_) = put {
            return Err(refuse(OAuthError::InvalidClient, "replayed_jti"));
        }
        let lifetime = self.settings.access_token_lifetime.as_secs();
        let claims = AccessClaims {
            cid: client.client_id.clone(),
            scope: granted.to_string(),
            iat: now,
            exp: now + lifetime,
            tid: crate::ids::OpaqueId::random().to_string(),
        };
        let access_token = self.keys.mint(&claims);
        let ctx = AuditContext {
            actor: Actor::Client {
                name: client.principal.to_string(),
                auth_method: Some("private_key_jwt"),
            },
            ..req.audit.clone()
        };
        let event = TokenIssued {
            client_id: client.client_id.clone(),
            scope: claims.scope.clone(),
            expires_in: lifetime,
            token_id: claims.tid.clone(),
            jti_sha256,
            kid: verified.kid.clone(),
            alg: verified.alg,
        };
        self.auditor
            .emit(&ctx, &event)
            .await
            .map_err(|e| Failure::Error(e.into()))?;
        Ok(IssuedToken {
            access_token,
            expires_in: lifetime,
            scope: claims.scope,
        })
    }
}

/// A refusal with what the audit entry names, or an infrastructure error.
enum Failure {
    Refused {
        refusal: Refusal,
        client_id: Option<String>,
        jti_sha256: Option<String>,
    },
    Error(SmartError),
}

impl Failure {
    fn refused(error: OAuthError, reason: &'static str) -> Self {
        Failure::Refused {
            refusal: Refusal { error, reason },
            client_id: None,
            jti_sha256: None,
        }
    }
}

/// Parses the form: each known parameter at most once (RFC 6749 §3.2: "Request and
/// response parameters MUST NOT be included more than once"), none empty; unknown
/// parameters are ignored (RFC 6749 §3.2).
fn parse_form(body: &[u8]) -> Option<Form> {
    let mut form = Form::default();
    for (k, v) in form_urlencoded::parse(body) {
        let slot = match k.as_ref() {
            "grant_type" => &mut form.grant_type,
            "client_assertion_type" => &mut form.client_assertion_type,
            "client_assertion" => &mut form.client_assertion,
            "scope" => &mut form.scope,
            "client_id" => &mut form.client_id,
            _ => continue,
        };
        if slot.is_some() || v.is_empty() {
            return None;
        }
        *slot = Some(v.into_owned());
    }
    Some(form)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_parse_strictly() {
        let f = parse_form(b"grant_type=client_credentials&scope=system%2F*.read&x=1").unwrap();
        assert_eq!(f.grant_type.as_deref(), Some("client_credentials"));
        assert_eq!(f.scope.as_deref(), Some("system/*.read"));
        assert!(parse_form(b"scope=a&scope=b").is_none(), "repeated");
        assert!(parse_form(b"scope=").is_none(), "empty");
        assert!(parse_form(b"").is_some());
    }
}
