//! The provenance record: one that parses prints as JSON that parses to the same record.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sallyport::manifest::{ManifestLimits, Provenance};

fuzz_target!(|data: &[u8]| {
    let limits = ManifestLimits {
        max_manifest_bytes: 1 << 16,
        max_members: 64,
        max_provenance_bytes: 1 << 16,
    };
    if let Ok(p) = Provenance::parse(data, &limits) {
        let json = p.to_json();
        let again = Provenance::parse(&json, &limits).expect("own JSON parses");
        assert_eq!(again.to_json(), json);
        assert_eq!(again.exported_at(), p.exported_at());
    }
});
