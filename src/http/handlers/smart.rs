//! SMART Backend Services over [`crate::smart::Smart`]:
//!
//! * `GET /.well-known/smart-configuration` — the discovery document (public; 404 when no
//!   SMART client is registered);
//! * `POST /auth/token` — `application/x-www-form-urlencoded` client-credentials request
//!   with a JWT client assertion → `{"access_token","token_type":"bearer","expires_in",
//!   "scope"}`; refusals are OAuth 2.0 error bodies (`http::problem::smart`). Both carry
//!   `Cache-Control: no-store` (the edge's, for every API response).

use http::{Request, StatusCode, header};
use serde_json::json;

use super::respond::{Resp, content_length, json_response};
use crate::audit::{Actor, AuditContext};
use crate::auth::ClientIdentity;
use crate::http::AppState;
use crate::http::body::read_capped;
use crate::http::context::RequestContext;
use crate::http::problem::ApiError;
use crate::smart::{MAX_FORM_BYTES, TokenRequest};

/// `GET /.well-known/smart-configuration`.
pub fn configuration(state: &AppState) -> Resp {
    let settings = state.smart.settings();
    let token_url = match settings.token_url() {
        Some(u) if !settings.clients.is_empty() => u,
        _ => return Err(ApiError::NotFound),
    };
    let mut scopes: Vec<String> = Vec::new();
    for c in &settings.clients {
        for s in &c.scopes {
            let s = s.to_string();
            if !scopes.contains(&s) {
                scopes.push(s);
            }
        }
    }
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "token_endpoint": token_url,
            "grant_types_supported": ["client_credentials"],
            "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
            "scopes_supported": scopes,
            "capabilities": ["client-confidential-asymmetric", "permission-v1", "permission-v2"],
        }),
    ))
}

/// `POST /auth/token`.
pub async fn token(state: &AppState, ctx: &RequestContext, req: Request<axum::body::Body>) -> Resp {
    let declared = content_length(&req);
    let (parts, body) = req.into_parts();
    let form_content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| {
            t.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    let limit = MAX_FORM_BYTES.min(state.config.server.max_body_bytes.0);
    let form = read_capped(declared, body, limit).await?;
    let request = TokenRequest {
        form: &form,
        form_content_type,
        client_cert: parts.extensions.get::<ClientIdentity>(),
        audit: AuditContext {
            actor: Actor::Anonymous,
            request_id: Some(ctx.request_id.clone()),
            client_addr: None,
            peer_addr: None,
        }
        .with_addr(ctx.client),
        client_addr: ctx.client,
    };
    let issued = state.smart.issue(request).await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "access_token": issued.access_token,
            "token_type": "bearer",
            "expires_in": issued.expires_in,
            "scope": issued.scope,
        }),
    ))
}
