//! Where queries, traces and the index read the chain from: one narrow seam,
//! [`EntrySource`], so that moving the chain's storage changes one implementation here
//! and nothing in `query`, `index` or `search`.
//!
//! The chain is read through the [`AuditLog`] port (the journal or the state-store log,
//! whichever `audit.store` names): [`Chain`] adapts it.
//!
//! [`Tap`] is the other way in for the index: the entries this process's writer has just
//! made durable, handed over in memory, so that the indexer does not read back (and
//! decode) from the journal what the writer wrote a moment ago. It is only a shortcut:
//! the indexer uses what it holds only where it continues the index exactly, and reads
//! the chain for anything else (entries of other instances, entries the tap dropped).
//!
//! Not here: writing entries (the writer in `audit`), parsing them (`query`).

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio::sync::Notify;

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

/// Entries the writer appended, `(seq, stored bytes)` in order, held for the indexer (see
/// the module docs). Bounded: past `cap` entries it drops what it holds (the indexer then
/// reads them from the chain), so a stalled indexer costs the writer no memory.
#[derive(Debug)]
pub struct Tap {
    held: Mutex<Vec<(u64, Vec<u8>)>>,
    /// Notified when `page` entries are held.
    filled: Notify,
    page: usize,
    cap: usize,
}

impl Tap {
    /// A tap that wakes its reader at `page` entries and holds at most `cap`.
    pub fn new(page: usize, cap: usize) -> Self {
        Self {
            held: Mutex::new(Vec::new()),
            filled: Notify::new(),
            page: page.max(1),
            cap: cap.max(page),
        }
    }

    /// Hands over entries `first, first + 1, …` just made durable (the writer's side).
    pub fn push(&self, first: u64, entries: Vec<Vec<u8>>) {
        let Ok(mut held) = self.held.lock() else {
            return;
        };
        if held.len() + entries.len() > self.cap {
            // The indexer is behind: it reads these from the chain instead.
            held.clear();
            return;
        }
        let before = held.len();
        held.extend((first..).zip(entries));
        if before < self.page && held.len() >= self.page {
            self.filled.notify_one();
        }
    }

    /// Takes what is held.
    pub fn take(&self) -> Vec<(u64, Vec<u8>)> {
        self.held
            .lock()
            .map(|mut held| std::mem::take(&mut *held))
            .unwrap_or_default()
    }

    /// Completes once a page's worth is held (or was, since the last wait).
    pub async fn filled(&self) {
        self.filled.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::Tap;

    #[test]
    fn a_tap_numbers_what_it_holds_and_drops_it_all_past_its_cap() {
        let tap = Tap::new(2, 4);
        tap.push(7, vec![b"a".to_vec(), b"b".to_vec()]);
        tap.push(9, vec![b"c".to_vec()]);
        let seqs: Vec<u64> = tap.take().into_iter().map(|(s, _)| s).collect();
        assert_eq!(seqs, [7, 8, 9]);
        assert!(tap.take().is_empty(), "taken once");
        tap.push(10, vec![b"d".to_vec(); 3]);
        tap.push(13, vec![b"e".to_vec(); 2]);
        assert!(
            tap.take().is_empty(),
            "past the cap everything held is dropped"
        );
        tap.push(15, vec![b"f".to_vec()]);
        assert_eq!(tap.take(), [(15, b"f".to_vec())]);
    }

    #[tokio::test]
    async fn a_tap_wakes_its_reader_at_a_page() {
        let tap = std::sync::Arc::new(Tap::new(3, 100));
        tap.push(1, vec![b"a".to_vec(); 2]);
        let waiting = tokio::spawn({
            let tap = tap.clone();
            async move { tap.filled().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "two of three");
        tap.push(3, vec![b"c".to_vec()]);
        tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .expect("woken at a page")
            .unwrap();
    }
}
