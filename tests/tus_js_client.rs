#![allow(clippy::unwrap_used, clippy::expect_used)]
//! A real browser tus client against the real gateway: tus-js-client (npm) under node
//! uploads a file in chunks (it sends no checksums), is stopped part-way, resumes from the
//! upload URL in a new process, and the gateway's whole-file SHA-256 equals the file's.
//!
//! tus-js-client is installed with npm into the target directory (never into the source
//! tree). Without node or npm, or when the install fails, the test fails when `CI` is set
//! and is skipped with a notice otherwise.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::tus_http::*;
use support::{Gateway, UPLOADER_TOKEN};

const TUS_JS_CLIENT: &str = "tus-js-client@4.3.1";

/// Uploads a file the way a web page would: chunked, without checksums. Stops (aborts)
/// after `stopAfter` chunks when that is > 0. Prints one JSON line.
const SCRIPT: &str = r#"'use strict';
const tus = require('tus-js-client');
const fs = require('fs');
const [endpoint, token, file, chunkSize, stopAfter, uploadUrl] = process.argv.slice(2);
const data = fs.readFileSync(file);
let chunks = 0;
const upload = new tus.Upload(data, {
  endpoint,
  uploadUrl: uploadUrl || null,
  chunkSize: Number(chunkSize),
  retryDelays: null,
  headers: { Authorization: `Bearer ${token}` },
  metadata: { filename: 'referral.pdf', filetype: 'application/pdf' },
  onChunkComplete(size, accepted) {
    chunks += 1;
    if (Number(stopAfter) > 0 && chunks >= Number(stopAfter)) {
      upload.abort().then(() => {
        console.log(JSON.stringify({ stopped: true, url: upload.url, accepted, chunks }));
        process.exit(0);
      });
    }
  },
  onError(err) {
    console.error(String(err));
    process.exit(1);
  },
  onSuccess() {
    console.log(JSON.stringify({ done: true, url: upload.url, chunks }));
  },
});
upload.start();
"#;

/// Not available here: fail under CI, otherwise skip with a notice.
fn unavailable(why: &str) -> Option<PathBuf> {
    support::ci::skip("the tus-js-client test's client", why);
    None
}

/// The directory holding tus-js-client and the script, installing it on first use.
fn client_dir() -> Option<PathBuf> {
    let node = Command::new("node").arg("--version").output();
    if !node.is_ok_and(|o| o.status.success()) {
        return unavailable("node is not installed");
    }
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("tus-js-client-4.3.1");
    if !dir.join("node_modules/tus-js-client/package.json").exists() {
        std::fs::create_dir_all(&dir).unwrap();
        let out = Command::new("npm")
            .args([
                "install",
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
                "--prefix",
            ])
            .arg(&dir)
            .arg(TUS_JS_CLIENT)
            .output();
        match out {
            Ok(o) if o.status.success() => {}
            Ok(o) => {
                return unavailable(&format!(
                    "npm install {TUS_JS_CLIENT} failed: {}",
                    String::from_utf8_lossy(&o.stderr)
                ));
            }
            Err(e) => return unavailable(&format!("npm cannot run: {e}")),
        }
    }
    std::fs::write(dir.join("upload.js"), SCRIPT).unwrap();
    Some(dir)
}

/// Runs the script; returns its JSON line.
fn run(dir: &Path, gw: &Gateway, file: &Path, stop_after: u32, url: &str) -> serde_json::Value {
    // The dev certificate names 127.0.0.1, which node reaches without a resolver.
    let endpoint = format!("https://127.0.0.1:{}/files/", gw.addr.port());
    let out = Command::new("node")
        .current_dir(dir)
        .env("NODE_EXTRA_CA_CERTS", gw.ca_path())
        .arg("upload.js")
        .arg(&endpoint)
        .arg(UPLOADER_TOKEN)
        .arg(file)
        .arg((1u32 << 20).to_string())
        .arg(stop_after.to_string())
        .arg(url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tus-js-client failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tus_js_client_uploads_in_chunks_is_interrupted_and_resumes() {
    let Some(dir) = tokio::task::block_in_place(client_dir) else {
        return;
    };
    let gw = Gateway::start("");
    let tus = Tus::new(&gw);
    let body = data((3 << 20) + 12_345, 11);
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &body).unwrap();
    // First session: two 1 MiB chunks, then the page is closed.
    let first = tokio::task::block_in_place(|| run(&dir, &gw, file.path(), 2, ""));
    assert_eq!(first["stopped"], true, "{first}");
    assert_eq!(first["accepted"], 2 << 20);
    let url = first["url"].as_str().unwrap().to_owned();
    let path = url
        .strip_prefix(&format!("https://127.0.0.1:{}", gw.addr.port()))
        .unwrap_or_else(|| panic!("{url}"))
        .to_owned();
    assert_eq!(tus.offset(&path).await, 2 << 20);
    // Second session resumes from the upload URL (HEAD, then the remaining chunks).
    let second = tokio::task::block_in_place(|| run(&dir, &gw, file.path(), 0, &url));
    assert_eq!(second["done"], true, "{second}");
    assert_eq!(second["url"], url);
    assert_eq!(second["chunks"], 2);
    let head = tus.head(&path).await;
    assert_eq!(header(&head, "upload-offset"), body.len().to_string());
    assert_eq!(header(&head, "repr-digest"), repr_digest(&body));
    assert_eq!(
        header(&head, "upload-metadata"),
        format!(
            "filename {},filetype {}",
            b64(b"referral.pdf"),
            b64(b"application/pdf")
        )
    );
    let ledger = tus.ledger(&path).await;
    assert_eq!(ledger["sha256"], sha256_hex(&body));
    let chunks = ledger["chunks"].as_array().unwrap();
    assert_eq!(chunks.len(), 4);
    for (i, c) in chunks.iter().enumerate() {
        assert_eq!(c["offset"], i << 20);
        assert_eq!(c["checksum_verified"], serde_json::Value::Null);
        assert_eq!(c["principal"], "clinic");
        let end = ((i + 1) << 20).min(body.len());
        assert_eq!(c["sha256"], sha256_hex(&body[i << 20..end]));
    }
}
