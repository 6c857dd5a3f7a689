//! TLS termination with rustls: the server configuration, the development CA, certificate
//! reload, and the identity of a verified client certificate.
//!
//! Policy (not configurable, because every weaker choice is wrong for PHI in transit):
//! TLS 1.2 and 1.3 only; only AEAD cipher suites with forward secrecy (rustls implements
//! no CBC or RSA-key-exchange suites, and we keep its AES-GCM and ChaCha20-Poly1305 ones);
//! ALPN `h2` then `http/1.1`; the aws-lc-rs provider.
//!
//! Certificates come from PEM files, or on a first start without any, from a development
//! CA made in the data directory ([`devca`]). [`TlsReloader`] rebuilds the whole
//! `ServerConfig` (certificate, key and client-CA bundle) on SIGHUP; new connections use
//! the new one, open connections keep theirs, so nothing is dropped. A reload that fails
//! keeps the old configuration and logs why. The validated `[tls]` settings
//! ([`TlsSettings`]) live here too; `config` builds them.
//!
//! Not here: the accept loop (see `http::server`), authorisation decisions and the client
//! identity type (`auth::ClientIdentity`, which the handshake fills in), reading the
//! configuration file (see `config`).

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

pub mod devca;

/// ALPN protocols offered, in order of preference.
pub const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or holds no usable item.
    #[error("{what} {path}: {message}")]
    Pem {
        /// What the file should hold.
        what: &'static str,
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The key file was refused by the strict file check (type, owner, mode, size).
    #[error(transparent)]
    KeyFile(#[from] crate::secret::PrivateFileError),
    /// rustls refused the configuration (e.g. key does not match certificate).
    #[error("TLS configuration rejected: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client CA bundle could not be turned into a verifier.
    #[error("client CA bundle unusable: {0}")]
    ClientVerifier(String),
    /// Making the development CA failed.
    #[error("development CA: {0}")]
    DevCa(String),
}

/// Where the server certificate comes from, and client authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// Server certificate source.
    pub certificate: CertSource,
    /// Mutual TLS mode.
    pub client_auth: ClientAuth,
}

/// Server certificate source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertSource {
    /// A development CA and server certificate made on first start in the data directory.
    Development,
    /// PEM files, reloaded on SIGHUP.
    Files {
        /// Certificate chain, leaf first.
        cert: PathBuf,
        /// Private key (a secret file: mode-checked).
        key: PathBuf,
    },
}

/// Mutual TLS mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientAuth {
    /// No client certificates are requested.
    Off,
    /// Requested and verified against the CA bundle when offered; not required.
    Optional {
        /// PEM bundle of accepted client CAs.
        ca: PathBuf,
    },
    /// Every connection must present a certificate from the CA bundle.
    Required {
        /// PEM bundle of accepted client CAs.
        ca: PathBuf,
    },
}

/// What a connection negotiated, for the audit trail and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsInfo {
    /// `TLSv1_3` or `TLSv1_2`.
    pub version: String,
    /// The IANA cipher suite name.
    pub cipher: String,
    /// The ALPN protocol, if any.
    pub alpn: Option<String>,
}

impl TlsInfo {
    /// Reads what a finished handshake negotiated.
    pub fn of(conn: &rustls::ServerConnection) -> Self {
        Self {
            version: conn
                .protocol_version()
                .map(|v| format!("{v:?}"))
                .unwrap_or_default(),
            cipher: conn
                .negotiated_cipher_suite()
                .map(|c| format!("{:?}", c.suite()))
                .unwrap_or_default(),
            alpn: conn
                .alpn_protocol()
                .map(|a| String::from_utf8_lossy(a).into_owned()),
        }
    }
}

/// The crypto provider: aws-lc-rs with only AEAD, forward-secret suites (which is all of
/// rustls' suites; the filter makes that a checked property rather than an assumption).
pub fn provider() -> rustls::crypto::CryptoProvider {
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    provider.cipher_suites.retain(|s| {
        let name = format!("{:?}", s.suite());
        (name.contains("_GCM_") || name.contains("CHACHA20_POLY1305"))
            && (name.starts_with("TLS13_") || name.starts_with("TLS_ECDHE_"))
    });
    provider
}

/// Builds the server configuration from settings. `data_dir` holds the development CA.
pub fn server_config(
    settings: &TlsSettings,
    data_dir: &Path,
    allow_open_secrets: bool,
) -> Result<ServerConfig, TlsError> {
    let (certs, key) = match &settings.certificate {
        CertSource::Development => {
            let paths = devca::ensure(data_dir)?;
            (
                load_certs(&paths.server_cert)?,
                load_key(&paths.server_key, false)?,
            )
        }
        CertSource::Files { cert, key } => (load_certs(cert)?, load_key(key, allow_open_secrets)?),
    };
    let provider = Arc::new(provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
    let builder = match &settings.client_auth {
        ClientAuth::Off => builder.with_no_client_auth(),
        ClientAuth::Optional { ca } | ClientAuth::Required { ca } => {
            let mut roots = rustls::RootCertStore::empty();
            for c in load_certs(ca)? {
                roots
                    .add(c)
                    .map_err(|e| TlsError::ClientVerifier(e.to_string()))?;
            }
            let mut v = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            if matches!(settings.client_auth, ClientAuth::Optional { .. }) {
                v = v.allow_unauthenticated();
            }
            builder.with_client_cert_verifier(
                v.build()
                    .map_err(|e| TlsError::ClientVerifier(e.to_string()))?,
            )
        }
    };
    let mut config = builder.with_single_cert(certs, key)?;
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    config.ignore_client_order = true;
    Ok(config)
}

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem_err = |message: String| TlsError::Pem {
        what: "certificate file",
        path: path.display().to_string(),
        message,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_err(e.to_string()))?;
    if certs.is_empty() {
        return Err(pem_err("holds no certificate".into()));
    }
    Ok(certs)
}

fn load_key(path: &Path, allow_open: bool) -> Result<PrivateKeyDer<'static>, TlsError> {
    // Checked and read through one descriptor: no swap between the check and the read.
    let pem =
        crate::secret::read_private_file(path, crate::secret::FilePolicy::secret(allow_open))?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| TlsError::Pem {
        what: "private key file",
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

/// Holds the current server configuration and swaps it on reload.
#[derive(Debug)]
pub struct TlsReloader {
    settings: TlsSettings,
    data_dir: std::path::PathBuf,
    allow_open_secrets: bool,
    current: RwLock<Arc<ServerConfig>>,
}

impl TlsReloader {
    /// Builds the first configuration; fails if it cannot.
    pub fn new(
        settings: TlsSettings,
        data_dir: &Path,
        allow_open_secrets: bool,
    ) -> Result<Self, TlsError> {
        let config = server_config(&settings, data_dir, allow_open_secrets)?;
        Ok(Self {
            settings,
            data_dir: data_dir.to_owned(),
            allow_open_secrets,
            current: RwLock::new(Arc::new(config)),
        })
    }

    /// The configuration new connections use.
    pub fn current(&self) -> Arc<ServerConfig> {
        // A poisoned lock only means a panic elsewhere while swapping an Arc; the Arc
        // inside is still a complete configuration.
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Re-reads certificates, key and client CAs; keeps the old configuration on error.
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = Arc::new(server_config(
            &self.settings,
            &self.data_dir,
            self.allow_open_secrets,
        )?);
        match self.current.write() {
            Ok(mut g) => *g = config,
            Err(p) => *p.into_inner() = config,
        }
        Ok(())
    }
}
