//! The at-rest v1 format's pure core: header, key derivation and commitment, segment AAD,
//! segment sealing and opening, and the length rules. No I/O.
//!
//! Normative text: `proto/at-rest-v1.md`. In short, a data blob is
//!
//! ```text
//! header (108 bytes) ‖ segment 0 ‖ segment 1 ‖ … ‖ segment n−1 ‖ final segment
//! segment = nonce (12, random per write) ‖ AES-256-GCM ciphertext ‖ tag (16)
//! ```
//!
//! Every segment but the last holds exactly `S` plaintext bytes; exactly one final segment
//! ends a finished object and holds `0..S` bytes, so the plaintext length follows from the
//! blob length alone and any other length is rejected. An unfinished object has no final
//! segment; its partial tail lives in the tail record (the `tail` module, built on this one).
//!
//! Keys: `PRK = HKDF-Extract(salt, DEK)`; the segment key, the tail key and the 32-byte
//! key commitment are `HKDF-Expand(PRK, label ‖ header[0..76])`, so every header field is
//! bound into every key. The commitment is compared in constant time before anything is
//! decrypted, which also makes the scheme key-committing (GCM alone is not).
//!
//! Nonces: production sealing goes through aws-lc's `RandomizedNonceKey`, which draws each
//! nonce from aws-lc's DRBG inside the FIPS boundary; no production code path can choose a
//! nonce. Golden vectors use a `#[cfg(test)]`-only sealer with fixed nonces.
//!
//! Not here: blob I/O, recovery, the tail record.
//!
//! Size: past ~400 lines because it is the whole v1 format core (header, key derivation,
//! AAD, sealing, length rules) in one place, mirroring `proto/at-rest-v1.md` section by
//! section; the golden vectors live in `vectors`.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, RandomizedNonceKey, UnboundKey};
use aws_lc_rs::hkdf;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::ids::OpaqueId;
use crate::keys::{DEK_ID_LEN, Dek, KEY_LEN};

/// Bytes of the header at offset 0 of every data blob.
pub const HEADER_LEN: usize = 108;
/// Bytes of the header that the keys and the commitment are derived over.
pub const HEADER_BOUND_LEN: usize = 76;
/// The header's magic.
pub const MAGIC: &[u8; 4] = b"SPAR";
/// Format version in the header.
pub const FORMAT_VERSION: u8 = 1;
/// Algorithm 1: AES-256-GCM, HKDF-SHA-256 key derivation, random 96-bit nonces.
pub const ALGORITHM_AES256GCM_HKDF_SHA256: u8 = 1;
/// GCM nonce length.
pub const NONCE_LEN: usize = 12;
/// GCM tag length.
pub const TAG_LEN: usize = 16;
/// Ciphertext bytes added to each segment: its nonce and tag.
pub const SEGMENT_OVERHEAD: usize = NONCE_LEN + TAG_LEN;
/// Length of a segment AAD.
pub const SEGMENT_AAD_LEN: usize = 25;

/// HKDF labels (each followed by `header[0..76]` as the info).
pub const LABEL_COMMITMENT: &[u8] = b"sallyport/at-rest/v1/commitment";
/// See [`LABEL_COMMITMENT`].
pub const LABEL_SEGMENT_KEY: &[u8] = b"sallyport/at-rest/v1/segment-key";
/// See [`LABEL_COMMITMENT`].
pub const LABEL_TAIL_KEY: &[u8] = b"sallyport/at-rest/v1/tail-key";

/// A plaintext segment size: a power of two from 16 bytes to 16 MiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SegmentSize(u32);

impl SegmentSize {
    /// Smallest size the format allows.
    pub const MIN: u32 = 16;
    /// Largest size the format allows.
    pub const MAX: u32 = 16 * 1024 * 1024;

    /// Validates a size.
    pub fn new(bytes: u32) -> Result<Self, FormatError> {
        if bytes.is_power_of_two() && (Self::MIN..=Self::MAX).contains(&bytes) {
            Ok(Self(bytes))
        } else {
            Err(FormatError::SegmentSize(bytes))
        }
    }

    /// Plaintext bytes per full segment.
    pub fn get(self) -> u32 {
        self.0
    }

    /// Plaintext bytes per full segment, as `usize`.
    pub fn bytes(self) -> usize {
        self.0 as usize
    }

    /// Stored bytes per full segment.
    pub fn stride(self) -> u64 {
        u64::from(self.0) + SEGMENT_OVERHEAD as u64
    }
}

/// A format violation: the bytes are not a valid v1 object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// A segment size outside the format's range or not a power of two.
    #[error("segment size {0} is not a power of two from 16 to 16777216")]
    SegmentSize(u32),
    /// The header is shorter than 108 bytes.
    #[error("the header is truncated")]
    HeaderTruncated,
    /// Not an at-rest object (wrong magic).
    #[error("not a sallyport at-rest object")]
    BadMagic,
    /// A format version this code does not read.
    #[error("unsupported at-rest format version {0}")]
    UnsupportedVersion(u8),
    /// An algorithm id this code does not know.
    #[error("unsupported at-rest algorithm {0}")]
    UnsupportedAlgorithm(u8),
    /// Reserved header bytes are not zero.
    #[error("reserved header bytes are not zero")]
    Reserved,
    /// The header names a different object than the one opened.
    #[error("the header belongs to another object")]
    WrongObject,
    /// The header's key reference does not match the object's wrapped DEK.
    #[error("the header's key reference does not match the object's data key")]
    WrongKeyReference,
    /// The key commitment does not match the DEK and header.
    #[error("key commitment mismatch: wrong data key or modified header")]
    Commitment,
    /// A blob length the length rule does not allow.
    #[error("ciphertext length {0} is not valid for this object")]
    InvalidLength(u64),
    /// A segment failed authentication.
    #[error("segment {index} failed authentication")]
    Segment {
        /// Its index.
        index: u64,
    },
    /// The object would exceed the format's segment count limit.
    #[error("the object is too large for the at-rest format")]
    TooLarge,
    /// The crypto library failed where it cannot with valid input.
    #[error("cryptographic operation failed: {0}")]
    Crypto(&'static str),
}

/// Segment count limit: random 96-bit nonces stay far below the 2^-32 collision bound
/// (NIST SP 800-38D §8.3) with at most 2^32 sealing operations per key, retries included;
/// 2^31 segments leaves room for them.
pub const MAX_SEGMENTS: u64 = 1 << 31;

/// The 108-byte header.
#[derive(Clone, PartialEq, Eq)]
pub struct Header {
    /// Plaintext bytes per full segment.
    pub segment_size: SegmentSize,
    /// The object this blob belongs to.
    pub object: OpaqueId,
    /// The DEK id (key reference); matches the wrapped-DEK record.
    pub dek_id: [u8; DEK_ID_LEN],
    /// Random salt for HKDF-Extract.
    pub salt: [u8; 32],
    /// HKDF-derived key commitment.
    pub commitment: [u8; 32],
}

impl std::fmt::Debug for Header {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Header")
            .field("segment_size", &self.segment_size)
            .field("object", &self.object)
            .finish_non_exhaustive()
    }
}

impl Header {
    /// A new header for `object` with a fresh random salt, and its keys.
    pub fn create(
        object: OpaqueId,
        dek_id: [u8; DEK_ID_LEN],
        segment_size: SegmentSize,
        dek: &Dek,
    ) -> Result<(Self, ObjectKeys), FormatError> {
        let mut salt = [0u8; 32];
        aws_lc_rs::rand::fill(&mut salt).map_err(|_| FormatError::Crypto("random salt"))?;
        Self::with_salt(object, dek_id, segment_size, salt, dek)
    }

    /// A header with a given salt (creation and golden vectors).
    pub(crate) fn with_salt(
        object: OpaqueId,
        dek_id: [u8; DEK_ID_LEN],
        segment_size: SegmentSize,
        salt: [u8; 32],
        dek: &Dek,
    ) -> Result<(Self, ObjectKeys), FormatError> {
        let mut header = Self {
            segment_size,
            object,
            dek_id,
            salt,
            commitment: [0; 32],
        };
        let derived = derive(dek, &header)?;
        header.commitment = derived.commitment;
        let keys = ObjectKeys::new(&header, &derived)?;
        Ok((header, keys))
    }

    /// The header's bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[..HEADER_BOUND_LEN].copy_from_slice(&self.bound_bytes());
        out[76..108].copy_from_slice(&self.commitment);
        out
    }

    /// `header[0..76]`: every field but the commitment.
    fn bound_bytes(&self) -> [u8; HEADER_BOUND_LEN] {
        let mut out = [0u8; HEADER_BOUND_LEN];
        out[0..4].copy_from_slice(MAGIC);
        out[4] = FORMAT_VERSION;
        out[5] = ALGORITHM_AES256GCM_HKDF_SHA256;
        // 6..8 reserved, zero
        out[8..12].copy_from_slice(&self.segment_size.get().to_be_bytes());
        out[12..28].copy_from_slice(self.object.as_bytes());
        out[28..44].copy_from_slice(&self.dek_id);
        out[44..76].copy_from_slice(&self.salt);
        out
    }

    /// Parses a header (the first 108 bytes of `bytes`); checks structure only. The
    /// commitment is checked by [`Header::unlock`].
    pub fn decode(bytes: &[u8]) -> Result<Self, FormatError> {
        let b = bytes
            .get(..HEADER_LEN)
            .ok_or(FormatError::HeaderTruncated)?;
        if &b[0..4] != MAGIC {
            return Err(FormatError::BadMagic);
        }
        if b[4] != FORMAT_VERSION {
            return Err(FormatError::UnsupportedVersion(b[4]));
        }
        if b[5] != ALGORITHM_AES256GCM_HKDF_SHA256 {
            return Err(FormatError::UnsupportedAlgorithm(b[5]));
        }
        if b[6..8] != [0, 0] {
            return Err(FormatError::Reserved);
        }
        let segment_size = SegmentSize::new(u32::from_be_bytes(array(&b[8..12])))?;
        Ok(Self {
            segment_size,
            object: OpaqueId::from_bytes(array(&b[12..28])),
            dek_id: array(&b[28..44]),
            salt: array(&b[44..76]),
            commitment: array(&b[76..108]),
        })
    }

    /// Checks that the header belongs to `object` and `dek_id`, derives the keys and
    /// checks the key commitment in constant time. Nothing is decrypted before this.
    pub fn unlock(
        &self,
        object: OpaqueId,
        dek_id: &[u8; DEK_ID_LEN],
        dek: &Dek,
    ) -> Result<ObjectKeys, FormatError> {
        if self.object != object {
            return Err(FormatError::WrongObject);
        }
        if !bool::from(self.dek_id.ct_eq(dek_id)) {
            return Err(FormatError::WrongKeyReference);
        }
        let derived = derive(dek, self)?;
        if !bool::from(derived.commitment.ct_eq(&self.commitment)) {
            return Err(FormatError::Commitment);
        }
        ObjectKeys::new(self, &derived)
    }
}

struct Derived {
    commitment: [u8; 32],
    segment_key: Zeroizing<[u8; KEY_LEN]>,
    tail_key: Zeroizing<[u8; KEY_LEN]>,
}

struct OkmLen(usize);

impl hkdf::KeyType for OkmLen {
    fn len(&self) -> usize {
        self.0
    }
}

fn derive(dek: &Dek, header: &Header) -> Result<Derived, FormatError> {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &header.salt).extract(dek.expose());
    let bound = header.bound_bytes();
    let expand = |label: &[u8], out: &mut [u8]| {
        prk.expand(&[label, &bound], OkmLen(out.len()))
            .and_then(|okm| okm.fill(out))
            .map_err(|_| FormatError::Crypto("HKDF-Expand"))
    };
    let mut derived = Derived {
        commitment: [0; 32],
        segment_key: Zeroizing::new([0; KEY_LEN]),
        tail_key: Zeroizing::new([0; KEY_LEN]),
    };
    expand(LABEL_COMMITMENT, &mut derived.commitment)?;
    expand(LABEL_SEGMENT_KEY, derived.segment_key.as_mut())?;
    expand(LABEL_TAIL_KEY, derived.tail_key.as_mut())?;
    Ok(derived)
}

/// The segment AAD: `object id (16) ‖ segment index (u64 BE) ‖ final flag (1 or 0)`.
pub fn segment_aad(object: &OpaqueId, index: u64, is_final: bool) -> [u8; SEGMENT_AAD_LEN] {
    let mut aad = [0u8; SEGMENT_AAD_LEN];
    aad[..16].copy_from_slice(object.as_bytes());
    aad[16..24].copy_from_slice(&index.to_be_bytes());
    aad[24] = u8::from(is_final);
    aad
}

/// Seals with a random nonce drawn inside aws-lc; in tests, optionally with a fixed
/// nonce sequence (golden vectors). Production code cannot construct the fixed variant.
pub(crate) enum Sealer {
    Random(RandomizedNonceKey),
    #[cfg(test)]
    Fixed {
        key: LessSafeKey,
        nonces: std::collections::VecDeque<[u8; NONCE_LEN]>,
    },
}

impl Sealer {
    fn new(key: &[u8; KEY_LEN]) -> Result<Self, FormatError> {
        RandomizedNonceKey::new(&AES_256_GCM, key)
            .map(Sealer::Random)
            .map_err(|_| FormatError::Crypto("AES-256-GCM key setup"))
    }

    /// Encrypts `in_out` in place; returns the nonce used and the tag.
    pub(crate) fn seal(
        &mut self,
        aad: &[u8],
        in_out: &mut [u8],
    ) -> Result<([u8; NONCE_LEN], [u8; TAG_LEN]), FormatError> {
        let mut tag_out = [0u8; TAG_LEN];
        match self {
            Sealer::Random(key) => {
                let (nonce, tag) = key
                    .seal_in_place_separate_tag(Aad::from(aad), in_out)
                    .map_err(|_| FormatError::Crypto("AES-256-GCM seal"))?;
                tag_out.copy_from_slice(tag.as_ref());
                Ok((*nonce.as_ref(), tag_out))
            }
            #[cfg(test)]
            Sealer::Fixed { key, nonces } => {
                let nonce = nonces.pop_front().expect("test nonce sequence exhausted");
                let tag = key
                    .seal_in_place_separate_tag(
                        Nonce::assume_unique_for_key(nonce),
                        Aad::from(aad),
                        in_out,
                    )
                    .map_err(|_| FormatError::Crypto("AES-256-GCM seal"))?;
                tag_out.copy_from_slice(tag.as_ref());
                Ok((nonce, tag_out))
            }
        }
    }
}

/// One object's derived keys: segment and tail sealing/opening. Built only by
/// [`Header::create`] or [`Header::unlock`]; the key bytes are zeroised after setup.
pub struct ObjectKeys {
    pub(crate) object: OpaqueId,
    pub(crate) segment_size: SegmentSize,
    pub(crate) segment_seal: Sealer,
    pub(crate) segment_open: LessSafeKey,
    pub(crate) tail_seal: Sealer,
    pub(crate) tail_open: LessSafeKey,
}

impl std::fmt::Debug for ObjectKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectKeys")
            .field("object", &self.object)
            .finish_non_exhaustive()
    }
}

impl ObjectKeys {
    fn new(header: &Header, derived: &Derived) -> Result<Self, FormatError> {
        let open = |key: &[u8; KEY_LEN]| {
            UnboundKey::new(&AES_256_GCM, key)
                .map(LessSafeKey::new)
                .map_err(|_| FormatError::Crypto("AES-256-GCM key setup"))
        };
        Ok(Self {
            object: header.object,
            segment_size: header.segment_size,
            segment_seal: Sealer::new(&derived.segment_key)?,
            segment_open: open(&derived.segment_key)?,
            tail_seal: Sealer::new(&derived.tail_key)?,
            tail_open: open(&derived.tail_key)?,
        })
    }

    /// Replaces both sealers with fixed-nonce ones (golden vectors only).
    #[cfg(test)]
    pub(crate) fn fix_nonces(
        &mut self,
        segment_key: &[u8; KEY_LEN],
        tail_key: &[u8; KEY_LEN],
        segment_nonces: Vec<[u8; NONCE_LEN]>,
        tail_nonces: Vec<[u8; NONCE_LEN]>,
    ) {
        let key = |k: &[u8; KEY_LEN]| LessSafeKey::new(UnboundKey::new(&AES_256_GCM, k).unwrap());
        self.segment_seal = Sealer::Fixed {
            key: key(segment_key),
            nonces: segment_nonces.into(),
        };
        self.tail_seal = Sealer::Fixed {
            key: key(tail_key),
            nonces: tail_nonces.into(),
        };
    }

    /// Seals one segment: `out` (exactly `plaintext.len() + 28` bytes) receives
    /// `nonce ‖ ciphertext ‖ tag`. Returns the nonce.
    pub fn seal_segment(
        &mut self,
        index: u64,
        is_final: bool,
        plaintext: &[u8],
        out: &mut [u8],
    ) -> Result<[u8; NONCE_LEN], FormatError> {
        let n = plaintext.len();
        debug_assert_eq!(out.len(), n + SEGMENT_OVERHEAD);
        if index >= MAX_SEGMENTS {
            return Err(FormatError::TooLarge);
        }
        let aad = segment_aad(&self.object, index, is_final);
        let body = &mut out[NONCE_LEN..NONCE_LEN + n];
        body.copy_from_slice(plaintext);
        // Sealed in place: a seal that fails must not leave the plaintext in `out` (the
        // caller's batch buffer holds only ciphertext between calls, so it is never
        // zeroised as a whole).
        let (nonce, tag) = match self.segment_seal.seal(&aad, body) {
            Ok(sealed) => sealed,
            Err(e) => {
                zeroize::Zeroize::zeroize(body);
                return Err(e);
            }
        };
        out[..NONCE_LEN].copy_from_slice(&nonce);
        out[NONCE_LEN + n..].copy_from_slice(&tag);
        Ok(nonce)
    }

    /// Opens one stored segment that sits at `buf[src..src + stored_len]` and writes its
    /// plaintext to `buf[dest..]` (`dest <= src`), so consecutive segments can be
    /// decrypted and packed together in one buffer. Returns the plaintext length.
    pub fn open_segment_within(
        &self,
        index: u64,
        is_final: bool,
        buf: &mut [u8],
        dest: usize,
        src: usize,
        stored_len: usize,
    ) -> Result<usize, FormatError> {
        if stored_len < SEGMENT_OVERHEAD || dest > src || src + stored_len > buf.len() {
            return Err(FormatError::Segment { index });
        }
        let nonce = array::<NONCE_LEN>(&buf[src..src + NONCE_LEN]);
        let aad = segment_aad(&self.object, index, is_final);
        let region = &mut buf[dest..src + stored_len];
        let plain = self
            .segment_open
            .open_within(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&aad[..]),
                region,
                (src - dest + NONCE_LEN)..,
            )
            .map_err(|_| FormatError::Segment { index })?;
        Ok(plain.len())
    }
}

/// The shape of a finished data blob, derived from its length: `full` full segments and a
/// final segment of `final_len` plaintext bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FinishedLayout {
    /// Number of full segments before the final one.
    pub full: u64,
    /// Plaintext bytes in the final segment (`0..S`).
    pub final_len: u64,
    /// Total plaintext bytes.
    pub plaintext_len: u64,
}

impl FinishedLayout {
    /// Applies the length rule to a finished blob of `blob_len` bytes.
    pub fn from_blob_len(blob_len: u64, s: SegmentSize) -> Result<Self, FormatError> {
        let body = blob_len
            .checked_sub(HEADER_LEN as u64)
            .ok_or(FormatError::InvalidLength(blob_len))?;
        let full = body / s.stride();
        let rest = body % s.stride();
        if rest < SEGMENT_OVERHEAD as u64 || full >= MAX_SEGMENTS {
            return Err(FormatError::InvalidLength(blob_len));
        }
        let final_len = rest - SEGMENT_OVERHEAD as u64;
        Ok(Self {
            full,
            final_len,
            plaintext_len: full * u64::from(s.get()) + final_len,
        })
    }

    /// The blob length of a finished object with `plaintext_len` bytes.
    pub fn blob_len(plaintext_len: u64, s: SegmentSize) -> u64 {
        let full = plaintext_len / u64::from(s.get());
        let final_len = plaintext_len % u64::from(s.get());
        segment_offset(full, s) + final_len + SEGMENT_OVERHEAD as u64
    }
}

/// Where segment `index` starts in the data blob.
pub fn segment_offset(index: u64, s: SegmentSize) -> u64 {
    HEADER_LEN as u64 + index * s.stride()
}

fn array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(bytes);
    out
}

#[cfg(test)]
pub(crate) fn derived_keys_for_vectors(
    dek: &Dek,
    header: &Header,
) -> (Zeroizing<[u8; KEY_LEN]>, Zeroizing<[u8; KEY_LEN]>) {
    let d = derive(dek, header).unwrap();
    (d.segment_key, d.tail_key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn segment_sizes() {
        assert!(SegmentSize::new(16).is_ok());
        assert!(SegmentSize::new(65536).is_ok());
        assert!(SegmentSize::new(1 << 24).is_ok());
        for bad in [
            0,
            1,
            8,
            15,
            17,
            1000,
            65535,
            (1 << 24) + 1,
            1 << 25,
            u32::MAX,
        ] {
            assert_eq!(SegmentSize::new(bad), Err(FormatError::SegmentSize(bad)));
        }
    }

    #[test]
    fn header_round_trip_and_unlock() {
        let dek = Dek::generate().unwrap();
        let object = OpaqueId::random();
        let s = SegmentSize::new(64).unwrap();
        let (header, _) = Header::create(object, [1; 16], s, &dek).unwrap();
        let bytes = header.encode();
        let parsed = Header::decode(&bytes).unwrap();
        assert_eq!(parsed, header);
        assert!(parsed.unlock(object, &[1; 16], &dek).is_ok());
        assert_eq!(
            parsed
                .unlock(OpaqueId::random(), &[1; 16], &dek)
                .unwrap_err(),
            FormatError::WrongObject
        );
        assert_eq!(
            parsed.unlock(object, &[2; 16], &dek).unwrap_err(),
            FormatError::WrongKeyReference
        );
        assert_eq!(
            parsed
                .unlock(object, &[1; 16], &Dek::generate().unwrap())
                .unwrap_err(),
            FormatError::Commitment
        );
        for n in 0..HEADER_LEN {
            assert_eq!(
                Header::decode(&bytes[..n]),
                Err(FormatError::HeaderTruncated)
            );
        }
    }

    #[test]
    fn every_header_bit_flip_is_rejected() {
        let dek = Dek::generate().unwrap();
        let object = OpaqueId::random();
        let (header, _) =
            Header::create(object, [1; 16], SegmentSize::new(64).unwrap(), &dek).unwrap();
        let bytes = header.encode();
        for bit in 0..HEADER_LEN * 8 {
            let mut bad = bytes;
            bad[bit / 8] ^= 1 << (bit % 8);
            let result = Header::decode(&bad).and_then(|h| h.unlock(object, &[1; 16], &dek));
            assert!(result.is_err(), "bit {bit} accepted");
        }
    }

    #[test]
    fn segment_seal_open_and_binding() {
        let dek = Dek::generate().unwrap();
        let object = OpaqueId::random();
        let (_, mut keys) =
            Header::create(object, [1; 16], SegmentSize::new(16).unwrap(), &dek).unwrap();
        let mut buf = vec![0u8; 16 + SEGMENT_OVERHEAD];
        keys.seal_segment(3, false, b"0123456789abcdef", &mut buf)
            .unwrap();
        let sealed = buf.clone();
        let n = keys
            .open_segment_within(3, false, &mut buf, 0, 0, sealed.len())
            .unwrap();
        assert_eq!(&buf[..n], b"0123456789abcdef");
        for (index, is_final) in [(2, false), (4, false), (3, true)] {
            let mut b = sealed.clone();
            assert_eq!(
                keys.open_segment_within(index, is_final, &mut b, 0, 0, sealed.len()),
                Err(FormatError::Segment { index })
            );
        }
    }

    proptest! {
        #[test]
        fn length_rule_is_a_bijection(len in 0u64..100_000, shift in 4u32..10) {
            let s = SegmentSize::new(1 << shift).unwrap();
            let blob = FinishedLayout::blob_len(len, s);
            let layout = FinishedLayout::from_blob_len(blob, s).unwrap();
            prop_assert_eq!(layout.plaintext_len, len);
            // Lengths that are not of this form (an unfinished object, a torn segment) fail.
            let unfinished = segment_offset(len / u64::from(s.get()), s);
            prop_assert!(FinishedLayout::from_blob_len(unfinished, s).is_err());
        }
    }
}
