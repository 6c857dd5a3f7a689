//! The membership port's batch side: admitting a tus upload as a member of an open batch
//! (`proto/batches-v1.md` §3), and telling the upload engine which uploads a sealed batch
//! holds.
//!
//! Admission and sealing cannot miss each other: admission writes the binding *then*
//! re-reads the batch, and sealing moves the batch out of `open` *then* lists the
//! bindings. If admission saw `open` on its re-read, the seal's move came later and its
//! list sees the binding; if it did not, admission removes the binding and refuses (a
//! seal that listed it meanwhile finds no such upload and ignores it).

use std::sync::Arc;

use super::events::MemberAdded;
use super::record::{BatchId, BatchRecord, BatchState, MemberBinding};
use super::store::{BatchStore, StoreError};
use crate::audit::Auditor;
use crate::grant::now_unix;
use crate::state::StateError;
use crate::tus::record::UploadId;
use crate::upload::{Caller, MemberClaim, Membership, MembershipError};

/// The batch service's side of [`Membership`].
#[derive(Debug, Clone)]
pub struct Admission {
    store: BatchStore,
    auditor: Auditor,
}

impl Admission {
    /// The port over `store`.
    pub fn new(store: BatchStore, auditor: Auditor) -> Arc<Self> {
        Arc::new(Self { store, auditor })
    }

    /// The batch `claim` names, if `principal` may add to it.
    async fn batch_for(
        &self,
        principal: &str,
        admin: bool,
        claim: &MemberClaim,
    ) -> Result<BatchRecord, MembershipError> {
        let id: BatchId = claim
            .batch
            .parse()
            .map_err(|_| MembershipError::BatchNotFound)?;
        let (record, _) = self
            .store
            .get(id)
            .await
            .map_err(store_error)?
            .ok_or(MembershipError::BatchNotFound)?;
        if record.owner != principal && !admin {
            return Err(MembershipError::BatchNotFound);
        }
        Ok(record)
    }
}

/// A store failure as the port reports it.
fn store_error(e: StoreError) -> MembershipError {
    match e {
        StoreError::State(e) => MembershipError::State(e),
        // A record or manifest that does not decode: the batch cannot take members.
        other => MembershipError::State(StateError::Corrupt(other.to_string())),
    }
}

#[async_trait::async_trait]
impl Membership for Admission {
    async fn bound(
        &self,
        who: &Caller,
        claim: &MemberClaim,
    ) -> Result<Vec<UploadId>, MembershipError> {
        let record = self.batch_for(&who.name, who.admin, claim).await?;
        // A sealed batch answers `not_open` whatever its members.
        if record.state != BatchState::Open {
            return Err(MembershipError::NotOpen);
        }
        self.store
            .bound(record.id, &claim.member)
            .await
            .map_err(store_error)
    }

    async fn admit(
        &self,
        who: &Caller,
        claim: &MemberClaim,
        upload: UploadId,
        length: Option<u64>,
        dead: &[UploadId],
    ) -> Result<(), MembershipError> {
        let record = self.batch_for(&who.name, who.admin, claim).await?;
        if record.state != BatchState::Open {
            return Err(MembershipError::NotOpen);
        }
        let manifest = self.store.manifest(&record).await.map_err(store_error)?;
        let (index, member) = manifest
            .member(&claim.member)
            .ok_or(MembershipError::NotListed)?;
        if length.is_some_and(|l| l != member.size()) {
            return Err(MembershipError::SizeDiffers);
        }
        let binding = MemberBinding {
            batch: record.id,
            member: member.name().as_str().to_owned(),
            upload,
            at: now_unix(),
        };
        self.store.bind(&binding).await.map_err(store_error)?;
        let still_open = matches!(
            self.store.get(record.id).await.map_err(store_error)?,
            Some((r, _)) if r.state == BatchState::Open
        );
        if !still_open {
            self.store.unbind(upload).await.map_err(store_error)?;
            return Err(MembershipError::NotOpen);
        }
        for gone in dead {
            self.store.unbind(*gone).await.map_err(store_error)?;
        }
        let event = MemberAdded {
            batch: record.id.to_string(),
            member_index: index,
            upload: upload.to_string(),
        };
        if let Err(e) = self.auditor.emit(&who.audit, &event).await {
            // Undone: the upload is not created (admission comes first), so its binding
            // must not stay either.
            self.store.unbind(upload).await.map_err(store_error)?;
            return Err(e.into());
        }
        Ok(())
    }

    async fn held(&self, upload: UploadId) -> Result<bool, MembershipError> {
        let Some(binding) = self.store.binding(upload).await.map_err(store_error)? else {
            return Ok(false);
        };
        let state = self
            .store
            .get(binding.batch)
            .await
            .map_err(store_error)?
            .map(|(r, _)| r.state);
        Ok(matches!(
            state,
            Some(BatchState::Sealing | BatchState::Released | BatchState::Quarantined)
        ))
    }
}
