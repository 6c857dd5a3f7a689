//! The file name a download is served under (`Content-Disposition: attachment`).
//!
//! **Decision: the file name is not in the link.** A publisher chooses it, and a file name
//! can be PHI ("smith-john-hiv-panel.ndjson"); the design rule is no PHI in URLs. Putting a
//! plain hash of it in the URL would not help (names are guessable, so the hash is a
//! dictionary lookup away), and making the signature cover a value only the grant record
//! holds would force a state-store read before the cheap signature check, handing forged
//! links a way to load the store. So the name lives only in the grant record, which is
//! server-side state the link's signed grant id points to; it is as authentic as the grant
//! itself. This type validates it once, when the grant is created, and the download
//! handler formats the header from it.
//!
//! The accepted alphabet is deliberately small — ASCII letters, digits, `.`, `_`, `-` —
//! so the header needs no quoting or RFC 8187 encoding, and no client can be tricked by
//! path separators, control characters, quotes, Unicode look-alikes or bidi overrides.
//! The name starts with a letter or digit (no hidden files, no `..`), does not end with a
//! dot (Windows strips it), is at most 128 bytes, and its stem is not a reserved Windows
//! device name (`CON`, `NUL`, `COM1`…).
//!
//! Because a name may be PHI, `Debug` prints only its length and there is no `Display`.

use std::fmt;

/// Maximum length of a [`ResponseFileName`] in bytes.
pub const MAX_FILE_NAME_LEN: usize = 128;

/// A validated, header-safe download file name. May be PHI: never logged.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ResponseFileName(String);

/// Why a string is not an acceptable download file name. Carries no part of the name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FileNameError {
    /// The name is empty.
    #[error("a file name must not be empty")]
    Empty,
    /// Longer than 128 bytes.
    #[error("a file name has at most 128 bytes")]
    TooLong,
    /// A character outside ASCII letters, digits, '.', '_' and '-'.
    #[error("a file name uses only ASCII letters, digits, '.', '_' and '-'")]
    Character,
    /// The first character is not a letter or digit.
    #[error("a file name starts with a letter or digit")]
    Leading,
    /// The name ends with '.'.
    #[error("a file name must not end with '.'")]
    TrailingDot,
    /// The stem is a reserved device name on Windows.
    #[error("a file name must not be a reserved device name (CON, NUL, COM1, ...)")]
    Reserved,
}

impl ResponseFileName {
    /// Validate a file name.
    pub fn new(name: &str) -> Result<Self, FileNameError> {
        let bytes = name.as_bytes();
        if bytes.is_empty() {
            return Err(FileNameError::Empty);
        }
        if bytes.len() > MAX_FILE_NAME_LEN {
            return Err(FileNameError::TooLong);
        }
        if !bytes
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
        {
            return Err(FileNameError::Character);
        }
        if !bytes[0].is_ascii_alphanumeric() {
            return Err(FileNameError::Leading);
        }
        if bytes.ends_with(b".") {
            return Err(FileNameError::TrailingDot);
        }
        let stem = name.split('.').next().unwrap_or(name);
        if is_reserved_device_name(stem) {
            return Err(FileNameError::Reserved);
        }
        Ok(Self(name.to_owned()))
    }

    /// The name (PHI: do not log).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The `Content-Disposition` header value: `attachment; filename="NAME"`. The alphabet
    /// needs no escaping.
    pub fn content_disposition(&self) -> String {
        format!("attachment; filename=\"{}\"", self.0)
    }
}

fn is_reserved_device_name(stem: &str) -> bool {
    let upper = stem.to_ascii_uppercase();
    match upper.as_str() {
        "CON" | "PRN" | "AUX" | "NUL" => true,
        _ => {
            let b = upper.as_bytes();
            b.len() == 4
                && (b.starts_with(b"COM") || b.starts_with(b"LPT"))
                && (b'1'..=b'9').contains(&b[3])
        }
    }
}

impl fmt::Debug for ResponseFileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ResponseFileName(<{} bytes>)", self.0.len())
    }
}

impl serde::Serialize for ResponseFileName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for ResponseFileName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::new(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_export_names() {
        for ok in [
            "Observation.ndjson",
            "Patient-1.ndjson",
            "export_2025-01-31.tar.gz",
            "a",
            "0",
            "COM10.txt",
            "console.log",
        ] {
            let n = ResponseFileName::new(ok).expect(ok);
            assert_eq!(n.as_str(), ok);
        }
        let long = "a".repeat(MAX_FILE_NAME_LEN);
        assert!(ResponseFileName::new(&long).is_ok());
    }

    #[test]
    fn rejects_unsafe_names() {
        let cases: &[(&str, FileNameError)] = &[
            ("", FileNameError::Empty),
            ("../etc/passwd", FileNameError::Character),
            ("a/b", FileNameError::Character),
            ("a\\b", FileNameError::Character),
            ("a\0b", FileNameError::Character),
            ("a\r\nSet-Cookie: x", FileNameError::Character),
            ("a\tb", FileNameError::Character),
            ("a b", FileNameError::Character),
            ("a\"b", FileNameError::Character),
            ("a;b", FileNameError::Character),
            ("a%2fb", FileNameError::Character),
            ("résumé.pdf", FileNameError::Character),
            ("evil\u{202e}fdp.exe", FileNameError::Character),
            (".hidden", FileNameError::Leading),
            ("..", FileNameError::Leading),
            ("-rf", FileNameError::Leading),
            ("_x", FileNameError::Leading),
            ("name.", FileNameError::TrailingDot),
            ("CON", FileNameError::Reserved),
            ("nul.txt", FileNameError::Reserved),
            ("Com1.ndjson", FileNameError::Reserved),
            ("lpt9", FileNameError::Reserved),
        ];
        for (name, want) in cases {
            assert_eq!(ResponseFileName::new(name), Err(*want), "{name:?}");
        }
        let too_long = "a".repeat(MAX_FILE_NAME_LEN + 1);
        assert_eq!(
            ResponseFileName::new(&too_long),
            Err(FileNameError::TooLong)
        );
    }

    #[test]
    fn header_and_debug() {
        let n = ResponseFileName::new("Observation.ndjson").expect("valid");
        assert_eq!(
            n.content_disposition(),
            "attachment; filename=\"Observation.ndjson\""
        );
        let debug = format!("{n:?}");
        assert!(!debug.contains("Observation"), "{debug}");
        assert!(debug.contains("18 bytes"), "{debug}");
    }

    #[test]
    fn serde_validates() {
        let n: ResponseFileName = serde_json::from_str("\"a.ndjson\"").expect("valid");
        assert_eq!(
            serde_json::to_string(&n).expect("serialises"),
            "\"a.ndjson\""
        );
        assert!(serde_json::from_str::<ResponseFileName>("\"../x\"").is_err());
    }
}
