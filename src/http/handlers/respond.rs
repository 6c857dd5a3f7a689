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
/// the API body limit; `None` when empty). Unknown fields are refused by `T`.
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
    let value = serde_json::from_slice(&bytes).map_err(|_| ApiError::BadJson)?;
    Ok((parts, principal, Some(value)))
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
