//! The download flow: a signed-link request in, a typed [`Download`] (or a typed refusal)
//! out. The handler (`http::handlers::download`) only parses the request into a
//! [`DownloadRequest`] and maps the outcome to HTTP.
//!
//! The checks run cheapest first, and nothing is read from the state store before the
//! link's signature has verified:
//!
//! 1. the client is not blocked by the forged-link limiter ([`DownloadError::RateLimited`]);
//! 2. the link parses canonically and verifies (key, constant-time MAC, window, method,
//!    client network, client certificate) — [`crate::signed_link`];
//! 3. the grant exists, is not revoked, covers the artifact and agrees with the link (read
//!    from the store on every request, never cached, so revocation is immediate);
//! 4. the artifact exists and its object opens (authenticating its length);
//! 5. the range plan (`Range`, `If-Range` against the strong `ETag`);
//! 6. the meter reserves the response's bytes (GET) or is not spent (HEAD);
//! 7. `download.served` is written to the audit trail (durably: no audit, no bytes — unless
//!    `links.danger_queued_download_audit` trades that for throughput, see
//!    `Links::audit_download`).
//!
//! Every refusal in 2–4 and 6 is the same [`DownloadError::Refused`] (one generic 403 to
//! the client); the specific reason goes to the audit trail only (`download.rejected`).
//! A refusal in 2 — a link that did not verify, which anyone can send — is audited one by
//! one up to `links.bad_signature_burst` per client address and audit security window, and
//! counted in the window's `security.summary` (kind `link_refused`) after that, so a flood
//! of forged links from many addresses cannot grow the trail without bound
//! ([`crate::audit::security`]).
//!
//! Not here: HTTP header names and statuses of errors (`http::problem`), the response's
//! shape (`super::shape`), the streamed body (`super::body`).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use super::Links;
use super::body::{MeteredBody, Settlement};
use super::events::{DownloadRejected, DownloadServed};
use super::limiter::Recorded;
use super::shape::{Shape, ShapeError};
use crate::artifact::{ArtifactError, ArtifactRecord};
use crate::at_rest::AtRestError;
use crate::audit::security::{Noted, SecurityKind};
use crate::audit::{Actor, AuditContext, AuditError};
use crate::grant::{Budget, GrantError, GrantRecord, Reserve, now_unix};
use crate::range::{EntityTag, RangePlan, plan_request};
use crate::signed_link::{CertFingerprint, LinkRequest, Method, UnixTime, VerifiedLink};
use crate::state::StateError;

/// Grant-level refusal codes, recorded in `download.rejected` (the link-level ones are
/// `LinkRejection::code`).
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
    /// The artifact is a batch member and its batch is not released (quarantined, purged).
    pub const BATCH_NOT_RELEASED: &str = "batch_not_released";
    /// The grant's allowance is spent, or the request does not fit in what is left.
    pub const EXHAUSTED: &str = "exhausted";
    /// No requested range overlaps the file (answered 416, not 403).
    pub const RANGE_NOT_SATISFIABLE: &str = "range_not_satisfiable";
}

/// A parsed download request: what the handler extracts from the HTTP request.
#[derive(Debug)]
pub struct DownloadRequest<'a> {
    /// `GET` or `HEAD` (other methods never reach the service).
    pub method: Method,
    /// The request target, path and query, verified byte for byte.
    pub target: &'a str,
    /// The `Range` header when it appears exactly once.
    pub range: Option<&'a [u8]>,
    /// The `If-Range` header when it appears exactly once.
    pub if_range: Option<&'a [u8]>,
    /// The client's address (`proxy::ClientAddr::client`: behind a PROXY-protocol balancer
    /// or a trusted proxy, the client it named — never the balancer's own address).
    pub client_addr: IpAddr,
    /// The verified client certificate's SHA-256, under mutual TLS.
    pub client_cert: Option<CertFingerprint>,
    /// The negotiated TLS version and cipher suite, for the audit entry.
    pub tls: Option<(String, String)>,
    /// The request's audit context (request id, client address). An anonymous actor (a
    /// signed link's holder) becomes the link's grant here; an authenticated one stays.
    pub audit: AuditContext,
}

/// An authorised download, ready to send.
#[derive(Debug)]
pub struct Download {
    /// 200 or 206, as planned.
    pub partial: bool,
    /// The artifact.
    pub record: Arc<ArtifactRecord>,
    /// Its strong entity tag.
    pub etag: EntityTag,
    /// The response's shape (type, length, `Content-Range`); its pieces have moved into
    /// `body`.
    pub shape: Shape,
    /// The response file name for `Content-Disposition`.
    pub disposition: String,
    /// The body: `None` for HEAD and empty bodies.
    pub body: Option<MeteredBody>,
}

/// Why a download was not served.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// Too many forged or malformed links from this client address.
    #[error("rate limited (retry after {retry_after_secs} s)")]
    RateLimited {
        /// Seconds until the client may try again.
        retry_after_secs: u64,
    },
    /// The link, its grant or its artifact refused the request; the reason is audited.
    #[error("link refused")]
    Refused,
    /// No requested range overlaps the artifact (audited as a rejection).
    #[error("range not satisfiable")]
    RangeNotSatisfiable {
        /// The artifact's length.
        length: u64,
    },
    /// The state store failed: fail closed.
    #[error(transparent)]
    State(#[from] StateError),
    /// The grant store failed (its state store, or an unusable record).
    #[error(transparent)]
    Grant(#[from] GrantError),
    /// The batch records could not be read.
    #[error(transparent)]
    Batch(crate::batch::store::StoreError),
    /// The artifact registry failed (its state store, or an unusable record).
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
    /// The artifact's object could not be opened or read.
    #[error(transparent)]
    AtRest(#[from] AtRestError),
    /// The audit trail could not record the download: nothing is sent.
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// The response could not be laid out (a record with values no header can carry).
    #[error(transparent)]
    Shape(#[from] ShapeError),
}

// === impl Links: downloads ===

impl Links {
    /// Runs the download flow for one request (see the module docs for the order).
    pub async fn download(&self, req: DownloadRequest<'_>) -> Result<Download, DownloadError> {
        if let Err(retry) = self.limiter.check(req.client_addr, Instant::now()) {
            return Err(DownloadError::RateLimited {
                retry_after_secs: retry.as_secs().max(1),
            });
        }
        let request = LinkRequest {
            now: UnixTime(now_unix()),
            method: req.method,
            client_addr: req.client_addr,
            client_cert: req.client_cert.as_ref(),
        };
        let link = match self.keyring.verify_target(req.target, &request) {
            Ok(link) => link,
            Err(rejection) => {
                let blocked = rejection.is_forgery_suspect()
                    && self.limiter.record_failure(req.client_addr, Instant::now())
                        == Recorded::Blocked;
                // No secret is needed to send these, so they are audited one by one only
                // up to the limiter's burst per address and window (all a forger gets
                // before 429), within the window's budget; the rest go to the window's
                // `security.summary`.
                // The refusal that blocks the client is recorded whenever the budget allows.
                let allowance = if blocked {
                    u32::MAX
                } else {
                    self.settings.bad_signature_burst
                };
                let noted =
                    self.security
                        .note_up_to(SecurityKind::LinkRefused, req.client_addr, allowance);
                if noted == Noted::Counted {
                    return Err(DownloadError::Refused);
                }
                let event = DownloadRejected {
                    reason: rejection.code(),
                    method: req.method.as_str().to_owned(),
                    grant: None,
                    artifact: None,
                    client_blocked: blocked,
                };
                self.auditor.emit(&req.audit, &event).await?;
                return Err(DownloadError::Refused);
            }
        };
        // A link's holder is known by its grant; a caller the gateway authenticated before
        // it signed the link for it (the FHIR Bulk file endpoint) by its own name. Either
        // way the entry's details name the grant.
        let actor = match req.audit.actor {
            Actor::Anonymous => Actor::Link {
                grant: link.grant().to_string(),
            },
            ref known => known.clone(),
        };
        let actx = AuditContext { actor, ..req.audit };
        let refusal = Refusal {
            links: self,
            actx: &actx,
            method: req.method,
            link: &link,
        };

        let Some((grant, _)) = self.grants.get(link.grant()).await? else {
            return refusal.refuse(reasons::GRANT_NOT_FOUND).await;
        };
        if grant.is_revoked() {
            return refusal.refuse(reasons::REVOKED).await;
        }
        if !grant.scope.covers(link.artifact()) {
            return refusal.refuse(reasons::NOT_COVERED).await;
        }
        if !agrees(&grant, &link) {
            return refusal.refuse(reasons::GRANT_MISMATCH).await;
        }
        let Some(record) = self.artifact(link.artifact()).await? else {
            return refusal.refuse(reasons::ARTIFACT_NOT_FOUND).await;
        };
        // A batch member's bytes leave only while its batch is released: read from the
        // shared store on every request, so a purge stops every link at once.
        if let Some(batch) = record.member_of {
            match self.batch_gate.batch(batch).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return refusal.refuse(reasons::BATCH_NOT_RELEASED).await,
                Err(e) => return Err(DownloadError::Batch(e)),
            }
        }

        let len = record.length;
        let etag = EntityTag::strong(&record.etag_opaque()).map_err(|_| ShapeError::EntityTag)?;
        let plan = plan_request(req.range, req.if_range, &etag, len);
        if let RangePlan::Unsatisfiable(_) = plan {
            refusal.record(reasons::RANGE_NOT_SATISFIABLE).await?;
            return Err(DownloadError::RangeNotSatisfiable { length: len });
        }
        let mut shape = Shape::of(&plan, &record)?;

        let budget = Budget::new(grant.id, record.id, &grant.limits, len);
        // Open (and authenticate) the object before anything is reserved or recorded.
        let reader = match req.method {
            Method::Get if shape.data_bytes > 0 => Some(self.reader(&record).await?),
            _ => None,
        };
        let reservation = match req.method {
            Method::Head => {
                if self.meter.is_exhausted(&budget).await? {
                    return refusal.refuse(reasons::EXHAUSTED).await;
                }
                None
            }
            Method::Get => match self.meter.reserve(&budget, shape.data_bytes).await? {
                Reserve::Granted(r) => r,
                Reserve::Exhausted => return refusal.refuse(reasons::EXHAUSTED).await,
            },
        };

        let served = DownloadServed {
            grant: grant.id.to_string(),
            artifact: record.id.to_string(),
            method: req.method.as_str(),
            status: shape.status(),
            ranges: shape.ranges.clone(),
            bytes: if req.method == Method::Get {
                shape.data_bytes
            } else {
                0
            },
            length: len,
            outcome: match (req.method, shape.is_partial()) {
                (Method::Head, _) => "head",
                (_, false) => "complete",
                (_, true) => "partial",
            },
            tls_version: req.tls.as_ref().map(|t| t.0.clone()),
            tls_cipher: req.tls.as_ref().map(|t| t.1.clone()),
            key_id: grant.key_id.to_string(),
        };
        if let Err(e) = self.audit_download(&actx, served).await {
            // Fail closed: nothing is sent without its record; give the allowance back.
            if let Some(r) = &reservation {
                let _ = self.meter.refund(r, r.charged).await;
            }
            return Err(e.into());
        }

        let name = grant.file_name.as_ref().unwrap_or(&record.file_name);
        let disposition = name.content_disposition();
        let body = match reader {
            Some(reader) => {
                let settlement = Settlement {
                    meter: self.meter.clone(),
                    reservation,
                    auditor: self.auditor.clone(),
                    ctx: actx.clone(),
                    grant: grant.id,
                    artifact: record.id,
                    planned: shape.data_bytes,
                };
                // The pieces go to the body; the handler needs only the headers' values.
                let pieces = std::mem::take(&mut shape.pieces);
                Some(MeteredBody::new(reader, pieces, settlement).await?)
            }
            None => None,
        };
        Ok(Download {
            partial: shape.is_partial(),
            record,
            etag,
            shape,
            disposition,
            body,
        })
    }
}

/// Audits a grant-level refusal of one verified link.
struct Refusal<'a> {
    links: &'a Links,
    actx: &'a AuditContext,
    method: Method,
    link: &'a VerifiedLink,
}

impl Refusal<'_> {
    /// Records `reason` in `download.rejected`.
    async fn record(&self, reason: &'static str) -> Result<(), AuditError> {
        let event = DownloadRejected {
            reason,
            method: self.method.as_str().to_owned(),
            grant: Some(self.link.grant().to_string()),
            artifact: Some(self.link.artifact().to_string()),
            client_blocked: false,
        };
        self.links.auditor.emit(self.actx, &event).await.map(|_| ())
    }

    /// Records `reason` and answers the generic refusal.
    async fn refuse<T>(&self, reason: &'static str) -> Result<T, DownloadError> {
        self.record(reason).await?;
        Err(DownloadError::Refused)
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
