//! The wrapped-DEK record: how an object's data key is kept in the state store.
//!
//! One record per object in namespace [`DEK_NAMESPACE`], id = the object's id, listed in
//! the [`KEK_INDEX`] index under `"<kek id>:<version>"` so `keys status`/`keys retire` can
//! count the DEKs a KEK version still wraps, and `keys rewrap` rewrites records by
//! compare-and-swap on the record version. Deleting the record crypto-shreds the object.
//!
//! Layout (normative in `proto/at-rest-v1.md` §Wrapped-DEK record), all integers
//! big-endian:
//!
//! ```text
//! "SPDK" | version = 1 | purpose (1) | DEK id (16) | len(KEK id) (1) | KEK id
//!        | KEK version (u32) | nonce (12) | sealed DEK ‖ tag (48)
//! ```
//!
//! Not here: the wrap crypto ([`super::kek_set`]).

use crate::state::{IndexEntry, Namespace};

use super::{DEK_ID_LEN, DekPurpose, KekId, KekRef, KeyError, WRAPPED_DEK_LEN, WrappedDek};

/// The state-store namespace of wrapped-DEK records.
pub const DEK_NAMESPACE: Namespace = Namespace::new("dek");
/// The index that lists DEK records by the KEK version that wraps them.
pub const KEK_INDEX: &str = "kek";

const MAGIC: &[u8; 4] = b"SPDK";
const VERSION: u8 = 1;

/// An object's wrapped data key as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DekRecord {
    /// The DEK's id: the key reference in the object's header.
    pub dek_id: [u8; DEK_ID_LEN],
    /// What the DEK is for.
    pub purpose: DekPurpose,
    /// The wrapped key.
    pub wrapped: WrappedDek,
}

impl DekRecord {
    /// The record's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let id = self.wrapped.kek.id.as_str().as_bytes();
        let mut out = Vec::with_capacity(4 + 1 + 1 + DEK_ID_LEN + 1 + id.len() + 4 + 12 + 48);
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.push(self.purpose.code());
        out.extend_from_slice(&self.dek_id);
        // KekId's invariant: at most 32 bytes.
        out.push(id.len() as u8);
        out.extend_from_slice(id);
        out.extend_from_slice(&self.wrapped.kek.version.to_be_bytes());
        out.extend_from_slice(&self.wrapped.nonce);
        out.extend_from_slice(&self.wrapped.sealed);
        out
    }

    /// Parses a record; rejects anything but exactly one well-formed record.
    pub fn decode(bytes: &[u8]) -> Result<Self, KeyError> {
        let mut r = Reader(bytes);
        if r.take(4)? != MAGIC {
            return Err(KeyError::CorruptRecord("bad magic"));
        }
        if r.byte()? != VERSION {
            return Err(KeyError::CorruptRecord("unsupported record version"));
        }
        let purpose =
            DekPurpose::from_code(r.byte()?).ok_or(KeyError::CorruptRecord("unknown purpose"))?;
        let dek_id = r.array::<DEK_ID_LEN>()?;
        let id_len = r.byte()? as usize;
        let id = std::str::from_utf8(r.take(id_len)?)
            .ok()
            .and_then(|s| s.parse::<KekId>().ok())
            .ok_or(KeyError::CorruptRecord("bad KEK id"))?;
        let version = u32::from_be_bytes(r.array::<4>()?);
        let nonce = r.array::<12>()?;
        let sealed = r.array::<WRAPPED_DEK_LEN>()?;
        if !r.0.is_empty() {
            return Err(KeyError::CorruptRecord("trailing bytes"));
        }
        Ok(Self {
            dek_id,
            purpose,
            wrapped: WrappedDek {
                kek: KekRef { id, version },
                nonce,
                sealed,
            },
        })
    }

    /// The index entry this record is listed under.
    pub fn index_entry(&self) -> IndexEntry {
        kek_index_entry(&self.wrapped.kek)
    }
}

/// The [`KEK_INDEX`] entry for DEKs wrapped under `kek`.
pub fn kek_index_entry(kek: &KekRef) -> IndexEntry {
    IndexEntry::new(KEK_INDEX, format!("{}:{}", kek.id, kek.version))
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], KeyError> {
        if self.0.len() < n {
            return Err(KeyError::CorruptRecord("truncated"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn byte(&mut self) -> Result<u8, KeyError> {
        Ok(self.take(1)?[0])
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], KeyError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> DekRecord {
        DekRecord {
            dek_id: [3; 16],
            purpose: DekPurpose::ObjectData,
            wrapped: WrappedDek {
                kek: KekRef {
                    id: "main".parse().unwrap(),
                    version: 7,
                },
                nonce: [9; 12],
                sealed: [5; WRAPPED_DEK_LEN],
            },
        }
    }

    #[test]
    fn round_trip() {
        let rec = sample();
        assert_eq!(DekRecord::decode(&rec.encode()).unwrap(), rec);
        assert_eq!(rec.index_entry().value, "main:7");
    }

    #[test]
    fn every_prefix_and_extension_is_rejected() {
        let bytes = sample().encode();
        for n in 0..bytes.len() {
            assert!(DekRecord::decode(&bytes[..n]).is_err(), "prefix {n}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(DekRecord::decode(&longer).is_err());
        let mut bad = bytes.clone();
        bad[4] = 2;
        assert!(DekRecord::decode(&bad).is_err());
        let mut bad = bytes;
        bad[5] = 9;
        assert!(DekRecord::decode(&bad).is_err());
    }
}
