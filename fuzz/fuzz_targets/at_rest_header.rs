//! The at-rest header: a header that decodes re-encodes to exactly the bytes it came from.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sallyport::at_rest::format::{HEADER_LEN, Header};

fuzz_target!(|data: &[u8]| {
    if let Ok(header) = Header::decode(data) {
        assert_eq!(header.encode()[..], data[..HEADER_LEN]);
    }
});
