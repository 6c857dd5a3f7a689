#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `sallyport client upload`'s pipeline against a scripted tus server: while chunk k is
//! on the wire the client reads chunk k+1 ahead, and it must send that read-ahead only if
//! the server took chunk k whole at the expected offset. Here the server, at a chosen
//! PATCH, keeps only part of the chunk, or has been moved on by "another client" (409 on
//! the PATCH, or an `Upload-Offset` past the chunk in a 204). Each time the read-ahead is
//! wrong, and the client must drop it, go on from the server's offset, and still end with
//! the file's SHA-256 (which the server's ledger confirms from the bytes it holds).
//!
//! A real gateway cannot be made to answer like this on cue; this server speaks just
//! enough tus 1.0.0 over real TLS (POST, HEAD, PATCH with `Upload-Checksum: sha256`, the
//! ledger's digest) and refuses, like the gateway, any PATCH at another offset (409) or
//! with a wrong checksum (460) — so a stale read-ahead sent would show in its log.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use support::data::{data, sha256_hex};
use support::sallyport;

const CHUNK: usize = 64 << 10;
const UPLOAD: &str = "/files/up1";

/// What the server does at one PATCH (counted from 0).
#[derive(Debug, Clone, Copy)]
enum Twist {
    /// Keeps only the first `keep` bytes of PATCH `at`'s body; 204 at that offset.
    Partial { at: usize, keep: usize },
    /// Just before PATCH `at`, another client appends `extra` bytes: the PATCH gets 409.
    AdvancedBefore { at: usize, extra: usize },
    /// Just after PATCH `at` is stored, another client appends `extra` bytes; the 204
    /// carries the offset past them.
    AdvancedAfter { at: usize, extra: usize },
}

/// One PATCH as the server saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Patch {
    offset: u64,
    len: usize,
    status: u16,
}

struct Fake {
    /// The file's bytes: what "another client" writes.
    truth: Vec<u8>,
    stored: Vec<u8>,
    twist: Twist,
    patches: Vec<Patch>,
}

/// Starts the scripted server; its address and the CA (PEM) that signed its certificate.
async fn serve(fake: Arc<Mutex<Fake>>, dir: &Path) -> (SocketAddr, std::path::PathBuf) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let ca_path = dir.join("ca.pem");
    std::fs::write(&ca_path, ca_cert.pem()).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, fake) = (acceptor.clone(), fake.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(move |req| {
                    let fake = fake.clone();
                    async move { Ok::<_, std::convert::Infallible>(answer(&fake, req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (addr, ca_path)
}

async fn answer(
    fake: &Mutex<Fake>,
    req: hyper::Request<hyper::body::Incoming>,
) -> hyper::Response<Full<Bytes>> {
    let reply = |status: u16| {
        hyper::Response::builder()
            .status(status)
            .header("tus-resumable", "1.0.0")
    };
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (offset, checksum, length) = (
        header("upload-offset"),
        header("upload-checksum"),
        header("upload-length"),
    );
    // The test's own scripted server reads the test client's chunks (64 KiB each).
    #[allow(clippy::disallowed_methods)]
    let body = req.into_body().collect().await.unwrap().to_bytes();
    let mut f = fake.lock().unwrap();
    let empty = Full::new(Bytes::new());
    match (method.as_str(), path.as_str()) {
        ("POST", "/files/") => {
            assert_eq!(length, Some(f.truth.len().to_string()));
            reply(201).header("location", UPLOAD).body(empty).unwrap()
        }
        ("HEAD", UPLOAD) => reply(200)
            .header("upload-offset", f.stored.len())
            .header("upload-length", f.truth.len())
            .header("cache-control", "no-store")
            .body(empty)
            .unwrap(),
        ("PATCH", UPLOAD) => {
            let index = f.patches.len();
            let offset: u64 = offset.unwrap().parse().unwrap();
            if let Twist::AdvancedBefore { at, extra } = f.twist
                && at == index
            {
                f.advance(extra);
            }
            let expected = format!(
                "sha256 {}",
                base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&body))
            );
            let status = if offset != f.stored.len() as u64 {
                409
            } else if checksum.as_deref() != Some(expected.as_str()) {
                460
            } else {
                204
            };
            f.patches.push(Patch {
                offset,
                len: body.len(),
                status,
            });
            if status != 204 {
                return reply(status)
                    .header("upload-offset", f.stored.len())
                    .body(empty)
                    .unwrap();
            }
            let keep = match f.twist {
                Twist::Partial { at, keep } if at == index => keep.min(body.len()),
                _ => body.len(),
            };
            f.stored.extend_from_slice(&body[..keep]);
            if let Twist::AdvancedAfter { at, extra } = f.twist
                && at == index
            {
                f.advance(extra);
            }
            reply(204)
                .header("upload-offset", f.stored.len())
                .body(empty)
                .unwrap()
        }
        ("GET", "/files/up1/ledger") => {
            let doc = serde_json::json!({
                "complete": f.stored.len() == f.truth.len(),
                "length": f.stored.len(),
                "sha256": sha256_hex(&f.stored),
            });
            reply(200)
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(doc.to_string())))
                .unwrap()
        }
        _ => reply(404).body(empty).unwrap(),
    }
}

impl Fake {
    /// Another client sends the next `extra` bytes of the file.
    fn advance(&mut self, extra: usize) {
        let at = self.stored.len();
        let end = (at + extra).min(self.truth.len());
        let more = self.truth[at..end].to_vec();
        self.stored.extend_from_slice(&more);
    }
}

/// Uploads a 1 MiB + 12,345 byte file in 64 KiB chunks through a server with `twist`;
/// checks the outcome and returns the server's PATCH log.
async fn upload_with(twist: Twist) -> Vec<Patch> {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let truth = data((1 << 20) + 12_345, 77);
    let file = dir.path().join("referral.pdf");
    std::fs::write(&file, &truth).unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "pipeline-test-token").unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let fake = Arc::new(Mutex::new(Fake {
        truth: truth.clone(),
        stored: Vec::new(),
        twist,
        patches: Vec::new(),
    }));
    let (addr, ca) = serve(fake.clone(), dir.path()).await;
    let args: Vec<String> = vec![
        "client".into(),
        "upload".into(),
        "--json".into(),
        "--to".into(),
        format!("https://localhost:{}/files/", addr.port()),
        "--cacert".into(),
        ca.display().to_string(),
        "--token-file".into(),
        token.display().to_string(),
        "--state-dir".into(),
        dir.path().join("state").display().to_string(),
        "--chunk-size".into(),
        "64KiB".into(),
        "--retries".into(),
        "2".into(),
        file.display().to_string(),
    ];
    let out = tokio::task::spawn_blocking(move || {
        sallyport()
            .args(&args)
            .env_remove("SALLYPORT_TOKEN")
            .env_remove("SALLYPORT_TOKEN_FILE")
            .env_remove("SALLYPORT_CA_FILE")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{twist:?}\nstdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let first: Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
    assert_eq!(first["status"], "verified", "{first}");
    assert_eq!(first["sha256"], sha256_hex(&truth));
    assert_eq!(first["server_sha256"], sha256_hex(&truth));
    let f = fake.lock().unwrap();
    assert!(f.stored == truth, "{twist:?}: the server holds the file");
    f.patches.clone()
}

/// Every PATCH but `refused` was accepted, and PATCH `at + 1` went to `next` (the
/// server's offset), not to where the discarded read-ahead began.
fn assert_went_on_from(patches: &[Patch], at: usize, next: u64, refused: &[usize]) {
    for (i, p) in patches.iter().enumerate() {
        let want = if refused.contains(&i) { 409 } else { 204 };
        assert_eq!(p.status, want, "PATCH {i}: {p:?} in {patches:?}");
        if i > 0 && !refused.contains(&(i - 1)) && i != at + 1 {
            // Ordinary steps: right after the previous PATCH's bytes.
            let prev = patches[i - 1];
            assert_eq!(p.offset, prev.offset + prev.len as u64, "PATCH {i}");
        }
        assert!(p.len <= CHUNK, "PATCH {i}: {p:?}");
    }
    assert_eq!(patches[at + 1].offset, next, "{patches:?}");
    let read_ahead = (at as u64 + 1) * CHUNK as u64;
    assert_ne!(
        next, read_ahead,
        "the scenario must make the read-ahead wrong"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partially_accepted_chunk_discards_the_read_ahead() {
    let patches = upload_with(Twist::Partial { at: 3, keep: 1000 }).await;
    assert_eq!(patches[3].offset, 3 * CHUNK as u64);
    assert_went_on_from(&patches, 3, 3 * CHUNK as u64 + 1000, &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_409_after_another_client_moved_on_discards_the_read_ahead() {
    // The server is one chunk and 1000 bytes further on when PATCH 3 arrives.
    let extra = CHUNK + 1000;
    let patches = upload_with(Twist::AdvancedBefore { at: 3, extra }).await;
    assert_eq!(patches[3].offset, 3 * CHUNK as u64);
    assert_went_on_from(&patches, 3, (3 * CHUNK + extra) as u64, &[3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offset_past_the_read_ahead_discards_it_and_hashes_the_gap() {
    // After PATCH 3, the server is two chunks and 1000 bytes further on: past the end of
    // the chunk read ahead, so the client's whole-file digest must read the gap itself.
    let extra = 2 * CHUNK + 1000;
    let patches = upload_with(Twist::AdvancedAfter { at: 3, extra }).await;
    assert_went_on_from(&patches, 3, (4 * CHUNK + extra) as u64, &[]);
}
