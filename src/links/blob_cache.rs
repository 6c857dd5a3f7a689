//! A read-through cache of small ciphertext blobs, for the download path only.
//!
//! Serving a 1 KiB artifact otherwise costs a blocking-pool hop to open and read its data
//! blob on every request. This [`BlobStore`] decorator keeps whole data blobs of at most
//! [`SMALL_BLOB`] bytes (ciphertext — exactly what is on disk, never plaintext; every read
//! is still authenticated and decrypted by the at-rest reader) for `ttl`, up to
//! [`MAX_CACHED_BYTES`] in total. Only finished objects are read through it (the download
//! path's own `AtRest`); every create, write, truncate, replace or delete passes through
//! and drops the blob from the cache, so it never serves bytes a write has changed in this
//! process.
//! Objects are never rewritten after they are finished, which is what makes caching safe
//! across instances too.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;

use crate::blob::{BlobError, BlobId, BlobStore};

/// Largest blob cached whole.
pub const SMALL_BLOB: u64 = 256 * 1024;
/// Most bytes cached in total.
pub const MAX_CACHED_BYTES: u64 = 64 << 20;

#[derive(Debug)]
struct Entry {
    len: u64,
    bytes: Option<Bytes>,
    at: Instant,
}

/// The decorator.
#[derive(Debug)]
pub struct SmallBlobCache {
    inner: Arc<dyn BlobStore>,
    ttl: Duration,
    entries: Mutex<(HashMap<BlobId, Entry>, u64)>,
}

impl SmallBlobCache {
    /// Caches small blobs of `inner` for `ttl` (zero: a pass-through).
    pub fn new(inner: Arc<dyn BlobStore>, ttl: Duration) -> Self {
        Self {
            inner,
            ttl,
            entries: Mutex::new((HashMap::new(), 0)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (HashMap<BlobId, Entry>, u64)> {
        // Poisoning only means a panic elsewhere mid-update; the map stays usable.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn forget(&self, id: BlobId) {
        let mut guard = self.lock();
        let (map, total) = &mut *guard;
        if let Some(e) = map.remove(&id) {
            *total -= e.bytes.map_or(0, |b| b.len() as u64);
        }
    }

    fn fresh(&self, e: &Entry, now: Instant) -> bool {
        now.saturating_duration_since(e.at) < self.ttl
    }
}

#[async_trait]
impl BlobStore for SmallBlobCache {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    async fn ping(&self) -> Result<(), BlobError> {
        self.inner.ping().await
    }

    async fn create(&self, id: BlobId) -> Result<(), BlobError> {
        self.forget(id);
        self.inner.create(id).await
    }

    async fn create_with(&self, blobs: &[(BlobId, &[u8])]) -> Result<(), BlobError> {
        for &(id, _) in blobs {
            self.forget(id);
        }
        self.inner.create_with(blobs).await
    }
    async fn append(&self, id: BlobId, data: &[u8]) -> Result<u64, BlobError> {
        self.forget(id);
        self.inner.append(id, data).await
    }

    async fn sync(&self, id: BlobId) -> Result<(), BlobError> {
        self.inner.sync(id).await
    }

    async fn truncate(&self, id: BlobId, len: u64) -> Result<(), BlobError> {
        self.forget(id);
        self.inner.truncate(id, len).await
    }

    async fn replace(&self, id: BlobId, data: &[u8]) -> Result<(), BlobError> {
        self.forget(id);
        self.inner.replace(id, data).await
    }

    async fn len(&self, id: BlobId) -> Result<u64, BlobError> {
        let now = Instant::now();
        if let Some(e) = self.lock().0.get(&id).filter(|e| self.fresh(e, now)) {
            return Ok(e.len);
        }
        let len = self.inner.len(id).await?;
        if !self.ttl.is_zero() && len <= SMALL_BLOB {
            self.lock().0.insert(
                id,
                Entry {
                    len,
                    bytes: None,
                    at: now,
                },
            );
        }
        Ok(len)
    }

    async fn read_range(&self, id: BlobId, offset: u64, len: u64) -> Result<Bytes, BlobError> {
        let now = Instant::now();
        let known = {
            let guard = self.lock();
            match guard.0.get(&id).filter(|e| self.fresh(e, now)) {
                Some(Entry {
                    bytes: Some(b),
                    len: blob_len,
                    ..
                }) => {
                    if offset.checked_add(len).is_none_or(|end| end > *blob_len) {
                        return Err(BlobError::OutOfRange {
                            id,
                            offset,
                            len,
                            blob_len: *blob_len,
                        });
                    }
                    return Ok(b.slice(offset as usize..(offset + len) as usize));
                }
                Some(e) => Some(e.len),
                None => None,
            }
        };
        let Some(blob_len) = known else {
            return self.inner.read_range(id, offset, len).await;
        };
        let whole = self.inner.read_range(id, 0, blob_len).await?;
        if offset.checked_add(len).is_none_or(|end| end > blob_len) {
            return Err(BlobError::OutOfRange {
                id,
                offset,
                len,
                blob_len,
            });
        }
        let out = whole.slice(offset as usize..(offset + len) as usize);
        let mut guard = self.lock();
        let (map, total) = &mut *guard;
        if *total + blob_len <= MAX_CACHED_BYTES {
            if let Some(old) = map.insert(
                id,
                Entry {
                    len: blob_len,
                    bytes: Some(whole),
                    at: now,
                },
            ) {
                *total -= old.bytes.map_or(0, |b| b.len() as u64);
            }
            *total += blob_len;
        } else {
            // Full: drop expired entries so later reads can be cached again.
            let ttl = self.ttl;
            map.retain(|_, e| now.saturating_duration_since(e.at) < ttl);
            *total = map
                .values()
                .map(|e| e.bytes.as_ref().map_or(0, |b| b.len() as u64))
                .sum();
        }
        Ok(out)
    }

    async fn delete(&self, id: BlobId) -> Result<bool, BlobError> {
        self.forget(id);
        self.inner.delete(id).await
    }

    async fn list(&self) -> Result<Vec<BlobId>, BlobError> {
        self.inner.list().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blob::local::LocalBlobStore;
    use crate::ids::OpaqueId;

    #[tokio::test]
    async fn reads_through_and_forgets_on_write() {
        let dir = tempfile::tempdir().unwrap();
        let local: Arc<dyn BlobStore> = Arc::new(LocalBlobStore::open(dir.path()).unwrap());
        let cache = SmallBlobCache::new(local.clone(), Duration::from_secs(60));
        let id = BlobId::data(OpaqueId::random());
        local.create(id).await.unwrap();
        local.append(id, b"hello world").await.unwrap();
        assert_eq!(cache.len(id).await.unwrap(), 11);
        assert_eq!(&cache.read_range(id, 6, 5).await.unwrap()[..], b"world");
        // Served from memory now: changing the file behind the cache's back is not seen…
        local.append(id, b"!").await.unwrap();
        assert_eq!(&cache.read_range(id, 0, 5).await.unwrap()[..], b"hello");
        assert!(cache.read_range(id, 10, 2).await.is_err());
        // …but a write through the cache drops the entry.
        cache.append(id, b"?").await.unwrap();
        assert_eq!(cache.len(id).await.unwrap(), 13);
        assert_eq!(&cache.read_range(id, 11, 2).await.unwrap()[..], b"!?");
        // Zero TTL: a pure pass-through.
        let off = SmallBlobCache::new(local.clone(), Duration::ZERO);
        assert_eq!(off.len(id).await.unwrap(), 13);
        assert!(off.lock().0.is_empty());
    }
}
