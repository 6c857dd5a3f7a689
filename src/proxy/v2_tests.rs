use proptest::prelude::*;

use super::*;

/// An IPv4 TCP header as HAProxy writes it for 203.0.113.7:51234 → 192.0.2.1:443, written
/// out byte by byte (not with `encode`), with an AWS-style TLV (type 0xEA) and a NOOP.
fn ipv4_with_tlvs() -> Vec<u8> {
    let mut h = b"\r\n\r\n\x00\r\nQUIT\n".to_vec();
    h.extend_from_slice(&[0x21, 0x11, 0x00, 12 + 3 + 9 + 3 + 2]);
    h.extend_from_slice(&[203, 0, 113, 7, 192, 0, 2, 1, 0xc8, 0x22, 0x01, 0xbb]);
    h.extend_from_slice(&[0xea, 0x00, 0x09, 0x01]);
    h.extend_from_slice(b"vpce-123");
    h.extend_from_slice(&[0x04, 0x00, 0x02, 0x00, 0x00]);
    h
}

/// IPv6 2001:db8::7 port 1 → 2001:db8::1 port 443, no TLVs.
fn ipv6() -> Vec<u8> {
    let mut h = b"\r\n\r\n\x00\r\nQUIT\n".to_vec();
    h.extend_from_slice(&[0x21, 0x21, 0x00, 36]);
    let mut src = [0u8; 16];
    src[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
    src[15] = 7;
    let mut dst = src;
    dst[15] = 1;
    h.extend_from_slice(&src);
    h.extend_from_slice(&dst);
    h.extend_from_slice(&[0x00, 0x01, 0x01, 0xbb]);
    h
}

/// HAProxy's health check (`check-send-proxy`): LOCAL, UNSPEC, no body.
fn local() -> Vec<u8> {
    b"\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00".to_vec()
}

fn parsed(bytes: &[u8]) -> Header {
    match parse(bytes) {
        Ok(Parse::Parsed(h)) => h,
        other => panic!("expected a header, got {other:?}"),
    }
}

#[test]
fn real_headers_parse() {
    let h = parsed(&ipv4_with_tlvs());
    assert_eq!(h.len, ipv4_with_tlvs().len());
    let p = h.proxied.expect("PROXY command");
    assert_eq!(p.src, "203.0.113.7:51234".parse().expect("addr"));
    assert_eq!(p.dst, "192.0.2.1:443".parse().expect("addr"));

    let h = parsed(&ipv6());
    assert_eq!(h.len, 52);
    let p = h.proxied.expect("PROXY command");
    assert_eq!(p.src, "[2001:db8::7]:1".parse().expect("addr"));
    assert_eq!(p.dst, "[2001:db8::1]:443".parse().expect("addr"));

    assert_eq!(
        parsed(&local()),
        Header {
            len: 16,
            proxied: None
        }
    );
}

#[test]
fn every_prefix_of_a_real_header_is_incomplete_and_never_overreaches() {
    for header in [ipv4_with_tlvs(), ipv6(), local()] {
        for n in 0..header.len() {
            match parse(&header[..n]) {
                Ok(Parse::Incomplete { needed }) => {
                    assert!(needed >= 1, "prefix {n}");
                    assert!(n + needed <= header.len(), "prefix {n} asks past the end");
                }
                other => panic!("prefix {n} of {header:?}: {other:?}"),
            }
        }
        // What follows the header (the TLS ClientHello) is not looked at.
        let mut with_stream = header.clone();
        with_stream.extend_from_slice(&[0x16, 0x03, 0x01, 0x02, 0x00]);
        assert_eq!(parsed(&with_stream).len, header.len());
    }
}

#[test]
fn reading_exactly_what_is_needed_reaches_the_header_in_few_steps() {
    let header = ipv4_with_tlvs();
    let mut have = 0;
    let mut steps = 0;
    loop {
        steps += 1;
        match parse(&header[..have]).expect("valid") {
            Parse::Incomplete { needed } => have += needed,
            Parse::Parsed(h) => {
                assert_eq!(h.len, header.len());
                break;
            }
        }
    }
    assert_eq!(steps, 3, "fixed part, then the rest, then done");
}

#[test]
fn refusals_are_typed() {
    use ProxyHeaderError as E;
    // A TLS ClientHello where a header was expected.
    assert_eq!(parse(&[0x16, 0x03, 0x01, 0x02]), Err(E::Missing));
    assert_eq!(parse(b"GET / HTTP/1.1\r\n"), Err(E::Missing));
    assert_eq!(
        parse(b"PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\r\n"),
        Err(E::Version1)
    );
    let with = |i: usize, b: u8| {
        let mut h = ipv4_with_tlvs();
        h[i] = b;
        h
    };
    assert_eq!(parse(&with(12, 0x11)), Err(E::Version));
    assert_eq!(parse(&with(12, 0x22)), Err(E::Command));
    // UNSPEC, UNIX, and UDP over IPv4 with the PROXY command.
    assert_eq!(parse(&with(13, 0x00)), Err(E::Family));
    assert_eq!(parse(&with(13, 0x31)), Err(E::Family));
    assert_eq!(parse(&with(13, 0x12)), Err(E::Family));
    // The length field cannot hold the addresses.
    let mut short = ipv6();
    short[15] = 35;
    assert_eq!(parse(&short), Err(E::Short));
    // A length past the cap is refused before any of it is awaited.
    let mut long = local();
    long[14..16].copy_from_slice(&u16::MAX.to_be_bytes());
    assert_eq!(parse(&long), Err(E::TooLong));
    // A TLV that runs past the header, and a TLV cut inside its own 3-byte head.
    let mut tlv = ipv4_with_tlvs();
    tlv[30] = 0x10;
    assert_eq!(parse(&tlv), Err(E::Tlv));
    let mut head = ipv4_with_tlvs();
    head.truncate(head.len() - 5); // the NOOP TLV
    head.push(0x04); // a lone type byte
    head[15] -= 4;
    assert_eq!(parse(&head), Err(E::Tlv));
}

#[test]
fn local_ignores_whatever_block_it_carries() {
    // A LOCAL header may still carry an address block; it is discarded unread.
    let mut h = ipv4_with_tlvs();
    h[12] = 0x20;
    assert_eq!(
        parsed(&h),
        Header {
            len: h.len(),
            proxied: None
        }
    );
}

#[test]
fn encode_matches_the_hand_written_bytes() {
    let h = encode(
        "[2001:db8::7]:1".parse().expect("addr"),
        "[2001:db8::1]:443".parse().expect("addr"),
        &[],
    );
    assert_eq!(h, Some(ipv6()));
    assert_eq!(
        encode(
            "1.2.3.4:1".parse().expect("addr"),
            "[::1]:1".parse().expect("addr"),
            &[]
        ),
        None
    );
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_and_stay_in_bounds(
        bytes in prop::collection::vec(any::<u8>(), 0..200),
        signed in any::<bool>(),
    ) {
        let mut input = if signed { SIGNATURE.to_vec() } else { Vec::new() };
        input.extend_from_slice(&bytes);
        match parse(&input) {
            Ok(Parse::Parsed(h)) => {
                prop_assert!(h.len <= input.len());
                prop_assert!(h.len <= MAX_HEADER_LEN);
            }
            Ok(Parse::Incomplete { needed }) => {
                prop_assert!(needed >= 1);
                prop_assert!(input.len() + needed <= MAX_HEADER_LEN);
            }
            Err(_) => {}
        }
    }

    #[test]
    fn encoded_headers_round_trip(
        v6 in any::<bool>(),
        a in any::<[u8; 16]>(),
        b in any::<[u8; 16]>(),
        ports in any::<(u16, u16)>(),
        tlvs in prop::collection::vec((any::<u8>(), prop::collection::vec(any::<u8>(), 0..40)), 0..6),
        trailing in prop::collection::vec(any::<u8>(), 0..20),
    ) {
        let (src, dst): (SocketAddr, SocketAddr) = if v6 {
            ((Ipv6Addr::from(a), ports.0).into(), (Ipv6Addr::from(b), ports.1).into())
        } else {
            let v4 = |x: [u8; 16]| Ipv4Addr::new(x[0], x[1], x[2], x[3]);
            ((v4(a), ports.0).into(), (v4(b), ports.1).into())
        };
        let mut tlv_bytes = Vec::new();
        for (t, v) in &tlvs {
            tlv_bytes.push(*t);
            tlv_bytes.extend_from_slice(&(v.len() as u16).to_be_bytes());
            tlv_bytes.extend_from_slice(v);
        }
        let header = encode(src, dst, &tlv_bytes).expect("one family");
        let mut input = header.clone();
        input.extend_from_slice(&trailing);
        let h = match parse(&input) {
            Ok(Parse::Parsed(h)) => h,
            other => return Err(TestCaseError::fail(format!("{other:?}"))),
        };
        prop_assert_eq!(h.len, header.len());
        prop_assert_eq!(h.proxied, Some(Proxied { src, dst }));
        // Every prefix asks for more, never past the header's end.
        for n in 0..header.len() {
            match parse(&header[..n]) {
                Ok(Parse::Incomplete { needed }) => prop_assert!(n + needed <= header.len()),
                other => return Err(TestCaseError::fail(format!("prefix {n}: {other:?}"))),
            }
        }
    }
}
