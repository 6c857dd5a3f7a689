//! How many durable writes a PATCH makes (issue 14: at most one blob sync and one
//! state-store commit). Each durable state write is one commit with a sync on the
//! embedded store, so a PATCH may ask for at most [`DURABLE_PER_PATCH`] of them: the
//! upload record, whose commit also makes durable the object's commit point (a deferred
//! tail record), the chunk's ledger entry and its pending record, all written deferred
//! before it (the pending record's content is sealed in the commit point as its commit
//! note, which is what a crash between the two is finished from where the store applies
//! writes one by one). Of the blob store it asks one sync (the chunk's segments) and no
//! tail replace: [`BLOB_SYNCS_PER_PATCH`]. The PATCH that completes the upload keeps the
//! durable write-ahead of its pending record ([`DURABLE_PER_COMPLETING_PATCH`]) and
//! finishes the object: one sync and the finished tail record
//! ([`BLOB_SYNCS_PER_COMPLETING_PATCH`]). Everything else a PATCH writes is deferred or a
//! lease (not synced: see `state::embedded`). The audit entries go to the audit log, a
//! separate group commit shared by concurrent requests; they are counted apart. (With the
//! journal a chunk's entry rides on the record's commit instead, through the audit
//! outbox: `outbox.rs` checks that such a PATCH makes no journal sync.)

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;

use super::*;
use crate::blob::{BlobError, BlobId};
use crate::state::{
    AppendOutcome, CasOutcome, CounterOutcome, Expect, IndexEntry, Lease, LeaseOutcome, LogEntry,
    LogName, Namespace, PutOptions, StateError, Versioned,
};

/// Durable state writes one PATCH may make.
const DURABLE_PER_PATCH: u64 = 1;
/// Durable state writes the PATCH that completes an upload may make.
const DURABLE_PER_COMPLETING_PATCH: u64 = 2;
/// Blob syncs and tail replaces (each one sync call on the local store) of one PATCH.
const BLOB_SYNCS_PER_PATCH: u64 = 1;
/// ... and of the PATCH that completes an upload.
const BLOB_SYNCS_PER_COMPLETING_PATCH: u64 = 2;

/// Durable state writes of an upload's creation: its record. The new objects' keys and the
/// quota reservation are written deferred and ride on it.
const DURABLE_PER_CREATION: u64 = 1;
/// Durable blob calls of a creation with metadata: one `create_with` per object (the
/// upload's, and the sealed metadata's, written whole).
const BLOB_CALLS_PER_CREATION: u64 = 2;

/// What a store was asked to write, by kind.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Writes {
    /// `put`, `delete`, `counter_add`: one durable commit each (at most).
    durable: u64,
    /// `put_deferred`, `delete_deferred`, `counter_add_deferred`.
    deferred: u64,
    /// `lease_acquire`, `lease_renew`, `lease_release`.
    leases: u64,
    /// `log_append` (the audit log).
    log: u64,
    /// Blob `create_with`, `sync`, `replace` and `truncate` calls (each durable on its own).
    blob_durable: u64,
}

impl std::ops::Sub for Writes {
    type Output = Writes;
    fn sub(self, before: Writes) -> Writes {
        Writes {
            durable: self.durable - before.durable,
            deferred: self.deferred - before.deferred,
            leases: self.leases - before.leases,
            log: self.log - before.log,
            blob_durable: self.blob_durable - before.blob_durable,
        }
    }
}

/// The embedded store, counting the writes it is asked for; it can also fail the next
/// durable `put` into one namespace ([`Counting::fail_next_put`], for the failure paths in
/// `outbox.rs`).
#[derive(Debug)]
pub(super) struct Counting {
    inner: EmbeddedStateStore,
    fail_put: std::sync::Mutex<Option<Namespace>>,
    /// The namespace of every durable `delete`, in order.
    durable_deletes: std::sync::Mutex<Vec<Namespace>>,
    durable: AtomicU64,
    deferred: AtomicU64,
    leases: AtomicU64,
    log: AtomicU64,
    /// Shared with the [`CountingBlobs`] of the same engine.
    blob_durable: Arc<AtomicU64>,
}

impl Counting {
    /// Fails the next durable `put` into `ns` (as an unreachable store would), once.
    pub(super) fn fail_next_put(&self, ns: Namespace) {
        *self.fail_put.lock().unwrap() = Some(ns);
    }

    /// The namespaces durable `delete`s were asked for, in order.
    pub(super) fn durable_deletes(&self) -> Vec<Namespace> {
        self.durable_deletes.lock().unwrap().clone()
    }

    /// Whether a failure is armed and not yet fired.
    pub(super) fn fault_armed(&self) -> bool {
        self.fail_put.lock().unwrap().is_some()
    }

    fn writes(&self) -> Writes {
        Writes {
            durable: self.durable.load(Ordering::SeqCst),
            deferred: self.deferred.load(Ordering::SeqCst),
            leases: self.leases.load(Ordering::SeqCst),
            log: self.log.load(Ordering::SeqCst),
            blob_durable: self.blob_durable.load(Ordering::SeqCst),
        }
    }

    /// A local blob store in `dir` whose durable calls this store counts.
    fn blobs(&self, dir: &tempfile::TempDir) -> Arc<dyn BlobStore> {
        Arc::new(CountingBlobs {
            inner: LocalBlobStore::open(&dir.path().join("blobs")).unwrap(),
            durable: self.blob_durable.clone(),
        })
    }
}

/// The local blob store, counting its durable calls.
#[derive(Debug)]
struct CountingBlobs {
    inner: LocalBlobStore,
    durable: Arc<AtomicU64>,
}

#[async_trait]
impl BlobStore for CountingBlobs {
    fn kind(&self) -> &'static str {
        "counting"
    }
    async fn ping(&self) -> Result<(), BlobError> {
        self.inner.ping().await
    }
    async fn create(&self, id: BlobId) -> Result<(), BlobError> {
        self.inner.create(id).await
    }
    async fn create_with(&self, blobs: &[(BlobId, &[u8])]) -> Result<(), BlobError> {
        one(&self.durable);
        self.inner.create_with(blobs).await
    }
    async fn append(&self, id: BlobId, data: &[u8]) -> Result<u64, BlobError> {
        self.inner.append(id, data).await
    }
    async fn sync(&self, id: BlobId) -> Result<(), BlobError> {
        one(&self.durable);
        self.inner.sync(id).await
    }
    async fn truncate(&self, id: BlobId, len: u64) -> Result<(), BlobError> {
        one(&self.durable);
        self.inner.truncate(id, len).await
    }
    async fn replace(&self, id: BlobId, data: &[u8]) -> Result<(), BlobError> {
        one(&self.durable);
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

fn one(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::SeqCst);
}

#[async_trait]
impl StateStore for Counting {
    fn kind(&self) -> &'static str {
        "counting"
    }
    async fn ping(&self) -> Result<(), StateError> {
        self.inner.ping().await
    }
    async fn get(&self, ns: Namespace, id: &str) -> Result<Option<Versioned>, StateError> {
        self.inner.get(ns, id).await
    }
    async fn put(
        &self,
        ns: Namespace,
        id: &str,
        value: &[u8],
        expect: Expect,
        options: PutOptions,
    ) -> Result<CasOutcome, StateError> {
        one(&self.durable);
        {
            let mut armed = self.fail_put.lock().unwrap();
            if *armed == Some(ns) {
                *armed = None;
                return Err(StateError::Unavailable("injected put failure".into()));
            }
        }
        self.inner.put(ns, id, value, expect, options).await
    }
    async fn delete(
        &self,
        ns: Namespace,
        id: &str,
        expect: Expect,
    ) -> Result<CasOutcome, StateError> {
        one(&self.durable);
        self.durable_deletes.lock().unwrap().push(ns);
        self.inner.delete(ns, id, expect).await
    }
    async fn put_deferred(
        &self,
        ns: Namespace,
        id: &str,
        value: &[u8],
        expect: Expect,
        options: PutOptions,
    ) -> Result<CasOutcome, StateError> {
        one(&self.deferred);
        self.inner
            .put_deferred(ns, id, value, expect, options)
            .await
    }
    async fn delete_deferred(
        &self,
        ns: Namespace,
        id: &str,
        expect: Expect,
    ) -> Result<CasOutcome, StateError> {
        one(&self.deferred);
        self.inner.delete_deferred(ns, id, expect).await
    }
    async fn list_index(
        &self,
        ns: Namespace,
        entry: &IndexEntry,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StateError> {
        self.inner.list_index(ns, entry, after, limit).await
    }
    async fn list(
        &self,
        ns: Namespace,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StateError> {
        self.inner.list(ns, after, limit).await
    }
    async fn counter_get(&self, ns: Namespace, id: &str) -> Result<i64, StateError> {
        self.inner.counter_get(ns, id).await
    }
    async fn counter_add(
        &self,
        ns: Namespace,
        id: &str,
        delta: i64,
        limit: Option<i64>,
    ) -> Result<CounterOutcome, StateError> {
        one(&self.durable);
        self.inner.counter_add(ns, id, delta, limit).await
    }
    async fn counter_add_deferred(
        &self,
        ns: Namespace,
        id: &str,
        delta: i64,
        limit: Option<i64>,
    ) -> Result<CounterOutcome, StateError> {
        one(&self.deferred);
        self.inner.counter_add_deferred(ns, id, delta, limit).await
    }
    async fn lease_acquire(&self, name: &str, ttl: Duration) -> Result<LeaseOutcome, StateError> {
        one(&self.leases);
        self.inner.lease_acquire(name, ttl).await
    }
    async fn lease_renew(&self, lease: &Lease, ttl: Duration) -> Result<bool, StateError> {
        one(&self.leases);
        self.inner.lease_renew(lease, ttl).await
    }
    async fn lease_release(&self, lease: &Lease) -> Result<bool, StateError> {
        one(&self.leases);
        self.inner.lease_release(lease).await
    }
    async fn log_head(&self, log: LogName) -> Result<Option<LogEntry>, StateError> {
        self.inner.log_head(log).await
    }
    async fn log_append(
        &self,
        log: LogName,
        expected_next: u64,
        entries: &[Vec<u8>],
    ) -> Result<AppendOutcome, StateError> {
        one(&self.log);
        self.inner.log_append(log, expected_next, entries).await
    }
    async fn log_read(
        &self,
        log: LogName,
        from: u64,
        limit: usize,
    ) -> Result<Vec<LogEntry>, StateError> {
        self.inner.log_read(log, from, limit).await
    }
}

/// A PATCH of `body` at `offset`, and what it asked the store to write.
async fn counted_patch(
    uploads: &Uploads,
    store: &Counting,
    id: UploadId,
    offset: u64,
    body: &[u8],
    length_now: Option<u64>,
) -> (UploadRecord, Writes) {
    let offset = offset.to_string();
    let length = body.len().to_string();
    let declared = length_now.map(|n| n.to_string());
    let mut pairs = vec![
        ("upload-offset", offset.as_str()),
        ("content-type", "application/offset+octet-stream"),
        ("content-length", length.as_str()),
    ];
    if let Some(declared) = &declared {
        pairs.push(("upload-length", declared.as_str()));
    }
    let before = store.writes();
    let record = uploads
        .patch(
            &alice(),
            id,
            &headers(&pairs),
            Full::new(Bytes::copy_from_slice(body)),
        )
        .await
        .unwrap()
        .record;
    (record, store.writes() - before)
}

pub(super) fn counting(dir: &tempfile::TempDir) -> Arc<Counting> {
    Arc::new(Counting {
        inner: EmbeddedStateStore::open(&dir.path().join("state.redb")).unwrap(),
        fail_put: std::sync::Mutex::new(None),
        durable_deletes: std::sync::Mutex::new(Vec::new()),
        durable: AtomicU64::new(0),
        deferred: AtomicU64::new(0),
        leases: AtomicU64::new(0),
        log: AtomicU64::new(0),
        blob_durable: Arc::new(AtomicU64::new(0)),
    })
}

/// Asserts the budget for one PATCH: at most `durable` durable state writes and
/// `blob` durable blob calls, one lease taken and released, and the chunk audited.
fn within_budget(what: &str, w: Writes, durable: u64, blob: u64) {
    assert!(
        w.durable <= durable,
        "{what}: {} durable state writes (at most {durable}): {w:?}",
        w.durable
    );
    assert!(
        w.blob_durable <= blob,
        "{what}: {} durable blob calls (at most {blob}): {w:?}",
        w.blob_durable
    );
    assert_eq!(
        w.leases, 2,
        "{what}: one lease acquired and released: {w:?}"
    );
    assert!(w.log >= 1, "{what}: the chunk is audited: {w:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patch_makes_one_durable_state_write_and_the_completing_one_two() {
    let dir = tempfile::tempdir().unwrap();
    let store = counting(&dir);
    let (uploads, _) = engine_with(&dir, store.clone(), store.blobs(&dir));
    // Several segments per chunk (64 KiB segments) and a partial one at the end.
    let chunk = vec![7u8; 200 * 1024];
    let total = 3 * chunk.len() as u64;
    let created = uploads
        .create(
            &alice(),
            &headers(&[("upload-length", &total.to_string())]),
            Empty::<Bytes>::new(),
        )
        .await
        .unwrap()
        .record;
    let mut offset = 0;
    for i in 0..3 {
        let (record, w) = counted_patch(&uploads, &store, created.id, offset, &chunk, None).await;
        offset = record.offset;
        let (budget, blob, deferred) = if i < 2 {
            // The pending record, the tail record and the ledger entry ride on the
            // record's commit; the pending record's deletion on the next durable write.
            (DURABLE_PER_PATCH, BLOB_SYNCS_PER_PATCH, 4)
        } else {
            (
                DURABLE_PER_COMPLETING_PATCH,
                BLOB_SYNCS_PER_COMPLETING_PATCH,
                2,
            )
        };
        within_budget(&format!("PATCH {i}"), w, budget, blob);
        assert!(w.deferred >= deferred, "PATCH {i}: {w:?}");
    }
    assert_eq!(offset, total);
    assert!(uploads.completed_source(created.id).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patch_of_a_deferred_length_upload_reserves_its_quota_without_a_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = counting(&dir);
    let (uploads, _) = engine_with(&dir, store.clone(), store.blobs(&dir));
    let created = uploads
        .create(
            &alice(),
            &headers(&[("upload-defer-length", "1")]),
            Empty::<Bytes>::new(),
        )
        .await
        .unwrap()
        .record;
    let chunk = vec![9u8; 100 * 1024];
    let (record, w) = counted_patch(&uploads, &store, created.id, 0, &chunk, None).await;
    within_budget(
        "a growing PATCH",
        w,
        DURABLE_PER_PATCH,
        BLOB_SYNCS_PER_PATCH,
    );
    let total = record.offset + chunk.len() as u64;
    let (record, w) = counted_patch(
        &uploads,
        &store,
        created.id,
        record.offset,
        &chunk,
        Some(total),
    )
    .await;
    within_budget(
        "the PATCH that declares the length and completes",
        w,
        DURABLE_PER_COMPLETING_PATCH,
        BLOB_SYNCS_PER_COMPLETING_PATCH,
    );
    assert!(record.is_complete());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_creation_makes_one_durable_state_write_and_one_blob_call_per_object() {
    let dir = tempfile::tempdir().unwrap();
    let store = counting(&dir);
    let (uploads, _) = engine_with(&dir, store.clone(), store.blobs(&dir));
    let before = store.writes();
    let created = uploads
        .create(&alice(), &with_metadata(100), Empty::<Bytes>::new())
        .await
        .unwrap()
        .record;
    let w = store.writes() - before;
    assert!(
        w.durable <= DURABLE_PER_CREATION,
        "{} durable state writes (at most {DURABLE_PER_CREATION}): {w:?}",
        w.durable
    );
    assert!(
        w.blob_durable <= BLOB_CALLS_PER_CREATION,
        "{} durable blob calls (at most {BLOB_CALLS_PER_CREATION}): {w:?}",
        w.blob_durable
    );
    // Two keys and the reservation, deferred.
    assert!(w.deferred >= 3, "{w:?}");
    assert!(w.log >= 1, "the creation is audited: {w:?}");
    // What was written deferred is whole: the metadata reads back, and the upload takes
    // its bytes and completes.
    assert_eq!(
        uploads.unseal_metadata(&created).await.unwrap().as_deref(),
        Some(METADATA)
    );
    let (record, _) = counted_patch(&uploads, &store, created.id, 0, &[1u8; 100], None).await;
    assert!(record.is_complete());
}
