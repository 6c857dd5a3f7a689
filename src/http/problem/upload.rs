//! Rows for upload failures: every tus refusal (`proto/upload-v1.md` lists the statuses
//! and codes) and the upload engine's own errors. Every upload error response carries
//! `Tus-Resumable`; a refusal about a known upload carries its `Upload-Expires`.

use http::header::RETRY_AFTER;
use http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::{Map, Value};

use super::infra::AUDIT_UNAVAILABLE;
use super::row::{Describe, INTERNAL, Problem, row};
use crate::tus::TusError;
use crate::tus::headers::{TUS_RESUMABLE, TUS_VERSION_HEADER, UPLOAD_EXPIRES, UPLOAD_OFFSET};
use crate::tus::metadata::MetadataError;
use crate::upload::UploadError;
use crate::upload::store::StoreError;

/// The status and code of a tus refusal; the title is the status's.
fn tus_row(e: &TusError) -> (StatusCode, &'static str) {
    use StatusCode as S;
    match e {
        TusError::UnsupportedVersion => (S::PRECONDITION_FAILED, "tus.version_unsupported"),
        TusError::MissingHeader(_) => (S::BAD_REQUEST, "tus.header_missing"),
        TusError::InvalidHeader { .. } => (S::BAD_REQUEST, "tus.header_invalid"),
        TusError::UnsupportedMediaType => (S::UNSUPPORTED_MEDIA_TYPE, "tus.content_type"),
        TusError::InvalidMetadata(
            MetadataError::KeyTooLong { .. }
            | MetadataError::TooManyPairs { .. }
            | MetadataError::TooLarge { .. },
        ) => (S::BAD_REQUEST, "tus.metadata_too_large"),
        TusError::InvalidMetadata(_) => (S::BAD_REQUEST, "tus.metadata_invalid"),
        TusError::UnsupportedChecksumAlgorithm => (S::BAD_REQUEST, "tus.checksum_algorithm"),
        TusError::InvalidChecksum(_) => (S::BAD_REQUEST, "tus.checksum_invalid"),
        TusError::ChecksumTwice => (S::BAD_REQUEST, "tus.checksum_twice"),
        TusError::ChecksumTrailerMissing => (S::BAD_REQUEST, "tus.checksum_trailer_missing"),
        TusError::ChecksumMismatch { .. } => (CHECKSUM_MISMATCH, "tus.checksum_mismatch"),
        TusError::LengthRequired => (S::BAD_REQUEST, "tus.length_required"),
        TusError::LengthAndDeferLength => (S::BAD_REQUEST, "tus.length_and_defer"),
        TusError::UploadTooLarge { .. } => (S::PAYLOAD_TOO_LARGE, "tus.too_large"),
        TusError::ExceedsLength { .. } => (S::PAYLOAD_TOO_LARGE, "tus.exceeds_length"),
        TusError::LengthImmutable => (S::BAD_REQUEST, "tus.length_immutable"),
        TusError::LengthBelowOffset { .. } => (S::BAD_REQUEST, "tus.length_below_offset"),
        TusError::OffsetMismatch { .. } => (S::CONFLICT, "tus.offset_mismatch"),
        // A stranger's upload is indistinguishable from none (no existence oracle).
        TusError::NotFound | TusError::NotOwner => (S::NOT_FOUND, "tus.not_found"),
        TusError::Expired => (S::GONE, "tus.expired"),
        TusError::FinalUpload => (S::FORBIDDEN, "tus.final_upload"),
        TusError::InvalidConcat(_) => (S::BAD_REQUEST, "tus.concat_invalid"),
        TusError::ConcatPart { .. } => (S::BAD_REQUEST, "tus.concat_part"),
        TusError::Locked { .. } => (S::LOCKED, "tus.locked"),
        TusError::TooManyChunks { .. } => (S::PAYLOAD_TOO_LARGE, "upload.too_many_chunks"),
        TusError::WholeFileDigestMissing => (S::INTERNAL_SERVER_ERROR, "server.internal"),
    }
}

/// tus's own status for a chunk that failed its checksum (not an IANA status).
const CHECKSUM_MISMATCH: StatusCode = match StatusCode::from_u16(460) {
    Ok(s) => s,
    Err(_) => StatusCode::BAD_REQUEST,
};

/// The static title of a tus refusal, by status.
fn tus_title(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "Invalid tus request",
        403 => "A final concatenated upload cannot be patched",
        404 => "Upload not found",
        409 => "Upload-Offset does not match the upload's offset",
        410 => "Upload expired",
        412 => "Unsupported tus version",
        413 => "Upload too large",
        415 => "Content-Type must be application/offset+octet-stream",
        423 => "The upload is busy with another request",
        460 => "Checksum mismatch: the chunk was discarded",
        _ => "Internal error",
    }
}

impl Describe for TusError {
    fn problem(&self) -> Problem {
        let (status, code) = tus_row(self);
        if let TusError::TooManyChunks { .. } = self {
            return row(status, code, "Too many chunks for one upload");
        }
        row(status, code, tus_title(status))
    }

    fn members(&self) -> Option<Map<String, Value>> {
        match self {
            TusError::TooManyChunks { max, chunks } => Some(Map::from_iter([
                ("max_chunks".to_owned(), Value::from(*max)),
                ("chunks".to_owned(), Value::from(*chunks)),
            ])),
            _ => None,
        }
    }

    fn headers(&self, h: &mut HeaderMap) {
        h.insert(
            TUS_RESUMABLE,
            HeaderValue::from_static(crate::tus::TUS_VERSION),
        );
        match self {
            TusError::UnsupportedVersion => {
                h.insert(
                    TUS_VERSION_HEADER,
                    HeaderValue::from_static(crate::tus::TUS_VERSION),
                );
            }
            TusError::OffsetMismatch { current, .. } => {
                h.insert(UPLOAD_OFFSET, HeaderValue::from(*current));
            }
            TusError::Locked { retry_after_secs } => {
                h.insert(RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            _ => {}
        }
    }
}

impl Describe for UploadError {
    fn problem(&self) -> Problem {
        match self {
            UploadError::Tus { error, .. } => error.problem(),
            UploadError::Member(e) => e.problem(),
            UploadError::InUse => row(
                StatusCode::CONFLICT,
                "upload.in_use",
                "The upload is registered as an artifact and cannot be deleted",
            ),
            UploadError::QuotaExceeded { .. } => row(
                StatusCode::INSUFFICIENT_STORAGE,
                "upload.quota_exceeded",
                "The upload would exceed this client's storage quota",
            ),
            UploadError::FileLimit { .. } => row(
                StatusCode::FORBIDDEN,
                "invitation.file_limit",
                "This invitation allows no more files",
            ),
            UploadError::BatchRequired => row(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invitation.batch_required",
                "Uploads through this invitation must name its batch and a listed member \
                 (`batch` and `member` in Upload-Metadata)",
            ),
            UploadError::TooManyOpen { .. } => row(
                StatusCode::TOO_MANY_REQUESTS,
                "upload.too_many_open",
                "Too many unfinished uploads for this client",
            ),
            UploadError::BodyAborted => row(
                StatusCode::BAD_REQUEST,
                "request.body_aborted",
                "The request body was interrupted; nothing was kept",
            ),
            UploadError::BodyStalled { .. } => row(
                StatusCode::REQUEST_TIMEOUT,
                "request.body_timeout",
                "The request body stalled; the bytes that arrived before it were kept \
                 (HEAD gives the offset to resume from)",
            ),
            UploadError::BodyTooSlow { .. } => row(
                StatusCode::REQUEST_TIMEOUT,
                "request.body_timeout",
                "The request body arrived too slowly; the bytes that arrived were kept \
                 (HEAD gives the offset to resume from)",
            ),
            UploadError::LeaseLost => row(
                StatusCode::SERVICE_UNAVAILABLE,
                "upload.lease_lost",
                "The upload lock was lost; retry",
            ),
            UploadError::Store(StoreError::State(e)) => e.problem(),
            UploadError::Store(_) => INTERNAL,
            // Two writers met in the at-rest layer: the same answer as a busy lease.
            UploadError::AtRest(crate::at_rest::AtRestError::ConcurrentWrite) => TusError::Locked {
                retry_after_secs: 1,
            }
            .problem(),
            UploadError::AtRest(e) => e.problem(),
            UploadError::Audit(_) => AUDIT_UNAVAILABLE,
            UploadError::AuditPending(_) => row(
                StatusCode::SERVICE_UNAVAILABLE,
                "upload.audit_pending",
                "The chunk is stored but its audit entry is pending; HEAD the upload, then resume",
            ),
            UploadError::Internal(_) => INTERNAL,
        }
    }

    fn members(&self) -> Option<Map<String, Value>> {
        match self {
            UploadError::Tus { error, .. } => error.members(),
            UploadError::QuotaExceeded {
                limit,
                used,
                requested,
            } => Some(Map::from_iter([
                ("limit".to_owned(), Value::from(*limit)),
                ("used".to_owned(), Value::from(*used)),
                ("requested".to_owned(), Value::from(*requested)),
            ])),
            _ => None,
        }
    }

    fn headers(&self, h: &mut HeaderMap) {
        h.insert(
            TUS_RESUMABLE,
            HeaderValue::from_static(crate::tus::TUS_VERSION),
        );
        if let UploadError::Tus { error, expires } = self {
            error.headers(h);
            if let Some(v) = expires.and_then(|t| HeaderValue::from_str(&t.to_http_date()).ok()) {
                h.insert(UPLOAD_EXPIRES, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tus::checksum::ChecksumAlgorithm;
    use crate::tus::error::{ConcatProblem, TusHeader};

    fn status_code(e: &TusError) -> (u16, &'static str) {
        let p = e.problem();
        (p.status.as_u16(), p.code)
    }

    #[test]
    fn tus_refusals_answer_the_statuses_and_codes_of_the_upload_profile() {
        let cases = [
            (TusError::UnsupportedVersion, 412, "tus.version_unsupported"),
            (
                TusError::MissingHeader(TusHeader::UploadOffset),
                400,
                "tus.header_missing",
            ),
            (TusError::UnsupportedMediaType, 415, "tus.content_type"),
            (
                TusError::ChecksumMismatch {
                    algorithm: ChecksumAlgorithm::Sha1,
                },
                460,
                "tus.checksum_mismatch",
            ),
            (TusError::UploadTooLarge { max: 1 }, 413, "tus.too_large"),
            (
                TusError::ExceedsLength { length: 1 },
                413,
                "tus.exceeds_length",
            ),
            (
                TusError::OffsetMismatch {
                    current: 1,
                    sent: 2,
                },
                409,
                "tus.offset_mismatch",
            ),
            (TusError::Expired, 410, "tus.expired"),
            (TusError::FinalUpload, 403, "tus.final_upload"),
            (
                TusError::InvalidConcat(ConcatProblem::TooManyParts { max: 4 }),
                400,
                "tus.concat_invalid",
            ),
            (
                TusError::Locked {
                    retry_after_secs: 3,
                },
                423,
                "tus.locked",
            ),
            (
                TusError::InvalidMetadata(MetadataError::TooLarge { max: 4 }),
                400,
                "tus.metadata_too_large",
            ),
            (
                TusError::InvalidMetadata(MetadataError::Empty),
                400,
                "tus.metadata_invalid",
            ),
            (TusError::WholeFileDigestMissing, 500, "server.internal"),
        ];
        for (e, status, code) in cases {
            assert_eq!(status_code(&e), (status, code), "{e:?}");
            let code = e.problem().code;
            if let Some(name) = code.strip_prefix("tus.") {
                assert!(
                    name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                    "{code}"
                );
            }
        }
    }

    #[test]
    fn a_strangers_upload_is_indistinguishable_from_none() {
        assert_eq!(TusError::NotOwner.problem(), TusError::NotFound.problem());
        let mut a = HeaderMap::new();
        let mut b = HeaderMap::new();
        UploadError::from(TusError::NotOwner).headers(&mut a);
        UploadError::from(TusError::NotFound).headers(&mut b);
        assert_eq!(a, b);
    }

    #[test]
    fn tus_refusals_carry_the_headers_their_status_needs() {
        let mut h = HeaderMap::new();
        UploadError::from(TusError::OffsetMismatch {
            current: 42,
            sent: 7,
        })
        .headers(&mut h);
        assert_eq!(h[UPLOAD_OFFSET], "42");
        assert_eq!(h[TUS_RESUMABLE], "1.0.0");
        let mut h = HeaderMap::new();
        UploadError::from(TusError::UnsupportedVersion).headers(&mut h);
        assert_eq!(h[TUS_VERSION_HEADER], "1.0.0");
        let mut h = HeaderMap::new();
        UploadError::from(TusError::Locked {
            retry_after_secs: 9,
        })
        .headers(&mut h);
        assert_eq!(h[RETRY_AFTER], "9");
        // Two writers meeting in the at-rest layer answer like a busy lease.
        let e = UploadError::AtRest(crate::at_rest::AtRestError::ConcurrentWrite);
        assert_eq!(e.problem().status, StatusCode::LOCKED);
    }
}
