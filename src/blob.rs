//! The `BlobStore` port: where object bytes live. Nothing but ciphertext is ever handed to
//! it (the at-rest layer encrypts before it calls append or replace).
//!
//! Blobs are named only by [`BlobId`]: a server-generated [`OpaqueId`] plus a static
//! [`BlobKind`] suffix, so no client-supplied string ever becomes a path or object key.
//!
//! Primitives: create (fails if the blob exists), create with content, append, sync
//! (durable after it returns), truncate (cut a torn tail after a crash), atomic replace
//! (readers see the old or the new bytes, never a mix, even across a crash), read a byte
//! range, length, delete, list.
//! Its conformance suite is `tests/blob_store.rs`. Adapters: `local` (a directory) and `s3`
//! (an S3-compatible bucket, shared by several gateway instances).
//!
//! Not here: encryption, segment layout, who may read what.

use std::fmt;

use async_trait::async_trait;
use bytes::Bytes;

use crate::ids::OpaqueId;

pub mod local;
pub mod s3;

/// What a blob holds; part of its name so one object can own several blobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BlobKind {
    /// Segmented ciphertext of an object.
    Data,
    /// The encrypted tail record of an object still being appended to.
    Tail,
}

impl BlobKind {
    /// The suffix used in storage names.
    pub const fn suffix(self) -> &'static str {
        match self {
            BlobKind::Data => "data",
            BlobKind::Tail => "tail",
        }
    }

    /// Parses a suffix written by [`BlobKind::suffix`].
    pub fn from_suffix(s: &str) -> Option<Self> {
        match s {
            "data" => Some(BlobKind::Data),
            "tail" => Some(BlobKind::Tail),
            _ => None,
        }
    }
}

/// A blob's name: an object's id and the kind of blob.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobId {
    /// The owning object.
    pub object: OpaqueId,
    /// Which of the object's blobs.
    pub kind: BlobKind,
}

impl BlobId {
    /// The data blob of `object`.
    pub fn data(object: OpaqueId) -> Self {
        Self {
            object,
            kind: BlobKind::Data,
        }
    }

    /// The tail blob of `object`.
    pub fn tail(object: OpaqueId) -> Self {
        Self {
            object,
            kind: BlobKind::Tail,
        }
    }
}

impl fmt::Display for BlobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.object, self.kind.suffix())
    }
}

impl fmt::Debug for BlobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlobId({self})")
    }
}

/// A blob storage failure (nothing about HTTP).
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// No blob by that id.
    #[error("blob {0} not found")]
    NotFound(BlobId),
    /// `create` of a blob that exists.
    #[error("blob {0} already exists")]
    AlreadyExists(BlobId),
    /// A read or truncate beyond the blob's end.
    #[error("range {offset}+{len} is outside blob {id} of length {blob_len}")]
    OutOfRange {
        /// The blob.
        id: BlobId,
        /// Requested start.
        offset: u64,
        /// Requested length.
        len: u64,
        /// The blob's length.
        blob_len: u64,
    },
    /// The storage backend failed (disk full, permissions, unreachable).
    #[error("blob storage I/O failed: {0}")]
    Io(#[from] std::io::Error),
}

/// The first `len` bytes of an [`BlobStore::append_owned`] buffer, or the error for a
/// `len` past its end (every implementation checks it before writing anything).
pub(crate) fn owned_prefix(buf: &[u8], len: usize) -> Result<&[u8], BlobError> {
    buf.get(..len).ok_or_else(|| {
        BlobError::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "append_owned: length past the buffer",
        ))
    })
}

/// The blob store port.
#[async_trait]
pub trait BlobStore: Send + Sync + fmt::Debug + 'static {
    /// A short name for logs and `/readyz` (`"local"`).
    fn kind(&self) -> &'static str;

    /// Checks that the backend is usable (for `/readyz`).
    async fn ping(&self) -> Result<(), BlobError>;

    /// Creates an empty blob; fails with `AlreadyExists` if it exists.
    async fn create(&self, id: BlobId) -> Result<(), BlobError>;

    /// Creates every blob of `blobs` with its content, durably (content and names) when it
    /// returns: what [`Self::create`], then [`Self::append`] and [`Self::sync`] (a data
    /// blob) or [`Self::replace`] (a tail blob) would leave, in fewer syncs where the
    /// store can. Fails with `AlreadyExists` if one exists; blobs of `blobs` created
    /// before a failure stay (the caller deletes or reuses them, as after a failed
    /// `create` and `append`).
    ///
    /// For the at-rest layer's new objects (`at_rest::writer::initialize`): the local
    /// store writes each file once, syncs it once, and syncs their directory once.
    async fn create_with(&self, blobs: &[(BlobId, &[u8])]) -> Result<(), BlobError> {
        for &(id, data) in blobs {
            match id.kind {
                // A tail is born by its first replace, as the at-rest writer always made
                // it (checked first: this default is not atomic, ids are fresh).
                BlobKind::Tail => match self.len(id).await {
                    Ok(_) => return Err(BlobError::AlreadyExists(id)),
                    Err(BlobError::NotFound(_)) => self.replace(id, data).await?,
                    Err(e) => return Err(e),
                },
                BlobKind::Data => {
                    self.create(id).await?;
                    if !data.is_empty() {
                        self.append(id, data).await?;
                        self.sync(id).await?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Appends bytes at the end; returns the new length. Not durable until [`Self::sync`].
    async fn append(&self, id: BlobId, data: &[u8]) -> Result<u64, BlobError>;

    /// [`Self::append`] of the first `len` bytes of an owned buffer, which comes back with
    /// the new length for reuse: a store that writes on another thread takes the bytes
    /// there without a copy (the at-rest writer's batches, `at_rest::writer`). On an error
    /// the buffer is dropped; `len` past the buffer's end is an error that writes nothing.
    async fn append_owned(
        &self,
        id: BlobId,
        buf: Vec<u8>,
        len: usize,
    ) -> Result<(u64, Vec<u8>), BlobError> {
        let new_len = self.append(id, owned_prefix(&buf, len)?).await?;
        Ok((new_len, buf))
    }

    /// Makes every byte appended so far durable.
    async fn sync(&self, id: BlobId) -> Result<(), BlobError>;

    /// Cuts the blob to `len` bytes (which must not exceed its length), durably.
    async fn truncate(&self, id: BlobId, len: u64) -> Result<(), BlobError>;

    /// Atomically and durably replaces the blob's whole content (creating it if absent).
    async fn replace(&self, id: BlobId, data: &[u8]) -> Result<(), BlobError>;

    /// The blob's length in bytes.
    async fn len(&self, id: BlobId) -> Result<u64, BlobError>;

    /// Reads `len` bytes at `offset`; the range must lie inside the blob.
    async fn read_range(&self, id: BlobId, offset: u64, len: u64) -> Result<Bytes, BlobError>;

    /// Deletes the blob; `false` if it did not exist.
    async fn delete(&self, id: BlobId) -> Result<bool, BlobError>;

    /// Every blob id in the store, in ascending order (for sweepers and audits).
    async fn list(&self) -> Result<Vec<BlobId>, BlobError>;
}
