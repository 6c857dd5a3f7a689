//! `GET|HEAD /invite` and `GET|HEAD /invite/assets/{name}`: the clinic upload page
//! ([`crate::http::page`]), served without authentication — it is static, and the
//! invitation token it works with stays in the URL fragment, which browsers never send.
//!
//! Each answer carries the page's Content-Security-Policy (the edge keeps a handler's own)
//! and `Referrer-Policy: no-referrer` (the edge's, on everything). The HTML is
//! `Cache-Control: no-store`; an asset is `no-cache` with a strong `ETag` (its SHA-256), so
//! a browser revalidates it (304 when unchanged) and never runs a stale script after an
//! upgrade.

use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};

use crate::http::page::{Asset, INDEX, PAGE_CSP};

/// `GET|HEAD /invite`: the page.
pub fn index() -> Response<axum::body::Body> {
    let mut r = with_body(&INDEX);
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// `GET|HEAD /invite/assets/{name}`: one of the page's files (the router found it).
pub fn asset(asset: &'static Asset, req: &Request<axum::body::Body>) -> Response<axum::body::Body> {
    let etag = crate::http::page::etag(asset);
    let fresh = req
        .headers()
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim() == etag || t.trim() == "*");
    let mut r = if fresh {
        let mut r = Response::new(axum::body::Body::empty());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r.headers_mut().insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(PAGE_CSP),
        );
        r
    } else {
        with_body(asset)
    };
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(etag) {
        r.headers_mut().insert(header::ETAG, v);
    }
    r
}

fn with_body(asset: &'static Asset) -> Response<axum::body::Body> {
    let mut r = Response::new(axum::body::Body::from(asset.bytes));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(asset.bytes.len()));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PAGE_CSP),
    );
    r
}
