//! The tus endpoints: authenticate the uploader, hand the request's headers and body to
//! [`Uploads`](crate::upload::Uploads), and turn what it returns into a response.
//!
//! The engine, not this file, parses the tus request headers (through the pure `tus`
//! core), plans, stores, and emits the upload audit events. This file checks
//! `Tus-Resumable` first on HEAD, PATCH and DELETE, builds the response headers with
//! `tus::plan`, and answers `OPTIONS` (CORS is the edge's, `http::cors`). Status codes and headers follow
//! `proto/upload-v1.md`; refusals become problems in `http::problem`.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode};

use crate::auth::{Principal, Role};
use crate::http::AppState;
use crate::http::context::RequestContext;
use crate::http::problem::ApiError;
use crate::tus::headers::{UPLOAD_METADATA, check_tus_resumable, options_headers};
use crate::tus::plan;
use crate::tus::record::UploadId;
use crate::upload::Caller;

/// Authenticates an uploader (admin passes) and describes it to the upload engine. A
/// request made with an upload invitation is admitted by the invitation service instead
/// (its record checked on every request), and carries the invitation's bounds.
async fn uploader(
    state: &AppState,
    ctx: &RequestContext,
    parts: &http::request::Parts,
) -> Result<Caller, ApiError> {
    let p: Principal = crate::auth::authenticate(&state.authenticators, parts)?;
    if let Some(pass) = &p.invitation {
        let (_, caller) = state
            .invitations
            .admit(pass, ctx.audit_context(Some(&p)))
            .await?;
        return Ok(caller);
    }
    let p: Principal = ctx.check_role(state, p, Role::Uploader).await?;
    Ok(Caller {
        name: p.name.to_string(),
        admin: p.is_admin(),
        audit: ctx.audit_context(Some(&p)),
        bounds: None,
    })
}

fn with_headers(
    status: StatusCode,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: axum::body::Body,
) -> Response<axum::body::Body> {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    for (k, v) in headers {
        r.headers_mut().insert(k, v);
    }
    r
}

fn tus_version(headers: &HeaderMap) -> Result<(), ApiError> {
    Ok(check_tus_resumable(
        headers.get("tus-resumable").map(HeaderValue::as_bytes),
    )?)
}

/// `OPTIONS`: the server's tus capabilities (no authentication: they are public, and
/// browsers send CORS preflights without credentials). 204, or 200 for a CORS preflight
/// (`proto/upload-v1.md` §6; the CORS headers are added by `http::cors`).
pub fn options(state: &AppState, req: &Request<axum::body::Body>) -> Response<axum::body::Body> {
    let preflight = req
        .headers()
        .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    with_headers(
        if preflight {
            StatusCode::OK
        } else {
            StatusCode::NO_CONTENT
        },
        options_headers(&state.uploads.settings().limits),
        axum::body::Body::empty(),
    )
}

/// `POST {base}`.
pub async fn create(
    state: &AppState,
    ctx: &RequestContext,
    req: Request<axum::body::Body>,
) -> Result<Response<axum::body::Body>, ApiError> {
    let (parts, body) = req.into_parts();
    let who = uploader(state, ctx, &parts).await?;
    let outcome = state.uploads.create(&who, &parts.headers, body).await?;
    Ok(with_headers(
        StatusCode::CREATED,
        plan::creation_headers(&outcome.record, &state.uploads.settings().base),
        axum::body::Body::empty(),
    ))
}

/// `PATCH {base}{id}`.
pub async fn patch(
    state: &AppState,
    ctx: &RequestContext,
    id: UploadId,
    req: Request<axum::body::Body>,
) -> Result<Response<axum::body::Body>, ApiError> {
    let (parts, body) = req.into_parts();
    tus_version(&parts.headers)?;
    let who = uploader(state, ctx, &parts).await?;
    let outcome = state.uploads.patch(&who, id, &parts.headers, body).await?;
    Ok(with_headers(
        StatusCode::NO_CONTENT,
        plan::patch_headers(&outcome.record),
        axum::body::Body::empty(),
    ))
}

/// `HEAD {base}{id}`.
pub async fn head(
    state: &AppState,
    ctx: &RequestContext,
    id: UploadId,
    req: Request<axum::body::Body>,
) -> Result<Response<axum::body::Body>, ApiError> {
    let (parts, _) = req.into_parts();
    tus_version(&parts.headers)?;
    let who = uploader(state, ctx, &parts).await?;
    let (record, metadata) = state.uploads.head(&who, id).await?;
    let mut headers = plan::plan_head(
        &record,
        who_requester(&who),
        crate::tus::dates::Timestamp::now(),
        &state.uploads.settings().base,
    )?;
    if let Some(m) = metadata.and_then(|m| HeaderValue::from_str(&m).ok()) {
        headers.push((UPLOAD_METADATA, m));
    }
    Ok(with_headers(
        StatusCode::OK,
        headers,
        axum::body::Body::empty(),
    ))
}

fn who_requester(who: &Caller) -> crate::tus::Requester<'_> {
    crate::tus::Requester {
        name: &who.name,
        admin: who.admin,
    }
}

/// `DELETE {base}{id}`.
pub async fn delete(
    state: &AppState,
    ctx: &RequestContext,
    id: UploadId,
    req: Request<axum::body::Body>,
) -> Result<Response<axum::body::Body>, ApiError> {
    let (parts, _) = req.into_parts();
    tus_version(&parts.headers)?;
    let who = uploader(state, ctx, &parts).await?;
    state.uploads.terminate(&who, id).await?;
    Ok(with_headers(
        StatusCode::NO_CONTENT,
        vec![crate::tus::headers::tus_resumable_header()],
        axum::body::Body::empty(),
    ))
}

/// `GET {base}{id}/ledger`: the document streamed as the engine reads it, page by page
/// (no `Content-Length`; a stored ledger found inconsistent mid-way breaks the body, and
/// is logged, rather than end as a document that looks whole).
pub async fn ledger(
    state: &AppState,
    ctx: &RequestContext,
    id: UploadId,
    req: Request<axum::body::Body>,
) -> Result<Response<axum::body::Body>, ApiError> {
    use futures_util::StreamExt;
    let (parts, _) = req.into_parts();
    let who = uploader(state, ctx, &parts).await?;
    let stream = state.uploads.ledger_stream(&who, id).await?;
    let request_id = ctx.request_id.clone();
    let body = stream.map(move |piece| {
        piece.map_err(|e| {
            tracing::error!(request_id = %request_id, error = %e, "ledger stream failed");
            std::io::Error::other("the ledger could not be read")
        })
    });
    Ok(with_headers(
        StatusCode::OK,
        vec![(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        axum::body::Body::from_stream(body),
    ))
}
