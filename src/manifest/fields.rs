//! The validated values of a manifest: member names, digests, media types, FHIR resource
//! types, profile names. Each is parsed once, from a string the JSON layer has already
//! bounded, and is then known good.

use std::fmt;

use super::error::{FieldPath, ManifestError, Problem};
use super::json::{self, Json};
use crate::signed_link::{FileNameError, ResponseFileName};

/// Maximum bytes of a [`MemberName`].
pub const MAX_NAME_LEN: usize = crate::signed_link::MAX_FILE_NAME_LEN;
/// Maximum bytes of a [`MediaType`] (each of type and subtype: 127, RFC 6838).
pub const MAX_MEDIA_TYPE_LEN: usize = 255;
/// Maximum bytes of a [`ResourceType`].
pub const MAX_RESOURCE_TYPE_LEN: usize = 64;
/// Maximum bytes of a [`ProfileName`].
pub const MAX_PROFILE_LEN: usize = 64;
/// The media type whose members carry an `ndjson` object.
pub const FHIR_NDJSON: &str = "application/fhir+ndjson";

/// A member's logical name: `[A-Za-z0-9._-]`, 1–128 bytes, starting with a letter or
/// digit, not ending with `.`, its stem not a Windows device name. The same rule as a
/// download file name (`signed_link::ResponseFileName`), so any member can be served, and
/// saved on any partner system, under its name. Logical, never a patient's name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MemberName(String);

/// A SHA-256 digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sha256([u8; 32]);

/// A lowercase `type/subtype` media type without parameters (RFC 6838 restricted names).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MediaType(String);

/// A FHIR resource type name: `[A-Z][A-Za-z]{0,63}` (`Patient`, `Observation`). Whether
/// the type exists in a FHIR release is for a profile to decide, not the format.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResourceType(String);

/// A profile name: `[a-z0-9][a-z0-9._-]{0,63}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProfileName(String);

// === impl MemberName ===

impl MemberName {
    pub(crate) fn parse(value: Json, path: &FieldPath) -> Result<Self, ManifestError> {
        let s = json::string(value, path, MAX_NAME_LEN, |b| {
            b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')
        })?;
        // A member name is exactly a name it can be downloaded under: one rule, the
        // response file name's.
        ResponseFileName::new(&s).map_err(|e| {
            let problem = match e {
                FileNameError::Empty => Problem::Empty,
                FileNameError::TooLong => Problem::TooLong { max: MAX_NAME_LEN },
                FileNameError::Character => Problem::Character,
                FileNameError::Leading => Problem::NameStart,
                FileNameError::TrailingDot => Problem::NameEnd,
                FileNameError::Reserved => Problem::NameReserved,
            };
            ManifestError::at(path, problem)
        })?;
        Ok(Self(s))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key under which names collide: ASCII lowercase.
    pub(crate) fn folded(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

impl fmt::Display for MemberName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

// === impl Sha256 ===

impl Sha256 {
    /// Wrap 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The SHA-256 of `data`.
    pub fn of(data: &[u8]) -> Self {
        use sha2::Digest;
        Self(sha2::Sha256::digest(data).into())
    }

    pub(crate) fn parse(value: Json, path: &FieldPath) -> Result<Self, ManifestError> {
        let form = || ManifestError::at(path, Problem::Sha256Form);
        let Json::String(s) = value else {
            return Err(json::wrong_type(path, super::error::JsonType::String));
        };
        if s.len() != 64 || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(form());
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(&s, &mut out).map_err(|_| form())?;
        Ok(Self(out))
    }

    /// The 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// 64 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256({})", self.to_hex())
    }
}

impl fmt::Display for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

// === impl MediaType ===

impl MediaType {
    pub(crate) fn parse(value: Json, path: &FieldPath) -> Result<Self, ManifestError> {
        let s = json::string(value, path, MAX_MEDIA_TYPE_LEN, json::visible)?;
        let ok = match s.split_once('/') {
            Some((t, sub)) => restricted_name(t) && restricted_name(sub),
            None => false,
        };
        if !ok {
            return Err(ManifestError::at(path, Problem::MediaTypeForm));
        }
        Ok(Self(s))
    }

    /// The media type.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is `application/fhir+ndjson`.
    pub fn is_fhir_ndjson(&self) -> bool {
        self.0 == FHIR_NDJSON
    }
}

/// RFC 6838 §4.2 `restricted-name`, lowercase only: one form, so comparison is bytewise.
fn restricted_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 127
        && matches!(b[0], b'a'..=b'z' | b'0'..=b'9')
        && b.iter().all(|c| {
            matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'!' | b'#' | b'$' | b'&' | b'^' | b'_' | b'.' | b'+' | b'-')
        })
}

impl fmt::Display for MediaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

// === impl ResourceType ===

impl ResourceType {
    pub(crate) fn parse(value: Json, path: &FieldPath) -> Result<Self, ManifestError> {
        let s = json::string(value, path, MAX_RESOURCE_TYPE_LEN, |b| {
            b.is_ascii_alphabetic()
        })?;
        s.parse().map_err(|p| ManifestError::at(path, p))
    }

    /// The resource type name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ResourceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The whole rule, for a name that does not come from a document (a configured profile's
/// `resources`); `ResourceType::parse` reads the JSON string and then applies this.
impl std::str::FromStr for ResourceType {
    type Err = Problem;

    fn from_str(s: &str) -> Result<Self, Problem> {
        if s.is_empty() {
            return Err(Problem::Empty);
        }
        if s.len() > MAX_RESOURCE_TYPE_LEN {
            return Err(Problem::TooLong {
                max: MAX_RESOURCE_TYPE_LEN,
            });
        }
        if !s.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(Problem::Character);
        }
        if !s.bytes().next().is_some_and(|b| b.is_ascii_uppercase()) {
            return Err(Problem::ResourceTypeForm);
        }
        Ok(Self(s.to_owned()))
    }
}

// === impl ProfileName ===

impl ProfileName {
    pub(crate) fn parse(value: Json, path: &FieldPath) -> Result<Self, ManifestError> {
        let s = json::string(value, path, MAX_PROFILE_LEN, profile_byte)?;
        s.parse().map_err(|p| ManifestError::at(path, p))
    }

    /// The profile name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The whole rule, for a name that does not come from a document (a configured
/// `[[profiles]]` name); `ProfileName::parse` reads the JSON string and then applies this.
impl std::str::FromStr for ProfileName {
    type Err = Problem;

    fn from_str(s: &str) -> Result<Self, Problem> {
        if s.is_empty() {
            return Err(Problem::Empty);
        }
        if s.len() > MAX_PROFILE_LEN {
            return Err(Problem::TooLong {
                max: MAX_PROFILE_LEN,
            });
        }
        if !s.bytes().all(profile_byte)
            || !s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        {
            return Err(Problem::Character);
        }
        Ok(Self(s.to_owned()))
    }
}

/// The bytes a profile name may hold: `[a-z0-9._-]`.
fn profile_byte(b: u8) -> bool {
    matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-')
}
