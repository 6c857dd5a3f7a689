//! The artifacts API (publisher role).
//!
//! * `POST /v1/artifacts` — `{"import": "<file name>"}` (a file in the import directory,
//!   encrypted on import) or `{"upload": "<upload id>"}` (a completed tus upload), with
//!   optional `"content_type"`, `"file_name"` (the name downloads are served under) and
//!   `"batch"` → 201 with the artifact;
//! * `GET /v1/artifacts/{artifact}` → the artifact.
//!
//! Defaults: the response file name is the import name when that is a valid
//! [`ResponseFileName`], `<artifact id>.bin` for uploads (`.ndjson` when the type is
//! NDJSON); the type is `application/fhir+ndjson` for `.ndjson` names and must be given
//! otherwise.

use http::{Response, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::json_response;
use super::links::authorized_json;
use crate::artifact::events::ArtifactRegistered;
use crate::artifact::import::{ImportError, ImportName};
use crate::artifact::upload::{UploadSourceError, completed_upload};
use crate::artifact::{ArtifactError, ArtifactRecord, ArtifactSource, ContentType};
use crate::auth::Role;
use crate::grant::{BatchRef, now_unix};
use crate::http::AppState;
use crate::http::edge::RequestContext;
use crate::http::problem::ApiError;
use crate::signed_link::{ArtifactId, ResponseFileName};
use crate::tus::record::UploadId;

type Resp = Result<Response<axum::body::Body>, ApiError>;

fn bad(code: &'static str, title: &'static str) -> ApiError {
    ApiError::BadRequest { code, title }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    import: Option<String>,
    upload: Option<String>,
    content_type: Option<String>,
    file_name: Option<String>,
    batch: Option<String>,
}

/// `POST /v1/artifacts`.
pub async fn create(
    state: &AppState,
    ctx: &RequestContext,
    req: http::Request<axum::body::Body>,
) -> Resp {
    let (_, principal, body) =
        authorized_json::<CreateBody>(state, ctx, req, Role::Publisher).await?;
    let body = body.ok_or_else(|| bad("request.bad_json", "A JSON body is required"))?;
    let links = &*state.links;
    let id = ArtifactId::random();
    let file_name = body
        .file_name
        .as_deref()
        .map(ResponseFileName::new)
        .transpose()
        .map_err(|_| {
            bad(
                "artifact.bad_file_name",
                "file_name is 1-128 characters of A-Z, a-z, 0-9, '.', '_', '-'",
            )
        })?;
    let explicit_type = body
        .content_type
        .as_deref()
        .map(str::parse::<ContentType>)
        .transpose()
        .map_err(|_| {
            bad(
                "artifact.bad_content_type",
                "content_type is type/subtype with at most a charset parameter",
            )
        })?;
    let batch = body
        .batch
        .as_deref()
        .map(str::parse::<BatchRef>)
        .transpose()
        .map_err(|_| {
            bad(
                "artifact.bad_batch",
                "batch is 1-64 characters of a-z, 0-9, '.', '_', '-'",
            )
        })?;

    let (record, import) = match (&body.import, &body.upload) {
        (Some(name), None) => {
            let name: ImportName = name.parse().map_err(|_| {
                bad(
                    "artifact.bad_import_name",
                    "import is a plain file name: no '/', no leading '.', no control characters",
                )
            })?;
            let file_name = match file_name {
                Some(f) => f,
                None => ResponseFileName::new(name.as_str()).map_err(|_| {
                    bad(
                        "artifact.file_name_required",
                        "The import name is not a safe download name; give file_name",
                    )
                })?,
            };
            let content_type = explicit_type
                .or_else(|| ContentType::default_for(file_name.as_str()))
                .ok_or_else(|| {
                    bad(
                        "artifact.content_type_required",
                        "Give content_type (only .ndjson files have a default)",
                    )
                })?;
            let imported = links
                .import_dir()
                .import(links.at_rest(), &name, id.opaque())
                .await
                .map_err(import_error)?;
            let record = ArtifactRecord {
                id,
                object: id.opaque(),
                length: imported.length,
                sha256: imported.sha256,
                content_type,
                file_name,
                source: ArtifactSource::Import,
                batch,
                created_at: now_unix(),
                publisher: principal.name.to_string(),
            };
            (record, Some((name, imported)))
        }
        (None, Some(upload)) => {
            let upload: UploadId = upload
                .parse()
                .map_err(|_| bad("artifact.bad_upload", "upload is not an upload id"))?;
            let source = completed_upload(&**links.state(), links.at_rest(), upload)
                .await
                .map_err(upload_error)?;
            let content_type = explicit_type
                .or_else(|| {
                    file_name
                        .as_ref()
                        .and_then(|f| ContentType::default_for(f.as_str()))
                })
                .ok_or_else(|| {
                    bad(
                        "artifact.content_type_required",
                        "Give content_type (only .ndjson files have a default)",
                    )
                })?;
            let file_name = match file_name {
                Some(f) => f,
                None => {
                    let ext = if content_type.as_str() == crate::artifact::content_type::FHIR_NDJSON
                    {
                        "ndjson"
                    } else {
                        "bin"
                    };
                    ResponseFileName::new(&format!("{id}.{ext}"))
                        .map_err(|_| ApiError::Internal("default file name".into()))?
                }
            };
            let record = ArtifactRecord {
                id,
                object: source.object,
                length: source.length,
                sha256: source.sha256,
                content_type,
                file_name,
                source: ArtifactSource::Upload { upload },
                batch,
                created_at: now_unix(),
                publisher: principal.name.to_string(),
            };
            (record, None)
        }
        _ => {
            return Err(bad(
                "artifact.bad_source",
                "Give exactly one of import (a file name) or upload (an upload id)",
            ));
        }
    };
    if let Err(e) = links.artifacts().create(&record).await {
        if import.is_some() {
            // The object was made for this record only; shred it.
            let _ = links.at_rest().delete(record.object).await;
        }
        return Err(artifact_error(e));
    }
    let removed = match &import {
        Some((name, imported)) => Some(links.import_dir().remove(name, imported).await),
        None => None,
    };
    state
        .auditor
        .emit(
            &ctx.audit_context(Some(&principal)),
            &ArtifactRegistered {
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
                source_removed: removed,
            },
        )
        .await?;
    let mut out = artifact_json(&record);
    if let Some(removed) = removed {
        out["source_removed"] = json!(removed);
    }
    Ok(json_response(StatusCode::CREATED, &out))
}

/// `GET /v1/artifacts/{artifact}`.
pub async fn get(
    state: &AppState,
    ctx: &RequestContext,
    parts: &http::request::Parts,
    id: ArtifactId,
) -> Resp {
    ctx.require(state, parts, Role::Publisher).await?;
    let record = state
        .links
        .artifact(id)
        .await
        .map_err(artifact_error)?
        .ok_or(ApiError::ResourceNotFound {
            code: "artifact.not_found",
            title: "No such artifact",
        })?;
    Ok(json_response(StatusCode::OK, &artifact_json(&record)))
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
    })
}

fn artifact_error(e: ArtifactError) -> ApiError {
    match e {
        ArtifactError::State(e) => ApiError::State(e),
        other => ApiError::Internal(other.to_string()),
    }
}

fn import_error(e: ImportError) -> ApiError {
    match e {
        ImportError::NotFound => ApiError::ResourceNotFound {
            code: "import.not_found",
            title: "No such file in the import directory",
        },
        ImportError::Symlink => bad(
            "import.symlink",
            "The import name is a symbolic link; only regular files are imported",
        ),
        ImportError::NotRegularFile => bad(
            "import.not_regular_file",
            "The import name is not a regular file",
        ),
        ImportError::Changed => ApiError::Conflict {
            code: "import.changed",
            title: "The file changed while it was imported; nothing was kept",
        },
        ImportError::Io(e) => ApiError::Internal(format!("import read: {e}")),
        ImportError::AtRest(e) => ApiError::AtRest(e),
    }
}

fn upload_error(e: UploadSourceError) -> ApiError {
    match e {
        UploadSourceError::NotFound => ApiError::ResourceNotFound {
            code: "upload.not_found",
            title: "No such upload",
        },
        UploadSourceError::Incomplete => ApiError::Conflict {
            code: "upload.incomplete",
            title: "The upload is not complete",
        },
        UploadSourceError::Partial => ApiError::Conflict {
            code: "upload.partial",
            title: "A partial upload is not a file; register the final upload",
        },
        UploadSourceError::State(e) => ApiError::State(e),
        UploadSourceError::AtRest(e) => ApiError::AtRest(e),
        other => ApiError::Internal(other.to_string()),
    }
}
