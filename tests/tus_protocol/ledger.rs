//! Offsets and digests: a dropped PATCH, HEAD headers (Cache-Control, Repr-Digest),
//! Upload-Expires on every response of an expiring upload, the chunk ledger.

use super::*;

// === a dropped connection ===

/// Polls HEAD until the upload is at `offset` (a dropped PATCH is committed or discarded
/// after the client is gone) and its lease is free again.
async fn settles_at(tus: &Tus, path: &str, offset: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        // An empty PATCH at the expected offset succeeds only once the offset is there
        // and no request holds the upload.
        let resp = tus.patch(path, offset, Vec::new(), &[]).await;
        if resp.status() == 204 {
            assert_eq!(header(&resp, "upload-offset"), offset.to_string());
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never settled at {offset}: last {} {:?}",
            resp.status(),
            resp.headers()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A PATCH whose connection drops mid-body: without a checksum the bytes that arrived are
/// kept (and ledgered as a shorter chunk); with one, nothing is kept.
#[tokio::test]
async fn a_dropped_patch_keeps_what_arrived_only_without_a_checksum() {
    use tokio::io::AsyncWriteExt;
    let gw = Gateway::start(CONF);
    let tus = Tus::new(&gw);
    let body = data(100_000, 8);
    for declared in [false, true] {
        let path = tus.create(Some(100_000), &[]).await;
        let ck = checksum("sha256", &body);
        let mut head = format!(
            "PATCH {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\n\
             Tus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\nContent-Type: {OCTET}\r\n\
             Content-Length: 100000\r\n",
            tus.token
        );
        if declared {
            head.push_str(&format!("Upload-Checksum: {ck}\r\n"));
        }
        head.push_str("\r\n");
        let mut s = h1_stream(&gw).await;
        s.write_all(head.as_bytes()).await.unwrap();
        s.write_all(&body[..40_000]).await.unwrap();
        s.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        drop(s);
        if declared {
            settles_at(&tus, &path, 0).await;
            assert_eq!(tus.ledger(&path).await["chunks"], serde_json::json!([]));
        } else {
            settles_at(&tus, &path, 40_000).await;
            let ledger = tus.ledger(&path).await;
            assert_eq!(ledger["chunks"][0]["length"], 40_000);
            assert_eq!(ledger["chunks"][0]["sha256"], sha256_hex(&body[..40_000]));
        }
        // The client resumes where HEAD says and finishes.
        let at = tus.offset(&path).await as usize;
        assert_eq!(tus.patch_ok(&path, at as u64, &body[at..]).await, 100_000);
        assert_eq!(
            header(&tus.head(&path).await, "repr-digest"),
            repr_digest(&body)
        );
    }
}

// === headers on HEAD ===

#[tokio::test]
async fn head_is_not_cacheable_and_shows_repr_digest_once_complete() {
    let gw = Gateway::start(CONF);
    let tus = Tus::new(&gw);
    let body = data(100_000, 4);
    let path = tus.create(Some(body.len() as u64), &[]).await;
    assert_eq!(tus.patch_ok(&path, 0, &body[..50_000]).await, 50_000);
    let head = tus.head(&path).await;
    assert_eq!(header(&head, "cache-control"), "no-store");
    assert_eq!(header(&head, "tus-resumable"), "1.0.0");
    assert_no(&head, "repr-digest");
    expires(head.headers());
    assert_eq!(tus.patch_ok(&path, 50_000, &body[50_000..]).await, 100_000);
    let head = tus.head(&path).await;
    assert_eq!(header(&head, "cache-control"), "no-store");
    assert_eq!(header(&head, "upload-offset"), "100000");
    assert_eq!(header(&head, "upload-length"), "100000");
    assert_eq!(header(&head, "repr-digest"), repr_digest(&body));
    assert_no(&head, "upload-expires");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_expires_is_on_every_response_of_an_expiring_upload() {
    let gw = Gateway::start(CONF);
    let tus = Tus::new(&gw);
    let path = tus.create(Some(10), &[]).await;
    let mut seen = Vec::new();
    let resp = tus.patch(&path, 0, b"abc".to_vec(), &[]).await;
    assert_eq!(resp.status(), 204);
    seen.push(("204", expires(resp.headers())));
    let head = tus.head(&path).await;
    seen.push(("HEAD", expires(head.headers())));
    let sha = checksum("sha256", b"zzz");
    let refusals: Vec<(&str, reqwest::Response)> = vec![
        ("409", tus.patch(&path, 0, b"def".to_vec(), &[]).await),
        (
            "460",
            tus.patch(&path, 3, b"def".to_vec(), &[("upload-checksum", &sha)])
                .await,
        ),
        ("413", tus.patch(&path, 3, vec![0u8; 8], &[]).await),
        (
            "400 length",
            tus.patch(&path, 3, Vec::new(), &[("upload-length", "11")])
                .await,
        ),
        (
            "400 checksum",
            tus.patch(
                &path,
                3,
                b"def".to_vec(),
                &[("upload-checksum", "crc32 AA==")],
            )
            .await,
        ),
        (
            "400 offset",
            tus.patch(&path, 3, b"def".to_vec(), &[("upload-offset", "03")])
                .await,
        ),
        (
            "415",
            tus.request("PATCH", &path)
                .header("tus-resumable", "1.0.0")
                .header("upload-offset", "3")
                .header("content-type", "text/plain")
                .body("def")
                .send()
                .await
                .unwrap(),
        ),
    ];
    for (what, resp) in refusals {
        assert!(resp.status().is_client_error(), "{what}");
        seen.push((what, expires(resp.headers())));
    }
    // 423 while another request holds the upload.
    let slow = spawn_slow_patch(
        &tus,
        &path,
        3,
        b"defg".to_vec(),
        1,
        Duration::from_millis(500),
    );
    until_locked(&tus, &path, 3).await;
    let busy = tus.patch(&path, 3, b"defg".to_vec(), &[]).await;
    assert_eq!(busy.status(), 423);
    let retry: u64 = header(&busy, "retry-after").parse().unwrap();
    assert!((1..=30).contains(&retry), "{retry}");
    seen.push(("423", expires(busy.headers())));
    assert_eq!(slow.await.unwrap().status(), 204);
    // All the same instant, or later where an accepted chunk slid it.
    let first = seen[0].1;
    for (what, t) in &seen {
        assert!(*t >= first && *t <= first + 5, "{what}: {t} vs {first}");
    }
    // A complete upload does not expire: no Upload-Expires anywhere.
    assert_eq!(tus.patch_ok(&path, 7, b"hij").await, 10);
    let responses = vec![
        tus.head(&path).await,
        tus.patch(&path, 10, Vec::new(), &[]).await,
        tus.patch(&path, 3, b"x".to_vec(), &[]).await,
        tus.patch(&path, 10, b"x".to_vec(), &[]).await,
    ];
    for resp in responses {
        assert_no(&resp, "upload-expires");
    }
}

// === the ledger ===

#[tokio::test]
async fn the_ledger_lists_every_chunk_and_the_whole_file_digest() {
    let gw = Gateway::start(CONF);
    let tus = Tus::new(&gw);
    let body = data(300_000, 6);
    let path = tus.create(Some(body.len() as u64), &[]).await;
    // (start, end, checksum algorithm)
    let plan: [(usize, usize, Option<&str>); 4] = [
        (0, 100_000, Some("sha256")),
        (100_000, 100_001, None),
        (100_001, 200_000, Some("sha512")),
        (200_000, 300_000, None),
    ];
    for (i, (start, end, alg)) in plan.iter().enumerate() {
        let chunk = &body[*start..*end];
        let ck = alg.map(|a| checksum(a, chunk));
        let extra: Vec<(&str, &str)> = ck.iter().map(|c| ("upload-checksum", c.as_str())).collect();
        let resp = tus
            .patch(&path, *start as u64, chunk.to_vec(), &extra)
            .await;
        assert_eq!(resp.status(), 204);
        // An empty PATCH makes no ledger entry.
        assert_eq!(tus.patch_ok(&path, *end as u64, b"").await, *end as u64);
        let ledger = tus.ledger(&path).await;
        assert_eq!(ledger["v"], 1);
        assert_eq!(ledger["upload"], id_of(&path));
        assert_eq!(ledger["concat"], "none");
        assert_eq!(ledger["length"], 300_000);
        assert_eq!(ledger["offset"], *end);
        assert_eq!(ledger["parts"], serde_json::json!([]));
        let complete = i == plan.len() - 1;
        assert_eq!(ledger["complete"], complete);
        if !complete {
            assert_eq!(ledger["sha256"], serde_json::Value::Null);
        }
        assert_eq!(ledger["chunks"].as_array().unwrap().len(), i + 1);
    }
    let ledger = tus.ledger(&path).await;
    for (i, (start, end, alg)) in plan.iter().enumerate() {
        let e = &ledger["chunks"][i];
        assert_eq!(e["index"], i);
        assert_eq!(e["offset"], *start);
        assert_eq!(e["length"], end - start);
        assert_eq!(e["sha256"], sha256_hex(&body[*start..*end]));
        assert_eq!(e["principal"], "clinic");
        match alg {
            Some(a) => assert_eq!(e["checksum_verified"], *a),
            None => assert_eq!(e["checksum_verified"], serde_json::Value::Null),
        }
        let time = e["time"].as_str().unwrap();
        let t = time::PrimitiveDateTime::parse(
            time,
            &time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z"),
        )
        .unwrap_or_else(|e| panic!("{time}: {e}"));
        assert!((t.assume_utc().unix_timestamp() - unix_now()).abs() < 120);
    }
    // The whole-file digest equals sha256sum of the data.
    let tmp = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(tmp.path(), &body).unwrap();
    let out = std::process::Command::new("sha256sum")
        .arg(tmp.path())
        .output()
        .unwrap();
    let sum = String::from_utf8(out.stdout).unwrap();
    let sum = sum.split_whitespace().next().unwrap();
    assert_eq!(ledger["sha256"], sum);
    assert_eq!(ledger["complete"], true);
    assert_eq!(
        header(&tus.head(&path).await, "repr-digest"),
        repr_digest(&body)
    );
}
