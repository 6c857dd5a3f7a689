#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Upload invitations end to end (`proto/invitations-v1.md`), black-box: the real binary
//! over TLS. A publisher issues an invitation; its holder — no account, only the token —
//! uploads through tus within the invitation's limits (files created, bytes held), into
//! the invitation's batch when it has one, reads its own view and seals; every refusal
//! (over a limit, revoked, expired, outside its batch, another principal's upload, any
//! other endpoint) is specific and changes nothing; issuing, revoking and refusals are in
//! the audit trail.
//!
//! The batch invitation's members are uploaded by the real Python tus client (tuspy);
//! without python3/pip that test skips with a notice, except under `CI`, where it fails.

mod support;

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use support::batches::Answer;
use support::fhir::Batch;
use support::links::{PUBLISHER_TOKEN, actions, export_audit, publisher_toml, sha256_hex};
use support::tus_http::{Tus, location};
use support::tuspy::{Outcome, Tuspy};
use support::{ADMIN_TOKEN, Gateway, UPLOADER_TOKEN};

/// A gateway with the publisher `exporter` (no partner scope) and a scoped publisher.
fn gateway() -> Gateway {
    gateway_with("")
}

/// [`gateway`] with `extra` (tables) first.
fn gateway_with(extra: &str) -> Gateway {
    Gateway::start(&format!(
        "{extra}\n{}\n[[clients]]\nname = \"scoped\"\ntoken_sha256 = \"{}\"\nroles = [\"publisher\"]\n\
         publish_for = [\"clinic-b\"]\n",
        publisher_toml(),
        support::token_hash(SCOPED_TOKEN)
    ))
}

const SCOPED_TOKEN: &str = "test-scoped-publisher-token-0123456789abcd";

async fn call(
    gw: &Gateway,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> Answer {
    support::batches::call(
        gw,
        method,
        path,
        token,
        body.map(|b| serde_json::to_vec(&b).unwrap()),
    )
    .await
}

/// Issues an invitation as the publisher; asserts 201 and returns the answer's JSON.
async fn issue(gw: &Gateway, body: Value) -> Value {
    let a = call(
        gw,
        Method::POST,
        "/v1/invitations",
        PUBLISHER_TOKEN,
        Some(body),
    )
    .await;
    assert_eq!(a.status, 201, "issue: {}", String::from_utf8_lossy(&a.body));
    a.json()
}

fn token_of(issued: &Value) -> String {
    issued["token"].as_str().unwrap().to_owned()
}

/// Creates an upload of `length` bytes as `tus`; returns the response.
async fn create(tus: &Tus, length: u64, metadata: Option<&str>) -> reqwest::Response {
    let len = length.to_string();
    let mut headers = vec![("upload-length", len.as_str())];
    if let Some(m) = metadata {
        headers.push(("upload-metadata", m));
    }
    tus.post(&headers, Vec::new()).await
}

async fn status_code(resp: reqwest::Response) -> (u16, String) {
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    (status, body["code"].as_str().unwrap_or_default().to_owned())
}

fn b64(s: &str) -> String {
    support::tus_http::b64(s.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invitation_uploads_within_its_limits_and_nothing_else() {
    let gw = gateway();
    let issued = issue(
        &gw,
        json!({"partner": "clinic-a", "max_files": 2, "max_bytes": 100, "ttl": "1h"}),
    )
    .await;
    let token = token_of(&issued);
    assert!(token.starts_with("inv1~"), "{token}");
    let url = issued["url"].as_str().unwrap();
    assert!(url.ends_with(&format!("/invite#{token}")), "{url}");
    assert!(url.starts_with("https://"), "{url}");
    assert_eq!(issued["state"], "active");
    assert_eq!(issued["limits"], json!({"max_files": 2, "max_bytes": 100}));
    let id = issued["id"].as_str().unwrap().to_owned();
    // No PHI, no partner in the token: only the id and the expiry.
    assert!(!token.contains("clinic"));

    let holder = Tus::as_token(&gw, &token);
    let view = call(&gw, Method::GET, "/v1/invitation", &token, None).await;
    assert_eq!(view.status, 200);
    let v = view.json();
    assert_eq!(v["partner"], "clinic-a");
    assert_eq!(v["uploads_url"], "/files/");
    assert_eq!(v["used"], json!({"files": 0, "bytes": 0}));
    assert_eq!(v["batch"], Value::Null);

    // One file of 60 bytes, uploaded whole; the ledger's whole-file digest is the data's.
    let data = vec![7u8; 60];
    let r = create(
        &holder,
        60,
        Some(&format!("filename {}", b64("referral.pdf"))),
    )
    .await;
    assert_eq!(r.status().as_u16(), 201);
    let first = location(&r);
    assert_eq!(holder.patch_ok(&first, 0, &data).await, 60);
    assert_eq!(
        holder.ledger(&first).await["sha256"],
        json!(sha256_hex(&data))
    );

    // 60 + 50 would pass 100 bytes: refused, and the file is given back.
    assert_eq!(
        status_code(create(&holder, 50, None).await).await,
        (507, "upload.quota_exceeded".into())
    );
    let v = call(&gw, Method::GET, "/v1/invitation", &token, None)
        .await
        .json();
    assert_eq!(v["used"], json!({"files": 1, "bytes": 60}));

    let r = create(&holder, 40, None).await;
    assert_eq!(r.status().as_u16(), 201);
    let second = location(&r);
    // Two files created: a third is refused, whatever its size.
    assert_eq!(
        status_code(create(&holder, 0, None).await).await,
        (403, "invitation.file_limit".into())
    );
    // Its holder deletes one: the file comes back.
    assert_eq!(holder.delete(&second).await.status().as_u16(), 204);
    let r = create(&holder, 1, None).await;
    assert_eq!(r.status().as_u16(), 201, "{:?}", r.text().await);

    // Its uploads are its own: an uploader cannot see them, nor it the uploader's.
    let clinic = Tus::new(&gw);
    assert_eq!(clinic.head(&first).await.status().as_u16(), 404);
    let r = create(&clinic, 5, None).await;
    assert_eq!(r.status().as_u16(), 201);
    let theirs = location(&r);
    assert_eq!(holder.head(&theirs).await.status().as_u16(), 404);
    assert_eq!(holder.delete(&theirs).await.status().as_u16(), 404);
    assert_eq!(clinic.offset(&theirs).await, 0);

    // It holds no role: every other endpoint refuses it.
    for (method, path) in [
        (Method::POST, "/v1/batches"),
        (Method::GET, "/v1/batches"),
        (Method::GET, "/v1/links?partner=clinic-a"),
        (Method::POST, "/v1/invitations"),
        (Method::GET, "/v1/invitations"),
        (Method::GET, "/v1/audit/events"),
    ] {
        let body = (method == Method::POST).then(|| json!({"partner": "clinic-a"}));
        let a = call(&gw, method.clone(), path, &token, body).await;
        assert_eq!(
            a.status,
            403,
            "{method} {path}: {}",
            String::from_utf8_lossy(&a.body)
        );
    }
    // A token with one character changed is not an invitation at all.
    let mut forged = token.clone().into_bytes();
    let i = forged.len() - 3;
    forged[i] = if forged[i] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    let a = call(&gw, Method::GET, "/v1/invitation", &forged, None).await;
    assert_eq!(a.status, 401);
    assert_eq!(
        status_code(create(&Tus::as_token(&gw, &forged), 1, None).await)
            .await
            .0,
        401
    );
    // An API client's token is not an invitation for the holder endpoints.
    let a = call(&gw, Method::GET, "/v1/invitation", UPLOADER_TOKEN, None).await;
    assert_eq!(a.status, 401);

    // The issuer sees the usage; the audit trail names the invitation, never the token.
    let shown = call(
        &gw,
        Method::GET,
        &format!("/v1/invitations/{id}"),
        PUBLISHER_TOKEN,
        None,
    )
    .await;
    assert_eq!(shown.status, 200);
    assert_eq!(shown.json()["used"], json!({"files": 2, "bytes": 61}));
    let listed = call(
        &gw,
        Method::GET,
        "/v1/invitations?partner=clinic-a",
        ADMIN_TOKEN,
        None,
    )
    .await;
    assert_eq!(listed.status, 200);
    assert_eq!(listed.json()["invitations"][0]["id"], json!(id));
    let entries = export_audit(&gw.config_path);
    let issued_entries = actions(&entries, "invitation.issued");
    assert_eq!(issued_entries.len(), 1);
    assert_eq!(issued_entries[0]["subject"], json!(id));
    let all = serde_json::to_string(&entries).unwrap();
    assert!(!all.contains(&token[token.rfind('~').unwrap() + 1..]));
    // Uploads made through it are attributed to the invitation.
    let created = actions(&entries, "upload.created");
    assert!(
        created
            .iter()
            .any(|e| e["actor"]["name"] == json!(format!("invitation:{id}"))
                && e["actor"]["auth_method"] == "invitation"),
        "{created:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_and_expired_invitations_are_refused_and_change_nothing() {
    let gw = gateway();
    let issued = issue(&gw, json!({"partner": "clinic-a", "max_files": 3})).await;
    let token = token_of(&issued);
    let id = issued["id"].as_str().unwrap().to_owned();
    let holder = Tus::as_token(&gw, &token);
    let r = create(&holder, 10, None).await;
    assert_eq!(r.status().as_u16(), 201);
    let path = location(&r);
    assert_eq!(holder.patch_ok(&path, 0, b"12345").await, 5);

    // A publisher outside the partner's scope may neither see nor revoke it.
    let a = call(
        &gw,
        Method::DELETE,
        &format!("/v1/invitations/{id}"),
        SCOPED_TOKEN,
        Some(json!({"reason": "no"})),
    )
    .await;
    assert_eq!(a.refusal(), (404, "invitation.not_found".into()));

    let a = call(
        &gw,
        Method::DELETE,
        &format!("/v1/invitations/{id}"),
        PUBLISHER_TOKEN,
        Some(json!({"reason": "sent to the wrong clinic"})),
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.json()["state"], "revoked");
    assert_eq!(a.json()["revoked"]["reason"], "sent to the wrong clinic");

    // The next request of every kind is refused with the reason, and nothing is written.
    let r = holder.patch(&path, 5, b"67890".to_vec(), &[]).await;
    assert_eq!(status_code(r).await, (410, "invitation.revoked".into()));
    assert_eq!(
        status_code(create(&holder, 1, None).await).await,
        (410, "invitation.revoked".into())
    );
    let a = call(&gw, Method::GET, "/v1/invitation", &token, None).await;
    assert_eq!(a.refusal(), (410, "invitation.revoked".into()));
    let admin = Tus::as_token(&gw, ADMIN_TOKEN);
    assert_eq!(admin.offset(&path).await, 5);

    // An invitation that expires: refused as expired, nothing created.
    let short = issue(&gw, json!({"partner": "clinic-a", "ttl": "1s"})).await;
    let short_token = token_of(&short);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        status_code(create(&Tus::as_token(&gw, &short_token), 1, None).await).await,
        (410, "invitation.expired".into())
    );
    let shown = call(
        &gw,
        Method::GET,
        &format!("/v1/invitations/{}", short["id"].as_str().unwrap()),
        PUBLISHER_TOKEN,
        None,
    )
    .await
    .json();
    assert_eq!(shown["state"], "expired");
    assert_eq!(shown["used"], json!({"files": 0, "bytes": 0}));

    // The security team's trace of the invitation: issued, what was done through it, its
    // revocation and the refusals after it, in order (the index may lag a moment).
    let deadline = Instant::now() + Duration::from_secs(20);
    let steps = loop {
        let a = call(
            &gw,
            Method::GET,
            &format!("/v1/audit/trace/{id}"),
            ADMIN_TOKEN,
            None,
        )
        .await;
        assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
        let steps: Vec<String> = a.json()["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["action"].as_str().unwrap().to_owned())
            .collect();
        if steps.iter().filter(|s| *s == "invitation.refused").count() >= 3
            || Instant::now() > deadline
        {
            break steps;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        steps,
        [
            "invitation.issued",
            "upload.created",
            "upload.chunk_accepted",
            "invitation.revoked",
            "invitation.refused",
            "invitation.refused",
            "invitation.refused",
        ],
        "{steps:?}"
    );
    let by_principal = call(
        &gw,
        Method::GET,
        &format!("/v1/audit/events?principal=invitation:{id}"),
        ADMIN_TOKEN,
        None,
    )
    .await;
    assert_eq!(
        by_principal.status,
        200,
        "{}",
        String::from_utf8_lossy(&by_principal.body)
    );

    let entries = export_audit(&gw.config_path);
    assert_eq!(actions(&entries, "invitation.revoked").len(), 1);
    let refused = actions(&entries, "invitation.refused");
    let reasons: Vec<&str> = refused
        .iter()
        .map(|e| e["details"]["reason"].as_str().unwrap())
        .collect();
    assert!(
        reasons.contains(&"revoked") && reasons.contains(&"expired"),
        "{reasons:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_invitation_requests_get_specific_errors_and_store_nothing() {
    let gw = gateway();
    let cases = [
        (json!({"partner": "clinic-a", "colour": "red"}), "body"),
        (json!({"max_files": 1}), "body"),
        // An array of the fields in order would build the struct; a body is an object.
        (json!(["clinic-a"]), "body"),
        (json!([]), "body"),
        (json!({"partner": "Clinic A"}), "partner"),
        (json!({"partner": "clinic-a", "ttl": "forever"}), "ttl"),
        (json!({"partner": "clinic-a", "ttl": "400days"}), "ttl"),
        (json!({"partner": "clinic-a", "max_files": 0}), "max_files"),
        (
            json!({"partner": "clinic-a", "max_files": 1_000_001}),
            "max_files",
        ),
        (json!({"partner": "clinic-a", "max_bytes": 0}), "max_bytes"),
        (
            json!({"partner": "clinic-a", "max_bytes": u64::MAX}),
            "max_bytes",
        ),
        (
            json!({"partner": "clinic-a", "provenance": {}}),
            "provenance",
        ),
    ];
    for (body, field) in cases {
        let a = call(
            &gw,
            Method::POST,
            "/v1/invitations",
            PUBLISHER_TOKEN,
            Some(body.clone()),
        )
        .await;
        assert_eq!(
            a.refusal(),
            (400, "invitation.bad_request".into()),
            "{body}"
        );
        assert_eq!(a.json()["field"], field, "{body}");
        // The problem never echoes the value sent.
        assert!(!String::from_utf8_lossy(&a.body).contains("forever"));
    }
    // A scoped publisher may invite its partners only.
    let a = call(
        &gw,
        Method::POST,
        "/v1/invitations",
        SCOPED_TOKEN,
        Some(json!({"partner": "clinic-a"})),
    )
    .await;
    assert_eq!(a.refusal(), (403, "invitation.partner_not_allowed".into()));
    let a = call(
        &gw,
        Method::POST,
        "/v1/invitations",
        SCOPED_TOKEN,
        Some(json!({"partner": "clinic-b"})),
    )
    .await;
    assert_eq!(a.status, 201);
    // An uploader may not issue.
    let a = call(
        &gw,
        Method::POST,
        "/v1/invitations",
        UPLOADER_TOKEN,
        Some(json!({"partner": "clinic-a"})),
    )
    .await;
    assert_eq!(a.status, 403);
    // Only the scoped publisher's one invitation exists.
    let listed = call(&gw, Method::GET, "/v1/invitations", ADMIN_TOKEN, None)
        .await
        .json();
    assert_eq!(
        listed["invitations"].as_array().unwrap().len(),
        1,
        "{listed}"
    );
    let a = call(
        &gw,
        Method::GET,
        "/v1/invitations?colour=red",
        ADMIN_TOKEN,
        None,
    )
    .await;
    assert_eq!(a.refusal(), (400, "invitation.bad_request".into()));
}

/// Members from a small synthetic FHIR batch, uploaded through a batch invitation with
/// tuspy; the holder seals and the verdict appears in its view.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_invitation_uploads_listed_members_only_and_seals() {
    let Some(tuspy) = Tuspy::require() else {
        return;
    };
    let gw = gateway();
    let work = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let batch = Batch::synthetic(work.path(), 20261206, [40, 60, 80]);
    let manifest: Value = serde_json::from_str(&batch.manifest().to_json()).unwrap();
    // With a manifest, the limits are the manifest's: giving them too is refused.
    let a = call(
        &gw,
        Method::POST,
        "/v1/invitations",
        PUBLISHER_TOKEN,
        Some(json!({"partner": "lab-a", "manifest": manifest, "max_files": 9})),
    )
    .await;
    assert_eq!(a.refusal(), (400, "invitation.bad_request".into()));
    let issued = issue(&gw, json!({"partner": "lab-a", "manifest": manifest})).await;
    let token = token_of(&issued);
    let batch_id = issued["batch"].as_str().unwrap().to_owned();
    let names: Vec<String> = batch
        .manifest()
        .members
        .iter()
        .map(|m| m.name.clone())
        .collect();
    assert_eq!(issued["limits"]["max_files"], json!(names.len()));
    assert_eq!(
        issued["limits"]["max_bytes"],
        json!(batch.manifest().total_bytes())
    );

    let view = call(&gw, Method::GET, "/v1/invitation", &token, None)
        .await
        .json();
    assert_eq!(view["batch"]["id"], json!(batch_id));
    assert_eq!(view["batch"]["state"], "open");
    let listed: Vec<&str> = view["batch"]["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(listed, names.iter().map(String::as_str).collect::<Vec<_>>());

    // Outside the batch, or an unlisted member: refused, nothing created.
    let holder = Tus::as_token(&gw, &token);
    assert_eq!(
        status_code(create(&holder, 3, None).await).await,
        (422, "invitation.batch_required".into())
    );
    let unlisted = format!("batch {},member {}", b64(&batch_id), b64("Other.ndjson"));
    assert_eq!(
        status_code(create(&holder, 3, Some(&unlisted)).await).await,
        (422, "batch.member_not_listed".into())
    );
    // An uploader cannot add to the invitation's batch.
    let clinic = Tus::new(&gw);
    let theirs = format!("batch {},member {}", b64(&batch_id), b64(&names[0]));
    assert_eq!(
        status_code(
            create(
                &clinic,
                batch.member(&names[0]).bytes.len() as u64,
                Some(&theirs)
            )
            .await
        )
        .await,
        (404, "batch.not_found".into())
    );

    for name in &names {
        let outcome = tokio::task::block_in_place(|| {
            tuspy.upload(
                &gw.url("/files/"),
                &gw.ca_path(),
                &token,
                &batch.path(name),
                16 * 1024,
                &[("batch", &batch_id), ("member", name)],
            )
        });
        let Outcome::Done { url } = outcome else {
            panic!("{name}: {outcome:?}");
        };
        let ledger = holder.ledger(&url[url.find("/files/").unwrap()..]).await;
        assert_eq!(
            ledger["sha256"],
            json!(sha256_hex(&batch.member(name).bytes))
        );
    }
    let a = call(&gw, Method::POST, "/v1/invitation/seal", &token, None).await;
    assert_eq!(a.status, 202, "{}", String::from_utf8_lossy(&a.body));
    let deadline = Instant::now() + Duration::from_secs(120);
    let state = loop {
        let v = call(&gw, Method::GET, "/v1/invitation", &token, None)
            .await
            .json();
        let s = v["batch"]["state"].as_str().unwrap().to_owned();
        if (s == "open" || s == "sealing") && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        assert_eq!(v["batch"]["findings"], json!([]));
        break s;
    };
    assert_eq!(state, "released");
    // The batch belongs to the invitation; an auditor's view names it as the owner.
    let b = call(
        &gw,
        Method::GET,
        &format!("/v1/batches/{batch_id}"),
        ADMIN_TOKEN,
        None,
    )
    .await;
    assert_eq!(
        b.json()["owner"],
        json!(format!("invitation:{}", issued["id"].as_str().unwrap()))
    );
    // Every listed member is uploaded: the invitation allows no more files.
    assert_eq!(
        status_code(create(&holder, 3, Some(&theirs)).await).await,
        (403, "invitation.file_limit".into())
    );
}

/// `sallyport invite …` against `gw` as the publisher; (exit code, stdout, stderr).
fn invite_cli(gw: &Gateway, args: &[&str]) -> (i32, String, String) {
    let out = support::sallyport()
        .arg("invite")
        .args(args)
        .env_remove("SALLYPORT_CONFIG")
        .env_remove("SALLYPORT_TOKEN_FILE")
        .env(
            "SALLYPORT_URL",
            format!("https://localhost:{}", gw.addr.port()),
        )
        .env("SALLYPORT_CA_FILE", gw.ca_path())
        .env("SALLYPORT_TOKEN", PUBLISHER_TOKEN)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_invite_commands_issue_list_show_and_revoke() {
    let gw = gateway();
    let (code, out, err) = invite_cli(
        &gw,
        &[
            "issue",
            "--partner",
            "clinic-c",
            "--max-files",
            "4",
            "--max-bytes",
            "2MiB",
            "--ttl",
            "2h",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let url = out.trim();
    assert!(url.contains("/invite#inv1~"), "{out}");
    assert!(
        err.contains("files 0/4") || err.contains("files -/4"),
        "{err}"
    );
    let token = &url[url.find('#').unwrap() + 1..];
    let view = call(&gw, Method::GET, "/v1/invitation", token, None)
        .await
        .json();
    assert_eq!(
        view["limits"],
        json!({"max_files": 4, "max_bytes": 2 * 1024 * 1024})
    );
    let id = view["id"].as_str().unwrap().to_owned();

    let (code, out, _) = invite_cli(&gw, &["list", "--partner", "clinic-c"]);
    assert_eq!(code, 0);
    assert!(out.contains(&id) && out.contains("active"), "{out}");
    let (code, out, _) = invite_cli(&gw, &["show", &id]);
    assert_eq!(code, 0);
    let shown: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(shown["used"], json!({"files": 0, "bytes": 0}));
    let (code, _, err) = invite_cli(&gw, &["revoke", &id, "--reason", "wrong clinic"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("revoked"), "{err}");
    let a = call(&gw, Method::GET, "/v1/invitation", token, None).await;
    assert_eq!(a.refusal(), (410, "invitation.revoked".into()));

    // Bad input is refused before any request, with the reason.
    let (code, _, err) = invite_cli(&gw, &["issue", "--partner", "Clinic C"]);
    assert_ne!(code, 0);
    assert!(err.contains("--partner"), "{err}");
    let (code, _, err) = invite_cli(&gw, &["issue", "--partner", "c", "--max-bytes", "lots"]);
    assert_ne!(code, 0);
    assert!(err.contains("--max-bytes"), "{err}");
    let missing = gw.dir.join("no-such-manifest.json");
    let (code, _, err) = invite_cli(
        &gw,
        &[
            "issue",
            "--partner",
            "c",
            "--batch-manifest",
            missing.to_str().unwrap(),
        ],
    );
    assert_ne!(code, 0);
    assert!(err.contains("manifest"), "{err}");
    // The gateway's refusal is printed with its code.
    let (code, _, err) = invite_cli(&gw, &["issue", "--partner", "c", "--max-files", "0"]);
    assert_ne!(code, 0);
    assert!(err.contains("invitation.bad_request"), "{err}");
}

/// Two instances sharing Redis and a data directory (the link keys): an invitation issued
/// on one works on the other, its file limit counts across both, and a revocation on one
/// refuses the very next request on the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invitation_is_one_invitation_across_instances_sharing_redis() {
    if !support::redis::available() {
        return;
    }
    let prefix = support::redis::Prefix::new("invitations");
    let tmp = tempfile::tempdir().unwrap();
    let redis = |id: &str| {
        format!(
            "[server]\ninstance_id = \"{id}\"\n\n[state]\nbackend = \"redis\"\nredis_url = \"{}\"\n\
             redis_prefix = \"{}\"\n{}",
            support::redis::url(),
            prefix.as_str(),
            publisher_toml()
        )
    };
    let one = Gateway::start_in(tmp.path(), &redis("one"));
    let two = Gateway::start_in(tmp.path(), &redis("two"));
    let issued = issue(&one, json!({"partner": "clinic-a", "max_files": 2})).await;
    let token = token_of(&issued);
    let id = issued["id"].as_str().unwrap().to_owned();
    let (on_one, on_two) = (Tus::as_token(&one, &token), Tus::as_token(&two, &token));

    let r = create(&on_two, 8, None).await;
    assert_eq!(r.status().as_u16(), 201);
    let path = location(&r);
    assert_eq!(on_one.patch_ok(&path, 0, b"1234").await, 4);
    assert_eq!(create(&on_one, 1, None).await.status().as_u16(), 201);
    assert_eq!(
        status_code(create(&on_two, 1, None).await).await,
        (403, "invitation.file_limit".into())
    );

    let a = call(
        &two,
        Method::DELETE,
        &format!("/v1/invitations/{id}"),
        PUBLISHER_TOKEN,
        None,
    )
    .await;
    assert_eq!(a.status, 200);
    let r = on_one.patch(&path, 4, b"5678".to_vec(), &[]).await;
    assert_eq!(status_code(r).await, (410, "invitation.revoked".into()));
    assert_eq!(Tus::as_token(&one, ADMIN_TOKEN).offset(&path).await, 4);
}

/// `sallyport client upload` with an invitation: the URL from a 0600 file (never an
/// argument), files checked against the batch's members before anything is sent, then
/// uploaded, verified and sealed; the verdict decides the exit code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_uploads_through_an_invitation_and_seals() {
    use std::os::unix::fs::PermissionsExt;
    let gw = gateway();
    let work = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let batch = Batch::synthetic(work.path(), 20261207, [30, 50, 70]);
    let manifest: Value = serde_json::from_str(&batch.manifest().to_json()).unwrap();
    let issued = issue(&gw, json!({"partner": "lab-b", "manifest": manifest})).await;
    let url_file = work.path().join("invitation.url");
    std::fs::write(&url_file, issued["url"].as_str().unwrap()).unwrap();
    std::fs::set_permissions(&url_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let names: Vec<String> = batch
        .manifest()
        .members
        .iter()
        .map(|m| m.name.clone())
        .collect();
    let run = |files: Vec<std::path::PathBuf>, extra: Vec<&str>| {
        let mut cmd = support::sallyport();
        cmd.arg("client")
            .arg("upload")
            .args(&files)
            .arg("--invitation-file")
            .arg(&url_file)
            .arg("--cacert")
            .arg(gw.ca_path())
            .arg("--state-dir")
            .arg(work.path().join("state"))
            .arg("--chunk-size")
            .arg("64KiB")
            .args(extra)
            .env_remove("SALLYPORT_TOKEN")
            .env_remove("SALLYPORT_TOKEN_FILE")
            .env_remove("SALLYPORT_INVITATION");
        cmd.output().unwrap()
    };
    // A file the manifest does not list: refused before anything is sent.
    let stray = work.path().join("stray.ndjson");
    std::fs::write(&stray, b"{}\n").unwrap();
    let out = tokio::task::block_in_place(|| run(vec![stray], vec![]));
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("does not list"), "{err}");
    let token = token_of(&issued);
    assert!(!err.contains(&token[5..]), "the token is never printed");
    let view = call(&gw, Method::GET, "/v1/invitation", &token, None)
        .await
        .json();
    assert_eq!(view["used"]["files"], 0);

    let files: Vec<_> = names.iter().map(|n| batch.path(n)).collect();
    let out = tokio::task::block_in_place(|| run(files, vec!["--seal", "--json"]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(last["batch"]["state"], "released", "{stdout}");
    let lines: Vec<Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("sha256").is_some())
        .collect();
    assert_eq!(lines.len(), names.len(), "{stdout}");
    for v in &lines {
        let name = v["file"].as_str().unwrap();
        let member = name.rsplit('/').next().unwrap();
        assert_eq!(
            v["sha256"],
            json!(sha256_hex(&batch.member(member).bytes)),
            "{v}"
        );
    }
    let view = call(&gw, Method::GET, "/v1/invitation", &token, None)
        .await
        .json();
    assert_eq!(view["batch"]["state"], "released");
}

/// A holder (or a page) retrying a revoked invitation cannot grow the audit trail without
/// bound: every request is refused, the first 10 per address and window are audited one by
/// one, the rest counted for the window's `security.summary`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_of_a_revoked_invitation_are_bounded_in_the_trail() {
    // One window for the whole test, so no summary closes it part-way.
    let gw = gateway_with("[audit]\nsecurity_window = \"1h\"\n");
    let issued = issue(&gw, json!({"partner": "clinic-a"})).await;
    let token = token_of(&issued);
    let id = issued["id"].as_str().unwrap();
    let a = call(
        &gw,
        Method::DELETE,
        &format!("/v1/invitations/{id}"),
        PUBLISHER_TOKEN,
        None,
    )
    .await;
    assert_eq!(a.status, 200);
    for _ in 0..25 {
        let a = call(&gw, Method::GET, "/v1/invitation", &token, None).await;
        assert_eq!(a.refusal(), (410, "invitation.revoked".into()));
    }
    let entries = export_audit(&gw.config_path);
    assert_eq!(actions(&entries, "invitation.refused").len(), 10);
    // A graceful stop closes the window: the other 15 are in its summary.
    let mut gw = gw;
    assert!(gw.stop().success());
    let entries = export_audit(&gw.config_path);
    let summaries: Vec<_> = actions(&entries, "security.summary")
        .into_iter()
        .filter(|e| e["details"]["kind"] == "invitation_refused")
        .collect();
    assert_eq!(summaries.len(), 1, "{summaries:?}");
    assert_eq!(summaries[0]["details"]["repeats"], 15);
}
