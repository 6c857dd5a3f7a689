//! The upload engine's audit events, black-box: every action of `proto/upload-v1.md` is in
//! the exported chain with the figures a security team reconstructs a transfer from (ids,
//! offsets, lengths, SHA-256), the chain verifies, and the client's metadata (a file name
//! is PHI) is in no audit entry and in no file of the data directory.

use super::*;

const FILE_NAME: &str = "Referral-DOE-JANE-1961-03-07.pdf";

/// Every byte of every file under `dir` (the state database, blobs, keys).
fn all_bytes(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    files_named(dir, "")
        .into_iter()
        .filter(|p| p.is_file())
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The one entry with this action and subject.
fn entry<'a>(
    entries: &'a [serde_json::Value],
    action: &str,
    subject: &str,
) -> Vec<&'a serde_json::Value> {
    entries
        .iter()
        .filter(|e| e["action"] == action && e["subject"] == subject)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_upload_action_is_audited_with_its_digests_and_no_metadata_anywhere() {
    let mut gw = Gateway::start(CONF);
    let tus = Tus::new(&gw);
    let body = data(300_000, 21);
    let meta = format!(
        "filename {},filetype YXBwbGljYXRpb24vcGRm",
        b64(FILE_NAME.as_bytes())
    );
    let path = tus
        .create(Some(300_000), &[("upload-metadata", &meta)])
        .await;
    let id = id_of(&path).to_owned();

    // A verified chunk, a refused one, then the rest without a checksum.
    let first = &body[..100_000];
    let sum = checksum("sha256", first);
    let resp = tus
        .patch(&path, 0, first.to_vec(), &[("upload-checksum", &sum)])
        .await;
    assert_eq!(resp.status(), 204);
    let wrong = checksum("sha256", b"something else");
    let resp = tus
        .patch(
            &path,
            100_000,
            body[100_000..].to_vec(),
            &[("upload-checksum", &wrong)],
        )
        .await;
    assert_eq!(resp.status(), 460);
    assert_eq!(
        tus.patch_ok(&path, 100_000, &body[100_000..]).await,
        300_000
    );

    // A second upload, terminated.
    let gone = tus.create(Some(10), &[]).await;
    assert_eq!(tus.patch_ok(&gone, 0, b"abcde").await, 5);
    assert_eq!(tus.delete(&gone).await.status(), 204);
    let gone_id = id_of(&gone).to_owned();

    tokio::task::block_in_place(|| gw.stop());
    let export = support::cli(&gw.config_path, &["audit", "export"]);
    let entries = support::audit_schema::parse_export(&export);

    let created = entry(&entries, "upload.created", &id);
    assert_eq!(created.len(), 1, "{export}");
    assert_eq!(created[0]["actor"]["name"], "clinic");
    assert_eq!(created[0]["details"]["length"], 300_000);
    assert_eq!(created[0]["details"]["metadata_pairs"], 2);

    let chunks = entry(&entries, "upload.chunk_accepted", &id);
    assert_eq!(chunks.len(), 2, "{export}");
    let (c0, c1) = (&chunks[0]["details"], &chunks[1]["details"]);
    assert_eq!(
        (c0["index"].as_u64(), c0["offset"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(c0["length"], 100_000);
    assert_eq!(c0["sha256"], sha256_hex(first));
    assert_eq!(c0["checksum_verified"], "sha256");
    assert_eq!(
        (c1["index"].as_u64(), c1["offset"].as_u64()),
        (Some(1), Some(100_000))
    );
    assert_eq!(c1["length"], 200_000);
    assert_eq!(c1["sha256"], sha256_hex(&body[100_000..]));
    assert_eq!(c1["checksum_verified"], serde_json::Value::Null);

    let mismatch = entry(&entries, "upload.checksum_mismatch", &id);
    assert_eq!(mismatch.len(), 1, "{export}");
    assert_eq!(mismatch[0]["outcome"], "failure");
    assert_eq!(mismatch[0]["details"]["offset"], 100_000);
    assert_eq!(mismatch[0]["details"]["length"], 200_000);
    assert_eq!(mismatch[0]["details"]["algorithm"], "sha256");

    let completed = entry(&entries, "upload.completed", &id);
    assert_eq!(completed.len(), 1, "{export}");
    assert_eq!(completed[0]["details"]["sha256"], sha256_hex(&body));
    assert_eq!(completed[0]["details"]["length"], 300_000);
    assert_eq!(completed[0]["details"]["chunks"], 2);

    let terminated = entry(&entries, "upload.terminated", &gone_id);
    assert_eq!(terminated.len(), 1, "{export}");
    assert_eq!(terminated[0]["details"]["offset"], 5);
    assert_eq!(terminated[0]["details"]["complete"], false);

    // In the order they happened.
    let seq = |e: &serde_json::Value| e["seq"].as_u64().unwrap();
    assert!(seq(created[0]) < seq(chunks[0]));
    assert!(seq(chunks[0]) < seq(mismatch[0]));
    assert!(seq(mismatch[0]) < seq(chunks[1]));
    assert!(seq(chunks[1]) <= seq(completed[0]));

    let verified = support::cli(&gw.config_path, &["audit", "verify"]);
    assert!(verified.contains(&entries.len().to_string()), "{verified}");

    // The file name: not in the trail, not in any file the gateway keeps (state database,
    // blobs, keys), neither as text nor in its base64 form from the request.
    assert!(!export.contains(FILE_NAME) && !export.contains(&b64(FILE_NAME.as_bytes())));
    let files = all_bytes(&gw.data_dir());
    assert!(
        files.len() >= 3,
        "{:?}",
        files.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    for (file, bytes) in &files {
        for needle in [
            FILE_NAME.to_owned(),
            b64(FILE_NAME.as_bytes()),
            "DOE-JANE".to_owned(),
        ] {
            assert!(
                !contains(bytes, needle.as_bytes()),
                "{} holds the client's file name in the clear",
                file.display()
            );
        }
    }
}
