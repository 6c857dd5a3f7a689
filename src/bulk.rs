//! FHIR Bulk Data delivery (`proto/bulk-v1.md`, `docs/fhir-bulk.md`, decision record
//! 0006): the `$export` async flow over released batches, for SMART Backend Services
//! clients.
//!
//! The service [`Bulk`] owns every flow from a parsed request to a typed outcome and
//! audits inside it (`docs/architecture.md`, "One shape for every flow"):
//!
//! * `publish` — a publisher binds a batch to a SMART client and an export level
//!   (`bulk.export_published`); the gateway never invents data, it delivers what was
//!   published;
//! * `kickoff` — validates the request ([`request`], pure) and the token's scopes, creates
//!   the job (`bulk.kickoff`);
//! * `status` — binds the job to the current publication, answers in progress (with the
//!   batch's verification progress), failed (quarantined, purged, expired: never a
//!   manifest), or complete: the manifest ([`manifest`], pure) whose file URLs are fresh
//!   signed links of one new grant per answer (`bulk.status`); polls sooner than
//!   `bulk.retry_after` are refused;
//! * `cancel` — forgets the job (`bulk.cancelled`).
//!
//! Files leave through the links service's download path (`/d/…`: the batch gate, Range,
//! `Repr-Digest`, `download.served`); this module never reads a byte of them.
//!
//! Not here: HTTP (`http::handlers::bulk`), the error table's rows (`http::problem::bulk`).

use std::sync::Arc;

use serde::Deserialize;

pub mod build;
pub mod config;
pub mod events;
pub mod manifest;
pub mod record;
pub mod request;

use crate::audit::{AuditContext, AuditError, Auditor};
use crate::auth::AccessGrant;
use crate::batch::delivery::Delivery;
use crate::batch::{BatchError, BatchId, BatchState, Batches};
use crate::grant::{BatchRef, PartnerName, now_unix};
use crate::links::publish::{RegisterBody, RegisterError};
use crate::links::{LinkError, Links, Publisher};
use crate::signed_link::ArtifactId;
use crate::smart::config::SmartSettings;
use crate::smart::scope::parse_list;
use crate::state::Expect;
use crate::upload::Uploads;
use config::BulkSettings;
use events::{Cancelled, ExportPublished, Kickoff as KickoffEvent, StatusPolled};
use record::{
    BulkStore, FileRecord, Job, JobGrant, JobId, Publication, PublicationId, RECORD_VERSION,
    RecordError,
};
use request::{KickoffError, Level};

/// The path of a job's status URL, before its id.
pub const STATUS_PATH: &str = "/fhir/bulk/";
/// After a job's status URL, before an artifact id: a file URL under
/// `bulk.requires_access_token`.
pub const FILES_PATH: &str = "/files/";
/// Longest publication lifetime.
pub const MAX_PUBLICATION_SECS: u64 = 30 * 86_400;
/// Default publication lifetime.
pub const DEFAULT_PUBLICATION_SECS: u64 = 7 * 86_400;
/// The media type of the `/fhir` answers (manifests and `OperationOutcome`s).
pub const FHIR_JSON: &str = "application/fhir+json";
/// The media type of delivered files.
pub const FHIR_NDJSON: &str = "application/fhir+ndjson";

/// Every way a Bulk request can fail.
#[derive(Debug, thiserror::Error)]
pub enum BulkError {
    /// The kick-off is malformed or asks for what is not supported.
    #[error("kick-off refused: {0}")]
    Kickoff(#[from] KickoffError),
    /// The caller did not authenticate with a SMART access token.
    #[error("a SMART access token is required")]
    TokenRequired,
    /// The token's scopes do not cover the export asked for.
    #[error("the access token's scope does not cover the export")]
    Scope,
    /// No such job, or not this client's, or expired or cancelled.
    #[error("no such job")]
    JobNotFound,
    /// No such file in the job's manifest (or files are not served with the access
    /// token: `bulk.requires_access_token` is off, or no manifest was served yet).
    #[error("no such file in the job's manifest")]
    FileNotFound,
    /// Polled sooner than `Retry-After` said.
    #[error("polled too soon (retry after {retry_after} s)")]
    TooFast {
        /// Seconds until the next poll is answered.
        retry_after: u64,
    },
    /// The export failed: its batch is quarantined, purged or expired, or its publication
    /// is gone.
    #[error("the export failed (batch {state})")]
    ExportFailed {
        /// The batch's state (or `unpublished`).
        state: &'static str,
    },
    /// A publication request is malformed: `reason` names the field.
    #[error("the publication is malformed: {0}")]
    BadPublication(&'static str),
    /// The publication names no registered SMART client.
    #[error("client_id names no registered SMART client")]
    UnknownClient,
    /// The client's principal is not a valid partner name (links are issued to it).
    #[error("the client's principal is not a partner name")]
    ClientNotPartner,
    /// The publisher's scope does not include the client's principal or the batch owner.
    #[error("outside the publisher's scope")]
    OutOfScope,
    /// No such batch.
    #[error("no such batch")]
    BatchNotFound,
    /// The batch is quarantined, purged or expired.
    #[error("the batch cannot be published in its state")]
    BatchNotPublishable,
    /// No public base URL is configured (`smart.public_base_url` or
    /// `links.public_base_url`): manifests need absolute URLs.
    #[error("no public base URL is configured")]
    NotConfigured,
    /// The Bulk records could not be read or written.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// The batch service failed.
    #[error(transparent)]
    Batch(#[from] BatchError),
    /// A member could not be registered as an artifact.
    #[error(transparent)]
    Register(#[from] RegisterError),
    /// The links could not be issued.
    #[error(transparent)]
    Link(#[from] LinkError),
    /// The audit trail failed: nothing is acknowledged.
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// A build request is malformed: the reason names the field.
    #[error("the build request is malformed: {0}")]
    BadBuild(&'static str),
    /// A build names an artifact or batch that does not exist.
    #[error("a build source does not exist")]
    BuildSourceNotFound,
    /// A build names a batch (or an artifact of one) that is not released.
    #[error("a build source's batch is not released")]
    BuildSourceNotReleased,
    /// A build names a batch with members that are not NDJSON.
    #[error("the batch has members that are not FHIR NDJSON")]
    BuildSourceNotNdjson,
    /// A member's copy ended short of its source.
    #[error("a member's copy did not complete")]
    BuildCopy,
    /// An artifact record could not be read.
    #[error(transparent)]
    Artifact(#[from] crate::artifact::ArtifactError),
    /// A source's bytes could not be read.
    #[error(transparent)]
    AtRest(#[from] crate::at_rest::AtRestError),
    /// The upload engine refused or failed a member's copy.
    #[error(transparent)]
    Upload(#[from] crate::upload::UploadError),
}

/// A SMART client calling the `/fhir` endpoints.
#[derive(Debug, Clone)]
pub struct BulkCaller {
    /// What its access token granted.
    pub grant: Arc<AccessGrant>,
    /// The request's audit context.
    pub audit: AuditContext,
}

/// The body of `POST /v1/exports`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishBody {
    batch: String,
    client_id: String,
    level: String,
    #[serde(default)]
    group: Option<String>,
    #[serde(default)]
    expires_in: Option<String>,
}

/// What a status poll answers.
#[derive(Debug, Clone, PartialEq)]
pub enum Status {
    /// Not ready: `X-Progress` and `Retry-After`.
    InProgress {
        /// A short progress text.
        progress: String,
        /// Seconds to wait.
        retry_after: u64,
    },
    /// The complete-status manifest.
    Complete(serde_json::Value),
}

/// The Bulk service.
#[derive(Debug, Clone)]
pub struct Bulk {
    store: BulkStore,
    batches: Batches,
    links: Arc<Links>,
    uploads: Uploads,
    auditor: Auditor,
    smart: Arc<SmartSettings>,
    settings: BulkSettings,
}

impl Bulk {
    /// The service.
    pub fn new(
        store: BulkStore,
        batches: Batches,
        links: Arc<Links>,
        uploads: Uploads,
        auditor: Auditor,
        smart: Arc<SmartSettings>,
        settings: BulkSettings,
    ) -> Self {
        Self {
            store,
            batches,
            links,
            uploads,
            auditor,
            smart,
            settings,
        }
    }

    /// The settings.
    pub fn settings(&self) -> &BulkSettings {
        &self.settings
    }

    /// The public base URL (`https://host[:port]`).
    pub fn base_url(&self) -> Result<&str, BulkError> {
        self.smart
            .public_base_url
            .as_deref()
            .ok_or(BulkError::NotConfigured)
    }

    /// `POST /v1/exports`: publishes a batch for a client at a level.
    pub async fn publish(
        &self,
        who: &Publisher,
        body: PublishBody,
    ) -> Result<Publication, BulkError> {
        let batch: BatchId = body
            .batch
            .parse()
            .map_err(|_| BulkError::BadPublication("batch"))?;
        let level = Level::from_fields(&body.level, body.group.as_deref())
            .map_err(|_| BulkError::BadPublication("level"))?;
        let lifetime = match body.expires_in.as_deref() {
            None => DEFAULT_PUBLICATION_SECS,
            Some(v) => crate::config::units::parse_duration(v)
                .ok()
                .map(|d| d.as_secs())
                .filter(|s| (60..=MAX_PUBLICATION_SECS).contains(s))
                .ok_or(BulkError::BadPublication("expires_in"))?,
        };
        let client = self
            .smart
            .client(&body.client_id)
            .ok_or(BulkError::UnknownClient)?;
        let partner = partner_of(client.principal.as_str())?;
        let delivery = self
            .batches
            .delivery(batch)
            .await?
            .ok_or(BulkError::BatchNotFound)?;
        if !who.scope.allows_partner(partner.as_str())
            || !who.scope.allows_owner(Some(&delivery.owner))
        {
            return Err(BulkError::OutOfScope);
        }
        if !matches!(
            delivery.state,
            BatchState::Open | BatchState::Sealing | BatchState::Released
        ) {
            return Err(BulkError::BatchNotPublishable);
        }
        let now = now_unix();
        let publication = Publication {
            v: RECORD_VERSION,
            id: PublicationId::random(),
            batch,
            client_id: client.client_id.clone(),
            level,
            publisher: who.name.clone(),
            created_at: now,
            expires_at: now.saturating_add(lifetime),
            files: None,
        };
        // Audited before it can bind a job: no unrecorded publication ever delivers.
        let event = ExportPublished {
            publication: publication.id.to_string(),
            batch: batch.to_string(),
            client_id: publication.client_id.clone(),
            level: publication.level.key(),
            batch_state: delivery.state.as_str(),
            expires_at: publication.expires_at,
            purpose_of_use: delivery.purpose_of_use.clone(),
        };
        self.auditor.emit(&who.audit, &event).await?;
        self.store.publish(&publication, now).await?;
        Ok(publication)
    }

    /// The kick-off: a new job for the caller, or a typed refusal (audited either way).
    /// `level` is what the path said; `request` the absolute kick-off URL.
    pub async fn kickoff(
        &self,
        caller: &BulkCaller,
        level: Result<Level, KickoffError>,
        accept: Option<&str>,
        prefer: Option<&str>,
        query: &str,
        request: String,
    ) -> Result<JobId, BulkError> {
        let now = now_unix();
        let parsed = level.and_then(|l| request::parse(l, accept, prefer, query, now));
        let k = match parsed {
            Ok(k) => k,
            Err(e) => {
                self.refuse_kickoff(caller, e.reason()).await?;
                return Err(e.into());
            }
        };
        if !scope_covers(&caller.grant.scope, k.types.as_deref()) {
            self.refuse_kickoff(caller, "scope").await?;
            return Err(BulkError::Scope);
        }
        let job = Job {
            v: RECORD_VERSION,
            id: JobId::random(),
            client_id: caller.grant.client_id.clone(),
            level: k.level,
            types: k.types,
            since: k.since,
            request,
            scope: caller.grant.scope.clone(),
            created_at: now,
            expires_at: now.saturating_add(self.settings.job_ttl.as_secs()),
            publication: None,
            next_poll_ms: 0,
            grant: None,
        };
        let event = KickoffEvent {
            job: Some(job.id.to_string()),
            client_id: job.client_id.clone(),
            level: Some(job.level.key()),
            types: job.types.clone(),
            since: job.since.clone(),
            refused: None,
        };
        self.auditor.emit(&caller.audit, &event).await?;
        if self
            .store
            .put_job(&job, Expect::Absent, now)
            .await?
            .is_none()
        {
            return Err(BulkError::Record(RecordError::Corrupt("job id collision")));
        }
        Ok(job.id)
    }

    /// A status poll.
    pub async fn status(&self, caller: &BulkCaller, id: JobId) -> Result<Status, BulkError> {
        let (mut job, version) = self.own_job(caller, id).await?;
        let now = now_unix();
        let now_ms = now_millis();
        let retry_after = self.settings.retry_after.as_secs();
        let mut polled = StatusPolled {
            job: id.to_string(),
            client_id: job.client_id.clone(),
            status: "too_fast",
            batch: None,
            purpose_of_use: None,
            grant: None,
            files: None,
            batch_state: None,
        };
        if now_ms < job.next_poll_ms {
            self.auditor.emit(&caller.audit, &polled).await?;
            return Err(BulkError::TooFast {
                retry_after: (job.next_poll_ms - now_ms).div_ceil(1000).max(1),
            });
        }
        // A client that waits exactly Retry-After is never refused: a little slack for
        // the time between this answer and its clock starting.
        job.next_poll_ms = now_ms + retry_after * 1000 - 250;
        if job.publication.is_none() {
            job.publication = self.store.current(&job.client_id, &job.level).await?;
        }
        // A lost race is another poll of this job answered just now.
        let Some(version) = self
            .store
            .put_job(&job, Expect::Version(version), now)
            .await?
        else {
            self.auditor.emit(&caller.audit, &polled).await?;
            return Err(BulkError::TooFast { retry_after });
        };
        let in_progress = |progress: String| Status::InProgress {
            progress,
            retry_after,
        };
        let Some(pid) = job.publication else {
            polled.status = "in_progress";
            self.auditor.emit(&caller.audit, &polled).await?;
            return Ok(in_progress("waiting for the export to be published".into()));
        };
        let Some((publication, pversion)) = self.store.publication(pid).await? else {
            return self.failed(caller, polled, "unpublished").await;
        };
        let Some(delivery) = self.batches.delivery(publication.batch).await? else {
            return self.failed(caller, polled, "unpublished").await;
        };
        polled.batch = Some(delivery.id.to_string());
        polled.purpose_of_use = delivery.purpose_of_use.clone();
        match delivery.state {
            BatchState::Open | BatchState::Sealing => {
                polled.status = "in_progress";
                self.auditor.emit(&caller.audit, &polled).await?;
                let progress = match delivery.progress {
                    Some((done, total)) if total > 0 => {
                        format!("verifying: {}%", done.saturating_mul(100) / total)
                    }
                    _ if delivery.state == BatchState::Open => "awaiting files".into(),
                    _ => "verifying".into(),
                };
                Ok(in_progress(progress))
            }
            BatchState::Released => {
                // The first polls of a publication register its files; when jobs bound to
                // it are polled at once, the others find the uploads held by that
                // registration. Not ready yet, not an error: poll again.
                let registering = publication.files.is_none().then(|| polled.clone());
                let answer = self
                    .complete(
                        caller,
                        (job, version),
                        publication,
                        pversion,
                        &delivery,
                        polled,
                    )
                    .await;
                match (answer, registering) {
                    (Err(BulkError::Register(e)), Some(mut polled)) if e.is_busy() => {
                        polled.status = "in_progress";
                        self.auditor.emit(&caller.audit, &polled).await?;
                        Ok(in_progress("registering the files".into()))
                    }
                    (other, _) => other,
                }
            }
            state => self.failed(caller, polled, state.as_str()).await,
        }
    }

    /// `DELETE` on the status URL: forgets the job.
    pub async fn cancel(&self, caller: &BulkCaller, id: JobId) -> Result<(), BulkError> {
        let (job, _) = self.own_job(caller, id).await?;
        let mut event = Cancelled {
            job: id.to_string(),
            client_id: job.client_id.clone(),
            batch: None,
            purpose_of_use: None,
        };
        if let Some(pid) = job.publication
            && let Some((p, _)) = self.store.publication(pid).await?
        {
            event.batch = Some(p.batch.to_string());
            if let Some(d) = self.batches.delivery(p.batch).await? {
                event.purpose_of_use = d.purpose_of_use;
            }
        }
        self.auditor.emit(&caller.audit, &event).await?;
        self.store.delete_job(id).await?;
        Ok(())
    }

    /// `GET|HEAD /fhir/bulk/{job}/files/{artifact}` under `bulk.requires_access_token`:
    /// the signed link (never shown to anyone) through which the download path serves
    /// the file, when the job is the caller's, its manifest lists the file, and the
    /// caller's token still covers the file's type. The download path then decides as for
    /// any link (the batch gate, the grant's expiry and revocation, Range, `Repr-Digest`)
    /// and audits `download.served` under the caller.
    pub async fn file(
        &self,
        caller: &BulkCaller,
        id: JobId,
        artifact: ArtifactId,
    ) -> Result<String, BulkError> {
        if !self.settings.requires_access_token {
            return Err(BulkError::FileNotFound);
        }
        let (job, _) = self.own_job(caller, id).await?;
        let (Some(grant), Some(pid)) = (job.grant, job.publication) else {
            return Err(BulkError::FileNotFound);
        };
        let wanted = artifact.to_string();
        let resource_type = self
            .store
            .publication(pid)
            .await?
            .and_then(|(p, _)| p.files)
            .and_then(|files| files.into_iter().find(|f| f.artifact == wanted))
            .map(|f| f.resource_type)
            .ok_or(BulkError::FileNotFound)?;
        if !scope_covers(&caller.grant.scope, Some(&[resource_type])) {
            return Err(BulkError::Scope);
        }
        let grant = grant
            .id
            .parse()
            .map_err(|_| RecordError::Corrupt("a job's grant id"))?;
        match self.links.target_of(grant, artifact).await {
            Ok(target) => Ok(target),
            Err(LinkError::GrantNotFound | LinkError::ArtifactNotFound) => {
                Err(BulkError::FileNotFound)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The job, when it exists and is the caller's (anything else is the same 404).
    async fn own_job(&self, caller: &BulkCaller, id: JobId) -> Result<(Job, u64), BulkError> {
        match self.store.job(id).await? {
            Some((job, v)) if job.client_id == caller.grant.client_id => Ok((job, v)),
            _ => Err(BulkError::JobNotFound),
        }
    }

    async fn refuse_kickoff(
        &self,
        caller: &BulkCaller,
        reason: &'static str,
    ) -> Result<(), BulkError> {
        let event = KickoffEvent {
            job: None,
            client_id: caller.grant.client_id.clone(),
            level: None,
            types: None,
            since: None,
            refused: Some(reason),
        };
        self.auditor.emit(&caller.audit, &event).await?;
        Ok(())
    }

    async fn failed(
        &self,
        caller: &BulkCaller,
        mut polled: StatusPolled,
        state: &'static str,
    ) -> Result<Status, BulkError> {
        polled.status = "failed";
        polled.batch_state = Some(state);
        self.auditor.emit(&caller.audit, &polled).await?;
        Err(BulkError::ExportFailed { state })
    }

    /// The manifest of a released batch: its files registered once per publication, and
    /// fresh links of one new grant — or, with `requires_access_token`, the job's file URLs
    /// under the job's one grant (a new one only once the last has less than a minute to
    /// live).
    async fn complete(
        &self,
        caller: &BulkCaller,
        (mut job, job_version): (Job, u64),
        publication: Publication,
        version: u64,
        delivery: &Delivery,
        mut polled: StatusPolled,
    ) -> Result<Status, BulkError> {
        let publisher = Publisher {
            name: publication.publisher.clone(),
            // Checked when the export was published: the batch owner and the client's
            // principal were in the publisher's scope.
            scope: Arc::default(),
            audit: caller.audit.clone(),
        };
        let files = match &publication.files {
            Some(f) => f.clone(),
            None => {
                self.register(&publisher, publication, version, delivery)
                    .await?
            }
        };
        let scopes = parse_list(&job.scope).unwrap_or_default();
        let chosen: Vec<&FileRecord> = files
            .iter()
            .filter(|f| {
                job.types
                    .as_ref()
                    .is_none_or(|t| t.contains(&f.resource_type))
                    && scopes.iter().any(|s| s.allows_read_of(&f.resource_type))
            })
            .collect();
        let base = self.base_url()?;
        let mut out = Vec::with_capacity(chosen.len());
        if !chosen.is_empty() {
            let artifacts = chosen
                .iter()
                .map(|f| f.artifact.parse::<ArtifactId>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| RecordError::Corrupt("an artifact id"))?;
            let client = self
                .smart
                .client(&job.client_id)
                .ok_or(BulkError::JobNotFound)?;
            let partner = partner_of(client.principal.as_str())?;
            let batch_ref = delivery.id.to_string().parse::<BatchRef>().ok();
            // With access tokens: the job's one grant while it has a minute left; else
            // (and always for signed links) a new grant for this answer.
            let token_mode = self.settings.requires_access_token;
            let now = now_unix();
            let kept = job
                .grant
                .clone()
                .filter(|g| token_mode && g.expires > now.saturating_add(60));
            let (grant, signed) = match kept {
                Some(g) => (g.id, None),
                None => {
                    let ttl = if token_mode {
                        // As long as the job lives, within what a grant may live.
                        std::time::Duration::from_secs(
                            job.expires_at
                                .saturating_sub(now)
                                .clamp(1, self.links.settings().max_ttl.as_secs().max(1)),
                        )
                    } else {
                        self.settings.link_ttl
                    };
                    let (grant, targets) = self
                        .links
                        .issue_bundle(&publisher, partner, batch_ref, &artifacts, ttl)
                        .await?;
                    if token_mode {
                        job.grant = Some(JobGrant {
                            id: grant.id.to_string(),
                            expires: grant.expires,
                        });
                        // Lost: the job was cancelled (or expired) meanwhile. The grant's
                        // links never left the gateway, so nothing can use it.
                        let stored = self
                            .store
                            .put_job(&job, Expect::Version(job_version), now)
                            .await?;
                        if stored.is_none() {
                            return Err(BulkError::JobNotFound);
                        }
                    }
                    (grant.id.to_string(), (!token_mode).then_some(targets))
                }
            };
            polled.grant = Some(grant);
            let urls: Vec<String> = match signed {
                Some(targets) => targets.iter().map(|t| format!("{base}{t}")).collect(),
                None => chosen
                    .iter()
                    .map(|f| format!("{base}{STATUS_PATH}{}{FILES_PATH}{}", job.id, f.artifact))
                    .collect(),
            };
            for (f, url) in chosen.iter().zip(urls) {
                out.push(manifest::OutputFile {
                    resource_type: f.resource_type.clone(),
                    url,
                    count: f.count,
                    sha256: f.sha256.clone(),
                    size: f.size,
                });
            }
        }
        let doc = manifest::complete(&manifest::Complete {
            transaction_time: delivery.released_at.unwrap_or(job.created_at),
            request: job.request.clone(),
            requires_access_token: self.settings.requires_access_token,
            files: out,
            batch: delivery.id.to_string(),
            manifest_sha256: delivery.manifest_sha256.clone(),
            provenance_sha256: delivery.provenance_sha256.clone(),
        });
        polled.status = "complete";
        polled.files = Some(chosen.len() as u64);
        self.auditor.emit(&caller.audit, &polled).await?;
        Ok(Status::Complete(doc))
    }

    /// Registers each member of the released batch as an artifact (through the links
    /// service: the batch gate and `artifact.registered`), and records them with the
    /// publication. When another poll recorded them first, theirs are used.
    async fn register(
        &self,
        publisher: &Publisher,
        mut publication: Publication,
        version: u64,
        delivery: &Delivery,
    ) -> Result<Vec<FileRecord>, BulkError> {
        let mut files = Vec::with_capacity(delivery.members.len());
        for m in &delivery.members {
            let body =
                RegisterBody::from_upload(m.upload, FHIR_NDJSON, Some(delivery.id.to_string()));
            let registered = self.links.register(publisher, body, &self.uploads).await?;
            files.push(FileRecord {
                artifact: registered.record.id.to_string(),
                resource_type: m.resource_type.clone(),
                count: m.records,
                size: m.size,
                sha256: m.sha256.clone(),
            });
        }
        publication.files = Some(files.clone());
        if self
            .store
            .set_files(&publication, version, now_unix())
            .await?
        {
            return Ok(files);
        }
        match self.store.publication(publication.id).await? {
            Some((p, _)) => Ok(p.files.unwrap_or(files)),
            None => Ok(files),
        }
    }
}

/// Whether the granted scope (space separated) lets the client export `types` (`None`:
/// every type, which needs a scope on every type, `system/*.read` or `system/*.rs`; a
/// client with type scopes names its types with `_type`).
fn scope_covers(scope: &str, types: Option<&[String]>) -> bool {
    let Ok(scopes) = parse_list(scope) else {
        return false;
    };
    match types {
        Some(ts) => ts
            .iter()
            .all(|t| scopes.iter().any(|s| s.allows_read_of(t))),
        None => scopes.iter().any(|s| {
            matches!(s.resource(), crate::smart::scope::Resource::Any)
                && s.allows_read_of("Patient")
        }),
    }
}

fn partner_of(principal: &str) -> Result<PartnerName, BulkError> {
    principal.parse().map_err(|_| BulkError::ClientNotPartner)
}

fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_cover_types() {
        assert!(scope_covers("system/*.read", None));
        assert!(scope_covers("system/*.rs", Some(&["Patient".into()])));
        assert!(!scope_covers("system/Patient.read", None));
        assert!(scope_covers(
            "system/Patient.read system/Observation.rs",
            Some(&["Patient".into(), "Observation".into()])
        ));
        assert!(!scope_covers(
            "system/Patient.read",
            Some(&["Observation".into()])
        ));
        assert!(!scope_covers("system/*.c", None));
        assert!(!scope_covers("", None));
    }
}
