//! The link keyring: several HMAC-SHA256 keys by id, signing and verification.
//!
//! One key is *current* (new links are signed with it), others are *verify-only* (links
//! they signed still work during a rotation), and *retired* ids are remembered without any
//! secret so their links are refused with a specific reason. Each key is turned into a
//! pre-keyed HMAC state once (the inner and outer pads hashed) and that state is cloned per
//! request, which BASELINE.md §1 measured 26–36 % faster than keying every call. The
//! keyring keeps no raw secret; the HMAC states are zeroised on drop (the `zeroize`
//! features of `hmac` and `sha2`), and `Debug` prints key ids and states only.
//!
//! A keyring is immutable: rotation builds a new one from config and swaps it in.
//!
//! Not here: reading secrets from config or files, grant checks, rate limiting.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::canonical::canonical_bytes;
use super::claims::{CertFingerprint, LinkClaims, Method, UnixTime};
use super::error::{KeyringError, LinkRejection};
use super::ids::{ArtifactId, GrantId, KeyId};
use super::url::SignedLink;

/// Shortest accepted HMAC secret: 256 bits.
pub const MIN_SECRET_LEN: usize = 32;
/// Longest accepted HMAC secret: one SHA-256 block (longer keys are only hashed down).
pub const MAX_SECRET_LEN: usize = 64;
/// Largest accepted clock-skew allowance.
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(3600);

/// One key as configured.
pub enum LinkKeySpec<'a> {
    /// Signs new links and verifies. Exactly one key is current.
    Current {
        /// The key id.
        id: KeyId,
        /// 32–64 secret bytes; not kept (only the derived HMAC state is).
        secret: &'a [u8],
    },
    /// Verifies links it signed earlier; signs nothing.
    VerifyOnly {
        /// The key id.
        id: KeyId,
        /// 32–64 secret bytes.
        secret: &'a [u8],
    },
    /// Retired: its links are refused with [`LinkRejection::RetiredKey`]. No secret.
    Retired {
        /// The key id.
        id: KeyId,
    },
}

impl fmt::Debug for LinkKeySpec<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Current { id, .. } => write!(f, "Current({id}, <secret>)"),
            Self::VerifyOnly { id, .. } => write!(f, "VerifyOnly({id}, <secret>)"),
            Self::Retired { id } => write!(f, "Retired({id})"),
        }
    }
}

/// What the handler knows about the request presenting a link.
#[derive(Debug, Clone, Copy)]
pub struct LinkRequest<'a> {
    /// The server's current time.
    pub now: UnixTime,
    /// The request method.
    pub method: Method,
    /// The TCP peer address.
    pub client_addr: IpAddr,
    /// The SHA-256 of the client's mTLS end-entity certificate, if it presented one.
    pub client_cert: Option<&'a CertFingerprint>,
}

/// A link whose signature, window, method and bindings all checked out. The handler must
/// still load the grant, check that it is live and covers [`VerifiedLink::artifact`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedLink {
    key_id: KeyId,
    claims: LinkClaims,
}

impl VerifiedLink {
    /// The key that signed the link.
    pub fn key_id(&self) -> &KeyId {
        &self.key_id
    }

    /// The verified claims.
    pub fn claims(&self) -> &LinkClaims {
        &self.claims
    }

    /// The grant backing the link.
    pub fn grant(&self) -> GrantId {
        self.claims.grant()
    }

    /// The artifact the link downloads.
    pub fn artifact(&self) -> ArtifactId {
        self.claims.artifact()
    }

    /// When the link expires.
    pub fn expires(&self) -> UnixTime {
        self.claims.expires()
    }
}

/// An active key: its id and pre-keyed HMAC state (boxed, so moves leave no copies).
struct ActiveKey {
    id: KeyId,
    mac: Box<Hmac<Sha256>>,
}

/// The HMAC keys links are signed and verified with.
pub struct LinkKeyring {
    /// Current and verify-only keys.
    active: Vec<ActiveKey>,
    /// Index of the current key in `active`; `new` guarantees it is in bounds.
    current: usize,
    retired: Vec<KeyId>,
    clock_skew_secs: u64,
}

impl LinkKeyring {
    /// Build a keyring: exactly one current key, unique ids, 32–64-byte secrets, and a
    /// clock-skew allowance (for not-before only) of at most [`MAX_CLOCK_SKEW`].
    pub fn new<'a>(
        specs: impl IntoIterator<Item = LinkKeySpec<'a>>,
        clock_skew: Duration,
    ) -> Result<Self, KeyringError> {
        if clock_skew > MAX_CLOCK_SKEW {
            return Err(KeyringError::ClockSkewTooLarge);
        }
        let mut active: Vec<ActiveKey> = Vec::new();
        let mut retired: Vec<KeyId> = Vec::new();
        let mut current = None;
        for spec in specs {
            let id = match &spec {
                LinkKeySpec::Current { id, .. }
                | LinkKeySpec::VerifyOnly { id, .. }
                | LinkKeySpec::Retired { id } => id,
            };
            if active.iter().any(|k| &k.id == id) || retired.contains(id) {
                return Err(KeyringError::DuplicateKeyId(id.clone()));
            }
            match spec {
                LinkKeySpec::Current { id, secret } => {
                    if current.is_some() {
                        return Err(KeyringError::SeveralCurrentKeys(id));
                    }
                    let mac = prekey(&id, secret)?;
                    current = Some(active.len());
                    active.push(ActiveKey { id, mac });
                }
                LinkKeySpec::VerifyOnly { id, secret } => {
                    let mac = prekey(&id, secret)?;
                    active.push(ActiveKey { id, mac });
                }
                LinkKeySpec::Retired { id } => retired.push(id),
            }
        }
        let current = current.ok_or(KeyringError::NoCurrentKey)?;
        Ok(Self {
            active,
            current,
            retired,
            clock_skew_secs: clock_skew.as_secs(),
        })
    }

    /// The id new links are signed with.
    pub fn current_key_id(&self) -> &KeyId {
        &self.current_key().id
    }

    /// Sign `claims` with the current key; returns the request target (`/d/...?...`).
    /// The result is a bearer credential: hand it out, never log it.
    pub fn sign(&self, claims: &LinkClaims) -> String {
        self.sign_link(claims).to_url()
    }

    /// Sign `claims` with the current key, as a [`SignedLink`] value.
    pub fn sign_link(&self, claims: &LinkClaims) -> SignedLink {
        let key = self.current_key();
        let signature = tag(&key.mac, &key.id, claims);
        SignedLink::from_parts(key.id.clone(), claims.clone(), signature)
    }

    /// Parse and verify a request target in one step.
    pub fn verify_target(
        &self,
        target: &str,
        request: &LinkRequest<'_>,
    ) -> Result<VerifiedLink, LinkRejection> {
        let link = SignedLink::parse(target)?;
        self.verify(&link, request)
    }

    /// Verify a parsed link: key, signature (constant time), window, method, bindings —
    /// in that order, so no claim is judged before the signature has vouched for it.
    pub fn verify(
        &self,
        link: &SignedLink,
        request: &LinkRequest<'_>,
    ) -> Result<VerifiedLink, LinkRejection> {
        let Some(key) = self.active.iter().find(|k| &k.id == link.key_id()) else {
            return Err(if self.retired.contains(link.key_id()) {
                LinkRejection::RetiredKey
            } else {
                LinkRejection::UnknownKey
            });
        };
        let mut mac = (*key.mac).clone();
        mac.update(&canonical_bytes(&key.id, link.unverified_claims()));
        // `verify_slice` compares in constant time (subtle).
        mac.verify_slice(link.signature())
            .map_err(|_| LinkRejection::BadSignature)?;

        let claims = link.unverified_claims();
        let now = request.now.secs();
        if now >= claims.expires().secs() {
            return Err(LinkRejection::Expired);
        }
        if now.saturating_add(self.clock_skew_secs) < claims.not_before().secs() {
            return Err(LinkRejection::NotYetValid);
        }
        if !claims.methods().contains(request.method) {
            return Err(LinkRejection::MethodNotAllowed);
        }
        let bindings = claims.bindings();
        if let Some(net) = bindings.client_net
            && !net.contains(request.client_addr)
        {
            return Err(LinkRejection::ClientAddressMismatch);
        }
        if let Some(bound) = &bindings.client_cert {
            match request.client_cert {
                None => return Err(LinkRejection::ClientCertMissing),
                Some(presented) if presented != bound => {
                    return Err(LinkRejection::ClientCertMismatch);
                }
                Some(_) => {}
            }
        }
        Ok(VerifiedLink {
            key_id: key.id.clone(),
            claims: claims.clone(),
        })
    }

    fn current_key(&self) -> &ActiveKey {
        // Invariant: `new` sets `current` to the index of a key it pushed onto `active`,
        // and `active` is never modified afterwards.
        &self.active[self.current]
    }
}

impl fmt::Debug for LinkKeyring {
    // Key ids and roles only; the HMAC states are key material.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut list = f.debug_list();
        for (i, k) in self.active.iter().enumerate() {
            let role = if i == self.current {
                "current"
            } else {
                "verify-only"
            };
            list.entry(&format_args!("{}: {role}", k.id));
        }
        for id in &self.retired {
            list.entry(&format_args!("{id}: retired"));
        }
        list.finish()?;
        write!(f, " clock_skew={}s", self.clock_skew_secs)
    }
}

fn prekey(id: &KeyId, secret: &[u8]) -> Result<Box<Hmac<Sha256>>, KeyringError> {
    if secret.len() < MIN_SECRET_LEN {
        return Err(KeyringError::SecretTooShort {
            id: id.clone(),
            len: secret.len(),
        });
    }
    if secret.len() > MAX_SECRET_LEN {
        return Err(KeyringError::SecretTooLong {
            id: id.clone(),
            len: secret.len(),
        });
    }
    // HMAC accepts keys of any length; the length was checked above anyway.
    let mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| KeyringError::SecretTooShort {
        id: id.clone(),
        len: secret.len(),
    })?;
    Ok(Box::new(mac))
}

fn tag(prekeyed: &Hmac<Sha256>, id: &KeyId, claims: &LinkClaims) -> [u8; 32] {
    let mut mac = prekeyed.clone();
    mac.update(&canonical_bytes(id, claims));
    mac.finalize().into_bytes().into()
}
