//! What a handler knows about its request besides the request itself: the connection it
//! came on ([`ConnInfo`], shared by the connection's requests), its id and its routed
//! endpoint ([`RequestContext`]), and how to authenticate it for a role.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use http::HeaderMap;

use super::AppState;
use super::endpoint::Endpoint;
use super::problem::ApiError;
use crate::audit::events::AccessDenied;
use crate::audit::{Actor, AuditContext};
use crate::auth::ClientIdentity;
use crate::auth::{AuthError, Principal, Role};
use crate::config::ServerSettings;
use crate::proxy::{ClientAddr, forwarded};
use crate::tls::TlsInfo;

/// What the accept loop knows about a connection; shared by its requests.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// The TCP peer: the client, or the balancer or proxy that connected for it.
    pub peer: SocketAddr,
    /// The client as the connection knows it: the source in the PROXY header of a
    /// `server.proxy_protocol_from` balancer, else the peer's address.
    pub origin: IpAddr,
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
    /// The client address every check and audit entry of this request uses.
    pub client: ClientAddr,
}

impl ConnInfo {
    /// The client address of a request on this connection with `headers`: the
    /// connection's origin, or — when that is a `server.trusted_proxies` address — the
    /// client its `server.forwarded_header` names. Computed once per request by the edge.
    pub fn client_for(&self, settings: &ServerSettings, headers: &HeaderMap) -> ClientAddr {
        let peer = self.peer.ip();
        if settings.trusted_proxies.is_empty() {
            return ClientAddr {
                client: self.origin,
                peer,
            };
        }
        let field = settings.forwarded_header;
        let values: Vec<&[u8]> = headers
            .get_all(field.name())
            .iter()
            .map(|v| v.as_bytes())
            .collect();
        ClientAddr {
            client: forwarded::client(self.origin, &settings.trusted_proxies, field, &values),
            peer,
        }
    }
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
        self.check_role(state, principal, role).await
    }

    /// Checks `role` on an authenticated principal; a missing role is audited.
    pub async fn check_role(
        &self,
        state: &AppState,
        principal: Principal,
        role: Role,
    ) -> Result<Principal, ApiError> {
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
                    auth_method: Some(p.method.as_str()),
                },
                None => Actor::Anonymous,
            },
            request_id: Some(self.request_id.clone()),
            client_addr: None,
            peer_addr: None,
        }
        .with_addr(self.client)
    }
}
