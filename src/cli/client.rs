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
pub mod invitation;
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
    /// A file (mode 0600) holding the SMART access token to send as the bearer token when
    /// fetching the `--manifest` URL (a Bulk Data status URL). Sent with that one request
    /// only, never with the signed file links; never printed.
    #[arg(long, value_name = "FILE", requires = "manifest")]
    pub token_file: Option<PathBuf>,
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
    /// The gateway's tus creation URL, e.g. `https://gw.example.org/files/` (not with an
    /// invitation: it says where).
    #[arg(long, value_name = "URL")]
    pub to: Option<String>,
    /// A file (mode 0600) holding an upload invitation URL (`https://…/invite#inv1~…`), or
    /// SALLYPORT_INVITATION in the environment: the gateway, the token and the batch come
    /// from it, and each file must be a member its manifest lists (by name and size).
    #[arg(long, env = "SALLYPORT_INVITATION_FILE", value_name = "FILE", conflicts_with_all = ["token_file", "batch"])]
    pub invitation_file: Option<PathBuf>,
    /// After every file is uploaded and verified, seal the invitation's batch and wait
    /// for its verdict (exit 0 released, 3 quarantined).
    #[arg(long)]
    pub seal: bool,
    /// A file holding the uploader's bearer token (or SALLYPORT_TOKEN in the environment).
    #[arg(long, env = "SALLYPORT_TOKEN_FILE", value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Bytes per PATCH (each carries its own SHA-256): 64 KiB to 512 MiB.
    #[arg(long, default_value = "8MiB", value_parser = parse_chunk_size)]
    pub chunk_size: u64,
    /// The most memory the chunk buffers may take: each file in flight holds two chunks
    /// (the one on the wire and the next, read ahead), so `2 × --chunk-size × files at
    /// once` must fit. Refused before anything is sent, never silently lowered.
    #[arg(long, default_value = "1GiB", value_parser = parse_memory)]
    pub max_memory: u64,
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

/// Runs `work` on every item, at most `parallel` at once, and gives the results back in
/// the items' order (the reports are printed in the order the files were named).
pub(crate) async fn each_in_parallel<T, R, F, Fut>(items: Vec<T>, parallel: u16, work: F) -> Vec<R>
where
    F: Fn(T) -> Fut,
    Fut: std::future::Future<Output = R>,
{
    use futures_util::StreamExt as _;
    let mut done: Vec<(usize, R)> = futures_util::stream::iter(items.into_iter().enumerate())
        .map(|(i, item)| {
            let fut = work(item);
            async move { (i, fut.await) }
        })
        .buffer_unordered(usize::from(parallel.max(1)))
        .collect()
        .await;
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
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

/// A byte count with an optional binary suffix (`KiB`, `MiB`, `GiB`).
fn parse_bytes(s: &str) -> Result<u64, String> {
    let suffixes = [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    let (num, mult) = suffixes
        .iter()
        .find_map(|(suffix, mult)| s.strip_suffix(suffix).map(|n| (n, *mult)))
        .unwrap_or((s, 1));
    let n: u64 = num
        .parse()
        .map_err(|_| "a byte count like 8MiB, 512KiB, 2GiB or 1048576".to_owned())?;
    n.checked_mul(mult)
        .ok_or_else(|| "the byte count is too large".to_owned())
}

fn parse_memory(s: &str) -> Result<u64, String> {
    let v = parse_bytes(s)?;
    if v < 128 << 10 {
        return Err(
            "the memory limit must be at least 128KiB (two of the smallest chunks)".to_owned(),
        );
    }
    Ok(v)
}

fn parse_chunk_size(s: &str) -> Result<u64, String> {
    let v = parse_bytes(s)?;
    if !(64 << 10..=512 << 20).contains(&v) {
        return Err("the chunk size must be between 64KiB and 512MiB".to_owned());
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::{parse_bytes, parse_chunk_size, parse_memory};

    #[test]
    fn byte_counts_parse_with_binary_suffixes_and_refuse_nonsense() {
        assert_eq!(parse_bytes("1048576"), Ok(1 << 20));
        assert_eq!(parse_bytes("512KiB"), Ok(512 << 10));
        assert_eq!(parse_bytes("8MiB"), Ok(8 << 20));
        assert_eq!(parse_bytes("2GiB"), Ok(2 << 30));
        for bad in [
            "",
            "MiB",
            "8 MiB",
            "8mb",
            "-1",
            "1.5GiB",
            "99999999999999999999GiB",
        ] {
            assert!(parse_bytes(bad).is_err(), "{bad:?}");
        }
        assert!(parse_bytes("17179869184GiB").is_err(), "overflows u64");
        assert!(parse_chunk_size("32KiB").is_err());
        assert!(parse_chunk_size("1GiB").is_err());
        assert_eq!(parse_chunk_size("512MiB"), Ok(512 << 20));
        assert!(parse_memory("64KiB").is_err());
        assert_eq!(parse_memory("1GiB"), Ok(1 << 30));
    }
}
