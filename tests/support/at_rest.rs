//! At-rest stores over the in-memory fakes, for the at-rest tests.

use std::sync::Arc;

use sallyport::at_rest::{AtRest, SegmentSize};
use sallyport::keys::KeyProvider;
use sallyport::keys::kek_set::KekSet;
use sallyport::keys::static_keks::StaticKeks;

use super::mem_blob::MemBlob;
use super::mem_state::FaultyState;

/// A provider with one fresh KEK version.
pub fn fresh_keys() -> Arc<dyn KeyProvider> {
    Arc::new(StaticKeks::new(
        KekSet::generate("test".parse().unwrap(), 1).unwrap(),
    ))
}

/// An at-rest store over fresh in-memory stores.
pub fn store(segment: u32) -> (AtRest, Arc<MemBlob>, Arc<FaultyState>) {
    let blob = Arc::new(MemBlob::default());
    let state = Arc::new(FaultyState::default());
    let at_rest = AtRest::new(
        blob.clone(),
        state.clone(),
        fresh_keys(),
        SegmentSize::new(segment).unwrap(),
    );
    (at_rest, blob, state)
}
