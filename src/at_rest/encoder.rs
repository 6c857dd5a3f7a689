//! The appending encoder: the writer's hot path, pure (no I/O).
//!
//! Plaintext goes in; SHA-256 is updated over it once; every completed segment is sealed
//! straight into one reusable batch buffer (no allocation or syscall per segment); bytes
//! that do not fill a segment wait in `partial`. The writer drains the batch into one
//! `BlobStore::append` when it is full (default 4 MiB) or at commit.
//!
//! Memory: one batch buffer per encoder (the batch size plus one segment), allocated when
//! the writer is created; callers with many concurrent writers can lower it with
//! `AtRest::with_batch_bytes`.
//!
//! Not here: blob I/O, the tail record, recovery (the `writer` module, which drives this
//! encoder).

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::format::{FormatError, NONCE_LEN, ObjectKeys, SEGMENT_OVERHEAD};

/// Default batch size: sealed segments are appended to the blob in runs of about this
/// many bytes.
pub const DEFAULT_BATCH_BYTES: usize = 4 * 1024 * 1024;

/// Where an encoder resumes: the committed state of an object.
pub struct Resume {
    /// Full segments already in the blob.
    pub full_segments: u64,
    /// Plaintext bytes already accepted.
    pub plaintext_len: u64,
    /// SHA-256 over those bytes.
    pub hasher: Sha256,
    /// The partial segment's bytes (shorter than a segment).
    pub partial: Zeroizing<Vec<u8>>,
    /// Nonce of the last segment in the blob (zeros when none).
    pub last_nonce: [u8; NONCE_LEN],
}

impl Resume {
    /// The state of an empty object.
    pub fn empty() -> Self {
        Self {
            full_segments: 0,
            plaintext_len: 0,
            hasher: Sha256::new(),
            partial: Zeroizing::new(Vec::new()),
            last_nonce: [0; NONCE_LEN],
        }
    }
}

impl std::fmt::Debug for Resume {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resume")
            .field("full_segments", &self.full_segments)
            .field("plaintext_len", &self.plaintext_len)
            .finish_non_exhaustive()
    }
}

/// Hashes and seals appended plaintext into batches of stored segments.
pub struct SegmentEncoder {
    keys: ObjectKeys,
    seg: usize,
    full_segments: u64,
    plaintext_len: u64,
    hasher: Sha256,
    partial: Zeroizing<Vec<u8>>,
    last_nonce: [u8; NONCE_LEN],
    // Fixed-size buffer: `batch_cap` bytes of full segments plus room for a final one.
    // Plaintext is copied in and sealed in place; `seal_segment` wipes its slot when a
    // seal fails, so between calls the buffer holds ciphertext only and needs no
    // zeroising on drop (which cost a 4 MiB wipe per PATCH).
    batch: Vec<u8>,
    filled: usize,
    batch_cap: usize,
    finalized: bool,
}

impl std::fmt::Debug for SegmentEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentEncoder")
            .field("full_segments", &self.full_segments)
            .field("plaintext_len", &self.plaintext_len)
            .field("batched", &self.filled)
            .finish_non_exhaustive()
    }
}

impl SegmentEncoder {
    /// An encoder for `keys`' object, resuming at `resume`, appending in batches of about
    /// `batch_bytes` (at least one segment).
    pub fn new(keys: ObjectKeys, batch_bytes: usize, resume: Resume) -> Self {
        let seg = keys.segment_size.bytes();
        let stride = seg + SEGMENT_OVERHEAD;
        let batch_cap = (batch_bytes / stride).max(1) * stride;
        let mut partial = Zeroizing::new(Vec::with_capacity(seg));
        partial.extend_from_slice(&resume.partial);
        Self {
            keys,
            seg,
            full_segments: resume.full_segments,
            plaintext_len: resume.plaintext_len,
            hasher: resume.hasher,
            partial,
            last_nonce: resume.last_nonce,
            batch: vec![0u8; batch_cap + stride],
            filled: 0,
            batch_cap,
            finalized: false,
        }
    }

    /// Consumes plaintext until the batch is full; returns how many bytes it took. Call
    /// again after draining the batch when it took less than `data.len()`.
    pub fn push(&mut self, data: &[u8]) -> Result<usize, FormatError> {
        if self.finalized {
            return Err(FormatError::Crypto("append after the final segment"));
        }
        let stride = self.seg + SEGMENT_OVERHEAD;
        let mut taken = 0;
        while taken < data.len() && !self.batch_is_full() {
            let rest = &data[taken..];
            if !self.partial.is_empty() {
                let n = rest.len().min(self.seg - self.partial.len());
                self.hasher.update(&rest[..n]);
                self.partial.extend_from_slice(&rest[..n]);
                taken += n;
                if self.partial.len() == self.seg {
                    let out = &mut self.batch[self.filled..self.filled + stride];
                    self.last_nonce =
                        self.keys
                            .seal_segment(self.full_segments, false, &self.partial, out)?;
                    self.partial.clear();
                    self.filled += stride;
                    self.full_segments += 1;
                }
            } else if rest.len() >= self.seg {
                let plain = &rest[..self.seg];
                self.hasher.update(plain);
                let out = &mut self.batch[self.filled..self.filled + stride];
                self.last_nonce = self
                    .keys
                    .seal_segment(self.full_segments, false, plain, out)?;
                self.filled += stride;
                self.full_segments += 1;
                taken += self.seg;
            } else {
                self.hasher.update(rest);
                self.partial.extend_from_slice(rest);
                taken += rest.len();
            }
        }
        self.plaintext_len += taken as u64;
        Ok(taken)
    }

    /// Seals the partial bytes as the object's final segment into the batch (there is
    /// always room for it). No more data can be pushed afterwards.
    pub fn seal_final(&mut self) -> Result<(), FormatError> {
        if self.finalized {
            return Ok(());
        }
        let n = self.partial.len();
        let out = &mut self.batch[self.filled..self.filled + n + SEGMENT_OVERHEAD];
        self.last_nonce = self
            .keys
            .seal_segment(self.full_segments, true, &self.partial, out)?;
        self.filled += n + SEGMENT_OVERHEAD;
        self.partial.clear();
        self.finalized = true;
        Ok(())
    }

    /// Whether the batch has no room for another full segment.
    pub fn batch_is_full(&self) -> bool {
        self.filled >= self.batch_cap
    }

    /// The sealed bytes waiting to be appended.
    pub fn batch(&self) -> &[u8] {
        &self.batch[..self.filled]
    }

    /// Forgets the batch after it was appended.
    pub fn clear_batch(&mut self) {
        self.filled = 0;
    }

    /// Lends out the batch buffer and how many of its bytes are sealed segments, for a
    /// blob store that takes the buffer by value ([`crate::blob::BlobStore::append_owned`]:
    /// no copy). Nothing may be pushed until [`SegmentEncoder::restore_batch`].
    pub fn take_batch(&mut self) -> (Vec<u8>, usize) {
        (std::mem::take(&mut self.batch), self.filled)
    }

    /// Takes the lent buffer back, its batch appended (`None`: it was lost with a failed
    /// append, and a new one is allocated); the batch is empty again.
    pub fn restore_batch(&mut self, buf: Option<Vec<u8>>) {
        let size = self.batch_cap + self.seg + SEGMENT_OVERHEAD;
        self.batch = match buf {
            Some(b) if b.len() == size => b,
            _ => vec![0u8; size],
        };
        self.filled = 0;
    }

    /// Full segments sealed so far (in the blob or in the batch).
    pub fn full_segments(&self) -> u64 {
        self.full_segments
    }

    /// Plaintext bytes accepted so far.
    pub fn plaintext_len(&self) -> u64 {
        self.plaintext_len
    }

    /// The running hash.
    pub fn hasher(&self) -> &Sha256 {
        &self.hasher
    }

    /// The partial segment's bytes.
    pub fn partial(&self) -> &Zeroizing<Vec<u8>> {
        &self.partial
    }

    /// Nonce of the last sealed segment.
    pub fn last_nonce(&self) -> [u8; NONCE_LEN] {
        self.last_nonce
    }

    /// The object's keys (for the tail record).
    pub fn keys_mut(&mut self) -> &mut ObjectKeys {
        &mut self.keys
    }

    /// The object's keys.
    pub fn keys(&self) -> &ObjectKeys {
        &self.keys
    }

    /// Rewinds to a committed state, dropping everything after it (rollback).
    pub fn reset(&mut self, resume: Resume) {
        self.full_segments = resume.full_segments;
        self.plaintext_len = resume.plaintext_len;
        self.hasher = resume.hasher;
        self.partial.clear();
        self.partial.extend_from_slice(&resume.partial);
        self.last_nonce = resume.last_nonce;
        self.clear_batch();
        self.finalized = false;
    }
}
