//! The verification report: the JSON a client reads (`GET /v1/batches/{id}/report`) and
//! whose SHA-256 the verdict's audit record carries.

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::finding::Finding;

/// The report JSON: `{"verdict": "released"|"quarantined", "findings": [{"code", "member"?,
/// "expected"?, "actual"?, "lines"?, "message"}]}`; absent values are left out. For line
/// findings `actual` is the number of such lines and `lines` the first few.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The outcome.
    pub verdict: ReportVerdict,
    /// Every finding, in the verdict's order; empty when released.
    pub findings: Vec<ReportFinding>,
}

/// The report's `verdict` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReportVerdict {
    /// `"released"`
    Released,
    /// `"quarantined"`
    Quarantined,
}

/// One finding in the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReportFinding {
    /// [`Finding::code`].
    pub code: &'static str,
    /// The logical member name; absent for batch totals.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
    /// What the manifest says (a size, a record count, a total).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<u64>,
    /// What arrived; for line findings, how many such lines.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actual: Option<u64>,
    /// For line findings, the first few line numbers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lines: Option<Vec<u64>>,
    /// The finding's readable line.
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
