//! Helpers shared by the link and download tests: a publisher client in the config,
//! registering artifacts through the import directory, issuing links, reading the audit
//! trail.

use std::path::Path;

use serde_json::{Value, json};

pub use super::data::{data, sha256_hex};
use super::{Gateway, cli, token_hash};

pub const PUBLISHER_TOKEN: &str = "test-publisher-token-0123456789abcdefghijkl";

/// Config lines adding a publisher client (append to a test's `extra`).
pub fn publisher_toml() -> String {
    format!(
        "\n[[clients]]\nname = \"exporter\"\ntoken_sha256 = \"{}\"\nroles = [\"publisher\"]\n",
        token_hash(PUBLISHER_TOKEN)
    )
}

/// Starts a gateway with a publisher and 4 KiB segments (so small files span many).
pub fn start(extra: &str) -> Gateway {
    let extra = if extra.contains("[keys]") {
        extra.to_owned()
    } else {
        format!("{extra}\n[keys]\nsegment_size = 4096\n")
    };
    Gateway::start(&format!("{extra}{}", publisher_toml()))
}

pub fn import_dir(gw: &Gateway) -> std::path::PathBuf {
    gw.data_dir().join("import")
}

/// Places `bytes` in the import directory as `name`.
pub fn place(gw: &Gateway, name: &str, bytes: &[u8]) {
    std::fs::write(import_dir(gw).join(name), bytes).unwrap();
}

/// `POST /v1/artifacts` as the publisher; returns (status, body).
pub async fn register(gw: &Gateway, body: Value) -> (u16, Value) {
    let resp = gw
        .client()
        .post(gw.url("/v1/artifacts"))
        .bearer_auth(PUBLISHER_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}\ngateway log:\n{}", gw.drain_stderr().join("\n")));
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

/// Imports `bytes` as `name` and returns the artifact id.
pub async fn import(gw: &Gateway, name: &str, bytes: &[u8]) -> String {
    place(gw, name, bytes);
    let (status, body) = register(gw, json!({"import": name})).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["length"], bytes.len() as u64);
    assert_eq!(body["sha256"], sha256_hex(bytes));
    body["artifact"].as_str().unwrap().to_owned()
}

/// `POST /v1/links` as the publisher; returns (status, body).
pub async fn issue_raw(gw: &Gateway, body: Value) -> (u16, Value) {
    let resp = gw
        .client()
        .post(gw.url("/v1/links"))
        .bearer_auth(PUBLISHER_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

/// Issues a link; returns the answer (with `url`, `path`, `grant`).
pub async fn issue(gw: &Gateway, body: Value) -> Value {
    let (status, out) = issue_raw(gw, body).await;
    assert_eq!(status, 201, "{out}");
    out
}

/// The link's URL as the test client reaches the gateway.
pub fn link_url(gw: &Gateway, issued: &Value) -> String {
    gw.url(issued["path"].as_str().unwrap())
}

/// Stops the gateway and returns the audit trail (`sallyport audit export`).
pub fn stop_and_export_audit(gw: &mut Gateway) -> Vec<Value> {
    let status = gw.stop();
    assert!(status.success(), "{status:?}");
    export_audit(&gw.config_path)
}

/// The audit trail of the store `config` names (the gateway must not hold it), each entry
/// checked against `proto/audit-event-v1.schema.json`.
pub fn export_audit(config: &Path) -> Vec<Value> {
    super::audit_schema::parse_export(&cli(config, &["audit", "export"]))
}

/// Entries with this action.
pub fn actions<'a>(entries: &'a [Value], action: &str) -> Vec<&'a Value> {
    entries.iter().filter(|e| e["action"] == action).collect()
}

/// `method path` as `token`'s client with an optional JSON body: the status and the JSON
/// answer (`Null` when the answer is not JSON).
pub async fn call(
    gw: &Gateway,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = gw.client().request(method, gw.url(path)).bearer_auth(token);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Creates and completes an upload of `bytes` as `token`'s client in one request
/// (creation-with-upload); returns the upload id.
pub async fn upload_as(gw: &Gateway, token: &str, bytes: &[u8]) -> String {
    let resp = gw
        .client()
        .post(gw.url("/files/"))
        .bearer_auth(token)
        .header("tus-resumable", "1.0.0")
        .header("upload-length", bytes.len().to_string())
        .header("content-type", "application/offset+octet-stream")
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    location.rsplit('/').next().unwrap().to_owned()
}
