//! The audit trail: typed events, one `emit()`, and an append-only hash chain in the
//! state store.
//!
//! Every event is a struct implementing [`AuditEvent`] (its action name is a constant);
//! [`Auditor::emit`] writes it to the chain, logs one line (without details: they may name
//! files) and counts it. `emit` returns once the entry is durable in the state store, so a
//! handler that audits before answering never answers for an unrecorded action — and when
//! the audit write fails, the handler fails closed.
//!
//! Writes from all tasks go through one background writer that appends in batches (up to
//! `audit.batch_max` per state-store write): under load many events share one durable
//! write. Several gateway instances write one gapless chain: the sequence comes from the
//! state store's log, and an append that loses the race re-chains its batch on the new
//! head and retries. The entry format is in [`chain`] and `proto/audit-v1.md`.
//!
//! SIEM export: [`siem`] renders entries as JSON lines or syslog + CEF (pure), [`ship`]
//! delivers them to a file or a TCP / TLS endpoint with a durable cursor.
//!
//! Not here: queries and signed checkpoints (later work; [`chain::ChainSummary`] is what a
//! checkpoint will sign).

use std::sync::Arc;

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

pub mod chain;
pub mod events;
pub mod security;
pub mod ship;
pub mod siem;

use crate::metrics::{ActionLabels, Metrics};
use crate::state::{AppendOutcome, LogName, StateError, StateStore};

/// The state-store log that holds the chain.
pub const AUDIT_LOG: LogName = LogName("audit");

/// A typed audit event.
pub trait AuditEvent: Serialize + Send + Sync {
    /// The action, `noun.verb` (e.g. `upload.created`); stable, used in queries.
    const ACTION: &'static str;
    /// The outcome; most events record a success.
    fn outcome(&self) -> Outcome {
        Outcome::Success
    }
    /// The id of the thing acted on, if any (an upload, grant or key id — never a name).
    fn subject(&self) -> Option<String> {
        None
    }
}

/// How an audited action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Done.
    Success,
    /// Attempted and failed (bad input, checksum mismatch…).
    Failure,
    /// Refused by policy (role, revoked link…).
    Denied,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Denied => "denied",
        }
    }
}

/// Who acted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Actor {
    /// An authenticated API client.
    Client {
        /// Its configured name.
        name: String,
        /// How it authenticated (`bearer_token`, `client_certificate`); set for every
        /// request's actor, absent where no request is behind the entry.
        #[serde(skip_serializing_if = "Option::is_none")]
        auth_method: Option<&'static str>,
    },
    /// A holder of a signed link.
    Link {
        /// The grant the link belongs to.
        grant: String,
    },
    /// The gateway itself (sweepers, start-up).
    System,
    /// An operator at the command line.
    Operator {
        /// The OS user, when known.
        user: Option<String>,
    },
    /// An unauthenticated caller.
    Anonymous,
}

/// Where an event came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditContext {
    /// Who.
    pub actor: Actor,
    /// The request id, if any.
    pub request_id: Option<String>,
    /// The client's address, if any.
    pub client_addr: Option<String>,
    /// The TCP peer's address when it is not the client's: the load balancer or trusted
    /// proxy the request came through.
    pub peer_addr: Option<String>,
}

impl AuditContext {
    /// The gateway acting on its own.
    pub fn system() -> Self {
        Self {
            actor: Actor::System,
            request_id: None,
            client_addr: None,
            peer_addr: None,
        }
    }

    /// An operator at the CLI.
    pub fn operator() -> Self {
        Self {
            actor: Actor::Operator {
                user: std::env::var("USER").ok(),
            },
            request_id: None,
            client_addr: None,
            peer_addr: None,
        }
    }

    /// The address fields for `addr`: the client, and the peer when it differs.
    pub fn with_addr(self, addr: crate::proxy::ClientAddr) -> Self {
        Self {
            client_addr: Some(addr.client.to_string()),
            peer_addr: addr.via().map(|p| p.to_string()),
            ..self
        }
    }
}

/// Why an event could not be recorded.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The state store failed.
    #[error("audit write failed: {0}")]
    Store(#[from] StateError),
    /// The event could not be encoded.
    #[error("audit event could not be encoded: {0}")]
    Encode(#[from] serde_json::Error),
    /// The writer has stopped (shutdown).
    #[error("audit writer stopped")]
    Stopped,
}

struct Pending {
    time: String,
    action: &'static str,
    outcome: Outcome,
    actor: serde_json::Value,
    request_id: Option<String>,
    client_addr: Option<String>,
    peer_addr: Option<String>,
    subject: Option<String>,
    details: serde_json::Value,
    done: oneshot::Sender<Result<u64, AuditError>>,
}

/// Emits audit events. Cheap to clone.
#[derive(Clone)]
pub struct Auditor {
    tx: mpsc::Sender<Pending>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Auditor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auditor").finish_non_exhaustive()
    }
}

impl Auditor {
    /// Starts the background writer for `store`. `instance` names this gateway in entries.
    pub fn start(
        store: Arc<dyn StateStore>,
        instance: String,
        batch_max: usize,
        metrics: Arc<Metrics>,
    ) -> Self {
        let (tx, rx) = mpsc::channel(batch_max.max(1) * 4);
        tokio::spawn(writer(store, instance, batch_max.max(1), rx));
        Self { tx, metrics }
    }

    /// Records `event`; returns its sequence number once it is durable.
    pub async fn emit<E: AuditEvent>(
        &self,
        ctx: &AuditContext,
        event: &E,
    ) -> Result<u64, AuditError> {
        let result = self.emit_inner(ctx, event).await;
        match &result {
            Ok(seq) => {
                self.metrics
                    .audit_events
                    .get_or_create(&ActionLabels { action: E::ACTION })
                    .inc();
                tracing::info!(
                    target: "audit",
                    action = E::ACTION,
                    outcome = event.outcome().as_str(),
                    seq,
                    request_id = ctx.request_id.as_deref(),
                    subject = event.subject().as_deref(),
                    "audit"
                );
            }
            Err(e) => {
                self.metrics.audit_failures.inc();
                tracing::error!(target: "audit", action = E::ACTION, error = %e, "audit write failed");
            }
        }
        result
    }

    async fn emit_inner<E: AuditEvent>(
        &self,
        ctx: &AuditContext,
        event: &E,
    ) -> Result<u64, AuditError> {
        let (done, wait) = oneshot::channel();
        let pending = Pending {
            time: now_rfc3339(),
            action: E::ACTION,
            outcome: event.outcome(),
            actor: serde_json::to_value(&ctx.actor)?,
            request_id: ctx.request_id.clone(),
            client_addr: ctx.client_addr.clone(),
            peer_addr: ctx.peer_addr.clone(),
            subject: event.subject(),
            details: serde_json::to_value(event)?,
            done,
        };
        self.tx
            .send(pending)
            .await
            .map_err(|_| AuditError::Stopped)?;
        wait.await.map_err(|_| AuditError::Stopped)?
    }
}

/// Current UTC time, RFC 3339 with milliseconds.
pub fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc();
    let fmt = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    now.format(&fmt).unwrap_or_default()
}

async fn writer(
    store: Arc<dyn StateStore>,
    instance: String,
    batch_max: usize,
    mut rx: mpsc::Receiver<Pending>,
) {
    let mut head: Option<(u64, [u8; 32])> = None;
    let mut batch = Vec::with_capacity(batch_max);
    while rx.recv_many(&mut batch, batch_max).await > 0 {
        let result = append_batch(&*store, &instance, &batch, &mut head).await;
        match result {
            Ok(first) => {
                for (i, p) in batch.drain(..).enumerate() {
                    let _ = p.done.send(Ok(first + i as u64));
                }
            }
            Err(e) => {
                head = None;
                let msg = e.to_string();
                for p in batch.drain(..) {
                    let _ = p
                        .done
                        .send(Err(AuditError::Store(StateError::Unavailable(msg.clone()))));
                }
            }
        }
    }
}

async fn append_batch(
    store: &dyn StateStore,
    instance: &str,
    batch: &[Pending],
    head: &mut Option<(u64, [u8; 32])>,
) -> Result<u64, AuditError> {
    // Bounded: each retry means another instance appended; give up after many.
    for _ in 0..1000 {
        let (last_seq, last_hash) = match *head {
            Some(h) => h,
            None => match store.log_head(AUDIT_LOG).await? {
                None => (0, chain::GENESIS_PREV),
                Some(e) => (
                    e.seq,
                    chain::stored_hash(&e.bytes)
                        .ok_or_else(|| StateError::Corrupt("audit head unreadable".into()))?,
                ),
            },
        };
        let mut lines = Vec::with_capacity(batch.len());
        let mut prev = last_hash;
        for (i, p) in batch.iter().enumerate() {
            let body = chain::Body {
                v: 1,
                seq: last_seq + 1 + i as u64,
                time: &p.time,
                instance,
                action: p.action,
                outcome: p.outcome.as_str(),
                actor: &p.actor,
                request_id: p.request_id.as_deref(),
                client_addr: p.client_addr.as_deref(),
                peer_addr: p.peer_addr.as_deref(),
                subject: p.subject.as_deref(),
                details: &p.details,
                prev: hex::encode(prev),
            };
            let (line, hash) = chain::seal(&body)?;
            lines.push(line);
            prev = hash;
        }
        match store.log_append(AUDIT_LOG, last_seq + 1, &lines).await? {
            AppendOutcome::Appended { first } => {
                *head = Some((first + batch.len() as u64 - 1, prev));
                return Ok(first);
            }
            AppendOutcome::Conflict(current) => {
                *head = match current {
                    None => Some((0, chain::GENESIS_PREV)),
                    Some(e) => Some((
                        e.seq,
                        chain::stored_hash(&e.bytes)
                            .ok_or_else(|| StateError::Corrupt("audit head unreadable".into()))?,
                    )),
                };
            }
        }
    }
    Err(StateError::Unavailable("audit append kept conflicting".into()).into())
}

/// Verifies the chain stored in `store`, reading it in pages; `progress` sees each count.
pub async fn verify_store(
    store: &dyn StateStore,
    mut progress: impl FnMut(u64),
) -> Result<Result<chain::ChainSummary, chain::ChainError>, StateError> {
    let mut verifier = chain::Verifier::new();
    let mut next = 1;
    loop {
        let page = store.log_read(AUDIT_LOG, next, 1000).await?;
        if page.is_empty() {
            return Ok(Ok(verifier.finish()));
        }
        for entry in &page {
            if let Err(e) = verifier.push(&entry.bytes) {
                return Ok(Err(e));
            }
            next = entry.seq + 1;
        }
        progress(next - 1);
    }
}

/// Verifies the chain stored in `store` for an API caller and records the verification
/// (`audit.verified`, with the length checked and whether the chain was intact) before the
/// result is reported. A store that cannot be read fails the call (`AuditError::Store`).
pub async fn verify_recorded(
    store: &dyn StateStore,
    auditor: &Auditor,
    ctx: &AuditContext,
) -> Result<Result<chain::ChainSummary, chain::ChainError>, AuditError> {
    let result = verify_store(store, |_| {}).await?;
    let event = events::AuditVerified {
        length: result.as_ref().map(|s| s.length).unwrap_or(0),
        intact: result.is_ok(),
    };
    auditor.emit(ctx, &event).await?;
    Ok(result)
}
