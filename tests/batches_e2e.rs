#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Batches end to end (`proto/batches-v1.md`), black-box: the real binary over TLS, members
//! uploaded by the real Python tus client (tuspy) naming `batch` and `member` in
//! `Upload-Metadata`, synthetic FHIR R4 NDJSON from `support::fhir`.
//!
//! Each test opens a batch with a manifest and a provenance record (the request body built
//! by byte concatenation, so the documents arrive byte for byte), uploads members, seals,
//! waits for the verdict and reads the report; then what the verdict gates: registering a
//! member as an artifact, links, downloads, four-eyes release, purge and the audit trail.
//! Every quarantine scenario asserts the exact list of finding codes, in the verdict's
//! order (listed members in manifest order, each member's checks in order, then totals).
//!
//! Without python3/pip the tests skip with a notice, except under `CI`, where they fail.

mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

use support::batches::{
    AUDITOR_TOKEN, AUDITOR2_TOKEN, Answer, auditors_toml, codes, decide, get, open, post,
    repr_digest, seal, wait_verdict,
};
use support::fhir::{self, Batch, Manifest, open_body, provenance_json};
use support::links::{actions, export_audit, issue, issue_raw, publisher_toml};
use support::tuspy::{Outcome, Tuspy};
use support::{ADMIN_TOKEN, Gateway, LAB_TOKEN, UPLOADER_TOKEN, cli};

/// Records per member: Patient, Encounter, Observation (about 0.5, 1.2 and 2.8 MB).
const COUNTS: [usize; 3] = [1500, 3000, 5000];
/// tuspy's PATCH size: several PATCHes per member.
const CHUNK: u64 = 1024 * 1024;
const VERDICT_WAIT: Duration = Duration::from_secs(120);
const SEED: u64 = 20261204;

/// A gateway with a publisher and two auditors, plus `extra`.
fn gateway(extra: &str) -> Gateway {
    Gateway::start(&format!("{extra}\n{}{}", publisher_toml(), auditors_toml()))
}

/// A scratch directory for member files.
fn work() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap()
}

/// Opens a batch as the clinic with `manifest` and the synthetic provenance; asserts 201
/// and returns (id, batch document).
async fn open_batch(gw: &Gateway, manifest: &str, job: &str) -> (String, Value) {
    let provenance = provenance_json(job);
    let a = open(
        gw,
        UPLOADER_TOKEN,
        open_body(manifest.as_bytes(), Some(provenance.as_bytes())),
    )
    .await;
    assert_eq!(a.status, 201, "open: {}", String::from_utf8_lossy(&a.body));
    let doc = a.json();
    let id = doc["id"].as_str().unwrap().to_owned();
    assert_eq!(
        a.header("location"),
        Some(format!("/v1/batches/{id}").as_str())
    );
    (id, doc)
}

/// Uploads member `name` of `batch` with tuspy into batch `id`.
fn upload(tuspy: &Tuspy, gw: &Gateway, batch: &Batch, id: &str, name: &str) -> Outcome {
    tokio::task::block_in_place(|| {
        tuspy.upload(
            &gw.url("/files/"),
            &gw.ca_path(),
            UPLOADER_TOKEN,
            &batch.path(name),
            CHUNK,
            &[("batch", id), ("member", name)],
        )
    })
}

/// Uploads `name` and expects success; returns the upload id.
fn upload_ok(tuspy: &Tuspy, gw: &Gateway, batch: &Batch, id: &str, name: &str) -> String {
    match upload(tuspy, gw, batch, id, name) {
        Outcome::Done { url } => url.rsplit('/').next().unwrap().to_owned(),
        Outcome::Refused { status, body } => panic!("{name}: refused {status}: {body}"),
    }
}

/// Uploads `name` and expects the creation refused with `status` and problem `code`.
fn upload_refused(
    tuspy: &Tuspy,
    gw: &Gateway,
    batch: &Batch,
    id: &str,
    name: &str,
    expect: (u16, &str),
) {
    match upload(tuspy, gw, batch, id, name) {
        Outcome::Done { url } => panic!("{name} was accepted as {url}, expected {expect:?}"),
        Outcome::Refused { status, body } => {
            let code: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            assert_eq!(
                (status, code["code"].as_str().unwrap_or_default()),
                expect,
                "{name}: {body}"
            );
        }
    }
}

/// Seals (202) and waits for the verdict; returns (batch document, report, report answer).
async fn seal_and_judge(gw: &Gateway, id: &str) -> (Value, Value, Answer) {
    let a = seal(gw, UPLOADER_TOKEN, id).await;
    assert_eq!(a.status, 202, "seal: {}", String::from_utf8_lossy(&a.body));
    assert!(
        matches!(
            a.json()["state"].as_str(),
            Some("sealing" | "released" | "quarantined")
        ),
        "{}",
        a.json()
    );
    let started = Instant::now();
    let doc = wait_verdict(gw, UPLOADER_TOKEN, id, VERDICT_WAIT).await;
    eprintln!(
        "batch {id}: {} after {:.1} s",
        doc["state"],
        started.elapsed().as_secs_f64()
    );
    let report = get(gw, &format!("/v1/batches/{id}/report"), UPLOADER_TOKEN).await;
    assert_eq!(
        report.status,
        200,
        "report: {}",
        String::from_utf8_lossy(&report.body)
    );
    // The report is served byte for byte as hashed into the verdict.
    let hex = doc["verdict"]["report_sha256"].as_str().unwrap();
    assert_eq!(hex, fhir_sha256(&report.body), "verdict.report_sha256");
    assert_eq!(
        report.header("repr-digest"),
        Some(repr_digest(&report.body).as_str())
    );
    (doc, report.json(), report)
}

fn fhir_sha256(bytes: &[u8]) -> String {
    support::data::sha256_hex(bytes)
}

/// Asserts `id` is quarantined with exactly `expected` finding codes, then that nothing of
/// it can be registered as an artifact (so no link and no download can exist).
async fn assert_quarantined(
    gw: &Gateway,
    id: &str,
    doc: &Value,
    report: &Value,
    expected: &[&str],
    uploads: &[String],
) {
    assert_eq!(doc["state"], "quarantined", "{doc}");
    assert_eq!(report["verdict"], "quarantined");
    assert_eq!(codes(report), expected, "findings: {report:#}");
    assert_eq!(doc["verdict"]["findings"], expected.len() as u64);
    for upload in uploads {
        let (s, j) =
            support::links::register(gw, json!({"upload": upload, "file_name": "member.ndjson"}))
                .await;
        assert_eq!(
            (s, j["code"].as_str().unwrap_or_default()),
            (409, "batch.not_released"),
            "registering a member of quarantined batch {id}: {j}"
        );
    }
}

/// The stored data blob of an upload (`src/blob/local.rs`: `<blobs>/<shard>/<id>.data`).
fn data_blob(gw: &Gateway, upload: &str) -> PathBuf {
    gw.data_dir()
        .join("blobs")
        .join(&upload[..2])
        .join(format!("{upload}.data"))
}

/// The batch ids `GET /v1/batches` lists to `token`.
async fn listed(gw: &Gateway, token: &str) -> Vec<String> {
    let a = get(gw, "/v1/batches", token).await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let j = a.json();
    let list = j.as_array().or_else(|| j["batches"].as_array());
    list.unwrap_or_else(|| panic!("no list of batches in {j}"))
        .iter()
        .map(|b| b["id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn the_generator_is_deterministic_synthetic_fhir() {
    let a = fhir::observations(500, 50, 7);
    assert_eq!(a, fhir::observations(500, 50, 7), "same seed, same bytes");
    assert_ne!(a, fhir::observations(500, 50, 8));
    for (bytes, rt, n) in [
        (fhir::patients(200, 1), "Patient", 200),
        (fhir::encounters(300, 200, 1), "Encounter", 300),
        (a, "Observation", 500),
    ] {
        let lines: Vec<&[u8]> = bytes
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        assert_eq!(lines.len(), n);
        assert!(bytes.ends_with(b"\n"));
        for line in lines {
            let v: Value = serde_json::from_slice(line).unwrap();
            assert_eq!(v["resourceType"], rt);
            assert_eq!(v["meta"]["tag"][0]["code"], "synthetic");
            match rt {
                "Patient" => {
                    assert_eq!(v["identifier"][0]["system"], fhir::ID_SYSTEM);
                    assert!(v["birthDate"].as_str().unwrap().len() == 10);
                }
                "Encounter" => {
                    assert!(
                        v["subject"]["reference"]
                            .as_str()
                            .unwrap()
                            .starts_with("Patient/pat-")
                    );
                    assert!(v["period"]["start"].is_string());
                }
                _ => {
                    assert_eq!(v["code"]["coding"][0]["system"], "http://loinc.org");
                    assert!(v["valueQuantity"]["value"].is_number());
                    assert!(v["valueQuantity"]["unit"].is_string());
                }
            }
        }
    }
    // The manifest is what the parser accepts, and says what the files hold.
    let dir = work();
    let batch = Batch::synthetic(dir.path(), SEED, [20, 30, 50]);
    let m = batch.manifest();
    let text = m.to_json();
    sallyport::manifest::Manifest::parse(text.as_bytes(), &Default::default())
        .unwrap_or_else(|e| panic!("{e:?}\n{text}"));
    sallyport::manifest::Provenance::parse(
        provenance_json("job-1").as_bytes(),
        &Default::default(),
    )
    .unwrap();
    assert_eq!(m.members[2].records, 50);
    assert_eq!(
        m.members[2].sha256,
        fhir_sha256(&std::fs::read(batch.path("Observation.ndjson")).unwrap())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_complete_batch_is_released_and_its_member_downloads_through_a_link() {
    let Some(tuspy) = Tuspy::require() else {
        return;
    };
    let gw = gateway("");
    let dir = work();
    let batch = Batch::synthetic(dir.path(), SEED, COUNTS);
    let manifest = batch.manifest().to_json();
    let provenance = provenance_json("bulk-export-happy");
    let (id, doc) = open_batch(&gw, &manifest, "bulk-export-happy").await;
    assert_eq!(doc["state"], "open");
    assert_eq!(doc["owner"], "clinic");
    assert_eq!(doc["manifest_sha256"], fhir_sha256(manifest.as_bytes()));
    assert_eq!(doc["provenance_sha256"], fhir_sha256(provenance.as_bytes()));
    assert_eq!(doc["members"]["listed"], 3);
    assert!(doc["verdict"].is_null() && doc["released"].is_null());

    // Both documents are served back byte for byte, to the owner and an auditor.
    for (path, bytes) in [("manifest", &manifest), ("provenance", &provenance)] {
        for token in [UPLOADER_TOKEN, AUDITOR_TOKEN] {
            let a = get(&gw, &format!("/v1/batches/{id}/{path}"), token).await;
            assert_eq!(a.status, 200);
            assert_eq!(
                String::from_utf8_lossy(&a.body),
                bytes.as_str(),
                "{path} byte for byte"
            );
            assert_eq!(
                a.header("repr-digest"),
                Some(repr_digest(bytes.as_bytes()).as_str())
            );
        }
    }
    // Another uploader sees nothing; listing shows it to its owner and the auditor only.
    let a = get(&gw, &format!("/v1/batches/{id}"), LAB_TOKEN).await;
    assert_eq!(a.refusal(), (404, "batch.not_found".into()));
    assert_eq!(listed(&gw, UPLOADER_TOKEN).await, vec![id.clone()]);
    assert_eq!(listed(&gw, AUDITOR_TOKEN).await, vec![id.clone()]);
    assert!(listed(&gw, LAB_TOKEN).await.is_empty());
    // No report before the verdict.
    let a = get(&gw, &format!("/v1/batches/{id}/report"), UPLOADER_TOKEN).await;
    assert_eq!(a.refusal(), (409, "batch.not_verified".into()));

    let mut uploads = Vec::new();
    for m in &batch.members {
        uploads.push(upload_ok(&tuspy, &gw, &batch, &id, &m.name));
    }
    // A second live upload of the same member is refused.
    upload_refused(
        &tuspy,
        &gw,
        &batch,
        &id,
        "Patient.ndjson",
        (409, "batch.member_exists"),
    );
    // Not released yet: no artifact.
    let (s, j) = support::links::register(
        &gw,
        json!({"upload": uploads[2], "file_name": "Observation.ndjson"}),
    )
    .await;
    assert_eq!(
        (s, j["code"].as_str().unwrap_or_default()),
        (409, "batch.not_released")
    );
    let a = get(&gw, &format!("/v1/batches/{id}"), UPLOADER_TOKEN).await;
    assert_eq!(a.json()["members"]["listed"], 3);

    let (doc, report, _) = seal_and_judge(&gw, &id).await;
    assert_eq!(doc["state"], "released", "{doc}\n{report}");
    assert_eq!(report, json!({"verdict": "released", "findings": []}));
    assert_eq!(doc["verdict"]["findings"], 0);
    assert_eq!(doc["released"]["by"], "system");
    assert!(doc["retain_until"].is_string(), "{doc}");
    // Sealed: sealing again is refused (adding a member after the seal: see the missing
    // member test, where a listed name has no upload yet).
    let a = seal(&gw, UPLOADER_TOKEN, &id).await;
    assert_eq!(a.refusal(), (409, "batch.not_open".into()));

    // Released: the Observation member becomes an artifact and downloads byte for byte.
    let (s, art) = support::links::register(
        &gw,
        json!({"upload": uploads[2], "file_name": "Observation.ndjson"}),
    )
    .await;
    assert_eq!(s, 201, "{art}");
    let source = &batch.member("Observation.ndjson").bytes;
    assert_eq!(art["sha256"], fhir_sha256(source));
    let link = issue(
        &gw,
        json!({"artifact": art["artifact"], "partner": "payer-a"}),
    )
    .await;
    let got = gw
        .client()
        .get(support::links::link_url(&gw, &link))
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 200);
    let got = got.bytes().await.unwrap();
    assert_eq!(got.len(), source.len());
    assert!(
        got == source.as_slice(),
        "the download is the uploaded member"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_record_is_quarantined() {
    let Some(tuspy) = Tuspy::require() else {
        return;
    };
    let gw = gateway("");
    let dir = work();

    // (a1) The manifest is from before the drop, so the member's size, SHA-256 and record
    // count all differ. tuspy declares Upload-Length at creation, and the contract refuses
    // a length that differs from the manifest's before anything is stored.
    let mut batch = Batch::synthetic(dir.path(), SEED, COUNTS);
    let before = batch.manifest();
    let dropped = batch.drop_record("Observation.ndjson", 1234);
    let (id, _) = open_batch(&gw, &before.to_json(), "bulk-export-dropped").await;
    upload_refused(
        &tuspy,
        &gw,
        &batch,
        &id,
        "Observation.ndjson",
        (422, "batch.member_size"),
    );

    // The same member with the length deferred (tus creation-defer-length) passes creation;
    // the seal then finds, in the verdict's order: the size (expected, actual), both
    // SHA-256s (the upload's and the one re-computed over the stored data), the record
    // count, and the manifest's stated total bytes. Nothing else: the member count holds.
    let mut uploads = Vec::new();
    for name in ["Patient.ndjson", "Encounter.ndjson"] {
        uploads.push(upload_ok(&tuspy, &gw, &batch, &id, name));
    }
    let obs = &batch.member("Observation.ndjson").bytes;
    uploads.push(deferred_upload(&gw, &id, "Observation.ndjson", obs).await);
    let (doc, report, _) = seal_and_judge(&gw, &id).await;
    assert_quarantined(
        &gw,
        &id,
        &doc,
        &report,
        &[
            "member.size_mismatch",
            "member.sha256_mismatch",
            "member.sha256_mismatch",
            "ndjson.record_count_mismatch",
            "batch.total_bytes_mismatch",
        ],
        &uploads,
    )
    .await;
    let f = &report["findings"];
    let listed_size = before.members[2].size;
    assert_eq!(f[0]["member"], "Observation.ndjson");
    assert_eq!(
        (f[0]["expected"].as_u64(), f[0]["actual"].as_u64()),
        (Some(listed_size), Some(listed_size - dropped as u64))
    );
    assert_eq!(
        (f[3]["expected"].as_u64(), f[3]["actual"].as_u64()),
        (Some(5000), Some(4999))
    );
    assert_eq!(
        f[3]["message"],
        "Observation.ndjson: 4999 records, manifest says 5000"
    );
    let messages: Vec<&str> = [1, 2]
        .iter()
        .map(|i| f[*i]["message"].as_str().unwrap())
        .collect();
    assert_eq!(
        messages,
        [
            "Observation.ndjson: sha256 mismatch (upload)",
            "Observation.ndjson: sha256 mismatch (stored data)"
        ]
    );
    assert_eq!(f[4]["expected"].as_u64(), Some(before.total_bytes()));

    // (a2) A manifest whose size and SHA-256 are those of the bytes sent but whose record
    // count is from before the drop (an exporter counting before it wrote): exactly one
    // finding.
    let mut stale_count = batch.manifest();
    stale_count.member_mut("Observation.ndjson").records = 5000;
    let (id, _) = open_batch(&gw, &stale_count.to_json(), "bulk-export-count").await;
    let mut uploads = Vec::new();
    for m in &batch.members {
        uploads.push(upload_ok(&tuspy, &gw, &batch, &id, &m.name));
    }
    let (doc, report, _) = seal_and_judge(&gw, &id).await;
    assert_quarantined(
        &gw,
        &id,
        &doc,
        &report,
        &["ndjson.record_count_mismatch"],
        &uploads,
    )
    .await;
    assert_eq!(report["findings"][0]["member"], "Observation.ndjson");
    assert_eq!(report["findings"][0]["expected"], 5000);
    assert_eq!(report["findings"][0]["actual"], 4999);
}

/// A tus upload with `Upload-Defer-Length: 1` naming `batch` and `member`, its length
/// declared with the first PATCH, in 1 MiB PATCHes; returns the upload id.
async fn deferred_upload(gw: &Gateway, batch: &str, member: &str, bytes: &[u8]) -> String {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let c = gw.client();
    let r = c
        .post(gw.url("/files/"))
        .bearer_auth(UPLOADER_TOKEN)
        .header("tus-resumable", "1.0.0")
        .header("upload-defer-length", "1")
        .header(
            "upload-metadata",
            format!(
                "filename {},batch {},member {}",
                b64(member),
                b64(batch),
                b64(member)
            ),
        )
        .send()
        .await
        .unwrap();
    let status = r.status();
    let location = r
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(
        status,
        201,
        "deferred creation: {}",
        r.text().await.unwrap()
    );
    let url = gw.url(&location.unwrap());
    let mut offset = 0usize;
    while offset < bytes.len() {
        let end = (offset + CHUNK as usize).min(bytes.len());
        let mut req = c
            .patch(&url)
            .bearer_auth(UPLOADER_TOKEN)
            .header("tus-resumable", "1.0.0")
            .header("upload-offset", offset.to_string())
            .header("content-type", "application/offset+octet-stream");
        if offset == 0 {
            req = req.header("upload-length", bytes.len().to_string());
        }
        let r = req.body(bytes[offset..end].to_vec()).send().await.unwrap();
        assert_eq!(
            r.status(),
            204,
            "PATCH at {offset}: {}",
            r.text().await.unwrap()
        );
        offset = end;
    }
    url.rsplit('/').next().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_member_is_quarantined() {
    let Some(tuspy) = Tuspy::require() else {
        return;
    };
    let gw = gateway("");
    let dir = work();
    let mut batch = Batch::synthetic(dir.path(), SEED, COUNTS);
    let manifest = batch.manifest();
    let omitted = batch.omit("Encounter.ndjson");
    let (id, _) = open_batch(&gw, &manifest.to_json(), "bulk-export-missing").await;
    let mut uploads = Vec::new();
    for m in &batch.members {
        uploads.push(upload_ok(&tuspy, &gw, &batch, &id, &m.name));
    }
    let (doc, report, _) = seal_and_judge(&gw, &id).await;
    // The manifest states its totals, so the missing member also makes both totals differ.
    assert_quarantined(
        &gw,
        &id,
        &doc,
        &report,
        &[
            "member.missing",
            "batch.total_members_mismatch",
            "batch.total_bytes_mismatch",
        ],
        &uploads,
    )
    .await;
    // Sealed: the missing member cannot be added now.
    std::fs::write(batch.path("Encounter.ndjson"), &omitted.bytes).unwrap();
    upload_refused(
        &tuspy,
        &gw,
        &batch,
        &id,
        "Encounter.ndjson",
        (409, "batch.not_open"),
    );
    let f = &report["findings"];
    assert_eq!(f[0]["member"], "Encounter.ndjson");
    assert_eq!(f[0]["message"], "Encounter.ndjson: listed, never uploaded");
    assert_eq!(
        (f[1]["expected"].as_u64(), f[1]["actual"].as_u64()),
        (Some(3), Some(2))
    );
    assert!(f[1]["member"].is_null() && f[2]["member"].is_null());
    assert_eq!(
        (f[2]["expected"].as_u64(), f[2]["actual"].as_u64()),
        (
            Some(manifest.total_bytes()),
            Some(manifest.total_bytes() - omitted.bytes.len() as u64)
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unlisted_member_is_refused_at_creation() {
    // A name the manifest does not list never becomes a member: the tus creation is
    // refused (422 batch.member_not_listed) and nothing is stored. So the verdict's
    // `member.unlisted` finding cannot arise through tus; it is covered by the verdict's
    // own unit tests. Here the batch, without the extra file, is then released.
    let Some(tuspy) = Tuspy::require() else {
        return;
    };
    let gw = gateway("");
    let dir = work();
    let mut batch = Batch::synthetic(dir.path(), SEED, [300, 500, 800]);
    let manifest = batch.manifest();
    batch.add_extra(
        "Condition.ndjson",
        "Condition",
        b"{\"resourceType\":\"Condition\",\"id\":\"c1\"}\n".to_vec(),
    );
    let (id, _) = open_batch(&gw, &manifest.to_json(), "bulk-export-extra").await;
    upload_refused(
        &tuspy,
        &gw,
        &batch,
        &id,
        "Condition.ndjson",
        (422, "batch.member_not_listed"),
    );
    // Names are looked up exactly: another case is another (unlisted) name.
    std::fs::copy(batch.path("Patient.ndjson"), batch.path("patient.ndjson")).unwrap();
    upload_refused(
        &tuspy,
        &gw,
        &batch,
        &id,
        "patient.ndjson",
        (422, "batch.member_not_listed"),
    );
    // Only one of the two pairs: refused.
    let r = gw
        .client()
        .post(gw.url("/files/"))
        .bearer_auth(UPLOADER_TOKEN)
        .header("tus-resumable", "1.0.0")
        .header("upload-length", "10")
        .header(
            "upload-metadata",
            format!(
                "batch {}",
                base64::engine::general_purpose::STANDARD.encode(&id)
            ),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let j: Value = r.json().await.unwrap();
    assert_eq!(j["code"], "batch.member_metadata");
    // An unknown batch.
    upload_refused(
        &tuspy,
        &gw,
        &batch,
        "b-nosuchbatch",
        "Patient.ndjson",
        (404, "batch.not_found"),
    );
    // Another uploader's batch answers as a missing one.
    let r = tokio::task::block_in_place(|| {
        tuspy.upload(
            &gw.url("/files/"),
            &gw.ca_path(),
            LAB_TOKEN,
            &batch.path("Patient.ndjson"),
            CHUNK,
            &[("batch", &id), ("member", "Patient.ndjson")],
        )
    });
    match r {
        Outcome::Refused { status, body } => {
            assert_eq!(status, 404, "{body}");
            assert!(body.contains("batch.not_found"), "{body}");
        }
        other => panic!("lab uploaded into clinic's batch: {other:?}"),
    }
    let a = get(&gw, &format!("/v1/batches/{id}"), UPLOADER_TOKEN).await;
    assert_eq!(a.json()["state"], "open");

    let mut uploads = Vec::new();
    for name in ["Patient.ndjson", "Encounter.ndjson", "Observation.ndjson"] {
        uploads.push(upload_ok(&tuspy, &gw, &batch, &id, name));
    }
    let (doc, report, _) = seal_and_judge(&gw, &id).await;
    assert_eq!(doc["state"], "released", "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_byte_flipped_at_rest_is_quarantined() {
    let Some(tuspy) = Tuspy::require() else {
        return;
    };
    let gw = gateway("");
    let dir = work();
    let batch = Batch::synthetic(dir.path(), SEED, COUNTS);
    let (id, _) = open_batch(&gw, &batch.manifest().to_json(), "bulk-export-flip").await;
    let mut uploads = Vec::new();
    for m in &batch.members {
        uploads.push(upload_ok(&tuspy, &gw, &batch, &id, &m.name));
    }
    // One ciphertext byte in the middle of the Observation blob (past the 108-byte header,
    // inside a sealed segment): the upload's own SHA-256, taken as the bytes arrived, still
    // matches; reading the stored data back fails its authentication.
    let blob = data_blob(&gw, &uploads[2]);
    let mut stored = std::fs::read(&blob).unwrap_or_else(|e| panic!("{}: {e}", blob.display()));
    let at = stored.len() / 2;
    assert!(at > 108);
    stored[at] ^= 0x01;
    std::fs::write(&blob, &stored).unwrap();

    let (doc, report, _) = seal_and_judge(&gw, &id).await;
    // The stored data fails its at-rest authentication: the member is reported unreadable,
    // once; the checks of the stored bytes (their SHA-256, the NDJSON lines) are not
    // reported on top, and the upload's own SHA-256 still matches, so nothing else.
    assert_quarantined(&gw, &id, &doc, &report, &["member.unreadable"], &uploads).await;
    let f = &report["findings"];
    assert_eq!(f[0]["member"], "Observation.ndjson");
    assert_eq!(
        f[0]["message"],
        "Observation.ndjson: stored data failed its integrity check and cannot be read back"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_resource_type_is_quarantined_and_four_eyes_release_it() {
    let Some(tuspy) = Tuspy::require() else {
        return;
    };
    let mut gw = gateway("[batches]\nfour_eyes = true\n");
    let dir = work();
    let mut batch = Batch::synthetic(dir.path(), SEED, COUNTS);
    // Line 42 of Encounter.ndjson claims to be a Patient; the manifest is taken over the
    // mutated bytes, so size, digests and the record count all hold.
    batch.wrong_resource_type("Encounter.ndjson", 41, "Patient");
    let (id, _) = open_batch(&gw, &batch.manifest().to_json(), "bulk-export-type").await;
    let mut uploads = Vec::new();
    for m in &batch.members {
        uploads.push(upload_ok(&tuspy, &gw, &batch, &id, &m.name));
    }
    let (doc, report, report_answer) = seal_and_judge(&gw, &id).await;
    assert_quarantined(
        &gw,
        &id,
        &doc,
        &report,
        &["ndjson.wrong_resource_type"],
        &uploads,
    )
    .await;
    let f = &report["findings"][0];
    assert_eq!(f["member"], "Encounter.ndjson");
    assert_eq!(f["lines"], json!([42]));
    assert_eq!(f["actual"], 1);
    // The report never quotes record content.
    let text = String::from_utf8(
        get(&gw, &format!("/v1/batches/{id}/report"), AUDITOR_TOKEN)
            .await
            .body,
    )
    .unwrap();
    assert!(
        !text.contains("enc-000042") && !text.contains("Patient/"),
        "{text}"
    );

    // Who may release, and with what.
    let a = decide(&gw, UPLOADER_TOKEN, &id, "release", "mine").await;
    assert_eq!(a.refusal(), (403, "auth.missing_role".into()));
    let a = post(
        &gw,
        &format!("/v1/batches/{id}/release"),
        AUDITOR_TOKEN,
        Some(b"{}".to_vec()),
    )
    .await;
    assert_eq!(a.refusal(), (400, "batch.reason_required".into()));
    // Four eyes: one approval is recorded, the batch stays quarantined.
    let a = decide(
        &gw,
        AUDITOR_TOKEN,
        &id,
        "release",
        "line 42 is a known exporter bug",
    )
    .await;
    assert_eq!(a.status, 202, "{}", a.json());
    assert_eq!(a.json()["state"], "quarantined");
    assert_eq!(a.json()["approvals"].as_array().map(Vec::len), Some(1));
    assert_eq!(a.json()["approvals"][0]["by"], "auditor-1");
    let (s, _) = support::links::register(
        &gw,
        json!({"upload": uploads[1], "file_name": "Encounter.ndjson"}),
    )
    .await;
    assert_eq!(s, 409, "one approval releases nothing");
    // The same auditor again changes nothing.
    let a = decide(&gw, AUDITOR_TOKEN, &id, "release", "again").await;
    assert_eq!(a.refusal(), (409, "batch.already_approved".into()));
    let doc = get(&gw, &format!("/v1/batches/{id}"), AUDITOR_TOKEN)
        .await
        .json();
    assert_eq!(doc["state"], "quarantined");
    assert_eq!(doc["approvals"].as_array().map(Vec::len), Some(1));
    // A second auditor releases it.
    let a = decide(
        &gw,
        AUDITOR2_TOKEN,
        &id,
        "release",
        "agreed, partner informed",
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.json());
    assert_eq!(a.json()["state"], "released");
    assert_eq!(a.json()["released"]["by"], "auditor-2");
    let a = decide(&gw, AUDITOR_TOKEN, &id, "release", "late").await;
    assert_eq!(a.refusal(), (409, "batch.not_quarantined".into()));
    let (s, art) = support::links::register(
        &gw,
        json!({"upload": uploads[1], "file_name": "Encounter.ndjson"}),
    )
    .await;
    assert_eq!(s, 201, "released: the member can be registered: {art}");

    let status = gw.stop();
    assert!(status.success(), "{status:?}");
    let audit = export_audit(&gw.config_path);
    let mut expected = vec![("batch.opened", "clinic")];
    expected.extend([("batch.member_added", "clinic"); 3]);
    // Each change a principal asks for is audited as an intent before it is made.
    expected.extend([
        ("batch.change_requested", "clinic"),
        ("batch.sealed", "clinic"),
        ("batch.verdict", "system"),
        ("batch.quarantined", "system"),
        ("batch.change_requested", "auditor-1"),
        ("batch.approval_recorded", "auditor-1"),
        ("batch.change_requested", "auditor-2"),
        ("batch.released", "auditor-2"),
    ]);
    assert_batch_audit(&audit, &id, &expected);
    let verdict = actions(&audit, "batch.verdict");
    assert_eq!(verdict[0]["details"]["verdict"], "quarantined");
    assert_eq!(
        verdict[0]["details"]["report_sha256"],
        fhir_sha256(&report_answer.body)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_destroys_the_members_stops_links_and_keeps_the_audit_trail() {
    let Some(tuspy) = Tuspy::require() else {
        return;
    };
    let mut gw = gateway("");
    let dir = work();
    let batch = Batch::synthetic(dir.path(), SEED, [300, 600, 1000]);
    let (id, _) = open_batch(&gw, &batch.manifest().to_json(), "bulk-export-purge").await;
    let mut uploads = Vec::new();
    for m in &batch.members {
        uploads.push(upload_ok(&tuspy, &gw, &batch, &id, &m.name));
    }
    let (doc, _, report_before) = seal_and_judge(&gw, &id).await;
    assert_eq!(doc["state"], "released");
    let (s, art) = support::links::register(
        &gw,
        json!({"upload": uploads[0], "file_name": "Patient.ndjson"}),
    )
    .await;
    assert_eq!(s, 201, "{art}");
    let link = issue(
        &gw,
        json!({"artifact": art["artifact"], "partner": "payer-a"}),
    )
    .await;
    let url = support::links::link_url(&gw, &link);
    assert_eq!(gw.client().get(&url).send().await.unwrap().status(), 200);
    for u in &uploads {
        assert!(data_blob(&gw, u).exists(), "blob of {u} before purge");
    }

    let a = decide(&gw, UPLOADER_TOKEN, &id, "purge", "done").await;
    assert_eq!(a.refusal(), (403, "auth.missing_role".into()));
    let a = decide(
        &gw,
        AUDITOR_TOKEN,
        &id,
        "purge",
        "partner confirmed receipt",
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.json());
    assert_eq!(a.json()["state"], "purged");
    assert_eq!(a.json()["purged"]["by"], "auditor-1");
    for u in &uploads {
        assert!(!data_blob(&gw, u).exists(), "blob of {u} after purge");
    }
    // The link issued before stops working; no new one can be issued.
    let r = gw.client().get(&url).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let j: Value = r.json().await.unwrap_or(Value::Null);
    assert_eq!(j["code"], "link.refused");
    let (s, _) = issue_raw(
        &gw,
        json!({"artifact": art["artifact"], "partner": "payer-b"}),
    )
    .await;
    assert_ne!(s, 201, "no link for a purged batch's member");
    // The record, documents and report stay.
    let a = get(&gw, &format!("/v1/batches/{id}/report"), AUDITOR_TOKEN).await;
    assert_eq!(
        String::from_utf8_lossy(&a.body),
        String::from_utf8_lossy(&report_before.body),
        "the report is kept"
    );
    let a = get(&gw, &format!("/v1/batches/{id}/manifest"), AUDITOR_TOKEN).await;
    assert_eq!(
        String::from_utf8_lossy(&a.body),
        batch.manifest().to_json(),
        "the manifest is kept"
    );
    let a = decide(&gw, AUDITOR_TOKEN, &id, "purge", "twice").await;
    assert_eq!(a.status / 100, 4, "a purged batch is not purged again");

    // The audit trail verifies, and tells the story.
    let status = gw.stop();
    assert!(status.success(), "{status:?}");
    let out = cli(&gw.config_path, &["audit", "verify"]);
    eprintln!("{out}");
    let audit = export_audit(&gw.config_path);
    assert_batch_audit(
        &audit,
        &id,
        &[
            ("batch.opened", "clinic"),
            ("batch.member_added", "clinic"),
            ("batch.member_added", "clinic"),
            ("batch.member_added", "clinic"),
            ("batch.change_requested", "clinic"),
            ("batch.sealed", "clinic"),
            ("batch.verdict", "system"),
            ("batch.released", "system"),
            ("batch.change_requested", "auditor-1"),
            ("batch.purged", "auditor-1"),
        ],
    );
    let purged = actions(&audit, "batch.purged");
    assert_eq!(purged[0]["details"]["reason"], "partner confirmed receipt");
    // The refused download is audited with the batch as the reason.
    let rejected = actions(&audit, "download.rejected");
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert_eq!(rejected[0]["details"]["reason"], "batch_not_released");
}

/// The audit trail's `batch.*` entries, in order, are exactly `expected` (action, actor
/// name or `system`), each naming the batch as its subject.
fn assert_batch_audit(audit: &[Value], id: &str, expected: &[(&str, &str)]) {
    let got: Vec<(&str, &str)> = audit
        .iter()
        .filter(|e| e["action"].as_str().unwrap().starts_with("batch."))
        .map(|e| {
            assert_eq!(e["subject"], id, "{e}");
            let actor = &e["actor"];
            let who = actor["name"].as_str().or(actor["kind"].as_str()).unwrap();
            (e["action"].as_str().unwrap(), who)
        })
        .collect();
    assert_eq!(got, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_documents_are_refused_and_nothing_is_created() {
    let gw = gateway("");
    let dir = work();
    let batch = Batch::synthetic(dir.path(), SEED, [10, 10, 10]);
    let mut untotalled: Manifest = batch.manifest();
    untotalled.totals = false;
    let good = untotalled.to_json();
    let prov = provenance_json("job-bad");
    let first_name = "\"name\": \"Patient.ndjson\"";
    assert!(good.contains(first_name));

    let with_prov = |manifest: &[u8]| open_body(manifest, Some(prov.as_bytes()));
    let unknown = good.replacen(
        first_name,
        &format!("{first_name},\n      \"checksum\": \"x\""),
        1,
    );
    refused(
        &gw,
        "unknown field",
        with_prov(unknown.as_bytes()),
        (422, "batch.invalid_manifest"),
        Some("/members/0/checksum"),
        "unknown_field",
    )
    .await;
    let path = good.replacen(first_name, "\"name\": \"../x\"", 1);
    refused(
        &gw,
        "a path in a name",
        with_prov(path.as_bytes()),
        (422, "batch.invalid_manifest"),
        Some("/members/0/name"),
        "character",
    )
    .await;
    let size = format!("\"size\": {}", untotalled.members[0].size);
    let negative = good.replacen(&size, "\"size\": -1", 1);
    refused(
        &gw,
        "negative size",
        with_prov(negative.as_bytes()),
        (422, "batch.invalid_manifest"),
        Some("/members/0/size"),
        "negative",
    )
    .await;
    // One byte of a member name is not UTF-8: the body is not JSON text (RFC 8259 §8.1),
    // so it is refused before either document is taken out of it (contract §2).
    let mut not_utf8 = good.clone().into_bytes();
    not_utf8[good.find("Patient.ndjson").unwrap()] = 0xff;
    refused(
        &gw,
        "invalid UTF-8",
        with_prov(&not_utf8),
        (400, "batch.bad_request"),
        None,
        "not_utf8",
    )
    .await;
    let bad_prov = prov.replacen("\"job_id\"", "\"jobid\"", 1);
    refused(
        &gw,
        "bad provenance",
        open_body(good.as_bytes(), Some(bad_prov.as_bytes())),
        (422, "batch.invalid_provenance"),
        Some("/jobid"),
        "unknown_field",
    )
    .await;
    for (what, body) in [
        (
            "another top-level field",
            format!("{{\"manifest\": {good}, \"note\": 1}}"),
        ),
        ("not an object", "[1, 2]".to_owned()),
        ("no manifest", format!("{{\"provenance\": {prov}}}")),
    ] {
        let a = open(&gw, UPLOADER_TOKEN, body.into_bytes()).await;
        assert_eq!(
            a.refusal(),
            (400, "batch.bad_request".into()),
            "{what}: {}",
            a.json()
        );
    }
    // 10 MB of JSON: over the request limit, refused before it is parsed.
    let one = untotalled.members[0].clone();
    let big = Manifest {
        members: (0..20_000_000 / one_len(&one))
            .map(|i| fhir::Listing {
                name: format!("Part{i}.ndjson"),
                ..one.clone()
            })
            .collect(),
        totals: false,
    };
    let body = open_body(big.to_json().as_bytes(), Some(prov.as_bytes()));
    assert!(body.len() >= 10_000_000);
    let a = open(&gw, UPLOADER_TOKEN, body).await;
    assert_eq!(a.status, 413, "{}", a.json());

    assert!(
        listed(&gw, ADMIN_TOKEN).await.is_empty(),
        "nothing was created"
    );
    // The same documents, well formed, open a batch (so the refusals above were about
    // what each case changed).
    let a = open(
        &gw,
        UPLOADER_TOKEN,
        open_body(good.as_bytes(), Some(prov.as_bytes())),
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.json());
    assert_eq!(listed(&gw, ADMIN_TOKEN).await.len(), 1);
}

/// Opens a batch with `body` and asserts the refusal: status and code, and for a document
/// error the JSON Pointer (`field`) and the manifest-v1 `reason`; never a quoted value.
async fn refused(
    gw: &Gateway,
    what: &str,
    body: Vec<u8>,
    expect: (u16, &str),
    field: Option<&str>,
    reason: &str,
) {
    let a = open(gw, UPLOADER_TOKEN, body).await;
    let j = a.json();
    assert_eq!((a.status, a.code().as_str()), expect, "{what}: {j}");
    assert_eq!(j["field"].as_str(), field, "{what}: {j}");
    assert_eq!(j["reason"], reason, "{what}: {j}");
    let text = String::from_utf8_lossy(&a.body);
    assert!(
        !text.contains("../x") && !text.contains("checksum\": \"x"),
        "{what}: a value is quoted: {text}"
    );
}

/// The length of one member's JSON in a manifest.
fn one_len(m: &fhir::Listing) -> usize {
    Manifest {
        members: vec![m.clone()],
        totals: false,
    }
    .to_json()
    .len()
}
