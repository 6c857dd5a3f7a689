#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Storage amplification (issue 12 item 4), against the real gateway:
//!
//! * the chunk cap (`uploads.max_chunks_per_upload`): an attempt to upload 100,000 bytes
//!   one byte per PATCH stops at the cap with `413 upload.too_many_chunks`, the ledger and
//!   the stored object stay bounded, and the chunk that completes the upload is still
//!   taken in the last slot;
//! * the ledger `GET` is streamed (no `Content-Length`) and is the same document, over
//!   three pages of entries, from the embedded store and from Redis;
//! * the byte quota (`uploads.max_bytes_per_principal`): a burst of 50 concurrent
//!   creations by one client passes exactly the quota (507 `upload.quota_exceeded` for the
//!   rest), on the embedded store and on the real Redis shared by two instances; a
//!   deferred-length upload is charged as it grows; a DELETE gives the bytes back.
//!
//! The Redis tests need Redis on 127.0.0.1:6379 (a unique key prefix per test); it is
//! skipped with a notice when Redis is unreachable, except under `CI`, where that fails.

mod support;

use std::path::Path;

use serde_json::Value;
use support::Gateway;
use support::redis::Prefix;
use support::tus_http::{Tus, data, header, location, sha256_hex};

const CAP: u64 = 300;
const ATTEMPT: u64 = 100_000;
const UPLOAD: u64 = 1024;
const QUOTA: u64 = 10 * UPLOAD;
const BURST: usize = 50;

/// A problem response's status and body.
async fn problem_body(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let body = resp.json().await.unwrap_or(Value::Null);
    (status, body)
}

/// Bytes in files under `dir`.
fn disk_usage(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let meta = entry.metadata().unwrap();
        if meta.is_dir() {
            total += disk_usage(&entry.path());
        } else {
            total += meta.len();
        }
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_byte_chunks_stop_at_the_cap_and_the_completing_chunk_still_lands() {
    let gw = Gateway::start(&format!(
        "[uploads]\nmax_chunks_per_upload = {CAP}\n[keys]\nsegment_size = 4096\n"
    ));
    let tus = Tus::new(&gw);
    let content = data(ATTEMPT as usize, 12);
    let path = tus.create(Some(ATTEMPT), &[]).await;
    // One byte per PATCH: every chunk but the last slot's is taken.
    let mut offset = 0;
    while offset < CAP - 1 {
        let byte = &content[offset as usize..offset as usize + 1];
        offset = tus.patch_ok(&path, offset, byte).await;
    }
    assert_eq!(offset, CAP - 1);
    let before_refusals = disk_usage(&gw.data_dir());
    // The attacker keeps going: every further one-byte chunk is refused before its body
    // is read (Content-Length is known), and nothing changes.
    for _ in 0..200 {
        let byte = content[offset as usize..offset as usize + 1].to_vec();
        let (status, body) = problem_body(tus.patch(&path, offset, byte, &[]).await).await;
        assert_eq!(status, 413, "{body}");
        assert_eq!(body["code"], "upload.too_many_chunks", "{body}");
        assert_eq!(body["max_chunks"], CAP, "{body}");
        assert_eq!(body["chunks"], CAP - 1, "{body}");
    }
    // A body of unknown length is read, found not to complete the upload, and discarded.
    let stream = futures_util::stream::iter(vec![Ok::<_, std::io::Error>(bytes::Bytes::from(
        content[offset as usize..offset as usize + 10].to_vec(),
    ))]);
    let resp = tus
        .patch(&path, offset, reqwest::Body::wrap_stream(stream), &[])
        .await;
    let (status, body) = problem_body(resp).await;
    assert_eq!(
        (status, &body["code"]),
        (413, &Value::from("upload.too_many_chunks"))
    );
    assert_eq!(tus.offset(&path).await, CAP - 1);
    let ledger = tus.ledger(&path).await;
    assert_eq!(ledger["chunks"].as_array().unwrap().len() as u64, CAP - 1);
    // Refusals stored nothing (the state store may compact, never grow by a chunk's worth).
    let after_refusals = disk_usage(&gw.data_dir());
    assert!(
        after_refusals <= before_refusals + 64 * 1024,
        "{before_refusals} -> {after_refusals}"
    );
    // The last slot takes the chunk that completes the upload.
    let rest = content[offset as usize..].to_vec();
    let done = tus.patch_ok(&path, offset, &rest).await;
    assert_eq!(done, ATTEMPT);
    let ledger = tus.ledger(&path).await;
    let chunks = ledger["chunks"].as_array().unwrap();
    assert_eq!(chunks.len() as u64, CAP);
    assert_eq!(ledger["complete"], true);
    assert_eq!(ledger["sha256"], sha256_hex(&content));
    // Complete: even an empty PATCH adds nothing, a byte more is past the end.
    let resp = tus.patch(&path, ATTEMPT, vec![1u8], &[]).await;
    assert_eq!(resp.status(), 413);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ledger_is_streamed_page_by_page() {
    let gw = Gateway::start("[uploads]\nmax_chunks_per_upload = 1000\n");
    ledger_streams(&gw).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ledger_is_streamed_page_by_page_from_redis() {
    if !support::redis::available() {
        return;
    }
    let prefix = Prefix::new("ledger");
    let gw = Gateway::start(&format!(
        "[state]\nbackend = \"redis\"\nredis_url = \"{}\"\nredis_prefix = \"{}\"\n",
        support::redis::url(),
        prefix.as_str(),
    ));
    ledger_streams(&gw).await;
}

/// 300 one-byte chunks, then the ledger: no `Content-Length`, every entry in order, the
/// document's fields in `LedgerDocument`'s order.
async fn ledger_streams(gw: &Gateway) {
    let tus = Tus::new(gw);
    // 300 entries: three pages of the engine's 128.
    let n = 300u64;
    let content = data(n as usize, 5);
    let path = tus.create(Some(n), &[]).await;
    for i in 0..n {
        tus.patch_ok(&path, i, &content[i as usize..i as usize + 1])
            .await;
    }
    let resp = tus.ledger_response(&path).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "content-type"), "application/json");
    assert!(
        resp.headers().get("content-length").is_none(),
        "a streamed ledger has no Content-Length: {:?}",
        resp.headers()
    );
    let text = resp.text().await.unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    let chunks = doc["chunks"].as_array().unwrap();
    assert_eq!(chunks.len() as u64, n);
    for (i, c) in chunks.iter().enumerate() {
        assert_eq!(c["index"], i as u64);
        assert_eq!(c["offset"], i as u64);
        assert_eq!(c["length"], 1);
        assert_eq!(c["sha256"], sha256_hex(&content[i..i + 1]));
    }
    assert_eq!(doc["parts"], Value::Array(Vec::new()));
    assert_eq!(doc["offset"], n);
    assert_eq!(doc["sha256"], sha256_hex(&content));
    // The same document, byte for byte, as the whole-document serialisation would give.
    let keys: Vec<&String> = doc.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "chunks", "complete", "concat", "length", "offset", "parts", "sha256", "upload", "v"
        ]
    );
    assert!(text.starts_with("{\"v\":1,\"upload\":"), "{}", &text[..40]);
}

/// Fires `BURST` creations of `UPLOAD` bytes at once, spread over `gateways`; returns the
/// created uploads' paths and the refusals' bodies.
async fn burst(gateways: &[&Gateway]) -> (Vec<String>, Vec<Value>) {
    let mut tasks = Vec::new();
    for i in 0..BURST {
        let tus = Tus::new(gateways[i % gateways.len()]);
        tasks.push(tokio::spawn(async move {
            let resp = tus
                .post(&[("upload-length", &UPLOAD.to_string())], Vec::new())
                .await;
            if resp.status() == 201 {
                return (201, Value::from(location(&resp)));
            }
            problem_body(resp).await
        }));
    }
    let mut created = Vec::new();
    let mut refused = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            (201, path) => created.push(path.as_str().unwrap().to_owned()),
            (507, body) => refused.push(body),
            (status, body) => panic!("unexpected {status}: {body}"),
        }
    }
    (created, refused)
}

fn check_refusals(refused: &[Value]) {
    for body in refused {
        assert_eq!(body["code"], "upload.quota_exceeded", "{body}");
        assert_eq!(body["limit"], QUOTA, "{body}");
        assert_eq!(body["requested"], UPLOAD, "{body}");
        let used = body["used"].as_u64().unwrap();
        assert!(used + UPLOAD > QUOTA && used <= QUOTA, "{body}");
    }
}

fn quota_toml() -> String {
    format!("[uploads]\nmax_bytes_per_principal = \"{QUOTA}B\"\nmax_open_per_principal = 1000\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_creations_cannot_pass_the_byte_quota_embedded() {
    let gw = Gateway::start(&quota_toml());
    let (created, refused) = burst(&[&gw]).await;
    assert_eq!(created.len() as u64, QUOTA / UPLOAD, "{refused:?}");
    assert_eq!(refused.len(), BURST - created.len());
    check_refusals(&refused);
    quota_is_given_back_and_charged_as_it_grows(&gw, &created).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_creations_cannot_pass_the_byte_quota_on_redis() {
    if !support::redis::available() {
        return;
    }
    let prefix = Prefix::new("quota");
    let tmp = tempfile::tempdir().unwrap();
    // Two instances on one data directory: each names itself (one id may be live once).
    let extra = |instance: &str| {
        format!(
            "[server]\ninstance_id = \"{instance}\"\n\n[state]\nbackend = \"redis\"\n\
             redis_url = \"{}\"\nredis_prefix = \"{}\"\n{}",
            support::redis::url(),
            prefix.as_str(),
            quota_toml()
        )
    };
    let one = Gateway::start_in(tmp.path(), &extra("quota-one"));
    let two = Gateway::start_in(tmp.path(), &extra("quota-two"));
    let (created, refused) = burst(&[&one, &two]).await;
    assert_eq!(created.len() as u64, QUOTA / UPLOAD, "{refused:?}");
    assert_eq!(refused.len(), BURST - created.len());
    check_refusals(&refused);
    quota_is_given_back_and_charged_as_it_grows(&two, &created).await;
}

/// With the quota full: a deferred-length upload is charged as it grows and refused
/// (changing nothing) when a chunk or a declared length would pass the quota; a DELETE
/// gives an upload's bytes back.
async fn quota_is_given_back_and_charged_as_it_grows(gw: &Gateway, created: &[String]) {
    let tus = Tus::new(gw);
    let resp = tus
        .post(&[("upload-length", &UPLOAD.to_string())], Vec::new())
        .await;
    assert_eq!(resp.status(), 507);
    // A deferred creation reserves nothing yet, so it fits even with the quota full; its
    // first byte does not.
    let deferred = tus.create(None, &[]).await;
    let (status, body) = problem_body(tus.patch(&deferred, 0, vec![7u8; 1], &[]).await).await;
    assert_eq!(status, 507, "{body}");
    assert_eq!(body["requested"], 1, "{body}");
    assert_eq!(
        tus.offset(&deferred).await,
        0,
        "a refused chunk changes nothing"
    );
    // A body of unknown length is read, then refused at the atomic reservation before
    // its commit: nothing kept either.
    let stream = futures_util::stream::iter(vec![Ok::<_, std::io::Error>(
        bytes::Bytes::from_static(b"abc"),
    )]);
    let resp = tus
        .patch(&deferred, 0, reqwest::Body::wrap_stream(stream), &[])
        .await;
    let (status, body) = problem_body(resp).await;
    assert_eq!(status, 507, "{body}");
    assert_eq!(body["requested"], 3, "{body}");
    assert_eq!(tus.offset(&deferred).await, 0);
    // Declaring a length reserves all of it.
    let resp = tus
        .patch(&deferred, 0, Vec::new(), &[("upload-length", "10")])
        .await;
    assert_eq!(resp.status(), 507);
    assert_eq!(tus.delete(&deferred).await.status(), 204);
    // A DELETE gives a whole upload's bytes back: a deferred upload may grow into them,
    // and no further.
    assert_eq!(tus.delete(&created[0]).await.status(), 204);
    let grown = tus.create(None, &[]).await;
    let half = UPLOAD / 2;
    let off = tus.patch_ok(&grown, 0, &data(half as usize, 1)).await;
    let off = tus.patch_ok(&grown, off, &data(half as usize, 2)).await;
    assert_eq!(off, UPLOAD);
    let resp = tus.patch(&grown, off, vec![1u8], &[]).await;
    assert_eq!(resp.status(), 507);
    assert_eq!(tus.offset(&grown).await, UPLOAD);
    assert_eq!(tus.delete(&grown).await.status(), 204);
    let resp = tus
        .post(&[("upload-length", &UPLOAD.to_string())], Vec::new())
        .await;
    assert_eq!(resp.status(), 201);
}
