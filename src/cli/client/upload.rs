//! `client upload`: tus 1.0.0 uploads with a SHA-256 on every chunk, several files at
//! once, resumable after a kill (`docs/client-cli.md`, `proto/client-v1.md` §1).
//!
//! Per file: look for its upload state (`<state-dir>/<hash>.json`); if the file is
//! unchanged (size, mtime, fingerprint) and the server still has the upload (HEAD), go on
//! from the server's `Upload-Offset`; otherwise create a new upload (POST) and write the
//! state before the first byte is sent. Each PATCH carries `Upload-Checksum: sha256 …` of
//! its bytes. Network errors, 5xx, 408, 423 and 429 are retried after a pause, asking the
//! server (HEAD) where to go on from; a 409 is answered by a HEAD, a 460 by sending the
//! chunk again. When the last byte is in, the upload's ledger gives the server's
//! whole-file SHA-256, compared with the one computed here over the same bytes; the state
//! file is removed once the upload is complete.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use base64::Engine as _;
use futures_util::StreamExt as _;
use sha2::{Digest, Sha256};

use super::outcome::{Failure, FileReport};
use super::progress::Bars;
use super::resume::{self, UploadState};
use super::transport::{self, Credential};
use super::{UploadArgs, download::write_atomic};

const TUS: &str = "1.0.0";
/// The largest ledger document read for the final digest.
const MAX_LEDGER_BYTES: usize = 32 << 20;

/// Runs `client upload`; the exit code. `Err` is a usage error (nothing transferred).
pub async fn run(args: UploadArgs) -> anyhow::Result<u8> {
    let to = reqwest::Url::parse(&args.to).context("--to is not a URL")?;
    if to.scheme() != "https" {
        bail!("--to must be an https URL");
    }
    if to.query().is_some() || to.fragment().is_some() {
        bail!("--to is the creation URL, without a query or fragment");
    }
    if let Some(b) = &args.batch
        && (b.is_empty()
            || b.len() > 64
            || !b.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-'))
    {
        bail!("--batch is a batch id (letters, digits and '-')");
    }
    let credential = Credential::from_env(args.token_file.as_deref())?;
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
    create_private_dir(&args.state_dir)
        .with_context(|| format!("the state directory {}", args.state_dir.display()))?;

    let bars = Bars::new(args.common.json, files.len());
    let ctx = Arc::new(Ctx {
        http,
        credential,
        to,
        chunk: args.chunk_size,
        state_dir: args.state_dir.clone(),
        batch: args.batch.clone(),
        retries: args.common.retries,
        bars: bars.clone(),
    });
    let mut reports: Vec<(usize, FileReport)> =
        futures_util::stream::iter(files.into_iter().enumerate())
            .map(|(i, (abs, shown))| {
                let ctx = ctx.clone();
                async move { (i, ctx.upload(abs, shown).await) }
            })
            .buffer_unordered(usize::from(args.common.parallel))
            .collect()
            .await;
    bars.total.finish_and_clear();
    reports.sort_by_key(|(i, _)| *i);
    let reports: Vec<FileReport> = reports.into_iter().map(|(_, r)| r).collect();
    Ok(super::finish("upload", &reports, args.common.json))
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

        // Send the chunks; the hasher covers [0, hashed).
        let mut hasher = Sha256::new();
        let mut hashed = 0u64;
        while offset < local.size {
            if let Err(e) = self
                .hash_up_to(&local.abs, &mut hasher, &mut hashed, offset)
                .await
            {
                return report.failed(Failure::Local, e);
            }
            let Some((at, len)) = resume::next_chunk(offset, local.size, self.chunk) else {
                break;
            };
            let bytes = match read_at(&local.abs, at, len).await {
                Ok(b) => b,
                Err(e) => return report.failed(Failure::Local, e),
            };
            match self.patch(&upload, at, bytes.clone()).await {
                Ok(new) if new == at + len => {
                    hasher.update(&bytes);
                    hashed = new;
                    offset = new;
                    bar.set_position(new);
                    self.bars.total.inc(len);
                }
                Ok(new) => {
                    // Another offset than expected: trust the server's, re-hash from disk.
                    offset = new.min(local.size);
                    bar.set_position(offset);
                }
                Err(Step::Fail(f, why)) => return report.failed(f, why),
                Err(Step::Gone(why)) => return self.gone(report, &state_path, why),
                Err(Step::Retry(why, after)) => {
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
        if let Err(e) = self
            .hash_up_to(&local.abs, &mut hasher, &mut hashed, local.size)
            .await
        {
            return report.failed(Failure::Local, e);
        }
        let sha = hex::encode(hasher.finalize());
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

    /// One PATCH of `bytes` at `at`; the server's new offset.
    async fn patch(
        &self,
        upload: &reqwest::Url,
        at: u64,
        bytes: bytes::Bytes,
    ) -> Result<u64, Step> {
        let sum = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&bytes));
        let resp = self
            .credential
            .apply(self.http.patch(upload.clone()))
            .header("tus-resumable", TUS)
            .header("upload-offset", at.to_string())
            .header("content-type", "application/offset+octet-stream")
            .header("upload-checksum", format!("sha256 {sum}"))
            .body(bytes)
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

    /// Makes the hasher cover `[0, to)` of the file, reading from disk what it lacks.
    async fn hash_up_to(
        &self,
        path: &Path,
        hasher: &mut Sha256,
        hashed: &mut u64,
        to: u64,
    ) -> Result<(), String> {
        if to < *hashed {
            *hasher = Sha256::new();
            *hashed = 0;
        }
        if to == *hashed {
            return Ok(());
        }
        let (path, from, h) = (path.to_owned(), *hashed, hasher.clone());
        let h = tokio::task::spawn_blocking(move || -> std::io::Result<Sha256> {
            use std::io::{Read as _, Seek as _};
            let mut h = h;
            let mut f = std::fs::File::open(&path)?;
            f.seek(std::io::SeekFrom::Start(from))?;
            let mut left = to - from;
            let mut buf = vec![0u8; 1 << 20];
            while left > 0 {
                let n =
                    f.read(&mut buf[..usize::try_from(left.min(1 << 20)).unwrap_or(1 << 20)])?;
                if n == 0 {
                    return Err(std::io::Error::other("the file became shorter"));
                }
                h.update(&buf[..n]);
                left -= n as u64;
            }
            Ok(h)
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("reading the file: {e}"))?;
        *hasher = h;
        *hashed = to;
        Ok(())
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

async fn read_at(path: &Path, at: u64, len: u64) -> Result<bytes::Bytes, String> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || -> std::io::Result<bytes::Bytes> {
        use std::os::unix::fs::FileExt as _;
        let f = std::fs::File::open(&path)?;
        let mut buf = vec![0u8; usize::try_from(len).map_err(std::io::Error::other)?];
        f.read_exact_at(&mut buf, at)?;
        Ok(bytes::Bytes::from(buf))
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| format!("reading the file: {e}"))
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
