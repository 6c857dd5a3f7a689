//! The NDJSON checker: a table per fault kind, every split point, random chunkings against
//! a model, and the memory bound.

use proptest::prelude::*;

use super::*;

fn check_with(input: &[u8], limits: NdjsonLimits) -> NdjsonReport {
    let mut c = NdjsonChecker::new("Patient", limits);
    c.feed(input);
    c.finish()
}

fn check(input: &[u8]) -> NdjsonReport {
    check_with(input, NdjsonLimits::default())
}

fn lines(count: u64, first: &[u64]) -> FaultLines {
    FaultLines {
        count,
        first: first.to_vec(),
    }
}

const P: &str = r#"{"resourceType":"Patient","id":"p1","name":[{"family":"Doe"}]}"#;

#[test]
fn clean_files() {
    let cases: Vec<(Vec<u8>, u64, u64)> = vec![
        // (input, records, lines)
        (b"".to_vec(), 0, 0),
        (format!("{P}\n").into_bytes(), 1, 1),
        (format!("{P}\n{P}\n{P}\n").into_bytes(), 3, 3),
        (format!("{P}\r\n{P}\r\n").into_bytes(), 2, 2),
        // a valid last line without its newline is accepted
        (format!("{P}\n{P}").into_bytes(), 2, 2),
        (format!(" {P} \t\n").into_bytes(), 1, 1),
        (br#"{"id":"x","resourceType":"Patient"}"#.to_vec(), 1, 1),
        // an escaped key is the same key
        (br#"{"resource\u0054ype":"Patient"}"#.to_vec(), 1, 1),
    ];
    for (input, records, nlines) in &cases {
        let r = check(input);
        assert!(r.is_clean(), "{:?}: {r:?}", String::from_utf8_lossy(input));
        assert_eq!(
            (r.records, r.lines, r.bytes),
            (*records, *nlines, input.len() as u64)
        );
    }
}

#[test]
fn each_fault_kind_alone() {
    let cases: Vec<(Vec<u8>, LineFault, u64)> = vec![
        // (input, the one fault, records)
        (format!("{P}\n\n{P}\n").into_bytes(), LineFault::Blank, 2),
        (
            format!("{P}\n \t\r\n{P}\n").into_bytes(),
            LineFault::Blank,
            2,
        ),
        (format!("{P}\n\n").into_bytes(), LineFault::Blank, 1),
        (
            format!("{P}\n[1,2]\n{P}\n").into_bytes(),
            LineFault::NotJsonObject,
            3,
        ),
        (
            format!("{P}\n\"Patient\"\n{P}\n").into_bytes(),
            LineFault::NotJsonObject,
            3,
        ),
        (
            format!("{P}\n{P}{P}\n{P}\n").into_bytes(),
            LineFault::NotJsonObject,
            3,
        ),
        (
            format!("{P}\n{{\"resourceType\":\"Patient\"\n{P}\n").into_bytes(),
            LineFault::NotJsonObject,
            3,
        ),
        (
            format!("{P}\nnull\n{P}\n").into_bytes(),
            LineFault::NotJsonObject,
            3,
        ),
        (
            format!("{P}\n{}\n{P}\n", "[".repeat(200)).into_bytes(),
            LineFault::NotJsonObject,
            3,
        ),
        (
            format!("{P}\n{{\"resourceType\":\"Condition\"}}\n{P}\n").into_bytes(),
            LineFault::WrongResourceType,
            3,
        ),
        (
            format!("{P}\n{{\"id\":\"x\"}}\n{P}\n").into_bytes(),
            LineFault::WrongResourceType,
            3,
        ),
        (
            format!("{P}\n{{\"resourceType\":7}}\n{P}\n").into_bytes(),
            LineFault::WrongResourceType,
            3,
        ),
        (
            format!("{P}\n{{\"resourceType\":\"patient\"}}\n{P}\n").into_bytes(),
            LineFault::WrongResourceType,
            3,
        ),
        (
            format!("{P}\n{{\"resourceType\":\"Patient\",\"resourceType\":\"Patient\"}}\n{P}\n")
                .into_bytes(),
            LineFault::WrongResourceType,
            3,
        ),
        (
            b"{\"resourceType\":\"Patient\"}\n{\"a\":\"\xff\"}\n".to_vec(),
            LineFault::InvalidUtf8,
            2,
        ),
        (
            format!("{P}\n{}\n", "x".repeat(400)).into_bytes(),
            LineFault::TooLong,
            2,
        ),
    ];
    let limits = NdjsonLimits {
        max_line_bytes: 300,
        ..NdjsonLimits::default()
    };
    for (input, kind, records) in &cases {
        let r = check_with(input, limits);
        let what = String::from_utf8_lossy(input);
        assert_eq!(r.fault(*kind), &lines(1, &[2]), "{what}: {r:?}");
        for other in LineFault::ALL.iter().filter(|k| *k != kind) {
            assert_eq!(r.fault(*other).count, 0, "{what}: {other:?} in {r:?}");
        }
        assert!(!r.truncated_last_line && !r.is_clean(), "{what}");
        assert_eq!(r.records, *records, "{what}");
    }
}

#[test]
fn truncated_last_line() {
    for input in [
        format!("{P}\n{{\"resourceType\":\"Pat").into_bytes(),
        format!("{P}\n{}", &P[..P.len() - 1]).into_bytes(),
        // a multi-byte character cut in half is a cut, not bad UTF-8
        {
            let mut cut =
                format!("{P}\n{{\"resourceType\":\"Patient\",\"n\":\"\u{e9}").into_bytes();
            cut.pop();
            cut
        },
    ] {
        let r = check(&input);
        assert!(
            r.truncated_last_line,
            "{}: {r:?}",
            String::from_utf8_lossy(&input)
        );
        assert!(
            LineFault::ALL.iter().all(|k| r.fault(*k).count == 0),
            "{r:?}"
        );
        assert_eq!((r.records, r.lines), (2, 2));
    }
    // Complete but wrong, without a newline: reported as what it is.
    let r = check(format!("{P}\n{{\"resourceType\":\"Condition\"}}").as_bytes());
    assert!(!r.truncated_last_line);
    assert_eq!(r.wrong_resource_type, lines(1, &[2]));
    // A terminated broken line is not "truncated".
    let r = check(format!("{P}\n{{\"resourceType\":\"Pat\n").as_bytes());
    assert!(!r.truncated_last_line);
    assert_eq!(r.not_json_object, lines(1, &[2]));
}

#[test]
fn first_lines_are_capped_but_counts_are_complete() {
    let mut input = String::new();
    for i in 1..=20 {
        input.push_str(if i % 2 == 0 { "[]\n" } else { P });
        if i % 2 == 1 {
            input.push('\n');
        }
    }
    let r = check(input.as_bytes());
    assert_eq!(r.not_json_object, lines(10, &[2, 4, 6, 8, 10]));
    assert_eq!(r.records, 20);
    let limits = NdjsonLimits {
        first_lines: 0,
        ..NdjsonLimits::default()
    };
    assert_eq!(
        check_with(input.as_bytes(), limits).not_json_object,
        lines(10, &[])
    );
}

/// A file with every kind of line, terminated and not.
fn sample() -> Vec<u8> {
    let mut s = Vec::new();
    for line in [
        P.as_bytes(),
        b"",
        b"[1]",
        br#"{"resourceType":"Observation","valueQuantity":{"value":7.2}}"#,
        b"{\"resourceType\":\"Patient\",\"x\":\"\xc3\"}",
        &[b'y'; 70],
        b"  \r",
        format!("{P}\r").as_bytes(),
        "{\"resourceType\":\"Patient\",\"name\":\"Zo\u{eb}\"}".as_bytes(),
    ] {
        s.extend_from_slice(line);
        s.push(b'\n');
    }
    s.extend_from_slice(&P.as_bytes()[..30]);
    s
}

#[test]
fn every_split_point_and_one_byte_chunks_give_the_same_report() {
    let limits = NdjsonLimits {
        max_line_bytes: 64,
        first_lines: 5,
    };
    let data = sample();
    let whole = check_with(&data, limits);
    assert_eq!(whole.records, 8);
    assert_eq!(whole.blank, lines(2, &[2, 7]));
    assert_eq!(whole.not_json_object, lines(1, &[3]));
    assert_eq!(whole.wrong_resource_type, lines(1, &[4]));
    assert_eq!(whole.invalid_utf8, lines(1, &[5]));
    assert_eq!(whole.too_long, lines(1, &[6]));
    assert!(whole.truncated_last_line);
    for split in 0..=data.len() {
        let mut c = NdjsonChecker::new("Patient", limits);
        c.feed(&data[..split]);
        c.feed(&data[split..]);
        assert_eq!(c.finish(), whole, "split at {split}");
    }
    let mut c = NdjsonChecker::new("Patient", limits);
    for b in &data {
        c.feed(std::slice::from_ref(b));
    }
    assert_eq!(c.finish(), whole);
}

#[test]
fn a_huge_line_is_a_finding_in_bounded_memory() {
    const LIMIT: usize = 1024 * 1024;
    let limits = NdjsonLimits {
        max_line_bytes: LIMIT,
        first_lines: 5,
    };
    let mut c = NdjsonChecker::new("Patient", limits);
    c.feed(format!("{P}\n").as_bytes());
    // A 10 MB line, arriving in chunks that each end mid-line, so every byte goes through
    // the buffering path.
    let mut head = br#"{"resourceType":"Patient","note":""#.to_vec();
    head.resize(64 * 1024, b'a');
    let chunk = vec![b'a'; 64 * 1024 + 17];
    c.feed(&head);
    let mut fed = head.len();
    while fed < 10 * 1024 * 1024 {
        c.feed(&chunk);
        fed += chunk.len();
        assert!(
            c.buffered_capacity() <= LIMIT,
            "capacity {} after {fed}",
            c.buffered_capacity()
        );
    }
    c.feed(format!("\"}}\n{P}\n").as_bytes());
    assert!(c.buffered_capacity() <= LIMIT);
    let r = c.finish();
    assert_eq!(r.too_long, lines(1, &[2]));
    assert_eq!((r.records, r.lines), (3, 3));
    assert!(r.not_json_object.count == 0 && r.wrong_resource_type.count == 0);
}

#[test]
fn a_line_exactly_at_the_limit_is_checked() {
    let line = format!(
        "{{\"resourceType\":\"Patient\",\"n\":\"{}\"}}",
        "a".repeat(50)
    );
    let limits = NdjsonLimits {
        max_line_bytes: line.len(),
        first_lines: 5,
    };
    for input in [format!("{line}\n"), line.clone()] {
        // whole, and split so the line is buffered
        let r = check_with(input.as_bytes(), limits);
        assert!(r.is_clean(), "{r:?}");
        let mut c = NdjsonChecker::new("Patient", limits);
        c.feed(&input.as_bytes()[..10]);
        c.feed(&input.as_bytes()[10..]);
        assert_eq!(c.finish(), r);
    }
    let r = check_with(format!("{line} \n").as_bytes(), limits);
    assert_eq!(r.too_long, lines(1, &[1]));
}

// === random line sets and chunkings against a model ===

#[derive(Debug, Clone, Copy)]
enum Kind {
    Good,
    GoodCrlf,
    Blank,
    Array,
    Garbage,
    WrongType,
    BadUtf8,
    Long,
}

fn line_of(kind: Kind, n: u32) -> Vec<u8> {
    match kind {
        Kind::Good => format!("{{\"resourceType\":\"Patient\",\"id\":\"{n}\"}}").into_bytes(),
        Kind::GoodCrlf => format!("{{\"id\":{n},\"resourceType\":\"Patient\"}}\r").into_bytes(),
        Kind::Blank => b" ".repeat(n as usize % 3),
        Kind::Array => format!("[{n}]").into_bytes(),
        Kind::Garbage => format!("{{\"resourceType\":\"Patient\",{n}").into_bytes(),
        Kind::WrongType => {
            format!("{{\"resourceType\":\"Encounter\",\"id\":\"{n}\"}}").into_bytes()
        }
        Kind::BadUtf8 => [
            b"{\"resourceType\":\"Patient\",\"x\":\"".as_slice(),
            &[0xfe, 0x80],
            b"\"}",
        ]
        .concat(),
        Kind::Long => vec![b'{'; 100 + n as usize % 50],
    }
}

fn model(kinds: &[(Kind, u32)], limits: NdjsonLimits) -> NdjsonReport {
    let mut r = NdjsonReport {
        resource_type: "Patient".into(),
        ..NdjsonReport::default()
    };
    for (i, (kind, _)) in kinds.iter().enumerate() {
        let number = i as u64 + 1;
        r.lines += 1;
        let fault = match kind {
            Kind::Good | Kind::GoodCrlf => None,
            Kind::Blank => Some(LineFault::Blank),
            Kind::Array | Kind::Garbage => Some(LineFault::NotJsonObject),
            Kind::WrongType => Some(LineFault::WrongResourceType),
            Kind::BadUtf8 => Some(LineFault::InvalidUtf8),
            Kind::Long => Some(LineFault::TooLong),
        };
        if fault != Some(LineFault::Blank) {
            r.records += 1;
        }
        if let Some(k) = fault {
            let t = r.fault_mut(k);
            t.count += 1;
            if t.first.len() < limits.first_lines {
                t.first.push(number);
            }
        }
    }
    r
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        4 => Just(Kind::Good),
        1 => Just(Kind::GoodCrlf),
        1 => Just(Kind::Blank),
        1 => Just(Kind::Array),
        1 => Just(Kind::Garbage),
        1 => Just(Kind::WrongType),
        1 => Just(Kind::BadUtf8),
        1 => Just(Kind::Long),
    ]
}

proptest! {
    #[test]
    fn random_lines_in_random_chunks_match_the_model(
        kinds in prop::collection::vec((kind(), any::<u32>()), 0..40),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let limits = NdjsonLimits { max_line_bytes: 90, first_lines: 3 };
        let mut data = Vec::new();
        for (k, n) in &kinds {
            data.extend_from_slice(&line_of(*k, *n));
            data.push(b'\n');
        }
        let mut expected = model(&kinds, limits);
        expected.bytes = data.len() as u64;
        let mut at: Vec<usize> = cuts.iter().map(|i| i.index(data.len() + 1)).collect();
        at.sort_unstable();
        let mut c = NdjsonChecker::new("Patient", limits);
        let mut from = 0;
        for to in at.into_iter().chain([data.len()]) {
            c.feed(&data[from..to]);
            from = to;
            prop_assert!(c.buffered_capacity() <= limits.max_line_bytes);
        }
        prop_assert_eq!(c.finish(), expected);
    }
}
