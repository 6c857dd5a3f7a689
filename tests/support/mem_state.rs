//! The library's in-memory state store ([`MemoryStore`], which passes the `StateStore`
//! conformance suite) with the faults the tests inject: an outage of writes after a number
//! of successful ones, tampering with a record behind its owner's back (the at-rest key
//! tests), and a failed audit append (`fail_next_log_append`, `fail_log_append_after`: the
//! audit-before-acting tests, which check `log_faults_fired` so none can pass by never
//! reaching the fault). Everything else is passed through unchanged.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use sallyport::state::memory::MemoryStore;
use sallyport::state::{
    AppendOutcome, CasOutcome, CounterOutcome, Expect, IndexEntry, Lease, LeaseOutcome, LogEntry,
    LogName, Namespace, PutOptions, StateError, StateStore, Versioned,
};

#[derive(Debug, Default)]
pub struct FaultyState {
    inner: MemoryStore,
    /// When set, puts fail with `Unavailable` once this many more have succeeded.
    puts_left: Mutex<Option<u64>>,
    /// The options of each record's last write, so tampering keeps its index entries.
    options: Mutex<HashMap<(Namespace, String), PutOptions>>,
    /// When set, the log append after this many more successful ones fails (once).
    appends_left: Mutex<Option<u64>>,
    /// How many log appends were failed on purpose.
    log_faults: Mutex<u64>,
}

impl FaultyState {
    /// Makes every put after the next `n` fail (an outage), until `heal`.
    pub fn fail_puts_after(&self, n: u64) {
        *self.puts_left.lock().unwrap() = Some(n);
    }

    /// Ends the simulated outage.
    pub fn heal(&self) {
        *self.puts_left.lock().unwrap() = None;
    }

    /// Makes the next log append (the next audit write) fail with `Unavailable`, once.
    pub fn fail_next_log_append(&self) {
        self.fail_log_append_after(0);
    }

    /// Lets `n` log appends succeed, then fails the next one, once.
    pub fn fail_log_append_after(&self, n: u64) {
        *self.appends_left.lock().unwrap() = Some(n);
    }

    /// How many log appends were failed on purpose so far.
    pub fn log_faults_fired(&self) -> u64 {
        *self.log_faults.lock().unwrap()
    }

    /// Whether an armed log-append fault is still waiting to fire.
    pub fn log_fault_armed(&self) -> bool {
        self.appends_left.lock().unwrap().is_some()
    }

    /// A record's bytes, if present.
    pub async fn raw(&self, ns: Namespace, id: &str) -> Option<Vec<u8>> {
        self.inner.get(ns, id).await.unwrap().map(|v| v.value)
    }

    /// Overwrites a record's bytes as a new version, keeping its index entries and TTL,
    /// bypassing any outage.
    pub async fn tamper(&self, ns: Namespace, id: &str, value: Vec<u8>) {
        let options = self.options.lock().unwrap()[&(ns, id.to_owned())].clone();
        let current = self.inner.get(ns, id).await.unwrap().unwrap().version;
        let outcome = self
            .inner
            .put(ns, id, &value, Expect::Version(current), options)
            .await
            .unwrap();
        assert_eq!(outcome, CasOutcome::Applied(current + 1));
    }
}

#[async_trait]
impl StateStore for FaultyState {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    async fn ping(&self) -> Result<(), StateError> {
        self.inner.ping().await
    }

    async fn get(&self, ns: Namespace, id: &str) -> Result<Option<Versioned>, StateError> {
        self.inner.get(ns, id).await
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
        let outcome = self
            .inner
            .put(ns, id, value, expect, options.clone())
            .await?;
        if let CasOutcome::Applied(_) = outcome {
            self.options
                .lock()
                .unwrap()
                .insert((ns, id.to_owned()), options);
        }
        Ok(outcome)
    }

    async fn delete(
        &self,
        ns: Namespace,
        id: &str,
        expect: Expect,
    ) -> Result<CasOutcome, StateError> {
        self.inner.delete(ns, id, expect).await
    }

    async fn list_index(
        &self,
        ns: Namespace,
        entry: &IndexEntry,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StateError> {
        self.inner.list_index(ns, entry, after, limit).await
    }

    async fn list(
        &self,
        ns: Namespace,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StateError> {
        self.inner.list(ns, after, limit).await
    }

    async fn counter_get(&self, ns: Namespace, id: &str) -> Result<i64, StateError> {
        self.inner.counter_get(ns, id).await
    }

    async fn counter_add(
        &self,
        ns: Namespace,
        id: &str,
        delta: i64,
        limit: Option<i64>,
    ) -> Result<CounterOutcome, StateError> {
        self.inner.counter_add(ns, id, delta, limit).await
    }

    async fn lease_acquire(&self, name: &str, ttl: Duration) -> Result<LeaseOutcome, StateError> {
        self.inner.lease_acquire(name, ttl).await
    }

    async fn lease_renew(&self, lease: &Lease, ttl: Duration) -> Result<bool, StateError> {
        self.inner.lease_renew(lease, ttl).await
    }

    async fn lease_release(&self, lease: &Lease) -> Result<bool, StateError> {
        self.inner.lease_release(lease).await
    }

    async fn log_head(&self, log: LogName) -> Result<Option<LogEntry>, StateError> {
        self.inner.log_head(log).await
    }

    async fn log_append(
        &self,
        log: LogName,
        expected_next: u64,
        entries: &[Vec<u8>],
    ) -> Result<AppendOutcome, StateError> {
        {
            let mut left = self.appends_left.lock().unwrap();
            match left.as_mut() {
                Some(0) => {
                    *left = None;
                    *self.log_faults.lock().unwrap() += 1;
                    return Err(StateError::Unavailable(
                        "simulated audit append failure".into(),
                    ));
                }
                Some(n) => *n -= 1,
                None => {}
            }
        }
        self.inner.log_append(log, expected_next, entries).await
    }

    async fn log_read(
        &self,
        log: LogName,
        from: u64,
        limit: usize,
    ) -> Result<Vec<LogEntry>, StateError> {
        self.inner.log_read(log, from, limit).await
    }
}
