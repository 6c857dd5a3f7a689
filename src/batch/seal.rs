//! Sealing and verification (`proto/batches-v1.md` §4).
//!
//! `seal` moves the batch `open → sealing` (after which no member can be admitted; see
//! `admission.rs` for why none slips through), audits `batch.sealed`, and starts the
//! runner. The runner, under a lease named for the batch (one runner on any instance):
//!
//! 1. lists the member bindings, in upload-id order;
//! 2. for each upload without stored facts: reads the upload record (complete? how many
//!    bytes? the recorded whole-file SHA-256), then streams the stored object back through
//!    the at-rest reader — every segment authenticated and decrypted — into a thread that
//!    hashes it and feeds the NDJSON checker. Memory is bounded by the reader's chunk and
//!    a four-chunk queue, whatever the batch size; no plaintext is written anywhere;
//! 3. stores that member's facts (so a restart resumes with the next member) and the
//!    progress;
//! 4. when every member has facts: the pure verdict plus the profile's rules give the
//!    findings; the report is stored; `batch.verdict` (with the report's SHA-256) is
//!    audited; the batch becomes `released` or `quarantined` (audited too).
//!
//! A batch is never `released` without facts for every bound upload: the verdict is only
//! computed after the loop over all of them completed.

use std::time::Duration;

use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use super::events::{BatchQuarantined, BatchReleased, BatchSealed, BatchVerdict};
use super::ndjson::NdjsonChecker;
use super::record::{
    BatchId, BatchRecord, BatchState, Decision, MemberFacts, Progress, VerdictSummary,
};
use super::verdict::{
    self, Expected, ExpectedMember, ExpectedNdjson, Finding, Observed, ObservedMember, Verdict,
};
use super::{BatchError, Batches, Who, profile};
use crate::audit::AuditContext;
use crate::grant::now_unix;
use crate::manifest::Manifest;
use crate::tus::record::UploadId;
use crate::upload::lease::{Acquired, LeaseGuard};

/// How long the runner's lease lasts without renewal.
const LEASE_TTL: Duration = Duration::from_secs(30);
/// Progress is saved at least this often (in bytes read) within a member.
const PROGRESS_EVERY: u64 = 64 << 20;

impl Batches {
    /// `POST /v1/batches/{id}/seal`: no more members; verification starts in the
    /// background. Sealing a batch that is already sealing answers as the first time.
    pub async fn seal(&self, who: &Who, id: BatchId) -> Result<BatchRecord, BatchError> {
        let (record, _) = self.load_for_write(who, id).await?;
        match record.state {
            BatchState::Sealing => {
                self.start_runner(id);
                return Ok(record);
            }
            BatchState::Open => {}
            _ => return Err(BatchError::NotOpen),
        }
        self.audit_change(&who.audit, id, "seal", record.state, None)
            .await?;
        let now = now_unix();
        let record = self
            .update(id, |r| {
                if r.state != BatchState::Open {
                    return Err(BatchError::NotOpen);
                }
                r.state = BatchState::Sealing;
                r.expires_at = None;
                r.sealed = Some(Decision {
                    by: who.name.clone(),
                    reason: "sealed".into(),
                    at: now,
                });
                Ok(true)
            })
            .await?;
        // Listed after the move, so every admitted member is in it (admission.rs).
        let bindings = self.store.bindings(id).await?;
        self.auditor
            .emit(
                &who.audit,
                &BatchSealed {
                    batch: id.to_string(),
                    uploads: bindings.len() as u64,
                },
            )
            .await?;
        self.start_runner(id);
        Ok(record)
    }

    /// Starts the runner for `id` on this instance unless it is already running here.
    pub(super) fn start_runner(&self, id: BatchId) {
        {
            let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
            if !running.insert(id) {
                return;
            }
        }
        let this = self.clone();
        tokio::spawn(async move {
            if let Err(e) = this.run(id).await {
                tracing::warn!(batch = %id, error = %e, "batch verification stopped; the sweeper resumes it");
            }
            this.running
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&id);
        });
    }

    /// Verifies a sealing batch to its verdict (see the module docs). Returns quietly when
    /// another instance holds the batch's lease or the batch is not sealing.
    pub async fn run(&self, id: BatchId) -> Result<(), BatchError> {
        let guard = match LeaseGuard::acquire(
            self.store.state().clone(),
            format!("batch-seal/{id}"),
            LEASE_TTL,
        )
        .await?
        {
            Acquired::Held(g) => g,
            Acquired::Busy(_) => return Ok(()),
        };
        let result = self.verify(id).await;
        guard.release().await;
        result
    }

    async fn verify(&self, id: BatchId) -> Result<(), BatchError> {
        let Some((record, _)) = self.store.get(id).await? else {
            return Ok(());
        };
        if record.state != BatchState::Sealing {
            return Ok(());
        }
        let manifest = self.store.manifest(&record).await?;
        let bindings = self.store.bindings(id).await?;
        // The totals, for progress: what each bound upload holds now.
        let mut bytes_total = 0u64;
        for b in &bindings {
            if let Some(r) = self.uploads.record(b.upload).await? {
                bytes_total = bytes_total.saturating_add(r.offset);
            }
        }
        let mut progress = Progress {
            members_checked: 0,
            members_total: bindings.len() as u64,
            bytes_checked: 0,
            bytes_total,
        };
        let mut facts = Vec::with_capacity(bindings.len());
        for b in &bindings {
            let known = match self.store.facts(id, b.upload).await? {
                // Checked before a restart: counted, not read again.
                Some(f) => {
                    if f.stream_sha256.is_some() {
                        progress.bytes_checked = progress.bytes_checked.saturating_add(f.size);
                    }
                    f
                }
                None => {
                    let f = self
                        .check_member(id, &manifest, &b.member, b.upload, &mut progress)
                        .await?;
                    self.store.put_facts(id, &f).await?;
                    f
                }
            };
            progress.members_checked += 1;
            self.save_progress(id, &progress).await?;
            facts.push(known);
        }
        self.conclude(&record, &manifest, &facts, progress).await
    }

    /// Reads one member upload back and returns its facts.
    async fn check_member(
        &self,
        id: BatchId,
        manifest: &Manifest,
        member: &str,
        upload: UploadId,
        progress: &mut Progress,
    ) -> Result<MemberFacts, BatchError> {
        let mut facts = MemberFacts {
            member: member.to_owned(),
            upload,
            present: false,
            complete: false,
            size: 0,
            upload_sha256: None,
            stream_sha256: None,
            unreadable: false,
            ndjson: None,
        };
        // A completion whose audit entry is missing is recovered before the verdict reads
        // it: no verdict rests on an upload the trail does not show complete.
        self.uploads.recover_pending(upload).await?;
        let Some(record) = self.uploads.record(upload).await? else {
            // Bound, but the upload is gone (terminated, expired, or its creation failed
            // after admission): not a member that arrived.
            return Ok(facts);
        };
        facts.present = true;
        facts.complete = record.is_complete();
        facts.size = record.offset;
        facts.upload_sha256 = record.sha256.map(|d| hex::encode(d.0));
        if !facts.complete {
            return Ok(facts);
        }
        let resource_type = manifest
            .member(member)
            .and_then(|(_, m)| m.ndjson())
            .map(|n| n.resource_type().as_str().to_owned());
        let reader = match self.store.at_rest().open_reader(upload.opaque()).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(batch = %id, upload = %upload, error = %e, "a member's stored data cannot be opened");
                facts.unreadable = true;
                return Ok(facts);
            }
        };
        let (tx, mut rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(4);
        let limits = self.settings.ndjson;
        let digest = tokio::task::spawn_blocking(move || {
            let mut hasher = Sha256::new();
            let mut checker = resource_type.map(|t| NdjsonChecker::new(&t, limits));
            while let Some(chunk) = rx.blocking_recv() {
                hasher.update(&chunk);
                if let Some(c) = checker.as_mut() {
                    c.feed(&chunk);
                }
            }
            (hasher.finalize(), checker.map(NdjsonChecker::finish))
        });
        let mut stream = Box::pin(reader.stream_range(0, reader.len())?);
        let mut since_saved = 0u64;
        let mut failed = false;
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(bytes) => {
                    let n = bytes.len() as u64;
                    if tx.send(bytes).await.is_err() {
                        failed = true;
                        break;
                    }
                    progress.bytes_checked = progress.bytes_checked.saturating_add(n);
                    since_saved += n;
                    if since_saved >= PROGRESS_EVERY {
                        since_saved = 0;
                        self.save_progress(id, progress).await?;
                    }
                }
                Err(e) => {
                    tracing::warn!(batch = %id, upload = %upload, error = %e, "a member's stored data failed its integrity check");
                    failed = true;
                    break;
                }
            }
        }
        drop(tx);
        let (sha, report) = digest.await.map_err(|_| {
            BatchError::Upload(crate::upload::UploadError::Internal(
                "the batch hashing thread stopped",
            ))
        })?;
        if failed {
            facts.unreadable = true;
        } else {
            facts.stream_sha256 = Some(hex::encode(sha));
            facts.ndjson = report;
        }
        Ok(facts)
    }

    async fn save_progress(&self, id: BatchId, progress: &Progress) -> Result<(), BatchError> {
        self.update(id, |r| {
            if r.state != BatchState::Sealing {
                return Ok(false);
            }
            r.progress = Some(progress.clone());
            Ok(true)
        })
        .await?;
        Ok(())
    }

    /// The verdict over every member's facts, its report, its audit records and the
    /// batch's new state.
    async fn conclude(
        &self,
        record: &BatchRecord,
        manifest: &Manifest,
        facts: &[MemberFacts],
        progress: Progress,
    ) -> Result<(), BatchError> {
        let id = record.id;
        let mut findings = verdict_of(manifest, facts).findings().to_vec();
        if let Some(name) = &record.profile {
            // The profile as configured now: rules changed since the batch was opened
            // apply too. A profile removed from the config is a violation, not a pass.
            match self.settings.profile(name) {
                Some(p) => {
                    // The provenance as stored; a profile requiring one was checked at open.
                    let provenance = match &record.provenance {
                        Some(doc) => {
                            let bytes = self.store.read_document(doc).await?;
                            let limits = crate::manifest::ManifestLimits {
                                max_provenance_bytes: usize::MAX,
                                ..self.settings.limits
                            };
                            crate::manifest::Provenance::parse(&bytes, &limits).ok()
                        }
                        None => None,
                    };
                    for v in profile::check(p, manifest, provenance.as_ref()) {
                        findings.push(Finding::ProfileViolation {
                            rule: v.rule.to_owned(),
                            name: v.member,
                        });
                    }
                }
                None => findings.push(Finding::ProfileViolation {
                    rule: "profile".to_owned(),
                    name: None,
                }),
            }
        }
        let verdict = if findings.is_empty() {
            Verdict::Released
        } else {
            Verdict::Quarantined(findings)
        };
        let report = verdict.report();
        let json = report.canonical_json().map_err(|_| {
            BatchError::Upload(crate::upload::UploadError::Internal(
                "the report does not encode",
            ))
        })?;
        let doc = self.store.put_document(&json).await?;
        let passed = matches!(verdict, Verdict::Released);
        let now = now_unix();
        let system = AuditContext::system();
        // The verdict is on the record before the batch changes state: no audit, no change.
        self.auditor
            .emit(
                &system,
                &BatchVerdict {
                    batch: id.to_string(),
                    verdict: if passed { "released" } else { "quarantined" },
                    findings: verdict.findings().len() as u64,
                    report_sha256: doc.sha256.clone(),
                    bytes_checked: progress.bytes_checked,
                },
            )
            .await?;
        let retain_until = now.saturating_add(self.retention_of(record).as_secs());
        let summary = VerdictSummary {
            at: now,
            passed,
            findings: verdict.findings().len() as u64,
            report: doc,
        };
        let mut moved = false;
        self.update(id, |r| {
            if r.state != BatchState::Sealing {
                return Ok(false);
            }
            moved = true;
            r.progress = Some(progress.clone());
            r.verdict = Some(summary.clone());
            if passed {
                r.state = BatchState::Released;
                r.released = Some(Decision {
                    by: "system".into(),
                    reason: "verified: no findings".into(),
                    at: now,
                });
                r.retain_until = Some(retain_until);
            } else {
                r.state = BatchState::Quarantined;
            }
            Ok(true)
        })
        .await?;
        if !moved {
            return Ok(());
        }
        if passed {
            self.auditor
                .emit(
                    &system,
                    &BatchReleased {
                        batch: id.to_string(),
                        by: "verdict",
                        reason: None,
                        approvers: Vec::new(),
                        retain_until,
                    },
                )
                .await?;
        } else {
            let mut codes: Vec<&'static str> = Vec::new();
            for f in verdict.findings() {
                if !codes.contains(&f.code()) {
                    codes.push(f.code());
                }
            }
            self.auditor
                .emit(
                    &system,
                    &BatchQuarantined {
                        batch: id.to_string(),
                        codes,
                    },
                )
                .await?;
        }
        let uploads: Vec<UploadId> = facts.iter().map(|f| f.upload).collect();
        self.store.clear_facts(id, &uploads).await?;
        Ok(())
    }

    /// How long a released batch is kept.
    pub(super) fn retention_of(&self, record: &BatchRecord) -> Duration {
        record
            .profile
            .as_deref()
            .and_then(|n| self.settings.profile(n))
            .and_then(|p| p.retention)
            .unwrap_or(self.settings.retention)
    }
}

/// The pure verdict over stored facts: what the manifest expected against what arrived.
/// Bound uploads that no longer exist are not members that arrived.
pub fn verdict_of(manifest: &Manifest, facts: &[MemberFacts]) -> Verdict {
    let expected = Expected {
        members: manifest
            .members()
            .iter()
            .map(|m| ExpectedMember {
                name: m.name().as_str().to_owned(),
                size: m.size(),
                sha256: *m.sha256().as_bytes(),
                ndjson: m.ndjson().map(|n| ExpectedNdjson {
                    resource_type: n.resource_type().as_str().to_owned(),
                    records: n.records(),
                }),
            })
            .collect(),
        total_members: manifest.total_members(),
        total_bytes: manifest.total_bytes(),
    };
    let hex32 = |h: &Option<String>| {
        let mut out = [0u8; 32];
        h.as_deref()
            .and_then(|s| hex::decode_to_slice(s, &mut out).ok())
            .map(|()| out)
    };
    let observed = Observed {
        members: facts
            .iter()
            .filter(|f| f.present)
            .map(|f| ObservedMember {
                name: f.member.clone(),
                complete: f.complete,
                size: f.size,
                upload_sha256: hex32(&f.upload_sha256),
                stream_sha256: hex32(&f.stream_sha256),
                ndjson: f.ndjson.clone(),
                unreadable: f.unreadable,
            })
            .collect(),
    };
    verdict::verdict(&expected, &observed)
}
