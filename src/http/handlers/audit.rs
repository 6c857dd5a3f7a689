//! Audit queries (auditor role) over [`crate::audit::search::AuditSearch`], which reads,
//! matches and records each query (`audit.queried`):
//!
//! * `GET /v1/audit/events?…` → `{"entries": [stored entries], "next_cursor",
//!   "indexed_through", "head"}` (parameters: `crate::audit::query`);
//! * `GET /v1/audit/trace/{id}` → `{"id", "entries": [stored entries], "lines": [one
//!   readable line per entry], "truncated", "indexed_through", "head"}`.

use http::{Request, StatusCode};
use serde_json::json;

use super::respond::{Resp, json_response};
use crate::audit::query::Query;
use crate::audit::query::trace::render_line;
use crate::audit::search::SearchError;
use crate::auth::Role;
use crate::http::AppState;
use crate::http::context::RequestContext;
use crate::ids::OpaqueId;

type Req = Request<axum::body::Body>;

/// `GET /v1/audit/events?…`.
pub async fn events(state: &AppState, ctx: &RequestContext, req: Req) -> Resp {
    let (parts, _) = req.into_parts();
    let principal = ctx.require(state, &parts, Role::Auditor).await?;
    let query = Query::parse(parts.uri.query().unwrap_or("")).map_err(SearchError::from)?;
    let actx = ctx.audit_context(Some(&principal));
    let page = state.audit_search.query(&actx, &query).await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "entries": page.entries,
            "next_cursor": page.next_cursor,
            "indexed_through": page.indexed_through,
            "head": page.head,
        }),
    ))
}

/// `GET /v1/audit/trace/{id}`.
pub async fn trace(state: &AppState, ctx: &RequestContext, req: Req, id: OpaqueId) -> Resp {
    let (parts, _) = req.into_parts();
    let principal = ctx.require(state, &parts, Role::Auditor).await?;
    let actx = ctx.audit_context(Some(&principal));
    let result = state.audit_search.trace(&actx, &id).await?;
    let mut entries = Vec::with_capacity(result.trace.len());
    let mut lines = Vec::with_capacity(result.trace.len());
    for (_, bytes, entry) in result.trace.entries() {
        entries.push(serde_json::from_slice::<serde_json::Value>(bytes).unwrap_or_default());
        lines.push(render_line(entry));
    }
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "id": result.id,
            "entries": entries,
            "lines": lines,
            "truncated": result.trace.truncated(),
            "indexed_through": result.indexed_through,
            "head": result.head,
        }),
    ))
}
