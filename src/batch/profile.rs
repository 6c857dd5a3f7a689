//! Release profiles (`[[profiles]]`): the preflight checklist an EHR bulk-transfer team keeps
//! as a document, made executable. Pure: a profile and the batch's documents in, the rules
//! they break out.

use std::time::Duration;

use crate::manifest::{Manifest, Provenance};

/// One configured release profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// Its name, as a manifest's `profile` names it.
    pub name: String,
    /// FHIR resource types a member may declare; `None`: any.
    pub resources: Option<Vec<String>>,
    /// Purpose-of-use codes the provenance may name; `None`: any.
    pub purpose_of_use: Option<Vec<String>>,
    /// A provenance record must be given at open.
    pub provenance_required: bool,
    /// How long a released batch under this profile is kept; `None`: `batches.retention`.
    pub retention: Option<Duration>,
}

/// A rule a batch's documents break.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The rule, as the config names it (`resources`, `purpose_of_use`, …).
    pub rule: &'static str,
    /// The member it is about, if any.
    pub member: Option<String>,
}

/// The rules of `profile` that `manifest` and `provenance` break.
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
            if let Some(n) = m.ndjson() {
                if !allowed.iter().any(|r| r == n.resource_type().as_str()) {
                    out.push(Violation {
                        rule: "resources",
                        member: Some(m.name().as_str().to_owned()),
                    });
                }
            }
        }
    }
    if let (Some(allowed), Some(p)) = (&profile.purpose_of_use, provenance) {
        if !allowed.iter().any(|c| c == p.purpose_of_use().code()) {
            out.push(Violation {
                rule: "purpose_of_use",
                member: None,
            });
        }
    }
    out
}
