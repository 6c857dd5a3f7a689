//! Batch membership as the upload engine sees it: a port the batch service implements.
//!
//! An upload whose `Upload-Metadata` names a `batch` and a `member` is a batch member. The
//! engine reads the claim ([`MemberClaim::from_metadata`]), asks the [`Membership`] to admit
//! it *before* anything is created (so a refusal changes nothing), and asks it whether a
//! sealed batch holds an upload before terminating or expiring it. The engine never reads
//! a batch record; the batch service never reads an upload record except through
//! `Uploads`. This file names no batch type, so `upload` does not depend on `batch`.

use std::fmt;

use super::Caller;
use crate::state::StateError;
use crate::tus::metadata::Metadata;
use crate::tus::record::UploadId;

/// The `Upload-Metadata` key naming the batch.
pub const KEY_BATCH: &str = "batch";
/// The `Upload-Metadata` key naming the member's logical name.
pub const KEY_MEMBER: &str = "member";

/// What an upload claims to be: member `member` of batch `batch` (both as sent; the
/// membership checks them).
#[derive(Clone, PartialEq, Eq)]
pub struct MemberClaim {
    /// The batch id, as sent.
    pub batch: String,
    /// The logical name, as sent.
    pub member: String,
}

impl fmt::Debug for MemberClaim {
    // The member name is a logical name, but it came from a client: shown by length only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemberClaim")
            .field("batch", &self.batch)
            .field("member_len", &self.member.len())
            .finish()
    }
}

impl MemberClaim {
    /// The claim in `metadata`: `None` when it names neither key, an error when it names
    /// one without the other or a value that is not UTF-8.
    pub fn from_metadata(metadata: Option<&Metadata>) -> Result<Option<Self>, MembershipError> {
        let Some(m) = metadata else {
            return Ok(None);
        };
        match (m.get(KEY_BATCH), m.get(KEY_MEMBER)) {
            (None, None) => Ok(None),
            (Some(b), Some(n)) => {
                let text = |v: &[u8]| {
                    std::str::from_utf8(v)
                        .map(str::to_owned)
                        .map_err(|_| MembershipError::BadClaim)
                };
                Ok(Some(Self {
                    batch: text(b)?,
                    member: text(n)?,
                }))
            }
            _ => Err(MembershipError::BadClaim),
        }
    }
}

/// Why an upload cannot be (or stop being) a member. The batch service gives each its
/// meaning; the error table gives each its status and code.
#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    /// `batch` without `member` or the reverse, a value that is not UTF-8, or a partial
    /// upload of a concatenation (only whole files are members).
    #[error(
        "a batch member names both `batch` and `member` in Upload-Metadata, and is a whole file"
    )]
    BadClaim,
    /// No such batch, or another principal's.
    #[error("no such batch")]
    BatchNotFound,
    /// The batch is no longer open.
    #[error("the batch is not open")]
    NotOpen,
    /// The manifest does not list the name.
    #[error("the manifest does not list this member")]
    NotListed,
    /// `Upload-Length` differs from the manifest's size.
    #[error("Upload-Length differs from the member's size in the manifest")]
    SizeDiffers,
    /// A live upload of that member exists in the batch.
    #[error("this member already has an upload in the batch")]
    Exists,
    /// The upload belongs to a sealed batch: it is evidence, and stays.
    #[error("the upload is a member of a sealed batch")]
    Sealed,
    /// Uploads cannot name a batch on this gateway (no batch service wired).
    #[error("batches are not available")]
    Unavailable,
    /// The state store failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// The audit trail failed.
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditError),
}

/// The batch side of membership (implemented by the batch service).
#[async_trait::async_trait]
pub trait Membership: Send + Sync + fmt::Debug + 'static {
    /// The uploads bound to `claim` so far (live or not: the engine tells).
    async fn bound(
        &self,
        who: &Caller,
        claim: &MemberClaim,
    ) -> Result<Vec<UploadId>, MembershipError>;

    /// Admits `upload` as `claim`'s member: the batch is open and the caller's (or the
    /// caller is an admin), the manifest lists the name, `length` (when known) is the
    /// listed size. Binds it, unbinding `dead` (bindings whose uploads are gone), and
    /// audits `batch.member_added`.
    async fn admit(
        &self,
        who: &Caller,
        claim: &MemberClaim,
        upload: UploadId,
        length: Option<u64>,
        dead: &[UploadId],
    ) -> Result<(), MembershipError>;

    /// Whether a batch that is no longer open holds `upload` (it must not be terminated or
    /// expire).
    async fn held(&self, upload: UploadId) -> Result<bool, MembershipError>;
}
