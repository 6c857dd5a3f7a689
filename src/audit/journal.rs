//! The audit journal: the chain in append-only segment files of this gateway, with group
//! commit. An [`AuditLog`] adapter.
//!
//! Layout (`proto/audit-journal-v1.md`): a directory `<data_dir>/audit/<log>/` (mode 0700)
//! of segment files (mode 0600) named by the sequence number of their first record,
//! `00000000000000000001.seg`, each a header and length-prefixed, SHA-256-checksummed
//! records ([`record`]). A segment is closed once it would pass `audit.segment_bytes`;
//! the next is created with its header synced and the directory synced.
//!
//! **Group commit.** [`AuditLog::append`] writes a whole batch with one `write` and makes
//! it durable with one `fdatasync`, on a blocking thread; the audit writer
//! ([`super::Auditor`]) hands it everything that queued up while the previous sync ran, so
//! under load one sync covers many entries. An append returns only once its batch is
//! durable, so `emit` still returns only after the entry is on disk.
//!
//! **Zero fill.** A sync that grows the file costs about twice one that overwrites blocks
//! the file already has (ext4 commits the new size and block map in its own journal:
//! ~200 against ~95 µs for a 4 KiB `O_DSYNC` write on the dev machine). So the writer
//! keeps up to [`DEFAULT_ZERO_FILL`] bytes of zeros written and synced ahead of its appends
//! in the open segment, refilled (one write and one `fdatasync`) once less than a quarter
//! is left, and writes each batch at its offset over them. Twelve zero bytes where a record
//! would start end the records (a record of zeros is never valid); recovery keeps a
//! tail of zeros, and sealing a segment cuts its fill off, so only the open segment ever
//! has one.
//!
//! **Recovery** at [`Journal::open`]: the last segment is scanned; a torn tail (an
//! incomplete or checksum-failing record with nothing valid after it: a write whose sync
//! never returned, so nothing in it was acknowledged) is cut off with a warning naming the
//! bytes dropped. A bad record *before* a valid one is corruption: the journal refuses to
//! open and says so (the operator runs `sallyport audit verify`). A segment whose header
//! was never completed (a crash while creating it) holds no record and is removed.
//!
//! **One writer.** The writer holds an exclusive advisory lock (`flock`) on the directory:
//! a second gateway on the same data directory fails to start with a clear error. Readers
//! ([`Journal::open_read_only`]: `audit verify|export|ship`) take no lock, never write, and
//! stop at the last complete record, so they run beside a live gateway.
//!
//! **Archived prefix.** Once the oldest sealed segments were archived (`audit::archive`),
//! the journal's first segment starts after seq 1 and the file [`base`] holds the last
//! archived entry. The writer chains on it when no live segment holds a record, readers
//! and [`AuditLog::head`] report it as the head of an otherwise empty journal, and a read
//! from before the live start returns the live entries from [`Journal::first_live_seq`]
//! on: the missing prefix is archived, not corruption.
//!
//! Not here: the chain and its hashes (the payloads are chain entries, stored verbatim).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

pub mod base;
pub mod migrate;
pub mod record;
mod recover;
pub mod segments;

use super::log::{AppendOutcome, AuditLog, LogEntry};
use crate::state::StateError;
use record::{HEADER_LEN, MAX_PAYLOAD};
use segments::{Segment, Stop};

/// The default size at which a segment is closed and the next one started.
pub const DEFAULT_SEGMENT_BYTES: u64 = 64 * 1024 * 1024;

/// Bytes of zeros the writer keeps written ahead of its appends (see the module docs).
pub const DEFAULT_ZERO_FILL: u64 = 1024 * 1024;

/// The most entries one read returns (as the state-store log).
const READ_MAX: usize = 10_000;

/// Why the journal could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// A file or directory operation failed.
    #[error("audit journal {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Another process (a running gateway) writes this journal.
    #[error(
        "the audit journal {0} is in use by another process (another gateway on the same data directory?)"
    )]
    Locked(PathBuf),
    /// A record that is not a torn tail is damaged: the journal is not opened for writing.
    #[error(
        "the audit journal {path} is corrupt: {why}; refusing to start (run `sallyport audit verify` to locate the damage)"
    )]
    Corrupt {
        /// The segment file.
        path: PathBuf,
        /// What is wrong, and where.
        why: String,
    },
}

/// Counters of the journal's work (for benchmarks and tests).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct JournalStats {
    /// Appends (batches) made durable.
    pub appends: u64,
    /// Entries appended.
    pub entries: u64,
    /// `fdatasync` / `fsync` calls made by appends (one per batch, plus segment creation).
    pub syncs: u64,
    /// Record bytes written.
    pub bytes: u64,
    /// Zero fill written ahead of the appends, and cut off when a segment was sealed:
    /// one `fdatasync` each.
    pub fills: u64,
}

#[derive(Debug, Default)]
struct Counters {
    appends: AtomicU64,
    entries: AtomicU64,
    syncs: AtomicU64,
    bytes: AtomicU64,
    fills: AtomicU64,
}

/// The audit chain in segment files. See the module docs.
#[derive(Debug)]
pub struct Journal {
    name: String,
    dir: PathBuf,
    inner: Arc<Mutex<Inner>>,
    counters: Arc<Counters>,
    /// The directory lock, held while the writer lives (`None`: read-only).
    _lock: Option<File>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    segment_bytes: u64,
    writable: bool,
    segments: Vec<Segment>,
    /// The last durable entry (the writer's; a reader's is found on demand).
    head: Option<LogEntry>,
    /// The last archived entry (`archive-base`), when a prefix was archived.
    base: Option<LogEntry>,
    /// The next sequence number.
    next: u64,
    /// The writer's open last segment.
    active: Option<Active>,
    /// Bytes of zero fill to keep ahead of the appends (0: none).
    zero_fill: u64,
    /// Where the last read stopped, so sequential readers do not rescan: (segment's
    /// first seq, next seq, offset).
    cursor: Option<(u64, u64, u64)>,
    /// Set when a failed append could not be undone: appends fail from then on.
    poisoned: Option<String>,
}

/// The writer's open last segment.
#[derive(Debug)]
struct Active {
    /// Open for writing (not appending: batches are written at `len`).
    file: File,
    /// The end of the last durable record: where the next batch goes.
    len: u64,
    /// The file's size: `len` and the zero fill after it.
    size: u64,
    /// A zero fill failed (a full disk?): none is tried again in this segment.
    no_fill: bool,
    /// Where records of this segment start, `(seq, offset)`, ascending: one at least every
    /// [`MARK_EVERY`] records appended by this process, so that a read from any recent seq
    /// decodes a few records to get there instead of the whole segment (the indexer checks
    /// one entry per wake; queries page from anywhere).
    marks: Vec<(u64, u64)>,
}

/// Records between two read marks of the active segment (see `Active::marks`).
const MARK_EVERY: u64 = 64;

impl Active {
    fn new(file: File, len: u64, size: u64) -> Self {
        Self {
            file,
            len,
            size,
            no_fill: false,
            marks: Vec::new(),
        }
    }

    /// Notes that record `seq` starts at `offset` (a durable record boundary), when it is
    /// far enough past the last mark.
    fn mark(&mut self, seq: u64, offset: u64) {
        if self.marks.last().is_none_or(|(s, _)| seq >= s + MARK_EVERY) {
            self.marks.push((seq, offset));
        }
    }

    /// The last mark at or before `seq`.
    fn mark_before(&self, seq: u64) -> Option<(u64, u64)> {
        let i = self.marks.partition_point(|(s, _)| *s <= seq);
        i.checked_sub(1).map(|i| self.marks[i])
    }
}

impl Journal {
    /// Opens (creating it if needed) the journal named `name` in `dir` for writing:
    /// takes the directory lock and recovers the tail (see the module docs).
    pub fn open(dir: &Path, name: &str, segment_bytes: u64) -> Result<Self, JournalError> {
        let io = |source| JournalError::Io {
            path: dir.to_owned(),
            source,
        };
        segments::create_dir(dir).map_err(io)?;
        let lock = segments::lock_dir(dir)
            .map_err(io)?
            .ok_or_else(|| JournalError::Locked(dir.to_owned()))?;
        let found = segments::list(dir).map_err(io)?;
        let base = read_base(dir)?;
        let r = recover::recover(dir, found, base.as_ref())?;
        let next = r.head.as_ref().map_or(r.first_seq, |h| h.seq + 1);
        let inner = Inner {
            dir: dir.to_owned(),
            segment_bytes: segment_bytes.max(HEADER_LEN as u64 + 1),
            writable: true,
            segments: r.segments,
            head: r.head,
            base,
            next,
            active: r.active,
            zero_fill: DEFAULT_ZERO_FILL,
            cursor: None,
            poisoned: None,
        };
        Ok(Self {
            name: name.to_owned(),
            dir: dir.to_owned(),
            inner: Arc::new(Mutex::new(inner)),
            counters: Arc::default(),
            _lock: Some(lock),
        })
    }

    /// Opens the journal in `dir` for reading only: no lock, no recovery, no writes; reads
    /// stop at the last complete record (a live writer may be appending).
    pub fn open_read_only(dir: &Path, name: &str) -> Result<Self, JournalError> {
        let segments = segments::list(dir).map_err(|source| JournalError::Io {
            path: dir.to_owned(),
            source,
        })?;
        let base = read_base(dir)?;
        let inner = Inner {
            dir: dir.to_owned(),
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            writable: false,
            segments,
            head: None,
            base,
            next: 1,
            active: None,
            zero_fill: 0,
            cursor: None,
            poisoned: None,
        };
        Ok(Self {
            name: name.to_owned(),
            dir: dir.to_owned(),
            inner: Arc::new(Mutex::new(inner)),
            counters: Arc::default(),
            _lock: None,
        })
    }

    /// Sets how many bytes of zeros the writer keeps ahead of its appends (0: none; the
    /// default is [`DEFAULT_ZERO_FILL`]). A fill already written stays.
    pub fn set_zero_fill(&self, bytes: u64) {
        self.lock().zero_fill = bytes;
    }

    /// The journal's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The last archived entry, when the journal's oldest segments were archived.
    pub fn base(&self) -> Option<LogEntry> {
        self.lock().base.clone()
    }

    /// The sequence number of the first entry the live journal holds or will hold: 1, or
    /// the one after the last archived entry. Read-only journals look at the directory
    /// again (a writer may have archived since).
    pub fn first_live_seq(&self) -> Result<u64, JournalError> {
        let mut inner = self.lock();
        if !inner.writable {
            inner.segments = segments::list(&self.dir).map_err(|source| JournalError::Io {
                path: self.dir.clone(),
                source,
            })?;
            inner.base = read_base(&self.dir)?;
        }
        Ok(inner.first_live_seq())
    }

    /// The segments before the writer's open one, oldest first (what may be archived).
    pub fn sealed_segments(&self) -> Vec<Segment> {
        let inner = self.lock();
        let n = inner.segments.len().saturating_sub(1);
        inner.segments[..n].to_vec()
    }

    /// Records `entry` as the last archived entry: written durably to [`base`] first,
    /// then used. Only a writer may, and only forward.
    pub fn set_base(&self, entry: LogEntry) -> Result<(), StateError> {
        let mut inner = self.lock();
        if !inner.writable {
            return Err(StateError::Invalid(
                "the audit journal was opened read-only",
            ));
        }
        if inner.base.as_ref().is_some_and(|b| b.seq > entry.seq) {
            return Err(StateError::Invalid(
                "the archive base of the audit journal only moves forward",
            ));
        }
        base::write(&inner.dir, &entry).map_err(unavailable)?;
        inner.base = Some(entry);
        Ok(())
    }

    /// Every segment, oldest first (the last is the writer's open one).
    pub fn sealed_segments_and_open(&self) -> Vec<Segment> {
        self.lock().segments.clone()
    }

    /// Takes the oldest sealed segment, `first_seq`, out of the journal: it is dropped
    /// from the writer's list, then `remove` (a rename into the archive, or the unlink of
    /// a verified copy) runs while no read can be in it, and the directory is synced.
    /// Refused (`Err`) for any other segment, the open one, or one the archive base does
    /// not cover; `Ok(Err)` when `remove` failed (the segment stays in the journal).
    pub fn detach(
        &self,
        first_seq: u64,
        remove: &mut dyn FnMut(&Path) -> std::io::Result<()>,
    ) -> Result<std::io::Result<()>, StateError> {
        let mut inner = self.lock();
        let covered = match (inner.segments.first(), inner.segments.get(1), &inner.base) {
            (Some(first), Some(next), Some(base)) => {
                first.first_seq == first_seq && base.seq + 1 >= next.first_seq
            }
            _ => false,
        };
        if !inner.writable || !covered {
            return Err(StateError::Invalid(
                "only the oldest sealed segment, covered by the archive base, may leave the journal",
            ));
        }
        let seg = inner.segments.remove(0);
        inner.cursor = None;
        if let Err(e) = remove(&seg.path) {
            inner.segments.insert(0, seg);
            return Ok(Err(e));
        }
        Ok(segments::sync_dir(&inner.dir))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // See `blocking`: a panic under the lock leaves nothing half-applied we rely on.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What the journal has done since it was opened.
    pub fn stats(&self) -> JournalStats {
        let c = &self.counters;
        JournalStats {
            appends: c.appends.load(Ordering::Relaxed),
            entries: c.entries.load(Ordering::Relaxed),
            syncs: c.syncs.load(Ordering::Relaxed),
            bytes: c.bytes.load(Ordering::Relaxed),
            fills: c.fills.load(Ordering::Relaxed),
        }
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Inner) -> Result<T, StateError> + Send + 'static,
    ) -> Result<T, StateError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            // A panic while the lock was held leaves no half-applied state we rely on:
            // `next`/`head` are only updated after a successful sync.
            let mut g = inner.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut g)
        })
        .await
        .map_err(|e| StateError::Unavailable(format!("audit journal task failed: {e}")))?
    }
}

#[async_trait]
impl AuditLog for Journal {
    fn name(&self) -> &str {
        &self.name
    }

    async fn head(&self) -> Result<Option<LogEntry>, StateError> {
        self.blocking(|inner| {
            if inner.writable {
                return Ok(inner.head.clone());
            }
            inner.refresh_head()
        })
        .await
    }

    async fn append(
        &self,
        expected_next: u64,
        entries: &[Vec<u8>],
    ) -> Result<AppendOutcome, StateError> {
        if entries.is_empty() {
            return Err(StateError::Invalid(
                "an audit append needs at least one entry",
            ));
        }
        if entries.iter().any(|e| e.len() > MAX_PAYLOAD) {
            return Err(StateError::Invalid("an audit entry is larger than 1 MiB"));
        }
        let entries = entries.to_vec();
        let counters = self.counters.clone();
        self.blocking(move |inner| inner.append(expected_next, &entries, &counters))
            .await
    }

    async fn read(&self, from: u64, limit: usize) -> Result<Vec<LogEntry>, StateError> {
        if limit > READ_MAX {
            return Err(StateError::Invalid(
                "an audit read may return at most 10000 entries",
            ));
        }
        self.blocking(move |inner| inner.read(from.max(1), limit))
            .await
    }

    async fn first_seq(&self) -> Result<u64, StateError> {
        let dir = self.dir.clone();
        self.blocking(move |inner| {
            if !inner.writable {
                inner.segments = segments::list(&dir).map_err(unavailable)?;
                inner.base = read_base(&dir).map_err(|e| StateError::Corrupt(e.to_string()))?;
            }
            Ok(inner.first_live_seq())
        })
        .await
    }

    async fn archive_base(&self) -> Result<Option<LogEntry>, StateError> {
        let first = AuditLog::first_seq(self).await?;
        self.blocking(move |inner| {
            Ok(inner
                .base
                .clone()
                .filter(|b| first > 1 && b.seq + 1 >= first))
        })
        .await
    }
}

// === impl Inner ===

impl Inner {
    fn append(
        &mut self,
        expected_next: u64,
        entries: &[Vec<u8>],
        counters: &Counters,
    ) -> Result<AppendOutcome, StateError> {
        if !self.writable {
            return Err(StateError::Invalid(
                "the audit journal was opened read-only",
            ));
        }
        if let Some(why) = &self.poisoned {
            return Err(StateError::Unavailable(why.clone()));
        }
        if expected_next != self.next {
            return Ok(AppendOutcome::Conflict(self.head.clone()));
        }
        let mut buf = Vec::with_capacity(entries.iter().map(|e| e.len() + 64).sum());
        for (i, e) in entries.iter().enumerate() {
            record::encode_record(self.next + i as u64, e, &mut buf);
        }
        let mut syncs = 0;
        let must_roll = match &self.active {
            None => true,
            Some(a) => a.len > HEADER_LEN as u64 && a.len + buf.len() as u64 > self.segment_bytes,
        };
        if must_roll {
            if let Some(a) = self.active.take() {
                seal(a, counters).map_err(|(a, e)| {
                    self.active = Some(*a);
                    StateError::Unavailable(format!("sealing an audit journal segment: {e}"))
                })?;
            }
            let (seg, file) = segments::create(&self.dir, self.next).map_err(|e| {
                StateError::Unavailable(format!("creating an audit journal segment: {e}"))
            })?;
            syncs += 1;
            self.segments.push(seg);
            let start = HEADER_LEN as u64;
            self.active = Some(Active::new(file, start, start));
        }
        let Some(a) = self.active.as_mut() else {
            return Err(StateError::Unavailable(
                "no open audit journal segment".into(),
            ));
        };
        let written = a
            .file
            .write_all_at(&buf, a.len)
            .and_then(|()| a.file.sync_data());
        if let Err(e) = written {
            // Undo the partial write (and the fill after it) so the next append starts on
            // a record boundary; if that fails too, nothing more may be appended here.
            match a.file.set_len(a.len).and_then(|()| a.file.sync_data()) {
                Ok(()) => a.size = a.len,
                Err(undo) => {
                    self.poisoned = Some(format!(
                        "the audit journal could not undo a failed write ({e}; then {undo}); restart the gateway"
                    ));
                }
            }
            return Err(StateError::Unavailable(format!(
                "writing the audit journal: {e}"
            )));
        }
        syncs += 1;
        a.mark(self.next, a.len);
        a.len += buf.len() as u64;
        a.size = a.size.max(a.len);
        fill(a, self.zero_fill, self.segment_bytes, counters);
        let first = self.next;
        self.next += entries.len() as u64;
        self.head = entries.last().map(|bytes| LogEntry {
            seq: self.next - 1,
            bytes: bytes.clone(),
        });
        counters.appends.fetch_add(1, Ordering::Relaxed);
        counters
            .entries
            .fetch_add(entries.len() as u64, Ordering::Relaxed);
        counters.syncs.fetch_add(syncs, Ordering::Relaxed);
        counters
            .bytes
            .fetch_add(buf.len() as u64, Ordering::Relaxed);
        Ok(AppendOutcome::Appended { first })
    }

    /// 1, or the entry after the archive base (the first live segment may start there or,
    /// right after a crash mid-archive, earlier: its entries are still read).
    fn first_live_seq(&self) -> u64 {
        match (self.segments.first(), &self.base) {
            (Some(s), _) => s.first_seq,
            (None, Some(b)) => b.seq + 1,
            (None, None) => 1,
        }
    }

    fn read(&mut self, from: u64, limit: usize) -> Result<Vec<LogEntry>, StateError> {
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        if !self.writable {
            self.segments = segments::list(&self.dir).map_err(unavailable)?;
        }
        // Entries before the live start were archived: the read begins at the live start.
        let from = from.max(self.first_live_seq());
        // A writer returns only what is durable; a reader what is complete.
        let bound = if self.writable {
            self.next - 1
        } else {
            u64::MAX
        };
        if from > bound || self.segments.is_empty() {
            return Ok(out);
        }
        let mut idx = self
            .segments
            .partition_point(|s| s.first_seq <= from)
            .saturating_sub(1);
        let first_seq = self.segments[idx].first_seq;
        // The writer's own segment has marks (the active one is the last).
        let mark = match &self.active {
            Some(a) if self.writable && idx + 1 == self.segments.len() => a.mark_before(from),
            _ => None,
        };
        let (mut seq, mut offset) = match (self.cursor, mark) {
            (Some((seg, next, off)), _) if seg == first_seq && next == from => (next, off),
            (_, Some(mark)) => mark,
            _ => (first_seq, HEADER_LEN as u64),
        };
        loop {
            let seg = &self.segments[idx];
            let file = File::open(&seg.path).map_err(unavailable)?;
            if offset == HEADER_LEN as u64 {
                check_header(&file, seg)?;
            }
            let mut got = Vec::new();
            let skip = from.saturating_sub(seq) as usize;
            let max = (limit - out.len() + skip).min(4096);
            let (end, stop) = segments::read_records(&file, offset, seq, max, bound, &mut got)
                .map_err(unavailable)?;
            seq += got.len() as u64;
            offset = end;
            out.extend(
                got.into_iter()
                    .filter(|(s, _)| *s >= from)
                    .map(|(seq, bytes)| LogEntry { seq, bytes }),
            );
            if out.len() >= limit || seq > bound {
                break;
            }
            if stop == Stop::Full {
                continue;
            }
            match self.segments.get(idx + 1) {
                Some(next) if next.first_seq == seq => {
                    idx += 1;
                    offset = HEADER_LEN as u64;
                }
                Some(next) => {
                    return Err(StateError::Corrupt(format!(
                        "audit journal segment {} ends before seq {seq} but the next segment starts at {}",
                        seg.path.display(),
                        next.first_seq
                    )));
                }
                None if stop == Stop::Bad && self.writable => {
                    return Err(StateError::Corrupt(format!(
                        "audit journal segment {}: record {seq} is damaged",
                        seg.path.display()
                    )));
                }
                None => break,
            }
        }
        self.cursor = Some((self.segments[idx].first_seq, seq, offset));
        Ok(out)
    }

    /// A reader's head: the last complete record, scanning forward from where the last
    /// look stopped.
    fn refresh_head(&mut self) -> Result<Option<LogEntry>, StateError> {
        self.segments = segments::list(&self.dir).map_err(unavailable)?;
        // First look: from the last segment back to the last one holding a record.
        let mut starts: Vec<u64> = match &self.head {
            Some(h) => vec![h.seq + 1],
            None => self.segments.iter().map(|s| s.first_seq).collect(),
        };
        while let Some(mut from) = starts.pop() {
            loop {
                let page = self.read(from, READ_MAX)?;
                match page.into_iter().last() {
                    Some(last) => {
                        from = last.seq + 1;
                        self.head = Some(last);
                    }
                    None => break,
                }
            }
            if self.head.is_some() {
                break;
            }
        }
        if self.head.is_none() {
            // Nothing live yet: the head is the last archived entry.
            self.base = read_base(&self.dir).map_err(|e| StateError::Corrupt(e.to_string()))?;
            self.head = self.base.clone();
        }
        Ok(self.head.clone())
    }
}

fn check_header(file: &File, seg: &Segment) -> Result<(), StateError> {
    match segments::read_header(file).map_err(unavailable)? {
        Ok(h) if h.first_seq == seg.first_seq => Ok(()),
        Ok(h) => Err(StateError::Corrupt(format!(
            "audit journal segment {} says it starts at seq {}",
            seg.path.display(),
            h.first_seq
        ))),
        // A reader may see a segment the writer is still creating: nothing in it yet.
        Err(record::HeaderError::Short(_)) => Ok(()),
        Err(e) => Err(StateError::Corrupt(format!(
            "audit journal segment {}: {e}",
            seg.path.display()
        ))),
    }
}

fn read_base(dir: &Path) -> Result<Option<LogEntry>, JournalError> {
    base::read(dir).map_err(|why| JournalError::Corrupt {
        path: dir.join(base::FILE_NAME),
        why,
    })
}

fn unavailable(e: std::io::Error) -> StateError {
    StateError::Unavailable(format!("audit journal: {e}"))
}

/// Opens `path` for writing (the writer's last segment after recovery).
fn open_for_write(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().write(true).open(path)
}

/// Keeps the zero fill ahead of `a`'s appends: once less than a quarter of `want` bytes
/// is left, writes zeros up to `want` past the end of the records (never past
/// `segment_bytes`) and syncs them. A failure only costs speed: it is logged, and this
/// segment gets no more fill.
fn fill(a: &mut Active, want: u64, segment_bytes: u64, counters: &Counters) {
    if want == 0 || a.no_fill || a.size - a.len >= want / 4 {
        return;
    }
    let target = (a.len + want).min(segment_bytes);
    if target <= a.size {
        return;
    }
    // `size` is at or past the last record: zeros written from there overwrite none.
    let zeros = vec![0; usize::try_from(target - a.size).unwrap_or(0)];
    match a
        .file
        .write_all_at(&zeros, a.size)
        .and_then(|()| a.file.sync_data())
    {
        Ok(()) => {
            a.size = target;
            counters.fills.fetch_add(1, Ordering::Relaxed);
        }
        Err(e) => {
            // Whatever part was written is zeros past the records: harmless.
            a.no_fill = true;
            tracing::warn!(
                target: "audit",
                error = %e,
                "could not write zero fill ahead of the audit journal's appends; its syncs will be slower until the next segment"
            );
        }
    }
}

/// Cuts the zero fill off a segment the writer closes, so that a sealed segment ends at
/// its last record. Gives the segment back with the error when that fails.
fn seal(a: Active, counters: &Counters) -> Result<(), (Box<Active>, std::io::Error)> {
    if a.size == a.len {
        return Ok(());
    }
    match a.file.set_len(a.len).and_then(|()| a.file.sync_data()) {
        Ok(()) => {
            counters.fills.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
        Err(e) => Err((Box::new(a), e)),
    }
}

#[cfg(test)]
mod tests;
