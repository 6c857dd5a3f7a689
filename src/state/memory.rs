//! The in-memory [`StateStore`]: every primitive of the trait, with the same meaning as the
//! embedded and Redis adapters, in a few maps behind one lock.
//!
//! It is for tests: the upload-engine and at-rest tests drive the real code over it, and
//! in-process handler tests can build an app on it with no files and no Redis. It passes
//! the shared conformance suite (`tests/state_store.rs`) beside the two real adapters, so
//! a test that passes on it means what it would mean on them.
//!
//! It is never for production: nothing survives the process (an acknowledged upload would
//! be lost by a restart) and several gateways cannot share it. [`StateStore::kind`] says
//! `"memory"`, and the config offers no way to select it.
//!
//! Time is a monotonic [`Instant`] (not tokio's clock), so, like the adapters' wall clock,
//! a test that pauses tokio time does not expire records; TTLs are rounded up to whole
//! milliseconds as the adapters do. Requests are checked by the same `limits` as the
//! adapters', so a refused request is refused here too.
//!
//! Not here: durability (there is none; `counter_add_deferred` is `counter_add`), and any
//! fault injection (tests that need outages wrap this store).
//!
//! One file a little over the house's ~400 lines, because it is one trait implemented
//! over one set of maps: split, each half would need the other's private state.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rand::RngCore;
use subtle::ConstantTimeEq;

use super::limits;
use super::{
    AppendOutcome, CasOutcome, CounterOutcome, Expect, IndexEntry, Lease, LeaseOutcome, LogEntry,
    LogName, Namespace, PutOptions, StateError, StateStore, Versioned,
};

/// The in-memory state store. Cheap to create; share it with `Arc`.
#[derive(Default)]
pub struct MemoryStore {
    // A std mutex, not tokio's: no operation awaits while holding it (each is a few map
    // operations, done before the method's future first returns), so the lock is held
    // for microseconds and an async mutex would only add cost. The same reasoning as
    // mini-redis's `db.rs`. `clippy::await_holding_lock` keeps it true.
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for MemoryStore {
    // Record bytes may be sensitive (wrapped keys): only sizes are shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let records = self.inner.lock().map(|i| i.records.len()).ok();
        f.debug_struct("MemoryStore")
            .field("records", &records)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Inner {
    /// Keyed by `(namespace, id)`; `String`'s order is byte order, as the adapters list.
    records: BTreeMap<(&'static str, String), Record>,
    counters: HashMap<(&'static str, String), i64>,
    leases: HashMap<String, HeldLease>,
    /// The last fencing number issued, store-wide (as both adapters do).
    last_fence: u64,
    /// Each log's entries; entry `seq` is at index `seq - 1`.
    logs: HashMap<&'static str, Vec<Vec<u8>>>,
}

struct Record {
    value: Vec<u8>,
    version: u64,
    expires_at: Option<Instant>,
    /// Sorted and deduplicated by `limits::check_index_entries`.
    index: Vec<IndexEntry>,
}

impl Record {
    fn is_live(&self, now: Instant) -> bool {
        self.expires_at.is_none_or(|at| now < at)
    }
}

struct HeldLease {
    token: [u8; 16],
    fence: u64,
    expires_at: Instant,
}

impl HeldLease {
    /// Whether `lease` is this lease's holder; the token compare is constant-time.
    fn is_held_by(&self, lease: &Lease) -> bool {
        bool::from(self.token.ct_eq(&lease.token)) && self.fence == lease.fence
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Cuts `log` to its first `len` entries, behind every writer's back: what an attacker
    /// with write access to the store (or a restore from an old backup) does. For tests of
    /// the audit writer's refusal to chain over a lost tail.
    pub fn truncate_log(&self, log: LogName, len: u64) {
        if let Ok(mut inner) = self.lock()
            && let Some(entries) = inner.logs.get_mut(log.0)
        {
            entries.truncate(usize::try_from(len).unwrap_or(usize::MAX));
        }
    }

    /// The lock. A poisoned lock (a panic while holding it, which only a bug here can
    /// cause) is reported as an unavailable store rather than a second panic.
    fn lock(&self) -> Result<MutexGuard<'_, Inner>, StateError> {
        self.inner
            .lock()
            .map_err(|_| StateError::Unavailable("memory store lock poisoned".into()))
    }
}

#[async_trait]
impl StateStore for MemoryStore {
    fn kind(&self) -> &'static str {
        "memory"
    }

    async fn ping(&self) -> Result<(), StateError> {
        self.lock().map(drop)
    }

    async fn get(&self, ns: Namespace, id: &str) -> Result<Option<Versioned>, StateError> {
        limits::check_id(id)?;
        let now = Instant::now();
        let inner = self.lock()?;
        Ok(inner
            .records
            .get(&(ns.as_str(), id.to_owned()))
            .filter(|r| r.is_live(now))
            .map(|r| Versioned {
                value: r.value.clone(),
                version: r.version,
            }))
    }

    async fn put(
        &self,
        ns: Namespace,
        id: &str,
        value: &[u8],
        expect: Expect,
        options: PutOptions,
    ) -> Result<CasOutcome, StateError> {
        limits::check_id(id)?;
        let index = limits::check_index_entries(&options.index)?;
        let ttl_ms = options.ttl.map(limits::ttl_ms).transpose()?;
        let now = Instant::now();
        let mut inner = self.lock()?;
        let key = (ns.as_str(), id.to_owned());
        // An expired record counts as absent: its version restarts at 1.
        let current = live_version(&inner, &key, now);
        if !expect.holds(current) {
            return Ok(CasOutcome::Conflict(current));
        }
        let version = match current {
            None => 1,
            Some(v) => v
                .checked_add(1)
                .ok_or_else(|| StateError::Corrupt("record version overflow".into()))?,
        };
        let record = Record {
            value: value.to_vec(),
            version,
            expires_at: ttl_ms.map(|ms| now + Duration::from_millis(ms)),
            index,
        };
        inner.records.insert(key, record);
        Ok(CasOutcome::Applied(version))
    }

    async fn delete(
        &self,
        ns: Namespace,
        id: &str,
        expect: Expect,
    ) -> Result<CasOutcome, StateError> {
        limits::check_id(id)?;
        let now = Instant::now();
        let mut inner = self.lock()?;
        let key = (ns.as_str(), id.to_owned());
        let current = live_version(&inner, &key, now);
        // `Absent` or `Any` on an absent record holds: deleting it is `Applied(0)`.
        if !expect.holds(current) {
            return Ok(CasOutcome::Conflict(current));
        }
        inner.records.remove(&key);
        Ok(CasOutcome::Applied(0))
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
        let now = Instant::now();
        let inner = self.lock()?;
        // A scan of the namespace rather than a separate index map: there is then no index
        // entry that could outlive or disagree with its record. Test-sized data only.
        Ok(live_ids(&inner, ns, after, now)
            .filter(|(_, r)| r.index.contains(entry))
            .map(|(id, _)| id.to_owned())
            .take(limit)
            .collect())
    }

    async fn list(
        &self,
        ns: Namespace,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StateError> {
        limits::check_page(limit)?;
        let now = Instant::now();
        let inner = self.lock()?;
        Ok(live_ids(&inner, ns, after, now)
            .map(|(id, _)| id.to_owned())
            .take(limit)
            .collect())
    }

    async fn counter_get(&self, ns: Namespace, id: &str) -> Result<i64, StateError> {
        limits::check_id(id)?;
        let inner = self.lock()?;
        Ok(inner
            .counters
            .get(&(ns.as_str(), id.to_owned()))
            .copied()
            .unwrap_or(0))
    }

    async fn counter_add(
        &self,
        ns: Namespace,
        id: &str,
        delta: i64,
        limit: Option<i64>,
    ) -> Result<CounterOutcome, StateError> {
        limits::check_id(id)?;
        let mut inner = self.lock()?;
        let key = (ns.as_str(), id.to_owned());
        let current = inner.counters.get(&key).copied().unwrap_or(0);
        let next = current
            .checked_add(delta)
            .ok_or(StateError::Invalid("counter overflow"))?;
        if limit.is_some_and(|limit| next > limit) {
            return Ok(CounterOutcome::LimitReached(current));
        }
        inner.counters.insert(key, next);
        Ok(CounterOutcome::Applied(next))
    }

    async fn lease_acquire(&self, name: &str, ttl: Duration) -> Result<LeaseOutcome, StateError> {
        limits::check_id(name)?;
        let ttl_ms = limits::ttl_ms(ttl)?;
        let now = Instant::now();
        let mut inner = self.lock()?;
        if let Some(held) = inner.leases.get(name)
            && now < held.expires_at
        {
            return Ok(LeaseOutcome::Held {
                remaining: held.expires_at - now,
            });
        }
        let fence = inner
            .last_fence
            .checked_add(1)
            .ok_or_else(|| StateError::Corrupt("lease fence overflow".into()))?;
        inner.last_fence = fence;
        let mut token = [0u8; 16];
        rand::rng().fill_bytes(&mut token);
        let held = HeldLease {
            token,
            fence,
            expires_at: now + Duration::from_millis(ttl_ms),
        };
        inner.leases.insert(name.to_owned(), held);
        Ok(LeaseOutcome::Acquired(Lease {
            name: name.to_owned(),
            token,
            fence,
        }))
    }

    async fn lease_renew(&self, lease: &Lease, ttl: Duration) -> Result<bool, StateError> {
        limits::check_id(&lease.name)?;
        let ttl_ms = limits::ttl_ms(ttl)?;
        let now = Instant::now();
        let mut inner = self.lock()?;
        match inner.leases.get_mut(&lease.name) {
            Some(held) if now < held.expires_at && held.is_held_by(lease) => {
                held.expires_at = now + Duration::from_millis(ttl_ms);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn lease_release(&self, lease: &Lease) -> Result<bool, StateError> {
        limits::check_id(&lease.name)?;
        let now = Instant::now();
        let mut inner = self.lock()?;
        match inner.leases.get(&lease.name) {
            // Our own lease is removed even if it already expired; only a live one counts
            // as released (as in the embedded store; in Redis an expired one is gone).
            Some(held) if held.is_held_by(lease) => {
                let live = now < held.expires_at;
                inner.leases.remove(&lease.name);
                Ok(live)
            }
            _ => Ok(false),
        }
    }

    async fn log_head(&self, log: LogName) -> Result<Option<LogEntry>, StateError> {
        limits::check_static_name(log.0)?;
        let inner = self.lock()?;
        Ok(head(&inner, log))
    }

    async fn log_append(
        &self,
        log: LogName,
        expected_next: u64,
        entries: &[Vec<u8>],
    ) -> Result<AppendOutcome, StateError> {
        limits::check_static_name(log.0)?;
        limits::check_append(expected_next, entries)?;
        let mut inner = self.lock()?;
        let len = inner.logs.get(log.0).map_or(0, Vec::len) as u64;
        if len + 1 != expected_next {
            return Ok(AppendOutcome::Conflict(head(&inner, log)));
        }
        inner
            .logs
            .entry(log.0)
            .or_default()
            .extend(entries.iter().cloned());
        Ok(AppendOutcome::Appended {
            first: expected_next,
        })
    }

    async fn log_read(
        &self,
        log: LogName,
        from: u64,
        limit: usize,
    ) -> Result<Vec<LogEntry>, StateError> {
        limits::check_static_name(log.0)?;
        limits::check_page(limit)?;
        let inner = self.lock()?;
        let Some(entries) = inner.logs.get(log.0) else {
            return Ok(Vec::new());
        };
        let from = from.max(1);
        Ok((from..=entries.len() as u64)
            .take(limit)
            .map(|seq| LogEntry {
                seq,
                // `seq` runs from 1 to the log's length, so the index is in bounds.
                bytes: entries[(seq - 1) as usize].clone(),
            })
            .collect())
    }
}

// === helpers ===

/// The version of the live (unexpired) record under `key`, if any.
fn live_version(inner: &Inner, key: &(&'static str, String), now: Instant) -> Option<u64> {
    inner
        .records
        .get(key)
        .filter(|r| r.is_live(now))
        .map(|r| r.version)
}

/// Live records of `ns` with ids after `after`, in ascending id order.
fn live_ids<'a>(
    inner: &'a Inner,
    ns: Namespace,
    after: Option<&str>,
    now: Instant,
) -> impl Iterator<Item = (&'a str, &'a Record)> {
    let start = match after {
        Some(after) => Bound::Excluded((ns.as_str(), after.to_owned())),
        None => Bound::Included((ns.as_str(), String::new())),
    };
    inner
        .records
        .range((start, Bound::Unbounded))
        .take_while(move |((n, _), _)| *n == ns.as_str())
        .filter(move |(_, r)| r.is_live(now))
        .map(|((_, id), r)| (id.as_str(), r))
}

fn head(inner: &Inner, log: LogName) -> Option<LogEntry> {
    let entries = inner.logs.get(log.0)?;
    let bytes = entries.last()?.clone();
    Some(LogEntry {
        seq: entries.len() as u64,
        bytes,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    //! What the conformance suite does not ask: that `Debug` never shows record bytes.

    use super::*;

    #[tokio::test]
    async fn debug_shows_no_record_bytes() {
        let store = MemoryStore::new();
        let ns = Namespace::new("dek");
        store
            .put(
                ns,
                "a",
                b"wrapped-key-bytes",
                Expect::Absent,
                PutOptions::default(),
            )
            .await
            .unwrap();
        let shown = format!("{store:?} {:?}", store.get(ns, "a").await.unwrap());
        assert!(!shown.contains("wrapped-key"), "{shown}");
        assert!(shown.contains("records: Some(1)"), "{shown}");
    }
}
