//! The acceptance scenarios of issue 10 as facts, (a) to (e), and the report JSON.

use sha2::{Digest, Sha256};

use super::fixtures::*;
use super::*;

#[test]
fn acceptance_scenarios_as_facts() {
    let e = manifest();
    // (a) one record dropped from one file: fewer records, and so another size and digest.
    let mut o = arrived(&e);
    let obs = member(&mut o, "Observation.ndjson");
    obs.size -= 450;
    obs.upload_sha256 = Some(sha(30));
    obs.stream_sha256 = Some(sha(30));
    obs.ndjson = Some(clean_report("Observation", 1999, obs.size));
    let n = || name("Observation.ndjson");
    assert_eq!(
        verdict(&e, &o).findings(),
        [
            Finding::SizeMismatch {
                name: n(),
                expected: 900_000,
                actual: 899_550
            },
            Finding::Sha256Mismatch {
                name: n(),
                source: DigestSource::Upload
            },
            Finding::Sha256Mismatch {
                name: n(),
                source: DigestSource::Stream
            },
            Finding::RecordCountMismatch {
                name: n(),
                expected: 2000,
                actual: 1999
            },
            Finding::TotalBytesMismatch {
                expected: 2_942_000,
                actual: 2_941_550
            },
        ]
    );
    // (b) one member never uploaded.
    let mut o = arrived(&e);
    o.members.retain(|m| m.name != "Encounter.ndjson");
    assert_eq!(
        verdict(&e, &o).findings(),
        [
            Finding::Missing {
                name: name("Encounter.ndjson")
            },
            Finding::TotalMembersMismatch {
                expected: 4,
                actual: 3
            },
            Finding::TotalBytesMismatch {
                expected: 2_942_000,
                actual: 1_442_000
            },
        ]
    );
    // (c) one extra member.
    let mut o = arrived(&e);
    o.members.push(ObservedMember {
        unreadable: false,
        name: "notes.txt".into(),
        complete: true,
        size: 10,
        upload_sha256: Some(sha(7)),
        stream_sha256: Some(sha(7)),
        ndjson: None,
    });
    assert_eq!(
        verdict(&e, &o).findings(),
        [
            Finding::Unlisted {
                name: name("notes.txt")
            },
            Finding::TotalMembersMismatch {
                expected: 4,
                actual: 5
            },
            Finding::TotalBytesMismatch {
                expected: 2_942_000,
                actual: 2_942_010
            },
        ]
    );
    // (d) one byte flipped in a stored blob after upload: the upload's digest still matches,
    // the one re-computed over the stored data does not (and the flipped line may parse).
    let mut o = arrived(&e);
    member(&mut o, "Patient.ndjson").stream_sha256 = Some(sha(99));
    assert_eq!(
        verdict(&e, &o).findings(),
        [Finding::Sha256Mismatch {
            name: name("Patient.ndjson"),
            source: DigestSource::Stream
        }]
    );
    // (e) a wrong resourceType on one line: the checker's finding, nothing else of content.
    let mut o = arrived(&e);
    let enc = member(&mut o, "Encounter.ndjson");
    enc.upload_sha256 = Some(sha(20));
    enc.stream_sha256 = Some(sha(20));
    enc.ndjson.as_mut().expect("ndjson").wrong_resource_type = lines_of(&[1234], 1);
    let v = verdict(&e, &o);
    let n = || name("Encounter.ndjson");
    assert_eq!(
        v.findings(),
        [
            Finding::Sha256Mismatch {
                name: n(),
                source: DigestSource::Upload
            },
            Finding::Sha256Mismatch {
                name: n(),
                source: DigestSource::Stream
            },
            Finding::WrongResourceType {
                name: n(),
                lines: vec![1234],
                count: 1
            },
        ]
    );
    assert_eq!(
        v.findings()[2].to_string(),
        "Encounter.ndjson: line 1234 has the wrong resourceType"
    );
}

#[test]
fn the_report_json_and_its_digest() {
    let e = manifest();
    let mut o = arrived(&e);
    member(&mut o, "Observation.ndjson")
        .ndjson
        .as_mut()
        .expect("ndjson")
        .records = 1997;
    member(&mut o, "Patient.ndjson")
        .ndjson
        .as_mut()
        .expect("ndjson")
        .not_json_object = lines_of(&[88, 90], 3);
    let report = verdict(&e, &o).report();
    let expected = serde_json::json!({
        "verdict": "quarantined",
        "findings": [
            {"code": "ndjson.not_json_object", "member": "Patient.ndjson", "actual": 3, "lines": [88, 90],
             "message": "Patient.ndjson: lines 88, 90 and 1 more are not JSON objects"},
            {"code": "ndjson.record_count_mismatch", "member": "Observation.ndjson", "expected": 2000,
             "actual": 1997, "message": "Observation.ndjson: 1997 records, manifest says 2000"},
        ]
    });
    assert_eq!(report.to_json().expect("serialises"), expected);
    let bytes = report.canonical_json().expect("serialises");
    assert!(
        bytes.starts_with(
            br#"{"verdict":"quarantined","findings":[{"code":"ndjson.not_json_object","#
        )
    );
    assert_eq!(
        report.sha256().expect("serialises"),
        <[u8; 32]>::from(Sha256::digest(&bytes))
    );
    // Another finding, another digest; the same facts, the same digest.
    assert_eq!(
        verdict(&e, &o).report().sha256().expect("ok"),
        report.sha256().expect("ok")
    );
    assert_ne!(
        verdict(&e, &arrived(&e)).report().sha256().expect("ok"),
        report.sha256().expect("ok")
    );
}

/// Real bytes through the checker and SHA-256 into the verdict: scenarios (a) and (e) with
/// the facts computed, not written down.
#[test]
fn checked_bytes_into_the_verdict() {
    use crate::batch::ndjson::{NdjsonChecker, NdjsonLimits};

    let original: Vec<u8> = (1..=2000)
        .flat_map(|i| {
            format!(
                "{{\"resourceType\":\"Observation\",\"id\":\"o{i}\",\"status\":\"final\",\
                 \"subject\":{{\"reference\":\"Patient/p{}\"}},\"valueQuantity\":{{\"value\":{}.5,\"unit\":\"mmol/L\"}}}}\n",
                i % 97,
                i % 13
            )
            .into_bytes()
        })
        .collect();
    let facts = |bytes: &[u8]| {
        let mut checker = NdjsonChecker::new("Observation", NdjsonLimits::default());
        for chunk in bytes.chunks(4096) {
            checker.feed(chunk);
        }
        let digest: [u8; 32] = Sha256::digest(bytes).into();
        ObservedMember {
            unreadable: false,
            name: name("Observation.ndjson"),
            complete: true,
            size: bytes.len() as u64,
            upload_sha256: Some(digest),
            stream_sha256: Some(digest),
            ndjson: Some(checker.finish()),
        }
    };
    let expected = Expected {
        members: vec![ExpectedMember {
            name: name("Observation.ndjson"),
            size: original.len() as u64,
            sha256: Sha256::digest(&original).into(),
            ndjson: Some(ExpectedNdjson {
                resource_type: name("Observation"),
                records: 2000,
            }),
        }],
        total_members: None,
        total_bytes: None,
    };
    let as_arrived = |bytes: &[u8]| {
        verdict(
            &expected,
            &Observed {
                members: vec![facts(bytes)],
            },
        )
    };
    assert_eq!(as_arrived(&original), Verdict::Released);

    // (a) one record dropped: line 1500 removed.
    let lines: Vec<&[u8]> = original.split_inclusive(|&b| b == b'\n').collect();
    let dropped: Vec<u8> = lines
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 1499)
        .flat_map(|(_, l)| l.iter().copied())
        .collect();
    let n = || name("Observation.ndjson");
    assert_eq!(
        as_arrived(&dropped).findings(),
        [
            Finding::SizeMismatch {
                name: n(),
                expected: original.len() as u64,
                actual: dropped.len() as u64
            },
            Finding::Sha256Mismatch {
                name: n(),
                source: DigestSource::Upload
            },
            Finding::Sha256Mismatch {
                name: n(),
                source: DigestSource::Stream
            },
            Finding::RecordCountMismatch {
                name: n(),
                expected: 2000,
                actual: 1999
            },
        ]
    );

    // (e) line 1234's resourceType replaced by one of the same length: same size.
    let mut wrong = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let text = String::from_utf8(line.to_vec()).expect("ASCII");
        let text = if i == 1233 {
            text.replacen("Observation", "Composition", 1)
        } else {
            text
        };
        wrong.extend_from_slice(text.as_bytes());
    }
    assert_eq!(wrong.len(), original.len());
    let v = as_arrived(&wrong);
    assert_eq!(
        v.findings(),
        [
            Finding::Sha256Mismatch {
                name: n(),
                source: DigestSource::Upload
            },
            Finding::Sha256Mismatch {
                name: n(),
                source: DigestSource::Stream
            },
            Finding::WrongResourceType {
                name: n(),
                lines: vec![1234],
                count: 1
            },
        ]
    );
    // No record content anywhere in the report.
    let json = String::from_utf8(v.report().canonical_json().expect("serialises")).expect("UTF-8");
    assert!(
        !json.contains("Composition") && !json.contains("mmol"),
        "{json}"
    );
}
