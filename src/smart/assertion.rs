//! Verifying a SMART Backend Services client assertion (a JWT, RFC 7523 §2.2) against the
//! registered clients. No I/O: the replay check (`jti` in the state store) is the
//! service's. Signature and registered-claim checks are `jsonwebtoken`'s, with exactly
//! one algorithm allowed per key (the key's own, RS384 or ES384); this module only picks
//! the key and adds what SMART requires on top.
//!
//! Order, each refusal with its reason code: size → header (`alg` must be RS384 or ES384:
//! `none` and HS* never reach a verifier) → the client named by `iss` → the key named by
//! `kid` (its algorithm must be the header's) → signature, `iss` = `sub` = client_id, `aud`
//! = the token URL exactly, `exp` not past (with the configured leeway) → `exp` at most
//! five minutes (plus leeway) ahead → a `jti`.

use base64::Engine as _;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;

use super::config::{SmartClient, SmartSettings};

/// Largest assertion accepted (a JWT with an RS384 signature is well under 2 KiB).
pub const MAX_ASSERTION_BYTES: usize = 8 * 1024;
/// How far ahead an assertion's `exp` may be (SMART: five minutes).
pub const MAX_ASSERTION_LIFETIME_SECS: u64 = 300;
/// Longest `jti` accepted.
const MAX_JTI_LEN: usize = 256;

/// A verified assertion.
#[derive(Debug, Clone)]
pub struct Verified<'a> {
    /// The client it authenticates.
    pub client: &'a SmartClient,
    /// The key that signed it.
    pub kid: String,
    /// Its algorithm.
    pub alg: &'static str,
    /// Its `jti`.
    pub jti: String,
    /// Its `exp` (Unix seconds).
    pub exp: u64,
}

/// Why an assertion was refused: a stable reason code, and the registered client when
/// `iss` named one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// The reason code (audited).
    pub reason: &'static str,
    /// The registered client named by `iss`, if any.
    pub client_id: Option<String>,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
    crit: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Unverified {
    iss: Option<String>,
}

/// The claims checked after the signature.
#[derive(Debug, Deserialize)]
struct Claims {
    aud: serde_json::Value,
    exp: u64,
    jti: Option<String>,
}

/// Verifies `assertion` at `now` (Unix seconds).
pub fn verify<'a>(
    settings: &'a SmartSettings,
    assertion: &str,
    now: u64,
) -> Result<Verified<'a>, Rejected> {
    let reject = |reason, client_id: Option<&str>| Rejected {
        reason,
        client_id: client_id.map(str::to_owned),
    };
    if assertion.len() > MAX_ASSERTION_BYTES {
        return Err(reject("assertion_too_large", None));
    }
    let mut parts = assertion.split('.');
    let (Some(header), Some(payload), Some(_sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(reject("malformed_assertion", None));
    };
    let header: Header = decode_part(header).ok_or(reject("malformed_assertion", None))?;
    if header.crit.is_some() {
        // No extension is understood, so none may be critical (RFC 7515 §4.1.11).
        return Err(reject("malformed_assertion", None));
    }
    let alg = match header.alg.as_str() {
        "RS384" => Algorithm::RS384,
        "ES384" => Algorithm::ES384,
        // `none`, HS*, RS256, PS*, EdDSA…: never passed to a verifier.
        _ => return Err(reject("alg_not_allowed", None)),
    };
    // `iss` only selects the client whose keys are tried; it is verified below.
    let unverified: Unverified = decode_part(payload).ok_or(reject("malformed_assertion", None))?;
    let Some(client) = unverified
        .iss
        .as_deref()
        .and_then(|iss| settings.client(iss))
    else {
        return Err(reject("unknown_client", None));
    };
    let cid = Some(client.client_id.as_str());
    let Some(kid) = header.kid else {
        return Err(reject("unknown_kid", cid));
    };
    let Some(key) = client.keys.iter().find(|k| k.kid == kid) else {
        return Err(reject("unknown_kid", cid));
    };
    if key.alg != alg {
        return Err(reject("alg_not_allowed", cid));
    }
    let Some(token_url) = settings.token_url() else {
        return Err(reject("unknown_client", cid));
    };
    let mut validation = Validation::new(key.alg);
    validation.leeway = settings.clock_skew.as_secs();
    validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    validation.set_issuer(&[client.client_id.as_str()]);
    validation.sub = Some(client.client_id.clone());
    validation.set_audience(&[token_url.as_str()]);
    validation.validate_nbf = true;
    let claims = match jsonwebtoken::decode::<Claims>(assertion, &key.key, &validation) {
        Ok(data) => data.claims,
        Err(e) => {
            let reason = match e.kind() {
                ErrorKind::InvalidSignature => "bad_signature",
                ErrorKind::ExpiredSignature => "expired",
                ErrorKind::InvalidAudience => "wrong_aud",
                ErrorKind::InvalidIssuer | ErrorKind::InvalidSubject => "iss_sub_mismatch",
                ErrorKind::ImmatureSignature => "not_yet_valid",
                ErrorKind::MissingRequiredClaim(_) => "missing_claim",
                ErrorKind::InvalidAlgorithm => "alg_not_allowed",
                _ => "malformed_assertion",
            };
            return Err(reject(reason, cid));
        }
    };
    // `aud` is the token URL itself, not a list that contains it.
    if claims.aud.as_str() != Some(token_url.as_str()) {
        return Err(reject("wrong_aud", cid));
    }
    if claims.exp > now + MAX_ASSERTION_LIFETIME_SECS + settings.clock_skew.as_secs() {
        return Err(reject("exp_too_far", cid));
    }
    let jti = match claims.jti {
        Some(j) if !j.is_empty() && j.len() <= MAX_JTI_LEN => j,
        _ => return Err(reject("missing_jti", cid)),
    };
    Ok(Verified {
        client,
        kid,
        alg: if alg == Algorithm::RS384 {
            "RS384"
        } else {
            "ES384"
        },
        jti,
        exp: claims.exp,
    })
}

fn decode_part<T: serde::de::DeserializeOwned>(part: &str) -> Option<T> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}
