//! Test doubles shared by the at-rest tests: an in-memory blob store that can simulate
//! crashes and torn writes, and an in-memory state store (records only).
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

pub mod mem_blob;
pub mod mem_state;

use std::sync::Arc;

use sallyport::at_rest::{AtRest, SegmentSize};
use sallyport::keys::KeyProvider;
use sallyport::keys::kek_set::KekSet;
use sallyport::keys::static_keks::StaticKeks;

#[allow(unused_imports)]
pub use mem_blob::{CrashMode, MemBlob, Unsynced};
pub use mem_state::MemState;

/// A provider with one fresh KEK version.
pub fn fresh_keys() -> Arc<dyn KeyProvider> {
    Arc::new(StaticKeks::new(
        KekSet::generate("test".parse().unwrap(), 1).unwrap(),
    ))
}

/// An at-rest store over fresh in-memory stores.
pub fn store(segment: u32) -> (AtRest, Arc<MemBlob>, Arc<MemState>) {
    let blob = Arc::new(MemBlob::default());
    let state = Arc::new(MemState::default());
    let at_rest = AtRest::new(
        blob.clone(),
        state.clone(),
        fresh_keys(),
        SegmentSize::new(segment).unwrap(),
    );
    (at_rest, blob, state)
}

/// Deterministic pseudo-random bytes (xorshift), so failures are reproducible.
pub fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}
