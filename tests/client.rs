#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `sallyport client` against the real gateway over real TLS: the built binary is spawned
//! as a partner or a sender would run it. Downloads: parallel, verified, resumed after a
//! cut connection (through a TCP proxy that drops the first connection mid-body), a
//! tampered `.part` refused and never renamed, a manifest's SHA-256 and record counts,
//! refusals and exit codes. Uploads: three files in parallel checked against the server's
//! ledger, and a client killed with SIGKILL mid-upload that resumes the same upload.

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use support::links::{data, import, issue, link_url, sha256_hex, start};
use support::{Gateway, UPLOADER_TOKEN, sallyport};

/// Runs `sallyport client ARGS` to completion off the runtime (so proxies keep running).
async fn client(args: Vec<String>, env: Vec<(&'static str, String)>) -> Output {
    tokio::task::spawn_blocking(move || {
        let mut cmd = sallyport();
        cmd.arg("client").args(&args);
        cmd.env_remove("SALLYPORT_TOKEN")
            .env_remove("SALLYPORT_TOKEN_FILE")
            .env_remove("SALLYPORT_CA_FILE");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    })
    .await
    .unwrap()
}

/// The JSON lines of a `--json` run: the file lines and the summary.
fn lines(out: &Output) -> (Vec<Value>, Value) {
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    let mut all: Vec<Value> = text
        .lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| {
                panic!("{e}: {l}\nstderr: {}", String::from_utf8_lossy(&out.stderr))
            })
        })
        .collect();
    for line in &all {
        let errors: Vec<String> = schema().iter_errors(line).map(|e| e.to_string()).collect();
        assert!(
            errors.is_empty(),
            "{line} breaks proto/client-v1.schema.json: {errors:?}"
        );
    }
    let summary = all.pop().expect("a summary line");
    assert_eq!(summary["type"], "summary", "{text}");
    (all, summary)
}

/// proto/client-v1.schema.json, compiled once.
fn schema() -> &'static jsonschema::Validator {
    static V: std::sync::OnceLock<jsonschema::Validator> = std::sync::OnceLock::new();
    V.get_or_init(|| {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/proto/client-v1.schema.json"
        ))
        .unwrap();
        jsonschema::draft202012::new(&serde_json::from_str(&text).unwrap())
            .expect("schema compiles")
    })
}

/// The golden resume records satisfy the schema (the unit tests in `cli::client::resume`
/// check the same files decode to the documented values).
#[test]
fn golden_records_match_the_schema() {
    for f in ["upload-state.json", "part-state.json"] {
        let text = std::fs::read_to_string(format!(
            "{}/proto/vectors/client-v1/{f}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        assert!(schema().is_valid(&v), "{f}");
        let mut extra = v.clone();
        extra["unknown"] = json!(1);
        assert!(!schema().is_valid(&extra), "{f} with an unknown field");
    }
}

fn download_args(gw: &Gateway, out: &Path, urls: &[String]) -> Vec<String> {
    let mut a = vec![
        "download".to_owned(),
        "--json".into(),
        "--cacert".into(),
        gw.ca_path().display().to_string(),
        "--out".into(),
        out.display().to_string(),
    ];
    a.extend(urls.iter().cloned());
    a
}

fn code(out: &Output) -> i32 {
    out.status.code().expect("exited, not killed")
}

/// A TCP proxy to the gateway. The first connection is cut after `cut_s2c` bytes from
/// the server or `cut_c2s` bytes from the client; later ones pass everything. Records the
/// server-to-client bytes of each connection.
struct Proxy {
    port: u16,
    sent: Arc<Mutex<Vec<u64>>>,
}

async fn proxy(target: std::net::SocketAddr, cut_s2c: u64) -> Proxy {
    proxy_cutting(target, cut_s2c, u64::MAX).await
}

async fn proxy_cutting(target: std::net::SocketAddr, cut_s2c: u64, cut_c2s: u64) -> Proxy {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let sent = Arc::new(Mutex::new(Vec::new()));
    let record = sent.clone();
    tokio::spawn(async move {
        let mut n = 0usize;
        while let Ok((mut down, _)) = listener.accept().await {
            let index = {
                let mut s = record.lock().unwrap();
                s.push(0);
                s.len() - 1
            };
            let (s2c_limit, c2s_limit) = if n == 0 {
                (cut_s2c, cut_c2s)
            } else {
                (u64::MAX, u64::MAX)
            };
            n += 1;
            let record = record.clone();
            tokio::spawn(async move {
                let mut up = tokio::net::TcpStream::connect(target).await.unwrap();
                let (mut ur, mut uw) = up.split();
                let (mut dr, mut dw) = down.split();
                let c2s = pipe(&mut dr, &mut uw, c2s_limit, |_| {});
                let s2c = pipe(&mut ur, &mut dw, s2c_limit, |t| {
                    record.lock().unwrap()[index] = t
                });
                tokio::select! { _ = c2s => {}, _ = s2c => {} }
            });
        }
    });
    Proxy { port, sent }
}

/// Copies until EOF, an error or `limit` bytes; reports the running total.
async fn pipe(
    from: &mut (impl tokio::io::AsyncRead + Unpin),
    to: &mut (impl tokio::io::AsyncWrite + Unpin),
    limit: u64,
    mut report: impl FnMut(u64),
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 16 << 10];
    let mut total = 0u64;
    loop {
        let k = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(k) => k,
        };
        let k = (k as u64).min(limit - total) as usize;
        if to.write_all(&buf[..k]).await.is_err() {
            break;
        }
        total += k as u64;
        report(total);
        if total >= limit {
            break;
        }
    }
}

fn via(url: &str, gw: &Gateway, port: u16) -> String {
    url.replace(
        &format!("localhost:{}", gw.addr.port()),
        &format!("localhost:{port}"),
    )
}

/// Three artifacts (one of 3 MiB) downloaded in parallel: every file verified against
/// the server's digest, saved under its served name, no `.part` left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downloads_three_files_in_parallel_and_verifies_them() {
    let gw = start("");
    let files = [
        ("Patient.ndjson", data(3 << 20, 1)),
        ("Encounter.ndjson", data(70_001, 2)),
        ("Empty.ndjson", Vec::new()),
    ];
    let mut urls = Vec::new();
    for (name, bytes) in &files {
        let artifact = import(&gw, name, bytes).await;
        let link = issue(&gw, json!({"artifact": artifact, "partner": "payer-a"})).await;
        urls.push(link_url(&gw, &link));
    }
    let out = tempfile::tempdir().unwrap();
    let run = client(download_args(&gw, out.path(), &urls), vec![]).await;
    assert_eq!(code(&run), 0, "{run:?}");
    let (files_out, summary) = lines(&run);
    assert_eq!(summary["verified"], 3);
    for (i, (name, bytes)) in files.iter().enumerate() {
        let got = std::fs::read(out.path().join(name)).unwrap();
        assert_eq!(sha256_hex(&got), sha256_hex(bytes), "{name}");
        assert_eq!(files_out[i]["status"], "verified");
        assert_eq!(files_out[i]["sha256"], sha256_hex(bytes));
        assert_eq!(files_out[i]["server_sha256"], sha256_hex(bytes));
        // The signed link (a credential) is never printed.
        assert!(!files_out[i].to_string().contains("sig="));
    }
    let left: Vec<_> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left.len(), 3, "{left:?}");
}

/// A connection cut mid-body leaves a `.part` (exit 5 with no retries); the next run asks
/// for the rest only (the proxy carries far less than the file) and verifies the whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_download_resumes_from_the_part_file() {
    let gw = start("");
    let bytes = data(2 << 20, 3);
    let artifact = import(&gw, "Observation.ndjson", &bytes).await;
    let link = issue(&gw, json!({"artifact": artifact, "partner": "payer-a"})).await;
    let p = proxy(gw.addr, 1 << 20).await;
    let url = via(&link_url(&gw, &link), &gw, p.port);
    let out = tempfile::tempdir().unwrap();
    let mut args = download_args(&gw, out.path(), std::slice::from_ref(&url));
    args.extend(["--retries".into(), "0".into()]);
    let first = client(args, vec![]).await;
    assert_eq!(code(&first), 5, "{first:?}");
    let (f, _) = lines(&first);
    assert_eq!(f[0]["failure"], "network");
    let part = out.path().join(format!("{artifact}.part"));
    let have = std::fs::metadata(&part).unwrap().len();
    assert!(have > 0 && have < bytes.len() as u64, "{have}");
    assert!(!out.path().join("Observation.ndjson").exists());

    let second = client(download_args(&gw, out.path(), &[url]), vec![]).await;
    assert_eq!(code(&second), 0, "{second:?}");
    let (f, _) = lines(&second);
    assert_eq!(f[0]["resumed_from"], have);
    assert_eq!(
        std::fs::read(out.path().join("Observation.ndjson")).unwrap(),
        bytes
    );
    assert!(!part.exists());
    let sent = p.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert!(
        sent[1] < bytes.len() as u64 - have + (64 << 10),
        "the second connection resent the file: {sent:?}"
    );
}

/// A `.part` whose bytes were altered resumes into a file that does not match the
/// server's digest: refused (exit 3), never renamed, the part deleted. The same run with
/// a manifest whose SHA-256 or record count is wrong is refused the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_part_or_a_wrong_manifest_is_refused_and_not_renamed() {
    let gw = start("");
    let bytes = data(1 << 20, 4);
    let artifact = import(&gw, "Claim.ndjson", &bytes).await;
    let link = issue(&gw, json!({"artifact": artifact, "partner": "payer-a"})).await;
    let p = proxy(gw.addr, 600 << 10).await;
    let out = tempfile::tempdir().unwrap();
    let mut args = download_args(&gw, out.path(), &[via(&link_url(&gw, &link), &gw, p.port)]);
    args.extend(["--retries".into(), "0".into()]);
    assert_eq!(code(&client(args, vec![]).await), 5);
    let part = out.path().join(format!("{artifact}.part"));
    let mut damaged = std::fs::read(&part).unwrap();
    damaged[1000] ^= 0x01;
    std::fs::write(&part, &damaged).unwrap();

    let run = client(
        download_args(&gw, out.path(), &[link_url(&gw, &link)]),
        vec![],
    )
    .await;
    assert_eq!(code(&run), 3, "{run:?}");
    let (f, s) = lines(&run);
    assert_eq!(f[0]["failure"], "verification");
    assert!(
        f[0]["error"].as_str().unwrap().contains("Repr-Digest"),
        "{}",
        f[0]
    );
    assert_eq!(s["exit_code"], 3);
    assert!(!out.path().join("Claim.ndjson").exists());
    assert!(!part.exists(), "the failed part is deleted");

    // Manifests: NDJSON with a known record count.
    let ndjson: Vec<u8> = (0..500)
        .flat_map(|i| format!("{{\"resourceType\":\"Patient\",\"id\":\"{i}\"}}\n").into_bytes())
        .collect();
    let patient = import(&gw, "Patient.ndjson", &ndjson).await;
    let manifest = |count: u64, sha: &str, url: String| {
        json!({"transactionTime": "2026-12-06T00:00:00Z", "request": "x", "requiresAccessToken": false,
          "output": [{"type": "Patient", "url": url, "count": count, "extension": [
            {"url": "https://sallyport.dev/fhir/StructureDefinition/file-sha256", "valueString": sha},
            {"url": "https://sallyport.dev/fhir/StructureDefinition/file-size", "valueInteger64": ndjson.len().to_string()}]}],
          "error": []})
    };
    let good_sha = sha256_hex(&ndjson);
    let wrong_sha = sha256_hex(b"another file");
    for (count, sha, want) in [
        (499, good_sha.as_str(), 3),
        (500, wrong_sha.as_str(), 3),
        (500, good_sha.as_str(), 0),
    ] {
        let link = issue(&gw, json!({"artifact": patient, "partner": "payer-a"})).await;
        let doc = manifest(count, sha, link_url(&gw, &link));
        let dir = tempfile::tempdir().unwrap();
        let mpath = dir.path().join("manifest.json");
        std::fs::write(&mpath, doc.to_string()).unwrap();
        let mut args = download_args(&gw, dir.path(), &[]);
        args.extend(["--manifest".into(), mpath.display().to_string()]);
        let run = client(args, vec![]).await;
        assert_eq!(code(&run), want, "count {count}: {run:?}");
        let (f, _) = lines(&run);
        assert_eq!(dir.path().join("Patient.ndjson").exists(), want == 0);
        if want == 0 {
            assert_eq!(f[0]["records"], 500);
        } else {
            assert_eq!(f[0]["failure"], "verification", "{}", f[0]);
        }
    }
}

/// Refusals and usage errors get their documented exit codes and clear messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_and_bad_arguments_have_their_exit_codes() {
    let gw = start("");
    let bytes = data(10_000, 5);
    let artifact = import(&gw, "Note.ndjson", &bytes).await;
    let link = issue(&gw, json!({"artifact": artifact, "partner": "payer-a"})).await;
    let url = link_url(&gw, &link);
    let out = tempfile::tempdir().unwrap();

    // A tampered signature: the server refuses (403 link.refused), exit 4.
    let forged = url.replace("sig=", "sig=A");
    let run = client(download_args(&gw, out.path(), &[forged]), vec![]).await;
    assert_eq!(code(&run), 4, "{run:?}");
    let (f, _) = lines(&run);
    assert!(
        f[0]["error"].as_str().unwrap().contains("403 link.refused"),
        "{}",
        f[0]
    );

    // An existing file under the final name is not replaced without --force: exit 6.
    std::fs::write(out.path().join("Note.ndjson"), b"mine").unwrap();
    let run = client(
        download_args(&gw, out.path(), std::slice::from_ref(&url)),
        vec![],
    )
    .await;
    assert_eq!(code(&run), 6, "{run:?}");
    assert_eq!(
        std::fs::read(out.path().join("Note.ndjson")).unwrap(),
        b"mine"
    );
    let mut args = download_args(&gw, out.path(), std::slice::from_ref(&url));
    args.push("--force".into());
    let run = client(args, vec![]).await;
    assert_eq!(code(&run), 0, "{run:?}");
    assert_eq!(
        std::fs::read(out.path().join("Note.ndjson")).unwrap(),
        bytes
    );

    // Usage errors: exit 2, a message on stderr, nothing written.
    let empty = tempfile::tempdir().unwrap();
    let tokens = tempfile::tempdir().unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["download".into(), url.clone()], "--cacert"),
        (
            download_args(&gw, empty.path(), &["http://localhost/d/abc".into()]),
            "https",
        ),
        (
            download_args(&gw, empty.path(), &["https://localhost/x/y/".into()]),
            "signed download link",
        ),
        (download_args(&gw, empty.path(), &[]), "nothing to download"),
        (
            download_args(&gw, empty.path(), &[url.clone(), url.clone()]),
            "twice",
        ),
        (
            vec![
                "upload".into(),
                "--to".into(),
                gw.url("/files/"),
                "/nonexistent/file".into(),
            ],
            "token",
        ),
        (
            vec![
                "download".into(),
                "--parallel".into(),
                "0".into(),
                url.clone(),
            ],
            "parallel",
        ),
        // Two files at once with 512 MiB chunks need 2 GiB of buffers: over the default
        // --max-memory, refused before any state is written or byte sent.
        (
            {
                let files = [empty.path().join("a"), empty.path().join("b")];
                let mut a = upload_args(&gw, tokens.path(), &[], &["--chunk-size", "512MiB"]);
                a.extend(files.iter().map(|f| {
                    std::fs::write(f, b"x").unwrap();
                    f.display().to_string()
                }));
                a
            },
            "--max-memory",
        ),
    ];
    for (args, says) in cases {
        let run = client(args.clone(), vec![]).await;
        let err = String::from_utf8_lossy(&run.stderr);
        assert_eq!(code(&run), 2, "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(
            !err.contains("sig="),
            "a signed link is never echoed: {err}"
        );
    }
    // Nothing written but the two files the upload case made itself.
    let mut left: Vec<_> = std::fs::read_dir(empty.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(left, ["a", "b"]);
    assert!(
        !tokens.path().join("state").exists(),
        "a refused upload creates no state directory"
    );
}

// === uploads ===

fn token_file(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join("uploader.token");
    std::fs::write(&p, UPLOADER_TOKEN).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p
}

fn upload_args(gw: &Gateway, dir: &Path, files: &[PathBuf], extra: &[&str]) -> Vec<String> {
    let mut a = vec![
        "upload".to_owned(),
        "--json".into(),
        "--to".into(),
        gw.url("/files/"),
        "--cacert".into(),
        gw.ca_path().display().to_string(),
        "--token-file".into(),
        token_file(dir).display().to_string(),
        "--state-dir".into(),
        dir.join("state").display().to_string(),
    ];
    a.extend(extra.iter().map(|s| (*s).to_owned()));
    a.extend(files.iter().map(|f| f.display().to_string()));
    a
}

async fn ledger(gw: &Gateway, upload_url: &str) -> Value {
    let path = &upload_url[upload_url.find("/files/").unwrap()..];
    let resp = gw
        .client()
        .get(gw.url(&format!("{path}/ledger")))
        .bearer_auth(UPLOADER_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

async fn server_offset(gw: &Gateway, upload_url: &str) -> u64 {
    let path = &upload_url[upload_url.find("/files/").unwrap()..];
    let resp = gw
        .client()
        .head(gw.url(path))
        .bearer_auth(UPLOADER_TOKEN)
        .header("tus-resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    resp.headers()["upload-offset"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// Three files (one of 5 MiB) in parallel, 1 MiB chunks: each ends verified, and the
/// server's ledger states the file's SHA-256 with every chunk checksum-verified.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_three_files_in_parallel_with_server_confirmed_digests() {
    let gw = Gateway::start("");
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<(PathBuf, Vec<u8>)> = [
        ("big.bin", 5 << 20),
        ("small.bin", 12_345),
        ("empty.bin", 0),
    ]
    .iter()
    .enumerate()
    .map(|(i, (name, len))| {
        let p = dir.path().join(name);
        let b = data(*len, 10 + i as u64);
        std::fs::write(&p, &b).unwrap();
        (p, b)
    })
    .collect();
    let paths: Vec<PathBuf> = files.iter().map(|(p, _)| p.clone()).collect();
    let run = client(
        upload_args(
            &gw,
            dir.path(),
            &paths,
            &["--chunk-size", "1MiB", "--parallel", "3"],
        ),
        vec![],
    )
    .await;
    assert_eq!(code(&run), 0, "{run:?}");
    let (out, summary) = lines(&run);
    assert_eq!(summary["verified"], 3);
    for (i, (_, bytes)) in files.iter().enumerate() {
        assert_eq!(out[i]["status"], "verified", "{}", out[i]);
        assert_eq!(out[i]["sha256"], sha256_hex(bytes));
        let l = ledger(&gw, out[i]["remote"].as_str().unwrap()).await;
        assert_eq!(l["sha256"], sha256_hex(bytes));
        assert_eq!(l["complete"], true);
        let chunks = l["chunks"].as_array().unwrap();
        assert_eq!(chunks.len(), bytes.len().div_ceil(1 << 20));
        assert!(
            chunks.iter().all(|c| c["checksum_verified"] == "sha256"),
            "{l}"
        );
    }
    // Nothing left to resume: the state directory is empty.
    assert_eq!(
        std::fs::read_dir(dir.path().join("state")).unwrap().count(),
        0
    );
}

/// The client is killed (SIGKILL) twice mid-upload; each next run resumes the same upload
/// from the server's offset (no chunk sent again from 0) and the last one completes with
/// the right SHA-256.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_upload_resumes_the_same_upload() {
    let gw = Gateway::start("");
    let dir = tempfile::tempdir().unwrap();
    let bytes = data(24 << 20, 20);
    let file = dir.path().join("scan.dcm");
    std::fs::write(&file, &bytes).unwrap();
    let args = upload_args(
        &gw,
        dir.path(),
        std::slice::from_ref(&file),
        &["--chunk-size", "64KiB"],
    );
    let state_dir = dir.path().join("state");
    let mut upload_url = None;
    let mut killed_at = Vec::new();
    for _ in 0..2 {
        let mut child = sallyport()
            .arg("client")
            .args(&args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Wait for the state file and for the server to hold more than it held before.
        let before = killed_at.last().copied().unwrap_or(0);
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let url = loop {
            assert!(std::time::Instant::now() < deadline, "no progress");
            assert!(
                child.try_wait().unwrap().is_none(),
                "the client finished before it was killed"
            );
            let recorded = std::fs::read_dir(&state_dir)
                .into_iter()
                .flatten()
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .find_map(|p| std::fs::read(p).ok())
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok());
            if let Some(u) = recorded.as_ref().and_then(|s| s["upload"].as_str())
                && server_offset(&gw, u).await > before + (256 << 10)
            {
                break u.to_owned();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        if let Some(prev) = &upload_url {
            assert_eq!(prev, &url, "a resumed run keeps the same upload");
        }
        upload_url = Some(url.clone());
        killed_at.push(server_offset(&gw, &url).await);
    }
    let url = upload_url.unwrap();
    let at_kill = *killed_at.last().unwrap();
    assert!(at_kill < bytes.len() as u64, "killed before the end");

    let run = client(args, vec![]).await;
    assert_eq!(code(&run), 0, "{run:?}");
    let (out, _) = lines(&run);
    assert_eq!(out[0]["remote"], url.as_str());
    // At least where the server was just after the kill (a PATCH whose body was all in
    // may still have committed after that HEAD), and never 0.
    assert!(
        out[0]["resumed_from"].as_u64().unwrap() >= at_kill,
        "{}",
        out[0]
    );
    assert_eq!(out[0]["sha256"], sha256_hex(&bytes));
    let l = ledger(&gw, &url).await;
    assert_eq!(l["sha256"], sha256_hex(&bytes));
    // Contiguous chunks, each offset once: nothing was re-sent from 0.
    let mut at = 0;
    for c in l["chunks"].as_array().unwrap() {
        assert_eq!(c["offset"], at, "{c}");
        at += c["length"].as_u64().unwrap();
    }
    assert_eq!(at, bytes.len() as u64);
}

/// The network drops mid-upload (the proxy cuts the first connection after 1.5 MiB from
/// the client): the client asks the server for its offset and finishes the same upload in
/// the same run, every chunk once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_survives_a_dropped_connection() {
    let gw = Gateway::start("");
    let p = proxy_cutting(gw.addr, u64::MAX, 3 << 19).await;
    let dir = tempfile::tempdir().unwrap();
    let bytes = data(4 << 20, 30);
    let file = dir.path().join("labs.zip");
    std::fs::write(&file, &bytes).unwrap();
    let mut args = upload_args(
        &gw,
        dir.path(),
        std::slice::from_ref(&file),
        &["--chunk-size", "256KiB"],
    );
    let to = args.iter().position(|a| a == "--to").unwrap() + 1;
    args[to] = format!("https://localhost:{}/files/", p.port);
    let run = client(args, vec![]).await;
    assert_eq!(code(&run), 0, "{run:?}");
    let (out, _) = lines(&run);
    assert_eq!(out[0]["sha256"], sha256_hex(&bytes));
    let connections = p.sent.lock().unwrap().len();
    assert!(
        connections >= 2,
        "the cut connection was replaced: {connections}"
    );
    let l = ledger(&gw, out[0]["remote"].as_str().unwrap()).await;
    assert_eq!(l["sha256"], sha256_hex(&bytes));
    let mut at = 0;
    for c in l["chunks"].as_array().unwrap() {
        assert_eq!(c["offset"], at, "{c}");
        at += c["length"].as_u64().unwrap();
    }
    assert_eq!(at, bytes.len() as u64);
}

/// `--cert/--key`: a link bound to a client certificate downloads only when the client
/// presents it (mutual TLS); without it the gateway refuses (exit 4).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_bound_link_needs_the_client_certificate() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    // A partner CA and a client certificate it issued.
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let ca_path = dir.path().join("partner-ca.pem");
    std::fs::write(&ca_path, ca_cert.pem()).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params =
        rcgen::CertificateParams::new(vec!["payer-a.partners.example".into()]).unwrap();
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, &issuer).unwrap();
    let cert_path = dir.path().join("payer-a.pem");
    let key_path = dir.path().join("payer-a.key");
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();

    let gw = start(&format!(
        "[tls]\nclient_auth = \"optional\"\nclient_ca_file = {:?}\n",
        ca_path.display().to_string()
    ));
    let bytes = data(50_000, 40);
    let artifact = import(&gw, "Bound.ndjson", &bytes).await;
    let link = issue(
        &gw,
        json!({"artifact": artifact, "partner": "payer-a", "client_cert_sha256": sha256_hex(cert.der())}),
    )
    .await;
    let url = link_url(&gw, &link);
    let out = tempfile::tempdir().unwrap();
    let run = client(
        download_args(&gw, out.path(), std::slice::from_ref(&url)),
        vec![],
    )
    .await;
    assert_eq!(code(&run), 4, "{run:?}");
    let mut args = download_args(&gw, out.path(), &[url]);
    args.extend([
        "--cert".into(),
        cert_path.display().to_string(),
        "--key".into(),
        key_path.display().to_string(),
    ]);
    let run = client(args, vec![]).await;
    assert_eq!(code(&run), 0, "{run:?}");
    assert_eq!(
        std::fs::read(out.path().join("Bound.ndjson")).unwrap(),
        bytes
    );
}
