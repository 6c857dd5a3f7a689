//! Single tus header values: byte counts, `Tus-Resumable`, `Upload-Defer-Length`,
//! `Content-Type`, `Trailer`, and the values of the `OPTIONS` response.
//!
//! Every parser takes the raw bytes of one header value (`HeaderValue::as_bytes`) and either
//! returns a typed value or a [`TusError`] naming the header and the problem. Numbers are
//! strict: ASCII digits only, no sign, no whitespace, no leading zero except `0` itself,
//! at most `u64::MAX` (checked arithmetic, never a wrap). Tokens, OWS, lists and media-type
//! parameters use the shared [`crate::rfc9110`] syntax.
//!
//! Not here: whole requests (the `request` module, built on this one), limits that depend
//! on the upload (the `plan` module).

use http::{HeaderName, HeaderValue};

use crate::rfc9110::{self, trim_ows};
use crate::tus::error::{HeaderProblem, TusError, TusHeader};
use crate::tus::{TUS_VERSION, TusLimits};

/// `Tus-Resumable`
pub const TUS_RESUMABLE: HeaderName = HeaderName::from_static("tus-resumable");
/// `Tus-Version`
pub const TUS_VERSION_HEADER: HeaderName = HeaderName::from_static("tus-version");
/// `Tus-Extension`
pub const TUS_EXTENSION: HeaderName = HeaderName::from_static("tus-extension");
/// `Tus-Max-Size`
pub const TUS_MAX_SIZE: HeaderName = HeaderName::from_static("tus-max-size");
/// `Tus-Checksum-Algorithm`
pub const TUS_CHECKSUM_ALGORITHM: HeaderName = HeaderName::from_static("tus-checksum-algorithm");
/// `Upload-Offset`
pub const UPLOAD_OFFSET: HeaderName = HeaderName::from_static("upload-offset");
/// `Upload-Length`
pub const UPLOAD_LENGTH: HeaderName = HeaderName::from_static("upload-length");
/// `Upload-Defer-Length`
pub const UPLOAD_DEFER_LENGTH: HeaderName = HeaderName::from_static("upload-defer-length");
/// `Upload-Metadata`
pub const UPLOAD_METADATA: HeaderName = HeaderName::from_static("upload-metadata");
/// `Upload-Checksum`
pub const UPLOAD_CHECKSUM: HeaderName = HeaderName::from_static("upload-checksum");
/// `Upload-Concat`
pub const UPLOAD_CONCAT: HeaderName = HeaderName::from_static("upload-concat");
/// `Upload-Expires`
pub const UPLOAD_EXPIRES: HeaderName = HeaderName::from_static("upload-expires");
/// `Repr-Digest` (RFC 9530), sent on HEAD once an upload is complete.
pub const REPR_DIGEST: HeaderName = HeaderName::from_static("repr-digest");

/// The media type every PATCH body (and a POST body) must be sent as.
pub const OFFSET_OCTET_STREAM: &str = "application/offset+octet-stream";

/// `Tus-Extension` as sent: every extension Sallyport implements.
pub const TUS_EXTENSION_VALUE: &str = "creation,creation-with-upload,creation-defer-length,\
expiration,checksum,checksum-trailer,termination,concatenation";

/// `Tus-Checksum-Algorithm` as sent.
pub const TUS_CHECKSUM_ALGORITHM_VALUE: &str = "sha1,sha256,sha512,md5";

/// Checks `Tus-Resumable` (absent or not exactly `1.0.0` is refused). Not for `OPTIONS`,
/// where the server must ignore the header.
pub fn check_tus_resumable(value: Option<&[u8]>) -> Result<(), TusError> {
    match value {
        Some(v) if v == TUS_VERSION.as_bytes() => Ok(()),
        _ => Err(TusError::UnsupportedVersion),
    }
}

/// Parses a strict non-negative decimal (`Upload-Length`, `Upload-Offset`, `Content-Length`).
/// Limits are the caller's: a too-large `Upload-Length` is a 413, a too-large offset a 400.
pub fn parse_decimal(value: &[u8], header: TusHeader) -> Result<u64, TusError> {
    let bad = |problem| TusError::header(header, problem);
    let (&first, _) = value.split_first().ok_or(bad(HeaderProblem::Empty))?;
    if !value.iter().all(u8::is_ascii_digit) {
        return Err(bad(HeaderProblem::NotDigits));
    }
    if first == b'0' && value.len() > 1 {
        return Err(bad(HeaderProblem::LeadingZero));
    }
    value.iter().try_fold(0u64, |acc, &d| {
        acc.checked_mul(10)
            .and_then(|acc| acc.checked_add(u64::from(d - b'0')))
            .ok_or(bad(HeaderProblem::OutOfRange))
    })
}

/// Checks `Upload-Defer-Length`, whose only allowed value is `1`.
pub fn check_defer_length(value: &[u8]) -> Result<(), TusError> {
    if value == b"1" {
        Ok(())
    } else {
        Err(TusError::header(
            TusHeader::UploadDeferLength,
            HeaderProblem::NotAllowed,
        ))
    }
}

/// Checks that `Content-Type` is `application/offset+octet-stream`.
///
/// Type and subtype compare case-insensitively (RFC 9110 §8.3.1). Parameters are allowed
/// and ignored when well-formed (`; name=token` or `; name="quoted"`): the media type
/// defines none, RFC 9110 permits them, and ignoring them loses nothing. Anything else —
/// absent, another type, malformed parameters — is a 415.
pub fn check_offset_octet_stream(value: Option<&[u8]>) -> Result<(), TusError> {
    let value = value.ok_or(TusError::UnsupportedMediaType)?;
    let (essence, params) = match value.iter().position(|&b| b == b';') {
        Some(i) => (&value[..i], Some(&value[i + 1..])),
        None => (value, None),
    };
    if !trim_ows(essence).eq_ignore_ascii_case(OFFSET_OCTET_STREAM.as_bytes()) {
        return Err(TusError::UnsupportedMediaType);
    }
    match params {
        Some(params) if !rfc9110::parameters_well_formed(params) => {
            Err(TusError::UnsupportedMediaType)
        }
        _ => Ok(()),
    }
}

/// Whether a `Trailer` header value announces `Upload-Checksum`. The value is a
/// comma-separated list of field names (RFC 9110 §6.6.2); other names are ignored, empty
/// list elements are allowed, anything that is not a field name is refused.
pub fn trailer_announces_checksum(value: &[u8]) -> Result<bool, TusError> {
    let mut found = false;
    for name in rfc9110::list_elements(value) {
        if !rfc9110::is_token(name) {
            return Err(TusError::header(
                TusHeader::Trailer,
                HeaderProblem::Malformed,
            ));
        }
        found |= name.eq_ignore_ascii_case(b"upload-checksum");
    }
    Ok(found)
}

/// The headers of the `OPTIONS` response (status 204, or 200 for a CORS preflight).
pub fn options_headers(limits: &TusLimits) -> Vec<(HeaderName, HeaderValue)> {
    vec![
        (TUS_RESUMABLE, HeaderValue::from_static(TUS_VERSION)),
        (TUS_VERSION_HEADER, HeaderValue::from_static(TUS_VERSION)),
        (TUS_EXTENSION, HeaderValue::from_static(TUS_EXTENSION_VALUE)),
        (
            TUS_CHECKSUM_ALGORITHM,
            HeaderValue::from_static(TUS_CHECKSUM_ALGORITHM_VALUE),
        ),
        (TUS_MAX_SIZE, HeaderValue::from(limits.max_size)),
    ]
}

/// The header every tus response but `OPTIONS` carries.
pub fn tus_resumable_header() -> (HeaderName, HeaderValue) {
    (TUS_RESUMABLE, HeaderValue::from_static(TUS_VERSION))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn num(s: &str) -> Result<u64, TusError> {
        parse_decimal(s.as_bytes(), TusHeader::UploadOffset)
    }

    fn problem(s: &str) -> HeaderProblem {
        match num(s) {
            Err(TusError::InvalidHeader { problem, .. }) => problem,
            other => panic!("{s:?} gave {other:?}"),
        }
    }

    #[test]
    fn decimals_accept_only_plain_digits() {
        assert_eq!(num("0"), Ok(0));
        assert_eq!(num("1"), Ok(1));
        assert_eq!(num("1048576"), Ok(1_048_576));
        assert_eq!(num("18446744073709551615"), Ok(u64::MAX));
        assert_eq!(problem(""), HeaderProblem::Empty);
        for bad in [
            "+1", "-1", " 1", "1 ", "1\t", "0x10", "1e3", "1_000", "１", "1.0",
        ] {
            assert_eq!(problem(bad), HeaderProblem::NotDigits, "{bad:?}");
        }
        assert_eq!(problem("00"), HeaderProblem::LeadingZero);
        assert_eq!(problem("01"), HeaderProblem::LeadingZero);
        assert_eq!(problem("18446744073709551616"), HeaderProblem::OutOfRange);
        assert_eq!(
            problem("99999999999999999999999"),
            HeaderProblem::OutOfRange
        );
    }

    #[test]
    fn decimal_every_prefix_never_panics() {
        let value = "18446744073709551615";
        for end in 0..=value.len() {
            let prefix = &value[..end];
            let parsed = num(prefix);
            if end == 0 {
                assert!(parsed.is_err());
            } else {
                assert_eq!(parsed, Ok(prefix.parse::<u64>().unwrap_or(u64::MAX)));
            }
        }
    }

    #[test]
    fn tus_resumable_only_1_0_0() {
        assert_eq!(check_tus_resumable(Some(b"1.0.0")), Ok(()));
        for bad in [
            &b""[..],
            b"1.0",
            b"1.0.0 ",
            b"0.2.2",
            b"1.0.0,0.2.2",
            b"2.0.0",
        ] {
            assert_eq!(
                check_tus_resumable(Some(bad)),
                Err(TusError::UnsupportedVersion)
            );
        }
        assert_eq!(check_tus_resumable(None), Err(TusError::UnsupportedVersion));
    }

    #[test]
    fn defer_length_only_1() {
        assert_eq!(check_defer_length(b"1"), Ok(()));
        for bad in [&b""[..], b"0", b"true", b"01", b" 1", b"2"] {
            assert!(check_defer_length(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn content_type_checks() {
        let ok = |s: &str| check_offset_octet_stream(Some(s.as_bytes()));
        assert_eq!(ok("application/offset+octet-stream"), Ok(()));
        assert_eq!(ok("Application/Offset+Octet-Stream"), Ok(()));
        assert_eq!(ok(" application/offset+octet-stream "), Ok(()));
        assert_eq!(
            ok("application/offset+octet-stream; charset=binary"),
            Ok(())
        );
        assert_eq!(
            ok("application/offset+octet-stream;a=\"q;\\\"x\";b=c"),
            Ok(())
        );
        assert_eq!(ok("application/offset+octet-stream;"), Ok(()));
        for bad in [
            "",
            "application/octet-stream",
            "application/offset+octet-stream-x",
            "application/offset+octet-stream; =x",
            "application/offset+octet-stream; a",
            "application/offset+octet-stream; a=\"unterminated",
            "application/offset+octet-stream; a=b c",
            "text/plain; x=application/offset+octet-stream",
        ] {
            assert_eq!(ok(bad), Err(TusError::UnsupportedMediaType), "{bad:?}");
        }
        assert_eq!(
            check_offset_octet_stream(None),
            Err(TusError::UnsupportedMediaType)
        );
    }

    #[test]
    fn content_type_every_prefix_never_panics() {
        let value = b"application/offset+octet-stream; a=\"x\\\"y\"; b=c";
        for end in 0..=value.len() {
            let _ = check_offset_octet_stream(Some(&value[..end]));
        }
        assert!(check_offset_octet_stream(Some(value)).is_ok());
    }

    #[test]
    fn trailer_announcement() {
        assert_eq!(trailer_announces_checksum(b"Upload-Checksum"), Ok(true));
        assert_eq!(
            trailer_announces_checksum(b"x-foo , upload-checksum,"),
            Ok(true)
        );
        assert_eq!(trailer_announces_checksum(b"x-foo"), Ok(false));
        assert_eq!(trailer_announces_checksum(b""), Ok(false));
        assert!(trailer_announces_checksum(b"upload checksum").is_err());
        let value = b"x-a, Upload-Checksum";
        for end in 0..=value.len() {
            let _ = trailer_announces_checksum(&value[..end]);
        }
    }

    #[test]
    fn options_values() {
        let limits = TusLimits::default();
        let headers = options_headers(&limits);
        let get = |name: &HeaderName| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.to_str().unwrap_or("").to_owned())
        };
        assert_eq!(get(&TUS_VERSION_HEADER).as_deref(), Some("1.0.0"));
        assert_eq!(get(&TUS_MAX_SIZE), Some(limits.max_size.to_string()));
        let ext = get(&TUS_EXTENSION).unwrap_or_default();
        for e in [
            "creation",
            "creation-with-upload",
            "creation-defer-length",
            "expiration",
            "checksum",
            "checksum-trailer",
            "termination",
            "concatenation",
        ] {
            assert!(ext.split(',').any(|x| x == e), "{e}");
        }
        assert_eq!(ext.split(',').count(), 8);
        assert_eq!(
            get(&TUS_CHECKSUM_ALGORITHM).as_deref(),
            Some("sha1,sha256,sha512,md5")
        );
    }

    proptest! {
        #[test]
        fn decimal_round_trip(n in any::<u64>()) {
            prop_assert_eq!(num(&n.to_string()), Ok(n));
        }

        #[test]
        fn decimal_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..32)) {
            let _ = parse_decimal(&bytes, TusHeader::UploadLength);
        }

        #[test]
        fn content_type_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = check_offset_octet_stream(Some(&bytes));
        }
    }
}
