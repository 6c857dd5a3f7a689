#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Upgrading a data directory whose audit chain is in the embedded state store: the first
//! start with the journal copies every entry verbatim (same bytes, so the chain and its
//! hashes are unchanged), records that it did, and a later start copies nothing again. An
//! interrupted copy resumes; a journal that disagrees with the state log stops the start.

use std::collections::BTreeMap;
use std::sync::Arc;

use sallyport::audit::journal::Journal;
use sallyport::audit::journal::migrate::MARKER;
use sallyport::audit::log::{AuditLog, LogEntry, StateLog};
use sallyport::audit::{AuditContext, Auditor, events::AuditVerified};
use sallyport::config::Config;
use sallyport::metrics::Metrics;

fn config(dir: &std::path::Path) -> Config {
    let text = format!(
        "data_dir = {:?}\n[log]\nformat = \"text\"\nlevel = \"warn\"\n",
        dir.join("data").display().to_string()
    );
    Config::from_toml(&text, &BTreeMap::<String, String>::new()).unwrap()
}

async fn all(log: &dyn AuditLog) -> Vec<LogEntry> {
    let mut out = Vec::new();
    loop {
        let page = log.read(out.len() as u64 + 1, 1000).await.unwrap();
        if page.is_empty() {
            return out;
        }
        out.extend(page);
    }
}

/// Writes `n` entries into the state store's log, as a gateway before the journal did.
fn state_chain(dir: &std::path::Path, n: u64) -> Vec<LogEntry> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let state = sallyport::app::open_state(&config(dir)).await.unwrap();
        let log = StateLog::shared(state);
        let auditor = Auditor::start(log.clone(), "old".into(), 16, Arc::new(Metrics::new()));
        for i in 0..n {
            let e = AuditVerified {
                length: i,
                intact: true,
            };
            auditor.emit(&AuditContext::system(), &e).await.unwrap();
        }
        all(&*log).await
    })
}

fn journal_dir(dir: &std::path::Path) -> std::path::PathBuf {
    dir.join("data").join("audit").join("audit")
}

#[test]
fn the_first_start_with_the_journal_copies_the_chain_verbatim_once() {
    let tmp = tempfile::tempdir().unwrap();
    let old = state_chain(tmp.path(), 50);
    assert_eq!(old.len(), 50);

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let app = sallyport::app::build(config(tmp.path())).await.unwrap();
        let log = app.state.auditor.log().clone();
        assert_eq!(all(&*log).await, old, "the same entries, byte for byte");
        let summary = sallyport::audit::verify_store(&*log, |_| {})
            .await
            .unwrap()
            .unwrap();
        assert_eq!(summary.length, 50);
        let e = AuditVerified {
            length: 50,
            intact: true,
        };
        assert_eq!(
            app.state
                .auditor
                .emit(&AuditContext::system(), &e)
                .await
                .unwrap(),
            51,
            "new entries chain on"
        );
    });
    drop(rt);
    assert!(journal_dir(tmp.path()).join(MARKER).exists());

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let app = sallyport::app::build(config(tmp.path())).await.unwrap();
        let log = app.state.auditor.log().clone();
        let entries = all(&*log).await;
        assert_eq!(entries.len(), 51, "nothing copied twice");
        assert_eq!(entries[..50], old[..]);
        sallyport::audit::verify_store(&*log, |_| {})
            .await
            .unwrap()
            .unwrap();
        // The state store's log did not grow.
        assert_eq!(all(&StateLog::new(app.state.state.clone())).await, old);
    });
}

#[test]
fn an_interrupted_copy_resumes_and_a_different_journal_stops_the_start() {
    let tmp = tempfile::tempdir().unwrap();
    let old = state_chain(tmp.path(), 30);
    let rt = tokio::runtime::Runtime::new().unwrap();
    // As if the first start died after copying 12 entries (no marker yet).
    rt.block_on(async {
        let j = Journal::open(&journal_dir(tmp.path()), "audit", 1 << 20).unwrap();
        let first: Vec<Vec<u8>> = old[..12].iter().map(|e| e.bytes.clone()).collect();
        j.append(1, &first).await.unwrap();
    });
    rt.block_on(async {
        let app = sallyport::app::build(config(tmp.path())).await.unwrap();
        assert_eq!(all(&**app.state.auditor.log()).await, old);
    });
    drop(rt);

    let tmp = tempfile::tempdir().unwrap();
    let old = state_chain(tmp.path(), 5);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let j = Journal::open(&journal_dir(tmp.path()), "audit", 1 << 20).unwrap();
        j.append(1, &[old[0].bytes.clone(), b"{\"other\":1}".to_vec()])
            .await
            .unwrap();
    });
    let Err(err) = rt.block_on(sallyport::app::build(config(tmp.path()))) else {
        panic!("the start is refused");
    };
    let msg = format!("{err:#}");
    assert!(msg.contains("differ"), "{msg}");
    assert!(!journal_dir(tmp.path()).join(MARKER).exists());
}
