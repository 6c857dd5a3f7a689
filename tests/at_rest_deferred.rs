//! Deferred commits (`Writer::commit_deferred`): the commit's tail record goes to the
//! state store instead of the tail blob. Recovery takes the later generation of the two;
//! a deferred record that was lost (its store's durable write never came) falls back to
//! the tail blob and cuts the bytes it covered; a stale, tampered or foreign one is never
//! taken for the commit point; finishing and deleting the object leave none behind.
//! (Crashes at every blob write step of a workload with deferred commits in it:
//! `at_rest_crash.rs`.)

#![allow(clippy::unwrap_used)]

mod support;

use sallyport::at_rest::writer::DEFERRED_TAILS;
use sallyport::at_rest::{AtRest, AtRestError, Reopened, TailError, Writer};
use sallyport::ids::OpaqueId;
use sallyport::state::{Expect, PutOptions, StateStore};
use sha2::{Digest, Sha256};

use support::at_rest::store;
use support::data::data;

const S: usize = 16;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

async fn reopen(at_rest: &AtRest, object: OpaqueId) -> (Writer, u64, u64) {
    match at_rest.open_writer(object).await.unwrap() {
        Reopened::Open { writer, recovery } => {
            assert!(!recovery.tail_rebuilt);
            (
                *writer,
                recovery.committed.plaintext_len,
                recovery.cut_bytes,
            )
        }
        Reopened::Finished(_) => panic!("finished"),
    }
}

async fn finish_and_check(at_rest: &AtRest, mut w: Writer, object: OpaqueId, plain: &[u8]) {
    let from = w.committed().plaintext_len as usize;
    w.append(&plain[from..]).await.unwrap();
    let f = w.finish().await.unwrap();
    assert_eq!(f.sha256, <[u8; 32]>::from(Sha256::digest(plain)));
    let reader = at_rest.open_reader(object).await.unwrap();
    let got = reader.read_range(0, plain.len() as u64).await.unwrap();
    assert_eq!(&got[..], plain);
}

#[test]
fn a_deferred_commit_is_the_commit_point_and_finish_drops_it() {
    rt().block_on(async {
        let (at_rest, _blob, state) = store(S as u32);
        // Batches of one segment: appended segments reach the blob before a commit.
        let at_rest = at_rest.with_batch_bytes(S + 28);
        let object = OpaqueId::random();
        let plain = data(9 * S + 5, 1);
        let mut w = at_rest.create(object).await.unwrap();
        w.append(&plain[..3 * S + 7]).await.unwrap();
        let c = w.commit_deferred(b"first").await.unwrap();
        assert_eq!((c.plaintext_len, c.generation), (3 * S as u64 + 7, 2));
        w.append(&plain[3 * S + 7..6 * S + 1]).await.unwrap();
        w.commit_deferred(b"second").await.unwrap();
        // Uncommitted bytes past the deferred commit point: cut on reopen.
        w.append(&plain[6 * S + 1..8 * S]).await.unwrap();
        drop(w);
        let key = object.to_string();
        assert!(state.get(DEFERRED_TAILS, &key).await.unwrap().is_some());

        let (w, len, cut) = reopen(&at_rest, object).await;
        assert_eq!(len, 6 * S as u64 + 1);
        assert_eq!(w.note(), b"second");
        assert!(cut > 0, "the uncommitted segments were not cut");
        finish_and_check(&at_rest, w, object, &plain).await;
        assert!(state.get(DEFERRED_TAILS, &key).await.unwrap().is_none());
        assert!(matches!(
            at_rest.open_writer(object).await.unwrap(),
            Reopened::Finished(f) if f.plaintext_len == plain.len() as u64
        ));
    });
}

#[test]
fn a_lost_deferred_commit_falls_back_to_the_tail_blob() {
    rt().block_on(async {
        let (at_rest, _blob, state) = store(S as u32);
        let object = OpaqueId::random();
        let plain = data(7 * S, 2);
        let mut w = at_rest.create(object).await.unwrap();
        w.append(&plain[..2 * S + 3]).await.unwrap();
        w.commit_noted(b"in the blob").await.unwrap();
        w.append(&plain[2 * S + 3..5 * S]).await.unwrap();
        w.commit_deferred(b"lost").await.unwrap();
        drop(w);
        // The store's durable write never came: the deferred record is gone.
        state
            .delete(DEFERRED_TAILS, &object.to_string(), Expect::Any)
            .await
            .unwrap();
        let (w, len, cut) = reopen(&at_rest, object).await;
        assert_eq!(len, 2 * S as u64 + 3);
        assert_eq!(w.note(), b"in the blob");
        assert!(cut > 0, "the segments of the lost commit were not cut");
        finish_and_check(&at_rest, w, object, &plain).await;
    });
}

#[test]
fn a_rollback_returns_to_the_deferred_commit() {
    rt().block_on(async {
        let (at_rest, _blob, _state) = store(S as u32);
        let object = OpaqueId::random();
        let plain = data(6 * S, 3);
        let mut w = at_rest.create(object).await.unwrap();
        w.append(&plain[..S + 9]).await.unwrap();
        w.commit_deferred(b"").await.unwrap();
        w.append(&data(3 * S, 99)).await.unwrap();
        assert_eq!(w.rollback().await.unwrap().plaintext_len, S as u64 + 9);
        finish_and_check(&at_rest, w, object, &plain).await;
    });
}

#[test]
fn a_deferred_record_older_than_the_tail_blob_is_not_taken() {
    rt().block_on(async {
        let (at_rest, _blob, state) = store(S as u32);
        let object = OpaqueId::random();
        let key = object.to_string();
        let plain = data(8 * S, 4);
        let mut w = at_rest.create(object).await.unwrap();
        w.append(&plain[..2 * S]).await.unwrap();
        w.commit_deferred(b"older").await.unwrap();
        let older = state.get(DEFERRED_TAILS, &key).await.unwrap().unwrap();
        // A later commit to the tail blob (generation 3) outranks the deferred one (2).
        w.append(&plain[2 * S..4 * S + 1]).await.unwrap();
        w.commit_noted(b"newer").await.unwrap();
        drop(w);
        let (w, len, _) = reopen(&at_rest, object).await;
        assert_eq!(len, 4 * S as u64 + 1);
        assert_eq!(w.note(), b"newer");
        finish_and_check(&at_rest, w, object, &plain).await;

        // A deferred record put back after the object was finished (as a crash between
        // finish's tail replace and its delete leaves one): the finished tail blob is the
        // last word, and recovery drops the stale record.
        state
            .put(
                DEFERRED_TAILS,
                &key,
                &older.value,
                Expect::Any,
                PutOptions::default(),
            )
            .await
            .unwrap();
        assert!(matches!(
            at_rest.open_writer(object).await.unwrap(),
            Reopened::Finished(f) if f.plaintext_len == plain.len() as u64
        ));
        assert!(state.get(DEFERRED_TAILS, &key).await.unwrap().is_none());
        let reader = at_rest.open_reader(object).await.unwrap();
        assert_eq!(reader.len(), plain.len() as u64);
    });
}

#[test]
fn a_tampered_or_foreign_deferred_record_is_refused() {
    rt().block_on(async {
        let (at_rest, _blob, state) = store(S as u32);
        let plain = data(4 * S, 5);
        let a = OpaqueId::random();
        let b = OpaqueId::random();
        for object in [a, b] {
            let mut w = at_rest.create(object).await.unwrap();
            w.append(&plain[..2 * S + 1]).await.unwrap();
            w.commit_deferred(b"").await.unwrap();
        }
        let get = |o: OpaqueId| {
            let state = state.clone();
            async move {
                state
                    .get(DEFERRED_TAILS, &o.to_string())
                    .await
                    .unwrap()
                    .unwrap()
                    .value
            }
        };
        let put = |o: OpaqueId, v: Vec<u8>| {
            let state = state.clone();
            async move {
                state
                    .put(
                        DEFERRED_TAILS,
                        &o.to_string(),
                        &v,
                        Expect::Any,
                        PutOptions::default(),
                    )
                    .await
                    .unwrap();
            }
        };
        let original = get(a).await;
        // One flipped bit.
        let mut flipped = original.to_vec();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        put(a, flipped).await;
        assert!(matches!(
            at_rest.open_writer(a).await,
            Err(AtRestError::Tail(TailError::Authentication))
        ));
        // Another object's record (its own key) in this object's place.
        put(a, get(b).await.to_vec()).await;
        assert!(matches!(
            at_rest.open_writer(a).await,
            Err(AtRestError::Tail(TailError::Authentication))
        ));
        // Oversized: refused before it is decrypted.
        put(a, vec![0u8; 4 * 1024 * 1024]).await;
        assert!(matches!(
            at_rest.open_writer(a).await,
            Err(AtRestError::Inconsistent(_))
        ));
        // The real one back: the object is whole again.
        put(a, original.to_vec()).await;
        let (w, len, _) = reopen(&at_rest, a).await;
        assert_eq!(len, 2 * S as u64 + 1);
        finish_and_check(&at_rest, w, a, &plain).await;
    });
}

#[test]
fn deleting_an_open_object_drops_its_deferred_record() {
    rt().block_on(async {
        let (at_rest, _blob, state) = store(S as u32);
        let object = OpaqueId::random();
        let mut w = at_rest.create(object).await.unwrap();
        w.append(&data(3 * S, 6)).await.unwrap();
        w.commit_deferred(b"").await.unwrap();
        drop(w);
        let key = object.to_string();
        assert!(state.get(DEFERRED_TAILS, &key).await.unwrap().is_some());
        at_rest.delete(object).await.unwrap();
        assert!(state.get(DEFERRED_TAILS, &key).await.unwrap().is_none());
        assert!(matches!(
            at_rest.open_writer(object).await,
            Err(AtRestError::NotFound)
        ));
    });
}
