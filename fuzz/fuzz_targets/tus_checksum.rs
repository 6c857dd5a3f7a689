//! `Upload-Checksum`: a value that parses re-serialises and re-parses equal.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sallyport::tus::checksum::Checksum;

fuzz_target!(|data: &[u8]| {
    if let Ok(parsed) = Checksum::parse(data) {
        assert_eq!(parsed.digest().len(), parsed.algorithm().digest_len());
        let text = parsed.to_header_value();
        let again = Checksum::parse(text.as_bytes()).expect("own output parses");
        assert!(again == parsed, "round trip changed the checksum");
    }
});
