//! Rows for the batch service (`proto/batches-v1.md`) and for batch membership on the tus
//! creation path. A document error carries extension members (RFC 9457 §3.2) naming the
//! document, the JSON Pointer of the offending value (or the line and column of a syntax
//! error) and the manifest-v1 reason code — never the value itself.

use http::StatusCode;
use serde_json::{Map, Value, json};

use super::infra::AUDIT_UNAVAILABLE;
use super::row::{Describe, INTERNAL, Problem, row};
use crate::batch::store::StoreError;
use crate::batch::{BatchError, DocumentKind};
use crate::manifest::Location;
use crate::upload::MembershipError;

/// 404 for a batch that does not exist or that the caller may not see.
pub const BATCH_NOT_FOUND: Problem = row(StatusCode::NOT_FOUND, "batch.not_found", "No such batch");
const NOT_OPEN: Problem = row(
    StatusCode::CONFLICT,
    "batch.not_open",
    "The batch is not open: it is sealed, verified, purged or expired",
);

impl Describe for StoreError {
    fn problem(&self) -> Problem {
        match self {
            StoreError::State(e) => e.problem(),
            StoreError::AtRest(e) => e.problem(),
            StoreError::Record(_) | StoreError::Corrupt(_) => INTERNAL,
        }
    }
}

impl Describe for BatchError {
    fn problem(&self) -> Problem {
        match self {
            BatchError::BadRequest { .. } => row(
                StatusCode::BAD_REQUEST,
                "batch.bad_request",
                "The body must be one JSON object with `manifest` and optionally `provenance`",
            ),
            BatchError::Document {
                kind: DocumentKind::Manifest,
                ..
            } => row(
                StatusCode::UNPROCESSABLE_ENTITY,
                "batch.invalid_manifest",
                "The manifest is invalid",
            ),
            BatchError::Document {
                kind: DocumentKind::Provenance,
                ..
            } => row(
                StatusCode::UNPROCESSABLE_ENTITY,
                "batch.invalid_provenance",
                "The provenance record is invalid",
            ),
            BatchError::UnknownProfile => row(
                StatusCode::UNPROCESSABLE_ENTITY,
                "batch.unknown_profile",
                "The manifest names a profile that is not configured",
            ),
            BatchError::ProfileViolation(_) => row(
                StatusCode::UNPROCESSABLE_ENTITY,
                "batch.profile_violation",
                "The batch breaks its profile's rules",
            ),
            BatchError::NotFound => BATCH_NOT_FOUND,
            BatchError::NotOpen => NOT_OPEN,
            BatchError::NotVerified => row(
                StatusCode::CONFLICT,
                "batch.not_verified",
                "The batch has no verdict yet",
            ),
            BatchError::NoProvenance => row(
                StatusCode::NOT_FOUND,
                "batch.no_provenance",
                "The batch has no provenance record",
            ),
            BatchError::ReasonRequired => row(
                StatusCode::BAD_REQUEST,
                "batch.reason_required",
                "A reason of 1 to 1000 characters is required",
            ),
            BatchError::NotQuarantined => row(
                StatusCode::CONFLICT,
                "batch.not_quarantined",
                "Only a quarantined batch can be released",
            ),
            BatchError::AlreadyApproved => row(
                StatusCode::CONFLICT,
                "batch.already_approved",
                "You already approved this release; a different auditor must approve it",
            ),
            BatchError::NotPurgeable => row(
                StatusCode::CONFLICT,
                "batch.not_purgeable",
                "Only a verified or expired batch can be purged",
            ),
            BatchError::BadQuery => row(
                StatusCode::BAD_REQUEST,
                "batch.bad_query",
                "The query is malformed (state, after, limit 1-500)",
            ),
            BatchError::Busy => row(
                StatusCode::SERVICE_UNAVAILABLE,
                "batch.busy",
                "The batch is being changed by another request; retry",
            ),
            BatchError::Store(e) => e.problem(),
            BatchError::Upload(e) => e.problem(),
            BatchError::Audit(_) => AUDIT_UNAVAILABLE,
        }
    }

    fn members(&self) -> Option<Map<String, Value>> {
        let mut m = Map::new();
        match self {
            BatchError::BadRequest { reason, detail } => {
                m.insert("reason".into(), json!(reason));
                m.insert("detail".into(), json!(detail));
            }
            BatchError::Document { kind, error } => {
                let document = match kind {
                    DocumentKind::Manifest => "manifest",
                    DocumentKind::Provenance => "provenance",
                };
                m.insert("document".into(), json!(document));
                m.insert("reason".into(), json!(error.problem().code()));
                match error.location() {
                    Location::Field(path) => {
                        m.insert("field".into(), json!(path.to_string()));
                    }
                    Location::Position { line, column } => {
                        m.insert("line".into(), json!(line));
                        m.insert("column".into(), json!(column));
                    }
                    Location::Document => {}
                }
                m.insert("detail".into(), json!(error.to_string()));
            }
            BatchError::ProfileViolation(violations) => {
                let list: Vec<Value> = violations
                    .iter()
                    .map(|v| json!({"rule": v.rule, "member": v.member}))
                    .collect();
                m.insert("violations".into(), Value::Array(list));
            }
            _ => return None,
        }
        Some(m)
    }
}

impl Describe for MembershipError {
    fn problem(&self) -> Problem {
        match self {
            MembershipError::BadClaim => row(
                StatusCode::BAD_REQUEST,
                "batch.member_metadata",
                "A batch member names both `batch` and `member` in Upload-Metadata and is a whole file (not a partial upload)",
            ),
            MembershipError::BatchNotFound => BATCH_NOT_FOUND,
            MembershipError::NotOpen => NOT_OPEN,
            MembershipError::NotListed => row(
                StatusCode::UNPROCESSABLE_ENTITY,
                "batch.member_not_listed",
                "The batch's manifest does not list this member",
            ),
            MembershipError::SizeDiffers => row(
                StatusCode::UNPROCESSABLE_ENTITY,
                "batch.member_size",
                "Upload-Length differs from the member's size in the manifest",
            ),
            MembershipError::Exists => row(
                StatusCode::CONFLICT,
                "batch.member_exists",
                "This member already has an upload in the batch; terminate it first",
            ),
            MembershipError::Sealed => row(
                StatusCode::CONFLICT,
                "batch.member_sealed",
                "The upload is a member of a sealed batch and cannot be deleted",
            ),
            MembershipError::Unavailable => row(
                StatusCode::UNPROCESSABLE_ENTITY,
                "batch.unavailable",
                "This gateway does not take batch members",
            ),
            MembershipError::State(e) => e.problem(),
            MembershipError::Audit(_) => AUDIT_UNAVAILABLE,
        }
    }
}
