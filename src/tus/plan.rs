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
//!    (413 [`TusError::UploadTooLarge`]).
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
        out.push((part_id, length));
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
    Ok(PatchPlan {
        upload: record.id,
        start: record.offset,
        max_body,
        set_length,
        checksum: body.checksum.clone(),
        over,
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
