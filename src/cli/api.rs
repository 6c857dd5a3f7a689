//! A small HTTPS JSON client for the CLI commands that talk to a running gateway.
//!
//! With the embedded state store, only the gateway process can open the database, so
//! `sallyport link …` and `sallyport artifact …` go through the gateway's own API — the
//! same checks, roles and audit records as any other client. Connection settings, in
//! order of precedence:
//!
//! * `--url` / `SALLYPORT_URL` — default `https://<server.listen>` from the configuration
//!   (an unspecified address becomes `127.0.0.1`);
//! * `--token-file` / `SALLYPORT_TOKEN_FILE` (preferred: a file, mode 0600) or
//!   `SALLYPORT_TOKEN` — a bearer token with the role the command needs (publisher for
//!   links and artifacts; uploader or auditor for batches);
//! * `--ca-file` / `SALLYPORT_CA_FILE` — the CA to trust; default: the development CA in
//!   `<data_dir>/dev-ca/ca.pem` when the configuration uses it, else the system roots are
//!   not consulted (give the CA explicitly).
//!
//! One request per connection, HTTP/1.1 over rustls (TLS 1.2+), 30 s timeout, response
//! bodies capped at 16 MiB.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use http::{HeaderValue, Method, Request, header};
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use rustls_pki_types::pem::PemObject;

use crate::config::Config;
use crate::secret::{Secret, read_secret_file};
use crate::tls::CertSource;

/// Largest response body accepted.
const MAX_RESPONSE: u64 = 16 << 20;
const TIMEOUT: Duration = Duration::from_secs(30);

/// Where and how to reach the gateway (the CLI flags).
#[derive(Debug, Clone, clap::Args)]
pub struct ApiArgs {
    /// The gateway's base URL, e.g. https://127.0.0.1:8443.
    #[arg(long, env = "SALLYPORT_URL", global = true)]
    pub url: Option<String>,
    /// A file holding the bearer token (with the role the command needs).
    #[arg(long, env = "SALLYPORT_TOKEN_FILE", global = true)]
    pub token_file: Option<PathBuf>,
    /// The CA certificate (PEM) to trust.
    #[arg(long, env = "SALLYPORT_CA_FILE", global = true)]
    pub ca_file: Option<PathBuf>,
}

/// A connected-on-demand API client.
pub struct ApiClient {
    host: String,
    port: u16,
    server_name: ServerName<'static>,
    token: Secret,
    tls: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClient")
            .field("host", &self.host)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl ApiClient {
    /// Builds the client from flags, environment and (for defaults) the configuration.
    pub fn from_args(args: &ApiArgs, config: Option<&Config>) -> anyhow::Result<Self> {
        let url = match (&args.url, config) {
            (Some(u), _) => u.clone(),
            (None, Some(c)) => {
                let mut addr = c.server.listen;
                if addr.ip().is_unspecified() {
                    addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
                }
                format!("https://{addr}")
            }
            (None, None) => bail!("give --url (or SALLYPORT_URL)"),
        };
        let rest = url
            .strip_prefix("https://")
            .context("the URL must start with https://")?
            .trim_end_matches('/');
        let (host, port) = split_host_port(rest)?;
        let token = match &args.token_file {
            Some(f) => read_secret_file(f, false)
                .with_context(|| format!("reading the token file {}", f.display()))?,
            None => match std::env::var("SALLYPORT_TOKEN") {
                Ok(t) if !t.is_empty() => Secret::from_string(t),
                _ => bail!("give --token-file (or SALLYPORT_TOKEN_FILE / SALLYPORT_TOKEN)"),
            },
        };
        let ca = match (&args.ca_file, config) {
            (Some(f), _) => f.clone(),
            (None, Some(c)) if c.tls.certificate == CertSource::Development => {
                crate::tls::devca::DevCaPaths::under(&c.data_dir).ca_cert
            }
            _ => bail!(
                "give --ca-file (or SALLYPORT_CA_FILE): the CA that signed the gateway's certificate"
            ),
        };
        let server_name = ServerName::try_from(host.trim_matches(['[', ']']).to_owned())
            .context("the URL's host is not a valid server name")?;
        Ok(Self {
            host,
            port,
            server_name,
            token,
            tls: Arc::new(tls_config(&ca)?),
        })
    }

    /// Sends one request; returns the status and the JSON body (`null` when empty). `path`
    /// may carry a query string.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> anyhow::Result<(u16, serde_json::Value)> {
        let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        self.call_bytes(method, path, bytes).await
    }

    /// Sends one request whose JSON body is `body` exactly as given (for documents whose
    /// bytes are what the server hashes and stores).
    pub async fn call_bytes(
        &self,
        method: Method,
        path: &str,
        body: Vec<u8>,
    ) -> anyhow::Result<(u16, serde_json::Value)> {
        tokio::time::timeout(TIMEOUT, self.call_inner(method, path, body))
            .await
            .context("the gateway did not answer within 30 s")?
    }

    async fn call_inner(
        &self,
        method: Method,
        path: &str,
        bytes: Vec<u8>,
    ) -> anyhow::Result<(u16, serde_json::Value)> {
        let tcp = tokio::net::TcpStream::connect((self.host.trim_matches(['[', ']']), self.port))
            .await
            .with_context(|| format!("connecting to {}:{}", self.host, self.port))?;
        let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
            .connect(self.server_name.clone(), tcp)
            .await
            .context("TLS handshake with the gateway")?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .context("HTTP handshake")?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let token = self
            .token
            .expose_str()
            .context("the token is not text")?
            .trim();
        let mut auth = HeaderValue::from_str(&format!("Bearer {token}"))
            .context("the token has characters a header cannot carry")?;
        auth.set_sensitive(true);
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, format!("{}:{}", self.host, self.port))
            .header(header::AUTHORIZATION, auth)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json")
            .body(http_body_util::Full::new(bytes::Bytes::from(bytes)))?;
        let resp = sender
            .send_request(req)
            .await
            .context("sending the request")?;
        let status = resp.status().as_u16();
        let body = crate::http::body::read_capped(
            None,
            axum::body::Body::new(resp.into_body()),
            MAX_RESPONSE,
        )
        .await
        .map_err(|e| anyhow::anyhow!("reading the response: {e}"))?;
        let json = if body.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&body).context("the response is not JSON")?
        };
        Ok((status, json))
    }
}

fn split_host_port(rest: &str) -> anyhow::Result<(String, u16)> {
    if rest.contains('/') {
        bail!("the URL must have no path: https://host[:port]");
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(':') && (!h.contains(':') || h.starts_with('[')) => (
            h.to_owned(),
            p.parse().context("the URL's port is not a number")?,
        ),
        _ => (rest.to_owned(), 443),
    };
    if host.is_empty() {
        bail!("the URL has no host");
    }
    Ok((host, port))
}

fn tls_config(ca: &Path) -> anyhow::Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_file_iter(ca)
        .with_context(|| format!("reading the CA file {}", ca.display()))?
    {
        roots
            .add(cert.with_context(|| format!("parsing {}", ca.display()))?)
            .context("adding the CA certificate")?;
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS versions")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

/// Turns a non-2xx answer into an error carrying the problem's code and title.
pub fn expect_success(status: u16, body: &serde_json::Value) -> anyhow::Result<()> {
    if (200..300).contains(&status) {
        return Ok(());
    }
    let code = body["code"].as_str().unwrap_or("unknown");
    let title = body["title"].as_str().unwrap_or("");
    bail!("the gateway answered {status} {code}: {title}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_ports() {
        assert_eq!(
            split_host_port("127.0.0.1:8443").unwrap(),
            ("127.0.0.1".into(), 8443)
        );
        assert_eq!(
            split_host_port("gw.example").unwrap(),
            ("gw.example".into(), 443)
        );
        assert_eq!(
            split_host_port("[::1]:9443").unwrap(),
            ("[::1]".into(), 9443)
        );
        assert!(split_host_port("h:x").is_err());
        assert!(split_host_port("h:1/path").is_err());
    }
}
