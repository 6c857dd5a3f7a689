//! Small pure helpers for the tus core tests: the limits they run under, the principals,
//! fixed timestamps, header maps, and records made by the core's own `plan_create`.
//!
//! Nothing here simulates the upload engine: flows that store, hash, commit or keep a
//! ledger drive the real `sallyport::upload::Uploads` (see `uploads`).

use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};
use sallyport::tus::concat::BasePath;
use sallyport::tus::dates::Timestamp;
use sallyport::tus::headers::OFFSET_OCTET_STREAM;
use sallyport::tus::metadata::MetadataLimits;
use sallyport::tus::plan;
use sallyport::tus::record::{UploadId, UploadRecord};
use sallyport::tus::request::CreateRequest;
use sallyport::tus::{Requester, TusLimits};

/// The time the pure tests' uploads are created at.
pub const T0: i64 = 1_700_000_000;
pub const ALICE: Requester<'static> = Requester {
    name: "clinic-7",
    admin: false,
};
pub const MALLORY: Requester<'static> = Requester {
    name: "lab-9",
    admin: false,
};
pub const ADMIN: Requester<'static> = Requester {
    name: "ops",
    admin: true,
};

/// `secs` after [`T0`].
pub fn at(secs: i64) -> Timestamp {
    Timestamp::from_unix(T0 + secs).unwrap()
}

/// Small limits, so the tests can reach every one: 1000 bytes, an hour's expiry, four
/// metadata pairs, three concatenated parts.
pub fn limits() -> TusLimits {
    TusLimits {
        max_size: 1000,
        expire_after: Duration::from_secs(3600),
        metadata: MetadataLimits {
            max_pairs: 4,
            max_key_len: 16,
            max_decoded_total: 64,
        },
        max_concat_parts: 3,
        max_chunks: 10_000,
    }
}

/// A header map from `(name, value)` pairs (repeats allowed).
pub fn hm(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

/// The value of `name` in a list of response headers.
pub fn get<'a>(headers: &'a [(HeaderName, HeaderValue)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.to_str().unwrap())
}

/// A creation request's headers: `Tus-Resumable` and `extra`.
pub fn post_headers(extra: &[(&str, &str)]) -> HeaderMap {
    let mut h = vec![("tus-resumable", "1.0.0")];
    h.extend_from_slice(extra);
    hm(&h)
}

/// A PATCH's headers at `offset`, with `extra`.
pub fn patch_headers(offset: &str, extra: &[(&str, &str)]) -> HeaderMap {
    let mut h = vec![
        ("tus-resumable", "1.0.0"),
        ("content-type", OFFSET_OCTET_STREAM),
        ("upload-offset", offset),
    ];
    h.extend_from_slice(extra);
    hm(&h)
}

/// The record the core plans for a bodiless creation with `extra` headers by `who` at
/// `now` (nothing is stored).
pub fn planned_record(extra: &[(&str, &str)], who: Requester<'_>, now: Timestamp) -> UploadRecord {
    let id: UploadId = "0a0a0a0a0a0a0a0a0a0a0a0a0a".parse().unwrap();
    match CreateRequest::from_headers(&post_headers(extra), &BasePath::default(), &limits())
        .unwrap()
    {
        CreateRequest::Upload(new) => {
            plan::plan_create(&new, id, who, now, &limits())
                .unwrap()
                .record
        }
        CreateRequest::Final(_) => panic!("planned_record makes plain uploads"),
    }
}
