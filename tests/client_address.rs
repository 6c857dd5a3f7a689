#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Clients behind a load balancer, black-box: `X-Forwarded-For` only from
//! `server.trusted_proxies`, PROXY protocol v2 only from `server.proxy_protocol_from`, and
//! the client address they yield used by the bad-link limiter, client-network-bound links,
//! `whoami` and the audit trail.
//!
//! The whole 127.0.0.0/8 block is loopback on Linux, so a client socket bound to 127.0.0.2
//! is a second, distinct peer of the gateway listening on 127.0.0.1.

mod support;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use serde_json::{Value, json};
use support::links::{actions, data, import, issue, stop_and_export_audit};
use support::{ADMIN_TOKEN, Gateway, client_tls};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SECOND_PEER: &str = "127.0.0.2";

/// A default client (TLS 1.3, h2 and http/1.1) whose connections come from `local`.
fn client_from(gw: &Gateway, local: &str) -> reqwest::Client {
    let cfg = client_tls(
        &gw.ca_path(),
        &[&rustls::version::TLS13],
        &[b"h2", b"http/1.1"],
        None,
    );
    reqwest::Client::builder()
        .use_preconfigured_tls(cfg)
        .resolve("localhost", gw.addr)
        .local_address(local.parse::<IpAddr>().unwrap())
        .build()
        .unwrap()
}

/// The link's path with its signature replaced: a forgery the limiter counts.
fn forged(issued: &Value) -> String {
    let path = issued["path"].as_str().unwrap();
    format!(
        "{}sig={}",
        &path[..path.rfind("sig=").unwrap()],
        "A".repeat(43)
    )
}

async fn get_status(c: &reqwest::Client, url: &str, xff: Option<&str>) -> u16 {
    let mut r = c.get(url);
    if let Some(v) = xff {
        r = r.header("x-forwarded-for", v);
    }
    r.send().await.unwrap().status().as_u16()
}

/// Two clients behind one trusted proxy: one client's forged links put it on 429 and the
/// other is unaffected; a link bound to a client network is judged by the forwarded client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_behind_a_trusted_proxy_are_judged_one_by_one() {
    let mut gw = support::links::start(
        "[server]\ntrusted_proxies = [\"127.0.0.1\"]\n\
         [links]\nbad_signature_burst = 3\nbad_signature_window = \"1m\"\n",
    );
    let a = import(&gw, "a.ndjson", &data(100, 1)).await;
    let ok = issue(&gw, json!({"artifact": a, "partner": "payer-a"})).await;
    let bound = issue(
        &gw,
        json!({"artifact": a, "partner": "payer-b", "client_net": "198.51.100.0/24"}),
    )
    .await;
    let ok_url = gw.url(ok["path"].as_str().unwrap());
    let forged_url = gw.url(&forged(&ok));
    let proxy = gw.client();
    let (one, two) = (Some("198.51.100.1"), Some("203.0.113.2"));

    for _ in 0..3 {
        assert_eq!(get_status(&proxy, &forged_url, one).await, 403);
    }
    assert_eq!(get_status(&proxy, &forged_url, one).await, 429);
    assert_eq!(get_status(&proxy, &ok_url, one).await, 429);
    // The other client behind the same proxy is not blocked.
    assert_eq!(get_status(&proxy, &ok_url, two).await, 200);
    assert_eq!(get_status(&proxy, &forged_url, two).await, 403);
    // Nor is the proxy's own traffic.
    assert_eq!(get_status(&proxy, &ok_url, None).await, 200);
    // A client appending to a forged header of its own is still the right-most entry.
    assert_eq!(
        get_status(&proxy, &ok_url, Some("198.51.100.1, 203.0.113.2")).await,
        200
    );

    // The client-network binding sees the forwarded client, not the proxy.
    let bound_url = gw.url(bound["path"].as_str().unwrap());
    assert_eq!(
        get_status(&proxy, &bound_url, Some("198.51.100.77")).await,
        200
    );
    assert_eq!(get_status(&proxy, &bound_url, two).await, 403);
    assert_eq!(get_status(&proxy, &bound_url, None).await, 403);

    let audit = stop_and_export_audit(&mut gw);
    let rejected = actions(&audit, "download.rejected");
    let blocked: Vec<_> = rejected
        .iter()
        .filter(|e| e["details"]["client_blocked"] == true)
        .collect();
    assert_eq!(blocked.len(), 1, "{rejected:?}");
    assert_eq!(blocked[0]["client_addr"], "198.51.100.1");
    assert_eq!(blocked[0]["peer_addr"], "127.0.0.1");
    let served = actions(&audit, "download.served");
    let served_to = |addr: &str| served.iter().filter(|e| e["client_addr"] == addr).count();
    assert_eq!(served_to("203.0.113.2"), 2, "{served:?}");
    assert_eq!(served_to("198.51.100.77"), 1, "{served:?}");
    // The proxy's own request: the client is the peer, recorded once.
    let own: Vec<_> = served
        .iter()
        .filter(|e| e["client_addr"] == "127.0.0.1")
        .collect();
    assert_eq!(own.len(), 1);
    assert!(own[0].get("peer_addr").is_none(), "{}", own[0]);
    let mismatch = rejected
        .iter()
        .filter(|e| e["details"]["reason"] == "client_address_mismatch")
        .map(|e| e["client_addr"].as_str().unwrap())
        .collect::<Vec<_>>();
    assert_eq!(mismatch, ["203.0.113.2", "127.0.0.1"]);
}

/// A peer that is not a trusted proxy is judged by its own address whatever
/// `X-Forwarded-For` it sends: the header neither passes a client-network binding, nor
/// dodges the limiter by rotating, nor spends another client's budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_peer_sending_x_forwarded_for_is_judged_by_its_own_address() {
    let mut gw = support::links::start(
        "[server]\ntrusted_proxies = [\"127.0.0.1\"]\n\
         [links]\nbad_signature_burst = 3\nbad_signature_window = \"1m\"\n",
    );
    let a = import(&gw, "a.ndjson", &data(100, 1)).await;
    let ok = issue(&gw, json!({"artifact": a, "partner": "payer-a"})).await;
    let bound = issue(
        &gw,
        json!({"artifact": a, "partner": "payer-b", "client_net": "198.51.100.0/24"}),
    )
    .await;
    let ok_url = gw.url(ok["path"].as_str().unwrap());
    let bound_url = gw.url(bound["path"].as_str().unwrap());
    let forged_url = gw.url(&forged(&ok));
    let attacker = client_from(&gw, SECOND_PEER);

    // Claiming an address inside the bound network does not pass the binding.
    assert_eq!(
        get_status(&attacker, &bound_url, Some("198.51.100.5")).await,
        403
    );
    for i in 0..3 {
        let spoof = format!("198.51.100.{}", 10 + i);
        assert_eq!(get_status(&attacker, &forged_url, Some(&spoof)).await, 403);
    }
    // A fresh spoofed address each time, and none: still blocked, as 127.0.0.2.
    for spoof in [Some("198.51.100.99"), Some("203.0.113.2"), None] {
        assert_eq!(get_status(&attacker, &ok_url, spoof).await, 429);
    }
    // The clients it pretended to be, behind the real proxy, are not blocked.
    let proxy = gw.client();
    for client in ["198.51.100.10", "198.51.100.12"] {
        assert_eq!(get_status(&proxy, &ok_url, Some(client)).await, 200);
    }

    let audit = stop_and_export_audit(&mut gw);
    let rejected = actions(&audit, "download.rejected");
    let reasons: Vec<_> = rejected
        .iter()
        .map(|e| e["details"]["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        [
            "client_address_mismatch",
            "bad_signature",
            "bad_signature",
            "bad_signature"
        ]
    );
    for e in &rejected {
        assert_eq!(e["client_addr"], SECOND_PEER, "{e}");
        assert!(e.get("peer_addr").is_none(), "{e}");
    }
}

// === PROXY protocol v2 ===

/// A PROXY protocol v2 header, written out by hand: TCP over IPv4 from `src` to the
/// gateway, with one TLV (PP2_TYPE_UNIQUE_ID, 4 bytes) the gateway must skip.
fn proxy_header_v4(src: [u8; 4], src_port: u16, gw: &Gateway) -> Vec<u8> {
    let SocketAddr::V4(dst) = gw.addr else {
        panic!("the gateway listens on IPv4")
    };
    let mut h = b"\r\n\r\n\x00\r\nQUIT\n".to_vec();
    h.push(0x21); // version 2, command PROXY
    h.push(0x11); // AF_INET, STREAM
    h.extend_from_slice(&(12u16 + 7).to_be_bytes());
    h.extend_from_slice(&src);
    h.extend_from_slice(&dst.ip().octets());
    h.extend_from_slice(&src_port.to_be_bytes());
    h.extend_from_slice(&dst.port().to_be_bytes());
    h.extend_from_slice(&[0x05, 0x00, 0x04, 0xde, 0xad, 0xbe, 0xef]);
    h
}

/// The same for IPv6 2001:db8::7 (an IPv6 client behind an IPv4 balancer link).
fn proxy_header_v6(gw: &Gateway) -> Vec<u8> {
    let mut h = b"\r\n\r\n\x00\r\nQUIT\n".to_vec();
    h.extend_from_slice(&[0x21, 0x21, 0x00, 36]);
    let mut src = [0u8; 16];
    src[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
    src[15] = 7;
    h.extend_from_slice(&src);
    let mut dst = [0u8; 16];
    dst[15] = 1;
    h.extend_from_slice(&dst);
    h.extend_from_slice(&4711u16.to_be_bytes());
    h.extend_from_slice(&gw.addr.port().to_be_bytes());
    h
}

/// HAProxy's health-check header: LOCAL, no addresses.
const PROXY_LOCAL: &[u8] = b"\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00";

/// A TCP connection to the gateway from `local`.
async fn tcp_from(gw: &Gateway, local: &str) -> tokio::net::TcpStream {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind(SocketAddr::new(local.parse().unwrap(), 0))
        .unwrap();
    sock.connect(gw.addr).await.unwrap()
}

/// Connects from `local`, writes `preface` (a PROXY header, or nothing), then runs the TLS
/// handshake over the same connection.
async fn tls_after(
    gw: &Gateway,
    local: &str,
    preface: &[u8],
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let mut tcp = tcp_from(gw, local).await;
    tcp.write_all(preface).await?;
    let cfg = client_tls(
        &gw.ca_path(),
        &[&rustls::version::TLS13],
        &[b"http/1.1"],
        None,
    );
    let connect = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect("localhost".try_into().unwrap(), tcp);
    tokio::time::timeout(std::time::Duration::from_secs(10), connect)
        .await
        .map_err(|_| std::io::Error::other("handshake timed out"))?
}

/// `GET /v1/whoami` over an HTTP/1.1 TLS stream; (status, body).
async fn whoami(
    mut tls: tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    token: &str,
) -> (u16, Value) {
    whoami_on(&mut tls, token, None).await
}

/// `GET /v1/whoami` as the admin on a kept-alive stream, with `X-Forwarded-For: xff`.
async fn whoami_keep(
    mut tls: tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    xff: &str,
) -> (
    u16,
    Value,
    tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
) {
    let (status, body) = whoami_on(&mut tls, ADMIN_TOKEN, Some(xff)).await;
    (status, body, tls)
}

async fn whoami_on(
    tls: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    token: &str,
    xff: Option<&str>,
) -> (u16, Value) {
    let xff = xff.map_or(String::new(), |a| format!("x-forwarded-for: {a}\r\n"));
    let req = format!(
        "GET /v1/whoami HTTP/1.1\r\nhost: localhost\r\n{xff}authorization: Bearer {token}\r\n\r\n"
    );
    tls.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = tls.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed mid-response");
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).into_owned();
        let Some(end) = text.find("\r\n\r\n") else {
            continue;
        };
        let head = text[..end].to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .expect("content-length")
            .trim()
            .parse()
            .unwrap();
        if buf.len() >= end + 4 + length {
            let status = head[9..12].parse().unwrap();
            return (
                status,
                serde_json::from_slice(&buf[end + 4..end + 4 + length]).unwrap(),
            );
        }
    }
}

async fn metric(gw: &Gateway, name: &str) -> u64 {
    let text = gw
        .client()
        .get(gw.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name} not in /metrics"))
        .trim()
        .parse()
        .unwrap()
}

/// A listed balancer's PROXY header, written before the TLS handshake, names the client:
/// whoami and the audit trail show it, with the balancer as the peer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_header_from_a_listed_balancer_names_the_client() {
    let mut gw = Gateway::start("[server]\nproxy_protocol_from = [\"127.0.0.2/32\"]\n");
    let header = proxy_header_v4([203, 0, 113, 7], 40000, &gw);
    let tls = tls_after(&gw, SECOND_PEER, &header).await.unwrap();
    let (status, me) = whoami(tls, ADMIN_TOKEN).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["client_addr"], "203.0.113.7");
    assert_eq!(me["peer_addr"], SECOND_PEER);

    let tls = tls_after(&gw, SECOND_PEER, &proxy_header_v6(&gw))
        .await
        .unwrap();
    let (_, me) = whoami(tls, ADMIN_TOKEN).await;
    assert_eq!(me["client_addr"], "2001:db8::7");

    // LOCAL (the balancer's own health check): the balancer is the client.
    let tls = tls_after(&gw, SECOND_PEER, PROXY_LOCAL).await.unwrap();
    let (_, me) = whoami(tls, ADMIN_TOKEN).await;
    assert_eq!(me["client_addr"], SECOND_PEER);
    assert!(me["peer_addr"].is_null(), "{me}");

    // An unlisted peer is served as before, and is its own client.
    let tls = tls_after(&gw, "127.0.0.1", b"").await.unwrap();
    let (_, me) = whoami(tls, ADMIN_TOKEN).await;
    assert_eq!(me["client_addr"], "127.0.0.1");
    assert!(me["peer_addr"].is_null(), "{me}");

    // A failed authentication through the balancer is audited with both addresses.
    let tls = tls_after(&gw, SECOND_PEER, &header).await.unwrap();
    let (status, _) = whoami(tls, "not-a-token-anyone-has-0123456789abcdefghijk").await;
    assert_eq!(status, 401);
    let audit = stop_and_export_audit(&mut gw);
    let failed = actions(&audit, "security.auth_failed");
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["client_addr"], "203.0.113.7");
    assert_eq!(failed[0]["peer_addr"], SECOND_PEER);
    assert!(actions(&audit, "security.proxy_refused").is_empty());
}

/// `server.max_connections_per_address` counts the client a PROXY header names, once the
/// header is read: one client at its limit does not shut out the others of its balancer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_address_limit_counts_the_client_a_proxy_header_names() {
    let gw = Gateway::start(
        "[server]\nproxy_protocol_from = [\"127.0.0.2\"]\nmax_connections_per_address = 1\n",
    );
    let x = proxy_header_v4([198, 51, 100, 1], 1, &gw);
    let held = tls_after(&gw, SECOND_PEER, &x).await.unwrap();
    assert!(
        tls_after(&gw, SECOND_PEER, &x).await.is_err(),
        "a second connection for the same client is closed"
    );
    let y = proxy_header_v4([198, 51, 100, 2], 1, &gw);
    let tls = tls_after(&gw, SECOND_PEER, &y).await.unwrap();
    let (status, me) = whoami(tls, ADMIN_TOKEN).await;
    assert_eq!(status, 200);
    assert_eq!(me["client_addr"], "198.51.100.2");
    assert_eq!(metric(&gw, "sallyport_connections_refused_total").await, 1);
    drop(held);
}

/// A flood of forged links from many client addresses cannot grow the audit trail without
/// bound (issue 12 item 9): each address's refusals are audited one by one only up to the
/// limiter's burst, and only within the security window's immediate budget (200); every
/// other refusal is counted in a `security.summary` of kind `link_refused`, written when
/// the window closes (here: at the graceful stop). Before, every refused request wrote its
/// own `download.rejected`: 300 entries for this flood.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_forged_links_from_many_addresses_is_summarised() {
    const ADDRESSES: u32 = 100;
    const BURST: u32 = 3;
    let mut gw = support::links::start(&format!(
        "[server]\ntrusted_proxies = [\"127.0.0.1\"]\n\
         [links]\nbad_signature_burst = {BURST}\nbad_signature_window = \"1m\"\n\
         [audit]\nsecurity_window = \"10m\"\n"
    ));
    let a = import(&gw, "a.ndjson", &data(100, 1)).await;
    let ok = issue(&gw, json!({"artifact": a, "partner": "payer-a"})).await;
    let forged_url = gw.url(&forged(&ok));
    let proxy = gw.client();
    let client = |n: u32| format!("198.18.{}.{}", n / 200, n % 200 + 1);
    for n in 0..ADDRESSES {
        let xff = client(n);
        for _ in 0..BURST {
            assert_eq!(get_status(&proxy, &forged_url, Some(&xff)).await, 403);
        }
        // Blocked now: answered before the link is read, and never audited.
        assert_eq!(get_status(&proxy, &forged_url, Some(&xff)).await, 429);
    }
    let refused = u64::from(ADDRESSES * BURST);

    let audit = stop_and_export_audit(&mut gw);
    let one_by_one = actions(&audit, "download.rejected");
    assert_eq!(one_by_one.len(), 200, "the window's immediate budget");
    // The first addresses got their whole burst, in order, the last one blocking.
    for n in 0..3 {
        let mine: Vec<_> = one_by_one
            .iter()
            .filter(|e| e["client_addr"] == client(n).as_str())
            .collect();
        assert_eq!(mine.len(), BURST as usize, "{mine:?}");
        assert_eq!(mine[0]["details"]["reason"], "bad_signature");
        assert_eq!(mine[0]["details"]["grant"], Value::Null);
        assert_eq!(mine[BURST as usize - 1]["details"]["client_blocked"], true);
    }
    // Every refusal is accounted for: one by one, or in a summary.
    let summaries: Vec<_> = actions(&audit, "security.summary")
        .into_iter()
        .filter(|e| e["details"]["kind"] == "link_refused")
        .collect();
    let repeats: u64 = summaries
        .iter()
        .map(|e| e["details"]["repeats"].as_u64().unwrap())
        .sum();
    assert_eq!(one_by_one.len() as u64 + repeats, refused, "{summaries:?}");
    // Addresses past the budget are counted together under `*`.
    assert!(
        summaries.iter().any(|e| e["client_addr"] == "*"),
        "{summaries:?}"
    );
    assert!(summaries.len() < 10, "a few summaries, not one per address");
}

/// From an address not listed in `server.proxy_protocol_from` a PROXY header is never
/// interpreted (its bytes go to TLS, which refuses them); a listed address that sends no
/// header, a version 1 header, a malformed one or nothing in time is refused and counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_headers_only_from_listed_balancers_and_always_from_them() {
    let mut gw = Gateway::start(
        "[server]\nproxy_protocol_from = [\"127.0.0.2\"]\nproxy_protocol_timeout = \"1s\"\n\
         [audit]\nsecurity_window = \"1s\"\n",
    );
    let header = proxy_header_v4([203, 0, 113, 7], 40000, &gw);
    // Unlisted peer with a header: the header is not read, so the handshake fails.
    assert!(tls_after(&gw, "127.0.0.1", &header).await.is_err());
    assert_eq!(
        metric(&gw, "sallyport_proxy_protocol_refused_total").await,
        0
    );

    // Listed peer: no header, a text header, a TLV running past the end.
    assert!(tls_after(&gw, SECOND_PEER, b"").await.is_err());
    assert!(
        tls_after(
            &gw,
            SECOND_PEER,
            b"PROXY TCP4 203.0.113.7 127.0.0.1 40000 443\r\n"
        )
        .await
        .is_err()
    );
    let mut bad_tlv = header.clone();
    bad_tlv[30] = 0x40;
    assert!(tls_after(&gw, SECOND_PEER, &bad_tlv).await.is_err());
    // Listed peer that sends nothing: closed once proxy_protocol_timeout passes.
    let mut silent = tcp_from(&gw, SECOND_PEER).await;
    let mut one = [0u8; 1];
    let read = tokio::time::timeout(std::time::Duration::from_secs(5), silent.read(&mut one))
        .await
        .expect("closed within the PROXY timeout");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert_eq!(
        metric(&gw, "sallyport_proxy_protocol_refused_total").await,
        4
    );

    // The listed peer with a valid header still gets through.
    let tls = tls_after(&gw, SECOND_PEER, &header).await.unwrap();
    assert_eq!(
        whoami(tls, ADMIN_TOKEN).await.1["client_addr"],
        "203.0.113.7"
    );

    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let audit = stop_and_export_audit(&mut gw);
    // The first refusal per window is audited with its reason, the rest summarised (the
    // timeout may fall into a second window): four in all, each from the balancer.
    let refused = actions(&audit, "security.proxy_refused");
    assert_eq!(refused[0]["details"]["reason"], "missing");
    let repeats: u64 = actions(&audit, "security.summary")
        .into_iter()
        .filter(|e| e["details"]["kind"] == "proxy_refused")
        .map(|e| {
            assert_eq!(e["client_addr"], SECOND_PEER);
            e["details"]["repeats"].as_u64().unwrap()
        })
        .sum();
    assert_eq!(refused.len() as u64 + repeats, 4, "{refused:?}");
    for e in &refused {
        assert_eq!(e["client_addr"], SECOND_PEER);
    }
    // The unlisted peer's handshake failure is its own, and the header it sent named
    // nobody.
    let tls_refused = actions(&audit, "security.tls_refused");
    assert_eq!(tls_refused.len(), 1, "{tls_refused:?}");
    assert_eq!(tls_refused[0]["client_addr"], "127.0.0.1");
    let text = audit.iter().map(Value::to_string).collect::<String>();
    assert!(!text.contains("203.0.113.7"), "{text}");
}

/// A `trusted_proxies` address is exempt from `server.max_connections_per_address`: an HTTP
/// proxy carries many clients, known only per request, so a busy proxy is not cut off.
/// The same limit still holds for an address that is not a trusted proxy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_proxy_is_not_held_to_the_per_address_limit() {
    let gw = Gateway::start(
        "[server]\ntrusted_proxies = [\"127.0.0.1\"]\nmax_connections_per_address = 1\n",
    );
    // Three connections from the proxy (127.0.0.1), all held open and all served.
    let mut held = Vec::new();
    for n in 1..=3u8 {
        let tls = tls_after(&gw, "127.0.0.1", b"").await.unwrap();
        let (status, me, tls) = whoami_keep(tls, &format!("198.51.100.{n}")).await;
        assert_eq!(status, 200, "connection {n} from the proxy");
        assert_eq!(me["client_addr"], format!("198.51.100.{n}"));
        held.push(tls);
    }
    // Another address is still held to one connection.
    let first = tls_after(&gw, SECOND_PEER, b"").await.unwrap();
    assert!(
        tls_after(&gw, SECOND_PEER, b"").await.is_err(),
        "a second connection from an untrusted address is closed"
    );
    assert_eq!(metric(&gw, "sallyport_connections_refused_total").await, 1);
    drop((first, held));
}
