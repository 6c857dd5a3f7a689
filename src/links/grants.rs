//! The grant flows of the links API: issue a link, list and show grants with their usage,
//! revoke one grant or all grants of an artifact, partner or batch. A publisher's scope
//! (`publish_for`, `publish_from_owners`) bounds every one of these: a link is issued, and
//! a grant shown or revoked, only when its partner is in `publish_for` and the owner of
//! every artifact it covers is in `publish_from_owners`. A listing shows only the grants in
//! scope; a listing or bulk revocation naming a partner or artifact outside it is refused.
//! A refused issue or revocation is audited as `publish.out_of_scope` (reads are not).
//!
//! Audit before acting: an issue stores the grant, writes `link.issued`, and only then
//! signs the link; when the entry cannot be written the grant is forgotten again and the
//! publisher gets 503 (no link, no unrecorded grant). A revocation writes the intent
//! `link.revoke_requested` first (nothing is revoked when it cannot be written), then
//! revokes, then writes the outcome `link.revoked`; a failed outcome entry answers 503 but
//! the revocation stands (it is idempotent: the retry records `already_revoked`).

use serde_json::json;

use super::api::ListQuery;
use super::events::PublishOutOfScope;
use super::{GrantView, IssueRequest, Issued, LinkError, Links, Publisher, Revoked};
use crate::artifact::ArtifactRecord;
use crate::auth::PublisherScope;
use crate::grant::events::{LinkIssued, LinksRevoked, RevokeRequested};
use crate::grant::{BatchRef, Limits, PartnerName};
use crate::grant::{Budget, GrantFilter, GrantRecord, Reason, RevokeOutcome, Scope, now_unix};
use crate::signed_link::{
    ArtifactId, Bindings, GrantId, LinkClaims, MethodSet, ResponseFileName, UnixTime,
};

/// What a grant is, besides its artifacts and batch.
struct GrantParts {
    partner: PartnerName,
    methods: MethodSet,
    not_before: u64,
    expires: u64,
    bindings: Bindings,
    file_name: Option<ResponseFileName>,
    limits: Limits,
}

/// Most grant ids one `link.revoked` entry lists (the count is always exact).
const MAX_AUDITED_GRANTS: usize = 100;

// === impl Links: grants ===

impl Links {
    /// Refuses (and audits as `publish.out_of_scope`) a link for a partner outside `who`'s
    /// `publish_for`, or to an artifact whose owner is outside its `publish_from_owners`.
    async fn check_scope(
        &self,
        who: &Publisher,
        req: &IssueRequest,
        artifact: &ArtifactRecord,
    ) -> Result<(), LinkError> {
        let partner = req.partner.to_string();
        let (limit, refusal) = if !who.scope.allows_partner(&partner) {
            ("partner", LinkError::PartnerOutOfScope)
        } else if !who.scope.allows_owner(artifact.owner.as_deref()) {
            ("owner", LinkError::OwnerOutOfScope)
        } else {
            return Ok(());
        };
        let event = PublishOutOfScope {
            attempt: "link.issue",
            limit,
            partner: Some(partner),
            owner: artifact.owner.clone(),
            artifact: Some(artifact.id.to_string()),
            upload: None,
        };
        self.auditor.emit(&who.audit, &event).await?;
        Err(refusal)
    }

    /// Issues a link: stores the grant, then signs the claims with the current key, and
    /// records `link.issued` before the link is handed out.
    pub async fn issue(&self, who: &Publisher, req: IssueRequest) -> Result<Issued, LinkError> {
        let now = now_unix();
        let ttl = req.ttl.unwrap_or(self.settings.default_ttl);
        if ttl.as_secs() == 0 || ttl > self.settings.max_ttl {
            return Err(LinkError::Ttl);
        }
        if req.limits.max_downloads == Some(0) || req.limits.max_bytes == Some(0) {
            return Err(LinkError::ZeroLimit);
        }
        let not_before = req.not_before.unwrap_or(now);
        if not_before > now.saturating_add(self.settings.max_ttl.as_secs()) {
            return Err(LinkError::NotBefore);
        }
        let expires = not_before
            .max(now)
            .checked_add(ttl.as_secs())
            .ok_or(LinkError::NotBefore)?;
        let Some(artifact) = self.artifact(req.artifact).await? else {
            return Err(LinkError::ArtifactNotFound);
        };
        self.check_scope(who, &req, &artifact).await?;
        if let Some(batch) = artifact.member_of {
            self.batch_gate
                .batch(batch)
                .await?
                .map_err(|_| LinkError::BatchNotReleased)?;
        }
        let record = self
            .record_grant(
                who,
                vec![req.artifact],
                None,
                GrantParts {
                    partner: req.partner,
                    methods: req.methods,
                    not_before,
                    expires,
                    bindings: req.bindings,
                    file_name: req.file_name,
                    limits: req.limits,
                },
                now,
            )
            .await?;
        // Signed only once the grant is on record.
        let target = self.sign_for(&record, req.artifact)?;
        Ok(Issued {
            grant: record,
            target,
        })
    }

    /// Issues one grant covering `artifacts` (all members of `batch`, already in the
    /// caller's scope: the FHIR Bulk flow checked it when the export was published) for
    /// `ttl` from now, GET and HEAD, and signs one link per artifact, in order. Each
    /// artifact passes the batch gate; `link.issued` is audited before any link exists.
    pub async fn issue_bundle(
        &self,
        who: &Publisher,
        partner: PartnerName,
        batch: Option<BatchRef>,
        artifacts: &[ArtifactId],
        ttl: std::time::Duration,
    ) -> Result<(GrantRecord, Vec<String>), LinkError> {
        let now = now_unix();
        if ttl.as_secs() == 0 || ttl > self.settings.max_ttl {
            return Err(LinkError::Ttl);
        }
        for id in artifacts {
            let artifact = self
                .artifact(*id)
                .await?
                .ok_or(LinkError::ArtifactNotFound)?;
            if let Some(batch) = artifact.member_of {
                self.batch_gate
                    .batch(batch)
                    .await?
                    .map_err(|_| LinkError::BatchNotReleased)?;
            }
        }
        let parts = GrantParts {
            partner,
            methods: MethodSet::GetHead,
            not_before: now,
            expires: now.saturating_add(ttl.as_secs()),
            bindings: Bindings::default(),
            file_name: None,
            limits: Limits::default(),
        };
        let record = self
            .record_grant(who, artifacts.to_vec(), batch, parts, now)
            .await?;
        let targets = artifacts
            .iter()
            .map(|a| self.sign_for(&record, *a))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((record, targets))
    }

    /// The signed link of the stored grant `id` for `artifact`, made again from the grant's
    /// record (the same link `issue_bundle` signed): for a caller that keeps the grant and
    /// not its links, such as the FHIR Bulk file endpoint with `requiresAccessToken`. An
    /// artifact outside the grant is `ArtifactNotFound`; whether the grant still admits a
    /// download (revoked, expired, metered) is the download path's to decide.
    pub async fn target_of(&self, id: GrantId, artifact: ArtifactId) -> Result<String, LinkError> {
        let (grant, _) = self.grants.get(id).await?.ok_or(LinkError::GrantNotFound)?;
        if !grant.scope.artifacts.contains(&artifact) {
            return Err(LinkError::ArtifactNotFound);
        }
        self.sign_for(&grant, artifact)
    }

    /// Stores a grant, then records `link.issued`; forgets the grant when the entry cannot
    /// be written.
    async fn record_grant(
        &self,
        who: &Publisher,
        artifacts: Vec<ArtifactId>,
        batch: Option<BatchRef>,
        p: GrantParts,
        now: u64,
    ) -> Result<GrantRecord, LinkError> {
        let record = GrantRecord {
            id: GrantId::random(),
            issuer: who.name.clone(),
            partner: p.partner,
            scope: Scope { artifacts, batch },
            methods: p.methods,
            not_before: p.not_before,
            expires: p.expires,
            bindings: p.bindings,
            file_name: p.file_name,
            limits: p.limits,
            key_id: self.keyring.current_key_id().clone(),
            created_at: now,
            revoked: None,
        };
        self.grants.create(&record, now).await?;
        let g = &record;
        let event = LinkIssued {
            grant: g.id.to_string(),
            partner: g.partner.to_string(),
            artifacts: g.scope.artifacts.iter().map(ToString::to_string).collect(),
            batch: g.scope.batch.as_ref().map(ToString::to_string),
            key_id: g.key_id.to_string(),
            methods: g.methods.as_str(),
            not_before: g.not_before,
            expires: g.expires,
            max_downloads: g.limits.max_downloads,
            max_bytes: g.limits.max_bytes,
            client_net: g.bindings.client_net.map(|n| n.to_string()),
            client_cert_bound: g.bindings.client_cert.is_some(),
            file_name_set: g.file_name.is_some(),
        };
        if let Err(e) = self.auditor.emit(&who.audit, &event).await {
            // Undo: the grant was never handed out.
            if let Err(undo) = self.grants.forget(record.id).await {
                tracing::error!(error = %undo, grant = %record.id, "could not forget an unaudited grant");
            }
            return Err(e.into());
        }
        Ok(record)
    }

    /// The link of `grant` for `artifact` (signed with the grant's claims).
    fn sign_for(&self, grant: &GrantRecord, artifact: ArtifactId) -> Result<String, LinkError> {
        let claims = LinkClaims::new(
            artifact,
            grant.id,
            grant.methods,
            UnixTime(grant.not_before),
            UnixTime(grant.expires),
            grant.bindings,
        )?;
        Ok(self.keyring.sign(&claims))
    }

    /// A page of the grants in `scope` with their usage, and the id to resume after. A
    /// filter naming a partner or artifact outside the scope is refused; grants out of
    /// scope are left out of the page (which may then hold fewer than `limit`; `next` still
    /// says where to resume).
    pub async fn list(
        &self,
        scope: &PublisherScope,
        query: &ListQuery,
    ) -> Result<(Vec<GrantView>, Option<GrantId>), LinkError> {
        if let Some(refusal) = self.filter_out_of_scope(scope, &query.filter).await? {
            return Err(refusal.error());
        }
        let page = self
            .grants
            .list(&query.filter, query.after, query.limit)
            .await?;
        let mut views = Vec::with_capacity(page.grants.len());
        for grant in page.grants {
            if self.grant_out_of_scope(scope, &grant).await?.is_none() {
                views.push(self.view(grant).await?);
            }
        }
        Ok((views, page.next))
    }

    /// One grant in `scope`, with its usage.
    pub async fn grant(&self, scope: &PublisherScope, id: GrantId) -> Result<GrantView, LinkError> {
        let (grant, _) = self.grants.get(id).await?.ok_or(LinkError::GrantNotFound)?;
        if let Some(refusal) = self.grant_out_of_scope(scope, &grant).await? {
            return Err(refusal.error());
        }
        self.view(grant).await
    }

    /// Why `grant` is outside `scope`, if it is: its partner is not in `publish_for`, or an
    /// artifact it covers has an owner (or, imported or purged, none) not in
    /// `publish_from_owners`.
    async fn grant_out_of_scope(
        &self,
        scope: &PublisherScope,
        grant: &GrantRecord,
    ) -> Result<Option<ScopeRefusal>, LinkError> {
        let partner = grant.partner.to_string();
        let artifact = grant.scope.artifacts.first().map(ToString::to_string);
        if !scope.allows_partner(&partner) {
            return Ok(Some(ScopeRefusal {
                limit: "partner",
                partner,
                owner: None,
                artifact,
            }));
        }
        if scope.owners.is_none() {
            return Ok(None);
        }
        for &id in &grant.scope.artifacts {
            let owner = self.artifact(id).await?.and_then(|a| a.owner.clone());
            if !scope.allows_owner(owner.as_deref()) {
                return Ok(Some(ScopeRefusal {
                    limit: "owner",
                    partner,
                    owner,
                    artifact: Some(id.to_string()),
                }));
            }
        }
        Ok(None)
    }

    /// Why a listing or bulk revocation selecting a partner, or an artifact owned by a
    /// client, is outside `scope`, if it is. (A batch selector is checked grant by grant.)
    async fn filter_out_of_scope(
        &self,
        scope: &PublisherScope,
        filter: &GrantFilter,
    ) -> Result<Option<ScopeRefusal>, LinkError> {
        Ok(match filter {
            GrantFilter::Partner(p) if !scope.allows_partner(p.as_str()) => Some(ScopeRefusal {
                limit: "partner",
                partner: p.to_string(),
                owner: None,
                artifact: None,
            }),
            GrantFilter::Artifact(a) if scope.owners.is_some() => {
                let owner = self.artifact(*a).await?.and_then(|r| r.owner.clone());
                (!scope.allows_owner(owner.as_deref())).then(|| ScopeRefusal {
                    limit: "owner",
                    partner: String::new(),
                    owner,
                    artifact: Some(a.to_string()),
                })
            }
            _ => None,
        })
    }

    /// Audits a revocation refused by `who`'s scope as `publish.out_of_scope`, and returns
    /// the refusal.
    async fn refuse_revoke(&self, who: &Publisher, refusal: ScopeRefusal) -> LinkError {
        let error = refusal.error();
        let event = PublishOutOfScope {
            attempt: "link.revoke",
            limit: refusal.limit,
            partner: Some(refusal.partner),
            owner: refusal.owner,
            artifact: refusal.artifact,
            upload: None,
        };
        match self.auditor.emit(&who.audit, &event).await {
            Ok(_) => error,
            Err(e) => e.into(),
        }
    }

    /// Revokes one grant (idempotent) between `link.revoke_requested` and `link.revoked`;
    /// returns it as stored.
    pub async fn revoke(
        &self,
        who: &Publisher,
        id: GrantId,
        reason: &Reason,
    ) -> Result<GrantView, LinkError> {
        let (grant, _) = self.grants.get(id).await?.ok_or(LinkError::GrantNotFound)?;
        if let Some(refusal) = self.grant_out_of_scope(&who.scope, &grant).await? {
            return Err(self.refuse_revoke(who, refusal).await);
        }
        self.audit_revoke_requested(who, "grant", id.to_string(), reason)
            .await?;
        let outcome = self
            .grants
            .revoke(id, &who.name, reason, now_unix())
            .await?;
        let (record, revoked) = match outcome {
            RevokeOutcome::Revoked(r) => (r, vec![id]),
            RevokeOutcome::AlreadyRevoked(r) => (r, Vec::new()),
            RevokeOutcome::NotFound => return Err(LinkError::GrantNotFound),
        };
        let done = Revoked {
            already_revoked: u64::from(revoked.is_empty()),
            revoked,
        };
        self.audit_revoked(who, "grant", id.to_string(), reason, &done)
            .await?;
        self.view(record).await
    }

    /// Revokes every grant `filter` selects between one `link.revoke_requested` and one
    /// `link.revoked`.
    pub async fn revoke_all(
        &self,
        who: &Publisher,
        filter: &GrantFilter,
        reason: &Reason,
    ) -> Result<Revoked, LinkError> {
        self.check_revoke_all_scope(who, filter).await?;
        self.audit_revoke_requested(who, filter.kind(), filter.value(), reason)
            .await?;
        let done = self
            .grants
            .revoke_all(filter, &who.name, reason, now_unix())
            .await?;
        let done = Revoked {
            revoked: done.revoked,
            already_revoked: done.already_revoked,
        };
        self.audit_revoked(who, filter.kind(), filter.value(), reason, &done)
            .await?;
        Ok(done)
    }

    /// A scoped publisher may revoke by selector only when every grant selected is in its
    /// scope (a batch's grants can span partners and owners); otherwise it is refused and
    /// audited, and nothing is revoked — revoke the grants in scope one by one, or by a
    /// partner in scope.
    async fn check_revoke_all_scope(
        &self,
        who: &Publisher,
        filter: &GrantFilter,
    ) -> Result<(), LinkError> {
        if who.scope.partners.is_none() && who.scope.owners.is_none() {
            return Ok(());
        }
        if let Some(refusal) = self.filter_out_of_scope(&who.scope, filter).await? {
            return Err(self.refuse_revoke(who, refusal).await);
        }
        let mut after = None;
        loop {
            let page = self
                .grants
                .list(filter, after, crate::grant::MAX_PAGE)
                .await?;
            for grant in &page.grants {
                if let Some(refusal) = self.grant_out_of_scope(&who.scope, grant).await? {
                    return Err(self.refuse_revoke(who, refusal).await);
                }
            }
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(()),
            }
        }
    }

    /// The intent entry: nothing is revoked unless it is durable.
    async fn audit_revoke_requested(
        &self,
        who: &Publisher,
        scope: &'static str,
        target: String,
        reason: &Reason,
    ) -> Result<(), LinkError> {
        let event = RevokeRequested {
            scope,
            target,
            reason: reason.as_str().to_owned(),
        };
        self.auditor.emit(&who.audit, &event).await?;
        Ok(())
    }

    async fn audit_revoked(
        &self,
        who: &Publisher,
        scope: &'static str,
        target: String,
        reason: &Reason,
        done: &Revoked,
    ) -> Result<(), LinkError> {
        let event = LinksRevoked {
            scope,
            target,
            reason: reason.as_str().to_owned(),
            count: done.revoked.len() as u64,
            already_revoked: done.already_revoked,
            grants: done
                .revoked
                .iter()
                .take(MAX_AUDITED_GRANTS)
                .map(ToString::to_string)
                .collect(),
        };
        self.auditor.emit(&who.audit, &event).await?;
        Ok(())
    }

    /// The grant with the bytes counted against its limits for its first artifact.
    async fn view(&self, grant: GrantRecord) -> Result<GrantView, LinkError> {
        let usage = self.usage(&grant).await?;
        Ok(GrantView { grant, usage })
    }

    async fn usage(&self, g: &GrantRecord) -> Result<Option<serde_json::Value>, LinkError> {
        if !g.limits.is_limited() {
            return Ok(None);
        }
        let Some(&artifact) = g.scope.artifacts.first() else {
            return Ok(None);
        };
        let Some(record) = self.artifact(artifact).await? else {
            return Ok(None);
        };
        let len = record.length;
        let budget = Budget::new(g.id, artifact, &g.limits, len);
        let u = self.meter.usage(&budget).await?;
        let downloads = g
            .limits
            .max_downloads
            .map(|_| u.artifact_bytes.max(0) as u64 / len.max(1));
        Ok(Some(json!({
            "artifact_bytes": u.artifact_bytes,
            "grant_bytes": u.grant_bytes,
            "full_downloads": downloads,
        })))
    }
}

/// Why a grant is outside a publisher's scope (what `publish.out_of_scope` records).
#[derive(Debug)]
struct ScopeRefusal {
    limit: &'static str,
    partner: String,
    owner: Option<String>,
    artifact: Option<String>,
}

impl ScopeRefusal {
    fn error(&self) -> LinkError {
        if self.limit == "partner" {
            LinkError::PartnerOutOfScope
        } else {
            LinkError::OwnerOutOfScope
        }
    }
}
