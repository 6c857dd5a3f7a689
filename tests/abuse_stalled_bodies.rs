#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Stalled upload bodies must not stall everyone (issue: blocking-pool exhaustion). 300
//! uploads whose bodies never come — 150 creation-with-upload requests over HTTP/1.1 (one
//! connection each) and 150 PATCHes as streams of one HTTP/2 connection — are in flight
//! at once; meanwhile `/readyz` and a 4 KiB signed-link download answer within 3 s, and
//! every stalled request ends with `408 request.body_timeout` within the configured
//! `uploads.body_timeout` (plus slack). A burst of concurrent creations by one client
//! cannot pass its `max_open_per_principal` cap.
//!
//! Before the fix each such request held two blocking-pool threads for as long as its
//! body stayed open, so about 260 of them froze every other request needing the pool.

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::links::{data, import, issue, link_url, sha256_hex, start};
use support::tus_http::{Tus, location, read_response};
use support::{Gateway, UPLOADER_TOKEN};
use tokio::io::AsyncWriteExt;

const STALLED_H1: usize = 150;
const STALLED_H2: usize = 150;
const LENGTH: u64 = 1 << 20;
const BODY_TIMEOUT: Duration = Duration::from_secs(4);

/// A request body that never yields a byte.
fn never() -> reqwest::Body {
    reqwest::Body::wrap_stream(futures_util::stream::pending::<
        Result<bytes::Bytes, std::io::Error>,
    >())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_stalled_bodies_do_not_stall_readyz_or_downloads() {
    let gw = start(&format!(
        "[server]\nmax_connections = 2000\n[uploads]\nbody_timeout = \"{}s\"\nmax_open_per_principal = 1000\n",
        BODY_TIMEOUT.as_secs()
    ));
    let small = data(4096, 3);
    let artifact = import(&gw, "Patient.ndjson", &small).await;
    let link = issue(&gw, json!({"artifact": artifact, "partner": "payer-a"})).await;
    let url = link_url(&gw, &link);

    // HTTP/2: PATCHes on uploads created first, as streams of one connection.
    let h2 = gw.client_with(&[&rustls::version::TLS13], &[b"h2"]);
    let tus = Tus::new(&gw);
    let mut paths = Vec::new();
    for _ in 0..STALLED_H2 {
        paths.push(tus.create(Some(LENGTH), &[]).await);
    }
    let began = Instant::now();
    let mut stalled = Vec::new();
    for path in &paths {
        let req = h2
            .patch(gw.url(path))
            .bearer_auth(UPLOADER_TOKEN)
            .header("tus-resumable", "1.0.0")
            .header("upload-offset", "0")
            .header("content-type", "application/offset+octet-stream")
            .header("content-length", LENGTH.to_string())
            .body(never());
        stalled.push(tokio::spawn(async move {
            // Each request's body timeout runs from when it was sent, not from when the
            // first of 300 was: on a loaded machine setting them all up takes seconds.
            let sent = Instant::now();
            let resp = req.send().await;
            (
                resp.map(|r| r.status().as_u16()).unwrap_or(0),
                sent.elapsed(),
            )
        }));
    }
    // HTTP/1.1: creation-with-upload, headers only, one connection each.
    let mut h1 = Vec::new();
    for _ in 0..STALLED_H1 {
        let mut s = gw.h1_stream().await;
        let head = format!(
            "POST /files/ HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {UPLOADER_TOKEN}\r\n\
             Tus-Resumable: 1.0.0\r\nUpload-Length: {LENGTH}\r\n\
             Content-Type: application/offset+octet-stream\r\nContent-Length: {LENGTH}\r\n\r\n"
        );
        s.write_all(head.as_bytes()).await.unwrap();
        s.flush().await.unwrap();
        let sent = Instant::now();
        h1.push(tokio::spawn(async move {
            let resp = read_response(&mut s).await;
            (resp.status, sent.elapsed())
        }));
    }
    // Let every stalled request reach the upload engine.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        began.elapsed() < BODY_TIMEOUT,
        "setting up took too long to test anything"
    );

    let probe = gw.client();
    let t = Instant::now();
    let ready = tokio::time::timeout(Duration::from_secs(3), probe.get(gw.url("/readyz")).send())
        .await
        .expect("/readyz answered within 3 s")
        .unwrap();
    assert_eq!(ready.status(), 200, "/readyz took {:?}", t.elapsed());
    let t = Instant::now();
    let body = tokio::time::timeout(Duration::from_secs(3), async {
        let r = probe.get(&url).send().await.unwrap();
        assert_eq!(r.status(), 200);
        r.bytes().await.unwrap()
    })
    .await
    .expect("the download finished within 3 s");
    assert_eq!(sha256_hex(&body), sha256_hex(&small), "{:?}", t.elapsed());

    // Every stalled request ends with 408 soon after its body timeout.
    let limit = BODY_TIMEOUT + Duration::from_secs(6);
    for (kind, tasks) in [("h2 PATCH", stalled), ("h1 creation", h1)] {
        for task in tasks {
            let (status, at) = tokio::time::timeout(limit, task)
                .await
                .unwrap_or_else(|_| panic!("a stalled {kind} was still open after {limit:?}"))
                .unwrap();
            assert_eq!(status, 408, "{kind} ended with {status} after {at:?}");
            assert!(at <= limit, "{kind} ended after {at:?}");
        }
    }
    // The server is whole afterwards.
    assert_eq!(
        probe.get(gw.url("/readyz")).send().await.unwrap().status(),
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_creations_cannot_pass_the_open_upload_cap() {
    const CAP: usize = 5;
    let gw = Gateway::start(&format!("[uploads]\nmax_open_per_principal = {CAP}\n"));
    let tus = Tus::new(&gw);
    let mut tasks = Vec::new();
    for _ in 0..40 {
        let req = tus
            .request("POST", "/files/")
            .header("tus-resumable", "1.0.0")
            .header("upload-length", "100");
        tasks.push(tokio::spawn(async move { req.send().await.unwrap() }));
    }
    let mut created = Vec::new();
    let mut refused = 0;
    for t in tasks {
        let resp = t.await.unwrap();
        match resp.status().as_u16() {
            201 => created.push(location(&resp)),
            429 => refused += 1,
            other => panic!("unexpected {other}: {:?}", resp.headers()),
        }
    }
    assert_eq!(
        created.len(),
        CAP,
        "{} created, {refused} refused",
        created.len()
    );
    assert_eq!(refused, 40 - CAP);
    // The refused creations' objects (made before the count) were shredded: the blob
    // store holds the created uploads' data and tail blobs only.
    fn files(dir: &std::path::Path) -> usize {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .map(|p| if p.is_dir() { files(&p) } else { 1 })
            .sum()
    }
    assert_eq!(files(&gw.data_dir().join("blobs")), 2 * CAP);
}

/// A body that trickles — a few bytes just inside `uploads.body_timeout`, again and again —
/// once held its upload, lease and connection for as long as it liked, since the timeout
/// restarted with every frame. Its whole-body deadline now grows by only a second per
/// `uploads.min_body_rate` bytes: with a 2 s timeout and 100 bytes/s, ten bytes every
/// 1.5 s are cut at about 2.2 s with `408 request.body_timeout`, and the bytes that came
/// are kept (the upload's offset moves past them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickling_body_is_cut_at_its_minimum_rate() {
    let gw = start("[uploads]\nbody_timeout = \"2s\"\nmin_body_rate = \"100\"\n");
    let tus = Tus::new(&gw);
    let path = tus.create(Some(1000), &[]).await;
    let mut s = gw.h1_stream().await;
    let head = format!(
        "PATCH {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {UPLOADER_TOKEN}\r\n\
         Tus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\n\
         Content-Type: application/offset+octet-stream\r\nContent-Length: 1000\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let began = Instant::now();
    let (mut rd, mut wr) = tokio::io::split(s);
    let trickle = tokio::spawn(async move {
        // Up to 30 s of trickling (300 bytes): far past the deadline, far short of 1000.
        for _ in 0..20 {
            if wr.write_all(&[b'x'; 10]).await.is_err() || wr.flush().await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(1500)).await;
        }
    });
    let resp = tokio::time::timeout(Duration::from_secs(8), read_response(&mut rd))
        .await
        .expect("the trickling body was cut within 8 s");
    let at = began.elapsed();
    trickle.abort();
    assert_eq!(resp.status, 408, "{resp:?}");
    assert!(
        String::from_utf8_lossy(&resp.body).contains("request.body_timeout"),
        "{resp:?}"
    );
    assert!(
        at >= Duration::from_secs(2),
        "cut before the body timeout: {at:?}"
    );
    // What arrived before the cut was kept: 10 bytes a frame, 2 or 3 frames.
    let offset = tus.offset(&path).await;
    assert!((20..=30).contains(&offset), "offset {offset}");
}
