#![allow(clippy::unwrap_used, clippy::expect_used)]
//! A crash must not lock clients out: the gateway is killed (SIGKILL) while a PATCH holds
//! the upload's lease, restarted on the same data directory, and the client's resume —
//! HEAD for the offset, then PATCH from there, as every tus client does — is accepted at
//! once, not answered `423 Locked` until the dead process's lease runs out. The lease TTL
//! is set to a minute here so that only the restart's fencing can make the resume succeed
//! in time; tus-js-client's default retries give up after about 9 s.
//!
//! On the embedded store the restart drops every lease of its previous process when it
//! opens the file. On Redis the restart is the same instance (the id kept in the data
//! directory) with a newer incarnation, and takes over its predecessor's leases at once
//! (`state::redis::presence`); the clean-stop and twin tests of Redis presence are in
//! `tests/redis_presence.rs`.

mod support;

use std::time::{Duration, Instant};

use support::Gateway;
use support::redis::Prefix;
use support::tus_http::{Tus, data, header, repr_digest, slow_body, until_locked};

const EXTRA: &str = "[uploads]\nlease_ttl = \"60s\"\n";
const LEN: usize = 1 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_after_a_crash_mid_patch_is_accepted_within_two_seconds() {
    crash_mid_patch_then_resume(EXTRA).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_redis_a_resume_after_a_crash_mid_patch_is_accepted_within_two_seconds() {
    if !support::redis::available() {
        return;
    }
    let redis = Prefix::new("crash");
    let extra = format!(
        "[state]\nbackend = \"redis\"\nredis_url = \"{}\"\nredis_prefix = \"{}\"\n\n{EXTRA}",
        support::redis::url(),
        redis.as_str()
    );
    let from_kill = crash_mid_patch_then_resume(&extra).await;
    eprintln!("redis: from SIGKILL to the accepted resume: {from_kill:?}");
}

/// Creates an upload, acknowledges a first chunk, kills the gateway with SIGKILL while a
/// slow PATCH holds the lease, restarts it on the same directory and resumes; asserts the
/// resume is accepted within 2 s of the restart and nothing acknowledged was lost. Returns
/// the time from the kill to the accepted resume (the restart's start-up included).
async fn crash_mid_patch_then_resume(extra: &str) -> Duration {
    let tmp = tempfile::tempdir().unwrap();
    let mut gw = Gateway::start_in(tmp.path(), extra);
    let file = data(LEN, 14);
    let tus = Tus::new(&gw);
    let path = tus
        .create(
            Some(LEN as u64),
            &[("upload-metadata", "filename cmVmZXJyYWwuYmlu")],
        )
        .await;
    // A first chunk is acknowledged, then a slow PATCH holds the lease when the crash comes.
    let acked = tus.patch_ok(&path, 0, &file[..100_000]).await;
    assert_eq!(acked, 100_000);
    let slow = {
        let (client, url, token) = (tus.client.clone(), tus.url(&path), tus.token.clone());
        let rest = file[acked as usize..].to_vec();
        tokio::spawn(async move {
            loop {
                let resp = client
                    .patch(&url)
                    .bearer_auth(&token)
                    .header("tus-resumable", "1.0.0")
                    .header("upload-offset", acked.to_string())
                    .header("content-type", "application/offset+octet-stream")
                    .body(slow_body(rest.clone(), 4096, Duration::from_millis(100)))
                    .send()
                    .await;
                // 423: it met a probe of `until_locked` holding the lease for an instant.
                if !matches!(&resp, Ok(r) if r.status() == 423) {
                    return resp;
                }
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
        })
    };
    let locked = until_locked(&tus, &path, acked).await;
    let retry_after: u64 = header(&locked, "retry-after").parse().unwrap();
    assert!(
        retry_after > 10,
        "the lease is long: Retry-After {retry_after}"
    );
    gw.signal("KILL");
    let killed = Instant::now();
    let _ = gw.child.wait();
    // The interrupted PATCH ends with an error or a truncated answer, never a 204.
    if let Ok(Ok(Ok(resp))) = tokio::time::timeout(Duration::from_secs(10), slow).await {
        assert_ne!(
            resp.status(),
            204,
            "a PATCH cut by the crash was acknowledged"
        );
    }
    drop(gw);

    let gw = Gateway::start_in(tmp.path(), extra);
    let ready = Instant::now();
    let tus = Tus::new(&gw);
    let offset = tus.offset(&path).await;
    assert!(
        offset >= acked,
        "an acknowledged byte was lost: {offset} < {acked}"
    );
    let resp = tus
        .patch(&path, offset, file[offset as usize..].to_vec(), &[])
        .await;
    let took = ready.elapsed();
    let from_kill = killed.elapsed();
    assert_eq!(
        resp.status(),
        204,
        "the resume was refused: {:?}",
        resp.headers()
    );
    assert!(
        took < Duration::from_secs(2),
        "the resume took {took:?} after the restart"
    );
    assert_eq!(header(&resp, "upload-offset"), LEN.to_string());
    let head = tus.head(&path).await;
    assert_eq!(header(&head, "repr-digest"), repr_digest(&file));
    from_kill
}
