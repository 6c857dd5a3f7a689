//! The audit index: a derived, rebuildable redb file (`<data_dir>/audit-index.redb`) that
//! maps what queries filter on to sequence numbers, so that a query over a million entries
//! reads the few entries it returns instead of all of them.
//!
//! **Layout** (format [`FORMAT`]; any other version, or an unreadable file, is deleted and
//! rebuilt from the chain):
//!
//! * `posting_blocks`: key `"<kind>:<value>" 0x00 <last: u64 BE>`, value a block of the
//!   sequence numbers of the entries under that key, ascending, the last of which is
//!   `last`: each as an unsigned LEB128 varint of its difference to the one before (the
//!   first: to 0). Each indexed page writes one block per key it mentions, and blocks of a
//!   key never overlap, so reading a key's blocks in key order yields its entries in order.
//!   Kinds: every id an entry mentions (`upload`, `batch`, `artifact`, `grant`, `partner`;
//!   see `query::mentions`), `principal` (an acting client's name), `client` (the client
//!   address, canonical) and `action`. (Format 1 had a row per key and entry: about seven
//!   B-tree inserts per entry, 13 % of a gateway's CPU under a stream of small downloads,
//!   whose entries share almost all their keys.)
//! * `time`: key `<t: u64 BE> <seq: u64 BE>`, where `t` is the largest entry time (Unix
//!   ms) up to and including `seq`. That running maximum never decreases along the chain,
//!   so one seek finds the first entry that can be at or after a time, even when the
//!   writers' clocks disagree a little.
//! * `meta`: `format`, `through` (the last indexed seq), `max_ms`; `bytes`: `through_hash`,
//!   the hash of entry `through`, so that a chain replaced or rewritten under the index is
//!   noticed (then the index is rebuilt).
//!
//! **It never affects the write path.** An indexer task in the gateway ([`run`]) takes
//! the entries this gateway's writer appended from a [`Tap`] (in memory, where they
//! continue the index exactly) and reads the chain through the same [`EntrySource`] as
//! queries for everything else, with `through` as its durable cursor; each page of entries
//! is indexed in one transaction together with the new cursor, so a crash leaves an index
//! that is consistent up to its cursor. A catch-up stops at the first short page (the
//! head): chasing a chain that grows under load cost one synced transaction per handful
//! of entries. When it lags or fails, queries read the index up to `through` and scan the
//! rest, and report `indexed_through`.
//!
//! Not here: choosing an index key for a query and scanning (`audit::search`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::query::Entry;
use super::query::mentions::mentions;
use super::source::{EntrySource, Tap};
use crate::state::StateError;

/// The index file's name in the data directory.
pub const FILE_NAME: &str = "audit-index.redb";
/// The layout version this code reads and writes.
pub const FORMAT: u64 = 2;
/// Entries indexed per transaction (and the tap's wake-up mark).
pub const PAGE: usize = 2000;
/// The index's page cache. redb's default (1 GiB) grows with the file, and the file grows
/// by about 330 bytes per entry: after 5 million audited downloads the gateway's RSS had
/// reached 1.2 GiB. Indexing touches only the right edge of each key range, and queries
/// read a few pages each (the kernel's page cache still holds the file), so a small cache
/// costs them little.
const CACHE_BYTES: usize = 32 * 1024 * 1024;

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const BYTES: TableDefinition<&str, &[u8]> = TableDefinition::new("bytes");
const POSTINGS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("posting_blocks");
const TIME: TableDefinition<&[u8], ()> = TableDefinition::new("time");

/// Why the index could not be used. Never fatal to a query: it falls back to scanning.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// redb failed.
    #[error("audit index: {0}")]
    Db(#[from] redb::Error),
    /// The file could not be removed for a rebuild.
    #[error("audit index {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The chain could not be read.
    #[error(transparent)]
    Source(#[from] StateError),
}

fn dberr<E: Into<redb::Error>>(e: E) -> IndexError {
    IndexError::Db(e.into())
}

/// The index file.
pub struct AuditIndex {
    db: Database,
    path: PathBuf,
}

impl std::fmt::Debug for AuditIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditIndex")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// One page of [`AuditIndex::postings`].
pub type Postings = Vec<u64>;

impl AuditIndex {
    /// Opens the index at `path`, creating it, or deleting and recreating it when it is
    /// of another format or unreadable.
    pub fn open(path: &Path) -> Result<Self, IndexError> {
        match Self::open_as_is(path) {
            Ok(Some(index)) => return Ok(index),
            Ok(None) => {
                tracing::info!(path = %path.display(), "audit index of another format: rebuilding")
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "audit index unreadable: rebuilding")
            }
        }
        Self::recreate(path)
    }

    /// Opens the file as it is; `None` when it is of another format.
    fn open_as_is(path: &Path) -> Result<Option<Self>, IndexError> {
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .map_err(dberr)?;
        let txn = db.begin_write().map_err(dberr)?;
        let format = {
            let mut meta = txn.open_table(META).map_err(dberr)?;
            txn.open_table(BYTES).map_err(dberr)?;
            txn.open_table(POSTINGS).map_err(dberr)?;
            txn.open_table(TIME).map_err(dberr)?;
            let format = meta.get("format").map_err(dberr)?.map(|g| g.value());
            if format.is_none() {
                meta.insert("format", FORMAT).map_err(dberr)?;
            }
            format
        };
        txn.commit().map_err(dberr)?;
        if format.is_some_and(|f| f != FORMAT) {
            return Ok(None);
        }
        Ok(Some(Self {
            db,
            path: path.to_owned(),
        }))
    }

    fn recreate(path: &Path) -> Result<Self, IndexError> {
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(IndexError::Io {
                    path: path.display().to_string(),
                    source,
                });
            }
        }
        Self::open_as_is(path)?.ok_or_else(|| {
            IndexError::Db(redb::Error::Corrupted(
                "fresh index has another format".into(),
            ))
        })
    }

    /// Empties the index (a rebuild from the first entry follows).
    pub fn clear(&self) -> Result<(), IndexError> {
        let txn = self.db.begin_write().map_err(dberr)?;
        txn.delete_table(POSTINGS).map_err(dberr)?;
        txn.delete_table(TIME).map_err(dberr)?;
        txn.open_table(POSTINGS).map_err(dberr)?;
        txn.open_table(TIME).map_err(dberr)?;
        {
            let mut meta = txn.open_table(META).map_err(dberr)?;
            meta.insert("through", 0).map_err(dberr)?;
            meta.insert("max_ms", 0).map_err(dberr)?;
            let mut bytes = txn.open_table(BYTES).map_err(dberr)?;
            bytes.remove("through_hash").map_err(dberr)?;
        }
        txn.commit().map_err(dberr)?;
        Ok(())
    }

    /// The last sequence number indexed (0: none).
    pub fn through(&self) -> Result<u64, IndexError> {
        self.meta("through")
    }

    fn meta(&self, key: &str) -> Result<u64, IndexError> {
        let txn = self.db.begin_read().map_err(dberr)?;
        let meta = txn.open_table(META).map_err(dberr)?;
        Ok(meta.get(key).map_err(dberr)?.map_or(0, |g| g.value()))
    }

    fn through_hash(&self) -> Result<Option<Vec<u8>>, IndexError> {
        let txn = self.db.begin_read().map_err(dberr)?;
        let t = txn.open_table(BYTES).map_err(dberr)?;
        Ok(t.get("through_hash")
            .map_err(dberr)?
            .map(|g| g.value().to_vec()))
    }

    /// Indexes what the chain holds past `through`, one transaction per page, up to the
    /// head as the first short page finds it; returns the new `through`. When the entry at
    /// `through` is no longer the one indexed (another or a rewritten chain), the index is
    /// cleared and rebuilt from the start.
    pub async fn catch_up(self: &Arc<Self>, source: &dyn EntrySource) -> Result<u64, IndexError> {
        let mut through = self.through()?;
        if through > 0 {
            let at = source.read(through, 1).await?;
            let same = match (at.first(), self.through_hash()?) {
                (Some((seq, bytes)), Some(hash)) if *seq == through => {
                    Entry::parse(bytes).is_ok_and(|e| e.hash.as_bytes() == hash.as_slice())
                }
                _ => false,
            };
            if !same {
                tracing::warn!(through, "audit index does not match the chain: rebuilding");
                let me = self.clone();
                blocking(move || me.clear()).await?;
                through = 0;
            }
        }
        loop {
            let page = source.read(through + 1, PAGE).await?;
            if page.is_empty() {
                return Ok(through);
            }
            let short = page.len() < PAGE;
            let me = self.clone();
            through = blocking(move || me.add_page(&page)).await?;
            // A short page reached the head. Reading on would chase a chain that grows
            // under load with one (synced) transaction per handful of entries; what comes
            // next arrives through the tap or at the next poll.
            if short {
                return Ok(through);
            }
        }
    }

    /// Indexes what `tap` holds where it continues the index exactly (the entries from
    /// `through + 1` on, without a gap), without reading the chain; returns the new
    /// `through`. What it cannot use is left to [`AuditIndex::catch_up`]: entries of other
    /// instances, entries the tap dropped, and the first build (an empty index starts
    /// wherever the live chain does).
    pub async fn add_tapped(self: &Arc<Self>, tap: &Tap) -> Result<u64, IndexError> {
        let mut held = tap.take();
        let through = self.through()?;
        if through == 0 {
            return Ok(through);
        }
        let Some(start) = held.iter().position(|(seq, _)| *seq == through + 1) else {
            return Ok(through);
        };
        held.drain(..start);
        let run = held
            .iter()
            .zip(through + 1..)
            .take_while(|((seq, _), want)| seq == want)
            .count();
        held.truncate(run);
        let me = self.clone();
        blocking(move || {
            let mut through = through;
            for page in held.chunks(PAGE) {
                through = me.add_page(page)?;
            }
            Ok(through)
        })
        .await
    }

    /// Indexes one page (consecutive entries after `through`) and moves the cursor.
    fn add_page(&self, page: &[(u64, Vec<u8>)]) -> Result<u64, IndexError> {
        let txn = self.db.begin_write().map_err(dberr)?;
        let mut through;
        {
            let mut meta = txn.open_table(META).map_err(dberr)?;
            let mut postings = txn.open_table(POSTINGS).map_err(dberr)?;
            let mut time = txn.open_table(TIME).map_err(dberr)?;
            let mut bytes = txn.open_table(BYTES).map_err(dberr)?;
            through = meta.get("through").map_err(dberr)?.map_or(0, |g| g.value());
            let mut max_ms = meta.get("max_ms").map_err(dberr)?.map_or(0, |g| g.value());
            let mut last_hash = None;
            // The page's postings, by key: one block each.
            let mut blocks: std::collections::BTreeMap<String, Vec<u64>> = Default::default();
            for (seq, raw) in page {
                // An empty index starts wherever the live chain does (a prefix may have
                // been archived); from then on entries are consecutive.
                if through != 0 && *seq != through + 1 {
                    return Err(StateError::Corrupt(format!(
                        "audit log read returned seq {seq} where {} was expected",
                        through + 1
                    ))
                    .into());
                }
                // An entry that does not parse is indexed by time only (`audit verify`
                // is what reports it); queries still scan it.
                if let Ok(entry) = Entry::parse(raw) {
                    for key in keys(&entry) {
                        let seqs = blocks.entry(key).or_default();
                        if seqs.last() != Some(seq) {
                            seqs.push(*seq);
                        }
                    }
                    if let Some(ms) = super::query::Timestamp::entry_ms(&entry.time) {
                        max_ms = max_ms.max(ms.max(0) as u64);
                    }
                    last_hash = Some(entry.hash);
                }
                time.insert(time_key(max_ms, *seq).as_slice(), ())
                    .map_err(dberr)?;
                through = *seq;
            }
            for (key, seqs) in &blocks {
                if let Some(&last) = seqs.last() {
                    postings
                        .insert(posting(key, last).as_slice(), encode_block(seqs).as_slice())
                        .map_err(dberr)?;
                }
            }
            meta.insert("through", through).map_err(dberr)?;
            meta.insert("max_ms", max_ms).map_err(dberr)?;
            match last_hash {
                Some(h) => bytes.insert("through_hash", h.as_bytes()).map_err(dberr)?,
                None => bytes.remove("through_hash").map_err(dberr)?,
            };
        }
        txn.commit().map_err(dberr)?;
        Ok(through)
    }

    /// Up to `limit` sequence numbers under `key` (`"kind:value"`) in `(after, until]`,
    /// ascending.
    pub fn postings(
        &self,
        key: &str,
        after: u64,
        until: u64,
        limit: usize,
    ) -> Result<Postings, IndexError> {
        if after >= until {
            return Ok(Vec::new());
        }
        let txn = self.db.begin_read().map_err(dberr)?;
        let t = txn.open_table(POSTINGS).map_err(dberr)?;
        // The first block that can hold a seq past `after` is the first whose last is.
        let from = posting(key, after.saturating_add(1));
        let to = posting(key, u64::MAX);
        let mut out = Vec::new();
        for row in t.range(from.as_slice()..=to.as_slice()).map_err(dberr)? {
            let (_, block) = row.map_err(dberr)?;
            let seqs = decode_block(block.value()).ok_or_else(|| {
                IndexError::Db(redb::Error::Corrupted(format!(
                    "audit index: a posting block of {key} does not decode"
                )))
            })?;
            for seq in seqs {
                if seq <= after {
                    continue;
                }
                if seq > until || out.len() >= limit {
                    return Ok(out);
                }
                out.push(seq);
            }
        }
        Ok(out)
    }

    /// The sequence numbers an entry in `[since_ms, until_ms]` can have, within what is
    /// indexed: from the first entry whose running maximum time reaches `since_ms`, to the
    /// last whose running maximum is at most `until_ms + skew_ms` (entries written by a
    /// clock behind the others' by more than `skew_ms` may be missed past that bound).
    pub fn seq_range(
        &self,
        since_ms: Option<u64>,
        until_ms: Option<u64>,
        skew_ms: u64,
    ) -> Result<(u64, u64), IndexError> {
        let txn = self.db.begin_read().map_err(dberr)?;
        let t = txn.open_table(TIME).map_err(dberr)?;
        let seq_of = |k: &[u8]| {
            let mut s = [0u8; 8];
            s.copy_from_slice(&k[8..16]);
            u64::from_be_bytes(s)
        };
        let lo = match since_ms {
            None => 1,
            Some(ms) => match t.range(time_key(ms, 0).as_slice()..).map_err(dberr)?.next() {
                Some(row) => seq_of(row.map_err(dberr)?.0.value()),
                // Nothing indexed reaches `since`: only the unindexed tail can.
                None => u64::MAX,
            },
        };
        let hi = match until_ms {
            None => u64::MAX,
            Some(ms) => {
                let bound = time_key(ms.saturating_add(skew_ms), u64::MAX);
                match t.range(..=bound.as_slice()).map_err(dberr)?.next_back() {
                    Some(row) => seq_of(row.map_err(dberr)?.0.value()),
                    None => 0,
                }
            }
        };
        Ok((lo, hi))
    }
}

/// The index keys of an entry (`"kind:value"`).
pub fn keys(entry: &Entry) -> Vec<String> {
    let mut out: Vec<String> = mentions(entry)
        .into_iter()
        .map(|m| format!("{}:{}", m.kind.as_str(), m.id))
        .collect();
    if entry.actor["kind"] == "client"
        && let Some(name) = entry.actor["name"].as_str()
    {
        out.push(format!("principal:{name}"));
    }
    if let Some(addr) = entry
        .client_addr
        .as_deref()
        .and_then(|a| a.parse::<std::net::IpAddr>().ok())
    {
        out.push(format!("client:{}", addr.to_canonical()));
    }
    out.push(format!("action:{}", entry.action));
    out
}

fn posting(key: &str, seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(key.len() + 9);
    k.extend_from_slice(key.as_bytes());
    k.push(0);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// A posting block: ascending sequence numbers, each as an unsigned LEB128 varint of its
/// difference to the one before (the first: to 0).
fn encode_block(seqs: &[u64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(seqs.len() + 8);
    let mut prev = 0;
    for &seq in seqs {
        // Ascending by construction (the page's entries are consecutive).
        let mut d = seq.saturating_sub(prev);
        prev = seq;
        loop {
            let byte = (d & 0x7f) as u8;
            d >>= 7;
            if d == 0 {
                out.push(byte);
                break;
            }
            out.push(byte | 0x80);
        }
    }
    out
}

/// The sequence numbers of a block; `None` when it is malformed (a varint cut short or
/// longer than ten bytes, or a sum past `u64::MAX`).
fn decode_block(mut block: &[u8]) -> Option<Vec<u64>> {
    let mut out = Vec::with_capacity(block.len());
    let mut prev: u64 = 0;
    while !block.is_empty() {
        let mut d: u64 = 0;
        let mut shift = 0;
        loop {
            let (&byte, rest) = block.split_first()?;
            block = rest;
            if shift > 63 || (shift == 63 && byte & 0x7e != 0) {
                return None;
            }
            d |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                break;
            }
            shift += 7;
        }
        prev = prev.checked_add(d)?;
        out.push(prev);
    }
    Some(out)
}

fn time_key(ms: u64, seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(16);
    k.extend_from_slice(&ms.to_be_bytes());
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, IndexError> + Send + 'static,
) -> Result<T, IndexError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| IndexError::Db(redb::Error::Corrupted("index task panicked".into())))?
}

/// The indexer task: catches up with the chain every `poll`, and whenever `tap` holds a
/// page, until `stop` completes. What the tap holds is indexed first ([`AuditIndex::add_tapped`]);
/// the chain is then read for the rest (often nothing: one entry is read to check that
/// the index still matches the chain). A failure is logged and retried at the next poll;
/// queries meanwhile scan what is not indexed.
pub async fn run(
    index: Arc<AuditIndex>,
    source: Arc<dyn EntrySource>,
    tap: Option<Arc<Tap>>,
    poll: Duration,
    stop: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(stop);
    loop {
        if let Some(tap) = &tap
            && let Err(e) = index.add_tapped(tap).await
        {
            tracing::warn!(error = %e, "audit index could not add the appended entries; it reads them from the chain");
        }
        if let Err(e) = index.catch_up(&*source).await {
            tracing::warn!(error = %e, "audit index could not catch up; queries scan the rest");
        }
        tokio::select! {
            () = &mut stop => return,
            () = tokio::time::sleep(poll) => {}
            () = async {
                match &tap {
                    Some(t) => t.filled().await,
                    None => std::future::pending().await,
                }
            } => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::{AuditIndex, FORMAT, META, decode_block, encode_block};

    #[test]
    fn an_index_of_format_1_is_rebuilt_in_this_format() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(super::FILE_NAME);
        {
            // Format 1: a row per key and entry, no value.
            const OLD: redb::TableDefinition<&[u8], ()> = redb::TableDefinition::new("postings");
            let db = redb::Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            {
                let mut meta = txn.open_table(META).unwrap();
                meta.insert("format", 1).unwrap();
                meta.insert("through", 42).unwrap();
                txn.open_table(OLD)
                    .unwrap()
                    .insert(&b"grant:x\0"[..], ())
                    .unwrap();
            }
            txn.commit().unwrap();
        }
        let index = AuditIndex::open(&path).unwrap();
        assert_eq!(index.through().unwrap(), 0, "rebuilt from the first entry");
        assert_eq!(index.meta("format").unwrap(), FORMAT);
        assert!(
            index
                .postings("grant:x", 0, u64::MAX, 10)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn blocks_encode_small_gaps_in_a_byte_and_refuse_malformed_ones() {
        assert_eq!(encode_block(&[1, 2, 3, 130]), vec![1, 1, 1, 0x7f]);
        assert_eq!(encode_block(&[300]), vec![0xac, 0x02]);
        assert_eq!(encode_block(&[u64::MAX]).len(), 10);
        assert_eq!(
            decode_block(&encode_block(&[u64::MAX])),
            Some(vec![u64::MAX])
        );
        assert_eq!(decode_block(&[]), Some(vec![]));
        // Cut short inside a varint.
        assert_eq!(decode_block(&[0x80]), None);
        // Eleven bytes, or a tenth byte that does not fit in 64 bits.
        assert_eq!(decode_block(&[0xff; 11]), None);
        let mut too_big = vec![0xff; 9];
        too_big.push(0x02);
        assert_eq!(decode_block(&too_big), None);
        // A sum past u64::MAX.
        let mut over = encode_block(&[u64::MAX]);
        over.push(1);
        assert_eq!(decode_block(&over), None);
    }

    proptest! {
        #[test]
        fn blocks_round_trip(mut seqs in prop::collection::vec(1u64..u64::MAX, 0..300)) {
            seqs.sort_unstable();
            seqs.dedup();
            prop_assert_eq!(decode_block(&encode_block(&seqs)), Some(seqs));
        }

        #[test]
        fn arbitrary_blocks_never_panic_and_decode_ascending(b in prop::collection::vec(any::<u8>(), 0..64)) {
            if let Some(seqs) = decode_block(&b) {
                prop_assert!(seqs.windows(2).all(|w| w[0] <= w[1]));
            }
        }
    }
}
