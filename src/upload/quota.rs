//! The per-principal storage quota (`uploads.max_bytes_per_principal`): how many bytes
//! of uploads one client may hold in the gateway at once.
//!
//! An upload holds `length` bytes of its owner's quota from its creation (its declared
//! `Upload-Length`; a final upload its parts' total, since it is a copy), or, while its
//! length is deferred, the bytes received so far, reserved chunk by chunk before each is
//! committed ([`held`]). The sum lives in one state-store counter per owner, changed
//! only by a bounded atomic add ([`StateStore::counter_add`](crate::state::StateStore)
//! with a limit: a redb write transaction on the embedded store, a Lua script on Redis),
//! so concurrent creations on any number of instances cannot pass the quota together: the
//! add that would pass it changes nothing and is refused with
//! [`UploadError::QuotaExceeded`] (507).
//!
//! The bytes are given back when the upload is destroyed (DELETE, expiry, retirement, a
//! batch purge) — once, by whoever deleted its record — or when an artifact is registered
//! from it: the object is then the artifact's, which the uploader can no longer delete,
//! so it stops counting against the uploader (a marker in [`CLAIMED`] makes that
//! release happen once, and tells `destroy` not to release again).
//!
//! Failure direction: the counter and the upload record are separate writes. A crash
//! between a reservation and the record it was for leaves the bytes counted (the client
//! has less quota, never more) — except a chunk's reservation on the embedded store,
//! which is written deferred and made durable by the chunk's pending record: a crash
//! before that record is written loses the reservation too; a release that fails is logged and leaves them counted
//! too. A release that would take the counter below zero (uploads created before the
//! quota existed) is brought back to zero.
//!
//! Not here: the open-upload count (`uploads.max_open_per_principal`, 429
//! `upload.too_many_open`), which the creation slot in `upload.rs` makes atomic.

use crate::state::{CounterOutcome, Expect, Namespace, PutOptions};
use crate::tus::record::{UploadId, UploadRecord};

use super::{UploadError, Uploads};

/// Bytes held per owner (a counter per principal name).
pub const QUOTA: Namespace = Namespace::new("upload_quota");
/// Uploads whose bytes were released because an artifact now holds their object.
pub const CLAIMED: Namespace = Namespace::new("upload_claimed");

/// The bytes `record` holds of its owner's quota.
pub fn held(record: &UploadRecord) -> u64 {
    record.length.unwrap_or(record.offset)
}

fn as_delta(bytes: u64) -> i64 {
    // Lengths are bounded by `uploads.max_size` (at most 2^62 by config validation), so
    // this never saturates in practice; saturating keeps a bogus value from wrapping.
    i64::try_from(bytes).unwrap_or(i64::MAX)
}

// === impl Uploads: quota ===

impl Uploads {
    /// The byte quota that applies to `who`: its bounds' (an invitation's), else
    /// `uploads.max_bytes_per_principal`.
    pub(super) fn byte_limit(&self, who: &super::Caller) -> u64 {
        who.bounds
            .as_ref()
            .map_or(self.settings.max_bytes_per_principal, |b| b.max_bytes)
    }

    /// Bytes `owner`'s uploads hold now.
    pub async fn bytes_held(&self, owner: &str) -> Result<u64, UploadError> {
        Ok(u64::try_from(self.state.counter_get(QUOTA, owner).await?).unwrap_or(0))
    }

    /// Reserves `bytes` more of `owner`'s quota of `limit` bytes, or refuses with
    /// [`UploadError::QuotaExceeded`] changing nothing.
    ///
    /// Written deferred ([`StateStore::counter_add_deferred`](crate::state::StateStore)):
    /// every caller writes durably next, before anything relies on the reservation — a
    /// creation its record, a chunk its record (or its pending record, when that is
    /// written durably) — and that commit makes the reservation durable too. A crash before it loses the reservation together with
    /// what it was for.
    pub(super) async fn reserve_bytes(
        &self,
        owner: &str,
        bytes: u64,
        limit: u64,
    ) -> Result<(), UploadError> {
        if bytes == 0 {
            return Ok(());
        }
        let (delta, limit_delta) = (as_delta(bytes), Some(as_delta(limit)));
        let outcome = self
            .state
            .counter_add_deferred(QUOTA, owner, delta, limit_delta)
            .await?;
        match outcome {
            CounterOutcome::Applied(_) => Ok(()),
            CounterOutcome::LimitReached(used) => Err(UploadError::QuotaExceeded {
                limit,
                used: u64::try_from(used).unwrap_or(0),
                requested: bytes,
            }),
        }
    }

    /// Refuses early, before a body is read, a growth of `bytes` that would not fit
    /// `owner`'s quota now. Advisory only (another request may reserve meanwhile): the
    /// binding, atomic check is [`Uploads::reserve_bytes`] before the commit. It spares the
    /// disk a deferred-length body that would be discarded anyway.
    pub(super) async fn precheck_bytes(
        &self,
        owner: &str,
        bytes: u64,
        limit: u64,
    ) -> Result<(), UploadError> {
        if bytes == 0 {
            return Ok(());
        }
        let used = u64::try_from(self.state.counter_get(QUOTA, owner).await?).unwrap_or(0);
        if used.saturating_add(bytes) > limit {
            return Err(UploadError::QuotaExceeded {
                limit,
                used,
                requested: bytes,
            });
        }
        Ok(())
    }

    /// Gives `bytes` of `owner`'s quota back. Never fails: a release that cannot be
    /// written leaves the bytes counted (the client has less quota, never more).
    pub(super) async fn release_bytes(&self, owner: &str, bytes: u64) {
        if bytes == 0 {
            return;
        }
        match self
            .state
            .counter_add(QUOTA, owner, -as_delta(bytes), None)
            .await
        {
            // Below zero: bytes of uploads created before the quota was counted. Add the
            // shortfall back (an add, so a reservation made meanwhile still counts).
            Ok(CounterOutcome::Applied(v)) if v < 0 => {
                if let Err(e) = self.state.counter_add(QUOTA, owner, -v, None).await {
                    tracing::warn!(error = %e, "could not correct an upload quota counter");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "could not release upload quota bytes"),
        }
    }

    /// Releases what a destroyed upload held, unless an artifact registration released
    /// it already. Call once its record is deleted, by the caller that deleted it.
    pub(super) async fn release_destroyed(&self, record: &UploadRecord) {
        let id = record.id.to_string();
        match self.state.get(CLAIMED, &id).await {
            Ok(None) => self.release_bytes(&record.owner, held(record)).await,
            Ok(Some(_)) => {
                if let Err(e) = self.state.delete(CLAIMED, &id, Expect::Any).await {
                    tracing::warn!(error = %e, "could not delete an upload's claimed marker");
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not read an upload's claimed marker"),
        }
    }

    /// An artifact was registered from the complete upload `id` (under the upload's
    /// lease): its bytes leave the owner's quota, once however many artifacts name it.
    pub async fn claimed_by_artifact(&self, id: UploadId) -> Result<(), UploadError> {
        let Some((record, _)) = self.store.get(id).await? else {
            return Ok(());
        };
        let marker = self
            .state
            .put(
                CLAIMED,
                &id.to_string(),
                b"1",
                Expect::Absent,
                PutOptions::default(),
            )
            .await?;
        if matches!(marker, crate::state::CasOutcome::Applied(_)) {
            self.release_bytes(&record.owner, held(&record)).await;
        }
        Ok(())
    }
}
