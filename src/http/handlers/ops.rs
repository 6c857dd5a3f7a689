//! Operator endpoints: `/healthz`, `/readyz`, `/metrics`, `/v1/whoami` and
//! `/v1/audit/verify` (auditor role; the verification is itself audited).

use std::time::Duration;

use http::{HeaderValue, Request, Response, StatusCode, header};
use serde_json::json;

use super::respond::{Resp, json_response, strip_body};
use crate::auth::Role;
use crate::http::AppState;
use crate::http::context::RequestContext;

/// How long `/readyz` waits for each store.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// `GET|HEAD /healthz`: the process is alive.
pub fn healthz(req: &Request<axum::body::Body>) -> Response<axum::body::Body> {
    head_aware(req, json_response(StatusCode::OK, &json!({"status": "ok"})))
}

/// `GET|HEAD /readyz`: both stores answer within two seconds and the audit writer has not
/// halted (else 503, with the reason).
pub async fn readyz(state: &AppState, head: bool) -> Response<axum::body::Body> {
    let (s, b) = tokio::join!(
        tokio::time::timeout(READY_TIMEOUT, state.state.ping()),
        tokio::time::timeout(READY_TIMEOUT, state.blobs.ping()),
    );
    let state_ok = matches!(s, Ok(Ok(())));
    let blob_ok = matches!(b, Ok(Ok(())));
    // A halted audit writer refuses every audited action: not ready, with the reason.
    let halted = state.auditor.halted();
    let status = if state_ok && blob_ok && halted.is_none() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if status == StatusCode::OK { "ready" } else { "not ready" },
        "state_store": {"kind": state.state.kind(), "ok": state_ok},
        "blob_store": {"kind": state.blobs.kind(), "ok": blob_ok},
        "audit": match halted {
            None => json!({"ok": true}),
            Some(r) => json!({"ok": false, "halted": r.to_string()}),
        },
    });
    let resp = json_response(status, &body);
    if head { strip_body(resp) } else { resp }
}

/// `GET /metrics`: Prometheus exposition; with `server.metrics_access = "role"`, only for
/// a client with the `metrics` role (or `admin`): the per-action counts tell an outsider
/// what the gateway is doing.
pub async fn metrics(
    state: &AppState,
    ctx: &RequestContext,
    req: Request<axum::body::Body>,
) -> Resp {
    if state.config.server.metrics_access == crate::config::MetricsAccess::Role {
        let (parts, _) = req.into_parts();
        ctx.require(state, &parts, Role::Metrics).await?;
    }
    let mut r = Response::new(axum::body::Body::from(state.metrics.encode()));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
    );
    Ok(r)
}

/// `GET /v1/whoami`: the authenticated principal and what TLS negotiated.
pub fn whoami(state: &AppState, ctx: &RequestContext, req: Request<axum::body::Body>) -> Resp {
    let (parts, _) = req.into_parts();
    let p = crate::auth::authenticate(&state.authenticators, &parts)?;
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "name": p.name.as_str(),
            "roles": p.roles.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
            "auth_method": p.method.as_str(),
            "tls_client": p.tls_client.as_ref().map(|c| json!({
                "subject": c.subject,
                "fingerprint_sha256": hex::encode(c.fingerprint_sha256),
                "sans": c.sans,
            })),
            // What the gateway judges this client by; behind a balancer, check it here.
            "client_addr": ctx.client.client.to_string(),
            "peer_addr": ctx.client.via().map(|p| p.to_string()),
            "tls": ctx.conn.tls.as_ref().map(|t| json!({
                "version": t.version, "cipher": t.cipher, "alpn": t.alpn,
            })),
        }),
    ))
}

/// `GET /v1/audit/verify` (auditor): verifies the chain and records that it did.
pub async fn audit_verify(
    state: &AppState,
    ctx: &RequestContext,
    req: Request<axum::body::Body>,
) -> Resp {
    let (parts, _) = req.into_parts();
    let principal = ctx.require(state, &parts, Role::Auditor).await?;
    let actx = ctx.audit_context(Some(&principal));
    let body =
        match crate::audit::verify_recorded(&**state.auditor.log(), &state.auditor, &actx).await? {
            Ok(s) => json!({"intact": true, "length": s.length, "head_hash": s.head_hash}),
            Err(e) => json!({"intact": false, "error": e.to_string()}),
        };
    Ok(json_response(StatusCode::OK, &body))
}

fn head_aware(
    req: &Request<axum::body::Body>,
    resp: Response<axum::body::Body>,
) -> Response<axum::body::Body> {
    if req.method() == http::Method::HEAD {
        strip_body(resp)
    } else {
        resp
    }
}
