//! The links API (publisher role): issue, list, show and revoke grants.
//!
//! * `POST /v1/links` — `{"artifact", "partner", "ttl"?, "not_before"?, "methods"?,
//!   "max_downloads"?, "max_bytes"?, "client_net"?, "client_cert_sha256"?, "file_name"?}`
//!   → 201 with the grant and `url` (the link; a bearer credential shown once);
//! * `GET /v1/links?artifact=…|partner=…|batch=…[&after=…][&limit=…]` → a page of grants;
//! * `GET /v1/links/{grant}` → one grant, with its usage;
//! * `DELETE /v1/links/{grant}` (optional body `{"reason"}`) → the revoked grant;
//! * `POST /v1/links/revoke` — `{"artifact"|"partner"|"batch", "reason"}` → counts.
//!
//! Every issue and revocation is audited (`link.issued`, `link.revoked`) before the answer.

use http::{Response, StatusCode, header};
use serde::Deserialize;
use serde_json::{Value, json};

use super::json_response;
use crate::auth::{Principal, Role};
use crate::grant::events::{LinkIssued, LinksRevoked};
use crate::grant::{
    Budget, GrantError, GrantFilter, GrantRecord, Limits, Reason, RevokeOutcome, now_unix,
};
use crate::http::AppState;
use crate::http::body::read_capped;
use crate::http::edge::{RequestContext, content_length};
use crate::http::problem::ApiError;
use crate::links::{IssueError, IssueRequest};
use crate::signed_link::{Bindings, CertFingerprint, ClientNet, GrantId, ResponseFileName};

type Resp = Result<Response<axum::body::Body>, ApiError>;

fn bad(code: &'static str, title: &'static str) -> ApiError {
    ApiError::BadRequest { code, title }
}

/// Authenticates the request for `role`, then reads its JSON body of type `T` (capped at
/// the API body limit; `None` when empty).
pub(super) async fn authorized_json<T: serde::de::DeserializeOwned>(
    state: &AppState,
    ctx: &RequestContext,
    req: http::Request<axum::body::Body>,
    role: Role,
) -> Result<(http::request::Parts, Principal, Option<T>), ApiError> {
    let declared = content_length(&req);
    let (parts, body) = req.into_parts();
    let principal = ctx.require(state, &parts, role).await?;
    let bytes = read_capped(declared, body, state.config.server.max_body_bytes.0).await?;
    if bytes.is_empty() {
        return Ok((parts, principal, None));
    }
    let value = serde_json::from_slice(&bytes).map_err(|_| {
        bad(
            "request.bad_json",
            "The body is not JSON of the expected shape (unknown fields are refused)",
        )
    })?;
    Ok((parts, principal, Some(value)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IssueBody {
    artifact: String,
    partner: String,
    ttl: Option<String>,
    not_before: Option<u64>,
    methods: Option<String>,
    max_downloads: Option<u32>,
    max_bytes: Option<u64>,
    client_net: Option<String>,
    client_cert_sha256: Option<String>,
    file_name: Option<String>,
}

/// `POST /v1/links`.
pub async fn issue(
    state: &AppState,
    ctx: &RequestContext,
    req: http::Request<axum::body::Body>,
) -> Resp {
    let (parts, principal, body) =
        authorized_json::<IssueBody>(state, ctx, req, Role::Publisher).await?;
    let body = body.ok_or_else(|| bad("request.bad_json", "A JSON body is required"))?;
    let request = issue_request(body)?;
    let links = &*state.links;
    let issued = links
        .issue(principal.name.as_str(), request)
        .await
        .map_err(|e| match e {
            IssueError::Ttl => bad("link.bad_ttl", "ttl must be from 1s to links.max_ttl"),
            IssueError::NotBefore => {
                bad("link.bad_not_before", "not_before is too far in the future")
            }
            IssueError::ZeroLimit => bad("link.bad_limit", "Limits must be at least 1"),
            IssueError::ArtifactNotFound => ApiError::ResourceNotFound {
                code: "artifact.not_found",
                title: "No such artifact",
            },
            IssueError::Claims(_) => bad("link.bad_window", "The validity window is empty"),
            IssueError::Grant(GrantError::State(e)) => ApiError::State(e),
            IssueError::Artifact(crate::artifact::ArtifactError::State(e)) => ApiError::State(e),
            other => ApiError::Internal(other.to_string()),
        })?;
    let g = &issued.grant;
    state
        .auditor
        .emit(
            &ctx.audit_context(Some(&principal)),
            &LinkIssued {
                grant: g.id.to_string(),
                partner: g.partner.to_string(),
                artifacts: g.scope.artifacts.iter().map(ToString::to_string).collect(),
                batch: g.scope.batch.as_ref().map(ToString::to_string),
                key_id: g.key_id.to_string(),
                methods: g.methods.as_str(),
                not_before: g.not_before,
                expires: g.expires,
                max_downloads: g.limits.max_downloads,
                max_bytes: g.limits.max_bytes,
                client_net: g.bindings.client_net.map(|n| n.to_string()),
                client_cert_bound: g.bindings.client_cert.is_some(),
                file_name_set: g.file_name.is_some(),
            },
        )
        .await?;
    let mut out = grant_json(g, now_unix(), None);
    out["path"] = json!(issued.target);
    out["url"] = json!(format!("{}{}", base_url(state, &parts), issued.target));
    Ok(json_response(StatusCode::CREATED, &out))
}

fn issue_request(b: IssueBody) -> Result<IssueRequest, ApiError> {
    let artifact = b
        .artifact
        .parse()
        .map_err(|_| bad("link.bad_artifact", "artifact is not an artifact id"))?;
    let partner = b.partner.parse().map_err(|_| {
        bad(
            "link.bad_partner",
            "partner is 1-64 characters of a-z, 0-9, '.', '_', '-'",
        )
    })?;
    let ttl = b
        .ttl
        .as_deref()
        .map(crate::config::units::parse_duration)
        .transpose()
        .map_err(|_| {
            bad(
                "link.bad_ttl",
                "ttl is a duration such as 15m, 24h or 7days",
            )
        })?;
    let methods = match b.methods.as_deref() {
        None => crate::signed_link::MethodSet::GetHead,
        Some(m) => m
            .parse()
            .map_err(|()| bad("link.bad_methods", "methods is GET, HEAD or GET,HEAD"))?,
    };
    let client_net = b
        .client_net
        .as_deref()
        .map(str::parse::<ClientNet>)
        .transpose()
        .map_err(|_| {
            bad(
                "link.bad_client_net",
                "client_net is a canonical CIDR block (host bits zero)",
            )
        })?;
    let client_cert = b
        .client_cert_sha256
        .as_deref()
        .map(parse_fingerprint)
        .transpose()?;
    let file_name = b
        .file_name
        .as_deref()
        .map(ResponseFileName::new)
        .transpose()
        .map_err(|_| {
            bad(
                "link.bad_file_name",
                "file_name is 1-128 characters of A-Z, a-z, 0-9, '.', '_', '-'",
            )
        })?;
    Ok(IssueRequest {
        artifact,
        partner,
        ttl,
        not_before: b.not_before,
        methods,
        limits: Limits {
            max_downloads: b.max_downloads,
            max_bytes: b.max_bytes,
        },
        bindings: Bindings {
            client_net,
            client_cert,
        },
        file_name,
    })
}

/// A certificate fingerprint: 64 hex digits (as `whoami` and `openssl x509 -fingerprint`
/// print it, colons allowed) or 43 characters of unpadded base64url (the link form).
fn parse_fingerprint(s: &str) -> Result<CertFingerprint, ApiError> {
    let hexed: String = s.chars().filter(|c| *c != ':').collect();
    let mut bytes = [0u8; 32];
    if hexed.len() == 64 && hex::decode_to_slice(hexed.as_bytes(), &mut bytes).is_ok() {
        return Ok(CertFingerprint::from_bytes(bytes));
    }
    s.parse().map_err(|()| {
        bad(
            "link.bad_client_cert",
            "client_cert_sha256 is the certificate's SHA-256 in hex or base64url",
        )
    })
}

/// `GET /v1/links?…`.
pub async fn list(state: &AppState, ctx: &RequestContext, parts: &http::request::Parts) -> Resp {
    ctx.require(state, parts, Role::Publisher).await?;
    let mut filter = None;
    let mut after = None;
    let mut limit = 100usize;
    for pair in parts
        .uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if v.contains('%') || v.contains('+') {
            return Err(bad(
                "request.bad_query",
                "Query values are ids or names and need no encoding",
            ));
        }
        let parsed = match k {
            "artifact" => v.parse().ok().map(GrantFilter::Artifact),
            "partner" => v.parse().ok().map(GrantFilter::Partner),
            "batch" => v.parse().ok().map(GrantFilter::Batch),
            "after" => {
                after = Some(
                    v.parse::<GrantId>()
                        .map_err(|_| bad("request.bad_query", "after is a grant id"))?,
                );
                continue;
            }
            "limit" => {
                limit = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=crate::grant::MAX_PAGE).contains(n))
                    .ok_or_else(|| bad("request.bad_query", "limit is 1 to 1000"))?;
                continue;
            }
            _ => {
                return Err(bad(
                    "request.bad_query",
                    "Known parameters: artifact, partner, batch, after, limit",
                ));
            }
        };
        let parsed = parsed.ok_or_else(|| {
            bad(
                "request.bad_query",
                "artifact, partner or batch is malformed",
            )
        })?;
        if filter.replace(parsed).is_some() {
            return Err(bad(
                "request.bad_query",
                "Give exactly one of artifact, partner, batch",
            ));
        }
    }
    let filter = filter.ok_or_else(|| {
        bad(
            "request.bad_query",
            "Give exactly one of artifact, partner, batch",
        )
    })?;
    let page = state
        .links
        .grants()
        .list(&filter, after, limit)
        .await
        .map_err(grant_error)?;
    let now = now_unix();
    let mut grants = Vec::with_capacity(page.grants.len());
    for g in &page.grants {
        let usage = usage(state, g).await?;
        grants.push(grant_json(g, now, usage));
    }
    Ok(json_response(
        StatusCode::OK,
        &json!({"grants": grants, "next": page.next.map(|n| n.to_string())}),
    ))
}

/// `GET /v1/links/{grant}`.
pub async fn get(
    state: &AppState,
    ctx: &RequestContext,
    parts: &http::request::Parts,
    id: GrantId,
) -> Resp {
    ctx.require(state, parts, Role::Publisher).await?;
    let (g, _) = state
        .links
        .grants()
        .get(id)
        .await
        .map_err(grant_error)?
        .ok_or(GRANT_NOT_FOUND)?;
    let usage = usage(state, &g).await?;
    Ok(json_response(
        StatusCode::OK,
        &grant_json(&g, now_unix(), usage),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeBody {
    reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BulkBody {
    artifact: Option<String>,
    partner: Option<String>,
    batch: Option<String>,
    reason: String,
}

const GRANT_NOT_FOUND: ApiError = ApiError::ResourceNotFound {
    code: "grant.not_found",
    title: "No such grant",
};

fn reason(text: Option<&str>) -> Result<Reason, ApiError> {
    text.unwrap_or("revoked").parse().map_err(|_| {
        bad(
            "link.bad_reason",
            "reason is 1-200 characters: letters, digits, spaces and . , : ; ( ) _ - / #",
        )
    })
}

/// `DELETE /v1/links/{grant}`.
pub async fn revoke(
    state: &AppState,
    ctx: &RequestContext,
    req: http::Request<axum::body::Body>,
    id: GrantId,
) -> Resp {
    let (_, principal, body) =
        authorized_json::<RevokeBody>(state, ctx, req, Role::Publisher).await?;
    let reason = reason(body.as_ref().and_then(|b| b.reason.as_deref()))?;
    let outcome = state
        .links
        .grants()
        .revoke(id, principal.name.as_str(), &reason, now_unix())
        .await
        .map_err(grant_error)?;
    let (record, count, already) = match outcome {
        RevokeOutcome::Revoked(r) => (r, 1, 0),
        RevokeOutcome::AlreadyRevoked(r) => (r, 0, 1),
        RevokeOutcome::NotFound => return Err(GRANT_NOT_FOUND),
    };
    audit_revoked(
        state,
        ctx,
        &principal,
        "grant",
        id.to_string(),
        &reason,
        count,
        already,
        if count == 1 { vec![id] } else { Vec::new() },
    )
    .await?;
    let usage = usage(state, &record).await?;
    Ok(json_response(
        StatusCode::OK,
        &grant_json(&record, now_unix(), usage),
    ))
}

/// `POST /v1/links/revoke`.
pub async fn revoke_bulk(
    state: &AppState,
    ctx: &RequestContext,
    req: http::Request<axum::body::Body>,
) -> Resp {
    let (_, principal, body) =
        authorized_json::<BulkBody>(state, ctx, req, Role::Publisher).await?;
    let body = body.ok_or_else(|| bad("request.bad_json", "A JSON body is required"))?;
    let selector = bad(
        "link.bad_selector",
        "Give exactly one of artifact, partner, batch (well-formed)",
    );
    let filter = match (&body.artifact, &body.partner, &body.batch) {
        (Some(a), None, None) => GrantFilter::Artifact(a.parse().map_err(|_| selector)?),
        (None, Some(p), None) => GrantFilter::Partner(p.parse().map_err(|_| selector)?),
        (None, None, Some(b)) => GrantFilter::Batch(b.parse().map_err(|_| selector)?),
        _ => return Err(selector),
    };
    let reason = reason(Some(&body.reason))?;
    let done = state
        .links
        .grants()
        .revoke_all(&filter, principal.name.as_str(), &reason, now_unix())
        .await
        .map_err(grant_error)?;
    audit_revoked(
        state,
        ctx,
        &principal,
        filter.kind(),
        filter.value(),
        &reason,
        done.revoked.len() as u64,
        done.already_revoked,
        done.revoked.clone(),
    )
    .await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "revoked": done.revoked.len(),
            "already_revoked": done.already_revoked,
            "grants": done.revoked.iter().map(ToString::to_string).collect::<Vec<_>>(),
        }),
    ))
}

#[allow(clippy::too_many_arguments)]
async fn audit_revoked(
    state: &AppState,
    ctx: &RequestContext,
    principal: &Principal,
    scope: &'static str,
    target: String,
    reason: &Reason,
    count: u64,
    already_revoked: u64,
    grants: Vec<GrantId>,
) -> Result<(), ApiError> {
    state
        .auditor
        .emit(
            &ctx.audit_context(Some(principal)),
            &LinksRevoked {
                scope,
                target,
                reason: reason.as_str().to_owned(),
                count,
                already_revoked,
                grants: grants.iter().take(100).map(ToString::to_string).collect(),
            },
        )
        .await?;
    Ok(())
}

pub(super) fn grant_error(e: GrantError) -> ApiError {
    match e {
        GrantError::State(e) => ApiError::State(e),
        GrantError::Contended(_) => ApiError::Conflict {
            code: "grant.contended",
            title: "The grant kept changing; retry",
        },
        other => ApiError::Internal(other.to_string()),
    }
}

/// Bytes counted against a grant's limits for its first artifact (`None` when unlimited).
async fn usage(state: &AppState, g: &GrantRecord) -> Result<Option<Value>, ApiError> {
    if !g.limits.is_limited() {
        return Ok(None);
    }
    let Some(&artifact) = g.scope.artifacts.first() else {
        return Ok(None);
    };
    let len = match state.links.artifact(artifact).await {
        Ok(Some(a)) => a.length,
        Ok(None) => return Ok(None),
        Err(crate::artifact::ArtifactError::State(e)) => return Err(e.into()),
        Err(e) => return Err(ApiError::Internal(e.to_string())),
    };
    let budget = Budget::new(g.id, artifact, &g.limits, len);
    let u = state.links.meter().usage(&budget).await?;
    let downloads = g
        .limits
        .max_downloads
        .map(|_| u.artifact_bytes.max(0) as u64 / len.max(1));
    Ok(Some(json!({
        "artifact_bytes": u.artifact_bytes,
        "grant_bytes": u.grant_bytes,
        "full_downloads": downloads,
    })))
}

/// The JSON form of a grant (the file name is returned to the publisher that may set it).
pub fn grant_json(g: &GrantRecord, now: u64, usage: Option<Value>) -> Value {
    let status = if g.is_revoked() {
        "revoked"
    } else if now >= g.expires {
        "expired"
    } else if now < g.not_before {
        "not_yet_valid"
    } else {
        "active"
    };
    json!({
        "grant": g.id.to_string(),
        "status": status,
        "issuer": g.issuer,
        "partner": g.partner.as_str(),
        "artifacts": g.scope.artifacts.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "batch": g.scope.batch.as_ref().map(ToString::to_string),
        "methods": g.methods.as_str(),
        "not_before": g.not_before,
        "expires": g.expires,
        "expires_at": rfc3339(g.expires),
        "created_at": g.created_at,
        "key_id": g.key_id.as_str(),
        "limits": {"max_downloads": g.limits.max_downloads, "max_bytes": g.limits.max_bytes},
        "bindings": {
            "client_net": g.bindings.client_net.map(|n| n.to_string()),
            "client_cert_sha256": g.bindings.client_cert.map(|c| hex::encode(c.as_bytes())),
        },
        "file_name": g.file_name.as_ref().map(|n| n.as_str()),
        "revoked": g.revoked.as_ref().map(|r| json!({
            "at": r.at, "by": r.by, "reason": r.reason.as_str(),
        })),
        "usage": usage,
    })
}

fn rfc3339(secs: u64) -> Option<String> {
    let t = time::OffsetDateTime::from_unix_timestamp(i64::try_from(secs).ok()?).ok()?;
    t.format(&time::format_description::well_known::Rfc3339)
        .ok()
}

/// Scheme and authority for issued links: `links.public_base_url`, else the issuing
/// request's own host (the publisher reached the gateway there), else the listen address.
fn base_url(state: &AppState, parts: &http::request::Parts) -> String {
    if let Some(u) = &state.links.settings().public_base_url {
        return u.clone();
    }
    let scheme = if state.config.server.danger_plaintext_http {
        "http"
    } else {
        "https"
    };
    let host = parts
        .uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| {
            parts
                .headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
        })
        .filter(|h| {
            !h.is_empty()
                && h.len() <= 255
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
        })
        .unwrap_or_else(|| state.config.server.listen.to_string());
    format!("{scheme}://{host}")
}
