#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Download metering, black-box: a one-download link serves a parallel 4-range download
//! and is then spent; overlapping re-fetches spend the allowance; `curl -C -` resumes an
//! interrupted 300 MB download through a one-download link and the result's SHA-256 equals
//! `Repr-Digest`.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::Gateway;
use support::links::{
    PUBLISHER_TOKEN, actions, data, import, issue, link_url, sha256_hex, start,
    stop_and_export_audit,
};

async fn grant(gw: &Gateway, id: &str) -> Value {
    gw.client()
        .get(gw.url(&format!("/v1/links/{id}")))
        .bearer_auth(PUBLISHER_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_parallel_ranges_through_a_one_download_link_then_it_is_spent() {
    let gw = start("");
    let len = 2 * 1024 * 1024 + 12_345;
    let plain = data(len, 11);
    let artifact = import(&gw, "export.ndjson", &plain).await;
    let link = issue(
        &gw,
        json!({"artifact": artifact, "partner": "payer-a", "max_downloads": 1}),
    )
    .await;
    let url = link_url(&gw, &link);
    let quarter = len / 4;
    let bounds: Vec<(usize, usize)> = (0..4)
        .map(|i| {
            let a = i * quarter;
            let b = if i == 3 { len - 1 } else { a + quarter - 1 };
            (a, b)
        })
        .collect();
    // Four connections at once, as a parallel downloader opens them.
    let tasks: Vec<_> = bounds
        .iter()
        .map(|&(a, b)| {
            let c = gw.client_with(&[&rustls::version::TLS13], &[b"http/1.1"]);
            let url = url.clone();
            tokio::spawn(async move {
                let resp = c
                    .get(&url)
                    .header("range", format!("bytes={a}-{b}"))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), 206);
                (a, resp.bytes().await.unwrap())
            })
        })
        .collect();
    let mut assembled = vec![0u8; len];
    for t in tasks {
        let (a, bytes) = t.await.unwrap();
        assembled[a..a + bytes.len()].copy_from_slice(&bytes);
    }
    assert_eq!(sha256_hex(&assembled), sha256_hex(&plain));
    let g = grant(&gw, link["grant"].as_str().unwrap()).await;
    assert_eq!(g["usage"]["artifact_bytes"], len as u64, "{g}");
    assert_eq!(g["usage"]["full_downloads"], 1);

    // The allowance is spent: the next request of any kind is the generic 403.
    let c = gw.client();
    for req in [
        c.get(&url).header("range", "bytes=0-0"),
        c.get(&url),
        c.head(&url),
    ] {
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 403);
    }
    let resp = c.get(&url).send().await.unwrap();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "link.refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_refetches_spend_the_allowance_and_max_bytes_caps() {
    let gw = start("");
    let len = 100_000;
    let plain = data(len, 12);
    let artifact = import(&gw, "x.ndjson", &plain).await;
    let c = gw.client();

    // One download = 100 000 bytes: the first half twice leaves nothing for the second.
    let link = issue(
        &gw,
        json!({"artifact": artifact, "partner": "payer-a", "max_downloads": 1}),
    )
    .await;
    let url = link_url(&gw, &link);
    for _ in 0..2 {
        let r = c
            .get(&url)
            .header("range", "bytes=0-49999")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 206);
        assert_eq!(r.bytes().await.unwrap().len(), 50_000);
    }
    let r = c
        .get(&url)
        .header("range", "bytes=50000-")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // Two downloads: two full GETs, then nothing.
    let link = issue(
        &gw,
        json!({"artifact": artifact, "partner": "payer-a", "max_downloads": 2}),
    )
    .await;
    let url = link_url(&gw, &link);
    for _ in 0..2 {
        let r = c.get(&url).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(&r.bytes().await.unwrap()[..], &plain[..]);
    }
    assert_eq!(c.get(&url).send().await.unwrap().status(), 403);

    // A byte cap: a request that does not fit entirely is refused, never cut short.
    let link = issue(
        &gw,
        json!({"artifact": artifact, "partner": "payer-a", "max_bytes": 1000}),
    )
    .await;
    let url = link_url(&gw, &link);
    assert_eq!(
        c.get(&url).send().await.unwrap().status(),
        403,
        "100 000 bytes do not fit in 1000"
    );
    let r = c
        .get(&url)
        .header("range", "bytes=0-599")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    let r = c
        .get(&url)
        .header("range", "bytes=600-1000")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "401 bytes do not fit in the 400 left");
    let r = c
        .get(&url)
        .header("range", "bytes=600-999")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(&r.bytes().await.unwrap()[..], &plain[600..1000]);
    // HEAD spends nothing, but is refused once everything is spent.
    assert_eq!(c.head(&url).send().await.unwrap().status(), 403);
    // An unlimited link is unaffected.
    let free = issue(&gw, json!({"artifact": artifact, "partner": "payer-a"})).await;
    let g = grant(&gw, free["grant"].as_str().unwrap()).await;
    assert_eq!(g["usage"], Value::Null);
    assert_eq!(
        c.get(link_url(&gw, &free)).send().await.unwrap().status(),
        200
    );
}

fn curl(gw: &Gateway, url: &str) -> Command {
    let mut cmd = Command::new("curl");
    cmd.arg("--silent")
        .arg("--show-error")
        .arg("--fail")
        .arg("--cacert")
        .arg(gw.ca_path())
        .arg("--resolve")
        .arg(format!("localhost:{}:127.0.0.1", gw.addr.port()))
        .arg(url);
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_resumes_an_interrupted_300_mb_download_through_a_one_download_link() {
    let gw = start("[keys]\nsegment_size = 65536\n");
    let len = 300 * 1000 * 1000 + 4321;
    let plain = data(len, 21);
    let want = sha256_hex(&plain);
    let artifact = import(&gw, "bulk-export.ndjson", &plain).await;
    drop(plain);
    let link = issue(
        &gw,
        json!({"artifact": artifact, "partner": "payer-a", "max_downloads": 1}),
    )
    .await;
    let grant_id = link["grant"].as_str().unwrap().to_owned();
    let url = link_url(&gw, &link).replace("127.0.0.1", "localhost");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("download.ndjson");
    let headers = dir.path().join("headers.txt");

    // Start a throttled download and kill curl part-way.
    let mut child = curl(&gw, &url)
        .arg("--limit-rate")
        .arg("40M")
        .arg("-o")
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let got = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
        if got > 60_000_000 {
            break;
        }
        assert!(Instant::now() < deadline, "the download did not start");
        assert!(child.try_wait().unwrap().is_none(), "curl ended early");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let partial = std::fs::metadata(&out).unwrap().len();
    assert!(partial < len as u64, "interrupted before the end");

    // The gateway notices the reset, refunds what it had not sent and records the abort.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let g = grant(&gw, &grant_id).await;
        let used = g["usage"]["artifact_bytes"].as_u64().unwrap();
        if used < len as u64 {
            assert!(
                used >= partial.saturating_sub(8 << 20),
                "{used} vs {partial}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "no refund after the abort: {g}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Resume: curl sends Range: bytes=<size>- and appends.
    let status = curl(&gw, &url)
        .arg("-C")
        .arg("-")
        .arg("-D")
        .arg(&headers)
        .arg("-o")
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success(), "resume failed: {status:?}");
    let head = std::fs::read_to_string(&headers)
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        head.starts_with("http/2 206") || head.starts_with("http/1.1 206"),
        "{head}"
    );
    assert!(
        head.contains(&format!("content-range: bytes {partial}-{}/{len}", len - 1)),
        "{head}"
    );
    let digest_line = head
        .lines()
        .find(|l| l.starts_with("repr-digest:"))
        .unwrap()
        .to_owned();
    // The header was lowercased above; read the original for base64's case.
    let original = std::fs::read_to_string(&headers).unwrap();
    let digest = original
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("repr-digest:"))
        .unwrap()
        .split_once(':')
        .unwrap()
        .1
        .trim()
        .to_owned();
    assert!(digest_line.contains("sha-256=:"));
    let b64 = digest
        .strip_prefix("sha-256=:")
        .and_then(|d| d.strip_suffix(':'))
        .unwrap();
    use base64::Engine as _;
    let from_header = hex::encode(
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap(),
    );

    let file = std::fs::read(&out).unwrap();
    assert_eq!(file.len(), len);
    let got = sha256_hex(&file);
    assert_eq!(got, from_header, "the file's SHA-256 equals Repr-Digest");
    assert_eq!(got, want);

    // The one download is used up: a whole new copy is refused.
    let resp = gw.client().get(link_url(&gw, &link)).send().await.unwrap();
    assert_eq!(resp.status(), 403);

    // The trail (checked against the audit schema as it is exported) holds the abort:
    // what was planned, what reached the connection, what went back to the allowance.
    let mut gw = gw;
    let audit = tokio::task::block_in_place(|| stop_and_export_audit(&mut gw));
    let aborted = actions(&audit, "download.aborted");
    assert_eq!(aborted.len(), 1, "{aborted:?}");
    let d = &aborted[0]["details"];
    assert_eq!(aborted[0]["subject"], grant_id.as_str());
    assert_eq!(d["planned"], len as u64);
    let delivered = d["delivered"].as_u64().unwrap();
    // The undelivered rest goes back to the allowance, plus what was still in buffers.
    assert!(
        d["refunded"].as_u64().unwrap() >= len as u64 - delivered,
        "{d}"
    );
    assert!(delivered >= partial, "{delivered} < {partial}");
}
