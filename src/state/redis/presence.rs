//! Presence on Redis: which gateway instances are alive, so that a crashed instance's upload
//! leases are taken over at once instead of blocking its clients until the lease TTL runs
//! out (a killed gateway cannot release anything; tus-js-client gives up after ~9 s).
//!
//! Each gateway has a stable [`InstanceId`] (see `state::instance`). Joining does three
//! things:
//!
//! 1. **Refuses a duplicate.** If `P a:<id>` (the alive key) exists, another process with
//!    this id may be running. Its heartbeat rewrites the key's value every [`BEAT`], so the
//!    joiner watches the value: a change means a live twin, and joining fails with
//!    [`PresenceError::Duplicate`]; the key lapsing (within [`ALIVE_TTL`]) means the holder
//!    is dead (a crash), and joining goes on. A clean shutdown deletes the key, so a
//!    restart after one joins without waiting.
//! 2. **Starts a new incarnation.** `INCR P e:<id>` gives this process a number larger than
//!    any earlier process with the same id had; the alive key is then claimed (`SET NX`)
//!    with the value `<incarnation>:<beat>`, in one script, so two joiners racing cannot
//!    both win.
//! 3. **Beats.** A background task rewrites the alive key with a new beat number and a
//!    fresh [`ALIVE_TTL`] every [`BEAT`], only while it still names this incarnation.
//!
//! Leases taken by a store that has joined carry the holder's id and incarnation (fields
//! `i`, `c` of the lease hash; see the lease-acquire script in `scripts`). An acquirer may
//! take over at once a lease held by an older incarnation of its own id (a restarted
//! gateway reclaims its dead predecessor's leases), or by a holder whose alive key no longer
//! names that holder's incarnation (its process died, or lost Redis for longer than
//! [`ALIVE_TTL`]); the old holder's renewals then fail, so it stops writing. A lease of a
//! live other instance is still refused.
//!
//! Not here: where the id comes from (`state::instance`), lease renewal (`upload::lease`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::{RedisStateStore, corrupt};
use crate::state::StateError;
use crate::state::instance::InstanceId;

/// How long an alive key lives without a beat: a dead instance's leases become takeable
/// this long after its last beat at most.
pub const ALIVE_TTL: Duration = Duration::from_secs(3);

/// How often a live instance renews its alive key (three beats per [`ALIVE_TTL`], so two
/// late beats in a row are survived).
pub const BEAT: Duration = Duration::from_secs(1);

/// How often a joiner looks at an existing alive key.
const WATCH_POLL: Duration = Duration::from_millis(100);

/// Why joining failed.
#[derive(Debug, thiserror::Error)]
pub enum PresenceError {
    /// Another live gateway uses this instance id.
    #[error(
        "another gateway with instance id {id} is running on this state store (its heartbeat was renewed while this one watched it for {watched:?}); stop it first, or give this gateway its own `server.instance_id` (or its own data directory, whose `instance-id` file names it)"
    )]
    Duplicate {
        /// The contested id.
        id: InstanceId,
        /// How long the joiner watched before deciding.
        watched: Duration,
    },
    /// The store failed.
    #[error(transparent)]
    State(#[from] StateError),
}

/// Who holds a lease: the identity a joined store writes into the leases it takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Holder {
    pub(super) id: InstanceId,
    pub(super) incarnation: u64,
}

/// This process's membership; [`Presence::leave`] on clean shutdown. Dropping it stops the
/// heartbeat (the alive key then lapses after [`ALIVE_TTL`]).
#[derive(Debug)]
pub struct Presence {
    store: RedisStateStore,
    holder: Holder,
    displaced: Arc<AtomicBool>,
    heartbeat: tokio::task::JoinHandle<()>,
}

/// What joining found, for the start-up log.
#[derive(Debug, Clone, Copy)]
pub struct Joined {
    /// This process's incarnation of its instance id (1 for the first ever).
    pub incarnation: u64,
    /// How long a predecessor's alive key was watched before it lapsed (zero after a clean
    /// stop or on a first start).
    pub waited: Duration,
}

impl RedisStateStore {
    /// Joins as instance `id`: refuses while another live process has that id, starts a
    /// new incarnation and its heartbeat (a tokio task, so this needs a runtime), and
    /// returns the store that takes leases as this incarnation, with the membership.
    pub async fn join(
        self,
        id: InstanceId,
    ) -> Result<(RedisStateStore, Presence, Joined), PresenceError> {
        let started = Instant::now();
        let alive_key = self.keys.alive(id.as_str());
        let epoch_key = self.keys.epoch(id.as_str());
        let ttl_ms = ALIVE_TTL.as_millis() as u64;
        let mut first_seen: Option<Vec<u8>> = None;
        let this = &self;
        let incarnation = loop {
            let (status, value): (i64, Vec<u8>) = this
                .call(|mut c| {
                    let (alive_key, epoch_key) = (alive_key.clone(), epoch_key.clone());
                    async move {
                        this.scripts
                            .presence_claim
                            .key(alive_key)
                            .key(epoch_key)
                            .arg(ttl_ms)
                            .invoke_async(&mut c)
                            .await
                    }
                })
                .await?;
            if status == 1 {
                let n = std::str::from_utf8(&value)
                    .ok()
                    .and_then(|v| v.parse::<u64>().ok())
                    .ok_or_else(|| corrupt("an incarnation is not a number"))?;
                break n;
            }
            // Someone's alive key is there: a live twin beats (changes the value); a dead
            // one's key lapses. A value unchanged past a whole TTL can only be a live twin
            // that beat with the same value, which ours never do: refuse too.
            let watched = started.elapsed();
            match &first_seen {
                None => first_seen = Some(value),
                Some(seen) if *seen != value => {
                    return Err(PresenceError::Duplicate { id, watched });
                }
                Some(_) if watched > ALIVE_TTL + BEAT => {
                    return Err(PresenceError::Duplicate { id, watched });
                }
                Some(_) => {}
            }
            tokio::time::sleep(WATCH_POLL).await;
        };
        let waited = if first_seen.is_some() {
            started.elapsed()
        } else {
            Duration::ZERO
        };
        let holder = Holder { id, incarnation };
        let displaced = Arc::new(AtomicBool::new(false));
        let heartbeat = tokio::spawn(beat(self.clone(), holder.clone(), displaced.clone()));
        let mut joined_store = self.clone();
        joined_store.holder = Some(Arc::new(holder.clone()));
        let presence = Presence {
            store: self,
            holder,
            displaced,
            heartbeat,
        };
        Ok((
            joined_store,
            presence,
            Joined {
                incarnation,
                waited,
            },
        ))
    }
}

impl Presence {
    /// This process's instance id.
    pub fn instance_id(&self) -> &InstanceId {
        &self.holder.id
    }

    /// This process's incarnation.
    pub fn incarnation(&self) -> u64 {
        self.holder.incarnation
    }

    /// Whether a newer incarnation of this instance id has claimed the alive key (this
    /// process's heartbeat was late by more than [`ALIVE_TTL`] and a restart took over).
    pub fn is_displaced(&self) -> bool {
        self.displaced.load(Ordering::SeqCst)
    }

    /// Leaves on clean shutdown: stops the heartbeat and deletes the alive key (if it still
    /// names this incarnation), so a restart joins at once. Leases still held lapse by
    /// their TTL, or are taken over by the restart.
    pub async fn leave(self) -> Result<(), StateError> {
        self.heartbeat.abort();
        let key = self.store.keys.alive(self.holder.id.as_str());
        let prefix = incarnation_prefix(self.holder.incarnation);
        let store = &self.store;
        let _: i64 = store
            .call(|mut c| async move {
                store
                    .scripts
                    .presence_leave
                    .key(key)
                    .arg(prefix)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        Ok(())
    }
}

impl Drop for Presence {
    fn drop(&mut self) {
        self.heartbeat.abort();
    }
}

/// `<incarnation>:`, what every alive value of that incarnation starts with.
pub(super) fn incarnation_prefix(incarnation: u64) -> String {
    format!("{incarnation}:")
}

/// Rewrites the alive key every [`BEAT`] while it still names `holder`'s incarnation.
async fn beat(store: RedisStateStore, holder: Holder, displaced: Arc<AtomicBool>) {
    let key = store.keys.alive(holder.id.as_str());
    let prefix = incarnation_prefix(holder.incarnation);
    let ttl_ms = ALIVE_TTL.as_millis() as u64;
    let mut tick = tokio::time::interval(BEAT);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let mut n: u64 = 0;
    loop {
        tick.tick().await;
        n = n.wrapping_add(1);
        let value = format!("{prefix}{n}");
        let (key, prefix_arg) = (key.clone(), prefix.clone());
        let s = &store;
        let renewed: Result<i64, StateError> = s
            .call(|mut c| async move {
                s.scripts
                    .presence_beat
                    .key(key)
                    .arg(prefix_arg)
                    .arg(value)
                    .arg(ttl_ms)
                    .invoke_async(&mut c)
                    .await
            })
            .await;
        match renewed {
            Ok(1) => {}
            Ok(_) => {
                if !displaced.swap(true, Ordering::SeqCst) {
                    tracing::error!(
                        instance_id = %holder.id,
                        incarnation = holder.incarnation,
                        "a newer process with this instance id has taken over; this one's leases are no longer safe — stop it"
                    );
                }
            }
            Err(e) => tracing::warn!(error = %e, "presence heartbeat failed"),
        }
    }
}
