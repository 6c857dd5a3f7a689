//! The audit index and the query service at the library level, over a real chain in the
//! in-memory state store: every query answered through the index equals the same query
//! answered by a plain scan and by filtering all entries directly; pages join up to the
//! whole answer; the index rebuilds after its file is deleted or the chain under it is
//! replaced, and catches up incrementally; an unindexed tail is scanned; what the writer
//! hands over in memory (the tap) is indexed only where it continues the index.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use sallyport::audit::chain::{Body, GENESIS_PREV, seal};
use sallyport::audit::events::AuditVerified;
use sallyport::audit::index::{AuditIndex, PAGE};
use sallyport::audit::log::StateLog;
use sallyport::audit::query::{Entry, Query};
use sallyport::audit::search::AuditSearch;
use sallyport::audit::source::{Chain, EntrySource, Tap};
use sallyport::audit::{AUDIT_LOG, AuditContext, Auditor};
use sallyport::metrics::Metrics;
use sallyport::state::StateStore;
use sallyport::state::memory::MemoryStore;
use serde_json::{Value, json};

/// A 26-character id for `n` of a kind (`'v'`, `'a'`, `'g'`): valid lowercase Crockford
/// base32 of at most 128 bits.
fn id(kind: char, n: u64) -> String {
    format!("0{kind}{n:0>24}")
}

/// Synthetic entries `first..first + count` of a chain whose previous hash is `prev`.
fn entries(first: u64, count: u64, prev: &mut [u8; 32]) -> Vec<Vec<u8>> {
    let actions = [
        "upload.created",
        "upload.chunk_accepted",
        "artifact.registered",
        "link.issued",
        "download.served",
        "download.rejected",
        "link.revoked",
        "access.denied",
    ];
    (first..first + count)
        .map(|seq| {
            let action = actions[(seq % actions.len() as u64) as usize];
            let grant = id('g', seq % 37);
            let artifact = id('a', seq % 23);
            let upload = id('v', seq % 19);
            let (outcome, details, subject) = match action {
                "upload.created" | "upload.chunk_accepted" => (
                    "success",
                    json!({"upload": upload, "offset": 0, "length": seq}),
                    Some(upload.clone()),
                ),
                "artifact.registered" => (
                    "success",
                    json!({"artifact": artifact, "upload": upload, "batch": null}),
                    Some(artifact.clone()),
                ),
                "link.issued" => (
                    "success",
                    json!({"grant": grant, "artifacts": [artifact], "partner": "p"}),
                    Some(grant.clone()),
                ),
                "download.served" => (
                    "success",
                    json!({"grant": grant, "artifact": artifact, "bytes": 5}),
                    Some(grant.clone()),
                ),
                "download.rejected" => (
                    "denied",
                    json!({"grant": null, "artifact": null, "reason": "bad_signature"}),
                    None,
                ),
                "link.revoked" => (
                    "success",
                    json!({"scope": "grant", "target": grant, "grants": [grant]}),
                    Some(grant.clone()),
                ),
                _ => (
                    "denied",
                    json!({"endpoint": "x", "missing_role": "auditor"}),
                    None,
                ),
            };
            let actor = if action.starts_with("download.") {
                json!({"kind": "link", "grant": grant})
            } else {
                json!({"kind": "client", "name": format!("client-{}", seq % 5)})
            };
            // 10 ms apart, every 7th entry from a clock 40 ms behind.
            let ms = 1_796_000_000_000 + seq * 10 - if seq % 7 == 0 { 40 } else { 0 };
            let time = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
                .unwrap();
            let fmt = time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
            );
            let time = time.format(&fmt).unwrap();
            let client = format!("10.0.{}.{}", seq % 3, seq % 250);
            let body = Body {
                v: 1,
                seq,
                time: &time,
                instance: "t",
                action,
                outcome,
                actor: &actor,
                request_id: None,
                client_addr: Some(&client),
                peer_addr: None,
                subject: subject.as_deref(),
                details: &details,
                prev: hex::encode(*prev),
            };
            let (line, hash) = seal(&body).unwrap();
            *prev = hash;
            line
        })
        .collect()
}

struct Fixture {
    store: Arc<MemoryStore>,
    prev: [u8; 32],
    next: u64,
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
}

impl Fixture {
    async fn new(n: u64) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit-index.redb");
        let mut f = Fixture {
            store: Arc::new(MemoryStore::new()),
            prev: GENESIS_PREV,
            next: 1,
            _dir: dir,
            path,
        };
        f.append(n).await;
        f
    }

    /// Appends `n` entries; returns them as stored.
    async fn append(&mut self, n: u64) -> Vec<Vec<u8>> {
        let lines = entries(self.next, n, &mut self.prev);
        for chunk in lines.chunks(500) {
            self.store
                .log_append(AUDIT_LOG, self.next, chunk)
                .await
                .unwrap();
            self.next += chunk.len() as u64;
        }
        lines
    }

    fn source(&self) -> Arc<dyn EntrySource> {
        Arc::new(Chain(StateLog::shared(self.store.clone())))
    }

    fn search(&self, index: Option<Arc<AuditIndex>>) -> AuditSearch {
        let auditor = Auditor::start(
            StateLog::shared(self.store.clone()),
            "t".into(),
            64,
            Arc::new(Metrics::new()),
        );
        AuditSearch::new(self.source(), index, auditor)
    }

    /// Every entry, filtered directly.
    async fn brute(&self, q: &Query) -> Vec<u64> {
        let mut out = Vec::new();
        let mut from = 1;
        loop {
            let page = self.source().read(from, 10_000).await.unwrap();
            let Some(last) = page.last().map(|(s, _)| *s) else {
                return out;
            };
            out.extend(
                page.iter()
                    .filter(|(_, b)| q.filter.matches(&Entry::parse(b).unwrap()))
                    .map(|(s, _)| *s),
            );
            from = last + 1;
        }
    }
}

/// All pages of `query`, joined; checks every page's size and cursor on the way.
async fn all_pages(search: &AuditSearch, query: &str) -> Vec<u64> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10_000 {
        let qs = match &cursor {
            Some(c) => format!("{query}&cursor={c}"),
            None => query.to_owned(),
        };
        let q = Query::parse(&qs).unwrap();
        let page = search.run_query(&q).await.unwrap();
        assert!(page.entries.len() <= q.limit);
        out.extend(
            page.entries
                .iter()
                .map(|e: &Value| e["seq"].as_u64().unwrap()),
        );
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return out,
        }
    }
    panic!("{query}: pages never ended");
}

fn queries() -> Vec<String> {
    let (g5, g1, a11, u4) = (id('g', 5), id('g', 1), id('a', 11), id('v', 4));
    vec![
        "limit=1000".into(),
        format!("grant={g5}&limit=7"),
        format!("artifact={a11}&limit=3"),
        format!("upload={u4}&limit=50"),
        "principal=client-3&limit=100".into(),
        "client=10.0.1.17&limit=5".into(),
        "client=10.0.2.0/24&action=link.issued&limit=20".into(),
        "action=download.served&limit=64".into(),
        "action=download.&outcome=denied&limit=64".into(),
        "outcome=denied&limit=10".into(),
        "since=2026-11-30T00:53:23Z&until=2026-11-30T00:53:25Z&limit=9".into(),
        format!("since=2026-11-30T00:53:40Z&grant={g1}&limit=2"),
        "until=2026-11-30T00:53:21Z&limit=11".into(),
        format!("grant={g5}&principal=client-1"),
        "grant=7zzzzzzzzzzzzzzzzzzzzzzzzz".into(),
    ]
}

#[tokio::test]
async fn indexed_queries_equal_scans_and_the_direct_filter() {
    let f = Fixture::new(3000).await;
    let index = Arc::new(AuditIndex::open(&f.path).unwrap());
    assert_eq!(index.catch_up(&*f.source()).await.unwrap(), 3000);
    let indexed = f.search(Some(index.clone()));
    let plain = f.search(None);
    let queries = queries();
    for q in &queries {
        let expected = f.brute(&Query::parse(q).unwrap()).await;
        let via_index = all_pages(&indexed, q).await;
        let via_scan = all_pages(&plain, q).await;
        assert_eq!(via_index, expected, "{q} through the index");
        assert_eq!(via_scan, expected, "{q} by scanning");
        let page = indexed.run_query(&Query::parse(q).unwrap()).await.unwrap();
        assert_eq!(page.indexed_through, 3000);
        assert_eq!(page.head, 3000);
    }
    // The windows and keys above are not vacuous.
    let some = f.brute(&Query::parse(&queries[10]).unwrap()).await;
    assert!(some.len() > 100, "{}", some.len());
    for q in &queries[1..14] {
        assert!(
            !f.brute(&Query::parse(q).unwrap()).await.is_empty(),
            "{q} matches nothing"
        );
    }
}

#[tokio::test]
async fn a_lagging_index_is_completed_by_scanning_the_tail_then_catches_up() {
    let mut f = Fixture::new(1000).await;
    let index = Arc::new(AuditIndex::open(&f.path).unwrap());
    index.catch_up(&*f.source()).await.unwrap();
    f.append(700).await;
    let search = f.search(Some(index.clone()));
    let q = &format!("grant={}&limit=5", id('g', 3));
    let expected = f.brute(&Query::parse(q).unwrap()).await;
    assert!(expected.iter().any(|s| *s > 1000), "{expected:?}");
    let page = search.run_query(&Query::parse(q).unwrap()).await.unwrap();
    assert_eq!((page.indexed_through, page.head), (1000, 1700));
    assert_eq!(all_pages(&search, q).await, expected);
    // Incremental: only the new entries are indexed.
    assert_eq!(index.through().unwrap(), 1000);
    assert_eq!(index.catch_up(&*f.source()).await.unwrap(), 1700);
    let page = search.run_query(&Query::parse(q).unwrap()).await.unwrap();
    assert_eq!(page.indexed_through, 1700);
    assert_eq!(all_pages(&search, q).await, expected);
}

/// Every query of [`queries`] through `index` equals the direct filter, and the index
/// covers `through`.
async fn index_answers_like_the_chain(f: &Fixture, index: &Arc<AuditIndex>, through: u64) {
    let search = f.search(Some(index.clone()));
    for q in &queries() {
        assert_eq!(
            all_pages(&search, q).await,
            f.brute(&Query::parse(q).unwrap()).await,
            "{q}"
        );
        let page = search.run_query(&Query::parse(q).unwrap()).await.unwrap();
        assert_eq!(page.indexed_through, through, "{q}");
    }
}

#[tokio::test]
async fn the_tap_is_indexed_where_it_continues_the_index_and_the_chain_covers_the_rest() {
    let mut f = Fixture::new(0).await;
    let first = f.append(1000).await;
    let index = Arc::new(AuditIndex::open(&f.path).unwrap());
    let tap = Tap::new(PAGE, 10 * PAGE);
    // An empty index is built from the chain (its live part may start anywhere).
    tap.push(1, first.clone());
    assert_eq!(index.add_tapped(&tap).await.unwrap(), 0);
    assert_eq!(index.catch_up(&*f.source()).await.unwrap(), 1000);

    // Held entries that overlap the index and then continue it: the continuation is
    // indexed from memory (add_tapped has no way to read the chain), in pages.
    let more = f.append(2500).await; // 1001..=3500
    tap.push(990, first[989..].to_vec());
    tap.push(1001, more);
    assert_eq!(index.add_tapped(&tap).await.unwrap(), 3500);
    index_answers_like_the_chain(&f, &index, 3500).await;

    // Entries after a gap are not used; nor is anything past a gap in what is held.
    let later = f.append(300).await; // 3501..=3800
    tap.push(3601, later[100..].to_vec());
    assert_eq!(index.add_tapped(&tap).await.unwrap(), 3500);
    assert!(tap.take().is_empty(), "what was held was taken");
    tap.push(3501, later[..50].to_vec());
    tap.push(3561, later[60..].to_vec());
    assert_eq!(index.add_tapped(&tap).await.unwrap(), 3550);
    // The chain covers the rest, and the whole index answers as a scan does.
    assert_eq!(index.catch_up(&*f.source()).await.unwrap(), 3800);
    index_answers_like_the_chain(&f, &index, 3800).await;
}

#[tokio::test]
async fn the_writer_hands_the_tap_each_entry_as_the_chain_stores_it() {
    let store = Arc::new(MemoryStore::new());
    let log = StateLog::shared(store.clone());
    let auditor = Auditor::start(log.clone(), "t".into(), 64, Arc::new(Metrics::new()));
    let e = |length| AuditVerified {
        length,
        intact: true,
    };
    // Entries appended before the tap exists are the chain's to give.
    auditor.emit(&AuditContext::system(), &e(0)).await.unwrap();
    let tap = auditor.tap(3, 100);
    assert!(Arc::ptr_eq(&tap, &auditor.tap(1, 1)), "one tap");
    for i in 1..4 {
        auditor.emit(&AuditContext::system(), &e(i)).await.unwrap();
    }
    tokio::time::timeout(std::time::Duration::from_secs(5), tap.filled())
        .await
        .expect("woken at three entries");
    let held = tap.take();
    let chain = Chain(log).read(2, 10).await.unwrap();
    assert_eq!(held, chain);
    assert_eq!(held.iter().map(|(s, _)| *s).collect::<Vec<_>>(), [2, 3, 4]);
}

#[tokio::test]
async fn the_index_rebuilds_when_deleted_or_when_the_chain_is_replaced() {
    let f = Fixture::new(800).await;
    {
        let index = Arc::new(AuditIndex::open(&f.path).unwrap());
        index.catch_up(&*f.source()).await.unwrap();
    }
    std::fs::remove_file(&f.path).unwrap();
    let index = Arc::new(AuditIndex::open(&f.path).unwrap());
    assert_eq!(index.through().unwrap(), 0);
    assert_eq!(index.catch_up(&*f.source()).await.unwrap(), 800);
    let q = "principal=client-2";
    assert_eq!(
        all_pages(&f.search(Some(index.clone())), q).await,
        f.brute(&Query::parse(q).unwrap()).await
    );
    drop(index);

    // Another chain of 500 entries with other contents under the same index file: the
    // entry at the index's cursor is gone, so it is rebuilt, not trusted.
    let mut other = Fixture::new(0).await;
    other.prev = [7; 32];
    other.append(500).await;
    let index = Arc::new(AuditIndex::open(&f.path).unwrap());
    assert_eq!(index.through().unwrap(), 800);
    assert_eq!(index.catch_up(&*other.source()).await.unwrap(), 500);
    let q = "action=link.issued";
    assert_eq!(
        all_pages(&other.search(Some(index.clone())), q).await,
        other.brute(&Query::parse(q).unwrap()).await
    );
    // A file that is not an index is replaced.
    drop(index);
    std::fs::write(&f.path, b"not a redb file").unwrap();
    let index = AuditIndex::open(&f.path).unwrap();
    assert_eq!(index.through().unwrap(), 0);
}

#[tokio::test]
async fn pages_resume_strictly_after_their_cursor_and_end_at_the_head() {
    let f = Fixture::new(1200).await;
    let search = f.search(None);
    // Nothing matches; the scan still ends, with no cursor past the head.
    let q = Query::parse("principal=nobody").unwrap();
    let page = search.run_query(&q).await.unwrap();
    assert!(page.entries.is_empty());
    assert_eq!(page.next_cursor, None);
    // A cursor resumes strictly after its seq.
    let first = Query::parse("action=link.issued&limit=2").unwrap();
    let page = search.run_query(&first).await.unwrap();
    let seqs: Vec<u64> = page
        .entries
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, vec![3, 11]);
    let next = Query::parse(&format!(
        "action=link.issued&limit=2&cursor={}",
        page.next_cursor.unwrap()
    ))
    .unwrap();
    let page = search.run_query(&next).await.unwrap();
    let seqs: Vec<u64> = page
        .entries
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, vec![19, 27]);
}

#[tokio::test]
async fn traces_through_the_index_equal_traces_by_scanning() {
    let f = Fixture::new(2000).await;
    let index = Arc::new(AuditIndex::open(&f.path).unwrap());
    index.catch_up(&*f.source()).await.unwrap();
    let indexed = f.search(Some(index));
    let plain = f.search(None);
    for root in [
        id('v', 4),
        id('a', 11),
        id('g', 5),
        "7zzzzzzzzzzzzzzzzzzzzzzzzz".into(),
    ] {
        let a = indexed.run_trace(&root).await.unwrap();
        let b = plain.run_trace(&root).await.unwrap();
        let sa: Vec<u64> = a.trace.entries().map(|(s, _, _)| s).collect();
        let sb: Vec<u64> = b.trace.entries().map(|(s, _, _)| s).collect();
        assert_eq!(sa, sb, "{root}");
        if root == id('v', 4) {
            // upload → artifacts registered from it → their links → downloads, revocations
            let actions: std::collections::BTreeSet<&str> = a
                .trace
                .entries()
                .map(|(_, _, e)| e.action.as_str())
                .collect();
            for want in [
                "upload.created",
                "artifact.registered",
                "link.issued",
                "download.served",
                "link.revoked",
            ] {
                assert!(actions.contains(want), "{root}: no {want} in {actions:?}");
            }
        }
    }
}
