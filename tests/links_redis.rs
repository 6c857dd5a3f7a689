#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Two gateway instances sharing the real Redis state store (and one data directory for
//! blobs and keys): a link revoked on one stops working on the other on the very next
//! request, and two instances cannot both spend a one-download allowance.
//!
//! Needs Redis on 127.0.0.1:6379 (unique key prefix per test). Skipped with a notice when
//! it is unreachable, except under `CI`, where that fails.

mod support;

use serde_json::json;
use support::Gateway;
use support::links::{PUBLISHER_TOKEN, actions, data, import, issue, publisher_toml};
use support::redis::Prefix;

/// Both instances share one directory (keys, blobs, import dir), so each names its own
/// `server.instance_id` (two live gateways with one id refuse to start).
fn redis_extra(prefix: &str, instance_id: &str) -> String {
    format!(
        "[server]\ninstance_id = \"{instance_id}\"\n\n[state]\nbackend = \"redis\"\nredis_url = \"{}\"\nredis_prefix = \"{prefix}\"\n\
         [keys]\nsegment_size = 4096\n{}",
        support::redis::url(),
        publisher_toml()
    )
}

fn url_on(gw: &Gateway, link: &serde_json::Value) -> String {
    gw.url(link["path"].as_str().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_on_one_instance_stops_the_link_on_another_at_once() {
    if !support::redis::available() {
        return;
    }
    let prefix = Prefix::new("revoke");
    let tmp = tempfile::tempdir().unwrap();
    let mut one = Gateway::start_in(tmp.path(), &redis_extra(prefix.as_str(), "one"));
    let two = Gateway::start_in(tmp.path(), &redis_extra(prefix.as_str(), "two"));
    assert_ne!(one.addr, two.addr);
    let artifact = import(&one, "shared.ndjson", &data(20_000, 8)).await;
    let link = issue(&one, json!({"artifact": artifact, "partner": "payer-a"})).await;
    let c2 = two.client_with(&[&rustls::version::TLS13], &[b"http/1.1"]);
    // Instance two serves the link issued on instance one (shared keys, grants, blobs).
    let resp = c2.get(url_on(&two, &link)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap().len(), 20_000);
    // Revoke on instance one; the very next request on instance two (same keep-alive
    // connection) is refused.
    let resp = one
        .client()
        .delete(one.url(&format!("/v1/links/{}", link["grant"].as_str().unwrap())))
        .bearer_auth(PUBLISHER_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = c2.get(url_on(&two, &link)).send().await.unwrap();
    assert_eq!(resp.status(), 403);
    drop(two);
    // Both instances wrote the one audit chain in Redis.
    let audit = support::links::stop_and_export_audit(&mut one);
    let rejected = actions(&audit, "download.rejected");
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0]["details"]["reason"], "revoked");
    let instances: std::collections::BTreeSet<_> =
        audit.iter().map(|e| e["instance"].to_string()).collect();
    assert!(instances.len() >= 2, "both instances wrote the one chain");
    // ... and it is one gapless, intact chain: `audit verify` recomputes every link.
    let text = support::cli(&one.config_path, &["audit", "verify"]);
    assert!(text.contains("audit chain intact"), "{text}");
    assert!(
        text.contains(&format!("length     {}\n", audit.len())),
        "{text} (exported {} entries)",
        audit.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_cannot_both_spend_the_last_download() {
    if !support::redis::available() {
        return;
    }
    let prefix = Prefix::new("spend");
    let tmp = tempfile::tempdir().unwrap();
    let one = Gateway::start_in(tmp.path(), &redis_extra(prefix.as_str(), "one"));
    let two = Gateway::start_in(tmp.path(), &redis_extra(prefix.as_str(), "two"));
    let len = 300_000;
    let artifact = import(&one, "once.ndjson", &data(len, 9)).await;
    for _ in 0..5 {
        let link = issue(
            &one,
            json!({"artifact": artifact, "partner": "payer-a", "max_downloads": 1}),
        )
        .await;
        // The same full download, at once on both instances: exactly one gets it.
        let (a, b) = tokio::join!(
            one.client().get(url_on(&one, &link)).send(),
            two.client().get(url_on(&two, &link)).send(),
        );
        let mut statuses = [a.unwrap().status().as_u16(), b.unwrap().status().as_u16()];
        statuses.sort_unstable();
        assert_eq!(statuses, [200, 403]);
    }
}
