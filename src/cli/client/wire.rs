//! What a server tells the client, parsed and bounded: `Repr-Digest` (RFC 9530),
//! `Content-Range` (RFC 9110 §14.4), the `Content-Disposition` file name, and the NDJSON
//! record count of downloaded bytes.
//!
//! Pure: bytes in, typed values out, no I/O. Every parser refuses what it does not
//! understand rather than guessing, because the answers decide whether a file is renamed
//! to its final name (a digest we cannot read is a file we cannot verify).
//!
//! Not here: sending requests or reading files (`download`, `upload`).

use base64::Engine as _;

use crate::signed_link::ResponseFileName;

/// Why a `Repr-Digest` value gives no usable SHA-256.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// The field has no `sha-256` member.
    #[error("the server sent no sha-256 Repr-Digest")]
    Missing,
    /// `sha-256` appears twice (a dictionary whose readers could disagree).
    #[error("the server's Repr-Digest names sha-256 twice")]
    Repeated,
    /// The member is not a byte sequence of canonical base64 holding 32 bytes.
    #[error("the server's sha-256 Repr-Digest is malformed")]
    Malformed,
}

/// The SHA-256 in a `Repr-Digest` field value (`sha-256=:<base64>:`, other algorithms and
/// parameters allowed beside it and ignored).
pub fn repr_digest_sha256(value: &[u8]) -> Result<[u8; 32], DigestError> {
    let mut found = None;
    for member in crate::rfc9110::list_elements(value) {
        let Some(eq) = member.iter().position(|&b| b == b'=') else {
            continue;
        };
        if &member[..eq] != b"sha-256" {
            continue;
        }
        if found.is_some() {
            return Err(DigestError::Repeated);
        }
        let rest = &member[eq + 1..];
        // The byte sequence, then optional `;parameters`.
        let seq = match rest.iter().position(|&b| b == b';') {
            Some(i) => &rest[..i],
            None => rest,
        };
        let b64 = seq
            .strip_prefix(b":")
            .and_then(|s| s.strip_suffix(b":"))
            .ok_or(DigestError::Malformed)?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| DigestError::Malformed)?;
        found = Some(<[u8; 32]>::try_from(bytes).map_err(|_| DigestError::Malformed)?);
    }
    found.ok_or(DigestError::Missing)
}

/// A parsed `Content-Range` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentRange {
    /// `bytes first-last/complete`.
    Bytes {
        /// First byte position.
        first: u64,
        /// Last byte position (inclusive).
        last: u64,
        /// The representation's length.
        complete: u64,
    },
    /// `bytes */complete` (a 416's answer).
    Unsatisfied {
        /// The representation's length.
        complete: u64,
    },
}

/// Parses `Content-Range`. A `*` length (unknown), `last < first`, `last >= complete` and
/// anything not exactly this grammar are refused (`None`).
pub fn content_range(value: &[u8]) -> Option<ContentRange> {
    let rest = value.strip_prefix(b"bytes ")?;
    let (range, complete) = split_once(rest, b'/')?;
    let complete = digits(complete)?;
    if range == b"*" {
        return Some(ContentRange::Unsatisfied { complete });
    }
    let (first, last) = split_once(range, b'-')?;
    let (first, last) = (digits(first)?, digits(last)?);
    (first <= last && last < complete).then_some(ContentRange::Bytes {
        first,
        last,
        complete,
    })
}

/// The `filename` parameter of a `Content-Disposition` value, if it is a name the gateway
/// could have sent (`ResponseFileName`: `[A-Za-z0-9._-]`, no leading dot, at most 128
/// bytes, no device names). Anything else — a path, quotes inside, `filename*` only — is
/// `None`, and the caller falls back to a name of its own; a server never chooses where
/// a file lands outside the output directory.
pub fn disposition_file_name(value: &[u8]) -> Option<ResponseFileName> {
    let text = std::str::from_utf8(value).ok()?;
    let mut found = None;
    for param in text.split(';').skip(1) {
        let (key, val) = param.trim().split_once('=')?;
        if !key.trim().eq_ignore_ascii_case("filename") {
            continue;
        }
        if found.is_some() {
            return None;
        }
        let val = val.trim();
        let val = val
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(val);
        found = Some(ResponseFileName::new(val).ok()?);
    }
    found
}

/// Counts NDJSON records as the gateway's batch checker does: non-blank lines (a line of
/// only spaces, tabs or `\r` is blank), the last one counted even without a final newline.
/// Fed in pieces of any size; the count does not depend on where the pieces split.
#[derive(Debug, Default, Clone)]
pub struct RecordCounter {
    records: u64,
    line_has_content: bool,
}

impl RecordCounter {
    /// Feeds the next bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            match b {
                b'\n' => {
                    if self.line_has_content {
                        self.records += 1;
                    }
                    self.line_has_content = false;
                }
                b' ' | b'\t' | b'\r' => {}
                _ => self.line_has_content = true,
            }
        }
    }

    /// The number of records in everything fed.
    pub fn finish(&self) -> u64 {
        self.records + u64::from(self.line_has_content)
    }
}

/// Lowercase hex of a SHA-256.
pub fn hex32(d: &[u8; 32]) -> String {
    hex::encode(d)
}

fn split_once(s: &[u8], sep: u8) -> Option<(&[u8], &[u8])> {
    let i = s.iter().position(|&b| b == sep)?;
    Some((&s[..i], &s[i + 1..]))
}

/// ASCII digits only, no sign or space, at most `u64::MAX`.
fn digits(s: &[u8]) -> Option<u64> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(s).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const D: &str = "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:";

    #[test]
    fn repr_digest_forms() {
        let empty_sha =
            hex::decode("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
                .unwrap();
        assert_eq!(
            repr_digest_sha256(D.as_bytes()).unwrap().to_vec(),
            empty_sha
        );
        let with_others = format!("sha-512=:AAAA:, {D};p=1");
        assert_eq!(
            repr_digest_sha256(with_others.as_bytes()).unwrap().to_vec(),
            empty_sha
        );
        assert_eq!(repr_digest_sha256(b""), Err(DigestError::Missing));
        assert_eq!(
            repr_digest_sha256(b"sha-512=:AAAA:"),
            Err(DigestError::Missing)
        );
        assert_eq!(
            repr_digest_sha256(format!("{D}, {D}").as_bytes()),
            Err(DigestError::Repeated)
        );
        for bad in [
            "sha-256=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
            "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU:",
            "sha-256=:AAAA:",
            "sha-256=:",
            "sha-256=::",
        ] {
            assert_eq!(
                repr_digest_sha256(bad.as_bytes()),
                Err(DigestError::Malformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn content_range_forms() {
        assert_eq!(
            content_range(b"bytes 10-19/100"),
            Some(ContentRange::Bytes {
                first: 10,
                last: 19,
                complete: 100
            })
        );
        assert_eq!(
            content_range(b"bytes */100"),
            Some(ContentRange::Unsatisfied { complete: 100 })
        );
        for bad in [
            &b"bytes 10-19/*"[..],
            b"bytes 19-10/100",
            b"bytes 10-100/100",
            b"bytes -1-5/10",
            b"bytes 1-5/ 10",
            b"items 1-5/10",
            b"bytes 1-5/99999999999999999999999",
            b"",
        ] {
            assert_eq!(
                content_range(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn disposition_names() {
        let n = disposition_file_name(b"attachment; filename=\"Observation.ndjson\"").unwrap();
        assert_eq!(n.as_str(), "Observation.ndjson");
        assert_eq!(
            disposition_file_name(b"attachment; filename=a.txt")
                .unwrap()
                .as_str(),
            "a.txt"
        );
        for bad in [
            &b"attachment"[..],
            b"attachment; filename=\"../etc/passwd\"",
            b"attachment; filename=\".hidden\"",
            b"attachment; filename=\"a/b\"",
            b"attachment; filename=\"NUL.txt\"",
            b"attachment; filename=\"a\"; filename=\"b\"",
            b"attachment; filename*=UTF-8''a.txt",
            b"attachment; filename=\"\xff\"",
        ] {
            assert!(
                disposition_file_name(bad).is_none(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn records_are_non_blank_lines() {
        let count = |s: &str| {
            let mut c = RecordCounter::default();
            c.update(s.as_bytes());
            c.finish()
        };
        assert_eq!(count(""), 0);
        assert_eq!(count("{}\n"), 1);
        assert_eq!(count("{}"), 1);
        assert_eq!(count("{}\n\n \r\n{}\r\n{}"), 3);
        assert_eq!(count("\n\n"), 0);
    }

    proptest! {
        /// The count does not depend on how the bytes are split into pieces.
        #[test]
        fn record_count_is_split_independent(
            text in "[a{} \\r\\n\\t]{0,200}",
            cuts in proptest::collection::vec(0usize..200, 0..6),
        ) {
            let bytes = text.as_bytes();
            let mut whole = RecordCounter::default();
            whole.update(bytes);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(bytes.len())).collect();
            cuts.sort_unstable();
            let mut pieces = RecordCounter::default();
            let mut at = 0;
            for c in cuts {
                pieces.update(&bytes[at..c]);
                at = c;
            }
            pieces.update(&bytes[at..]);
            prop_assert_eq!(whole.finish(), pieces.finish());
            let lines = text.split('\n').filter(|l| !l.trim_matches([' ', '\t', '\r']).is_empty()).count();
            prop_assert_eq!(whole.finish(), lines as u64);
        }

        /// Any bytes: the parsers answer, never panic.
        #[test]
        fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = repr_digest_sha256(&bytes);
            let _ = content_range(&bytes);
            let _ = disposition_file_name(&bytes);
        }
    }
}
