//! Signed-link URLs: a target that parses prints back to a URL that parses equal; the same
//! claims signed with a fixed key verify; a fuzzed target verifies only if it carries the
//! fixed key's signature (which the fuzzer cannot forge), and otherwise is refused cleanly.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use sallyport::signed_link::{
    LinkKeySpec, LinkKeyring, LinkRejection, LinkRequest, Method, SignedLink, UnixTime,
};

fuzz_target!(|data: &[u8]| {
    let Ok(target) = std::str::from_utf8(data) else {
        return;
    };
    let keyring = LinkKeyring::new(
        [
            LinkKeySpec::Current {
                // One character, the shortest id: a re-signed link is never longer than
                // the link it was parsed from, so it stays under MAX_LINK_LEN.
                id: "k".parse().expect("key id"),
                secret: &[0x11; 32],
            },
            LinkKeySpec::Retired {
                id: "old".parse().expect("key id"),
            },
        ],
        Duration::from_secs(60),
    )
    .expect("keyring");
    let request = |now: u64| LinkRequest {
        now: UnixTime(now),
        method: Method::Get,
        client_addr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)),
        client_cert: None,
    };
    let verified = keyring.verify_target(target, &request(1_700_000_000));
    let Ok(link) = SignedLink::parse(target) else {
        assert!(
            matches!(verified, Err(LinkRejection::Malformed(_))),
            "{verified:?}"
        );
        return;
    };
    let url = link.to_url();
    let again = SignedLink::parse(&url).expect("own URL parses");
    assert!(again == link, "URL round trip changed the link");
    assert_eq!(again.to_url(), url);

    // Re-signed with the fixed key, the same claims pass the signature check, and the
    // outcome past it depends only on the claims, not on the key.
    let claims = link.unverified_claims();
    let resigned = keyring.sign(claims);
    let resigned_link = SignedLink::parse(&resigned).expect("signed URL parses");
    assert!(resigned_link.unverified_claims() == claims);
    let now = claims.not_before().secs();
    let outcome = keyring.verify(&resigned_link, &request(now));
    assert!(
        !matches!(
            outcome,
            Err(LinkRejection::BadSignature | LinkRejection::UnknownKey | LinkRejection::Expired)
        ),
        "{outcome:?}"
    );
    if let Ok(v) = &verified {
        assert_eq!(v.claims(), claims);
    }
});
