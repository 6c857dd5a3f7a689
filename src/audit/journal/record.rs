//! The journal's on-disk format, `proto/audit-journal-v1.md`: segment headers and
//! length-prefixed, SHA-256-checksummed records. Pure: bytes in, typed values out, no I/O.
//!
//! A segment is a header followed by records:
//!
//! ```text
//! header   magic "SPAUDJNL" (8) | version u32 BE = 1 | reserved u32 BE = 0 | first_seq u64 BE
//! record   len u32 BE | seq u64 BE | payload (len bytes) | SHA-256(len | seq | payload) (32)
//! ```
//!
//! [`scan`] walks a segment's records and classifies what follows the last good one: the
//! clean end, zero fill (bytes the writer wrote as zeros ahead of its appends, so that a
//! record's sync overwrites blocks the file already has), a torn tail (an incomplete or checksum-failing record with nothing valid
//! after it: a write that never became durable, safe to cut), or corruption (a bad record
//! with a valid record after it: never cut, the operator runs `audit verify`).

use sha2::{Digest, Sha256};

/// The segment magic.
pub const MAGIC: [u8; 8] = *b"SPAUDJNL";
/// The format version this code reads and writes.
pub const VERSION: u32 = 1;
/// Bytes in a segment header.
pub const HEADER_LEN: usize = 24;
/// Bytes a record adds to its payload: length, sequence number, checksum.
pub const RECORD_OVERHEAD: usize = 4 + 8 + 32;
/// The largest payload a record may carry (audit entries are a few hundred bytes; a
/// garbage length never makes a reader allocate more than this).
pub const MAX_PAYLOAD: usize = 1 << 20;

/// A segment header: the sequence number of its first record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    /// The first record's sequence number (the segment file is named by it).
    pub first_seq: u64,
}

/// Why a segment header was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// Fewer than [`HEADER_LEN`] bytes.
    #[error("segment header is incomplete ({0} of {HEADER_LEN} bytes)")]
    Short(usize),
    /// Not a journal segment.
    #[error("not an audit journal segment (bad magic)")]
    Magic,
    /// A version this code does not read.
    #[error("unsupported audit journal version {0}")]
    Version(u32),
    /// Reserved bits set, or a first sequence number of 0.
    #[error("malformed segment header")]
    Malformed,
}

impl SegmentHeader {
    /// The header's bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0; HEADER_LEN];
        out[..8].copy_from_slice(&MAGIC);
        out[8..12].copy_from_slice(&VERSION.to_be_bytes());
        out[16..24].copy_from_slice(&self.first_seq.to_be_bytes());
        out
    }

    /// Parses the header at the start of `buf`.
    pub fn decode(buf: &[u8]) -> Result<Self, HeaderError> {
        let Some(h) = buf.get(..HEADER_LEN) else {
            return Err(HeaderError::Short(buf.len()));
        };
        if h[..8] != MAGIC {
            return Err(HeaderError::Magic);
        }
        let version = be_u32(&h[8..12]);
        if version != VERSION {
            return Err(HeaderError::Version(version));
        }
        let first_seq = be_u64(&h[16..24]);
        if be_u32(&h[12..16]) != 0 || first_seq == 0 {
            return Err(HeaderError::Malformed);
        }
        Ok(Self { first_seq })
    }
}

/// Appends the record for entry `seq` with `payload` to `out`. The payload must be at
/// most [`MAX_PAYLOAD`] bytes (the journal refuses larger entries before encoding; a
/// larger one would encode a record every reader refuses).
pub fn encode_record(seq: u64, payload: &[u8], out: &mut Vec<u8>) {
    // The cast is exact: payloads are at most MAX_PAYLOAD (1 MiB), checked by callers.
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    let start = out.len();
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(payload);
    let sum = Sha256::digest(&out[start..]);
    out.extend_from_slice(&sum);
}

/// One record decoded from the front of a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A whole, valid record, `len` bytes long in the buffer.
    Record {
        /// Its sequence number.
        seq: u64,
        /// Its payload.
        payload: &'a [u8],
        /// Its encoded length.
        len: usize,
    },
    /// The buffer ends inside a record (or is empty): more bytes may complete it.
    Incomplete,
    /// Not a valid record: its length is over [`MAX_PAYLOAD`] or its checksum fails.
    Bad,
}

/// Decodes the record at the front of `buf`.
pub fn decode_record(buf: &[u8]) -> Decoded<'_> {
    let Some(prefix) = buf.get(..12) else {
        return Decoded::Incomplete;
    };
    let len = be_u32(&prefix[..4]) as usize;
    if len > MAX_PAYLOAD {
        return Decoded::Bad;
    }
    let total = RECORD_OVERHEAD + len;
    let Some(rec) = buf.get(..total) else {
        return Decoded::Incomplete;
    };
    let (body, sum) = rec.split_at(12 + len);
    if Sha256::digest(body).as_slice() != sum {
        return Decoded::Bad;
    }
    Decoded::Record {
        seq: be_u64(&prefix[4..12]),
        payload: &body[12..],
        len: total,
    }
}

/// Where a record sits in a scanned buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordAt {
    /// Its sequence number.
    pub seq: u64,
    /// Offset of the record (its length field) in the buffer.
    pub offset: usize,
    /// Its encoded length.
    pub len: usize,
}

impl RecordAt {
    /// The record's payload within `buf`, the buffer it was scanned from.
    pub fn payload<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        &buf[self.offset + 12..self.offset + self.len - 32]
    }
}

/// What follows the last good record of a scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tail {
    /// The buffer ends right after the last record.
    Clean,
    /// Only zero bytes follow the last record: the writer's zero fill, not yet used. A
    /// clean end for the live journal's last segment; no other segment has any.
    ZeroFill {
        /// How many zero bytes follow the last good record.
        bytes: usize,
    },
    /// `bytes` of an incomplete or invalid record with nothing valid after them.
    Torn {
        /// How many bytes follow the last good record.
        bytes: usize,
    },
    /// A record that is invalid or out of sequence at `offset`, with a valid record after
    /// it (or out of sequence itself): not a torn write.
    Corrupt {
        /// Where the bad record starts.
        offset: usize,
        /// The sequence number that was expected there.
        expected: u64,
    },
}

/// The records of a buffer (records only, the segment header stripped), and its tail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    /// The valid records, in order, numbered `first_seq..`.
    pub records: Vec<RecordAt>,
    /// Offset just past the last valid record.
    pub end: usize,
    /// What follows it.
    pub tail: Tail,
}

/// Scans `buf` (a run of records) whose first record must be `first_seq`.
pub fn scan(buf: &[u8], first_seq: u64) -> Scan {
    let mut records = Vec::new();
    let mut at = 0;
    let mut expected = first_seq;
    loop {
        match decode_record(&buf[at..]) {
            Decoded::Record { seq, len, .. } if seq == expected => {
                records.push(RecordAt {
                    seq,
                    offset: at,
                    len,
                });
                at += len;
                expected += 1;
            }
            // A valid record with the wrong number is never a torn write.
            Decoded::Record { .. } => {
                let tail = Tail::Corrupt {
                    offset: at,
                    expected,
                };
                return Scan {
                    records,
                    end: at,
                    tail,
                };
            }
            Decoded::Incomplete | Decoded::Bad => {
                let rest = &buf[at..];
                let tail = if rest.is_empty() {
                    Tail::Clean
                } else if is_zero_fill(rest) {
                    Tail::ZeroFill { bytes: rest.len() }
                } else if valid_record_after(rest, expected) {
                    Tail::Corrupt {
                        offset: at,
                        expected,
                    }
                } else {
                    Tail::Torn { bytes: rest.len() }
                };
                return Scan {
                    records,
                    end: at,
                    tail,
                };
            }
        }
    }
}

/// Whether `rest` is all zero bytes: the end of the records. A record of zeros is never
/// valid (its checksum is not zero, and sequence numbers start at 1).
pub fn is_zero_fill(rest: &[u8]) -> bool {
    rest.iter().all(|&b| b == 0)
}

/// Whether a valid record numbered after `expected` starts anywhere in `rest` past its
/// first byte: then the bad bytes before it are damage, not an unfinished write.
fn valid_record_after(rest: &[u8], expected: u64) -> bool {
    let most = (rest.len() / RECORD_OVERHEAD) as u64;
    (1..rest.len().saturating_sub(RECORD_OVERHEAD - 1)).any(|i| {
        let Some(seq) = rest.get(i + 4..i + 12).map(be_u64) else {
            return false;
        };
        seq > expected
            && seq <= expected.saturating_add(most)
            && matches!(decode_record(&rest[i..]), Decoded::Record { .. })
    })
}

fn be_u32(b: &[u8]) -> u32 {
    let mut a = [0; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_be_bytes(a)
}

fn be_u64(b: &[u8]) -> u64 {
    let mut a = [0; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_be_bytes(a)
}

#[cfg(test)]
mod tests;
