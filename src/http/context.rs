//! What a handler knows about its request besides the request itself: the connection it
//! came on ([`ConnInfo`], shared by the connection's requests), its id and its routed
//! endpoint ([`RequestContext`]), and how to authenticate it for a role.

use std::net::SocketAddr;
use std::sync::Arc;

use super::AppState;
use super::endpoint::Endpoint;
use super::problem::ApiError;
use crate::audit::events::AccessDenied;
use crate::audit::{Actor, AuditContext};
use crate::auth::ClientIdentity;
use crate::auth::{AuthError, Principal, Role};
use crate::tls::TlsInfo;

/// What the accept loop knows about a connection; shared by its requests.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// The client's address.
    pub peer: SocketAddr,
    /// What TLS negotiated (`None` with danger_plaintext_http).
    pub tls: Option<TlsInfo>,
    /// The verified client certificate, when mutual TLS is on and one was presented.
    pub client: Option<ClientIdentity>,
}

/// Per-request context handed to handlers.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// Random id, also in the `X-Request-Id` response header and problem bodies.
    pub request_id: String,
    /// The routed endpoint.
    pub endpoint: Endpoint,
    /// The connection.
    pub conn: Arc<ConnInfo>,
}

impl RequestContext {
    /// Authenticates the request and checks `role`; a missing role is audited.
    pub async fn require(
        &self,
        state: &AppState,
        parts: &http::request::Parts,
        role: Role,
    ) -> Result<Principal, ApiError> {
        let principal = crate::auth::authenticate(&state.authenticators, parts)?;
        if let Err(AuthError::MissingRole(r)) = principal.require(role) {
            let ctx = self.audit_context(Some(&principal));
            let event = AccessDenied {
                endpoint: self.endpoint.name(),
                missing_role: r.as_str(),
            };
            state.auditor.emit(&ctx, &event).await?;
            return Err(AuthError::MissingRole(r).into());
        }
        Ok(principal)
    }

    /// The audit context for this request.
    pub fn audit_context(&self, principal: Option<&Principal>) -> AuditContext {
        AuditContext {
            actor: match principal {
                Some(p) => Actor::Client {
                    name: p.name.to_string(),
                },
                None => Actor::Anonymous,
            },
            request_id: Some(self.request_id.clone()),
            client_addr: Some(self.conn.peer.ip().to_string()),
        }
    }
}
