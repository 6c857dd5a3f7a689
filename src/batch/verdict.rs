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
//! caught only by the second); for NDJSON members, a report checked against the declared
//! `resourceType` must exist (else `NdjsonUnchecked`), its record count must equal the declared one, and every kind of bad
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
//! Beside this file: `finding.rs` ([`Finding`], its codes and readable lines) and
//! `report.rs` ([`Report`], the JSON and its SHA-256).
//!
//! Not here: reading or decrypting members, the manifest format, storing a verdict, the
//! quarantine workflow, audit.

use std::collections::{BTreeMap, BTreeSet};

use super::ndjson::{FaultLines, LineFault, NdjsonReport};

mod finding;
mod report;

pub use finding::{DigestSource, Finding};
pub use report::{Report, ReportFinding, ReportVerdict};

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
    /// The stored bytes could not be read back whole (at-rest authentication failed, or
    /// the object is gone): reported as such, and the checks on the stored bytes (stream
    /// digest, NDJSON lines) are not reported on top.
    pub unreadable: bool,
}

/// The outcome of verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every check passed.
    Released,
    /// At least one finding; never empty.
    Quarantined(Vec<Finding>),
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
                Verdict::Released => ReportVerdict::Released,
                Verdict::Quarantined(_) => ReportVerdict::Quarantined,
            },
            findings: self.findings().iter().map(ReportFinding::from).collect(),
        }
    }
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
    let mut digests = vec![(upload.upload_sha256, DigestSource::Upload)];
    if upload.unreadable {
        findings.push(Finding::Unreadable { name: name() });
    } else {
        digests.push((upload.stream_sha256, DigestSource::Stream));
    }
    for (digest, source) in digests {
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
    if upload.unreadable {
        return;
    }
    // A report for another resource type says nothing about the declared one.
    let Some(report) = upload
        .ndjson
        .as_ref()
        .filter(|r| r.resource_type == declared.resource_type)
    else {
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
mod acceptance;
#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
