//! Planning a parsed range set against a representation length.
//!
//! Satisfiability follows RFC 9110 §14.1.1: an int-range is satisfiable when its first-pos
//! is below the length; a suffix-range when its suffix-length is non-zero. A last-pos past
//! the end is clamped; a suffix longer than the representation selects all of it.
//!
//! * No satisfiable spec: [`RangePlan::Unsatisfiable`] (416, `Content-Range: bytes */len`).
//! * A zero-length representation has no byte to select, but §14.1.1 counts a non-zero
//!   suffix-range as satisfiable there; such a request gets [`RangePlan::Full`] (200 with
//!   an empty body) rather than a 416. Any other range on an empty representation is 416.
//! * The satisfiable ranges are **coalesced**: sorted, and overlapping or adjacent ranges
//!   merged (§14.2 allows it). One range left: [`RangePlan::Single`] (206 with
//!   `Content-Range`); several: [`RangePlan::Multi`] (206 `multipart/byteranges`), in
//!   ascending order. Requests whose ranges were already ascending and disjoint are served
//!   in request order, as §14.3 asks; a request that was not gets ascending order, which a
//!   client must accept since §14.2 would have allowed refusing it outright. Coalescing
//!   means no byte is ever sent twice, so a multipart response is never larger than the
//!   representation plus part headers.

use std::ops::Range;

use super::parse::{Disposition, RangeSet, RangeSpec};

/// A non-empty, inclusive byte range `first..=last` within a representation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ByteRange {
    first: u64,
    last: u64,
}

impl ByteRange {
    /// `first..=last`; `None` unless `first <= last < u64::MAX` (so the length fits u64).
    pub fn new(first: u64, last: u64) -> Option<Self> {
        (first <= last && last < u64::MAX).then_some(Self { first, last })
    }

    /// The whole of a non-empty representation of `len` bytes.
    pub fn whole(len: u64) -> Option<Self> {
        len.checked_sub(1).and_then(|last| Self::new(0, last))
    }

    /// First byte offset.
    pub fn first(&self) -> u64 {
        self.first
    }

    /// Last byte offset (inclusive).
    pub fn last(&self) -> u64 {
        self.last
    }

    /// Number of bytes (at least 1).
    pub fn len(&self) -> u64 {
        // `new` guarantees last < u64::MAX, so this cannot overflow.
        self.last - self.first + 1
    }

    /// Never empty; present for API symmetry with `len`.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The half-open offsets `first..last + 1`.
    pub fn as_range(&self) -> Range<u64> {
        self.first..self.last + 1
    }
}

/// Why a range request is answered with 416.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsatisfiable {
    /// No requested range overlaps the representation.
    NoOverlap,
    /// More than [`super::MAX_RANGES`] ranges were requested.
    TooManyRanges,
}

/// What to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangePlan {
    /// 200 with the whole representation (no `Range`, an ignored one, or `If-Range` false).
    Full,
    /// 206 with one `Content-Range`.
    Single(ByteRange),
    /// 206 `multipart/byteranges`: two or more ascending, disjoint, non-adjacent ranges.
    Multi(Vec<ByteRange>),
    /// 416 with `Content-Range: bytes */len`.
    Unsatisfiable(Unsatisfiable),
}

impl RangeSet {
    /// Plan this range set against a representation of `len` bytes: satisfiability,
    /// clamping, zero-length representations and coalescing as in this module's docs
    /// (`src/range/plan.rs`).
    pub fn plan(&self, len: u64) -> RangePlan {
        let mut ranges: Vec<ByteRange> = Vec::with_capacity(self.specs().len());
        let mut empty_but_satisfiable = false;
        for spec in self.specs() {
            let resolved = match *spec {
                RangeSpec::FromTo { first, last } => {
                    (first < len).then(|| (first, last.min(len - 1)))
                }
                RangeSpec::From { first } => (first < len).then(|| (first, len - 1)),
                RangeSpec::Suffix { len: n } => {
                    if n > 0 && len == 0 {
                        empty_but_satisfiable = true;
                    }
                    (n > 0 && len > 0).then(|| (len - n.min(len), len - 1))
                }
            };
            if let Some(range) = resolved.and_then(|(first, last)| ByteRange::new(first, last)) {
                ranges.push(range);
            }
        }
        if ranges.is_empty() {
            return if empty_but_satisfiable {
                RangePlan::Full
            } else {
                RangePlan::Unsatisfiable(Unsatisfiable::NoOverlap)
            };
        }
        let mut merged = coalesce(ranges);
        if merged.len() == 1 {
            RangePlan::Single(merged.remove(0))
        } else {
            RangePlan::Multi(merged)
        }
    }
}

/// Plan a request's `Range` value (if any) against a representation of `len` bytes:
/// parse errors are ignored (→ [`RangePlan::Full`]) or refused, per
/// [`super::RangeError::disposition`].
pub fn plan(range: Option<&[u8]>, len: u64) -> RangePlan {
    let Some(value) = range else {
        return RangePlan::Full;
    };
    match RangeSet::parse(value) {
        Ok(set) => set.plan(len),
        Err(e) => match e.disposition() {
            Disposition::Ignore => RangePlan::Full,
            Disposition::Refuse => RangePlan::Unsatisfiable(Unsatisfiable::TooManyRanges),
        },
    }
}

/// Sort and merge overlapping or adjacent ranges.
fn coalesce(mut ranges: Vec<ByteRange>) -> Vec<ByteRange> {
    ranges.sort_unstable();
    let mut out: Vec<ByteRange> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match out.last_mut() {
            // Adjacent when r.first == last + 1; `last < u64::MAX` so the add is safe.
            Some(prev) if r.first <= prev.last + 1 => prev.last = prev.last.max(r.last),
            _ => out.push(r),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn br(first: u64, last: u64) -> ByteRange {
        ByteRange::new(first, last).expect("valid test range")
    }

    fn p(header: &str, len: u64) -> RangePlan {
        plan(Some(header.as_bytes()), len)
    }

    #[test]
    fn byte_range_invariants() {
        assert_eq!(ByteRange::new(5, 4), None);
        assert_eq!(ByteRange::new(0, u64::MAX), None);
        assert_eq!(br(0, u64::MAX - 1).len(), u64::MAX);
        assert_eq!(br(3, 3).len(), 1);
        assert_eq!(br(3, 5).as_range(), 3..6);
        assert_eq!(ByteRange::whole(0), None);
        assert_eq!(ByteRange::whole(10), Some(br(0, 9)));
    }

    #[test]
    fn rfc_examples_on_10000_bytes() {
        let len = 10_000;
        assert_eq!(p("bytes=0-499", len), RangePlan::Single(br(0, 499)));
        assert_eq!(p("bytes=500-999", len), RangePlan::Single(br(500, 999)));
        assert_eq!(p("bytes=-500", len), RangePlan::Single(br(9500, 9999)));
        assert_eq!(p("bytes=9500-", len), RangePlan::Single(br(9500, 9999)));
        assert_eq!(
            p("bytes=0-0,-1", len),
            RangePlan::Multi(vec![br(0, 0), br(9999, 9999)])
        );
        assert_eq!(
            p("bytes=500-600,601-999", len),
            RangePlan::Single(br(500, 999))
        );
        assert_eq!(
            p("bytes=500-700,601-999", len),
            RangePlan::Single(br(500, 999))
        );
    }

    #[test]
    fn clamping_unsatisfiable_and_empty_representations() {
        assert_eq!(p("bytes=5-100", 10), RangePlan::Single(br(5, 9)));
        assert_eq!(p("bytes=-100", 10), RangePlan::Single(br(0, 9)));
        assert_eq!(p("bytes=0-", 10), RangePlan::Single(br(0, 9)));
        let none = RangePlan::Unsatisfiable(Unsatisfiable::NoOverlap);
        assert_eq!(p("bytes=10-", 10), none);
        assert_eq!(p("bytes=10-20,30-40", 10), none);
        assert_eq!(p("bytes=-0", 10), none);
        assert_eq!(p("bytes=10-20,-0,3-4", 10), RangePlan::Single(br(3, 4)));
        // Zero-length representation.
        assert_eq!(p("bytes=0-", 0), none);
        assert_eq!(p("bytes=0-0", 0), none);
        assert_eq!(p("bytes=-0", 0), none);
        assert_eq!(p("bytes=-1", 0), RangePlan::Full);
        assert_eq!(p("bytes=0-5,-1", 0), RangePlan::Full);
        // Huge numbers.
        let big = "184467440737095516150000";
        assert_eq!(p(&format!("bytes={big}-"), 10), none);
        assert_eq!(
            p(&format!("bytes=2-{big}"), 10),
            RangePlan::Single(br(2, 9))
        );
        assert_eq!(p(&format!("bytes=-{big}"), 10), RangePlan::Single(br(0, 9)));
        assert_eq!(
            p("bytes=18446744073709551614-", u64::MAX),
            RangePlan::Single(br(u64::MAX - 1, u64::MAX - 1))
        );
        assert_eq!(
            p("bytes=-1", u64::MAX),
            RangePlan::Single(br(u64::MAX - 1, u64::MAX - 1))
        );
    }

    #[test]
    fn ignored_and_refused_headers() {
        assert_eq!(plan(None, 10), RangePlan::Full);
        assert_eq!(p("items=0-1", 10), RangePlan::Full);
        assert_eq!(p("bytes=5-4", 10), RangePlan::Full);
        assert_eq!(p("bytes=x", 10), RangePlan::Full);
        assert_eq!(p("bytes=", 10), RangePlan::Full);
        let many = vec!["0-0"; 17].join(",");
        assert_eq!(
            p(&format!("bytes={many}"), 10),
            RangePlan::Unsatisfiable(Unsatisfiable::TooManyRanges)
        );
    }

    #[test]
    fn coalescing_and_order() {
        // Ascending, disjoint, non-adjacent: kept as requested.
        assert_eq!(
            p("bytes=0-1,3-4,8-", 10),
            RangePlan::Multi(vec![br(0, 1), br(3, 4), br(8, 9)])
        );
        // Out of order: served ascending.
        assert_eq!(
            p("bytes=8-,0-1,3-4", 10),
            RangePlan::Multi(vec![br(0, 1), br(3, 4), br(8, 9)])
        );
        // Adjacent and overlapping merge; many tiny overlapping ranges collapse.
        assert_eq!(p("bytes=0-1,2-3", 10), RangePlan::Single(br(0, 3)));
        assert_eq!(p("bytes=0-5,1-2,-5", 10), RangePlan::Single(br(0, 9)));
        let tiny = (0..16)
            .map(|i| format!("{i}-{i}"))
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(
            p(&format!("bytes={tiny}"), 100),
            RangePlan::Single(br(0, 15))
        );
        let same = vec!["0-99"; 16].join(",");
        assert_eq!(
            p(&format!("bytes={same}"), 100),
            RangePlan::Single(br(0, 99))
        );
    }
}
