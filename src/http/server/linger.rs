//! Lingering close: the connection's stream, shut down so that an answer the client has not
//! read yet is not destroyed by a TCP reset.
//!
//! A handler may answer before it reads the request body: a PATCH at the wrong offset
//! (409), a declared oversize body (413), a missing role (403). hyper then closes the
//! HTTP/1.1 connection after the answer — with the rest of the body still arriving. Closing
//! a socket whose receive queue holds unread bytes makes the kernel send a reset (RFC 1122
//! §4.2.2.13), and a reset makes the client's kernel throw away whatever it had received
//! but its program had not read yet: the answer. A client that sends its whole body before
//! reading (most simple HTTP clients, and any client on a fast link) saw "connection reset"
//! instead of the 409 that told it what to do.
//!
//! [`Linger`] does what Apache's and nginx's lingering close do: when hyper shuts the
//! stream down, it shuts down its write side (for TLS: `close_notify`, then the TCP FIN,
//! so the answer is complete and ends cleanly), then reads and discards what the client
//! still sends — until the client closes its side, [`LINGER_TIME`] passes or
//! [`LINGER_BYTES`] were discarded — and only then lets the socket be closed. A client that
//! reads its answer while sending (curl, browsers) stops sending at once; one that does not
//! has [`LINGER_TIME`] to finish. A connection that ends normally costs one read of EOF.
//!
//! HTTP/2 needs none of this (a refused stream is reset on its own, and the connection
//! stays), but the wrapper is harmless there: at the end of an HTTP/2 connection the
//! client closes after the server's GOAWAY.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// The longest a closing connection reads what its client still sends.
pub(super) const LINGER_TIME: Duration = Duration::from_secs(5);
/// The most bytes a closing connection reads and discards.
pub(super) const LINGER_BYTES: u64 = 64 << 20;

enum State {
    Open,
    /// The write side is shut down; reading until the client is done.
    Draining {
        deadline: Pin<Box<Sleep>>,
        discarded: u64,
    },
    Closed,
}

/// A connection stream with a lingering close (see the module docs).
pub(super) struct Linger<I> {
    inner: I,
    state: State,
    time: Duration,
    bytes: u64,
}

impl<I> Linger<I> {
    /// Lingers up to [`LINGER_TIME`] and [`LINGER_BYTES`].
    pub(super) fn new(inner: I) -> Self {
        Self::with_limits(inner, LINGER_TIME, LINGER_BYTES)
    }

    fn with_limits(inner: I, time: Duration, bytes: u64) -> Self {
        Self {
            inner,
            state: State::Open,
            time,
            bytes,
        }
    }
}

impl<I: AsyncRead + Unpin> Linger<I> {
    /// Reads and discards until the client closes, the deadline passes or the byte budget
    /// is spent. Ready when the stream may be closed.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let State::Draining {
            deadline,
            discarded,
        } = &mut self.state
        else {
            return Poll::Ready(());
        };
        let mut scratch = [0u8; 16 * 1024];
        loop {
            if deadline.as_mut().poll(cx).is_ready() || *discarded >= self.bytes {
                break;
            }
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut self.inner).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if !buf.filled().is_empty() => {
                    *discarded += buf.filled().len() as u64;
                }
                // The client closed its side, or the stream failed: nothing more to wait
                // for.
                Poll::Ready(_) => break,
                Poll::Pending => return Poll::Pending,
            }
        }
        self.state = State::Closed;
        Poll::Ready(())
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Linger<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.state {
            State::Open => Pin::new(&mut self.inner).poll_read(cx, buf),
            // Shut down: nothing more is handed up.
            State::Draining { .. } | State::Closed => Poll::Ready(Ok(())),
        }
    }
}

impl<I: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Linger<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.state {
            State::Open => Pin::new(&mut self.inner).poll_write(cx, buf),
            State::Draining { .. } | State::Closed => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the stream is shut down",
            ))),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.state {
            State::Open => Pin::new(&mut self.inner).poll_write_vectored(cx, bufs),
            State::Draining { .. } | State::Closed => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the stream is shut down",
            ))),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.state {
            State::Open => Pin::new(&mut self.inner).poll_flush(cx),
            State::Draining { .. } | State::Closed => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if let State::Open = this.state {
            let shut = std::task::ready!(Pin::new(&mut this.inner).poll_shutdown(cx));
            if let Err(e) = shut {
                this.state = State::Closed;
                return Poll::Ready(Err(e));
            }
            this.state = State::Draining {
                deadline: Box::pin(tokio::time::sleep(this.time)),
                discarded: 0,
            };
        }
        this.poll_drain(cx).map(Ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn shutdown_reads_what_the_client_still_sends_until_it_closes() {
        let (server, mut client) = tokio::io::duplex(1024);
        let mut server = Linger::new(server);
        server
            .write_all(b"HTTP/1.1 409 Conflict\r\n\r\n")
            .await
            .unwrap();
        // The client is still sending a body nobody will read: far more than the pipe
        // holds, so it finishes only if the closing side drains it.
        let sender = tokio::spawn(async move {
            client.write_all(&vec![b'x'; 256 * 1024]).await.unwrap();
            let mut answer = Vec::new();
            client.read_to_end(&mut answer).await.unwrap();
            client.shutdown().await.unwrap();
            answer
        });
        server.shutdown().await.unwrap();
        let answer = sender.await.unwrap();
        assert_eq!(answer, b"HTTP/1.1 409 Conflict\r\n\r\n");
        assert!(matches!(server.state, State::Closed));
    }

    #[tokio::test]
    async fn a_client_that_never_closes_is_waited_for_the_linger_time_only() {
        let (server, _client) = tokio::io::duplex(1024);
        let time = Duration::from_millis(200);
        let mut server = Linger::with_limits(server, time, LINGER_BYTES);
        let began = tokio::time::Instant::now();
        tokio::time::timeout(Duration::from_secs(10), server.shutdown())
            .await
            .expect("the linger ends")
            .unwrap();
        assert!(began.elapsed() >= time, "{:?}", began.elapsed());
        // Shut down: writes are refused, reads end.
        assert!(server.write_all(b"late").await.is_err());
        let mut rest = Vec::new();
        assert_eq!(server.read_to_end(&mut rest).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn a_client_that_keeps_sending_is_read_up_to_the_byte_budget_only() {
        let (server, mut client) = tokio::io::duplex(4096);
        let mut server = Linger::with_limits(server, Duration::from_secs(60), 64 * 1024);
        let sender = tokio::spawn(async move {
            let chunk = [b'x'; 4096];
            let mut sent = 0u64;
            while client.write_all(&chunk).await.is_ok() {
                sent += chunk.len() as u64;
            }
            sent
        });
        tokio::time::timeout(Duration::from_secs(10), server.shutdown())
            .await
            .expect("the linger ends at the byte budget")
            .unwrap();
        drop(server);
        let sent = sender.await.unwrap();
        assert!((64 * 1024..=72 * 1024).contains(&sent), "{sent}");
    }
}
