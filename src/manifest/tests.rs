//! Manifest unit tests: every field's bounds, the error paths, and that no error quotes a
//! value. The provenance record's are in `provenance/tests.rs`.

use serde_json::{Value, json};

use super::*;

const HASH: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
/// Put into offending values; must never appear in an error message.
const MARKER: &str = "ZZMARKERZZ";

fn member(name: &str) -> Value {
    json!({"name": name, "size": 4, "sha256": HASH, "media_type": "application/pdf"})
}

fn ndjson_member(name: &str, rt: &str, records: u64) -> Value {
    json!({"name": name, "size": 10, "sha256": HASH, "media_type": "application/fhir+ndjson",
           "ndjson": {"resource_type": rt, "records": records}})
}

fn manifest(members: Vec<Value>) -> Value {
    json!({"version": VERSION, "members": members})
}

fn parse(v: &Value) -> Result<Manifest, ManifestError> {
    Manifest::parse(v.to_string().as_bytes(), &ManifestLimits::default())
}

/// Parse, expect a refusal at `path` with `problem`, and check the message.
#[track_caller]
fn refused(v: &Value, path: &str, problem: Problem) -> ManifestError {
    let e = parse(v).expect_err("must be refused");
    assert_eq!(e.path().as_deref(), Some(path), "{e}");
    assert_eq!(e.problem(), problem, "{e}");
    assert!(e.to_string().starts_with(path), "{e}");
    assert!(!e.to_string().contains(MARKER), "{e}");
    e
}

/// Replace `/members/0/<key>` with `value`.
fn with_member_field(key: &str, value: Value) -> Value {
    let mut m = member("a.pdf");
    m[key] = value;
    manifest(vec![m])
}

#[test]
fn minimal_and_full_manifests_parse() {
    let m = parse(&manifest(vec![member("referral.pdf")])).unwrap();
    assert_eq!(m.members().len(), 1);
    assert_eq!(m.members()[0].name().as_str(), "referral.pdf");
    assert_eq!(m.members()[0].size(), 4);
    assert_eq!(m.members()[0].sha256().to_hex(), HASH);
    assert_eq!(m.members()[0].media_type().as_str(), "application/pdf");
    assert!(m.members()[0].ndjson().is_none());
    assert_eq!(
        (m.total_members(), m.total_bytes(), m.profile()),
        (None, None, None)
    );

    let v = json!({"version": VERSION, "profile": "bulk-export.r4",
        "members": [ndjson_member("Patient.ndjson", "Patient", 3), member("x.pdf")],
        "total_members": 2, "total_bytes": 14});
    let m = parse(&v).unwrap();
    let nd = m.members()[0].ndjson().unwrap();
    assert_eq!((nd.resource_type().as_str(), nd.records()), ("Patient", 3));
    assert_eq!(
        (m.total_members(), m.total_bytes(), m.listed_bytes()),
        (Some(2), Some(14), 14)
    );
    assert_eq!(m.profile().unwrap().as_str(), "bulk-export.r4");
    assert_eq!(m.member("x.pdf").map(|(i, _)| i), Some(1));
    assert!(m.member("X.PDF").is_none());
}

#[test]
fn digest_is_over_the_exact_bytes() {
    let a = br#"{"version":"sallyport.manifest/1","members":[{"name":"a","size":0,"sha256":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08","media_type":"text/plain"}]}"#;
    let mut b = a.to_vec();
    b.push(b'\n');
    let (ma, mb) = (
        Manifest::parse(a, &ManifestLimits::default()).unwrap(),
        Manifest::parse(&b, &ManifestLimits::default()).unwrap(),
    );
    assert_eq!(ma, mb);
    assert_eq!(ma.digest(), &Sha256::of(a));
    assert_ne!(ma.digest(), mb.digest());
    // The known SHA-256 of "test", as a check on the helper.
    assert_eq!(Sha256::of(b"test").to_hex(), HASH);
}

#[test]
fn size_limit_is_checked_before_anything_else() {
    let limits = ManifestLimits {
        max_manifest_bytes: 10,
        ..ManifestLimits::default()
    };
    // Eleven bytes that are neither UTF-8 nor JSON: the size is what is reported.
    let e = Manifest::parse(&[0xff; 11], &limits).unwrap_err();
    assert_eq!(e.problem(), Problem::TooLarge { limit: 10 });
    assert_eq!(e.location(), &Location::Document);
    assert_eq!(
        Manifest::parse(&[0xff; 10], &limits).unwrap_err().problem(),
        Problem::NotUtf8 { valid_up_to: 0 }
    );
}

#[test]
fn ten_megabytes_of_json_are_refused_unread() {
    let big = manifest(
        (0..60_000)
            .map(|i| member(&format!("member-{i:06}-{}", "x".repeat(100))))
            .collect(),
    )
    .to_string();
    assert!(big.len() > 10_000_000);
    let e = Manifest::parse(big.as_bytes(), &ManifestLimits::default()).unwrap_err();
    assert_eq!(
        e.problem(),
        Problem::TooLarge {
            limit: DEFAULT_MAX_MANIFEST_BYTES
        }
    );
    assert_eq!(e.to_string(), "the document is larger than 1048576 bytes");
}

#[test]
fn invalid_utf8_and_bad_json_are_located() {
    let mut bytes = br#"{"version":"sallyport.manifest/1","members":[{"name":""#.to_vec();
    bytes.extend_from_slice(&[0xc3, 0x28]);
    let e = Manifest::parse(&bytes, &ManifestLimits::default()).unwrap_err();
    assert_eq!(
        e.problem(),
        Problem::NotUtf8 {
            valid_up_to: bytes.len() - 2
        }
    );

    let cases: [(&[u8], Problem, usize, usize); 5] = [
        (b"", Problem::Truncated, 1, 0),
        (b"{\"version\":", Problem::Truncated, 1, 11),
        (b"{\n  \"a\": 1,,}", Problem::Syntax, 2, 10),
        (b"{} {}", Problem::Syntax, 1, 4),
        (b"{\"a\": 1, \"a\": 2}", Problem::DuplicateKey, 1, 12),
    ];
    for (input, problem, line, column) in cases {
        let e = Manifest::parse(input, &ManifestLimits::default()).unwrap_err();
        assert_eq!(e.problem(), problem, "{input:?}");
        assert_eq!(
            e.location(),
            &Location::Position { line, column },
            "{input:?}"
        );
    }
    // Nesting past serde_json's recursion limit is a syntax error, not a stack overflow.
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let e = Manifest::parse(deep.as_bytes(), &ManifestLimits::default()).unwrap_err();
    assert_eq!(e.problem(), Problem::Syntax);
}

#[test]
fn duplicate_keys_are_refused_even_inside_members() {
    let text = format!(
        r#"{{"version":"{VERSION}","members":[{{"name":"a","size":1,"size":2,"sha256":"{HASH}","media_type":"text/plain"}}]}}"#
    );
    let e = Manifest::parse(text.as_bytes(), &ManifestLimits::default()).unwrap_err();
    assert_eq!(e.problem(), Problem::DuplicateKey);
}

#[test]
fn root_and_version() {
    refused(
        &json!([]),
        "/",
        Problem::WrongType {
            expected: JsonType::Object,
        },
    );
    refused(
        &json!({"members": [member("a")]}),
        "/version",
        Problem::MissingField,
    );
    refused(
        &json!({"version": "sallyport.manifest/2", "members": [], MARKER: 1}),
        "/version",
        Problem::UnsupportedVersion,
    );
    refused(
        &json!({"version": 1, "members": []}),
        "/version",
        Problem::WrongType {
            expected: JsonType::String,
        },
    );
    refused(
        &json!({"version": VERSION}),
        "/members",
        Problem::MissingField,
    );
    refused(
        &json!({"version": VERSION, "members": []}),
        "/members",
        Problem::Empty,
    );
    refused(
        &json!({"version": VERSION, "members": {}}),
        "/members",
        Problem::WrongType {
            expected: JsonType::Array,
        },
    );
}

#[test]
fn unknown_fields_are_named_when_plain_and_hidden_otherwise() {
    let mut v = manifest(vec![member("a")]);
    v["comment"] = json!("x");
    let e = refused(&v, "/comment", Problem::UnknownField);
    let Location::Field(path) = e.location() else {
        panic!("{e}")
    };
    assert_eq!(path.segments(), [Segment::Unknown(Some("comment".into()))]);
    assert_eq!(e.to_string(), "/comment: unknown field");

    let mut m = member("a");
    m["resourceType"] = json!("Patient");
    refused(
        &manifest(vec![member("b"), m]),
        "/members/1/resourceType",
        Problem::UnknownField,
    );

    // A key that could be anything is not repeated back.
    let mut v = manifest(vec![member("a")]);
    v[format!("John Smith {MARKER}")] = json!(1);
    refused(&v, "/<key>", Problem::UnknownField);
    let mut v = manifest(vec![member("a")]);
    v[format!("{MARKER}{}", "k".repeat(40))] = json!(1);
    refused(&v, "/<key>", Problem::UnknownField);
}

#[test]
fn member_names() {
    let ok = [
        "a",
        "0",
        "Patient.ndjson",
        "a-b_c.d",
        "CONSOLE.txt",
        "COM0",
        "x..y",
        &"n".repeat(128),
    ];
    for name in ok {
        assert!(parse(&manifest(vec![member(name)])).is_ok(), "{name}");
    }
    let long = format!("{MARKER}{}", "n".repeat(128));
    let bad: [(String, Problem); 16] = [
        (String::new(), Problem::Empty),
        (long, Problem::TooLong { max: 128 }),
        (format!("a/{MARKER}"), Problem::Character),
        (format!("..{MARKER}"), Problem::NameStart),
        ("..".into(), Problem::NameStart),
        (".".into(), Problem::NameStart),
        (format!(".{MARKER}"), Problem::NameStart),
        (format!("-{MARKER}"), Problem::NameStart),
        (format!("C:\\{MARKER}"), Problem::Character),
        (format!("{MARKER}\0"), Problem::Character),
        (format!("{MARKER}\nx"), Problem::Character),
        (format!("{MARKER} x"), Problem::Character),
        (format!("{MARKER}é"), Problem::Character),
        (format!("{MARKER}."), Problem::NameEnd),
        ("NUL.txt".into(), Problem::NameReserved),
        ("com1".into(), Problem::NameReserved),
    ];
    for (name, problem) in bad {
        refused(&manifest(vec![member(&name)]), "/members/0/name", problem);
    }
    refused(
        &with_member_field("name", json!(5)),
        "/members/0/name",
        Problem::WrongType {
            expected: JsonType::String,
        },
    );
}

#[test]
fn names_are_unique_ignoring_ascii_case() {
    let v = manifest(vec![
        member("a.pdf"),
        member("b.pdf"),
        member("Notes.PDF"),
        member("NOTES.pdf"),
    ]);
    let e = refused(&v, "/members/3/name", Problem::DuplicateName { first: 2 });
    assert_eq!(
        e.to_string(),
        "/members/3/name: equals the name of member 2, ignoring ASCII case"
    );
    refused(
        &manifest(vec![member("a"), member("a")]),
        "/members/1/name",
        Problem::DuplicateName { first: 0 },
    );
    assert!(parse(&manifest(vec![member("a1"), member("a-1"), member("a_1")])).is_ok());
}

#[test]
fn sizes_and_counts() {
    let max = MAX_SAFE_INTEGER;
    assert_eq!(
        parse(&with_member_field("size", json!(0)))
            .unwrap()
            .members()[0]
            .size(),
        0
    );
    assert_eq!(
        parse(&with_member_field("size", json!(max)))
            .unwrap()
            .members()[0]
            .size(),
        max
    );
    let bad = [
        (json!(-1), Problem::Negative),
        (json!(-1.5), Problem::Negative),
        (json!(max + 1), Problem::TooBig { max }),
        (json!(u64::MAX), Problem::TooBig { max }),
        (json!(1e300), Problem::TooBig { max }),
        (json!(1.5), Problem::NotAnInteger),
        (json!(1.0), Problem::NotAnInteger),
        (
            json!(format!("12{MARKER}")),
            Problem::WrongType {
                expected: JsonType::Integer,
            },
        ),
        (
            json!(null),
            Problem::WrongType {
                expected: JsonType::Integer,
            },
        ),
    ];
    for (value, problem) in bad {
        refused(
            &with_member_field("size", value.clone()),
            "/members/0/size",
            problem,
        );
        let mut m = ndjson_member("p", "Patient", 1);
        m["ndjson"]["records"] = value;
        refused(&manifest(vec![m]), "/members/0/ndjson/records", problem);
    }
    // Integers with an exponent are numbers serde_json reads as floats: refused.
    let text = format!(
        r#"{{"version":"{VERSION}","members":[{{"name":"a","size":1e3,"sha256":"{HASH}","media_type":"a/b"}}]}}"#
    );
    let e = Manifest::parse(text.as_bytes(), &ManifestLimits::default()).unwrap_err();
    assert_eq!(
        (e.path().as_deref(), e.problem()),
        (Some("/members/0/size"), Problem::NotAnInteger)
    );
}

#[test]
fn totals_must_match_what_is_listed() {
    let two = || vec![member("a"), member("b")];
    let mut v = manifest(two());
    v["total_members"] = json!(2);
    v["total_bytes"] = json!(8);
    assert!(parse(&v).is_ok());
    v["total_members"] = json!(3);
    refused(
        &v,
        "/total_members",
        Problem::TotalMembersMismatch { listed: 2 },
    );
    v["total_members"] = json!(2);
    v["total_bytes"] = json!(7);
    let e = refused(
        &v,
        "/total_bytes",
        Problem::TotalBytesMismatch { listed: 8 },
    );
    assert_eq!(
        e.to_string(),
        "/total_bytes: differs from the 8 bytes the members' sizes add up to"
    );
    v["total_bytes"] = json!(-8);
    refused(&v, "/total_bytes", Problem::Negative);

    // The sum is bounded like every size.
    let mut big = member("a");
    big["size"] = json!(MAX_SAFE_INTEGER);
    refused(
        &manifest(vec![big, member("b")]),
        "/members/1/size",
        Problem::SumTooBig {
            max: MAX_SAFE_INTEGER,
        },
    );
}

#[test]
fn sha256_form() {
    for bad in [
        json!(HASH.to_uppercase()),
        json!(&HASH[..63]),
        json!(format!("{HASH}0")),
        json!(format!("{}{MARKER}", &HASH[..54])),
        json!(format!("sha256:{}", &HASH[..57])),
        json!(""),
    ] {
        refused(
            &with_member_field("sha256", bad),
            "/members/0/sha256",
            Problem::Sha256Form,
        );
    }
    refused(
        &with_member_field("sha256", json!([1])),
        "/members/0/sha256",
        Problem::WrongType {
            expected: JsonType::String,
        },
    );
}

#[test]
fn media_types() {
    for ok in [
        "application/pdf",
        "text/plain",
        "application/vnd.ms-excel",
        "image/svg+xml",
        "a/b",
    ] {
        assert!(
            parse(&with_member_field("media_type", json!(ok))).is_ok(),
            "{ok}"
        );
    }
    let long = format!("application/{}", "x".repeat(128));
    for (bad, problem) in [
        ("Application/PDF", Problem::MediaTypeForm),
        ("application/pdf; charset=x", Problem::Character),
        ("application/pdf;charset=x", Problem::MediaTypeForm),
        ("application", Problem::MediaTypeForm),
        ("application/", Problem::MediaTypeForm),
        ("/pdf", Problem::MediaTypeForm),
        ("a/b/c", Problem::MediaTypeForm),
        ("a/.b", Problem::MediaTypeForm),
        (long.as_str(), Problem::MediaTypeForm),
    ] {
        refused(
            &with_member_field("media_type", json!(bad)),
            "/members/0/media_type",
            problem,
        );
    }
    let too_long = format!("{}/{}", "a".repeat(127), "b".repeat(128));
    refused(
        &with_member_field("media_type", json!(too_long)),
        "/members/0/media_type",
        Problem::TooLong { max: 255 },
    );
}

#[test]
fn ndjson_is_required_exactly_for_fhir_ndjson() {
    let mut m = ndjson_member("p", "Patient", 1);
    m.as_object_mut().unwrap().remove("ndjson");
    refused(
        &manifest(vec![m]),
        "/members/0/ndjson",
        Problem::MissingField,
    );

    let mut m = member("a.pdf");
    m["ndjson"] = json!({"resource_type": "Patient", "records": 1});
    refused(
        &manifest(vec![m]),
        "/members/0/ndjson",
        Problem::NdjsonNotAllowed,
    );

    // Another NDJSON media type is not FHIR and carries no ndjson object.
    let mut m = member("a.ndjson");
    m["media_type"] = json!("application/x-ndjson");
    assert!(parse(&manifest(vec![m])).is_ok());

    let mut m = ndjson_member("p", "Patient", 1);
    m["ndjson"]["resourceType"] = json!("Patient");
    refused(
        &manifest(vec![m]),
        "/members/0/ndjson/resourceType",
        Problem::UnknownField,
    );
    let mut m = ndjson_member("p", "Patient", 1);
    m["ndjson"].as_object_mut().unwrap().remove("records");
    refused(
        &manifest(vec![m]),
        "/members/0/ndjson/records",
        Problem::MissingField,
    );
}

#[test]
fn resource_types() {
    for ok in ["Patient", "A", &format!("M{}", "a".repeat(63))] {
        assert!(
            parse(&manifest(vec![ndjson_member("p", ok, 0)])).is_ok(),
            "{ok}"
        );
    }
    for (bad, problem) in [
        ("patient", Problem::ResourceTypeForm),
        ("", Problem::Empty),
        ("Patient2", Problem::Character),
        ("Pat ient", Problem::Character),
        (
            &format!("M{}", "a".repeat(64)),
            Problem::TooLong { max: 64 },
        ),
    ] {
        refused(
            &manifest(vec![ndjson_member("p", bad, 0)]),
            "/members/0/ndjson/resource_type",
            problem,
        );
    }
}

#[test]
fn profile_names() {
    let mut v = manifest(vec![member("a")]);
    for (bad, problem) in [
        ("Bulk", Problem::Character),
        ("-bulk", Problem::Character),
        ("", Problem::Empty),
        (&"p".repeat(65), Problem::TooLong { max: 64 }),
    ] {
        v["profile"] = json!(bad);
        refused(&v, "/profile", problem);
    }
}

#[test]
fn member_limit_is_configurable_but_never_above_the_format_ceiling() {
    let three = manifest(vec![member("a"), member("b"), member("c")]);
    let bytes = three.to_string();
    let limits = |max_members| ManifestLimits {
        max_members,
        ..ManifestLimits::default()
    };
    assert!(Manifest::parse(bytes.as_bytes(), &limits(3)).is_ok());
    let e = Manifest::parse(bytes.as_bytes(), &limits(2)).unwrap_err();
    assert_eq!(
        (e.path().as_deref(), e.problem()),
        (Some("/members"), Problem::TooManyItems { max: 2 })
    );

    let many = manifest(
        (0..=MAX_MEMBERS)
            .map(|i| member(&format!("m{i}")))
            .collect(),
    )
    .to_string();
    let roomy = ManifestLimits {
        max_manifest_bytes: 8 << 20,
        max_members: usize::MAX,
        ..ManifestLimits::default()
    };
    let e = Manifest::parse(many.as_bytes(), &roomy).unwrap_err();
    assert_eq!(e.problem(), Problem::TooManyItems { max: MAX_MEMBERS });
}

#[test]
fn every_problem_has_a_distinct_code() {
    let problems = [
        Problem::TooLarge { limit: 1 },
        Problem::NotUtf8 { valid_up_to: 1 },
        Problem::Syntax,
        Problem::Truncated,
        Problem::DuplicateKey,
        Problem::WrongType {
            expected: JsonType::Object,
        },
        Problem::UnknownField,
        Problem::MissingField,
        Problem::UnsupportedVersion,
        Problem::Empty,
        Problem::TooLong { max: 1 },
        Problem::TooManyItems { max: 1 },
        Problem::Character,
        Problem::NameStart,
        Problem::NameEnd,
        Problem::NameReserved,
        Problem::DuplicateName { first: 1 },
        Problem::NotAnInteger,
        Problem::Negative,
        Problem::TooBig { max: 1 },
        Problem::Sha256Form,
        Problem::MediaTypeForm,
        Problem::ResourceTypeForm,
        Problem::NdjsonNotAllowed,
        Problem::TotalMembersMismatch { listed: 1 },
        Problem::SumTooBig { max: 1 },
        Problem::TotalBytesMismatch { listed: 1 },
        Problem::TimestampForm,
        Problem::ScopeForm,
        Problem::SystemForm,
    ];
    let codes: std::collections::HashSet<_> = problems.iter().map(Problem::code).collect();
    assert_eq!(codes.len(), problems.len());
}
