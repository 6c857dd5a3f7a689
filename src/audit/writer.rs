//! The background writer behind [`super::Auditor`]: owns the chain's head as this process
//! knows it, seals entries onto it and appends them in batches.
//!
//! Two kinds of entry reach it. A *durable* entry has a waiter: it is appended with
//! whatever else queued up while the previous append was being made durable, and its
//! waiter learns its sequence number once the append is durable (group commit). An
//! *outboxed* entry ([`super::outbox`]) is durable already, as a row in the state store;
//! the writer holds it until an append happens anyway (it then goes first, being older),
//! until [`OUTBOX_DELAY`] has passed, or until a batch's worth is held, and deletes its
//! row once the chain holds it. A flush request appends what is held at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::log::AuditLog;
use super::outbox::{OUTBOX, OUTBOX_DELAY, Row};
use super::source::Tap;
use super::{AuditError, HaltReason, chain, checkpointer};
use crate::metrics::Metrics;
use crate::state::{AppendOutcome, Expect, StateError, StateStore};

/// A head of the chain: (sequence number, entry hash). `(0, GENESIS_PREV)` is empty.
type Head = (u64, [u8; 32]);

/// An entry on its way to the chain.
pub(super) struct Pending {
    pub(super) row: Row,
    pub(super) reply: Reply,
}

/// Who learns that an entry is in the chain.
pub(super) enum Reply {
    /// A waiter for its sequence number (or the error).
    Durable(oneshot::Sender<Result<u64, AuditError>>),
    /// Nobody: the entry is an outbox row (its id), deleted once the chain holds it.
    Outboxed(String),
}

/// What the writer is sent. Entries are sent by value (boxing one would cost an allocation
/// per audited action); a flush is rare.
#[allow(clippy::large_enum_variant)]
pub(super) enum Msg {
    Entry(Pending),
    /// Entries that go into one append, in order ([`super::Auditor::emit_both`]).
    Entries(Vec<Pending>),
    /// Append the held outboxed entries now; answered once done (or failed).
    Flush(oneshot::Sender<()>),
}

/// The writer's shared flags, read by the [`super::Auditor`].
#[derive(Debug, Default)]
pub(super) struct Flags {
    /// Why the writer halted, if it did.
    pub(super) halt: OnceLock<Arc<HaltReason>>,
    /// The last append failed (cleared by the next that succeeds).
    pub(super) failing: AtomicBool,
    /// Where appended entries go for the indexer, once it asked ([`super::Auditor::tap`]).
    pub(super) tap: OnceLock<Arc<Tap>>,
}

/// The background writer.
pub(super) struct Writer {
    pub(super) log: Arc<dyn AuditLog>,
    pub(super) instance: String,
    pub(super) batch_max: usize,
    /// The highest head this writer has seen, from its own appends and from every head
    /// it read. The store showing anything lower halts the writer.
    pub(super) seen: Option<Head>,
    pub(super) flags: Arc<Flags>,
    pub(super) metrics: Arc<Metrics>,
    pub(super) checkpoints: Option<checkpointer::Checkpointer>,
    /// Where outbox rows live (deleted once their entry is in the chain).
    pub(super) outbox: Option<Arc<dyn StateStore>>,
}

/// Puts a received entry where it waits: with a waiter, in this wake's batch; an
/// outboxed one, among the held (noting since when, for the first).
fn sort(
    p: Pending,
    batch: &mut Vec<Pending>,
    held: &mut Vec<Pending>,
    held_since: &mut Option<Instant>,
) {
    match p.reply {
        Reply::Durable(_) => batch.push(p),
        Reply::Outboxed(_) => {
            if held.is_empty() {
                *held_since = Some(Instant::now());
            }
            held.push(p);
        }
    }
}

/// What woke the writer.
enum Wake {
    Received(usize),
    Tick,
    Due,
}

impl Writer {
    /// Runs until every sender is gone, then appends what it holds.
    pub(super) async fn run(mut self, mut rx: mpsc::Receiver<Msg>) {
        let mut head: Option<Head> = None;
        let mut msgs = Vec::with_capacity(self.batch_max);
        // Outboxed entries held for a sync to share, and since when.
        let mut held: Vec<Pending> = Vec::new();
        let mut held_since: Option<Instant> = None;
        let mut tick = self.checkpoints.as_ref().map(|c| {
            let mut t = tokio::time::interval_at(Instant::now() + c.interval(), c.interval());
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            t
        });
        loop {
            let due = held_since.map(|t| t + OUTBOX_DELAY);
            let wake = tokio::select! {
                n = rx.recv_many(&mut msgs, self.batch_max) => Wake::Received(n),
                () = async {
                    match tick.as_mut() {
                        Some(t) => { t.tick().await; }
                        None => std::future::pending().await,
                    }
                } => Wake::Tick,
                () = async {
                    match due {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                } => Wake::Due,
            };
            let mut batch = Vec::new();
            let mut flushes = Vec::new();
            match wake {
                Wake::Tick => {
                    if let (Some(c), Some(h)) = (self.checkpoints.as_mut(), head)
                        && self.flags.halt.get().is_none()
                    {
                        c.on_timer(h.0, &h.1).await;
                    }
                    continue;
                }
                Wake::Due => {}
                Wake::Received(0) => {
                    // Every sender is gone: append what is held, then stop.
                    if !held.is_empty() {
                        let mut last = std::mem::take(&mut held);
                        self.write(&mut last, &mut head).await;
                    }
                    break;
                }
                Wake::Received(_) => {
                    for m in msgs.drain(..) {
                        match m {
                            Msg::Entry(p) => sort(p, &mut batch, &mut held, &mut held_since),
                            Msg::Entries(ps) => {
                                for p in ps {
                                    sort(p, &mut batch, &mut held, &mut held_since);
                                }
                            }
                            Msg::Flush(done) => flushes.push(done),
                        }
                    }
                    // Held entries wait for a sync to share, unless asked for or a batch.
                    if batch.is_empty() && flushes.is_empty() && held.len() < self.batch_max {
                        self.metrics.audit_outbox_held.set(held.len() as i64);
                        continue;
                    }
                }
            }
            // The held (older) entries first, then the ones that came with a waiter.
            let mut entries = std::mem::take(&mut held);
            entries.append(&mut batch);
            held_since = None;
            if !entries.is_empty() {
                let retry = self.write(&mut entries, &mut head).await;
                if !retry.is_empty() {
                    // The append failed: the rows stay in the outbox; try again later.
                    held = retry;
                    held_since = Some(Instant::now());
                }
            }
            self.metrics.audit_outbox_held.set(held.len() as i64);
            for done in flushes {
                let _ = done.send(());
            }
        }
    }

    /// Appends `entries` and answers their waiters; returns the outboxed ones to try again
    /// when the append failed (none when the writer halted: their rows wait for the next
    /// start).
    async fn write(&mut self, entries: &mut Vec<Pending>, head: &mut Option<Head>) -> Vec<Pending> {
        if let Some(reason) = self.flags.halt.get() {
            let reason = reason.clone();
            answer(entries.drain(..), |_| {
                Err(AuditError::Halted(reason.clone()))
            });
            return Vec::new();
        }
        match self.append_batch(entries, head).await {
            Ok(first) => {
                self.flags.failing.store(false, Ordering::Relaxed);
                // A checkpoint that is due is written before the batch is acknowledged
                // (its failure is only logged and counted): a process that exits right
                // after its last audited action — a graceful stop — still leaves the
                // checkpoint that covers it. It costs one signature and one fsync per
                // `audit.checkpoint_every` entries.
                if let (Some(c), Some(h)) = (self.checkpoints.as_mut(), *head) {
                    c.on_append(h.0, &h.1).await;
                }
                let mut delivered = Vec::new();
                for (i, p) in entries.drain(..).enumerate() {
                    match p.reply {
                        Reply::Durable(done) => {
                            let _ = done.send(Ok(first + i as u64));
                        }
                        Reply::Outboxed(id) => delivered.push(id),
                    }
                }
                self.delete_rows(delivered);
                Vec::new()
            }
            Err(AuditError::Halted(reason)) => {
                answer(entries.drain(..), |_| {
                    Err(AuditError::Halted(reason.clone()))
                });
                Vec::new()
            }
            Err(e) => {
                *head = None;
                self.flags.failing.store(true, Ordering::Relaxed);
                let msg = e.to_string();
                let mut retry = Vec::new();
                for p in entries.drain(..) {
                    match p.reply {
                        Reply::Durable(done) => {
                            let _ = done
                                .send(Err(AuditError::Store(StateError::Unavailable(msg.clone()))));
                        }
                        Reply::Outboxed(_) => retry.push(p),
                    }
                }
                if !retry.is_empty() {
                    tracing::error!(target: "audit", error = %msg, held = retry.len(), "audit append failed; outboxed entries are kept and retried");
                }
                retry
            }
        }
    }

    /// Deletes the outbox rows of entries now in the chain, deferred (a row whose deletion
    /// a crash loses is recognised at the next start and not appended twice).
    fn delete_rows(&self, ids: Vec<String>) {
        let Some(state) = self.outbox.clone() else {
            return;
        };
        if ids.is_empty() {
            return;
        }
        tokio::spawn(async move {
            for id in ids {
                if let Err(e) = state.delete_deferred(OUTBOX, &id, Expect::Any).await {
                    tracing::warn!(target: "audit", error = %e, "could not delete an audit outbox row; the next start skips it");
                    return;
                }
            }
        });
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
                let (line, hash) = p.row.seal(last_seq + 1 + i as u64, &self.instance, &prev)?;
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
                    if let Some(tap) = self.flags.tap.get() {
                        tap.push(first, lines);
                    }
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
        let reason = self.flags.halt.get_or_init(|| reason).clone();
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

/// Answers the waiters among `entries` with `result`; outboxed ones have none (their rows
/// stay in the outbox).
fn answer(entries: impl Iterator<Item = Pending>, result: impl Fn(()) -> Result<u64, AuditError>) {
    for p in entries {
        if let Reply::Durable(done) = p.reply {
            let _ = done.send(result(()));
        }
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
