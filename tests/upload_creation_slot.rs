#![allow(clippy::unwrap_used, clippy::expect_used)]
//! One principal's creations do not wait for each other's objects: the new upload's objects
//! are made before the principal's creation slot is taken, so a creation whose object store
//! is slow (an S3 round trip, here a blob store held shut by the test) does not hold up the
//! next creation by the same principal. And a creation refused after its objects were made
//! leaves none behind.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use sallyport::blob::{BlobError, BlobId, BlobStore};
use support::mem_blob::MemBlob;
use support::tus_core::{ALICE, limits, post_headers};
use support::uploads::Engine;
use tokio::sync::Semaphore;

/// A `MemBlob` whose first `create` waits until the test opens the gate.
#[derive(Debug)]
struct Gated {
    inner: Arc<MemBlob>,
    gate: Arc<Semaphore>,
    first: AtomicBool,
}

#[async_trait]
impl BlobStore for Gated {
    fn kind(&self) -> &'static str {
        "gated"
    }
    async fn ping(&self) -> Result<(), BlobError> {
        self.inner.ping().await
    }
    async fn create(&self, id: BlobId) -> Result<(), BlobError> {
        if self.first.swap(false, Ordering::SeqCst) {
            let _permit = self.gate.acquire().await.unwrap();
        }
        self.inner.create(id).await
    }
    async fn append(&self, id: BlobId, data: &[u8]) -> Result<u64, BlobError> {
        self.inner.append(id, data).await
    }
    async fn sync(&self, id: BlobId) -> Result<(), BlobError> {
        self.inner.sync(id).await
    }
    async fn truncate(&self, id: BlobId, len: u64) -> Result<(), BlobError> {
        self.inner.truncate(id, len).await
    }
    async fn replace(&self, id: BlobId, data: &[u8]) -> Result<(), BlobError> {
        self.inner.replace(id, data).await
    }
    async fn len(&self, id: BlobId) -> Result<u64, BlobError> {
        self.inner.len(id).await
    }
    async fn read_range(&self, id: BlobId, offset: u64, len: u64) -> Result<Bytes, BlobError> {
        self.inner.read_range(id, offset, len).await
    }
    async fn delete(&self, id: BlobId) -> Result<bool, BlobError> {
        self.inner.delete(id).await
    }
    async fn list(&self) -> Result<Vec<BlobId>, BlobError> {
        self.inner.list().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_creation_stuck_in_its_object_store_does_not_hold_up_the_next() {
    let blobs = Arc::new(MemBlob::default());
    let gate = Arc::new(Semaphore::new(0));
    let store = Arc::new(Gated {
        inner: blobs.clone(),
        gate: gate.clone(),
        first: AtomicBool::new(true),
    });
    let engine = Arc::new(Engine::over(limits(), blobs.clone(), store));
    let headers = post_headers(&[("upload-length", "10")]);
    // The first creation blocks inside its object's creation.
    let stuck = {
        let (engine, headers) = (engine.clone(), headers.clone());
        tokio::spawn(async move { engine.post(&headers, b"", ALICE).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !stuck.is_finished(),
        "the gate did not hold the first creation"
    );
    // The same principal's next creation completes meanwhile. (Before, the first held
    // the principal's creation slot through its object's creation: this one waited up to
    // 10 s and was answered 423.)
    let second = tokio::time::timeout(Duration::from_secs(5), engine.post(&headers, b"", ALICE))
        .await
        .expect("the second creation waited for the first one's object store")
        .unwrap();
    assert!(!stuck.is_finished());
    gate.add_permits(1);
    let first = stuck.await.unwrap().unwrap();
    assert_ne!(first.id, second.id);
    assert_eq!(engine.record(first.id).await.length, Some(10));
}

#[tokio::test]
async fn a_creation_refused_after_its_objects_were_made_leaves_none() {
    let engine = Engine::new(limits());
    let before = engine.blobs.list().await.unwrap().len();
    // A partial upload may not claim a batch membership: refused after the objects exist
    // (`BadClaim` is checked with the plan), with its metadata sealed too.
    let claim = format!(
        "batch {},member {}",
        b64("01jbatch0000000000000000000"),
        b64("a.ndjson")
    );
    let headers = post_headers(&[
        ("upload-length", "10"),
        ("upload-concat", "partial"),
        ("upload-metadata", &claim),
    ]);
    assert!(engine.post(&headers, b"", ALICE).await.is_err());
    assert_eq!(
        engine.blobs.list().await.unwrap().len(),
        before,
        "a refused creation left objects"
    );
    // A creation that succeeds keeps its data and metadata objects (data and tail each).
    let ok = post_headers(&[
        ("upload-length", "10"),
        (
            "upload-metadata",
            &format!("filename {}", b64("referral.pdf")),
        ),
    ]);
    engine.post(&ok, b"", ALICE).await.unwrap();
    assert_eq!(engine.blobs.list().await.unwrap().len(), before + 4);
}

fn b64(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}
