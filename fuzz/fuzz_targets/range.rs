//! `Range` and `If-Range`: input is `len (8 bytes, big-endian) ‖ Range ‖ '\n' ‖ If-Range`.
//! Every planned span lies inside the representation; several spans are ascending,
//! disjoint and non-adjacent; the segment span of each range covers exactly its bytes.
#![no_main]

use std::num::NonZeroU64;

use libfuzzer_sys::fuzz_target;
use sallyport::range::{
    EntityTag, MAX_RANGES, RangePlan, RangeSet, SegmentSpan, plan, plan_request,
};

fuzz_target!(|data: &[u8]| {
    let Some((len, rest)) = data.split_first_chunk::<8>() else {
        return;
    };
    // Small lengths reach the clamping edge cases far more often than random u64s.
    let len = u64::from_be_bytes(*len);
    let len = if len & 1 == 0 {
        len >> 1
    } else {
        (len >> 1) % 4096
    };
    let (range, if_range) = match rest.iter().position(|&b| b == b'\n') {
        Some(nl) => (&rest[..nl], Some(&rest[nl + 1..])),
        None => (rest, None),
    };
    if let Ok(set) = RangeSet::parse(range) {
        assert!(!set.specs().is_empty() && set.specs().len() <= MAX_RANGES);
    }
    let planned = plan(Some(range), len);
    let ranges = match &planned {
        RangePlan::Full | RangePlan::Unsatisfiable(_) => Vec::new(),
        RangePlan::Single(r) => vec![*r],
        RangePlan::Multi(rs) => {
            assert!(rs.len() >= 2 && rs.len() <= MAX_RANGES);
            rs.clone()
        }
    };
    for r in &ranges {
        assert!(
            r.first() <= r.last() && r.last() < len,
            "{r:?} outside {len}"
        );
        assert_eq!(r.len(), r.last() - r.first() + 1);
        let s = NonZeroU64::new(1 + (len % 97)).expect("non-zero");
        let span = SegmentSpan::of(*r, s);
        assert!(span.first <= span.last && span.skip < s.get());
        assert_eq!(span.take, r.len());
        assert!(span.count() >= 1);
    }
    for w in ranges.windows(2) {
        // Ascending, disjoint and not adjacent (adjacent ones are coalesced).
        assert!(w[0].last() + 1 < w[1].first(), "{w:?}");
    }
    let tag = EntityTag::strong("sha256-abc").expect("valid tag");
    let conditional = plan_request(Some(range), if_range, &tag, len);
    match if_range {
        Some(v) if !sallyport::range::if_range_matches(v, &tag) => {
            assert_eq!(conditional, RangePlan::Full)
        }
        _ => assert_eq!(conditional, planned),
    }
});
