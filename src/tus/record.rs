//! The stored upload record and its versioned encoding.
//!
//! An [`UploadRecord`] is everything the state machine needs to decide a request: owner,
//! length (or deferred), offset, times, concatenation kind, completion and the whole-file
//! SHA-256. The upload engine stores it (`upload::store` names the namespace) as JSON:
//!
//! ```text
//! {"v":1,"record":{ …UploadRecord fields… }}
//! ```
//!
//! [`UploadRecord::decode`] refuses other versions, unknown fields, and records that break
//! an invariant (offset past length, complete without a digest, …), so a corrupt or foreign
//! record is caught before any decision is made on it. `proto/upload-v1.md` has the schema
//! and `proto/vectors/upload-v1/record.json` a golden example.
//!
//! Upload metadata is PHI and is *not* in the clear here: [`UploadRecord::metadata`] holds
//! only the upload engine's sealed (encrypted) canonical `Upload-Metadata` as opaque bytes.
//!
//! Not here: the encrypted whole-file hash midstate and the data key (the upload engine and
//! `at_rest` own those), the ledger entries (the `ledger` module, which builds on this one).

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::ids::{IdError, OpaqueId};
use crate::tus::dates::Timestamp;

/// The current record encoding version.
pub const RECORD_VERSION: u32 = 1;

/// An upload's id: a server-generated [`OpaqueId`].
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct UploadId(OpaqueId);

impl UploadId {
    /// A fresh random id.
    pub fn random() -> Self {
        Self(OpaqueId::random())
    }

    /// The underlying opaque id (for blob names and AADs).
    pub fn opaque(self) -> OpaqueId {
        self.0
    }
}

impl From<OpaqueId> for UploadId {
    fn from(id: OpaqueId) -> Self {
        Self(id)
    }
}

impl FromStr for UploadId {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(Self)
    }
}

impl fmt::Display for UploadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for UploadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UploadId({})", self.0)
    }
}

/// A SHA-256 digest; JSON and `Display` as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sha256Digest(pub [u8; 32]);

impl fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256Digest({self})")
    }
}

impl serde::Serialize for Sha256Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Sha256Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        let mut out = [0u8; 32];
        // Lowercase only, so that every digest has one spelling.
        if s.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(serde::de::Error::custom("SHA-256 hex must be lowercase"));
        }
        hex::decode_to_slice(s.as_bytes(), &mut out).map_err(serde::de::Error::custom)?;
        Ok(Self(out))
    }
}

/// Opaque ciphertext of the upload's canonical `Upload-Metadata`, sealed by the upload engine.
/// JSON as base64; `Debug` shows only its length.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedMetadata(pub Vec<u8>);

impl fmt::Debug for SealedMetadata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SealedMetadata({} bytes)", self.0.len())
    }
}

impl serde::Serialize for SealedMetadata {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(&self.0))
    }
}

impl<'de> serde::Deserialize<'de> for SealedMetadata {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        STANDARD
            .decode(s.as_bytes())
            .map(Self)
            .map_err(|_| serde::de::Error::custom("sealed metadata is not base64"))
    }
}

/// Whether an upload takes part in concatenation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum ConcatKind {
    /// An ordinary upload.
    None,
    /// Created with `Upload-Concat: partial`.
    Partial,
    /// Created with `Upload-Concat: final;…`, from these parts in this order.
    Final {
        /// The partial uploads, in concatenation order (at least one).
        parts: Vec<UploadId>,
    },
}

/// The stored state of one upload. See the module docs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadRecord {
    /// The upload's id.
    pub id: UploadId,
    /// The creating principal's name; only it (or an admin) may HEAD, PATCH or DELETE.
    pub owner: String,
    /// Total length in bytes; `None` while deferred (`Upload-Defer-Length: 1`).
    pub length: Option<u64>,
    /// Bytes durably received (the next `Upload-Offset`).
    pub offset: u64,
    /// Creation time.
    pub created_at: Timestamp,
    /// When the unfinished upload expires; `None` once complete.
    pub expires_at: Option<Timestamp>,
    /// Concatenation role.
    pub concat: ConcatKind,
    /// When the last byte arrived (or the concatenation finished); `None` while unfinished.
    pub completed_at: Option<Timestamp>,
    /// SHA-256 of the whole plaintext, set exactly when complete.
    pub sha256: Option<Sha256Digest>,
    /// Ledger entries so far (the next chunk's index).
    pub chunks: u64,
    /// The sealed `Upload-Metadata`, when the client sent any.
    pub metadata: Option<SealedMetadata>,
}

/// Why stored bytes are not a valid [`UploadRecord`]. Never echoes the bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// Not JSON of the expected shape (position of the first problem).
    #[error("upload record is malformed at line {line}, column {column}")]
    Malformed {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// A version this build cannot read.
    #[error("upload record version {0} is not supported")]
    UnsupportedVersion(u64),
    /// Well-formed but breaks an invariant.
    #[error("upload record is inconsistent: {0}")]
    Invalid(&'static str),
}

#[derive(serde::Serialize)]
struct EnvelopeOut<'a> {
    v: u32,
    record: &'a UploadRecord,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvelopeIn {
    #[allow(dead_code)] // checked by `VersionProbe` first
    v: u32,
    record: UploadRecord,
}

#[derive(serde::Deserialize)]
struct VersionProbe {
    v: u64,
}

impl UploadRecord {
    /// Whether every byte has arrived (or the concatenation finished).
    pub fn is_complete(&self) -> bool {
        self.completed_at.is_some()
    }

    /// Whether this is a final concatenated upload.
    pub fn is_final(&self) -> bool {
        matches!(self.concat, ConcatKind::Final { .. })
    }

    /// Whether the unfinished upload has expired at `now` (a complete one never does).
    pub fn is_expired(&self, now: Timestamp) -> bool {
        !self.is_complete() && self.expires_at.is_some_and(|t| t <= now)
    }

    /// The versioned JSON encoding.
    pub fn encode(&self) -> Vec<u8> {
        let envelope = EnvelopeOut {
            v: RECORD_VERSION,
            record: self,
        };
        // Serialising plain structs with string keys into a Vec cannot fail.
        serde_json::to_vec(&envelope).unwrap_or_default()
    }

    /// Decodes and checks a stored record.
    pub fn decode(bytes: &[u8]) -> Result<Self, RecordError> {
        let malformed = |e: serde_json::Error| RecordError::Malformed {
            line: e.line(),
            column: e.column(),
        };
        let probe: VersionProbe = serde_json::from_slice(bytes).map_err(malformed)?;
        if probe.v != u64::from(RECORD_VERSION) {
            return Err(RecordError::UnsupportedVersion(probe.v));
        }
        let envelope: EnvelopeIn = serde_json::from_slice(bytes).map_err(malformed)?;
        envelope.record.check()?;
        Ok(envelope.record)
    }

    /// Checks the invariants every stored record keeps.
    pub fn check(&self) -> Result<(), RecordError> {
        let invalid = |why| Err(RecordError::Invalid(why));
        if self.owner.is_empty() {
            return invalid("empty owner");
        }
        if self.length.is_some_and(|len| self.offset > len) {
            return invalid("offset past length");
        }
        if self.is_complete() != self.sha256.is_some() {
            return invalid("a digest is present exactly when complete");
        }
        if self.is_complete() && self.length != Some(self.offset) {
            return invalid("complete but offset differs from length");
        }
        if self.is_complete() && self.expires_at.is_some() {
            return invalid("complete uploads do not expire");
        }
        match &self.concat {
            ConcatKind::Final { parts } if parts.is_empty() => invalid("final without parts"),
            ConcatKind::Final { .. } if self.length.is_none() => invalid("final without length"),
            ConcatKind::Final { .. } if self.chunks != 0 => invalid("final with own chunks"),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> UploadRecord {
        UploadRecord {
            id: "0123456789abcdefghjkmnpqrs".parse().unwrap(),
            owner: "clinic-7".to_owned(),
            length: Some(11),
            offset: 5,
            created_at: Timestamp::from_unix(1_700_000_000).unwrap(),
            expires_at: Timestamp::from_unix(1_700_086_400),
            concat: ConcatKind::Partial,
            completed_at: None,
            sha256: None,
            chunks: 1,
            metadata: Some(SealedMetadata(vec![1, 2, 3])),
        }
    }

    #[test]
    fn golden_record_decodes_and_re_encodes_identically() {
        let golden = include_str!("../../proto/vectors/upload-v1/record.json").trim();
        let record = UploadRecord::decode(golden.as_bytes()).unwrap();
        assert_eq!(record, sample());
        assert_eq!(String::from_utf8(record.encode()).unwrap(), golden);
    }

    #[test]
    fn refuses_foreign_or_broken_records() {
        let good = String::from_utf8(sample().encode()).unwrap();
        assert_eq!(
            UploadRecord::decode(good.replace("\"v\":1", "\"v\":2").as_bytes()),
            Err(RecordError::UnsupportedVersion(2))
        );
        assert!(matches!(
            UploadRecord::decode(
                good.replace("\"chunks\"", "\"extra\":1,\"chunks\"")
                    .as_bytes()
            ),
            Err(RecordError::Malformed { .. })
        ));
        assert!(matches!(
            UploadRecord::decode(b"{\"v\":1}"),
            Err(RecordError::Malformed { .. })
        ));
        for end in 0..good.len() {
            assert!(UploadRecord::decode(&good.as_bytes()[..end]).is_err());
        }
        let mut r = sample();
        r.offset = 12;
        assert_eq!(
            UploadRecord::decode(&r.encode()),
            Err(RecordError::Invalid("offset past length"))
        );
        let mut r = sample();
        r.completed_at = Some(r.created_at);
        assert!(UploadRecord::decode(&r.encode()).is_err());
        let mut r = sample();
        r.concat = ConcatKind::Final { parts: vec![] };
        assert!(UploadRecord::decode(&r.encode()).is_err());
    }

    #[test]
    fn debug_hides_metadata() {
        let debug = format!("{:?}", sample());
        assert!(debug.contains("SealedMetadata(3 bytes)"), "{debug}");
    }

    #[test]
    fn expiry() {
        let r = sample();
        let exp = r.expires_at.unwrap();
        assert!(!r.is_expired(Timestamp::from_unix(exp.unix() - 1).unwrap()));
        assert!(r.is_expired(exp));
    }
}
