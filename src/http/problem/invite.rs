//! Rows for upload invitations (`proto/invitations-v1.md`): the issuer's API and what an
//! invitation's holder is told when the invitation no longer admits it. A bad request
//! names the field and what is wrong with it (never its value).

use http::StatusCode;
use serde_json::{Map, Value, json};

use super::infra::AUDIT_UNAVAILABLE;
use super::row::{Describe, INTERNAL, Problem, row};
use crate::invite::InviteError;

impl Describe for InviteError {
    fn problem(&self) -> Problem {
        match self {
            InviteError::BadRequest { .. } => row(
                StatusCode::BAD_REQUEST,
                "invitation.bad_request",
                "The invitation request is malformed (see `field` and `detail`)",
            ),
            InviteError::PartnerNotAllowed => row(
                StatusCode::FORBIDDEN,
                "invitation.partner_not_allowed",
                "This publisher may not invite that partner",
            ),
            InviteError::NotFound => row(
                StatusCode::NOT_FOUND,
                "invitation.not_found",
                "No such invitation",
            ),
            InviteError::Unknown => row(
                StatusCode::UNAUTHORIZED,
                "invitation.unknown",
                "This invitation is not known to this gateway; ask the sender for a new one",
            ),
            InviteError::Revoked => row(
                StatusCode::GONE,
                "invitation.revoked",
                "This invitation was withdrawn by its sender; ask them for a new one",
            ),
            InviteError::Expired => row(
                StatusCode::GONE,
                "invitation.expired",
                "This invitation has expired; ask its sender for a new one",
            ),
            InviteError::NoBatch => row(
                StatusCode::CONFLICT,
                "invitation.no_batch",
                "This invitation has no batch to seal",
            ),
            InviteError::Busy => row(
                StatusCode::SERVICE_UNAVAILABLE,
                "invitation.busy",
                "The invitation is being changed; retry",
            ),
            InviteError::Batch(e) => e.problem(),
            InviteError::Upload(e) => e.problem(),
            InviteError::State(e) => e.problem(),
            InviteError::Audit(_) => AUDIT_UNAVAILABLE,
            InviteError::Corrupt => INTERNAL,
        }
    }

    fn headers(&self, h: &mut http::HeaderMap) {
        match self {
            InviteError::Batch(e) => e.headers(h),
            InviteError::Upload(e) => e.headers(h),
            _ => {}
        }
    }

    fn members(&self) -> Option<Map<String, Value>> {
        match self {
            InviteError::BadRequest { field, detail } => {
                let Value::Object(m) = json!({"field": field, "detail": detail}) else {
                    return None;
                };
                Some(m)
            }
            InviteError::Batch(e) => e.members(),
            InviteError::Upload(e) => e.members(),
            _ => None,
        }
    }
}
