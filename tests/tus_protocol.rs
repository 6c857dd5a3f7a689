#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The tus endpoint, black-box: the real binary on port 0, real TLS through reqwest (and
//! raw HTTP/1.1 over tokio-rustls for checksum trailers). Every status code and header of
//! `proto/upload-v1.md` is asserted exactly: OPTIONS, the creation variants, 409/412/413/
//! 415/460/400/403/404/410/429, checksum trailers, concatenation, termination, the ledger,
//! `Repr-Digest`, `Upload-Expires` on error responses, metadata that never reaches the log,
//! `X-HTTP-Method-Override` and CORS.

mod support;
mod tus_http;

use std::time::Duration;

use support::{ADMIN_TOKEN, Gateway, LAB_TOKEN};
use tus_http::*;

/// Most tests: a 1 MiB `Tus-Max-Size`.
const CONF: &str = "[uploads]\nmax_size = \"1MiB\"\n";

const EXTENSIONS: &str = "creation,creation-with-upload,creation-defer-length,expiration,\
checksum,checksum-trailer,termination,concatenation";
const ALGORITHMS: [&str; 4] = ["sha1", "sha256", "sha512", "md5"];

fn assert_no(resp: &reqwest::Response, name: &str) {
    assert!(
        resp.headers().get(name).is_none(),
        "unexpected {name} in {:?}",
        resp.headers()
    );
}

/// `Upload-Expires` of a response: an IMF-fixdate in the future.
fn expires(headers: &reqwest::header::HeaderMap) -> i64 {
    let t = http_date_unix(&header_in(headers, "upload-expires"));
    assert!(t > unix_now() - 2, "Upload-Expires in the past");
    t
}

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

// === checksums ===

#[tokio::test]
async fn checksum_mismatch_is_460_for_every_algorithm_and_moves_nothing() {
    let gw = Gateway::start(CONF);
    let tus = Tus::new(&gw);
    let chunk_len = 70_000; // more than one 64 KiB segment
    let all = data(chunk_len * ALGORITHMS.len(), 1);
    let path = tus.create(Some(all.len() as u64), &[]).await;
    for (i, alg) in ALGORITHMS.iter().enumerate() {
        let offset = (i * chunk_len) as u64;
        let chunk = &all[i * chunk_len..(i + 1) * chunk_len];
        // The digest of other bytes, of the right length for the algorithm.
        let mut flipped = chunk.to_vec();
        flipped[chunk_len / 2] ^= 1;
        let wrong = checksum(alg, &flipped);
        let h = problem(
            tus.patch(
                &path,
                offset,
                chunk.to_vec(),
                &[("upload-checksum", &wrong)],
            )
            .await,
            460,
            "tus.checksum_mismatch",
        )
        .await;
        expires(&h);
        assert_eq!(tus.offset(&path).await, offset, "{alg}: the offset moved");
        // The same bytes with the right digest are accepted.
        let resp = tus
            .patch(
                &path,
                offset,
                chunk.to_vec(),
                &[("upload-checksum", &checksum(alg, chunk))],
            )
            .await;
        assert_eq!(resp.status(), 204, "{alg}");
        assert_eq!(
            header(&resp, "upload-offset"),
            (offset + chunk_len as u64).to_string()
        );
    }
    let ledger = tus.ledger(&path).await;
    let chunks = ledger["chunks"].as_array().unwrap();
    assert_eq!(chunks.len(), ALGORITHMS.len());
    for (i, alg) in ALGORITHMS.iter().enumerate() {
        assert_eq!(chunks[i]["checksum_verified"], *alg);
        assert_eq!(
            chunks[i]["sha256"],
            sha256_hex(&all[i * chunk_len..(i + 1) * chunk_len])
        );
    }
    assert_eq!(ledger["sha256"], sha256_hex(&all));
}

#[tokio::test]
async fn unknown_or_malformed_checksum_is_400() {
    let gw = Gateway::start(CONF);
    let tus = Tus::new(&gw);
    let path = tus.create(Some(5), &[]).await;
    let sha1 = checksum("sha1", b"hello");
    let sha1_digest = sha1.strip_prefix("sha1 ").unwrap();
    let cases = [
        (format!("crc32 {sha1_digest}"), "tus.checksum_algorithm"),
        (format!("SHA1 {sha1_digest}"), "tus.checksum_algorithm"),
        (format!("blake3 {sha1_digest}"), "tus.checksum_algorithm"),
        ("sha1".to_owned(), "tus.checksum_invalid"),
        ("sha1 !!!!".to_owned(), "tus.checksum_invalid"),
        // A sha1-length digest under sha256: wrong length.
        (format!("sha256 {sha1_digest}"), "tus.checksum_invalid"),
    ];
    for (value, code) in cases {
        problem(
            tus.patch(&path, 0, b"hello".to_vec(), &[("upload-checksum", &value)])
                .await,
            400,
            code,
        )
        .await;
    }
    assert_eq!(tus.offset(&path).await, 0);
    // On a creation POST without a body the header is refused.
    problem(
        tus.post(
            &[("upload-length", "5"), ("upload-checksum", &sha1)],
            Vec::new(),
        )
        .await,
        400,
        "tus.header_invalid",
    )
    .await;
}

#[tokio::test]
async fn checksum_trailer_verifies_a_chunked_body() {
    let gw = Gateway::start(CONF);
    let tus = Tus::new(&gw);
    let body = b"hello world";
    let path = tus.create(Some(11), &[]).await;
    let announce = ["Trailer: Upload-Checksum"];
    let send = |headers: &[&str], trailers: &[&str]| {
        chunked_patch(
            &path,
            &tus.token,
            0,
            headers,
            &[b"hello", b" world"],
            trailers,
        )
    };
    let wrong = format!("Upload-Checksum: {}", checksum("sha256", b"hello"));
    let right = format!("Upload-Checksum: {}", checksum("md5", body));
    // A wrong digest in the trailer: 460, offset unchanged.
    let r = raw_h1(&gw, &send(&announce, &[&wrong])).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (460, "tus.checksum_mismatch")
    );
    assert_eq!(r.get("tus-resumable"), Some("1.0.0"));
    assert!(r.get("upload-expires").is_some());
    // Announced but never sent: 400.
    let r = raw_h1(&gw, &send(&announce, &[])).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (400, "tus.checksum_trailer_missing")
    );
    // Sent but not announced: refused, not ignored.
    let r = raw_h1(&gw, &send(&[], &[&right])).await;
    assert_eq!((r.status, r.code().as_str()), (400, "tus.header_invalid"));
    // Both as a header and as a trailer: 400.
    let r = raw_h1(&gw, &send(&[announce[0], &right], &[&right])).await;
    assert_eq!((r.status, r.code().as_str()), (400, "tus.checksum_twice"));
    // An unknown algorithm in the trailer: 400.
    let r = raw_h1(&gw, &send(&announce, &["Upload-Checksum: crc32 AAAAAA=="])).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (400, "tus.checksum_algorithm")
    );
    assert_eq!(tus.offset(&path).await, 0);
    // The right digest (any supported algorithm): 204.
    let r = raw_h1(&gw, &send(&announce, &[&right])).await;
    assert_eq!(r.status, 204, "{r:?}");
    assert_eq!(r.get("upload-offset"), Some("11"));
    let ledger = tus.ledger(&path).await;
    assert_eq!(ledger["chunks"][0]["checksum_verified"], "md5");
    assert_eq!(ledger["chunks"][0]["length"], 11);
    assert_eq!(ledger["sha256"], sha256_hex(body));
}

// === concatenation ===

#[tokio::test]
async fn concatenation_builds_a_final_upload_with_its_own_digest_and_the_parts_ledgers() {
    let gw = Gateway::start(CONF);
    let tus = Tus::new(&gw);
    let a_bytes = data(200_000, 2);
    let b_bytes = data(150_001, 3);
    let partial = [("upload-concat", "partial")];
    let a = tus.create(Some(a_bytes.len() as u64), &partial).await;
    let b = tus.create(Some(b_bytes.len() as u64), &partial).await;
    assert_eq!(header(&tus.head(&a).await, "upload-concat"), "partial");
    let concat = format!("final;{a} {}", tus.url(&b));
    // A part that is not finished: 400 naming it.
    problem(
        tus.post(&[("upload-concat", &concat)], Vec::new()).await,
        400,
        "tus.concat_part",
    )
    .await;
    let resp = tus
        .patch(
            &a,
            0,
            a_bytes.clone(),
            &[("upload-checksum", &checksum("sha1", &a_bytes))],
        )
        .await;
    assert_eq!(resp.status(), 204);
    assert_eq!(tus.patch_ok(&b, 0, &b_bytes[..100_000]).await, 100_000);
    assert_eq!(
        tus.patch_ok(&b, 100_000, &b_bytes[100_000..]).await,
        150_001
    );
    // Someone else's parts are refused like missing ones, even for an admin.
    for token in [LAB_TOKEN, ADMIN_TOKEN] {
        let other = Tus::as_token(&gw, token);
        problem(
            other.post(&[("upload-concat", &concat)], Vec::new()).await,
            400,
            "tus.concat_part",
        )
        .await;
    }
    // A final upload carries no length and no body.
    problem(
        tus.post(
            &[("upload-concat", &concat), ("upload-length", "350001")],
            Vec::new(),
        )
        .await,
        400,
        "tus.concat_invalid",
    )
    .await;
    problem(
        tus.post(
            &[("upload-concat", &concat), ("content-type", OCTET)],
            b"x".to_vec(),
        )
        .await,
        403,
        "tus.final_upload",
    )
    .await;
    let resp = tus.post(&[("upload-concat", &concat)], Vec::new()).await;
    assert_eq!(resp.status(), 201);
    let fin = location(&resp);
    let whole: Vec<u8> = [a_bytes.as_slice(), b_bytes.as_slice()].concat();
    let head = tus.head(&fin).await;
    assert_eq!(header(&head, "upload-concat"), format!("final;{a} {b}"));
    assert_eq!(header(&head, "upload-offset"), whole.len().to_string());
    assert_eq!(header(&head, "upload-length"), whole.len().to_string());
    assert_eq!(header(&head, "repr-digest"), repr_digest(&whole));
    assert_no(&head, "upload-expires");
    // PATCH on a final upload: 403, at any offset.
    for offset in [0, whole.len() as u64] {
        problem(
            tus.patch(&fin, offset, b"x".to_vec(), &[]).await,
            403,
            "tus.final_upload",
        )
        .await;
    }
    let expect_parts = serde_json::json!([
        {
            "upload": id_of(&a),
            "length": a_bytes.len(),
            "sha256": sha256_hex(&a_bytes),
        },
        {
            "upload": id_of(&b),
            "length": b_bytes.len(),
            "sha256": sha256_hex(&b_bytes),
        },
    ]);
    let check_ledger = |ledger: serde_json::Value| {
        assert_eq!(ledger["concat"], "final");
        assert_eq!(ledger["complete"], true);
        assert_eq!(ledger["sha256"], sha256_hex(&whole));
        assert_eq!(ledger["chunks"], serde_json::json!([]));
        let parts = ledger["parts"].as_array().unwrap();
        assert_eq!(parts.len(), 2, "{ledger}");
        for (i, part) in parts.iter().enumerate() {
            for k in ["upload", "length", "sha256"] {
                assert_eq!(part[k], expect_parts[i][k], "part {i} {k}");
            }
        }
        let a_chunks = parts[0]["chunks"].as_array().unwrap();
        assert_eq!(a_chunks.len(), 1);
        assert_eq!(a_chunks[0]["checksum_verified"], "sha1");
        let b_chunks = parts[1]["chunks"].as_array().unwrap();
        assert_eq!(b_chunks.len(), 2);
        assert_eq!(b_chunks[1]["offset"], 100_000);
        assert_eq!(b_chunks[1]["sha256"], sha256_hex(&b_bytes[100_000..]));
    };
    check_ledger(tus.ledger(&fin).await);
    // The same part may appear twice.
    let resp = tus
        .post(&[("upload-concat", &format!("final;{b} {b}"))], Vec::new())
        .await;
    assert_eq!(resp.status(), 201);
    let twice = location(&resp);
    assert_eq!(
        header(&tus.head(&twice).await, "repr-digest"),
        repr_digest(&[b_bytes.as_slice(), b_bytes.as_slice()].concat())
    );
    // The final upload is self-contained: deleting a part changes neither its bytes nor
    // its ledger.
    assert_eq!(tus.delete(&a).await.status(), 204);
    let head = tus.head(&fin).await;
    assert_eq!(header(&head, "repr-digest"), repr_digest(&whole));
    check_ledger(tus.ledger(&fin).await);
    // Parts summing past Tus-Max-Size: 413.
    let big = tus.create(Some(600_000), &partial).await;
    assert_eq!(tus.patch_ok(&big, 0, &vec![1u8; 600_000]).await, 600_000);
    problem(
        tus.post(
            &[("upload-concat", &format!("final;{big} {big}"))],
            Vec::new(),
        )
        .await,
        413,
        "tus.too_large",
    )
    .await;
    // A final upload is not a part.
    problem(
        tus.post(&[("upload-concat", &format!("final;{fin}"))], Vec::new())
            .await,
        400,
        "tus.concat_part",
    )
    .await;
    // URLs that are not ours are malformed.
    for bad in [
        "final;/other/0123456789abcdefghjkmnpqrs".to_owned(),
        format!("final;{b}/"),
        format!("final;{b}?x=1"),
        format!("final;{b}  {b}"),
        "final;".to_owned(),
        "partial;x".to_owned(),
    ] {
        problem(
            tus.post(&[("upload-concat", &bad)], Vec::new()).await,
            400,
            "tus.concat_invalid",
        )
        .await;
    }
}

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

// === existence and ownership ===

#[tokio::test]
async fn unknown_upload_is_404() {
    let gw = Gateway::start(CONF);
    let tus = Tus::new(&gw);
    let path = "/files/0123456789abcdefghjkmnpqrs";
    problem(
        tus.patch(path, 0, b"x".to_vec(), &[]).await,
        404,
        "tus.not_found",
    )
    .await;
    problem(tus.delete(path).await, 404, "tus.not_found").await;
    problem(tus.ledger_response(path).await, 404, "tus.not_found").await;
    let head = tus.head(path).await;
    assert_eq!(head.status(), 404);
    assert_eq!(header(&head, "tus-resumable"), "1.0.0");
    // Not an upload id at all: no such resource.
    for bad in [
        "/files/x",
        "/files/0123456789ABCDEFGHJKMNPQRS",
        "/files/0123456789abcdefghjkmnpqrs/",
    ] {
        problem(
            tus.patch(bad, 0, b"x".to_vec(), &[]).await,
            404,
            "request.not_found",
        )
        .await;
    }
}

#[tokio::test]
async fn another_principals_upload_is_404_while_an_admin_may_use_it() {
    let gw = Gateway::start(CONF);
    let lab = Tus::as_token(&gw, LAB_TOKEN);
    let clinic = Tus::new(&gw);
    let admin = Tus::as_token(&gw, ADMIN_TOKEN);
    let path = lab
        .create(Some(10), &[("upload-metadata", "filename bGFiLnR4dA==")])
        .await;
    assert_eq!(lab.patch_ok(&path, 0, b"abc").await, 3);
    // To a stranger the upload does not exist: the same 404 as an unknown id, with
    // nothing that reveals its state.
    let head = clinic.head(&path).await;
    assert_eq!(head.status(), 404);
    for name in [
        "upload-offset",
        "upload-length",
        "upload-expires",
        "upload-metadata",
    ] {
        assert_no(&head, name);
    }
    let h = problem(
        clinic.patch(&path, 3, b"def".to_vec(), &[]).await,
        404,
        "tus.not_found",
    )
    .await;
    assert!(h.get("upload-expires").is_none() && h.get("upload-offset").is_none());
    let h = problem(
        clinic.patch(&path, 0, b"def".to_vec(), &[]).await,
        404,
        "tus.not_found",
    )
    .await;
    assert!(h.get("upload-offset").is_none());
    problem(clinic.delete(&path).await, 404, "tus.not_found").await;
    problem(clinic.ledger_response(&path).await, 404, "tus.not_found").await;
    // The admin sees and may continue it; the ledger names who sent each chunk.
    let head = admin.head(&path).await;
    assert_eq!(head.status(), 200);
    assert_eq!(header(&head, "upload-offset"), "3");
    assert_eq!(header(&head, "upload-metadata"), "filename bGFiLnR4dA==");
    assert_eq!(admin.patch_ok(&path, 3, b"def").await, 6);
    let ledger = admin.ledger(&path).await;
    assert_eq!(ledger["chunks"][0]["principal"], "lab");
    assert_eq!(ledger["chunks"][1]["principal"], "ops");
    // The owner still has it.
    assert_eq!(lab.offset(&path).await, 6);
    // Reading the ledger needs the uploader role too: no credentials is 401.
    let resp = gw
        .client()
        .get(gw.url(&format!("{path}/ledger")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}

// === expiry ===

/// `expire_after` is 3 s here, so the test waits seconds for expiry instead of a minute.
/// A restart runs the sweeper at once, which removes the expired upload's data and keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_upload_is_410_until_the_sweeper_removes_it() {
    let conf = "[uploads]\nmax_size = \"1MiB\"\nexpire_after = \"3s\"\n";
    let mut gw = Gateway::start(conf);
    let tus = Tus::new(&gw);
    let path = tus
        .create(Some(10), &[("upload-metadata", "filename ZXhwaXJlZA==")])
        .await;
    let resp = tus.patch(&path, 0, b"abc".to_vec(), &[]).await;
    assert_eq!(resp.status(), 204);
    let exp = expires(resp.headers());
    let done = tus.create(Some(3), &[]).await;
    assert_eq!(tus.patch_ok(&done, 0, b"xyz").await, 3);
    let id = id_of(&path).to_owned();
    assert!(!files_named(&gw.data_dir(), &id).is_empty());
    // Wait until the expiry instant has passed (one-second resolution).
    while unix_now() <= exp {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let head = tus.head(&path).await;
    assert_eq!(head.status(), 410);
    assert_eq!(http_date_unix(&header(&head, "upload-expires")), exp);
    let h = problem(
        tus.patch(&path, 3, b"def".to_vec(), &[]).await,
        410,
        "tus.expired",
    )
    .await;
    assert_eq!(http_date_unix(&header_in(&h, "upload-expires")), exp);
    problem(tus.delete(&path).await, 410, "tus.expired").await;
    problem(tus.ledger_response(&path).await, 410, "tus.expired").await;
    // Ownership comes first: a stranger cannot learn that it expired.
    let lab = Tus::as_token(&gw, LAB_TOKEN);
    assert_eq!(lab.head(&path).await.status(), 404);
    // A complete upload does not expire.
    assert_eq!(tus.head(&done).await.status(), 200);
    // Restart: the sweeper runs at start-up and destroys the expired upload.
    tokio::task::block_in_place(|| gw.stop());
    let gw2 = Gateway::start_in(&gw.dir, conf);
    let tus = Tus::new(&gw2);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let status = tus.head(&path).await.status();
        if status == 404 {
            break;
        }
        assert_eq!(status, 410);
        assert!(
            std::time::Instant::now() < deadline,
            "the sweeper never ran"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        files_named(&gw2.data_dir(), &id),
        Vec::<std::path::PathBuf>::new()
    );
    assert_eq!(tus.offset(&done).await, 3);
    // The sweep is audited.
    let mut gw2 = gw2;
    tokio::task::block_in_place(|| gw2.stop());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sallyport"))
        .arg("--config")
        .arg(&gw2.config_path)
        .args(["audit", "export"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.lines()
            .any(|l| l.contains("\"upload.expired\"") && l.contains(&id)),
        "{text}"
    );
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

// === termination ===

#[tokio::test]
async fn delete_terminates_and_destroys_the_data() {
    let gw = Gateway::start(CONF);
    let tus = Tus::new(&gw);
    let blobs = gw.data_dir().join("blobs");
    let before = file_count(&blobs);
    let path = tus
        .create(
            Some(200_000),
            &[("upload-metadata", "filename c2Vuc2l0aXZlLmRjbQ==")],
        )
        .await;
    assert_eq!(tus.patch_ok(&path, 0, &data(150_000, 5)).await, 150_000);
    let id = id_of(&path).to_owned();
    assert!(
        !files_named(&blobs, &id).is_empty(),
        "no blob for the upload"
    );
    assert!(file_count(&blobs) > before + 1, "no blob for the metadata");
    let resp = tus.delete(&path).await;
    assert_eq!(resp.status(), 204);
    assert_eq!(header(&resp, "tus-resumable"), "1.0.0");
    // Gone for every method, the admin's too.
    assert_eq!(tus.head(&path).await.status(), 404);
    assert_eq!(
        Tus::as_token(&gw, ADMIN_TOKEN).head(&path).await.status(),
        404
    );
    problem(
        tus.patch(&path, 150_000, b"x".to_vec(), &[]).await,
        404,
        "tus.not_found",
    )
    .await;
    problem(tus.ledger_response(&path).await, 404, "tus.not_found").await;
    problem(tus.delete(&path).await, 404, "tus.not_found").await;
    // The data and the sealed metadata are deleted from disk.
    assert_eq!(files_named(&blobs, &id), Vec::<std::path::PathBuf>::new());
    assert_eq!(file_count(&blobs), before);
    // A complete upload can be terminated too.
    let done = tus.create(Some(3), &[]).await;
    assert_eq!(tus.patch_ok(&done, 0, b"abc").await, 3);
    assert_eq!(tus.delete(&done).await.status(), 204);
    assert_eq!(tus.head(&done).await.status(), 404);
    assert_eq!(file_count(&blobs), before);
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

// === metadata ===

#[tokio::test]
async fn metadata_round_trips_on_head_and_never_reaches_the_log() {
    let gw = Gateway::start(
        "[uploads]\nmax_size = \"1MiB\"\n\n[log]\nformat = \"json\"\nlevel = \"debug\"\n",
    );
    let tus = Tus::new(&gw);
    let name = "Jane-Doe-MRN-4711.dcm";
    let patient = "DOE^JANE^1961-04-01";
    let sent = format!(
        "filename {},patient {},flag",
        b64(name.as_bytes()),
        b64(patient.as_bytes())
    );
    let path = tus.create(Some(3), &[("upload-metadata", &sent)]).await;
    let head = tus.head(&path).await;
    assert_eq!(header(&head, "upload-metadata"), sent);
    // The canonical form: a key with an empty value comes back bare.
    let odd = format!("a ,b {}", b64(b"Jane"));
    let path2 = tus.create(Some(3), &[("upload-metadata", &odd)]).await;
    assert_eq!(
        header(&tus.head(&path2).await, "upload-metadata"),
        format!("a,b {}", b64(b"Jane"))
    );
    // Metadata survives the upload completing.
    assert_eq!(tus.patch_ok(&path, 0, b"abc").await, 3);
    assert_eq!(header(&tus.head(&path).await, "upload-metadata"), sent);
    // Malformed and oversized metadata: 400, without echoing it.
    let secret_bad = format!(
        "filename {},filename {}",
        b64(name.as_bytes()),
        b64(name.as_bytes())
    );
    let resp = tus
        .post(
            &[("upload-length", "3"), ("upload-metadata", &secret_bad)],
            Vec::new(),
        )
        .await;
    let rid = header(&resp, "x-request-id");
    assert_eq!(resp.status(), 400);
    let text = resp.text().await.unwrap();
    assert!(
        text.contains("tus.metadata_invalid") && !text.contains(&b64(name.as_bytes())),
        "{text}"
    );
    let many: Vec<String> = (0..33)
        .map(|i| format!("k{i} {}", b64(patient.as_bytes())))
        .collect();
    problem(
        tus.post(
            &[("upload-length", "3"), ("upload-metadata", &many.join(","))],
            Vec::new(),
        )
        .await,
        400,
        "tus.metadata_too_large",
    )
    .await;
    let big = format!("filename {}", b64(&vec![b'x'; 8193]));
    problem(
        tus.post(
            &[("upload-length", "3"), ("upload-metadata", &big)],
            Vec::new(),
        )
        .await,
        400,
        "tus.metadata_too_large",
    )
    .await;
    // The log ran at debug level (the refusal above is in it), yet holds no metadata in
    // any form.
    let lines = gw.drain_stderr();
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&rid) && l.contains("tus.metadata_invalid")),
        "no debug line for the refusal: {lines:#?}"
    );
    for needle in [
        name.to_owned(),
        patient.to_owned(),
        b64(name.as_bytes()),
        b64(patient.as_bytes()),
        "Jane".to_owned(),
        b64(b"Jane"),
    ] {
        assert!(
            !lines.iter().any(|l| l.contains(&needle)),
            "{needle} is in the log"
        );
    }
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

// === method override ===

#[tokio::test]
async fn x_http_method_override_turns_post_into_patch_or_delete() {
    let gw = Gateway::start(CONF);
    let tus = Tus::new(&gw);
    let path = tus.create(Some(6), &[]).await;
    let resp = tus
        .request("POST", &path)
        .header("x-http-method-override", "PATCH")
        .header("tus-resumable", "1.0.0")
        .header("upload-offset", "0")
        .header("content-type", OCTET)
        .body("abc")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(header(&resp, "upload-offset"), "3");
    assert_eq!(tus.offset(&path).await, 3);
    // The override carries the PATCH rules with it.
    let resp = tus
        .request("POST", &path)
        .header("x-http-method-override", "PATCH")
        .header("tus-resumable", "1.0.0")
        .header("upload-offset", "0")
        .header("content-type", OCTET)
        .body("abc")
        .send()
        .await
        .unwrap();
    problem(resp, 409, "tus.offset_mismatch").await;
    // Any other override is not honoured: a POST to an upload's URL is not allowed.
    let resp = tus
        .request("POST", &path)
        .header("x-http-method-override", "HEAD")
        .header("tus-resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    problem(resp, 405, "request.method_not_allowed").await;
    let resp = tus
        .request("POST", &path)
        .header("x-http-method-override", "DELETE")
        .header("tus-resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(tus.head(&path).await.status(), 404);
    // Only on POST: a PATCH that asks to be a DELETE stays a PATCH.
    let path = tus.create(Some(6), &[]).await;
    let resp = tus
        .request("PATCH", &path)
        .header("x-http-method-override", "DELETE")
        .header("tus-resumable", "1.0.0")
        .header("upload-offset", "0")
        .header("content-type", OCTET)
        .body("abc")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(tus.offset(&path).await, 3);
}

// === CORS ===

#[tokio::test]
async fn cors_serves_allowed_origins_only() {
    let portal = "https://portal.example.org";
    let gw = Gateway::start(&format!(
        "[uploads]\nmax_size = \"1MiB\"\ncors_allowed_origins = [\"{portal}\"]\n"
    ));
    let tus = Tus::new(&gw);
    let path = tus.create(Some(6), &[]).await;
    let expose_needed = [
        "Location",
        "Upload-Offset",
        "Upload-Length",
        "Upload-Metadata",
        "Upload-Defer-Length",
        "Upload-Concat",
        "Upload-Expires",
        "Tus-Resumable",
        "Tus-Version",
        "Tus-Extension",
        "Tus-Max-Size",
        "Tus-Checksum-Algorithm",
        "Repr-Digest",
    ];
    let list = |v: String| -> Vec<String> {
        v.split(',')
            .map(|s| s.trim().to_ascii_lowercase())
            .collect()
    };
    // Preflight from the allowed origin, on the creation URL and on an upload.
    for p in ["/files/", path.as_str()] {
        let resp = gw
            .client()
            .request(reqwest::Method::OPTIONS, gw.url(p))
            .header("origin", portal)
            .header("access-control-request-method", "PATCH")
            .header(
                "access-control-request-headers",
                "authorization,content-type,tus-resumable,upload-offset,upload-checksum,upload-metadata",
            )
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            200,
            "a preflight answers 200: {:?}",
            resp.headers()
        );
        assert_eq!(header(&resp, "access-control-allow-origin"), portal);
        assert!(
            header(&resp, "vary")
                .to_ascii_lowercase()
                .contains("origin")
        );
        let methods = list(header(&resp, "access-control-allow-methods"));
        for m in ["post", "head", "patch", "delete", "get"] {
            assert!(methods.contains(&m.to_owned()), "{m}: {methods:?}");
        }
        let allowed = list(header(&resp, "access-control-allow-headers"));
        for h in [
            "authorization",
            "content-type",
            "tus-resumable",
            "upload-offset",
            "upload-checksum",
            "upload-metadata",
            "upload-length",
            "upload-defer-length",
            "upload-concat",
            "x-http-method-override",
        ] {
            assert!(allowed.contains(&h.to_owned()), "{h}: {allowed:?}");
        }
        let age: u64 = header(&resp, "access-control-max-age").parse().unwrap();
        assert!(age > 0);
    }
    // Actual requests from the allowed origin expose the tus headers, errors included.
    let resp = tus
        .request("POST", "/files/")
        .header("origin", portal)
        .header("tus-resumable", "1.0.0")
        .header("upload-length", "3")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert_eq!(header(&resp, "access-control-allow-origin"), portal);
    let exposed = list(header(&resp, "access-control-expose-headers"));
    for h in expose_needed {
        assert!(
            exposed.contains(&h.to_ascii_lowercase()),
            "{h}: {exposed:?}"
        );
    }
    for resp in [
        tus.request("HEAD", &path)
            .header("origin", portal)
            .header("tus-resumable", "1.0.0")
            .send()
            .await
            .unwrap(),
        tus.request("PATCH", &path)
            .header("origin", portal)
            .header("tus-resumable", "1.0.0")
            .header("upload-offset", "5")
            .header("content-type", OCTET)
            .body("x")
            .send()
            .await
            .unwrap(),
        tus.request("PATCH", &path)
            .header("origin", portal)
            .send()
            .await
            .unwrap(),
    ] {
        assert_eq!(header(&resp, "access-control-allow-origin"), portal);
        assert!(!header(&resp, "access-control-expose-headers").is_empty());
    }
    // Another origin, or none: no CORS grant at all (never `*`).
    for origin in [
        Some("https://evil.example"),
        Some("https://portal.example.org.evil.example"),
        Some("null"),
        None,
    ] {
        let mut pre = gw
            .client()
            .request(reqwest::Method::OPTIONS, gw.url("/files/"))
            .header("access-control-request-method", "PATCH");
        let mut real = tus.request("HEAD", &path).header("tus-resumable", "1.0.0");
        if let Some(o) = origin {
            pre = pre.header("origin", o);
            real = real.header("origin", o);
        }
        for resp in [pre.send().await.unwrap(), real.send().await.unwrap()] {
            assert!(resp.status().is_success());
            for h in [
                "access-control-allow-origin",
                "access-control-expose-headers",
                "access-control-allow-methods",
                "access-control-allow-headers",
                "access-control-allow-credentials",
            ] {
                assert_no(&resp, h);
            }
        }
    }
}
