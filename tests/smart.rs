#![allow(clippy::unwrap_used, clippy::expect_used)]
//! SMART Backend Services authorization, black-box over real TLS against the real binary:
//! client assertions signed in the test with freshly generated RS384 and ES384 keys (with
//! aws-lc-rs directly, not the gateway's JOSE crate), the token endpoint's answer and every
//! refusal as its own test, the access token accepted as `Authorization: Bearer` with the
//! mapped principal's roles and refused after it expires, a replayed `jti` caught on the
//! same instance and across two instances sharing Redis, the client certificate a client
//! can be required to present, and the audit trail (issuances and refusals with their
//! reasons, never a token or an assertion).
//!
//! The Redis test needs Redis on 127.0.0.1:6379 (unique key prefix); it is skipped with a
//! notice when Redis is unreachable, except under `CI`, where that fails.

mod support;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair};
use base64::Engine as _;
use serde_json::{Value, json};

use support::Gateway;
use support::links::{actions, stop_and_export_audit};
use support::redis::Prefix;

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A client key generated for the test.
enum Key {
    Es(EcdsaKeyPair),
    Rs(signature::RsaKeyPair),
}

struct Signer {
    kid: String,
    key: Key,
}

impl Signer {
    fn es384(kid: &str) -> Signer {
        let key = EcdsaKeyPair::generate(&signature::ECDSA_P384_SHA384_FIXED_SIGNING).unwrap();
        Signer {
            kid: kid.into(),
            key: Key::Es(key),
        }
    }

    fn rs384(kid: &str) -> Signer {
        let key = signature::RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        Signer {
            kid: kid.into(),
            key: Key::Rs(key),
        }
    }

    fn alg(&self) -> &'static str {
        match self.key {
            Key::Es(_) => "ES384",
            Key::Rs(_) => "RS384",
        }
    }

    /// The public JWK.
    fn jwk(&self) -> Value {
        match &self.key {
            Key::Es(k) => {
                let point = k.public_key().as_ref();
                assert_eq!(point.len(), 97, "uncompressed P-384 point");
                json!({"kty": "EC", "crv": "P-384", "kid": self.kid, "alg": "ES384", "use": "sig",
                       "x": b64(&point[1..49]), "y": b64(&point[49..])})
            }
            Key::Rs(k) => {
                let public = k.public_key();
                let n = public.modulus().big_endian_without_leading_zero();
                let e = public.exponent().big_endian_without_leading_zero();
                json!({"kty": "RSA", "kid": self.kid, "alg": "RS384", "n": b64(n), "e": b64(e)})
            }
        }
    }

    /// A JWS over `header` and `claims`, signed with this key.
    fn sign_with(&self, header: &Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let rng = SystemRandom::new();
        let sig = match &self.key {
            Key::Es(k) => k.sign(&rng, input.as_bytes()).unwrap().as_ref().to_vec(),
            Key::Rs(k) => {
                let mut sig = vec![0; k.public_modulus_len()];
                k.sign(
                    &signature::RSA_PKCS1_SHA384,
                    &rng,
                    input.as_bytes(),
                    &mut sig,
                )
                .unwrap();
                sig
            }
        };
        format!("{input}.{}", b64(&sig))
    }

    fn header(&self) -> Value {
        json!({"alg": self.alg(), "kid": self.kid, "typ": "JWT"})
    }
}

/// Claims of a good assertion for `client_id` at `aud`.
fn claims(client_id: &str, aud: &str) -> Value {
    json!({
        "iss": client_id,
        "sub": client_id,
        "aud": aud,
        "exp": now() + 240,
        "jti": support::redis::unique_prefix("jti"),
    })
}

/// A port nothing listens on now (the token URL names it before the gateway starts).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Fixture {
    gw: Gateway,
    es: Signer,
    rs: Signer,
    token_url: String,
}

const ES_CLIENT: &str = "bulk-es";
const RS_CLIENT: &str = "bulk-rs";

/// `[server]` and `[smart]` for two clients (ES384 and RS384) on `port`, plus `extra`.
fn smart_toml(
    port: u16,
    base_port: u16,
    es: &Signer,
    rs: &Signer,
    server: &str,
    smart: &str,
) -> String {
    let jwks = |s: &Signer| json!({"keys": [s.jwk()]}).to_string();
    format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\n{server}\n\
         [smart]\npublic_base_url = \"https://localhost:{base_port}\"\n{smart}\n\
         [[smart.clients]]\nclient_id = \"{ES_CLIENT}\"\njwks = '{}'\n\
         scopes = [\"system/*.read\"]\nprincipal = \"payer-a\"\nroles = [\"auditor\"]\n\n\
         [[smart.clients]]\nclient_id = \"{RS_CLIENT}\"\njwks = '{}'\n\
         scopes = [\"system/Patient.read\", \"system/Observation.rs\"]\nprincipal = \"hie-b\"\n\n",
        jwks(es),
        jwks(rs),
    )
}

fn start(smart: &str) -> Fixture {
    let (es, rs) = (Signer::es384("es-1"), Signer::rs384("rs-1"));
    let port = free_port();
    let gw = Gateway::start(&smart_toml(port, port, &es, &rs, "", smart));
    Fixture {
        token_url: format!("https://localhost:{port}/auth/token"),
        gw,
        es,
        rs,
    }
}

fn form(assertion: &str, scope: &str) -> Vec<(&'static str, String)> {
    vec![
        ("grant_type", "client_credentials".into()),
        ("client_assertion_type", JWT_BEARER.into()),
        ("client_assertion", assertion.into()),
        ("scope", scope.into()),
    ]
}

/// POSTs a token request; the status, the `Cache-Control` header and the JSON body.
async fn token_request(gw: &Gateway, form: &[(&str, String)]) -> (u16, String, Value) {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form.iter().map(|(k, v)| (*k, v.as_str())))
        .finish();
    let resp = gw
        .client()
        .post(gw.url("/auth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let cache = resp
        .headers()
        .get("cache-control")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, cache, resp.json().await.unwrap())
}

/// Asserts an OAuth refusal: status, `error`, `no-store`.
async fn refused(f: &Fixture, form: &[(&str, String)], status: u16, error: &str) {
    let (got, cache, body) = token_request(&f.gw, form).await;
    assert_eq!(
        (got, body["error"].as_str()),
        (status, Some(error)),
        "{body}"
    );
    assert!(body["error_description"].is_string(), "{body}");
    assert!(body.get("access_token").is_none());
    assert_eq!(cache, "no-store");
}

/// Stops the gateway; the reasons of its `smart.token_refused` entries, in order (each
/// refusal test proves it was refused for its own reason, not another).
fn refusal_reasons(f: Fixture) -> Vec<String> {
    let mut gw = f.gw;
    let audit = stop_and_export_audit(&mut gw);
    actions(&audit, "smart.token_refused")
        .iter()
        .map(|e| e["details"]["reason"].as_str().unwrap().to_owned())
        .collect()
}

async fn whoami(gw: &Gateway, token: &str) -> (u16, Value) {
    let resp = gw
        .client()
        .get(gw.url("/v1/whoami"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

#[tokio::test]
async fn an_es384_assertion_gets_a_token_that_authenticates_with_the_mapped_roles() {
    // Debug logs: not even they may carry a token or an assertion.
    let f = start("[log]\nformat = \"json\"\nlevel = \"debug\"\n");
    let assertion =
        f.es.sign_with(&f.es.header(), &claims(ES_CLIENT, &f.token_url));
    let (status, cache, body) = token_request(&f.gw, &form(&assertion, "system/*.read")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(cache, "no-store");
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["scope"], "system/*.read");
    assert_eq!(body["expires_in"], 300);
    let token = body["access_token"].as_str().unwrap().to_owned();
    let (status, me) = whoami(&f.gw, &token).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["name"], "payer-a");
    assert_eq!(me["roles"], json!(["auditor"]));
    assert_eq!(me["auth_method"], "smart_access_token");
    // An endpoint of its role (auditor) answers; one of another role is 403.
    let resp =
        f.gw.client()
            .get(f.gw.url("/v1/audit/verify"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
    assert_eq!(resp.status(), 200);
    let resp =
        f.gw.client()
            .get(f.gw.url("/v1/links?partner=x"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
    assert_eq!(resp.status(), 403);
    // A token with one byte changed is refused.
    let mut forged = token.clone().into_bytes();
    let last = forged.len() - 2;
    forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
    let (status, _) = whoami(&f.gw, std::str::from_utf8(&forged).unwrap()).await;
    assert_eq!(status, 401);
    // A replay, so that a refusal is logged too.
    refused(
        &f,
        &form(&assertion, "system/*.read"),
        401,
        "invalid_client",
    )
    .await;
    let logs = f.gw.drain_stderr().join("\n");
    assert!(
        logs.contains("smart.token_issued"),
        "debug logs are on: {logs}"
    );
    assert!(!logs.contains(&token), "the token is in the log");
    assert!(!logs.contains(&assertion), "the assertion is in the log");
    assert!(
        !logs.contains(assertion.split('.').nth(2).unwrap()),
        "the signature is in the log"
    );
    // The audit trail names the token by id and never holds the token or the assertion.
    let mut gw = f.gw;
    let audit = stop_and_export_audit(&mut gw);
    let issued = actions(&audit, "smart.token_issued");
    assert_eq!(issued.len(), 1);
    assert_eq!(issued[0]["details"]["client_id"], ES_CLIENT);
    assert_eq!(issued[0]["details"]["alg"], "ES384");
    assert_eq!(issued[0]["actor"]["name"], "payer-a");
    let text = serde_json::to_string(&audit).unwrap();
    assert!(!text.contains(&token), "the token is in the audit trail");
    assert!(
        !text.contains(&assertion),
        "the assertion is in the audit trail"
    );
}

#[tokio::test]
async fn an_rs384_assertion_gets_the_intersection_of_its_scopes() {
    let f = start("");
    let assertion =
        f.rs.sign_with(&f.rs.header(), &claims(RS_CLIENT, &f.token_url));
    // v2 `*.rs` meets Patient.read and Observation.rs.
    let (status, _, body) = token_request(&f.gw, &form(&assertion, "system/*.rs")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["scope"], "system/Patient.rs system/Observation.rs");
    let (status, me) = whoami(&f.gw, body["access_token"].as_str().unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(
        (me["name"].as_str(), &me["roles"]),
        (Some("hie-b"), &json!([]))
    );
}

#[tokio::test]
async fn alg_none_is_refused() {
    let f = start("");
    let c = claims(ES_CLIENT, &f.token_url);
    let unsigned = format!(
        "{}.{}.",
        b64(json!({"alg": "none", "kid": "es-1"}).to_string().as_bytes()),
        b64(c.to_string().as_bytes())
    );
    refused(&f, &form(&unsigned, "system/*.read"), 401, "invalid_client").await;
    // Signed, but labelled `none`: still refused.
    let labelled = f.es.sign_with(&json!({"alg": "none", "kid": "es-1"}), &c);
    refused(&f, &form(&labelled, "system/*.read"), 401, "invalid_client").await;
    assert_eq!(refusal_reasons(f), ["alg_not_allowed", "alg_not_allowed"]);
}

#[tokio::test]
async fn hs256_is_refused_even_keyed_with_the_public_key() {
    use hmac::{KeyInit, Mac};
    let f = start("");
    let header = json!({"alg": "HS256", "kid": "es-1", "typ": "JWT"});
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims(ES_CLIENT, &f.token_url).to_string().as_bytes())
    );
    // The classic confusion attack: HMAC keyed with the client's public key.
    let public = f.es.jwk().to_string();
    let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(public.as_bytes()).unwrap();
    mac.update(input.as_bytes());
    let jwt = format!("{input}.{}", b64(&mac.finalize().into_bytes()));
    refused(&f, &form(&jwt, "system/*.read"), 401, "invalid_client").await;
    assert_eq!(refusal_reasons(f), ["alg_not_allowed"]);
}

#[tokio::test]
async fn an_unknown_kid_is_refused() {
    let f = start("");
    let stranger = Signer::es384("es-2");
    let jwt = stranger.sign_with(&stranger.header(), &claims(ES_CLIENT, &f.token_url));
    refused(&f, &form(&jwt, "system/*.read"), 401, "invalid_client").await;
    // The RS client's kid under the ES client is unknown too.
    let jwt =
        f.rs.sign_with(&f.rs.header(), &claims(ES_CLIENT, &f.token_url));
    refused(&f, &form(&jwt, "system/*.read"), 401, "invalid_client").await;
    assert_eq!(refusal_reasons(f), ["unknown_kid", "unknown_kid"]);
}

#[tokio::test]
async fn an_expired_assertion_is_refused() {
    let f = start("");
    let mut c = claims(ES_CLIENT, &f.token_url);
    // Past the default 30 s leeway.
    c["exp"] = json!(now() - 120);
    let jwt = f.es.sign_with(&f.es.header(), &c);
    refused(&f, &form(&jwt, "system/*.read"), 401, "invalid_client").await;
    assert_eq!(refusal_reasons(f), ["expired"]);
}

#[tokio::test]
async fn an_exp_more_than_five_minutes_ahead_is_refused() {
    let f = start("");
    let mut c = claims(ES_CLIENT, &f.token_url);
    c["exp"] = json!(now() + 3600);
    let jwt = f.es.sign_with(&f.es.header(), &c);
    refused(&f, &form(&jwt, "system/*.read"), 401, "invalid_client").await;
    assert_eq!(refusal_reasons(f), ["exp_too_far"]);
}

#[tokio::test]
async fn a_wrong_aud_is_refused() {
    let f = start("");
    for aud in [
        json!("https://elsewhere.example/auth/token"),
        json!(format!("{}/", f.token_url)),
        json!(f.token_url.replace("/auth/token", "")),
        json!(["https://elsewhere.example/auth/token"]),
    ] {
        let mut c = claims(ES_CLIENT, &f.token_url);
        c["aud"] = aud;
        let jwt = f.es.sign_with(&f.es.header(), &c);
        refused(&f, &form(&jwt, "system/*.read"), 401, "invalid_client").await;
    }
    assert_eq!(refusal_reasons(f), ["wrong_aud"; 4]);
}

#[tokio::test]
async fn a_replayed_jti_is_refused() {
    let f = start("");
    let jwt =
        f.es.sign_with(&f.es.header(), &claims(ES_CLIENT, &f.token_url));
    let (status, _, body) = token_request(&f.gw, &form(&jwt, "system/*.read")).await;
    assert_eq!(status, 200, "{body}");
    refused(&f, &form(&jwt, "system/*.read"), 401, "invalid_client").await;
    // The same jti in a freshly signed assertion is a replay too.
    let mut c: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(jwt.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    c["exp"] = json!(now() + 200);
    let again = f.es.sign_with(&f.es.header(), &c);
    refused(&f, &form(&again, "system/*.read"), 401, "invalid_client").await;
    assert_eq!(refusal_reasons(f), ["replayed_jti", "replayed_jti"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jti_replayed_on_another_instance_sharing_redis_is_refused() {
    if !support::redis::available() {
        return;
    }
    let prefix = Prefix::new("smart-jti");
    let tmp = tempfile::tempdir().unwrap();
    let (es, rs) = (Signer::es384("es-1"), Signer::rs384("rs-1"));
    let (p1, p2) = (free_port(), free_port());
    // One public base URL (the balancer's) for both instances; both share the data
    // directory (and so the link keys the token keys derive from).
    let redis = |id: &str| {
        format!(
            "instance_id = \"{id}\"\n\n[state]\nbackend = \"redis\"\nredis_url = \"{}\"\nredis_prefix = \"{}\"\n",
            support::redis::url(),
            prefix.as_str()
        )
    };
    let one = Gateway::start_in(tmp.path(), &smart_toml(p1, p1, &es, &rs, &redis("one"), ""));
    let two = Gateway::start_in(tmp.path(), &smart_toml(p2, p1, &es, &rs, &redis("two"), ""));
    let token_url = format!("https://localhost:{p1}/auth/token");
    let jwt = es.sign_with(&es.header(), &claims(ES_CLIENT, &token_url));
    let (status, _, body) = token_request(&one, &form(&jwt, "system/*.read")).await;
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().unwrap().to_owned();
    let (status, _, body) = token_request(&two, &form(&jwt, "system/*.read")).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client")),
        "{body}"
    );
    // Instance two issues for a fresh assertion, and accepts instance one's token.
    let fresh = es.sign_with(&es.header(), &claims(ES_CLIENT, &token_url));
    let (status, _, body) = token_request(&two, &form(&fresh, "system/*.read")).await;
    assert_eq!(status, 200, "{body}");
    let (status, me) = whoami(&two, &token).await;
    assert_eq!((status, me["name"].as_str()), (200, Some("payer-a")));
    // Both instances wrote the one audit chain in Redis: two issuances, one replay.
    drop(two);
    let mut one = one;
    let audit = stop_and_export_audit(&mut one);
    assert_eq!(actions(&audit, "smart.token_issued").len(), 2);
    let refused = actions(&audit, "smart.token_refused");
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0]["details"]["reason"], "replayed_jti");
}

#[tokio::test]
async fn a_scope_the_client_may_not_have_is_refused() {
    let f = start("");
    let jwt =
        f.rs.sign_with(&f.rs.header(), &claims(RS_CLIENT, &f.token_url));
    refused(
        &f,
        &form(&jwt, "system/Encounter.read"),
        400,
        "invalid_scope",
    )
    .await;
    let jwt =
        f.rs.sign_with(&f.rs.header(), &claims(RS_CLIENT, &f.token_url));
    refused(
        &f,
        &form(&jwt, "system/Patient.write"),
        400,
        "invalid_scope",
    )
    .await;
    let jwt =
        f.rs.sign_with(&f.rs.header(), &claims(RS_CLIENT, &f.token_url));
    refused(&f, &form(&jwt, "patient/*.read"), 400, "invalid_scope").await;
    let jwt =
        f.rs.sign_with(&f.rs.header(), &claims(RS_CLIENT, &f.token_url));
    refused(
        &f,
        &form(&jwt, "system/Patient.rs?x=1"),
        400,
        "invalid_scope",
    )
    .await;
    assert_eq!(
        refusal_reasons(f),
        [
            "scope_not_allowed",
            "scope_not_allowed",
            "scope_not_allowed",
            "malformed_scope"
        ]
    );
}

#[tokio::test]
async fn a_grant_type_other_than_client_credentials_is_refused() {
    let f = start("");
    let jwt =
        f.es.sign_with(&f.es.header(), &claims(ES_CLIENT, &f.token_url));
    let mut bad = form(&jwt, "system/*.read");
    bad[0].1 = "authorization_code".into();
    refused(&f, &bad, 400, "unsupported_grant_type").await;
    bad.remove(0);
    refused(&f, &bad, 400, "invalid_request").await;
    // The assertion was not spent by the refusals: it still gets a token.
    let (status, _, _) = token_request(&f.gw, &form(&jwt, "system/*.read")).await;
    assert_eq!(status, 200);
    assert_eq!(
        refusal_reasons(f),
        ["unsupported_grant_type", "missing_grant_type"]
    );
}

#[tokio::test]
async fn a_wrong_assertion_type_is_refused() {
    let f = start("");
    let jwt =
        f.es.sign_with(&f.es.header(), &claims(ES_CLIENT, &f.token_url));
    let mut bad = form(&jwt, "system/*.read");
    bad[1].1 = "urn:ietf:params:oauth:client-assertion-type:saml2-bearer".into();
    refused(&f, &bad, 400, "invalid_request").await;
    // Repeated parameters and a body that is not a form are refused the same way.
    let mut twice = form(&jwt, "system/*.read");
    twice.push(("scope", "system/*.read".into()));
    refused(&f, &twice, 400, "invalid_request").await;
    let resp =
        f.gw.client()
            .post(f.gw.url("/auth/token"))
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request");
    // Too large a form: 413 before any of it is parsed.
    let resp =
        f.gw.client()
            .post(f.gw.url("/auth/token"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("client_assertion={}", "a".repeat(20_000)))
            .send()
            .await
            .unwrap();
    assert_eq!(resp.status(), 413);
    assert_eq!(
        refusal_reasons(f),
        ["bad_assertion_type", "malformed_form", "not_form_encoded"]
    );
}

#[tokio::test]
async fn an_access_token_used_after_it_expired_is_refused() {
    let f = start("access_token_lifetime = \"1s\"\n");
    let jwt =
        f.es.sign_with(&f.es.header(), &claims(ES_CLIENT, &f.token_url));
    let (status, _, body) = token_request(&f.gw, &form(&jwt, "system/*.read")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["expires_in"], 1);
    let token = body["access_token"].as_str().unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(2_100)).await;
    let (status, body) = whoami(&f.gw, token).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["code"], "auth.invalid");
}

#[tokio::test]
async fn discovery_names_the_token_endpoint_and_what_it_accepts() {
    let f = start("");
    let resp =
        f.gw.client()
            .get(f.gw.url("/.well-known/smart-configuration"))
            .send()
            .await
            .unwrap();
    assert_eq!(resp.status(), 200);
    let doc: Value = resp.json().await.unwrap();
    assert_eq!(doc["token_endpoint"], f.token_url);
    assert_eq!(doc["grant_types_supported"], json!(["client_credentials"]));
    assert_eq!(
        doc["token_endpoint_auth_methods_supported"],
        json!(["private_key_jwt"])
    );
    assert_eq!(
        doc["token_endpoint_auth_signing_alg_values_supported"],
        json!(["RS384", "ES384"])
    );
    assert_eq!(
        doc["scopes_supported"],
        json!([
            "system/*.read",
            "system/Patient.read",
            "system/Observation.rs"
        ])
    );
    let caps = doc["capabilities"].as_array().unwrap();
    assert!(caps.contains(&json!("client-confidential-asymmetric")));
}

#[tokio::test]
async fn refusals_are_audited_with_their_reasons() {
    let f = start("");
    let stranger = Signer::es384("es-9");
    let cases = [
        (
            stranger.sign_with(&stranger.header(), &claims(ES_CLIENT, &f.token_url)),
            "unknown_kid",
        ),
        (
            f.es.sign_with(
                &f.es.header(),
                &claims(ES_CLIENT, "https://x.example/auth/token"),
            ),
            "wrong_aud",
        ),
        (
            f.es.sign_with(&f.es.header(), &claims("nobody", &f.token_url)),
            "unknown_client",
        ),
    ];
    for (jwt, _) in &cases {
        refused(&f, &form(jwt, "system/*.read"), 401, "invalid_client").await;
    }
    let mut gw = f.gw;
    let audit = stop_and_export_audit(&mut gw);
    let got: Vec<_> = actions(&audit, "smart.token_refused")
        .iter()
        .map(|e| {
            (
                e["details"]["reason"].as_str().unwrap().to_owned(),
                e["details"]["client_id"].as_str().map(str::to_owned),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("unknown_kid".to_owned(), Some(ES_CLIENT.to_owned())),
            ("wrong_aud".to_owned(), Some(ES_CLIENT.to_owned())),
            ("unknown_client".to_owned(), None),
        ]
    );
}

/// A client CA and one client certificate from it: (CA file, client cert, its SHA-256).
fn client_pki(dir: &std::path::Path) -> (std::path::PathBuf, support::ClientCert, String) {
    use sha2::Digest;
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Partner CA");
    let ca = params.self_signed(&ca_key).unwrap();
    let ca_path = dir.join("client-ca.pem");
    std::fs::write(&ca_path, ca.pem()).unwrap();
    let issuer = rcgen::Issuer::new(params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["bulk.partners.example".into()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "bulk-mtls");
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, &issuer).unwrap();
    let der = cert.der().clone();
    let sha = hex::encode(sha2::Sha256::digest(der.as_ref()));
    let client = support::ClientCert {
        chain: vec![der],
        key: rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    };
    (ca_path, client, sha)
}

#[tokio::test]
async fn a_client_required_to_present_its_certificate_must_present_it_for_tokens_and_their_use() {
    certificate_required(|sha| format!("cert_sha256 = \"{sha}\"")).await;
}

/// The same with the certificate named by a subject alternative name (`cert_san`).
#[tokio::test]
async fn a_client_named_by_its_certificates_san_must_present_it_too() {
    certificate_required(|_| "cert_san = \"dns:bulk.partners.example\"".into()).await;
}

/// A client whose `[[smart.clients]]` entry carries `binding(sha)` (the certificate's
/// SHA-256 in hex) gets and uses tokens only with that certificate.
async fn certificate_required(binding: impl Fn(&str) -> String) {
    let tmp = tempfile::tempdir().unwrap();
    let (ca, cert, sha) = client_pki(tmp.path());
    let (es, rs) = (Signer::es384("es-1"), Signer::rs384("rs-1"));
    let mtls = Signer::es384("mtls-1");
    let port = free_port();
    let extra = format!(
        "{}[[smart.clients]]\nclient_id = \"bulk-mtls\"\njwks = '{}'\nscopes = [\"system/*.read\"]\n\
         principal = \"payer-c\"\n{}\n\n\
         [tls]\nclient_auth = \"optional\"\nclient_ca_file = {:?}\n",
        smart_toml(port, port, &es, &rs, "", ""),
        json!({"keys": [mtls.jwk()]}),
        binding(&sha),
        ca.display().to_string(),
    );
    let f = Fixture {
        gw: Gateway::start(&extra),
        token_url: format!("https://localhost:{port}/auth/token"),
        es,
        rs,
    };
    // Without the certificate: invalid_client, and the assertion is not spent.
    let jwt = mtls.sign_with(&mtls.header(), &claims("bulk-mtls", &f.token_url));
    refused(&f, &form(&jwt, "system/*.read"), 401, "invalid_client").await;
    // With it: a token, which works only on a connection presenting the certificate.
    let with_cert = f.gw.client_with_cert(cert, &[b"http/1.1"]);
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(
            form(&jwt, "system/*.read")
                .iter()
                .map(|(k, v)| (*k, v.as_str())),
        )
        .finish();
    let resp = with_cert
        .post(f.gw.url("/auth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let token: Value = resp.json().await.unwrap();
    let token = token["access_token"].as_str().unwrap().to_owned();
    let resp = with_cert
        .get(f.gw.url("/v1/whoami"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let me: Value = resp.json().await.unwrap();
    assert_eq!(me["name"], "payer-c");
    let (status, body) = whoami(&f.gw, &token).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("auth.certificate_required"))
    );
    assert_eq!(refusal_reasons(f), ["certificate_required"]);
}

#[tokio::test]
async fn a_flood_of_refusals_is_audited_one_by_one_only_up_to_the_allowance() {
    let f = start("");
    let jwt = f.es.sign_with(
        &f.es.header(),
        &claims(ES_CLIENT, "https://x.example/auth/token"),
    );
    for _ in 0..25 {
        refused(&f, &form(&jwt, "system/*.read"), 401, "invalid_client").await;
    }
    // 10 per address and window (`audit::security::TOKEN_REFUSED_ALLOWANCE`); the rest
    // are counted into the window's `security.summary`.
    assert_eq!(refusal_reasons(f), ["wrong_aud"; 10]);
}
