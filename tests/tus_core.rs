#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The tus core's parsers and state machine against golden vectors and status tables:
//! every header of `proto/vectors/upload-v1/headers.json`, request-level refusals (pure),
//! and one PATCH per status the profile lists, through the real upload engine.

mod support;

use http::HeaderMap;
use sallyport::http::problem::Describe;
use sallyport::tus::checksum::Checksum;
use sallyport::tus::concat::{BasePath, UploadConcat};
use sallyport::tus::dates::Timestamp;
use sallyport::tus::headers::{self, OFFSET_OCTET_STREAM};
use sallyport::tus::metadata::Metadata;
use sallyport::tus::plan;
use sallyport::tus::record::UploadId;
use sallyport::tus::request::{CreateRequest, DeclaredLength, PatchRequest};
use sallyport::tus::{Requester, TusError};
use support::tus_core::*;
use support::uploads::{Engine, status};

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
                    u64::from(e.problem().status.as_u16()),
                    case["status"].as_u64().unwrap(),
                    "{header}: {value:?} {e:?}"
                );
                assert_eq!(
                    e.problem().code,
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
        assert_eq!(e.problem().status.as_u16(), status, "{name}: {e:?}");
    }
    let patch = |extra: &[(&str, &str)], drop: &str| {
        let mut h = patch_headers("0", extra);
        h.remove(drop);
        PatchRequest::from_headers(&h, &l).unwrap_err()
    };
    assert_eq!(patch(&[], "tus-resumable"), TusError::UnsupportedVersion);
    assert_eq!(patch(&[], "content-type").problem().status.as_u16(), 415);
    assert_eq!(
        patch(&[], "upload-offset"),
        TusError::MissingHeader(sallyport::tus::error::TusHeader::UploadOffset)
    );
    assert_eq!(
        patch(&[("upload-checksum", "crc32 AAAAAA==")], "")
            .problem()
            .status
            .as_u16(),
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
    assert_eq!(
        patch(&[("upload-length", "1001")], "")
            .problem()
            .status
            .as_u16(),
        413
    );
}

/// How a row's upload is made before its PATCH.
#[derive(Clone, Copy)]
enum Setup {
    /// 10 bytes, nothing written.
    Plain,
    /// Deferred length.
    Deferred,
    /// The final upload of one finished 3-byte partial upload.
    Final,
}

async fn set_up(e: &Engine, setup: Setup) -> UploadId {
    match setup {
        Setup::Plain => e.create(&[("upload-length", "10")], ALICE).await,
        Setup::Deferred => e.create(&[("upload-defer-length", "1")], ALICE).await,
        Setup::Final => {
            let part = e
                .create(
                    &[("upload-length", "3"), ("upload-concat", "partial")],
                    ALICE,
                )
                .await;
            e.patch(part, &patch_headers("0", &[]), b"abc", None, ALICE)
                .await
                .unwrap();
            let concat = format!("final;/files/{part}");
            e.create(&[("upload-concat", &concat)], ALICE).await
        }
    }
}

/// One PATCH against a fresh upload made by the row's setup, through the real engine,
/// with its expected offset or status; a refusal must leave the record as it was. (The
/// expiry boundary is `patch_expiry_boundary`, on the core, whose clock the test sets.)
#[tokio::test]
async fn patch_status_table() {
    use Setup::{Deferred, Final, Plain};
    let sha1_hello = ("upload-checksum", "sha1 qvTGHdzF6KLavt4PO0gs2a6pQ00=");
    let ok = patch_headers;
    let typed = |tr: &str, ct: &str| {
        hm(&[
            ("tus-resumable", tr),
            ("content-type", ct),
            ("upload-offset", "0"),
        ])
    };
    // (name, setup, request headers, body, requester, offset or status)
    #[rustfmt::skip]
    #[allow(clippy::type_complexity)] // a table row, read across
    let table: Vec<(&str, Setup, HeaderMap, &[u8], Requester<'_>, Result<u64, u16>)> = vec![
        ("accepted",                 Plain,    ok("0", &[]),                             b"hello",       ALICE,   Ok(5)),
        ("admin may patch",          Plain,    ok("0", &[]),                             b"hello",       ADMIN,   Ok(5)),
        ("verified sha1",            Plain,    ok("0", &[sha1_hello]),                   b"hello",       ALICE,   Ok(5)),
        ("same length again",        Plain,    ok("0", &[("upload-length", "10")]),      b"hi",          ALICE,   Ok(2)),
        ("deferred: set length",     Deferred, ok("0", &[("upload-length", "4")]),       b"abcd",        ALICE,   Ok(4)),
        ("deferred: grows to max",   Deferred, ok("0", &[]),                             &[0u8; 1000],   ALICE,   Ok(1000)),
        ("checksum mismatch",        Plain,    ok("0", &[sha1_hello]),                   b"hellO",       ALICE,   Err(460)),
        ("offset conflict",          Plain,    ok("3", &[]),                             b"lo",          ALICE,   Err(409)),
        ("past length",              Plain,    ok("0", &[]),                             b"hello world", ALICE,   Err(413)),
        ("declared past length",     Plain,    ok("0", &[("content-length", "11")]),     b"",            ALICE,   Err(413)),
        ("deferred: past max",       Deferred, ok("0", &[]),                             &[0u8; 1001],   ALICE,   Err(413)),
        ("deferred: length > max",   Deferred, ok("0", &[("upload-length", "1001")]),    b"",            ALICE,   Err(413)),
        ("length change",            Plain,    ok("0", &[("upload-length", "11")]),      b"",            ALICE,   Err(400)),
        ("unknown algorithm",        Plain,    ok("0", &[("upload-checksum", "crc32 AAAAAA==")]), b"x",  ALICE,   Err(400)),
        ("two content types",        Plain,    ok("0", &[("content-type", "text/plain")]), b"x",         ALICE,   Err(400)),
        ("other principal",          Plain,    ok("0", &[]),                             b"hello",       MALLORY, Err(404)),
        ("final upload",             Final,    ok("0", &[]),                             b"x",           ALICE,   Err(403)),
        ("wrong content type",       Plain,    typed("1.0.0", "text/plain"),             b"x",           ALICE,   Err(415)),
        ("old protocol version",     Plain,    typed("0.2.2", OFFSET_OCTET_STREAM),      b"x",           ALICE,   Err(412)),
    ];
    for (name, setup, headers, body, who, want) in table {
        let e = Engine::new(limits());
        let id = set_up(&e, setup).await;
        let before = e.record(id).await;
        let got = e.patch(id, &headers, body, None, who).await;
        match (got, want) {
            (Ok(record), Ok(offset)) => {
                let h = plan::patch_headers(&record);
                assert_eq!(
                    get(&h, "upload-offset"),
                    Some(offset.to_string().as_str()),
                    "{name}"
                );
                assert_eq!(e.record(id).await, record, "{name}: the stored record");
            }
            (Err(err), Err(want)) => {
                assert_eq!(status(err), want, "{name}");
                assert_eq!(
                    e.record(id).await,
                    before,
                    "{name}: a refusal changed the record"
                );
            }
            (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
        }
    }
}

/// The expiry boundary, on the core with a set clock: a PATCH one second before the
/// upload expires is planned, one at the expiry is 410 (the engine asks the same
/// `plan_patch` with the wall clock).
#[test]
fn patch_expiry_boundary() {
    let record = planned_record(&[("upload-length", "10")], ALICE, at(0));
    let req = PatchRequest::from_headers(&patch_headers("0", &[]), &limits()).unwrap();
    assert!(plan::plan_patch(&record, &req, ALICE, at(3599), &limits()).is_ok());
    let e = plan::plan_patch(&record, &req, ALICE, at(3600), &limits()).unwrap_err();
    assert_eq!((e.problem().status.as_u16(), e), (410, TusError::Expired));
}

/// An expired upload through the engine: 410, and the record is unchanged.
#[tokio::test]
async fn an_expired_upload_is_410_through_the_engine() {
    let mut short = limits();
    short.expire_after = std::time::Duration::from_secs(1);
    let e = Engine::new(short);
    let id = e.create(&[("upload-length", "10")], ALICE).await;
    let before = e.record(id).await;
    // Timestamps are whole seconds: two seconds are past the one-second expiry.
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let err = e
        .patch(id, &patch_headers("0", &[]), b"hello", None, ALICE)
        .await
        .unwrap_err();
    assert_eq!(status(err), 410);
    assert_eq!(e.record(id).await, before);
}

#[tokio::test]
async fn missing_upload_is_404() {
    let e = Engine::new(limits());
    let err = e
        .patch(
            "0a0a0a0a0a0a0a0a0a0a0a0a0a".parse().unwrap(),
            &patch_headers("0", &[]),
            b"x",
            None,
            ALICE,
        )
        .await
        .unwrap_err();
    let err = support::uploads::tus_error(err);
    assert_eq!(
        (err.problem().status.as_u16(), err.problem().code),
        (404, "tus.not_found")
    );
}

#[test]
fn delete_and_ledger_access() {
    let r = &planned_record(&[("upload-length", "5")], ALICE, at(0));
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
