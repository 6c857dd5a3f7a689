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
    Query(Box<query::QueryArgs>),
    /// The whole story of one upload, batch, artifact, grant or invitation, through the running
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
        AuditCommand::Query(args) => query::run_query(*args, Some(config)).await,
        AuditCommand::Trace(args) => query::run_trace(args, Some(config)).await,
        AuditCommand::Export { out } => {
            let log = crate::app::open_audit_log(config).await?;
            let exported = if out.as_os_str() == "-" {
                let mut w = std::io::BufWriter::new(std::io::stdout().lock());
                let n = export(log.as_ref(), &mut w).await?;
                w.flush()?;
                n
            } else {
                export_to_file(log.as_ref(), &out).await?
            };
            eprintln!("exported {exported} entries");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Writes every entry of `log` to `w` as JSON lines; returns how many.
async fn export(log: &dyn crate::audit::log::AuditLog, w: &mut impl Write) -> anyhow::Result<u64> {
    let mut next = 1;
    let mut count = 0;
    loop {
        let page = log.read(next, 1000).await?;
        if page.is_empty() {
            return Ok(count);
        }
        for e in &page {
            w.write_all(&e.bytes)?;
            w.write_all(b"\n")?;
            next = e.seq + 1;
            count += 1;
        }
    }
}

/// Exports into `out` the way a key or a report is written: into `<out>.partial` (mode
/// 0600, since the trail names principals, addresses and object ids), synced, then renamed
/// over `out` and the directory synced. A failed export leaves no file under `out` that
/// looks complete, and an existing `out` is replaced only by a whole export.
async fn export_to_file(
    log: &dyn crate::audit::log::AuditLog,
    out: &std::path::Path,
) -> anyhow::Result<u64> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut partial = out.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&partial)
        .map_err(|e| anyhow::anyhow!("creating {}: {e}", partial.display()))?;
    // A `.partial` left by an earlier run keeps its old mode unless it is set again.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    let mut w = std::io::BufWriter::new(file);
    let result = async {
        let n = export(log, &mut w).await?;
        let file = w.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&partial, out)?;
        let dir = match out.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => std::path::Path::new("."),
        };
        std::fs::File::open(dir)?.sync_all()?;
        anyhow::Ok(n)
    }
    .await;
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result.map_err(|e| anyhow::anyhow!("exporting the audit trail to {}: {e}", out.display()))
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
