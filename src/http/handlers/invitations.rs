//! The upload-invitation API (`proto/invitations-v1.md`) over
//! [`crate::invite::Invitations`], which owns every flow and audits inside it.
//!
//! The issuer's side (publisher; an auditor may list and show):
//!
//! * `POST /v1/invitations` → 201 with the record, `token` and `url` (the invitation URL,
//!   `{base}/invite#{token}`: the token is a bearer credential, shown once); the body is
//!   passed on as bytes, so a manifest in it is kept byte for byte;
//! * `GET /v1/invitations[?partner=…&after=…&limit=…]`, `GET /v1/invitations/{id}`;
//! * `DELETE /v1/invitations/{id}` (optional body `{"reason"}`) → the revoked record.
//!
//! The holder's side (`Authorization: Bearer inv1~…`):
//!
//! * `GET /v1/invitation` → what the invitation allows, what is used, its batch;
//! * `POST /v1/invitation/seal` → 202, its batch sealing.

use http::{Request, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::respond::{Resp, content_length, json_response};
use crate::auth::{AuthError, Principal, Role};
use crate::http::AppState;
use crate::http::body::read_capped;
use crate::http::context::RequestContext;
use crate::http::problem::ApiError;
use crate::ids::OpaqueId;
use crate::invite::record::InvitationRecord;
use crate::invite::{Issuer, Usage, rfc3339};

type Req = Request<axum::body::Body>;

fn issuer(ctx: &RequestContext, p: &Principal) -> Issuer {
    Issuer {
        name: p.name.to_string(),
        admin: p.is_admin(),
        auditor: p.roles.allows(Role::Auditor),
        scope: p.scope.clone(),
        audit: ctx.audit_context(Some(p)),
    }
}

/// A publisher, or (for reads) an auditor; otherwise the audited refusal for the
/// publisher role.
async fn reader(
    state: &AppState,
    ctx: &RequestContext,
    parts: &http::request::Parts,
) -> Result<Principal, ApiError> {
    let p = crate::auth::authenticate(&state.authenticators, parts)?;
    if p.roles.allows(Role::Publisher) || p.roles.allows(Role::Auditor) {
        return Ok(p);
    }
    ctx.require(state, parts, Role::Publisher).await
}

/// The invitation a holder presented (authenticated by its token, nothing else).
fn holder(
    state: &AppState,
    parts: &http::request::Parts,
) -> Result<(Principal, std::sync::Arc<crate::auth::InvitationPass>), ApiError> {
    let p = crate::auth::authenticate(&state.authenticators, parts)?;
    let pass = p.invitation.clone().ok_or(AuthError::Invalid)?;
    Ok((p, pass))
}

/// The issuer's view of a record.
pub fn record_json(r: &InvitationRecord, usage: Option<&Usage>, now: u64) -> Value {
    let mut v = json!({
        "id": r.id,
        "partner": r.partner,
        "issuer": r.issuer,
        "state": r.state(now),
        "batch": r.batch,
        "limits": {"max_files": r.max_files, "max_bytes": r.max_bytes},
        "issued_at": rfc3339(r.created_at),
        "expires_at": rfc3339(r.expires_at),
        "key_id": r.key_id,
        "revoked": r.revoked.as_ref().map(|x| json!({
            "at": rfc3339(x.at), "by": x.by, "reason": x.reason,
        })),
    });
    if let Some(u) = usage {
        v["used"] = json!({"files": u.files, "bytes": u.bytes});
    }
    v
}

/// `POST /v1/invitations`.
pub async fn issue(state: &AppState, ctx: &RequestContext, req: Req) -> Resp {
    let declared = content_length(&req);
    let (parts, body) = req.into_parts();
    let p = ctx.require(state, &parts, Role::Publisher).await?;
    let invitations = &state.invitations;
    let bytes = read_capped(declared, body, invitations.max_issue_body()).await?;
    if bytes.is_empty() {
        return Err(ApiError::JsonRequired);
    }
    if !super::respond::is_json(&parts.headers) {
        return Err(ApiError::NotJson);
    }
    let issued = invitations.issue(&issuer(ctx, &p), &bytes).await?;
    let now = crate::grant::now_unix();
    let mut out = record_json(&issued.record, None, now);
    let token = issued
        .token
        .expose_str()
        .ok_or(ApiError::Internal("an invitation token is not text"))?;
    out["token"] = json!(token);
    out["url"] = json!(format!(
        "{}/invite#{token}",
        super::links::base_url(state, &parts)
    ));
    Ok(json_response(StatusCode::CREATED, &out))
}

/// `partner`, `after`, `limit`: values are partner names, ids and a number, so no
/// percent-decoding is needed (a `%` is refused).
#[derive(Debug, Default)]
struct ListQuery {
    partner: Option<String>,
    after: Option<String>,
    limit: Option<usize>,
}

impl ListQuery {
    fn parse(query: &str) -> Result<Self, crate::invite::InviteError> {
        let bad = || crate::invite::InviteError::BadRequest {
            field: "query",
            detail: "only partner (a partner name), after (an invitation id) and limit \
                     (1 to 200), each at most once"
                .into(),
        };
        let mut q = Self::default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').ok_or_else(bad)?;
            let slot_taken = match k {
                "partner" => {
                    let p: crate::grant::PartnerName = v.parse().map_err(|_| bad())?;
                    q.partner.replace(p.as_str().to_owned()).is_some()
                }
                "after" => {
                    let id: OpaqueId = v.parse().map_err(|_| bad())?;
                    q.after.replace(id.to_string()).is_some()
                }
                "limit" => {
                    let n: usize = v.parse().map_err(|_| bad())?;
                    if !(1..=crate::invite::MAX_PAGE).contains(&n) {
                        return Err(bad());
                    }
                    q.limit.replace(n).is_some()
                }
                _ => return Err(bad()),
            };
            if slot_taken {
                return Err(bad());
            }
        }
        Ok(q)
    }
}

/// `GET /v1/invitations`.
pub async fn list(state: &AppState, ctx: &RequestContext, req: Req) -> Resp {
    let (parts, _) = req.into_parts();
    let p = reader(state, ctx, &parts).await?;
    let invitations = &state.invitations;
    let query = ListQuery::parse(parts.uri.query().unwrap_or(""))?;
    let (records, next) = invitations
        .list(
            &issuer(ctx, &p),
            query.partner.as_deref(),
            query.after.as_deref(),
            query.limit.unwrap_or(50),
        )
        .await?;
    let now = crate::grant::now_unix();
    let items: Vec<Value> = records.iter().map(|r| record_json(r, None, now)).collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({"invitations": items, "next": next}),
    ))
}

/// `GET /v1/invitations/{id}`.
pub async fn get(state: &AppState, ctx: &RequestContext, req: Req, id: OpaqueId) -> Resp {
    let (parts, _) = req.into_parts();
    let p = reader(state, ctx, &parts).await?;
    let invitations = &state.invitations;
    let (record, usage) = invitations.show(&issuer(ctx, &p), &id.to_string()).await?;
    Ok(json_response(
        StatusCode::OK,
        &record_json(&record, Some(&usage), crate::grant::now_unix()),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeBody {
    /// Absent is empty; `null` is refused (a string is expected).
    #[serde(default)]
    reason: String,
}

/// `DELETE /v1/invitations/{id}`.
pub async fn revoke(state: &AppState, ctx: &RequestContext, req: Req, id: OpaqueId) -> Resp {
    let (_, p, body) =
        super::respond::authorized_json::<RevokeBody>(state, ctx, req, Role::Publisher).await?;
    let invitations = &state.invitations;
    let reason = body.map(|b| b.reason).unwrap_or_default();
    let record = invitations
        .revoke(&issuer(ctx, &p), &id.to_string(), &reason)
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &record_json(&record, None, crate::grant::now_unix()),
    ))
}

/// `GET /v1/invitation`.
pub async fn holder_view(state: &AppState, ctx: &RequestContext, req: Req) -> Resp {
    let (parts, _) = req.into_parts();
    let (p, pass) = holder(state, &parts)?;
    let invitations = &state.invitations;
    let view = invitations.view(&pass, ctx.audit_context(Some(&p))).await?;
    let body = serde_json::to_value(&view).map_err(|_| ApiError::Internal("view"))?;
    Ok(json_response(StatusCode::OK, &body))
}

/// `POST /v1/invitation/seal`.
pub async fn holder_seal(state: &AppState, ctx: &RequestContext, req: Req) -> Resp {
    let (parts, _) = req.into_parts();
    let (p, pass) = holder(state, &parts)?;
    let invitations = &state.invitations;
    let view = invitations.seal(&pass, ctx.audit_context(Some(&p))).await?;
    let body = serde_json::to_value(&view).map_err(|_| ApiError::Internal("view"))?;
    Ok(json_response(StatusCode::ACCEPTED, &body))
}
