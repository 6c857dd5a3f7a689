#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Redis presence through the real binary: a gateway on Redis keeps its instance id in
//! `<data_dir>/instance-id` (0600, reused across restarts), leaves the store on a clean
//! stop so the restart joins without waiting, and a second live gateway with the same
//! instance id refuses to start with a clear error. The crash-and-resume test on Redis is
//! in `tests/tus_crash_resume.rs`.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;
use std::time::Duration;

use support::Gateway;
use support::gateway::{sallyport, wait_timeout};
use support::redis::Prefix;

fn redis_extra(prefix: &str, instance_id: Option<&str>) -> String {
    let server = instance_id
        .map(|id| format!("[server]\ninstance_id = \"{id}\"\n\n"))
        .unwrap_or_default();
    format!(
        "{server}[state]\nbackend = \"redis\"\nredis_url = \"{}\"\nredis_prefix = \"{prefix}\"\n\n\
         [log]\nformat = \"text\"\nlevel = \"info\"\n",
        support::redis::url(),
    )
}

/// `line` without its terminal colour sequences (`ESC [ … m`).
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The alive key of `id` under `prefix`, if any.
fn alive_key(prefix: &str, id: &str) -> Option<String> {
    let client = redis::Client::open(support::redis::url()).unwrap();
    let mut con = client
        .get_connection_with_timeout(Duration::from_secs(2))
        .unwrap();
    redis::cmd("GET")
        .arg(format!("{prefix}a:{id}"))
        .query(&mut con)
        .unwrap()
}

#[test]
fn a_clean_stop_leaves_and_the_restart_joins_at_once_as_the_same_instance() {
    if !support::redis::available() {
        return;
    }
    let redis = Prefix::new("presence");
    let tmp = tempfile::tempdir().unwrap();
    let extra = redis_extra(redis.as_str(), None);
    let mut gw = Gateway::start_in(tmp.path(), &extra);
    let id_file = gw.data_dir().join("instance-id");
    let mode = std::fs::metadata(&id_file).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o600, "instance-id is private");
    let id = std::fs::read_to_string(&id_file).unwrap().trim().to_owned();
    assert!(
        alive_key(redis.as_str(), &id).is_some_and(|v| v.starts_with("1:")),
        "the first incarnation is alive"
    );
    assert!(gw.stop().success());
    assert_eq!(alive_key(redis.as_str(), &id), None, "a clean stop leaves");
    drop(gw);

    let gw = Gateway::start_in(tmp.path(), &extra);
    assert_eq!(
        std::fs::read_to_string(&id_file).unwrap().trim(),
        id,
        "the restart is the same instance"
    );
    let joined = gw
        .drain_stderr()
        .into_iter()
        .map(|l| strip_ansi(&l))
        .find(|l| l.contains("joined the Redis state store"))
        .expect("the join is logged");
    assert!(joined.contains("incarnation=2"), "{joined}");
    assert!(joined.contains("waited_ms=0"), "{joined}");
    assert!(
        alive_key(redis.as_str(), &id).is_some_and(|v| v.starts_with("2:")),
        "the second incarnation is alive"
    );
}

/// A start-up that fails after joining (here: the listen address is taken) leaves too, so
/// the next start does not wait for a heartbeat that will never come.
#[test]
fn a_start_up_that_fails_after_joining_leaves() {
    if !support::redis::available() {
        return;
    }
    let redis = Prefix::new("presence");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("sallyport.toml");
    let extra = redis_extra(redis.as_str(), Some("gw-bindfail")).replace(
        "[server]\n",
        &format!("[server]\nlisten = \"{}\"\n", taken.local_addr().unwrap()),
    );
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\n{extra}",
            tmp.path().join("data").display().to_string()
        ),
    )
    .unwrap();
    let out = sallyport()
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("binding"), "{stderr}");
    assert!(stderr.contains("joined the Redis state store"), "{stderr}");
    assert_eq!(alive_key(redis.as_str(), "gw-bindfail"), None, "it left");
}

#[test]
fn a_second_live_gateway_with_the_same_instance_id_refuses_to_start() {
    if !support::redis::available() {
        return;
    }
    let redis = Prefix::new("presence");
    let extra = redis_extra(redis.as_str(), Some("gw-twin"));
    let first = Gateway::start(&extra);

    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("sallyport.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\n{extra}\n{}",
            tmp.path().join("data").display().to_string(),
            support::gateway::clients_toml()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut twin = sallyport()
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .env("SALLYPORT_SERVER__LISTEN", "127.0.0.1:0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = wait_timeout(&mut twin, Duration::from_secs(20));
    if status.is_none() {
        let _ = twin.kill();
        let _ = twin.wait();
        panic!("the twin gateway started (or hung) instead of refusing");
    }
    let out = twin.wait_with_output().unwrap();
    assert!(!out.status.success());
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("another gateway with instance id gw-twin is running"),
        "{text}"
    );
    assert!(text.contains("server.instance_id"), "{text}");
    // The first gateway was not disturbed.
    assert!(
        alive_key(redis.as_str(), "gw-twin").is_some_and(|v| v.starts_with("1:")),
        "the first gateway is still the live incarnation"
    );
    drop(first);
}
