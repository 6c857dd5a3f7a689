//! The range core against a byte-exact reference model.
//!
//! `model` is a second, deliberately naive implementation of the decisions documented in
//! this module: string splitting instead of byte scanning, digit strings instead of
//! saturating integers, and a per-byte "selected" bitmap instead of interval arithmetic.
//! Every test builds the bytes a client would receive — by reading the segments a range
//! touches, the way the download path decrypts only those — and compares them with the
//! bytes the model selects from the representation.

use std::num::NonZeroU64;

use proptest::prelude::*;

use super::*;

/// What the model says a client should receive.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Model {
    /// 200 with the whole representation.
    Full,
    /// 206: maximal runs of selected bytes, ascending, as inclusive offsets.
    Parts(Vec<(u64, u64)>),
    /// 416: nothing overlaps.
    Unsatisfiable,
    /// 416: too many ranges.
    Refused,
}

/// A number as its digit string, compared exactly.
fn digits_lt(a: &str, b: &str) -> bool {
    let (a, b) = (a.trim_start_matches('0'), b.trim_start_matches('0'));
    if a.len() != b.len() {
        return a.len() < b.len();
    }
    a < b
}

/// The value if it is below `bound`, else `None` ("at least bound").
fn below(d: &str, bound: u64) -> Option<u64> {
    let d = d.trim_start_matches('0');
    if d.len() > 20 {
        return None;
    }
    let v: u128 = if d.is_empty() { 0 } else { d.parse().ok()? };
    (v < u128::from(bound)).then_some(v as u64)
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn model(header: &str, len: u64) -> Model {
    let h = header.trim_matches(|c| c == ' ' || c == '\t');
    let Some((unit, set)) = h.split_once('=') else {
        return Model::Full;
    };
    let tchar = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if unit.is_empty() || !unit.chars().all(tchar) || !unit.eq_ignore_ascii_case("bytes") {
        return Model::Full;
    }
    let mut selected = vec![false; len as usize];
    let mut empty_satisfiable = false;
    let mut count = 0;
    for element in set.split(',') {
        let e = element.trim_matches(|c| c == ' ' || c == '\t');
        if e.is_empty() {
            continue;
        }
        count += 1;
        if count > 16 {
            return Model::Refused;
        }
        let Some((a, b)) = e.split_once('-') else {
            return Model::Full;
        };
        let (from, to): (Option<u64>, Option<u64>) = if a.is_empty() {
            if !is_digits(b) {
                return Model::Full;
            }
            if b.trim_start_matches('0').is_empty() {
                continue; // -0: unsatisfiable
            }
            if len == 0 {
                empty_satisfiable = true;
                continue;
            }
            let n = below(b, len).unwrap_or(len);
            (Some(len - n), Some(len - 1))
        } else {
            if !is_digits(a) || !(b.is_empty() || is_digits(b)) {
                return Model::Full;
            }
            if !b.is_empty() && digits_lt(b, a) {
                return Model::Full;
            }
            let last = if b.is_empty() { None } else { below(b, len) };
            (below(a, len), Some(last.unwrap_or(len.saturating_sub(1))))
        };
        if let (Some(from), Some(to)) = (from, to) {
            for s in &mut selected[from as usize..=to as usize] {
                *s = true;
            }
        }
    }
    if count == 0 {
        return Model::Full;
    }
    let mut runs = Vec::new();
    let mut i = 0;
    while i < selected.len() {
        if selected[i] {
            let start = i;
            while i < selected.len() && selected[i] {
                i += 1;
            }
            runs.push((start as u64, i as u64 - 1));
        } else {
            i += 1;
        }
    }
    match (runs.is_empty(), empty_satisfiable) {
        (false, _) => Model::Parts(runs),
        (true, true) => Model::Full,
        (true, false) => Model::Unsatisfiable,
    }
}

fn representation(len: u64) -> Vec<u8> {
    (0..len).map(|i| (i * 131 % 251) as u8).collect()
}

/// Read `range` the way the download path does: whole segments, then skip and take.
fn read_via_segments(repr: &[u8], range: ByteRange, s: u64) -> Vec<u8> {
    let span = SegmentSpan::of(range, NonZeroU64::new(s).expect("non-zero"));
    let mut plain = Vec::new();
    for k in span.first..=span.last {
        let start = (k * s) as usize;
        let end = ((k + 1) * s).min(repr.len() as u64) as usize;
        plain.extend_from_slice(&repr[start..end]);
    }
    plain[span.skip as usize..(span.skip + span.take) as usize].to_vec()
}

/// Compare the implementation's response with the model's, byte for byte.
fn check(header: &str, len: u64, segment: u64) -> Result<(), TestCaseError> {
    let repr = representation(len);
    let got = plan(Some(header.as_bytes()), len);
    let want = model(header, len);
    match (&got, &want) {
        (RangePlan::Full, Model::Full) => {}
        (RangePlan::Unsatisfiable(Unsatisfiable::NoOverlap), Model::Unsatisfiable) => {}
        (RangePlan::Unsatisfiable(Unsatisfiable::TooManyRanges), Model::Refused) => {}
        (RangePlan::Single(r), Model::Parts(runs)) if runs.len() == 1 => {
            let (a, b) = runs[0];
            prop_assert_eq!(
                read_via_segments(&repr, *r, segment),
                &repr[a as usize..=b as usize]
            );
            prop_assert_eq!(content_range(*r, len), format!("bytes {a}-{b}/{len}"));
        }
        (RangePlan::Multi(ranges), Model::Parts(runs)) if runs.len() > 1 => {
            let boundary = Boundary::new("SEP").expect("boundary");
            let layout = MultipartLayout::new(boundary, "application/fhir+ndjson", ranges, len)
                .expect("layout");
            let mut body = Vec::new();
            for (header_bytes, r) in layout.parts() {
                body.extend_from_slice(&header_bytes);
                body.extend_from_slice(&read_via_segments(&repr, r, segment));
            }
            body.extend_from_slice(&layout.trailer());
            let mut expected = Vec::new();
            for (i, &(a, b)) in runs.iter().enumerate() {
                let lead = if i == 0 { "" } else { "\r\n" };
                expected.extend_from_slice(
                    format!(
                        "{lead}--SEP\r\nContent-Type: application/fhir+ndjson\r\n\
                         Content-Range: bytes {a}-{b}/{len}\r\n\r\n"
                    )
                    .as_bytes(),
                );
                expected.extend_from_slice(&repr[a as usize..=b as usize]);
            }
            expected.extend_from_slice(b"\r\n--SEP--\r\n");
            prop_assert_eq!(layout.body_len(), body.len() as u64);
            prop_assert_eq!(body, expected);
        }
        _ => prop_assert!(false, "{header:?} len {len}: got {got:?}, model {want:?}"),
    }
    Ok(())
}

#[test]
fn every_rfc_form_against_the_model() {
    // Lengths around a 7-byte segment size, none of the interesting ones a multiple of it.
    let headers = [
        "bytes=0-0",
        "bytes=0-4",
        "bytes=3-9",
        "bytes=6-7",
        "bytes=0-",
        "bytes=5-",
        "bytes=9-",
        "bytes=-1",
        "bytes=-7",
        "bytes=-8",
        "bytes=-100",
        "bytes=0-0,-1",
        "bytes=0-1,3-4,6-",
        "bytes=6-,0-1",
        "bytes=0-2,3-5",
        "bytes=0-5,2-3",
        "bytes=1-1,1-1,1-1",
        "bytes=2-99999999999999999999999",
        "bytes=99999999999999999999999-",
        "bytes=-99999999999999999999999",
        "bytes=20-30",
        "bytes=-0",
        "bytes=20-,-0",
        "bytes=5-4",
        "bytes= 1-2 ,\t3-4 ",
        "bytes=,,1-2",
        "BYTES=1-2",
        "items=1-2",
        "bytes=",
        "bytes=1",
        "bytes=a-b",
        "bytes=1 - 2",
        "bytes=1-2,x",
        "=1-2",
        "",
        "bytes=-",
        "bytes=0-0,2-2,4-4,6-6,8-8,10-10,12-12,14-14,16-16,18-18,20-20,22-22,24-24,26-26,28-28,30-30",
        "bytes=0-0,2-2,4-4,6-6,8-8,10-10,12-12,14-14,16-16,18-18,20-20,22-22,24-24,26-26,28-28,30-30,1-1",
    ];
    for len in [0u64, 1, 6, 7, 8, 13, 15, 16, 29, 31] {
        for header in headers {
            check(header, len, 7).unwrap_or_else(|e| panic!("{header:?} len {len}: {e}"));
        }
    }
}

#[test]
fn every_prefix_of_valid_headers_matches_the_model() {
    let corpus = [
        "bytes=0-499",
        "bytes=500-999, 1000-,-20",
        "Bytes=\t,  12-34 ,,-5",
        "bytes=00010-00020,00030-",
        "bytes=1-2,4-5,7-8,10-11,13-14,16-17,19-20,22-23,25-26,28-29,31-32,34-35,37-38,40-41,43-44,46-47,49-50",
    ];
    for header in corpus {
        for end in 0..=header.len() {
            let prefix = &header[..end];
            for len in [0u64, 11, 1000] {
                check(prefix, len, 64).unwrap_or_else(|e| panic!("{prefix:?} len {len}: {e}"));
            }
        }
    }
}

fn arb_number(len: u64) -> impl Strategy<Value = String> {
    prop_oneof![
        6 => (0..len + 4).prop_map(|n| n.to_string()),
        1 => (0..len + 4).prop_map(|n| format!("00{n}")),
        1 => "[1-9][0-9]{19,30}",
        1 => Just("18446744073709551615".to_owned()),
    ]
}

fn arb_element(len: u64) -> impl Strategy<Value = String> {
    let pad = prop_oneof![Just(""), Just(" "), Just("\t"), Just(" \t ")];
    let spec = prop_oneof![
        4 => (arb_number(len), arb_number(len)).prop_map(|(a, b)| format!("{a}-{b}")),
        2 => arb_number(len).prop_map(|a| format!("{a}-")),
        2 => arb_number(len).prop_map(|n| format!("-{n}")),
        1 => Just(String::new()),
        1 => "[0-9a-z +\\-=,]{0,6}",
    ];
    (pad.clone(), spec, pad).prop_map(|(l, s, r)| format!("{l}{s}{r}"))
}

fn arb_header(len: u64) -> impl Strategy<Value = String> {
    let unit = prop_oneof![
        8 => Just("bytes"),
        1 => Just("BYTES"),
        1 => Just("Bytes"),
        1 => Just("items"),
        1 => Just("by tes"),
        1 => Just(""),
    ];
    let sep = prop_oneof![10 => Just("="), 1 => Just(" ="), 1 => Just("")];
    (unit, sep, prop::collection::vec(arb_element(len), 0..20))
        .prop_map(|(u, s, elements)| format!("{u}{s}{}", elements.join(",")))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn random_headers_against_the_model(
        (len, header) in (0u64..200).prop_flat_map(|len| (Just(len), arb_header(len))),
        segment in 1u64..40,
    ) {
        check(&header, len, segment)?;
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300), len in any::<u64>()) {
        let _ = plan(Some(&bytes), len);
        let tag = EntityTag::strong("t").expect("tag");
        let _ = plan_request(Some(&bytes), Some(&bytes), &tag, len);
    }

    #[test]
    fn planned_ranges_are_inside_disjoint_and_ascending(header in arb_header(1_000), len in prop_oneof![Just(0u64), 1u64..2_000, Just(u64::MAX)]) {
        let ranges = match plan(Some(header.as_bytes()), len) {
            RangePlan::Single(r) => vec![r],
            RangePlan::Multi(rs) => { prop_assert!(rs.len() >= 2); rs }
            _ => vec![],
        };
        for r in &ranges {
            prop_assert!(r.last() < len);
        }
        for w in ranges.windows(2) {
            prop_assert!(w[0].last() + 1 < w[1].first(), "{:?}", w);
        }
        prop_assert!(ranges.len() <= MAX_RANGES);
    }
}
