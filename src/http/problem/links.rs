//! Rows for the signed-link service: downloads (one generic 403 for every refusal, 429
//! for a client that keeps presenting forged links, 416 with `Content-Range`), the links
//! API (issue, list, revoke) and artifact registration.

use http::header::{ACCEPT_RANGES, CONTENT_RANGE, RETRY_AFTER};
use http::{HeaderMap, HeaderValue, StatusCode};

use super::row::{Describe, INTERNAL, Problem, row};

/// 409 for a batch member whose batch is not released (`proto/batches-v1.md` §8).
const BATCH_NOT_RELEASED: Problem = row(
    StatusCode::CONFLICT,
    "batch.not_released",
    "The file is a member of a batch that is not released",
);
use crate::artifact::ArtifactError;
use crate::artifact::import::ImportError;
use crate::grant::GrantError;
use crate::links::LinkError;
use crate::links::api::QueryError;
use crate::links::download::DownloadError;
use crate::links::publish::RegisterError;
use crate::upload::source::UploadSourceError;

const fn bad(code: &'static str, title: &'static str) -> Problem {
    row(StatusCode::BAD_REQUEST, code, title)
}

/// A publisher limited by `publish_from_owners` tried to publish (register, or link) an
/// artifact or upload of another owner (an import has none).
const OWNER_OUT_OF_SCOPE: Problem = row(
    StatusCode::FORBIDDEN,
    "artifact.owner_out_of_scope",
    "This publisher may not publish uploads or artifacts of this owner (publish_from_owners)",
);

const ARTIFACT_NOT_FOUND: Problem = row(
    StatusCode::NOT_FOUND,
    "artifact.not_found",
    "No such artifact",
);

impl Describe for DownloadError {
    fn problem(&self) -> Problem {
        match self {
            DownloadError::RateLimited { .. } => row(
                StatusCode::TOO_MANY_REQUESTS,
                "request.rate_limited",
                "Too many invalid links from this address; retry later",
            ),
            DownloadError::Refused => row(
                StatusCode::FORBIDDEN,
                "link.refused",
                "This link cannot be used",
            ),
            DownloadError::RangeNotSatisfiable { .. } => row(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range.not_satisfiable",
                "No requested range overlaps the file",
            ),
            DownloadError::State(e) => e.problem(),
            DownloadError::AtRest(e) => e.problem(),
            DownloadError::Audit(e) => e.problem(),
            DownloadError::Grant(e) => e.problem(),
            DownloadError::Artifact(e) => e.problem(),
            DownloadError::Shape(_) => INTERNAL,
            DownloadError::Batch(e) => e.problem(),
        }
    }

    fn headers(&self, h: &mut HeaderMap) {
        match self {
            DownloadError::RateLimited { retry_after_secs } => {
                h.insert(RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            DownloadError::RangeNotSatisfiable { length } => {
                if let Ok(v) =
                    HeaderValue::from_str(&crate::range::unsatisfied_content_range(*length))
                {
                    h.insert(CONTENT_RANGE, v);
                }
                h.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
            }
            _ => {}
        }
    }
}

impl Describe for GrantError {
    fn problem(&self) -> Problem {
        match self {
            GrantError::State(e) => e.problem(),
            GrantError::Contended(_) => row(
                StatusCode::CONFLICT,
                "grant.contended",
                "The grant kept changing; retry",
            ),
            GrantError::Corrupt { .. } | GrantError::AlreadyExists(_) => INTERNAL,
        }
    }
}

impl Describe for ArtifactError {
    fn problem(&self) -> Problem {
        match self {
            ArtifactError::State(e) => e.problem(),
            ArtifactError::Corrupt { .. } | ArtifactError::AlreadyExists(_) => INTERNAL,
        }
    }
}

impl Describe for QueryError {
    fn problem(&self) -> Problem {
        let title = match self {
            QueryError::Encoded => "Query values are ids or names and need no encoding",
            QueryError::Unknown => "Known parameters: artifact, partner, batch, after, limit",
            QueryError::After => "after is a grant id",
            QueryError::Limit => "limit is 1 to 1000",
            QueryError::Selector => "artifact, partner or batch is malformed",
            QueryError::SelectorCount => "Give exactly one of artifact, partner, batch",
        };
        bad("request.bad_query", title)
    }
}

impl Describe for LinkError {
    fn problem(&self) -> Problem {
        match self {
            LinkError::BatchNotReleased => BATCH_NOT_RELEASED,
            LinkError::Batch(e) => e.problem(),
            LinkError::BadArtifact => bad("link.bad_artifact", "artifact is not an artifact id"),
            LinkError::BadPartner => bad(
                "link.bad_partner",
                "partner is 1-64 characters of a-z, 0-9, '.', '_', '-'",
            ),
            LinkError::BadTtlFormat => bad(
                "link.bad_ttl",
                "ttl is a duration such as 15m, 24h or 7days",
            ),
            LinkError::BadMethods => bad("link.bad_methods", "methods is GET, HEAD or GET,HEAD"),
            LinkError::BadClientNet => bad(
                "link.bad_client_net",
                "client_net is a canonical CIDR block (host bits zero)",
            ),
            LinkError::BadClientCert => bad(
                "link.bad_client_cert",
                "client_cert_sha256 is the certificate's SHA-256 in hex or base64url",
            ),
            LinkError::BadClientCertOf => bad(
                "link.bad_client_cert_of",
                "client_cert_of is a configured client's name, and not given with client_cert_sha256",
            ),
            LinkError::UnknownClient => bad(
                "link.unknown_client",
                "client_cert_of names no configured client",
            ),
            LinkError::ClientWithoutCertificate => bad(
                "link.client_without_certificate",
                "client_cert_of names a client without a configured certificate (cert_sha256)",
            ),
            LinkError::PartnerOutOfScope => row(
                StatusCode::FORBIDDEN,
                "link.partner_out_of_scope",
                "This publisher may not issue links for this partner (publish_for)",
            ),
            LinkError::OwnerOutOfScope => OWNER_OUT_OF_SCOPE,
            LinkError::BadFileName => bad(
                "link.bad_file_name",
                "file_name is 1-128 characters of A-Z, a-z, 0-9, '.', '_', '-'",
            ),
            LinkError::BadReason => bad(
                "link.bad_reason",
                "reason is 1-200 characters: letters, digits, spaces and . , : ; ( ) _ - / #",
            ),
            LinkError::BadSelector => bad(
                "link.bad_selector",
                "Give exactly one of artifact, partner, batch (well-formed)",
            ),
            LinkError::Query(e) => e.problem(),
            LinkError::Ttl => bad("link.bad_ttl", "ttl must be from 1s to links.max_ttl"),
            LinkError::NotBefore => {
                bad("link.bad_not_before", "not_before is too far in the future")
            }
            LinkError::ZeroLimit => bad("link.bad_limit", "Limits must be at least 1"),
            LinkError::Claims(_) => bad("link.bad_window", "The validity window is empty"),
            LinkError::ArtifactNotFound => ARTIFACT_NOT_FOUND,
            LinkError::GrantNotFound => {
                row(StatusCode::NOT_FOUND, "grant.not_found", "No such grant")
            }
            LinkError::State(e) => e.problem(),
            LinkError::Grant(e) => e.problem(),
            LinkError::Audit(e) => e.problem(),
            LinkError::Artifact(e) => e.problem(),
        }
    }
}

impl Describe for ImportError {
    fn problem(&self) -> Problem {
        match self {
            ImportError::NotFound => row(
                StatusCode::NOT_FOUND,
                "import.not_found",
                "No such file in the import directory",
            ),
            ImportError::Symlink => bad(
                "import.symlink",
                "The import name is a symbolic link; only regular files are imported",
            ),
            ImportError::NotRegularFile => bad(
                "import.not_regular_file",
                "The import name is not a regular file",
            ),
            ImportError::HardLinked => bad(
                "import.hard_linked",
                "The import file has other hard links; copy it into the import directory instead",
            ),
            ImportError::Changed => row(
                StatusCode::CONFLICT,
                "import.changed",
                "The file changed while it was imported; nothing was kept",
            ),
            ImportError::Io(_) => INTERNAL,
            ImportError::AtRest(e) => e.problem(),
        }
    }
}

impl Describe for UploadSourceError {
    fn problem(&self) -> Problem {
        match self {
            UploadSourceError::NotFound => {
                row(StatusCode::NOT_FOUND, "upload.not_found", "No such upload")
            }
            UploadSourceError::Incomplete => row(
                StatusCode::CONFLICT,
                "upload.incomplete",
                "The upload is not complete",
            ),
            UploadSourceError::Partial => row(
                StatusCode::CONFLICT,
                "upload.partial",
                "A partial upload is not a file; register the final upload",
            ),
            UploadSourceError::Busy { .. } => row(
                StatusCode::CONFLICT,
                "upload.busy",
                "Another request is writing or deleting the upload; retry shortly",
            ),
            UploadSourceError::State(e) => e.problem(),
            UploadSourceError::AtRest(e) => e.problem(),
            UploadSourceError::Corrupt(_) | UploadSourceError::ObjectMismatch => INTERNAL,
        }
    }
}

impl Describe for RegisterError {
    fn problem(&self) -> Problem {
        match self {
            RegisterError::BatchNotReleased => BATCH_NOT_RELEASED,
            RegisterError::Batch(e) => e.problem(),
            RegisterError::BadSource => bad(
                "artifact.bad_source",
                "Give exactly one of import (a file name) or upload (an upload id)",
            ),
            RegisterError::BadFileName => bad(
                "artifact.bad_file_name",
                "file_name is 1-128 characters of A-Z, a-z, 0-9, '.', '_', '-'",
            ),
            RegisterError::BadContentType => bad(
                "artifact.bad_content_type",
                "content_type is type/subtype with at most a charset parameter",
            ),
            RegisterError::BadBatch => bad(
                "artifact.bad_batch",
                "batch is 1-64 characters of a-z, 0-9, '.', '_', '-'",
            ),
            RegisterError::BadImportName => bad(
                "artifact.bad_import_name",
                "import is a plain file name: no '/', no leading '.', no control characters",
            ),
            RegisterError::BadUpload => bad("artifact.bad_upload", "upload is not an upload id"),
            RegisterError::FileNameRequired => bad(
                "artifact.file_name_required",
                "The import name is not a safe download name; give file_name",
            ),
            RegisterError::ContentTypeRequired => bad(
                "artifact.content_type_required",
                "Give content_type (only .ndjson files have a default)",
            ),
            RegisterError::OwnerOutOfScope => OWNER_OUT_OF_SCOPE,
            RegisterError::Import(e) => e.problem(),
            RegisterError::Upload(e) => e.problem(),
            RegisterError::Artifact(e) => e.problem(),
            RegisterError::Audit(e) => e.problem(),
        }
    }
}
