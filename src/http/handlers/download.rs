//! `GET|HEAD /d/{artifact}?…`: downloads through signed links (no account).
//!
//! The checks run cheapest first, and nothing is read from the state store before the
//! link's signature has verified:
//!
//! 1. the client is not blocked by the forged-link limiter (else 429 + `Retry-After`);
//! 2. the link parses canonically and verifies (key, constant-time MAC, window, method,
//!    client network, client certificate) — [`crate::signed_link`];
//! 3. the grant exists, is not revoked, covers the artifact and agrees with the link;
//! 4. the artifact exists and its object opens (authenticating its length);
//! 5. the range plan (`Range`, `If-Range` against the strong `ETag`);
//! 6. the meter reserves the response's bytes (GET) or is not spent (HEAD);
//! 7. `download.served` is written to the audit trail (durably: no audit, no bytes — unless
//!    `links.danger_queued_download_audit` trades that for throughput, see
//!    [`crate::links::Links::audit_download`]).
//!
//! Every refusal in 2–4 and 6 is answered with the same 403 problem (`link.refused`); the
//! specific reason goes to the audit trail only (`download.rejected`). Responses carry
//! `Accept-Ranges`, a strong `ETag` and `Repr-Digest` (SHA-256 of the whole file) on every
//! 200 and 206, `Content-Disposition: attachment`, and `Cache-Control: private, no-store`;
//! no content coding is ever applied.

use std::time::Instant;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};

use crate::artifact::ArtifactRecord;
use crate::audit::{Actor, AuditContext};
use crate::grant::{Budget, GrantError, GrantRecord, Reserve, now_unix};
use crate::http::AppState;
use crate::http::edge::RequestContext;
use crate::http::problem::ApiError;
use crate::links::body::{MeteredBody, Piece, Settlement};
use crate::links::events::{DownloadRejected, DownloadServed};
use crate::links::limiter::Recorded;
use crate::range::{Boundary, EntityTag, MultipartLayout, RangePlan, content_range, plan_request};
use crate::signed_link::{CertFingerprint, LinkRequest, Method, UnixTime, VerifiedLink};

/// Grant-level refusal codes (the link-level ones are `LinkRejection::code`).
pub mod reasons {
    /// The grant named by a verified link does not exist (never stored, or retention ended).
    pub const GRANT_NOT_FOUND: &str = "grant_not_found";
    /// The grant was revoked.
    pub const REVOKED: &str = "revoked";
    /// The grant does not cover the link's artifact.
    pub const NOT_COVERED: &str = "grant_scope_mismatch";
    /// The grant's window, methods or bindings differ from the link's (never issued so).
    pub const GRANT_MISMATCH: &str = "grant_mismatch";
    /// The artifact is not registered (any more).
    pub const ARTIFACT_NOT_FOUND: &str = "artifact_not_found";
    /// The grant's allowance is spent, or the request does not fit in what is left.
    pub const EXHAUSTED: &str = "exhausted";
    /// No requested range overlaps the file (answered 416, not 403).
    pub const RANGE_NOT_SATISFIABLE: &str = "range_not_satisfiable";
}

/// Serves a download request.
pub async fn serve(
    state: &AppState,
    ctx: &RequestContext,
    parts: &http::request::Parts,
) -> Result<Response<axum::body::Body>, ApiError> {
    let links = &*state.links;
    let peer = ctx.conn.peer.ip();
    if let Err(retry) = links.limiter().check(peer, Instant::now()) {
        return Err(ApiError::RateLimited {
            retry_after_secs: retry.as_secs().max(1),
        });
    }
    let Some(method) = Method::from_http(&parts.method) else {
        return Err(ApiError::MethodNotAllowed { allow: "GET, HEAD" });
    };
    let target = parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str())
        .unwrap_or("");
    let cert = ctx
        .conn
        .client
        .as_ref()
        .map(|c| CertFingerprint::from_bytes(c.fingerprint_sha256));
    let request = LinkRequest {
        now: UnixTime(now_unix()),
        method,
        client_addr: peer,
        client_cert: cert.as_ref(),
    };
    let link = match links.keyring().verify_target(target, &request) {
        Ok(link) => link,
        Err(rejection) => {
            let blocked = rejection.is_forgery_suspect()
                && links.limiter().record_failure(peer, Instant::now()) == Recorded::Blocked;
            let event = DownloadRejected {
                reason: rejection.code(),
                method: parts.method.to_string(),
                grant: None,
                artifact: None,
                client_blocked: blocked,
            };
            state.auditor.emit(&ctx.audit_context(None), &event).await?;
            return Err(ApiError::LinkRefused);
        }
    };
    let actx = AuditContext {
        actor: Actor::Link {
            grant: link.grant().to_string(),
        },
        ..ctx.audit_context(None)
    };
    let refuse = |reason: &'static str| refuse(state, &actx, parts, &link, reason);

    // The grant: read from the store on every request (never cached), so a revocation
    // anywhere takes effect here on the next request.
    let grant = match links.grants().get(link.grant()).await {
        Ok(Some((grant, _))) => grant,
        Ok(None) => return refuse(reasons::GRANT_NOT_FOUND).await,
        Err(GrantError::State(e)) => return Err(e.into()),
        Err(e) => return Err(ApiError::Internal(e.to_string())),
    };
    if grant.is_revoked() {
        return refuse(reasons::REVOKED).await;
    }
    if !grant.scope.covers(link.artifact()) {
        return refuse(reasons::NOT_COVERED).await;
    }
    if !agrees(&grant, &link) {
        return refuse(reasons::GRANT_MISMATCH).await;
    }
    let record = match links.artifact(link.artifact()).await {
        Ok(Some(r)) => r,
        Ok(None) => return refuse(reasons::ARTIFACT_NOT_FOUND).await,
        Err(crate::artifact::ArtifactError::State(e)) => return Err(e.into()),
        Err(e) => return Err(ApiError::Internal(e.to_string())),
    };

    let len = record.length;
    let etag = EntityTag::strong(&record.etag_opaque())
        .map_err(|_| ApiError::Internal("artifact entity tag".into()))?;
    let plan = plan_request(
        single_header(&parts.headers, header::RANGE),
        single_header(&parts.headers, header::IF_RANGE),
        &etag,
        len,
    );
    if let RangePlan::Unsatisfiable(_) = plan {
        let event = DownloadRejected {
            reason: reasons::RANGE_NOT_SATISFIABLE,
            method: parts.method.to_string(),
            grant: Some(link.grant().to_string()),
            artifact: Some(link.artifact().to_string()),
            client_blocked: false,
        };
        state.auditor.emit(&actx, &event).await?;
        return Err(ApiError::RangeNotSatisfiable { length: len });
    }
    let shape = Shape::of(&plan, &record)?;

    let budget = Budget::new(grant.id, record.id, &grant.limits, len);
    // Open (and authenticate) the object before anything is reserved or recorded.
    let reader = match method {
        Method::Get if shape.data_bytes > 0 => Some(links.reader(&record).await?),
        _ => None,
    };
    let reservation = match method {
        Method::Head => {
            if links.meter().is_exhausted(&budget).await? {
                return refuse(reasons::EXHAUSTED).await;
            }
            None
        }
        Method::Get => match links.meter().reserve(&budget, shape.data_bytes).await? {
            Reserve::Granted(r) => r,
            Reserve::Exhausted => return refuse(reasons::EXHAUSTED).await,
        },
    };

    let served = DownloadServed {
        grant: grant.id.to_string(),
        artifact: record.id.to_string(),
        method: match method {
            Method::Get => "GET",
            Method::Head => "HEAD",
        },
        status: shape.status.as_u16(),
        ranges: shape.ranges.clone(),
        bytes: if method == Method::Get {
            shape.data_bytes
        } else {
            0
        },
        length: len,
        outcome: match (method, shape.status) {
            (Method::Head, _) => "head",
            (_, StatusCode::OK) => "complete",
            _ => "partial",
        },
        tls_version: ctx.conn.tls.as_ref().map(|t| t.version.clone()),
        tls_cipher: ctx.conn.tls.as_ref().map(|t| t.cipher.clone()),
        key_id: grant.key_id.to_string(),
    };
    if let Err(e) = links.audit_download(&state.auditor, &actx, served).await {
        // Fail closed: nothing is sent without its record; give the allowance back.
        if let Some(r) = &reservation {
            let _ = links.meter().refund(r, r.charged).await;
        }
        return Err(e.into());
    }

    let mut resp = Response::new(axum::body::Body::empty());
    *resp.status_mut() = shape.status;
    headers(resp.headers_mut(), &record, &grant, &etag, &shape)?;
    let Some(reader) = reader else {
        return Ok(resp);
    };
    let settlement = Settlement {
        meter: links.meter().clone(),
        reservation,
        auditor: state.auditor.clone(),
        ctx: actx.clone(),
        grant: grant.id,
        artifact: record.id,
        planned: shape.data_bytes,
    };
    let body = MeteredBody::new(reader, shape.pieces, settlement).await?;
    *resp.body_mut() = axum::body::Body::from_stream(body);
    Ok(resp)
}

/// Audits a grant-level refusal and answers the generic 403.
async fn refuse(
    state: &AppState,
    actx: &AuditContext,
    parts: &http::request::Parts,
    link: &VerifiedLink,
    reason: &'static str,
) -> Result<Response<axum::body::Body>, ApiError> {
    let event = DownloadRejected {
        reason,
        method: parts.method.to_string(),
        grant: Some(link.grant().to_string()),
        artifact: Some(link.artifact().to_string()),
        client_blocked: false,
    };
    state.auditor.emit(actx, &event).await?;
    Err(ApiError::LinkRefused)
}

/// The header value if the header appears exactly once; a repeated `Range` or `If-Range`
/// is malformed and ignored (a full response), as `crate::range` ignores malformed values.
fn single_header(headers: &HeaderMap, name: header::HeaderName) -> Option<&[u8]> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    match values.next() {
        None => Some(first.as_bytes()),
        Some(_) => None,
    }
}

/// Whether the grant's stored claims are exactly the link's (they always are for links
/// this gateway issued; a difference means a bug or a forged record).
fn agrees(grant: &GrantRecord, link: &VerifiedLink) -> bool {
    let c = link.claims();
    grant.expires == c.expires().secs()
        && grant.not_before == c.not_before().secs()
        && grant.methods == c.methods()
        && grant.bindings == *c.bindings()
}

/// The response's shape: status, headers-to-be, body pieces, artifact bytes.
struct Shape {
    status: StatusCode,
    content_type: String,
    content_length: u64,
    content_range: Option<String>,
    ranges: Vec<String>,
    pieces: Vec<Piece>,
    data_bytes: u64,
}

impl Shape {
    fn of(plan: &RangePlan, record: &ArtifactRecord) -> Result<Self, ApiError> {
        let len = record.length;
        let ty = record.content_type.as_str().to_owned();
        Ok(match plan {
            RangePlan::Full | RangePlan::Unsatisfiable(_) => Shape {
                status: StatusCode::OK,
                content_type: ty,
                content_length: len,
                content_range: None,
                ranges: Vec::new(),
                pieces: if len == 0 {
                    Vec::new()
                } else {
                    vec![Piece::Range { offset: 0, len }]
                },
                data_bytes: len,
            },
            RangePlan::Single(r) => Shape {
                status: StatusCode::PARTIAL_CONTENT,
                content_type: ty,
                content_length: r.len(),
                content_range: Some(content_range(*r, len)),
                ranges: vec![format!("{}-{}", r.first(), r.last())],
                pieces: vec![Piece::Range {
                    offset: r.first(),
                    len: r.len(),
                }],
                data_bytes: r.len(),
            },
            RangePlan::Multi(ranges) => {
                let layout = MultipartLayout::new(Boundary::random(), &ty, ranges, len)
                    .map_err(|e| ApiError::Internal(format!("multipart layout: {e}")))?;
                let mut pieces = Vec::with_capacity(ranges.len() * 2 + 1);
                for (head, r) in layout.parts() {
                    pieces.push(Piece::Framing(Bytes::from(head)));
                    pieces.push(Piece::Range {
                        offset: r.first(),
                        len: r.len(),
                    });
                }
                pieces.push(Piece::Framing(Bytes::from(layout.trailer())));
                Shape {
                    status: StatusCode::PARTIAL_CONTENT,
                    content_type: layout.content_type(),
                    content_length: layout.body_len(),
                    content_range: None,
                    ranges: ranges
                        .iter()
                        .map(|r| format!("{}-{}", r.first(), r.last()))
                        .collect(),
                    pieces,
                    data_bytes: ranges.iter().map(|r| r.len()).sum(),
                }
            }
        })
    }
}

fn headers(
    h: &mut HeaderMap,
    record: &ArtifactRecord,
    grant: &GrantRecord,
    etag: &EntityTag,
    shape: &Shape,
) -> Result<(), ApiError> {
    let value = |s: &str| {
        HeaderValue::from_str(s).map_err(|_| ApiError::Internal("download header value".into()))
    };
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::ETAG, value(&etag.header_value())?);
    h.insert("repr-digest", value(&record.repr_digest())?);
    h.insert(header::CONTENT_TYPE, value(&shape.content_type)?);
    h.insert(
        header::CONTENT_LENGTH,
        HeaderValue::from(shape.content_length),
    );
    if let Some(cr) = &shape.content_range {
        h.insert(header::CONTENT_RANGE, value(cr)?);
    }
    let name = grant.file_name.as_ref().unwrap_or(&record.file_name);
    h.insert(
        header::CONTENT_DISPOSITION,
        value(&name.content_disposition())?,
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    Ok(())
}
