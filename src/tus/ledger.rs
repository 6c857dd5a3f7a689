//! The chunk ledger: one [`ChunkEntry`] per accepted PATCH, and the [`LedgerDocument`]
//! served as `GET {base}{id}/ledger`.
//!
//! An entry records where a chunk sits (`offset`, `length`), its SHA-256 (64 lowercase hex
//! digits), when it was accepted (RFC 3339, UTC, seconds), by whom, and — when the client
//! sent `Upload-Checksum` — which algorithm verified it. Entries of one upload are
//! contiguous: indices `0, 1, 2…`, each offset the previous offset plus length, the first at
//! offset 0, the last ending at the upload's offset. Zero-length PATCHes make no entry.
//!
//! A final (concatenated) upload has no chunks of its own. Its document lists its parts in
//! concatenation order, each with its length, whole-part SHA-256 and its own entries, copied
//! when the final was created (so the final's ledger survives deleting a part). The final's
//! `sha256` is the SHA-256 of the concatenated plaintext. SHA-256 digests cannot be combined
//! from the parts' digests, so the server computes it at concatenation time by reading each
//! part's plaintext in order through a single hasher.
//!
//! `proto/upload-v1.md` is the normative description; `proto/vectors/upload-v1/ledger.json`
//! is a golden document.
//!
//! Not here: where entries are stored (`upload::store` keeps them in the `StateStore`) and
//! the audit events that repeat them.

use crate::tus::checksum::ChecksumAlgorithm;
use crate::tus::dates::Timestamp;
use crate::tus::record::{ConcatKind, Sha256Digest, UploadId, UploadRecord};

/// The ledger document format version.
pub const LEDGER_VERSION: u32 = 1;

/// One accepted chunk.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChunkEntry {
    /// 0 for the upload's first chunk, then +1.
    pub index: u64,
    /// Where the chunk starts in the upload.
    pub offset: u64,
    /// Its length in bytes (never 0).
    pub length: u64,
    /// SHA-256 of its bytes.
    pub sha256: Sha256Digest,
    /// When it was accepted (after fsync).
    pub time: Timestamp,
    /// The principal whose PATCH carried it.
    pub principal: String,
    /// The client's checksum algorithm, when it declared one and it matched.
    pub checksum_verified: Option<ChecksumAlgorithm>,
}

/// A part of a final upload, as copied into the final's ledger.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartLedger {
    /// The partial upload's id.
    pub upload: UploadId,
    /// Its length.
    pub length: u64,
    /// SHA-256 of its whole plaintext.
    pub sha256: Sha256Digest,
    /// Its chunk entries.
    pub chunks: Vec<ChunkEntry>,
}

/// The `GET {base}{id}/ledger` document.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerDocument {
    /// Format version ([`LEDGER_VERSION`]).
    pub v: u32,
    /// The upload.
    pub upload: UploadId,
    /// The upload's concatenation role.
    pub concat: LedgerConcat,
    /// Declared length; `null` while deferred.
    pub length: Option<u64>,
    /// Bytes received.
    pub offset: u64,
    /// Whether complete.
    pub complete: bool,
    /// SHA-256 of the whole plaintext once complete, else `null`.
    pub sha256: Option<Sha256Digest>,
    /// The upload's own chunks (empty for a final upload).
    pub chunks: Vec<ChunkEntry>,
    /// A final upload's parts in order (empty otherwise).
    pub parts: Vec<PartLedger>,
}

/// The fields of a [`LedgerDocument`] before its `chunks` and `parts`, in the same order
/// (the upload engine streams a long document: this head, then the lists).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LedgerHead {
    /// Format version ([`LEDGER_VERSION`]).
    pub v: u32,
    /// The upload.
    pub upload: UploadId,
    /// The upload's concatenation role.
    pub concat: LedgerConcat,
    /// Declared length; `null` while deferred.
    pub length: Option<u64>,
    /// Bytes received.
    pub offset: u64,
    /// Whether complete.
    pub complete: bool,
    /// SHA-256 of the whole plaintext once complete, else `null`.
    pub sha256: Option<Sha256Digest>,
}

/// An upload's concatenation role, as the ledger document names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LedgerConcat {
    /// An ordinary upload.
    None,
    /// A partial upload.
    Partial,
    /// A final (concatenated) upload.
    Final,
}

/// Why entries do not form a consistent ledger (stored state is corrupt).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    /// Entry `index` is not where the previous one ended, or is out of order.
    #[error("ledger entry {index} does not continue the previous entry")]
    Gap {
        /// Position in the list.
        index: usize,
    },
    /// Entry `index` is empty.
    #[error("ledger entry {index} has length 0")]
    EmptyChunk {
        /// Position in the list.
        index: usize,
    },
    /// The entries do not add up to the upload's offset or chunk count.
    #[error("ledger entries do not add up to the upload's offset and chunk count")]
    Total,
    /// The parts do not match the final upload's record.
    #[error("ledger parts do not match the final upload")]
    Parts,
}

/// Checks that `entries` are contiguous from offset 0 and end at `offset`.
pub fn check_chain(entries: &[ChunkEntry], offset: u64) -> Result<(), LedgerError> {
    let mut next = 0u64;
    for (i, e) in entries.iter().enumerate() {
        if e.index != i as u64 || e.offset != next {
            return Err(LedgerError::Gap { index: i });
        }
        if e.length == 0 {
            return Err(LedgerError::EmptyChunk { index: i });
        }
        next = next.checked_add(e.length).ok_or(LedgerError::Total)?;
    }
    if next == offset {
        Ok(())
    } else {
        Err(LedgerError::Total)
    }
}

impl PartLedger {
    /// A part's ledger from its (complete, partial) record and entries.
    pub fn from_part(record: &UploadRecord, chunks: Vec<ChunkEntry>) -> Result<Self, LedgerError> {
        let (Some(length), Some(sha256)) = (record.length, record.sha256) else {
            return Err(LedgerError::Parts);
        };
        if record.concat != ConcatKind::Partial || chunks.len() as u64 != record.chunks {
            return Err(LedgerError::Parts);
        }
        check_chain(&chunks, length)?;
        Ok(Self {
            upload: record.id,
            length,
            sha256,
            chunks,
        })
    }
}

impl LedgerHead {
    /// The head for `record`, after checking that `parts` agree with it (a final upload's
    /// parts in its order adding up to its length; no parts otherwise). The streaming
    /// writer checks the chunk entries as it reads them.
    pub fn new(record: &UploadRecord, parts: &[PartLedger]) -> Result<Self, LedgerError> {
        let concat = match &record.concat {
            ConcatKind::Final { parts: ids } => {
                let same_ids = ids.len() == parts.len()
                    && ids.iter().zip(parts).all(|(id, p)| *id == p.upload);
                let total = parts
                    .iter()
                    .try_fold(0u64, |acc, p| acc.checked_add(p.length));
                if !same_ids || record.chunks != 0 || total != record.length {
                    return Err(LedgerError::Parts);
                }
                LedgerConcat::Final
            }
            _ if !parts.is_empty() => return Err(LedgerError::Parts),
            ConcatKind::Partial => LedgerConcat::Partial,
            ConcatKind::None => LedgerConcat::None,
        };
        Ok(Self {
            v: LEDGER_VERSION,
            upload: record.id,
            concat,
            length: record.length,
            offset: record.offset,
            complete: record.is_complete(),
            sha256: record.sha256,
        })
    }
}

impl LedgerDocument {
    /// The document for `record`, its own `chunks` and (for a final upload) its `parts`,
    /// after checking that they agree with each other.
    pub fn build(
        record: &UploadRecord,
        chunks: Vec<ChunkEntry>,
        parts: Vec<PartLedger>,
    ) -> Result<Self, LedgerError> {
        let head = LedgerHead::new(record, &parts)?;
        if chunks.len() as u64 != record.chunks {
            return Err(LedgerError::Total);
        }
        if !record.is_final() {
            check_chain(&chunks, record.offset)?;
        }
        Ok(Self {
            v: head.v,
            upload: head.upload,
            concat: head.concat,
            length: head.length,
            offset: head.offset,
            complete: head.complete,
            sha256: head.sha256,
            chunks,
            parts,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: u64, offset: u64, length: u64) -> ChunkEntry {
        ChunkEntry {
            index,
            offset,
            length,
            sha256: Sha256Digest([index as u8; 32]),
            time: Timestamp::from_unix(1_700_000_000 + index as i64).unwrap_or(Timestamp::MIN),
            principal: "clinic-7".to_owned(),
            checksum_verified: None,
        }
    }

    #[test]
    fn chain_checks() {
        assert_eq!(check_chain(&[], 0), Ok(()));
        assert_eq!(check_chain(&[entry(0, 0, 5), entry(1, 5, 6)], 11), Ok(()));
        assert_eq!(check_chain(&[entry(0, 0, 5)], 6), Err(LedgerError::Total));
        assert_eq!(
            check_chain(&[entry(0, 0, 5), entry(1, 6, 5)], 11),
            Err(LedgerError::Gap { index: 1 })
        );
        assert_eq!(
            check_chain(&[entry(1, 0, 5)], 5),
            Err(LedgerError::Gap { index: 0 })
        );
        assert_eq!(
            check_chain(&[entry(0, 0, 0)], 0),
            Err(LedgerError::EmptyChunk { index: 0 })
        );
        assert_eq!(
            check_chain(&[entry(0, 0, u64::MAX), entry(1, u64::MAX, 1)], 0),
            Err(LedgerError::Total)
        );
    }

    #[test]
    fn entry_json_shape() {
        let mut e = entry(0, 0, 11);
        e.checksum_verified = Some(ChecksumAlgorithm::Sha1);
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["sha256"], hex::encode([0u8; 32]));
        assert_eq!(json["time"], "2023-11-14T22:13:20Z");
        assert_eq!(json["checksum_verified"], "sha1");
        let back: ChunkEntry = serde_json::from_value(json).unwrap();
        assert_eq!(back, e);
        assert!(
            serde_json::from_str::<ChunkEntry>(
                &serde_json::to_string(&e)
                    .unwrap()
                    .replace("\"sha1\"", "\"crc32\"")
            )
            .is_err()
        );
    }
}
