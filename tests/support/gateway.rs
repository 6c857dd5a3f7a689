//! The real gateway under test: the `sallyport` binary started on port 0 with a temporary
//! data directory and the test clients' tokens, and the CLI run against a config file.
//! Every test that runs the binary goes through [`sallyport`].
//!
//! Not here: TLS client set-up (`tls`), protocol-specific clients (`tus_http`, `links`).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use super::tls::{ClientCert, client_tls, https_client, tls_stream};

/// A token and its config entry for tests.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdefghijklmnop";
pub const UPLOADER_TOKEN: &str = "test-uploader-token-0123456789abcdefghijkl";
/// A second uploader ("lab"), for tests of ownership between principals.
pub const LAB_TOKEN: &str = "test-lab-uploader-token-0123456789abcdefgh";

pub fn token_hash(token: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

/// The `[[clients]]` section tests use.
pub fn clients_toml() -> String {
    format!(
        "[[clients]]\nname = \"ops\"\ntoken_sha256 = \"{}\"\nroles = [\"admin\"]\n\n\
         [[clients]]\nname = \"clinic\"\ntoken_sha256 = \"{}\"\nroles = [\"uploader\"]\n\n\
         [[clients]]\nname = \"lab\"\ntoken_sha256 = \"{}\"\nroles = [\"uploader\"]\n",
        token_hash(ADMIN_TOKEN),
        token_hash(UPLOADER_TOKEN),
        token_hash(LAB_TOKEN)
    )
}

/// A running gateway process.
pub struct Gateway {
    pub child: Child,
    pub addr: std::net::SocketAddr,
    pub dir: PathBuf,
    pub config_path: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    pub stderr: mpsc::Receiver<String>,
}

impl Gateway {
    /// Every stderr line printed so far (after the start-up line).
    pub fn drain_stderr(&self) -> Vec<String> {
        let mut out = Vec::new();
        while let Ok(l) = self.stderr.recv_timeout(Duration::from_millis(200)) {
            out.push(l);
        }
        out
    }
}

impl Gateway {
    /// Starts the gateway with `extra` TOML appended to a base config (port 0, temp dir).
    pub fn start(extra: &str) -> Gateway {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_owned();
        let mut g = Self::start_in(&dir, extra);
        g._tmp = Some(tmp);
        g
    }

    /// Starts in an existing directory (for restarts); the caller keeps the directory.
    pub fn start_in(dir: &Path, extra: &str) -> Gateway {
        let config_path = dir.join("sallyport.toml");
        let has_listen = extra.contains("listen");
        // `extra` comes right after the top-level keys, so it may add top-level keys or
        // sections; the listen address comes from the environment unless `extra` sets it.
        let log = if extra.contains("[log]") {
            ""
        } else {
            "\n[log]\nformat = \"text\"\nlevel = \"warn\"\n"
        };
        let text = format!(
            "data_dir = {:?}\n{extra}\n{}{log}",
            dir.join("data").display().to_string(),
            clients_toml()
        );
        std::fs::write(&config_path, text).unwrap();
        let mut cmd = sallyport();
        cmd.arg("--config").arg(&config_path).arg("serve");
        if !has_listen {
            cmd.env("SALLYPORT_SERVER__LISTEN", "127.0.0.1:0");
        }
        // stdout: the human start-up lines; stderr: the log stream.
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start sallyport");
        let stdout: Box<dyn std::io::Read + Send> = Box::new(child.stdout.take().unwrap());
        let stderr: Box<dyn std::io::Read + Send> = Box::new(child.stderr.take().unwrap());
        let (tx, rx) = mpsc::channel();
        let (log_tx, log_rx) = mpsc::channel();
        for (pipe, tx) in [(stdout, tx), (stderr, log_tx)] {
            std::thread::spawn(move || {
                // Keep reading after the receiver is gone: closing the pipe would make the
                // gateway's next line to stdout fail (println! panics on a broken pipe).
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    let _ = tx.send(line);
                }
            });
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let mut seen = Vec::new();
        let addr = loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix("sallyport serving ") {
                        let hostport = rest
                            .trim_start_matches("https://")
                            .trim_start_matches("http://")
                            .trim_end_matches('/');
                        break hostport.parse().unwrap();
                    }
                    seen.push(line);
                }
                Err(_) => {
                    let _ = child.kill();
                    while let Ok(l) = log_rx.recv_timeout(Duration::from_millis(100)) {
                        seen.push(l);
                    }
                    panic!("gateway did not start; output:\n{}", seen.join("\n"));
                }
            }
        };
        Gateway {
            child,
            addr,
            dir: dir.to_owned(),
            config_path,
            _tmp: None,
            stderr: log_rx,
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    pub fn ca_path(&self) -> PathBuf {
        self.data_dir().join("dev-ca/ca.pem")
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.addr.port())
    }

    /// A reqwest client trusting the dev CA, with the given TLS versions and ALPN.
    pub fn client_with(
        &self,
        versions: &[&'static rustls::SupportedProtocolVersion],
        alpn: &[&[u8]],
    ) -> reqwest::Client {
        https_client(client_tls(&self.ca_path(), versions, alpn, None), self.addr)
    }

    /// A TLS 1.3 client presenting `cert` (a chain and its key), with the given ALPN.
    pub fn client_with_cert(&self, cert: ClientCert, alpn: &[&[u8]]) -> reqwest::Client {
        let cfg = client_tls(
            &self.ca_path(),
            &[&rustls::version::TLS13],
            alpn,
            Some(cert),
        );
        https_client(cfg, self.addr)
    }

    /// A raw TLS 1.3 connection speaking HTTP/1.1 only, for requests reqwest cannot send.
    pub async fn h1_stream(&self) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
        tls_stream(&self.ca_path(), self.addr, b"http/1.1").await
    }

    /// A default client: TLS 1.3, h2 and http/1.1.
    pub fn client(&self) -> reqwest::Client {
        self.client_with(&[&rustls::version::TLS13], &[b"h2", b"http/1.1"])
    }

    /// Sends `sig` (`TERM`, `HUP`, `KILL`…) to the gateway.
    pub fn signal(&self, sig: &str) {
        send_signal(self.child.id(), sig);
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        self.signal("TERM");
        wait_timeout(&mut self.child, Duration::from_secs(40)).expect("gateway exits after SIGTERM")
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `sallyport` binary under test, as a command to add arguments to. Every test that
/// runs the binary starts here.
pub fn sallyport() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sallyport"))
}

/// Runs the `sallyport` CLI on `config` with `args` and returns its output, whatever the
/// exit status.
pub fn cli_output(config: &Path, args: &[&str]) -> std::process::Output {
    sallyport()
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .unwrap()
}

/// Runs the `sallyport` CLI on `config` with `args`; panics unless it succeeds, and returns
/// its standard output.
pub fn cli(config: &Path, args: &[&str]) -> String {
    let out = cli_output(config, args);
    assert!(out.status.success(), "sallyport {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// Sends `sig` to process `pid` (usable from another thread than the `Gateway`'s owner).
pub fn send_signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig} {pid}");
}

pub fn wait_timeout(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        if let Some(s) = child.try_wait().unwrap() {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}
