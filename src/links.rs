//! The signed-link service: everything the link and download handlers share.
//!
//! [`Links`] holds the link keyring (built from `[links]`, see [`keys`]), the grant store
//! and its meters ([`crate::grant`]), the artifact registry and import directory
//! ([`crate::artifact`]), the at-rest store downloads are decrypted from, the per-client
//! limiter of forged links ([`limiter`]) and a short-lived cache of artifact records and
//! open readers ([`cache`]; grants are never cached).
//!
//! Issuing a link ([`Links::issue`]): the artifact must exist; a grant record is stored
//! first, then the claims (artifact, grant, methods, window, bindings) are signed with the
//! current key; the link is only handed out once its grant is durable.
//!
//! A download (the handler in `http::handlers::download`) runs, in order: limiter check →
//! link verification (pure, constant time, no state read) → grant read (revoked? covers
//! the artifact?) → artifact record → range plan → metering reservation → durable
//! `download.served` audit → streamed body ([`body`]). Every refusal is the same generic
//! 403 to the client with a specific reason in the audit trail. The rules are written down
//! in `proto/grants-v1.md`.
//!
//! Not here: the link format (pure, in [`crate::signed_link`]), range planning
//! ([`crate::range`]), HTTP status codes and headers (the handlers and `http::problem`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub mod blob_cache;
pub mod body;
pub mod cache;
pub mod config;
pub mod events;
pub mod keys;
pub mod limiter;

use crate::artifact::import::ImportDir;
use crate::artifact::{ArtifactError, ArtifactRecord, Artifacts};
use crate::at_rest::{AtRest, AtRestError, Reader};
use crate::audit::{AuditContext, AuditError, AuditEvent, Auditor};
use crate::grant::{GrantError, GrantRecord, Grants, Limits, Meter, PartnerName, Scope, now_unix};
use crate::signed_link::{
    ArtifactId, Bindings, ClaimsError, GrantId, LinkClaims, LinkKeyring, MethodSet,
    ResponseFileName, UnixTime,
};
use crate::state::StateStore;
use cache::ArtifactCache;
use config::{ArtifactsSettings, LinksSettings};
use limiter::BadSignatureLimiter;

/// The signed-link service. Built once at start-up; shared by the handlers.
#[derive(Debug)]
pub struct Links {
    settings: LinksSettings,
    keyring: LinkKeyring,
    grants: Grants,
    meter: Meter,
    artifacts: Artifacts,
    at_rest: AtRest,
    read_at_rest: AtRest,
    import: ImportDir,
    audit_gate: AuditGate,
    limiter: BadSignatureLimiter,
    cache: ArtifactCache,
    state: Arc<dyn StateStore>,
}

/// How long downloads are refused after a queued audit write failed.
pub const AUDIT_GATE_HOLD: Duration = Duration::from_secs(10);
/// Most download audit entries queued but not yet durable (queued mode only).
pub const MAX_QUEUED_AUDITS: usize = 4096;

/// The queued-audit mode's bookkeeping: a bound on entries in flight and the time of the
/// last failed write.
#[derive(Debug)]
struct AuditGate {
    queued: Arc<tokio::sync::Semaphore>,
    failed_at: Arc<AtomicU64>,
}

impl Default for AuditGate {
    fn default() -> Self {
        Self {
            queued: Arc::new(tokio::sync::Semaphore::new(MAX_QUEUED_AUDITS)),
            failed_at: Arc::new(AtomicU64::new(0)),
        }
    }
}

impl AuditGate {
    fn check(&self) -> Result<(), AuditError> {
        let failed = self.failed_at.load(Ordering::Relaxed);
        if failed != 0 && millis_now().saturating_sub(failed) < AUDIT_GATE_HOLD.as_millis() as u64 {
            return Err(AuditError::Stopped);
        }
        Ok(())
    }
}

fn millis_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A request to issue a link, validated.
#[derive(Debug, Clone)]
pub struct IssueRequest {
    /// The artifact.
    pub artifact: ArtifactId,
    /// The partner.
    pub partner: PartnerName,
    /// Lifetime from `not_before`; `None`: `links.default_ttl`.
    pub ttl: Option<Duration>,
    /// Validity start (Unix seconds); `None`: now.
    pub not_before: Option<u64>,
    /// Allowed methods.
    pub methods: MethodSet,
    /// Download limits.
    pub limits: Limits,
    /// Client bindings.
    pub bindings: Bindings,
    /// Response file name; `None`: the artifact's.
    pub file_name: Option<ResponseFileName>,
}

/// Why a link could not be issued.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// The TTL is zero or longer than `links.max_ttl`.
    #[error("the ttl must be from 1s to links.max_ttl")]
    Ttl,
    /// `not_before` is further in the future than `links.max_ttl`, or its window overflows.
    #[error("not_before is too far in the future")]
    NotBefore,
    /// A zero limit (it would make a dead link).
    #[error("a limit must be at least 1")]
    ZeroLimit,
    /// No such artifact.
    #[error("no such artifact")]
    ArtifactNotFound,
    /// The artifact registry failed.
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
    /// The grant store failed.
    #[error(transparent)]
    Grant(#[from] GrantError),
    /// The claims are inconsistent.
    #[error(transparent)]
    Claims(#[from] ClaimsError),
}

/// An issued link.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The stored grant.
    pub grant: GrantRecord,
    /// The request target `/d/{artifact}?…` (a bearer credential: never log it).
    pub target: String,
}

impl Links {
    /// The service over `state`, with `keyring` built from `settings`. `at_rest` writes
    /// (imports); `read_at_rest` serves downloads (it may read through a cache of small
    /// ciphertext blobs, see [`blob_cache`]).
    pub fn new(
        settings: LinksSettings,
        artifacts: &ArtifactsSettings,
        keyring: LinkKeyring,
        state: Arc<dyn StateStore>,
        at_rest: AtRest,
        read_at_rest: AtRest,
    ) -> Self {
        Self {
            grants: Grants::new(state.clone(), settings.grant_retention),
            meter: Meter::new(state.clone()),
            artifacts: Artifacts::new(state.clone()),
            import: ImportDir::new(artifacts.import_dir.clone(), artifacts.remove_imported),
            limiter: BadSignatureLimiter::new(
                settings.bad_signature_burst,
                settings.bad_signature_window,
            ),
            cache: ArtifactCache::new(settings.artifact_cache_ttl),
            keyring,
            at_rest,
            read_at_rest,
            audit_gate: AuditGate::default(),
            state,
            settings,
        }
    }

    /// The settings.
    pub fn settings(&self) -> &LinksSettings {
        &self.settings
    }

    /// The keyring.
    pub fn keyring(&self) -> &LinkKeyring {
        &self.keyring
    }

    /// The grant store.
    pub fn grants(&self) -> &Grants {
        &self.grants
    }

    /// The meters.
    pub fn meter(&self) -> &Meter {
        &self.meter
    }

    /// The artifact registry.
    pub fn artifacts(&self) -> &Artifacts {
        &self.artifacts
    }

    /// The at-rest store.
    pub fn at_rest(&self) -> &AtRest {
        &self.at_rest
    }

    /// The import directory.
    pub fn import_dir(&self) -> &ImportDir {
        &self.import
    }

    /// The forged-link limiter.
    pub fn limiter(&self) -> &BadSignatureLimiter {
        &self.limiter
    }

    /// The state store.
    pub fn state(&self) -> &Arc<dyn StateStore> {
        &self.state
    }

    /// An artifact record (cached briefly; records never change).
    pub async fn artifact(
        &self,
        id: ArtifactId,
    ) -> Result<Option<Arc<ArtifactRecord>>, ArtifactError> {
        if let Some((record, _)) = self.cache.get(id, Instant::now()) {
            return Ok(Some(record));
        }
        let Some(record) = self.artifacts.get(id).await? else {
            return Ok(None);
        };
        let record = Arc::new(record);
        self.cache.put(record.clone(), None, Instant::now());
        Ok(Some(record))
    }

    /// An open reader of the artifact's object (cached briefly), checked against the
    /// record's length.
    pub async fn reader(&self, record: &Arc<ArtifactRecord>) -> Result<Reader, AtRestError> {
        if let Some((_, Some(reader))) = self.cache.get(record.id, Instant::now()) {
            return Ok(reader);
        }
        let reader = self.read_at_rest.open_reader(record.object).await?;
        if reader.len() != record.length {
            return Err(AtRestError::Inconsistent(
                "artifact length differs from its object",
            ));
        }
        self.cache
            .put(record.clone(), Some(reader.clone()), Instant::now());
        Ok(reader)
    }

    /// Records `event` for a download about to be served. Normally this waits until the
    /// entry is durable (fail closed). With `links.danger_queued_download_audit` it only
    /// queues the entry — in order, before the first byte — and answers at once; a write
    /// failure then closes the gate for [`AUDIT_GATE_HOLD`], so downloads fail closed again
    /// from the next request on. At most [`MAX_QUEUED_AUDITS`] entries wait at once.
    pub async fn audit_download<E: AuditEvent + 'static>(
        &self,
        auditor: &Auditor,
        ctx: &AuditContext,
        event: E,
    ) -> Result<(), AuditError> {
        if !self.settings.danger_queued_download_audit {
            return auditor.emit(ctx, &event).await.map(|_| ());
        }
        self.audit_gate.check()?;
        let permit = self
            .audit_gate
            .queued
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| AuditError::Stopped)?;
        let failed = self.audit_gate.failed_at.clone();
        let auditor = auditor.clone();
        let ctx = ctx.clone();
        tokio::spawn(async move {
            if auditor.emit(&ctx, &event).await.is_err() {
                failed.store(millis_now(), Ordering::Relaxed);
            }
            drop(permit);
        });
        Ok(())
    }

    /// Issues a link: stores the grant, then signs the claims with the current key.
    pub async fn issue(&self, issuer: &str, req: IssueRequest) -> Result<Issued, IssueError> {
        let now = now_unix();
        let ttl = req.ttl.unwrap_or(self.settings.default_ttl);
        if ttl.as_secs() == 0 || ttl > self.settings.max_ttl {
            return Err(IssueError::Ttl);
        }
        if req.limits.max_downloads == Some(0) || req.limits.max_bytes == Some(0) {
            return Err(IssueError::ZeroLimit);
        }
        let not_before = req.not_before.unwrap_or(now);
        if not_before > now.saturating_add(self.settings.max_ttl.as_secs()) {
            return Err(IssueError::NotBefore);
        }
        let expires = not_before
            .max(now)
            .checked_add(ttl.as_secs())
            .ok_or(IssueError::NotBefore)?;
        if self.artifact(req.artifact).await?.is_none() {
            return Err(IssueError::ArtifactNotFound);
        }
        let grant_id = GrantId::random();
        let claims = LinkClaims::new(
            req.artifact,
            grant_id,
            req.methods,
            UnixTime(not_before),
            UnixTime(expires),
            req.bindings,
        )?;
        let record = GrantRecord {
            id: grant_id,
            issuer: issuer.to_owned(),
            partner: req.partner,
            scope: Scope {
                artifacts: vec![req.artifact],
                batch: None,
            },
            methods: req.methods,
            not_before,
            expires,
            bindings: req.bindings,
            file_name: req.file_name,
            limits: req.limits,
            key_id: self.keyring.current_key_id().clone(),
            created_at: now,
            revoked: None,
        };
        self.grants.create(&record, now).await?;
        let target = self.keyring.sign(&claims);
        Ok(Issued {
            grant: record,
            target,
        })
    }
}
