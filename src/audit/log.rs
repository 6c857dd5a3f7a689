//! The audit log port: where the hash chain's entries are stored.
//!
//! The chain needs three operations from its storage and nothing else: the last entry
//! ([`AuditLog::head`]), a compare-and-append of a batch of entries
//! ([`AuditLog::append`]: atomic, and only if the next sequence number is the one the
//! writer built the batch on) and a paged read ([`AuditLog::read`]). Every log also has a
//! name, which signed checkpoints carry (`sallyport/<name>`).
//!
//! Adapters: [`StateLog`] keeps the entries in a state-store log (the embedded redb store
//! or Redis; one chain shared by every instance on that store), and
//! `Journal` (the `journal` module) in append-only segment files of this instance.
//!
//! Not here: the entry format and the chain rules ([`super::chain`]); the writer that
//! batches appends ([`super::Auditor`]).

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

pub use crate::state::{AppendOutcome, LogEntry};
use crate::state::{LogName, StateError, StateStore};

/// Storage for the audit chain's entries: a gapless, append-only sequence (the first entry
/// is 1) of opaque byte strings.
#[async_trait]
pub trait AuditLog: Send + Sync + fmt::Debug + 'static {
    /// The log's name (`audit`); checkpoints name the log `sallyport/<name>`.
    fn name(&self) -> &str;

    /// The last entry, `None` when the log is empty.
    async fn head(&self) -> Result<Option<LogEntry>, StateError>;

    /// Appends `entries` (at least one) as `expected_next..`, atomically and durably, if
    /// the log's next sequence number is `expected_next`; otherwise changes nothing and
    /// answers with the current head.
    async fn append(
        &self,
        expected_next: u64,
        entries: &[Vec<u8>],
    ) -> Result<AppendOutcome, StateError>;

    /// Entries with `seq >= from`, ascending, at most `limit`.
    async fn read(&self, from: u64, limit: usize) -> Result<Vec<LogEntry>, StateError>;

    /// The first sequence number this log holds: 1, or later when the entries before it
    /// were archived (`audit::archive`); reads from before it start there.
    async fn first_seq(&self) -> Result<u64, StateError> {
        Ok(1)
    }

    /// The last archived entry when the log starts after entry 1 (the journal's archive
    /// base): a verification of the log alone continues the chain from it.
    async fn archive_base(&self) -> Result<Option<LogEntry>, StateError> {
        Ok(None)
    }
}

/// The audit chain in a state-store log ([`StateStore::log_append`] and friends).
#[derive(Debug, Clone)]
pub struct StateLog {
    store: Arc<dyn StateStore>,
    log: LogName,
}

impl StateLog {
    /// The chain in `store`'s log [`super::AUDIT_LOG`].
    pub fn new(store: Arc<dyn StateStore>) -> Self {
        Self {
            store,
            log: super::AUDIT_LOG,
        }
    }

    /// [`StateLog::new`] behind the port.
    pub fn shared(store: Arc<dyn StateStore>) -> Arc<dyn AuditLog> {
        Arc::new(Self::new(store))
    }
}

#[async_trait]
impl AuditLog for StateLog {
    fn name(&self) -> &str {
        self.log.0
    }

    async fn head(&self) -> Result<Option<LogEntry>, StateError> {
        self.store.log_head(self.log).await
    }

    async fn append(
        &self,
        expected_next: u64,
        entries: &[Vec<u8>],
    ) -> Result<AppendOutcome, StateError> {
        self.store
            .log_append(self.log, expected_next, entries)
            .await
    }

    async fn read(&self, from: u64, limit: usize) -> Result<Vec<LogEntry>, StateError> {
        self.store.log_read(self.log, from, limit).await
    }
}
