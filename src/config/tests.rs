use std::collections::BTreeMap;

use super::*;

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn defaults_need_no_file() {
    let c = Config::from_toml("", &env(&[])).unwrap();
    assert_eq!(c.server.listen.to_string(), "127.0.0.1:8443");
    assert!(!c.server.danger_plaintext_http);
    assert_eq!(c.data_dir, PathBuf::from("sallyport-data"));
    assert!(matches!(c.state, StateSettings::Embedded { .. }));
    assert_eq!(c.tls.certificate, CertSource::Development);
    assert_eq!(c.tls.client_auth, ClientAuth::Off);
    assert!(c.log.json);
}

#[test]
fn unknown_keys_are_named() {
    for (text, key) in [
        ("lisen = 1", "lisen"),
        ("[server]\nlisten_addr = \"127.0.0.1:1\"", "listen_addr"),
        ("[tls]\ncert = \"x\"", "cert"),
        (
            "[[clients]]\nname = \"a\"\nroles = []\ntoken = \"x\"",
            "token",
        ),
        ("[nosuchsection]\na = 1", "nosuchsection"),
    ] {
        let err = Config::from_toml(text, &env(&[])).unwrap_err().to_string();
        assert!(err.contains(key), "{text:?} -> {err}");
    }
}

#[test]
fn invalid_values_name_the_key() {
    for (text, key) in [
        ("[server]\nlisten = \"localhost\"", "server.listen"),
        (
            "[server]\nmax_body_bytes = \"1 MiB\"",
            "server.max_body_bytes",
        ),
        (
            "[server]\nheader_read_timeout = \"0s\"",
            "server.header_read_timeout",
        ),
        ("[tls]\ncert_file = \"a.pem\"", "tls.key_file"),
        (
            "[tls]\nclient_auth = \"maybe\"\nclient_ca_file = \"ca.pem\"",
            "tls.client_auth",
        ),
        ("[tls]\nclient_auth = \"required\"", "tls.client_ca_file"),
        ("[state]\nbackend = \"postgres\"", "state.backend"),
        (
            "[state]\nbackend = \"redis\"\nredis_url = \"http://x\"",
            "state.redis_url",
        ),
        ("[log]\nformat = \"xml\"", "log.format"),
        (
            "[[clients]]\nname = \"a\"\ntoken_sha256 = \"abc\"\nroles = [\"uploader\"]",
            "clients[0].token_sha256",
        ),
        (
            "[[clients]]\nname = \"a\"\ntoken_sha256 = \"0000000000000000000000000000000000000000000000000000000000000000\"\nroles = [\"root\"]",
            "clients[0].roles",
        ),
    ] {
        let err = Config::from_toml(text, &env(&[])).unwrap_err().to_string();
        assert!(err.contains(key), "{text:?} -> {err}");
    }
}

#[test]
fn environment_overrides_apply_and_are_checked() {
    let c = Config::from_toml(
        "[server]\nlisten = \"127.0.0.1:1\"",
        &env(&[
            ("SALLYPORT_SERVER__LISTEN", "0.0.0.0:9443"),
            ("SALLYPORT_SERVER__DANGER_PLAINTEXT_HTTP", "true"),
            ("SALLYPORT_DATA_DIR", "/srv/sp"),
            ("SALLYPORT_CONFIG", "/ignored.toml"),
        ]),
    )
    .unwrap();
    assert_eq!(c.server.listen.to_string(), "0.0.0.0:9443");
    assert!(c.server.danger_plaintext_http);
    assert_eq!(c.data_dir, PathBuf::from("/srv/sp"));
    assert_eq!(c.overridden_by_env.len(), 3);

    let err = Config::from_toml("", &env(&[("SALLYPORT_SERVER__LISEN", "x")]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("lisen"), "{err}");
    let err = Config::from_toml("", &env(&[("SALLYPORT_SERVER____X", "1")]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("SALLYPORT_SERVER____X"), "{err}");
}

#[test]
fn redis_url_never_appears_in_errors_or_debug() {
    let err = Config::from_toml(
        "[state]\nbackend = \"redis\"\nredis_url = \"http://:hunter2@h\"",
        &env(&[]),
    )
    .unwrap_err()
    .to_string();
    assert!(!err.contains("hunter2"), "{err}");
    let c = Config::from_toml(
        "[state]\nbackend = \"redis\"\nredis_url = \"redis://:hunter2@h\"",
        &env(&[]),
    )
    .unwrap();
    assert!(!format!("{c:?}").contains("hunter2"));
}

#[test]
fn secret_files_are_permission_checked() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("hash");
    std::fs::write(&f, "00".repeat(32)).unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
    let text = format!(
        "[[clients]]\nname = \"a\"\ntoken_sha256_file = {:?}\nroles = [\"auditor\"]",
        f.display().to_string()
    );
    let err = Config::from_toml(&text, &env(&[])).unwrap_err().to_string();
    assert!(err.contains("readable by group or others"), "{err}");
    let open = format!("allow_world_readable_secrets = true\n{text}");
    assert!(Config::from_toml(&open, &env(&[])).is_ok());
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
    let c = Config::from_toml(&text, &env(&[])).unwrap();
    assert_eq!(c.clients.clients().len(), 1);
}

#[test]
fn syntax_errors_never_quote_the_source_line() {
    let text = "[keys]\nprovider = \"static\"\nstatic_kek_id = \"prod\"\nstatic_current_version = 1\n[[keys.static_keks]]\nversion = 1\nkey = \"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTMyYg==\"\nbogus = 1\n";
    let err = Config::from_toml(text, &env(&[])).unwrap_err().to_string();
    assert!(err.contains("bogus"), "{err}");
    assert!(err.contains("line 8"), "{err}");
    assert!(!err.contains("c2VjcmV0"), "{err}");
}
