//! KEK versions held in memory, and the DEK wrap/unwrap crypto of the software providers.
//!
//! A [`KekSet`] is one KEK id with numbered versions, one of them current. Wrapping is
//! AES-256-GCM (aws-lc-rs) with a random 96-bit nonce generated inside aws-lc
//! (`RandomizedNonceKey`, the FIPS-approved way to seal with GCM) and the AAD of
//! [`wrap_aad`]; the layout is normative in `proto/at-rest-v1.md` §Key wrapping.
//!
//! Not here: where KEK material comes from (the `keyring` and `static_keks` providers, which
//! build on this module).

use std::collections::BTreeMap;
use std::fmt;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, RandomizedNonceKey, UnboundKey};
use zeroize::Zeroizing;

use super::{
    DEK_ID_LEN, Dek, KEY_LEN, KekId, KekRef, KekState, KekVersionInfo, KeyError, WRAPPED_DEK_LEN,
    WrapContext, WrappedDek,
};

/// Domain label that starts every wrap AAD.
pub const WRAP_AAD_LABEL: &[u8] = b"sallyport/dek-wrap/v1";

/// 256 bits of KEK material, zeroised on drop, never printed.
pub struct KekMaterial(Zeroizing<[u8; KEY_LEN]>);

impl KekMaterial {
    /// Wraps existing bytes (decoded from a keyring or secret file).
    pub fn from_bytes(bytes: Zeroizing<[u8; KEY_LEN]>) -> Self {
        Self(bytes)
    }

    /// Fresh material from the system CSPRNG.
    pub fn generate() -> Result<Self, KeyError> {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        aws_lc_rs::rand::fill(bytes.as_mut()).map_err(|_| KeyError::Random)?;
        Ok(Self(bytes))
    }

    /// The key bytes (for serialising the keyring file).
    pub(crate) fn expose(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for KekMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KekMaterial(<redacted>)")
    }
}

/// One KEK version: its creation time and material (`None` once retired).
#[derive(Debug)]
pub struct KekVersion {
    /// Unix seconds (0 when unknown).
    pub created_unix: u64,
    /// The material; `None` when retired.
    pub material: Option<KekMaterial>,
}

/// One KEK id with its versions.
#[derive(Debug)]
pub struct KekSet {
    id: KekId,
    current: u32,
    versions: BTreeMap<u32, KekVersion>,
}

impl KekSet {
    /// A set; `current` must name a version that has material.
    pub fn new(
        id: KekId,
        current: u32,
        versions: BTreeMap<u32, KekVersion>,
    ) -> Result<Self, String> {
        if versions.contains_key(&0) {
            return Err("KEK versions start at 1".into());
        }
        match versions.get(&current) {
            Some(KekVersion {
                material: Some(_), ..
            }) => Ok(Self {
                id,
                current,
                versions,
            }),
            Some(_) => Err(format!("the current KEK version {current} is retired")),
            None => Err(format!("the current KEK version {current} is not defined")),
        }
    }

    /// A set with one fresh version 1.
    pub fn generate(id: KekId, created_unix: u64) -> Result<Self, KeyError> {
        let mut versions = BTreeMap::new();
        versions.insert(
            1,
            KekVersion {
                created_unix,
                material: Some(KekMaterial::generate()?),
            },
        );
        Ok(Self {
            id,
            current: 1,
            versions,
        })
    }

    /// The KEK id.
    pub fn id(&self) -> &KekId {
        &self.id
    }

    /// The current version number.
    pub fn current_version(&self) -> u32 {
        self.current
    }

    /// The versions, ascending.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &KekVersion)> {
        self.versions.iter().map(|(v, k)| (*v, k))
    }

    /// The current version as a reference.
    pub fn current_ref(&self) -> KekRef {
        self.kek_ref(self.current)
    }

    /// Every version with its state.
    pub fn versions_info(&self) -> Vec<KekVersionInfo> {
        self.versions
            .iter()
            .map(|(&version, v)| KekVersionInfo {
                kek: self.kek_ref(version),
                created_unix: v.created_unix,
                state: if version == self.current {
                    KekState::Current
                } else if v.material.is_some() {
                    KekState::Active
                } else {
                    KekState::Retired
                },
            })
            .collect()
    }

    /// Wraps `dek` for `ctx` under `kek` (the current version when `None`).
    pub fn wrap(
        &self,
        ctx: &WrapContext,
        dek: &Dek,
        kek: Option<&KekRef>,
    ) -> Result<WrappedDek, KeyError> {
        let kek = kek.cloned().unwrap_or_else(|| self.current_ref());
        let material = self.material(&kek)?;
        let key = RandomizedNonceKey::new(&AES_256_GCM, material.expose())
            .map_err(|_| KeyError::Crypto("AES-256-GCM key setup"))?;
        let mut sealed = Zeroizing::new([0u8; WRAPPED_DEK_LEN]);
        sealed[..KEY_LEN].copy_from_slice(dek.expose());
        let (nonce, tag) = key
            .seal_in_place_separate_tag(Aad::from(wrap_aad(ctx, &kek)), &mut sealed[..KEY_LEN])
            .map_err(|_| KeyError::Crypto("AES-256-GCM seal"))?;
        sealed[KEY_LEN..].copy_from_slice(tag.as_ref());
        Ok(WrappedDek {
            kek,
            nonce: *nonce.as_ref(),
            sealed: *sealed,
        })
    }

    /// Unwraps a DEK; fails unless it authenticates for exactly `ctx` and its KEK.
    pub fn unwrap(&self, ctx: &WrapContext, wrapped: &WrappedDek) -> Result<Dek, KeyError> {
        let material = self.material(&wrapped.kek)?;
        let key = LessSafeKey::new(
            UnboundKey::new(&AES_256_GCM, material.expose())
                .map_err(|_| KeyError::Crypto("AES-256-GCM key setup"))?,
        );
        let mut buf = Zeroizing::new(wrapped.sealed);
        let plain = key
            .open_in_place(
                Nonce::assume_unique_for_key(wrapped.nonce),
                Aad::from(wrap_aad(ctx, &wrapped.kek)),
                buf.as_mut(),
            )
            .map_err(|_| KeyError::UnwrapFailed(wrapped.kek.clone()))?;
        let mut dek = Zeroizing::new([0u8; KEY_LEN]);
        // A successful open of 48 bytes yields exactly 32 plaintext bytes.
        if plain.len() != KEY_LEN {
            return Err(KeyError::Crypto("unexpected unwrap length"));
        }
        dek.copy_from_slice(plain);
        Ok(Dek::from_bytes(dek))
    }

    /// Adds a fresh version after the highest one and makes it current.
    pub fn rotate(&mut self, created_unix: u64) -> Result<KekRef, KeyError> {
        let next = self
            .versions
            .keys()
            .next_back()
            .copied()
            .unwrap_or(0)
            .checked_add(1)
            .ok_or(KeyError::Crypto("KEK version numbers exhausted"))?;
        self.versions.insert(
            next,
            KekVersion {
                created_unix,
                material: Some(KekMaterial::generate()?),
            },
        );
        self.current = next;
        Ok(self.kek_ref(next))
    }

    /// Destroys a non-current version's material.
    pub fn retire(&mut self, kek: &KekRef) -> Result<(), KeyError> {
        if kek.id != self.id {
            return Err(KeyError::UnknownKek(kek.clone()));
        }
        if kek.version == self.current {
            return Err(KeyError::RetireCurrent(kek.clone()));
        }
        match self.versions.get_mut(&kek.version) {
            // Dropping the material zeroises it.
            Some(v) => {
                v.material = None;
                Ok(())
            }
            None => Err(KeyError::UnknownKek(kek.clone())),
        }
    }

    fn kek_ref(&self, version: u32) -> KekRef {
        KekRef {
            id: self.id.clone(),
            version,
        }
    }

    fn material(&self, kek: &KekRef) -> Result<&KekMaterial, KeyError> {
        if kek.id != self.id {
            return Err(KeyError::UnknownKek(kek.clone()));
        }
        match self.versions.get(&kek.version) {
            Some(KekVersion {
                material: Some(m), ..
            }) => Ok(m),
            Some(_) => Err(KeyError::RetiredKek(kek.clone())),
            None => Err(KeyError::UnknownKek(kek.clone())),
        }
    }
}

/// The wrap AAD: `"sallyport/dek-wrap/v1" ‖ purpose (1) ‖ object id (16) ‖ DEK id (16) ‖
/// len(KEK id) (1) ‖ KEK id ‖ KEK version (u32 BE)`.
pub fn wrap_aad(ctx: &WrapContext, kek: &KekRef) -> Vec<u8> {
    let id = kek.id.as_str().as_bytes();
    let mut aad = Vec::with_capacity(WRAP_AAD_LABEL.len() + 1 + 16 + DEK_ID_LEN + 1 + id.len() + 4);
    aad.extend_from_slice(WRAP_AAD_LABEL);
    aad.push(ctx.purpose.code());
    aad.extend_from_slice(ctx.object.as_bytes());
    aad.extend_from_slice(&ctx.dek_id);
    // KEK ids are at most 32 bytes (KekId's invariant), so the length fits a byte.
    aad.push(id.len() as u8);
    aad.extend_from_slice(id);
    aad.extend_from_slice(&kek.version.to_be_bytes());
    aad
}

/// Wraps with a chosen nonce, for the golden vectors only.
#[cfg(test)]
pub(crate) fn wrap_with_nonce(
    material: &[u8; KEY_LEN],
    ctx: &WrapContext,
    dek: &[u8; KEY_LEN],
    kek: &KekRef,
    nonce: [u8; 12],
) -> WrappedDek {
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, material).expect("key"));
    let mut sealed = [0u8; WRAPPED_DEK_LEN];
    sealed[..KEY_LEN].copy_from_slice(dek);
    let tag = key
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(wrap_aad(ctx, kek)),
            &mut sealed[..KEY_LEN],
        )
        .expect("seal");
    sealed[KEY_LEN..].copy_from_slice(tag.as_ref());
    WrappedDek {
        kek: kek.clone(),
        nonce,
        sealed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::OpaqueId;
    use crate::keys::DekPurpose;

    fn ctx() -> WrapContext {
        WrapContext {
            object: OpaqueId::random(),
            dek_id: [7; 16],
            purpose: DekPurpose::ObjectData,
        }
    }

    fn set() -> KekSet {
        KekSet::generate("main".parse().unwrap(), 1).unwrap()
    }

    #[test]
    fn wrap_unwrap_round_trip_and_binding() {
        let set = set();
        let ctx = ctx();
        let dek = Dek::generate().unwrap();
        let wrapped = set.wrap(&ctx, &dek, None).unwrap();
        assert_eq!(set.unwrap(&ctx, &wrapped).unwrap().expose(), dek.expose());

        let other_object = WrapContext {
            object: OpaqueId::random(),
            ..ctx
        };
        assert!(matches!(
            set.unwrap(&other_object, &wrapped),
            Err(KeyError::UnwrapFailed(_))
        ));
        let other_dek_id = WrapContext {
            dek_id: [8; 16],
            ..ctx
        };
        assert!(matches!(
            set.unwrap(&other_dek_id, &wrapped),
            Err(KeyError::UnwrapFailed(_))
        ));
        let mut relabelled = wrapped.clone();
        relabelled.kek.id = "other".parse().unwrap();
        assert!(matches!(
            set.unwrap(&ctx, &relabelled),
            Err(KeyError::UnknownKek(_))
        ));
        for i in 0..WRAPPED_DEK_LEN {
            let mut bad = wrapped.clone();
            bad.sealed[i] ^= 1;
            assert!(set.unwrap(&ctx, &bad).is_err());
        }
        let mut bad = wrapped.clone();
        bad.nonce[0] ^= 1;
        assert!(set.unwrap(&ctx, &bad).is_err());
    }

    #[test]
    fn wrong_kek_material_fails() {
        let a = set();
        let b = set();
        let ctx = ctx();
        let wrapped = a.wrap(&ctx, &Dek::generate().unwrap(), None).unwrap();
        assert!(matches!(
            b.unwrap(&ctx, &wrapped),
            Err(KeyError::UnwrapFailed(_))
        ));
    }

    #[test]
    fn rotate_and_retire() {
        let mut set = set();
        let ctx = ctx();
        let dek = Dek::generate().unwrap();
        let old = set.wrap(&ctx, &dek, None).unwrap();
        let v2 = set.rotate(2).unwrap();
        assert_eq!(v2.version, 2);
        assert_eq!(set.current_ref(), v2);
        assert!(set.unwrap(&ctx, &old).is_ok());
        assert!(matches!(set.retire(&v2), Err(KeyError::RetireCurrent(_))));
        set.retire(&old.kek).unwrap();
        assert!(matches!(
            set.unwrap(&ctx, &old),
            Err(KeyError::RetiredKek(_))
        ));
        let states: Vec<_> = set.versions_info().iter().map(|i| i.state).collect();
        assert_eq!(states, vec![KekState::Retired, KekState::Current]);
        assert_eq!(set.rotate(3).unwrap().version, 3);
    }

    #[test]
    fn debug_never_prints_material() {
        let set = set();
        let text = format!("{set:?}");
        assert!(text.contains("<redacted>"));
        let hex_key = hex::encode(set.material(&set.current_ref()).unwrap().expose());
        assert!(!text.contains(&hex_key));
    }
}
