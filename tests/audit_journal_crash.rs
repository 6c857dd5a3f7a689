#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The audit journal end to end, with the real gateway binary (`audit.store = "journal"`,
//! the default):
//!
//! - SIGKILL during heavy auditing: 32 clients download a 1 KiB signed link in a loop and
//!   record the request id of every download the gateway answered (status and headers
//!   arrived: the entry was durable before the first byte). The gateway is killed with
//!   SIGKILL mid-load and restarted on the same data directory; the journal must verify and
//!   hold a `download.served` entry for every acknowledged request.
//! - SIGKILL while uploads stream: every acknowledged chunk has its entry after the
//!   restart, exactly once, those still in the audit outbox included.
//! - A second gateway on the same data directory is refused with a clear error.
//! - A torn tail (half a record appended to the last segment) is cut at restart, the
//!   entries before it stay, and new entries chain on.

mod support;

use std::collections::HashSet;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use support::links::{self, import, issue, link_url};
use support::{Gateway, cli, cli_output};

const CLIENTS: usize = 32;

fn journal_dir(gw: &Gateway) -> std::path::PathBuf {
    gw.data_dir().join("audit").join("audit")
}

fn segments(gw: &Gateway) -> Vec<std::path::PathBuf> {
    let mut segs: Vec<_> = std::fs::read_dir(journal_dir(gw))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segs.sort();
    segs
}

/// A short grace: a stop need not wait for the test clients' idle connections.
const EXTRA: &str = "[server]\nshutdown_grace = \"1s\"\n";

/// What `links::start(EXTRA)` configured, for a restart on the same directory.
fn restart_extra() -> String {
    format!(
        "{EXTRA}\n[keys]\nsegment_size = 4096\n{}",
        links::publisher_toml()
    )
}

fn verify(gw: &Gateway) -> String {
    cli(&gw.config_path, &["audit", "verify"])
}

fn export(gw: &Gateway) -> Vec<Value> {
    links::export_audit(&gw.config_path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_acknowledged_download_survives_a_sigkill_mid_load() {
    let mut gw = links::start(EXTRA);
    let artifact = import(&gw, "small.ndjson", &[7u8; 1024]).await;
    let link = link_url(
        &gw,
        &issue(&gw, json!({"artifact": artifact, "partner": "payer-a"})).await,
    );

    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let client = gw.client();
        let link = link.clone();
        let acked = acked.clone();
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // After the kill every request fails; the loop ends when told to.
                let Ok(resp) = client.get(&link).send().await else {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                };
                if resp.status() == 200 {
                    let rid = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
                    acked.lock().unwrap().push(rid);
                }
                let _ = resp.bytes().await;
            }
        }));
    }
    // Kill once the load is well under way.
    let started = Instant::now();
    while acked.lock().unwrap().len() < 2000 && started.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    gw.signal("KILL");
    let _ = gw.child.wait();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let acked: Vec<String> = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 500,
        "only {} downloads before the kill",
        acked.len()
    );
    eprintln!("{} downloads acknowledged before the SIGKILL", acked.len());

    // The CLI reads the journal of the dead gateway; then a restart recovers it.
    verify(&gw);
    let dir = gw.dir.clone();
    let mut gw2 = Gateway::start_in(&dir, &restart_extra());
    gw2.stop();
    let out = verify(&gw2);
    assert!(out.contains("audit chain intact"), "{out}");
    let entries = export(&gw2);
    let served: HashSet<&str> = links::actions(&entries, "download.served")
        .into_iter()
        .filter_map(|e| e["request_id"].as_str())
        .collect();
    let lost: Vec<&String> = acked
        .iter()
        .filter(|r| !served.contains(r.as_str()))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged downloads have no entry, e.g. {:?}",
        lost.len(),
        acked.len(),
        &lost[..lost.len().min(3)]
    );
    // Nothing else moved the chain: it is one gapless sequence.
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(e["seq"], i as u64 + 1);
    }
    drop(gw);
}

/// SIGKILL while uploads stream: every chunk the gateway acknowledged (`204`) has its
/// `upload.chunk_accepted` entry after the restart, exactly once, although the entries of
/// the last moments were only in the audit outbox (durable with the upload record, not yet
/// in the journal) when the process died: the restart appends them before it serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_acknowledged_chunk_survives_a_sigkill_in_the_outbox_window() {
    use support::tus_http::{Tus, location};
    const UPLOADS: usize = 8;
    const CHUNK: usize = 8 * 1024;
    let mut gw = Gateway::start(EXTRA);
    let acked: Arc<Mutex<Vec<(String, u64)>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..UPLOADS {
        let tus = Tus::new(&gw);
        let acked = acked.clone();
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let created = tus
                .post(
                    &[("upload-length", &(CHUNK * 100_000).to_string())],
                    Vec::new(),
                )
                .await;
            assert_eq!(created.status(), 201);
            let path = location(&created);
            let id = path.rsplit('/').next().unwrap().to_owned();
            let mut offset = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let sent = tus
                    .request("PATCH", &path)
                    .header("tus-resumable", "1.0.0")
                    .header("upload-offset", offset.to_string())
                    .header("content-type", "application/offset+octet-stream")
                    .body(vec![b'c'; CHUNK])
                    .send()
                    .await;
                match sent {
                    Ok(resp) if resp.status() == 204 => {
                        acked.lock().unwrap().push((id.clone(), offset));
                        offset += CHUNK as u64;
                    }
                    // After the kill every request fails; the loop ends when told to.
                    _ => tokio::time::sleep(Duration::from_millis(5)).await,
                }
            }
        }));
    }
    let started = Instant::now();
    while acked.lock().unwrap().len() < 400 && started.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    gw.signal("KILL");
    let _ = gw.child.wait();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let acked: Vec<(String, u64)> = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 100,
        "only {} chunks before the kill",
        acked.len()
    );

    // The dead process left entries in the outbox (what this test is about).
    let left = {
        let state =
            sallyport::state::embedded::EmbeddedStateStore::open(&gw.data_dir().join("state.redb"))
                .unwrap();
        sallyport::audit::outbox::rows(&state).await.unwrap().len()
    };
    eprintln!(
        "{} chunks acknowledged before the SIGKILL, {left} entries in the outbox",
        acked.len()
    );
    assert!(left > 0, "the kill found no entry in the outbox");

    let dir = gw.dir.clone();
    let mut gw2 = Gateway::start_in(&dir, EXTRA);
    gw2.stop();
    let out = verify(&gw2);
    assert!(out.contains("audit chain intact"), "{out}");
    let entries = export(&gw2);
    let mut seen: std::collections::HashMap<(String, u64), usize> = Default::default();
    for e in links::actions(&entries, "upload.chunk_accepted") {
        let key = (
            e["details"]["upload"].as_str().unwrap().to_owned(),
            e["details"]["offset"].as_u64().unwrap(),
        );
        *seen.entry(key).or_default() += 1;
    }
    let lost: Vec<&(String, u64)> = acked.iter().filter(|k| !seen.contains_key(*k)).collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged chunks have no entry, e.g. {:?}",
        lost.len(),
        acked.len(),
        &lost[..lost.len().min(3)]
    );
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "entries written twice: {twice:?}");
    drop(gw);
}

#[tokio::test]
async fn a_second_gateway_on_the_same_data_directory_is_refused() {
    let gw = links::start(EXTRA);
    let out = support::sallyport()
        .arg("--config")
        .arg(&gw.config_path)
        .arg("serve")
        .env("SALLYPORT_SERVER__LISTEN", "127.0.0.1:0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("in use by another process"), "{err}");
    // The running gateway is unaffected and its journal verifies beside it.
    let resp = gw.client().get(gw.url("/readyz")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let out = cli_output(&gw.config_path, &["audit", "verify"]);
    assert!(out.status.success(), "{out:?}");
}

#[tokio::test]
async fn a_torn_tail_is_cut_at_restart_and_new_entries_chain_on() {
    let mut gw = links::start(EXTRA);
    let artifact = import(&gw, "a.ndjson", b"hello").await;
    gw.stop();
    let before = export(&gw);
    assert!(before.len() >= 3);
    let last = segments(&gw).pop().unwrap();
    let good_len = std::fs::metadata(&last).unwrap().len();
    // Half of a record: a length, a sequence number and some payload, no checksum.
    let mut torn = Vec::new();
    torn.extend_from_slice(&200u32.to_be_bytes());
    torn.extend_from_slice(&(before.len() as u64 + 1).to_be_bytes());
    torn.extend_from_slice(b"{\"v\":1,\"seq\":");
    std::fs::OpenOptions::new()
        .append(true)
        .open(&last)
        .unwrap()
        .write_all(&torn)
        .unwrap();

    let dir = gw.dir.clone();
    let mut gw = Gateway::start_in(&dir, &restart_extra());
    let log = gw.drain_stderr().join("\n");
    assert!(log.contains("torn"), "{log}");
    let bytes = std::fs::read(&last).unwrap();
    assert!(
        !bytes[good_len as usize..].starts_with(&torn),
        "the torn bytes are gone"
    );
    let issued = issue(&gw, json!({"artifact": artifact, "partner": "payer-a"})).await;
    assert!(issued["grant"].is_string());
    gw.stop();
    let out = verify(&gw);
    assert!(out.contains("audit chain intact"), "{out}");
    let after = export(&gw);
    assert_eq!(
        after[..before.len()],
        before[..],
        "the entries before the tear"
    );
    assert!(after.len() > before.len() + 1, "new entries chained on");
    assert_eq!(
        links::actions(&after[before.len()..], "link.issued").len(),
        1
    );
}
