//! Property tests: valid documents parse and round-trip through `to_json`; a document with
//! one field replaced by an arbitrary value either round-trips or is refused at that
//! member without quoting the value; arbitrary bytes never panic either parser.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;
use crate::signed_link::ResponseFileName;

fn arb_member(i: usize) -> impl Strategy<Value = Value> {
    let ndjson = proptest::option::of(("[A-Z][A-Za-z]{0,63}", 0..=MAX_SAFE_INTEGER));
    (
        "[A-Za-z0-9._-]{0,40}[A-Za-z0-9_-]",
        0..=MAX_SAFE_INTEGER / 10_000,
        any::<[u8; 32]>(),
        "[a-z0-9][a-z0-9.+-]{0,20}/[a-z0-9][a-z0-9.+-]{0,20}",
        ndjson,
    )
        .prop_map(move |(suffix, size, sha, media_type, nd)| {
            // `m{i}-` keeps names unique (also ignoring case) and away from device names.
            let mut m = json!({"name": format!("m{i}-{suffix}"), "size": size,
                "sha256": hex::encode(sha), "media_type": media_type});
            if let Some((rt, records)) = nd {
                m["media_type"] = json!(FHIR_NDJSON);
                m["ndjson"] = json!({"resource_type": rt, "records": records});
            }
            m
        })
}

fn arb_manifest() -> impl Strategy<Value = Value> {
    (1usize..8)
        .prop_flat_map(|n| {
            let members: Vec<_> = (0..n).map(arb_member).collect();
            (
                members,
                any::<(bool, bool)>(),
                proptest::option::of("[a-z0-9][a-z0-9._-]{0,63}"),
            )
        })
        .prop_map(|(members, (with_count, with_bytes), profile)| {
            let bytes: u64 = members.iter().filter_map(|m| m["size"].as_u64()).sum();
            let mut v = json!({"version": VERSION, "members": members});
            if with_count {
                v["total_members"] = json!(v["members"].as_array().map_or(0, Vec::len));
            }
            if with_bytes {
                v["total_bytes"] = json!(bytes);
            }
            if let Some(p) = profile {
                v["profile"] = json!(p);
            }
            v
        })
}

/// Values to drop into a field: mostly wrong, sometimes right.
fn arb_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<String>().prop_map(Value::from),
        "[ -~]{0,300}".prop_map(Value::from),
        "[0-9a-f]{62,66}".prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        Just(Value::Null),
        Just(json!([])),
        Just(json!({"resource_type": "Patient", "records": 1})),
    ]
}

#[track_caller]
fn assert_round_trip(m: &Manifest) {
    let once = m.to_json();
    let again = Manifest::parse(&once, &ManifestLimits::default()).expect("to_json parses");
    assert_eq!(&again, m);
    assert_eq!(again.to_json(), once, "to_json is a fixed point");
    assert_eq!(again.digest(), &Sha256::of(&once));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn valid_manifests_parse_and_round_trip(v in arb_manifest()) {
        let m = Manifest::parse(v.to_string().as_bytes(), &ManifestLimits::default())
            .expect("a valid manifest parses");
        prop_assert_eq!(m.members().len(), v["members"].as_array().map_or(0, Vec::len));
        assert_round_trip(&m);
        for member in m.members() {
            // Every member name is servable as a download file name.
            prop_assert!(ResponseFileName::new(member.name().as_str()).is_ok());
        }
    }

    #[test]
    fn one_changed_field_round_trips_or_is_refused_there(
        v in arb_manifest(),
        field in prop::sample::select(vec!["name", "size", "sha256", "media_type", "ndjson"]),
        value in arb_value(),
        marker in "[A-Z]{12}",
    ) {
        let mut v = v;
        // A string value carries a marker that must never show up in an error.
        let value = match value {
            Value::String(s) => Value::String(format!("{s}{marker}")),
            other => other,
        };
        v["members"][0][field] = value;
        match Manifest::parse(v.to_string().as_bytes(), &ManifestLimits::default()) {
            Ok(m) => assert_round_trip(&m),
            Err(e) => {
                let path = e.path().unwrap_or_default();
                // Refused at the changed field, or where it collides with the rest.
                let elsewhere = matches!(e.problem(), Problem::TotalBytesMismatch { .. }
                    | Problem::SumTooBig { .. } | Problem::DuplicateName { .. });
                prop_assert!(path.starts_with("/members/0/") || elsewhere, "{}", e);
                prop_assert!(!e.to_string().contains(&marker), "{}", e);
            }
        }
    }

    #[test]
    fn arbitrary_names_are_accepted_only_when_servable(name in any::<String>()) {
        let v = json!({"version": VERSION, "members": [{"name": name, "size": 0,
            "sha256": "00".repeat(32), "media_type": "text/plain"}]});
        if let Ok(m) = Manifest::parse(v.to_string().as_bytes(), &ManifestLimits::default()) {
            prop_assert!(ResponseFileName::new(m.members()[0].name().as_str()).is_ok());
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = Manifest::parse(&bytes, &ManifestLimits::default());
        let _ = Provenance::parse(&bytes, &ManifestLimits::default());
    }

    #[test]
    fn every_prefix_of_a_valid_manifest_is_refused_cleanly(v in arb_manifest()) {
        let bytes = v.to_string().into_bytes();
        for end in 0..bytes.len() {
            let e = Manifest::parse(&bytes[..end], &ManifestLimits::default());
            prop_assert!(e.is_err(), "a strict prefix of an object is never a document");
        }
    }

    #[test]
    fn valid_provenance_round_trips(
        ids in proptest::array::uniform3("[!-~]{1,256}"),
        secs in 0i64..253_402_300_799,
        nanos in proptest::option::of(1u32..1_000_000_000),
        scopes in proptest::collection::vec(
            ("(patient|user|system)", "(\\*|[A-Z][A-Za-z]{0,20})", "(read|write|\\*|c?r?u?d?s)", proptest::option::of("[!-~]{1,30}"))
                .prop_map(|(c, r, p, q)| match q { Some(q) => format!("{c}/{r}.{p}?{q}"), None => format!("{c}/{r}.{p}") }),
            1..=MAX_SCOPES),
        code in "[A-Za-z0-9._-]{1,64}",
        texts in proptest::collection::vec("[ -~]{1,100}", 0..5),
        schema_version in proptest::option::of("[ -~]{1,64}"),
    ) {
        let t = time::OffsetDateTime::from_unix_timestamp(secs).expect("in range");
        let base = t.format(&time::format_description::well_known::Rfc3339).expect("formats");
        let exported_at = match nanos {
            Some(n) => format!("{}.{n:09}Z", base.trim_end_matches('Z')),
            None => base,
        };
        let mut v = json!({"version": PROVENANCE_VERSION, "source_system": ids[0], "job_id": ids[1],
            "exported_at": exported_at, "requester": ids[2], "scopes": scopes,
            "purpose_of_use": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": code},
            "filters": texts, "transformations": texts});
        if let Some(s) = schema_version {
            v["schema_version"] = json!(s);
        }
        let p = Provenance::parse(v.to_string().as_bytes(), &ManifestLimits::default())
            .expect("a valid record parses");
        let once = p.to_json();
        let again = Provenance::parse(&once, &ManifestLimits::default()).expect("to_json parses");
        prop_assert_eq!(&again, &p);
        prop_assert_eq!(again.to_json(), once);
    }
}
