//! The one rule for tests that need something this machine may lack (Redis, a real tus
//! client, `redis-server`): under `CI` a missing dependency is a failure, because a
//! skipped test proves nothing; elsewhere the test prints a notice and skips.

use std::fmt::Display;

/// Whether the `CI` environment variable is set.
pub fn is_ci() -> bool {
    std::env::var_os("CI").is_some()
}

/// `Some(value)` when `available` is `Ok`. Otherwise: under `CI`, panics naming `what`
/// and the reason; elsewhere prints `NOTICE: skipping …` and returns `None`, so the test
/// returns early.
pub fn require_or_skip<T, E: Display>(what: &str, available: Result<T, E>) -> Option<T> {
    match available {
        Ok(value) => Some(value),
        Err(why) => {
            skip(what, why);
            None
        }
    }
}

/// [`require_or_skip`] for a plain condition.
pub fn require(what: &str, available: bool) -> bool {
    require_or_skip(
        what,
        if available {
            Ok(())
        } else {
            Err("not available")
        },
    )
    .is_some()
}

/// Reports that `what` is unavailable because of `why`: a panic under `CI`, a notice
/// otherwise (the caller then returns).
pub fn skip(what: &str, why: impl Display) {
    if is_ci() {
        panic!("CI is set and {what} is unavailable: {why}");
    }
    eprintln!("NOTICE: skipping, {what} is unavailable: {why}");
}

/// The test Redis: `SALLYPORT_TEST_REDIS_URL`, else 127.0.0.1:6379.
pub fn redis_url() -> String {
    std::env::var("SALLYPORT_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Whether the test Redis accepts a TCP connection, under the rule above.
pub fn redis_available() -> bool {
    let url = redis_url();
    let hostport = url
        .trim_start_matches("redis://")
        .trim_end_matches('/')
        .rsplit('@')
        .next()
        .unwrap_or_default()
        .to_owned();
    let reachable = std::net::ToSocketAddrs::to_socket_addrs(&hostport)
        .map_err(|e| e.to_string())
        .and_then(|mut addrs| addrs.next().ok_or_else(|| "no address".to_owned()))
        .and_then(|addr| {
            std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(2))
                .map_err(|e| e.to_string())
        });
    require_or_skip(&format!("Redis at {url}"), reachable).is_some()
}
