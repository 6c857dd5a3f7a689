//! The `StateStore` conformance suite: every case in `cases` is written once against
//! `Arc<dyn StateStore>` and run against the in-memory store the other tests use
//! (`MemoryStore`), the embedded store (in a temp dir) and the real Redis at
//! 127.0.0.1:6379 (override with `SALLYPORT_TEST_REDIS_URL`), each Redis test under its
//! own random key prefix, deleted afterwards.
//!
//! When Redis is unreachable the Redis tests print a notice and return, except when the `CI`
//! environment variable is set: then they fail (`support::ci`).
//!
//! Also here: embedded-only checks (file lock, sweeper, reopen, modes), Redis-only checks
//! (unreachable or silent server, foreign data under our keys), Redis presence and lease
//! takeover from dead holders (`redis_presence`), and the
//! cross-process lease tests, which re-run this test binary as a child process that takes a
//! lease and is then killed with SIGKILL (see `child_lease_holder`).

#![allow(clippy::unwrap_used)]

#[path = "state_store/cases_coordination.rs"]
mod cases_coordination;
#[path = "state_store/cases_records.rs"]
mod cases_records;
/// Every conformance case, by name, for the `suite!` macro.
mod cases {
    pub use crate::cases_coordination::*;
    pub use crate::cases_records::*;
}
#[path = "state_store/embedded_only.rs"]
mod embedded_only;
#[path = "state_store/harness.rs"]
mod harness;
#[path = "state_store/processes.rs"]
mod processes;
#[path = "state_store/redis_only.rs"]
mod redis_only;
#[path = "state_store/redis_presence.rs"]
mod redis_presence;
mod support;

/// Generates one test per case for each backend.
macro_rules! suite {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let h = crate::harness::Harness::memory();
                    crate::cases::$case(h.store()).await;
                }
            )*
        }
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let h = crate::harness::Harness::embedded();
                    crate::cases::$case(h.store()).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let Some(h) = crate::harness::Harness::redis().await else { return };
                    crate::cases::$case(h.store()).await;
                }
            )*
        }
    };
}

suite!(
    ping_and_kind,
    cas_create_update_conflict_delete,
    values_are_binary_safe,
    namespaces_and_kinds_are_separate,
    cas_races_have_one_winner,
    ttl_expiry,
    rewrite_sets_ttl_anew,
    index_listing_and_paging,
    index_entries_follow_rewrites_and_deletes,
    expired_records_leave_the_index,
    list_namespace,
    deferred_writes_are_writes,
    counters,
    counters_are_exact_beyond_2_pow_53,
    counter_race_spends_exactly_the_limit,
    deferred_counters_are_counters,
    leases,
    lease_expiry_and_reacquire,
    logs,
    log_race_is_gapless,
    bad_requests_are_refused,
);
