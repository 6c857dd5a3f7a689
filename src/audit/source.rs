//! Where queries, traces and the index read the chain from: one narrow seam,
//! [`EntrySource`], so that moving the chain's storage changes one implementation here
//! and nothing in `query`, `index` or `search`.
//!
//! The chain is read through the [`AuditLog`] port (the journal or the state-store log,
//! whichever `audit.store` names): [`Chain`] adapts it.

//! Not here: writing entries (the writer in `audit`), parsing them (`query`).

use std::sync::Arc;

use async_trait::async_trait;

use super::log::AuditLog;
use crate::state::StateError;

/// Reads the audit chain in sequence order.
#[async_trait]
pub trait EntrySource: Send + Sync {
    /// The sequence number of the last entry (0 for an empty chain).
    async fn head_seq(&self) -> Result<u64, StateError>;

    /// Up to `limit` entries from `from` on, in order, as `(seq, stored bytes)`.
    async fn read(&self, from: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, StateError>;

    /// The first sequence number the chain still holds (1, or later once a prefix was
    /// archived: queries cover the live part).
    async fn first_seq(&self) -> Result<u64, StateError> {
        Ok(1)
    }
}

/// The chain behind the [`AuditLog`] port.
#[derive(Clone)]
pub struct Chain(pub Arc<dyn AuditLog>);

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chain")
            .field("log", &self.0.name())
            .finish()
    }
}

#[async_trait]
impl EntrySource for Chain {
    async fn head_seq(&self) -> Result<u64, StateError> {
        Ok(self.0.head().await?.map_or(0, |e| e.seq))
    }

    async fn read(&self, from: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, StateError> {
        let page = self.0.read(from.max(1), limit).await?;
        Ok(page.into_iter().map(|e| (e.seq, e.bytes)).collect())
    }

    async fn first_seq(&self) -> Result<u64, StateError> {
        self.0.first_seq().await
    }
}
