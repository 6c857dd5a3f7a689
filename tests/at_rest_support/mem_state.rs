//! An in-memory `StateStore` with exactly the record semantics of the trait (versions,
//! compare-and-swap, index entries, ordered listing). Counters, leases, logs and TTLs are
//! not needed by the at-rest tests and answer `StateError::Invalid`.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use sallyport::state::{
    AppendOutcome, CasOutcome, CounterOutcome, Expect, IndexEntry, Lease, LeaseOutcome, LogEntry,
    LogName, Namespace, PutOptions, StateError, StateStore, Versioned,
};

#[derive(Debug, Default)]
pub struct MemState {
    records: Mutex<BTreeMap<(&'static str, String), Record>>,
    /// When set, puts fail with `Unavailable` once this many more have succeeded.
    puts_left: Mutex<Option<u64>>,
}

#[derive(Debug, Clone)]
struct Record {
    value: Vec<u8>,
    version: u64,
    index: Vec<IndexEntry>,
}

impl MemState {
    /// Makes every put after the next `n` fail (an outage), until `heal`.
    pub fn fail_puts_after(&self, n: u64) {
        *self.puts_left.lock().unwrap() = Some(n);
    }

    /// Ends the simulated outage.
    pub fn heal(&self) {
        *self.puts_left.lock().unwrap() = None;
    }

    /// Overwrites a record's bytes directly (tampering tests), keeping its index.
    pub fn tamper(&self, ns: Namespace, id: &str, value: Vec<u8>) {
        let mut records = self.records.lock().unwrap();
        let rec = records.get_mut(&(ns.as_str(), id.to_owned())).unwrap();
        rec.value = value;
        rec.version += 1;
    }

    /// A record's bytes, if present.
    pub fn raw(&self, ns: Namespace, id: &str) -> Option<Vec<u8>> {
        let records = self.records.lock().unwrap();
        records
            .get(&(ns.as_str(), id.to_owned()))
            .map(|r| r.value.clone())
    }
}

fn check(expect: Expect, current: Option<u64>) -> bool {
    match expect {
        Expect::Any => true,
        Expect::Absent => current.is_none(),
        Expect::Version(v) => current == Some(v),
    }
}

#[async_trait]
impl StateStore for MemState {
    fn kind(&self) -> &'static str {
        "memory"
    }

    async fn ping(&self) -> Result<(), StateError> {
        Ok(())
    }

    async fn get(&self, ns: Namespace, id: &str) -> Result<Option<Versioned>, StateError> {
        let records = self.records.lock().unwrap();
        Ok(records
            .get(&(ns.as_str(), id.to_owned()))
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
        if let Some(left) = self.puts_left.lock().unwrap().as_mut() {
            if *left == 0 {
                return Err(StateError::Unavailable("simulated outage".into()));
            }
            *left -= 1;
        }
        if options.ttl.is_some() {
            return Err(StateError::Invalid("the in-memory test store has no TTLs"));
        }
        let mut records = self.records.lock().unwrap();
        let key = (ns.as_str(), id.to_owned());
        let current = records.get(&key).map(|r| r.version);
        if !check(expect, current) {
            return Ok(CasOutcome::Conflict(current));
        }
        let version = current.unwrap_or(0) + 1;
        records.insert(
            key,
            Record {
                value: value.to_vec(),
                version,
                index: options.index,
            },
        );
        Ok(CasOutcome::Applied(version))
    }

    async fn delete(
        &self,
        ns: Namespace,
        id: &str,
        expect: Expect,
    ) -> Result<CasOutcome, StateError> {
        let mut records = self.records.lock().unwrap();
        let key = (ns.as_str(), id.to_owned());
        let current = records.get(&key).map(|r| r.version);
        let ok = match (expect, current) {
            (Expect::Absent, None) | (Expect::Any, _) => true,
            (e, c) => check(e, c),
        };
        if !ok {
            return Ok(CasOutcome::Conflict(current));
        }
        records.remove(&key);
        Ok(CasOutcome::Applied(0))
    }

    async fn list_index(
        &self,
        ns: Namespace,
        entry: &IndexEntry,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StateError> {
        let records = self.records.lock().unwrap();
        Ok(records
            .iter()
            .filter(|((n, id), r)| {
                *n == ns.as_str()
                    && after.is_none_or(|a| id.as_str() > a)
                    && r.index.contains(entry)
            })
            .map(|((_, id), _)| id.clone())
            .take(limit)
            .collect())
    }

    async fn list(
        &self,
        ns: Namespace,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StateError> {
        let records = self.records.lock().unwrap();
        Ok(records
            .keys()
            .filter(|(n, id)| *n == ns.as_str() && after.is_none_or(|a| id.as_str() > a))
            .map(|(_, id)| id.clone())
            .take(limit)
            .collect())
    }

    async fn counter_get(&self, _: Namespace, _: &str) -> Result<i64, StateError> {
        Err(StateError::Invalid(
            "the in-memory test store has records only",
        ))
    }

    async fn counter_add(
        &self,
        _: Namespace,
        _: &str,
        _: i64,
        _: Option<i64>,
    ) -> Result<CounterOutcome, StateError> {
        Err(StateError::Invalid(
            "the in-memory test store has records only",
        ))
    }

    async fn lease_acquire(&self, _: &str, _: Duration) -> Result<LeaseOutcome, StateError> {
        Err(StateError::Invalid(
            "the in-memory test store has records only",
        ))
    }

    async fn lease_renew(&self, _: &Lease, _: Duration) -> Result<bool, StateError> {
        Err(StateError::Invalid(
            "the in-memory test store has records only",
        ))
    }

    async fn lease_release(&self, _: &Lease) -> Result<bool, StateError> {
        Err(StateError::Invalid(
            "the in-memory test store has records only",
        ))
    }

    async fn log_head(&self, _: LogName) -> Result<Option<LogEntry>, StateError> {
        Err(StateError::Invalid(
            "the in-memory test store has records only",
        ))
    }

    async fn log_append(
        &self,
        _: LogName,
        _: u64,
        _: &[Vec<u8>],
    ) -> Result<AppendOutcome, StateError> {
        Err(StateError::Invalid(
            "the in-memory test store has records only",
        ))
    }

    async fn log_read(&self, _: LogName, _: u64, _: usize) -> Result<Vec<LogEntry>, StateError> {
        Err(StateError::Invalid(
            "the in-memory test store has records only",
        ))
    }
}
