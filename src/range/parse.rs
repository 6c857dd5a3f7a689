//! Parsing a `Range` header value (RFC 9110 §14.1–14.2) into a [`RangeSet`].
//!
//! ```text
//! Range       = range-unit "=" range-set          ; unit compared case-insensitively
//! range-set   = 1#range-spec                      ; comma list, empty elements allowed
//! range-spec  = int-range / suffix-range
//! int-range   = first-pos "-" [ last-pos ]        ; 1*DIGIT each, leading zeros allowed
//! suffix-range = "-" suffix-length
//! ```
//!
//! Decisions where RFC 9110 leaves a choice, each an [`RangeError`] variant:
//!
//! * Leading and trailing whitespace of the field value is removed (HTTP field parsing
//!   does that); optional whitespace (SP, HTAB) is accepted around every list element,
//!   including right after `=`. Whitespace *inside* a range-spec (`0 - 1`) is malformed.
//! * A unit other than `bytes` is [`RangeError::UnknownUnit`]; an origin server MUST
//!   ignore it (§14.2) and serve the full representation.
//! * Every syntax error — no `=`, a unit that is not a token, an empty range set, a spec
//!   that is not an int-range or suffix-range (an RFC `other-range` means nothing for
//!   bytes), a sign, a non-digit — makes the whole header ignored (200 with the full
//!   representation). §14.2 lets a server ignore `Range`; ignoring is what nginx and
//!   Apache do, and a client that sent garbage gets correct bytes rather than an error.
//! * `last-pos < first-pos` makes the spec invalid (§14.1.1), and the whole header is
//!   ignored likewise; the comparison is exact even for numbers beyond 64 bits.
//! * More than [`MAX_RANGES`] range-specs is [`RangeError::TooManyRanges`], which is
//!   *refused* with 416 rather than ignored: §15.5.17 allows rejecting "an excessive
//!   request of small or overlapping ranges", and answering a range-spraying client with
//!   the whole (possibly many-GB) file would reward it. Parsing stops at the 17th spec, so
//!   work is bounded whatever the header's length.
//! * Numbers of any length are accepted; values beyond `u64::MAX` saturate, which keeps
//!   their meaning (a first-pos that large is past any representation, a last-pos or
//!   suffix-length that large covers everything).
//!
//! Tokens, OWS and the list syntax are the shared [`crate::rfc9110`] ones.

use crate::rfc9110;

/// The most range-specs a request may carry (empty list elements do not count).
pub const MAX_RANGES: usize = 16;

/// One range-spec, with positions saturated to `u64::MAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeSpec {
    /// `first-last` (inclusive; `last >= first` is guaranteed by the parser).
    FromTo {
        /// First byte position.
        first: u64,
        /// Last byte position, inclusive.
        last: u64,
    },
    /// `first-`: from `first` to the end.
    From {
        /// First byte position.
        first: u64,
    },
    /// `-n`: the last `n` bytes.
    Suffix {
        /// The suffix length.
        len: u64,
    },
}

/// A parsed `bytes` range set: 1 to [`MAX_RANGES`] specs, in request order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeSet {
    specs: Vec<RangeSpec>,
}

/// What the response should do about a [`RangeError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Ignore the `Range` header: 200 with the full representation.
    Ignore,
    /// Refuse: 416 with `Content-Range: bytes */len`.
    Refuse,
}

/// Why a `Range` value was not usable. None of these is an error for the client: see
/// [`RangeError::disposition`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    /// No `=`, or the unit is not a token.
    #[error("the Range value is not unit=range-set")]
    Syntax,
    /// A unit other than `bytes`.
    #[error("the Range unit is not bytes")]
    UnknownUnit,
    /// `bytes=` with no range-spec (only empty list elements).
    #[error("the Range set is empty")]
    EmptySet,
    /// A list element that is not `first-[last]` or `-suffix`.
    #[error("a range-spec is malformed")]
    Spec,
    /// `last-pos` is less than `first-pos`.
    #[error("a range-spec ends before it starts")]
    Inverted,
    /// More than [`MAX_RANGES`] range-specs.
    #[error("more than 16 ranges were requested")]
    TooManyRanges,
}

impl RangeError {
    /// Whether to ignore the header (200) or refuse the request (416).
    pub fn disposition(&self) -> Disposition {
        match self {
            Self::TooManyRanges => Disposition::Refuse,
            Self::Syntax | Self::UnknownUnit | Self::EmptySet | Self::Spec | Self::Inverted => {
                Disposition::Ignore
            }
        }
    }
}

impl RangeSet {
    /// Parse a `Range` field value.
    pub fn parse(value: &[u8]) -> Result<Self, RangeError> {
        let value = rfc9110::trim_ows(value);
        let eq = value
            .iter()
            .position(|&b| b == b'=')
            .ok_or(RangeError::Syntax)?;
        let (unit, set) = (&value[..eq], &value[eq + 1..]);
        if !rfc9110::is_token(unit) {
            return Err(RangeError::Syntax);
        }
        if !unit.eq_ignore_ascii_case(b"bytes") {
            return Err(RangeError::UnknownUnit);
        }
        let mut specs = Vec::new();
        for element in rfc9110::list_elements(set) {
            if specs.len() == MAX_RANGES {
                return Err(RangeError::TooManyRanges);
            }
            specs.push(parse_spec(element)?);
        }
        if specs.is_empty() {
            return Err(RangeError::EmptySet);
        }
        Ok(Self { specs })
    }

    /// The specs, in request order.
    pub fn specs(&self) -> &[RangeSpec] {
        &self.specs
    }
}

fn parse_spec(element: &[u8]) -> Result<RangeSpec, RangeError> {
    let dash = element
        .iter()
        .position(|&b| b == b'-')
        .ok_or(RangeError::Spec)?;
    let (first, last) = (&element[..dash], &element[dash + 1..]);
    if first.is_empty() {
        return Ok(RangeSpec::Suffix { len: number(last)? });
    }
    let first_value = number(first)?;
    if last.is_empty() {
        return Ok(RangeSpec::From { first: first_value });
    }
    let last_value = number(last)?;
    if exact_less(last, first) {
        return Err(RangeError::Inverted);
    }
    Ok(RangeSpec::FromTo {
        first: first_value,
        last: last_value,
    })
}

/// 1*DIGIT, saturating at `u64::MAX`.
fn number(digits: &[u8]) -> Result<u64, RangeError> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(RangeError::Spec);
    }
    Ok(digits.iter().fold(0u64, |n, &d| {
        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    }))
}

/// `a < b` for two digit strings of any length.
fn exact_less(a: &[u8], b: &[u8]) -> bool {
    let strip = |s: &[u8]| -> usize { s.iter().take_while(|&&d| d == b'0').count() };
    let (a, b) = (&a[strip(a)..], &b[strip(b)..]);
    (a.len(), a) < (b.len(), b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use RangeSpec::{From, FromTo, Suffix};

    fn ok(s: &str) -> Vec<RangeSpec> {
        RangeSet::parse(s.as_bytes()).expect(s).specs().to_vec()
    }

    fn err(s: &str) -> RangeError {
        RangeSet::parse(s.as_bytes()).expect_err(s)
    }

    #[test]
    fn rfc_9110_forms() {
        assert_eq!(
            ok("bytes=0-499"),
            [FromTo {
                first: 0,
                last: 499
            }]
        );
        assert_eq!(
            ok("bytes=500-999"),
            [FromTo {
                first: 500,
                last: 999
            }]
        );
        assert_eq!(ok("bytes=-500"), [Suffix { len: 500 }]);
        assert_eq!(ok("bytes=9500-"), [From { first: 9500 }]);
        assert_eq!(
            ok("bytes=0-0,-1"),
            [FromTo { first: 0, last: 0 }, Suffix { len: 1 }]
        );
        assert_eq!(
            ok("bytes= 0-999, 4500-5499, -1000"),
            [
                FromTo {
                    first: 0,
                    last: 999
                },
                FromTo {
                    first: 4500,
                    last: 5499
                },
                Suffix { len: 1000 }
            ]
        );
        assert_eq!(
            ok("bytes=500-600,601-999"),
            [
                FromTo {
                    first: 500,
                    last: 600
                },
                FromTo {
                    first: 601,
                    last: 999
                }
            ]
        );
    }

    #[test]
    fn unit_case_whitespace_and_empty_elements() {
        assert_eq!(ok("BYTES=1-2"), [FromTo { first: 1, last: 2 }]);
        assert_eq!(ok("Bytes=1-2"), [FromTo { first: 1, last: 2 }]);
        assert_eq!(ok(" \tbytes=1-2\t "), [FromTo { first: 1, last: 2 }]);
        assert_eq!(
            ok("bytes=,1-2,,\t,3-"),
            [FromTo { first: 1, last: 2 }, From { first: 3 }]
        );
        assert_eq!(ok("bytes=007-010"), [FromTo { first: 7, last: 10 }]);
        assert_eq!(ok("bytes=-0"), [Suffix { len: 0 }]);
        assert_eq!(err("bytes =1-2"), RangeError::Syntax);
        assert_eq!(err("bytes=1 -2"), RangeError::Spec);
        assert_eq!(err("bytes=1- 2"), RangeError::Spec);
        assert_eq!(err("bytes=1-2\r\n"), RangeError::Spec);
    }

    #[test]
    fn malformed_values() {
        for (s, want) in [
            ("", RangeError::Syntax),
            ("bytes", RangeError::Syntax),
            ("=0-1", RangeError::Syntax),
            ("by tes=0-1", RangeError::Syntax),
            ("bytes:0-1", RangeError::Syntax),
            ("items=0-1", RangeError::UnknownUnit),
            ("bytesx=0-1", RangeError::UnknownUnit),
            ("none=", RangeError::UnknownUnit),
            ("bytes=", RangeError::EmptySet),
            ("bytes=,, ,", RangeError::EmptySet),
            ("bytes=-", RangeError::Spec),
            ("bytes=1", RangeError::Spec),
            ("bytes=a-b", RangeError::Spec),
            ("bytes=+1-2", RangeError::Spec),
            ("bytes=1-+2", RangeError::Spec),
            ("bytes=--1", RangeError::Spec),
            ("bytes=1-2-3", RangeError::Spec),
            ("bytes=0x10-20", RangeError::Spec),
            ("bytes=1.5-2", RangeError::Spec),
            ("bytes=0-1;q=1", RangeError::Spec),
            ("bytes=0-1,x", RangeError::Spec),
            ("bytes=١-٢", RangeError::Spec),
            ("bytes=5-4", RangeError::Inverted),
            ("bytes=0-1,10-9", RangeError::Inverted),
        ] {
            assert_eq!(err(s), want, "{s:?}");
            assert_eq!(want.disposition(), Disposition::Ignore);
        }
    }

    #[test]
    fn huge_numbers_saturate_and_compare_exactly() {
        let big = "99999999999999999999999999999";
        assert_eq!(ok(&format!("bytes={big}-")), [From { first: u64::MAX }]);
        assert_eq!(ok(&format!("bytes=-{big}")), [Suffix { len: u64::MAX }]);
        assert_eq!(
            ok(&format!("bytes=0-{big}")),
            [FromTo {
                first: 0,
                last: u64::MAX
            }]
        );
        // Both saturate, yet the order is judged on the exact values.
        assert_eq!(err(&format!("bytes={big}9-{big}")), RangeError::Inverted);
        assert!(RangeSet::parse(format!("bytes={big}-{big}9").as_bytes()).is_ok());
        assert!(RangeSet::parse(format!("bytes=000{big}-{big}").as_bytes()).is_ok());
        assert_eq!(err(&format!("bytes=1{big}-000{big}")), RangeError::Inverted);
    }

    #[test]
    fn range_count_cap() {
        let sixteen = vec!["0-0"; MAX_RANGES].join(",");
        assert_eq!(ok(&format!("bytes={sixteen}")).len(), MAX_RANGES);
        assert_eq!(ok(&format!("bytes={sixteen},,,")).len(), MAX_RANGES);
        let seventeen = format!("bytes={sixteen},1-1");
        assert_eq!(err(&seventeen), RangeError::TooManyRanges);
        assert_eq!(RangeError::TooManyRanges.disposition(), Disposition::Refuse);
        // Work stops at the cap: garbage after the 17th spec is never looked at.
        assert_eq!(
            err(&format!("{seventeen},garbage")),
            RangeError::TooManyRanges
        );
    }
}
