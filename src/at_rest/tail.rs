//! The encrypted tail record: the commit point of an object being appended to.
//!
//! It says how much of the data blob is acknowledged (generation, full-segment count,
//! plaintext length, the nonce of the last committed segment as a fingerprint), carries
//! the partial last segment that is not yet in the blob, and the whole-object SHA-256
//! midstate (sha2 0.11 `SerializableState`, which holds plaintext, hence encrypted). It is
//! sealed under the object's tail key with a fresh random nonce at every write and
//! replaced atomically (`BlobStore::replace`).
//!
//! Blob layout: `"SPAT" ‖ version (1) ‖ nonce (12) ‖ ciphertext ‖ tag (16)`, AAD =
//! `"sallyport/at-rest/v1/tail" ‖ object id`. Plaintext layout, integers big-endian:
//!
//! ```text
//! state (1: open, 2: finished) | generation (u64) | full segments (u64)
//! | plaintext length (u64) | last segment nonce (12) | SHA-256 midstate (104)
//! | partial length (u32) | partial bytes
//! ```
//!
//! Version 2 (written only for a record that carries a *commit note*) appends
//! `| note length (u32) | note bytes`: what the commit means to the layer above (the upload
//! service records the chunk it commits, so a crash between this commit point and its own
//! record can be finished from here; `proto/at-rest-v1.md` §5.4). A record without a note
//! is written as version 1, byte for byte as before.
//!
//! Not here: when it is written (the `writer` module decides).

use aws_lc_rs::aead::{Aad, Nonce};
use sha2::Sha256;
use sha2::digest::common::hazmat::SerializableState;
use zeroize::Zeroizing;

use super::format::{FormatError, NONCE_LEN, ObjectKeys, SegmentSize, TAG_LEN};

/// The tail blob's magic.
pub const TAIL_MAGIC: &[u8; 4] = b"SPAT";
/// The tail record version of a record without a note.
pub const TAIL_VERSION: u8 = 1;
/// The tail record version of a record with a commit note.
pub const TAIL_VERSION_NOTED: u8 = 2;
/// The largest commit note (the upload service's is a few KiB at most).
pub const MAX_NOTE_LEN: usize = 64 * 1024;
/// Domain label at the start of the tail AAD.
pub const TAIL_AAD_LABEL: &[u8] = b"sallyport/at-rest/v1/tail";
/// Size of sha2 0.11's serialised SHA-256 state.
pub const MIDSTATE_LEN: usize = 104;
const FIXED_LEN: usize = 1 + 8 + 8 + 8 + NONCE_LEN + MIDSTATE_LEN + 4;
const PREFIX_LEN: usize = 4 + 1 + NONCE_LEN;

/// The largest sealed tail record of an object with segments of `s` bytes: a partial of
/// less than one segment, the fixed fields, the tag and a note at its longest (a bound
/// checked before a record is read whole).
pub fn max_sealed_len(s: SegmentSize) -> u64 {
    u64::from(s.get()) + 512 + 4 + MAX_NOTE_LEN as u64
}

/// Whether the object is still being appended to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TailState {
    /// Appending; `partial` holds the bytes after the last full segment.
    Open,
    /// Finished: the final segment is in the blob; `partial` is empty.
    Finished,
}

/// A decoded tail record.
pub struct TailRecord {
    /// Open or finished.
    pub state: TailState,
    /// Grows by one at every commit; 1 at creation.
    pub generation: u64,
    /// Full segments committed in the data blob.
    pub full_segments: u64,
    /// Plaintext bytes committed (full segments, then the partial or final segment).
    pub plaintext_len: u64,
    /// Nonce of the last segment in the blob (zeros when there is none).
    pub last_nonce: [u8; NONCE_LEN],
    /// SHA-256 over all committed plaintext, serialised.
    pub midstate: Zeroizing<[u8; MIDSTATE_LEN]>,
    /// The partial segment's plaintext (open only).
    pub partial: Zeroizing<Vec<u8>>,
    /// The commit note (empty: none), sealed with the record; see the module docs.
    pub note: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for TailRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TailRecord")
            .field("state", &self.state)
            .field("generation", &self.generation)
            .field("full_segments", &self.full_segments)
            .field("plaintext_len", &self.plaintext_len)
            .finish_non_exhaustive()
    }
}

/// Why a tail record was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TailError {
    /// Not a tail record, or an unknown version.
    #[error("the tail record is not a v1 tail record")]
    Format,
    /// Authentication failed: tampered, or another object's tail.
    #[error("the tail record failed authentication")]
    Authentication,
    /// It authenticates but its fields contradict each other.
    #[error("the tail record is inconsistent: {0}")]
    Inconsistent(&'static str),
    /// Sealing failed.
    #[error(transparent)]
    Seal(#[from] FormatError),
}

impl TailRecord {
    /// Serialises the hasher's midstate.
    pub fn midstate_of(hasher: &Sha256) -> Zeroizing<[u8; MIDSTATE_LEN]> {
        let state = hasher.serialize();
        let mut out = Zeroizing::new([0u8; MIDSTATE_LEN]);
        out.copy_from_slice(state.as_slice());
        out
    }

    /// Restores the hasher from the midstate.
    pub fn hasher(&self) -> Result<Sha256, TailError> {
        let mut state = sha2::digest::array::Array::default();
        state.as_mut_slice().copy_from_slice(self.midstate.as_ref());
        Sha256::deserialize(&state).map_err(|_| TailError::Inconsistent("SHA-256 midstate"))
    }

    /// Encrypts the record for `keys`' object.
    pub fn seal(&self, keys: &mut ObjectKeys) -> Result<Vec<u8>, TailError> {
        if self.note.len() > MAX_NOTE_LEN {
            return Err(TailError::Inconsistent("commit note too long"));
        }
        let noted = !self.note.is_empty();
        let body_len = FIXED_LEN + self.partial.len() + if noted { 4 + self.note.len() } else { 0 };
        let mut out = Vec::with_capacity(PREFIX_LEN + body_len + TAG_LEN);
        out.extend_from_slice(TAIL_MAGIC);
        out.push(if noted {
            TAIL_VERSION_NOTED
        } else {
            TAIL_VERSION
        });
        out.extend_from_slice(&[0u8; NONCE_LEN]);
        out.push(match self.state {
            TailState::Open => 1,
            TailState::Finished => 2,
        });
        out.extend_from_slice(&self.generation.to_be_bytes());
        out.extend_from_slice(&self.full_segments.to_be_bytes());
        out.extend_from_slice(&self.plaintext_len.to_be_bytes());
        out.extend_from_slice(&self.last_nonce);
        out.extend_from_slice(self.midstate.as_ref());
        // The partial is shorter than a segment (at most 16 MiB), so it fits a u32.
        out.extend_from_slice(&(self.partial.len() as u32).to_be_bytes());
        out.extend_from_slice(&self.partial);
        if noted {
            // At most MAX_NOTE_LEN (checked above): fits a u32.
            out.extend_from_slice(&(self.note.len() as u32).to_be_bytes());
            out.extend_from_slice(&self.note);
        }
        let aad = tail_aad(keys);
        let (nonce, tag) = keys.tail_seal.seal(&aad, &mut out[PREFIX_LEN..])?;
        out[5..PREFIX_LEN].copy_from_slice(&nonce);
        out.extend_from_slice(&tag);
        Ok(out)
    }

    /// Decrypts and checks a tail record of `keys`' object.
    pub fn open(keys: &ObjectKeys, bytes: &[u8]) -> Result<Self, TailError> {
        if bytes.len() < PREFIX_LEN + FIXED_LEN + TAG_LEN
            || &bytes[..4] != TAIL_MAGIC
            || !matches!(bytes[4], TAIL_VERSION | TAIL_VERSION_NOTED)
        {
            return Err(TailError::Format);
        }
        let noted = bytes[4] == TAIL_VERSION_NOTED;
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&bytes[5..PREFIX_LEN]);
        let mut body = Zeroizing::new(bytes[PREFIX_LEN..].to_vec());
        let aad = tail_aad(keys);
        let plain = keys
            .tail_open
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&aad[..]),
                &mut body,
            )
            .map_err(|_| TailError::Authentication)?;
        Self::parse(plain, keys.segment_size, noted)
    }

    /// Parses a record's plaintext as [`TailRecord::open`] does once it authenticates, so
    /// the fuzz targets (`fuzz/`) reach the field checks without forging a tag. Production
    /// code opens sealed records only. `noted`: parse as a version-2 (noted) record.
    #[doc(hidden)]
    pub fn parse_plaintext(p: &[u8], s: SegmentSize, noted: bool) -> Result<Self, TailError> {
        if p.len() < FIXED_LEN {
            return Err(TailError::Format);
        }
        Self::parse(p, s, noted)
    }

    fn parse(p: &[u8], s: SegmentSize, noted: bool) -> Result<Self, TailError> {
        let u64_at = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&p[at..at + 8]);
            u64::from_be_bytes(b)
        };
        let state = match p[0] {
            1 => TailState::Open,
            2 => TailState::Finished,
            _ => return Err(TailError::Inconsistent("state")),
        };
        let generation = u64_at(1);
        let full_segments = u64_at(9);
        let plaintext_len = u64_at(17);
        let mut last_nonce = [0u8; NONCE_LEN];
        last_nonce.copy_from_slice(&p[25..37]);
        let mut midstate = Zeroizing::new([0u8; MIDSTATE_LEN]);
        midstate.copy_from_slice(&p[37..37 + MIDSTATE_LEN]);
        let mut len4 = [0u8; 4];
        len4.copy_from_slice(&p[141..145]);
        let partial_len = u32::from_be_bytes(len4) as usize;
        let partial_end = FIXED_LEN
            .checked_add(partial_len)
            .filter(|&end| end <= p.len())
            .ok_or(TailError::Inconsistent("partial length"))?;
        let note = if noted {
            let rest = &p[partial_end..];
            if rest.len() < 4 {
                return Err(TailError::Inconsistent("note length"));
            }
            let note_len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            if note_len == 0 || note_len > MAX_NOTE_LEN || rest.len() - 4 != note_len {
                return Err(TailError::Inconsistent("note length"));
            }
            &rest[4..]
        } else {
            if p.len() != partial_end {
                return Err(TailError::Inconsistent("partial length"));
            }
            &[][..]
        };
        let seg = u64::from(s.get());
        let in_segments = full_segments
            .checked_mul(seg)
            .ok_or(TailError::Inconsistent("segment count"))?;
        let rest = plaintext_len
            .checked_sub(in_segments)
            .ok_or(TailError::Inconsistent("plaintext length"))?;
        if generation == 0 || rest >= seg {
            return Err(TailError::Inconsistent("generation or plaintext length"));
        }
        match state {
            TailState::Open if rest != partial_len as u64 => {
                return Err(TailError::Inconsistent("partial length"));
            }
            TailState::Finished if partial_len != 0 => {
                return Err(TailError::Inconsistent("finished with a partial"));
            }
            _ => {}
        }
        // sha2 0.11 layout: 8 state words, u64 LE block count, then the buffered bytes'
        // count and bytes. The hashed byte count must equal the plaintext length.
        let mut blocks = [0u8; 8];
        blocks.copy_from_slice(&midstate[32..40]);
        let hashed = u64::from_le_bytes(blocks)
            .checked_mul(64)
            .and_then(|b| b.checked_add(u64::from(midstate[40])));
        if hashed != Some(plaintext_len) {
            return Err(TailError::Inconsistent("hash state length"));
        }
        let record = Self {
            state,
            generation,
            full_segments,
            plaintext_len,
            last_nonce,
            midstate,
            partial: Zeroizing::new(p[FIXED_LEN..partial_end].to_vec()),
            note: Zeroizing::new(note.to_vec()),
        };
        record.hasher()?;
        Ok(record)
    }
}

fn tail_aad(keys: &ObjectKeys) -> Vec<u8> {
    let mut aad = Vec::with_capacity(TAIL_AAD_LABEL.len() + 16);
    aad.extend_from_slice(TAIL_AAD_LABEL);
    aad.extend_from_slice(keys.object.as_bytes());
    aad
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::at_rest::format::Header;
    use crate::ids::OpaqueId;
    use crate::keys::Dek;
    use sha2::Digest;

    fn keys() -> ObjectKeys {
        Header::create(
            OpaqueId::random(),
            [0; 16],
            SegmentSize::new(16).unwrap(),
            &Dek::generate().unwrap(),
        )
        .unwrap()
        .1
    }

    fn record(len: usize) -> TailRecord {
        let data: Vec<u8> = (0..len as u8).collect();
        let mut h = Sha256::new();
        h.update(&data);
        let full = (len / 16) as u64;
        TailRecord {
            state: TailState::Open,
            generation: 3,
            full_segments: full,
            plaintext_len: len as u64,
            last_nonce: [4; 12],
            midstate: TailRecord::midstate_of(&h),
            partial: Zeroizing::new(data[full as usize * 16..].to_vec()),
            note: Zeroizing::new(Vec::new()),
        }
    }

    /// An open record's version-1 plaintext, as `seal` lays it out.
    fn plaintext_v1(rec: &TailRecord) -> Vec<u8> {
        let mut p = vec![1u8];
        p.extend_from_slice(&rec.generation.to_be_bytes());
        p.extend_from_slice(&rec.full_segments.to_be_bytes());
        p.extend_from_slice(&rec.plaintext_len.to_be_bytes());
        p.extend_from_slice(&rec.last_nonce);
        p.extend_from_slice(rec.midstate.as_ref());
        p.extend_from_slice(&(rec.partial.len() as u32).to_be_bytes());
        p.extend_from_slice(&rec.partial);
        p
    }

    #[test]
    fn round_trip_and_midstate() {
        let mut k = keys();
        for len in [0, 1, 15, 16, 17, 100] {
            let rec = record(len);
            let bytes = rec.seal(&mut k).unwrap();
            let back = TailRecord::open(&k, &bytes).unwrap();
            assert_eq!(back.plaintext_len, len as u64);
            assert_eq!(&back.partial[..], &rec.partial[..]);
            let data: Vec<u8> = (0..len as u8).collect();
            assert_eq!(
                back.hasher().unwrap().finalize(),
                Sha256::digest(&data),
                "len {len}"
            );
        }
    }

    #[test]
    fn a_note_round_trips_as_version_2_and_no_note_is_version_1() {
        let mut k = keys();
        let plain = record(20).seal(&mut k).unwrap();
        assert_eq!(plain[4], TAIL_VERSION);
        let mut noted = record(20);
        noted.note = Zeroizing::new(b"what the commit means".to_vec());
        let bytes = noted.seal(&mut k).unwrap();
        assert_eq!(bytes[4], TAIL_VERSION_NOTED);
        assert_eq!(bytes.len(), plain.len() + 4 + 21);
        let back = TailRecord::open(&k, &bytes).unwrap();
        assert_eq!(&back.note[..], b"what the commit means");
        assert_eq!(&back.partial[..], &noted.partial[..]);
        assert!(TailRecord::open(&k, &plain).unwrap().note.is_empty());
        // The version byte is outside the AAD: swapping it is refused by the layout.
        for (bytes, version) in [(&bytes, TAIL_VERSION), (&plain, TAIL_VERSION_NOTED)] {
            let mut swapped = bytes.clone();
            swapped[4] = version;
            assert!(TailRecord::open(&k, &swapped).is_err());
        }
        noted.note = Zeroizing::new(vec![1; MAX_NOTE_LEN + 1]);
        assert!(
            noted.seal(&mut k).is_err(),
            "a note past the limit is refused"
        );
    }

    #[test]
    fn note_lengths_that_do_not_match_are_rejected() {
        let s = SegmentSize::new(16).unwrap();
        let rec = record(20);
        let p = plaintext_v1(&rec);
        assert!(TailRecord::parse(&p, s, false).is_ok());
        let with = |len: u32, note: &[u8]| {
            let mut q = p.clone();
            q.extend_from_slice(&len.to_be_bytes());
            q.extend_from_slice(note);
            q
        };
        assert_eq!(
            &TailRecord::parse(&with(3, b"abc"), s, true).unwrap().note[..],
            b"abc"
        );
        for bad in [
            with(4, b"abc"),
            with(2, b"abc"),
            with(0, b""),
            p.clone(),
            with(3, b"abc")[..p.len() + 2].to_vec(),
        ] {
            assert!(TailRecord::parse(&bad, s, true).is_err());
        }
        assert!(TailRecord::parse(&with(3, b"abc"), s, false).is_err());
    }

    #[test]
    fn tampering_and_other_objects_fail() {
        let mut k = keys();
        let bytes = record(20).seal(&mut k).unwrap();
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x01;
            assert!(TailRecord::open(&k, &bad).is_err(), "byte {i}");
        }
        for n in 0..bytes.len() {
            assert!(TailRecord::open(&k, &bytes[..n]).is_err());
        }
        assert_eq!(
            TailRecord::open(&keys(), &bytes).unwrap_err(),
            TailError::Authentication
        );
    }

    #[test]
    fn inconsistent_fields_are_rejected_even_when_authentic() {
        let mut k = keys();
        let mut rec = record(20);
        rec.plaintext_len = 21;
        let bytes = rec.seal(&mut k).unwrap();
        assert!(matches!(
            TailRecord::open(&k, &bytes),
            Err(TailError::Inconsistent(_))
        ));
        let mut rec = record(20);
        rec.generation = 0;
        let bytes = rec.seal(&mut k).unwrap();
        assert!(TailRecord::open(&k, &bytes).is_err());
    }

    #[test]
    fn parse_plaintext_is_the_check_open_runs() {
        let s = SegmentSize::new(16).unwrap();
        let rec = record(20);
        let p = plaintext_v1(&rec);
        let back = TailRecord::parse_plaintext(&p, s, false).unwrap();
        assert_eq!(back.plaintext_len, 20);
        assert_eq!(&back.partial[..], &rec.partial[..]);
        for n in 0..p.len() {
            assert!(
                TailRecord::parse_plaintext(&p[..n], s, false).is_err(),
                "prefix {n}"
            );
        }
    }
}
