//! A short-lived cache of artifact records and open at-rest readers.
//!
//! Artifact records never change after registration, and opening a reader costs a DEK
//! unwrap, a header read, a key derivation and an authenticated read of the final segment;
//! a burst of small downloads of one artifact would repeat all of that per request. So the
//! download path keeps both for `links.artifact_cache_ttl` (default 30 s; 0 disables). The
//! only thing that could make an entry stale is shredding an artifact, which is not offered
//! yet; when it is, it must also clear this cache (and the TTL bounds how long another
//! instance keeps serving). **Grants are never cached**: revocation must take effect on
//! the next request.
//!
//! At most [`MAX_ENTRIES`] artifacts are held; when full, expired entries go first, then
//! arbitrary ones.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::artifact::ArtifactRecord;
use crate::at_rest::Reader;
use crate::signed_link::ArtifactId;

/// Most cached artifacts.
pub const MAX_ENTRIES: usize = 1024;

#[derive(Debug, Clone)]
struct Entry {
    record: Arc<ArtifactRecord>,
    reader: Option<Reader>,
    at: Instant,
}

/// The cache.
#[derive(Debug)]
pub struct ArtifactCache {
    ttl: Duration,
    entries: Mutex<HashMap<ArtifactId, Entry>>,
}

impl ArtifactCache {
    /// A cache whose entries live `ttl` (zero: nothing is cached).
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The cached record and, if opened already, reader.
    pub fn get(
        &self,
        id: ArtifactId,
        now: Instant,
    ) -> Option<(Arc<ArtifactRecord>, Option<Reader>)> {
        if self.ttl.is_zero() {
            return None;
        }
        let mut entries = self.lock();
        match entries.get(&id) {
            Some(e) if now.saturating_duration_since(e.at) < self.ttl => {
                Some((e.record.clone(), e.reader.clone()))
            }
            Some(_) => {
                entries.remove(&id);
                None
            }
            None => None,
        }
    }

    /// Caches a record (and optionally its reader). A reader added to a live entry keeps
    /// the entry's original time, so nothing lives longer than `ttl` after it was read.
    pub fn put(&self, record: Arc<ArtifactRecord>, reader: Option<Reader>, now: Instant) {
        if self.ttl.is_zero() {
            return;
        }
        let ttl = self.ttl;
        let mut entries = self.lock();
        if let Some(e) = entries.get_mut(&record.id)
            && now.saturating_duration_since(e.at) < ttl
        {
            if e.reader.is_none() {
                e.reader = reader;
            }
            return;
        }
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, e| now.saturating_duration_since(e.at) < ttl);
            if entries.len() >= MAX_ENTRIES
                && let Some(k) = entries.keys().next().copied()
            {
                entries.remove(&k);
            }
        }
        entries.insert(
            record.id,
            Entry {
                record,
                reader,
                at: now,
            },
        );
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ArtifactId, Entry>> {
        // Poisoning only means a panic elsewhere mid-insert; the map itself stays valid.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}
