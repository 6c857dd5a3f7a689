//! The audit event schema, `proto/audit-event-v1.schema.json`: it is a valid JSON Schema
//! 2020-12; it lists exactly the actions the code can emit (every `AuditEvent` impl's
//! `ACTION`, found in the sources, so an event added without a schema entry fails here);
//! it rejects what it must (an unlisted action or `details` member, a missing member, an
//! outcome the action never has); and the golden entries in
//! `proto/vectors/audit-events/` — real entries, their hashes intact — validate.
//!
//! The schema is asserted on every audit trail the black-box tests export as well
//! (`support::audit_schema`, used by `support::links::export_audit`).

mod support;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use support::audit_schema::{errors, schema, validator};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The string literal starting right after `prefix` on `line`, if `line` has the prefix.
fn literal_after<'a>(line: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = &line[line.find(prefix)? + prefix.len()..];
    let rest = rest.strip_prefix('"')?;
    Some(&rest[..rest.find('"')?])
}

/// The actions the sources define: `const ACTION: &'static str = "…";` in an `impl
/// AuditEvent`, and the batch events' `batch_event!(Type, "…")`.
fn source_actions() -> BTreeSet<String> {
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    let mut actions = BTreeSet::new();
    for file in files {
        let text = fs::read_to_string(&file).unwrap();
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with("//") {
                continue;
            }
            if let Some(a) = literal_after(line, "const ACTION: &'static str = ") {
                actions.insert(a.to_owned());
            } else if line.starts_with("batch_event!(")
                && let Some(a) = line
                    .split_once(',')
                    .and_then(|(_, rest)| literal_after(rest, " "))
            {
                actions.insert(a.to_owned());
            }
        }
    }
    actions
}

fn schema_actions() -> BTreeSet<String> {
    schema()["properties"]["action"]["enum"]
        .as_array()
        .expect("action is an enum")
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn schema_is_a_valid_2020_12_schema() {
    assert!(jsonschema::meta::is_valid(schema()));
    validator();
}

#[test]
fn every_action_in_the_code_is_in_the_schema_and_no_other() {
    let code = source_actions();
    // A sanity floor: the scan found the events (44 when this test was written).
    assert!(code.len() >= 44, "{code:?}");
    let listed = schema_actions();
    let missing: Vec<_> = code.difference(&listed).collect();
    let stale: Vec<_> = listed.difference(&code).collect();
    assert!(
        missing.is_empty(),
        "actions without a schema entry: {missing:?}"
    );
    assert!(stale.is_empty(), "schema actions no code emits: {stale:?}");
    // Each listed action has its details object, and a rule applying it.
    let details: BTreeSet<String> = schema()["$defs"]["details"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(details, listed);
    let rules: BTreeSet<String> = schema()["allOf"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r["if"]["properties"]["action"]["const"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(rules, listed);
    for (action, def) in schema()["$defs"]["details"].as_object().unwrap() {
        assert_eq!(def["additionalProperties"], false, "{action}");
    }
}

/// A valid entry to mutate.
fn started() -> Value {
    json!({
        "v": 1, "seq": 1, "time": "2026-11-22T05:00:00.000Z", "instance": "gw-1:4242",
        "action": "server.started", "outcome": "success", "actor": {"kind": "system"},
        "request_id": null, "client_addr": null, "subject": null,
        "details": {"version": "0.1.0", "listen": "127.0.0.1:8443", "scheme": "https",
            "client_auth": "off", "state_store": "embedded", "blob_store": "local"},
        "prev": "0".repeat(64), "hash": "a".repeat(64)
    })
}

#[test]
fn the_schema_refuses_what_the_format_does_not_allow() {
    assert_eq!(errors(&started()), Vec::<String>::new());
    let cases: Vec<(&str, Box<dyn Fn(&mut Value)>)> = vec![
        (
            "unlisted details member",
            Box::new(|e| e["details"]["file_name"] = json!("x.pdf")),
        ),
        (
            "missing details member",
            Box::new(|e| {
                e["details"].as_object_mut().unwrap().remove("listen");
            }),
        ),
        (
            "unknown action",
            Box::new(|e| e["action"] = json!("upload.renamed")),
        ),
        (
            "outcome the action never has",
            Box::new(|e| e["outcome"] = json!("denied")),
        ),
        (
            "unlisted envelope member",
            Box::new(|e| e["purpose_of_use"] = json!("TREAT")),
        ),
        (
            "missing envelope member",
            Box::new(|e| {
                e.as_object_mut().unwrap().remove("request_id");
            }),
        ),
        (
            "actor kind unknown",
            Box::new(|e| e["actor"] = json!({"kind": "robot"})),
        ),
        (
            "actor member unknown",
            Box::new(|e| e["actor"] = json!({"kind": "system", "name": "x"})),
        ),
        (
            "client_addr not an address",
            Box::new(|e| e["client_addr"] = json!("example.org")),
        ),
        (
            "request_id not 32 hex",
            Box::new(|e| e["request_id"] = json!("abc")),
        ),
        ("prev not 64 hex", Box::new(|e| e["prev"] = json!("0"))),
        (
            "time not RFC 3339 ms UTC",
            Box::new(|e| e["time"] = json!("2026-11-22 05:00:00")),
        ),
        (
            "details of another action",
            Box::new(|e| e["action"] = json!("server.stopped")),
        ),
    ];
    for (what, mutate) in cases {
        let mut entry = started();
        mutate(&mut entry);
        assert!(!errors(&entry).is_empty(), "{what}: accepted {entry}");
    }
}

/// The golden entries: `proto/vectors/audit-events/<action>.json`, each one stored line.
fn vectors() -> Vec<(String, String)> {
    let dir = root().join("proto/vectors/audit-events");
    let mut out: Vec<(String, String)> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            let name = p.file_stem().unwrap().to_str().unwrap().to_owned();
            (name, fs::read_to_string(&p).unwrap())
        })
        .collect();
    out.sort();
    out
}

#[test]
fn golden_entries_validate_and_are_real_entries() {
    let vectors = vectors();
    let mut families = BTreeSet::new();
    for (name, text) in &vectors {
        let line = text.strip_suffix('\n').unwrap_or(text);
        assert!(!line.contains('\n'), "{name}: one line");
        let entry: Value = serde_json::from_str(line).unwrap();
        assert_eq!(
            entry["action"],
            name.as_str(),
            "{name}: file named by its action"
        );
        let errs = errors(&entry);
        assert!(errs.is_empty(), "{name}: {}", errs.join("\n"));
        // Unedited: the stored hash is the hash of the body the gateway wrote.
        let body = format!("{}}}", &line[..line.len() - 75]);
        let hash = sallyport::audit::chain::entry_hash(body.as_bytes());
        assert_eq!(entry["hash"], hex::encode(hash), "{name}: hash");
        families.insert(name.split('.').next().unwrap().to_owned());
    }
    let all: BTreeSet<String> = schema_actions()
        .iter()
        .map(|a| a.split('.').next().unwrap().to_owned())
        .collect();
    assert_eq!(families, all, "one golden entry per action family at least");
}
