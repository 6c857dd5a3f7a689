//! `Upload-Checksum` and the streaming chunk hasher.
//!
//! `Upload-Checksum = algorithm SP base64-digest`, with `algorithm` one of `sha1` (the
//! spec's MUST), `sha256`, `sha512`, `md5` — exactly these lowercase names — and the digest
//! canonical padded standard base64 of exactly the algorithm's digest length. An unknown
//! name is its own refusal ([`TusError::UnsupportedChecksumAlgorithm`], 400 by the spec);
//! everything else malformed is [`TusError::InvalidChecksum`].
//!
//! [`ChunkHasher`] hashes a PATCH body as it streams: always SHA-256 (the ledger's per-chunk
//! digest), plus the declared algorithm when it is not SHA-256 (SHA-256 is then computed
//! once and used for both). When the checksum will arrive as a trailer, the algorithm is
//! unknown until the body ends, so the hasher computes all four. [`ChunkHasher::finish`]
//! compares in constant time (`subtle`) and turns a difference into
//! [`TusError::ChecksumMismatch`] (460).
//!
//! Not here: the whole-file SHA-256 and its encrypted midstate (the upload engine's), and
//! `md5`/`sha1` for anything but verifying what a client declared.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

pub mod algorithm;

pub use crate::tus::error::ChecksumProblem;
use crate::tus::error::TusError;
pub use algorithm::ChecksumAlgorithm;

/// A parsed `Upload-Checksum`: an algorithm and a digest of exactly its length.
#[derive(Clone, PartialEq, Eq)]
pub struct Checksum {
    algorithm: ChecksumAlgorithm,
    digest: Vec<u8>,
}

impl Checksum {
    /// Parses an `Upload-Checksum` header (or trailer) value.
    pub fn parse(value: &[u8]) -> Result<Self, TusError> {
        let space = value
            .iter()
            .position(|&b| b == b' ')
            .ok_or(ChecksumProblem::Malformed)?;
        let (name, encoded) = (&value[..space], &value[space + 1..]);
        if name.is_empty() || !name.iter().all(|b| b.is_ascii_graphic()) {
            return Err(ChecksumProblem::Malformed.into());
        }
        let algorithm =
            ChecksumAlgorithm::from_name(name).ok_or(TusError::UnsupportedChecksumAlgorithm)?;
        if encoded.contains(&b' ') {
            return Err(ChecksumProblem::Malformed.into());
        }
        // Refuse oversized input before decoding it.
        if encoded.len() > algorithm.digest_len().div_ceil(3) * 4 {
            return Err(ChecksumProblem::DigestLength.into());
        }
        let digest = STANDARD
            .decode(encoded)
            .map_err(|_| ChecksumProblem::Base64)?;
        Self::new(algorithm, digest)
    }

    /// A checksum from its parts; the digest must have the algorithm's length.
    pub fn new(algorithm: ChecksumAlgorithm, digest: Vec<u8>) -> Result<Self, TusError> {
        if digest.len() != algorithm.digest_len() {
            return Err(ChecksumProblem::DigestLength.into());
        }
        Ok(Self { algorithm, digest })
    }

    /// The algorithm.
    pub fn algorithm(&self) -> ChecksumAlgorithm {
        self.algorithm
    }

    /// The digest bytes.
    pub fn digest(&self) -> &[u8] {
        &self.digest
    }

    /// `algorithm SP base64` — what a client sends.
    pub fn to_header_value(&self) -> String {
        format!("{} {}", self.algorithm, STANDARD.encode(&self.digest))
    }
}

impl fmt::Debug for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Checksum")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// Which digests a [`ChunkHasher`] computes besides SHA-256.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashPlan {
    /// No client checksum: SHA-256 only.
    Sha256Only,
    /// A checksum declared in the request header with this algorithm.
    Declared(ChecksumAlgorithm),
    /// A checksum announced as a trailer: every supported algorithm.
    Trailer,
}

/// The result of hashing one chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkDigest {
    /// SHA-256 of the chunk (the ledger's digest).
    pub sha256: [u8; 32],
    /// Bytes hashed.
    pub length: u64,
    /// The client's checksum algorithm, when one was declared and matched.
    pub verified: Option<ChecksumAlgorithm>,
}

/// Streaming digests of one chunk. See the module docs.
pub struct ChunkHasher {
    sha256: Sha256,
    sha1: Option<Sha1>,
    sha512: Option<Sha512>,
    md5: Option<Md5>,
    length: u64,
}

impl ChunkHasher {
    /// A hasher computing SHA-256 and whatever `plan` needs.
    pub fn new(plan: HashPlan) -> Self {
        let wants = |alg| match plan {
            HashPlan::Sha256Only => false,
            HashPlan::Declared(a) => a == alg,
            HashPlan::Trailer => true,
        };
        Self {
            sha256: Sha256::new(),
            sha1: wants(ChecksumAlgorithm::Sha1).then(Sha1::new),
            sha512: wants(ChecksumAlgorithm::Sha512).then(Sha512::new),
            md5: wants(ChecksumAlgorithm::Md5).then(Md5::new),
            length: 0,
        }
    }

    /// Feeds the next bytes of the body.
    pub fn update(&mut self, data: &[u8]) {
        self.sha256.update(data);
        if let Some(h) = &mut self.sha1 {
            h.update(data);
        }
        if let Some(h) = &mut self.sha512 {
            h.update(data);
        }
        if let Some(h) = &mut self.md5 {
            h.update(data);
        }
        self.length = self.length.saturating_add(data.len() as u64);
    }

    /// Bytes fed so far.
    pub fn length(&self) -> u64 {
        self.length
    }

    /// Finishes and, when `expected` is given, verifies in constant time. A checksum whose
    /// algorithm this hasher did not compute (an engine bug) fails closed as a mismatch.
    pub fn finish(self, expected: Option<&Checksum>) -> Result<ChunkDigest, TusError> {
        let sha256: [u8; 32] = self.sha256.finalize().into();
        let verified = match expected {
            None => None,
            Some(expected) => {
                let algorithm = expected.algorithm();
                let actual: Option<Vec<u8>> = match algorithm {
                    ChecksumAlgorithm::Sha256 => Some(sha256.to_vec()),
                    ChecksumAlgorithm::Sha1 => self.sha1.map(|h| h.finalize().to_vec()),
                    ChecksumAlgorithm::Sha512 => self.sha512.map(|h| h.finalize().to_vec()),
                    ChecksumAlgorithm::Md5 => self.md5.map(|h| h.finalize().to_vec()),
                };
                let matches = actual
                    .map(|a| bool::from(a.as_slice().ct_eq(expected.digest())))
                    .unwrap_or(false);
                if !matches {
                    return Err(TusError::ChecksumMismatch { algorithm });
                }
                Some(algorithm)
            }
        };
        Ok(ChunkDigest {
            sha256,
            length: self.length,
            verified,
        })
    }
}

impl fmt::Debug for ChunkHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChunkHasher")
            .field("length", &self.length)
            .field("sha1", &self.sha1.is_some())
            .field("sha512", &self.sha512.is_some())
            .field("md5", &self.md5.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Known digests of "hello world" (the spec's example) and of "abc" (FIPS 180 / RFC 1321).
    const VECTORS: &[(&[u8], ChecksumAlgorithm, &str)] = &[
        (
            b"hello world",
            ChecksumAlgorithm::Sha1,
            "Kq5sNclPz7QV2+lfQIuc6R7oRu0=",
        ),
        (
            b"abc",
            ChecksumAlgorithm::Sha256,
            "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=",
        ),
        (
            b"abc",
            ChecksumAlgorithm::Sha512,
            "3a81oZNherrMQXNJriBBMRLm+k6JqX6iCp7u5ktV05ohkpkqJ0/BqDa6PCOj/uu9RU1EI2Q86A4qmslPpUyknw==",
        ),
        (b"abc", ChecksumAlgorithm::Md5, "kAFQmDzST7DWlj99KOF/cg=="),
    ];

    fn hash(data: &[u8], plan: HashPlan, expected: &Checksum) -> Result<ChunkDigest, TusError> {
        let mut h = ChunkHasher::new(plan);
        // Odd split sizes exercise the streaming path.
        for piece in data.chunks(2) {
            h.update(piece);
        }
        h.finish(Some(expected))
    }

    #[test]
    fn known_vectors_verify_for_all_algorithms() {
        for &(data, alg, b64) in VECTORS {
            let header = format!("{} {}", alg.name(), b64);
            let expected = Checksum::parse(header.as_bytes()).unwrap();
            assert_eq!(expected.to_header_value(), header);
            for plan in [HashPlan::Declared(alg), HashPlan::Trailer] {
                let d = hash(data, plan, &expected).unwrap();
                assert_eq!(d.verified, Some(alg));
                assert_eq!(d.length, data.len() as u64);
                let sha256: [u8; 32] = Sha256::digest(data).into();
                assert_eq!(d.sha256, sha256);
            }
        }
    }

    #[test]
    fn mismatches_are_460() {
        for &(data, alg, b64) in VECTORS {
            let expected = Checksum::parse(format!("{} {}", alg.name(), b64).as_bytes()).unwrap();
            let mut tampered = data.to_vec();
            tampered[0] ^= 1;
            let err = hash(&tampered, HashPlan::Declared(alg), &expected).unwrap_err();
            assert_eq!(err, TusError::ChecksumMismatch { algorithm: alg });
            // One byte short also mismatches.
            let err = hash(&data[1..], HashPlan::Declared(alg), &expected).unwrap_err();
            assert_eq!(err, TusError::ChecksumMismatch { algorithm: alg });
        }
    }

    #[test]
    fn undeclared_algorithm_fails_closed() {
        let (data, alg, b64) = VECTORS[0];
        let expected = Checksum::parse(format!("{} {}", alg.name(), b64).as_bytes()).unwrap();
        let err = hash(data, HashPlan::Sha256Only, &expected).unwrap_err();
        assert_eq!(err, TusError::ChecksumMismatch { algorithm: alg });
    }

    #[test]
    fn no_checksum_still_gives_sha256() {
        let mut h = ChunkHasher::new(HashPlan::Sha256Only);
        h.update(b"abc");
        let d = h.finish(None).unwrap();
        assert_eq!(d.verified, None);
        assert_eq!(
            hex::encode(d.sha256),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let empty = ChunkHasher::new(HashPlan::Trailer).finish(None).unwrap();
        assert_eq!(empty.length, 0);
        assert_eq!(
            hex::encode(empty.sha256),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn header_refusals() {
        let parse = |s: &str| Checksum::parse(s.as_bytes()).unwrap_err();
        let invalid = |p| TusError::InvalidChecksum(p);
        assert_eq!(
            parse("crc32 AAAAAA=="),
            TusError::UnsupportedChecksumAlgorithm
        );
        assert_eq!(
            parse("SHA1 Kq5sNclPz7QV2+lfQIuc6R7oRu0="),
            TusError::UnsupportedChecksumAlgorithm
        );
        assert_eq!(parse("sha1"), invalid(ChecksumProblem::Malformed));
        assert_eq!(
            parse(" Kq5sNclPz7QV2+lfQIuc6R7oRu0="),
            invalid(ChecksumProblem::Malformed)
        );
        assert_eq!(
            parse("sha1  Kq5sNclPz7QV2+lfQIuc6R7oRu0="),
            invalid(ChecksumProblem::Malformed)
        );
        assert_eq!(
            parse("sha1 Kq5sNclPz7QV2+lfQIuc6R7oRu0= "),
            invalid(ChecksumProblem::Malformed)
        );
        assert_eq!(
            parse("sha1 Kq5sNclPz7QV2+lfQIuc6R7oRu0"),
            invalid(ChecksumProblem::Base64)
        );
        assert_eq!(
            parse("sha1 Kq5sNclPz7QV2-lfQIuc6R7oRu0="),
            invalid(ChecksumProblem::Base64)
        );
        assert_eq!(
            parse("sha1 Kq5sNclPz7QV2+lfQIuc6R7oRu1="),
            invalid(ChecksumProblem::Base64)
        );
        assert_eq!(
            parse("sha1 kAFQmDzST7DWlj99KOF/cg=="),
            invalid(ChecksumProblem::DigestLength)
        );
        assert_eq!(
            parse("md5 Kq5sNclPz7QV2+lfQIuc6R7oRu0="),
            invalid(ChecksumProblem::DigestLength)
        );
        assert_eq!(parse("sha1 "), invalid(ChecksumProblem::DigestLength));
        assert_eq!(
            parse("crc32 AAAAAA=="),
            TusError::UnsupportedChecksumAlgorithm
        );
    }

    #[test]
    fn every_prefix_never_panics() {
        for &(_, alg, b64) in VECTORS {
            let header = format!("{} {}", alg.name(), b64);
            for end in 0..header.len() {
                assert!(Checksum::parse(&header.as_bytes()[..end]).is_err());
            }
        }
    }

    proptest! {
        #[test]
        fn header_round_trip(i in 0usize..4, seed in any::<[u8; 64]>()) {
            let alg = ChecksumAlgorithm::ALL[i];
            let c = Checksum::new(alg, seed[..alg.digest_len()].to_vec()).unwrap();
            prop_assert_eq!(Checksum::parse(c.to_header_value().as_bytes()), Ok(c));
        }

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..120)) {
            let _ = Checksum::parse(&bytes);
        }

        #[test]
        fn split_invariance(data in proptest::collection::vec(any::<u8>(), 0..300), cut in 0usize..300) {
            let cut = cut.min(data.len());
            let mut a = ChunkHasher::new(HashPlan::Trailer);
            a.update(&data);
            let mut b = ChunkHasher::new(HashPlan::Trailer);
            b.update(&data[..cut]);
            b.update(&data[cut..]);
            prop_assert_eq!(a.finish(None), b.finish(None));
        }
    }
}
