#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Three gateway processes as a cluster: each with its own data directory (so its own
//! instance id and TLS certificate), sharing the real Redis state store, the S3 blob store
//! (the moto server of `support::s3`, over TLS trusted through `blob.ca_file`), one static
//! KEK and one link key, given to each by
//! configuration as a deployment would from its secret store. Nothing else is shared: no
//! file of one instance is read by another.
//!
//! - A link issued on A downloads (whole and ranged) through B, is revoked on C, and the
//!   very next request on A is refused.
//! - An upload starts on A; A is killed (SIGKILL) while a PATCH holds the upload; the
//!   client resumes on B (HEAD for the offset, PATCH from there, as every tus client does,
//!   retrying while the dead instance's lease is held), and completes it on C. Every
//!   instance then reports the whole file's SHA-256, the artifact registered from it on C
//!   has it, the bytes downloaded back through B are the file, and A, restarted, sees the
//!   finished upload. Nothing acknowledged is lost, nothing corrupted.
//! - The one audit chain, written by all the instances, verifies; and each instance signed
//!   checkpoints of it into the bucket (`audit-checkpoints/`, the blob store's bucket by
//!   default), which `sallyport audit verify` finds consistent with the chain.
//!
//! Needs Redis on 127.0.0.1:6379 and the moto server; under `CI`, either missing fails.

mod support;

use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::json;
use support::Gateway;
use support::links::{
    PUBLISHER_TOKEN, actions, call, data, import, issue, publisher_toml, sha256_hex,
};
use support::redis::Prefix;
use support::s3::S3Test;
use support::tus_http::{Tus, header, id_of, repr_digest, spawn_slow_patch, until_locked};

/// Four PATCHes' worth of 1 MiB: acknowledged on A, cut on A, resumed on B, finished on C.
const LEN: usize = 4 << 20;
const CHUNK: usize = 1 << 20;

/// The cluster's shared configuration: state, blobs, keys. `lease_ttl` is a minute, so a
/// resume on B within it proves that B took the dead instance's lease over when A's
/// presence lapsed, not when the lease ran out.
fn cluster_toml(redis: &str, blob: &str) -> String {
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    format!(
        "[state]\nbackend = \"redis\"\nredis_url = \"{}\"\nredis_prefix = \"{redis}\"\n\n\
         {blob}\n\
         [uploads]\nlease_ttl = \"60s\"\n\n\
         [audit]\ncheckpoint_every = 5\n\n\
         [[links.keys]]\nid = \"cluster-1\"\nstate = \"current\"\nsecret = \"{}\"\n\n\
         [keys]\nprovider = \"static\"\nstatic_kek_id = \"cluster\"\nstatic_current_version = 1\n\
         segment_size = 4096\n\
         [[keys.static_keks]]\nversion = 1\nkey = \"{}\"\n{}",
        support::redis::url(),
        b64(&[0x5a; 32]),
        b64(&[0xa5; 32]),
        publisher_toml()
    )
}

/// GET `url` through `gw` with an optional Range; status and body.
async fn get(gw: &Gateway, url: &str, range: Option<&str>) -> (u16, Vec<u8>) {
    let mut req = gw.client().get(url);
    if let Some(r) = range {
        req = req.header("range", r);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.bytes().await.unwrap().to_vec())
}

/// `link`'s path on another instance.
fn on(gw: &Gateway, link: &serde_json::Value) -> String {
    gw.url(link["path"].as_str().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_share_uploads_links_and_revocations_and_survive_a_kill() {
    let Some(s3) = S3Test::require() else {
        return;
    };
    if !support::redis::available() {
        return;
    }
    let redis = Prefix::new("cluster");
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let config = |i: usize| cluster_toml(redis.as_str(), &s3.blob_toml_tls(dirs[i].path()));
    let mut a = Gateway::start_in(dirs[0].path(), &config(0));
    let b = Gateway::start_in(dirs[1].path(), &config(1));
    let mut c = Gateway::start_in(dirs[2].path(), &config(2));

    // --- A link issued on A, downloaded through B, revoked on C, refused on A. ---
    let exported = data(300_000, 21);
    let artifact = import(&a, "export.ndjson", &exported).await;
    let link = issue(&a, json!({"artifact": artifact, "partner": "payer-a"})).await;
    let (status, body) = get(&b, &on(&b, &link), None).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(sha256_hex(&body), sha256_hex(&exported));
    let (status, body) = get(&b, &on(&b, &link), Some("bytes=70000-200999")).await;
    assert_eq!(status, 206);
    assert_eq!(body, exported[70_000..201_000]);
    let grant = link["grant"].as_str().unwrap();
    let (status, revoked) = call(
        &c,
        reqwest::Method::DELETE,
        &format!("/v1/links/{grant}"),
        PUBLISHER_TOKEN,
        None,
    )
    .await;
    assert_eq!(status, 200, "{revoked}");
    let (status, _) = get(&a, &on(&a, &link), None).await;
    assert_eq!(status, 403, "a link revoked on C still downloads on A");

    // --- An upload started on A, A killed mid-PATCH, resumed on B, finished on C. ---
    let file = data(LEN, 22);
    let tus_a = Tus::new(&a);
    let path = tus_a.create(Some(LEN as u64), &[]).await;
    let acked = tus_a.patch_ok(&path, 0, &file[..CHUNK]).await;
    assert_eq!(acked, CHUNK as u64);
    // A slow PATCH of the next chunk holds the upload's lease on A when the kill comes.
    let cut = spawn_slow_patch(
        &tus_a,
        &path,
        acked,
        file[CHUNK..2 * CHUNK].to_vec(),
        8192,
        Duration::from_millis(20),
    );
    let locked = until_locked(&tus_a, &path, acked).await;
    assert_eq!(locked.status(), 423);
    tokio::time::sleep(Duration::from_millis(300)).await;
    a.signal("KILL");
    let killed = Instant::now();
    let _ = a.child.wait();
    // The cut PATCH's task usually panics on its connection error (printed, expected);
    // if an answer came at all, it is not a 204.
    if let Ok(Ok(resp)) = tokio::time::timeout(Duration::from_secs(10), cut).await {
        assert_ne!(
            resp.status(),
            204,
            "a PATCH cut by the kill was acknowledged"
        );
    }

    // B: the offset (at least what A acknowledged), then the rest of the second and the
    // third chunk, retried while the dead instance's lease stands.
    let tus_b = Tus::new(&b);
    let offset = tus_b.offset(&path).await;
    assert!(
        offset >= acked && offset <= 2 * CHUNK as u64,
        "offset on B after the kill: {offset} (A acknowledged {acked})"
    );
    let upto = 3 * CHUNK;
    let resumed = loop {
        let resp = tus_b
            .patch(&path, offset, file[offset as usize..upto].to_vec(), &[])
            .await;
        if resp.status() != 423 {
            break resp;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(20),
            "B was locked out of the upload for 20 s after A died (lease_ttl 60 s)"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        resumed.status(),
        204,
        "{:?}\nB's log:\n{}",
        resumed.headers(),
        b.drain_stderr().join("\n")
    );
    assert_eq!(header(&resumed, "upload-offset"), upto.to_string());
    let took = killed.elapsed();
    assert!(
        took < Duration::from_secs(15),
        "the resume on B took {took:?} after the kill"
    );
    eprintln!("from SIGKILL on A to the accepted resume on B: {took:?} (offset {offset})");

    // C: the last chunk.
    let tus_c = Tus::new(&c);
    assert_eq!(tus_c.offset(&path).await, upto as u64);
    let done = tus_c.patch_ok(&path, upto as u64, &file[upto..]).await;
    assert_eq!(done, LEN as u64);
    for tus in [&tus_b, &tus_c] {
        let head = tus.head(&path).await;
        assert_eq!(header(&head, "upload-offset"), LEN.to_string());
        assert_eq!(header(&head, "repr-digest"), repr_digest(&file));
    }

    // The bytes: an artifact registered on C carries the file's SHA-256, and a link issued
    // on C downloads the file itself through B.
    let (status, registered) = call(
        &c,
        reqwest::Method::POST,
        "/v1/artifacts",
        PUBLISHER_TOKEN,
        Some(json!({"upload": id_of(&path), "content_type": "application/octet-stream"})),
    )
    .await;
    assert_eq!(status, 201, "{registered}");
    assert_eq!(registered["sha256"], sha256_hex(&file));
    assert_eq!(registered["length"], LEN as u64);
    let link = issue(
        &c,
        json!({"artifact": registered["artifact"], "partner": "payer-a"}),
    )
    .await;
    let (status, body) = get(&b, &on(&b, &link), None).await;
    assert_eq!(status, 200);
    assert!(body == file, "the file downloaded through B differs");

    // A, restarted on its own directory, sees the finished upload.
    drop(a);
    let a = Gateway::start_in(dirs[0].path(), &config(0));
    let head = Tus::new(&a).head(&path).await;
    assert_eq!(header(&head, "upload-offset"), LEN.to_string());
    assert_eq!(header(&head, "repr-digest"), repr_digest(&file));

    // --- One audit chain, written by every instance, intact. ---
    drop(a);
    drop(b);
    let audit = support::links::stop_and_export_audit(&mut c);
    let instances: std::collections::BTreeSet<String> =
        audit.iter().map(|e| e["instance"].to_string()).collect();
    assert!(
        instances.len() >= 3,
        "the instances that wrote the chain: {instances:?}"
    );
    let rejected = actions(&audit, "download.rejected");
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert_eq!(rejected[0]["details"]["reason"], "revoked");
    let text = support::cli(&c.config_path, &["audit", "verify"]);
    assert!(text.contains("audit chain intact"), "{text}");

    // The checkpoints each instance signed into the bucket, one folder per signing key.
    use futures_util::TryStreamExt;
    let root = object_store::path::Path::from(format!(
        "{}{}",
        s3.prefix,
        sallyport::audit::checkpointer::BUCKET_FOLDER
    ));
    let keys_in_bucket: Vec<String> = s3
        .raw()
        .list(Some(&root))
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .unwrap();
    let signers: std::collections::BTreeSet<&str> = keys_in_bucket
        .iter()
        .filter_map(|k| k.rsplit('/').nth(1))
        .collect();
    assert!(
        signers.len() >= 2,
        "checkpoints by instance: {keys_in_bucket:?}"
    );
    // C's, checked with its public key against the chain: downloaded as an auditor
    // would with any S3 client, and read from the bucket by `--checkpoint-bucket`.
    let key = sallyport::audit::checkpointer::CheckpointKey::load_or_generate(
        &c.data_dir().join("audit-checkpoint.key"),
        false,
    )
    .unwrap();
    let folder = sallyport::blob::s3::write_once::WriteOnceFolder::open(
        &s3.settings(5 << 20),
        support::s3::BUCKET,
        &sallyport::audit::checkpointer::bucket_folder(&key.key_id_hex()),
    )
    .unwrap();
    let names = folder.names().await.unwrap();
    let saved = tempfile::tempdir().unwrap();
    let mut count = 0;
    for name in &names {
        let note = folder.read(name, 16 << 10).await.unwrap();
        std::fs::write(saved.path().join(name), &note).unwrap();
        count += 1;
    }
    assert!(count >= 1, "C signed no checkpoint: {names:?}");
    let keys = tempfile::tempdir().unwrap();
    let public = keys.path().join("c.pub");
    std::fs::write(&public, key.public_pem()).unwrap();
    let public = public.to_str().unwrap();
    let saved = saved.path().to_str().unwrap();
    for args in [
        &["--checkpoint-dir", saved][..],
        &["--checkpoint-bucket"][..],
    ] {
        let mut argv = vec!["audit", "verify", "--public-key", public];
        argv.extend_from_slice(args);
        let out = support::cli_output(&c.config_path, &argv);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{args:?}: {out:?}");
        assert!(text.contains("audit chain intact"), "{text}");
        assert!(
            text.contains(&format!(
                "checkpoints  {count} of {count} valid and consistent"
            )),
            "{args:?}: {text}"
        );
    }
    // A key that signed nothing there: cannot verify (exit 2), and says why.
    let stranger = sallyport::audit::checkpointer::CheckpointKey::load_or_generate(
        &keys.path().join("stranger.key"),
        false,
    )
    .unwrap();
    let other = keys.path().join("stranger.pub");
    std::fs::write(&other, stranger.public_pem()).unwrap();
    let out = support::cli_output(
        &c.config_path,
        &[
            "audit",
            "verify",
            "--checkpoint-bucket",
            "--public-key",
            other.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no checkpoint signed by this key"),
        "{out:?}"
    );
}
