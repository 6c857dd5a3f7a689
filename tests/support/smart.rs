//! A SMART Backend Services client for tests: an ES384 or RS384 key generated in the test
//! (with aws-lc-rs directly, not the gateway's JOSE crate), its public JWKS for the
//! `[[smart.clients]]` entry, a signed client assertion, and the token request.
//!
//! Not here: the token endpoint's own tests (`tests/smart.rs`).

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair};
use base64::Engine as _;
use serde_json::{Value, json};

use super::Gateway;

pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A client key generated in the test.
enum Key {
    Es(EcdsaKeyPair),
    Rs(signature::RsaKeyPair),
}

/// A registered SMART client with a fresh ES384 or RS384 key.
pub struct SmartClient {
    pub client_id: String,
    key: Key,
}

impl SmartClient {
    /// A client with a fresh ES384 (P-384) key.
    pub fn new(client_id: &str) -> SmartClient {
        SmartClient {
            client_id: client_id.to_owned(),
            key: Key::Es(
                EcdsaKeyPair::generate(&signature::ECDSA_P384_SHA384_FIXED_SIGNING).unwrap(),
            ),
        }
    }

    /// A client with a fresh RS384 (RSA 2048) key.
    pub fn rs384(client_id: &str) -> SmartClient {
        SmartClient {
            client_id: client_id.to_owned(),
            key: Key::Rs(
                signature::RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap(),
            ),
        }
    }

    /// The JWS algorithm its assertions are signed with.
    pub fn alg(&self) -> &'static str {
        match self.key {
            Key::Es(_) => "ES384",
            Key::Rs(_) => "RS384",
        }
    }

    /// The public key set, as the `jwks` of its `[[smart.clients]]` entry.
    pub fn jwks(&self) -> String {
        let jwk = match &self.key {
            Key::Es(k) => {
                let point = k.public_key().as_ref();
                assert_eq!(point.len(), 97, "uncompressed P-384 point");
                json!({"kty": "EC", "crv": "P-384", "kid": "k1", "alg": "ES384",
                       "x": b64(&point[1..49]), "y": b64(&point[49..])})
            }
            Key::Rs(k) => {
                let public = k.public_key();
                let n = public.modulus().big_endian_without_leading_zero();
                let e = public.exponent().big_endian_without_leading_zero();
                json!({"kty": "RSA", "kid": "k1", "alg": "RS384", "n": b64(n), "e": b64(e)})
            }
        };
        json!({ "keys": [jwk] }).to_string()
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
        let header = json!({"alg": self.alg(), "kid": "k1", "typ": "JWT"});
        let claims = json!({
            "iss": self.client_id, "sub": self.client_id, "aud": aud,
            "exp": now + 240, "jti": super::redis::unique_prefix("jti"),
        });
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
