//! `sallyport audit ship`: the command line around `audit::ship`.
//!
//! A separate subcommand, not `export --follow`: `export` is a stateless dump to stdout or
//! a file; `ship` owns a durable cursor, network targets, retries and a follow mode
//! (`docs/decisions/0003-siem-export.md`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use crate::audit::ship::{self, Progress, ShipOptions, Target};
use crate::audit::siem::Format;
use crate::config::Config;

/// Arguments of `audit ship`.
#[derive(Debug, Args)]
pub struct ShipArgs {
    /// Where to: `file:PATH`, `tcp://HOST:PORT` or `tls://HOST:PORT`.
    #[arg(long)]
    to: String,
    /// `jsonl` (the entries as stored) or `syslog-cef` (RFC 5424 with a CEF message).
    #[arg(long, default_value = "jsonl")]
    format: String,
    /// The delivery cursor (0600). Default: `PATH.ship-state` beside a file output, or
    /// `audit-ship-SCHEME-HOST-PORT.state` in the data directory.
    #[arg(long)]
    state: Option<PathBuf>,
    /// PEM CA file that must sign the TLS endpoint's certificate (required for tls://).
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// Keep tailing new entries; without it, stop at the current head.
    #[arg(long)]
    follow: bool,
    /// Entries per batch (one write and one cursor update each).
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    batch: u32,
    /// Longest wait between retries while the endpoint is down (e.g. `30s`).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    retry_max: Duration,
    /// How often `--follow` looks for new entries.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    poll: Duration,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `audit ship`.
pub async fn run(args: ShipArgs, config: &Config) -> anyhow::Result<ExitCode> {
    let format = Format::parse(&args.format)
        .ok_or_else(|| anyhow::anyhow!("--format must be jsonl or syslog-cef"))?;
    let target = Target::parse(&args.to, args.ca_file.clone())?;
    let state = match (&args.state, &target) {
        (Some(s), _) => s.clone(),
        (None, Target::File(p)) => {
            let mut s = p.clone().into_os_string();
            s.push(".ship-state");
            PathBuf::from(s)
        }
        (None, Target::Tcp { host, port }) => config
            .data_dir
            .join(format!("audit-ship-tcp-{}-{port}.state", file_safe(host))),
        (None, Target::Tls { host, port, .. }) => config
            .data_dir
            .join(format!("audit-ship-tls-{}-{port}.state", file_safe(host))),
    };
    let opts = ShipOptions {
        target,
        format,
        state,
        follow: args.follow,
        batch_max: args.batch as usize,
        poll: args.poll,
        retry_max: args.retry_max,
    };
    let store = crate::app::open_audit_log(config).await.map_err(|e| {
        // A chain still in the embedded store (never moved to the journal) has one
        // process at a time: say what to do about it.
        e.context(
            "audit ship reads the audit log itself; a chain in the embedded state store \
             needs the gateway stopped (docs/audit.md, SIEM export)",
        )
    })?;
    let total = store.head().await?.map_or(0, |e| e.seq);
    let bar = super::progress_bar(total);
    bar.set_message("shipping");
    let mut progress = CliProgress { bar: bar.clone() };
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let summary = ship::ship(&*store, &opts, &mut progress, stop).await?;
    bar.finish_and_clear();
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        eprintln!(
            "shipped {} entries to {} as {} (delivered up to seq {}, {} retries)",
            summary.delivered, summary.target, summary.format, summary.last_seq, summary.retries
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn file_safe(host: &str) -> String {
    host.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

struct CliProgress {
    bar: indicatif::ProgressBar,
}

impl Progress for CliProgress {
    fn delivered(&mut self, last_seq: u64, head: u64) {
        self.bar.set_length(head);
        self.bar.set_position(last_seq);
    }

    fn retrying(&mut self, error: &str, wait: Duration) {
        self.bar.suspend(|| {
            eprintln!(
                "audit ship: {error}; nothing is lost, retrying in {}",
                humantime::format_duration(wait)
            );
        });
    }
}
