//! What every handler shares: reading a capped JSON body of a known shape after the caller
//! is authenticated, writing JSON responses, and the declared `Content-Length`.

use http::{HeaderValue, Request, Response, StatusCode, header};
use serde::de::DeserializeOwned;

use crate::auth::{Principal, Role};
use crate::http::AppState;
use crate::http::body::read_capped;
use crate::http::context::RequestContext;
use crate::http::problem::ApiError;

/// A handler's result.
pub type Resp = Result<Response<axum::body::Body>, ApiError>;

/// Authenticates the request for `role`, then reads its JSON body of type `T` (capped at
/// the API body limit; `None` when empty). Unknown fields are refused by `T`. A body must
/// say it is JSON (`application/json` or `application/*+json`, parameters allowed): any
/// other `Content-Type`, or none, is `415` — so a page cannot send the API a JSON body
/// disguised as a form or plain text, which browsers send cross-origin without asking.
/// The body must be a JSON object: serde also builds a struct from an array of its fields
/// in order (`[]` is a struct whose fields all have defaults), which no client means.
pub async fn authorized_json<T: DeserializeOwned>(
    state: &AppState,
    ctx: &RequestContext,
    req: Request<axum::body::Body>,
    role: Role,
) -> Result<(http::request::Parts, Principal, Option<T>), ApiError> {
    let declared = content_length(&req);
    let (parts, body) = req.into_parts();
    let principal = ctx.require(state, &parts, role).await?;
    let bytes = read_capped(declared, body, state.config.server.max_body_bytes.0).await?;
    if bytes.is_empty() {
        return Ok((parts, principal, None));
    }
    if !is_json(&parts.headers) {
        return Err(ApiError::NotJson);
    }
    if bytes.trim_ascii_start().first() != Some(&b'{') {
        return Err(ApiError::BadJson);
    }
    let value = serde_json::from_slice(&bytes).map_err(|_| ApiError::BadJson)?;
    Ok((parts, principal, Some(value)))
}

/// Whether the request's `Content-Type` is JSON: `application/json` or
/// `application/<something>+json`, any case, with or without parameters.
pub fn is_json(headers: &http::HeaderMap) -> bool {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return false;
    };
    let Ok(value) = value.to_str() else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.strip_prefix("application/") {
        Some(sub) => {
            sub == "json"
                || sub
                    .strip_suffix("+json")
                    .is_some_and(|s| !s.is_empty() && !s.contains('/'))
        }
        None => false,
    }
}

/// A JSON response.
pub fn json_response(status: StatusCode, value: &serde_json::Value) -> Response<axum::body::Body> {
    let mut r = Response::new(axum::body::Body::from(value.to_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// The response without its body (for HEAD), headers unchanged.
pub fn strip_body(resp: Response<axum::body::Body>) -> Response<axum::body::Body> {
    let (parts, _) = resp.into_parts();
    Response::from_parts(parts, axum::body::Body::empty())
}

/// The declared `Content-Length`, if valid.
pub fn content_length<B>(req: &Request<B>) -> Option<u64> {
    req.headers()
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(ct: Option<&[u8]>) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        if let Some(ct) = ct {
            h.insert(header::CONTENT_TYPE, HeaderValue::from_bytes(ct).unwrap());
        }
        h
    }

    #[test]
    fn only_json_media_types_are_json() {
        for ok in [
            &b"application/json"[..],
            b"Application/JSON",
            b"application/json; charset=utf-8",
            b" application/json ;charset=UTF-8",
            b"application/merge-patch+json",
            b"application/fhir+json",
        ] {
            assert!(is_json(&with(Some(ok))), "{}", String::from_utf8_lossy(ok));
        }
        for bad in [
            None,
            Some(&b""[..]),
            Some(b"text/plain"),
            Some(b"application/x-www-form-urlencoded"),
            Some(b"multipart/form-data; boundary=x"),
            Some(b"application/jsonx"),
            Some(b"application/+json"),
            Some(b"text/json"),
            Some(b"application/a/b+json"),
            Some(b"application/json\xff"),
        ] {
            assert!(!is_json(&with(bad)), "{bad:?}");
        }
    }
}
