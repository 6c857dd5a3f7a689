//! The project's capped body reader. Collecting a request body without a limit is banned
//! by `clippy.toml`; this is the way to read one.

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;

use super::problem::ApiError;

/// Reads a whole body, failing with 413 as soon as it passes `limit` bytes (before
/// buffering more than `limit`). Also refuses early on a `Content-Length` over the limit.
pub async fn read_capped(
    content_length: Option<u64>,
    mut body: axum::body::Body,
    limit: u64,
) -> Result<Bytes, ApiError> {
    if content_length.is_some_and(|n| n > limit) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| ApiError::BodyRead)?;
        if let Ok(data) = frame.into_data() {
            if buf.len() as u64 + data.len() as u64 > limit {
                return Err(ApiError::PayloadTooLarge { limit });
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn enforces_the_cap() {
        let ok = read_capped(None, axum::body::Body::from("hello"), 5)
            .await
            .unwrap();
        assert_eq!(&ok[..], b"hello");
        let err = read_capped(None, axum::body::Body::from("hello!"), 5)
            .await
            .unwrap_err();
        assert!(matches!(err, ApiError::PayloadTooLarge { limit: 5 }));
        let err = read_capped(Some(6), axum::body::Body::from(""), 5)
            .await
            .unwrap_err();
        assert!(matches!(err, ApiError::PayloadTooLarge { limit: 5 }));
    }
}
