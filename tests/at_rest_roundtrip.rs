//! Round trips of the at-rest format: every size around segment boundaries, appends in
//! random pieces with commits, rollbacks and restarts (proptest), random range reads.

#![allow(clippy::unwrap_used)]

mod support;

use futures_util::StreamExt;
use proptest::prelude::*;
use sallyport::at_rest::{AtRest, AtRestError, Reopened, Writer};
use sallyport::blob::BlobId;
use sallyport::ids::OpaqueId;
use sha2::{Digest, Sha256};

use support::at_rest::store;
use support::data::data;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

async fn reopen(at_rest: &AtRest, object: OpaqueId) -> Writer {
    match at_rest.open_writer(object).await.unwrap() {
        Reopened::Open { writer, .. } => *writer,
        Reopened::Finished(_) => panic!("unexpectedly finished"),
    }
}

async fn read_all(at_rest: &AtRest, object: OpaqueId) -> Vec<u8> {
    let reader = at_rest.open_reader(object).await.unwrap();
    let mut out = Vec::new();
    let mut stream = Box::pin(reader.stream_range(0, reader.len()).unwrap());
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    out
}

#[test]
fn round_trips_at_every_size_around_segment_boundaries() {
    rt().block_on(async {
        for s in [16u32, 64] {
            let (at_rest, blob, _) = store(s);
            let s = s as usize;
            let mut sizes = vec![0, 1, s - 1, s, s + 1, 2 * s - 1, 2 * s, 2 * s + 1, 3 * s];
            sizes.extend([5 * s - 1, 5 * s, 5 * s + 1, 17 * s + 3]);
            for (i, &len) in sizes.iter().enumerate() {
                let plain = data(len, i as u64);
                let object = OpaqueId::random();
                let mut w = at_rest.create(object).await.unwrap();
                w.append(&plain).await.unwrap();
                let done = w.finish().await.unwrap();
                assert_eq!(done.plaintext_len, len as u64);
                assert_eq!(done.sha256, <[u8; 32]>::from(Sha256::digest(&plain)));

                // The stored length is exactly what the length rule predicts.
                let stored = blob.raw(BlobId::data(object)).unwrap().len();
                assert_eq!(
                    stored,
                    108 + (len / s) * (s + 28) + len % s + 28,
                    "len {len}"
                );

                let reader = at_rest.open_reader(object).await.unwrap();
                assert_eq!(reader.len(), len as u64);
                assert_eq!(
                    &reader.read_range(0, len as u64).await.unwrap()[..],
                    &plain[..]
                );
                assert_eq!(read_all(&at_rest, object).await, plain);
                for offset in 0..=len {
                    for l in [0, 1, s - 1, s, s + 1] {
                        if offset + l <= len {
                            let got = reader.read_range(offset as u64, l as u64).await.unwrap();
                            assert_eq!(&got[..], &plain[offset..offset + l], "{len} {offset} {l}");
                        }
                    }
                }
                assert!(matches!(
                    reader.read_range(len as u64, 1).await,
                    Err(AtRestError::Range { .. })
                ));
                assert!(matches!(
                    reader.read_range(u64::MAX, 2).await,
                    Err(AtRestError::Range { .. })
                ));
                // Reopening a finished object reports its result and allows no writes.
                match at_rest.open_writer(object).await.unwrap() {
                    Reopened::Finished(f) => assert_eq!(f, done),
                    Reopened::Open { .. } => panic!("finished object reopened for writing"),
                }
            }
        }
    });
}

#[test]
fn default_segment_size_large_object_in_small_batches() {
    rt().block_on(async {
        let (at_rest, _, _) = store(64 * 1024);
        // A 200 KiB batch forces many blob appends per PATCH-sized append.
        let at_rest = at_rest.with_batch_bytes(200 * 1024);
        let plain = data(3 * 1024 * 1024 + 12345, 9);
        let object = OpaqueId::random();
        let mut w = at_rest.create(object).await.unwrap();
        for piece in plain.chunks(777_777) {
            w.append(piece).await.unwrap();
            w.commit().await.unwrap();
        }
        let done = w.finish().await.unwrap();
        assert_eq!(done.sha256, <[u8; 32]>::from(Sha256::digest(&plain)));
        assert_eq!(read_all(&at_rest, object).await, plain);
        let reader = at_rest.open_reader(object).await.unwrap();
        let got = reader.read_range(65_000, 200_000).await.unwrap();
        assert_eq!(&got[..], &plain[65_000..265_000]);
        // A streamed sub-range that starts and ends inside segments.
        let mut streamed = Vec::new();
        let mut chunks = 0;
        let mut stream = Box::pin(reader.stream_range(1000, 2_500_000).unwrap());
        while let Some(chunk) = stream.next().await {
            streamed.extend_from_slice(&chunk.unwrap());
            chunks += 1;
        }
        assert_eq!(&streamed[..], &plain[1000..2_501_000]);
        assert!(chunks >= 3, "streamed in {chunks} chunks");
        assert!(reader.stream_range(1, plain.len() as u64).is_err());
    });
}

#[test]
fn an_unfinished_object_cannot_be_read_and_commit_is_idempotent() {
    rt().block_on(async {
        let (at_rest, _, _) = store(16);
        let object = OpaqueId::random();
        let mut w = at_rest.create(object).await.unwrap();
        w.append(&data(40, 1)).await.unwrap();
        let c1 = w.commit().await.unwrap();
        assert_eq!(c1.plaintext_len, 40);
        assert_eq!(w.commit().await.unwrap(), c1);
        assert!(matches!(
            at_rest.open_reader(object).await,
            Err(AtRestError::NotFinished)
        ));
        assert!(matches!(
            at_rest.create(object).await,
            Err(AtRestError::AlreadyExists)
        ));
        assert!(matches!(
            at_rest.open_reader(OpaqueId::random()).await,
            Err(AtRestError::NotFound)
        ));
    });
}

#[test]
fn rollback_discards_exactly_the_uncommitted_bytes() {
    rt().block_on(async {
        let (at_rest, blob, _) = store(16);
        let object = OpaqueId::random();
        let plain = data(100, 3);
        let mut w = at_rest.create(object).await.unwrap();
        w.append(&plain[..37]).await.unwrap();
        w.commit().await.unwrap();
        let committed_blob = blob.raw(BlobId::data(object)).unwrap();
        w.append(&data(50, 99)).await.unwrap(); // a PATCH whose checksum fails
        let back = w.rollback().await.unwrap();
        assert_eq!(back.plaintext_len, 37);
        assert_eq!(blob.raw(BlobId::data(object)).unwrap(), committed_blob);
        w.append(&plain[37..]).await.unwrap();
        let done = w.finish().await.unwrap();
        assert_eq!(done.sha256, <[u8; 32]>::from(Sha256::digest(&plain)));
        assert_eq!(read_all(&at_rest, object).await, plain);
    });
}

#[test]
fn delete_shreds_and_is_idempotent() {
    rt().block_on(async {
        let (at_rest, blob, _) = store(16);
        let object = OpaqueId::random();
        let mut w = at_rest.create(object).await.unwrap();
        w.append(&data(50, 1)).await.unwrap();
        w.finish().await.unwrap();
        let d = at_rest.delete(object).await.unwrap();
        assert!(d.key && d.data && d.tail);
        assert!(blob.raw(BlobId::data(object)).is_none());
        assert!(matches!(
            at_rest.open_reader(object).await,
            Err(AtRestError::NotFound)
        ));
        let again = at_rest.delete(object).await.unwrap();
        assert!(!again.key && !again.data && !again.tail);
    });
}

#[derive(Debug, Clone)]
enum Step {
    Append(usize),
    Commit,
    Restart,
    Rollback,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (0usize..200).prop_map(Step::Append),
        3 => Just(Step::Commit),
        1 => Just(Step::Restart),
        1 => Just(Step::Rollback),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Appending in random pieces with commits, rollbacks and restarts (the writer dropped
    /// and reopened, losing whatever was not committed) gives the same object as one
    /// write; random ranges read back equal the plaintext slice.
    #[test]
    fn pieces_restarts_and_ranges(
        len in 0usize..1500,
        seed in any::<u64>(),
        shift in 4u32..8,
        steps in prop::collection::vec(step(), 1..40),
        ranges in prop::collection::vec((any::<u64>(), 0u64..300), 1..20),
    ) {
        let s = 1u32 << shift;
        let plain = data(len, seed);
        let (pieced, oneshot) = rt().block_on(async {
            // Tiny batches so pieces also cross batch boundaries.
            let (at_rest, _, _) = store(s);
            let at_rest = at_rest.with_batch_bytes(3 * (s as usize + 28));
            let object = OpaqueId::random();
            let mut w = at_rest.create(object).await.unwrap();
            let mut fed = 0usize;
            let mut steps = steps.into_iter();
            loop {
                let step = steps.next().unwrap_or(Step::Append(97));
                match step {
                    Step::Append(n) => {
                        let n = n.min(len - fed);
                        w.append(&plain[fed..fed + n]).await.unwrap();
                        fed += n;
                    }
                    Step::Commit => {
                        let c = w.commit().await.unwrap();
                        assert_eq!(c.plaintext_len, fed as u64);
                    }
                    Step::Restart => {
                        drop(w);
                        w = reopen(&at_rest, object).await;
                        fed = w.committed().plaintext_len as usize;
                    }
                    Step::Rollback => {
                        fed = w.rollback().await.unwrap().plaintext_len as usize;
                    }
                }
                if fed == len && steps.len() == 0 {
                    break;
                }
            }
            let pieced = w.finish().await.unwrap();

            let object2 = OpaqueId::random();
            let mut w2 = at_rest.create(object2).await.unwrap();
            w2.append(&plain).await.unwrap();
            let oneshot = w2.finish().await.unwrap();

            let reader = at_rest.open_reader(object).await.unwrap();
            assert_eq!(read_all(&at_rest, object).await, plain);
            for (start, l) in ranges {
                let start = if len == 0 { 0 } else { start % (len as u64 + 1) };
                let l = l.min(len as u64 - start);
                let got = reader.read_range(start, l).await.unwrap();
                assert_eq!(&got[..], &plain[start as usize..(start + l) as usize]);
            }
            (pieced, oneshot)
        });
        prop_assert_eq!(pieced, oneshot);
    }
}

/// A commit note (issue 14) is sealed with the commit point it was written with: read back
/// after a reopen and a rollback, replaced by the next commit's, and never written by a
/// commit that has nothing to commit.
#[test]
fn a_commit_note_comes_back_with_its_commit_point() {
    rt().block_on(async {
        let (at_rest, blob, _) = store(16);
        let object = OpaqueId::random();
        let mut w = at_rest.create(object).await.unwrap();
        assert!(w.note().is_empty());
        w.append(b"twenty-one bytes here").await.unwrap();
        w.commit_noted(b"first commit").await.unwrap();
        assert_eq!(w.note(), b"first commit");
        let tail = blob.raw(BlobId::tail(object)).unwrap();
        assert_eq!(&tail[..5], b"SPAT\x02", "a noted record is version 2");
        // Nothing appended: no new commit point, the note stays.
        w.commit_noted(b"ignored").await.unwrap();
        drop(w);
        let mut w = reopen(&at_rest, object).await;
        assert_eq!(w.note(), b"first commit");
        // Appended but rolled back: the committed note comes back.
        w.append(b"more").await.unwrap();
        w.rollback().await.unwrap();
        assert_eq!(w.note(), b"first commit");
        // A commit without a note writes a version-1 record, as before notes existed.
        w.append(b"more").await.unwrap();
        w.commit().await.unwrap();
        assert!(w.note().is_empty());
        let tail = blob.raw(BlobId::tail(object)).unwrap();
        assert_eq!(&tail[..5], b"SPAT\x01");
        drop(w);
        let w = reopen(&at_rest, object).await;
        assert!(w.note().is_empty());
        let done = w.finish().await.unwrap();
        assert_eq!(done.plaintext_len, 25);
        assert_eq!(
            read_all(&at_rest, object).await,
            b"twenty-one bytes heremore"
        );
    });
}
