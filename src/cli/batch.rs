//! `sallyport batch open|list|show|seal|report|release|purge`: batches through a running
//! gateway's API (`proto/batches-v1.md`; see [`super::api`] for how the gateway is reached).
//!
//! Roles (the token's client): `open` and `seal` need `uploader` (the batch's owner) or
//! `admin`; `release` and `purge` need `auditor` or `admin`; `list`, `show` and `report`
//! work for the owner, an auditor or an admin.
//!
//! `open` sends the manifest and provenance files **byte for byte**: the request body is
//! built by concatenating `{"manifest":`, the file, `,"provenance":`, the file, `}` — never
//! by re-serialising — because the gateway stores and hashes exactly the bytes it receives.
//! Each file is checked locally to be one JSON object first, so the envelope stays intact.
//!
//! Exit codes ([`EXIT_CODES`]): 0 released (or the command succeeded), 1 any error (the
//! gateway's problem code, title and detail are printed), 3 quarantined, 4 `seal --no-wait`
//! and the batch is still sealing.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Subcommand;
use http::Method;
use serde_json::{Value, json};

use super::api::{ApiArgs, ApiClient};
use crate::config::Config;

/// Released, or the command did what it was asked.
pub const EXIT_OK: u8 = 0;
/// Any error: the gateway refused, could not be reached, or answered something unexpected.
pub const EXIT_ERROR: u8 = 1;
/// The verdict is `quarantined`.
pub const EXIT_QUARANTINED: u8 = 3;
/// `seal --no-wait`: sealed, verification still running.
pub const EXIT_SEALING: u8 = 4;

/// Every exit code with its meaning, for `--help` and the docs.
pub const EXIT_CODES: &[(u8, &str)] = &[
    (EXIT_OK, "released (or the command succeeded)"),
    (EXIT_ERROR, "an error; the gateway's problem is printed"),
    (
        EXIT_QUARANTINED,
        "quarantined: the report lists the findings",
    ),
    (EXIT_SEALING, "seal --no-wait: still sealing"),
];

/// How often `seal` asks for progress.
const POLL: Duration = Duration::from_millis(500);
/// How often `seal` prints a progress line when stderr is not a terminal.
const PLAIN_PROGRESS_EVERY: Duration = Duration::from_secs(5);
/// Largest document file read (the gateway's own limits are far lower).
const MAX_DOCUMENT_FILE: u64 = 128 << 20;
/// The states `list --state` accepts.
const STATES: &[&str] = &[
    "open",
    "sealing",
    "released",
    "quarantined",
    "purged",
    "expired",
];

/// Batch commands. Tokens: uploader for open/seal, auditor for release/purge.
#[derive(Debug, Subcommand)]
#[command(
    after_help = "Exit codes: 0 released (or success), 1 error, 3 quarantined, 4 seal --no-wait and still sealing.\n\
                  Roles: open and seal need an uploader (or admin) token; release and purge an auditor (or admin) token."
)]
pub enum BatchCommand {
    /// Open a batch with its manifest (and provenance record); prints the batch id and
    /// document. Needs the uploader role.
    Open {
        /// The manifest (sallyport.manifest/1), sent byte for byte.
        #[arg(long)]
        manifest: std::path::PathBuf,
        /// The provenance record (sallyport.provenance/1), sent byte for byte.
        #[arg(long)]
        provenance: Option<std::path::PathBuf>,
    },
    /// List batches (an uploader sees its own; an auditor all).
    List {
        /// Only batches in this state: open, sealing, released, quarantined, purged, expired.
        #[arg(long)]
        state: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one batch document (JSON).
    Show {
        /// The batch id.
        id: String,
    },
    /// Seal a batch and wait for its verdict, showing progress; prints the report. Exit 0
    /// released, 3 quarantined, 4 --no-wait and still sealing. Needs the uploader role.
    Seal {
        /// The batch id.
        id: String,
        /// Return once sealed, without waiting for the verdict.
        #[arg(long)]
        no_wait: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the verification report. Exit 0 released, 3 quarantined.
    Report {
        /// The batch id.
        id: String,
        /// Print the report JSON as served.
        #[arg(long)]
        json: bool,
    },
    /// Release a quarantined batch (with four_eyes, the second auditor's approval releases
    /// it). Needs the auditor role.
    Release {
        /// The batch id.
        id: String,
        /// Why (1-1000 characters; goes to the audit trail; no PHI).
        #[arg(long)]
        reason: String,
    },
    /// Purge a batch: its members' keys are destroyed and their data deleted. Needs the
    /// auditor role.
    Purge {
        /// The batch id.
        id: String,
        /// Why (1-1000 characters; goes to the audit trail; no PHI).
        #[arg(long)]
        reason: String,
    },
}

/// Runs a batch command; the exit code per [`EXIT_CODES`] (errors are returned, exit 1).
pub async fn run(
    cmd: BatchCommand,
    api: &ApiArgs,
    config: Option<&Config>,
) -> anyhow::Result<ExitCode> {
    let client = ApiClient::from_args(api, config)?;
    match cmd {
        BatchCommand::Open {
            manifest,
            provenance,
        } => {
            let manifest = read_document(&manifest)?;
            let provenance = provenance.as_deref().map(read_document).transpose()?;
            let body = open_body(&manifest, provenance.as_deref());
            let (status, out) = client.call_bytes(Method::POST, "/v1/batches", body).await?;
            expect_success(status, &out)?;
            println!("{}", out["id"].as_str().unwrap_or_default());
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        BatchCommand::List { state, json } => {
            if let Some(s) = &state
                && !STATES.contains(&s.as_str())
            {
                bail!("--state must be one of: {}", STATES.join(", "));
            }
            let all = list(&client, state.as_deref()).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else {
                print!("{}", list_text(&all));
            }
        }
        BatchCommand::Show { id } => {
            let out = get_batch(&client, &id).await?;
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        BatchCommand::Seal { id, no_wait, json } => {
            let path = format!("{}/seal", batch_path(&id)?);
            let (status, mut doc) = client.call(Method::POST, &path, None).await?;
            expect_success(status, &doc)?;
            if no_wait && state_of(&doc) == "sealing" {
                eprintln!(
                    "batch {id} is sealing; `sallyport batch report {id}` once it has a verdict"
                );
                return Ok(ExitCode::from(EXIT_SEALING));
            }
            let mut progress = Progress::new(std::io::stderr().is_terminal());
            while state_of(&doc) == "sealing" {
                progress.show(&doc);
                tokio::time::sleep(POLL).await;
                doc = get_batch(&client, &id).await?;
            }
            progress.finish();
            return verdict_exit(&client, &id, &doc, json).await;
        }
        BatchCommand::Report { id, json } => {
            let doc = get_batch(&client, &id).await?;
            return verdict_exit(&client, &id, &doc, json).await;
        }
        BatchCommand::Release { id, reason } => {
            let path = format!("{}/release", batch_path(&id)?);
            let (status, out) = client
                .call(Method::POST, &path, Some(&json!({ "reason": reason })))
                .await?;
            expect_success(status, &out)?;
            println!("{}", release_text(&id, status, &out));
        }
        BatchCommand::Purge { id, reason } => {
            let path = format!("{}/purge", batch_path(&id)?);
            let (status, out) = client
                .call(Method::POST, &path, Some(&json!({ "reason": reason })))
                .await?;
            expect_success(status, &out)?;
            println!("batch {id} is purged: its members can never be read again");
        }
    }
    Ok(ExitCode::from(EXIT_OK))
}

/// The `POST /v1/batches` body with both documents' bytes exactly as given.
pub fn open_body(manifest: &[u8], provenance: Option<&[u8]>) -> Vec<u8> {
    let mut body = Vec::with_capacity(manifest.len() + provenance.map_or(0, <[u8]>::len) + 32);
    body.extend_from_slice(b"{\"manifest\":");
    body.extend_from_slice(manifest);
    if let Some(p) = provenance {
        body.extend_from_slice(b",\"provenance\":");
        body.extend_from_slice(p);
    }
    body.push(b'}');
    body
}

/// The report as text: `verdict: quarantined (2 findings)`, then each finding's `message`.
pub fn report_text(report: &Value) -> String {
    let verdict = report["verdict"].as_str().unwrap_or("unknown");
    let findings = report["findings"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut text = format!(
        "verdict: {verdict} ({} finding{})\n",
        findings.len(),
        if findings.len() == 1 { "" } else { "s" }
    );
    for f in findings {
        let line = f["message"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| f["code"].as_str().unwrap_or("finding").to_owned());
        text.push_str(&line);
        text.push('\n');
    }
    text
}

/// The exit code a verdict maps to; `None` for a report that names no verdict.
pub fn verdict_code(verdict: &str) -> Option<u8> {
    match verdict {
        "released" => Some(EXIT_OK),
        "quarantined" => Some(EXIT_QUARANTINED),
        _ => None,
    }
}

/// A non-2xx answer as an error with the problem's code, title and detail.
pub fn expect_success(status: u16, body: &Value) -> anyhow::Result<()> {
    if (200..300).contains(&status) {
        return Ok(());
    }
    bail!("{}", problem_text(status, body))
}

/// `the gateway answered 409 batch.not_open: Batch is not open — <detail>`.
pub fn problem_text(status: u16, body: &Value) -> String {
    let code = body["code"].as_str().unwrap_or("unknown");
    let mut text = format!("the gateway answered {status} {code}");
    if let Some(title) = body["title"].as_str() {
        text.push_str(": ");
        text.push_str(title);
    }
    if let Some(detail) = body["detail"].as_str() {
        text.push_str(" — ");
        text.push_str(detail);
    }
    text
}

fn release_text(id: &str, status: u16, out: &Value) -> String {
    if status == 202 || state_of(out) == "quarantined" {
        format!("approval recorded for batch {id}; waiting for a second auditor to approve")
    } else {
        format!("batch {id} is released")
    }
}

fn list_text(all: &[Value]) -> String {
    let mut text = format!(
        "{:<28} {:<12} {:<16} {:<16} {:<21} findings\n",
        "batch", "state", "owner", "profile", "created_at"
    );
    for b in all {
        text.push_str(&format!(
            "{:<28} {:<12} {:<16} {:<16} {:<21} {}\n",
            b["id"].as_str().unwrap_or_default(),
            b["state"].as_str().unwrap_or_default(),
            b["owner"].as_str().unwrap_or_default(),
            b["profile"].as_str().unwrap_or("-"),
            b["created_at"].as_str().unwrap_or_default(),
            b["verdict"]["findings"]
                .as_u64()
                .map_or("-".to_owned(), |n| n.to_string()),
        ));
    }
    text
}

async fn verdict_exit(
    client: &ApiClient,
    id: &str,
    doc: &Value,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let state = state_of(doc);
    if !matches!(state, "released" | "quarantined" | "purged") {
        bail!("batch {id} is {state}: it has no verdict");
    }
    let (status, report) = client
        .call(Method::GET, &format!("{}/report", batch_path(id)?), None)
        .await?;
    expect_success(status, &report)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report_text(&report));
    }
    let verdict = report["verdict"].as_str().unwrap_or_default();
    verdict_code(verdict)
        .map(ExitCode::from)
        .with_context(|| format!("the report names no verdict ({verdict:?})"))
}

async fn get_batch(client: &ApiClient, id: &str) -> anyhow::Result<Value> {
    let (status, out) = client.call(Method::GET, &batch_path(id)?, None).await?;
    expect_success(status, &out)?;
    Ok(out)
}

/// Every page of `GET /v1/batches`. Accepts a page as `{"batches": [...], "next": id}` or a
/// bare array; asks for the next page after the last id while pages come back full.
async fn list(client: &ApiClient, state: Option<&str>) -> anyhow::Result<Vec<Value>> {
    const LIMIT: usize = 500;
    let mut all = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut path = format!("/v1/batches?limit={LIMIT}");
        if let Some(s) = state {
            path.push_str(&format!("&state={s}"));
        }
        if let Some(a) = &after {
            path.push_str(&format!("&after={a}"));
        }
        let (status, out) = client.call(Method::GET, &path, None).await?;
        expect_success(status, &out)?;
        let page = match &out {
            Value::Array(a) => a.clone(),
            _ => out["batches"].as_array().cloned().unwrap_or_default(),
        };
        let next = match out["next"].as_str() {
            Some(n) => Some(n.to_owned()),
            None if page.len() == LIMIT => page
                .last()
                .and_then(|b| b["id"].as_str())
                .map(str::to_owned),
            None => None,
        };
        all.extend(page);
        match next {
            Some(n) if Some(&n) != after.as_ref() => {
                id_segment(&n)?;
                after = Some(n);
            }
            _ => break,
        }
    }
    Ok(all)
}

/// Reads a document file and checks it is one JSON object, so the body built around it
/// stays one object with two fields (the gateway judges everything else).
fn read_document(path: &Path) -> anyhow::Result<Vec<u8>> {
    let len = std::fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .len();
    if len > MAX_DOCUMENT_FILE {
        bail!(
            "{} is larger than {MAX_DOCUMENT_FILE} bytes",
            path.display()
        );
    }
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    check_object(&bytes).with_context(|| format!("{} is not one JSON object", path.display()))?;
    Ok(bytes)
}

fn check_object(bytes: &[u8]) -> anyhow::Result<()> {
    let v: Value = serde_json::from_slice(bytes)?;
    if !v.is_object() {
        bail!("the document must be a JSON object");
    }
    Ok(())
}

fn batch_path(id: &str) -> anyhow::Result<String> {
    Ok(format!("/v1/batches/{}", id_segment(id)?))
}

/// A batch id as a path segment: 1-128 of `A-Z a-z 0-9 - _`, nothing else reaches the URL.
fn id_segment(id: &str) -> anyhow::Result<&str> {
    if id.is_empty()
        || id.len() > 128
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        bail!("{id:?} is not a batch id");
    }
    Ok(id)
}

fn state_of(doc: &Value) -> &str {
    doc["state"].as_str().unwrap_or("unknown")
}

/// The seal progress line: redrawn in place on a terminal, a plain line every few seconds
/// otherwise.
struct Progress {
    tty: bool,
    started: Instant,
    last_plain: Option<Instant>,
    drawn: bool,
}

impl Progress {
    fn new(tty: bool) -> Self {
        Self {
            tty,
            started: Instant::now(),
            last_plain: None,
            drawn: false,
        }
    }

    fn show(&mut self, doc: &Value) {
        let line = progress_line(&doc["progress"], self.started.elapsed());
        let mut err = std::io::stderr();
        if self.tty {
            let _ = write!(err, "\r\x1b[2K{line}");
            let _ = err.flush();
            self.drawn = true;
        } else if self
            .last_plain
            .is_none_or(|t| t.elapsed() >= PLAIN_PROGRESS_EVERY)
        {
            let _ = writeln!(err, "{line}");
            self.last_plain = Some(Instant::now());
        }
    }

    fn finish(&mut self) {
        if self.drawn {
            let _ = writeln!(std::io::stderr());
        }
    }
}

/// `sealing: 2/3 members, 10.0/30.0 MB, 4.2 MB/s`.
fn progress_line(p: &Value, elapsed: Duration) -> String {
    let n = |k: &str| p[k].as_u64().unwrap_or(0);
    let mb = |b: u64| b as f64 / 1e6;
    let secs = elapsed.as_secs_f64();
    let rate = if secs > 0.0 {
        mb(n("bytes_checked")) / secs
    } else {
        0.0
    };
    format!(
        "sealing: {}/{} members, {:.1}/{:.1} MB, {rate:.1} MB/s",
        n("members_checked"),
        n("members_total"),
        mb(n("bytes_checked")),
        mb(n("bytes_total")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_carries_both_documents_byte_for_byte() {
        let manifest = b"{ \"version\" : \"sallyport.manifest/1\",\n \"members\": [] }\n";
        let provenance = b"{\"b\":1,\"a\":2}";
        let body = open_body(manifest, Some(provenance));
        let mut want = b"{\"manifest\":".to_vec();
        want.extend_from_slice(manifest);
        want.extend_from_slice(b",\"provenance\":");
        want.extend_from_slice(provenance);
        want.push(b'}');
        assert_eq!(body, want);
        let v: Value = serde_json::from_slice(&body).expect("one JSON object");
        assert_eq!(v["provenance"], json!({"a": 2, "b": 1}));
        assert_eq!(
            open_body(b"{}", None),
            b"{\"manifest\":{}}".to_vec(),
            "no provenance field without a file"
        );
    }

    #[test]
    fn only_one_json_object_is_sent() {
        assert!(check_object(b"{\"a\":1}\n").is_ok());
        let bad: [&[u8]; 5] = [
            b"[]",
            b"{} {}",
            b"{\"a\":1},\"provenance\":{}",
            b"",
            b"\xef\xbb\xbf{}",
        ];
        for bad in bad {
            assert!(check_object(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn reports_read_as_one_finding_per_line() {
        let report = json!({"verdict": "quarantined", "findings": [
            {"code": "ndjson.record_count_mismatch", "member": "Observation.ndjson",
             "message": "Observation.ndjson: 1997 records, manifest says 2000"},
            {"code": "member.missing", "message": "referral.pdf: listed, never uploaded"}]});
        assert_eq!(
            report_text(&report),
            "verdict: quarantined (2 findings)\n\
             Observation.ndjson: 1997 records, manifest says 2000\n\
             referral.pdf: listed, never uploaded\n"
        );
        assert_eq!(
            report_text(&json!({"verdict": "released", "findings": []})),
            "verdict: released (0 findings)\n"
        );
        assert_eq!(
            report_text(&json!({"verdict": "quarantined", "findings": [{"code": "x.y"}]})),
            "verdict: quarantined (1 finding)\nx.y\n"
        );
    }

    #[test]
    fn exit_codes_map_verdicts() {
        assert_eq!(verdict_code("released"), Some(0));
        assert_eq!(verdict_code("quarantined"), Some(3));
        assert_eq!(verdict_code("sealing"), None);
        let codes: Vec<u8> = EXIT_CODES.iter().map(|(c, _)| *c).collect();
        assert_eq!(codes, [0, 1, 3, 4]);
    }

    #[test]
    fn problems_show_code_title_and_detail() {
        let body = json!({"code": "batch.not_open", "title": "The batch is not open",
                          "detail": "it is sealing"});
        assert_eq!(
            problem_text(409, &body),
            "the gateway answered 409 batch.not_open: The batch is not open — it is sealing"
        );
        assert_eq!(
            problem_text(502, &Value::Null),
            "the gateway answered 502 unknown"
        );
        assert!(expect_success(202, &Value::Null).is_ok());
        assert!(expect_success(404, &body).is_err());
    }

    #[test]
    fn release_says_whether_a_second_auditor_is_needed() {
        assert!(
            release_text("b-1", 202, &json!({"state": "quarantined"})).contains("second auditor")
        );
        assert_eq!(
            release_text("b-1", 200, &json!({"state": "released"})),
            "batch b-1 is released"
        );
    }

    #[test]
    fn progress_and_ids() {
        let p = json!({"members_checked": 1, "members_total": 3,
                       "bytes_checked": 2_000_000, "bytes_total": 6_000_000});
        assert_eq!(
            progress_line(&p, Duration::from_secs(1)),
            "sealing: 1/3 members, 2.0/6.0 MB, 2.0 MB/s"
        );
        assert!(progress_line(&Value::Null, Duration::ZERO).starts_with("sealing: 0/0"));
        assert!(id_segment("b-01HZX3").is_ok());
        for bad in ["", "../x", "a/b", "a?b", "a b"] {
            assert!(id_segment(bad).is_err(), "{bad}");
        }
    }
}
