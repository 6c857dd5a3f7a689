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
#[track_caller]
pub fn require_or_skip<T, E: Display>(what: &str, available: Result<T, E>) -> Option<T> {
    match available {
        Ok(value) => Some(value),
        Err(why) => {
            skip(what, why);
            None
        }
    }
}

/// Reports that `what` is unavailable because of `why`: a panic under `CI`, a notice
/// otherwise (the caller then returns).
#[track_caller]
pub fn skip(what: &str, why: impl Display) {
    if is_ci() {
        panic!("CI is set and {what} is unavailable: {why}");
    }
    eprintln!("NOTICE: skipping, {what} is unavailable: {why}");
}
