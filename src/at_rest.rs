//! Encryption at rest: the segmented AES-256-GCM object format (v1), its appending,
//! crash-safe writer and its random-access reader.
//!
//! Every object has its own data key (DEK), wrapped by the [`KeyProvider`] and kept in
//! the state store ([`crate::keys::record`]); deleting that record shreds the object. The
//! object's ciphertext is two blobs:
//!
//! * the **data blob** `BlobId::data(object)`: a 108-byte header, then segments of `S`
//!   plaintext bytes sealed with AES-256-GCM under a fresh random nonce each, then (once
//!   finished) one shorter final segment. Only whole segments are ever appended.
//! * the **tail record** `BlobId::tail(object)`: replaced atomically at every commit; it
//!   is the commit point. It holds the generation, the committed segment count and
//!   length, the partial last segment and the SHA-256 midstate, all encrypted. A writer
//!   may instead leave a commit's tail record in the state store
//!   ([`Writer::commit_deferred`], namespace `at_rest_tail`), durable with the caller's
//!   next durable state write; recovery takes the later generation of the two, and
//!   finishing writes the tail blob again.
//!
//! [`AtRest::create`] makes both blobs in one [`BlobStore::create_with`]; [`AtRest::put`]
//! writes a small object whole, finished, the same way.
//!
//! One [`Writer::commit`]: append the sealed segments (in batches of ~4 MiB), `sync`, then
//! replace the tail record. A crash anywhere leaves either the old or the new tail
//! record; [`AtRest::open_writer`] cuts whatever the blob holds beyond the committed
//! segments, so recovery yields exactly the committed bytes. Re-sealing after a crash
//! draws new random nonces, so no nonce is ever reused under a key.
//!
//! The format is normative in `proto/at-rest-v1.md` (golden vectors in `proto/vectors/`);
//! [`format`](mod@format) is its pure core, [`tail`] the tail record, [`encoder`] the writer's hot
//! path, [`writer`] and [`reader`] the I/O around them; [`settings`] validates the configured
//! segment size of new objects.
//!
//! Not here: who may read or write an object, upload bookkeeping (tus), locking between
//! concurrent writers of one object (the caller holds an upload lease; a writer detects a
//! concurrent append by the blob length and stops), HTTP.

use std::fmt;
use std::sync::Arc;

use crate::blob::{BlobError, BlobId, BlobStore};
use crate::ids::OpaqueId;
use crate::keys::record::{DEK_NAMESPACE, DekRecord};
use crate::keys::{DEK_ID_LEN, Dek, DekPurpose, KeyError, KeyProvider, WrapContext};
use crate::state::{CasOutcome, Expect, PutOptions, StateError, StateStore};

pub mod encoder;
pub mod format;
pub mod reader;
pub mod settings;
pub mod tail;
pub mod writer;

#[cfg(test)]
mod vectors;

pub use format::{FormatError, SegmentSize};
pub use reader::Reader;
pub use settings::AtRestSettings;
pub use tail::{MAX_NOTE_LEN, TailError};
pub use writer::{Committed, Finished, Recovery, Reopened, Writer};

use format::{Header, ObjectKeys};

/// The at-rest store: creates, reopens, reads and shreds encrypted objects.
#[derive(Clone)]
pub struct AtRest {
    blob: Arc<dyn BlobStore>,
    state: Arc<dyn StateStore>,
    keys: Arc<dyn KeyProvider>,
    segment_size: SegmentSize,
    batch_bytes: usize,
}

impl fmt::Debug for AtRest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AtRest")
            .field("blob", &self.blob.kind())
            .field("state", &self.state.kind())
            .field("keys", &self.keys.kind())
            .field("segment_size", &self.segment_size.get())
            .field("batch_bytes", &self.batch_bytes)
            .finish()
    }
}

/// An at-rest failure. Messages never contain plaintext or key material.
#[derive(Debug, thiserror::Error)]
pub enum AtRestError {
    /// No wrapped data key: never created, or deleted (shredded).
    #[error("object not found")]
    NotFound,
    /// `create` of an object that already has a data key.
    #[error("object already exists")]
    AlreadyExists,
    /// The ciphertext violates the format or fails authentication.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// The tail record is invalid or fails authentication.
    #[error(transparent)]
    Tail(#[from] TailError),
    /// The data key could not be obtained.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// Blob storage failed.
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// The state store failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// The object's blobs contradict each other in a way no crash can cause.
    #[error("the object's stored state is inconsistent: {0}")]
    Inconsistent(&'static str),
    /// Reading an object that is still being written.
    #[error("the object is not finished")]
    NotFinished,
    /// Writing to an object that is finished.
    #[error("the object is already finished")]
    AlreadyFinished,
    /// A read outside the object.
    #[error("range {offset}+{len} is outside the object of length {object_len}")]
    Range {
        /// Requested start.
        offset: u64,
        /// Requested length.
        len: u64,
        /// The object's plaintext length.
        object_len: u64,
    },
    /// A single `read_range` larger than [`reader::MAX_READ`]; use `stream_range`.
    #[error("a single read is limited to {limit} bytes; stream larger ranges")]
    ReadTooLarge {
        /// The limit.
        limit: u64,
    },
    /// An earlier write step failed; call `rollback` or reopen the object.
    #[error("the writer failed earlier and must be rolled back or reopened")]
    Poisoned,
    /// The data blob changed under the writer: someone else appended to it.
    #[error("the data blob was modified by another writer")]
    ConcurrentWrite,
}

/// What `delete` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deleted {
    /// A wrapped data key existed and was deleted.
    pub key: bool,
    /// The data blob existed and was deleted.
    pub data: bool,
    /// The tail record existed and was deleted.
    pub tail: bool,
}

impl AtRest {
    /// An at-rest store; new objects get `segment_size`-byte segments.
    pub fn new(
        blob: Arc<dyn BlobStore>,
        state: Arc<dyn StateStore>,
        keys: Arc<dyn KeyProvider>,
        segment_size: SegmentSize,
    ) -> Self {
        Self {
            blob,
            state,
            keys,
            segment_size,
            batch_bytes: encoder::DEFAULT_BATCH_BYTES,
        }
    }

    /// Appends to the blob store in runs of about `bytes` (default 4 MiB; at least one
    /// segment).
    pub fn with_batch_bytes(mut self, bytes: usize) -> Self {
        self.batch_bytes = bytes;
        self
    }

    /// Creates an empty object: a new DEK (wrapped under the current KEK and stored with
    /// compare-and-swap, so an id can be created once), the header and the first tail
    /// record.
    ///
    /// The DEK record is written deferred ([`StateStore::put_deferred`]): a new object is
    /// reachable only through a record that names it, and the durable commit of that
    /// record persists the DEK with it (the embedded store's commits persist in order).
    /// A crash before that leaves blobs no key opens, named by no record: what a crash
    /// between a durable DEK and the naming record left before, minus the key.
    pub async fn create(&self, object: OpaqueId) -> Result<Writer, AtRestError> {
        let (header, keys) = self.new_key(object).await?;
        writer::initialize(
            self.blob.clone(),
            self.state.clone(),
            header,
            keys,
            self.batch_bytes,
        )
        .await
    }

    /// Creates a finished object holding `plaintext`, in one step: what [`AtRest::create`],
    /// [`Writer::append`] and [`Writer::finish`] make, with the ciphertext sealed in
    /// memory and both blobs written by one [`BlobStore::create_with`] (three syncs on
    /// the local store, against five for the three steps). For small objects that are
    /// whole in memory (sealed upload metadata, batch documents); the DEK record is
    /// written as by [`AtRest::create`].
    pub async fn put(&self, object: OpaqueId, plaintext: &[u8]) -> Result<Finished, AtRestError> {
        let (header, keys) = self.new_key(object).await?;
        writer::write_finished(&*self.blob, header, keys, plaintext).await
    }

    /// A new DEK for `object`, wrapped and stored (deferred, see [`AtRest::create`]), and
    /// the object's header and keys.
    async fn new_key(&self, object: OpaqueId) -> Result<(Header, ObjectKeys), AtRestError> {
        let dek = Dek::generate()?;
        let mut dek_id = [0u8; DEK_ID_LEN];
        aws_lc_rs::rand::fill(&mut dek_id).map_err(|_| KeyError::Random)?;
        let ctx = WrapContext {
            object,
            dek_id,
            purpose: DekPurpose::ObjectData,
        };
        let wrapped = self.keys.wrap(&ctx, &dek, None).await?;
        let record = DekRecord {
            dek_id,
            purpose: DekPurpose::ObjectData,
            wrapped,
        };
        let options = PutOptions {
            ttl: None,
            index: vec![record.index_entry()],
        };
        match self
            .state
            .put_deferred(
                DEK_NAMESPACE,
                &object.to_string(),
                &record.encode(),
                Expect::Absent,
                options,
            )
            .await?
        {
            CasOutcome::Applied(_) => {}
            CasOutcome::Conflict(_) => return Err(AtRestError::AlreadyExists),
        }
        let (header, keys) = Header::create(object, dek_id, self.segment_size, &dek)?;
        drop(dek);
        Ok((header, keys))
    }

    /// Reopens an object for appending after a restart or a failure, recovering to its
    /// last commit (see [`Recovery`]); a finished object reports its result instead.
    pub async fn open_writer(&self, object: OpaqueId) -> Result<Reopened, AtRestError> {
        let (record, dek) = self.load_dek(object).await?;
        writer::reopen(
            self.blob.clone(),
            self.state.clone(),
            object,
            &record,
            dek,
            self.segment_size,
            self.batch_bytes,
        )
        .await
    }

    /// Opens a finished object for reading. The header, the key commitment and the final
    /// segment (hence the length) are verified before this returns.
    pub async fn open_reader(&self, object: OpaqueId) -> Result<Reader, AtRestError> {
        let (record, dek) = self.load_dek(object).await?;
        Reader::open(self.blob.clone(), object, &record, dek).await
    }

    /// Shreds an object: deletes its wrapped DEK first (after which the ciphertext is
    /// unrecoverable), then its blobs. Idempotent.
    pub async fn delete(&self, object: OpaqueId) -> Result<Deleted, AtRestError> {
        let id = object.to_string();
        let key = self.state.get(DEK_NAMESPACE, &id).await?.is_some();
        // `Expect::Any` cannot conflict; an absent record is fine (idempotent).
        self.state.delete(DEK_NAMESPACE, &id, Expect::Any).await?;
        let data = self.blob.delete(BlobId::data(object)).await?;
        let tail = self.blob.delete(BlobId::tail(object)).await?;
        // A deferred tail record of an object that was still open (`Writer::commit_deferred`).
        self.state
            .delete(writer::DEFERRED_TAILS, &id, Expect::Any)
            .await?;
        Ok(Deleted { key, data, tail })
    }

    /// Reads and unwraps an object's DEK; it lives only for the calling operation.
    async fn load_dek(&self, object: OpaqueId) -> Result<(DekRecord, Dek), AtRestError> {
        let stored = self
            .state
            .get(DEK_NAMESPACE, &object.to_string())
            .await?
            .ok_or(AtRestError::NotFound)?;
        let record = DekRecord::decode(&stored.value)?;
        if record.purpose != DekPurpose::ObjectData {
            return Err(KeyError::CorruptRecord("not an object data key").into());
        }
        let ctx = WrapContext {
            object,
            dek_id: record.dek_id,
            purpose: record.purpose,
        };
        let dek = self.keys.unwrap(&ctx, &record.wrapped).await?;
        Ok((record, dek))
    }
}
