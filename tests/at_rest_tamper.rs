//! Every tampering with stored ciphertext, tail records or wrapped keys is an error,
//! never wrong plaintext.

#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;

use sallyport::at_rest::{AtRest, AtRestError, FormatError, Reopened, SegmentSize};
use sallyport::blob::BlobId;
use sallyport::ids::OpaqueId;
use sallyport::keys::KeyError;
use sallyport::keys::kek_set::KekSet;
use sallyport::keys::record::DEK_NAMESPACE;
use sallyport::keys::static_keks::StaticKeks;

use support::at_rest::store;
use support::data::data;
use support::mem_blob::MemBlob;
use support::mem_state::FaultyState;

const S: usize = 16;
const H: usize = 108;
const STRIDE: usize = S + 28;
/// Three full segments and a final one of 5 bytes.
const LEN: usize = 3 * S + 5;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

async fn finished(at_rest: &AtRest, seed: u64) -> (OpaqueId, Vec<u8>) {
    let object = OpaqueId::random();
    let plain = data(LEN, seed);
    let mut w = at_rest.create(object).await.unwrap();
    w.append(&plain).await.unwrap();
    w.finish().await.unwrap();
    (object, plain)
}

/// Opens `object` and reads it whole; also reads every single segment separately and
/// checks that any read that succeeds returns the true plaintext.
async fn check_never_wrong(at_rest: &AtRest, object: OpaqueId, plain: &[u8]) -> bool {
    let Ok(reader) = at_rest.open_reader(object).await else {
        return false;
    };
    let mut all_ok = true;
    for start in (0..plain.len()).step_by(S) {
        let len = S.min(plain.len() - start);
        match reader.read_range(start as u64, len as u64).await {
            Ok(bytes) => assert_eq!(&bytes[..], &plain[start..start + len], "wrong plaintext"),
            Err(_) => all_ok = false,
        }
    }
    if reader.len() != plain.len() as u64 {
        // A length change must have been caught at open.
        panic!(
            "reader accepted a length of {} for {}",
            reader.len(),
            plain.len()
        );
    }
    match reader.read_range(0, plain.len() as u64).await {
        Ok(bytes) => assert_eq!(&bytes[..], plain, "wrong plaintext"),
        Err(_) => all_ok = false,
    }
    all_ok
}

#[test]
fn untampered_object_reads_back() {
    rt().block_on(async {
        let (at_rest, _, _) = store(S as u32);
        let (object, plain) = finished(&at_rest, 1).await;
        assert!(check_never_wrong(&at_rest, object, &plain).await);
    });
}

#[test]
fn every_flipped_bit_in_header_nonce_ciphertext_and_tag_is_an_error() {
    rt().block_on(async {
        let (at_rest, blob, _) = store(S as u32);
        let (object, plain) = finished(&at_rest, 2).await;
        let id = BlobId::data(object);
        let original = blob.raw(id).unwrap();
        assert_eq!(original.len(), H + 3 * STRIDE + 5 + 28);
        for bit in 0..original.len() * 8 {
            let mut bad = original.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            blob.set_raw(id, bad);
            assert!(
                !check_never_wrong(&at_rest, object, &plain).await,
                "flipped bit {bit} (byte {}) went unnoticed",
                bit / 8
            );
        }
        blob.set_raw(id, original);
        assert!(check_never_wrong(&at_rest, object, &plain).await);
    });
}

#[test]
fn swapped_dropped_and_spliced_segments_are_errors() {
    rt().block_on(async {
        let (at_rest, blob, _) = store(S as u32);
        let (object, plain) = finished(&at_rest, 3).await;
        let (other, _) = finished(&at_rest, 3).await; // same plaintext, other object
        let id = BlobId::data(object);
        let original = blob.raw(id).unwrap();
        let donor = blob.raw(BlobId::data(other)).unwrap();
        let seg = |b: &[u8], i: usize| b[H + i * STRIDE..H + (i + 1) * STRIDE].to_vec();

        // Two segments swapped.
        let mut swapped = original[..H].to_vec();
        for i in [1, 0, 2] {
            swapped.extend(seg(&original, i));
        }
        swapped.extend_from_slice(&original[H + 3 * STRIDE..]);
        blob.set_raw(id, swapped);
        assert!(!check_never_wrong(&at_rest, object, &plain).await, "swap");

        // A middle segment dropped.
        let mut dropped = original[..H + STRIDE].to_vec();
        dropped.extend_from_slice(&original[H + 2 * STRIDE..]);
        blob.set_raw(id, dropped);
        assert!(!check_never_wrong(&at_rest, object, &plain).await, "drop");

        // A segment spliced in from another object at the same index.
        let mut spliced = original.clone();
        spliced[H + STRIDE..H + 2 * STRIDE].copy_from_slice(&seg(&donor, 1));
        blob.set_raw(id, spliced);
        assert!(!check_never_wrong(&at_rest, object, &plain).await, "splice");

        // The other object's whole data blob under this object's name.
        blob.set_raw(id, donor.clone());
        assert!(matches!(
            at_rest.open_reader(object).await,
            Err(AtRestError::Format(FormatError::WrongObject))
        ));
    });
}

#[test]
fn truncated_or_extended_objects_are_errors() {
    rt().block_on(async {
        let (at_rest, blob, _) = store(S as u32);
        let (object, plain) = finished(&at_rest, 4).await;
        let id = BlobId::data(object);
        let original = blob.raw(id).unwrap();
        for cut in 1..=original.len() {
            blob.set_raw(id, original[..original.len() - cut].to_vec());
            assert!(
                !check_never_wrong(&at_rest, object, &plain).await,
                "truncated by {cut}"
            );
        }
        let final_seg = original[H + 3 * STRIDE..].to_vec();
        let last_full = original[H + 2 * STRIDE..H + 3 * STRIDE].to_vec();
        let extensions: Vec<Vec<u8>> = vec![
            vec![0],
            vec![0; 28],
            vec![0; STRIDE],
            final_seg.clone(),
            last_full.clone(),
        ];
        for (i, ext) in extensions.into_iter().enumerate() {
            let mut longer = original.clone();
            longer.extend(ext);
            blob.set_raw(id, longer);
            assert!(
                !check_never_wrong(&at_rest, object, &plain).await,
                "extension {i}"
            );
        }
        // The final segment replaced by a full one (an extra segment in its place).
        let mut no_final = original[..H + 3 * STRIDE].to_vec();
        no_final.extend(last_full);
        blob.set_raw(id, no_final);
        assert!(!check_never_wrong(&at_rest, object, &plain).await);
    });
}

#[test]
fn wrong_kek_and_foreign_wrapped_deks_are_errors() {
    rt().block_on(async {
        let blob = Arc::new(MemBlob::default());
        let state = Arc::new(FaultyState::default());
        let s = SegmentSize::new(S as u32).unwrap();
        let keys = Arc::new(StaticKeks::new(
            KekSet::generate("test".parse().unwrap(), 1).unwrap(),
        ));
        let at_rest = AtRest::new(blob.clone(), state.clone(), keys, s);
        let (a, plain) = finished(&at_rest, 5).await;
        let (b, _) = finished(&at_rest, 6).await;

        // Same KEK id and version, different material.
        let impostor = Arc::new(StaticKeks::new(
            KekSet::generate("test".parse().unwrap(), 1).unwrap(),
        ));
        let wrong = AtRest::new(blob.clone(), state.clone(), impostor, s);
        assert!(matches!(
            wrong.open_reader(a).await,
            Err(AtRestError::Key(KeyError::UnwrapFailed(_)))
        ));
        assert!(matches!(
            wrong.open_writer(a).await,
            Err(AtRestError::Key(KeyError::UnwrapFailed(_)))
        ));

        // B's wrapped DEK stored under A's id.
        let a_record = state.raw(DEK_NAMESPACE, &a.to_string()).await.unwrap();
        let b_record = state.raw(DEK_NAMESPACE, &b.to_string()).await.unwrap();
        state
            .tamper(DEK_NAMESPACE, &a.to_string(), b_record.clone())
            .await;
        assert!(matches!(
            at_rest.open_reader(a).await,
            Err(AtRestError::Key(KeyError::UnwrapFailed(_)))
        ));
        // ... and B's blob with it: still refused (the header names B).
        let a_blob = blob.raw(BlobId::data(a)).unwrap();
        blob.set_raw(BlobId::data(a), blob.raw(BlobId::data(b)).unwrap());
        assert!(at_rest.open_reader(a).await.is_err());

        // Every flipped bit of the wrapped-DEK record is refused.
        blob.set_raw(BlobId::data(a), a_blob);
        for bit in 0..a_record.len() * 8 {
            let mut bad = a_record.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            state.tamper(DEK_NAMESPACE, &a.to_string(), bad).await;
            assert!(at_rest.open_reader(a).await.is_err(), "record bit {bit}");
        }
        state.tamper(DEK_NAMESPACE, &a.to_string(), a_record).await;
        assert!(check_never_wrong(&at_rest, a, &plain).await);
    });
}

#[test]
fn tampered_or_foreign_tail_records_are_errors() {
    rt().block_on(async {
        let (at_rest, blob, _) = store(S as u32);
        let a = OpaqueId::random();
        let b = OpaqueId::random();
        for (object, seed) in [(a, 7), (b, 8)] {
            let mut w = at_rest.create(object).await.unwrap();
            w.append(&data(2 * S + 3, seed)).await.unwrap();
            w.commit().await.unwrap();
        }
        let tail = blob.raw(BlobId::tail(a)).unwrap();
        for bit in 0..tail.len() * 8 {
            let mut bad = tail.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            blob.set_raw(BlobId::tail(a), bad);
            assert!(at_rest.open_writer(a).await.is_err(), "tail bit {bit}");
        }
        blob.set_raw(BlobId::tail(a), blob.raw(BlobId::tail(b)).unwrap());
        assert!(at_rest.open_writer(a).await.is_err(), "foreign tail");
        blob.set_raw(BlobId::tail(a), tail);
        match at_rest.open_writer(a).await.unwrap() {
            Reopened::Open { writer, recovery } => {
                assert_eq!(writer.committed().plaintext_len, 2 * S as u64 + 3);
                assert_eq!(recovery.cut_bytes, 0);
                assert!(!recovery.tail_rebuilt);
            }
            Reopened::Finished(_) => panic!("not finished"),
        }
    });
}
