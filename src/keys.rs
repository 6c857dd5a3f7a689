//! The key hierarchy: the [`KeyProvider`] port, versioned key-encryption keys (KEKs) and
//! per-object data keys (DEKs).
//!
//! Every stored object has its own random 256-bit [`Dek`]. The DEK is never stored in the
//! clear: a [`KeyProvider`] wraps it with AES-256-GCM under a KEK version, with an AAD that
//! binds the object id, the DEK's id, the purpose and the KEK id and version (so a wrapped
//! DEK moved to another object, purpose or KEK label fails to unwrap). The wrapped DEK is a
//! versioned record in the state store ([`record`]); rotating the KEK re-wraps these records
//! only ([`admin::rewrap_all`]) and deleting one crypto-shreds its object.
//!
//! Providers: [`keyring::KeyringFile`] (a 0600 JSON file in the data directory, created on
//! first start) and [`static_keks::StaticKeks`] (KEK material from configuration or secret
//! files, read-only). A PKCS#11 provider can implement the same trait later: the trait
//! never exports KEK material, it only wraps and unwraps.
//!
//! Layout: [`kek_set`] holds KEK versions in memory and does the wrap/unwrap crypto for the
//! software providers; [`record`] is the wrapped-DEK record codec; [`admin`] is rotate,
//! rewrap, status and retire (what `sallyport keys` runs); [`config`] is the `[keys]`
//! configuration section.
//!
//! Not here: the at-rest format and the use of DEKs (`at_rest`, which uses this module), audit events
//! (the caller emits them from [`admin::KeyEvent`]s).

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use zeroize::Zeroizing;

use crate::ids::OpaqueId;

pub mod admin;
pub mod config;
pub mod kek_set;
pub mod keyring;
pub mod record;
pub mod static_keks;

pub use config::{KeysSettings, RawKeysConfig};

/// Length of a DEK and of a KEK: AES-256.
pub const KEY_LEN: usize = 32;
/// Length of a wrapped DEK: the sealed 32 key bytes and the 16-byte GCM tag.
pub const WRAPPED_DEK_LEN: usize = KEY_LEN + 16;
/// Length of a DEK id (the key reference in an object's header).
pub const DEK_ID_LEN: usize = 16;

/// A per-object data key: 256 random bits, zeroised on drop, never printed.
pub struct Dek(Zeroizing<[u8; KEY_LEN]>);

impl Dek {
    /// A fresh DEK from the system CSPRNG (aws-lc's DRBG).
    pub fn generate() -> Result<Self, KeyError> {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        aws_lc_rs::rand::fill(bytes.as_mut()).map_err(|_| KeyError::Random)?;
        Ok(Self(bytes))
    }

    /// Rebuilds a DEK from its bytes. Only key-handling code in this crate does this
    /// (unwrapping, golden vectors); there is no public way to choose a DEK.
    pub(crate) fn from_bytes(bytes: Zeroizing<[u8; KEY_LEN]>) -> Self {
        Self(bytes)
    }

    /// The key bytes, for key derivation and wrapping.
    pub(crate) fn expose(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for Dek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Dek(<redacted>)")
    }
}

/// A KEK's id: 1–32 characters of `[a-z0-9_-]`. Part of every wrap AAD and of every
/// wrapped-DEK record.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KekId(String);

impl KekId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for KekId {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = !s.is_empty()
            && s.len() <= 32
            && s.bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_' || c == b'-');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(KeyError::InvalidKekId)
        }
    }
}

impl fmt::Display for KekId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for KekId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KekId({})", self.0)
    }
}

/// One version of one KEK: what a wrapped DEK names. Versions start at 1.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KekRef {
    /// The KEK.
    pub id: KekId,
    /// The version (1, 2, …; never reused).
    pub version: u32,
}

impl fmt::Display for KekRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:v{}", self.id, self.version)
    }
}

/// What a DEK protects; bound into the wrap AAD so a DEK cannot be used for another
/// purpose than the one it was made for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DekPurpose {
    /// The segmented ciphertext and tail record of a stored object (`proto/at-rest-v1.md`).
    ObjectData,
}

impl DekPurpose {
    /// The purpose's code in AADs and records.
    pub const fn code(self) -> u8 {
        match self {
            DekPurpose::ObjectData => 1,
        }
    }

    /// Parses a code written by [`DekPurpose::code`].
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(DekPurpose::ObjectData),
            _ => None,
        }
    }
}

/// Everything a wrapped DEK is bound to besides the KEK.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WrapContext {
    /// The object the DEK belongs to.
    pub object: OpaqueId,
    /// The DEK's own random id (the key reference in the object's header).
    pub dek_id: [u8; DEK_ID_LEN],
    /// What the DEK is for.
    pub purpose: DekPurpose,
}

/// A DEK sealed under a KEK version: the nonce and the 48 sealed bytes (key ‖ tag).
#[derive(Clone, PartialEq, Eq)]
pub struct WrappedDek {
    /// The KEK version that wrapped it.
    pub kek: KekRef,
    /// The random 96-bit GCM nonce of this wrap.
    pub nonce: [u8; 12],
    /// The encrypted DEK followed by the GCM tag.
    pub sealed: [u8; WRAPPED_DEK_LEN],
}

impl fmt::Debug for WrappedDek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WrappedDek")
            .field("kek", &self.kek)
            .finish_non_exhaustive()
    }
}

/// The life stage of a KEK version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KekState {
    /// New DEKs are wrapped under it.
    Current,
    /// Still unwraps DEKs; no longer wraps new ones.
    Active,
    /// Its material is destroyed; the version number is never reused.
    Retired,
}

/// A KEK version as listed by [`KeyProvider::versions`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KekVersionInfo {
    /// Which version.
    pub kek: KekRef,
    /// When it was created (Unix seconds; 0 when unknown, e.g. from configuration).
    pub created_unix: u64,
    /// Its state.
    pub state: KekState,
}

/// Proof that no wrapped DEK references a KEK version, required to retire it. Only
/// [`admin::retire`] makes one, after listing the state store's KEK index.
#[derive(Debug)]
pub struct Unreferenced(KekRef);

impl Unreferenced {
    /// Only the admin code, after it checked the index.
    pub(in crate::keys) fn checked(kek: KekRef) -> Self {
        Self(kek)
    }

    /// The KEK version that has no references.
    pub fn kek(&self) -> &KekRef {
        &self.0
    }
}

/// A key-hierarchy failure. Messages never contain key material.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A KEK id that is not 1–32 characters of `[a-z0-9_-]`.
    #[error("a KEK id is 1-32 characters of a-z, 0-9, '_' and '-'")]
    InvalidKekId,
    /// The wrapped DEK names a KEK id or version this provider does not have.
    #[error("KEK {0} is not known to this key provider")]
    UnknownKek(KekRef),
    /// The wrapped DEK names a retired KEK version (its material is destroyed).
    #[error("KEK {0} is retired; DEKs wrapped under it cannot be unwrapped")]
    RetiredKek(KekRef),
    /// Unwrapping failed authentication: the wrong KEK material, or a wrapped DEK made
    /// for another object, DEK id or purpose, or tampered with.
    #[error("the wrapped data key does not authenticate under KEK {0}")]
    UnwrapFailed(KekRef),
    /// The system random generator failed.
    #[error("the system random number generator failed")]
    Random,
    /// The crypto library refused an operation that cannot fail with valid inputs.
    #[error("cryptographic operation failed: {0}")]
    Crypto(&'static str),
    /// The keyring file could not be read or written.
    #[error("keyring file {path}: {source}")]
    KeyringIo {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The keyring file or KEK configuration is not valid.
    #[error("keyring {path} is invalid: {reason}")]
    KeyringFormat {
        /// The file (or `"configuration"`).
        path: String,
        /// What is wrong (never key material).
        reason: String,
    },
    /// A keyring or KEK file refused by the strict file check (not a regular file, owned
    /// by someone else, writable by group or others, readable by them unless allowed, too
    /// big), or unreadable.
    #[error(transparent)]
    SecretFile(#[from] crate::secret::PrivateFileError),
    /// The provider's KEKs are fixed by configuration and cannot be rotated or retired here.
    #[error("KEKs from configuration are read-only: {0}")]
    ReadOnly(&'static str),
    /// Retiring the version that wraps new DEKs.
    #[error("KEK {0} is the current version; rotate first")]
    RetireCurrent(KekRef),
    /// Retiring a version that wrapped DEKs still reference.
    #[error("KEK {kek} still wraps {count} data key(s); run `sallyport keys rewrap` first")]
    StillReferenced {
        /// The version.
        kek: KekRef,
        /// How many DEK records reference it (at least).
        count: u64,
    },
    /// A wrapped-DEK record in the state store cannot be parsed.
    #[error("wrapped data key record is corrupt: {0}")]
    CorruptRecord(&'static str),
    /// The state store failed.
    #[error(transparent)]
    State(#[from] crate::state::StateError),
}

/// The key provider port: holds KEKs, wraps and unwraps DEKs. KEK material never leaves a
/// provider, so an HSM can implement this trait with its own key handles.
#[async_trait]
pub trait KeyProvider: Send + Sync + fmt::Debug + 'static {
    /// A short name for logs and `keys status` (`"keyring"`, `"static"`).
    fn kind(&self) -> &'static str;

    /// The KEK version new DEKs are wrapped under.
    async fn current(&self) -> Result<KekRef, KeyError>;

    /// Every KEK version the provider knows, ascending, retired ones included.
    async fn versions(&self) -> Result<Vec<KekVersionInfo>, KeyError>;

    /// Wraps `dek` for `ctx` under `kek`, or under the current version when `None`.
    async fn wrap(
        &self,
        ctx: &WrapContext,
        dek: &Dek,
        kek: Option<&KekRef>,
    ) -> Result<WrappedDek, KeyError>;

    /// Unwraps a DEK wrapped for `ctx`; fails unless the wrap authenticates for exactly
    /// this context and KEK version.
    async fn unwrap(&self, ctx: &WrapContext, wrapped: &WrappedDek) -> Result<Dek, KeyError>;

    /// Adds a new KEK version and makes it current; returns it.
    async fn rotate(&self) -> Result<KekRef, KeyError>;

    /// Destroys a non-current KEK version's material (the version stays listed as retired).
    async fn retire(&self, kek: Unreferenced) -> Result<(), KeyError>;
}
