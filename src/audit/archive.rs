//! Retention and archive of the audit journal: sealed segments whose newest entry is older
//! than `audit.retention` move to `audit.archive_dir`, each run closed by a signed
//! checkpoint, so verification still works across the archive and the live journal
//! (`proto/audit-journal-v1.md`, "Archive"; `docs/decisions/0005-audit-retention.md`).
//!
//! One sweep ([`sweep`]; the gateway runs it every `audit.archive_interval`, and `sallyport
//! audit archive` once):
//!
//! 1. **Plan**: the oldest sealed segments, in order, while each one's newest entry is
//!    older than the retention (a segment whose newest entry cannot be dated stops the
//!    plan: nothing is archived on a guess). Segments the archive base already covers (a
//!    run a crash interrupted) are always in the plan. The open (last) segment never is.
//! 2. **Checkpoint**: the run's last entry `L` is signed with the checkpoint key as a
//!    standard checkpoint of length `L` (`proto/audit-checkpoint-v1.md`) and written to
//!    `<archive_dir>/<L, 20 digits>.checkpoint`, `O_EXCL`, synced with its directory.
//! 3. **Base**: entry `L` is written to the journal's `archive-base` (atomically, synced):
//!    from now on the journal knows its live part starts at `L + 1`.
//! 4. **Move**, oldest first: `rename` into the archive when both are on one filesystem;
//!    otherwise copy to `<name>.tmp`, `fsync`, re-read and compare its SHA-256 with the
//!    journal's, `rename` to the final name, sync the directory, and only then unlink the
//!    journal's copy and sync the journal directory.
//!
//! Nothing leaves the journal before the checkpoint and the base are durable. A crash at
//! any step leaves a state the next sweep completes: a stray `.tmp` is removed and copied
//! again; a segment in both places is compared byte for byte (by SHA-256) and then unlinked
//! from the journal — or, if the two differ, the sweep stops and says so; segments the base
//! covers are moved whatever the retention says now; an existing checkpoint file is
//! accepted only if it is this key's signature of the same length and head.
//!
//! The caller records `audit.archived` ([`super::events::AuditArchived`]) after a sweep
//! that moved anything.
//!
//! Not here: the journal's format and its reading of an archived prefix
//! (`audit::journal`); verifying across the archive (`cli::audit::verify_cmd`).

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

use super::chain::Verifier;
use super::checkpointer::{CheckpointKey, FILE_SUFFIX, read_note};
use super::journal::Journal;
use super::journal::record::{self, HEADER_LEN, SegmentHeader, Tail};
use super::journal::segments::{self, Segment};
use super::query::Timestamp;
use crate::state::LogEntry;

pub mod read;

/// Why a sweep stopped. Whatever step it stopped at, nothing was lost and the next sweep
/// completes the run.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// A file or directory operation failed.
    #[error("audit archive: {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The journal refused a step (read-only, or not the oldest sealed segment).
    #[error("audit archive: the journal refused: {0}")]
    Journal(String),
    /// A segment or the archive is not what it must be; nothing more is moved.
    #[error("audit archive: {0}; nothing more is moved (run `sallyport audit verify --archive`)")]
    Inconsistent(String),
    /// A test asked the sweep to stop here, as if the process died.
    #[error("audit archive: stopped at {0:?} (injected)")]
    Injected(CrashPoint),
}

/// Where a test can make a sweep stop as if the process died there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    /// The checkpoint is written; the base is not.
    AfterCheckpoint,
    /// The checkpoint and the base are written; no segment has moved.
    AfterBase,
    /// The first segment's copy is in the archive; the journal still has it.
    AfterCopy,
    /// The first segment has moved; the others have not.
    AfterFirstMove,
}

/// How one sweep runs.
#[derive(Debug, Clone)]
pub struct SweepOptions {
    /// Entries older than this are archived.
    pub retention: Duration,
    /// The archive directory.
    pub archive_dir: PathBuf,
    /// "Now": the sweep archives segments whose newest entry is before `now - retention`.
    pub now: SystemTime,
    /// Report what would be archived; change nothing.
    pub dry_run: bool,
    /// Copy, verify and unlink even on one filesystem (tests of the copy path).
    pub always_copy: bool,
    /// Stop at this point as if the process died (tests).
    pub crash_at: Option<CrashPoint>,
}

impl SweepOptions {
    /// A real sweep: now, moving by rename where it can.
    pub fn new(retention: Duration, archive_dir: PathBuf) -> Self {
        Self {
            retention,
            archive_dir,
            now: SystemTime::now(),
            dry_run: false,
            always_copy: false,
            crash_at: None,
        }
    }
}

/// What a sweep archived (or, dry, would archive).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Swept {
    /// The segment file names, oldest first.
    pub segments: Vec<String>,
    /// The first entry they hold.
    pub first_seq: u64,
    /// The last entry they hold (the closing checkpoint's length).
    pub last_seq: u64,
    /// The archive directory.
    pub destination: PathBuf,
    /// The checkpoint file closing the run.
    pub checkpoint: String,
    /// `rename` or `copy` (the last segment's).
    pub method: &'static str,
    /// Nothing was changed.
    pub dry_run: bool,
}

impl Swept {
    /// The audit event recording this sweep.
    pub fn event(&self) -> super::events::AuditArchived {
        super::events::AuditArchived {
            segments: self.segments.len() as u64,
            first_seq: self.first_seq,
            last_seq: self.last_seq,
            destination: self.destination.display().to_string(),
            checkpoint: self.checkpoint.clone(),
            method: self.method,
        }
    }
}

/// One sweep of `journal` (a writer) into `opts.archive_dir`, signing with `key`. Blocking:
/// call it on a blocking thread. `Ok(None)`: nothing to archive.
pub fn sweep(
    journal: &Journal,
    key: &CheckpointKey,
    opts: &SweepOptions,
) -> Result<Option<Swept>, ArchiveError> {
    let dir = &opts.archive_dir;
    let plan = plan(journal, opts)?;
    let (Some(first), Some(last)) = (plan.first(), plan.last()) else {
        return Ok(None);
    };
    let mut swept = Swept {
        segments: plan.iter().map(|p| file_name(&p.seg)).collect(),
        first_seq: first.seg.first_seq,
        last_seq: last.last_seq,
        destination: dir.clone(),
        checkpoint: format!("{:020}{FILE_SUFFIX}", last.last_seq),
        method: if opts.always_copy { "copy" } else { "rename" },
        dry_run: opts.dry_run,
    };
    if opts.dry_run {
        return Ok(Some(swept));
    }
    create_dir(dir)?;
    remove_stray_copies(dir)?;
    if journal.base().is_none_or(|b| b.seq < last.last_seq) {
        let entry = last_entry(&last.seg, last.last_seq)?;
        let (_, head) = Verifier::anchor(&entry.bytes).map_err(|e| {
            ArchiveError::Inconsistent(format!(
                "entry {} in {} does not verify on its own ({e})",
                entry.seq,
                last.seg.path.display()
            ))
        })?;
        write_checkpoint(dir, key, last.last_seq, &head)?;
        crash(opts, CrashPoint::AfterCheckpoint)?;
        journal
            .set_base(entry)
            .map_err(|e| ArchiveError::Journal(e.to_string()))?;
        crash(opts, CrashPoint::AfterBase)?;
    }
    for (i, p) in plan.iter().enumerate() {
        swept.method = move_segment(journal, &p.seg, dir, opts)?;
        if i == 0 {
            crash(opts, CrashPoint::AfterFirstMove)?;
        }
    }
    sync_dir(dir)?;
    Ok(Some(swept))
}

/// The gateway's sweeper: every `interval`, a sweep on a blocking thread, then
/// `audit.archived` through `auditor`. A failed sweep is logged (`error`, target
/// `audit.archive`) and retried at the next interval; the audited actions go on.
pub async fn run(
    journal: Arc<Journal>,
    key: Arc<CheckpointKey>,
    auditor: super::Auditor,
    retention: crate::config::Retention,
) {
    let mut tick = tokio::time::interval(retention.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let opts = SweepOptions::new(retention.period, retention.archive_dir.clone());
        let (j, k) = (journal.clone(), key.clone());
        match tokio::task::spawn_blocking(move || sweep(&j, &k, &opts)).await {
            Ok(Ok(None)) => {}
            Ok(Ok(Some(swept))) => record(&auditor, &swept).await,
            Ok(Err(e)) => {
                tracing::error!(target: "audit.archive", error = %e, "audit archive sweep failed")
            }
            Err(e) => {
                tracing::error!(target: "audit.archive", error = %e, "audit archive sweep failed")
            }
        }
    }
}

/// Records `audit.archived` for a sweep that moved segments, and logs it.
pub async fn record(auditor: &super::Auditor, swept: &Swept) {
    tracing::info!(
        target: "audit.archive",
        segments = swept.segments.len(),
        first_seq = swept.first_seq,
        last_seq = swept.last_seq,
        destination = %swept.destination.display(),
        "archived audit journal segments"
    );
    if let Err(e) = auditor
        .emit(&super::AuditContext::system(), &swept.event())
        .await
    {
        tracing::error!(target: "audit.archive", error = %e, "audit.archived could not be recorded");
    }
}

// === the plan ===

struct Planned {
    seg: Segment,
    /// Its last entry: the one before the next segment's first.
    last_seq: u64,
}

fn plan(journal: &Journal, opts: &SweepOptions) -> Result<Vec<Planned>, ArchiveError> {
    let sealed = journal.sealed_segments();
    let base = journal.base().map_or(0, |b| b.seq);
    let next_firsts = journal_firsts(journal, &sealed);
    let cutoff = opts.now.checked_sub(opts.retention);
    let mut out = Vec::new();
    for (seg, next_first) in sealed.into_iter().zip(next_firsts) {
        let last_seq = next_first - 1;
        let due = last_seq <= base
            || match (cutoff, newest_ms(&seg)?) {
                (Some(cutoff), Some(ms)) => unix_ms(cutoff).is_some_and(|c| ms < c),
                (_, None) => {
                    tracing::warn!(
                        target: "audit.archive",
                        segment = %seg.path.display(),
                        "the newest entry of an audit journal segment has no readable time; not archiving it or anything after it"
                    );
                    false
                }
                (None, _) => false,
            };
        if !due {
            break;
        }
        out.push(Planned { seg, last_seq });
    }
    Ok(out)
}

/// For each sealed segment, the first seq of the segment after it.
fn journal_firsts(journal: &Journal, sealed: &[Segment]) -> Vec<u64> {
    let all = journal.sealed_segments_and_open();
    sealed
        .iter()
        .filter_map(|s| {
            let i = all.iter().position(|a| a.first_seq == s.first_seq)?;
            all.get(i + 1).map(|n| n.first_seq)
        })
        .collect()
}

/// The Unix milliseconds of a sealed segment's newest entry.
fn newest_ms(seg: &Segment) -> Result<Option<i64>, ArchiveError> {
    let buf = std::fs::read(&seg.path).map_err(io_at(&seg.path))?;
    let header = SegmentHeader::decode(&buf).map_err(|e| inconsistent(seg, &e.to_string()))?;
    let scan = record::scan(&buf[HEADER_LEN..], header.first_seq);
    if scan.tail != Tail::Clean {
        return Err(inconsistent(seg, "a sealed segment has a damaged tail"));
    }
    let Some(last) = scan.records.last() else {
        return Ok(None);
    };
    #[derive(serde::Deserialize)]
    struct Timed<'a> {
        time: &'a str,
    }
    Ok(
        serde_json::from_slice::<Timed<'_>>(last.payload(&buf[HEADER_LEN..]))
            .ok()
            .and_then(|t| Timestamp::entry_ms(t.time)),
    )
}

fn unix_ms(t: SystemTime) -> Option<i64> {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).ok()?;
    i64::try_from(d.as_millis()).ok()
}

/// Entry `seq`, the last record of `seg`.
fn last_entry(seg: &Segment, seq: u64) -> Result<LogEntry, ArchiveError> {
    let buf = std::fs::read(&seg.path).map_err(io_at(&seg.path))?;
    let header = SegmentHeader::decode(&buf).map_err(|e| inconsistent(seg, &e.to_string()))?;
    let scan = record::scan(&buf[HEADER_LEN..], header.first_seq);
    match scan.records.last() {
        Some(r) if r.seq == seq && scan.tail == Tail::Clean => Ok(LogEntry {
            seq,
            bytes: r.payload(&buf[HEADER_LEN..]).to_vec(),
        }),
        _ => Err(inconsistent(
            seg,
            &format!("a sealed segment must end with entry {seq}"),
        )),
    }
}

// === the steps ===

fn write_checkpoint(
    dir: &Path,
    key: &CheckpointKey,
    length: u64,
    head: &[u8; 32],
) -> Result<(), ArchiveError> {
    let path = dir.join(format!("{length:020}{FILE_SUFFIX}"));
    match super::checkpointer::write_checkpoint_file(dir, length, &key.sign(length, head)) {
        Ok(()) => Ok(()),
        // An interrupted earlier run wrote it: accept it only if it says the same.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let bytes = read_note(&path).map_err(io_at(&path))?;
            match key.verifier().verify(&bytes) {
                Ok(cp) if cp.length == length && cp.head == *head => Ok(()),
                _ => Err(ArchiveError::Inconsistent(format!(
                    "{} exists and is not this key's checkpoint of entry {length}",
                    path.display()
                ))),
            }
        }
        Err(e) => Err(ArchiveError::Io { path, source: e }),
    }
}

/// Moves one segment; returns how (`rename` or `copy`).
fn move_segment(
    journal: &Journal,
    seg: &Segment,
    dir: &Path,
    opts: &SweepOptions,
) -> Result<&'static str, ArchiveError> {
    let dest = dir.join(file_name(seg));
    let detach = |remove: &mut dyn FnMut(&Path) -> io::Result<()>| {
        journal
            .detach(seg.first_seq, remove)
            .map_err(|e| ArchiveError::Journal(e.to_string()))
    };
    if dest.exists() {
        // A copy from an interrupted run: the same bytes, or stop.
        if sha256_file(&dest)? != sha256_file(&seg.path)? {
            return Err(ArchiveError::Inconsistent(format!(
                "{} and the journal's {} differ",
                dest.display(),
                seg.path.display()
            )));
        }
        detach(&mut |p: &Path| std::fs::remove_file(p))?.map_err(io_at(&seg.path))?;
        return Ok("copy");
    }
    if !opts.always_copy {
        match detach(&mut |p: &Path| std::fs::rename(p, &dest))? {
            Ok(()) => {
                sync_dir(dir)?;
                return Ok("rename");
            }
            Err(e) if e.kind() == io::ErrorKind::CrossesDevices => {}
            Err(e) => {
                return Err(ArchiveError::Io {
                    path: dest,
                    source: e,
                });
            }
        }
    }
    let tmp = dir.join(format!("{}.tmp", file_name(seg)));
    let want = sha256_file(&seg.path)?;
    copy_synced(&seg.path, &tmp)?;
    if sha256_file(&tmp)? != want {
        let _ = std::fs::remove_file(&tmp);
        return Err(ArchiveError::Inconsistent(format!(
            "the copy of {} read back differently",
            seg.path.display()
        )));
    }
    std::fs::rename(&tmp, &dest).map_err(io_at(&dest))?;
    sync_dir(dir)?;
    crash(opts, CrashPoint::AfterCopy)?;
    detach(&mut |p: &Path| std::fs::remove_file(p))?.map_err(io_at(&seg.path))?;
    Ok("copy")
}

fn copy_synced(from: &Path, to: &Path) -> Result<(), ArchiveError> {
    let mut src = File::open(from).map_err(io_at(from))?;
    let mut dst = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(to)
        .map_err(io_at(to))?;
    io::copy(&mut src, &mut dst).map_err(io_at(to))?;
    dst.flush().map_err(io_at(to))?;
    dst.sync_all().map_err(io_at(to))
}

fn sha256_file(path: &Path) -> Result<[u8; 32], ArchiveError> {
    let mut f = File::open(path).map_err(io_at(path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0; 256 * 1024];
    loop {
        match f.read(&mut buf) {
            Ok(0) => return Ok(h.finalize().into()),
            Ok(n) => h.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(ArchiveError::Io {
                    path: path.to_owned(),
                    source: e,
                });
            }
        }
    }
}

/// Removes `*.seg.tmp` left by a copy a crash interrupted (never a final name).
fn remove_stray_copies(dir: &Path) -> Result<(), ArchiveError> {
    for entry in std::fs::read_dir(dir).map_err(io_at(dir))? {
        let path = entry.map_err(io_at(dir))?.path();
        if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.ends_with(".seg.tmp"))
        {
            std::fs::remove_file(&path).map_err(io_at(&path))?;
        }
    }
    Ok(())
}

fn create_dir(dir: &Path) -> Result<(), ArchiveError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_at(dir))
}

fn sync_dir(dir: &Path) -> Result<(), ArchiveError> {
    segments::sync_dir(dir).map_err(io_at(dir))
}

fn crash(opts: &SweepOptions, at: CrashPoint) -> Result<(), ArchiveError> {
    match opts.crash_at {
        Some(c) if c == at => Err(ArchiveError::Injected(at)),
        _ => Ok(()),
    }
}

fn file_name(seg: &Segment) -> String {
    segments::file_name(seg.first_seq)
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> ArchiveError + '_ {
    move |source| ArchiveError::Io {
        path: path.to_owned(),
        source,
    }
}

fn inconsistent(seg: &Segment, why: &str) -> ArchiveError {
    ArchiveError::Inconsistent(format!("{}: {why}", seg.path.display()))
}
