//! Ships the audit chain to a SIEM: reads entries from the state store in sequence order,
//! renders them ([`super::siem`]) and delivers them to a file or a TCP / TLS endpoint,
//! recording the last delivered sequence in a cursor file so that a restart or an outage
//! resumes exactly where delivery stopped.
//!
//! **The delivery rule** (`docs/audit.md` § SIEM export says it for operators):
//!
//! * A batch is *delivered* to a **file** when it is written and `fsync`ed. The cursor is
//!   then replaced atomically (temp file, `fsync`, rename, directory `fsync`). A kill
//!   between the two leaves the file ahead of the cursor: on start the shipper reads the
//!   file's last line, takes its `seq` as delivered, and cuts a torn last line off (only we
//!   append to the file). So a file receives every entry exactly once.
//! * A batch is delivered to **TCP or TLS** when it was written and flushed and the
//!   connection still looks healthy afterwards (no EOF or error readable from the peer);
//!   the connection is also checked before each batch. Syslog over TCP (RFC 6587) has no
//!   acknowledgements, so bytes the peer's kernel accepted and its receiver then lost when
//!   it crashed cannot be seen from here: that is the honest limit. Every message carries
//!   its `seq` (and the entry hash), so a receiver can detect gaps and drop duplicates.
//! * When the endpoint is down or a write fails, the batch is retried with exponential
//!   backoff (from 100 ms up to `retry_max`), the cursor unchanged: nothing is skipped.
//!
//! The cursor names its target and format and the hash of the last delivered entry; a
//! cursor for another target is refused, and so is a store whose entry at the cursor has
//! another hash (a different or rewritten chain).
//!
//! Not here: the formats (pure, `siem`), the outputs themselves (`ship::sink`), the
//! command line (`cli::audit`).

use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::log::AuditLog;
use super::siem::{self, Format, Framing};
use crate::state::StateError;

mod sink;

use sink::Sink;

/// Where entries go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Appended to a local file.
    File(PathBuf),
    /// A TCP endpoint.
    Tcp {
        /// Host name or address.
        host: String,
        /// Port.
        port: u16,
    },
    /// A TLS endpoint; its certificate must chain to `ca` and name `host`.
    Tls {
        /// Host name (checked against the certificate) or address.
        host: String,
        /// Port.
        port: u16,
        /// PEM file of the CA(s) to trust.
        ca: PathBuf,
    },
}

impl Target {
    /// Parses `file:PATH`, `tcp://HOST:PORT` or `tls://HOST:PORT` (`ca` required for TLS).
    pub fn parse(s: &str, ca: Option<PathBuf>) -> Result<Self, ShipError> {
        let bad = |why: &str| ShipError::Target(format!("{s:?}: {why}"));
        if let Some(path) = s.strip_prefix("file:") {
            if path.is_empty() {
                return Err(bad("the path is empty"));
            }
            return Ok(Target::File(PathBuf::from(path)));
        }
        let (scheme, rest) = s
            .split_once("://")
            .ok_or_else(|| bad("expected file:PATH, tcp://HOST:PORT or tls://HOST:PORT"))?;
        let (host, port) = rest
            .rsplit_once(':')
            .ok_or_else(|| bad("the port is missing"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port: u16 = port.parse().map_err(|_| bad("the port is not a number"))?;
        if host.is_empty() || port == 0 {
            return Err(bad("host and a non-zero port are required"));
        }
        match scheme {
            "tcp" => Ok(Target::Tcp {
                host: host.into(),
                port,
            }),
            "tls" => Ok(Target::Tls {
                host: host.into(),
                port,
                ca: ca.ok_or_else(|| bad("tls:// needs --ca-file (the CA to trust)"))?,
            }),
            _ => Err(bad("the scheme must be file, tcp or tls")),
        }
    }

    /// How the target is written in the cursor and in messages.
    pub fn name(&self) -> String {
        match self {
            Target::File(p) => format!("file:{}", p.display()),
            Target::Tcp { host, port } => format!("tcp://{host}:{port}"),
            Target::Tls { host, port, .. } => format!("tls://{host}:{port}"),
        }
    }

    fn framing(&self, format: Format) -> Framing {
        match (self, format) {
            (Target::File(_), _) | (_, Format::JsonLines) => Framing::Lines,
            (_, Format::SyslogCef) => Framing::OctetCounting,
        }
    }
}

/// What to ship and how.
#[derive(Debug, Clone)]
pub struct ShipOptions {
    /// Where to.
    pub target: Target,
    /// In which format.
    pub format: Format,
    /// The cursor file.
    pub state: PathBuf,
    /// Keep tailing new entries instead of stopping at the head.
    pub follow: bool,
    /// Entries per batch (one write, one fsync, one cursor update).
    pub batch_max: usize,
    /// How often to look for new entries when following.
    pub poll: Duration,
    /// The longest wait between retries.
    pub retry_max: Duration,
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ShipSummary {
    /// The target.
    pub target: String,
    /// The format.
    pub format: &'static str,
    /// Entries delivered by this run.
    pub delivered: u64,
    /// The last delivered sequence (the cursor), 0 if none.
    pub last_seq: u64,
    /// Failed delivery attempts that were retried.
    pub retries: u64,
}

/// What the caller hears while shipping (the CLI draws a progress bar and prints retries).
pub trait Progress: Send {
    /// A batch up to `last_seq` was delivered; `head` is the store's last seq seen.
    fn delivered(&mut self, last_seq: u64, head: u64);
    /// Delivery failed (`error`, free of secrets); retrying after `wait`.
    fn retrying(&mut self, error: &str, wait: Duration);
}

/// Why shipping stopped.
#[derive(Debug, thiserror::Error)]
pub enum ShipError {
    /// The `--to` value is not usable.
    #[error("bad target {0}")]
    Target(String),
    /// The state store failed.
    #[error(transparent)]
    Store(#[from] StateError),
    /// An entry could not be rendered (a corrupt store: run `audit verify`).
    #[error("audit entry {seq}: {source}")]
    Entry {
        /// Its sequence number.
        seq: u64,
        /// Why.
        source: siem::SiemError,
    },
    /// The cursor does not fit this target or this store.
    #[error("delivery state {path}: {why}")]
    Cursor {
        /// The cursor file.
        path: String,
        /// What does not fit.
        why: String,
    },
    /// Reading or writing the cursor or the TLS CA failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ShipError {
    let what = what.into();
    move |source| ShipError::Io { what, source }
}

/// The durable delivery cursor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Cursor {
    v: u8,
    target: String,
    format: String,
    /// Last delivered seq (0: none).
    seq: u64,
    /// Its entry hash (empty when `seq` is 0).
    hash: String,
}

impl Cursor {
    fn load(path: &Path, opts: &ShipOptions) -> Result<Self, ShipError> {
        let fresh = Cursor {
            v: 1,
            target: opts.target.name(),
            format: opts.format.as_str().into(),
            seq: 0,
            hash: String::new(),
        };
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(fresh),
            Err(e) => return Err(io_err(format!("reading {}", path.display()))(e)),
        };
        let bad = |why: String| ShipError::Cursor {
            path: path.display().to_string(),
            why,
        };
        let c: Cursor =
            serde_json::from_slice(&bytes).map_err(|e| bad(format!("unreadable ({e})")))?;
        if c.target != fresh.target || c.format != fresh.format {
            return Err(bad(format!(
                "it records delivery to {} as {}, not {} as {}; give another --state",
                c.target, c.format, fresh.target, fresh.format
            )));
        }
        Ok(c)
    }

    /// Replaces the cursor file atomically, mode 0600.
    fn save(&self, path: &Path) -> Result<(), ShipError> {
        use std::os::unix::fs::OpenOptionsExt;
        let what = || format!("writing {}", path.display());
        let tmp = path.with_extension("tmp");
        let bytes = serde_json::to_vec(self).map_err(|e| io_err(what())(e.into()))?;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io_err(what()))?;
        f.write_all(&bytes).map_err(io_err(what()))?;
        f.sync_all().map_err(io_err(what()))?;
        std::fs::rename(&tmp, path).map_err(io_err(what()))?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(what()))
    }
}

/// Ships entries after the cursor until the head (or, with `follow`, until `stop`
/// completes). Returns what was delivered; the cursor is always consistent on return.
pub async fn ship(
    store: &dyn AuditLog,
    opts: &ShipOptions,
    progress: &mut dyn Progress,
    stop: impl Future<Output = ()>,
) -> Result<ShipSummary, ShipError> {
    tokio::pin!(stop);
    let mut cursor = Cursor::load(&opts.state, opts)?;
    let mut sink = Sink::new(&opts.target)?;
    if let Some(seq) = sink.reconcile_file(opts.format)?
        && seq > cursor.seq
    {
        // The file got a batch whose cursor update a kill prevented.
        cursor.hash = entry_hash(store, seq)
            .await?
            .ok_or_else(|| ShipError::Cursor {
                path: opts.state.display().to_string(),
                why: format!("the output holds seq {seq}, which this store does not have"),
            })?;
        cursor.seq = seq;
        cursor.save(&opts.state)?;
    }
    if cursor.seq > 0 && entry_hash(store, cursor.seq).await?.as_deref() != Some(&cursor.hash) {
        return Err(ShipError::Cursor {
            path: opts.state.display().to_string(),
            why: format!(
                "entry {} in this store is missing or differs from the one delivered: another or a rewritten chain (run `audit verify`)",
                cursor.seq
            ),
        });
    }

    let result: Result<ShipSummary, ShipError> = async {
        let mut summary = ShipSummary {
            target: opts.target.name(),
            format: opts.format.as_str(),
            last_seq: cursor.seq,
            ..ShipSummary::default()
        };
        let framing = opts.target.framing(opts.format);
        let version = env!("CARGO_PKG_VERSION");
        loop {
            let next = cursor.seq + 1;
            let page = match store.read(next, opts.batch_max.max(1)).await {
                Ok(page) => page,
                Err(e) if opts.follow => {
                    // A following shipper outlives a store outage (Redis restarting).
                    summary.retries += 1;
                    progress.retrying(&format!("reading the audit log: {e}"), opts.poll);
                    tokio::select! {
                        () = &mut stop => return Ok(summary),
                        () = tokio::time::sleep(opts.poll) => continue,
                    }
                }
                Err(e) => return Err(e.into()),
            };
            if page.is_empty() {
                if !opts.follow {
                    return Ok(summary);
                }
                tokio::select! {
                    () = &mut stop => return Ok(summary),
                    () = tokio::time::sleep(opts.poll) => continue,
                }
            }
            let mut buf = Vec::new();
            for (i, e) in page.iter().enumerate() {
                let expected = next + i as u64;
                if e.seq != expected {
                    return Err(StateError::Corrupt(format!(
                        "audit log read returned seq {} where {expected} was expected",
                        e.seq
                    ))
                    .into());
                }
                let parsed = siem::Entry::parse(&e.bytes)
                    .map_err(|source| ShipError::Entry { seq: e.seq, source })?;
                let msg = siem::render(opts.format, &e.bytes, &parsed, version)
                    .map_err(|source| ShipError::Entry { seq: e.seq, source })?;
                siem::frame(framing, &msg, &mut buf);
                cursor.hash = parsed.hash;
            }
            let last = page.last().map_or(cursor.seq, |e| e.seq);

            let mut wait = Duration::from_millis(100);
            loop {
                match sink.deliver(&buf).await {
                    Ok(()) => break,
                    Err(e) => {
                        summary.retries += 1;
                        progress.retrying(&format!("{}: {e}", opts.target.name()), wait);
                        tokio::select! {
                            () = &mut stop => return Ok(summary),
                            () = tokio::time::sleep(wait) => {}
                        }
                        wait = (wait * 2).min(opts.retry_max.max(Duration::from_millis(100)));
                    }
                }
            }
            cursor.seq = last;
            cursor.save(&opts.state)?;
            summary.delivered += page.len() as u64;
            summary.last_seq = last;
            let head = store.head().await?.map_or(last, |e| e.seq);
            progress.delivered(last, head);
        }
    }
    .await;
    // Close cleanly (TLS close_notify) whether done, stopped or failed.
    sink.close().await;
    result
}

async fn entry_hash(store: &dyn AuditLog, seq: u64) -> Result<Option<String>, ShipError> {
    let page = store.read(seq, 1).await?;
    match page.first() {
        Some(e) if e.seq == seq => Ok(Some(
            siem::Entry::parse(&e.bytes)
                .map_err(|source| ShipError::Entry { seq, source })?
                .hash,
        )),
        _ => Ok(None),
    }
}
