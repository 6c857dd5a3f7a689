//! `sallyport keys …`: rotate the KEK, re-wrap data keys, show status, retire old KEK
//! versions.
//!
//! The work is done by [`crate::keys::admin`]; this file parses arguments and prints.
//! `rewrap` shows a progress bar on a terminal and plain progress lines otherwise, and
//! ends with a summary; it is resumable (records already on the current version are
//! skipped). Audit hook: [`run_with_events`] passes every [`KeyEvent`] (rotated, each
//! re-wrapped or failed DEK, retired) to the caller's callback, and returns a
//! [`KeysOutcome`] summary.
//!
//! Not here: building the state store (the caller passes it), audit emission.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};

use crate::keys::KeysSettings;
use crate::keys::admin::{self, KeyEvent, KeyStatus, RewrapSummary};
use crate::keys::{KekRef, KekState};
use crate::state::StateStore;

/// Progress lines on a non-terminal: one per this many records.
const PLAIN_PROGRESS_EVERY: u64 = 1000;

/// `sallyport keys` subcommands.
#[derive(clap::Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum KeysCommand {
    /// Make a new KEK version current; new objects are wrapped under it. Existing data keys
    /// keep working; run `rewrap` to move them.
    Rotate,
    /// Re-wrap every data key that is not on the current KEK version. Object data is not
    /// touched. Safe to interrupt and run again.
    Rewrap {
        /// Print plain progress lines even on a terminal.
        #[arg(long)]
        plain: bool,
    },
    /// Show the KEK versions and how many data keys each one wraps.
    Status {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Destroy a KEK version's material. Refused for the current version and while any
    /// data key is still wrapped under it.
    Retire {
        /// The KEK version number to retire.
        version: u32,
    },
}

/// What a `keys` command did (for the caller's audit record and exit status).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeysOutcome {
    /// `rotate`: the new current version.
    Rotated(KekRef),
    /// `rewrap`: the run's summary.
    Rewrapped(RewrapSummary),
    /// `status`.
    Status(KeyStatus),
    /// `retire`: the retired version.
    Retired(KekRef),
}

/// Runs a `keys` command, printing to stdout (progress and failures to stderr).
pub async fn run(
    cmd: KeysCommand,
    settings: &KeysSettings,
    state: Arc<dyn StateStore>,
) -> anyhow::Result<()> {
    run_with_events(cmd, settings, state, &mut std::io::stdout(), &mut |_| {})
        .await
        .map(|_| ())
}

/// Runs a `keys` command, writing its report to `out` and passing every key event to
/// `on_event` (the audit hook). A rewrap with failed records is an error after its
/// summary is printed.
pub async fn run_with_events(
    cmd: KeysCommand,
    settings: &KeysSettings,
    state: Arc<dyn StateStore>,
    out: &mut (dyn Write + Send),
    on_event: &mut (dyn FnMut(KeyEvent<'_>) + Send),
) -> anyhow::Result<KeysOutcome> {
    let provider = settings
        .build_provider()
        .context("loading the key provider")?;
    match cmd {
        KeysCommand::Rotate => {
            let kek = admin::rotate(&*provider, on_event).await?;
            writeln!(out, "KEK {kek} is now current.")?;
            writeln!(
                out,
                "Run `sallyport keys rewrap` to move existing data keys to it."
            )?;
            Ok(KeysOutcome::Rotated(kek))
        }
        KeysCommand::Status { json } => {
            let status = admin::status(&*provider, &state).await?;
            if json {
                print_status_json(out, &status)?;
            } else {
                print_status(out, &status)?;
            }
            Ok(KeysOutcome::Status(status))
        }
        KeysCommand::Retire { version } => {
            let kek = admin::retire(&*provider, &state, version, on_event).await?;
            writeln!(out, "KEK {kek} is retired; its material is destroyed.")?;
            Ok(KeysOutcome::Retired(kek))
        }
        KeysCommand::Rewrap { plain } => {
            let fancy = !plain && std::io::stderr().is_terminal();
            let summary = rewrap(&*provider, &state, fancy, on_event).await?;
            writeln!(
                out,
                "rewrap: {} examined, {} re-wrapped, {} already current, {} deleted meanwhile, {} failed",
                summary.examined,
                summary.rewrapped,
                summary.already_current,
                summary.vanished,
                summary.failed
            )?;
            if summary.failed > 0 {
                anyhow::bail!(
                    "{} data key(s) could not be re-wrapped (listed above); fix them and run rewrap again",
                    summary.failed
                );
            }
            Ok(KeysOutcome::Rewrapped(summary))
        }
    }
}

async fn rewrap(
    provider: &dyn crate::keys::KeyProvider,
    state: &Arc<dyn StateStore>,
    fancy: bool,
    on_event: &mut (dyn FnMut(KeyEvent<'_>) + Send),
) -> anyhow::Result<RewrapSummary> {
    let mut bar: Option<ProgressBar> = None;
    let result = admin::rewrap_all(provider, state, &mut |event| {
        match &event {
            KeyEvent::RewrapStarted { total, to } => {
                if fancy {
                    let b = ProgressBar::new(*total);
                    if let Ok(style) = ProgressStyle::with_template(
                        "{msg} [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})",
                    ) {
                        b.set_style(style.progress_chars("=> "));
                    }
                    b.set_message(format!("re-wrapping to {to}"));
                    b.enable_steady_tick(Duration::from_millis(200));
                    bar = Some(b);
                } else {
                    eprintln!("re-wrapping {total} data key(s) to KEK {to}");
                }
            }
            KeyEvent::RewrapProgress { examined } => match &bar {
                Some(b) => b.set_position(*examined),
                None if examined % PLAIN_PROGRESS_EVERY == 0 => {
                    eprintln!("  {examined} examined");
                }
                None => {}
            },
            KeyEvent::RewrapFailed { object, error } => {
                let line = format!("  object {object}: {error}");
                match &bar {
                    Some(b) => b.println(line),
                    None => eprintln!("{line}"),
                }
            }
            _ => {}
        }
        on_event(event);
    })
    .await;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    Ok(result?)
}

fn state_name(state: KekState) -> &'static str {
    match state {
        KekState::Current => "current",
        KekState::Active => "active",
        KekState::Retired => "retired",
    }
}

fn created(unix: u64) -> String {
    if unix == 0 {
        return "-".into();
    }
    i64::try_from(unix)
        .ok()
        .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}

fn print_status(out: &mut (dyn Write + Send), status: &KeyStatus) -> std::io::Result<()> {
    writeln!(out, "provider: {}", status.provider)?;
    writeln!(out, "current:  {}", status.current)?;
    writeln!(
        out,
        "{:<8} {:<8} {:<21} {:>10}",
        "version", "state", "created", "data keys"
    )?;
    for v in &status.versions {
        writeln!(
            out,
            "{:<8} {:<8} {:<21} {:>10}",
            v.info.kek.version,
            state_name(v.info.state),
            created(v.info.created_unix),
            v.deks
        )?;
    }
    Ok(())
}

fn print_status_json(out: &mut (dyn Write + Send), status: &KeyStatus) -> std::io::Result<()> {
    let versions: Vec<_> = status
        .versions
        .iter()
        .map(|v| {
            serde_json::json!({
                "kek_id": v.info.kek.id.as_str(),
                "version": v.info.kek.version,
                "state": state_name(v.info.state),
                "created_unix": v.info.created_unix,
                "data_keys": v.deks,
            })
        })
        .collect();
    let doc = serde_json::json!({
        "provider": status.provider,
        "current": { "kek_id": status.current.id.as_str(), "version": status.current.version },
        "versions": versions,
    });
    writeln!(out, "{doc}")
}
