//! The verdict core: one finding kind at a time, several together, the acceptance
//! scenarios as facts, and the report (the property is in `proptests.rs`).

use super::*;

fn sha(n: u8) -> [u8; 32] {
    [n; 32]
}

fn clean_report(records: u64, bytes: u64) -> NdjsonReport {
    NdjsonReport {
        records,
        bytes,
        lines: records,
        ..NdjsonReport::default()
    }
}

fn ndjson_member(name: &str, rt: &str, records: u64, size: u64, digest: u8) -> ExpectedMember {
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
fn manifest() -> Expected {
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
fn arrived(expected: &Expected) -> Observed {
    let members = expected
        .members
        .iter()
        .map(|m| ObservedMember {
            name: m.name.clone(),
            complete: true,
            size: m.size,
            upload_sha256: Some(m.sha256),
            stream_sha256: Some(m.sha256),
            ndjson: m.ndjson.as_ref().map(|n| clean_report(n.records, m.size)),
        })
        .collect();
    Observed { members }
}

fn member<'a>(o: &'a mut Observed, name: &str) -> &'a mut ObservedMember {
    o.members
        .iter_mut()
        .find(|m| m.name == name)
        .expect("a member of the fixture")
}

fn lines_of(first: &[u64], count: u64) -> FaultLines {
    FaultLines {
        count,
        first: first.to_vec(),
    }
}

fn name(s: &str) -> String {
    s.to_owned()
}

#[test]
fn everything_as_listed_is_released() {
    let e = manifest();
    let v = verdict(&e, &arrived(&e));
    assert_eq!(v, Verdict::Released);
    assert!(v.findings().is_empty());
    let json = v.report().to_json().expect("serialises");
    assert_eq!(
        json,
        serde_json::json!({"verdict": "released", "findings": []})
    );
}

#[test]
fn each_finding_kind_alone() {
    type Perturb = fn(&mut Expected, &mut Observed);
    let cases: Vec<(Perturb, Finding, &str, &str)> = vec![
        (
            |e, o| {
                o.members.retain(|m| m.name != "referral.pdf");
                e.total_members = None;
                e.total_bytes = None;
            },
            Finding::Missing {
                name: name("referral.pdf"),
            },
            "member.missing",
            "referral.pdf: listed, never uploaded",
        ),
        (
            |e, o| {
                member(o, "Patient.ndjson").complete = false;
                member(o, "Patient.ndjson").size = 10;
                e.total_bytes = None;
            },
            Finding::Incomplete {
                name: name("Patient.ndjson"),
                size: 10,
                expected: 500_000,
            },
            "member.incomplete",
            "Patient.ndjson: incomplete, 10 of 500000 bytes",
        ),
        (
            |e, _| {
                let dup = e.members[3].clone();
                e.members.push(dup);
            },
            Finding::DuplicateListed {
                name: name("referral.pdf"),
            },
            "manifest.duplicate_member",
            "referral.pdf: listed more than once",
        ),
        (
            |e, o| {
                let dup = o.members[3].clone();
                o.members.push(dup);
                e.total_members = None;
                e.total_bytes = None;
            },
            Finding::DuplicateObserved {
                name: name("referral.pdf"),
            },
            "member.duplicate_upload",
            "referral.pdf: uploaded more than once",
        ),
        (
            |e, o| {
                member(o, "referral.pdf").size = 41_999;
                e.total_bytes = None;
            },
            Finding::SizeMismatch {
                name: name("referral.pdf"),
                expected: 42_000,
                actual: 41_999,
            },
            "member.size_mismatch",
            "referral.pdf: 41999 bytes, manifest says 42000",
        ),
        (
            |_, o| member(o, "Patient.ndjson").upload_sha256 = Some(sha(9)),
            Finding::Sha256Mismatch {
                name: name("Patient.ndjson"),
                source: DigestSource::Upload,
            },
            "member.sha256_mismatch",
            "Patient.ndjson: sha256 mismatch (upload)",
        ),
        (
            |_, o| member(o, "Patient.ndjson").stream_sha256 = Some(sha(9)),
            Finding::Sha256Mismatch {
                name: name("Patient.ndjson"),
                source: DigestSource::Stream,
            },
            "member.sha256_mismatch",
            "Patient.ndjson: sha256 mismatch (stored data)",
        ),
        (
            |_, o| member(o, "referral.pdf").upload_sha256 = None,
            Finding::Sha256Unavailable {
                name: name("referral.pdf"),
                source: DigestSource::Upload,
            },
            "member.sha256_unavailable",
            "referral.pdf: no sha256 to compare (upload)",
        ),
        (
            |_, o| member(o, "referral.pdf").stream_sha256 = None,
            Finding::Sha256Unavailable {
                name: name("referral.pdf"),
                source: DigestSource::Stream,
            },
            "member.sha256_unavailable",
            "referral.pdf: no sha256 to compare (stored data)",
        ),
        (
            |_, o| member(o, "Encounter.ndjson").ndjson = None,
            Finding::NdjsonUnchecked {
                name: name("Encounter.ndjson"),
            },
            "ndjson.unchecked",
            "Encounter.ndjson: NDJSON lines not checked",
        ),
        (
            |_, o| {
                member(o, "Observation.ndjson")
                    .ndjson
                    .as_mut()
                    .expect("ndjson")
                    .records = 1997
            },
            Finding::RecordCountMismatch {
                name: name("Observation.ndjson"),
                expected: 2000,
                actual: 1997,
            },
            "ndjson.record_count_mismatch",
            "Observation.ndjson: 1997 records, manifest says 2000",
        ),
        (
            |_, o| {
                member(o, "Patient.ndjson")
                    .ndjson
                    .as_mut()
                    .expect("ndjson")
                    .too_long = lines_of(&[7], 1)
            },
            Finding::LineTooLong {
                name: name("Patient.ndjson"),
                lines: vec![7],
                count: 1,
            },
            "ndjson.line_too_long",
            "Patient.ndjson: line 7 is over the line limit",
        ),
        (
            |_, o| {
                member(o, "Patient.ndjson")
                    .ndjson
                    .as_mut()
                    .expect("ndjson")
                    .blank = lines_of(&[2, 5], 2)
            },
            Finding::BlankLines {
                name: name("Patient.ndjson"),
                lines: vec![2, 5],
                count: 2,
            },
            "ndjson.blank_lines",
            "Patient.ndjson: lines 2, 5 are blank",
        ),
        (
            |_, o| {
                member(o, "Patient.ndjson")
                    .ndjson
                    .as_mut()
                    .expect("ndjson")
                    .invalid_utf8 = lines_of(&[1, 2, 3, 4, 5], 12)
            },
            Finding::InvalidUtf8 {
                name: name("Patient.ndjson"),
                lines: vec![1, 2, 3, 4, 5],
                count: 12,
            },
            "ndjson.invalid_utf8",
            "Patient.ndjson: lines 1, 2, 3, 4, 5 and 7 more are not UTF-8",
        ),
        (
            |_, o| {
                member(o, "Encounter.ndjson")
                    .ndjson
                    .as_mut()
                    .expect("ndjson")
                    .not_json_object = lines_of(&[88], 1)
            },
            Finding::NotJsonObject {
                name: name("Encounter.ndjson"),
                lines: vec![88],
                count: 1,
            },
            "ndjson.not_json_object",
            "Encounter.ndjson: line 88 is not a JSON object",
        ),
        (
            |_, o| {
                member(o, "Encounter.ndjson")
                    .ndjson
                    .as_mut()
                    .expect("ndjson")
                    .wrong_resource_type = lines_of(&[], 3)
            },
            Finding::WrongResourceType {
                name: name("Encounter.ndjson"),
                lines: vec![],
                count: 3,
            },
            "ndjson.wrong_resource_type",
            "Encounter.ndjson: 3 lines have the wrong resourceType",
        ),
        (
            |_, o| {
                member(o, "Encounter.ndjson")
                    .ndjson
                    .as_mut()
                    .expect("ndjson")
                    .truncated_last_line = true
            },
            Finding::TruncatedLastLine {
                name: name("Encounter.ndjson"),
            },
            "ndjson.truncated_last_line",
            "Encounter.ndjson: last line truncated (no newline, not a complete record)",
        ),
        (
            |e, o| {
                let mut extra = o.members[3].clone();
                extra.name = "notes.txt".into();
                o.members.push(extra);
                e.total_members = None;
                e.total_bytes = None;
            },
            Finding::Unlisted {
                name: name("notes.txt"),
            },
            "member.unlisted",
            "notes.txt: not in manifest",
        ),
        (
            |e, _| e.total_members = Some(5),
            Finding::TotalMembersMismatch {
                expected: 5,
                actual: 4,
            },
            "batch.total_members_mismatch",
            "batch: 4 members, manifest says 5",
        ),
        (
            |e, _| e.total_bytes = Some(1),
            Finding::TotalBytesMismatch {
                expected: 1,
                actual: 2_942_000,
            },
            "batch.total_bytes_mismatch",
            "batch: 2942000 bytes, manifest says 1",
        ),
    ];
    for (perturb, finding, code, message) in cases {
        let mut e = manifest();
        let mut o = arrived(&e);
        perturb(&mut e, &mut o);
        assert_eq!(
            verdict(&e, &o),
            Verdict::Quarantined(vec![finding.clone()]),
            "{message}"
        );
        assert_eq!(finding.code(), code);
        assert_eq!(finding.to_string(), message);
    }
}

#[test]
fn several_together_come_in_a_fixed_order() {
    let e = manifest();
    let mut o = arrived(&e);
    // Unlisted uploads first and shuffled, to show observed order does not matter.
    let mut extra = o.members[3].clone();
    extra.name = "notes.txt".into();
    o.members.insert(0, extra.clone());
    extra.name = "a-first.txt".into();
    o.members.insert(0, extra);
    o.members.retain(|m| m.name != "Encounter.ndjson");
    o.members.reverse();
    let obs = member(&mut o, "Observation.ndjson");
    obs.stream_sha256 = Some(sha(0));
    let report = obs.ndjson.as_mut().expect("ndjson");
    report.records = 1999;
    report.blank = lines_of(&[40], 1);
    report.not_json_object = lines_of(&[3], 1);
    member(&mut o, "Patient.ndjson").size = 1;
    let v = verdict(&e, &o);
    assert!(matches!(v, Verdict::Quarantined(_)));
    let codes: Vec<(&str, Option<&str>)> = v
        .findings()
        .iter()
        .map(|f| (f.code(), f.member()))
        .collect();
    assert_eq!(
        codes,
        [
            ("member.size_mismatch", Some("Patient.ndjson")),
            ("member.missing", Some("Encounter.ndjson")),
            ("member.sha256_mismatch", Some("Observation.ndjson")),
            ("ndjson.record_count_mismatch", Some("Observation.ndjson")),
            ("ndjson.blank_lines", Some("Observation.ndjson")),
            ("ndjson.not_json_object", Some("Observation.ndjson")),
            ("member.unlisted", Some("a-first.txt")),
            ("member.unlisted", Some("notes.txt")),
            ("batch.total_members_mismatch", None),
            ("batch.total_bytes_mismatch", None),
        ]
    );
}

#[test]
fn acceptance_scenarios_as_facts() {
    let e = manifest();
    // (a) one record dropped from one file: fewer records, and so another size and digest.
    let mut o = arrived(&e);
    let obs = member(&mut o, "Observation.ndjson");
    obs.size -= 450;
    obs.upload_sha256 = Some(sha(30));
    obs.stream_sha256 = Some(sha(30));
    obs.ndjson = Some(clean_report(1999, obs.size));
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
