//! Signed audit checkpoints (`proto/audit-checkpoint-v1.md`): any note that parses writes
//! back byte for byte, and so does its checkpoint body; a note that verifies under the
//! golden vector's key certifies exactly the golden checkpoint (seeded with that note, a
//! mutation never verifies as anything else).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sallyport::audit::checkpoint::{Checkpoint, NoteVerifier, SignedNote};

fn golden() -> &'static (NoteVerifier, Checkpoint) {
    static G: OnceLock<(NoteVerifier, Checkpoint)> = OnceLock::new();
    G.get_or_init(|| {
        let v: serde_json::Value = serde_json::from_str(include_str!(
            "../../proto/vectors/audit-checkpoint-v1.json"
        ))
        .expect("vector JSON");
        let verifier = NoteVerifier::from_vkey(v["verifier_key"].as_str().expect("vkey"))
            .expect("golden verifier key");
        let cp = verifier
            .verify(v["note"].as_str().expect("note").as_bytes())
            .expect("the golden note verifies");
        (verifier, cp)
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(note) = SignedNote::parse(data) {
        assert_eq!(note.to_text().as_bytes(), data, "parse then to_text is the identity");
        if let Ok(cp) = Checkpoint::from_body(&note.body) {
            assert_eq!(cp.body(), note.body, "a checkpoint body round-trips");
        }
    }
    let (verifier, cp) = golden();
    if let Ok(got) = verifier.verify(data) {
        assert_eq!(&got, cp, "a note other than the golden one verified");
    }
});
