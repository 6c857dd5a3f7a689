//! The findings a verdict can carry: each with a stable machine [`code`](Finding::code), the
//! member it is about, and one readable line (`Display`), e.g.
//! `Observation.ndjson: 1997 records, manifest says 2000`. Logical names and line numbers
//! only, never record content.

use std::fmt;

/// Which SHA-256 a digest finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestSource {
    /// The digest the upload recorded as it received the bytes.
    Upload,
    /// The digest re-computed over the decrypted stored data.
    Stream,
}

/// One reason a batch is quarantined. Names are logical member names; `lines` are 1-based
/// line numbers (the first few), `count` all such lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// Listed, never uploaded.
    Missing { name: String },
    /// Uploaded but not complete: `size` of `expected` bytes.
    Incomplete {
        name: String,
        size: u64,
        expected: u64,
    },
    /// Listed twice in the manifest.
    DuplicateListed { name: String },
    /// Uploaded more than once.
    DuplicateObserved { name: String },
    /// The size differs from the manifest's.
    SizeMismatch {
        name: String,
        expected: u64,
        actual: u64,
    },
    /// A digest differs from the manifest's.
    Sha256Mismatch { name: String, source: DigestSource },
    /// A digest was not recorded or not computed, so it cannot be compared.
    Sha256Unavailable { name: String, source: DigestSource },
    /// Listed as NDJSON but no report checked against the declared `resourceType`.
    NdjsonUnchecked { name: String },
    /// The record count differs from the manifest's.
    RecordCountMismatch {
        name: String,
        expected: u64,
        actual: u64,
    },
    /// Lines over the line limit.
    LineTooLong {
        name: String,
        lines: Vec<u64>,
        count: u64,
    },
    /// Blank lines.
    BlankLines {
        name: String,
        lines: Vec<u64>,
        count: u64,
    },
    /// Lines that are not UTF-8.
    InvalidUtf8 {
        name: String,
        lines: Vec<u64>,
        count: u64,
    },
    /// Lines that are not one JSON object.
    NotJsonObject {
        name: String,
        lines: Vec<u64>,
        count: u64,
    },
    /// Objects whose `resourceType` is not the declared one.
    WrongResourceType {
        name: String,
        lines: Vec<u64>,
        count: u64,
    },
    /// The last line has no newline and is not a complete record.
    TruncatedLastLine { name: String },
    /// Not in the manifest.
    Unlisted { name: String },
    /// The stored bytes failed their at-rest integrity check (or are gone): they cannot
    /// be read back, so neither the stored-data digest nor the NDJSON lines were checked.
    Unreadable { name: String },
    /// A rule of the batch's release profile is broken (`rule` as the config names it).
    ProfileViolation { rule: String, name: Option<String> },
    /// The number of uploads differs from the manifest's stated total.
    TotalMembersMismatch { expected: u64, actual: u64 },
    /// The sum of upload sizes differs from the manifest's stated total.
    TotalBytesMismatch { expected: u64, actual: u64 },
}

impl Finding {
    /// The stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            Finding::Missing { .. } => "member.missing",
            Finding::Incomplete { .. } => "member.incomplete",
            Finding::DuplicateListed { .. } => "manifest.duplicate_member",
            Finding::DuplicateObserved { .. } => "member.duplicate_upload",
            Finding::SizeMismatch { .. } => "member.size_mismatch",
            Finding::Sha256Mismatch { .. } => "member.sha256_mismatch",
            Finding::Sha256Unavailable { .. } => "member.sha256_unavailable",
            Finding::NdjsonUnchecked { .. } => "ndjson.unchecked",
            Finding::RecordCountMismatch { .. } => "ndjson.record_count_mismatch",
            Finding::LineTooLong { .. } => "ndjson.line_too_long",
            Finding::BlankLines { .. } => "ndjson.blank_lines",
            Finding::InvalidUtf8 { .. } => "ndjson.invalid_utf8",
            Finding::NotJsonObject { .. } => "ndjson.not_json_object",
            Finding::WrongResourceType { .. } => "ndjson.wrong_resource_type",
            Finding::TruncatedLastLine { .. } => "ndjson.truncated_last_line",
            Finding::Unlisted { .. } => "member.unlisted",
            Finding::Unreadable { .. } => "member.unreadable",
            Finding::ProfileViolation { .. } => "profile.violation",
            Finding::TotalMembersMismatch { .. } => "batch.total_members_mismatch",
            Finding::TotalBytesMismatch { .. } => "batch.total_bytes_mismatch",
        }
    }

    /// The member this finding is about; `None` for batch totals.
    pub fn member(&self) -> Option<&str> {
        match self {
            Finding::Missing { name }
            | Finding::Incomplete { name, .. }
            | Finding::DuplicateListed { name }
            | Finding::DuplicateObserved { name }
            | Finding::SizeMismatch { name, .. }
            | Finding::Sha256Mismatch { name, .. }
            | Finding::Sha256Unavailable { name, .. }
            | Finding::NdjsonUnchecked { name }
            | Finding::RecordCountMismatch { name, .. }
            | Finding::LineTooLong { name, .. }
            | Finding::BlankLines { name, .. }
            | Finding::InvalidUtf8 { name, .. }
            | Finding::NotJsonObject { name, .. }
            | Finding::WrongResourceType { name, .. }
            | Finding::TruncatedLastLine { name }
            | Finding::Unlisted { name }
            | Finding::Unreadable { name } => Some(name),
            Finding::ProfileViolation { name, .. } => name.as_deref(),
            Finding::TotalMembersMismatch { .. } | Finding::TotalBytesMismatch { .. } => None,
        }
    }

    /// (expected, actual, lines) for the report.
    pub(super) fn values(&self) -> (Option<u64>, Option<u64>, Option<&[u64]>) {
        match self {
            Finding::Incomplete { size, expected, .. } => (Some(*expected), Some(*size), None),
            Finding::SizeMismatch {
                expected, actual, ..
            }
            | Finding::RecordCountMismatch {
                expected, actual, ..
            }
            | Finding::TotalMembersMismatch { expected, actual }
            | Finding::TotalBytesMismatch { expected, actual } => {
                (Some(*expected), Some(*actual), None)
            }
            Finding::LineTooLong { lines, count, .. }
            | Finding::BlankLines { lines, count, .. }
            | Finding::InvalidUtf8 { lines, count, .. }
            | Finding::NotJsonObject { lines, count, .. }
            | Finding::WrongResourceType { lines, count, .. } => (None, Some(*count), Some(lines)),
            _ => (None, None, None),
        }
    }
}

/// One line for people, e.g. `Observation.ndjson: 1997 records, manifest says 2000`.
impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let source = |s: &DigestSource| match s {
            DigestSource::Upload => "upload",
            DigestSource::Stream => "stored data",
        };
        match self {
            Finding::Missing { name } => write!(f, "{name}: listed, never uploaded"),
            Finding::Incomplete {
                name,
                size,
                expected,
            } => {
                write!(f, "{name}: incomplete, {size} of {expected} bytes")
            }
            Finding::DuplicateListed { name } => write!(f, "{name}: listed more than once"),
            Finding::DuplicateObserved { name } => write!(f, "{name}: uploaded more than once"),
            Finding::SizeMismatch {
                name,
                expected,
                actual,
            } => {
                write!(f, "{name}: {actual} bytes, manifest says {expected}")
            }
            Finding::Sha256Mismatch { name, source: s } => {
                write!(f, "{name}: sha256 mismatch ({})", source(s))
            }
            Finding::Sha256Unavailable { name, source: s } => {
                write!(f, "{name}: no sha256 to compare ({})", source(s))
            }
            Finding::NdjsonUnchecked { name } => write!(f, "{name}: NDJSON lines not checked"),
            Finding::RecordCountMismatch {
                name,
                expected,
                actual,
            } => {
                write!(f, "{name}: {actual} records, manifest says {expected}")
            }
            Finding::LineTooLong { name, lines, count } => line_list(
                f,
                name,
                lines,
                *count,
                "is over the line limit",
                "are over the line limit",
            ),
            Finding::BlankLines { name, lines, count } => {
                line_list(f, name, lines, *count, "is blank", "are blank")
            }
            Finding::InvalidUtf8 { name, lines, count } => {
                line_list(f, name, lines, *count, "is not UTF-8", "are not UTF-8")
            }
            Finding::NotJsonObject { name, lines, count } => line_list(
                f,
                name,
                lines,
                *count,
                "is not a JSON object",
                "are not JSON objects",
            ),
            Finding::WrongResourceType { name, lines, count } => line_list(
                f,
                name,
                lines,
                *count,
                "has the wrong resourceType",
                "have the wrong resourceType",
            ),
            Finding::TruncatedLastLine { name } => {
                write!(
                    f,
                    "{name}: last line truncated (no newline, not a complete record)"
                )
            }
            Finding::Unlisted { name } => write!(f, "{name}: not in manifest"),
            Finding::Unreadable { name } => write!(
                f,
                "{name}: stored data failed its integrity check and cannot be read back"
            ),
            Finding::ProfileViolation {
                rule,
                name: Some(name),
            } => write!(f, "{name}: breaks the profile's {rule} rule"),
            Finding::ProfileViolation { rule, name: None } => {
                write!(f, "batch: breaks the profile's {rule} rule")
            }
            Finding::TotalMembersMismatch { expected, actual } => {
                write!(f, "batch: {actual} members, manifest says {expected}")
            }
            Finding::TotalBytesMismatch { expected, actual } => {
                write!(f, "batch: {actual} bytes, manifest says {expected}")
            }
        }
    }
}

/// `name: line 88 is …`, `name: lines 3, 9 are …`, `name: lines 3, 9 and 5 more are …`.
fn line_list(
    f: &mut fmt::Formatter<'_>,
    name: &str,
    lines: &[u64],
    count: u64,
    one: &str,
    many: &str,
) -> fmt::Result {
    match (count, lines) {
        (1, [line]) => return write!(f, "{name}: line {line} {one}"),
        (_, []) => {
            return write!(
                f,
                "{name}: {count} line{} {}",
                if count == 1 { "" } else { "s" },
                if count == 1 { one } else { many }
            );
        }
        _ => {}
    }
    write!(f, "{name}: lines ")?;
    for (i, line) in lines.iter().enumerate() {
        write!(f, "{}{line}", if i == 0 { "" } else { ", " })?;
    }
    let more = count.saturating_sub(lines.len() as u64);
    if more > 0 {
        write!(f, " and {more} more")?;
    }
    write!(f, " {many}")
}
