//! Engine-level tests of what the upload engine answers other modules: the completed-upload
//! check artifact registration uses (`Uploads::completed_source`), and the artifact
//! registry's answer the engine asks before destroying an upload
//! (`Artifacts::registered_from`). Real stores in a temporary directory (embedded state,
//! local blobs, a keyring file); bodies are plain `http_body_util::Full`, not a framework's.
//! The tus protocol itself is tested over HTTP in `tests/tus_*`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use http_body_util::{Empty, Full};
use sha2::{Digest, Sha256};

use super::*;
use crate::artifact::{ArtifactRecord, ArtifactSource};
use crate::at_rest::SegmentSize;
use crate::blob::BlobStore;
use crate::blob::local::LocalBlobStore;
use crate::keys::KeyProvider;
use crate::keys::keyring::KeyringFile;
use crate::metrics::Metrics;
use crate::signed_link::{ArtifactId, ResponseFileName};
use crate::state::StateStore;
use crate::state::embedded::EmbeddedStateStore;

/// An engine over fresh stores in `dir`, and its artifact registry.
fn engine(dir: &tempfile::TempDir) -> (Uploads, Artifacts) {
    let state: Arc<dyn StateStore> =
        Arc::new(EmbeddedStateStore::open(&dir.path().join("state.redb")).unwrap());
    engine_on(dir, state)
}

/// An engine over `state` and fresh blob and key stores in `dir`.
fn engine_on(dir: &tempfile::TempDir, state: Arc<dyn StateStore>) -> (Uploads, Artifacts) {
    let blobs: Arc<dyn BlobStore> =
        Arc::new(LocalBlobStore::open(&dir.path().join("blobs")).unwrap());
    engine_with(dir, state, blobs)
}

/// An engine over `state`, `blobs` and a fresh key store in `dir`.
fn engine_with(
    dir: &tempfile::TempDir,
    state: Arc<dyn StateStore>,
    blobs: Arc<dyn BlobStore>,
) -> (Uploads, Artifacts) {
    let auditor = Auditor::start(
        crate::audit::log::StateLog::shared(state.clone()),
        "test".into(),
        16,
        Arc::new(Metrics::new()),
    );
    engine_audited(dir, state, blobs, auditor)
}

/// An engine over `state`, `blobs` and a fresh key store in `dir`, auditing to `auditor`.
fn engine_audited(
    dir: &tempfile::TempDir,
    state: Arc<dyn StateStore>,
    blobs: Arc<dyn BlobStore>,
    auditor: Auditor,
) -> (Uploads, Artifacts) {
    let keys: Arc<dyn KeyProvider> =
        Arc::new(KeyringFile::open_or_create(&dir.path().join("keyring.json"), false).unwrap());
    let at_rest = AtRest::new(
        blobs,
        state.clone(),
        keys,
        SegmentSize::new(64 * 1024).unwrap(),
    );
    let artifacts = Artifacts::new(state.clone());
    let settings = UploadSettings {
        limits: TusLimits::default(),
        base: BasePath::new("/files/").unwrap(),
        lease_ttl: Duration::from_secs(30),
        body_timeout: Duration::from_secs(30),
        min_body_rate: 1024,
        completed_retention: Duration::from_secs(30 * 86_400),
        max_open_per_principal: 100,
        max_bytes_per_principal: 1 << 40,
        cors_origins: Vec::new(),
    };
    let uploads = Uploads::new(state, at_rest, auditor, artifacts.clone(), settings);
    (uploads, artifacts)
}

fn alice() -> Caller {
    Caller {
        bounds: None,
        name: "alice".into(),
        admin: false,
        audit: AuditContext::system(),
    }
}

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("tus-resumable", HeaderValue::from_static("1.0.0"));
    for (name, value) in pairs {
        h.insert(
            HeaderName::from_static(name),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    h
}

/// The `Upload-Metadata` of [`with_metadata`].
const METADATA: &str = "filename dGVzdC50eHQ=";

/// The headers of a creation of `length` bytes with [`METADATA`].
fn with_metadata(length: u64) -> HeaderMap {
    let length = length.to_string();
    headers(&[
        ("upload-length", length.as_str()),
        ("upload-metadata", METADATA),
    ])
}

/// Creates an upload of `length` bytes whose first chunk is `body` (creation-with-upload).
async fn create_with(
    uploads: &Uploads,
    length: usize,
    extra: &[(&'static str, &str)],
    body: &'static [u8],
) -> UploadRecord {
    let len = length.to_string();
    let content_length = body.len().to_string();
    let mut pairs = vec![
        ("upload-length", len.as_str()),
        ("content-type", "application/offset+octet-stream"),
        ("content-length", content_length.as_str()),
    ];
    pairs.extend_from_slice(extra);
    uploads
        .create(
            &alice(),
            &headers(&pairs),
            Full::new(Bytes::from_static(body)),
        )
        .await
        .unwrap()
        .record
}

/// Registers an artifact from `upload`, the way the artifacts endpoint does.
async fn register(artifacts: &Artifacts, source: UploadSource, upload: UploadId) {
    let record = ArtifactRecord {
        id: ArtifactId::random(),
        object: source.object,
        length: source.length,
        sha256: source.sha256,
        content_type: "application/octet-stream".parse().unwrap(),
        file_name: ResponseFileName::new("report.bin").unwrap(),
        source: ArtifactSource::Upload { upload },
        batch: None,
        created_at: crate::grant::now_unix(),
        publisher: "exporter".into(),
        owner: Some(source.owner.clone()),
        member_of: None,
    };
    artifacts.create(&record).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completed_upload_is_a_source_with_its_object_length_and_digest() {
    let dir = tempfile::tempdir().unwrap();
    let (uploads, _) = engine(&dir);
    let record = create_with(&uploads, 11, &[], b"hello world").await;
    assert!(record.is_complete());

    let source = uploads.completed_source(record.id).await.unwrap();
    assert_eq!(source.object, record.id.opaque());
    assert_eq!(source.length, 11);
    assert_eq!(
        source.sha256.as_slice(),
        Sha256::digest(b"hello world").as_slice()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_unfinished_and_partial_uploads_are_not_sources() {
    let dir = tempfile::tempdir().unwrap();
    let (uploads, _) = engine(&dir);

    let unknown = uploads.completed_source(UploadId::random()).await;
    assert!(
        matches!(unknown, Err(UploadSourceError::NotFound)),
        "{unknown:?}"
    );

    // Half the bytes arrived.
    let open = create_with(&uploads, 10, &[], b"hello").await;
    assert_eq!(open.offset, 5);
    let incomplete = uploads.completed_source(open.id).await;
    assert!(
        matches!(incomplete, Err(UploadSourceError::Incomplete)),
        "{incomplete:?}"
    );

    // Complete, but a part of a concatenation: only the final upload is a file.
    let part = create_with(&uploads, 3, &[("upload-concat", "partial")], b"abc").await;
    assert!(part.is_complete());
    let partial = uploads.completed_source(part.id).await;
    assert!(
        matches!(partial, Err(UploadSourceError::Partial)),
        "{partial:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completed_upload_an_artifact_was_registered_from_is_not_terminated() {
    let dir = tempfile::tempdir().unwrap();
    let (uploads, artifacts) = engine(&dir);
    let shared = create_with(&uploads, 4, &[], b"data").await;
    let alone = create_with(&uploads, 4, &[], b"solo").await;
    register(
        &artifacts,
        uploads.completed_source(shared.id).await.unwrap(),
        shared.id,
    )
    .await;

    assert!(artifacts.registered_from(shared.id).await.unwrap());
    assert!(!artifacts.registered_from(alone.id).await.unwrap());

    let refused = uploads.terminate(&alice(), shared.id).await;
    assert!(matches!(refused, Err(UploadError::InUse)), "{refused:?}");
    // Nothing was destroyed: the artifact's object is still a source.
    assert_eq!(uploads.completed_source(shared.id).await.unwrap().length, 4);

    uploads.terminate(&alice(), alone.id).await.unwrap();
    let gone = uploads.completed_source(alone.id).await;
    assert!(matches!(gone, Err(UploadSourceError::NotFound)), "{gone:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patches_with_plain_bodies_complete_an_upload_that_becomes_a_source() {
    let dir = tempfile::tempdir().unwrap();
    let (uploads, _) = engine(&dir);
    let created = uploads
        .create(
            &alice(),
            &headers(&[("upload-length", "8")]),
            Empty::<Bytes>::new(),
        )
        .await
        .unwrap()
        .record;
    assert_eq!(created.offset, 0);
    let not_yet = uploads.completed_source(created.id).await;
    assert!(
        matches!(not_yet, Err(UploadSourceError::Incomplete)),
        "{not_yet:?}"
    );
    for (offset, chunk) in [("0", &b"abcd"[..]), ("4", &b"efgh"[..])] {
        let h = headers(&[
            ("upload-offset", offset),
            ("content-type", "application/offset+octet-stream"),
            ("content-length", "4"),
        ]);
        uploads
            .patch(
                &alice(),
                created.id,
                &h,
                Full::new(Bytes::from_static(chunk)),
            )
            .await
            .unwrap();
    }
    let source = uploads.completed_source(created.id).await.unwrap();
    assert_eq!(source.length, 8);
    assert_eq!(
        source.sha256.as_slice(),
        Sha256::digest(b"abcdefgh").as_slice()
    );
}

/// A body of unknown length (chunked transfer coding): no `Content-Length`, no size hint.
fn chunked(
    bytes: &'static [u8],
) -> impl http_body::Body<Data = Bytes, Error = std::convert::Infallible> {
    let frames =
        futures_util::stream::iter([Ok(http_body::Frame::data(Bytes::from_static(bytes)))]);
    http_body_util::StreamBody::new(frames)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_patch_past_a_complete_upload_is_refused_not_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let (uploads, _) = engine(&dir);
    let record = create_with(&uploads, 3, &[], b"abc").await;
    assert!(record.is_complete());
    let patch = headers(&[
        ("upload-offset", "3"),
        ("content-type", "application/offset+octet-stream"),
    ]);
    // Bytes beyond the length, with no declared length: 413, never a 204 that drops them.
    let err = uploads
        .patch(&alice(), record.id, &patch, chunked(b"more"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            UploadError::Tus {
                error: TusError::ExceedsLength { length: 3 },
                ..
            }
        ),
        "{err:?}"
    );
    // An empty chunked body at the final offset changes nothing and is fine.
    let done = uploads
        .patch(&alice(), record.id, &patch, chunked(b""))
        .await
        .unwrap();
    assert_eq!(done.record.offset, 3);
}

/// Appends `body` at `offset` (a PATCH with a known length).
async fn patch_bytes(uploads: &Uploads, id: UploadId, offset: u64, body: &[u8]) -> UploadRecord {
    let offset = offset.to_string();
    let length = body.len().to_string();
    let h = headers(&[
        ("upload-offset", offset.as_str()),
        ("content-type", "application/offset+octet-stream"),
        ("content-length", length.as_str()),
    ]);
    uploads
        .patch(&alice(), id, &h, Full::new(Bytes::copy_from_slice(body)))
        .await
        .unwrap()
        .record
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ledger_is_read_and_written_a_page_at_a_time() {
    use futures_util::StreamExt;
    let dir = tempfile::tempdir().unwrap();
    let (uploads, _) = engine(&dir);
    let n = 2 * ledger::PAGE + 44;
    let first = create_with(&uploads, n, &[], b"x").await;
    let mut record = first.clone();
    for i in 1..n {
        record = patch_bytes(&uploads, first.id, i as u64, &[i as u8]).await;
    }
    assert!(record.is_complete());
    let mut stream = std::pin::pin!(uploads.ledger_stream(&alice(), first.id).await.unwrap());
    let mut pieces = Vec::new();
    while let Some(piece) = stream.next().await {
        pieces.push(piece.unwrap());
    }
    // The head, then one piece per page of entries (the last one closing the document).
    assert_eq!(pieces.len(), 1 + 3);
    assert!(pieces[1..].iter().all(|p| p.len() < 200 * ledger::PAGE));
    let streamed: Vec<u8> = pieces.concat();
    let chunks = uploads.store.chunks(first.id).await.unwrap();
    let whole = crate::tus::ledger::LedgerDocument::build(&record, chunks, Vec::new()).unwrap();
    assert_eq!(streamed, serde_json::to_vec(&whole).unwrap());
    assert_eq!(uploads.ledger(&alice(), first.id).await.unwrap(), whole);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_artifact_takes_an_uploads_bytes_off_the_quota_once() {
    let dir = tempfile::tempdir().unwrap();
    let (uploads, artifacts) = engine(&dir);
    let used = || async {
        uploads
            .state
            .counter_get(quota::QUOTA, "alice")
            .await
            .unwrap()
    };
    let a = create_with(&uploads, 5, &[], b"hello").await;
    let b = create_with(&uploads, 3, &[], b"abc").await;
    assert_eq!(used().await, 8);
    let source = uploads.completed_source(a.id).await.unwrap();
    register(&artifacts, source.clone(), a.id).await;
    uploads.claimed_by_artifact(a.id).await.unwrap();
    assert_eq!(used().await, 3);
    // A second artifact from the same upload releases nothing more.
    register(&artifacts, source, a.id).await;
    uploads.claimed_by_artifact(a.id).await.unwrap();
    assert_eq!(used().await, 3);
    // Destroying the claimed upload (a batch purge would) gives nothing back twice.
    uploads
        .shred(a.id, &AuditContext::system(), "test")
        .await
        .unwrap();
    assert_eq!(used().await, 3);
    uploads.terminate(&alice(), b.id).await.unwrap();
    assert_eq!(used().await, 0);
}

mod commit_budget;
mod commit_note;
mod outbox;
