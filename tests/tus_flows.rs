#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Whole uploads through the model handler: chunks and the ledger, deferred length,
//! creation-with-upload, checksum trailers, aborted PATCHes, concatenation with the golden
//! ledger, HEAD before and after completion.

mod tus_support;

use tus_support::*;

#[test]
fn chunked_upload_with_ledger_and_whole_file_digest() {
    let mut m = Model::default();
    let id = create(
        &mut m,
        U,
        &[
            ("upload-length", "11"),
            ("upload-metadata", "filename YS50eHQ="),
        ],
    );
    let h = m
        .patch(
            id,
            &patch_headers(
                "0",
                &[("upload-checksum", "sha1 qvTGHdzF6KLavt4PO0gs2a6pQ00=")],
            ),
            b"hello",
            None,
            ALICE,
            at(10),
        )
        .unwrap();
    assert_eq!(get(&h, "upload-offset"), Some("5"));
    // Sliding expiry: an hour after the last accepted chunk.
    assert_eq!(
        get(&h, "upload-expires"),
        Some(at(3610).to_http_date().as_str())
    );
    // Stale retry of the first chunk: 409, nothing changes.
    assert_eq!(
        m.patch(id, &patch_headers("0", &[]), b"hello", None, ALICE, at(11))
            .unwrap_err()
            .status_hint(),
        409
    );
    // An empty PATCH is accepted and makes no ledger entry.
    m.patch(id, &patch_headers("5", &[]), b"", None, ALICE, at(12))
        .unwrap();
    let h = m
        .patch(id, &patch_headers("5", &[]), b" world", None, ALICE, at(20))
        .unwrap();
    assert_eq!(get(&h, "upload-offset"), Some("11"));
    assert_eq!(
        get(&h, "upload-expires"),
        None,
        "a complete upload does not expire"
    );
    let r = &m.records[&id];
    assert!(r.is_complete());
    assert_eq!(
        r.sha256.unwrap().to_string(),
        "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
    );
    let doc = m.ledger(id);
    assert_eq!(doc.chunks.len(), 2);
    assert_eq!(
        doc.chunks[0].checksum_verified,
        Some(sallyport::tus::checksum::ChecksumAlgorithm::Sha1)
    );
    assert_eq!(doc.chunks[1].checksum_verified, None);
    assert_eq!(doc.chunks[1].offset, 5);
    // PATCH on the complete upload: empty is a no-op 204, anything more is 413.
    assert!(
        m.patch(id, &patch_headers("11", &[]), b"", None, ALICE, at(30))
            .is_ok()
    );
    assert_eq!(
        m.patch(id, &patch_headers("11", &[]), b"!", None, ALICE, at(30))
            .unwrap_err()
            .status_hint(),
        413
    );
    // Complete uploads never expire.
    assert!(
        m.patch(
            id,
            &patch_headers("11", &[]),
            b"",
            None,
            ALICE,
            at(1_000_000)
        )
        .is_ok()
    );
    // HEAD.
    let head = plan::plan_head(&m.records[&id], ALICE, at(40), &BasePath::default()).unwrap();
    assert_eq!(get(&head, "cache-control"), Some("no-store"));
    assert_eq!(get(&head, "upload-offset"), Some("11"));
    assert_eq!(get(&head, "upload-length"), Some("11"));
    assert_eq!(get(&head, "tus-resumable"), Some("1.0.0"));
    assert_eq!(
        get(&head, "repr-digest"),
        Some("sha-256=:uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek=:")
    );
    assert_eq!(get(&head, "upload-expires"), None);
    assert_eq!(
        plan::plan_head(&m.records[&id], MALLORY, at(40), &BasePath::default()).unwrap_err(),
        TusError::NotOwner
    );
    assert!(plan::plan_head(&m.records[&id], ADMIN, at(40), &BasePath::default()).is_ok());
}

#[test]
fn head_of_unfinished_and_deferred_uploads() {
    let mut m = Model::default();
    let id = create(
        &mut m,
        U,
        &[("upload-defer-length", "1"), ("upload-concat", "partial")],
    );
    let head = plan::plan_head(&m.records[&id], ALICE, at(1), &BasePath::default()).unwrap();
    assert_eq!(get(&head, "upload-offset"), Some("0"));
    assert_eq!(get(&head, "upload-defer-length"), Some("1"));
    assert_eq!(get(&head, "upload-length"), None);
    assert_eq!(get(&head, "upload-concat"), Some("partial"));
    assert_eq!(
        get(&head, "upload-expires"),
        Some(at(3600).to_http_date().as_str())
    );
    assert_eq!(get(&head, "repr-digest"), None);
    assert_eq!(
        plan::plan_head(&m.records[&id], ALICE, at(3600), &BasePath::default())
            .unwrap_err()
            .status_hint(),
        410
    );
    // Deferred length: declared on a later PATCH, not below the offset, then completes.
    m.patch(id, &patch_headers("0", &[]), b"abc", None, ALICE, at(2))
        .unwrap();
    assert_eq!(
        m.patch(
            id,
            &patch_headers("3", &[("upload-length", "2")]),
            b"",
            None,
            ALICE,
            at(3)
        )
        .unwrap_err()
        .status_hint(),
        400
    );
    m.patch(
        id,
        &patch_headers("3", &[("upload-length", "3")]),
        b"",
        None,
        ALICE,
        at(4),
    )
    .unwrap();
    assert!(m.records[&id].is_complete());
    assert_eq!(
        m.records[&id].sha256.unwrap().to_string(),
        hex::encode(Sha256::digest(b"abc"))
    );
}

#[test]
fn creation_with_upload_and_zero_length() {
    let mut m = Model::default();
    let id: UploadId = U.parse().unwrap();
    let h = hm(&[
        ("tus-resumable", "1.0.0"),
        ("upload-length", "5"),
        ("content-type", OFFSET_OCTET_STREAM),
        ("content-length", "3"),
    ]);
    let out = m.post(&h, b"hel", id, ALICE, at(0)).unwrap();
    assert_eq!(get(&out, "location"), Some(format!("/files/{U}").as_str()));
    assert_eq!(get(&out, "upload-offset"), Some("3"));
    assert_eq!(
        get(&out, "upload-expires"),
        Some(at(3600).to_http_date().as_str())
    );
    assert_eq!(m.ledgers[&id].len(), 1);
    // An empty upload is complete at creation, with the digest of no bytes.
    let empty: UploadId = V.parse().unwrap();
    let out = m
        .post(
            &hm(&[("tus-resumable", "1.0.0"), ("upload-length", "0")]),
            b"",
            empty,
            ALICE,
            at(0),
        )
        .unwrap();
    assert_eq!(get(&out, "upload-expires"), None);
    assert_eq!(
        m.records[&empty].sha256.unwrap().to_string(),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    // A creation body larger than the upload: 413 and no upload.
    let h = hm(&[
        ("tus-resumable", "1.0.0"),
        ("upload-length", "2"),
        ("content-type", OFFSET_OCTET_STREAM),
        ("content-length", "3"),
    ]);
    assert_eq!(
        m.post(&h, b"abc", F.parse().unwrap(), ALICE, at(0))
            .unwrap_err()
            .status_hint(),
        413
    );
}

#[test]
fn checksum_trailers() {
    let mut m = Model::default();
    let id = create(&mut m, U, &[("upload-length", "11")]);
    let announce = patch_headers("0", &[("trailer", "Upload-Checksum")]);
    let good = hm(&[("upload-checksum", "md5 XrY7u+Ae7tCTyyK7j1rNww==")]);
    // Announced but missing: 400, discarded.
    assert_eq!(
        m.patch(id, &announce, b"hello world", None, ALICE, at(1))
            .unwrap_err(),
        TusError::ChecksumTrailerMissing
    );
    // Wrong digest in the trailer: 460.
    let bad = hm(&[("upload-checksum", "md5 kAFQmDzST7DWlj99KOF/cg==")]);
    assert_eq!(
        m.patch(id, &announce, b"hello world", Some(&bad), ALICE, at(1))
            .unwrap_err()
            .status_hint(),
        460
    );
    // Unannounced trailer checksum: refused rather than ignored.
    assert_eq!(
        m.patch(
            id,
            &patch_headers("0", &[]),
            b"hello world",
            Some(&good),
            ALICE,
            at(1)
        )
        .unwrap_err()
        .status_hint(),
        400
    );
    assert_eq!(m.records[&id].offset, 0);
    // Any supported algorithm works, since all four are computed.
    m.patch(id, &announce, b"hello world", Some(&good), ALICE, at(1))
        .unwrap();
    assert_eq!(
        m.ledger(id).chunks[0].checksum_verified,
        Some(sallyport::tus::checksum::ChecksumAlgorithm::Md5)
    );
}

#[test]
fn aborted_patch_rules() {
    let mut m = Model::default();
    let id = create(&mut m, U, &[("upload-length", "10")]);
    let req = PatchRequest::from_headers(&patch_headers("0", &[]), &limits()).unwrap();
    assert!(
        plan::plan_patch(&m.records[&id], &req, ALICE, at(1), &limits())
            .unwrap()
            .keep_partial_on_abort()
    );
    for extra in [
        ("upload-checksum", "sha1 qvTGHdzF6KLavt4PO0gs2a6pQ00="),
        ("trailer", "upload-checksum"),
    ] {
        let req = PatchRequest::from_headers(&patch_headers("0", &[extra]), &limits()).unwrap();
        assert!(
            !plan::plan_patch(&m.records[&id], &req, ALICE, at(1), &limits())
                .unwrap()
                .keep_partial_on_abort()
        );
    }
}

#[test]
fn concatenation_and_golden_ledger() {
    let mut m = Model::default();
    let a = create(
        &mut m,
        U,
        &[("upload-length", "5"), ("upload-concat", "partial")],
    );
    let b = create(
        &mut m,
        V,
        &[("upload-length", "6"), ("upload-concat", "partial")],
    );
    let f: UploadId = F.parse().unwrap();
    let concat = format!("final;/files/{U} https://gw.example/files/{V}");
    let post_final = |m: &mut Model, who, t| {
        m.post(
            &hm(&[("tus-resumable", "1.0.0"), ("upload-concat", &concat)]),
            b"",
            f,
            who,
            at(t),
        )
    };
    // Unfinished parts: 400 naming the first bad part.
    assert_eq!(
        post_final(&mut m, ALICE, 5).unwrap_err(),
        TusError::ConcatPart {
            index: 0,
            problem: sallyport::tus::concat::PartProblem::Unfinished
        }
    );
    m.patch(
        a,
        &patch_headers(
            "0",
            &[("upload-checksum", "sha1 qvTGHdzF6KLavt4PO0gs2a6pQ00=")],
        ),
        b"hello",
        None,
        ALICE,
        at(10),
    )
    .unwrap();
    m.patch(b, &patch_headers("0", &[]), b" wo", None, ALICE, at(20))
        .unwrap();
    assert_eq!(
        post_final(&mut m, ALICE, 25).unwrap_err(),
        TusError::ConcatPart {
            index: 1,
            problem: sallyport::tus::concat::PartProblem::Unfinished
        }
    );
    m.patch(b, &patch_headers("3", &[]), b"rld", None, ALICE, at(30))
        .unwrap();
    // Someone else's parts are "missing", even for an admin.
    for who in [MALLORY, ADMIN] {
        assert_eq!(
            post_final(&mut m, who, 40).unwrap_err(),
            TusError::ConcatPart {
                index: 0,
                problem: sallyport::tus::concat::PartProblem::Missing
            }
        );
    }
    let out = post_final(&mut m, ALICE, 60).unwrap();
    assert_eq!(get(&out, "upload-offset"), Some("11"));
    let golden: serde_json::Value =
        serde_json::from_str(include_str!("../proto/vectors/upload-v1/ledger.json")).unwrap();
    assert_eq!(serde_json::to_value(m.ledger(f)).unwrap(), golden);
    let back: LedgerDocument = serde_json::from_value(golden).unwrap();
    assert_eq!(back, m.ledger(f));
    assert_eq!(m.data[&f], b"hello world");
    let head = plan::plan_head(&m.records[&f], ALICE, at(61), &BasePath::default()).unwrap();
    assert_eq!(
        get(&head, "upload-concat"),
        Some(format!("final;/files/{U} /files/{V}").as_str())
    );
    assert_eq!(get(&head, "upload-length"), Some("11"));
    // A final of a final: the final is not a partial upload.
    let g: UploadId = "0g0g0g0g0g0g0g0g0g0g0g0g0g".parse().unwrap();
    let e = m
        .post(
            &hm(&[
                ("tus-resumable", "1.0.0"),
                ("upload-concat", &format!("final;/files/{F}")),
            ]),
            b"",
            g,
            ALICE,
            at(70),
        )
        .unwrap_err();
    assert_eq!(
        e,
        TusError::ConcatPart {
            index: 0,
            problem: sallyport::tus::concat::PartProblem::NotPartial
        }
    );
}

#[test]
fn final_upload_head_before_concatenation_finishes() {
    let mut m = Model::default();
    let a = create(
        &mut m,
        U,
        &[("upload-length", "1"), ("upload-concat", "partial")],
    );
    m.patch(a, &patch_headers("0", &[]), b"x", None, ALICE, at(1))
        .unwrap();
    let new = sallyport::tus::request::NewFinal {
        parts: vec![a, a],
        metadata: None,
    };
    let parts = [Some(&m.records[&a]), Some(&m.records[&a])];
    let fp =
        plan::plan_concat_final(&new, &parts, F.parse().unwrap(), ALICE, at(2), &limits()).unwrap();
    assert_eq!(fp.record.length, Some(2));
    let head = plan::plan_head(&fp.record, ALICE, at(3), &BasePath::default()).unwrap();
    assert_eq!(
        get(&head, "upload-offset"),
        None,
        "no offset until concatenated"
    );
    assert_eq!(get(&head, "upload-length"), Some("2"));
    let mut r = fp.record.clone();
    assert!(
        !plan::complete_final(&mut r, &[0u8; 32], 1, at(4)),
        "wrong byte count"
    );
    assert_eq!(r, fp.record);
    // Too large in sum: 413.
    let big = create(
        &mut m,
        V,
        &[("upload-length", "600"), ("upload-concat", "partial")],
    );
    m.patch(
        big,
        &patch_headers("0", &[]),
        &[0u8; 600],
        None,
        ALICE,
        at(5),
    )
    .unwrap();
    let new = sallyport::tus::request::NewFinal {
        parts: vec![big, big],
        metadata: None,
    };
    let parts = [Some(&m.records[&big]), Some(&m.records[&big])];
    assert_eq!(
        plan::plan_concat_final(&new, &parts, F.parse().unwrap(), ALICE, at(6), &limits())
            .unwrap_err()
            .status_hint(),
        413
    );
}
