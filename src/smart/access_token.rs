//! SMART access tokens: stateless, HMAC-SHA256-signed bearer tokens (decision record
//! `docs/decisions/0007-smart-access-tokens.md`), and the [`SmartTokens`] authenticator
//! that accepts them.
//!
//! A token is four `~`-separated fields, all in the RFC 6750 `b64token` alphabet:
//!
//! ```text
//! spat1~<key id>~<base64url(JSON claims)>~<base64url(HMAC-SHA256(token key, "spat1~<key id>~<claims>"))>
//! ```
//!
//! The claims are `{"cid": client_id, "scope": granted scope, "iat", "exp", "tid": random
//! token id}`. The token key of each link key is HKDF-SHA256 of that key's secret with the
//! info string `sallyport smart access token v1`: every instance that shares the link keys
//! (as instances sharing a store must, for links) verifies every other's tokens, rotating
//! the link keys rotates these, and a link MAC can never pass for a token MAC. A token is
//! refused after `exp` (no leeway: the gateway issued it), when its key is retired or
//! unknown, when the MAC does not match (compared in constant time), or when its client is
//! no longer registered.
//!
//! Not here: issuing (the token endpoint flow in `smart`).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use http::request::Parts;
use serde::{Deserialize, Serialize};

use super::config::SmartSettings;
use crate::auth::{
    AccessGrant, AuthError, AuthMethod, AuthOutcome, Authenticator, ClientIdentity, Principal,
};
use crate::links::config::LinkKeySetting;
use crate::links::derived::{DerivedKeyError, DerivedKeys};

/// The token prefix (and format version).
pub const PREFIX: &str = "spat1";
const INFO: &[u8] = b"sallyport smart access token v1";
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The claims a token carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessClaims {
    /// The client it was issued to.
    pub cid: String,
    /// The granted scope, space separated.
    pub scope: String,
    /// Issued at (Unix seconds).
    pub iat: u64,
    /// Expires at (Unix seconds).
    pub exp: u64,
    /// Random token id (what the audit trail names).
    pub tid: String,
}

/// Why a presented token is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not four fields of the right shape.
    #[error("malformed access token")]
    Malformed,
    /// Its key is unknown or retired.
    #[error("unknown token key")]
    UnknownKey,
    /// The MAC does not match.
    #[error("bad token MAC")]
    BadMac,
    /// Past `exp`.
    #[error("expired access token")]
    Expired,
}

/// The token keys, derived from the link keys (`links::derived`).
#[derive(Debug)]
pub struct TokenKeys(DerivedKeys);

impl TokenKeys {
    /// Derives a token key from every current or verify-only link key; the current one
    /// signs. `None` when no link key signs (validation makes exactly one current).
    pub fn derive(links: &[LinkKeySetting]) -> Option<Self> {
        DerivedKeys::derive(links, INFO).map(Self)
    }

    /// Mints a token for `claims`.
    pub fn mint(&self, claims: &AccessClaims) -> String {
        let payload = B64.encode(serde_json::to_vec(claims).unwrap_or_default());
        let signed = format!("{PREFIX}~{}~{payload}", self.0.signer_id());
        let mac = B64.encode(self.0.sign(signed.as_bytes()));
        format!("{signed}~{mac}")
    }

    /// Verifies a presented token at `now` (Unix seconds).
    pub fn verify(&self, token: &str, now: u64) -> Result<AccessClaims, TokenError> {
        let mut fields = token.split('~');
        let (Some(PREFIX), Some(kid), Some(payload), Some(tag), None) = (
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
        ) else {
            return Err(TokenError::Malformed);
        };
        let tag = B64.decode(tag).map_err(|_| TokenError::Malformed)?;
        let signed_len = token.len() - tag_len(token);
        self.0
            .verify(kid, &token.as_bytes()[..signed_len], &tag)
            .map_err(|e| match e {
                DerivedKeyError::UnknownKey => TokenError::UnknownKey,
                DerivedKeyError::BadMac => TokenError::BadMac,
            })?;
        let json = B64.decode(payload).map_err(|_| TokenError::Malformed)?;
        let claims: AccessClaims =
            serde_json::from_slice(&json).map_err(|_| TokenError::Malformed)?;
        if now >= claims.exp {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

/// The length of `~<tag>` at the end of a token with four fields.
fn tag_len(token: &str) -> usize {
    token.rfind('~').map_or(0, |i| token.len() - i)
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Accepts SMART access tokens as `Authorization: Bearer spat1~…`; any other credential
/// is not its business.
#[derive(Debug, Clone)]
pub struct SmartTokens {
    keys: Arc<TokenKeys>,
    settings: Arc<SmartSettings>,
}

impl SmartTokens {
    /// An authenticator over `keys` for the clients of `settings`.
    pub fn new(keys: Arc<TokenKeys>, settings: Arc<SmartSettings>) -> Self {
        Self { keys, settings }
    }
}

impl Authenticator for SmartTokens {
    fn authenticate(&self, parts: &Parts) -> AuthOutcome {
        let Some(token) = crate::auth::bearer_with_prefix(parts, "spat1~") else {
            return AuthOutcome::NotApplicable;
        };
        let claims = match self.keys.verify(token, unix_now()) {
            Ok(c) => c,
            Err(_) => return AuthOutcome::Rejected(AuthError::Invalid),
        };
        // A client removed from the configuration loses its tokens at once.
        let Some(client) = self.settings.client(&claims.cid) else {
            return AuthOutcome::Rejected(AuthError::Invalid);
        };
        let cert = parts.extensions.get::<ClientIdentity>();
        if client.cert.is_set() && !client.cert.matches(cert) {
            return AuthOutcome::Rejected(AuthError::CertificateRequired);
        }
        AuthOutcome::Authenticated(Principal {
            name: client.principal.clone(),
            roles: client.roles,
            method: AuthMethod::SmartAccessToken,
            tls_client: cert.cloned(),
            scope: Arc::default(),
            grant: Some(Arc::new(AccessGrant {
                client_id: claims.cid,
                scope: claims.scope,
                token_id: claims.tid,
                expires_at: claims.exp,
            })),
            invitation: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::links::config::KeyState;
    use crate::secret::Secret;

    fn keys(state: KeyState, id: &str, secret: &[u8]) -> LinkKeySetting {
        LinkKeySetting {
            id: id.parse().unwrap(),
            state,
            secret: Some(Secret::new(secret.to_vec())),
        }
    }

    fn claims(exp: u64) -> AccessClaims {
        AccessClaims {
            cid: "bulk-client".into(),
            scope: "system/*.read".into(),
            iat: exp - 300,
            exp,
            tid: "t1".into(),
        }
    }

    #[test]
    fn mint_verify_and_every_refusal() {
        let ring = TokenKeys::derive(&[
            keys(KeyState::Current, "k2", &[2; 32]),
            keys(KeyState::Verify, "k1", &[1; 32]),
        ])
        .unwrap();
        let t = ring.mint(&claims(1_000));
        assert!(t.starts_with("spat1~k2~"), "{t}");
        assert_eq!(ring.verify(&t, 999).unwrap(), claims(1_000));
        assert_eq!(ring.verify(&t, 1_000), Err(TokenError::Expired));
        // A token of the verify-only key still verifies after rotation.
        let old = TokenKeys::derive(&[keys(KeyState::Current, "k1", &[1; 32])]).unwrap();
        let t1 = old.mint(&claims(1_000));
        assert!(ring.verify(&t1, 10).is_ok());
        // Another secret under the same id: bad MAC.
        let forged = TokenKeys::derive(&[keys(KeyState::Current, "k2", &[9; 32])]).unwrap();
        assert_eq!(
            ring.verify(&forged.mint(&claims(1_000)), 10),
            Err(TokenError::BadMac)
        );
        // A changed claim breaks the MAC.
        let mut parts: Vec<&str> = t.split('~').collect();
        let other = B64.encode(
            serde_json::to_vec(&AccessClaims {
                scope: "system/*.*".into(),
                ..claims(1_000)
            })
            .unwrap(),
        );
        parts[2] = &other;
        assert_eq!(ring.verify(&parts.join("~"), 10), Err(TokenError::BadMac));
        let retired = TokenKeys::derive(&[keys(KeyState::Current, "k3", &[3; 32])]).unwrap();
        assert_eq!(
            retired.verify(&t, 10),
            Err(TokenError::UnknownKey),
            "k2 unknown there"
        );
        for bad in [
            "",
            "spat1",
            "spat1~k2~a~b~c",
            "spat2~k2~a~b",
            "spat1~k2~!!~!!",
        ] {
            assert!(ring.verify(bad, 10).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn link_and_token_keys_differ() {
        let ring = TokenKeys::derive(&[keys(KeyState::Current, "k", &[7; 32])]).unwrap();
        use hmac::{KeyInit, Mac};
        let mut raw = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&[7u8; 32]).unwrap();
        raw.update(b"data");
        // The token key is derived: a MAC under the link secret itself is not a token MAC.
        assert_ne!(ring.0.sign(b"data"), raw.finalize().into_bytes().to_vec());
        assert_eq!(ring.0.verify("k", b"data", &ring.0.sign(b"data")), Ok(()));
    }
}
