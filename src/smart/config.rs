//! The `[smart]` section: the gateway's public base URL (the token URL every client
//! assertion's `aud` must name), the access-token lifetime, the clock-skew leeway, and the
//! registered SMART Backend Services clients (`[[smart.clients]]`) with their public JWKS.
//!
//! Validation refuses, naming the key: a JWKS key without `kid` or with a duplicate one,
//! an algorithm other than RS384 or ES384 (an RSA modulus under 2048 bits, an EC key not on
//! P-384), any private-key member (`d`, `p`, `q`, `dp`, `dq`, `qi`, `oth`, `k`: a JWKS that
//! holds one was published by mistake and the key must be considered leaked), and a
//! lifetime above 300 s.
//!
//! Not here: verifying assertions (`smart::assertion`), the token format
//! (`smart::access_token`).

use std::path::Path;
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;

use super::scope::{Scope, parse_list};
use crate::auth::{CertBinding, ClientName, Role, RoleSet};
use crate::config::units::parse_duration;

/// The longest access-token lifetime SMART allows (and the default).
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(300);
/// The largest clock-skew leeway accepted.
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(120);
/// Largest JWKS file or inline value.
const MAX_JWKS_BYTES: usize = 64 * 1024;
/// Most keys one client's JWKS may hold.
const MAX_KEYS: usize = 16;
/// JWK members that only a private key has.
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// The `[smart]` table as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSmartConfig {
    /// `https://host[:port]`: the token URL is this plus `/auth/token`.
    pub public_base_url: Option<String>,
    /// How long an access token lives (at most 300 s).
    pub access_token_lifetime: Option<String>,
    /// Leeway for assertion `exp` checks.
    pub clock_skew: Option<String>,
    /// Registered clients.
    #[serde(default)]
    pub clients: Vec<RawSmartClient>,
}

/// One `[[smart.clients]]` entry as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSmartClient {
    /// The OAuth `client_id` (the assertion's `iss` and `sub`).
    pub client_id: String,
    /// The public JWKS as JSON text.
    pub jwks: Option<String>,
    /// A file holding the public JWKS.
    pub jwks_file: Option<String>,
    /// The scopes the client may be granted.
    pub scopes: Vec<String>,
    /// The Sallyport principal its tokens act as.
    pub principal: String,
    /// The principal's roles (may be empty: a Bulk Data client needs only its scopes).
    #[serde(default)]
    pub roles: Vec<String>,
    /// The SHA-256 of the TLS client certificate it must present too.
    pub cert_sha256: Option<String>,
    /// A subject alternative name that certificate must carry (`dns:…`, `uri:…`,
    /// `email:…`).
    pub cert_san: Option<String>,
}

/// A config problem in `[smart]`, naming the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmartConfigError {
    /// Dotted key.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

fn err(key: impl Into<String>, message: impl Into<String>) -> SmartConfigError {
    SmartConfigError {
        key: key.into(),
        message: message.into(),
    }
}

/// The validated `[smart]` section.
#[derive(Debug, Clone)]
pub struct SmartSettings {
    /// The public base URL, `None` when no client is registered and none is configured.
    pub public_base_url: Option<String>,
    /// Access-token lifetime (1 s to 300 s; default 300 s).
    pub access_token_lifetime: Duration,
    /// Leeway for assertion `exp` (default 30 s, at most 120 s).
    pub clock_skew: Duration,
    /// The registered clients.
    pub clients: Vec<SmartClient>,
}

impl Default for SmartSettings {
    fn default() -> Self {
        Self {
            public_base_url: None,
            access_token_lifetime: MAX_TOKEN_LIFETIME,
            clock_skew: Duration::from_secs(30),
            clients: Vec::new(),
        }
    }
}

impl SmartSettings {
    /// The token endpoint's absolute URL (`aud` of every assertion).
    pub fn token_url(&self) -> Option<String> {
        self.public_base_url
            .as_deref()
            .map(|b| format!("{b}{TOKEN_PATH}"))
    }

    /// The client with this id.
    pub fn client(&self, client_id: &str) -> Option<&SmartClient> {
        self.clients.iter().find(|c| c.client_id == client_id)
    }
}

/// The token endpoint's path.
pub const TOKEN_PATH: &str = "/auth/token";

/// A registered client.
#[derive(Debug, Clone)]
pub struct SmartClient {
    /// Its `client_id`: 1–128 characters of `[A-Za-z0-9._~-]`.
    pub client_id: String,
    /// Its public keys.
    pub keys: Vec<ClientKey>,
    /// What it may be granted.
    pub scopes: Vec<Scope>,
    /// The principal its tokens act as.
    pub principal: ClientName,
    /// That principal's roles.
    pub roles: RoleSet,
    /// The certificate it must also present (its SHA-256, a SAN, or both; unset: none).
    pub cert: CertBinding,
}

/// One public key of a client, with the one algorithm it may verify.
#[derive(Clone)]
pub struct ClientKey {
    /// The JWK `kid`.
    pub kid: String,
    /// RS384 or ES384.
    pub alg: Algorithm,
    /// The verification key.
    pub key: DecodingKey,
}

impl std::fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl SmartSettings {
    /// Validates the raw table; `links_base_url` is the fallback public base URL.
    pub fn from_raw(
        raw: &RawSmartConfig,
        links_base_url: Option<&str>,
    ) -> Result<Self, SmartConfigError> {
        let public_base_url = match raw.public_base_url.as_deref() {
            Some(u) => Some(base_url(u).ok_or_else(|| {
                err(
                    "smart.public_base_url",
                    "must be https://host[:port] (no path, no trailing slash)",
                )
            })?),
            None => links_base_url.map(str::to_owned),
        };
        let access_token_lifetime = match raw.access_token_lifetime.as_deref() {
            None => MAX_TOKEN_LIFETIME,
            Some(v) => parse_duration(v).map_err(|m| err("smart.access_token_lifetime", m))?,
        };
        if access_token_lifetime.as_secs() < 1 || access_token_lifetime > MAX_TOKEN_LIFETIME {
            return Err(err(
                "smart.access_token_lifetime",
                "must be from 1s to 300s (SMART Backend Services tokens live at most 5 minutes)",
            ));
        }
        let clock_skew = match raw.clock_skew.as_deref() {
            None => Duration::from_secs(30),
            Some(v) => parse_duration(v).map_err(|m| err("smart.clock_skew", m))?,
        };
        if clock_skew > MAX_CLOCK_SKEW {
            return Err(err("smart.clock_skew", "must be at most 120s"));
        }
        let mut clients: Vec<SmartClient> = Vec::with_capacity(raw.clients.len());
        for (i, c) in raw.clients.iter().enumerate() {
            let client = client(c, &|k: &str| format!("smart.clients[{i}].{k}"))?;
            if clients.iter().any(|o| o.client_id == client.client_id) {
                return Err(err(
                    format!("smart.clients[{i}].client_id"),
                    format!("{:?} appears twice", client.client_id),
                ));
            }
            clients.push(client);
        }
        if !clients.is_empty() && public_base_url.is_none() {
            return Err(err(
                "smart.public_base_url",
                "is required when [[smart.clients]] are registered (or set \
                 links.public_base_url): every client assertion's `aud` must name the \
                 token URL exactly",
            ));
        }
        Ok(Self {
            public_base_url,
            access_token_lifetime,
            clock_skew,
            clients,
        })
    }
}

fn client(
    c: &RawSmartClient,
    key: &dyn Fn(&str) -> String,
) -> Result<SmartClient, SmartConfigError> {
    if !is_client_id(&c.client_id) {
        return Err(err(
            key("client_id"),
            "must be 1 to 128 characters of A-Z, a-z, 0-9, '.', '_', '~' and '-'",
        ));
    }
    let text = match (&c.jwks, &c.jwks_file) {
        (Some(t), None) => t.clone(),
        (None, Some(f)) => read_jwks_file(Path::new(f)).map_err(|m| err(key("jwks_file"), m))?,
        _ => {
            return Err(err(
                key("jwks"),
                "set exactly one of jwks (the JSON text) or jwks_file",
            ));
        }
    };
    let jwks_key = if c.jwks.is_some() {
        "jwks"
    } else {
        "jwks_file"
    };
    let keys = parse_jwks(&text).map_err(|m| err(key(jwks_key), m))?;
    if c.scopes.is_empty() {
        return Err(err(key("scopes"), "a client needs at least one scope"));
    }
    let mut scopes = Vec::new();
    for s in &c.scopes {
        let parsed = parse_list(s).ok().filter(|l| l.len() == 1).ok_or_else(|| {
            err(
                key("scopes"),
                format!(
                    "{s:?} is not a SMART system scope (examples: system/*.read, \
                         system/Patient.rs)"
                ),
            )
        })?;
        scopes.extend(parsed);
    }
    let principal: ClientName = c
        .principal
        .parse()
        .map_err(|m: String| err(key("principal"), m))?;
    let mut roles = RoleSet::empty();
    for r in &c.roles {
        let role: Role = r.parse().map_err(|m: String| err(key("roles"), m))?;
        roles.insert(role);
    }
    let cert = CertBinding::from_config(c.cert_sha256.as_deref(), c.cert_san.as_deref())
        .map_err(|(k, m)| err(key(k), m))?;
    Ok(SmartClient {
        client_id: c.client_id.clone(),
        keys,
        scopes,
        principal,
        roles,
        cert,
    })
}

/// `client_id` syntax: unreserved URI characters, so it is safe in logs and audit entries.
pub fn is_client_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._~-".contains(&b))
}

fn base_url(u: &str) -> Option<String> {
    let rest = u
        .strip_prefix("https://")
        .or_else(|| u.strip_prefix("http://"))?;
    let ok = !rest.is_empty()
        && rest.len() <= 253
        && rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b));
    ok.then(|| u.to_owned())
}

fn read_jwks_file(path: &Path) -> Result<String, String> {
    let meta =
        std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if meta.len() > MAX_JWKS_BYTES as u64 {
        return Err(format!("{} is larger than 64 KiB", path.display()));
    }
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

#[derive(Deserialize)]
struct RawJwks {
    keys: Vec<serde_json::Map<String, serde_json::Value>>,
}

/// Parses a public JWKS into keys, each pinned to one algorithm.
pub fn parse_jwks(text: &str) -> Result<Vec<ClientKey>, String> {
    if text.len() > MAX_JWKS_BYTES {
        return Err("the JWKS is larger than 64 KiB".into());
    }
    let jwks: RawJwks =
        serde_json::from_str(text).map_err(|e| format!("not a JWKS ({{\"keys\":[…]}}): {e}"))?;
    if jwks.keys.is_empty() || jwks.keys.len() > MAX_KEYS {
        return Err(format!("a JWKS needs 1 to {MAX_KEYS} keys"));
    }
    let mut out: Vec<ClientKey> = Vec::with_capacity(jwks.keys.len());
    for (i, jwk) in jwks.keys.iter().enumerate() {
        let key = jwk_key(jwk).map_err(|m| format!("keys[{i}]: {m}"))?;
        if out.iter().any(|k| k.kid == key.kid) {
            return Err(format!("keys[{i}]: kid {:?} appears twice", key.kid));
        }
        out.push(key);
    }
    Ok(out)
}

fn jwk_key(jwk: &serde_json::Map<String, serde_json::Value>) -> Result<ClientKey, String> {
    let text = |name: &str| jwk.get(name).and_then(|v| v.as_str());
    if let Some(m) = PRIVATE_MEMBERS.iter().find(|m| jwk.contains_key(**m)) {
        return Err(format!(
            "holds private key material ({m:?}): publish only the public key, and treat \
             this key as leaked"
        ));
    }
    let kid = text("kid").ok_or("has no kid (every key needs a unique \"kid\")")?;
    if kid.is_empty() || kid.len() > 128 {
        return Err("kid must be 1 to 128 characters".into());
    }
    if let Some(u) = text("use")
        && u != "sig"
    {
        return Err(format!(
            "\"use\" is {u:?}; a client assertion key has \"sig\""
        ));
    }
    let kty = text("kty").ok_or("has no kty")?;
    let alg = match (text("alg"), kty) {
        (Some("RS384") | None, "RSA") => Algorithm::RS384,
        (Some("ES384") | None, "EC") => Algorithm::ES384,
        (Some(a), _) => {
            return Err(format!(
                "alg {a:?} with kty {kty:?} is not supported (RS384 with RSA, ES384 with EC)"
            ));
        }
        (None, k) => return Err(format!("kty {k:?} is not supported (RSA or EC)")),
    };
    let key = match alg {
        Algorithm::RS384 => {
            let n = text("n").ok_or("an RSA key needs n and e")?;
            let e = text("e").ok_or("an RSA key needs n and e")?;
            let modulus = b64url(n).ok_or("n is not base64url")?;
            if modulus.len() < 256 {
                return Err("an RSA modulus of fewer than 2048 bits is refused".into());
            }
            DecodingKey::from_rsa_components(n, e).map_err(|e| format!("bad RSA key: {e}"))?
        }
        _ => {
            if text("crv") != Some("P-384") {
                return Err("an ES384 key is on curve P-384 (\"crv\": \"P-384\")".into());
            }
            let x = text("x").ok_or("an EC key needs x and y")?;
            let y = text("y").ok_or("an EC key needs x and y")?;
            if b64url(x).map(|v| v.len()) != Some(48) || b64url(y).map(|v| v.len()) != Some(48) {
                return Err("x and y of a P-384 key are 48 bytes each, base64url".into());
            }
            DecodingKey::from_ec_components(x, y).map_err(|e| format!("bad EC key: {e}"))?
        }
    };
    Ok(ClientKey {
        kid: kid.to_owned(),
        alg,
        key,
    })
}

fn b64url(s: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const X: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

    fn ec(extra: &str) -> String {
        format!(r#"{{"keys":[{{"kty":"EC","crv":"P-384","x":"{X}","y":"{X}"{extra}}}]}}"#)
    }

    #[test]
    fn jwks_refusals_name_the_problem() {
        assert!(parse_jwks(&ec(r#","kid":"a""#)).is_ok());
        let e = parse_jwks(&ec("")).unwrap_err();
        assert!(e.contains("no kid"), "{e}");
        let e = parse_jwks(&ec(r#","kid":"a","d":"AAAA""#)).unwrap_err();
        assert!(e.contains("private key material"), "{e}");
        let e = parse_jwks(&ec(r#","kid":"a","alg":"ES256""#)).unwrap_err();
        assert!(e.contains("not supported"), "{e}");
        let e = parse_jwks(&ec(r#","kid":"a","alg":"HS256""#)).unwrap_err();
        assert!(e.contains("not supported"), "{e}");
        let two = format!(
            r#"{{"keys":[{{"kty":"EC","crv":"P-384","x":"{X}","y":"{X}","kid":"a"}},{{"kty":"EC","crv":"P-384","x":"{X}","y":"{X}","kid":"a"}}]}}"#
        );
        let e = parse_jwks(&two).unwrap_err();
        assert!(e.contains("appears twice"), "{e}");
        let e = parse_jwks(r#"{"keys":[{"kty":"oct","k":"AAAA","kid":"h"}]}"#).unwrap_err();
        assert!(e.contains("private key material"), "{e}");
        let e =
            parse_jwks(r#"{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB","kid":"r"}]}"#).unwrap_err();
        assert!(e.contains("2048"), "{e}");
        assert!(parse_jwks(r#"{"keys":[]}"#).is_err());
    }

    #[test]
    fn lifetime_never_above_300s() {
        let raw = RawSmartConfig {
            access_token_lifetime: Some("301s".into()),
            ..Default::default()
        };
        let e = SmartSettings::from_raw(&raw, None).unwrap_err();
        assert_eq!(e.key, "smart.access_token_lifetime");
        let raw = RawSmartConfig {
            access_token_lifetime: Some("5s".into()),
            ..Default::default()
        };
        let s = SmartSettings::from_raw(&raw, None).unwrap();
        assert_eq!(s.access_token_lifetime, Duration::from_secs(5));
    }
}
