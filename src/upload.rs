//! Resumable uploads: the I/O side of the tus engine.
//!
//! [`Uploads`] turns tus requests into durable state. The protocol decisions are the pure
//! core's (the `tus` module: it parses the request headers and plans each request against
//! the stored record); this module adds what needs I/O: the upload record and chunk ledger
//! in the state store ([`store`]), the one-writer lease ([`lease`]), the bytes through the
//! at-rest appending writer (nothing is written in the clear), metadata sealed as its own
//! encrypted object (`metadata.rs`), audit events ([`events`]) and the expiry sweeper.
//!
//! # Layout
//!
//! * this file: [`Uploads`], its settings, [`UploadError`], [`Caller`], [`Outcome`] and the
//!   helpers every flow shares (loading a record the caller may see, the lease);
//! * `create.rs`: `POST` — creation, creation-with-upload, the final upload of a
//!   concatenation, and undoing a creation whose first chunk was refused;
//! * `patch.rs`: `PATCH` — the lease, reconciling an interrupted commit, taking the body,
//!   committing the chunk, and the chunk and completion audit events;
//! * `lifecycle.rs`: `HEAD`, `DELETE`, destroying an upload, the expiry sweeper, and
//!   [`Uploads::completed_source`];
//! * [`ledger`]: the ledger document, streamed page by page from the state store;
//! * [`source`]: what a completed upload contributes to an artifact, and the check (a leaf
//!   the artifact side may name without depending on the engine);
//! * `metadata.rs`: sealing and unsealing `Upload-Metadata`;
//! * [`quota`]: the per-principal byte quota (reserved atomically in the state store,
//!   given back when an upload is destroyed or an artifact takes its object);
//! * [`store`], [`lease`], [`stage`], [`events`]: the state-store layout, the lease, the
//!   body pipeline's threads, the audit events;
//! * `tests.rs`: the engine over real stores in a temporary directory.
//!
//! One PATCH, in order: parse and plan (refusals change nothing) → take the upload's lease
//! (423 when another request holds it, on any instance) → re-read the record and finish
//! any commit a crash interrupted (`Uploads::reconcile`) → stream the body, read on the
//! request's task, into two [`stage`]s on other threads: the chunk's digests (each byte
//! hashed once for the ledger) and the writer (which keeps the whole-file SHA-256
//! midstate, encrypted, in its tail record) → verify the declared checksum (460
//! discards the whole chunk) → write the pending record (without a sync of its own: the
//! same content goes into the object's commit point as its commit note) → commit the
//! object (data sync, then the tail record with the note) or finish it → apply the record
//! and ledger entry (one durable commit, which also makes the pending record durable) →
//! audit → release the lease → 204.
//! (`patch.rs` holds all of it; a creation with a body takes the new upload's lease and
//! runs the same steps from streaming the body on.)
//!
//! A PATCH whose connection drops keeps what arrived when no checksum was declared and
//! discards it all when one was (the body cannot be verified).
//!
//! The body is any [`http_body::Body`] of [`bytes::Bytes`]; this module knows no HTTP
//! framework.
//!
//! Not here: HTTP. The handler in `http::handlers::tus` authenticates the caller, passes
//! the request's headers and body through, and turns an [`Outcome`] into a response;
//! `http::problem` maps [`UploadError`] to a problem response.

use std::sync::Arc;
use std::time::Duration;

mod create;
pub mod events;
pub mod lease;
pub mod ledger;
mod lifecycle;
pub mod membership;
mod metadata;
mod patch;
pub mod quota;
pub mod source;
pub mod stage;
pub mod store;
#[cfg(test)]
mod tests;

pub use lifecycle::HeldUpload;
pub use membership::{MemberClaim, Membership, MembershipError};
pub use source::{UploadSource, UploadSourceError};

use crate::artifact::Artifacts;
use crate::at_rest::{AtRest, AtRestError};
use crate::audit::{AuditContext, AuditError, Auditor};
use crate::tus::concat::BasePath;
use crate::tus::dates::Timestamp;
use crate::tus::plan;
use crate::tus::record::{UploadId, UploadRecord};
use crate::tus::{Requester, TusError, TusLimits};
use lease::{Acquired, LeaseGuard};
use store::{StoreError, UploadStore};

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
    /// Longest wait for the next piece of a request body: a PATCH (or creation-with-upload)
    /// whose body stalls this long is ended with 408; the bytes before the stall are kept.
    pub body_timeout: Duration,
    /// The slowest a request body may arrive on average, in bytes per second (0: no
    /// floor): its whole-body deadline is `body_timeout` plus one second per this many
    /// bytes received, so a client trickling a byte just within `body_timeout` cannot hold
    /// an upload, its lease and a connection for ever.
    pub min_body_rate: u64,
    /// A complete upload that was never registered as an artifact nor held by a batch is
    /// destroyed this long after it completed (audited `upload.retired`).
    pub completed_retention: Duration,
    /// Most unfinished uploads one principal may have.
    pub max_open_per_principal: usize,
    /// Most bytes of uploads one principal may hold at once (see [`quota`]).
    pub max_bytes_per_principal: u64,
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
    /// The upload would take its owner's stored bytes past `uploads.max_bytes_per_principal`
    /// (at creation: its declared length; while its length is deferred: each chunk).
    /// Nothing was stored.
    #[error("storage quota exceeded ({used} of {limit} bytes used, {requested} requested)")]
    QuotaExceeded {
        /// The quota, in bytes.
        limit: u64,
        /// Bytes the owner's uploads hold already.
        used: u64,
        /// Bytes this request asked for.
        requested: u64,
    },
    /// The caller's bounds allow no more uploads (an invitation's `max_files`).
    #[error("the upload limit of {limit} files is reached")]
    FileLimit {
        /// The limit.
        limit: u64,
    },
    /// The caller's bounds name a batch, and the upload does not claim to be its member.
    #[error("uploads through this invitation must be members of its batch")]
    BatchRequired,
    /// The principal has too many unfinished uploads.
    #[error("too many open uploads (limit {limit})")]
    TooManyOpen {
        /// The limit.
        limit: usize,
    },
    /// The upload's batch membership was refused (at creation), or a sealed batch holds
    /// it (at termination).
    #[error(transparent)]
    Member(#[from] MembershipError),
    /// The client went away or sent a broken body; nothing was kept.
    #[error("the request body was interrupted")]
    BodyAborted,
    /// No body bytes came for `uploads.body_timeout`; the bytes before the stall were kept
    /// (the upload's offset is now `offset`).
    #[error("the request body stalled for {secs} s")]
    BodyStalled {
        /// The configured timeout, in seconds.
        secs: u64,
        /// The upload's offset after the bytes that arrived were kept.
        offset: u64,
    },
    /// The body arrived slower on average than `uploads.min_body_rate`; the bytes that
    /// arrived were kept (the upload's offset is now `offset`).
    #[error("the request body arrived slower than {min_rate} bytes/s")]
    BodyTooSlow {
        /// The configured floor, in bytes per second.
        min_rate: u64,
        /// The upload's offset after the bytes that arrived were kept.
        offset: u64,
    },
    /// Stored state is unusable.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The at-rest layer failed.
    #[error(transparent)]
    AtRest(#[from] AtRestError),
    /// The audit trail failed: the action is refused (fail closed).
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// The chunk is durable and the upload's offset advanced, but its audit entries could
    /// not be written: they are pending, and the next HEAD or PATCH of the upload writes
    /// them (marked recovered) before anything else (the client should HEAD, then resume).
    #[error("the chunk is stored but its audit entries are pending: {0}")]
    AuditPending(AuditError),
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
    /// The batch side of membership, when batches are wired in.
    membership: Option<Arc<dyn Membership>>,
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
    /// Limits beyond the gateway's per-principal ones (an upload invitation's); `None`
    /// for API clients.
    pub bounds: Option<UploadBounds>,
}

/// What a bounded caller (an upload invitation) may create. The engine enforces them at
/// creation, atomically across instances: the byte limit replaces
/// `uploads.max_bytes_per_principal` for the caller's uploads (bytes *held*, as that
/// quota counts them: given back when an upload is destroyed), and the file limit counts
/// uploads *created* (a bounded counter in [`FILES`], given back only when the caller
/// itself terminates one, or when a creation is undone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadBounds {
    /// Most bytes the caller's uploads may hold.
    pub max_bytes: u64,
    /// Most uploads the caller may create.
    pub max_files: u64,
    /// The batch every upload must claim membership of (`batch` in `Upload-Metadata`).
    pub batch: Option<String>,
}

/// Uploads created by a bounded caller, a counter per principal name.
pub const FILES: crate::state::Namespace = crate::state::Namespace::new("upload_files");

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
            membership: None,
            settings: Arc::new(settings),
        }
    }

    /// The engine with batch membership: uploads may name a batch and a member.
    pub fn with_membership(mut self, membership: Arc<dyn Membership>) -> Self {
        self.membership = Some(membership);
        self
    }

    /// Admits `id` as the member `claim` names, if it names one (before anything of the
    /// upload exists, so a refusal changes nothing). `length` is the declared length.
    async fn admit_member(
        &self,
        who: &Caller,
        claim: Option<&MemberClaim>,
        id: UploadId,
        length: Option<u64>,
    ) -> Result<(), UploadError> {
        let Some(claim) = claim else {
            return Ok(());
        };
        let membership = self
            .membership
            .as_ref()
            .ok_or(MembershipError::Unavailable)?;
        let now = Timestamp::now();
        let mut dead = Vec::new();
        for bound in membership.bound(who, claim).await? {
            match self.store.get(bound).await? {
                Some((record, _)) if !record.is_expired(now) => {
                    return Err(MembershipError::Exists.into());
                }
                _ => dead.push(bound),
            }
        }
        membership.admit(who, claim, id, length, &dead).await?;
        Ok(())
    }

    /// Whether a sealed batch holds `id` (so it must stay).
    async fn held_by_batch(&self, id: UploadId) -> Result<bool, UploadError> {
        match &self.membership {
            Some(m) => Ok(m.held(id).await?),
            None => Ok(false),
        }
    }

    /// Takes one of a bounded caller's files (nothing for an unbounded caller), or
    /// refuses with [`UploadError::FileLimit`] changing nothing. `true` when one was taken.
    async fn take_file(&self, who: &Caller) -> Result<bool, UploadError> {
        let Some(bounds) = &who.bounds else {
            return Ok(false);
        };
        let limit = i64::try_from(bounds.max_files).unwrap_or(i64::MAX);
        match self
            .state
            .counter_add(FILES, &who.name, 1, Some(limit))
            .await?
        {
            crate::state::CounterOutcome::Applied(_) => Ok(true),
            crate::state::CounterOutcome::LimitReached(_) => Err(UploadError::FileLimit {
                limit: bounds.max_files,
            }),
        }
    }

    /// Gives a file back to a bounded caller. Never fails: a release that cannot be
    /// written leaves it counted (the caller has fewer, never more).
    async fn give_file(&self, who: &Caller) {
        if who.bounds.is_none() {
            return;
        }
        match self.state.counter_add(FILES, &who.name, -1, None).await {
            Ok(crate::state::CounterOutcome::Applied(v)) if v < 0 => {
                if let Err(e) = self.state.counter_add(FILES, &who.name, -v, None).await {
                    tracing::warn!(error = %e, "could not correct an upload file counter");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "could not give back an upload file"),
        }
    }

    /// Uploads a bounded caller named `owner` has created (minus those it terminated),
    /// and the bytes its uploads hold.
    pub async fn usage(&self, owner: &str) -> Result<(u64, u64), UploadError> {
        let files = u64::try_from(self.state.counter_get(FILES, owner).await?).unwrap_or(0);
        Ok((files, self.bytes_held(owner).await?))
    }

    /// The settings.
    pub fn settings(&self) -> &UploadSettings {
        &self.settings
    }

    /// The record, if the upload exists (no access check).
    pub async fn record(&self, id: UploadId) -> Result<Option<UploadRecord>, UploadError> {
        Ok(self.store.get(id).await?.map(|(r, _)| r))
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

    /// The principal's creation slot: held from counting its open uploads until the new
    /// record is stored, so that concurrent creations (on any instance) cannot all pass
    /// the `max_open_per_principal` check before any of them is counted. Creations by the
    /// same principal wait for each other briefly (a record insert); other principals are
    /// not affected.
    async fn creation_slot(&self, principal: &str) -> Result<LeaseGuard, UploadError> {
        let name = format!("upload-create/{principal}");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            match LeaseGuard::acquire(self.state.clone(), name.clone(), self.settings.lease_ttl)
                .await?
            {
                Acquired::Held(g) => return Ok(g),
                Acquired::Busy(_) if std::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Acquired::Busy(remaining) => {
                    return Err(TusError::Locked {
                        retry_after_secs: remaining.as_secs().max(1),
                    }
                    .into());
                }
            }
        }
    }

    /// Loads a record the caller may see (404 for a stranger, 410 when expired).
    /// A stranger's attempt is audited (`upload.access_denied`, naming `attempted`) and
    /// answered exactly like a missing upload.
    async fn load_for(
        &self,
        id: UploadId,
        who: &Caller,
        now: Timestamp,
        attempted: &'static str,
    ) -> Result<(UploadRecord, u64), UploadError> {
        let (record, version) = self.store.get(id).await?.ok_or(TusError::NotFound)?;
        if let Err(error) = plan::check_access(&record, who.requester(), now) {
            if matches!(error, TusError::NotOwner) {
                let event = events::UploadAccessDenied {
                    upload: id.to_string(),
                    attempted,
                };
                // Failing closed here would tell the stranger the upload exists (a 5xx
                // instead of the 404 a missing upload gets): the refusal stands, logged.
                if let Err(e) = self.auditor.emit(&who.audit, &event).await {
                    tracing::warn!(error = %e, "could not audit a refused upload access");
                }
            }
            return Err(refusal(error, &record));
        }
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
}
