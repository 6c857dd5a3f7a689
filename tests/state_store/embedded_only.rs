//! Checks that only the embedded store has: the file lock, file modes, reopening, the
//! sweeper, and refusing a file that is not a database.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use sallyport::state::embedded::{EmbeddedStateStore, SweepReport};
use sallyport::state::{
    AppendOutcome, CasOutcome, Expect, IndexEntry, LeaseOutcome, LogName, Namespace, PutOptions,
    StateError, StateStore,
};

const NS: Namespace = Namespace::new("upload");

fn with(ttl: Option<Duration>, owner: &str) -> PutOptions {
    PutOptions {
        ttl,
        index: vec![IndexEntry::new("owner", owner)],
    }
}

#[tokio::test]
async fn a_second_open_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    let first = EmbeddedStateStore::open(&path).unwrap();
    match EmbeddedStateStore::open(&path) {
        Err(StateError::Locked(p)) => assert!(p.ends_with("state.redb")),
        other => panic!("expected Locked, got {other:?}"),
    }
    drop(first);
    EmbeddedStateStore::open(&path).unwrap();
}

#[tokio::test]
async fn open_creates_a_private_directory_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data/state/state.redb");
    let _store = EmbeddedStateStore::open(&path).unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(path.parent().unwrap()), 0o700);
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    std::fs::write(&path, vec![0x5a; 4096]).unwrap();
    let err = EmbeddedStateStore::open(&path).unwrap_err();
    assert!(
        matches!(err, StateError::Unavailable(_) | StateError::Corrupt(_)),
        "{err:?}"
    );
    assert_eq!(
        std::fs::read(&path).unwrap(),
        vec![0x5a; 4096],
        "left untouched"
    );
}

#[tokio::test]
async fn everything_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    let log = LogName("audit");
    let fence = {
        let s = EmbeddedStateStore::open(&path).unwrap();
        s.put(NS, "r", b"v", Expect::Absent, with(None, "o"))
            .await
            .unwrap();
        s.counter_add(NS, "c", 7, None).await.unwrap();
        s.log_append(log, 1, &[b"a".to_vec()]).await.unwrap();
        let LeaseOutcome::Acquired(l) =
            s.lease_acquire("l", Duration::from_secs(60)).await.unwrap()
        else {
            panic!("free");
        };
        assert!(s.lease_release(&l).await.unwrap());
        l.fence
    };
    let s = EmbeddedStateStore::open(&path).unwrap();
    assert_eq!(s.get(NS, "r").await.unwrap().unwrap().version, 1);
    assert_eq!(
        s.list_index(NS, &IndexEntry::new("owner", "o"), None, 10)
            .await
            .unwrap(),
        ["r"]
    );
    assert_eq!(s.counter_get(NS, "c").await.unwrap(), 7);
    assert_eq!(
        s.log_append(log, 2, &[b"b".to_vec()]).await.unwrap(),
        AppendOutcome::Appended { first: 2 }
    );
    let LeaseOutcome::Acquired(l) = s.lease_acquire("l", Duration::from_secs(60)).await.unwrap()
    else {
        panic!("released before the reopen");
    };
    assert!(l.fence > fence, "fences keep growing across a reopen");
}

#[tokio::test]
async fn sweep_removes_exactly_the_expired() {
    let dir = tempfile::tempdir().unwrap();
    let s = EmbeddedStateStore::open(&dir.path().join("state.redb")).unwrap();
    let short = Some(Duration::from_millis(300));
    for i in 0..3 {
        s.put(
            NS,
            &format!("gone{i}"),
            b"v",
            Expect::Absent,
            with(short, "o"),
        )
        .await
        .unwrap();
    }
    // Written with a TTL, then rewritten without: must survive.
    s.put(NS, "kept", b"v", Expect::Absent, with(short, "o"))
        .await
        .unwrap();
    s.put(NS, "kept", b"v", Expect::Version(1), with(None, "o"))
        .await
        .unwrap();
    s.put(
        NS,
        "long",
        b"v",
        Expect::Absent,
        with(Some(Duration::from_secs(60)), "o"),
    )
    .await
    .unwrap();
    let LeaseOutcome::Acquired(dead) = s
        .lease_acquire("dead", Duration::from_millis(300))
        .await
        .unwrap()
    else {
        panic!("free");
    };
    let LeaseOutcome::Acquired(_live) = s
        .lease_acquire("live", Duration::from_secs(60))
        .await
        .unwrap()
    else {
        panic!("free");
    };
    assert_eq!(
        s.sweep_expired().await.unwrap(),
        SweepReport::default(),
        "nothing expired yet"
    );
    tokio::time::sleep(Duration::from_millis(700)).await;

    assert_eq!(
        s.sweep_expired().await.unwrap(),
        SweepReport {
            records: 3,
            leases: 1
        }
    );
    assert_eq!(
        s.sweep_expired().await.unwrap(),
        SweepReport::default(),
        "idempotent"
    );
    assert_eq!(s.list(NS, None, 10).await.unwrap(), ["kept", "long"]);
    assert_eq!(
        s.list_index(NS, &IndexEntry::new("owner", "o"), None, 10)
            .await
            .unwrap(),
        ["kept", "long"]
    );
    assert_eq!(s.get(NS, "kept").await.unwrap().unwrap().version, 2);
    assert!(matches!(
        s.lease_acquire("live", Duration::from_secs(1))
            .await
            .unwrap(),
        LeaseOutcome::Held { .. }
    ));
    // A swept lease's name is free, and fences still grow.
    let LeaseOutcome::Acquired(again) = s
        .lease_acquire("dead", Duration::from_secs(1))
        .await
        .unwrap()
    else {
        panic!("swept");
    };
    assert!(again.fence > dead.fence);
    // A swept record is absent: create works and starts at 1.
    assert_eq!(
        s.put(NS, "gone0", b"v", Expect::Absent, PutOptions::default())
            .await
            .unwrap(),
        CasOutcome::Applied(1)
    );
}

#[tokio::test]
async fn sweeping_many_records_takes_several_batches() {
    let dir = tempfile::tempdir().unwrap();
    let s = EmbeddedStateStore::open(&dir.path().join("state.redb")).unwrap();
    let short = Some(Duration::from_millis(200));
    // More expired records than one sweep transaction removes (1,000).
    for i in 0..1_100 {
        s.put(
            NS,
            &format!("r{i:05}"),
            b"v",
            Expect::Absent,
            with(short, "o"),
        )
        .await
        .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(s.sweep_expired().await.unwrap().records, 1_100);
    assert!(s.list(NS, None, 10).await.unwrap().is_empty());
}

/// A deferred counter add is made durable by the next durable write (redb orders its
/// commits): after a durable put and a reopen, the value is there.
#[tokio::test]
async fn a_deferred_counter_add_is_persisted_by_the_next_durable_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    let store = EmbeddedStateStore::open(&path).unwrap();
    store
        .counter_add_deferred(NS, "meter", 42, Some(100))
        .await
        .unwrap();
    store
        .put(NS, "after", b"x", Expect::Absent, PutOptions::default())
        .await
        .unwrap();
    drop(store);
    let store = EmbeddedStateStore::open(&path).unwrap();
    assert_eq!(store.counter_get(NS, "meter").await.unwrap(), 42);
}

/// Deferred record writes are made durable by the next durable write, in order: after a
/// durable put and a reopen, a deferred put and a deferred delete are both there.
#[tokio::test]
async fn deferred_record_writes_are_persisted_by_the_next_durable_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    let store = EmbeddedStateStore::open(&path).unwrap();
    store
        .put(NS, "gone", b"x", Expect::Absent, PutOptions::default())
        .await
        .unwrap();
    store
        .put_deferred(NS, "kept", b"v", Expect::Absent, with(None, "o"))
        .await
        .unwrap();
    store
        .delete_deferred(NS, "gone", Expect::Any)
        .await
        .unwrap();
    store
        .put(NS, "after", b"x", Expect::Absent, PutOptions::default())
        .await
        .unwrap();
    drop(store);
    let store = EmbeddedStateStore::open(&path).unwrap();
    assert_eq!(store.get(NS, "kept").await.unwrap().unwrap().value, b"v");
    assert!(store.get(NS, "gone").await.unwrap().is_none());
    assert_eq!(
        store
            .list_index(NS, &IndexEntry::new("owner", "o"), None, 10)
            .await
            .unwrap(),
        ["kept"]
    );
}

/// Lease fences keep growing across reopens however many were issued since the last
/// durable reservation (acquisitions inside a reserved block are not synced).
#[tokio::test]
async fn fences_grow_across_reopens_past_whole_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    let mut last = 0;
    for round in 0..3 {
        let store = EmbeddedStateStore::open(&path).unwrap();
        for _ in 0..(700 * (round + 1)) {
            let LeaseOutcome::Acquired(l) = store
                .lease_acquire("l", Duration::from_secs(60))
                .await
                .unwrap()
            else {
                panic!("free");
            };
            assert!(l.fence > last, "{} <= {last}", l.fence);
            last = l.fence;
            assert!(store.lease_release(&l).await.unwrap());
        }
    }
}
