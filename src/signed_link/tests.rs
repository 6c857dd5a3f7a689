//! Keyring behaviour, every rejection reason, clock-skew edges, and property tests:
//! sign → URL → parse → verify round-trips, and any change to a signed field, the
//! signature, or any byte of the URL makes verification fail.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::ids::OpaqueId;

const SECRET_1: [u8; 32] = [0x11; 32];
const SECRET_2: [u8; 32] = [0x22; 32];

fn kid(s: &str) -> KeyId {
    s.parse().expect("test key id")
}

fn ring(skew: u64) -> LinkKeyring {
    LinkKeyring::new(
        [
            LinkKeySpec::Current {
                id: kid("k1"),
                secret: &SECRET_1,
            },
            LinkKeySpec::VerifyOnly {
                id: kid("k2"),
                secret: &SECRET_2,
            },
            LinkKeySpec::Retired { id: kid("k0") },
        ],
        Duration::from_secs(skew),
    )
    .expect("test keyring")
}

fn claims_with(methods: MethodSet, nb: u64, exp: u64, bindings: Bindings) -> LinkClaims {
    LinkClaims::new(
        ArtifactId::from(OpaqueId::from_bytes([1; 16])),
        GrantId::from(OpaqueId::from_bytes([2; 16])),
        methods,
        UnixTime(nb),
        UnixTime(exp),
        bindings,
    )
    .expect("test claims")
}

fn request(now: u64, method: Method, addr: &str) -> LinkRequest<'static> {
    LinkRequest {
        now: UnixTime(now),
        method,
        client_addr: addr.parse().expect("test address"),
        client_cert: None,
    }
}

#[test]
fn keyring_construction_errors() {
    let skew = Duration::from_secs(60);
    let cur = |id: &str, s: &'static [u8]| LinkKeySpec::Current { id: kid(id), secret: s };
    let vo = |id: &str, s: &'static [u8]| LinkKeySpec::VerifyOnly { id: kid(id), secret: s };
    let ret = |id: &str| LinkKeySpec::Retired { id: kid(id) };
    let err = |specs: Vec<LinkKeySpec<'static>>, skew| LinkKeyring::new(specs, skew).err();

    assert_eq!(err(vec![], skew), Some(KeyringError::NoCurrentKey));
    assert_eq!(err(vec![vo("a", &SECRET_1)], skew), Some(KeyringError::NoCurrentKey));
    assert_eq!(
        err(vec![cur("a", &SECRET_1), cur("b", &SECRET_2)], skew),
        Some(KeyringError::SeveralCurrentKeys(kid("b")))
    );
    assert_eq!(
        err(vec![cur("a", &SECRET_1), vo("a", &SECRET_2)], skew),
        Some(KeyringError::DuplicateKeyId(kid("a")))
    );
    assert_eq!(
        err(vec![cur("a", &SECRET_1), ret("a")], skew),
        Some(KeyringError::DuplicateKeyId(kid("a")))
    );
    assert_eq!(
        err(vec![cur("a", &[7; 31])], skew),
        Some(KeyringError::SecretTooShort { id: kid("a"), len: 31 })
    );
    assert_eq!(
        err(vec![cur("a", &[7; 65])], skew),
        Some(KeyringError::SecretTooLong { id: kid("a"), len: 65 })
    );
    assert_eq!(
        err(vec![cur("a", &SECRET_1)], MAX_CLOCK_SKEW + Duration::from_secs(1)),
        Some(KeyringError::ClockSkewTooLarge)
    );
    assert!(LinkKeyring::new([cur("a", &[7; 64])], MAX_CLOCK_SKEW).is_ok());
}

#[test]
fn debug_shows_ids_not_secrets() {
    let debug = format!("{:?}", ring(60));
    assert_eq!(debug, "[k1: current, k2: verify-only, k0: retired] clock_skew=60s");
    let spec = LinkKeySpec::Current { id: kid("k9"), secret: &SECRET_1 };
    assert_eq!(format!("{spec:?}"), "Current(k9, <secret>)");
}

#[test]
fn sign_and_verify() {
    let ring = ring(0);
    let claims = claims_with(MethodSet::GetHead, 100, 200, Bindings::default());
    let url = ring.sign(&claims);
    assert!(url.starts_with("/d/"), "{url}");
    let ok = ring
        .verify_target(&url, &request(150, Method::Get, "192.0.2.1"))
        .expect("valid link");
    assert_eq!(ok.claims(), &claims);
    assert_eq!(ok.key_id(), &kid("k1"));
    assert_eq!(ok.grant(), claims.grant());
    assert_eq!(ok.artifact(), claims.artifact());
    assert_eq!(ok.expires(), UnixTime(200));
    assert_eq!(ring.current_key_id(), &kid("k1"));
}

#[test]
fn rotation_verify_only_retired_and_unknown_keys() {
    let claims = claims_with(MethodSet::Get, 100, 200, Bindings::default());
    let old = ring(0).sign(&claims); // signed by k1
    let req = request(150, Method::Get, "192.0.2.1");
    let rotated = LinkKeyring::new(
        [
            LinkKeySpec::Current { id: kid("k2"), secret: &SECRET_2 },
            LinkKeySpec::VerifyOnly { id: kid("k1"), secret: &SECRET_1 },
        ],
        Duration::ZERO,
    )
    .expect("rotated ring");
    assert!(rotated.verify_target(&old, &req).is_ok(), "verify-only key still verifies");
    assert!(rotated.sign(&claims).contains("&k=k2&"), "new links use the new key");

    let retired = LinkKeyring::new(
        [
            LinkKeySpec::Current { id: kid("k2"), secret: &SECRET_2 },
            LinkKeySpec::Retired { id: kid("k1") },
        ],
        Duration::ZERO,
    )
    .expect("ring");
    assert_eq!(retired.verify_target(&old, &req), Err(LinkRejection::RetiredKey));

    let forgotten = LinkKeyring::new(
        [LinkKeySpec::Current { id: kid("k2"), secret: &SECRET_2 }],
        Duration::ZERO,
    )
    .expect("ring");
    assert_eq!(forgotten.verify_target(&old, &req), Err(LinkRejection::UnknownKey));

    let same_id_other_secret = LinkKeyring::new(
        [LinkKeySpec::Current { id: kid("k1"), secret: &SECRET_2 }],
        Duration::ZERO,
    )
    .expect("ring");
    assert_eq!(
        same_id_other_secret.verify_target(&old, &req),
        Err(LinkRejection::BadSignature)
    );
}

#[test]
fn every_rejection_reason_after_a_good_signature() {
    let ring = ring(0);
    let fp = CertFingerprint::from_bytes([9; 32]);
    let other_fp = CertFingerprint::from_bytes([8; 32]);
    let bound = Bindings {
        client_net: Some("192.0.2.0/24".parse().expect("net")),
        client_cert: Some(fp),
    };
    let url = ring.sign(&claims_with(MethodSet::Get, 100, 200, bound));
    let good = LinkRequest {
        client_cert: Some(&fp),
        ..request(150, Method::Get, "192.0.2.77")
    };
    assert!(ring.verify_target(&url, &good).is_ok());
    let cases = [
        (LinkRequest { now: UnixTime(200), ..good }, LinkRejection::Expired),
        (LinkRequest { now: UnixTime(99), ..good }, LinkRejection::NotYetValid),
        (LinkRequest { method: Method::Head, ..good }, LinkRejection::MethodNotAllowed),
        (
            LinkRequest { client_addr: "192.0.3.1".parse().expect("ip"), ..good },
            LinkRejection::ClientAddressMismatch,
        ),
        (
            LinkRequest { client_addr: "2001:db8::1".parse().expect("ip"), ..good },
            LinkRejection::ClientAddressMismatch,
        ),
        (LinkRequest { client_cert: None, ..good }, LinkRejection::ClientCertMissing),
        (
            LinkRequest { client_cert: Some(&other_fp), ..good },
            LinkRejection::ClientCertMismatch,
        ),
    ];
    for (req, want) in cases {
        assert_eq!(ring.verify_target(&url, &req), Err(want.clone()), "{want:?}");
    }
    // A dual-stack listener reports IPv4 peers as IPv4-mapped IPv6: still inside.
    let mapped = LinkRequest { client_addr: "::ffff:192.0.2.5".parse().expect("ip"), ..good };
    assert!(ring.verify_target(&url, &mapped).is_ok());
    // A bad signature is reported before any claim is judged.
    let forged = url.replace("exp=200", "exp=201");
    let late = LinkRequest { now: UnixTime(10_000), ..good };
    assert_eq!(ring.verify_target(&forged, &late), Err(LinkRejection::BadSignature));
}

#[test]
fn clock_skew_edges() {
    let claims = claims_with(MethodSet::Get, 10_000, 20_000, Bindings::default());
    for skew in [0u64, 1, 60, 3600] {
        let ring = ring(skew);
        let url = ring.sign(&claims);
        let at = |now: u64| ring.verify_target(&url, &request(now, Method::Get, "10.0.0.1"));
        assert!(at(10_000 - skew).is_ok(), "skew {skew}: first accepted second");
        assert_eq!(at(10_000 - skew - 1), Err(LinkRejection::NotYetValid), "skew {skew}");
        assert!(at(19_999).is_ok(), "skew {skew}: last valid second");
        assert_eq!(at(20_000), Err(LinkRejection::Expired), "skew {skew}: expiry has no skew");
        assert_eq!(at(u64::MAX), Err(LinkRejection::Expired));
        assert_eq!(at(0), Err(LinkRejection::NotYetValid));
    }
    // Saturation: a window at the very end of time with the maximum skew.
    let end = claims_with(MethodSet::Get, u64::MAX - 1, u64::MAX, Bindings::default());
    let ring = ring(3600);
    let url = ring.sign(&end);
    assert!(ring.verify_target(&url, &request(u64::MAX - 1, Method::Get, "::1")).is_ok());
    assert_eq!(
        ring.verify_target(&url, &request(u64::MAX - 3602, Method::Get, "::1")),
        Err(LinkRejection::NotYetValid)
    );
}

#[test]
fn tricky_encodings_of_a_valid_link_are_all_rejected() {
    let ring = ring(0);
    let bindings = Bindings {
        client_net: Some("2001:db8::/32".parse().expect("net")),
        client_cert: None,
    };
    let url = ring.sign(&claims_with(MethodSet::GetHead, 100, 200, bindings));
    let req = request(150, Method::Get, "2001:db8::5");
    assert!(ring.verify_target(&url, &req).is_ok());
    let sig_start = url.find("&sig=").expect("sig") + 5;
    let variants = [
        url.replacen("&k=", "&%6B=", 1),         // percent-encoded name
        url.replacen("&k=", "&%6b=", 1),         // lowercase hex
        url.replacen("m=GET,HEAD", "m=GET%2CHEAD", 1),
        url.replacen("2001:db8::", "2001%3Adb8::", 1),
        url.replacen("&k=k1", "&k=k1%00", 1),
        url.replacen("&k=k1", "&k=k%251", 1),    // double encoding
        url.replacen("&k=k1", "&k=k+1", 1),
        url.replacen('&', "&amp;", 1),
        url.replacen("/d/", "/d/./", 1),
        url.replacen("/d/", "/%64/", 1),
        url.replacen("&sig=", "&k=k1&sig=", 1),  // duplicate
        format!("{url}&x=1"),                    // unknown trailing
        format!("{url}="),                       // base64 padding
        format!("{url}&"),
        format!("{}+{}", &url[..sig_start], &url[sig_start + 1..]), // '+' in base64
        format!("{url}\u{00e9}"),
        format!("{url}{}", "A".repeat(MAX_LINK_LEN)),
        url.to_uppercase(),
    ];
    for v in variants {
        assert_ne!(v, url);
        let got = ring.verify_target(&v, &req);
        assert!(got.is_err(), "{v:?} was accepted");
    }
}

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
    (any::<[u8; 16]>(), any::<[u8; 16]>(), methods, window, net, fp).prop_map(
        |(a, g, m, (nb, exp), client_net, client_cert)| {
            LinkClaims::new(
                ArtifactId::from(OpaqueId::from_bytes(a)),
                GrantId::from(OpaqueId::from_bytes(g)),
                m,
                UnixTime(nb),
                UnixTime(exp),
                Bindings { client_net, client_cert },
            )
            .expect("window is non-empty")
        },
    )
}

/// A request that satisfies every claim.
fn satisfying(claims: &LinkClaims) -> LinkRequest<'_> {
    let b = claims.bindings();
    LinkRequest {
        now: claims.not_before(),
        method: if claims.methods().contains(Method::Get) { Method::Get } else { Method::Head },
        client_addr: b.client_net.map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), |n| n.addr()),
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
                Bindings { client_net: "0.0.0.0/0".parse().ok(), client_cert: None }
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
