//! The artifacts API (publisher role) over [`crate::links::Links`], which registers and
//! audits (see [`crate::links::publish`] for the body and its defaults):
//!
//! * `POST /v1/artifacts` — `{"import": "<file name>"}` (a file in the import directory,
//!   encrypted on import) or `{"upload": "<upload id>"}` (a completed tus upload), with
//!   optional `"content_type"`, `"file_name"` and `"batch"` → 201 with the artifact;
//! * `GET /v1/artifacts/{artifact}` → the artifact.

use http::{Request, StatusCode};

use super::respond::{Resp, authorized_json, json_response};
use crate::auth::Role;
use crate::http::AppState;
use crate::http::context::RequestContext;
use crate::http::problem::ApiError;
use crate::links::publish::{RegisterBody, artifact_json};
use crate::signed_link::ArtifactId;

/// `POST /v1/artifacts`.
pub async fn create(
    state: &AppState,
    ctx: &RequestContext,
    req: Request<axum::body::Body>,
) -> Resp {
    let (_, principal, body) =
        authorized_json::<RegisterBody>(state, ctx, req, Role::Publisher).await?;
    let who = super::links::publisher(ctx, &principal);
    let registered = state
        .links
        .register(&who, body.ok_or(ApiError::JsonRequired)?, &state.uploads)
        .await?;
    Ok(json_response(StatusCode::CREATED, &registered.to_json()))
}

/// `GET /v1/artifacts/{artifact}`.
pub async fn get(
    state: &AppState,
    ctx: &RequestContext,
    req: Request<axum::body::Body>,
    id: ArtifactId,
) -> Resp {
    let (parts, _) = req.into_parts();
    let principal = ctx.require(state, &parts, Role::Publisher).await?;
    let record = state.links.artifact_record(&principal.scope, id).await?;
    Ok(json_response(StatusCode::OK, &artifact_json(&record)))
}
