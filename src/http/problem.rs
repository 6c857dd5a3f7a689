//! The one place that maps errors to responses.
//!
//! Every failure a handler can have becomes an [`ApiError`]; [`ApiError::into_response`]
//! turns it into an `application/problem+json` body (RFC 9457) with a stable
//! machine-readable `code`, a static `title` (never built from input or from an internal
//! error's text), the HTTP status, and the request id — plus the headers the status needs
//! (`WWW-Authenticate` on 401, `Allow` on 405, `Retry-After` on 503). Internal causes are
//! logged with the request id and never reach the body.

use http::{HeaderValue, Response, StatusCode, header};

use crate::at_rest::AtRestError;
use crate::audit::AuditError;
use crate::auth::AuthError;
use crate::blob::BlobError;
use crate::state::StateError;
use crate::tus::TusError;
use crate::tus::headers::{TUS_RESUMABLE, TUS_VERSION_HEADER, UPLOAD_EXPIRES, UPLOAD_OFFSET};
use crate::upload::UploadError;
use crate::upload::store::StoreError;

/// The static title of a tus refusal, by status.
fn tus_title(status: u16) -> &'static str {
    match status {
        400 => "Invalid tus request",
        403 => "A final concatenated upload cannot be patched",
        404 => "Upload not found",
        409 => "Upload-Offset does not match the upload's offset",
        410 => "Upload expired",
        412 => "Unsupported tus version",
        413 => "Upload too large",
        415 => "Content-Type must be application/offset+octet-stream",
        423 => "The upload is busy with another request",
        460 => "Checksum mismatch: the chunk was discarded",
        _ => "Internal error",
    }
}

fn upload_mapping(e: &UploadError) -> Mapping {
    let m = |status, code, title| Mapping {
        status,
        code,
        title,
    };
    match e {
        UploadError::Tus { error, .. } => {
            let hint = error.status_hint();
            Mapping {
                status: StatusCode::from_u16(hint).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                code: error.code(),
                title: tus_title(hint),
            }
        }
        UploadError::InUse => m(
            StatusCode::CONFLICT,
            "upload.in_use",
            "The upload is registered as an artifact and cannot be deleted",
        ),
        UploadError::TooManyOpen { .. } => m(
            StatusCode::TOO_MANY_REQUESTS,
            "upload.too_many_open",
            "Too many unfinished uploads for this client",
        ),
        UploadError::BodyAborted => m(
            StatusCode::BAD_REQUEST,
            "request.body_aborted",
            "The request body was interrupted; nothing was kept",
        ),
        UploadError::LeaseLost => m(
            StatusCode::SERVICE_UNAVAILABLE,
            "upload.lease_lost",
            "The upload lock was lost; retry",
        ),
        UploadError::Store(StoreError::State(
            StateError::Unavailable(_) | StateError::Locked(_),
        ))
        | UploadError::AtRest(AtRestError::State(StateError::Unavailable(_))) => m(
            StatusCode::SERVICE_UNAVAILABLE,
            "server.state_unavailable",
            "State store unavailable",
        ),
        UploadError::AtRest(AtRestError::Blob(BlobError::Io(_))) => m(
            StatusCode::SERVICE_UNAVAILABLE,
            "server.storage_unavailable",
            "Storage unavailable",
        ),
        UploadError::AtRest(AtRestError::Key(_)) => m(
            StatusCode::SERVICE_UNAVAILABLE,
            "server.key_unavailable",
            "Encryption key unavailable",
        ),
        UploadError::AtRest(AtRestError::ConcurrentWrite) => m(
            StatusCode::LOCKED,
            "tus.locked",
            "The upload is busy with another request",
        ),
        _ => m(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server.internal",
            "Internal error",
        ),
    }
}

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
    /// Authentication failed or is missing.
    #[error("unauthorized: {0}")]
    Unauthorized(AuthError),
    /// Authenticated but not allowed.
    #[error("forbidden")]
    Forbidden {
        /// Stable code, e.g. `auth.missing_role`.
        code: &'static str,
    },
    /// The body is larger than the endpoint accepts.
    #[error("payload too large (limit {limit} bytes)")]
    PayloadTooLarge {
        /// The limit.
        limit: u64,
    },
    /// The request head is larger than configured.
    #[error("request header fields too large")]
    HeadersTooLarge,
    /// The request is malformed in a way the code names.
    #[error("bad request: {code}")]
    BadRequest {
        /// Stable code, e.g. `request.bad_json`.
        code: &'static str,
        /// Static explanation.
        title: &'static str,
    },
    /// The state store failed: fail closed, retry may help.
    #[error(transparent)]
    State(#[from] StateError),
    /// The blob store failed.
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// The audit trail could not record the action: fail closed.
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// An upload request failed.
    #[error(transparent)]
    Upload(#[from] UploadError),
    /// A download link was refused, for any reason. The client sees one generic answer;
    /// the specific reason is only in the audit trail (`download.rejected`).
    #[error("link refused")]
    LinkRefused,
    /// Too many forged or malformed links from this client: 429 with `Retry-After`.
    #[error("rate limited (retry after {retry_after_secs} s)")]
    RateLimited {
        /// Seconds until the client may try again.
        retry_after_secs: u64,
    },
    /// No requested range overlaps the representation: 416 with `Content-Range: bytes */len`.
    #[error("range not satisfiable")]
    RangeNotSatisfiable {
        /// The representation's length.
        length: u64,
    },
    /// A resource named by id does not exist (`artifact.not_found`, `grant.not_found`…).
    #[error("not found: {code}")]
    ResourceNotFound {
        /// Stable code.
        code: &'static str,
        /// Static title.
        title: &'static str,
    },
    /// The request conflicts with the resource's state (e.g. an upload not complete).
    #[error("conflict: {code}")]
    Conflict {
        /// Stable code.
        code: &'static str,
        /// Static title.
        title: &'static str,
    },
    /// Reading or writing an encrypted object failed.
    #[error(transparent)]
    AtRest(#[from] AtRestError),
    /// A bug or an unexpected condition.
    #[error("internal error: {0}")]
    Internal(String),
}

struct Mapping {
    status: StatusCode,
    code: &'static str,
    title: &'static str,
}

impl ApiError {
    fn mapping(&self) -> Mapping {
        use ApiError::*;
        let m = |status, code, title| Mapping {
            status,
            code,
            title,
        };
        match self {
            NotFound => m(
                StatusCode::NOT_FOUND,
                "request.not_found",
                "No such endpoint",
            ),
            MethodNotAllowed { .. } => m(
                StatusCode::METHOD_NOT_ALLOWED,
                "request.method_not_allowed",
                "Method not allowed on this endpoint",
            ),
            Unauthorized(AuthError::Missing) => m(
                StatusCode::UNAUTHORIZED,
                "auth.missing",
                "Authentication required",
            ),
            Unauthorized(AuthError::Malformed) => m(
                StatusCode::UNAUTHORIZED,
                "auth.malformed",
                "Malformed Authorization header",
            ),
            Unauthorized(_) => m(
                StatusCode::UNAUTHORIZED,
                "auth.invalid",
                "Invalid credentials",
            ),
            Forbidden { code } => m(
                StatusCode::FORBIDDEN,
                code,
                "Not allowed for this principal",
            ),
            PayloadTooLarge { .. } => m(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request.body_too_large",
                "Request body too large",
            ),
            HeadersTooLarge => m(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "request.headers_too_large",
                "Request header fields too large",
            ),
            BadRequest { code, title } => m(StatusCode::BAD_REQUEST, code, title),
            State(StateError::Invalid(_) | StateError::Corrupt(_)) | Internal(_) => m(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server.internal",
                "Internal error",
            ),
            State(_) => m(
                StatusCode::SERVICE_UNAVAILABLE,
                "server.state_unavailable",
                "State store unavailable",
            ),
            Blob(BlobError::NotFound(_)) => m(
                StatusCode::NOT_FOUND,
                "object.not_found",
                "Object not found",
            ),
            Blob(BlobError::Io(_)) => m(
                StatusCode::SERVICE_UNAVAILABLE,
                "server.storage_unavailable",
                "Storage unavailable",
            ),
            Blob(_) => m(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server.internal",
                "Internal error",
            ),
            Audit(_) | Upload(UploadError::Audit(_)) => m(
                StatusCode::SERVICE_UNAVAILABLE,
                "server.audit_unavailable",
                "Audit trail unavailable; the action was not performed",
            ),
            Upload(e) => upload_mapping(e),
            LinkRefused => m(
                StatusCode::FORBIDDEN,
                "link.refused",
                "This link cannot be used",
            ),
            RateLimited { .. } => m(
                StatusCode::TOO_MANY_REQUESTS,
                "request.rate_limited",
                "Too many invalid links from this address; retry later",
            ),
            RangeNotSatisfiable { .. } => m(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range.not_satisfiable",
                "No requested range overlaps the file",
            ),
            ResourceNotFound { code, title } => m(StatusCode::NOT_FOUND, code, title),
            Conflict { code, title } => m(StatusCode::CONFLICT, code, title),
            AtRest(AtRestError::State(StateError::Unavailable(_) | StateError::Locked(_))) => m(
                StatusCode::SERVICE_UNAVAILABLE,
                "server.state_unavailable",
                "State store unavailable",
            ),
            AtRest(AtRestError::Blob(BlobError::Io(_))) => m(
                StatusCode::SERVICE_UNAVAILABLE,
                "server.storage_unavailable",
                "Storage unavailable",
            ),
            AtRest(AtRestError::Key(_)) => m(
                StatusCode::SERVICE_UNAVAILABLE,
                "server.key_unavailable",
                "Encryption key unavailable",
            ),
            AtRest(_) => m(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server.internal",
                "Internal error",
            ),
        }
    }

    /// The stable code (for tests and logs).
    pub fn code(&self) -> &'static str {
        self.mapping().code
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.mapping().status
    }

    /// The problem response.
    pub fn into_response(self, request_id: &str) -> Response<axum::body::Body> {
        let Mapping {
            status,
            code,
            title,
        } = self.mapping();
        if status.is_server_error() {
            tracing::error!(request_id, code, error = %self, "request failed");
        } else {
            tracing::debug!(request_id, code, error = %self, "request refused");
        }
        let body = serde_json::json!({
            "type": format!("urn:sallyport:problem:{code}"),
            "title": title,
            "status": status.as_u16(),
            "code": code,
            "request_id": request_id,
        });
        let mut resp = Response::new(axum::body::Body::from(body.to_string()));
        *resp.status_mut() = status;
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        match &self {
            ApiError::Unauthorized(e) => {
                let value = match e {
                    AuthError::Missing => r#"Bearer realm="sallyport""#,
                    _ => r#"Bearer realm="sallyport", error="invalid_token""#,
                };
                h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(value));
            }
            ApiError::MethodNotAllowed { allow } => {
                h.insert(header::ALLOW, HeaderValue::from_static(allow));
            }
            ApiError::Upload(e) => {
                h.insert(
                    TUS_RESUMABLE,
                    HeaderValue::from_static(crate::tus::TUS_VERSION),
                );
                if let UploadError::Tus { error, expires } = e {
                    match error {
                        TusError::UnsupportedVersion => {
                            h.insert(
                                TUS_VERSION_HEADER,
                                HeaderValue::from_static(crate::tus::TUS_VERSION),
                            );
                        }
                        TusError::OffsetMismatch { current, .. } => {
                            h.insert(UPLOAD_OFFSET, HeaderValue::from(*current));
                        }
                        TusError::Locked { retry_after_secs } => {
                            h.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
                        }
                        _ => {}
                    }
                    if let Some(v) =
                        expires.and_then(|t| HeaderValue::from_str(&t.to_http_date()).ok())
                    {
                        h.insert(UPLOAD_EXPIRES, v);
                    }
                }
                if status == StatusCode::SERVICE_UNAVAILABLE {
                    h.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
                }
            }
            ApiError::RateLimited { retry_after_secs } => {
                h.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            ApiError::RangeNotSatisfiable { length } => {
                if let Ok(v) =
                    HeaderValue::from_str(&crate::range::unsatisfied_content_range(*length))
                {
                    h.insert(header::CONTENT_RANGE, v);
                }
                h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
            }
            _ if status == StatusCode::SERVICE_UNAVAILABLE => {
                h.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            _ => {}
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
        let resp = ApiError::Unauthorized(AuthError::Missing).into_response("req-1");
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
        let resp = ApiError::Internal("secret detail".into()).into_response("r");
        assert!(!body_json(resp).await.to_string().contains("secret"));
    }

    #[tokio::test]
    async fn link_refusals_rate_limits_and_ranges_carry_their_headers() {
        let resp = ApiError::LinkRefused.into_response("r");
        assert_eq!(resp.status(), 403);
        assert_eq!(body_json(resp).await["code"], "link.refused");
        let resp = ApiError::RateLimited {
            retry_after_secs: 7,
        }
        .into_response("r");
        assert_eq!(resp.status(), 429);
        assert_eq!(resp.headers()["retry-after"], "7");
        let resp = ApiError::RangeNotSatisfiable { length: 1234 }.into_response("r");
        assert_eq!(resp.status(), 416);
        assert_eq!(resp.headers()["content-range"], "bytes */1234");
        let resp =
            ApiError::AtRest(AtRestError::Key(crate::keys::KeyError::Random)).into_response("r");
        assert_eq!(resp.status(), 503);
        assert_eq!(body_json(resp).await["code"], "server.key_unavailable");
    }
}
