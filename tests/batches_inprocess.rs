#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The batch flows in process (`proto/batches-v1.md`): the gateway built by
//! `sallyport::app::build` as `serve` builds it (embedded state in a temp dir), called
//! through tower's `oneshot`. Members are real tus uploads through the real engine; seals
//! run the real verification over the encrypted stored bytes. The black-box tests with a
//! real tus client over TLS are in `batches_e2e.rs`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use base64::Engine as _;
use http::{Method, Request, Response, StatusCode};
use sallyport::http::body::read_capped;
use serde_json::{Value, json};
use tower::ServiceExt;

mod support;
use support::data::sha256_hex;
use support::token_hash;

const ADMIN: &str = "batches-admin-token-0123456789abcdefghijklmn";
const CLINIC: &str = "batches-clinic-token-0123456789abcdefghijkl";
const OTHER: &str = "batches-other-token-0123456789abcdefghijklmn";
const AUDITOR_A: &str = "batches-auditor-a-token-0123456789abcdefghi";
const AUDITOR_B: &str = "batches-auditor-b-token-0123456789abcdefghi";
const PUBLISHER: &str = "batches-publisher-token-0123456789abcdefghi";

struct Harness {
    app: sallyport::app::App,
    dir: tempfile::TempDir,
}

async fn harness(extra: &str) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let client = |name: &str, token: &str, role: &str| {
        format!(
            "[[clients]]\nname = \"{name}\"\ntoken_sha256 = \"{}\"\nroles = [\"{role}\"]\n\n",
            token_hash(token)
        )
    };
    let text = format!(
        "data_dir = {:?}\n{extra}\n{}{}{}{}{}{}",
        dir.path().join("data").display().to_string(),
        client("ops", ADMIN, "admin"),
        client("clinic", CLINIC, "uploader"),
        client("other-clinic", OTHER, "uploader"),
        client("auditor-a", AUDITOR_A, "auditor"),
        client("auditor-b", AUDITOR_B, "auditor"),
        client("exporter", PUBLISHER, "publisher"),
    );
    let config = sallyport::config::Config::from_toml(&text, &BTreeMap::new()).unwrap();
    let app = sallyport::app::build(config).await.unwrap();
    Harness { app, dir }
}

struct Answer {
    status: StatusCode,
    headers: http::HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
    fn code(&self) -> String {
        self.json()["code"].as_str().unwrap_or_default().to_owned()
    }
}

impl Harness {
    async fn call(&self, req: Request<Body>) -> Answer {
        let peer: SocketAddr = "192.0.2.9:40000".parse().unwrap();
        let resp: Response<Body> = self.app.service(peer).oneshot(req).await.unwrap();
        let (parts, body) = resp.into_parts();
        let body = read_capped(None, body, 1 << 26).await.unwrap().to_vec();
        Answer {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    async fn send(&self, method: Method, uri: &str, token: &str, body: Option<Vec<u8>>) -> Answer {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json");
        let body = body.map_or_else(Body::empty, Body::from);
        self.call(req.body(body).unwrap()).await
    }

    /// A tus creation naming `meta` pairs; the answer.
    async fn create(&self, token: &str, length: u64, meta: &[(&str, &str)]) -> Answer {
        let b64 = base64::engine::general_purpose::STANDARD;
        let meta: Vec<String> = meta
            .iter()
            .map(|(k, v)| format!("{k} {}", b64.encode(v)))
            .collect();
        let mut req = Request::builder()
            .method(Method::POST)
            .uri("/files/")
            .header("authorization", format!("Bearer {token}"))
            .header("tus-resumable", "1.0.0")
            .header("upload-length", length.to_string());
        if !meta.is_empty() {
            req = req.header("upload-metadata", meta.join(","));
        }
        self.call(req.body(Body::empty()).unwrap()).await
    }

    /// Uploads `bytes` as member `name` of `batch`; the upload id.
    async fn upload(&self, token: &str, batch: &str, name: &str, bytes: &[u8]) -> String {
        let a = self
            .create(
                token,
                bytes.len() as u64,
                &[("batch", batch), ("member", name)],
            )
            .await;
        assert_eq!(
            a.status,
            StatusCode::CREATED,
            "{}",
            String::from_utf8_lossy(&a.body)
        );
        let location = a.headers["location"].to_str().unwrap().to_owned();
        let id = location.rsplit('/').next().unwrap().to_owned();
        if !bytes.is_empty() {
            let req = Request::builder()
                .method(Method::PATCH)
                .uri(format!("/files/{id}"))
                .header("authorization", format!("Bearer {token}"))
                .header("tus-resumable", "1.0.0")
                .header("upload-offset", "0")
                .header("content-type", "application/offset+octet-stream")
                .body(Body::from(bytes.to_vec()))
                .unwrap();
            let a = self.call(req).await;
            assert_eq!(a.status, StatusCode::NO_CONTENT);
        }
        id
    }

    async fn open(&self, token: &str, manifest: &str, provenance: Option<&str>) -> Answer {
        let body = match provenance {
            Some(p) => format!("{{\"manifest\": {manifest}, \"provenance\": {p}}}"),
            None => format!("{{\"manifest\": {manifest}}}"),
        };
        self.send(Method::POST, "/v1/batches", token, Some(body.into_bytes()))
            .await
    }

    /// Seals and waits for the verdict; the batch document.
    async fn seal(&self, batch: &str) -> Value {
        let a = self
            .send(
                Method::POST,
                &format!("/v1/batches/{batch}/seal"),
                CLINIC,
                None,
            )
            .await;
        assert_eq!(
            a.status,
            StatusCode::ACCEPTED,
            "{}",
            String::from_utf8_lossy(&a.body)
        );
        for _ in 0..400 {
            let a = self
                .send(Method::GET, &format!("/v1/batches/{batch}"), CLINIC, None)
                .await;
            let doc = a.json();
            if doc["state"] != "sealing" {
                return doc;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the seal did not finish");
    }

    async fn report_codes(&self, batch: &str) -> Vec<String> {
        let a = self
            .send(
                Method::GET,
                &format!("/v1/batches/{batch}/report"),
                AUDITOR_A,
                None,
            )
            .await;
        assert_eq!(a.status, StatusCode::OK);
        let digest = a.headers["repr-digest"].to_str().unwrap().to_owned();
        let b64 = base64::engine::general_purpose::STANDARD;
        assert_eq!(
            digest,
            format!(
                "sha-256=:{}:",
                b64.encode(hex::decode(sha256_hex(&a.body)).unwrap())
            )
        );
        a.json()["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["code"].as_str().unwrap().to_owned())
            .collect()
    }

    async fn audit_verifies(&self) {
        let a = self
            .send(Method::GET, "/v1/audit/verify", ADMIN, None)
            .await;
        assert_eq!(
            a.status,
            StatusCode::OK,
            "{}",
            String::from_utf8_lossy(&a.body)
        );
        assert_eq!(a.json()["intact"], true, "{}", a.json());
        support::audit_schema::assert_store(&**self.app.state.auditor.log()).await;
    }
}

/// Synthetic NDJSON: `n` records of `rt`.
fn ndjson(rt: &str, n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..n {
        let line = json!({"resourceType": rt, "id": format!("{rt}-{i}"), "status": "final"});
        out.extend_from_slice(line.to_string().as_bytes());
        out.push(b'\n');
    }
    out
}

/// A manifest line: name, bytes, and for NDJSON (resource type, records).
type Listed<'a> = (&'a str, &'a [u8], Option<(&'a str, u64)>);

fn manifest(members: &[Listed<'_>]) -> String {
    let list: Vec<Value> = members
        .iter()
        .map(|(name, bytes, nd)| {
            let mut m = json!({
                "name": name,
                "size": bytes.len(),
                "sha256": sha256_hex(bytes),
                "media_type": if nd.is_some() { "application/fhir+ndjson" } else { "text/plain" },
            });
            if let Some((rt, records)) = nd {
                m["ndjson"] = json!({"resource_type": rt, "records": records});
            }
            m
        })
        .collect();
    let total: usize = members.iter().map(|(_, b, _)| b.len()).sum();
    json!({
        "version": "sallyport.manifest/1",
        "members": list,
        "total_members": members.len(),
        "total_bytes": total,
    })
    .to_string()
}

fn provenance() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/proto/vectors/provenance-v1/valid-fhir-bulk-export.json"
    ))
    .unwrap()
    .trim_end()
    .to_owned()
}

#[tokio::test]
async fn a_clean_batch_is_released_and_its_member_can_be_published() {
    let h = harness("").await;
    let patients = ndjson("Patient", 300);
    let observations = ndjson("Observation", 900);
    let notes = b"referral notes\n".to_vec();
    let m = manifest(&[
        ("Patient.ndjson", &patients, Some(("Patient", 300))),
        (
            "Observation.ndjson",
            &observations,
            Some(("Observation", 900)),
        ),
        ("notes.txt", &notes, None),
    ]);
    let p = provenance();
    let a = h.open(CLINIC, &m, Some(&p)).await;
    assert_eq!(
        a.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&a.body)
    );
    let doc = a.json();
    let batch = doc["id"].as_str().unwrap().to_owned();
    assert_eq!(
        a.headers["location"],
        format!("/v1/batches/{batch}").as_str()
    );
    assert_eq!(doc["state"], "open");
    assert_eq!(doc["manifest_sha256"], sha256_hex(m.as_bytes()));

    // The documents come back byte for byte.
    let a = h
        .send(
            Method::GET,
            &format!("/v1/batches/{batch}/manifest"),
            CLINIC,
            None,
        )
        .await;
    assert_eq!(a.body, m.as_bytes());
    let a = h
        .send(
            Method::GET,
            &format!("/v1/batches/{batch}/provenance"),
            AUDITOR_A,
            None,
        )
        .await;
    assert_eq!(a.body, p.as_bytes());
    // Another uploader cannot see it; an auditor can.
    let a = h
        .send(Method::GET, &format!("/v1/batches/{batch}"), OTHER, None)
        .await;
    assert_eq!(
        (a.status, a.code().as_str()),
        (StatusCode::NOT_FOUND, "batch.not_found")
    );

    // Refusals at creation change nothing.
    for (token, meta, len, status, code) in [
        (
            CLINIC,
            vec![
                ("batch", "0000000000000000000000000a"),
                ("member", "notes.txt"),
            ],
            notes.len(),
            404,
            "batch.not_found",
        ),
        (
            OTHER,
            vec![("batch", batch.as_str()), ("member", "notes.txt")],
            notes.len(),
            404,
            "batch.not_found",
        ),
        (
            CLINIC,
            vec![("batch", batch.as_str()), ("member", "extra.txt")],
            5,
            422,
            "batch.member_not_listed",
        ),
        (
            CLINIC,
            vec![("batch", batch.as_str()), ("member", "notes.txt")],
            notes.len() + 1,
            422,
            "batch.member_size",
        ),
        (
            CLINIC,
            vec![("batch", batch.as_str())],
            notes.len(),
            400,
            "batch.member_metadata",
        ),
    ] {
        let a = h.create(token, len as u64, &meta).await;
        assert_eq!((a.status.as_u16(), a.code().as_str()), (status, code));
    }

    let up_patients = h.upload(CLINIC, &batch, "Patient.ndjson", &patients).await;
    h.upload(CLINIC, &batch, "Observation.ndjson", &observations)
        .await;
    h.upload(CLINIC, &batch, "notes.txt", &notes).await;
    // One live upload per member.
    let a = h
        .create(
            CLINIC,
            notes.len() as u64,
            &[("batch", &batch), ("member", "notes.txt")],
        )
        .await;
    assert_eq!(
        (a.status.as_u16(), a.code().as_str()),
        (409, "batch.member_exists")
    );

    // Nothing leaves before the verdict.
    let register = json!({"upload": up_patients, "file_name": "Patient.ndjson"}).to_string();
    let a = h
        .send(
            Method::POST,
            "/v1/artifacts",
            PUBLISHER,
            Some(register.clone().into_bytes()),
        )
        .await;
    assert_eq!(
        (a.status.as_u16(), a.code().as_str()),
        (409, "batch.not_released")
    );
    let a = h
        .send(
            Method::GET,
            &format!("/v1/batches/{batch}/report"),
            CLINIC,
            None,
        )
        .await;
    assert_eq!(
        (a.status.as_u16(), a.code().as_str()),
        (409, "batch.not_verified")
    );

    let doc = h.seal(&batch).await;
    assert_eq!(doc["state"], "released", "{doc}");
    assert_eq!(doc["progress"]["members_checked"], 3);
    assert_eq!(
        doc["progress"]["bytes_checked"],
        (patients.len() + observations.len() + notes.len()) as u64
    );
    assert!(h.report_codes(&batch).await.is_empty());
    // Sealed: no more members, and the members stay.
    let a = h
        .create(CLINIC, 1, &[("batch", &batch), ("member", "notes.txt")])
        .await;
    assert_eq!(a.status, StatusCode::CONFLICT);
    let req = Request::builder()
        .method(Method::DELETE)
        .uri(format!("/files/{up_patients}"))
        .header("authorization", format!("Bearer {CLINIC}"))
        .header("tus-resumable", "1.0.0")
        .body(Body::empty())
        .unwrap();
    let a = h.call(req).await;
    assert_eq!(
        (a.status.as_u16(), a.code().as_str()),
        (409, "batch.member_sealed")
    );

    // Released: the member can be published and downloaded.
    let a = h
        .send(
            Method::POST,
            "/v1/artifacts",
            PUBLISHER,
            Some(register.into_bytes()),
        )
        .await;
    assert_eq!(
        a.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&a.body)
    );
    let artifact = a.json()["artifact"].as_str().unwrap().to_owned();
    let issue = json!({"artifact": artifact, "partner": "registry", "ttl": "1h"}).to_string();
    let a = h
        .send(
            Method::POST,
            "/v1/links",
            PUBLISHER,
            Some(issue.clone().into_bytes()),
        )
        .await;
    assert_eq!(
        a.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&a.body)
    );
    let path = a.json()["path"].as_str().unwrap().to_owned();
    let a = h
        .call(Request::get(&path).body(Body::empty()).unwrap())
        .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body, patients);

    // Purged: the issued link stops working, no new link, blobs and keys gone.
    let a = h
        .send(
            Method::POST,
            &format!("/v1/batches/{batch}/purge"),
            AUDITOR_A,
            Some(
                json!({"reason": "retention ended early by request"})
                    .to_string()
                    .into_bytes(),
            ),
        )
        .await;
    assert_eq!(
        a.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&a.body)
    );
    assert_eq!(a.json()["state"], "purged");
    let a = h
        .call(Request::get(&path).body(Body::empty()).unwrap())
        .await;
    assert_eq!(
        (a.status.as_u16(), a.code().as_str()),
        (403, "link.refused")
    );
    let a = h
        .send(
            Method::POST,
            "/v1/links",
            PUBLISHER,
            Some(issue.into_bytes()),
        )
        .await;
    assert_eq!(
        (a.status.as_u16(), a.code().as_str()),
        (409, "batch.not_released")
    );
    let blobs = h.dir.path().join("data");
    let leftover: Vec<_> = walk(&blobs)
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(&up_patients))
        .collect();
    assert!(leftover.is_empty(), "member blobs remain: {leftover:?}");
    // The report and documents stay.
    assert!(h.report_codes(&batch).await.is_empty());
    h.audit_verifies().await;
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[tokio::test]
async fn a_failing_batch_is_quarantined_and_needs_two_auditors() {
    let h = harness("[batches]\nfour_eyes = true\n").await;
    let patients = ndjson("Patient", 200);
    let observations = ndjson("Observation", 500);
    let m = manifest(&[
        ("Patient.ndjson", &patients, Some(("Patient", 200))),
        (
            "Observation.ndjson",
            &observations,
            Some(("Observation", 500)),
        ),
        ("Encounter.ndjson", b"", Some(("Encounter", 0))),
    ]);
    let a = h.open(CLINIC, &m, None).await;
    assert_eq!(a.status, StatusCode::CREATED);
    let batch = a.json()["id"].as_str().unwrap().to_owned();
    // One record dropped (the manifest is from before), one line's resourceType wrong.
    let dropped = ndjson("Patient", 199);
    let mut wrong = observations.clone();
    let text = String::from_utf8(wrong.clone()).unwrap();
    let replaced = text.replacen(
        "\"id\":\"Observation-87\",\"resourceType\":\"Observation\"",
        "\"id\":\"Observation-87\",\"resourceType\":\"Appointment\"",
        1,
    );
    assert!(text != replaced, "the line to change exists");
    wrong = replaced.into_bytes();
    // The size of the dropped file differs from the manifest's: refused at creation.
    let a = h
        .create(
            CLINIC,
            dropped.len() as u64,
            &[("batch", &batch), ("member", "Patient.ndjson")],
        )
        .await;
    assert_eq!(a.code(), "batch.member_size");
    // A deferred-length upload gets through and is judged on seal.
    let b64 = base64::engine::general_purpose::STANDARD;
    let req = Request::builder()
        .method(Method::POST)
        .uri("/files/")
        .header("authorization", format!("Bearer {CLINIC}"))
        .header("tus-resumable", "1.0.0")
        .header("upload-defer-length", "1")
        .header(
            "upload-metadata",
            format!(
                "batch {},member {}",
                b64.encode(&batch),
                b64.encode("Patient.ndjson")
            ),
        )
        .body(Body::empty())
        .unwrap();
    let a = h.call(req).await;
    assert_eq!(a.status, StatusCode::CREATED);
    let id = a.headers["location"]
        .to_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let req = Request::builder()
        .method(Method::PATCH)
        .uri(format!("/files/{id}"))
        .header("authorization", format!("Bearer {CLINIC}"))
        .header("tus-resumable", "1.0.0")
        .header("upload-offset", "0")
        .header("upload-length", dropped.len().to_string())
        .header("content-type", "application/offset+octet-stream")
        .body(Body::from(dropped.clone()))
        .unwrap();
    assert_eq!(h.call(req).await.status, StatusCode::NO_CONTENT);
    let obs_upload = h.upload(CLINIC, &batch, "Observation.ndjson", &wrong).await;
    // Encounter.ndjson is never uploaded.

    let doc = h.seal(&batch).await;
    assert_eq!(doc["state"], "quarantined", "{doc}");
    let mut codes = h.report_codes(&batch).await;
    codes.sort();
    let mut expected = vec![
        "member.missing",               // Encounter.ndjson
        "member.size_mismatch",         // Patient.ndjson
        "member.sha256_mismatch",       // Patient.ndjson, upload digest
        "member.sha256_mismatch",       // Patient.ndjson, stored data
        "ndjson.record_count_mismatch", // Patient.ndjson: 199 of 200
        "member.sha256_mismatch",       // Observation.ndjson, upload digest
        "member.sha256_mismatch",       // Observation.ndjson, stored data
        "ndjson.wrong_resource_type",   // Observation.ndjson line 88
        "batch.total_members_mismatch",
        "batch.total_bytes_mismatch",
    ];
    expected.sort();
    assert_eq!(codes, expected);
    let report = h
        .send(
            Method::GET,
            &format!("/v1/batches/{batch}/report"),
            CLINIC,
            None,
        )
        .await
        .json();
    let messages: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["message"].as_str().unwrap())
        .collect();
    assert!(
        messages.contains(&"Patient.ndjson: 199 records, manifest says 200"),
        "{messages:?}"
    );
    assert!(
        messages.contains(&"Encounter.ndjson: listed, never uploaded"),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("Observation.ndjson: line 88 ")),
        "{messages:?}"
    );
    // No record content in the report.
    assert!(!String::from_utf8_lossy(&report.to_string().into_bytes()).contains("Appointment"));

    // Quarantined: nothing leaves.
    let register = json!({"upload": obs_upload, "file_name": "Observation.ndjson"}).to_string();
    let a = h
        .send(
            Method::POST,
            "/v1/artifacts",
            PUBLISHER,
            Some(register.clone().into_bytes()),
        )
        .await;
    assert_eq!(
        (a.status.as_u16(), a.code().as_str()),
        (409, "batch.not_released")
    );

    // Four eyes.
    let release = |token: &'static str, reason: &str| {
        let body = json!({"reason": reason}).to_string().into_bytes();
        let uri = format!("/v1/batches/{batch}/release");
        let h = &h;
        async move { h.send(Method::POST, &uri, token, Some(body)).await }
    };
    let a = release(CLINIC, "mine").await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    let a = h
        .send(
            Method::POST,
            &format!("/v1/batches/{batch}/release"),
            AUDITOR_A,
            Some(b"{}".to_vec()),
        )
        .await;
    assert_eq!(
        (a.status.as_u16(), a.code().as_str()),
        (400, "batch.reason_required")
    );
    let a = release(AUDITOR_A, "counts confirmed with the lab by phone").await;
    assert_eq!(a.status, StatusCode::ACCEPTED);
    assert_eq!(a.json()["state"], "quarantined");
    assert_eq!(a.json()["approvals"].as_array().unwrap().len(), 1);
    let a = release(AUDITOR_A, "again").await;
    assert_eq!(
        (a.status.as_u16(), a.code().as_str()),
        (409, "batch.already_approved")
    );
    let a = h
        .send(
            Method::GET,
            &format!("/v1/batches/{batch}"),
            AUDITOR_B,
            None,
        )
        .await;
    assert_eq!(a.json()["state"], "quarantined");
    let a = release(AUDITOR_B, "second look: agreed").await;
    assert_eq!(
        a.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&a.body)
    );
    assert_eq!(a.json()["state"], "released");
    assert_eq!(a.json()["released"]["by"], "auditor-b");
    let a = h
        .send(
            Method::POST,
            "/v1/artifacts",
            PUBLISHER,
            Some(register.into_bytes()),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED);

    // Listing by state.
    let a = h
        .send(Method::GET, "/v1/batches?state=released", AUDITOR_A, None)
        .await;
    assert_eq!(a.json()["batches"].as_array().unwrap().len(), 1);
    let a = h
        .send(
            Method::GET,
            "/v1/batches?state=quarantined",
            AUDITOR_A,
            None,
        )
        .await;
    assert!(a.json()["batches"].as_array().unwrap().is_empty());
    let a = h
        .send(Method::GET, "/v1/batches?state=bogus", AUDITOR_A, None)
        .await;
    assert_eq!(a.code(), "batch.bad_query");
    h.audit_verifies().await;
}

#[tokio::test]
async fn bad_manifests_are_refused_naming_the_field_and_change_nothing() {
    let h = harness("").await;
    let good = |extra: &str| {
        format!(
            "{{\"version\":\"sallyport.manifest/1\",\"members\":[{{\"name\":\"a.txt\",\"size\":1,\"sha256\":\"{}\",\"media_type\":\"text/plain\"{extra}}}]}}",
            "0".repeat(64)
        )
    };
    for (manifest, status, field_or_code) in [
        (good(",\"colour\":\"red\""), 422, "/members/0/colour"),
        (
            good("").replace("a.txt", "../a.txt"),
            422,
            "/members/0/name",
        ),
        (
            good("").replace("\"size\":1", "\"size\":-1"),
            422,
            "/members/0/size",
        ),
    ] {
        let a = h.open(CLINIC, &manifest, None).await;
        assert_eq!(
            a.status.as_u16(),
            status,
            "{}",
            String::from_utf8_lossy(&a.body)
        );
        assert_eq!(a.code(), "batch.invalid_manifest");
        assert_eq!(a.json()["field"], field_or_code, "{}", a.json());
        assert_eq!(a.json()["document"], "manifest");
    }
    // Invalid UTF-8 inside the manifest.
    let mut bytes = b"{\"manifest\": ".to_vec();
    bytes.extend_from_slice(good("").replace("a.txt", "a\u{e9}.txt").as_bytes());
    bytes.push(b'}');
    let pos = bytes
        .windows(2)
        .position(|w| w == "\u{e9}".as_bytes())
        .unwrap();
    bytes[pos] = 0xff;
    let a = h
        .send(Method::POST, "/v1/batches", CLINIC, Some(bytes))
        .await;
    assert_eq!(
        (a.status.as_u16(), a.code().as_str()),
        (400, "batch.bad_request")
    );
    assert!(a.json()["detail"].as_str().unwrap().contains("not UTF-8"));
    assert_eq!(a.json()["reason"], "not_utf8");
    // 10 MB of JSON.
    let huge = format!(
        "{{\"manifest\": {{\"version\":\"sallyport.manifest/1\",\"pad\":\"{}\"}}}}",
        "x".repeat(10 << 20)
    );
    let a = h
        .send(Method::POST, "/v1/batches", CLINIC, Some(huge.into_bytes()))
        .await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE);
    // Not the envelope.
    let a = h
        .send(
            Method::POST,
            "/v1/batches",
            CLINIC,
            Some(b"{\"manifesto\": {}}".to_vec()),
        )
        .await;
    assert_eq!(
        (a.status.as_u16(), a.code().as_str()),
        (400, "batch.bad_request")
    );
    // A publisher cannot open batches.
    let a = h.open(PUBLISHER, &good(""), None).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    // Nothing was created.
    let a = h.send(Method::GET, "/v1/batches", AUDITOR_A, None).await;
    assert!(
        a.json()["batches"].as_array().unwrap().is_empty(),
        "{}",
        a.json()
    );
    h.audit_verifies().await;
}

/// The blob file of `upload` in the harness's data directory.
fn blob_of(h: &Harness, upload: &str) -> std::path::PathBuf {
    h.dir
        .path()
        .join("data")
        .join("blobs")
        .join(&upload[..2])
        .join(format!("{upload}.data"))
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

const DAY: u64 = 86_400;

#[tokio::test]
async fn an_open_batch_never_sealed_expires_and_its_uploads_are_destroyed() {
    let h = harness("[batches]\nopen_ttl = \"2days\"\n").await;
    let patients = ndjson("Patient", 50);
    let notes = b"referral notes\n".to_vec();
    let m = manifest(&[
        ("Patient.ndjson", &patients, Some(("Patient", 50))),
        ("notes.txt", &notes, None),
    ]);
    let a = h.open(CLINIC, &m, None).await;
    assert_eq!(a.status, StatusCode::CREATED);
    let batch = a.json()["id"].as_str().unwrap().to_owned();
    let done = h.upload(CLINIC, &batch, "Patient.ndjson", &patients).await;
    // The other member is created and never finished.
    let a = h
        .create(
            CLINIC,
            notes.len() as u64,
            &[("batch", &batch), ("member", "notes.txt")],
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED);
    let partial = a.headers["location"]
        .to_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    assert!(blob_of(&h, &done).exists());

    let batches = &h.app.state.batches;
    let now = unix_now();
    // Before the deadline the sweeper leaves it alone.
    let swept = batches.sweep_at(now + 2 * DAY - 600).await.unwrap();
    assert_eq!(swept.expired, 0);
    let a = h
        .send(Method::GET, &format!("/v1/batches/{batch}"), CLINIC, None)
        .await;
    assert_eq!(a.json()["state"], "open");

    let swept = batches.sweep_at(now + 2 * DAY + 600).await.unwrap();
    assert_eq!(swept.expired, 1);
    let a = h
        .send(Method::GET, &format!("/v1/batches/{batch}"), CLINIC, None)
        .await;
    assert_eq!(a.json()["state"], "expired", "{}", a.json());
    // Its uploads are gone: blob and record.
    assert!(!blob_of(&h, &done).exists(), "the finished member's blob");
    for id in [&done, &partial] {
        let req = Request::builder()
            .method(Method::HEAD)
            .uri(format!("/files/{id}"))
            .header("authorization", format!("Bearer {CLINIC}"))
            .header("tus-resumable", "1.0.0")
            .body(Body::empty())
            .unwrap();
        assert_eq!(h.call(req).await.status, StatusCode::NOT_FOUND, "{id}");
    }
    // Nothing more can join it, and it cannot be sealed.
    let a = h
        .create(
            CLINIC,
            notes.len() as u64,
            &[("batch", &batch), ("member", "notes.txt")],
        )
        .await;
    assert_eq!(
        (a.status.as_u16(), a.code().as_str()),
        (409, "batch.not_open")
    );
    let a = h
        .send(
            Method::POST,
            &format!("/v1/batches/{batch}/seal"),
            CLINIC,
            None,
        )
        .await;
    assert_eq!(
        (a.status.as_u16(), a.code().as_str()),
        (409, "batch.not_open")
    );
    // A second sweep finds nothing to do; the trail verifies.
    let swept = batches.sweep_at(now + 3 * DAY).await.unwrap();
    assert_eq!(swept.expired, 0);
    h.audit_verifies().await;
}

#[tokio::test]
async fn a_released_batch_is_purged_by_the_sweeper_when_its_retention_ends() {
    let h = harness("[batches]\nretention = \"10days\"\n").await;
    let patients = ndjson("Patient", 80);
    let m = manifest(&[("Patient.ndjson", &patients, Some(("Patient", 80)))]);
    let a = h.open(CLINIC, &m, None).await;
    assert_eq!(a.status, StatusCode::CREATED);
    let batch = a.json()["id"].as_str().unwrap().to_owned();
    let upload = h.upload(CLINIC, &batch, "Patient.ndjson", &patients).await;
    let now = unix_now();
    let doc = h.seal(&batch).await;
    assert_eq!(doc["state"], "released", "{doc}");
    assert!(doc["retain_until"].is_string(), "{doc}");
    let report = h
        .send(
            Method::GET,
            &format!("/v1/batches/{batch}/report"),
            AUDITOR_A,
            None,
        )
        .await
        .body;

    let batches = &h.app.state.batches;
    let swept = batches.sweep_at(now + 10 * DAY - 600).await.unwrap();
    assert_eq!(swept.retired, 0);
    assert!(blob_of(&h, &upload).exists());

    let swept = batches.sweep_at(now + 10 * DAY + 600).await.unwrap();
    assert_eq!(swept.retired, 1);
    let a = h
        .send(
            Method::GET,
            &format!("/v1/batches/{batch}"),
            AUDITOR_A,
            None,
        )
        .await;
    let doc = a.json();
    assert_eq!(doc["state"], "purged", "{doc}");
    assert_eq!(doc["purged"]["by"], "system");
    assert_eq!(doc["purged"]["reason"], "retention period ended");
    assert!(!blob_of(&h, &upload).exists(), "the member's blob");
    // The member cannot be published any more; the report is kept.
    let register = json!({"upload": upload, "file_name": "Patient.ndjson"}).to_string();
    let a = h
        .send(
            Method::POST,
            "/v1/artifacts",
            PUBLISHER,
            Some(register.into_bytes()),
        )
        .await;
    assert_eq!(
        a.status.as_u16() / 100,
        4,
        "{}",
        String::from_utf8_lossy(&a.body)
    );
    let again = h
        .send(
            Method::GET,
            &format!("/v1/batches/{batch}/report"),
            AUDITOR_A,
            None,
        )
        .await
        .body;
    assert_eq!(again, report);
    let swept = batches.sweep_at(now + 11 * DAY).await.unwrap();
    assert_eq!(swept.retired, 0);
    h.audit_verifies().await;
}
