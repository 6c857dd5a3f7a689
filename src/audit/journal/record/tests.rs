use proptest::prelude::*;

use super::*;

fn segment_of(first_seq: u64, payloads: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, p) in payloads.iter().enumerate() {
        encode_record(first_seq + i as u64, p, &mut out);
    }
    out
}

#[test]
fn a_header_round_trips_and_every_bad_header_is_refused() {
    let h = SegmentHeader { first_seq: 42 };
    let bytes = h.encode();
    assert_eq!(SegmentHeader::decode(&bytes), Ok(h));
    for n in 0..HEADER_LEN {
        assert_eq!(
            SegmentHeader::decode(&bytes[..n]),
            Err(HeaderError::Short(n))
        );
    }
    let mut bad = bytes;
    bad[0] ^= 1;
    assert_eq!(SegmentHeader::decode(&bad), Err(HeaderError::Magic));
    let mut bad = bytes;
    bad[11] = 2;
    assert_eq!(SegmentHeader::decode(&bad), Err(HeaderError::Version(2)));
    let mut bad = bytes;
    bad[15] = 1;
    assert_eq!(SegmentHeader::decode(&bad), Err(HeaderError::Malformed));
    let zero = SegmentHeader { first_seq: 0 }.encode();
    assert_eq!(SegmentHeader::decode(&zero), Err(HeaderError::Malformed));
}

#[test]
fn every_prefix_of_a_record_is_incomplete_and_every_flipped_bit_is_caught() {
    let mut rec = Vec::new();
    encode_record(7, b"{\"seq\":7}", &mut rec);
    assert_eq!(rec.len(), RECORD_OVERHEAD + 9);
    for n in 0..rec.len() {
        assert_eq!(decode_record(&rec[..n]), Decoded::Incomplete, "prefix {n}");
    }
    for byte in 0..rec.len() {
        for bit in 0..8 {
            let mut bad = rec.clone();
            bad[byte] ^= 1 << bit;
            // A flipped length bit may also make the record look longer: incomplete.
            assert!(
                matches!(decode_record(&bad), Decoded::Bad | Decoded::Incomplete),
                "byte {byte} bit {bit}"
            );
        }
    }
}

#[test]
fn a_huge_length_is_refused_without_waiting_for_the_bytes() {
    let mut rec = vec![0xff, 0xff, 0xff, 0xff];
    rec.extend_from_slice(&1u64.to_be_bytes());
    assert_eq!(decode_record(&rec), Decoded::Bad);
}

#[test]
fn a_bad_record_before_a_valid_one_is_corruption_not_a_torn_tail() {
    let payloads: Vec<Vec<u8>> = (0..4).map(|i| vec![b'a' + i; 20]).collect();
    let mut seg = segment_of(1, &payloads);
    let second = RECORD_OVERHEAD + 20;
    seg[second + 14] ^= 0x40; // inside record 2's payload
    let s = scan(&seg, 1);
    assert_eq!(s.records.len(), 1);
    assert_eq!(
        s.tail,
        Tail::Corrupt {
            offset: second,
            expected: 2
        }
    );
}

#[test]
fn a_record_out_of_sequence_is_corruption() {
    let mut seg = segment_of(1, &[b"a".to_vec()]);
    encode_record(3, b"c", &mut seg);
    let s = scan(&seg, 1);
    assert_eq!(s.records.len(), 1);
    assert!(matches!(s.tail, Tail::Corrupt { expected: 2, .. }));
}

proptest! {
    #[test]
    fn records_round_trip(
        first in 1u64..1 << 40,
        payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..20),
    ) {
        let seg = segment_of(first, &payloads);
        let s = scan(&seg, first);
        prop_assert_eq!(s.tail, Tail::Clean);
        prop_assert_eq!(s.end, seg.len());
        prop_assert_eq!(s.records.len(), payloads.len());
        for (i, (r, p)) in s.records.iter().zip(&payloads).enumerate() {
            prop_assert_eq!(r.seq, first + i as u64);
            prop_assert_eq!(r.payload(&seg), &p[..]);
        }
    }

    /// A write cut anywhere keeps every whole record before the cut and calls the rest torn.
    #[test]
    fn a_cut_anywhere_is_a_torn_tail_after_the_whole_records(
        payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..200), 1..10),
        cut in any::<prop::sample::Index>(),
    ) {
        let seg = segment_of(1, &payloads);
        let cut = cut.index(seg.len());
        let s = scan(&seg[..cut], 1);
        let whole: Vec<usize> = s.records.iter().map(|r| r.offset + r.len).collect();
        prop_assert!(whole.iter().all(|&e| e <= cut));
        prop_assert_eq!(s.end, whole.last().copied().unwrap_or(0));
        prop_assert!(cut - s.end < RECORD_OVERHEAD + 200);
        if cut == s.end {
            prop_assert_eq!(s.tail, Tail::Clean);
        } else if is_zero_fill(&seg[s.end..cut]) {
            // A cut inside a length field's leading zeros: as good as the end.
            prop_assert_eq!(s.tail, Tail::ZeroFill { bytes: cut - s.end });
        } else {
            prop_assert_eq!(s.tail, Tail::Torn { bytes: cut - s.end });
        }
    }

    /// Zeros after the records are the writer's zero fill: a clean end, whatever their
    /// length; a record cut short inside the fill (a torn write over it) is a torn tail
    /// that takes the zeros after it along.
    #[test]
    fn zeros_after_the_records_are_zero_fill_and_a_torn_write_over_them_is_torn(
        payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..200), 1..10),
        zeros in 1usize..5000,
        torn in prop::collection::vec(any::<u8>(), 1..300),
    ) {
        let mut seg = segment_of(1, &payloads);
        let good = seg.len();
        seg.resize(good + zeros, 0);
        let s = scan(&seg, 1);
        prop_assert_eq!(s.records.len(), payloads.len());
        prop_assert_eq!(s.end, good);
        prop_assert_eq!(s.tail, Tail::ZeroFill { bytes: zeros });

        // A record of the next batch, cut short, written over the fill.
        let mut next = Vec::new();
        encode_record(payloads.len() as u64 + 1, &torn, &mut next);
        let cut = torn.len() % (next.len() - 1) + 1;
        let mut seg = segment_of(1, &payloads);
        seg.extend_from_slice(&next[..cut]);
        seg.resize(seg.len() + zeros, 0);
        let s = scan(&seg, 1);
        prop_assert_eq!(s.records.len(), payloads.len());
        prop_assert_eq!(s.end, good);
        if is_zero_fill(&next[..cut]) {
            prop_assert_eq!(s.tail, Tail::ZeroFill { bytes: cut + zeros });
        } else {
            prop_assert_eq!(s.tail, Tail::Torn { bytes: cut + zeros });
        }
    }

    /// Garbage appended after good records is a torn tail (never corruption, never a
    /// record), unless it happens to hold a valid record, which random bytes never do.
    #[test]
    fn garbage_after_the_records_is_a_torn_tail(
        payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..100), 0..5),
        garbage in prop::collection::vec(any::<u8>(), 1..400),
    ) {
        let mut seg = segment_of(1, &payloads);
        let good = seg.len();
        seg.extend_from_slice(&garbage);
        let s = scan(&seg, 1);
        prop_assert_eq!(s.records.len(), payloads.len());
        prop_assert_eq!(s.end, good);
        if is_zero_fill(&garbage) {
            prop_assert_eq!(s.tail, Tail::ZeroFill { bytes: garbage.len() });
        } else {
            prop_assert_eq!(s.tail, Tail::Torn { bytes: garbage.len() });
        }
    }

    /// Arbitrary bytes never panic the scanner, and what it accepts is in sequence.
    #[test]
    fn arbitrary_bytes_never_panic(buf in prop::collection::vec(any::<u8>(), 0..600)) {
        let s = scan(&buf, 1);
        for (i, r) in s.records.iter().enumerate() {
            prop_assert_eq!(r.seq, 1 + i as u64);
        }
        let _ = SegmentHeader::decode(&buf);
    }
}

#[test]
fn the_golden_segment_decodes() {
    let seg: &[u8] =
        include_bytes!("../../../../proto/vectors/audit-journal-v1/00000000000000000001.seg");
    let v: serde_json::Value = serde_json::from_str(include_str!(
        "../../../../proto/vectors/audit-journal-v1/vectors.json"
    ))
    .unwrap();
    assert_eq!(seg.len() as u64, v["size"].as_u64().unwrap());
    assert_eq!(hex::encode(&seg[..HEADER_LEN]), v["header_hex"]);
    assert_eq!(
        SegmentHeader::decode(seg),
        Ok(SegmentHeader { first_seq: 1 })
    );
    let s = scan(&seg[HEADER_LEN..], 1);
    assert_eq!(s.tail, Tail::Clean);
    let want = v["records"].as_array().unwrap();
    assert_eq!(s.records.len(), want.len());
    let body = &seg[HEADER_LEN..];
    let mut encoded = Vec::new();
    for (r, w) in s.records.iter().zip(want) {
        assert_eq!(r.seq, w["seq"].as_u64().unwrap());
        assert_eq!(
            (HEADER_LEN + r.offset) as u64,
            w["offset"].as_u64().unwrap()
        );
        assert_eq!(r.len as u64, w["len"].as_u64().unwrap());
        assert_eq!(hex::encode(r.payload(body)), w["payload_hex"]);
        let payload = hex::decode(w["payload_hex"].as_str().unwrap()).unwrap();
        encode_record(r.seq, &payload, &mut encoded);
    }
    assert_eq!(encoded, body, "this encoder writes the golden bytes");

    // The same segment with the writer's zero fill after it: the same records, a clean end.
    let filled: &[u8] = include_bytes!("../../../../proto/vectors/audit-journal-v1/zero-fill.seg");
    let z = &v["zero_fill"];
    assert_eq!(filled.len() as u64, z["size"].as_u64().unwrap());
    let end = z["records_end"].as_u64().unwrap() as usize;
    assert_eq!(&filled[..end], seg);
    let s = scan(&filled[HEADER_LEN..], 1);
    assert_eq!(s.records.len(), want.len());
    assert_eq!(HEADER_LEN + s.end, end);
    assert_eq!(
        s.tail,
        Tail::ZeroFill {
            bytes: filled.len() - end
        }
    );
}
