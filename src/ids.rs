//! Opaque, server-generated identifiers.
//!
//! Every object the gateway stores is named by an id it generated itself: 128 random bits,
//! written as 26 lowercase Crockford base32 characters. No client-supplied string ever
//! becomes a path, a blob name or a state-store key; a client can only *present* an id,
//! which is parsed here and rejected unless it has exactly this shape.
//!
//! Not here: what an id names (uploads, artifacts, grants each wrap [`OpaqueId`] in their
//! own newtype in their own module).

use std::fmt;
use std::str::FromStr;

use rand::RngCore;

/// Length of the textual form of an [`OpaqueId`].
pub const OPAQUE_ID_LEN: usize = 26;

const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// 128 random bits, shown as 26 lowercase Crockford base32 characters.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OpaqueId([u8; 16]);

impl OpaqueId {
    /// A fresh id from the operating system's CSPRNG.
    pub fn random() -> Self {
        let mut bytes = [0u8; 16];
        rand::rng().fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// The raw 16 bytes (bound into AADs and signed strings).
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// Rebuild an id from its raw bytes.
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }
}

impl fmt::Display for OpaqueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // 128 bits = 25 groups of 5 bits + 3 bits; the first character carries the top 3 bits.
        let value = u128::from_be_bytes(self.0);
        let mut out = [0u8; OPAQUE_ID_LEN];
        for (i, slot) in out.iter_mut().enumerate() {
            let shift = 5 * (OPAQUE_ID_LEN - 1 - i);
            *slot = ALPHABET[((value >> shift) & 0x1f) as usize];
        }
        // The alphabet is ASCII, so this cannot fail.
        f.write_str(std::str::from_utf8(&out).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for OpaqueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OpaqueId({self})")
    }
}

/// Why a string is not an [`OpaqueId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// Wrong number of characters.
    #[error("an id has exactly 26 characters")]
    Length,
    /// A character outside the lowercase Crockford base32 alphabet.
    #[error("an id uses only the characters 0-9 and a-z without i, l, o, u")]
    Character,
    /// The first character would encode more than 128 bits.
    #[error("an id encodes exactly 128 bits")]
    Overflow,
}

impl FromStr for OpaqueId {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = s.as_bytes();
        if bytes.len() != OPAQUE_ID_LEN {
            return Err(IdError::Length);
        }
        let mut value: u128 = 0;
        for (i, &c) in bytes.iter().enumerate() {
            let digit = ALPHABET
                .iter()
                .position(|&a| a == c)
                .ok_or(IdError::Character)? as u128;
            if i == 0 && digit > 0b111 {
                return Err(IdError::Overflow);
            }
            value = (value << 5) | digit;
        }
        Ok(Self(value.to_be_bytes()))
    }
}

impl serde::Serialize for OpaqueId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for OpaqueId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rejects_bad_shapes() {
        assert_eq!("".parse::<OpaqueId>(), Err(IdError::Length));
        assert_eq!("../../etc/passwd".parse::<OpaqueId>(), Err(IdError::Length));
        assert_eq!(
            "0000000000000000000000000i".parse::<OpaqueId>(),
            Err(IdError::Character)
        );
        assert_eq!(
            "0000000000000000000000000A".parse::<OpaqueId>(),
            Err(IdError::Character)
        );
        assert_eq!(
            "80000000000000000000000000".parse::<OpaqueId>(),
            Err(IdError::Overflow)
        );
        assert!("7zzzzzzzzzzzzzzzzzzzzzzzzz".parse::<OpaqueId>().is_ok());
    }

    #[test]
    fn random_ids_differ() {
        assert_ne!(OpaqueId::random(), OpaqueId::random());
    }

    proptest! {
        #[test]
        fn display_parse_round_trip(bytes in any::<[u8; 16]>()) {
            let id = OpaqueId::from_bytes(bytes);
            let text = id.to_string();
            prop_assert_eq!(text.len(), OPAQUE_ID_LEN);
            prop_assert_eq!(text.parse::<OpaqueId>(), Ok(id));
        }
    }
}
