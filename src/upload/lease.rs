//! The one-writer-per-upload lease: taken from the state store (so it holds across gateway
//! instances), renewed in the background while a request works, released on drop. A holder
//! that dies stops renewing and the lease expires after its TTL.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;

use crate::state::{Lease, LeaseOutcome, StateError, StateStore};

/// A held lease. Dropping it stops renewal and releases the lease in the background.
#[derive(Debug)]
pub struct LeaseGuard {
    lease: Option<Lease>,
    store: Arc<dyn StateStore>,
    lost: Arc<AtomicBool>,
    renewer: tokio::task::JoinHandle<()>,
    /// Work that must have stopped before the lease is released (see [`LeaseGuard::hold_until`]).
    holds: Mutex<Vec<oneshot::Receiver<()>>>,
}

/// The outcome of trying to take a lease.
#[derive(Debug)]
pub enum Acquired {
    /// Taken.
    Held(LeaseGuard),
    /// Someone else holds it for about this long.
    Busy(Duration),
}

impl LeaseGuard {
    /// Takes `name` for `ttl`, renewing every `ttl / 3` until dropped.
    pub async fn acquire(
        store: Arc<dyn StateStore>,
        name: String,
        ttl: Duration,
    ) -> Result<Acquired, StateError> {
        let lease = match store.lease_acquire(&name, ttl).await? {
            LeaseOutcome::Acquired(l) => l,
            LeaseOutcome::Held { remaining } => return Ok(Acquired::Busy(remaining)),
        };
        let lost = Arc::new(AtomicBool::new(false));
        let renewer = {
            let store = store.clone();
            let lease = lease.clone();
            let lost = lost.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(ttl / 3);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    match store.lease_renew(&lease, ttl).await {
                        Ok(true) => {}
                        Ok(false) | Err(_) => {
                            lost.store(true, Ordering::SeqCst);
                            tracing::warn!(lease = %lease.name, "upload lease lost");
                            return;
                        }
                    }
                }
            })
        };
        Ok(Acquired::Held(LeaseGuard {
            lease: Some(lease),
            store,
            lost,
            renewer,
            holds: Mutex::new(Vec::new()),
        }))
    }

    /// Whether renewal failed (another writer may now hold the upload): stop writing.
    pub fn is_lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    /// Keeps the lease held, even once this guard is dropped, until `signal` resolves
    /// (its sender sends or is dropped).
    ///
    /// Why: a request that is cancelled drops its guard at once, but a writer thread it
    /// started may still be finishing the append under way. Releasing then would let the
    /// client's next PATCH reopen (and recover, truncate, append to) the object while that
    /// append lands. The release waits for the thread instead.
    pub fn hold_until(&self, signal: oneshot::Receiver<()>) {
        match self.holds.lock() {
            Ok(mut holds) => holds.push(signal),
            // Poisoned only if a push panicked (allocation); the list is still whole.
            Err(mut poisoned) => poisoned.get_mut().push(signal),
        }
    }

    /// Releases the lease now (before the response goes out, so the client's next
    /// request finds it free), after whatever it was told to [hold for](Self::hold_until).
    pub async fn release(mut self) {
        // Renewal goes on while the held work finishes.
        wait_for(self.take_holds()).await;
        self.renewer.abort();
        if let Some(lease) = self.lease.take() {
            let _ = self.store.lease_release(&lease).await;
        }
    }

    /// The fencing number of this acquisition.
    pub fn fence(&self) -> u64 {
        self.lease.as_ref().map_or(0, |l| l.fence)
    }
}

impl LeaseGuard {
    fn take_holds(&mut self) -> Vec<oneshot::Receiver<()>> {
        match self.holds.get_mut() {
            Ok(holds) => std::mem::take(holds),
            Err(poisoned) => std::mem::take(poisoned.into_inner()),
        }
    }
}

async fn wait_for(holds: Vec<oneshot::Receiver<()>>) {
    for signal in holds {
        // `Err` (the sender was dropped) means the same as a send: the work is over.
        let _ = signal.await;
    }
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        let renewer = self.renewer.abort_handle();
        let holds = self.take_holds();
        let (Some(lease), Ok(runtime)) = (self.lease.take(), tokio::runtime::Handle::try_current())
        else {
            renewer.abort();
            return;
        };
        let store = self.store.clone();
        // Release promptly so the client's next request is not refused, but only once the
        // held work is over (renewal goes on until then); if this fails the lease simply
        // expires.
        runtime.spawn(async move {
            wait_for(holds).await;
            renewer.abort();
            let _ = store.lease_release(&lease).await;
        });
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::state::embedded::EmbeddedStateStore;

    async fn take(store: &Arc<dyn StateStore>) -> Acquired {
        LeaseGuard::acquire(store.clone(), "upload/u1".into(), Duration::from_secs(30))
            .await
            .unwrap()
    }

    /// A store in `dir`, a lease held in it, and the sender of a hold on that lease.
    async fn held(
        dir: &tempfile::TempDir,
    ) -> (Arc<dyn StateStore>, LeaseGuard, oneshot::Sender<()>) {
        let store: Arc<dyn StateStore> =
            Arc::new(EmbeddedStateStore::open(&dir.path().join("state.redb")).unwrap());
        let Acquired::Held(guard) = take(&store).await else {
            panic!("a free lease is taken");
        };
        let (work_done, signal) = oneshot::channel::<()>();
        guard.hold_until(signal);
        (store, guard, work_done)
    }

    #[tokio::test]
    async fn a_dropped_guard_keeps_the_lease_until_its_held_work_is_over() {
        let dir = tempfile::tempdir().unwrap();
        let (store, guard, work_done) = held(&dir).await;
        drop(guard);
        // The cancelled request's writer is still busy: nobody else gets in.
        for _ in 0..5 {
            tokio::task::yield_now().await;
        }
        assert!(matches!(take(&store).await, Acquired::Busy(_)));
        drop(work_done);
        let mut next = None;
        for _ in 0..200 {
            if let Acquired::Held(g) = take(&store).await {
                next = Some(g);
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(next.is_some(), "released once the work was over");
    }

    #[tokio::test]
    async fn release_waits_for_held_work() {
        let dir = tempfile::tempdir().unwrap();
        let (store, guard, work_done) = held(&dir).await;
        let releasing = tokio::spawn(guard.release());
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!releasing.is_finished());
        assert!(matches!(take(&store).await, Acquired::Busy(_)));
        work_done.send(()).unwrap();
        releasing.await.unwrap();
        assert!(matches!(take(&store).await, Acquired::Held(_)));
    }
}
