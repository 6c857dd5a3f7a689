//! `Content-Range` values and the `multipart/byteranges` body layout (RFC 9110 §14.4,
//! §14.6; RFC 2046 §5.1.1).
//!
//! The body of a multi-range response is, for parts `0..n`:
//!
//! ```text
//! part 0:  "--" boundary CRLF "Content-Type: " type CRLF "Content-Range: bytes a-b/len" CRLF CRLF <bytes>
//! part i:  CRLF "--" boundary CRLF ... the same headers ... CRLF CRLF <bytes>
//! end:     CRLF "--" boundary "--" CRLF
//! ```
//!
//! [`MultipartLayout`] produces the exact header bytes of each part and of the end, and the
//! exact body length (for `Content-Length`), so the handler can stream the ranges'
//! bytes between them without buffering. Everything is computed, nothing is read.
//!
//! The boundary is random ([`Boundary::random`]): 32 alphanumeric characters, 190 bits,
//! so the chance that it occurs in the file's bytes is negligible.

use rand::Rng;

use super::plan::ByteRange;

/// `Content-Range` for a 206: `bytes first-last/len`.
pub fn content_range(range: ByteRange, len: u64) -> String {
    format!("bytes {}-{}/{len}", range.first(), range.last())
}

/// `Content-Range` for a 416: `bytes */len`.
pub fn unsatisfied_content_range(len: u64) -> String {
    format!("bytes */{len}")
}

/// A multipart boundary: 1–70 characters of `[A-Za-z0-9'()+_,-./:=?]` (RFC 2046 bchars
/// without space, so it never needs quoting in the `Content-Type` parameter).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Boundary(String);

/// Why a layout cannot be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MultipartError {
    /// The boundary is empty, longer than 70 characters, or uses other characters.
    #[error("a multipart boundary has 1 to 70 characters from the RFC 2046 set, no space")]
    Boundary,
    /// The part content type is empty, longer than 255 bytes, or has a control character.
    #[error("the part content type is empty, too long, or contains a control character")]
    ContentType,
    /// Fewer than two ranges, or a range past the representation's end.
    #[error("a multipart layout needs two or more ranges inside the representation")]
    Ranges,
    /// The body length would not fit in 64 bits.
    #[error("the multipart body would be longer than 2^64 - 1 bytes")]
    TooLarge,
}

impl Boundary {
    /// A fresh random boundary (32 alphanumeric characters).
    pub fn random() -> Self {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        let mut rng = rand::rng();
        let s = (0..32)
            .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
            .collect();
        Self(s)
    }

    /// A given boundary, validated.
    pub fn new(s: &str) -> Result<Self, MultipartError> {
        let ok_char = |c: u8| c.is_ascii_alphanumeric() || b"'()+_,-./:=?".contains(&c);
        if s.is_empty() || s.len() > 70 || !s.bytes().all(ok_char) {
            return Err(MultipartError::Boundary);
        }
        Ok(Self(s.to_owned()))
    }

    /// The boundary text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The byte layout of a `multipart/byteranges` body.
#[derive(Debug, Clone)]
pub struct MultipartLayout {
    boundary: Boundary,
    part_type: String,
    ranges: Vec<ByteRange>,
    len: u64,
    body_len: u64,
}

impl MultipartLayout {
    /// A layout for `ranges` (two or more, as planned) of a representation of `len` bytes
    /// whose own type is `part_type`.
    pub fn new(
        boundary: Boundary,
        part_type: &str,
        ranges: &[ByteRange],
        len: u64,
    ) -> Result<Self, MultipartError> {
        let type_ok = !part_type.is_empty()
            && part_type.len() <= 255
            && part_type
                .bytes()
                .all(|c| c == b'\t' || (0x20..0x7f).contains(&c));
        if !type_ok {
            return Err(MultipartError::ContentType);
        }
        if ranges.len() < 2 || ranges.iter().any(|r| r.last() >= len) {
            return Err(MultipartError::Ranges);
        }
        let mut layout = Self {
            boundary,
            part_type: part_type.to_owned(),
            ranges: ranges.to_vec(),
            len,
            body_len: 0,
        };
        let mut total = layout.trailer().len() as u64;
        for (i, r) in layout.ranges.iter().enumerate() {
            let header = layout.part_header(i).len() as u64;
            total = total
                .checked_add(header)
                .and_then(|t| t.checked_add(r.len()))
                .ok_or(MultipartError::TooLarge)?;
        }
        layout.body_len = total;
        Ok(layout)
    }

    /// The response `Content-Type`: `multipart/byteranges; boundary=…`.
    pub fn content_type(&self) -> String {
        format!("multipart/byteranges; boundary={}", self.boundary.0)
    }

    /// The exact body length, for `Content-Length`.
    pub fn body_len(&self) -> u64 {
        self.body_len
    }

    /// The ranges, in the order their parts appear.
    pub fn ranges(&self) -> &[ByteRange] {
        &self.ranges
    }

    /// The bytes before part `index`'s data (delimiter and part headers); empty for an
    /// index past the last part.
    pub fn part_header(&self, index: usize) -> Vec<u8> {
        let Some(range) = self.ranges.get(index) else {
            return Vec::new();
        };
        let lead = if index == 0 { "" } else { "\r\n" };
        format!(
            "{lead}--{}\r\nContent-Type: {}\r\nContent-Range: {}\r\n\r\n",
            self.boundary.0,
            self.part_type,
            content_range(*range, self.len)
        )
        .into_bytes()
    }

    /// The bytes after the last part: the close delimiter.
    pub fn trailer(&self) -> Vec<u8> {
        format!("\r\n--{}--\r\n", self.boundary.0).into_bytes()
    }

    /// Each part's header bytes and the range whose bytes follow them.
    pub fn parts(&self) -> impl Iterator<Item = (Vec<u8>, ByteRange)> + '_ {
        self.ranges
            .iter()
            .enumerate()
            .map(|(i, r)| (self.part_header(i), *r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn br(first: u64, last: u64) -> ByteRange {
        ByteRange::new(first, last).expect("valid test range")
    }

    #[test]
    fn content_range_values() {
        assert_eq!(content_range(br(0, 499), 1234), "bytes 0-499/1234");
        assert_eq!(content_range(br(7, 7), 8), "bytes 7-7/8");
        assert_eq!(unsatisfied_content_range(0), "bytes */0");
        assert_eq!(unsatisfied_content_range(1234), "bytes */1234");
    }

    #[test]
    fn boundaries() {
        let a = Boundary::random();
        assert_eq!(a.as_str().len(), 32);
        assert!(a.as_str().bytes().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, Boundary::random());
        assert!(Boundary::new("THIS_STRING_SEPARATES").is_ok());
        assert!(Boundary::new(&"a".repeat(70)).is_ok());
        for bad in ["", "a b", "a\r\nb", "a\"b", "a;b"] {
            assert_eq!(Boundary::new(bad), Err(MultipartError::Boundary), "{bad:?}");
        }
        assert_eq!(
            Boundary::new(&"a".repeat(71)),
            Err(MultipartError::Boundary)
        );
    }

    #[test]
    fn rfc_9110_example_layout_byte_exact() {
        let boundary = Boundary::new("THIS_STRING_SEPARATES").expect("boundary");
        let ranges = [br(500, 999), br(7000, 7999)];
        let layout =
            MultipartLayout::new(boundary, "application/pdf", &ranges, 8000).expect("layout");
        assert_eq!(
            layout.content_type(),
            "multipart/byteranges; boundary=THIS_STRING_SEPARATES"
        );
        let repr: Vec<u8> = (0..8000u32).map(|i| (i % 251) as u8).collect();
        let mut body = Vec::new();
        for (header, range) in layout.parts() {
            body.extend_from_slice(&header);
            body.extend_from_slice(&repr[range.first() as usize..=range.last() as usize]);
        }
        body.extend_from_slice(&layout.trailer());

        let mut want = Vec::new();
        want.extend_from_slice(
            b"--THIS_STRING_SEPARATES\r\nContent-Type: application/pdf\r\n\
              Content-Range: bytes 500-999/8000\r\n\r\n",
        );
        want.extend_from_slice(&repr[500..1000]);
        want.extend_from_slice(
            b"\r\n--THIS_STRING_SEPARATES\r\nContent-Type: application/pdf\r\n\
              Content-Range: bytes 7000-7999/8000\r\n\r\n",
        );
        want.extend_from_slice(&repr[7000..8000]);
        want.extend_from_slice(b"\r\n--THIS_STRING_SEPARATES--\r\n");
        assert_eq!(body, want);
        assert_eq!(layout.body_len(), want.len() as u64);
        assert_eq!(layout.part_header(2), Vec::<u8>::new());
    }

    #[test]
    fn layout_rejections() {
        let b = || Boundary::new("b").expect("boundary");
        let two = [br(0, 0), br(2, 2)];
        assert_eq!(
            MultipartLayout::new(b(), "", &two, 3).err(),
            Some(MultipartError::ContentType)
        );
        assert_eq!(
            MultipartLayout::new(b(), "text/plain\r\nX-Evil: 1", &two, 3).err(),
            Some(MultipartError::ContentType)
        );
        assert_eq!(
            MultipartLayout::new(b(), "text/plain", &two[..1], 3).err(),
            Some(MultipartError::Ranges)
        );
        assert_eq!(
            MultipartLayout::new(b(), "text/plain", &two, 2).err(),
            Some(MultipartError::Ranges)
        );
        let huge = [br(0, u64::MAX - 3), br(u64::MAX - 2, u64::MAX - 2)];
        assert_eq!(
            MultipartLayout::new(b(), "text/plain", &huge, u64::MAX - 1).err(),
            Some(MultipartError::TooLarge)
        );
        assert!(MultipartLayout::new(b(), "application/fhir+ndjson", &two, 3).is_ok());
    }
}
