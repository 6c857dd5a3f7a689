//! Signed audit checkpoints: pure code that writes, parses, signs and verifies them.
//!
//! A checkpoint says "the audit log `origin` had `length` entries and its head entry's hash
//! was `head`, at `time`", signed with the gateway's Ed25519 checkpoint key. Kept where the
//! writer cannot rewrite it, it turns the two attacks the hash chain alone cannot see —
//! a dropped tail and a chain re-hashed from some point on — into a verification failure.
//!
//! The text format is the C2SP *checkpoint* in a C2SP *signed note*, as transparency logs
//! use them (normative: `proto/audit-checkpoint-v1.md`):
//!
//! ```text
//! sallyport/audit                       origin: names the log
//! 1000                                  length (tree size), decimal, no leading zeros
//! q1WLz…yM=                             the head entry's hash, standard base64 (32 bytes)
//! time 2026-12-06T02:00:00.000Z         extension line: when it was signed (RFC 3339 UTC)
//!                                       blank line: the body ends before it
//! — sallyport/audit AbCd…==             signature line: em dash, key name, base64(key id ‖ sig)
//! ```
//!
//! The signature is Ed25519 (RFC 8032, pure) over the body's bytes including its final
//! newline; the key id is the first 4 bytes of `SHA-256(key name ‖ "\n" ‖ 0x01 ‖ public
//! key)`, as in a note verifier key `name+hex(key id)+base64(0x01 ‖ public key)`.
//! Parsing is strict (one canonical text per checkpoint): what [`SignedNote::parse`]
//! accepts, [`SignedNote::to_text`] writes back byte for byte.
//!
//! Not here: the key file, when checkpoints are taken and where they are written
//! (`audit::checkpointer`), and comparing checkpoints with a chain (`audit::verify`).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

/// The signature algorithm byte of an Ed25519 note verifier key.
pub const ALG_ED25519: u8 = 0x01;
/// Largest note accepted (a checkpoint is about 200 bytes).
pub const MAX_NOTE_BYTES: usize = 16 * 1024;
/// Most signature lines read from one note.
pub const MAX_SIGNATURES: usize = 16;
/// The signature line prefix: U+2014 EM DASH and a space.
const SIG_PREFIX: &str = "\u{2014} ";

/// What a checkpoint certifies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's origin line (`sallyport/audit`).
    pub origin: String,
    /// Number of entries (the last sequence number).
    pub length: u64,
    /// The hash of entry `length` (`0³²` for an empty log).
    pub head: [u8; 32],
    /// When it was signed: RFC 3339 UTC, e.g. `2026-12-06T02:00:00.000Z`.
    pub time: String,
}

/// A parsed signed note: its body and signature lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedNote {
    /// The body, ending with `\n` (what is signed).
    pub body: String,
    /// The signature lines, in order.
    pub signatures: Vec<NoteSignature>,
}

/// One signature line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature {
    /// The key name.
    pub name: String,
    /// The 4-byte key id.
    pub key_id: [u8; 4],
    /// The signature bytes (64 for Ed25519).
    pub signature: Vec<u8>,
}

/// Why a note or a checkpoint was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    /// Not a signed note: `reason` says which rule it broke.
    #[error("not a signed note: {0}")]
    Malformed(&'static str),
    /// A note, but its body is not a sallyport audit checkpoint.
    #[error("not an audit checkpoint: {0}")]
    NotCheckpoint(&'static str),
    /// No signature line by the given key (name and key id).
    #[error("no signature by key {0}")]
    NoSignature(String),
    /// The key's signature line is there but does not verify.
    #[error("signature by key {0} does not verify")]
    BadSignature(String),
    /// A verifier key string or public key that cannot be used.
    #[error("unusable verifier key: {0}")]
    BadKey(&'static str),
}

// === impl Checkpoint ===

impl Checkpoint {
    /// The note body: origin, length, base64 head, `time …`, each ending in `\n`.
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\ntime {}\n",
            self.origin,
            self.length,
            B64.encode(self.head),
            self.time
        )
    }

    /// Parses a note body written by [`Checkpoint::body`].
    pub fn from_body(body: &str) -> Result<Self, NoteError> {
        let bad = NoteError::NotCheckpoint;
        let lines: Vec<&str> = body
            .strip_suffix('\n')
            .ok_or(bad("body must end with a newline"))?
            .split('\n')
            .collect();
        let [origin, length, head, time] = lines[..] else {
            return Err(bad(
                "expected exactly four lines: origin, length, head hash, time",
            ));
        };
        if origin.is_empty() || origin.chars().any(char::is_whitespace) {
            return Err(bad("origin must be non-empty without spaces"));
        }
        let length = parse_decimal(length).ok_or(bad("length is not a canonical decimal"))?;
        let head = decode_canonical(head)
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or(bad("head hash is not base64 of 32 bytes"))?;
        let time = time
            .strip_prefix("time ")
            .ok_or(bad("fourth line must be `time <RFC 3339>`"))?;
        if !valid_time(time) {
            return Err(bad("time is not RFC 3339 UTC with milliseconds"));
        }
        Ok(Self {
            origin: origin.to_owned(),
            length,
            head,
            time: time.to_owned(),
        })
    }

    /// The head hash as hex (as `audit verify` prints it).
    pub fn head_hex(&self) -> String {
        hex::encode(self.head)
    }
}

// === impl SignedNote ===

impl SignedNote {
    /// Parses a note: UTF-8 text, body lines, one blank line, signature lines, every line
    /// ending in `\n`, no other control characters.
    pub fn parse(text: &[u8]) -> Result<Self, NoteError> {
        let bad = NoteError::Malformed;
        if text.len() > MAX_NOTE_BYTES {
            return Err(bad("too long"));
        }
        let text = std::str::from_utf8(text).map_err(|_| bad("not UTF-8"))?;
        if text.chars().any(|c| c.is_control() && c != '\n') {
            return Err(bad("control character"));
        }
        if !text.ends_with('\n') {
            return Err(bad("does not end with a newline"));
        }
        let split = text
            .rfind("\n\n")
            .ok_or(bad("no blank line before signatures"))?;
        let body = &text[..split + 1];
        let sigs = &text[split + 2..];
        if body.is_empty() || body.starts_with('\n') {
            return Err(bad("empty body"));
        }
        let mut signatures = Vec::new();
        for line in sigs.strip_suffix('\n').unwrap_or(sigs).split('\n') {
            if signatures.len() == MAX_SIGNATURES {
                return Err(bad("too many signatures"));
            }
            signatures.push(parse_signature_line(line)?);
        }
        Ok(Self {
            body: body.to_owned(),
            signatures,
        })
    }

    /// The note's text: body, blank line, signature lines.
    pub fn to_text(&self) -> String {
        let mut out = self.body.clone();
        out.push('\n');
        for s in &self.signatures {
            let mut blob = s.key_id.to_vec();
            blob.extend_from_slice(&s.signature);
            out.push_str(SIG_PREFIX);
            out.push_str(&s.name);
            out.push(' ');
            out.push_str(&B64.encode(blob));
            out.push('\n');
        }
        out
    }
}

fn parse_signature_line(line: &str) -> Result<NoteSignature, NoteError> {
    let bad = NoteError::Malformed;
    let rest = line
        .strip_prefix(SIG_PREFIX)
        .ok_or(bad("signature line must start with an em dash and a space"))?;
    let (name, b64) = rest
        .split_once(' ')
        .ok_or(bad("signature line must be `— name base64`"))?;
    if name.is_empty() || name.contains('+') || name.chars().any(char::is_whitespace) {
        return Err(bad("key name must be non-empty, without spaces or '+'"));
    }
    let blob = decode_canonical(b64).ok_or(bad("signature is not canonical base64"))?;
    if blob.len() < 5 {
        return Err(bad("signature too short"));
    }
    let mut key_id = [0u8; 4];
    key_id.copy_from_slice(&blob[..4]);
    Ok(NoteSignature {
        name: name.to_owned(),
        key_id,
        signature: blob[4..].to_vec(),
    })
}

// === signing and verification ===

/// The 4-byte id of an Ed25519 note key.
pub fn key_id(name: &str, key: &VerifyingKey) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([ALG_ED25519]);
    h.update(key.as_bytes());
    let d = h.finalize();
    [d[0], d[1], d[2], d[3]]
}

/// Signs `checkpoint` as key `name`; returns the note text.
pub fn sign(checkpoint: &Checkpoint, name: &str, key: &SigningKey) -> String {
    let body = checkpoint.body();
    let signature = key.sign(body.as_bytes());
    SignedNote {
        body,
        signatures: vec![NoteSignature {
            name: name.to_owned(),
            key_id: key_id(name, &key.verifying_key()),
            signature: signature.to_bytes().to_vec(),
        }],
    }
    .to_text()
}

/// A public key that verifies checkpoints: a key name and an Ed25519 key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteVerifier {
    /// The key name in signature lines.
    pub name: String,
    /// The Ed25519 public key.
    pub key: VerifyingKey,
}

impl NoteVerifier {
    /// Parses a verifier key string `name+hex8+base64(0x01 ‖ key)`.
    pub fn from_vkey(s: &str) -> Result<Self, NoteError> {
        let bad = NoteError::BadKey;
        let mut parts = s.trim().splitn(3, '+');
        let (Some(name), Some(id), Some(b64)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad("expected name+keyid+key"));
        };
        if name.is_empty() || name.chars().any(char::is_whitespace) {
            return Err(bad("bad key name"));
        }
        let blob = decode_canonical(b64).ok_or(bad("key is not base64"))?;
        let [alg, key @ ..] = &blob[..] else {
            return Err(bad("empty key"));
        };
        if *alg != ALG_ED25519 {
            return Err(bad("not an Ed25519 key"));
        }
        let key: [u8; 32] = key.try_into().map_err(|_| bad("key is not 32 bytes"))?;
        let key = VerifyingKey::from_bytes(&key).map_err(|_| bad("not a valid Ed25519 point"))?;
        let v = Self {
            name: name.to_owned(),
            key,
        };
        if id != hex::encode(key_id(name, &v.key)) {
            return Err(bad("key id does not match the key"));
        }
        Ok(v)
    }

    /// The verifier key string, `name+hex8+base64(0x01 ‖ key)`.
    pub fn to_vkey(&self) -> String {
        let mut blob = vec![ALG_ED25519];
        blob.extend_from_slice(self.key.as_bytes());
        format!(
            "{}+{}+{}",
            self.name,
            hex::encode(key_id(&self.name, &self.key)),
            B64.encode(blob)
        )
    }

    /// Verifies `text` and returns the checkpoint it certifies. Signature lines of other
    /// keys are ignored; this key's line must verify (strict RFC 8032 verification).
    pub fn verify(&self, text: &[u8]) -> Result<Checkpoint, NoteError> {
        let note = SignedNote::parse(text)?;
        let id = key_id(&self.name, &self.key);
        let ours = note
            .signatures
            .iter()
            .find(|s| s.name == self.name && s.key_id == id)
            .ok_or_else(|| NoteError::NoSignature(self.to_vkey()))?;
        let sig = Signature::from_slice(&ours.signature)
            .map_err(|_| NoteError::BadSignature(self.name.clone()))?;
        self.key
            .verify_strict(note.body.as_bytes(), &sig)
            .map_err(|_| NoteError::BadSignature(self.name.clone()))?;
        Checkpoint::from_body(&note.body)
    }
}

// === helpers ===

fn parse_decimal(s: &str) -> Option<u64> {
    let canonical = s == "0" || (!s.starts_with('0') && !s.is_empty());
    if !canonical || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Standard base64 with padding, and only its one canonical spelling.
fn decode_canonical(s: &str) -> Option<Vec<u8>> {
    let bytes = B64.decode(s).ok()?;
    (B64.encode(&bytes) == s).then_some(bytes)
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`, a real date and time.
fn valid_time(s: &str) -> bool {
    let fmt = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    time::PrimitiveDateTime::parse(s, &fmt).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[7u8; 32])
    }

    fn cp() -> Checkpoint {
        Checkpoint {
            origin: "sallyport/audit".into(),
            length: 1000,
            head: [0xab; 32],
            time: "2026-12-06T02:00:00.000Z".into(),
        }
    }

    fn verifier() -> NoteVerifier {
        NoteVerifier {
            name: "sallyport/audit".into(),
            key: key().verifying_key(),
        }
    }

    #[test]
    fn signs_parses_and_verifies() {
        let text = sign(&cp(), "sallyport/audit", &key());
        let note = SignedNote::parse(text.as_bytes()).unwrap();
        assert_eq!(note.to_text(), text);
        assert_eq!(verifier().verify(text.as_bytes()).unwrap(), cp());
        let v = NoteVerifier::from_vkey(&verifier().to_vkey()).unwrap();
        assert_eq!(v, verifier());
    }

    #[test]
    fn every_single_byte_change_fails_or_certifies_the_same() {
        let text = sign(&cp(), "sallyport/audit", &key()).into_bytes();
        for i in 0..text.len() {
            for bit in [0x01u8, 0x20, 0x80] {
                let mut t = text.clone();
                t[i] ^= bit;
                assert!(
                    verifier().verify(&t).is_err(),
                    "flip {bit:#x} at byte {i} still verifies"
                );
            }
        }
    }

    #[test]
    fn other_keys_and_names_do_not_verify() {
        let text = sign(&cp(), "sallyport/audit", &key());
        let other = NoteVerifier {
            name: "sallyport/audit".into(),
            key: SigningKey::from_bytes(&[8u8; 32]).verifying_key(),
        };
        assert!(matches!(
            other.verify(text.as_bytes()),
            Err(NoteError::NoSignature(_))
        ));
        let renamed = text.replace("\u{2014} sallyport/audit", "\u{2014} other");
        assert!(verifier().verify(renamed.as_bytes()).is_err());
    }

    /// `proto/vectors/audit-checkpoint-v1.json`: the worked example of
    /// `proto/audit-checkpoint-v1.md`, signed by a fixed test key, and mutations of it.
    #[test]
    fn golden_vectors() {
        use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey};
        let v: serde_json::Value =
            serde_json::from_str(include_str!("../../proto/vectors/audit-checkpoint-v1.json"))
                .unwrap();
        let s = |k: &str| v[k].as_str().unwrap().to_owned();
        let mut seed = [0u8; 32];
        hex::decode_to_slice(s("seed_hex"), &mut seed).unwrap();
        let key = SigningKey::from_bytes(&seed);
        assert_eq!(
            SigningKey::from_pkcs8_pem(&s("private_key_pem")).unwrap(),
            key
        );
        assert_eq!(
            VerifyingKey::from_public_key_pem(&s("public_key_pem")).unwrap(),
            key.verifying_key()
        );
        let verifier = NoteVerifier::from_vkey(&s("verifier_key")).unwrap();
        assert_eq!(verifier.key, key.verifying_key());
        assert_eq!(verifier.name, s("key_name"));
        assert_eq!(
            hex::encode(key_id(&verifier.name, &verifier.key)),
            s("key_id_hex")
        );
        let c = &v["checkpoint"];
        let mut head = [0u8; 32];
        hex::decode_to_slice(c["head_hash_hex"].as_str().unwrap(), &mut head).unwrap();
        let cp = Checkpoint {
            origin: c["origin"].as_str().unwrap().into(),
            length: c["length"].as_u64().unwrap(),
            head,
            time: c["time"].as_str().unwrap().into(),
        };
        assert_eq!(cp.body(), s("body"));
        // Ed25519 is deterministic: signing again gives the vector byte for byte.
        assert_eq!(sign(&cp, &verifier.name, &key), s("note"));
        assert_eq!(verifier.verify(s("note").as_bytes()).unwrap(), cp);
        let invalid = v["invalid"].as_array().unwrap();
        assert!(invalid.len() >= 10);
        for case in invalid {
            let note = case["note"].as_str().unwrap();
            assert!(
                verifier.verify(note.as_bytes()).is_err(),
                "{} still verifies",
                case["why"]
            );
        }
    }

    #[test]
    fn non_canonical_bodies_are_refused() {
        for body in [
            "sallyport/audit\n01\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\ntime 2026-12-06T02:00:00.000Z\n",
            "sallyport/audit\n1\nAAAA\ntime 2026-12-06T02:00:00.000Z\n",
            "sallyport/audit\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\ntime yesterday\n",
            "sallyport/audit\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
            "sallyport/audit\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\ntime 2026-12-06T02:00:00.000Z\nx\n",
        ] {
            assert!(Checkpoint::from_body(body).is_err(), "{body:?}");
        }
    }
}
