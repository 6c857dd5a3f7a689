//! tus request headers: input is `name: value` lines; both the PATCH and the creation POST
//! parsers must answer without panicking, and what they accept stays inside the limits.
#![no_main]

use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use sallyport::tus::TusLimits;
use sallyport::tus::concat::BasePath;
use sallyport::tus::request::{CreateRequest, DeclaredLength, PatchRequest};

fuzz_target!(|data: &[u8]| {
    let mut headers = HeaderMap::new();
    for line in data.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let value = line[colon + 1..].trim_ascii();
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(&line[..colon]),
            HeaderValue::from_bytes(value),
        ) {
            headers.append(n, v);
        }
    }
    let limits = TusLimits {
        max_size: 1 << 40,
        max_concat_parts: 8,
        ..TusLimits::default()
    };
    if let Ok(patch) = PatchRequest::from_headers(&headers, &limits) {
        assert!(patch.offset <= limits.max_size);
        assert!(patch.length.is_none_or(|n| n <= limits.max_size));
    }
    let base = BasePath::new("/files/").expect("valid base path");
    match CreateRequest::from_headers(&headers, &base, &limits) {
        Ok(CreateRequest::Upload(new)) => {
            if let DeclaredLength::Known(n) = new.length {
                assert!(n <= limits.max_size);
            }
        }
        Ok(CreateRequest::Final(f)) => {
            assert!(!f.parts.is_empty() && f.parts.len() <= limits.max_concat_parts);
        }
        Err(_) => {}
    }
});
