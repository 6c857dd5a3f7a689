//! The gateway end to end on the S3 blob store (`blob.backend = "s3"` against the moto
//! server of `support::s3`): a tus upload of a few MiB in 1 MiB PATCHes, published as an
//! artifact, downloaded through a signed link, with its SHA-256 checked, and its ciphertext
//! found in the bucket, not in the data directory.

#![allow(clippy::unwrap_used)]

mod support;

use futures_util::TryStreamExt;
use object_store::ObjectMeta;
use object_store::path::Path;
use serde_json::json;
use support::UPLOADER_TOKEN;
use support::links::{issue, link_url, register, sha256_hex};
use support::s3::S3Test;

const LEN: usize = 6 << 20;
const PATCH: usize = 1 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_is_stored_in_s3_and_downloads_back_through_a_signed_link() {
    let Some(s3) = S3Test::require() else {
        return;
    };
    let secrets = tempfile::tempdir().unwrap();
    let gw = support::links::start(&s3.blob_toml(secrets.path()));
    let data = support::data::data(LEN, 15);
    let client = gw.client();

    // Create, then PATCH 1 MiB at a time: each PATCH is synced, so each ends a piece.
    let created = client
        .post(gw.url("/files/"))
        .bearer_auth(UPLOADER_TOKEN)
        .header("tus-resumable", "1.0.0")
        .header("upload-length", LEN.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let location = created.headers()["location"].to_str().unwrap().to_owned();
    let upload = location.rsplit('/').next().unwrap().to_owned();
    for (i, chunk) in data.chunks(PATCH).enumerate() {
        let resp = client
            .patch(gw.url(&format!("/files/{upload}")))
            .bearer_auth(UPLOADER_TOKEN)
            .header("tus-resumable", "1.0.0")
            .header("upload-offset", (i * PATCH).to_string())
            .header("content-type", "application/offset+octet-stream")
            .body(chunk.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            204,
            "PATCH {i}; gateway log:\n{}",
            gw.drain_stderr().join("\n")
        );
        assert_eq!(
            resp.headers()["upload-offset"].to_str().unwrap(),
            ((i * PATCH) + chunk.len()).to_string()
        );
    }

    // The ciphertext is in the bucket, as pieces of the data blob and a tail blob.
    let root = Path::from(format!("{}blobs", s3.prefix));
    let objects: Vec<ObjectMeta> = s3.raw().list(Some(&root)).try_collect().await.unwrap();
    let stored: u64 = objects.iter().map(|o| o.size).sum();
    assert!(
        objects.len() >= LEN / PATCH,
        "one piece per PATCH at least: {}",
        objects.len()
    );
    assert!(
        stored > LEN as u64,
        "ciphertext is larger than the plaintext"
    );
    assert!(
        objects
            .iter()
            .any(|o| o.location.as_ref().contains(".tail/")),
        "the tail record is an object too"
    );
    let local = gw.data_dir().join("blobs");
    assert!(
        !local.exists() || std::fs::read_dir(&local).unwrap().next().is_none(),
        "nothing in the local blob directory"
    );

    // Published and downloaded through a signed link: the same bytes.
    let (status, artifact) = register(
        &gw,
        json!({"upload": upload, "content_type": "application/octet-stream"}),
    )
    .await;
    assert_eq!(status, 201, "{artifact}");
    assert_eq!(artifact["sha256"], sha256_hex(&data));
    let link = issue(
        &gw,
        json!({"artifact": artifact["artifact"], "partner": "payer-a"}),
    )
    .await;
    let resp = client.get(link_url(&gw, &link)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.bytes().await.unwrap();
    assert_eq!(body.len(), LEN);
    assert_eq!(sha256_hex(&body), sha256_hex(&data));

    // And a range from the middle, across piece boundaries.
    let resp = client
        .get(link_url(&gw, &link))
        .header("range", format!("bytes={}-{}", PATCH - 10, 3 * PATCH + 9))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 206);
    let part = resp.bytes().await.unwrap();
    assert_eq!(part.as_ref(), &data[PATCH - 10..3 * PATCH + 10]);

    // The gateway reports the store ready.
    let ready = client.get(gw.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200, "{}", ready.text().await.unwrap());
}
