#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The command line, black-box: check-config, audit verify/export against tampering,
//! token generation.

mod support;

use support::sallyport;

#[test]
fn the_example_config_is_valid_and_matches_the_defaults() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config/sallyport.example.toml");
    let out = sallyport()
        .args(["check-config", path])
        .env_remove("SALLYPORT_CONFIG")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = std::fs::read_to_string(path).unwrap();
    let empty = std::collections::BTreeMap::new();
    let example = sallyport::config::Config::from_toml(&text, &empty).unwrap();
    let defaults = sallyport::config::Config::from_toml("", &empty).unwrap();
    assert_eq!(
        format!("{example:?}"),
        format!("{defaults:?}"),
        "the example's values are the defaults"
    );
}

#[test]
fn check_config_names_a_misspelt_key() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("bad.toml");
    std::fs::write(&f, "[server]\nlisen = \"127.0.0.1:8443\"\n").unwrap();
    let out = sallyport().arg("check-config").arg(&f).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("lisen"), "{err}");
    assert!(err.contains("line 2"), "{err}");

    std::fs::write(
        &f,
        "[tls]\ncert_file = \"/nonexistent.pem\"\nkey_file = \"/nonexistent-key.pem\"\n",
    )
    .unwrap();
    let out = sallyport().arg("check-config").arg(&f).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent.pem"));
}

#[test]
fn token_generate_prints_a_working_entry() {
    let out = sallyport()
        .args(["token", "generate", "--name", "lab-7"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let token = text.lines().nth(1).unwrap().trim();
    let hash = text.lines().find(|l| l.contains("token_sha256")).unwrap();
    assert!(hash.contains(&support::token_hash(token)), "{text}");
    assert!(token.len() >= 43);
}

/// The README's first-run steps, as written: its `token generate` line is run by a shell
/// (with the built binary for `cargo run --release --`) in an empty directory; the token
/// file it writes is private and is exactly what `--token-file` reads, the config entry it
/// appends admits that token with the admin role, and the README's `curl` line (with the
/// test gateway's port) reaches `/v1/audit/verify` with it.
#[test]
fn the_readme_first_run_steps_work_as_written() {
    use std::os::unix::fs::PermissionsExt;
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let lines: Vec<&str> = readme.lines().map(str::trim).collect();
    let generate = lines
        .iter()
        .find(|l| l.contains("token generate"))
        .expect("the README shows how to make a token");
    let generate = generate
        .strip_prefix("cargo run --release -- ")
        .expect("the README runs the binary through cargo");
    let work = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_sallyport");
    let sh = |line: &str| {
        std::process::Command::new("sh")
            .arg("-c")
            .arg(line)
            .current_dir(work.path())
            .env_remove("SALLYPORT_CONFIG")
            .output()
            .unwrap()
    };
    let out = sh(&format!("{bin} {generate}"));
    assert!(out.status.success(), "{generate}: {out:?}");
    let token_file = work.path().join("ops.token");
    let mode = std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the token file is private");
    let token = std::fs::read_to_string(&token_file).unwrap();
    let token = token.strip_suffix('\n').expect("one line");
    assert!(
        token.len() >= 43 && !token.contains(char::is_whitespace),
        "{token:?}"
    );
    let entry = std::fs::read_to_string(work.path().join("sallyport.toml")).unwrap();
    assert!(entry.contains(&support::token_hash(token)), "{entry}");
    assert!(entry.contains("roles = [\"admin\"]"), "{entry}");
    // Running it again refuses to overwrite the token file, and appends nothing.
    let again = sh(&format!("{bin} {generate}"));
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("ops.token"),
        "{again:?}"
    );
    assert_eq!(
        std::fs::read_to_string(work.path().join("sallyport.toml")).unwrap(),
        entry
    );
    assert_eq!(
        std::fs::read_to_string(&token_file).unwrap(),
        format!("{token}\n")
    );

    // The entry, in a gateway's config, admits the token; the README's curl line works.
    // (The test gateway has a client named "ops" of its own.)
    let gw = support::Gateway::start(&entry.replace("name = \"ops\"", "name = \"readme-ops\""));
    let curl = lines
        .iter()
        .position(|l| l.starts_with("curl") && l.contains("Authorization: Bearer"))
        .expect("the README calls the API with curl");
    let curl = format!("{} {}", lines[curl].trim_end_matches('\\'), lines[curl + 1])
        .replace(
            "sallyport-data/dev-ca/ca.pem",
            &gw.ca_path().display().to_string(),
        )
        .replace(
            "https://127.0.0.1:8443",
            &format!("https://localhost:{}", gw.addr.port()),
        );
    let out = sh(&format!("{curl} -sS --fail-with-body"));
    assert!(out.status.success(), "{curl}: {out:?}");
    let body: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(body["intact"], true, "{body}");
    // The file is what --token-file reads.
    let out = sallyport()
        .args(["batch", "list", "--token-file"])
        .arg(&token_file)
        .env_remove("SALLYPORT_CONFIG")
        .env_remove("SALLYPORT_TOKEN")
        .env(
            "SALLYPORT_URL",
            format!("https://localhost:{}", gw.addr.port()),
        )
        .env("SALLYPORT_CA_FILE", gw.ca_path())
        .output()
        .unwrap();
    assert!(out.status.success(), "batch list --token-file: {out:?}");
}

#[test]
fn token_generate_refuses_a_bad_name_or_role_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("t.token");
    for args in [
        vec!["--name", "has space"],
        vec!["--name", "ok", "--role", "superuser"],
    ] {
        let out = sallyport()
            .args(["token", "generate"])
            .args(&args)
            .arg("--token-out")
            .arg(&file)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(args[args.len() - 1]), "{args:?}: {err}");
        assert!(!file.exists(), "{args:?}");
    }
}

/// Runs a gateway briefly to write some audit entries, then exports the chain.
fn exported_chain(dir: &std::path::Path) -> (std::path::PathBuf, Vec<String>) {
    let mut gw = support::Gateway::start_in(dir, "");
    gw.stop();
    let mut gw = support::Gateway::start_in(dir, "");
    gw.stop();
    let out = dir.join("audit.jsonl");
    let status = sallyport()
        .arg("--config")
        .arg(&gw.config_path)
        .args(["audit", "export", "--out"])
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the export names principals and addresses");
        assert!(
            !dir.join("audit.jsonl.partial").exists(),
            "the partial file was renamed into place"
        );
    }
    let lines: Vec<String> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(lines.len(), 4, "two starts and two stops");
    support::audit_schema::parse_export(&lines.join("\n"));
    (out, lines)
}

fn verify_file(path: &std::path::Path) -> (bool, String) {
    let out = sallyport()
        .args(["audit", "verify", "--file"])
        .arg(path)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn audit_verify_detects_every_kind_of_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let (path, lines) = exported_chain(dir.path());

    // The store itself verifies, and so does its export, with the same head.
    let cfg = dir.path().join("sallyport.toml");
    let out = sallyport()
        .arg("--config")
        .arg(&cfg)
        .args(["audit", "verify"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let store_report = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(store_report.contains("length     4"), "{store_report}");
    let (ok, file_report) = verify_file(&path);
    assert!(ok, "{file_report}");
    assert_eq!(store_report, file_report);

    let write = |l: &[String]| {
        let p = dir.path().join("tampered.jsonl");
        std::fs::write(&p, l.join("\n") + "\n").unwrap();
        p
    };
    // One byte changed (in the details of entry 2).
    let mut t = lines.clone();
    t[1] = t[1].replacen("\"v\":1", "\"v\":2", 1);
    let (ok, msg) = verify_file(&write(&t));
    assert!(
        !ok && msg.contains("entry 2") && msg.contains("hash mismatch"),
        "{msg}"
    );
    // An entry deleted.
    let mut t = lines.clone();
    t.remove(1);
    let (ok, msg) = verify_file(&write(&t));
    assert!(!ok && msg.contains("entry 2"), "{msg}");
    // An entry inserted (a copy of another).
    let mut t = lines.clone();
    t.insert(2, lines[0].clone());
    let (ok, msg) = verify_file(&write(&t));
    assert!(!ok && msg.contains("entry 3"), "{msg}");
    // Two entries swapped.
    let mut t = lines.clone();
    t.swap(1, 2);
    let (ok, msg) = verify_file(&write(&t));
    assert!(!ok && msg.contains("entry 2"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotate_and_rewrap_are_audited_and_uploads_stay_readable() {
    let dir = tempfile::tempdir().unwrap();
    let gw = support::Gateway::start_in(dir.path(), "");
    let c = gw.client();
    // An upload with metadata: two encrypted objects (data and metadata), two data keys.
    let resp = c
        .post(gw.url("/files/"))
        .bearer_auth(support::UPLOADER_TOKEN)
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Length", "11")
        .header("Upload-Metadata", "filename cmVwb3J0LnBkZg==")
        .header("Content-Type", "application/offset+octet-stream")
        .body("hello world")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    let mut gw = gw;
    tokio::task::block_in_place(|| gw.stop());

    let run = |args: &[&str]| {
        let out = sallyport()
            .arg("--config")
            .arg(&gw.config_path)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let status_before = run(&["keys", "status", "--json"]);
    run(&["keys", "rotate"]);
    let rewrap = run(&["keys", "rewrap", "--plain"]);
    assert!(rewrap.contains("2 re-wrapped"), "{rewrap}\n{status_before}");
    let again = run(&["keys", "rewrap", "--plain"]);
    assert!(
        again.contains("0 re-wrapped"),
        "rewrap is idempotent: {again}"
    );
    let retired = run(&["keys", "retire", "1"]);
    assert!(retired.contains("is retired"), "{retired}");
    let audit = run(&["audit", "export"]);
    support::audit_schema::parse_export(&audit);
    let actions: Vec<String> = audit
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["action"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    for a in ["key.rotated", "key.rewrap_started", "key.rewrapped"] {
        assert!(
            actions.iter().any(|x| x == a),
            "{a} missing from {actions:?}"
        );
    }
    // Audited before acting: the request is on the trail before the rotation.
    let requested = actions.iter().position(|a| a == "key.change_requested");
    let rotated = actions.iter().position(|a| a == "key.rotated");
    assert!(
        matches!((requested, rotated), (Some(q), Some(r)) if q < r),
        "{actions:?}"
    );
    let retire_requested = actions.iter().rposition(|a| a == "key.change_requested");
    let retired = actions.iter().position(|a| a == "key.retired");
    assert!(
        matches!((retire_requested, retired), (Some(q), Some(r)) if q < r && Some(q) != requested),
        "{actions:?}"
    );
    assert_eq!(actions.iter().filter(|a| *a == "key.rewrapped").count(), 2);
    run(&["audit", "verify"]);

    // The upload and its metadata are still readable under the new KEK version.
    let gw = support::Gateway::start_in(dir.path(), "");
    let resp = gw
        .client()
        .head(gw.url(&location))
        .bearer_auth(support::UPLOADER_TOKEN)
        .header("Tus-Resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["upload-metadata"],
        "filename cmVwb3J0LnBkZg=="
    );
    assert_eq!(resp.headers()["upload-offset"], "11");
}
