//! The test Redis: where it is (`SALLYPORT_TEST_REDIS_URL`, else 127.0.0.1:6379), whether
//! it answers (under the `ci` rule), and per-test key prefixes whose keys are deleted
//! afterwards, so tests share one Redis without meeting.

use std::time::Duration;

use sallyport::ids::OpaqueId;

/// The test Redis's URL.
pub fn url() -> String {
    std::env::var("SALLYPORT_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Whether the test Redis answers a PING; under `CI` a Redis that does not is a failure,
/// elsewhere the caller skips after a notice.
pub fn available() -> bool {
    let url = url();
    let reachable = redis::Client::open(url.as_str())
        .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(2)))
        .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c));
    super::ci::require_or_skip(&format!("Redis at {url}"), reachable).is_some()
}

/// A key prefix no other test run uses: `sallyport-test:<test>:<random>:`.
pub fn unique_prefix(test: &str) -> String {
    format!("sallyport-test:{test}:{}:", OpaqueId::random())
}

/// A unique prefix whose keys are deleted when it drops (even after a failed assertion).
/// Declare it before the gateways that use it, so it drops after them.
pub struct Prefix(String);

impl Prefix {
    /// A fresh prefix for `test`.
    pub fn new(test: &str) -> Self {
        Self(unique_prefix(test))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Drop for Prefix {
    fn drop(&mut self) {
        delete_prefix(&self.0);
    }
}

/// Deletes every key under `prefix` (synchronously, so it also runs while unwinding).
pub fn delete_prefix(prefix: &str) {
    let Ok(client) = redis::Client::open(url()) else {
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
