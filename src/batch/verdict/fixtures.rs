//! Fixtures for the verdict tests: a four-member manifest (three NDJSON, one PDF, totals
//! stated) and the facts of a batch that arrived exactly as listed.

use super::*;

pub(super) fn sha(n: u8) -> [u8; 32] {
    [n; 32]
}

pub(super) fn clean_report(resource_type: &str, records: u64, bytes: u64) -> NdjsonReport {
    NdjsonReport {
        resource_type: resource_type.into(),
        records,
        bytes,
        lines: records,
        ..NdjsonReport::default()
    }
}

pub(super) fn ndjson_member(
    name: &str,
    rt: &str,
    records: u64,
    size: u64,
    digest: u8,
) -> ExpectedMember {
    ExpectedMember {
        name: name.into(),
        size,
        sha256: sha(digest),
        ndjson: Some(ExpectedNdjson {
            resource_type: rt.into(),
            records,
        }),
    }
}

/// Patient, Encounter, Observation and a PDF, with totals stated.
pub(super) fn manifest() -> Expected {
    let members = vec![
        ndjson_member("Patient.ndjson", "Patient", 1000, 500_000, 1),
        ndjson_member("Encounter.ndjson", "Encounter", 3000, 1_500_000, 2),
        ndjson_member("Observation.ndjson", "Observation", 2000, 900_000, 3),
        ExpectedMember {
            name: "referral.pdf".into(),
            size: 42_000,
            sha256: sha(4),
            ndjson: None,
        },
    ];
    let total_bytes = members.iter().map(|m| m.size).sum();
    Expected {
        total_members: Some(members.len() as u64),
        total_bytes: Some(total_bytes),
        members,
    }
}

/// Exactly what the manifest lists: released.
pub(super) fn arrived(expected: &Expected) -> Observed {
    let members = expected
        .members
        .iter()
        .map(|m| ObservedMember {
            unreadable: false,
            name: m.name.clone(),
            complete: true,
            size: m.size,
            upload_sha256: Some(m.sha256),
            stream_sha256: Some(m.sha256),
            ndjson: m
                .ndjson
                .as_ref()
                .map(|n| clean_report(&n.resource_type, n.records, m.size)),
        })
        .collect();
    Observed { members }
}

pub(super) fn member<'a>(o: &'a mut Observed, name: &str) -> &'a mut ObservedMember {
    o.members
        .iter_mut()
        .find(|m| m.name == name)
        .expect("a member of the fixture")
}

pub(super) fn lines_of(first: &[u64], count: u64) -> FaultLines {
    FaultLines {
        count,
        first: first.to_vec(),
    }
}

pub(super) fn name(s: &str) -> String {
    s.to_owned()
}
