//! `client download`: signed links in, verified files out (`docs/partner-download.md`).
//!
//! Per link: bytes go to `<out>/<artifact>.part`, with a sidecar `<artifact>.part.json`
//! holding the `ETag`, length and `Repr-Digest` of what the part is a prefix of. A later
//! attempt (a retry, or the next run after a kill) asks for the rest with
//! `Range: bytes=N-` and `If-Range: <etag>`; a changed file (200 instead of 206, another
//! digest) starts over. When the part is whole, it is flushed to disk and read back: its
//! SHA-256 must equal the server's `Repr-Digest` (and a manifest's SHA-256, size and NDJSON
//! record count, when given). Only then is it linked to its final name, which never
//! replaces an existing file without `--force`. A part that fails verification is deleted
//! with its sidecar (it cannot be resumed into a good file), so the next run starts over.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt as _;

use super::bulk::{self, Expected};
use super::outcome::{Failure, FileReport};
use super::progress::Bars;
use super::resume::{self, PartState};
use super::transport::Credential;
use super::wire::{self, ContentRange, RecordCounter};
use super::{DownloadArgs, transport};

/// The largest file accepted (what a server says it will send is bounded by this).
pub const MAX_FILE_BYTES: u64 = 1 << 40;

/// Runs `client download`; the exit code. `Err` is a usage error (nothing transferred).
pub async fn run(args: DownloadArgs) -> anyhow::Result<u8> {
    let http = transport::client(&args.common)?;
    let mut jobs: Vec<Expected> = args
        .urls
        .iter()
        .map(|u| Expected {
            url: u.clone(),
            resource_type: None,
            count: None,
            sha256: None,
            size: None,
            bearer: false,
        })
        .collect();
    let credential = match &args.token_file {
        Some(f) => Some(Credential::from_env(Some(f))?),
        None => None,
    };
    if let Some(m) = &args.manifest {
        jobs.extend(read_manifest(&http, m, credential.as_ref()).await?);
    }
    if jobs.is_empty() {
        bail!("nothing to download: give signed links or --manifest");
    }
    let mut seen = std::collections::HashSet::new();
    let mut planned = Vec::with_capacity(jobs.len());
    for (i, job) in jobs.into_iter().enumerate() {
        let artifact = artifact_id(&job.url).with_context(|| format!("link {}", i + 1))?;
        if !seen.insert(artifact.clone()) {
            bail!("link {}: artifact {artifact} is listed twice", i + 1);
        }
        planned.push((artifact, job));
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating the output directory {}", args.out.display()))?;

    let bars = Bars::new(args.common.json, planned.len());
    let ctx = Arc::new(Ctx {
        http,
        credential,
        out: args.out.clone(),
        force: args.force,
        retries: args.common.retries,
        bars: bars.clone(),
    });
    let reports = super::each_in_parallel(planned, args.common.parallel, |(artifact, job)| {
        let ctx = ctx.clone();
        async move { ctx.download(artifact, job).await }
    })
    .await;
    bars.total.finish_and_clear();
    Ok(super::finish("download", &reports, args.common.json))
}

/// The manifest's files, from a file or an https URL (capped at 16 MiB). `credential` (a
/// SMART access token for a Bulk Data status URL) goes with that request — the client
/// follows no redirect, so it reaches the URL's own origin and nothing else — and, when the
/// manifest says `requiresAccessToken: true`, with its files' requests, each of which must
/// then be on that same origin (a manifest pointing the token elsewhere is refused).
async fn read_manifest(
    http: &reqwest::Client,
    src: &str,
    credential: Option<&Credential>,
) -> anyhow::Result<Vec<Expected>> {
    let bytes = if src.starts_with("https://") {
        let mut req = http.get(src).header("accept", "application/json");
        if let Some(c) = credential {
            req = c.apply(req);
        }
        let mut resp = req
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("fetching the manifest: {}", transport::describe(e)))?;
        if resp.status() == reqwest::StatusCode::ACCEPTED {
            bail!(
                "fetching the manifest: the export is not complete yet (202); poll again after \
                 its Retry-After"
            );
        }
        if !resp.status().is_success() {
            bail!("fetching the manifest: {}", transport::refusal(resp).await);
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| anyhow::anyhow!("reading the manifest: {}", transport::describe(e)))?
        {
            if (body.len() + chunk.len()) as u64 > bulk::MAX_MANIFEST_BYTES {
                bail!("the manifest is larger than 16 MiB");
            }
            body.extend_from_slice(&chunk);
        }
        body
    } else {
        if credential.is_some() {
            bail!("--token-file goes with a --manifest https URL (a status URL), not a file");
        }
        let meta = std::fs::metadata(src).with_context(|| format!("reading the manifest {src}"))?;
        if meta.len() > bulk::MAX_MANIFEST_BYTES {
            bail!("the manifest {src} is larger than 16 MiB");
        }
        std::fs::read(src).with_context(|| format!("reading the manifest {src}"))?
    };
    let listing = bulk::parse(&bytes).context("the manifest")?;
    if !listing.requires_access_token {
        return Ok(listing.files);
    }
    if credential.is_none() {
        bail!(
            "the manifest says requiresAccessToken: true: fetch it from its status URL with \
             --token-file (the SMART access token goes with the files too)"
        );
    }
    let origin = origin_of(src).context("the status URL")?;
    listing
        .files
        .into_iter()
        .enumerate()
        .map(|(i, mut f)| {
            if origin_of(&f.url).ok().as_ref() != Some(&origin) {
                bail!(
                    "output[{i}] is not on the status URL's origin: the access token is sent \
                     to that origin only"
                );
            }
            f.bearer = true;
            Ok(f)
        })
        .collect()
}

/// `scheme://host:port` of an https URL (the port made explicit).
fn origin_of(url: &str) -> anyhow::Result<(String, String, u16)> {
    let u = reqwest::Url::parse(url).map_err(|_| anyhow::anyhow!("not a URL"))?;
    match (u.scheme(), u.host_str(), u.port_or_known_default()) {
        ("https", Some(h), Some(p)) => Ok(("https".into(), h.to_ascii_lowercase(), p)),
        _ => bail!("not an https URL"),
    }
}

/// The artifact id of a signed link (`https://host/d/<artifact>?…`): the last path
/// segment, letters and digits only, so it is safe as a file name.
fn artifact_id(url: &str) -> anyhow::Result<String> {
    let parsed = reqwest::Url::parse(url).map_err(|_| anyhow::anyhow!("not a URL"))?;
    if parsed.scheme() != "https" {
        bail!("not an https URL");
    }
    let last = parsed
        .path_segments()
        .and_then(|mut s| s.next_back())
        .unwrap_or("");
    if last.is_empty() || last.len() > 64 || !last.bytes().all(|b| b.is_ascii_alphanumeric()) {
        bail!("not a signed download link (…/d/<artifact>?…)");
    }
    Ok(last.to_owned())
}

struct Ctx {
    http: reqwest::Client,
    /// The access token, sent only with the files marked [`Expected::bearer`].
    credential: Option<Credential>,
    out: PathBuf,
    force: bool,
    retries: u32,
    bars: Bars,
}

/// A failure of one attempt.
enum Attempt {
    /// Try again (after a pause): network, 5xx, a short body.
    Retry(String, Option<u64>),
    /// Give up on this file.
    Fail(Failure, String),
}

impl Ctx {
    async fn download(&self, artifact: String, job: Expected) -> FileReport {
        let bar = self.bars.file(&artifact);
        let report = FileReport::new("download", String::new(), artifact.clone());
        let r = self.download_inner(&artifact, &job, report, &bar).await;
        bar.finish_and_clear();
        r
    }

    async fn download_inner(
        &self,
        artifact: &str,
        job: &Expected,
        mut report: FileReport,
        bar: &indicatif::ProgressBar,
    ) -> FileReport {
        let part = self.out.join(format!("{artifact}.part"));
        let side = self.out.join(format!("{artifact}.part.json"));
        report.file = part.display().to_string();
        let mut attempt = 0u32;
        let mut first_have = None;
        let (state, name) = loop {
            match self.fetch(&part, &side, job, bar, &mut first_have).await {
                Ok(done) => break done,
                Err(Attempt::Fail(f, why)) => return report.failed(f, why),
                Err(Attempt::Retry(why, after)) => {
                    if attempt >= self.retries {
                        return report.failed(
                            Failure::Network,
                            format!("{why} (gave up after {} retries)", self.retries),
                        );
                    }
                    bar.set_message(format!("retrying: {why}"));
                    tokio::time::sleep(resume::backoff(attempt, after)).await;
                    attempt += 1;
                }
            }
        };
        report.resumed_from = first_have.unwrap_or(0);
        report.bytes = Some(state.length);
        report.server_sha256 = Some(state.sha256.clone());
        let final_path = self.out.join(name.as_deref().unwrap_or(artifact));
        report.file = final_path.display().to_string();
        match verify_and_place(&part, &side, &final_path, &state, job, self.force).await {
            Ok((sha, records)) => {
                report.sha256 = Some(sha);
                report.records = records;
                report.verified()
            }
            Err((f, why, sha)) => {
                report.sha256 = sha;
                if f == Failure::Verification {
                    report.file = part.display().to_string();
                }
                report.failed(f, why)
            }
        }
    }

    /// One request: brings the part up to the whole representation. Returns the part's
    /// state and the server's file name.
    async fn fetch(
        &self,
        part: &Path,
        side: &Path,
        job: &Expected,
        bar: &indicatif::ProgressBar,
        first_have: &mut Option<u64>,
    ) -> Result<(PartState, Option<String>), Attempt> {
        let local =
            |e: std::io::Error| Attempt::Fail(Failure::Local, format!("{}: {e}", part.display()));
        let prior = read_part_state(side);
        let have = match (&prior, std::fs::metadata(part)) {
            (Some(s), Ok(m)) if m.len() <= s.length => m.len(),
            _ => 0,
        };
        first_have.get_or_insert(have);
        let mut req = self.http.get(&job.url);
        if let (true, Some(c)) = (job.bearer, &self.credential) {
            req = c.apply(req);
        }
        if let (Some(s), true) = (&prior, have > 0) {
            req = req
                .header(reqwest::header::RANGE, format!("bytes={have}-"))
                .header(reqwest::header::IF_RANGE, s.etag.as_str());
        }
        let resp = req
            .send()
            .await
            .map_err(|e| Attempt::Retry(transport::describe(e), None))?;
        let status = resp.status().as_u16();
        if transport::retryable(status) {
            return Err(Attempt::Retry(
                format!("the server answered {status}"),
                transport::retry_after(&resp),
            ));
        }
        let headers = resp.headers().clone();
        let header = |n: &str| headers.get(n).map(|v| v.as_bytes());
        let name = header("content-disposition")
            .and_then(wire::disposition_file_name)
            .map(|n| n.as_str().to_owned());
        if status == 416 {
            return match (
                header("content-range").and_then(wire::content_range),
                &prior,
            ) {
                (Some(ContentRange::Unsatisfied { complete }), Some(s))
                    if complete == s.length && have == s.length =>
                {
                    Ok((s.clone(), name))
                }
                _ => {
                    remove_part(part, side);
                    Err(Attempt::Retry(
                        "the partial file no longer fits; starting over".into(),
                        None,
                    ))
                }
            };
        }
        if status != 200 && status != 206 {
            return Err(Attempt::Fail(
                Failure::Refused,
                transport::refusal(resp).await,
            ));
        }
        let digest = match header("repr-digest").map(wire::repr_digest_sha256) {
            Some(Ok(d)) => wire::hex32(&d),
            Some(Err(e)) => return Err(Attempt::Fail(Failure::Verification, e.to_string())),
            None => {
                return Err(Attempt::Fail(
                    Failure::Verification,
                    "the server sent no Repr-Digest: the file cannot be verified".into(),
                ));
            }
        };
        let etag = header("etag")
            .and_then(|v| std::str::from_utf8(v).ok())
            .filter(|v| v.starts_with('"') && v.ends_with('"') && v.len() <= 256)
            .unwrap_or("\"\"")
            .to_owned();
        let content_length = header("content-length")
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|v| v.parse::<u64>().ok());
        // Where the body goes in the part, and the whole length.
        let (start, length) = if status == 206 {
            match (
                header("content-range").and_then(wire::content_range),
                &prior,
            ) {
                (
                    Some(ContentRange::Bytes {
                        first,
                        last,
                        complete,
                    }),
                    Some(s),
                ) if first == have
                    && last + 1 == complete
                    && complete == s.length
                    && s.sha256 == digest
                    && content_length.is_none_or(|l| l == complete - first) =>
                {
                    (have, complete)
                }
                _ => {
                    remove_part(part, side);
                    return Err(Attempt::Retry(
                        "the server's partial answer does not continue the file; starting over"
                            .into(),
                        None,
                    ));
                }
            }
        } else {
            let Some(len) = content_length else {
                return Err(Attempt::Fail(
                    Failure::Verification,
                    "the server did not say how long the file is".into(),
                ));
            };
            (0, len)
        };
        if length > MAX_FILE_BYTES {
            return Err(Attempt::Fail(
                Failure::Refused,
                format!(
                    "the server offers {length} bytes, over the client's limit of {MAX_FILE_BYTES}"
                ),
            ));
        }
        if let Some(size) = job.size
            && size != length
        {
            return Err(Attempt::Fail(
                Failure::Verification,
                format!("the server offers {length} bytes; the manifest says {size}"),
            ));
        }
        let state = PartState {
            v: 1,
            etag,
            length,
            sha256: digest,
        };
        if start == 0 {
            let stem = part
                .file_stem()
                .map(std::ffi::OsStr::to_os_string)
                .unwrap_or_default();
            let final_path = match &name {
                Some(n) => self.out.join(n),
                None => self.out.join(stem),
            };
            if !self.force && final_path.exists() {
                return Err(Attempt::Fail(
                    Failure::Local,
                    format!(
                        "{} exists (give --force to replace it)",
                        final_path.display()
                    ),
                ));
            }
            write_atomic(side, &state.to_bytes()).map_err(local)?;
        }
        bar.set_length(length);
        bar.set_position(start);
        if first_have.is_some_and(|h| h == start) || start == 0 {
            self.bars.total.inc_length(length - start);
        }
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(start == 0)
            .open(part)
            .await
            .map_err(local)?;
        if start > 0 {
            file.set_len(start).await.map_err(local)?;
        }
        let mut file = tokio::io::BufWriter::with_capacity(1 << 20, {
            use tokio::io::AsyncSeekExt as _;
            let mut f = file;
            f.seek(std::io::SeekFrom::Start(start))
                .await
                .map_err(local)?;
            f
        });
        let mut at = start;
        let mut resp = resp;
        let result = loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    let n = chunk.len() as u64;
                    if at + n > length {
                        break Err(Attempt::Fail(
                            Failure::Verification,
                            "the server sent more bytes than it announced".into(),
                        ));
                    }
                    if let Err(e) = file.write_all(&chunk).await {
                        break Err(local(e));
                    }
                    at += n;
                    bar.inc(n);
                    self.bars.total.inc(n);
                }
                Ok(None) => break Ok(()),
                Err(e) => break Err(Attempt::Retry(transport::describe(e), None)),
            }
        };
        // Keep what arrived, even when the connection broke: the next attempt resumes.
        file.flush().await.map_err(local)?;
        file.get_ref().sync_data().await.map_err(local)?;
        result?;
        if at < length {
            return Err(Attempt::Retry(
                format!("the connection ended after {at} of {length} bytes"),
                None,
            ));
        }
        Ok((state, name))
    }
}

/// Reads the part back, checks it, and links it to its final name. On a verification
/// failure the part and its sidecar are removed. `Err` carries the local SHA-256 if taken.
async fn verify_and_place(
    part: &Path,
    side: &Path,
    final_path: &Path,
    state: &PartState,
    job: &Expected,
    force: bool,
) -> Result<(String, Option<u64>), (Failure, String, Option<String>)> {
    let count = job.count.is_some();
    let p = part.to_owned();
    let read = tokio::task::spawn_blocking(move || hash_file(&p, count))
        .await
        .map_err(|e| (Failure::Other, e.to_string(), None))?;
    let (sha, len, records) =
        read.map_err(|e| (Failure::Local, format!("{}: {e}", part.display()), None))?;
    let hex = wire::hex32(&sha);
    let mismatch = if len != state.length {
        Some(format!(
            "{len} bytes on disk, the server announced {}",
            state.length
        ))
    } else if hex != state.sha256 {
        Some(format!(
            "SHA-256 {hex} on disk, Repr-Digest says {}",
            state.sha256
        ))
    } else if let Some(want) = job.sha256.filter(|w| *w != sha) {
        Some(format!(
            "SHA-256 {hex} on disk, the manifest says {}",
            wire::hex32(&want)
        ))
    } else {
        job.count.filter(|w| Some(*w) != records).map(|want| {
            format!(
                "{} NDJSON records, the manifest says {want}",
                records.unwrap_or(0)
            )
        })
    };
    if let Some(why) = mismatch {
        remove_part(part, side);
        return Err((
            Failure::Verification,
            format!("{why}; the partial file was deleted"),
            Some(hex),
        ));
    }
    let place = || -> std::io::Result<()> {
        if force {
            std::fs::rename(part, final_path)?;
        } else {
            // A hard link never replaces an existing file: the no-clobber rename.
            std::fs::hard_link(part, final_path)?;
            std::fs::remove_file(part)?;
        }
        let _ = std::fs::remove_file(side);
        if let Some(dir) = final_path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    };
    place().map_err(|e| {
        let why = if e.kind() == std::io::ErrorKind::AlreadyExists {
            format!(
                "{} exists (give --force to replace it); the verified file stays as {}",
                final_path.display(),
                part.display()
            )
        } else {
            format!("placing {}: {e}", final_path.display())
        };
        (Failure::Local, why, Some(hex.clone()))
    })?;
    Ok((hex, records))
}

/// SHA-256, length and (when asked) NDJSON record count of a file.
fn hash_file(path: &Path, count: bool) -> std::io::Result<([u8; 32], u64, Option<u64>)> {
    use std::io::Read as _;
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut c = RecordCounter::default();
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        if count {
            c.update(&buf[..n]);
        }
        len += n as u64;
    }
    Ok((h.finalize().into(), len, count.then(|| c.finish())))
}

fn read_part_state(side: &Path) -> Option<PartState> {
    let meta = std::fs::metadata(side).ok()?;
    if meta.len() > resume::MAX_RECORD_BYTES {
        return None;
    }
    PartState::from_bytes(&std::fs::read(side).ok()?).ok()
}

fn remove_part(part: &Path, side: &Path) {
    let _ = std::fs::remove_file(part);
    let _ = std::fs::remove_file(side);
}

/// Writes `bytes` to `path` atomically: a new temporary file (mode 0600) beside it,
/// fsynced, renamed over `path`.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
    }
    Ok(())
}
