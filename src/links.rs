//! The signed-link service: issuing and revoking links, registering artifacts, and
//! serving downloads. Each flow runs here from a parsed request to a typed outcome and
//! audits inside; the handlers under `http::handlers` only parse, call and map.
//!
//! [`Links`] holds the link keyring (built from `[links]`, see [`keys`]), the grant store
//! and its meters ([`crate::grant`]), the artifact registry and import directory
//! ([`crate::artifact`]), the at-rest store downloads are decrypted from, the audit trail,
//! the per-client limiter of forged links ([`limiter`]) and a short-lived cache of artifact
//! records and open readers ([`cache`]; grants are never cached).
//!
//! * [`grants`] — issue (the grant is durable, then the claims are signed; `link.issued`
//!   is audited before the link is handed out), list, show, revoke one or in bulk
//!   (`link.revoked`).
//! * [`publish`] — register an artifact from the import directory or a completed upload
//!   (`artifact.registered`).
//! * [`download`] — limiter → link verification (pure, constant time, no state read) →
//!   grant → artifact → range plan ([`shape`]) → meter → durable `download.served` →
//!   streamed body ([`body`]). Every refusal is one generic refusal with the specific
//!   reason in the audit trail. The rules are written down in `proto/grants-v1.md`.
//! * [`api`] — the JSON request bodies and query strings, parsed into typed requests.
//!
//! Not here: the link format (pure, in [`crate::signed_link`]), range planning
//! ([`crate::range`]), HTTP statuses and headers (the handlers and `http::problem`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub mod api;
pub mod blob_cache;
pub mod body;
pub mod cache;
pub mod config;
pub mod derived;
pub mod download;
pub mod events;
pub mod grants;
pub mod keys;
pub mod limiter;
pub mod publish;
pub mod shape;

use crate::artifact::import::ImportDir;
use crate::artifact::{ArtifactError, ArtifactRecord, Artifacts};
use crate::at_rest::{AtRest, AtRestError, Reader};
use crate::audit::security::SecurityEvents;
use crate::audit::{AuditContext, AuditError, AuditEvent, Auditor};
use crate::grant::{GrantError, GrantRecord, Grants, Limits, Meter, PartnerName};
use crate::signed_link::{
    ArtifactId, Bindings, ClaimsError, GrantId, LinkKeyring, MethodSet, ResponseFileName,
};
use crate::state::{StateError, StateStore};
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
    auditor: Auditor,
    /// Summarises refusals of unverified links past the first few per address and window.
    security: SecurityEvents,
    /// Asked before anything of a batch member leaves.
    batch_gate: crate::batch::gate::BatchGate,
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

/// Who calls the links API: the publisher's name and the request's audit context.
#[derive(Debug, Clone)]
pub struct Publisher {
    /// The principal's name (recorded as the grant's issuer or revoker).
    pub name: String,
    /// What it may publish (`publish_for`, `publish_from_owners`).
    pub scope: Arc<crate::auth::PublisherScope>,
    /// The request's audit context.
    pub audit: AuditContext,
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

/// Why a links-API request (issue, list, show, revoke) was refused.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// `artifact` is not an artifact id.
    #[error("artifact is not an artifact id")]
    BadArtifact,
    /// `partner` is not a partner name.
    #[error("partner is not a partner name")]
    BadPartner,
    /// `ttl` is not a duration.
    #[error("ttl is not a duration")]
    BadTtlFormat,
    /// `methods` is not GET, HEAD or GET,HEAD.
    #[error("methods is not GET, HEAD or GET,HEAD")]
    BadMethods,
    /// `client_net` is not a canonical CIDR block.
    #[error("client_net is not a canonical CIDR block")]
    BadClientNet,
    /// `client_cert_sha256` is not a SHA-256 fingerprint.
    #[error("client_cert_sha256 is not a fingerprint")]
    BadClientCert,
    /// `client_cert_of` is not a client name, or comes with `client_cert_sha256`.
    #[error("client_cert_of is not a client name, or is given with client_cert_sha256")]
    BadClientCertOf,
    /// `client_cert_of` names no configured client.
    #[error("client_cert_of names no configured client")]
    UnknownClient,
    /// `client_cert_of` names a client without a configured certificate.
    #[error("client_cert_of names a client without cert_sha256")]
    ClientWithoutCertificate,
    /// The publisher's `publish_for` does not include the partner.
    #[error("the partner is outside the publisher's scope")]
    PartnerOutOfScope,
    /// The publisher's `publish_from_owners` does not include the artifact's owner.
    #[error("the artifact's owner is outside the publisher's scope")]
    OwnerOutOfScope,
    /// `file_name` is not a safe response file name.
    #[error("file_name is not a safe file name")]
    BadFileName,
    /// The revocation reason is not acceptable text.
    #[error("reason is not acceptable")]
    BadReason,
    /// A bulk revocation does not name exactly one well-formed selector.
    #[error("give exactly one of artifact, partner, batch")]
    BadSelector,
    /// A listing's query string is malformed.
    #[error(transparent)]
    Query(#[from] api::QueryError),
    /// The TTL is zero or longer than `links.max_ttl`.
    #[error("the ttl must be from 1s to links.max_ttl")]
    Ttl,
    /// `not_before` is further in the future than `links.max_ttl`, or its window overflows.
    #[error("not_before is too far in the future")]
    NotBefore,
    /// A zero limit (it would make a dead link).
    #[error("a limit must be at least 1")]
    ZeroLimit,
    /// The artifact was registered from a member of a batch that is no longer released.
    #[error("the artifact's batch is not released")]
    BatchNotReleased,
    /// The batch records could not be read.
    #[error(transparent)]
    Batch(#[from] crate::batch::store::StoreError),
    /// The claims are inconsistent (an empty validity window).
    #[error(transparent)]
    Claims(#[from] ClaimsError),
    /// No such artifact.
    #[error("no such artifact")]
    ArtifactNotFound,
    /// No such grant.
    #[error("no such grant")]
    GrantNotFound,
    /// The state store failed: fail closed.
    #[error(transparent)]
    State(#[from] StateError),
    /// The artifact registry failed (its state store, or a corrupt record).
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
    /// The grant store failed (its state store, a corrupt record, contention, an id
    /// collision).
    #[error(transparent)]
    Grant(#[from] GrantError),
    /// The audit trail could not record the action: it was not acknowledged.
    #[error(transparent)]
    Audit(#[from] AuditError),
}

/// An issued link.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The stored grant.
    pub grant: GrantRecord,
    /// The request target `/d/{artifact}?…` (a bearer credential: never log it).
    pub target: String,
}

/// A grant with what its meters have counted (`None` when it is unlimited).
#[derive(Debug, Clone)]
pub struct GrantView {
    /// The grant.
    pub grant: GrantRecord,
    /// Its usage, as JSON (`artifact_bytes`, `grant_bytes`, `full_downloads`).
    pub usage: Option<serde_json::Value>,
}

impl GrantView {
    /// The JSON form (see [`api::grant_json`]).
    pub fn to_json(&self, now: u64) -> serde_json::Value {
        api::grant_json(&self.grant, now, self.usage.clone())
    }
}

/// What a revocation did.
#[derive(Debug, Clone)]
pub struct Revoked {
    /// Grants revoked by this call.
    pub revoked: Vec<GrantId>,
    /// Grants that were revoked before.
    pub already_revoked: u64,
}

impl Links {
    /// The service over `state`, with `keyring` built from `settings`, auditing to
    /// `auditor`. `at_rest` writes
    /// (imports); `read_at_rest` serves downloads (it may read through a cache of small
    /// ciphertext blobs, see [`blob_cache`]). Refusals of links that did not verify are
    /// counted by `security`, the gateway's one summariser of anonymous security events.
    // Each argument is one part the composition root wires in; a struct of them would
    // only repeat this list.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        settings: LinksSettings,
        artifacts: &ArtifactsSettings,
        keyring: LinkKeyring,
        state: Arc<dyn StateStore>,
        at_rest: AtRest,
        read_at_rest: AtRest,
        auditor: Auditor,
        security: SecurityEvents,
        batch_gate: crate::batch::gate::BatchGate,
    ) -> Self {
        Self {
            batch_gate,
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
            auditor,
            security,
            settings,
        }
    }

    /// The settings.
    pub fn settings(&self) -> &LinksSettings {
        &self.settings
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
    async fn audit_download<E: AuditEvent + 'static>(
        &self,
        ctx: &AuditContext,
        event: E,
    ) -> Result<(), AuditError> {
        if !self.settings.danger_queued_download_audit {
            return self.auditor.emit(ctx, &event).await.map(|_| ());
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
        let auditor = self.auditor.clone();
        let ctx = ctx.clone();
        tokio::spawn(async move {
            if auditor.emit(&ctx, &event).await.is_err() {
                failed.store(millis_now(), Ordering::Relaxed);
            }
            drop(permit);
        });
        Ok(())
    }
}
