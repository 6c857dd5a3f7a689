//! `client upload`: tus 1.0.0 uploads with a SHA-256 on every chunk, several files at
//! once, resumable after a kill (`docs/client-cli.md`, `proto/client-v1.md` §1).
//!
//! Per file: look for its upload state (`<state-dir>/<hash>.json`); if the file is
//! unchanged (size, mtime, fingerprint) and the server still has the upload (HEAD), go on
//! from the server's `Upload-Offset`; otherwise create a new upload (POST) and write the
//! state before the first byte is sent. Each PATCH carries `Upload-Checksum: sha256 …` of
//! its bytes. The chunks are pipelined (`chunk`): while one PATCH is on the wire, the next
//! chunk is read and hashed (and the whole-file SHA-256 fed) on a blocking thread, and it
//! is sent only if the server took the current one whole at the expected offset; so at
//! most two chunks per file are in memory, `2 × --chunk-size × --parallel` in all, and a
//! run whose buffers would exceed `--max-memory` (default 1 GiB) is refused up front.
//! Network errors, 5xx, 408, 423 and 429 are retried after a pause, asking the server
//! (HEAD) where to go on from; a 409 is answered by a HEAD, a 460 by reading and sending
//! the chunk again. When the last byte is in, the upload's ledger gives the server's
//! whole-file SHA-256, compared with the one computed here over the same bytes; the state
//! file is removed once the upload is complete.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use base64::Engine as _;

use super::chunk::{self, Chunk, ChunkReader};
use super::outcome::{self, Failure, FileReport};
use super::progress::Bars;
use super::resume::{self, UploadState};
use super::transport::{self, Credential};
use super::{UploadArgs, download::write_atomic};

const TUS: &str = "1.0.0";
/// The largest ledger document read for the final digest.
const MAX_LEDGER_BYTES: usize = 32 << 20;

/// Runs `client upload`; the exit code. `Err` is a usage error (nothing transferred).
pub async fn run(args: UploadArgs) -> anyhow::Result<u8> {
    let invitation = super::invitation::from_env(args.invitation_file.as_deref())?;
    if invitation.is_some() && (args.to.is_some() || args.batch.is_some()) {
        bail!("an invitation says where and into which batch: drop --to and --batch");
    }
    if args.seal && invitation.is_none() {
        bail!("--seal goes with an invitation (--invitation-file or SALLYPORT_INVITATION)");
    }
    if let Some(b) = &args.batch
        && (b.is_empty()
            || b.len() > 64
            || !b.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-'))
    {
        bail!("--batch is a batch id (letters, digits and '-')");
    }
    // Without an invitation: the URL and the token, checked before anything else.
    let direct = match &invitation {
        Some(_) => None,
        None => {
            let to = args
                .to
                .as_deref()
                .context("give --to URL (or an invitation: --invitation-file FILE)")?;
            let to = reqwest::Url::parse(to).context("--to is not a URL")?;
            if to.scheme() != "https" {
                bail!("--to must be an https URL");
            }
            if to.query().is_some() || to.fragment().is_some() {
                bail!("--to is the creation URL, without a query or fragment");
            }
            Some((to, Credential::from_env(args.token_file.as_deref())?))
        }
    };
    let http = transport::client(&args.common)?;
    let mut files = Vec::with_capacity(args.files.len());
    for f in &args.files {
        let meta = std::fs::metadata(f).with_context(|| format!("{}", f.display()))?;
        if !meta.is_file() {
            bail!("{} is not a regular file", f.display());
        }
        let abs = std::fs::canonicalize(f).with_context(|| format!("{}", f.display()))?;
        if files.iter().any(|(a, _): &(PathBuf, PathBuf)| *a == abs) {
            bail!("{} is named twice", f.display());
        }
        files.push((abs, f.clone()));
    }
    check_memory(
        args.chunk_size,
        args.common.parallel,
        files.len(),
        args.max_memory,
    )?;
    let (to, credential, batch, resolved) = match (invitation, direct) {
        (Some((url, token)), _) => {
            let r = super::invitation::Resolved::resolve(&http, url, token, &files).await?;
            (r.to.clone(), r.credential.clone(), r.batch.clone(), Some(r))
        }
        (None, Some((to, credential))) => (to, credential, args.batch.clone(), None),
        (None, None) => bail!("give --to URL (or an invitation: --invitation-file FILE)"),
    };
    if args.seal && batch.is_none() {
        bail!("--seal: the invitation has no batch to seal");
    }
    create_private_dir(&args.state_dir)
        .with_context(|| format!("the state directory {}", args.state_dir.display()))?;

    let bars = Bars::new(args.common.json, files.len());
    let ctx = Arc::new(Ctx {
        http: http.clone(),
        credential,
        to,
        chunk: args.chunk_size,
        state_dir: args.state_dir.clone(),
        batch,
        retries: args.common.retries,
        bars: bars.clone(),
    });
    let reports = super::each_in_parallel(files, args.common.parallel, |(abs, shown)| {
        let ctx = ctx.clone();
        async move { ctx.upload(abs, shown).await }
    })
    .await;
    bars.total.finish_and_clear();
    let code = super::finish("upload", &reports, args.common.json);
    match resolved {
        Some(r) if args.seal && code == outcome::EXIT_OK => {
            r.seal(&http, SEAL_WAIT, args.common.json).await
        }
        Some(_) if args.seal => {
            eprintln!("not sealing: not every file was uploaded and verified");
            Ok(code)
        }
        _ => Ok(code),
    }
}

/// How long `--seal` waits for the verdict.
const SEAL_WAIT: std::time::Duration = std::time::Duration::from_secs(600);

/// Refuses a run whose chunk buffers would not fit in `max_memory`: each file in flight
/// holds two chunks (`chunk`), and at most `parallel` files (or as many as there are)
/// are in flight at once.
fn check_memory(chunk: u64, parallel: u16, files: usize, max_memory: u64) -> anyhow::Result<()> {
    let in_flight = u64::from(parallel)
        .min(u64::try_from(files).unwrap_or(u64::MAX))
        .max(1);
    let needed = chunk.saturating_mul(2).saturating_mul(in_flight);
    if needed > max_memory {
        let fits = max_memory / chunk.saturating_mul(2).max(1);
        let advice = if fits >= 1 {
            format!("lower --parallel to {fits}, or --chunk-size, or raise --max-memory")
        } else {
            "lower --chunk-size or raise --max-memory".to_owned()
        };
        bail!(
            "{in_flight} files at once with --chunk-size {chunk} need {needed} bytes of chunk \
             buffers (two chunks per file), more than --max-memory {max_memory}: {advice}"
        );
    }
    Ok(())
}

struct Ctx {
    http: reqwest::Client,
    credential: Credential,
    to: reqwest::Url,
    chunk: u64,
    state_dir: PathBuf,
    batch: Option<String>,
    retries: u32,
    bars: Bars,
}

/// How one request went wrong.
enum Step {
    /// Pause, ask the server for the offset, go on.
    Retry(String, Option<u64>),
    /// Give up on this file.
    Fail(Failure, String),
    /// The upload is gone (404, 410: expired, deleted, or not this credential's).
    Gone(String),
}

/// The local facts about a file.
struct Local {
    abs: PathBuf,
    size: u64,
    mtime_ns: i64,
    fingerprint: String,
}

impl Ctx {
    async fn upload(&self, abs: PathBuf, shown: PathBuf) -> FileReport {
        let bar = self.bars.file(&shown.display().to_string());
        let report = FileReport::new("upload", shown.display().to_string(), String::new());
        let r = self.upload_inner(abs, report, &bar).await;
        bar.finish_and_clear();
        r
    }

    async fn upload_inner(
        &self,
        abs: PathBuf,
        mut report: FileReport,
        bar: &indicatif::ProgressBar,
    ) -> FileReport {
        let local = match tokio::task::spawn_blocking(move || inspect(abs)).await {
            Ok(Ok(l)) => l,
            Ok(Err(e)) => return report.failed(Failure::Local, e.to_string()),
            Err(e) => return report.failed(Failure::Other, e.to_string()),
        };
        report.bytes = Some(local.size);
        bar.set_length(local.size);
        self.bars.total.inc_length(local.size);
        let state_path = self.state_dir.join(resume::upload_state_name(
            local.abs.as_os_str().as_encoded_bytes(),
            self.to.as_str(),
        ));
        let mut attempt = 0u32;
        let mut retry = |why: String, after: Option<u64>| {
            let n = attempt;
            attempt += 1;
            (n < self.retries)
                .then(|| resume::backoff(n, after))
                .ok_or(why)
        };

        // Find or create the upload.
        let (upload, mut offset) = loop {
            match self.start(&local, &state_path).await {
                Ok(v) => break v,
                Err(Step::Fail(f, why)) => return report.failed(f, why),
                Err(Step::Gone(why)) => return self.gone(report, &state_path, why),
                Err(Step::Retry(why, after)) => match retry(why, after) {
                    Ok(wait) => tokio::time::sleep(wait).await,
                    Err(why) => return report.failed(Failure::Network, format!("{why} (gave up)")),
                },
            }
        };
        report.remote = upload.to_string();
        report.resumed_from = offset;
        bar.set_position(offset);
        self.bars.total.inc(offset);

        // Send the chunks. While one is on the wire, the next is read and hashed on a
        // blocking thread; it is sent only if the server took this one whole, where
        // expected (`chunk::keep_read_ahead`), else the server's offset decides.
        let mut disk = match Disk::open(&local).await {
            Ok(d) => d,
            Err(e) => return report.failed(Failure::Local, e),
        };
        let mut ready: Option<Chunk> = None;
        while let Some((at, len)) = resume::next_chunk(offset, local.size, self.chunk) {
            let chunk = match ready.take() {
                Some(c) if c.offset == at && c.len() == len => c,
                _ => match disk.read(at, len).await {
                    Ok(c) => c,
                    Err(e) => return report.failed(Failure::Local, e),
                },
            };
            if let Some((next, next_len)) = resume::next_chunk(chunk.end(), local.size, self.chunk)
                && let Err(e) = disk.start(next, next_len)
            {
                return report.failed(Failure::Other, e);
            }
            let sent = self.patch(&upload, &chunk).await;
            // The reader comes back with the read-ahead, whatever the answer.
            let ahead = match disk.wait().await {
                Ok(a) => a,
                Err(e) => return report.failed(Failure::Local, e),
            };
            let step = match sent {
                Ok(new) if new == chunk.end() => {
                    ready = ahead.filter(|a| chunk::keep_read_ahead(&chunk, new, a));
                    offset = new;
                    bar.set_position(new);
                    self.bars.total.inc(chunk.len());
                    continue;
                }
                // The server kept part of the chunk, or another client moved the upload
                // on: the read-ahead is dropped, and the server's offset is where to go.
                Ok(new) if new > at => {
                    offset = new.min(local.size);
                    bar.set_position(offset);
                    continue;
                }
                Ok(_) => Step::Retry("the server accepted none of the chunk".into(), None),
                Err(step) => step,
            };
            match step {
                Step::Fail(f, why) => return report.failed(f, why),
                Step::Gone(why) => return self.gone(report, &state_path, why),
                Step::Retry(why, after) => {
                    bar.set_message(format!("retrying: {why}"));
                    match retry(why, after) {
                        Ok(wait) => tokio::time::sleep(wait).await,
                        Err(why) => {
                            return report.failed(Failure::Network, format!("{why} (gave up)"));
                        }
                    }
                    // Where the server is now (a lost answer may have been a success).
                    loop {
                        match self.head(&upload).await {
                            Ok(o) => {
                                offset = o.min(local.size);
                                break;
                            }
                            Err(Step::Fail(f, why)) => return report.failed(f, why),
                            Err(Step::Gone(why)) => return self.gone(report, &state_path, why),
                            Err(Step::Retry(why, after)) => match retry(why, after) {
                                Ok(wait) => tokio::time::sleep(wait).await,
                                Err(why) => {
                                    return report
                                        .failed(Failure::Network, format!("{why} (gave up)"));
                                }
                            },
                        }
                    }
                    bar.set_position(offset);
                    bar.set_message("");
                }
            }
        }
        let digest = match disk.finish().await {
            Ok(d) => d,
            Err(e) => return report.failed(Failure::Local, e),
        };
        let sha = hex::encode(digest);
        report.sha256 = Some(sha.clone());

        // The server's word on the whole file.
        let server = loop {
            match self.ledger_sha256(&upload, local.size).await {
                Ok(s) => break s,
                Err(Step::Fail(f, why)) => return report.failed(f, why),
                Err(Step::Gone(why)) => return self.gone(report, &state_path, why),
                Err(Step::Retry(why, after)) => match retry(why, after) {
                    Ok(wait) => tokio::time::sleep(wait).await,
                    Err(why) => return report.failed(Failure::Network, format!("{why} (gave up)")),
                },
            }
        };
        let _ = std::fs::remove_file(&state_path);
        report.server_sha256 = Some(server.clone());
        if server != sha {
            return report.failed(
                Failure::Verification,
                format!("the server's SHA-256 {server} differs from the file's {sha}"),
            );
        }
        report.verified()
    }

    /// The upload vanished mid-way: forget it, so the next run starts a new one.
    fn gone(&self, report: FileReport, state_path: &Path, why: String) -> FileReport {
        let _ = std::fs::remove_file(state_path);
        report.failed(
            Failure::Refused,
            format!("{why}; the upload is gone (expired or deleted), run again to start over"),
        )
    }

    /// Resumes the recorded upload if the file is unchanged and the server still has it,
    /// else creates one and records it. Returns the upload's URL and offset.
    async fn start(&self, local: &Local, state_path: &Path) -> Result<(reqwest::Url, u64), Step> {
        let prior = std::fs::metadata(state_path)
            .ok()
            .filter(|m| m.len() <= resume::MAX_RECORD_BYTES)
            .and_then(|_| std::fs::read(state_path).ok())
            .and_then(|b| UploadState::from_bytes(&b).ok())
            .filter(|s| {
                s.same_file(
                    self.to.as_str(),
                    local.size,
                    local.mtime_ns,
                    &local.fingerprint,
                )
            });
        if let Some(s) = prior
            && let Ok(url) = reqwest::Url::parse(&s.upload)
        {
            match self.head(&url).await {
                Ok(offset) => return Ok((url, offset.min(local.size))),
                // Gone (expired, deleted) or never ours: start a new upload.
                Err(Step::Gone(_)) => {}
                Err(e) => return Err(e),
            }
        }
        let mut meta = vec![format!(
            "filename {}",
            b64(local
                .abs
                .file_name()
                .map(|n| n.as_encoded_bytes())
                .unwrap_or(b"file"))
        )];
        if let Some(batch) = &self.batch {
            meta.push(format!("batch {}", b64(batch.as_bytes())));
            meta.push(format!(
                "member {}",
                b64(local
                    .abs
                    .file_name()
                    .map(|n| n.as_encoded_bytes())
                    .unwrap_or(b""))
            ));
        }
        let req = self
            .credential
            .apply(self.http.post(self.to.clone()))
            .header("tus-resumable", TUS)
            .header("upload-length", local.size.to_string())
            .header("upload-metadata", meta.join(","));
        let resp = req
            .send()
            .await
            .map_err(|e| Step::Retry(transport::describe(e), None))?;
        let status = resp.status().as_u16();
        if status != 201 {
            return Err(classify(resp).await);
        }
        let location = resp
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                Step::Fail(
                    Failure::Other,
                    "the server created an upload without a Location".into(),
                )
            })?;
        let url = self
            .to
            .join(location)
            .map_err(|_| Step::Fail(Failure::Other, "the server's Location is not a URL".into()))?;
        if url.scheme() != "https" || url.host() != self.to.host() || url.port() != self.to.port() {
            return Err(Step::Fail(
                Failure::Other,
                "the server's Location points at another origin; not following it with the token"
                    .into(),
            ));
        }
        let state = UploadState {
            v: 1,
            to: self.to.to_string(),
            upload: url.to_string(),
            size: local.size,
            mtime_ns: local.mtime_ns,
            fingerprint: local.fingerprint.clone(),
        };
        write_atomic(state_path, &state.to_bytes())
            .map_err(|e| Step::Fail(Failure::Local, format!("writing the resume state: {e}")))?;
        Ok((url, 0))
    }

    /// HEAD: the server's offset.
    async fn head(&self, upload: &reqwest::Url) -> Result<u64, Step> {
        let resp = self
            .credential
            .apply(self.http.head(upload.clone()))
            .header("tus-resumable", TUS)
            .send()
            .await
            .map_err(|e| Step::Retry(transport::describe(e), None))?;
        if resp.status().as_u16() != 200 {
            return Err(classify(resp).await);
        }
        offset_of(&resp)
    }

    /// One PATCH of `chunk`; the server's new offset.
    async fn patch(&self, upload: &reqwest::Url, chunk: &Chunk) -> Result<u64, Step> {
        let resp = self
            .credential
            .apply(self.http.patch(upload.clone()))
            .header("tus-resumable", TUS)
            .header("upload-offset", chunk.offset.to_string())
            .header("content-type", "application/offset+octet-stream")
            .header("upload-checksum", chunk.upload_checksum())
            // A shared handle on the chunk's bytes: no copy.
            .body(chunk.bytes.clone())
            .send()
            .await
            .map_err(|e| Step::Retry(transport::describe(e), None))?;
        match resp.status().as_u16() {
            204 => offset_of(&resp),
            // Not where the server is: the next loop asks it (HEAD) and goes on from there.
            409 => Err(Step::Retry(
                "the server is at another offset".into(),
                Some(0),
            )),
            // Damaged on the way: send it again.
            460 => Err(Step::Retry(
                "the server's checksum of a chunk differed; resending".into(),
                None,
            )),
            _ => Err(classify(resp).await),
        }
    }

    /// The whole-file SHA-256 the upload's ledger states (the upload must be complete).
    async fn ledger_sha256(&self, upload: &reqwest::Url, size: u64) -> Result<String, Step> {
        let url = reqwest::Url::parse(&format!("{}/ledger", upload.as_str().trim_end_matches('/')))
            .map_err(|_| Step::Fail(Failure::Other, "the ledger URL".into()))?;
        let mut resp = self
            .credential
            .apply(self.http.get(url))
            .send()
            .await
            .map_err(|e| Step::Retry(transport::describe(e), None))?;
        if resp.status().as_u16() != 200 {
            return Err(classify(resp).await);
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| Step::Retry(transport::describe(e), None))?
        {
            if body.len() + chunk.len() > MAX_LEDGER_BYTES {
                return Err(Step::Fail(
                    Failure::Other,
                    "the ledger is larger than 32 MiB".into(),
                ));
            }
            body.extend_from_slice(&chunk);
        }
        let v: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|_| Step::Retry("the ledger was not whole JSON".into(), None))?;
        if v["complete"] != true || v["length"].as_u64() != Some(size) {
            return Err(Step::Fail(
                Failure::Verification,
                "the server's ledger does not show the upload complete at the file's size".into(),
            ));
        }
        v["sha256"]
            .as_str()
            .filter(|s| s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
            .map(str::to_owned)
            .ok_or_else(|| {
                Step::Fail(
                    Failure::Verification,
                    "the ledger has no whole-file SHA-256".into(),
                )
            })
    }
}

/// The file side of one upload: its [`ChunkReader`], either here or away on a blocking
/// thread reading the next chunk. At most one read is under way, so with the chunk on the
/// wire a file has at most two chunks in memory.
struct Disk {
    reader: Option<ChunkReader<std::fs::File>>,
    /// The read under way: it gives back the reader, and the chunk or the error.
    ahead: Option<tokio::task::JoinHandle<(ChunkReader<std::fs::File>, std::io::Result<Chunk>)>>,
}

impl Disk {
    async fn open(local: &Local) -> Result<Self, String> {
        let (path, size) = (local.abs.clone(), local.size);
        let file = tokio::task::spawn_blocking(move || std::fs::File::open(path))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("opening the file: {e}"))?;
        Ok(Self {
            reader: Some(ChunkReader::new(file, size)),
            ahead: None,
        })
    }

    /// Starts reading `[at, at + len)` on a blocking thread.
    fn start(&mut self, at: u64, len: u64) -> Result<(), String> {
        let mut reader = self
            .reader
            .take()
            .ok_or("internal: a chunk read started while another was under way")?;
        self.ahead = Some(tokio::task::spawn_blocking(move || {
            let chunk = reader.read(at, len);
            (reader, chunk)
        }));
        Ok(())
    }

    /// Waits for the read under way, if any: its chunk; the reader is back.
    async fn wait(&mut self) -> Result<Option<Chunk>, String> {
        let Some(handle) = self.ahead.take() else {
            return Ok(None);
        };
        let (reader, chunk) = handle.await.map_err(|e| e.to_string())?;
        self.reader = Some(reader);
        chunk
            .map(Some)
            .map_err(|e| format!("reading the file: {e}"))
    }

    /// Reads `[at, at + len)` now (on a blocking thread, waited for).
    async fn read(&mut self, at: u64, len: u64) -> Result<Chunk, String> {
        self.start(at, len)?;
        self.wait()
            .await?
            .ok_or_else(|| "internal: a chunk read gave nothing".to_owned())
    }

    /// The whole file's SHA-256 (hashing what the chunks did not cover).
    async fn finish(mut self) -> Result<[u8; 32], String> {
        self.wait().await?;
        let reader = self
            .reader
            .take()
            .ok_or("internal: the chunk reader is missing")?;
        tokio::task::spawn_blocking(move || reader.finish())
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("reading the file: {e}"))
    }
}

/// A non-success answer: retry what may pass, refuse the rest.
async fn classify(resp: reqwest::Response) -> Step {
    let status = resp.status().as_u16();
    if transport::retryable(status) {
        let after = transport::retry_after(&resp);
        return Step::Retry(format!("the server answered {status}"), after);
    }
    let why = transport::refusal(resp).await;
    if matches!(status, 404 | 410) {
        return Step::Gone(why);
    }
    Step::Fail(Failure::Refused, why)
}

fn offset_of(resp: &reqwest::Response) -> Result<u64, Step> {
    resp.headers()
        .get("upload-offset")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| {
            Step::Fail(
                Failure::Other,
                "the server sent no valid Upload-Offset".into(),
            )
        })
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Size, mtime and fingerprint of a file.
fn inspect(abs: PathBuf) -> std::io::Result<Local> {
    use std::io::{Read as _, Seek as _};
    use std::os::unix::fs::MetadataExt as _;
    let mut f = std::fs::File::open(&abs)?;
    let meta = f.metadata()?;
    let size = meta.len();
    let edge = usize::try_from(size.min(resume::FINGERPRINT_EDGE)).unwrap_or(0);
    let mut head = vec![0u8; edge];
    f.read_exact(&mut head)?;
    let mut tail = vec![0u8; edge];
    f.seek(std::io::SeekFrom::Start(size - edge as u64))?;
    f.read_exact(&mut tail)?;
    Ok(Local {
        size,
        mtime_ns: meta
            .mtime()
            .saturating_mul(1_000_000_000)
            .saturating_add(meta.mtime_nsec()),
        fingerprint: resume::fingerprint(size, &head, &tail),
        abs,
    })
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    match std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
    {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::check_memory;

    const MIB: u64 = 1 << 20;

    #[test]
    fn the_chunk_buffers_must_fit_the_memory_limit() {
        // The defaults: 4 files × 2 × 8 MiB = 64 MiB under 1 GiB.
        check_memory(8 * MIB, 4, 10, 1024 * MIB).unwrap();
        // Exactly at the limit is allowed: 1 file × 2 × 512 MiB = 1 GiB.
        check_memory(512 * MIB, 1, 1, 1024 * MIB).unwrap();
        // Only as many files as there are run at once: 32 parallel, 1 file.
        check_memory(512 * MIB, 32, 1, 1024 * MIB).unwrap();
        // 32 × 2 × 512 MiB = 32 GiB: refused, with the parallelism that would fit.
        let e = check_memory(512 * MIB, 32, 40, 1024 * MIB)
            .unwrap_err()
            .to_string();
        assert!(e.contains("34359738368 bytes"), "{e}");
        assert!(e.contains("lower --parallel to 1"), "{e}");
        // Not even one file fits: the advice is about the chunk size.
        let e = check_memory(512 * MIB, 2, 2, 512 * MIB)
            .unwrap_err()
            .to_string();
        assert!(e.contains("lower --chunk-size"), "{e}");
        assert!(!e.contains("--parallel to"), "{e}");
    }
}
