//! The embedded [`StateStore`]: one redb file in the gateway's data directory, the default
//! so `sallyport serve` runs with nothing else installed.
//!
//! One process owns the file: [`EmbeddedStateStore::open`] takes redb's exclusive lock and
//! answers [`StateError::Locked`] when another process (a running gateway) holds it. redb
//! is synchronous, so every operation runs in one redb transaction: writes (and scans) on
//! tokio's blocking pool, single-record reads (`get`) inline, because a hot read costs
//! less than the hand-off to a pool thread. A write transaction commits with
//! `Durability::Immediate` (fsync before `commit` returns): this file holds acknowledged
//! upload state. The exceptions, committed with `Durability::None` and persisted by the
//! next durable commit (redb persists commits in order, so a crash keeps a prefix of them):
//!
//! * the `*_deferred` writes ([`StateStore::put_deferred`], [`StateStore::delete_deferred`],
//!   [`StateStore::counter_add_deferred`]), whose callers make a durable write before
//!   relying on them;
//! * leases: every lease found at open is dropped anyway (below), so syncing one protects
//!   nothing. Only their fencing numbers must survive a crash, and they come from durably
//!   reserved blocks: `meta.lease_fence_ceiling` is the highest fence reserved, an
//!   acquisition past it reserves the next 1024 (that one commit syncs), and open moves
//!   `meta.lease_fence` up to the ceiling, past any fence a killed process may have issued.
//!
//! A write that changes nothing (a lost compare-and-swap, a refused counter add) is aborted
//! instead, so it costs no fsync.
//!
//! Time is the wall clock in unix milliseconds, because record expiries must survive a
//! restart. Leases do not: the file is locked to one process, so whoever opens it is its
//! only user, and every lease found at open belongs to an earlier process that is gone (a
//! killed gateway, a CLI run). [`EmbeddedStateStore::open`] drops them all — the earlier
//! incarnation is fenced off at once instead of locking its clients out until its TTLs
//! pass (a client resuming an upload that was mid-PATCH when the gateway was killed is
//! served at once after the restart, not answered `423` for a lease TTL). An expiry
//! counts from when the operation started running, which may be a little before its
//! transaction got the write lock: a holder that times its TTL from sending the request
//! never believes it holds a lease longer than the store does.
//!
//! # Layout
//!
//! `lp(x)` is `x` prefixed with its byte length as a big-endian `u16`; `‖` is
//! concatenation; `u64` values are big-endian so they sort numerically. Only the last part
//! of a key is not length-prefixed, so every key splits back into its parts one way only,
//! and keys sharing their prefixed parts sort by the last part's bytes (see `codec`).
//!
//! | table | key | value |
//! | --- | --- | --- |
//! | `meta` | `&str` name | `u64`: `format` = 1, `lease_fence` = last fence issued, `lease_fence_ceiling` = highest fence reserved |
//! | `records` | `lp(ns) ‖ id` | `1 ‖ version u64 ‖ expires_at_ms u64 (0 = never) ‖ n u16 ‖ n × lp(index key) ‖ value` |
//! | `index` | `lp(ns) ‖ lp(index) ‖ lp(value) ‖ id` | `()` |
//! | `expiry` | `expires_at_ms u64 ‖ records key` | `()` |
//! | `counters` | `lp(ns) ‖ id` | `i64` |
//! | `leases` | lease name (`&str`) | `token [16] ‖ fence u64 ‖ expires_at_ms u64` |
//! | `log_heads` | log name (`&str`) | `u64`: last sequence number |
//! | `log_entries` | `lp(log) ‖ seq u64` | entry bytes |
//!
//! * A record is live while `now < expires_at_ms`. Reads and listings skip expired records;
//!   a write or delete over an expired record treats it as absent (its version restarts at
//!   1) and removes its leftover index and expiry entries in the same transaction.
//! * Each record lists the exact `index` keys it was written with, so a rewrite replaces
//!   and a delete removes exactly those. `expiry` holds one entry per record with a TTL,
//!   so [`EmbeddedStateStore::sweep_expired`] finds expired records by a range scan.
//! * Lease fencing numbers come from one store-wide counter (`meta.lease_fence`, under the
//!   durable `meta.lease_fence_ceiling`), so they strictly increase across every
//!   acquisition of every name, survive release and crashes, and need no per-name entry
//!   that would outlive the lease; a released or swept lease leaves nothing behind.
//! * A log append checks `expected_next == head + 1` and writes entries and head in one
//!   transaction.
//!
//! Not here: the meaning of the bytes, and running the sweeper periodically (the server
//! schedules [`EmbeddedStateStore::sweep_expired`]).

use std::fs::{DirBuilder, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redb::{Database, DatabaseError, Durability, WriteTransaction};

use super::limits;
use super::{
    AppendOutcome, CasOutcome, CounterOutcome, Expect, IndexEntry, Lease, LeaseOutcome, LogEntry,
    LogName, Namespace, PutOptions, StateError, StateStore, Versioned,
};

mod codec;
mod coordination;
mod ops;

/// What one [`EmbeddedStateStore::sweep_expired`] run removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Expired records removed, with their index entries.
    pub records: u64,
    /// Expired leases removed.
    pub leases: u64,
}

/// The redb-backed state store.
#[derive(Clone)]
pub struct EmbeddedStateStore {
    db: Arc<Database>,
    path: Arc<PathBuf>,
}

impl std::fmt::Debug for EmbeddedStateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStateStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl EmbeddedStateStore {
    /// Opens (creating if needed) the database at `path`. The parent directory is created
    /// with mode 0700 and a new file with mode 0600. Blocks; call it before serving.
    pub fn open(path: &Path) -> Result<Self, StateError> {
        let io_err = |what: &str, e: std::io::Error| {
            StateError::Unavailable(format!("{what} {}: {e}", path.display()))
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .map_err(|e| io_err("cannot create the directory of", e))?;
        }
        // Create the file ourselves so it gets mode 0600; redb then opens it as it is.
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(|e| io_err("cannot open", e))?;
        let db = Database::create(path).map_err(|e| match e {
            DatabaseError::DatabaseAlreadyOpen | DatabaseError::LockProtocolMismatch => {
                StateError::Locked(path.display().to_string())
            }
            other => StateError::Unavailable(format!("cannot open {}: {other}", path.display())),
        })?;
        ops::init(&db)?;
        let fenced = coordination::drop_all_leases(&db)?;
        if fenced > 0 {
            tracing::info!(
                leases = fenced,
                "dropped the leases of the previous process on this state file"
            );
        }
        Ok(Self {
            db: Arc::new(db),
            path: Arc::new(path.to_path_buf()),
        })
    }

    /// The database file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Deletes expired records (with their index entries) and expired leases, so the file
    /// does not grow forever. Works in bounded batches, one durable transaction each.
    pub async fn sweep_expired(&self) -> Result<SweepReport, StateError> {
        self.run(|db| ops::sweep_expired(db, now_ms())).await
    }

    /// A counter add committed with `durability` (see [`write_with`]).
    async fn counter_add_with(
        &self,
        ns: Namespace,
        id: &str,
        delta: i64,
        limit: Option<i64>,
        durability: Durability,
    ) -> Result<CounterOutcome, StateError> {
        limits::check_id(id)?;
        let id = id.to_owned();
        self.run(move |db| {
            coordination::counter_add(db, ns.as_str(), &id, delta, limit, durability)
        })
        .await
    }

    /// A record write committed with `durability` (see [`write_with`]).
    async fn put_with(
        &self,
        ns: Namespace,
        id: &str,
        value: &[u8],
        expect: Expect,
        options: PutOptions,
        durability: Durability,
    ) -> Result<CasOutcome, StateError> {
        limits::check_id(id)?;
        let index = limits::check_index_entries(&options.index)?;
        let ttl_ms = options.ttl.map(limits::ttl_ms).transpose()?;
        let (id, value) = (id.to_owned(), value.to_vec());
        self.run(move |db| {
            let put = ops::Put {
                ns: ns.as_str(),
                id: &id,
                value,
                expect,
                ttl_ms,
                index: &index,
            };
            ops::put(db, put, now_ms(), durability)
        })
        .await
    }

    /// A record delete committed with `durability` (see [`write_with`]).
    async fn delete_with(
        &self,
        ns: Namespace,
        id: &str,
        expect: Expect,
        durability: Durability,
    ) -> Result<CasOutcome, StateError> {
        limits::check_id(id)?;
        let id = id.to_owned();
        self.run(move |db| ops::delete(db, ns.as_str(), &id, expect, now_ms(), durability))
            .await
    }

    /// Runs `f` on the blocking pool.
    async fn run<T, F>(&self, f: F) -> Result<T, StateError>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> Result<T, StateError> + Send + 'static,
    {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(|e| StateError::Unavailable(format!("embedded store task failed: {e}")))?
    }
}

#[async_trait]
impl StateStore for EmbeddedStateStore {
    fn kind(&self) -> &'static str {
        "embedded"
    }

    async fn ping(&self) -> Result<(), StateError> {
        self.run(ops::ping).await
    }

    async fn get(&self, ns: Namespace, id: &str) -> Result<Option<Versioned>, StateError> {
        limits::check_id(id)?;
        // Inline, not on the blocking pool: a read is one B-tree lookup in redb's page
        // cache (microseconds; MVCC, so it never waits for a writer), and the hand-off to
        // a pool thread and back cost more than the read. Every download reads its grant
        // this way. Writes (fsync) still go to the pool.
        ops::get(&self.db, ns.as_str(), id, now_ms())
    }

    async fn put(
        &self,
        ns: Namespace,
        id: &str,
        value: &[u8],
        expect: Expect,
        options: PutOptions,
    ) -> Result<CasOutcome, StateError> {
        self.put_with(ns, id, value, expect, options, Durability::Immediate)
            .await
    }

    async fn delete(
        &self,
        ns: Namespace,
        id: &str,
        expect: Expect,
    ) -> Result<CasOutcome, StateError> {
        self.delete_with(ns, id, expect, Durability::Immediate)
            .await
    }

    async fn put_deferred(
        &self,
        ns: Namespace,
        id: &str,
        value: &[u8],
        expect: Expect,
        options: PutOptions,
    ) -> Result<CasOutcome, StateError> {
        self.put_with(ns, id, value, expect, options, Durability::None)
            .await
    }

    async fn delete_deferred(
        &self,
        ns: Namespace,
        id: &str,
        expect: Expect,
    ) -> Result<CasOutcome, StateError> {
        self.delete_with(ns, id, expect, Durability::None).await
    }

    async fn list_index(
        &self,
        ns: Namespace,
        entry: &IndexEntry,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StateError> {
        limits::check_index_entry(entry)?;
        limits::check_page(limit)?;
        let (entry, after) = (entry.clone(), after.map(str::to_owned));
        self.run(move |db| {
            ops::list_index(db, ns.as_str(), &entry, after.as_deref(), limit, now_ms())
        })
        .await
    }

    async fn list(
        &self,
        ns: Namespace,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StateError> {
        limits::check_page(limit)?;
        let after = after.map(str::to_owned);
        self.run(move |db| ops::list(db, ns.as_str(), after.as_deref(), limit, now_ms()))
            .await
    }

    async fn counter_get(&self, ns: Namespace, id: &str) -> Result<i64, StateError> {
        limits::check_id(id)?;
        let id = id.to_owned();
        self.run(move |db| coordination::counter_get(db, ns.as_str(), &id))
            .await
    }

    async fn counter_add(
        &self,
        ns: Namespace,
        id: &str,
        delta: i64,
        limit: Option<i64>,
    ) -> Result<CounterOutcome, StateError> {
        self.counter_add_with(ns, id, delta, limit, Durability::Immediate)
            .await
    }

    async fn counter_add_deferred(
        &self,
        ns: Namespace,
        id: &str,
        delta: i64,
        limit: Option<i64>,
    ) -> Result<CounterOutcome, StateError> {
        self.counter_add_with(ns, id, delta, limit, Durability::None)
            .await
    }

    async fn lease_acquire(&self, name: &str, ttl: Duration) -> Result<LeaseOutcome, StateError> {
        limits::check_id(name)?;
        let ttl_ms = limits::ttl_ms(ttl)?;
        let name = name.to_owned();
        self.run(move |db| coordination::lease_acquire(db, &name, ttl_ms, now_ms()))
            .await
    }

    async fn lease_renew(&self, lease: &Lease, ttl: Duration) -> Result<bool, StateError> {
        limits::check_id(&lease.name)?;
        let ttl_ms = limits::ttl_ms(ttl)?;
        let lease = lease.clone();
        self.run(move |db| coordination::lease_renew(db, &lease, ttl_ms, now_ms()))
            .await
    }

    async fn lease_release(&self, lease: &Lease) -> Result<bool, StateError> {
        limits::check_id(&lease.name)?;
        let lease = lease.clone();
        self.run(move |db| coordination::lease_release(db, &lease, now_ms()))
            .await
    }

    async fn log_head(&self, log: LogName) -> Result<Option<LogEntry>, StateError> {
        limits::check_static_name(log.0)?;
        self.run(move |db| coordination::log_head(db, log.0)).await
    }

    async fn log_append(
        &self,
        log: LogName,
        expected_next: u64,
        entries: &[Vec<u8>],
    ) -> Result<AppendOutcome, StateError> {
        limits::check_static_name(log.0)?;
        limits::check_append(expected_next, entries)?;
        let entries = entries.to_vec();
        self.run(move |db| coordination::log_append(db, log.0, expected_next, &entries))
            .await
    }

    async fn log_read(
        &self,
        log: LogName,
        from: u64,
        limit: usize,
    ) -> Result<Vec<LogEntry>, StateError> {
        limits::check_static_name(log.0)?;
        limits::check_page(limit)?;
        self.run(move |db| coordination::log_read(db, log.0, from, limit))
            .await
    }
}

/// Wall-clock unix milliseconds (0 if the clock is before 1970, which only makes records
/// look younger, never older).
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Runs `f` in a write transaction. `f` returns its result and whether it changed
/// anything: a change commits durably, no change aborts (no fsync for a lost race).
fn write<T>(
    db: &Database,
    f: impl FnOnce(&WriteTransaction) -> Result<(T, bool), StateError>,
) -> Result<T, StateError> {
    write_with(db, Durability::Immediate, f)
}

/// [`write`] with a chosen durability. `Durability::None` commits without an fsync; redb
/// persists such a commit with the next `Immediate` one (commits are ordered), so it is
/// only for writes whose caller makes a durable write before relying on them
/// ([`StateStore::counter_add_deferred`]).
fn write_with<T>(
    db: &Database,
    durability: Durability,
    f: impl FnOnce(&WriteTransaction) -> Result<(T, bool), StateError>,
) -> Result<T, StateError> {
    write_deciding(db, |txn| {
        let (out, changed) = f(txn)?;
        Ok((out, changed.then_some(durability)))
    })
}

/// [`write`] where `f` decides how to end the transaction: commit with the durability it
/// returns, or abort on `None` (nothing changed). For a write that must be durable only
/// sometimes (a lease acquisition that reserves a new block of fencing numbers).
fn write_deciding<T>(
    db: &Database,
    f: impl FnOnce(&WriteTransaction) -> Result<(T, Option<Durability>), StateError>,
) -> Result<T, StateError> {
    let mut txn = db.begin_write().map_err(ops::db_err)?;
    let (out, commit) = f(&txn)?;
    match commit {
        Some(durability) => {
            txn.set_durability(durability)
                .map_err(|e| StateError::Unavailable(format!("embedded store durability: {e}")))?;
            txn.commit().map_err(ops::db_err)?;
        }
        None => txn.abort().map_err(ops::db_err)?,
    }
    Ok(out)
}
