//! A client for the batches API (`proto/batches-v1.md`) against the real gateway: the
//! auditor clients the release tests need, raw calls that keep the status, headers and
//! exact body, and the waits a seal needs.
//!
//! Not here: the documents (`fhir`), uploading members (`tuspy`), links (`links`).

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::Value;

use super::{Gateway, token_hash};

pub const AUDITOR_TOKEN: &str = "test-auditor-token-0123456789abcdefghijklm";
pub const AUDITOR2_TOKEN: &str = "test-auditor2-token-0123456789abcdefghijkl";

/// Config lines adding two auditors, `auditor-1` and `auditor-2` (append to `extra`).
pub fn auditors_toml() -> String {
    format!(
        "\n[[clients]]\nname = \"auditor-1\"\ntoken_sha256 = \"{}\"\nroles = [\"auditor\"]\n\n\
         [[clients]]\nname = \"auditor-2\"\ntoken_sha256 = \"{}\"\nroles = [\"auditor\"]\n",
        token_hash(AUDITOR_TOKEN),
        token_hash(AUDITOR2_TOKEN)
    )
}

/// One answer, whole.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The problem code, or `""`.
    pub fn code(&self) -> String {
        self.json()["code"].as_str().unwrap_or_default().to_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    /// (status, problem code), for refusals.
    pub fn refusal(&self) -> (u16, String) {
        (self.status, self.code())
    }
}

/// `method path` with a bearer token and an optional JSON body sent as these exact bytes.
pub async fn call(
    gw: &Gateway,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Vec<u8>>,
) -> Answer {
    let mut req = gw.client().request(method, gw.url(path)).bearer_auth(token);
    if let Some(b) = body {
        req = req.header("content-type", "application/json").body(b);
    }
    let resp = req.send().await.unwrap_or_else(|e| {
        panic!(
            "{path}: {e:?}\ngateway log:\n{}",
            gw.drain_stderr().join("\n")
        )
    });
    Answer {
        status: resp.status().as_u16(),
        headers: resp.headers().clone(),
        body: resp.bytes().await.unwrap().to_vec(),
    }
}

pub async fn get(gw: &Gateway, path: &str, token: &str) -> Answer {
    call(gw, Method::GET, path, token, None).await
}

pub async fn post(gw: &Gateway, path: &str, token: &str, body: Option<Vec<u8>>) -> Answer {
    call(gw, Method::POST, path, token, body).await
}

/// `POST /v1/batches` with `body` as is.
pub async fn open(gw: &Gateway, token: &str, body: Vec<u8>) -> Answer {
    post(gw, "/v1/batches", token, Some(body)).await
}

/// `POST /v1/batches/{id}/seal`.
pub async fn seal(gw: &Gateway, token: &str, id: &str) -> Answer {
    post(gw, &format!("/v1/batches/{id}/seal"), token, None).await
}

/// `POST /v1/batches/{id}/{action}` (`release`, `purge`) with a reason.
pub async fn decide(gw: &Gateway, token: &str, id: &str, action: &str, reason: &str) -> Answer {
    let body = serde_json::to_vec(&serde_json::json!({ "reason": reason })).unwrap();
    post(gw, &format!("/v1/batches/{id}/{action}"), token, Some(body)).await
}

/// Polls `GET /v1/batches/{id}` until the batch has left `sealing` (or `limit` passes);
/// returns the batch document.
pub async fn wait_verdict(gw: &Gateway, token: &str, id: &str, limit: Duration) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let a = get(gw, &format!("/v1/batches/{id}"), token).await;
        assert_eq!(
            a.status,
            200,
            "GET batch: {}",
            String::from_utf8_lossy(&a.body)
        );
        let doc = a.json();
        match doc["state"].as_str() {
            Some("sealing") | Some("open") if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            _ => return doc,
        }
    }
}

/// The codes of a report's findings, in order.
pub fn codes(report: &Value) -> Vec<&str> {
    report["findings"]
        .as_array()
        .unwrap_or_else(|| panic!("no findings list in {report}"))
        .iter()
        .map(|f| f["code"].as_str().unwrap())
        .collect()
}

/// `sha-256=:<base64>:` of `bytes` (a `Repr-Digest` value).
pub fn repr_digest(bytes: &[u8]) -> String {
    use base64::Engine;
    use sha2::Digest;
    format!(
        "sha-256=:{}:",
        base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(bytes))
    )
}
