//! Cross-process lease tests. The parent re-runs this test binary with `--ignored --exact
//! processes::child_lease_holder`; the child takes a 2 s lease, prints `ACQUIRED <fence>`
//! and sleeps until the parent kills it with SIGKILL. A killed holder never releases. On
//! Redis the lease must stay held until its TTL passes and then be free with a larger
//! fence; the embedded store's file has one process at a time, so the next process to open
//! it drops every lease at once (fencing off the dead one), again with a larger fence.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sallyport::state::embedded::EmbeddedStateStore;
use sallyport::state::{LeaseOutcome, StateError, StateStore};

use crate::harness::{connect_redis, delete_prefix, unique_prefix};

const LEASE: &str = "upload/crash-test";
const LEASE_TTL: Duration = Duration::from_secs(2);
const CHILD_KIND: &str = "SALLYPORT_TEST_LEASE_CHILD";
const CHILD_ARG: &str = "SALLYPORT_TEST_LEASE_CHILD_ARG";
const CHILD_TTL: &str = "SALLYPORT_TEST_LEASE_CHILD_TTL";

/// Not a test: the child process of the tests below (run only with `--ignored`).
#[tokio::test]
#[ignore = "helper process started by the cross-process lease tests"]
async fn child_lease_holder() {
    let kind = std::env::var(CHILD_KIND).expect("started by a cross-process lease test");
    let arg = std::env::var(CHILD_ARG).unwrap();
    let store: Box<dyn StateStore> = match kind.as_str() {
        "redis" => Box::new(connect_redis(&arg).await.expect("the parent reached Redis")),
        "embedded" => Box::new(EmbeddedStateStore::open(arg.as_ref()).unwrap()),
        other => panic!("unknown child kind {other}"),
    };
    let ttl = std::env::var(CHILD_TTL)
        .ok()
        .map_or(LEASE_TTL, |s| Duration::from_secs(s.parse().unwrap()));
    let LeaseOutcome::Acquired(lease) = store.lease_acquire(LEASE, ttl).await.unwrap() else {
        panic!("the child expected a free lease");
    };
    println!("ACQUIRED {}", lease.fence);
    tokio::time::sleep(Duration::from_secs(3600)).await;
}

/// A child that is killed when dropped, even if the test fails first.
struct Holder {
    child: Child,
    fence: u64,
}

impl Holder {
    fn spawn(kind: &str, arg: &str) -> Self {
        Self::spawn_for(kind, arg, LEASE_TTL)
    }

    /// A child whose lease lives `ttl`.
    fn spawn_for(kind: &str, arg: &str, ttl: Duration) -> Self {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "processes::child_lease_holder",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_KIND, kind)
            .env(CHILD_ARG, arg)
            .env(CHILD_TTL, ttl.as_secs().to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut holder = Self { child, fence: 0 };
        for line in BufReader::new(stdout).lines() {
            // libtest prints "test … ... " before the child's own output on the same line.
            if let Some((_, fence)) = line.unwrap().split_once("ACQUIRED ") {
                holder.fence = fence.trim().parse().unwrap();
                return holder;
            }
        }
        panic!("the child exited without taking the lease");
    }

    /// SIGKILL, then reap.
    fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// After the holder died: the lease is held (for at most its TTL), then free, and the new
/// acquisition's fence is larger than the dead holder's.
async fn lease_outlives_its_dead_holder(store: &dyn StateStore, dead_fence: u64) {
    match store.lease_acquire(LEASE, LEASE_TTL).await.unwrap() {
        LeaseOutcome::Held { remaining } => assert!(remaining <= LEASE_TTL, "{remaining:?}"),
        LeaseOutcome::Acquired(_) => panic!("the dead holder's lease was taken before its TTL"),
    }
    let deadline = Instant::now() + LEASE_TTL + Duration::from_secs(5);
    loop {
        match store.lease_acquire(LEASE, LEASE_TTL).await.unwrap() {
            LeaseOutcome::Acquired(lease) => {
                assert!(lease.fence > dead_fence, "{} <= {dead_fence}", lease.fence);
                assert!(store.lease_release(&lease).await.unwrap());
                return;
            }
            LeaseOutcome::Held { remaining } => {
                assert!(Instant::now() < deadline, "the lease never expired");
                tokio::time::sleep(remaining.min(Duration::from_millis(200))).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_lease_of_a_killed_process_expires() {
    let prefix = unique_prefix();
    let Some(store) = connect_redis(&prefix).await else {
        return;
    };
    let _cleanup = DeletePrefix(prefix.clone());
    let mut holder = Holder::spawn("redis", &prefix);
    // While the child lives, this process is refused.
    assert!(matches!(
        store.lease_acquire(LEASE, LEASE_TTL).await.unwrap(),
        LeaseOutcome::Held { .. }
    ));
    holder.kill();
    lease_outlives_its_dead_holder(&store, holder.fence).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_lease_of_a_killed_process_is_dropped_when_the_file_is_reopened() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    // An hour: only the reopen can free it within this test.
    let mut holder = Holder::spawn_for(
        "embedded",
        path.to_str().unwrap(),
        Duration::from_secs(3600),
    );
    // The child owns the file while it lives.
    assert!(matches!(
        EmbeddedStateStore::open(&path),
        Err(StateError::Locked(_))
    ));
    holder.kill();
    let store = EmbeddedStateStore::open(&path).unwrap();
    let LeaseOutcome::Acquired(lease) = store.lease_acquire(LEASE, LEASE_TTL).await.unwrap() else {
        panic!("the dead process's lease survived the reopen");
    };
    assert!(
        lease.fence > holder.fence,
        "{} <= {}",
        lease.fence,
        holder.fence
    );
    // Leases taken after the open are honoured as ever.
    assert!(matches!(
        store.lease_acquire(LEASE, LEASE_TTL).await.unwrap(),
        LeaseOutcome::Held { .. }
    ));
    assert!(store.lease_release(&lease).await.unwrap());
}

struct DeletePrefix(String);

impl Drop for DeletePrefix {
    fn drop(&mut self) {
        delete_prefix(&self.0);
    }
}
