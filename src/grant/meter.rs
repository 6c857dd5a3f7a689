//! Download metering: atomic byte counters that enforce a grant's limits across instances.
//!
//! The rule (normative in `proto/grants-v1.md` §Metering):
//!
//! * A grant with `max_downloads = N` may deliver at most `N × max(L, 1)` bytes of an
//!   artifact of length `L` (counter `{grant}.{artifact}`); with `max_bytes = B`, at most
//!   `B` bytes across all its artifacts (counter `{grant}`). A "completed full download" is
//!   therefore `L` delivered bytes, however they were split into ranges: a resumed download
//!   (`curl -C -`) or four parallel range requests that together cover the file spend
//!   exactly one download; overlapping re-fetches spend more.
//! * Before any byte of a GET is sent, the whole response's length is **reserved** with a
//!   bounded atomic add (`counter_add(.., limit)`): it succeeds only if the counter stays
//!   within the limit, so two instances can never both spend the last allowance. A request
//!   that does not fit entirely in what is left is refused; it is never partly served.
//! * A GET is charged `max(bytes, 1)`, so downloads of an empty artifact count too.
//! * When the client disconnects early, the bytes not handed to the connection are
//!   **refunded** (a negative add). Bytes handed to the connection may still have been in
//!   TLS and socket buffers when it died, so the client never got them; to let such a
//!   download resume through a one-download link, the last [`IN_FLIGHT_ALLOWANCE`] bytes
//!   handed over are **forgiven** (refunded too) — at most [`FORGIVENESS_PER_GRANT`] bytes
//!   over the grant's life, and never more than the artifact's own length (counter
//!   `{grant}.forgiven`), so repeated aborts cannot be turned into free downloads: a
//!   one-download link of a 4 KiB file yields at most one extra copy, not 8,192. A crash between reserve and refund loses the
//!   reservation: the error is always in the publisher's favour, never the partner's.
//! * HEAD spends nothing but is refused once a limit is spent.
//!
//! * Every counter write is [`StateStore::counter_add_deferred`]: as atomic and bounded as a
//!   durable add, but on the embedded store its fsync rides on the next durable write. The
//!   download handler writes the download's audit entry durably after reserving and
//!   before the first byte, so a reservation is durable before anything is served (a
//!   crash before that loses a reservation for bytes never sent). Refunds and forgiveness
//!   are followed by their `download.aborted` entry; one lost in a crash leaves the
//!   allowance smaller, in the publisher's favour as before. One fsync per download instead of two or
//!   three, and that one is shared by every download in the audit's group commit. (With
//!   `links.danger_queued_download_audit`, neither the entry nor the reservation is durable
//!   before the bytes: that switch trades both.)
//!
//! Grants without limits touch no counter: their downloads are still audited byte for byte.
//!
//! Not here: deciding what a request's byte count is (the download handler plans ranges).

use std::sync::Arc;

use crate::signed_link::{ArtifactId, GrantId};
use crate::state::{CounterOutcome, Namespace, StateError, StateStore};

use super::record::Limits;

/// The counters' namespace.
pub const METER_NAMESPACE: Namespace = Namespace::new("grant_meter");
/// Bytes handed to a connection that an abort forgives (what TLS and socket buffers can
/// hold in flight).
pub const IN_FLIGHT_ALLOWANCE: u64 = 8 << 20;
/// Most bytes forgiven over one grant's life.
pub const FORGIVENESS_PER_GRANT: u64 = 32 << 20;

/// The limits that apply to one (grant, artifact) pair, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    grant: GrantId,
    artifact: ArtifactId,
    /// `max_downloads × max(len, 1)`, for the `{grant}.{artifact}` counter.
    per_artifact: Option<i64>,
    /// `max_bytes`, for the `{grant}` counter.
    per_grant: Option<i64>,
    /// Most bytes forgiven over the grant's life when downloading this artifact:
    /// `min(FORGIVENESS_PER_GRANT, max(len, 1))`.
    forgiveness: i64,
}

impl Budget {
    /// The budget of `grant` for `artifact` of `len` bytes under `limits`.
    pub fn new(grant: GrantId, artifact: ArtifactId, limits: &Limits, len: u64) -> Self {
        let clamp = |v: u128| i64::try_from(v).unwrap_or(i64::MAX);
        Self {
            grant,
            artifact,
            per_artifact: limits
                .max_downloads
                .map(|n| clamp(u128::from(n) * u128::from(len.max(1)))),
            per_grant: limits.max_bytes.map(|b| clamp(u128::from(b))),
            forgiveness: clamp(u128::from(FORGIVENESS_PER_GRANT.min(len.max(1)))),
        }
    }

    /// Whether any limit applies.
    pub fn is_limited(&self) -> bool {
        self.per_artifact.is_some() || self.per_grant.is_some()
    }

    fn artifact_counter(&self) -> String {
        format!("{}.{}", self.grant, self.artifact)
    }

    fn grant_counter(&self) -> String {
        self.grant.to_string()
    }
}

/// A successful reservation: what to refund if the transfer is cut short.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    budget: Budget,
    /// Bytes reserved (the charge).
    pub charged: u64,
}

/// The result of a reservation attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reserve {
    /// Reserved (or nothing to meter).
    Granted(Option<Reservation>),
    /// The request does not fit in what is left.
    Exhausted,
}

/// How much of a grant's allowance is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// Bytes counted against `max_downloads` for this artifact.
    pub artifact_bytes: i64,
    /// Bytes counted against `max_bytes`.
    pub grant_bytes: i64,
}

/// The meters, over the state store.
#[derive(Debug, Clone)]
pub struct Meter {
    state: Arc<dyn StateStore>,
}

impl Meter {
    /// Meters in `state`.
    pub fn new(state: Arc<dyn StateStore>) -> Self {
        Self { state }
    }

    /// Reserves `charge` bytes (at least 1) before a GET is served.
    pub async fn reserve(&self, budget: &Budget, charge: u64) -> Result<Reserve, StateError> {
        if !budget.is_limited() {
            return Ok(Reserve::Granted(None));
        }
        let n = i64::try_from(charge.max(1)).map_err(|_| StateError::Invalid("charge"))?;
        let mut applied_artifact = false;
        if let Some(limit) = budget.per_artifact {
            match self
                .state
                .counter_add_deferred(METER_NAMESPACE, &budget.artifact_counter(), n, Some(limit))
                .await?
            {
                CounterOutcome::Applied(_) => applied_artifact = true,
                CounterOutcome::LimitReached(_) => return Ok(Reserve::Exhausted),
            }
        }
        if let Some(limit) = budget.per_grant {
            let outcome = self
                .state
                .counter_add_deferred(METER_NAMESPACE, &budget.grant_counter(), n, Some(limit))
                .await;
            let refused = !matches!(outcome, Ok(CounterOutcome::Applied(_)));
            if refused && applied_artifact {
                // Undo the first add; if this fails too the error is in the publisher's
                // favour (the allowance shrinks), never the partner's.
                let _ = self
                    .state
                    .counter_add_deferred(METER_NAMESPACE, &budget.artifact_counter(), -n, None)
                    .await;
            }
            if let CounterOutcome::LimitReached(_) = outcome? {
                return Ok(Reserve::Exhausted);
            }
        }
        Ok(Reserve::Granted(Some(Reservation {
            budget: *budget,
            charged: n as u64,
        })))
    }

    /// Gives back `bytes` of a reservation that were not delivered.
    pub async fn refund(&self, reservation: &Reservation, bytes: u64) -> Result<(), StateError> {
        let n = i64::try_from(bytes.min(reservation.charged)).unwrap_or(0);
        if n == 0 {
            return Ok(());
        }
        self.give_back(&reservation.budget, n).await
    }

    /// After an abort with `delivered` bytes handed to the connection: forgives up to
    /// [`IN_FLIGHT_ALLOWANCE`] of them within the grant's [`FORGIVENESS_PER_GRANT`]. Returns
    /// the bytes forgiven (and refunded).
    pub async fn forgive(
        &self,
        reservation: &Reservation,
        delivered: u64,
    ) -> Result<u64, StateError> {
        let want = delivered.min(IN_FLIGHT_ALLOWANCE).min(reservation.charged);
        if want == 0 {
            return Ok(0);
        }
        let id = format!("{}.forgiven", reservation.budget.grant);
        let limit = reservation.budget.forgiveness;
        let current = self.state.counter_get(METER_NAMESPACE, &id).await?;
        let n = (want as i64).min(limit - current.min(limit));
        if n <= 0 {
            return Ok(0);
        }
        match self
            .state
            .counter_add_deferred(METER_NAMESPACE, &id, n, Some(limit))
            .await?
        {
            CounterOutcome::Applied(_) => {}
            // Another abort took the rest meanwhile; forgive nothing rather than loop.
            CounterOutcome::LimitReached(_) => return Ok(0),
        }
        self.give_back(&reservation.budget, n).await?;
        Ok(n as u64)
    }

    /// Whether every byte of the budget is spent (HEAD is refused then).
    pub async fn is_exhausted(&self, budget: &Budget) -> Result<bool, StateError> {
        let usage = self.usage(budget).await?;
        Ok(budget
            .per_artifact
            .is_some_and(|l| usage.artifact_bytes >= l)
            || budget.per_grant.is_some_and(|l| usage.grant_bytes >= l))
    }

    /// The counters' current values (0 for limits that are not set).
    pub async fn usage(&self, budget: &Budget) -> Result<Usage, StateError> {
        let mut usage = Usage::default();
        if budget.per_artifact.is_some() {
            usage.artifact_bytes = self
                .state
                .counter_get(METER_NAMESPACE, &budget.artifact_counter())
                .await?;
        }
        if budget.per_grant.is_some() {
            usage.grant_bytes = self
                .state
                .counter_get(METER_NAMESPACE, &budget.grant_counter())
                .await?;
        }
        Ok(usage)
    }

    /// Subtracts `n` (> 0) from every counter the budget limits: what both a refund and
    /// forgiveness give back. Unbounded, so it cannot be refused; a failure leaves the
    /// allowance smaller, in the publisher's favour.
    async fn give_back(&self, budget: &Budget, n: i64) -> Result<(), StateError> {
        if budget.per_artifact.is_some() {
            self.state
                .counter_add_deferred(METER_NAMESPACE, &budget.artifact_counter(), -n, None)
                .await?;
        }
        if budget.per_grant.is_some() {
            self.state
                .counter_add_deferred(METER_NAMESPACE, &budget.grant_counter(), -n, None)
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::embedded::EmbeddedStateStore;

    fn meter() -> (Meter, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStateStore::open(&dir.path().join("s.redb")).unwrap();
        (Meter::new(Arc::new(store)), dir)
    }

    fn ids() -> (GrantId, ArtifactId) {
        (GrantId::random(), ArtifactId::random())
    }

    #[tokio::test]
    async fn ranges_that_cover_the_file_spend_one_download() {
        let (m, _d) = meter();
        let (g, a) = ids();
        let limits = Limits {
            max_downloads: Some(1),
            max_bytes: None,
        };
        let b = Budget::new(g, a, &limits, 1000);
        for _ in 0..4 {
            assert!(matches!(
                m.reserve(&b, 250).await.unwrap(),
                Reserve::Granted(Some(_))
            ));
        }
        assert!(m.is_exhausted(&b).await.unwrap());
        assert_eq!(m.reserve(&b, 1).await.unwrap(), Reserve::Exhausted);
    }

    #[tokio::test]
    async fn concurrent_reservations_never_overspend() {
        let (m, _d) = meter();
        let (g, a) = ids();
        let limits = Limits {
            max_downloads: Some(2),
            max_bytes: None,
        };
        let b = Budget::new(g, a, &limits, 100);
        let tasks: Vec<_> = (0..10)
            .map(|_| {
                let m = m.clone();
                tokio::spawn(async move { m.reserve(&b, 100).await.unwrap() })
            })
            .collect();
        let mut granted = 0;
        for t in tasks {
            if matches!(t.await.unwrap(), Reserve::Granted(_)) {
                granted += 1;
            }
        }
        assert_eq!(granted, 2);
        assert_eq!(m.usage(&b).await.unwrap().artifact_bytes, 200);
    }

    #[tokio::test]
    async fn refunds_forgiveness_and_both_limits() {
        let (m, _d) = meter();
        let (g, a) = ids();
        let limits = Limits {
            max_downloads: Some(1),
            max_bytes: Some(150),
        };
        let b = Budget::new(g, a, &limits, 100);
        let Reserve::Granted(Some(r)) = m.reserve(&b, 100).await.unwrap() else {
            panic!("granted");
        };
        // 60 delivered, 40 refunded, and the 60 in flight forgiven.
        m.refund(&r, 40).await.unwrap();
        assert_eq!(m.forgive(&r, 60).await.unwrap(), 60);
        assert_eq!(m.usage(&b).await.unwrap(), Usage::default());
        // The grant-level cap refuses and undoes the artifact-level add.
        let other = Budget::new(g, ArtifactId::random(), &limits, 1000);
        assert!(matches!(
            m.reserve(&other, 150).await.unwrap(),
            Reserve::Granted(_)
        ));
        assert_eq!(m.reserve(&b, 1).await.unwrap(), Reserve::Exhausted);
        assert_eq!(m.usage(&b).await.unwrap().artifact_bytes, 0);
        // Unlimited grants touch nothing.
        let free = Budget::new(g, a, &Limits::default(), 100);
        assert_eq!(m.reserve(&free, 100).await.unwrap(), Reserve::Granted(None));
    }

    #[tokio::test]
    async fn forgiveness_is_bounded_per_grant() {
        let (m, _d) = meter();
        let (g, a) = ids();
        let limits = Limits {
            max_downloads: Some(100),
            max_bytes: None,
        };
        let b = Budget::new(g, a, &limits, 1 << 30);
        let mut total = 0;
        for _ in 0..6 {
            let Reserve::Granted(Some(r)) = m.reserve(&b, 1 << 30).await.unwrap() else {
                panic!("granted");
            };
            total += m.forgive(&r, 1 << 30).await.unwrap();
        }
        assert_eq!(total, FORGIVENESS_PER_GRANT);
    }

    #[tokio::test]
    async fn forgiveness_never_exceeds_the_artifacts_length() {
        let (m, _d) = meter();
        let (g, a) = ids();
        let one = Limits {
            max_downloads: Some(1),
            max_bytes: None,
        };
        let b = Budget::new(g, a, &one, 4096);
        // A client that takes every byte and aborts, again and again: one abort is
        // forgiven (the bytes may have died in buffers), the second is not.
        let mut served = 0;
        let mut forgiven = 0;
        for _ in 0..10 {
            let Reserve::Granted(Some(r)) = m.reserve(&b, 4096).await.unwrap() else {
                break;
            };
            served += 1;
            forgiven += m.forgive(&r, 4096).await.unwrap();
        }
        assert_eq!((served, forgiven), (2, 4096));
        assert_eq!(m.reserve(&b, 1).await.unwrap(), Reserve::Exhausted);
    }

    #[tokio::test]
    async fn refund_and_forgiveness_give_back_only_the_limited_counters() {
        let (m, _d) = meter();
        let (g, a) = ids();
        // A byte cap only: the `{grant}` counter is charged, the per-artifact one is not.
        let limits = Limits {
            max_downloads: None,
            max_bytes: Some(1000),
        };
        let b = Budget::new(g, a, &limits, 400);
        let Reserve::Granted(Some(r)) = m.reserve(&b, 400).await.unwrap() else {
            panic!("granted");
        };
        assert_eq!(m.usage(&b).await.unwrap().grant_bytes, 400);
        m.refund(&r, 100).await.unwrap();
        assert_eq!(m.usage(&b).await.unwrap().grant_bytes, 300);
        assert_eq!(m.forgive(&r, 300).await.unwrap(), 300);
        assert_eq!(m.usage(&b).await.unwrap(), Usage::default());
        // Nothing was written to the counter of a limit the grant does not have.
        let raw = m
            .state
            .counter_get(METER_NAMESPACE, &b.artifact_counter())
            .await
            .unwrap();
        assert_eq!(raw, 0);
        assert_eq!(
            m.state
                .counter_get(METER_NAMESPACE, &format!("{g}.forgiven"))
                .await
                .unwrap(),
            300
        );
    }

    #[test]
    fn empty_artifacts_count_one_byte_per_download() {
        let (g, a) = ids();
        let limits = Limits {
            max_downloads: Some(3),
            max_bytes: None,
        };
        assert_eq!(Budget::new(g, a, &limits, 0).per_artifact, Some(3));
        let huge = Limits {
            max_downloads: Some(u32::MAX),
            max_bytes: Some(u64::MAX),
        };
        let b = Budget::new(g, a, &huge, u64::MAX);
        assert_eq!(
            (b.per_artifact, b.per_grant),
            (Some(i64::MAX), Some(i64::MAX))
        );
    }
}
