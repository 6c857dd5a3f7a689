//! Recovery of the journal's tail when the writer opens it.

use std::path::Path;

use super::record::{self, HEADER_LEN, HeaderError, SegmentHeader, Tail};
use super::segments::{self, Segment};
use super::{Active, JournalError, open_for_write};
use crate::state::LogEntry;

/// The writer's starting point.
pub(super) struct Recovered {
    pub segments: Vec<Segment>,
    pub head: Option<LogEntry>,
    /// The sequence number of the first record (1 for a new journal).
    pub first_seq: u64,
    /// The last segment, open for writing.
    pub active: Option<Active>,
}

/// Scans the last segment, cuts a torn tail, removes a segment whose creation never
/// finished, and finds the head. Corruption is an error. `base` is the last archived
/// entry (`archive-base`), when the oldest segments were archived: the head when no live
/// segment holds a record.
pub(super) fn recover(
    dir: &Path,
    mut segs: Vec<Segment>,
    base: Option<&LogEntry>,
) -> Result<Recovered, JournalError> {
    // A journal may start after entry 1 only where an archive base says what came before.
    if let Some(first) = segs.first()
        && first.first_seq > base.map_or(0, |b| b.seq) + 1
    {
        return Err(corrupt(
            &first.path,
            format!(
                "the journal starts at seq {} but the archive base ({}) does not reach the entry before it: entries are missing",
                first.first_seq,
                base.map_or_else(|| "none".to_owned(), |b| format!("seq {}", b.seq))
            ),
        ));
    }
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| JournalError::Io { path, source }
    };
    loop {
        let Some(last) = segs.last().cloned() else {
            return Ok(Recovered {
                segments: segs,
                head: base.cloned(),
                first_seq: base.map_or(1, |b| b.seq + 1),
                active: None,
            });
        };
        let mut buf = std::fs::read(&last.path).map_err(io(&last.path))?;
        let header = match SegmentHeader::decode(&buf) {
            // The header is synced before any record is written: a short one means the
            // gateway stopped while creating this segment, and it holds nothing.
            Err(HeaderError::Short(n)) => {
                tracing::warn!(
                    target: "audit",
                    segment = %last.path.display(),
                    bytes = n,
                    "removing an audit journal segment whose creation never finished"
                );
                std::fs::remove_file(&last.path).map_err(io(&last.path))?;
                segments::sync_dir(dir).map_err(io(dir))?;
                segs.pop();
                continue;
            }
            Err(e) => return Err(corrupt(&last.path, e.to_string())),
            Ok(h) => h,
        };
        if header.first_seq != last.first_seq {
            return Err(corrupt(
                &last.path,
                format!("its header says it starts at seq {}", header.first_seq),
            ));
        }
        let scan = record::scan(&buf[HEADER_LEN..], header.first_seq);
        let end = (HEADER_LEN + scan.end) as u64;
        let mut size = end;
        match scan.tail {
            Tail::Clean => {}
            // The writer's zero fill, kept for the next appends.
            Tail::ZeroFill { bytes } => size += bytes as u64,
            Tail::Torn { bytes } => {
                tracing::warn!(
                    target: "audit",
                    segment = %last.path.display(),
                    offset = end,
                    bytes_dropped = bytes,
                    "cutting a torn record off the audit journal's tail (a write that never became durable; nothing in it was acknowledged)"
                );
                cut(&last.path, end).map_err(io(&last.path))?;
            }
            Tail::Corrupt { offset, expected } => {
                return Err(corrupt(
                    &last.path,
                    format!(
                        "record {expected} at byte {} is damaged or out of sequence and valid records follow it",
                        HEADER_LEN + offset
                    ),
                ));
            }
        }
        let head = match scan.records.last() {
            Some(r) => Some(LogEntry {
                seq: r.seq,
                bytes: r.payload(&buf[HEADER_LEN..]).to_vec(),
            }),
            None => previous_head(&segs, &last, base)?,
        };
        buf.clear();
        let file = open_for_write(&last.path).map_err(io(&last.path))?;
        return Ok(Recovered {
            first_seq: segs.first().map_or(1, |s| s.first_seq),
            segments: segs,
            head,
            active: Some(Active::new(file, end, size)),
        });
    }
}

/// The head when the last segment holds no record: the last record of the one before,
/// which was closed (so wholly durable) and must end right before `last` starts.
/// With no segment before it, the archive base must end right before `last` (or `last`
/// is the very first segment).
fn previous_head(
    segs: &[Segment],
    last: &Segment,
    base: Option<&LogEntry>,
) -> Result<Option<LogEntry>, JournalError> {
    let Some(prev) = segs.len().checked_sub(2).and_then(|i| segs.get(i)) else {
        return match base {
            Some(b) if b.seq + 1 == last.first_seq => Ok(Some(b.clone())),
            None if last.first_seq == 1 => Ok(None),
            _ => Err(corrupt(
                &last.path,
                format!(
                    "the journal starts at seq {} but the archive base ({}) does not end right before it",
                    last.first_seq,
                    base.map_or_else(|| "none".to_owned(), |b| format!("seq {}", b.seq))
                ),
            )),
        };
    };
    let buf = std::fs::read(&prev.path).map_err(|source| JournalError::Io {
        path: prev.path.clone(),
        source,
    })?;
    let header = SegmentHeader::decode(&buf).map_err(|e| corrupt(&prev.path, e.to_string()))?;
    let scan = record::scan(&buf[HEADER_LEN..], header.first_seq);
    if let Tail::ZeroFill { bytes } = scan.tail {
        // The roll to `last` did not finish sealing this segment (the writer cuts the fill
        // off before it creates the next one): finish it.
        let end = (HEADER_LEN + scan.end) as u64;
        tracing::info!(
            target: "audit",
            segment = %prev.path.display(),
            bytes,
            "cutting the zero fill off a sealed audit journal segment"
        );
        cut(&prev.path, end).map_err(|source| JournalError::Io {
            path: prev.path.clone(),
            source,
        })?;
    } else if scan.tail != Tail::Clean {
        return Err(corrupt(
            &prev.path,
            "a closed segment has a damaged tail".into(),
        ));
    }
    match scan.records.last() {
        Some(r) if r.seq + 1 == last.first_seq => Ok(Some(LogEntry {
            seq: r.seq,
            bytes: r.payload(&buf[HEADER_LEN..]).to_vec(),
        })),
        _ => Err(corrupt(
            &prev.path,
            format!(
                "it does not end right before the next segment (seq {})",
                last.first_seq
            ),
        )),
    }
}

/// Truncates the segment at `path` to `len` bytes, durably.
fn cut(path: &Path, len: u64) -> std::io::Result<()> {
    let f = std::fs::OpenOptions::new().write(true).open(path)?;
    f.set_len(len)?;
    f.sync_all()
}

fn corrupt(path: &Path, why: String) -> JournalError {
    JournalError::Corrupt {
        path: path.to_owned(),
        why,
    }
}
