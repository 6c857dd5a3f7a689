//! Release profiles (`[[profiles]]`): the preflight checklist an EHR bulk-transfer team keeps
//! as a document, made executable. Pure: a profile and the batch's documents in, the rules
//! they break out.
//!
//! A profile says what a batch released under it must look like (which FHIR resource types,
//! for which purposes of use, with or without a provenance record) and how it is handled
//! (delivered by signed URL with a bounded lifetime, checked with SHA-256, quarantined on
//! any finding, kept for its retention). [`check`] judges the first part from the two
//! documents alone, at open and again at seal; the second part is configuration the service
//! reads. The values are validated once by `batch::config`; nothing here reads files,
//! clocks or the configuration.
//!
//! Not here: parsing the `[[profiles]]` tables (`batch::config`), the seal-time verdict over
//! the arrived members (`batch::verdict`), and acting on `link_ttl` or `retention`.

use std::fmt;
use std::time::Duration;

use crate::manifest::{Manifest, Provenance};

/// One configured release profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// Its name, as a manifest's `profile` names it.
    pub name: String,
    /// FHIR resource types an NDJSON member may declare; `None`: any.
    pub resources: Option<Vec<String>>,
    /// Purpose-of-use codes the provenance may name; `None`: any. A profile that lists codes
    /// needs a provenance record to name one (fail closed: no record, no known purpose).
    pub purpose_of_use: Option<Vec<String>>,
    /// A provenance record must be given at open.
    pub provenance_required: bool,
    /// How long a released batch under this profile is kept; `None`: `batches.retention`.
    pub retention: Option<Duration>,
    /// How members reach the partner.
    pub delivery: Delivery,
    /// Lifetime of a link issued for a member of a batch under this profile (at most
    /// `links.max_ttl`).
    pub link_ttl: Duration,
    /// The digest members are checked with.
    pub checksum: Checksum,
    /// What a batch with any finding becomes.
    pub on_validation_failure: OnValidationFailure,
}

/// How a released batch's members are delivered. One way today; the enum is where another
/// would be added (and `batch::config` would accept its name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Signed download links (`proto/signed-link-v1.md`).
    SignedUrl,
}

/// The digest a member is checked against the manifest with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checksum {
    /// SHA-256, as the manifest lists it.
    Sha256,
}

/// What a batch with findings becomes. Only the fail-closed answer exists: there is no
/// "release anyway".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnValidationFailure {
    /// Quarantined until an auditor releases or purges it.
    Quarantine,
}

/// A rule a batch's documents break.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The rule, as the config names it (`resources`, `purpose_of_use`, …).
    pub rule: &'static str,
    /// The member it is about, if any.
    pub member: Option<String>,
}

/// The rules of `profile` that `manifest` and `provenance` break, in a fixed order:
/// `provenance_required`, then `resources` member by member in manifest order, then
/// `purpose_of_use`.
pub fn check(
    profile: &Profile,
    manifest: &Manifest,
    provenance: Option<&Provenance>,
) -> Vec<Violation> {
    let mut out = Vec::new();
    if profile.provenance_required && provenance.is_none() {
        out.push(Violation {
            rule: "provenance_required",
            member: None,
        });
    }
    if let Some(allowed) = &profile.resources {
        for m in manifest.members() {
            if let Some(n) = m.ndjson()
                && !allowed.iter().any(|r| r == n.resource_type().as_str())
            {
                out.push(Violation {
                    rule: "resources",
                    member: Some(m.name().as_str().to_owned()),
                });
            }
        }
    }
    if let Some(allowed) = &profile.purpose_of_use {
        let named = provenance.is_some_and(|p| {
            allowed
                .iter()
                .any(|c| c.as_str() == p.purpose_of_use().code())
        });
        if !named {
            out.push(Violation {
                rule: "purpose_of_use",
                member: None,
            });
        }
    }
    out
}

// === impl Profile ===

impl Profile {
    /// A profile that allows everything a profile can allow, with the fixed handling
    /// (signed URLs, SHA-256, quarantine) and a one-day link lifetime: the base that tests
    /// and `batch::config` set the written values on.
    pub fn named(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            resources: None,
            purpose_of_use: None,
            provenance_required: false,
            retention: None,
            delivery: Delivery::SignedUrl,
            link_ttl: Duration::from_secs(24 * 3600),
            checksum: Checksum::Sha256,
            on_validation_failure: OnValidationFailure::Quarantine,
        }
    }
}

// === impl Delivery, Checksum, OnValidationFailure ===

impl Delivery {
    /// Every variant, for the config's "one of" message.
    pub const ALL: &'static [Delivery] = &[Delivery::SignedUrl];

    /// The name the config writes.
    pub fn as_str(self) -> &'static str {
        match self {
            Delivery::SignedUrl => "signed_url",
        }
    }
}

impl Checksum {
    /// Every variant, for the config's "one of" message.
    pub const ALL: &'static [Checksum] = &[Checksum::Sha256];

    /// The name the config writes.
    pub fn as_str(self) -> &'static str {
        match self {
            Checksum::Sha256 => "sha256",
        }
    }
}

impl OnValidationFailure {
    /// Every variant, for the config's "one of" message.
    pub const ALL: &'static [OnValidationFailure] = &[OnValidationFailure::Quarantine];

    /// The name the config writes.
    pub fn as_str(self) -> &'static str {
        match self {
            OnValidationFailure::Quarantine => "quarantine",
        }
    }
}

// === impl Violation ===

/// One readable line naming the rule (and the member), never a document's other values.
impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.rule, &self.member) {
            ("provenance_required", _) => {
                f.write_str("provenance_required: the profile requires a provenance record")
            }
            ("resources", Some(m)) => write!(
                f,
                "resources: {m} declares a resource type the profile does not allow"
            ),
            ("purpose_of_use", _) => f.write_str(
                "purpose_of_use: the provenance record names no purpose of use the profile allows",
            ),
            (rule, Some(m)) => write!(f, "{rule}: {m}"),
            (rule, None) => f.write_str(rule),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::ManifestLimits;

    fn manifest(resource_types: &[&str]) -> Manifest {
        let members: Vec<String> = resource_types
            .iter()
            .map(|t| {
                format!(
                    r#"{{"name":"{t}.ndjson","size":10,"sha256":"{}","media_type":"application/fhir+ndjson","ndjson":{{"resource_type":"{t}","records":1}}}}"#,
                    "ab".repeat(32)
                )
            })
            .chain(std::iter::once(format!(
                r#"{{"name":"referral.pdf","size":5,"sha256":"{}","media_type":"application/pdf"}}"#,
                "cd".repeat(32)
            )))
            .collect();
        let text = format!(
            r#"{{"version":"sallyport.manifest/1","members":[{}]}}"#,
            members.join(",")
        );
        Manifest::parse(text.as_bytes(), &ManifestLimits::default()).expect("a valid manifest")
    }

    fn provenance(code: &str) -> Provenance {
        let text = format!(
            r#"{{"version":"sallyport.provenance/1","source_system":"urn:oid:1.2.3","job_id":"j-1","exported_at":"2026-11-30T23:15:02Z","requester":"client-a","scopes":["system/*.read"],"purpose_of_use":{{"system":"http://terminology.hl7.org/CodeSystem/v3-ActReason","code":"{code}"}}}}"#
        );
        Provenance::parse(text.as_bytes(), &ManifestLimits::default())
            .expect("a valid provenance record")
    }

    fn list(items: &[&str]) -> Option<Vec<String>> {
        Some(items.iter().map(|s| (*s).to_owned()).collect())
    }

    fn v(rule: &'static str, member: Option<&str>) -> Violation {
        Violation {
            rule,
            member: member.map(str::to_owned),
        }
    }

    #[test]
    fn rules_table() {
        let strict = Profile {
            resources: list(&["Patient", "Observation"]),
            purpose_of_use: list(&["TREAT", "HPAYMT"]),
            provenance_required: true,
            ..Profile::named("strict")
        };
        let resources_only = Profile {
            resources: list(&["Patient"]),
            ..Profile::named("r")
        };
        let purpose_only = Profile {
            purpose_of_use: list(&["PUBHLTH"]),
            ..Profile::named("p")
        };
        let open = Profile::named("open");
        // (what, profile, the manifest's NDJSON resource types, the purpose code, wanted)
        type Case<'a> = (
            &'a str,
            &'a Profile,
            Vec<&'a str>,
            Option<&'a str>,
            Vec<Violation>,
        );
        let cases: Vec<Case> = vec![
            (
                "open profile, no provenance",
                &open,
                vec!["Patient"],
                None,
                vec![],
            ),
            (
                "open profile, any provenance",
                &open,
                vec!["Device"],
                Some("X"),
                vec![],
            ),
            (
                "strict, all allowed",
                &strict,
                vec!["Patient", "Observation"],
                Some("TREAT"),
                vec![],
            ),
            (
                "strict, nothing given",
                &strict,
                vec!["Patient"],
                None,
                vec![v("provenance_required", None), v("purpose_of_use", None)],
            ),
            (
                "strict, two foreign types and a foreign purpose, in order",
                &strict,
                vec!["Encounter", "Patient", "Device"],
                Some("HRESCH"),
                vec![
                    v("resources", Some("Encounter.ndjson")),
                    v("resources", Some("Device.ndjson")),
                    v("purpose_of_use", None),
                ],
            ),
            (
                "resources: a PDF member has no resource type",
                &resources_only,
                vec![],
                None,
                vec![],
            ),
            (
                "resources: case matters",
                &resources_only,
                vec!["PATIENT"],
                None,
                vec![v("resources", Some("PATIENT.ndjson"))],
            ),
            (
                "purpose listed, no provenance: fail closed",
                &purpose_only,
                vec![],
                None,
                vec![v("purpose_of_use", None)],
            ),
            (
                "purpose listed and named",
                &purpose_only,
                vec![],
                Some("PUBHLTH"),
                vec![],
            ),
            (
                "purpose codes compare exactly",
                &purpose_only,
                vec![],
                Some("pubhlth"),
                vec![v("purpose_of_use", None)],
            ),
        ];
        for (what, profile, types, code, want) in cases {
            let m = manifest(&types);
            let p = code.map(provenance);
            assert_eq!(check(profile, &m, p.as_ref()), want, "{what}");
        }
    }

    #[test]
    fn violations_read_as_one_line_naming_rule_and_member() {
        for (x, text) in [
            (
                v("resources", Some("Device.ndjson")),
                "resources: Device.ndjson declares a resource type the profile does not allow",
            ),
            (
                v("provenance_required", None),
                "provenance_required: the profile requires a provenance record",
            ),
            (
                v("purpose_of_use", None),
                "purpose_of_use: the provenance record names no purpose of use the profile allows",
            ),
        ] {
            assert_eq!(x.to_string(), text);
        }
    }

    #[test]
    fn the_fixed_handling_has_its_config_names() {
        assert_eq!(Delivery::SignedUrl.as_str(), "signed_url");
        assert_eq!(Checksum::Sha256.as_str(), "sha256");
        assert_eq!(OnValidationFailure::Quarantine.as_str(), "quarantine");
    }
}
