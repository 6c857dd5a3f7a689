//! Provenance record tests: required fields, every bound, no value quoted in an error.

use serde_json::{Value, json};

use crate::manifest::*;

const MARKER: &str = "ZZMARKERZZ";

fn provenance() -> Value {
    json!({
        "version": PROVENANCE_VERSION,
        "source_system": "urn:oid:2.16.840.1.113883.3.7204",
        "job_id": "export-2026-11-30-0042",
        "exported_at": "2026-11-30T23:15:02.123Z",
        "requester": "client:lab-results-sync",
        "scopes": ["system/Patient.rs", "system/Observation.rs?category=laboratory", "system/*.read"],
        "purpose_of_use": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "TREAT"},
        "filters": ["_typeFilter=Observation?category=laboratory"],
        "schema_version": "FHIR R4 4.0.1",
        "transformations": ["dates shifted to UTC"]
    })
}

fn parse_provenance(v: &Value) -> Result<Provenance, ManifestError> {
    Provenance::parse(v.to_string().as_bytes(), &ManifestLimits::default())
}

#[track_caller]
fn prov_refused(v: &Value, path: &str, problem: Problem) {
    let e = parse_provenance(v).expect_err("must be refused");
    assert_eq!(
        (e.path().as_deref(), e.problem()),
        (Some(path), problem),
        "{e}"
    );
    assert!(!e.to_string().contains(MARKER), "{e}");
}

#[test]
fn provenance_parses_and_keeps_every_field() {
    let p = parse_provenance(&provenance()).unwrap();
    assert_eq!(
        p.source_system().as_str(),
        "urn:oid:2.16.840.1.113883.3.7204"
    );
    assert_eq!(p.job_id().as_str(), "export-2026-11-30-0042");
    assert_eq!(p.exported_at().unix_timestamp(), 1_796_080_502);
    assert_eq!(p.exported_at().nanosecond(), 123_000_000);
    assert_eq!(p.requester().as_str(), "client:lab-results-sync");
    assert_eq!(p.scopes().len(), 3);
    assert_eq!((p.purpose_of_use().code(), p.filters().len()), ("TREAT", 1));
    assert_eq!(p.schema_version().map(Text::as_str), Some("FHIR R4 4.0.1"));
    assert_eq!(p.transformations()[0].as_str(), "dates shifted to UTC");

    let mut minimal = provenance();
    for k in ["filters", "schema_version", "transformations"] {
        minimal.as_object_mut().unwrap().remove(k);
    }
    let p = parse_provenance(&minimal).unwrap();
    assert!(p.filters().is_empty() && p.schema_version().is_none());
}

#[test]
fn provenance_required_fields() {
    for k in [
        "version",
        "source_system",
        "job_id",
        "exported_at",
        "requester",
        "scopes",
        "purpose_of_use",
    ] {
        let mut v = provenance();
        v.as_object_mut().unwrap().remove(k);
        prov_refused(&v, &format!("/{k}"), Problem::MissingField);
    }
    let mut v = provenance();
    v["purpose_of_use"].as_object_mut().unwrap().remove("code");
    prov_refused(&v, "/purpose_of_use/code", Problem::MissingField);
}

#[test]
fn provenance_field_bounds() {
    let set = |k: &str, value: Value| {
        let mut v = provenance();
        v[k] = value;
        v
    };
    let m = MARKER;
    prov_refused(&set("patient", json!(m)), "/patient", Problem::UnknownField);
    prov_refused(
        &set("version", json!("sallyport.manifest/1")),
        "/version",
        Problem::UnsupportedVersion,
    );
    prov_refused(
        &set("source_system", json!(format!("{m} x"))),
        "/source_system",
        Problem::Character,
    );
    prov_refused(
        &set("job_id", json!(format!("{m}{}", "j".repeat(256)))),
        "/job_id",
        Problem::TooLong { max: 256 },
    );
    prov_refused(&set("requester", json!("")), "/requester", Problem::Empty);
    for bad in [
        "2026-11-30T23:15:02+00:00",
        "2026-11-30 23:15:02Z",
        "2026-11-30t23:15:02z",
        "2026-13-30T23:15:02Z",
        "2026-02-30T00:00:00Z",
        "2026-11-30T23:15:02.Z",
        "2026-11-30T23:15:02.1234567890Z",
        "2026-11-30",
        "ZZMARKERZZ",
    ] {
        prov_refused(
            &set("exported_at", json!(bad)),
            "/exported_at",
            Problem::TimestampForm,
        );
    }
    prov_refused(&set("scopes", json!([])), "/scopes", Problem::Empty);
    let many: Vec<_> = (0..=MAX_SCOPES).map(|_| "system/Patient.rs").collect();
    prov_refused(
        &set("scopes", json!(many)),
        "/scopes",
        Problem::TooManyItems { max: MAX_SCOPES },
    );
    for bad in [
        "openid",
        "system/patient.rs",
        "system/Patient.sr",
        "system/Patient.",
        "system/Patient.rs?",
        "group/Patient.read",
        "system/Patient",
        &format!("system/Patient.rs?{m} x"),
    ] {
        let want = if bad.contains(' ') {
            Problem::Character
        } else {
            Problem::ScopeForm
        };
        prov_refused(
            &set("scopes", json!(["system/Patient.rs", bad])),
            "/scopes/1",
            want,
        );
    }
    for ok in [
        "patient/*.*",
        "user/Observation.cruds",
        "system/Encounter.s",
        "system/Patient.write",
    ] {
        assert!(
            parse_provenance(&set("scopes", json!([ok]))).is_ok(),
            "{ok}"
        );
    }
    let pou =
        |system: &str, code: &str| set("purpose_of_use", json!({"system": system, "code": code}));
    prov_refused(
        &pou("v3-ActReason", "TREAT"),
        "/purpose_of_use/system",
        Problem::SystemForm,
    );
    prov_refused(
        &pou("urn:", "TREAT"),
        "/purpose_of_use/system",
        Problem::SystemForm,
    );
    prov_refused(
        &pou("urn:oid:2.16.840.1.113883.5.8", &format!("{m} ")),
        "/purpose_of_use/code",
        Problem::Character,
    );
    prov_refused(
        &pou("urn:oid:2.16.840.1.113883.5.8", &"C".repeat(65)),
        "/purpose_of_use/code",
        Problem::TooLong { max: 64 },
    );
    let mut v = pou("urn:x", "TREAT");
    v["purpose_of_use"]["display"] = json!("Treatment");
    prov_refused(&v, "/purpose_of_use/display", Problem::UnknownField);
    prov_refused(
        &set("filters", json!([format!("{m}\t")])),
        "/filters/0",
        Problem::Character,
    );
    let many: Vec<_> = (0..=MAX_FILTERS).map(|_| "x").collect();
    prov_refused(
        &set("filters", json!(many)),
        "/filters",
        Problem::TooManyItems { max: MAX_FILTERS },
    );
    prov_refused(
        &set("transformations", json!(["ok", "t".repeat(1025)])),
        "/transformations/1",
        Problem::TooLong { max: 1024 },
    );
    prov_refused(
        &set("schema_version", json!("v".repeat(65))),
        "/schema_version",
        Problem::TooLong { max: 64 },
    );
    assert!(parse_provenance(&set("filters", json!([]))).is_ok());

    let limits = ManifestLimits {
        max_provenance_bytes: 100,
        ..ManifestLimits::default()
    };
    let e = Provenance::parse(provenance().to_string().as_bytes(), &limits).unwrap_err();
    assert_eq!(e.problem(), Problem::TooLarge { limit: 100 });
}
