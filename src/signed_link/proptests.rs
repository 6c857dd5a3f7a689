//! Property tests: sign → URL → parse → verify round-trips for arbitrary valid claims, and
//! any change to a signed field, any bit of the signature, or any byte of the URL makes
//! verification fail.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;

use super::tests::{kid, ring};
use super::*;
use crate::ids::OpaqueId;

fn arb_claims() -> impl Strategy<Value = LinkClaims> {
    let net = prop_oneof![
        Just(None),
        (any::<u32>(), 0u8..=32).prop_map(|(bits, p)| {
            let mask = u32::MAX.checked_shl(32 - u32::from(p)).unwrap_or(0);
            ClientNet::new(IpAddr::V4(Ipv4Addr::from(bits & mask)), p).ok()
        }),
        (any::<u128>(), 0u8..=128).prop_map(|(bits, p)| {
            let mask = u128::MAX.checked_shl(128 - u32::from(p)).unwrap_or(0);
            ClientNet::new(IpAddr::V6(Ipv6Addr::from(bits & mask)), p).ok()
        }),
    ];
    let fp = proptest::option::of(any::<[u8; 32]>().prop_map(CertFingerprint::from_bytes));
    let methods = prop_oneof![
        Just(MethodSet::Get),
        Just(MethodSet::Head),
        Just(MethodSet::GetHead)
    ];
    let window = (any::<u64>(), any::<u64>())
        .prop_filter("non-empty window", |(a, b)| a != b)
        .prop_map(|(a, b)| (a.min(b), a.max(b)));
    (
        any::<[u8; 16]>(),
        any::<[u8; 16]>(),
        methods,
        window,
        net,
        fp,
    )
        .prop_map(|(a, g, m, (nb, exp), client_net, client_cert)| {
            LinkClaims::new(
                ArtifactId::from(OpaqueId::from_bytes(a)),
                GrantId::from(OpaqueId::from_bytes(g)),
                m,
                UnixTime(nb),
                UnixTime(exp),
                Bindings {
                    client_net,
                    client_cert,
                },
            )
            .expect("window is non-empty")
        })
}

/// A request that satisfies every claim.
fn satisfying(claims: &LinkClaims) -> LinkRequest<'_> {
    let b = claims.bindings();
    LinkRequest {
        now: claims.not_before(),
        method: if claims.methods().contains(Method::Get) {
            Method::Get
        } else {
            Method::Head
        },
        client_addr: b
            .client_net
            .map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), |n| n.addr()),
        client_cert: b.client_cert.as_ref(),
    }
}

/// `claims` with field number `which` changed to a different value.
fn mutate(claims: &LinkClaims, which: u8, seed: u64) -> LinkClaims {
    let b = *claims.bindings();
    let flip16 = |id: OpaqueId| {
        let mut bytes = *id.as_bytes();
        bytes[(seed % 16) as usize] ^= 1 << (seed % 8);
        OpaqueId::from_bytes(bytes)
    };
    let (mut a, mut g, mut m) = (claims.artifact(), claims.grant(), claims.methods());
    let (mut nb, mut exp) = (claims.not_before().secs(), claims.expires().secs());
    let mut bindings = b;
    match which % 8 {
        0 => a = ArtifactId::from(flip16(a.opaque())),
        1 => g = GrantId::from(flip16(g.opaque())),
        2 => {
            m = match m {
                MethodSet::Get => MethodSet::GetHead,
                MethodSet::Head => MethodSet::Get,
                MethodSet::GetHead => MethodSet::Head,
            }
        }
        // Widen the window where possible; otherwise move the other end along.
        3 => {
            if nb > 0 {
                nb -= 1;
            } else {
                nb = 1;
                exp = exp.max(2);
            }
        }
        4 => {
            if exp < u64::MAX {
                exp += 1;
            } else {
                exp -= 1;
                nb = nb.min(exp - 1);
            }
        }
        5 => {
            bindings.client_net = match b.client_net {
                None => "10.0.0.0/8".parse().ok(),
                Some(n) if n.prefix() > 0 => ClientNet::new(
                    match n.addr() {
                        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
                    },
                    0,
                )
                .ok(),
                Some(_) => None,
            }
        }
        6 => {
            bindings.client_cert = match b.client_cert {
                None => Some(CertFingerprint::from_bytes([0; 32])),
                Some(fp) => {
                    let mut bytes = *fp.as_bytes();
                    bytes[(seed % 32) as usize] ^= 0x80;
                    Some(CertFingerprint::from_bytes(bytes))
                }
            }
        }
        _ => {
            // Drop every binding, or add one if there were none.
            bindings = if b == Bindings::default() {
                Bindings {
                    client_net: "0.0.0.0/0".parse().ok(),
                    client_cert: None,
                }
            } else {
                Bindings::default()
            }
        }
    }
    LinkClaims::new(a, g, m, UnixTime(nb), UnixTime(exp), bindings).expect("window kept non-empty")
}

proptest! {
    #[test]
    fn sign_url_parse_verify_round_trips(claims in arb_claims()) {
        let ring = ring(0);
        let url = ring.sign(&claims);
        prop_assert!(url.len() <= MAX_LINK_LEN);
        let parsed = SignedLink::parse(&url).expect("own link parses");
        prop_assert_eq!(parsed.to_url(), url.clone());
        let verified = ring.verify(&parsed, &satisfying(&claims)).expect("own link verifies");
        prop_assert_eq!(verified.claims(), &claims);
    }

    #[test]
    fn any_changed_signed_field_fails(claims in arb_claims(), which in 0u8..9, seed in any::<u64>()) {
        let ring = ring(0);
        let link = ring.sign_link(&claims);
        let (key_id, changed) = if which == 8 {
            (kid("k2"), claims.clone()) // same claims, another key's id
        } else {
            (kid("k1"), mutate(&claims, which, seed))
        };
        prop_assert!(which == 8 || changed != claims);
        let tampered = SignedLink::from_parts(key_id, changed.clone(), *link.signature());
        let result = ring.verify(&tampered, &satisfying(&changed));
        prop_assert_eq!(result, Err(LinkRejection::BadSignature));
    }

    #[test]
    fn any_flipped_signature_bit_fails(claims in arb_claims(), bit in 0usize..256) {
        let ring = ring(0);
        let link = ring.sign_link(&claims);
        let mut sig = *link.signature();
        sig[bit / 8] ^= 1 << (bit % 8);
        let tampered = SignedLink::from_parts(link.key_id().clone(), claims.clone(), sig);
        // Through the URL too: the flipped signature still has a canonical encoding.
        let reparsed = SignedLink::parse(&tampered.to_url()).expect("canonical");
        prop_assert_eq!(ring.verify(&reparsed, &satisfying(&claims)), Err(LinkRejection::BadSignature));
    }

    #[test]
    fn any_changed_url_byte_fails(claims in arb_claims(), pos in any::<prop::sample::Index>(), byte in 0x20u8..0x7f) {
        let ring = ring(0);
        let url = ring.sign(&claims);
        let i = pos.index(url.len());
        prop_assume!(url.as_bytes()[i] != byte);
        let mut bytes = url.into_bytes();
        bytes[i] = byte;
        let changed = String::from_utf8(bytes).expect("ascii");
        prop_assert!(ring.verify_target(&changed, &satisfying(&claims)).is_err(), "{}", changed);
    }

    #[test]
    fn parse_never_panics(s in "\\PC{0,600}") {
        let _ = SignedLink::parse(&s);
    }

    #[test]
    fn parse_never_panics_on_link_shaped_input(s in "/d/[0-9a-z]{0,30}\\?[a-z=&0-9,:/._-]{0,200}") {
        let _ = SignedLink::parse(&s);
    }
}
