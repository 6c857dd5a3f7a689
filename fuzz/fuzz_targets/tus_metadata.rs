//! `Upload-Metadata`: a value that parses re-serialises and re-parses equal.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sallyport::tus::metadata::{Metadata, MetadataLimits};

fuzz_target!(|data: &[u8]| {
    let limits = MetadataLimits::default();
    if let Ok(parsed) = Metadata::parse(data, &limits) {
        let text = parsed.to_header_value();
        let again = Metadata::parse(text.as_bytes(), &limits).expect("own output parses");
        assert!(again == parsed, "round trip changed the metadata");
        assert_eq!(again.to_header_value(), text);
    }
});
