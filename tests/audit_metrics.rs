#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The audit writer's commit metrics, in process over the library's `MemoryStore`: group
//! commits, entries per commit, bytes, the chain length, and appends rebuilt because
//! another writer (another instance) appended first.

use std::sync::Arc;

use futures_util::future::join_all;
use sallyport::audit::log::StateLog;
use sallyport::audit::{AuditContext, Auditor};
use sallyport::metrics::Metrics;
use sallyport::state::memory::MemoryStore;

mod support;

use support::audit_probe::Probe;

/// The value of the sample line that starts with `name ` (no labels).
fn sample(metrics: &Metrics, name: &str) -> f64 {
    let text = metrics.encode();
    let prefix = format!("{name} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_entries_bytes_and_length_add_up() {
    let store = Arc::new(MemoryStore::new());
    let metrics = Arc::new(Metrics::new());
    let log = StateLog::shared(store.clone());
    let auditor = Arc::new(Auditor::start(log.clone(), "a".into(), 16, metrics.clone()));
    let emits = (0..64).map(|n| {
        let a = auditor.clone();
        async move { a.emit(&AuditContext::system(), &Probe { n }).await }
    });
    for r in join_all(emits).await {
        r.unwrap();
    }
    let commits = sample(&metrics, "sallyport_audit_commits_total");
    assert!((1.0..=64.0).contains(&commits), "{commits}");
    // Every entry was in exactly one commit; each commit holds at most batch_max.
    assert_eq!(
        sample(&metrics, "sallyport_audit_commit_entries_count"),
        commits
    );
    assert_eq!(sample(&metrics, "sallyport_audit_commit_entries_sum"), 64.0);
    assert!(
        commits >= 4.0,
        "64 entries in batches of at most 16: {commits}"
    );
    assert_eq!(
        sample(&metrics, "sallyport_audit_commit_duration_seconds_count"),
        commits
    );
    assert_eq!(sample(&metrics, "sallyport_audit_chain_length"), 64.0);
    let stored: usize = log
        .read(1, 100)
        .await
        .unwrap()
        .iter()
        .map(|e| e.bytes.len())
        .sum();
    assert_eq!(
        sample(&metrics, "sallyport_audit_bytes_total"),
        stored as f64
    );
    assert_eq!(
        sample(&metrics, "sallyport_audit_append_conflicts_total"),
        0.0
    );
}

#[tokio::test]
async fn an_append_after_another_writer_is_counted_as_a_conflict() {
    let store = Arc::new(MemoryStore::new());
    let (ma, mb) = (Arc::new(Metrics::new()), Arc::new(Metrics::new()));
    let a = Auditor::start(StateLog::shared(store.clone()), "a".into(), 1, ma.clone());
    let b = Auditor::start(StateLog::shared(store.clone()), "b".into(), 1, mb.clone());
    let ctx = AuditContext::system();
    assert_eq!(a.emit(&ctx, &Probe { n: 1 }).await.unwrap(), 1);
    assert_eq!(b.emit(&ctx, &Probe { n: 2 }).await.unwrap(), 2);
    // A's cached head is 1: its append conflicts once, then chains on B's entry.
    assert_eq!(a.emit(&ctx, &Probe { n: 3 }).await.unwrap(), 3);
    assert_eq!(sample(&ma, "sallyport_audit_append_conflicts_total"), 1.0);
    assert_eq!(sample(&ma, "sallyport_audit_chain_length"), 3.0);
    assert_eq!(sample(&mb, "sallyport_audit_chain_length"), 2.0);
    assert_eq!(sample(&ma, "sallyport_audit_commits_total"), 2.0);
}
