//! The audit event schema, `proto/audit-event-v1.schema.json`: it is a valid JSON Schema
//! 2020-12; it lists exactly the actions the code can emit (every `AuditEvent` impl's
//! `ACTION`, found in the sources, so an event added without a schema entry fails here);
//! it rejects what it must (an unlisted action or `details` member, a missing member, an
//! outcome the action never has); and the golden entries in
//! `proto/vectors/audit-events/` — real entries, their hashes intact — validate.
//!
//! The schema is asserted on every audit trail the black-box tests export as well
//! (`support::audit_schema`, used by `support::links::export_audit`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use sallyport::audit::{Actor, AuditEvent};
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
    fn drop_member(e: &mut Value, at: &str, member: &str) {
        e.pointer_mut(at)
            .unwrap()
            .as_object_mut()
            .unwrap()
            .remove(member);
    }
    let refused = |what: &str, mutate: fn(&mut Value)| {
        let mut entry = started();
        mutate(&mut entry);
        assert!(!errors(&entry).is_empty(), "{what}: accepted {entry}");
    };
    refused("unlisted details member", |e| {
        e["details"]["file_name"] = json!("x.pdf")
    });
    refused("missing details member", |e| {
        drop_member(e, "/details", "listen")
    });
    refused("unknown action", |e| e["action"] = json!("upload.renamed"));
    refused("outcome the action never has", |e| {
        e["outcome"] = json!("denied")
    });
    refused("unlisted envelope member", |e| {
        e["purpose_of_use"] = json!("TREAT")
    });
    refused("missing envelope member", |e| {
        drop_member(e, "", "request_id")
    });
    refused("actor kind unknown", |e| {
        e["actor"] = json!({"kind": "robot"})
    });
    refused("actor member unknown", |e| e["actor"]["name"] = json!("x"));
    refused("client_addr not an address", |e| {
        e["client_addr"] = json!("example.org")
    });
    refused("request_id not 32 hex", |e| e["request_id"] = json!("abc"));
    refused("prev not 64 hex", |e| e["prev"] = json!("0"));
    refused("time not RFC 3339 ms UTC", |e| {
        e["time"] = json!("2026-11-22 05:00:00")
    });
    refused("details of another action", |e| {
        e["action"] = json!("server.stopped")
    });
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

// === Every event type, serialised as the writer does ===

const ID: &str = "0123456789abcdefghjkmnpqrs";
const HEX: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

fn id() -> String {
    ID.to_owned()
}

/// The entry `Auditor::emit` would write for `event` (envelope as in `audit::append_batch`,
/// details the event's own serialisation), with its schema errors.
fn emitted<E: AuditEvent>(event: &E) -> (&'static str, Vec<String>) {
    let entry = json!({
        "v": 1, "seq": 7, "time": "2026-12-06T02:00:00.000Z", "instance": "gw-1:4242",
        "action": E::ACTION, "outcome": event.outcome(),
        "actor": serde_json::to_value(Actor::Client {
            name: "clinic".into(),
            auth_method: Some("client_certificate"),
        }).unwrap(),
        "request_id": "0123456789abcdef0123456789abcdef", "client_addr": "2001:db8::7",
        "peer_addr": "10.0.0.2", "subject": event.subject(),
        "details": serde_json::to_value(event).unwrap(),
        "prev": HEX, "hash": HEX,
    });
    (E::ACTION, errors(&entry))
}

/// One value of every `AuditEvent` type, every optional member set (so every member is
/// checked), through the schema. A new event type must be added here, and a new member
/// of an existing one fails until the schema lists it — whether or not a black-box test
/// reaches the event yet.
#[test]
fn every_event_type_serialises_to_an_entry_the_schema_accepts() {
    use sallyport::artifact::events as art;
    use sallyport::audit::events as core;
    use sallyport::audit::security as sec;
    use sallyport::batch::events as batch;
    use sallyport::grant::events as grant;
    use sallyport::links::events as links;
    use sallyport::upload::events as up;
    let kek = || "k0e93da432f23:v2".to_owned();
    let results = vec![
        emitted(&core::ServerStarted {
            version: "0.1.0",
            listen: "127.0.0.1:8443".into(),
            scheme: "https",
            client_auth: "required",
            state_store: "redis",
            blob_store: "s3",
        }),
        emitted(&core::ServerStopped {
            abandoned_connections: 2,
        }),
        emitted(&core::TlsReloaded {
            ok: false,
            error: Some("certificate file: holds no certificate".into()),
        }),
        emitted(&core::AccessDenied {
            endpoint: "batch_purge",
            missing_role: "auditor",
        }),
        emitted(&core::AuditVerified {
            length: 12,
            intact: false,
        }),
        emitted(&core::AuditArchived {
            segments: 3,
            first_seq: 1,
            last_seq: 4200,
            destination: "/mnt/worm/sallyport-audit-archive".into(),
            checkpoint: "00000000000000004200.checkpoint".into(),
            method: "rename",
        }),
        emitted(&core::AuditQueried::trace("67rq0xe32xxh21dav1b2qx1ch3", 9)),
        emitted(&core::KeyChangeRequested {
            operation: "retire",
            version: Some(1),
        }),
        emitted(&core::KekRotated { kek: kek() }),
        emitted(&core::DekRewrapped {
            object: id(),
            from: "k0e93da432f23:v1".into(),
            to: kek(),
        }),
        emitted(&core::DekRewrapFailed {
            object: id(),
            error: "unwrap failed".into(),
        }),
        emitted(&core::RewrapStarted {
            total: 3,
            to: kek(),
        }),
        emitted(&core::KekRetired { kek: kek() }),
        emitted(&up::UploadCreated {
            upload: id(),
            length: Some(10),
            concat: "final",
            metadata_pairs: 2,
        }),
        emitted(&up::ChunkAccepted {
            upload: id(),
            index: 1,
            offset: 5,
            length: 5,
            sha256: HEX.into(),
            checksum_verified: Some("sha1"),
            partial_body: true,
            recovered: true,
        }),
        emitted(&up::ChecksumMismatch {
            upload: id(),
            offset: 0,
            length: 5,
            algorithm: "md5",
        }),
        emitted(&up::UploadCompleted {
            upload: id(),
            length: 10,
            sha256: HEX.into(),
            chunks: 0,
            parts: vec![id(), id()],
            recovered: true,
        }),
        emitted(&up::UploadAccessDenied {
            upload: id(),
            attempted: "ledger",
        }),
        emitted(&up::UploadTerminated {
            upload: id(),
            offset: 3,
            complete: false,
        }),
        emitted(&up::UploadExpired {
            upload: id(),
            offset: 3,
            owner: "clinic".into(),
        }),
        emitted(&up::UploadRetired {
            upload: id(),
            length: 3,
            owner: "clinic".into(),
            completed_at: "2026-12-06T02:00:00Z".into(),
        }),
        emitted(&up::UploadShredded {
            upload: id(),
            offset: 3,
            complete: true,
            cause: "batch",
        }),
        emitted(&links::DownloadServed {
            grant: id(),
            artifact: id(),
            method: "GET",
            status: 206,
            ranges: vec!["0-9".into(), "20-29".into()],
            bytes: 20,
            length: 100,
            outcome: "partial",
            tls_version: Some("TLSv1_3".into()),
            tls_cipher: Some("TLS13_AES_256_GCM_SHA384".into()),
            key_id: "g20261206-09c7b3".into(),
        }),
        emitted(&links::DownloadAborted {
            grant: id(),
            artifact: id(),
            planned: 100,
            delivered: 40,
            refunded: 60,
        }),
        emitted(&links::DownloadRejected {
            reason: "expired",
            method: "PROPFIND".into(),
            grant: Some(id()),
            artifact: Some(id()),
            client_blocked: true,
        }),
        emitted(&links::PublishOutOfScope {
            attempt: "link.issue",
            limit: "partner",
            partner: Some("payer-a".into()),
            owner: Some("clinic".into()),
            artifact: Some(id()),
            upload: Some(id()),
        }),
        emitted(&grant::LinkIssued {
            grant: id(),
            partner: "payer-a".into(),
            artifacts: vec![id()],
            batch: Some(id()),
            key_id: "g20261206-09c7b3".into(),
            methods: "GET,HEAD",
            not_before: 1,
            expires: 2,
            max_downloads: Some(3),
            max_bytes: Some(4),
            client_net: Some("192.0.2.0/24".into()),
            client_cert_bound: true,
            file_name_set: true,
        }),
        emitted(&grant::LinksRevoked {
            scope: "partner",
            target: "payer-a".into(),
            reason: "contract ended (ticket #42)".into(),
            count: 2,
            already_revoked: 1,
            grants: vec![id(), id()],
        }),
        emitted(&grant::RevokeRequested {
            scope: "batch",
            target: id(),
            reason: "revoked".into(),
        }),
        emitted(&art::ArtifactRegistered {
            artifact: id(),
            source: "import",
            upload: Some(id()),
            length: 9,
            sha256: HEX.into(),
            content_type: "text/plain; charset=utf-8".into(),
            batch: Some(id()),
            remove_source: Some(true),
        }),
        emitted(&batch::BatchOpened {
            batch: id(),
            manifest_sha256: HEX.into(),
            provenance_sha256: Some(HEX.into()),
            members: 3,
            bytes: 30,
            profile: Some("fhir-bulk".into()),
        }),
        emitted(&batch::MemberAdded {
            batch: id(),
            member_index: 2,
            upload: id(),
        }),
        emitted(&batch::BatchSealed {
            batch: id(),
            uploads: 3,
        }),
        emitted(&batch::BatchVerdict {
            batch: id(),
            verdict: "quarantined",
            findings: 1,
            report_sha256: HEX.into(),
            bytes_checked: 30,
        }),
        emitted(&batch::BatchQuarantined {
            batch: id(),
            codes: vec!["member.sha256_mismatch"],
        }),
        emitted(&batch::ApprovalRecorded {
            batch: id(),
            reason: "line 42 is a known exporter bug".into(),
            approvals: 1,
        }),
        emitted(&batch::BatchReleased {
            batch: id(),
            by: "auditor",
            reason: Some("agreed".into()),
            approvers: vec!["auditor-1".into(), "auditor-2".into()],
            retain_until: 9,
        }),
        emitted(&batch::BatchPurged {
            batch: id(),
            reason: "done".into(),
            from: "quarantined",
            uploads_destroyed: 3,
        }),
        emitted(&batch::BatchExpired {
            batch: id(),
            uploads_destroyed: 1,
        }),
        emitted(&batch::RetentionExpired {
            batch: id(),
            retain_until: 9,
        }),
        emitted(&batch::ChangeRequested {
            batch: id(),
            change: "expire",
            from: "open",
            reason: Some("done".into()),
        }),
        emitted(&sec::AuthFailed {
            reason: "certificate_required",
            endpoint: "whoami",
        }),
        emitted(&sec::TlsRefused { reason: "timeout" }),
        emitted(&sec::ProxyRefused { reason: "too_long" }),
        emitted(&sec::HeaderTimeout { head_bytes: 17 }),
        emitted(&sec::SecuritySummary {
            kind: "link_refused",
            repeats: 40,
            window_secs: 60,
        }),
        emitted(&sec::SecuritySummary {
            kind: "token_refused",
            repeats: 3,
            window_secs: 60,
        }),
        emitted(&sallyport::smart::events::TokenIssued {
            client_id: "payer-a-bulk".into(),
            scope: "system/*.read system/Patient.rs".into(),
            expires_in: 300,
            token_id: id(),
            jti_sha256: HEX.into(),
            kid: "payer-a-2026-12".into(),
            alg: "ES384",
        }),
        emitted(&sallyport::smart::events::TokenRefused {
            reason: "replayed_jti",
            error: "invalid_client",
            client_id: Some("payer-a-bulk".into()),
            jti_sha256: Some(HEX.into()),
        }),
        emitted(&sallyport::bulk::events::BatchBuilt {
            batch: id(),
            source: "batch",
            artifacts: vec![id(), id()],
            from_batch: Some(id()),
            members: 2,
            bytes: 4096,
            manifest_sha256: "ab".repeat(32),
        }),
        emitted(&sallyport::bulk::events::ExportPublished {
            publication: id(),
            batch: id(),
            client_id: "payer-a-bulk".into(),
            level: "group/diabetes-2026".into(),
            batch_state: "released",
            expires_at: 1_800_000_000,
            purpose_of_use: Some("TREAT".into()),
        }),
        emitted(&sallyport::bulk::events::Kickoff {
            job: Some(id()),
            client_id: "payer-a-bulk".into(),
            level: Some("system".into()),
            types: Some(vec!["Patient".into(), "Observation".into()]),
            since: Some("2026-01-01T00:00:00Z".into()),
            refused: None,
        }),
        emitted(&sallyport::bulk::events::Kickoff {
            job: None,
            client_id: "payer-a-bulk".into(),
            level: None,
            types: None,
            since: None,
            refused: Some("output_format"),
        }),
        emitted(&sallyport::bulk::events::StatusPolled {
            job: id(),
            client_id: "payer-a-bulk".into(),
            status: "complete",
            batch: Some(id()),
            purpose_of_use: Some("TREAT".into()),
            grant: Some(id()),
            files: Some(3),
            batch_state: Some("released"),
        }),
        emitted(&sallyport::bulk::events::StatusPolled {
            job: id(),
            client_id: "payer-a-bulk".into(),
            status: "too_fast",
            batch: None,
            purpose_of_use: None,
            grant: None,
            files: None,
            batch_state: None,
        }),
        emitted(&sallyport::bulk::events::Cancelled {
            job: id(),
            client_id: "payer-a-bulk".into(),
            batch: None,
            purpose_of_use: None,
        }),
        emitted(&sallyport::invite::events::InvitationIssued {
            invitation: id(),
            partner: "clinic-a".into(),
            batch: Some(id()),
            max_files: 3,
            max_bytes: 4096,
            expires_at: 1_800_000_000,
            key_id: "k1".into(),
        }),
        emitted(&sallyport::invite::events::InvitationRevoked {
            invitation: id(),
            reason: String::new(),
        }),
        emitted(&sallyport::invite::events::InvitationRefused {
            invitation: id(),
            reason: "expired",
        }),
        emitted(&sallyport::smart::events::TokenRefused {
            reason: "unknown_client",
            error: "invalid_client",
            client_id: None,
            jti_sha256: None,
        }),
    ];
    let mut covered = BTreeSet::new();
    for (action, errors) in results {
        assert!(errors.is_empty(), "{action}:\n{}", errors.join("\n"));
        covered.insert(action.to_owned());
    }
    assert_eq!(covered, source_actions(), "one value of every event type");
}
