//! Resumable uploads: the I/O side of the tus engine.
//!
//! [`Uploads`] turns tus requests into durable state. The protocol decisions are the pure
//! core's ([`crate::tus`]); this module adds what needs I/O: the upload record and chunk
//! ledger in the state store ([`store`]), the one-writer lease ([`lease`]), the bytes
//! through the at-rest appending writer (nothing is written in the clear), metadata sealed
//! as its own encrypted object, audit events ([`events`]) and the expiry sweeper.
//!
//! One PATCH, in order: parse and plan (refusals change nothing) → take the upload's lease
//! (423 when another request holds it, on any instance) → re-read the record and finish
//! any commit a crash interrupted ([`Uploads::reconcile`]) → stream the body, read on the
//! request's task, into two [`stage`]s on other threads: the chunk's digests (each byte
//! hashed once for the ledger) and the writer (which keeps the whole-file SHA-256
//! midstate, encrypted, in its tail record) → verify the declared checksum (460
//! discards the whole chunk) → write the pending record → commit (fsync) or finish the
//! object → apply the record and ledger entry → audit → release the lease → 204.
//!
//! A PATCH whose connection drops keeps what arrived when no checksum was declared and
//! discards it all when one was (the body cannot be verified).
//!
//! Not here: HTTP (the handler in `http::handlers::tus` maps requests and errors).

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use http::HeaderMap;
use http_body_util::BodyExt;

pub mod events;
pub mod lease;
pub mod source;
pub mod stage;
pub mod store;

use crate::artifact::{ArtifactError, Artifacts};
use crate::at_rest::{AtRest, AtRestError, Reopened, Writer};
use crate::audit::{AuditContext, AuditError, Auditor};
use crate::ids::OpaqueId;
use crate::tus::checksum::ChunkDigest;
use crate::tus::concat::BasePath;
use crate::tus::dates::Timestamp;
use crate::tus::ledger::{LedgerDocument, PartLedger};
use crate::tus::metadata::Metadata;
use crate::tus::plan::{self, PatchPlan};
use crate::tus::record::{ConcatKind, SealedMetadata, UploadId, UploadRecord};
use crate::tus::request::{CreateRequest, PatchRequest};
use crate::tus::{Requester, TusError, TusLimits};
use events::{
    ChecksumMismatch, ChunkAccepted, UploadCompleted, UploadCreated, UploadExpired,
    UploadTerminated,
};
use lease::{Acquired, LeaseGuard};
use stage::Stage;
use store::{Pending, StoreError, UploadStore};

pub use source::{UploadSource, UploadSourceError};

/// Settings of the upload engine (the validated `[uploads]` config section).
#[derive(Debug, Clone)]
pub struct UploadSettings {
    /// Protocol limits.
    pub limits: TusLimits,
    /// The creation URL's path.
    pub base: BasePath,
    /// How long a PATCH's lease lasts without renewal (a crashed holder blocks the upload
    /// this long at most).
    pub lease_ttl: Duration,
    /// Most unfinished uploads one principal may have.
    pub max_open_per_principal: usize,
    /// Origins allowed to call the upload endpoint from a browser (CORS).
    pub cors_origins: Vec<String>,
}

/// Everything that can go wrong with an upload request.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// A protocol refusal, with the upload's context for response headers.
    #[error("{error}")]
    Tus {
        /// The refusal.
        error: TusError,
        /// The upload's expiry, for `Upload-Expires` on the error response.
        expires: Option<Timestamp>,
    },
    /// The complete upload is registered as an artifact, which shares its encrypted object;
    /// it cannot be deleted through tus.
    #[error("the upload is registered as an artifact")]
    InUse,
    /// The principal has too many unfinished uploads.
    #[error("too many open uploads (limit {limit})")]
    TooManyOpen {
        /// The limit.
        limit: usize,
    },
    /// The client went away or sent a broken body; nothing was kept.
    #[error("the request body was interrupted")]
    BodyAborted,
    /// Stored state is unusable.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The at-rest layer failed.
    #[error(transparent)]
    AtRest(#[from] AtRestError),
    /// The audit trail failed: the action is refused (fail closed).
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// The lease was lost mid-request (the state store was unreachable for a long time).
    #[error("the upload lease was lost")]
    LeaseLost,
    /// An internal step failed that no request can cause (a worker thread stopped).
    #[error("internal error: {0}")]
    Internal(&'static str),
}

impl From<TusError> for UploadError {
    fn from(error: TusError) -> Self {
        UploadError::Tus {
            error,
            expires: None,
        }
    }
}

impl From<crate::state::StateError> for UploadError {
    fn from(e: crate::state::StateError) -> Self {
        UploadError::Store(StoreError::State(e))
    }
}

/// A refusal about `record`, carrying its expiry for `Upload-Expires` — except towards a
/// stranger, who must not learn that the upload exists, let alone when it expires
/// (ownership is not an existence oracle).
fn refusal(error: TusError, record: &UploadRecord) -> UploadError {
    let expires = match error {
        TusError::NotOwner => None,
        _ => record.expires_at,
    };
    UploadError::Tus { error, expires }
}

/// Adds `record`'s expiry to a refusal that was made without it (a busy lease).
fn with_expiry(e: UploadError, record: &UploadRecord) -> UploadError {
    match e {
        UploadError::Tus {
            error,
            expires: None,
        } => refusal(error, record),
        other => other,
    }
}

/// The result of a request that changed an upload.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The record after the request.
    pub record: UploadRecord,
}

/// The upload engine.
#[derive(Debug, Clone)]
pub struct Uploads {
    store: UploadStore,
    state: Arc<dyn crate::state::StateStore>,
    at_rest: AtRest,
    auditor: Auditor,
    /// The artifact registry, asked before a completed upload is destroyed (an artifact
    /// registered from it shares its encrypted object).
    artifacts: Artifacts,
    settings: Arc<UploadSettings>,
}

fn requester<'a>(name: &'a str, admin: bool) -> Requester<'a> {
    Requester { name, admin }
}

/// Who is asking, owned (built by the handler from the principal).
#[derive(Debug, Clone)]
pub struct Caller {
    /// The principal's name.
    pub name: String,
    /// Whether it is an admin.
    pub admin: bool,
    /// Where to attribute audit events.
    pub audit: AuditContext,
}

impl Caller {
    fn requester(&self) -> Requester<'_> {
        requester(&self.name, self.admin)
    }
}

impl Uploads {
    /// The engine.
    pub fn new(
        state: Arc<dyn crate::state::StateStore>,
        at_rest: AtRest,
        auditor: Auditor,
        artifacts: Artifacts,
        settings: UploadSettings,
    ) -> Self {
        Self {
            store: UploadStore::new(state.clone()),
            state,
            at_rest,
            auditor,
            artifacts,
            settings: Arc::new(settings),
        }
    }

    /// The settings.
    pub fn settings(&self) -> &UploadSettings {
        &self.settings
    }

    /// The record, if the upload exists (no access check).
    pub async fn record(&self, id: UploadId) -> Result<Option<UploadRecord>, UploadError> {
        Ok(self.store.get(id).await?.map(|(r, _)| r))
    }

    /// Checks that `id` is a complete upload whose object is finished, and returns what an
    /// artifact registered from it needs (see [`UploadSource`]). No access check: the
    /// caller (artifact registration, a publisher) is not the upload's owner.
    pub async fn completed_source(&self, id: UploadId) -> Result<UploadSource, UploadSourceError> {
        source::completed(&*self.state, &self.at_rest, id).await
    }

    fn limits(&self) -> &TusLimits {
        &self.settings.limits
    }

    async fn lease(&self, id: UploadId) -> Result<LeaseGuard, UploadError> {
        match LeaseGuard::acquire(
            self.state.clone(),
            format!("upload/{id}"),
            self.settings.lease_ttl,
        )
        .await?
        {
            Acquired::Held(g) => Ok(g),
            Acquired::Busy(remaining) => Err(TusError::Locked {
                retry_after_secs: remaining.as_secs().max(1),
            }
            .into()),
        }
    }

    /// Loads a record the caller may see (404 for a stranger, 410 when expired).
    async fn load_for(
        &self,
        id: UploadId,
        who: &Caller,
        now: Timestamp,
    ) -> Result<(UploadRecord, u64), UploadError> {
        let (record, version) = self.store.get(id).await?.ok_or(TusError::NotFound)?;
        plan::check_access(&record, who.requester(), now)
            .map_err(|error| refusal(error, &record))?;
        Ok((record, version))
    }

    /// The expiry of an upload `who` may see, for `Upload-Expires` on a refusal made
    /// before the record was read; `None` for a stranger or when it cannot be read (the
    /// refusal stands either way).
    async fn visible_expiry(&self, id: UploadId, who: &Caller) -> Option<Timestamp> {
        let (record, _) = self.store.get(id).await.ok()??;
        let visible = record.owner == who.name || who.admin;
        visible.then_some(record.expires_at).flatten()
    }

    // === creation ===

    /// `POST {base}`: creates an upload (and takes its first chunk, or concatenates).
    pub async fn create(
        &self,
        who: &Caller,
        headers: &HeaderMap,
        body: axum::body::Body,
    ) -> Result<Outcome, UploadError> {
        let request = CreateRequest::from_headers(headers, &self.settings.base, self.limits())?;
        let cap = self.settings.max_open_per_principal;
        if self.store.open_count(&who.name, cap).await? >= cap {
            return Err(UploadError::TooManyOpen { limit: cap });
        }
        let now = Timestamp::now();
        let id = UploadId::random();
        match request {
            CreateRequest::Final(new) => self.create_final(who, id, new, now).await,
            CreateRequest::Upload(new) => {
                let created = plan::plan_create(&new, id, who.requester(), now, self.limits())?;
                let mut record = created.record;
                record.metadata = self.seal_metadata(new.metadata.as_ref()).await?;
                // The object exists before the record, so a record always has its object.
                let writer = self.at_rest.create(id.opaque()).await?;
                let writer = if record.is_complete() {
                    // Zero length: complete at birth.
                    writer.finish().await?;
                    None
                } else {
                    Some(writer)
                };
                if !self.store.create(&record).await? {
                    return Err(UploadError::Store(StoreError::Changed));
                }
                self.auditor
                    .emit(
                        &who.audit,
                        &UploadCreated {
                            upload: id.to_string(),
                            length: record.length,
                            concat: if new.partial { "partial" } else { "none" },
                            metadata_pairs: new.metadata.as_ref().map_or(0, Metadata::len),
                        },
                    )
                    .await?;
                if record.is_complete() {
                    self.audit_completed(&who.audit, &record).await?;
                }
                match (created.body, writer) {
                    (Some(plan), Some(writer)) => {
                        let guard = self.lease(id).await?;
                        let (record, version) =
                            self.store.get(id).await?.ok_or(TusError::NotFound)?;
                        let result = self
                            .take_body(who, &guard, record.clone(), version, &plan, writer, body)
                            .await;
                        let result = match result {
                            Ok(o) => Ok(o),
                            // The client went away: the upload exists at whatever offset
                            // was kept; a resuming client finds it by its Location.
                            Err(UploadError::BodyAborted) => Ok(Outcome {
                                record: self.store.get(id).await?.ok_or(TusError::NotFound)?.0,
                            }),
                            // The first chunk was refused (checksum, length): so is the
                            // creation. The client never learns the Location, so an upload
                            // left behind would be unreachable yet count as open until it
                            // expired.
                            Err(e) => self.undo_creation(who, &record, e).await,
                        };
                        guard.release().await;
                        result
                    }
                    _ => Ok(Outcome { record }),
                }
            }
        }
    }

    /// Destroys an upload whose creation request was refused after the record was stored
    /// (under its lease), and returns the refusal without the upload's expiry.
    async fn undo_creation(
        &self,
        who: &Caller,
        record: &UploadRecord,
        refusal: UploadError,
    ) -> Result<Outcome, UploadError> {
        self.destroy(record).await?;
        self.auditor
            .emit(
                &who.audit,
                &UploadTerminated {
                    upload: record.id.to_string(),
                    offset: 0,
                    complete: false,
                },
            )
            .await?;
        Err(match refusal {
            UploadError::Tus { error, .. } => UploadError::Tus {
                error,
                expires: None,
            },
            other => other,
        })
    }

    async fn create_final(
        &self,
        who: &Caller,
        id: UploadId,
        new: crate::tus::request::NewFinal,
        now: Timestamp,
    ) -> Result<Outcome, UploadError> {
        let mut parts = Vec::with_capacity(new.parts.len());
        for part in &new.parts {
            parts.push(self.store.get(*part).await?.map(|(r, _)| r));
        }
        let refs: Vec<Option<&UploadRecord>> = parts.iter().map(Option::as_ref).collect();
        let planned =
            plan::plan_concat_final(&new, &refs, id, who.requester(), now, self.limits())?;
        let mut record = planned.record;
        record.metadata = self.seal_metadata(new.metadata.as_ref()).await?;
        let mut writer = self.at_rest.create(id.opaque()).await?;
        if !self.store.create(&record).await? {
            return Err(UploadError::Store(StoreError::Changed));
        }
        self.auditor
            .emit(
                &who.audit,
                &UploadCreated {
                    upload: id.to_string(),
                    length: record.length,
                    concat: "final",
                    metadata_pairs: new.metadata.as_ref().map_or(0, Metadata::len),
                },
            )
            .await?;
        // The final upload holds its own copy: the parts' plaintext, decrypted segment by
        // segment and re-encrypted under the final object's key, hashed in order.
        let mut hashed = 0u64;
        let mut ledgers = Vec::with_capacity(planned.parts.len());
        for (part, len) in &planned.parts {
            if let Some((record, _)) = self.store.get(*part).await? {
                let chunks = self.store.chunks(*part).await?;
                ledgers.push(
                    PartLedger::from_part(&record, chunks)
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                );
            }
            let reader = self.at_rest.open_reader(part.opaque()).await?;
            if reader.len() != *len {
                return Err(UploadError::AtRest(AtRestError::Inconsistent(
                    "a part's object length differs from its record",
                )));
            }
            let mut stream = Box::pin(reader.stream_range(0, *len)?);
            while let Some(chunk) = stream.next().await {
                let chunk = chunk?;
                hashed += chunk.len() as u64;
                writer.append(&chunk).await?;
            }
        }
        let finished = writer.finish().await?;
        let (_, version) = self.store.get(id).await?.ok_or(TusError::NotFound)?;
        if !plan::complete_final(&mut record, &finished.sha256, hashed, Timestamp::now()) {
            return Err(UploadError::AtRest(AtRestError::Inconsistent(
                "concatenated length differs from the final upload's",
            )));
        }
        self.store.set_part_ledgers(id, &ledgers).await?;
        self.store.update(&record, version).await?;
        self.audit_completed(&who.audit, &record).await?;
        Ok(Outcome { record })
    }

    async fn seal_metadata(
        &self,
        metadata: Option<&Metadata>,
    ) -> Result<Option<SealedMetadata>, UploadError> {
        let Some(metadata) = metadata else {
            return Ok(None);
        };
        // Metadata (file names are PHI) is its own encrypted object, so it shares the
        // object key hierarchy: rewrapped on KEK rotation, shredded with the upload.
        let object = OpaqueId::random();
        let mut writer = self.at_rest.create(object).await?;
        writer.append(metadata.to_header_value().as_bytes()).await?;
        writer.finish().await?;
        Ok(Some(SealedMetadata(object.as_bytes().to_vec())))
    }

    /// The upload's `Upload-Metadata` value, decrypted.
    pub async fn unseal_metadata(
        &self,
        record: &UploadRecord,
    ) -> Result<Option<String>, UploadError> {
        let Some(object) = metadata_object(record) else {
            return Ok(None);
        };
        let reader = self.at_rest.open_reader(object).await?;
        let bytes = reader.read_range(0, reader.len()).await?;
        Ok(String::from_utf8(bytes.to_vec()).ok())
    }

    // === PATCH ===

    /// `PATCH {base}{id}`: appends a chunk.
    pub async fn patch(
        &self,
        who: &Caller,
        id: UploadId,
        headers: &HeaderMap,
        body: axum::body::Body,
    ) -> Result<Outcome, UploadError> {
        let request = match PatchRequest::from_headers(headers, self.limits()) {
            Ok(r) => r,
            // A malformed PATCH is refused as such, but it is still a PATCH of an upload
            // the caller may see: its response carries `Upload-Expires` like any other.
            Err(error) => {
                let expires = self.visible_expiry(id, who).await;
                return Err(UploadError::Tus { error, expires });
            }
        };
        let now = Timestamp::now();
        // Refuse what can be refused before taking the lease.
        let (record, _) = self.load_for(id, who, now).await?;
        plan::plan_patch(&record, &request, who.requester(), now, self.limits())
            .map_err(|error| refusal(error, &record))?;
        let guard = self.lease(id).await.map_err(|e| with_expiry(e, &record))?;
        let result = self.patch_locked(who, id, &request, &guard, body).await;
        guard.release().await;
        result
    }

    async fn patch_locked(
        &self,
        who: &Caller,
        id: UploadId,
        request: &PatchRequest,
        guard: &LeaseGuard,
        body: axum::body::Body,
    ) -> Result<Outcome, UploadError> {
        let (record, version, writer) = self.reconcile(id, who).await?;
        let now = Timestamp::now();
        let plan = plan::plan_patch(&record, request, who.requester(), now, self.limits())
            .map_err(|error| refusal(error, &record))?;
        let writer = match writer {
            Some(w) => w,
            // Complete already: only an empty PATCH with the right offset gets here.
            None => return Ok(Outcome { record }),
        };
        self.take_body(who, guard, record, version, &plan, writer, body)
            .await
    }

    /// Under the lease: re-reads the record and finishes a commit a crash interrupted.
    /// Returns the record, its version and the writer (`None` when the object is finished).
    ///
    /// The pending record says what the interrupted commit meant. If the at-rest object
    /// holds exactly the bytes it names, the commit happened (the client may not have
    /// been told): apply the record and ledger entry now. Otherwise the bytes never became
    /// durable (or were applied already) and the pending record is dropped.
    async fn reconcile(
        &self,
        id: UploadId,
        who: &Caller,
    ) -> Result<(UploadRecord, u64, Option<Writer>), UploadError> {
        let (mut record, mut version) = self.store.get(id).await?.ok_or(TusError::NotFound)?;
        let mut reopened = self.at_rest.open_writer(id.opaque()).await?;
        if let Some(pending) = self.store.pending(id).await? {
            let target = pending.record.offset;
            let durable = match &reopened {
                Reopened::Open { writer, .. } => writer.committed().plaintext_len,
                Reopened::Finished(f) => f.plaintext_len,
            };
            let committed = durable == target && record.offset == pending.from_offset;
            let applied = record.offset == target
                && record.is_complete() == pending.record.is_complete()
                && record.chunks == pending.record.chunks;
            if committed && !applied {
                let mut next = pending.record.clone();
                if pending.completes {
                    // A crash inside `finish` may leave the bytes committed but the final
                    // segment unsealed: seal it now.
                    if let Reopened::Open { writer, .. } = reopened {
                        reopened = Reopened::Finished(writer.finish().await?);
                    }
                    if let Reopened::Finished(f) = &reopened {
                        next.sha256 = Some(crate::tus::record::Sha256Digest(f.sha256));
                    }
                }
                if let Some(entry) = &pending.entry {
                    self.store.put_chunk(id, entry).await?;
                }
                version = self.store.update(&next, version).await?;
                if let Some(entry) = &pending.entry {
                    self.audit_chunk(who, id, entry, false, true).await?;
                }
                if next.is_complete() {
                    self.audit_completed(&who.audit, &next).await?;
                }
                record = next;
            }
            self.store.clear_pending(id).await?;
        }
        let durable = match &reopened {
            Reopened::Open { writer, .. } => writer.committed().plaintext_len,
            Reopened::Finished(f) => f.plaintext_len,
        };
        if durable != record.offset && !record.is_final() {
            return Err(UploadError::AtRest(AtRestError::Inconsistent(
                "the upload record and its object disagree on the durable length",
            )));
        }
        let writer = match reopened {
            Reopened::Open { writer, .. } => Some(*writer),
            Reopened::Finished(_) => None,
        };
        Ok((record, version, writer))
    }

    #[allow(clippy::too_many_arguments)]
    async fn take_body(
        &self,
        who: &Caller,
        guard: &LeaseGuard,
        record: UploadRecord,
        version: u64,
        plan: &PatchPlan,
        writer: Writer,
        body: axum::body::Body,
    ) -> Result<Outcome, UploadError> {
        let id = record.id;
        // The body is read (and TLS-decrypted) on this task while two stages consume it
        // on other threads: the chunk's digests, and the at-rest writer (whole-file
        // SHA-256, AES-GCM, blob appends). See `stage`.
        let mut hasher = Stage::start(plan.hasher(), |h, bytes| {
            h.update(bytes);
            Ok::<(), std::convert::Infallible>(())
        });
        let runtime = tokio::runtime::Handle::current();
        let mut sink = Stage::start(writer, move |w: &mut Writer, bytes| {
            runtime.block_on(w.append(bytes))
        });
        // If this request is cancelled, the lease outlives it until the writer's thread
        // has returned: no other PATCH may touch the object while an append lands.
        if let Some(stopped) = sink.stopped() {
            guard.hold_until(stopped);
        }
        let mut body = body;
        let mut trailers = None;
        let mut aborted = false;
        let mut too_long = false;
        let mut lease_lost = false;
        while let Some(frame) = body.frame().await {
            let frame = match frame {
                Ok(f) => f,
                Err(_) => {
                    aborted = true;
                    break;
                }
            };
            match frame.into_data() {
                Ok(data) => {
                    if hasher.length() + data.len() as u64 > plan.max_body() {
                        too_long = true;
                        break;
                    }
                    // A stage that stopped (the writer failed) refuses more: its error
                    // comes with its state below.
                    if hasher.feed(data.clone()).await.is_err() || sink.feed(data).await.is_err() {
                        break;
                    }
                    if guard.is_lost() {
                        lease_lost = true;
                        break;
                    }
                }
                Err(frame) => {
                    if let Ok(t) = frame.into_trailers() {
                        trailers = Some(t);
                    }
                }
            }
        }
        // Both stages drain what they were fed. A stage that vanished (it panicked) takes
        // its state along; a dropped writer is rolled back by the next recovery.
        let gone = || UploadError::Internal("an upload pipeline stage stopped");
        let (mut writer, written) = sink.finish().await.map_err(|_| gone())?;
        let hasher = match hasher.finish().await {
            Ok((h, _)) => h,
            Err(_) => {
                let _ = writer.rollback().await;
                return Err(gone());
            }
        };
        if let Err(e) = written {
            let _ = writer.rollback().await;
            return Err(e.into());
        }
        if lease_lost {
            let _ = writer.rollback().await;
            return Err(UploadError::LeaseLost);
        }
        if too_long {
            writer.rollback().await?;
            return Err(refusal(plan.too_long(), &record));
        }
        let expected = if aborted {
            if !plan.keep_partial_on_abort() || hasher.length() == 0 {
                writer.rollback().await?;
                return Err(UploadError::BodyAborted);
            }
            None
        } else {
            match plan.expected_checksum(trailers.as_ref()) {
                Ok(e) => e,
                Err(error) => {
                    writer.rollback().await?;
                    return Err(refusal(error, &record));
                }
            }
        };
        let received = hasher.length();
        let digest = match hasher.finish(expected.as_ref()) {
            Ok(d) => d,
            Err(error) => {
                writer.rollback().await?;
                if let (TusError::ChecksumMismatch { .. }, Some(c)) = (&error, &expected) {
                    self.auditor
                        .emit(
                            &who.audit,
                            &ChecksumMismatch {
                                upload: id.to_string(),
                                offset: plan.start(),
                                length: received,
                                algorithm: c.algorithm().name(),
                            },
                        )
                        .await?;
                }
                return Err(refusal(error, &record));
            }
        };
        self.commit_chunk(who, record, version, plan, writer, &digest, aborted)
            .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn commit_chunk(
        &self,
        who: &Caller,
        record: UploadRecord,
        version: u64,
        plan: &PatchPlan,
        mut writer: Writer,
        digest: &ChunkDigest,
        partial_body: bool,
    ) -> Result<Outcome, UploadError> {
        let id = record.id;
        let now = Timestamp::now();
        let completes = plan.completes(&record, digest.length);
        let mut next = record.clone();
        // The real digest replaces this placeholder once the object is finished.
        let placeholder = [0u8; 32];
        let commit = plan
            .commit(
                &mut next,
                digest,
                completes.then_some(&placeholder),
                who.requester(),
                now,
                self.limits(),
            )
            .map_err(|error| refusal(error, &record))?;
        if commit.entry.is_none() && !completes && next == record {
            writer.rollback().await?;
            return Ok(Outcome { record });
        }
        // Write-ahead: say what this commit will mean before making the bytes durable.
        let pending = Pending {
            from_offset: record.offset,
            record: next.clone(),
            entry: commit.entry.clone(),
            completes,
        };
        self.store.set_pending(id, &pending).await?;
        if completes {
            let finished = writer.finish().await?;
            next.sha256 = Some(crate::tus::record::Sha256Digest(finished.sha256));
        } else {
            writer.commit().await?;
        }
        if let Some(entry) = &commit.entry {
            self.store.put_chunk(id, entry).await?;
        }
        self.store.update(&next, version).await?;
        self.store.clear_pending(id).await?;
        if let Some(entry) = &commit.entry {
            self.audit_chunk(who, id, entry, partial_body, false)
                .await?;
        }
        if commit.completed {
            self.audit_completed(&who.audit, &next).await?;
        }
        Ok(Outcome { record: next })
    }

    async fn audit_chunk(
        &self,
        who: &Caller,
        id: UploadId,
        entry: &crate::tus::ledger::ChunkEntry,
        partial_body: bool,
        recovered: bool,
    ) -> Result<(), UploadError> {
        self.auditor
            .emit(
                &who.audit,
                &ChunkAccepted {
                    upload: id.to_string(),
                    index: entry.index,
                    offset: entry.offset,
                    length: entry.length,
                    sha256: entry.sha256.to_string(),
                    checksum_verified: entry.checksum_verified.map(|a| a.name()),
                    partial_body,
                    recovered,
                },
            )
            .await?;
        Ok(())
    }

    async fn audit_completed(
        &self,
        ctx: &AuditContext,
        record: &UploadRecord,
    ) -> Result<(), UploadError> {
        self.auditor
            .emit(
                ctx,
                &UploadCompleted {
                    upload: record.id.to_string(),
                    length: record.offset,
                    sha256: record.sha256.map(|d| d.to_string()).unwrap_or_default(),
                    chunks: record.chunks,
                    parts: match &record.concat {
                        ConcatKind::Final { parts } => {
                            parts.iter().map(ToString::to_string).collect()
                        }
                        _ => Vec::new(),
                    },
                },
            )
            .await?;
        Ok(())
    }

    // === HEAD, DELETE, ledger ===

    /// `HEAD {base}{id}`: the record after finishing any interrupted commit.
    pub async fn head(
        &self,
        who: &Caller,
        id: UploadId,
    ) -> Result<(UploadRecord, Option<String>), UploadError> {
        let now = Timestamp::now();
        let (mut record, _) = self.load_for(id, who, now).await?;
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
        let (record, _) = self.load_for(id, who, now).await?;
        if record.is_complete() && self.registered_as_artifact(id).await? {
            return Err(UploadError::InUse);
        }
        let guard = self.lease(id).await.map_err(|e| with_expiry(e, &record))?;
        let result = self.destroy(&record).await;
        guard.release().await;
        result?;
        self.auditor
            .emit(
                &who.audit,
                &UploadTerminated {
                    upload: id.to_string(),
                    offset: record.offset,
                    complete: record.is_complete(),
                },
            )
            .await?;
        Ok(())
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

    async fn destroy(&self, record: &UploadRecord) -> Result<(), UploadError> {
        let id = record.id;
        // Keys first: once the wrapped DEKs are gone the ciphertext is unrecoverable.
        self.at_rest.delete(id.opaque()).await?;
        if let Some(meta) = metadata_object(record) {
            self.at_rest.delete(meta).await?;
        }
        self.store.delete_chunks(id).await?;
        self.store.delete_part_ledgers(id).await?;
        self.store.clear_pending(id).await?;
        self.store.delete(id).await?;
        Ok(())
    }

    /// `GET {base}{id}/ledger`: the chunk ledger document.
    pub async fn ledger(&self, who: &Caller, id: UploadId) -> Result<LedgerDocument, UploadError> {
        let now = Timestamp::now();
        let (record, _) = self.load_for(id, who, now).await?;
        let mut chunks = self.store.chunks(id).await?;
        // A commit writes the chunk's ledger entry before the record that counts it, so
        // between the two (a PATCH in progress, or a crash there until the next PATCH or
        // HEAD finishes the commit) an entry may be ahead of the record: show what the
        // record accounts for.
        chunks.retain(|c| c.index < record.chunks);
        // A final upload keeps the copy of its parts' ledgers taken at concatenation, so
        // deleting a part later does not change the final's ledger.
        let mut parts = Vec::new();
        if let ConcatKind::Final { parts: ids } = &record.concat {
            match self.store.part_ledgers(id).await? {
                Some(copy) => parts = copy,
                // Not concatenated yet: the parts' live ledgers.
                None => {
                    for part in ids {
                        if let Some((p, _)) = self.store.get(*part).await? {
                            let chunks = self.store.chunks(*part).await?;
                            parts.push(
                                PartLedger::from_part(&p, chunks)
                                    .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                            );
                        }
                    }
                }
            }
        }
        LedgerDocument::build(&record, chunks, parts)
            .map_err(|e| UploadError::Store(StoreError::Corrupt(e.to_string())))
    }

    // === expiry ===

    /// Deletes every expired unfinished upload whose lease is free; returns how many.
    pub async fn sweep_expired(&self) -> Result<usize, UploadError> {
        let now = Timestamp::now();
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
                if !record.is_expired(now) {
                    continue;
                }
                let Ok(guard) = self.lease(id).await else {
                    continue;
                };
                let result = self.destroy(&record).await;
                guard.release().await;
                result?;
                self.auditor
                    .emit(
                        &AuditContext::system(),
                        &UploadExpired {
                            upload: id.to_string(),
                            offset: record.offset,
                            owner: record.owner.clone(),
                        },
                    )
                    .await?;
                swept += 1;
            }
            after = Some(last);
        }
    }
}

fn metadata_object(record: &UploadRecord) -> Option<OpaqueId> {
    let bytes: [u8; 16] = record.metadata.as_ref()?.0.as_slice().try_into().ok()?;
    Some(OpaqueId::from_bytes(bytes))
}
