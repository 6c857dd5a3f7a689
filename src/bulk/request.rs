//! The Bulk Data kick-off request (`proto/bulk-v1.md` §2), parsed: the export level from
//! the path, the `Accept` and `Prefer` headers, and the query parameters `_outputFormat`,
//! `_type` and `_since`. Pure: strings in, a typed [`Kickoff`] or a typed
//! [`KickoffError`] out; no HTTP status is named here.
//!
//! Parameters this gateway does not support (`_elements`, `patient`, `_typeFilter`,
//! `includeAssociatedData`, anything else) are ignored, as the IG asks, unless the client
//! sent `Prefer: handling=strict`, when they are refused.

use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Longest group id (FHIR `id`: `[A-Za-z0-9.-]{1,64}`).
pub const MAX_GROUP_ID: usize = 64;
/// Most resource types one `_type` may name.
pub const MAX_TYPES: usize = 64;
/// The output formats accepted (all mean NDJSON).
pub const OUTPUT_FORMATS: [&str; 3] = ["application/fhir+ndjson", "application/ndjson", "ndjson"];

/// The export level: which `$export` operation was called.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "lowercase")]
pub enum Level {
    /// `GET /fhir/$export`.
    System,
    /// `GET /fhir/Patient/$export`.
    Patient,
    /// `GET /fhir/Group/{id}/$export`.
    Group(GroupId),
}

impl Level {
    /// The level as publications and audit entries name it: `system`, `patient`,
    /// `group/{id}`.
    pub fn key(&self) -> String {
        match self {
            Level::System => "system".into(),
            Level::Patient => "patient".into(),
            Level::Group(g) => format!("group/{g}"),
        }
    }

    /// The level from a publication's `level` and `group` fields.
    pub fn from_fields(level: &str, group: Option<&str>) -> Result<Self, KickoffError> {
        match (level, group) {
            ("system", None) => Ok(Level::System),
            ("patient", None) => Ok(Level::Patient),
            ("group", Some(g)) => Ok(Level::Group(g.parse()?)),
            _ => Err(KickoffError::BadLevel),
        }
    }
}

/// A FHIR `Group` id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct GroupId(String);

impl std::str::FromStr for GroupId {
    type Err = KickoffError;

    fn from_str(s: &str) -> Result<Self, KickoffError> {
        let ok = !s.is_empty()
            && s.len() <= MAX_GROUP_ID
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(KickoffError::BadGroup)
        }
    }
}

impl TryFrom<String> for GroupId {
    type Error = KickoffError;
    fn try_from(s: String) -> Result<Self, KickoffError> {
        s.parse()
    }
}

impl From<GroupId> for String {
    fn from(g: GroupId) -> String {
        g.0
    }
}

impl fmt::Display for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A validated kick-off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kickoff {
    /// The level.
    pub level: Level,
    /// `_type`: the resource types asked for (`None`: all).
    pub types: Option<Vec<String>>,
    /// `_since`, as given (validated as a FHIR `instant`).
    pub since: Option<String>,
}

/// Why a kick-off is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KickoffError {
    /// `Accept` is present and is not `application/fhir+json`.
    #[error("Accept must be application/fhir+json")]
    Accept,
    /// `Prefer: respond-async` is missing.
    #[error("Prefer: respond-async is required")]
    PreferAsync,
    /// `_outputFormat` is not an NDJSON format.
    #[error("_outputFormat is not supported")]
    OutputFormat,
    /// `_type` is empty, repeated, or names something that is not a resource type.
    #[error("_type is not a list of resource types")]
    Type,
    /// `_since` is not a FHIR instant (date, time and zone), or is in the future.
    #[error("_since is not a FHIR instant")]
    Since,
    /// A parameter this server does not support, under `Prefer: handling=strict`.
    #[error("a parameter is not supported")]
    Unsupported,
    /// The query string is not well-formed (bad escapes, a repeated parameter).
    #[error("the query string is malformed")]
    Query,
    /// The group id is not a FHIR id.
    #[error("the group id is not a FHIR id")]
    BadGroup,
    /// A publication's `level` is not `system`, `patient` or `group` (with `group`).
    #[error("level is not system, patient or group (with group)")]
    BadLevel,
}

impl KickoffError {
    /// The stable reason code (audit and the problem code's suffix).
    pub fn reason(self) -> &'static str {
        match self {
            KickoffError::Accept => "accept",
            KickoffError::PreferAsync => "prefer_async",
            KickoffError::OutputFormat => "output_format",
            KickoffError::Type => "type",
            KickoffError::Since => "since",
            KickoffError::Unsupported => "unsupported_parameter",
            KickoffError::Query => "query",
            KickoffError::BadGroup => "group",
            KickoffError::BadLevel => "level",
        }
    }
}

/// The level an `$export` path names, or `None` when the path is no kick-off. `path` is
/// the part after `/fhir/`; `$` may arrive percent-encoded.
pub fn level_of(path: &str) -> Option<Result<Level, KickoffError>> {
    let path = path
        .strip_suffix("$export")
        .or_else(|| path.strip_suffix("%24export"))?;
    match path {
        "" => Some(Ok(Level::System)),
        "Patient/" => Some(Ok(Level::Patient)),
        _ => {
            let id = path.strip_prefix("Group/")?.strip_suffix('/')?;
            Some(id.parse().map(Level::Group))
        }
    }
}

/// Parses the kick-off's headers and query. `accept` and `prefer` are the header values
/// (`None`: absent; several values arrive joined by `,`); `now` is Unix seconds.
pub fn parse(
    level: Level,
    accept: Option<&str>,
    prefer: Option<&str>,
    query: &str,
    now: u64,
) -> Result<Kickoff, KickoffError> {
    if let Some(a) = accept {
        let ok = a.split(',').any(|m| {
            let m = m.split(';').next().unwrap_or("").trim();
            m.eq_ignore_ascii_case("application/fhir+json")
        });
        if !ok {
            return Err(KickoffError::Accept);
        }
    }
    let prefs: Vec<String> = prefer
        .unwrap_or("")
        .split(',')
        .map(|p| p.trim().to_ascii_lowercase().replace(' ', ""))
        .collect();
    if !prefs.iter().any(|p| p == "respond-async") {
        return Err(KickoffError::PreferAsync);
    }
    let strict = prefs.iter().any(|p| p == "handling=strict");
    let mut types: Option<Vec<String>> = None;
    let mut since = None;
    let mut seen: Vec<String> = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = decode(k)?;
        let v = decode(v)?;
        if seen.contains(&k) {
            return Err(KickoffError::Query);
        }
        seen.push(k.clone());
        match k.as_str() {
            "_outputFormat" if !OUTPUT_FORMATS.contains(&v.as_str()) => {
                return Err(KickoffError::OutputFormat);
            }
            "_outputFormat" => {}
            "_type" => types = Some(parse_types(&v)?),
            "_since" => since = Some(parse_since(&v, now)?),
            _ if strict => return Err(KickoffError::Unsupported),
            _ => {}
        }
    }
    Ok(Kickoff {
        level,
        types,
        since,
    })
}

/// Whether `s` looks like a FHIR resource type name (`[A-Z][A-Za-z]{0,63}`).
pub fn is_resource_type(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_uppercase()
        && b.iter().all(u8::is_ascii_alphabetic)
}

fn parse_types(v: &str) -> Result<Vec<String>, KickoffError> {
    let mut out: Vec<String> = Vec::new();
    for t in v.split(',') {
        let t = t.trim();
        if !is_resource_type(t) {
            return Err(KickoffError::Type);
        }
        if !out.iter().any(|o| o == t) {
            out.push(t.to_owned());
        }
    }
    if out.len() > MAX_TYPES {
        return Err(KickoffError::Type);
    }
    Ok(out)
}

fn parse_since(v: &str, now: u64) -> Result<String, KickoffError> {
    // A FHIR instant: date, time to the second and a zone (RFC 3339 is that shape).
    let t = OffsetDateTime::parse(v, &Rfc3339).map_err(|_| KickoffError::Since)?;
    if t.unix_timestamp() > i64::try_from(now).unwrap_or(i64::MAX) {
        return Err(KickoffError::Since);
    }
    Ok(v.to_owned())
}

/// Percent-decodes one query component (`+` is a space), refusing bad escapes and
/// non-UTF-8 results.
fn decode(s: &str) -> Result<String, KickoffError> {
    let mut out = Vec::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = b.get(i + 1..i + 3).ok_or(KickoffError::Query)?;
                let hex = std::str::from_utf8(hex).map_err(|_| KickoffError::Query)?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| KickoffError::Query)?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| KickoffError::Query)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn ok(query: &str) -> Result<Kickoff, KickoffError> {
        parse(
            Level::System,
            Some("application/fhir+json"),
            Some("respond-async"),
            query,
            NOW,
        )
    }

    #[test]
    fn levels_from_paths() {
        assert_eq!(level_of("$export"), Some(Ok(Level::System)));
        assert_eq!(level_of("%24export"), Some(Ok(Level::System)));
        assert_eq!(level_of("Patient/$export"), Some(Ok(Level::Patient)));
        assert_eq!(
            level_of("Group/g-1.a/$export"),
            Some(Ok(Level::Group("g-1.a".parse().unwrap())))
        );
        assert_eq!(
            level_of("Group/bad id/$export"),
            Some(Err(KickoffError::BadGroup))
        );
        assert_eq!(
            level_of("Group//$export"),
            Some(Err(KickoffError::BadGroup))
        );
        assert_eq!(level_of("Observation/$export"), None);
        assert_eq!(level_of("bulk/x"), None);
        assert_eq!(Level::Group("g".parse().unwrap()).key(), "group/g");
    }

    #[test]
    fn parameters() {
        let k = ok("_outputFormat=application%2Ffhir%2Bndjson&_type=Patient,Observation&_since=2026-01-02T03:04:05Z").unwrap();
        assert_eq!(
            k.types,
            Some(vec!["Patient".to_owned(), "Observation".to_owned()])
        );
        assert_eq!(k.since.as_deref(), Some("2026-01-02T03:04:05Z"));
        assert_eq!(ok("").unwrap().types, None);
        assert_eq!(ok("_outputFormat=ndjson").unwrap().since, None);
        // Ignored without handling=strict.
        assert!(ok("_elements=id&patient=x").is_ok());
    }

    #[test]
    fn refusals() {
        for (q, e) in [
            ("_outputFormat=text/csv", KickoffError::OutputFormat),
            (
                "_outputFormat=application/fhir+json",
                KickoffError::OutputFormat,
            ),
            ("_type=", KickoffError::Type),
            ("_type=patient", KickoffError::Type),
            ("_type=Patient,,Observation", KickoffError::Type),
            ("_type=Patient%00", KickoffError::Type),
            ("_since=2026-01-02", KickoffError::Since),
            ("_since=2999-01-02T00:00:00Z", KickoffError::Since),
            ("_since=yesterday", KickoffError::Since),
            ("_type=Patient&_type=Patient", KickoffError::Query),
            ("_type=%zz", KickoffError::Query),
            ("_type=%ff", KickoffError::Query),
        ] {
            assert_eq!(ok(q), Err(e), "{q}");
        }
        let strict = parse(
            Level::Patient,
            None,
            Some("respond-async, handling=strict"),
            "_typeFilter=x",
            NOW,
        );
        assert_eq!(strict, Err(KickoffError::Unsupported));
        assert_eq!(
            parse(
                Level::System,
                Some("application/json"),
                Some("respond-async"),
                "",
                NOW
            ),
            Err(KickoffError::Accept)
        );
        assert_eq!(
            parse(Level::System, None, None, "", NOW),
            Err(KickoffError::PreferAsync)
        );
        assert_eq!(
            parse(Level::System, None, Some("return=minimal"), "", NOW),
            Err(KickoffError::PreferAsync)
        );
    }

    #[test]
    fn publication_levels() {
        assert_eq!(Level::from_fields("system", None), Ok(Level::System));
        assert_eq!(
            Level::from_fields("group", None),
            Err(KickoffError::BadLevel)
        );
        assert_eq!(
            Level::from_fields("system", Some("g")),
            Err(KickoffError::BadLevel)
        );
        assert_eq!(
            Level::from_fields("group", Some("a b")),
            Err(KickoffError::BadGroup)
        );
    }

    /// Every prefix of a query parses or is refused, never a panic.
    #[test]
    fn every_prefix() {
        let q = "_outputFormat=application%2Ffhir%2Bndjson&_type=Patient&_since=2026-01-02T03:04:05%2B01:00";
        for end in 0..=q.len() {
            let _ = ok(&q[..end]);
        }
        assert!(ok(q).is_ok());
    }
}
