//! The batch sweeper (every `batches.sweep_interval`, on every instance): resumes
//! verification of `sealing` batches whose runner stopped (a restart, a crash; the lease
//! keeps it to one instance), expires `open` batches past `open_ttl` (their member uploads
//! are destroyed), purges `released` batches past their retention, and finishes a purge or
//! expiry whose member destruction was interrupted.

use super::events::{BatchExpired, RetentionExpired};
use super::record::{BatchId, BatchState};
use super::store::INDEX_STATE;
use super::{BatchError, Batches};
use crate::audit::AuditContext;
use crate::grant::now_unix;
use crate::state::IndexEntry;

/// What one sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Swept {
    /// Seals resumed (or found running).
    pub resumed: usize,
    /// Open batches expired.
    pub expired: usize,
    /// Released batches purged at the end of their retention.
    pub retired: usize,
}

impl Batches {
    /// One sweep at the current time (see the module docs).
    pub async fn sweep(&self) -> Result<Swept, BatchError> {
        self.sweep_at(now_unix()).await
    }

    /// One sweep as if the clock read `now` (Unix seconds): deadlines at or before `now`
    /// are acted on. [`Batches::sweep`] passes the real clock; tests pass a later one to
    /// reach an expiry or a retention end without waiting for it.
    pub async fn sweep_at(&self, now: u64) -> Result<Swept, BatchError> {
        let mut swept = Swept::default();
        let system = AuditContext::system();
        for id in self.ids_in(BatchState::Sealing).await? {
            self.start_runner(id);
            swept.resumed += 1;
        }
        for id in self.ids_in(BatchState::Open).await? {
            let Some((r, _)) = self.store.get(id).await? else {
                continue;
            };
            if r.expires_at.is_some_and(|t| t <= now) {
                self.expire(id, &system).await?;
                swept.expired += 1;
            }
        }
        for id in self.ids_in(BatchState::Released).await? {
            let Some((r, _)) = self.store.get(id).await? else {
                continue;
            };
            let Some(until) = r.retain_until.filter(|t| *t <= now) else {
                continue;
            };
            self.auditor
                .emit(
                    &system,
                    &RetentionExpired {
                        batch: id.to_string(),
                        retain_until: until,
                    },
                )
                .await?;
            match self
                .purge_as("system", &system, id, "retention period ended", true)
                .await
            {
                Ok(_) => swept.retired += 1,
                // Released no more (an auditor purged it meanwhile).
                Err(BatchError::NotPurgeable) => {}
                Err(e) => return Err(e),
            }
        }
        for state in [BatchState::Purged, BatchState::Expired] {
            for id in self.ids_in(state).await? {
                if let Some((r, _)) = self.store.get(id).await?
                    && r.shredded_at.is_none()
                {
                    self.shred_members(id, &system).await?;
                    self.mark_shredded(id).await?;
                }
            }
        }
        Ok(swept)
    }

    /// Expires an open batch: no more members; its uploads are destroyed.
    async fn expire(&self, id: BatchId, system: &AuditContext) -> Result<(), BatchError> {
        // Audited first: if the intent cannot be written the batch stays open and the
        // next sweep tries again.
        self.audit_change(system, id, "expire", BatchState::Open, None)
            .await?;
        let mut moved = false;
        self.update(id, |r| {
            if r.state != BatchState::Open {
                return Ok(false);
            }
            moved = true;
            r.state = BatchState::Expired;
            r.shredded_at = None;
            Ok(true)
        })
        .await?;
        if !moved {
            return Ok(());
        }
        let destroyed = self.shred_members(id, system).await?;
        self.auditor
            .emit(
                system,
                &BatchExpired {
                    batch: id.to_string(),
                    uploads_destroyed: destroyed,
                },
            )
            .await?;
        self.mark_shredded(id).await?;
        Ok(())
    }

    async fn ids_in(&self, state: BatchState) -> Result<Vec<BatchId>, BatchError> {
        let entry = IndexEntry::new(INDEX_STATE, state.as_str());
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let ids = self
                .store
                .list(Some(entry.clone()), after.as_deref(), 500)
                .await?;
            let Some(last) = ids.last().cloned() else {
                return Ok(out);
            };
            out.extend(ids.iter().filter_map(|s| s.parse::<BatchId>().ok()));
            after = Some(last);
        }
    }
}
