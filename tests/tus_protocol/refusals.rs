//! PATCH and POST refusals: 409 with the current offset, 412 with Tus-Version, 413, 415,
//! 429.

use super::*;

// === PATCH refusals ===

#[tokio::test]
async fn stale_offset_is_409_with_the_current_offset() {
    let gw = Gateway::start(CONF);
    let tus = Tus::new(&gw);
    let path = tus.create(Some(10), &[]).await;
    assert_eq!(tus.patch_ok(&path, 0, b"abcd").await, 4);
    for sent in [0u64, 3, 5, 10] {
        let headers = problem(
            tus.patch(&path, sent, b"ef".to_vec(), &[]).await,
            409,
            "tus.offset_mismatch",
        )
        .await;
        assert_eq!(header_in(&headers, "upload-offset"), "4");
        assert_eq!(header_in(&headers, "tus-resumable"), "1.0.0");
        expires(&headers);
    }
    assert_eq!(tus.offset(&path).await, 4);
    assert_eq!(
        tus.ledger(&path).await["chunks"].as_array().unwrap().len(),
        1
    );
    // A malformed or missing Upload-Offset is 400.
    let resp = tus
        .request("PATCH", &path)
        .header("tus-resumable", "1.0.0")
        .header("content-type", OCTET)
        .body("ef")
        .send()
        .await
        .unwrap();
    problem(resp, 400, "tus.header_missing").await;
    let resp = tus
        .request("PATCH", &path)
        .header("tus-resumable", "1.0.0")
        .header("upload-offset", "+4")
        .header("content-type", OCTET)
        .body("ef")
        .send()
        .await
        .unwrap();
    problem(resp, 400, "tus.header_invalid").await;
}

#[tokio::test]
async fn missing_or_wrong_tus_resumable_is_412_with_tus_version() {
    let gw = Gateway::start(CONF);
    let tus = Tus::new(&gw);
    let path = tus.create(Some(10), &[]).await;
    assert_eq!(tus.patch_ok(&path, 0, b"abcd").await, 4);
    for version in [None, Some("0.2.2"), Some("1.0"), Some("1.0.1"), Some("")] {
        let with = |r: reqwest::RequestBuilder| match version {
            Some(v) => r.header("tus-resumable", v),
            None => r,
        };
        let check = |h: &reqwest::header::HeaderMap| {
            assert_eq!(header_in(h, "tus-version"), "1.0.0");
            assert_eq!(header_in(h, "tus-resumable"), "1.0.0");
        };
        let post = with(tus.request("POST", "/files/"))
            .header("upload-length", "5")
            .send()
            .await
            .unwrap();
        check(&problem(post, 412, "tus.version_unsupported").await);
        let patch = with(tus.request("PATCH", &path))
            .header("upload-offset", "4")
            .header("content-type", OCTET)
            .body("ef")
            .send()
            .await
            .unwrap();
        check(&problem(patch, 412, "tus.version_unsupported").await);
        let delete = with(tus.request("DELETE", &path)).send().await.unwrap();
        check(&problem(delete, 412, "tus.version_unsupported").await);
        // HEAD has no body: the status and headers say it.
        let head = with(tus.request("HEAD", &path)).send().await.unwrap();
        assert_eq!(head.status(), 412);
        check(head.headers());
    }
    // Nothing was changed by any of them.
    assert_eq!(tus.offset(&path).await, 4);
}

#[tokio::test]
async fn beyond_max_size_or_length_is_413() {
    let gw = Gateway::start(CONF);
    let tus = Tus::new(&gw);
    // Creation: Upload-Length over Tus-Max-Size.
    problem(
        tus.post(&[("upload-length", "1048577")], Vec::new()).await,
        413,
        "tus.too_large",
    )
    .await;
    let max = tus.create(Some(1 << 20), &[]).await;
    assert_eq!(tus.offset(&max).await, 0);
    // PATCH: a declared body past the length; nothing is kept.
    let path = tus.create(Some(10), &[]).await;
    assert_eq!(tus.patch_ok(&path, 0, b"abcd").await, 4);
    let h = problem(
        tus.patch(&path, 4, b"efghijk".to_vec(), &[]).await,
        413,
        "tus.exceeds_length",
    )
    .await;
    expires(&h);
    // A streamed body without Content-Length (chunked on HTTP/1.1) that runs past the
    // length: refused when the extra byte arrives, and nothing of it is kept.
    for alpn in [&b"http/1.1"[..], &b"h2"[..]] {
        let c = gw.client_with(&[&rustls::version::TLS13], &[alpn]);
        let resp = c
            .patch(tus.url(&path))
            .bearer_auth(&tus.token)
            .header("tus-resumable", "1.0.0")
            .header("upload-offset", "4")
            .header("content-type", OCTET)
            .body(slow_body(b"efghijk".to_vec(), 3, Duration::from_millis(5)))
            .send()
            .await
            .unwrap();
        problem(resp, 413, "tus.exceeds_length").await;
    }
    assert_eq!(tus.offset(&path).await, 4);
    assert_eq!(
        tus.ledger(&path).await["chunks"].as_array().unwrap().len(),
        1
    );
    // Deferred length: a body growing past Tus-Max-Size is 413 tus.too_large.
    let deferred = tus.create(None, &[]).await;
    assert_eq!(tus.patch_ok(&deferred, 0, &[7u8; 1000]).await, 1000);
    problem(
        tus.patch(&deferred, 1000, vec![8u8; (1 << 20) - 999], &[])
            .await,
        413,
        "tus.too_large",
    )
    .await;
    assert_eq!(tus.offset(&deferred).await, 1000);
    assert_eq!(
        tus.patch_ok(&deferred, 1000, &vec![8u8; (1 << 20) - 1000])
            .await,
        1 << 20
    );
}

#[tokio::test]
async fn wrong_content_type_is_415() {
    let gw = Gateway::start(CONF);
    let tus = Tus::new(&gw);
    let path = tus.create(Some(10), &[]).await;
    for ct in [
        Some("text/plain"),
        Some("application/octet-stream"),
        Some("application/offset+octet-stream+x"),
        Some("application/offset+octet-stream; =x"),
        None,
    ] {
        let mut r = tus
            .request("PATCH", &path)
            .header("tus-resumable", "1.0.0")
            .header("upload-offset", "0");
        if let Some(ct) = ct {
            r = r.header("content-type", ct);
        }
        let resp = r.body("abc").send().await.unwrap();
        problem(resp, 415, "tus.content_type").await;
    }
    assert_eq!(tus.offset(&path).await, 0);
    // Case-insensitive type and well-formed parameters are accepted.
    for (i, ct) in [
        "APPLICATION/Offset+Octet-Stream",
        "application/offset+octet-stream; charset=binary",
    ]
    .iter()
    .enumerate()
    {
        let resp = tus
            .request("PATCH", &path)
            .header("tus-resumable", "1.0.0")
            .header("upload-offset", (i * 3).to_string())
            .header("content-type", *ct)
            .body("abc")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 204, "{ct}");
    }
    assert_eq!(tus.offset(&path).await, 6);
}

// === limits ===

#[tokio::test]
async fn too_many_open_uploads_is_429() {
    let gw = Gateway::start("[uploads]\nmax_size = \"1MiB\"\nmax_open_per_principal = 2\n");
    let tus = Tus::new(&gw);
    let a = tus.create(Some(3), &[]).await;
    let b = tus.create(None, &[]).await;
    let h = problem(
        tus.post(&[("upload-length", "3")], Vec::new()).await,
        429,
        "upload.too_many_open",
    )
    .await;
    assert_eq!(header_in(&h, "tus-resumable"), "1.0.0");
    // The limit is per principal.
    let lab = Tus::as_token(&gw, LAB_TOKEN);
    lab.create(Some(3), &[]).await;
    // Finishing one frees a place; so does terminating one.
    assert_eq!(tus.patch_ok(&a, 0, b"abc").await, 3);
    let c = tus.create(Some(3), &[]).await;
    problem(
        tus.post(&[("upload-length", "3")], Vec::new()).await,
        429,
        "upload.too_many_open",
    )
    .await;
    assert_eq!(tus.delete(&b).await.status(), 204);
    tus.create(Some(3), &[]).await;
    assert_eq!(tus.offset(&c).await, 0);
}
