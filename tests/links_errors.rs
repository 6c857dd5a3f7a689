#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Link refusals, black-box: every failure is the same generic 403 while the audit trail
//! has the specific reason; 429 after repeated forged links; key rotation and retirement;
//! client-certificate bindings over mutual TLS.

mod support;

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use sallyport::signed_link::{
    Bindings, GrantId, LinkClaims, LinkKeySpec, LinkKeyring, MethodSet, UnixTime,
};
use serde_json::{Value, json};
use support::Gateway;
use support::links::{
    PUBLISHER_TOKEN, actions, data, import, issue, issue_raw, link_url, publisher_toml,
    stop_and_export_audit,
};

const SECRET1: [u8; 32] = [0x11; 32];
const SECRET2: [u8; 32] = [0x22; 32];

fn b64(s: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn keys_toml(k1_state: &str, k2: Option<&str>) -> String {
    let mut t = format!(
        "[[links.keys]]\nid = \"k1\"\nstate = \"{k1_state}\"\n{}",
        if k1_state == "retired" {
            String::new()
        } else {
            format!("secret = \"{}\"\n", b64(&SECRET1))
        }
    );
    if let Some(state) = k2 {
        t.push_str(&format!(
            "[[links.keys]]\nid = \"k2\"\nstate = \"{state}\"\nsecret = \"{}\"\n",
            b64(&SECRET2)
        ));
    }
    t
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Signs claims with the test's copy of key k1.
fn forge(artifact: &str, grant: GrantId, nb: u64, exp: u64) -> String {
    let ring = LinkKeyring::new(
        [LinkKeySpec::Current {
            id: "k1".parse().unwrap(),
            secret: &SECRET1,
        }],
        std::time::Duration::ZERO,
    )
    .unwrap();
    let claims = LinkClaims::new(
        artifact.parse().unwrap(),
        grant,
        MethodSet::GetHead,
        UnixTime(nb),
        UnixTime(exp),
        Bindings::default(),
    )
    .unwrap();
    ring.sign(&claims)
}

async fn refused(gw: &Gateway, client: &reqwest::Client, path: &str, head: bool) -> Value {
    let url = gw.url(path);
    let resp = if head {
        client.head(&url).send().await.unwrap()
    } else {
        client.get(&url).send().await.unwrap()
    };
    assert_eq!(resp.status(), 403, "{path}");
    if head {
        // No body to compare; the status is the same.
        return Value::Null;
    }
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let mut body: Value = resp.json().await.unwrap();
    body.as_object_mut().unwrap().remove("request_id");
    body
}

fn path_of(issued: &Value) -> String {
    issued["path"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_generic_and_the_audit_trail_has_the_reason() {
    let mut gw = support::links::start(&format!(
        "[links]\nclock_skew = \"0s\"\n{}",
        keys_toml("current", None)
    ));
    let a = import(&gw, "a.ndjson", &data(5000, 1)).await;
    let b = import(&gw, "b.ndjson", &data(5000, 2)).await;
    let c = gw.client();
    let ok = issue(&gw, json!({"artifact": a, "partner": "payer-a"})).await;
    let ok_path = path_of(&ok);
    assert_eq!(c.get(gw.url(&ok_path)).send().await.unwrap().status(), 200);

    let mut cases: Vec<(&str, String, bool)> = Vec::new();
    // Forgery suspects.
    let sig_at = ok_path.rfind("sig=").unwrap() + 4;
    let mut tampered = ok_path.clone();
    let flip = if &tampered[sig_at..sig_at + 1] == "A" {
        "B"
    } else {
        "A"
    };
    tampered.replace_range(sig_at..sig_at + 1, flip);
    cases.push(("bad_signature", tampered, false));
    cases.push(("unknown_key", ok_path.replace("k=k1", "k=k9"), false));
    cases.push(("malformed_artifact", "/d/not-an-id?v=1".into(), false));
    cases.push(("percent_encoded", ok_path.replace("k=k1", "k=%6B1"), false));
    cases.push((
        "duplicate_parameter",
        ok_path.replace("&m=", "&k=k1&m="),
        false,
    ));
    // Verified links the grant or the request does not honour.
    cases.push((
        "expired",
        forge(&a, GrantId::random(), now() - 100, now() - 10),
        false,
    ));
    let later = issue(
        &gw,
        json!({"artifact": a, "partner": "payer-a", "not_before": now() + 3600}),
    )
    .await;
    cases.push(("not_yet_valid", path_of(&later), false));
    let head_only = issue(
        &gw,
        json!({"artifact": a, "partner": "payer-a", "methods": "HEAD"}),
    )
    .await;
    cases.push(("method_not_allowed", path_of(&head_only), false));
    let elsewhere = issue(
        &gw,
        json!({"artifact": a, "partner": "payer-a", "client_net": "192.0.2.0/24"}),
    )
    .await;
    cases.push(("client_address_mismatch", path_of(&elsewhere), false));
    let bound = issue(
        &gw,
        json!({"artifact": a, "partner": "payer-a", "client_cert_sha256": "ab".repeat(32)}),
    )
    .await;
    cases.push(("client_cert_missing", path_of(&bound), true));
    cases.push((
        "grant_not_found",
        forge(&a, GrantId::random(), now() - 10, now() + 600),
        false,
    ));
    // A genuine grant for artifact A, signed into a link for artifact B.
    let grant_a: GrantId = ok["grant"].as_str().unwrap().parse().unwrap();
    cases.push((
        "grant_scope_mismatch",
        forge(&b, grant_a, now() - 10, now() + 600),
        false,
    ));
    // ... and with its own artifact but another window than stored.
    cases.push((
        "grant_mismatch",
        forge(&a, grant_a, now() - 10, now() + 601),
        false,
    ));
    let revoked = issue(&gw, json!({"artifact": a, "partner": "payer-a"})).await;
    let resp = c
        .delete(gw.url(&format!("/v1/links/{}", revoked["grant"].as_str().unwrap())))
        .bearer_auth(PUBLISHER_TOKEN)
        .json(&json!({"reason": "contract ended"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    cases.push(("revoked", path_of(&revoked), false));
    let once = issue(
        &gw,
        json!({"artifact": a, "partner": "payer-a", "max_downloads": 1}),
    )
    .await;
    assert_eq!(
        c.get(link_url(&gw, &once)).send().await.unwrap().status(),
        200
    );
    cases.push(("exhausted", path_of(&once), false));

    let mut first: Option<Value> = None;
    for (reason, path, head) in &cases {
        let body = refused(&gw, &c, path, *head).await;
        if body.is_null() {
            continue;
        }
        match &first {
            None => first = Some(body),
            Some(f) => assert_eq!(&body, f, "{reason}: every refusal looks the same"),
        }
    }
    assert_eq!(first.unwrap()["code"], "link.refused");
    // The honest link still works.
    assert_eq!(c.get(gw.url(&ok_path)).send().await.unwrap().status(), 200);

    let audit = stop_and_export_audit(&mut gw);
    let rejected: Vec<String> = actions(&audit, "download.rejected")
        .iter()
        .map(|e| e["details"]["reason"].as_str().unwrap().to_owned())
        .collect();
    for (reason, _, _) in &cases {
        assert!(
            rejected.contains(&reason.to_string()),
            "{reason} missing from {rejected:?}"
        );
    }
    // Grants appear only for verified links; never from a forged one.
    for e in actions(&audit, "download.rejected") {
        let verified = e["actor"]["kind"] == "link";
        assert_eq!(verified, !e["details"]["grant"].is_null(), "{e}");
        assert_eq!(e["outcome"], "denied");
    }
    let served = actions(&audit, "download.served");
    assert!(served.len() >= 3);
    assert_eq!(served[0]["details"]["tls_version"], "TLSv1_3");
    assert!(
        served[0]["details"]["tls_cipher"]
            .as_str()
            .unwrap()
            .starts_with("TLS13_")
    );
    assert_eq!(served[0]["client_addr"], "127.0.0.1");
    assert_eq!(
        actions(&audit, "link.revoked")[0]["details"]["reason"],
        "contract ended"
    );
    assert_eq!(actions(&audit, "link.issued").len(), 7);
    assert_eq!(actions(&audit, "artifact.registered").len(), 2);
    // No signature (a bearer credential) and no file name (maybe PHI) in the trail.
    let text = audit.iter().map(Value::to_string).collect::<String>();
    let sig = &ok_path[sig_at..];
    assert!(
        !text.contains(sig),
        "a link signature leaked into the audit trail"
    );
    assert!(
        !text.contains("a.ndjson"),
        "a file name leaked into the audit trail"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_forged_links_get_429_with_retry_after() {
    let mut gw =
        support::links::start("[links]\nbad_signature_burst = 3\nbad_signature_window = \"1m\"\n");
    let a = import(&gw, "a.ndjson", &data(100, 1)).await;
    let ok = issue(&gw, json!({"artifact": a, "partner": "payer-a"})).await;
    let path = path_of(&ok);
    let forged = format!(
        "{}sig={}",
        &path[..path.rfind("sig=").unwrap()],
        "A".repeat(43)
    );
    let c = gw.client();
    // Expired or revoked links do not count; forged ones do.
    for _ in 0..3 {
        assert_eq!(c.get(gw.url(&forged)).send().await.unwrap().status(), 403);
    }
    for p in [&forged, &path] {
        let resp = c.get(gw.url(p)).send().await.unwrap();
        assert_eq!(resp.status(), 429, "{p}");
        let retry: u64 = resp.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=20).contains(&retry), "{retry}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["code"], "request.rate_limited");
    }
    // The API is not affected.
    let resp = c
        .get(gw.url(&format!("/v1/links/{}", ok["grant"].as_str().unwrap())))
        .bearer_auth(PUBLISHER_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let audit = stop_and_export_audit(&mut gw);
    let rejected = actions(&audit, "download.rejected");
    // Blocked requests are not audited one by one: three forgeries, the last one blocking.
    assert_eq!(rejected.len(), 3);
    assert_eq!(rejected[2]["details"]["client_blocked"], true);
    assert_eq!(rejected[0]["details"]["reason"], "bad_signature");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_keeps_old_links_until_their_key_is_retired() {
    let tmp = tempfile::tempdir().unwrap();
    let start = |keys: String| {
        Gateway::start_in(
            tmp.path(),
            &format!("[keys]\nsegment_size = 4096\n{keys}{}", publisher_toml()),
        )
    };
    // Phase 1: k1 signs.
    let gw = start(keys_toml("current", None));
    let a = import(&gw, "a.ndjson", &data(3000, 5)).await;
    let l1 = issue(&gw, json!({"artifact": a, "partner": "payer-a"})).await;
    assert_eq!(l1["key_id"], "k1");
    assert!(l1["path"].as_str().unwrap().contains("&k=k1&"));
    drop(gw);
    // Phase 2: k2 signs new links; k1 still verifies its own.
    let gw = start(keys_toml("verify", Some("current")));
    let c = gw.client();
    assert_eq!(
        c.get(link_url(&gw, &l1)).send().await.unwrap().status(),
        200
    );
    let l2 = issue(&gw, json!({"artifact": a, "partner": "payer-a"})).await;
    assert_eq!(l2["key_id"], "k2");
    drop(gw);
    // Phase 3: k1 retired: every link it signed is dead; k2's live on.
    let mut gw = start(keys_toml("retired", Some("current")));
    let c = gw.client();
    assert_eq!(
        c.get(link_url(&gw, &l1)).send().await.unwrap().status(),
        403
    );
    assert_eq!(
        c.get(link_url(&gw, &l2)).send().await.unwrap().status(),
        200
    );
    let audit = stop_and_export_audit(&mut gw);
    let reasons: Vec<_> = actions(&audit, "download.rejected")
        .iter()
        .map(|e| e["details"]["reason"].clone())
        .collect();
    assert_eq!(reasons, vec![json!("retired_key")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificate_bindings_over_mutual_tls() {
    let tmp = tempfile::tempdir().unwrap();
    let (issuer, ca_path) = make_client_ca(tmp.path());
    let (chain, key, fp) = client_cert(&issuer, "partner-1");
    let (chain2, key2, _) = client_cert(&issuer, "partner-2");
    let gw = support::links::start(&format!(
        "[tls]\nclient_auth = \"optional\"\nclient_ca_file = {:?}\n",
        ca_path.display().to_string()
    ));
    let a = import(&gw, "a.ndjson", &data(3000, 6)).await;
    let bound = issue(
        &gw,
        json!({"artifact": a, "partner": "payer-a", "client_cert_sha256": hex::encode(fp)}),
    )
    .await;
    let url = link_url(&gw, &bound);
    let with = |chain: Vec<_>, key| {
        gw.client_with_cert(support::ClientCert { chain, key }, &[b"http/1.1"])
    };
    assert_eq!(
        with(chain, key).get(&url).send().await.unwrap().status(),
        200
    );
    assert_eq!(
        with(chain2, key2).get(&url).send().await.unwrap().status(),
        403
    );
    assert_eq!(gw.client().get(&url).send().await.unwrap().status(), 403);
    // A malformed fingerprint is refused at issue time.
    let (status, body) = issue_raw(
        &gw,
        json!({"artifact": a, "partner": "payer-a", "client_cert_sha256": "xyz"}),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str().unwrap()),
        (400, "link.bad_client_cert")
    );
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

#[allow(clippy::type_complexity)]
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
