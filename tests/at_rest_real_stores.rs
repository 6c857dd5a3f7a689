//! The at-rest store over the real adapters: the local-filesystem blob store, the embedded
//! (redb) state store and a keyring file, all in a temporary directory; over the Redis
//! state store on 127.0.0.1:6379 (isolated by a unique key prefix); and over the S3 blob
//! store on the test S3 server with Redis, as several gateway instances run (skipped with a
//! notice when Redis or the S3 server is unavailable, failing when `CI` is set).
//!
//! A "restart" drops every store and opens them again (from disk, or a new client of the
//! same bucket and prefix: nothing an instance kept in memory survives it).

#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::sync::Arc;

use sallyport::at_rest::{AtRest, Reopened, SegmentSize};
use sallyport::blob::local::LocalBlobStore;
use sallyport::blob::{BlobId, BlobStore};
use sallyport::ids::OpaqueId;
use sallyport::keys::admin;
use sallyport::keys::keyring::KeyringFile;
use sallyport::keys::record::DEK_NAMESPACE;
use sallyport::state::StateStore;
use sallyport::state::embedded::EmbeddedStateStore;
use sallyport::state::redis::RedisStateStore;
use sha2::{Digest, Sha256};
use support::data::data;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn open(
    dir: &Path,
    state: Arc<dyn StateStore>,
    blob: Arc<dyn BlobStore>,
) -> (AtRest, Arc<dyn BlobStore>, Arc<dyn StateStore>) {
    let keys = Arc::new(KeyringFile::open_or_create(&dir.join("keyring.json"), false).unwrap());
    let at_rest = AtRest::new(
        blob.clone(),
        state.clone(),
        keys,
        SegmentSize::new(64 * 1024).unwrap(),
    )
    // Small batches, so an uncommitted append reaches the file before the "crash".
    .with_batch_bytes(256 * 1024);
    (at_rest, blob, state)
}

fn embedded(dir: &Path) -> Arc<dyn StateStore> {
    Arc::new(EmbeddedStateStore::open(&dir.join("state.redb")).unwrap())
}

/// The test Redis under a fresh `sallyport-test-{name}-…:` prefix (`None`, after a
/// notice, when it is unreachable and `CI` is not set).
async fn redis(name: &str) -> Option<Arc<dyn StateStore>> {
    let prefix = format!("sallyport-test-{name}-{}:", OpaqueId::random());
    let url = support::redis::url();
    let connected = RedisStateStore::connect(&url, &prefix).await;
    let store = support::ci::require_or_skip(&format!("Redis at {url}"), connected)?;
    Some(Arc::new(store))
}

fn local(dir: &Path) -> Arc<dyn BlobStore> {
    Arc::new(LocalBlobStore::open(&dir.join("blobs")).unwrap())
}

/// Upload in pieces across two restarts, with a torn append left on disk by a "crash",
/// then finish and read back; then rotate and rewrap without touching any blob file.
async fn scenario(
    dir: &Path,
    state: impl Fn() -> Arc<dyn StateStore>,
    blobs: impl Fn() -> Arc<dyn BlobStore>,
) {
    let plain = data(3 * 1024 * 1024 + 777, 7);
    let object = OpaqueId::random();

    let (at_rest, _, st) = open(dir, state(), blobs());
    let mut w = at_rest.create(object).await.unwrap();
    w.append(&plain[..1_000_000]).await.unwrap();
    assert_eq!(w.commit().await.unwrap().plaintext_len, 1_000_000);
    w.append(&plain[1_000_000..1_500_000]).await.unwrap(); // never committed
    drop((w, at_rest, st));

    // Restart 1: the uncommitted append is cut.
    let (at_rest, blob, st) = open(dir, state(), blobs());
    let mut w = match at_rest.open_writer(object).await.unwrap() {
        Reopened::Open { writer, recovery } => {
            assert_eq!(recovery.committed.plaintext_len, 1_000_000);
            assert!(recovery.cut_bytes > 0);
            *writer
        }
        Reopened::Finished(_) => panic!("not finished"),
    };
    w.append(&plain[1_000_000..2_000_000]).await.unwrap();
    w.commit().await.unwrap();
    drop(w);
    // A torn append: half a segment of garbage at the end of the data file.
    blob.append(BlobId::data(object), &[0xa5; 30_000])
        .await
        .unwrap();
    blob.sync(BlobId::data(object)).await.unwrap();
    drop((blob, at_rest, st));

    // Restart 2: the torn bytes are cut; finish.
    let (at_rest, blob, st) = open(dir, state(), blobs());
    let mut w = match at_rest.open_writer(object).await.unwrap() {
        Reopened::Open { writer, recovery } => {
            assert_eq!(recovery.committed.plaintext_len, 2_000_000);
            assert_eq!(recovery.cut_bytes, 30_000);
            *writer
        }
        Reopened::Finished(_) => panic!("not finished"),
    };
    w.append(&plain[2_000_000..]).await.unwrap();
    let f = w.finish().await.unwrap();
    assert_eq!(f.sha256, <[u8; 32]>::from(Sha256::digest(&plain)));

    let reader = at_rest.open_reader(object).await.unwrap();
    assert_eq!(reader.len(), plain.len() as u64);
    for (offset, len) in [
        (0, 10),
        (65_530, 20),
        (1_234_567, 1_900_000),
        (3_145_000, 1505),
    ] {
        let got = reader.read_range(offset, len).await.unwrap();
        assert_eq!(&got[..], &plain[offset as usize..(offset + len) as usize]);
    }

    // Rotate and rewrap: the blob files do not change.
    let before = (
        blob.read_range(
            BlobId::data(object),
            0,
            blob.len(BlobId::data(object)).await.unwrap(),
        )
        .await
        .unwrap(),
        blob.read_range(
            BlobId::tail(object),
            0,
            blob.len(BlobId::tail(object)).await.unwrap(),
        )
        .await
        .unwrap(),
    );
    let keys = KeyringFile::open_or_create(&dir.join("keyring.json"), false).unwrap();
    let state_now = st.clone();
    let v2 = admin::rotate(&keys, &mut |_| {}).await.unwrap();
    let summary = admin::rewrap_all(&keys, &state_now, &mut |_| {})
        .await
        .unwrap();
    assert_eq!(summary.rewrapped, 1);
    assert_eq!(admin::references(&state_now, &v2).await.unwrap(), 1);
    let after = (
        blob.read_range(
            BlobId::data(object),
            0,
            blob.len(BlobId::data(object)).await.unwrap(),
        )
        .await
        .unwrap(),
        blob.read_range(
            BlobId::tail(object),
            0,
            blob.len(BlobId::tail(object)).await.unwrap(),
        )
        .await
        .unwrap(),
    );
    assert_eq!(before, after);
    drop((at_rest, blob, st, state_now));

    // Restart 3: a fresh provider reads the re-wrapped key.
    let (at_rest, blob, st) = open(dir, state(), blobs());
    let reader = at_rest.open_reader(object).await.unwrap();
    assert_eq!(
        &reader.read_range(0, 4096).await.unwrap()[..],
        &plain[..4096]
    );

    // Shred: the key record first, then the files.
    let deleted = at_rest.delete(object).await.unwrap();
    assert!(deleted.key && deleted.data && deleted.tail);
    assert!(
        st.get(DEK_NAMESPACE, &object.to_string())
            .await
            .unwrap()
            .is_none()
    );
    assert!(blob.len(BlobId::data(object)).await.is_err());
}

#[test]
fn over_local_blobs_and_the_embedded_state_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    rt().block_on(async move {
        // Each call opens the database file anew (the scenario has dropped the last handle:
        // redb allows one open handle per file, so a leftover one would fail the open).
        scenario(&path, || embedded(&path), || local(&path)).await;
    });
}

#[test]
fn over_local_blobs_and_the_redis_state_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    rt().block_on(async move {
        let Some(store) = redis("atrest").await else {
            return;
        };
        scenario(&path, || store.clone(), || local(&path)).await;
        // The scenario deleted its object; nothing of this test is left under the prefix.
        assert!(
            store
                .list(DEK_NAMESPACE, None, 10)
                .await
                .unwrap()
                .is_empty()
        );
    });
}

/// The scale-out combination: S3 blobs (small pieces, so the scenario's writes span many)
/// and the Redis state store. The torn append is a synced piece of garbage that recovery
/// cuts (a top-down truncate); rotation and rewrap leave every object as it was; the shred
/// leaves nothing under the test's prefix.
#[test]
fn over_s3_blobs_and_the_redis_state_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    rt().block_on(async move {
        let Some(s3) = support::s3::S3Test::require() else {
            return;
        };
        let Some(store) = redis("atrest-s3").await else {
            return;
        };
        let blobs = || -> Arc<dyn BlobStore> { Arc::new(s3.store(100 * 1024)) };
        scenario(&path, || store.clone(), blobs).await;
        assert!(blobs().list().await.unwrap().is_empty());
        let under = object_store::path::Path::from(s3.prefix.trim_end_matches('/'));
        let left = futures_util::StreamExt::count(s3.raw().list(Some(&under))).await;
        assert_eq!(left, 0, "objects left under the prefix");
    });
}
