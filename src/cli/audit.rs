//! `sallyport audit verify|archive|export|public-key|ship|query|trace`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use crate::audit::chain;
use crate::config::Config;

mod archive_cmd;
pub mod query;
mod ship;
mod verify_cmd;
pub use verify_cmd::CheckpointArgs;

/// Audit trail commands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Verify the hash chain: reports its length and head hash, or where it is broken.
    Verify {
        /// Verify an exported JSON-lines file instead of the configured state store.
        #[arg(long)]
        file: Option<PathBuf>,
        /// Signed checkpoints to check the chain against (repeatable).
        #[command(flatten)]
        checkpoints: CheckpointArgs,
        /// The archive directory (`audit.archive_dir`, or a restored copy): verify its
        /// segments and checkpoints, then the live journal continuing from its last entry.
        #[arg(long, value_name = "DIR", conflicts_with = "file")]
        archive: Option<PathBuf>,
    },
    /// Archive now: move sealed journal segments older than `audit.retention` to
    /// `audit.archive_dir`, closed by a signed checkpoint (the gateway does this every
    /// `audit.archive_interval`).
    Archive {
        /// Report what would be archived; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print the result as JSON (`null`: nothing to archive).
        #[arg(long)]
        json: bool,
    },
    /// Print the audit checkpoint public key: SPKI PEM and the signed-note verifier key.
    PublicKey,
    /// Write the chain as JSON lines (one entry per line, verifiable with `verify --file`).
    Export {
        /// Output file (`-` for standard output).
        #[arg(long, default_value = "-")]
        out: PathBuf,
    },
    /// Ship the chain to a SIEM (JSON lines or syslog + CEF, to a file or TCP / TLS),
    /// resuming after the last delivered entry.
    Ship(ship::ShipArgs),
    /// Query the audit trail through the running gateway (auditor token): entries
    /// matching every filter given, in order, all pages; a table, or JSON lines.
    Query(query::QueryArgs),
    /// The whole story of one upload, batch, artifact or grant, through the running
    /// gateway (auditor token): one line per step, or `--json`.
    Trace(query::TraceArgs),
}

/// Runs an audit command.
pub async fn run(cmd: AuditCommand, config: &Config) -> anyhow::Result<ExitCode> {
    match cmd {
        AuditCommand::Verify {
            file,
            checkpoints,
            archive,
        } => Ok(verify_cmd::run(file, checkpoints, archive, config).await),
        AuditCommand::Archive { dry_run, json } => archive_cmd::run(dry_run, json, config).await,
        AuditCommand::PublicKey => {
            let key = crate::audit::checkpointer::CheckpointKey::load_or_generate(
                &config.audit.checkpoint_key,
                config.allow_world_readable_secrets,
            )?;
            print!("{}", key.public_pem());
            println!("{}", key.verifier().to_vkey());
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Ship(args) => ship::run(args, config).await,
        AuditCommand::Query(args) => query::run_query(args, Some(config)).await,
        AuditCommand::Trace(args) => query::run_trace(args, Some(config)).await,
        AuditCommand::Export { out } => {
            let log = crate::app::open_audit_log(config).await?;
            let mut w: Box<dyn Write> = if out.as_os_str() == "-" {
                Box::new(std::io::stdout().lock())
            } else {
                Box::new(std::fs::File::create(&out)?)
            };
            let mut next = 1;
            loop {
                let page = log.read(next, 1000).await?;
                if page.is_empty() {
                    break;
                }
                for e in &page {
                    w.write_all(&e.bytes)?;
                    w.write_all(b"\n")?;
                    next = e.seq + 1;
                }
            }
            w.flush()?;
            eprintln!("exported {} entries", next - 1);
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub(crate) fn report(summary: &chain::ChainSummary) {
    println!("audit chain intact");
    println!("  length     {}", summary.length);
    println!("  head hash  {}", summary.head_hash);
}

/// A progress bar on a terminal; hidden otherwise.
pub fn progress_bar(total: u64) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{spinner} {msg} [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})",
    ) {
        bar.set_style(style);
    }
    bar.set_message("verifying");
    bar
}
