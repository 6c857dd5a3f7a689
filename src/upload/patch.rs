//! `PATCH`: appending a chunk, under the upload's lease.
//!
//! The steps, in order (the overview in `upload.rs` has the why): plan against the record
//! read without the lease (refusals change nothing) → take the lease → [`Uploads::reconcile`]
//! (re-read the record and finish a commit a crash interrupted) → plan again against the
//! fresh record → [`Uploads::take_body`] (stream the body through the digest and writer
//! [`stage`](super::stage)s, verify the declared checksum) → [`Uploads::commit_chunk`]
//! (pending record, commit or finish the object, ledger entry and record, audit) → release
//! the lease. A creation with a body (`create.rs`) enters at `take_body`.
//!
//! **Syncs.** A chunk that does not complete the upload costs one state-store sync: its
//! pending record is written deferred and becomes durable with the record's commit, and
//! what it says is also sealed into the object's tail record (the *commit note*), the
//! commit point. A crash between that commit point and the record's commit loses the
//! pending record with the record and ledger entry (the embedded store rolls back to its
//! last durable commit, which still holds the previous chunk's pending record, its
//! deletion being deferred); `reconcile` settles that one (its entries again, marked
//! recovered), finds the object one commit ahead of its record and finishes that commit
//! from the note. HEAD reports the record's offset until then (the chunk was
//! never acknowledged), so a client that resends it gets 409 once and its next HEAD has
//! the chunk. The completing chunk, and one whose note would pass
//! [`MAX_NOTE_LEN`](crate::at_rest::MAX_NOTE_LEN), keep the durable write-ahead: the end
//! of an upload is exact for every reader (HEAD, a batch seal) even after a crash.
//!
//! Also here: the `upload.chunk_accepted` and `upload.completed` audit events, which
//! creation, concatenation and reconciliation emit too.
//!
//! A little over 400 lines on purpose: the write-ahead order (pending record, commit,
//! ledger entry and record, audit, clear) and `reconcile`, which finishes a commit a crash
//! interrupted, are one protocol, best read side by side in one file.
//!
//! **Audit.** With the journal, a chunk that does not complete its upload puts its
//! `upload.chunk_accepted` entry in the audit outbox (`audit::outbox`, decision 0010): a
//! row written deferred before the record's commit, so that commit makes the entry durable
//! too, handed to the audit writer after it (the chain gets it with the writer's next
//! sync), and the pending record says `outboxed` so a crash never writes it again.
//! Otherwise (the completing chunk, a store without an outbox, a writer that is failing)
//! the pending record goes only once the chunk's `upload.chunk_accepted` (and
//! `upload.completed`) entries are durable. When they cannot be written the client gets
//! 503 although the bytes are durable and the offset has advanced
//! (`UploadError::AuditPending`, 503 `upload.audit_pending`); the entries are then
//! *recovered*: the next HEAD or PATCH, under the lease,
//! finds the pending record of an applied commit and writes them (`recovered: true`)
//! before it answers, and nothing else happens to the upload first (a HEAD that cannot
//! write them answers 503 too). Entries are written at least once: a crash between the
//! entries and the clear writes them again, marked recovered.

use std::error::Error as StdError;
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use http_body::Body;
use http_body_util::BodyExt;

use crate::at_rest::{AtRestError, Reopened, Writer};
use crate::audit::AuditContext;
use crate::tus::TusError;
use crate::tus::checksum::ChunkDigest;
use crate::tus::dates::Timestamp;
use crate::tus::plan::{self, PatchPlan};
use crate::tus::record::{ConcatKind, UploadId, UploadRecord};
use crate::tus::request::PatchRequest;

use super::events::{ChecksumMismatch, ChunkAccepted, UploadCompleted};
use super::lease::LeaseGuard;
use super::stage::Stage;
use super::store::Pending;
use super::{Caller, Outcome, UploadError, Uploads, refusal, with_expiry};

// === impl Uploads: PATCH ===

impl Uploads {
    /// `PATCH {base}{id}`: appends a chunk.
    pub async fn patch<B>(
        &self,
        who: &Caller,
        id: UploadId,
        headers: &HeaderMap,
        body: B,
    ) -> Result<Outcome, UploadError>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn StdError + Send + Sync>>,
    {
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
        let (record, _) = self.load_for(id, who, now, "patch").await?;
        plan::plan_patch(&record, &request, who.requester(), now, self.limits())
            .map_err(|error| refusal(error, &record))?;
        // While the length is deferred a chunk grows the owner's byte quota: one that
        // cannot fit is refused before its body is read when its length is known.
        if record.length.is_none() {
            let after = match (request.length, request.body.content_length) {
                (Some(length), _) => Some(length),
                (None, Some(n)) => Some(record.offset.saturating_add(n)),
                (None, None) => None,
            };
            if let Some(after) = after {
                self.precheck_bytes(
                    &record.owner,
                    after.saturating_sub(record.offset),
                    self.byte_limit(who),
                )
                .await?;
            }
        }
        let guard = self.lease(id).await.map_err(|e| with_expiry(e, &record))?;
        let result = self.patch_locked(who, id, &request, &guard, body).await;
        guard.release().await;
        result
    }

    async fn patch_locked<B>(
        &self,
        who: &Caller,
        id: UploadId,
        request: &PatchRequest,
        guard: &LeaseGuard,
        body: B,
    ) -> Result<Outcome, UploadError>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn StdError + Send + Sync>>,
    {
        let (record, version, writer) = self.reconcile(id, who).await?;
        let now = Timestamp::now();
        let plan = plan::plan_patch(&record, request, who.requester(), now, self.limits())
            .map_err(|error| refusal(error, &record))?;
        let writer = match writer {
            Some(w) => w,
            // Complete already: the plan lets through only a PATCH at the final offset that
            // declared no bytes, or declared no length at all (chunked). A byte of the
            // latter is past the upload's length: refused, never acknowledged and dropped.
            None => return refuse_past_the_end(record, body).await,
        };
        self.take_body(who, guard, record, version, &plan, writer, body)
            .await
    }

    /// Under the lease: re-reads the record and finishes a commit a crash interrupted.
    /// Returns the record, its version and the writer (`None` when the object is finished).
    ///
    /// The pending record says what the interrupted commit meant. If the at-rest object
    /// holds exactly the bytes it names, the commit happened (the client may not have
    /// been told): apply the record and ledger entry now. If the record and ledger were
    /// applied already, the commit's audit entries were not written (they go before the
    /// pending record): write them now. Either way those entries carry `recovered: true`.
    /// Otherwise the bytes never became durable and the pending record is dropped.
    pub(super) async fn reconcile(
        &self,
        id: UploadId,
        who: &Caller,
    ) -> Result<(UploadRecord, u64, Option<Writer>), UploadError> {
        let (mut record, mut version) = self.store.get(id).await?.ok_or(TusError::NotFound)?;
        let mut reopened = self.at_rest.open_writer(id.opaque()).await?;
        // First the pending record, then the commit note: after a crash between a chunk's
        // commit point and its record's commit, the store holds the previous chunk's
        // pending record (its deletion was deferred) and the note says what the last
        // commit meant.
        let mut candidate = self.store.pending(id).await?.map(|p| (p, false));
        let mut note_read = false;
        loop {
            let (pending, from_note) = match candidate.take() {
                Some(c) => c,
                None if !note_read => {
                    note_read = true;
                    match noted_commit(id, &record, &reopened) {
                        Some(p) => (p, true),
                        None => break,
                    }
                }
                None => break,
            };
            let target = pending.record.offset;
            let durable = match &reopened {
                Reopened::Open { writer, .. } => writer.committed().plaintext_len,
                Reopened::Finished(f) => f.plaintext_len,
            };
            let committed = durable == target && record.offset == pending.from_offset;
            let applied = record.offset == target
                && record.is_complete() == pending.record.is_complete()
                && record.chunks == pending.record.chunks;
            // The chunk's entries are written before the pending record goes, so a
            // pending record whose commit is applied means the audit was not (a failed
            // write, or a crash in between): the entries are written now, as recovered.
            // (A note is only read for a commit that is not applied.)
            if applied && !from_note && !pending.outboxed {
                if let Some(entry) = &pending.entry {
                    self.audit_chunk(who, id, entry, false, true).await?;
                }
                if pending.completes && record.is_complete() {
                    self.audit_completed(&who.audit, &record, true).await?;
                }
            }
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
                if from_note {
                    // The reservation was lost with the pending record: taken again, past
                    // the limit if need be (the bytes are committed).
                    let grow =
                        super::quota::held(&next).saturating_sub(super::quota::held(&record));
                    self.reserve_bytes(&record.owner, grow, u64::MAX).await?;
                }
                if let Some(entry) = &pending.entry {
                    self.store.put_chunk(id, entry).await?;
                }
                version = self.store.update(&next, version).await?;
                if let Some(entry) = &pending.entry {
                    self.audit_chunk(who, id, entry, false, true).await?;
                }
                if next.is_complete() {
                    self.audit_completed(&who.audit, &next, true).await?;
                }
                record = next;
            }
            if !from_note {
                self.store.clear_pending_deferred(id).await?;
            }
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

    /// Under the lease: streams `body` into `writer` and its digests, verifies the
    /// declared checksum and commits the chunk (or rolls it back and refuses).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn take_body<B>(
        &self,
        who: &Caller,
        guard: &LeaseGuard,
        record: UploadRecord,
        version: u64,
        plan: &PatchPlan,
        writer: Writer,
        body: B,
    ) -> Result<Outcome, UploadError>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn StdError + Send + Sync>>,
    {
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
        // Pinned on the stack: the body need not be `Unpin` to be read frame by frame.
        let mut body = std::pin::pin!(body);
        let mut trailers = None;
        let mut aborted = false;
        let mut too_long = false;
        let mut lease_lost = false;
        let mut stalled = false;
        let mut too_slow = false;
        let body_timeout = self.settings.body_timeout;
        let min_rate = self.settings.min_body_rate;
        let began = tokio::time::Instant::now();
        loop {
            // A body that sends nothing for `body_timeout` ends here (it holds no thread
            // while it waits; see `stage`): what arrived before the stall is kept below.
            // So does one that trickles: its deadline grows by a second per `min_rate`
            // bytes received, from `body_timeout`.
            let mut wait = body_timeout;
            if let Some(deadline) = body_deadline(began, body_timeout, hasher.length(), min_rate) {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                if left.is_zero() {
                    too_slow = true;
                    break;
                }
                wait = wait.min(left);
            }
            let Ok(next) = tokio::time::timeout(wait, body.frame()).await else {
                if wait < body_timeout {
                    too_slow = true;
                } else {
                    stalled = true;
                }
                break;
            };
            let Some(frame) = next else {
                break;
            };
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
        let stall = |offset: u64| UploadError::BodyStalled {
            secs: body_timeout.as_secs(),
            offset,
        };
        let slow = |offset: u64| UploadError::BodyTooSlow { min_rate, offset };
        let expected = if aborted || stalled || too_slow {
            if !plan.keep_partial_on_abort() || hasher.length() == 0 {
                writer.rollback().await?;
                return Err(if stalled {
                    stall(plan.start())
                } else if too_slow {
                    slow(plan.start())
                } else {
                    UploadError::BodyAborted
                });
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
        // A body of unknown length in the upload's last ledger slot: taken only if it
        // completes the upload (`uploads.max_chunks_per_upload`); otherwise discarded.
        if let Err(error) = plan.check_chunk_cap(&record, digest.length) {
            writer.rollback().await?;
            return Err(refusal(error, &record));
        }
        let outcome = self
            .commit_chunk(
                who,
                record,
                version,
                plan,
                writer,
                &digest,
                aborted || stalled || too_slow,
            )
            .await?;
        if stalled {
            return Err(stall(outcome.record.offset));
        }
        if too_slow {
            return Err(slow(outcome.record.offset));
        }
        Ok(outcome)
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
        // While the length is deferred, the quota grows with the upload (a declared
        // length reserves all of it): reserved before the bytes become durable (deferred:
        // the pending record's durable write below persists it too).
        let grow = super::quota::held(&next).saturating_sub(super::quota::held(&record));
        if let Err(e) = self
            .reserve_bytes(&record.owner, grow, self.byte_limit(who))
            .await
        {
            writer.rollback().await?;
            return Err(e);
        }
        // Say what this commit will mean before making the bytes durable: the pending
        // record, and (but for the completing chunk) the same as the commit note sealed
        // into the object's commit point. With the note there the pending record needs no
        // sync of its own: on the embedded store it becomes durable with the upload
        // record's commit below, as does the commit point itself (a deferred tail
        // record); where the store applies writes one by one (Redis), a crash between
        // the commit point and the record is finished from the note (`reconcile`). The
        // completing chunk, and a note too large for the tail record, keep the durable
        // write-ahead: then the upload's end is exact for every reader (HEAD, a batch
        // seal) even after a crash.
        //
        // The chunk's audit entry, when it can, rides on the same commit: written to the
        // audit outbox, deferred, and handed to the audit writer after the commit (it
        // reaches the chain with the next sync the writer makes anyway). Not for the
        // completing chunk: an upload's entries are all in the chain once its completion
        // is acknowledged.
        let staged = match (&commit.entry, completes || commit.completed) {
            (Some(entry), false) => {
                let event = chunk_accepted(id, entry, partial_body, false);
                match self.auditor.prepare(&who.audit, &event) {
                    Ok(staged) => staged,
                    Err(e) => {
                        self.release_bytes(&record.owner, grow).await;
                        writer.rollback().await?;
                        return Err(UploadError::Audit(e));
                    }
                }
            }
            _ => None,
        };
        let mut pending = Pending {
            from_offset: record.offset,
            record: next.clone(),
            entry: commit.entry.clone(),
            completes,
            outboxed: staged.is_some(),
        };
        let note = (!completes)
            .then(|| super::store::UploadStore::encode_pending(&pending).ok())
            .flatten()
            .filter(|n| n.len() <= crate::at_rest::MAX_NOTE_LEN);
        // A commit that keeps the durable write-ahead keeps the synchronous entry too.
        let staged = match note {
            Some(_) => staged,
            None => {
                pending.outboxed = false;
                None
            }
        };
        let written = match &note {
            Some(encoded) => self.store.set_pending_deferred(id, encoded).await,
            None => self.store.set_pending(id, &pending).await,
        };
        if let Err(e) = written {
            self.release_bytes(&record.owner, grow).await;
            return Err(e.into());
        }
        if completes {
            let finished = writer.finish().await?;
            next.sha256 = Some(crate::tus::record::Sha256Digest(finished.sha256));
        } else {
            // The object's commit point goes to the state store, deferred: the record's
            // durable commit below makes it durable with the record (one commit on the
            // embedded store; on Redis the note covers a crash between the two).
            writer
                .commit_deferred(note.as_deref().unwrap_or_default())
                .await?;
        }
        // The ledger entry is written deferred and the record durably: one commit (one
        // sync) makes both durable, before anything is answered.
        if let Some(entry) = &commit.entry {
            self.store.put_chunk(id, entry).await?;
        }
        if let Some(staged) = &staged {
            self.auditor.stage(staged).await?;
        }
        if let Err(e) = self.store.update(&next, version).await {
            // Not acknowledged: the pending record says what the commit meant, and the
            // next request under the lease settles it and audits it (`reconcile`).
            if let Some(staged) = staged {
                self.auditor.unstage(staged).await;
            }
            return Err(e.into());
        }
        if let Some(staged) = staged {
            self.auditor.release(staged).await;
            self.store.clear_pending_deferred(id).await?;
            return Ok(Outcome { record: next });
        }
        // The entries before the pending record goes: if they cannot be written the
        // client gets 503 and the pending record stays, so the next request under the
        // lease (a HEAD, a PATCH) writes them as recovered before anything else happens.
        let audited = async {
            match (&commit.entry, commit.completed) {
                // The completing chunk: both entries in one append (one journal sync).
                (Some(entry), true) => {
                    self.auditor
                        .emit_both(
                            &who.audit,
                            &chunk_accepted(id, entry, partial_body, false),
                            &upload_completed(&next, false),
                        )
                        .await?;
                }
                (Some(entry), false) => {
                    self.audit_chunk(who, id, entry, partial_body, false)
                        .await?;
                }
                (None, true) => self.audit_completed(&who.audit, &next, false).await?,
                (None, false) => {}
            }
            Ok(())
        }
        .await;
        match audited {
            Ok(()) => {}
            Err(UploadError::Audit(e)) => return Err(UploadError::AuditPending(e)),
            Err(e) => return Err(e),
        }
        self.store.clear_pending_deferred(id).await?;
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
                &chunk_accepted(id, entry, partial_body, recovered),
            )
            .await?;
        Ok(())
    }

    pub(super) async fn audit_completed(
        &self,
        ctx: &AuditContext,
        record: &UploadRecord,
        recovered: bool,
    ) -> Result<(), UploadError> {
        self.auditor
            .emit(ctx, &upload_completed(record, recovered))
            .await?;
        Ok(())
    }
}

/// The `upload.completed` event of a complete record.
fn upload_completed(record: &UploadRecord, recovered: bool) -> UploadCompleted {
    UploadCompleted {
        upload: record.id.to_string(),
        length: record.offset,
        sha256: record.sha256.map(|d| d.to_string()).unwrap_or_default(),
        chunks: record.chunks,
        parts: match &record.concat {
            ConcatKind::Final { parts } => parts.iter().map(ToString::to_string).collect(),
            _ => Vec::new(),
        },
        recovered,
    }
}

/// The `upload.chunk_accepted` event of a ledger entry.
fn chunk_accepted(
    id: UploadId,
    entry: &crate::tus::ledger::ChunkEntry,
    partial_body: bool,
    recovered: bool,
) -> ChunkAccepted {
    ChunkAccepted {
        upload: id.to_string(),
        index: entry.index,
        offset: entry.offset,
        length: entry.length,
        sha256: entry.sha256.to_string(),
        checksum_verified: entry.checksum_verified.map(|a| a.name()),
        partial_body,
        recovered,
    }
}

/// The pending record sealed as the commit note of the object's last commit, when that
/// commit is not applied to `record`: the object is ahead of it, by exactly that commit.
fn noted_commit(id: UploadId, record: &UploadRecord, reopened: &Reopened) -> Option<Pending> {
    let Reopened::Open { writer, .. } = reopened else {
        return None;
    };
    let durable = writer.committed().plaintext_len;
    if durable == record.offset || writer.note().is_empty() {
        return None;
    }
    let noted: Pending = serde_json::from_slice(writer.note()).ok()?;
    (noted.record.id == id && noted.from_offset == record.offset && noted.record.offset == durable)
        .then_some(noted)
}

/// When a body that began at `began` must be complete, having received `received` bytes
/// so far: `timeout` plus one second per `min_rate` bytes (`uploads.min_body_rate`); `None`
/// with no floor (`min_rate` 0) or past any representable instant.
fn body_deadline(
    began: tokio::time::Instant,
    timeout: Duration,
    received: u64,
    min_rate: u64,
) -> Option<tokio::time::Instant> {
    if min_rate == 0 {
        return None;
    }
    let whole = Duration::from_secs(received / min_rate);
    let part = Duration::from_nanos(
        u64::try_from(u128::from(received % min_rate) * 1_000_000_000 / u128::from(min_rate))
            .ok()?,
    );
    began.checked_add(timeout.checked_add(whole)?.checked_add(part)?)
}

/// The answer to a PATCH on a complete upload: fine when its body is empty, else 413 on
/// the first data byte (nothing more is read).
async fn refuse_past_the_end<B>(record: UploadRecord, body: B) -> Result<Outcome, UploadError>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let mut body = std::pin::pin!(body);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| UploadError::BodyAborted)?;
        if frame.data_ref().is_some_and(|d| !d.is_empty()) {
            let length = record.length.unwrap_or(record.offset);
            return Err(refusal(TusError::ExceedsLength { length }, &record));
        }
    }
    Ok(Outcome { record })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_deadline_grows_a_second_per_min_rate_bytes() {
        let t0 = tokio::time::Instant::now();
        let secs = Duration::from_secs;
        assert_eq!(body_deadline(t0, secs(30), 0, 1024), Some(t0 + secs(30)));
        assert_eq!(body_deadline(t0, secs(30), 2048, 1024), Some(t0 + secs(32)));
        assert_eq!(
            body_deadline(t0, secs(30), 1536, 1024),
            Some(t0 + secs(31) + Duration::from_millis(500))
        );
        // No floor: only the per-frame timeout applies.
        assert_eq!(body_deadline(t0, secs(30), 1 << 40, 0), None);
        // Far past any instant: no deadline rather than a panic.
        assert_eq!(body_deadline(t0, secs(30), u64::MAX, 1), None);
    }
}
