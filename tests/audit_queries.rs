//! Audit queries and traces against the real gateway: a transfer end to end — an upload
//! with the real tus client (tuspy), the artifact registered from it, a link issued, a
//! ranged download, the link revoked — then `GET /v1/audit/trace/{upload}` and
//! `sallyport audit trace` show every step in order with the right principal and client
//! address; queries page, refuse bad parameters with their own codes, need the auditor
//! role, and are themselves audited.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{Value, json};

use support::batches::{AUDITOR_TOKEN, auditors_toml};
use support::links::{PUBLISHER_TOKEN, data, issue, link_url, register, start};
use support::tuspy::{Outcome, Tuspy};
use support::{Gateway, UPLOADER_TOKEN, cli_output};

async fn get(gw: &Gateway, path: &str, token: &str) -> (u16, Value) {
    let resp = gw
        .client()
        .get(gw.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Uploads `bytes` with tuspy in 8 KiB chunks; the upload id.
async fn tus_upload(gw: &Gateway, tuspy: Tuspy, bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("referral.ndjson");
    std::fs::write(&file, bytes).unwrap();
    let (endpoint, ca) = (gw.url("/files/"), gw.ca_path());
    let outcome = tokio::task::spawn_blocking(move || {
        tuspy.upload(&endpoint, &ca, UPLOADER_TOKEN, &file, 8192, &[])
    })
    .await
    .unwrap();
    match outcome {
        Outcome::Done { url } => url.rsplit('/').next().unwrap().to_owned(),
        other => panic!("{other:?}"),
    }
}

/// The whole transfer; returns (upload, artifact, grant).
async fn transfer(gw: &Gateway, tuspy: Tuspy) -> (String, String, String) {
    let bytes = data(20_000, 7);
    let upload = tus_upload(gw, tuspy, &bytes).await;
    let (s, art) = register(
        gw,
        json!({"upload": upload, "content_type": "application/fhir+ndjson"}),
    )
    .await;
    assert_eq!(s, 201, "{art}");
    let artifact = art["artifact"].as_str().unwrap().to_owned();
    let issued = issue(
        gw,
        json!({"artifact": artifact, "partner": "payer-a", "ttl": "1h"}),
    )
    .await;
    let grant = issued["grant"].as_str().unwrap().to_owned();
    let resp = gw
        .client()
        .get(link_url(gw, &issued))
        .header("range", "bytes=1000-1999")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 206);
    assert_eq!(resp.bytes().await.unwrap().as_ref(), &bytes[1000..2000]);
    let resp = gw
        .client()
        .delete(gw.url(&format!("/v1/links/{grant}")))
        .bearer_auth(PUBLISHER_TOKEN)
        .json(&json!({"reason": "contract ended"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{:?}", resp.text().await);
    (upload, artifact, grant)
}

#[tokio::test]
async fn a_trace_shows_every_step_of_a_transfer_in_order() {
    let Some(tuspy) = Tuspy::require() else {
        return;
    };
    let gw = start(&auditors_toml());
    let (upload, artifact, grant) = transfer(&gw, tuspy).await;

    let (s, trace) = get(&gw, &format!("/v1/audit/trace/{upload}"), AUDITOR_TOKEN).await;
    assert_eq!(s, 200, "{trace}");
    let entries = trace["entries"].as_array().unwrap();
    let steps: Vec<(&str, &str)> = entries
        .iter()
        .map(|e| {
            let who = e["actor"]["name"]
                .as_str()
                .or(e["actor"]["grant"].as_str())
                .unwrap();
            (e["action"].as_str().unwrap(), who)
        })
        .collect();
    // created → chunks → completed → registered → issued → served → revoke requested → revoked
    let chunks = 20_000usize.div_ceil(8192);
    let mut expected = vec![("upload.created", "clinic")];
    expected.extend(std::iter::repeat_n(
        ("upload.chunk_accepted", "clinic"),
        chunks,
    ));
    expected.extend([
        ("upload.completed", "clinic"),
        ("artifact.registered", "exporter"),
        ("link.issued", "exporter"),
        ("download.served", grant.as_str()),
        ("link.revoke_requested", "exporter"),
        ("link.revoked", "exporter"),
    ]);
    assert_eq!(steps, expected, "{trace:#}");
    let seqs: Vec<u64> = entries.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    for e in entries {
        assert_eq!(e["client_addr"], "127.0.0.1", "{e}");
    }
    let served = &entries[entries.len() - 3];
    assert_eq!(served["actor"], json!({"kind": "link", "grant": grant}));
    assert_eq!(served["details"]["ranges"], json!(["1000-1999"]));
    assert_eq!(served["details"]["artifact"], artifact.as_str());
    let lines: Vec<&str> = trace["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert_eq!(lines.len(), entries.len());
    assert!(
        lines[0].contains("upload.created")
            && lines[0].contains("client clinic (token) from 127.0.0.1")
    );
    assert!(
        lines[lines.len() - 3].contains(&format!("link holder (grant {grant}) from 127.0.0.1"))
    );
    assert!(lines[lines.len() - 3].contains("ranges 1000-1999"));

    // The grant's trace holds its own story only (nothing leads back up to the upload).
    let (_, g) = get(&gw, &format!("/v1/audit/trace/{grant}"), AUDITOR_TOKEN).await;
    let actions: Vec<&str> = g["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "link.issued",
            "download.served",
            "link.revoke_requested",
            "link.revoked"
        ]
    );

    // The CLI prints the same lines, through the API with the auditor's token.
    let token_file = gw.dir.join("auditor.token");
    std::fs::write(&token_file, AUDITOR_TOKEN).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let url = format!("https://localhost:{}", gw.addr.port());
    let ca = gw.ca_path();
    let api = [
        "--url",
        url.as_str(),
        "--ca-file",
        ca.to_str().unwrap(),
        "--token-file",
        token_file.to_str().unwrap(),
    ];
    let mut args = vec!["audit", "trace", upload.as_str()];
    args.extend(api);
    let out = cli_output(&gw.config_path, &args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let printed: Vec<&str> = text.lines().skip(1).collect();
    // `audit.queried` mentions no id (its filter is nested), so the story is unchanged.
    assert_eq!(printed, lines, "{text}");
    assert!(text.starts_with(&format!("trace {upload}: {} entries", lines.len())));

    // `audit query` pages through everything (page size 1 here) as JSON lines.
    let mut args = vec![
        "audit",
        "query",
        "--grant",
        grant.as_str(),
        "--json",
        "--max",
        "100",
    ];
    args.extend(api);
    let out = cli_output(&gw.config_path, &args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let got: Vec<&str> = got.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(got, actions);
    let mut args = vec!["audit", "query", "--client", "300.0.0.1"];
    args.extend(api);
    let out = cli_output(&gw.config_path, &args);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("client is not an IP address"));

    // Each query and trace was recorded, naming its filter.
    let (_, q) = get(&gw, "/v1/audit/events?action=audit.queried", AUDITOR_TOKEN).await;
    let recorded: Vec<&Value> = q["entries"].as_array().unwrap().iter().collect();
    assert!(recorded.len() >= 4, "{q:#}");
    assert_eq!(recorded[0]["details"]["kind"], "trace");
    assert_eq!(recorded[0]["details"]["filter"], json!({"id": upload}));
    assert_eq!(recorded[0]["actor"]["name"], "auditor-1");
    assert!(
        recorded
            .iter()
            .any(|e| e["details"]["filter"] == json!({"grant": grant}))
    );
    support::audit_schema::assert_entries(&q["entries"].as_array().unwrap().clone());
}

#[tokio::test]
async fn queries_page_refuse_bad_parameters_and_need_the_auditor_role() {
    let gw = start(&auditors_toml());
    let artifact = support::links::import(&gw, "a.ndjson", &data(3000, 1)).await;
    for _ in 0..3 {
        issue(&gw, json!({"artifact": artifact, "partner": "payer-a"})).await;
    }
    // Pages of one, joined, are the whole answer; the cursor belongs to its query.
    let mut seen = Vec::new();
    let mut path = format!("/v1/audit/events?artifact={artifact}&limit=1");
    loop {
        let (s, page) = get(&gw, &path, AUDITOR_TOKEN).await;
        assert_eq!(s, 200, "{page}");
        assert!(page["indexed_through"].as_u64().unwrap() <= page["head"].as_u64().unwrap());
        for e in page["entries"].as_array().unwrap() {
            seen.push(e["action"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/v1/audit/events?artifact={artifact}&limit=1&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(
        seen,
        [
            "artifact.registered",
            "link.issued",
            "link.issued",
            "link.issued"
        ]
    );
    let (_, first) = get(
        &gw,
        &format!("/v1/audit/events?artifact={artifact}&limit=1"),
        AUDITOR_TOKEN,
    )
    .await;
    let c = first["next_cursor"].as_str().unwrap();
    let (s, p) = get(
        &gw,
        &format!("/v1/audit/events?action=link.issued&cursor={c}"),
        AUDITOR_TOKEN,
    )
    .await;
    assert_eq!(
        (s, p["code"].as_str().unwrap()),
        (400, "audit.query_cursor_mismatch")
    );
    assert_eq!(p["parameter"], "cursor");

    for (q, code, param) in [
        ("since=yesterday", "audit.query_bad_time", Some("since")),
        (
            "since=2026-12-06T10:00:00Z&until=2026-12-06T09:00:00Z",
            "audit.query_bad_window",
            None,
        ),
        (
            "client=10.0.0.0/40",
            "audit.query_bad_client",
            Some("client"),
        ),
        ("grant=nope", "audit.query_bad_id", Some("grant")),
        ("action=LINK", "audit.query_bad_action", Some("action")),
        ("outcome=maybe", "audit.query_bad_outcome", Some("outcome")),
        ("limit=5000", "audit.query_bad_limit", Some("limit")),
        (
            "limit=1&limit=2",
            "audit.query_duplicate_parameter",
            Some("limit"),
        ),
        ("principal=a%20b", "audit.query_encoded", Some("principal")),
        ("who=me", "audit.query_unknown_parameter", None),
        ("cursor=abc", "audit.query_bad_cursor", Some("cursor")),
    ] {
        let (s, p) = get(&gw, &format!("/v1/audit/events?{q}"), AUDITOR_TOKEN).await;
        assert_eq!(s, 400, "{q}: {p}");
        assert_eq!(p["code"], code, "{q}");
        assert_eq!(p["parameter"].as_str(), param, "{q}");
    }
    // A bad query changes nothing: no `audit.queried` record for it.
    let (_, q) = get(
        &gw,
        "/v1/audit/events?action=audit.queried&outcome=success",
        AUDITOR_TOKEN,
    )
    .await;
    let before = q["entries"].as_array().unwrap().len();
    get(&gw, "/v1/audit/events?since=yesterday", AUDITOR_TOKEN).await;
    let (_, q) = get(&gw, "/v1/audit/events?action=audit.queried", AUDITOR_TOKEN).await;
    assert_eq!(
        q["entries"].as_array().unwrap().len(),
        before + 1,
        "only the query itself"
    );

    // Roles: an uploader and a publisher are refused (and that is audited); admin passes.
    for token in [UPLOADER_TOKEN, PUBLISHER_TOKEN] {
        let (s, p) = get(&gw, "/v1/audit/events", token).await;
        assert_eq!((s, p["code"].as_str().unwrap()), (403, "auth.missing_role"));
        let (s, _) = get(&gw, &format!("/v1/audit/trace/{artifact}"), token).await;
        assert_eq!(s, 403);
    }
    let (s, _) = get(&gw, "/v1/audit/events?limit=1", support::ADMIN_TOKEN).await;
    assert_eq!(s, 200);
    let (s, p) = get(&gw, "/v1/audit/events?action=access.denied", AUDITOR_TOKEN).await;
    assert_eq!(s, 200);
    let denied: Vec<&str> = p["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["details"]["endpoint"].as_str().unwrap())
        .collect();
    assert_eq!(
        denied,
        ["audit_events", "audit_trace", "audit_events", "audit_trace"]
    );
    let (s, _) = get(&gw, "/v1/audit/events", "not-a-token").await;
    assert_eq!(s, 401);
    let (s, p) = get(&gw, "/v1/audit/trace/not-an-id", AUDITOR_TOKEN).await;
    assert_eq!((s, p["code"].as_str().unwrap()), (404, "request.not_found"));
}
