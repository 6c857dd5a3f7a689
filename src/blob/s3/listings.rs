//! The read side's memory of blob listings: for each recently read blob, the current pieces
//! its last listing found, so that consecutive reads of one blob do not each pay a LIST.
//!
//! Bounded three ways: an entry lives at most [`TTL`] after the LIST that produced it began;
//! at most [`MAX_BLOBS`] blobs and [`MAX_PIECES`] pieces in total are kept (the least
//! recently used entries go first; a blob of more pieces than that is not kept). Every
//! invalidation ([`Listings::forget`]) also advances an epoch, and a listing whose LIST
//! began before the latest invalidation is not stored, so a read racing a mutation in this
//! process never re-installs what the mutation made stale. No I/O; the caller passes the
//! clock. Why a stale entry never yields wrong bytes is argued in `super` (the module doc).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::layout::Piece;
use crate::blob::BlobId;

/// How long a listing may answer reads: the bound on how late a read on this instance sees
/// a replace made by another one (see the module doc of `super`).
pub const TTL: Duration = Duration::from_secs(5);
/// Most blobs remembered.
pub const MAX_BLOBS: usize = 1024;
/// Most pieces remembered, all blobs together (a piece is 24 bytes).
pub const MAX_PIECES: usize = 1 << 16;

/// The remembered listings of one store.
#[derive(Debug, Default)]
pub struct Listings {
    entries: HashMap<BlobId, Entry>,
    /// Pieces held by `entries`.
    pieces: usize,
    /// Advanced by every `forget`.
    epoch: u64,
    /// A use counter, for least-recently-used eviction.
    clock: u64,
}

#[derive(Debug)]
struct Entry {
    pieces: Arc<[Piece]>,
    listed_at: Instant,
    used: u64,
}

impl Listings {
    /// The epoch to pass to [`Listings::insert`]: read it before sending the LIST.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The current pieces last listed for `id`, unless older than [`TTL`] at `now`.
    pub fn get(&mut self, id: BlobId, now: Instant) -> Option<Arc<[Piece]>> {
        let fresh = self
            .entries
            .get(&id)
            .is_some_and(|e| now.saturating_duration_since(e.listed_at) < TTL);
        if !fresh {
            self.remove(id);
            return None;
        }
        self.clock += 1;
        let clock = self.clock;
        self.entries.get_mut(&id).map(|e| {
            e.used = clock;
            Arc::clone(&e.pieces)
        })
    }

    /// Remembers the current pieces of `id` from a LIST that began at `listed_at`, when no
    /// `forget` happened since `epoch` was read.
    pub fn insert(&mut self, id: BlobId, epoch: u64, pieces: Arc<[Piece]>, listed_at: Instant) {
        if epoch != self.epoch || pieces.len() > MAX_PIECES {
            return;
        }
        self.remove(id);
        while !self.entries.is_empty()
            && (self.entries.len() >= MAX_BLOBS || self.pieces + pieces.len() > MAX_PIECES)
        {
            let oldest = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.used)
                .map(|(k, _)| *k);
            match oldest {
                Some(oldest) => self.remove(oldest),
                None => break,
            }
        }
        self.clock += 1;
        self.pieces += pieces.len();
        self.entries.insert(
            id,
            Entry {
                pieces,
                listed_at,
                used: self.clock,
            },
        );
    }

    /// Drops what is remembered of `id` and refuses listings begun before now.
    pub fn forget(&mut self, id: BlobId) {
        self.remove(id);
        self.epoch += 1;
    }

    fn remove(&mut self, id: BlobId) {
        if let Some(e) = self.entries.remove(&id) {
            self.pieces -= e.pieces.len();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::OpaqueId;

    fn pieces(n: u64) -> Arc<[Piece]> {
        (0..n)
            .map(|i| Piece {
                generation: 0,
                start: i * 10,
                size: 10,
            })
            .collect()
    }

    #[test]
    fn an_entry_answers_until_its_ttl() {
        let mut l = Listings::default();
        let id = BlobId::data(OpaqueId::random());
        let t0 = Instant::now();
        l.insert(id, l.epoch(), pieces(3), t0);
        assert_eq!(l.get(id, t0 + TTL / 2).unwrap().len(), 3);
        assert!(l.get(id, t0 + TTL).is_none());
        assert!(l.get(id, t0).is_none(), "expired entries are dropped");
    }

    #[test]
    fn forget_drops_the_entry_and_refuses_listings_begun_before() {
        let mut l = Listings::default();
        let (a, b) = (
            BlobId::data(OpaqueId::random()),
            BlobId::tail(OpaqueId::random()),
        );
        let t0 = Instant::now();
        l.insert(a, l.epoch(), pieces(1), t0);
        let before = l.epoch();
        l.forget(a);
        assert!(l.get(a, t0).is_none());
        l.insert(b, before, pieces(1), t0);
        assert!(l.get(b, t0).is_none(), "a LIST begun before a forget");
        l.insert(b, l.epoch(), pieces(1), t0);
        assert!(l.get(b, t0).is_some());
    }

    #[test]
    fn the_least_recently_used_go_first_and_pieces_are_capped() {
        let mut l = Listings::default();
        let t0 = Instant::now();
        let ids: Vec<BlobId> = (0..MAX_BLOBS)
            .map(|_| BlobId::data(OpaqueId::random()))
            .collect();
        for id in &ids {
            l.insert(*id, l.epoch(), pieces(1), t0);
        }
        assert!(l.get(ids[0], t0).is_some());
        let extra = BlobId::data(OpaqueId::random());
        l.insert(extra, l.epoch(), pieces(1), t0);
        assert_eq!(l.entries.len(), MAX_BLOBS);
        assert!(l.get(ids[0], t0).is_some(), "used recently");
        assert!(l.get(ids[1], t0).is_none(), "the least recently used");
        // A big listing evicts as many as it needs; a too big one is not kept.
        let big = BlobId::data(OpaqueId::random());
        l.insert(big, l.epoch(), pieces(MAX_PIECES as u64 - 10), t0);
        assert!(l.pieces <= MAX_PIECES);
        assert!(l.get(big, t0).is_some());
        let huge = BlobId::data(OpaqueId::random());
        l.insert(huge, l.epoch(), pieces(MAX_PIECES as u64 + 1), t0);
        assert!(l.get(huge, t0).is_none());
        assert_eq!(
            l.pieces,
            l.entries.values().map(|e| e.pieces.len()).sum::<usize>()
        );
    }
}
