#![allow(clippy::unwrap_used, clippy::expect_used)]
//! TLS termination, black-box: the real binary, real handshakes (rustls and OpenSSL
//! clients), HTTP/2 and HTTP/1.1, mutual TLS, certificate reload on SIGHUP.

mod support;

use std::time::Duration;

use support::{Gateway, openssl_handshake};

#[tokio::test]
async fn healthz_over_tls13_h2_and_tls12_http11() {
    let gw = Gateway::start("");
    assert!(gw.ca_path().exists(), "dev CA created on first start");

    let h2 = gw.client_with(&[&rustls::version::TLS13], &[b"h2"]);
    let resp = h2.get(gw.url("/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    assert!(
        resp.headers()["strict-transport-security"]
            .to_str()
            .unwrap()
            .starts_with("max-age=")
    );
    assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let rid = resp.headers()["x-request-id"].to_str().unwrap();
    assert_eq!(rid.len(), 32, "{rid}");
    assert!(
        rid.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
        "{rid}"
    );

    let h1 = gw.client_with(&[&rustls::version::TLS12], &[b"http/1.1"]);
    let resp = h1.get(gw.url("/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), reqwest::Version::HTTP_11);
}

#[test]
fn curl_with_the_dev_ca_gets_tls13_and_h2() {
    let gw = Gateway::start("");
    let out = std::process::Command::new("curl")
        .args([
            "-sS",
            "--http2",
            "-w",
            "%{http_version} %{http_code}",
            "-o",
            "/dev/null",
        ])
        .arg("--cacert")
        .arg(gw.ca_path())
        .arg("--resolve")
        .arg(format!("localhost:{}:127.0.0.1", gw.addr.port()))
        .arg("--tlsv1.3")
        .arg(gw.url("/healthz"))
        .output()
        .expect("curl is installed");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "2 200", "{out:?}");
}

/// A HEAD answered with an error carries no content on HTTP/2 or HTTP/1.1: curl (nghttp2)
/// fails with a protocol error when DATA frames follow the HEADERS of a HEAD answer.
#[test]
fn head_answers_carry_no_content_on_every_status_and_protocol() {
    let gw = Gateway::start("");
    let auth = format!("authorization: Bearer {}", support::UPLOADER_TOKEN);
    let tus = "tus-resumable: 1.0.0";
    let cases: [(&str, &[&str], &str); 6] = [
        ("/no/such/path", &[], "404"),
        ("/files/0000000000000000000000000a", &[tus], "401"),
        ("/files/0000000000000000000000000a", &[tus, &auth], "404"),
        ("/v1/batches", &[&auth], "405"),
        ("/d/0123456789abcdefghijklmn?exp=1&sig=AAAA", &[], "403"),
        ("/healthz", &[], "200"),
    ];
    for proto in ["--http2", "--http1.1"] {
        for (path, headers, status) in cases {
            let mut cmd = std::process::Command::new("curl");
            cmd.args([
                "-sS",
                "-I",
                proto,
                "-w",
                "%{http_code} %{size_download}",
                "-o",
                "/dev/null",
            ])
            .arg("--max-time")
            .arg("10")
            .arg("--cacert")
            .arg(gw.ca_path())
            .arg("--resolve")
            .arg(format!("localhost:{}:127.0.0.1", gw.addr.port()));
            for h in headers {
                cmd.arg("-H").arg(h);
            }
            let out = cmd.arg(gw.url(path)).output().expect("curl is installed");
            assert!(
                out.status.success(),
                "HEAD {path} {proto}: curl failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(
                String::from_utf8_lossy(&out.stdout),
                format!("{status} 0"),
                "HEAD {path} {proto}"
            );
        }
    }
}

#[test]
fn old_protocols_and_cbc_suites_are_refused() {
    let gw = Gateway::start("");
    let ca = gw.ca_path().display().to_string();
    // Control: the same OpenSSL client completes a TLS 1.2 handshake with an AEAD suite,
    // so the refusals below are the server's doing.
    let (ok, out) = openssl_handshake(
        gw.addr,
        &[
            "-tls1_2",
            "-cipher",
            "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256",
            "-CAfile",
            &ca,
        ],
    );
    assert!(ok, "control handshake failed:\n{out}");
    assert!(out.contains("Verify return code: 0 (ok)"), "{out}");

    let (ok, out) = openssl_handshake(gw.addr, &["-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"]);
    assert!(!ok, "TLS 1.1 accepted:\n{out}");
    // "SSL alert number" means the *server* sent the alert: the client did offer TLS 1.1
    // (a client that refused locally would say "no protocols available").
    assert!(out.contains("SSL alert number"), "{out}");
    assert!(!out.contains("no protocols available"), "{out}");

    let (ok, out) = openssl_handshake(
        gw.addr,
        &[
            "-tls1_2",
            "-cipher",
            "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:ECDHE-RSA-AES128-SHA:AES128-SHA:AES256-SHA:AES128-SHA256",
        ],
    );
    assert!(!ok, "CBC-only TLS 1.2 accepted:\n{out}");
    assert!(out.contains("alert handshake failure"), "{out}");
    assert!(!out.contains("no ciphers available"), "{out}");

    // The server is still healthy.
    let (ok, out) = openssl_handshake(gw.addr, &["-tls1_3", "-CAfile", &ca]);
    assert!(ok, "{out}");
}

fn make_client_ca(
    dir: &std::path::Path,
) -> (rcgen::Issuer<'static, rcgen::KeyPair>, std::path::PathBuf) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Partner CA");
    let cert = params.self_signed(&key).unwrap();
    let path = dir.join("client-ca.pem");
    std::fs::write(&path, cert.pem()).unwrap();
    (rcgen::Issuer::new(params, key), path)
}

fn client_cert(
    issuer: &rcgen::Issuer<'static, rcgen::KeyPair>,
    cn: &str,
) -> (
    Vec<rustls_pki_types::CertificateDer<'static>>,
    rustls_pki_types::PrivateKeyDer<'static>,
    [u8; 32],
) {
    use sha2::Digest;
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, issuer).unwrap();
    let der = cert.der().clone();
    let fp: [u8; 32] = sha2::Sha256::digest(der.as_ref()).into();
    let key = rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    (vec![der], key, fp)
}

#[tokio::test]
async fn mutual_tls_required_and_optional() {
    let tmp = tempfile::tempdir().unwrap();
    let (issuer, ca_path) = make_client_ca(tmp.path());
    let (chain, key, fp) = client_cert(&issuer, "partner-1");
    let extra = format!(
        "[tls]\nclient_auth = \"required\"\nclient_ca_file = {:?}\n",
        ca_path.display().to_string()
    );
    let gw = Gateway::start(&extra);

    let cert = support::ClientCert {
        chain: chain.clone(),
        key: key.clone_key(),
    };
    let client = gw.client_with_cert(cert, &[b"h2"]);
    let resp = client
        .get(gw.url("/v1/whoami"))
        .bearer_auth(support::UPLOADER_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let j: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(j["name"], "clinic");
    assert_eq!(j["tls_client"]["fingerprint_sha256"], hex::encode(fp));
    assert!(
        j["tls_client"]["subject"]
            .as_str()
            .unwrap()
            .contains("partner-1"),
        "{j}"
    );
    assert_eq!(j["tls"]["version"], "TLSv1_3");

    // Without a client certificate the handshake (or the first request) fails.
    let anon = gw.client();
    assert!(anon.get(gw.url("/healthz")).send().await.is_err());
    // A certificate from another CA is refused too.
    let other_dir = tmp.path().join("other");
    std::fs::create_dir(&other_dir).unwrap();
    let (other_issuer, _) = make_client_ca(&other_dir);
    let (chain2, key2, _) = client_cert(&other_issuer, "intruder");
    let cert = support::ClientCert {
        chain: chain2,
        key: key2,
    };
    let intruder = gw.client_with_cert(cert, &[b"h2"]);
    assert!(intruder.get(gw.url("/healthz")).send().await.is_err());
    drop(gw);

    let extra = format!(
        "[tls]\nclient_auth = \"optional\"\nclient_ca_file = {:?}\n",
        ca_path.display().to_string()
    );
    let gw = Gateway::start(&extra);
    let resp = gw
        .client()
        .get(gw.url("/v1/whoami"))
        .bearer_auth(support::UPLOADER_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let j: serde_json::Value = resp.json().await.unwrap();
    assert!(j["tls_client"].is_null(), "{j}");
}

fn write_server_cert(dir: &std::path::Path, cn: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let ca = dir.join("data/dev-ca");
    let ca_key =
        rcgen::KeyPair::from_pem(&std::fs::read_to_string(ca.join("ca-key.pem")).unwrap()).unwrap();
    let issuer = rcgen::Issuer::from_ca_cert_pem(
        &std::fs::read_to_string(ca.join("ca.pem")).unwrap(),
        ca_key,
    )
    .unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    let cert = params.signed_by(&key, &issuer).unwrap();
    let (c, k) = (dir.join("server.pem"), dir.join("server-key.pem"));
    std::fs::write(&c, cert.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    std::fs::set_permissions(&k, std::fs::Permissions::from_mode(0o600)).unwrap();
    (c, k)
}

async fn served_cn(gw: &Gateway) -> String {
    let tls = gw.h1_stream().await;
    let der = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
    cert.subject().to_string()
}

#[tokio::test]
async fn sighup_reloads_certificates_without_dropping_connections() {
    let tmp = tempfile::tempdir().unwrap();
    // First start on the dev CA, to get a CA that signs the configured certificates.
    let mut gw = Gateway::start_in(tmp.path(), "");
    gw.stop();
    let (c, k) = write_server_cert(tmp.path(), "first");
    let extra = format!(
        "[tls]\ncert_file = {:?}\nkey_file = {:?}\n",
        c.display().to_string(),
        k.display().to_string()
    );
    let mut gw = Gateway::start_in(tmp.path(), &extra);
    assert!(served_cn(&gw).await.contains("CN=first"));

    // An open HTTP/2 connection before the reload...
    let client = gw.client_with(&[&rustls::version::TLS13], &[b"h2"]);
    assert_eq!(
        client
            .get(gw.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    write_server_cert(tmp.path(), "second");
    gw.signal("HUP");
    let mut cn = String::new();
    for _ in 0..50 {
        cn = served_cn(&gw).await;
        if cn.contains("CN=second") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        cn.contains("CN=second"),
        "new connections get the new certificate: {cn}"
    );
    // ...still works after it.
    assert_eq!(
        client
            .get(gw.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // A broken file keeps the old configuration.
    std::fs::write(&c, "not a certificate").unwrap();
    gw.signal("HUP");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(served_cn(&gw).await.contains("CN=second"));

    // Both reloads are on the audit trail (checked against its schema as it is exported):
    // the good one as a success, the broken one as a failure naming the error.
    let audit = support::links::stop_and_export_audit(&mut gw);
    let reloads = support::links::actions(&audit, "tls.reloaded");
    let outcomes: Vec<&str> = reloads
        .iter()
        .map(|e| e["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["success", "failure"], "{reloads:?}");
    assert_eq!(reloads[0]["details"]["error"], serde_json::Value::Null);
    assert!(reloads[1]["details"]["error"].is_string(), "{reloads:?}");
}
