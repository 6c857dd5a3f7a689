//! The identifiers a link names: the signing key, the grant and the artifact.
//!
//! [`GrantId`] and [`ArtifactId`] wrap the server-generated [`OpaqueId`]; a link carries
//! them in their 26-character text form. A link names exactly one artifact and the grant
//! that authorises it; which artifacts a grant covers (one, or a whole batch) is the grant
//! record's business, so a grant stays attachable to a group of artifacts without any
//! change to the link format.
//!
//! Not here: what a grant or an artifact record contains.

use std::fmt;
use std::str::FromStr;

use crate::ids::{IdError, OpaqueId};

/// Maximum length of a [`KeyId`].
pub const MAX_KEY_ID_LEN: usize = 32;

/// The id of a link-signing key: 1–32 characters of `[a-z0-9._-]`, starting with a letter
/// or digit. Lowercase only, so two spellings can never name the same key.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(String);

/// Why a string is not a [`KeyId`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyIdError {
    /// Empty or longer than 32 characters.
    #[error("a key id has 1 to 32 characters")]
    Length,
    /// A character outside `[a-z0-9._-]`, or a first character that is not a letter or digit.
    #[error("a key id uses only a-z, 0-9, '.', '_' and '-', and starts with a letter or digit")]
    Character,
}

impl KeyId {
    /// The key id's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for KeyId {
    type Err = KeyIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = s.as_bytes();
        if bytes.is_empty() || bytes.len() > MAX_KEY_ID_LEN {
            return Err(KeyIdError::Length);
        }
        let first_ok = bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit();
        let rest_ok = bytes.iter().all(|&c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'.' | b'_' | b'-')
        });
        if !first_ok || !rest_ok {
            return Err(KeyIdError::Character);
        }
        Ok(Self(s.to_owned()))
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({})", self.0)
    }
}

macro_rules! opaque_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(OpaqueId);

        impl $name {
            /// A fresh random id.
            pub fn random() -> Self {
                Self(OpaqueId::random())
            }

            /// The underlying opaque id.
            pub fn opaque(&self) -> OpaqueId {
                self.0
            }
        }

        impl From<OpaqueId> for $name {
            fn from(id: OpaqueId) -> Self {
                Self(id)
            }
        }

        impl FromStr for $name {
            type Err = IdError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                s.parse().map(Self)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.0)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                self.0.serialize(s)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                OpaqueId::deserialize(d).map(Self)
            }
        }
    };
}

opaque_newtype!(
    /// The id of a grant record: the server-side authorisation a link is backed by. Revoking
    /// the grant kills every link that names it.
    GrantId
);

opaque_newtype!(
    /// The id of a downloadable artifact (a completed upload or an imported file). A link
    /// names one artifact; its grant says whether it covers that artifact.
    ArtifactId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_id_shapes() {
        assert_eq!(
            "k1".parse::<KeyId>().map(|k| k.to_string()),
            Ok("k1".to_owned())
        );
        assert!("2025-01.a_b".parse::<KeyId>().is_ok());
        assert!("a".repeat(32).parse::<KeyId>().is_ok());
        assert_eq!("a".repeat(33).parse::<KeyId>(), Err(KeyIdError::Length));
        assert_eq!("".parse::<KeyId>(), Err(KeyIdError::Length));
        assert_eq!("K1".parse::<KeyId>(), Err(KeyIdError::Character));
        assert_eq!("-k".parse::<KeyId>(), Err(KeyIdError::Character));
        assert_eq!(".k".parse::<KeyId>(), Err(KeyIdError::Character));
        assert_eq!("k 1".parse::<KeyId>(), Err(KeyIdError::Character));
        assert_eq!("k%31".parse::<KeyId>(), Err(KeyIdError::Character));
        assert_eq!("kä".parse::<KeyId>(), Err(KeyIdError::Character));
    }

    #[test]
    fn opaque_ids_round_trip_and_debug_names_the_type() {
        let g = GrantId::random();
        assert_eq!(g.to_string().parse::<GrantId>(), Ok(g));
        assert!(format!("{g:?}").starts_with("GrantId("));
        let a: ArtifactId = "0000000000000000000000000a".parse().expect("valid id");
        assert_eq!(a.to_string(), "0000000000000000000000000a");
        assert_eq!("nope".parse::<ArtifactId>(), Err(IdError::Length));
    }
}
