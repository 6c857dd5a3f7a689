//! `proto/openapi.yaml` against the code: the document and the router list the same
//! `(method, path template)` pairs, every route the document lists is one the router
//! accepts, and the document's `ProblemCode` enum is exactly the set of codes in the error
//! table (`src/http/problem.rs` and `src/http/problem/`), with every per-response code one
//! of them. What the live gateway answers is checked by `scripts/api-contract.sh`
//! (Schemathesis).

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

use sallyport::http::endpoint::{Endpoint, ROUTE_TEMPLATES, Routes};
use sallyport::tus::concat::BasePath;

const METHODS: [&str; 8] = [
    "get", "head", "post", "put", "patch", "delete", "options", "trace",
];

fn document() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("proto/openapi.yaml");
    let text = std::fs::read_to_string(&path).expect("read proto/openapi.yaml");
    serde_norway::from_str(&text).expect("proto/openapi.yaml is YAML")
}

/// `(METHOD, path)` for every operation under `paths`.
fn documented_routes(doc: &Value) -> BTreeSet<(String, String)> {
    let paths = doc["paths"].as_object().expect("paths is a map");
    let mut out = BTreeSet::new();
    for (path, item) in paths {
        let item = item.as_object().expect("a path item is a map");
        let mut any = false;
        for key in item.keys() {
            if METHODS.contains(&key.as_str()) {
                out.insert((key.to_ascii_uppercase(), path.clone()));
                any = true;
            }
        }
        assert!(any, "{path} has no operation");
    }
    out
}

fn router_routes() -> BTreeSet<(String, String)> {
    ROUTE_TEMPLATES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect()
}

#[test]
fn the_document_and_the_router_list_the_same_routes() {
    let doc = document();
    assert_eq!(doc["openapi"].as_str(), Some("3.1.0"));
    let documented = documented_routes(&doc);
    let routed = router_routes();
    let only_doc: Vec<_> = documented.difference(&routed).collect();
    let only_router: Vec<_> = routed.difference(&documented).collect();
    assert!(
        only_doc.is_empty() && only_router.is_empty(),
        "documented but not routed: {only_doc:?}\nrouted but not documented: {only_router:?}"
    );
    assert!(routed.len() >= 30, "the route table is suspiciously short");
}

/// The router's own check, from the document's side: each documented operation, with
/// well-formed ids in its path, routes (to some endpoint, not a 404 or 405).
#[test]
fn every_documented_route_is_accepted_by_the_router() {
    let routes = Routes {
        uploads: BasePath::new("/files/").unwrap(),
    };
    for (method, template) in documented_routes(&document()) {
        let path = template
            .replace("{upload_id}", "0123456789abcdefghjkmnpqrs")
            .replace("{artifact_id}", "67rq0xe32xxh21dav1b2qx1ch3")
            .replace("{grant_id}", "67rq0xe32xxh21dav1b2qx1ch3")
            .replace("{batch_id}", "7zzzzzzzzzzzzzzzzzzzzzzzzz")
            .replace("{link}", "67rq0xe32xxh21dav1b2qx1ch3")
            .replace("{trace_id}", "67rq0xe32xxh21dav1b2qx1ch3")
            .replace("{job_id}", "67rq0xe32xxh21dav1b2qx1ch3")
            .replace("{group_id}", "g-1")
            .replace("{asset}", "invite.js")
            .replace("{invitation_id}", "67rq0xe32xxh21dav1b2qx1ch3");
        assert!(!path.contains('{'), "unknown placeholder in {template}");
        let routed: Result<Endpoint, _> = Endpoint::parse(&method.parse().unwrap(), &path, &routes);
        assert!(routed.is_ok(), "{method} {template}: {routed:?}");
    }
}

/// Every string literal in the error table's files that looks like a problem code.
fn table_codes() -> BTreeSet<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http");
    let mut files = vec![root.join("problem.rs")];
    for entry in std::fs::read_dir(root.join("problem")).unwrap() {
        files.push(entry.unwrap().path());
    }
    let mut codes = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for (i, literal) in text.split('"').enumerate() {
            // Odd pieces are inside quotes (the table's files have no escaped quotes
            // before a code).
            if i % 2 == 1 && is_code(literal) {
                codes.insert(literal.to_owned());
            }
        }
    }
    codes
}

fn is_code(s: &str) -> bool {
    let Some((area, name)) = s.split_once('.') else {
        return false;
    };
    !area.is_empty()
        && !name.is_empty()
        && area.bytes().all(|b| b.is_ascii_lowercase())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
}

fn enum_strings(v: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    if let Some(list) = v["enum"].as_array() {
        out.extend(list.iter().filter_map(|s| s.as_str().map(str::to_owned)));
    }
    if let Some(s) = v["const"].as_str() {
        out.insert(s.to_owned());
    }
    out
}

/// Every per-response `code` restriction (`properties.code.enum|const`) in the document.
fn response_codes(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(map) => {
            if let Some(code) = map.get("properties").and_then(|p| p.get("code")) {
                out.extend(enum_strings(code));
            }
            map.values().for_each(|c| response_codes(c, out));
        }
        Value::Array(list) => list.iter().for_each(|c| response_codes(c, out)),
        _ => {}
    }
}

#[test]
fn the_problem_codes_are_the_error_tables() {
    let doc = document();
    let documented = enum_strings(&doc["components"]["schemas"]["ProblemCode"]);
    let table = table_codes();
    assert!(
        table.len() > 50,
        "found only {} codes in the table",
        table.len()
    );
    let only_doc: Vec<_> = documented.difference(&table).collect();
    let only_table: Vec<_> = table.difference(&documented).collect();
    assert!(
        only_doc.is_empty() && only_table.is_empty(),
        "in ProblemCode but not the table: {only_doc:?}\nin the table but not ProblemCode: {only_table:?}"
    );
    let mut used = BTreeSet::new();
    response_codes(&doc["paths"], &mut used);
    response_codes(&doc["components"]["responses"], &mut used);
    let unknown: Vec<_> = used.difference(&documented).collect();
    assert!(
        unknown.is_empty(),
        "responses name unknown codes: {unknown:?}"
    );
    assert!(
        used.len() > 50,
        "only {} codes are used by responses",
        used.len()
    );
}
