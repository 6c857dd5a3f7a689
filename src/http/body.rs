//! Request bodies: the project's capped body reader (collecting a request body without a
//! limit is banned by `clippy.toml`; this is the way to read one), and [`watch`], which
//! tells the edge whether a handler read the body to its end.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Frame, SizeHint};
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

/// Wraps a request body so that the returned flag is set once the body has been read to
/// its end (at once for an empty body).
///
/// Why: a handler may answer before reading the body (a refused header, a missing role).
/// hyper then does not reuse the HTTP/1.1 connection — but without saying so, and a client
/// that sends its next request on it meets a closed connection instead of an answer. The
/// edge reads this flag and adds `Connection: close` to such a response.
pub fn watch(body: axum::body::Body) -> (axum::body::Body, Arc<AtomicBool>) {
    let done = Arc::new(AtomicBool::new(http_body::Body::is_end_stream(&body)));
    let watched = Watched {
        inner: body,
        done: done.clone(),
    };
    (axum::body::Body::new(watched), done)
}

/// See [`watch`].
struct Watched {
    inner: axum::body::Body,
    done: Arc<AtomicBool>,
}

impl http_body::Body for Watched {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        // The end: no more frames, or the last frame of a body of known length.
        if matches!(polled, Poll::Ready(None)) || self.inner.is_end_stream() {
            self.done.store(true, Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn watch_tells_a_body_read_to_its_end_from_one_left_unread() {
        let (body, done) = watch(axum::body::Body::empty());
        assert!(done.load(Ordering::Acquire), "an empty body is read");
        drop(body);
        let (body, done) = watch(axum::body::Body::from("hello"));
        assert!(!done.load(Ordering::Acquire));
        let bytes = read_capped(None, body, 64).await.unwrap();
        assert_eq!(&bytes[..], b"hello");
        assert!(done.load(Ordering::Acquire));
        let (body, done) = watch(axum::body::Body::from("hello"));
        drop(body);
        assert!(!done.load(Ordering::Acquire), "dropped unread");
    }

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
