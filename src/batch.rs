//! Batches: manifest-checked packages of files, fail-closed quarantine with a findings
//! report, and a release workflow (`proto/batches-v1.md`, `docs/batches.md`).
//!
//! The service [`Batches`] owns every batch flow from a parsed request to a typed outcome,
//! and audits inside it (`docs/architecture.md`, "One shape for every flow"):
//!
//! * `open` (this file) — parse the envelope, the manifest and the provenance record (the
//!   pure [`crate::manifest`] core), apply the profile's rules ([`profile`]), store both
//!   documents encrypted and byte for byte, record the batch, audit `batch.opened`;
//! * admission ([`admission`]) — the upload engine's [`crate::upload::Membership`] port: a
//!   tus upload naming `batch` and `member` is admitted (or refused) before it exists;
//! * `seal` and the verification runner ([`seal`]) — stream each member's stored bytes
//!   back through decryption, SHA-256 and the NDJSON checker ([`ndjson`]), keep each
//!   member's facts as soon as they are known (a restart resumes), then the pure
//!   [`verdict`] decides `released` or `quarantined` and the report is stored;
//! * release (with four eyes) and purge ([`review`]);
//! * expiry, retention and resuming interrupted seals ([`sweep`]);
//! * the gate other services ask before anything of a member leaves ([`gate`]);
//! * what a delivering service (FHIR Bulk) may learn of a batch ([`delivery`]).
//!
//! Pure cores: [`ndjson`], [`verdict`], [`profile`]. Storage: [`store`], [`record`].
//! Configuration (`[batches]`, `[[profiles]]`): [`config`].
//!
//! Layering: `batch` uses the upload engine (to read and destroy member uploads) and is
//! used by `links` (the gate). The upload engine does not know this module: it asks the
//! [`crate::upload::Membership`] port, which [`admission::Admission`] implements over the
//! same [`store::BatchStore`]; `app::build` wires both.
//! Not here: HTTP (`http::handlers::batches`) and the error table's rows
//! (`http::problem::batch`).

use std::sync::Arc;

use serde::Deserialize;
use serde_json::value::RawValue;

pub mod admission;
pub mod config;
pub mod delivery;
pub mod events;
pub mod gate;
pub mod ndjson;
pub mod profile;
pub mod record;
pub mod review;
pub mod seal;
pub mod store;
pub mod sweep;
pub mod verdict;
pub mod view;

pub use config::BatchSettings;
pub use record::{BatchId, BatchRecord, BatchState};

use crate::at_rest::AtRestError;
use crate::audit::{AuditContext, AuditError, Auditor};
use crate::grant::now_unix;
use crate::manifest::{Manifest, ManifestError, Provenance};
use crate::state::{Expect, IndexEntry, StateError};
use crate::upload::{UploadError, Uploads};
use events::{BatchOpened, ChangeRequested};
use record::{BATCH_RECORD_VERSION, BatchRecordError};
use store::{BatchStore, INDEX_OWNER, INDEX_STATE, StoreError};

/// Who is asking, as the service needs to know it.
#[derive(Debug, Clone)]
pub struct Who {
    /// The principal's name.
    pub name: String,
    /// Holds the `auditor` role.
    pub auditor: bool,
    /// Holds the `admin` role.
    pub admin: bool,
    /// Where to attribute audit events.
    pub audit: AuditContext,
}

impl Who {
    fn may_read(&self, record: &BatchRecord) -> bool {
        self.admin || self.auditor || record.owner == self.name
    }

    fn may_write(&self, record: &BatchRecord) -> bool {
        self.admin || record.owner == self.name
    }
}

/// Which of the two documents an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentKind {
    /// The manifest.
    Manifest,
    /// The provenance record.
    Provenance,
}

/// Every way a batch request can fail.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// The body is not `{"manifest": …, "provenance": …}`: `reason` is `not_utf8`,
    /// `not_an_object` or `malformed`; `detail` says where.
    #[error("the body is not an object with manifest and provenance: {detail}")]
    BadRequest {
        /// A stable reason code.
        reason: &'static str,
        /// Where (a byte offset, or a line and column).
        detail: String,
    },
    /// A document breaks its format (`proto/manifest-v1.md`).
    #[error("the {kind:?} is invalid: {error}")]
    Document {
        /// Which document.
        kind: DocumentKind,
        /// What is wrong, and where.
        error: ManifestError,
    },
    /// The manifest names a profile that is not configured.
    #[error("the manifest names a profile that is not configured")]
    UnknownProfile,
    /// The documents break the profile's rules.
    #[error("the batch breaks its profile's rules")]
    ProfileViolation(Vec<profile::Violation>),
    /// No such batch, or one the caller may not see.
    #[error("no such batch")]
    NotFound,
    /// The batch is not open (sealing, verified, purged or expired).
    #[error("the batch is not open")]
    NotOpen,
    /// The batch has no verdict yet.
    #[error("the batch has not been verified yet")]
    NotVerified,
    /// No provenance record was given when the batch was opened.
    #[error("the batch has no provenance record")]
    NoProvenance,
    /// A reason is required (1–1000 characters).
    #[error("a reason of 1 to 1000 characters is required")]
    ReasonRequired,
    /// Only a quarantined batch can be released.
    #[error("the batch is not quarantined")]
    NotQuarantined,
    /// This principal already approved the release.
    #[error("this principal already approved the release")]
    AlreadyApproved,
    /// Only a verified or expired batch can be purged.
    #[error("the batch cannot be purged in its state")]
    NotPurgeable,
    /// A list query is malformed.
    #[error("the query is malformed")]
    BadQuery,
    /// Concurrent changes kept winning.
    #[error("the batch is busy; retry")]
    Busy,
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The upload engine failed (reading or destroying members).
    #[error(transparent)]
    Upload(#[from] UploadError),
    /// The audit trail failed: the action is refused (fail closed).
    #[error(transparent)]
    Audit(#[from] AuditError),
}

impl From<StateError> for BatchError {
    fn from(e: StateError) -> Self {
        BatchError::Store(StoreError::State(e))
    }
}

impl From<AtRestError> for BatchError {
    fn from(e: AtRestError) -> Self {
        BatchError::Store(StoreError::AtRest(e))
    }
}

impl From<BatchRecordError> for BatchError {
    fn from(e: BatchRecordError) -> Self {
        BatchError::Store(StoreError::Record(e))
    }
}

/// The body of `POST /v1/batches`: each document kept as the exact bytes sent.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OpenBody<'a> {
    #[serde(borrow)]
    manifest: &'a RawValue,
    #[serde(borrow, default)]
    provenance: Option<&'a RawValue>,
}

/// A page of batches.
#[derive(Debug, Clone)]
pub struct Page {
    /// The batches.
    pub batches: Vec<BatchRecord>,
    /// The id to pass as `after` for the next page.
    pub next: Option<String>,
}

/// What `GET /v1/batches` asks.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// Only batches in this state.
    pub state: Option<BatchState>,
    /// After this id.
    pub after: Option<String>,
    /// At most this many (1..=500).
    pub limit: usize,
}

impl ListQuery {
    /// Parses `state=…&after=…&limit=…`.
    pub fn parse(query: &str) -> Result<Self, BatchError> {
        let mut q = ListQuery {
            limit: 100,
            ..Default::default()
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').ok_or(BatchError::BadQuery)?;
            match k {
                "state" => q.state = Some(BatchState::parse(v).ok_or(BatchError::BadQuery)?),
                "after" => {
                    let id: BatchId = v.parse().map_err(|_| BatchError::BadQuery)?;
                    q.after = Some(id.to_string());
                }
                "limit" => {
                    q.limit = v
                        .parse()
                        .ok()
                        .filter(|n| (1..=500).contains(n))
                        .ok_or(BatchError::BadQuery)?;
                }
                _ => return Err(BatchError::BadQuery),
            }
        }
        Ok(q)
    }
}

/// The batch service.
#[derive(Debug, Clone)]
pub struct Batches {
    store: BatchStore,
    auditor: Auditor,
    uploads: Uploads,
    settings: Arc<BatchSettings>,
    running: Arc<std::sync::Mutex<std::collections::HashSet<BatchId>>>,
}

impl Batches {
    /// The service. `store` is shared with the [`admission::Admission`] port the upload
    /// engine was built with.
    pub fn new(
        store: BatchStore,
        auditor: Auditor,
        uploads: Uploads,
        settings: BatchSettings,
    ) -> Self {
        Self {
            store,
            auditor,
            uploads,
            settings: Arc::new(settings),
            running: Arc::default(),
        }
    }

    /// The settings.
    pub fn settings(&self) -> &BatchSettings {
        &self.settings
    }

    /// Largest `POST /v1/batches` body: both documents at their limits, plus the envelope.
    pub fn max_open_body(&self) -> u64 {
        self.settings.max_request_bytes as u64
    }

    /// `POST /v1/batches`: opens a batch with its manifest and provenance.
    pub async fn open(&self, who: &Who, body: &[u8]) -> Result<BatchRecord, BatchError> {
        if let Err(e) = std::str::from_utf8(body) {
            let at = e.valid_up_to();
            return Err(BatchError::BadRequest {
                reason: "not_utf8",
                detail: format!("the body is not UTF-8 (byte {at})"),
            });
        }
        // A struct also deserialises from a JSON array; the envelope is an object only.
        if body.trim_ascii_start().first() != Some(&b'{') {
            return Err(BatchError::BadRequest {
                reason: "not_an_object",
                detail: "the body is not a JSON object".into(),
            });
        }
        let envelope: OpenBody<'_> =
            serde_json::from_slice(body).map_err(|e| BatchError::BadRequest {
                reason: "malformed",
                detail: format!(
                    "line {}, column {}: not {{\"manifest\": …, \"provenance\": …}}",
                    e.line(),
                    e.column()
                ),
            })?;
        let limits = &self.settings.limits;
        let manifest_bytes = envelope.manifest.get().as_bytes();
        let manifest =
            Manifest::parse(manifest_bytes, limits).map_err(|error| BatchError::Document {
                kind: DocumentKind::Manifest,
                error,
            })?;
        let provenance_bytes = envelope.provenance.map(|p| p.get().as_bytes());
        let provenance = provenance_bytes
            .map(|b| Provenance::parse(b, limits))
            .transpose()
            .map_err(|error| BatchError::Document {
                kind: DocumentKind::Provenance,
                error,
            })?;
        let profile_name = manifest.profile().map(|p| p.as_str().to_owned());
        if let Some(name) = &profile_name {
            let profile = self
                .settings
                .profile(name)
                .ok_or(BatchError::UnknownProfile)?;
            let violations = profile::check(profile, &manifest, provenance.as_ref());
            if !violations.is_empty() {
                return Err(BatchError::ProfileViolation(violations));
            }
        }
        let id = BatchId::random();
        let manifest_doc = self.store.put_document(manifest_bytes).await?;
        let provenance_doc = match provenance_bytes {
            Some(b) => Some(self.store.put_document(b).await?),
            None => None,
        };
        let now = now_unix();
        let record = BatchRecord {
            v: BATCH_RECORD_VERSION,
            id,
            owner: who.name.clone(),
            state: BatchState::Open,
            profile: profile_name,
            created_at: now,
            expires_at: Some(now.saturating_add(self.settings.open_ttl.as_secs())),
            manifest: manifest_doc,
            provenance: provenance_doc,
            listed: manifest.members().len() as u64,
            listed_bytes: manifest.listed_bytes(),
            sealed: None,
            progress: None,
            verdict: None,
            approvals: Vec::new(),
            released: None,
            retain_until: None,
            purged: None,
            shredded_at: None,
        };
        if !self.store.put(&record, Expect::Absent).await? {
            return Err(BatchError::Busy);
        }
        let event = BatchOpened {
            batch: id.to_string(),
            manifest_sha256: record.manifest.sha256.clone(),
            provenance_sha256: record.provenance.as_ref().map(|d| d.sha256.clone()),
            members: record.listed,
            bytes: record.listed_bytes,
            profile: record.profile.clone(),
        };
        if let Err(e) = self.auditor.emit(&who.audit, &event).await {
            // Undone: nobody learnt the id, and the trail does not name the batch.
            if let Err(undo) = self.store.forget(&record).await {
                tracing::error!(error = %undo, batch = %id, "could not undo an unaudited batch");
            }
            return Err(e.into());
        }
        Ok(record)
    }

    /// `GET /v1/batches/{id}`.
    pub async fn get(&self, who: &Who, id: BatchId) -> Result<BatchRecord, BatchError> {
        let (record, _) = self.store.get(id).await?.ok_or(BatchError::NotFound)?;
        if !who.may_read(&record) {
            return Err(BatchError::NotFound);
        }
        Ok(record)
    }

    /// `GET /v1/batches/{id}/manifest` and `…/provenance`: the exact bytes and their digest.
    pub async fn document(
        &self,
        who: &Who,
        id: BatchId,
        kind: DocumentKind,
    ) -> Result<(bytes::Bytes, String), BatchError> {
        let record = self.get(who, id).await?;
        let doc = match kind {
            DocumentKind::Manifest => &record.manifest,
            DocumentKind::Provenance => {
                record.provenance.as_ref().ok_or(BatchError::NoProvenance)?
            }
        };
        Ok((self.store.read_document(doc).await?, doc.sha256.clone()))
    }

    /// `GET /v1/batches/{id}/report`: the report's exact bytes and their digest.
    pub async fn report(
        &self,
        who: &Who,
        id: BatchId,
    ) -> Result<(bytes::Bytes, String), BatchError> {
        let record = self.get(who, id).await?;
        let verdict = record.verdict.as_ref().ok_or(BatchError::NotVerified)?;
        Ok((
            self.store.read_document(&verdict.report).await?,
            verdict.report.sha256.clone(),
        ))
    }

    /// `GET /v1/batches`: the caller's batches (auditors and admins: all).
    pub async fn list(&self, who: &Who, query: &ListQuery) -> Result<Page, BatchError> {
        let everyone = who.auditor || who.admin;
        let entry = match (everyone, query.state) {
            (false, _) => Some(IndexEntry::new(INDEX_OWNER, who.name.clone())),
            (true, Some(s)) => Some(IndexEntry::new(INDEX_STATE, s.as_str())),
            (true, None) => None,
        };
        let mut batches = Vec::new();
        let mut after = query.after.clone();
        // Owners filter by state after the index; scan on until the page is full.
        loop {
            let ids = self
                .store
                .list(entry.clone(), after.as_deref(), query.limit)
                .await?;
            let exhausted = ids.len() < query.limit;
            for text in &ids {
                after = Some(text.clone());
                let Ok(id) = text.parse::<BatchId>() else {
                    continue;
                };
                if let Some((r, _)) = self.store.get(id).await?
                    && query.state.is_none_or(|s| s == r.state)
                    && who.may_read(&r)
                {
                    batches.push(r);
                    if batches.len() == query.limit {
                        return Ok(Page {
                            batches,
                            next: after,
                        });
                    }
                }
            }
            if exhausted {
                return Ok(Page {
                    batches,
                    next: None,
                });
            }
        }
    }

    /// Writes the intent entry `batch.change_requested` before a state change: when it
    /// cannot be written the change is refused (503) and nothing changes.
    pub(crate) async fn audit_change(
        &self,
        audit: &AuditContext,
        id: BatchId,
        change: &'static str,
        from: BatchState,
        reason: Option<&str>,
    ) -> Result<(), BatchError> {
        let event = ChangeRequested {
            batch: id.to_string(),
            change,
            from: from.as_str(),
            reason: reason.map(str::to_owned),
        };
        self.auditor.emit(audit, &event).await?;
        Ok(())
    }

    /// Loads `id` for a change by `who` (owner or admin), or `NotFound`.
    async fn load_for_write(
        &self,
        who: &Who,
        id: BatchId,
    ) -> Result<(BatchRecord, u64), BatchError> {
        let (record, version) = self.store.get(id).await?.ok_or(BatchError::NotFound)?;
        if !who.may_write(&record) {
            return Err(BatchError::NotFound);
        }
        Ok((record, version))
    }

    /// Applies `change` to the stored record with compare-and-swap, retrying on a lost
    /// race; `change` returns `Ok(false)` to leave the record as it is.
    async fn update<F>(&self, id: BatchId, mut change: F) -> Result<BatchRecord, BatchError>
    where
        F: FnMut(&mut BatchRecord) -> Result<bool, BatchError>,
    {
        for _ in 0..16 {
            let (mut record, version) = self.store.get(id).await?.ok_or(BatchError::NotFound)?;
            if !change(&mut record)? {
                return Ok(record);
            }
            if self.store.put(&record, Expect::Version(version)).await? {
                return Ok(record);
            }
        }
        Err(BatchError::Busy)
    }
}
