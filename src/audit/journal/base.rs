//! Where the live journal starts once its oldest segments were archived: the file
//! `archive-base` in the journal directory holds the last archived entry, verbatim
//! (`proto/audit-journal-v1.md`, "Archive base").
//!
//! ```text
//! sallyport-audit-archive-base v1\n
//! <seq, decimal>\n
//! <the entry line of that seq, as stored>\n
//! ```
//!
//! The writer chains on it when no live segment holds a record yet, readers report it as
//! the head of an otherwise empty journal, and `audit verify` links the live part to it
//! (the first live entry's `prev` is its hash) and to the archive (whose last entry must be
//! these very bytes). It is written before any segment leaves the journal, replaced
//! atomically (a temporary file, `fsync`, `rename`, the directory synced) and only ever
//! moves forward.
//!
//! Not here: choosing what to archive and moving it (`audit::archive`).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::state::LogEntry;

/// The file's name in the journal directory.
pub const FILE_NAME: &str = "archive-base";
/// Its first line.
const MAGIC: &str = "sallyport-audit-archive-base v1";
/// Largest file read (an entry is at most 1 MiB).
const MAX_BYTES: u64 = (super::record::MAX_PAYLOAD + 64) as u64;

/// Reads `dir/archive-base`: `Ok(None)` when there is none, an error naming what is wrong
/// when it is malformed.
pub fn read(dir: &Path) -> Result<Option<LogEntry>, String> {
    use std::io::Read;
    let path = dir.join(FILE_NAME);
    let mut buf = Vec::new();
    match std::fs::File::open(&path) {
        Ok(f) => f
            .take(MAX_BYTES + 1)
            .read_to_end(&mut buf)
            .map_err(|e| format!("{}: {e}", path.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    parse(&buf)
        .map(Some)
        .map_err(|why| format!("{}: {why}", path.display()))
}

/// Parses the file's bytes.
pub fn parse(buf: &[u8]) -> Result<LogEntry, &'static str> {
    if buf.len() as u64 > MAX_BYTES {
        return Err("too large");
    }
    let text = buf
        .strip_suffix(b"\n")
        .ok_or("does not end with a newline")?;
    let mut parts = text.splitn(3, |b| *b == b'\n');
    if parts.next() != Some(MAGIC.as_bytes()) {
        return Err("not an archive base (bad first line)");
    }
    let seq = parts
        .next()
        .and_then(|s| std::str::from_utf8(s).ok())
        .filter(|s| !s.starts_with('0') && s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or("bad sequence number")?;
    let bytes = parts.next().ok_or("no entry line")?;
    if bytes.is_empty() || bytes.contains(&b'\n') {
        return Err("bad entry line");
    }
    Ok(LogEntry {
        seq,
        bytes: bytes.to_vec(),
    })
}

/// The file's bytes for `entry`.
pub fn encode(entry: &LogEntry) -> Vec<u8> {
    let mut out = format!("{MAGIC}\n{}\n", entry.seq).into_bytes();
    out.extend_from_slice(&entry.bytes);
    out.push(b'\n');
    out
}

/// Replaces `dir/archive-base` with `entry`, durably and atomically.
pub fn write(dir: &Path, entry: &LogEntry) -> std::io::Result<()> {
    let tmp = dir.join(format!("{FILE_NAME}.tmp"));
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(&encode(entry))?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, dir.join(FILE_NAME))?;
    super::segments::sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_what_is_not_a_base() {
        let e = LogEntry {
            seq: 42,
            bytes: br#"{"seq":42}"#.to_vec(),
        };
        assert_eq!(parse(&encode(&e)), Ok(e.clone()));
        let good = encode(&e);
        // Every strict prefix is refused (a torn write never reads as another base).
        for n in 0..good.len() {
            assert!(parse(&good[..n]).is_err(), "prefix {n}");
        }
        for bad in [
            &b"sallyport-audit-archive-base v2\n42\n{}\n"[..],
            b"sallyport-audit-archive-base v1\n042\n{}\n",
            b"sallyport-audit-archive-base v1\n0\n{}\n",
            b"sallyport-audit-archive-base v1\n4x\n{}\n",
            b"sallyport-audit-archive-base v1\n42\n\n",
            b"sallyport-audit-archive-base v1\n42\n{}\n{}\n",
        ] {
            assert!(parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()), Ok(None));
        write(dir.path(), &e).unwrap();
        assert_eq!(read(dir.path()), Ok(Some(e)));
        assert!(!dir.path().join("archive-base.tmp").exists());
    }
}
