#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The batch operator's command line, black-box: `sallyport preflight` on good and bad
//! configurations and beside a running gateway.

mod support;

use support::sallyport;

/// A profile with every key written.
const FULL_PROFILE: &str = "[[profiles]]\nname = \"bulk\"\nresources = [\"Patient\", \"Observation\"]\n\
    purpose_of_use = [\"TREAT\"]\ndelivery = \"signed_url\"\nlink_ttl = \"7days\"\n\
    checksum = \"sha256\"\nencryption_at_rest = true\nprovenance_required = true\n\
    on_validation_failure = \"quarantine\"\nretention = \"90days\"\n";

fn preflight(dir: &std::path::Path, text: &str, args: &[&str]) -> (i32, String, String) {
    let f = dir.join("sallyport.toml");
    let data = dir.join("data").display().to_string();
    std::fs::write(&f, format!("data_dir = {data:?}\n{text}")).unwrap();
    let out = sallyport()
        .arg("--config")
        .arg(&f)
        .arg("preflight")
        .args(args)
        .env_remove("SALLYPORT_CONFIG")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn preflight_passes_a_complete_configuration_with_warnings_for_first_start() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!("[batches]\nretention = \"30days\"\n{FULL_PROFILE}");
    let (code, out, err) = preflight(dir.path(), &text, &[]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("warn tls: no tls.cert_file/key_file"), "{out}");
    assert!(out.contains("development only"), "{out}");
    assert!(out.contains("warn keys: keyring"), "{out}");
    assert!(out.contains("warn state: embedded state store"), "{out}");
    assert!(out.contains("ok   batches.retention: 30days"), "{out}");
    assert!(
        out.contains("ok   profiles[bulk]: every setting is written"),
        "{out}"
    );
    assert!(!out.contains("FAIL"), "{out}");
    assert!(err.is_empty(), "{err}");
    // Nothing was created.
    assert!(!dir.path().join("data").exists());
    // The one named profile only.
    let (code, out, _) = preflight(dir.path(), &text, &["--profile", "bulk"]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn preflight_names_each_failing_check_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let text = "[server]\ndanger_plaintext_http = true\n\
                [[profiles]]\nname = \"bulk\"\nresources = [\"Patient\"]\n";
    let (code, out, err) = preflight(dir.path(), text, &[]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        out.contains("FAIL tls: server.danger_plaintext_http = true"),
        "{out}"
    );
    assert!(out.contains("FAIL batches.retention is not set"), "{out}");
    assert!(
        out.contains("FAIL profiles[bulk].link_ttl is not set"),
        "{out}"
    );
    assert!(
        !out.contains("profiles[bulk].resources is not set"),
        "{out}"
    );
    assert!(
        err.starts_with("preflight failed: tls, batches.retention, profiles[bulk].purpose_of_use"),
        "{err}"
    );

    // Certificate files that are not there.
    let text = format!(
        "[batches]\nretention = \"30days\"\n[tls]\ncert_file = \"/nonexistent.pem\"\n\
         key_file = \"/nonexistent-key.pem\"\n{FULL_PROFILE}"
    );
    let (code, out, err) = preflight(dir.path(), &text, &[]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        out.contains("FAIL tls: ") && out.contains("/nonexistent.pem"),
        "{out}"
    );
    assert_eq!(err.trim(), "preflight failed: tls");

    // A configuration that does not load is one failing check.
    let (code, out, err) = preflight(
        dir.path(),
        "[[profiles]]\nname = \"bulk\"\nencryption_at_rest = false\n",
        &[],
    );
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(out.starts_with("FAIL config: "), "{out}");
    assert!(out.contains("profiles[bulk].encryption_at_rest"), "{out}");
}

#[test]
fn preflight_with_an_unknown_profile_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = preflight(dir.path(), FULL_PROFILE, &["--profile", "bluk"]);
    assert_eq!(code, 2, "{out}\n{err}");
    assert!(out.is_empty(), "{out}");
    assert!(
        err.contains("no profile named \"bluk\" in the configuration (configured: bulk)"),
        "{err}"
    );
}

#[test]
fn preflight_beside_a_running_gateway_skips_the_state_store_and_reads_the_keyring() {
    let mut gw = support::Gateway::start(&format!(
        "[batches]\nretention = \"30days\"\n{FULL_PROFILE}"
    ));
    let out = sallyport()
        .arg("--config")
        .arg(&gw.config_path)
        .arg("preflight")
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("skip state: state store in use by a running gateway (cannot check offline)"),
        "{text}"
    );
    assert!(
        text.contains("ok   keys: keyring provider, current KEK "),
        "{text}"
    );
    assert_eq!(out.status.code(), Some(0), "{text}");
    gw.stop();
    // Stopped: the store opens.
    let out = sallyport()
        .arg("--config")
        .arg(&gw.config_path)
        .arg("preflight")
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("ok   state: embedded state store opens for writing"),
        "{text}"
    );
}

/// `sallyport batch …` against `gw` with `token`; (exit code, stdout, stderr).
fn batch_cli(gw: &support::Gateway, token: &str, args: &[&str]) -> (i32, String, String) {
    let out = sallyport()
        .arg("batch")
        .args(args)
        .env_remove("SALLYPORT_CONFIG")
        .env_remove("SALLYPORT_TOKEN_FILE")
        .env(
            "SALLYPORT_URL",
            format!("https://localhost:{}", gw.addr.port()),
        )
        .env("SALLYPORT_CA_FILE", gw.ca_path())
        .env("SALLYPORT_TOKEN", token)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn batch_errors_exit_1_with_the_gateways_problem_or_before_any_request() {
    let gw = support::Gateway::start("");
    // A batch that does not exist: the gateway's problem is printed.
    let (code, out, err) = batch_cli(
        &gw,
        support::gateway::UPLOADER_TOKEN,
        &["show", "b-nosuchbatch"],
    );
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(err.contains("the gateway answered 404"), "{err}");
    // A wrong token: refused (401 once the batch routes exist; 404 without them).
    let (code, _, err) = batch_cli(
        &gw,
        "not-a-token-of-any-client-0123456789abcdef",
        &["report", "b-1"],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("the gateway answered 4"), "{err}");
    // An id that could reach another path is refused locally.
    let (code, _, err) = batch_cli(&gw, support::gateway::UPLOADER_TOKEN, &["show", "../links"]);
    assert_eq!(code, 1);
    assert!(err.contains("is not a batch id"), "{err}");
    // A manifest file that is not one JSON object never leaves the machine.
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("m.json");
    std::fs::write(&f, "{\"version\":1}, \"provenance\": {}").unwrap();
    let (code, _, err) = batch_cli(
        &gw,
        support::gateway::UPLOADER_TOKEN,
        &["open", "--manifest", f.to_str().unwrap()],
    );
    assert_eq!(code, 1);
    assert!(err.contains("is not one JSON object"), "{err}");
    let (code, _, err) = batch_cli(
        &gw,
        support::gateway::UPLOADER_TOKEN,
        &["list", "--state", "done"],
    );
    assert_eq!(code, 1);
    assert!(err.contains("--state must be one of"), "{err}");
}

/// A manifest listing one `text/plain` member `name` of `data`.
fn one_member_manifest(name: &str, data: &[u8]) -> String {
    use sha2::Digest;
    format!(
        "{{\n  \"version\": \"sallyport.manifest/1\",\n  \"members\": [{{\"name\": \"{name}\", \
         \"size\": {}, \"sha256\": \"{}\", \"media_type\": \"text/plain\"}}]\n}}\n",
        data.len(),
        hex::encode(sha2::Sha256::digest(data))
    )
}

/// Opens a batch with `manifest` through the CLI, uploads `sent` as its member `name`
/// through tus; returns the batch id.
async fn open_and_upload(
    gw: &support::Gateway,
    dir: &std::path::Path,
    manifest: &str,
    name: &str,
    sent: &[u8],
) -> String {
    use support::tus_http::{Tus, b64};
    let f = dir.join(format!("{}.manifest.json", sent.len()));
    std::fs::write(&f, manifest).unwrap();
    let (code, out, err) = batch_cli(
        gw,
        support::gateway::UPLOADER_TOKEN,
        &["open", "--manifest", f.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{out}\n{err}");
    let id = out.lines().next().unwrap().trim().to_owned();
    assert!(!id.is_empty(), "{out}");
    let tus = Tus::new(gw);
    let meta = format!(
        "batch {},member {}",
        b64(id.as_bytes()),
        b64(name.as_bytes())
    );
    let path = tus
        .create(
            Some(sent.len() as u64),
            &[("upload-metadata", meta.as_str())],
        )
        .await;
    tus.patch_ok(&path, 0, sent).await;
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_open_seal_report_exit_0_released_and_3_quarantined() {
    let gw = support::Gateway::start("");
    let dir = tempfile::tempdir().unwrap();
    let data = b"line one\nline two\n";

    // As listed: released, exit 0.
    let id = open_and_upload(
        &gw,
        dir.path(),
        &one_member_manifest("notes.txt", data),
        "notes.txt",
        data,
    )
    .await;
    let (code, out, err) = batch_cli(&gw, support::gateway::UPLOADER_TOKEN, &["seal", &id]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(out, "verdict: released (0 findings)\n");
    let (code, out, _) = batch_cli(&gw, support::gateway::UPLOADER_TOKEN, &["report", &id]);
    assert_eq!(code, 0, "{out}");

    // Other bytes of the same length: quarantined, exit 3, one finding per line.
    let tampered = b"line one\nline 2wo\n";
    let id = open_and_upload(
        &gw,
        dir.path(),
        &one_member_manifest("notes.txt", data),
        "notes.txt",
        tampered,
    )
    .await;
    let (code, out, err) = batch_cli(&gw, support::gateway::UPLOADER_TOKEN, &["seal", &id]);
    assert_eq!(code, 3, "{out}\n{err}");
    assert!(out.starts_with("verdict: quarantined ("), "{out}");
    assert!(
        out.lines().skip(1).any(|l| l.contains("notes.txt")),
        "{out}"
    );
    let (code, out, _) = batch_cli(&gw, support::gateway::UPLOADER_TOKEN, &["report", &id]);
    assert_eq!(code, 3, "{out}");
    let (code, out, _) = batch_cli(
        &gw,
        support::gateway::UPLOADER_TOKEN,
        &["report", &id, "--json"],
    );
    assert_eq!(code, 3, "{out}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["verdict"], "quarantined");
}
