//! `AtRest::put`: a small object written whole in one step (sealed upload metadata, batch
//! documents). It must be the same object that `create`, `append` and `finish` make —
//! the same plaintext read back, the same digest, finished for `open_writer` — at every
//! size around the segment boundaries; it reuses an orphan left under its id, refuses an
//! id that has a key, and deletes like any object.

#![allow(clippy::unwrap_used)]

mod support;

use sallyport::at_rest::{AtRestError, Reopened};
use sallyport::blob::{BlobId, BlobStore};
use sallyport::ids::OpaqueId;
use sha2::{Digest, Sha256};

use support::at_rest::store;
use support::data::data;

const S: usize = 16;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

#[test]
fn a_put_object_is_the_object_create_append_finish_makes() {
    rt().block_on(async {
        // Around the segment boundaries, and (4 KiB segments) past one 4 MiB batch.
        let cases = [
            (S, vec![0, 1, S - 1, S, S + 1, 3 * S, 5 * S + 3]),
            (4096, vec![(4 << 20) + 2 * 4096 + 5]),
        ];
        for (segment, lens) in cases {
            let (at_rest, blob, _state) = store(segment as u32);
            for len in lens {
                let plain = data(len, len as u64);
                let put = OpaqueId::random();
                let finished = at_rest.put(put, &plain).await.unwrap();
                assert_eq!(finished.plaintext_len, len as u64, "len {len}");
                assert_eq!(finished.sha256, <[u8; 32]>::from(Sha256::digest(&plain)));

                let streamed = OpaqueId::random();
                let mut w = at_rest.create(streamed).await.unwrap();
                w.append(&plain).await.unwrap();
                assert_eq!(w.finish().await.unwrap(), finished, "len {len}");

                for object in [put, streamed] {
                    let reader = at_rest.open_reader(object).await.unwrap();
                    assert_eq!(reader.len(), len as u64);
                    let got = reader.read_range(0, len as u64).await.unwrap();
                    assert_eq!(&got[..], &plain[..], "len {len}");
                    match at_rest.open_writer(object).await.unwrap() {
                        Reopened::Finished(f) => assert_eq!(f, finished, "len {len}"),
                        Reopened::Open { .. } => panic!("a put object reopens open (len {len})"),
                    }
                }
                // Same layout: the data blobs are the same length (different keys and nonces).
                assert_eq!(
                    blob.len(BlobId::data(put)).await.unwrap(),
                    blob.len(BlobId::data(streamed)).await.unwrap(),
                    "len {len}"
                );
            }
        }
    });
}

#[test]
fn a_put_reuses_an_orphan_and_refuses_a_taken_id() {
    rt().block_on(async {
        let (at_rest, blob, _state) = store(S as u32);
        // Blobs with no key: what a crash before the key's commit leaves.
        let orphan = OpaqueId::random();
        blob.create_with(&[
            (BlobId::data(orphan), b"stale ciphertext"),
            (BlobId::tail(orphan), b"stale tail"),
        ])
        .await
        .unwrap();
        let plain = data(2 * S + 5, 7);
        at_rest.put(orphan, &plain).await.unwrap();
        let reader = at_rest.open_reader(orphan).await.unwrap();
        let got = reader.read_range(0, plain.len() as u64).await.unwrap();
        assert_eq!(&got[..], &plain[..]);

        // An id that has a key is taken: refused, and the object is unchanged.
        assert!(matches!(
            at_rest.put(orphan, b"other").await,
            Err(AtRestError::AlreadyExists)
        ));
        let reader = at_rest.open_reader(orphan).await.unwrap();
        assert_eq!(reader.len(), plain.len() as u64);

        // Deleted like any object: no blob stays.
        let deleted = at_rest.delete(orphan).await.unwrap();
        assert!(deleted.key && deleted.data && deleted.tail, "{deleted:?}");
        assert!(blob.list().await.unwrap().is_empty());
    });
}
