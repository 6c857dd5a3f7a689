//! The download list a manifest gives: a FHIR Bulk Data complete-status manifest
//! (`output[]` with `url`, `type`, `count`), with each file's SHA-256 and size in FHIR
//! extensions (`proto/client-v1.md` §3).
//!
//! Pure: the manifest's bytes in, a bounded list of [`Expected`] files out. Closed where it
//! matters (every `output` entry needs an `https` URL; a SHA-256 must be 64 hex digits; a
//! count or size a non-negative integer) and open elsewhere, since a Bulk Data manifest may
//! carry fields this client does not use. `requiresAccessToken` is reported in the
//! [`Listing`]; whether to send a token, and where, is the caller's (`download`: only to
//! the status URL's own origin; a signed link is its own credential and gets none).
//!
//! Not here: fetching the manifest (the caller caps it at [`MAX_MANIFEST_BYTES`]).

use serde_json::Value;

/// The extension carrying a file's SHA-256 (`valueString`, 64 lowercase hex digits).
pub const SHA256_EXTENSION: &str = "https://sallyport.dev/fhir/StructureDefinition/file-sha256";
/// The extension carrying a file's size in bytes (`valueInteger64`, `valueInteger`, or
/// `valueDecimal` without a fraction).
pub const SIZE_EXTENSION: &str = "https://sallyport.dev/fhir/StructureDefinition/file-size";
/// Largest manifest read.
pub const MAX_MANIFEST_BYTES: u64 = 16 << 20;
/// Most files one manifest may list.
pub const MAX_OUTPUTS: usize = 10_000;
/// Longest file URL accepted.
pub const MAX_URL_LEN: usize = 4096;

/// One file a manifest lists, and what it must be.
#[derive(Clone, PartialEq, Eq)]
pub struct Expected {
    /// The file's (signed) URL: a credential, never printed.
    pub url: String,
    /// The FHIR resource type, when given.
    pub resource_type: Option<String>,
    /// The NDJSON record count, when given.
    pub count: Option<u64>,
    /// The SHA-256, when given.
    pub sha256: Option<[u8; 32]>,
    /// The size in bytes, when given.
    pub size: Option<u64>,
    /// Whether its requests carry the SMART access token (a file of a
    /// `requiresAccessToken: true` manifest on the status URL's own origin).
    pub bearer: bool,
}

impl std::fmt::Debug for Expected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Expected")
            .field("resource_type", &self.resource_type)
            .field("count", &self.count)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

/// Why a manifest was refused. Names the entry, never a URL (a credential).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// Not JSON, or not an object.
    #[error("the manifest is not a JSON object")]
    NotAnObject,
    /// `output` is missing or not an array.
    #[error("the manifest has no output array")]
    NoOutput,
    /// Too many files.
    #[error("the manifest lists more than {MAX_OUTPUTS} files")]
    TooMany,
    /// `requiresAccessToken` is there and not a boolean.
    #[error("the manifest's requiresAccessToken is not a boolean")]
    RequiresAccessToken,
    /// An entry is malformed.
    #[error("output[{index}]: {what}")]
    Entry {
        /// The entry's position.
        index: usize,
        /// What is wrong.
        what: &'static str,
    },
}

/// What a manifest lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// The files.
    pub files: Vec<Expected>,
    /// `requiresAccessToken`: the file URLs need the client's access token.
    pub requires_access_token: bool,
}

/// Parses a manifest.
pub fn parse(bytes: &[u8]) -> Result<Listing, ManifestError> {
    let doc: Value = serde_json::from_slice(bytes).map_err(|_| ManifestError::NotAnObject)?;
    let obj = doc.as_object().ok_or(ManifestError::NotAnObject)?;
    let requires_access_token = match obj.get("requiresAccessToken") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(ManifestError::RequiresAccessToken),
    };
    let output = obj
        .get("output")
        .and_then(Value::as_array)
        .ok_or(ManifestError::NoOutput)?;
    if output.len() > MAX_OUTPUTS {
        return Err(ManifestError::TooMany);
    }
    let files = output
        .iter()
        .enumerate()
        .map(|(index, e)| entry(e).map_err(|what| ManifestError::Entry { index, what }))
        .collect::<Result<_, _>>()?;
    Ok(Listing {
        files,
        requires_access_token,
    })
}

fn entry(e: &Value) -> Result<Expected, &'static str> {
    let e = e.as_object().ok_or("not an object")?;
    let url = e.get("url").and_then(Value::as_str).ok_or("no url")?;
    if url.len() > MAX_URL_LEN {
        return Err("url too long");
    }
    if !url.starts_with("https://") {
        return Err("url is not https");
    }
    let resource_type = match e.get("type") {
        None => None,
        Some(Value::String(s)) if s.len() <= 64 => Some(s.clone()),
        Some(_) => return Err("type is not a short string"),
    };
    let count = match e.get("count") {
        None => None,
        Some(v) => Some(v.as_u64().ok_or("count is not a non-negative integer")?),
    };
    let mut sha256 = None;
    let mut size = None;
    if let Some(exts) = e.get("extension") {
        for x in exts.as_array().ok_or("extension is not an array")? {
            match x.get("url").and_then(Value::as_str) {
                Some(SHA256_EXTENSION) => {
                    if sha256.is_some() {
                        return Err("two sha256 extensions");
                    }
                    let hex = x
                        .get("valueString")
                        .and_then(Value::as_str)
                        .filter(|h| {
                            h.len() == 64
                                && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
                        })
                        .ok_or("sha256 is not 64 lowercase hex digits")?;
                    let mut d = [0u8; 32];
                    hex::decode_to_slice(hex, &mut d).map_err(|_| "sha256 is not hex")?;
                    sha256 = Some(d);
                }
                Some(SIZE_EXTENSION) => {
                    if size.is_some() {
                        return Err("two size extensions");
                    }
                    size = Some(size_value(x).ok_or("size is not a non-negative integer")?);
                }
                _ => {}
            }
        }
    }
    Ok(Expected {
        url: url.to_owned(),
        resource_type,
        count,
        sha256,
        size,
        bearer: false,
    })
}

/// FHIR `integer64` is a JSON string in R5; `integer` and `decimal` are numbers.
fn size_value(x: &Value) -> Option<u64> {
    if let Some(s) = x.get("valueInteger64").and_then(Value::as_str) {
        return (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten();
    }
    x.get("valueInteger64")
        .or_else(|| x.get("valueInteger"))
        .or_else(|| x.get("valueDecimal"))
        .and_then(Value::as_u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn manifest(outputs: Value) -> Vec<u8> {
        json!({
            "transactionTime": "2026-12-06T00:00:00Z",
            "request": "https://gw.example/fhir/$export",
            "requiresAccessToken": false,
            "output": outputs,
            "error": []
        })
        .to_string()
        .into_bytes()
    }

    #[test]
    fn a_full_entry() {
        let sha = "ab".repeat(32);
        let got = parse(&manifest(json!([{
            "type": "Patient", "url": "https://gw.example/d/x?sig=1", "count": 3,
            "extension": [
                {"url": SHA256_EXTENSION, "valueString": sha},
                {"url": SIZE_EXTENSION, "valueInteger64": "12345"},
                {"url": "https://other.example/ext", "valueBoolean": true}
            ]
        }, {"url": "https://gw.example/d/y"}])))
        .unwrap();
        assert!(!got.requires_access_token);
        let got = got.files;
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].count, Some(3));
        assert_eq!(got[0].size, Some(12345));
        assert_eq!(got[0].sha256, Some([0xab; 32]));
        assert_eq!(got[0].resource_type.as_deref(), Some("Patient"));
        assert_eq!(got[1].sha256, None);
        assert!(
            !format!("{:?}", got[0]).contains("sig"),
            "Debug hides the URL"
        );
    }

    #[test]
    fn refusals_name_the_entry() {
        let cases = [
            (json!([{"url": "http://gw/d/x"}]), "url is not https"),
            (json!([{}]), "no url"),
            (
                json!([{"url": "https://g/d/x", "count": -1}]),
                "count is not a non-negative integer",
            ),
            (
                json!([{"url": "https://g/d/x", "count": 1.5}]),
                "count is not a non-negative integer",
            ),
            (
                json!([{"url": "https://g/d/x", "extension": [{"url": SHA256_EXTENSION, "valueString": "AB"}]}]),
                "sha256 is not 64 lowercase hex digits",
            ),
            (
                json!([{"url": "https://g/d/x", "extension": [{"url": SIZE_EXTENSION, "valueInteger64": "-3"}]}]),
                "size is not a non-negative integer",
            ),
        ];
        for (outputs, what) in cases {
            assert_eq!(
                parse(&manifest(outputs)),
                Err(ManifestError::Entry { index: 0, what })
            );
        }
        assert_eq!(parse(b"[]"), Err(ManifestError::NotAnObject));
        assert_eq!(parse(b"{"), Err(ManifestError::NotAnObject));
        assert_eq!(parse(b"{}"), Err(ManifestError::NoOutput));
        let needs = json!({"requiresAccessToken": true, "output": []}).to_string();
        assert!(parse(needs.as_bytes()).unwrap().requires_access_token);
        let odd = json!({"requiresAccessToken": "yes", "output": []}).to_string();
        assert_eq!(
            parse(odd.as_bytes()),
            Err(ManifestError::RequiresAccessToken)
        );
        let many: Vec<Value> = (0..=MAX_OUTPUTS)
            .map(|_| json!({"url": "https://g/d/x"}))
            .collect();
        assert_eq!(
            parse(&manifest(Value::Array(many))),
            Err(ManifestError::TooMany)
        );
    }

    /// Every prefix of a valid manifest is refused or parsed, never a panic.
    #[test]
    fn every_prefix() {
        let m = manifest(json!([{"url": "https://g/d/x", "count": 2}]));
        for end in 0..m.len() {
            assert!(parse(&m[..end]).is_err());
        }
        assert!(parse(&m).is_ok());
    }
}
