//! `GET {base}{id}/ledger`, streamed: the ledger document written piece by piece as its
//! entries are read from the state store, [`PAGE`] at a time, so a ledger of any length
//! costs one page of memory, not the whole document (an upload may have up to
//! `uploads.max_chunks_per_upload` entries).
//!
//! The bytes are exactly `serde_json::to_vec(&LedgerDocument)` of the same state: the
//! head fields, then `"chunks":[…]`, then `"parts":[…]`. The checks
//! `LedgerDocument::build` makes on a whole document are made on the way instead: each
//! entry must continue the previous one, and the entries must end at the record's chunk
//! count and offset. A stored ledger that fails them ends the stream with an error (the
//! client sees a broken body, never a wrong document that looks whole); the failure is
//! logged by the handler.
//!
//! A final upload's parts come from the copy of their ledgers taken at concatenation
//! (one record per final, bounded by `max_concat_parts` × `max_chunks_per_upload`
//! entries); it is read whole, then written part by part.
//!
//! Not here: HTTP (the handler wraps the stream in a response body).

use std::collections::VecDeque;

use bytes::Bytes;
use futures_util::Stream;

use crate::tus::dates::Timestamp;
use crate::tus::ledger::{LedgerDocument, LedgerError, LedgerHead, PartLedger};
use crate::tus::record::{ConcatKind, UploadId, UploadRecord};

use super::store::{StoreError, UploadStore};
use super::{Caller, UploadError, Uploads};

/// Ledger entries read from the state store at a time.
pub const PAGE: usize = 128;

/// Where the stream is.
enum Phase {
    /// Nothing sent yet.
    Head,
    /// Entries after `after` (a store id), the next expected at `index`/`offset`.
    Chunks {
        after: Option<String>,
        index: u64,
        offset: u64,
    },
    /// The parts still to send.
    Parts(VecDeque<PartLedger>),
    /// Done.
    Done,
}

struct State {
    store: UploadStore,
    record: UploadRecord,
    parts: Vec<PartLedger>,
    phase: Phase,
}

fn corrupt(e: LedgerError) -> UploadError {
    UploadError::Store(StoreError::Corrupt(e.to_string()))
}

fn json<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, UploadError> {
    serde_json::to_vec(value).map_err(|e| UploadError::Store(StoreError::Corrupt(e.to_string())))
}

// === impl Uploads: the ledger document ===

impl Uploads {
    /// `GET {base}{id}/ledger`: the ledger document as a stream of JSON pieces (after the
    /// access check, which is made before the first piece).
    pub async fn ledger_stream(
        &self,
        who: &Caller,
        id: UploadId,
    ) -> Result<impl Stream<Item = Result<Bytes, UploadError>> + Send + 'static, UploadError> {
        let now = Timestamp::now();
        let (record, _) = self.load_for(id, who, now, "ledger").await?;
        let parts = self.part_ledgers(&record).await?;
        let state = State {
            store: self.store.clone(),
            record,
            parts,
            phase: Phase::Head,
        };
        Ok(futures_util::stream::unfold(
            state,
            |mut state| async move {
                match state.next().await {
                    Ok(Some(bytes)) => Some((Ok(bytes), state)),
                    Ok(None) => None,
                    Err(e) => {
                        state.phase = Phase::Done;
                        Some((Err(e), state))
                    }
                }
            },
        ))
    }

    /// The whole ledger document (the stream, collected and parsed back): for in-process
    /// callers and tests; the HTTP handler streams.
    pub async fn ledger(&self, who: &Caller, id: UploadId) -> Result<LedgerDocument, UploadError> {
        use futures_util::StreamExt;
        let mut stream = std::pin::pin!(self.ledger_stream(who, id).await?);
        let mut bytes = Vec::new();
        while let Some(piece) = stream.next().await {
            bytes.extend_from_slice(&piece?);
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| UploadError::Store(StoreError::Corrupt(e.to_string())))
    }

    /// A final upload's parts: the copy taken at concatenation, or before it the parts'
    /// live ledgers; empty for any other upload.
    async fn part_ledgers(&self, record: &UploadRecord) -> Result<Vec<PartLedger>, UploadError> {
        let ConcatKind::Final { parts: ids } = &record.concat else {
            return Ok(Vec::new());
        };
        // A final upload keeps the copy of its parts' ledgers taken at concatenation, so
        // deleting a part later does not change the final's ledger.
        if let Some(copy) = self.store.part_ledgers(record.id).await? {
            return Ok(copy);
        }
        // Not concatenated yet: the parts' live ledgers.
        let mut parts = Vec::new();
        for part in ids {
            if let Some((p, _)) = self.store.get(*part).await? {
                let chunks = self.store.chunks(*part).await?;
                parts.push(PartLedger::from_part(&p, chunks).map_err(corrupt)?);
            }
        }
        Ok(parts)
    }
}

// === impl State ===

impl State {
    /// The next piece of the document, `None` after the last.
    async fn next(&mut self) -> Result<Option<Bytes>, UploadError> {
        match std::mem::replace(&mut self.phase, Phase::Done) {
            Phase::Head => {
                let parts = std::mem::take(&mut self.parts);
                let head = LedgerHead::new(&self.record, &parts).map_err(corrupt)?;
                let mut out = json(&head)?;
                // `head` is an object: drop its closing brace and open the chunk list.
                out.pop();
                out.extend_from_slice(b",\"chunks\":[");
                self.phase = if self.record.is_final() {
                    out.extend_from_slice(b"],\"parts\":[");
                    Phase::Parts(parts.into())
                } else {
                    Phase::Chunks {
                        after: None,
                        index: 0,
                        offset: 0,
                    }
                };
                Ok(Some(Bytes::from(out)))
            }
            Phase::Chunks {
                after,
                index,
                offset,
            } => self.chunk_page(after, index, offset).await.map(Some),
            Phase::Parts(mut parts) => {
                let Some(part) = parts.pop_front() else {
                    return Ok(Some(Bytes::from_static(b"]}")));
                };
                let mut out = json(&part)?;
                if !parts.is_empty() {
                    out.push(b',');
                }
                self.phase = Phase::Parts(parts);
                Ok(Some(Bytes::from(out)))
            }
            Phase::Done => Ok(None),
        }
    }

    /// One page of entries (or the end of the list).
    async fn chunk_page(
        &mut self,
        after: Option<String>,
        mut index: u64,
        mut offset: u64,
    ) -> Result<Bytes, UploadError> {
        let total = self.record.chunks;
        let (page, last) = if index < total {
            self.store
                .chunks_page(self.record.id, after.as_deref(), PAGE)
                .await?
        } else {
            (Vec::new(), None)
        };
        let mut out = Vec::new();
        // A commit writes the chunk's entry before the record that counts it, so an entry
        // may be ahead of the record (a PATCH in progress, or a crash there until the next
        // PATCH or HEAD finishes the commit): show what the record accounts for.
        let mut ended = page.is_empty();
        for entry in page {
            if entry.index >= total {
                ended = true;
                break;
            }
            let at = usize::try_from(index).unwrap_or(usize::MAX);
            if entry.index != index || entry.offset != offset {
                return Err(corrupt(LedgerError::Gap { index: at }));
            }
            if entry.length == 0 {
                return Err(corrupt(LedgerError::EmptyChunk { index: at }));
            }
            if index > 0 {
                out.push(b',');
            }
            out.extend_from_slice(&json(&entry)?);
            index += 1;
            offset = offset
                .checked_add(entry.length)
                .ok_or_else(|| corrupt(LedgerError::Total))?;
        }
        if ended || index >= total {
            if index != total || offset != self.record.offset {
                return Err(corrupt(LedgerError::Total));
            }
            out.extend_from_slice(b"],\"parts\":[]}");
            self.phase = Phase::Done;
        } else {
            self.phase = Phase::Chunks {
                after: last,
                index,
                offset,
            };
        }
        Ok(Bytes::from(out))
    }
}
