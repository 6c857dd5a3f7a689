//! The commit note (issue 14): a chunk's pending record is written without a sync of its
//! own, and the same content is sealed into the object's commit point. A crash after that
//! commit point and before the upload record's durable commit loses the pending record,
//! the ledger entry and the record update together (they are one commit); the next
//! request under the lease finishes the commit from the note.
//!
//! The crash is reproduced by taking the state back to what it was before the chunk's
//! record commit (record, ledger entry, pending record), leaving the blobs as the
//! commit point left them: exactly what the embedded store holds after such a crash.

use super::*;
use crate::upload::store::{CHUNKS, PENDING};

async fn patch(
    uploads: &Uploads,
    id: UploadId,
    offset: u64,
    body: &[u8],
) -> Result<UploadRecord, UploadError> {
    let offset = offset.to_string();
    let length = body.len().to_string();
    let pairs = [
        ("upload-offset", offset.as_str()),
        ("content-type", "application/offset+octet-stream"),
        ("content-length", length.as_str()),
    ];
    uploads
        .patch(
            &alice(),
            id,
            &headers(&pairs),
            Full::new(Bytes::copy_from_slice(body)),
        )
        .await
        .map(|o| o.record)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_whose_record_was_lost_is_finished_from_its_note() {
    let dir = tempfile::tempdir().unwrap();
    let state: Arc<dyn StateStore> =
        Arc::new(EmbeddedStateStore::open(&dir.path().join("state.redb")).unwrap());
    let (uploads, _) = engine_on(&dir, state.clone());
    // Chunks that end inside a segment (64 KiB), so the partial lives in the tail record.
    let source: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let created = uploads
        .create(
            &alice(),
            &headers(&[("upload-length", "300000")]),
            Empty::<Bytes>::new(),
        )
        .await
        .unwrap()
        .record;
    let id = created.id;
    let first = patch(&uploads, id, 0, &source[..100_000]).await.unwrap();
    assert_eq!(first.offset, 100_000);
    let (before, _) = uploads.store.get(id).await.unwrap().unwrap();
    let second = patch(&uploads, id, 100_000, &source[100_000..210_000])
        .await
        .unwrap();
    assert_eq!(second.offset, 210_000);

    // The crash: the record's commit (record, ledger entry 1, pending record) never
    // happened; the object's commit point (the tail record and its note) did.
    let (_, version) = uploads.store.get(id).await.unwrap().unwrap();
    uploads.store.update(&before, version).await.unwrap();
    let entry_1 = format!("{id}.{:016}", 1);
    assert!(state.get(CHUNKS, &entry_1).await.unwrap().is_some());
    state
        .delete(CHUNKS, &entry_1, crate::state::Expect::Any)
        .await
        .unwrap();
    assert!(state.get(PENDING, &id.to_string()).await.unwrap().is_none());
    assert_eq!(uploads.store.chunks(id).await.unwrap().len(), 1);

    // HEAD reports the durable record: the chunk was never acknowledged.
    let (head, _) = uploads.head(&alice(), id).await.unwrap();
    assert_eq!(head.offset, 100_000);
    // The client resends it: the commit is finished from the note under the lease, so
    // the resent PATCH is at a stale offset (409), and the next HEAD has the chunk.
    match patch(&uploads, id, 100_000, &source[100_000..210_000]).await {
        Err(UploadError::Tus {
            error: crate::tus::TusError::OffsetMismatch { .. },
            ..
        }) => {}
        other => panic!("expected an offset mismatch, got {other:?}"),
    }
    let (head, _) = uploads.head(&alice(), id).await.unwrap();
    assert_eq!(head.offset, 210_000);
    let chunks = uploads.store.chunks(id).await.unwrap();
    assert_eq!(chunks.len(), 2);
    assert_eq!((chunks[1].offset, chunks[1].length), (100_000, 110_000));
    assert_eq!(
        chunks[1].sha256.to_string(),
        hex::encode(Sha256::digest(&source[100_000..210_000]))
    );
    assert!(
        uploads.store.pending(id).await.unwrap().is_none(),
        "the recovered commit's pending record is cleared once audited"
    );

    // The upload goes on and completes with the whole file's digest.
    let done = patch(&uploads, id, 210_000, &source[210_000..])
        .await
        .unwrap();
    assert!(done.is_complete());
    assert_eq!(
        done.sha256.unwrap().to_string(),
        hex::encode(Sha256::digest(&source))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_note_is_used_only_when_the_object_is_ahead_of_its_record() {
    let dir = tempfile::tempdir().unwrap();
    let (uploads, _) = engine(&dir);
    let created = uploads
        .create(
            &alice(),
            &headers(&[("upload-length", "200000")]),
            Empty::<Bytes>::new(),
        )
        .await
        .unwrap()
        .record;
    let id = created.id;
    let body = vec![3u8; 120_000];
    patch(&uploads, id, 0, &body).await.unwrap();
    // The note of the applied commit is still in the tail record: a HEAD and a PATCH
    // reconcile without applying it again.
    for _ in 0..2 {
        let (head, _) = uploads.head(&alice(), id).await.unwrap();
        assert_eq!(head.offset, 120_000);
    }
    let done = patch(&uploads, id, 120_000, &vec![4u8; 80_000])
        .await
        .unwrap();
    assert!(done.is_complete());
    assert_eq!(uploads.store.chunks(id).await.unwrap().len(), 2);
}

/// The crash as it happens on the embedded store: the previous chunk's pending record is
/// still there (its deletion was deferred, so the rollback to the last durable commit
/// brings it back) and the object is one commit ahead. Both are settled, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_previous_pending_record_and_the_note_are_both_settled() {
    let dir = tempfile::tempdir().unwrap();
    let state: Arc<dyn StateStore> =
        Arc::new(EmbeddedStateStore::open(&dir.path().join("state.redb")).unwrap());
    let (uploads, _) = engine_on(&dir, state.clone());
    let source: Vec<u8> = (0..250_000u32).map(|i| (i % 253) as u8).collect();
    let created = uploads
        .create(
            &alice(),
            &headers(&[("upload-length", "250000")]),
            Empty::<Bytes>::new(),
        )
        .await
        .unwrap()
        .record;
    let id = created.id;
    patch(&uploads, id, 0, &source[..90_000]).await.unwrap();
    let (before, _) = uploads.store.get(id).await.unwrap().unwrap();
    let first_entry = uploads.store.chunks(id).await.unwrap().remove(0);
    patch(&uploads, id, 90_000, &source[90_000..170_000])
        .await
        .unwrap();

    // Back to the last durable commit: the first chunk's record, ledger and pending
    // record; the second chunk only in the object.
    let (_, version) = uploads.store.get(id).await.unwrap().unwrap();
    uploads.store.update(&before, version).await.unwrap();
    state
        .delete(
            CHUNKS,
            &format!("{id}.{:016}", 1),
            crate::state::Expect::Any,
        )
        .await
        .unwrap();
    let previous = crate::upload::store::Pending {
        from_offset: 0,
        record: before.clone(),
        entry: Some(first_entry),
        completes: false,
        outboxed: false,
    };
    uploads.store.set_pending(id, &previous).await.unwrap();

    // HEAD finds the pending record, so it settles under the lease: the first chunk's
    // entries again (recovered), then the second chunk from the note.
    let (head, _) = uploads.head(&alice(), id).await.unwrap();
    assert_eq!(head.offset, 170_000);
    let chunks = uploads.store.chunks(id).await.unwrap();
    assert_eq!(chunks.len(), 2);
    assert_eq!(
        chunks[1].sha256.to_string(),
        hex::encode(Sha256::digest(&source[90_000..170_000]))
    );
    assert!(uploads.store.pending(id).await.unwrap().is_none());
    let done = patch(&uploads, id, 170_000, &source[170_000..])
        .await
        .unwrap();
    assert_eq!(
        done.sha256.unwrap().to_string(),
        hex::encode(Sha256::digest(&source))
    );
}
