//! Conformance cases for records (CAS, TTL, indexes, listing), each an
//! `async fn(Arc<dyn StateStore>)` that must pass against every adapter. TTL cases use
//! short TTLs and sleeps well past them: they check correctness (expired means gone), not
//! timing. Shared fixtures live here too.

use std::sync::Arc;
use std::time::Duration;

use sallyport::state::{CasOutcome, Expect, IndexEntry, Namespace, PutOptions, StateStore};

pub const NS: Namespace = Namespace::new("upload");
pub const OTHER_NS: Namespace = Namespace::new("grant");
pub const SHORT: Duration = Duration::from_millis(300);
pub const PAST_SHORT: Duration = Duration::from_millis(700);

pub type Store = Arc<dyn StateStore>;

pub fn plain() -> PutOptions {
    PutOptions::default()
}

pub fn ttl(ttl: Duration) -> PutOptions {
    PutOptions {
        ttl: Some(ttl),
        index: Vec::new(),
    }
}

pub fn indexed(entries: &[(&'static str, &str)]) -> PutOptions {
    PutOptions {
        ttl: None,
        index: entries
            .iter()
            .map(|(index, value)| IndexEntry::new(index, *value))
            .collect(),
    }
}

pub async fn put(s: &Store, id: &str, value: &[u8], expect: Expect, o: PutOptions) -> CasOutcome {
    s.put(NS, id, value, expect, o).await.unwrap()
}

pub async fn listed(s: &Store, index: &'static str, value: &str) -> Vec<String> {
    s.list_index(NS, &IndexEntry::new(index, value), None, 1000)
        .await
        .unwrap()
}

pub async fn ping_and_kind(s: Store) {
    s.ping().await.unwrap();
    assert!(["memory", "embedded", "redis"].contains(&s.kind()));
}

pub async fn cas_create_update_conflict_delete(s: Store) {
    use CasOutcome::{Applied, Conflict};
    assert_eq!(s.get(NS, "a").await.unwrap(), None);
    assert_eq!(
        put(&s, "a", b"one", Expect::Absent, plain()).await,
        Applied(1)
    );
    assert_eq!(
        put(&s, "a", b"x", Expect::Absent, plain()).await,
        Conflict(Some(1))
    );
    let got = s.get(NS, "a").await.unwrap().unwrap();
    assert_eq!((got.value.as_slice(), got.version), (&b"one"[..], 1));

    assert_eq!(
        put(&s, "a", b"two", Expect::Version(1), plain()).await,
        Applied(2)
    );
    assert_eq!(
        put(&s, "a", b"x", Expect::Version(1), plain()).await,
        Conflict(Some(2))
    );
    assert_eq!(
        put(&s, "a", b"x", Expect::Version(3), plain()).await,
        Conflict(Some(2))
    );
    assert_eq!(
        put(&s, "a", b"three", Expect::Any, plain()).await,
        Applied(3)
    );
    let got = s.get(NS, "a").await.unwrap().unwrap();
    assert_eq!((got.value.as_slice(), got.version), (&b"three"[..], 3));

    assert_eq!(
        s.delete(NS, "a", Expect::Version(2)).await.unwrap(),
        Conflict(Some(3))
    );
    assert_eq!(
        s.delete(NS, "a", Expect::Absent).await.unwrap(),
        Conflict(Some(3))
    );
    assert!(
        s.get(NS, "a").await.unwrap().is_some(),
        "a failed delete changes nothing"
    );
    assert_eq!(
        s.delete(NS, "a", Expect::Version(3)).await.unwrap(),
        Applied(0)
    );
    assert_eq!(s.get(NS, "a").await.unwrap(), None);

    // Deletes and conditional writes of an absent record.
    assert_eq!(s.delete(NS, "a", Expect::Any).await.unwrap(), Applied(0));
    assert_eq!(s.delete(NS, "a", Expect::Absent).await.unwrap(), Applied(0));
    assert_eq!(
        s.delete(NS, "a", Expect::Version(1)).await.unwrap(),
        Conflict(None)
    );
    assert_eq!(
        put(&s, "a", b"x", Expect::Version(1), plain()).await,
        Conflict(None)
    );
    assert_eq!(s.get(NS, "a").await.unwrap(), None);

    // A re-created record starts again at version 1; `Any` creates too.
    assert_eq!(
        put(&s, "a", b"again", Expect::Absent, plain()).await,
        Applied(1)
    );
    assert_eq!(put(&s, "b", b"any", Expect::Any, plain()).await, Applied(1));
    assert_eq!(s.delete(NS, "b", Expect::Any).await.unwrap(), Applied(0));
}

pub async fn values_are_binary_safe(s: Store) {
    let values: [&[u8]; 4] = [b"", b"\0\0\xff\xfe", b"x:y\r\n*3\r\n", &[7u8; 100_000]];
    for (i, value) in values.iter().enumerate() {
        let id = format!("bin-{i}");
        put(&s, &id, value, Expect::Absent, plain()).await;
        assert_eq!(s.get(NS, &id).await.unwrap().unwrap().value, *value);
    }
    // Ids with separators and non-ASCII text are ids like any other.
    for id in ["a:b", "r:upload:x", "ü/..", " "] {
        assert_eq!(
            put(&s, id, id.as_bytes(), Expect::Absent, plain()).await,
            CasOutcome::Applied(1)
        );
        assert_eq!(s.get(NS, id).await.unwrap().unwrap().value, id.as_bytes());
    }
}

pub async fn namespaces_and_kinds_are_separate(s: Store) {
    put(&s, "same", b"upload", Expect::Absent, plain()).await;
    assert_eq!(s.get(OTHER_NS, "same").await.unwrap(), None);
    assert_eq!(
        s.put(OTHER_NS, "same", b"grant", Expect::Absent, plain())
            .await
            .unwrap(),
        CasOutcome::Applied(1)
    );
    assert_eq!(s.get(NS, "same").await.unwrap().unwrap().value, b"upload");
    assert_eq!(s.list(OTHER_NS, None, 10).await.unwrap(), vec!["same"]);
    // A counter with a record's id is a different thing.
    assert_eq!(s.counter_get(NS, "same").await.unwrap(), 0);
    s.counter_add(NS, "same", 4, None).await.unwrap();
    assert_eq!(s.get(NS, "same").await.unwrap().unwrap().value, b"upload");
    assert_eq!(s.counter_get(OTHER_NS, "same").await.unwrap(), 0);
}

pub async fn cas_races_have_one_winner(s: Store) {
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let s = Arc::clone(&s);
            tokio::spawn(async move {
                s.put(
                    NS,
                    "race",
                    format!("{i}").as_bytes(),
                    Expect::Absent,
                    plain(),
                )
                .await
                .unwrap()
            })
        })
        .collect();
    let mut applied = 0;
    for t in tasks {
        match t.await.unwrap() {
            CasOutcome::Applied(1) => applied += 1,
            CasOutcome::Conflict(Some(1)) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(applied, 1);
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let s = Arc::clone(&s);
            tokio::spawn(async move {
                s.put(NS, "race", b"v2", Expect::Version(1), plain())
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut applied = 0;
    for t in tasks {
        if t.await.unwrap() == CasOutcome::Applied(2) {
            applied += 1;
        }
    }
    assert_eq!(applied, 1);
    assert_eq!(s.get(NS, "race").await.unwrap().unwrap().version, 2);
}

pub async fn ttl_expiry(s: Store) {
    let o = PutOptions {
        ttl: Some(SHORT),
        index: vec![IndexEntry::new("owner", "clinic")],
    };
    put(&s, "t", b"soon gone", Expect::Absent, o).await;
    put(
        &s,
        "keep",
        b"stays",
        Expect::Absent,
        indexed(&[("owner", "clinic")]),
    )
    .await;
    assert!(s.get(NS, "t").await.unwrap().is_some());
    assert_eq!(s.list(NS, None, 10).await.unwrap(), vec!["keep", "t"]);
    tokio::time::sleep(PAST_SHORT).await;

    assert_eq!(s.get(NS, "t").await.unwrap(), None);
    assert_eq!(s.list(NS, None, 10).await.unwrap(), vec!["keep"]);
    assert_eq!(listed(&s, "owner", "clinic").await, vec!["keep"]);
    // An expired record is absent for conditional writes too.
    assert_eq!(
        put(&s, "t", b"x", Expect::Version(1), plain()).await,
        CasOutcome::Conflict(None)
    );
    assert_eq!(
        s.delete(NS, "t", Expect::Version(1)).await.unwrap(),
        CasOutcome::Conflict(None)
    );
    assert_eq!(
        put(&s, "t", b"new", Expect::Absent, plain()).await,
        CasOutcome::Applied(1)
    );
    assert_eq!(s.get(NS, "t").await.unwrap().unwrap().value, b"new");
    // The re-created record did not inherit the expired one's index entry.
    assert_eq!(listed(&s, "owner", "clinic").await, vec!["keep"]);
}

pub async fn rewrite_sets_ttl_anew(s: Store) {
    put(&s, "r", b"1", Expect::Absent, ttl(SHORT)).await;
    put(&s, "r", b"2", Expect::Version(1), plain()).await; // no TTL now
    put(&s, "q", b"1", Expect::Absent, plain()).await;
    put(&s, "q", b"2", Expect::Version(1), ttl(SHORT)).await; // TTL added
    put(&s, "p", b"1", Expect::Absent, ttl(SHORT)).await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    put(
        &s,
        "p",
        b"2",
        Expect::Version(1),
        ttl(Duration::from_secs(30)),
    )
    .await; // extended
    tokio::time::sleep(PAST_SHORT).await;
    assert_eq!(s.get(NS, "r").await.unwrap().unwrap().value, b"2");
    assert_eq!(s.get(NS, "q").await.unwrap(), None);
    assert_eq!(s.get(NS, "p").await.unwrap().unwrap().version, 2);
}

pub async fn index_listing_and_paging(s: Store) {
    for i in 0..25 {
        let id = format!("id-{i:02}");
        put(&s, &id, b"v", Expect::Absent, indexed(&[("owner", "a")])).await;
    }
    put(
        &s,
        "other",
        b"v",
        Expect::Absent,
        indexed(&[("owner", "ab")]),
    )
    .await;
    put(
        &s,
        "batch-only",
        b"v",
        Expect::Absent,
        indexed(&[("batch", "a")]),
    )
    .await;
    s.put(
        OTHER_NS,
        "foreign",
        b"v",
        Expect::Absent,
        indexed(&[("owner", "a")]),
    )
    .await
    .unwrap();

    let entry = IndexEntry::new("owner", "a");
    let mut all = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = s
            .list_index(NS, &entry, after.as_deref(), 10)
            .await
            .unwrap();
        assert!(page.len() <= 10);
        if page.is_empty() {
            break;
        }
        after = page.last().cloned();
        all.extend(page);
    }
    let expected: Vec<String> = (0..25).map(|i| format!("id-{i:02}")).collect();
    assert_eq!(all, expected, "every id once, ascending, across pages");

    let page = s.list_index(NS, &entry, Some("id-09"), 3).await.unwrap();
    assert_eq!(page, vec!["id-10", "id-11", "id-12"]);
    // `after` need not be a listed id.
    let page = s.list_index(NS, &entry, Some("id-095"), 2).await.unwrap();
    assert_eq!(page, vec!["id-10", "id-11"]);
    assert!(s.list_index(NS, &entry, None, 0).await.unwrap().is_empty());
    assert!(
        s.list_index(NS, &entry, Some("id-24"), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(listed(&s, "owner", "ab").await, vec!["other"]);
    assert_eq!(listed(&s, "batch", "a").await, vec!["batch-only"]);
    assert!(listed(&s, "owner", "nobody").await.is_empty());
}

pub async fn index_entries_follow_rewrites_and_deletes(s: Store) {
    put(
        &s,
        "x",
        b"1",
        Expect::Absent,
        indexed(&[("owner", "a"), ("batch", "b1")]),
    )
    .await;
    put(&s, "y", b"1", Expect::Absent, indexed(&[("owner", "a")])).await;
    assert_eq!(listed(&s, "owner", "a").await, vec!["x", "y"]);
    assert_eq!(listed(&s, "batch", "b1").await, vec!["x"]);

    // A rewrite replaces the record's entries.
    put(
        &s,
        "x",
        b"2",
        Expect::Version(1),
        indexed(&[("owner", "b")]),
    )
    .await;
    assert_eq!(listed(&s, "owner", "a").await, vec!["y"]);
    assert_eq!(listed(&s, "owner", "b").await, vec!["x"]);
    assert!(listed(&s, "batch", "b1").await.is_empty());

    // A rewrite with no entries removes them all; a failed CAS changes nothing.
    put(&s, "x", b"3", Expect::Version(2), plain()).await;
    assert!(listed(&s, "owner", "b").await.is_empty());
    put(
        &s,
        "x",
        b"4",
        Expect::Version(3),
        indexed(&[("owner", "c")]),
    )
    .await;
    put(
        &s,
        "x",
        b"5",
        Expect::Version(1),
        indexed(&[("owner", "d")]),
    )
    .await;
    assert_eq!(listed(&s, "owner", "c").await, vec!["x"]);
    assert!(listed(&s, "owner", "d").await.is_empty());

    // Delete removes them; a failed delete does not.
    s.delete(NS, "x", Expect::Version(1)).await.unwrap();
    assert_eq!(listed(&s, "owner", "c").await, vec!["x"]);
    s.delete(NS, "x", Expect::Any).await.unwrap();
    assert!(listed(&s, "owner", "c").await.is_empty());
    assert_eq!(listed(&s, "owner", "a").await, vec!["y"]);
}

pub async fn expired_records_leave_the_index(s: Store) {
    // Pages must be full even when expired entries sit between live ones.
    for i in 0..6 {
        let o = PutOptions {
            ttl: (i % 2 == 0).then_some(SHORT),
            index: vec![IndexEntry::new("owner", "z")],
        };
        put(&s, &format!("e{i}"), b"v", Expect::Absent, o).await;
    }
    tokio::time::sleep(PAST_SHORT).await;
    let entry = IndexEntry::new("owner", "z");
    assert_eq!(
        s.list_index(NS, &entry, None, 2).await.unwrap(),
        vec!["e1", "e3"]
    );
    assert_eq!(
        s.list_index(NS, &entry, Some("e3"), 2).await.unwrap(),
        vec!["e5"]
    );
    assert_eq!(s.list(NS, None, 2).await.unwrap(), vec!["e1", "e3"]);
}

pub async fn list_namespace(s: Store) {
    assert!(s.list(NS, None, 10).await.unwrap().is_empty());
    for id in ["c", "a", "b", "d"] {
        put(&s, id, b"v", Expect::Absent, plain()).await;
    }
    s.put(OTHER_NS, "zz", b"v", Expect::Absent, plain())
        .await
        .unwrap();
    assert_eq!(
        s.list(NS, None, 10).await.unwrap(),
        vec!["a", "b", "c", "d"]
    );
    assert_eq!(s.list(NS, Some("a"), 2).await.unwrap(), vec!["b", "c"]);
    assert_eq!(s.list(NS, Some("c"), 10).await.unwrap(), vec!["d"]);
    assert!(s.list(NS, None, 0).await.unwrap().is_empty());
    s.delete(NS, "b", Expect::Any).await.unwrap();
    assert_eq!(s.list(NS, None, 10).await.unwrap(), vec!["a", "c", "d"]);
}

/// `put_deferred` and `delete_deferred` differ from `put` and `delete` only in when they
/// become durable: the same conditions, versions, index entries and visibility, and both
/// kinds of write work on one record.
pub async fn deferred_writes_are_writes(s: Store) {
    use CasOutcome::{Applied, Conflict};
    let owner = || indexed(&[("owner", "o")]);
    assert_eq!(
        s.put_deferred(NS, "d", b"1", Expect::Absent, owner())
            .await
            .unwrap(),
        Applied(1)
    );
    let got = s.get(NS, "d").await.unwrap().unwrap();
    assert_eq!((got.value.as_slice(), got.version), (&b"1"[..], 1));
    let listed = s
        .list_index(NS, &IndexEntry::new("owner", "o"), None, 10)
        .await
        .unwrap();
    assert_eq!(listed, ["d"]);
    assert_eq!(
        s.put_deferred(NS, "d", b"x", Expect::Absent, plain())
            .await
            .unwrap(),
        Conflict(Some(1))
    );
    assert_eq!(
        s.put(NS, "d", b"2", Expect::Version(1), owner())
            .await
            .unwrap(),
        Applied(2)
    );
    assert_eq!(
        s.put_deferred(NS, "d", b"3", Expect::Version(2), owner())
            .await
            .unwrap(),
        Applied(3)
    );
    assert_eq!(
        s.delete_deferred(NS, "d", Expect::Version(2))
            .await
            .unwrap(),
        Conflict(Some(3))
    );
    assert_eq!(
        s.delete_deferred(NS, "d", Expect::Version(3))
            .await
            .unwrap(),
        Applied(0)
    );
    assert!(s.get(NS, "d").await.unwrap().is_none());
    assert!(
        s.list_index(NS, &IndexEntry::new("owner", "o"), None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        s.delete_deferred(NS, "d", Expect::Any).await.unwrap(),
        Applied(0)
    );
}
