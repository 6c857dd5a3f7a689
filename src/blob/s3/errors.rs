//! How S3 failures become `BlobError`s: `NotFound` kept apart, everything else an I/O
//! error naming the operation and the blob, with any URL's query string cut.

use std::io;

use crate::blob::{BlobError, BlobId};

pub(super) fn io_error(kind: io::ErrorKind, message: String) -> BlobError {
    BlobError::Io(io::Error::new(kind, message))
}

/// An `object_store` failure as a `BlobError` (NotFound kept apart).
pub(super) fn s3_error(op: &str, id: BlobId, e: &object_store::Error) -> BlobError {
    match e {
        object_store::Error::NotFound { .. } => BlobError::NotFound(id),
        e => io_error(
            io::ErrorKind::Other,
            format!("S3 {op} of blob {id} failed: {}", redact(&e.to_string())),
        ),
    }
}

/// Cuts a query string from any URL in an error message. The client signs requests in
/// headers, so no URL carries a signature; this keeps it so should a presigned URL ever
/// reach a message (their `X-Amz-Signature` and `X-Amz-Credential` are in the query).
pub(super) fn redact(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut in_query = false;
    for c in message.chars() {
        if in_query {
            if c.is_whitespace() || c == ')' || c == '"' || c == '\'' || c == ',' {
                in_query = false;
                out.push(c);
            }
            continue;
        }
        if c == '?' {
            in_query = true;
            out.push_str("?[redacted]");
            continue;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn query_strings_are_cut_from_messages() {
        assert_eq!(
            redact(
                "GET http://h/b/k?X-Amz-Signature=abc&X-Amz-Credential=AKID%2F failed, status 403"
            ),
            "GET http://h/b/k?[redacted] failed, status 403"
        );
        assert_eq!(redact("no url here"), "no url here");
    }
}
