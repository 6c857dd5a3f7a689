//! The at-rest tail record. Input is `segment size (4 bytes, big-endian) ‖ plaintext`; the
//! size's top bit asks for a version-2 (noted) record.
//! A plaintext that parses seals and opens back to the same fields; fuzzed bytes never
//! authenticate as a sealed record, and a sealed record with one byte flipped is refused.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sallyport::at_rest::SegmentSize;
use sallyport::at_rest::format::Header;
use sallyport::at_rest::tail::TailRecord;
use sallyport::ids::OpaqueId;
use sallyport::keys::Dek;

fuzz_target!(|data: &[u8]| {
    let Some((size, plaintext)) = data.split_first_chunk::<4>() else {
        return;
    };
    let Ok(s) = SegmentSize::new(u32::from_be_bytes(*size) % (1 << 16)) else {
        return;
    };
    let dek = Dek::generate().expect("random DEK");
    let (_, mut keys) = Header::create(OpaqueId::from_bytes([7; 16]), [9; 16], s, &dek)
        .expect("header for a fresh DEK");
    assert!(
        TailRecord::open(&keys, data).is_err(),
        "fuzzed bytes authenticated"
    );
    let noted = size[0] & 0x80 != 0;
    let Ok(record) = TailRecord::parse_plaintext(plaintext, s, noted) else {
        return;
    };
    // The midstate is restored on reopen: arbitrary bytes must be refused, not panic.
    let _ = record.hasher();
    assert!(record.generation > 0);
    assert!(record.plaintext_len - record.full_segments * u64::from(s.get()) < u64::from(s.get()));
    let mut sealed = record.seal(&mut keys).expect("seal");
    let opened = TailRecord::open(&keys, &sealed).expect("own record opens");
    assert_eq!(opened.state, record.state);
    assert_eq!(opened.generation, record.generation);
    assert_eq!(opened.full_segments, record.full_segments);
    assert_eq!(opened.plaintext_len, record.plaintext_len);
    assert_eq!(opened.last_nonce, record.last_nonce);
    assert_eq!(opened.midstate[..], record.midstate[..]);
    assert_eq!(opened.partial[..], record.partial[..]);
    assert_eq!(opened.note[..], record.note[..]);
    let flip = usize::from(size[3]) % sealed.len();
    sealed[flip] ^= 0x01;
    assert!(
        TailRecord::open(&keys, &sealed).is_err(),
        "flipped byte {flip} accepted"
    );
});
