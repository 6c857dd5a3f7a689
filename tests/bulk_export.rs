#![allow(clippy::unwrap_used, clippy::expect_used)]
//! FHIR Bulk Data `$export` end to end (`proto/bulk-v1.md`, decision 0006), black-box: the
//! real binary over TLS, SMART Backend Services clients with keys generated in the test,
//! a batch of synthetic FHIR NDJSON opened, uploaded (creation-with-upload naming `batch`
//! and `member`), published for a client, sealed and released; the status poll's answers
//! (202 in progress, 429 too fast, 200 with the manifest, an `OperationOutcome` when the
//! batch is quarantined), the manifest's files downloaded through their signed links and
//! by `sallyport client download --manifest`, another client's 404, cancel, every kick-off
//! refusal, one job across two instances sharing Redis, and the audit trail (each entry
//! checked against the audit event schema by `support::links::export_audit`).
//!
//! The Redis test needs Redis on 127.0.0.1:6379 (unique key prefix); it is skipped with a
//! notice when Redis is unreachable, except under `CI`, where that fails.

mod support;

use std::time::Duration;

use base64::Engine as _;
use reqwest::Method;
use serde_json::{Value, json};

use support::batches::{Answer, open, post, seal, wait_verdict};
use support::data::sha256_hex;
use support::fhir::{Batch, open_body, provenance_json};
use support::links::{PUBLISHER_TOKEN, actions, publisher_toml, stop_and_export_audit};
use support::redis::Prefix;
use support::smart::SmartClient;
use support::{Gateway, UPLOADER_TOKEN};

const PAYER: &str = "payer-a-bulk";
const HIE: &str = "hie-b-bulk";
const FHIR_JSON: &str = "application/fhir+json";
const COUNTS: [usize; 3] = [20, 35, 50];

struct Fixture {
    gw: Gateway,
    payer: SmartClient,
    hie: SmartClient,
    work: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The config of a gateway listening on `port` whose public base URL names `base_port`
/// (a balancer's, with several instances): two SMART clients (the payer may read every
/// type; the HIE only Patient), a publisher, a 1 s polling interval, and `extra` (which
/// starts in `[server]`).
fn config(
    port: u16,
    base_port: u16,
    payer: &SmartClient,
    hie: &SmartClient,
    extra: &str,
) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\n{extra}\n\
         [bulk]\nretry_after = \"1s\"\nlink_ttl = \"5m\"\n\
         [smart]\npublic_base_url = \"https://localhost:{base_port}\"\n{}{}{}",
        payer.toml(&["system/*.read"], "payer-a"),
        hie.toml(&["system/Patient.read"], "hie-b"),
        publisher_toml(),
    )
}

/// One gateway on a known port (its public base URL names it).
fn start() -> Fixture {
    let (payer, hie) = (SmartClient::new(PAYER), SmartClient::new(HIE));
    let port = free_port();
    Fixture {
        gw: Gateway::start(&config(port, port, &payer, &hie, "")),
        payer,
        hie,
        work: tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap(),
    }
}

/// `method url` with an optional bearer token and headers; the whole answer.
async fn send(
    gw: &Gateway,
    method: Method,
    url: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
) -> Answer {
    let mut req = gw.client().request(method, url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    Answer {
        status: resp.status().as_u16(),
        headers: resp.headers().clone(),
        body: resp.bytes().await.unwrap().to_vec(),
    }
}

const KICKOFF_HEADERS: [(&str, &str); 2] = [("accept", FHIR_JSON), ("prefer", "respond-async")];

/// A kick-off with the usual headers; asserts 202 and returns the status URL.
async fn kickoff(gw: &Gateway, path_and_query: &str, token: &str) -> String {
    let a = send(
        gw,
        Method::GET,
        &gw.url(path_and_query),
        Some(token),
        &KICKOFF_HEADERS,
    )
    .await;
    assert_eq!(
        a.status,
        202,
        "kick-off {path_and_query}: {}",
        String::from_utf8_lossy(&a.body)
    );
    let url = a.header("content-location").unwrap().to_owned();
    assert!(
        url.starts_with(&gw.url("/fhir/bulk/")),
        "Content-Location {url}"
    );
    url
}

async fn poll(gw: &Gateway, url: &str, token: &str) -> Answer {
    send(gw, Method::GET, url, Some(token), &[]).await
}

/// Asserts an `OperationOutcome` answer with `status`, issue type `issue` and `code`.
fn assert_outcome(a: &Answer, status: u16, issue: &str, code: &str) {
    let j = a.json();
    assert_eq!(a.status, status, "{j}");
    assert_eq!(a.header("content-type"), Some(FHIR_JSON), "{j}");
    assert_eq!(j["resourceType"], "OperationOutcome", "{j}");
    assert_eq!(j["issue"][0]["severity"], "error", "{j}");
    assert_eq!(j["issue"][0]["code"], issue, "{j}");
    assert_eq!(j["issue"][0]["details"]["coding"][0]["code"], code, "{j}");
    assert!(j.get("output").is_none(), "{j}");
}

/// Opens a batch of `batch`'s manifest (with provenance) as the clinic; its id.
async fn open_batch(gw: &Gateway, manifest: &str) -> String {
    let provenance = provenance_json("bulk-job-1");
    let a = open(
        gw,
        UPLOADER_TOKEN,
        open_body(manifest.as_bytes(), Some(provenance.as_bytes())),
    )
    .await;
    assert_eq!(a.status, 201, "open: {}", String::from_utf8_lossy(&a.body));
    a.json()["id"].as_str().unwrap().to_owned()
}

/// Uploads `bytes` as member `name` of batch `id` in one creation-with-upload request.
async fn upload_member(gw: &Gateway, id: &str, name: &str, bytes: &[u8]) {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let resp = gw
        .client()
        .post(gw.url("/files/"))
        .bearer_auth(UPLOADER_TOKEN)
        .header("tus-resumable", "1.0.0")
        .header("upload-length", bytes.len().to_string())
        .header(
            "upload-metadata",
            format!("batch {},member {}", b64(id), b64(name)),
        )
        .header("content-type", "application/offset+octet-stream")
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    assert_eq!(status, 201, "{name}: {}", resp.text().await.unwrap());
}

/// `POST /v1/exports` as the publisher.
async fn publish(gw: &Gateway, body: Value) -> Answer {
    post(
        gw,
        "/v1/exports",
        PUBLISHER_TOKEN,
        Some(serde_json::to_vec(&body).unwrap()),
    )
    .await
}

/// Waits out the polling interval.
async fn wait_retry(a: &Answer) {
    let secs: u64 = a.header("retry-after").unwrap().parse().unwrap();
    tokio::time::sleep(Duration::from_secs(secs)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_published_batch_is_exported_to_its_client_only() {
    let f = start();
    let gw = &f.gw;
    let batch = Batch::synthetic(f.work.path(), 20261206, COUNTS);
    let token = f.payer.token(gw, "system/*.read").await;

    // Kick-off before anything is published: the job waits.
    let status_url = kickoff(
        gw,
        "/fhir/$export?_outputFormat=application%2Ffhir%2Bndjson",
        &token,
    )
    .await;
    let a = poll(gw, &status_url, &token).await;
    assert_eq!(a.status, 202, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.header("retry-after"), Some("1"));
    assert_eq!(
        a.header("x-progress"),
        Some("waiting for the export to be published")
    );
    // Polled again at once: 429 with Retry-After, as an OperationOutcome.
    let fast = poll(gw, &status_url, &token).await;
    assert_outcome(&fast, 429, "throttled", "bulk.too_fast");
    assert_eq!(fast.header("retry-after"), Some("1"));

    // Another client never sees the job: the same 404 as an unknown job, for GET and
    // DELETE.
    let other = f.hie.token(gw, "system/Patient.read").await;
    assert_outcome(
        &poll(gw, &status_url, &other).await,
        404,
        "not-found",
        "bulk.job_not_found",
    );
    let del = send(gw, Method::DELETE, &status_url, Some(&other), &[]).await;
    assert_outcome(&del, 404, "not-found", "bulk.job_not_found");
    let unknown = gw.url("/fhir/bulk/67rq0xe32xxh21dav1b2qx1ch3");
    assert_outcome(
        &poll(gw, &unknown, &token).await,
        404,
        "not-found",
        "bulk.job_not_found",
    );

    // The clinic opens a batch, the publisher publishes it for the payer while open.
    let id = open_batch(gw, &batch.manifest().to_json()).await;
    let p = publish(
        gw,
        json!({"batch": id, "client_id": PAYER, "level": "system"}),
    )
    .await;
    assert_eq!(p.status, 201, "{}", String::from_utf8_lossy(&p.body));
    assert_eq!(p.json()["batch"], id.as_str());
    assert_eq!(p.json()["level"], "system");
    wait_retry(&a).await;
    let a = poll(gw, &status_url, &token).await;
    assert_eq!(a.status, 202, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.header("x-progress"), Some("awaiting files"));

    for m in &batch.members {
        upload_member(gw, &id, &m.name, &m.bytes).await;
    }
    let s = seal(gw, UPLOADER_TOKEN, &id).await;
    assert_eq!(s.status, 202, "{}", String::from_utf8_lossy(&s.body));
    let doc = wait_verdict(gw, UPLOADER_TOKEN, &id, Duration::from_secs(60)).await;
    assert_eq!(doc["state"], "released", "{doc}");

    // Complete: the manifest, every file's type, count, SHA-256 and size as uploaded.
    wait_retry(&a).await;
    let done = poll(gw, &status_url, &token).await;
    assert_eq!(done.status, 200, "{}", String::from_utf8_lossy(&done.body));
    assert_eq!(done.header("content-type"), Some("application/json"));
    let m = done.json();
    assert_eq!(m["requiresAccessToken"], false);
    assert_eq!(
        m["request"],
        gw.url("/fhir/$export?_outputFormat=application%2Ffhir%2Bndjson")
    );
    assert_eq!(m["error"], json!([]));
    assert!(m["transactionTime"].as_str().unwrap().ends_with('Z'), "{m}");
    let ext = &m["extension"][0];
    assert_eq!(
        ext["url"],
        "https://sallyport.dev/fhir/StructureDefinition/batch-provenance"
    );
    assert_eq!(ext["extension"][0]["valueString"], id.as_str());
    assert_eq!(
        ext["extension"][1]["valueString"],
        sha256_hex(batch.manifest().to_json().as_bytes())
    );
    assert_eq!(
        ext["extension"][2]["valueString"],
        sha256_hex(provenance_json("bulk-job-1").as_bytes())
    );
    let output = m["output"].as_array().unwrap();
    assert_eq!(output.len(), batch.members.len(), "{m}");
    for (o, member) in output.iter().zip(&batch.members) {
        assert_eq!(o["type"], member.resource_type.as_str());
        assert_eq!(o["count"], member.records());
        assert_eq!(
            o["count"],
            COUNTS[batch
                .members
                .iter()
                .position(|x| x.name == member.name)
                .unwrap()] as u64
        );
        assert_eq!(
            o["extension"][0],
            json!({"url": "https://sallyport.dev/fhir/StructureDefinition/file-sha256",
                   "valueString": sha256_hex(&member.bytes)})
        );
        assert_eq!(
            o["extension"][1],
            json!({"url": "https://sallyport.dev/fhir/StructureDefinition/file-size",
                   "valueInteger": member.bytes.len()})
        );
        // Each file through its signed link: the uploaded bytes, no token needed.
        let url = o["url"].as_str().unwrap();
        assert!(url.starts_with(&gw.url("/d/")), "{url}");
        let got = send(gw, Method::GET, url, None, &[]).await;
        assert_eq!(got.status, 200, "{url}");
        assert_eq!(got.body, member.bytes, "{}", member.name);
    }

    // The shipped client verifies the same manifest (sha256, size, count) end to end.
    let manifest_file = f.work.path().join("manifest.json");
    std::fs::write(&manifest_file, &done.body).unwrap();
    let out_dir = f.work.path().join("out");
    let run = support::sallyport()
        .args(["client", "download", "--json", "--manifest"])
        .arg(&manifest_file)
        .arg("--out")
        .arg(&out_dir)
        .arg("--cacert")
        .arg(gw.ca_path())
        .output()
        .unwrap();
    assert!(run.status.success(), "client download: {run:?}");
    let mut got: Vec<(u64, String)> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| {
            let bytes = std::fs::read(e.unwrap().path()).unwrap();
            (bytes.len() as u64, sha256_hex(&bytes))
        })
        .collect();
    let mut want: Vec<(u64, String)> = batch
        .members
        .iter()
        .map(|m| (m.bytes.len() as u64, sha256_hex(&m.bytes)))
        .collect();
    got.sort();
    want.sort();
    assert_eq!(got, want);

    // Re-polling (after the interval) gives fresh links of a new grant.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let again = poll(gw, &status_url, &token).await;
    assert_eq!(again.status, 200);
    assert_ne!(again.json()["output"][0]["url"], m["output"][0]["url"]);

    // Cancel: 202, then the job is gone.
    let c = send(gw, Method::DELETE, &status_url, Some(&token), &[]).await;
    assert_eq!(c.status, 202, "{}", String::from_utf8_lossy(&c.body));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_outcome(
        &poll(gw, &status_url, &token).await,
        404,
        "not-found",
        "bulk.job_not_found",
    );

    // The audit trail: every step, with the client and the batch's purpose of use.
    let job = status_url.rsplit('/').next().unwrap().to_owned();
    let mut gw = f.gw;
    let audit = stop_and_export_audit(&mut gw);
    let published = actions(&audit, "bulk.export_published");
    assert_eq!(published.len(), 1);
    assert_eq!(published[0]["details"]["client_id"], PAYER);
    assert_eq!(published[0]["details"]["purpose_of_use"], "TREAT");
    assert_eq!(published[0]["details"]["batch_state"], "open");
    let kicked = actions(&audit, "bulk.kickoff");
    assert_eq!(kicked.len(), 1);
    assert_eq!(kicked[0]["details"]["job"], job.as_str());
    assert_eq!(kicked[0]["outcome"], "success");
    let polls: Vec<&str> = actions(&audit, "bulk.status")
        .iter()
        .filter(|e| e["details"]["client_id"] == PAYER)
        .map(|e| e["details"]["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        polls,
        [
            "in_progress",
            "too_fast",
            "in_progress",
            "complete",
            "complete"
        ]
    );
    let complete: Vec<_> = actions(&audit, "bulk.status")
        .into_iter()
        .filter(|e| e["details"]["status"] == "complete")
        .collect();
    assert_eq!(complete[0]["details"]["purpose_of_use"], "TREAT");
    assert_eq!(complete[0]["details"]["files"], 3);
    let grant = complete[0]["details"]["grant"].as_str().unwrap();
    // Each file was served once by the test and once by the client, under that grant.
    let served = actions(&audit, "download.served")
        .into_iter()
        .filter(|e| e["details"]["grant"] == grant && e["details"]["status"] == 200)
        .count();
    assert_eq!(served, 6);
    let cancelled = actions(&audit, "bulk.cancelled");
    assert_eq!(cancelled.len(), 1);
    assert_eq!(cancelled[0]["details"]["batch"], id.as_str());
    assert_eq!(cancelled[0]["details"]["purpose_of_use"], "TREAT");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_quarantined_batch_is_an_error_outcome_never_a_manifest() {
    let f = start();
    let gw = &f.gw;
    let batch = Batch::synthetic(f.work.path(), 7, COUNTS);
    let manifest = batch.manifest().to_json();
    let token = f.payer.token(gw, "system/*.read").await;
    let id = open_batch(gw, &manifest).await;
    let p = publish(
        gw,
        json!({"batch": id, "client_id": PAYER, "level": "group", "group": "cohort-7"}),
    )
    .await;
    assert_eq!(p.status, 201, "{}", String::from_utf8_lossy(&p.body));
    let status_url = kickoff(gw, "/fhir/Group/cohort-7/$export", &token).await;
    // A member the manifest lists is never uploaded: quarantined on seal.
    for m in batch
        .members
        .iter()
        .filter(|m| m.name != "Observation.ndjson")
    {
        upload_member(gw, &id, &m.name, &m.bytes).await;
    }
    assert_eq!(seal(gw, UPLOADER_TOKEN, &id).await.status, 202);
    let doc = wait_verdict(gw, UPLOADER_TOKEN, &id, Duration::from_secs(60)).await;
    assert_eq!(doc["state"], "quarantined", "{doc}");

    let failed = poll(gw, &status_url, &token).await;
    assert_outcome(&failed, 422, "processing", "bulk.export_failed");
    // Still failed on the next poll: never a manifest.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let failed = poll(gw, &status_url, &token).await;
    assert_outcome(&failed, 422, "processing", "bulk.export_failed");

    // Publishing it now is refused; so are malformed publications.
    let again = publish(
        gw,
        json!({"batch": id, "client_id": PAYER, "level": "system"}),
    )
    .await;
    assert_eq!(again.refusal(), (409, "bulk.batch_not_publishable".into()));
    let a = publish(
        gw,
        json!({"batch": id, "client_id": "nobody", "level": "system"}),
    )
    .await;
    assert_eq!(a.refusal(), (422, "bulk.unknown_client".into()));
    let a = publish(
        gw,
        json!({"batch": id, "client_id": PAYER, "level": "group"}),
    )
    .await;
    assert_eq!(a.refusal(), (400, "bulk.bad_publication".into()));
    assert_eq!(a.json()["field"], "level");
    let a = publish(
        gw,
        json!({"batch": "7zzzzzzzzzzzzzzzzzzzzzzzzz", "client_id": PAYER, "level": "system"}),
    )
    .await;
    assert_eq!(a.refusal(), (404, "batch.not_found".into()));
    // The uploader is no publisher.
    let a = post(
        gw,
        "/v1/exports",
        UPLOADER_TOKEN,
        Some(
            serde_json::to_vec(&json!({"batch": id, "client_id": PAYER, "level": "system"}))
                .unwrap(),
        ),
    )
    .await;
    assert_eq!(a.refusal(), (403, "auth.missing_role".into()));

    let mut gw = f.gw;
    let audit = stop_and_export_audit(&mut gw);
    let failed: Vec<_> = actions(&audit, "bulk.status")
        .into_iter()
        .filter(|e| e["details"]["status"] == "failed")
        .collect();
    assert_eq!(failed.len(), 2);
    assert_eq!(failed[0]["outcome"], "failure");
    assert_eq!(failed[0]["details"]["batch_state"], "quarantined");
    assert_eq!(failed[0]["details"]["batch"], id.as_str());
    assert!(
        actions(&audit, "bulk.status")
            .iter()
            .all(|e| e["details"]["status"] != "complete")
    );
    assert!(
        actions(&audit, "link.issued").is_empty(),
        "no link was issued"
    );
    assert_eq!(actions(&audit, "bulk.export_published").len(), 1);
}

/// One refused kick-off and what it must be answered.
struct Case<'a> {
    what: &'a str,
    url: String,
    token: Option<&'a str>,
    headers: Vec<(&'a str, &'a str)>,
    status: u16,
    issue: &'a str,
    code: &'a str,
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_kickoffs_get_specific_outcomes_and_create_nothing() {
    let f = start();
    let gw = &f.gw;
    let token = f.payer.token(gw, "system/*.read").await;
    let hie = f.hie.token(gw, "system/Patient.read").await;
    let url = gw.url("/fhir/$export");
    let accept = ("accept", FHIR_JSON);
    let cases = [
        Case {
            what: "no Prefer",
            url: url.clone(),
            token: Some(&token),
            headers: vec![accept],
            status: 400,
            issue: "invalid",
            code: "bulk.prefer_async",
        },
        Case {
            what: "an unsupported _outputFormat",
            url: gw.url("/fhir/$export?_outputFormat=text%2Fcsv"),
            token: Some(&token),
            headers: KICKOFF_HEADERS.to_vec(),
            status: 400,
            issue: "invalid",
            code: "bulk.output_format",
        },
        Case {
            what: "a _type outside the token's scope",
            url: gw.url("/fhir/Patient/$export?_type=Patient,Encounter"),
            token: Some(&hie),
            headers: KICKOFF_HEADERS.to_vec(),
            status: 403,
            issue: "forbidden",
            code: "bulk.scope",
        },
        Case {
            what: "every type with a token for Patient only",
            url: url.clone(),
            token: Some(&hie),
            headers: KICKOFF_HEADERS.to_vec(),
            status: 403,
            issue: "forbidden",
            code: "bulk.scope",
        },
        Case {
            what: "a bad _since",
            url: gw.url("/fhir/$export?_since=yesterday"),
            token: Some(&token),
            headers: KICKOFF_HEADERS.to_vec(),
            status: 400,
            issue: "invalid",
            code: "bulk.since",
        },
        Case {
            what: "a wrong Accept",
            url: url.clone(),
            token: Some(&token),
            headers: vec![("accept", "application/xml"), ("prefer", "respond-async")],
            status: 406,
            issue: "not-supported",
            code: "bulk.accept",
        },
        Case {
            what: "a bad group id",
            url: gw.url("/fhir/Group/a%20b/$export"),
            token: Some(&token),
            headers: KICKOFF_HEADERS.to_vec(),
            status: 400,
            issue: "invalid",
            code: "bulk.group",
        },
        Case {
            what: "no token",
            url: url.clone(),
            token: None,
            headers: KICKOFF_HEADERS.to_vec(),
            status: 401,
            issue: "login",
            code: "auth.missing",
        },
        Case {
            what: "an API token, not a SMART one",
            url: url.clone(),
            token: Some(UPLOADER_TOKEN),
            headers: KICKOFF_HEADERS.to_vec(),
            status: 401,
            issue: "login",
            code: "bulk.token_required",
        },
    ];
    for c in &cases {
        let a = send(gw, Method::GET, &c.url, c.token, &c.headers).await;
        assert!(a.header("content-location").is_none(), "{}", c.what);
        assert_outcome(&a, c.status, c.issue, c.code);
    }
    // Wrong method on a FHIR path: an OperationOutcome too.
    let a = send(gw, Method::POST, &url, Some(&token), &KICKOFF_HEADERS).await;
    assert_outcome(&a, 405, "not-supported", "request.method_not_allowed");
    // And a well-formed one is still accepted: the refusals were not the gateway's state.
    kickoff(gw, "/fhir/Patient/$export?_type=Patient", &hie).await;

    let mut gw = f.gw;
    let audit = stop_and_export_audit(&mut gw);
    let kicked = actions(&audit, "bulk.kickoff");
    let accepted: Vec<_> = kicked
        .iter()
        .filter(|e| e["outcome"] == "success")
        .collect();
    assert_eq!(accepted.len(), 1, "only the last kick-off created a job");
    let refused: Vec<&str> = kicked
        .iter()
        .filter(|e| e["outcome"] == "denied")
        .map(|e| {
            assert!(e["details"].get("job").is_none(), "{e}");
            e["details"]["refused"].as_str().unwrap()
        })
        .collect();
    // The refusals that reached the flow (a token that authenticated as a SMART client).
    assert_eq!(
        refused,
        [
            "prefer_async",
            "output_format",
            "scope",
            "scope",
            "since",
            "accept",
            "group"
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_type_scoped_client_gets_only_the_files_of_its_types() {
    let f = start();
    let gw = &f.gw;
    let batch = Batch::synthetic(f.work.path(), 99, COUNTS);
    // Released before it is published this time.
    let id = open_batch(gw, &batch.manifest().to_json()).await;
    for m in &batch.members {
        upload_member(gw, &id, &m.name, &m.bytes).await;
    }
    assert_eq!(seal(gw, UPLOADER_TOKEN, &id).await.status, 202);
    let doc = wait_verdict(gw, UPLOADER_TOKEN, &id, Duration::from_secs(60)).await;
    assert_eq!(doc["state"], "released", "{doc}");
    let p = publish(
        gw,
        json!({"batch": id, "client_id": HIE, "level": "patient"}),
    )
    .await;
    assert_eq!(p.status, 201, "{}", String::from_utf8_lossy(&p.body));
    assert_eq!(p.json()["level"], "patient");
    assert_eq!(p.json()["group"], Value::Null);

    // The HIE may read Patient only: it names it, and gets the Patient file only.
    let token = f.hie.token(gw, "system/Patient.read").await;
    let status_url = kickoff(gw, "/fhir/Patient/$export?_type=Patient", &token).await;
    let done = poll(gw, &status_url, &token).await;
    assert_eq!(done.status, 200, "{}", String::from_utf8_lossy(&done.body));
    let m = done.json();
    let output = m["output"].as_array().unwrap();
    assert_eq!(output.len(), 1, "{m}");
    let patient = batch.member("Patient.ndjson");
    assert_eq!(output[0]["type"], "Patient");
    assert_eq!(output[0]["count"], patient.records());
    let got = send(
        gw,
        Method::GET,
        output[0]["url"].as_str().unwrap(),
        None,
        &[],
    )
    .await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body, patient.bytes);

    // The payer has no publication at the patient level (the one there is the HIE's): its
    // job waits.
    let payer = f.payer.token(gw, "system/*.read").await;
    let waiting = kickoff(gw, "/fhir/Patient/$export", &payer).await;
    let a = poll(gw, &waiting, &payer).await;
    assert_eq!(a.status, 202, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(
        a.header("x-progress"),
        Some("waiting for the export to be published")
    );
}

/// Two instances sharing Redis behind one public base URL: a job kicked off on one is
/// polled, throttled, completed and cancelled on either (the poll time and the job are in
/// the shared record), and still only for its client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_is_one_job_across_instances_sharing_redis() {
    if !support::redis::available() {
        return;
    }
    let prefix = Prefix::new("bulk-export");
    let tmp = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let (payer, hie) = (SmartClient::new(PAYER), SmartClient::new(HIE));
    let (p1, p2) = (free_port(), free_port());
    // Both share the data directory (the link keys, so tokens and links verify on both, and
    // the blob store) and the Redis state store.
    let redis = |id: &str| {
        format!(
            "instance_id = \"{id}\"\n\n[state]\nbackend = \"redis\"\nredis_url = \"{}\"\nredis_prefix = \"{}\"\n",
            support::redis::url(),
            prefix.as_str()
        )
    };
    let one = Gateway::start_in(tmp.path(), &config(p1, p1, &payer, &hie, &redis("one")));
    let two = Gateway::start_in(tmp.path(), &config(p2, p1, &payer, &hie, &redis("two")));
    let on_two = |url: &str| url.replace(&format!(":{p1}/"), &format!(":{p2}/"));

    let token = payer.token(&one, "system/*.read").await;
    let status_url = kickoff(&one, "/fhir/$export", &token).await;
    let a = poll(&two, &on_two(&status_url), &token).await;
    assert_eq!(a.status, 202, "{}", String::from_utf8_lossy(&a.body));
    // Polled at once on the other instance: too fast all the same.
    let fast = poll(&one, &status_url, &token).await;
    assert_outcome(&fast, 429, "throttled", "bulk.too_fast");
    let other = hie.token(&one, "system/Patient.read").await;
    assert_outcome(
        &poll(&two, &on_two(&status_url), &other).await,
        404,
        "not-found",
        "bulk.job_not_found",
    );

    let batch = Batch::synthetic(work.path(), 5, COUNTS);
    let id = open_batch(&one, &batch.manifest().to_json()).await;
    for m in &batch.members {
        upload_member(&one, &id, &m.name, &m.bytes).await;
    }
    let p = publish(
        &two,
        json!({"batch": id, "client_id": PAYER, "level": "system"}),
    )
    .await;
    assert_eq!(p.status, 201, "{}", String::from_utf8_lossy(&p.body));
    assert_eq!(seal(&one, UPLOADER_TOKEN, &id).await.status, 202);
    let doc = wait_verdict(&one, UPLOADER_TOKEN, &id, Duration::from_secs(60)).await;
    assert_eq!(doc["state"], "released", "{doc}");
    wait_retry(&a).await;
    let done = poll(&two, &on_two(&status_url), &token).await;
    assert_eq!(done.status, 200, "{}", String::from_utf8_lossy(&done.body));
    let m = done.json();
    let output = m["output"].as_array().unwrap();
    assert_eq!(output.len(), batch.members.len(), "{m}");
    for (o, member) in output.iter().zip(&batch.members) {
        // The links name the public base URL; either instance serves them.
        let url = on_two(o["url"].as_str().unwrap());
        let got = send(&two, Method::GET, &url, None, &[]).await;
        assert_eq!(got.status, 200, "{url}");
        assert_eq!(got.body, member.bytes, "{}", member.name);
    }

    let c = send(
        &two,
        Method::DELETE,
        &on_two(&status_url),
        Some(&token),
        &[],
    )
    .await;
    assert_eq!(c.status, 202);
    assert_outcome(
        &poll(&one, &status_url, &token).await,
        404,
        "not-found",
        "bulk.job_not_found",
    );
}
