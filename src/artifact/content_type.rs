//! The media type an artifact is served with.
//!
//! Accepted: `type "/" subtype`, both RFC 9110 tokens, optionally followed by exactly one
//! parameter, `charset=<token>`. Type, subtype and the parameter name are lowercased; no
//! other parameters, quoting or whitespace beyond the one `"; "` are accepted, so the
//! stored value can be put into a header (and a multipart part header) as it is. NDJSON
//! files (`.ndjson`) default to `application/fhir+ndjson` (FHIR Bulk Data); any other file
//! needs an explicit type.

use std::fmt;
use std::str::FromStr;

/// Longest accepted media type.
pub const MAX_CONTENT_TYPE_LEN: usize = 127;
/// The FHIR Bulk Data NDJSON media type.
pub const FHIR_NDJSON: &str = "application/fhir+ndjson";

/// A validated media type.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ContentType(String);

/// Why a string is not an acceptable media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ContentTypeError {
    /// Empty or longer than 127 bytes.
    #[error("a content type has 1 to 127 characters")]
    Length,
    /// Not `type/subtype` made of RFC 9110 token characters.
    #[error("a content type is type/subtype, both made of token characters")]
    Syntax,
    /// A parameter other than `charset`.
    #[error("the only parameter a content type may have is charset")]
    Parameter,
}

impl ContentType {
    /// The header value.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The default for a file name: `application/fhir+ndjson` for `.ndjson`.
    pub fn default_for(file_name: &str) -> Option<Self> {
        let lower = file_name.to_ascii_lowercase();
        lower
            .ends_with(".ndjson")
            .then(|| Self(FHIR_NDJSON.to_owned()))
    }
}

/// An RFC 9110 token (the one definition is [`crate::rfc9110::is_token`]).
fn is_token(s: &str) -> bool {
    crate::rfc9110::is_token(s.as_bytes())
}

impl FromStr for ContentType {
    type Err = ContentTypeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() || s.len() > MAX_CONTENT_TYPE_LEN {
            return Err(ContentTypeError::Length);
        }
        let (media, param) = match s.split_once(';') {
            Some((m, p)) => (m, Some(p)),
            None => (s, None),
        };
        let (ty, sub) = media.split_once('/').ok_or(ContentTypeError::Syntax)?;
        if !is_token(ty) || !is_token(sub) {
            return Err(ContentTypeError::Syntax);
        }
        let mut out = format!("{}/{}", ty.to_ascii_lowercase(), sub.to_ascii_lowercase());
        if let Some(p) = param {
            let p = p.strip_prefix(' ').unwrap_or(p);
            let (name, value) = p.split_once('=').ok_or(ContentTypeError::Parameter)?;
            if !name.eq_ignore_ascii_case("charset") {
                return Err(ContentTypeError::Parameter);
            }
            if !is_token(value) {
                return Err(ContentTypeError::Syntax);
            }
            out.push_str("; charset=");
            out.push_str(value);
        }
        Ok(Self(out))
    }
}

impl fmt::Display for ContentType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ContentType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentType({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_normalises() {
        for (input, out) in [
            ("application/fhir+ndjson", "application/fhir+ndjson"),
            ("Application/Octet-Stream", "application/octet-stream"),
            ("text/csv; charset=utf-8", "text/csv; charset=utf-8"),
            ("text/csv;Charset=UTF-8", "text/csv; charset=UTF-8"),
            ("application/vnd.a+zip", "application/vnd.a+zip"),
        ] {
            assert_eq!(input.parse::<ContentType>().unwrap().as_str(), out);
        }
    }

    #[test]
    fn refuses_everything_else() {
        for (input, e) in [
            ("", ContentTypeError::Length),
            ("text", ContentTypeError::Syntax),
            ("text/", ContentTypeError::Syntax),
            ("/csv", ContentTypeError::Syntax),
            ("text/csv extra", ContentTypeError::Syntax),
            ("text/c\"sv", ContentTypeError::Syntax),
            ("text/csv\r\nX-Evil: 1", ContentTypeError::Syntax),
            ("text/csv; boundary=x", ContentTypeError::Parameter),
            ("text/csv; charset=\"utf-8\"", ContentTypeError::Syntax),
            ("text/csv; charset=utf-8; q=1", ContentTypeError::Syntax),
            ("text/csv;", ContentTypeError::Parameter),
            ("text/plain/x", ContentTypeError::Syntax),
        ] {
            assert_eq!(input.parse::<ContentType>(), Err(e), "{input:?}");
        }
        assert_eq!(
            format!("a/{}", "b".repeat(200)).parse::<ContentType>(),
            Err(ContentTypeError::Length)
        );
    }

    #[test]
    fn ndjson_default() {
        assert_eq!(
            ContentType::default_for("Observation.NDJSON")
                .unwrap()
                .as_str(),
            FHIR_NDJSON
        );
        assert!(ContentType::default_for("report.pdf").is_none());
    }
}
