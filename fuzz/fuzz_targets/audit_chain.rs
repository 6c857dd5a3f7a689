//! The audit entry codec. Input lines go through the chain verifier (which must refuse
//! rather than panic); and an entry sealed around fuzzed fields verifies as the first and
//! second links of a chain, with the hash the line claims.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sallyport::audit::chain::{Body, GENESIS_PREV, Verifier, seal, stored_hash};

fuzz_target!(|data: &[u8]| {
    let mut verifier = Verifier::new();
    for line in data.split(|&b| b == b'\n') {
        let _ = stored_hash(line);
        if verifier.push(line).is_err() {
            break;
        }
    }

    let text = String::from_utf8_lossy(data);
    let details: serde_json::Value = serde_json::from_slice(data).unwrap_or_default();
    let actor = serde_json::json!({ "kind": "client", "name": text });
    let mut verifier = Verifier::new();
    let mut prev = GENESIS_PREV;
    for seq in 1..=2 {
        let body = Body {
            v: 1,
            seq,
            time: "2026-01-01T00:00:00Z",
            instance: "fuzz",
            action: &text,
            outcome: "success",
            actor: &actor,
            request_id: None,
            client_addr: Some(&text),
            peer_addr: Some(&text),
            subject: Some(&text),
            details: &details,
            prev: hex(&prev),
        };
        let (line, hash) = seal(&body).expect("a body serialises");
        assert!(!line.contains(&b'\n'), "an entry spans lines");
        assert_eq!(stored_hash(&line), Some(hash));
        verifier.push(&line).expect("a sealed entry verifies");
        prev = hash;
    }
    assert_eq!(verifier.finish().head_hash, hex(&prev));
});

fn hex(bytes: &[u8; 32]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
