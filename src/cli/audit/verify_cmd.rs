//! `sallyport audit verify [--file F | --archive DIR] [--checkpoint FILE…]
//! [--checkpoint-dir DIR] [--public-key FILE]`: the chain, and the chain against signed
//! checkpoints.
//!
//! With `--archive DIR` the archived segments are verified first (and every checkpoint
//! in DIR, which closes each archived run), then the live journal continuing from the
//! archive's last entry: a gap, an edit or a cut at the boundary is reported with its
//! position, and so is an archive base that is not the archive's entry. Without it, a
//! journal whose oldest segments were archived is verified from its archive base on and
//! the report says so (entries 1 to K are archived); a journal that starts after entry 1
//! with no archive base is a missing prefix (exit 1).
//!
//! Exit codes (documented in `docs/audit.md`): 0 the chain is intact and every checkpoint
//! given is valid and consistent; 1 evidence of tampering (a broken chain, a truncated or
//! rewritten tail, a checkpoint that does not verify); 2 verification could not be done
//! (the log, a checkpoint file or the public key could not be read, or arguments are
//! missing).

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;

use crate::audit::AUDIT_LOG;
use crate::audit::archive::read::{Item, read as read_archive};
use crate::audit::chain;
use crate::audit::checkpoint::{MAX_NOTE_BYTES, NoteError, NoteVerifier, key_id};
use crate::audit::checkpointer::{FILE_SUFFIX, bucket_folder, files_in_dir, origin, read_note};
use crate::audit::journal::Journal;
use crate::audit::log::AuditLog;
use crate::audit::verify::{ChainCheck, CheckpointInput, CheckpointStatus, Report};
use crate::blob::s3::write_once::WriteOnceFolder;
use crate::config::{AuditStore, Config};

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
    /// Every checkpoint this public key signed in the configured bucket
    /// (`audit.checkpoint_bucket`, the S3 blob store's by default): the objects of the
    /// key's folder, `audit-checkpoints/<key id>/`.
    #[arg(long)]
    pub checkpoint_bucket: bool,
    /// The checkpoint public key: the SPKI PEM or the verifier key line that
    /// `sallyport audit public-key` prints. Required with checkpoints.
    #[arg(long, value_name = "FILE")]
    pub public_key: Option<PathBuf>,
}

/// Runs the verification; every failure to verify is exit code 2.
pub async fn run(
    file: Option<PathBuf>,
    args: CheckpointArgs,
    archive: Option<PathBuf>,
    config: &Config,
) -> ExitCode {
    match run_inner(file, args, archive, config).await {
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
    archive: Option<PathBuf>,
    config: &Config,
) -> anyhow::Result<ExitCode> {
    let mut files = args.checkpoint.clone();
    if let Some(dir) = &args.checkpoint_dir {
        files.extend(
            files_in_dir(dir)
                .with_context(|| format!("reading checkpoint directory {}", dir.display()))?,
        );
    }
    if let Some(dir) = &archive {
        // The checkpoints closing each archived run.
        files.extend(
            files_in_dir(dir)
                .with_context(|| format!("reading archive directory {}", dir.display()))?,
        );
    }
    let verifier = match &args.public_key {
        Some(p) => Some(load_public_key(p)?),
        None if files.is_empty() && !args.checkpoint_bucket => None,
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
    if let (true, Some(verifier)) = (args.checkpoint_bucket, &verifier) {
        inputs.extend(from_bucket(config, verifier).await?);
    }
    let lengths: Vec<u64> = inputs
        .iter()
        .filter_map(|c| c.note.as_ref().ok().map(|cp| cp.length))
        .collect();
    let mut notes = Vec::new();
    let check = match file {
        Some(path) => {
            let mut check = ChainCheck::new(lengths);
            let f = std::fs::File::open(&path)
                .with_context(|| format!("cannot open {}", path.display()))?;
            for line in std::io::BufReader::new(f).split(b'\n') {
                let line = line.with_context(|| format!("reading {}", path.display()))?;
                if !line.is_empty() {
                    check.push(&line);
                }
            }
            check
        }
        None => live(config, archive.as_deref(), lengths, &mut notes).await?,
    };
    let report = check.finish(&origin(), inputs);
    print_report(&report);
    for n in &notes {
        if n.tampered {
            eprintln!("{}", n.text);
        } else {
            println!("{}", n.text);
        }
    }
    let tampered = notes.iter().any(|n| n.tampered);
    Ok(if report.ok() && !tampered {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_TAMPERED)
    })
}

/// The checkpoints `verifier`'s key signed in the configured checkpoint bucket, in order.
async fn from_bucket(
    config: &Config,
    verifier: &NoteVerifier,
) -> anyhow::Result<Vec<CheckpointInput>> {
    let (Some(bucket), crate::config::BlobSettings::S3(s3)) =
        (&config.audit.checkpoint_bucket, &config.blob)
    else {
        anyhow::bail!(
            "--checkpoint-bucket: no checkpoint bucket is configured (audit.checkpoint_bucket, with blob.backend = \"s3\")"
        );
    };
    let folder = WriteOnceFolder::open(
        s3,
        bucket,
        &bucket_folder(&hex::encode(key_id(&verifier.name, &verifier.key))),
    )?;
    let names = folder.names().await?;
    let mut inputs = Vec::new();
    for name in names.iter().filter(|n| n.ends_with(FILE_SUFFIX)) {
        let bytes = folder.read(name, MAX_NOTE_BYTES as u64).await?;
        inputs.push(CheckpointInput {
            source: format!("{}{name}", folder.location()),
            note: verifier.verify(&bytes),
        });
    }
    if inputs.is_empty() {
        anyhow::bail!(
            "--checkpoint-bucket: {} holds no checkpoint signed by this key",
            folder.location()
        );
    }
    Ok(inputs)
}

/// A line of the report about the archive and the live journal's start.
struct Note {
    text: String,
    /// Evidence of tampering (exit 1).
    tampered: bool,
}

/// Checks the configured chain: with `archive`, the archived segments first and then the
/// live journal continuing from the archive's last entry; without, the live journal from
/// its start — genesis, or the archive base when its prefix was archived.
async fn live(
    config: &Config,
    archive: Option<&Path>,
    lengths: Vec<u64>,
    notes: &mut Vec<Note>,
) -> anyhow::Result<ChainCheck> {
    let journal = match config.audit.store {
        AuditStore::Journal => {
            let dir = crate::app::journal_dir(config);
            if dir.exists() {
                Some(Journal::open_read_only(&dir, AUDIT_LOG.0)?)
            } else {
                None
            }
        }
        AuditStore::State => None,
    };
    let base = journal.as_ref().and_then(|j| j.base());
    let first_live = match &journal {
        Some(j) => j.first_live_seq()?,
        None => 1,
    };
    let (mut check, from) = match archive {
        Some(dir) => {
            let mut check = ChainCheck::new(lengths);
            let mut at_base: Option<Vec<u8>> = None;
            // The last entry the archive holds (by its records' numbers: a damaged record
            // makes the rest of its segment unreadable, not the archive shorter).
            let mut last = 0;
            let mut damage = Vec::new();
            let segs = read_archive(dir, |item| match item {
                Item::Entry { seq, bytes } => {
                    if base.as_ref().is_some_and(|b| b.seq == seq) {
                        at_base = Some(bytes.to_vec());
                    }
                    last = last.max(seq);
                    check.push(bytes);
                }
                Item::Damaged {
                    segment,
                    expected,
                    offset,
                    why,
                } => {
                    check.damaged(why);
                    damage.push(format!(
                        "archive DAMAGED: {} at byte {offset} (entry {expected}): {why}",
                        segment.display()
                    ));
                }
            })
            .with_context(|| format!("reading archive directory {}", dir.display()))?;
            notes.extend(damage.into_iter().map(|text| Note {
                text,
                tampered: true,
            }));
            notes.push(Note {
                text: format!(
                    "archive      {segs} segment(s), entries 1 to {last} ({})",
                    dir.display()
                ),
                tampered: false,
            });
            if let Some(b) = &base
                && b.seq <= last
                && at_base.as_deref() != Some(&b.bytes[..])
            {
                notes.push(Note {
                    text: format!(
                        "BOUNDARY: the journal's archive base (entry {}) is not the archive's entry {}",
                        b.seq, b.seq
                    ),
                    tampered: true,
                });
            }
            if first_live > last + 1 {
                notes.push(Note {
                    text: format!(
                        "BOUNDARY: the archive ends at entry {last} and the live journal starts at {first_live}: entries {} to {} are in neither",
                        last + 1,
                        first_live - 1
                    ),
                    tampered: true,
                });
            }
            (check, last + 1)
        }
        None if first_live > 1 => {
            let Some(b) = base.as_ref().filter(|b| b.seq + 1 >= first_live) else {
                notes.push(Note {
                    text: format!(
                        "the journal starts at entry {first_live} and no archive base says what came before: entries 1 to {} are missing",
                        first_live - 1
                    ),
                    tampered: true,
                });
                return Ok(ChainCheck::new(lengths));
            };
            let (seq, hash) = chain::Verifier::anchor(&b.bytes)
                .map_err(|e| anyhow::anyhow!("the journal's archive base does not verify: {e}"))?;
            notes.push(Note {
                text: format!(
                    "verified from entry {}: entries 1 to {seq} are archived (pass --archive DIR to verify them and the boundary)",
                    seq + 1
                ),
                tampered: false,
            });
            (ChainCheck::after(seq, hash, lengths), seq + 1)
        }
        None => (ChainCheck::new(lengths), 1),
    };
    let log: Arc<dyn AuditLog> = match journal {
        Some(j) => Arc::new(j),
        None => crate::app::open_audit_log(config).await?,
    };
    let total = log.head().await?.map_or(0, |e| e.seq);
    let bar = super::progress_bar(total);
    let mut next = from;
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
    Ok(check)
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
