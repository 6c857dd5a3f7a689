//! The audit hash chain: pure code that builds entries and verifies a sequence of them.
//!
//! An entry is one line of UTF-8 JSON. Its *body* is the JSON object the gateway's
//! serializer writes, keys in this fixed order, no whitespace:
//!
//! ```text
//! {"v":1,"seq":N,"time":"…","instance":"…","action":"…","outcome":"…","actor":{…},
//!  "request_id":…,"client_addr":…[,"peer_addr":…],"subject":…,"details":{…},
//!  "prev":"<64 hex>"}
//! ```
//!
//! `peer_addr` is present only when the TCP peer was not the client (a load balancer or
//! trusted proxy spoke for it); entries without it hash exactly as before it existed.
//!
//! and the stored line is the body with `,"hash":"<64 hex>"` inserted before its final `}`,
//! where `hash = SHA-256("sallyport-audit-v1\n" || body)`. The first entry's `prev` is 64
//! zeros. Verification never re-serialises: it cuts the fixed-width hash suffix off the
//! stored bytes, re-hashes exactly the bytes that were hashed, and checks `seq` runs 1, 2,
//! 3… and each `prev` equals the previous `hash`. So it detects any edited byte, deleted,
//! inserted or reordered entry. A truncated *end* of the log is only detectable against a
//! head (length + hash) recorded elsewhere — which is what signed checkpoints, exported
//! off the box, add (`audit::checkpoint`); [`ChainSummary`] is what such a checkpoint signs.
//!
//! Not here: where entries are stored (the state store's log, see `audit::log`).

use serde::Serialize;
use sha2::{Digest, Sha256};

/// Domain separation for entry hashes.
pub const HASH_DOMAIN: &[u8] = b"sallyport-audit-v1\n";
/// The `prev` of the first entry.
pub const GENESIS_PREV: [u8; 32] = [0; 32];
/// Length of the suffix `,"hash":"<64 hex>"}`.
const HASH_SUFFIX_LEN: usize = 9 + 64 + 2;

/// The head of a chain: what a checkpoint records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainSummary {
    /// Number of entries (= last seq).
    pub length: u64,
    /// Hash of the last entry, hex (`prev` of the next one).
    pub head_hash: String,
}

/// Why a chain does not verify. Each names the sequence position where it broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// The line is not an entry of this format.
    #[error("entry {position}: malformed ({reason})")]
    Malformed {
        /// 1-based position in the input.
        position: u64,
        /// What is wrong.
        reason: &'static str,
    },
    /// The stored hash does not match the entry's bytes: the entry was edited.
    #[error("entry {position} (seq {seq}): hash mismatch — the entry was altered")]
    HashMismatch {
        /// 1-based position.
        position: u64,
        /// Its seq field.
        seq: u64,
    },
    /// The seq is not the next number: an entry was deleted, inserted or moved.
    #[error(
        "entry {position}: seq {found} where {expected} was expected — entries were deleted, inserted or reordered"
    )]
    SeqGap {
        /// 1-based position.
        position: u64,
        /// The seq expected here.
        expected: u64,
        /// The seq found.
        found: u64,
    },
    /// `prev` does not match the previous entry's hash.
    #[error(
        "entry {position} (seq {seq}): prev does not match the previous entry's hash — the chain is broken"
    )]
    PrevMismatch {
        /// 1-based position.
        position: u64,
        /// Its seq field.
        seq: u64,
    },
}

/// The fields of a body, in canonical order.
#[derive(Debug, Serialize)]
pub struct Body<'a> {
    /// Format version.
    pub v: u8,
    /// Sequence number, from 1.
    pub seq: u64,
    /// RFC 3339 UTC time.
    pub time: &'a str,
    /// Which gateway instance wrote it.
    pub instance: &'a str,
    /// The event's action, e.g. `upload.created`.
    pub action: &'a str,
    /// `success`, `failure` or `denied`.
    pub outcome: &'a str,
    /// Who acted.
    pub actor: &'a serde_json::Value,
    /// The request id, if the event came from a request.
    pub request_id: Option<&'a str>,
    /// The client address, if any.
    pub client_addr: Option<&'a str>,
    /// The TCP peer's address, only when it is not the client's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_addr: Option<&'a str>,
    /// The id of the thing acted on, if any.
    pub subject: Option<&'a str>,
    /// Event-specific fields.
    pub details: &'a serde_json::Value,
    /// Hash of the previous entry, hex.
    pub prev: String,
}

/// Builds the stored line for `body` (whose `prev` must be set) and returns it with its hash.
pub fn seal(body: &Body<'_>) -> Result<(Vec<u8>, [u8; 32]), serde_json::Error> {
    let mut bytes = serde_json::to_vec(body)?;
    let hash = entry_hash(&bytes);
    // serde_json wrote an object, so the last byte is '}'.
    bytes.pop();
    bytes.extend_from_slice(b",\"hash\":\"");
    bytes.extend_from_slice(hex::encode(hash).as_bytes());
    bytes.extend_from_slice(b"\"}");
    Ok((bytes, hash))
}

/// SHA-256 over the domain and the body bytes.
pub fn entry_hash(body: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(HASH_DOMAIN);
    h.update(body);
    h.finalize().into()
}

#[derive(serde::Deserialize)]
struct Header {
    seq: u64,
    prev: String,
    hash: String,
}

/// Reads the hash a stored line claims (for continuing a chain from its head).
pub fn stored_hash(line: &[u8]) -> Option<[u8; 32]> {
    let header: Header = serde_json::from_slice(line).ok()?;
    let mut out = [0u8; 32];
    hex::decode_to_slice(header.hash, &mut out).ok()?;
    Some(out)
}

/// Incremental verifier: feed lines in order, then [`Verifier::finish`].
#[derive(Debug, Clone)]
pub struct Verifier {
    position: u64,
    prev: [u8; 32],
}

impl Default for Verifier {
    fn default() -> Self {
        Self {
            position: 0,
            prev: GENESIS_PREV,
        }
    }
}

impl Verifier {
    /// A verifier for a chain from its first entry.
    pub fn new() -> Self {
        Self::default()
    }

    /// A verifier continuing a chain after entry `seq` whose hash is `hash`: the next line
    /// must be entry `seq + 1` with `prev` = `hash`, and positions count on from `seq`
    /// (the live journal after an archived prefix, `audit::archive`).
    pub fn after(seq: u64, hash: [u8; 32]) -> Self {
        Self {
            position: seq,
            prev: hash,
        }
    }

    /// Checks one stored line on its own — its hash covers its bytes — and returns its
    /// seq and hash, to continue a chain from (its `prev` is taken as it says).
    pub fn anchor(line: &[u8]) -> Result<(u64, [u8; 32]), ChainError> {
        let malformed = |reason| ChainError::Malformed {
            position: 0,
            reason,
        };
        let header: Header = serde_json::from_slice(line).map_err(|_| malformed("not JSON"))?;
        let mut prev = [0u8; 32];
        hex::decode_to_slice(&header.prev, &mut prev).map_err(|_| malformed("prev is not hex"))?;
        let Some(before) = header.seq.checked_sub(1) else {
            return Err(malformed("seq 0"));
        };
        let mut v = Self::after(before, prev);
        v.push(line)?;
        Ok((header.seq, v.head()))
    }

    /// Checks the next stored line.
    pub fn push(&mut self, line: &[u8]) -> Result<(), ChainError> {
        self.position += 1;
        let position = self.position;
        let malformed = |reason| ChainError::Malformed { position, reason };
        let header: Header = serde_json::from_slice(line).map_err(|_| malformed("not JSON"))?;
        if line.len() < HASH_SUFFIX_LEN + 2 {
            return Err(malformed("too short"));
        }
        let (head, suffix) = line.split_at(line.len() - HASH_SUFFIX_LEN);
        if !suffix.starts_with(b",\"hash\":\"") || !suffix.ends_with(b"\"}") {
            return Err(malformed("hash is not the last field"));
        }
        let mut claimed = [0u8; 32];
        hex::decode_to_slice(&header.hash, &mut claimed)
            .map_err(|_| malformed("hash is not hex"))?;
        if &suffix[9..73] != header.hash.as_bytes() {
            return Err(malformed("duplicate hash field"));
        }
        let mut body = head.to_vec();
        body.push(b'}');
        if entry_hash(&body) != claimed {
            return Err(ChainError::HashMismatch {
                position,
                seq: header.seq,
            });
        }
        if header.seq != position {
            return Err(ChainError::SeqGap {
                position,
                expected: position,
                found: header.seq,
            });
        }
        let mut prev = [0u8; 32];
        hex::decode_to_slice(&header.prev, &mut prev).map_err(|_| malformed("prev is not hex"))?;
        if prev != self.prev {
            return Err(ChainError::PrevMismatch {
                position,
                seq: header.seq,
            });
        }
        self.prev = claimed;
        Ok(())
    }

    /// The hash of the last entry verified ([`GENESIS_PREV`] before any).
    pub fn head(&self) -> [u8; 32] {
        self.prev
    }

    /// The verified chain's length and head.
    pub fn finish(&self) -> ChainSummary {
        ChainSummary {
            length: self.position,
            head_hash: hex::encode(self.prev),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn chain(n: u64) -> Vec<Vec<u8>> {
        chain_for("test", n)
    }

    fn chain_for(instance: &str, n: u64) -> Vec<Vec<u8>> {
        let actor = json!({"kind": "client", "name": "clinic"});
        let mut prev = GENESIS_PREV;
        (1..=n)
            .map(|seq| {
                let details = json!({"bytes": seq * 10});
                let body = Body {
                    v: 1,
                    seq,
                    time: "2026-11-22T05:00:00.000Z",
                    instance,
                    action: "test.event",
                    outcome: "success",
                    actor: &actor,
                    request_id: Some("r1"),
                    client_addr: Some("203.0.113.7"),
                    // Entries with and without a peer chain alike.
                    peer_addr: (seq % 2 == 0).then_some("10.0.0.2"),
                    subject: None,
                    details: &details,
                    prev: hex::encode(prev),
                };
                let (line, hash) = seal(&body).unwrap();
                prev = hash;
                line
            })
            .collect()
    }

    fn verify(lines: &[Vec<u8>]) -> Result<ChainSummary, ChainError> {
        let mut v = Verifier::new();
        for l in lines {
            v.push(l)?;
        }
        Ok(v.finish())
    }

    #[test]
    fn peer_addr_is_written_after_client_addr_only_when_present() {
        let lines = chain(2);
        let first = String::from_utf8(lines[0].clone()).unwrap();
        let second = String::from_utf8(lines[1].clone()).unwrap();
        assert!(first.contains(r#""client_addr":"203.0.113.7","subject":null"#));
        assert!(!first.contains("peer_addr"));
        assert!(
            second.contains(r#""client_addr":"203.0.113.7","peer_addr":"10.0.0.2","subject":null"#)
        );
    }

    #[test]
    fn intact_chain_verifies() {
        let lines = chain(5);
        let s = verify(&lines).unwrap();
        assert_eq!(s.length, 5);
        assert_eq!(s.head_hash, hex::encode(stored_hash(&lines[4]).unwrap()));
        assert_eq!(verify(&[]).unwrap().length, 0);
    }

    #[test]
    fn every_single_byte_change_is_detected() {
        let lines = chain(3);
        for i in 0..lines[1].len() {
            let mut t = lines.clone();
            t[1][i] ^= 0x01;
            assert!(verify(&t).is_err(), "flip at byte {i} undetected");
        }
    }

    #[test]
    fn deletion_insertion_and_reordering_are_detected() {
        let lines = chain(4);
        let mut deleted = lines.clone();
        deleted.remove(1);
        assert!(matches!(
            verify(&deleted),
            Err(ChainError::SeqGap { position: 2, .. })
        ));
        let mut inserted = lines.clone();
        inserted.insert(2, lines[1].clone());
        assert!(verify(&inserted).is_err());
        let mut swapped = lines.clone();
        swapped.swap(1, 2);
        assert!(matches!(
            verify(&swapped),
            Err(ChainError::SeqGap { position: 2, .. })
        ));
        // An entry from another chain has a valid hash and the right seq, but its prev
        // does not match: the chain catches it.
        let other = chain_for("other", 4);
        let mut spliced = lines.clone();
        spliced[2] = other[2].clone();
        assert!(matches!(
            verify(&spliced),
            Err(ChainError::PrevMismatch {
                position: 3,
                seq: 3
            })
        ));
    }
}
