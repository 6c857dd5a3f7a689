//! What a completed upload contributes to an artifact, and the check that it may.
//!
//! An upload can become an artifact when it is complete and carries its whole-file
//! SHA-256, and is not a partial upload of a concatenation (only the final upload is a
//! file). The artifact points at the same at-rest object — nothing is copied or
//! re-encrypted — and the object is opened once here to check that it is finished and has
//! the recorded length.
//!
//! This file is a leaf: the artifact side may name [`UploadSource`] and
//! [`UploadSourceError`] without depending on the upload engine. The engine's entry point
//! is `Uploads::completed_source`.
//!
//! Not here: keeping the upload engine from deleting an object an artifact points at
//! (`Uploads::terminate` asks the artifact registry; see `proto/grants-v1.md` §Artifacts).

use crate::at_rest::{AtRest, AtRestError};
use crate::ids::OpaqueId;
use crate::state::{StateError, StateStore};
use crate::tus::record::{ConcatKind, RecordError, UploadId, UploadRecord};

use super::store::UPLOADS;

/// Why an upload cannot be registered as an artifact.
#[derive(Debug, thiserror::Error)]
pub enum UploadSourceError {
    /// No such upload (never created, terminated, or expired).
    #[error("no such upload")]
    NotFound,
    /// Still receiving bytes.
    #[error("the upload is not complete")]
    Incomplete,
    /// A partial upload of a concatenation.
    #[error("a partial upload of a concatenation is not a file; register the final upload")]
    Partial,
    /// The stored record does not decode.
    #[error("the upload record is corrupt: {0}")]
    Corrupt(RecordError),
    /// The at-rest object does not match the record.
    #[error("the upload's stored object does not match its record")]
    ObjectMismatch,
    /// Another request holds the upload (a PATCH, a DELETE): retry.
    #[error("the upload is busy")]
    Busy {
        /// Seconds until the holder's lease runs out at the latest.
        retry_after_secs: u64,
    },
    /// The state store failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// The at-rest object could not be opened.
    #[error(transparent)]
    AtRest(AtRestError),
}

/// What a completed upload contributes to an artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadSource {
    /// The at-rest object (the upload id).
    pub object: OpaqueId,
    /// Plaintext length.
    pub length: u64,
    /// Whole-file SHA-256.
    pub sha256: [u8; 32],
    /// The client that uploaded it (the artifact's owner, for publisher scopes).
    pub owner: String,
}

/// Checks that `upload` is complete and its object finished; returns what the artifact
/// record needs. `Uploads::completed_source` is the engine's door to this.
pub(crate) async fn completed(
    state: &dyn StateStore,
    at_rest: &AtRest,
    upload: UploadId,
) -> Result<UploadSource, UploadSourceError> {
    let stored = state
        .get(UPLOADS, &upload.to_string())
        .await?
        .ok_or(UploadSourceError::NotFound)?;
    let record = UploadRecord::decode(&stored.value).map_err(UploadSourceError::Corrupt)?;
    if record.id != upload {
        return Err(UploadSourceError::Corrupt(RecordError::Invalid(
            "stored under another id",
        )));
    }
    if matches!(record.concat, ConcatKind::Partial) {
        return Err(UploadSourceError::Partial);
    }
    let (Some(sha256), Some(length), true) = (record.sha256, record.length, record.is_complete())
    else {
        return Err(UploadSourceError::Incomplete);
    };
    let object = upload.opaque();
    let reader = at_rest.open_reader(object).await.map_err(|e| match e {
        AtRestError::NotFound | AtRestError::NotFinished => UploadSourceError::ObjectMismatch,
        other => UploadSourceError::AtRest(other),
    })?;
    if reader.len() != length {
        return Err(UploadSourceError::ObjectMismatch);
    }
    Ok(UploadSource {
        object,
        length,
        sha256: sha256.0,
        owner: record.owner,
    })
}
