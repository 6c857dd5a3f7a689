//! Strong entity tags and `If-Range` evaluation (RFC 9110 §8.8.3, §13.1.5).
//!
//! `If-Range` lets a client say "send me the range only if the representation is still the
//! one I have; otherwise send it all". Its value is an entity tag or an HTTP-date. Here:
//!
//! * A **strong** entity tag that is byte-identical to the current one matches (the strong
//!   comparison of §8.8.3.2). A weak tag (`W/"…"`) never matches: §13.1.5 requires strong
//!   validators, and a client must not send a weak one.
//! * An **HTTP-date never matches**. Artifacts are served without `Last-Modified`, and a
//!   date has one-second resolution, so it cannot prove the bytes are unchanged; the client
//!   receives the full representation (200), which is always correct. The same goes for a
//!   value that is neither a tag nor a date.
//! * When `If-Range` does not match, the `Range` header is ignored (→ 200 full). A server
//!   MUST ignore `If-Range` when the request has no `Range` (§13.1.5); [`plan_request`]
//!   does.
//!
//! Not here: choosing the tag. The handler derives it from the artifact (its SHA-256, for
//! example), so that it changes whenever the bytes could.

use std::fmt;

use super::plan::{RangePlan, plan};

/// The longest opaque-tag accepted for the server's own entity tags.
pub const MAX_ETAG_LEN: usize = 128;

/// A strong entity tag: the opaque part, without quotes.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct EntityTag(String);

/// Why a string cannot be an entity tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EntityTagError {
    /// Empty or longer than 128 bytes.
    #[error("an entity tag has 1 to 128 characters")]
    Length,
    /// A character outside etagc (`!`, `#`–`~`): no quotes, spaces, controls or non-ASCII.
    #[error("an entity tag uses only visible ASCII other than '\"'")]
    Character,
}

impl EntityTag {
    /// A strong tag with this opaque value (written without the quotes).
    pub fn strong(opaque: &str) -> Result<Self, EntityTagError> {
        let b = opaque.as_bytes();
        if b.is_empty() || b.len() > MAX_ETAG_LEN {
            return Err(EntityTagError::Length);
        }
        if !b.iter().all(|&c| c == 0x21 || (0x23..=0x7e).contains(&c)) {
            return Err(EntityTagError::Character);
        }
        Ok(Self(opaque.to_owned()))
    }

    /// The opaque value, unquoted.
    pub fn opaque(&self) -> &str {
        &self.0
    }

    /// The `ETag` header value: the opaque value in double quotes.
    pub fn header_value(&self) -> String {
        format!("\"{}\"", self.0)
    }
}

impl fmt::Debug for EntityTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EntityTag(\"{}\")", self.0)
    }
}

/// Whether an `If-Range` value is a strong match for `current` (see the module docs).
pub fn if_range_matches(value: &[u8], current: &EntityTag) -> bool {
    let value = value.trim_ascii();
    match value {
        [b'"', inner @ .., b'"'] => inner == current.0.as_bytes(),
        _ => false,
    }
}

/// The plan for a GET or HEAD: `If-Range` (if the request has `Range`) decides whether
/// `Range` is honoured at all, then [`plan`] applies.
pub fn plan_request(
    range: Option<&[u8]>,
    if_range: Option<&[u8]>,
    current: &EntityTag,
    len: u64,
) -> RangePlan {
    match (range, if_range) {
        (None, _) => RangePlan::Full,
        (Some(_), Some(condition)) if !if_range_matches(condition, current) => RangePlan::Full,
        (Some(value), _) => plan(Some(value), len),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::range::ByteRange;

    fn tag(s: &str) -> EntityTag {
        EntityTag::strong(s).expect("valid tag")
    }

    #[test]
    fn entity_tag_validation() {
        assert_eq!(tag("sha256-abc").header_value(), "\"sha256-abc\"");
        assert_eq!(tag("!#~").opaque(), "!#~");
        assert_eq!(EntityTag::strong(""), Err(EntityTagError::Length));
        assert_eq!(
            EntityTag::strong(&"a".repeat(MAX_ETAG_LEN + 1)),
            Err(EntityTagError::Length)
        );
        for bad in ["a\"b", "a b", "a\tb", "a\r\nb", "é", "a\0"] {
            assert_eq!(
                EntityTag::strong(bad),
                Err(EntityTagError::Character),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn strong_comparison_only() {
        let t = tag("v1-abc");
        assert!(if_range_matches(b"\"v1-abc\"", &t));
        assert!(if_range_matches(b" \"v1-abc\"\t", &t));
        assert!(!if_range_matches(b"W/\"v1-abc\"", &t));
        assert!(!if_range_matches(b"w/\"v1-abc\"", &t));
        assert!(!if_range_matches(b"\"v1-abd\"", &t));
        assert!(!if_range_matches(b"\"V1-ABC\"", &t));
        assert!(!if_range_matches(b"v1-abc", &t));
        assert!(!if_range_matches(b"\"v1-abc", &t));
        assert!(!if_range_matches(b"\"v1-abc\", \"x\"", &t));
        assert!(!if_range_matches(b"\"", &t));
        assert!(!if_range_matches(b"", &t));
        assert!(!if_range_matches(b"Sun, 06 Nov 1994 08:49:37 GMT", &t));
    }

    #[test]
    fn if_range_gates_the_range() {
        let t = tag("e1");
        let single = RangePlan::Single(ByteRange::new(0, 4).expect("range"));
        let r = Some(&b"bytes=0-4"[..]);
        assert_eq!(plan_request(r, None, &t, 10), single);
        assert_eq!(plan_request(r, Some(b"\"e1\""), &t, 10), single);
        assert_eq!(plan_request(r, Some(b"\"e2\""), &t, 10), RangePlan::Full);
        assert_eq!(plan_request(r, Some(b"W/\"e1\""), &t, 10), RangePlan::Full);
        assert_eq!(
            plan_request(r, Some(b"Sun, 06 Nov 1994 08:49:37 GMT"), &t, 10),
            RangePlan::Full
        );
        // If-Range without Range is ignored.
        assert_eq!(plan_request(None, Some(b"\"e1\""), &t, 10), RangePlan::Full);
        assert_eq!(plan_request(None, Some(b"\"zz\""), &t, 10), RangePlan::Full);
        // A matching If-Range does not rescue an unsatisfiable range.
        assert_eq!(
            plan_request(Some(b"bytes=20-"), Some(b"\"e1\""), &t, 10),
            RangePlan::Unsatisfiable(crate::range::Unsatisfiable::NoOverlap)
        );
    }
}
