//! The development CA: on a first start with no certificate configured, the gateway makes
//! a CA and a server certificate for `localhost`, `127.0.0.1` and `::1` in
//! `<data_dir>/dev-ca/`, so it serves HTTPS at once and `curl --cacert
//! <data_dir>/dev-ca/ca.pem https://127.0.0.1:8443/healthz` works. Keys are written with
//! mode 0600. Later starts reuse the files; a missing or soon-expiring server certificate
//! is re-issued from the existing CA, so clients that trust the CA keep working.
//!
//! Never for production: the CA key sits next to the server key on the same disk.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

use super::TlsError;
use crate::secret::write_private_file;

/// Where the development CA's files are.
#[derive(Debug, Clone)]
pub struct DevCaPaths {
    /// The CA certificate clients should trust.
    pub ca_cert: PathBuf,
    /// The CA's private key.
    pub ca_key: PathBuf,
    /// The server certificate chain.
    pub server_cert: PathBuf,
    /// The server's private key.
    pub server_key: PathBuf,
}

impl DevCaPaths {
    /// The paths under `data_dir`.
    pub fn under(data_dir: &Path) -> Self {
        let dir = data_dir.join("dev-ca");
        Self {
            ca_cert: dir.join("ca.pem"),
            ca_key: dir.join("ca-key.pem"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server-key.pem"),
        }
    }
}

fn err(e: impl std::fmt::Display) -> TlsError {
    TlsError::DevCa(e.to_string())
}

/// Makes the CA and server certificate if missing; returns their paths.
pub fn ensure(data_dir: &Path) -> Result<DevCaPaths, TlsError> {
    let paths = DevCaPaths::under(data_dir);
    let dir = paths.ca_cert.parent().unwrap_or(data_dir);
    create_private_dir(dir).map_err(err)?;
    if !paths.ca_cert.exists() || !paths.ca_key.exists() {
        // A half-made CA is useless; start over.
        for p in [
            &paths.ca_cert,
            &paths.ca_key,
            &paths.server_cert,
            &paths.server_key,
        ] {
            let _ = std::fs::remove_file(p);
        }
        make_ca(&paths)?;
        tracing::warn!(
            ca = %paths.ca_cert.display(),
            "created a development CA; trust it with `curl --cacert {}` (never use it in production)",
            paths.ca_cert.display()
        );
    }
    if !server_cert_usable(&paths.server_cert) || !paths.server_key.exists() {
        let _ = std::fs::remove_file(&paths.server_cert);
        let _ = std::fs::remove_file(&paths.server_key);
        make_server_cert(&paths)?;
    }
    Ok(paths)
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

fn make_ca(paths: &DevCaPaths) -> Result<(), TlsError> {
    let key = KeyPair::generate().map_err(err)?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "Sallyport development CA");
    dn.push(DnType::OrganizationName, "Sallyport (development only)");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(3650);
    let cert = params.self_signed(&key).map_err(err)?;
    write_private_file(&paths.ca_key, key.serialize_pem().as_bytes()).map_err(err)?;
    std::fs::write(&paths.ca_cert, cert.pem()).map_err(err)?;
    Ok(())
}

fn make_server_cert(paths: &DevCaPaths) -> Result<(), TlsError> {
    let ca_key_pem = std::fs::read_to_string(&paths.ca_key).map_err(err)?;
    let ca_key = KeyPair::from_pem(&ca_key_pem).map_err(err)?;
    let ca_pem = std::fs::read_to_string(&paths.ca_cert).map_err(err)?;
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, &ca_key).map_err(err)?;
    let key = KeyPair::generate().map_err(err)?;
    let mut params = CertificateParams::new(vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ])
    .map_err(err)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "localhost");
    params.distinguished_name = dn;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(397);
    let cert = params.signed_by(&key, &issuer).map_err(err)?;
    write_private_file(&paths.server_key, key.serialize_pem().as_bytes()).map_err(err)?;
    std::fs::write(&paths.server_cert, format!("{}{}", cert.pem(), ca_pem)).map_err(err)?;
    Ok(())
}

/// A server certificate that exists, parses and is valid for at least 7 more days.
fn server_cert_usable(path: &Path) -> bool {
    let Ok(pem) = std::fs::read(path) else {
        return false;
    };
    let Ok((_, pem)) = x509_parser::pem::parse_x509_pem(&pem) else {
        return false;
    };
    let Ok(cert) = pem.parse_x509() else {
        return false;
    };
    let soon = OffsetDateTime::now_utc() + Duration::days(7);
    cert.validity().not_after.timestamp() > soon.unix_timestamp()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn makes_and_reuses_the_dev_ca() {
        let dir = tempfile::tempdir().unwrap();
        let paths = ensure(dir.path()).unwrap();
        for key in [&paths.ca_key, &paths.server_key] {
            let mode = std::fs::metadata(key).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", key.display());
        }
        let ca = std::fs::read(&paths.ca_cert).unwrap();
        let server = std::fs::read(&paths.server_cert).unwrap();
        ensure(dir.path()).unwrap();
        assert_eq!(std::fs::read(&paths.ca_cert).unwrap(), ca, "CA reused");
        assert_eq!(std::fs::read(&paths.server_cert).unwrap(), server);
        // A lost server certificate is re-issued by the same CA.
        std::fs::remove_file(&paths.server_cert).unwrap();
        ensure(dir.path()).unwrap();
        assert_eq!(std::fs::read(&paths.ca_cert).unwrap(), ca);
        assert_ne!(std::fs::read(&paths.server_cert).unwrap(), server);
    }
}
