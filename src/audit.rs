//! The audit trail: typed events, one `emit()`, and an append-only hash chain.
//!
//! Every event is a struct implementing [`AuditEvent`] (its action name is a constant);
//! [`Auditor::emit`] writes it to the chain, logs one line (without details: they may name
//! files) and counts it. `emit` returns once the entry is durable in its [`log::AuditLog`],
//! so a handler that audits before answering never answers for an unrecorded action — and
//! when the audit write fails, the handler fails closed.
//!
//! Where entries are stored is the [`log`] port: the gateway's own append-only
//! [`journal`] (segment files, the default with embedded state) or the state store's log
//! ([`log::StateLog`], shared by every instance on Redis).
//!
//! Writes from all tasks go through one background writer that appends in batches (up to
//! `audit.batch_max` per append): while one append is being made durable, the next batch
//! queues up, so under load many events share one durable write (with the journal, one
//! `fdatasync`). Several gateway instances on one state store write one gapless chain: an
//! append that loses the race re-chains its batch on the new head and retries. The entry
//! format is in [`chain`] and `proto/audit-v1.md`.
//!
//! The writer never chains over a lost tail: it remembers the highest head it has seen
//! (its own appends, every head it read, and at start the last checkpoint in
//! `audit.checkpoint_dir`), and when the store shows a lower one it halts — every `emit`
//! fails with [`AuditError::Halted`], `/readyz` fails with the [`HaltReason`], and
//! `sallyport_audit_halted` is 1. After each append it lets the [`checkpointer`] sign a
//! checkpoint ([`checkpoint`], `proto/audit-checkpoint-v1.md`) when one is due;
//! [`verify`] checks a chain against checkpoints.
//!
//! Retention: [`archive`] moves sealed journal segments older than `audit.retention` to
//! `audit.archive_dir`, each run closed by a signed checkpoint; the journal then starts
//! after an archive base and verification links the two.
//!
//! SIEM export: [`siem`] renders entries as JSON lines or syslog + CEF (pure), [`ship`]
//! delivers them to a file or a TCP / TLS endpoint with a durable cursor.
//!
//! Queries and traces: [`query`] is the pure model (filters, cursor, which ids an entry
//! mentions, trace assembly and rendering).

use std::sync::{Arc, OnceLock};

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

pub mod archive;
pub mod chain;
pub mod checkpoint;
pub mod checkpointer;
pub mod events;
pub mod index;
pub mod journal;
pub mod log;
pub mod query;
pub mod search;
pub mod security;
pub mod ship;
pub mod siem;
pub mod source;
pub mod verify;

use crate::metrics::{ActionLabels, Metrics};
use crate::state::{AppendOutcome, LogName, StateError};
use log::AuditLog;

/// The state-store log that holds the chain (the [`log::StateLog`] adapter), and the
/// default name of the chain.
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
    /// The writer refused to chain over a lost tail: the store showed a head lower than
    /// one this writer had already seen (or the same length with another hash). Auditing
    /// stays halted until the gateway is restarted after an operator has looked.
    #[error("auditing halted: {0}")]
    Halted(Arc<HaltReason>),
}

/// Why the writer halted: the head it had seen and the lower (or different) one the store
/// showed. Hashes are of entries, not secrets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the audit log's head went back from seq {seen_seq} ({seen_hash}) to seq {found_seq} ({found_hash}): entries were removed or rewritten behind the writer"
)]
pub struct HaltReason {
    /// The highest sequence number this writer had seen.
    pub seen_seq: u64,
    /// Its hash, hex.
    pub seen_hash: String,
    /// The head the store showed instead.
    pub found_seq: u64,
    /// Its hash, hex.
    pub found_hash: String,
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
    log: Arc<dyn AuditLog>,
    metrics: Arc<Metrics>,
    halt: Arc<OnceLock<Arc<HaltReason>>>,
}

impl std::fmt::Debug for Auditor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auditor").finish_non_exhaustive()
    }
}

impl Auditor {
    /// Starts the background writer appending to `log`. `instance` names this gateway in
    /// entries.
    pub fn start(
        log: Arc<dyn AuditLog>,
        instance: String,
        batch_max: usize,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self::start_with(log, instance, batch_max, metrics, None)
    }

    /// [`Auditor::start`] with signed checkpoints (`None`: none are taken).
    pub fn start_with(
        log: Arc<dyn AuditLog>,
        instance: String,
        batch_max: usize,
        metrics: Arc<Metrics>,
        checkpoints: Option<checkpointer::Checkpointer>,
    ) -> Self {
        let (tx, rx) = mpsc::channel(batch_max.max(1) * 4);
        let halt = Arc::new(OnceLock::new());
        let mut checkpoints = checkpoints;
        let seen = checkpoints.as_mut().and_then(|c| c.last_known());
        let w = Writer {
            log: log.clone(),
            instance,
            batch_max: batch_max.max(1),
            seen,
            halt: halt.clone(),
            metrics: metrics.clone(),
            checkpoints,
        };
        tokio::spawn(w.run(rx));
        Self {
            tx,
            log,
            metrics,
            halt,
        }
    }

    /// The log this auditor appends to (for verification and reads).
    pub fn log(&self) -> &Arc<dyn AuditLog> {
        &self.log
    }

    /// Why auditing halted, if it did (for `/readyz`): then every `emit` fails.
    pub fn halted(&self) -> Option<&HaltReason> {
        self.halt.get().map(|r| &**r)
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

/// A head of the chain: (sequence number, entry hash). `(0, GENESIS_PREV)` is empty.
type Head = (u64, [u8; 32]);

/// The background writer: owns the chain's head as this process knows it.
struct Writer {
    log: Arc<dyn AuditLog>,
    instance: String,
    batch_max: usize,
    /// The highest head this writer has seen, from its own appends and from every head
    /// it read. The store showing anything lower halts the writer.
    seen: Option<Head>,
    halt: Arc<OnceLock<Arc<HaltReason>>>,
    metrics: Arc<Metrics>,
    checkpoints: Option<checkpointer::Checkpointer>,
}

impl Writer {
    async fn run(mut self, mut rx: mpsc::Receiver<Pending>) {
        let mut head: Option<Head> = None;
        let mut batch = Vec::with_capacity(self.batch_max);
        let mut tick = self.checkpoints.as_ref().map(|c| {
            let mut t =
                tokio::time::interval_at(tokio::time::Instant::now() + c.interval(), c.interval());
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            t
        });
        loop {
            let got = match tick.as_mut() {
                Some(t) => tokio::select! {
                    n = rx.recv_many(&mut batch, self.batch_max) => n,
                    _ = t.tick() => {
                        if let (Some(c), Some(h)) = (self.checkpoints.as_mut(), head)
                            && self.halt.get().is_none()
                        {
                            c.on_timer(h.0, &h.1).await;
                        }
                        continue;
                    }
                },
                None => rx.recv_many(&mut batch, self.batch_max).await,
            };
            if got == 0 {
                break;
            }
            if let Some(reason) = self.halt.get() {
                for p in batch.drain(..) {
                    let _ = p.done.send(Err(AuditError::Halted(reason.clone())));
                }
                continue;
            }
            match self.append_batch(&batch, &mut head).await {
                Ok(first) => {
                    // A checkpoint that is due is written before the batch is acknowledged
                    // (its failure is only logged and counted): a process that exits right
                    // after its last audited action — a graceful stop — still leaves the
                    // checkpoint that covers it. It costs one signature and one fsync per
                    // `audit.checkpoint_every` entries.
                    if let (Some(c), Some(h)) = (self.checkpoints.as_mut(), head) {
                        c.on_append(h.0, &h.1).await;
                    }
                    for (i, p) in batch.drain(..).enumerate() {
                        let _ = p.done.send(Ok(first + i as u64));
                    }
                }
                Err(AuditError::Halted(reason)) => {
                    for p in batch.drain(..) {
                        let _ = p.done.send(Err(AuditError::Halted(reason.clone())));
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
        &mut self,
        batch: &[Pending],
        head: &mut Option<Head>,
    ) -> Result<u64, AuditError> {
        // Bounded: each retry means another instance appended; give up after many.
        for _ in 0..1000 {
            let (last_seq, last_hash) = match *head {
                Some(h) => h,
                None => {
                    let read = self.log.head().await?;
                    self.observe(entry_head(read.as_ref())?)?
                }
            };
            let mut lines = Vec::with_capacity(batch.len());
            let mut prev = last_hash;
            for (i, p) in batch.iter().enumerate() {
                let body = chain::Body {
                    v: 1,
                    seq: last_seq + 1 + i as u64,
                    time: &p.time,
                    instance: &self.instance,
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
            let started = std::time::Instant::now();
            let outcome = self.log.append(last_seq + 1, &lines).await?;
            match outcome {
                AppendOutcome::Appended { first } => {
                    let m = &self.metrics;
                    m.audit_commits.inc();
                    m.audit_commit_duration
                        .observe(started.elapsed().as_secs_f64());
                    m.audit_commit_entries.observe(batch.len() as f64);
                    m.audit_bytes
                        .inc_by(lines.iter().map(|l| l.len() as u64).sum());
                    let new = (first + batch.len() as u64 - 1, prev);
                    *head = Some(self.observe(new)?);
                    return Ok(first);
                }
                AppendOutcome::Conflict(current) => {
                    self.metrics.audit_append_conflicts.inc();
                    // Another instance appended — or the tail we built on is gone. Only a
                    // head at least as high as every one seen may be chained on.
                    *head = Some(self.observe(entry_head(current.as_ref())?)?);
                }
            }
        }
        Err(StateError::Unavailable("audit append kept conflicting".into()).into())
    }

    /// Records `found` as seen, or halts when it is lower than (or, at the same length,
    /// different from) the highest head seen so far.
    fn observe(&mut self, found: Head) -> Result<Head, AuditError> {
        if let Some(seen) = self.seen {
            let lost = found.0 < seen.0 || (found.0 == seen.0 && found.1 != seen.1);
            if lost {
                return Err(self.halt_on(seen, found));
            }
        }
        self.seen = Some(found);
        self.metrics.audit_chain_length.set(found.0);
        Ok(found)
    }

    fn halt_on(&self, seen: Head, found: Head) -> AuditError {
        let reason = Arc::new(HaltReason {
            seen_seq: seen.0,
            seen_hash: hex::encode(seen.1),
            found_seq: found.0,
            found_hash: hex::encode(found.1),
        });
        let reason = self.halt.get_or_init(|| reason).clone();
        self.metrics.audit_halted.set(1);
        tracing::error!(
            target: "audit",
            seen_seq = reason.seen_seq,
            seen_hash = %reason.seen_hash,
            found_seq = reason.found_seq,
            found_hash = %reason.found_hash,
            "AUDIT HALTED: the audit log lost its tail or was rewritten; every audited action is refused until an operator investigates (sallyport audit verify --checkpoint-dir …) and restarts the gateway"
        );
        AuditError::Halted(reason)
    }
}

/// The head a stored entry stands for (`None`: the empty log).
fn entry_head(entry: Option<&crate::state::LogEntry>) -> Result<Head, AuditError> {
    match entry {
        None => Ok((0, chain::GENESIS_PREV)),
        Some(e) => Ok((
            e.seq,
            chain::stored_hash(&e.bytes)
                .ok_or_else(|| StateError::Corrupt("audit head unreadable".into()))?,
        )),
    }
}

/// Verifies the chain stored in `log`, reading it in pages; `progress` sees each count.
/// A journal whose prefix was archived is verified from its archive base on.
pub async fn verify_store(
    log: &dyn AuditLog,
    mut progress: impl FnMut(u64),
) -> Result<Result<chain::ChainSummary, chain::ChainError>, StateError> {
    // After an archived prefix, the chain continues from the archive base (the prefix is
    // verified with `sallyport audit verify --archive`).
    let (mut verifier, mut next) = match log.archive_base().await? {
        Some(base) => match chain::Verifier::anchor(&base.bytes) {
            Ok((seq, hash)) => (chain::Verifier::after(seq, hash), seq + 1),
            Err(e) => return Ok(Err(e)),
        },
        None => (chain::Verifier::new(), 1),
    };
    loop {
        let page = log.read(next, 1000).await?;
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

/// Verifies the chain stored in `log` for an API caller and records the verification
/// (`audit.verified`, with the length checked and whether the chain was intact) before the
/// result is reported. A store that cannot be read fails the call (`AuditError::Store`).
pub async fn verify_recorded(
    log: &dyn AuditLog,
    auditor: &Auditor,
    ctx: &AuditContext,
) -> Result<Result<chain::ChainSummary, chain::ChainError>, AuditError> {
    let result = verify_store(log, |_| {}).await?;
    let event = events::AuditVerified {
        length: result.as_ref().map(|s| s.length).unwrap_or(0),
        intact: result.is_ok(),
    };
    auditor.emit(ctx, &event).await?;
    Ok(result)
}
