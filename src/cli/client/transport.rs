//! The client's HTTPS connection: reqwest over rustls (TLS 1.2+, the gateway's CA from
//! `--cacert`, an optional client certificate for mutual TLS), and the credential an
//! upload presents.
//!
//! Verification is never switched off: there is no flag for it. The system's root store
//! is not consulted (the gateway usually has a private CA); `--cacert` is required.
//! Redirects are not followed (a signed link or an upload URL that moves is an error, not
//! something to chase with a credential attached), and errors are printed without their
//! URL: a signed link is a bearer credential.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::CommonArgs;
use crate::secret::{Secret, read_secret_file};

/// How long a connection may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the server may stay silent while a response is read.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Builds the HTTPS client from the flags.
pub fn client(args: &CommonArgs) -> anyhow::Result<reqwest::Client> {
    let Some(ca) = &args.cacert else {
        bail!(
            "give --cacert FILE (or SALLYPORT_CA_FILE): the CA that signed the gateway's certificate"
        );
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca)
        .with_context(|| format!("reading the CA file {}", ca.display()))?
    {
        roots
            .add(cert.with_context(|| format!("parsing the CA file {}", ca.display()))?)
            .with_context(|| {
                format!("the CA file {} holds an unusable certificate", ca.display())
            })?;
    }
    if roots.is_empty() {
        bail!("the CA file {} holds no certificate", ca.display());
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS versions")?
        .with_root_certificates(roots);
    let mut tls = match (&args.cert, &args.key) {
        (Some(cert), Some(key)) => {
            let (chain, key) = client_identity(cert, key)?;
            builder
                .with_client_auth_cert(chain, key)
                .context("the client certificate and key do not go together")?
        }
        _ => builder.with_no_client_auth(),
    };
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .https_only(true)
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(READ_TIMEOUT)
        .user_agent(concat!("sallyport-client/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("building the HTTPS client")
}

fn client_identity(
    cert: &Path,
    key: &Path,
) -> anyhow::Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let chain = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("reading the client certificate {}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parsing the client certificate {}", cert.display()))?;
    if chain.is_empty() {
        bail!("{} holds no certificate", cert.display());
    }
    // The key is a secret: the same strict file check as the gateway's own secrets.
    let pem = read_secret_file(key, false)
        .with_context(|| format!("reading the client key {}", key.display()))?;
    let key = PrivateKeyDer::from_pem_slice(pem.expose())
        .with_context(|| format!("{} holds no PEM private key", key.display()))?;
    Ok((chain, key))
}

/// What an upload presents to the gateway: a bearer token — an API client's, or an upload
/// invitation's (`inv1~…`, taken from the invitation URL's fragment by `invitation.rs`).
#[derive(Clone)]
pub enum Credential {
    /// `Authorization: Bearer …`.
    Bearer(Secret),
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credential(<redacted>)")
    }
}

impl Credential {
    /// From `--token-file` / `SALLYPORT_TOKEN_FILE`, else `SALLYPORT_TOKEN`. Never from a
    /// command-line argument (it would show in `ps`).
    pub fn from_env(token_file: Option<&Path>) -> anyhow::Result<Self> {
        let secret = match token_file {
            Some(f) => read_secret_file(f, false)
                .with_context(|| format!("reading the token file {}", f.display()))?,
            None => match std::env::var("SALLYPORT_TOKEN") {
                Ok(t) if !t.trim().is_empty() => Secret::from_string(t),
                _ => bail!("give --token-file FILE (or SALLYPORT_TOKEN_FILE / SALLYPORT_TOKEN)"),
            },
        };
        let text = secret
            .expose_str()
            .context("the token is not text")?
            .trim()
            .to_owned();
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_graphic()) {
            bail!("the token must be one line of visible ASCII");
        }
        Ok(Credential::Bearer(Secret::from_string(text)))
    }

    /// Adds the credential to a request.
    pub fn apply(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self {
            Credential::Bearer(token) => {
                let value = format!("Bearer {}", token.expose_str().unwrap_or_default());
                match reqwest::header::HeaderValue::from_str(&value) {
                    Ok(mut v) => {
                        v.set_sensitive(true);
                        req.header(reqwest::header::AUTHORIZATION, v)
                    }
                    // Checked in `from_env`: visible ASCII always makes a header value.
                    Err(_) => req,
                }
            }
        }
    }
}

/// Whether a response status is worth retrying (the server or a proxy is busy or down).
pub fn retryable(status: u16) -> bool {
    matches!(status, 408 | 423 | 429) || (500..600).contains(&status)
}

/// The `Retry-After` seconds of a response, if given as a number.
pub fn retry_after(resp: &reqwest::Response) -> Option<u64> {
    resp.headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// A transport error as text without its URL (a signed link is a credential).
pub fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// A refusal's problem code and title from a problem+json or `OperationOutcome` body (read
/// capped), for the report: `403 link.refused (The link is not valid)`.
pub async fn refusal(resp: reqwest::Response) -> String {
    let status = resp.status().as_u16();
    let mut body = Vec::new();
    let mut resp = resp;
    while let Ok(Some(chunk)) = resp.chunk().await {
        body.extend_from_slice(&chunk);
        if body.len() > 64 << 10 {
            break;
        }
    }
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    // A problem body, or a FHIR OperationOutcome (the `/fhir/…` routes).
    let detail = &v["issue"][0]["details"];
    let code = v["code"]
        .as_str()
        .or_else(|| detail["coding"][0]["code"].as_str());
    let title = v["title"].as_str().or_else(|| detail["text"].as_str());
    match (code, title) {
        (Some(code), Some(title)) => format!("the server answered {status} {code}: {title}"),
        (Some(code), None) => format!("the server answered {status} {code}"),
        _ => format!("the server answered {status}"),
    }
}
