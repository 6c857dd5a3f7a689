//! Keyring behaviour, every rejection reason, clock-skew edges and tricky encodings. The
//! property tests are in `proptests.rs`.

use std::time::Duration;

use super::*;
use crate::ids::OpaqueId;

pub(super) const SECRET_1: [u8; 32] = [0x11; 32];
pub(super) const SECRET_2: [u8; 32] = [0x22; 32];

pub(super) fn kid(s: &str) -> KeyId {
    s.parse().expect("test key id")
}

pub(super) fn ring(skew: u64) -> LinkKeyring {
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
    let cur = |id: &str, s: &'static [u8]| LinkKeySpec::Current {
        id: kid(id),
        secret: s,
    };
    let vo = |id: &str, s: &'static [u8]| LinkKeySpec::VerifyOnly {
        id: kid(id),
        secret: s,
    };
    let ret = |id: &str| LinkKeySpec::Retired { id: kid(id) };
    let err = |specs: Vec<LinkKeySpec<'static>>, skew| LinkKeyring::new(specs, skew).err();

    assert_eq!(err(vec![], skew), Some(KeyringError::NoCurrentKey));
    assert_eq!(
        err(vec![vo("a", &SECRET_1)], skew),
        Some(KeyringError::NoCurrentKey)
    );
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
        Some(KeyringError::SecretTooShort {
            id: kid("a"),
            len: 31
        })
    );
    assert_eq!(
        err(vec![cur("a", &[7; 65])], skew),
        Some(KeyringError::SecretTooLong {
            id: kid("a"),
            len: 65
        })
    );
    assert_eq!(
        err(
            vec![cur("a", &SECRET_1)],
            MAX_CLOCK_SKEW + Duration::from_secs(1)
        ),
        Some(KeyringError::ClockSkewTooLarge)
    );
    assert!(LinkKeyring::new([cur("a", &[7; 64])], MAX_CLOCK_SKEW).is_ok());
}

#[test]
fn prekeyed_hmac_state_is_zeroised_on_drop() {
    // Compile-time check that the `zeroize` feature of sha2 is in effect. `Hmac<Sha256>`
    // holds two of these cores (the inner- and outer-pad states, which are as good as the
    // key) plus a block buffer of message bytes; the cores wipe themselves on drop. `Hmac`
    // itself does not carry the marker trait in hmac 0.13, hence checking its parts.
    fn zeroised_on_drop<T: zeroize::ZeroizeOnDrop>() {}
    zeroised_on_drop::<<sha2::Sha256 as hmac::EagerHash>::Core>();
}

#[test]
fn debug_shows_ids_not_secrets() {
    let debug = format!("{:?}", ring(60));
    assert_eq!(
        debug,
        "[k1: current, k2: verify-only, k0: retired] clock_skew=60s"
    );
    let spec = LinkKeySpec::Current {
        id: kid("k9"),
        secret: &SECRET_1,
    };
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
            LinkKeySpec::Current {
                id: kid("k2"),
                secret: &SECRET_2,
            },
            LinkKeySpec::VerifyOnly {
                id: kid("k1"),
                secret: &SECRET_1,
            },
        ],
        Duration::ZERO,
    )
    .expect("rotated ring");
    assert!(
        rotated.verify_target(&old, &req).is_ok(),
        "verify-only key still verifies"
    );
    assert!(
        rotated.sign(&claims).contains("&k=k2&"),
        "new links use the new key"
    );

    let retired = LinkKeyring::new(
        [
            LinkKeySpec::Current {
                id: kid("k2"),
                secret: &SECRET_2,
            },
            LinkKeySpec::Retired { id: kid("k1") },
        ],
        Duration::ZERO,
    )
    .expect("ring");
    assert_eq!(
        retired.verify_target(&old, &req),
        Err(LinkRejection::RetiredKey)
    );

    let forgotten = LinkKeyring::new(
        [LinkKeySpec::Current {
            id: kid("k2"),
            secret: &SECRET_2,
        }],
        Duration::ZERO,
    )
    .expect("ring");
    assert_eq!(
        forgotten.verify_target(&old, &req),
        Err(LinkRejection::UnknownKey)
    );

    let same_id_other_secret = LinkKeyring::new(
        [LinkKeySpec::Current {
            id: kid("k1"),
            secret: &SECRET_2,
        }],
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
        (
            LinkRequest {
                now: UnixTime(200),
                ..good
            },
            LinkRejection::Expired,
        ),
        (
            LinkRequest {
                now: UnixTime(99),
                ..good
            },
            LinkRejection::NotYetValid,
        ),
        (
            LinkRequest {
                method: Method::Head,
                ..good
            },
            LinkRejection::MethodNotAllowed,
        ),
        (
            LinkRequest {
                client_addr: "192.0.3.1".parse().expect("ip"),
                ..good
            },
            LinkRejection::ClientAddressMismatch,
        ),
        (
            LinkRequest {
                client_addr: "2001:db8::1".parse().expect("ip"),
                ..good
            },
            LinkRejection::ClientAddressMismatch,
        ),
        (
            LinkRequest {
                client_cert: None,
                ..good
            },
            LinkRejection::ClientCertMissing,
        ),
        (
            LinkRequest {
                client_cert: Some(&other_fp),
                ..good
            },
            LinkRejection::ClientCertMismatch,
        ),
    ];
    for (req, want) in cases {
        assert_eq!(
            ring.verify_target(&url, &req),
            Err(want.clone()),
            "{want:?}"
        );
    }
    // A dual-stack listener reports IPv4 peers as IPv4-mapped IPv6: still inside.
    let mapped = LinkRequest {
        client_addr: "::ffff:192.0.2.5".parse().expect("ip"),
        ..good
    };
    assert!(ring.verify_target(&url, &mapped).is_ok());
    // A bad signature is reported before any claim is judged.
    let forged = url.replace("exp=200", "exp=201");
    let late = LinkRequest {
        now: UnixTime(10_000),
        ..good
    };
    assert_eq!(
        ring.verify_target(&forged, &late),
        Err(LinkRejection::BadSignature)
    );
}

#[test]
fn clock_skew_edges() {
    let claims = claims_with(MethodSet::Get, 10_000, 20_000, Bindings::default());
    for skew in [0u64, 1, 60, 3600] {
        let ring = ring(skew);
        let url = ring.sign(&claims);
        let at = |now: u64| ring.verify_target(&url, &request(now, Method::Get, "10.0.0.1"));
        assert!(
            at(10_000 - skew).is_ok(),
            "skew {skew}: first accepted second"
        );
        assert_eq!(
            at(10_000 - skew - 1),
            Err(LinkRejection::NotYetValid),
            "skew {skew}"
        );
        assert!(at(19_999).is_ok(), "skew {skew}: last valid second");
        assert_eq!(
            at(20_000),
            Err(LinkRejection::Expired),
            "skew {skew}: expiry has no skew"
        );
        assert_eq!(at(u64::MAX), Err(LinkRejection::Expired));
        assert_eq!(at(0), Err(LinkRejection::NotYetValid));
    }
    // Saturation: a window at the very end of time with the maximum skew.
    let end = claims_with(MethodSet::Get, u64::MAX - 1, u64::MAX, Bindings::default());
    let ring = ring(3600);
    let url = ring.sign(&end);
    assert!(
        ring.verify_target(&url, &request(u64::MAX - 1, Method::Get, "::1"))
            .is_ok()
    );
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
        url.replacen("&k=", "&%6B=", 1), // percent-encoded name
        url.replacen("&k=", "&%6b=", 1), // lowercase hex
        url.replacen("m=GET,HEAD", "m=GET%2CHEAD", 1),
        url.replacen("2001:db8::", "2001%3Adb8::", 1),
        url.replacen("&k=k1", "&k=k1%00", 1),
        url.replacen("&k=k1", "&k=k%251", 1), // double encoding
        url.replacen("&k=k1", "&k=k+1", 1),
        url.replacen('&', "&amp;", 1),
        url.replacen("/d/", "/d/./", 1),
        url.replacen("/d/", "/%64/", 1),
        url.replacen("&sig=", "&k=k1&sig=", 1), // duplicate
        format!("{url}&x=1"),                   // unknown trailing
        format!("{url}="),                      // base64 padding
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

#[test]
fn the_longest_canonical_link_fits_with_room_to_spare() {
    let claims = LinkClaims::new(
        ArtifactId::from(OpaqueId::from_bytes([0xff; 16])),
        GrantId::from(OpaqueId::from_bytes([0xff; 16])),
        MethodSet::GetHead,
        UnixTime(u64::MAX - 1),
        UnixTime(u64::MAX),
        Bindings {
            client_net: Some(
                "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128"
                    .parse()
                    .expect("net"),
            ),
            client_cert: Some(CertFingerprint::from_bytes([0xff; 32])),
        },
    )
    .expect("claims");
    let long_id = "k".repeat(32);
    let ring = LinkKeyring::new(
        [LinkKeySpec::Current {
            id: kid(&long_id),
            secret: &SECRET_1,
        }],
        Duration::ZERO,
    )
    .expect("ring");
    let url = ring.sign(&claims);
    assert_eq!(url.len(), 299, "the figure in proto/signed-link-v1.md");
    assert!(url.len() < MAX_LINK_LEN);
}

#[test]
fn audit_codes_are_distinct_and_documented() {
    use LinkParseError as P;
    let parse = [
        P::TooLong,
        P::ForbiddenCharacter,
        P::PercentEncoded,
        P::Path,
        P::Artifact,
        P::Parameter,
        P::UnknownParameter,
        P::DuplicateParameter,
        P::ParameterOrder,
        P::MissingParameter,
        P::UnsupportedVersion,
        P::Version,
        P::KeyId,
        P::Grant,
        P::Methods,
        P::Time,
        P::EmptyWindow,
        P::ClientNet,
        P::CertFingerprint,
        P::Signature,
    ];
    let mut all: Vec<LinkRejection> = parse.into_iter().map(LinkRejection::from).collect();
    all.extend([
        LinkRejection::UnknownKey,
        LinkRejection::RetiredKey,
        LinkRejection::BadSignature,
        LinkRejection::Expired,
        LinkRejection::NotYetValid,
        LinkRejection::MethodNotAllowed,
        LinkRejection::ClientAddressMismatch,
        LinkRejection::ClientCertMissing,
        LinkRejection::ClientCertMismatch,
    ]);
    let codes: std::collections::BTreeSet<&str> = all.iter().map(LinkRejection::code).collect();
    assert_eq!(codes.len(), all.len(), "codes are distinct");
    let doc = include_str!("../../proto/signed-link-v1.md");
    let table = &doc[doc.find("## 6. Rejection codes").expect("section")..];
    for code in &codes {
        assert!(
            table.contains(&format!("`{code}`")),
            "{code} is not documented"
        );
    }
}
