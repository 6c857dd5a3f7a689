//! Registering a completed tus upload as an artifact: the check and its types now belong
//! to the upload module ([`crate::upload::source`]; the engine's entry point is
//! `Uploads::completed_source`).
//!
//! Transitional: this file only forwards, so the artifacts handler keeps compiling until it
//! calls `Uploads::completed_source` itself; then delete it. It names the upload module's
//! leaf `upload::source`, never the engine, so `artifact` does not come to depend on the
//! upload engine (which depends on the artifact registry).

use crate::at_rest::AtRest;
use crate::state::StateStore;
use crate::tus::record::UploadId;

pub use crate::upload::source::{UploadSource, UploadSourceError};

/// Checks that `upload` is complete and its object finished; returns what the artifact
/// record needs. Prefer `Uploads::completed_source`.
pub async fn completed_upload(
    state: &dyn StateStore,
    at_rest: &AtRest,
    upload: UploadId,
) -> Result<UploadSource, UploadSourceError> {
    crate::upload::source::completed(state, at_rest, upload).await
}
