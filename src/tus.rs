//! The tus 1.0.0 protocol core: headers, metadata, checksums, the upload state machine and
//! the chunk ledger, as pure code with no I/O.
//!
//! The upload engine (`crate::upload`) drives it: it parses a request with
//! [`request::PatchRequest::from_headers`] / [`request::CreateRequest::from_headers`], asks
//! a `plan_*` function in [`plan`] what to do with the stored [`record::UploadRecord`],
//! streams the body through a [`checksum::ChunkHasher`], and after the bytes are durable
//! calls [`plan::PatchPlan::commit`] to get the new record, the ledger entry and the
//! response headers. Every refusal is a [`TusError`] value; the error table
//! (`http::problem::upload`) gives each variant its status, problem code and headers.
//!
//! The profile this implements — what Sallyport sends and accepts, limits, error codes, the
//! ledger format, concatenation digests — is written normatively in `proto/upload-v1.md`;
//! the golden vectors the tests read are in `proto/vectors/upload-v1/`.
//!
//! # Layout
//!
//! * [`error`] — [`TusError`], one variant per refusal, each documented with its status, and
//!   the problem enums its variants carry.
//! * [`headers`] — single header values: numbers, `Tus-Resumable`, `Upload-Defer-Length`,
//!   `Content-Type`, `Trailer`, and the `OPTIONS` response values.
//! * [`dates`] — [`dates::Timestamp`], RFC 3339 for JSON and IMF-fixdate for `Upload-Expires`.
//! * [`metadata`] — strict `Upload-Metadata` parsing and formatting, with limits.
//! * [`checksum`] — `Upload-Checksum` and the streaming [`checksum::ChunkHasher`]; the
//!   algorithm names in the leaf [`checksum::algorithm`].
//! * [`concat`](mod@concat) — the base path, upload URLs and `Upload-Concat`.
//! * [`request`] — a whole `HeaderMap` to a typed POST or PATCH request.
//! * [`record`] — the stored [`record::UploadRecord`] and its versioned encoding.
//! * [`plan`] — the state machine: `plan_create`, `plan_patch`, `plan_head`, `plan_delete`,
//!   `plan_concat_final`, and the commit step.
//! * [`ledger`] — chunk ledger entries and the `GET {base}{id}/ledger` document.
//!
//! Not here: sockets, bodies, storage, leases, encryption, audit events, metrics. Those are
//! the handler's; this module only decides.

use std::time::Duration;

pub mod checksum;
pub mod concat;
pub mod dates;
pub mod error;
pub mod headers;
pub mod ledger;
pub mod metadata;
pub mod plan;
pub mod record;
pub mod request;

pub use error::TusError;

/// The only protocol version spoken (`Tus-Resumable`, `Tus-Version`).
pub const TUS_VERSION: &str = "1.0.0";

/// The configured limits of the tus endpoint. Built by the config module from validated
/// values; [`TusLimits::default`] gives the documented defaults (see `proto/upload-v1.md`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TusLimits {
    /// Largest upload in bytes (`Tus-Max-Size`). Default 64 GiB.
    pub max_size: u64,
    /// An unfinished upload expires this long after its creation or its last accepted
    /// chunk, whichever is later. Default 24 hours.
    pub expire_after: Duration,
    /// Limits on `Upload-Metadata`.
    pub metadata: metadata::MetadataLimits,
    /// Most partial uploads one final upload may name. Default 256.
    pub max_concat_parts: usize,
    /// Most chunks (ledger entries) one upload may have. Default 10,000. The last slot is
    /// kept for a chunk that completes the upload, so a client near the cap can finish.
    pub max_chunks: u64,
}

impl Default for TusLimits {
    fn default() -> Self {
        Self {
            max_size: 64 * 1024 * 1024 * 1024,
            expire_after: Duration::from_secs(24 * 60 * 60),
            metadata: metadata::MetadataLimits::default(),
            max_concat_parts: 256,
            max_chunks: 10_000,
        }
    }
}

/// Who is asking, as far as the tus core cares: the authenticated principal's name and
/// whether it holds the `admin` role. The handler builds it from `auth::Principal`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Requester<'a> {
    /// The principal's stable name (recorded as an upload's owner).
    pub name: &'a str,
    /// Holds the `admin` role: may HEAD, PATCH and DELETE uploads it does not own.
    pub admin: bool,
}
