//! The rest of an upload's life: `HEAD`, `DELETE`, the expiry
//! sweeper, destroying an upload's data and keys, and the completed-upload check artifact
//! registration asks for ([`Uploads::completed_source`]).
//!
//! Every destruction is audited first (`upload.terminated`, `upload.expired`,
//! `upload.retired`, `upload.shredded`, each under the upload's lease): when its entry
//! cannot be written nothing is destroyed.
//!
//! Destroying deletes the object first (the at-rest layer drops its wrapped data key, after
//! which the ciphertext is unrecoverable), then the sealed metadata object, the ledger
//! entries, a final upload's copy of its parts' ledgers, the pending record and the record.
//! `DELETE` refuses a completed upload an artifact was registered from, since the artifact
//! shares its object ([`UploadError::InUse`]); the artifact registry answers that question
//! (`Artifacts::registered_from`), so this module does not read artifact records.

use crate::artifact::ArtifactError;
use crate::audit::AuditContext;
use crate::tus::dates::Timestamp;
use crate::tus::record::{UploadId, UploadRecord};

use super::events::{UploadExpired, UploadRetired, UploadShredded, UploadTerminated};
use super::lease::{Acquired, LeaseGuard};
use super::metadata::metadata_object;
use super::source::{self, UploadSource, UploadSourceError};
use super::store::StoreError;
use super::{Caller, UploadError, Uploads, with_expiry};

/// An upload held (its lease) while an artifact is recorded for it; release it after.
#[derive(Debug)]
pub struct HeldUpload(LeaseGuard);

impl HeldUpload {
    /// Releases the upload.
    pub async fn release(self) {
        self.0.release().await;
    }
}

// === impl Uploads: HEAD, ledger, DELETE, expiry ===

impl Uploads {
    /// `HEAD {base}{id}`: the record after finishing any interrupted commit.
    pub async fn head(
        &self,
        who: &Caller,
        id: UploadId,
    ) -> Result<(UploadRecord, Option<String>), UploadError> {
        let now = Timestamp::now();
        let (mut record, _) = self.load_for(id, who, now, "head").await?;
        if self.store.pending(id).await?.is_some() {
            // A commit is under way or was interrupted; if nobody holds the lease, finish
            // it, so the offset we report is the durable one.
            if let Ok(guard) = self.lease(id).await {
                let result = self.reconcile(id, who).await;
                guard.release().await;
                record = result?.0;
            }
        }
        let metadata = self.unseal_metadata(&record).await?;
        Ok((record, metadata))
    }

    /// `DELETE {base}{id}`: destroys the upload's data and keys.
    pub async fn terminate(&self, who: &Caller, id: UploadId) -> Result<(), UploadError> {
        let now = Timestamp::now();
        let (record, _) = self.load_for(id, who, now, "delete").await?;
        let guard = self.lease(id).await.map_err(|e| with_expiry(e, &record))?;
        // Checked under the lease: an artifact registration holds it too from its check of
        // the upload to its record, so the two cannot both succeed.
        let result = async {
            if record.is_complete() && self.registered_as_artifact(id).await? {
                return Err(UploadError::InUse);
            }
            if self.held_by_batch(id).await? {
                return Err(crate::upload::MembershipError::Sealed.into());
            }
            // Audited before anything is destroyed: when the entry cannot be written the
            // upload stays whole (503, the client may retry); a destroy that fails after
            // it is retried by the client's next DELETE, under a second entry.
            let event = UploadTerminated {
                upload: id.to_string(),
                offset: record.offset,
                complete: record.is_complete(),
            };
            self.auditor.emit(&who.audit, &event).await?;
            self.destroy(&record).await?;
            // The owner's own termination gives its file back (an admin's does not: the
            // owner did not choose to free it).
            if record.owner == who.name {
                self.give_file(who).await;
            }
            Ok(())
        }
        .await;
        guard.release().await;
        result
    }

    /// Destroys an upload for the batch service (a purged or expired batch's member),
    /// whatever its state and whoever owns it: the data key first, so the ciphertext is
    /// unrecoverable even if deleting the blobs fails. Audited (`upload.shredded`, with
    /// `cause`) before anything is destroyed. `false` when the upload was already gone.
    pub async fn shred(
        &self,
        id: UploadId,
        audit: &AuditContext,
        cause: &'static str,
    ) -> Result<bool, UploadError> {
        let Some((record, _)) = self.store.get(id).await? else {
            return Ok(false);
        };
        let guard = self.lease(id).await?;
        let event = UploadShredded {
            upload: id.to_string(),
            offset: record.offset,
            complete: record.is_complete(),
            cause,
        };
        let result = match self.auditor.emit(audit, &event).await {
            Ok(_) => self.destroy(&record).await,
            Err(e) => Err(e.into()),
        };
        guard.release().await;
        result.map(|()| true)
    }

    /// Whether an artifact was registered from this upload (it shares the upload's object,
    /// so shredding the upload would shred the artifact).
    async fn registered_as_artifact(&self, id: UploadId) -> Result<bool, UploadError> {
        self.artifacts
            .registered_from(id)
            .await
            .map_err(|e| match e {
                ArtifactError::State(e) => UploadError::from(e),
                // The check only lists an index; a record that does not decode cannot
                // come back from it, but if one did the stored state is unusable.
                other => UploadError::Store(StoreError::Corrupt(other.to_string())),
            })
    }

    /// Deletes the upload's object, sealed metadata, ledger, pending record and record
    /// (under its lease, or before anyone learnt of it).
    pub(super) async fn destroy(&self, record: &UploadRecord) -> Result<(), UploadError> {
        let id = record.id;
        // Keys first: once the wrapped DEKs are gone the ciphertext is unrecoverable.
        self.at_rest.delete(id.opaque()).await?;
        if let Some(meta) = metadata_object(record) {
            self.at_rest.delete(meta).await?;
        }
        self.store.delete_chunks(id).await?;
        self.store.delete_part_ledgers(id).await?;
        self.store.clear_pending(id).await?;
        // The record as stored now (a deferred-length upload may have grown since `record`
        // was read); whoever deletes it gives its quota bytes back, exactly once.
        if let Some((fresh, version)) = self.store.get(id).await? {
            if self.store.delete_at(id, version).await? {
                self.release_destroyed(&fresh).await;
            } else {
                self.store.delete(id).await?;
            }
        }
        Ok(())
    }

    /// Checks that `id` is a complete upload whose object is finished, and returns what an
    /// artifact registered from it needs (see [`UploadSource`]). No access check: the
    /// caller (artifact registration, a publisher) is not the upload's owner.
    pub async fn completed_source(&self, id: UploadId) -> Result<UploadSource, UploadSourceError> {
        source::completed(&*self.state, &self.at_rest, id).await
    }

    /// [`Uploads::completed_source`] with the upload's lease held until the returned
    /// guard is released: the caller records the artifact before any DELETE of the upload
    /// can look for one (a DELETE checks for an artifact under the same lease).
    pub async fn completed_source_held(
        &self,
        id: UploadId,
    ) -> Result<(UploadSource, HeldUpload), UploadSourceError> {
        let guard = match LeaseGuard::acquire(
            self.state.clone(),
            format!("upload/{id}"),
            self.settings.lease_ttl,
        )
        .await?
        {
            Acquired::Held(g) => g,
            Acquired::Busy(remaining) => {
                return Err(UploadSourceError::Busy {
                    retry_after_secs: remaining.as_secs().max(1),
                });
            }
        };
        // A completion whose audit entry could not be written is recovered first: no
        // artifact is made of an upload the trail does not show complete.
        let recovered = self.recover_entries(id).await;
        if let Err(e) = recovered {
            guard.release().await;
            return Err(e);
        }
        match source::completed(&*self.state, &self.at_rest, id).await {
            Ok(s) => Ok((s, HeldUpload(guard))),
            Err(e) => {
                guard.release().await;
                Err(e)
            }
        }
    }

    /// For readers outside the engine (a batch seal): when a pending record says a commit
    /// was interrupted or its audit entries are missing, takes the upload's lease and
    /// finishes it, writing the entries as the gateway. A held lease means a request is
    /// finishing it now: nothing to do. Audit and store failures are returned.
    pub async fn recover_pending(&self, id: UploadId) -> Result<(), UploadError> {
        if self.store.pending(id).await?.is_none() {
            return Ok(());
        }
        let guard = match self.lease(id).await {
            Ok(g) => g,
            Err(UploadError::Tus {
                error: crate::tus::TusError::Locked { .. },
                ..
            }) => return Ok(()),
            Err(e) => return Err(e),
        };
        let result = self.reconcile(id, &system_caller()).await;
        guard.release().await;
        match result {
            Ok(_)
            | Err(UploadError::Tus {
                error: crate::tus::TusError::NotFound,
                ..
            }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Under the lease: finishes an interrupted commit and writes its missing audit
    /// entries (as the gateway), when a pending record says there is one.
    async fn recover_entries(&self, id: UploadId) -> Result<(), UploadSourceError> {
        let pending = self.store.pending(id).await.map_err(source_state_error)?;
        if pending.is_none() {
            return Ok(());
        }
        match self.reconcile(id, &system_caller()).await {
            Ok(_) => Ok(()),
            Err(UploadError::Tus {
                error: crate::tus::TusError::NotFound,
                ..
            }) => Err(UploadSourceError::NotFound),
            Err(e) => Err(UploadSourceError::State(
                crate::state::StateError::Unavailable(e.to_string()),
            )),
        }
    }

    // === expiry ===

    /// Destroys a complete upload past its retention that no artifact and no batch holds
    /// (audited first); whether it did.
    async fn retire_if_due(
        &self,
        record: &UploadRecord,
        now: Timestamp,
    ) -> Result<bool, UploadError> {
        let (Some(completed), Some(length)) = (record.completed_at, record.length) else {
            return Ok(false);
        };
        let due = completed
            .checked_add(self.settings.completed_retention)
            .is_some_and(|t| t.unix() <= now.unix());
        if !due || !record.is_complete() || self.held_by_batch(record.id).await.unwrap_or(true) {
            return Ok(false);
        }
        // A read first, so that registered uploads cost no lease (a write) every sweep.
        if self.registered_as_artifact(record.id).await? {
            return Ok(false);
        }
        let Ok(guard) = self.lease(record.id).await else {
            return Ok(false);
        };
        // Checked again under the lease: registration holds it from its check to its record.
        let result = async {
            if self.registered_as_artifact(record.id).await? {
                return Ok(false);
            }
            let event = UploadRetired {
                upload: record.id.to_string(),
                length,
                owner: record.owner.clone(),
                completed_at: completed.to_rfc3339(),
            };
            self.auditor.emit(&AuditContext::system(), &event).await?;
            self.destroy(record).await?;
            Ok(true)
        }
        .await;
        guard.release().await;
        result
    }

    /// Deletes every expired unfinished upload whose lease is free, and every complete one
    /// past `uploads.completed_retention` that no artifact and no batch holds; returns how
    /// many.
    pub async fn sweep_expired(&self) -> Result<usize, UploadError> {
        self.sweep_expired_at(Timestamp::now()).await
    }

    /// [`Uploads::sweep_expired`] as if the clock read `now` (tests reach a deadline
    /// without waiting for it).
    pub async fn sweep_expired_at(&self, now: Timestamp) -> Result<usize, UploadError> {
        let mut after: Option<String> = None;
        let mut swept = 0;
        loop {
            let ids = self.store.list(after.as_deref(), 500).await?;
            let Some(last) = ids.last().cloned() else {
                return Ok(swept);
            };
            for text in &ids {
                let Ok(id) = text.parse::<UploadId>() else {
                    continue;
                };
                let Some((record, _)) = self.store.get(id).await? else {
                    continue;
                };
                if self.retire_if_due(&record, now).await? {
                    swept += 1;
                    continue;
                }
                if !record.is_expired(now) {
                    continue;
                }
                // A sealed batch's member is evidence for its verdict: it stays until the
                // batch is purged.
                if self.held_by_batch(id).await.unwrap_or(true) {
                    continue;
                }
                let Ok(guard) = self.lease(id).await else {
                    continue;
                };
                // Audited before the action, like every other change: if the entry cannot
                // be written nothing is destroyed (the next sweep tries again); a destroy
                // that then fails is retried by the next sweep too, under a second entry.
                let event = UploadExpired {
                    upload: id.to_string(),
                    offset: record.offset,
                    owner: record.owner.clone(),
                };
                let result = match self.auditor.emit(&AuditContext::system(), &event).await {
                    Ok(_) => self.destroy(&record).await,
                    Err(e) => Err(e.into()),
                };
                guard.release().await;
                result?;
                swept += 1;
            }
            after = Some(last);
        }
    }
}

/// The gateway itself as the caller of a recovery (its entries' actor is `system`).
fn system_caller() -> Caller {
    Caller {
        bounds: None,
        name: String::new(),
        admin: true,
        audit: AuditContext::system(),
    }
}

fn source_state_error(e: StoreError) -> UploadSourceError {
    match e {
        StoreError::State(e) => UploadSourceError::State(e),
        other => UploadSourceError::State(crate::state::StateError::Corrupt(other.to_string())),
    }
}
