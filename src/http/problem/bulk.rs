//! Rows for the FHIR Bulk Data flow (`proto/bulk-v1.md` §7): the kick-off's refusals, the
//! status poll's answers that are not a manifest, and publishing (`POST /v1/exports`).
//!
//! On `/fhir/…` every error — these rows and any other row of the table (authentication,
//! routing, an unavailable store) — is rendered as a FHIR `OperationOutcome`
//! (`application/fhir+json`) by [`super::ApiError::into_fhir_response`]; its issue `code`
//! comes from [`issue_type`], and its `details.coding` carries the row's stable code. On
//! `/v1/exports` they are ordinary problems.

use http::{HeaderMap, HeaderValue, StatusCode, header};

use super::batch::BATCH_NOT_FOUND;
use super::row::{Describe, INTERNAL, Problem, row};
use crate::bulk::BulkError;
use crate::bulk::record::RecordError;
use crate::bulk::request::KickoffError;

/// 404 for a job that does not exist, is not the caller's, has expired or was cancelled.
pub const JOB_NOT_FOUND: Problem = row(StatusCode::NOT_FOUND, "bulk.job_not_found", "No such job");

const fn bad(code: &'static str, title: &'static str) -> Problem {
    row(StatusCode::BAD_REQUEST, code, title)
}

impl Describe for KickoffError {
    fn problem(&self) -> Problem {
        match self {
            KickoffError::Accept => row(
                StatusCode::NOT_ACCEPTABLE,
                "bulk.accept",
                "Accept must be application/fhir+json",
            ),
            KickoffError::PreferAsync => bad(
                "bulk.prefer_async",
                "The kick-off needs the header Prefer: respond-async",
            ),
            KickoffError::OutputFormat => bad(
                "bulk.output_format",
                "_outputFormat must be application/fhir+ndjson, application/ndjson or ndjson",
            ),
            KickoffError::Type => bad(
                "bulk.type",
                "_type must be a comma-separated list of FHIR resource types",
            ),
            KickoffError::Since => bad(
                "bulk.since",
                "_since must be a FHIR instant (date, time and zone) not in the future",
            ),
            KickoffError::Unsupported => bad(
                "bulk.unsupported_parameter",
                "A parameter this server does not support was sent with Prefer: handling=strict",
            ),
            KickoffError::Query => bad(
                "bulk.query",
                "The query string is malformed (a bad escape or a repeated parameter)",
            ),
            KickoffError::BadGroup => bad("bulk.group", "The group id is not a FHIR id"),
            KickoffError::BadLevel => bad(
                "bulk.bad_publication",
                "level must be system, patient or group (with group)",
            ),
        }
    }
}

impl Describe for BulkError {
    fn problem(&self) -> Problem {
        match self {
            BulkError::Kickoff(e) => e.problem(),
            BulkError::TokenRequired => row(
                StatusCode::UNAUTHORIZED,
                "bulk.token_required",
                "A SMART Backend Services access token (POST /auth/token) is required",
            ),
            BulkError::Scope => row(
                StatusCode::FORBIDDEN,
                "bulk.scope",
                "The access token's scope does not cover the resource types asked for",
            ),
            BulkError::JobNotFound => JOB_NOT_FOUND,
            BulkError::BadBuild(_) => bad(
                "bulk.bad_build",
                "The build is malformed: artifacts (1 to 1000, each with artifact and a FHIR resource_type) or batch, exactly one; profile; provenance",
            ),
            BulkError::BuildSourceNotFound => row(
                StatusCode::NOT_FOUND,
                "bulk.build_source_not_found",
                "An artifact or batch the build names does not exist",
            ),
            BulkError::BuildSourceNotReleased => row(
                StatusCode::CONFLICT,
                "bulk.build_source_not_released",
                "The batch the build names (or an artifact's batch) is not released",
            ),
            BulkError::BuildSourceNotNdjson => row(
                StatusCode::UNPROCESSABLE_ENTITY,
                "bulk.build_source_not_ndjson",
                "The batch the build names has members that are not FHIR NDJSON; an export holds NDJSON only (build from its NDJSON artifacts instead)",
            ),
            BulkError::BuildCopy => INTERNAL,
            BulkError::Artifact(e) => e.problem(),
            BulkError::AtRest(e) => e.problem(),
            BulkError::Upload(e) => e.problem(),
            BulkError::FileNotFound => row(
                StatusCode::NOT_FOUND,
                "bulk.file_not_found",
                "No such file in this job's manifest (file URLs under /fhir/bulk/ are served only when the manifest says requiresAccessToken: true)",
            ),
            BulkError::TooFast { .. } => row(
                StatusCode::TOO_MANY_REQUESTS,
                "bulk.too_fast",
                "Polled sooner than Retry-After said",
            ),
            BulkError::ExportFailed { .. } => row(
                StatusCode::UNPROCESSABLE_ENTITY,
                "bulk.export_failed",
                "The export failed: its batch was quarantined, purged or expired, or its publication is gone",
            ),
            BulkError::BadPublication(_) => bad(
                "bulk.bad_publication",
                "The publication is malformed: batch, level (system, patient or group with group) or expires_in (1m to 30d)",
            ),
            BulkError::UnknownClient => row(
                StatusCode::UNPROCESSABLE_ENTITY,
                "bulk.unknown_client",
                "client_id names no registered SMART client",
            ),
            BulkError::ClientNotPartner => row(
                StatusCode::UNPROCESSABLE_ENTITY,
                "bulk.client_not_partner",
                "The SMART client's principal is not a valid partner name",
            ),
            BulkError::OutOfScope => row(
                StatusCode::FORBIDDEN,
                "bulk.out_of_scope",
                "This publisher may not publish this batch (publish_from_owners) for this client (publish_for)",
            ),
            BulkError::BatchNotFound => BATCH_NOT_FOUND,
            BulkError::BatchNotPublishable => row(
                StatusCode::CONFLICT,
                "bulk.batch_not_publishable",
                "The batch is quarantined, purged or expired",
            ),
            BulkError::NotConfigured => INTERNAL,
            BulkError::Record(RecordError::State(e)) => e.problem(),
            BulkError::Record(RecordError::Corrupt(_)) => INTERNAL,
            BulkError::Batch(e) => e.problem(),
            BulkError::Register(e) => e.problem(),
            BulkError::Link(e) => e.problem(),
            BulkError::Audit(e) => e.problem(),
        }
    }

    fn headers(&self, h: &mut HeaderMap) {
        match self {
            BulkError::TooFast { retry_after } => {
                h.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
            }
            BulkError::TokenRequired => {
                h.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(r#"Bearer realm="sallyport", error="invalid_token""#),
                );
            }
            _ => {}
        }
    }

    fn members(&self) -> Option<serde_json::Map<String, serde_json::Value>> {
        match self {
            BulkError::BadPublication(field) => {
                let mut m = serde_json::Map::new();
                m.insert("field".into(), (*field).into());
                Some(m)
            }
            _ => None,
        }
    }
}

/// The FHIR `IssueType` code of an `OperationOutcome` for a status.
pub fn issue_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "login",
        403 => "forbidden",
        404 => "not-found",
        405 | 406 | 415 => "not-supported",
        409 => "conflict",
        413 => "too-costly",
        422 => "processing",
        429 => "throttled",
        503 => "transient",
        400..=499 => "invalid",
        _ => "exception",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_headers() {
        assert_eq!(
            BulkError::Kickoff(KickoffError::PreferAsync)
                .problem()
                .status,
            400
        );
        assert_eq!(
            BulkError::Kickoff(KickoffError::Accept).problem().status,
            406
        );
        assert_eq!(BulkError::Scope.problem().status, 403);
        assert_eq!(BulkError::JobNotFound.problem().status, 404);
        let e = BulkError::TooFast { retry_after: 3 };
        assert_eq!(e.problem().status, 429);
        let mut h = HeaderMap::new();
        e.headers(&mut h);
        assert_eq!(h[header::RETRY_AFTER], "3");
        assert_eq!(issue_type(StatusCode::TOO_MANY_REQUESTS), "throttled");
        assert_eq!(issue_type(StatusCode::BAD_REQUEST), "invalid");
        assert_eq!(issue_type(StatusCode::INTERNAL_SERVER_ERROR), "exception");
    }
}
