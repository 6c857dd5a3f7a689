//! Outbound batches (`POST /v1/exports/batches`, `proto/bulk-v1.md` §3.1): a publisher
//! builds the batch an export delivers from registered artifacts (an EHR's export files,
//! imported) or from a released inbound batch, instead of uploading it.
//!
//! The batch is then an ordinary batch, made by the same services an uploader's goes
//! through, so it is checked exactly as an inbound one:
//!
//! 1. every source is resolved and checked: the publisher's `publish_from_owners` scope,
//!    the batch gate (an artifact of a batch that is not released is refused), an inbound
//!    batch must be `released` (its members are registered as artifacts first, through
//!    the links service, as a publication registers them);
//! 2. the manifest is generated from the sources themselves: each member's size and
//!    SHA-256 from its artifact record, its NDJSON record count from the inbound batch's
//!    verified facts or, for an artifact, from one read of its bytes through the same
//!    NDJSON checker the seal uses;
//! 3. the batch is opened with that manifest and the supplied provenance record — or,
//!    built from an inbound batch with none supplied, that batch's record with a
//!    `transformations` line naming it — through `Batches::open` (profile rules, `batch.opened`), and `bulk.batch_built`
//!    names its sources;
//! 4. each source's plaintext is copied into a new tus upload that claims its member,
//!    through the upload engine (admission, quotas, `upload.created` …
//!    `upload.completed`, `batch.member_added`);
//! 5. the batch is sealed: verification re-reads every member (SHA-256, size, NDJSON) and
//!    decides `released` or `quarantined` as for any batch; release follows the profile.
//!
//! A build that fails after the batch is opened leaves it open (it expires with
//! `batches.open_ttl`, or its owner purges it); the error says which step failed.
//!
//! Not here: HTTP (`http::handlers::bulk`).

use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use http::HeaderMap;
use serde::Deserialize;
use serde_json::json;
use serde_json::value::RawValue;

use super::events::BatchBuilt;
use super::{Bulk, BulkError, FHIR_NDJSON};
use crate::artifact::ArtifactRecord;
use crate::batch::ndjson::NdjsonChecker;
use crate::batch::{BatchId, BatchRecord, BatchState, Who};
use crate::links::Publisher;
use crate::links::publish::RegisterBody;
use crate::signed_link::ArtifactId;
use crate::upload::Caller;

/// Most files one build may name.
pub const MAX_BUILD_FILES: usize = 1000;
/// Bytes read from a source per step (counting and copying).
const READ_STEP: u64 = 1 << 20;

/// The body of `POST /v1/exports/batches`: exactly one of `artifacts` and `batch`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildBody {
    #[serde(default)]
    artifacts: Option<Vec<BuildArtifact>>,
    #[serde(default)]
    batch: Option<String>,
    #[serde(default)]
    profile: Option<String>,
    #[serde(default)]
    provenance: Option<Box<RawValue>>,
}

/// One artifact of a build and the resource type its lines are.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildArtifact {
    artifact: String,
    resource_type: String,
}

/// A resolved source: its artifact, its resource type, and its record count when known.
struct Source {
    artifact: Arc<ArtifactRecord>,
    resource_type: String,
    records: Option<u64>,
}

impl Bulk {
    /// Builds, fills and seals an outbound batch owned by `who` (see the module docs).
    pub async fn build(&self, who: &Publisher, body: BuildBody) -> Result<BatchRecord, BulkError> {
        let (mut sources, from_batch) = match (body.artifacts, body.batch) {
            (Some(list), None) => (self.artifact_sources(who, list).await?, None),
            (None, Some(batch)) => {
                let sources = self.batch_sources(who, &batch).await?;
                (sources, Some(batch))
            }
            _ => return Err(BulkError::BadBuild("artifacts or batch (exactly one)")),
        };
        if let Some(p) = &body.profile
            && (p.is_empty() || p.len() > 64)
        {
            return Err(BulkError::BadBuild("profile"));
        }
        for s in &mut sources {
            if s.records.is_none() {
                s.records = Some(self.count_records(s).await?);
            }
        }
        let names = member_names(&sources);
        let members: Vec<serde_json::Value> = sources
            .iter()
            .zip(&names)
            .map(|(s, name)| {
                json!({
                    "name": name,
                    "size": s.artifact.length,
                    "sha256": hex::encode(s.artifact.sha256),
                    "media_type": FHIR_NDJSON,
                    "ndjson": {"resource_type": s.resource_type, "records": s.records},
                })
            })
            .collect();
        let mut manifest = json!({"version": "sallyport.manifest/1", "members": members});
        if let Some(p) = &body.profile {
            manifest["profile"] = json!(p);
        }
        let provenance = match (&body.provenance, &from_batch) {
            (Some(p), _) => Some(p.get().to_owned()),
            (None, Some(inbound)) => self.inherited_provenance(inbound).await?,
            (None, None) => None,
        };
        let mut envelope = format!("{{\"manifest\":{manifest}");
        if let Some(p) = &provenance {
            envelope.push_str(",\"provenance\":");
            envelope.push_str(p);
        }
        envelope.push('}');
        let batch_who = Who {
            name: who.name.clone(),
            auditor: false,
            admin: false,
            audit: who.audit.clone(),
        };
        let record = self.batches.open(&batch_who, envelope.as_bytes()).await?;
        // On record before any member is copied: the trail ties the batch to its sources.
        let event = BatchBuilt {
            batch: record.id.to_string(),
            source: if from_batch.is_some() {
                "batch"
            } else {
                "artifacts"
            },
            artifacts: sources.iter().map(|s| s.artifact.id.to_string()).collect(),
            from_batch,
            members: sources.len() as u64,
            bytes: sources.iter().map(|s| s.artifact.length).sum(),
            manifest_sha256: record.manifest.sha256.clone(),
        };
        self.auditor.emit(&who.audit, &event).await?;
        let caller = Caller {
            name: who.name.clone(),
            admin: false,
            audit: who.audit.clone(),
            bounds: None,
        };
        for (s, name) in sources.iter().zip(&names) {
            self.copy_member(&caller, record.id, name, s).await?;
        }
        Ok(self.batches.seal(&batch_who, record.id).await?)
    }

    /// The artifacts named, each in the publisher's scope and past the batch gate.
    async fn artifact_sources(
        &self,
        who: &Publisher,
        list: Vec<BuildArtifact>,
    ) -> Result<Vec<Source>, BulkError> {
        if list.is_empty() || list.len() > MAX_BUILD_FILES {
            return Err(BulkError::BadBuild("artifacts (1 to 1000)"));
        }
        let mut out: Vec<Source> = Vec::with_capacity(list.len());
        for a in list {
            let id: ArtifactId = a
                .artifact
                .parse()
                .map_err(|_| BulkError::BadBuild("artifacts[].artifact"))?;
            if !super::request::is_resource_type(&a.resource_type) {
                return Err(BulkError::BadBuild("artifacts[].resource_type"));
            }
            if out.iter().any(|s| s.artifact.id == id) {
                return Err(BulkError::BadBuild("artifacts[].artifact (named twice)"));
            }
            let artifact = self
                .links
                .artifact(id)
                .await?
                .ok_or(BulkError::BuildSourceNotFound)?;
            if !who.scope.allows_owner(artifact.owner.as_deref()) {
                return Err(BulkError::OutOfScope);
            }
            if let Some(batch) = artifact.member_of {
                self.require_released(batch).await?;
            }
            out.push(Source {
                artifact,
                resource_type: a.resource_type,
                records: None,
            });
        }
        Ok(out)
    }

    /// The members of a released inbound batch, registered as artifacts (as a publication
    /// registers them), with their verified record counts.
    async fn batch_sources(&self, who: &Publisher, batch: &str) -> Result<Vec<Source>, BulkError> {
        let id: BatchId = batch.parse().map_err(|_| BulkError::BadBuild("batch"))?;
        let delivery = self.require_released(id).await?;
        if !who.scope.allows_owner(Some(&delivery.owner)) {
            return Err(BulkError::OutOfScope);
        }
        // Every member goes into the export, or the build is refused: a member that is not
        // NDJSON (a PDF beside the export) is never silently left behind.
        if delivery.members.len() as u64 != delivery.listed {
            return Err(BulkError::BuildSourceNotNdjson);
        }
        if delivery.members.is_empty() || delivery.members.len() > MAX_BUILD_FILES {
            return Err(BulkError::BadBuild("batch (1 to 1000 NDJSON members)"));
        }
        let mut out = Vec::with_capacity(delivery.members.len());
        for m in &delivery.members {
            let body = RegisterBody::from_upload(m.upload, FHIR_NDJSON, Some(id.to_string()));
            let registered = self.links.register(who, body, &self.uploads).await?;
            out.push(Source {
                artifact: Arc::new(registered.record),
                resource_type: m.resource_type.clone(),
                records: Some(m.records),
            });
        }
        Ok(out)
    }

    /// The provenance record of released inbound batch `id`, for a batch built from it
    /// with none supplied: the same record, with one `transformations` line saying the
    /// members were copied unchanged from that batch (when the record has room for one).
    async fn inherited_provenance(&self, id: &str) -> Result<Option<String>, BulkError> {
        let id: BatchId = id.parse().map_err(|_| BulkError::BadBuild("batch"))?;
        let Some(bytes) = self.batches.released_provenance(id).await? else {
            return Ok(None);
        };
        let mut doc: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|_| super::record::RecordError::Corrupt("a stored provenance record"))?;
        let line = json!(format!(
            "sallyport: members copied unchanged from released batch {id}"
        ));
        match doc.get_mut("transformations") {
            Some(serde_json::Value::Array(list)) if list.len() < 32 => list.push(line),
            Some(_) => {}
            None => doc["transformations"] = json!([line]),
        }
        Ok(Some(doc.to_string()))
    }

    /// The batch's delivery view when it is released; a typed refusal otherwise.
    async fn require_released(
        &self,
        id: BatchId,
    ) -> Result<crate::batch::delivery::Delivery, BulkError> {
        let delivery = self
            .batches
            .delivery(id)
            .await?
            .ok_or(BulkError::BuildSourceNotFound)?;
        if delivery.state != BatchState::Released {
            return Err(BulkError::BuildSourceNotReleased);
        }
        Ok(delivery)
    }

    /// The NDJSON record count of an artifact, read once through the seal's checker (its
    /// faults, if any, are the seal's to find and quarantine).
    async fn count_records(&self, s: &Source) -> Result<u64, BulkError> {
        let reader = self.links.reader(&s.artifact).await?;
        let mut checker = NdjsonChecker::new(&s.resource_type, self.batches.settings().ndjson);
        let mut at = 0;
        while at < reader.len() {
            let n = READ_STEP.min(reader.len() - at);
            let chunk = reader.read_range(at, n).await?;
            checker.feed(&chunk);
            at += n;
        }
        Ok(checker.finish().records)
    }

    /// Copies a source's plaintext into a new upload claiming `member` of `batch`.
    async fn copy_member(
        &self,
        caller: &Caller,
        batch: BatchId,
        member: &str,
        s: &Source,
    ) -> Result<(), BulkError> {
        let b64 = |v: &str| base64::engine::general_purpose::STANDARD.encode(v);
        let mut headers = HeaderMap::new();
        let mut set = |k: &'static str, v: String| -> Result<(), BulkError> {
            let value = v.parse().map_err(|_| BulkError::BadBuild("member name"))?;
            headers.insert(k, value);
            Ok(())
        };
        set("tus-resumable", "1.0.0".into())?;
        set("upload-length", s.artifact.length.to_string())?;
        set(
            "upload-metadata",
            format!(
                "batch {},member {},filetype {}",
                b64(&batch.to_string()),
                b64(member),
                b64(FHIR_NDJSON)
            ),
        )?;
        let created = self
            .uploads
            .create(caller, &headers, http_body_util::Empty::<Bytes>::new())
            .await?;
        let reader = self.links.reader(&s.artifact).await?;
        let len = reader.len();
        let stream = futures_util::stream::unfold((reader, 0u64), move |(reader, at)| async move {
            if at >= len {
                return None;
            }
            let n = READ_STEP.min(len - at);
            let item = reader
                .read_range(at, n)
                .await
                .map(http_body::Frame::data)
                .map_err(|e| std::io::Error::other(e.to_string()));
            Some((item, (reader, at + n)))
        });
        let body = http_body_util::StreamBody::new(stream);
        let mut headers = HeaderMap::new();
        headers.insert("tus-resumable", http::HeaderValue::from_static("1.0.0"));
        headers.insert("upload-offset", http::HeaderValue::from_static("0"));
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/offset+octet-stream"),
        );
        let done = self
            .uploads
            .patch(caller, created.record.id, &headers, body)
            .await?;
        if done.record.offset != s.artifact.length {
            return Err(BulkError::BuildCopy);
        }
        Ok(())
    }
}

/// Member names: `{type}.ndjson`, or `{type}.{n}.ndjson` (n from 1) for a type that
/// several sources have.
fn member_names(sources: &[Source]) -> Vec<String> {
    sources
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let same = sources
                .iter()
                .filter(|o| o.resource_type == s.resource_type)
                .count();
            if same == 1 {
                format!("{}.ndjson", s.resource_type)
            } else {
                let n = sources[..=i]
                    .iter()
                    .filter(|o| o.resource_type == s.resource_type)
                    .count();
                format!("{}.{n}.ndjson", s.resource_type)
            }
        })
        .collect()
}
