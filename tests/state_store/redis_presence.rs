//! Redis presence and lease takeover: a lease of a dead holder (an older incarnation of
//! the acquirer's own instance id, or a holder whose heartbeat lapsed) is taken over at
//! once; a lease of a live other instance, or of a store that never joined, is not; the
//! displaced holder can neither renew nor release; a second live process with the same
//! instance id cannot join.

use std::time::Duration;

use sallyport::state::instance::InstanceId;
use sallyport::state::redis::{ALIVE_TTL, PresenceError, RedisStateStore};
use sallyport::state::{Lease, LeaseOutcome, StateStore};

use crate::harness::{connect_redis, delete_prefix, unique_prefix};

/// Lease TTL of these tests: far longer than the tests, so only a takeover frees a lease.
const TTL: Duration = Duration::from_secs(600);

struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        delete_prefix(&self.0);
    }
}

fn id(s: &str) -> InstanceId {
    InstanceId::parse(s).unwrap()
}

async fn acquire(store: &RedisStateStore, name: &str) -> LeaseOutcome {
    store.lease_acquire(name, TTL).await.unwrap()
}

fn held(outcome: LeaseOutcome) -> Lease {
    match outcome {
        LeaseOutcome::Acquired(lease) => lease,
        other => panic!("expected the lease, got {other:?}"),
    }
}

fn assert_refused(outcome: LeaseOutcome) {
    assert!(
        matches!(outcome, LeaseOutcome::Held { remaining } if remaining > Duration::from_secs(500)),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn a_restarted_instance_takes_over_its_predecessors_lease_at_once() {
    let prefix = unique_prefix();
    let Some(base) = connect_redis(&prefix).await else {
        return;
    };
    let _cleanup = Cleanup(prefix.clone());
    let (first, presence, joined) = base.clone().join(id("gw-a")).await.unwrap();
    assert_eq!(joined.incarnation, 1);
    let old = held(acquire(&first, "upload/u1").await);
    // A clean stop deletes the alive key, but the lease stays (a request was cut off).
    presence.leave().await.unwrap();
    let (second, _presence, joined) = base.clone().join(id("gw-a")).await.unwrap();
    assert_eq!(joined.incarnation, 2);
    assert_eq!(
        joined.waited,
        Duration::ZERO,
        "a clean stop lets the restart join at once"
    );
    let new = held(acquire(&second, "upload/u1").await);
    assert!(new.fence > old.fence);
    // The predecessor's lease is gone: it can neither renew nor release the new one.
    assert!(!first.lease_renew(&old, TTL).await.unwrap());
    assert!(!first.lease_release(&old).await.unwrap());
    assert!(second.lease_renew(&new, TTL).await.unwrap());
    // The new holder is alive, so a third acquirer of the same incarnation is refused.
    assert_refused(acquire(&second, "upload/u1").await);
    assert!(second.lease_release(&new).await.unwrap());
}

#[tokio::test]
async fn a_crashed_instance_is_rejoined_once_its_heartbeat_lapses() {
    let prefix = unique_prefix();
    let Some(base) = connect_redis(&prefix).await else {
        return;
    };
    let _cleanup = Cleanup(prefix.clone());
    let (first, presence, _) = base.clone().join(id("gw-c")).await.unwrap();
    let old = held(acquire(&first, "upload/u2").await);
    // A crash: the heartbeat stops, nothing is cleaned up.
    drop(presence);
    let (second, _presence, joined) = base.clone().join(id("gw-c")).await.unwrap();
    assert_eq!(joined.incarnation, 2);
    assert!(
        joined.waited > Duration::ZERO,
        "the old heartbeat was watched"
    );
    assert!(
        joined.waited <= ALIVE_TTL + Duration::from_secs(1),
        "{joined:?}"
    );
    let new = held(acquire(&second, "upload/u2").await);
    assert!(new.fence > old.fence);
    assert!(!first.lease_renew(&old, TTL).await.unwrap());
}

#[tokio::test]
async fn a_lease_of_a_live_other_instance_is_refused_and_of_a_dead_one_taken() {
    let prefix = unique_prefix();
    let Some(base) = connect_redis(&prefix).await else {
        return;
    };
    let _cleanup = Cleanup(prefix.clone());
    let (a, a_presence, _) = base.clone().join(id("gw-a")).await.unwrap();
    let (b, _b_presence, _) = base.clone().join(id("gw-b")).await.unwrap();
    let lease = held(acquire(&a, "upload/u3").await);
    // Alive (its heartbeat beats): refused for the lease's whole TTL, even across beats.
    assert_refused(acquire(&b, "upload/u3").await);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_refused(acquire(&b, "upload/u3").await);
    assert!(a.lease_renew(&lease, TTL).await.unwrap());
    // A is gone: B takes the lease at once.
    a_presence.leave().await.unwrap();
    let taken = held(acquire(&b, "upload/u3").await);
    assert!(taken.fence > lease.fence);
    assert!(!a.lease_renew(&lease, TTL).await.unwrap());
    assert!(!a.lease_release(&lease).await.unwrap());
    assert!(b.lease_release(&taken).await.unwrap());
}

#[tokio::test]
async fn a_lease_of_a_store_that_never_joined_is_only_free_when_it_expires() {
    let prefix = unique_prefix();
    let Some(anonymous) = connect_redis(&prefix).await else {
        return;
    };
    let _cleanup = Cleanup(prefix.clone());
    let lease = held(acquire(&anonymous, "upload/u4").await);
    let (joined, _presence, _) = anonymous.clone().join(id("gw-j")).await.unwrap();
    assert_refused(acquire(&joined, "upload/u4").await);
    assert!(anonymous.lease_release(&lease).await.unwrap());
    held(acquire(&joined, "upload/u4").await);
}

#[tokio::test]
async fn a_second_live_process_with_the_same_id_cannot_join() {
    let prefix = unique_prefix();
    let Some(base) = connect_redis(&prefix).await else {
        return;
    };
    let _cleanup = Cleanup(prefix.clone());
    let (_first, first_presence, _) = base.clone().join(id("gw-twin")).await.unwrap();
    let err = base.clone().join(id("gw-twin")).await.unwrap_err();
    match &err {
        PresenceError::Duplicate { id, watched } => {
            assert_eq!(id.as_str(), "gw-twin");
            assert!(
                *watched <= ALIVE_TTL + Duration::from_secs(2),
                "{watched:?}"
            );
        }
        other => panic!("expected Duplicate, got {other:?}"),
    }
    assert!(err.to_string().contains("server.instance_id"), "{err}");
    // The refused joiner changed nothing: the first one still beats and is not displaced.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!first_presence.is_displaced());
    // Once the first leaves, the id is free.
    first_presence.leave().await.unwrap();
    base.join(id("gw-twin")).await.unwrap();
}
