use proptest::prelude::*;

use super::*;

const ID: &str = "54hgs7ebt3vn0qr9fg4w51r6sa";

fn vector(action: &str) -> Entry {
    let path = format!(
        "{}/proto/vectors/audit-events/{action}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let bytes = std::fs::read(&path).unwrap();
    Entry::parse(bytes.trim_ascii_end()).unwrap()
}

fn q(s: &str) -> Result<Query, QueryError> {
    Query::parse(s)
}

#[test]
fn an_empty_query_matches_everything_with_the_default_page() {
    let query = q("").unwrap();
    assert_eq!(query.limit, DEFAULT_LIMIT);
    assert_eq!(query.after, 0);
    assert!(query.filter.matches(&vector("link.issued")));
    assert!(query.filter.conditions().is_empty());
}

#[test]
fn every_parameter_parses() {
    let query = q(&format!(
        "since=2026-12-06T02:20:00Z&until=2026-12-06T02:21:00.5Z&principal=exporter\
         &client=127.0.0.0/8&artifact={ID}&action=link.&outcome=success&limit=1000"
    ))
    .unwrap();
    let f = &query.filter;
    assert_eq!(f.since.as_ref().unwrap().text, "2026-12-06T02:20:00.000Z");
    assert_eq!(f.until.as_ref().unwrap().text, "2026-12-06T02:21:00.500Z");
    assert_eq!(
        f.client,
        Some(AddrMatch::Cidr("127.0.0.0".parse().unwrap(), 8))
    );
    assert_eq!(f.action, Some(ActionMatch::Prefix("link.".into())));
    assert_eq!(query.limit, 1000);
    assert_eq!(
        f.conditions(),
        [
            "since",
            "until",
            "principal",
            "client",
            "artifact",
            "action",
            "outcome"
        ]
    );
    assert!(f.matches(&vector("link.issued")));
    // Each condition on its own excludes the entries it should.
    for (param, entry) in [
        ("principal=someone-else", "link.issued"),
        ("client=10.0.0.0/8", "link.issued"),
        ("client=127.0.0.2", "link.issued"),
        ("action=link.revoked", "link.issued"),
        ("action=upload.", "link.issued"),
        ("outcome=denied", "link.issued"),
        ("since=2026-12-06T02:20:58.239Z", "link.issued"),
        ("until=2026-12-06T02:20:58.237Z", "link.issued"),
        ("grant=2wey0nv2cj7j38tt6z2jk2ed91", "link.issued"),
        ("upload=7j2peph3xdnmd4ckef02e8e44e", "link.issued"),
        ("principal=exporter", "download.served"),
    ] {
        let f = q(param).unwrap().filter;
        assert!(!f.matches(&vector(entry)), "{param} matched {entry}");
    }
    for (param, entry) in [
        ("since=2026-12-06T02:20:58.238Z", "link.issued"),
        ("until=2026-12-06T02:20:58.238Z", "link.issued"),
        ("client=127.0.0.1", "link.issued"),
        ("client=198.51.100.0/24", "download.served"),
        ("grant=3tn6eazk7k6nfxbwm4fnb1en57", "link.issued"),
        ("artifact=1av2ze4jcv096x3ze73jxx5pvk", "download.served"),
        ("batch=37038mb0r096wq9t15099mtjtv", "batch.member_added"),
        ("upload=26qv354spcvr7rkkpy7t9386r7", "batch.member_added"),
        ("action=batch.member_added", "batch.member_added"),
        ("outcome=denied", "access.denied"),
        ("principal=clinic", "access.denied"),
    ] {
        let f = q(param).unwrap().filter;
        assert!(f.matches(&vector(entry)), "{param} did not match {entry}");
    }
}

#[test]
fn bad_parameters_get_their_own_errors() {
    let cases = [
        ("nope=1", QueryError::Unknown),
        ("limit=5&limit=6", QueryError::Duplicate("limit")),
        ("principal=a%20b", QueryError::Encoded("principal")),
        (
            "since=2026-12-06T02:20:00+01:00",
            QueryError::Encoded("since"),
        ),
        ("since=2026-12-06T02:20:00", QueryError::Time("since")),
        ("until=yesterday", QueryError::Time("until")),
        ("since=2026-13-06T02:20:00Z", QueryError::Time("since")),
        (
            "since=2026-12-06T03:00:00Z&until=2026-12-06T02:00:00Z",
            QueryError::Window,
        ),
        ("upload=x", QueryError::Id("upload")),
        ("grant=54HGS7EBT3VN0QR9FG4W51R6SA", QueryError::Id("grant")),
        ("principal=", QueryError::Principal),
        ("principal=a/b", QueryError::Principal),
        ("client=300.1.1.1", QueryError::Client),
        ("client=10.0.0.0/33", QueryError::Client),
        ("client=10.0.0.0/", QueryError::Client),
        ("client=::1/129", QueryError::Client),
        ("action=Link.issued", QueryError::Action),
        ("action=link", QueryError::Action),
        ("action=.link", QueryError::Action),
        ("action=link..x", QueryError::Action),
        ("outcome=ok", QueryError::Outcome),
        ("limit=0", QueryError::Limit),
        ("limit=1001", QueryError::Limit),
        ("limit=-1", QueryError::Limit),
        ("cursor=12", QueryError::Cursor),
        ("cursor=x.00000000", QueryError::Cursor),
        ("cursor=12.0000000g", QueryError::Cursor),
        (
            "cursor=99999999999999999999999.00000000",
            QueryError::Cursor,
        ),
    ];
    for (s, expected) in cases {
        assert_eq!(q(s), Err(expected.clone()), "{s}");
    }
    assert_eq!(QueryError::Duplicate("limit").parameter(), Some("limit"));
    assert_eq!(QueryError::CursorMismatch.parameter(), Some("cursor"));
}

#[test]
fn a_cursor_resumes_its_own_query_only() {
    let first = q("action=link.&outcome=success").unwrap();
    let cursor = first.next_cursor(42);
    let next = q(&format!("action=link.&outcome=success&cursor={cursor}")).unwrap();
    assert_eq!(next.after, 42);
    assert_eq!(next.filter, first.filter);
    // Parameter order does not change the query, nor the page size.
    let reordered = q(&format!(
        "limit=5&cursor={cursor}&outcome=success&action=link."
    ))
    .unwrap();
    assert_eq!(reordered.after, 42);
    // Another filter (wider, narrower or different) refuses it.
    for other in [
        "action=link.",
        "action=link.&outcome=denied",
        "outcome=success&action=link.&principal=x",
    ] {
        assert_eq!(
            q(&format!("{other}&cursor={cursor}")),
            Err(QueryError::CursorMismatch),
            "{other}"
        );
    }
}

#[test]
fn addresses_and_blocks() {
    let v6 = AddrMatch::parse("2001:db8::/32").unwrap();
    assert!(v6.contains("2001:db8:1::7".parse().unwrap()));
    assert!(!v6.contains("2001:db9::7".parse().unwrap()));
    assert!(!v6.contains("10.0.0.1".parse().unwrap()));
    let v4 = AddrMatch::parse("10.1.2.3/16").unwrap();
    assert_eq!(v4.to_string(), "10.1.0.0/16");
    assert!(v4.contains("::ffff:10.1.9.9".parse().unwrap()));
    assert!(
        AddrMatch::parse("0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap())
    );
    assert!(
        AddrMatch::parse("::/0")
            .unwrap()
            .contains("::1".parse().unwrap())
    );
}

proptest! {
    /// No query string makes the parser panic; whatever parses has a limit in range and
    /// a filter whose cursor round-trips.
    #[test]
    fn parsing_never_panics(s in "\\PC{0,200}") {
        if let Ok(query) = Query::parse(&s) {
            prop_assert!((1..=MAX_LIMIT).contains(&query.limit));
            let c = query.filter.cursor(7);
            prop_assert_eq!(query.filter.resume_after(&c), Ok(7));
        }
    }

    /// Parameter-shaped input: known names with arbitrary values.
    #[test]
    fn parameters_with_any_value_never_panic(
        pairs in proptest::collection::vec(
            (proptest::sample::select(PARAMS.to_vec()), "[ -~]{0,40}"), 0..6)
    ) {
        let s: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = Query::parse(&s.join("&"));
    }

    /// A cursor of any shape is either refused or resumes at the number it carries.
    #[test]
    fn cursors_never_panic(seq in any::<u64>(), tag in "[0-9a-f]{0,10}", junk in "\\PC{0,30}") {
        let f = Filter::default();
        let _ = f.resume_after(&junk);
        match f.resume_after(&format!("{seq}.{tag}")) {
            Ok(n) => prop_assert_eq!(n, seq),
            Err(e) => prop_assert!(matches!(e, QueryError::Cursor | QueryError::CursorMismatch)),
        }
    }
}
