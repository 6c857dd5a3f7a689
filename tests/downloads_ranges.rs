#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Downloads through signed links, black-box against the real binary: every RFC 9110
//! range form against a byte-exact oracle on an encrypted artifact whose length is not a
//! multiple of the segment size, `If-Range`, HEAD, the response headers, no content coding.

mod support;

use serde_json::json;
use support::links::{data, import, issue, link_url, sha256_hex, start};

/// 4 KiB segments; 25 whole segments and a 1234-byte final one.
const LEN: usize = 25 * 4096 + 1234;

/// What a response must be for a `Range` value, computed from the plaintext alone.
#[derive(Debug, PartialEq)]
enum Expect {
    Full,
    Single(usize, usize),
    Multi(Vec<(usize, usize)>),
    Unsatisfiable,
}

fn oracle(range: &str) -> Expect {
    use Expect::*;
    let last = LEN - 1;
    match range {
        "bytes=0-0" => Single(0, 0),
        "bytes=0-99" => Single(0, 99),
        "bytes=4095-4096" => Single(4095, 4096),
        "bytes=100-" => Single(100, last),
        "bytes=-1" => Single(last, last),
        "bytes=-1234" => Single(LEN - 1234, last),
        "bytes=-5000" => Single(LEN - 5000, last),
        "bytes=-999999" => Single(0, last),
        "bytes=102399-999999" => Single(102_399, last),
        "bytes=0-" => Single(0, last),
        "bytes=0-9,20-29" => Multi(vec![(0, 9), (20, 29)]),
        "bytes=0-9, 8192-12287, -10" => Multi(vec![(0, 9), (8192, 12287), (LEN - 10, last)]),
        // Overlapping and adjacent ranges are merged (one part).
        "bytes=0-9,5-19,20-29" => Single(0, 29),
        // Out of order: served ascending.
        "bytes=50-59,0-9" => Multi(vec![(0, 9), (50, 59)]),
        // One satisfiable range among unsatisfiable ones.
        "bytes=999999-,10-19" => Single(10, 19),
        "bytes=999999-" => Unsatisfiable,
        "bytes=103634-" => Unsatisfiable,
        "bytes=-0" => Unsatisfiable,
        // Malformed values are ignored: a full 200.
        "bytes=abc" | "bytes=5-1" | "items=0-9" | "bytes=0-9,,x" | "bytes = 0-9" | "" => Full,
        other => panic!("no oracle for {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_range_form_matches_the_oracle() {
    assert_eq!(LEN, 103_634);
    let gw = start("");
    let plain = data(LEN, 7);
    let artifact = import(&gw, "Observation.ndjson", &plain).await;
    let link = issue(&gw, json!({"artifact": artifact, "partner": "payer-a"})).await;
    let url = link_url(&gw, &link);
    let c = gw.client();
    let digest = {
        use base64::Engine as _;
        use sha2::Digest;
        format!(
            "sha-256=:{}:",
            base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(&plain))
        )
    };

    let cases = [
        "bytes=0-0",
        "bytes=0-99",
        "bytes=4095-4096",
        "bytes=100-",
        "bytes=-1",
        "bytes=-1234",
        "bytes=-5000",
        "bytes=-999999",
        "bytes=102399-999999",
        "bytes=0-",
        "bytes=0-9,20-29",
        "bytes=0-9, 8192-12287, -10",
        "bytes=0-9,5-19,20-29",
        "bytes=50-59,0-9",
        "bytes=999999-,10-19",
        "bytes=999999-",
        "bytes=103634-",
        "bytes=-0",
        "bytes=abc",
        "bytes=5-1",
        "items=0-9",
        "bytes=0-9,,x",
        "bytes = 0-9",
        "",
    ];
    let mut etag = String::new();
    for range in cases {
        let mut req = c.get(&url);
        if !range.is_empty() {
            req = req.header("range", range);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let h = resp.headers().clone();
        let body = resp.bytes().await.unwrap();
        let expected = oracle(range);
        if expected == Expect::Unsatisfiable {
            assert_eq!(status, 416, "{range:?}");
            assert_eq!(h["content-range"], format!("bytes */{LEN}"), "{range:?}");
            continue;
        }
        assert!(h.get("content-encoding").is_none());
        assert_eq!(h["accept-ranges"], "bytes");
        assert_eq!(h["repr-digest"], digest.as_str(), "{range:?}");
        assert_eq!(h["cache-control"], "private, no-store");
        assert_eq!(
            h["content-disposition"],
            "attachment; filename=\"Observation.ndjson\""
        );
        assert_eq!(h["content-length"], body.len().to_string());
        etag = h["etag"].to_str().unwrap().to_owned();
        assert!(
            etag.starts_with("\"sha256-") && !etag.starts_with("W/"),
            "{etag}"
        );
        match expected {
            Expect::Full => {
                assert_eq!(status, 200, "{range:?}");
                assert!(h.get("content-range").is_none());
                assert_eq!(h["content-type"], "application/fhir+ndjson");
                assert_eq!(&body[..], &plain[..], "{range:?}");
            }
            Expect::Single(a, b) => {
                assert_eq!(status, 206, "{range:?}");
                assert_eq!(
                    h["content-range"],
                    format!("bytes {a}-{b}/{LEN}"),
                    "{range:?}"
                );
                assert_eq!(h["content-type"], "application/fhir+ndjson");
                assert_eq!(&body[..], &plain[a..=b], "{range:?}");
            }
            Expect::Multi(parts) => {
                assert_eq!(status, 206, "{range:?}");
                let ct = h["content-type"].to_str().unwrap();
                let boundary = ct
                    .strip_prefix("multipart/byteranges; boundary=")
                    .unwrap_or_else(|| panic!("{ct}"));
                let got = parse_multipart(&body, boundary);
                assert_eq!(got.len(), parts.len(), "{range:?}");
                for ((ctype, crange, bytes), (a, b)) in got.iter().zip(&parts) {
                    assert_eq!(ctype, "application/fhir+ndjson");
                    assert_eq!(crange, &format!("bytes {a}-{b}/{LEN}"));
                    assert_eq!(&bytes[..], &plain[*a..=*b], "{range:?}");
                }
            }
            Expect::Unsatisfiable => unreachable!(),
        }
    }

    // More than 16 ranges are refused.
    let many = (0..17)
        .map(|i| format!("{}-{}", i * 10, i * 10 + 1))
        .collect::<Vec<_>>()
        .join(",");
    let resp = c
        .get(&url)
        .header("range", format!("bytes={many}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 416);

    // If-Range: the strong tag honours the range; anything else gets the whole file.
    for (if_range, status) in [
        (etag.clone(), 206),
        (format!("W/{etag}"), 200),
        ("\"sha256-other\"".to_owned(), 200),
        ("Sun, 06 Nov 1994 08:49:37 GMT".to_owned(), 200),
    ] {
        let resp = c
            .get(&url)
            .header("range", "bytes=10-19")
            .header("if-range", &if_range)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), status, "{if_range}");
        let body = resp.bytes().await.unwrap();
        let want: &[u8] = if status == 206 {
            &plain[10..20]
        } else {
            &plain
        };
        assert_eq!(&body[..], want);
    }

    // A repeated Range header is malformed: ignored.
    let resp = c
        .get(&url)
        .header("range", "bytes=0-1")
        .header("range", "bytes=2-3")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    // HEAD: the headers a GET would have, no body.
    let resp = c
        .head(&url)
        .header("range", "bytes=-10")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 206);
    assert_eq!(resp.headers()["content-length"], "10");
    assert_eq!(
        resp.headers()["content-range"],
        format!("bytes {}-{}/{LEN}", LEN - 10, LEN - 1)
    );
    assert_eq!(resp.headers()["repr-digest"], digest.as_str());
    assert!(resp.bytes().await.unwrap().is_empty());
    let resp = c.head(&url).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-length"], LEN.to_string());

    // Over HTTP/1.1 as well as h2 (the default client negotiates h2).
    let h1 = gw.client_with(&[&rustls::version::TLS12], &[b"http/1.1"]);
    let resp = h1
        .get(&url)
        .header("range", "bytes=4090-4100")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 206);
    assert_eq!(&resp.bytes().await.unwrap()[..], &plain[4090..=4100]);
    assert_eq!(sha256_hex(&plain).len(), 64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_stream_and_empty_artifacts_work() {
    let gw = start("");
    // Larger than the inline limit: streamed by the producer task in ~1 MiB chunks.
    let plain = data(3 * 1024 * 1024 + 17, 3);
    let artifact = import(&gw, "big.ndjson", &plain).await;
    let link = issue(&gw, json!({"artifact": artifact, "partner": "payer-a"})).await;
    let url = link_url(&gw, &link);
    let c = gw.client();
    let body = c.get(&url).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(sha256_hex(&body), sha256_hex(&plain));
    let resp = c
        .get(&url)
        .header("range", "bytes=1000-1999999,2500000-")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 206);
    let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
    let body = resp.bytes().await.unwrap();
    let parts = parse_multipart(&body, ct.rsplit('=').next().unwrap());
    assert_eq!(parts[0].2, plain[1000..2_000_000]);
    assert_eq!(parts[1].2, plain[2_500_000..]);

    // An empty artifact: 200 with no body; a range on it is 416, a suffix range 200.
    let empty = import(&gw, "empty.ndjson", b"").await;
    let link = issue(&gw, json!({"artifact": empty, "partner": "payer-a"})).await;
    let url = link_url(&gw, &link);
    let resp = c.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-length"], "0");
    assert_eq!(
        resp.headers()["repr-digest"],
        "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:"
    );
    assert!(resp.bytes().await.unwrap().is_empty());
    let resp = c
        .get(&url)
        .header("range", "bytes=0-")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 416);
    assert_eq!(resp.headers()["content-range"], "bytes */0");
    let resp = c
        .get(&url)
        .header("range", "bytes=-5")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

/// Parses a `multipart/byteranges` body into (Content-Type, Content-Range, bytes) parts,
/// checking the framing byte for byte.
fn parse_multipart(body: &[u8], boundary: &str) -> Vec<(String, String, Vec<u8>)> {
    let mut parts = Vec::new();
    let mut rest = body;
    let mut first = true;
    loop {
        let lead = if first {
            format!("--{boundary}")
        } else {
            format!("\r\n--{boundary}")
        };
        first = false;
        assert!(rest.starts_with(lead.as_bytes()), "delimiter");
        rest = &rest[lead.len()..];
        if rest == b"--\r\n" {
            return parts;
        }
        assert!(rest.starts_with(b"\r\n"));
        rest = &rest[2..];
        let end = rest
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("end of part headers");
        let head = std::str::from_utf8(&rest[..end]).unwrap();
        rest = &rest[end + 4..];
        let mut ctype = String::new();
        let mut crange = String::new();
        for line in head.split("\r\n") {
            let (k, v) = line.split_once(": ").unwrap();
            match k {
                "Content-Type" => ctype = v.to_owned(),
                "Content-Range" => crange = v.to_owned(),
                other => panic!("unexpected part header {other}"),
            }
        }
        let span = crange
            .strip_prefix("bytes ")
            .and_then(|s| s.split('/').next())
            .unwrap();
        let (a, b) = span.split_once('-').unwrap();
        let n = b.parse::<usize>().unwrap() - a.parse::<usize>().unwrap() + 1;
        parts.push((ctype, crange, rest[..n].to_vec()));
        rest = &rest[n..];
    }
}
