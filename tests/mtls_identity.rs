#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The verified mTLS client identity, black-box over real TLS handshakes (rustls clients
//! presenting certificates from a test CA made with rcgen, HTTP/1.1 and HTTP/2): clients
//! identified by their certificate, clients that need token and certificate, identities
//! that no header can smuggle in, links bound to a client's certificate, and publishers
//! limited to partners and owners (`publish_for`, `publish_from_owners`).

mod support;

use serde_json::{Value, json};

use support::links::{
    PUBLISHER_TOKEN, actions, import, issue, issue_raw, link_url, register, stop_and_export_audit,
    upload_as,
};
use support::{ClientCert, Gateway, LAB_TOKEN, UPLOADER_TOKEN, sallyport, token_hash};

type Issuer = rcgen::Issuer<'static, rcgen::KeyPair>;

const SECURE_TOKEN: &str = "test-secure-token-0123456789abcdefghijklmnopq";
const SCOPED_TOKEN: &str = "test-scoped-publisher-token-0123456789abcdef";

/// A client CA, written to `dir/client-ca.pem`.
fn client_ca(dir: &std::path::Path) -> (Issuer, std::path::PathBuf) {
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

/// A client certificate issued by `issuer`, and the SHA-256 of its DER in hex.
struct Cert {
    chain: Vec<rustls_pki_types::CertificateDer<'static>>,
    key: rustls_pki_types::PrivateKeyDer<'static>,
    sha256: String,
}

impl Cert {
    fn new(issuer: &Issuer, cn: &str) -> Cert {
        Self::with_names(issuer, cn, vec![format!("{cn}.partners.example")])
    }

    /// A certificate whose subject alternative names are the DNS names `names`.
    fn with_names(issuer: &Issuer, cn: &str, names: Vec<String>) -> Cert {
        use sha2::Digest;
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(names).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, issuer).unwrap();
        let der = cert.der().clone();
        Cert {
            sha256: hex::encode(sha2::Sha256::digest(der.as_ref())),
            chain: vec![der],
            key: rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        }
    }

    /// A client presenting this certificate over `alpn` (`h2` or `http/1.1`).
    fn client(&self, gw: &Gateway, alpn: &[u8]) -> reqwest::Client {
        let cert = ClientCert {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        };
        gw.client_with_cert(cert, &[alpn])
    }
}

/// `[tls]` with optional mutual TLS against `ca`.
fn optional_mtls(ca: &std::path::Path) -> String {
    format!(
        "[tls]\nclient_auth = \"optional\"\nclient_ca_file = {:?}\n",
        ca.display().to_string()
    )
}

async fn status_and_json(resp: reqwest::RequestBuilder) -> (u16, Value) {
    let resp = resp.send().await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.bytes().await.unwrap();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

const PROTOCOLS: [&[u8]; 2] = [b"h2", b"http/1.1"];

#[tokio::test]
async fn a_certificate_alone_identifies_its_client_but_never_for_a_browser() {
    let tmp = tempfile::tempdir().unwrap();
    let (issuer, ca) = client_ca(tmp.path());
    let partner = Cert::new(&issuer, "partner-x");
    let stranger = Cert::new(&issuer, "stranger");
    let extra = format!(
        "{}\n[[clients]]\nname = \"partner-x\"\ncert_sha256 = \"{}\"\nroles = [\"auditor\"]\n",
        optional_mtls(&ca),
        partner.sha256
    );
    let mut gw = Gateway::start(&extra);

    for alpn in PROTOCOLS {
        let client = partner.client(&gw, alpn);
        let (status, j) = status_and_json(client.get(gw.url("/v1/whoami"))).await;
        assert_eq!(status, 200, "{j}");
        assert_eq!(j["name"], "partner-x");
        assert_eq!(j["auth_method"], "client_certificate");
        assert_eq!(j["tls_client"]["fingerprint_sha256"], partner.sha256);
        assert_eq!(
            j["tls_client"]["sans"],
            json!(["dns:partner-x.partners.example"])
        );
        // The certificate's role works: the audit verification is recorded under its name.
        let (status, j) = status_and_json(client.get(gw.url("/v1/audit/verify"))).await;
        assert_eq!(status, 200, "{j}");

        // A browser presents a certificate on its own: a page must not act with it.
        for (name, value) in [
            ("origin", "https://evil.example"),
            ("sec-fetch-site", "cross-site"),
            ("sec-fetch-site", "same-origin"),
        ] {
            let (status, j) =
                status_and_json(client.get(gw.url("/v1/whoami")).header(name, value)).await;
            assert_eq!(
                (status, j["code"].as_str()),
                (401, Some("auth.missing")),
                "{name}"
            );
        }

        // A certificate no client names is no credential.
        let (status, j) =
            status_and_json(stranger.client(&gw, alpn).get(gw.url("/v1/whoami"))).await;
        assert_eq!((status, j["code"].as_str()), (401, Some("auth.missing")));
    }

    let audit = stop_and_export_audit(&mut gw);
    let verified = actions(&audit, "audit.verified");
    assert_eq!(verified.len(), 2, "one per protocol");
    for e in verified {
        assert_eq!(
            e["actor"],
            json!({"kind": "client", "name": "partner-x", "auth_method": "client_certificate"})
        );
    }
}

#[tokio::test]
async fn a_client_with_token_and_certificate_must_present_both() {
    let tmp = tempfile::tempdir().unwrap();
    let (issuer, ca) = client_ca(tmp.path());
    let own = Cert::new(&issuer, "secure");
    let other = Cert::new(&issuer, "other");
    let extra = format!(
        "{}\n[[clients]]\nname = \"secure\"\ntoken_sha256 = \"{}\"\ncert_sha256 = \"{}\"\nroles = [\"uploader\"]\n",
        optional_mtls(&ca),
        token_hash(SECURE_TOKEN),
        own.sha256
    );
    let gw = Gateway::start(&extra);

    for alpn in PROTOCOLS {
        // The token alone, or with another certificate.
        for client in [
            gw.client_with(&[&rustls::version::TLS13], &[alpn]),
            other.client(&gw, alpn),
        ] {
            let (status, j) =
                status_and_json(client.get(gw.url("/v1/whoami")).bearer_auth(SECURE_TOKEN)).await;
            assert_eq!(
                (status, j["code"].as_str()),
                (401, Some("auth.certificate_required")),
                "{j}"
            );
        }
        // Both.
        let (status, j) = status_and_json(
            own.client(&gw, alpn)
                .get(gw.url("/v1/whoami"))
                .bearer_auth(SECURE_TOKEN),
        )
        .await;
        assert_eq!(status, 200, "{j}");
        assert_eq!(j["name"], "secure");
        assert_eq!(j["auth_method"], "bearer_token");
        // The certificate alone is not enough for a client that has a token.
        let (status, j) = status_and_json(own.client(&gw, alpn).get(gw.url("/v1/whoami"))).await;
        assert_eq!((status, j["code"].as_str()), (401, Some("auth.missing")));
    }
    // Other clients' tokens work with or without a certificate.
    let (status, j) = status_and_json(
        other
            .client(&gw, b"h2")
            .get(gw.url("/v1/whoami"))
            .bearer_auth(UPLOADER_TOKEN),
    )
    .await;
    assert_eq!((status, j["name"].as_str()), (200, Some("clinic")));
}

#[tokio::test]
async fn no_header_can_smuggle_a_client_identity() {
    let tmp = tempfile::tempdir().unwrap();
    let (issuer, ca) = client_ca(tmp.path());
    let partner = Cert::new(&issuer, "partner-x");
    let extra = format!(
        "{}\n[[clients]]\nname = \"partner-x\"\ncert_sha256 = \"{}\"\nroles = [\"auditor\"]\n",
        optional_mtls(&ca),
        partner.sha256
    );
    let gw = support::links::start(&extra);
    let artifact = import(&gw, "bound.ndjson", &support::links::data(5000, 1)).await;
    let issued = issue(
        &gw,
        json!({"artifact": artifact, "partner": "partner-x", "client_cert_of": "partner-x"}),
    )
    .await;
    // The headers proxies and servers use to pass a client certificate on.
    let smuggled = [
        ("x-client-cert-sha256", partner.sha256.as_str()),
        ("x-ssl-client-sha256", partner.sha256.as_str()),
        ("x-ssl-client-verify", "SUCCESS"),
        ("x-ssl-client-s-dn", "CN=partner-x"),
        ("ssl-client-cert", partner.sha256.as_str()),
        (
            "x-forwarded-client-cert",
            &format!("Hash={}", partner.sha256),
        ),
    ];
    for alpn in PROTOCOLS {
        let client = gw.client_with(&[&rustls::version::TLS13], &[alpn]);
        let mut who = client.get(gw.url("/v1/whoami"));
        let mut download = client.get(link_url(&gw, &issued));
        for (name, value) in smuggled {
            who = who.header(name, value);
            download = download.header(name, value);
        }
        let (status, j) = status_and_json(who).await;
        assert_eq!(
            (status, j["code"].as_str()),
            (401, Some("auth.missing")),
            "{j}"
        );
        let (status, j) = status_and_json(download).await;
        assert_eq!(
            (status, j["code"].as_str()),
            (403, Some("link.refused")),
            "{j}"
        );
        // With a token: the connection's (absent) certificate is what counts.
        let mut who = client.get(gw.url("/v1/whoami")).bearer_auth(UPLOADER_TOKEN);
        for (name, value) in smuggled {
            who = who.header(name, value);
        }
        let (status, j) = status_and_json(who).await;
        assert_eq!(status, 200, "{j}");
        assert!(j["tls_client"].is_null(), "{j}");
    }
}

#[tokio::test]
async fn a_link_bound_to_a_clients_certificate_downloads_only_with_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (issuer, ca) = client_ca(tmp.path());
    let partner = Cert::new(&issuer, "partner-x");
    let other = Cert::new(&issuer, "other");
    let extra = format!(
        "{}\n[[clients]]\nname = \"partner-x\"\ncert_sha256 = \"{}\"\nroles = [\"auditor\"]\n",
        optional_mtls(&ca),
        partner.sha256
    );
    let mut gw = support::links::start(&extra);
    let bytes = support::links::data(10_000, 2);
    let artifact = import(&gw, "bound.ndjson", &bytes).await;

    // Bad `client_cert_of`s name what is wrong.
    for (value, code) in [
        (json!("nobody"), "link.unknown_client"),
        (json!("ops"), "link.client_without_certificate"),
        (json!("not a name"), "link.bad_client_cert_of"),
        (json!(7), "request.bad_json"),
    ] {
        let (status, j) = issue_raw(
            &gw,
            json!({"artifact": artifact, "partner": "partner-x", "client_cert_of": value}),
        )
        .await;
        assert_eq!(
            (status, j["code"].as_str()),
            (400, Some(code)),
            "{value}: {j}"
        );
    }
    let (status, j) = issue_raw(
        &gw,
        json!({"artifact": artifact, "partner": "partner-x", "client_cert_of": "partner-x",
               "client_cert_sha256": other.sha256}),
    )
    .await;
    assert_eq!(
        (status, j["code"].as_str()),
        (400, Some("link.bad_client_cert_of"))
    );

    let issued = issue(
        &gw,
        json!({"artifact": artifact, "partner": "partner-x", "client_cert_of": "partner-x"}),
    )
    .await;
    assert!(
        issued["bindings"]["client_cert_sha256"].as_str() == Some(partner.sha256.as_str()),
        "{issued}"
    );
    let url = link_url(&gw, &issued);
    for alpn in PROTOCOLS {
        let resp = partner.client(&gw, alpn).get(&url).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.bytes().await.unwrap(), bytes);
        // Without a certificate, and with another: the one uniform refusal.
        for client in [
            gw.client_with(&[&rustls::version::TLS13], &[alpn]),
            other.client(&gw, alpn),
        ] {
            let (status, j) = status_and_json(client.get(&url)).await;
            assert_eq!(
                (status, j["code"].as_str()),
                (403, Some("link.refused")),
                "{j}"
            );
        }
    }
    // The CLI binds the same way (`sallyport link issue --client-cert-of`).
    let token_file = gw.dir.join("publisher.token");
    sallyport::secret::write_private_file(&token_file, PUBLISHER_TOKEN.as_bytes()).unwrap();
    let cli = |extra: &[&str]| {
        sallyport()
            .arg("--config")
            .arg(&gw.config_path)
            .args([
                "link",
                "issue",
                "--json",
                "--artifact",
                &artifact,
                "--partner",
                "partner-x",
            ])
            .args(extra)
            .env(
                "SALLYPORT_URL",
                format!("https://localhost:{}", gw.addr.port()),
            )
            .env("SALLYPORT_TOKEN_FILE", &token_file)
            .output()
            .unwrap()
    };
    let out = cli(&["--client-cert-of", "partner-x"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["bindings"]["client_cert_sha256"], partner.sha256);
    let out = cli(&["--client-cert-of", "nobody"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("400 link.unknown_client"), "{err}");

    let audit = stop_and_export_audit(&mut gw);
    let reasons: Vec<&str> = actions(&audit, "download.rejected")
        .iter()
        .map(|e| e["details"]["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        [
            "client_cert_missing",
            "client_cert_mismatch",
            "client_cert_missing",
            "client_cert_mismatch"
        ]
    );
    assert_eq!(actions(&audit, "download.served").len(), 2);
}

async fn register_as(gw: &Gateway, token: &str, body: Value) -> (u16, Value) {
    status_and_json(
        gw.client()
            .post(gw.url("/v1/artifacts"))
            .bearer_auth(token)
            .json(&body),
    )
    .await
}

async fn issue_as(gw: &Gateway, token: &str, body: Value) -> (u16, Value) {
    status_and_json(
        gw.client()
            .post(gw.url("/v1/links"))
            .bearer_auth(token)
            .json(&body),
    )
    .await
}

#[tokio::test]
async fn a_scoped_publisher_publishes_only_for_its_partners_and_owners() {
    // A short grace: this test's runtime has one thread, blocked while the gateway stops,
    // so its open HTTP/2 connections cannot answer the server's GOAWAY and ping, and the
    // graceful drain would wait the whole default 30 s for them.
    let extra = format!(
        "[server]\nshutdown_grace = \"1s\"\n[[clients]]\nname = \"scoped\"\ntoken_sha256 = \"{}\"\nroles = [\"publisher\"]\n\
         publish_for = [\"payer-a\"]\npublish_from_owners = [\"clinic\"]\n",
        token_hash(SCOPED_TOKEN)
    );
    let mut gw = support::links::start(&extra);
    let clinic_upload = upload_as(&gw, UPLOADER_TOKEN, b"clinic's referral").await;
    let lab_upload = upload_as(&gw, LAB_TOKEN, b"lab's results").await;
    let kind = "application/octet-stream";

    // Registration: only the clinic's upload.
    let (status, clinic_artifact) = register_as(
        &gw,
        SCOPED_TOKEN,
        json!({"upload": clinic_upload, "content_type": kind}),
    )
    .await;
    assert_eq!(status, 201, "{clinic_artifact}");
    assert_eq!(clinic_artifact["owner"], "clinic");
    let (status, j) = register_as(
        &gw,
        SCOPED_TOKEN,
        json!({"upload": lab_upload, "content_type": kind}),
    )
    .await;
    assert_eq!(
        (status, j["code"].as_str()),
        (403, Some("artifact.owner_out_of_scope")),
        "{j}"
    );
    support::links::place(&gw, "import.ndjson", b"an import has no owner");
    let (status, j) = register_as(&gw, SCOPED_TOKEN, json!({"import": "import.ndjson"})).await;
    assert_eq!(
        (status, j["code"].as_str()),
        (403, Some("artifact.owner_out_of_scope")),
        "{j}"
    );
    assert!(
        support::links::import_dir(&gw)
            .join("import.ndjson")
            .exists(),
        "a refused import is left where it was"
    );

    // Links: only for payer-a, and only to the clinic's artifacts.
    let clinic_artifact = clinic_artifact["artifact"].as_str().unwrap();
    let (status, j) = issue_as(
        &gw,
        SCOPED_TOKEN,
        json!({"artifact": clinic_artifact, "partner": "payer-a"}),
    )
    .await;
    assert_eq!(status, 201, "{j}");
    let (status, j) = issue_as(
        &gw,
        SCOPED_TOKEN,
        json!({"artifact": clinic_artifact, "partner": "payer-b"}),
    )
    .await;
    assert_eq!(
        (status, j["code"].as_str()),
        (403, Some("link.partner_out_of_scope")),
        "{j}"
    );
    // The unlimited publisher's import and lab artifact are out of the scoped one's reach.
    let imported = import(&gw, "other.ndjson", b"imported by the unlimited publisher").await;
    let (status, lab_artifact) =
        register(&gw, json!({"upload": lab_upload, "content_type": kind})).await;
    assert_eq!(status, 201, "{lab_artifact}");
    for artifact in [
        imported.as_str(),
        lab_artifact["artifact"].as_str().unwrap(),
    ] {
        let (status, j) = issue_as(
            &gw,
            SCOPED_TOKEN,
            json!({"artifact": artifact, "partner": "payer-a"}),
        )
        .await;
        assert_eq!(
            (status, j["code"].as_str()),
            (403, Some("artifact.owner_out_of_scope")),
            "{j}"
        );
        // The unlimited publisher may.
        let (status, j) = issue_raw(&gw, json!({"artifact": artifact, "partner": "payer-b"})).await;
        assert_eq!(status, 201, "{j}");
    }

    let audit = stop_and_export_audit(&mut gw);
    let refused: Vec<(&str, &str)> = actions(&audit, "publish.out_of_scope")
        .iter()
        .map(|e| {
            assert_eq!(e["outcome"], "denied");
            assert_eq!(e["actor"]["name"], "scoped");
            (
                e["details"]["attempt"].as_str().unwrap(),
                e["details"]["limit"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        refused,
        [
            ("artifact.register", "owner"),
            ("artifact.register", "owner"),
            ("link.issue", "partner"),
            ("link.issue", "owner"),
            ("link.issue", "owner"),
        ]
    );
    assert_eq!(actions(&audit, "link.issued").len(), 3);
    let _ = PUBLISHER_TOKEN;
}

#[test]
fn the_downloader_role_is_gone_and_the_config_says_what_to_use() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("sallyport.toml");
    std::fs::write(
        &f,
        format!(
            "data_dir = {:?}\n[[clients]]\nname = \"partner\"\ntoken_sha256 = \"{}\"\nroles = [\"downloader\"]\n",
            dir.path().join("data").display().to_string(),
            token_hash("a-partner-token")
        ),
    )
    .unwrap();
    let out = sallyport().arg("check-config").arg(&f).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("clients[0].roles"), "{err}");
    assert!(
        err.contains("downloader") && err.contains("signed links"),
        "{err}"
    );
}

/// `cert_san`: a client named by a subject alternative name is every certificate of the
/// client CA carrying that name (a renewed certificate needs no configuration change), and
/// no other; a token client with `cert_san` needs both; a certificate that is two clients'
/// (one pins it, the other names a SAN it carries) authenticates neither.
#[tokio::test]
async fn a_certificate_name_identifies_its_client_across_renewals() {
    let tmp = tempfile::tempdir().unwrap();
    let (issuer, ca) = client_ca(tmp.path());
    let first = Cert::new(&issuer, "partner-y");
    let renewed = Cert::new(&issuer, "partner-y");
    assert_ne!(first.sha256, renewed.sha256);
    let other = Cert::new(&issuer, "partner-z");
    let wildcard = Cert::with_names(&issuer, "wild", vec!["*.partners.example".into()]);
    let lookalike = Cert::with_names(
        &issuer,
        "look",
        vec!["partner-y.partners.example.evil.example".into()],
    );
    let pinned = Cert::with_names(&issuer, "pinned", vec!["shared.partners.example".into()]);
    let extra = format!(
        "{}\n[[clients]]\nname = \"partner-y\"\ncert_san = \"dns:PARTNER-Y.partners.example\"\n\
         roles = [\"auditor\"]\n\
         [[clients]]\nname = \"secure\"\ntoken_sha256 = \"{}\"\n\
         cert_san = \"dns:partner-z.partners.example\"\nroles = [\"uploader\"]\n\
         [[clients]]\nname = \"pinned\"\ncert_sha256 = \"{}\"\nroles = [\"auditor\"]\n\
         [[clients]]\nname = \"shared\"\ncert_san = \"dns:shared.partners.example\"\n\
         roles = [\"auditor\"]\n",
        optional_mtls(&ca),
        token_hash(SECURE_TOKEN),
        pinned.sha256,
    );
    let gw = Gateway::start(&extra);
    for alpn in PROTOCOLS {
        for cert in [&first, &renewed] {
            let (status, j) =
                status_and_json(cert.client(&gw, alpn).get(gw.url("/v1/whoami"))).await;
            assert_eq!(status, 200, "{j}");
            assert_eq!(
                (j["name"].as_str(), j["auth_method"].as_str()),
                (Some("partner-y"), Some("client_certificate"))
            );
            assert_eq!(j["tls_client"]["fingerprint_sha256"], cert.sha256);
        }
        // Not a name it carries: a wildcard is text, a longer name is another name.
        for cert in [&wildcard, &lookalike] {
            let (status, j) =
                status_and_json(cert.client(&gw, alpn).get(gw.url("/v1/whoami"))).await;
            assert_eq!((status, j["code"].as_str()), (401, Some("auth.missing")));
        }
        // Token and name: both, or 401.
        let bearer = format!("Bearer {SECURE_TOKEN}");
        let (status, j) = status_and_json(
            other
                .client(&gw, alpn)
                .get(gw.url("/v1/whoami"))
                .header("authorization", &bearer),
        )
        .await;
        assert_eq!((status, j["name"].as_str()), (200, Some("secure")), "{j}");
        for cert in [&first, &wildcard] {
            let (status, j) = status_and_json(
                cert.client(&gw, alpn)
                    .get(gw.url("/v1/whoami"))
                    .header("authorization", &bearer),
            )
            .await;
            assert_eq!(
                (status, j["code"].as_str()),
                (401, Some("auth.certificate_required")),
                "{j}"
            );
        }
        // A token-less name client's certificate without its token is not the token client.
        let (status, j) = status_and_json(other.client(&gw, alpn).get(gw.url("/v1/whoami"))).await;
        assert_eq!((status, j["code"].as_str()), (401, Some("auth.missing")));
        // Pinned by one client and carrying the name of another: neither.
        let (status, j) = status_and_json(pinned.client(&gw, alpn).get(gw.url("/v1/whoami"))).await;
        assert_eq!(
            (status, j["code"].as_str()),
            (401, Some("auth.invalid")),
            "{j}"
        );
    }
}

#[test]
fn client_certificate_config_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("sallyport.toml");
    let data = dir.path().join("data").display().to_string();
    for (client, key) in [
        (
            "cert_sha256 = \"abc\"\nroles = [\"uploader\"]",
            "clients[0].cert_sha256",
        ),
        ("roles = [\"uploader\"]", "clients[0].token_sha256"),
        (
            "cert_san = \"partner.example\"\nroles = [\"uploader\"]",
            "clients[0].cert_san",
        ),
        (
            "cert_san = \"dns:*.partner.example\"\nroles = [\"uploader\"]",
            "clients[0].cert_san",
        ),
        (
            "cert_sha256 = \"00\"\nroles = [\"uploader\"]\npublish_for = [\"payer-a\"]",
            "clients[0].cert_sha256",
        ),
        (
            &format!(
                "cert_sha256 = \"{}\"\nroles = [\"uploader\"]\npublish_for = [\"payer-a\"]",
                "ab".repeat(32)
            ),
            "clients[0].publish_for",
        ),
        (
            &format!(
                "cert_sha256 = \"{}\"\nroles = [\"publisher\"]\npublish_from_owners = []",
                "ab".repeat(32)
            ),
            "clients[0].publish_from_owners",
        ),
        (
            &format!(
                "cert_sha256 = \"{}\"\nroles = [\"publisher\"]\npublish_for = [\"Payer A\"]",
                "ab".repeat(32)
            ),
            "clients[0].publish_for",
        ),
    ] {
        std::fs::write(
            &f,
            format!("data_dir = {data:?}\n[[clients]]\nname = \"partner\"\n{client}\n"),
        )
        .unwrap();
        let out = sallyport().arg("check-config").arg(&f).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{client}");
        assert!(err.contains(key), "{client}: {err}");
    }
}

/// The edge is the only source of a request's `ClientIdentity`: one that arrives on the
/// request (here put there in-process, as a future layer or a bug could) is removed before
/// authentication, on a connection without a certificate.
#[tokio::test]
async fn an_identity_on_the_request_itself_is_stripped_by_the_edge() {
    use tower::ServiceExt;
    let dir = tempfile::tempdir().unwrap();
    let fp = [0x5a; 32];
    let text = format!(
        "data_dir = {:?}\n[[clients]]\nname = \"partner-x\"\ncert_sha256 = \"{}\"\nroles = [\"auditor\"]\n",
        dir.path().join("data").display().to_string(),
        hex::encode(fp),
    );
    let config =
        sallyport::config::Config::from_toml(&text, &std::collections::BTreeMap::new()).unwrap();
    let app = sallyport::app::build(config).await.unwrap();
    let mut req = http::Request::builder()
        .uri("/v1/whoami")
        .body(axum::body::Body::empty())
        .unwrap();
    req.extensions_mut()
        .insert(sallyport::auth::ClientIdentity {
            fingerprint_sha256: fp,
            subject: "CN=partner-x".into(),
            sans: Vec::new(),
        });
    let resp = app
        .service("192.0.2.7:40000".parse().unwrap())
        .oneshot(req)
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}
