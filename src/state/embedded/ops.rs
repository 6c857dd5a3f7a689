//! The embedded store's tables and its record operations (get, put, delete, listings,
//! the sweeper): one synchronous redb transaction each, run by the parent module on the
//! blocking pool. Table layout and rules are in the parent's docs; counters, leases and
//! logs are in `coordination`.

use std::ops::Bound;

use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction,
};

use super::codec::{self, StoredLease, StoredRecord};
use super::{SweepReport, write, write_with};
use crate::state::{CasOutcome, Expect, IndexEntry, StateError, Versioned};

pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
pub(super) const RECORDS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("records");
pub(super) const INDEX: TableDefinition<&[u8], ()> = TableDefinition::new("index");
pub(super) const EXPIRY: TableDefinition<&[u8], ()> = TableDefinition::new("expiry");
pub(super) const COUNTERS: TableDefinition<&[u8], i64> = TableDefinition::new("counters");
pub(super) const LEASES: TableDefinition<&str, &[u8]> = TableDefinition::new("leases");
pub(super) const LOG_HEADS: TableDefinition<&str, u64> = TableDefinition::new("log_heads");
pub(super) const LOG_ENTRIES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("log_entries");

const META_FORMAT: &str = "format";
pub(super) const META_LEASE_FENCE: &str = "lease_fence";
/// The highest fence durably reserved: fences up to it may have been issued.
pub(super) const META_LEASE_FENCE_CEILING: &str = "lease_fence_ceiling";
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

pub(super) fn put(
    db: &Database,
    req: Put<'_>,
    now: u64,
    durability: Durability,
) -> Result<CasOutcome, StateError> {
    let key = codec::record_key(req.ns, req.id)?;
    let mut index_keys = Vec::with_capacity(req.index.len());
    for entry in req.index {
        let mut k = codec::index_prefix(req.ns, entry.index, &entry.value)?;
        k.extend_from_slice(req.id.as_bytes());
        index_keys.push(k);
    }
    write_with(db, durability, |txn| {
        let mut records = txn.open_table(RECORDS).map_err(db_err)?;
        let old = load_record(&records, &key)?;
        let current = old.as_ref().filter(|r| r.is_live(now)).map(|r| r.version);
        if !req.expect.holds(current) {
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
    durability: Durability,
) -> Result<CasOutcome, StateError> {
    let key = codec::record_key(ns, id)?;
    write_with(db, durability, |txn| {
        let mut records = txn.open_table(RECORDS).map_err(db_err)?;
        let old = load_record(&records, &key)?;
        let current = old.as_ref().filter(|r| r.is_live(now)).map(|r| r.version);
        // `Absent` or `Any` on an absent record holds: deleting it is `Applied(0)`.
        if !expect.holds(current) {
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
            let due: Vec<Vec<u8>> = {
                let expiry = txn.open_table(EXPIRY).map_err(db_err)?;
                expiry
                    .range::<&[u8]>(..&bound[..])
                    .map_err(db_err)?
                    .take(SWEEP_BATCH)
                    .map(|item| item.map(|(k, _)| k.value().to_vec()).map_err(db_err))
                    .collect::<Result<_, _>>()?
            };
            let mut records = txn.open_table(RECORDS).map_err(db_err)?;
            for expiry_key in &due {
                let (at, record_key) = codec::split_expiry_key(expiry_key)?;
                match load_record(&records, record_key)? {
                    Some(rec) if rec.expires_at_ms == Some(at) => {
                        // Removes the record's index entries and this expiry entry.
                        unlink(txn, record_key, &rec)?;
                        records.remove(record_key).map_err(db_err)?;
                    }
                    _ => {
                        // Writes keep `expiry` in step with `records`; tidy a stray anyway.
                        let mut expiry = txn.open_table(EXPIRY).map_err(db_err)?;
                        expiry.remove(expiry_key.as_slice()).map_err(db_err)?;
                    }
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

// === helpers ===

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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    //! What the trait cannot show: that rewrites, deletes and the sweeper leave no stale
    //! `index` or `expiry` entries behind in the file.

    use super::*;
    use crate::state::PutOptions;
    use redb::ReadableTableMetadata;

    fn rows<V: redb::Value + 'static>(db: &Database, table: TableDefinition<&[u8], V>) -> u64 {
        let txn = db.begin_read().unwrap();
        txn.open_table(table).unwrap().len().unwrap()
    }

    fn put_with(db: &Database, id: &str, expect: Expect, o: &PutOptions, now: u64) -> CasOutcome {
        let index = crate::state::limits::check_index_entries(&o.index).unwrap();
        let req = Put {
            ns: "upload",
            id,
            value: b"v".to_vec(),
            expect,
            ttl_ms: o.ttl.map(|t| crate::state::limits::ttl_ms(t).unwrap()),
            index: &index,
        };
        put(db, req, now, Durability::Immediate).unwrap()
    }

    #[test]
    fn stale_entries_are_removed_not_just_hidden() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::create(dir.path().join("t.redb")).unwrap();
        init(&db).unwrap();
        let o = |ttl_ms: Option<u64>, owners: &[&str]| PutOptions {
            ttl: ttl_ms.map(std::time::Duration::from_millis),
            index: owners
                .iter()
                .map(|v| IndexEntry::new("owner", *v))
                .collect(),
        };
        let t0 = 1_000_000;
        put_with(&db, "a", Expect::Absent, &o(Some(100), &["x", "y"]), t0);
        assert_eq!((rows(&db, INDEX), rows(&db, EXPIRY)), (2, 1));
        // Rewrite: new entries replace old ones, the old expiry entry goes.
        put_with(&db, "a", Expect::Version(1), &o(Some(500), &["z"]), t0 + 10);
        assert_eq!((rows(&db, INDEX), rows(&db, EXPIRY)), (1, 1));
        put_with(&db, "a", Expect::Version(2), &o(None, &["z"]), t0 + 20);
        assert_eq!((rows(&db, INDEX), rows(&db, EXPIRY)), (1, 0));
        // Delete removes them.
        delete(
            &db,
            "upload",
            "a",
            Expect::Any,
            t0 + 30,
            Durability::Immediate,
        )
        .unwrap();
        assert_eq!((rows(&db, RECORDS), rows(&db, INDEX)), (0, 0));
        // Writing over an expired record removes its leftovers.
        put_with(&db, "b", Expect::Absent, &o(Some(100), &["x"]), t0);
        put_with(&db, "b", Expect::Absent, &o(None, &["q"]), t0 + 200);
        assert_eq!((rows(&db, INDEX), rows(&db, EXPIRY)), (1, 0));
        // The sweeper removes expired records with their entries, and nothing live.
        put_with(&db, "c", Expect::Absent, &o(Some(100), &["x", "y"]), t0);
        put_with(&db, "d", Expect::Absent, &o(Some(10_000), &["x"]), t0);
        let report = sweep_expired(&db, t0 + 100).unwrap();
        assert_eq!(report.records, 1);
        assert_eq!(rows(&db, RECORDS), 2); // b and d
        assert_eq!((rows(&db, INDEX), rows(&db, EXPIRY)), (2, 1));
    }
}
