//! The base path, upload URLs, and `Upload-Concat`.
//!
//! An upload's URL is `{base}{id}` with `base` the configured [`BasePath`] (default
//! `/files/`) and `id` an [`UploadId`]. `Upload-Concat` is `partial`, or `final;` followed by
//! upload URLs separated by single spaces. Each URL is either an absolute path
//! (`/files/{id}`) or an absolute `http`/`https` URL whose path is `{base}{id}` — the host
//! is not compared, because behind a load balancer the client's host is not ours to know;
//! the id alone names the upload, and ownership is checked when the part is used. Query,
//! fragment, userinfo, percent-encoding, relative references and anything after the id are
//! refused.
//!
//! Not here: whether the parts exist, are finished or belong to the requester
//! (`plan::plan_concat_final`, which builds on this module).

use crate::tus::error::TusError;
pub use crate::tus::error::{ConcatProblem, PartProblem};
use crate::tus::record::UploadId;

/// The path prefix uploads live under: starts and ends with `/`, segments of
/// `[A-Za-z0-9._~-]`, no `.`/`..` segments, at most 128 bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BasePath(String);

/// Why a configured base path is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "a tus base path starts and ends with '/', has at most 128 bytes and segments of A-Z a-z 0-9 . _ ~ - other than . and .."
)]
pub struct BasePathError;

impl BasePath {
    /// Validates a base path such as `/files/`.
    pub fn new(path: &str) -> Result<Self, BasePathError> {
        let inner = match path {
            "/" => "",
            _ => path
                .strip_prefix('/')
                .and_then(|p| p.strip_suffix('/'))
                .ok_or(BasePathError)?,
        };
        let segments_ok = path == "/"
            || inner.split('/').all(|s| {
                !s.is_empty()
                    && s != "."
                    && s != ".."
                    && s.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._~-".contains(&b))
            });
        if path.len() > 128 || !segments_ok {
            return Err(BasePathError);
        }
        Ok(Self(path.to_owned()))
    }

    /// The path, e.g. `/files/`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The upload's URL path, `{base}{id}` (used for `Location` and `Upload-Concat`).
    pub fn upload_path(&self, id: UploadId) -> String {
        format!("{}{}", self.0, id)
    }

    /// The id in a request path that is exactly `{base}{id}`.
    pub fn upload_id(&self, path: &str) -> Option<UploadId> {
        path.strip_prefix(self.0.as_str())?.parse().ok()
    }

    /// The id named by an upload URL in `Upload-Concat` (see the module docs).
    pub fn parse_upload_url(&self, url: &str) -> Option<UploadId> {
        let path = if url.starts_with('/') {
            url
        } else {
            let (scheme, rest) = url.split_once("://")?;
            if !scheme.eq_ignore_ascii_case("https") && !scheme.eq_ignore_ascii_case("http") {
                return None;
            }
            let slash = rest.find('/')?;
            let authority = &rest[..slash];
            let authority_ok = !authority.is_empty()
                && authority
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b));
            if !authority_ok {
                return None;
            }
            &rest[slash..]
        };
        self.upload_id(path)
    }
}

impl Default for BasePath {
    fn default() -> Self {
        Self("/files/".to_owned())
    }
}

/// A parsed `Upload-Concat`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadConcat {
    /// `partial`: this upload is one part of a later final upload.
    Partial,
    /// `final;…`: the concatenation of these partial uploads, in this order.
    Final(Vec<UploadId>),
}

impl UploadConcat {
    /// Parses `Upload-Concat` against the base path, with at most `max_parts` parts.
    pub fn parse(value: &[u8], base: &BasePath, max_parts: usize) -> Result<Self, TusError> {
        if value == b"partial" {
            return Ok(UploadConcat::Partial);
        }
        let list = value
            .strip_prefix(b"final;")
            .ok_or(ConcatProblem::Malformed)?;
        let list = std::str::from_utf8(list).map_err(|_| ConcatProblem::Malformed)?;
        let mut parts = Vec::new();
        for (index, url) in list.split(' ').enumerate() {
            if index >= max_parts {
                return Err(ConcatProblem::TooManyParts { max: max_parts }.into());
            }
            if url.is_empty() {
                return Err(ConcatProblem::EmptyElement { index }.into());
            }
            let id = base
                .parse_upload_url(url)
                .ok_or(ConcatProblem::NotAnUploadUrl { index })?;
            if let Some(first) = parts.iter().position(|p| *p == id) {
                return Err(ConcatProblem::RepeatedPart { index, first }.into());
            }
            parts.push(id);
        }
        Ok(UploadConcat::Final(parts))
    }

    /// The header value sent back on HEAD: `partial`, or `final;` and the parts' paths.
    pub fn to_header_value(&self, base: &BasePath) -> String {
        match self {
            UploadConcat::Partial => "partial".to_owned(),
            UploadConcat::Final(parts) => {
                let urls: Vec<String> = parts.iter().map(|&id| base.upload_path(id)).collect();
                format!("final;{}", urls.join(" "))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::OpaqueId;
    use proptest::prelude::*;

    const A: &str = "0123456789abcdefghjkmnpqrs";
    const B: &str = "7zzzzzzzzzzzzzzzzzzzzzzzzz";

    fn id(s: &str) -> UploadId {
        s.parse().unwrap()
    }

    fn parse(s: &str) -> Result<UploadConcat, TusError> {
        UploadConcat::parse(s.as_bytes(), &BasePath::default(), 4)
    }

    #[test]
    fn base_paths() {
        for ok in ["/", "/files/", "/api/v1/uploads/", "/a.b_c~d-e/"] {
            assert!(BasePath::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "files/", "/files", "//", "/a//b/", "/../", "/./", "/a b/", "/a%20/", "/ä/",
        ] {
            assert!(BasePath::new(bad).is_err(), "{bad}");
        }
        assert!(BasePath::new(&format!("/{}/", "a".repeat(130))).is_err());
    }

    #[test]
    fn partial_and_final() {
        assert_eq!(parse("partial"), Ok(UploadConcat::Partial));
        let two = UploadConcat::Final(vec![id(A), id(B)]);
        assert_eq!(
            parse(&format!("final;/files/{A} /files/{B}")),
            Ok(two.clone())
        );
        assert_eq!(
            parse(&format!(
                "final;https://tus.example.org/files/{A} http://10.0.0.1:8443/files/{B}"
            )),
            Ok(two.clone())
        );
        assert_eq!(
            parse(&format!("final;HTTPS://[::1]:443/files/{A}")),
            Ok(UploadConcat::Final(vec![id(A)]))
        );
        assert_eq!(
            two.to_header_value(&BasePath::default()),
            format!("final;/files/{A} /files/{B}")
        );
        // A part named again, however spelt, is refused (storage amplification).
        assert_eq!(
            parse(&format!("final;/files/{A} /files/{B} https://h/files/{A}")),
            Err(ConcatProblem::RepeatedPart { index: 2, first: 0 }.into())
        );
    }

    #[test]
    fn refusals() {
        let problem = |s: &str| match parse(s) {
            Err(TusError::InvalidConcat(p)) => p,
            other => panic!("{s:?} gave {other:?}"),
        };
        use ConcatProblem::*;
        assert_eq!(problem(""), Malformed);
        assert_eq!(problem("Partial"), Malformed);
        assert_eq!(problem("partial "), Malformed);
        assert_eq!(problem("final"), Malformed);
        assert_eq!(problem("final:/files/x"), Malformed);
        assert_eq!(problem("final;"), EmptyElement { index: 0 });
        assert_eq!(
            problem(&format!("final; /files/{A}")),
            EmptyElement { index: 0 }
        );
        assert_eq!(
            problem(&format!("final;/files/{A}  /files/{B}")),
            EmptyElement { index: 1 }
        );
        assert_eq!(
            problem(&format!("final;/files/{A} ")),
            EmptyElement { index: 1 }
        );
        for bad_url in [
            format!("files/{A}"),
            format!("../files/{A}"),
            format!("/other/{A}"),
            format!("/files/{A}/"),
            format!("/files/{A}?x=1"),
            format!("/files/{A}#f"),
            format!("/files/%30{}", &A[1..]),
            format!("/files/{}", A.to_uppercase()),
            format!("ftp://h/files/{A}"),
            format!("https:///files/{A}"),
            format!("https://user@h/files/{A}"),
            "https://h".to_owned(),
            format!("//h/files/{A}"),
            "/files/".to_owned(),
        ] {
            assert_eq!(
                problem(&format!("final;/files/{B} {bad_url}")),
                NotAnUploadUrl { index: 1 },
                "{bad_url}"
            );
        }
        let five: Vec<String> = (0..5)
            .map(|_| format!("/files/{}", UploadId::random()))
            .collect();
        let five = five.join(" ");
        assert_eq!(problem(&format!("final;{five}")), TooManyParts { max: 4 });
        assert!(matches!(
            parse("final;\u{ff}"),
            Err(TusError::InvalidConcat(_))
        ));
    }

    #[test]
    fn every_prefix_never_panics() {
        let first = format!("final;https://h:1/files/{A}");
        let value = format!("{first} /files/{B}");
        for end in 0..value.len() {
            // The only valid proper prefix is the one that ends after the first URL.
            assert_eq!(parse(&value[..end]).is_ok(), end == first.len(), "{end}");
        }
        assert!(parse(&value).is_ok());
    }

    #[test]
    fn request_paths() {
        let base = BasePath::new("/up/").unwrap();
        assert_eq!(base.upload_id(&format!("/up/{A}")), Some(id(A)));
        assert_eq!(base.upload_id(&format!("/files/{A}")), None);
        assert_eq!(base.upload_id("/up/"), None);
        assert_eq!(base.upload_path(id(A)), format!("/up/{A}"));
    }

    proptest! {
        #[test]
        fn header_round_trip(ids in proptest::collection::vec(any::<[u8; 16]>(), 1..5)) {
            let base = BasePath::default();
            let c = UploadConcat::Final(ids.into_iter().map(|b| UploadId::from(OpaqueId::from_bytes(b))).collect());
            let text = c.to_header_value(&base);
            prop_assert_eq!(UploadConcat::parse(text.as_bytes(), &base, 4), Ok(c));
        }

        #[test]
        fn never_panics(s in "\\PC{0,80}") {
            let _ = UploadConcat::parse(s.as_bytes(), &BasePath::default(), 4);
        }
    }
}
