#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The HTTP edge, black-box: problem responses, limits, timeouts, auth, health, metrics,
//! audit through the API, graceful shutdown.

mod support;

use std::time::Duration;

use support::{ADMIN_TOKEN, Gateway, UPLOADER_TOKEN};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn problem(resp: reqwest::Response) -> (u16, serde_json::Value) {
    let status = resp.status().as_u16();
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let rid = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    let j: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(j["request_id"], rid);
    assert_eq!(j["status"], status);
    (status, j)
}

async fn tls_stream(gw: &Gateway) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    gw.h1_stream().await
}

async fn healthy(gw: &Gateway) {
    let resp = gw.client().get(gw.url("/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn routing_errors_are_problems() {
    let gw = Gateway::start("");
    let c = gw.client();
    let (s, j) = problem(c.get(gw.url("/nope")).send().await.unwrap()).await;
    assert_eq!((s, j["code"].as_str().unwrap()), (404, "request.not_found"));
    let resp = c.post(gw.url("/healthz")).send().await.unwrap();
    assert_eq!(resp.headers()["allow"], "GET, HEAD");
    let (s, j) = problem(resp).await;
    assert_eq!(
        (s, j["code"].as_str().unwrap()),
        (405, "request.method_not_allowed")
    );
    healthy(&gw).await;
}

#[tokio::test]
async fn oversize_headers_and_bodies_are_refused() {
    let gw = Gateway::start("");
    let c = gw.client_with(&[&rustls::version::TLS13], &[b"http/1.1"]);
    // Over the configured 16 KiB but within hyper's buffer: a 431 problem.
    let resp = c
        .get(gw.url("/healthz"))
        .header("x-big", "a".repeat(20_000))
        .send()
        .await
        .unwrap();
    let (s, j) = problem(resp).await;
    assert_eq!(
        (s, j["code"].as_str().unwrap()),
        (431, "request.headers_too_large")
    );
    // Far over: hyper refuses before routing; the server stays up.
    let resp = c
        .get(gw.url("/healthz"))
        .header("x-big", "a".repeat(200_000))
        .send()
        .await;
    if let Ok(r) = resp {
        assert_eq!(r.status(), 431);
    }
    // A declared body over the 1 MiB API limit: refused before a byte of it is read.
    // Over HTTP/2, so the early answer cannot race the client's write into a reset
    // (HTTP/1.1 has no way to stop a body mid-send except closing the connection).
    let h2_body = gw.client_with(&[&rustls::version::TLS13], &[b"h2"]);
    let resp = h2_body
        .get(gw.url("/v1/whoami"))
        .body(vec![0u8; 2 << 20])
        .send()
        .await
        .unwrap();
    let (s, j) = problem(resp).await;
    assert_eq!(
        (s, j["code"].as_str().unwrap()),
        (413, "request.body_too_large")
    );
    // The same over HTTP/2.
    let h2 = gw.client_with(&[&rustls::version::TLS13], &[b"h2"]);
    let resp = h2
        .get(gw.url("/healthz"))
        .header("x-big", "a".repeat(20_000))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 431);
    healthy(&gw).await;
}

/// Slowloris: a request head that began but is not complete within
/// `server.header_read_timeout` gets a `408 request.header_timeout` problem (RFC 9110
/// §15.5.9) and the connection closes; the attempt is audited as a security event. A
/// connection that never sent a byte, or an idle keep-alive one, is closed without an
/// answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_get_a_408_and_idle_connections_are_closed() {
    let mut gw = Gateway::start(
        "[server]\nheader_read_timeout = \"1s\"\nidle_timeout = \"2s\"\n[audit]\nsecurity_window = \"1s\"\n",
    );
    // Half a request head, then nothing.
    let mut s = tls_stream(&gw).await;
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
        .await
        .unwrap();
    let began = std::time::Instant::now();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    assert!(
        read.is_ok(),
        "connection was not closed after the header timeout"
    );
    assert!(
        began.elapsed() >= Duration::from_millis(900),
        "closed before the deadline"
    );
    let text = String::from_utf8_lossy(&buf).to_lowercase();
    assert!(
        text.starts_with("http/1.1 408 request timeout\r\n"),
        "{text}"
    );
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.contains("\r\nconnection: close"), "{head}");
    assert!(
        head.contains("\r\ncontent-type: application/problem+json"),
        "{head}"
    );
    assert!(
        head.contains("\r\nx-content-type-options: nosniff"),
        "{head}"
    );
    assert!(
        head.contains(&format!("\r\ncontent-length: {}", body.len())),
        "{head}"
    );
    let rid = head
        .split("\r\n")
        .find_map(|l| l.strip_prefix("x-request-id: "))
        .expect("an x-request-id")
        .to_owned();
    let j: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(j["code"], "request.header_timeout");
    assert_eq!(j["status"], 408);
    assert_eq!(j["request_id"], rid.as_str());
    // The same over plain bytes sent one at a time (a trickle is still late).
    let mut s = tls_stream(&gw).await;
    for b in b"POST /v1/uploads/ HTTP/1.1\r\nHost: l" {
        s.write_all(&[*b]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut trickled = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut trickled))
        .await
        .expect("closed after the header timeout")
        .unwrap();
    assert!(trickled.starts_with(b"HTTP/1.1 408 "), "{trickled:?}");
    // A raw TCP connection that never starts the TLS handshake is closed, unanswered.
    let mut raw = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let mut nothing = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), raw.read_to_end(&mut nothing)).await;
    assert!(read.is_ok(), "stalled handshake was not closed");
    assert!(nothing.is_empty());
    // A TLS connection that never sends a byte of a head is closed, unanswered.
    let mut silent = tls_stream(&gw).await;
    let read = tokio::time::timeout(Duration::from_secs(5), silent.read_to_end(&mut nothing)).await;
    assert!(read.is_ok(), "a silent connection was not closed");
    assert!(nothing.is_empty(), "{nothing:?}");
    // An idle keep-alive connection is closed after its response, with no 408.
    let mut s = tls_stream(&gw).await;
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let head = response_head(&mut s).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(8), s.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "idle connection was not closed");
    assert!(
        !String::from_utf8_lossy(&rest).contains("408"),
        "an idle connection got a 408: {:?}",
        String::from_utf8_lossy(&rest)
    );
    healthy(&gw).await;
    let metrics = gw
        .client()
        .get(gw.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("sallyport_header_timeouts_total 2"),
        "two late heads counted"
    );
    // Audited: the first from this address in a window at once, with the 408's request
    // id; a second in the same window only in the window's summary (the two may fall in
    // different one-second windows).
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let audit = support::links::stop_and_export_audit(&mut gw);
    let late = support::links::actions(&audit, "security.header_timeout");
    assert!(matches!(late.len(), 1 | 2), "{late:?}");
    assert_eq!(late[0]["request_id"], rid.as_str());
    assert_eq!(late[0]["details"]["head_bytes"], 48);
    assert_eq!(late[0]["outcome"], "denied");
    let repeats: u64 = support::links::actions(&audit, "security.summary")
        .iter()
        .filter(|e| e["details"]["kind"] == "header_timeout")
        .map(|e| e["details"]["repeats"].as_u64().unwrap())
        .sum();
    assert_eq!(
        late.len() as u64 + repeats,
        2,
        "every late head is accounted for"
    );
}

/// Reads one HTTP/1.1 response head from `s` (up to the blank line), lowercased.
async fn response_head<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut byte))
            .await
            .expect("a response head")
            .unwrap();
        assert_eq!(
            n,
            1,
            "closed before the head ended: {:?}",
            String::from_utf8_lossy(&head)
        );
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap().to_ascii_lowercase()
}

/// Found by the API contract run (Schemathesis, `scripts/api-contract.sh`): a refusal sent
/// before the request body was read ended the HTTP/1.1 connection without saying so, and
/// a client reusing the connection for its next request met a closed socket. Such an
/// answer now carries `Connection: close`; an answer after the body was read keeps the
/// connection.
/// An answer given before the body was read reaches a client that sends its whole body
/// before it reads: here a PATCH declaring 32 MiB to an upload that does not exist (404,
/// before a byte of the body is read). The gateway shuts its side down and reads and
/// discards the rest (a lingering close). Before, it closed the socket with the body
/// still arriving: the kernel answered the next segments with a reset, and the reset
/// threw away the 404 the client had received but not yet read — the client saw
/// "connection reset" and its write failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_early_answer_survives_the_body_it_did_not_read() {
    const BODY: usize = 32 << 20;
    let gw = Gateway::start("");
    let s = tls_stream(&gw).await;
    let (mut rd, mut wr) = tokio::io::split(s);
    let head = format!(
        "PATCH /files/00000000000000000000000000 HTTP/1.1\r\nHost: localhost\r\n\
         Authorization: Bearer {UPLOADER_TOKEN}\r\nTus-Resumable: 1.0.0\r\n\
         Upload-Offset: 0\r\nContent-Type: application/offset+octet-stream\r\n\
         Content-Length: {BODY}\r\n\r\n"
    );
    wr.write_all(head.as_bytes()).await.unwrap();
    // The whole body, then the answer: a client that does not read while it sends.
    let sent = tokio::time::timeout(Duration::from_secs(30), async {
        let chunk = vec![b'x'; 64 * 1024];
        for _ in 0..BODY / chunk.len() {
            wr.write_all(&chunk).await?;
        }
        wr.flush().await
    })
    .await
    .expect("the body was taken within 30 s");
    assert!(sent.is_ok(), "sending the body failed: {sent:?}");
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), rd.read_to_end(&mut answer))
        .await
        .expect("the connection closed after the answer");
    assert!(read.is_ok(), "reading the answer failed: {read:?}");
    let answer = String::from_utf8_lossy(&answer).to_ascii_lowercase();
    assert!(answer.starts_with("http/1.1 404"), "{answer}");
    assert!(answer.contains("\r\nconnection: close\r\n"), "{answer}");
    assert!(answer.contains("tus.not_found"), "{answer}");
}

#[tokio::test]
async fn an_answer_before_the_body_is_read_says_the_connection_closes() {
    let gw = Gateway::start("");
    let mut s = tls_stream(&gw).await;
    // A PATCH refused on its headers (Upload-Length is not a number): the 67-byte body is
    // not sent until the answer is in, so the server cannot have read it.
    let head = format!(
        "PATCH /files/00000000000000000000000000 HTTP/1.1\r\nHost: localhost\r\n\
         Authorization: Bearer {UPLOADER_TOKEN}\r\nTus-Resumable: 1.0.0\r\n\
         Upload-Offset: 0\r\nUpload-Length: 0.5\r\n\
         Content-Type: application/offset+octet-stream\r\nContent-Length: 67\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let answer = response_head(&mut s).await;
    assert!(answer.starts_with("http/1.1 4"), "{answer}");
    assert!(answer.contains("\r\nconnection: close\r\n"), "{answer}");
    // The server does close it.
    let _ = s.write_all(&[b'x'; 67]).await;
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut rest)).await;
    assert!(
        closed.is_ok(),
        "the connection stayed open after Connection: close"
    );

    // A body the handler reads (malformed JSON, refused after reading) keeps the
    // connection: a second request on it is answered.
    let mut s = tls_stream(&gw).await;
    let body = "{not json";
    let req = format!(
        "POST /v1/links HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let answer = response_head(&mut s).await;
    assert!(answer.starts_with("http/1.1 400"), "{answer}");
    assert!(!answer.contains("connection: close"), "{answer}");
    let length: usize = answer
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .expect("content-length")
        .trim()
        .parse()
        .unwrap();
    let mut problem = vec![0u8; length];
    s.read_exact(&mut problem).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let again = response_head(&mut s).await;
    assert!(again.starts_with("http/1.1 200"), "{again}");
}

/// An HTTP/2 connection that sends only the preface and then answers the server's
/// keep-alive pings, as any h2 client library does, holds a `max_connections` slot without
/// ever making a request. It is closed after `idle_timeout`: pings are not activity.
#[tokio::test]
async fn an_h2_connection_that_only_answers_pings_is_closed_when_idle() {
    // Pings every idle_timeout / 2 = 1 s; a ping unanswered within header_read_timeout
    // would close the connection on its own, so the client answers every one.
    let gw = Gateway::start("[server]\nheader_read_timeout = \"5s\"\nidle_timeout = \"2s\"\n");
    let mut s = support::tls::tls_stream(&gw.ca_path(), gw.addr, b"h2").await;
    assert_eq!(s.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    // The client preface and an empty SETTINGS frame.
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let mut pings = 0;
    let closed = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            let mut head = [0u8; 9];
            if s.read_exact(&mut head).await.is_err() {
                return;
            }
            let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
            let mut payload = vec![0u8; len];
            if s.read_exact(&mut payload).await.is_err() {
                return;
            }
            match (head[3], head[4]) {
                // SETTINGS: acknowledge.
                (4, 0) => {
                    let _ = s.write_all(&[0, 0, 0, 4, 1, 0, 0, 0, 0]).await;
                }
                // PING: answer with the same payload, ACK set.
                (6, 0) => {
                    pings += 1;
                    let mut ack = vec![0, 0, 8, 6, 1, 0, 0, 0, 0];
                    ack.extend_from_slice(&payload);
                    let _ = s.write_all(&ack).await;
                }
                // GOAWAY: the server is closing.
                (7, _) => return,
                _ => {}
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "an h2 connection with no request was kept open for 15 s ({pings} pings answered)"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "closed before the idle timeout: {:?}",
        started.elapsed()
    );
    healthy(&gw).await;
}

/// One address cannot take every connection slot: beyond
/// `server.max_connections_per_address`, its connections are closed at accept (the TLS
/// handshake fails), counted in the metrics; closing one lets the next in.
#[tokio::test]
async fn connections_per_address_are_capped() {
    let gw = Gateway::start("[server]\nmax_connections_per_address = 3\n");
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut s = tls_stream(&gw).await;
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .unwrap();
        let mut first = [0u8; 12];
        s.read_exact(&mut first).await.unwrap();
        assert_eq!(&first, b"HTTP/1.1 200");
        held.push(s);
    }
    let cfg = support::tls::client_tls(
        &gw.ca_path(),
        &[&rustls::version::TLS13],
        &[b"http/1.1"],
        None,
    );
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(cfg));
    let tcp = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let fourth = tokio::time::timeout(
        Duration::from_secs(5),
        connector.connect("localhost".try_into().unwrap(), tcp),
    )
    .await
    .expect("the fourth connection is closed at once, not left waiting");
    assert!(
        fourth.is_err(),
        "a fourth connection from one address was served"
    );
    // A freed slot takes the next connection.
    drop(held.pop());
    let mut ok = false;
    for _ in 0..50 {
        let tcp = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
        if connector
            .connect("localhost".try_into().unwrap(), tcp)
            .await
            .is_ok()
        {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ok, "the freed slot was not reused");
    drop(held);
    // The server frees the slots once it sees the closes.
    let mut metrics = String::new();
    for _ in 0..50 {
        let resp = gw
            .client()
            .get(gw.url("/metrics"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await;
        if let Ok(r) = resp {
            metrics = r.text().await.unwrap();
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let refused = metrics
        .lines()
        .find_map(|l| l.strip_prefix("sallyport_connections_refused_total "))
        .unwrap_or_else(|| panic!("no refusal counter:\n{metrics}"));
    assert!(refused.trim().parse::<u64>().unwrap() >= 1, "{refused}");
}

/// `server.metrics_access = "role"`: `/metrics` only for the `metrics` role or an admin;
/// a scraper's token grants nothing else.
#[tokio::test]
async fn metrics_can_be_limited_to_the_metrics_role() {
    const SCRAPER: &str = "metrics-scraper-token-0123456789abcdefghijk";
    let gw = Gateway::start(&format!(
        "[server]\nmetrics_access = \"role\"\n\n[[clients]]\nname = \"prometheus\"\ntoken_sha256 = \"{}\"\nroles = [\"metrics\"]\n",
        support::token_hash(SCRAPER)
    ));
    let c = gw.client();
    let get = |path: &'static str, token: Option<&'static str>| {
        let mut r = c.get(gw.url(path));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    let (status, j) = problem(get("/metrics", None).await.unwrap()).await;
    assert_eq!(status, 401, "{j}");
    let (status, j) = problem(get("/metrics", Some(UPLOADER_TOKEN)).await.unwrap()).await;
    assert_eq!(
        (status, j["code"].as_str()),
        (403, Some("auth.missing_role")),
        "{j}"
    );
    for token in [SCRAPER, ADMIN_TOKEN] {
        let r = get("/metrics", Some(token)).await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(
            r.text()
                .await
                .unwrap()
                .contains("sallyport_http_requests_total")
        );
    }
    let (status, _) = problem(get("/v1/audit/verify", Some(SCRAPER)).await.unwrap()).await;
    assert_eq!(status, 403, "the scraper's token reads nothing else");
}

/// Failed authentications and refused TLS handshakes reach the audit trail without
/// flooding it: the first per address and window is audited with its reason, the repeats
/// as one summary when the window closes; `audit verify` still passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_authentication_and_refused_handshakes_are_audited_as_summaries() {
    let mut gw = Gateway::start("[audit]\nsecurity_window = \"1s\"\n");
    let c = gw.client();
    for i in 0..6 {
        let mut r = c.get(gw.url("/v1/whoami"));
        if i > 0 {
            r = r.bearer_auth("not-a-token-anyone-has-0123456789abcdefghijk");
        }
        assert_eq!(r.send().await.unwrap().status(), 401);
    }
    // A TLS 1.1 client is refused in the handshake, three times.
    for _ in 0..3 {
        let (ok, _) = support::openssl_handshake(gw.addr, &["-tls1_1"]);
        assert!(!ok);
    }
    // Let the window close and its summaries be written.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let audit = support::links::stop_and_export_audit(&mut gw);
    let of = |action: &str| support::links::actions(&audit, action);
    let failed = of("security.auth_failed");
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["details"]["reason"], "missing");
    assert_eq!(failed[0]["details"]["endpoint"], "whoami");
    assert_eq!(failed[0]["actor"]["kind"], "anonymous");
    assert_eq!(failed[0]["client_addr"], "127.0.0.1");
    assert_eq!(failed[0]["outcome"], "denied");
    let refused = of("security.tls_refused");
    assert_eq!(refused.len(), 1, "{refused:?}");
    let summaries = of("security.summary");
    let repeats = |kind: &str| -> u64 {
        summaries
            .iter()
            .filter(|e| e["details"]["kind"] == kind)
            .map(|e| e["details"]["repeats"].as_u64().unwrap())
            .sum()
    };
    assert_eq!(repeats("auth_failed"), 5, "{summaries:?}");
    assert_eq!(repeats("tls_refused"), 2, "{summaries:?}");
    let out = support::cli(&gw.config_path, &["audit", "verify"]);
    assert!(out.contains("audit chain intact"), "{out}");
}

/// A client reaching for another client's upload gets the 404 a missing upload gets, and
/// the attempt is in the audit trail (actor, upload, what it tried).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_to_another_clients_upload_is_audited() {
    let mut gw = Gateway::start("");
    let clinic = support::tus_http::Tus::new(&gw);
    let path = clinic.create(Some(10), &[]).await;
    let lab = support::tus_http::Tus::as_token(&gw, support::LAB_TOKEN);
    assert_eq!(lab.head(&path).await.status(), 404);
    assert_eq!(lab.delete(&path).await.status(), 404);
    let resp = lab.patch(&path, 0, b"0123456789".to_vec(), &[]).await;
    assert_eq!(resp.status(), 404);
    // A missing upload is not audited as anyone's.
    let missing = "/files/0000000000000000000000000a";
    assert_eq!(lab.head(missing).await.status(), 404);
    let audit = support::links::stop_and_export_audit(&mut gw);
    let denied = support::links::actions(&audit, "upload.access_denied");
    let tried: Vec<&str> = denied
        .iter()
        .map(|e| e["details"]["attempted"].as_str().unwrap())
        .collect();
    assert_eq!(tried, ["head", "delete", "patch"], "{denied:?}");
    let id = path.rsplit('/').next().unwrap();
    for e in &denied {
        assert_eq!(e["actor"]["name"], "lab");
        assert_eq!(e["subject"], id);
        assert_eq!(e["outcome"], "denied");
    }
}

#[tokio::test]
async fn connection_limit_holds_extra_connections_back() {
    let gw = Gateway::start("[server]\nmax_connections = 2\n");
    let a = tls_stream(&gw).await;
    let _b = tls_stream(&gw).await;
    // The third connection is not served while two are open.
    let third = tokio::time::timeout(Duration::from_millis(1500), tls_stream(&gw)).await;
    assert!(third.is_err(), "a third connection was served");
    drop(a);
    let third = tokio::time::timeout(Duration::from_secs(5), tls_stream(&gw)).await;
    assert!(third.is_ok(), "a slot did not free up");
}

#[tokio::test]
async fn auth_roles_and_audit_through_the_api() {
    let gw = Gateway::start("");
    let c = gw.client();
    let resp = c.get(gw.url("/v1/whoami")).send().await.unwrap();
    assert_eq!(
        resp.headers()["www-authenticate"],
        "Bearer realm=\"sallyport\""
    );
    let (s, j) = problem(resp).await;
    assert_eq!((s, j["code"].as_str().unwrap()), (401, "auth.missing"));
    let resp = c
        .get(gw.url("/v1/whoami"))
        .bearer_auth("wrong-token")
        .send()
        .await
        .unwrap();
    assert!(
        resp.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );
    assert_eq!(problem(resp).await.1["code"], "auth.invalid");

    // An uploader may not verify the audit trail; the refusal is itself audited.
    let resp = c
        .get(gw.url("/v1/audit/verify"))
        .bearer_auth(UPLOADER_TOKEN)
        .send()
        .await
        .unwrap();
    let (s, j) = problem(resp).await;
    assert_eq!((s, j["code"].as_str().unwrap()), (403, "auth.missing_role"));

    let resp = c
        .get(gw.url("/v1/audit/verify"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let j: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(j["intact"], true);
    // server.started, security.auth_failed (the first 401 from this address; the second
    // waits for the window's summary), access.denied
    assert_eq!(j["length"], 3, "{j}");
}

#[tokio::test]
async fn readyz_and_metrics() {
    let gw = Gateway::start("");
    let c = gw.client();
    let resp = c.get(gw.url("/readyz")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let j: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(j["state_store"]["kind"], "embedded");
    assert_eq!(j["state_store"]["ok"], true);
    assert_eq!(j["blob_store"]["ok"], true);
    let _ = c.get(gw.url("/nope")).send().await.unwrap();
    let text = c
        .get(gw.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for needle in [
        r#"sallyport_http_requests_total{endpoint="readyz",status="200"} 1"#,
        r#"sallyport_http_requests_total{endpoint="unrouted",status="404"} 1"#,
        r#"sallyport_http_request_duration_seconds_bucket{le="#,
        "sallyport_open_connections ",
        "sallyport_bytes_received_total ",
        "sallyport_bytes_sent_total ",
        r#"sallyport_audit_events_total{action="server.started"} 1"#,
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_shuts_down_gracefully_and_is_audited() {
    let mut gw = Gateway::start("[server]\nshutdown_grace = \"20s\"\n");
    // Idle keep-alive connections of both protocols stay open while the server stops.
    let h1 = gw.client_with(&[&rustls::version::TLS13], &[b"http/1.1"]);
    let h2 = gw.client_with(&[&rustls::version::TLS13], &[b"h2"]);
    assert_eq!(
        h1.get(gw.url("/healthz")).send().await.unwrap().status(),
        200
    );
    assert_eq!(
        h2.get(gw.url("/healthz")).send().await.unwrap().status(),
        200
    );
    let t = std::time::Instant::now();
    // Block a worker, not the runtime: the clients' connection tasks must keep running.
    let status = tokio::task::block_in_place(|| gw.stop());
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "idle connections held up shutdown"
    );
    assert!(status.success(), "{status:?}");
    let text = support::cli(&gw.config_path, &["audit", "export"]);
    support::audit_schema::parse_export(&text);
    let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(last["action"], "server.stopped");
    assert_eq!(last["details"]["abandoned_connections"], 0);
}

/// Text logs written to a pipe or a file carry no terminal colour codes: a log search for
/// `key=value` must find it.
#[tokio::test]
async fn text_logs_off_a_terminal_have_no_escape_codes() {
    let gw = Gateway::start("[log]\nformat = \"text\"\nlevel = \"info\"\n");
    let _ = gw
        .client()
        .get(gw.url("/v1/whoami"))
        .bearer_auth("a-wrong-secret-token")
        .send()
        .await
        .unwrap();
    let lines = gw.drain_stderr();
    assert!(!lines.is_empty(), "no log lines at info");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("action=\"security.auth_failed\"")
                || l.contains("action=security.auth_failed")),
        "{lines:#?}"
    );
    assert!(
        lines.iter().all(|l| !l.contains('\u{1b}')),
        "escape codes in {lines:#?}"
    );
}

#[tokio::test]
async fn json_logs_carry_no_secrets() {
    let gw = Gateway::start("[log]\nformat = \"json\"\nlevel = \"debug\"\n");
    let c = gw.client();
    let _ = c
        .get(gw.url("/v1/whoami"))
        .bearer_auth(UPLOADER_TOKEN)
        .send()
        .await
        .unwrap();
    let _ = c
        .get(gw.url("/v1/whoami"))
        .bearer_auth("a-wrong-secret-token")
        .send()
        .await
        .unwrap();
    let _ = c
        .get(gw.url("/v1/audit/verify"))
        .bearer_auth(UPLOADER_TOKEN)
        .send()
        .await
        .unwrap();
    let _ = c
        .get(gw.url("/nope?name=Jane-Doe-MRN-123"))
        .send()
        .await
        .unwrap();
    let lines = gw.drain_stderr();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("\"action\":\"access.denied\"")),
        "{lines:#?}"
    );
    for l in &lines {
        let j: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}"));
        assert!(j.is_object());
        for secret in [
            UPLOADER_TOKEN,
            "a-wrong-secret-token",
            "Jane-Doe",
            &support::token_hash(UPLOADER_TOKEN),
        ] {
            assert!(!l.contains(secret), "log line leaks {secret}: {l}");
        }
    }
}

/// A private redis-server on a free port (not the shared one: this test stops it).
struct PrivateRedis {
    child: std::process::Child,
}

impl PrivateRedis {
    fn start(port: u16) -> Option<PrivateRedis> {
        let child = std::process::Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--port", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .spawn();
        let child = support::ci::require_or_skip("redis-server", child)?;
        let redis = PrivateRedis { child };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(redis)
    }

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_and_requests_fail_closed_while_the_state_store_is_down() {
    let port = PrivateRedis::free_port();
    let Some(redis) = PrivateRedis::start(port) else {
        return;
    };
    let gw = Gateway::start(&format!(
        "[state]\nbackend = \"redis\"\nredis_url = \"redis://127.0.0.1:{port}\"\n\
         redis_prefix = \"readyz:\"\n"
    ));
    let c = gw.client();
    let readyz = |c: reqwest::Client| {
        let url = gw.url("/readyz");
        async move {
            let resp = c
                .get(url)
                .timeout(Duration::from_secs(10))
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            (status, resp.json::<serde_json::Value>().await.unwrap())
        }
    };
    let (status, j) = readyz(c.clone()).await;
    assert_eq!((status, &j["state_store"]["kind"]), (200, &"redis".into()));

    drop(redis);
    let (status, j) = readyz(c.clone()).await;
    assert_eq!(status, 503, "{j}");
    assert_eq!(
        (
            j["state_store"]["ok"].as_bool(),
            j["blob_store"]["ok"].as_bool()
        ),
        (Some(false), Some(true))
    );
    // Liveness is not readiness: the process is fine.
    let live = c.get(gw.url("/healthz")).send().await.unwrap();
    assert_eq!(live.status(), 200);
    // A request that needs the store is refused with 503 (retry may help), not served.
    let resp = c
        .post(gw.url("/files/"))
        .bearer_auth(UPLOADER_TOKEN)
        .header("tus-resumable", "1.0.0")
        .header("upload-length", "10")
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .unwrap();
    let (status, j) = problem(resp).await;
    assert_eq!(status, 503, "{j}");
    assert!(
        !j.to_string().contains(&port.to_string()),
        "the store's address leaked: {j}"
    );

    // The store comes back on the same address: ready again, without a restart.
    let _redis = PrivateRedis::start(port).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (status, _) = readyz(c.clone()).await;
        if status == 200 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never ready again");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    healthy(&gw).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_http_only_behind_the_danger_switch_and_warned_about() {
    let gw = Gateway::start("[server]\ndanger_plaintext_http = true\n");
    let get = |path: &'static str| {
        let addr = gw.addr;
        async move {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            let req =
                format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
            s.write_all(req.as_bytes()).await.unwrap();
            let mut out = Vec::new();
            s.read_to_end(&mut out).await.unwrap();
            String::from_utf8_lossy(&out).into_owned()
        }
    };
    let text = get("/healthz").await;
    assert!(text.starts_with("HTTP/1.1 200 "), "{text}");
    // Nothing else changes: the API still wants a token.
    let text = get("/v1/audit/verify").await;
    assert!(text.starts_with("HTTP/1.1 401 "), "{text}");
    // No TLS machinery was started (no development CA), and the log says so loudly.
    assert!(
        !gw.ca_path().exists(),
        "a development CA was made for a plaintext server"
    );
    let log = gw.drain_stderr().join("\n");
    assert!(log.contains("danger_plaintext_http is on"), "{log}");
}
