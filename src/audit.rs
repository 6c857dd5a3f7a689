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
//! A chunk of an upload may instead be acknowledged once its entry is durable in the
//! [`outbox`], a state-store row written with the upload record's own commit
//! ([`Auditor::prepare`], [`Auditor::stage`], [`Auditor::release`]): the writer
//! (`writer.rs`) appends such entries with its next append, or within
//! [`outbox::OUTBOX_DELAY`], and the next start appends those a dead process left.
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

use std::sync::Arc;

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
pub mod outbox;
pub mod query;
pub mod search;
pub mod security;
pub mod ship;
pub mod siem;
pub mod source;
pub mod verify;
mod writer;

use crate::metrics::{ActionLabels, Metrics};
use crate::state::{LogName, StateError, StateStore};
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

/// Emits audit events. Cheap to clone.
#[derive(Clone)]
pub struct Auditor {
    tx: mpsc::Sender<writer::Msg>,
    log: Arc<dyn AuditLog>,
    metrics: Arc<Metrics>,
    flags: Arc<writer::Flags>,
    outbox: Option<Outbox>,
}

/// The outbox side of an [`Auditor`]: where rows go and their ids.
#[derive(Clone)]
struct Outbox {
    state: Arc<dyn StateStore>,
    keys: Arc<outbox::Keys>,
}

/// An entry prepared for the outbox ([`Auditor::prepare`]): written with
/// [`Auditor::stage`] before the durable commit it rides on, handed to the writer with
/// [`Auditor::release`] after it.
#[derive(Debug)]
pub struct Staged {
    id: String,
    row: outbox::Row,
    action: &'static str,
    outcome: Outcome,
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
        Self::start_full(log, instance, batch_max, metrics, checkpoints, None)
    }

    /// [`Auditor::start_with`] and an [`outbox`] in `outbox_state` (`None`: every entry
    /// is written durably by [`Auditor::emit`]). Only for a log this process alone writes
    /// (the journal) and a state store only it uses (embedded).
    pub fn start_full(
        log: Arc<dyn AuditLog>,
        instance: String,
        batch_max: usize,
        metrics: Arc<Metrics>,
        checkpoints: Option<checkpointer::Checkpointer>,
        outbox_state: Option<Arc<dyn StateStore>>,
    ) -> Self {
        let (tx, rx) = mpsc::channel(batch_max.max(1) * 4);
        let flags = Arc::new(writer::Flags::default());
        let mut checkpoints = checkpoints;
        let seen = checkpoints.as_mut().and_then(|c| c.last_known());
        let w = writer::Writer {
            log: log.clone(),
            instance,
            batch_max: batch_max.max(1),
            seen,
            flags: flags.clone(),
            metrics: metrics.clone(),
            checkpoints,
            outbox: outbox_state.clone(),
        };
        tokio::spawn(w.run(rx));
        Self {
            tx,
            log,
            metrics,
            flags,
            outbox: outbox_state.map(|state| Outbox {
                state,
                keys: Arc::new(outbox::Keys::new()),
            }),
        }
    }

    /// The entries this auditor's writer appends from now on, handed over in memory for
    /// the index ([`source::Tap`]): woken at `page` entries, holding at most `cap`. Every
    /// call returns the same tap.
    pub fn tap(&self, page: usize, cap: usize) -> Arc<source::Tap> {
        self.flags
            .tap
            .get_or_init(|| Arc::new(source::Tap::new(page, cap)))
            .clone()
    }

    /// The log this auditor appends to (for verification and reads).
    pub fn log(&self) -> &Arc<dyn AuditLog> {
        &self.log
    }

    /// Why auditing halted, if it did (for `/readyz`): then every `emit` fails.
    pub fn halted(&self) -> Option<&HaltReason> {
        self.flags.halt.get().map(|r| &**r)
    }

    /// Records `event`; returns its sequence number once it is durable.
    pub async fn emit<E: AuditEvent>(
        &self,
        ctx: &AuditContext,
        event: &E,
    ) -> Result<u64, AuditError> {
        let result = match row(ctx, event) {
            Ok(row) => self.append_row(row).await,
            Err(e) => Err(e),
        };
        self.emitted(ctx, event, &result);
        result
    }

    /// Records `first`, then `second`, both queued before either is waited for, so the
    /// writer's next append makes both durable with one sync (two [`Auditor::emit`]s
    /// cost two). Returns their sequence numbers once both are durable; on an error
    /// `first` may be durable and `second` not, never the other way round.
    pub async fn emit_both<A: AuditEvent, B: AuditEvent>(
        &self,
        ctx: &AuditContext,
        first: &A,
        second: &B,
    ) -> Result<(u64, u64), AuditError> {
        let queued = async {
            // Both rows are built before either is queued: one that cannot be built
            // queues nothing.
            let (a, b) = (row(ctx, first)?, row(ctx, second)?);
            let (pa, a) = durable_pending(a);
            let (pb, b) = durable_pending(b);
            // One message: the writer takes both in the same wake, so the same append.
            self.tx
                .send(writer::Msg::Entries(vec![pa, pb]))
                .await
                .map_err(|_| AuditError::Stopped)?;
            Ok::<_, AuditError>((a, b))
        }
        .await;
        let (a, b) = match queued {
            Ok(q) => q,
            Err(e) => {
                let failed = Err(e);
                self.emitted(ctx, first, &failed);
                return failed.map(|seq| (seq, seq));
            }
        };
        let first_result = durable(a).await;
        self.emitted(ctx, first, &first_result);
        let second_result = durable(b).await;
        self.emitted(ctx, second, &second_result);
        Ok((first_result?, second_result?))
    }

    /// Counts and logs one emitted event's result.
    fn emitted<E: AuditEvent>(
        &self,
        ctx: &AuditContext,
        event: &E,
        result: &Result<u64, AuditError>,
    ) {
        match result {
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
    }

    /// Appends `row` as it is (its time included) and returns its sequence number once it
    /// is durable. For [`Auditor::emit`].
    async fn append_row(&self, row: outbox::Row) -> Result<u64, AuditError> {
        durable(self.send_row(row).await?).await
    }

    /// Appends `rows` in order, as they are (their times included), and returns once all
    /// are durable; the writer batches them. For [`outbox::drain`].
    pub(crate) async fn append_rows(&self, rows: Vec<outbox::Row>) -> Result<(), AuditError> {
        let mut waits = Vec::with_capacity(rows.len());
        for row in rows {
            waits.push(self.send_row(row).await?);
        }
        for wait in waits {
            durable(wait).await?;
        }
        Ok(())
    }

    /// Queues `row` for a durable append; the receiver learns its sequence number.
    async fn send_row(
        &self,
        row: outbox::Row,
    ) -> Result<oneshot::Receiver<Result<u64, AuditError>>, AuditError> {
        let (pending, wait) = durable_pending(row);
        self.tx
            .send(writer::Msg::Entry(pending))
            .await
            .map_err(|_| AuditError::Stopped)?;
        Ok(wait)
    }

    /// `event` prepared for the outbox, or `None` when this auditor has no outbox or its
    /// writer is not appending now (the last append failed, or it halted): then the caller
    /// records the event with [`Auditor::emit`], which waits for the chain itself and
    /// fails closed.
    pub fn prepare<E: AuditEvent>(
        &self,
        ctx: &AuditContext,
        event: &E,
    ) -> Result<Option<Staged>, AuditError> {
        let Some(outbox) = &self.outbox else {
            return Ok(None);
        };
        if self.flags.halt.get().is_some()
            || self
                .flags
                .failing
                .load(std::sync::atomic::Ordering::Relaxed)
        {
            return Ok(None);
        }
        Ok(Some(Staged {
            id: outbox.keys.next(),
            row: row(ctx, event)?,
            action: E::ACTION,
            outcome: event.outcome(),
        }))
    }

    /// Writes `staged`'s outbox row, deferred: the caller's next durable state-store
    /// commit makes it durable, and the caller makes that commit before it acknowledges
    /// the action.
    pub async fn stage(&self, staged: &Staged) -> Result<(), AuditError> {
        let Some(outbox) = &self.outbox else {
            return Err(AuditError::Stopped);
        };
        let bytes = staged.row.encode()?;
        let written = outbox
            .state
            .put_deferred(
                outbox::OUTBOX,
                &staged.id,
                &bytes,
                crate::state::Expect::Absent,
                crate::state::PutOptions::default(),
            )
            .await;
        match written {
            Ok(crate::state::CasOutcome::Applied(_)) => Ok(()),
            Ok(_) => Err(StateError::Corrupt("audit outbox row id taken".into()).into()),
            Err(e) => {
                self.metrics.audit_failures.inc();
                tracing::error!(target: "audit", action = staged.action, error = %e, "audit outbox write failed");
                Err(e.into())
            }
        }
    }

    /// Takes back a staged entry whose commit failed: the action was not acknowledged,
    /// and whatever recovers it audits it on its own.
    ///
    /// Durably, though the row was written deferred: another task's durable commit may
    /// have persisted the row meanwhile, and a deferred deletion lost in a crash would
    /// let the next start append the entry of an action that never happened (or a second
    /// entry of a chunk the next request settles). One sync, on a failure path only.
    pub async fn unstage(&self, staged: Staged) {
        let Some(outbox) = &self.outbox else {
            return;
        };
        if let Err(e) = outbox
            .state
            .delete(outbox::OUTBOX, &staged.id, crate::state::Expect::Any)
            .await
        {
            tracing::warn!(target: "audit", action = staged.action, error = %e, "could not take back an audit outbox row; the next start appends its entry");
        }
    }

    /// Hands a staged entry, now durable in the outbox, to the writer: it reaches the chain
    /// with the next append, or within [`outbox::OUTBOX_DELAY`].
    pub async fn release(&self, staged: Staged) {
        self.metrics
            .audit_events
            .get_or_create(&ActionLabels {
                action: staged.action,
            })
            .inc();
        tracing::info!(
            target: "audit",
            action = staged.action,
            outcome = staged.outcome.as_str(),
            outbox = %staged.id,
            request_id = staged.row.request_id.as_deref(),
            subject = staged.row.subject.as_deref(),
            "audit"
        );
        let pending = writer::Pending {
            row: staged.row,
            reply: writer::Reply::Outboxed(staged.id),
        };
        // Only fails when the writer has stopped (shutdown): the row stays in the outbox
        // and the next start appends it.
        let _ = self.tx.send(writer::Msg::Entry(pending)).await;
    }

    /// Appends the outboxed entries the writer holds, and returns once it has (or failed:
    /// their rows stay in the outbox). For a graceful stop and for tests.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(writer::Msg::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }

    /// Appends what the outbox holds from an earlier process ([`outbox::drain`]); a no-op
    /// without an outbox. Run at start, before serving.
    pub async fn drain_outbox(&self) -> Result<outbox::Drained, AuditError> {
        match &self.outbox {
            Some(o) => outbox::drain(self, &*o.state).await,
            None => Ok(outbox::Drained::default()),
        }
    }
}

/// `row` on its way to a durable append, and where its sequence number will arrive.
fn durable_pending(
    row: outbox::Row,
) -> (writer::Pending, oneshot::Receiver<Result<u64, AuditError>>) {
    let (done, wait) = oneshot::channel();
    let pending = writer::Pending {
        row,
        reply: writer::Reply::Durable(done),
    };
    (pending, wait)
}

/// The sequence number a queued row's reply gives once the row is durable.
async fn durable(wait: oneshot::Receiver<Result<u64, AuditError>>) -> Result<u64, AuditError> {
    wait.await.map_err(|_| AuditError::Stopped)?
}

/// The entry `event` makes in `ctx`, timed now.
fn row<E: AuditEvent>(ctx: &AuditContext, event: &E) -> Result<outbox::Row, AuditError> {
    Ok(outbox::Row {
        time: now_rfc3339(),
        action: E::ACTION.to_owned(),
        outcome: event.outcome().as_str().to_owned(),
        actor: serde_json::to_value(&ctx.actor)?,
        request_id: ctx.request_id.clone(),
        client_addr: ctx.client_addr.clone(),
        peer_addr: ctx.peer_addr.clone(),
        subject: event.subject(),
        details: serde_json::to_value(event)?,
    })
}

/// Current UTC time, RFC 3339 with milliseconds.
pub fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc();
    let fmt = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    now.format(&fmt).unwrap_or_default()
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
