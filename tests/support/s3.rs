//! The test S3 server: moto (pinned in `tests/servers/moto-requirements.txt`, installed by
//! `pip`), run by `tests/servers/moto_s3.py` on a free 127.0.0.1 port, ONE per test binary,
//! with one bucket; each test gets its own key prefix in it. The server's lifetime is the
//! test process's: it exits when its standard input (a pipe from this process) closes.
//!
//! The server also listens over TLS (`tls_endpoint`), with a certificate for `localhost`
//! and 127.0.0.1 from a CA made here with rcgen (`ca_file`), for the tests of the store's
//! TLS: the same buckets and objects on both ports.
//!
//! Under `CI` a server that cannot be installed or started is a failure; elsewhere the test
//! prints a notice and skips (`ci`).
//!
//! moto's gaps, as far as these tests go (docs/decisions/0009-s3-blob-store.md): it does
//! not check request signatures (any keys are accepted, so a wrong-key test proves
//! nothing here), keeps objects in memory only, and is trivially strongly consistent.
//! Conditional PUT (`If-None-Match: *` → 412), ranged GET, ListObjectsV2 with prefix,
//! start-after and continuation tokens, and multipart upload (not readable before it
//! completes) behave as S3 documents them.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, OnceLock};

use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use sallyport::blob::s3::S3BlobStore;
use sallyport::blob::s3::settings::{S3Credentials, S3Keys, S3Settings};
use sallyport::config::ByteSize;
use sallyport::ids::OpaqueId;
use sallyport::secret::Secret;

/// The pinned requirements.
pub const REQUIREMENTS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/servers/moto-requirements.txt"
);
/// The launcher.
pub const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/servers/moto_s3.py");
/// The bucket every test of a binary shares (under its own prefix).
pub const BUCKET: &str = "sallyport-test";
/// The keys the tests present (moto accepts any).
pub const ACCESS_KEY_ID: &str = "test-access-key-id";
pub const SECRET_ACCESS_KEY: &str = "test-secret-access-key-do-not-log";

/// The running server.
struct Server {
    port: u16,
    tls_port: u16,
    /// Holds `ca.pem` (the CA of the TLS listener's certificate) and that certificate.
    certs: tempfile::TempDir,
    // Held open for the process's life: the server exits when it closes.
    _stdin: std::sync::Mutex<ChildStdin>,
    _child: std::sync::Mutex<Child>,
}

/// One test's place on the server.
#[derive(Debug, Clone)]
pub struct S3Test {
    pub endpoint: String,
    /// `https://localhost:<port>`: the same server over TLS.
    pub tls_endpoint: String,
    /// The PEM CA that the TLS listener's certificate chains to.
    pub ca_file: PathBuf,
    /// `t-<random id>/`.
    pub prefix: String,
}

impl S3Test {
    /// The server (started on first use) and a fresh prefix; `None` (after a notice) when
    /// there is no server and `CI` is not set.
    pub fn require() -> Option<S3Test> {
        static SERVER: OnceLock<Result<Server, String>> = OnceLock::new();
        let server = SERVER.get_or_init(start);
        let server = super::ci::require_or_skip("the moto S3 server", server.as_ref())?;
        Some(S3Test {
            endpoint: format!("http://127.0.0.1:{}", server.port),
            tls_endpoint: format!("https://localhost:{}", server.tls_port),
            ca_file: server.certs.path().join("ca.pem"),
            prefix: format!("t-{}/", OpaqueId::random()),
        })
    }

    /// Store settings for this test's prefix with `piece_size`-byte pieces (below the
    /// configurable minimum, so tests cross piece boundaries with little data).
    pub fn settings(&self, piece_size: u64) -> S3Settings {
        S3Settings {
            endpoint: Some(self.endpoint.clone()),
            allow_http: true,
            region: "us-east-1".into(),
            bucket: BUCKET.into(),
            prefix: self.prefix.clone(),
            path_style: true,
            credentials: S3Credentials::Keys(S3Keys {
                access_key_id: Secret::from_string(ACCESS_KEY_ID.into()),
                secret_access_key: Secret::from_string(SECRET_ACCESS_KEY.into()),
                session_token: None,
            }),
            ca_file: None,
            piece_size: ByteSize(piece_size),
            allow_unconditional_create: false,
        }
    }

    /// A blob store over this prefix, opened as the gateway opens one.
    pub fn store(&self, piece_size: u64) -> S3BlobStore {
        S3BlobStore::open(&self.settings(piece_size)).unwrap()
    }

    /// A plain client of the bucket, for planting and inspecting objects.
    pub fn raw(&self) -> Arc<dyn ObjectStore> {
        Arc::new(
            AmazonS3Builder::new()
                .with_endpoint(&self.endpoint)
                .with_allow_http(true)
                .with_bucket_name(BUCKET)
                .with_region("us-east-1")
                .with_access_key_id(ACCESS_KEY_ID)
                .with_secret_access_key(SECRET_ACCESS_KEY)
                .build()
                .unwrap(),
        )
    }

    /// The `[blob]` section of a gateway using this prefix, its keys in a 0600 file in
    /// `dir`.
    pub fn blob_toml(&self, dir: &Path) -> String {
        self.blob_toml_at(dir, &self.endpoint, "")
    }

    /// As [`S3Test::blob_toml`], over TLS with `ca_file` the test CA.
    pub fn blob_toml_tls(&self, dir: &Path) -> String {
        let ca = format!("ca_file = {:?}\n", self.ca_file.display().to_string());
        self.blob_toml_at(dir, &self.tls_endpoint, &ca)
    }

    fn blob_toml_at(&self, dir: &Path, endpoint: &str, extra: &str) -> String {
        use std::os::unix::fs::PermissionsExt;
        let file = dir.join("s3.credentials");
        std::fs::write(
            &file,
            format!("access_key_id = {ACCESS_KEY_ID}\nsecret_access_key = {SECRET_ACCESS_KEY}\n"),
        )
        .unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        format!(
            "[blob]\nbackend = \"s3\"\nendpoint = \"{endpoint}\"\nbucket = \"{BUCKET}\"\nprefix = \"{}\"\ncredentials_file = \"{}\"\n{extra}",
            self.prefix,
            file.display()
        )
    }
}

/// A CA (`dir/ca.pem`) and a server certificate for `localhost` and 127.0.0.1 signed by
/// it (`dir/server.pem`, `dir/server.key`).
fn tls_material(dir: &Path) -> Result<(), String> {
    let fail = |e: rcgen::Error| format!("making the S3 test certificates: {e}");
    let ca_key = rcgen::KeyPair::generate().map_err(fail)?;
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(fail)?;
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "S3 test CA");
    let ca_cert = ca.self_signed(&ca_key).map_err(fail)?;
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = rcgen::KeyPair::generate().map_err(fail)?;
    let server = rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
        .map_err(fail)?
        .signed_by(&key, &issuer)
        .map_err(fail)?;
    for (name, pem) in [
        ("ca.pem", ca_cert.pem()),
        ("server.pem", server.pem()),
        ("server.key", key.serialize_pem()),
    ] {
        std::fs::write(dir.join(name), pem).map_err(|e| format!("writing {name}: {e}"))?;
    }
    Ok(())
}

/// Installs moto and starts the server, waiting for its port line.
fn start() -> Result<Server, String> {
    let pythonpath = super::pip::install("moto", Path::new(REQUIREMENTS))?;
    let certs = tempfile::tempdir().map_err(|e| format!("a directory for certificates: {e}"))?;
    tls_material(certs.path())?;
    let mut child = Command::new(super::pip::PYTHON)
        .arg(SCRIPT)
        .arg("--bucket")
        .arg(BUCKET)
        .arg("--tls-cert")
        .arg(certs.path().join("server.pem"))
        .arg("--tls-key")
        .arg(certs.path().join("server.key"))
        .env("PYTHONPATH", &pythonpath)
        .env("PYTHONNOUSERSITE", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("starting moto: {e}"))?;
    let stdin = child.stdin.take().ok_or("no stdin pipe")?;
    let stdout = child.stdout.take().ok_or("no stdout pipe")?;
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|e| format!("reading moto's port: {e}"))?;
    let ports = serde_json::from_str::<serde_json::Value>(&line).unwrap_or_default();
    let port_of = |name: &str| ports[name].as_u64().and_then(|p| u16::try_from(p).ok());
    let (Some(port), Some(tls_port)) = (port_of("port"), port_of("tls_port")) else {
        let _ = child.kill();
        return Err(format!("moto did not start (it printed {line:?})"));
    };
    Ok(Server {
        port,
        tls_port,
        certs,
        _stdin: std::sync::Mutex::new(stdin),
        _child: std::sync::Mutex::new(child),
    })
}
