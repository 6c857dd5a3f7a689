//! CORS for the upload endpoint, so browser tus clients (tus-js-client, Uppy) can call it:
//! only for configured origins, never `*` (requests carry credentials). The edge applies it
//! to every tus response, refusals included, so a browser can read the problem.

use http::header::{self, HeaderMap, HeaderValue};

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
