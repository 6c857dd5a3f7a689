//! The real Python tus client: tuspy, pinned in `tests/clients/requirements.txt`, installed
//! with `pip install --target` under cargo's `CARGO_TARGET_TMPDIR` (`pip`, once per
//! requirements file), and driven through `tests/clients/tuspy_upload.py`.
//!
//! Not here: what a test does with the events (`tus_real_client` streams them and kills the
//! client part-way; `batches_e2e` runs it to the end with [`upload`]).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The client script.
pub const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/tuspy_upload.py");
/// The pinned requirements.
pub const REQUIREMENTS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/clients/requirements.txt"
);

/// Python with tuspy importable: (interpreter, PYTHONPATH), or why not. Callers pass this
/// through `ci::require_or_skip`.
pub fn install() -> Result<(String, PathBuf), String> {
    let dir = super::pip::install("tuspy", Path::new(REQUIREMENTS))?;
    Ok((super::pip::PYTHON.to_owned(), dir))
}

/// An installed tuspy.
#[derive(Debug, Clone)]
pub struct Tuspy {
    pub python: String,
    pub pythonpath: PathBuf,
}

/// How one run of the client ended.
#[derive(Debug)]
pub enum Outcome {
    /// Uploaded: the upload URL.
    Done { url: String },
    /// The server refused a request: its status and body.
    Refused { status: u16, body: String },
}

impl Tuspy {
    /// Installs tuspy, or skips (fails under `CI`) when it cannot be: `None` means return.
    pub fn require() -> Option<Tuspy> {
        let (python, pythonpath) = super::ci::require_or_skip("tuspy", install())?;
        Some(Tuspy { python, pythonpath })
    }

    /// Uploads `file` to `endpoint` to the end, in `chunk`-byte PATCHes (a fresh URL
    /// storage each time), with `metadata` pairs beside `filename`. Panics when the client
    /// fails for any reason other than a refusal by the server.
    pub fn upload(
        &self,
        endpoint: &str,
        cacert: &Path,
        token: &str,
        file: &Path,
        chunk: u64,
        metadata: &[(&str, &str)],
    ) -> Outcome {
        let storage = tempfile::NamedTempFile::new_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let mut cmd = Command::new(&self.python);
        cmd.arg(SCRIPT)
            .arg("--endpoint")
            .arg(endpoint)
            .arg("--file")
            .arg(file)
            .arg("--token")
            .arg(token)
            .arg("--cacert")
            .arg(cacert)
            .arg("--storage")
            .arg(storage.path())
            .arg("--chunk-size")
            .arg(chunk.to_string());
        for (k, v) in metadata {
            cmd.arg("--metadata").arg(format!("{k}={v}"));
        }
        let out = cmd
            .env("PYTHONPATH", &self.pythonpath)
            .env("PYTHONNOUSERSITE", "1")
            .stdin(Stdio::null())
            .output()
            .expect("run the tuspy client");
        let stdout = String::from_utf8(out.stdout).unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last: serde_json::Value = stdout
            .lines()
            .last()
            .map(|l| serde_json::from_str(l).unwrap())
            .unwrap_or_else(|| panic!("tuspy printed nothing; stderr:\n{stderr}"));
        match (out.status.code(), last["event"].as_str()) {
            (Some(0), Some("done")) => Outcome::Done {
                url: last["url"].as_str().unwrap().to_owned(),
            },
            (Some(3), Some("refused")) => Outcome::Refused {
                status: last["status"].as_u64().unwrap() as u16,
                body: last["body"].as_str().unwrap_or_default().to_owned(),
            },
            (code, _) => panic!("tuspy exited {code:?} after {last}; stderr:\n{stderr}"),
        }
    }
}
