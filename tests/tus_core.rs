#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The tus core's parsers and state machine against golden vectors and status tables:
//! every header of `proto/vectors/upload-v1/headers.json`, request-level refusals, and one
//! PATCH per status the profile lists.

mod tus_support;

use tus_support::*;

#[test]
fn golden_header_vectors() {
    let doc: serde_json::Value =
        serde_json::from_str(include_str!("../proto/vectors/upload-v1/headers.json")).unwrap();
    let base = BasePath::new(doc["base_path"].as_str().unwrap()).unwrap();
    let l = limits();
    assert_eq!(doc["limits"]["max_size"], l.max_size);
    assert_eq!(
        doc["limits"]["max_decoded_total"],
        l.metadata.max_decoded_total
    );
    let cases = doc["cases"].as_array().unwrap();
    assert!(cases.len() > 50);
    for case in cases {
        let header = case["header"].as_str().unwrap();
        let value = case["value"].as_str().unwrap();
        let bytes = value.as_bytes();
        let result: Result<String, TusError> = match header {
            "Tus-Resumable" => headers::check_tus_resumable(Some(bytes)).map(|()| "1.0.0".into()),
            "Upload-Length" | "Upload-Defer-Length" => {
                match CreateRequest::from_headers(
                    &hm(&[("tus-resumable", "1.0.0"), (header, value)]),
                    &base,
                    &l,
                ) {
                    Ok(CreateRequest::Upload(n)) => Ok(match n.length {
                        DeclaredLength::Known(n) => n.to_string(),
                        DeclaredLength::Deferred => "1".into(),
                    }),
                    Ok(other) => panic!("{other:?}"),
                    Err(e) => Err(e),
                }
            }
            "Upload-Offset" => PatchRequest::from_headers(&patch_headers(value, &[]), &l)
                .map(|r| r.offset.to_string()),
            "Content-Type" => {
                headers::check_offset_octet_stream(Some(bytes)).map(|()| OFFSET_OCTET_STREAM.into())
            }
            "Upload-Metadata" => Metadata::parse(bytes, &l.metadata)
                .map(|m| m.to_header_value())
                .map_err(TusError::from),
            "Upload-Checksum" => Checksum::parse(bytes).map(|c| c.to_header_value()),
            "Upload-Concat" => UploadConcat::parse(bytes, &base, l.max_concat_parts)
                .map(|c| c.to_header_value(&base)),
            "Upload-Expires" => Ok(Timestamp::parse_http_date(value).unwrap().to_http_date()),
            other => panic!("no parser for {other}"),
        };
        match (&result, case.get("ok")) {
            (Ok(canonical), Some(want)) => {
                assert_eq!(canonical, want.as_str().unwrap(), "{header}: {value:?}")
            }
            (Err(e), None) => {
                assert_eq!(
                    u64::from(e.status_hint()),
                    case["status"].as_u64().unwrap(),
                    "{header}: {value:?} {e:?}"
                );
                assert_eq!(
                    e.code(),
                    case["code"].as_str().unwrap(),
                    "{header}: {value:?}"
                );
                assert!(
                    !e.to_string().contains(value) || value.len() < 3,
                    "echoes the value: {e}"
                );
            }
            _ => panic!("{header}: {value:?} gave {result:?}"),
        }
    }
}

#[test]
fn request_level_refusals() {
    let base = BasePath::default();
    let l = limits();
    let post =
        |pairs: &[(&str, &str)]| CreateRequest::from_headers(&hm(pairs), &base, &l).unwrap_err();
    let tr = ("tus-resumable", "1.0.0");
    let fin = ("upload-concat", "final;/files/0a0a0a0a0a0a0a0a0a0a0a0a0a");
    let cases: Vec<(&str, TusError, u16)> = vec![
        ("no Tus-Resumable", post(&[("upload-length", "5")]), 412),
        ("neither length", post(&[tr]), 400),
        (
            "both lengths",
            post(&[tr, ("upload-length", "5"), ("upload-defer-length", "1")]),
            400,
        ),
        (
            "twice Upload-Length",
            post(&[tr, ("upload-length", "5"), ("upload-length", "5")]),
            400,
        ),
        (
            "body without type",
            post(&[tr, ("upload-length", "5"), ("content-length", "5")]),
            415,
        ),
        (
            "final with body",
            post(&[tr, fin, ("content-type", OFFSET_OCTET_STREAM)]),
            403,
        ),
        (
            "final with length",
            post(&[tr, fin, ("upload-length", "5")]),
            400,
        ),
        (
            "checksum, no body",
            post(&[
                tr,
                ("upload-length", "5"),
                ("upload-checksum", "md5 kAFQmDzST7DWlj99KOF/cg=="),
            ]),
            400,
        ),
        ("too large", post(&[tr, ("upload-length", "1001")]), 413),
    ];
    for (name, e, status) in cases {
        assert_eq!(e.status_hint(), status, "{name}: {e:?}");
    }
    let patch = |extra: &[(&str, &str)], drop: &str| {
        let mut h = patch_headers("0", extra);
        h.remove(drop);
        PatchRequest::from_headers(&h, &l).unwrap_err()
    };
    assert_eq!(patch(&[], "tus-resumable"), TusError::UnsupportedVersion);
    assert_eq!(patch(&[], "content-type").status_hint(), 415);
    assert_eq!(
        patch(&[], "upload-offset"),
        TusError::MissingHeader(sallyport::tus::error::TusHeader::UploadOffset)
    );
    assert_eq!(
        patch(&[("upload-checksum", "crc32 AAAAAA==")], "").status_hint(),
        400
    );
    assert_eq!(
        patch(&[("upload-checksum", "crc32 AAAAAA==")], ""),
        TusError::UnsupportedChecksumAlgorithm
    );
    assert_eq!(
        patch(
            &[
                ("upload-checksum", "md5 kAFQmDzST7DWlj99KOF/cg=="),
                ("trailer", "Upload-Checksum")
            ],
            ""
        ),
        TusError::ChecksumTwice
    );
    assert_eq!(patch(&[("upload-length", "1001")], "").status_hint(), 413);
}

/// One PATCH against a fresh 10-byte upload (or the setup given), with its expected status.
#[test]
fn patch_status_table() {
    type Setup = fn(&mut Model) -> UploadId;
    let plain: Setup = |m| create(m, U, &[("upload-length", "10")]);
    let deferred: Setup = |m| create(m, U, &[("upload-defer-length", "1")]);
    let final_upload: Setup = |m| {
        let u = create(
            m,
            U,
            &[("upload-length", "3"), ("upload-concat", "partial")],
        );
        m.patch(u, &patch_headers("0", &[]), b"abc", None, ALICE, at(1))
            .unwrap();
        let f: UploadId = F.parse().unwrap();
        m.post(
            &hm(&[
                ("tus-resumable", "1.0.0"),
                ("upload-concat", &format!("final;/files/{U}")),
            ]),
            b"",
            f,
            ALICE,
            at(2),
        )
        .unwrap();
        f
    };
    let sha1_hello = ("upload-checksum", "sha1 qvTGHdzF6KLavt4PO0gs2a6pQ00=");
    let ok = patch_headers;
    let typed = |tr: &str, ct: &str| {
        hm(&[
            ("tus-resumable", tr),
            ("content-type", ct),
            ("upload-offset", "0"),
        ])
    };
    // (name, setup, request headers, body, requester, seconds after creation, offset or status)
    #[rustfmt::skip]
    #[allow(clippy::type_complexity)] // a table row, read across
    let table: Vec<(&str, Setup, HeaderMap, &[u8], Requester<'_>, i64, Result<u64, u16>)> = vec![
        ("accepted",                 plain,        ok("0", &[]),                             b"hello",       ALICE,   1,    Ok(5)),
        ("admin may patch",          plain,        ok("0", &[]),                             b"hello",       ADMIN,   1,    Ok(5)),
        ("verified sha1",            plain,        ok("0", &[sha1_hello]),                   b"hello",       ALICE,   1,    Ok(5)),
        ("same length again",        plain,        ok("0", &[("upload-length", "10")]),      b"hi",          ALICE,   1,    Ok(2)),
        ("not yet expired",          plain,        ok("0", &[]),                             b"hello",       ALICE,   3599, Ok(5)),
        ("deferred: set length",     deferred,     ok("0", &[("upload-length", "4")]),       b"abcd",        ALICE,   1,    Ok(4)),
        ("deferred: grows to max",   deferred,     ok("0", &[]),                             &[0u8; 1000],   ALICE,   1,    Ok(1000)),
        ("checksum mismatch",        plain,        ok("0", &[sha1_hello]),                   b"hellO",       ALICE,   1,    Err(460)),
        ("offset conflict",          plain,        ok("3", &[]),                             b"lo",          ALICE,   1,    Err(409)),
        ("past length",              plain,        ok("0", &[]),                             b"hello world", ALICE,   1,    Err(413)),
        ("declared past length",     plain,        ok("0", &[("content-length", "11")]),     b"",            ALICE,   1,    Err(413)),
        ("deferred: past max",       deferred,     ok("0", &[]),                             &[0u8; 1001],   ALICE,   1,    Err(413)),
        ("deferred: length > max",   deferred,     ok("0", &[("upload-length", "1001")]),    b"",            ALICE,   1,    Err(413)),
        ("length change",            plain,        ok("0", &[("upload-length", "11")]),      b"",            ALICE,   1,    Err(400)),
        ("unknown algorithm",        plain,        ok("0", &[("upload-checksum", "crc32 AAAAAA==")]), b"x",  ALICE,   1,    Err(400)),
        ("two content types",        plain,        ok("0", &[("content-type", "text/plain")]), b"x",         ALICE,   1,    Err(400)),
        ("other principal",          plain,        ok("0", &[]),                             b"hello",       MALLORY, 1,    Err(404)),
        ("expired",                  plain,        ok("0", &[]),                             b"hello",       ALICE,   3600, Err(410)),
        ("final upload",             final_upload, ok("0", &[]),                             b"x",           ALICE,   3,    Err(403)),
        ("wrong content type",       plain,        typed("1.0.0", "text/plain"),             b"x",           ALICE,   1,    Err(415)),
        ("old protocol version",     plain,        typed("0.2.2", OFFSET_OCTET_STREAM),      b"x",           ALICE,   1,    Err(412)),
    ];
    for (name, setup, headers, body, who, t, want) in table {
        let mut m = Model::default();
        let id = setup(&mut m);
        let before = m.records[&id].clone();
        let got = m.patch(id, &headers, body, None, who, at(t));
        match (got, want) {
            (Ok(h), Ok(offset)) => assert_eq!(
                get(&h, "upload-offset"),
                Some(offset.to_string().as_str()),
                "{name}"
            ),
            (Err(e), Err(status)) => {
                assert_eq!(e.status_hint(), status, "{name}: {e:?}");
                assert_eq!(
                    m.records[&id], before,
                    "{name}: a refusal changed the record"
                );
            }
            (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn missing_upload_is_404() {
    let mut m = Model::default();
    let e = m
        .patch(
            U.parse().unwrap(),
            &patch_headers("0", &[]),
            b"x",
            None,
            ALICE,
            at(0),
        )
        .unwrap_err();
    assert_eq!((e.status_hint(), e.code()), (404, "tus.not_found"));
}

#[test]
fn delete_and_ledger_access() {
    let mut m = Model::default();
    let id = create(&mut m, U, &[("upload-length", "5")]);
    let r = &m.records[&id];
    assert_eq!(plan::check_access(r, ALICE, at(1)), Ok(()));
    assert_eq!(plan::check_access(r, ADMIN, at(1)), Ok(()));
    assert_eq!(
        plan::check_access(r, MALLORY, at(1)),
        Err(TusError::NotOwner)
    );
    // Ownership is checked before expiry, so a stranger cannot learn that it expired.
    assert_eq!(
        plan::check_access(r, MALLORY, at(4000)),
        Err(TusError::NotOwner)
    );
    assert_eq!(
        plan::check_access(r, ALICE, at(4000)),
        Err(TusError::Expired)
    );
}

#[test]
fn options_response() {
    let h = headers::options_headers(&limits());
    assert_eq!(get(&h, "tus-version"), Some("1.0.0"));
    assert_eq!(get(&h, "tus-max-size"), Some("1000"));
    assert_eq!(
        get(&h, "tus-checksum-algorithm"),
        Some("sha1,sha256,sha512,md5")
    );
}
