//! The manifest and provenance vectors (`proto/vectors/manifest-v1/`,
//! `proto/vectors/provenance-v1/`) against the JSON Schemas and against the parser: both
//! must give the verdict each folder's README table states, and the parser must name the
//! field (or position) the table names.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use sallyport::manifest::{Location, Manifest, ManifestError, ManifestLimits, Provenance};

/// One row of a vectors README table.
#[derive(Debug)]
struct Row {
    file: String,
    /// `Some(true)` valid, `Some(false)` invalid, `None` not JSON (`n/a`).
    schema: Option<bool>,
    accepted: bool,
    at: String,
    problem: String,
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("proto")
}

fn rows(dir: &Path) -> Vec<Row> {
    let readme = fs::read_to_string(dir.join("README.md")).expect("README.md");
    let rows: Vec<Row> = readme
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|line| {
            let cells: Vec<String> = line
                .trim_matches('|')
                .split('|')
                .map(|c| c.trim().trim_matches('`').to_owned())
                .collect();
            assert_eq!(cells.len(), 5, "{line}");
            Row {
                file: cells[0].clone(),
                schema: match cells[1].as_str() {
                    "valid" => Some(true),
                    "invalid" => Some(false),
                    "n/a" => None,
                    other => panic!("schema column: {other}"),
                },
                accepted: match cells[2].as_str() {
                    "accepted" => true,
                    "refused" => false,
                    other => panic!("parser column: {other}"),
                },
                at: cells[3].clone(),
                problem: cells[4].clone(),
            }
        })
        .collect();
    // The table and the folder list the same files.
    let listed: BTreeSet<_> = rows.iter().map(|r| r.file.clone()).collect();
    let present: BTreeSet<_> = fs::read_dir(dir)
        .expect("vectors dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    assert_eq!(
        listed,
        present,
        "README table vs files in {}",
        dir.display()
    );
    assert_eq!(listed.len(), rows.len(), "a file listed twice");
    rows
}

fn where_(e: &ManifestError) -> String {
    match e.location() {
        Location::Document => "-".to_owned(),
        Location::Position { line, column } => format!("{line}:{column}"),
        Location::Field(p) => p.to_string(),
    }
}

fn check(
    folder: &str,
    schema_file: &str,
    parse: impl Fn(&[u8]) -> Result<(), ManifestError>,
) -> usize {
    let dir = root().join("vectors").join(folder);
    let schema: serde_json::Value =
        serde_json::from_slice(&fs::read(root().join(schema_file)).expect("schema"))
            .expect("schema is JSON");
    let validator = jsonschema::draft202012::new(&schema).expect("schema compiles");
    let rows = rows(&dir);
    for row in &rows {
        let bytes = fs::read(dir.join(&row.file)).expect("vector");
        let kind = row.file.split('-').next().unwrap_or_default();
        let expected_kind = match (row.schema, row.accepted) {
            (Some(true), true) => "valid",
            (Some(false), false) => "invalid",
            (Some(true), false) => "refused",
            (None, false) => "not",
            _ => "inconsistent",
        };
        assert_eq!(kind, expected_kind, "{}: the name says the kind", row.file);

        match (
            row.schema,
            serde_json::from_slice::<serde_json::Value>(&bytes),
        ) {
            (Some(valid), Ok(instance)) => {
                let errors: Vec<String> = validator
                    .iter_errors(&instance)
                    .map(|e| format!("{} at {}", e, e.instance_path()))
                    .collect();
                assert_eq!(
                    errors.is_empty(),
                    valid,
                    "{}: schema says {errors:?}",
                    row.file
                );
            }
            (None, Err(_)) => {}
            (expected, parsed) => panic!("{}: schema {expected:?}, JSON {parsed:?}", row.file),
        }

        match parse(&bytes) {
            Ok(()) => assert!(row.accepted, "{}: the parser accepted it", row.file),
            Err(e) => {
                assert!(!row.accepted, "{}: the parser refused it: {e}", row.file);
                assert_eq!(
                    (where_(&e), e.problem().code()),
                    (row.at.clone(), row.problem.as_str()),
                    "{}: {e}",
                    row.file
                );
            }
        }
    }
    rows.len()
}

#[test]
fn manifest_vectors_agree_with_schema_and_parser() {
    let n = check("manifest-v1", "manifest-v1.schema.json", |b| {
        Manifest::parse(b, &ManifestLimits::default()).map(drop)
    });
    assert!(n >= 30, "{n} vectors");
}

#[test]
fn provenance_vectors_agree_with_schema_and_parser() {
    let n = check("provenance-v1", "provenance-v1.schema.json", |b| {
        Provenance::parse(b, &ManifestLimits::default()).map(drop)
    });
    assert!(n >= 8, "{n} vectors");
}

#[test]
fn the_realistic_example_reads_as_intended() {
    let bytes =
        fs::read(root().join("vectors/manifest-v1/valid-fhir-bulk-export.json")).expect("vector");
    let m = Manifest::parse(&bytes, &ManifestLimits::default()).expect("valid");
    let summary: Vec<_> = m
        .members()
        .iter()
        .map(|m| {
            let nd = m
                .ndjson()
                .map(|n| (n.resource_type().as_str(), n.records()));
            (m.name().as_str(), m.media_type().as_str(), nd)
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                "Patient.ndjson",
                "application/fhir+ndjson",
                Some(("Patient", 2000))
            ),
            (
                "Encounter.ndjson",
                "application/fhir+ndjson",
                Some(("Encounter", 7311))
            ),
            (
                "Observation.ndjson",
                "application/fhir+ndjson",
                Some(("Observation", 48206))
            ),
            ("referral-summary.pdf", "application/pdf", None),
        ]
    );
    assert_eq!(m.total_members(), Some(4));
    assert_eq!(m.total_bytes(), Some(m.listed_bytes()));
    assert_eq!(m.profile().map(|p| p.as_str()), Some("fhir-bulk-r4"));
}

/// The examples in `proto/manifest-v1.md` are valid: the first JSON block is a manifest,
/// the second a provenance record.
#[test]
fn the_format_document_examples_parse() {
    let doc = fs::read_to_string(root().join("manifest-v1.md")).expect("format doc");
    let blocks: Vec<&str> = doc
        .split("```json\n")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .collect();
    assert_eq!(blocks.len(), 2, "two JSON examples");
    let limits = ManifestLimits::default();
    let m = Manifest::parse(blocks[0].as_bytes(), &limits).expect("manifest example");
    assert_eq!(m.total_bytes(), Some(m.listed_bytes()));
    Provenance::parse(blocks[1].as_bytes(), &limits).expect("provenance example");
}

/// The schemas are themselves valid 2020-12 schemas, closed everywhere.
#[test]
fn schemas_are_closed_and_bounded() {
    for file in ["manifest-v1.schema.json", "provenance-v1.schema.json"] {
        let schema: serde_json::Value =
            serde_json::from_slice(&fs::read(root().join(file)).expect("schema")).expect("JSON");
        assert!(jsonschema::meta::is_valid(&schema), "{file}");
        let mut objects = 0;
        let mut strings = 0;
        walk(
            &schema,
            &mut |node| match node.get("type").and_then(|t| t.as_str()) {
                Some("object") => {
                    objects += 1;
                    assert_eq!(node["additionalProperties"], false, "{file}: {node:?}");
                }
                Some("string") => {
                    strings += 1;
                    assert!(node.get("maxLength").is_some(), "{file}: {node:?}");
                    assert!(
                        node.get("pattern").is_some() || node.get("const").is_some(),
                        "{file}: {node:?}"
                    );
                }
                Some("array") => assert!(node.get("maxItems").is_some(), "{file}: {node:?}"),
                _ => {}
            },
        );
        assert!(
            objects >= 2 && strings >= 5,
            "{file}: {objects} objects, {strings} strings"
        );
    }
}

fn walk(v: &serde_json::Value, f: &mut impl FnMut(&serde_json::Map<String, serde_json::Value>)) {
    match v {
        serde_json::Value::Object(m) => {
            f(m);
            m.values().for_each(|c| walk(c, f));
        }
        serde_json::Value::Array(a) => a.iter().for_each(|c| walk(c, f)),
        _ => {}
    }
}
