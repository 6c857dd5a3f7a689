//! The SIEM formats: independent parsers (written from RFC 5424, RFC 6587 and the CEF
//! rules, not from the writer) recover every field, for hostile and arbitrary values.

use proptest::prelude::*;

use super::*;

/// A parsed syslog message: the six header fields, our SD params, and MSG.
#[derive(Debug)]
struct Syslog {
    header: Vec<String>,
    sd_id: String,
    params: Vec<(String, String)>,
    msg: String,
}

fn parse_syslog(s: &str) -> Syslog {
    let mut parts = s.splitn(7, ' ');
    let header: Vec<String> = (0..6).map(|_| parts.next().unwrap().to_string()).collect();
    let rest = parts.next().unwrap();
    let mut chars = rest.chars().peekable();
    assert_eq!(chars.next(), Some('['));
    let mut sd_id = String::new();
    while let Some(&c) = chars.peek() {
        if c == ' ' || c == ']' {
            break;
        }
        sd_id.push(c);
        chars.next();
    }
    let mut params = Vec::new();
    loop {
        match chars.next() {
            Some(']') => break,
            Some(' ') => {}
            other => panic!("unexpected {other:?} in SD"),
        }
        let mut name = String::new();
        for c in chars.by_ref() {
            if c == '=' {
                break;
            }
            name.push(c);
        }
        assert_eq!(chars.next(), Some('"'));
        let mut value = String::new();
        loop {
            match chars.next().unwrap() {
                '\\' => {
                    let n = chars.next().unwrap();
                    assert!(matches!(n, '"' | '\\' | ']'), "bad SD escape {n:?}");
                    value.push(n);
                }
                '"' => break,
                ']' => panic!("unescaped ] in a PARAM-VALUE"),
                c => value.push(c),
            }
        }
        params.push((name, value));
    }
    assert_eq!(chars.next(), Some(' '));
    Syslog {
        header,
        sd_id,
        params,
        msg: chars.collect(),
    }
}

/// A parsed CEF event: the 7 header fields after `CEF:0` and the extension pairs.
fn parse_cef(s: &str) -> (Vec<String>, Vec<(String, String)>) {
    let body = s.strip_prefix("CEF:0|").expect("CEF:0 prefix");
    let mut header = Vec::new();
    let mut cur = String::new();
    let mut chars = body.chars();
    while header.len() < 6 {
        match chars.next().expect("header ends early") {
            '\\' => {
                let n = chars.next().unwrap();
                assert!(matches!(n, '\\' | '|'), "bad header escape {n:?}");
                cur.push(n);
            }
            '|' => header.push(std::mem::take(&mut cur)),
            c => {
                assert!(c != '\n' && c != '\r', "line break in header");
                cur.push(c);
            }
        }
    }
    let ext: String = chars.collect();
    // Tokenise: an unescaped `=` ends a key (the word after the last space before it).
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut raw = String::new(); // the current text, escapes kept
    let mut it = ext.chars();
    let mut key: Option<String> = None;
    while let Some(c) = it.next() {
        match c {
            '\\' => {
                raw.push('\\');
                raw.push(it.next().unwrap());
            }
            '=' => {
                let (value, next_key) = match raw.rfind(' ') {
                    Some(i) if key.is_some() => (raw[..i].to_string(), raw[i + 1..].to_string()),
                    _ => (String::new(), raw.clone()),
                };
                if let Some(k) = key.take() {
                    pairs.push((k, unescape_ext(&value)));
                }
                key = Some(next_key);
                raw.clear();
            }
            c => {
                assert!(c != '\n' && c != '\r', "raw line break in extension");
                raw.push(c);
            }
        }
    }
    if let Some(k) = key {
        pairs.push((k, unescape_ext(&raw)));
    }
    (header, pairs)
}

fn unescape_ext(s: &str) -> String {
    let mut out = String::new();
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c == '\\' {
            match it.next().unwrap() {
                '\\' => out.push('\\'),
                '=' => out.push('='),
                'n' => out.push('\n'),
                'r' => out.push('\r'),
                o => panic!("bad extension escape {o:?}"),
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn ext<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn entry(
    actor_name: &str,
    request_id: &str,
    subject: &str,
    instance: &str,
    action: &str,
) -> (Vec<u8>, Entry) {
    let v = serde_json::json!({
        "v": 1, "seq": 42, "time": "2026-12-06T01:02:03.456Z", "instance": instance,
        "action": action, "outcome": "denied",
        "actor": {"kind": "client", "name": actor_name, "auth_method": "bearer_token"},
        "request_id": request_id, "client_addr": "203.0.113.7", "subject": subject,
        "details": {"reason": subject}, "prev": "00", "hash": "ab".repeat(32),
    });
    let bytes = serde_json::to_vec(&v).unwrap();
    let e = Entry::parse(&bytes).unwrap();
    (bytes, e)
}

fn render_cef(e: &Entry, bytes: &[u8]) -> (Syslog, Vec<String>, Vec<(String, String)>) {
    let msg = render(Format::SyslogCef, bytes, e, "1.2.3").unwrap();
    let text = String::from_utf8(msg).unwrap();
    assert!(!text.contains('\n') && !text.contains('\r'), "{text:?}");
    let sys = parse_syslog(&text);
    let (header, pairs) = parse_cef(&sys.msg);
    (sys, header, pairs)
}

#[test]
fn a_plain_entry_maps_to_the_documented_fields() {
    let (bytes, e) = entry("partner-a", "req-1", "up_123", "gw-1", "upload.created");
    let (sys, header, pairs) = render_cef(&e, &bytes);
    // <13*8+4>: facility log audit, severity warning for `denied`.
    assert_eq!(
        sys.header,
        [
            "<108>1",
            "2026-12-06T01:02:03.456Z",
            "gw-1",
            "sallyport",
            "-",
            "upload.created"
        ]
    );
    assert_eq!(sys.sd_id, SD_ID);
    assert_eq!(sys.params[0], ("seq".into(), "42".into()));
    assert_eq!(sys.params[1], ("hash".into(), "ab".repeat(32)));
    assert_eq!(
        header,
        [
            "Sallyport",
            "sallyport",
            "1.2.3",
            "upload.created",
            "upload.created denied",
            "8"
        ]
    );
    assert_eq!(ext(&pairs, "rt"), Some("1796518923456"));
    assert_eq!(ext(&pairs, "suser"), Some("partner-a"));
    assert_eq!(ext(&pairs, "src"), Some("203.0.113.7"));
    assert_eq!(ext(&pairs, "cn1"), Some("42"));
    assert_eq!(ext(&pairs, "cs2"), Some("req-1"));
    assert_eq!(ext(&pairs, "cs3"), Some("up_123"));
    assert_eq!(ext(&pairs, "cs5"), Some("client"));
    assert_eq!(ext(&pairs, "cs6"), Some(r#"{"reason":"up_123"}"#));
    assert_eq!(
        seq_of_line(Format::SyslogCef, sys_line(&e, &bytes).as_bytes()),
        Some(42)
    );
    assert_eq!(seq_of_line(Format::JsonLines, &bytes), Some(42));
}

fn sys_line(e: &Entry, bytes: &[u8]) -> String {
    String::from_utf8(render(Format::SyslogCef, bytes, e, "1").unwrap()).unwrap()
}

#[test]
fn hostile_values_cannot_inject_structure() {
    let hostile = "a|b=c\\d\ne\rf]g\"h\0i [x@1 seq=\"7\"] CEF:0|evil|";
    let (bytes, e) = entry(hostile, hostile, hostile, hostile, hostile);
    let (sys, header, pairs) = render_cef(&e, &bytes);
    // Header fields: no spaces or non-ASCII-graphic characters survive.
    assert_eq!(sys.header.len(), 6);
    assert!(sys.header[2].bytes().all(|b| b.is_ascii_graphic()));
    assert_eq!(sys.header[5].chars().count(), 32, "MSGID capped");
    // Our SD element is intact and the seq cannot be forged.
    assert_eq!(sys.params.len(), 3);
    assert_eq!(sys.params[0], ("seq".into(), "42".into()));
    assert_eq!(
        sys.params[2].1,
        hostile.replace(['\n', '\r', '\0'], "\u{FFFD}")
    );
    assert_eq!(
        seq_of_line(Format::SyslogCef, sys_line(&e, &bytes).as_bytes()),
        Some(42)
    );
    // CEF: 6 header fields and severity, no field injected.
    assert_eq!(header[3], hostile.replace(['\n', '\r', '\0'], "\u{FFFD}"));
    assert_eq!(header[5], "8");
    // Extensions: the value comes back with its line breaks; NUL became U+FFFD.
    let want = hostile.replace('\0', "\u{FFFD}");
    assert_eq!(ext(&pairs, "suser"), Some(want.as_str()));
    assert_eq!(ext(&pairs, "cs2"), Some(want.as_str()));
    assert_eq!(ext(&pairs, "cn1"), Some("42"));
    assert_eq!(pairs.iter().filter(|(k, _)| k == "cn1").count(), 1);
}

#[test]
fn very_long_values_are_capped() {
    let long = "x".repeat(100_000);
    let (bytes, e) = entry(&long, &long, &long, &long, &long);
    let (sys, header, pairs) = render_cef(&e, &bytes);
    assert_eq!(sys.header[2].len(), CAP_HOSTNAME);
    assert_eq!(header[3].len(), CAP_SIGNATURE);
    assert_eq!(header[4].chars().count(), CAP_NAME);
    assert_eq!(ext(&pairs, "suser").unwrap().len(), CAP_EXT);
    assert_eq!(ext(&pairs, "cs6").unwrap().chars().count(), CAP_DETAILS);
    assert!(sys_line(&e, &bytes).len() < 20_000);
}

#[test]
fn json_lines_refuse_a_raw_line_break() {
    let (bytes, e) = entry("a", "b", "c", "d", "e");
    assert_eq!(render(Format::JsonLines, &bytes, &e, "1").unwrap(), bytes);
    let mut broken = bytes.clone();
    broken.insert(1, b'\n');
    assert!(matches!(
        render(Format::JsonLines, &broken, &e, "1"),
        Err(SiemError::LineBreak)
    ));
}

#[test]
fn octet_counting_frames_carry_the_byte_length() {
    let mut out = Vec::new();
    frame(Framing::OctetCounting, "é\n".as_bytes(), &mut out);
    frame(Framing::OctetCounting, b"ab", &mut out);
    assert_eq!(out, "3 é\n2 ab".as_bytes());
    let mut lines = Vec::new();
    frame(Framing::Lines, b"ab", &mut lines);
    assert_eq!(lines, b"ab\n");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any string, in any field: the parsers recover exactly the sanitised value, and the
    /// seq and hash are never disturbed.
    #[test]
    fn every_field_round_trips(
        name in any::<String>(),
        req in any::<String>(),
        subject in any::<String>(),
        instance in any::<String>(),
        action in "\\PC{0,40}",
    ) {
        let (bytes, e) = entry(&name, &req, &subject, &instance, &action);
        let (sys, header, pairs) = render_cef(&e, &bytes);
        prop_assert_eq!(&sys.params[0], &("seq".to_string(), "42".to_string()));
        prop_assert_eq!(&sys.params[2].1, &sanitize(&instance, CAP_SD));
        prop_assert_eq!(&header[3], &sanitize(&action, CAP_SIGNATURE));
        prop_assert_eq!(&header[5], "8");
        prop_assert_eq!(ext(&pairs, "suser").map(str::to_owned), Some(sanitize_keep_breaks(&name, CAP_EXT)));
        prop_assert_eq!(ext(&pairs, "cs2").map(str::to_owned), Some(sanitize_keep_breaks(&req, CAP_EXT)));
        prop_assert_eq!(ext(&pairs, "cs3").map(str::to_owned), Some(sanitize_keep_breaks(&subject, CAP_EXT)));
        prop_assert_eq!(ext(&pairs, "cn1"), Some("42"));
        prop_assert_eq!(seq_of_line(Format::SyslogCef, sys_line(&e, &bytes).as_bytes()), Some(42));
    }

    /// Values without control characters come back unchanged.
    #[test]
    fn printable_values_round_trip_exactly(name in "[^\\p{Cc}\u{2028}\u{2029}]{0,200}") {
        let (bytes, e) = entry(&name, "r", "s", "i", "a");
        let (_, _, pairs) = render_cef(&e, &bytes);
        prop_assert_eq!(ext(&pairs, "suser"), Some(name.as_str()));
    }

    /// A stream of octet-counted frames splits back into the same messages.
    #[test]
    fn octet_framing_round_trips(msgs in proptest::collection::vec(any::<Vec<u8>>(), 0..8)) {
        let mut out = Vec::new();
        for m in &msgs {
            frame(Framing::OctetCounting, m, &mut out);
        }
        let mut rest = out.as_slice();
        let mut got = Vec::new();
        while !rest.is_empty() {
            let sp = rest.iter().position(|&b| b == b' ').unwrap();
            let len: usize = std::str::from_utf8(&rest[..sp]).unwrap().parse().unwrap();
            got.push(rest[sp + 1..sp + 1 + len].to_vec());
            rest = &rest[sp + 1 + len..];
        }
        prop_assert_eq!(got, msgs);
    }
}
