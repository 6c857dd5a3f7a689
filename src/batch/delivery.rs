//! What another service may learn of a batch it delivers (the FHIR Bulk
//! flow): its state and verification progress, and — only once it is released —
//! each member's upload, resource type, record count, size and SHA-256 as the manifest
//! lists them, with the purpose of use from its provenance record, and the provenance
//! record itself (for an outbound batch built from it). Asked through the
//! service (`docs/architecture.md`: records belong to the module that writes them).

use super::record::{BatchId, BatchState};
use super::{BatchError, Batches};
use crate::manifest::Provenance;
use crate::tus::record::UploadId;

/// A batch as a delivering service sees it.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The batch.
    pub id: BatchId,
    /// Its state.
    pub state: BatchState,
    /// Who opened it (its uploads' owner).
    pub owner: String,
    /// Verification progress `(bytes checked, bytes total)` while sealing.
    pub progress: Option<(u64, u64)>,
    /// When it was released (Unix seconds): the export's transaction time.
    pub released_at: Option<u64>,
    /// SHA-256 of its manifest.
    pub manifest_sha256: String,
    /// SHA-256 of its provenance record.
    pub provenance_sha256: Option<String>,
    /// The purpose-of-use code of its provenance record.
    pub purpose_of_use: Option<String>,
    /// The NDJSON members, in manifest order (empty unless released).
    pub members: Vec<DeliveredMember>,
    /// How many members its manifest lists, NDJSON or not.
    pub listed: u64,
}

/// One member of a released batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveredMember {
    /// The upload that holds its bytes.
    pub upload: UploadId,
    /// The file name the manifest gives it.
    pub name: String,
    /// Its FHIR resource type (NDJSON members only are delivered).
    pub resource_type: String,
    /// Its record count.
    pub records: u64,
    /// Its size.
    pub size: u64,
    /// Its SHA-256, hex.
    pub sha256: String,
}

impl Batches {
    /// The exact bytes of a **released** batch's provenance record (`None`: no such
    /// batch, not released, or no provenance record).
    pub async fn released_provenance(
        &self,
        id: BatchId,
    ) -> Result<Option<bytes::Bytes>, BatchError> {
        let Some((record, _)) = self.store.get(id).await? else {
            return Ok(None);
        };
        match (&record.provenance, record.state) {
            (Some(doc), BatchState::Released) => Ok(Some(self.store.read_document(doc).await?)),
            _ => Ok(None),
        }
    }

    /// The batch for delivery, or `None` when there is no such batch.
    pub async fn delivery(&self, id: BatchId) -> Result<Option<Delivery>, BatchError> {
        let Some((record, _)) = self.store.get(id).await? else {
            return Ok(None);
        };
        let purpose_of_use = match &record.provenance {
            Some(doc) => {
                let bytes = self.store.read_document(doc).await?;
                Provenance::parse(&bytes, &self.settings.limits)
                    .ok()
                    .map(|p| p.purpose_of_use().code().to_owned())
            }
            None => None,
        };
        let mut members = Vec::new();
        if record.state == BatchState::Released {
            let manifest = self.store.manifest(&record).await?;
            let bindings = self.store.bindings(id).await?;
            for m in manifest.members() {
                let name = m.name().as_str();
                let mut bound = bindings.iter().filter(|b| b.member == name);
                let (Some(b), None) = (bound.next(), bound.next()) else {
                    return Err(BatchError::Store(super::store::StoreError::Corrupt(
                        "a released member is not bound to exactly one upload",
                    )));
                };
                let Some(nd) = m.ndjson() else { continue };
                members.push(DeliveredMember {
                    upload: b.upload,
                    name: name.to_owned(),
                    resource_type: nd.resource_type().as_str().to_owned(),
                    records: nd.records(),
                    size: m.size(),
                    sha256: m.sha256().to_hex(),
                });
            }
        }
        Ok(Some(Delivery {
            id,
            state: record.state,
            owner: record.owner.clone(),
            progress: record
                .progress
                .as_ref()
                .map(|p| (p.bytes_checked, p.bytes_total)),
            released_at: record
                .released
                .as_ref()
                .map(|d| d.at)
                .or(record.verdict.as_ref().map(|v| v.at)),
            manifest_sha256: record.manifest.sha256.clone(),
            provenance_sha256: record.provenance.as_ref().map(|d| d.sha256.clone()),
            purpose_of_use,
            members,
            listed: record.listed,
        }))
    }
}
