//! SIEM export (`audit ship`): a TCP endpoint that is down, then up, then down and up again
//! receives every entry exactly once and in order; a restart resumes from the cursor (and
//! would resend everything without it); TLS is checked against a test CA and the server
//! name; a file output killed mid-run (SIGKILL, repeatedly) ends with every entry once.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sallyport::audit::events::AuditVerified;
use sallyport::audit::log::StateLog;
use sallyport::audit::ship::{self, Progress, ShipOptions, ShipSummary, Target};
use sallyport::audit::siem::{self, Format};
use sallyport::audit::{AuditContext, Auditor};
use sallyport::metrics::Metrics;
use sallyport::state::memory::MemoryStore;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// Appends `n` real audit entries through the real writer.
async fn fill(auditor: &Auditor, n: u64) {
    for i in 0..n {
        let event = AuditVerified {
            length: i,
            intact: true,
        };
        auditor.emit(&AuditContext::system(), &event).await.unwrap();
    }
}

fn store_with_auditor() -> (Arc<MemoryStore>, Auditor) {
    let store = Arc::new(MemoryStore::new());
    let auditor = Auditor::start(
        StateLog::shared(store.clone()),
        "gw-test".into(),
        64,
        Arc::new(Metrics::new()),
    );
    (store, auditor)
}

/// Records the retries the shipper reports and wakes a waiter on each.
#[derive(Clone, Default)]
struct Seen {
    retries: Arc<Mutex<Vec<String>>>,
    delivered: Arc<Mutex<u64>>,
    notify: Arc<Notify>,
}

impl Seen {
    fn count(&self) -> usize {
        self.retries.lock().unwrap().len()
    }

    async fn wait_retries(&self, n: usize) {
        while self.count() < n {
            self.notify.notified().await;
        }
    }

    /// Waits until the shipper has recorded `seq` as delivered (its cursor is saved).
    async fn wait_delivered(&self, seq: u64) {
        while *self.delivered.lock().unwrap() < seq {
            self.notify.notified().await;
        }
    }
}

impl Progress for Seen {
    fn delivered(&mut self, last_seq: u64, _head: u64) {
        *self.delivered.lock().unwrap() = last_seq;
        self.notify.notify_one();
    }
    fn retrying(&mut self, error: &str, _wait: Duration) {
        self.retries.lock().unwrap().push(error.to_owned());
        self.notify.notify_one();
    }
}

fn options(target: Target, format: Format, state: PathBuf, follow: bool) -> ShipOptions {
    ShipOptions {
        target,
        format,
        state,
        follow,
        batch_max: 25,
        poll: Duration::from_millis(20),
        retry_max: Duration::from_millis(100),
    }
}

/// Reads octet-counted syslog frames until `last` arrived or EOF; returns the stream and
/// the seqs.
async fn read_frames<S: AsyncRead + Unpin>(mut s: S, last: u64) -> (S, Vec<u64>) {
    let mut buf = Vec::new();
    let mut seqs = Vec::new();
    loop {
        // Parse whole frames out of `buf`.
        while let Some(sp) = buf.iter().position(|&b| b == b' ') {
            let len: usize = std::str::from_utf8(&buf[..sp]).unwrap().parse().unwrap();
            if buf.len() < sp + 1 + len {
                break;
            }
            let msg: Vec<u8> = buf.drain(..sp + 1 + len).skip(sp + 1).collect();
            let seq = siem::seq_of_line(Format::SyslogCef, &msg).expect("a seq in every message");
            assert!(
                std::str::from_utf8(&msg)
                    .unwrap()
                    .contains("CEF:0|Sallyport|")
            );
            seqs.push(seq);
            if seq == last {
                return (s, seqs);
            }
        }
        let mut chunk = [0u8; 8192];
        let n = s.read(&mut chunk).await.unwrap();
        if n == 0 {
            return (s, seqs);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// A port nothing listens on (connections are refused).
async fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_endpoint_down_then_back_gets_every_entry_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (store, auditor) = store_with_auditor();
    fill(&auditor, 200).await;
    let port = closed_port().await;
    let target = Target::parse(&format!("tcp://127.0.0.1:{port}"), None).unwrap();
    let state = dir.path().join("cursor");
    let opts = options(target, Format::SyslogCef, state.clone(), true);

    let seen = Seen::default();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let shipper = {
        let store = store.clone();
        let mut seen = seen.clone();
        tokio::spawn(async move {
            let stop = async {
                let _ = stop_rx.await;
            };
            ship::ship(&StateLog::new(store.clone()), &opts, &mut seen, stop).await
        })
    };

    // Down: connections refused, retried, reported.
    seen.wait_retries(3).await;
    assert!(
        seen.retries.lock().unwrap()[0].contains(&format!("tcp://127.0.0.1:{port}")),
        "{:?}",
        seen.retries
    );
    // Up: everything so far arrives; then the endpoint closes and goes down again.
    let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let (conn, _) = listener.accept().await.unwrap();
    let (conn, mut got) = read_frames(conn, 200).await;
    // Close once the shipper has counted 200 as delivered: a close that races its
    // post-write check makes it resend the batch (at-least-once; see `audit::ship`).
    seen.wait_delivered(200).await;
    drop(conn);
    drop(listener);
    let before = seen.count();
    fill(&auditor, 100).await; // 201..=300 while the endpoint is down
    seen.wait_retries(before + 3).await;
    // Back: the rest arrives, nothing twice.
    let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let (conn, _) = listener.accept().await.unwrap();
    got.extend(read_frames(conn, 300).await.1);
    stop_tx.send(()).unwrap();
    let summary: ShipSummary = shipper.await.unwrap().unwrap();

    assert_eq!(
        got,
        (1..=300).collect::<Vec<u64>>(),
        "each seq once, in order"
    );
    assert_eq!(summary.last_seq, 300);
    assert_eq!(summary.delivered, 300);
    assert!(summary.retries >= 6, "{summary:?}");
    assert_mode_0600(&state);
}

fn assert_mode_0600(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{}", path.display());
}

/// Runs one non-following ship to `listener` and returns the seqs it received.
async fn ship_once(
    store: &Arc<MemoryStore>,
    listener: &TcpListener,
    state: &Path,
) -> (Vec<u64>, ShipSummary) {
    let port = listener.local_addr().unwrap().port();
    let target = Target::parse(&format!("tcp://127.0.0.1:{port}"), None).unwrap();
    let opts = options(target, Format::SyslogCef, state.to_owned(), false);
    let mut seen = Seen::default();
    let log = StateLog::new(store.clone());
    let shipping = ship::ship(&log, &opts, &mut seen, std::future::pending());
    // Reads until the shipper closes (it does when it stops at the head).
    let receiving = async {
        let (conn, _) = listener.accept().await.unwrap();
        read_frames(conn, u64::MAX).await.1
    };
    tokio::pin!(shipping, receiving);
    let mut got = None;
    let summary = loop {
        tokio::select! {
            s = &mut shipping => break s.unwrap(),
            g = &mut receiving, if got.is_none() => got = Some(g),
        }
    };
    // A run with nothing to send never connects.
    let got = match (summary.delivered, got) {
        (0, _) => Vec::new(),
        (_, Some(g)) => g,
        (_, None) => receiving.await,
    };
    (got, summary)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_resumes_after_the_cursor_and_would_resend_everything_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let (store, auditor) = store_with_auditor();
    fill(&auditor, 60).await;
    let state = dir.path().join("cursor");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (first, _) = ship_once(&store, &listener, &state).await;
    assert_eq!(first, (1..=60).collect::<Vec<u64>>());
    // Nothing new: a second run sends nothing.
    let (none, s) = ship_once(&store, &listener, &state).await;
    assert_eq!((none.len(), s.last_seq), (0, 60));
    fill(&auditor, 40).await;
    let (second, s) = ship_once(&store, &listener, &state).await;
    assert_eq!(second, (61..=100).collect::<Vec<u64>>(), "resumed after 60");
    assert_eq!(s.delivered, 40);
    // Without the resume state (a new cursor file), everything goes again: duplicates.
    let (again, _) = ship_once(&store, &listener, &dir.path().join("no-cursor")).await;
    assert_eq!(
        again.len(),
        100,
        "without the cursor 1..=60 would arrive twice"
    );
}

/// A test CA and a server certificate for `localhost` it signed; the CA PEM is written to
/// `dir/ca.pem`.
fn test_ca(dir: &Path) -> (PathBuf, rustls::ServerConfig) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "SIEM test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let ca_path = dir.join("ca.pem");
    std::fs::write(&ca_path, ca_cert.pem()).unwrap();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
    (ca_path, config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_delivers_to_a_server_the_ca_signed_and_refuses_a_wrong_name() {
    let dir = tempfile::tempdir().unwrap();
    let (store, auditor) = store_with_auditor();
    fill(&auditor, 30).await;
    let (ca, server) = test_ca(dir.path());
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let receiver = tokio::spawn(async move {
        let mut all = Vec::new();
        // The wrong-name attempts fail their handshakes; the good one delivers.
        while all.len() < 30 {
            let (tcp, _) = listener.accept().await.unwrap();
            if let Ok(tls) = acceptor.accept(tcp).await {
                // Until the shipper closes: closing first would race its post-write check.
                all.extend(read_frames(tls, u64::MAX).await.1);
            }
        }
        all
    });

    // The certificate names `localhost`, not `127.0.0.1`: refused, retried, nothing counted.
    let wrong = Target::parse(&format!("tls://127.0.0.1:{port}"), Some(ca.clone())).unwrap();
    let seen = Seen::default();
    let stop = {
        let seen = seen.clone();
        async move { seen.wait_retries(2).await }
    };
    let opts = options(wrong, Format::SyslogCef, dir.path().join("wrong"), false);
    let s = ship::ship(
        &StateLog::new(store.clone()),
        &opts,
        &mut seen.clone(),
        stop,
    )
    .await
    .unwrap();
    assert_eq!((s.delivered, s.last_seq), (0, 0));
    let why = seen.retries.lock().unwrap()[0].clone();
    assert!(why.contains("certificate"), "{why}");
    assert!(
        !dir.path().join("wrong").exists(),
        "no cursor for nothing delivered"
    );

    let good = Target::parse(&format!("tls://localhost:{port}"), Some(ca)).unwrap();
    let opts = options(good, Format::SyslogCef, dir.path().join("good"), false);
    let s = ship::ship(
        &StateLog::new(store.clone()),
        &opts,
        &mut Seen::default(),
        std::future::pending(),
    )
    .await
    .unwrap();
    assert_eq!((s.delivered, s.last_seq), (30, 30));
    assert_eq!(receiver.await.unwrap(), (1..=30).collect::<Vec<u64>>());
}

#[test]
fn tls_without_a_ca_file_is_refused_before_anything_is_read() {
    let err = Target::parse("tls://siem.example:6514", None).unwrap_err();
    assert!(err.to_string().contains("--ca-file"), "{err}");
    for bad in ["udp://h:1", "tcp://h", "tcp://h:0", "tcp://:514", "file:"] {
        assert!(Target::parse(bad, None).is_err(), "{bad}");
    }
}

/// The CLI on an embedded store holding `n` entries (written through the real auditor).
fn embedded_store_with(dir: &Path, n: u64) -> PathBuf {
    let config_path = dir.join("sallyport.toml");
    let text = format!(
        "data_dir = {:?}\n[log]\nformat = \"text\"\nlevel = \"warn\"\n",
        dir.join("data").display().to_string()
    );
    std::fs::write(&config_path, &text).unwrap();
    let config = sallyport::config::Config::from_toml(
        &text,
        &std::collections::BTreeMap::<String, String>::new(),
    )
    .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = sallyport::app::open_state(&config).await.unwrap();
        let auditor = Auditor::start(
            StateLog::shared(store),
            "gw-test".into(),
            512,
            Arc::new(Metrics::new()),
        );
        let tasks: Vec<_> = (0..n)
            .map(|i| {
                let a = auditor.clone();
                tokio::spawn(async move {
                    let e = AuditVerified {
                        length: i,
                        intact: true,
                    };
                    a.emit(&AuditContext::system(), &e).await.unwrap();
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
    drop(rt); // closes the store: the CLI opens it next
    config_path
}

fn seqs_in(path: &Path, format: Format) -> Vec<u64> {
    let bytes = std::fs::read(path).unwrap_or_default();
    assert!(
        bytes.is_empty() || bytes.ends_with(b"\n"),
        "torn last line left behind"
    );
    bytes
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| siem::seq_of_line(format, l).unwrap())
        .collect()
}

#[test]
fn a_file_output_killed_repeatedly_ends_with_every_entry_once() {
    let dir = tempfile::tempdir().unwrap();
    let n = 20_000;
    let config = embedded_store_with(dir.path(), n);
    for format in ["jsonl", "syslog-cef"] {
        let out = dir.path().join(format!("audit.{format}"));
        let to = format!("file:{}", out.display());
        let args = [
            "audit", "ship", "--to", &to, "--format", format, "--batch", "50",
        ];
        // SIGKILL it mid-run, a few times, at growing delays.
        let mut kills = 0;
        for delay_ms in [30u64, 60, 90, 120, 150] {
            let mut child = support::sallyport()
                .arg("--config")
                .arg(&config)
                .args(args)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(Duration::from_millis(delay_ms));
            if child.try_wait().unwrap().is_none() {
                child.kill().unwrap();
                kills += 1;
            }
            child.wait().unwrap();
        }
        let out_json = support::cli(&config, &[&args[..], &["--json"]].concat());
        let summary: serde_json::Value = serde_json::from_str(out_json.trim()).unwrap();
        assert_eq!(summary["last_seq"], n, "{summary}");
        let fmt = Format::parse(format).unwrap();
        let seqs = seqs_in(&out, fmt);
        assert_eq!(seqs.len() as u64, n, "{format}: {kills} kills");
        assert_eq!(
            seqs,
            (1..=n).collect::<Vec<u64>>(),
            "{format}: {kills} kills"
        );
        assert_mode_0600(&PathBuf::from(format!("{}.ship-state", out.display())));
        eprintln!("{format}: {kills} kills mid-run, {n} entries once each");
    }
}

#[tokio::test]
async fn a_kill_between_the_file_write_and_the_cursor_update_sends_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let (store, auditor) = store_with_auditor();
    fill(&auditor, 40).await;
    let out = dir.path().join("audit.jsonl");
    let state = dir.path().join("cursor");
    let opts = options(
        Target::File(out.clone()),
        Format::JsonLines,
        state.clone(),
        false,
    );
    let run = || async {
        ship::ship(
            &StateLog::new(store.clone()),
            &opts,
            &mut Seen::default(),
            std::future::pending(),
        )
        .await
    };
    run().await.unwrap();
    let stale = std::fs::read(&state).unwrap(); // the cursor at 40
    fill(&auditor, 40).await;
    run().await.unwrap();
    // As if killed after fsyncing 41..=80 but before the cursor said so, and then killed
    // again halfway through writing the next batch: a stale cursor and a torn last line.
    std::fs::write(&state, &stale).unwrap();
    let mut f = std::fs::OpenOptions::new().append(true).open(&out).unwrap();
    std::io::Write::write_all(&mut f, br#"{"v":1,"seq":81,"ti"#).unwrap();
    fill(&auditor, 20).await;
    let s = run().await.unwrap();
    assert_eq!((s.delivered, s.last_seq), (20, 100));
    assert_eq!(
        seqs_in(&out, Format::JsonLines),
        (1..=100).collect::<Vec<u64>>()
    );
    // The export is the chain itself: it verifies.
    let v = support::sallyport()
        .args(["audit", "verify", "--file"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(v.status.success(), "{v:?}");
}

/// The example in `proto/audit-siem-v1.md` is what the code writes (the doc's hash is a
/// shortened placeholder; rendering does not interpret it).
#[test]
fn the_proto_example_is_what_the_code_writes() {
    let doc = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("proto/audit-siem-v1.md"),
    )
    .unwrap();
    let example = doc.split("## Example").nth(1).unwrap();
    let block = |fence: &str| {
        let start = example.find(fence).unwrap() + fence.len();
        example[start..]
            .split("\n```")
            .next()
            .unwrap()
            .trim()
            .to_owned()
    };
    let entry = block("```json\n");
    let expected = block("```text\n");
    let parsed = siem::Entry::parse(entry.as_bytes()).unwrap();
    let msg = siem::render(Format::SyslogCef, entry.as_bytes(), &parsed, "0.1.0").unwrap();
    assert_eq!(String::from_utf8(msg).unwrap(), expected);
}
