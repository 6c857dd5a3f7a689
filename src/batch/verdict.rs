//! The batch verdict: what the manifest expected and what arrived, as plain facts in; a
//! [`Verdict`] out — [`Released`](Verdict::Released) exactly when there is no [`Finding`].
//!
//! The inputs are this module's own types ([`Expected`], [`Observed`]), so the core does not
//! depend on the manifest parser: the service converts a parsed manifest into an
//! [`Expected`], and gathers an [`Observed`] from the upload records, the digest re-computed
//! over each decrypted member, and the [`NdjsonReport`] of each NDJSON member.
//!
//! # The checks, per listed member
//!
//! Present (else `Missing`, and nothing more about it); complete (else `Incomplete`, and
//! nothing more: a partial upload's size and digest say nothing); size equal; the upload's
//! whole-file SHA-256 *and* the SHA-256 re-computed over the stored data each equal the
//! manifest's (a missing digest is `Sha256Unavailable`, never a pass: at-rest corruption is
//! caught only by the second); for NDJSON members, a report must exist (else
//! `NdjsonUnchecked`), its record count must equal the declared one, and every kind of bad
//! line and a truncated last line is a finding. Then, per observed name the manifest does
//! not list, `Unlisted`; a name uploaded more than once, `DuplicateObserved` (the first
//! upload in `Observed` order is the one checked); a name listed twice, `DuplicateListed`.
//! Then the batch totals, when the manifest states them: the number of uploads and the sum
//! of their sizes.
//!
//! # Order
//!
//! Findings come in a deterministic order that does not depend on the order of
//! [`Observed::members`] (except which duplicate is checked): listed members in manifest
//! order, each member's findings in the order of the checks above; then unlisted names in
//! byte order; then the batch totals. The report and its SHA-256 are therefore stable.
//!
//! # No PHI
//!
//! Findings name members by their logical names and lines by their numbers. Nothing here
//! sees record content.
//!
//! Not here: reading or decrypting members, the manifest format, storing a verdict, the
//! quarantine workflow, audit.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::ndjson::{FaultLines, LineFault, NdjsonReport};

/// What the manifest says the batch holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// Every member, in manifest order.
    pub members: Vec<ExpectedMember>,
    /// The member count, when the manifest states it.
    pub total_members: Option<u64>,
    /// The sum of member sizes, when the manifest states it.
    pub total_bytes: Option<u64>,
}

/// One listed member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedMember {
    /// The logical name (`[A-Za-z0-9._-]`, checked by the manifest parser).
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the whole member.
    pub sha256: [u8; 32],
    /// For NDJSON members: what each line must be, and how many records.
    pub ndjson: Option<ExpectedNdjson>,
}

/// The NDJSON part of a listed member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedNdjson {
    /// The FHIR `resourceType` of every line (the checker is built with it).
    pub resource_type: String,
    /// The record count.
    pub records: u64,
}

/// What arrived.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    /// Every upload that names this batch, in any order.
    pub members: Vec<ObservedMember>,
}

/// One upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedMember {
    /// The logical name the upload gave.
    pub name: String,
    /// Whether the upload reached its declared length.
    pub complete: bool,
    /// Bytes received.
    pub size: u64,
    /// The upload's recorded whole-file SHA-256, if it has one.
    pub upload_sha256: Option<[u8; 32]>,
    /// SHA-256 re-computed over the decrypted stored data, if it was computed.
    pub stream_sha256: Option<[u8; 32]>,
    /// The NDJSON checker's report, if the member was checked as NDJSON.
    pub ndjson: Option<NdjsonReport>,
}

/// The outcome of verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every check passed.
    Released,
    /// At least one finding; never empty.
    Quarantined(Vec<Finding>),
}

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
    /// Listed as NDJSON but no NDJSON report was produced.
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
    /// The number of uploads differs from the manifest's stated total.
    TotalMembersMismatch { expected: u64, actual: u64 },
    /// The sum of upload sizes differs from the manifest's stated total.
    TotalBytesMismatch { expected: u64, actual: u64 },
}

/// Compares what arrived with what the manifest lists (see the module docs).
pub fn verdict(expected: &Expected, observed: &Observed) -> Verdict {
    // name -> (first upload with that name, how many uploads)
    let mut uploads: BTreeMap<&str, (&ObservedMember, u64)> = BTreeMap::new();
    for member in &observed.members {
        uploads.entry(member.name.as_str()).or_insert((member, 0)).1 += 1;
    }
    let mut findings = Vec::new();
    let mut listed = BTreeSet::new();
    for member in &expected.members {
        let name = member.name.as_str();
        if !listed.insert(name) {
            findings.push(Finding::DuplicateListed {
                name: name.to_owned(),
            });
            continue;
        }
        match uploads.get(name) {
            None => findings.push(Finding::Missing {
                name: name.to_owned(),
            }),
            Some(&(upload, count)) => {
                if count > 1 {
                    findings.push(Finding::DuplicateObserved {
                        name: name.to_owned(),
                    });
                }
                check_member(member, upload, &mut findings);
            }
        }
    }
    for (&name, &(_, count)) in uploads.iter().filter(|(n, _)| !listed.contains(*n)) {
        findings.push(Finding::Unlisted {
            name: name.to_owned(),
        });
        if count > 1 {
            findings.push(Finding::DuplicateObserved {
                name: name.to_owned(),
            });
        }
    }
    if let Some(total) = expected.total_members {
        let actual = observed.members.len() as u64;
        if actual != total {
            findings.push(Finding::TotalMembersMismatch {
                expected: total,
                actual,
            });
        }
    }
    if let Some(total) = expected.total_bytes {
        let actual = observed
            .members
            .iter()
            .fold(0u64, |sum, m| sum.saturating_add(m.size));
        if actual != total {
            findings.push(Finding::TotalBytesMismatch {
                expected: total,
                actual,
            });
        }
    }
    if findings.is_empty() {
        Verdict::Released
    } else {
        Verdict::Quarantined(findings)
    }
}

impl Verdict {
    /// The findings (empty when released).
    pub fn findings(&self) -> &[Finding] {
        match self {
            Verdict::Released => &[],
            Verdict::Quarantined(findings) => findings,
        }
    }

    /// The verification report, as served and audited.
    pub fn report(&self) -> Report {
        Report {
            verdict: match self {
                Verdict::Released => "released",
                Verdict::Quarantined(_) => "quarantined",
            },
            findings: self.findings().iter().map(ReportFinding::from).collect(),
        }
    }
}

/// The report JSON: `{"verdict": "released"|"quarantined", "findings": [{"code", "member"?,
/// "expected"?, "actual"?, "lines"?, "message"}]}`; absent values are left out. For line
/// findings `actual` is the number of such lines and `lines` the first few.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub verdict: &'static str,
    pub findings: Vec<ReportFinding>,
}

/// One finding in the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReportFinding {
    pub code: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actual: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lines: Option<Vec<u64>>,
    pub message: String,
}

impl Report {
    /// The canonical bytes: compact JSON, keys in the declared field order. Serve exactly
    /// these, so that the audited SHA-256 can be checked against what a client received.
    pub fn canonical_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }

    /// The report as a JSON value.
    pub fn to_json(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::to_value(self)
    }

    /// SHA-256 of [`canonical_json`](Self::canonical_json), for the verdict's audit record.
    pub fn sha256(&self) -> Result<[u8; 32], serde_json::Error> {
        Ok(Sha256::digest(self.canonical_json()?).into())
    }
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
            | Finding::Unlisted { name } => Some(name),
            Finding::TotalMembersMismatch { .. } | Finding::TotalBytesMismatch { .. } => None,
        }
    }

    /// (expected, actual, lines) for the report.
    fn values(&self) -> (Option<u64>, Option<u64>, Option<&[u64]>) {
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

impl From<&Finding> for ReportFinding {
    fn from(f: &Finding) -> Self {
        let (expected, actual, lines) = f.values();
        ReportFinding {
            code: f.code(),
            member: f.member().map(str::to_owned),
            expected,
            actual,
            lines: lines.map(<[u64]>::to_vec),
            message: f.to_string(),
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

/// The checks on one listed member's first upload.
fn check_member(expected: &ExpectedMember, upload: &ObservedMember, findings: &mut Vec<Finding>) {
    let name = || expected.name.clone();
    if !upload.complete {
        findings.push(Finding::Incomplete {
            name: name(),
            size: upload.size,
            expected: expected.size,
        });
        return;
    }
    if upload.size != expected.size {
        findings.push(Finding::SizeMismatch {
            name: name(),
            expected: expected.size,
            actual: upload.size,
        });
    }
    for (digest, source) in [
        (upload.upload_sha256, DigestSource::Upload),
        (upload.stream_sha256, DigestSource::Stream),
    ] {
        match digest {
            None => findings.push(Finding::Sha256Unavailable {
                name: name(),
                source,
            }),
            Some(d) if d != expected.sha256 => findings.push(Finding::Sha256Mismatch {
                name: name(),
                source,
            }),
            Some(_) => {}
        }
    }
    let Some(declared) = &expected.ndjson else {
        return;
    };
    let Some(report) = &upload.ndjson else {
        findings.push(Finding::NdjsonUnchecked { name: name() });
        return;
    };
    if report.records != declared.records {
        findings.push(Finding::RecordCountMismatch {
            name: name(),
            expected: declared.records,
            actual: report.records,
        });
    }
    for kind in LineFault::ALL {
        let FaultLines { count, first } = report.fault(kind);
        if *count == 0 {
            continue;
        }
        let (name, lines, count) = (name(), first.clone(), *count);
        findings.push(match kind {
            LineFault::TooLong => Finding::LineTooLong { name, lines, count },
            LineFault::Blank => Finding::BlankLines { name, lines, count },
            LineFault::InvalidUtf8 => Finding::InvalidUtf8 { name, lines, count },
            LineFault::NotJsonObject => Finding::NotJsonObject { name, lines, count },
            LineFault::WrongResourceType => Finding::WrongResourceType { name, lines, count },
        });
    }
    if report.truncated_last_line {
        findings.push(Finding::TruncatedLastLine { name: name() });
    }
}

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
