//! Batch manifests and provenance records: bytes in, validated values or a precise error
//! out. Normative format: `proto/manifest-v1.md` (JSON Schemas beside it, vectors in
//! `proto/vectors/manifest-v1/` and `proto/vectors/provenance-v1/`).
//!
//! A **manifest** (`"version": "sallyport.manifest/1"`) lists every member of a batch —
//! logical name, size, SHA-256, media type, and for `application/fhir+ndjson` the FHIR
//! resource type and record count — and may state the member count and total bytes, and
//! name a profile. A **provenance record** (`"version": "sallyport.provenance/1"`) says
//! where the batch came from: source system, job id, export time, requester, scopes,
//! purpose of use, filters, schema version, transformation notes. Neither carries PHI.
//!
//! This module owns the parsing: a size limit checked before anything else, UTF-8, strict
//! JSON (no duplicate keys), no unknown fields, every string and list bounded, member names
//! unique ignoring ASCII case, stated totals equal to what is listed. Errors name the field
//! by path (`/members/3/sha256`) and never quote a value. It keeps the SHA-256 of the exact
//! bytes received for the audit record.
//!
//! It deliberately does not store anything, speak HTTP, or compare a manifest with what
//! arrived (the batch verdict core does that, from these values). Pure: no I/O.

mod error;
mod fields;
mod json;
mod provenance;

use std::collections::HashMap;

pub use error::{FieldPath, JsonType, Location, ManifestError, Problem, Segment};
pub use fields::{
    FHIR_NDJSON, MAX_MEDIA_TYPE_LEN, MAX_NAME_LEN, MAX_PROFILE_LEN, MAX_RESOURCE_TYPE_LEN,
    MediaType, MemberName, ProfileName, ResourceType, Sha256,
};
pub use provenance::{
    Identifier, MAX_FILTERS, MAX_SCOPES, MAX_TRANSFORMATIONS, PROVENANCE_VERSION, Provenance,
    PurposeOfUse, Scope, Text,
};

use json::{Fields, Json};

/// The manifest format this module implements.
pub const VERSION: &str = "sallyport.manifest/1";
/// The format's ceiling on members; [`ManifestLimits::max_members`] may only lower it.
pub const MAX_MEMBERS: usize = 10_000;
/// The largest size, count or total: 2^53−1, exact in every JSON implementation.
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;
/// Default [`ManifestLimits::max_manifest_bytes`]: 1 MiB.
pub const DEFAULT_MAX_MANIFEST_BYTES: usize = 1 << 20;
/// Default [`ManifestLimits::max_provenance_bytes`]: 64 KiB.
pub const DEFAULT_MAX_PROVENANCE_BYTES: usize = 64 << 10;

/// Configured limits, checked before parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ManifestLimits {
    /// A larger manifest is refused unread.
    pub max_manifest_bytes: usize,
    /// More members are refused; values above [`MAX_MEMBERS`] act as [`MAX_MEMBERS`].
    pub max_members: usize,
    /// A larger provenance record is refused unread.
    pub max_provenance_bytes: usize,
}

/// A parsed, valid manifest.
#[derive(Debug, Clone)]
pub struct Manifest {
    profile: Option<ProfileName>,
    members: Vec<Member>,
    total_members: Option<u64>,
    total_bytes: Option<u64>,
    listed_bytes: u64,
    by_name: HashMap<String, usize>,
    digest: Sha256,
}

/// One listed member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    name: MemberName,
    size: u64,
    sha256: Sha256,
    media_type: MediaType,
    ndjson: Option<Ndjson>,
}

/// What an `application/fhir+ndjson` member declares about its lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ndjson {
    resource_type: ResourceType,
    records: u64,
}

// === impl ManifestLimits ===

impl Default for ManifestLimits {
    fn default() -> Self {
        Self {
            max_manifest_bytes: DEFAULT_MAX_MANIFEST_BYTES,
            max_members: MAX_MEMBERS,
            max_provenance_bytes: DEFAULT_MAX_PROVENANCE_BYTES,
        }
    }
}

// === impl Manifest ===

impl Manifest {
    /// Parse a manifest. Refuses, in order: more than `limits.max_manifest_bytes` (unread),
    /// invalid UTF-8, malformed JSON or a duplicate key, an unsupported `version`, an
    /// unknown field, then each field in document-schema order.
    pub fn parse(bytes: &[u8], limits: &ManifestLimits) -> Result<Self, ManifestError> {
        let root = json::decode(bytes, limits.max_manifest_bytes)?;
        let path = FieldPath::root();
        check_version(&root, &path, VERSION)?;
        let mut f = Fields::new(
            root,
            &path,
            &[
                "version",
                "profile",
                "members",
                "total_members",
                "total_bytes",
            ],
        )?;
        let _ = f.required("version")?;
        let profile = match f.optional("profile") {
            Some((v, p)) => Some(ProfileName::parse(v, &p)?),
            None => None,
        };
        let (v, members_path) = f.required("members")?;
        let max_members = limits.max_members.min(MAX_MEMBERS);
        let items = json::array(v, &members_path, max_members, true)?;
        let mut members = Vec::with_capacity(items.len());
        let mut by_name = HashMap::with_capacity(items.len());
        let mut folded = HashMap::with_capacity(items.len());
        let mut listed_bytes: u64 = 0;
        for (i, (v, p)) in items.into_iter().enumerate() {
            let m = Member::parse(v, &p)?;
            if let Some(&first) = folded.get(&m.name.folded()) {
                return Err(ManifestError::at(
                    &p.key("name"),
                    Problem::DuplicateName { first },
                ));
            }
            listed_bytes = listed_bytes
                .checked_add(m.size)
                .filter(|s| *s <= MAX_SAFE_INTEGER)
                .ok_or_else(|| {
                    ManifestError::at(
                        &p.key("size"),
                        Problem::SumTooBig {
                            max: MAX_SAFE_INTEGER,
                        },
                    )
                })?;
            folded.insert(m.name.folded(), i);
            by_name.insert(m.name.as_str().to_owned(), i);
            members.push(m);
        }
        let total_members = match f.optional("total_members") {
            Some((v, p)) => {
                let n = json::integer(v, &p, MAX_SAFE_INTEGER)?;
                if n != members.len() as u64 {
                    let listed = members.len();
                    return Err(ManifestError::at(
                        &p,
                        Problem::TotalMembersMismatch { listed },
                    ));
                }
                Some(n)
            }
            None => None,
        };
        let total_bytes = match f.optional("total_bytes") {
            Some((v, p)) => {
                let n = json::integer(v, &p, MAX_SAFE_INTEGER)?;
                if n != listed_bytes {
                    let listed = listed_bytes;
                    return Err(ManifestError::at(
                        &p,
                        Problem::TotalBytesMismatch { listed },
                    ));
                }
                Some(n)
            }
            None => None,
        };
        Ok(Self {
            profile,
            members,
            total_members,
            total_bytes,
            listed_bytes,
            by_name,
            digest: Sha256::of(bytes),
        })
    }

    /// The members, in manifest order.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// The member listed under exactly this name, and its index.
    pub fn member(&self, name: &str) -> Option<(usize, &Member)> {
        let i = *self.by_name.get(name)?;
        self.members.get(i).map(|m| (i, m))
    }

    /// The profile the batch names, if any.
    pub fn profile(&self) -> Option<&ProfileName> {
        self.profile.as_ref()
    }

    /// `total_members` as stated (equal to `members().len()` when present).
    pub fn total_members(&self) -> Option<u64> {
        self.total_members
    }

    /// `total_bytes` as stated (equal to [`listed_bytes`](Self::listed_bytes) when present).
    pub fn total_bytes(&self) -> Option<u64> {
        self.total_bytes
    }

    /// The sum of the listed sizes (at most 2^53−1).
    pub fn listed_bytes(&self) -> u64 {
        self.listed_bytes
    }

    /// SHA-256 of the exact bytes parsed, for the audit record.
    pub fn digest(&self) -> &Sha256 {
        &self.digest
    }

    /// This manifest as compact JSON (keys sorted). Parsing it gives an equal manifest
    /// (with the digest of these bytes).
    pub fn to_json(&self) -> Vec<u8> {
        let mut root = serde_json::Map::new();
        root.insert("version".into(), VERSION.into());
        if let Some(p) = &self.profile {
            root.insert("profile".into(), p.as_str().into());
        }
        let members = self
            .members
            .iter()
            .map(Member::to_value)
            .collect::<Vec<_>>();
        root.insert("members".into(), members.into());
        if let Some(n) = self.total_members {
            root.insert("total_members".into(), n.into());
        }
        if let Some(n) = self.total_bytes {
            root.insert("total_bytes".into(), n.into());
        }
        serde_json::Value::Object(root).to_string().into_bytes()
    }
}

/// Two manifests are equal when they say the same thing; the digest is of the bytes each
/// arrived as, and two spellings of one manifest differ there.
impl PartialEq for Manifest {
    fn eq(&self, other: &Self) -> bool {
        self.profile == other.profile
            && self.members == other.members
            && self.total_members == other.total_members
            && self.total_bytes == other.total_bytes
    }
}

impl Eq for Manifest {}

/// When the root is an object with a string `version`, it must be `expected` — checked
/// before unknown fields, so that a later version is named as such.
fn check_version(root: &Json, path: &FieldPath, expected: &str) -> Result<(), ManifestError> {
    let Json::Object(entries) = root else {
        return Ok(());
    };
    match entries.iter().find(|(k, _)| k == "version") {
        None => Ok(()),
        Some((_, Json::String(s))) if s == expected => Ok(()),
        Some((_, Json::String(_))) => Err(ManifestError::at(
            &path.key("version"),
            Problem::UnsupportedVersion,
        )),
        Some(_) => Err(json::wrong_type(&path.key("version"), JsonType::String)),
    }
}

// === impl Member ===

impl Member {
    fn parse(value: Json, path: &FieldPath) -> Result<Self, ManifestError> {
        let mut f = Fields::new(
            value,
            path,
            &["name", "size", "sha256", "media_type", "ndjson"],
        )?;
        let (v, p) = f.required("name")?;
        let name = MemberName::parse(v, &p)?;
        let (v, p) = f.required("size")?;
        let size = json::integer(v, &p, MAX_SAFE_INTEGER)?;
        let (v, p) = f.required("sha256")?;
        let sha256 = Sha256::parse(v, &p)?;
        let (v, p) = f.required("media_type")?;
        let media_type = MediaType::parse(v, &p)?;
        // `ndjson` is required exactly when the media type is application/fhir+ndjson.
        let ndjson = match (f.optional("ndjson"), media_type.is_fhir_ndjson()) {
            (Some((v, p)), true) => Some(Ndjson::parse(v, &p)?),
            (Some((_, p)), false) => return Err(ManifestError::at(&p, Problem::NdjsonNotAllowed)),
            (None, true) => {
                return Err(ManifestError::at(
                    &path.key("ndjson"),
                    Problem::MissingField,
                ));
            }
            (None, false) => None,
        };
        Ok(Self {
            name,
            size,
            sha256,
            media_type,
            ndjson,
        })
    }

    /// The logical name.
    pub fn name(&self) -> &MemberName {
        &self.name
    }

    /// The size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The SHA-256 of the member's bytes.
    pub fn sha256(&self) -> &Sha256 {
        &self.sha256
    }

    /// The media type.
    pub fn media_type(&self) -> &MediaType {
        &self.media_type
    }

    /// For `application/fhir+ndjson` members (and only those): resource type and records.
    pub fn ndjson(&self) -> Option<&Ndjson> {
        self.ndjson.as_ref()
    }

    fn to_value(&self) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        m.insert("name".into(), self.name.as_str().into());
        m.insert("size".into(), self.size.into());
        m.insert("sha256".into(), self.sha256.to_hex().into());
        m.insert("media_type".into(), self.media_type.as_str().into());
        if let Some(n) = &self.ndjson {
            let mut o = serde_json::Map::new();
            o.insert("resource_type".into(), n.resource_type.as_str().into());
            o.insert("records".into(), n.records.into());
            m.insert("ndjson".into(), o.into());
        }
        m.into()
    }
}

// === impl Ndjson ===

impl Ndjson {
    fn parse(value: Json, path: &FieldPath) -> Result<Self, ManifestError> {
        let mut f = Fields::new(value, path, &["resource_type", "records"])?;
        let (v, p) = f.required("resource_type")?;
        let resource_type = ResourceType::parse(v, &p)?;
        let (v, p) = f.required("records")?;
        let records = json::integer(v, &p, MAX_SAFE_INTEGER)?;
        Ok(Self {
            resource_type,
            records,
        })
    }

    /// The `resourceType` every line must have.
    pub fn resource_type(&self) -> &ResourceType {
        &self.resource_type
    }

    /// The number of lines (records).
    pub fn records(&self) -> u64 {
        self.records
    }
}

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
