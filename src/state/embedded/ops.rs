//! The embedded store's operations: one synchronous redb transaction each, run by the
//! parent module on the blocking pool. Table layout and rules are in the parent's docs.

use std::ops::Bound;
use std::time::Duration;

use rand::RngCore;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use subtle::ConstantTimeEq;

use super::codec::{self, StoredLease, StoredRecord};
use super::{SweepReport, write};
use crate::state::{
    AppendOutcome, CasOutcome, CounterOutcome, Expect, IndexEntry, Lease, LeaseOutcome, LogEntry,
    StateError, Versioned,
};

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const RECORDS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("records");
const INDEX: TableDefinition<&[u8], ()> = TableDefinition::new("index");
const EXPIRY: TableDefinition<&[u8], ()> = TableDefinition::new("expiry");
const COUNTERS: TableDefinition<&[u8], i64> = TableDefinition::new("counters");
const LEASES: TableDefinition<&str, &[u8]> = TableDefinition::new("leases");
const LOG_HEADS: TableDefinition<&str, u64> = TableDefinition::new("log_heads");
const LOG_ENTRIES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("log_entries");

const META_FORMAT: &str = "format";
const META_LEASE_FENCE: &str = "lease_fence";
/// The layout version this code reads and writes.
const FORMAT: u64 = 1;
/// Most expired items one sweep transaction removes, to keep transactions small.
const SWEEP_BATCH: usize = 1_000;

/// Maps any redb error. I/O and transaction failures may pass; corruption will not.
pub(super) fn db_err(e: impl Into<redb::Error>) -> StateError {
    match e.into() {
        redb::Error::Corrupted(what) => StateError::Corrupt(format!("embedded store: {what}")),
        redb::Error::ValueTooLarge(_) => StateError::Invalid("value too large"),
        other => StateError::Unavailable(format!("embedded store: {other}")),
    }
}

/// Creates every table and checks (or writes) the layout version.
pub(super) fn init(db: &Database) -> Result<(), StateError> {
    write(db, |txn| {
        txn.open_table(RECORDS).map_err(db_err)?;
        txn.open_table(INDEX).map_err(db_err)?;
        txn.open_table(EXPIRY).map_err(db_err)?;
        txn.open_table(COUNTERS).map_err(db_err)?;
        txn.open_table(LEASES).map_err(db_err)?;
        txn.open_table(LOG_HEADS).map_err(db_err)?;
        txn.open_table(LOG_ENTRIES).map_err(db_err)?;
        let mut meta = txn.open_table(META).map_err(db_err)?;
        let format = meta.get(META_FORMAT).map_err(db_err)?.map(|g| g.value());
        match format {
            Some(FORMAT) => {}
            Some(other) => {
                return Err(StateError::Corrupt(format!(
                    "embedded store has layout version {other}, this build reads {FORMAT}"
                )));
            }
            None => {
                meta.insert(META_FORMAT, FORMAT).map_err(db_err)?;
            }
        }
        Ok(((), true))
    })
}

pub(super) fn ping(db: &Database) -> Result<(), StateError> {
    let txn = db.begin_read().map_err(db_err)?;
    txn.open_table(META).map_err(db_err)?;
    Ok(())
}

// === records ===

pub(super) fn get(
    db: &Database,
    ns: &str,
    id: &str,
    now: u64,
) -> Result<Option<Versioned>, StateError> {
    let txn = db.begin_read().map_err(db_err)?;
    let records = txn.open_table(RECORDS).map_err(db_err)?;
    let key = codec::record_key(ns, id)?;
    let Some(guard) = records.get(key.as_slice()).map_err(db_err)? else {
        return Ok(None);
    };
    let rec = StoredRecord::decode(guard.value())?;
    Ok(rec.is_live(now).then_some(Versioned {
        value: rec.value,
        version: rec.version,
    }))
}

/// A checked write request.
pub(super) struct Put<'a> {
    pub(super) ns: &'a str,
    pub(super) id: &'a str,
    pub(super) value: Vec<u8>,
    pub(super) expect: Expect,
    pub(super) ttl_ms: Option<u64>,
    pub(super) index: &'a [IndexEntry],
}

pub(super) fn put(db: &Database, req: Put<'_>, now: u64) -> Result<CasOutcome, StateError> {
    let key = codec::record_key(req.ns, req.id)?;
    let mut index_keys = Vec::with_capacity(req.index.len());
    for entry in req.index {
        let mut k = codec::index_prefix(req.ns, entry.index, &entry.value)?;
        k.extend_from_slice(req.id.as_bytes());
        index_keys.push(k);
    }
    write(db, |txn| {
        let mut records = txn.open_table(RECORDS).map_err(db_err)?;
        let old = load_record(&records, &key)?;
        let current = old.as_ref().filter(|r| r.is_live(now)).map(|r| r.version);
        if !expect_holds(req.expect, current) {
            return Ok((CasOutcome::Conflict(current), false));
        }
        if let Some(old) = &old {
            unlink(txn, &key, old)?;
        }
        let version = match current {
            None => 1,
            Some(v) => v
                .checked_add(1)
                .ok_or_else(|| StateError::Corrupt("record version overflow".into()))?,
        };
        let rec = StoredRecord {
            version,
            expires_at_ms: req.ttl_ms.map(|ttl| now.saturating_add(ttl)),
            index_keys,
            value: req.value,
        };
        link(txn, &key, &rec)?;
        records
            .insert(key.as_slice(), rec.encode()?.as_slice())
            .map_err(db_err)?;
        Ok((CasOutcome::Applied(version), true))
    })
}

pub(super) fn delete(
    db: &Database,
    ns: &str,
    id: &str,
    expect: Expect,
    now: u64,
) -> Result<CasOutcome, StateError> {
    let key = codec::record_key(ns, id)?;
    write(db, |txn| {
        let mut records = txn.open_table(RECORDS).map_err(db_err)?;
        let old = load_record(&records, &key)?;
        let current = old.as_ref().filter(|r| r.is_live(now)).map(|r| r.version);
        // `Absent` or `Any` on an absent record holds: deleting it is `Applied(0)`.
        if !expect_holds(expect, current) {
            return Ok((CasOutcome::Conflict(current), false));
        }
        let Some(old) = old else {
            return Ok((CasOutcome::Applied(0), false));
        };
        unlink(txn, &key, &old)?;
        records.remove(key.as_slice()).map_err(db_err)?;
        Ok((CasOutcome::Applied(0), true))
    })
}

pub(super) fn list_index(
    db: &Database,
    ns: &str,
    entry: &IndexEntry,
    after: Option<&str>,
    limit: usize,
    now: u64,
) -> Result<Vec<String>, StateError> {
    let prefix = codec::index_prefix(ns, entry.index, &entry.value)?;
    let record_prefix = codec::namespace_prefix(ns)?;
    let txn = db.begin_read().map_err(db_err)?;
    let index = txn.open_table(INDEX).map_err(db_err)?;
    let records = txn.open_table(RECORDS).map_err(db_err)?;
    let mut out = Vec::new();
    let start = scan_start(&prefix, after);
    let range = (start.as_ref().map(Vec::as_slice), Bound::Unbounded);
    for item in index.range::<&[u8]>(range).map_err(db_err)? {
        if out.len() >= limit {
            break;
        }
        let (key, _) = item.map_err(db_err)?;
        let Some(id) = key.value().strip_prefix(prefix.as_slice()) else {
            break;
        };
        // An index entry of an expired record stays until the sweeper or the next write.
        let mut record_key = record_prefix.clone();
        record_key.extend_from_slice(id);
        if let Some(rec) = load_record(&records, &record_key)?
            && rec.is_live(now)
        {
            out.push(id_string(id)?);
        }
    }
    Ok(out)
}

pub(super) fn list(
    db: &Database,
    ns: &str,
    after: Option<&str>,
    limit: usize,
    now: u64,
) -> Result<Vec<String>, StateError> {
    let prefix = codec::namespace_prefix(ns)?;
    let txn = db.begin_read().map_err(db_err)?;
    let records = txn.open_table(RECORDS).map_err(db_err)?;
    let mut out = Vec::new();
    let start = scan_start(&prefix, after);
    let range = (start.as_ref().map(Vec::as_slice), Bound::Unbounded);
    for item in records.range::<&[u8]>(range).map_err(db_err)? {
        if out.len() >= limit {
            break;
        }
        let (key, value) = item.map_err(db_err)?;
        let Some(id) = key.value().strip_prefix(prefix.as_slice()) else {
            break;
        };
        if StoredRecord::decode(value.value())?.is_live(now) {
            out.push(id_string(id)?);
        }
    }
    Ok(out)
}

pub(super) fn sweep_expired(db: &Database, now: u64) -> Result<SweepReport, StateError> {
    let mut report = SweepReport::default();
    // Expiry keys start with the expiry time: everything below `now + 1` has expired.
    let bound = now.saturating_add(1).to_be_bytes();
    loop {
        let removed = write(db, |txn| {
            let mut expiry = txn.open_table(EXPIRY).map_err(db_err)?;
            let due: Vec<Vec<u8>> = expiry
                .range::<&[u8]>(..&bound[..])
                .map_err(db_err)?
                .take(SWEEP_BATCH)
                .map(|item| item.map(|(k, _)| k.value().to_vec()).map_err(db_err))
                .collect::<Result<_, _>>()?;
            let mut records = txn.open_table(RECORDS).map_err(db_err)?;
            for expiry_key in &due {
                let (at, record_key) = codec::split_expiry_key(expiry_key)?;
                if let Some(rec) = load_record(&records, record_key)?
                    && rec.expires_at_ms == Some(at)
                {
                    unlink(txn, record_key, &rec)?;
                    records.remove(record_key).map_err(db_err)?;
                } else {
                    // Writes keep `expiry` in step with `records`; tidy a stray entry anyway.
                    expiry.remove(expiry_key.as_slice()).map_err(db_err)?;
                }
            }
            Ok((due.len(), !due.is_empty()))
        })?;
        report.records += removed as u64;
        if removed < SWEEP_BATCH {
            break;
        }
    }
    loop {
        let removed = write(db, |txn| {
            let mut leases = txn.open_table(LEASES).map_err(db_err)?;
            let mut dead = Vec::new();
            for item in leases.iter().map_err(db_err)? {
                let (name, value) = item.map_err(db_err)?;
                if StoredLease::decode(value.value())?.expires_at_ms <= now {
                    dead.push(name.value().to_owned());
                    if dead.len() == SWEEP_BATCH {
                        break;
                    }
                }
            }
            for name in &dead {
                leases.remove(name.as_str()).map_err(db_err)?;
            }
            Ok((dead.len(), !dead.is_empty()))
        })?;
        report.leases += removed as u64;
        if removed < SWEEP_BATCH {
            break;
        }
    }
    Ok(report)
}

// === counters ===

pub(super) fn counter_get(db: &Database, ns: &str, id: &str) -> Result<i64, StateError> {
    let key = codec::record_key(ns, id)?;
    let txn = db.begin_read().map_err(db_err)?;
    let counters = txn.open_table(COUNTERS).map_err(db_err)?;
    Ok(counters
        .get(key.as_slice())
        .map_err(db_err)?
        .map_or(0, |g| g.value()))
}

pub(super) fn counter_add(
    db: &Database,
    ns: &str,
    id: &str,
    delta: i64,
    limit: Option<i64>,
) -> Result<CounterOutcome, StateError> {
    let key = codec::record_key(ns, id)?;
    write(db, |txn| {
        let mut counters = txn.open_table(COUNTERS).map_err(db_err)?;
        let current = counters
            .get(key.as_slice())
            .map_err(db_err)?
            .map_or(0, |g| g.value());
        let next = current
            .checked_add(delta)
            .ok_or(StateError::Invalid("counter overflow"))?;
        if limit.is_some_and(|limit| next > limit) {
            return Ok((CounterOutcome::LimitReached(current), false));
        }
        counters.insert(key.as_slice(), next).map_err(db_err)?;
        Ok((CounterOutcome::Applied(next), true))
    })
}

// === leases ===

pub(super) fn lease_acquire(
    db: &Database,
    name: &str,
    ttl_ms: u64,
    now: u64,
) -> Result<LeaseOutcome, StateError> {
    write(db, |txn| {
        let mut leases = txn.open_table(LEASES).map_err(db_err)?;
        if let Some(held) = load_lease(&leases, name)?
            && now < held.expires_at_ms
        {
            let remaining = Duration::from_millis(held.expires_at_ms - now);
            return Ok((LeaseOutcome::Held { remaining }, false));
        }
        let mut meta = txn.open_table(META).map_err(db_err)?;
        let last = meta
            .get(META_LEASE_FENCE)
            .map_err(db_err)?
            .map_or(0, |g| g.value());
        let fence = last
            .checked_add(1)
            .ok_or_else(|| StateError::Corrupt("lease fence overflow".into()))?;
        meta.insert(META_LEASE_FENCE, fence).map_err(db_err)?;
        let mut token = [0u8; 16];
        rand::rng().fill_bytes(&mut token);
        let stored = StoredLease {
            token,
            fence,
            expires_at_ms: now.saturating_add(ttl_ms),
        };
        leases
            .insert(name, stored.encode().as_slice())
            .map_err(db_err)?;
        let lease = Lease {
            name: name.to_owned(),
            token,
            fence,
        };
        Ok((LeaseOutcome::Acquired(lease), true))
    })
}

pub(super) fn lease_renew(
    db: &Database,
    lease: &Lease,
    ttl_ms: u64,
    now: u64,
) -> Result<bool, StateError> {
    write(db, |txn| {
        let mut leases = txn.open_table(LEASES).map_err(db_err)?;
        let Some(mut held) = load_lease(&leases, &lease.name)? else {
            return Ok((false, false));
        };
        if !(now < held.expires_at_ms && is_holder(&held, lease)) {
            return Ok((false, false));
        }
        held.expires_at_ms = now.saturating_add(ttl_ms);
        leases
            .insert(lease.name.as_str(), held.encode().as_slice())
            .map_err(db_err)?;
        Ok((true, true))
    })
}

pub(super) fn lease_release(db: &Database, lease: &Lease, now: u64) -> Result<bool, StateError> {
    write(db, |txn| {
        let mut leases = txn.open_table(LEASES).map_err(db_err)?;
        let Some(held) = load_lease(&leases, &lease.name)? else {
            return Ok((false, false));
        };
        if !is_holder(&held, lease) {
            return Ok((false, false));
        }
        // Our own lease is removed even if it already expired; only a live one counts as
        // released.
        leases.remove(lease.name.as_str()).map_err(db_err)?;
        Ok((now < held.expires_at_ms, true))
    })
}

// === logs ===

pub(super) fn log_head(db: &Database, log: &str) -> Result<Option<LogEntry>, StateError> {
    let txn = db.begin_read().map_err(db_err)?;
    let heads = txn.open_table(LOG_HEADS).map_err(db_err)?;
    let entries = txn.open_table(LOG_ENTRIES).map_err(db_err)?;
    head_entry(&heads, &entries, log)
}

pub(super) fn log_append(
    db: &Database,
    log: &str,
    expected_next: u64,
    batch: &[Vec<u8>],
) -> Result<AppendOutcome, StateError> {
    write(db, |txn| {
        let mut heads = txn.open_table(LOG_HEADS).map_err(db_err)?;
        let mut entries = txn.open_table(LOG_ENTRIES).map_err(db_err)?;
        let head = heads.get(log).map_err(db_err)?.map_or(0, |g| g.value());
        if head.checked_add(1) != Some(expected_next) {
            let current = head_entry(&heads, &entries, log)?;
            return Ok((AppendOutcome::Conflict(current), false));
        }
        let mut seq = expected_next;
        for bytes in batch {
            let key = codec::log_key(log, seq)?;
            entries
                .insert(key.as_slice(), bytes.as_slice())
                .map_err(db_err)?;
            seq += 1; // limits::check_append keeps the batch's numbers below 2^53.
        }
        heads.insert(log, seq - 1).map_err(db_err)?;
        let first = expected_next;
        Ok((AppendOutcome::Appended { first }, true))
    })
}

pub(super) fn log_read(
    db: &Database,
    log: &str,
    from: u64,
    limit: usize,
) -> Result<Vec<LogEntry>, StateError> {
    let prefix_len = 2 + log.len();
    let start = codec::log_key(log, from.max(1))?;
    let end = codec::log_key(log, u64::MAX)?;
    let txn = db.begin_read().map_err(db_err)?;
    let entries = txn.open_table(LOG_ENTRIES).map_err(db_err)?;
    let mut out = Vec::new();
    for item in entries
        .range::<&[u8]>(start.as_slice()..=end.as_slice())
        .map_err(db_err)?
        .take(limit)
    {
        let (key, value) = item.map_err(db_err)?;
        out.push(LogEntry {
            seq: codec::log_key_seq(key.value(), prefix_len)?,
            bytes: value.value().to_vec(),
        });
    }
    Ok(out)
}

// === helpers ===

/// `Expect::Any` holds always; `Absent` when there is no live record; `Version(v)` when the
/// live record has version `v`.
fn expect_holds(expect: Expect, current: Option<u64>) -> bool {
    match expect {
        Expect::Any => true,
        Expect::Absent => current.is_none(),
        Expect::Version(v) => current == Some(v),
    }
}

fn load_record(
    records: &impl ReadableTable<&'static [u8], &'static [u8]>,
    key: &[u8],
) -> Result<Option<StoredRecord>, StateError> {
    records
        .get(key)
        .map_err(db_err)?
        .map(|g| StoredRecord::decode(g.value()))
        .transpose()
}

fn load_lease(
    leases: &impl ReadableTable<&'static str, &'static [u8]>,
    name: &str,
) -> Result<Option<StoredLease>, StateError> {
    leases
        .get(name)
        .map_err(db_err)?
        .map(|g| StoredLease::decode(g.value()))
        .transpose()
}

/// Whether `lease` is the holder of `held`; the token compare is constant-time.
fn is_holder(held: &StoredLease, lease: &Lease) -> bool {
    bool::from(held.token.ct_eq(&lease.token)) && held.fence == lease.fence
}

/// Adds the index and expiry entries of `rec` (stored under `key`).
fn link(txn: &WriteTransaction, key: &[u8], rec: &StoredRecord) -> Result<(), StateError> {
    let mut index = txn.open_table(INDEX).map_err(db_err)?;
    for index_key in &rec.index_keys {
        index.insert(index_key.as_slice(), ()).map_err(db_err)?;
    }
    if let Some(at) = rec.expires_at_ms {
        let mut expiry = txn.open_table(EXPIRY).map_err(db_err)?;
        expiry
            .insert(codec::expiry_key(at, key).as_slice(), ())
            .map_err(db_err)?;
    }
    Ok(())
}

/// Removes the index and expiry entries of `rec` (stored under `key`).
fn unlink(txn: &WriteTransaction, key: &[u8], rec: &StoredRecord) -> Result<(), StateError> {
    let mut index = txn.open_table(INDEX).map_err(db_err)?;
    for index_key in &rec.index_keys {
        index.remove(index_key.as_slice()).map_err(db_err)?;
    }
    if let Some(at) = rec.expires_at_ms {
        let mut expiry = txn.open_table(EXPIRY).map_err(db_err)?;
        expiry
            .remove(codec::expiry_key(at, key).as_slice())
            .map_err(db_err)?;
    }
    Ok(())
}

fn head_entry(
    heads: &impl ReadableTable<&'static str, u64>,
    entries: &impl ReadableTable<&'static [u8], &'static [u8]>,
    log: &str,
) -> Result<Option<LogEntry>, StateError> {
    let Some(seq) = heads.get(log).map_err(db_err)?.map(|g| g.value()) else {
        return Ok(None);
    };
    let key = codec::log_key(log, seq)?;
    let bytes = entries
        .get(key.as_slice())
        .map_err(db_err)?
        .ok_or_else(|| StateError::Corrupt(format!("log {log} head {seq} has no entry")))?
        .value()
        .to_vec();
    Ok(Some(LogEntry { seq, bytes }))
}

/// The start of a scan over keys beginning with `prefix`: just after `prefix ‖ after`, or
/// at `prefix`. Callers stop at the first key that does not start with `prefix`.
fn scan_start(prefix: &[u8], after: Option<&str>) -> Bound<Vec<u8>> {
    match after {
        Some(after) => {
            let mut key = prefix.to_vec();
            key.extend_from_slice(after.as_bytes());
            Bound::Excluded(key)
        }
        None => Bound::Included(prefix.to_vec()),
    }
}

fn id_string(id: &[u8]) -> Result<String, StateError> {
    String::from_utf8(id.to_vec()).map_err(|_| StateError::Corrupt("record id is not UTF-8".into()))
}
