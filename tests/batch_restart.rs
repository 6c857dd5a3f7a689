#![allow(clippy::unwrap_used, clippy::expect_used)]
//! A seal survives a crash (`proto/batches-v1.md` §4): the gateway is killed (SIGKILL)
//! while it verifies a batch of four 24 MiB members, restarted on the same data directory,
//! and the batch still reaches its verdict — `released`, with every member checked and
//! every byte read — without anyone sealing it again: the sweeper resumes it (the
//! restarted gateway dropped the dead runner's lease when it opened its state file),
//! skipping the members whose facts were already stored. The
//! audit trail verifies across the crash.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::tus_http::{Tus, b64, data, sha256_hex};
use support::{ADMIN_TOKEN, Gateway, UPLOADER_TOKEN};

const MEMBER: usize = 24 << 20;
const MEMBERS: usize = 4;
const EXTRA: &str = "[batches]\nsweep_interval = \"1s\"\n";

async fn batch_doc(gw: &Gateway, id: &str) -> Value {
    gw.client()
        .get(gw.url(&format!("/v1/batches/{id}")))
        .bearer_auth(UPLOADER_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seal_interrupted_by_a_crash_resumes_after_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let mut gw = Gateway::start_in(tmp.path(), EXTRA);
    let files: Vec<Vec<u8>> = (0..MEMBERS).map(|i| data(MEMBER, i as u64 + 7)).collect();
    let members: Vec<Value> = files
        .iter()
        .enumerate()
        .map(|(i, f)| {
            json!({"name": format!("part{i}.bin"), "size": f.len(), "sha256": sha256_hex(f),
                   "media_type": "application/octet-stream"})
        })
        .collect();
    let manifest = json!({"version": "sallyport.manifest/1", "members": members});
    let opened: Value = gw
        .client()
        .post(gw.url("/v1/batches"))
        .bearer_auth(UPLOADER_TOKEN)
        .header("content-type", "application/json")
        .body(json!({"manifest": manifest}).to_string())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = opened["id"].as_str().expect("a batch id").to_owned();
    let tus = Tus::new(&gw);
    for (i, f) in files.iter().enumerate() {
        let meta = format!(
            "batch {},member {}",
            b64(id.as_bytes()),
            b64(format!("part{i}.bin").as_bytes())
        );
        let path = tus
            .create(Some(f.len() as u64), &[("upload-metadata", meta.as_str())])
            .await;
        for (n, chunk) in f.chunks(8 << 20).enumerate() {
            tus.patch_ok(&path, (n * (8 << 20)) as u64, chunk).await;
        }
    }
    let r = gw
        .client()
        .post(gw.url(&format!("/v1/batches/{id}/seal")))
        .bearer_auth(UPLOADER_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);

    // Kill it once the first member's facts are stored and before the verdict.
    let deadline = Instant::now() + Duration::from_secs(120);
    let checked_at_kill = loop {
        let doc = batch_doc(&gw, &id).await;
        assert_eq!(
            doc["state"], "sealing",
            "the seal finished before the crash: {doc}"
        );
        let checked = doc["progress"]["members_checked"].as_u64().unwrap_or(0);
        if checked >= 1 {
            gw.signal("KILL");
            break checked;
        }
        assert!(Instant::now() < deadline, "no progress: {doc}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let _ = gw.child.wait();
    assert!(checked_at_kill < MEMBERS as u64);

    let gw = Gateway::start_in(tmp.path(), EXTRA);
    let deadline = Instant::now() + Duration::from_secs(180);
    let doc = loop {
        let doc = batch_doc(&gw, &id).await;
        if doc["state"] != "sealing" {
            break doc;
        }
        assert!(Instant::now() < deadline, "the seal never resumed: {doc}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(doc["state"], "released", "{doc}");
    assert_eq!(doc["progress"]["members_checked"], MEMBERS as u64);
    assert_eq!(doc["progress"]["members_total"], MEMBERS as u64);
    // Members checked before the crash count as checked; a member half-read when killed
    // is read again whole, so the total is exact.
    assert_eq!(
        doc["progress"]["bytes_checked"],
        (MEMBERS * MEMBER) as u64,
        "{doc}"
    );
    let verify: Value = gw
        .client()
        .get(gw.url("/v1/audit/verify"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(verify["intact"], true, "{verify}");
}
