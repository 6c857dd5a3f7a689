#![allow(clippy::unwrap_used, clippy::expect_used)]
//! One strict check for every secret file and the config file (`secret::read_private_file`):
//! a FIFO does not hang start-up, a directory gets a clear error, a file too big is refused
//! naming the limit, a config file group or others can write is refused, a secret others
//! can read is refused unless allowed, a file owned by another user is refused, and a
//! symbolic link is followed with every check applied to its target. Each case runs through
//! the real binary (`sallyport check-config`, the same load path as `serve`).

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use sallyport::secret::{FilePolicy, PrivateFileError, read_private_file};
use support::gateway::{sallyport, wait_timeout};

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn mkfifo(path: &Path) {
    let ok = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap()
        .success();
    assert!(ok, "mkfifo {}", path.display());
}

/// Runs `sallyport check-config FILE`; fails the test if it has not ended within 10 s (a
/// FIFO read without `O_NONBLOCK` would wait for a writer forever). Returns success and
/// the output.
fn check_config(file: &Path) -> (bool, String) {
    let mut child = sallyport()
        .arg("check-config")
        .arg(file)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if wait_timeout(&mut child, Duration::from_secs(10)).is_none() {
        let _ = child.kill();
        let _ = child.wait();
        panic!("check-config {} hung", file.display());
    }
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// A config file (0600) in `dir` naming `hash_file` as a client's token hash file.
fn config_with_secret(dir: &Path, hash_file: &Path, allow_open: bool) -> PathBuf {
    let config = dir.join("sallyport.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\nallow_world_readable_secrets = {allow_open}\n\
             [[clients]]\nname = \"ops\"\ntoken_sha256_file = {:?}\nroles = [\"auditor\"]\n",
            dir.join("data").display().to_string(),
            hash_file.display().to_string(),
        ),
    )
    .unwrap();
    chmod(&config, 0o600);
    config
}

fn hash_file(dir: &Path, mode: u32) -> PathBuf {
    let path = dir.join("ops.sha256");
    std::fs::write(&path, "ab".repeat(32)).unwrap();
    chmod(&path, mode);
    path
}

#[test]
fn a_fifo_as_config_or_secret_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("config.fifo");
    mkfifo(&fifo);
    chmod(&fifo, 0o600);
    let (ok, text) = check_config(&fifo);
    assert!(!ok);
    assert!(
        text.contains("is a FIFO (named pipe), not a regular file"),
        "{text}"
    );

    let secret = dir.path().join("hash.fifo");
    mkfifo(&secret);
    chmod(&secret, 0o600);
    let (ok, text) = check_config(&config_with_secret(dir.path(), &secret, false));
    assert!(!ok);
    assert!(text.contains("hash.fifo is a FIFO"), "{text}");
}

#[test]
fn a_directory_gets_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("conf.d");
    std::fs::create_dir(&sub).unwrap();
    chmod(&sub, 0o700);
    let (ok, text) = check_config(&sub);
    assert!(!ok);
    assert!(
        text.contains("config file") && text.contains("is a directory, not a regular file"),
        "{text}"
    );
    let err = read_private_file(&sub, FilePolicy::secret(false)).unwrap_err();
    assert!(matches!(err, PrivateFileError::NotRegular { .. }), "{err}");
}

#[test]
fn a_file_too_big_is_refused_naming_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("big.toml");
    // Valid TOML (a comment) one byte past 4 MiB.
    let mut text = vec![b'#'; (4 << 20) + 1];
    text[(4 << 20) - 1] = b'\n';
    std::fs::write(&config, &text).unwrap();
    chmod(&config, 0o600);
    let (ok, out) = check_config(&config);
    assert!(!ok, "{out}");
    assert!(
        out.contains("larger than the limit of 4194304 bytes"),
        "{out}"
    );

    let secret = dir.path().join("ops.sha256");
    std::fs::write(&secret, vec![b'a'; (1 << 20) + 1]).unwrap();
    chmod(&secret, 0o600);
    let (ok, out) = check_config(&config_with_secret(dir.path(), &secret, false));
    assert!(!ok);
    assert!(
        out.contains("larger than the limit of 1048576 bytes"),
        "{out}"
    );
    // Never the content.
    assert!(!out.contains("aaaa"), "{out}");
}

#[test]
fn a_config_file_writable_by_group_is_refused_and_readable_is_fine() {
    let dir = tempfile::tempdir().unwrap();
    let hash = hash_file(dir.path(), 0o600);
    let config = config_with_secret(dir.path(), &hash, false);
    chmod(&config, 0o664);
    let (ok, text) = check_config(&config);
    assert!(!ok);
    assert!(
        text.contains("is writable by group or others (mode 664)") && text.contains("chmod go-w"),
        "{text}"
    );
    chmod(&config, 0o644);
    let (ok, text) = check_config(&config);
    assert!(ok, "{text}");
}

#[test]
fn a_secret_readable_by_others_is_refused_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let hash = hash_file(dir.path(), 0o604);
    let (ok, text) = check_config(&config_with_secret(dir.path(), &hash, false));
    assert!(!ok);
    assert!(
        text.contains("is readable by group or others (mode 604)") && text.contains("chmod 600"),
        "{text}"
    );
    assert!(
        !text.contains(&"ab".repeat(32)),
        "never the content: {text}"
    );
    let (ok, text) = check_config(&config_with_secret(dir.path(), &hash, true));
    assert!(ok, "{text}");
    // Writable by others is refused even when readable is allowed.
    chmod(&hash, 0o606);
    let (ok, text) = check_config(&config_with_secret(dir.path(), &hash, true));
    assert!(!ok);
    assert!(text.contains("is writable by group or others"), "{text}");
}

#[test]
fn a_file_owned_by_another_user_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let hash = hash_file(dir.path(), 0o600);
    let config = config_with_secret(dir.path(), &hash, false);
    // Only root can give a file away; as another user, make one we do not own instead.
    let euid = rustix::process::geteuid().as_raw();
    if euid != 0 {
        eprintln!("NOTICE: not root; the wrong-owner case needs chown and is skipped");
        return;
    }
    std::os::unix::fs::chown(&hash, Some(65534), None).unwrap();
    let (ok, text) = check_config(&config);
    assert!(!ok);
    assert!(text.contains("is owned by uid 65534"), "{text}");
    std::os::unix::fs::chown(&config, Some(65534), None).unwrap();
    std::os::unix::fs::chown(&hash, Some(0), None).unwrap();
    let (ok, text) = check_config(&config);
    assert!(!ok);
    assert!(
        text.contains("config file") && text.contains("is owned by uid 65534"),
        "{text}"
    );
}

/// Symbolic links are followed (container platforms mount secrets through them) and the
/// checks apply to the file the link points at.
#[test]
fn a_symlink_is_followed_and_its_target_checked() {
    let dir = tempfile::tempdir().unwrap();
    let target = hash_file(dir.path(), 0o600);
    let link = dir.path().join("linked.sha256");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let config = config_with_secret(dir.path(), &link, false);
    let (ok, text) = check_config(&config);
    assert!(ok, "{text}");
    chmod(&target, 0o644);
    let (ok, text) = check_config(&config);
    assert!(!ok);
    assert!(text.contains("readable by group or others"), "{text}");
}
