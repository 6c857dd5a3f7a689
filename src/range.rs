//! RFC 9110 range requests: parse `Range`, evaluate `If-Range`, plan the response, and lay
//! out `Content-Range` values and `multipart/byteranges` bodies. Pure: no I/O.
//!
//! The download handler calls [`plan_request`] with the request's `Range` and `If-Range`
//! values, the artifact's strong [`EntityTag`] and its length, and matches on the
//! [`RangePlan`]:
//!
//! | plan | response |
//! |---|---|
//! | [`RangePlan::Full`] | 200, whole representation |
//! | [`RangePlan::Single`] | 206, [`content_range`] |
//! | [`RangePlan::Multi`] | 206, `multipart/byteranges` laid out by [`MultipartLayout`] |
//! | [`RangePlan::Unsatisfiable`] | 416, [`unsatisfied_content_range`] |
//!
//! and maps each range to the at-rest segments to decrypt with [`SegmentSpan::of`].
//!
//! The choices RFC 9110 leaves open are documented where they are made: which malformed
//! headers are ignored and which refused ([`parse`]), satisfiability, zero-length
//! representations and coalescing ([`RangeSet::plan`]), and `If-Range` with dates or weak
//! tags ([`if_range_matches`]). In short: anything malformed is ignored (200 full), more
//! than [`MAX_RANGES`] ranges is refused (416), overlapping and adjacent ranges are merged,
//! and only a strong, byte-identical entity tag satisfies `If-Range`.
//!
//! Not here: preconditions other than `If-Range` (`If-Match`, `If-None-Match`…, evaluated
//! before it per RFC 9110 §13.2.2), reading or decrypting bytes, and HTTP responses.

mod if_range;
mod multipart;
pub mod parse;
mod plan;
mod segments;

#[cfg(test)]
mod tests;

pub use if_range::{EntityTag, EntityTagError, MAX_ETAG_LEN, if_range_matches, plan_request};
pub use multipart::{
    Boundary, MultipartError, MultipartLayout, content_range, unsatisfied_content_range,
};
pub use parse::{Disposition, MAX_RANGES, RangeError, RangeSet, RangeSpec};
pub use plan::{ByteRange, RangePlan, Unsatisfiable, plan};
pub use segments::SegmentSpan;
