//! `sallyport audit query [filters] [--json]` and `sallyport audit trace ID [--json]`:
//! through the running gateway's API (`GET /v1/audit/events`, `GET /v1/audit/trace/{id}`)
//! with an auditor token, so the same role check and the same `audit.queried` record apply
//! as to any client. A query pages through every result.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use http::Method;

use crate::audit::query::trace::render_line;
use crate::audit::query::{Entry, Query};
use crate::cli::api::{ApiArgs, ApiClient, expect_success};
use crate::config::Config;

/// Filters for `audit query` (each given one must hold).
#[derive(Debug, Clone, clap::Args)]
pub struct QueryArgs {
    /// How to reach the gateway.
    #[command(flatten)]
    pub api: ApiArgs,
    /// Entries at or after this time (RFC 3339 UTC, e.g. 2026-12-06T02:00:00Z).
    #[arg(long)]
    since: Option<String>,
    /// Entries at or before this time.
    #[arg(long)]
    until: Option<String>,
    /// The acting client's name.
    #[arg(long)]
    principal: Option<String>,
    /// The client address, exact or a CIDR block (203.0.113.0/24).
    #[arg(long)]
    client: Option<String>,
    /// An upload id the entry mentions.
    #[arg(long)]
    upload: Option<String>,
    /// A batch id.
    #[arg(long)]
    batch: Option<String>,
    /// An artifact id.
    #[arg(long)]
    artifact: Option<String>,
    /// A grant (link) id.
    #[arg(long)]
    grant: Option<String>,
    /// An upload invitation id: entries naming it, and what was done through it.
    #[arg(long)]
    invitation: Option<String>,
    /// An action (link.issued) or a prefix ending in '.' (link.).
    #[arg(long)]
    action: Option<String>,
    /// success, failure or denied.
    #[arg(long)]
    outcome: Option<String>,
    /// Stop after this many entries (default: all).
    #[arg(long)]
    max: Option<u64>,
    /// Print the entries as JSON lines (as stored) instead of a table.
    #[arg(long)]
    json: bool,
}

/// `audit trace ID`.
#[derive(Debug, Clone, clap::Args)]
pub struct TraceArgs {
    /// How to reach the gateway.
    #[command(flatten)]
    pub api: ApiArgs,
    /// An upload, batch, artifact, grant or invitation id.
    id: String,
    /// Print the trace as JSON (the API's answer).
    #[arg(long)]
    json: bool,
}

impl QueryArgs {
    /// The query string, checked with the gateway's own parser first so that a bad value
    /// is reported here, by name.
    fn query_string(&self) -> anyhow::Result<String> {
        let pairs = [
            ("since", &self.since),
            ("until", &self.until),
            ("principal", &self.principal),
            ("client", &self.client),
            ("upload", &self.upload),
            ("batch", &self.batch),
            ("artifact", &self.artifact),
            ("grant", &self.grant),
            ("invitation", &self.invitation),
            ("action", &self.action),
            ("outcome", &self.outcome),
        ];
        let mut qs = Vec::new();
        for (k, v) in pairs {
            if let Some(v) = v {
                if v.contains(['&', '#', '=', ' ']) {
                    anyhow::bail!("--{k}: the value contains '&', '#', '=' or a space");
                }
                qs.push(format!("{k}={v}"));
            }
        }
        let qs = qs.join("&");
        Query::parse(&qs).map_err(|e| anyhow::anyhow!("bad filter: {e}"))?;
        Ok(qs)
    }
}

/// Runs `audit query`.
pub async fn run_query(args: QueryArgs, config: Option<&Config>) -> anyhow::Result<ExitCode> {
    let qs = args.query_string()?;
    let client = ApiClient::from_args(&args.api, config)?;
    let mut out = std::io::stdout().lock();
    let mut cursor: Option<String> = None;
    let mut printed = 0u64;
    if !args.json {
        writeln!(
            out,
            "TIME                      SEQ     ACTION                   OUTCOME WHO / FROM / WHAT"
        )?;
    }
    loop {
        let remaining = args.max.map_or(1000, |m| (m - printed).min(1000));
        let mut path = format!("/v1/audit/events?limit={remaining}");
        if !qs.is_empty() {
            path.push('&');
            path.push_str(&qs);
        }
        if let Some(c) = &cursor {
            path.push_str("&cursor=");
            path.push_str(c);
        }
        let (status, body) = client.call(Method::GET, &path, None).await?;
        expect_success(status, &body)?;
        let entries = body["entries"]
            .as_array()
            .context("the answer has no entries")?;
        for e in entries {
            if args.json {
                writeln!(out, "{e}")?;
            } else {
                let entry: Entry = serde_json::from_value(e.clone())
                    .context("the gateway sent an entry that is not an audit entry")?;
                writeln!(out, "{}", render_line(&entry))?;
            }
            printed += 1;
        }
        cursor = body["next_cursor"].as_str().map(str::to_owned);
        if cursor.is_none() || args.max.is_some_and(|m| printed >= m) {
            break;
        }
    }
    out.flush()?;
    eprintln!("{printed} entries");
    Ok(ExitCode::SUCCESS)
}

/// Runs `audit trace`.
pub async fn run_trace(args: TraceArgs, config: Option<&Config>) -> anyhow::Result<ExitCode> {
    args.id.parse::<crate::ids::OpaqueId>().map_err(|e| {
        anyhow::anyhow!(
            "{:?} is not an upload, batch, artifact or grant id: {e}",
            args.id
        )
    })?;
    let client = ApiClient::from_args(&args.api, config)?;
    let (status, body) = client
        .call(Method::GET, &format!("/v1/audit/trace/{}", args.id), None)
        .await?;
    expect_success(status, &body)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&body)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    let lines = body["lines"]
        .as_array()
        .context("the answer has no lines")?;
    writeln!(out, "trace {}: {} entries", args.id, lines.len())?;
    for line in lines {
        writeln!(out, "{}", line.as_str().unwrap_or_default())?;
    }
    if body["truncated"].as_bool() == Some(true) {
        writeln!(out, "(cut at 10,000 entries)")?;
    }
    Ok(ExitCode::SUCCESS)
}
