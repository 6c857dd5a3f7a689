//! `sallyport audit archive [--dry-run] [--json]`: one retention sweep now
//! (`audit::archive`), the same the gateway runs every `audit.archive_interval`.
//!
//! A real sweep opens the journal as its writer, so it refuses to run beside a gateway on
//! the same data directory (that gateway sweeps by itself); `--dry-run` reads the journal
//! without a lock and changes nothing, beside a running gateway too. A sweep that moved
//! segments is recorded (`audit.archived`) before the command reports success.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;

use crate::audit::archive::{self, SweepOptions, Swept};
use crate::audit::journal::Journal;
use crate::audit::{AUDIT_LOG, Auditor};
use crate::config::Config;

/// Runs one sweep.
pub async fn run(dry_run: bool, json: bool, config: &Config) -> anyhow::Result<ExitCode> {
    let Some(retention) = config.audit.retention.clone() else {
        anyhow::bail!(
            "audit.retention is not set: nothing is ever archived (set audit.retention and audit.archive_dir)"
        );
    };
    let mut opts = SweepOptions::new(retention.period, retention.archive_dir.clone());
    opts.dry_run = dry_run;
    let key = crate::audit::checkpointer::CheckpointKey::load_or_generate(
        &config.audit.checkpoint_key,
        config.allow_world_readable_secrets,
    )
    .context("opening the audit checkpoint key")?;
    let swept = if dry_run {
        let journal = Journal::open_read_only(&crate::app::journal_dir(config), AUDIT_LOG.0)?;
        tokio::task::spawn_blocking(move || archive::sweep(&journal, &key, &opts)).await??
    } else {
        let state = crate::app::open_state(config).await?;
        let (log, journal) = crate::app::open_audit_writer_parts(config, &state).await?;
        let journal: Arc<Journal> =
            journal.context("audit.retention archives the journal (audit.store = \"journal\")")?;
        let auditor = Auditor::start(
            log,
            "cli".to_owned(),
            config.audit.batch_max,
            Arc::new(crate::metrics::Metrics::new()),
        );
        let j = journal.clone();
        let swept = tokio::task::spawn_blocking(move || archive::sweep(&j, &key, &opts)).await??;
        if let Some(s) = &swept {
            auditor
                .emit(&crate::audit::AuditContext::operator(), &s.event())
                .await
                .context("recording audit.archived")?;
        }
        swept
    };
    print(swept.as_ref(), &retention.archive_dir, dry_run, json)?;
    Ok(ExitCode::SUCCESS)
}

fn print(swept: Option<&Swept>, dir: &Path, dry_run: bool, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(&swept)?);
        return Ok(());
    }
    let Some(s) = swept else {
        println!(
            "nothing to archive: no sealed journal segment is past audit.retention ({})",
            dir.display()
        );
        return Ok(());
    };
    let verb = if dry_run { "would archive" } else { "archived" };
    println!(
        "{verb} {} segment(s), entries {} to {}, to {} (closed by checkpoint {})",
        s.segments.len(),
        s.first_seq,
        s.last_seq,
        s.destination.display(),
        s.checkpoint
    );
    for name in &s.segments {
        println!("  {name}");
    }
    Ok(())
}
