//! Test fixtures: a fresh in-memory store, a fresh embedded store in a temp dir, or a Redis store under a random key
//! prefix whose keys are deleted when the harness drops (even after a failed assertion).

use std::sync::Arc;
use std::time::Duration;

use sallyport::state::StateStore;
use sallyport::state::embedded::EmbeddedStateStore;
use sallyport::state::memory::MemoryStore;
use sallyport::state::redis::{RedisStateStore, RedisTimeouts};

pub use crate::support::redis::{delete_prefix, url as redis_url};

/// A unique key prefix for one test.
pub fn unique_prefix() -> String {
    crate::support::redis::unique_prefix("state")
}

/// Connects to the test Redis, or decides what to do when it is not there: fail under `CI`,
/// otherwise print a notice and return `None` so the test is skipped.
pub async fn connect_redis(prefix: &str) -> Option<RedisStateStore> {
    let timeouts = RedisTimeouts {
        connect: Duration::from_secs(2),
        command: Duration::from_secs(10),
    };
    let connected = RedisStateStore::connect_with(&redis_url(), prefix, timeouts).await;
    crate::support::ci::require_or_skip(&format!("Redis at {}", redis_url()), connected)
}

pub struct Harness {
    store: Arc<dyn StateStore>,
    _dir: Option<tempfile::TempDir>,
    redis_prefix: Option<String>,
}

impl Harness {
    pub fn memory() -> Self {
        Self {
            store: Arc::new(MemoryStore::new()),
            _dir: None,
            redis_prefix: None,
        }
    }

    pub fn embedded() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStateStore::open(&dir.path().join("state.redb")).unwrap();
        Self {
            store: Arc::new(store),
            _dir: Some(dir),
            redis_prefix: None,
        }
    }

    pub async fn redis() -> Option<Self> {
        let prefix = unique_prefix();
        let store = connect_redis(&prefix).await?;
        Some(Self {
            store: Arc::new(store),
            _dir: None,
            redis_prefix: Some(prefix),
        })
    }

    pub fn store(&self) -> Arc<dyn StateStore> {
        Arc::clone(&self.store)
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(prefix) = &self.redis_prefix {
            delete_prefix(prefix);
        }
    }
}
