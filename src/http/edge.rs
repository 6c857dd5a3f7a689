//! The request pipeline every request goes through, in order: request id → client address
//! → header-size check → route → handler → problem mapping → security headers → metrics.
//!
//! The verified TLS client certificate of the connection ([`ConnInfo::client`]) is put
//! into every request's extensions here, after removing any the request carried, so that
//! authentication and link checks read one source that only the TLS layer fills.
//!
//! The client address ([`ConnInfo::client_for`]) is computed here once per request and
//! handed to everything that judges or records the client: the bad-link limiter, link
//! bindings to a client network, audit entries and the security-event summaries.

use std::sync::Arc;
use std::time::Instant;

use http::{HeaderValue, Request, Response, header};

use super::AppState;
use super::context::{ConnInfo, RequestContext};
use super::endpoint::Endpoint;
use super::handlers;
use super::problem::ApiError;
use crate::auth::{AuthError, ClientIdentity};
use crate::metrics::{EndpointLabels, RequestLabels};

/// A fresh request id: 16 random bytes (128 bits, so ids do not collide across instances
/// and years of audit trail), as 32 lowercase hex digits.
fn new_request_id() -> String {
    let mut b = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut b);
    hex::encode(b)
}

/// tus core: a client that cannot send PATCH or DELETE sends POST with
/// `X-HTTP-Method-Override`. Honoured only on the upload endpoint and only for those two.
fn apply_method_override(state: &AppState, req: &mut Request<axum::body::Body>) {
    if req.method() != http::Method::POST
        || !req.uri().path().starts_with(state.routes.uploads.as_str())
    {
        return;
    }
    let method = match req
        .headers()
        .get("x-http-method-override")
        .map(|v| v.as_bytes())
    {
        Some(b"PATCH") => http::Method::PATCH,
        Some(b"DELETE") => http::Method::DELETE,
        _ => return,
    };
    *req.method_mut() = method;
}

/// Sum of header name and value lengths, the way limits are usually counted.
fn header_bytes<B>(req: &Request<B>) -> usize {
    req.headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum::<usize>()
        + req.uri().to_string().len()
}

/// Handles one request.
pub async fn handle<B>(
    state: Arc<AppState>,
    conn: Arc<ConnInfo>,
    req: Request<B>,
) -> Response<axum::body::Body>
where
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    let started = Instant::now();
    let request_id = new_request_id();
    // HTTP/2 ends an unread body with its own stream reset; only HTTP/1 needs telling.
    let h1 = req.version() <= http::Version::HTTP_11;
    let mut body_read = None;
    let mut req = req.map(|b| {
        let body = axum::body::Body::new(b);
        if !h1 {
            return body;
        }
        let (body, done) = super::body::watch(body);
        body_read = Some(done);
        body
    });
    apply_method_override(&state, &mut req);
    // The verified client certificate comes from the TLS session and from nowhere else:
    // whatever a request arrives with is dropped before the session's is put in.
    req.extensions_mut().remove::<ClientIdentity>();
    if let Some(identity) = &conn.client {
        req.extensions_mut().insert(identity.clone());
    }
    let routed = if header_bytes(&req) > state.config.server.max_header_bytes.0 as usize {
        Err(ApiError::HeadersTooLarge)
    } else {
        Endpoint::parse(req.method(), req.uri().path(), &state.routes).and_then(|e| {
            // Refuse a declared oversize body before reading a byte of it.
            match e.body_limit(state.config.server.max_body_bytes.0) {
                Some(limit) if handlers::content_length(&req).is_some_and(|n| n > limit) => {
                    Err(ApiError::PayloadTooLarge { limit })
                }
                _ => Ok(e),
            }
        })
    };
    let origin = req.headers().get(header::ORIGIN).cloned();
    let preflight = req.method() == http::Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let tus = routed.as_ref().is_ok_and(Endpoint::is_tus);
    let client = conn.client_for(&state.config.server, req.headers());
    let head = req.method() == http::Method::HEAD;
    // FHIR clients read `OperationOutcome`s, not problems.
    let fhir = req.uri().path().starts_with(super::endpoint::FHIR_BASE);
    let (name, is_api, result) = match routed {
        Ok(endpoint) => {
            let ctx = RequestContext {
                request_id: request_id.clone(),
                endpoint: endpoint.clone(),
                conn,
                client,
            };
            (
                endpoint.name(),
                endpoint.is_api(),
                handlers::dispatch(&state, &ctx, req).await,
            )
        }
        Err(e) => ("unrouted", true, Err(e)),
    };
    if let Err(ApiError::Auth(e)) = &result {
        let reason = match e {
            AuthError::Missing => Some("missing"),
            AuthError::Malformed => Some("malformed"),
            AuthError::Invalid => Some("invalid"),
            AuthError::CertificateRequired => Some("certificate_required"),
            // Audited by the service as `access.denied`.
            AuthError::MissingRole(_) => None,
        };
        if let Some(reason) = reason {
            state
                .security
                .auth_failed(client, &request_id, name, reason)
                .await;
        }
    }
    let mut resp = result.unwrap_or_else(|e| {
        if fhir {
            e.into_fhir_response(&request_id)
        } else {
            e.into_response(&request_id)
        }
    });
    // An answer given before the request body was read to its end: hyper will not reuse
    // the connection, so say so rather than let the client's next request meet a closed
    // socket (see `body::watch`).
    if body_read.is_some_and(|d| !d.load(std::sync::atomic::Ordering::Acquire)) {
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    if head {
        resp = without_content(resp);
    }
    add_edge_headers(&state, &mut resp, &request_id, is_api);
    if tus {
        super::cors::cors(
            &state.uploads.settings().cors_origins,
            origin.as_ref(),
            preflight,
            resp.headers_mut(),
        );
    }
    state
        .metrics
        .requests
        .get_or_create(&RequestLabels {
            endpoint: name,
            status: resp.status().as_u16(),
        })
        .inc();
    state
        .metrics
        .latency
        .get_or_create(&EndpointLabels { endpoint: name })
        .observe(started.elapsed().as_secs_f64());
    resp
}

/// A HEAD answer carries no content, whatever its status (RFC 9110 §9.3.2): a problem
/// body on a HEAD would go out over HTTP/2 as DATA frames after the HEADERS, which clients
/// (curl, Node's http2) reject as a protocol error. The headers stay as a GET would have
/// them, `Content-Length` included when the body's size is known.
fn without_content(resp: Response<axum::body::Body>) -> Response<axum::body::Body> {
    use http_body::Body as _;
    let (mut parts, body) = resp.into_parts();
    if !parts.headers.contains_key(header::CONTENT_LENGTH)
        && let Some(n) = body.size_hint().exact()
        && n > 0
    {
        parts
            .headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from(n));
    }
    Response::from_parts(parts, axum::body::Body::empty())
}

/// The bytes of the `408 request.header_timeout` answer a connection writes itself when a
/// request head does not arrive within `server.header_read_timeout` (HTTP/1 only; hyper
/// never saw a request, so no handler runs): the problem body, the edge headers and
/// `Connection: close`, with a fresh request id. Returns the request id with the bytes.
pub(super) fn header_timeout_answer(state: &AppState) -> (String, Vec<u8>) {
    let request_id = new_request_id();
    let mut resp = ApiError::HeaderTimeout.render(&request_id);
    add_edge_headers(state, &mut resp, &request_id, true);
    let (parts, body) = resp.into_parts();
    let mut out = Vec::with_capacity(512 + body.len());
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(parts.status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(
        parts
            .status
            .canonical_reason()
            .unwrap_or("Request Timeout")
            .as_bytes(),
    );
    out.extend_from_slice(b"\r\n");
    for (name, value) in &parts.headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("content-length: {}\r\n", body.len()).as_bytes());
    out.extend_from_slice(b"connection: close\r\n\r\n");
    out.extend_from_slice(body.as_bytes());
    (request_id, out)
}

fn add_edge_headers<B>(state: &AppState, resp: &mut Response<B>, request_id: &str, is_api: bool) {
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(request_id) {
        h.insert("x-request-id", v);
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // The API's policy forbids everything; the upload page sets a policy of its own.
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
        );
    }
    let hsts = state.config.server.hsts_max_age.as_secs();
    if !state.config.server.danger_plaintext_http
        && hsts > 0
        && let Ok(v) = HeaderValue::from_str(&format!("max-age={hsts}"))
    {
        h.insert(header::STRICT_TRANSPORT_SECURITY, v);
    }
    if is_api && !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}
