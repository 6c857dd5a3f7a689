//! The accept loop: connection limit, TLS handshake, hyper (HTTP/1.1 and HTTP/2), header
//! read and idle timeouts, byte counting, and graceful shutdown.
//!
//! Behind a TCP balancer (`server.proxy_protocol_from`): a connection from a listed address
//! must start with a PROXY protocol v2 header (`proxy::v2`), read here — before the TLS
//! handshake, within `server.proxy_protocol_timeout`, never a byte past its end — and the
//! client it names is the connection's origin ([`ConnInfo::origin`]). A listed address that
//! sends no header or a bad one is closed, counted and audited (`security.proxy_refused`).
//! From any other address nothing is read as a header: its bytes go to TLS as they are.
//!
//! Protections against slow or greedy clients:
//! * at most `server.max_connections` connections are served; further ones wait in the
//!   kernel's accept backlog until a slot frees; at most
//!   `server.max_connections_per_address` of them from one client address (the origin:
//!   behind a PROXY-protocol balancer the client it names, counted once the header is
//!   read) — further ones from it are closed at once, so one address cannot take every
//!   slot (a `server.trusted_proxies` address is exempt: it speaks for many clients);
//! * the TLS handshake and each request head must complete within
//!   `server.header_read_timeout` (the slowloris defence): a late TLS handshake is
//!   closed; a late HTTP/1 head gets `408 request.header_timeout` and the connection
//!   closes (`server::head`; an idle keep-alive connection that sent no byte of a new head is
//!   closed without an answer);
//! * a connection is closed when it has had no request in flight for `server.idle_timeout`
//!   (HTTP/2 keep-alive pings and their answers do not count: an unauthenticated client
//!   that only answers pings must not keep a `max_connections` slot forever), or when no
//!   byte moved for that long even with a request in flight;
//! * request heads over `server.max_header_bytes` get a 431 problem response (hyper's own
//!   buffer is four times larger and answers a bare 431 beyond that);
//! * a closing connection lingers (`server::linger`): it reads and discards what the client
//!   still sends for up to 5 s and 64 MiB, so an answer given before the request body was
//!   read (409, 413, 403) reaches the client instead of being destroyed by a TCP reset.
//!
//! Graceful shutdown (SIGTERM/SIGINT): stop accepting, let in-flight requests finish for up
//! to `server.shutdown_grace`, then close what is left.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use super::AppState;
use super::context::ConnInfo;
use super::edge;
use crate::auth::ClientIdentity;
use crate::metrics::Metrics;
use crate::proxy::ClientAddr;
use crate::proxy::v2::{self, Parse};
use crate::tls::{TlsInfo, TlsReloader};

mod head;
mod linger;

/// How a server run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Connections still open when the grace period ran out (closed forcibly).
    pub abandoned_connections: usize,
}

/// Serves `listener` until `shutdown` resolves. `tls` is `None` only with
/// `danger_plaintext_http`.
pub async fn serve(
    listener: TcpListener,
    app: Arc<AppState>,
    tls: Option<Arc<TlsReloader>>,
    shutdown: impl Future<Output = ()>,
) -> ShutdownReport {
    let settings = app.config.server.clone();
    let limit = Arc::new(Semaphore::new(settings.max_connections));
    let per_address = PerAddress::new(settings.max_connections_per_address);
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    let head_limit = (settings.max_header_bytes.0 as usize * 4).max(8192);
    builder
        .http1()
        .timer(TokioTimer::new())
        // `head::HeadDeadline` keeps this deadline, and answers it with a 408.
        .header_read_timeout(None)
        .max_buf_size(head_limit.max(64 * 1024))
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(head_limit as u32)
        .max_concurrent_streams(256)
        .keep_alive_interval(Some(settings.idle_timeout / 2))
        .keep_alive_timeout(settings.header_read_timeout);
    let builder = Arc::new(builder);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            p = limit.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (tcp, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        app.metrics.connections.inc();
        let app = app.clone();
        let tls = tls.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let per_address = per_address.clone();
        tokio::spawn(async move {
            let mut tcp = tcp;
            let Some(origin) = origin_of(&app, &mut tcp, peer).await else {
                drop(permit);
                return;
            };
            // A trusted HTTP proxy carries many clients over its connections, and which
            // client each request is for is known only per request: its connections count
            // against `max_connections` alone (the per-address limit would shut out every
            // client behind it once a few of them were busy).
            let address_slot = if app.config.server.trusted_proxies.contains(origin) {
                None
            } else if let Some(slot) = per_address.take(origin) {
                Some(slot)
            } else {
                app.metrics.connections_refused.inc();
                tracing::debug!(%peer, %origin, "too many connections from this address; closed");
                drop(permit);
                return;
            };
            let addr = ClientAddr {
                client: origin,
                peer: peer.ip(),
            };
            app.metrics.open_connections.inc();
            let activity = Arc::new(AtomicU64::new(0));
            let io = CountingIo::new(tcp, app.metrics.clone(), activity.clone());
            let handshake_timeout = app.config.server.header_read_timeout;
            match tls {
                None => {
                    let conn = Arc::new(ConnInfo {
                        peer,
                        origin,
                        tls: None,
                        client: None,
                    });
                    run_connection(&builder, watcher, io, app.clone(), conn, activity).await;
                }
                Some(tls) => {
                    let acceptor = tokio_rustls::TlsAcceptor::from(tls.current());
                    match tokio::time::timeout(handshake_timeout, acceptor.accept(io)).await {
                        Ok(Ok(stream)) => {
                            let (_, session) = stream.get_ref();
                            let conn = Arc::new(ConnInfo {
                                peer,
                                origin,
                                tls: Some(TlsInfo::of(session)),
                                client: session
                                    .peer_certificates()
                                    .and_then(|c| c.first())
                                    .map(ClientIdentity::from_der),
                            });
                            run_connection(&builder, watcher, stream, app.clone(), conn, activity)
                                .await;
                        }
                        Ok(Err(e)) => {
                            app.metrics.tls_handshake_failures.inc();
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            app.security.tls_refused(addr, "handshake").await;
                        }
                        Err(_) => {
                            app.metrics.tls_handshake_failures.inc();
                            tracing::debug!(%peer, "TLS handshake timed out");
                            app.security.tls_refused(addr, "timeout").await;
                        }
                    }
                }
            }
            app.metrics.open_connections.dec();
            drop(address_slot);
            drop(permit);
        });
    }
    drop(listener);
    let grace = app.config.server.shutdown_grace;
    let open = graceful.count();
    tracing::info!(
        open_connections = open,
        "shutting down: draining in-flight requests"
    );
    let abandoned = match tokio::time::timeout(grace, graceful.shutdown()).await {
        Ok(()) => 0,
        Err(_) => app.metrics.open_connections.get().max(0) as usize,
    };
    ShutdownReport {
        abandoned_connections: abandoned,
    }
}

/// The connection's origin: for a `server.proxy_protocol_from` peer, the client its PROXY
/// header names (the peer itself for a LOCAL header), `None` when the header is missing,
/// bad or late (the connection is then refused, counted and audited); for any other peer,
/// the peer, with nothing read.
async fn origin_of(
    app: &AppState,
    tcp: &mut TcpStream,
    peer: std::net::SocketAddr,
) -> Option<std::net::IpAddr> {
    let settings = &app.config.server;
    if !settings.proxy_protocol_from.contains(peer.ip()) {
        return Some(peer.ip());
    }
    let read = tokio::time::timeout(settings.proxy_protocol_timeout, read_proxy_header(tcp));
    let reason = match read.await {
        Ok(Ok(proxied)) => return Some(proxied.map_or(peer.ip(), |p| p.src.ip())),
        Ok(Err(reason)) => reason,
        Err(_) => "timeout",
    };
    app.metrics.proxy_protocol_refused.inc();
    tracing::debug!(%peer, reason, "PROXY protocol header refused; closed");
    app.security.proxy_refused(peer.ip(), reason).await;
    None
}

/// Reads a PROXY v2 header off `tcp`, exactly its bytes and no more (the TLS handshake
/// reads what follows); the reason code when it cannot.
async fn read_proxy_header(tcp: &mut TcpStream) -> Result<Option<v2::Proxied>, &'static str> {
    let mut buf = Vec::with_capacity(v2::FIXED_LEN + 64);
    loop {
        match v2::parse(&buf) {
            Ok(Parse::Parsed(header)) => return Ok(header.proxied),
            Ok(Parse::Incomplete { needed }) => {
                let start = buf.len();
                buf.resize(start + needed, 0);
                tcp.read_exact(&mut buf[start..])
                    .await
                    .map_err(|_| "closed")?;
            }
            Err(e) => return Err(e.as_str()),
        }
    }
}

async fn run_connection<I>(
    builder: &auto::Builder<TokioExecutor>,
    watcher: hyper_util::server::graceful::Watcher,
    io: I,
    app: Arc<AppState>,
    conn: Arc<ConnInfo>,
    activity: Arc<AtomicU64>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let idle = app.config.server.idle_timeout;
    let requests = Arc::new(Requests::new());
    let h2 = conn
        .tls
        .as_ref()
        .is_some_and(|t| t.alpn.as_deref() == Some("h2"));
    // Below the head deadline: when hyper closes the connection, the answer it wrote is
    // not lost to a reset caused by request bytes it never read (see `linger`).
    let io = head::HeadDeadline::new(
        linger::Linger::new(io),
        requests.clone(),
        app.config.server.header_read_timeout,
        h2,
        LateHead {
            app: app.clone(),
            addr: ClientAddr {
                client: conn.origin,
                peer: conn.peer.ip(),
            },
        },
    );
    let service = {
        let requests = requests.clone();
        hyper::service::service_fn(move |req| {
            let app = app.clone();
            let conn = conn.clone();
            // In flight from here until the response body is finished or dropped.
            let guard = requests.begin();
            async move {
                let resp = edge::handle(app, conn, req).await;
                Ok::<_, std::convert::Infallible>(resp.map(|body| {
                    axum::body::Body::new(Tracked {
                        body,
                        _guard: guard,
                    })
                }))
            }
        })
    };
    let connection = watcher.watch(
        builder
            .serve_connection(TokioIo::new(io), service)
            .into_owned(),
    );
    tokio::pin!(connection);
    let start = Instant::now();
    loop {
        tokio::select! {
            result = &mut connection => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            () = tokio::time::sleep(idle / 4) => {
                let now = start.elapsed();
                let last_byte = Duration::from_millis(activity.load(Ordering::Relaxed));
                let no_request = requests.idle_for().is_some_and(|t| t >= idle);
                if no_request || now.saturating_sub(last_byte) >= idle {
                    tracing::debug!("closing idle connection");
                    return;
                }
            }
        }
    }
}

/// What a connection does about a late HTTP/1 request head: count it, audit it (rate
/// limited, in the background) and answer 408.
struct LateHead {
    app: Arc<AppState>,
    addr: ClientAddr,
}

impl head::OnLate for LateHead {
    fn answer(&mut self, head_bytes: u64) -> Vec<u8> {
        self.app.metrics.header_timeouts.inc();
        let (request_id, bytes) = edge::header_timeout_answer(&self.app);
        tracing::debug!(peer = %self.addr.peer, request_id, "request head too slow; 408");
        let security = self.app.security.clone();
        let addr = self.addr;
        tokio::spawn(async move { security.header_timeout(addr, request_id, head_bytes).await });
        bytes
    }

    fn closed_silently(&mut self) {
        tracing::debug!(peer = %self.addr.peer, "no request head; closed");
    }
}

/// Open connections per client IP address.
#[derive(Clone)]
struct PerAddress {
    open: Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>>,
    max: usize,
}

impl PerAddress {
    fn new(max: usize) -> Self {
        Self {
            open: Arc::default(),
            max,
        }
    }

    /// A slot for one more connection from `ip`, or `None` when it has `max` open.
    fn take(&self, ip: std::net::IpAddr) -> Option<AddressSlot> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(ip).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(AddressSlot {
            ip,
            of: self.clone(),
        })
    }
}

/// One open connection from an address; dropping it frees the slot.
struct AddressSlot {
    ip: std::net::IpAddr,
    of: PerAddress,
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = self.of.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// The requests of one connection: how many are in flight (from the service call until
/// the response body ends or is dropped) and when the last one began or ended.
struct Requests {
    in_flight: AtomicUsize,
    /// Milliseconds since `born` of the last begin or end.
    last: AtomicU64,
    /// Requests ended so far (with none in flight: which head comes next).
    ended: AtomicU64,
    born: Instant,
}

impl Requests {
    fn new() -> Self {
        Self {
            in_flight: AtomicUsize::new(0),
            last: AtomicU64::new(0),
            ended: AtomicU64::new(0),
            born: Instant::now(),
        }
    }

    fn touch(&self) {
        self.last
            .store(self.born.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.touch();
        InFlight(self.clone())
    }

    /// With nothing in flight: how long since the last request began or ended (or since
    /// the connection began, if it never had one); `None` while a request is in flight.
    fn idle_for(&self) -> Option<Duration> {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return None;
        }
        let last = Duration::from_millis(self.last.load(Ordering::Relaxed));
        Some(self.born.elapsed().saturating_sub(last))
    }
}

/// One request in flight; dropping it ends it.
struct InFlight(Arc<Requests>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.ended.fetch_add(1, Ordering::Relaxed);
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A response body that keeps its request in flight until it is finished or dropped.
struct Tracked {
    body: axum::body::Body,
    _guard: InFlight,
}

impl http_body::Body for Tracked {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// Wraps a TCP stream: counts bytes for metrics and records the time of the last activity
/// (milliseconds since the connection started) for the idle timeout.
struct CountingIo {
    inner: TcpStream,
    metrics: Arc<Metrics>,
    activity: Arc<AtomicU64>,
    start: Instant,
}

impl CountingIo {
    fn new(inner: TcpStream, metrics: Arc<Metrics>, activity: Arc<AtomicU64>) -> Self {
        Self {
            inner,
            metrics,
            activity,
            start: Instant::now(),
        }
    }

    fn touch(&self) {
        self.activity
            .store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

impl AsyncRead for CountingIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            self.metrics.bytes_in.inc_by(n as u64);
            self.touch();
        }
        r
    }
}

impl AsyncWrite for CountingIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            self.metrics.bytes_out.inc_by(n as u64);
            self.touch();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = r {
            self.metrics.bytes_out.inc_by(n as u64);
            self.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
