//! Grants: the server-side records that signed links are backed by, their revocation, and
//! download metering.
//!
//! A signed link only proves that the gateway issued its claims; the grant it names
//! ([`GrantRecord`], namespace `grant`) decides whether those claims are still honoured:
//! whether it was revoked, which artifacts it covers, under which file name, and how much
//! may still be downloaded ([`meter`]). Every download reads the grant record from the
//! state store — nothing about a grant is cached — so a revocation takes effect on the
//! next request on every instance sharing the store.
//!
//! Grants are listed in three indexes — by artifact, by partner, by batch — which is how
//! bulk revocation finds them: it pages through the index and revokes each record with a
//! compare-and-swap (a concurrent change makes it re-read and retry that record).
//!
//! Records carry a TTL: they disappear `retention` after their expiry (a link is refused
//! as expired long before), so the store does not grow with dead grants.
//!
//! Not here: signing links ([`crate::signed_link`]), HTTP, and the decision to serve (the
//! download handler combines link, grant, artifact and meter). Format: `proto/grants-v1.md`.

use std::sync::Arc;
use std::time::Duration;

pub mod events;
pub mod meter;
pub mod record;

pub use meter::{Budget, Meter, Reservation, Reserve, Usage};
pub use record::{
    BatchRef, GrantRecord, GrantRecordError, Limits, PartnerName, PartnerNameError, Reason,
    ReasonError, Revocation, Scope,
};

use crate::signed_link::{ArtifactId, GrantId};
use crate::state::{CasOutcome, Expect, IndexEntry, Namespace, PutOptions, StateError, StateStore};

/// The grant records' namespace.
pub const GRANT_NAMESPACE: Namespace = Namespace::new("grant");
/// Index of grants by covered artifact.
pub const INDEX_ARTIFACT: &str = "artifact";
/// Index of grants by partner.
pub const INDEX_PARTNER: &str = "partner";
/// Index of grants by batch.
pub const INDEX_BATCH: &str = "batch";
/// Most records one listing page returns.
pub const MAX_PAGE: usize = 1000;

/// A grant-store failure.
#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    /// The state store failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// A stored record does not decode.
    #[error("grant {id}: {source}")]
    Corrupt {
        /// The grant.
        id: String,
        /// Why.
        source: GrantRecordError,
    },
    /// A grant with this id exists already (a random-id collision, or a retried create).
    #[error("grant {0} already exists")]
    AlreadyExists(GrantId),
    /// A record kept changing under a compare-and-swap loop.
    #[error("grant {0} kept changing; giving up")]
    Contended(GrantId),
}

/// Which grants a listing or a bulk revocation is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrantFilter {
    /// Every grant covering this artifact.
    Artifact(ArtifactId),
    /// Every grant issued to this partner.
    Partner(PartnerName),
    /// Every grant issued for this batch.
    Batch(BatchRef),
}

impl GrantFilter {
    fn index_entry(&self) -> IndexEntry {
        match self {
            GrantFilter::Artifact(a) => IndexEntry::new(INDEX_ARTIFACT, a.to_string()),
            GrantFilter::Partner(p) => IndexEntry::new(INDEX_PARTNER, p.as_str()),
            GrantFilter::Batch(b) => IndexEntry::new(INDEX_BATCH, b.as_str()),
        }
    }

    /// `artifact`, `partner` or `batch` (for audit records).
    pub fn kind(&self) -> &'static str {
        match self {
            GrantFilter::Artifact(_) => "artifact",
            GrantFilter::Partner(_) => "partner",
            GrantFilter::Batch(_) => "batch",
        }
    }

    /// The id or name filtered on.
    pub fn value(&self) -> String {
        match self {
            GrantFilter::Artifact(a) => a.to_string(),
            GrantFilter::Partner(p) => p.to_string(),
            GrantFilter::Batch(b) => b.to_string(),
        }
    }
}

/// What revoking one grant found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RevokeOutcome {
    /// Revoked now; the record as stored.
    Revoked(GrantRecord),
    /// It was revoked before; unchanged.
    AlreadyRevoked(GrantRecord),
    /// No such grant (never issued, or gone after its retention).
    NotFound,
}

/// What a bulk revocation did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BulkRevoked {
    /// Grants revoked by this call.
    pub revoked: Vec<GrantId>,
    /// Grants that were revoked already.
    pub already_revoked: u64,
}

/// A page of a listing.
#[derive(Debug, Clone)]
pub struct GrantPage {
    /// The grants, ascending by id.
    pub grants: Vec<GrantRecord>,
    /// Pass as `after` for the next page; `None` at the end.
    pub next: Option<GrantId>,
}

/// The grant records over the state store.
#[derive(Debug, Clone)]
pub struct Grants {
    state: Arc<dyn StateStore>,
    retention: Duration,
}

impl Grants {
    /// Grants in `state`, kept `retention` past their expiry.
    pub fn new(state: Arc<dyn StateStore>, retention: Duration) -> Self {
        Self { state, retention }
    }

    /// Stores a new grant (compare-and-swap on absence).
    pub async fn create(&self, record: &GrantRecord, now: u64) -> Result<(), GrantError> {
        match self
            .state
            .put(
                GRANT_NAMESPACE,
                &record.id.to_string(),
                &record.encode(),
                Expect::Absent,
                self.options(record, now),
            )
            .await?
        {
            CasOutcome::Applied(_) => Ok(()),
            CasOutcome::Conflict(_) => Err(GrantError::AlreadyExists(record.id)),
        }
    }

    /// Deletes a grant that was never handed out (its `link.issued` entry could not be
    /// written), so no unrecorded grant stays behind.
    pub async fn forget(&self, id: GrantId) -> Result<(), GrantError> {
        self.state
            .delete(GRANT_NAMESPACE, &id.to_string(), Expect::Any)
            .await?;
        Ok(())
    }

    /// The grant and its record version, if it exists.
    pub async fn get(&self, id: GrantId) -> Result<Option<(GrantRecord, u64)>, GrantError> {
        let key = id.to_string();
        let Some(stored) = self.state.get(GRANT_NAMESPACE, &key).await? else {
            return Ok(None);
        };
        let record = GrantRecord::decode(&stored.value)
            .map_err(|source| GrantError::Corrupt { id: key, source })?;
        if record.id != id {
            return Err(GrantError::Corrupt {
                id: id.to_string(),
                source: GrantRecordError::Invalid("stored under another id"),
            });
        }
        Ok(Some((record, stored.version)))
    }

    /// Grants listed under `filter`, ascending by id, after `after`, at most `limit`
    /// (capped at [`MAX_PAGE`]). Grants that vanish between listing and reading (their
    /// retention ended) are skipped.
    pub async fn list(
        &self,
        filter: &GrantFilter,
        after: Option<GrantId>,
        limit: usize,
    ) -> Result<GrantPage, GrantError> {
        let limit = limit.clamp(1, MAX_PAGE);
        let after = after.map(|a| a.to_string());
        let ids = self
            .state
            .list_index(
                GRANT_NAMESPACE,
                &filter.index_entry(),
                after.as_deref(),
                limit,
            )
            .await?;
        let mut grants = Vec::with_capacity(ids.len());
        for id in &ids {
            let Ok(id) = id.parse::<GrantId>() else {
                return Err(GrantError::Corrupt {
                    id: id.clone(),
                    source: GrantRecordError::Invalid("index lists a malformed id"),
                });
            };
            if let Some((record, _)) = self.get(id).await? {
                grants.push(record);
            }
        }
        let next = if ids.len() == limit {
            ids.last().and_then(|l| l.parse().ok())
        } else {
            None
        };
        Ok(GrantPage { grants, next })
    }

    /// Revokes one grant. Idempotent: a revoked grant keeps its first revocation.
    pub async fn revoke(
        &self,
        id: GrantId,
        by: &str,
        reason: &Reason,
        now: u64,
    ) -> Result<RevokeOutcome, GrantError> {
        // Bounded: each retry means another writer changed the record in between.
        for _ in 0..16 {
            let Some((mut record, version)) = self.get(id).await? else {
                return Ok(RevokeOutcome::NotFound);
            };
            if record.is_revoked() {
                return Ok(RevokeOutcome::AlreadyRevoked(record));
            }
            record.revoked = Some(Revocation {
                at: now,
                by: by.to_owned(),
                reason: reason.clone(),
            });
            match self
                .state
                .put(
                    GRANT_NAMESPACE,
                    &id.to_string(),
                    &record.encode(),
                    Expect::Version(version),
                    self.options(&record, now),
                )
                .await?
            {
                CasOutcome::Applied(_) => return Ok(RevokeOutcome::Revoked(record)),
                CasOutcome::Conflict(None) => return Ok(RevokeOutcome::NotFound),
                CasOutcome::Conflict(Some(_)) => continue,
            }
        }
        Err(GrantError::Contended(id))
    }

    /// Revokes every grant listed under `filter`, page by page.
    pub async fn revoke_all(
        &self,
        filter: &GrantFilter,
        by: &str,
        reason: &Reason,
        now: u64,
    ) -> Result<BulkRevoked, GrantError> {
        let mut out = BulkRevoked::default();
        let entry = filter.index_entry();
        let mut after: Option<String> = None;
        loop {
            let ids = self
                .state
                .list_index(GRANT_NAMESPACE, &entry, after.as_deref(), MAX_PAGE)
                .await?;
            for id in &ids {
                let grant: GrantId = id.parse().map_err(|_| GrantError::Corrupt {
                    id: id.clone(),
                    source: GrantRecordError::Invalid("index lists a malformed id"),
                })?;
                match self.revoke(grant, by, reason, now).await? {
                    RevokeOutcome::Revoked(_) => out.revoked.push(grant),
                    RevokeOutcome::AlreadyRevoked(_) => out.already_revoked += 1,
                    RevokeOutcome::NotFound => {}
                }
            }
            if ids.len() < MAX_PAGE {
                return Ok(out);
            }
            after = ids.last().cloned();
        }
    }

    fn options(&self, record: &GrantRecord, now: u64) -> PutOptions {
        let mut index: Vec<IndexEntry> = record
            .scope
            .artifacts
            .iter()
            .map(|a| IndexEntry::new(INDEX_ARTIFACT, a.to_string()))
            .collect();
        index.push(IndexEntry::new(INDEX_PARTNER, record.partner.as_str()));
        if let Some(b) = &record.scope.batch {
            index.push(IndexEntry::new(INDEX_BATCH, b.as_str()));
        }
        let live = record.expires.saturating_sub(now);
        PutOptions {
            ttl: Some(Duration::from_secs(live).saturating_add(self.retention)),
            index,
        }
    }
}

/// The current time in Unix seconds.
pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::state::embedded::EmbeddedStateStore;

    /// A live grant for `partner`, in `batch`.
    fn grant(partner: &str, batch: Option<&str>, now: u64) -> GrantRecord {
        let mut g = record::tests::sample();
        g.id = GrantId::random();
        g.partner = partner.parse().unwrap();
        g.scope.batch = batch.map(|b| b.parse().unwrap());
        g.not_before = now - 10;
        g.expires = now + 3600;
        g.created_at = now - 10;
        g
    }

    #[tokio::test]
    async fn revoking_a_batch_revokes_its_grants_only() {
        let dir = tempfile::tempdir().unwrap();
        let state: Arc<dyn StateStore> =
            Arc::new(EmbeddedStateStore::open(&dir.path().join("state.redb")).unwrap());
        let grants = Grants::new(state, Duration::from_secs(60));
        let now = now_unix();
        let q1 = [
            grant("payer-a", Some("2026-q1"), now),
            grant("payer-b", Some("2026-q1"), now),
        ];
        let others = [
            grant("payer-a", Some("2026-q2"), now),
            grant("payer-a", None, now),
        ];
        for g in q1.iter().chain(&others) {
            grants.create(g, now).await.unwrap();
        }
        let batch = GrantFilter::Batch("2026-q1".parse().unwrap());
        let listed = grants.list(&batch, None, 10).await.unwrap();
        let mut want: Vec<GrantId> = q1.iter().map(|g| g.id).collect();
        want.sort_by_key(ToString::to_string);
        assert_eq!(listed.grants.iter().map(|g| g.id).collect::<Vec<_>>(), want);

        let reason: Reason = "export withdrawn".parse().unwrap();
        let done = grants
            .revoke_all(&batch, "ops", &reason, now)
            .await
            .unwrap();
        let mut revoked = done.revoked.clone();
        revoked.sort_by_key(ToString::to_string);
        assert_eq!((revoked, done.already_revoked), (want, 0));
        for g in &q1 {
            let (stored, _) = grants.get(g.id).await.unwrap().unwrap();
            let revocation = stored.revoked.unwrap();
            assert_eq!(
                (revocation.by.as_str(), revocation.reason),
                ("ops", reason.clone())
            );
        }
        for g in &others {
            assert!(!grants.get(g.id).await.unwrap().unwrap().0.is_revoked());
        }
        // Again: nothing new, the first revocation stays.
        let again = grants
            .revoke_all(&batch, "other", &reason, now + 5)
            .await
            .unwrap();
        assert_eq!((again.revoked.len(), again.already_revoked), (0, 2));
        assert_eq!(
            grants
                .get(q1[0].id)
                .await
                .unwrap()
                .unwrap()
                .0
                .revoked
                .unwrap()
                .by,
            "ops"
        );
    }
}
