//! The batch manifest: one that parses prints as JSON that parses to the same manifest.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sallyport::manifest::{Manifest, ManifestLimits};

fuzz_target!(|data: &[u8]| {
    let limits = ManifestLimits {
        max_manifest_bytes: 1 << 16,
        max_members: 64,
        max_provenance_bytes: 1 << 16,
    };
    if let Ok(m) = Manifest::parse(data, &limits) {
        assert!(m.members().len() <= limits.max_members);
        let json = m.to_json();
        let again = Manifest::parse(&json, &limits).expect("own JSON parses");
        assert_eq!(again.members(), m.members());
        assert_eq!(again.profile(), m.profile());
        assert_eq!(again.total_members(), m.total_members());
        assert_eq!(again.total_bytes(), m.total_bytes());
        assert_eq!(again.listed_bytes(), m.listed_bytes());
        assert_eq!(again.to_json(), json);
    }
});
