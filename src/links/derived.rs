//! Keys derived from the link keys for the gateway's other HMAC-signed credentials (SMART
//! access tokens, upload invitations).
//!
//! Each credential kind names its own HKDF-SHA256 `info` string; its key for link key `k`
//! is `HKDF-SHA256(ikm = k's secret, info)`. So every instance that shares the link keys
//! (as instances sharing a store must, for links) verifies every other's credentials,
//! rotating the link keys rotates these, retiring a link key retires them, and a MAC made
//! for one kind (or for a link) can never pass for another kind's. The current link key's
//! derivation signs; current and verify-only ones verify; retired ones are dropped.
//!
//! Not here: the credentials' formats (each kind's module).

use hmac::{KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::config::{KeyState, LinkKeySetting};

#[derive(Clone)]
struct DerivedKey {
    id: String,
    key: Zeroizing<[u8; 32]>,
    signs: bool,
}

/// The keys of one credential kind, derived from the link keys.
pub struct DerivedKeys {
    /// Every key that verifies (the signer too).
    keys: Vec<DerivedKey>,
    /// The key that signs.
    signer: DerivedKey,
}

impl std::fmt::Debug for DerivedKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DerivedKeys")
            .field("ids", &self.keys.iter().map(|k| &k.id).collect::<Vec<_>>())
            .finish()
    }
}

/// Why a MAC does not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DerivedKeyError {
    /// No current or verify-only link key has that id.
    #[error("unknown key")]
    UnknownKey,
    /// The MAC does not match.
    #[error("bad MAC")]
    BadMac,
}

impl DerivedKeys {
    /// Derives a key under `info` from every current or verify-only link key; the current
    /// one signs. `None` when no link key signs (validation makes exactly one current).
    pub fn derive(links: &[LinkKeySetting], info: &[u8]) -> Option<Self> {
        let mut keys = Vec::new();
        for k in links {
            let (Some(secret), signs) = (&k.secret, k.state == KeyState::Current) else {
                continue;
            };
            if k.state == KeyState::Retired {
                continue;
            }
            let mut okm = Zeroizing::new([0u8; 32]);
            hkdf::Hkdf::<Sha256>::new(None, secret.expose())
                .expand(info, okm.as_mut())
                .ok()?;
            keys.push(DerivedKey {
                id: k.id.as_str().to_owned(),
                key: okm,
                signs,
            });
        }
        let signer = keys.iter().find(|k| k.signs)?.clone();
        Some(Self { keys, signer })
    }

    /// The signing key's id (the link key's).
    pub fn signer_id(&self) -> &str {
        &self.signer.id
    }

    /// HMAC-SHA256 of `data` under the signing key.
    pub fn sign(&self, data: &[u8]) -> Vec<u8> {
        mac(&self.signer.key, data)
    }

    /// Checks `tag` against HMAC-SHA256 of `data` under key `kid`, in constant time.
    pub fn verify(&self, kid: &str, data: &[u8], tag: &[u8]) -> Result<(), DerivedKeyError> {
        let key = self
            .keys
            .iter()
            .find(|k| k.id == kid)
            .ok_or(DerivedKeyError::UnknownKey)?;
        let expected = mac(&key.key, data);
        if bool::from(expected.as_slice().ct_eq(tag)) {
            Ok(())
        } else {
            Err(DerivedKeyError::BadMac)
        }
    }
}

fn mac(key: &[u8; 32], data: &[u8]) -> Vec<u8> {
    let Ok(mut m) = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(key) else {
        // HMAC takes a key of any length.
        return Vec::new();
    };
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn key(state: KeyState, id: &str, secret: &[u8]) -> LinkKeySetting {
        LinkKeySetting {
            id: id.parse().unwrap(),
            state,
            secret: Some(Secret::new(secret.to_vec())),
        }
    }

    #[test]
    fn kinds_do_not_verify_each_other_and_rotation_keeps_verify_only_keys() {
        let links = [
            key(KeyState::Current, "k2", &[2; 32]),
            key(KeyState::Verify, "k1", &[1; 32]),
            key(KeyState::Retired, "k0", &[0; 32]),
        ];
        let a = DerivedKeys::derive(&links, b"kind a").unwrap();
        let b = DerivedKeys::derive(&links, b"kind b").unwrap();
        assert_eq!(a.signer_id(), "k2");
        let tag = a.sign(b"data");
        assert_eq!(a.verify("k2", b"data", &tag), Ok(()));
        assert_eq!(b.verify("k2", b"data", &tag), Err(DerivedKeyError::BadMac));
        assert_eq!(a.verify("k2", b"datA", &tag), Err(DerivedKeyError::BadMac));
        assert_eq!(
            a.verify("k0", b"data", &tag),
            Err(DerivedKeyError::UnknownKey)
        );
        // After rotation k2 is verify-only: what it signed still verifies.
        let rotated = [
            key(KeyState::Current, "k3", &[3; 32]),
            key(KeyState::Verify, "k2", &[2; 32]),
        ];
        let a2 = DerivedKeys::derive(&rotated, b"kind a").unwrap();
        assert_eq!(a2.verify("k2", b"data", &tag), Ok(()));
        assert_eq!(a2.signer_id(), "k3");
        assert!(DerivedKeys::derive(&[key(KeyState::Verify, "k1", &[1; 32])], b"x").is_none());
    }
}
