//! `sallyport audit verify|export|ship`.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use crate::audit::{AUDIT_LOG, chain};
use crate::config::Config;

mod ship;

/// Audit trail commands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Verify the hash chain: reports its length and head hash, or where it is broken.
    Verify {
        /// Verify an exported JSON-lines file instead of the configured state store.
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Write the chain as JSON lines (one entry per line, verifiable with `verify --file`).
    Export {
        /// Output file (`-` for standard output).
        #[arg(long, default_value = "-")]
        out: PathBuf,
    },
    /// Ship the chain to a SIEM (JSON lines or syslog + CEF, to a file or TCP / TLS),
    /// resuming after the last delivered entry.
    Ship(ship::ShipArgs),
}

/// Runs an audit command.
pub async fn run(cmd: AuditCommand, config: &Config) -> anyhow::Result<ExitCode> {
    match cmd {
        AuditCommand::Verify { file: Some(path) } => {
            let f = std::fs::File::open(&path)
                .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))?;
            let mut verifier = chain::Verifier::new();
            for line in std::io::BufReader::new(f).split(b'\n') {
                let line = line?;
                if line.is_empty() {
                    continue;
                }
                if let Err(e) = verifier.push(&line) {
                    eprintln!("audit chain BROKEN: {e}");
                    return Ok(ExitCode::FAILURE);
                }
            }
            report(&verifier.finish());
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Verify { file: None } => {
            let store = crate::app::open_state(config).await?;
            let total = store.log_head(AUDIT_LOG).await?.map_or(0, |e| e.seq);
            let bar = progress_bar(total);
            let result = crate::audit::verify_store(&*store, |n| bar.set_position(n)).await?;
            bar.finish_and_clear();
            match result {
                Ok(summary) => {
                    report(&summary);
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("audit chain BROKEN: {e}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        AuditCommand::Ship(args) => ship::run(args, config).await,
        AuditCommand::Export { out } => {
            let store = crate::app::open_state(config).await?;
            let mut w: Box<dyn Write> = if out.as_os_str() == "-" {
                Box::new(std::io::stdout().lock())
            } else {
                Box::new(std::fs::File::create(&out)?)
            };
            let mut next = 1;
            loop {
                let page = store.log_read(AUDIT_LOG, next, 1000).await?;
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

fn report(summary: &chain::ChainSummary) {
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
