//! Key and value encodings of the embedded store's tables (the layout is described in the
//! parent module's docs). Pure functions, no I/O.
//!
//! Every composite key is a sequence of *length-prefixed* parts (a big-endian `u16` byte
//! count, then the bytes) followed by at most one *open* last part that runs to the end of
//! the key. Only the last part may be open, so a key splits back into its parts in exactly
//! one way, and keys that share their prefixed parts sort by the open part's bytes —
//! which is what makes "ids in ascending order after X" a plain range scan.

use crate::state::StateError;

/// Format byte of an encoded record value.
const RECORD_FORMAT: u8 = 1;

/// Length of an encoded lease value: token, fence, expiry.
const LEASE_LEN: usize = 16 + 8 + 8;

/// Appends `part` with its big-endian `u16` length prefix. The request checks in
/// `state::limits` keep every part far below 64 KiB; a longer part is refused rather than
/// truncated.
pub(super) fn push_prefixed(out: &mut Vec<u8>, part: &[u8]) -> Result<(), StateError> {
    let len = u16::try_from(part.len()).map_err(|_| StateError::Invalid("key part too long"))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(part);
    Ok(())
}

/// `records` and `counters` key: `lp(ns) ‖ id`.
pub(super) fn record_key(ns: &str, id: &str) -> Result<Vec<u8>, StateError> {
    let mut out = namespace_prefix(ns)?;
    out.extend_from_slice(id.as_bytes());
    Ok(out)
}

/// The prefix every `records` key of `ns` starts with: `lp(ns)`.
pub(super) fn namespace_prefix(ns: &str) -> Result<Vec<u8>, StateError> {
    let mut out = Vec::with_capacity(2 + ns.len());
    push_prefixed(&mut out, ns.as_bytes())?;
    Ok(out)
}

/// The prefix every `index` key of one index value starts with: `lp(ns) ‖ lp(index) ‖
/// lp(value)`; the record id follows as the open part.
pub(super) fn index_prefix(ns: &str, index: &str, value: &str) -> Result<Vec<u8>, StateError> {
    let mut out = namespace_prefix(ns)?;
    push_prefixed(&mut out, index.as_bytes())?;
    push_prefixed(&mut out, value.as_bytes())?;
    Ok(out)
}

/// `expiry` key: `expires_at_ms (u64 BE) ‖ record key`, so a range scan up to "now" finds
/// exactly the records that have expired.
pub(super) fn expiry_key(expires_at_ms: u64, record_key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + record_key.len());
    out.extend_from_slice(&expires_at_ms.to_be_bytes());
    out.extend_from_slice(record_key);
    out
}

/// Splits an `expiry` key back into the expiry and the record key.
pub(super) fn split_expiry_key(key: &[u8]) -> Result<(u64, &[u8]), StateError> {
    let (head, rest) = key
        .split_first_chunk::<8>()
        .ok_or_else(|| StateError::Corrupt("short expiry key".into()))?;
    Ok((u64::from_be_bytes(*head), rest))
}

/// `log_entries` key: `lp(log) ‖ seq (u64 BE)`; big-endian so entries sort by sequence.
pub(super) fn log_key(log: &str, seq: u64) -> Result<Vec<u8>, StateError> {
    let mut out = Vec::with_capacity(2 + log.len() + 8);
    push_prefixed(&mut out, log.as_bytes())?;
    out.extend_from_slice(&seq.to_be_bytes());
    Ok(out)
}

/// Reads the sequence number back out of a `log_entries` key of `log`.
pub(super) fn log_key_seq(key: &[u8], log_prefix_len: usize) -> Result<u64, StateError> {
    let tail: [u8; 8] = key
        .get(log_prefix_len..)
        .and_then(|t| t.try_into().ok())
        .ok_or_else(|| StateError::Corrupt("malformed log entry key".into()))?;
    Ok(u64::from_be_bytes(tail))
}

/// A record as stored in the `records` table.
///
/// Value layout: `format (u8 = 1) ‖ version (u64 BE) ‖ expires_at_ms (u64 BE, 0 = never) ‖
/// n (u16 BE) ‖ n × lp(index key) ‖ value bytes`. The record carries the full `index` table
/// keys it is listed under, so a rewrite or delete removes exactly those entries.
#[derive(PartialEq, Eq)]
pub(super) struct StoredRecord {
    pub(super) version: u64,
    pub(super) expires_at_ms: Option<u64>,
    pub(super) index_keys: Vec<Vec<u8>>,
    pub(super) value: Vec<u8>,
}

impl std::fmt::Debug for StoredRecord {
    // Record bytes may be sensitive: never print them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredRecord")
            .field("version", &self.version)
            .field("expires_at_ms", &self.expires_at_ms)
            .field("index_keys", &self.index_keys.len())
            .field("len", &self.value.len())
            .finish()
    }
}

impl StoredRecord {
    /// Whether the record is still live at `now_ms`.
    pub(super) fn is_live(&self, now_ms: u64) -> bool {
        self.expires_at_ms.is_none_or(|at| now_ms < at)
    }

    pub(super) fn encode(&self) -> Result<Vec<u8>, StateError> {
        let mut out = Vec::with_capacity(19 + self.value.len() + 64 * self.index_keys.len());
        out.push(RECORD_FORMAT);
        out.extend_from_slice(&self.version.to_be_bytes());
        out.extend_from_slice(&self.expires_at_ms.unwrap_or(0).to_be_bytes());
        let n = u16::try_from(self.index_keys.len())
            .map_err(|_| StateError::Invalid("too many index entries"))?;
        out.extend_from_slice(&n.to_be_bytes());
        for key in &self.index_keys {
            push_prefixed(&mut out, key)?;
        }
        out.extend_from_slice(&self.value);
        Ok(out)
    }

    pub(super) fn decode(bytes: &[u8]) -> Result<Self, StateError> {
        let mut r = Reader(bytes);
        if r.take(1)? != [RECORD_FORMAT] {
            return Err(corrupt("unknown record format"));
        }
        let version = r.u64()?;
        let expires_at_ms = Some(r.u64()?).filter(|&at| at != 0);
        let n = r.u16()?;
        let mut index_keys = Vec::with_capacity(usize::from(n));
        for _ in 0..n {
            let len = r.u16()?;
            index_keys.push(r.take(usize::from(len))?.to_vec());
        }
        Ok(Self {
            version,
            expires_at_ms,
            index_keys,
            value: r.0.to_vec(),
        })
    }
}

/// A lease as stored in the `leases` table: `token (16) ‖ fence (u64 BE) ‖ expires_at_ms
/// (u64 BE)`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) struct StoredLease {
    pub(super) token: [u8; 16],
    pub(super) fence: u64,
    pub(super) expires_at_ms: u64,
}

impl std::fmt::Debug for StoredLease {
    // The token is the holder's secret: never print it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredLease")
            .field("fence", &self.fence)
            .field("expires_at_ms", &self.expires_at_ms)
            .finish_non_exhaustive()
    }
}

impl StoredLease {
    pub(super) fn encode(&self) -> [u8; LEASE_LEN] {
        let mut out = [0u8; LEASE_LEN];
        out[..16].copy_from_slice(&self.token);
        out[16..24].copy_from_slice(&self.fence.to_be_bytes());
        out[24..].copy_from_slice(&self.expires_at_ms.to_be_bytes());
        out
    }

    pub(super) fn decode(bytes: &[u8]) -> Result<Self, StateError> {
        if bytes.len() != LEASE_LEN {
            return Err(corrupt("lease record has the wrong length"));
        }
        let mut r = Reader(bytes);
        let token: [u8; 16] = r
            .take(16)?
            .try_into()
            .map_err(|_| corrupt("short lease token"))?;
        Ok(Self {
            token,
            fence: r.u64()?,
            expires_at_ms: r.u64()?,
        })
    }
}

fn corrupt(what: &str) -> StateError {
    StateError::Corrupt(format!("embedded store: {what}"))
}

/// A cursor over bytes that fails with `Corrupt` instead of panicking on short input.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], StateError> {
        if self.0.len() < n {
            return Err(corrupt("truncated value"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u16(&mut self) -> Result<u16, StateError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u64(&mut self) -> Result<u64, StateError> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(b))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn record_keys_are_length_prefixed() {
        assert_eq!(record_key("upload", "ab").unwrap(), b"\x00\x06uploadab");
        // "up" + "loadab" and "upload" + "ab" must not collide.
        assert_ne!(
            record_key("up", "loadab").unwrap(),
            record_key("upload", "ab").unwrap()
        );
        assert!(
            record_key("upload", "ab")
                .unwrap()
                .starts_with(&namespace_prefix("upload").unwrap())
        );
        assert!(
            !record_key("uploads", "x")
                .unwrap()
                .starts_with(&namespace_prefix("upload").unwrap())
        );
    }

    #[test]
    fn index_keys_are_unambiguous() {
        let a = index_prefix("grant", "owner", "ab").unwrap();
        let b = index_prefix("grant", "owner", "a").unwrap();
        assert_eq!(a, b"\x00\x05grant\x00\x05owner\x00\x02ab");
        // A value that is a prefix of another value does not share its key prefix.
        assert!(!a.starts_with(&b));
    }

    #[test]
    fn ids_under_one_prefix_sort_by_id_bytes() {
        let ids = ["", "a", "a0", "b", "ba", "z"];
        let keys: Vec<_> = ids.iter().map(|id| record_key("ns", id).unwrap()).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
    }

    #[test]
    fn expiry_keys_sort_by_time_and_split_back() {
        let rk = record_key("upload", "x").unwrap();
        let early = expiry_key(5, &rk);
        let late = expiry_key(256, &rk);
        assert!(early < late);
        let (at, key) = split_expiry_key(&late).unwrap();
        assert_eq!((at, key), (256, rk.as_slice()));
        assert!(split_expiry_key(b"short").is_err());
    }

    #[test]
    fn log_keys_sort_by_seq() {
        let log = "audit";
        let prefix_len = 2 + log.len();
        let k1 = log_key(log, 1).unwrap();
        let k2 = log_key(log, 256).unwrap();
        assert!(k1 < k2);
        assert_eq!(log_key_seq(&k2, prefix_len).unwrap(), 256);
        assert!(log_key_seq(&k2[..k2.len() - 1], prefix_len).is_err());
    }

    #[test]
    fn overlong_parts_are_refused() {
        assert!(record_key(&"n".repeat(70_000), "x").is_err());
    }

    #[test]
    fn corrupt_records_are_errors_not_panics() {
        let rec = StoredRecord {
            version: 3,
            expires_at_ms: Some(9),
            index_keys: vec![b"k1".to_vec(), b"key2".to_vec()],
            value: b"hello".to_vec(),
        };
        let bytes = rec.encode().unwrap();
        // Every strict prefix shorter than the header and index keys fails cleanly.
        let header_len = bytes.len() - rec.value.len();
        for cut in 0..header_len {
            assert!(StoredRecord::decode(&bytes[..cut]).is_err(), "cut {cut}");
        }
        let mut wrong_format = bytes.clone();
        wrong_format[0] = 2;
        assert!(StoredRecord::decode(&wrong_format).is_err());
        assert!(StoredLease::decode(&[0u8; 31]).is_err());
    }

    proptest! {
        #[test]
        fn records_round_trip(
            version in any::<u64>(),
            expires in proptest::option::of(1u64..),
            keys in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..5),
            value in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let rec = StoredRecord { version, expires_at_ms: expires, index_keys: keys, value };
            prop_assert_eq!(StoredRecord::decode(&rec.encode().unwrap()).unwrap(), rec);
        }

        #[test]
        fn leases_round_trip(token in any::<[u8; 16]>(), fence in any::<u64>(), at in any::<u64>()) {
            let lease = StoredLease { token, fence, expires_at_ms: at };
            prop_assert_eq!(StoredLease::decode(&lease.encode()).unwrap(), lease);
        }

        #[test]
        fn record_keys_never_collide(
            a in ("[a-z]{1,6}", "\\PC{0,8}"),
            b in ("[a-z]{1,6}", "\\PC{0,8}"),
        ) {
            prop_assume!(a != b);
            prop_assert_ne!(record_key(&a.0, &a.1).unwrap(), record_key(&b.0, &b.1).unwrap());
        }
    }
}
