//! What happened to each file, and the exit code a script reads (`docs/client-cli.md`).
//!
//! Pure: typed outcomes in, an exit code and JSON lines out. The exit code is the most
//! serious failure among the files, in this order: a file that failed verification (3),
//! a server refusal (4), a network failure after the retries (5), a local file problem
//! (6). Usage errors (2) stop the command before any transfer; 0 means every file was
//! transferred and verified.
//!
//! Not here: printing (the caller prints the lines) or deciding what failed.

use serde::Serialize;

/// Every file was transferred and verified.
pub const EXIT_OK: u8 = 0;
/// A failure that fits no other class (an internal error).
pub const EXIT_OTHER: u8 = 1;
/// Bad arguments, an unreadable token, CA or manifest: nothing was transferred.
pub const EXIT_USAGE: u8 = 2;
/// A file did not match its digest, size or record count; it is not under its final name.
pub const EXIT_VERIFICATION: u8 = 3;
/// The server refused (a 4xx other than a retryable one: expired or revoked link, no
/// permission, quota, too large).
pub const EXIT_REFUSED: u8 = 4;
/// The network or the server (5xx, 423) kept failing after every retry.
pub const EXIT_NETWORK: u8 = 5;
/// A local file problem: the final file exists (without `--force`), disk full, unreadable.
pub const EXIT_LOCAL: u8 = 6;

/// Why one file failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Failure {
    /// Digest, size or record count mismatch (or no digest to check against).
    Verification,
    /// The server refused the request.
    Refused,
    /// Network errors or retryable server errors past the retry budget.
    Network,
    /// A local file problem.
    Local,
    /// Anything else.
    Other,
}

impl Failure {
    /// The exit code for this failure alone.
    pub fn exit_code(self) -> u8 {
        match self {
            Failure::Verification => EXIT_VERIFICATION,
            Failure::Refused => EXIT_REFUSED,
            Failure::Network => EXIT_NETWORK,
            Failure::Local => EXIT_LOCAL,
            Failure::Other => EXIT_OTHER,
        }
    }

    /// Higher is more serious (decides the exit code among several failures).
    fn rank(self) -> u8 {
        match self {
            Failure::Verification => 5,
            Failure::Refused => 4,
            Failure::Network => 3,
            Failure::Local => 2,
            Failure::Other => 1,
        }
    }
}

/// The exit code for a run whose files ended with these failures (none: 0).
pub fn exit_code(failures: impl IntoIterator<Item = Failure>) -> u8 {
    failures
        .into_iter()
        .max_by_key(|f| f.rank())
        .map_or(EXIT_OK, Failure::exit_code)
}

/// One file's line in `--json` output (and the human report).
#[derive(Debug, Clone, Serialize)]
pub struct FileReport {
    /// Always `"file"`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// `"upload"` or `"download"`.
    pub op: &'static str,
    /// The local path.
    pub file: String,
    /// Uploads: the upload's URL; downloads: the artifact id (never the signed link,
    /// which is a credential).
    pub remote: String,
    /// `"verified"` or `"failed"`.
    pub status: &'static str,
    /// Bytes of the whole file (when known).
    pub bytes: Option<u64>,
    /// Bytes this run did not have to transfer (already at the server / in the `.part`).
    pub resumed_from: u64,
    /// The SHA-256 computed locally over the file's bytes (hex).
    pub sha256: Option<String>,
    /// The SHA-256 the server states (upload ledger, download `Repr-Digest`).
    pub server_sha256: Option<String>,
    /// NDJSON records counted (downloads with an expected count).
    pub records: Option<u64>,
    /// Why it failed.
    pub failure: Option<Failure>,
    /// A readable reason (no secrets, no link).
    pub error: Option<String>,
}

impl FileReport {
    /// A blank report for `file`.
    pub fn new(op: &'static str, file: String, remote: String) -> Self {
        Self {
            kind: "file",
            op,
            file,
            remote,
            status: "failed",
            bytes: None,
            resumed_from: 0,
            sha256: None,
            server_sha256: None,
            records: None,
            failure: None,
            error: None,
        }
    }

    /// Marks the file verified.
    pub fn verified(mut self) -> Self {
        self.status = "verified";
        self.failure = None;
        self.error = None;
        self
    }

    /// Marks the file failed.
    pub fn failed(mut self, failure: Failure, error: impl Into<String>) -> Self {
        self.status = "failed";
        self.failure = Some(failure);
        self.error = Some(error.into());
        self
    }

    /// One human line.
    pub fn human(&self) -> String {
        match (&self.failure, &self.error) {
            (None, _) => format!(
                "verified  {}  {} bytes  sha256 {}",
                self.file,
                self.bytes.unwrap_or(0),
                self.sha256.as_deref().unwrap_or("-")
            ),
            (Some(f), e) => format!(
                "FAILED    {}  ({}) {}",
                self.file,
                serde_json::to_value(f)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                e.as_deref().unwrap_or("")
            ),
        }
    }
}

/// The last line of `--json` output.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Always `"summary"`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// `"upload"` or `"download"`.
    pub op: &'static str,
    /// Files attempted.
    pub files: usize,
    /// Files verified.
    pub verified: usize,
    /// Files failed.
    pub failed: usize,
    /// Bytes of the verified files.
    pub bytes: u64,
    /// The process's exit code.
    pub exit_code: u8,
}

/// The summary and exit code of a run.
pub fn summarize(op: &'static str, reports: &[FileReport]) -> Summary {
    let verified = reports.iter().filter(|r| r.failure.is_none()).count();
    Summary {
        kind: "summary",
        op,
        files: reports.len(),
        verified,
        failed: reports.len() - verified,
        bytes: reports
            .iter()
            .filter(|r| r.failure.is_none())
            .filter_map(|r| r.bytes)
            .sum(),
        exit_code: exit_code(reports.iter().filter_map(|r| r.failure)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_serious_failure_wins() {
        use Failure::*;
        assert_eq!(exit_code([]), 0);
        assert_eq!(exit_code([Local]), 6);
        assert_eq!(exit_code([Local, Network]), 5);
        assert_eq!(exit_code([Network, Refused, Local]), 4);
        assert_eq!(exit_code([Refused, Verification, Network]), 3);
        assert_eq!(exit_code([Other]), 1);
        assert_eq!(exit_code([Other, Local]), 6);
    }

    #[test]
    fn summary_counts_and_json_shape() {
        let ok = FileReport {
            bytes: Some(10),
            ..FileReport::new("download", "a".into(), "x".into())
        }
        .verified();
        let bad = FileReport::new("download", "b".into(), "y".into())
            .failed(Failure::Verification, "digest mismatch");
        let s = summarize("download", &[ok.clone(), bad.clone()]);
        assert_eq!((s.files, s.verified, s.failed, s.bytes), (2, 1, 1, 10));
        assert_eq!(s.exit_code, EXIT_VERIFICATION);
        let v = serde_json::to_value(&bad).unwrap();
        assert_eq!(v["type"], "file");
        assert_eq!(v["status"], "failed");
        assert_eq!(v["failure"], "verification");
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["type"], "summary");
        assert_eq!(v["exit_code"], 3);
        assert!(ok.human().starts_with("verified"));
        assert!(bad.human().contains("(verification) digest mismatch"));
    }
}
