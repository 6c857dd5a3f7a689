//! The stored grant record and its versioned JSON encoding.
//!
//! ```text
//! {"v":1,"grant":{"id":…,"issuer":…,"partner":…,"scope":{"artifacts":[…],"batch":null},
//!   "methods":"GET,HEAD","not_before":…,"expires":…,"bindings":{…},"file_name":…,
//!   "limits":{"max_downloads":…,"max_bytes":…},"key_id":…,"created_at":…,"revoked":null}}
//! ```
//!
//! Every field is stored in its canonical text form and parsed back into its typed value on
//! decode ([`GrantRecord::decode`] refuses unknown fields, other versions, and values that
//! do not parse), so a corrupt or foreign record fails before any decision is made on it.
//! The normative description is `proto/grants-v1.md`.
//!
//! The response file name may be PHI: it is kept here (the link never carries it) and
//! `Debug` never prints it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::signed_link::{
    ArtifactId, Bindings, CertFingerprint, ClientNet, GrantId, KeyId, MethodSet, ResponseFileName,
};

/// The current record encoding version.
pub const GRANT_RECORD_VERSION: u32 = 1;
/// Longest revocation reason, in bytes.
pub const MAX_REASON_LEN: usize = 200;
/// Most artifacts one grant may cover.
pub const MAX_SCOPE_ARTIFACTS: usize = 1000;

/// The name of the partner organisation a grant is issued to: 1–64 characters of
/// `[a-z0-9._-]`, starting with a letter or digit. Lowercase only, so one partner has one
/// spelling in the `partner` index.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartnerName(String);

/// Why a string is not a [`PartnerName`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PartnerNameError {
    /// Empty or longer than 64 characters.
    #[error("a partner name has 1 to 64 characters")]
    Length,
    /// A character outside `[a-z0-9._-]` or a first character that is not a letter or digit.
    #[error(
        "a partner name uses only a-z, 0-9, '.', '_' and '-', and starts with a letter or digit"
    )]
    Character,
}

impl PartnerName {
    /// The name's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for PartnerName {
    type Err = PartnerNameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let b = s.as_bytes();
        if b.is_empty() || b.len() > 64 {
            return Err(PartnerNameError::Length);
        }
        let first = b[0].is_ascii_lowercase() || b[0].is_ascii_digit();
        let rest = b.iter().all(|&c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'.' | b'_' | b'-')
        });
        if !first || !rest {
            return Err(PartnerNameError::Character);
        }
        Ok(Self(s.to_owned()))
    }
}

impl fmt::Display for PartnerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for PartnerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PartnerName({})", self.0)
    }
}

/// A batch id as grants and artifacts carry it (batches themselves come later): the same
/// alphabet as a partner name.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct BatchRef(PartnerName);

impl BatchRef {
    /// The batch id's text.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl FromStr for BatchRef {
    type Err = PartnerNameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(Self)
    }
}

impl fmt::Display for BatchRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// A revocation reason: 1–200 bytes of printable ASCII (letters, digits, space and
/// `.,:;()_-/#`). Operators write it; it goes to the audit trail, so it must not carry PHI,
/// and the narrow alphabet keeps it from carrying markup or control characters.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Reason(String);

/// Why a string is not a [`Reason`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReasonError {
    /// Empty or longer than 200 bytes.
    #[error("a reason has 1 to 200 characters")]
    Length,
    /// A character outside the allowed set.
    #[error("a reason uses only letters, digits, spaces and . , : ; ( ) _ - / #")]
    Character,
}

impl Reason {
    /// The reason's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Reason {
    type Err = ReasonError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim().is_empty() || s.len() > MAX_REASON_LEN {
            return Err(ReasonError::Length);
        }
        if !s
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b" .,:;()_-/#".contains(&c))
        {
            return Err(ReasonError::Character);
        }
        Ok(Self(s.to_owned()))
    }
}

/// Download limits. `None` means unlimited in that dimension. See `proto/grants-v1.md`
/// §Metering for how they are counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Completed full downloads, counted as delivered bytes over the file's length.
    pub max_downloads: Option<u32>,
    /// Delivered bytes across every artifact the grant covers.
    pub max_bytes: Option<u64>,
}

impl Limits {
    /// Whether any limit is set (only then does a download touch a meter).
    pub fn is_limited(&self) -> bool {
        self.max_downloads.is_some() || self.max_bytes.is_some()
    }
}

/// What a grant covers: a set of artifacts (one, for now) and optionally the batch they
/// belong to (for bulk revocation by batch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// The artifacts; non-empty, no duplicates, at most [`MAX_SCOPE_ARTIFACTS`].
    pub artifacts: Vec<ArtifactId>,
    /// The batch, if the grant was issued for one.
    pub batch: Option<BatchRef>,
}

impl Scope {
    /// Whether the grant covers `artifact`.
    pub fn covers(&self, artifact: ArtifactId) -> bool {
        self.artifacts.contains(&artifact)
    }
}

/// A revocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    /// When (Unix seconds).
    pub at: u64,
    /// Who: the API client's name.
    pub by: String,
    /// Why.
    pub reason: Reason,
}

/// One grant: the server-side authorisation a signed link is backed by.
#[derive(Clone, PartialEq, Eq)]
pub struct GrantRecord {
    /// The grant's id (the link's `g`).
    pub id: GrantId,
    /// The API client that issued it.
    pub issuer: String,
    /// The partner it was issued to.
    pub partner: PartnerName,
    /// What it covers.
    pub scope: Scope,
    /// Allowed methods (as signed into the link).
    pub methods: MethodSet,
    /// Validity start (Unix seconds, as signed).
    pub not_before: u64,
    /// Validity end, exclusive (Unix seconds, as signed).
    pub expires: u64,
    /// Client bindings (as signed).
    pub bindings: Bindings,
    /// The name downloads are served under; `None`: the artifact's own name.
    pub file_name: Option<ResponseFileName>,
    /// Download limits.
    pub limits: Limits,
    /// The key that signed the link.
    pub key_id: KeyId,
    /// When it was issued (Unix seconds).
    pub created_at: u64,
    /// Set once revoked; never cleared.
    pub revoked: Option<Revocation>,
}

impl fmt::Debug for GrantRecord {
    // The file name may be PHI: only whether one is set is printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrantRecord")
            .field("id", &self.id)
            .field("issuer", &self.issuer)
            .field("partner", &self.partner)
            .field("scope", &self.scope)
            .field("methods", &self.methods)
            .field("not_before", &self.not_before)
            .field("expires", &self.expires)
            .field("bindings", &self.bindings)
            .field("file_name", &self.file_name.as_ref().map(|_| "<set>"))
            .field("limits", &self.limits)
            .field("key_id", &self.key_id)
            .field("created_at", &self.created_at)
            .field("revoked", &self.revoked)
            .finish()
    }
}

/// Why stored bytes are not a valid grant record. Never echoes the bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantRecordError {
    /// Not JSON of the expected shape.
    #[error("grant record is malformed at line {line}, column {column}")]
    Malformed {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// A version this build cannot read.
    #[error("grant record version {0} is not supported")]
    UnsupportedVersion(u64),
    /// A field that does not parse, or a broken invariant.
    #[error("grant record is invalid: {0}")]
    Invalid(&'static str),
}

// === the wire form ===

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope {
    v: u32,
    grant: Wire,
}

#[derive(Serialize, Deserialize)]
struct VersionProbe {
    v: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    id: GrantId,
    issuer: String,
    partner: String,
    scope: WireScope,
    methods: String,
    not_before: u64,
    expires: u64,
    bindings: WireBindings,
    file_name: Option<String>,
    limits: Limits,
    key_id: String,
    created_at: u64,
    revoked: Option<WireRevocation>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireScope {
    artifacts: Vec<ArtifactId>,
    batch: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireBindings {
    client_net: Option<String>,
    client_cert: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireRevocation {
    at: u64,
    by: String,
    reason: String,
}

impl GrantRecord {
    /// The versioned JSON encoding.
    pub fn encode(&self) -> Vec<u8> {
        let wire = Wire {
            id: self.id,
            issuer: self.issuer.clone(),
            partner: self.partner.to_string(),
            scope: WireScope {
                artifacts: self.scope.artifacts.clone(),
                batch: self.scope.batch.as_ref().map(ToString::to_string),
            },
            methods: self.methods.as_str().to_owned(),
            not_before: self.not_before,
            expires: self.expires,
            bindings: WireBindings {
                client_net: self.bindings.client_net.map(|n| n.to_string()),
                client_cert: self.bindings.client_cert.map(|c| c.to_text()),
            },
            file_name: self.file_name.as_ref().map(|n| n.as_str().to_owned()),
            limits: self.limits,
            key_id: self.key_id.to_string(),
            created_at: self.created_at,
            revoked: self.revoked.as_ref().map(|r| WireRevocation {
                at: r.at,
                by: r.by.clone(),
                reason: r.reason.as_str().to_owned(),
            }),
        };
        // Plain structs with string keys serialise into a Vec without failing.
        serde_json::to_vec(&Envelope {
            v: GRANT_RECORD_VERSION,
            grant: wire,
        })
        .unwrap_or_default()
    }

    /// Decodes and checks a stored record.
    pub fn decode(bytes: &[u8]) -> Result<Self, GrantRecordError> {
        let malformed = |e: serde_json::Error| GrantRecordError::Malformed {
            line: e.line(),
            column: e.column(),
        };
        // One parse on the download path (every request reads its grant); the version
        // probe only explains a record this version cannot read.
        let envelope = match serde_json::from_slice::<Envelope>(bytes) {
            Ok(envelope) => envelope,
            Err(e) => {
                let probe: VersionProbe = serde_json::from_slice(bytes).map_err(malformed)?;
                if probe.v != u64::from(GRANT_RECORD_VERSION) {
                    return Err(GrantRecordError::UnsupportedVersion(probe.v));
                }
                return Err(malformed(e));
            }
        };
        if envelope.v != GRANT_RECORD_VERSION {
            return Err(GrantRecordError::UnsupportedVersion(u64::from(envelope.v)));
        }
        let w = envelope.grant;
        let invalid = GrantRecordError::Invalid;
        let record = GrantRecord {
            id: w.id,
            issuer: w.issuer,
            partner: w.partner.parse().map_err(|_| invalid("partner"))?,
            scope: Scope {
                artifacts: w.scope.artifacts,
                batch: w
                    .scope
                    .batch
                    .map(|b| b.parse())
                    .transpose()
                    .map_err(|_| invalid("batch"))?,
            },
            methods: w.methods.parse().map_err(|()| invalid("methods"))?,
            not_before: w.not_before,
            expires: w.expires,
            bindings: Bindings {
                client_net: w
                    .bindings
                    .client_net
                    .map(|n| n.parse::<ClientNet>())
                    .transpose()
                    .map_err(|_| invalid("client_net"))?,
                client_cert: w
                    .bindings
                    .client_cert
                    .map(|c| c.parse::<CertFingerprint>())
                    .transpose()
                    .map_err(|()| invalid("client_cert"))?,
            },
            file_name: w
                .file_name
                .map(|n| ResponseFileName::new(&n))
                .transpose()
                .map_err(|_| invalid("file_name"))?,
            limits: w.limits,
            key_id: w.key_id.parse().map_err(|_| invalid("key_id"))?,
            created_at: w.created_at,
            revoked: w
                .revoked
                .map(|r| {
                    Ok::<_, GrantRecordError>(Revocation {
                        at: r.at,
                        by: r.by,
                        reason: r.reason.parse().map_err(|_| invalid("reason"))?,
                    })
                })
                .transpose()?,
        };
        record.check()?;
        Ok(record)
    }

    /// The invariants every stored grant keeps.
    pub fn check(&self) -> Result<(), GrantRecordError> {
        let invalid = |why| Err(GrantRecordError::Invalid(why));
        if self.issuer.is_empty() {
            return invalid("empty issuer");
        }
        if self.expires <= self.not_before {
            return invalid("empty validity window");
        }
        let n = self.scope.artifacts.len();
        if n == 0 || n > MAX_SCOPE_ARTIFACTS {
            return invalid("scope size");
        }
        let mut sorted = self.scope.artifacts.clone();
        sorted.sort();
        sorted.dedup();
        if sorted.len() != n {
            return invalid("duplicate artifact in scope");
        }
        if self.limits.max_downloads == Some(0) || self.limits.max_bytes == Some(0) {
            return invalid("zero limit");
        }
        Ok(())
    }

    /// Whether the grant is revoked.
    pub fn is_revoked(&self) -> bool {
        self.revoked.is_some()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample() -> GrantRecord {
        GrantRecord {
            id: "1mjappbm2tjwzyz342amgyxd0t".parse().unwrap(),
            issuer: "exporter".into(),
            partner: "payer-a".parse().unwrap(),
            scope: Scope {
                artifacts: vec!["67rq0xe32xxh21dav1b2qx1ch3".parse().unwrap()],
                batch: Some("2026-q1".parse().unwrap()),
            },
            methods: MethodSet::GetHead,
            not_before: 1_767_225_600,
            expires: 1_767_229_200,
            bindings: Bindings {
                client_net: Some("203.0.113.0/24".parse().unwrap()),
                client_cert: Some(CertFingerprint::from_bytes([7; 32])),
            },
            file_name: Some(ResponseFileName::new("smith-john.ndjson").unwrap()),
            limits: Limits {
                max_downloads: Some(1),
                max_bytes: None,
            },
            key_id: "k1".parse().unwrap(),
            created_at: 1_767_225_500,
            revoked: None,
        }
    }

    #[test]
    fn round_trip() {
        let mut g = sample();
        assert_eq!(GrantRecord::decode(&g.encode()).unwrap(), g);
        g.revoked = Some(Revocation {
            at: 5,
            by: "ops".into(),
            reason: "partner offboarded".parse().unwrap(),
        });
        g.bindings = Bindings::default();
        g.file_name = None;
        assert_eq!(GrantRecord::decode(&g.encode()).unwrap(), g);
    }

    #[test]
    fn debug_hides_the_file_name() {
        let text = format!("{:?}", sample());
        assert!(!text.contains("smith"), "{text}");
    }

    #[test]
    fn refuses_bad_records() {
        let good = String::from_utf8(sample().encode()).unwrap();
        let cases = [
            good.replace("\"v\":1", "\"v\":2"),
            good.replace("\"issuer\"", "\"extra\":1,\"issuer\""),
            good.replace("GET,HEAD", "POST"),
            good.replace("payer-a", "Payer A"),
            good.replace("203.0.113.0/24", "203.0.113.1/24"),
            good.replace("smith-john.ndjson", "../x"),
            good.replace("\"max_downloads\":1", "\"max_downloads\":0"),
            good.replace("1767229200", "1767225600"),
            "not json".to_owned(),
        ];
        for bad in cases {
            assert!(GrantRecord::decode(bad.as_bytes()).is_err(), "{bad}");
        }
        let mut dup = sample();
        dup.scope.artifacts.push(dup.scope.artifacts[0]);
        assert!(GrantRecord::decode(&dup.encode()).is_err());
    }

    #[test]
    fn a_record_of_another_version_is_named_so_whatever_its_shape() {
        let good = String::from_utf8(sample().encode()).unwrap();
        // Shaped like this version, or not at all: the version is what is reported.
        for (bad, v) in [
            (good.replace("\"v\":1", "\"v\":2"), 2),
            (r#"{"v":3,"grant":{"new":"shape"}}"#.to_owned(), 3),
            (good.replace("\"v\":1", "\"v\":4294967296"), 4_294_967_296),
        ] {
            match GrantRecord::decode(bad.as_bytes()) {
                Err(GrantRecordError::UnsupportedVersion(got)) => assert_eq!(got, v, "{bad}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
        // This version, malformed: where it broke.
        for bad in [
            good.replace("\"issuer\"", "\"extra\":1,\"issuer\""),
            good.replace("\"methods\":\"GET,HEAD\",", ""),
            "not json".to_owned(),
        ] {
            assert!(
                matches!(
                    GrantRecord::decode(bad.as_bytes()),
                    Err(GrantRecordError::Malformed { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn names_and_reasons() {
        assert!("payer-a.2".parse::<PartnerName>().is_ok());
        assert_eq!("".parse::<PartnerName>(), Err(PartnerNameError::Length));
        assert_eq!(
            "Payer".parse::<PartnerName>(),
            Err(PartnerNameError::Character)
        );
        assert_eq!(
            "-payer".parse::<PartnerName>(),
            Err(PartnerNameError::Character)
        );
        assert!("contract ended (ticket #42)".parse::<Reason>().is_ok());
        assert_eq!("  ".parse::<Reason>(), Err(ReasonError::Length));
        assert_eq!("a\nb".parse::<Reason>(), Err(ReasonError::Character));
        assert_eq!("<script>".parse::<Reason>(), Err(ReasonError::Character));
        assert_eq!("a".repeat(201).parse::<Reason>(), Err(ReasonError::Length));
    }
}
