//! The one-writer-per-upload lease: taken from the state store (so it holds across gateway
//! instances), renewed in the background while a request works, released on drop. A holder
//! that dies stops renewing and the lease expires after its TTL.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::state::{Lease, LeaseOutcome, StateError, StateStore};

/// A held lease. Dropping it stops renewal and releases the lease in the background.
#[derive(Debug)]
pub struct LeaseGuard {
    lease: Option<Lease>,
    store: Arc<dyn StateStore>,
    lost: Arc<AtomicBool>,
    renewer: tokio::task::JoinHandle<()>,
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
        }))
    }

    /// Whether renewal failed (another writer may now hold the upload): stop writing.
    pub fn is_lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    /// Releases the lease now (before the response goes out, so the client's next
    /// request finds it free).
    pub async fn release(mut self) {
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

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        self.renewer.abort();
        if let Some(lease) = self.lease.take() {
            let store = self.store.clone();
            // Release promptly so the client's next request is not refused; if this
            // fails the lease simply expires.
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                handle.spawn(async move {
                    let _ = store.lease_release(&lease).await;
                });
            }
        }
    }
}
