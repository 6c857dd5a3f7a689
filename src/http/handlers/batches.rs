//! The batches API (`proto/batches-v1.md`) over [`crate::batch::Batches`], which owns every
//! flow and audits inside it. This file parses, calls and maps:
//!
//! * `POST /v1/batches` (uploader) → 201 + `Location`; the body is passed on as bytes,
//!   capped at both documents' limits, so each document is kept byte for byte;
//! * `GET /v1/batches[?state=…&after=…&limit=…]`, `GET /v1/batches/{id}` (owner, auditor);
//! * `GET /v1/batches/{id}/manifest|provenance|report` → the stored bytes, `Repr-Digest`;
//! * `POST /v1/batches/{id}/seal` (uploader) → 202;
//! * `POST /v1/batches/{id}/release|purge` (auditor) with `{"reason": …}` → 200 (202 while
//!   a release waits for a second auditor).

use base64::Engine as _;
use http::{HeaderValue, Request, Response, StatusCode, header};
use serde::Deserialize;
use serde_json::json;

use super::respond::{Resp, authorized_json, content_length, json_response};
use crate::auth::{Principal, Role};
use crate::batch::review::{Release, check_reason};
use crate::batch::view::batch_json;
use crate::batch::{BatchId, DocumentKind, ListQuery, Who};
use crate::http::AppState;
use crate::http::body::read_capped;
use crate::http::context::RequestContext;
use crate::http::problem::ApiError;

type Req = Request<axum::body::Body>;

fn who(ctx: &RequestContext, p: &Principal) -> Who {
    Who {
        name: p.name.to_string(),
        auditor: p.roles.allows(Role::Auditor),
        admin: p.roles.allows(Role::Admin),
        audit: ctx.audit_context(Some(p)),
    }
}

/// A reader: an uploader or a publisher (its own batches: a publisher owns the outbound
/// batches it builds, `POST /v1/exports/batches`) or an auditor (all); otherwise the
/// audited refusal for the auditor role.
async fn reader(
    state: &AppState,
    ctx: &RequestContext,
    parts: &http::request::Parts,
) -> Result<Who, ApiError> {
    let p = crate::auth::authenticate(&state.authenticators, parts)?;
    if [Role::Uploader, Role::Publisher, Role::Auditor]
        .iter()
        .any(|r| p.roles.allows(*r))
    {
        return Ok(who(ctx, &p));
    }
    let p = ctx.require(state, parts, Role::Auditor).await?;
    Ok(who(ctx, &p))
}

/// `POST /v1/batches`.
pub async fn open(state: &AppState, ctx: &RequestContext, req: Req) -> Resp {
    let declared = content_length(&req);
    let (parts, body) = req.into_parts();
    let p = ctx.require(state, &parts, Role::Uploader).await?;
    let bytes = read_capped(declared, body, state.batches.max_open_body()).await?;
    if bytes.is_empty() {
        return Err(ApiError::JsonRequired);
    }
    if !super::respond::is_json(&parts.headers) {
        return Err(ApiError::NotJson);
    }
    let record = state.batches.open(&who(ctx, &p), &bytes).await?;
    let mut resp = json_response(StatusCode::CREATED, &batch_json(&record));
    let location = HeaderValue::from_str(&format!("/v1/batches/{}", record.id))
        .map_err(|_| ApiError::Internal("a batch location is not a header value"))?;
    resp.headers_mut().insert(header::LOCATION, location);
    Ok(resp)
}

/// `GET /v1/batches`.
pub async fn list(state: &AppState, ctx: &RequestContext, req: Req) -> Resp {
    let (parts, _) = req.into_parts();
    let who = reader(state, ctx, &parts).await?;
    let query = ListQuery::parse(parts.uri.query().unwrap_or(""))?;
    let page = state.batches.list(&who, &query).await?;
    let batches: Vec<_> = page.batches.iter().map(batch_json).collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({"batches": batches, "next": page.next}),
    ))
}

/// `GET /v1/batches/{id}`.
pub async fn get(state: &AppState, ctx: &RequestContext, req: Req, id: BatchId) -> Resp {
    let (parts, _) = req.into_parts();
    let who = reader(state, ctx, &parts).await?;
    let record = state.batches.get(&who, id).await?;
    Ok(json_response(StatusCode::OK, &batch_json(&record)))
}

/// `GET /v1/batches/{id}/manifest|provenance`.
pub async fn document(
    state: &AppState,
    ctx: &RequestContext,
    req: Req,
    id: BatchId,
    kind: DocumentKind,
) -> Resp {
    let (parts, _) = req.into_parts();
    let who = reader(state, ctx, &parts).await?;
    let (bytes, sha256) = state.batches.document(&who, id, kind).await?;
    exact_json(bytes, &sha256)
}

/// `GET /v1/batches/{id}/report`.
pub async fn report(state: &AppState, ctx: &RequestContext, req: Req, id: BatchId) -> Resp {
    let (parts, _) = req.into_parts();
    let who = reader(state, ctx, &parts).await?;
    let (bytes, sha256) = state.batches.report(&who, id).await?;
    exact_json(bytes, &sha256)
}

/// `POST /v1/batches/{id}/seal`.
pub async fn seal(state: &AppState, ctx: &RequestContext, req: Req, id: BatchId) -> Resp {
    let (parts, _) = req.into_parts();
    let p = ctx.require(state, &parts, Role::Uploader).await?;
    let record = state.batches.seal(&who(ctx, &p), id).await?;
    Ok(json_response(StatusCode::ACCEPTED, &batch_json(&record)))
}

/// The body of release and purge.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReasonBody {
    reason: Option<String>,
}

/// `POST /v1/batches/{id}/release`.
pub async fn release(state: &AppState, ctx: &RequestContext, req: Req, id: BatchId) -> Resp {
    let (_, p, body) = authorized_json::<ReasonBody>(state, ctx, req, Role::Auditor).await?;
    let reason = check_reason(body.as_ref().and_then(|b| b.reason.as_deref()))?;
    Ok(
        match state.batches.release(&who(ctx, &p), id, &reason).await? {
            Release::Released(r) => json_response(StatusCode::OK, &batch_json(&r)),
            Release::AwaitingSecond(r) => json_response(StatusCode::ACCEPTED, &batch_json(&r)),
        },
    )
}

/// `POST /v1/batches/{id}/purge`.
pub async fn purge(state: &AppState, ctx: &RequestContext, req: Req, id: BatchId) -> Resp {
    let (_, p, body) = authorized_json::<ReasonBody>(state, ctx, req, Role::Auditor).await?;
    let reason = check_reason(body.as_ref().and_then(|b| b.reason.as_deref()))?;
    let record = state.batches.purge(&who(ctx, &p), id, &reason).await?;
    Ok(json_response(StatusCode::OK, &batch_json(&record)))
}

/// Stored JSON bytes as they are, with their digest.
fn exact_json(bytes: bytes::Bytes, sha256_hex: &str) -> Resp {
    let mut digest = [0u8; 32];
    hex::decode_to_slice(sha256_hex, &mut digest)
        .map_err(|_| ApiError::Internal("a stored digest is not hex"))?;
    let repr = format!(
        "sha-256=:{}:",
        base64::engine::general_purpose::STANDARD.encode(digest)
    );
    let mut r = Response::new(axum::body::Body::from(bytes));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(
        "repr-digest",
        HeaderValue::from_str(&repr).map_err(|_| ApiError::Internal("a digest header"))?,
    );
    Ok(r)
}
