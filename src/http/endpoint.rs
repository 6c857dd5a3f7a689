//! Routing by parsing: a request's method and path become an [`Endpoint`] value before any
//! handler runs. Handlers match on it; the router's tests are a table of
//! `METHOD path => Endpoint`. Path segments that carry ids are parsed into id types here,
//! so a handler never sees a raw path string.

use http::Method;

use super::page::{self, Asset};
use super::problem::ApiError;
use crate::batch::{BatchId, DocumentKind};
use crate::bulk::FILES_PATH;
use crate::bulk::record::JobId;
use crate::bulk::request::{KickoffError, Level, level_of};
use crate::ids::OpaqueId;
use crate::signed_link::{ArtifactId, GrantId};
use crate::tus::concat::BasePath;
use crate::tus::record::UploadId;

/// What routing needs from the configuration.
#[derive(Debug, Clone)]
pub struct Routes {
    /// The tus creation URL's path (default `/files/`).
    pub uploads: BasePath,
}

/// Every `(method, path template)` the router accepts, with the tus base path at its
/// default `/files/`; placeholders are `{upload_id}`, `{artifact_id}`, `{grant_id}`,
/// `{batch_id}`, `{trace_id}`, `{job_id}`, `{invitation_id}` (opaque ids), `{group_id}` (a FHIR
/// id), `{asset}` (the name of one of the upload page's files) and `{link}` (the rest of a
/// signed link's path). Not used by the router itself: it is the list `proto/openapi.yaml` is checked against
/// (`tests/openapi_contract.rs`), and this module's tests check it against
/// [`Endpoint::parse`] — every entry routes, and every path's `Allow` names exactly its
/// entries — so it cannot drift from the parser.
#[doc(hidden)]
pub const ROUTE_TEMPLATES: &[(&str, &str)] = &[
    ("GET", "/healthz"),
    ("HEAD", "/healthz"),
    ("GET", "/readyz"),
    ("HEAD", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/v1/whoami"),
    ("GET", "/v1/audit/verify"),
    ("GET", "/v1/audit/events"),
    ("GET", "/v1/audit/trace/{trace_id}"),
    ("OPTIONS", "/files/"),
    ("POST", "/files/"),
    ("HEAD", "/files/{upload_id}"),
    ("PATCH", "/files/{upload_id}"),
    ("DELETE", "/files/{upload_id}"),
    ("OPTIONS", "/files/{upload_id}"),
    ("GET", "/files/{upload_id}/ledger"),
    ("GET", "/d/{link}"),
    ("HEAD", "/d/{link}"),
    ("POST", "/v1/artifacts"),
    ("GET", "/v1/artifacts/{artifact_id}"),
    ("GET", "/v1/links"),
    ("POST", "/v1/links"),
    ("POST", "/v1/links/revoke"),
    ("GET", "/v1/links/{grant_id}"),
    ("DELETE", "/v1/links/{grant_id}"),
    ("GET", "/v1/batches"),
    ("POST", "/v1/batches"),
    ("GET", "/v1/batches/{batch_id}"),
    ("GET", "/v1/batches/{batch_id}/manifest"),
    ("GET", "/v1/batches/{batch_id}/provenance"),
    ("GET", "/v1/batches/{batch_id}/report"),
    ("POST", "/v1/batches/{batch_id}/seal"),
    ("POST", "/v1/batches/{batch_id}/release"),
    ("POST", "/v1/batches/{batch_id}/purge"),
    ("GET", "/.well-known/smart-configuration"),
    ("POST", "/auth/token"),
    ("POST", "/v1/exports"),
    ("POST", "/v1/exports/batches"),
    ("GET", "/fhir/$export"),
    ("GET", "/fhir/Patient/$export"),
    ("GET", "/fhir/Group/{group_id}/$export"),
    ("GET", "/fhir/bulk/{job_id}"),
    ("DELETE", "/fhir/bulk/{job_id}"),
    ("GET", "/fhir/bulk/{job_id}/files/{artifact_id}"),
    ("HEAD", "/fhir/bulk/{job_id}/files/{artifact_id}"),
    ("GET", "/invite"),
    ("HEAD", "/invite"),
    ("GET", "/invite/assets/{asset}"),
    ("HEAD", "/invite/assets/{asset}"),
    ("GET", "/v1/invitations"),
    ("POST", "/v1/invitations"),
    ("GET", "/v1/invitations/{invitation_id}"),
    ("DELETE", "/v1/invitations/{invitation_id}"),
    ("GET", "/v1/invitation"),
    ("POST", "/v1/invitation/seal"),
];

/// The FHIR base path: errors under it are `OperationOutcome`s (`proto/bulk-v1.md`).
pub const FHIR_BASE: &str = "/fhir/";

/// Every endpoint the gateway serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `GET|HEAD /healthz`: the process is alive.
    Healthz,
    /// `GET|HEAD /readyz`: the state and blob stores answer.
    Readyz,
    /// `GET /metrics`: Prometheus exposition.
    Metrics,
    /// `GET /v1/whoami`: the authenticated principal (for checking a token or client cert).
    WhoAmI,
    /// `GET /v1/audit/verify`: verify the audit chain (auditor).
    AuditVerify,
    /// `GET /v1/audit/events?…`: a page of audit entries matching a filter (auditor).
    AuditEvents,
    /// `GET /v1/audit/trace/{id}`: the story of an upload, batch, artifact or grant
    /// (auditor).
    AuditTrace(OpaqueId),
    /// `OPTIONS {uploads}` or `OPTIONS {uploads}{id}`: tus capabilities, CORS preflight.
    TusOptions,
    /// `POST {uploads}`: create an upload.
    TusCreate,
    /// `HEAD {uploads}{id}`: the upload's offset.
    TusHead(UploadId),
    /// `PATCH {uploads}{id}`: append a chunk.
    TusPatch(UploadId),
    /// `DELETE {uploads}{id}`: terminate the upload.
    TusDelete(UploadId),
    /// `GET {uploads}{id}/ledger`: the chunk ledger.
    TusLedger(UploadId),
    /// `GET|HEAD /d/{artifact}?…`: a download through a signed link. Everything after
    /// `/d/` is the link's business (it is verified byte for byte), so any path under
    /// `/d/` routes here and a malformed one is refused like any other bad link.
    Download,
    /// `POST /v1/artifacts`: register an artifact (publisher).
    ArtifactCreate,
    /// `GET /v1/artifacts/{artifact}`: an artifact's record (publisher).
    ArtifactGet(ArtifactId),
    /// `POST /v1/links`: issue a signed link (publisher).
    LinksIssue,
    /// `GET /v1/links?artifact=…|partner=…|batch=…`: list grants (publisher).
    LinksList,
    /// `POST /v1/links/revoke`: revoke grants in bulk (publisher).
    LinksRevokeBulk,
    /// `GET /v1/links/{grant}`: one grant (publisher).
    LinkGet(GrantId),
    /// `DELETE /v1/links/{grant}`: revoke one grant (publisher).
    LinkRevoke(GrantId),
    /// `POST /v1/batches`: open a batch (uploader).
    BatchOpen,
    /// `GET /v1/batches`: list batches (own; auditor: all).
    BatchList,
    /// `GET /v1/batches/{id}`: the batch document.
    BatchGet(BatchId),
    /// `GET /v1/batches/{id}/manifest|provenance`: a stored document, byte for byte.
    BatchDocument(BatchId, DocumentKind),
    /// `GET /v1/batches/{id}/report`: the verification report.
    BatchReport(BatchId),
    /// `POST /v1/batches/{id}/seal`: seal and verify (uploader).
    BatchSeal(BatchId),
    /// `POST /v1/batches/{id}/release`: release a quarantined batch (auditor).
    BatchRelease(BatchId),
    /// `POST /v1/batches/{id}/purge`: shred a batch's members (auditor).
    BatchPurge(BatchId),
    /// `GET /.well-known/smart-configuration`: SMART discovery (public).
    SmartConfiguration,
    /// `POST /auth/token`: the SMART Backend Services token endpoint (client assertion).
    AuthToken,
    /// `POST /v1/exports`: publish a batch for a SMART client and export level (publisher).
    ExportPublish,
    /// `POST /v1/exports/batches`: build an outbound batch from artifacts or a released
    /// inbound batch (publisher).
    ExportBuild,
    /// `GET /fhir/$export`, `/fhir/Patient/$export`, `/fhir/Group/{id}/$export`: a Bulk
    /// Data kick-off (SMART access token). A malformed group id still routes here, so that
    /// its refusal is the flow's (audited) answer.
    BulkKickoff(Result<Level, KickoffError>),
    /// `GET /fhir/bulk/{job}`: a Bulk Data status poll.
    BulkStatus(JobId),
    /// `DELETE /fhir/bulk/{job}`: cancel a Bulk Data job.
    BulkCancel(JobId),
    /// `GET|HEAD /fhir/bulk/{job}/files/{artifact}`: a file of a job's manifest, with the
    /// client's access token (`bulk.requires_access_token`).
    BulkFile(JobId, ArtifactId),
    /// `GET|HEAD /invite`: the clinic upload page (public; the invitation token is in the
    /// URL fragment, which never reaches the server).
    InvitePage,
    /// `GET|HEAD /invite/assets/{name}`: one of the page's embedded files (public); an
    /// unknown name does not route.
    InviteAsset(&'static Asset),
    /// `POST /v1/invitations`: issue an upload invitation (publisher).
    InvitationIssue,
    /// `GET /v1/invitations`: list invitations (publisher, auditor).
    InvitationList,
    /// `GET /v1/invitations/{id}`: one invitation and its usage (publisher, auditor).
    InvitationGet(OpaqueId),
    /// `DELETE /v1/invitations/{id}`: revoke an invitation (publisher).
    InvitationRevoke(OpaqueId),
    /// `GET /v1/invitation`: the presented invitation, as its holder sees it.
    InvitationSelf,
    /// `POST /v1/invitation/seal`: seal the presented invitation's batch.
    InvitationSeal,
}

impl Endpoint {
    /// A short static name, used as the metrics label.
    pub fn name(&self) -> &'static str {
        match self {
            Endpoint::Healthz => "healthz",
            Endpoint::Readyz => "readyz",
            Endpoint::Metrics => "metrics",
            Endpoint::WhoAmI => "whoami",
            Endpoint::AuditVerify => "audit_verify",
            Endpoint::AuditEvents => "audit_events",
            Endpoint::AuditTrace(_) => "audit_trace",
            Endpoint::TusOptions => "tus_options",
            Endpoint::TusCreate => "tus_create",
            Endpoint::TusHead(_) => "tus_head",
            Endpoint::TusPatch(_) => "tus_patch",
            Endpoint::TusDelete(_) => "tus_delete",
            Endpoint::TusLedger(_) => "tus_ledger",
            Endpoint::Download => "download",
            Endpoint::ArtifactCreate => "artifact_create",
            Endpoint::ArtifactGet(_) => "artifact_get",
            Endpoint::LinksIssue => "links_issue",
            Endpoint::LinksList => "links_list",
            Endpoint::LinksRevokeBulk => "links_revoke_bulk",
            Endpoint::LinkGet(_) => "link_get",
            Endpoint::LinkRevoke(_) => "link_revoke",
            Endpoint::BatchOpen => "batch_open",
            Endpoint::BatchList => "batch_list",
            Endpoint::BatchGet(_) => "batch_get",
            Endpoint::BatchDocument(_, DocumentKind::Manifest) => "batch_manifest",
            Endpoint::BatchDocument(_, DocumentKind::Provenance) => "batch_provenance",
            Endpoint::BatchReport(_) => "batch_report",
            Endpoint::BatchSeal(_) => "batch_seal",
            Endpoint::BatchRelease(_) => "batch_release",
            Endpoint::BatchPurge(_) => "batch_purge",
            Endpoint::SmartConfiguration => "smart_configuration",
            Endpoint::AuthToken => "auth_token",
            Endpoint::ExportPublish => "export_publish",
            Endpoint::ExportBuild => "export_build",
            Endpoint::BulkKickoff(_) => "bulk_kickoff",
            Endpoint::BulkStatus(_) => "bulk_status",
            Endpoint::BulkCancel(_) => "bulk_cancel",
            Endpoint::BulkFile(..) => "bulk_file",
            Endpoint::InvitePage => "invite_page",
            Endpoint::InviteAsset(_) => "invite_asset",
            Endpoint::InvitationIssue => "invitation_issue",
            Endpoint::InvitationList => "invitation_list",
            Endpoint::InvitationGet(_) => "invitation_get",
            Endpoint::InvitationRevoke(_) => "invitation_revoke",
            Endpoint::InvitationSelf => "invitation_self",
            Endpoint::InvitationSeal => "invitation_seal",
        }
    }

    /// Whether the endpoint belongs to the tus upload protocol (tus headers, CORS).
    pub fn is_tus(&self) -> bool {
        matches!(
            self,
            Endpoint::TusOptions
                | Endpoint::TusCreate
                | Endpoint::TusHead(_)
                | Endpoint::TusPatch(_)
                | Endpoint::TusDelete(_)
                | Endpoint::TusLedger(_)
        )
    }

    /// The largest request body the endpoint accepts whole; `None` for endpoints that
    /// stream their body with limits of their own (uploads).
    pub fn body_limit(&self, configured: u64) -> Option<u64> {
        match self {
            Endpoint::Healthz
            | Endpoint::Readyz
            | Endpoint::Metrics
            | Endpoint::WhoAmI
            | Endpoint::AuditVerify
            | Endpoint::AuditEvents
            | Endpoint::AuditTrace(_)
            | Endpoint::TusOptions
            | Endpoint::TusHead(_)
            | Endpoint::TusDelete(_)
            | Endpoint::TusLedger(_)
            | Endpoint::Download
            | Endpoint::ArtifactCreate
            | Endpoint::ArtifactGet(_)
            | Endpoint::LinksIssue
            | Endpoint::LinksList
            | Endpoint::LinksRevokeBulk
            | Endpoint::LinkGet(_)
            | Endpoint::LinkRevoke(_)
            | Endpoint::BatchList
            | Endpoint::BatchGet(_)
            | Endpoint::BatchDocument(..)
            | Endpoint::BatchReport(_)
            | Endpoint::BatchSeal(_)
            | Endpoint::BatchRelease(_)
            | Endpoint::BatchPurge(_)
            | Endpoint::SmartConfiguration
            | Endpoint::ExportPublish
            | Endpoint::ExportBuild
            | Endpoint::BulkKickoff(_)
            | Endpoint::BulkStatus(_)
            | Endpoint::BulkCancel(_)
            | Endpoint::BulkFile(..)
            | Endpoint::InvitePage
            | Endpoint::InviteAsset(_)
            | Endpoint::InvitationList
            | Endpoint::InvitationGet(_)
            | Endpoint::InvitationRevoke(_)
            | Endpoint::InvitationSelf
            | Endpoint::InvitationSeal => Some(configured),
            // A token request is a small form: bounded well below the API limit.
            Endpoint::AuthToken => Some(configured.min(crate::smart::MAX_FORM_BYTES)),
            // Upload bodies stream into the at-rest writer under the tus limits; a batch's
            // documents have their own limits, which the handler applies.
            Endpoint::TusCreate
            | Endpoint::TusPatch(_)
            | Endpoint::BatchOpen
            | Endpoint::InvitationIssue => None,
        }
    }

    /// Whether responses are API responses (`Cache-Control: no-store` unless the handler
    /// set its own). The upload page's files are not: they say how they may be cached.
    pub fn is_api(&self) -> bool {
        !matches!(self, Endpoint::InvitePage | Endpoint::InviteAsset(_))
    }

    /// Parses a method and path.
    pub fn parse(method: &Method, path: &str, routes: &Routes) -> Result<Endpoint, ApiError> {
        if let Some(rest) = path.strip_prefix(routes.uploads.as_str()) {
            return Self::parse_tus(method, rest);
        }
        let get_head = |e| match *method {
            Method::GET | Method::HEAD => Ok(e),
            _ => Err(ApiError::MethodNotAllowed { allow: "GET, HEAD" }),
        };
        let get = |e| match *method {
            Method::GET => Ok(e),
            _ => Err(ApiError::MethodNotAllowed { allow: "GET" }),
        };
        match path {
            "/healthz" => get_head(Endpoint::Healthz),
            "/readyz" => get_head(Endpoint::Readyz),
            "/metrics" => get(Endpoint::Metrics),
            "/v1/whoami" => get(Endpoint::WhoAmI),
            "/v1/audit/verify" => get(Endpoint::AuditVerify),
            "/.well-known/smart-configuration" => get(Endpoint::SmartConfiguration),
            "/auth/token" => match *method {
                Method::POST => Ok(Endpoint::AuthToken),
                _ => Err(ApiError::MethodNotAllowed { allow: "POST" }),
            },
            "/v1/audit/events" => get(Endpoint::AuditEvents),
            "/v1/artifacts" => match *method {
                Method::POST => Ok(Endpoint::ArtifactCreate),
                _ => Err(ApiError::MethodNotAllowed { allow: "POST" }),
            },
            "/v1/links" => match *method {
                Method::GET => Ok(Endpoint::LinksList),
                Method::POST => Ok(Endpoint::LinksIssue),
                _ => Err(ApiError::MethodNotAllowed { allow: "GET, POST" }),
            },
            "/v1/links/revoke" => match *method {
                Method::POST => Ok(Endpoint::LinksRevokeBulk),
                _ => Err(ApiError::MethodNotAllowed { allow: "POST" }),
            },
            "/v1/batches" => match *method {
                Method::GET => Ok(Endpoint::BatchList),
                Method::POST => Ok(Endpoint::BatchOpen),
                _ => Err(ApiError::MethodNotAllowed { allow: "GET, POST" }),
            },
            "/v1/exports" => match *method {
                Method::POST => Ok(Endpoint::ExportPublish),
                _ => Err(ApiError::MethodNotAllowed { allow: "POST" }),
            },
            "/v1/exports/batches" => match *method {
                Method::POST => Ok(Endpoint::ExportBuild),
                _ => Err(ApiError::MethodNotAllowed { allow: "POST" }),
            },
            "/invite" => get_head(Endpoint::InvitePage),
            "/v1/invitations" => match *method {
                Method::GET => Ok(Endpoint::InvitationList),
                Method::POST => Ok(Endpoint::InvitationIssue),
                _ => Err(ApiError::MethodNotAllowed { allow: "GET, POST" }),
            },
            "/v1/invitation" => get(Endpoint::InvitationSelf),
            "/v1/invitation/seal" => match *method {
                Method::POST => Ok(Endpoint::InvitationSeal),
                _ => Err(ApiError::MethodNotAllowed { allow: "POST" }),
            },
            _ => {
                if let Some(name) = path.strip_prefix("/invite/assets/") {
                    let asset = page::asset(name).ok_or(ApiError::NotFound)?;
                    return get_head(Endpoint::InviteAsset(asset));
                }
                if let Some(rest) = path.strip_prefix("/v1/batches/") {
                    Self::parse_batch(method, rest)
                } else if let Some(rest) = path.strip_prefix(FHIR_BASE) {
                    Self::parse_fhir(method, rest)
                } else {
                    Self::parse_links(method, path)
                }
            }
        }
    }

    /// Downloads and the id-carrying artifact and grant paths.
    fn parse_links(method: &Method, path: &str) -> Result<Endpoint, ApiError> {
        if path.starts_with(crate::signed_link::LINK_PATH_PREFIX) {
            return match *method {
                Method::GET | Method::HEAD => Ok(Endpoint::Download),
                _ => Err(ApiError::MethodNotAllowed { allow: "GET, HEAD" }),
            };
        }
        if let Some(id) = path.strip_prefix("/v1/audit/trace/") {
            let id: OpaqueId = id.parse().map_err(|_| ApiError::NotFound)?;
            return match *method {
                Method::GET => Ok(Endpoint::AuditTrace(id)),
                _ => Err(ApiError::MethodNotAllowed { allow: "GET" }),
            };
        }
        if let Some(id) = path.strip_prefix("/v1/artifacts/") {
            let id: ArtifactId = id.parse().map_err(|_| ApiError::NotFound)?;
            return match *method {
                Method::GET => Ok(Endpoint::ArtifactGet(id)),
                _ => Err(ApiError::MethodNotAllowed { allow: "GET" }),
            };
        }
        if let Some(id) = path.strip_prefix("/v1/invitations/") {
            let id: OpaqueId = id.parse().map_err(|_| ApiError::NotFound)?;
            return match *method {
                Method::GET => Ok(Endpoint::InvitationGet(id)),
                Method::DELETE => Ok(Endpoint::InvitationRevoke(id)),
                _ => Err(ApiError::MethodNotAllowed {
                    allow: "GET, DELETE",
                }),
            };
        }
        if let Some(id) = path.strip_prefix("/v1/links/") {
            let id: GrantId = id.parse().map_err(|_| ApiError::NotFound)?;
            return match *method {
                Method::GET => Ok(Endpoint::LinkGet(id)),
                Method::DELETE => Ok(Endpoint::LinkRevoke(id)),
                _ => Err(ApiError::MethodNotAllowed {
                    allow: "GET, DELETE",
                }),
            };
        }
        Err(ApiError::NotFound)
    }

    /// The FHIR Bulk Data paths under `/fhir/` (`rest` is what follows it).
    fn parse_fhir(method: &Method, rest: &str) -> Result<Endpoint, ApiError> {
        if let Some(id) = rest.strip_prefix("bulk/") {
            if let Some((id, artifact)) = id.split_once(FILES_PATH) {
                let id: JobId = id.parse().map_err(|_| ApiError::NotFound)?;
                let artifact: ArtifactId = artifact.parse().map_err(|_| ApiError::NotFound)?;
                return match *method {
                    Method::GET | Method::HEAD => Ok(Endpoint::BulkFile(id, artifact)),
                    _ => Err(ApiError::MethodNotAllowed { allow: "GET, HEAD" }),
                };
            }
            let id: JobId = id.parse().map_err(|_| ApiError::NotFound)?;
            return match *method {
                Method::GET => Ok(Endpoint::BulkStatus(id)),
                Method::DELETE => Ok(Endpoint::BulkCancel(id)),
                _ => Err(ApiError::MethodNotAllowed {
                    allow: "GET, DELETE",
                }),
            };
        }
        let level = level_of(rest).ok_or(ApiError::NotFound)?;
        match *method {
            Method::GET => Ok(Endpoint::BulkKickoff(level)),
            _ => Err(ApiError::MethodNotAllowed { allow: "GET" }),
        }
    }

    /// `/v1/batches/{id}` and its sub-resources.
    fn parse_batch(method: &Method, rest: &str) -> Result<Endpoint, ApiError> {
        let (id, sub) = rest.split_once('/').unwrap_or((rest, ""));
        let id: BatchId = id.parse().map_err(|_| ApiError::NotFound)?;
        let (endpoint, allow) = match sub {
            "" => (Endpoint::BatchGet(id), Method::GET),
            "manifest" => (
                Endpoint::BatchDocument(id, DocumentKind::Manifest),
                Method::GET,
            ),
            "provenance" => (
                Endpoint::BatchDocument(id, DocumentKind::Provenance),
                Method::GET,
            ),
            "report" => (Endpoint::BatchReport(id), Method::GET),
            "seal" => (Endpoint::BatchSeal(id), Method::POST),
            "release" => (Endpoint::BatchRelease(id), Method::POST),
            "purge" => (Endpoint::BatchPurge(id), Method::POST),
            _ => return Err(ApiError::NotFound),
        };
        if *method == allow {
            Ok(endpoint)
        } else if allow == Method::GET {
            Err(ApiError::MethodNotAllowed { allow: "GET" })
        } else {
            Err(ApiError::MethodNotAllowed { allow: "POST" })
        }
    }

    fn parse_tus(method: &Method, rest: &str) -> Result<Endpoint, ApiError> {
        if rest.is_empty() {
            return match *method {
                Method::OPTIONS => Ok(Endpoint::TusOptions),
                Method::POST => Ok(Endpoint::TusCreate),
                _ => Err(ApiError::MethodNotAllowed {
                    allow: "OPTIONS, POST",
                }),
            };
        }
        let (id, ledger) = match rest.strip_suffix("/ledger") {
            Some(id) => (id, true),
            None => (rest, false),
        };
        // Only a well-formed id routes; anything else is simply not there.
        let id: UploadId = id.parse().map_err(|_| ApiError::NotFound)?;
        match (ledger, method.clone()) {
            (true, Method::GET) => Ok(Endpoint::TusLedger(id)),
            (true, _) => Err(ApiError::MethodNotAllowed { allow: "GET" }),
            (false, Method::HEAD) => Ok(Endpoint::TusHead(id)),
            (false, Method::PATCH) => Ok(Endpoint::TusPatch(id)),
            (false, Method::DELETE) => Ok(Endpoint::TusDelete(id)),
            (false, Method::OPTIONS) => Ok(Endpoint::TusOptions),
            (false, _) => Err(ApiError::MethodNotAllowed {
                allow: "HEAD, PATCH, DELETE, OPTIONS",
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes() -> Routes {
        Routes {
            uploads: BasePath::new("/files/").unwrap(),
        }
    }

    #[test]
    fn tus_routes() {
        let id = "0123456789abcdefghjkmnpqrs";
        let uid: UploadId = id.parse().unwrap();
        let ok = [
            ("OPTIONS", "/files/".to_owned(), Endpoint::TusOptions),
            ("POST", "/files/".to_owned(), Endpoint::TusCreate),
            ("HEAD", format!("/files/{id}"), Endpoint::TusHead(uid)),
            ("PATCH", format!("/files/{id}"), Endpoint::TusPatch(uid)),
            ("DELETE", format!("/files/{id}"), Endpoint::TusDelete(uid)),
            ("OPTIONS", format!("/files/{id}"), Endpoint::TusOptions),
            (
                "GET",
                format!("/files/{id}/ledger"),
                Endpoint::TusLedger(uid),
            ),
        ];
        for (m, p, e) in ok {
            assert_eq!(
                Endpoint::parse(&m.parse().unwrap(), &p, &routes()).unwrap(),
                e,
                "{m} {p}"
            );
        }
        for p in [
            "/files",
            "/files/../etc/passwd",
            "/files/0123456789abcdefghjkmnpqr",
            "/files/0123456789ABCDEFGHJKMNPQRS",
            "/files/0123456789abcdefghjkmnpqrs/",
            "/files/0123456789abcdefghjkmnpqrs/ledger/x",
        ] {
            assert!(
                matches!(
                    Endpoint::parse(&Method::PATCH, p, &routes()),
                    Err(ApiError::NotFound)
                ),
                "{p}"
            );
        }
        assert!(matches!(
            Endpoint::parse(&Method::GET, &format!("/files/{id}"), &routes()),
            Err(ApiError::MethodNotAllowed { .. })
        ));
        assert!(matches!(
            Endpoint::parse(&Method::PUT, "/files/", &routes()),
            Err(ApiError::MethodNotAllowed {
                allow: "OPTIONS, POST"
            })
        ));
    }

    #[test]
    fn link_routes() {
        let a = "67rq0xe32xxh21dav1b2qx1ch3";
        let aid: ArtifactId = a.parse().unwrap();
        let gid: GrantId = a.parse().unwrap();
        let ok = [
            ("GET", format!("/d/{a}"), Endpoint::Download),
            ("HEAD", format!("/d/{a}"), Endpoint::Download),
            ("GET", "/d/anything-at-all".to_owned(), Endpoint::Download),
            ("POST", "/v1/artifacts".to_owned(), Endpoint::ArtifactCreate),
            (
                "GET",
                format!("/v1/artifacts/{a}"),
                Endpoint::ArtifactGet(aid),
            ),
            ("POST", "/v1/links".to_owned(), Endpoint::LinksIssue),
            ("GET", "/v1/links".to_owned(), Endpoint::LinksList),
            (
                "POST",
                "/v1/links/revoke".to_owned(),
                Endpoint::LinksRevokeBulk,
            ),
            ("GET", format!("/v1/links/{a}"), Endpoint::LinkGet(gid)),
            (
                "DELETE",
                format!("/v1/links/{a}"),
                Endpoint::LinkRevoke(gid),
            ),
        ];
        for (m, p, e) in ok {
            assert_eq!(
                Endpoint::parse(&m.parse().unwrap(), &p, &routes()).unwrap(),
                e,
                "{m} {p}"
            );
        }
        for (m, p) in [
            ("GET", "/v1/links/nope"),
            ("GET", "/v1/artifacts/"),
            ("GET", "/v1/links/67rq0xe32xxh21dav1b2qx1ch3/x"),
            ("GET", "/d"),
            ("GET", "/D/67rq0xe32xxh21dav1b2qx1ch3"),
        ] {
            assert!(
                matches!(
                    Endpoint::parse(&m.parse().unwrap(), p, &routes()),
                    Err(ApiError::NotFound)
                ),
                "{m} {p}"
            );
        }
        for (m, p, allow) in [
            ("POST", "/d/x", "GET, HEAD"),
            ("GET", "/v1/artifacts", "POST"),
            ("PUT", "/v1/links", "GET, POST"),
            ("GET", "/v1/links/revoke", "POST"),
            (
                "POST",
                "/v1/links/67rq0xe32xxh21dav1b2qx1ch3",
                "GET, DELETE",
            ),
        ] {
            match Endpoint::parse(&m.parse().unwrap(), p, &routes()) {
                Err(ApiError::MethodNotAllowed { allow: a }) => assert_eq!(a, allow, "{m} {p}"),
                other => panic!("{m} {p}: {other:?}"),
            }
        }
    }

    #[test]
    fn routing_table() {
        let ok = [
            ("GET", "/healthz", Endpoint::Healthz),
            ("HEAD", "/healthz", Endpoint::Healthz),
            ("GET", "/readyz", Endpoint::Readyz),
            ("GET", "/metrics", Endpoint::Metrics),
            ("GET", "/v1/whoami", Endpoint::WhoAmI),
            ("GET", "/v1/audit/verify", Endpoint::AuditVerify),
            ("GET", "/v1/audit/events", Endpoint::AuditEvents),
            (
                "GET",
                "/v1/audit/trace/67rq0xe32xxh21dav1b2qx1ch3",
                Endpoint::AuditTrace("67rq0xe32xxh21dav1b2qx1ch3".parse().unwrap()),
            ),
        ];
        for (m, p, e) in ok {
            assert_eq!(
                Endpoint::parse(&m.parse().unwrap(), p, &routes()).unwrap(),
                e,
                "{m} {p}"
            );
        }
        let not_found = [
            "/",
            "/healthz/",
            "/HEALTHZ",
            "/v1/whoami/x",
            "/v1/audit/trace/",
            "/v1/audit/trace/nope",
            "/v1/audit/trace/67rq0xe32xxh21dav1b2qx1ch3/x",
            "//healthz",
            "/healthz%20",
        ];
        for p in not_found {
            assert!(
                matches!(
                    Endpoint::parse(&Method::GET, p, &routes()),
                    Err(ApiError::NotFound)
                ),
                "{p}"
            );
        }
        assert!(matches!(
            Endpoint::parse(&Method::POST, "/healthz", &routes()),
            Err(ApiError::MethodNotAllowed { allow: "GET, HEAD" })
        ));
        assert!(matches!(
            Endpoint::parse(&Method::DELETE, "/metrics", &routes()),
            Err(ApiError::MethodNotAllowed { allow: "GET" })
        ));
    }

    #[test]
    fn fhir_routes() {
        let j = "67rq0xe32xxh21dav1b2qx1ch3";
        let a = "5c9m2xq4vz8h7kt1w3ab6dnfy0";
        let jid: JobId = j.parse().unwrap();
        let ok = [
            (
                "GET",
                "/fhir/$export".to_owned(),
                Endpoint::BulkKickoff(Ok(Level::System)),
            ),
            (
                "GET",
                "/fhir/%24export".to_owned(),
                Endpoint::BulkKickoff(Ok(Level::System)),
            ),
            (
                "GET",
                "/fhir/Patient/$export".to_owned(),
                Endpoint::BulkKickoff(Ok(Level::Patient)),
            ),
            (
                "GET",
                "/fhir/Group/g-1/$export".to_owned(),
                Endpoint::BulkKickoff(Ok(Level::Group("g-1".parse().unwrap()))),
            ),
            (
                "GET",
                "/fhir/Group/a%20b/$export".to_owned(),
                Endpoint::BulkKickoff(Err(KickoffError::BadGroup)),
            ),
            ("GET", format!("/fhir/bulk/{j}"), Endpoint::BulkStatus(jid)),
            (
                "DELETE",
                format!("/fhir/bulk/{j}"),
                Endpoint::BulkCancel(jid),
            ),
            (
                "GET",
                format!("/fhir/bulk/{j}/files/{a}"),
                Endpoint::BulkFile(jid, a.parse().unwrap()),
            ),
            (
                "HEAD",
                format!("/fhir/bulk/{j}/files/{a}"),
                Endpoint::BulkFile(jid, a.parse().unwrap()),
            ),
            ("POST", "/v1/exports".to_owned(), Endpoint::ExportPublish),
            (
                "POST",
                "/v1/exports/batches".to_owned(),
                Endpoint::ExportBuild,
            ),
        ];
        for (m, p, e) in ok {
            assert_eq!(
                Endpoint::parse(&m.parse().unwrap(), &p, &routes()).unwrap(),
                e,
                "{m} {p}"
            );
        }
        for p in [
            "/fhir/",
            "/fhir/Observation/$export",
            "/fhir/bulk/nope",
            "/fhir/bulk/",
            &format!("/fhir/bulk/{j}/files/"),
            &format!("/fhir/bulk/{j}/files/nope"),
            &format!("/fhir/bulk/{j}/files/{a}/x"),
            &format!("/fhir/bulk/{j}/file/{a}"),
            "/fhir/Patient/$export/x",
            "/fhir/$exportx",
        ] {
            assert!(
                matches!(
                    Endpoint::parse(&Method::GET, p, &routes()),
                    Err(ApiError::NotFound)
                ),
                "{p}"
            );
        }
        assert!(matches!(
            Endpoint::parse(&Method::POST, "/fhir/$export", &routes()),
            Err(ApiError::MethodNotAllowed { allow: "GET" })
        ));
    }

    #[test]
    fn page_routes() {
        let js = page::asset("invite.js").unwrap();
        for (m, p, e) in [
            ("GET", "/invite", Endpoint::InvitePage),
            ("HEAD", "/invite", Endpoint::InvitePage),
            ("GET", "/invite/assets/invite.js", Endpoint::InviteAsset(js)),
            (
                "HEAD",
                "/invite/assets/invite.js",
                Endpoint::InviteAsset(js),
            ),
        ] {
            assert_eq!(
                Endpoint::parse(&m.parse().unwrap(), p, &routes()).unwrap(),
                e,
                "{m} {p}"
            );
        }
        for p in [
            "/invite/",
            "/invite/assets/",
            "/invite/assets/nope.js",
            "/invite/assets/../invite.js",
            "/invite/assets/README.md",
            "/invite/assets/invite.js/x",
            "/invite/index.html",
        ] {
            assert!(
                matches!(
                    Endpoint::parse(&Method::GET, p, &routes()),
                    Err(ApiError::NotFound)
                ),
                "{p}"
            );
        }
        assert!(matches!(
            Endpoint::parse(&Method::POST, "/invite", &routes()),
            Err(ApiError::MethodNotAllowed { allow: "GET, HEAD" })
        ));
        assert!(!Endpoint::InvitePage.is_api());
        assert!(Endpoint::Healthz.is_api());
    }

    /// The route template of an endpoint. Exhaustive on purpose: a new variant does not
    /// compile until it has a template here, and [`route_templates_match_the_parser`] then
    /// fails until [`ROUTE_TEMPLATES`] lists it (and `proto/openapi.yaml` documents it).
    fn template(e: &Endpoint) -> &'static str {
        match e {
            Endpoint::Healthz => "/healthz",
            Endpoint::Readyz => "/readyz",
            Endpoint::Metrics => "/metrics",
            Endpoint::WhoAmI => "/v1/whoami",
            Endpoint::AuditVerify => "/v1/audit/verify",
            Endpoint::AuditEvents => "/v1/audit/events",
            Endpoint::AuditTrace(_) => "/v1/audit/trace/{trace_id}",
            // Both `OPTIONS /files/` and `OPTIONS /files/{id}`: checked by path below.
            Endpoint::TusOptions => "/files/ or /files/{upload_id}",
            Endpoint::TusCreate => "/files/",
            Endpoint::TusHead(_) | Endpoint::TusPatch(_) | Endpoint::TusDelete(_) => {
                "/files/{upload_id}"
            }
            Endpoint::TusLedger(_) => "/files/{upload_id}/ledger",
            Endpoint::Download => "/d/{link}",
            Endpoint::ArtifactCreate => "/v1/artifacts",
            Endpoint::ArtifactGet(_) => "/v1/artifacts/{artifact_id}",
            Endpoint::LinksIssue | Endpoint::LinksList => "/v1/links",
            Endpoint::LinksRevokeBulk => "/v1/links/revoke",
            Endpoint::LinkGet(_) | Endpoint::LinkRevoke(_) => "/v1/links/{grant_id}",
            Endpoint::BatchOpen | Endpoint::BatchList => "/v1/batches",
            Endpoint::BatchGet(_) => "/v1/batches/{batch_id}",
            Endpoint::BatchDocument(_, DocumentKind::Manifest) => "/v1/batches/{batch_id}/manifest",
            Endpoint::BatchDocument(_, DocumentKind::Provenance) => {
                "/v1/batches/{batch_id}/provenance"
            }
            Endpoint::BatchReport(_) => "/v1/batches/{batch_id}/report",
            Endpoint::BatchSeal(_) => "/v1/batches/{batch_id}/seal",
            Endpoint::BatchRelease(_) => "/v1/batches/{batch_id}/release",
            Endpoint::BatchPurge(_) => "/v1/batches/{batch_id}/purge",
            Endpoint::SmartConfiguration => "/.well-known/smart-configuration",
            Endpoint::AuthToken => "/auth/token",
            Endpoint::ExportPublish => "/v1/exports",
            Endpoint::ExportBuild => "/v1/exports/batches",
            Endpoint::BulkKickoff(Ok(Level::System)) => "/fhir/$export",
            Endpoint::BulkKickoff(Ok(Level::Patient)) => "/fhir/Patient/$export",
            Endpoint::BulkKickoff(_) => "/fhir/Group/{group_id}/$export",
            Endpoint::BulkStatus(_) | Endpoint::BulkCancel(_) => "/fhir/bulk/{job_id}",
            Endpoint::BulkFile(..) => "/fhir/bulk/{job_id}/files/{artifact_id}",
            Endpoint::InvitePage => "/invite",
            Endpoint::InviteAsset(_) => "/invite/assets/{asset}",
            Endpoint::InvitationIssue | Endpoint::InvitationList => "/v1/invitations",
            Endpoint::InvitationGet(_) | Endpoint::InvitationRevoke(_) => {
                "/v1/invitations/{invitation_id}"
            }
            Endpoint::InvitationSelf => "/v1/invitation",
            Endpoint::InvitationSeal => "/v1/invitation/seal",
        }
    }

    /// How many variants [`template`] covers (count its arms' variants when adding one).
    const VARIANT_NAMES: usize = 46;

    /// A concrete path for a template: well-formed ids in place of the placeholders.
    fn concrete(template: &str) -> String {
        template
            .replace("{upload_id}", "0123456789abcdefghjkmnpqrs")
            .replace("{artifact_id}", "67rq0xe32xxh21dav1b2qx1ch3")
            .replace("{grant_id}", "67rq0xe32xxh21dav1b2qx1ch3")
            .replace("{batch_id}", "7zzzzzzzzzzzzzzzzzzzzzzzzz")
            .replace("{link}", "67rq0xe32xxh21dav1b2qx1ch3")
            .replace("{trace_id}", "67rq0xe32xxh21dav1b2qx1ch3")
            .replace("{job_id}", "67rq0xe32xxh21dav1b2qx1ch3")
            .replace("{group_id}", "g-1")
            .replace("{asset}", "invite.js")
            .replace("{invitation_id}", "67rq0xe32xxh21dav1b2qx1ch3")
    }

    #[test]
    fn route_templates_match_the_parser() {
        use std::collections::{BTreeMap, BTreeSet};
        let mut by_path: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        let mut names = BTreeSet::new();
        for &(m, t) in ROUTE_TEMPLATES {
            assert!(by_path.entry(t).or_default().insert(m), "{m} {t} twice");
            let e = Endpoint::parse(&m.parse().unwrap(), &concrete(t), &routes())
                .unwrap_or_else(|err| panic!("{m} {t} does not route: {err:?}"));
            let expected = template(&e);
            assert!(
                expected == t || (e == Endpoint::TusOptions && expected.contains(t)),
                "{m} {t} routes to {e:?}, whose template is {expected}"
            );
            names.insert(e.name());
        }
        assert_eq!(
            names.len(),
            VARIANT_NAMES,
            "a variant has no route: {names:?}"
        );
        // Every other method on a listed path is refused, and `Allow` names exactly the
        // table's methods for that path (HEAD is served wherever GET is, by the parser's
        // own `Allow` lists, so the table must say so too).
        let methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
        for (t, listed) in &by_path {
            for m in methods.iter().filter(|m| !listed.contains(*m)) {
                match Endpoint::parse(&m.parse().unwrap(), &concrete(t), &routes()) {
                    Err(ApiError::MethodNotAllowed { allow }) => {
                        let allowed: BTreeSet<&str> = allow.split(", ").collect();
                        assert_eq!(&allowed, listed, "Allow for {m} {t}");
                    }
                    other => panic!("{m} {t}: {other:?}, but the table does not list it"),
                }
            }
        }
    }
}
