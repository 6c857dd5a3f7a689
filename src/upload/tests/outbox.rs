//! A chunk's audit entry through the audit outbox (`audit::outbox`), with the journal and
//! the embedded store as the gateway runs them: the entry rides on the upload record's
//! commit (no journal sync of its own during the PATCH, nor during the creation, whose
//! entry rides on the record's creation), reaches the chain after it, and
//! survives a writer that never got to it; a pending record left by a crash writes it
//! no second time.

use crate::audit::journal::Journal;
use crate::audit::log::AuditLog;
use crate::audit::outbox;

use super::*;

struct Rig {
    _dir: tempfile::TempDir,
    state: Arc<dyn StateStore>,
    journal: Arc<Journal>,
    auditor: Auditor,
    metrics: Arc<Metrics>,
    uploads: Uploads,
}

fn rig() -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let state: Arc<dyn StateStore> =
        Arc::new(EmbeddedStateStore::open(&dir.path().join("state.redb")).unwrap());
    rig_on(dir, state)
}

/// A rig over `state` (in `dir`): the failure paths use a store that fails on command.
fn rig_on(dir: tempfile::TempDir, state: Arc<dyn StateStore>) -> Rig {
    let journal = Arc::new(Journal::open(&dir.path().join("journal"), "audit", 1 << 20).unwrap());
    let metrics = Arc::new(Metrics::new());
    let auditor = Auditor::start_full(
        journal.clone(),
        "test".into(),
        16,
        metrics.clone(),
        None,
        Some(state.clone()),
    );
    let blobs: Arc<dyn BlobStore> =
        Arc::new(LocalBlobStore::open(&dir.path().join("blobs")).unwrap());
    let (uploads, _) = engine_audited(&dir, state.clone(), blobs, auditor.clone());
    Rig {
        _dir: dir,
        state,
        journal,
        auditor,
        metrics,
        uploads,
    }
}

/// The chain's entries as `(action, details)`, in order.
async fn chain(journal: &Journal) -> Vec<(String, serde_json::Value)> {
    journal
        .read(1, 10_000)
        .await
        .unwrap()
        .iter()
        .map(|e| {
            let v: serde_json::Value = serde_json::from_slice(&e.bytes).unwrap();
            (
                v["action"].as_str().unwrap().to_owned(),
                v["details"].clone(),
            )
        })
        .collect()
}

/// The chain's actions, in order.
async fn chain_actions(journal: &Journal) -> Vec<String> {
    chain(journal).await.into_iter().map(|(a, _)| a).collect()
}

async fn chunk_indexes(journal: &Journal) -> Vec<u64> {
    chain(journal)
        .await
        .iter()
        .filter(|(a, _)| a == "upload.chunk_accepted")
        .map(|(_, d)| d["index"].as_u64().unwrap())
        .collect()
}

/// Waits (a bounded poll) until the outbox is empty: rows are deleted by a task the writer
/// spawns after its append.
async fn outbox_empties(state: &dyn StateStore) -> bool {
    for _ in 0..200 {
        if outbox::rows(state).await.unwrap().is_empty() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

async fn new_upload(uploads: &Uploads, total: usize) -> UploadId {
    uploads
        .create(
            &alice(),
            &headers(&[("upload-length", &total.to_string())]),
            Empty::<Bytes>::new(),
        )
        .await
        .unwrap()
        .record
        .id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunk_entry_rides_on_the_record_commit_and_reaches_the_chain_after_it() {
    let r = rig();
    let chunk = vec![5u8; 100 * 1024];
    let before = r.journal.stats();
    let id = new_upload(&r.uploads, 3 * chunk.len()).await;
    // The creation's entry rides on the record's creation the same way.
    assert_eq!(
        r.journal.stats().syncs,
        before.syncs,
        "no journal sync in the creation"
    );

    let record = patch_bytes(&r.uploads, id, 0, &chunk).await;
    assert_eq!(record.offset, chunk.len() as u64);
    // Acknowledged with no journal append of its own: the entry is an outbox row, durable
    // with the record, and the chunk's pending record is gone.
    assert_eq!(
        r.journal.stats().syncs,
        before.syncs,
        "no journal sync in the PATCH"
    );
    let rows = outbox::rows(&*r.state).await.unwrap();
    let actions: Vec<&str> = rows.iter().map(|(_, row)| row.action.as_str()).collect();
    assert_eq!(actions, ["upload.created", "upload.chunk_accepted"]);
    assert_eq!(rows[0].1.subject.as_deref(), Some(id.to_string().as_str()));
    assert_eq!(rows[1].1.details["index"], 0);
    assert_eq!(rows[1].1.subject.as_deref(), Some(id.to_string().as_str()));
    assert!(r.uploads.store.pending(id).await.unwrap().is_none());
    assert!(chunk_indexes(&r.journal).await.is_empty());

    r.auditor.flush().await;
    assert_eq!(chunk_indexes(&r.journal).await, vec![0]);
    assert_eq!(r.metrics.audit_outbox_held.get(), 0);
    assert!(
        outbox_empties(&*r.state).await,
        "the delivered row is deleted"
    );

    // The next chunk waits in the outbox; the completing one is audited durably and takes
    // it along first: an upload's entries are all in the chain once it is complete.
    patch_bytes(&r.uploads, id, chunk.len() as u64, &chunk).await;
    // Handed to the writer before the PATCH returns, and held there (a bounded wait for
    // the writer task to take it from its queue).
    let returned = std::time::Instant::now();
    let mut held = 0;
    for _ in 0..200 {
        held = r.metrics.audit_outbox_held.get();
        if held == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    if held != 1 {
        // Only on a machine so loaded that the delay passed first: the writer appended it.
        assert!(
            returned.elapsed() >= outbox::OUTBOX_DELAY,
            "the writer holds the second chunk's entry"
        );
        assert_eq!(chunk_indexes(&r.journal).await, vec![0, 1]);
    }
    let done = patch_bytes(&r.uploads, id, 2 * chunk.len() as u64, &chunk).await;
    assert!(done.is_complete());
    assert_eq!(chunk_indexes(&r.journal).await, vec![0, 1, 2]);
    let actions = chain_actions(&r.journal).await;
    assert_eq!(actions.last().map(String::as_str), Some("upload.completed"));
    assert!(outbox_empties(&*r.state).await);
    let verified = crate::audit::verify_store(&*r.journal, |_| {})
        .await
        .unwrap()
        .unwrap();
    assert_eq!(verified.length, actions.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outboxed_entry_reaches_the_chain_on_its_own_within_the_delay() {
    let r = rig();
    let chunk = vec![6u8; 10 * 1024];
    let id = new_upload(&r.uploads, 2 * chunk.len()).await;
    // The creation's entry out of the way: the chunk's is the only one held.
    r.auditor.flush().await;
    patch_bytes(&r.uploads, id, 0, &chunk).await;
    // Nothing else is audited: the writer's timer appends it. A bounded wait, generous
    // against a loaded machine (the delay is half a second).
    let mut waited = Duration::ZERO;
    while chunk_indexes(&r.journal).await.is_empty() && waited < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += Duration::from_millis(50);
    }
    assert_eq!(chunk_indexes(&r.journal).await, vec![0]);
    assert!(
        waited >= outbox::OUTBOX_DELAY / 2,
        "held for a shared sync first: {waited:?}"
    );
    assert!(outbox_empties(&*r.state).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_a_stopped_writer_left_reach_the_chain_once_at_the_next_start() {
    let r = rig();
    // Staged and made durable, but never handed to the writer: a process killed between
    // the record's commit and the release.
    let event = crate::upload::events::ChunkAccepted {
        upload: "u-left-behind".into(),
        index: 0,
        offset: 0,
        length: 5,
        sha256: "00".repeat(32),
        checksum_verified: None,
        partial_body: false,
        recovered: false,
    };
    let staged = r
        .auditor
        .prepare(&AuditContext::system(), &event)
        .unwrap()
        .expect("an outbox");
    r.auditor.stage(&staged).await.unwrap();
    let row = outbox::rows(&*r.state).await.unwrap().remove(0);
    let before = r.journal.read(1, 10_000).await.unwrap().len();

    // One whose commit failed is taken back: nothing of it reaches the chain.
    let taken_back = r
        .auditor
        .prepare(&AuditContext::system(), &event)
        .unwrap()
        .expect("an outbox");
    r.auditor.stage(&taken_back).await.unwrap();
    assert_eq!(outbox::rows(&*r.state).await.unwrap().len(), 2);
    r.auditor.unstage(taken_back).await;
    assert_eq!(outbox::rows(&*r.state).await.unwrap(), vec![row.clone()]);

    // The next start: a new writer on the same journal and store drains the outbox.
    let next = Auditor::start_full(
        r.journal.clone(),
        "test-2".into(),
        16,
        Arc::new(Metrics::new()),
        None,
        Some(r.state.clone()),
    );
    let drained = next.drain_outbox().await.unwrap();
    assert_eq!(drained.appended, 1);
    assert_eq!(drained.already_in_chain, 0);
    let entries = r.journal.read(1, 10_000).await.unwrap();
    assert_eq!(entries.len(), before + 1);
    let last: serde_json::Value = serde_json::from_slice(&entries[before].bytes).unwrap();
    assert_eq!(last["subject"], "u-left-behind");
    assert_eq!(
        last["time"],
        row.1.time.as_str(),
        "the event keeps its own time"
    );
    assert!(outbox::rows(&*r.state).await.unwrap().is_empty());

    // A row whose entry reached the chain but whose deletion a crash lost is not appended
    // a second time.
    r.state
        .put(
            outbox::OUTBOX,
            &row.0,
            &row.1.encode().unwrap(),
            crate::state::Expect::Any,
            crate::state::PutOptions::default(),
        )
        .await
        .unwrap();
    let drained = next.drain_outbox().await.unwrap();
    assert_eq!(drained.appended, 0);
    assert_eq!(drained.already_in_chain, 1);
    assert_eq!(r.journal.read(1, 10_000).await.unwrap().len(), before + 1);
    assert!(outbox::rows(&*r.state).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_record_left_by_a_crash_writes_an_outboxed_entry_no_second_time() {
    for outboxed in [true, false] {
        let r = rig();
        let chunk = vec![7u8; 10 * 1024];
        let id = new_upload(&r.uploads, 2 * chunk.len()).await;
        let record = patch_bytes(&r.uploads, id, 0, &chunk).await;
        r.auditor.flush().await;
        assert_eq!(chunk_indexes(&r.journal).await, vec![0]);
        // What a crash between the record's commit and the pending record's (deferred)
        // deletion leaves: the pending record of an applied commit.
        let entry = r.uploads.store.chunks(id).await.unwrap().remove(0);
        let left = crate::upload::store::Pending {
            from_offset: 0,
            record: record.clone(),
            entry: Some(entry),
            completes: false,
            outboxed,
        };
        r.uploads.store.set_pending(id, &left).await.unwrap();
        let (head, _) = r.uploads.head(&alice(), id).await.unwrap();
        assert_eq!(head.offset, chunk.len() as u64);
        assert!(r.uploads.store.pending(id).await.unwrap().is_none());
        r.auditor.flush().await;
        let written = chain(&r.journal)
            .await
            .into_iter()
            .filter(|(a, _)| a == "upload.chunk_accepted")
            .map(|(_, d)| d["recovered"].as_bool().unwrap())
            .collect::<Vec<_>>();
        if outboxed {
            // The outbox delivered it: nothing written again.
            assert_eq!(written, vec![false]);
        } else {
            // Written synchronously before: the entry may not have been, so again.
            assert_eq!(written, vec![false, true]);
        }
    }
}

/// The chunk entries of the chain as `(index, recovered)`.
async fn chunk_entries(journal: &Journal) -> Vec<(u64, bool)> {
    chain(journal)
        .await
        .iter()
        .filter(|(a, _)| a == "upload.chunk_accepted")
        .map(|(_, d)| {
            (
                d["index"].as_u64().unwrap(),
                d["recovered"].as_bool().unwrap(),
            )
        })
        .collect()
}

/// After `what` was refused because its record's commit failed: that commit was the put
/// that failed, and the staged row was taken back, durably (a crash now cannot bring it
/// back for the next start to append).
async fn assert_taken_back(
    what: &str,
    store: &super::commit_budget::Counting,
    state: &dyn StateStore,
) {
    assert!(
        !store.fault_armed(),
        "{what}: the record's commit was not the put that failed"
    );
    let rows = outbox::rows(state).await.unwrap();
    assert!(rows.is_empty(), "{what}: its row is left: {rows:?}");
    assert!(
        store.durable_deletes().contains(&outbox::OUTBOX),
        "{what}: the row was taken back deferred: {:?}",
        store.durable_deletes()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunk_whose_record_commit_fails_takes_its_row_back_and_is_audited_once_when_settled() {
    let dir = tempfile::tempdir().unwrap();
    let store = super::commit_budget::counting(&dir);
    let r = rig_on(dir, store.clone());
    let chunk = vec![8u8; 10 * 1024];
    let id = new_upload(&r.uploads, 2 * chunk.len()).await;
    r.auditor.flush().await;

    // The record's commit fails: the PATCH is refused, and its staged row taken back.
    store.fail_next_put(crate::upload::store::UPLOADS);
    let length = chunk.len().to_string();
    let h = headers(&[
        ("upload-offset", "0"),
        ("content-type", "application/offset+octet-stream"),
        ("content-length", length.as_str()),
    ]);
    let refused = r
        .uploads
        .patch(&alice(), id, &h, Full::new(Bytes::copy_from_slice(&chunk)))
        .await;
    assert!(refused.is_err(), "acknowledged a chunk whose record failed");
    assert_taken_back("a refused chunk", &store, &*r.state).await;
    r.auditor.flush().await;
    assert!(chunk_entries(&r.journal).await.is_empty());

    // The next request under the lease finishes the commit from its pending record (the
    // bytes are durable) and audits it, once, as recovered.
    let (record, _) = r.uploads.head(&alice(), id).await.unwrap();
    assert_eq!(record.offset, chunk.len() as u64);
    r.auditor.flush().await;
    assert_eq!(chunk_entries(&r.journal).await, vec![(0, true)]);

    // The upload goes on; every chunk has one entry and the chain verifies.
    let done = patch_bytes(&r.uploads, id, chunk.len() as u64, &chunk).await;
    assert!(done.is_complete());
    assert_eq!(chunk_entries(&r.journal).await, vec![(0, true), (1, false)]);
    assert!(outbox_empties(&*r.state).await);
    crate::audit::verify_store(&*r.journal, |_| {})
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_creation_whose_record_commit_fails_leaves_no_entry_and_no_object() {
    let dir = tempfile::tempdir().unwrap();
    let blobs_dir = dir.path().join("blobs");
    let store = super::commit_budget::counting(&dir);
    let r = rig_on(dir, store.clone());
    store.fail_next_put(crate::upload::store::UPLOADS);
    let refused = r
        .uploads
        .create(&alice(), &with_metadata(100), Empty::<Bytes>::new())
        .await;
    assert!(
        refused.is_err(),
        "a creation whose record failed was answered"
    );
    // Its staged row was taken back: nothing reaches the chain, now or at a next start.
    assert_taken_back("a refused creation", &store, &*r.state).await;
    r.auditor.flush().await;
    let actions = chain_actions(&r.journal).await;
    assert!(
        !actions.iter().any(|a| a == "upload.created"),
        "{actions:?}"
    );
    // Nothing else of it stays: its objects are shredded, its reservation given back.
    let blobs = LocalBlobStore::open(&blobs_dir).unwrap();
    assert!(blobs.list().await.unwrap().is_empty());
    assert_eq!(r.uploads.bytes_held("alice").await.unwrap(), 0);

    // The next creation is audited as usual.
    new_upload(&r.uploads, 100).await;
    r.auditor.flush().await;
    let actions = chain_actions(&r.journal).await;
    assert_eq!(
        actions.iter().filter(|a| *a == "upload.created").count(),
        1,
        "{actions:?}"
    );
}
