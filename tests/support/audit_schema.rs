//! The audit entry schema, `proto/audit-event-v1.schema.json`, applied to audit trails the
//! tests read back. Every helper that exports a test gateway's trail (`links::export_audit`
//! and so `links::stop_and_export_audit`) passes each entry through [`assert_entries`], so
//! an entry the schema does not describe — a new action, a new or retyped `details`
//! member, an envelope change — fails the test that produced it, naming the entry and the
//! schema's complaint. In-process tests read their state store's log with
//! [`assert_store`].

use std::sync::OnceLock;

use serde_json::Value;

/// The schema file, relative to the crate root.
pub const SCHEMA_PATH: &str = "proto/audit-event-v1.schema.json";

/// The schema as JSON.
pub fn schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(SCHEMA_PATH);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{SCHEMA_PATH}: {e}"));
        serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{SCHEMA_PATH}: {e}"))
    })
}

/// The compiled validator (formats asserted, not only annotated).
pub fn validator() -> &'static jsonschema::Validator {
    static VALIDATOR: OnceLock<jsonschema::Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        jsonschema::draft202012::options()
            .should_validate_formats(true)
            .build(schema())
            .unwrap_or_else(|e| panic!("{SCHEMA_PATH} does not compile: {e}"))
    })
}

/// What the schema says is wrong with `entry`: one line per error, with where it is.
pub fn errors(entry: &Value) -> Vec<String> {
    validator()
        .iter_errors(entry)
        .map(|e| format!("at {:?}: {e}", e.instance_path().as_str()))
        .collect()
}

/// Panics, naming the entry and every error, unless each of `entries` is valid.
pub fn assert_entries(entries: &[Value]) {
    for entry in entries {
        let errors = errors(entry);
        assert!(
            errors.is_empty(),
            "audit entry does not match {SCHEMA_PATH}:\n{entry}\n{}",
            errors.join("\n")
        );
    }
}

/// Parses `sallyport audit export` output (JSON lines) and asserts every entry.
pub fn parse_export(text: &str) -> Vec<Value> {
    let entries: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_entries(&entries);
    entries
}

/// Reads the whole audit log `log` (an in-process gateway's) and asserts every entry;
/// returns them.
pub async fn assert_store(log: &dyn sallyport::audit::log::AuditLog) -> Vec<Value> {
    let mut entries = Vec::new();
    let mut next = 1;
    loop {
        let page = log.read(next, 1000).await.unwrap();
        let Some(last) = page.last() else { break };
        next = last.seq + 1;
        for entry in &page {
            entries.push(serde_json::from_slice(&entry.bytes).unwrap());
        }
    }
    assert_entries(&entries);
    entries
}
