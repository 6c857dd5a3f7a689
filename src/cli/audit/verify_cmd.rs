//! `sallyport audit verify [--file F] [--checkpoint FILE…] [--checkpoint-dir DIR]
//! [--public-key FILE]`: the chain, and the chain against signed checkpoints.
//!
//! Exit codes (documented in `docs/audit.md`): 0 the chain is intact and every checkpoint
//! given is valid and consistent; 1 evidence of tampering (a broken chain, a truncated or
//! rewritten tail, a checkpoint that does not verify); 2 verification could not be done
//! (the log, a checkpoint file or the public key could not be read, or arguments are
//! missing).

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

use crate::audit::checkpoint::{NoteError, NoteVerifier};
use crate::audit::checkpointer::{files_in_dir, origin, read_note};
use crate::audit::verify::{ChainCheck, CheckpointInput, CheckpointStatus, Report};
use crate::config::Config;

/// Exit code: tampering found.
pub const EXIT_TAMPERED: u8 = 1;
/// Exit code: could not verify.
pub const EXIT_CANNOT_VERIFY: u8 = 2;

/// The checkpoint flags of `audit verify`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct CheckpointArgs {
    /// A signed checkpoint file to check the chain against (repeatable).
    #[arg(long = "checkpoint", value_name = "FILE")]
    pub checkpoint: Vec<PathBuf>,
    /// Every `*.checkpoint` file in this directory (`audit.checkpoint_dir`, or a copy).
    #[arg(long, value_name = "DIR")]
    pub checkpoint_dir: Option<PathBuf>,
    /// The checkpoint public key: the SPKI PEM or the verifier key line that
    /// `sallyport audit public-key` prints. Required with checkpoints.
    #[arg(long, value_name = "FILE")]
    pub public_key: Option<PathBuf>,
}

/// Runs the verification; every failure to verify is exit code 2.
pub async fn run(file: Option<PathBuf>, args: CheckpointArgs, config: &Config) -> ExitCode {
    match run_inner(file, args, config).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: cannot verify: {e:#}");
            ExitCode::from(EXIT_CANNOT_VERIFY)
        }
    }
}

async fn run_inner(
    file: Option<PathBuf>,
    args: CheckpointArgs,
    config: &Config,
) -> anyhow::Result<ExitCode> {
    let mut files = args.checkpoint.clone();
    if let Some(dir) = &args.checkpoint_dir {
        files.extend(
            files_in_dir(dir)
                .with_context(|| format!("reading checkpoint directory {}", dir.display()))?,
        );
    }
    let verifier = match &args.public_key {
        Some(p) => Some(load_public_key(p)?),
        None if files.is_empty() => None,
        None => anyhow::bail!("--public-key is required to check checkpoints"),
    };
    let mut inputs = Vec::with_capacity(files.len());
    for f in &files {
        let bytes = read_note(f).with_context(|| format!("reading checkpoint {}", f.display()))?;
        let note = match &verifier {
            Some(v) => v.verify(&bytes),
            None => Err(NoteError::BadKey("no public key")),
        };
        inputs.push(CheckpointInput {
            source: f.display().to_string(),
            note,
        });
    }
    let lengths: Vec<u64> = inputs
        .iter()
        .filter_map(|c| c.note.as_ref().ok().map(|cp| cp.length))
        .collect();
    let mut check = ChainCheck::new(lengths);
    match file {
        Some(path) => {
            let f = std::fs::File::open(&path)
                .with_context(|| format!("cannot open {}", path.display()))?;
            for line in std::io::BufReader::new(f).split(b'\n') {
                let line = line.with_context(|| format!("reading {}", path.display()))?;
                if !line.is_empty() {
                    check.push(&line);
                }
            }
        }
        None => {
            let log = crate::app::open_audit_log(config).await?;
            let total = log.head().await?.map_or(0, |e| e.seq);
            let bar = super::progress_bar(total);
            let mut next = 1;
            loop {
                let page = log.read(next, 1000).await?;
                if page.is_empty() {
                    break;
                }
                for entry in &page {
                    check.push(&entry.bytes);
                    next = entry.seq + 1;
                }
                bar.set_position(next - 1);
            }
            bar.finish_and_clear();
        }
    }
    let report = check.finish(&origin(), inputs);
    print_report(&report);
    Ok(if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_TAMPERED)
    })
}

fn print_report(report: &Report) {
    match &report.broken {
        None => super::report(&report.intact),
        Some(e) => {
            eprintln!("audit chain BROKEN: {e}");
            eprintln!(
                "  intact up to entry {} (head {}); the log has {} entries",
                report.intact.length, report.intact.head_hash, report.log_length
            );
        }
    }
    for c in &report.checkpoints {
        let line = match c.length {
            Some(l) => format!("checkpoint {} (length {l}): {}", c.source, c.status),
            None => format!("checkpoint {}: {}", c.source, c.status),
        };
        if c.status == CheckpointStatus::Consistent {
            println!("{line}");
        } else {
            eprintln!("{line}");
        }
    }
    if !report.checkpoints.is_empty() {
        let good = report
            .checkpoints
            .iter()
            .filter(|c| c.status == CheckpointStatus::Consistent)
            .count();
        println!(
            "checkpoints  {good} of {} valid and consistent",
            report.checkpoints.len()
        );
    }
}

/// Reads a public key: SPKI PEM, or a note verifier key line.
fn load_public_key(path: &Path) -> anyhow::Result<NoteVerifier> {
    use ed25519_dalek::pkcs8::DecodePublicKey;
    let bytes = read_note(path).with_context(|| format!("reading {}", path.display()))?;
    let text =
        std::str::from_utf8(&bytes).with_context(|| format!("{} is not text", path.display()))?;
    if text.contains("-----BEGIN PUBLIC KEY-----") {
        let pem = text
            .lines()
            .skip_while(|l| !l.starts_with("-----BEGIN PUBLIC KEY-----"))
            .take_while(|l| !l.starts_with("-----END PUBLIC KEY-----"))
            .chain(std::iter::once("-----END PUBLIC KEY-----"))
            .collect::<Vec<_>>()
            .join("\n");
        let key = ed25519_dalek::VerifyingKey::from_public_key_pem(&pem).map_err(|_| {
            anyhow::anyhow!("{} is not an Ed25519 public key (PEM)", path.display())
        })?;
        return Ok(NoteVerifier {
            name: origin(),
            key,
        });
    }
    let line = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default();
    NoteVerifier::from_vkey(line).with_context(|| format!("reading {}", path.display()))
}
