//! `Upload-Concat`: a value that parses re-serialises and re-parses equal, within the
//! part limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sallyport::tus::concat::{BasePath, UploadConcat};

const MAX_PARTS: usize = 8;

fuzz_target!(|data: &[u8]| {
    let base = BasePath::new("/files/").expect("valid base path");
    if let Ok(parsed) = UploadConcat::parse(data, &base, MAX_PARTS) {
        if let UploadConcat::Final(parts) = &parsed {
            assert!(!parts.is_empty() && parts.len() <= MAX_PARTS);
        }
        let text = parsed.to_header_value(&base);
        let again = UploadConcat::parse(text.as_bytes(), &base, MAX_PARTS).expect("own output");
        assert_eq!(again, parsed);
    }
});
