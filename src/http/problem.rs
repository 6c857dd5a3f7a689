//! The one place that maps errors to responses: the error table.
//!
//! Every failure a handler can have becomes an [`ApiError`], and handlers only use `?`:
//! each service's error converts into it. Every error type knows its row — HTTP status,
//! stable machine-readable `code`, static `title` and the headers its status needs — in
//! one place, the [`Describe`] implementations in this module's files:
//!
//! * [`row`](mod@row) — the row type and the trait;
//! * [`infra`] — state store, blob store, at-rest layer, audit trail, authentication;
//! * [`upload`] — tus refusals and the upload engine;
//! * [`links`] — downloads, the links API, artifact registration;
//! * [`smart`] — the SMART token endpoint (OAuth 2.0 error bodies);
//! * [`bulk`] — FHIR Bulk Data (`OperationOutcome` bodies on `/fhir/…`).
//! * [`audit`](mod@audit) — audit queries and traces.
//!
//! [`ApiError::into_response`] renders an `application/problem+json` body (RFC 9457) with
//! the code, the title, the status and the request id, adds the row's headers, and
//! `Retry-After` on any 503. Internal causes are logged with the request id and never reach
//! the body. The pure cores and the services know nothing of HTTP statuses.

use http::{HeaderValue, Response, StatusCode, header};

pub mod audit;
pub mod batch;
pub mod bulk;
pub mod infra;
pub mod invite;
pub mod links;
pub mod row;
pub mod smart;
pub mod upload;

pub use row::{Describe, Problem};

use crate::at_rest::AtRestError;
use crate::audit::AuditError;
use crate::auth::AuthError;
use crate::links::LinkError;
use crate::links::download::DownloadError;
use crate::links::publish::RegisterError;
use crate::state::StateError;
use crate::tus::TusError;
use crate::upload::UploadError;
use row::{INTERNAL, row};

/// Every way a request can fail.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No endpoint at this path.
    #[error("no such endpoint")]
    NotFound,
    /// The path exists but not for this method.
    #[error("method not allowed")]
    MethodNotAllowed {
        /// The methods that are allowed.
        allow: &'static str,
    },
    /// Authentication failed or is missing, or the principal lacks the role.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The body is larger than the endpoint accepts.
    #[error("payload too large (limit {limit} bytes)")]
    PayloadTooLarge {
        /// The limit.
        limit: u64,
    },
    /// The request head is larger than configured.
    #[error("request header fields too large")]
    HeadersTooLarge,
    /// The request head did not arrive within `server.header_read_timeout` (answered by
    /// the connection itself, not a handler: see `http::server`).
    #[error("the request head did not arrive in time")]
    HeaderTimeout,
    /// The request body could not be read.
    #[error("the request body could not be read")]
    BodyRead,
    /// The body is not JSON of the endpoint's shape.
    #[error("the body is not JSON of the expected shape")]
    BadJson,
    /// The endpoint needs a JSON body and got none.
    #[error("a JSON body is required")]
    JsonRequired,
    /// A body came with a `Content-Type` other than JSON (or none).
    #[error("the body's Content-Type is not application/json")]
    NotJson,
    /// The state store failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// The audit trail could not record the action: fail closed.
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// Reading or writing an encrypted object failed.
    #[error(transparent)]
    AtRest(#[from] AtRestError),
    /// An upload request failed.
    #[error(transparent)]
    Upload(#[from] UploadError),
    /// A download was not served.
    #[error(transparent)]
    Download(#[from] DownloadError),
    /// A links-API request failed.
    #[error(transparent)]
    Link(#[from] LinkError),
    /// An artifact was not registered.
    #[error(transparent)]
    Register(#[from] RegisterError),
    /// A batch request failed.
    #[error(transparent)]
    Batch(#[from] crate::batch::BatchError),
    /// A SMART token request failed.
    #[error(transparent)]
    Smart(#[from] crate::smart::SmartError),
    /// A FHIR Bulk Data request failed.
    #[error(transparent)]
    Bulk(#[from] crate::bulk::BulkError),
    /// An upload-invitation request failed.
    #[error(transparent)]
    Invite(#[from] crate::invite::InviteError),
    /// An audit query or trace failed.
    #[error(transparent)]
    Search(#[from] crate::audit::search::SearchError),
    /// A response could not be encoded (a bug).
    #[error("internal error: {0}")]
    Internal(&'static str),
}

impl From<TusError> for ApiError {
    fn from(e: TusError) -> Self {
        ApiError::Upload(e.into())
    }
}

impl Describe for ApiError {
    fn problem(&self) -> Problem {
        match self {
            ApiError::NotFound => row(
                StatusCode::NOT_FOUND,
                "request.not_found",
                "No such endpoint",
            ),
            ApiError::MethodNotAllowed { .. } => row(
                StatusCode::METHOD_NOT_ALLOWED,
                "request.method_not_allowed",
                "Method not allowed on this endpoint",
            ),
            ApiError::Auth(e) => e.problem(),
            ApiError::PayloadTooLarge { .. } => row(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request.body_too_large",
                "Request body too large",
            ),
            ApiError::HeadersTooLarge => row(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "request.headers_too_large",
                "Request header fields too large",
            ),
            ApiError::HeaderTimeout => row(
                StatusCode::REQUEST_TIMEOUT,
                "request.header_timeout",
                "The request head did not arrive in time",
            ),
            ApiError::BodyRead => row(
                StatusCode::BAD_REQUEST,
                "request.body_read",
                "The request body could not be read",
            ),
            ApiError::BadJson => row(
                StatusCode::BAD_REQUEST,
                "request.bad_json",
                "The body is not JSON of the expected shape (unknown fields are refused)",
            ),
            ApiError::JsonRequired => row(
                StatusCode::BAD_REQUEST,
                "request.bad_json",
                "A JSON body is required",
            ),
            ApiError::NotJson => row(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "request.unsupported_media_type",
                "The body must be sent as Content-Type: application/json",
            ),
            ApiError::State(e) => e.problem(),
            ApiError::Audit(e) => e.problem(),
            ApiError::AtRest(e) => e.problem(),
            ApiError::Upload(e) => e.problem(),
            ApiError::Download(e) => e.problem(),
            ApiError::Link(e) => e.problem(),
            ApiError::Register(e) => e.problem(),
            ApiError::Batch(e) => e.problem(),
            ApiError::Smart(e) => e.problem(),
            ApiError::Search(e) => e.problem(),
            ApiError::Bulk(e) => e.problem(),
            ApiError::Invite(e) => e.problem(),
            ApiError::Internal(_) => INTERNAL,
        }
    }

    fn headers(&self, h: &mut http::HeaderMap) {
        match self {
            ApiError::MethodNotAllowed { allow } => {
                h.insert(header::ALLOW, HeaderValue::from_static(allow));
            }
            ApiError::Auth(e) => e.headers(h),
            ApiError::Upload(e) => e.headers(h),
            ApiError::Download(e) => e.headers(h),
            ApiError::Bulk(e) => e.headers(h),
            ApiError::Invite(e) => e.headers(h),
            _ => {}
        }
    }

    fn members(&self) -> Option<serde_json::Map<String, serde_json::Value>> {
        match self {
            ApiError::Batch(e) => e.members(),
            ApiError::Upload(e) => e.members(),
            ApiError::Search(e) => e.members(),
            ApiError::Bulk(e) => e.members(),
            ApiError::Invite(e) => e.members(),
            _ => None,
        }
    }
}

impl ApiError {
    /// The stable code (for tests and logs).
    pub fn code(&self) -> &'static str {
        self.problem().code
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.problem().status
    }

    /// The problem response.
    pub fn into_response(self, request_id: &str) -> Response<axum::body::Body> {
        let (parts, body) = self.render(request_id).into_parts();
        Response::from_parts(parts, axum::body::Body::from(body))
    }

    /// The response on a FHIR endpoint (`/fhir/…`): the same row (status, code, title,
    /// headers) as an `OperationOutcome` (`application/fhir+json`), what a Bulk Data
    /// client reads (`proto/bulk-v1.md` §7).
    pub fn into_fhir_response(self, request_id: &str) -> Response<axum::body::Body> {
        let Problem {
            status,
            code,
            title,
        } = self.problem();
        if status.is_server_error() {
            tracing::error!(request_id, code, error = %self, "request failed");
        } else {
            tracing::debug!(request_id, code, error = %self, "request refused");
        }
        let body = crate::bulk::manifest::operation_outcome(bulk::issue_type(status), code, title);
        let mut resp = Response::new(axum::body::Body::from(body.to_string()));
        *resp.status_mut() = status;
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(crate::bulk::FHIR_JSON),
        );
        self.headers(h);
        if status == StatusCode::SERVICE_UNAVAILABLE && !h.contains_key(header::RETRY_AFTER) {
            h.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        resp
    }

    /// The problem response with its body as a string (for answers written outside
    /// hyper, such as the connection's own 408).
    pub fn render(self, request_id: &str) -> Response<String> {
        let Problem {
            status,
            code,
            title,
        } = self.problem();
        if status.is_server_error() {
            tracing::error!(request_id, code, error = %self, "request failed");
        } else {
            tracing::debug!(request_id, code, error = %self, "request refused");
        }
        if let ApiError::Smart(e) = &self
            && let Some(error) = e.oauth_error()
        {
            // RFC 6749 §5.2: OAuth clients read `error`, not a problem body.
            tracing::debug!(request_id, code, error = %self, "token request refused");
            let body = serde_json::json!({"error": error, "error_description": title});
            let mut resp = Response::new(body.to_string());
            *resp.status_mut() = status;
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            return resp;
        }
        let mut body = serde_json::json!({
            "type": format!("urn:sallyport:problem:{code}"),
            "title": title,
            "status": status.as_u16(),
            "code": code,
            "request_id": request_id,
        });
        if let (Some(extra), Some(obj)) = (self.members(), body.as_object_mut()) {
            for (k, v) in extra {
                obj.entry(k).or_insert(v);
            }
        }
        let mut resp = Response::new(body.to_string());
        *resp.status_mut() = status;
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        self.headers(h);
        if status == StatusCode::SERVICE_UNAVAILABLE && !h.contains_key(header::RETRY_AFTER) {
            h.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_json(resp: Response<axum::body::Body>) -> serde_json::Value {
        let bytes = crate::http::body::read_capped(None, resp.into_body(), 1 << 16)
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn problems_carry_code_status_and_request_id() {
        let resp = ApiError::Auth(AuthError::Missing).into_response("req-1");
        assert_eq!(resp.status(), 401);
        assert_eq!(resp.headers()["content-type"], "application/problem+json");
        assert_eq!(
            resp.headers()["www-authenticate"],
            r#"Bearer realm="sallyport""#
        );
        let j = body_json(resp).await;
        assert_eq!(j["code"], "auth.missing");
        assert_eq!(j["request_id"], "req-1");
        assert_eq!(j["status"], 401);
    }

    #[tokio::test]
    async fn internal_causes_never_reach_the_body() {
        let resp = ApiError::State(StateError::Unavailable(
            "redis://:hunter2@db:6379 refused".into(),
        ))
        .into_response("r");
        assert_eq!(resp.status(), 503);
        assert_eq!(resp.headers()["retry-after"], "5");
        let text = body_json(resp).await.to_string();
        assert!(!text.contains("hunter2"), "{text}");
        let resp = ApiError::Link(LinkError::Artifact(
            crate::artifact::ArtifactError::Corrupt {
                id: "secret-artifact".into(),
                source: crate::artifact::ArtifactRecordError::UnsupportedVersion(7),
            },
        ))
        .into_response("r");
        assert_eq!(resp.status(), 500);
        assert!(!body_json(resp).await.to_string().contains("secret"));
    }

    #[tokio::test]
    async fn link_refusals_rate_limits_and_ranges_carry_their_headers() {
        let resp = ApiError::from(DownloadError::Refused).into_response("r");
        assert_eq!(resp.status(), 403);
        assert_eq!(body_json(resp).await["code"], "link.refused");
        let resp = ApiError::from(DownloadError::RateLimited {
            retry_after_secs: 7,
        })
        .into_response("r");
        assert_eq!(resp.status(), 429);
        assert_eq!(resp.headers()["retry-after"], "7");
        let resp =
            ApiError::from(DownloadError::RangeNotSatisfiable { length: 1234 }).into_response("r");
        assert_eq!(resp.status(), 416);
        assert_eq!(resp.headers()["content-range"], "bytes */1234");
        let resp =
            ApiError::AtRest(AtRestError::Key(crate::keys::KeyError::Random)).into_response("r");
        assert_eq!(resp.status(), 503);
        assert_eq!(body_json(resp).await["code"], "server.key_unavailable");
    }
}
