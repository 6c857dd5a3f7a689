//! [`TusError`]: every way the tus core refuses a request, as a value.
//!
//! Variants know nothing of HTTP. Each is documented with the status the tus 1.0.0 spec
//! (or, where the spec is silent, `proto/upload-v1.md`) requires; the status, the stable
//! problem code and the headers are the error table's (`http::problem::upload`), the one
//! place that decides what a client sees. Display texts are static apart from byte counts and
//! indices: no header value a client sent (metadata, URLs, algorithm names) is ever echoed,
//! because some of those are PHI.
//!
//! Beside it live the small "what is wrong" vocabularies its variants carry — [`TusHeader`]
//! and [`HeaderProblem`], [`ChecksumProblem`], [`ConcatProblem`] and [`PartProblem`] — so
//! the parsers that return a [`TusError`] import this file and it imports none of them
//! (`checksum` and `concat`, where they used to live, re-export theirs).
//!
//! Not here: storage and crypto failures (their own modules' errors, 503/500 at the edge),
//! and the response headers a status needs (`Tus-Version` on 412, `Retry-After` on 423,
//! `Upload-Offset` on 409 — the edge adds them; see `proto/upload-v1.md`).

use crate::tus::checksum::algorithm::ChecksumAlgorithm;
use crate::tus::metadata::MetadataError;

/// A tus request header the core reads, for naming what is wrong in an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TusHeader {
    /// `Tus-Resumable`
    TusResumable,
    /// `Upload-Length`
    UploadLength,
    /// `Upload-Offset`
    UploadOffset,
    /// `Upload-Defer-Length`
    UploadDeferLength,
    /// `Upload-Metadata`
    UploadMetadata,
    /// `Upload-Checksum`
    UploadChecksum,
    /// `Upload-Concat`
    UploadConcat,
    /// `Content-Type`
    ContentType,
    /// `Content-Length`
    ContentLength,
    /// `Trailer`
    Trailer,
}

impl TusHeader {
    /// The header's canonical name.
    pub const fn name(self) -> &'static str {
        match self {
            TusHeader::TusResumable => "Tus-Resumable",
            TusHeader::UploadLength => "Upload-Length",
            TusHeader::UploadOffset => "Upload-Offset",
            TusHeader::UploadDeferLength => "Upload-Defer-Length",
            TusHeader::UploadMetadata => "Upload-Metadata",
            TusHeader::UploadChecksum => "Upload-Checksum",
            TusHeader::UploadConcat => "Upload-Concat",
            TusHeader::ContentType => "Content-Type",
            TusHeader::ContentLength => "Content-Length",
            TusHeader::Trailer => "Trailer",
        }
    }
}

impl std::fmt::Display for TusHeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What is wrong with a single header value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeaderProblem {
    /// The header is present more than once.
    #[error("is sent more than once")]
    Duplicate,
    /// The value is empty.
    #[error("is empty")]
    Empty,
    /// Something other than the ASCII digits 0-9 (a sign, whitespace, a letter…).
    #[error("is not a plain non-negative decimal number")]
    NotDigits,
    /// A leading zero on a number other than `0`.
    #[error("has a leading zero")]
    LeadingZero,
    /// The number does not fit in 64 bits or is above the configured limit.
    #[error("is out of range")]
    OutOfRange,
    /// Not one of the values the header allows (e.g. `Upload-Defer-Length` other than `1`).
    #[error("has a value that is not allowed")]
    NotAllowed,
    /// Not valid syntax for this header.
    #[error("is malformed")]
    Malformed,
}

/// What is wrong with an `Upload-Checksum` value (other than an unknown algorithm).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChecksumProblem {
    /// Not `algorithm SP digest` with exactly one space.
    #[error("expected `algorithm base64-digest`")]
    Malformed,
    /// The digest is not canonical padded standard base64.
    #[error("the digest is not canonical base64")]
    Base64,
    /// The digest has the wrong length for its algorithm.
    #[error("the digest has the wrong length for its algorithm")]
    DigestLength,
}

/// What is wrong with an `Upload-Concat` value. URLs are never repeated back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConcatProblem {
    /// Neither `partial` nor `final;` followed by a URL list.
    #[error("expected `partial` or `final;` followed by upload URLs")]
    Malformed,
    /// An empty list element (a doubled, leading or trailing space).
    #[error("the URL list has an empty element at position {index}")]
    EmptyElement {
        /// Position in the list, from 0.
        index: usize,
    },
    /// A list element that is not one of this server's upload URLs.
    #[error("element {index} is not an upload URL of this server")]
    NotAnUploadUrl {
        /// Position in the list, from 0.
        index: usize,
    },
    /// The same partial upload named twice: refused, since every repetition would copy
    /// (and store) the part's bytes again — 256 names of one 64 GiB part would ask for
    /// 16 TiB.
    #[error("element {index} names the same upload as element {first}")]
    RepeatedPart {
        /// Position of the repetition, from 0.
        index: usize,
        /// Position of the first mention.
        first: usize,
    },
    /// More parts than the configured limit.
    #[error("more than {max} parts")]
    TooManyParts {
        /// The limit.
        max: usize,
    },
    /// `Upload-Concat: final` together with `Upload-Length` or `Upload-Defer-Length`.
    #[error("a final upload's length is the sum of its parts and cannot be declared")]
    FinalWithLength,
}

/// Why a named part cannot be concatenated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PartProblem {
    /// No such upload, not the requester's, or expired: deliberately one case, so
    /// ownership is not an existence oracle.
    #[error("no such upload")]
    Missing,
    /// The upload was not created with `Upload-Concat: partial`.
    #[error("not a partial upload")]
    NotPartial,
    /// The partial upload has not received all its bytes.
    #[error("the partial upload is unfinished")]
    Unfinished,
}

/// A refused tus request. See the module docs; each variant names the status it answers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TusError {
    /// `Tus-Resumable` missing or not `1.0.0`. **412**, with `Tus-Version: 1.0.0`; the
    /// request is not processed.
    #[error("unsupported or missing Tus-Resumable version; this server speaks 1.0.0")]
    UnsupportedVersion,
    /// A required header is absent. **400**.
    #[error("the {0} header is required")]
    MissingHeader(TusHeader),
    /// A header value is unusable. **400**.
    #[error("the {header} header {problem}")]
    InvalidHeader {
        /// Which header.
        header: TusHeader,
        /// What is wrong with it.
        problem: HeaderProblem,
    },
    /// A PATCH (or a POST carrying a body) without
    /// `Content-Type: application/offset+octet-stream`. **415**.
    #[error("the body must be sent as application/offset+octet-stream")]
    UnsupportedMediaType,
    /// `Upload-Metadata` is malformed or over a limit. **400**.
    #[error("Upload-Metadata: {0}")]
    InvalidMetadata(#[from] MetadataError),
    /// `Upload-Checksum` names an algorithm this server does not support. **400** (spec).
    #[error("unsupported checksum algorithm; see Tus-Checksum-Algorithm")]
    UnsupportedChecksumAlgorithm,
    /// `Upload-Checksum` is malformed. **400**.
    #[error("Upload-Checksum: {0}")]
    InvalidChecksum(#[from] ChecksumProblem),
    /// `Upload-Checksum` both as a header and announced as a trailer. **400**.
    #[error("Upload-Checksum is sent both as a header and as a trailer")]
    ChecksumTwice,
    /// The `Trailer` header announced `Upload-Checksum` but no such trailer arrived. **400**;
    /// the chunk is discarded.
    #[error("the announced Upload-Checksum trailer did not arrive")]
    ChecksumTrailerMissing,
    /// The chunk's digest differs from `Upload-Checksum`. **460**; the chunk is discarded
    /// and the offset does not move.
    #[error("the chunk does not match its {algorithm} checksum")]
    ChecksumMismatch {
        /// The algorithm the client declared.
        algorithm: ChecksumAlgorithm,
    },
    /// A creation request with neither `Upload-Length` nor `Upload-Defer-Length: 1`. **400**.
    #[error("a new upload needs Upload-Length or Upload-Defer-Length: 1")]
    LengthRequired,
    /// Both `Upload-Length` and `Upload-Defer-Length`. **400**.
    #[error("Upload-Length and Upload-Defer-Length cannot both be sent")]
    LengthAndDeferLength,
    /// The upload would be larger than `Tus-Max-Size`. **413**.
    #[error("the upload would exceed the maximum size of {max} bytes")]
    UploadTooLarge {
        /// The configured `Tus-Max-Size`.
        max: u64,
    },
    /// The body would go past the upload's declared length. **413**; nothing is stored.
    #[error("the body goes past the upload's length of {length} bytes")]
    ExceedsLength {
        /// The upload's length.
        length: u64,
    },
    /// `Upload-Length` on a PATCH of an upload whose length is already set to another
    /// value. **400** (the spec: once set, the length must not change).
    #[error("the upload's length is already set and cannot change")]
    LengthImmutable,
    /// A deferred length declared smaller than what has already arrived. **400**.
    #[error("the declared length is smaller than the {offset} bytes already received")]
    LengthBelowOffset {
        /// The upload's current offset.
        offset: u64,
    },
    /// `Upload-Offset` differs from the upload's offset. **409**, with the current
    /// `Upload-Offset`; nothing changes.
    #[error("Upload-Offset {sent} does not match the upload's offset {current}")]
    OffsetMismatch {
        /// The upload's offset.
        current: u64,
        /// What the client sent.
        sent: u64,
    },
    /// No such upload (never existed, terminated, or swept after expiry). **404**.
    #[error("no such upload")]
    NotFound,
    /// The upload exists but belongs to another principal and the requester is not an
    /// admin. **404**, with the same public code as [`TusError::NotFound`], so ownership is
    /// not an existence oracle; the log and audit trail record the real reason.
    #[error("no such upload")]
    NotOwner,
    /// The unfinished upload expired and is kept only until the sweeper removes it. **410**.
    #[error("the upload expired")]
    Expired,
    /// A PATCH against a final (concatenated) upload, or a final creation request carrying
    /// a body. **403** (spec); nothing changes.
    #[error("a final concatenated upload cannot be modified")]
    FinalUpload,
    /// `Upload-Concat` is malformed or names something that is not an upload URL. **400**.
    #[error("Upload-Concat: {0}")]
    InvalidConcat(#[from] ConcatProblem),
    /// A part of a final upload cannot be used. **400**. `index` counts from 0 in the
    /// order of the `Upload-Concat` list.
    #[error("Upload-Concat part {index}: {problem}")]
    ConcatPart {
        /// Position in the `Upload-Concat` list.
        index: usize,
        /// Why the part cannot be used.
        problem: PartProblem,
    },
    /// The upload engine committed a completing chunk without the whole-file digest: a bug in
    /// the caller, never client input. **500**.
    #[error("internal: a completing chunk needs the whole-file digest")]
    WholeFileDigestMissing,
    /// The chunk would take the upload past `uploads.max_chunks_per_upload` ledger entries,
    /// or take its last slot without completing the upload. **413**
    /// (`upload.too_many_chunks`); nothing is stored.
    #[error("the upload has {chunks} chunks; at most {max} are allowed")]
    TooManyChunks {
        /// The configured cap.
        max: u64,
        /// The upload's chunks so far.
        chunks: u64,
    },
    /// Another request holds this upload's lease. **423**, with `Retry-After`.
    #[error("the upload is busy with another request")]
    Locked {
        /// Seconds until the holder's lease expires unless renewed (for `Retry-After`).
        retry_after_secs: u64,
    },
}

impl TusError {
    /// Shorthand for an [`TusError::InvalidHeader`].
    pub(crate) fn header(header: TusHeader, problem: HeaderProblem) -> Self {
        TusError::InvalidHeader { header, problem }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_owner_is_indistinguishable_from_not_found_publicly() {
        assert_eq!(
            TusError::NotOwner.to_string(),
            TusError::NotFound.to_string()
        );
    }
}
