#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The clinic upload page (`/invite`) in a real headless Chromium against the real
//! gateway: the page shows the invitation, uploads a 50 MiB file that is interrupted by a
//! page reload and resumes from the server's offset at the same upload URL, loses the
//! network part-way and continues when it is back, uploads two more files, and shows a
//! receipt whose browser SHA-256s equal the gateway's ledger — which this test checks
//! against the files and the gateway itself, with every chunk's checksum verified.
//! Refused invitations (expired, revoked, a broken link) get a readable message, and so does
//! one revoked while its file uploads. Two batch invitations: files the manifest does not
//! list, or of another size, are refused before sending; a folder's files are matched,
//! uploaded and sealed, to `released`, and (a member changed after its manifest was made)
//! to `quarantined` with its findings shown. Invitations come from the real API
//! (`POST /v1/invitations` as the admin).
//!
//! The browser is Debian's `chromium`, driven by `playwright-core` (npm, installed into the
//! target directory, like the tus-js-client test), through `tests/clients/browser_upload.js`.
//! Chromium trusts the gateway's development certificate by its SPKI pin. A screenshot of
//! the finished page is written under the target directory (the path is printed). Without
//! node, npm or chromium the test fails when `CI` is set and is skipped with a notice
//! otherwise.
//!
//! The page's own answers (headers, CSP, content types, 404s, revalidation) are checked
//! without a browser by `the_page_is_served_with_its_policy`.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde_json::{Value, json};
use support::data::{random_bytes, sha256_hex};
use support::fhir::{Batch, Manifest};
use support::tus_http::Tus;
use support::{ADMIN_TOKEN, Gateway};

const PLAYWRIGHT: &str = "playwright-core@1.65.1";
/// The accessibility rules engine the driver runs on the finished page.
const AXE: &str = "axe-core@4.11.0";
const CHROMIUM: &str = "/usr/bin/chromium";
const MIB: usize = 1 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_is_served_with_its_policy() {
    let gw = Gateway::start("");
    let client = gw.client();
    let csp = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
               img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
    let page = client.get(gw.url("/invite")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let h = page.headers().clone();
    assert_eq!(h["content-type"], "text/html; charset=utf-8");
    assert_eq!(h["content-security-policy"], csp);
    assert_eq!(h["cache-control"], "no-store");
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert_eq!(h["x-content-type-options"], "nosniff");
    let html = page.text().await.unwrap();
    assert!(html.contains("/invite/assets/invite.js"), "{html}");
    // Every asset the page names is served, with the same policy and a validator.
    for (name, ct) in [
        ("invite.js", "text/javascript; charset=utf-8"),
        ("tus.min.js", "text/javascript; charset=utf-8"),
        ("hash-worker.js", "text/javascript; charset=utf-8"),
        ("sha2.js", "text/javascript; charset=utf-8"),
        ("invite.css", "text/css; charset=utf-8"),
    ] {
        let resp = client
            .get(gw.url(&format!("/invite/assets/{name}")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{name}");
        let h = resp.headers().clone();
        assert_eq!(h["content-type"], ct, "{name}");
        assert_eq!(h["content-security-policy"], csp, "{name}");
        assert_eq!(h["cache-control"], "no-cache", "{name}");
        let body = resp.bytes().await.unwrap();
        let etag = h["etag"].to_str().unwrap();
        assert_eq!(etag, format!("\"{}\"", sha256_hex(&body)), "{name}");
        let again = client
            .get(gw.url(&format!("/invite/assets/{name}")))
            .header("if-none-match", etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 304, "{name}");
        assert!(again.bytes().await.unwrap().is_empty());
    }
    // Nothing outside the table: a 404 problem, with the API's own policy.
    for path in [
        "/invite/assets/nope.js",
        "/invite/assets/README.md",
        "/invite/assets/..%2FCargo.toml",
        "/invite/",
    ] {
        let resp = client.get(gw.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 404, "{path}");
        assert_eq!(
            resp.headers()["content-security-policy"],
            "default-src 'none'; frame-ancestors 'none'"
        );
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["code"], "request.not_found", "{path}");
    }
    let post = client.post(gw.url("/invite")).send().await.unwrap();
    assert_eq!(post.status(), 405);
    assert_eq!(post.headers()["allow"], "GET, HEAD");
    // The API keeps its own policy.
    let health = client.get(gw.url("/healthz")).send().await.unwrap();
    assert_eq!(
        health.headers()["content-security-policy"],
        "default-src 'none'; frame-ancestors 'none'"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clinic_uploads_through_the_page_across_a_reload_and_a_network_cut() {
    let Some(driver) = tokio::task::block_in_place(driver_dir) else {
        return;
    };
    let started = Instant::now();
    let gw = Gateway::start("");
    let base = format!("https://127.0.0.1:{}", gw.addr.port());
    let work = tempfile::tempdir().unwrap();
    // One file of 50 MiB and four smaller ones (more than the page sends at once), random
    // so no two chunks are alike; five files is the invitation's limit.
    let files = [
        ("scan-series.dcm", random_bytes(50 * MIB, 1)),
        ("referral.pdf", random_bytes(180_000, 2)),
        ("labs.ndjson", random_bytes(3 * MIB + 4321, 3)),
        ("consent.pdf", random_bytes(9 * MIB + 17, 5)),
        ("ecg.xml", random_bytes(5 * MIB, 6)),
    ];
    let mut paths = Vec::new();
    for (name, bytes) in &files {
        let p = work.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        paths.push(p);
    }
    let invitation = Invitation::issue(&gw).await;
    let screenshot = artifacts_dir().join("clinic-upload.png");
    // With the invitation API: two batch invitations, one whose files match its manifest
    // and one with a member changed after the manifest was made (same size).
    let batches = BatchCase::both(&gw, work.path()).await;
    // One more, revoked while its file uploads.
    let doomed = issue(&gw, json!({"partner": "clinic-a", "ttl": "1h"})).await;
    let doomed_file = work.path().join("wrong-patient.pdf");
    let doomed_bytes = random_bytes(24 * MIB, 4);
    std::fs::write(&doomed_file, &doomed_bytes).unwrap();
    let cfg = json!({
        "chromium": CHROMIUM,
        "base": base,
        "token": invitation.token,
        "spki": spki_pin(&driver, &gw.data_dir().join("dev-ca/server.pem")),
        "big": paths[0],
        "small": &paths[1..],
        "bad": invitation.bad,
        "screenshot": screenshot,
        // Each PATCH waits a little in the browser, so the reload and the cut land part-way.
        "patch_delay_ms": 150,
        "batches": batches.iter().map(BatchCase::config).collect::<Vec<_>>(),
        "revoke_mid": {
            "token": doomed["token"],
            "file": doomed_file,
            "revoke_url": format!("{base}/v1/invitations/{}", doomed["id"].as_str().unwrap()),
            "admin_token": ADMIN_TOKEN,
        },
    });
    let out = tokio::task::block_in_place(|| {
        Command::new("node")
            .current_dir(&driver)
            .env("NODE_EXTRA_CA_CERTS", gw.ca_path())
            .arg("browser_upload.js")
            .arg(cfg.to_string())
            .output()
            .unwrap()
    });
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the browser run failed:\n{}{stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    eprintln!("browser notes:\n{stderr}");

    // The page ran clean under its CSP.
    assert_eq!(report["csp_violations"], json!([]), "{report}");
    assert_eq!(report["page_errors"], json!([]), "{report}");
    // No WCAG 2.1 A/AA violation axe-core can find, at full width and on a narrow screen.
    for key in ["axe", "axe_narrow"] {
        let axe = &report[key];
        assert_eq!(axe["violations"], json!([]), "{key}: {axe}");
        let passed = axe["passed"].as_array().unwrap();
        // Not vacuous: the rules that matter for this page ran and passed.
        for rule in [
            "color-contrast",
            "button-name",
            "aria-valid-attr-value",
            "bypass",
            "document-title",
            "html-has-lang",
        ] {
            assert!(
                passed.iter().any(|p| p == rule),
                "{key}: {rule} did not pass: {axe}"
            );
        }
    }
    // The invitation as shown.
    assert_eq!(report["shown"]["partner"], "clinic-a", "{report}");
    assert!(
        report["shown"]["files"].as_str().unwrap().contains("of 5"),
        "{report}"
    );

    // Refusals in words, each its own.
    for (label, code, words) in [
        ("expired", "invitation.expired", "expired"),
        ("revoked", "invitation.revoked", "withdrawn"),
        ("broken", "link.incomplete", "incomplete"),
    ] {
        let f = &report["fatal"][label];
        assert_eq!(f["code"], code, "{label}: {report}");
        assert!(f["title"].as_str().unwrap().contains(words), "{label}: {f}");
        assert!(!f["text"].as_str().unwrap().is_empty(), "{label}: {f}");
        assert_eq!(f["axe"], json!([]), "{label}: {f}");
    }

    // The reload: the same file added again continued the same upload from the server's
    // offset (a whole number of acknowledged chunks, not zero).
    let reload = &report["reload"];
    assert!(report["resume_note_visible"].as_bool().unwrap(), "{report}");
    assert!(
        report["resume_note"]
            .as_str()
            .unwrap()
            .contains("scan-series.dcm"),
        "{report}"
    );
    assert_eq!(reload["url_after"], reload["url_before"], "{reload}");
    let first = reload["first_offset_after"].as_u64().unwrap();
    assert!(first > 0, "the upload started over: {reload}");
    assert_eq!(first % (4 * MIB as u64), 0, "{reload}");
    // Paused from the keyboard (with a visible focus ring): nothing moved meanwhile.
    let pause = &report["pause"];
    assert_eq!(pause["sent_after_wait"], pause["sent_at_pause"], "{pause}");
    assert_eq!(pause["button"], "Resume", "{pause}");
    assert_eq!(pause["focus_visible"], true, "{pause}");
    // The cut: the page said it was waiting, then finished the same upload.
    let offline = &report["offline"];
    assert_eq!(offline["state"], "offline", "{offline}");
    assert!(offline["banner"].as_bool().unwrap(), "{offline}");
    assert_eq!(offline["url_after"], reload["url_before"], "{offline}");

    // A file dropped on the page is taken like a chosen one.
    assert_eq!(report["drop_highlight"], true, "{report}");
    // The receipt: every file, the browser's SHA-256 equal to the gateway's, both equal to
    // the file's.
    let receipt = report["receipt"].as_array().unwrap();
    assert_eq!(receipt.len(), files.len(), "{report}");
    // Never more than three files on the wire at once; the others waited their turn.
    assert_eq!(report["max_uploading"], 3, "{report}");
    let after = &report["shown_after"];
    assert!(
        after["files"].as_str().unwrap().contains("5 of 5"),
        "{after}"
    );
    assert_eq!(
        after["full_note"], true,
        "the page says it is used up: {after}"
    );
    assert_eq!(after["drop_zone"], false, "{after}");
    for (name, bytes) in &files {
        let row = receipt
            .iter()
            .find(|r| r["name"] == *name)
            .unwrap_or_else(|| panic!("{name} not in the receipt: {report}"));
        let want = sha256_hex(bytes);
        assert_eq!(row["browser"], want, "{name}");
        assert_eq!(row["server"], want, "{name}");
        assert_eq!(row["verdict"], "match", "{name}");
    }
    // The gateway's own record: the ledger of each upload, every chunk checksummed by the
    // browser (sha256) and verified.
    let tus = Tus::as_token(&gw, &invitation.token);
    for u in report["upload_urls"].as_array().unwrap() {
        let name = u["name"].as_str().unwrap();
        let (_, bytes) = files.iter().find(|(n, _)| *n == name).unwrap();
        let url = u["url"].as_str().unwrap();
        let path = url.strip_prefix(&base).unwrap_or(url);
        let ledger = tus.ledger(path).await;
        assert_eq!(ledger["sha256"], sha256_hex(bytes), "{name}");
        let chunks = ledger["chunks"].as_array().unwrap();
        assert!(!chunks.is_empty(), "{name}");
        let mut end = 0u64;
        for c in chunks {
            assert_eq!(c["checksum_verified"], "sha256", "{name}: {c}");
            assert_eq!(c["offset"].as_u64().unwrap(), end, "{name}: {c}");
            end += c["length"].as_u64().unwrap();
        }
        assert_eq!(end, bytes.len() as u64, "{name}");
    }
    // The token never went into localStorage (only tus-js-client's upload URLs do).
    assert_eq!(report["local_storage_has_token"], false, "{report}");
    assert!(screenshot.exists());
    println!("screenshot of the finished page: {}", screenshot.display());

    // Revoked mid-upload: the page stopped with the message, and the gateway holds no more
    // of the file than it had acknowledged before the revocation took effect.
    let mid = &report["revoked_mid"];
    assert_eq!(mid["revoke_status"], 200, "{mid}");
    assert_eq!(mid["code"], "invitation.revoked", "{mid}");
    assert!(
        mid["title"].as_str().unwrap().contains("withdrawn"),
        "{mid}"
    );
    assert_eq!(mid["pick_visible"], false, "{mid}");
    let url = mid["upload_url"].as_str().unwrap();
    let path = &url[url.find("/files/").unwrap()..];
    let held = Tus::as_token(&gw, ADMIN_TOKEN).offset(path).await;
    assert!(
        held < doomed_bytes.len() as u64,
        "the revoked upload completed: {mid}"
    );

    let seen = report["batches"].as_array().unwrap();
    assert_eq!(seen.len(), batches.len(), "{report}");
    for (case, seen) in batches.iter().zip(seen) {
        case.check(&gw, seen).await;
    }
    eprintln!("browser test took {:?}", started.elapsed());
}

/// The invitation the browser uses, and the refused ones.
struct Invitation {
    token: String,
    /// `[{label, token}]` for the page to open and refuse.
    bad: Value,
}

impl Invitation {
    /// Issues the invitation (as the admin, `POST /v1/invitations`), and two that are
    /// refused: one revoked, one expired.
    async fn issue(gw: &Gateway) -> Invitation {
        let token = |body: &Value| body["token"].as_str().unwrap().to_owned();
        let main = issue(
            gw,
            json!({"partner": "clinic-a", "max_files": 5, "max_bytes": 104_857_600u64, "ttl": "1h"}),
        )
        .await;
        let revoked = issue(gw, json!({"partner": "clinic-a", "ttl": "1h"})).await;
        let resp = gw
            .client()
            .delete(gw.url(&format!(
                "/v1/invitations/{}",
                revoked["id"].as_str().unwrap()
            )))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({"reason": "sent to the wrong clinic"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "revoke");
        let expired = issue(gw, json!({"partner": "clinic-a", "ttl": "1s"})).await;
        tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
        Invitation {
            token: token(&main),
            bad: json!([
                {"label": "expired", "token": token(&expired)},
                {"label": "revoked", "token": token(&revoked)},
                {"label": "broken", "token": "nope"},
            ]),
        }
    }
}

/// `POST /v1/invitations` as the admin; asserts 201 and returns the answer.
async fn issue(gw: &Gateway, body: Value) -> Value {
    let resp = gw
        .client()
        .post(gw.url("/v1/invitations"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let answer: Value = resp.json().await.unwrap_or(Value::Null);
    assert_eq!(status, 201, "POST /v1/invitations {body}: {answer}");
    let url = answer["url"].as_str().unwrap();
    let token = answer["token"].as_str().unwrap();
    assert!(
        url.ends_with(&format!("/invite#{token}")),
        "the invitation URL opens the page: {url}"
    );
    answer
}

/// A batch invitation for the page: its files, and the verdict the seal must give.
struct BatchCase {
    label: &'static str,
    batch: Batch,
    token: String,
    /// Files the page must refuse before sending: one listed name with another size, one
    /// name the manifest does not list.
    refused: Vec<PathBuf>,
    _refused_dir: tempfile::TempDir,
    verdict: &'static str,
}

impl BatchCase {
    async fn both(gw: &Gateway, parent: &Path) -> Vec<BatchCase> {
        let good = Batch::synthetic(parent, 7, [20, 30, 60]);
        let good_manifest = good.manifest();
        let mut bad = Batch::synthetic(parent, 8, [20, 30, 60]);
        let bad_manifest = bad.manifest();
        // Same length ("Procedure" for "Encounter"), so only the seal can tell.
        bad.wrong_resource_type("Encounter.ndjson", 0, "Procedure");
        vec![
            BatchCase::new(gw, "released", good, &good_manifest, "released").await,
            BatchCase::new(gw, "quarantined", bad, &bad_manifest, "quarantined").await,
        ]
    }

    async fn new(
        gw: &Gateway,
        label: &'static str,
        batch: Batch,
        manifest: &Manifest,
        verdict: &'static str,
    ) -> BatchCase {
        let manifest: Value = serde_json::from_str(&manifest.to_json()).unwrap();
        let body = issue(
            gw,
            json!({"partner": "lab-b", "ttl": "1h", "manifest": manifest}),
        )
        .await;
        assert!(
            body["batch"].is_string(),
            "an invitation with a batch: {body}"
        );
        let dir = tempfile::tempdir().unwrap();
        let first = &batch.members[0];
        let wrong_size = dir.path().join(&first.name);
        std::fs::write(
            &wrong_size,
            [
                &first.bytes[..],
                b"
",
            ]
            .concat(),
        )
        .unwrap();
        let unlisted = dir.path().join("notes.txt");
        std::fs::write(
            &unlisted,
            b"not in the manifest
",
        )
        .unwrap();
        BatchCase {
            label,
            batch,
            token: body["token"].as_str().unwrap().to_owned(),
            refused: vec![wrong_size, unlisted],
            _refused_dir: dir,
            verdict,
        }
    }

    fn config(&self) -> Value {
        let folder = self.batch.path(&self.batch.members[0].name);
        json!({
            "token": self.token,
            "folder": folder.parent().unwrap(),
            "refused_files": self.refused,
            "screenshot": artifacts_dir().join(format!("clinic-upload-batch-{}.png", self.label)),
        })
    }

    async fn check(&self, gw: &Gateway, seen: &Value) {
        let label = self.label;
        assert_eq!(seen["page_errors"], json!([]), "{label}: {seen}");
        assert_eq!(seen["axe"]["violations"], json!([]), "{label}: {seen}");
        assert_eq!(
            seen["expected"].as_array().unwrap().len(),
            3,
            "{label}: {seen}"
        );
        let refused = seen["refused"].as_array().unwrap();
        assert_eq!(refused.len(), 2, "{label}: {seen}");
        assert!(
            refused[0]
                .as_str()
                .unwrap()
                .contains("but the sender listed"),
            "{label}: {seen}"
        );
        assert!(
            refused[1].as_str().unwrap().contains("is not on the list"),
            "{label}: {seen}"
        );
        assert_eq!(seen["refused_after_folder"], json!([]), "{label}: {seen}");
        let receipt = seen["receipt"].as_array().unwrap();
        assert_eq!(receipt.len(), 3, "{label}: {seen}");
        let tus = Tus::as_token(gw, &self.token);
        for m in &self.batch.members {
            let want = sha256_hex(&m.bytes);
            let row = receipt.iter().find(|r| r["name"] == m.name).unwrap();
            assert_eq!(row["browser"], want, "{label} {}", m.name);
            assert_eq!(row["server"], want, "{label} {}", m.name);
            assert_eq!(row["verdict"], "match", "{label} {}", m.name);
            let u = seen["upload_urls"]
                .as_array()
                .unwrap()
                .iter()
                .find(|u| u["name"] == m.name)
                .unwrap();
            let url = u["url"].as_str().unwrap();
            let path = &url[url.find("/files/").unwrap()..];
            assert_eq!(tus.ledger(path).await["sha256"], want, "{label} {}", m.name);
        }
        assert_eq!(seen["verdict"]["state"], self.verdict, "{label}: {seen}");
        let findings = seen["verdict"]["findings"].as_array().unwrap();
        if self.verdict == "released" {
            assert!(findings.is_empty(), "{label}: {seen}");
        } else {
            assert!(!findings.is_empty(), "{label}: {seen}");
        }
        assert_eq!(seen["verdict"]["pick_hidden"], true, "{label}: {seen}");
    }
}

/// Where the test's artifacts (screenshots) go: under the target directory.
fn artifacts_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-upload");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The base64 SHA-256 of the certificate's SubjectPublicKeyInfo, as Chromium's
/// `--ignore-certificate-errors-spki-list` takes it (computed by node's X509Certificate).
fn spki_pin(driver: &Path, cert: &Path) -> String {
    let script = "const c=require('crypto');const x=new c.X509Certificate(require('fs').readFileSync(process.argv[1]));\
        process.stdout.write(c.createHash('sha256').update(x.publicKey.export({type:'spki',format:'der'})).digest('base64'))";
    let out = Command::new("node")
        .current_dir(driver)
        .args(["-e", script])
        .arg(cert)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// Not available here: fail under CI, otherwise skip with a notice.
fn unavailable(why: &str) -> Option<PathBuf> {
    support::ci::skip("the browser test's Chromium or playwright-core", why);
    None
}

/// The directory holding playwright-core and the driver, installing it on first use.
fn driver_dir() -> Option<PathBuf> {
    let node = Command::new("node").arg("--version").output();
    if !node.is_ok_and(|o| o.status.success()) {
        return unavailable("node is not installed");
    }
    let chromium = Command::new(CHROMIUM).arg("--version").output();
    if !chromium.is_ok_and(|o| o.status.success()) {
        return unavailable("chromium is not installed (apt-get install chromium)");
    }
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-driver-pw1.65.1-axe4.11.0");
    if !dir
        .join("node_modules/playwright-core/package.json")
        .exists()
        || !dir.join("node_modules/axe-core/package.json").exists()
    {
        std::fs::create_dir_all(&dir).unwrap();
        let out = Command::new("npm")
            .args([
                "install",
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
                "--ignore-scripts",
                "--prefix",
            ])
            .arg(&dir)
            .arg(PLAYWRIGHT)
            .arg(AXE)
            .output();
        match out {
            Ok(o) if o.status.success() => {}
            Ok(o) => {
                return unavailable(&format!(
                    "npm install {PLAYWRIGHT} {AXE} failed: {}",
                    String::from_utf8_lossy(&o.stderr)
                ));
            }
            Err(e) => return unavailable(&format!("npm cannot run: {e}")),
        }
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/browser_upload.js");
    std::fs::copy(script, dir.join("browser_upload.js")).unwrap();
    Some(dir)
}
