//! Moving a chain from the state-store log into the journal, once, verbatim.
//!
//! A data directory written before the journal holds its chain in the state store's log.
//! On the first start with the journal its entries are appended to the journal unchanged
//! (the same bytes, so the same hashes: checkpoints taken before stay valid), and then a
//! marker file `migrated-from-state` in the journal directory records how many entries
//! came over and the hash of the last. A start interrupted half-way resumes: the journal
//! then holds a prefix of the state log, which is checked entry by entry before the copy
//! goes on. The state-store log is left as it was (nothing is deleted) and no longer
//! grows.

use std::path::Path;

use super::Journal;
use crate::audit::chain;
use crate::audit::log::{AppendOutcome, AuditLog};
use crate::state::StateError;

/// The marker file's name in the journal directory.
pub const MARKER: &str = "migrated-from-state";

/// Copies the entries of `from` (the state-store log) that `journal` lacks, unless a
/// previous start already did. Returns how many entries were copied.
pub async fn from_state(journal: &Journal, from: &dyn AuditLog) -> Result<u64, StateError> {
    let marker = journal.dir().join(MARKER);
    if marker.exists() {
        return Ok(0);
    }
    let Some(state_head) = from.head().await? else {
        write_marker(&marker, 0, &chain::GENESIS_PREV)?;
        return Ok(0);
    };
    let have = journal.head().await?.map_or(0, |h| h.seq);
    if have > state_head.seq {
        return Err(StateError::Corrupt(format!(
            "the audit journal has {have} entries and the state-store log {} that were never migrated: two chains; run `sallyport audit verify` on each",
            state_head.seq
        )));
    }
    // What the journal already has must be the state log's prefix, byte for byte.
    let mut next = 1;
    while next <= have {
        let want = (have - next + 1).min(1000) as usize;
        let theirs = from.read(next, want).await?;
        let ours = journal.read(next, want).await?;
        if theirs.len() != want || ours != theirs {
            return Err(StateError::Corrupt(format!(
                "the audit journal and the state-store log differ at or after entry {next}; the migration cannot resume"
            )));
        }
        next += ours.len() as u64;
    }
    let mut copied = 0;
    loop {
        let page = from.read(next, 1000).await?;
        if page.is_empty() {
            break;
        }
        let bytes: Vec<Vec<u8>> = page.into_iter().map(|e| e.bytes).collect();
        match journal.append(next, &bytes).await? {
            AppendOutcome::Appended { .. } => {}
            AppendOutcome::Conflict(_) => {
                return Err(StateError::Unavailable(
                    "the audit journal changed during the migration".into(),
                ));
            }
        }
        next += bytes.len() as u64;
        copied += bytes.len() as u64;
    }
    let head = journal
        .head()
        .await?
        .ok_or_else(|| StateError::Corrupt("the migrated audit journal is empty".into()))?;
    let hash = chain::stored_hash(&head.bytes)
        .ok_or_else(|| StateError::Corrupt("the last migrated audit entry is unreadable".into()))?;
    write_marker(&marker, head.seq, &hash)?;
    tracing::info!(
        target: "audit",
        entries = copied,
        length = head.seq,
        "copied the audit chain from the state store into the journal"
    );
    Ok(copied)
}

/// Writes the marker durably: a new file, synced, and its directory synced.
fn write_marker(path: &Path, length: u64, head: &[u8; 32]) -> Result<(), StateError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let text = format!(
        "sallyport audit journal: migrated from the state-store log\nlength {length}\nhead {}\n",
        hex::encode(head)
    );
    let io = |e: std::io::Error| StateError::Unavailable(format!("{}: {e}", path.display()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    f.write_all(text.as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)?;
    if let Some(dir) = path.parent() {
        super::segments::sync_dir(dir).map_err(io)?;
    }
    Ok(())
}
