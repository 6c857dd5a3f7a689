//! A request's whole `HeaderMap` to a typed tus request: [`PatchRequest`] or
//! [`CreateRequest`].
//!
//! The checks run in a fixed order so a request with several faults always gets the same
//! answer: `Tus-Resumable` (412) first, then `Content-Type` (415), then the tus headers in
//! the order of the spec. Every tus header may appear at most once; a repeated one is a
//! 400 rather than a guess at which copy counts. Headers that do not belong to the method
//! (`Upload-Metadata` on PATCH, …) are ignored, as the spec's extensibility expects.
//!
//! Not here: anything that depends on the stored upload (the `plan` module, which takes
//! these requests).

use http::header::{CONTENT_LENGTH, CONTENT_TYPE, TRAILER};
use http::{HeaderMap, HeaderName};

use crate::tus::checksum::{Checksum, HashPlan};
use crate::tus::concat::{BasePath, ConcatProblem, UploadConcat};
use crate::tus::error::{HeaderProblem, TusHeader};
use crate::tus::headers::{
    self, TUS_RESUMABLE, UPLOAD_CHECKSUM, UPLOAD_CONCAT, UPLOAD_DEFER_LENGTH, UPLOAD_LENGTH,
    UPLOAD_METADATA, UPLOAD_OFFSET,
};
use crate::tus::metadata::Metadata;
use crate::tus::record::UploadId;
use crate::tus::{TusError, TusLimits};

/// Where the client's checksum of the body comes from, if anywhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChecksumRequest {
    /// No checksum: the ledger records the SHA-256 unverified.
    None,
    /// `Upload-Checksum` in the request header.
    Header(Checksum),
    /// `Trailer: Upload-Checksum` announced it as a trailer.
    Trailer,
}

impl ChecksumRequest {
    /// What the chunk hasher must compute.
    pub fn hash_plan(&self) -> HashPlan {
        match self {
            ChecksumRequest::None => HashPlan::Sha256Only,
            ChecksumRequest::Header(c) => HashPlan::Declared(c.algorithm()),
            ChecksumRequest::Trailer => HashPlan::Trailer,
        }
    }

    /// Whether the client declared a checksum (then a cut-off body is discarded whole).
    pub fn is_declared(&self) -> bool {
        !matches!(self, ChecksumRequest::None)
    }
}

/// What a request says about the body it carries as upload bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyRequest {
    /// `Content-Length`, or `None` for a streamed body of unknown length.
    pub content_length: Option<u64>,
    /// The client's checksum of the body.
    pub checksum: ChecksumRequest,
}

/// A parsed PATCH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatchRequest {
    /// `Upload-Offset`.
    pub offset: u64,
    /// `Upload-Length`, declaring a deferred length now.
    pub length: Option<u64>,
    /// The body.
    pub body: BodyRequest,
}

/// The length a creation request declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeclaredLength {
    /// `Upload-Length`.
    Known(u64),
    /// `Upload-Defer-Length: 1`.
    Deferred,
}

/// A new ordinary or partial upload (a creation POST without `Upload-Concat: final`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUpload {
    /// Its length or that it is deferred.
    pub length: DeclaredLength,
    /// `Upload-Concat: partial`.
    pub partial: bool,
    /// `Upload-Metadata`.
    pub metadata: Option<Metadata>,
    /// The first chunk (creation-with-upload), when `Content-Type` announces one.
    pub body: Option<BodyRequest>,
}

/// A final upload (a creation POST with `Upload-Concat: final;…`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewFinal {
    /// The partial uploads, in concatenation order.
    pub parts: Vec<UploadId>,
    /// `Upload-Metadata`.
    pub metadata: Option<Metadata>,
}

/// A parsed POST to the creation URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateRequest {
    /// Planned by `plan::plan_create`.
    Upload(NewUpload),
    /// Planned by `plan::plan_concat_final` once the parts are loaded.
    Final(NewFinal),
}

impl PatchRequest {
    /// Parses a PATCH's headers.
    pub fn from_headers(h: &HeaderMap, limits: &TusLimits) -> Result<Self, TusError> {
        headers::check_tus_resumable(single(h, &TUS_RESUMABLE, TusHeader::TusResumable)?)?;
        headers::check_offset_octet_stream(single(h, &CONTENT_TYPE, TusHeader::ContentType)?)?;
        let offset = single(h, &UPLOAD_OFFSET, TusHeader::UploadOffset)?
            .ok_or(TusError::MissingHeader(TusHeader::UploadOffset))?;
        let offset = headers::parse_decimal(offset, TusHeader::UploadOffset)?;
        if offset > limits.max_size {
            return Err(TusError::header(
                TusHeader::UploadOffset,
                HeaderProblem::OutOfRange,
            ));
        }
        let length = upload_length(h, limits)?;
        let body = body_request(h)?;
        Ok(Self {
            offset,
            length,
            body,
        })
    }
}

impl CreateRequest {
    /// Parses a creation POST's headers.
    ///
    /// A body is the upload's first chunk only when `Content-Type` is
    /// `application/offset+octet-stream`; a non-empty `Content-Length` under any other type
    /// is a 415, and a final upload may not carry a chunk at all (403).
    pub fn from_headers(
        h: &HeaderMap,
        base: &BasePath,
        limits: &TusLimits,
    ) -> Result<Self, TusError> {
        headers::check_tus_resumable(single(h, &TUS_RESUMABLE, TusHeader::TusResumable)?)?;
        let content_type = single(h, &CONTENT_TYPE, TusHeader::ContentType)?;
        let has_chunk = headers::check_offset_octet_stream(content_type).is_ok();
        let content_length = content_length(h)?;
        if !has_chunk && content_length.is_some_and(|n| n > 0) {
            return Err(TusError::UnsupportedMediaType);
        }
        let concat = single(h, &UPLOAD_CONCAT, TusHeader::UploadConcat)?
            .map(|v| UploadConcat::parse(v, base, limits.max_concat_parts))
            .transpose()?;
        let length = upload_length(h, limits)?;
        let deferred = single(h, &UPLOAD_DEFER_LENGTH, TusHeader::UploadDeferLength)?
            .map(headers::check_defer_length)
            .transpose()?
            .is_some();
        let metadata = single(h, &UPLOAD_METADATA, TusHeader::UploadMetadata)?
            .map(|v| Metadata::parse(v, &limits.metadata))
            .transpose()?;
        if let Some(UploadConcat::Final(parts)) = concat {
            if has_chunk {
                return Err(TusError::FinalUpload);
            }
            if length.is_some() || deferred {
                return Err(ConcatProblem::FinalWithLength.into());
            }
            no_checksum_without_body(h)?;
            return Ok(CreateRequest::Final(NewFinal { parts, metadata }));
        }
        let length = match (length, deferred) {
            (Some(n), false) => DeclaredLength::Known(n),
            (None, true) => DeclaredLength::Deferred,
            (None, false) => return Err(TusError::LengthRequired),
            (Some(_), true) => return Err(TusError::LengthAndDeferLength),
        };
        let body = if has_chunk {
            Some(body_request(h)?)
        } else {
            no_checksum_without_body(h)?;
            None
        };
        Ok(CreateRequest::Upload(NewUpload {
            length,
            partial: concat == Some(UploadConcat::Partial),
            metadata,
            body,
        }))
    }
}

/// The one value of a header that may appear at most once.
fn single<'a>(
    h: &'a HeaderMap,
    name: &HeaderName,
    header: TusHeader,
) -> Result<Option<&'a [u8]>, TusError> {
    let mut values = h.get_all(name).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(TusError::header(header, HeaderProblem::Duplicate));
    }
    Ok(first.map(|v| v.as_bytes()))
}

fn upload_length(h: &HeaderMap, limits: &TusLimits) -> Result<Option<u64>, TusError> {
    let Some(v) = single(h, &UPLOAD_LENGTH, TusHeader::UploadLength)? else {
        return Ok(None);
    };
    let n = headers::parse_decimal(v, TusHeader::UploadLength)?;
    if n > limits.max_size {
        return Err(TusError::UploadTooLarge {
            max: limits.max_size,
        });
    }
    Ok(Some(n))
}

fn content_length(h: &HeaderMap) -> Result<Option<u64>, TusError> {
    single(h, &CONTENT_LENGTH, TusHeader::ContentLength)?
        .map(|v| headers::parse_decimal(v, TusHeader::ContentLength))
        .transpose()
}

fn body_request(h: &HeaderMap) -> Result<BodyRequest, TusError> {
    let content_length = content_length(h)?;
    let header = single(h, &UPLOAD_CHECKSUM, TusHeader::UploadChecksum)?
        .map(Checksum::parse)
        .transpose()?;
    let mut trailer = false;
    for value in h.get_all(TRAILER) {
        trailer |= headers::trailer_announces_checksum(value.as_bytes())?;
    }
    let checksum = match (header, trailer) {
        (Some(_), true) => return Err(TusError::ChecksumTwice),
        (Some(c), false) => ChecksumRequest::Header(c),
        (None, true) => ChecksumRequest::Trailer,
        (None, false) => ChecksumRequest::None,
    };
    Ok(BodyRequest {
        content_length,
        checksum,
    })
}

/// A checksum needs a body to be about.
fn no_checksum_without_body(h: &HeaderMap) -> Result<(), TusError> {
    if h.contains_key(UPLOAD_CHECKSUM) {
        return Err(TusError::header(
            TusHeader::UploadChecksum,
            HeaderProblem::NotAllowed,
        ));
    }
    Ok(())
}
