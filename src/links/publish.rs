//! Registering artifacts (the publisher's `POST /v1/artifacts`): from a file in the import
//! directory (encrypted on import) or from a completed tus upload (the artifact shares the
//! upload's encrypted object, and its uploader becomes the artifact's `owner`).
//! `artifact.registered` is audited before the answer. A publisher limited by
//! `publish_from_owners` registers only uploads of those owners (never an import, which no
//! client owns); a refusal is audited as `publish.out_of_scope`.
//!
//! Defaults: the response file name is the import name when that is a valid
//! [`ResponseFileName`], `<artifact id>.bin` for uploads (`.ndjson` when the type is
//! NDJSON); the type is `application/fhir+ndjson` for `.ndjson` names and must be given
//! otherwise.

use serde::Deserialize;
use serde_json::{Value, json};

use super::events::PublishOutOfScope;
use super::{Links, Publisher};
use crate::artifact::events::ArtifactRegistered;
use crate::artifact::import::{ImportError, ImportName};
use crate::artifact::{ArtifactError, ArtifactRecord, ArtifactSource, ContentType};
use crate::audit::AuditError;
use crate::grant::{BatchRef, now_unix};
use crate::signed_link::{ArtifactId, ResponseFileName};
use crate::tus::record::UploadId;
use crate::upload::Uploads;
use crate::upload::source::UploadSourceError;

/// The body of `POST /v1/artifacts`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterBody {
    import: Option<String>,
    upload: Option<String>,
    content_type: Option<String>,
    file_name: Option<String>,
    batch: Option<String>,
}

impl RegisterBody {
    /// The body registering completed upload `upload` as an artifact of `content_type`
    /// (with the default file name), tagged with `batch` (what the FHIR Bulk flow sends
    /// for each member of a released batch it delivers).
    pub fn from_upload(upload: UploadId, content_type: &str, batch: Option<String>) -> Self {
        Self {
            import: None,
            upload: Some(upload.to_string()),
            content_type: Some(content_type.to_owned()),
            file_name: None,
            batch,
        }
    }
}

/// Why an artifact was not registered.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// Neither or both of `import` and `upload`.
    #[error("give exactly one of import or upload")]
    BadSource,
    /// `file_name` is not a safe response file name.
    #[error("file_name is not a safe file name")]
    BadFileName,
    /// `content_type` is not `type/subtype` with at most a charset.
    #[error("content_type is malformed")]
    BadContentType,
    /// `batch` is not a batch reference.
    #[error("batch is malformed")]
    BadBatch,
    /// `import` is not a plain file name.
    #[error("import is not a plain file name")]
    BadImportName,
    /// `upload` is not an upload id.
    #[error("upload is not an upload id")]
    BadUpload,
    /// The import name cannot be the download name, and none was given.
    #[error("file_name is required")]
    FileNameRequired,
    /// No content type was given and the name has no default.
    #[error("content_type is required")]
    ContentTypeRequired,
    /// The publisher's `publish_from_owners` does not include the upload's owner (or the
    /// source is an import, which no client owns).
    #[error("the source's owner is outside the publisher's scope")]
    OwnerOutOfScope,
    /// The upload is a member of a batch that is not released (open, sealing,
    /// quarantined, purged).
    #[error("the upload's batch is not released")]
    BatchNotReleased,
    /// The batch records could not be read.
    #[error(transparent)]
    Batch(#[from] crate::batch::store::StoreError),
    /// Importing the file failed.
    #[error(transparent)]
    Import(#[from] ImportError),
    /// The upload cannot become an artifact (or its records could not be read).
    #[error(transparent)]
    Upload(#[from] UploadSourceError),
    /// The registry failed (its state store, a corrupt record, an id collision).
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
    /// The audit trail could not record the registration.
    #[error(transparent)]
    Audit(#[from] AuditError),
}

impl RegisterError {
    /// Whether another request holds the upload right now (registering it too, writing or
    /// deleting it): worth trying again shortly.
    pub fn is_busy(&self) -> bool {
        matches!(self, RegisterError::Upload(UploadSourceError::Busy { .. }))
    }
}

/// A registered artifact, and whether its import file was removed.
#[derive(Debug, Clone)]
pub struct Registered {
    /// The record as stored.
    pub record: ArtifactRecord,
    /// For imports: whether the import file was removed (`None` for uploads).
    pub source_removed: Option<bool>,
}

impl Registered {
    /// The JSON answer.
    pub fn to_json(&self) -> Value {
        let mut out = artifact_json(&self.record);
        if let Some(removed) = self.source_removed {
            out["source_removed"] = json!(removed);
        }
        out
    }
}

// === impl Links: artifacts ===

impl Links {
    /// An artifact's record, for its publisher's view: refused when its owner (or, for an
    /// import, its lack of one) is outside the publisher's `publish_from_owners`.
    pub async fn artifact_record(
        &self,
        scope: &crate::auth::PublisherScope,
        id: ArtifactId,
    ) -> Result<std::sync::Arc<ArtifactRecord>, super::LinkError> {
        let record = self
            .artifact(id)
            .await?
            .ok_or(super::LinkError::ArtifactNotFound)?;
        if !scope.allows_owner(record.owner.as_deref()) {
            return Err(super::LinkError::OwnerOutOfScope);
        }
        Ok(record)
    }

    /// Registers an artifact as `body` describes it, then records `artifact.registered`.
    /// An upload source is checked by `uploads` (complete, not a partial, its object
    /// finished at the recorded length); the artifact then shares the upload's object.
    pub async fn register(
        &self,
        who: &Publisher,
        body: RegisterBody,
        uploads: &Uploads,
    ) -> Result<Registered, RegisterError> {
        let id = ArtifactId::random();
        let file_name = body
            .file_name
            .as_deref()
            .map(ResponseFileName::new)
            .transpose()
            .map_err(|_| RegisterError::BadFileName)?;
        let explicit_type = body
            .content_type
            .as_deref()
            .map(str::parse::<ContentType>)
            .transpose()
            .map_err(|_| RegisterError::BadContentType)?;
        let batch = body
            .batch
            .as_deref()
            .map(str::parse::<BatchRef>)
            .transpose()
            .map_err(|_| RegisterError::BadBatch)?;
        let base = |object, length, sha256, content_type, file_name, source| ArtifactRecord {
            id,
            object,
            length,
            sha256,
            content_type,
            file_name,
            source,
            batch: batch.clone(),
            created_at: now_unix(),
            publisher: who.name.clone(),
            owner: None,
            member_of: None,
        };

        // An upload source stays held (its lease) until its artifact is recorded.
        let mut hold = None;
        let (record, import) = match (&body.import, &body.upload) {
            (Some(name), None) => {
                let name: ImportName = name.parse().map_err(|_| RegisterError::BadImportName)?;
                if !who.scope.allows_owner(None) {
                    self.out_of_scope(who, None, None).await?;
                    return Err(RegisterError::OwnerOutOfScope);
                }
                let file_name = match file_name {
                    Some(f) => f,
                    None => ResponseFileName::new(name.as_str())
                        .map_err(|_| RegisterError::FileNameRequired)?,
                };
                let content_type = explicit_type
                    .or_else(|| ContentType::default_for(file_name.as_str()))
                    .ok_or(RegisterError::ContentTypeRequired)?;
                let imported = self
                    .import
                    .import(&self.at_rest, &name, id.opaque())
                    .await?;
                let record = base(
                    id.opaque(),
                    imported.length,
                    imported.sha256,
                    content_type,
                    file_name,
                    ArtifactSource::Import,
                );
                (record, Some((name, imported)))
            }
            (None, Some(upload)) => {
                let upload: UploadId = upload.parse().map_err(|_| RegisterError::BadUpload)?;
                // A batch member leaves only once its batch is released.
                let member_of = self
                    .batch_gate
                    .upload(upload)
                    .await?
                    .map_err(|_| RegisterError::BatchNotReleased)?;
                let (source, held) = uploads.completed_source_held(upload).await?;
                if !who.scope.allows_owner(Some(&source.owner)) {
                    held.release().await;
                    self.out_of_scope(who, Some(source.owner), Some(upload.to_string()))
                        .await?;
                    return Err(RegisterError::OwnerOutOfScope);
                }
                hold = Some(held);
                let content_type = explicit_type
                    .or_else(|| {
                        file_name
                            .as_ref()
                            .and_then(|f| ContentType::default_for(f.as_str()))
                    })
                    .ok_or(RegisterError::ContentTypeRequired)?;
                let file_name = match file_name {
                    Some(f) => f,
                    None => default_upload_name(id, &content_type)?,
                };
                let mut record = base(
                    source.object,
                    source.length,
                    source.sha256,
                    content_type,
                    file_name,
                    ArtifactSource::Upload { upload },
                );
                record.owner = Some(source.owner);
                record.member_of = member_of;
                (record, None)
            }
            _ => return Err(RegisterError::BadSource),
        };
        // Audit before acknowledging: the record, then its entry; when the entry cannot be
        // written the record is forgotten again (and an import's object shredded), so no
        // unrecorded artifact stays. The upload source stays held until then, and an
        // import's source file is removed only after the entry.
        let result = async {
            self.artifacts.create(&record).await?;
            let event = ArtifactRegistered {
                artifact: record.id.to_string(),
                source: record.source.kind(),
                upload: match &record.source {
                    ArtifactSource::Upload { upload } => Some(upload.to_string()),
                    ArtifactSource::Import => None,
                },
                length: record.length,
                sha256: hex::encode(record.sha256),
                content_type: record.content_type.to_string(),
                batch: record.batch.as_ref().map(ToString::to_string),
                remove_source: import.as_ref().map(|_| self.import.removes_imported()),
            };
            if let Err(e) = self.auditor.emit(&who.audit, &event).await {
                if let Err(undo) = self.artifacts.forget(record.id).await {
                    tracing::error!(error = %undo, artifact = %record.id, "could not forget an unaudited artifact");
                }
                return Err(RegisterError::from(e));
            }
            Ok(())
        }
        .await;
        // The upload (if that is the source) is free again once its artifact exists; its
        // object is the artifact's now, so it leaves the uploader's byte quota.
        if let Some(held) = hold {
            if let (Ok(()), ArtifactSource::Upload { upload }) = (&result, &record.source)
                && let Err(e) = uploads.claimed_by_artifact(*upload).await
            {
                tracing::warn!(error = %e, "could not release a registered upload's quota");
            }
            held.release().await;
        }
        if let Err(e) = result {
            if import.is_some() {
                // The object was made for this record only; shred it.
                let _ = self.at_rest.delete(record.object).await;
            }
            return Err(e);
        }
        let source_removed = match &import {
            Some((name, imported)) => Some(self.import.remove(name, imported).await),
            None => None,
        };
        Ok(Registered {
            record,
            source_removed,
        })
    }
}

// === impl Links: publisher scope ===

impl Links {
    /// Records `publish.out_of_scope` for a registration refused by `who`'s
    /// `publish_from_owners` (`owner` `None`: an import).
    async fn out_of_scope(
        &self,
        who: &Publisher,
        owner: Option<String>,
        upload: Option<String>,
    ) -> Result<(), AuditError> {
        let event = PublishOutOfScope {
            attempt: "artifact.register",
            limit: "owner",
            partner: None,
            owner,
            artifact: None,
            upload,
        };
        self.auditor.emit(&who.audit, &event).await.map(drop)
    }
}

/// `<artifact id>.ndjson` for NDJSON, `<artifact id>.bin` otherwise. (An artifact id is
/// always a valid file-name stem; were it not, the publisher is asked for a name.)
fn default_upload_name(
    id: ArtifactId,
    content_type: &ContentType,
) -> Result<ResponseFileName, RegisterError> {
    let ext = if content_type.as_str() == crate::artifact::content_type::FHIR_NDJSON {
        "ndjson"
    } else {
        "bin"
    };
    ResponseFileName::new(&format!("{id}.{ext}")).map_err(|_| RegisterError::FileNameRequired)
}

/// The JSON form of an artifact (the file name goes to the publisher that may set it).
pub fn artifact_json(a: &ArtifactRecord) -> Value {
    json!({
        "artifact": a.id.to_string(),
        "length": a.length,
        "sha256": hex::encode(a.sha256),
        "repr_digest": a.repr_digest(),
        "etag": format!("\"{}\"", a.etag_opaque()),
        "content_type": a.content_type.as_str(),
        "file_name": a.file_name.as_str(),
        "source": a.source.kind(),
        "upload": match &a.source {
            ArtifactSource::Upload { upload } => Some(upload.to_string()),
            ArtifactSource::Import => None,
        },
        "batch": a.batch.as_ref().map(ToString::to_string),
        "created_at": a.created_at,
        "publisher": a.publisher,
        "owner": a.owner,
    })
}
