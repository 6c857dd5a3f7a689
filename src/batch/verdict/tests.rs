//! The verdict core: everything as listed, one finding kind at a time (code and message),
//! several together in their fixed order.

use super::fixtures::*;
use super::*;

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
                let report = member(o, "Encounter.ndjson")
                    .ndjson
                    .as_mut()
                    .expect("ndjson");
                report.resource_type = "Patient".into();
            },
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
