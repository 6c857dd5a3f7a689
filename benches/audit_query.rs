//! Audit queries over a chain of 1,000,000 synthetic entries (in the in-memory state
//! store's log, so the numbers are the query path's, not a disk's): by grant, by
//! principal + time window, and a trace of one upload — each through the index
//! (`audit::index`) and by scanning the whole chain without it.
//!
//! `AUDIT_BENCH_ENTRIES` changes the chain's length (default 1,000,000).
//!
//! ```sh
//! nice cargo bench --locked --bench audit_query
//! ```

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use sallyport::audit::chain::{Body, GENESIS_PREV, seal};
use sallyport::audit::index::AuditIndex;
use sallyport::audit::log::StateLog;
use sallyport::audit::query::Query;
use sallyport::audit::search::AuditSearch;
use sallyport::audit::source::Chain;
use sallyport::audit::{AUDIT_LOG, Auditor};
use sallyport::metrics::Metrics;
use sallyport::state::StateStore;
use sallyport::state::memory::MemoryStore;
use serde_json::json;

fn id(kind: char, n: u64) -> String {
    format!("0{kind}{n:0>24}")
}

/// One synthetic entry. Every 8 entries are one transfer `t`: upload created, two
/// chunks, completed, artifact registered, link issued, two downloads; over 20,000 upload
/// and artifact ids, 50,000 grants and 200 clients (ids repeat), 10 ms apart.
fn entry(seq: u64, prev: &[u8; 32]) -> (Vec<u8>, [u8; 32]) {
    let t = seq / 8;
    let actions = [
        "upload.created",
        "upload.chunk_accepted",
        "upload.chunk_accepted",
        "upload.completed",
        "artifact.registered",
        "link.issued",
        "download.served",
        "download.served",
    ];
    let action = actions[(seq % 8) as usize];
    let grant = id('g', t % 50_000);
    let artifact = id('a', t % 20_000);
    let upload = id('v', t % 20_000);
    let (details, subject) = match action {
        "artifact.registered" => (
            json!({"artifact": artifact, "upload": upload, "batch": null, "length": 1024}),
            artifact.clone(),
        ),
        "link.issued" => (
            json!({"grant": grant, "artifacts": [artifact], "partner": "payer-a"}),
            grant.clone(),
        ),
        "download.served" => (
            json!({"grant": grant, "artifact": artifact, "bytes": 1024, "ranges": []}),
            grant.clone(),
        ),
        _ => (
            json!({"upload": upload, "offset": 0, "length": 1024,
                   "sha256": "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"}),
            upload.clone(),
        ),
    };
    let actor = if action.starts_with("download.") {
        json!({"kind": "link", "grant": grant})
    } else {
        json!({"kind": "client", "name": format!("client-{}", t % 200), "auth_method": "bearer_token"})
    };
    let ms = 1_796_000_000_000 + seq * 10;
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap();
    let fmt = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    let time = at.format(&fmt).unwrap();
    let client = format!("10.1.{}.{}", t % 200 / 100, t % 100);
    let request_id = format!("{seq:032x}");
    let body = Body {
        v: 1,
        seq,
        time: &time,
        instance: "bench:1",
        action,
        outcome: "success",
        actor: &actor,
        request_id: Some(&request_id),
        client_addr: Some(&client),
        peer_addr: None,
        subject: Some(&subject),
        details: &details,
        prev: hex::encode(prev),
    };
    seal(&body).unwrap()
}

/// Every page of `query`, as a client pages through it: the whole answer.
fn all(rt: &tokio::runtime::Runtime, search: &AuditSearch, query: &Query) -> usize {
    let mut n = 0;
    let mut q = query.clone();
    loop {
        let page = rt.block_on(search.run_query(&q)).unwrap();
        n += page.entries.len();
        match page.next_cursor {
            None => return n,
            Some(c) => {
                let qs = format!("{}&cursor={c}", query_string(query));
                q = Query::parse(&qs).unwrap();
            }
        }
    }
}

fn queries(c: &mut Criterion) {
    let n: u64 = std::env::var("AUDIT_BENCH_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = Arc::new(MemoryStore::new());
    let built = Instant::now();
    rt.block_on(async {
        let mut prev = GENESIS_PREV;
        let mut seq = 1;
        while seq <= n {
            let batch: Vec<Vec<u8>> = (seq..(seq + 1000).min(n + 1))
                .map(|s| {
                    let (line, hash) = entry(s, &prev);
                    prev = hash;
                    line
                })
                .collect();
            store.log_append(AUDIT_LOG, seq, &batch).await.unwrap();
            seq += batch.len() as u64;
        }
    });
    eprintln!("chain of {n} entries built in {:?}", built.elapsed());
    let dir = tempfile::tempdir().unwrap();
    let index = Arc::new(AuditIndex::open(&dir.path().join("audit-index.redb")).unwrap());
    let source = Arc::new(Chain(StateLog::shared(store.clone())));
    let indexed_at = Instant::now();
    rt.block_on(index.catch_up(&*source)).unwrap();
    let size = std::fs::metadata(dir.path().join("audit-index.redb"))
        .unwrap()
        .len();
    eprintln!(
        "index of {n} entries built in {:?}, {} bytes ({} per entry)",
        indexed_at.elapsed(),
        size,
        size / n.max(1)
    );
    let (with, without) = rt.block_on(async {
        let auditor = Auditor::start(
            StateLog::shared(store.clone()),
            "bench".into(),
            64,
            Arc::new(Metrics::new()),
        );
        (
            AuditSearch::new(source.clone(), Some(index.clone()), auditor.clone()),
            AuditSearch::new(source.clone(), None, auditor),
        )
    });
    let grant = Query::parse(&grant_qs()).unwrap();
    // 2,000 entries in the window, a few of them this principal's.
    let window = Query::parse(WINDOW).unwrap();
    let mut group = c.benchmark_group(format!("audit_query_{n}"));
    group.sample_size(10);
    for (name, search) in [("indexed", &with), ("scan", &without)] {
        group.bench_function(format!("grant/{name}"), |b| {
            b.iter(|| all(&rt, search, &grant))
        });
        group.bench_function(format!("principal_window/{name}"), |b| {
            b.iter(|| all(&rt, search, &window))
        });
        group.bench_function(format!("trace_upload/{name}"), |b| {
            b.iter(|| rt.block_on(search.run_trace(&id('v', 777))).unwrap())
        });
    }
    group.finish();
    for q in [&grant, &window] {
        let (a, b) = (all(&rt, &with, q), all(&rt, &without, q));
        assert_eq!(a, b, "the index and the scan disagree");
        eprintln!("{}: {a} entries", query_string(q));
    }
    let trace = rt.block_on(with.run_trace(&id('v', 777))).unwrap();
    eprintln!("trace of upload 777: {} entries", trace.trace.len());
}

const WINDOW: &str =
    "principal=client-42&since=2026-11-30T01:13:20Z&until=2026-11-30T01:13:40Z&limit=1000";

fn grant_qs() -> String {
    format!("grant={}&limit=1000", id('g', 4_242))
}

fn query_string(q: &Query) -> String {
    if q.filter.principal.is_some() {
        WINDOW.into()
    } else {
        grant_qs()
    }
}

criterion_group!(benches, queries);
criterion_main!(benches);
