//! Upload invitations (`proto/invitations-v1.md`): a capability a publisher gives a clinic
//! so that its staff, with no account, can upload files — into one batch when the
//! invitation was issued with a manifest — within limits, until it expires or is revoked.
//!
//! * [`Invitations::issue`] — validates the request, opens the invitation's batch when a
//!   manifest is given (owned by the invitation's principal, `invitation:{id}`), stores the
//!   record, audits `invitation.issued`, and only then mints the token
//!   ([`token`]: `inv1~…`, HMAC under a key derived from the link keys).
//! * [`Invitations::admit`] — every request made with an invitation token comes here
//!   first (the tus endpoints and the holder's own endpoints): the record must exist,
//!   match the token's expiry, be unrevoked and unexpired; the answer is the upload
//!   engine's [`Caller`] with the invitation's [`UploadBounds`], which the engine enforces
//!   atomically (files created, bytes held, the batch). A refusal says why (410
//!   `invitation.revoked` / `invitation.expired`) and is audited (`invitation.refused`),
//!   one by one up to an allowance per client address and window, then counted in the
//!   window's `security.summary`.
//! * [`Invitations::view`] / [`Invitations::seal`] — what the holder (the upload page)
//!   sees: limits, usage, and its batch's members and verdict; sealing its batch.
//! * [`Invitations::list`], [`Invitations::show`], [`Invitations::revoke`] — the
//!   issuer's side: a publisher within its partner scope, or an admin.
//!
//! The record is the authority: the token only proves its holder was given it. Revoking
//! takes effect on the next request on every instance (the record is read on each).
//!
//! Not here: HTTP (`http::handlers::invitations`), the token format ([`token`]), the
//! page (`http::handlers::page`).

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::value::RawValue;

pub mod config;
pub mod events;
pub mod record;
pub mod token;

use crate::audit::security::SecurityEvents;
use crate::audit::{AuditContext, AuditError, Auditor};
use crate::auth::{ClientName, InvitationPass, PublisherScope};
use crate::batch::{BatchError, BatchId, Batches, DocumentKind, Who};
use crate::grant::PartnerName;
use crate::grant::now_unix;
use crate::ids::OpaqueId;
use crate::state::{CasOutcome, Expect, IndexEntry, PutOptions, StateError, StateStore};
use crate::upload::{Caller, UploadBounds, UploadError, Uploads};
use config::InviteSettings;
use events::{InvitationIssued, InvitationRefused, InvitationRevoked};
use record::{INVITATIONS, InvitationRecord, Revocation, VERSION};
use token::InvitationKeys;

/// How long a record is kept after its invitation expired (so `show` and the page can
/// still say "expired" rather than "unknown"); the audit trail keeps the rest.
const KEEP_AFTER_EXPIRY: Duration = Duration::from_secs(30 * 86_400);
/// Most invitations one list page returns.
pub const MAX_PAGE: usize = 200;

/// Everything that can go wrong with an invitation request.
#[derive(Debug, thiserror::Error)]
pub enum InviteError {
    /// The request is malformed: `field` names what, `detail` says how.
    #[error("{field}: {detail}")]
    BadRequest {
        /// The request field.
        field: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// The publisher's scope does not include the partner.
    #[error("the partner is outside this publisher's scope")]
    PartnerNotAllowed,
    /// No such invitation (or one outside the caller's scope).
    #[error("no such invitation")]
    NotFound,
    /// The token verifies but the store has no such invitation (a record lost, or another
    /// deployment's link keys).
    #[error("this invitation is not known here")]
    Unknown,
    /// The invitation was revoked.
    #[error("this invitation was revoked")]
    Revoked,
    /// The invitation has expired.
    #[error("this invitation has expired")]
    Expired,
    /// The invitation has no batch to seal.
    #[error("this invitation has no batch")]
    NoBatch,
    /// The batch side refused (a manifest error at issue, a seal in the wrong state…).
    #[error(transparent)]
    Batch(#[from] BatchError),
    /// The upload engine failed (reading usage).
    #[error(transparent)]
    Upload(#[from] UploadError),
    /// The state store failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// Concurrent changes kept winning (or an id collided).
    #[error("the invitation is busy; retry")]
    Busy,
    /// A stored record does not decode.
    #[error("an invitation record is corrupt")]
    Corrupt,
    /// The audit trail failed: the action is refused (fail closed).
    #[error(transparent)]
    Audit(#[from] AuditError),
}

/// The issuer, as the service needs to know it.
#[derive(Debug, Clone)]
pub struct Issuer {
    /// The principal's name.
    pub name: String,
    /// Holds `admin`.
    pub admin: bool,
    /// Holds `auditor` (may list and show, not issue or revoke).
    pub auditor: bool,
    /// Its partner scope (publishers).
    pub scope: Arc<PublisherScope>,
    /// Where to attribute audit events.
    pub audit: AuditContext,
}

impl Issuer {
    fn may_see(&self, record: &InvitationRecord) -> bool {
        self.admin
            || self.auditor
            || record.issuer == self.name
            || self.scope.allows_partner(&record.partner)
    }
}

/// `POST /v1/invitations`, parsed: `{"partner", "ttl"?, "max_files"?, "max_bytes"?,
/// "manifest"?, "provenance"?}`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct IssueBody<'a> {
    partner: String,
    #[serde(default)]
    ttl: Option<String>,
    #[serde(default)]
    max_files: Option<u64>,
    #[serde(default)]
    max_bytes: Option<u64>,
    #[serde(borrow, default)]
    manifest: Option<&'a RawValue>,
    #[serde(borrow, default)]
    provenance: Option<&'a RawValue>,
}

/// The members of an issue request.
const ISSUE_FIELDS: [&str; 6] = [
    "partner",
    "ttl",
    "max_files",
    "max_bytes",
    "manifest",
    "provenance",
];

/// An issued invitation: the token is shown once, here.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The record as stored.
    pub record: InvitationRecord,
    /// The capability token (a bearer credential: never logged).
    pub token: crate::secret::Secret,
}

/// The holder's view (`GET /v1/invitation`).
#[derive(Debug, Clone, Serialize)]
pub struct HolderView {
    /// The invitation id.
    pub id: String,
    /// The partner.
    pub partner: String,
    /// RFC 3339.
    pub issued_at: String,
    /// RFC 3339.
    pub expires_at: String,
    /// The limits.
    pub limits: Limits,
    /// What is used of them.
    pub used: Usage,
    /// The tus creation URL's path.
    pub uploads_url: String,
    /// Its batch, if issued with a manifest.
    pub batch: Option<BatchView>,
}

/// An invitation's limits.
#[derive(Debug, Clone, Serialize)]
pub struct Limits {
    /// Most uploads.
    pub max_files: u64,
    /// Most bytes held.
    pub max_bytes: u64,
}

/// What is used of an invitation's limits.
#[derive(Debug, Clone, Serialize)]
pub struct Usage {
    /// Uploads created (minus those its holder terminated).
    pub files: u64,
    /// Bytes its uploads hold.
    pub bytes: u64,
}

/// The holder's view of its batch.
#[derive(Debug, Clone, Serialize)]
pub struct BatchView {
    /// The batch id (the `batch` value of each upload's `Upload-Metadata`).
    pub id: String,
    /// `open`, `sealing`, `released`, `quarantined`, `purged` or `expired`.
    pub state: &'static str,
    /// The members the manifest lists (the `member` value of each upload).
    pub members: Vec<MemberView>,
    /// The verdict's readable findings (empty unless quarantined).
    pub findings: Vec<String>,
}

/// One listed member.
#[derive(Debug, Clone, Serialize)]
pub struct MemberView {
    /// Its logical name.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
}

/// The invitation service.
#[derive(Debug, Clone)]
pub struct Invitations {
    state: Arc<dyn StateStore>,
    keys: Arc<InvitationKeys>,
    batches: Batches,
    uploads: Uploads,
    auditor: Auditor,
    security: SecurityEvents,
    settings: Arc<InviteSettings>,
}

impl Invitations {
    /// The service.
    pub fn new(
        state: Arc<dyn StateStore>,
        keys: Arc<InvitationKeys>,
        batches: Batches,
        uploads: Uploads,
        auditor: Auditor,
        security: SecurityEvents,
        settings: InviteSettings,
    ) -> Self {
        Self {
            state,
            keys,
            batches,
            uploads,
            auditor,
            security,
            settings: Arc::new(settings),
        }
    }

    /// The most a request body may be: a batch's manifest and provenance, plus the rest.
    pub fn max_issue_body(&self) -> u64 {
        self.batches.max_open_body() + 4096
    }

    /// `POST /v1/invitations`.
    pub async fn issue(&self, who: &Issuer, body: &[u8]) -> Result<Issued, InviteError> {
        let bad = |field: &'static str, detail: String| InviteError::BadRequest { field, detail };
        // An explicit `null` is not "absent": refused, like any value of the wrong type.
        if let Ok(fields) =
            serde_json::from_slice::<std::collections::BTreeMap<String, &RawValue>>(body)
            && let Some((name, _)) = fields.iter().find(|(_, v)| v.get() == "null")
        {
            let field = ISSUE_FIELDS
                .iter()
                .find(|f| **f == name.as_str())
                .copied()
                .unwrap_or("body");
            return Err(bad(field, "must not be null".into()));
        }
        // A struct also deserialises from a JSON array of its fields; the body is an object.
        if body.trim_ascii_start().first() != Some(&b'{') {
            return Err(bad("body", "not a JSON object".into()));
        }
        // The position only: serde's message may quote the input.
        let parsed: IssueBody<'_> = serde_json::from_slice(body).map_err(|e| {
            bad(
                "body",
                format!(
                    "line {}, column {}: not an invitation request (partner, ttl, \
                     max_files, max_bytes, manifest, provenance)",
                    e.line(),
                    e.column()
                ),
            )
        })?;
        let partner: PartnerName = parsed
            .partner
            .parse()
            .map_err(|e: crate::grant::PartnerNameError| bad("partner", e.to_string()))?;
        if !who.admin && !who.scope.allows_partner(partner.as_str()) {
            return Err(InviteError::PartnerNotAllowed);
        }
        let ttl = match parsed.ttl.as_deref() {
            None => self.settings.default_ttl,
            Some(t) => {
                let d = crate::config::units::parse_duration(t)
                    .map_err(|_| bad("ttl", "not a duration (examples: 30m, 72h, 7days)".into()))?;
                if d.as_secs() < 1 || d > self.settings.max_ttl {
                    return Err(bad(
                        "ttl",
                        format!(
                            "must be from 1s to invitations.max_ttl ({} s)",
                            self.settings.max_ttl.as_secs()
                        ),
                    ));
                }
                d
            }
        };
        let byte_cap = self.uploads.settings().max_bytes_per_principal;
        if let Some(n) = parsed.max_files
            && !(1..=self.settings.max_files).contains(&n)
        {
            return Err(bad(
                "max_files",
                format!("must be from 1 to {}", self.settings.max_files),
            ));
        }
        if let Some(n) = parsed.max_bytes
            && !(1..=byte_cap).contains(&n)
        {
            return Err(bad(
                "max_bytes",
                format!("must be from 1 to uploads.max_bytes_per_principal ({byte_cap})"),
            ));
        }
        if parsed.provenance.is_some() && parsed.manifest.is_none() {
            return Err(bad(
                "provenance",
                "a provenance record goes with a manifest".into(),
            ));
        }
        let id = OpaqueId::random();
        let principal = ClientName::invitation(&id.to_string());
        let now = now_unix();
        let mut expires_at = now.saturating_add(ttl.as_secs());
        let (batch, max_files, max_bytes) = match parsed.manifest {
            None => (
                None,
                parsed.max_files.unwrap_or(self.settings.max_files.min(100)),
                parsed.max_bytes.unwrap_or(byte_cap),
            ),
            Some(manifest) => {
                if parsed.max_files.is_some() || parsed.max_bytes.is_some() {
                    return Err(bad(
                        "max_files",
                        "with a manifest, the limits are the manifest's members and sizes".into(),
                    ));
                }
                let envelope = match parsed.provenance {
                    Some(p) => format!(
                        "{{\"manifest\":{},\"provenance\":{}}}",
                        manifest.get(),
                        p.get()
                    ),
                    None => format!("{{\"manifest\":{}}}", manifest.get()),
                };
                let opener = Who {
                    name: principal.to_string(),
                    auditor: false,
                    admin: false,
                    audit: who.audit.clone(),
                };
                let batch = self.batches.open(&opener, envelope.as_bytes()).await?;
                if batch.listed > self.settings.max_files || batch.listed_bytes > byte_cap {
                    // Too big for an invitation: the batch is left to expire unused.
                    return Err(bad(
                        "manifest",
                        format!(
                            "lists more than invitations.max_files ({}) members or \
                             uploads.max_bytes_per_principal ({byte_cap}) bytes",
                            self.settings.max_files
                        ),
                    ));
                }
                // The invitation cannot outlive the batch it uploads into.
                if let Some(end) = batch.expires_at {
                    expires_at = expires_at.min(end);
                }
                (
                    Some(batch.id.to_string()),
                    batch.listed.max(1),
                    batch.listed_bytes.max(1),
                )
            }
        };
        let record = InvitationRecord {
            v: VERSION,
            id: id.to_string(),
            partner: partner.as_str().to_owned(),
            issuer: who.name.clone(),
            batch,
            max_files,
            max_bytes,
            created_at: now,
            expires_at,
            key_id: self.keys.signer_id().to_owned(),
            revoked: None,
        };
        self.put(&record, Expect::Absent).await?;
        let event = InvitationIssued {
            invitation: record.id.clone(),
            partner: record.partner.clone(),
            batch: record.batch.clone(),
            max_files,
            max_bytes,
            expires_at,
            key_id: record.key_id.clone(),
        };
        if let Err(e) = self.auditor.emit(&who.audit, &event).await {
            // No token was handed out: the record goes too.
            if let Err(undo) = self
                .state
                .delete(INVITATIONS, &record.id, Expect::Any)
                .await
            {
                tracing::error!(error = %undo, invitation = %record.id, "could not undo an unaudited invitation");
            }
            return Err(e.into());
        }
        let token = crate::secret::Secret::from_string(self.keys.mint(id, expires_at));
        Ok(Issued { record, token })
    }

    /// Admits a request made with invitation `pass` (verified by the authenticator):
    /// the upload engine's caller, with the invitation's bounds.
    pub async fn admit(
        &self,
        pass: &InvitationPass,
        audit: AuditContext,
    ) -> Result<(InvitationRecord, Caller), InviteError> {
        let record = self.live(pass, &audit).await?;
        let caller = Caller {
            name: ClientName::invitation(&record.id).to_string(),
            admin: false,
            audit,
            bounds: Some(UploadBounds {
                max_bytes: record.max_bytes,
                max_files: record.max_files,
                batch: record.batch.clone(),
            }),
        };
        Ok((record, caller))
    }

    /// The record behind `pass`, if it still admits requests (a refusal is audited).
    async fn live(
        &self,
        pass: &InvitationPass,
        audit: &AuditContext,
    ) -> Result<InvitationRecord, InviteError> {
        let now = now_unix();
        let found = self.get(&pass.id).await?;
        let refusal = match &found {
            // A token whose expiry differs from the record's was not minted for it.
            Some(r) if r.expires_at != pass.expires_at => Some(("unknown", InviteError::Unknown)),
            Some(r) if r.revoked.is_some() => Some(("revoked", InviteError::Revoked)),
            Some(r) if now >= r.expires_at => Some(("expired", InviteError::Expired)),
            Some(_) => None,
            // The record is gone long after expiry: say expired when the token says so.
            None if now >= pass.expires_at => Some(("expired", InviteError::Expired)),
            None => Some(("unknown", InviteError::Unknown)),
        };
        match (found, refusal) {
            (Some(record), None) => Ok(record),
            (_, Some((reason, error))) => {
                let event = InvitationRefused {
                    invitation: pass.id.clone(),
                    reason,
                };
                // One by one up to an allowance per address and window, then counted in
                // the window's `security.summary`; the refusal stands either way.
                self.security.invitation_refused(audit, &event).await;
                Err(error)
            }
            (None, None) => Err(InviteError::Unknown),
        }
    }

    /// `GET /v1/invitation`: what the holder sees.
    pub async fn view(
        &self,
        pass: &InvitationPass,
        audit: AuditContext,
    ) -> Result<HolderView, InviteError> {
        let record = self.live(pass, &audit).await?;
        self.holder_view(&record, audit).await
    }

    /// `POST /v1/invitation/seal`: seals the invitation's batch (verification runs in
    /// the background; the view shows its progress and verdict).
    pub async fn seal(
        &self,
        pass: &InvitationPass,
        audit: AuditContext,
    ) -> Result<HolderView, InviteError> {
        let record = self.live(pass, &audit).await?;
        let batch = record.batch.as_deref().ok_or(InviteError::NoBatch)?;
        let id: BatchId = batch.parse().map_err(|_| InviteError::Corrupt)?;
        self.batches
            .seal(&self.owner_of(&record, audit.clone()), id)
            .await?;
        self.holder_view(&record, audit).await
    }

    fn owner_of(&self, record: &InvitationRecord, audit: AuditContext) -> Who {
        Who {
            name: ClientName::invitation(&record.id).to_string(),
            auditor: false,
            admin: false,
            audit,
        }
    }

    async fn holder_view(
        &self,
        record: &InvitationRecord,
        audit: AuditContext,
    ) -> Result<HolderView, InviteError> {
        let owner = ClientName::invitation(&record.id).to_string();
        let (files, bytes) = self.uploads.usage(&owner).await?;
        let batch = match &record.batch {
            None => None,
            Some(b) => {
                let id: BatchId = b.parse().map_err(|_| InviteError::Corrupt)?;
                let who = self.owner_of(record, audit);
                let batch = self.batches.get(&who, id).await?;
                let (manifest, _) = self
                    .batches
                    .document(&who, id, DocumentKind::Manifest)
                    .await?;
                let members =
                    crate::manifest::Manifest::parse(&manifest, &self.batches.settings().limits)
                        .map_err(|_| InviteError::Corrupt)?
                        .members()
                        .iter()
                        .map(|m| MemberView {
                            name: m.name().as_str().to_owned(),
                            size: m.size(),
                        })
                        .collect();
                let findings = match &batch.verdict {
                    Some(v) if !v.passed => {
                        let (report, _) = self.batches.report(&who, id).await?;
                        readable_findings(&report)
                    }
                    _ => Vec::new(),
                };
                Some(BatchView {
                    id: b.clone(),
                    state: batch.state.as_str(),
                    members,
                    findings,
                })
            }
        };
        Ok(HolderView {
            id: record.id.clone(),
            partner: record.partner.clone(),
            issued_at: rfc3339(record.created_at),
            expires_at: rfc3339(record.expires_at),
            limits: Limits {
                max_files: record.max_files,
                max_bytes: record.max_bytes,
            },
            used: Usage { files, bytes },
            uploads_url: self.uploads.settings().base.as_str().to_owned(),
            batch,
        })
    }

    /// `GET /v1/invitations/{id}`: the record and its usage.
    pub async fn show(
        &self,
        who: &Issuer,
        id: &str,
    ) -> Result<(InvitationRecord, Usage), InviteError> {
        let record = self.get(id).await?.ok_or(InviteError::NotFound)?;
        if !who.may_see(&record) {
            return Err(InviteError::NotFound);
        }
        let (files, bytes) = self
            .uploads
            .usage(&ClientName::invitation(&record.id).to_string())
            .await?;
        Ok((record, Usage { files, bytes }))
    }

    /// `GET /v1/invitations`: the invitations the caller may see, by id, after `after`,
    /// optionally for one partner.
    pub async fn list(
        &self,
        who: &Issuer,
        partner: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<InvitationRecord>, Option<String>), InviteError> {
        let limit = limit.clamp(1, MAX_PAGE);
        let mut out = Vec::new();
        let mut cursor = after.map(str::to_owned);
        // Pages of ids until `limit` visible records (or the end).
        loop {
            let ids = match partner {
                Some(p) => {
                    self.state
                        .list_index(
                            INVITATIONS,
                            &IndexEntry::new("partner", p),
                            cursor.as_deref(),
                            limit,
                        )
                        .await?
                }
                None => {
                    self.state
                        .list(INVITATIONS, cursor.as_deref(), limit)
                        .await?
                }
            };
            let end = ids.len() < limit;
            for id in ids {
                cursor = Some(id.clone());
                if let Some(r) = self.get(&id).await?
                    && who.may_see(&r)
                {
                    out.push(r);
                    if out.len() == limit {
                        return Ok((out, cursor));
                    }
                }
            }
            if end {
                return Ok((out, None));
            }
        }
    }

    /// `DELETE /v1/invitations/{id}`: revokes it; its next request on any instance is
    /// refused. Revoking a revoked invitation changes nothing.
    pub async fn revoke(
        &self,
        who: &Issuer,
        id: &str,
        reason: &str,
    ) -> Result<InvitationRecord, InviteError> {
        if reason.chars().count() > 1000 || reason.chars().any(char::is_control) {
            return Err(InviteError::BadRequest {
                field: "reason",
                detail: "at most 1000 characters, no control characters".into(),
            });
        }
        for _ in 0..8 {
            let Some(found) = self.state.get(INVITATIONS, id).await? else {
                return Err(InviteError::NotFound);
            };
            let mut record = decode(&found.value)?;
            // The handler admits publishers (and admins) only; auditors may look, not
            // revoke.
            let may =
                who.admin || record.issuer == who.name || who.scope.allows_partner(&record.partner);
            if !may {
                return Err(InviteError::NotFound);
            }
            if record.revoked.is_some() {
                return Ok(record);
            }
            // The intent is audited before the record changes: the trail never misses a
            // revocation that took effect.
            self.auditor
                .emit(
                    &who.audit,
                    &InvitationRevoked {
                        invitation: record.id.clone(),
                        reason: reason.to_owned(),
                    },
                )
                .await?;
            record.revoked = Some(Revocation {
                at: now_unix(),
                by: who.name.clone(),
                reason: reason.to_owned(),
            });
            match self.put(&record, Expect::Version(found.version)).await {
                Ok(()) => return Ok(record),
                Err(InviteError::Busy) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(InviteError::Busy)
    }

    async fn get(&self, id: &str) -> Result<Option<InvitationRecord>, InviteError> {
        if id.parse::<OpaqueId>().is_err() {
            return Ok(None);
        }
        match self.state.get(INVITATIONS, id).await? {
            Some(v) => Ok(Some(decode(&v.value)?)),
            None => Ok(None),
        }
    }

    async fn put(&self, record: &InvitationRecord, expect: Expect) -> Result<(), InviteError> {
        let bytes = serde_json::to_vec(record).map_err(|_| InviteError::Corrupt)?;
        let keep = record
            .expires_at
            .saturating_sub(now_unix())
            .saturating_add(KEEP_AFTER_EXPIRY.as_secs());
        let options = PutOptions {
            ttl: Some(Duration::from_secs(keep)),
            index: vec![
                IndexEntry::new("partner", record.partner.clone()),
                IndexEntry::new("issuer", record.issuer.clone()),
            ],
        };
        match self
            .state
            .put(INVITATIONS, &record.id, &bytes, expect, options)
            .await?
        {
            CasOutcome::Applied(_) => Ok(()),
            CasOutcome::Conflict(_) => Err(InviteError::Busy),
        }
    }
}

fn decode(bytes: &[u8]) -> Result<InvitationRecord, InviteError> {
    let r: InvitationRecord = serde_json::from_slice(bytes).map_err(|_| InviteError::Corrupt)?;
    if r.v != VERSION {
        return Err(InviteError::Corrupt);
    }
    Ok(r)
}

/// The `message` of each finding in a verification report (`proto/batches-v1.md` §6).
fn readable_findings(report: &[u8]) -> Vec<String> {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(report) else {
        return Vec::new();
    };
    v.get("findings")
        .and_then(|f| f.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|f| f.get("message")?.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Unix seconds as RFC 3339 UTC.
pub fn rfc3339(secs: u64) -> String {
    i64::try_from(secs)
        .ok()
        .and_then(crate::tus::dates::Timestamp::from_unix)
        .map_or_else(String::new, crate::tus::dates::Timestamp::to_rfc3339)
}
