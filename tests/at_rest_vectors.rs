//! The golden vector's stored bytes, loaded into stores, read back through the public API.
//! (`src/at_rest/vectors.rs` rebuilds the same file byte for byte from its inputs.)

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;

use sallyport::at_rest::{AtRest, SegmentSize};
use sallyport::blob::BlobId;
use sallyport::ids::OpaqueId;
use sallyport::keys::kek_set::{KekMaterial, KekSet, KekVersion};
use sallyport::keys::record::DEK_NAMESPACE;
use sallyport::keys::static_keks::StaticKeks;
use sallyport::state::{Expect, PutOptions, StateStore};
use serde_json::Value;
use zeroize::Zeroizing;

use sallyport::state::memory::MemoryStore;
use support::mem_blob::MemBlob;

#[test]
fn golden_vector_reads_back_through_the_public_api() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/proto/vectors/at-rest-v1.json"
    ))
    .unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    let h = |k: &str| hex::decode(v[k].as_str().unwrap()).unwrap();
    let object: OpaqueId = v["object_id"].as_str().unwrap().parse().unwrap();
    let kek: [u8; 32] = hex::decode(v["kek"]["key_hex"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let mut versions = BTreeMap::new();
    versions.insert(
        1,
        KekVersion {
            created_unix: 0,
            material: Some(KekMaterial::from_bytes(Zeroizing::new(kek))),
        },
    );
    let keys = Arc::new(StaticKeks::new(
        KekSet::new("vector".parse().unwrap(), 1, versions).unwrap(),
    ));
    let blob = Arc::new(MemBlob::default());
    let state = Arc::new(MemoryStore::new());
    blob.set_raw(BlobId::data(object), h("data_blob_hex"));
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(async {
            state
                .put(
                    DEK_NAMESPACE,
                    &object.to_string(),
                    &h("dek_record_hex"),
                    Expect::Absent,
                    PutOptions::default(),
                )
                .await
                .unwrap();
            let at_rest = AtRest::new(blob, state, keys, SegmentSize::new(65536).unwrap());
            let reader = at_rest.open_reader(object).await.unwrap();
            assert_eq!(reader.segment_size(), 16);
            let plain = h("plaintext_hex");
            assert_eq!(reader.len(), plain.len() as u64);
            assert_eq!(&reader.read_range(0, 40).await.unwrap()[..], &plain[..]);
            assert_eq!(
                &reader.read_range(13, 20).await.unwrap()[..],
                &plain[13..33]
            );
        });
}
