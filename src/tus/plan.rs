//! The upload state machine as pure decisions.
//!
//! Each request method has one function that takes the stored [`UploadRecord`] (or the
//! parts of a final upload), the parsed request, the [`Requester`] and `now`, and returns
//! either a plan or the [`TusError`] the client gets. The checks run in this order, so the
//! status of a request with several faults is fixed:
//!
//! 1. ownership — not the owner and not an admin: 404 ([`TusError::NotOwner`]), before
//!    anything that would reveal the upload's state;
//! 2. expiry — an unfinished upload past `expires_at`: 410;
//! 3. final upload — PATCH: 403;
//! 4. `Upload-Offset` ≠ offset: 409;
//! 5. length — a changed length 400, a length below the offset 400, a body that would pass
//!    the length (413 [`TusError::ExceedsLength`]) or, while deferred, `Tus-Max-Size`
//!    (413 [`TusError::UploadTooLarge`]);
//! 6. chunk cap — a chunk past [`TusLimits::max_chunks`], or one in the last slot that
//!    does not complete the upload (413 [`TusError::TooManyChunks`]); a final upload whose
//!    parts have more chunks in all than the cap (its ledger copies theirs).
//!
//! A PATCH runs in two steps. [`plan_patch`] says how many body bytes may arrive
//! ([`PatchPlan::max_body`]), which digests to compute ([`PatchPlan::hasher`]) and whether a
//! cut-off body may be kept ([`PatchPlan::keep_partial_on_abort`]). After the bytes are
//! durable, [`PatchPlan::commit`] advances the record and yields the ledger entry. The
//! upload engine updates its whole-file SHA-256 with the same bytes and passes it to `commit`,
//! which finalises a copy only when the chunk completes the upload.
//!
//! Not here: reading bodies, fsync, leases ([`TusError::Locked`] is the upload engine's), the
//! per-principal open-upload limit (a state-store counter), sealing metadata.
//!
//! Size: past ~400 lines because the state machine's order of checks (above) must be read
//! across all methods at once; each `plan_*` function is short.

use http::{HeaderMap, HeaderName, HeaderValue};
use sha2::{Digest, Sha256};

use crate::tus::checksum::{Checksum, ChunkDigest, ChunkHasher};
use crate::tus::concat::{BasePath, PartProblem, UploadConcat};
use crate::tus::dates::Timestamp;
use crate::tus::error::{HeaderProblem, TusHeader};
use crate::tus::headers::{
    REPR_DIGEST, UPLOAD_CHECKSUM, UPLOAD_CONCAT, UPLOAD_DEFER_LENGTH, UPLOAD_EXPIRES,
    UPLOAD_LENGTH, UPLOAD_OFFSET, tus_resumable_header,
};
use crate::tus::ledger::ChunkEntry;
use crate::tus::record::{ConcatKind, Sha256Digest, UploadId, UploadRecord};
use crate::tus::request::{
    BodyRequest, ChecksumRequest, DeclaredLength, NewFinal, NewUpload, PatchRequest,
};
use crate::tus::{Requester, TusError, TusLimits};

/// What to do with a PATCH body (or a creation request's first chunk).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatchPlan {
    upload: UploadId,
    start: u64,
    max_body: u64,
    set_length: Option<u64>,
    checksum: ChecksumRequest,
    over: TusError,
    /// The chunk would take the upload's last ledger slot
    /// ([`TusLimits::max_chunks`]): only a chunk that completes the upload may.
    last_slot: Option<TusError>,
}

/// The result of [`PatchPlan::commit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    /// The ledger entry, or `None` for an empty body.
    pub entry: Option<ChunkEntry>,
    /// This commit completed the upload (emit the completion audit event).
    pub completed: bool,
}

/// A new ordinary or partial upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatePlan {
    /// The record to store (with `Expect::Absent`); the upload engine sets `metadata`.
    pub record: UploadRecord,
    /// How to take the request's first chunk, when it carries one.
    pub body: Option<PatchPlan>,
}

/// A new final upload, to be filled by concatenating its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinalPlan {
    /// The record to store before concatenating (unfinished, with an expiry in case the
    /// concatenation never finishes); [`complete_final`] completes it.
    pub record: UploadRecord,
    /// The parts and their lengths, in concatenation order.
    pub parts: Vec<(UploadId, u64)>,
}

/// Checks that `who` may see or touch the upload at `now`: the owner or an admin (else
/// 404), and not expired (else 410). HEAD, PATCH, DELETE and the ledger GET all start here.
pub fn check_access(
    record: &UploadRecord,
    who: Requester<'_>,
    now: Timestamp,
) -> Result<(), TusError> {
    if record.owner != who.name && !who.admin {
        return Err(TusError::NotOwner);
    }
    if record.is_expired(now) {
        return Err(TusError::Expired);
    }
    Ok(())
}

/// Plans a PATCH. See the module docs for the order of checks.
pub fn plan_patch(
    record: &UploadRecord,
    req: &PatchRequest,
    who: Requester<'_>,
    now: Timestamp,
    limits: &TusLimits,
) -> Result<PatchPlan, TusError> {
    check_access(record, who, now)?;
    if record.is_final() {
        return Err(TusError::FinalUpload);
    }
    if req.offset != record.offset {
        return Err(TusError::OffsetMismatch {
            current: record.offset,
            sent: req.offset,
        });
    }
    let set_length = match (req.length, record.length) {
        (None, _) => None,
        (Some(n), Some(m)) if n == m => None,
        (Some(_), Some(_)) => return Err(TusError::LengthImmutable),
        (Some(n), None) if n < record.offset => {
            return Err(TusError::LengthBelowOffset {
                offset: record.offset,
            });
        }
        (Some(n), None) if n > limits.max_size => {
            return Err(TusError::UploadTooLarge {
                max: limits.max_size,
            });
        }
        (Some(n), None) => Some(n),
    };
    body_plan(record, set_length, &req.body, limits)
}

/// Plans a creation POST for an ordinary or partial upload. `id` is fresh
/// ([`UploadId::random`]); the core does not draw randomness itself.
pub fn plan_create(
    new: &NewUpload,
    id: UploadId,
    who: Requester<'_>,
    now: Timestamp,
    limits: &TusLimits,
) -> Result<CreatePlan, TusError> {
    let length = match new.length {
        DeclaredLength::Known(n) if n > limits.max_size => {
            return Err(TusError::UploadTooLarge {
                max: limits.max_size,
            });
        }
        DeclaredLength::Known(n) => Some(n),
        DeclaredLength::Deferred => None,
    };
    let mut record = UploadRecord {
        id,
        owner: who.name.to_owned(),
        length,
        offset: 0,
        created_at: now,
        expires_at: Some(expiry(now, limits)),
        concat: if new.partial {
            ConcatKind::Partial
        } else {
            ConcatKind::None
        },
        completed_at: None,
        sha256: None,
        chunks: 0,
        metadata: None,
    };
    if length == Some(0) {
        // Nothing to wait for: complete at birth, with the digest of no bytes.
        complete(&mut record, &Sha256::digest(b"").into(), now);
    }
    let body = new
        .body
        .as_ref()
        .map(|b| body_plan(&record, None, b, limits))
        .transpose()?;
    Ok(CreatePlan { record, body })
}

/// Plans a final upload. `parts` holds the stored record of each id in `new.parts`, in the
/// same order (`None` when absent). Every part must be a complete partial upload owned by
/// the requester — admins included: a final upload is always built from its creator's own
/// parts. The final's length is the sum of the parts' lengths, at most `Tus-Max-Size`.
pub fn plan_concat_final(
    new: &NewFinal,
    parts: &[Option<&UploadRecord>],
    id: UploadId,
    who: Requester<'_>,
    now: Timestamp,
    limits: &TusLimits,
) -> Result<FinalPlan, TusError> {
    let mut total = 0u64;
    // The final's ledger is a copy of its parts' (one stored record): bounded like any
    // upload's ledger by `max_chunks`.
    let mut chunks = 0u64;
    let mut out = Vec::with_capacity(new.parts.len());
    for (index, &part_id) in new.parts.iter().enumerate() {
        let part = |problem| TusError::ConcatPart { index, problem };
        let record = parts
            .get(index)
            .copied()
            .flatten()
            .filter(|r| r.id == part_id && r.owner == who.name && !r.is_expired(now))
            .ok_or(part(PartProblem::Missing))?;
        if record.concat != ConcatKind::Partial {
            return Err(part(PartProblem::NotPartial));
        }
        let length = match record.length {
            Some(n) if record.is_complete() => n,
            _ => return Err(part(PartProblem::Unfinished)),
        };
        total = total
            .checked_add(length)
            .filter(|&t| t <= limits.max_size)
            .ok_or(TusError::UploadTooLarge {
                max: limits.max_size,
            })?;
        chunks = chunks.saturating_add(record.chunks);
        out.push((part_id, length));
    }
    if chunks > limits.max_chunks {
        return Err(TusError::TooManyChunks {
            max: limits.max_chunks,
            chunks,
        });
    }
    if parts.len() != new.parts.len() {
        return Err(TusError::ConcatPart {
            index: new.parts.len().min(parts.len()),
            problem: PartProblem::Missing,
        });
    }
    let record = UploadRecord {
        id,
        owner: who.name.to_owned(),
        length: Some(total),
        offset: 0,
        created_at: now,
        expires_at: Some(expiry(now, limits)),
        concat: ConcatKind::Final {
            parts: new.parts.clone(),
        },
        completed_at: None,
        sha256: None,
        chunks: 0,
        metadata: None,
    };
    Ok(FinalPlan { record, parts: out })
}

/// Completes a final upload once its parts' plaintext, `hashed` bytes in all, went through
/// `whole_file` in order. Returns `false` and changes nothing when the record is not an
/// unfinished final upload or `hashed` is not its length (the upload engine treats that as an
/// internal error: the parts changed under it).
pub fn complete_final(
    record: &mut UploadRecord,
    whole_file: &[u8; 32],
    hashed: u64,
    now: Timestamp,
) -> bool {
    if !record.is_final() || record.is_complete() || record.length != Some(hashed) {
        return false;
    }
    record.offset = hashed;
    complete(record, whole_file, now);
    true
}

/// The HEAD response headers (status 200), except `Upload-Metadata`, which the upload engine
/// adds from the unsealed canonical form when `record.metadata` is set.
pub fn plan_head(
    record: &UploadRecord,
    who: Requester<'_>,
    now: Timestamp,
    base: &BasePath,
) -> Result<Vec<(HeaderName, HeaderValue)>, TusError> {
    check_access(record, who, now)?;
    let mut h = vec![
        tus_resumable_header(),
        (
            http::header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ),
    ];
    // A final upload has no meaningful offset until the concatenation is done.
    if !record.is_final() || record.is_complete() {
        h.push((UPLOAD_OFFSET, HeaderValue::from(record.offset)));
    }
    match record.length {
        Some(n) => h.push((UPLOAD_LENGTH, HeaderValue::from(n))),
        None => h.push((UPLOAD_DEFER_LENGTH, HeaderValue::from_static("1"))),
    }
    let concat = match &record.concat {
        ConcatKind::None => None,
        ConcatKind::Partial => Some(UploadConcat::Partial),
        ConcatKind::Final { parts } => Some(UploadConcat::Final(parts.clone())),
    };
    if let Some(c) = concat {
        h.push((UPLOAD_CONCAT, ascii_value(c.to_header_value(base))));
    }
    h.extend(expires_header(record));
    if let Some(digest) = record.sha256 {
        h.push((REPR_DIGEST, repr_digest(&digest)));
    }
    Ok(h)
}

/// The 201 response headers of a creation: `Location` (relative, `{base}{id}`),
/// `Upload-Offset` (except for an unfinished final upload), `Upload-Expires` when it will
/// expire, and `Tus-Resumable`.
pub fn creation_headers(record: &UploadRecord, base: &BasePath) -> Vec<(HeaderName, HeaderValue)> {
    let mut h = vec![
        tus_resumable_header(),
        (
            http::header::LOCATION,
            ascii_value(base.upload_path(record.id)),
        ),
    ];
    if !record.is_final() || record.is_complete() {
        h.push((UPLOAD_OFFSET, HeaderValue::from(record.offset)));
    }
    h.extend(expires_header(record));
    h
}

/// The 204 response headers of a PATCH: `Upload-Offset`, `Upload-Expires` when it will
/// expire, `Tus-Resumable`.
pub fn patch_headers(record: &UploadRecord) -> Vec<(HeaderName, HeaderValue)> {
    let mut h = vec![
        tus_resumable_header(),
        (UPLOAD_OFFSET, HeaderValue::from(record.offset)),
    ];
    h.extend(expires_header(record));
    h
}

/// `Upload-Expires`, for every response about an upload that will expire (errors too).
pub fn expires_header(record: &UploadRecord) -> Option<(HeaderName, HeaderValue)> {
    match record.expires_at {
        Some(t) if !record.is_complete() => Some((UPLOAD_EXPIRES, ascii_value(t.to_http_date()))),
        _ => None,
    }
}

impl PatchPlan {
    /// The upload this plan is for.
    pub fn upload(&self) -> UploadId {
        self.upload
    }

    /// The offset the body starts at.
    pub fn start(&self) -> u64 {
        self.start
    }

    /// The most body bytes allowed. Read at most one more: if it exists, stop and answer
    /// [`PatchPlan::too_long`], storing nothing of this request.
    pub fn max_body(&self) -> u64 {
        self.max_body
    }

    /// The deferred length this request declares, if any.
    pub fn set_length(&self) -> Option<u64> {
        self.set_length
    }

    /// Where the client's checksum comes from.
    pub fn checksum(&self) -> &ChecksumRequest {
        &self.checksum
    }

    /// The error for a body longer than [`PatchPlan::max_body`] (413).
    pub fn too_long(&self) -> TusError {
        self.over.clone()
    }

    /// A hasher computing the ledger's SHA-256 and whatever the checksum needs.
    pub fn hasher(&self) -> ChunkHasher {
        ChunkHasher::new(self.checksum.hash_plan())
    }

    /// Whether bytes that arrived before the connection dropped may be kept (committed
    /// after fsync). With a declared checksum they cannot be verified and are discarded.
    pub fn keep_partial_on_abort(&self) -> bool {
        !self.checksum.is_declared()
    }

    /// The checksum to verify against, once the body (and its trailers) have arrived.
    /// A trailer must have been announced in `Trailer`; an announced one that is missing
    /// is [`TusError::ChecksumTrailerMissing`].
    pub fn expected_checksum(
        &self,
        trailers: Option<&HeaderMap>,
    ) -> Result<Option<Checksum>, TusError> {
        let mut values = trailers
            .map(|t| t.get_all(UPLOAD_CHECKSUM).iter().collect::<Vec<_>>())
            .unwrap_or_default();
        match &self.checksum {
            _ if values.len() > 1 => Err(TusError::header(
                TusHeader::UploadChecksum,
                HeaderProblem::Duplicate,
            )),
            ChecksumRequest::Trailer => match values.pop() {
                Some(v) => Checksum::parse(v.as_bytes()).map(Some),
                None => Err(TusError::ChecksumTrailerMissing),
            },
            ChecksumRequest::Header(_) if !values.is_empty() => Err(TusError::ChecksumTwice),
            ChecksumRequest::Header(c) => Ok(Some(c.clone())),
            ChecksumRequest::None if !values.is_empty() => Err(TusError::header(
                TusHeader::UploadChecksum,
                HeaderProblem::NotAllowed,
            )),
            ChecksumRequest::None => Ok(None),
        }
    }

    /// Whether a chunk of `length` bytes applied to `record` completes the upload (then
    /// the upload engine finishes the object and passes its whole-file SHA-256 to
    /// [`PatchPlan::commit`]).
    pub fn completes(&self, record: &UploadRecord, length: u64) -> bool {
        let total = self.set_length.or(record.length);
        !record.is_complete() && total == Some(self.start.saturating_add(length))
    }

    /// Whether a chunk of `length` bytes (the body as it arrived) may be committed under
    /// the chunk cap: in the upload's last ledger slot only a chunk that completes the
    /// upload may ([`TusError::TooManyChunks`] otherwise; the engine then discards it).
    pub fn check_chunk_cap(&self, record: &UploadRecord, length: u64) -> Result<(), TusError> {
        match &self.last_slot {
            Some(too_many) if length > 0 && !self.completes(record, length) => {
                Err(too_many.clone())
            }
            _ => Ok(()),
        }
    }

    /// Applies durably stored body bytes to `record` (the one this plan was made from, as
    /// re-read under the lease). `digest` is the chunk hasher's result; `whole_file` is the
    /// SHA-256 of the upload's whole plaintext, required exactly when
    /// [`PatchPlan::completes`] says this chunk completes the upload (the at-rest writer
    /// computes it incrementally from its stored midstate). Sliding expiry: an accepted
    /// chunk moves `expires_at` to `now + expire_after`.
    pub fn commit(
        &self,
        record: &mut UploadRecord,
        digest: &ChunkDigest,
        whole_file: Option<&[u8; 32]>,
        who: Requester<'_>,
        now: Timestamp,
        limits: &TusLimits,
    ) -> Result<Commit, TusError> {
        if record.id != self.upload || record.offset != self.start {
            return Err(TusError::OffsetMismatch {
                current: record.offset,
                sent: self.start,
            });
        }
        if digest.length > self.max_body {
            return Err(self.too_long());
        }
        self.check_chunk_cap(record, digest.length)?;
        if let Some(n) = self.set_length {
            match record.length {
                None => record.length = Some(n),
                Some(m) if m != n => return Err(TusError::LengthImmutable),
                Some(_) => {}
            }
        }
        let entry = (digest.length > 0).then(|| ChunkEntry {
            index: record.chunks,
            offset: self.start,
            length: digest.length,
            sha256: Sha256Digest(digest.sha256),
            time: now,
            principal: who.name.to_owned(),
            checksum_verified: digest.verified,
        });
        if entry.is_some() {
            record.offset += digest.length;
            record.chunks += 1;
        }
        let completed = !record.is_complete() && record.length == Some(record.offset);
        if completed {
            let Some(whole_file) = whole_file else {
                return Err(TusError::WholeFileDigestMissing);
            };
            complete(record, whole_file, now);
        } else if entry.is_some() && !record.is_complete() {
            record.expires_at = Some(expiry(now, limits));
        }
        Ok(Commit { entry, completed })
    }
}

fn body_plan(
    record: &UploadRecord,
    set_length: Option<u64>,
    body: &BodyRequest,
    limits: &TusLimits,
) -> Result<PatchPlan, TusError> {
    let (max_body, over) = match set_length.or(record.length) {
        Some(length) => (
            length - record.offset.min(length),
            TusError::ExceedsLength { length },
        ),
        None => (
            limits.max_size.saturating_sub(record.offset),
            TusError::UploadTooLarge {
                max: limits.max_size,
            },
        ),
    };
    if body.content_length.is_some_and(|n| n > max_body) {
        return Err(over);
    }
    // The chunk cap: the last slot is kept for a chunk that completes the upload, so a
    // client near the cap can always finish. A body of known length is judged here,
    // before a byte is read; one of unknown length when it has arrived
    // ([`PatchPlan::check_chunk_cap`]). An empty body makes no entry and is never refused.
    let mut last_slot = None;
    if body.content_length != Some(0) && record.chunks.saturating_add(1) >= limits.max_chunks {
        let too_many = TusError::TooManyChunks {
            max: limits.max_chunks,
            chunks: record.chunks,
        };
        let total = set_length.or(record.length);
        let completes = |n: u64| total == Some(record.offset.saturating_add(n));
        if record.chunks >= limits.max_chunks || body.content_length.is_some_and(|n| !completes(n))
        {
            return Err(too_many);
        }
        last_slot = Some(too_many);
    }
    Ok(PatchPlan {
        upload: record.id,
        start: record.offset,
        max_body,
        set_length,
        checksum: body.checksum.clone(),
        over,
        last_slot,
    })
}

fn complete(record: &mut UploadRecord, whole_file: &[u8; 32], now: Timestamp) {
    record.sha256 = Some(Sha256Digest(*whole_file));
    record.completed_at = Some(now);
    record.expires_at = None;
}

fn expiry(now: Timestamp, limits: &TusLimits) -> Timestamp {
    now.checked_add(limits.expire_after)
        .unwrap_or(Timestamp::MAX)
}

/// `Repr-Digest: sha-256=:<base64>:` (RFC 9530).
fn repr_digest(digest: &Sha256Digest) -> HeaderValue {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(digest.0);
    ascii_value(format!("sha-256=:{b64}:"))
}

/// A header value from text this module built from ASCII only (numbers, dates, ids, base
/// paths validated as ASCII, base64), which `HeaderValue` always accepts; the empty
/// fallback is unreachable and would only drop information, never add any.
fn ascii_value(text: String) -> HeaderValue {
    HeaderValue::try_from(text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const WHO: Requester<'static> = Requester {
        name: "clinic-7",
        admin: false,
    };

    fn limits(max_chunks: u64) -> TusLimits {
        TusLimits {
            max_chunks,
            ..TusLimits::default()
        }
    }

    fn record(length: Option<u64>, offset: u64, chunks: u64) -> UploadRecord {
        let now = Timestamp::from_unix(1_700_000_000).unwrap();
        UploadRecord {
            id: UploadId::random(),
            owner: WHO.name.to_owned(),
            length,
            offset,
            created_at: now,
            expires_at: Some(Timestamp::MAX),
            concat: ConcatKind::None,
            completed_at: None,
            sha256: None,
            chunks,
            metadata: None,
        }
    }

    fn patch(offset: u64, length: Option<u64>, content_length: Option<u64>) -> PatchRequest {
        PatchRequest {
            offset,
            length,
            body: BodyRequest {
                content_length,
                checksum: ChecksumRequest::None,
            },
        }
    }

    fn plan(r: &UploadRecord, req: &PatchRequest, max: u64) -> Result<PatchPlan, TusError> {
        let now = Timestamp::from_unix(1_700_000_001).unwrap();
        plan_patch(r, req, WHO, now, &limits(max))
    }

    fn digest(length: u64) -> ChunkDigest {
        ChunkDigest {
            sha256: [7; 32],
            length,
            verified: None,
        }
    }

    #[test]
    fn below_the_last_slot_any_chunk_is_planned() {
        let r = record(Some(100), 10, 8);
        assert!(plan(&r, &patch(10, None, Some(1)), 10).is_ok());
        assert!(plan(&r, &patch(10, None, None), 10).is_ok());
    }

    #[test]
    fn the_last_slot_is_kept_for_the_completing_chunk() {
        let too_many = TusError::TooManyChunks { max: 10, chunks: 9 };
        let r = record(Some(100), 10, 9);
        // Known length: judged before the body.
        assert_eq!(
            plan(&r, &patch(10, None, Some(1)), 10),
            Err(too_many.clone())
        );
        assert!(plan(&r, &patch(10, None, Some(90)), 10).is_ok());
        // An empty body adds no entry: never refused.
        assert!(plan(&r, &patch(10, None, Some(0)), 10).is_ok());
        // Unknown length: judged on what arrived, and again at commit.
        let p = plan(&r, &patch(10, None, None), 10).unwrap();
        assert_eq!(p.check_chunk_cap(&r, 1), Err(too_many.clone()));
        assert_eq!(p.check_chunk_cap(&r, 0), Ok(()));
        assert_eq!(p.check_chunk_cap(&r, 90), Ok(()));
        let mut next = r.clone();
        assert_eq!(
            p.commit(&mut next, &digest(1), None, WHO, r.created_at, &limits(10)),
            Err(too_many)
        );
        assert_eq!(next, r, "a refused commit changes nothing");
        let c = p
            .commit(
                &mut next,
                &digest(90),
                Some(&[1; 32]),
                WHO,
                r.created_at,
                &limits(10),
            )
            .unwrap();
        assert!(c.completed);
        assert_eq!(next.chunks, 10);
    }

    #[test]
    fn a_deferred_length_upload_finishes_by_declaring_its_length() {
        let r = record(None, 10, 9);
        let too_many = TusError::TooManyChunks { max: 10, chunks: 9 };
        assert_eq!(plan(&r, &patch(10, None, Some(5)), 10), Err(too_many));
        assert!(plan(&r, &patch(10, Some(15), Some(5)), 10).is_ok());
    }

    #[test]
    fn at_the_cap_nothing_more_is_taken() {
        let r = record(Some(100), 10, 10);
        assert_eq!(
            plan(&r, &patch(10, None, Some(90)), 10),
            Err(TusError::TooManyChunks {
                max: 10,
                chunks: 10
            })
        );
        let one = record(Some(5), 0, 0);
        // A cap of one: the one chunk must be the whole upload.
        assert!(plan(&one, &patch(0, None, Some(4)), 1).is_err());
        assert!(plan(&one, &patch(0, None, Some(5)), 1).is_ok());
    }

    #[test]
    fn a_final_upload_may_not_copy_more_chunks_than_the_cap() {
        let now = Timestamp::from_unix(1_700_000_001).unwrap();
        let part = |chunks| {
            let mut r = record(Some(chunks), chunks, chunks);
            r.concat = ConcatKind::Partial;
            r.completed_at = Some(now);
            r.expires_at = None;
            r.sha256 = Some(Sha256Digest([1; 32]));
            r
        };
        let (a, b) = (part(6), part(5));
        let new = NewFinal {
            parts: vec![a.id, b.id],
            metadata: None,
        };
        let refs = [Some(&a), Some(&b)];
        let id = UploadId::random();
        assert_eq!(
            plan_concat_final(&new, &refs, id, WHO, now, &limits(10)),
            Err(TusError::TooManyChunks {
                max: 10,
                chunks: 11
            })
        );
        assert!(plan_concat_final(&new, &refs, id, WHO, now, &limits(11)).is_ok());
    }
}
