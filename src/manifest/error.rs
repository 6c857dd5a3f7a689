//! Why a manifest or a provenance record is refused: where, and what is wrong.
//!
//! An error names a place — a JSON-pointer-like path such as `/members/3/sha256`, or a line
//! and column when the bytes are not JSON at all — and a [`Problem`]. It never quotes a
//! value: a member name or a filter may be PHI however often the format says it must not
//! be. The only input text an error may carry is the name of an unknown field, and only
//! when that name is short and plain (`[A-Za-z0-9_]`, at most 32 bytes); any other key is
//! shown as `<key>`. `Display` texts are static apart from paths, numbers and limits.

use std::fmt;

/// Why [`super::Manifest::parse`] or [`super::Provenance::parse`] refused the bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestError {
    location: Location,
    problem: Problem,
}

/// Where in the document a [`ManifestError`] was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// The document as a whole (its size, its encoding).
    Document,
    /// A place in the bytes that are not well-formed JSON (1-based, as serde_json counts).
    Position {
        /// Line, from 1.
        line: usize,
        /// Column, from 1.
        column: usize,
    },
    /// A value in the document.
    Field(FieldPath),
}

/// A JSON-pointer-like path: `/members/3/sha256`. The root is the empty path, shown as `/`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldPath(Vec<Segment>);

/// One step of a [`FieldPath`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// A field the format defines.
    Key(&'static str),
    /// An array index.
    Index(usize),
    /// A field the format does not define: its name when short and plain, else `None`
    /// (shown as `<key>`), so that no arbitrary input text reaches a message.
    Unknown(Option<String>),
}

/// What is wrong. Each variant has a stable [`code`](Problem::code) for problem details.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Problem {
    /// The document is larger than the configured limit; refused before parsing.
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The document is not UTF-8.
    NotUtf8 {
        /// Bytes before the first invalid sequence.
        valid_up_to: usize,
    },
    /// The bytes are not well-formed JSON (or nest deeper than serde_json's limit of 128).
    Syntax,
    /// The JSON ends early.
    Truncated,
    /// An object names the same key twice (parsers disagree on which one wins).
    DuplicateKey,
    /// The value has the wrong JSON type.
    WrongType {
        /// The type the format requires here.
        expected: JsonType,
    },
    /// A field the format does not define.
    UnknownField,
    /// A required field is absent.
    MissingField,
    /// `version` is not the one this parser implements.
    UnsupportedVersion,
    /// A string, or a list, is empty where at least one character or item is required.
    Empty,
    /// A string longer than the format allows.
    TooLong {
        /// The maximum in bytes.
        max: usize,
    },
    /// A list with more items than allowed.
    TooManyItems {
        /// The maximum.
        max: usize,
    },
    /// A character outside the alphabet of this field.
    Character,
    /// A member name starting with something other than a letter or digit.
    NameStart,
    /// A member name ending with `.`.
    NameEnd,
    /// A member name whose stem is a reserved Windows device name (`CON`, `NUL`, `COM1`…).
    NameReserved,
    /// A member name equal, ignoring ASCII case, to an earlier member's.
    DuplicateName {
        /// Index of the earlier member.
        first: usize,
    },
    /// A number that is not an integer (`1.5`, `1e3`, `1.0`).
    NotAnInteger,
    /// A negative integer.
    Negative,
    /// An integer above the maximum (2^53−1 for sizes and counts).
    TooBig {
        /// The maximum.
        max: u64,
    },
    /// Not 64 lowercase hexadecimal digits.
    Sha256Form,
    /// Not a lowercase `type/subtype` media type without parameters.
    MediaTypeForm,
    /// Not a FHIR resource type name (`[A-Z][A-Za-z]{0,63}`).
    ResourceTypeForm,
    /// An `ndjson` object on a member whose media type is not `application/fhir+ndjson`.
    NdjsonNotAllowed,
    /// `total_members` differs from the number of members listed.
    TotalMembersMismatch {
        /// Members listed.
        listed: usize,
    },
    /// The members' sizes add up to more than the maximum (2^53−1).
    SumTooBig {
        /// The maximum.
        max: u64,
    },
    /// `total_bytes` differs from the sum of the members' sizes.
    TotalBytesMismatch {
        /// The sum of the listed sizes.
        listed: u64,
    },
    /// Not an RFC 3339 timestamp in UTC (`2026-01-31T12:00:00Z`).
    TimestampForm,
    /// Not a SMART-style resource scope (`system/Observation.rs`).
    ScopeForm,
    /// Not an absolute URI beginning `http://`, `https://` or `urn:`.
    SystemForm,
}

/// JSON value types, for [`Problem::WrongType`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonType {
    /// An object.
    Object,
    /// An array.
    Array,
    /// A string.
    String,
    /// An integer.
    Integer,
}

// === impl ManifestError ===

impl ManifestError {
    pub(crate) fn new(location: Location, problem: Problem) -> Self {
        Self { location, problem }
    }

    pub(crate) fn at(path: &FieldPath, problem: Problem) -> Self {
        Self::new(Location::Field(path.clone()), problem)
    }

    /// Where the problem is.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// What the problem is.
    pub fn problem(&self) -> Problem {
        self.problem
    }

    /// The field path, when the problem is in a value (`/members/3/sha256`).
    pub fn path(&self) -> Option<String> {
        match &self.location {
            Location::Field(p) => Some(p.to_string()),
            _ => None,
        }
    }
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.location {
            Location::Document => write!(f, "{}", self.problem),
            Location::Position { line, column } => {
                write!(f, "line {line}, column {column}: {}", self.problem)
            }
            Location::Field(path) => write!(f, "{path}: {}", self.problem),
        }
    }
}

impl std::error::Error for ManifestError {}

// === impl FieldPath ===

impl FieldPath {
    /// The root.
    pub fn root() -> Self {
        Self::default()
    }

    /// The steps from the root.
    pub fn segments(&self) -> &[Segment] {
        &self.0
    }

    pub(crate) fn key(&self, key: &'static str) -> Self {
        self.with(Segment::Key(key))
    }

    pub(crate) fn index(&self, index: usize) -> Self {
        self.with(Segment::Index(index))
    }

    pub(crate) fn unknown(&self, key: &str) -> Self {
        let plain = key.len() <= 32
            && !key.is_empty()
            && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        self.with(Segment::Unknown(plain.then(|| key.to_owned())))
    }

    fn with(&self, segment: Segment) -> Self {
        let mut v = self.0.clone();
        v.push(segment);
        Self(v)
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("/");
        }
        for s in &self.0 {
            match s {
                Segment::Key(k) => write!(f, "/{k}")?,
                Segment::Index(i) => write!(f, "/{i}")?,
                Segment::Unknown(Some(k)) => write!(f, "/{k}")?,
                Segment::Unknown(None) => f.write_str("/<key>")?,
            }
        }
        Ok(())
    }
}

// === impl Problem ===

impl Problem {
    /// A stable, machine-readable code (`manifest.unknown_field`, …).
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "too_large",
            Self::NotUtf8 { .. } => "not_utf8",
            Self::Syntax => "syntax",
            Self::Truncated => "truncated",
            Self::DuplicateKey => "duplicate_key",
            Self::WrongType { .. } => "wrong_type",
            Self::UnknownField => "unknown_field",
            Self::MissingField => "missing_field",
            Self::UnsupportedVersion => "unsupported_version",
            Self::Empty => "empty",
            Self::TooLong { .. } => "too_long",
            Self::TooManyItems { .. } => "too_many_items",
            Self::Character => "character",
            Self::NameStart => "name_start",
            Self::NameEnd => "name_end",
            Self::NameReserved => "name_reserved",
            Self::DuplicateName { .. } => "duplicate_name",
            Self::NotAnInteger => "not_an_integer",
            Self::Negative => "negative",
            Self::TooBig { .. } => "too_big",
            Self::Sha256Form => "sha256_form",
            Self::MediaTypeForm => "media_type_form",
            Self::ResourceTypeForm => "resource_type_form",
            Self::NdjsonNotAllowed => "ndjson_not_allowed",
            Self::TotalMembersMismatch { .. } => "total_members_mismatch",
            Self::TotalBytesMismatch { .. } => "total_bytes_mismatch",
            Self::SumTooBig { .. } => "sum_too_big",
            Self::TimestampForm => "timestamp_form",
            Self::ScopeForm => "scope_form",
            Self::SystemForm => "system_form",
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge { limit } => write!(f, "the document is larger than {limit} bytes"),
            Self::NotUtf8 { valid_up_to } => {
                write!(
                    f,
                    "the document is not UTF-8 (invalid after byte {valid_up_to})"
                )
            }
            Self::Syntax => f.write_str("not well-formed JSON"),
            Self::Truncated => f.write_str("the JSON ends early"),
            Self::DuplicateKey => f.write_str("an object names the same key twice"),
            Self::WrongType { expected } => write!(f, "expected {expected}"),
            Self::UnknownField => f.write_str("unknown field"),
            Self::MissingField => f.write_str("required field missing"),
            Self::UnsupportedVersion => f.write_str("unsupported version"),
            Self::Empty => f.write_str("must not be empty"),
            Self::TooLong { max } => write!(f, "longer than {max} bytes"),
            Self::TooManyItems { max } => write!(f, "more than {max} items"),
            Self::Character => f.write_str("a character outside the field's alphabet"),
            Self::NameStart => f.write_str("a member name starts with a letter or digit"),
            Self::NameEnd => f.write_str("a member name must not end with '.'"),
            Self::NameReserved => f.write_str(
                "a member name must not be a reserved device name (CON, NUL, COM1, ...)",
            ),
            Self::DuplicateName { first } => {
                write!(f, "equals the name of member {first}, ignoring ASCII case")
            }
            Self::NotAnInteger => f.write_str("expected an integer"),
            Self::Negative => f.write_str("must not be negative"),
            Self::TooBig { max } => write!(f, "larger than {max}"),
            Self::Sha256Form => f.write_str("expected 64 lowercase hexadecimal digits"),
            Self::MediaTypeForm => {
                f.write_str("expected a lowercase type/subtype media type without parameters")
            }
            Self::ResourceTypeForm => f.write_str("expected a FHIR resource type name"),
            Self::NdjsonNotAllowed => {
                f.write_str("allowed only when media_type is application/fhir+ndjson")
            }
            Self::TotalMembersMismatch { listed } => {
                write!(f, "differs from the {listed} members listed")
            }
            Self::TotalBytesMismatch { listed } => {
                write!(
                    f,
                    "differs from the {listed} bytes the members' sizes add up to"
                )
            }
            Self::SumTooBig { max } => write!(f, "the members' sizes add up to more than {max}"),
            Self::TimestampForm => f.write_str("expected an RFC 3339 UTC timestamp ending in Z"),
            Self::ScopeForm => f.write_str("expected a SMART resource scope"),
            Self::SystemForm => f.write_str("expected a URI beginning http://, https:// or urn:"),
        }
    }
}

impl fmt::Display for JsonType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Object => "an object",
            Self::Array => "an array",
            Self::String => "a string",
            Self::Integer => "an integer",
        })
    }
}
