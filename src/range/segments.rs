//! Mapping a plaintext byte range to the at-rest segments that hold it.
//!
//! Artifacts are sealed in fixed-size plaintext segments of `S` bytes (the last one may be
//! shorter). Segment `k` holds plaintext offsets `k*S .. min((k+1)*S, len)`. A range
//! `first..=last` touches segments `first / S ..= last / S`; the download path decrypts
//! only those, skips `first % S` bytes of the first, and sends `len` bytes in total.
//!
//! Not here: reading or decrypting segments (`at_rest`).

use std::num::NonZeroU64;

use super::plan::ByteRange;

/// The segments a byte range touches, and where the range sits inside them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentSpan {
    /// Index of the first segment touched.
    pub first: u64,
    /// Index of the last segment touched (inclusive).
    pub last: u64,
    /// Bytes of the first segment's plaintext to skip before the range starts.
    pub skip: u64,
    /// Bytes to send in total (the range's length).
    pub take: u64,
}

impl SegmentSpan {
    /// The segments touched by `range` for segments of `segment_size` plaintext bytes.
    pub fn of(range: ByteRange, segment_size: NonZeroU64) -> Self {
        let s = segment_size.get();
        Self {
            first: range.first() / s,
            last: range.last() / s,
            skip: range.first() % s,
            take: range.len(),
        }
    }

    /// How many segments are touched (at least 1).
    pub fn count(&self) -> u64 {
        // first <= last because range.first <= range.last; the add cannot overflow since
        // last - first < u64::MAX.
        self.last - self.first + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn seg(n: u64) -> NonZeroU64 {
        NonZeroU64::new(n).expect("non-zero")
    }

    #[test]
    fn examples_with_64_kib_segments() {
        let s = seg(65_536);
        let r = |a, b| ByteRange::new(a, b).expect("range");
        assert_eq!(
            SegmentSpan::of(r(0, 0), s),
            SegmentSpan {
                first: 0,
                last: 0,
                skip: 0,
                take: 1
            }
        );
        assert_eq!(
            SegmentSpan::of(r(65_535, 65_536), s),
            SegmentSpan {
                first: 0,
                last: 1,
                skip: 65_535,
                take: 2
            }
        );
        assert_eq!(
            SegmentSpan::of(r(65_536, 131_071), s),
            SegmentSpan {
                first: 1,
                last: 1,
                skip: 0,
                take: 65_536
            }
        );
        let tail = SegmentSpan::of(r(200_000, 200_016), s);
        assert_eq!(
            (tail.first, tail.last, tail.skip, tail.count()),
            (3, 3, 3_392, 1)
        );
        let huge = SegmentSpan::of(r(0, u64::MAX - 1), seg(1));
        assert_eq!(huge.count(), u64::MAX);
    }

    proptest! {
        /// Against brute force: the touched segments are exactly those overlapping the range.
        #[test]
        fn matches_brute_force(len in 1u64..2_000, s in 1u64..300, a in any::<u64>(), b in any::<u64>()) {
            let (x, y) = (a % len, b % len);
            let range = ByteRange::new(x.min(y), x.max(y)).expect("range");
            let span = SegmentSpan::of(range, seg(s));
            let segments = len.div_ceil(s);
            let touched: Vec<u64> = (0..segments)
                .filter(|k| {
                    let (start, end) = (k * s, ((k + 1) * s).min(len)); // half-open
                    start <= range.last() && range.first() < end
                })
                .collect();
            prop_assert_eq!(span.first, touched[0]);
            prop_assert_eq!(span.last, *touched.last().expect("non-empty"));
            prop_assert_eq!(span.count(), touched.len() as u64);
            prop_assert_eq!(span.first * s + span.skip, range.first());
            prop_assert_eq!(span.take, range.len());
            prop_assert!(span.last < segments);
        }
    }
}
