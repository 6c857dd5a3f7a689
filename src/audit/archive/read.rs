//! Reading an archive directory back, for `audit verify --archive`: its segments in
//! order, record by record, with any damage named by segment, byte offset and the entry
//! expected there. Checkpoint files are found with `checkpointer::files_in_dir`.

use std::path::{Path, PathBuf};

use crate::audit::journal::record::{self, HEADER_LEN, SegmentHeader, Tail};
use crate::audit::journal::segments;

/// One thing found while reading the archive, in order.
#[derive(Debug)]
pub enum Item<'a> {
    /// The next record's entry.
    Entry {
        /// Its sequence number (as the record says; the chain checks it).
        seq: u64,
        /// The stored entry line.
        bytes: &'a [u8],
    },
    /// A segment, or a record in it, that is not what it must be; the rest of that
    /// segment is not read.
    Damaged {
        /// The segment file.
        segment: PathBuf,
        /// The entry expected where the damage is.
        expected: u64,
        /// The byte offset in the file.
        offset: u64,
        /// What is wrong.
        why: &'static str,
    },
}

/// Feeds every archived segment's records to `visit`, oldest segment first; returns the
/// number of segments. A segment whose header is damaged is reported and skipped.
pub fn read(dir: &Path, mut visit: impl FnMut(Item<'_>)) -> std::io::Result<usize> {
    let segs = segments::list(dir)?;
    for seg in &segs {
        let buf = std::fs::read(&seg.path)?;
        let header = match SegmentHeader::decode(&buf) {
            Ok(h) if h.first_seq == seg.first_seq => h,
            Ok(_) | Err(_) => {
                visit(Item::Damaged {
                    segment: seg.path.clone(),
                    expected: seg.first_seq,
                    offset: 0,
                    why: "archived segment header damaged or not matching its name",
                });
                continue;
            }
        };
        let body = &buf[HEADER_LEN..];
        let scan = record::scan(body, header.first_seq);
        for r in &scan.records {
            visit(Item::Entry {
                seq: r.seq,
                bytes: r.payload(body),
            });
        }
        let expected = header.first_seq + scan.records.len() as u64;
        let why = match scan.tail {
            Tail::Clean => continue,
            Tail::Torn { .. } => "archived segment cut short or its last record damaged",
            // Only the live journal's last segment is zero-filled; sealing trims it.
            Tail::ZeroFill { .. } => {
                "archived segment continues with zero bytes past its last record"
            }
            Tail::Corrupt { .. } => "archived record damaged (length, checksum or sequence)",
        };
        visit(Item::Damaged {
            segment: seg.path.clone(),
            expected,
            offset: (HEADER_LEN + scan.end) as u64,
            why,
        });
    }
    Ok(segs.len())
}
