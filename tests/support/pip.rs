//! Pinned Python tools for the tests (tuspy, the moto S3 server): `pip install --target`
//! under cargo's `CARGO_TARGET_TMPDIR`, once per requirements file, never committed.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::data::sha256_hex;

/// The interpreter the tools run on.
pub const PYTHON: &str = "python3";

/// Installs `requirements` into `<target tmp>/<name>-<hash of the file>` (once; later calls
/// find the marker) and returns that directory, for `PYTHONPATH`; or why it could not.
pub fn install(name: &str, requirements: &Path) -> Result<PathBuf, String> {
    // Tests in one binary run on threads of one process: one install at a time (the
    // partial directory is named by the process id).
    static INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    match Command::new(PYTHON).arg("--version").output() {
        Ok(o) if o.status.success() => {}
        _ => return Err(format!("{PYTHON} is not installed")),
    }
    let pins = std::fs::read(requirements).unwrap();
    let tag = &sha256_hex(&pins)[..12];
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{tag}"));
    let done = dir.join(".installed");
    if done.exists() {
        return Ok(dir);
    }
    // Install beside, then rename: a concurrent or interrupted install never leaves a
    // half-filled directory behind the marker.
    let partial = dir.with_extension(format!("partial-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&partial);
    eprintln!("installing {name} into {}", dir.display());
    let out = Command::new(PYTHON)
        .args([
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-input",
            "--quiet",
            "--target",
        ])
        .arg(&partial)
        .arg("-r")
        .arg(requirements)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running pip: {e}"))?;
    if !out.status.success() {
        let _ = std::fs::remove_dir_all(&partial);
        return Err(format!(
            "pip install failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    std::fs::write(partial.join(".installed"), b"").unwrap();
    if std::fs::rename(&partial, &dir).is_err() {
        // Someone else finished first.
        let _ = std::fs::remove_dir_all(&partial);
        assert!(
            done.exists(),
            "{name} directory {} is incomplete",
            dir.display()
        );
    }
    Ok(dir)
}
