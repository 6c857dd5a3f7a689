//! FHIR Bulk Data (`proto/bulk-v1.md`) over [`crate::bulk::Bulk`], which owns every flow
//! and audits inside it. This file parses, calls and maps:
//!
//! * `POST /v1/exports` (publisher) `{"batch","client_id","level"[,"group"][,"expires_in"]}`
//!   → 201 with the publication;
//! * `POST /v1/exports/batches` (publisher) `{"artifacts": [{"artifact","resource_type"}]
//!   | "batch"[, "profile"][, "provenance"]}` → 201 with the built, sealed batch;
//! * `GET /fhir/$export`, `/fhir/Patient/$export`, `/fhir/Group/{id}/$export` (SMART
//!   access token) → 202 with `Content-Location` (the job's status URL);
//! * `GET /fhir/bulk/{job}` → 202 with `X-Progress` and `Retry-After` while in progress,
//!   200 with the complete-status manifest (`application/json`);
//! * `DELETE /fhir/bulk/{job}` → 202;
//! * `GET|HEAD /fhir/bulk/{job}/files/{artifact}` (with `bulk.requires_access_token`) → the
//!   file, through the one download path (`download::serve_target`).
//!
//! Every refusal on `/fhir/…` leaves as an `OperationOutcome` (the edge renders the row
//! so); none of them is decided here. Without registered SMART clients there is no Bulk
//! service, and every one of these routes is 404.

use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use serde_json::json;

use super::respond::{Resp, authorized_json, json_response};
use crate::auth::{Principal, Role};
use crate::bulk::build::BuildBody;
use crate::bulk::record::{JobId, Publication};
use crate::bulk::request::{KickoffError, Level};
use crate::bulk::{Bulk, BulkCaller, BulkError, PublishBody, STATUS_PATH, Status};
use crate::http::AppState;
use crate::http::context::RequestContext;
use crate::http::problem::ApiError;
use crate::signed_link::ArtifactId;

type Req = Request<axum::body::Body>;

fn service(state: &AppState) -> Result<&Bulk, ApiError> {
    state.bulk.as_ref().ok_or(ApiError::NotFound)
}

/// The service and the SMART client calling (its access token's grant).
fn caller<'a>(
    state: &'a AppState,
    ctx: &RequestContext,
    parts: &http::request::Parts,
) -> Result<(&'a Bulk, BulkCaller), ApiError> {
    let (bulk, caller, _) = caller_and_principal(state, ctx, parts)?;
    Ok((bulk, caller))
}

fn caller_and_principal<'a>(
    state: &'a AppState,
    ctx: &RequestContext,
    parts: &http::request::Parts,
) -> Result<(&'a Bulk, BulkCaller, Principal), ApiError> {
    let bulk = service(state)?;
    let principal = crate::auth::authenticate(&state.authenticators, parts)?;
    let grant = principal.grant.clone().ok_or(BulkError::TokenRequired)?;
    let caller = BulkCaller {
        grant,
        audit: ctx.audit_context(Some(&principal)),
    };
    Ok((bulk, caller, principal))
}

/// A header's values joined by `,` (`None`: absent; a value that is not visible ASCII
/// counts as an empty one, which no check accepts).
fn joined(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    let values: Vec<&str> = headers
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap_or(""))
        .collect();
    (!values.is_empty()).then(|| values.join(","))
}

/// `GET /fhir/…/$export`.
pub async fn kickoff(
    state: &AppState,
    ctx: &RequestContext,
    req: Req,
    level: Result<Level, KickoffError>,
) -> Resp {
    let (parts, _) = req.into_parts();
    let (bulk, caller) = caller(state, ctx, &parts)?;
    let base = bulk.base_url()?.to_owned();
    let request = match parts.uri.path_and_query() {
        Some(pq) => format!("{base}{pq}"),
        None => format!("{base}{}", parts.uri.path()),
    };
    let accept = joined(&parts.headers, header::ACCEPT);
    let prefer = joined(&parts.headers, header::HeaderName::from_static("prefer"));
    let job = bulk
        .kickoff(
            &caller,
            level,
            accept.as_deref(),
            prefer.as_deref(),
            parts.uri.query().unwrap_or(""),
            request,
        )
        .await?;
    let mut resp = Response::new(axum::body::Body::empty());
    *resp.status_mut() = StatusCode::ACCEPTED;
    resp.headers_mut()
        .insert(header::CONTENT_LOCATION, status_url(&base, job)?);
    Ok(resp)
}

/// `GET /fhir/bulk/{job}`.
pub async fn status(state: &AppState, ctx: &RequestContext, req: Req, job: JobId) -> Resp {
    let (parts, _) = req.into_parts();
    let (bulk, caller) = caller(state, ctx, &parts)?;
    Ok(match bulk.status(&caller, job).await? {
        Status::InProgress {
            progress,
            retry_after,
        } => {
            let mut resp = Response::new(axum::body::Body::empty());
            *resp.status_mut() = StatusCode::ACCEPTED;
            let h = resp.headers_mut();
            h.insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            h.insert(
                "x-progress",
                HeaderValue::from_str(&progress)
                    .map_err(|_| ApiError::Internal("a progress text is not a header value"))?,
            );
            resp
        }
        Status::Complete(manifest) => json_response(StatusCode::OK, &manifest),
    })
}

/// `DELETE /fhir/bulk/{job}`.
pub async fn cancel(state: &AppState, ctx: &RequestContext, req: Req, job: JobId) -> Resp {
    let (parts, _) = req.into_parts();
    let (bulk, caller) = caller(state, ctx, &parts)?;
    bulk.cancel(&caller, job).await?;
    let mut resp = Response::new(axum::body::Body::empty());
    *resp.status_mut() = StatusCode::ACCEPTED;
    Ok(resp)
}

/// `GET|HEAD /fhir/bulk/{job}/files/{artifact}`: the service names the signed link, the
/// download path serves it (and audits the download under the client).
pub async fn file(
    state: &AppState,
    ctx: &RequestContext,
    req: Req,
    job: JobId,
    artifact: ArtifactId,
) -> Resp {
    let (parts, _) = req.into_parts();
    let (bulk, caller, principal) = caller_and_principal(state, ctx, &parts)?;
    let target = bulk.file(&caller, job, artifact).await?;
    super::download::serve_target(state, ctx, &parts, &target, Some(&principal)).await
}

/// `POST /v1/exports`.
pub async fn publish(state: &AppState, ctx: &RequestContext, req: Req) -> Resp {
    let bulk = service(state)?;
    let (_, principal, body) =
        authorized_json::<PublishBody>(state, ctx, req, Role::Publisher).await?;
    let body = body.ok_or(ApiError::JsonRequired)?;
    let who = super::links::publisher(ctx, &principal);
    let publication = bulk.publish(&who, body).await?;
    Ok(json_response(
        StatusCode::CREATED,
        &publication_json(&publication),
    ))
}

/// `POST /v1/exports/batches`: 201 with the batch (sealed; its verification runs on).
pub async fn build(state: &AppState, ctx: &RequestContext, req: Req) -> Resp {
    let bulk = service(state)?;
    let (_, principal, body) =
        authorized_json::<BuildBody>(state, ctx, req, Role::Publisher).await?;
    let body = body.ok_or(ApiError::JsonRequired)?;
    let who = super::links::publisher(ctx, &principal);
    let record = bulk.build(&who, body).await?;
    Ok(json_response(
        StatusCode::CREATED,
        &crate::batch::view::batch_json(&record),
    ))
}

/// A publication as `POST /v1/exports` answers it.
fn publication_json(p: &Publication) -> serde_json::Value {
    let (level, group) = match &p.level {
        Level::System => ("system", None),
        Level::Patient => ("patient", None),
        Level::Group(g) => ("group", Some(g.to_string())),
    };
    json!({
        "publication": p.id.to_string(),
        "batch": p.batch.to_string(),
        "client_id": p.client_id,
        "level": level,
        "group": group,
        "publisher": p.publisher,
        "created_at": p.created_at,
        "expires_at": p.expires_at,
    })
}

fn status_url(base: &str, job: JobId) -> Result<HeaderValue, ApiError> {
    HeaderValue::from_str(&format!("{base}{STATUS_PATH}{job}"))
        .map_err(|_| ApiError::Internal("a status URL is not a header value"))
}
