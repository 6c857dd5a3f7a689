//! The appending writer and crash recovery.
//!
//! Write steps, in this order (the crash-injection tests stop between each pair):
//!
//! * `append`: plaintext is hashed and sealed into the batch; a full batch is appended to
//!   the data blob (not yet durable, not yet acknowledged);
//! * `commit`: append the rest of the batch, `sync` the data blob, then atomically
//!   `replace` the tail record with generation + 1. The replace is the commit point;
//! * `finish`: append the rest of the batch and the final segment, `sync`, replace the
//!   tail record with a *finished* one (the commit point of everything since the last
//!   commit too).
//!
//! Recovery (`AtRest::open_writer`, [`Writer::rollback`]) reads the tail record and:
//!
//! * cuts every byte of the data blob beyond the committed segments (a torn or
//!   uncommitted append: never acknowledged);
//! * completes an interrupted finish when exactly the final segment of the committed
//!   partial is there (it authenticates with the final flag and holds exactly the
//!   committed partial bytes), since that object holds exactly the committed bytes;
//! * treats a tail record whose committed segments are missing from the blob, or whose
//!   last-segment nonce fingerprint does not match, as stale: it is discarded and the
//!   hash state rebuilt from the segments that do authenticate (reported in
//!   [`Recovery::tail_rebuilt`]; only a blob store that broke its durability promise or
//!   an operator restoring files can cause it).
//!
//! Dropping a writer without `commit` is a rollback that happens at the next recovery.
//!
//! Not here: the segment codec ([`super::format`]), the hot loop ([`super::encoder`]).
//!
//! Size: past ~400 lines because append, commit, finish and recovery share the writer's
//! invariants (batch buffer, tail generation, hash midstate) and are reviewed together
//! against the crash-injection steps above.

use std::fmt;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::AtRestError;
use super::encoder::{Resume, SegmentEncoder};
use super::format::{
    FormatError, HEADER_LEN, Header, NONCE_LEN, ObjectKeys, SEGMENT_OVERHEAD, SegmentSize,
    segment_offset,
};
use super::tail::{TailError, TailRecord, TailState};
use crate::blob::{BlobError, BlobId, BlobStore};
use crate::ids::OpaqueId;
use crate::keys::Dek;
use crate::keys::record::DekRecord;
use crate::state::{Expect, Namespace, PutOptions, StateStore};

/// Tail records of deferred commits ([`Writer::commit_deferred`]), by object id: the
/// sealed record, as in the tail blob.
pub const DEFERRED_TAILS: Namespace = Namespace::new("at_rest_tail");

/// A commit's result: what is now durable and acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
    /// Committed plaintext bytes (the upload offset).
    pub plaintext_len: u64,
    /// The tail record's generation (1 after creation, +1 per commit).
    pub generation: u64,
}

/// A finished object's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finished {
    /// Its plaintext length.
    pub plaintext_len: u64,
    /// SHA-256 of its plaintext.
    pub sha256: [u8; 32],
}

/// What recovery did when a writer was reopened or rolled back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recovery {
    /// The state recovered to.
    pub committed: Committed,
    /// Uncommitted ciphertext bytes cut from the end of the data blob.
    pub cut_bytes: u64,
    /// The tail record was stale and was rebuilt from the data blob; `committed` may be
    /// shorter than what was acknowledged before (see the module docs).
    pub tail_rebuilt: bool,
}

/// The result of reopening an object for writing.
#[derive(Debug)]
pub enum Reopened {
    /// Still open: a writer at the last commit.
    Open {
        /// The writer.
        writer: Box<Writer>,
        /// What recovery did.
        recovery: Recovery,
    },
    /// Already finished (possibly by completing an interrupted `finish`).
    Finished(Finished),
}

/// Appends to one object. Not `Clone`: one writer per object, under the caller's lock.
pub struct Writer {
    blob: Arc<dyn BlobStore>,
    state: Arc<dyn StateStore>,
    object: OpaqueId,
    encoder: SegmentEncoder,
    committed: Committed,
    /// Expected data blob length (header, sealed segments appended so far).
    blob_len: u64,
    unsynced: bool,
    poisoned: bool,
    /// The commit note of the last committed tail record (empty: none).
    note: Zeroizing<Vec<u8>>,
    /// The state store may hold a deferred tail record of this object.
    deferred: bool,
}

impl fmt::Debug for Writer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Writer")
            .field("object", &self.object)
            .field("committed", &self.committed)
            .field("len", &self.encoder.plaintext_len())
            .field("poisoned", &self.poisoned)
            .finish_non_exhaustive()
    }
}

impl Writer {
    /// Adds plaintext. Full batches of sealed segments go to the blob store; nothing is
    /// acknowledged until [`Writer::commit`].
    pub async fn append(&mut self, mut data: &[u8]) -> Result<(), AtRestError> {
        self.usable()?;
        while !data.is_empty() {
            let taken = match self.encoder.push(data) {
                Ok(n) => n,
                Err(e) => return Err(self.poison(e.into())),
            };
            data = &data[taken..];
            if self.encoder.batch_is_full() {
                self.flush().await?;
            }
        }
        Ok(())
    }

    /// Makes everything appended so far durable and acknowledged; returns the committed
    /// length. A no-op when nothing was appended since the last commit.
    pub async fn commit(&mut self) -> Result<Committed, AtRestError> {
        self.commit_noted(&[]).await
    }

    /// As [`Writer::commit`], with a *commit note* sealed into the tail record, the commit
    /// point: what this commit means to the caller, read back with [`Writer::note`] after
    /// a crash (at most [`super::tail::MAX_NOTE_LEN`] bytes; empty: none). Nothing is
    /// written, note included, when nothing was appended since the last commit.
    pub async fn commit_noted(&mut self, note: &[u8]) -> Result<Committed, AtRestError> {
        let Some(record) = self.prepare_commit(note).await? else {
            return Ok(self.committed);
        };
        self.write_tail(&record).await?;
        Ok(self.committed_to(record))
    }

    /// As [`Writer::commit_noted`], but the tail record goes to the state store, written
    /// deferred ([`StateStore::put_deferred`]): the commit point is the store's next
    /// durable write, which the caller makes (its own record's commit) before it
    /// acknowledges anything. One sync fewer per commit than the tail blob's replace, and
    /// on the embedded store the object's commit and the caller's record are then one
    /// atomic commit. Recovery takes the newer of the two tail records
    /// (`proto/at-rest-v1.md`, deferred tail records); [`Writer::finish`] writes the tail
    /// blob again and drops the deferred record.
    pub async fn commit_deferred(&mut self, note: &[u8]) -> Result<Committed, AtRestError> {
        let Some(record) = self.prepare_commit(note).await? else {
            return Ok(self.committed);
        };
        let bytes = match record.seal(self.encoder.keys_mut()) {
            Ok(b) => b,
            Err(e) => return Err(self.poison(e.into())),
        };
        let written = self
            .state
            .put_deferred(
                DEFERRED_TAILS,
                &self.object.to_string(),
                &bytes,
                Expect::Any,
                PutOptions::default(),
            )
            .await;
        if let Err(e) = written {
            return Err(self.poison(e.into()));
        }
        self.deferred = true;
        Ok(self.committed_to(record))
    }

    /// A commit up to its commit point: the segments appended and synced, and the tail
    /// record to write (`None`: nothing was appended since the last commit).
    async fn prepare_commit(&mut self, note: &[u8]) -> Result<Option<TailRecord>, AtRestError> {
        self.usable()?;
        if self.encoder.plaintext_len() == self.committed.plaintext_len {
            return Ok(None);
        }
        if note.len() > super::tail::MAX_NOTE_LEN {
            return Err(TailError::Inconsistent("commit note too long").into());
        }
        self.flush().await?;
        self.sync().await?;
        Ok(Some(TailRecord {
            state: TailState::Open,
            generation: self.committed.generation + 1,
            full_segments: self.encoder.full_segments(),
            plaintext_len: self.encoder.plaintext_len(),
            last_nonce: self.encoder.last_nonce(),
            midstate: TailRecord::midstate_of(self.encoder.hasher()),
            partial: self.encoder.partial().clone(),
            note: Zeroizing::new(note.to_vec()),
        }))
    }

    /// The writer's state once `record`, the commit point, is written.
    fn committed_to(&mut self, record: TailRecord) -> Committed {
        self.committed = Committed {
            plaintext_len: record.plaintext_len,
            generation: record.generation,
        };
        self.note = record.note;
        self.committed
    }

    /// The commit note of the last committed tail record (empty when it has none).
    pub fn note(&self) -> &[u8] {
        &self.note
    }

    /// Discards everything appended since the last commit (e.g. a PATCH whose checksum
    /// failed) and, after a failure, re-reads the durable state. Returns the committed
    /// state, which is where appending continues.
    pub async fn rollback(&mut self) -> Result<Committed, AtRestError> {
        match recover(&*self.blob, &*self.state, self.encoder.keys_mut()).await? {
            Recovered::Open { tail, recovery } => {
                self.blob_len =
                    segment_offset(tail.full_segments, tail_segment_size(&self.encoder));
                self.committed = recovery.committed;
                self.encoder.reset(resume_from(&tail)?);
                self.unsynced = false;
                self.poisoned = false;
                self.note = tail.note;
                Ok(self.committed)
            }
            Recovered::Finished(_) => Err(AtRestError::AlreadyFinished),
        }
    }

    /// Commits, seals the final segment and marks the object finished. Returns the
    /// plaintext length and SHA-256.
    ///
    /// One sync and one tail replace: the segments appended since the last commit and
    /// the final segment go out together, and the finished tail record is the commit
    /// point of both. A crash before it recovers to the last commit (nothing of this
    /// finish was acknowledged), or completes the finish when the final segment is all
    /// that is missing its record (see the module docs).
    pub async fn finish(mut self) -> Result<Finished, AtRestError> {
        self.usable()?;
        if let Err(e) = self.encoder.seal_final() {
            return Err(self.poison(e.into()));
        }
        self.flush().await?;
        self.sync().await?;
        let record = TailRecord {
            state: TailState::Finished,
            generation: self.committed.generation + 1,
            full_segments: self.encoder.full_segments(),
            plaintext_len: self.encoder.plaintext_len(),
            last_nonce: self.encoder.last_nonce(),
            midstate: TailRecord::midstate_of(self.encoder.hasher()),
            partial: Zeroizing::new(Vec::new()),
            note: Zeroizing::new(Vec::new()),
        };
        self.write_tail(&record).await?;
        // The finished tail blob wins over any deferred record; this one is stale now.
        if self.deferred {
            self.state
                .delete_deferred(DEFERRED_TAILS, &self.object.to_string(), Expect::Any)
                .await?;
        }
        Ok(Finished {
            plaintext_len: record.plaintext_len,
            sha256: self.encoder.hasher().clone().finalize().into(),
        })
    }

    /// Plaintext bytes appended, committed or not.
    pub fn len(&self) -> u64 {
        self.encoder.plaintext_len()
    }

    /// Whether nothing was appended yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The last commit.
    pub fn committed(&self) -> Committed {
        self.committed
    }

    /// The object.
    pub fn object(&self) -> OpaqueId {
        self.object
    }

    fn usable(&self) -> Result<(), AtRestError> {
        if self.poisoned {
            Err(AtRestError::Poisoned)
        } else {
            Ok(())
        }
    }

    fn poison(&mut self, error: AtRestError) -> AtRestError {
        self.poisoned = true;
        error
    }

    async fn flush(&mut self) -> Result<(), AtRestError> {
        if self.encoder.batch().is_empty() {
            return Ok(());
        }
        // The batch buffer goes to the blob store by value and comes back: no copy.
        let (buf, filled) = self.encoder.take_batch();
        let expected = self.blob_len + filled as u64;
        let appended = self
            .blob
            .append_owned(BlobId::data(self.object), buf, filled)
            .await;
        match appended {
            Ok((len, buf)) => {
                self.encoder.restore_batch(Some(buf));
                if len != expected {
                    return Err(self.poison(AtRestError::ConcurrentWrite));
                }
                self.blob_len = len;
                self.unsynced = true;
                Ok(())
            }
            Err(e) => {
                self.encoder.restore_batch(None);
                Err(self.poison(e.into()))
            }
        }
    }

    async fn sync(&mut self) -> Result<(), AtRestError> {
        if !self.unsynced {
            return Ok(());
        }
        match self.blob.sync(BlobId::data(self.object)).await {
            Ok(()) => {
                self.unsynced = false;
                Ok(())
            }
            Err(e) => Err(self.poison(e.into())),
        }
    }

    async fn write_tail(&mut self, record: &TailRecord) -> Result<(), AtRestError> {
        let bytes = match record.seal(self.encoder.keys_mut()) {
            Ok(b) => b,
            Err(e) => return Err(self.poison(e.into())),
        };
        match self.blob.replace(BlobId::tail(self.object), &bytes).await {
            Ok(()) => Ok(()),
            Err(e) => Err(self.poison(e.into())),
        }
    }
}

/// Writes a whole finished object holding `plaintext` (see [`super::AtRest::put`]): the
/// header and every segment sealed in memory, then the data blob and a finished tail
/// record created together. An orphan left under the same id (with no DEK before ours,
/// its bytes were unreadable anyway) is deleted and the creation tried once more.
pub(crate) async fn write_finished(
    blob: &dyn BlobStore,
    header: Header,
    keys: ObjectKeys,
    plaintext: &[u8],
) -> Result<Finished, AtRestError> {
    let object = header.object;
    let seg = keys.segment_size.bytes();
    // Sealed batch by batch into `data` (one batch for an object of a few segments); the
    // final segment always fits after the last one.
    let batch = (plaintext.len() + seg).min(super::encoder::DEFAULT_BATCH_BYTES);
    let mut encoder = SegmentEncoder::new(keys, batch, Resume::empty());
    let segments = plaintext.len() / seg + 1;
    let mut data = Vec::with_capacity(HEADER_LEN + plaintext.len() + segments * SEGMENT_OVERHEAD);
    data.extend_from_slice(&header.encode());
    let mut rest = plaintext;
    while !rest.is_empty() {
        let taken = encoder.push(rest)?;
        rest = &rest[taken..];
        data.extend_from_slice(encoder.batch());
        encoder.clear_batch();
    }
    encoder.seal_final()?;
    data.extend_from_slice(encoder.batch());
    encoder.clear_batch();
    let record = TailRecord {
        state: TailState::Finished,
        generation: 1,
        full_segments: encoder.full_segments(),
        plaintext_len: encoder.plaintext_len(),
        last_nonce: encoder.last_nonce(),
        midstate: TailRecord::midstate_of(encoder.hasher()),
        partial: Zeroizing::new(Vec::new()),
        note: Zeroizing::new(Vec::new()),
    };
    let sealed = record.seal(encoder.keys_mut())?;
    let blobs = [
        (BlobId::data(object), &data[..]),
        (BlobId::tail(object), &sealed[..]),
    ];
    match blob.create_with(&blobs).await {
        Ok(()) => {}
        Err(BlobError::AlreadyExists(_)) => {
            blob.delete(BlobId::tail(object)).await?;
            blob.delete(BlobId::data(object)).await?;
            blob.create_with(&blobs).await?;
        }
        Err(e) => return Err(e.into()),
    }
    Ok(Finished {
        plaintext_len: record.plaintext_len,
        sha256: encoder.hasher().clone().finalize().into(),
    })
}

fn tail_segment_size(encoder: &SegmentEncoder) -> SegmentSize {
    encoder.keys().segment_size
}

/// Creates the data blob holding the header and the tail blob holding the first tail
/// record, in one [`BlobStore::create_with`] (three syncs on the local store). An orphan
/// left by a crashed create or delete is reused instead (with no DEK before ours, its
/// bytes were unreadable anyway): the data blob cut to nothing, the header appended and
/// synced, the tail record replaced.
pub(crate) async fn initialize(
    blob: Arc<dyn BlobStore>,
    state: Arc<dyn StateStore>,
    header: Header,
    mut keys: ObjectKeys,
    batch_bytes: usize,
) -> Result<Writer, AtRestError> {
    let object = header.object;
    let data = BlobId::data(object);
    let first = TailRecord {
        state: TailState::Open,
        generation: 1,
        full_segments: 0,
        plaintext_len: 0,
        last_nonce: [0; NONCE_LEN],
        midstate: TailRecord::midstate_of(&Sha256::new()),
        partial: Zeroizing::new(Vec::new()),
        note: Zeroizing::new(Vec::new()),
    };
    let sealed = first.seal(&mut keys)?;
    let encoded = header.encode();
    let tail = BlobId::tail(object);
    match blob
        .create_with(&[(data, &encoded[..]), (tail, &sealed[..])])
        .await
    {
        Ok(()) => {}
        Err(BlobError::AlreadyExists(_)) => {
            match blob.create(data).await {
                Ok(()) => {}
                Err(BlobError::AlreadyExists(_)) => blob.truncate(data, 0).await?,
                Err(e) => return Err(e.into()),
            }
            let len = blob.append(data, &encoded).await?;
            if len != HEADER_LEN as u64 {
                return Err(AtRestError::ConcurrentWrite);
            }
            blob.sync(data).await?;
            blob.replace(tail, &sealed).await?;
        }
        Err(e) => return Err(e.into()),
    }
    Ok(Writer {
        blob,
        state,
        object,
        encoder: SegmentEncoder::new(keys, batch_bytes, Resume::empty()),
        committed: Committed {
            plaintext_len: 0,
            generation: 1,
        },
        blob_len: HEADER_LEN as u64,
        unsynced: false,
        poisoned: false,
        note: Zeroizing::new(Vec::new()),
        deferred: false,
    })
}

/// Reopens an object for writing: header and key commitment, then recovery.
pub(crate) async fn reopen(
    blob: Arc<dyn BlobStore>,
    state: Arc<dyn StateStore>,
    object: OpaqueId,
    record: &DekRecord,
    dek: Dek,
    segment_size: SegmentSize,
    batch_bytes: usize,
) -> Result<Reopened, AtRestError> {
    let data = BlobId::data(object);
    let blob_len = match blob.len(data).await {
        Ok(n) => Some(n),
        Err(BlobError::NotFound(_)) => None,
        Err(e) => return Err(e.into()),
    };
    let tail_exists = match blob.len(BlobId::tail(object)).await {
        Ok(_) => true,
        Err(BlobError::NotFound(_)) => false,
        Err(e) => return Err(e.into()),
    };
    // (A deferred tail record is written only by a writer, after the first tail record.)
    let tail_exists = tail_exists
        || state
            .get(DEFERRED_TAILS, &object.to_string())
            .await?
            .is_some();
    // A create that crashed before its first tail record: the header is missing, torn or
    // not known to be durable, and no tail record exists (it is written only after the
    // header's sync). Nothing was ever acknowledged, so start afresh under the same DEK.
    if !tail_exists && blob_len.is_none_or(|n| n <= HEADER_LEN as u64) {
        let (header, keys) = Header::create(object, record.dek_id, segment_size, &dek)?;
        drop(dek);
        let writer = initialize(blob, state, header, keys, batch_bytes).await?;
        let recovery = Recovery {
            committed: writer.committed,
            cut_bytes: blob_len.unwrap_or(0),
            tail_rebuilt: false,
        };
        return Ok(Reopened::Open {
            writer: Box::new(writer),
            recovery,
        });
    }
    let blob_len = blob_len.ok_or(AtRestError::Inconsistent("tail record without data blob"))?;
    if blob_len < HEADER_LEN as u64 {
        return Err(AtRestError::Inconsistent("tail record with a torn header"));
    }
    let header = Header::decode(&blob.read_range(data, 0, HEADER_LEN as u64).await?)?;
    let mut keys = header.unlock(object, &record.dek_id, &dek)?;
    drop(dek);
    match recover(&*blob, &*state, &mut keys).await? {
        Recovered::Finished(f) => Ok(Reopened::Finished(f)),
        Recovered::Open { tail, recovery } => {
            let blob_len = segment_offset(tail.full_segments, keys.segment_size);
            let encoder = SegmentEncoder::new(keys, batch_bytes, resume_from(&tail)?);
            let note = tail.note;
            Ok(Reopened::Open {
                writer: Box::new(Writer {
                    blob,
                    state,
                    object,
                    encoder,
                    committed: recovery.committed,
                    blob_len,
                    unsynced: false,
                    poisoned: false,
                    note,
                    // Whether or not one is there now: `finish` deletes it either way.
                    deferred: true,
                }),
                recovery,
            })
        }
    }
}

fn resume_from(tail: &TailRecord) -> Result<Resume, AtRestError> {
    Ok(Resume {
        full_segments: tail.full_segments,
        plaintext_len: tail.plaintext_len,
        hasher: tail.hasher()?,
        partial: tail.partial.clone(),
        last_nonce: tail.last_nonce,
    })
}

pub(crate) enum Recovered {
    Open {
        tail: TailRecord,
        recovery: Recovery,
    },
    Finished(Finished),
}

/// Brings the blobs back to the last commit (see the module docs).
pub(crate) async fn recover(
    blob: &dyn BlobStore,
    state: &dyn StateStore,
    keys: &mut ObjectKeys,
) -> Result<Recovered, AtRestError> {
    let s = keys.segment_size;
    let data = BlobId::data(keys.object);
    let blob_len = blob.len(data).await?;
    let tail = commit_point(blob, state, keys).await?;
    let committed_end = segment_offset(tail.full_segments, s);

    if tail.state == TailState::Finished {
        let final_len = tail.plaintext_len - tail.full_segments * u64::from(s.get());
        if blob_len != committed_end + final_len + SEGMENT_OVERHEAD as u64 {
            return Err(AtRestError::Inconsistent(
                "finished object's length differs from its tail record",
            ));
        }
        // A crash between `finish`'s tail replace and its delete of the deferred record.
        drop_deferred(state, keys.object).await?;
        return Ok(Recovered::Finished(Finished {
            plaintext_len: tail.plaintext_len,
            sha256: tail.hasher()?.finalize().into(),
        }));
    }

    let mut cut_bytes = 0;
    if blob_len > committed_end {
        let extra = blob_len - committed_end;
        if extra == tail.partial.len() as u64 + SEGMENT_OVERHEAD as u64
            && is_final_of(blob, keys, &tail, committed_end, extra).await?
        {
            let finished = complete_finish(blob, keys, tail, committed_end, extra).await?;
            // As `finish` does: the finished tail blob makes a deferred record stale.
            drop_deferred(state, keys.object).await?;
            return Ok(finished);
        }
        blob.truncate(data, committed_end).await?;
        cut_bytes = extra;
    }
    let fresh = blob_len >= committed_end
        && (tail.full_segments == 0
            || last_segment_matches(blob, keys, &tail, committed_end).await?);
    if fresh {
        let committed = Committed {
            plaintext_len: tail.plaintext_len,
            generation: tail.generation,
        };
        return Ok(Recovered::Open {
            tail,
            recovery: Recovery {
                committed,
                cut_bytes,
                tail_rebuilt: false,
            },
        });
    }
    rebuild(blob, keys, &tail, cut_bytes).await
}

/// Deletes the deferred tail record of a finished object, if there is one (stale: the
/// finished tail blob is the last word). A read when there is none, so recovering a
/// finished object writes nothing.
async fn drop_deferred(state: &dyn StateStore, object: OpaqueId) -> Result<(), AtRestError> {
    let id = object.to_string();
    if state.get(DEFERRED_TAILS, &id).await?.is_some() {
        state
            .delete_deferred(DEFERRED_TAILS, &id, Expect::Any)
            .await?;
    }
    Ok(())
}

/// The object's last commit point: its tail blob's record, or the deferred tail record in
/// the state store when that is a later generation of an object still open (a finished
/// tail blob is always the last word; `finish`, `rebuild` and `complete_finish` write the
/// tail blob at a generation past any deferred record).
async fn commit_point(
    blob: &dyn BlobStore,
    state: &dyn StateStore,
    keys: &ObjectKeys,
) -> Result<TailRecord, AtRestError> {
    let s = keys.segment_size;
    let tail_id = BlobId::tail(keys.object);
    let tail_len = match blob.len(tail_id).await {
        Ok(n) => Some(n),
        Err(BlobError::NotFound(_)) => None,
        Err(e) => return Err(e.into()),
    };
    let Some(tail_len) = tail_len else {
        return Err(AtRestError::Inconsistent("tail record missing"));
    };
    // A tail record holds less than one segment of partial data, fixed fields and a note.
    if tail_len > super::tail::max_sealed_len(s) {
        return Err(AtRestError::Inconsistent("tail record too large"));
    }
    let tail = TailRecord::open(keys, &blob.read_range(tail_id, 0, tail_len).await?)?;
    if tail.state == TailState::Finished {
        return Ok(tail);
    }
    let Some(stored) = state.get(DEFERRED_TAILS, &keys.object.to_string()).await? else {
        return Ok(tail);
    };
    if stored.value.len() as u64 > super::tail::max_sealed_len(s) {
        return Err(AtRestError::Inconsistent("deferred tail record too large"));
    }
    let deferred = TailRecord::open(keys, &stored.value)?;
    if deferred.state != TailState::Open {
        return Err(AtRestError::Inconsistent(
            "a deferred tail record is finished",
        ));
    }
    Ok(if deferred.generation > tail.generation {
        deferred
    } else {
        tail
    })
}

/// Whether the `extra` bytes after the committed segments are exactly the final segment
/// holding the committed partial (an interrupted `finish`).
async fn is_final_of(
    blob: &dyn BlobStore,
    keys: &ObjectKeys,
    tail: &TailRecord,
    at: u64,
    extra: u64,
) -> Result<bool, AtRestError> {
    let bytes = blob
        .read_range(BlobId::data(keys.object), at, extra)
        .await?;
    let mut buf = Zeroizing::new(bytes.to_vec());
    let len = buf.len();
    match keys.open_segment_within(tail.full_segments, true, &mut buf, 0, 0, len) {
        Ok(n) => Ok(bool::from(buf[..n].ct_eq(&tail.partial[..]))),
        Err(_) => Ok(false),
    }
}

async fn complete_finish(
    blob: &dyn BlobStore,
    keys: &mut ObjectKeys,
    tail: TailRecord,
    at: u64,
    extra: u64,
) -> Result<Recovered, AtRestError> {
    let data = BlobId::data(keys.object);
    blob.sync(data).await?;
    let nonce = blob.read_range(data, at, NONCE_LEN as u64).await?;
    let mut last_nonce = [0u8; NONCE_LEN];
    last_nonce.copy_from_slice(&nonce);
    debug_assert_eq!(extra, tail.partial.len() as u64 + SEGMENT_OVERHEAD as u64);
    let finished = TailRecord {
        state: TailState::Finished,
        generation: tail.generation + 1,
        full_segments: tail.full_segments,
        plaintext_len: tail.plaintext_len,
        last_nonce,
        midstate: tail.midstate.clone(),
        partial: Zeroizing::new(Vec::new()),
        note: Zeroizing::new(Vec::new()),
    };
    blob.replace(BlobId::tail(keys.object), &finished.seal(keys)?)
        .await?;
    Ok(Recovered::Finished(Finished {
        plaintext_len: tail.plaintext_len,
        sha256: tail.hasher()?.finalize().into(),
    }))
}

/// Whether the last committed segment is in the blob: same nonce and it authenticates.
async fn last_segment_matches(
    blob: &dyn BlobStore,
    keys: &ObjectKeys,
    tail: &TailRecord,
    committed_end: u64,
) -> Result<bool, AtRestError> {
    let stride = keys.segment_size.stride();
    let at = committed_end - stride;
    let bytes = blob
        .read_range(BlobId::data(keys.object), at, stride)
        .await?;
    if bytes[..NONCE_LEN] != tail.last_nonce {
        return Ok(false);
    }
    let mut buf = Zeroizing::new(bytes.to_vec());
    let len = buf.len();
    Ok(keys
        .open_segment_within(tail.full_segments - 1, false, &mut buf, 0, 0, len)
        .is_ok())
}

/// Discards a stale tail record: keeps the leading segments that authenticate, rebuilds
/// the hash over them, cuts the rest, writes a new tail record.
async fn rebuild(
    blob: &dyn BlobStore,
    keys: &mut ObjectKeys,
    stale: &TailRecord,
    mut cut_bytes: u64,
) -> Result<Recovered, AtRestError> {
    let s = keys.segment_size;
    let data = BlobId::data(keys.object);
    let blob_len = blob.len(data).await?;
    let present = blob_len.saturating_sub(HEADER_LEN as u64) / s.stride();
    let mut hasher = Sha256::new();
    let mut good = 0u64;
    const PER_READ: u64 = 64;
    'outer: while good < present {
        let n = (present - good).min(PER_READ);
        let bytes = blob
            .read_range(data, segment_offset(good, s), n * s.stride())
            .await?;
        let mut buf = Zeroizing::new(bytes.to_vec());
        for i in 0..n as usize {
            let src = i * s.stride() as usize;
            let stride = s.stride() as usize;
            match keys.open_segment_within(good, false, &mut buf, src, src, stride) {
                Ok(len) => hasher.update(&buf[src..src + len]),
                Err(FormatError::Segment { .. }) => break 'outer,
                Err(e) => return Err(e.into()),
            }
            good += 1;
        }
    }
    let mut last_nonce = [0u8; NONCE_LEN];
    if good > 0 {
        let at = segment_offset(good - 1, s);
        last_nonce.copy_from_slice(&blob.read_range(data, at, NONCE_LEN as u64).await?);
    }
    let end = segment_offset(good, s);
    if blob_len > end {
        blob.truncate(data, end).await?;
        cut_bytes += blob_len - end;
    }
    let tail = TailRecord {
        state: TailState::Open,
        generation: stale.generation + 1,
        full_segments: good,
        plaintext_len: good * u64::from(s.get()),
        last_nonce,
        midstate: TailRecord::midstate_of(&hasher),
        partial: Zeroizing::new(Vec::new()),
        note: Zeroizing::new(Vec::new()),
    };
    blob.replace(BlobId::tail(keys.object), &tail.seal(keys)?)
        .await?;
    tracing::warn!(
        object = %keys.object,
        acknowledged = stale.plaintext_len,
        recovered = tail.plaintext_len,
        "stale at-rest tail record discarded and rebuilt from the data blob"
    );
    let committed = Committed {
        plaintext_len: tail.plaintext_len,
        generation: tail.generation,
    };
    Ok(Recovered::Open {
        tail,
        recovery: Recovery {
            committed,
            cut_bytes,
            tail_rebuilt: true,
        },
    })
}
