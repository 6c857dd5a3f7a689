//! `sallyport client …`: the tool for the people at each end of a transfer.
//!
//! * `client download URL… | --manifest FILE|URL` — partners fetch signed links in
//!   parallel, resume from a `.part` file with `Range` + `If-Range`, verify every file's
//!   `Repr-Digest` (and a manifest's SHA-256, size and NDJSON record count) over the bytes
//!   on disk, and only then give the file its final name;
//! * `client upload FILE… --to URL` — senders upload with tus 1.0.0 in parallel, every
//!   chunk with `Upload-Checksum: sha256`, resume after a kill from a small state file, and
//!   compare each file's SHA-256 with the one the server's ledger confirms.
//!
//! **Why a subcommand of `sallyport` rather than a separate `sallyport-client`:** the
//! mission is one binary — one thing to build, sign, package and audit, with one
//! version; the client reuses the gateway's own validated types (file names, digests,
//! the strict private-file check for tokens and keys) instead of a second copy that could
//! drift. A partner who only downloads runs the same binary and never starts a server.
//!
//! Layout: `wire` (pure: `Repr-Digest`, `Content-Range`, file names, NDJSON counts),
//! `bulk` (pure: the manifest's download list), `resume` (pure: the resume records, the
//! retry schedule, chunk planning), `chunk` (an upload's chunks and the whole-file
//! digest, read from any positioned source; no network), `outcome` (pure: per-file
//! reports, exit codes), `transport` (the HTTPS client, TLS, credentials), `progress` (indicatif bars),
//! `download` and `upload` (the flows). Exit codes: [`outcome`].

use std::path::PathBuf;

use clap::{Args, Subcommand};

pub mod bulk;
pub mod chunk;
pub mod download;
pub mod outcome;
pub mod progress;
pub mod resume;
pub mod transport;
pub mod upload;
pub mod wire;

/// The client's subcommands.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Download signed links (or every file of a manifest), resume, verify, then rename.
    Download(DownloadArgs),
    /// Upload files with tus 1.0.0: per-chunk SHA-256, parallel, resumable.
    Upload(UploadArgs),
}

/// Connection and output settings shared by both directions.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// The CA certificate(s) (PEM) to trust for the gateway, e.g. its development CA.
    #[arg(long, env = "SALLYPORT_CA_FILE", value_name = "FILE")]
    pub cacert: Option<PathBuf>,
    /// A client certificate chain (PEM) for mutual TLS; needs --key.
    #[arg(long, value_name = "FILE", requires = "key")]
    pub cert: Option<PathBuf>,
    /// The client certificate's private key (PEM, mode 0600); needs --cert.
    #[arg(long, value_name = "FILE", requires = "cert")]
    pub key: Option<PathBuf>,
    /// Files transferred at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=32))]
    pub parallel: u16,
    /// Retries per file after a network error or a retryable answer (5xx, 423, 429).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(0..=100))]
    pub retries: u32,
    /// One JSON object per file and a summary on standard output; no progress bars.
    #[arg(long)]
    pub json: bool,
}

/// `client download`.
#[derive(Debug, Clone, Args)]
pub struct DownloadArgs {
    /// Signed download links (quote them: they hold `&`).
    #[arg(value_name = "URL")]
    pub urls: Vec<String>,
    /// A Bulk Data complete-status manifest (a file, or an https URL) whose files to fetch.
    #[arg(long, value_name = "FILE|URL")]
    pub manifest: Option<String>,
    /// The directory to save into (created if missing).
    #[arg(long, short = 'o', default_value = ".", value_name = "DIR")]
    pub out: PathBuf,
    /// Replace a file that already exists under the final name.
    #[arg(long)]
    pub force: bool,
    /// Connection and output.
    #[command(flatten)]
    pub common: CommonArgs,
}

/// `client upload`.
#[derive(Debug, Clone, Args)]
pub struct UploadArgs {
    /// The files to upload.
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
    /// The gateway's tus creation URL, e.g. `https://gw.example.org/files/`.
    #[arg(long, value_name = "URL")]
    pub to: String,
    /// A file holding the uploader's bearer token (or SALLYPORT_TOKEN in the environment).
    #[arg(long, env = "SALLYPORT_TOKEN_FILE", value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Bytes per PATCH (each carries its own SHA-256): 64 KiB to 512 MiB.
    #[arg(long, default_value = "8MiB", value_parser = parse_chunk_size)]
    pub chunk_size: u64,
    /// Where resume records are kept (mode 0700).
    #[arg(long, default_value = ".sallyport-client", value_name = "DIR")]
    pub state_dir: PathBuf,
    /// Upload into this batch: adds the `batch` metadata and `member` = the file's name.
    #[arg(long, value_name = "ID")]
    pub batch: Option<String>,
    /// Connection and output.
    #[command(flatten)]
    pub common: CommonArgs,
}

/// Runs a client command; the process exit code (see [`outcome`]).
pub fn run(cmd: ClientCommand) -> u8 {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return outcome::EXIT_OTHER;
        }
    };
    let result = match cmd {
        ClientCommand::Download(args) => rt.block_on(download::run(args)),
        ClientCommand::Upload(args) => rt.block_on(upload::run(args)),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            outcome::EXIT_USAGE
        }
    }
}

/// Prints the reports and the summary (JSON lines or human lines); the exit code.
pub(crate) fn finish(op: &'static str, reports: &[outcome::FileReport], json: bool) -> u8 {
    let summary = outcome::summarize(op, reports);
    if json {
        for r in reports {
            println!("{}", serde_json::to_string(r).unwrap_or_default());
        }
        println!("{}", serde_json::to_string(&summary).unwrap_or_default());
    } else {
        for r in reports {
            println!("{}", r.human());
        }
        println!(
            "{} of {} files verified ({} bytes){}",
            summary.verified,
            summary.files,
            summary.bytes,
            if summary.failed > 0 {
                format!("; {} failed (exit {})", summary.failed, summary.exit_code)
            } else {
                String::new()
            }
        );
    }
    summary.exit_code
}

fn parse_chunk_size(s: &str) -> Result<u64, String> {
    let (num, mult) = match s.strip_suffix("MiB") {
        Some(n) => (n, 1u64 << 20),
        None => match s.strip_suffix("KiB") {
            Some(n) => (n, 1 << 10),
            None => (s, 1),
        },
    };
    let n: u64 = num
        .parse()
        .map_err(|_| "a byte count like 8MiB, 512KiB or 1048576".to_owned())?;
    let v = n.saturating_mul(mult);
    if !(64 << 10..=512 << 20).contains(&v) {
        return Err("the chunk size must be between 64KiB and 512MiB".to_owned());
    }
    Ok(v)
}
