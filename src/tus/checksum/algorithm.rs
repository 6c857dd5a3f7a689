//! The checksum algorithms of `Tus-Checksum-Algorithm`, by name and digest length.
//!
//! A leaf, importing nothing of the crate: the `error` module names an algorithm in
//! `TusError::ChecksumMismatch` and the parent module parses and computes checksums, so
//! the names live here and both point down to them.

use std::fmt;

/// A checksum algorithm of `Tus-Checksum-Algorithm`. Serialises as its tus name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChecksumAlgorithm {
    /// `sha1` (required by the spec).
    Sha1,
    /// `sha256`
    Sha256,
    /// `sha512`
    Sha512,
    /// `md5`
    Md5,
}

impl ChecksumAlgorithm {
    /// Every supported algorithm, in `Tus-Checksum-Algorithm` order.
    pub const ALL: [ChecksumAlgorithm; 4] = [Self::Sha1, Self::Sha256, Self::Sha512, Self::Md5];

    /// The tus name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Sha1 => "sha1",
            Self::Sha256 => "sha256",
            Self::Sha512 => "sha512",
            Self::Md5 => "md5",
        }
    }

    /// The algorithm with this exact (lowercase) tus name.
    pub fn from_name(name: &[u8]) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name().as_bytes() == name)
    }

    /// Digest length in bytes.
    pub const fn digest_len(self) -> usize {
        match self {
            Self::Sha1 => 20,
            Self::Sha256 => 32,
            Self::Sha512 => 64,
            Self::Md5 => 16,
        }
    }
}

impl fmt::Display for ChecksumAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
