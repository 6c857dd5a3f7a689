//! Audit events of the upload engine. Details carry ids, offsets, lengths and digests —
//! never metadata values or file names.

use serde::Serialize;

use crate::audit::{AuditEvent, Outcome};

/// An upload was created.
#[derive(Debug, Serialize)]
pub struct UploadCreated {
    /// The upload id.
    pub upload: String,
    /// Declared length, `None` when deferred.
    pub length: Option<u64>,
    /// `none`, `partial` or `final`.
    pub concat: &'static str,
    /// Number of metadata pairs (their values are PHI and are not recorded).
    pub metadata_pairs: usize,
}

impl AuditEvent for UploadCreated {
    const ACTION: &'static str = "upload.created";
    fn subject(&self) -> Option<String> {
        Some(self.upload.clone())
    }
}

/// A chunk was accepted and is durable.
#[derive(Debug, Serialize)]
pub struct ChunkAccepted {
    /// The upload id.
    pub upload: String,
    /// Ledger index.
    pub index: u64,
    /// Offset of the chunk's first byte.
    pub offset: u64,
    /// Bytes.
    pub length: u64,
    /// SHA-256 of the chunk, hex.
    pub sha256: String,
    /// The client's checksum algorithm, when one was declared and verified.
    pub checksum_verified: Option<&'static str>,
    /// The chunk was what arrived of an interrupted PATCH without a checksum.
    pub partial_body: bool,
    /// Recorded after the fact: by recovery after a crash (the client was not told), or
    /// because the entry could not be written when the chunk was accepted (the client was
    /// answered 503, and the offset had advanced).
    pub recovered: bool,
}

impl AuditEvent for ChunkAccepted {
    const ACTION: &'static str = "upload.chunk_accepted";
    fn subject(&self) -> Option<String> {
        Some(self.upload.clone())
    }
}

/// A chunk failed its declared checksum and was discarded.
#[derive(Debug, Serialize)]
pub struct ChecksumMismatch {
    /// The upload id.
    pub upload: String,
    /// The offset the chunk would have started at.
    pub offset: u64,
    /// Bytes received and discarded.
    pub length: u64,
    /// The declared algorithm.
    pub algorithm: &'static str,
}

impl AuditEvent for ChecksumMismatch {
    const ACTION: &'static str = "upload.checksum_mismatch";
    fn outcome(&self) -> Outcome {
        Outcome::Failure
    }
    fn subject(&self) -> Option<String> {
        Some(self.upload.clone())
    }
}

/// An upload is complete.
#[derive(Debug, Serialize)]
pub struct UploadCompleted {
    /// The upload id.
    pub upload: String,
    /// Total bytes.
    pub length: u64,
    /// SHA-256 of the whole plaintext, hex.
    pub sha256: String,
    /// Ledger entries (0 for a final concatenated upload).
    pub chunks: u64,
    /// For a final upload: its parts, in order.
    pub parts: Vec<String>,
    /// Recorded after the fact: by recovery after a crash, or because the entry could not
    /// be written when the upload completed (the client was answered 503).
    pub recovered: bool,
}

impl AuditEvent for UploadCompleted {
    const ACTION: &'static str = "upload.completed";
    fn subject(&self) -> Option<String> {
        Some(self.upload.clone())
    }
}

/// A client asked for an upload it does not own (it was answered 404, exactly as for an
/// upload that does not exist): the attempt is recorded, with the upload as subject.
#[derive(Debug, Serialize)]
pub struct UploadAccessDenied {
    /// The upload id.
    pub upload: String,
    /// What it tried: `head`, `patch`, `delete`, `ledger`…
    pub attempted: &'static str,
}

impl AuditEvent for UploadAccessDenied {
    const ACTION: &'static str = "upload.access_denied";
    fn outcome(&self) -> Outcome {
        Outcome::Denied
    }
    fn subject(&self) -> Option<String> {
        Some(self.upload.clone())
    }
}

/// An upload was terminated (DELETE) and its data and keys destroyed.
#[derive(Debug, Serialize)]
pub struct UploadTerminated {
    /// The upload id.
    pub upload: String,
    /// Bytes it held.
    pub offset: u64,
    /// Whether it was complete.
    pub complete: bool,
}

impl AuditEvent for UploadTerminated {
    const ACTION: &'static str = "upload.terminated";
    fn subject(&self) -> Option<String> {
        Some(self.upload.clone())
    }
}

/// An unfinished upload expired; the sweeper destroys its data and keys right after this
/// entry is durable (audited before the action, as every change is).
#[derive(Debug, Serialize)]
pub struct UploadExpired {
    /// The upload id.
    pub upload: String,
    /// Bytes it held.
    pub offset: u64,
    /// Its owner.
    pub owner: String,
}

impl AuditEvent for UploadExpired {
    const ACTION: &'static str = "upload.expired";
    fn subject(&self) -> Option<String> {
        Some(self.upload.clone())
    }
}

/// A complete upload that nobody registered as an artifact or held in a batch reached the
/// end of `uploads.completed_retention`; the sweeper destroys it right after this entry is
/// durable.
#[derive(Debug, Serialize)]
pub struct UploadRetired {
    /// The upload id.
    pub upload: String,
    /// Its length.
    pub length: u64,
    /// Its owner.
    pub owner: String,
    /// When it completed (RFC 3339).
    pub completed_at: String,
}

impl AuditEvent for UploadRetired {
    const ACTION: &'static str = "upload.retired";
    fn subject(&self) -> Option<String> {
        Some(self.upload.clone())
    }
}

/// An upload was destroyed for its batch (purged, expired): its data key first.
#[derive(Debug, Serialize)]
pub struct UploadShredded {
    /// The upload id.
    pub upload: String,
    /// Bytes it held.
    pub offset: u64,
    /// Whether it was complete.
    pub complete: bool,
    /// Why: `batch`.
    pub cause: &'static str,
}

impl AuditEvent for UploadShredded {
    const ACTION: &'static str = "upload.shredded";
    fn subject(&self) -> Option<String> {
        Some(self.upload.clone())
    }
}
