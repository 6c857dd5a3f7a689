//! The outputs of `audit::ship`: a file (append, `fsync`, torn-tail repair) or a TCP / TLS
//! stream (connect, health checks, clean close). The delivery rules are in the parent's
//! `//!` docs.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::{ShipError, Target, io_err};
use crate::audit::siem::{self, Format};

pub(super) trait Conn: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Conn for T {}

/// An open output: a file, or a (re)connecting stream.
pub(super) enum Sink {
    File {
        path: PathBuf,
        file: Option<std::fs::File>,
    },
    Stream {
        target: Target,
        tls: Option<(
            Arc<rustls::ClientConfig>,
            rustls_pki_types::ServerName<'static>,
        )>,
        conn: Option<Box<dyn Conn>>,
    },
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

impl Sink {
    pub(super) fn new(target: &Target) -> Result<Self, ShipError> {
        Ok(match target {
            Target::File(path) => Sink::File {
                path: path.clone(),
                file: None,
            },
            Target::Tcp { .. } => Sink::Stream {
                target: target.clone(),
                tls: None,
                conn: None,
            },
            Target::Tls { host, ca, .. } => {
                let config = tls_config(ca)?;
                let name = rustls_pki_types::ServerName::try_from(host.clone())
                    .map_err(|_| ShipError::Target(format!("{host:?} is not a valid TLS name")))?;
                Sink::Stream {
                    target: target.clone(),
                    tls: Some((config, name)),
                    conn: None,
                }
            }
        })
    }

    /// For a file: opens it, cuts off a torn last line, and returns the seq of its last
    /// line when that line is one of ours.
    pub(super) fn reconcile_file(&mut self, format: Format) -> Result<Option<u64>, ShipError> {
        let Sink::File { path, file } = self else {
            return Ok(None);
        };
        let f = open_output(path)?;
        let what = || format!("reading {}", path.display());
        let len = f.metadata().map_err(io_err(what()))?.len();
        let tail = read_tail(&f, len).map_err(io_err(what()))?;
        // `tail` ends at EOF and starts at a line start (or the file's start).
        let complete = tail.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        if complete < tail.len() {
            let keep = len - (tail.len() - complete) as u64;
            tracing::warn!(
                path = %path.display(),
                bytes = len - keep,
                "cutting off a torn last line of the SIEM output (a write was interrupted)"
            );
            f.set_len(keep).map_err(io_err(what()))?;
            f.sync_all().map_err(io_err(what()))?;
        }
        let lines = &tail[..complete];
        let last = lines
            .strip_suffix(b"\n")
            .map(|l| l.rsplit(|&b| b == b'\n').next().unwrap_or(l));
        *file = Some(f);
        Ok(last.and_then(|l| siem::seq_of_line(format, l)))
    }

    /// Closes a stream connection cleanly (TLS sends close_notify); bounded in time.
    pub(super) async fn close(&mut self) {
        if let Sink::Stream { conn: Some(c), .. } = self {
            let _ = tokio::time::timeout(Duration::from_secs(5), c.shutdown()).await;
        }
    }

    /// Writes `buf` and makes it delivered by this sink's rule; on error nothing counts as
    /// delivered and a retry writes the whole batch again.
    pub(super) async fn deliver(&mut self, buf: &[u8]) -> Result<(), std::io::Error> {
        match self {
            Sink::File { path, file } => {
                let f = match file {
                    Some(f) => f,
                    None => file.insert(open_output(path).map_err(std::io::Error::other)?),
                };
                let start = f.metadata()?.len();
                let written = f.write_all(buf).and_then(|()| f.sync_data());
                if let Err(e) = written {
                    // Leave no part of the batch behind: the retry writes it whole.
                    let _ = f.set_len(start);
                    *file = None;
                    return Err(e);
                }
                Ok(())
            }
            Sink::Stream { target, tls, conn } => {
                if let Some(c) = conn.as_mut()
                    && !healthy(c.as_mut())
                {
                    *conn = None;
                }
                let c = match conn {
                    Some(c) => c,
                    None => conn.insert(connect(target, tls.as_ref()).await?),
                };
                let sent = tokio::time::timeout(WRITE_TIMEOUT, async {
                    c.write_all(buf).await?;
                    c.flush().await
                })
                .await
                .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()));
                let result = match sent {
                    Ok(()) if healthy(c.as_mut()) => Ok(()),
                    Ok(()) => Err(std::io::Error::new(
                        std::io::ErrorKind::ConnectionReset,
                        "the endpoint closed the connection",
                    )),
                    Err(e) => Err(e),
                };
                if result.is_err() {
                    *conn = None;
                }
                result
            }
        }
    }
}

/// Opens the output file for appending (created 0600 if missing).
fn open_output(path: &Path) -> Result<std::fs::File, ShipError> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err(format!("opening {}", path.display())))
}

/// The bytes from the start of the file's last complete line (or the file's start) to EOF,
/// so the last line and any torn tail after it.
fn read_tail(mut f: &std::fs::File, len: u64) -> std::io::Result<Vec<u8>> {
    let mut start = len;
    let mut tail = Vec::new();
    loop {
        let from = start.saturating_sub(64 * 1024);
        let mut chunk = vec![0; (start - from) as usize];
        f.seek(SeekFrom::Start(from))?;
        f.read_exact(&mut chunk)?;
        chunk.extend_from_slice(&tail);
        tail = chunk;
        start = from;
        if let Some(end) = tail.iter().rposition(|&b| b == b'\n')
            && let Some(begin) = tail[..end].iter().rposition(|&b| b == b'\n')
        {
            return Ok(tail.split_off(begin + 1));
        }
        if start == 0 {
            return Ok(tail);
        }
    }
}

/// Whether nothing says the peer went away: a read that would block is healthy; EOF or
/// an error is not. Data from a syslog receiver is unexpected and ignored.
fn healthy(c: &mut dyn Conn) -> bool {
    use futures_util::FutureExt;
    let mut byte = [0u8; 64];
    match c.read(&mut byte).now_or_never() {
        None => true,
        Some(Ok(n)) => n > 0,
        Some(Err(_)) => false,
    }
}

async fn connect(
    target: &Target,
    tls: Option<&(
        Arc<rustls::ClientConfig>,
        rustls_pki_types::ServerName<'static>,
    )>,
) -> Result<Box<dyn Conn>, std::io::Error> {
    let (host, port) = match target {
        Target::Tcp { host, port } | Target::Tls { host, port, .. } => (host.as_str(), *port),
        Target::File(_) => return Err(std::io::Error::other("not a stream target")),
    };
    let tcp = tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio::net::TcpStream::connect((host, port)),
    )
    .await
    .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))?;
    tcp.set_nodelay(true)?;
    match tls {
        None => Ok(Box::new(tcp)),
        Some((config, name)) => {
            let connector = tokio_rustls::TlsConnector::from(config.clone());
            let s = tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(name.clone(), tcp))
                .await
                .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))?;
            Ok(Box::new(s))
        }
    }
}

fn tls_config(ca: &Path) -> Result<Arc<rustls::ClientConfig>, ShipError> {
    use rustls_pki_types::pem::PemObject;
    let what = || format!("reading the CA file {}", ca.display());
    let mut roots = rustls::RootCertStore::empty();
    let certs = rustls_pki_types::CertificateDer::pem_file_iter(ca)
        .map_err(|e| io_err(what())(std::io::Error::other(e.to_string())))?;
    for cert in certs {
        let cert = cert.map_err(|e| io_err(what())(std::io::Error::other(e.to_string())))?;
        roots
            .add(cert)
            .map_err(|e| io_err(what())(std::io::Error::other(e.to_string())))?;
    }
    if roots.is_empty() {
        return Err(io_err(what())(std::io::Error::other(
            "no certificate in it",
        )));
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| io_err("building the TLS client")(std::io::Error::other(e.to_string())))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}
