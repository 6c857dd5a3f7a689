//! Who and how long: 404 for unknown uploads and for strangers (admins may), 410 after
//! expiry until the sweeper removes the upload, termination that deletes the data.

use super::*;

// === existence and ownership ===

#[tokio::test]
async fn unknown_upload_is_404() {
    let gw = Gateway::start(CONF);
    let tus = Tus::new(&gw);
    let path = "/files/0123456789abcdefghjkmnpqrs";
    problem(
        tus.patch(path, 0, b"x".to_vec(), &[]).await,
        404,
        "tus.not_found",
    )
    .await;
    problem(tus.delete(path).await, 404, "tus.not_found").await;
    problem(tus.ledger_response(path).await, 404, "tus.not_found").await;
    let head = tus.head(path).await;
    assert_eq!(head.status(), 404);
    assert_eq!(header(&head, "tus-resumable"), "1.0.0");
    // Not an upload id at all: no such resource.
    for bad in [
        "/files/x",
        "/files/0123456789ABCDEFGHJKMNPQRS",
        "/files/0123456789abcdefghjkmnpqrs/",
    ] {
        problem(
            tus.patch(bad, 0, b"x".to_vec(), &[]).await,
            404,
            "request.not_found",
        )
        .await;
    }
}

#[tokio::test]
async fn another_principals_upload_is_404_while_an_admin_may_use_it() {
    let gw = Gateway::start(CONF);
    let lab = Tus::as_token(&gw, LAB_TOKEN);
    let clinic = Tus::new(&gw);
    let admin = Tus::as_token(&gw, ADMIN_TOKEN);
    let path = lab
        .create(Some(10), &[("upload-metadata", "filename bGFiLnR4dA==")])
        .await;
    assert_eq!(lab.patch_ok(&path, 0, b"abc").await, 3);
    // To a stranger the upload does not exist: the same 404 as an unknown id, with
    // nothing that reveals its state.
    let head = clinic.head(&path).await;
    assert_eq!(head.status(), 404);
    for name in [
        "upload-offset",
        "upload-length",
        "upload-expires",
        "upload-metadata",
    ] {
        assert_no(&head, name);
    }
    let h = problem(
        clinic.patch(&path, 3, b"def".to_vec(), &[]).await,
        404,
        "tus.not_found",
    )
    .await;
    assert!(h.get("upload-expires").is_none() && h.get("upload-offset").is_none());
    let h = problem(
        clinic.patch(&path, 0, b"def".to_vec(), &[]).await,
        404,
        "tus.not_found",
    )
    .await;
    assert!(h.get("upload-offset").is_none());
    problem(clinic.delete(&path).await, 404, "tus.not_found").await;
    problem(clinic.ledger_response(&path).await, 404, "tus.not_found").await;
    // The admin sees and may continue it; the ledger names who sent each chunk.
    let head = admin.head(&path).await;
    assert_eq!(head.status(), 200);
    assert_eq!(header(&head, "upload-offset"), "3");
    assert_eq!(header(&head, "upload-metadata"), "filename bGFiLnR4dA==");
    assert_eq!(admin.patch_ok(&path, 3, b"def").await, 6);
    let ledger = admin.ledger(&path).await;
    assert_eq!(ledger["chunks"][0]["principal"], "lab");
    assert_eq!(ledger["chunks"][1]["principal"], "ops");
    // The owner still has it.
    assert_eq!(lab.offset(&path).await, 6);
    // Reading the ledger needs the uploader role too: no credentials is 401.
    let resp = gw
        .client()
        .get(gw.url(&format!("{path}/ledger")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}

// === expiry ===

/// `expire_after` is 3 s here, so the test waits seconds for expiry instead of a minute.
/// A restart runs the sweeper at once, which removes the expired upload's data and keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_upload_is_410_until_the_sweeper_removes_it() {
    let conf = "[uploads]\nmax_size = \"1MiB\"\nexpire_after = \"3s\"\n";
    let mut gw = Gateway::start(conf);
    let tus = Tus::new(&gw);
    let path = tus
        .create(Some(10), &[("upload-metadata", "filename ZXhwaXJlZA==")])
        .await;
    let resp = tus.patch(&path, 0, b"abc".to_vec(), &[]).await;
    assert_eq!(resp.status(), 204);
    let exp = expires(resp.headers());
    let done = tus.create(Some(3), &[]).await;
    assert_eq!(tus.patch_ok(&done, 0, b"xyz").await, 3);
    let id = id_of(&path).to_owned();
    assert!(!files_named(&gw.data_dir(), &id).is_empty());
    // Wait until the expiry instant has passed (one-second resolution).
    while unix_now() <= exp {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let head = tus.head(&path).await;
    assert_eq!(head.status(), 410);
    assert_eq!(http_date_unix(&header(&head, "upload-expires")), exp);
    let h = problem(
        tus.patch(&path, 3, b"def".to_vec(), &[]).await,
        410,
        "tus.expired",
    )
    .await;
    assert_eq!(http_date_unix(&header_in(&h, "upload-expires")), exp);
    problem(tus.delete(&path).await, 410, "tus.expired").await;
    problem(tus.ledger_response(&path).await, 410, "tus.expired").await;
    // Ownership comes first: a stranger cannot learn that it expired.
    let lab = Tus::as_token(&gw, LAB_TOKEN);
    assert_eq!(lab.head(&path).await.status(), 404);
    // A complete upload does not expire.
    assert_eq!(tus.head(&done).await.status(), 200);
    // Restart: the sweeper runs at start-up and destroys the expired upload.
    tokio::task::block_in_place(|| gw.stop());
    let gw2 = Gateway::start_in(&gw.dir, conf);
    let tus = Tus::new(&gw2);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let status = tus.head(&path).await.status();
        if status == 404 {
            break;
        }
        assert_eq!(status, 410);
        assert!(
            std::time::Instant::now() < deadline,
            "the sweeper never ran"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        files_named(&gw2.data_dir(), &id),
        Vec::<std::path::PathBuf>::new()
    );
    assert_eq!(tus.offset(&done).await, 3);
    // The sweep is audited.
    let mut gw2 = gw2;
    tokio::task::block_in_place(|| gw2.stop());
    let text = crate::support::cli(&gw2.config_path, &["audit", "export"]);
    crate::support::audit_schema::parse_export(&text);
    assert!(
        text.lines()
            .any(|l| l.contains("\"upload.expired\"") && l.contains(&id)),
        "{text}"
    );
}

// === termination ===

#[tokio::test]
async fn delete_terminates_and_destroys_the_data() {
    let gw = Gateway::start(CONF);
    let tus = Tus::new(&gw);
    let blobs = gw.data_dir().join("blobs");
    let before = file_count(&blobs);
    let path = tus
        .create(
            Some(200_000),
            &[("upload-metadata", "filename c2Vuc2l0aXZlLmRjbQ==")],
        )
        .await;
    assert_eq!(tus.patch_ok(&path, 0, &data(150_000, 5)).await, 150_000);
    let id = id_of(&path).to_owned();
    assert!(
        !files_named(&blobs, &id).is_empty(),
        "no blob for the upload"
    );
    assert!(file_count(&blobs) > before + 1, "no blob for the metadata");
    let resp = tus.delete(&path).await;
    assert_eq!(resp.status(), 204);
    assert_eq!(header(&resp, "tus-resumable"), "1.0.0");
    // Gone for every method, the admin's too.
    assert_eq!(tus.head(&path).await.status(), 404);
    assert_eq!(
        Tus::as_token(&gw, ADMIN_TOKEN).head(&path).await.status(),
        404
    );
    problem(
        tus.patch(&path, 150_000, b"x".to_vec(), &[]).await,
        404,
        "tus.not_found",
    )
    .await;
    problem(tus.ledger_response(&path).await, 404, "tus.not_found").await;
    problem(tus.delete(&path).await, 404, "tus.not_found").await;
    // The data and the sealed metadata are deleted from disk.
    assert_eq!(files_named(&blobs, &id), Vec::<std::path::PathBuf>::new());
    assert_eq!(file_count(&blobs), before);
    // A complete upload can be terminated too.
    let done = tus.create(Some(3), &[]).await;
    assert_eq!(tus.patch_ok(&done, 0, b"abc").await, 3);
    assert_eq!(tus.delete(&done).await.status(), 204);
    assert_eq!(tus.head(&done).await.status(), 404);
    assert_eq!(file_count(&blobs), before);
}
