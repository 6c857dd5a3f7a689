//! A small tus client for the black-box upload tests: requests through reqwest over real
//! TLS, raw HTTP/1.1 over tokio-rustls for what reqwest cannot send (chunked bodies with
//! trailers), problem-response checks, digests in the forms tus headers use, and an
//! offline reader of the stored (encrypted) upload for checking the bytes themselves.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use reqwest::header::HeaderMap;
use sha2::Digest;

pub use super::data::{data, sha256_hex};
use super::{Gateway, UPLOADER_TOKEN};

/// `application/offset+octet-stream`
pub const OCTET: &str = "application/offset+octet-stream";

/// A tus client for one gateway and one principal.
pub struct Tus {
    pub client: reqwest::Client,
    pub token: String,
    base: String,
}

impl Tus {
    /// The "clinic" uploader over the default client (TLS 1.3, h2 or http/1.1).
    pub fn new(gw: &Gateway) -> Tus {
        Self::as_token(gw, UPLOADER_TOKEN)
    }

    /// Another principal, on its own connection pool.
    pub fn as_token(gw: &Gateway, token: &str) -> Tus {
        Tus {
            client: gw.client(),
            token: token.to_owned(),
            base: gw.url(""),
        }
    }

    /// The absolute URL of a path such as `/files/` or a `Location`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn request(&self, method: &str, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method.parse().unwrap(), self.url(path))
            .bearer_auth(&self.token)
    }

    /// `POST /files/` with `Tus-Resumable` and `headers`.
    pub async fn post(&self, headers: &[(&str, &str)], body: Vec<u8>) -> reqwest::Response {
        let mut r = self
            .request("POST", "/files/")
            .header("tus-resumable", "1.0.0");
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        r.body(body).send().await.unwrap()
    }

    /// Creates an upload of `length` bytes (or deferred with `None`); returns its path.
    pub async fn create(&self, length: Option<u64>, extra: &[(&str, &str)]) -> String {
        let len = length.map(|n| n.to_string());
        let mut headers: Vec<(&str, &str)> = match &len {
            Some(n) => vec![("upload-length", n.as_str())],
            None => vec![("upload-defer-length", "1")],
        };
        headers.extend_from_slice(extra);
        let resp = self.post(&headers, Vec::new()).await;
        assert_eq!(resp.status(), 201, "{:?}", resp.headers());
        location(&resp)
    }

    /// `PATCH` with `Upload-Offset`, the tus content type and `extra` headers.
    pub async fn patch(
        &self,
        path: &str,
        offset: u64,
        body: impl Into<reqwest::Body>,
        extra: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut r = self
            .request("PATCH", path)
            .header("tus-resumable", "1.0.0")
            .header("upload-offset", offset.to_string())
            .header("content-type", OCTET);
        for (k, v) in extra {
            r = r.header(*k, *v);
        }
        r.body(body).send().await.unwrap()
    }

    /// A PATCH that must succeed; returns the new offset.
    pub async fn patch_ok(&self, path: &str, offset: u64, body: &[u8]) -> u64 {
        let resp = self.patch(path, offset, body.to_vec(), &[]).await;
        assert_eq!(resp.status(), 204, "{:?}", resp.headers());
        header(&resp, "upload-offset").parse().unwrap()
    }

    pub async fn head(&self, path: &str) -> reqwest::Response {
        self.request("HEAD", path)
            .header("tus-resumable", "1.0.0")
            .send()
            .await
            .unwrap()
    }

    /// The upload's offset from a HEAD that must succeed.
    pub async fn offset(&self, path: &str) -> u64 {
        let resp = self.head(path).await;
        assert_eq!(resp.status(), 200, "{:?}", resp.headers());
        header(&resp, "upload-offset").parse().unwrap()
    }

    pub async fn delete(&self, path: &str) -> reqwest::Response {
        self.request("DELETE", path)
            .header("tus-resumable", "1.0.0")
            .send()
            .await
            .unwrap()
    }

    pub async fn ledger_response(&self, path: &str) -> reqwest::Response {
        self.request("GET", &format!("{path}/ledger"))
            .send()
            .await
            .unwrap()
    }

    /// The ledger document of an upload the caller may read.
    pub async fn ledger(&self, path: &str) -> serde_json::Value {
        let resp = self.ledger_response(path).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(header(&resp, "content-type"), "application/json");
        resp.json().await.unwrap()
    }
}

/// A response header that must be present, as text.
pub fn header(resp: &reqwest::Response, name: &str) -> String {
    header_in(resp.headers(), name)
}

pub fn header_in(headers: &HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .unwrap_or_else(|| panic!("no {name} in {headers:?}"))
        .to_str()
        .unwrap()
        .to_owned()
}

/// The `Location` of a 201, checked to be `/files/<26-character id>`.
pub fn location(resp: &reqwest::Response) -> String {
    let loc = header(resp, "location");
    let id = loc.strip_prefix("/files/").expect("relative Location");
    assert_eq!(id.len(), 26, "{loc}");
    assert!(
        id.bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase()),
        "{loc}"
    );
    loc
}

/// The upload id of a path such as `/files/<id>`.
pub fn id_of(path: &str) -> &str {
    path.rsplit('/').next().unwrap()
}

/// Checks a problem response: status, `code`, the problem content type, `Tus-Resumable`.
/// Returns the headers for further checks.
pub async fn problem(resp: reqwest::Response, status: u16, code: &str) -> HeaderMap {
    let headers = resp.headers().clone();
    assert_eq!(resp.status().as_u16(), status, "{headers:?}");
    assert_eq!(
        header_in(&headers, "content-type"),
        "application/problem+json"
    );
    let j: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(j["code"], code, "{j}");
    assert_eq!(j["status"], status, "{j}");
    headers
}

// === digests ===

pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// `Upload-Checksum` for `data` under `algorithm` (`sha1`, `sha256`, `sha512`, `md5`).
pub fn checksum(algorithm: &str, data: &[u8]) -> String {
    let digest = match algorithm {
        "sha1" => sha1::Sha1::digest(data).to_vec(),
        "sha256" => sha2::Sha256::digest(data).to_vec(),
        "sha512" => sha2::Sha512::digest(data).to_vec(),
        "md5" => md5::Md5::digest(data).to_vec(),
        other => panic!("unknown algorithm {other}"),
    };
    format!("{algorithm} {}", b64(&digest))
}

/// `Repr-Digest` of `data` as the gateway writes it.
pub fn repr_digest(data: &[u8]) -> String {
    format!("sha-256=:{}:", b64(&sha2::Sha256::digest(data)))
}

/// A request body streamed in `piece`-byte frames with `pause` between them, so a request
/// stays in flight long enough for another request (or a signal) to meet it.
pub fn slow_body(bytes: Vec<u8>, piece: usize, pause: Duration) -> reqwest::Body {
    let stream = futures_util::stream::unfold((bytes, 0usize), move |(bytes, at)| async move {
        if at >= bytes.len() {
            return None;
        }
        if at > 0 {
            tokio::time::sleep(pause).await;
        }
        let end = (at + piece).min(bytes.len());
        let frame = bytes::Bytes::copy_from_slice(&bytes[at..end]);
        Some((Ok::<_, std::io::Error>(frame), (bytes, end)))
    });
    reqwest::Body::wrap_stream(stream)
}

// === raw HTTP/1.1 ===

/// A response read off a raw HTTP/1.1 connection.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    /// Lowercase names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn code(&self) -> String {
        let j: serde_json::Value = serde_json::from_slice(&self.body).unwrap();
        j["code"].as_str().unwrap().to_owned()
    }
}

/// A TLS connection speaking HTTP/1.1 only.
pub async fn h1_stream(gw: &Gateway) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    gw.h1_stream().await
}

/// A chunked PATCH whose body is `chunks`, ended by `trailers` (`Name: value` lines).
/// `headers` are extra request header lines.
pub fn chunked_patch(
    path: &str,
    token: &str,
    offset: u64,
    headers: &[&str],
    chunks: &[&[u8]],
    trailers: &[&str],
) -> Vec<u8> {
    let mut out = format!(
        "PATCH {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\
         Tus-Resumable: 1.0.0\r\nUpload-Offset: {offset}\r\nContent-Type: {OCTET}\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n"
    )
    .into_bytes();
    for h in headers {
        out.extend_from_slice(format!("{h}\r\n").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    for c in chunks {
        out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        out.extend_from_slice(c);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n");
    for t in trailers {
        out.extend_from_slice(format!("{t}\r\n").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// Sends `request` on a fresh HTTP/1.1 connection and reads one response.
pub async fn raw_h1(gw: &Gateway, request: &[u8]) -> RawResponse {
    use tokio::io::AsyncWriteExt;
    let mut s = h1_stream(gw).await;
    s.write_all(request).await.unwrap();
    s.flush().await.unwrap();
    read_response(&mut s).await
}

/// Reads one HTTP/1.1 response (head and a `Content-Length` body).
pub async fn read_response<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> RawResponse {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    let mut tmp = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = tokio::time::timeout(Duration::from_secs(30), s.read(&mut tmp))
            .await
            .expect("response in time")
            .unwrap();
        assert!(n > 0, "connection closed before a response: {buf:?}");
        buf.extend_from_slice(&tmp[..n]);
    };
    let head = String::from_utf8(buf[..head_end].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (k.trim().to_ascii_lowercase(), v.trim().to_owned())
        })
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .map_or(0, |(_, v)| v.parse().unwrap());
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        let n = tokio::time::timeout(Duration::from_secs(30), s.read(&mut tmp))
            .await
            .expect("body in time")
            .unwrap();
        assert!(n > 0, "connection closed mid-body");
        body.extend_from_slice(&tmp[..n]);
    }
    body.truncate(len);
    RawResponse {
        status,
        headers,
        body,
    }
}

// === the stored object ===

/// The stored plaintext of upload `id`, read through the library from the gateway's
/// configuration (state store, blob store, keyring). The gateway must be stopped when its
/// state store is the embedded one (redb allows one process).
pub async fn stored_plaintext(config_path: &Path, id: &str) -> Vec<u8> {
    let env = std::collections::BTreeMap::<String, String>::new();
    let config = sallyport::config::Config::load(Some(config_path), &env).unwrap();
    let state = sallyport::app::open_state(&config).await.unwrap();
    let blobs = sallyport::app::open_blobs(&config).await.unwrap();
    let keys = config.keys.build_provider().unwrap();
    let at_rest = sallyport::at_rest::AtRest::new(blobs, state, keys, config.at_rest.segment_size);
    let id: sallyport::tus::record::UploadId = id.parse().unwrap();
    let reader = at_rest.open_reader(id.opaque()).await.unwrap();
    reader.read_range(0, reader.len()).await.unwrap().to_vec()
}

/// Every file under `dir` whose name contains `needle`.
pub fn files_named(dir: &Path, needle: &str) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files_named(&p, needle));
        } else if p
            .file_name()
            .is_some_and(|n| n.to_string_lossy().contains(needle))
        {
            out.push(p);
        }
    }
    out
}

/// How many regular files are under `dir`.
pub fn file_count(dir: &Path) -> usize {
    files_named(dir, "").iter().filter(|p| p.is_file()).count()
}

/// Seconds since the epoch of an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), parsed
/// strictly and independently of the gateway's own date code.
pub fn http_date_unix(text: &str) -> i64 {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    let t = time::PrimitiveDateTime::parse(text, &format)
        .unwrap_or_else(|e| panic!("{text:?} is not an IMF-fixdate: {e}"));
    t.assume_utc().unix_timestamp()
}

pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Waits until another request holds the upload's lease — an empty PATCH at `offset` is
/// answered 423 — and returns that 423. An empty PATCH that gets the lease instead changes
/// nothing (204) and is retried; the request waited for must itself retry a 423 it gets
/// from meeting such a probe ([`spawn_slow_patch`] does).
pub async fn until_locked(tus: &Tus, path: &str, offset: u64) -> reqwest::Response {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let resp = tus.patch(path, offset, Vec::new(), &[]).await;
        if resp.status() == 423 {
            return resp;
        }
        assert_eq!(resp.status(), 204, "{:?}", resp.headers());
        assert!(
            std::time::Instant::now() < deadline,
            "the other request never held the upload"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Starts a slow PATCH (see [`slow_body`]) in the background. A PATCH refused with 423 —
/// it met a probe of [`until_locked`] holding the lease for an instant — is sent again.
pub fn spawn_slow_patch(
    tus: &Tus,
    path: &str,
    offset: u64,
    body: Vec<u8>,
    piece: usize,
    pause: Duration,
) -> tokio::task::JoinHandle<reqwest::Response> {
    let client = tus.client.clone();
    let token = tus.token.clone();
    let url = tus.url(path);
    tokio::spawn(async move {
        loop {
            let resp = client
                .patch(&url)
                .bearer_auth(&token)
                .header("tus-resumable", "1.0.0")
                .header("upload-offset", offset.to_string())
                .header("content-type", OCTET)
                .body(slow_body(body.clone(), piece, pause))
                .send()
                .await
                .unwrap();
            if resp.status() != 423 {
                return resp;
            }
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    })
}
