//! Where queries, traces and the index read the chain from: one narrow seam,
//! [`EntrySource`], so that moving the chain's storage changes one implementation here
//! and nothing in `query`, `index` or `search`.
//!
//! Today the chain lives in the state store's log [`AUDIT_LOG`]: [`StateLog`] reads it.
//!
//! Not here: writing entries (the writer in `audit`), parsing them (`query`).

use std::sync::Arc;

use async_trait::async_trait;

use super::AUDIT_LOG;
use crate::state::{StateError, StateStore};

/// Reads the audit chain in sequence order.
#[async_trait]
pub trait EntrySource: Send + Sync {
    /// The sequence number of the last entry (0 for an empty chain).
    async fn head_seq(&self) -> Result<u64, StateError>;

    /// Up to `limit` entries from `from` on, in order, as `(seq, stored bytes)`.
    async fn read(&self, from: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, StateError>;
}

/// The chain in the state store's audit log.
#[derive(Clone)]
pub struct StateLog(pub Arc<dyn StateStore>);

impl std::fmt::Debug for StateLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateLog").finish_non_exhaustive()
    }
}

#[async_trait]
impl EntrySource for StateLog {
    async fn head_seq(&self) -> Result<u64, StateError> {
        Ok(self.0.log_head(AUDIT_LOG).await?.map_or(0, |e| e.seq))
    }

    async fn read(&self, from: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, StateError> {
        let page = self.0.log_read(AUDIT_LOG, from.max(1), limit).await?;
        Ok(page.into_iter().map(|e| (e.seq, e.bytes)).collect())
    }
}
