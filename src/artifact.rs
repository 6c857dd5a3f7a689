//! Artifacts: the finished, encrypted files partners can download through signed links.
//!
//! An artifact is a record in the state store (namespace `artifact`, [`ArtifactRecord`])
//! that points at a finished at-rest object and says what it is: plaintext length, SHA-256
//! (for `ETag` and `Repr-Digest`), media type, the file name it is served under, where it
//! came from and who registered it. Records never change after registration, which is why
//! the download path may cache them briefly.
//!
//! Two ways in:
//! * [`import`]: a file the operator placed in the gateway's import directory is read
//!   (opened without following symlinks, regular files only), encrypted through
//!   [`AtRest`](crate::at_rest::AtRest) while its SHA-256 is computed, and removed afterwards (configurable);
//! * from an upload: a completed tus upload is registered as it is (its at-rest object and
//!   whole-file SHA-256 were made by the upload engine, which checks that the upload may
//!   be registered: `Uploads::completed_source`). The registry answers the engine's
//!   question back ([`Artifacts::registered_from`]) without either reading the other's
//!   records.
//!
//! The file name may be PHI: it lives in the record only, is never logged, never put in a
//! URL, and `Debug` does not print it.
//!
//! Not here: who may download (grants), HTTP.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub mod content_type;
pub mod events;
pub mod import;

pub use content_type::{ContentType, ContentTypeError};

use crate::grant::BatchRef;
use crate::ids::OpaqueId;
use crate::signed_link::{ArtifactId, ResponseFileName};
use crate::state::{CasOutcome, Expect, IndexEntry, Namespace, PutOptions, StateError, StateStore};
use crate::tus::record::UploadId;

/// The artifact records' namespace.
pub const ARTIFACT_NAMESPACE: Namespace = Namespace::new("artifact");
/// The record encoding version.
pub const ARTIFACT_RECORD_VERSION: u32 = 1;
/// Index of artifacts by the publisher that registered them.
pub const INDEX_PUBLISHER: &str = "publisher";
/// Index of artifacts by batch.
pub const INDEX_BATCH: &str = "batch";
/// Index of artifacts by the upload they were registered from.
pub const INDEX_UPLOAD: &str = "upload";

/// Where an artifact's bytes came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum ArtifactSource {
    /// Imported from the import directory.
    Import,
    /// A completed tus upload.
    Upload {
        /// The upload.
        upload: UploadId,
    },
}

impl ArtifactSource {
    /// `import` or `upload`.
    pub fn kind(&self) -> &'static str {
        match self {
            ArtifactSource::Import => "import",
            ArtifactSource::Upload { .. } => "upload",
        }
    }
}

/// A registered artifact.
#[derive(Clone, PartialEq, Eq)]
pub struct ArtifactRecord {
    /// Its id (the link's path segment).
    pub id: ArtifactId,
    /// The at-rest object holding its ciphertext.
    pub object: OpaqueId,
    /// Plaintext length in bytes.
    pub length: u64,
    /// SHA-256 of the plaintext.
    pub sha256: [u8; 32],
    /// Media type.
    pub content_type: ContentType,
    /// Default response file name (PHI: never logged).
    pub file_name: ResponseFileName,
    /// Origin.
    pub source: ArtifactSource,
    /// Batch, when published as part of one (batches come later).
    pub batch: Option<BatchRef>,
    /// Registration time (Unix seconds).
    pub created_at: u64,
    /// The API client that registered it.
    pub publisher: String,
    /// The API client that uploaded it (`None` for an import, which no client owns):
    /// what a publisher's `publish_from_owners` is checked against.
    pub owner: Option<String>,
    /// The batch whose member upload it was registered from: every download asks the
    /// batch gate whether that batch is still released.
    pub member_of: Option<crate::batch::BatchId>,
}

impl fmt::Debug for ArtifactRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ArtifactRecord")
            .field("id", &self.id)
            .field("object", &self.object)
            .field("length", &self.length)
            .field("sha256", &hex::encode(self.sha256))
            .field("content_type", &self.content_type)
            .field("file_name", &self.file_name)
            .field("source", &self.source)
            .field("batch", &self.batch)
            .field("created_at", &self.created_at)
            .field("publisher", &self.publisher)
            .field("owner", &self.owner)
            .field("member_of", &self.member_of)
            .finish()
    }
}

/// Why stored bytes are not a valid artifact record. Never echoes the bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArtifactRecordError {
    /// Not JSON of the expected shape.
    #[error("artifact record is malformed at line {line}, column {column}")]
    Malformed {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// A version this build cannot read.
    #[error("artifact record version {0} is not supported")]
    UnsupportedVersion(u64),
    /// A field that does not parse.
    #[error("artifact record is invalid: {0}")]
    Invalid(&'static str),
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope {
    v: u32,
    artifact: Wire,
}

#[derive(Deserialize)]
struct VersionProbe {
    v: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    id: ArtifactId,
    object: OpaqueId,
    length: u64,
    sha256: String,
    content_type: String,
    file_name: String,
    source: ArtifactSource,
    batch: Option<String>,
    created_at: u64,
    publisher: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    member_of: Option<crate::batch::BatchId>,
}

impl ArtifactRecord {
    /// The versioned JSON encoding.
    pub fn encode(&self) -> Vec<u8> {
        let wire = Wire {
            id: self.id,
            object: self.object,
            length: self.length,
            sha256: hex::encode(self.sha256),
            content_type: self.content_type.to_string(),
            file_name: self.file_name.as_str().to_owned(),
            source: self.source.clone(),
            batch: self.batch.as_ref().map(ToString::to_string),
            created_at: self.created_at,
            publisher: self.publisher.clone(),
            owner: self.owner.clone(),
            member_of: self.member_of,
        };
        // Plain structs with string keys serialise into a Vec without failing.
        serde_json::to_vec(&Envelope {
            v: ARTIFACT_RECORD_VERSION,
            artifact: wire,
        })
        .unwrap_or_default()
    }

    /// Decodes and checks a stored record.
    pub fn decode(bytes: &[u8]) -> Result<Self, ArtifactRecordError> {
        let malformed = |e: serde_json::Error| ArtifactRecordError::Malformed {
            line: e.line(),
            column: e.column(),
        };
        let probe: VersionProbe = serde_json::from_slice(bytes).map_err(malformed)?;
        if probe.v != u64::from(ARTIFACT_RECORD_VERSION) {
            return Err(ArtifactRecordError::UnsupportedVersion(probe.v));
        }
        let w = serde_json::from_slice::<Envelope>(bytes)
            .map_err(malformed)?
            .artifact;
        let invalid = ArtifactRecordError::Invalid;
        let mut sha256 = [0u8; 32];
        if w.sha256.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(invalid("sha256"));
        }
        hex::decode_to_slice(w.sha256.as_bytes(), &mut sha256).map_err(|_| invalid("sha256"))?;
        if w.publisher.is_empty() {
            return Err(invalid("publisher"));
        }
        if w.owner.as_deref().is_some_and(str::is_empty) {
            return Err(invalid("owner"));
        }
        Ok(Self {
            id: w.id,
            object: w.object,
            length: w.length,
            sha256,
            content_type: w
                .content_type
                .parse()
                .map_err(|_| invalid("content_type"))?,
            file_name: ResponseFileName::new(&w.file_name).map_err(|_| invalid("file_name"))?,
            source: w.source,
            batch: w
                .batch
                .map(|b| b.parse())
                .transpose()
                .map_err(|_| invalid("batch"))?,
            created_at: w.created_at,
            publisher: w.publisher,
            owner: w.owner,
            member_of: w.member_of,
        })
    }

    /// The strong entity tag's opaque part: `sha256-` and the digest in unpadded base64url.
    /// Derived from the content only, so every instance computes the same tag.
    pub fn etag_opaque(&self) -> String {
        use base64::Engine as _;
        format!(
            "sha256-{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(self.sha256)
        )
    }

    /// The RFC 9530 `Repr-Digest` value: `sha-256=:<base64>:`.
    pub fn repr_digest(&self) -> String {
        use base64::Engine as _;
        format!(
            "sha-256=:{}:",
            base64::engine::general_purpose::STANDARD.encode(self.sha256)
        )
    }
}

/// An artifact-registry failure.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// The state store failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// A stored record does not decode.
    #[error("artifact {id}: {source}")]
    Corrupt {
        /// The artifact.
        id: String,
        /// Why.
        source: ArtifactRecordError,
    },
    /// An artifact with this id exists already.
    #[error("artifact {0} already exists")]
    AlreadyExists(ArtifactId),
}

/// The artifact registry over the state store.
#[derive(Debug, Clone)]
pub struct Artifacts {
    state: Arc<dyn StateStore>,
}

impl Artifacts {
    /// The registry in `state`.
    pub fn new(state: Arc<dyn StateStore>) -> Self {
        Self { state }
    }

    /// Stores a new record (compare-and-swap on absence).
    pub async fn create(&self, record: &ArtifactRecord) -> Result<(), ArtifactError> {
        let mut index = vec![IndexEntry::new(INDEX_PUBLISHER, record.publisher.clone())];
        if let Some(b) = &record.batch {
            index.push(IndexEntry::new(INDEX_BATCH, b.as_str()));
        }
        if let ArtifactSource::Upload { upload } = &record.source {
            index.push(IndexEntry::new(INDEX_UPLOAD, upload.to_string()));
        }
        match self
            .state
            .put(
                ARTIFACT_NAMESPACE,
                &record.id.to_string(),
                &record.encode(),
                Expect::Absent,
                PutOptions { ttl: None, index },
            )
            .await?
        {
            CasOutcome::Applied(_) => Ok(()),
            CasOutcome::Conflict(_) => Err(ArtifactError::AlreadyExists(record.id)),
        }
    }

    /// Deletes a record that was never acknowledged (its `artifact.registered` entry
    /// could not be written), so no unrecorded artifact stays registered.
    pub async fn forget(&self, id: ArtifactId) -> Result<(), ArtifactError> {
        self.state
            .delete(ARTIFACT_NAMESPACE, &id.to_string(), Expect::Any)
            .await?;
        Ok(())
    }

    /// The record, if registered.
    pub async fn get(&self, id: ArtifactId) -> Result<Option<ArtifactRecord>, ArtifactError> {
        let key = id.to_string();
        let Some(stored) = self.state.get(ARTIFACT_NAMESPACE, &key).await? else {
            return Ok(None);
        };
        let record = ArtifactRecord::decode(&stored.value)
            .map_err(|source| ArtifactError::Corrupt { id: key, source })?;
        if record.id != id {
            return Err(ArtifactError::Corrupt {
                id: id.to_string(),
                source: ArtifactRecordError::Invalid("stored under another id"),
            });
        }
        Ok(Some(record))
    }

    /// Whether any artifact was registered from `upload` (the upload engine asks before it
    /// destroys a completed upload: the artifact shares its object).
    pub async fn registered_from(&self, upload: UploadId) -> Result<bool, ArtifactError> {
        let found = self
            .state
            .list_index(
                ARTIFACT_NAMESPACE,
                &IndexEntry::new(INDEX_UPLOAD, upload.to_string()),
                None,
                1,
            )
            .await?;
        Ok(!found.is_empty())
    }

    /// Artifacts already registered from `upload`.
    pub async fn by_upload(&self, upload: UploadId) -> Result<Vec<String>, ArtifactError> {
        Ok(self
            .state
            .list_index(
                ARTIFACT_NAMESPACE,
                &IndexEntry::new(INDEX_UPLOAD, upload.to_string()),
                None,
                10,
            )
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ArtifactRecord {
        ArtifactRecord {
            id: "67rq0xe32xxh21dav1b2qx1ch3".parse().unwrap(),
            object: "67rq0xe32xxh21dav1b2qx1ch3".parse().unwrap(),
            length: 1234,
            sha256: [0xab; 32],
            content_type: "application/fhir+ndjson".parse().unwrap(),
            file_name: ResponseFileName::new("doe-jane.ndjson").unwrap(),
            source: ArtifactSource::Upload {
                upload: "0123456789abcdefghjkmnpqrs".parse().unwrap(),
            },
            batch: None,
            created_at: 1_767_225_600,
            publisher: "exporter".into(),
            owner: Some("clinic-7".into()),
            member_of: None,
        }
    }

    #[test]
    fn round_trip_and_refusals() {
        let a = sample();
        assert_eq!(ArtifactRecord::decode(&a.encode()).unwrap(), a);
        let mut b = a.clone();
        b.source = ArtifactSource::Import;
        b.batch = Some("b-1".parse().unwrap());
        assert_eq!(ArtifactRecord::decode(&b.encode()).unwrap(), b);
        let good = String::from_utf8(a.encode()).unwrap();
        for bad in [
            good.replace("\"v\":1", "\"v\":9"),
            good.replace("doe-jane.ndjson", "../etc/passwd"),
            good.replace("application/fhir+ndjson", "text/x; q=1"),
            good.replace(&"ab".repeat(32), &"AB".repeat(32)),
            good.replace("\"length\"", "\"more\":1,\"length\""),
            good.replace("\"kind\":\"upload\"", "\"kind\":\"ftp\""),
        ] {
            assert!(ArtifactRecord::decode(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn digests_and_debug() {
        let a = sample();
        assert_eq!(
            a.repr_digest(),
            "sha-256=:q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=:"
        );
        assert_eq!(
            a.etag_opaque(),
            "sha256-q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s"
        );
        assert!(crate::range::EntityTag::strong(&a.etag_opaque()).is_ok());
        assert!(!format!("{a:?}").contains("doe-jane"));
    }
}
