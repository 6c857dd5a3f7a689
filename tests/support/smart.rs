//! A SMART Backend Services client for tests: an ES384 key generated in the test (with
//! aws-lc-rs directly, not the gateway's JOSE crate), its public JWKS for the
//! `[[smart.clients]]` entry, a signed client assertion, and the token request.
//!
//! Not here: the token endpoint's own tests (`tests/smart.rs`, which also covers RS384).

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair};
use base64::Engine as _;
use serde_json::{Value, json};

use super::Gateway;

pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A registered SMART client with a fresh ES384 key.
pub struct SmartClient {
    pub client_id: String,
    key: EcdsaKeyPair,
}

impl SmartClient {
    pub fn new(client_id: &str) -> SmartClient {
        SmartClient {
            client_id: client_id.to_owned(),
            key: EcdsaKeyPair::generate(&signature::ECDSA_P384_SHA384_FIXED_SIGNING).unwrap(),
        }
    }

    /// The public key set, as the `jwks` of its `[[smart.clients]]` entry.
    pub fn jwks(&self) -> String {
        let point = self.key.public_key().as_ref();
        assert_eq!(point.len(), 97, "uncompressed P-384 point");
        json!({"keys": [{"kty": "EC", "crv": "P-384", "kid": "k1", "alg": "ES384",
                         "x": b64(&point[1..49]), "y": b64(&point[49..])}]})
        .to_string()
    }

    /// Its `[[smart.clients]]` entry.
    pub fn toml(&self, scopes: &[&str], principal: &str) -> String {
        let scopes: Vec<String> = scopes.iter().map(|s| format!("\"{s}\"")).collect();
        format!(
            "\n[[smart.clients]]\nclient_id = \"{}\"\njwks = '{}'\nscopes = [{}]\nprincipal = \"{principal}\"\n",
            self.client_id,
            self.jwks(),
            scopes.join(", ")
        )
    }

    /// A client assertion for the token endpoint at `aud`.
    pub fn assertion(&self, aud: &str) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let header = json!({"alg": "ES384", "kid": "k1", "typ": "JWT"});
        let claims = json!({
            "iss": self.client_id, "sub": self.client_id, "aud": aud,
            "exp": now + 240, "jti": super::redis::unique_prefix("jti"),
        });
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let sig = self
            .key
            .sign(&SystemRandom::new(), input.as_bytes())
            .unwrap();
        format!("{input}.{}", b64(sig.as_ref()))
    }

    /// Gets an access token for `scope` from the gateway (whose public base URL is its own
    /// `https://localhost:{port}`); panics unless it is issued.
    pub async fn token(&self, gw: &Gateway, scope: &str) -> String {
        let body = form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "client_credentials")
            .append_pair("client_assertion_type", JWT_BEARER)
            .append_pair("client_assertion", &self.assertion(&gw.url("/auth/token")))
            .append_pair("scope", scope)
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
        let j: Value = resp.json().await.unwrap();
        assert_eq!(status, 200, "token for {}: {j}", self.client_id);
        j["access_token"].as_str().unwrap().to_owned()
    }
}
