//! Support for the end-to-end upload tests that run the real binary (`tus_real_client`,
//! `tus_crash`): random source files, a small tus client over reqwest (HEAD, ledger), the
//! checks of a finished upload against its source (HEAD's `Repr-Digest`, the ledger's
//! whole-file and per-chunk SHA-256s), and reading the stored object back through the
//! library once the gateway has stopped.
//!
//! Not here: starting the gateway (`gateway`), the tus protocol's conformance (`tus_http`).

use std::path::Path;
use std::sync::Arc;

use base64::Engine;
use sha2::{Digest, Sha256};

use sallyport::at_rest::{AtRest, SegmentSize};
use sallyport::blob::local::LocalBlobStore;
use sallyport::keys::keyring::KeyringFile;
use sallyport::state::embedded::EmbeddedStateStore;
use sallyport::tus::record::UploadId;

pub use super::data::{random_bytes, seed_from_env, sha256_hex};

/// The upload id at the end of an upload URL or `Location` (`…/files/{id}`).
pub fn upload_id(url: &str) -> UploadId {
    let last = url.trim_end_matches('/').rsplit('/').next().unwrap();
    last.parse()
        .unwrap_or_else(|e| panic!("{url:?} does not end in an upload id: {e}"))
}

/// A bearer-token tus client for one gateway.
#[derive(Clone)]
pub struct TusClient {
    pub http: reqwest::Client,
    /// `https://localhost:PORT` (no trailing slash).
    pub origin: String,
    pub token: String,
}

impl TusClient {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.origin)
    }

    /// `HEAD {base}{id}`: the status and the response headers.
    pub async fn head(&self, id: UploadId) -> reqwest::Result<reqwest::Response> {
        self.http
            .head(self.url(&format!("/files/{id}")))
            .header("Tus-Resumable", "1.0.0")
            .bearer_auth(&self.token)
            .send()
            .await
    }

    /// `GET {base}{id}/ledger` as JSON (asserts 200).
    pub async fn ledger(&self, id: UploadId) -> serde_json::Value {
        let r = self
            .http
            .get(self.url(&format!("/files/{id}/ledger")))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "ledger of {id}");
        r.json().await.unwrap()
    }

    /// `POST {base}` with `Upload-Length` and no body; returns the new upload's id.
    pub async fn create(&self, length: u64) -> UploadId {
        let r = self
            .http
            .post(self.url("/files/"))
            .header("Tus-Resumable", "1.0.0")
            .header("Upload-Length", length.to_string())
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "creation");
        upload_id(r.headers()["location"].to_str().unwrap())
    }
}

pub fn header<'a>(r: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    r.headers().get(name).map(|v| v.to_str().unwrap())
}

/// What the test knows about one chunk it sent: the ledger entry at `offset` with
/// `length` must say `checksum_verified == algorithm`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentChunk {
    pub offset: u64,
    pub length: u64,
    pub algorithm: Option<&'static str>,
}

/// Checks a finished upload against its source through the API: HEAD says complete with
/// `Repr-Digest` = SHA-256 of the source; the ledger is complete, its whole-file SHA-256
/// is the source's, its chunks are contiguous from 0 to the end, each chunk's SHA-256 is
/// that of the source slice it covers, and each chunk's `checksum_verified` is one of what
/// `verified(offset, length)` says the client sent in such a chunk (`Err` when the test
/// sent no such chunk). Returns the number of ledger chunks.
pub async fn check_finished_upload(
    client: &TusClient,
    id: UploadId,
    source: &[u8],
    verified: impl Fn(u64, u64) -> Result<Vec<Option<&'static str>>, String>,
) -> usize {
    let len = source.len() as u64;
    let whole = Sha256::digest(source);
    let head = client.head(id).await.unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(
        header(&head, "upload-offset"),
        Some(len.to_string().as_str())
    );
    assert_eq!(
        header(&head, "upload-length"),
        Some(len.to_string().as_str())
    );
    let b64 = base64::engine::general_purpose::STANDARD.encode(whole);
    assert_eq!(
        header(&head, "repr-digest"),
        Some(format!("sha-256=:{b64}:").as_str()),
        "HEAD's Repr-Digest is the SHA-256 of the source file"
    );
    assert_eq!(
        header(&head, "upload-expires"),
        None,
        "complete uploads do not expire"
    );

    let doc = client.ledger(id).await;
    assert_eq!(doc["v"], 1);
    assert_eq!(doc["upload"], id.to_string());
    assert_eq!(doc["complete"], true);
    assert_eq!(doc["offset"], len);
    assert_eq!(doc["length"], len);
    assert_eq!(
        doc["sha256"].as_str(),
        Some(hex::encode(whole).as_str()),
        "the ledger's whole-file SHA-256 is the source's"
    );
    let chunks = check_ledger_chunks(&doc, source, len, verified);
    assert!(chunks > 0);
    chunks
}

/// Checks a ledger document's chunks: contiguous from 0 to `offset` (which is also the
/// document's `offset`), each one's SHA-256 that of the source slice it covers and its
/// `checksum_verified` among those `verified(offset, length)` allows. Returns how many.
pub fn check_ledger_chunks(
    doc: &serde_json::Value,
    source: &[u8],
    offset: u64,
    verified: impl Fn(u64, u64) -> Result<Vec<Option<&'static str>>, String>,
) -> usize {
    assert_eq!(doc["offset"], offset, "the ledger's offset");
    let chunks = doc["chunks"].as_array().unwrap();
    let mut at = 0u64;
    for (i, c) in chunks.iter().enumerate() {
        assert_eq!(c["index"], i as u64, "chunk indexes count from 0");
        let start = c["offset"].as_u64().unwrap();
        let length = c["length"].as_u64().unwrap();
        assert_eq!(start, at, "chunk {i} starts where the previous one ended");
        assert!(length > 0, "chunk {i} is empty");
        assert!(start + length <= offset, "chunk {i} runs past the offset");
        let slice = &source[start as usize..(start + length) as usize];
        assert_eq!(
            c["sha256"].as_str(),
            Some(sha256_hex(slice).as_str()),
            "chunk {i} ({start}+{length}): its SHA-256 is the source slice's"
        );
        let allowed =
            verified(start, length).unwrap_or_else(|e| panic!("chunk {i} ({start}+{length}): {e}"));
        let got = c["checksum_verified"].as_str();
        assert!(
            allowed.contains(&got),
            "chunk {i} ({start}+{length}): checksum_verified {got:?}, expected one of {allowed:?}"
        );
        assert_eq!(c["principal"], "clinic");
        at += length;
    }
    assert_eq!(at, offset, "the chunks cover every byte up to the offset");
    chunks.len()
}

/// Reads an upload's plaintext back through the library from a stopped gateway's data
/// directory (local blobs, embedded state, keyring: the defaults the harness runs with).
pub async fn read_back(data_dir: &Path, id: UploadId) -> Vec<u8> {
    use futures_util::StreamExt;
    let blob = Arc::new(LocalBlobStore::open(&data_dir.join("blobs")).unwrap());
    let state = Arc::new(EmbeddedStateStore::open(&data_dir.join("state.redb")).unwrap());
    let keys = Arc::new(KeyringFile::open(&data_dir.join("keyring.json"), false).unwrap());
    let at_rest = AtRest::new(blob, state, keys, SegmentSize::new(64 * 1024).unwrap());
    let reader = at_rest.open_reader(id.opaque()).await.unwrap();
    let mut out = Vec::with_capacity(reader.len() as usize);
    let mut stream = Box::pin(reader.stream_range(0, reader.len()).unwrap());
    while let Some(piece) = stream.next().await {
        out.extend_from_slice(&piece.unwrap());
    }
    out
}

/// Asserts two large byte strings are equal without printing them.
pub fn assert_same_bytes(stored: &[u8], source: &[u8]) {
    assert_eq!(stored.len(), source.len(), "stored length");
    if stored == source {
        return;
    }
    if let Some(i) = stored.iter().zip(source).position(|(a, b)| a != b) {
        panic!("stored plaintext differs from the source first at byte {i}");
    }
}
