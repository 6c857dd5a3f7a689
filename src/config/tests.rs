use std::collections::BTreeMap;

use std::time::Duration;

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
    assert_eq!(c.audit.checkpoint_every, 1000);
    assert_eq!(
        c.audit.checkpoint_interval,
        std::time::Duration::from_secs(60)
    );
    assert_eq!(c.audit.checkpoint_dir, None);
    assert_eq!(
        c.audit.checkpoint_bucket, None,
        "a local blob store: no bucket"
    );
    assert!(c.audit.checkpoint_key.ends_with("audit-checkpoint.key"));
    assert_eq!(c.audit.store, crate::config::AuditStore::Journal);
    assert_eq!(c.audit.segment_bytes, ByteSize(64 << 20));
    let redis = Config::from_toml(
        "[state]\nbackend = \"redis\"\nredis_url = \"redis://h\"",
        &env(&[]),
    )
    .unwrap();
    assert_eq!(redis.audit.store, crate::config::AuditStore::State);
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
        ("[audit]\ncheckpoint_every = 0", "audit.checkpoint_every"),
        (
            "[audit]\ncheckpoint_interval = \"0s\"",
            "audit.checkpoint_interval",
        ),
        (
            "[audit]\ncheckpoint_interval = \"2days\"",
            "audit.checkpoint_interval",
        ),
        ("[audit]\ncheckpoint_dir = \"\"", "audit.checkpoint_dir"),
        ("[audit]\ncheckpoint_key = \"\"", "audit.checkpoint_key"),
        ("[audit]\nstore = \"redb\"", "audit.store"),
        (
            "[state]\nbackend = \"redis\"\nredis_url = \"redis://h\"\n[audit]\nstore = \"journal\"",
            "audit.store",
        ),
        ("[audit]\nsegment_bytes = \"1KiB\"", "audit.segment_bytes"),
        ("[audit]\nsegment_bytes = \"2GiB\"", "audit.segment_bytes"),
        ("[audit]\nsegment_bytes = \"lots\"", "audit.segment_bytes"),
        (
            "[uploads]\nmin_body_rate = \"2GiB\"",
            "uploads.min_body_rate",
        ),
        (
            "[uploads]\nmin_body_rate = \"fast\"",
            "uploads.min_body_rate",
        ),
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
fn upload_quota_and_chunk_cap_defaults_and_bounds() {
    let c = Config::from_toml("", &env(&[])).unwrap();
    assert_eq!(c.uploads.limits.max_chunks, 10_000);
    assert_eq!(c.uploads.max_bytes_per_principal, 1 << 40);
    let c = Config::from_toml(
        "[uploads]\nmax_chunks_per_upload = 100\nmax_bytes_per_principal = \"10KiB\"",
        &env(&[]),
    )
    .unwrap();
    assert_eq!(c.uploads.limits.max_chunks, 100);
    assert_eq!(c.uploads.max_bytes_per_principal, 10 * 1024);
    for (text, key) in [
        (
            "[uploads]\nmax_chunks_per_upload = 0",
            "uploads.max_chunks_per_upload",
        ),
        (
            "[uploads]\nmax_chunks_per_upload = 1000001",
            "uploads.max_chunks_per_upload",
        ),
        (
            "[uploads]\nmax_bytes_per_principal = \"1000B\"",
            "uploads.max_bytes_per_principal",
        ),
        (
            "[uploads]\nmax_bytes_per_principal = \"lots\"",
            "uploads.max_bytes_per_principal",
        ),
        // Counted in one state-store page (at most 10000 items).
        (
            "[uploads]\nmax_open_per_principal = 10001",
            "uploads.max_open_per_principal",
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
fn an_upload_base_path_may_not_shadow_another_route() {
    for bad in [
        "/",
        "/v1/",
        "/v1/uploads/",
        "/d/",
        "/healthz/",
        "/metrics/",
        "/fhir/",
        "/.well-known/",
    ] {
        let text = format!("[uploads]\nbase_path = {bad:?}");
        let err = Config::from_toml(&text, &env(&[])).unwrap_err().to_string();
        assert!(
            err.contains("uploads.base_path") && err.contains("shadow"),
            "{bad} -> {err}"
        );
    }
    for good in ["/files/", "/tus/uploads/", "/v2/files/", "/data/"] {
        let text = format!("[uploads]\nbase_path = {good:?}");
        let c = Config::from_toml(&text, &env(&[])).unwrap();
        assert_eq!(c.uploads.base.as_str(), good);
    }
}

#[test]
fn a_config_file_writable_by_others_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("sallyport.toml");
    std::fs::write(&f, "[server]\nlisten = \"127.0.0.1:8443\"\n").unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o666)).unwrap();
    let err = Config::load(Some(&f), &env(&[])).unwrap_err();
    assert!(
        matches!(&err, ConfigError::File(e) if e.mode() == Some(0o666)),
        "{err}"
    );
    assert!(err.to_string().contains("chmod go-w"), "{err}");
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(Config::load(Some(&f), &env(&[])).is_ok());
}

#[test]
fn secret_files_writable_by_others_are_refused_even_when_readable_is_allowed() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("hash");
    std::fs::write(&f, "00".repeat(32)).unwrap();
    let text = format!(
        "allow_world_readable_secrets = true\n[[clients]]\nname = \"a\"\ntoken_sha256_file = {:?}\nroles = [\"auditor\"]",
        f.display().to_string()
    );
    for mode in [0o620, 0o602, 0o666] {
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(mode)).unwrap();
        let err = Config::from_toml(&text, &env(&[])).unwrap_err().to_string();
        assert!(
            err.contains("writable by group or others"),
            "{mode:o}: {err}"
        );
    }
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(Config::from_toml(&text, &env(&[])).is_ok());
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

/// A profile with every key written (valid), `extra` lines appended to the table.
fn profile_toml(extra: &str) -> String {
    format!(
        "[[profiles]]\nname = \"bulk\"\nresources = [\"Patient\", \"Observation\"]\n\
         purpose_of_use = [\"TREAT\"]\ndelivery = \"signed_url\"\nlink_ttl = \"7days\"\n\
         checksum = \"sha256\"\nencryption_at_rest = true\nprovenance_required = true\n\
         on_validation_failure = \"quarantine\"\nretention = \"90days\"\n{extra}"
    )
}

#[test]
fn batches_defaults_and_written_values() {
    let c = Config::from_toml("", &env(&[])).unwrap();
    let d = crate::batch::BatchSettings::default();
    assert!(!c.batches.four_eyes);
    assert_eq!(c.batches.open_ttl, d.open_ttl);
    assert_eq!(c.batches.retention, Duration::from_secs(30 * 86_400));
    assert_eq!(c.batches.limits, d.limits);
    assert_eq!(c.batches.max_request_bytes, (1 << 20) + (64 << 10) + 4096);
    assert!(c.batches.profiles.is_empty());

    let text = format!(
        "[batches]\nfour_eyes = true\nopen_ttl = \"1h\"\nretention = \"2days\"\n\
         sweep_interval = \"5s\"\nmax_manifest_bytes = \"2MiB\"\nmax_provenance_bytes = \"8KiB\"\n\
         max_request_bytes = \"3MiB\"\nmax_members = 50\nndjson_max_line_bytes = \"1KiB\"\n\n{}",
        profile_toml("")
    );
    let c = Config::from_toml(&text, &env(&[])).unwrap();
    let b = &c.batches;
    assert!(b.four_eyes);
    assert_eq!(b.open_ttl, Duration::from_secs(3600));
    assert_eq!(b.retention, Duration::from_secs(2 * 86_400));
    assert_eq!(b.sweep_interval, Duration::from_secs(5));
    assert_eq!(b.limits.max_manifest_bytes, 2 << 20);
    assert_eq!(b.limits.max_provenance_bytes, 8 << 10);
    assert_eq!(b.limits.max_members, 50);
    assert_eq!(b.max_request_bytes, 3 << 20);
    assert_eq!(b.ndjson.max_line_bytes, 1024);
    let p = b.profile("bulk").unwrap();
    assert_eq!(
        p.resources.as_deref(),
        Some(&["Patient".to_owned(), "Observation".to_owned()][..])
    );
    assert_eq!(p.purpose_of_use.as_deref(), Some(&["TREAT".to_owned()][..]));
    assert_eq!(p.link_ttl, Duration::from_secs(7 * 86_400));
    assert_eq!(p.retention, Some(Duration::from_secs(90 * 86_400)));
    assert!(p.provenance_required);
    assert!(b.profile("other").is_none());
}

#[test]
fn a_profile_left_to_defaults_allows_any_and_takes_the_link_default() {
    let c = Config::from_toml(
        "[links]\ndefault_ttl = \"2h\"\n[[profiles]]\nname = \"open\"\n\
         [[profiles]]\nname = \"star\"\nresources = [\"*\"]\npurpose_of_use = [\"*\"]\n",
        &env(&[]),
    )
    .unwrap();
    for name in ["open", "star"] {
        let p = c.batches.profile(name).unwrap();
        assert_eq!(p.resources, None, "{name}");
        assert_eq!(p.purpose_of_use, None, "{name}");
        assert_eq!(p.link_ttl, Duration::from_secs(7200), "{name}");
        assert_eq!(p.retention, None, "{name}");
        assert!(!p.provenance_required, "{name}");
    }
    let raw = crate::batch::config::RawProfile {
        name: Some("x".into()),
        link_ttl: Some("1h".into()),
        ..Default::default()
    };
    assert_eq!(
        raw.unset(),
        [
            "resources",
            "purpose_of_use",
            "delivery",
            "checksum",
            "encryption_at_rest",
            "provenance_required",
            "on_validation_failure",
            "retention"
        ]
    );
}

#[test]
fn batches_env_overrides_apply() {
    let c = Config::from_toml(
        "",
        &env(&[
            ("SALLYPORT_BATCHES__FOUR_EYES", "true"),
            ("SALLYPORT_BATCHES__OPEN_TTL", "2h"),
        ]),
    )
    .unwrap();
    assert!(c.batches.four_eyes);
    assert_eq!(c.batches.open_ttl, Duration::from_secs(7200));
}

#[test]
fn every_batches_refusal_names_its_key() {
    for (text, key, says) in [
        ("[batches]\nopen_ttl = \"59s\"", "batches.open_ttl", "1m"),
        (
            "[batches]\nopen_ttl = \"400days\"",
            "batches.open_ttl",
            "366days",
        ),
        (
            "[batches]\nopen_ttl = \"soon\"",
            "batches.open_ttl",
            "not a duration",
        ),
        ("[batches]\nretention = \"59m\"", "batches.retention", "1h"),
        (
            "[batches]\nretention = \"11years\"",
            "batches.retention",
            "10 years",
        ),
        (
            "[batches]\nsweep_interval = \"0s\"",
            "batches.sweep_interval",
            "1s to 1h",
        ),
        (
            "[batches]\nsweep_interval = \"2h\"",
            "batches.sweep_interval",
            "1s to 1h",
        ),
        (
            "[batches]\nmax_manifest_bytes = \"1000\"",
            "batches.max_manifest_bytes",
            "1KiB",
        ),
        (
            "[batches]\nmax_manifest_bytes = \"65MiB\"",
            "batches.max_manifest_bytes",
            "64MiB",
        ),
        (
            "[batches]\nmax_manifest_bytes = \"1 MiB\"",
            "batches.max_manifest_bytes",
            "unknown unit",
        ),
        (
            "[batches]\nmax_provenance_bytes = \"17MiB\"",
            "batches.max_provenance_bytes",
            "16MiB",
        ),
        (
            "[batches]\nmax_request_bytes = \"1MiB\"",
            "batches.max_request_bytes",
            "at least",
        ),
        (
            "[batches]\nmax_request_bytes = \"1GiB\"",
            "batches.max_request_bytes",
            "64MiB more",
        ),
        (
            "[batches]\nmax_members = 0",
            "batches.max_members",
            "1..=10000",
        ),
        (
            "[batches]\nmax_members = 10001",
            "batches.max_members",
            "1..=10000",
        ),
        (
            "[batches]\nndjson_max_line_bytes = \"1023\"",
            "batches.ndjson_max_line_bytes",
            "1KiB",
        ),
        (
            "[batches]\nndjson_max_line_bytes = \"1GiB\"",
            "batches.ndjson_max_line_bytes",
            "256MiB",
        ),
    ] {
        let err = Config::from_toml(text, &env(&[])).unwrap_err().to_string();
        assert!(err.contains(&format!("`{key}`")), "{text:?} -> {err}");
        assert!(err.contains(says), "{text:?} -> {err}");
    }
    let err = Config::from_toml("[batches]\nfour_eye = true", &env(&[]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("four_eye"), "{err}");
}

#[test]
fn every_profile_refusal_names_its_key() {
    let one = |k: &str, v: &str| format!("[[profiles]]\nname = \"bulk\"\n{k} = {v}\n");
    for (text, key, says) in [
        (
            "[[profiles]]\nresources = [\"Patient\"]\n".to_owned(),
            "profiles[0].name",
            "needs a name",
        ),
        (
            "[[profiles]]\nname = \"Bulk\"\n".to_owned(),
            "profiles[0].name",
            "not a profile name",
        ),
        (
            "[[profiles]]\nname = \"-bulk\"\n".to_owned(),
            "profiles[0].name",
            "not a profile name",
        ),
        (
            "[[profiles]]\nname = \"\"\n".to_owned(),
            "profiles[0].name",
            "not a profile name",
        ),
        (
            format!("[[profiles]]\nname = \"{}\"\n", "a".repeat(65)),
            "profiles[0].name",
            "1-64",
        ),
        (
            format!("{}[[profiles]]\nname = \"bulk\"\n", profile_toml("")),
            "profiles[1].name",
            "configured twice",
        ),
        (
            one("resources", "[]"),
            "profiles[bulk].resources",
            "is empty",
        ),
        (
            one("resources", "[\"patient\"]"),
            "profiles[bulk].resources",
            "\"patient\" is not valid",
        ),
        (
            one("resources", "[\"Patient\", \"Patient\"]"),
            "profiles[bulk].resources",
            "twice",
        ),
        (
            one("resources", "[\"Patient\", \"*\"]"),
            "profiles[bulk].resources",
            "stand alone",
        ),
        (
            one("purpose_of_use", "[]"),
            "profiles[bulk].purpose_of_use",
            "is empty",
        ),
        (
            one("purpose_of_use", "[\"TREAT NOW\"]"),
            "profiles[bulk].purpose_of_use",
            "not valid",
        ),
        (
            one("purpose_of_use", "[\"TREAT\", \"TREAT\"]"),
            "profiles[bulk].purpose_of_use",
            "twice",
        ),
        (
            one("delivery", "\"email\""),
            "profiles[bulk].delivery",
            "\"signed_url\"",
        ),
        (
            one("link_ttl", "\"31days\""),
            "profiles[bulk].link_ttl",
            "links.max_ttl (30days)",
        ),
        (
            one("link_ttl", "\"0s\""),
            "profiles[bulk].link_ttl",
            "from 1s",
        ),
        (
            one("link_ttl", "\"a week\""),
            "profiles[bulk].link_ttl",
            "not a duration",
        ),
        (
            one("checksum", "\"md5\""),
            "profiles[bulk].checksum",
            "\"sha256\"",
        ),
        (
            one("encryption_at_rest", "false"),
            "profiles[bulk].encryption_at_rest",
            "encrypts every stored byte",
        ),
        (
            one("on_validation_failure", "\"release\""),
            "profiles[bulk].on_validation_failure",
            "fail closed",
        ),
        (
            one("retention", "\"30m\""),
            "profiles[bulk].retention",
            "1h",
        ),
    ] {
        let err = Config::from_toml(&text, &env(&[])).unwrap_err().to_string();
        assert!(err.contains(&format!("`{key}`")), "{text:?} -> {err}");
        assert!(err.contains(says), "{text:?} -> {err}");
    }
    // The link limit is the configured one.
    let text = format!(
        "[links]\nmax_ttl = \"1day\"\n{}",
        one("link_ttl", "\"2days\"")
    );
    let err = Config::from_toml(&text, &env(&[])).unwrap_err().to_string();
    assert!(err.contains("links.max_ttl (1day)"), "{err}");
    // Unknown keys are named.
    let err = Config::from_toml(&one("encrypt", "true"), &env(&[]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("encrypt"), "{err}");
    let err = Config::from_toml(&one("encryption_at_rest", "\"yes\""), &env(&[]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("line 3"), "{err}");
}

#[test]
fn balancer_settings_are_off_by_default_and_validated() {
    let c = Config::from_toml("", &env(&[])).unwrap();
    assert!(c.server.proxy_protocol_from.is_empty());
    assert!(c.server.trusted_proxies.is_empty());
    assert_eq!(
        c.server.forwarded_header,
        crate::proxy::forwarded::ForwardedHeader::XForwardedFor
    );
    assert_eq!(c.server.proxy_protocol_timeout, Duration::from_secs(5));

    let c = Config::from_toml(
        "[server]\nproxy_protocol_from = [\"10.0.1.0/24\"]\ntrusted_proxies = [\"10.0.2.7\", \"2001:db8::/32\"]\nforwarded_header = \"forwarded\"\nproxy_protocol_timeout = \"2s\"",
        &env(&[]),
    )
    .unwrap();
    assert!(
        c.server
            .proxy_protocol_from
            .contains("10.0.1.9".parse().unwrap())
    );
    assert!(
        c.server
            .trusted_proxies
            .contains("10.0.2.7".parse().unwrap())
    );
    assert!(
        !c.server
            .trusted_proxies
            .contains("10.0.2.8".parse().unwrap())
    );
    assert_eq!(c.server.proxy_protocol_timeout, Duration::from_secs(2));

    for (text, key, detail) in [
        (
            "[server]\ntrusted_proxies = [\"10.0.0.1/8\"]",
            "server.trusted_proxies",
            "10.0.0.1/8",
        ),
        (
            "[server]\nproxy_protocol_from = [\"balancer\"]",
            "server.proxy_protocol_from",
            "balancer",
        ),
        (
            "[server]\nforwarded_header = \"x-real-ip\"",
            "server.forwarded_header",
            "x-real-ip",
        ),
        (
            "[server]\nproxy_protocol_timeout = \"20s\"",
            "server.proxy_protocol_timeout",
            "header_read_timeout",
        ),
    ] {
        let err = Config::from_toml(text, &env(&[])).unwrap_err().to_string();
        assert!(err.contains(key), "{text:?} -> {err}");
        assert!(err.contains(detail), "{text:?} -> {err}");
    }
    // The environment can set the lists too.
    let c = Config::from_toml(
        "",
        &env(&[("SALLYPORT_SERVER__TRUSTED_PROXIES", "[\"10.0.0.0/8\"]")]),
    )
    .unwrap();
    assert!(
        c.server
            .trusted_proxies
            .contains("10.9.9.9".parse().unwrap())
    );
}

#[test]
fn a_log_level_with_a_field_regex_is_not_compiled() {
    // Found by fuzzing (fuzz/, target `config`): a field-value regex in a directive compiles
    // to a dense DFA, exponential in the regex (this one took minutes). Values now match
    // exactly, so checking the config stays instant.
    let started = std::time::Instant::now();
    let text = "[log]\nlevel = \"[{f=.*a.................}]=info\"\n";
    let config = Config::from_toml(text, &env(&[])).expect("a valid directive");
    assert!(log_filter(&config.log.level).is_ok());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn server_instance_id_is_validated() {
    let ok = Config::from_toml("[server]\ninstance_id = \"gw-1.eu_west\"\n", &env(&[])).unwrap();
    assert_eq!(
        ok.server.instance_id.as_ref().map(|id| id.as_str()),
        Some("gw-1.eu_west")
    );
    assert!(
        Config::from_toml("", &env(&[]))
            .unwrap()
            .server
            .instance_id
            .is_none()
    );
    for bad in ["", "gw 1", "gw:1", "a/b", &"x".repeat(65)] {
        let err = Config::from_toml(&format!("[server]\ninstance_id = {bad:?}\n"), &env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("server.instance_id"), "{bad:?}: {err}");
    }
}

#[test]
fn smart_clients_are_validated_naming_the_key() {
    const X: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let client = |jwk_extra: &str, rest: &str| {
        format!(
            "[smart]\npublic_base_url = \"https://gw.example\"\n\n[[smart.clients]]\n\
             client_id = \"bulk\"\nprincipal = \"payer-a\"\nscopes = [\"system/*.read\"]\n{rest}\
             jwks = '{{\"keys\":[{{\"kty\":\"EC\",\"crv\":\"P-384\",\"x\":\"{X}\",\"y\":\"{X}\"{jwk_extra}}}]}}'\n"
        )
    };
    let ok = Config::from_toml(&client(r#","kid":"k1""#, ""), &env(&[])).unwrap();
    assert_eq!(
        ok.smart.token_url().as_deref(),
        Some("https://gw.example/auth/token")
    );
    assert_eq!(ok.smart.access_token_lifetime, Duration::from_secs(300));
    let err = |text: &str| Config::from_toml(text, &env(&[])).unwrap_err().to_string();
    let e = err(&client("", ""));
    assert!(
        e.contains("smart.clients[0].jwks") && e.contains("no kid"),
        "{e}"
    );
    let e = err(&client(r#","kid":"k1","alg":"ES256""#, ""));
    assert!(
        e.contains("smart.clients[0].jwks") && e.contains("not supported"),
        "{e}"
    );
    let e = err(&client(r#","kid":"k1","d":"AAAA""#, ""));
    assert!(e.contains("private key material"), "{e}");
    let e = err(&client(r#","kid":"k1""#, "scopes2 = 1\n"));
    assert!(e.contains("scopes2"), "unknown keys are named: {e}");
    let e = err(&client(r#","kid":"k1""#, "").replace("system/*.read", "user/*.read"));
    assert!(e.contains("smart.clients[0].scopes"), "{e}");
    let e = err(
        &client(r#","kid":"k1""#, "").replace("public_base_url = \"https://gw.example\"\n", "")
    );
    assert!(e.contains("smart.public_base_url"), "{e}");
    let e = err("[smart]\naccess_token_lifetime = \"10m\"\n");
    assert!(e.contains("smart.access_token_lifetime"), "{e}");
}

fn s3_config(extra: &str) -> Result<Config, ConfigError> {
    Config::from_toml(
        &format!("[blob]\nbackend = \"s3\"\nbucket = \"sallyport-blobs\"\n{extra}"),
        &env(&[]),
    )
}

fn s3_settings(c: &Config) -> &crate::blob::s3::settings::S3Settings {
    match &c.blob {
        BlobSettings::S3(s3) => s3,
        other => panic!("not s3: {other:?}"),
    }
}

#[test]
fn allow_unconditional_create_is_an_s3_setting_off_by_default() {
    assert!(!s3_settings(&s3_config("").unwrap()).allow_unconditional_create);
    let c = s3_config("allow_unconditional_create = true\n").unwrap();
    assert!(s3_settings(&c).allow_unconditional_create);
    let e = Config::from_toml("[blob]\nallow_unconditional_create = true\n", &env(&[]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("allow_unconditional_create"), "{e}");
}

#[test]
fn audit_checkpoints_go_to_the_blob_bucket_another_bucket_or_none() {
    let bucket = |extra: &str| s3_config(extra).map(|c| c.audit.checkpoint_bucket);
    assert_eq!(bucket("").unwrap().as_deref(), Some("sallyport-blobs"));
    assert_eq!(
        bucket("[audit]\ncheckpoint_bucket = \"audit-locked\"\n")
            .unwrap()
            .as_deref(),
        Some("audit-locked")
    );
    assert_eq!(
        bucket("[audit]\ncheckpoint_bucket = \"off\"\n").unwrap(),
        None
    );
    for bad in ["", "Audit", "a", "-audit", "audit_locked"] {
        let e = bucket(&format!("[audit]\ncheckpoint_bucket = {bad:?}\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("audit.checkpoint_bucket"), "{bad:?}: {e}");
    }
    // On local disk there is no bucket to reach.
    let e = Config::from_toml("[audit]\ncheckpoint_bucket = \"audit\"\n", &env(&[]))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("audit.checkpoint_bucket") && e.contains("blob.backend"),
        "{e}"
    );
    let off = Config::from_toml("[audit]\ncheckpoint_bucket = \"off\"\n", &env(&[])).unwrap();
    assert_eq!(off.audit.checkpoint_bucket, None);
}

#[test]
fn s3_blob_defaults_and_written_values() {
    use crate::blob::s3::settings::S3Credentials;
    let c = s3_config("").unwrap();
    let s3 = s3_settings(&c);
    assert_eq!(s3.endpoint, None, "AWS's own endpoint");
    assert!(!s3.path_style, "AWS buckets are virtual-hosted");
    assert!(!s3.allow_http);
    assert_eq!(s3.region, "us-east-1");
    assert_eq!(s3.prefix, "");
    assert_eq!(s3.piece_size, ByteSize(8 << 20));
    assert!(matches!(s3.credentials, S3Credentials::Environment));
    assert_eq!(s3.ca_file, None);

    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("s3.credentials");
    std::fs::write(
        &creds,
        "access_key_id = id\nsecret_access_key = hunter2-s3\n",
    )
    .unwrap();
    std::fs::set_permissions(&creds, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let c = s3_config(&format!(
        "endpoint = \"https://s3.example.org:9000/\"\nregion = \"eu-central-1\"\nprefix = \"gw/prod\"\npiece_size = \"16MiB\"\ncredentials_file = {:?}\nca_file = \"/etc/s3-ca.pem\"",
        creds.display().to_string()
    ))
    .unwrap();
    let s3 = s3_settings(&c);
    assert_eq!(s3.endpoint.as_deref(), Some("https://s3.example.org:9000"));
    assert!(s3.path_style, "not AWS: path style by default");
    assert_eq!(s3.region, "eu-central-1");
    assert_eq!(s3.prefix, "gw/prod/");
    assert_eq!(s3.piece_size, ByteSize(16 << 20));
    assert_eq!(s3.ca_file.as_deref(), Some(Path::new("/etc/s3-ca.pem")));
    match &s3.credentials {
        S3Credentials::Keys(k) => assert_eq!(k.secret_access_key.expose(), b"hunter2-s3"),
        other => panic!("{other:?}"),
    }
    assert!(!format!("{c:?}").contains("hunter2"));

    let aws = s3_config("endpoint = \"https://s3.eu-west-1.amazonaws.com\"").unwrap();
    assert!(!s3_settings(&aws).path_style);
    let loopback = s3_config("endpoint = \"http://127.0.0.1:9000\"\npath_style = false").unwrap();
    assert!(s3_settings(&loopback).allow_http);
    assert!(!s3_settings(&loopback).path_style);
    for host in ["localhost:1", "[::1]:9000", "127.0.0.2"] {
        s3_config(&format!("endpoint = \"http://{host}\"")).unwrap();
    }
    // Environment overrides reach the section like any other.
    let c = Config::from_toml(
        "",
        &env(&[
            ("SALLYPORT_BLOB__BACKEND", "s3"),
            ("SALLYPORT_BLOB__BUCKET", "from-env"),
        ]),
    )
    .unwrap();
    assert_eq!(s3_settings(&c).bucket, "from-env");
}

#[test]
fn every_s3_blob_refusal_names_its_key_and_why() {
    let dir = tempfile::tempdir().unwrap();
    let open = dir.path().join("open.credentials");
    std::fs::write(
        &open,
        "access_key_id = id\nsecret_access_key = hunter2-s3\n",
    )
    .unwrap();
    std::fs::set_permissions(&open, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let bad = dir.path().join("bad.credentials");
    std::fs::write(&bad, "access_key_id = id\n").unwrap();
    std::fs::set_permissions(&bad, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let cases: Vec<(String, &str, &str)> = vec![
        (
            "access_key = \"AKID\"".into(),
            "blob.access_key",
            "never written in the configuration",
        ),
        (
            "secret_key = \"hunter2-s3\"".into(),
            "blob.secret_key",
            "credentials_file",
        ),
        (
            "secret_access_key = \"hunter2-s3\"".into(),
            "blob.secret_access_key",
            "never",
        ),
        (
            "session_token = \"hunter2-s3\"".into(),
            "blob.session_token",
            "never",
        ),
        (
            "endpoint = \"http://s3.example.org\"".into(),
            "blob.endpoint",
            "only to a loopback",
        ),
        (
            "endpoint = \"http://10.0.0.1:9000\"".into(),
            "blob.endpoint",
            "only to a loopback",
        ),
        (
            "endpoint = \"ftp://s3.example.org\"".into(),
            "blob.endpoint",
            "https://",
        ),
        (
            "endpoint = \"s3.example.org\"".into(),
            "blob.endpoint",
            "https://",
        ),
        (
            "endpoint = \"https://s3.example.org/bucket\"".into(),
            "blob.endpoint",
            "no path",
        ),
        (
            "endpoint = \"https://id:hunter2-s3@s3.example.org\"".into(),
            "blob.endpoint",
            "user information",
        ),
        (
            "endpoint = \"not a url\"".into(),
            "blob.endpoint",
            "not a URL",
        ),
        ("region = \"\"".into(), "blob.region", "lowercase"),
        ("region = \"EU WEST\"".into(), "blob.region", "lowercase"),
        (
            "prefix = \"/abs\"".into(),
            "blob.prefix",
            "must not start with '/'",
        ),
        ("prefix = \"a/../b\"".into(), "blob.prefix", "\"..\""),
        ("prefix = \"a//b\"".into(), "blob.prefix", "empty segment"),
        (
            "prefix = \"a b\"".into(),
            "blob.prefix",
            "only ASCII letters",
        ),
        (
            "prefix = \"caf\u{e9}\"".into(),
            "blob.prefix",
            "only ASCII letters",
        ),
        (
            "prefix = \"a%20b\"".into(),
            "blob.prefix",
            "percent-encoded",
        ),
        ("prefix = \"a*b\"".into(), "blob.prefix", "percent-encoded"),
        ("prefix = \"a~b\"".into(), "blob.prefix", "percent-encoded"),
        (
            "piece_size = \"1MiB\"".into(),
            "blob.piece_size",
            "is not from 5MiB to 256MiB",
        ),
        (
            "piece_size = \"1TiB\"".into(),
            "blob.piece_size",
            "is not from",
        ),
        ("piece_size = \"lots\"".into(), "blob.piece_size", ""),
        (
            "credentials_file = \"\"".into(),
            "blob.credentials_file",
            "must not be empty",
        ),
        (
            format!("credentials_file = {:?}", open.display().to_string()),
            "blob.credentials_file",
            "readable by group or others",
        ),
        (
            format!("credentials_file = {:?}", bad.display().to_string()),
            "blob.credentials_file",
            "has no secret_access_key",
        ),
        (
            format!(
                "credentials_file = {:?}",
                dir.path().join("missing").display().to_string()
            ),
            "blob.credentials_file",
            "",
        ),
        ("ca_file = \"\"".into(), "blob.ca_file", "must not be empty"),
        (
            "endpoint = \"http://127.0.0.1:9\"\nca_file = \"/ca.pem\"".into(),
            "blob.ca_file",
            "no TLS",
        ),
        (
            "path = \"/srv/blobs\"".into(),
            "blob.path",
            "backend is \"s3\"",
        ),
    ];
    for (extra, key, why) in &cases {
        let err = s3_config(extra).unwrap_err().to_string();
        assert!(err.contains(&format!("`{key}`")), "{extra:?} -> {err}");
        assert!(err.contains(why), "{extra:?} -> {err}");
        assert!(!err.contains("hunter2"), "{extra:?} -> {err}");
    }
    let no_bucket = Config::from_toml("[blob]\nbackend = \"s3\"", &env(&[])).unwrap_err();
    assert!(
        no_bucket.to_string().contains("`blob.bucket`: is required"),
        "{no_bucket}"
    );
    for bucket in [
        "ab",
        "Upper",
        "-dash",
        "dash-",
        "under_score",
        &"x".repeat(64),
    ] {
        let err = Config::from_toml(
            &format!("[blob]\nbackend = \"s3\"\nbucket = {bucket:?}"),
            &env(&[]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("`blob.bucket`: must be 3-63"),
            "{bucket} -> {err}"
        );
    }
    // S3 keys on the local backend, and an unknown backend.
    let err = Config::from_toml("[blob]\nbucket = \"b\"", &env(&[]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("`blob.bucket`: is an S3 setting"), "{err}");
    let err = Config::from_toml("[blob]\naccess_key = \"x\"", &env(&[]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("`blob.access_key`"), "{err}");
    let err = Config::from_toml("[blob]\nbackend = \"gcs\"", &env(&[]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("\"local\", \"s3\""), "{err}");
    // The readable file is accepted when the operator allows it, as other secret files.
    let c = Config::from_toml(
        &format!(
            "allow_world_readable_secrets = true\n[blob]\nbackend = \"s3\"\nbucket = \"b-1\"\ncredentials_file = {:?}",
            open.display().to_string()
        ),
        &env(&[]),
    )
    .unwrap();
    assert!(matches!(c.blob, BlobSettings::S3(_)));
}
