//! Sustained audited events per second through the real `Auditor`, with no downloads: many
//! tasks emitting at once, each waiting until its entry is durable. Compared: the journal
//! (`audit.store = "journal"`), the same without its zero fill (`journal-nofill`: every
//! batch's sync grows the file) and the state-store log on the embedded redb store
//! (`"state"`). Also reported: appends (batches), `fdatasync` calls per batch and zero
//! fills per batch, journal bytes per event, and how much `state.redb` grew per event.
//! Few tasks (`AUDIT_BENCH_TASKS=16`) measure sync latency; many, throughput.
//!
//! ```sh
//! nice cargo bench --locked --bench audit_journal
//! AUDIT_BENCH_TASKS=256 AUDIT_BENCH_EVENTS=200000 AUDIT_BENCH_ROUNDS=5 nice cargo bench --locked --bench audit_journal
//! ```
//!
//! It runs in the system temp directory (set `TMPDIR` to measure another disk). Each round
//! starts on an empty store; the median over the rounds is printed. Not a test: nothing is
//! asserted.

use std::sync::Arc;
use std::time::Instant;

use sallyport::audit::journal::Journal;
use sallyport::audit::log::{AuditLog, StateLog};
use sallyport::audit::{AuditContext, AuditEvent, Auditor};
use sallyport::metrics::Metrics;
use sallyport::state::embedded::EmbeddedStateStore;
use serde::Serialize;

/// A download-sized event: what `download.served` carries.
#[derive(Serialize)]
struct Probe {
    grant: String,
    artifact: String,
    method: &'static str,
    status: u16,
    bytes: u64,
    n: u64,
}

impl AuditEvent for Probe {
    const ACTION: &'static str = "bench.probe";
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Round {
    per_sec: f64,
    batches: u64,
    syncs: u64,
    fills: u64,
    journal_bytes: u64,
    redb_growth: u64,
}

async fn round(store: &str, tasks: u64, events: u64) -> Round {
    let tmp = tempfile::tempdir().expect("temp dir");
    let redb_path = tmp.path().join("state.redb");
    let state = Arc::new(EmbeddedStateStore::open(&redb_path).expect("redb"));
    let redb_before = std::fs::metadata(&redb_path).map_or(0, |m| m.len());
    let journal =
        Arc::new(Journal::open(&tmp.path().join("audit"), "audit", 64 << 20).expect("journal"));
    if store == "journal-nofill" {
        journal.set_zero_fill(0);
    }
    let log: Arc<dyn AuditLog> = match store {
        "journal" | "journal-nofill" => journal.clone(),
        _ => StateLog::shared(state.clone()),
    };
    let auditor = Auditor::start(log, "bench".into(), 512, Arc::new(Metrics::new()));
    let ctx = AuditContext::system();
    let per_task = events / tasks;
    let started = Instant::now();
    let mut handles = Vec::new();
    for t in 0..tasks {
        let a = auditor.clone();
        let ctx = ctx.clone();
        handles.push(tokio::spawn(async move {
            for i in 0..per_task {
                let e = Probe {
                    grant: "g-0123456789abcdefghijklmnopqrstuv".into(),
                    artifact: "a-0123456789abcdefghijklmnopqrstuv".into(),
                    method: "GET",
                    status: 200,
                    bytes: 1024,
                    n: t * per_task + i,
                };
                a.emit(&ctx, &e).await.expect("emit");
            }
        }));
    }
    for h in handles {
        h.await.expect("task");
    }
    let elapsed = started.elapsed().as_secs_f64();
    let stats = journal.stats();
    drop(auditor);
    let redb_after = std::fs::metadata(&redb_path).map_or(0, |m| m.len());
    Round {
        per_sec: (per_task * tasks) as f64 / elapsed,
        batches: stats.appends,
        syncs: stats.syncs,
        fills: stats.fills,
        journal_bytes: stats.bytes,
        redb_growth: redb_after.saturating_sub(redb_before),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument selects the stores whose name
    // contains it (`journal`: both journals).
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with("--"));
    let tasks = env("AUDIT_BENCH_TASKS", 256);
    let events = env("AUDIT_BENCH_EVENTS", 100_000);
    let rounds = env("AUDIT_BENCH_ROUNDS", 5);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    for store in ["journal", "journal-nofill", "state"] {
        if filter.as_deref().is_some_and(|f| !store.contains(f)) {
            continue;
        }
        let mut per_sec = Vec::new();
        let mut per_batch = Vec::new();
        let mut syncs_per_batch = Vec::new();
        let mut fills_per_batch = Vec::new();
        let mut bytes = Vec::new();
        let mut growth = Vec::new();
        // The state store is much slower: fewer events keep a round short.
        let n = if store == "state" { events / 5 } else { events };
        for _ in 0..rounds {
            let r = rt.block_on(round(store, tasks, n));
            per_sec.push(r.per_sec);
            let done = (n / tasks * tasks) as f64;
            if r.batches > 0 {
                per_batch.push(done / r.batches as f64);
                syncs_per_batch.push(r.syncs as f64 / r.batches as f64);
                fills_per_batch.push(r.fills as f64 / r.batches as f64);
                bytes.push(r.journal_bytes as f64 / done);
            }
            growth.push(r.redb_growth as f64 / done);
        }
        println!("audit_journal/{store}: {tasks} tasks, {n} events, {rounds} rounds (medians)");
        println!("  events/s               {:.0}", median(per_sec));
        if !per_batch.is_empty() {
            println!("  events per batch       {:.1}", median(per_batch));
            println!("  fdatasync per batch    {:.3}", median(syncs_per_batch));
            println!("  zero fills per batch   {:.4}", median(fills_per_batch));
            println!("  journal bytes/event    {:.1}", median(bytes));
        }
        println!("  state.redb bytes/event {:.1}", median(growth));
    }
}
