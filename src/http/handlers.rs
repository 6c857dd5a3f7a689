//! Handlers: one function per endpoint, dispatched on the parsed [`Endpoint`]. They turn a
//! request into calls on the pure cores and the ports, and return a response or an
//! [`ApiError`].

use http::{HeaderValue, Request, Response, StatusCode, header};
use serde_json::json;

use super::AppState;
use super::edge::RequestContext;
use super::endpoint::Endpoint;
use super::problem::ApiError;
use crate::audit::events::AuditVerified;
use crate::auth::Role;

pub mod artifacts;
pub mod download;
pub mod links;
pub mod tus;

/// Calls the handler for `ctx.endpoint`.
pub async fn dispatch(
    state: &AppState,
    ctx: &RequestContext,
    req: Request<axum::body::Body>,
) -> Result<Response<axum::body::Body>, ApiError> {
    match ctx.endpoint {
        Endpoint::TusOptions => return Ok(tus::options(state, &req)),
        Endpoint::TusCreate => return tus::create(state, ctx, req).await,
        Endpoint::TusPatch(id) => return tus::patch(state, ctx, id, req).await,
        Endpoint::TusHead(id) => return tus::head(state, ctx, id, req).await,
        Endpoint::TusDelete(id) => return tus::delete(state, ctx, id, req).await,
        Endpoint::TusLedger(id) => return tus::ledger(state, ctx, id, req).await,
        Endpoint::Download => {
            let (parts, _body) = req.into_parts();
            return download::serve(state, ctx, &parts).await;
        }
        Endpoint::ArtifactCreate => return artifacts::create(state, ctx, req).await,
        Endpoint::LinksIssue => return links::issue(state, ctx, req).await,
        Endpoint::LinksRevokeBulk => return links::revoke_bulk(state, ctx, req).await,
        Endpoint::LinkRevoke(id) => return links::revoke(state, ctx, req, id).await,
        _ => {}
    }
    let head = req.method() == http::Method::HEAD;
    let (parts, _body) = req.into_parts();
    let resp = match ctx.endpoint {
        Endpoint::Healthz => json_response(StatusCode::OK, &json!({"status": "ok"})),
        Endpoint::Readyz => readyz(state).await,
        Endpoint::Metrics => {
            let mut r = Response::new(axum::body::Body::from(state.metrics.encode()));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
            );
            r
        }
        Endpoint::WhoAmI => {
            let p = crate::auth::authenticate(&state.authenticators, &parts)
                .map_err(ApiError::Unauthorized)?;
            json_response(
                StatusCode::OK,
                &json!({
                    "name": p.name.as_str(),
                    "roles": p.roles.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
                    "tls_client": ctx.conn.client.as_ref().map(|c| json!({
                        "subject": c.subject,
                        "fingerprint_sha256": hex::encode(c.fingerprint_sha256),
                    })),
                    "tls": ctx.conn.tls.as_ref().map(|t| json!({
                        "version": t.version, "cipher": t.cipher, "alpn": t.alpn,
                    })),
                }),
            )
        }
        Endpoint::AuditVerify => {
            let principal = ctx.require(state, &parts, Role::Auditor).await?;
            let result = crate::audit::verify_store(&*state.state, |_| {}).await?;
            let (intact, body) = match result {
                Ok(summary) => (
                    true,
                    json!({"intact": true, "length": summary.length, "head_hash": summary.head_hash}),
                ),
                Err(e) => (false, json!({"intact": false, "error": e.to_string()})),
            };
            let length = body["length"].as_u64().unwrap_or(0);
            state
                .auditor
                .emit(
                    &ctx.audit_context(Some(&principal)),
                    &AuditVerified { length, intact },
                )
                .await?;
            json_response(StatusCode::OK, &body)
        }
        Endpoint::TusOptions
        | Endpoint::TusCreate
        | Endpoint::TusPatch(_)
        | Endpoint::TusHead(_)
        | Endpoint::TusDelete(_)
        | Endpoint::TusLedger(_) => return Err(ApiError::NotFound),
        Endpoint::ArtifactGet(id) => artifacts::get(state, ctx, &parts, id).await?,
        Endpoint::LinksList => links::list(state, ctx, &parts).await?,
        Endpoint::LinkGet(id) => links::get(state, ctx, &parts, id).await?,
        // Dispatched with their bodies above.
        Endpoint::Download
        | Endpoint::ArtifactCreate
        | Endpoint::LinksIssue
        | Endpoint::LinksRevokeBulk
        | Endpoint::LinkRevoke(_) => return Err(ApiError::NotFound),
    };
    Ok(if head { strip_body(resp) } else { resp })
}

async fn readyz(state: &AppState) -> Response<axum::body::Body> {
    let (s, b) = tokio::join!(
        tokio::time::timeout(std::time::Duration::from_secs(2), state.state.ping()),
        tokio::time::timeout(std::time::Duration::from_secs(2), state.blobs.ping()),
    );
    let state_ok = matches!(s, Ok(Ok(())));
    let blob_ok = matches!(b, Ok(Ok(())));
    let status = if state_ok && blob_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json_response(
        status,
        &json!({
            "status": if status == StatusCode::OK { "ready" } else { "not ready" },
            "state_store": {"kind": state.state.kind(), "ok": state_ok},
            "blob_store": {"kind": state.blobs.kind(), "ok": blob_ok},
        }),
    )
}

/// A JSON response.
pub fn json_response(status: StatusCode, value: &serde_json::Value) -> Response<axum::body::Body> {
    let mut r = Response::new(axum::body::Body::from(value.to_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn strip_body(resp: Response<axum::body::Body>) -> Response<axum::body::Body> {
    let (parts, _) = resp.into_parts();
    Response::from_parts(parts, axum::body::Body::empty())
}
