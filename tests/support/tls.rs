//! TLS clients for the gateway: one rustls client config builder (trusting the gateway's
//! dev CA, chosen versions and ALPN, optionally a client certificate), one reqwest client
//! over it, one raw TLS stream, and `openssl s_client` probes.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

/// A client certificate chain and its private key.
pub struct ClientCert {
    pub chain: Vec<rustls_pki_types::CertificateDer<'static>>,
    pub key: rustls_pki_types::PrivateKeyDer<'static>,
}

/// A rustls client config trusting `ca`, optionally presenting a client certificate.
pub fn client_tls(
    ca: &Path,
    versions: &[&'static rustls::SupportedProtocolVersion],
    alpn: &[&[u8]],
    client_cert: Option<ClientCert>,
) -> rustls::ClientConfig {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pki_types::CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let b = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots);
    let mut cfg = match client_cert {
        Some(cert) => b.with_client_auth_cert(cert.chain, cert.key).unwrap(),
        None => b.with_no_client_auth(),
    };
    cfg.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
    cfg
}

/// A reqwest client over `cfg` that reaches `localhost` at `addr`; HTTP/2 with prior
/// knowledge when `cfg` offers only `h2`.
pub fn https_client(cfg: rustls::ClientConfig, addr: std::net::SocketAddr) -> reqwest::Client {
    let h2_only = cfg.alpn_protocols == [b"h2".to_vec()];
    let b = reqwest::Client::builder()
        .use_preconfigured_tls(cfg)
        .resolve("localhost", addr);
    let b = if h2_only {
        b.http2_prior_knowledge()
    } else {
        b
    };
    b.build().unwrap()
}

/// A raw TLS 1.3 connection to `localhost` at `addr` offering one ALPN protocol.
pub async fn tls_stream(
    ca: &Path,
    addr: std::net::SocketAddr,
    alpn: &[u8],
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let cfg = client_tls(ca, &[&rustls::version::TLS13], &[alpn], None);
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap()
}

/// Runs `openssl s_client` against the gateway with extra args; returns (success, output).
pub fn openssl_handshake(addr: std::net::SocketAddr, args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .arg("s_client")
        .arg("-connect")
        .arg(addr.to_string())
        .arg("-servername")
        .arg("localhost")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("openssl is installed");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}
