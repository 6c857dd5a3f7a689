#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Audit before acting, or never silently (issue 12 item 5; `proto/audit-v1.md`, "When an
//! entry is written"): every audited state change is either audited first (an intent entry,
//! then the outcome), undone when its entry cannot be written, or — for a chunk whose
//! bytes are already durable — answered 503 with its entry recovered before the upload is
//! used again.
//!
//! The whole gateway runs in process (`app::build_with_state`) over `FaultyState`, which
//! fails one audit append when armed. Each test arms it, performs the action, checks the
//! client's answer (status and problem code), that the fault fired (so no test passes by
//! never reaching it) and that the state did not change (or that the entry was recovered),
//! then performs the action again and checks that it succeeds with its entry present and
//! that the chain verifies.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use http::{Method, Request, StatusCode};
use sallyport::audit::AUDIT_LOG;
use sallyport::http::body::read_capped;
use sallyport::state::StateStore;
use serde_json::{Value, json};
use tower::ServiceExt;

mod support;
use support::mem_state::FaultyState;
use support::token_hash;

const ADMIN: &str = "auditfirst-admin-token-0123456789abcdefghijk";
const CLINIC: &str = "auditfirst-clinic-token-0123456789abcdefghij";

struct Harness {
    app: sallyport::app::App,
    state: Arc<FaultyState>,
    dir: tempfile::TempDir,
}

struct Answer {
    status: StatusCode,
    headers: http::HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
    fn code(&self) -> String {
        self.json()["code"].as_str().unwrap_or_default().to_owned()
    }
    fn location_id(&self) -> String {
        let location = self.headers["location"].to_str().unwrap();
        location.rsplit('/').next().unwrap().to_owned()
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

async fn harness() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "data_dir = {:?}\n\
         [audit]\nstore = \"state\"\n\
         [[clients]]\nname = \"ops\"\ntoken_sha256 = \"{}\"\nroles = [\"admin\"]\n\n\
         [[clients]]\nname = \"clinic\"\ntoken_sha256 = \"{}\"\nroles = [\"uploader\"]\n",
        dir.path().join("data").display().to_string(),
        token_hash(ADMIN),
        token_hash(CLINIC),
    );
    let config = sallyport::config::Config::from_toml(&text, &BTreeMap::new()).unwrap();
    let state = Arc::new(FaultyState::default());
    let app = sallyport::app::build_with_state(config, state.clone())
        .await
        .unwrap();
    Harness { app, state, dir }
}

impl Harness {
    async fn call(&self, req: Request<Body>) -> Answer {
        let peer: SocketAddr = "192.0.2.44:40000".parse().unwrap();
        let resp = self.app.service(peer).oneshot(req).await.unwrap();
        let (parts, body) = resp.into_parts();
        let body = read_capped(None, body, 1 << 24).await.unwrap().to_vec();
        Answer {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    async fn send(&self, method: Method, uri: &str, token: &str, body: Option<Value>) -> Answer {
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", format!("Bearer {token}"));
        let body = match body {
            Some(v) => {
                req = req.header("content-type", "application/json");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        self.call(req.body(body).unwrap()).await
    }

    fn tus(&self, method: Method, uri: &str) -> http::request::Builder {
        Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", format!("Bearer {CLINIC}"))
            .header("tus-resumable", "1.0.0")
    }

    /// A plain creation of `length` bytes (no body).
    async fn create(&self, length: u64) -> Answer {
        let req = self
            .tus(Method::POST, "/files/")
            .header("upload-length", length.to_string())
            .body(Body::empty())
            .unwrap();
        self.call(req).await
    }

    /// A creation that carries all of `bytes`.
    async fn create_with(&self, bytes: &[u8]) -> Answer {
        let req = self
            .tus(Method::POST, "/files/")
            .header("upload-length", bytes.len().to_string())
            .header("content-type", "application/offset+octet-stream")
            .body(Body::from(bytes.to_vec()))
            .unwrap();
        self.call(req).await
    }

    async fn patch(&self, id: &str, offset: u64, bytes: &[u8]) -> Answer {
        let req = self
            .tus(Method::PATCH, &format!("/files/{id}"))
            .header("upload-offset", offset.to_string())
            .header("content-type", "application/offset+octet-stream")
            .body(Body::from(bytes.to_vec()))
            .unwrap();
        self.call(req).await
    }

    async fn head(&self, id: &str) -> Answer {
        let req = self
            .tus(Method::HEAD, &format!("/files/{id}"))
            .body(Body::empty())
            .unwrap();
        self.call(req).await
    }

    async fn delete(&self, id: &str) -> Answer {
        let req = self
            .tus(Method::DELETE, &format!("/files/{id}"))
            .body(Body::empty())
            .unwrap();
        self.call(req).await
    }

    fn import(&self, name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let path = self.dir.path().join("data/import").join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// Registers an imported file; the answer.
    async fn register_import(&self, name: &str) -> Answer {
        self.send(
            Method::POST,
            "/v1/artifacts",
            ADMIN,
            Some(json!({"import": name, "content_type": "text/plain"})),
        )
        .await
    }

    /// An artifact made from an import, ready for links.
    async fn artifact(&self) -> String {
        self.import("export.txt", b"an export artifact\n");
        let a = self.register_import("export.txt").await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
        a.json()["artifact"].as_str().unwrap().to_owned()
    }

    /// Every audit entry: (action, outcome, details).
    async fn entries(&self) -> Vec<(String, String, Value)> {
        let log = self.state.log_read(AUDIT_LOG, 1, 10_000).await.unwrap();
        let parsed: Vec<Value> = log
            .iter()
            .map(|e| serde_json::from_slice(&e.bytes).unwrap())
            .collect();
        support::audit_schema::assert_entries(&parsed);
        log.iter()
            .map(|e| {
                let v: Value = serde_json::from_slice(&e.bytes).unwrap();
                (
                    v["action"].as_str().unwrap().to_owned(),
                    v["outcome"].as_str().unwrap().to_owned(),
                    v["details"].clone(),
                )
            })
            .collect()
    }

    /// The actions of the entries, in order.
    async fn actions(&self) -> Vec<String> {
        self.entries().await.into_iter().map(|e| e.0).collect()
    }

    /// Fails the audit append after `n` good ones; returns the faults fired so far, for
    /// [`Harness::assert_fired`].
    fn arm(&self, n: u64) -> u64 {
        let before = self.state.log_faults_fired();
        self.state.fail_log_append_after(n);
        before
    }

    fn assert_fired(&self, before: u64) {
        assert!(!self.state.log_fault_armed(), "the armed fault never fired");
        assert_eq!(self.state.log_faults_fired(), before + 1);
    }

    /// Records in `ns`.
    async fn records(&self, ns: sallyport::state::Namespace) -> Vec<String> {
        self.state.list(ns, None, 1_000).await.unwrap()
    }

    async fn chain_verifies(&self) {
        let summary = sallyport::audit::verify_store(
            &sallyport::audit::log::StateLog::new(self.state.clone()),
            |_| {},
        )
        .await
        .unwrap()
        .expect("the audit chain verifies");
        assert!(summary.length > 0);
    }
}

const UPLOADS: sallyport::state::Namespace = sallyport::upload::store::UPLOADS;
const PENDING: sallyport::state::Namespace = sallyport::upload::store::PENDING;
const ARTIFACTS: sallyport::state::Namespace = sallyport::artifact::ARTIFACT_NAMESPACE;
const GRANTS: sallyport::state::Namespace = sallyport::grant::GRANT_NAMESPACE;
const BATCHES: sallyport::state::Namespace = sallyport::batch::store::BATCHES;
const MEMBERS: sallyport::state::Namespace = sallyport::batch::store::MEMBERS;

fn count(actions: &[String], action: &str) -> usize {
    actions.iter().filter(|a| *a == action).count()
}

// === uploads ===

#[tokio::test]
async fn a_creation_whose_entry_fails_is_undone() {
    let h = harness().await;
    let fired = h.arm(0);
    let a = h.create(10).await;
    h.assert_fired(fired);
    assert_eq!(
        (a.status, a.code().as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "server.audit_unavailable"),
        "{}",
        a.text()
    );
    assert!(h.records(UPLOADS).await.is_empty(), "no upload stays");
    assert_eq!(count(&h.actions().await, "upload.created"), 0);

    let a = h.create(10).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
    assert_eq!(h.records(UPLOADS).await, vec![a.location_id()]);
    assert_eq!(count(&h.actions().await, "upload.created"), 1);
    h.chain_verifies().await;
}

#[tokio::test]
async fn a_creation_with_upload_whose_chunk_entry_fails_is_undone() {
    let h = harness().await;
    // `upload.created` is written, the chunk's entry is not.
    let fired = h.arm(1);
    let a = h.create_with(b"first and only chunk").await;
    h.assert_fired(fired);
    assert_eq!(
        (a.status, a.code().as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "server.audit_unavailable"),
        "{}",
        a.text()
    );
    assert!(h.records(UPLOADS).await.is_empty(), "no upload stays");
    assert!(h.records(PENDING).await.is_empty());
    // The trail says what happened: created, then undone.
    let actions = h.actions().await;
    assert_eq!(count(&actions, "upload.created"), 1);
    assert_eq!(count(&actions, "upload.terminated"), 1);
    assert_eq!(count(&actions, "upload.chunk_accepted"), 0);

    let a = h.create_with(b"first and only chunk").await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
    let actions = h.actions().await;
    assert_eq!(count(&actions, "upload.chunk_accepted"), 1);
    assert_eq!(count(&actions, "upload.completed"), 1);
    h.chain_verifies().await;
}

#[tokio::test]
async fn a_chunk_whose_entry_fails_is_answered_503_and_its_entry_recovered_before_any_use() {
    let h = harness().await;
    let id = h.create(10).await.location_id();
    let fired = h.arm(0);
    let a = h.patch(&id, 0, b"01234").await;
    h.assert_fired(fired);
    assert_eq!(
        (a.status, a.code().as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "upload.audit_pending"),
        "{}",
        a.text()
    );
    // The bytes are durable and no entry names them yet: the pending record stays.
    assert_eq!(count(&h.actions().await, "upload.chunk_accepted"), 0);
    assert_eq!(h.records(PENDING).await, vec![id.clone()]);

    // The client's next step (HEAD) writes the entry, marked recovered, then answers.
    let a = h.head(&id).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.headers["upload-offset"], "5");
    let entries = h.entries().await;
    let chunks: Vec<_> = entries
        .iter()
        .filter(|e| e.0 == "upload.chunk_accepted")
        .collect();
    assert_eq!(chunks.len(), 1);
    assert_eq!(chunks[0].2["recovered"], true);
    assert_eq!(chunks[0].2["offset"], 0);
    assert_eq!(chunks[0].2["length"], 5);
    assert!(h.records(PENDING).await.is_empty());

    let a = h.patch(&id, 5, b"56789").await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.text());
    let actions = h.actions().await;
    assert_eq!(count(&actions, "upload.chunk_accepted"), 2);
    assert_eq!(count(&actions, "upload.completed"), 1);
    h.chain_verifies().await;
}

#[tokio::test]
async fn a_chunk_whose_entry_fails_is_recovered_by_the_next_patch() {
    let h = harness().await;
    let id = h.create(10).await.location_id();
    let fired = h.arm(0);
    let a = h.patch(&id, 0, b"01234").await;
    h.assert_fired(fired);
    assert_eq!(a.code(), "upload.audit_pending");
    // A client that resumes without a HEAD: its PATCH at the advanced offset recovers the
    // missing entry before its own chunk.
    let a = h.patch(&id, 5, b"56789").await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.text());
    let entries = h.entries().await;
    let chunks: Vec<_> = entries
        .iter()
        .filter(|e| e.0 == "upload.chunk_accepted")
        .map(|e| {
            (
                e.2["offset"].as_u64().unwrap(),
                e.2["recovered"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(chunks, vec![(0, true), (5, false)]);
    h.chain_verifies().await;
}

#[tokio::test]
async fn a_completion_whose_entry_fails_is_recovered_before_the_upload_becomes_an_artifact() {
    let h = harness().await;
    let id = h.create(10).await.location_id();
    // The completing chunk's entries (its own and the completion's, one append) are not
    // written.
    let fired = h.arm(0);
    let a = h.patch(&id, 0, b"0123456789").await;
    h.assert_fired(fired);
    assert_eq!(
        (a.status, a.code().as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "upload.audit_pending"),
        "{}",
        a.text()
    );
    assert_eq!(count(&h.actions().await, "upload.completed"), 0);

    // A registration of the upload writes the missing entry first.
    let a = h
        .send(
            Method::POST,
            "/v1/artifacts",
            ADMIN,
            Some(json!({"upload": id, "content_type": "text/plain"})),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
    let actions = h.actions().await;
    let completed = actions.iter().position(|a| a == "upload.completed");
    let registered = actions.iter().position(|a| a == "artifact.registered");
    assert!(completed.is_some() && completed < registered, "{actions:?}");
    let entries = h.entries().await;
    let e = entries.iter().find(|e| e.0 == "upload.completed").unwrap();
    assert_eq!(e.2["recovered"], true);
    assert_eq!(e.2["length"], 10);
    h.chain_verifies().await;
}

#[tokio::test]
async fn a_delete_whose_entry_fails_destroys_nothing() {
    let h = harness().await;
    let id = h.create_with(b"keep me").await.location_id();
    let fired = h.arm(0);
    let a = h.delete(&id).await;
    h.assert_fired(fired);
    assert_eq!(
        (a.status, a.code().as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "server.audit_unavailable"),
        "{}",
        a.text()
    );
    assert_eq!(h.records(UPLOADS).await, vec![id.clone()]);
    let a = h.head(&id).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.headers["upload-offset"], "7");
    assert_eq!(count(&h.actions().await, "upload.terminated"), 0);
    let a = h.delete(&id).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.text());
    assert!(h.records(UPLOADS).await.is_empty());
    assert_eq!(count(&h.actions().await, "upload.terminated"), 1);
    h.chain_verifies().await;
}

#[tokio::test]
async fn a_concatenation_whose_completion_entry_fails_is_undone() {
    let h = harness().await;
    let mut parts = Vec::new();
    for bytes in [&b"part one,"[..], &b" part two"[..]] {
        let req = h
            .tus(Method::POST, "/files/")
            .header("upload-length", bytes.len().to_string())
            .header("upload-concat", "partial")
            .header("content-type", "application/offset+octet-stream")
            .body(Body::from(bytes.to_vec()))
            .unwrap();
        let a = h.call(req).await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
        parts.push(format!("/files/{}", a.location_id()));
    }
    let concat = format!("final;{}", parts.join(" "));
    let final_req = || {
        h.tus(Method::POST, "/files/")
            .header("upload-concat", concat.clone())
            .body(Body::empty())
            .unwrap()
    };
    // `upload.created` of the final is written, its `upload.completed` is not.
    let fired = h.arm(1);
    let a = h.call(final_req()).await;
    h.assert_fired(fired);
    assert_eq!(
        (a.status, a.code().as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "server.audit_unavailable"),
        "{}",
        a.text()
    );
    assert_eq!(h.records(UPLOADS).await.len(), 2, "only the parts stay");

    let a = h.call(final_req()).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
    assert_eq!(h.records(UPLOADS).await.len(), 3);
    h.chain_verifies().await;
}

#[tokio::test]
async fn the_expiry_sweeper_audits_before_it_destroys() {
    use sallyport::tus::dates::Timestamp;
    let h = harness().await;
    let id = h.create(10).await.location_id();
    let uploads = &h.app.state.uploads;
    let later = Timestamp::from_unix(Timestamp::now().unix() + 30 * 86_400).unwrap();
    let fired = h.arm(0);
    assert!(uploads.sweep_expired_at(later).await.is_err());
    h.assert_fired(fired);
    assert_eq!(h.records(UPLOADS).await, vec![id.clone()]);
    assert_eq!(count(&h.actions().await, "upload.expired"), 0);

    assert_eq!(uploads.sweep_expired_at(later).await.unwrap(), 1);
    assert!(h.records(UPLOADS).await.is_empty());
    assert_eq!(count(&h.actions().await, "upload.expired"), 1);
    h.chain_verifies().await;
}

// === artifacts and links ===

#[tokio::test]
async fn an_import_whose_entry_fails_is_not_registered_and_keeps_its_source() {
    let h = harness().await;
    let path = h.import("export.txt", b"an export artifact\n");
    let fired = h.arm(0);
    let a = h.register_import("export.txt").await;
    h.assert_fired(fired);
    assert_eq!(
        (a.status, a.code().as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "server.audit_unavailable"),
        "{}",
        a.text()
    );
    assert!(h.records(ARTIFACTS).await.is_empty(), "no artifact stays");
    assert!(path.exists(), "the source is removed only after the entry");
    assert_eq!(count(&h.actions().await, "artifact.registered"), 0);

    let a = h.register_import("export.txt").await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
    assert_eq!(a.json()["source_removed"], true);
    assert!(!path.exists());
    assert_eq!(h.records(ARTIFACTS).await.len(), 1);
    let entries = h.entries().await;
    let e = entries
        .iter()
        .find(|e| e.0 == "artifact.registered")
        .unwrap();
    assert_eq!(e.2["remove_source"], true);
    h.chain_verifies().await;
}

#[tokio::test]
async fn an_upload_registration_whose_entry_fails_is_forgotten() {
    let h = harness().await;
    let id = h.create_with(b"finished upload").await.location_id();
    let register = || {
        h.send(
            Method::POST,
            "/v1/artifacts",
            ADMIN,
            Some(json!({"upload": id, "content_type": "text/plain"})),
        )
    };
    let fired = h.arm(0);
    let a = register().await;
    h.assert_fired(fired);
    assert_eq!(
        (a.status, a.code().as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "server.audit_unavailable"),
        "{}",
        a.text()
    );
    assert!(h.records(ARTIFACTS).await.is_empty(), "no artifact stays");
    let artifacts = sallyport::artifact::Artifacts::new(h.state.clone());
    assert!(
        !artifacts
            .registered_from(id.parse().unwrap())
            .await
            .unwrap()
    );

    let a = register().await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
    assert_eq!(count(&h.actions().await, "artifact.registered"), 1);
    h.chain_verifies().await;
}

#[tokio::test]
async fn a_link_whose_entry_fails_is_never_issued_and_its_grant_forgotten() {
    let h = harness().await;
    let artifact = h.artifact().await;
    let issue = || {
        h.send(
            Method::POST,
            "/v1/links",
            ADMIN,
            Some(json!({"artifact": artifact, "partner": "payer-1"})),
        )
    };
    let fired = h.arm(0);
    let a = issue().await;
    h.assert_fired(fired);
    assert_eq!(
        (a.status, a.code().as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "server.audit_unavailable"),
        "{}",
        a.text()
    );
    assert!(a.json()["path"].is_null(), "no link in the answer");
    assert!(h.records(GRANTS).await.is_empty(), "no grant stays");

    let a = issue().await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
    assert_eq!(h.records(GRANTS).await.len(), 1);
    assert_eq!(count(&h.actions().await, "link.issued"), 1);
    // The link works.
    let path = a.json()["path"].as_str().unwrap().to_owned();
    let req = Request::get(&path).body(Body::empty()).unwrap();
    assert_eq!(h.call(req).await.status, StatusCode::OK);
    h.chain_verifies().await;
}

#[tokio::test]
async fn a_revocation_is_requested_in_the_trail_before_it_is_made() {
    let h = harness().await;
    let artifact = h.artifact().await;
    let a = h
        .send(
            Method::POST,
            "/v1/links",
            ADMIN,
            Some(json!({"artifact": artifact, "partner": "payer-1"})),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
    let grant = a.json()["grant"].as_str().unwrap().to_owned();
    let path = a.json()["path"].as_str().unwrap().to_owned();
    let uri = format!("/v1/links/{grant}");
    let revoke = || h.send(Method::DELETE, &uri, ADMIN, None);

    // The intent cannot be written: nothing is revoked.
    let fired = h.arm(0);
    let a = revoke().await;
    h.assert_fired(fired);
    assert_eq!(
        (a.status, a.code().as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "server.audit_unavailable"),
        "{}",
        a.text()
    );
    let req = Request::get(&path).body(Body::empty()).unwrap();
    assert_eq!(
        h.call(req).await.status,
        StatusCode::OK,
        "the link still works"
    );
    let actions = h.actions().await;
    assert_eq!(count(&actions, "link.revoke_requested"), 0);
    assert_eq!(count(&actions, "link.revoked"), 0);

    let a = revoke().await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert_eq!(a.json()["status"], "revoked");
    let actions = h.actions().await;
    let requested = actions.iter().position(|a| a == "link.revoke_requested");
    let revoked = actions.iter().position(|a| a == "link.revoked");
    assert!(requested.is_some() && requested < revoked, "{actions:?}");
    let req = Request::get(&path).body(Body::empty()).unwrap();
    assert_eq!(h.call(req).await.status, StatusCode::FORBIDDEN);
    h.chain_verifies().await;
}

// === batches ===

fn manifest(name: &str, bytes: &[u8]) -> Value {
    json!({
        "version": "sallyport.manifest/1",
        "members": [{
            "name": name,
            "size": bytes.len(),
            "sha256": support::data::sha256_hex(bytes),
            "media_type": "text/plain",
        }],
        "total_members": 1,
        "total_bytes": bytes.len(),
    })
}

const NOTES: &[u8] = b"referral notes\n";

impl Harness {
    async fn open_batch(&self) -> Answer {
        self.send(
            Method::POST,
            "/v1/batches",
            CLINIC,
            Some(json!({"manifest": manifest("notes.txt", NOTES)})),
        )
        .await
    }

    async fn create_member(&self, batch: &str) -> Answer {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        let meta = format!(
            "batch {},member {}",
            b64.encode(batch),
            b64.encode("notes.txt")
        );
        let req = self
            .tus(Method::POST, "/files/")
            .header("upload-length", NOTES.len().to_string())
            .header("upload-metadata", meta)
            .body(Body::empty())
            .unwrap();
        self.call(req).await
    }

    async fn batch_state(&self, batch: &str) -> String {
        let a = self
            .send(Method::GET, &format!("/v1/batches/{batch}"), CLINIC, None)
            .await;
        a.json()["state"].as_str().unwrap_or_default().to_owned()
    }
}

#[tokio::test]
async fn a_batch_whose_opening_entry_fails_is_undone() {
    let h = harness().await;
    let fired = h.arm(0);
    let a = h.open_batch().await;
    h.assert_fired(fired);
    assert_eq!(
        (a.status, a.code().as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "server.audit_unavailable"),
        "{}",
        a.text()
    );
    assert!(h.records(BATCHES).await.is_empty(), "no batch stays");

    let a = h.open_batch().await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
    assert_eq!(h.records(BATCHES).await.len(), 1);
    assert_eq!(count(&h.actions().await, "batch.opened"), 1);
    h.chain_verifies().await;
}

#[tokio::test]
async fn a_member_whose_entry_fails_is_not_admitted() {
    let h = harness().await;
    let batch = h.open_batch().await.json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let fired = h.arm(0);
    let a = h.create_member(&batch).await;
    h.assert_fired(fired);
    assert_eq!(
        (a.status, a.code().as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "server.audit_unavailable"),
        "{}",
        a.text()
    );
    assert!(h.records(MEMBERS).await.is_empty(), "no binding stays");
    assert!(h.records(UPLOADS).await.is_empty(), "no upload was created");

    let a = h.create_member(&batch).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
    assert_eq!(h.records(MEMBERS).await.len(), 1);
    assert_eq!(count(&h.actions().await, "batch.member_added"), 1);
    h.chain_verifies().await;
}

#[tokio::test]
async fn a_seal_is_requested_in_the_trail_before_it_is_made() {
    let h = harness().await;
    let batch = h.open_batch().await.json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let uri = format!("/v1/batches/{batch}/seal");
    let seal = || h.send(Method::POST, &uri, CLINIC, None);
    let fired = h.arm(0);
    let a = seal().await;
    h.assert_fired(fired);
    assert_eq!(
        (a.status, a.code().as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "server.audit_unavailable"),
        "{}",
        a.text()
    );
    assert_eq!(h.batch_state(&batch).await, "open");
    assert_eq!(count(&h.actions().await, "batch.sealed"), 0);

    let a = seal().await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.text());
    let actions = h.actions().await;
    let requested = actions.iter().position(|a| a == "batch.change_requested");
    let sealed = actions.iter().position(|a| a == "batch.sealed");
    assert!(requested.is_some() && requested < sealed, "{actions:?}");
    h.chain_verifies().await;
}

#[tokio::test]
async fn an_expiring_batch_is_audited_before_its_members_are_destroyed() {
    let h = harness().await;
    let batch = h.open_batch().await.json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let a = h.create_member(&batch).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
    let upload = a.location_id();
    let batches = &h.app.state.batches;
    let later = sallyport::grant::now_unix() + 60 * 86_400;
    let fired = h.arm(0);
    assert!(batches.sweep_at(later).await.is_err());
    h.assert_fired(fired);
    assert_eq!(h.batch_state(&batch).await, "open");
    assert_eq!(h.records(UPLOADS).await, vec![upload]);

    let swept = batches.sweep_at(later).await.unwrap();
    assert_eq!(swept.expired, 1);
    assert_eq!(h.batch_state(&batch).await, "expired");
    assert!(h.records(UPLOADS).await.is_empty());
    let actions = h.actions().await;
    let requested = actions.iter().position(|a| a == "batch.change_requested");
    let shredded = actions.iter().position(|a| a == "upload.shredded");
    let expired = actions.iter().position(|a| a == "batch.expired");
    assert!(
        requested.is_some() && requested < shredded && shredded < expired,
        "{actions:?}"
    );
    h.chain_verifies().await;
}

impl Harness {
    /// A batch whose one member arrived with the wrong bytes, sealed and quarantined; its
    /// id and the member's upload id.
    async fn quarantined_batch(&self) -> (String, String) {
        let batch = self.open_batch().await.json()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let upload = self.create_member(&batch).await.location_id();
        let wrong = b"referral NOTES\n";
        assert_eq!(wrong.len(), NOTES.len());
        let a = self.patch(&upload, 0, wrong).await;
        assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.text());
        let a = self
            .send(
                Method::POST,
                &format!("/v1/batches/{batch}/seal"),
                CLINIC,
                None,
            )
            .await;
        assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.text());
        for _ in 0..400 {
            if self.batch_state(&batch).await != "sealing" {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        assert_eq!(self.batch_state(&batch).await, "quarantined");
        (batch, upload)
    }
}

#[tokio::test]
async fn a_release_is_requested_in_the_trail_before_it_is_made() {
    let h = harness().await;
    let (batch, _) = h.quarantined_batch().await;
    let uri = format!("/v1/batches/{batch}/release");
    let release = || {
        h.send(
            Method::POST,
            &uri,
            ADMIN,
            Some(json!({"reason": "checked by hand"})),
        )
    };
    let fired = h.arm(0);
    let a = release().await;
    h.assert_fired(fired);
    assert_eq!(
        (a.status, a.code().as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "server.audit_unavailable"),
        "{}",
        a.text()
    );
    assert_eq!(h.batch_state(&batch).await, "quarantined");
    assert_eq!(count(&h.actions().await, "batch.released"), 0);

    let a = release().await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert_eq!(h.batch_state(&batch).await, "released");
    let entries = h.entries().await;
    let requested = entries
        .iter()
        .position(|e| e.0 == "batch.change_requested" && e.2["change"] == "release");
    let released = entries.iter().position(|e| e.0 == "batch.released");
    assert!(requested.is_some() && requested < released, "{entries:?}");
    h.chain_verifies().await;
}

#[tokio::test]
async fn a_purge_is_requested_in_the_trail_before_anything_is_destroyed() {
    let h = harness().await;
    let (batch, upload) = h.quarantined_batch().await;
    let uri = format!("/v1/batches/{batch}/purge");
    let purge = || {
        h.send(
            Method::POST,
            &uri,
            ADMIN,
            Some(json!({"reason": "wrong patient"})),
        )
    };
    let fired = h.arm(0);
    let a = purge().await;
    h.assert_fired(fired);
    assert_eq!(
        (a.status, a.code().as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "server.audit_unavailable"),
        "{}",
        a.text()
    );
    assert_eq!(h.batch_state(&batch).await, "quarantined");
    assert_eq!(h.records(UPLOADS).await, vec![upload]);

    let a = purge().await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert_eq!(h.batch_state(&batch).await, "purged");
    assert!(h.records(UPLOADS).await.is_empty());
    let entries = h.entries().await;
    let requested = entries
        .iter()
        .position(|e| e.0 == "batch.change_requested" && e.2["change"] == "purge");
    let shredded = entries.iter().position(|e| e.0 == "upload.shredded");
    let purged = entries.iter().position(|e| e.0 == "batch.purged");
    assert!(
        requested.is_some() && requested < shredded && shredded < purged,
        "{entries:?}"
    );
    h.chain_verifies().await;
}

#[tokio::test]
async fn a_member_completion_whose_entry_fails_is_recovered_before_the_verdict() {
    let h = harness().await;
    let batch = h.open_batch().await.json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let upload = h.create_member(&batch).await.location_id();
    // The completing chunk's entries (its own and the completion's, one append) are not
    // written.
    let fired = h.arm(0);
    let a = h.patch(&upload, 0, NOTES).await;
    h.assert_fired(fired);
    assert_eq!(
        (a.status, a.code().as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "upload.audit_pending"),
        "{}",
        a.text()
    );
    // The client seals without a HEAD: the seal recovers the entry before its verdict.
    let a = h
        .send(
            Method::POST,
            &format!("/v1/batches/{batch}/seal"),
            CLINIC,
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.text());
    for _ in 0..400 {
        if h.batch_state(&batch).await != "sealing" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(h.batch_state(&batch).await, "released");
    let entries = h.entries().await;
    let completed = entries.iter().position(|e| e.0 == "upload.completed");
    let verdict = entries.iter().position(|e| e.0 == "batch.verdict");
    assert!(completed.is_some() && completed < verdict, "{entries:?}");
    assert_eq!(entries[completed.unwrap()].2["recovered"], true);
    assert!(h.records(PENDING).await.is_empty());
    h.chain_verifies().await;
}

#[tokio::test]
async fn a_revocation_whose_outcome_entry_fails_stands_and_its_retry_is_recorded() {
    let h = harness().await;
    let artifact = h.artifact().await;
    let a = h
        .send(
            Method::POST,
            "/v1/links",
            ADMIN,
            Some(json!({"artifact": artifact, "partner": "payer-1"})),
        )
        .await;
    let grant = a.json()["grant"].as_str().unwrap().to_owned();
    let path = a.json()["path"].as_str().unwrap().to_owned();
    let uri = format!("/v1/links/{grant}");
    // The intent is written, the outcome is not.
    let fired = h.arm(1);
    let a = h.send(Method::DELETE, &uri, ADMIN, None).await;
    h.assert_fired(fired);
    assert_eq!(
        (a.status, a.code().as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "server.audit_unavailable"),
        "{}",
        a.text()
    );
    // Fail closed: the link is dead, and the trail says a revocation was requested.
    let req = Request::get(&path).body(Body::empty()).unwrap();
    assert_eq!(h.call(req).await.status, StatusCode::FORBIDDEN);
    let actions = h.actions().await;
    assert_eq!(count(&actions, "link.revoke_requested"), 1);
    assert_eq!(count(&actions, "link.revoked"), 0);

    let a = h.send(Method::DELETE, &uri, ADMIN, None).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let entries = h.entries().await;
    let outcome = entries.iter().find(|e| e.0 == "link.revoked").unwrap();
    assert_eq!(outcome.2["already_revoked"], 1);
    h.chain_verifies().await;
}
