//! `Upload-Metadata`: strict parsing, limits, and the canonical form sent back on HEAD.
//!
//! Grammar (tus 1.0.0 "Creation", made strict):
//!
//! ```text
//! Upload-Metadata = pair *( "," pair )
//! pair            = key [ SP [ value ] ]
//! key             = 1*( %x21-2B / %x2D-7E )      ; printable ASCII, no space, no comma
//! value           = standard base64 with "=" padding, canonical (RFC 4648 §4, §3.5)
//! ```
//!
//! Keys are unique; duplicates are refused rather than resolved. No whitespace other than
//! the single separating space is allowed anywhere. Values are arbitrary bytes once decoded.
//! Limits ([`MetadataLimits`]): number of pairs, key length, total decoded value size.
//!
//! Values are PHI (file names, patient references), so [`Metadata`] never prints them
//! (its `Debug` shows counts only), zeroises them on drop, and no [`MetadataError`] carries
//! a key or a value — only the pair's position.
//!
//! The canonical form ([`Metadata::to_header_value`]) writes pairs in the order received,
//! `key SP base64` for non-empty values and a bare `key` for empty ones; parsing it gives
//! back the same [`Metadata`].
//!
//! Not here: encryption of the stored form (the upload engine seals the canonical string).

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use zeroize::Zeroize;

/// Limits on `Upload-Metadata`. Defaults: 32 pairs, 64-byte keys, 8 KiB of decoded values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetadataLimits {
    /// Most pairs.
    pub max_pairs: usize,
    /// Longest key, in bytes.
    pub max_key_len: usize,
    /// Most bytes of all decoded values together.
    pub max_decoded_total: usize,
}

impl Default for MetadataLimits {
    fn default() -> Self {
        Self {
            max_pairs: 32,
            max_key_len: 64,
            max_decoded_total: 8 * 1024,
        }
    }
}

/// Why an `Upload-Metadata` value is refused. Positions count pairs from 0; nothing a
/// client sent is repeated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    /// The header is present but empty (the spec requires at least one pair).
    #[error("the value is empty")]
    Empty,
    /// A pair has an empty key (e.g. `a b,,c`, a leading space or a trailing comma).
    #[error("pair {pair} has an empty key")]
    EmptyKey {
        /// Position of the pair.
        pair: usize,
    },
    /// A key holds a byte other than printable ASCII without space and comma.
    #[error("pair {pair} has a key with a character that is not allowed")]
    KeyCharacter {
        /// Position of the pair.
        pair: usize,
    },
    /// More than one space in a pair.
    #[error("pair {pair} is not `key` or `key value`")]
    Malformed {
        /// Position of the pair.
        pair: usize,
    },
    /// A value that is not canonical padded standard base64.
    #[error("pair {pair} has a value that is not canonical base64")]
    Base64 {
        /// Position of the pair.
        pair: usize,
    },
    /// The same key twice.
    #[error("pair {pair} repeats an earlier key")]
    DuplicateKey {
        /// Position of the second occurrence.
        pair: usize,
    },
    /// A key longer than the limit.
    #[error("pair {pair} has a key longer than {max} bytes")]
    KeyTooLong {
        /// Position of the pair.
        pair: usize,
        /// The limit.
        max: usize,
    },
    /// More pairs than the limit.
    #[error("more than {max} pairs")]
    TooManyPairs {
        /// The limit.
        max: usize,
    },
    /// The decoded values together exceed the limit.
    #[error("the values exceed {max} bytes in total")]
    TooLarge {
        /// The limit.
        max: usize,
    },
}

/// Parsed upload metadata: unique printable-ASCII keys with byte values, in received order.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Metadata {
    pairs: Vec<(String, Vec<u8>)>,
}

impl Metadata {
    /// Parses an `Upload-Metadata` header value under `limits`.
    pub fn parse(value: &[u8], limits: &MetadataLimits) -> Result<Self, MetadataError> {
        if value.is_empty() {
            return Err(MetadataError::Empty);
        }
        let mut out = Metadata::default();
        let mut total = 0usize;
        for (pair, element) in value.split(|&b| b == b',').enumerate() {
            if pair >= limits.max_pairs {
                return Err(MetadataError::TooManyPairs {
                    max: limits.max_pairs,
                });
            }
            let (key, encoded) = match element.iter().position(|&b| b == b' ') {
                Some(i) => (&element[..i], &element[i + 1..]),
                None => (element, &b""[..]),
            };
            let key = check_key(key, pair, limits)?;
            if encoded.contains(&b' ') {
                return Err(MetadataError::Malformed { pair });
            }
            // Refuse before decoding when even the shortest decoding would pass the limit.
            let at_least = (encoded.len() / 4 * 3).saturating_sub(2);
            let remaining = limits.max_decoded_total.saturating_sub(total);
            if at_least > remaining {
                return Err(MetadataError::TooLarge {
                    max: limits.max_decoded_total,
                });
            }
            let decoded = STANDARD
                .decode(encoded)
                .map_err(|_| MetadataError::Base64 { pair })?;
            if decoded.len() > remaining {
                return Err(MetadataError::TooLarge {
                    max: limits.max_decoded_total,
                });
            }
            total += decoded.len();
            if out.get(key).is_some() {
                return Err(MetadataError::DuplicateKey { pair });
            }
            out.pairs.push((key.to_owned(), decoded));
        }
        Ok(out)
    }

    /// Builds metadata from pairs, checking the same rules and limits as [`Metadata::parse`].
    pub fn from_pairs(
        pairs: Vec<(String, Vec<u8>)>,
        limits: &MetadataLimits,
    ) -> Result<Self, MetadataError> {
        let candidate = Metadata { pairs };
        // One rule set: the canonical text must parse back to the same pairs.
        let reparsed = match candidate.pairs.is_empty() {
            true => return Err(MetadataError::Empty),
            false => Metadata::parse(candidate.to_header_value().as_bytes(), limits)?,
        };
        if reparsed == candidate {
            Ok(candidate)
        } else {
            // Only a key with a space or comma can change meaning when written out.
            Err(MetadataError::KeyCharacter { pair: 0 })
        }
    }

    /// The canonical header value: `key SP base64` pairs (bare `key` for an empty value),
    /// comma-separated, in order. Always a valid header value (printable ASCII).
    pub fn to_header_value(&self) -> String {
        let mut out = String::new();
        for (i, (key, value)) in self.pairs.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(key);
            if !value.is_empty() {
                out.push(' ');
                STANDARD.encode_string(value, &mut out);
            }
        }
        out
    }

    /// The value under `key`, if any.
    pub fn get(&self, key: &str) -> Option<&[u8]> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_slice())
    }

    /// The pairs, in received order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_slice()))
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// No pairs.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }
}

impl fmt::Debug for Metadata {
    // Values are PHI; keys are shown neither (a key can hint at content).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes: usize = self.pairs.iter().map(|(_, v)| v.len()).sum();
        f.debug_struct("Metadata")
            .field("pairs", &self.pairs.len())
            .field("value_bytes", &bytes)
            .finish()
    }
}

impl Drop for Metadata {
    fn drop(&mut self) {
        for (key, value) in &mut self.pairs {
            key.zeroize();
            value.zeroize();
        }
    }
}

fn check_key<'a>(
    key: &'a [u8],
    pair: usize,
    limits: &MetadataLimits,
) -> Result<&'a str, MetadataError> {
    if key.is_empty() {
        return Err(MetadataError::EmptyKey { pair });
    }
    if !key.iter().all(|&b| (0x21..=0x7e).contains(&b) && b != b',') {
        return Err(MetadataError::KeyCharacter { pair });
    }
    if key.len() > limits.max_key_len {
        return Err(MetadataError::KeyTooLong {
            pair,
            max: limits.max_key_len,
        });
    }
    // Printable ASCII is UTF-8.
    std::str::from_utf8(key).map_err(|_| MetadataError::KeyCharacter { pair })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(s: &str) -> Result<Metadata, MetadataError> {
        Metadata::parse(s.as_bytes(), &MetadataLimits::default())
    }

    #[test]
    fn spec_example() {
        let m = parse("filename d29ybGRfZG9taW5hdGlvbl9wbGFuLnBkZg==,is_confidential").unwrap();
        assert_eq!(m.get("filename"), Some(&b"world_domination_plan.pdf"[..]));
        assert_eq!(m.get("is_confidential"), Some(&b""[..]));
        assert_eq!(m.len(), 2);
        assert_eq!(
            m.to_header_value(),
            "filename d29ybGRfZG9taW5hdGlvbl9wbGFuLnBkZg==,is_confidential"
        );
    }

    #[test]
    fn empty_value_with_space_is_allowed_and_canonicalised() {
        let m = parse("a ,b YQ==").unwrap();
        assert_eq!(m.get("a"), Some(&b""[..]));
        assert_eq!(m.to_header_value(), "a,b YQ==");
    }

    #[test]
    fn refusals_name_the_pair() {
        use MetadataError::*;
        let cases: &[(&str, MetadataError)] = &[
            ("", Empty),
            (",a", EmptyKey { pair: 0 }),
            ("a,", EmptyKey { pair: 1 }),
            ("a YQ==,,b", EmptyKey { pair: 1 }),
            (" a YQ==", EmptyKey { pair: 0 }),
            ("a YQ==, b", EmptyKey { pair: 1 }),
            ("a  YQ==", Malformed { pair: 0 }),
            ("a YQ== ", Malformed { pair: 0 }),
            ("a YQ", Base64 { pair: 0 }),     // missing padding
            ("a YR==", Base64 { pair: 0 }),   // non-zero trailing bits
            ("a YQ=", Base64 { pair: 0 }),    // short padding
            ("a Y-==", Base64 { pair: 0 }),   // URL-safe alphabet
            ("a YQ==\t", Base64 { pair: 0 }), // trailing tab
            ("k\u{e9}y YQ==", KeyCharacter { pair: 0 }),
            ("a\tb YQ==", KeyCharacter { pair: 0 }),
            ("a YQ==,a Yg==", DuplicateKey { pair: 1 }),
            ("a,a", DuplicateKey { pair: 1 }),
        ];
        for (input, want) in cases {
            assert_eq!(parse(input).as_ref().err(), Some(want), "{input:?}");
        }
    }

    #[test]
    fn limits() {
        let limits = MetadataLimits {
            max_pairs: 2,
            max_key_len: 3,
            max_decoded_total: 4,
        };
        let p = |s: &str| Metadata::parse(s.as_bytes(), &limits);
        assert!(p("abc YWJj,d").is_ok());
        assert_eq!(
            p("a,b,c").err(),
            Some(MetadataError::TooManyPairs { max: 2 })
        );
        assert_eq!(
            p("abcd").err(),
            Some(MetadataError::KeyTooLong { pair: 0, max: 3 })
        );
        assert_eq!(p("a YWJjZA==").map(|m| m.len()), Ok(1));
        assert_eq!(
            p("a YWJjZGU=").err(),
            Some(MetadataError::TooLarge { max: 4 })
        );
        assert_eq!(
            p("a YWI=,b YWJj").err(),
            Some(MetadataError::TooLarge { max: 4 })
        );
        // Huge values are refused before being decoded.
        let huge = format!("a {}", "A".repeat(1 << 20));
        assert_eq!(p(&huge).err(), Some(MetadataError::TooLarge { max: 4 }));
    }

    #[test]
    fn debug_and_errors_never_show_values() {
        let m = parse("filename c2VjcmV0LXBhdGllbnQucGRm").unwrap();
        let debug = format!("{m:?}");
        assert!(
            !debug.contains("filename") && !debug.contains("secret"),
            "{debug}"
        );
        let e = parse("filename c2VjcmV0LXBhdGllbnQucGRm,filename YQ==").unwrap_err();
        assert!(!e.to_string().contains("filename"));
    }

    #[test]
    fn every_prefix_never_panics() {
        let value = "filename d29ybGRfZG9taW5hdGlvbl9wbGFuLnBkZg==,is_confidential,type YQ==";
        for end in 0..=value.len() {
            let _ = parse(&value[..end]);
        }
        assert_eq!(parse(value).map(|m| m.len()), Ok(3));
    }

    #[test]
    fn from_pairs_applies_the_same_rules() {
        let l = MetadataLimits::default();
        assert!(Metadata::from_pairs(vec![("a".into(), b"x".to_vec())], &l).is_ok());
        assert!(Metadata::from_pairs(vec![("a b".into(), b"x".to_vec())], &l).is_err());
        assert!(Metadata::from_pairs(vec![("a,b".into(), vec![])], &l).is_err());
        assert!(Metadata::from_pairs(vec![], &l).is_err());
    }

    fn pairs() -> impl Strategy<Value = Vec<(String, Vec<u8>)>> {
        proptest::collection::btree_map(
            "[!-+\\--~]{1,16}",
            proptest::collection::vec(any::<u8>(), 0..40),
            1..8,
        )
        .prop_map(|m| m.into_iter().collect())
    }

    proptest! {
        #[test]
        fn canonical_round_trip(pairs in pairs()) {
            let l = MetadataLimits::default();
            let m = Metadata::from_pairs(pairs.clone(), &l).unwrap();
            let text = m.to_header_value();
            prop_assert!(http::HeaderValue::from_str(&text).is_ok());
            let back = Metadata::parse(text.as_bytes(), &l).unwrap();
            prop_assert_eq!(back.iter().map(|(k, v)| (k.to_owned(), v.to_vec())).collect::<Vec<_>>(), pairs);
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = Metadata::parse(&bytes, &MetadataLimits::default());
        }
    }
}
