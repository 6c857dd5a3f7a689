//! The streamed, metered download body.
//!
//! A body is a list of [`Piece`]s: literal framing bytes (multipart delimiters and part
//! headers) and plaintext ranges of the artifact. Small bodies (at most [`INLINE_LIMIT`]
//! bytes of one range) are decrypted before the response starts and sent as one frame.
//! Larger ones are produced by a task that decrypts one ~1 MiB chunk at a time (only the
//! segments a range touches) into a channel of [`READ_AHEAD`] chunks: decryption runs on
//! another core while the connection encrypts and sends the previous chunk, and a slow
//! client blocks the producer once the channel is full (back-pressure; memory per
//! download stays at a few MiB). A chunk that fails authentication ends the body with an
//! error, so the connection is cut: no unauthenticated byte is ever sent.
//!
//! The consumer side counts the artifact bytes handed to the connection. If it is dropped
//! before the last one (the client went away), its [`Settlement`] refunds the undelivered
//! part of the metering reservation and records a `download.aborted` audit event.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tokio::sync::mpsc;

use super::events::DownloadAborted;
use crate::at_rest::Reader;
use crate::audit::{AuditContext, Auditor};
use crate::grant::{Meter, Reservation};
use crate::signed_link::{ArtifactId, GrantId};

/// Largest body decrypted up front instead of streamed.
pub const INLINE_LIMIT: u64 = 256 * 1024;
/// Decrypted chunks buffered ahead of the connection.
pub const READ_AHEAD: usize = 4;

/// One part of a body.
#[derive(Debug, Clone)]
pub enum Piece {
    /// Literal bytes (not artifact data; not metered).
    Framing(Bytes),
    /// `len` plaintext bytes of the artifact at `offset`.
    Range {
        /// First byte.
        offset: u64,
        /// Length (at least 1).
        len: u64,
    },
}

/// What to do when a body ends early.
#[derive(Debug)]
pub struct Settlement {
    /// The meters.
    pub meter: Meter,
    /// The reservation to refund from, if the grant is metered.
    pub reservation: Option<Reservation>,
    /// The audit trail.
    pub auditor: Auditor,
    /// The request's audit context.
    pub ctx: AuditContext,
    /// The grant.
    pub grant: GrantId,
    /// The artifact.
    pub artifact: ArtifactId,
    /// Artifact bytes the body was to deliver.
    pub planned: u64,
}

impl Settlement {
    fn settle(self, delivered: u64) {
        if delivered >= self.planned {
            return;
        }
        // Drop runs inside the runtime while serving; during a shutdown there may be none,
        // and then there is nothing left to record with either.
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        handle.spawn(async move {
            let undelivered = self.planned - delivered;
            let mut refunded = 0;
            if let Some(r) = &self.reservation {
                match self.meter.refund(r, undelivered).await {
                    Ok(()) => refunded = undelivered.min(r.charged),
                    Err(e) => tracing::warn!(error = %e, "download refund failed"),
                }
                // Bytes still in TLS/socket buffers never reached the client (bounded).
                match self.meter.forgive(r, delivered).await {
                    Ok(n) => refunded += n,
                    Err(e) => tracing::warn!(error = %e, "download forgiveness failed"),
                }
            }
            let event = DownloadAborted {
                grant: self.grant.to_string(),
                artifact: self.artifact.to_string(),
                planned: self.planned,
                delivered,
                refunded,
            };
            if let Err(e) = self.auditor.emit(&self.ctx, &event).await {
                tracing::error!(error = %e, "could not audit an aborted download");
            }
        });
    }
}

/// An item of the body: bytes, and whether they are artifact data (metered).
type Item = (Bytes, bool);

enum Source {
    Ready(VecDeque<Item>),
    Channel(mpsc::Receiver<Result<Item, std::io::Error>>),
}

/// The body stream handed to hyper.
pub struct MeteredBody {
    source: Source,
    delivered: u64,
    settlement: Option<Settlement>,
}

impl std::fmt::Debug for MeteredBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeteredBody")
            .field("delivered", &self.delivered)
            .finish_non_exhaustive()
    }
}

impl MeteredBody {
    /// Builds the body for `pieces` of `reader`'s plaintext. Small single ranges are read
    /// now (so an at-rest failure can still become an error response); anything else is
    /// streamed by a producer task.
    pub async fn new(
        reader: Reader,
        pieces: Vec<Piece>,
        settlement: Settlement,
    ) -> Result<Self, crate::at_rest::AtRestError> {
        let data: u64 = pieces
            .iter()
            .map(|p| match p {
                Piece::Range { len, .. } => *len,
                Piece::Framing(_) => 0,
            })
            .sum();
        let source = if data <= INLINE_LIMIT {
            let mut items = VecDeque::with_capacity(pieces.len());
            for p in pieces {
                match p {
                    Piece::Framing(b) => items.push_back((b, false)),
                    Piece::Range { offset, len } => match reader.read_range(offset, len).await {
                        Ok(bytes) => items.push_back((bytes, true)),
                        Err(e) => {
                            // Nothing was sent: give the whole reservation back, on record.
                            settlement.settle(0);
                            return Err(e);
                        }
                    },
                }
            }
            Source::Ready(items)
        } else {
            let (tx, rx) = mpsc::channel(READ_AHEAD);
            tokio::spawn(produce(reader, pieces, tx));
            Source::Channel(rx)
        };
        Ok(Self {
            source,
            delivered: 0,
            settlement: Some(settlement),
        })
    }

    /// Artifact bytes handed out so far.
    pub fn delivered(&self) -> u64 {
        self.delivered
    }
}

async fn produce(
    reader: Reader,
    pieces: Vec<Piece>,
    tx: mpsc::Sender<Result<Item, std::io::Error>>,
) {
    for piece in pieces {
        match piece {
            Piece::Framing(b) => {
                if tx.send(Ok((b, false))).await.is_err() {
                    return;
                }
            }
            Piece::Range { offset, len } => {
                let stream = match reader.stream_range(offset, len) {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = tx.send(Err(std::io::Error::other(e))).await;
                        return;
                    }
                };
                futures_util::pin_mut!(stream);
                while let Some(chunk) = stream.next().await {
                    let item = chunk.map(|b| (b, true)).map_err(|e| {
                        tracing::error!(error = %e, "download aborted: the object failed to decrypt");
                        std::io::Error::other("object read failed")
                    });
                    let failed = item.is_err();
                    if tx.send(item).await.is_err() || failed {
                        return;
                    }
                }
            }
        }
    }
}

impl Stream for MeteredBody {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let next = match &mut self.source {
            Source::Ready(items) => Poll::Ready(items.pop_front().map(Ok)),
            Source::Channel(rx) => rx.poll_recv(cx),
        };
        match next {
            Poll::Ready(Some(Ok((bytes, data)))) => {
                if data {
                    self.delivered += bytes.len() as u64;
                }
                Poll::Ready(Some(Ok(bytes)))
            }
            other => other.map(|o| o.map(|r| r.map(|(b, _)| b))),
        }
    }
}

impl Drop for MeteredBody {
    fn drop(&mut self) {
        if let Some(s) = self.settlement.take() {
            s.settle(self.delivered);
        }
    }
}
