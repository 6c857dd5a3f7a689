//! The v1 canonical string: the exact bytes the HMAC covers.
//!
//! ```text
//! canonical = "sallyport-link-v1" LF 9*field
//! field     = name ":" length ":" value LF
//! ```
//!
//! The nine fields always appear, in this order: `v`, `k`, `a`, `g`, `m`, `nb`, `exp`,
//! `ip`, `fp`. `length` is the value's byte length in decimal without leading zeros;
//! `value` is the field's canonical text (the same text the URL carries). An absent
//! binding (`ip`, `fp`) is an empty value, `ip:0:`. Because every field is named, present
//! and length-prefixed, no two claim sets share a canonical string, whatever bytes the
//! values contain; the domain prefix keeps these MACs apart from any other use of a key.
//!
//! The string is rebuilt from *parsed, typed* claims on verification, never copied from
//! the URL, so a URL spelling can never smuggle bytes into what is verified.

use std::fmt::Write as _;

use super::LINK_VERSION;
use super::claims::LinkClaims;
use super::ids::KeyId;

/// The domain-separation prefix (followed by LF).
pub const DOMAIN: &str = "sallyport-link-v1";

/// The canonical string for `claims` signed with `key_id`.
pub fn canonical_bytes(key_id: &KeyId, claims: &LinkClaims) -> Vec<u8> {
    let mut out = String::with_capacity(320);
    let mut scratch = String::with_capacity(64);
    out.push_str(DOMAIN);
    out.push('\n');

    // `write!` into a String cannot fail; that is why its results are ignored below.
    let _ = write!(scratch, "{LINK_VERSION}");
    push_field(&mut out, "v", &scratch);
    push_field(&mut out, "k", key_id.as_str());
    scratch.clear();
    let _ = write!(scratch, "{}", claims.artifact());
    push_field(&mut out, "a", &scratch);
    scratch.clear();
    let _ = write!(scratch, "{}", claims.grant());
    push_field(&mut out, "g", &scratch);
    push_field(&mut out, "m", claims.methods().as_str());
    scratch.clear();
    let _ = write!(scratch, "{}", claims.not_before());
    push_field(&mut out, "nb", &scratch);
    scratch.clear();
    let _ = write!(scratch, "{}", claims.expires());
    push_field(&mut out, "exp", &scratch);
    scratch.clear();
    if let Some(net) = claims.bindings().client_net {
        let _ = write!(scratch, "{net}");
    }
    push_field(&mut out, "ip", &scratch);
    scratch.clear();
    if let Some(fp) = claims.bindings().client_cert {
        scratch.push_str(&fp.to_text());
    }
    push_field(&mut out, "fp", &scratch);
    out.into_bytes()
}

/// `name ":" length ":" value LF`.
fn push_field(out: &mut String, name: &str, value: &str) {
    let _ = writeln!(out, "{name}:{}:{value}", value.len());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signed_link::{Bindings, CertFingerprint, MethodSet, UnixTime};

    #[test]
    fn layout_byte_by_byte() {
        let claims = LinkClaims::new(
            "0000000000000000000000000a".parse().expect("id"),
            "7zzzzzzzzzzzzzzzzzzzzzzzzz".parse().expect("id"),
            MethodSet::GetHead,
            UnixTime(1_700_000_000),
            UnixTime(1_700_003_600),
            Bindings {
                client_net: Some("192.0.2.0/24".parse().expect("net")),
                client_cert: Some(CertFingerprint::from_bytes([0; 32])),
            },
        )
        .expect("claims");
        let kid: KeyId = "k1".parse().expect("kid");
        let got = String::from_utf8(canonical_bytes(&kid, &claims)).expect("ascii");
        let want = "sallyport-link-v1\n\
                    v:1:1\n\
                    k:2:k1\n\
                    a:26:0000000000000000000000000a\n\
                    g:26:7zzzzzzzzzzzzzzzzzzzzzzzzz\n\
                    m:8:GET,HEAD\n\
                    nb:10:1700000000\n\
                    exp:10:1700003600\n\
                    ip:12:192.0.2.0/24\n\
                    fp:43:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n";
        assert_eq!(got, want);
    }

    #[test]
    fn absent_bindings_are_empty_fields() {
        let claims = LinkClaims::new(
            "0000000000000000000000000a".parse().expect("id"),
            "0000000000000000000000000b".parse().expect("id"),
            MethodSet::Get,
            UnixTime(0),
            UnixTime(1),
            Bindings::default(),
        )
        .expect("claims");
        let kid: KeyId = "k".parse().expect("kid");
        let got = String::from_utf8(canonical_bytes(&kid, &claims)).expect("ascii");
        assert!(got.ends_with("a:26:0000000000000000000000000a\ng:26:0000000000000000000000000b\nm:3:GET\nnb:1:0\nexp:1:1\nip:0:\nfp:0:\n"), "{got}");
    }
}
