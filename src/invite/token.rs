//! Upload-invitation tokens: capability tokens signed with a key derived from the link
//! keys (`links::derived`, info `sallyport upload invitation v1`), and the
//! [`InvitationTokens`] authenticator that accepts them.
//!
//! A token is five `~`-separated fields, all in the RFC 6750 `b64token` alphabet:
//!
//! ```text
//! inv1~<key id>~<invitation id>~<expires, Unix seconds>~<base64url(HMAC-SHA256(key, "inv1~<key id>~<id>~<expires>"))>
//! ```
//!
//! It names nothing but the invitation's random id and its expiry: no partner, no file
//! name, no PHI. The invitation's record in the state store says what the token allows;
//! the token only proves its holder was given it. The authenticator checks the MAC (in
//! constant time) and nothing stateful: whether the invitation is revoked, expired or
//! used up is the invitation service's check, made on every request with a specific
//! answer (410 `invitation.revoked`…), where a stateless refusal could only say 401.
//!
//! Not here: what an invitation allows (`invite.rs`).

use std::sync::Arc;

use base64::Engine as _;
use http::request::Parts;

use crate::auth::{
    AuthError, AuthMethod, AuthOutcome, Authenticator, ClientIdentity, ClientName, InvitationPass,
    Principal, RoleSet,
};
use crate::ids::OpaqueId;
use crate::links::config::LinkKeySetting;
use crate::links::derived::DerivedKeys;

/// The token prefix (and format version).
pub const PREFIX: &str = "inv1";
const INFO: &[u8] = b"sallyport upload invitation v1";
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;
/// Longest token accepted (a key id is at most 64 characters).
const MAX_LEN: usize = 256;

/// Why a presented token is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not five fields of the right shape.
    #[error("malformed invitation token")]
    Malformed,
    /// Its key is unknown or retired, or the MAC does not match.
    #[error("invitation token not signed by this gateway")]
    BadSignature,
}

/// The invitation token keys.
#[derive(Debug)]
pub struct InvitationKeys(DerivedKeys);

impl InvitationKeys {
    /// Derives the keys from the link keys; `None` when no link key signs.
    pub fn derive(links: &[LinkKeySetting]) -> Option<Self> {
        DerivedKeys::derive(links, INFO).map(Self)
    }

    /// The signing key's id.
    pub fn signer_id(&self) -> &str {
        self.0.signer_id()
    }

    /// The token for invitation `id`, valid until `expires_at`.
    pub fn mint(&self, id: OpaqueId, expires_at: u64) -> String {
        let signed = format!("{PREFIX}~{}~{id}~{expires_at}", self.0.signer_id());
        let mac = B64.encode(self.0.sign(signed.as_bytes()));
        format!("{signed}~{mac}")
    }

    /// Verifies a token's shape and MAC (not its expiry: see the module docs).
    pub fn verify(&self, token: &str) -> Result<InvitationPass, TokenError> {
        if token.len() > MAX_LEN {
            return Err(TokenError::Malformed);
        }
        let mut fields = token.split('~');
        let (Some(PREFIX), Some(kid), Some(id), Some(exp), Some(tag), None) = (
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
        ) else {
            return Err(TokenError::Malformed);
        };
        let id: OpaqueId = id.parse().map_err(|_| TokenError::Malformed)?;
        // Canonical decimal only: one token per (id, expiry).
        if exp.is_empty() || exp.len() > 20 || (exp.len() > 1 && exp.starts_with('0')) {
            return Err(TokenError::Malformed);
        }
        let expires_at: u64 = exp.parse().map_err(|_| TokenError::Malformed)?;
        let tag = B64.decode(tag).map_err(|_| TokenError::Malformed)?;
        let signed = &token[..token.len() - tag_field_len(token)];
        self.0
            .verify(kid, signed.as_bytes(), &tag)
            .map_err(|_| TokenError::BadSignature)?;
        Ok(InvitationPass {
            id: id.to_string(),
            expires_at,
        })
    }
}

/// The length of `~<tag>` at the end of `token`.
fn tag_field_len(token: &str) -> usize {
    token.rfind('~').map_or(0, |i| token.len() - i)
}

/// Accepts invitation tokens as `Authorization: Bearer inv1~…`; any other credential is
/// not its business.
#[derive(Debug, Clone)]
pub struct InvitationTokens {
    keys: Arc<InvitationKeys>,
}

impl InvitationTokens {
    /// An authenticator over `keys`.
    pub fn new(keys: Arc<InvitationKeys>) -> Self {
        Self { keys }
    }
}

impl Authenticator for InvitationTokens {
    fn authenticate(&self, parts: &Parts) -> AuthOutcome {
        let Some(token) = crate::auth::bearer_with_prefix(parts, "inv1~") else {
            return AuthOutcome::NotApplicable;
        };
        let pass = match self.keys.verify(token) {
            Ok(p) => p,
            Err(_) => return AuthOutcome::Rejected(AuthError::Invalid),
        };
        AuthOutcome::Authenticated(Principal {
            name: ClientName::invitation(&pass.id),
            roles: RoleSet::empty(),
            method: AuthMethod::Invitation,
            tls_client: parts.extensions.get::<ClientIdentity>().cloned(),
            scope: Arc::default(),
            grant: None,
            invitation: Some(Arc::new(pass)),
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

    fn parts(auth: &str) -> Parts {
        http::Request::builder()
            .header("authorization", auth)
            .body(())
            .unwrap()
            .into_parts()
            .0
    }

    #[test]
    fn mint_verify_and_every_tampering_refused() {
        let ring = InvitationKeys::derive(&[keys(KeyState::Current, "k1", &[1; 32])]).unwrap();
        let id = OpaqueId::random();
        let token = ring.mint(id, 1_900_000_000);
        assert!(token.starts_with("inv1~k1~"));
        assert!(
            token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
        );
        let pass = ring.verify(&token).unwrap();
        assert_eq!(pass.id, id.to_string());
        assert_eq!(pass.expires_at, 1_900_000_000);
        // A later expiry, another id, another key id, a flipped MAC: all refused.
        let later = token.replace("~1900000000~", "~1900000001~");
        assert_eq!(ring.verify(&later), Err(TokenError::BadSignature));
        let other = token.replace(&id.to_string(), &OpaqueId::random().to_string());
        assert_eq!(ring.verify(&other), Err(TokenError::BadSignature));
        let kid = token.replacen("~k1~", "~k2~", 1);
        assert_eq!(ring.verify(&kid), Err(TokenError::BadSignature));
        let mut flipped = token.clone().into_bytes();
        let last = flipped.len() - 2;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            ring.verify(std::str::from_utf8(&flipped).unwrap()),
            Err(TokenError::BadSignature)
        );
        for bad in [
            "",
            "inv1",
            "inv1~k1~x~1~AAAA",
            &token.replace("~1900000000~", "~01900000000~"),
            &format!("{token}~extra"),
            &token.replace("inv1~", "inv2~"),
            &"inv1~".repeat(60),
        ] {
            assert_eq!(ring.verify(bad), Err(TokenError::Malformed), "{bad}");
        }
        // The SMART token key and the link key never verify an invitation: another info.
        let smart = DerivedKeys::derive(
            &[keys(KeyState::Current, "k1", &[1; 32])],
            b"sallyport smart access token v1",
        )
        .unwrap();
        let signed = &token[..token.rfind('~').unwrap()];
        let forged = format!("{signed}~{}", B64.encode(smart.sign(signed.as_bytes())));
        assert_eq!(ring.verify(&forged), Err(TokenError::BadSignature));
    }

    #[test]
    fn the_authenticator_takes_only_invitation_bearer_tokens() {
        let ring =
            Arc::new(InvitationKeys::derive(&[keys(KeyState::Current, "k1", &[1; 32])]).unwrap());
        let auth = InvitationTokens::new(ring.clone());
        let token = ring.mint(OpaqueId::random(), 1);
        match auth.authenticate(&parts(&format!("Bearer {token}"))) {
            AuthOutcome::Authenticated(p) => {
                assert!(p.name.as_str().starts_with("invitation:"));
                assert!(p.roles.is_empty());
                assert_eq!(p.method, AuthMethod::Invitation);
                assert!(p.invitation.is_some());
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            auth.authenticate(&parts("Bearer some-api-token")),
            AuthOutcome::NotApplicable
        ));
        assert!(matches!(
            auth.authenticate(&parts("Bearer inv1~k1~nope~1~AAAA")),
            AuthOutcome::Rejected(AuthError::Invalid)
        ));
    }
}
