#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The tus endpoint, black-box: the real binary on port 0, real TLS through reqwest (and
//! raw HTTP/1.1 over tokio-rustls for checksum trailers). Every status code and header of
//! `proto/upload-v1.md` is asserted exactly: OPTIONS, the creation variants, 409/412/413/
//! 415/460/400/403/404/410/429, checksum trailers, concatenation, termination, the ledger,
//! `Repr-Digest`, `Upload-Expires` on error responses, metadata that never reaches the log,
//! `X-HTTP-Method-Override` and CORS.

mod support;

#[path = "tus_protocol/access.rs"]
mod access;
#[path = "tus_protocol/audit.rs"]
mod audit;
#[path = "tus_protocol/checksums.rs"]
mod checksums;
#[path = "tus_protocol/concatenation.rs"]
mod concatenation;
#[path = "tus_protocol/creation.rs"]
mod creation;
#[path = "tus_protocol/edge.rs"]
mod edge;
#[path = "tus_protocol/ledger.rs"]
mod ledger;
#[path = "tus_protocol/refusals.rs"]
mod refusals;

use std::time::Duration;

use support::tus_http::*;
use support::{ADMIN_TOKEN, Gateway, LAB_TOKEN};

/// Most tests: a 1 MiB `Tus-Max-Size`.
const CONF: &str = "[uploads]\nmax_size = \"1MiB\"\n";

const EXTENSIONS: &str = "creation,creation-with-upload,creation-defer-length,expiration,\
checksum,checksum-trailer,termination,concatenation";
const ALGORITHMS: [&str; 4] = ["sha1", "sha256", "sha512", "md5"];

fn assert_no(resp: &reqwest::Response, name: &str) {
    assert!(
        resp.headers().get(name).is_none(),
        "unexpected {name} in {:?}",
        resp.headers()
    );
}

/// `Upload-Expires` of a response: an IMF-fixdate in the future.
fn expires(headers: &reqwest::header::HeaderMap) -> i64 {
    let t = http_date_unix(&header_in(headers, "upload-expires"));
    assert!(t > unix_now() - 2, "Upload-Expires in the past");
    t
}
