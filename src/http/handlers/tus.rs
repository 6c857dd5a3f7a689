//! The tus endpoints: authenticate the uploader, hand the request's headers and body to
//! [`Uploads`](crate::upload::Uploads), and turn what it returns into a response.
//!
//! The engine, not this file, parses the tus request headers (through the pure `tus`
//! core), plans, stores, and emits the upload audit events. This file checks
//! `Tus-Resumable` first on HEAD, PATCH and DELETE, builds the response headers with
//! `tus::plan`, and answers `OPTIONS` and CORS. Status codes and headers follow
//! `proto/upload-v1.md`; refusals become problems in `http::problem`.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode};

use super::super::AppState;
use super::super::edge::RequestContext;
use super::super::problem::ApiError;
use crate::auth::{Principal, Role};
use crate::tus::headers::{UPLOAD_METADATA, check_tus_resumable, options_headers};
use crate::tus::plan;
use crate::tus::record::UploadId;
use crate::upload::Caller;

/// Authenticates an uploader (admin passes) and describes it to the upload engine.
async fn uploader(
    state: &AppState,
    ctx: &RequestContext,
    parts: &http::request::Parts,
) -> Result<Caller, ApiError> {
    let p: Principal = ctx.require(state, parts, Role::Uploader).await?;
    Ok(Caller {
        name: p.name.to_string(),
        admin: p.is_admin(),
        audit: ctx.audit_context(Some(&p)),
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
    check_tus_resumable(headers.get("tus-resumable").map(HeaderValue::as_bytes))
        .map_err(|e| ApiError::Upload(e.into()))
}

/// `OPTIONS`: the server's tus capabilities (no authentication: they are public, and
/// browsers send CORS preflights without credentials). 204, or 200 for a CORS preflight
/// (`proto/upload-v1.md` §6; the CORS headers are added by [`cors`]).
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
    )
    .map_err(|e| ApiError::Upload(e.into()))?;
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

/// `GET {base}{id}/ledger`.
pub async fn ledger(
    state: &AppState,
    ctx: &RequestContext,
    id: UploadId,
    req: Request<axum::body::Body>,
) -> Result<Response<axum::body::Body>, ApiError> {
    let (parts, _) = req.into_parts();
    let who = uploader(state, ctx, &parts).await?;
    let doc = state.uploads.ledger(&who, id).await?;
    let body = serde_json::to_vec(&doc).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(with_headers(
        StatusCode::OK,
        vec![(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        axum::body::Body::from(body),
    ))
}

/// Headers a browser client may read (tus-js-client and Uppy need these).
const EXPOSE: &str = "Location, Upload-Offset, Upload-Length, Upload-Metadata, \
    Upload-Defer-Length, Upload-Concat, Upload-Expires, Tus-Resumable, Tus-Version, \
    Tus-Extension, Tus-Max-Size, Tus-Checksum-Algorithm, Repr-Digest, X-Request-Id";
/// Request headers a browser client may send.
const ALLOW_HEADERS: &str = "Authorization, Content-Type, Tus-Resumable, Upload-Length, \
    Upload-Offset, Upload-Metadata, Upload-Defer-Length, Upload-Concat, Upload-Checksum, \
    X-HTTP-Method-Override, X-Requested-With";

/// CORS for the upload endpoint: only for configured origins, never `*` (requests carry
/// credentials). A preflight also gets the allowed methods and headers.
pub fn cors(allowed: &[String], origin: Option<&HeaderValue>, preflight: bool, h: &mut HeaderMap) {
    h.append(header::VARY, HeaderValue::from_static("Origin"));
    let Some(origin) = origin else {
        return;
    };
    if !allowed.iter().any(|a| a.as_bytes() == origin.as_bytes()) {
        return;
    }
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(EXPOSE),
    );
    if preflight {
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("POST, GET, HEAD, PATCH, DELETE, OPTIONS"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(ALLOW_HEADERS),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("86400"),
        );
    }
}
