#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The tus endpoint under concurrency, black-box: two PATCHes racing on one upload never
//! interleave bytes; a graceful shutdown lets an in-flight PATCH finish and the data is
//! durable after a restart; an upload started on one gateway instance is finished on a
//! second one sharing the Redis state store and the data directory, with the one-writer
//! lease holding across instances.
//!
//! The stored bytes are checked three ways: the gateway's whole-file digest (`Repr-Digest`),
//! the ledger, and the plaintext itself, decrypted offline through the library from the
//! gateway's own configuration.

mod support;

use std::path::Path;
use std::time::Duration;

use support::Gateway;
use support::tus_http::*;

// === racing PATCHes ===

/// Two PATCHes at the same offset, from two connections, with distinct 8 MiB payloads
/// streamed slowly enough that both are in flight together: exactly one is accepted, the
/// other gets 423 (lease held) or 409 (offset moved), and the stored upload is exactly the
/// winner's payload. Repeated a few times.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_patches_on_one_upload_never_interleave() {
    const LEN: usize = 8 << 20;
    let mut gw = Gateway::start("");
    let one = Tus::new(&gw);
    let two = Tus::new(&gw);
    let mut results = Vec::new();
    let mut locked = 0;
    for round in 0..3u64 {
        let payloads = [data(LEN, 100 + 2 * round), data(LEN, 101 + 2 * round)];
        let path = one.create(Some(LEN as u64), &[]).await;
        let send = |tus: &Tus, payload: &Vec<u8>| {
            let req = tus
                .request("PATCH", &path)
                .header("tus-resumable", "1.0.0")
                .header("upload-offset", "0")
                .header("content-type", OCTET)
                .header("content-length", LEN.to_string())
                .body(slow_body(
                    payload.clone(),
                    256 << 10,
                    Duration::from_millis(5),
                ));
            tokio::spawn(async move {
                let resp = req.send().await.unwrap();
                let status = resp.status().as_u16();
                let offset = resp
                    .headers()
                    .get("upload-offset")
                    .map(|v| v.to_str().unwrap().to_owned());
                (status, offset)
            })
        };
        let a = send(&one, &payloads[0]);
        let b = send(&two, &payloads[1]);
        let (a, b) = (a.await.unwrap(), b.await.unwrap());
        let (winner, loser) = match (a.0, b.0) {
            (204, _) => (0, b),
            (_, 204) => (1, a),
            other => panic!("round {round}: no PATCH was accepted: {other:?}"),
        };
        assert!(
            loser.0 == 423 || loser.0 == 409,
            "round {round}: the loser got {loser:?}"
        );
        if loser.0 == 423 {
            locked += 1;
        } else {
            // Refused for its stale offset: the response says where the upload is.
            assert_eq!(loser.1.as_deref(), Some(LEN.to_string().as_str()));
        }
        let expect = &payloads[winner];
        let head = one.head(&path).await;
        assert_eq!(header(&head, "upload-offset"), LEN.to_string());
        assert_eq!(header(&head, "repr-digest"), repr_digest(expect));
        let ledger = one.ledger(&path).await;
        assert_eq!(ledger["chunks"].as_array().unwrap().len(), 1);
        assert_eq!(ledger["chunks"][0]["sha256"], sha256_hex(expect));
        results.push((id_of(&path).to_owned(), winner, payloads));
    }
    // With both bodies paced over tens of milliseconds, the two met at least once (the
    // loser found the lease held rather than the upload already complete).
    assert!(locked > 0, "the PATCHes never overlapped");
    // The bytes on disk are the winner's, decrypted.
    tokio::task::block_in_place(|| gw.stop());
    for (id, winner, payloads) in results {
        let stored = stored_plaintext(&gw.config_path, &id).await;
        assert!(stored == payloads[winner], "upload {id} holds mixed bytes");
    }
}

// === graceful shutdown ===

/// SIGTERM while a PATCH body is streaming: the gateway stops accepting but lets the
/// PATCH finish (204), exits cleanly, and after a restart the upload is complete with the
/// right bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_lets_an_in_flight_patch_finish() {
    const LEN: usize = 2 << 20;
    let conf = "[server]\nshutdown_grace = \"30s\"\n";
    let mut gw = Gateway::start(conf);
    let tus = Tus::new(&gw);
    let body = data(LEN, 7);
    let path = tus.create(Some(LEN as u64), &[]).await;
    // 32 frames of 64 KiB, 40 ms apart: about 1.3 s in flight.
    let started = std::time::Instant::now();
    let patch = spawn_slow_patch(
        &tus,
        &path,
        0,
        body.clone(),
        64 << 10,
        Duration::from_millis(40),
    );
    // The PATCH is being served once it holds the upload's lease.
    until_locked(&tus, &path, 0).await;
    gw.signal("TERM");
    let resp = patch.await.unwrap();
    assert!(
        started.elapsed() > Duration::from_millis(1000),
        "the body was not still streaming at SIGTERM"
    );
    assert_eq!(resp.status(), 204, "{:?}", resp.headers());
    assert_eq!(header(&resp, "upload-offset"), LEN.to_string());
    let status = tokio::task::block_in_place(|| {
        support::wait_timeout(&mut gw.child, Duration::from_secs(40))
    })
    .expect("the gateway exits after the PATCH");
    assert!(status.success(), "{status:?}");
    // After a restart the upload is complete and its bytes are the ones sent.
    let mut gw2 = Gateway::start_in(&gw.dir, conf);
    let tus = Tus::new(&gw2);
    let head = tus.head(&path).await;
    assert_eq!(head.status(), 200);
    assert_eq!(header(&head, "upload-offset"), LEN.to_string());
    assert_eq!(header(&head, "repr-digest"), repr_digest(&body));
    assert_eq!(tus.ledger(&path).await["sha256"], sha256_hex(&body));
    tokio::task::block_in_place(|| gw2.stop());
    let stored = stored_plaintext(&gw2.config_path, id_of(&path)).await;
    assert!(stored == body, "the stored bytes differ from the ones sent");
}

// === two instances ===

fn cluster_conf(prefix: &str, shared: &Path) -> String {
    format!(
        "[state]\nbackend = \"redis\"\nredis_url = \"{}\"\nredis_prefix = \"{prefix}\"\n\n\
         [blob]\npath = {:?}\n\n[keys]\nkeyring_path = {:?}\n",
        support::redis::url(),
        shared.join("blobs").display().to_string(),
        shared.join("keyring.json").display().to_string(),
    )
}

/// Instance A takes the first half, instance B (same Redis, same blobs and keyring, its
/// own data directory and TLS certificate) sees it and takes the rest. While A streams a
/// PATCH, B's PATCH gets 423 (the lease lives in Redis) and B's HEAD still answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_started_on_one_instance_is_finished_on_another() {
    if !support::redis::available() {
        return;
    }
    let redis = support::redis::Prefix::new("tus");
    const LEN: usize = 4 << 20;
    let shared = tempfile::tempdir().unwrap();
    let conf = cluster_conf(redis.as_str(), shared.path());
    let gw_a = Gateway::start(&conf);
    let gw_b = Gateway::start(&conf);
    let a = Tus::new(&gw_a);
    let b = Tus::new(&gw_b);
    let body = data(LEN, 9);
    let half = LEN / 2;
    let quarter = LEN / 4;
    let path = a
        .create(
            Some(LEN as u64),
            &[("upload-metadata", "filename cmVmZXJyYWwucGRm")],
        )
        .await;
    assert_eq!(a.patch_ok(&path, 0, &body[..half]).await, half as u64);
    // B sees the upload as A left it.
    let head_a = a.head(&path).await;
    let head_b = b.head(&path).await;
    assert_eq!(head_b.status(), 200);
    assert_eq!(header(&head_b, "upload-offset"), half.to_string());
    assert_eq!(header(&head_b, "upload-length"), LEN.to_string());
    assert_eq!(
        header(&head_b, "upload-metadata"),
        "filename cmVmZXJyYWwucGRm"
    );
    assert_eq!(
        header(&head_b, "upload-expires"),
        header(&head_a, "upload-expires")
    );
    // A streams the third quarter slowly; meanwhile B is refused with 423.
    let started = std::time::Instant::now();
    let slow = spawn_slow_patch(
        &a,
        &path,
        half as u64,
        body[half..half + quarter].to_vec(),
        64 << 10,
        Duration::from_millis(100),
    );
    until_locked(&b, &path, half as u64).await;
    let busy = b
        .patch(&path, half as u64, body[half..].to_vec(), &[])
        .await;
    let headers = problem(busy, 423, "tus.locked").await;
    let retry: u64 = header_in(&headers, "retry-after").parse().unwrap();
    assert!((1..=30).contains(&retry), "{retry}");
    expires(&headers);
    // HEAD does not take the lease: B still answers, with the durable offset.
    assert_eq!(b.offset(&path).await, half as u64);
    assert_eq!(b.delete(&path).await.status(), 423);
    let resp = slow.await.unwrap();
    assert!(
        started.elapsed() > Duration::from_millis(500),
        "A's PATCH was not in flight when B tried"
    );
    assert_eq!(resp.status(), 204);
    assert_eq!(header(&resp, "upload-offset"), (half + quarter).to_string());
    // B finishes the upload.
    assert_eq!(
        b.patch_ok(&path, (half + quarter) as u64, &body[half + quarter..])
            .await,
        LEN as u64
    );
    for tus in [&a, &b] {
        let head = tus.head(&path).await;
        assert_eq!(header(&head, "upload-offset"), LEN.to_string());
        assert_eq!(header(&head, "repr-digest"), repr_digest(&body));
    }
    let ledger = a.ledger(&path).await;
    let chunks = ledger["chunks"].as_array().unwrap();
    assert_eq!(chunks.len(), 3);
    assert_eq!(chunks[1]["offset"], half);
    assert_eq!(chunks[2]["sha256"], sha256_hex(&body[half + quarter..]));
    assert_eq!(ledger["sha256"], sha256_hex(&body));
    // The plaintext, decrypted from the shared blobs with the shared keyring.
    let stored = stored_plaintext(&gw_a.config_path, id_of(&path)).await;
    assert!(stored == body, "the stored bytes differ from the ones sent");
    // Terminated on B, gone on A.
    assert_eq!(b.delete(&path).await.status(), 204);
    assert_eq!(a.head(&path).await.status(), 404);
}

fn expires(headers: &reqwest::header::HeaderMap) -> i64 {
    let t = http_date_unix(&header_in(headers, "upload-expires"));
    assert!(t > unix_now());
    t
}
