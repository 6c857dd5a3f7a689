//! The provenance record (`proto/manifest-v1.md` §3): where a batch came from, under
//! whose authority and for what purpose. It travels with the batch and is served beside
//! it; this module only parses it.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::error::{FieldPath, ManifestError, Problem};
use super::fields::Sha256;
use super::json::{self, Fields, Json};
use super::{ManifestLimits, check_version};

/// The provenance format this module implements.
pub const PROVENANCE_VERSION: &str = "sallyport.provenance/1";
/// Most scopes a record may list.
pub const MAX_SCOPES: usize = 64;
/// Most filters a record may list.
pub const MAX_FILTERS: usize = 64;
/// Most transformation notes a record may list.
pub const MAX_TRANSFORMATIONS: usize = 32;

const MAX_IDENTIFIER_LEN: usize = 256;
const MAX_SCOPE_LEN: usize = 256;
const MAX_CODE_LEN: usize = 64;
const MAX_TEXT_LEN: usize = 1024;
const MAX_SCHEMA_VERSION_LEN: usize = 64;

/// A parsed, valid provenance record.
#[derive(Debug, Clone)]
pub struct Provenance {
    source_system: Identifier,
    job_id: Identifier,
    exported_at: OffsetDateTime,
    exported_at_text: String,
    requester: Identifier,
    scopes: Vec<Scope>,
    purpose_of_use: PurposeOfUse,
    filters: Vec<Text>,
    schema_version: Option<Text>,
    transformations: Vec<Text>,
    digest: Sha256,
}

/// 1–256 bytes of visible ASCII (no space): a system, job or requester identifier.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Identifier(String);

/// 1–1024 bytes (64 for a schema version) of printable ASCII, space included.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Text(String);

/// A SMART resource scope: `(patient|user|system)/(Type|*).(read|write|*|cruds)[?query]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scope(String);

/// A coded purpose of use: code system URI and code (e.g. the HL7 v3 ActReason system
/// and `TREAT`, `HPAYMT`, `HOPERAT`, `PUBHLTH`, `HRESCH`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PurposeOfUse {
    system: String,
    code: String,
}

// === impl Provenance ===

impl Provenance {
    /// Parse a provenance record; refuses more than `limits.max_provenance_bytes` unread.
    pub fn parse(bytes: &[u8], limits: &ManifestLimits) -> Result<Self, ManifestError> {
        let root = json::decode(bytes, limits.max_provenance_bytes)?;
        let path = FieldPath::root();
        check_version(&root, &path, PROVENANCE_VERSION)?;
        let mut f = Fields::new(
            root,
            &path,
            &[
                "version",
                "source_system",
                "job_id",
                "exported_at",
                "requester",
                "scopes",
                "purpose_of_use",
                "filters",
                "schema_version",
                "transformations",
            ],
        )?;
        let _ = f.required("version")?;
        let (v, p) = f.required("source_system")?;
        let source_system = Identifier::parse(v, &p)?;
        let (v, p) = f.required("job_id")?;
        let job_id = Identifier::parse(v, &p)?;
        let (v, p) = f.required("exported_at")?;
        // Any character may be there: whatever is not the one form is a `TimestampForm`.
        let exported_at_text = json::string(v, &p, 64, |_| true)?;
        let exported_at = timestamp(&exported_at_text)
            .ok_or_else(|| ManifestError::at(&p, Problem::TimestampForm))?;
        let (v, p) = f.required("requester")?;
        let requester = Identifier::parse(v, &p)?;
        let (v, p) = f.required("scopes")?;
        let scopes = json::array(v, &p, MAX_SCOPES, true)?
            .into_iter()
            .map(|(v, p)| Scope::parse(v, &p))
            .collect::<Result<Vec<_>, _>>()?;
        let (v, p) = f.required("purpose_of_use")?;
        let purpose_of_use = PurposeOfUse::parse(v, &p)?;
        let filters = texts(f.optional("filters"), MAX_FILTERS)?;
        let schema_version = match f.optional("schema_version") {
            Some((v, p)) => Some(Text::parse(v, &p, MAX_SCHEMA_VERSION_LEN)?),
            None => None,
        };
        let transformations = texts(f.optional("transformations"), MAX_TRANSFORMATIONS)?;
        Ok(Self {
            source_system,
            job_id,
            exported_at,
            exported_at_text,
            requester,
            scopes,
            purpose_of_use,
            filters,
            schema_version,
            transformations,
            digest: Sha256::of(bytes),
        })
    }

    /// The system the data was exported from.
    pub fn source_system(&self) -> &Identifier {
        &self.source_system
    }

    /// The export or job id at the source.
    pub fn job_id(&self) -> &Identifier {
        &self.job_id
    }

    /// When the source exported the data (UTC).
    pub fn exported_at(&self) -> OffsetDateTime {
        self.exported_at
    }

    /// Who asked for the export.
    pub fn requester(&self) -> &Identifier {
        &self.requester
    }

    /// The scopes the export ran under (at least one).
    pub fn scopes(&self) -> &[Scope] {
        &self.scopes
    }

    /// Why the data is disclosed.
    pub fn purpose_of_use(&self) -> &PurposeOfUse {
        &self.purpose_of_use
    }

    /// Filter criteria (e.g. `_typeFilter` values), possibly none.
    pub fn filters(&self) -> &[Text] {
        &self.filters
    }

    /// The data's schema version, e.g. `FHIR R4 4.0.1`.
    pub fn schema_version(&self) -> Option<&Text> {
        self.schema_version.as_ref()
    }

    /// Notes on transformations applied, possibly none.
    pub fn transformations(&self) -> &[Text] {
        &self.transformations
    }

    /// SHA-256 of the exact bytes parsed, for the audit record.
    pub fn digest(&self) -> &Sha256 {
        &self.digest
    }

    /// This record as compact JSON (keys sorted); parsing it gives an equal record.
    pub fn to_json(&self) -> Vec<u8> {
        let strings = |v: &[Text]| v.iter().map(|t| t.0.clone()).collect::<Vec<_>>();
        let mut root = serde_json::Map::new();
        root.insert("version".into(), PROVENANCE_VERSION.into());
        root.insert("source_system".into(), self.source_system.0.clone().into());
        root.insert("job_id".into(), self.job_id.0.clone().into());
        root.insert("exported_at".into(), self.exported_at_text.clone().into());
        root.insert("requester".into(), self.requester.0.clone().into());
        let scopes = self.scopes.iter().map(|s| s.0.clone()).collect::<Vec<_>>();
        root.insert("scopes".into(), scopes.into());
        let mut purpose = serde_json::Map::new();
        purpose.insert("system".into(), self.purpose_of_use.system.clone().into());
        purpose.insert("code".into(), self.purpose_of_use.code.clone().into());
        root.insert("purpose_of_use".into(), purpose.into());
        if !self.filters.is_empty() {
            root.insert("filters".into(), strings(&self.filters).into());
        }
        if let Some(s) = &self.schema_version {
            root.insert("schema_version".into(), s.0.clone().into());
        }
        if !self.transformations.is_empty() {
            root.insert(
                "transformations".into(),
                strings(&self.transformations).into(),
            );
        }
        serde_json::Value::Object(root).to_string().into_bytes()
    }
}

/// Equal when they say the same thing; the digest is of the bytes each arrived as. An
/// absent list and an empty one say the same.
impl PartialEq for Provenance {
    fn eq(&self, other: &Self) -> bool {
        self.source_system == other.source_system
            && self.job_id == other.job_id
            && self.exported_at == other.exported_at
            && self.requester == other.requester
            && self.scopes == other.scopes
            && self.purpose_of_use == other.purpose_of_use
            && self.filters == other.filters
            && self.schema_version == other.schema_version
            && self.transformations == other.transformations
    }
}

impl Eq for Provenance {}

fn texts(field: Option<(Json, FieldPath)>, max: usize) -> Result<Vec<Text>, ManifestError> {
    let Some((v, p)) = field else {
        return Ok(Vec::new());
    };
    json::array(v, &p, max, false)?
        .into_iter()
        .map(|(v, p)| Text::parse(v, &p, MAX_TEXT_LEN))
        .collect()
}

/// `YYYY-MM-DDTHH:MM:SS[.1-9 digits]Z`, and a real instant.
fn timestamp(s: &str) -> Option<OffsetDateTime> {
    let b = s.as_bytes();
    let (head, rest) = (b.get(..19)?, b.get(19..)?);
    let shape_ok = head.iter().enumerate().all(|(i, c)| match i {
        4 | 7 => *c == b'-',
        10 => *c == b'T',
        13 | 16 => *c == b':',
        _ => c.is_ascii_digit(),
    });
    let tail_ok = match rest {
        [b'Z'] => true,
        [b'.', digits @ .., b'Z'] => {
            (1..=9).contains(&digits.len()) && digits.iter().all(u8::is_ascii_digit)
        }
        _ => false,
    };
    if !(shape_ok && tail_ok) {
        return None;
    }
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

// === impl Identifier, Text ===

impl Identifier {
    fn parse(value: Json, path: &FieldPath) -> Result<Self, ManifestError> {
        json::string(value, path, MAX_IDENTIFIER_LEN, json::visible).map(Self)
    }

    /// The identifier.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Text {
    fn parse(value: Json, path: &FieldPath, max: usize) -> Result<Self, ManifestError> {
        json::string(value, path, max, json::printable).map(Self)
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

// === impl Scope ===

impl Scope {
    fn parse(value: Json, path: &FieldPath) -> Result<Self, ManifestError> {
        let s = json::string(value, path, MAX_SCOPE_LEN, json::visible)?;
        if !is_smart_scope(&s) {
            return Err(ManifestError::at(path, Problem::ScopeForm));
        }
        Ok(Self(s))
    }

    /// The scope.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_smart_scope(s: &str) -> bool {
    let (scope, query) = match s.split_once('?') {
        Some((scope, query)) => (scope, Some(query)),
        None => (s, None),
    };
    if query.is_some_and(str::is_empty) {
        return false;
    }
    let Some((context, rest)) = scope.split_once('/') else {
        return false;
    };
    let Some((resource, permission)) = rest.split_once('.') else {
        return false;
    };
    let resource_ok = resource == "*"
        || (resource.len() <= 64
            && resource
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_uppercase())
            && resource.bytes().all(|b| b.is_ascii_alphabetic()));
    matches!(context, "patient" | "user" | "system")
        && resource_ok
        && (matches!(permission, "read" | "write" | "*") || is_cruds(permission))
}

/// SMART v2 permissions: a non-empty subsequence of `cruds`, in that order.
fn is_cruds(p: &str) -> bool {
    let mut order = "cruds".chars();
    !p.is_empty() && p.chars().all(|c| order.any(|o| o == c))
}

// === impl PurposeOfUse ===

/// The bytes a purpose-of-use code may hold.
fn code_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')
}

impl PurposeOfUse {
    fn parse(value: Json, path: &FieldPath) -> Result<Self, ManifestError> {
        let mut f = Fields::new(value, path, &["system", "code"])?;
        let (v, p) = f.required("system")?;
        let system = json::string(v, &p, MAX_IDENTIFIER_LEN, json::visible)?;
        if !["http://", "https://", "urn:"]
            .iter()
            .any(|s| system.starts_with(s))
            || ["http://", "https://", "urn:"].contains(&system.as_str())
        {
            return Err(ManifestError::at(&p, Problem::SystemForm));
        }
        let (v, p) = f.required("code")?;
        let code = json::string(v, &p, MAX_CODE_LEN, code_byte)?;
        Ok(Self { system, code })
    }

    /// Whether `s` is a code as a provenance record may write it (`[A-Za-z0-9._-]`, 1–64
    /// bytes): the rule a configured profile's `purpose_of_use` list is checked against.
    pub fn is_code(s: &str) -> bool {
        !s.is_empty() && s.len() <= MAX_CODE_LEN && s.bytes().all(code_byte)
    }

    /// The code system URI.
    pub fn system(&self) -> &str {
        &self.system
    }

    /// The code.
    pub fn code(&self) -> &str {
        &self.code
    }
}

#[cfg(test)]
mod tests;
