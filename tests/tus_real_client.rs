#![allow(clippy::unwrap_used, clippy::expect_used)]
//! A real tus client against the real gateway: tuspy (the Python tus client, pinned in
//! `tests/clients/requirements.txt`) uploads a 300 MB random file in 8 MiB chunks, each
//! PATCH with `Upload-Checksum: sha1`, through `tests/clients/tuspy_upload.py`.
//!
//! The client is killed (SIGKILL) part-way, during the upload; a second run of the client
//! finds the upload URL in tuspy's URL storage, asks the server for the offset (HEAD) and
//! resumes from there. The finished upload must then have HEAD's `Repr-Digest` and the
//! ledger's whole-file SHA-256 equal to the source file's, a contiguous ledger whose every
//! chunk's SHA-256 matches the source slice and says it was verified with `sha1`, and the
//! stored plaintext (read back through the library) equal to the source.
//!
//! tuspy is installed by `support::tuspy` with `pip install --target` under cargo's
//! `CARGO_TARGET_TMPDIR` (once per requirements file). Without python3 or pip the test is
//! skipped with a notice, except when `CI` is set: then it fails.

mod support;

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::tus_e2e::*;
use support::tuspy::SCRIPT;
use support::{Gateway, UPLOADER_TOKEN};

const FILE_LEN: usize = 300_000_000;
const CHUNK: u64 = 8 * 1024 * 1024;

/// One run of the tuspy client; its stdout events arrive on the channel as JSON.
struct ClientRun {
    child: Child,
    events: mpsc::Receiver<serde_json::Value>,
    stderr: std::thread::JoinHandle<String>,
}

fn start_client(
    python: &str,
    pythonpath: &Path,
    gw: &Gateway,
    file: &Path,
    storage: &Path,
) -> ClientRun {
    let mut child = Command::new(python)
        .arg(SCRIPT)
        .arg("--endpoint")
        .arg(gw.url("/files/"))
        .arg("--file")
        .arg(file)
        .arg("--token")
        .arg(UPLOADER_TOKEN)
        .arg("--cacert")
        .arg(gw.ca_path())
        .arg("--storage")
        .arg(storage)
        .arg("--chunk-size")
        .arg(CHUNK.to_string())
        .env("PYTHONPATH", pythonpath)
        .env("PYTHONNOUSERSITE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the tuspy client");
    let stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let (tx, events) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let event: serde_json::Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("client printed {line:?}: {e}"));
            if tx.send(event).is_err() {
                break;
            }
        }
    });
    let stderr = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    ClientRun {
        child,
        events,
        stderr,
    }
}

impl ClientRun {
    /// The next event, failing the test with the client's stderr if none comes in time.
    fn next(&mut self, deadline: Instant) -> Option<serde_json::Value> {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.events.recv_timeout(left) {
            Ok(e) => Some(e),
            Err(mpsc::RecvTimeoutError::Disconnected) => None,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = self.child.kill();
                panic!("the tuspy client made no progress in time");
            }
        }
    }

    /// Waits for exit; returns (success, stderr).
    fn finish(mut self) -> (bool, String) {
        let status = self.child.wait().unwrap();
        (status.success(), self.stderr.join().unwrap())
    }
}

#[test]
fn tuspy_upload_interrupted_and_resumed_matches_the_source() {
    let Some((python, pythonpath)) =
        support::ci::require_or_skip("tuspy", support::tuspy::install())
    else {
        return;
    };
    let seed = seed_from_env("TUS_REAL_CLIENT_SEED");
    eprintln!("source seed {seed} (replay with TUS_REAL_CLIENT_SEED={seed})");
    let work = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let source = random_bytes(FILE_LEN, seed);
    let file = work.path().join("referral-package.bin");
    std::fs::write(&file, &source).unwrap();
    let storage = work.path().join("tuspy-urls.json");

    let mut gw = Gateway::start("");
    let deadline = Instant::now() + Duration::from_secs(600);
    let started = Instant::now();

    // Run 1: killed once it has had a good part of the file acknowledged, while it is
    // sending the next chunk.
    let mut run = start_client(&python, &pythonpath, &gw, &file, &storage);
    let first = run.next(deadline).expect("start event");
    assert_eq!(first["event"], "start");
    assert!(first["url"].is_null(), "a fresh storage has no upload URL");
    let mut acked = 0u64;
    let kill_after = FILE_LEN as u64 * 2 / 5;
    while let Some(event) = run.next(deadline) {
        match event["event"].as_str() {
            Some("chunk") => {
                let offset = event["offset"].as_u64().unwrap();
                assert!(offset > acked, "offsets only grow");
                acked = offset;
                if acked >= kill_after {
                    run.child.kill().unwrap();
                    break;
                }
            }
            other => panic!("unexpected event {other:?} before the interruption"),
        }
    }
    let (ok, _) = run.finish();
    assert!(!ok, "the first client run was killed");
    assert!(acked >= kill_after && acked < FILE_LEN as u64);

    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = TusClient {
        http: gw.client(),
        origin: gw.url(""),
        token: UPLOADER_TOKEN.to_owned(),
    };
    let urls = std::fs::read_to_string(&storage).unwrap();
    // TinyDB's file: {"_default": {"<doc id>": {"key": fingerprint, "url": URL}}}.
    let urls: serde_json::Value = serde_json::from_str(&urls).unwrap();
    let stored: Vec<_> = urls["_default"].as_object().unwrap().values().collect();
    assert_eq!(stored.len(), 1, "tuspy stored one upload URL");
    let url = stored[0]["url"].as_str().unwrap().to_owned();
    let id = upload_id(&url);
    // The server kept every acknowledged byte, and of the killed PATCH either nothing (its
    // checksum could not be verified, so a part of it may not be kept) or, if the kill
    // came only after the whole body had arrived, all of it.
    let offset = rt.block_on(async {
        let head = client.head(id).await.unwrap();
        assert_eq!(head.status(), 200);
        header(&head, "upload-offset")
            .unwrap()
            .parse::<u64>()
            .unwrap()
    });
    assert!(
        offset == acked || offset == acked + CHUNK,
        "after the interruption the server's offset {offset} is the last acknowledged one \
         ({acked}) or one whole chunk more"
    );

    // Run 2: resumes the same upload from the server's offset.
    let mut run = start_client(&python, &pythonpath, &gw, &file, &storage);
    let first = run.next(deadline).expect("start event");
    assert_eq!(first["event"], "start");
    assert_eq!(first["url"].as_str(), Some(url.as_str()), "same upload");
    assert_eq!(
        first["offset"].as_u64(),
        Some(offset),
        "resumed, not restarted"
    );
    let mut last = None;
    while let Some(event) = run.next(deadline) {
        last = Some(event);
    }
    let (ok, stderr) = run.finish();
    assert!(ok, "the resumed client run failed:\n{stderr}");
    let last = last.expect("events from the resumed run");
    assert_eq!(last["event"], "done");
    assert_eq!(last["offset"].as_u64(), Some(FILE_LEN as u64));
    eprintln!(
        "uploaded {} MB with tuspy in {:.1} s (interrupted at {acked})",
        FILE_LEN / 1_000_000,
        started.elapsed().as_secs_f64()
    );

    let chunks = rt.block_on(check_finished_upload(
        &client,
        id,
        &source,
        |offset, length| {
            // tuspy sends 8 MiB chunks from wherever the server says, each with sha1.
            if length == CHUNK.min(FILE_LEN as u64 - offset) {
                Ok(vec![Some("sha1")])
            } else {
                Err(format!("tuspy never sent a chunk of {length} bytes here"))
            }
        },
    ));
    assert_eq!(chunks as u64, (FILE_LEN as u64).div_ceil(CHUNK));

    gw.stop();
    let stored = rt.block_on(read_back(&gw.data_dir(), id));
    assert_same_bytes(&stored, &source);
}
