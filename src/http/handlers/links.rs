//! The links API (publisher role) over [`crate::links::Links`], which issues, lists,
//! revokes and audits; request shapes are [`crate::links::api`]'s.
//!
//! * `POST /v1/links` → 201 with the grant and `url` (the link; a bearer credential shown
//!   once);
//! * `GET /v1/links?artifact=…|partner=…|batch=…[&after=…][&limit=…]` → a page of grants;
//! * `GET /v1/links/{grant}` → one grant, with its usage;
//! * `DELETE /v1/links/{grant}` (optional body `{"reason"}`) → the revoked grant;
//! * `POST /v1/links/revoke` — `{"artifact"|"partner"|"batch", "reason"}` → counts.

use http::{Request, StatusCode, header};
use serde_json::json;

use super::respond::{Resp, authorized_json, json_response};
use crate::auth::{Principal, Role};
use crate::grant::now_unix;
use crate::http::AppState;
use crate::http::context::RequestContext;
use crate::http::problem::ApiError;
use crate::links::api::{BulkBody, IssueBody, ListQuery, RevokeBody};
use crate::links::{LinkError, Publisher};
use crate::signed_link::GrantId;

type Req = Request<axum::body::Body>;

/// The publisher `p` acting in this request (its name, its scope, the audit context).
pub(super) fn publisher(ctx: &RequestContext, p: &Principal) -> Publisher {
    Publisher {
        name: p.name.to_string(),
        scope: p.scope.clone(),
        audit: ctx.audit_context(Some(p)),
    }
}

/// `POST /v1/links`.
pub async fn issue(state: &AppState, ctx: &RequestContext, req: Req) -> Resp {
    let (parts, principal, body) =
        authorized_json::<IssueBody>(state, ctx, req, Role::Publisher).await?;
    let request = body
        .ok_or(ApiError::JsonRequired)?
        .into_request(&state.config.clients)?;
    let issued = state
        .links
        .issue(&publisher(ctx, &principal), request)
        .await?;
    let mut out = crate::links::api::grant_json(&issued.grant, now_unix(), None);
    out["path"] = json!(issued.target);
    out["url"] = json!(format!("{}{}", base_url(state, &parts), issued.target));
    Ok(json_response(StatusCode::CREATED, &out))
}

/// `GET /v1/links?…`.
pub async fn list(state: &AppState, ctx: &RequestContext, req: Req) -> Resp {
    let (parts, _) = req.into_parts();
    let principal = ctx.require(state, &parts, Role::Publisher).await?;
    let query = ListQuery::parse(parts.uri.query().unwrap_or("")).map_err(LinkError::from)?;
    let (views, next) = state.links.list(&principal.scope, &query).await?;
    let now = now_unix();
    let grants: Vec<_> = views.iter().map(|v| v.to_json(now)).collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({"grants": grants, "next": next.map(|n| n.to_string())}),
    ))
}

/// `GET /v1/links/{grant}`.
pub async fn get(state: &AppState, ctx: &RequestContext, req: Req, id: GrantId) -> Resp {
    let (parts, _) = req.into_parts();
    let principal = ctx.require(state, &parts, Role::Publisher).await?;
    let view = state.links.grant(&principal.scope, id).await?;
    Ok(json_response(StatusCode::OK, &view.to_json(now_unix())))
}

/// `DELETE /v1/links/{grant}`.
pub async fn revoke(state: &AppState, ctx: &RequestContext, req: Req, id: GrantId) -> Resp {
    let (_, principal, body) =
        authorized_json::<RevokeBody>(state, ctx, req, Role::Publisher).await?;
    let reason = RevokeBody::reason(body.as_ref())?;
    let view = state
        .links
        .revoke(&publisher(ctx, &principal), id, &reason)
        .await?;
    Ok(json_response(StatusCode::OK, &view.to_json(now_unix())))
}

/// `POST /v1/links/revoke`.
pub async fn revoke_bulk(state: &AppState, ctx: &RequestContext, req: Req) -> Resp {
    let (_, principal, body) =
        authorized_json::<BulkBody>(state, ctx, req, Role::Publisher).await?;
    let (filter, reason) = body.ok_or(ApiError::JsonRequired)?.parse()?;
    let done = state
        .links
        .revoke_all(&publisher(ctx, &principal), &filter, &reason)
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "revoked": done.revoked.len(),
            "already_revoked": done.already_revoked,
            "grants": done.revoked.iter().map(ToString::to_string).collect::<Vec<_>>(),
        }),
    ))
}

/// Scheme and authority for issued links: `links.public_base_url`, else the issuing
/// request's own host (the publisher reached the gateway there), else the listen address.
pub(super) fn base_url(state: &AppState, parts: &http::request::Parts) -> String {
    if let Some(u) = &state.links.settings().public_base_url {
        return u.clone();
    }
    let scheme = if state.config.server.danger_plaintext_http {
        "http"
    } else {
        "https"
    };
    let host = parts
        .uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| {
            parts
                .headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
        })
        .filter(|h| {
            !h.is_empty()
                && h.len() <= 255
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
        })
        .unwrap_or_else(|| state.config.server.listen.to_string());
    format!("{scheme}://{host}")
}
