//! The tus core driven the way the upload handler will drive it, with no I/O: golden header
//! vectors from `proto/vectors/upload-v1/`, table tests for every status of the state
//! machine, and whole uploads (chunks, deferred length, checksums, trailers, concatenation)
//! through a small in-memory model of the handler.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::collections::HashMap;
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};
use sha2::{Digest, Sha256};

use sallyport::tus::checksum::Checksum;
use sallyport::tus::concat::{BasePath, UploadConcat};
use sallyport::tus::dates::Timestamp;
use sallyport::tus::headers::{self, OFFSET_OCTET_STREAM};
use sallyport::tus::ledger::{ChunkEntry, LedgerDocument, PartLedger};
use sallyport::tus::metadata::{Metadata, MetadataLimits};
use sallyport::tus::plan::{self, Commit};
use sallyport::tus::record::{UploadId, UploadRecord};
use sallyport::tus::request::{CreateRequest, DeclaredLength, PatchRequest};
use sallyport::tus::{Requester, TusError, TusLimits};

const T0: i64 = 1_700_000_000;
const ALICE: Requester<'static> = Requester {
    name: "clinic-7",
    admin: false,
};
const MALLORY: Requester<'static> = Requester {
    name: "lab-9",
    admin: false,
};
const ADMIN: Requester<'static> = Requester {
    name: "ops",
    admin: true,
};

fn at(secs: i64) -> Timestamp {
    Timestamp::from_unix(T0 + secs).unwrap()
}

fn limits() -> TusLimits {
    TusLimits {
        max_size: 1000,
        expire_after: Duration::from_secs(3600),
        metadata: MetadataLimits {
            max_pairs: 4,
            max_key_len: 16,
            max_decoded_total: 64,
        },
        max_concat_parts: 3,
    }
}

fn hm(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

fn get<'a>(headers: &'a [(HeaderName, HeaderValue)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.to_str().unwrap())
}

/// The handler, minus I/O: records, ledgers, plaintext and whole-file hashers in maps.
/// Records go through their stored encoding on every write, as in the state store.
#[derive(Default)]
struct Model {
    records: HashMap<UploadId, UploadRecord>,
    ledgers: HashMap<UploadId, Vec<ChunkEntry>>,
    parts: HashMap<UploadId, Vec<PartLedger>>,
    data: HashMap<UploadId, Vec<u8>>,
    whole: HashMap<UploadId, Sha256>,
}

impl Model {
    fn store(&mut self, record: UploadRecord) {
        let stored = UploadRecord::decode(&record.encode()).unwrap();
        assert_eq!(stored, record);
        self.records.insert(record.id, stored);
    }

    fn post(
        &mut self,
        h: &HeaderMap,
        body: &[u8],
        id: UploadId,
        who: Requester<'_>,
        now: Timestamp,
    ) -> Result<Vec<(HeaderName, HeaderValue)>, TusError> {
        let base = BasePath::default();
        match CreateRequest::from_headers(h, &base, &limits())? {
            CreateRequest::Upload(new) => {
                let created = plan::plan_create(&new, id, who, now, &limits())?;
                if created.body.is_none() && !body.is_empty() {
                    return Err(TusError::UnsupportedMediaType);
                }
                self.store(created.record);
                self.whole.insert(id, Sha256::new());
                if let Some(p) = created.body {
                    self.take_body(&p, body, None, who, now)?;
                }
            }
            CreateRequest::Final(new) => {
                let parts: Vec<Option<&UploadRecord>> =
                    new.parts.iter().map(|p| self.records.get(p)).collect();
                let mut fp = plan::plan_concat_final(&new, &parts, id, who, now, &limits())?;
                let mut whole = Sha256::new();
                let mut data = Vec::new();
                let mut ledgers = Vec::new();
                for (part, _) in &fp.parts {
                    whole.update(&self.data[part]);
                    data.extend_from_slice(&self.data[part]);
                    ledgers.push(
                        PartLedger::from_part(&self.records[part], self.ledgers[part].clone())
                            .unwrap(),
                    );
                }
                assert!(plan::complete_final(
                    &mut fp.record,
                    &whole,
                    data.len() as u64,
                    now
                ));
                self.store(fp.record);
                self.data.insert(id, data);
                self.parts.insert(id, ledgers);
            }
        }
        Ok(plan::creation_headers(&self.records[&id], &base))
    }

    fn patch(
        &mut self,
        id: UploadId,
        h: &HeaderMap,
        body: &[u8],
        trailers: Option<&HeaderMap>,
        who: Requester<'_>,
        now: Timestamp,
    ) -> Result<Vec<(HeaderName, HeaderValue)>, TusError> {
        let req = PatchRequest::from_headers(h, &limits())?;
        let record = self.records.get(&id).ok_or(TusError::NotFound)?;
        let p = plan::plan_patch(record, &req, who, now, &limits())?;
        self.take_body(&p, body, trailers, who, now)?;
        Ok(plan::patch_headers(&self.records[&id]))
    }

    /// Streams, verifies, "fsyncs" and commits, as the handler will.
    fn take_body(
        &mut self,
        p: &plan::PatchPlan,
        body: &[u8],
        trailers: Option<&HeaderMap>,
        who: Requester<'_>,
        now: Timestamp,
    ) -> Result<Commit, TusError> {
        if body.len() as u64 > p.max_body() {
            return Err(p.too_long());
        }
        let mut hasher = p.hasher();
        for piece in body.chunks(7) {
            hasher.update(piece);
        }
        let expected = p.expected_checksum(trailers)?;
        let digest = hasher.finish(expected.as_ref())?;
        let mut whole = self.whole[&p.upload()].clone();
        whole.update(body);
        let mut record = self.records[&p.upload()].clone();
        let commit = p.commit(&mut record, &digest, &whole, who, now, &limits())?;
        self.data
            .entry(p.upload())
            .or_default()
            .extend_from_slice(body);
        self.whole.insert(p.upload(), whole);
        if let Some(e) = &commit.entry {
            self.ledgers.entry(p.upload()).or_default().push(e.clone());
        }
        self.store(record);
        Ok(commit)
    }

    fn ledger(&self, id: UploadId) -> LedgerDocument {
        let own = self.ledgers.get(&id).cloned().unwrap_or_default();
        let parts = self.parts.get(&id).cloned().unwrap_or_default();
        LedgerDocument::build(&self.records[&id], own, parts).unwrap()
    }
}

fn create(m: &mut Model, id: &str, extra: &[(&str, &str)]) -> UploadId {
    let id: UploadId = id.parse().unwrap();
    let mut h = vec![("tus-resumable", "1.0.0")];
    h.extend_from_slice(extra);
    m.post(&hm(&h), b"", id, ALICE, at(0)).unwrap();
    id
}

fn patch_headers(offset: &str, extra: &[(&str, &str)]) -> HeaderMap {
    let mut h = vec![
        ("tus-resumable", "1.0.0"),
        ("content-type", OFFSET_OCTET_STREAM),
        ("upload-offset", offset),
    ];
    h.extend_from_slice(extra);
    hm(&h)
}

const U: &str = "0a0a0a0a0a0a0a0a0a0a0a0a0a";
const V: &str = "0b0b0b0b0b0b0b0b0b0b0b0b0b";
const F: &str = "0f0f0f0f0f0f0f0f0f0f0f0f0f";

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
    #[allow(clippy::type_complexity)]
    let table: Vec<(
        &str,
        Setup,
        HeaderMap,
        &[u8],
        Requester<'_>,
        i64,
        Result<u64, u16>,
    )> = vec![
        (
            "accepted",
            plain,
            patch_headers("0", &[]),
            b"hello",
            ALICE,
            1,
            Ok(5),
        ),
        (
            "admin may patch",
            plain,
            patch_headers("0", &[]),
            b"hello",
            ADMIN,
            1,
            Ok(5),
        ),
        (
            "verified sha1",
            plain,
            patch_headers("0", &[sha1_hello]),
            b"hello",
            ALICE,
            1,
            Ok(5),
        ),
        (
            "checksum mismatch 460",
            plain,
            patch_headers("0", &[sha1_hello]),
            b"hellO",
            ALICE,
            1,
            Err(460),
        ),
        (
            "offset conflict 409",
            plain,
            patch_headers("3", &[]),
            b"lo",
            ALICE,
            1,
            Err(409),
        ),
        (
            "past length 413",
            plain,
            patch_headers("0", &[]),
            b"hello world",
            ALICE,
            1,
            Err(413),
        ),
        (
            "declared past length 413",
            plain,
            patch_headers("0", &[("content-length", "11")]),
            b"",
            ALICE,
            1,
            Err(413),
        ),
        (
            "length change 400",
            plain,
            patch_headers("0", &[("upload-length", "11")]),
            b"",
            ALICE,
            1,
            Err(400),
        ),
        (
            "same length again",
            plain,
            patch_headers("0", &[("upload-length", "10")]),
            b"hi",
            ALICE,
            1,
            Ok(2),
        ),
        (
            "other principal 404",
            plain,
            patch_headers("0", &[]),
            b"hello",
            MALLORY,
            1,
            Err(404),
        ),
        (
            "expired 410",
            plain,
            patch_headers("0", &[]),
            b"hello",
            ALICE,
            3600,
            Err(410),
        ),
        (
            "not yet expired",
            plain,
            patch_headers("0", &[]),
            b"hello",
            ALICE,
            3599,
            Ok(5),
        ),
        (
            "final 403",
            final_upload,
            patch_headers("0", &[]),
            b"x",
            ALICE,
            3,
            Err(403),
        ),
        (
            "deferred: set length",
            deferred,
            patch_headers("0", &[("upload-length", "4")]),
            b"abcd",
            ALICE,
            1,
            Ok(4),
        ),
        (
            "deferred: grows to max",
            deferred,
            patch_headers("0", &[]),
            &[0u8; 1000],
            ALICE,
            1,
            Ok(1000),
        ),
        (
            "deferred: past max 413",
            deferred,
            patch_headers("0", &[]),
            &[0u8; 1001],
            ALICE,
            1,
            Err(413),
        ),
        (
            "unknown algorithm 400",
            plain,
            patch_headers("0", &[("upload-checksum", "crc32 AAAAAA==")]),
            b"x",
            ALICE,
            1,
            Err(400),
        ),
        (
            "wrong type 415",
            plain,
            hm(&[
                ("tus-resumable", "1.0.0"),
                ("content-type", "text/plain"),
                ("upload-offset", "0"),
            ]),
            b"x",
            ALICE,
            1,
            Err(415),
        ),
        (
            "version 412",
            plain,
            hm(&[
                ("tus-resumable", "0.2.2"),
                ("content-type", OFFSET_OCTET_STREAM),
                ("upload-offset", "0"),
            ]),
            b"x",
            ALICE,
            1,
            Err(412),
        ),
        (
            "two types 400",
            plain,
            patch_headers("0", &[("content-type", "text/plain")]),
            b"x",
            ALICE,
            1,
            Err(400),
        ),
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
        !plan::complete_final(&mut r, &Sha256::new(), 1, at(4)),
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
