//! `Upload-Metadata`, sealed: the canonical header value is its own small encrypted
//! at-rest object, and the upload record holds only that object's id
//! ([`SealedMetadata`]).
//!
//! Metadata (file names are PHI) shares the object key hierarchy this way: it is rewrapped
//! on KEK rotation and shredded with the upload (`lifecycle.rs` deletes it).
//!
//! Not here: parsing and limits (the `tus` core's `metadata`).

use crate::ids::OpaqueId;
use crate::tus::metadata::Metadata;
use crate::tus::record::{SealedMetadata, UploadRecord};

use super::{UploadError, Uploads};

// === impl Uploads: metadata ===

impl Uploads {
    /// Seals `metadata` as a new encrypted object; `None` when the request had none.
    pub(super) async fn seal_metadata(
        &self,
        metadata: Option<&Metadata>,
    ) -> Result<Option<SealedMetadata>, UploadError> {
        let Some(metadata) = metadata else {
            return Ok(None);
        };
        // Metadata (file names are PHI) is its own encrypted object, so it shares the
        // object key hierarchy: rewrapped on KEK rotation, shredded with the upload.
        let object = OpaqueId::random();
        self.at_rest
            .put(object, metadata.to_header_value().as_bytes())
            .await?;
        Ok(Some(SealedMetadata(object.as_bytes().to_vec())))
    }

    /// The upload's `Upload-Metadata` value, decrypted.
    pub async fn unseal_metadata(
        &self,
        record: &UploadRecord,
    ) -> Result<Option<String>, UploadError> {
        let Some(object) = metadata_object(record) else {
            return Ok(None);
        };
        let reader = self.at_rest.open_reader(object).await?;
        let bytes = reader.read_range(0, reader.len()).await?;
        Ok(String::from_utf8(bytes.to_vec()).ok())
    }
}

/// The at-rest object holding `record`'s sealed metadata, if it has any.
pub(super) fn metadata_object(record: &UploadRecord) -> Option<OpaqueId> {
    sealed_object(record.metadata.as_ref()?)
}

/// The at-rest object a sealed metadata value names.
pub(super) fn sealed_object(sealed: &SealedMetadata) -> Option<OpaqueId> {
    let bytes: [u8; 16] = sealed.0.as_slice().try_into().ok()?;
    Some(OpaqueId::from_bytes(bytes))
}
