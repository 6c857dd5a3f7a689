//! An in-memory `BlobStore` that models durability and can simulate a crash.
//!
//! Each blob keeps its bytes and how many of them are durable. `append` adds non-durable
//! bytes; `sync` makes them durable; `truncate` and `replace` are durable at once (as the
//! trait promises), but a truncate never makes earlier unsynced appends durable.
//!
//! A crash is armed with [`MemBlob::crash_at`]: the N-th mutating operation from now
//! (create, append, sync, truncate, replace, delete; counted from 0) fails, either before
//! taking effect or after it (the caller never learns it happened), or — for an append —
//! after writing only part of the bytes (a torn write). From then on every call fails
//! until [`MemBlob::restart`], which loses some or all unsynced bytes, as a power cut does.
//!
//! Every byte range ever written can be recorded ([`MemBlob::record_writes`]) so tests can
//! inspect every nonce that reached storage, including those later cut off.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use bytes::Bytes;
use sallyport::blob::{BlobError, BlobId, BlobStore};

/// How the armed operation fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashMode {
    /// The operation does not happen.
    Before,
    /// The operation happens but the caller gets an error.
    After,
    /// An append writes only its first `len - k` bytes (at least 0); other operations
    /// behave as `Before`.
    Torn(usize),
}

/// What a restart does to bytes appended but not synced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsynced {
    /// They survive.
    Keep,
    /// They are lost.
    Drop,
    /// Only their first `n` bytes survive.
    KeepPrefix(usize),
}

/// One write that reached storage.
#[derive(Debug, Clone)]
pub struct Write {
    /// The blob.
    pub id: BlobId,
    /// Where it landed (0 for a replace).
    pub offset: u64,
    /// The bytes.
    pub bytes: Vec<u8>,
    /// Whether it was a replace (else an append).
    pub replace: bool,
}

#[derive(Debug, Default)]
pub struct MemBlob {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    blobs: BTreeMap<BlobId, Blob>,
    crash: Option<(u64, CrashMode)>,
    crashed: bool,
    mutations: u64,
    record: bool,
    writes: Vec<Write>,
}

#[derive(Debug, Default, Clone)]
struct Blob {
    bytes: Vec<u8>,
    durable: usize,
}

enum Gate {
    Proceed,
    Skip,
    ApplyThenFail,
    Torn(usize),
}

fn crashed() -> BlobError {
    BlobError::Io(std::io::Error::other("simulated crash"))
}

impl MemBlob {
    /// Arms a crash at the `n`-th mutating operation from now (0 = the next one).
    pub fn crash_at(&self, n: u64, mode: CrashMode) {
        let mut inner = self.inner.lock().unwrap();
        inner.crash = Some((inner.mutations + n, mode));
    }

    /// Whether the armed crash happened.
    pub fn has_crashed(&self) -> bool {
        self.inner.lock().unwrap().crashed
    }

    /// Disarms any crash, applies the power cut to unsynced bytes, and accepts calls again.
    pub fn restart(&self, unsynced: Unsynced) {
        let mut inner = self.inner.lock().unwrap();
        for blob in inner.blobs.values_mut() {
            let keep = match unsynced {
                Unsynced::Keep => blob.bytes.len(),
                Unsynced::Drop => blob.durable,
                Unsynced::KeepPrefix(n) => (blob.durable + n).min(blob.bytes.len()),
            };
            blob.bytes.truncate(keep);
            blob.durable = keep;
        }
        inner.crash = None;
        inner.crashed = false;
    }

    /// Mutating operations so far.
    pub fn mutations(&self) -> u64 {
        self.inner.lock().unwrap().mutations
    }

    /// Starts recording every write.
    pub fn record_writes(&self) {
        self.inner.lock().unwrap().record = true;
    }

    /// Every recorded write, in order.
    pub fn writes(&self) -> Vec<Write> {
        self.inner.lock().unwrap().writes.clone()
    }

    /// A blob's current bytes (tests compare and tamper with them).
    pub fn raw(&self, id: BlobId) -> Option<Vec<u8>> {
        self.inner
            .lock()
            .unwrap()
            .blobs
            .get(&id)
            .map(|b| b.bytes.clone())
    }

    /// Replaces a blob's bytes behind the store's back (tampering), durably.
    pub fn set_raw(&self, id: BlobId, bytes: Vec<u8>) {
        let mut inner = self.inner.lock().unwrap();
        let durable = bytes.len();
        inner.blobs.insert(id, Blob { bytes, durable });
    }

    fn gate(inner: &mut Inner) -> Result<Gate, BlobError> {
        if inner.crashed {
            return Err(crashed());
        }
        let n = inner.mutations;
        inner.mutations += 1;
        match inner.crash {
            Some((at, mode)) if at == n => {
                inner.crashed = true;
                Ok(match mode {
                    CrashMode::Before => Gate::Skip,
                    CrashMode::After => Gate::ApplyThenFail,
                    CrashMode::Torn(k) => Gate::Torn(k),
                })
            }
            _ => Ok(Gate::Proceed),
        }
    }

    fn read_gate(inner: &Inner) -> Result<(), BlobError> {
        if inner.crashed {
            Err(crashed())
        } else {
            Ok(())
        }
    }

    fn blob(inner: &mut Inner, id: BlobId) -> Result<&mut Blob, BlobError> {
        inner.blobs.get_mut(&id).ok_or(BlobError::NotFound(id))
    }

    /// Runs `apply` according to the gate; torn appends get `Some(k)`.
    fn mutate<T>(
        &self,
        apply: impl FnOnce(&mut Inner, Option<usize>) -> Result<T, BlobError>,
    ) -> Result<T, BlobError> {
        let mut inner = self.inner.lock().unwrap();
        match Self::gate(&mut inner)? {
            Gate::Proceed => apply(&mut inner, None),
            Gate::Skip => Err(crashed()),
            Gate::ApplyThenFail => {
                apply(&mut inner, None)?;
                Err(crashed())
            }
            Gate::Torn(k) => {
                apply(&mut inner, Some(k))?;
                Err(crashed())
            }
        }
    }
}

#[async_trait]
impl BlobStore for MemBlob {
    fn kind(&self) -> &'static str {
        "memory"
    }

    async fn ping(&self) -> Result<(), BlobError> {
        Self::read_gate(&self.inner.lock().unwrap())
    }

    async fn create(&self, id: BlobId) -> Result<(), BlobError> {
        self.mutate(|inner, torn| {
            if torn.is_some() {
                return Err(crashed());
            }
            if inner.blobs.contains_key(&id) {
                return Err(BlobError::AlreadyExists(id));
            }
            inner.blobs.insert(id, Blob::default());
            Ok(())
        })
    }

    async fn append(&self, id: BlobId, data: &[u8]) -> Result<u64, BlobError> {
        self.mutate(|inner, torn| {
            let record = inner.record;
            let blob = Self::blob(inner, id)?;
            let offset = blob.bytes.len() as u64;
            let n = match torn {
                Some(k) => data.len().saturating_sub(k),
                None => data.len(),
            };
            blob.bytes.extend_from_slice(&data[..n]);
            let len = blob.bytes.len() as u64;
            if record {
                inner.writes.push(Write {
                    id,
                    offset,
                    bytes: data[..n].to_vec(),
                    replace: false,
                });
            }
            Ok(len)
        })
    }

    async fn sync(&self, id: BlobId) -> Result<(), BlobError> {
        self.mutate(|inner, torn| {
            if torn.is_some() {
                return Err(crashed());
            }
            let blob = Self::blob(inner, id)?;
            blob.durable = blob.bytes.len();
            Ok(())
        })
    }

    async fn truncate(&self, id: BlobId, len: u64) -> Result<(), BlobError> {
        self.mutate(|inner, torn| {
            if torn.is_some() {
                return Err(crashed());
            }
            let blob = Self::blob(inner, id)?;
            if len > blob.bytes.len() as u64 {
                return Err(BlobError::OutOfRange {
                    id,
                    offset: len,
                    len: 0,
                    blob_len: blob.bytes.len() as u64,
                });
            }
            blob.bytes.truncate(len as usize);
            blob.durable = blob.durable.min(len as usize);
            Ok(())
        })
    }

    async fn replace(&self, id: BlobId, data: &[u8]) -> Result<(), BlobError> {
        self.mutate(|inner, torn| {
            if torn.is_some() {
                // Atomic: a torn replace leaves the old content.
                return Err(crashed());
            }
            inner.blobs.insert(
                id,
                Blob {
                    bytes: data.to_vec(),
                    durable: data.len(),
                },
            );
            if inner.record {
                inner.writes.push(Write {
                    id,
                    offset: 0,
                    bytes: data.to_vec(),
                    replace: true,
                });
            }
            Ok(())
        })
    }

    async fn len(&self, id: BlobId) -> Result<u64, BlobError> {
        let mut inner = self.inner.lock().unwrap();
        Self::read_gate(&inner)?;
        Ok(Self::blob(&mut inner, id)?.bytes.len() as u64)
    }

    async fn read_range(&self, id: BlobId, offset: u64, len: u64) -> Result<Bytes, BlobError> {
        let mut inner = self.inner.lock().unwrap();
        Self::read_gate(&inner)?;
        let blob = Self::blob(&mut inner, id)?;
        let blob_len = blob.bytes.len() as u64;
        if offset.checked_add(len).is_none_or(|end| end > blob_len) {
            return Err(BlobError::OutOfRange {
                id,
                offset,
                len,
                blob_len,
            });
        }
        Ok(Bytes::copy_from_slice(
            &blob.bytes[offset as usize..(offset + len) as usize],
        ))
    }

    async fn delete(&self, id: BlobId) -> Result<bool, BlobError> {
        self.mutate(|inner, torn| {
            if torn.is_some() {
                return Err(crashed());
            }
            Ok(inner.blobs.remove(&id).is_some())
        })
    }

    async fn list(&self) -> Result<Vec<BlobId>, BlobError> {
        let inner = self.inner.lock().unwrap();
        Self::read_gate(&inner)?;
        Ok(inner.blobs.keys().copied().collect())
    }
}
