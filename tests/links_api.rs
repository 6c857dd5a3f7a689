#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The artifacts and links API and the `sallyport link|artifact` CLI, black-box: roles,
//! validation, import-directory rules, completed uploads, listing, revocation one by one
//! and in bulk.

mod support;

use serde_json::json;
use support::UPLOADER_TOKEN;
use support::links::{
    PUBLISHER_TOKEN, call, data, import, import_dir, issue, issue_raw, link_url, place, register,
    sha256_hex, start,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_and_validation() {
    let gw = start("");
    let a = import(&gw, "a.ndjson", &data(1000, 1)).await;
    use reqwest::Method as M;
    // Only publishers (and admins) may use the API.
    for (m, p) in [
        (M::POST, "/v1/links"),
        (M::GET, "/v1/links?partner=x"),
        (M::POST, "/v1/artifacts"),
        (M::POST, "/v1/links/revoke"),
    ] {
        let (s, j) = call(&gw, m.clone(), p, UPLOADER_TOKEN, Some(json!({}))).await;
        assert_eq!(
            (s, j["code"].as_str().unwrap()),
            (403, "auth.missing_role"),
            "{m} {p}"
        );
        let resp = gw.client().request(m, gw.url(p)).send().await.unwrap();
        assert_eq!(resp.status(), 401);
    }
    let (s, _) = call(
        &gw,
        M::POST,
        "/v1/links",
        support::ADMIN_TOKEN,
        Some(json!({"artifact": a, "partner": "p"})),
    )
    .await;
    assert_eq!(s, 201, "admin passes every role check");

    // Bad issue requests: specific 400 codes, nothing stored.
    for (body, code) in [
        (
            json!({"artifact": "nope", "partner": "p"}),
            "link.bad_artifact",
        ),
        (
            json!({"artifact": a, "partner": "Payer A"}),
            "link.bad_partner",
        ),
        (
            json!({"artifact": a, "partner": "p", "ttl": "soon"}),
            "link.bad_ttl",
        ),
        (
            json!({"artifact": a, "partner": "p", "ttl": "400days"}),
            "link.bad_ttl",
        ),
        (
            json!({"artifact": a, "partner": "p", "ttl": "0s"}),
            "link.bad_ttl",
        ),
        (
            json!({"artifact": a, "partner": "p", "methods": "POST"}),
            "link.bad_methods",
        ),
        (
            json!({"artifact": a, "partner": "p", "max_downloads": 0}),
            "link.bad_limit",
        ),
        (
            json!({"artifact": a, "partner": "p", "client_net": "10.0.0.1/8"}),
            "link.bad_client_net",
        ),
        (
            json!({"artifact": a, "partner": "p", "file_name": "../x"}),
            "link.bad_file_name",
        ),
        (
            json!({"artifact": a, "partner": "p", "file_name": "CON.txt"}),
            "link.bad_file_name",
        ),
        (
            json!({"artifact": a, "partner": "p", "not_before": 99_999_999_999u64}),
            "link.bad_not_before",
        ),
        (
            json!({"artifact": a, "partner": "p", "extra": 1}),
            "request.bad_json",
        ),
        (json!({"partner": "p"}), "request.bad_json"),
    ] {
        let (s, j) = issue_raw(&gw, body.clone()).await;
        assert_eq!((s, j["code"].as_str().unwrap()), (400, code), "{body}");
    }
    let (s, j) = issue_raw(
        &gw,
        json!({"artifact": "67rq0xe32xxh21dav1b2qx1ch3", "partner": "p"}),
    )
    .await;
    assert_eq!(
        (s, j["code"].as_str().unwrap()),
        (404, "artifact.not_found")
    );
    let (s, j) = call(&gw, M::GET, "/v1/links", PUBLISHER_TOKEN, None).await;
    assert_eq!((s, j["code"].as_str().unwrap()), (400, "request.bad_query"));
    let (s, _) = call(
        &gw,
        M::GET,
        "/v1/links?partner=p&artifact=x",
        PUBLISHER_TOKEN,
        None,
    )
    .await;
    assert_eq!(s, 400);
    let (s, j) = call(
        &gw,
        M::GET,
        "/v1/links/67rq0xe32xxh21dav1b2qx1ch3",
        PUBLISHER_TOKEN,
        None,
    )
    .await;
    assert_eq!((s, j["code"].as_str().unwrap()), (404, "grant.not_found"));

    // The issued link: an absolute https URL with no file name and no PHI in it.
    let out = issue(
        &gw,
        json!({"artifact": a, "partner": "payer-a", "ttl": "15m", "file_name": "smith-john.ndjson",
               "max_downloads": 3, "client_net": "127.0.0.0/8"}),
    )
    .await;
    let url = out["url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!(
            "https://localhost:{}/d/{a}?v=1&k=",
            gw.addr.port()
        )),
        "{url}"
    );
    assert!(!url.contains("smith"));
    assert_eq!(out["status"], "active");
    assert_eq!(
        out["expires"].as_u64().unwrap() - out["not_before"].as_u64().unwrap(),
        900
    );
    let resp = gw.client().get(link_url(&gw, &out)).send().await.unwrap();
    assert_eq!(
        resp.headers()["content-disposition"],
        "attachment; filename=\"smith-john.ndjson\""
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_directory_rules() {
    let gw = start("");
    let dir = import_dir(&gw);
    // Removed after import by default.
    let bytes = data(10_000, 3);
    place(&gw, "Patient.ndjson", &bytes);
    let (s, j) = register(&gw, json!({"import": "Patient.ndjson"})).await;
    assert_eq!(s, 201, "{j}");
    assert_eq!(j["source_removed"], true);
    assert_eq!(j["content_type"], "application/fhir+ndjson");
    assert!(!dir.join("Patient.ndjson").exists());
    // Nothing of the plaintext is left in the blob store.
    for entry in walk(&gw.data_dir().join("blobs")) {
        let stored = std::fs::read(&entry).unwrap();
        assert!(
            !stored.windows(64).any(|w| w == &bytes[1000..1064]),
            "plaintext in {}",
            entry.display()
        );
    }

    for (name, code, status) in [
        ("../state.redb", "artifact.bad_import_name", 400),
        ("sub/x.ndjson", "artifact.bad_import_name", 400),
        (".hidden.ndjson", "artifact.bad_import_name", 400),
        ("missing.ndjson", "import.not_found", 404),
    ] {
        let (s, j) = register(&gw, json!({"import": name})).await;
        assert_eq!((s, j["code"].as_str().unwrap()), (status, code), "{name}");
    }
    // A symlink to a file outside is refused by the kernel (O_NOFOLLOW).
    std::fs::write(gw.dir.join("outside.ndjson"), b"secret").unwrap();
    std::os::unix::fs::symlink(gw.dir.join("outside.ndjson"), dir.join("link.ndjson")).unwrap();
    let (s, j) = register(&gw, json!({"import": "link.ndjson"})).await;
    assert_eq!((s, j["code"].as_str().unwrap()), (400, "import.symlink"));
    assert!(gw.dir.join("outside.ndjson").exists());
    // So is a hard link to a file outside, which the directory's writers may not read.
    std::fs::hard_link(gw.dir.join("outside.ndjson"), dir.join("hard.ndjson")).unwrap();
    let (s, j) = register(&gw, json!({"import": "hard.ndjson"})).await;
    assert_eq!(
        (s, j["code"].as_str().unwrap()),
        (400, "import.hard_linked")
    );
    assert!(
        dir.join("hard.ndjson").exists(),
        "a refused import removes nothing"
    );
    // Directories and FIFOs are not regular files (and a FIFO must not block the open).
    std::fs::create_dir(dir.join("d.ndjson")).unwrap();
    let (s, j) = register(&gw, json!({"import": "d.ndjson"})).await;
    assert_eq!(
        (s, j["code"].as_str().unwrap()),
        (400, "import.not_regular_file")
    );
    let fifo = dir.join("pipe.ndjson");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let (s, j) = register(&gw, json!({"import": "pipe.ndjson"})).await;
    assert_eq!(
        (s, j["code"].as_str().unwrap()),
        (400, "import.not_regular_file")
    );
    // Without a .ndjson name the type must be given; unsafe names need a file_name.
    place(&gw, "report.pdf", b"%PDF-1.7");
    let (s, j) = register(&gw, json!({"import": "report.pdf"})).await;
    assert_eq!(
        (s, j["code"].as_str().unwrap()),
        (400, "artifact.content_type_required")
    );
    assert!(
        dir.join("report.pdf").exists(),
        "a refused import leaves the file"
    );
    let (s, j) = register(
        &gw,
        json!({"import": "report.pdf", "content_type": "text/csv; charset=foo; x=1"}),
    )
    .await;
    assert_eq!(
        (s, j["code"].as_str().unwrap()),
        (400, "artifact.bad_content_type")
    );
    let (s, j) = register(
        &gw,
        json!({"import": "report.pdf", "content_type": "application/pdf"}),
    )
    .await;
    assert_eq!(s, 201, "{j}");
    place(&gw, "Jane Doe labs.ndjson", b"{}\n");
    let (s, j) = register(&gw, json!({"import": "Jane Doe labs.ndjson"})).await;
    assert_eq!(
        (s, j["code"].as_str().unwrap()),
        (400, "artifact.file_name_required")
    );
    let (s, j) = register(
        &gw,
        json!({"import": "Jane Doe labs.ndjson", "file_name": "labs.ndjson"}),
    )
    .await;
    assert_eq!(s, 201, "{j}");
    let (s, j) = register(&gw, json!({"import": "x", "upload": "y"})).await;
    assert_eq!(
        (s, j["code"].as_str().unwrap()),
        (400, "artifact.bad_source")
    );
    let (s, j) = call(
        &gw,
        reqwest::Method::GET,
        &format!(
            "/v1/artifacts/{}",
            j["artifact"]
                .as_str()
                .unwrap_or("67rq0xe32xxh21dav1b2qx1ch3")
        ),
        PUBLISHER_TOKEN,
        None,
    )
    .await;
    assert_eq!(
        (s, j["code"].as_str().unwrap()),
        (404, "artifact.not_found")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_can_keep_its_source() {
    let gw = start("[artifacts]\nremove_imported = false\n");
    let (s, j) = {
        place(&gw, "keep.ndjson", b"{\"a\":1}\n");
        register(&gw, json!({"import": "keep.ndjson"})).await
    };
    assert_eq!(s, 201);
    assert_eq!(j["source_removed"], false);
    assert!(import_dir(&gw).join("keep.ndjson").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completed_uploads_become_artifacts() {
    let gw = start("");
    let c = gw.client();
    let bytes = data(200_000, 9);
    // tus creation-with-upload: the whole file in the POST.
    let resp = c
        .post(gw.url("/files/"))
        .bearer_auth(UPLOADER_TOKEN)
        .header("tus-resumable", "1.0.0")
        .header("upload-length", bytes.len().to_string())
        .header("content-type", "application/offset+octet-stream")
        .body(bytes.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "{:?}", resp.text().await);
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    let upload = location.rsplit('/').next().unwrap().to_owned();
    // An upload still waiting for bytes cannot be registered.
    let resp = c
        .post(gw.url("/files/"))
        .bearer_auth(UPLOADER_TOKEN)
        .header("tus-resumable", "1.0.0")
        .header("upload-length", "10")
        .send()
        .await
        .unwrap();
    let open = resp.headers()["location"]
        .to_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let (s, j) = register(
        &gw,
        json!({"upload": open, "content_type": "application/octet-stream"}),
    )
    .await;
    assert_eq!((s, j["code"].as_str().unwrap()), (409, "upload.incomplete"));
    let (s, j) = register(
        &gw,
        json!({"upload": "67rq0xe32xxh21dav1b2qx1ch3", "content_type": "text/csv"}),
    )
    .await;
    assert_eq!((s, j["code"].as_str().unwrap()), (404, "upload.not_found"));
    let (s, j) = register(&gw, json!({"upload": upload})).await;
    assert_eq!(
        (s, j["code"].as_str().unwrap()),
        (400, "artifact.content_type_required")
    );

    let (s, art) = register(
        &gw,
        json!({"upload": upload, "file_name": "referral.ndjson"}),
    )
    .await;
    assert_eq!(s, 201, "{art}");
    assert_eq!(art["source"], "upload");
    assert_eq!(art["upload"], upload.as_str());
    assert_eq!(art["sha256"], sha256_hex(&bytes));
    assert_eq!(art["content_type"], "application/fhir+ndjson");
    let link = issue(
        &gw,
        json!({"artifact": art["artifact"], "partner": "hie-1"}),
    )
    .await;
    let got = c
        .get(link_url(&gw, &link))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&got[..], &bytes[..]);

    // The artifact shares the upload's encrypted object: tus DELETE cannot shred it.
    let resp = c
        .delete(gw.url(&location))
        .bearer_auth(UPLOADER_TOKEN)
        .header("tus-resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 409);
    let j: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(j["code"], "upload.in_use");
    let again = c.get(link_url(&gw, &link)).send().await.unwrap();
    assert_eq!(again.status(), 200, "the artifact is still served");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_and_bulk_revocation() {
    let gw = start("");
    let a = import(&gw, "a.ndjson", &data(500, 1)).await;
    let b = import(&gw, "b.ndjson", &data(500, 2)).await;
    let mut links = Vec::new();
    for (art, partner) in [
        (&a, "payer-a"),
        (&a, "payer-b"),
        (&b, "payer-a"),
        (&b, "payer-b"),
        (&b, "payer-b"),
    ] {
        links.push(issue(&gw, json!({"artifact": art, "partner": partner})).await);
    }
    use reqwest::Method as M;
    let (s, j) = call(
        &gw,
        M::GET,
        &format!("/v1/links?artifact={b}"),
        PUBLISHER_TOKEN,
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(j["grants"].as_array().unwrap().len(), 3);
    // Paging.
    let (_, p1) = call(
        &gw,
        M::GET,
        "/v1/links?partner=payer-b&limit=2",
        PUBLISHER_TOKEN,
        None,
    )
    .await;
    assert_eq!(p1["grants"].as_array().unwrap().len(), 2);
    let next = p1["next"].as_str().unwrap();
    let (_, p2) = call(
        &gw,
        M::GET,
        &format!("/v1/links?partner=payer-b&limit=2&after={next}"),
        PUBLISHER_TOKEN,
        None,
    )
    .await;
    assert_eq!(p2["grants"].as_array().unwrap().len(), 1);

    // Revoke everything for partner payer-b: three grants, across both artifacts.
    let (s, j) = call(
        &gw,
        M::POST,
        "/v1/links/revoke",
        PUBLISHER_TOKEN,
        Some(json!({"partner": "payer-b", "reason": "offboarded"})),
    )
    .await;
    assert_eq!(s, 200, "{j}");
    assert_eq!(
        (j["revoked"].as_u64(), j["already_revoked"].as_u64()),
        (Some(3), Some(0))
    );
    let c = gw.client();
    let statuses: Vec<u16> = {
        let mut v = Vec::new();
        for l in &links {
            v.push(
                c.get(link_url(&gw, l))
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16(),
            );
        }
        v
    };
    assert_eq!(statuses, vec![200, 403, 200, 403, 403]);
    // Then by artifact: the remaining grant of a; payer-b's is already revoked.
    let (_, j) = call(
        &gw,
        M::POST,
        "/v1/links/revoke",
        PUBLISHER_TOKEN,
        Some(json!({"artifact": a, "reason": "superseded"})),
    )
    .await;
    assert_eq!(
        (j["revoked"].as_u64(), j["already_revoked"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(
        c.get(link_url(&gw, &links[0]))
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
    // Listing shows the revocation; revoking again changes nothing.
    let g = links[2]["grant"].as_str().unwrap();
    let (s, j) = call(
        &gw,
        M::DELETE,
        &format!("/v1/links/{g}"),
        PUBLISHER_TOKEN,
        None,
    )
    .await;
    assert_eq!((s, j["status"].as_str().unwrap()), (200, "revoked"));
    assert_eq!(j["revoked"]["reason"], "revoked");
    assert_eq!(j["revoked"]["by"], "exporter");
    let (_, j) = call(
        &gw,
        M::DELETE,
        &format!("/v1/links/{g}"),
        PUBLISHER_TOKEN,
        Some(json!({"reason": "again"})),
    )
    .await;
    assert_eq!(
        j["revoked"]["reason"], "revoked",
        "the first revocation stays"
    );
    for (body, code) in [
        (json!({"reason": "x"}), "link.bad_selector"),
        (
            json!({"partner": "a", "artifact": a, "reason": "x"}),
            "link.bad_selector",
        ),
        (json!({"partner": "a", "reason": "<b>"}), "link.bad_reason"),
    ] {
        let (s, j) = call(
            &gw,
            M::POST,
            "/v1/links/revoke",
            PUBLISHER_TOKEN,
            Some(body),
        )
        .await;
        assert_eq!((s, j["code"].as_str().unwrap()), (400, code));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_talks_to_the_running_gateway() {
    let gw = start("");
    let token_file = gw.dir.join("publisher.token");
    sallyport::secret::write_private_file(&token_file, support::links::PUBLISHER_TOKEN.as_bytes())
        .unwrap();
    let cli = |args: &[&str]| {
        let out = support::sallyport()
            .arg("--config")
            .arg(&gw.config_path)
            .args(args)
            .env(
                "SALLYPORT_URL",
                format!("https://localhost:{}", gw.addr.port()),
            )
            .env("SALLYPORT_TOKEN_FILE", &token_file)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    place(&gw, "Encounter.ndjson", &data(4096, 4));
    let (ok, out, err) = cli(&["artifact", "register", "--import", "Encounter.ndjson"]);
    assert!(ok, "{err}");
    let artifact = out.trim().to_owned();
    let (ok, url, err) = cli(&[
        "link",
        "issue",
        "--artifact",
        &artifact,
        "--partner",
        "payer-z",
        "--ttl",
        "1h",
        "--max-downloads",
        "2",
    ]);
    assert!(ok, "{err}");
    let url = url.trim();
    assert!(url.starts_with("https://localhost:"), "{url}");
    let resp = gw.client().get(url).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let (ok, list, err) = cli(&["link", "list", "--partner", "payer-z"]);
    assert!(ok, "{err}");
    assert!(
        list.contains("active") && list.contains("downloads=2"),
        "{list}"
    );
    let (ok, out, err) = cli(&[
        "link",
        "revoke",
        "--partner",
        "payer-z",
        "--reason",
        "test over",
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("revoked 1 grant"), "{out}");
    assert_eq!(gw.client().get(url).send().await.unwrap().status(), 403);
    // Errors are clear and non-zero.
    let (ok, _, err) = cli(&[
        "link",
        "issue",
        "--artifact",
        &artifact,
        "--partner",
        "Bad Name",
    ]);
    assert!(!ok);
    assert!(err.contains("400 link.bad_partner"), "{err}");
    let (ok, _, err) = cli(&["link", "list", "--partner", "a&artifact=x"]);
    assert!(!ok && err.contains("partner name"), "{err}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_download_audit_still_records_every_download() {
    let mut gw = start("[links]\ndanger_queued_download_audit = true\n");
    let a = import(&gw, "q.ndjson", &data(2048, 5)).await;
    let link = issue(&gw, json!({"artifact": a, "partner": "payer-q"})).await;
    let c = gw.client();
    for _ in 0..50 {
        let resp = c.get(link_url(&gw, &link)).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.bytes().await.unwrap().len(), 2048);
    }
    let audit = support::links::stop_and_export_audit(&mut gw);
    assert_eq!(support::links::actions(&audit, "download.served").len(), 50);
}
