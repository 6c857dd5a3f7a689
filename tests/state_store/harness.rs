//! Test fixtures: a fresh in-memory store, a fresh embedded store in a temp dir, or a Redis store under a random key
//! prefix whose keys are deleted when the harness drops (even after a failed assertion).

use std::sync::Arc;
use std::time::Duration;

use sallyport::ids::OpaqueId;
use sallyport::state::StateStore;
use sallyport::state::embedded::EmbeddedStateStore;
use sallyport::state::memory::MemoryStore;
use sallyport::state::redis::{RedisStateStore, RedisTimeouts};

pub use crate::support::ci::redis_url;

/// A unique key prefix for one test.
pub fn unique_prefix() -> String {
    format!("sallyport-test:{}:", OpaqueId::random())
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

/// Deletes every key under `prefix` (synchronously, so it also runs while unwinding).
pub fn delete_prefix(prefix: &str) {
    let Ok(client) = redis::Client::open(redis_url()) else {
        return;
    };
    let Ok(mut con) = client.get_connection_with_timeout(Duration::from_secs(2)) else {
        return;
    };
    let mut cursor: u64 = 0;
    loop {
        let Ok((next, keys)): redis::RedisResult<(u64, Vec<Vec<u8>>)> = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query(&mut con)
        else {
            return;
        };
        if !keys.is_empty() {
            let _: redis::RedisResult<i64> = redis::cmd("DEL").arg(keys).query(&mut con);
        }
        if next == 0 {
            return;
        }
        cursor = next;
    }
}
