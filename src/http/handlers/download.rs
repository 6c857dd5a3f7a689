//! `GET|HEAD /d/{artifact}?…`: downloads through signed links (no account). The flow —
//! limiter, link verification, grant, artifact, range plan, meter, durable audit, body —
//! is [`crate::links::Links::download`]'s; this handler parses the request into a
//! [`DownloadRequest`] and maps the [`Download`] to a response.
//!
//! Responses carry `Accept-Ranges`, a strong `ETag` and `Repr-Digest` (SHA-256 of the
//! whole file) on every 200 and 206, `Content-Disposition: attachment`, and
//! `Cache-Control: private, no-store`; no content coding is ever applied. Every refusal is
//! the same 403 problem (`link.refused`); the reason is in the audit trail only.

use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};

use super::respond::Resp;
use crate::auth::ClientIdentity;
use crate::http::AppState;
use crate::http::context::RequestContext;
use crate::http::problem::ApiError;
use crate::links::download::{Download, DownloadRequest};
use crate::signed_link::{CertFingerprint, Method};

/// Serves a download request.
pub async fn serve(state: &AppState, ctx: &RequestContext, req: Request<axum::body::Body>) -> Resp {
    let (parts, _) = req.into_parts();
    let target = parts.uri.path_and_query().map_or("", |pq| pq.as_str());
    serve_target(state, ctx, &parts, target, None).await
}

/// Serves `parts` as a download through the signed link `target`: the request's own for
/// `/d/…`; one the gateway signed for a caller it authenticated otherwise (the FHIR Bulk
/// file endpoint), who is then `principal` in the audit trail.
pub async fn serve_target(
    state: &AppState,
    ctx: &RequestContext,
    parts: &http::request::Parts,
    target: &str,
    principal: Option<&crate::auth::Principal>,
) -> Resp {
    let Some(method) = Method::from_http(&parts.method) else {
        return Err(ApiError::MethodNotAllowed { allow: "GET, HEAD" });
    };
    let request = DownloadRequest {
        method,
        target,
        range: single_header(&parts.headers, header::RANGE),
        if_range: single_header(&parts.headers, header::IF_RANGE),
        client_addr: ctx.client.client,
        // Put there by the edge from the TLS session only.
        client_cert: parts
            .extensions
            .get::<ClientIdentity>()
            .map(|c| CertFingerprint::from_bytes(c.fingerprint_sha256)),
        tls: ctx
            .conn
            .tls
            .as_ref()
            .map(|t| (t.version.clone(), t.cipher.clone())),
        audit: ctx.audit_context(principal),
    };
    let download = state.links.download(request).await?;
    respond(download)
}

/// The header value if the header appears exactly once; a repeated `Range` or `If-Range`
/// is malformed and ignored (a full response), as `crate::range` ignores malformed values.
fn single_header(headers: &HeaderMap, name: header::HeaderName) -> Option<&[u8]> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    match values.next() {
        None => Some(first.as_bytes()),
        Some(_) => None,
    }
}

fn respond(d: Download) -> Resp {
    let value =
        |s: &str| HeaderValue::from_str(s).map_err(|_| ApiError::Internal("download header value"));
    let mut resp = Response::new(axum::body::Body::empty());
    *resp.status_mut() = if d.partial {
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    };
    let h = resp.headers_mut();
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::ETAG, value(&d.etag.header_value())?);
    h.insert("repr-digest", value(&d.record.repr_digest())?);
    h.insert(header::CONTENT_TYPE, value(&d.shape.content_type)?);
    h.insert(
        header::CONTENT_LENGTH,
        HeaderValue::from(d.shape.content_length),
    );
    if let Some(cr) = &d.shape.content_range {
        h.insert(header::CONTENT_RANGE, value(cr)?);
    }
    h.insert(header::CONTENT_DISPOSITION, value(&d.disposition)?);
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    if let Some(body) = d.body {
        *resp.body_mut() = axum::body::Body::from_stream(body);
    }
    Ok(resp)
}
