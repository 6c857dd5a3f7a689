#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Whole uploads through the real upload engine (`support::uploads`, over the in-memory
//! stores): chunks and the ledger, deferred length, creation-with-upload, checksum
//! trailers, concatenation with the golden ledger, HEAD before and after completion. What
//! only the core decides (aborted-PATCH rules, a final's HEAD before it is concatenated)
//! is asked of the core directly.

mod support;

use http::HeaderMap;
use sallyport::http::problem::Describe;
use sha2::{Digest, Sha256};

use sallyport::tus::TusError;
use sallyport::tus::checksum::ChecksumAlgorithm;
use sallyport::tus::concat::{BasePath, PartProblem};
use sallyport::tus::dates::Timestamp;
use sallyport::tus::headers::OFFSET_OCTET_STREAM;
use sallyport::tus::ledger::LedgerDocument;
use sallyport::tus::plan;
use sallyport::tus::record::UploadRecord;
use sallyport::tus::request::{NewFinal, PatchRequest};
use support::tus_core::*;
use support::uploads::{Engine, status, tus_error};

/// `record`'s time plus `secs`.
fn plus(t: Timestamp, secs: u64) -> Timestamp {
    t.checked_add(std::time::Duration::from_secs(secs)).unwrap()
}

fn head(
    record: &UploadRecord,
    who: sallyport::tus::Requester<'_>,
    now: Timestamp,
) -> Vec<(http::HeaderName, http::HeaderValue)> {
    plan::plan_head(record, who, now, &BasePath::default()).unwrap()
}

#[tokio::test]
async fn chunked_upload_with_ledger_and_whole_file_digest() {
    let e = Engine::new(limits());
    let id = e
        .create(
            &[
                ("upload-length", "11"),
                ("upload-metadata", "filename YS50eHQ="),
            ],
            ALICE,
        )
        .await;
    let record = e
        .patch(
            id,
            &patch_headers(
                "0",
                &[("upload-checksum", "sha1 qvTGHdzF6KLavt4PO0gs2a6pQ00=")],
            ),
            b"hello",
            None,
            ALICE,
        )
        .await
        .unwrap();
    let h = plan::patch_headers(&record);
    assert_eq!(get(&h, "upload-offset"), Some("5"));
    // Sliding expiry: an hour after the last accepted chunk.
    let chunk_time = e.ledger(id, ALICE).await.chunks[0].time;
    assert_eq!(
        get(&h, "upload-expires"),
        Some(plus(chunk_time, 3600).to_http_date().as_str())
    );
    // Stale retry of the first chunk: 409, nothing changes.
    let err = e
        .patch(id, &patch_headers("0", &[]), b"hello", None, ALICE)
        .await
        .unwrap_err();
    assert_eq!(status(err), 409);
    assert_eq!(e.record(id).await, record);
    // An empty PATCH is accepted and makes no ledger entry.
    e.patch(id, &patch_headers("5", &[]), b"", None, ALICE)
        .await
        .unwrap();
    assert_eq!(e.ledger(id, ALICE).await.chunks.len(), 1);
    let record = e
        .patch(id, &patch_headers("5", &[]), b" world", None, ALICE)
        .await
        .unwrap();
    let h = plan::patch_headers(&record);
    assert_eq!(get(&h, "upload-offset"), Some("11"));
    assert_eq!(
        get(&h, "upload-expires"),
        None,
        "a complete upload does not expire"
    );
    let r = e.record(id).await;
    assert!(r.is_complete());
    assert_eq!(
        r.sha256.unwrap().to_string(),
        "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
    );
    assert_eq!(e.content(id).await, b"hello world");
    let doc = e.ledger(id, ALICE).await;
    assert_eq!(doc.chunks.len(), 2);
    assert_eq!(
        doc.chunks[0].checksum_verified,
        Some(ChecksumAlgorithm::Sha1)
    );
    assert_eq!(doc.chunks[1].checksum_verified, None);
    assert_eq!(doc.chunks[1].offset, 5);
    // PATCH on the complete upload: empty is a no-op 204, anything more is 413. (Here the
    // body is declared, as an HTTP client declares a fixed body; a body of undeclared
    // length is refused on its first byte, `upload::tests::a_chunked_patch_past_…`.)
    assert!(
        e.patch(id, &patch_headers("11", &[]), b"", None, ALICE)
            .await
            .is_ok()
    );
    let declared = patch_headers("11", &[("content-length", "1")]);
    let err = e.patch(id, &declared, b"!", None, ALICE).await.unwrap_err();
    assert_eq!(status(err), 413);
    assert_eq!(e.content(id).await, b"hello world");
    // Complete uploads never expire (the core, asked a million seconds later).
    let req = PatchRequest::from_headers(&patch_headers("11", &[]), &limits()).unwrap();
    let later = plus(Timestamp::now(), 1_000_000);
    assert!(plan::plan_patch(&r, &req, ALICE, later, &limits()).is_ok());
    // HEAD, after the engine's own HEAD (which finishes any interrupted commit).
    let (record, metadata) = e
        .uploads
        .head(&support::uploads::caller(ALICE), id)
        .await
        .unwrap();
    assert_eq!(metadata.as_deref(), Some("filename YS50eHQ="));
    let now = Timestamp::now();
    let h = head(&record, ALICE, now);
    assert_eq!(get(&h, "cache-control"), Some("no-store"));
    assert_eq!(get(&h, "upload-offset"), Some("11"));
    assert_eq!(get(&h, "upload-length"), Some("11"));
    assert_eq!(get(&h, "tus-resumable"), Some("1.0.0"));
    assert_eq!(
        get(&h, "repr-digest"),
        Some("sha-256=:uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek=:")
    );
    assert_eq!(get(&h, "upload-expires"), None);
    assert_eq!(
        plan::plan_head(&record, MALLORY, now, &BasePath::default()).unwrap_err(),
        TusError::NotOwner
    );
    assert!(plan::plan_head(&record, ADMIN, now, &BasePath::default()).is_ok());
    let stranger = e.uploads.head(&support::uploads::caller(MALLORY), id).await;
    assert_eq!(status(stranger.unwrap_err()), 404);
}

#[tokio::test]
async fn head_of_unfinished_and_deferred_uploads() {
    let e = Engine::new(limits());
    let id = e
        .create(
            &[("upload-defer-length", "1"), ("upload-concat", "partial")],
            ALICE,
        )
        .await;
    let record = e.record(id).await;
    let h = head(&record, ALICE, plus(record.created_at, 1));
    assert_eq!(get(&h, "upload-offset"), Some("0"));
    assert_eq!(get(&h, "upload-defer-length"), Some("1"));
    assert_eq!(get(&h, "upload-length"), None);
    assert_eq!(get(&h, "upload-concat"), Some("partial"));
    assert_eq!(
        get(&h, "upload-expires"),
        Some(plus(record.created_at, 3600).to_http_date().as_str())
    );
    assert_eq!(get(&h, "repr-digest"), None);
    assert_eq!(
        plan::plan_head(
            &record,
            ALICE,
            plus(record.created_at, 3600),
            &BasePath::default()
        )
        .unwrap_err()
        .problem()
        .status
        .as_u16(),
        410
    );
    // Deferred length: declared on a later PATCH, not below the offset, then completes.
    e.patch(id, &patch_headers("0", &[]), b"abc", None, ALICE)
        .await
        .unwrap();
    let err = e
        .patch(
            id,
            &patch_headers("3", &[("upload-length", "2")]),
            b"",
            None,
            ALICE,
        )
        .await
        .unwrap_err();
    assert_eq!(status(err), 400);
    e.patch(
        id,
        &patch_headers("3", &[("upload-length", "3")]),
        b"",
        None,
        ALICE,
    )
    .await
    .unwrap();
    let r = e.record(id).await;
    assert!(r.is_complete());
    assert_eq!(
        r.sha256.unwrap().to_string(),
        hex::encode(Sha256::digest(b"abc"))
    );
}

#[tokio::test]
async fn creation_with_upload_and_zero_length() {
    let e = Engine::new(limits());
    let h = hm(&[
        ("tus-resumable", "1.0.0"),
        ("upload-length", "5"),
        ("content-type", OFFSET_OCTET_STREAM),
        ("content-length", "3"),
    ]);
    let record = e.post(&h, b"hel", ALICE).await.unwrap();
    let out = plan::creation_headers(&record, &BasePath::default());
    assert_eq!(
        get(&out, "location"),
        Some(format!("/files/{}", record.id).as_str())
    );
    assert_eq!(get(&out, "upload-offset"), Some("3"));
    assert_eq!(
        get(&out, "upload-expires"),
        Some(plus(record.created_at, 3600).to_http_date().as_str())
    );
    assert_eq!(e.ledger(record.id, ALICE).await.chunks.len(), 1);
    assert_eq!(e.record(record.id).await, record);
    // An empty upload is complete at creation, with the digest of no bytes.
    let empty = e
        .post(&post_headers(&[("upload-length", "0")]), b"", ALICE)
        .await
        .unwrap();
    let out = plan::creation_headers(&empty, &BasePath::default());
    assert_eq!(get(&out, "upload-expires"), None);
    assert_eq!(
        e.record(empty.id).await.sha256.unwrap().to_string(),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    // A creation body larger than the upload: 413.
    let h = hm(&[
        ("tus-resumable", "1.0.0"),
        ("upload-length", "2"),
        ("content-type", OFFSET_OCTET_STREAM),
        ("content-length", "3"),
    ]);
    assert_eq!(status(e.post(&h, b"abc", ALICE).await.unwrap_err()), 413);
}

#[tokio::test]
async fn checksum_trailers() {
    let e = Engine::new(limits());
    let id = e.create(&[("upload-length", "11")], ALICE).await;
    let announce = patch_headers("0", &[("trailer", "Upload-Checksum")]);
    let good = || Some(hm(&[("upload-checksum", "md5 XrY7u+Ae7tCTyyK7j1rNww==")]));
    let patch = |headers: HeaderMap, trailers: Option<HeaderMap>| {
        let e = &e;
        async move { e.patch(id, &headers, b"hello world", trailers, ALICE).await }
    };
    // Announced but missing: 400, discarded.
    assert_eq!(
        tus_error(patch(announce.clone(), None).await.unwrap_err()),
        TusError::ChecksumTrailerMissing
    );
    // Wrong digest in the trailer: 460.
    let bad = hm(&[("upload-checksum", "md5 kAFQmDzST7DWlj99KOF/cg==")]);
    assert_eq!(
        status(patch(announce.clone(), Some(bad)).await.unwrap_err()),
        460
    );
    // Unannounced trailer checksum: refused rather than ignored.
    assert_eq!(
        status(patch(patch_headers("0", &[]), good()).await.unwrap_err()),
        400
    );
    assert_eq!(e.record(id).await.offset, 0);
    assert!(e.ledger(id, ALICE).await.chunks.is_empty());
    // Any supported algorithm works, since all four are computed.
    patch(announce, good()).await.unwrap();
    assert_eq!(
        e.ledger(id, ALICE).await.chunks[0].checksum_verified,
        Some(ChecksumAlgorithm::Md5)
    );
    assert_eq!(e.content(id).await, b"hello world");
}

#[test]
fn aborted_patch_rules() {
    let record = planned_record(&[("upload-length", "10")], ALICE, at(0));
    let req = PatchRequest::from_headers(&patch_headers("0", &[]), &limits()).unwrap();
    assert!(
        plan::plan_patch(&record, &req, ALICE, at(1), &limits())
            .unwrap()
            .keep_partial_on_abort()
    );
    for extra in [
        ("upload-checksum", "sha1 qvTGHdzF6KLavt4PO0gs2a6pQ00="),
        ("trailer", "upload-checksum"),
    ] {
        let req = PatchRequest::from_headers(&patch_headers("0", &[extra]), &limits()).unwrap();
        assert!(
            !plan::plan_patch(&record, &req, ALICE, at(1), &limits())
                .unwrap()
                .keep_partial_on_abort()
        );
    }
}

/// The golden vector is a final upload of `hello` (one chunk, sha1-verified) and ` world`
/// (two chunks) with fixed ids and times; this flow makes the same ledger through the
/// engine, which differs only in its random ids and the wall-clock chunk times.
#[tokio::test]
async fn concatenation_and_golden_ledger() {
    let golden: serde_json::Value =
        serde_json::from_str(include_str!("../proto/vectors/upload-v1/ledger.json")).unwrap();
    // The vector itself round-trips through the ledger type.
    let back: LedgerDocument = serde_json::from_value(golden.clone()).unwrap();
    assert_eq!(serde_json::to_value(&back).unwrap(), golden);

    let e = Engine::new(limits());
    let partial = |len: &'static str| [("upload-length", len), ("upload-concat", "partial")];
    let a = e.create(&partial("5"), ALICE).await;
    let b = e.create(&partial("6"), ALICE).await;
    let concat = format!("final;/files/{a} https://gw.example/files/{b}");
    let post_final = |who| {
        let (e, concat) = (&e, &concat);
        async move {
            e.post(&post_headers(&[("upload-concat", concat)]), b"", who)
                .await
        }
    };
    let part_problem = |index, problem| TusError::ConcatPart { index, problem };
    // Unfinished parts: 400 naming the first bad part.
    assert_eq!(
        tus_error(post_final(ALICE).await.unwrap_err()),
        part_problem(0, PartProblem::Unfinished)
    );
    e.patch(
        a,
        &patch_headers(
            "0",
            &[("upload-checksum", "sha1 qvTGHdzF6KLavt4PO0gs2a6pQ00=")],
        ),
        b"hello",
        None,
        ALICE,
    )
    .await
    .unwrap();
    e.patch(b, &patch_headers("0", &[]), b" wo", None, ALICE)
        .await
        .unwrap();
    assert_eq!(
        tus_error(post_final(ALICE).await.unwrap_err()),
        part_problem(1, PartProblem::Unfinished)
    );
    e.patch(b, &patch_headers("3", &[]), b"rld", None, ALICE)
        .await
        .unwrap();
    // Someone else's parts are "missing", even for an admin.
    for who in [MALLORY, ADMIN] {
        assert_eq!(
            tus_error(post_final(who).await.unwrap_err()),
            part_problem(0, PartProblem::Missing)
        );
    }
    let f = post_final(ALICE).await.unwrap();
    assert_eq!(
        get(
            &plan::creation_headers(&f, &BasePath::default()),
            "upload-offset"
        ),
        Some("11")
    );
    // The engine's ledger, with the vector's ids and chunk times put in, is the vector.
    let ledger = e.ledger(f.id, ALICE).await;
    let mut got = serde_json::to_value(&ledger).unwrap();
    got["upload"] = golden["upload"].clone();
    for (i, id) in [a, b].iter().enumerate() {
        assert_eq!(got["parts"][i]["upload"], id.to_string());
        got["parts"][i]["upload"] = golden["parts"][i]["upload"].clone();
        let chunks = got["parts"][i]["chunks"].as_array_mut().unwrap();
        for (j, chunk) in chunks.iter_mut().enumerate() {
            let time = Timestamp::parse_rfc3339(chunk["time"].as_str().unwrap()).unwrap();
            let earliest = Timestamp::from_unix(f.created_at.unix() - 60).unwrap();
            assert!(time <= Timestamp::now() && time >= earliest, "{time}");
            chunk["time"] = golden["parts"][i]["chunks"][j]["time"].clone();
        }
    }
    assert_eq!(got, golden);
    assert_eq!(e.content(f.id).await, b"hello world");
    let h = head(&e.record(f.id).await, ALICE, Timestamp::now());
    assert_eq!(
        get(&h, "upload-concat"),
        Some(format!("final;/files/{a} /files/{b}").as_str())
    );
    assert_eq!(get(&h, "upload-length"), Some("11"));
    // A final of a final: the final is not a partial upload.
    let concat = format!("final;/files/{}", f.id);
    let err = e
        .post(&post_headers(&[("upload-concat", &concat)]), b"", ALICE)
        .await
        .unwrap_err();
    assert_eq!(tus_error(err), part_problem(0, PartProblem::NotPartial));
}

/// What a final upload looks like between its planning and its concatenation (which the
/// engine does in one request, so this asks the core), over parts the engine wrote.
#[tokio::test]
async fn final_upload_head_before_concatenation_finishes() {
    let e = Engine::new(limits());
    let a = e
        .create(
            &[("upload-length", "1"), ("upload-concat", "partial")],
            ALICE,
        )
        .await;
    e.patch(a, &patch_headers("0", &[]), b"x", None, ALICE)
        .await
        .unwrap();
    let a_record = e.record(a).await;
    let new = NewFinal {
        parts: vec![a, a],
        metadata: None,
    };
    let f = "0f0f0f0f0f0f0f0f0f0f0f0f0f".parse().unwrap();
    let now = Timestamp::now();
    let parts = [Some(&a_record), Some(&a_record)];
    let fp = plan::plan_concat_final(&new, &parts, f, ALICE, now, &limits()).unwrap();
    assert_eq!(fp.record.length, Some(2));
    let h = head(&fp.record, ALICE, now);
    assert_eq!(
        get(&h, "upload-offset"),
        None,
        "no offset until concatenated"
    );
    assert_eq!(get(&h, "upload-length"), Some("2"));
    let mut r = fp.record.clone();
    assert!(
        !plan::complete_final(&mut r, &[0u8; 32], 1, now),
        "wrong byte count"
    );
    assert_eq!(r, fp.record);
    // Too large in sum: 413, from the core and from the engine.
    let big = e
        .create(
            &[("upload-length", "600"), ("upload-concat", "partial")],
            ALICE,
        )
        .await;
    e.patch(big, &patch_headers("0", &[]), &[0u8; 600], None, ALICE)
        .await
        .unwrap();
    let big_record = e.record(big).await;
    let new = NewFinal {
        parts: vec![big, big],
        metadata: None,
    };
    let parts = [Some(&big_record), Some(&big_record)];
    assert_eq!(
        plan::plan_concat_final(&new, &parts, f, ALICE, now, &limits())
            .unwrap_err()
            .problem()
            .status
            .as_u16(),
        413
    );
    // (The engine refuses a part named twice, so the sum comes from two parts.)
    let big2 = e
        .create(
            &[("upload-length", "600"), ("upload-concat", "partial")],
            ALICE,
        )
        .await;
    e.patch(big2, &patch_headers("0", &[]), &[1u8; 600], None, ALICE)
        .await
        .unwrap();
    let concat = format!("final;/files/{big} /files/{big2}");
    let err = e
        .post(&post_headers(&[("upload-concat", &concat)]), b"", ALICE)
        .await
        .unwrap_err();
    assert_eq!(status(err), 413);
}
