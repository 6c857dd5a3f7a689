//! One row of the error table: what a client sees of a failure (status, stable code,
//! static title) and the headers that status needs. Every error the gateway can answer
//! with implements [`Describe`] in one of the sibling files; nothing else decides a status.

use http::{HeaderMap, StatusCode};

/// What a client sees of one failure. The title is static: never built from input or from
/// an internal error's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Problem {
    /// The HTTP status.
    pub status: StatusCode,
    /// The stable machine-readable code (`urn:sallyport:problem:{code}`).
    pub code: &'static str,
    /// The static human-readable title.
    pub title: &'static str,
}

/// A row of the table.
pub const fn row(status: StatusCode, code: &'static str, title: &'static str) -> Problem {
    Problem {
        status,
        code,
        title,
    }
}

/// 500, for a bug or a condition no request can cause; the cause goes to the log only.
pub const INTERNAL: Problem = row(
    StatusCode::INTERNAL_SERVER_ERROR,
    "server.internal",
    "Internal error",
);

/// An error that knows its row of the table.
pub trait Describe {
    /// Status, code and title.
    fn problem(&self) -> Problem;

    /// Headers the response needs beyond the problem body (`Retry-After`, `Allow`…).
    fn headers(&self, _h: &mut HeaderMap) {}

    /// Extension members for the problem body (RFC 9457 §3.2): where in a document the
    /// problem is, which rule. Never a value from the request.
    fn members(&self) -> Option<serde_json::Map<String, serde_json::Value>> {
        None
    }
}
