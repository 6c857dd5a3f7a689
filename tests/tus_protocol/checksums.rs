//! Checksums: 460 for every algorithm (the offset does not move), 400 for unknown or
//! malformed ones, and checksum trailers over raw HTTP/1.1.

use super::*;

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
