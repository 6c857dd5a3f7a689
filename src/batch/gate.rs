//! The gate every other flow asks before anything of a batch member leaves: registration
//! as an artifact, a link, a download, an export. Only a `released` batch's members pass.
//! The batch's state is read from the shared state store on every call (never cached), so
//! a purge is seen by the next request on every instance.

use super::record::{BatchId, BatchState};
use super::store::{BatchStore, StoreError};
use crate::tus::record::UploadId;

/// Why a member may not leave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotReleased {
    /// Its batch.
    pub batch: BatchId,
    /// The batch's state (`None`: the record is gone).
    pub state: Option<BatchState>,
}

/// The gate (cheap to clone).
#[derive(Debug, Clone)]
pub struct BatchGate {
    store: BatchStore,
}

impl BatchGate {
    /// The gate over `store`.
    pub fn new(store: BatchStore) -> Self {
        Self { store }
    }

    /// The batch `upload` is a member of, if any, when that batch is not released.
    /// `Ok(Ok(Some(batch)))`: a member of a released batch; `Ok(Ok(None))`: not a member.
    pub async fn upload(
        &self,
        upload: UploadId,
    ) -> Result<Result<Option<BatchId>, NotReleased>, StoreError> {
        let Some(binding) = self.store.binding(upload).await? else {
            return Ok(Ok(None));
        };
        Ok(self
            .batch(binding.batch)
            .await?
            .map(|()| Some(binding.batch)))
    }

    /// Whether `batch` is released.
    pub async fn batch(&self, batch: BatchId) -> Result<Result<(), NotReleased>, StoreError> {
        let state = self.store.get(batch).await?.map(|(r, _)| r.state);
        Ok(match state {
            Some(BatchState::Released) => Ok(()),
            state => Err(NotReleased { batch, state }),
        })
    }
}
