//! The journal directory: segment file names, creating segments durably, the single-writer
//! lock, and reading records sequentially from a segment file.

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::record::{self, Decoded, HEADER_LEN, MAX_PAYLOAD, RECORD_OVERHEAD, SegmentHeader};

/// Suffix of segment files.
pub const SEGMENT_SUFFIX: &str = ".seg";

/// One segment file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// The sequence number of its first record (its name).
    pub first_seq: u64,
    /// The file.
    pub path: PathBuf,
}

/// The file name of the segment whose first record is `first_seq`.
pub fn file_name(first_seq: u64) -> String {
    format!("{first_seq:020}{SEGMENT_SUFFIX}")
}

/// The segments in `dir`, by first sequence number. Other files are ignored.
pub fn list(dir: &Path) -> io::Result<Vec<Segment>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(stem) = name.strip_suffix(SEGMENT_SUFFIX) else {
            continue;
        };
        if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(first_seq) = stem.parse::<u64>() else {
            continue;
        };
        out.push(Segment {
            first_seq,
            path: entry.path(),
        });
    }
    out.sort_by_key(|s| s.first_seq);
    Ok(out)
}

/// Creates `dir` (and its parents) with mode 0700.
pub fn create_dir(dir: &Path) -> io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Takes the exclusive advisory lock on `dir` (held while the returned file is open);
/// `Ok(None)` when another process holds it.
pub fn lock_dir(dir: &Path) -> io::Result<Option<File>> {
    let f = File::open(dir)?;
    match rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(Some(f)),
        Err(e) if e == rustix::io::Errno::WOULDBLOCK => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Syncs the directory entry list of `dir` (a created or removed file survives a crash).
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Creates the segment starting at `first_seq` in `dir`: mode 0600, never over an existing
/// file, its header synced, and the directory synced. Returns it open for writing (records
/// are written at their offsets, past the header).
pub fn create(dir: &Path, first_seq: u64) -> io::Result<(Segment, File)> {
    let path = dir.join(file_name(first_seq));
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    f.write_all(&SegmentHeader { first_seq }.encode())?;
    f.sync_all()?;
    sync_dir(dir)?;
    Ok((Segment { first_seq, path }, f))
}

/// How a sequential read of a segment ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// `max` records were read (or the bound was reached).
    Full,
    /// The file ends (cleanly, inside a record still being written, or where the
    /// writer's zero fill starts).
    End,
    /// A record that is not valid or not the next in sequence.
    Bad,
}

/// Reads records from `file` at `offset`, the first of which must be `seq`, into `out`
/// until `max` records, `bound` (the last seq to return) or the end. Returns the offset
/// after the last record read and why it stopped.
pub fn read_records(
    file: &File,
    offset: u64,
    seq: u64,
    max: usize,
    bound: u64,
    out: &mut Vec<(u64, Vec<u8>)>,
) -> io::Result<(u64, Stop)> {
    let mut r = BufReader::with_capacity(256 * 1024, file);
    r.seek(SeekFrom::Start(offset))?;
    let mut at = offset;
    let mut next = seq;
    let mut buf = Vec::new();
    let mut read = 0;
    while read < max && next <= bound {
        buf.clear();
        buf.resize(12, 0);
        if !read_full(&mut r, &mut buf)? {
            return Ok((at, Stop::End));
        }
        if record::is_zero_fill(&buf) {
            // The writer's zero fill: the records end here.
            return Ok((at, Stop::End));
        }
        let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        if len > MAX_PAYLOAD {
            return Ok((at, Stop::Bad));
        }
        buf.resize(RECORD_OVERHEAD + len, 0);
        if !read_full(&mut r, &mut buf[12..])? {
            return Ok((at, Stop::End));
        }
        match record::decode_record(&buf) {
            Decoded::Record {
                seq: got, payload, ..
            } if got == next => {
                out.push((got, payload.to_vec()));
                at += buf.len() as u64;
                next += 1;
                read += 1;
            }
            _ => return Ok((at, Stop::Bad)),
        }
    }
    Ok((at, Stop::Full))
}

/// Reads the segment header of `file`.
pub fn read_header(file: &File) -> io::Result<Result<SegmentHeader, record::HeaderError>> {
    let mut h = [0; HEADER_LEN];
    let mut r = file;
    r.seek(SeekFrom::Start(0))?;
    let mut got = 0;
    while got < HEADER_LEN {
        match r.read(&mut h[got..])? {
            0 => break,
            n => got += n,
        }
    }
    Ok(SegmentHeader::decode(&h[..got]))
}

/// Fills `buf`; `false` when the file ends first (a partial record counts as the end).
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<bool> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => return Ok(false),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}
