//! Conformance cases for counters, leases, logs and refused requests, each an
//! `async fn(Arc<dyn StateStore>)` that must pass against every adapter.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use sallyport::state::{
    AppendOutcome, CounterOutcome, Expect, IndexEntry, LeaseOutcome, LogEntry, LogName, PutOptions,
    StateError,
};

use crate::cases_records::{NS, PAST_SHORT, SHORT, Store, indexed, plain, ttl};

pub async fn counters(s: Store) {
    use CounterOutcome::{Applied, LimitReached};
    assert_eq!(s.counter_get(NS, "c").await.unwrap(), 0);
    assert_eq!(s.counter_add(NS, "c", 5, None).await.unwrap(), Applied(5));
    assert_eq!(s.counter_add(NS, "c", -7, None).await.unwrap(), Applied(-2));
    assert_eq!(
        s.counter_add(NS, "c", 4, Some(1)).await.unwrap(),
        LimitReached(-2)
    );
    assert_eq!(s.counter_get(NS, "c").await.unwrap(), -2);
    assert_eq!(
        s.counter_add(NS, "c", 3, Some(1)).await.unwrap(),
        Applied(1),
        "= limit is fine"
    );
    assert_eq!(
        s.counter_add(NS, "c", 1, Some(1)).await.unwrap(),
        LimitReached(1)
    );
    assert_eq!(
        s.counter_add(NS, "c", 0, Some(1)).await.unwrap(),
        Applied(1)
    );
    assert_eq!(
        s.counter_add(NS, "c", -1, Some(-5)).await.unwrap(),
        LimitReached(1)
    );
    // A limited add on a fresh counter.
    assert_eq!(
        s.counter_add(NS, "fresh", 3, Some(2)).await.unwrap(),
        LimitReached(0)
    );
    assert_eq!(s.counter_get(NS, "fresh").await.unwrap(), 0);
    assert_eq!(
        s.counter_add(NS, "fresh", 2, Some(2)).await.unwrap(),
        Applied(2)
    );
    // Overflow is refused and changes nothing.
    s.counter_add(NS, "big", i64::MAX, None).await.unwrap();
    let err = s.counter_add(NS, "big", 1, None).await.unwrap_err();
    assert!(matches!(err, StateError::Invalid(_)), "{err:?}");
    assert_eq!(s.counter_get(NS, "big").await.unwrap(), i64::MAX);
    assert_eq!(
        s.counter_add(NS, "big", i64::MIN, None).await.unwrap(),
        Applied(-1)
    );
}

pub async fn counters_are_exact_beyond_2_pow_53(s: Store) {
    use CounterOutcome::{Applied, LimitReached};
    let big = (1i64 << 60) + 1;
    assert_eq!(
        s.counter_add(NS, "b", big, None).await.unwrap(),
        Applied(big)
    );
    assert_eq!(
        s.counter_add(NS, "b", 1, Some(big)).await.unwrap(),
        LimitReached(big)
    );
    assert_eq!(
        s.counter_add(NS, "b", 1, Some(big + 1)).await.unwrap(),
        Applied(big + 1)
    );
    assert_eq!(s.counter_get(NS, "b").await.unwrap(), big + 1);
    assert_eq!(
        s.counter_add(NS, "n", -big, Some(-big)).await.unwrap(),
        Applied(-big)
    );
    assert_eq!(
        s.counter_add(NS, "n", 1, Some(-big)).await.unwrap(),
        LimitReached(-big)
    );
    assert_eq!(
        s.counter_add(NS, "n", -1, Some(-big)).await.unwrap(),
        Applied(-big - 1)
    );
}

/// `counter_add_deferred` differs from `counter_add` only in when it becomes durable:
/// limits, atomicity under a race and visibility are the same, and both kinds of add
/// work on one counter.
pub async fn deferred_counters_are_counters(s: Store) {
    use CounterOutcome::{Applied, LimitReached};
    assert_eq!(
        s.counter_add_deferred(NS, "d", 5, Some(8)).await.unwrap(),
        Applied(5)
    );
    assert_eq!(s.counter_get(NS, "d").await.unwrap(), 5);
    assert_eq!(
        s.counter_add_deferred(NS, "d", 4, Some(8)).await.unwrap(),
        LimitReached(5)
    );
    assert_eq!(
        s.counter_add(NS, "d", 3, Some(8)).await.unwrap(),
        Applied(8)
    );
    assert_eq!(
        s.counter_add_deferred(NS, "d", -8, None).await.unwrap(),
        Applied(0)
    );
    let err = s.counter_add_deferred(NS, "", 1, None).await.unwrap_err();
    assert!(matches!(err, StateError::Invalid(_)), "{err:?}");
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let s = Arc::clone(&s);
            tokio::spawn(async move {
                // Both kinds race for one allowance.
                if i % 2 == 0 {
                    s.counter_add_deferred(NS, "race", 1, Some(7))
                        .await
                        .unwrap()
                } else {
                    s.counter_add(NS, "race", 1, Some(7)).await.unwrap()
                }
            })
        })
        .collect();
    let mut applied = 0;
    for t in tasks {
        if let CounterOutcome::Applied(_) = t.await.unwrap() {
            applied += 1;
        }
    }
    assert_eq!(applied, 7);
    assert_eq!(s.counter_get(NS, "race").await.unwrap(), 7);
}

pub async fn counter_race_spends_exactly_the_limit(s: Store) {
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let s = Arc::clone(&s);
            tokio::spawn(async move { s.counter_add(NS, "allowance", 1, Some(10)).await.unwrap() })
        })
        .collect();
    let mut applied = 0;
    for t in tasks {
        match t.await.unwrap() {
            CounterOutcome::Applied(_) => applied += 1,
            CounterOutcome::LimitReached(v) => assert!(v <= 10),
        }
    }
    assert_eq!(applied, 10);
    assert_eq!(s.counter_get(NS, "allowance").await.unwrap(), 10);
}

pub async fn leases(s: Store) {
    let ttl = Duration::from_secs(30);
    let LeaseOutcome::Acquired(first) = s.lease_acquire("upload/1", ttl).await.unwrap() else {
        panic!("a fresh lease is free");
    };
    assert_eq!(first.name, "upload/1");
    match s.lease_acquire("upload/1", ttl).await.unwrap() {
        LeaseOutcome::Held { remaining } => {
            assert!(
                remaining > Duration::from_secs(25) && remaining <= ttl,
                "{remaining:?}"
            );
        }
        other => panic!("expected Held, got {other:?}"),
    }
    // Another name is independent.
    assert!(matches!(
        s.lease_acquire("upload/2", ttl).await.unwrap(),
        LeaseOutcome::Acquired(_)
    ));

    assert!(s.lease_renew(&first, ttl).await.unwrap());
    let mut forged = first.clone();
    forged.token[0] ^= 1;
    assert!(!s.lease_renew(&forged, ttl).await.unwrap());
    assert!(!s.lease_release(&forged).await.unwrap());
    let mut wrong_fence = first.clone();
    wrong_fence.fence += 1;
    assert!(!s.lease_release(&wrong_fence).await.unwrap());
    assert!(matches!(
        s.lease_acquire("upload/1", ttl).await.unwrap(),
        LeaseOutcome::Held { .. }
    ));

    assert!(s.lease_release(&first).await.unwrap());
    assert!(!s.lease_release(&first).await.unwrap(), "released twice");
    assert!(
        !s.lease_renew(&first, ttl).await.unwrap(),
        "renew after release"
    );
    let LeaseOutcome::Acquired(second) = s.lease_acquire("upload/1", ttl).await.unwrap() else {
        panic!("a released lease is free");
    };
    assert!(second.fence > first.fence);
    assert_ne!(second.token, first.token);
    assert!(
        !s.lease_release(&first).await.unwrap(),
        "old holder cannot release the new lease"
    );
    assert!(s.lease_release(&second).await.unwrap());
}

pub async fn lease_expiry_and_reacquire(s: Store) {
    let LeaseOutcome::Acquired(old) = s.lease_acquire("l", SHORT).await.unwrap() else {
        panic!("free");
    };
    tokio::time::sleep(PAST_SHORT).await;
    assert!(
        !s.lease_renew(&old, SHORT).await.unwrap(),
        "an expired lease cannot be renewed"
    );
    let LeaseOutcome::Acquired(new) = s.lease_acquire("l", Duration::from_secs(30)).await.unwrap()
    else {
        panic!("an expired lease is free");
    };
    assert!(new.fence > old.fence);
    assert!(!s.lease_release(&old).await.unwrap());
    assert!(!s.lease_renew(&old, SHORT).await.unwrap());
    // Renewal keeps a lease alive past its first TTL.
    let LeaseOutcome::Acquired(kept) = s.lease_acquire("k", SHORT).await.unwrap() else {
        panic!("free");
    };
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(s.lease_renew(&kept, SHORT).await.unwrap());
    }
    assert!(matches!(
        s.lease_acquire("k", SHORT).await.unwrap(),
        LeaseOutcome::Held { .. }
    ));
}

fn entry(seq: u64, bytes: &[u8]) -> LogEntry {
    LogEntry {
        seq,
        bytes: bytes.to_vec(),
    }
}

pub async fn logs(s: Store) {
    let log = LogName("audit");
    assert_eq!(s.log_head(log).await.unwrap(), None);
    assert!(s.log_read(log, 1, 10).await.unwrap().is_empty());
    assert_eq!(
        s.log_append(log, 2, &[b"x".to_vec()]).await.unwrap(),
        AppendOutcome::Conflict(None)
    );
    assert_eq!(
        s.log_append(log, 1, &[b"a".to_vec()]).await.unwrap(),
        AppendOutcome::Appended { first: 1 }
    );
    assert_eq!(
        s.log_append(log, 1, &[b"x".to_vec()]).await.unwrap(),
        AppendOutcome::Conflict(Some(entry(1, b"a")))
    );
    let batch = vec![b"b".to_vec(), Vec::new(), b"\0d".to_vec()];
    assert_eq!(
        s.log_append(log, 2, &batch).await.unwrap(),
        AppendOutcome::Appended { first: 2 }
    );
    assert_eq!(
        s.log_append(log, 3, &[b"x".to_vec()]).await.unwrap(),
        AppendOutcome::Conflict(Some(entry(4, b"\0d")))
    );
    assert_eq!(s.log_head(log).await.unwrap(), Some(entry(4, b"\0d")));
    let all = vec![
        entry(1, b"a"),
        entry(2, b"b"),
        entry(3, b""),
        entry(4, b"\0d"),
    ];
    assert_eq!(s.log_read(log, 1, 10).await.unwrap(), all);
    assert_eq!(
        s.log_read(log, 0, 10).await.unwrap(),
        all,
        "from 0 reads from the start"
    );
    assert_eq!(s.log_read(log, 2, 2).await.unwrap(), all[1..3]);
    assert_eq!(s.log_read(log, 4, 10).await.unwrap(), all[3..]);
    assert!(s.log_read(log, 5, 10).await.unwrap().is_empty());
    assert!(s.log_read(log, 1, 0).await.unwrap().is_empty());
    // Logs are independent.
    let other = LogName("other_log");
    assert_eq!(s.log_head(other).await.unwrap(), None);
    assert_eq!(
        s.log_append(other, 1, &[b"o".to_vec()]).await.unwrap(),
        AppendOutcome::Appended { first: 1 }
    );
    assert_eq!(s.log_head(log).await.unwrap().unwrap().seq, 4);
}

pub async fn log_race_is_gapless(s: Store) {
    let log = LogName("race");
    const WRITERS: usize = 8;
    const EACH: usize = 10;
    let tasks: Vec<_> = (0..WRITERS)
        .map(|w| {
            let s = Arc::clone(&s);
            tokio::spawn(async move {
                let mut next = s.log_head(log).await.unwrap().map_or(1, |e| e.seq + 1);
                for i in 0..EACH {
                    // Odd writers append in pairs, to mix batches with single entries.
                    let batch: Vec<Vec<u8>> = if w % 2 == 1 && i % 2 == 0 {
                        vec![
                            format!("{w}-{i}").into_bytes(),
                            format!("{w}-{}", i + 1).into_bytes(),
                        ]
                    } else if w % 2 == 1 {
                        continue;
                    } else {
                        vec![format!("{w}-{i}").into_bytes()]
                    };
                    loop {
                        match s.log_append(log, next, &batch).await.unwrap() {
                            AppendOutcome::Appended { first } => {
                                assert_eq!(first, next);
                                next += batch.len() as u64;
                                break;
                            }
                            AppendOutcome::Conflict(head) => {
                                next = head.map_or(1, |e| e.seq + 1);
                            }
                        }
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let total = (WRITERS * EACH) as u64;
    let entries = s.log_read(log, 1, 1000).await.unwrap();
    let seqs: Vec<u64> = entries.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=total).collect::<Vec<_>>(), "gapless");
    let payloads: BTreeSet<Vec<u8>> = entries.into_iter().map(|e| e.bytes).collect();
    assert_eq!(payloads.len() as u64, total, "no duplicates");
    assert_eq!(s.log_head(log).await.unwrap().unwrap().seq, total);
}

pub async fn bad_requests_are_refused(s: Store) {
    fn invalid<T: std::fmt::Debug>(r: Result<T, StateError>) {
        assert!(matches!(r, Err(StateError::Invalid(_))), "{r:?}");
    }
    let long = "x".repeat(513);
    invalid(s.put(NS, "", b"v", Expect::Any, plain()).await);
    invalid(s.put(NS, &long, b"v", Expect::Any, plain()).await);
    invalid(s.get(NS, "").await);
    invalid(s.delete(NS, &long, Expect::Any).await);
    invalid(
        s.put(NS, "i", b"v", Expect::Any, indexed(&[("Bad-Name", "v")]))
            .await,
    );
    invalid(
        s.put(
            NS,
            "i",
            b"v",
            Expect::Any,
            indexed(&[("owner", &"v".repeat(257))]),
        )
        .await,
    );
    let many: Vec<String> = (0..17).map(|i| i.to_string()).collect();
    let o = PutOptions {
        ttl: None,
        index: many
            .iter()
            .map(|v| IndexEntry::new("owner", v.as_str()))
            .collect(),
    };
    invalid(s.put(NS, "i", b"v", Expect::Any, o).await);
    invalid(s.put(NS, "i", b"v", Expect::Any, ttl(Duration::ZERO)).await);
    invalid(
        s.put(
            NS,
            "i",
            b"v",
            Expect::Any,
            ttl(Duration::from_secs(u64::MAX)),
        )
        .await,
    );
    assert_eq!(
        s.get(NS, "i").await.unwrap(),
        None,
        "refused writes change nothing"
    );

    invalid(s.list(NS, None, 10_001).await);
    invalid(
        s.list_index(NS, &IndexEntry::new("a:b", "v"), None, 10)
            .await,
    );
    invalid(s.counter_add(NS, "", 1, None).await);
    invalid(s.counter_get(NS, &long).await);
    invalid(s.lease_acquire("", SHORT).await);
    invalid(s.lease_acquire("l", Duration::ZERO).await);

    let log = LogName("audit");
    invalid(s.log_append(log, 1, &[]).await);
    invalid(s.log_append(log, 0, &[b"x".to_vec()]).await);
    invalid(s.log_append(LogName("Bad Log"), 1, &[b"x".to_vec()]).await);
    invalid(s.log_append(log, 1, &vec![b"x".to_vec(); 1001]).await);
    invalid(s.log_read(log, 1, 10_001).await);
    assert_eq!(
        s.log_head(log).await.unwrap(),
        None,
        "refused appends change nothing"
    );
}
