#![allow(clippy::unwrap_used, clippy::expect_used)]
//! FHIR Bulk Data `$export` end to end (`proto/bulk-v1.md`, decision 0006), black-box: the
//! real binary over TLS, SMART Backend Services clients with ES384 and RS384 keys generated
//! in the test (the whole flow run once with each), a batch of synthetic FHIR NDJSON
//! opened, uploaded (creation-with-upload naming `batch` and `member`), published for a
//! client, sealed and released; the status poll's answers (202 in progress, 429 too fast,
//! 200 with the manifest, an `OperationOutcome` when the batch is quarantined), the
//! manifest's files downloaded through their signed links and by `sallyport client download
//! --manifest`, each file also resumed (two ranged requests, `If-Range`) and checked
//! against the manifest's SHA-256, size and count, another client's 404, cancel, every
//! kick-off refusal, one job across two instances sharing Redis, and the audit trail (each
//! entry checked against the audit event schema by `support::links::export_audit`).
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
use support::links::{PUBLISHER_TOKEN, actions, import, publisher_toml, stop_and_export_audit};
use support::redis::Prefix;
use support::smart::SmartClient;
use support::{Gateway, UPLOADER_TOKEN};

const PAYER: &str = "payer-a-bulk";
const PAYER_RS: &str = "payer-r-bulk";
const HIE: &str = "hie-b-bulk";
const FHIR_JSON: &str = "application/fhir+json";
const COUNTS: [usize; 3] = [20, 35, 50];
const MANIFEST_SCHEMA: &str = "proto/bulk-manifest-v1.schema.json";

struct Fixture {
    gw: Gateway,
    payer: SmartClient,
    payer_rs: SmartClient,
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

/// The SMART clients every gateway here registers, each with a key generated in the test:
/// the payer (ES384) and the RS384 payer may read every type, the HIE (ES384) only Patient.
struct Clients {
    payer: SmartClient,
    payer_rs: SmartClient,
    hie: SmartClient,
}

impl Clients {
    fn new() -> Clients {
        Clients {
            payer: SmartClient::new(PAYER),
            payer_rs: SmartClient::rs384(PAYER_RS),
            hie: SmartClient::new(HIE),
        }
    }
}

/// The config of a gateway listening on `port` whose public base URL names `base_port`
/// (a balancer's, with several instances): the three SMART clients, a publisher, a 1 s
/// polling interval, file links valid `link_ttl`, and `extra` (which starts in
/// `[server]`).
fn config(port: u16, base_port: u16, c: &Clients, link_ttl: &str, extra: &str) -> String {
    config_with_bulk(
        port,
        base_port,
        c,
        &format!("link_ttl = \"{link_ttl}\""),
        extra,
    )
}

/// As [`config`], with `bulk` (lines of `[bulk]`) instead of the link lifetime alone.
fn config_with_bulk(port: u16, base_port: u16, c: &Clients, bulk: &str, extra: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\n{extra}\n\
         [bulk]\nretry_after = \"1s\"\n{bulk}\n\
         [smart]\npublic_base_url = \"https://localhost:{base_port}\"\n{}{}{}{}",
        c.payer.toml(&["system/*.read"], "payer-a"),
        c.payer_rs.toml(&["system/*.read"], "payer-r"),
        c.hie.toml(&["system/Patient.read"], "hie-b"),
        publisher_toml(),
    )
}

/// One gateway on a known port (its public base URL names it), file links valid 5 min.
fn start() -> Fixture {
    start_with_link_ttl("5m")
}

fn start_with_link_ttl(link_ttl: &str) -> Fixture {
    start_with_bulk(&format!("link_ttl = \"{link_ttl}\""))
}

fn start_with_bulk(bulk: &str) -> Fixture {
    let c = Clients::new();
    let port = free_port();
    Fixture {
        gw: Gateway::start(&config_with_bulk(port, port, &c, bulk, "")),
        payer: c.payer,
        payer_rs: c.payer_rs,
        hie: c.hie,
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
/// Uploads every member of `batch` into open batch `id`, seals it and waits until the gate
/// has released it.
async fn upload_and_release(gw: &Gateway, id: &str, batch: &Batch) {
    for m in &batch.members {
        upload_member(gw, id, &m.name, &m.bytes).await;
    }
    assert_eq!(seal(gw, UPLOADER_TOKEN, id).await.status, 202);
    let doc = wait_verdict(gw, UPLOADER_TOKEN, id, Duration::from_secs(60)).await;
    assert_eq!(doc["state"], "released", "{doc}");
}

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

/// A synthetic batch (of `seed`) opened, uploaded, released and published for the payer at
/// system level, and a payer access token for every type.
async fn released_for_payer(f: &Fixture, seed: u64) -> (Batch, String) {
    let gw = &f.gw;
    let batch = Batch::synthetic(f.work.path(), seed, COUNTS);
    let id = open_batch(gw, &batch.manifest().to_json()).await;
    upload_and_release(gw, &id, &batch).await;
    let p = publish(
        gw,
        json!({"batch": id, "client_id": PAYER, "level": "system"}),
    )
    .await;
    assert_eq!(p.status, 201, "{}", String::from_utf8_lossy(&p.body));
    (batch, f.payer.token(gw, "system/*.read").await)
}

/// Polls `url` until the job completes, waiting `Retry-After` after each 202; the 200.
async fn poll_until_complete(gw: &Gateway, url: &str, token: &str) -> Answer {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let a = poll(gw, url, token).await;
        match a.status {
            200 => return a,
            202 if std::time::Instant::now() < deadline => wait_retry(&a).await,
            s => panic!("polling {url}: {s} {}", String::from_utf8_lossy(&a.body)),
        }
    }
}

/// The one extension `…/StructureDefinition/{name}` of output file `o`.
fn file_extension<'a>(o: &'a Value, name: &str) -> &'a Value {
    let url = format!("https://sallyport.dev/fhir/StructureDefinition/{name}");
    let found: Vec<&Value> = o["extension"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["url"] == url.as_str())
        .collect();
    assert_eq!(found.len(), 1, "{name} in {o}");
    found[0]
}

/// Downloads signed link `url` (a file of `size` bytes) in two ranged requests —
/// `bytes=0-{split - 1}`, then the rest with `If-Range` naming the first answer's strong
/// `ETag` — and returns the bytes reassembled.
/// `token`, when given, goes with both (a file URL of `requiresAccessToken: true`).
async fn download_resumed_with(
    gw: &Gateway,
    url: &str,
    token: Option<&str>,
    size: u64,
    split: u64,
) -> Vec<u8> {
    assert!(0 < split && split < size, "{split} of {size}");
    let range = format!("bytes=0-{}", split - 1);
    let first = send(gw, Method::GET, url, token, &[("range", &range)]).await;
    assert_eq!(first.status, 206, "{url} {range}");
    assert_eq!(
        first.header("content-range"),
        Some(format!("bytes 0-{}/{size}", split - 1).as_str())
    );
    assert_eq!(first.body.len() as u64, split);
    let etag = first.header("etag").unwrap().to_owned();
    assert!(etag.starts_with('"'), "a strong ETag: {etag}");
    let range = format!("bytes={split}-");
    let rest = send(
        gw,
        Method::GET,
        url,
        token,
        &[("range", &range), ("if-range", &etag)],
    )
    .await;
    assert_eq!(rest.status, 206, "{url} {range} If-Range {etag}");
    assert_eq!(
        rest.header("content-range"),
        Some(format!("bytes {split}-{}/{size}", size - 1).as_str())
    );
    let mut bytes = first.body;
    bytes.extend_from_slice(&rest.body);
    bytes
}

/// The NDJSON records of `bytes` (newline-terminated lines, each one JSON object of
/// resource type `resource_type`).
fn ndjson_lines(bytes: &[u8], resource_type: &str) -> u64 {
    assert!(bytes.ends_with(b"\n"), "NDJSON ends with a newline");
    bytes
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            let record: Value = serde_json::from_slice(l).unwrap();
            assert_eq!(record["resourceType"], resource_type, "{record}");
        })
        .count() as u64
}

/// Downloads every file of complete manifest `m`, each in two ranged requests, and checks
/// it against the manifest's own claims (SHA-256 = `…/file-sha256`, size = `…/file-size`,
/// NDJSON lines = `count`) and against the member of `batch` uploaded.
async fn download_and_verify_every_file(gw: &Gateway, m: &Value, batch: &Batch) {
    download_and_verify_every_file_with(gw, m, None, batch).await
}

/// As [`download_and_verify_every_file`], sending `token` with every file request.
async fn download_and_verify_every_file_with(
    gw: &Gateway,
    m: &Value,
    token: Option<&str>,
    batch: &Batch,
) {
    let output = m["output"].as_array().unwrap();
    assert_eq!(output.len(), batch.members.len(), "{m}");
    for o in output {
        let url = o["url"].as_str().unwrap();
        let resource_type = o["type"].as_str().unwrap();
        let sha256 = file_extension(o, "file-sha256")["valueString"]
            .as_str()
            .unwrap();
        let size = file_extension(o, "file-size")["valueInteger"]
            .as_u64()
            .unwrap();
        let count = o["count"].as_u64().unwrap();
        let bytes = download_resumed_with(gw, url, token, size, size / 3).await;
        assert_eq!(bytes.len() as u64, size, "{resource_type}: file-size");
        assert_eq!(sha256_hex(&bytes), sha256, "{resource_type}: file-sha256");
        assert_eq!(
            ndjson_lines(&bytes, resource_type),
            count,
            "{resource_type}"
        );
        let member = batch
            .members
            .iter()
            .find(|x| x.resource_type == resource_type)
            .unwrap();
        assert_eq!(bytes, member.bytes, "{resource_type}: as uploaded");
    }
}

/// `proto/bulk-manifest-v1.schema.json`, compiled once (formats asserted).
fn manifest_schema() -> &'static jsonschema::Validator {
    static V: std::sync::OnceLock<jsonschema::Validator> = std::sync::OnceLock::new();
    V.get_or_init(|| {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(MANIFEST_SCHEMA);
        let schema: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        jsonschema::draft202012::options()
            .should_validate_formats(true)
            .build(&schema)
            .unwrap()
    })
}

fn manifest_schema_errors(m: &Value) -> Vec<String> {
    manifest_schema()
        .iter_errors(m)
        .map(|e| format!("at {:?}: {e}", e.instance_path().as_str()))
        .collect()
}

/// Asserts complete-status manifest `m` has the IG's shape (the schema) and names the
/// kick-off URL `request`.
fn assert_ig_manifest(m: &Value, request: &str) {
    let errors = manifest_schema_errors(m);
    assert!(
        errors.is_empty(),
        "{m}\ndoes not match {MANIFEST_SCHEMA}:\n{}",
        errors.join("\n")
    );
    assert_eq!(m["request"], request, "{m}");
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
    assert_ig_manifest(
        &m,
        &gw.url("/fhir/$export?_outputFormat=application%2Ffhir%2Bndjson"),
    );
    assert_eq!(m["requiresAccessToken"], false);
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
    upload_and_release(gw, &id, &batch).await;
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
    let c = Clients::new();
    let (payer, hie) = (&c.payer, &c.hie);
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
    let one = Gateway::start_in(tmp.path(), &config(p1, p1, &c, "5m", &redis("one")));
    let two = Gateway::start_in(tmp.path(), &config(p2, p1, &c, "5m", &redis("two")));
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

/// The whole flow once per key type: the ES384 payer and the RS384 payer each get a token
/// with an assertion signed by its own key, kick off a job while the batch is still open,
/// poll until it completes, get an IG-shaped manifest naming their kick-off URL, and
/// download every file in two ranged requests (resumed with `If-Range`), each checked
/// against the manifest's SHA-256, size and record count. One gateway serves both.
#[tokio::test(flavor = "multi_thread")]
async fn es384_and_rs384_clients_each_export_and_resume_every_file() {
    let f = start();
    let gw = &f.gw;
    let batch = Batch::synthetic(f.work.path(), 384, COUNTS);
    let id = open_batch(gw, &batch.manifest().to_json()).await;
    let path = "/fhir/$export?_type=Patient,Encounter,Observation";
    let mut jobs = Vec::new();
    for client in [&f.payer, &f.payer_rs] {
        let p = publish(
            gw,
            json!({"batch": id, "client_id": client.client_id, "level": "system"}),
        )
        .await;
        assert_eq!(p.status, 201, "{}", String::from_utf8_lossy(&p.body));
        let token = client.token(gw, "system/*.read").await;
        let status_url = kickoff(gw, path, &token).await;
        let a = poll(gw, &status_url, &token).await;
        assert_eq!(a.status, 202, "{}", String::from_utf8_lossy(&a.body));
        assert_eq!(a.header("x-progress"), Some("awaiting files"));
        jobs.push((client, token, status_url, a));
    }
    let algs: Vec<&str> = jobs.iter().map(|j| j.0.alg()).collect();
    assert_eq!(algs, ["ES384", "RS384"]);
    assert_ne!(jobs[0].2, jobs[1].2);

    upload_and_release(gw, &id, &batch).await;

    for (client, token, status_url, last) in &jobs {
        wait_retry(last).await;
        let done = poll_until_complete(gw, status_url, token).await;
        assert_eq!(done.header("cache-control"), Some("no-store"));
        let m = done.json();
        assert_ig_manifest(&m, &gw.url(path));
        assert_eq!(
            m["extension"][0]["extension"][0]["valueString"],
            id.as_str(),
            "{}",
            client.alg()
        );
        download_and_verify_every_file(gw, &m, &batch).await;
    }

    // `sallyport client download --manifest <status URL> --token-file FILE`: the RS384
    // client's access token (a 0600 file) fetches the manifest; the files come through
    // their signed links, each verified. Without the token the status URL is refused; a
    // token file others may read is refused before anything is sent; the token is never
    // printed.
    let (_, rs_token, rs_status, _) = &jobs[1];
    let private = f.work.path().join("rs.token");
    write_mode(&private, rs_token, 0o600);
    let readable = f.work.path().join("rs-readable.token");
    write_mode(&readable, rs_token, 0o644);
    let out = f.work.path().join("by-status-url");
    let none = client_download(gw, rs_status, None, &out);
    assert!(!none.status.success(), "{none:?}");
    let stderr = String::from_utf8_lossy(&none.stderr);
    assert!(stderr.contains("401 auth.missing"), "{stderr}");
    let open = client_download(gw, rs_status, Some(&readable), &out);
    assert!(!open.status.success(), "{open:?}");
    let file = client_download(gw, "manifest.json", Some(&private), &out);
    assert!(!file.status.success(), "{file:?}");
    let stderr = String::from_utf8_lossy(&file.stderr);
    assert!(
        stderr.contains("--token-file goes with a --manifest https URL"),
        "{stderr}"
    );
    tokio::time::sleep(Duration::from_secs(1)).await; // the last poll's Retry-After
    let run = client_download(gw, rs_status, Some(&private), &out);
    assert!(run.status.success(), "{run:?}");
    for r in [&none, &open, &file, &run] {
        let printed = [r.stdout.as_slice(), r.stderr.as_slice()].concat();
        assert!(
            !String::from_utf8_lossy(&printed).contains(rs_token.as_str()),
            "the token was printed"
        );
    }
    let mut got: Vec<Vec<u8>> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    let mut want: Vec<Vec<u8>> = batch.members.iter().map(|m| m.bytes.clone()).collect();
    got.sort();
    want.sort();
    assert_eq!(got, want);

    // The audit trail: each client's first completed poll, whose files were served in two
    // ranged parts each under the grant it issued; the RS384 client's second (by the
    // shipped client), whose files were served whole under its own grant.
    let mut gw = f.gw;
    let audit = stop_and_export_audit(&mut gw);
    let served = |grant: &str, status: u16| {
        actions(&audit, "download.served")
            .into_iter()
            .filter(|e| e["details"]["grant"] == grant && e["details"]["status"] == status)
            .count()
    };
    for (client, polls) in [(PAYER, 1), (PAYER_RS, 2)] {
        let complete: Vec<&str> = actions(&audit, "bulk.status")
            .into_iter()
            .filter(|e| e["details"]["client_id"] == client)
            .filter(|e| e["details"]["status"] == "complete")
            .map(|e| e["details"]["grant"].as_str().unwrap())
            .collect();
        assert_eq!(complete.len(), polls, "{client}");
        assert_eq!(served(complete[0], 206), 2 * COUNTS.len(), "{client}");
        if let Some(second) = complete.get(1) {
            assert_eq!(served(second, 200), COUNTS.len(), "{client}");
        }
    }
}

/// Sleeps until 20 ms into the next wall-clock second.
async fn sleep_to_start_of_second() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let left = 1000 - u64::from(now.subsec_millis());
    tokio::time::sleep(Duration::from_millis(left + 20)).await;
}

/// Writes `text` to a new file `path` with `mode`.
fn write_mode(path: &std::path::Path, text: &str, mode: u32) {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .unwrap();
    writeln!(f, "{text}").unwrap();
}

/// `sallyport client download --json --manifest <manifest> [--token-file FILE] --out DIR`.
fn client_download(
    gw: &Gateway,
    manifest: &str,
    token_file: Option<&std::path::Path>,
    out: &std::path::Path,
) -> std::process::Output {
    let mut cmd = support::sallyport();
    cmd.args(["client", "download", "--json", "--manifest", manifest]);
    if let Some(t) = token_file {
        cmd.arg("--token-file").arg(t);
    }
    cmd.arg("--out")
        .arg(out)
        .arg("--cacert")
        .arg(gw.ca_path())
        .output()
        .unwrap()
}

/// One way to break a manifest.
type Breaks = fn(&mut Value);

/// The manifest schema holds for the golden vector of `bulk::manifest`, and each rule in it
/// can fail: one broken copy of the vector per rule, every one rejected.
#[test]
fn the_manifest_schema_accepts_the_golden_vector_and_rejects_each_broken_rule() {
    let golden: Value = serde_json::from_slice(
        &std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("proto/vectors/bulk-v1/complete-manifest.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_ig_manifest(&golden, "https://gw.example/fhir/$export?_type=Patient");

    // A file of 2 GiB or more: its size is an integer64 string, which the schema takes.
    let mut big = golden.clone();
    big["output"][0]["extension"][1] = json!({
        "url": "https://sallyport.dev/fhir/StructureDefinition/file-size",
        "valueInteger64": "5368709120"
    });
    assert!(
        manifest_schema_errors(&big).is_empty(),
        "{:?}",
        manifest_schema_errors(&big)
    );

    let broken: [(&str, Breaks); 19] = [
        ("no transactionTime", |m| {
            m.as_object_mut().unwrap().remove("transactionTime");
        }),
        ("transactionTime without a zone", |m| {
            m["transactionTime"] = json!("2027-01-15T08:00:00");
        }),
        ("transactionTime a date only", |m| {
            m["transactionTime"] = json!("2027-01-15");
        }),
        ("no request", |m| {
            m.as_object_mut().unwrap().remove("request");
        }),
        ("requiresAccessToken a string", |m| {
            m["requiresAccessToken"] = json!("false");
        }),
        ("no requiresAccessToken", |m| {
            m.as_object_mut().unwrap().remove("requiresAccessToken");
        }),
        ("an output type that is no resource type", |m| {
            m["output"][0]["type"] = json!("patient");
        }),
        ("a relative output url", |m| {
            m["output"][0]["url"] = json!("/d/x?s=1");
        }),
        ("a plain http output url", |m| {
            m["output"][0]["url"] = json!("http://gw.example/d/x?s=1");
        }),
        ("count a string", |m| {
            m["output"][0]["count"] = json!("3");
        }),
        ("count a fraction", |m| {
            m["output"][0]["count"] = json!(2.5);
        }),
        ("no error array", |m| {
            m.as_object_mut().unwrap().remove("error");
        }),
        ("error not an array", |m| {
            m["error"] = json!({});
        }),
        ("an extension with two values", |m| {
            m["output"][0]["extension"][1]["valueString"] = json!("120");
        }),
        ("an extension with no value", |m| {
            m["output"][0]["extension"][0]
                .as_object_mut()
                .unwrap()
                .remove("valueString");
        }),
        ("file-size past FHIR's 32-bit integer", |m| {
            m["output"][0]["extension"][1]["valueInteger"] = json!(2_147_483_648u64);
        }),
        ("file-size a negative integer64", |m| {
            let x = m["output"][0]["extension"][1].as_object_mut().unwrap();
            x.remove("valueInteger");
            x.insert("valueInteger64".into(), json!("-1"));
        }),
        (
            "file-size an integer64 that is a number, not a string",
            |m| {
                let x = m["output"][0]["extension"][1].as_object_mut().unwrap();
                x.remove("valueInteger");
                x.insert("valueInteger64".into(), json!(5_368_709_120u64));
            },
        ),
        ("file-sha256 not 64 lowercase hex digits", |m| {
            m["output"][0]["extension"][0]["valueString"] = json!("AB".repeat(32));
        }),
    ];
    for (what, breaks) in broken {
        let mut m = golden.clone();
        breaks(&mut m);
        assert_ne!(m, golden, "{what}: the copy is broken");
        assert!(
            !manifest_schema_errors(&m).is_empty(),
            "{what}: the schema accepts\n{m}"
        );
    }
}

/// With the shortest link lifetime the configuration allows (`bulk.link_ttl = "1s"`), a
/// manifest's file link expires: the download is refused (the uniform 403, audited as
/// `download.rejected` with `expired` under that manifest's grant); polling the status URL
/// again gives a fresh link of a new grant, which downloads the file.
#[tokio::test(flavor = "multi_thread")]
async fn an_expired_file_link_is_refreshed_by_polling_again() {
    let f = start_with_link_ttl("1s");
    let gw = &f.gw;
    let (batch, token) = released_for_payer(&f, 4).await;
    let status_url = kickoff(gw, "/fhir/$export?_type=Patient", &token).await;
    let first = poll_until_complete(gw, &status_url, &token).await.json();
    let stale = first["output"][0]["url"].as_str().unwrap().to_owned();
    let patient = batch.member("Patient.ndjson");

    // Past the link's lifetime (exclusive expiry, whole seconds): refused.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let refused = send(gw, Method::GET, &stale, None, &[]).await;
    assert_eq!(
        refused.status,
        403,
        "{}",
        String::from_utf8_lossy(&refused.body)
    );
    assert_eq!(refused.json()["code"], "link.refused");
    assert_ne!(refused.body, patient.bytes);

    // Re-polled (the interval has passed): a fresh link that works. A link's window is in
    // whole seconds from the second it is issued in (1 s lifetime: up to the next second),
    // so poll at the start of a second and download at once.
    sleep_to_start_of_second().await;
    let again = poll(gw, &status_url, &token).await;
    assert_eq!(
        again.status,
        200,
        "{}",
        String::from_utf8_lossy(&again.body)
    );
    let m = again.json();
    assert_ig_manifest(&m, &gw.url("/fhir/$export?_type=Patient"));
    let fresh = m["output"][0]["url"].as_str().unwrap().to_owned();
    assert_ne!(fresh, stale);
    let got = send(gw, Method::GET, &fresh, None, &[]).await;
    assert_eq!(got.status, 200, "{fresh}");
    assert_eq!(got.body, patient.bytes);
    // Without `requires_access_token`, the token-protected file URLs do not exist.
    let artifact = fresh
        .split("/d/")
        .nth(1)
        .unwrap()
        .split('?')
        .next()
        .unwrap();
    let not_here = send(
        gw,
        Method::GET,
        &format!("{status_url}/files/{artifact}"),
        Some(&token),
        &[],
    )
    .await;
    assert_outcome(&not_here, 404, "not-found", "bulk.file_not_found");

    // The audit trail: the stale link (of the first manifest's grant) was refused for its
    // expiry (an expired link is refused before its signature is checked, so the entry
    // names no grant); the fresh one (of the second grant) was served.
    let mut gw = f.gw;
    let audit = stop_and_export_audit(&mut gw);
    let grants: Vec<&str> = actions(&audit, "bulk.status")
        .into_iter()
        .filter(|e| e["details"]["status"] == "complete")
        .map(|e| e["details"]["grant"].as_str().unwrap())
        .collect();
    assert_eq!(grants.len(), 2);
    assert_ne!(grants[0], grants[1]);
    assert!(stale.contains(&format!("&g={}&", grants[0])), "{stale}");
    let rejected: Vec<_> = actions(&audit, "download.rejected");
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert_eq!(
        rejected[0]["details"]["reason"], "expired",
        "{}",
        rejected[0]
    );
    let served: Vec<_> = actions(&audit, "download.served")
        .into_iter()
        .filter(|e| e["details"]["status"] == 200)
        .map(|e| e["details"]["grant"].as_str().unwrap())
        .collect();
    assert_eq!(served, [grants[1]]);
    assert!(fresh.contains(&format!("&g={}&", grants[1])), "{fresh}");
}

/// Jobs bound to one publication polled at once for the first time after its release: one
/// poll registers the files, the others find the uploads held by it. Each answer is a
/// complete manifest or 202 `registering the files` (never a 4xx, which a Bulk client
/// takes as the export's failure); polled again after `Retry-After`, every job completes
/// with the same files (the publication's one set).
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_first_polls_of_one_publication_never_fail() {
    let f = start();
    let gw = &f.gw;
    let (_, token) = released_for_payer(&f, 11).await;
    let mut urls = Vec::new();
    for _ in 0..8 {
        urls.push(kickoff(gw, "/fhir/$export", &token).await);
    }
    let mut set = tokio::task::JoinSet::new();
    for (i, url) in urls.iter().enumerate() {
        let (c, url, token) = (gw.client(), url.clone(), token.clone());
        set.spawn(async move {
            let r = c.get(&url).bearer_auth(&token).send().await.unwrap();
            let status = r.status().as_u16();
            let progress = r
                .headers()
                .get("x-progress")
                .map(|v| v.to_str().unwrap().to_owned());
            (i, status, progress, r.text().await.unwrap())
        });
    }
    while let Some(answer) = set.join_next().await {
        let (i, status, progress, body) = answer.unwrap();
        match status {
            200 => {}
            202 => {
                assert_eq!(
                    progress.as_deref(),
                    Some("registering the files"),
                    "job {i}"
                );
            }
            _ => panic!("job {i}: {status} {body}"),
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut artifacts = std::collections::BTreeSet::new();
    for url in &urls {
        let a = poll_until_complete(gw, url, &token).await;
        for o in a.json()["output"].as_array().unwrap() {
            let url = o["url"].as_str().unwrap();
            artifacts.insert(url[..url.find('?').unwrap()].to_owned());
        }
    }
    assert_eq!(artifacts.len(), COUNTS.len(), "{artifacts:?}");
}

/// `bulk.requires_access_token = true`: the manifest says `requiresAccessToken: true`; its
/// file URLs are under the job's status URL, carry no credential, and serve (with Range,
/// `If-Range` and `Repr-Digest`, through the one download path) only with the kicking-off
/// client's access token; every poll names the same URLs (one grant per job); another
/// client, no token, a file not in the manifest and a cancelled job are refused; each
/// download is audited under the client, naming the job's grant.
#[tokio::test(flavor = "multi_thread")]
async fn with_requires_access_token_files_need_the_clients_token() {
    let f = start_with_bulk("requires_access_token = true");
    let gw = &f.gw;
    let (batch, token) = released_for_payer(&f, 6).await;
    let status_url = kickoff(gw, "/fhir/$export", &token).await;
    let m = poll_until_complete(gw, &status_url, &token).await.json();
    assert_ig_manifest(&m, &gw.url("/fhir/$export"));
    assert_eq!(m["requiresAccessToken"], true, "{m}");
    let urls: Vec<String> = m["output"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["url"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(urls.len(), 3);
    for u in &urls {
        let artifact = u
            .strip_prefix(&format!("{status_url}/files/"))
            .unwrap_or_else(|| panic!("{u} is not under {status_url}/files/"));
        assert!(!artifact.contains(['?', '&', '/']), "no credential in {u}");
    }
    download_and_verify_every_file_with(gw, &m, Some(&token), &batch).await;

    // HEAD: the headers of the file, no body.
    let head = send(gw, Method::HEAD, &urls[0], Some(&token), &[]).await;
    assert_eq!(head.status, 200);
    assert!(head.header("repr-digest").unwrap().starts_with("sha-256=:"));
    assert!(head.body.is_empty());

    // Refused: no token; another client's token (its job does not exist for it); a file
    // that is not in the manifest; a bad path.
    let none = send(gw, Method::GET, &urls[0], None, &[]).await;
    assert_outcome(&none, 401, "login", "auth.missing");
    let hie = f.hie.token(gw, "system/Patient.read").await;
    let other = send(gw, Method::GET, &urls[0], Some(&hie), &[]).await;
    assert_outcome(&other, 404, "not-found", "bulk.job_not_found");
    let stranger = format!("{status_url}/files/5c9m2xq4vz8h7kt1w3ab6dnfy0");
    let missing = send(gw, Method::GET, &stranger, Some(&token), &[]).await;
    assert_outcome(&missing, 404, "not-found", "bulk.file_not_found");
    for refused in [&none, &other, &missing] {
        assert!(
            !batch.members.iter().any(|x| refused.body == x.bytes),
            "no file bytes in a refusal"
        );
    }

    // Polled again: the same URLs (the job's one grant), still serving.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let again = poll(gw, &status_url, &token).await;
    assert_eq!(again.status, 200);
    let again_urls: Vec<String> = again.json()["output"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["url"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(again_urls, urls);

    // The shipped client: the status URL and its files with the token from a 0600 file
    // (the files are on the status URL's origin), each verified; the token never printed.
    let token_file = f.work.path().join("payer.token");
    write_mode(&token_file, &token, 0o600);
    let out = f.work.path().join("by-token");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let run = client_download(gw, &status_url, Some(&token_file), &out);
    assert!(run.status.success(), "{run:?}");
    let printed = [run.stdout.as_slice(), run.stderr.as_slice()].concat();
    assert!(!String::from_utf8_lossy(&printed).contains(token.as_str()));
    let mut got: Vec<Vec<u8>> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    let mut want: Vec<Vec<u8>> = batch.members.iter().map(|m| m.bytes.clone()).collect();
    got.sort();
    want.sort();
    assert_eq!(got, want);

    // Cancelled: its files are gone with it.
    let cancel = send(gw, Method::DELETE, &status_url, Some(&token), &[]).await;
    assert_eq!(cancel.status, 202);
    let after = send(gw, Method::GET, &urls[0], Some(&token), &[]).await;
    assert_outcome(&after, 404, "not-found", "bulk.job_not_found");

    // The audit trail: one grant across both complete answers; every download served under
    // it, attributed to the SMART client's principal.
    let mut gw = f.gw;
    let audit = stop_and_export_audit(&mut gw);
    let grants: Vec<&str> = actions(&audit, "bulk.status")
        .into_iter()
        .filter(|e| e["details"]["status"] == "complete")
        .map(|e| e["details"]["grant"].as_str().unwrap())
        .collect();
    assert_eq!(grants.len(), 3, "three complete answers");
    assert!(grants.iter().all(|g| *g == grants[0]), "one grant per job");
    let served = actions(&audit, "download.served");
    assert_eq!(
        served.len(),
        3 * 2 + 1 + 3,
        "two ranged GETs a file, one HEAD, the client's three"
    );
    for e in &served {
        assert_eq!(e["details"]["grant"], grants[0], "{e}");
        assert_eq!(
            e["actor"],
            json!({"kind": "client", "name": "payer-a", "auth_method": "smart_access_token"}),
            "{e}"
        );
    }
}

/// `POST /v1/exports/batches` as the publisher.
async fn build(gw: &Gateway, body: Value) -> Answer {
    post(
        gw,
        "/v1/exports/batches",
        PUBLISHER_TOKEN,
        Some(serde_json::to_vec(&body).unwrap()),
    )
    .await
}

/// The members of batch `id`'s manifest document as `(name, sha256, resource type,
/// records)`, sorted.
async fn manifest_members(gw: &Gateway, id: &str) -> Vec<(String, String, String, u64)> {
    let a = support::batches::get(gw, &format!("/v1/batches/{id}/manifest"), PUBLISHER_TOKEN).await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let mut out: Vec<_> = a.json()["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap().to_owned(),
                m["sha256"].as_str().unwrap().to_owned(),
                m["ndjson"]["resource_type"].as_str().unwrap().to_owned(),
                m["ndjson"]["records"].as_u64().unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

/// Outbound batches (issue 13 item 3): built from imported artifacts (the EHR's export
/// files) and from a released inbound batch. The manifest is generated (sizes, SHA-256,
/// resource types and record counts of the sources), the members are copied through the
/// upload engine, and the seal verifies them as it does any batch: the built batch is
/// released, published and exported, and every file checks out against the manifest. An
/// artifact whose lines are not the type claimed gives a batch the seal quarantines. Each
/// malformed or refused build opens no batch.
#[tokio::test(flavor = "multi_thread")]
async fn an_outbound_batch_is_built_from_artifacts_or_a_released_batch_and_exported() {
    let f = start();
    let gw = &f.gw;
    let batch = Batch::synthetic(f.work.path(), 21, COUNTS);
    let expected: Vec<(String, String, String, u64)> = {
        let mut v: Vec<_> = batch
            .members
            .iter()
            .map(|m| {
                (
                    format!("{}.ndjson", m.resource_type),
                    sha256_hex(&m.bytes),
                    m.resource_type.clone(),
                    ndjson_lines(&m.bytes, &m.resource_type),
                )
            })
            .collect();
        v.sort();
        v
    };

    // From artifacts.
    let mut sources = Vec::new();
    for m in &batch.members {
        let artifact = import(gw, &m.name, &m.bytes).await;
        sources.push(json!({"artifact": artifact, "resource_type": m.resource_type}));
    }
    let built = build(gw, json!({"artifacts": sources.clone()})).await;
    assert_eq!(
        built.status,
        201,
        "{}",
        String::from_utf8_lossy(&built.body)
    );
    let from_artifacts = built.json()["id"].as_str().unwrap().to_owned();
    let doc = wait_verdict(
        gw,
        PUBLISHER_TOKEN,
        &from_artifacts,
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(doc["state"], "released", "{doc}");
    assert_eq!(doc["owner"], "exporter", "{doc}");
    assert_eq!(manifest_members(gw, &from_artifacts).await, expected);

    // Exported like any batch: every file verified against the manifest.
    let p = publish(
        gw,
        json!({"batch": from_artifacts, "client_id": PAYER, "level": "system"}),
    )
    .await;
    assert_eq!(p.status, 201, "{}", String::from_utf8_lossy(&p.body));
    let token = f.payer.token(gw, "system/*.read").await;
    let status_url = kickoff(gw, "/fhir/$export", &token).await;
    let m = poll_until_complete(gw, &status_url, &token).await.json();
    download_and_verify_every_file(gw, &m, &batch).await;

    // From a released inbound batch (the clinic's upload).
    let inbound = open_batch(gw, &batch.manifest().to_json()).await;
    upload_and_release(gw, &inbound, &batch).await;
    let built = build(gw, json!({"batch": inbound})).await;
    assert_eq!(
        built.status,
        201,
        "{}",
        String::from_utf8_lossy(&built.body)
    );
    let from_batch = built.json()["id"].as_str().unwrap().to_owned();
    let doc = wait_verdict(gw, PUBLISHER_TOKEN, &from_batch, Duration::from_secs(60)).await;
    assert_eq!(doc["state"], "released", "{doc}");
    assert_eq!(manifest_members(gw, &from_batch).await, expected);
    // Its provenance: the inbound batch's record, plus a line naming that batch; a batch
    // built from artifacts with none supplied has none.
    let prov = |id: String| async move {
        support::batches::get(gw, &format!("/v1/batches/{id}/provenance"), PUBLISHER_TOKEN).await
    };
    let inherited = prov(from_batch.clone()).await;
    assert_eq!(inherited.status, 200);
    let inherited = inherited.json();
    let original: Value = serde_json::from_str(&provenance_json("bulk-job-1")).unwrap();
    assert_eq!(inherited["purpose_of_use"], original["purpose_of_use"]);
    assert_eq!(inherited["job_id"], original["job_id"]);
    let lines = inherited["transformations"].as_array().unwrap();
    assert_eq!(
        lines.last().unwrap(),
        &json!(format!(
            "sallyport: members copied unchanged from released batch {inbound}"
        ))
    );
    assert_eq!(
        prov(from_artifacts.clone()).await.refusal(),
        (404, "batch.no_provenance".to_owned())
    );

    // A claim the data does not bear out: built, then quarantined by the seal.
    let patients = batch.member("Patient.ndjson");
    let wrong = import(gw, "mislabelled.ndjson", &patients.bytes).await;
    let built = build(
        gw,
        json!({"artifacts": [{"artifact": wrong, "resource_type": "Observation"}]}),
    )
    .await;
    assert_eq!(
        built.status,
        201,
        "{}",
        String::from_utf8_lossy(&built.body)
    );
    let id = built.json()["id"].as_str().unwrap().to_owned();
    let doc = wait_verdict(gw, PUBLISHER_TOKEN, &id, Duration::from_secs(60)).await;
    assert_eq!(doc["state"], "quarantined", "{doc}");

    // A released batch with a member that is not NDJSON: never built with it left out.
    let pdf = b"%PDF-1.4 cover letter".to_vec();
    let mixed_manifest = json!({"version": "sallyport.manifest/1", "members": [
        {"name": "Patient.ndjson", "size": patients.bytes.len(), "sha256": sha256_hex(&patients.bytes),
         "media_type": "application/fhir+ndjson",
         "ndjson": {"resource_type": "Patient", "records": patients.records()}},
        {"name": "cover.pdf", "size": pdf.len(), "sha256": sha256_hex(&pdf),
         "media_type": "application/pdf"}]});
    let mixed = open_batch(gw, &mixed_manifest.to_string()).await;
    upload_member(gw, &mixed, "Patient.ndjson", &patients.bytes).await;
    upload_member(gw, &mixed, "cover.pdf", &pdf).await;
    assert_eq!(seal(gw, UPLOADER_TOKEN, &mixed).await.status, 202);
    let doc = wait_verdict(gw, UPLOADER_TOKEN, &mixed, Duration::from_secs(60)).await;
    assert_eq!(doc["state"], "released", "{doc}");

    // Refusals, each specific, none of them opening a batch.
    let listed = |a: Answer| a.json()["batches"].as_array().map_or(0, Vec::len);
    let before = listed(support::batches::get(gw, "/v1/batches", PUBLISHER_TOKEN).await);
    let open_one = open_batch(gw, &batch.manifest().to_json()).await;
    let nowhere = "5c9m2xq4vz8h7kt1w3ab6dnfy0";
    for (body, status, code) in [
        (json!({}), 400, "bulk.bad_build"),
        (json!({"artifacts": []}), 400, "bulk.bad_build"),
        (
            json!({"artifacts": sources.clone(), "batch": inbound}),
            400,
            "bulk.bad_build",
        ),
        (
            json!({"artifacts": [{"artifact": "x", "resource_type": "Patient"}]}),
            400,
            "bulk.bad_build",
        ),
        (
            json!({"artifacts": [{"artifact": nowhere, "resource_type": "patient"}]}),
            400,
            "bulk.bad_build",
        ),
        (
            json!({"artifacts": [sources[0].clone(), sources[0].clone()]}),
            400,
            "bulk.bad_build",
        ),
        (
            json!({"artifacts": [{"artifact": nowhere, "resource_type": "Patient"}]}),
            404,
            "bulk.build_source_not_found",
        ),
        (
            json!({"batch": nowhere}),
            404,
            "bulk.build_source_not_found",
        ),
        (
            json!({"batch": open_one}),
            409,
            "bulk.build_source_not_released",
        ),
        (
            json!({"artifacts": sources.clone(), "extra": 1}),
            400,
            "request.bad_json",
        ),
    ] {
        let a = build(gw, body.clone()).await;
        assert_eq!(a.refusal(), (status, code.to_owned()), "{body}");
    }
    let as_uploader = post(
        gw,
        "/v1/exports/batches",
        UPLOADER_TOKEN,
        Some(serde_json::to_vec(&json!({"batch": inbound})).unwrap()),
    )
    .await;
    assert_eq!(as_uploader.refusal(), (403, "auth.missing_role".to_owned()));
    let after = listed(support::batches::get(gw, "/v1/batches", PUBLISHER_TOKEN).await);
    assert_eq!(after, before, "no refused build opened a batch");

    // The trail ties each built batch to its sources, under the publisher.
    let mut gw = f.gw;
    let audit = stop_and_export_audit(&mut gw);
    let built = actions(&audit, "bulk.batch_built");
    assert_eq!(built.len(), 3, "{built:?}");
    let ids: Vec<&str> = sources
        .iter()
        .map(|s| s["artifact"].as_str().unwrap())
        .collect();
    assert_eq!(built[0]["subject"], from_artifacts.as_str());
    assert_eq!(built[0]["details"]["source"], "artifacts");
    assert_eq!(built[0]["details"]["artifacts"], json!(ids));
    assert_eq!(built[0]["actor"]["name"], "exporter");
    assert_eq!(built[1]["subject"], from_batch.as_str());
    assert_eq!(built[1]["details"]["source"], "batch");
    assert_eq!(built[1]["details"]["from_batch"], inbound.as_str());
    assert_eq!(built[1]["details"]["members"], 3);
    assert_eq!(built[2]["details"]["artifacts"], json!([wrong]));
}
