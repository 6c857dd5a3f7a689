//! The quarantine workflow (`proto/batches-v1.md` §7): releasing a quarantined batch with
//! a reason (two different auditors when `batches.four_eyes` is on), and purging a batch:
//! its member uploads are crypto-shredded (data keys destroyed first, then blobs) while the
//! record, the documents, the report and the audit trail stay.

use super::events::{ApprovalRecorded, BatchPurged, BatchReleased};
use super::record::{BatchId, BatchRecord, BatchState, Decision};
use super::{BatchError, Batches, Who};
use crate::audit::AuditContext;
use crate::grant::now_unix;

/// Longest reason, in characters.
pub const MAX_REASON_CHARS: usize = 1000;

/// What a release request did.
#[derive(Debug, Clone)]
pub enum Release {
    /// The batch is released.
    Released(BatchRecord),
    /// The approval is recorded; a second, different auditor must approve too.
    AwaitingSecond(BatchRecord),
}

/// A reason as given: 1 to 1000 characters, not only white space, no control characters
/// other than line breaks and tabs.
pub fn check_reason(reason: Option<&str>) -> Result<String, BatchError> {
    let r = reason.ok_or(BatchError::ReasonRequired)?;
    let ok = !r.trim().is_empty()
        && r.chars().count() <= MAX_REASON_CHARS
        && !r
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\t'));
    if ok {
        Ok(r.to_owned())
    } else {
        Err(BatchError::ReasonRequired)
    }
}

impl Batches {
    /// `POST /v1/batches/{id}/release` (auditor or admin).
    pub async fn release(
        &self,
        who: &Who,
        id: BatchId,
        reason: &str,
    ) -> Result<Release, BatchError> {
        let now = now_unix();
        let four_eyes = self.settings.four_eyes;
        let retention = {
            let (record, _) = self.store.get(id).await?.ok_or(BatchError::NotFound)?;
            // Refusals first (no intent entry for a change that cannot happen); the
            // update below checks again.
            if record.state != BatchState::Quarantined {
                return Err(BatchError::NotQuarantined);
            }
            if record.approvals.iter().any(|a| a.by == who.name) {
                return Err(BatchError::AlreadyApproved);
            }
            self.audit_change(&who.audit, id, "release", record.state, Some(reason))
                .await?;
            self.retention_of(&record)
        };
        let retain_until = now.saturating_add(retention.as_secs());
        let approval = Decision {
            by: who.name.clone(),
            reason: reason.to_owned(),
            at: now,
        };
        let mut released = false;
        let record = self
            .update(id, |r| {
                if r.state != BatchState::Quarantined {
                    return Err(BatchError::NotQuarantined);
                }
                if r.approvals.iter().any(|a| a.by == who.name) {
                    return Err(BatchError::AlreadyApproved);
                }
                r.approvals.push(approval.clone());
                released = !four_eyes || r.approvals.len() >= 2;
                if released {
                    r.state = BatchState::Released;
                    r.released = Some(approval.clone());
                    r.retain_until = Some(retain_until);
                }
                Ok(true)
            })
            .await?;
        if released {
            self.auditor
                .emit(
                    &who.audit,
                    &BatchReleased {
                        batch: id.to_string(),
                        by: "auditor",
                        reason: Some(reason.to_owned()),
                        approvers: record.approvals.iter().map(|a| a.by.clone()).collect(),
                        retain_until,
                    },
                )
                .await?;
            Ok(Release::Released(record))
        } else {
            self.auditor
                .emit(
                    &who.audit,
                    &ApprovalRecorded {
                        batch: id.to_string(),
                        reason: reason.to_owned(),
                        approvals: record.approvals.len(),
                    },
                )
                .await?;
            Ok(Release::AwaitingSecond(record))
        }
    }

    /// `POST /v1/batches/{id}/purge` (auditor or admin): the batch becomes `purged` at once
    /// (so nothing of it can leave from then on, on any instance), the purge is audited,
    /// then every member upload is destroyed.
    pub async fn purge(
        &self,
        who: &Who,
        id: BatchId,
        reason: &str,
    ) -> Result<BatchRecord, BatchError> {
        self.purge_as(&who.name, &who.audit, id, reason, false)
            .await
    }

    /// Purges `id` for `by` (a principal, or `system` for the end of retention).
    pub(super) async fn purge_as(
        &self,
        by: &str,
        audit: &AuditContext,
        id: BatchId,
        reason: &str,
        retention_only: bool,
    ) -> Result<BatchRecord, BatchError> {
        let now = now_unix();
        {
            let (record, _) = self.store.get(id).await?.ok_or(BatchError::NotFound)?;
            if !purgeable(&record, retention_only) {
                return Err(BatchError::NotPurgeable);
            }
            self.audit_change(audit, id, "purge", record.state, Some(reason))
                .await?;
        }
        let mut from = BatchState::Purged;
        self.update(id, |r| {
            if !purgeable(r, retention_only) {
                return Err(BatchError::NotPurgeable);
            }
            from = r.state;
            r.state = BatchState::Purged;
            r.purged = Some(Decision {
                by: by.to_owned(),
                reason: reason.to_owned(),
                at: now,
            });
            r.shredded_at = None;
            Ok(true)
        })
        .await?;
        let destroyed = self.shred_members(id, audit).await?;
        self.auditor
            .emit(
                audit,
                &BatchPurged {
                    batch: id.to_string(),
                    reason: reason.to_owned(),
                    from: from.as_str(),
                    uploads_destroyed: destroyed,
                },
            )
            .await?;
        self.mark_shredded(id).await
    }

    /// Destroys every member upload of `id` that still exists; how many it destroyed.
    pub(super) async fn shred_members(
        &self,
        id: BatchId,
        audit: &AuditContext,
    ) -> Result<u64, BatchError> {
        let mut destroyed = 0;
        for b in self.store.bindings(id).await? {
            if self.uploads.shred(b.upload, audit, "batch").await? {
                destroyed += 1;
            }
        }
        Ok(destroyed)
    }

    /// Records that every member of a purged or expired batch is gone.
    pub(super) async fn mark_shredded(&self, id: BatchId) -> Result<BatchRecord, BatchError> {
        let now = now_unix();
        self.update(id, |r| {
            if r.shredded_at.is_some() {
                return Ok(false);
            }
            r.shredded_at = Some(now);
            Ok(true)
        })
        .await
    }
}

/// Whether `r` may be purged: by an auditor when quarantined, released or expired; at the
/// end of retention (`retention_only`) when released.
fn purgeable(r: &BatchRecord, retention_only: bool) -> bool {
    if retention_only {
        r.state == BatchState::Released
    } else {
        matches!(
            r.state,
            BatchState::Quarantined | BatchState::Released | BatchState::Expired
        )
    }
}
