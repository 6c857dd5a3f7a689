#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The audit tamper suite (issue 11 items 2–4).
//!
//! - The writer refuses to chain over a lost tail: a store whose log is cut under a running
//!   writer (the library's `MemoryStore`, in process) halts auditing — every audited action
//!   is refused with `server.audit_halted`, `/readyz` fails with the reason and
//!   `sallyport_audit_halted` is 1 — and a writer restarted over a cut store halts before
//!   its first append, from the highest checkpoint in `audit.checkpoint_dir`.
//! - `audit verify` on a real trail written by the gateway binary, with the checkpoints it
//!   signed: edit, delete, insert, reorder are found with their positions; truncating the
//!   tail and re-hashing the whole chain pass without checkpoints (the point of them) and
//!   are found and located with them.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Body;
use http::{Request, StatusCode};
use sallyport::audit::chain::{HASH_DOMAIN, entry_hash};
use sallyport::audit::checkpointer::{CheckpointKey, Checkpointer};
use sallyport::audit::log::StateLog;
use sallyport::audit::{AUDIT_LOG, AuditError, Auditor};
use sallyport::http::body::read_capped;
use sallyport::metrics::Metrics;
use sallyport::state::StateStore;
use sallyport::state::memory::MemoryStore;
use serde_json::Value;
use tower::ServiceExt;

mod support;

use support::audit_probe::emit;

use support::{sallyport, token_hash};

const ADMIN: &str = "tamper-admin-token-0123456789abcdefghijklmnop";

async fn log_len(store: &MemoryStore) -> u64 {
    store
        .log_head(AUDIT_LOG)
        .await
        .unwrap()
        .map_or(0, |e| e.seq)
}

#[tokio::test]
async fn a_writer_whose_log_is_cut_under_it_halts_instead_of_chaining_on() {
    let store = Arc::new(MemoryStore::new());
    let metrics = Arc::new(Metrics::new());
    let auditor = Auditor::start(
        StateLog::shared(store.clone()),
        "t".into(),
        16,
        metrics.clone(),
    );
    for n in 1..=5 {
        assert_eq!(emit(&auditor, n).await.unwrap(), n);
    }
    store.truncate_log(AUDIT_LOG, 3);

    let e = emit(&auditor, 6).await.unwrap_err();
    let AuditError::Halted(reason) = &e else {
        panic!("expected a halt, got {e:?}")
    };
    assert_eq!((reason.seen_seq, reason.found_seq), (5, 3), "{reason}");
    assert_eq!(
        log_len(&store).await,
        3,
        "nothing appended on the lowered head"
    );
    // It stays halted: later events fail too, and nothing is appended.
    assert!(matches!(
        emit(&auditor, 7).await,
        Err(AuditError::Halted(_))
    ));
    assert_eq!(log_len(&store).await, 3);
    assert!(auditor.halted().is_some());
    assert!(
        metrics.encode().contains("sallyport_audit_halted 1"),
        "{}",
        metrics.encode()
    );
}

#[tokio::test]
async fn a_writer_restarted_over_a_cut_log_halts_from_its_last_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let cps = dir.path().join("checkpoints");
    std::fs::create_dir(&cps).unwrap();
    let key_path = dir.path().join("audit-checkpoint.key");
    let store = Arc::new(MemoryStore::new());
    let checkpointer = |metrics: &Arc<Metrics>| {
        let key = CheckpointKey::load_or_generate(&key_path, false).unwrap();
        Checkpointer::new(
            key,
            2,
            std::time::Duration::from_secs(3600),
            Some(cps.clone()),
            metrics.clone(),
        )
    };
    let metrics = Arc::new(Metrics::new());
    let first = Auditor::start_with(
        StateLog::shared(store.clone()),
        "t".into(),
        1,
        metrics.clone(),
        Some(checkpointer(&metrics)),
    );
    for n in 1..=5 {
        emit(&first, n).await.unwrap();
    }
    // Entries 2 and 4 were checkpointed (every 2), each before the next append returned.
    let names: Vec<String> = std::fs::read_dir(&cps)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        names.contains(&"00000000000000000004.checkpoint".to_owned()),
        "{names:?}"
    );
    drop(first);

    // The tail is cut to 3 while the gateway is down; the new writer knows 4 was signed.
    store.truncate_log(AUDIT_LOG, 3);
    let metrics = Arc::new(Metrics::new());
    let second = Auditor::start_with(
        StateLog::shared(store.clone()),
        "t".into(),
        1,
        metrics.clone(),
        Some(checkpointer(&metrics)),
    );
    let e = emit(&second, 6).await.unwrap_err();
    assert!(
        matches!(e, AuditError::Halted(ref r) if r.seen_seq == 4 && r.found_seq == 3),
        "{e:?}"
    );
    assert_eq!(log_len(&store).await, 3);
}

/// The whole gateway in process over a `MemoryStore`: an audited API call after the log
/// was cut is refused with `server.audit_halted`, and `/readyz` says why.
#[tokio::test]
async fn a_halted_gateway_refuses_audited_requests_and_is_not_ready() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "data_dir = {:?}\n[audit]\nstore = \"state\"\n[[clients]]\nname = \"ops\"\ntoken_sha256 = \"{}\"\nroles = [\"admin\"]\n",
        dir.path().join("data").display().to_string(),
        token_hash(ADMIN),
    );
    let config = sallyport::config::Config::from_toml(&text, &BTreeMap::new()).unwrap();
    let store = Arc::new(MemoryStore::new());
    let app = sallyport::app::build_with_state(config, store.clone())
        .await
        .unwrap();
    let call = |uri: &'static str| {
        let app = &app;
        async move {
            let peer: SocketAddr = "192.0.2.44:40000".parse().unwrap();
            let req = Request::get(uri)
                .header("authorization", format!("Bearer {ADMIN}"))
                .body(Body::empty())
                .unwrap();
            let resp = app.service(peer).oneshot(req).await.unwrap();
            let (parts, body) = resp.into_parts();
            let body = read_capped(None, body, 1 << 20).await.unwrap().to_vec();
            (parts.status, body)
        }
    };
    for _ in 0..3 {
        let (status, _) = call("/v1/audit/verify").await;
        assert_eq!(status, StatusCode::OK);
    }
    assert_eq!(call("/readyz").await.0, StatusCode::OK);
    let len = log_len(&store).await;
    assert!(len >= 3);
    store.truncate_log(AUDIT_LOG, len - 2);

    let (status, body) = call("/v1/audit/verify").await;
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(v["code"], "server.audit_halted", "{v}");
    assert_eq!(
        log_len(&store).await,
        len - 2,
        "nothing chained on the cut log"
    );
    let (status, body) = call("/readyz").await;
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(v["audit"]["ok"], false, "{v}");
    assert!(
        v["audit"]["halted"].as_str().unwrap().contains("went back"),
        "{v}"
    );
    let (_, metrics) = call("/metrics").await;
    assert!(String::from_utf8_lossy(&metrics).contains("sallyport_audit_halted 1"));
}

// === audit verify on a real trail ===

struct Trail {
    dir: tempfile::TempDir,
    lines: Vec<String>,
    checkpoints: PathBuf,
    public_key: PathBuf,
}

/// Runs the gateway three times (start and stop entries, a checkpoint after every
/// append), exports the chain and the public key.
fn trail() -> Trail {
    let dir = tempfile::tempdir().unwrap();
    let checkpoints = dir.path().join("checkpoints");
    let extra = format!(
        "[audit]\ncheckpoint_every = 1\ncheckpoint_dir = {:?}\n",
        checkpoints.display().to_string()
    );
    for _ in 0..3 {
        let mut gw = support::Gateway::start_in(dir.path(), &extra);
        gw.stop();
    }
    let config = dir.path().join("sallyport.toml");
    let export = dir.path().join("audit.jsonl");
    let out = support::cli_output(
        &config,
        &["audit", "export", "--out", export.to_str().unwrap()],
    );
    assert!(out.status.success(), "{out:?}");
    let lines: Vec<String> = std::fs::read_to_string(&export)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(lines.len(), 6, "three starts and three stops");
    let out = support::cli_output(&config, &["audit", "public-key"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("-----BEGIN PUBLIC KEY-----\n"), "{text}");
    assert!(
        text.lines().last().unwrap().starts_with("sallyport/audit+"),
        "{text}"
    );
    let public_key = dir.path().join("audit.pub");
    std::fs::write(&public_key, text).unwrap();
    Trail {
        dir,
        lines,
        checkpoints,
        public_key,
    }
}

impl Trail {
    /// `audit verify --file` on `lines`, with the checkpoints when `with_checkpoints`.
    fn verify(&self, lines: &[String], with_checkpoints: bool) -> (i32, String) {
        let p = self.dir.path().join("candidate.jsonl");
        std::fs::write(&p, lines.join("\n") + "\n").unwrap();
        let mut cmd = sallyport();
        cmd.args(["audit", "verify", "--file"]).arg(&p);
        if with_checkpoints {
            cmd.arg("--checkpoint-dir")
                .arg(&self.checkpoints)
                .arg("--public-key")
                .arg(&self.public_key);
        }
        let out = cmd.output().unwrap();
        (
            out.status.code().unwrap(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    fn checkpoint_lengths(&self) -> Vec<u64> {
        let mut v: Vec<u64> = std::fs::read_dir(&self.checkpoints)
            .unwrap()
            .map(|e| {
                let name = e.unwrap().file_name().into_string().unwrap();
                name.strip_suffix(".checkpoint").unwrap().parse().unwrap()
            })
            .collect();
        v.sort();
        v
    }
}

/// Recomputes every entry's `prev` and `hash` (what an attacker without the key can do
/// after editing an entry): the chain verifies on its own.
fn rehash(lines: &[String]) -> Vec<String> {
    let mut prev = hex::encode([0u8; 32]);
    lines
        .iter()
        .map(|l| {
            let body = &l[..l.len() - 75];
            let at = body.find("\"prev\":\"").unwrap() + 8;
            let body = format!("{}{}{}}}", &body[..at], prev, &body[at + 64..]);
            let hash = hex::encode(entry_hash(body.as_bytes()));
            prev = hash.clone();
            format!("{},\"hash\":\"{hash}\"}}", &body[..body.len() - 1])
        })
        .collect()
}

#[test]
fn audit_verify_with_checkpoints_finds_and_locates_every_tampering() {
    assert_eq!(HASH_DOMAIN, b"sallyport-audit-v1\n");
    let t = trail();
    let lengths = t.checkpoint_lengths();
    assert!(
        lengths.len() >= 3 && *lengths.last().unwrap() == 6,
        "a checkpoint after every append, the last at 6: {lengths:?}"
    );

    // Intact: exit 0 with and without checkpoints.
    let (code, out) = t.verify(&t.lines, true);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("length     6"), "{out}");
    assert!(
        out.contains(&format!(
            "checkpoints  {n} of {n} valid and consistent",
            n = lengths.len()
        )),
        "{out}"
    );

    // Edit, delete, insert, reorder: found with their positions (exit 1), with or without.
    let mut edited = t.lines.clone();
    edited[2] = edited[2].replacen("\"v\":1", "\"v\":2", 1);
    let mut deleted = t.lines.clone();
    deleted.remove(3);
    let mut inserted = t.lines.clone();
    inserted.insert(4, t.lines[1].clone());
    let mut swapped = t.lines.clone();
    swapped.swap(1, 2);
    for (name, lines, at) in [
        ("edit", &edited, "entry 3"),
        ("delete", &deleted, "entry 4"),
        ("insert", &inserted, "entry 5"),
        ("reorder", &swapped, "entry 2"),
    ] {
        for with in [false, true] {
            let (code, out) = t.verify(lines, with);
            assert_eq!(code, 1, "{name} (checkpoints: {with}): {out}");
            assert!(out.contains(at), "{name}: {out}");
        }
    }

    // Truncating the tail: passes on its own (exit 0) — a checkpoint finds it.
    let truncated = t.lines[..4].to_vec();
    let (code, out) = t.verify(&truncated, false);
    assert_eq!(
        code, 0,
        "without a checkpoint a shortened chain verifies: {out}"
    );
    let (code, out) = t.verify(&truncated, true);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("(length 6): TRUNCATED: signed at length 6, the log has 4 entries — entries 5 to 6 were removed"),
        "{out}"
    );

    // Re-hashing the whole chain after editing entry 2: passes on its own — every
    // checkpoint from 2 on finds it, and the first one locates it.
    let mut forged = t.lines.clone();
    forged[1] = forged[1].replacen("\"outcome\":\"success\"", "\"outcome\":\"failure\"", 1);
    assert_ne!(forged[1], t.lines[1]);
    let forged = rehash(&forged);
    assert_eq!(
        rehash(&t.lines),
        t.lines,
        "rehash reproduces an intact chain"
    );
    let (code, out) = t.verify(&forged, false);
    assert_eq!(
        code, 0,
        "without a checkpoint a re-hashed chain verifies: {out}"
    );
    let (code, out) = t.verify(&forged, true);
    assert_eq!(code, 1, "{out}");
    let first_bad = lengths.iter().find(|&&l| l >= 2).unwrap();
    let confirmed = lengths
        .iter()
        .filter(|&&l| l < 2)
        .max()
        .copied()
        .unwrap_or(0);
    assert!(
        out.contains(&format!(
            "(length {first_bad}): REWRITTEN: the chain at length {first_bad}"
        )) && out.contains(&format!(
            "entries after {confirmed} up to {first_bad} were rewritten"
        )),
        "{out}"
    );

    // A forged checkpoint (a byte changed) is invalid, exit 1; no key at all is exit 2.
    let forged_cp = t.dir.path().join("forged.checkpoint");
    let real =
        std::fs::read_to_string(t.checkpoints.join("00000000000000000006.checkpoint")).unwrap();
    std::fs::write(&forged_cp, real.replacen("\n6\n", "\n7\n", 1)).unwrap();
    let p = t.dir.path().join("candidate.jsonl");
    let out = sallyport()
        .args(["audit", "verify", "--file"])
        .arg(&p)
        .arg("--checkpoint")
        .arg(&forged_cp)
        .arg("--public-key")
        .arg(&t.public_key)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("does not verify"),
        "{out:?}"
    );
    let out = sallyport()
        .args(["audit", "verify", "--file"])
        .arg(&p)
        .arg("--checkpoint")
        .arg(&forged_cp)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

/// The store verifies against the checkpoints the gateway wrote (not only an export).
#[test]
fn audit_verify_reads_the_store_against_the_checkpoint_dir() {
    let t = trail();
    let config = t.dir.path().join("sallyport.toml");
    let out = support::cli_output(
        &config,
        &[
            "audit",
            "verify",
            "--checkpoint-dir",
            t.checkpoints.to_str().unwrap(),
            "--public-key",
            t.public_key.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("length     6"), "{text}");
    // Checkpoint files are public, never rewritten: O_EXCL refuses a second write.
    let cp = t.checkpoints.join("00000000000000000006.checkpoint");
    let e =
        sallyport::audit::checkpointer::write_checkpoint_file(&t.checkpoints, 6, "x").unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists);
    assert!(
        std::fs::read_to_string(cp)
            .unwrap()
            .starts_with("sallyport/audit\n6\n")
    );
}

/// The journal, black-box: a gateway restarted over a restored older copy of its audit
/// journal (its tail of entries lost) refuses to start, because the checkpoint directory
/// knows a longer chain; with the current journal it starts again.
#[test]
fn a_gateway_over_a_restored_older_journal_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoints = dir.path().join("checkpoints");
    let extra = format!(
        "[audit]\ncheckpoint_every = 1\ncheckpoint_dir = {:?}\n",
        checkpoints.display().to_string()
    );
    let mut gw = support::Gateway::start_in(dir.path(), &extra);
    gw.stop();
    let journal = dir.path().join("data/audit/audit");
    let backup = dir.path().join("journal.backup");
    copy_dir(&journal, &backup);
    let mut gw = support::Gateway::start_in(dir.path(), &extra);
    gw.stop();
    let current = dir.path().join("journal.current");
    copy_dir(&journal, &current);

    copy_dir(&backup, &journal);
    let config = dir.path().join("sallyport.toml");
    let mut child = sallyport()
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .env("SALLYPORT_SERVER__LISTEN", "127.0.0.1:0")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status = support::wait_timeout(&mut child, std::time::Duration::from_secs(60));
    let Some(status) = status else {
        child.kill().unwrap();
        panic!("the gateway served over a store behind its checkpoints");
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(!status.success(), "{err}");
    assert!(
        err.contains("auditing halted") && err.contains("from seq 4") && err.contains("to seq 2"),
        "{err}"
    );
    // Nothing was appended to the restored journal.
    let out = support::cli_output(&config, &["audit", "verify"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("length     2"),
        "{out:?}"
    );

    // The current journal back: it starts and chains on.
    copy_dir(&current, &journal);
    let mut gw = support::Gateway::start_in(dir.path(), &extra);
    gw.stop();
}

/// Replaces the files of `to` with those of `from` (a restore from a backup).
fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    if to.exists() {
        std::fs::remove_dir_all(to).unwrap();
    }
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}
