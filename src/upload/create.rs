//! `POST {base}`: creating an upload — plain, with its first chunk
//! (creation-with-upload), or as the final upload of a concatenation — and undoing a
//! creation whose first chunk was refused.
//!
//! The object exists before the record, so a record always has its object. A creation
//! whose `upload.created` entry (or, for a zero-length or final upload, its
//! `upload.completed` entry) cannot be written is undone — record, object and all — and
//! answered 503: no upload exists that the trail does not name. A creation
//! with a body stores the record, then takes the upload's lease and runs the PATCH path
//! from `take_body` on (`patch.rs`). A final upload copies its parts' plaintext into its
//! own object (decrypted segment by segment, re-encrypted under its own key) and keeps a
//! copy of their ledgers.
//!
//! Every creation reserves its declared length of the owner's byte quota (`quota.rs`)
//! before anything is stored, and gives it back if the record is not stored.
//!
//! The new upload's objects (data, and sealed metadata) are made *before* the principal's
//! creation slot is taken: on an S3-compatible blob store they cost a dozen round trips,
//! which under the slot would serialise every creation of one principal (a clinic sending
//! a hundred files at once waited for each other's). The slot covers only the open-upload
//! count and the record. A creation refused after its objects were made shreds them
//! (`discard_objects`); a crash in between leaves objects no record names, as a crash
//! between object and record always could.

use std::error::Error as StdError;

use bytes::Bytes;
use futures_util::StreamExt;
use http::HeaderMap;
use http_body::Body;

use crate::at_rest::{AtRestError, Writer};
use crate::ids::OpaqueId;
use crate::tus::TusError;
use crate::tus::dates::Timestamp;
use crate::tus::ledger::PartLedger;
use crate::tus::metadata::Metadata;
use crate::tus::plan;
use crate::tus::record::{SealedMetadata, UploadId, UploadRecord};
use crate::tus::request::{CreateRequest, NewFinal};

use super::events::{UploadCreated, UploadTerminated};
use super::lease::LeaseGuard;
use super::quota;
use super::store::StoreError;
use super::{Caller, MemberClaim, MembershipError, Outcome, UploadError, Uploads};

/// The objects of an upload being created, made before its creation slot is taken.
struct NewObjects {
    /// The data object's writer.
    writer: Writer,
    /// The sealed `Upload-Metadata`, if any.
    metadata: Option<SealedMetadata>,
}

// === impl Uploads: creation ===

impl Uploads {
    /// `POST {base}`: creates an upload (and takes its first chunk, or concatenates).
    pub async fn create<B>(
        &self,
        who: &Caller,
        headers: &HeaderMap,
        body: B,
    ) -> Result<Outcome, UploadError>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn StdError + Send + Sync>>,
    {
        let request = CreateRequest::from_headers(headers, &self.settings.base, self.limits())?;
        let id = UploadId::random();
        let metadata = match &request {
            CreateRequest::Final(new) => new.metadata.as_ref(),
            CreateRequest::Upload(new) => new.metadata.as_ref(),
        };
        let claim = MemberClaim::from_metadata(metadata)?;
        if let Some(batch) = who.bounds.as_ref().and_then(|b| b.batch.as_deref())
            && claim.as_ref().is_none_or(|c| c.batch != batch)
        {
            return Err(UploadError::BatchRequired);
        }
        let writer = self.at_rest.create(id.opaque()).await?;
        let sealed = match self.seal_metadata(metadata).await {
            Ok(m) => m,
            Err(e) => {
                self.discard_objects(id, None).await;
                return Err(e);
            }
        };
        let metadata_object = sealed.as_ref().and_then(super::metadata::sealed_object);
        let objects = NewObjects {
            writer,
            metadata: sealed,
        };
        let mut took_file = false;
        let result = self
            .create_with_objects(who, request, id, claim, objects, &mut took_file, body)
            .await;
        // Refused before its record was stored (or undone since): nothing of it stays,
        // and its file is given back. When the store cannot tell, the objects stay and
        // the file stays counted (fewer files, never more).
        if result.is_err() && matches!(self.store.get(id).await, Ok(None)) {
            self.discard_objects(id, metadata_object).await;
            if took_file {
                self.give_file(who).await;
            }
        }
        result
    }

    /// Shreds the objects of a creation that was refused before its record was stored.
    /// Idempotent; a failure is logged (the objects stay, named by no record).
    async fn discard_objects(&self, id: UploadId, metadata: Option<OpaqueId>) {
        for object in std::iter::once(id.opaque()).chain(metadata) {
            if let Err(e) = self.at_rest.delete(object).await {
                tracing::warn!(upload = %id, error = %e, "could not shred the objects of a refused creation");
            }
        }
    }

    /// [`Uploads::create`] once the upload's objects exist: the creation slot, the
    /// open-upload count, the file count (`took_file` says whether one was taken), then
    /// the record.
    #[allow(clippy::too_many_arguments)]
    async fn create_with_objects<B>(
        &self,
        who: &Caller,
        request: CreateRequest,
        id: UploadId,
        claim: Option<MemberClaim>,
        objects: NewObjects,
        took_file: &mut bool,
        body: B,
    ) -> Result<Outcome, UploadError>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn StdError + Send + Sync>>,
    {
        let cap = self.settings.max_open_per_principal;
        // Held until this creation's record is stored (or the creation fails).
        let slot = self.creation_slot(&who.name).await?;
        if self.store.open_count(&who.name, cap).await? >= cap {
            slot.release().await;
            return Err(UploadError::TooManyOpen { limit: cap });
        }
        let now = Timestamp::now();
        // Taken last among the refusals that need no write, given back (by the caller)
        // if the creation fails before its record is stored.
        *took_file = match self.take_file(who).await {
            Ok(t) => t,
            Err(e) => {
                slot.release().await;
                return Err(e);
            }
        };
        self.create_counted(who, request, id, claim, now, slot, objects, body)
            .await
    }

    /// [`Uploads::create`] once the caller's file is counted.
    #[allow(clippy::too_many_arguments)]
    async fn create_counted<B>(
        &self,
        who: &Caller,
        request: CreateRequest,
        id: UploadId,
        claim: Option<MemberClaim>,
        now: Timestamp,
        slot: LeaseGuard,
        objects: NewObjects,
        body: B,
    ) -> Result<Outcome, UploadError>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn StdError + Send + Sync>>,
    {
        match request {
            CreateRequest::Final(new) => {
                self.create_final(who, id, new, claim.as_ref(), now, slot, objects)
                    .await
            }
            CreateRequest::Upload(new) => {
                if new.partial && claim.is_some() {
                    return Err(MembershipError::BadClaim.into());
                }
                let plan::CreatePlan {
                    record: planned,
                    body: first_chunk,
                } = plan::plan_create(&new, id, who.requester(), now, self.limits())?;
                // The declared length is reserved first, so a refusal changes nothing; it is
                // given back if the record is not stored (once stored, `destroy` does).
                let reserved = quota::held(&planned);
                self.reserve_bytes(&who.name, reserved, self.byte_limit(who))
                    .await?;
                let event = UploadCreated {
                    upload: id.to_string(),
                    length: planned.length,
                    concat: if new.partial { "partial" } else { "none" },
                    metadata_pairs: new.metadata.as_ref().map_or(0, Metadata::len),
                };
                // The `upload.created` entry rides on the record's commit through the
                // audit outbox (as a chunk's does, `patch.rs`): one sync fewer per upload.
                // Not when the upload is complete at birth: both its entries are in the
                // chain before the answer, as for any completed upload.
                let mut staged = if planned.is_complete() {
                    None
                } else {
                    match self.auditor.prepare(&who.audit, &event) {
                        Ok(s) => s,
                        Err(e) => {
                            self.release_bytes(&who.name, reserved).await;
                            return Err(e.into());
                        }
                    }
                };
                let stored = async {
                    self.admit_member(who, claim.as_ref(), id, planned.length)
                        .await?;
                    let mut record = planned;
                    // The objects exist before the record, so a record always has them.
                    record.metadata = objects.metadata;
                    let writer = objects.writer;
                    let writer = if record.is_complete() {
                        // Zero length: complete at birth.
                        writer.finish().await?;
                        None
                    } else {
                        Some(writer)
                    };
                    if let Some(s) = &staged {
                        self.auditor.stage(s).await?;
                    }
                    // The record's durable commit makes the staged row durable too.
                    let created = self.store.create(&record).await;
                    if !matches!(created, Ok(true))
                        && let Some(s) = staged.take()
                    {
                        self.auditor.unstage(s).await;
                    }
                    if !created? {
                        return Err(UploadError::Store(StoreError::Changed));
                    }
                    Ok((record, writer))
                }
                .await;
                let (record, writer) = match stored {
                    Ok(s) => s,
                    Err(e) => {
                        self.release_bytes(&who.name, reserved).await;
                        return Err(e);
                    }
                };
                // Counted now: the next creation by this principal may count.
                slot.release().await;
                match staged {
                    Some(s) => self.auditor.release(s).await,
                    None => {
                        if let Err(e) = self.auditor.emit(&who.audit, &event).await {
                            return Err(self.undo_unaudited(&record, e.into()).await);
                        }
                    }
                }
                if record.is_complete()
                    && let Err(e) = self.audit_completed(&who.audit, &record, false).await
                {
                    return Err(self.undo_unaudited(&record, e).await);
                }
                match (first_chunk, writer) {
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
        // Audited before anything is destroyed, like every destruction; when the entry
        // cannot be written the unreachable upload stays until the expiry sweeper takes
        // it (audited `upload.expired`).
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
        self.destroy(record).await?;
        Err(match refusal {
            // The creation is undone: nothing of it was performed.
            UploadError::AuditPending(e) => UploadError::Audit(e),
            UploadError::Tus { error, .. } => UploadError::Tus {
                error,
                expires: None,
            },
            other => other,
        })
    }

    #[allow(clippy::too_many_arguments)]
    async fn create_final(
        &self,
        who: &Caller,
        id: UploadId,
        new: NewFinal,
        claim: Option<&MemberClaim>,
        now: Timestamp,
        slot: LeaseGuard,
        objects: NewObjects,
    ) -> Result<Outcome, UploadError> {
        let mut parts = Vec::with_capacity(new.parts.len());
        for part in &new.parts {
            parts.push(self.store.get(*part).await?.map(|(r, _)| r));
        }
        let refs: Vec<Option<&UploadRecord>> = parts.iter().map(Option::as_ref).collect();
        let planned =
            plan::plan_concat_final(&new, &refs, id, who.requester(), now, self.limits())?;
        // A final upload is a copy: its bytes count like any other upload's.
        let reserved = quota::held(&planned.record);
        self.reserve_bytes(&who.name, reserved, self.byte_limit(who))
            .await?;
        let stored = async {
            self.admit_member(who, claim, id, planned.record.length)
                .await?;
            let mut record = planned.record.clone();
            record.metadata = objects.metadata;
            let writer = objects.writer;
            if !self.store.create(&record).await? {
                return Err(UploadError::Store(StoreError::Changed));
            }
            Ok((record, writer))
        }
        .await;
        let (mut record, mut writer) = match stored {
            Ok(s) => s,
            Err(e) => {
                self.release_bytes(&who.name, reserved).await;
                return Err(e);
            }
        };
        // Counted now: the copy below may take long, and need not hold up this client's
        // other creations.
        slot.release().await;
        let event = UploadCreated {
            upload: id.to_string(),
            length: record.length,
            concat: "final",
            metadata_pairs: new.metadata.as_ref().map_or(0, Metadata::len),
        };
        if let Err(e) = self.auditor.emit(&who.audit, &event).await {
            return Err(self.undo_unaudited(&record, e.into()).await);
        }
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
        if let Err(e) = self.audit_completed(&who.audit, &record, false).await {
            // Nobody learnt of the final upload yet (no Location was sent): undone.
            return Err(self.undo_unaudited(&record, e).await);
        }
        Ok(Outcome { record })
    }

    /// Undoes a creation whose audit entry (`upload.created`, or `upload.completed` of a
    /// zero-length or final upload) could not be written: the record, object, sealed
    /// metadata and copied ledgers go, so no upload exists that the trail does not name.
    /// Nobody else knows the new id yet, so no lease is needed. Returns the error to answer.
    async fn undo_unaudited(&self, record: &UploadRecord, error: UploadError) -> UploadError {
        if let Err(undo) = self.destroy(record).await {
            tracing::error!(error = %undo, upload = %record.id, "could not undo an unaudited creation");
        }
        error
    }
}
