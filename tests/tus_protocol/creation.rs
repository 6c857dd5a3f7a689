//! OPTIONS and the creation variants: 201, Location, Upload-Offset, Upload-Expires,
//! creation-with-upload, a zero-length upload, creation-defer-length.

use super::*;

// === OPTIONS ===

#[tokio::test]
async fn options_lists_every_capability_exactly() {
    let gw = Gateway::start(CONF);
    let c = gw.client();
    for path in ["/files/", "/files/0123456789abcdefghjkmnpqrs"] {
        // No credentials and no Tus-Resumable: OPTIONS needs neither (and ignores a wrong one).
        for version in [None, Some("0.2.2")] {
            let mut r = c.request(reqwest::Method::OPTIONS, gw.url(path));
            if let Some(v) = version {
                r = r.header("tus-resumable", v);
            }
            let resp = r.send().await.unwrap();
            assert_eq!(resp.status(), 204, "{path}");
            assert_eq!(header(&resp, "tus-resumable"), "1.0.0");
            assert_eq!(header(&resp, "tus-version"), "1.0.0");
            assert_eq!(header(&resp, "tus-extension"), EXTENSIONS);
            assert_eq!(
                header(&resp, "tus-checksum-algorithm"),
                "sha1,sha256,sha512,md5"
            );
            assert_eq!(header(&resp, "tus-max-size"), "1048576");
            assert_no(&resp, "access-control-allow-origin");
        }
    }
    // The default Tus-Max-Size is 64 GiB.
    let gw = Gateway::start("");
    let resp = gw
        .client()
        .request(reqwest::Method::OPTIONS, gw.url("/files/"))
        .send()
        .await
        .unwrap();
    assert_eq!(header(&resp, "tus-max-size"), (64u64 << 30).to_string());
}

// === creation ===

#[tokio::test]
async fn creation_answers_201_with_location_offset_and_expiry() {
    let gw = Gateway::start(CONF);
    let tus = Tus::new(&gw);
    let before = unix_now();
    let resp = tus.post(&[("upload-length", "11")], Vec::new()).await;
    assert_eq!(resp.status(), 201);
    let path = location(&resp);
    assert_eq!(header(&resp, "tus-resumable"), "1.0.0");
    assert_eq!(header(&resp, "upload-offset"), "0");
    // Default expiry: 24 hours after creation.
    let exp = expires(resp.headers());
    assert!(
        (before + 86_400..=unix_now() + 86_400).contains(&exp),
        "{exp}"
    );
    let head = tus.head(&path).await;
    assert_eq!(head.status(), 200);
    assert_eq!(header(&head, "upload-offset"), "0");
    assert_eq!(header(&head, "upload-length"), "11");
    assert_eq!(
        header(&head, "upload-expires"),
        header(&resp, "upload-expires")
    );
    assert_no(&head, "upload-defer-length");
    assert_no(&head, "upload-metadata");
    assert_no(&head, "upload-concat");
    // Each creation is a new upload.
    assert_ne!(tus.create(Some(11), &[]).await, path);
    // Neither or both of Upload-Length and Upload-Defer-Length: 400.
    problem(tus.post(&[], Vec::new()).await, 400, "tus.length_required").await;
    let both = [("upload-length", "5"), ("upload-defer-length", "1")];
    problem(
        tus.post(&both, Vec::new()).await,
        400,
        "tus.length_and_defer",
    )
    .await;
    problem(
        tus.post(&[("upload-defer-length", "2")], Vec::new()).await,
        400,
        "tus.header_invalid",
    )
    .await;
    // A tus header may appear only once.
    problem(
        tus.post(
            &[("upload-length", "5"), ("upload-length", "5")],
            Vec::new(),
        )
        .await,
        400,
        "tus.header_invalid",
    )
    .await;
    for bad in ["-1", "0x10", "1e3", "+5", "05", "18446744073709551616"] {
        problem(
            tus.post(&[("upload-length", bad)], Vec::new()).await,
            400,
            "tus.header_invalid",
        )
        .await;
    }
}

#[tokio::test]
async fn creation_with_upload_takes_the_first_chunk() {
    let gw = Gateway::start(CONF);
    let tus = Tus::new(&gw);
    let body = b"hello world";
    let resp = tus
        .post(
            &[
                ("upload-length", "11"),
                ("content-type", OCTET),
                ("upload-checksum", &checksum("sha1", b"hello")),
            ],
            b"hello".to_vec(),
        )
        .await;
    assert_eq!(resp.status(), 201);
    let path = location(&resp);
    assert_eq!(header(&resp, "upload-offset"), "5");
    expires(resp.headers());
    assert_eq!(tus.offset(&path).await, 5);
    let ledger = tus.ledger(&path).await;
    assert_eq!(ledger["chunks"].as_array().unwrap().len(), 1);
    assert_eq!(ledger["chunks"][0]["checksum_verified"], "sha1");
    assert_eq!(ledger["chunks"][0]["sha256"], sha256_hex(b"hello"));
    assert_eq!(tus.patch_ok(&path, 5, b" world").await, 11);
    let head = tus.head(&path).await;
    assert_eq!(header(&head, "repr-digest"), repr_digest(body));
    // A whole upload in one creation request is complete at once: no expiry.
    let resp = tus
        .post(
            &[("upload-length", "11"), ("content-type", OCTET)],
            body.to_vec(),
        )
        .await;
    assert_eq!(resp.status(), 201);
    assert_eq!(header(&resp, "upload-offset"), "11");
    assert_no(&resp, "upload-expires");
    let head = tus.head(&location(&resp)).await;
    assert_eq!(header(&head, "repr-digest"), repr_digest(body));
    // A body declared longer than the upload: 413 before anything is created.
    problem(
        tus.post(
            &[("upload-length", "4"), ("content-type", OCTET)],
            b"hello".to_vec(),
        )
        .await,
        413,
        "tus.exceeds_length",
    )
    .await;
    // A body under another media type is not an upload chunk: 415.
    problem(
        tus.post(
            &[
                ("upload-length", "11"),
                ("content-type", "application/octet-stream"),
            ],
            b"hello".to_vec(),
        )
        .await,
        415,
        "tus.content_type",
    )
    .await;
}

/// A creation request whose first chunk is refused after the upload was stored (checksum
/// mismatch, a chunked body running past the length) must not leave an upload behind that
/// the client never learned the location of: it would count against the open-upload limit
/// until it expired.
#[tokio::test]
async fn a_refused_creation_body_leaves_no_upload_behind() {
    let gw = Gateway::start("[uploads]\nmax_size = \"1MiB\"\nmax_open_per_principal = 1\n");
    let tus = Tus::new(&gw);
    let wrong = checksum("sha256", b"something else");
    for _ in 0..3 {
        problem(
            tus.post(
                &[
                    ("upload-length", "11"),
                    ("content-type", OCTET),
                    ("upload-checksum", &wrong),
                ],
                b"hello".to_vec(),
            )
            .await,
            460,
            "tus.checksum_mismatch",
        )
        .await;
    }
    // A body without a declared length that runs past Upload-Length.
    let long = tus
        .request("POST", "/files/")
        .header("tus-resumable", "1.0.0")
        .header("upload-length", "3")
        .header("content-type", OCTET)
        .body(slow_body(b"hello".to_vec(), 2, Duration::from_millis(1)))
        .send()
        .await
        .unwrap();
    problem(long, 413, "tus.exceeds_length").await;
    // The limit of one open upload is still free.
    let path = tus.create(Some(3), &[]).await;
    problem(
        tus.post(&[("upload-length", "3")], Vec::new()).await,
        429,
        "upload.too_many_open",
    )
    .await;
    assert_eq!(tus.offset(&path).await, 0);
}

#[tokio::test]
async fn zero_length_upload_is_complete_at_creation() {
    let gw = Gateway::start(CONF);
    let tus = Tus::new(&gw);
    let resp = tus.post(&[("upload-length", "0")], Vec::new()).await;
    assert_eq!(resp.status(), 201);
    assert_eq!(header(&resp, "upload-offset"), "0");
    assert_no(&resp, "upload-expires");
    let path = location(&resp);
    let head = tus.head(&path).await;
    assert_eq!(head.status(), 200);
    assert_eq!(header(&head, "upload-offset"), "0");
    assert_eq!(header(&head, "upload-length"), "0");
    assert_eq!(header(&head, "repr-digest"), repr_digest(b""));
    assert_no(&head, "upload-expires");
    let ledger = tus.ledger(&path).await;
    assert_eq!(ledger["complete"], true);
    assert_eq!(ledger["sha256"], sha256_hex(b""));
    assert_eq!(ledger["chunks"], serde_json::json!([]));
    // An empty PATCH on the complete upload is a no-op; a byte more is 413.
    assert_eq!(tus.patch_ok(&path, 0, b"").await, 0);
    problem(
        tus.patch(&path, 0, b"x".to_vec(), &[]).await,
        413,
        "tus.exceeds_length",
    )
    .await;
}

#[tokio::test]
async fn deferred_length_is_declared_by_a_later_patch() {
    let gw = Gateway::start(CONF);
    let tus = Tus::new(&gw);
    let path = tus.create(None, &[]).await;
    let head = tus.head(&path).await;
    assert_eq!(header(&head, "upload-defer-length"), "1");
    assert_no(&head, "upload-length");
    assert_eq!(header(&head, "upload-offset"), "0");
    assert_eq!(tus.patch_ok(&path, 0, b"abc").await, 3);
    assert_eq!(header(&tus.head(&path).await, "upload-defer-length"), "1");
    // Declared below the offset: 400; above Tus-Max-Size: 413.
    problem(
        tus.patch(&path, 3, Vec::new(), &[("upload-length", "2")])
            .await,
        400,
        "tus.length_below_offset",
    )
    .await;
    problem(
        tus.patch(&path, 3, Vec::new(), &[("upload-length", "1048577")])
            .await,
        413,
        "tus.too_large",
    )
    .await;
    // Declared with the last chunk: complete.
    let resp = tus
        .patch(&path, 3, b"def".to_vec(), &[("upload-length", "6")])
        .await;
    assert_eq!(resp.status(), 204);
    assert_eq!(header(&resp, "upload-offset"), "6");
    assert_no(&resp, "upload-expires");
    let head = tus.head(&path).await;
    assert_eq!(header(&head, "upload-length"), "6");
    assert_no(&head, "upload-defer-length");
    assert_eq!(header(&head, "repr-digest"), repr_digest(b"abcdef"));
    // Once known, the length cannot change.
    problem(
        tus.patch(&path, 6, Vec::new(), &[("upload-length", "7")])
            .await,
        400,
        "tus.length_immutable",
    )
    .await;
    // Declared by an empty PATCH after the bytes: complete too.
    let path = tus.create(None, &[]).await;
    assert_eq!(tus.patch_ok(&path, 0, b"xyz").await, 3);
    let resp = tus
        .patch(&path, 3, Vec::new(), &[("upload-length", "3")])
        .await;
    assert_eq!(resp.status(), 204);
    let ledger = tus.ledger(&path).await;
    assert_eq!(ledger["complete"], true);
    assert_eq!(ledger["length"], 3);
    assert_eq!(ledger["sha256"], sha256_hex(b"xyz"));
}
