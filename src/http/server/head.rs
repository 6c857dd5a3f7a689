//! The request-head deadline of an HTTP/1 connection, answered with a 408.
//!
//! hyper's own `header_read_timeout` closes a slow connection without a word. RFC 9110
//! §15.5.9 gives the server a better answer: `408 Request Timeout`, so that a client that
//! was merely slow learns why, and a log or a proxy in between sees a status rather than a
//! reset. hyper never hands over a request it has not fully parsed, so the answer is
//! written here, below hyper, by [`HeadDeadline`]: a wrapper around the connection's
//! (decrypted) stream that keeps the same deadline hyper kept.
//!
//! * The deadline runs from the start of the connection (after the TLS handshake) and,
//!   on a keep-alive connection, from the end of the previous response (when no request is
//!   in flight) — as hyper's did.
//! * When it passes with **some bytes of a head received** and no request begun, the
//!   wrapper writes a complete `408 request.header_timeout` problem response with
//!   `Connection: close` to the stream, then tells hyper the stream has ended; anything
//!   hyper writes after that is refused. The event is counted and audited as a
//!   rate-limited security event (`security.header_timeout`).
//! * When it passes with **no byte** of a new head (an idle keep-alive connection, or a
//!   connection that never spoke), the stream just ends, with no answer — as before.
//! * HTTP/2 is left alone: its connection preface (or the ALPN protocol `h2`) switches the
//!   wrapper off. An HTTP/2 request's headers arrive in frames the h2 layer times, and its
//!   idle connections are closed by the connection's idle rule (`server.rs`).
//!
//! Not here: the slow *body* rule (`uploads.body_timeout`, `upload::patch`).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

use super::Requests;

/// The HTTP/2 connection preface (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What the wrapper does when a head is late: builds the answer's bytes (called once, when
/// bytes of a head were received) and reports the event.
pub(super) trait OnLate: Send + Unpin + 'static {
    /// The bytes of the 408 answer for a head of which `head_bytes` arrived.
    fn answer(&mut self, head_bytes: u64) -> Vec<u8>;
    /// A late head that had no byte: the connection ends silently.
    fn closed_silently(&mut self);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    /// Not known yet: this many bytes of the stream matched the HTTP/2 preface so far.
    Sniffing(usize),
    Http1,
    /// HTTP/2: the wrapper passes everything through.
    Http2,
}

enum Phase {
    Reading,
    /// Writing the 408: the bytes and how many are written.
    Answering(Vec<u8>, usize),
    /// The answer is flushed (or there was none): reads see the end of the stream.
    Ended,
}

/// Wraps the stream hyper serves; see the module docs.
pub(super) struct HeadDeadline<I, L> {
    inner: I,
    requests: Arc<Requests>,
    limit: Duration,
    on_late: L,
    protocol: Protocol,
    phase: Phase,
    sleep: Pin<Box<Sleep>>,
    /// The head (by `Requests::ended`: the requests before it) the sleep is set for.
    armed_for: Option<u64>,
    /// Bytes received for the head `.0`.
    head_bytes: (u64, u64),
}

impl<I, L: OnLate> HeadDeadline<I, L> {
    /// Wraps `inner`; `h2` when the TLS handshake already chose HTTP/2 (ALPN).
    pub(super) fn new(
        inner: I,
        requests: Arc<Requests>,
        limit: Duration,
        h2: bool,
        on_late: L,
    ) -> Self {
        Self {
            inner,
            requests,
            limit,
            on_late,
            protocol: if h2 {
                Protocol::Http2
            } else {
                Protocol::Sniffing(0)
            },
            phase: Phase::Reading,
            sleep: Box::pin(tokio::time::sleep(limit)),
            armed_for: None,
            head_bytes: (0, 0),
        }
    }

    /// Updates the protocol guess with bytes just read.
    fn sniff(&mut self, bytes: &[u8]) {
        if let Protocol::Sniffing(matched) = self.protocol {
            let want = &H2_PREFACE[matched..];
            let n = bytes.len().min(want.len());
            self.protocol = if bytes[..n] != want[..n] {
                Protocol::Http1
            } else if matched + n == H2_PREFACE.len() {
                Protocol::Http2
            } else {
                Protocol::Sniffing(matched + n)
            };
        }
    }
}

impl<I: AsyncWrite + Unpin, L: OnLate> HeadDeadline<I, L> {
    /// Writes, flushes and shuts down the answer's stream; `Ready(Ok)` once it is out (or
    /// could not be sent).
    fn poll_answer(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Phase::Answering(bytes, written) = &mut self.phase {
            while *written < bytes.len() {
                match Pin::new(&mut self.inner).poll_write(cx, &bytes[*written..]) {
                    Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => {
                        self.phase = Phase::Ended;
                        return Poll::Ready(Ok(()));
                    }
                    Poll::Ready(Ok(n)) => *written += n,
                    Poll::Pending => return Poll::Pending,
                }
            }
            if Pin::new(&mut self.inner).poll_flush(cx).is_pending() {
                return Poll::Pending;
            }
            // End the stream properly (TLS close_notify, then FIN), so the client reads a
            // complete answer rather than a truncation.
            if Pin::new(&mut self.inner).poll_shutdown(cx).is_pending() {
                return Poll::Pending;
            }
            self.phase = Phase::Ended;
        }
        Poll::Ready(Ok(()))
    }
}

impl<I: AsyncRead + AsyncWrite + Unpin, L: OnLate> AsyncRead for HeadDeadline<I, L> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        match this.phase {
            Phase::Reading => {}
            Phase::Answering(..) => return this.poll_answer(cx),
            Phase::Ended => return Poll::Ready(Ok(())),
        }
        let before = buf.filled().len();
        let read = Pin::new(&mut this.inner).poll_read(cx, buf);
        let fresh = &buf.filled()[before..];
        if !fresh.is_empty() {
            this.sniff(fresh);
        }
        if this.protocol == Protocol::Http2 {
            return read;
        }
        // The deadline applies only between requests: while one is in flight the bytes
        // are its body (or the next request, pipelined, which hyper's own rules govern).
        if this.requests.in_flight.load(Ordering::Relaxed) > 0 {
            this.armed_for = None;
            return read;
        }
        let head = this.requests.ended.load(Ordering::Relaxed);
        if this.head_bytes.0 != head {
            this.head_bytes = (head, 0);
        }
        this.head_bytes.1 += fresh.len() as u64;
        if read.is_ready() {
            return read;
        }
        if this.armed_for != Some(head) {
            // From the connection's start, or the end of the previous response.
            let since = this.requests.last.load(Ordering::Relaxed);
            let start = this.requests.born + Duration::from_millis(since);
            this.sleep
                .as_mut()
                .reset(tokio::time::Instant::from_std(start + this.limit));
            this.armed_for = Some(head);
        }
        if this.sleep.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        let head_bytes = this.head_bytes.1;
        if head_bytes == 0 {
            this.on_late.closed_silently();
            this.phase = Phase::Ended;
            return Poll::Ready(Ok(()));
        }
        let answer = this.on_late.answer(head_bytes);
        this.phase = Phase::Answering(answer, 0);
        this.poll_answer(cx)
    }
}

impl<I: AsyncWrite + Unpin, L: OnLate> AsyncWrite for HeadDeadline<I, L> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.phase {
            Phase::Reading => Pin::new(&mut self.inner).poll_write(cx, buf),
            _ => Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.phase {
            Phase::Reading => Pin::new(&mut self.inner).poll_write_vectored(cx, bufs),
            _ => Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Phase::Answering(..) = self.phase {
            return self.poll_answer(cx);
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.phase {
            Phase::Reading => Pin::new(&mut self.inner).poll_shutdown(cx),
            // The answer's stream is shut down once it is out.
            _ => self.poll_answer(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// What the wrapper reported: `Some(head bytes)` per answer, `None` per silent end.
    type Late = Arc<std::sync::Mutex<Vec<Option<u64>>>>;

    struct Recorder {
        late: Late,
    }

    impl OnLate for Recorder {
        fn answer(&mut self, head_bytes: u64) -> Vec<u8> {
            self.late.lock().unwrap().push(Some(head_bytes));
            b"HTTP/1.1 408 Request Timeout\r\nconnection: close\r\ncontent-length: 0\r\n\r\n"
                .to_vec()
        }
        fn closed_silently(&mut self) {
            self.late.lock().unwrap().push(None);
        }
    }

    fn wrapped(
        h2: bool,
    ) -> (
        HeadDeadline<tokio::io::DuplexStream, Recorder>,
        tokio::io::DuplexStream,
        Late,
        Arc<Requests>,
    ) {
        let (server, client) = tokio::io::duplex(4096);
        let late = Arc::new(std::sync::Mutex::new(Vec::new()));
        let requests = Arc::new(Requests::new());
        let w = HeadDeadline::new(
            server,
            requests.clone(),
            Duration::from_millis(200),
            h2,
            Recorder { late: late.clone() },
        );
        (w, client, late, requests)
    }

    #[tokio::test]
    async fn a_partial_head_past_the_deadline_gets_the_answer_then_the_end() {
        let (mut w, mut client, late, _) = wrapped(false);
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        let mut buf = vec![0u8; 1024];
        let n = w.read(&mut buf).await.unwrap();
        assert_eq!(n, 25);
        // Nothing more comes: the deadline passes and the read sees the end.
        assert_eq!(w.read(&mut buf).await.unwrap(), 0);
        assert_eq!(*late.lock().unwrap(), vec![Some(25)]);
        let mut got = Vec::new();
        drop(w);
        client.read_to_end(&mut got).await.unwrap();
        assert!(got.starts_with(b"HTTP/1.1 408 "), "{got:?}");
    }

    #[tokio::test]
    async fn writes_after_the_answer_are_refused() {
        let (mut w, mut client, _, _) = wrapped(false);
        client.write_all(b"GE").await.unwrap();
        let mut buf = vec![0u8; 64];
        assert_eq!(w.read(&mut buf).await.unwrap(), 2);
        assert_eq!(w.read(&mut buf).await.unwrap(), 0);
        let e = w.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
        assert_eq!(e.unwrap_err().kind(), io::ErrorKind::BrokenPipe);
    }

    #[tokio::test]
    async fn a_connection_that_never_spoke_ends_without_an_answer() {
        let (mut w, mut client, late, _) = wrapped(false);
        let mut buf = vec![0u8; 64];
        assert_eq!(w.read(&mut buf).await.unwrap(), 0);
        assert_eq!(*late.lock().unwrap(), vec![None]);
        drop(w);
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.unwrap();
        assert!(got.is_empty());
    }

    #[tokio::test]
    async fn a_request_in_flight_stops_the_deadline() {
        let (mut w, mut client, late, requests) = wrapped(false);
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        let mut buf = vec![0u8; 64];
        assert!(w.read(&mut buf).await.unwrap() > 0);
        // hyper parsed the head and called the service: a request is in flight.
        let guard = requests.begin();
        let pending = tokio::time::timeout(Duration::from_secs(1), w.read(&mut buf)).await;
        assert!(
            pending.is_err(),
            "a read with a request in flight must not end"
        );
        assert!(late.lock().unwrap().is_empty());
        drop(guard);
        // Its response ended: the next head has its own deadline, and with no byte of it
        // the connection ends silently.
        assert_eq!(w.read(&mut buf).await.unwrap(), 0);
        assert_eq!(*late.lock().unwrap(), vec![None]);
    }

    #[tokio::test]
    async fn http2_is_left_alone() {
        for (h2_alpn, first) in [(true, &b"GE"[..]), (false, H2_PREFACE)] {
            let (mut w, mut client, late, _) = wrapped(h2_alpn);
            client.write_all(first).await.unwrap();
            let mut buf = vec![0u8; 64];
            assert_eq!(w.read(&mut buf).await.unwrap(), first.len());
            let pending = tokio::time::timeout(Duration::from_secs(1), w.read(&mut buf)).await;
            assert!(pending.is_err(), "HTTP/2 must not be timed here");
            assert!(late.lock().unwrap().is_empty());
        }
    }

    #[tokio::test]
    async fn sniffing_tells_the_preface_from_http1_methods() {
        let (mut w, ..) = wrapped(false);
        w.sniff(b"PR");
        assert_eq!(w.protocol, Protocol::Sniffing(2));
        w.sniff(b"I * HTTP/2.0\r\n\r\nSM\r\n\r\nextra");
        assert_eq!(w.protocol, Protocol::Http2);
        let (mut w, ..) = wrapped(false);
        w.sniff(b"PRI * HTTP/1.1");
        assert_eq!(w.protocol, Protocol::Http1);
        let (mut w, ..) = wrapped(false);
        w.sniff(b"POST / HTTP/1.1");
        assert_eq!(w.protocol, Protocol::Http1);
    }
}
