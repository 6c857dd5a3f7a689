//! The Redis [`StateStore`]: the shared store when several gateway instances run behind a
//! load balancer.
//!
//! One multiplexed connection ([`ConnectionManager`], which reconnects on its own) carries
//! every command. Connecting and every command have a deadline, so an unreachable or
//! stalled Redis answers [`StateError::Unavailable`] instead of hanging a request. A
//! deadline that passes while a write is in flight leaves its outcome unknown; callers
//! treat `Unavailable` as "maybe applied" and re-read.
//!
//! Every compare-and-swap, bounded counter add, lease operation and log append is one Lua
//! script (see `scripts`), so it is atomic. Standalone or Sentinel Redis only; not Cluster.
//!
//! # Layout
//!
//! Every key starts with the store's key prefix `P` (e.g. `sallyport:`), so several
//! deployments or test runs share one Redis without meeting. `ns`, index and log names are
//! `[a-z0-9_]`; the free-form part (id, value, lease name) is always last (see `keys`).
//!
//! | key | type | holds |
//! | --- | --- | --- |
//! | `P r:<ns>:<id>` | hash | `v` bytes, `n` version, and one field `x:<index set key>` per index entry; `PEXPIRE` = the record's TTL |
//! | `P n:<ns>` | sorted set, score 0 | ids of the namespace's records (for `list`) |
//! | `P x:<ns>:<index>:<value>` | sorted set, score 0 | ids listed under that index value |
//! | `P c:<ns>:<id>` | string | counter (decimal i64) |
//! | `P l:<name>` | hash, `PEXPIRE` = TTL | `t` holder token (16 bytes), `f` fence, and for a store that has joined: `i` holder instance id, `c` its incarnation |
//! | `P lease_fence` | string | last fencing number issued, store-wide |
//! | `P a:<instance id>` | string, `PEXPIRE` = 3 s | alive key: `<incarnation>:<beat>`, rewritten every second (see `presence`) |
//! | `P e:<instance id>` | string | the instance's last incarnation number |
//! | `P g:<log>:h` | string | the log's last sequence number |
//! | `P g:<log>:e` | hash | decimal seq → entry bytes |
//!
//! * A record's hash names the index sets it is in, so a rewrite or delete removes exactly
//!   those memberships. When a record expires, Redis drops its hash but not its set
//!   memberships; `list` and `list_index` skip (and remove) members whose record is gone or
//!   no longer names that set, so an expired record is never listed. A membership of an
//!   expired record stays in its set until that set is next listed (there is no Redis
//!   sweeper yet), so a set nobody lists again keeps its stale ids.
//! * Lease fences come from one store-wide `INCR`, so they strictly increase across every
//!   acquisition of every name and survive release, with no per-name key left behind.
//! * A lease is taken over before its TTL runs out when its holder is dead: an older
//!   incarnation of the acquirer's own instance id, or a holder whose alive key lapsed
//!   (see `presence`). Renewal and release still need the holder's token and fence, so a
//!   displaced holder can neither renew nor release its successor's lease.
//! * Log entries are immutable once appended, so `log_read` reads them without a script.
//!
//! Not here: the meaning of the bytes; Redis Cluster; TLS to Redis beyond what the URL
//! scheme (`rediss://`) gives.
//!
//! Size: past ~400 lines because it implements every method of the `StateStore` trait
//! (records, indices, counters, leases, logs) and one trait impl cannot be split across
//! files; the key layout (`keys`) and the Lua scripts (`scripts`) are already apart.

use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use rand::RngCore;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ErrorKind, RedisError, ServerErrorKind};

use super::limits;
use super::{
    AppendOutcome, CasOutcome, CounterOutcome, Expect, IndexEntry, Lease, LeaseOutcome, LogEntry,
    LogName, Namespace, PutOptions, StateError, StateStore, Versioned,
};

mod keys;
mod presence;
mod scripts;

pub use presence::{ALIVE_TTL, BEAT, Joined, Presence, PresenceError};

use keys::{Keys, membership_field};
use scripts::Scripts;

/// Longest key prefix accepted.
const MAX_PREFIX_LEN: usize = 128;

/// Deadlines for talking to Redis.
#[derive(Debug, Clone, Copy)]
pub struct RedisTimeouts {
    /// For establishing the connection (each attempt, and `connect` as a whole).
    pub connect: Duration,
    /// For each command or script, from sending to the reply.
    pub command: Duration,
}

impl Default for RedisTimeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(3),
            command: Duration::from_secs(5),
        }
    }
}

/// The Redis-backed state store.
#[derive(Clone)]
pub struct RedisStateStore {
    conn: ConnectionManager,
    keys: Keys,
    scripts: std::sync::Arc<Scripts>,
    timeouts: RedisTimeouts,
    /// Who this store takes leases as, once it has [joined](Self::join); `None`: a store
    /// (a CLI command, a test) whose leases are only ever free once they expire.
    holder: Option<std::sync::Arc<presence::Holder>>,
}

impl std::fmt::Debug for RedisStateStore {
    // The URL may carry a password: only the prefix is shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStateStore")
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

impl RedisStateStore {
    /// Connects to `url` (`redis://…` or `rediss://…`) with the default deadlines; every key
    /// this store touches starts with `key_prefix`.
    pub async fn connect(url: &str, key_prefix: &str) -> Result<Self, StateError> {
        Self::connect_with(url, key_prefix, RedisTimeouts::default()).await
    }

    /// [`Self::connect`] with explicit deadlines.
    pub async fn connect_with(
        url: &str,
        key_prefix: &str,
        timeouts: RedisTimeouts,
    ) -> Result<Self, StateError> {
        if key_prefix.len() > MAX_PREFIX_LEN {
            return Err(StateError::Invalid(
                "a redis key prefix is longer than 128 bytes",
            ));
        }
        // The URL may hold a password, so the error does not repeat it.
        let client =
            redis::Client::open(url).map_err(|_| StateError::Invalid("invalid redis url"))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeouts.connect))
            .set_response_timeout(Some(timeouts.command))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(1));
        let conn = tokio::time::timeout(
            timeouts.connect,
            ConnectionManager::new_with_config(client, config),
        )
        .await
        .map_err(|_| StateError::Unavailable("redis connect timed out".into()))?
        .map_err(redis_err)?;
        Ok(Self {
            conn,
            keys: Keys::new(key_prefix),
            scripts: std::sync::Arc::new(Scripts::new()),
            timeouts,
            holder: None,
        })
    }

    /// Runs one command under the command deadline.
    async fn call<T, F, Fut>(&self, f: F) -> Result<T, StateError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        tokio::time::timeout(self.timeouts.command, f(self.conn.clone()))
            .await
            .map_err(|_| StateError::Unavailable("redis command timed out".into()))?
            .map_err(redis_err)
    }

    /// Runs the `list` script over one sorted set.
    async fn list_set(
        &self,
        set: Vec<u8>,
        record_prefix: Vec<u8>,
        field: Vec<u8>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StateError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let start = match after {
            Some(after) => [b"(".as_slice(), after.as_bytes()].concat(),
            None => b"-".to_vec(),
        };
        let ids: Vec<Vec<u8>> = self
            .call(|mut c| async move {
                self.scripts
                    .list
                    .key(set)
                    .arg(start)
                    .arg(limit)
                    .arg(record_prefix)
                    .arg(field)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        ids.into_iter()
            .map(|id| String::from_utf8(id).map_err(|_| corrupt("an id is not UTF-8")))
            .collect()
    }
}

#[async_trait]
impl StateStore for RedisStateStore {
    fn kind(&self) -> &'static str {
        "redis"
    }

    async fn ping(&self) -> Result<(), StateError> {
        let pong: String = self
            .call(|mut c| async move { redis::cmd("PING").query_async(&mut c).await })
            .await?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(corrupt("PING did not answer PONG"))
        }
    }

    async fn get(&self, ns: Namespace, id: &str) -> Result<Option<Versioned>, StateError> {
        limits::check_id(id)?;
        let key = self.keys.record(ns.as_str(), id);
        let (value, version): (Option<Vec<u8>>, Option<u64>) = self
            .call(|mut c| async move {
                redis::cmd("HMGET")
                    .arg(key)
                    .arg("v")
                    .arg("n")
                    .query_async(&mut c)
                    .await
            })
            .await?;
        match (value, version) {
            (Some(value), Some(version)) => Ok(Some(Versioned { value, version })),
            (None, None) => Ok(None),
            _ => Err(corrupt("a record lacks its value or version")),
        }
    }

    async fn put(
        &self,
        ns: Namespace,
        id: &str,
        value: &[u8],
        expect: Expect,
        options: PutOptions,
    ) -> Result<CasOutcome, StateError> {
        limits::check_id(id)?;
        let index = limits::check_index_entries(&options.index)?;
        let ttl_ms = options.ttl.map(limits::ttl_ms).transpose()?.unwrap_or(0);
        let (mode, expected) = expect_args(expect);
        let record = self.keys.record(ns.as_str(), id);
        let namespace = self.keys.namespace(ns.as_str());
        let sets: Vec<Vec<u8>> = index
            .iter()
            .map(|e| self.keys.index(ns.as_str(), e.index, &e.value))
            .collect();
        let (status, version): (i64, i64) = self
            .call(|mut c| async move {
                let mut inv = self.scripts.put.key(record);
                inv.key(namespace)
                    .arg(mode)
                    .arg(expected)
                    .arg(value)
                    .arg(ttl_ms)
                    .arg(id);
                for set in sets {
                    inv.arg(set);
                }
                inv.invoke_async(&mut c).await
            })
            .await?;
        cas_outcome(status, version)
    }

    async fn delete(
        &self,
        ns: Namespace,
        id: &str,
        expect: Expect,
    ) -> Result<CasOutcome, StateError> {
        limits::check_id(id)?;
        let (mode, expected) = expect_args(expect);
        let record = self.keys.record(ns.as_str(), id);
        let namespace = self.keys.namespace(ns.as_str());
        let (status, version): (i64, i64) = self
            .call(|mut c| async move {
                self.scripts
                    .delete
                    .key(record)
                    .key(namespace)
                    .arg(mode)
                    .arg(expected)
                    .arg(id)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        cas_outcome(status, version)
    }

    async fn list_index(
        &self,
        ns: Namespace,
        entry: &IndexEntry,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StateError> {
        limits::check_index_entry(entry)?;
        limits::check_page(limit)?;
        let set = self.keys.index(ns.as_str(), entry.index, &entry.value);
        let field = membership_field(&set);
        let prefix = self.keys.record_prefix(ns.as_str());
        self.list_set(set, prefix, field, after, limit).await
    }

    async fn list(
        &self,
        ns: Namespace,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StateError> {
        limits::check_page(limit)?;
        let set = self.keys.namespace(ns.as_str());
        let prefix = self.keys.record_prefix(ns.as_str());
        self.list_set(set, prefix, Vec::new(), after, limit).await
    }

    async fn counter_get(&self, ns: Namespace, id: &str) -> Result<i64, StateError> {
        limits::check_id(id)?;
        let key = self.keys.counter(ns.as_str(), id);
        let value: Option<String> = self
            .call(|mut c| async move { redis::cmd("GET").arg(key).query_async(&mut c).await })
            .await?;
        value.map_or(Ok(0), |v| parse_i64(&v))
    }

    async fn counter_add(
        &self,
        ns: Namespace,
        id: &str,
        delta: i64,
        limit: Option<i64>,
    ) -> Result<CounterOutcome, StateError> {
        limits::check_id(id)?;
        let key = self.keys.counter(ns.as_str(), id);
        let limit = limit.map(|l| l.to_string()).unwrap_or_default();
        let (status, value): (i64, String) = self
            .call(|mut c| async move {
                self.scripts
                    .counter_add
                    .key(key)
                    .arg(delta)
                    .arg(limit)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        match status {
            1 => Ok(CounterOutcome::Applied(parse_i64(&value)?)),
            0 => Ok(CounterOutcome::LimitReached(parse_i64(&value)?)),
            -1 => Err(StateError::Invalid("counter overflow")),
            _ => Err(corrupt("a counter is not an integer")),
        }
    }

    async fn lease_acquire(&self, name: &str, ttl: Duration) -> Result<LeaseOutcome, StateError> {
        limits::check_id(name)?;
        let ttl_ms = limits::ttl_ms(ttl)?;
        let mut token = [0u8; 16];
        rand::rng().fill_bytes(&mut token);
        let key = self.keys.lease(name);
        let fence_key = self.keys.lease_fence();
        let (holder_id, incarnation) = match &self.holder {
            Some(h) => (h.id.as_str(), h.incarnation),
            None => ("", 0),
        };
        let alive_prefix = self.keys.alive_prefix();
        let (status, n): (i64, i64) = self
            .call(|mut c| async move {
                self.scripts
                    .lease_acquire
                    .key(key)
                    .key(fence_key)
                    .arg(token.as_slice())
                    .arg(ttl_ms)
                    .arg(holder_id)
                    .arg(incarnation)
                    .arg(alive_prefix)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        let n = u64::try_from(n).map_err(|_| corrupt("negative lease number"))?;
        if status == 2 {
            tracing::info!(lease = name, "took over the lease of a dead holder");
        }
        match status {
            1 | 2 => Ok(LeaseOutcome::Acquired(Lease {
                name: name.to_owned(),
                token,
                fence: n,
            })),
            0 => Ok(LeaseOutcome::Held {
                remaining: Duration::from_millis(n),
            }),
            _ => Err(corrupt("a lease has no expiry")),
        }
    }

    async fn lease_renew(&self, lease: &Lease, ttl: Duration) -> Result<bool, StateError> {
        limits::check_id(&lease.name)?;
        let ttl_ms = limits::ttl_ms(ttl)?;
        let key = self.keys.lease(&lease.name);
        let renewed: i64 = self
            .call(|mut c| async move {
                self.scripts
                    .lease_renew
                    .key(key)
                    .arg(lease.token.as_slice())
                    .arg(lease.fence)
                    .arg(ttl_ms)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        Ok(renewed == 1)
    }

    async fn lease_release(&self, lease: &Lease) -> Result<bool, StateError> {
        limits::check_id(&lease.name)?;
        let key = self.keys.lease(&lease.name);
        let released: i64 = self
            .call(|mut c| async move {
                self.scripts
                    .lease_release
                    .key(key)
                    .arg(lease.token.as_slice())
                    .arg(lease.fence)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        Ok(released == 1)
    }

    async fn log_head(&self, log: LogName) -> Result<Option<LogEntry>, StateError> {
        limits::check_static_name(log.0)?;
        let head = self.keys.log_head(log.0);
        let entries = self.keys.log_entries(log.0);
        let (seq, bytes): (u64, Option<Vec<u8>>) = self
            .call(|mut c| async move {
                self.scripts
                    .log_head
                    .key(head)
                    .key(entries)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        log_entry(seq, bytes)
    }

    async fn log_append(
        &self,
        log: LogName,
        expected_next: u64,
        entries: &[Vec<u8>],
    ) -> Result<AppendOutcome, StateError> {
        limits::check_static_name(log.0)?;
        limits::check_append(expected_next, entries)?;
        let head = self.keys.log_head(log.0);
        let entries_key = self.keys.log_entries(log.0);
        let (status, seq, bytes): (i64, u64, Option<Vec<u8>>) = self
            .call(|mut c| async move {
                let mut inv = self.scripts.log_append.key(head);
                inv.key(entries_key).arg(expected_next);
                for entry in entries {
                    inv.arg(entry.as_slice());
                }
                inv.invoke_async(&mut c).await
            })
            .await?;
        if status == 1 {
            Ok(AppendOutcome::Appended { first: seq })
        } else {
            Ok(AppendOutcome::Conflict(log_entry(seq, bytes)?))
        }
    }

    async fn log_read(
        &self,
        log: LogName,
        from: u64,
        limit: usize,
    ) -> Result<Vec<LogEntry>, StateError> {
        limits::check_static_name(log.0)?;
        limits::check_page(limit)?;
        let from = from.max(1);
        let head_key = self.keys.log_head(log.0);
        let head: Option<u64> = self
            .call(|mut c| async move { redis::cmd("GET").arg(head_key).query_async(&mut c).await })
            .await?;
        let head = head.unwrap_or(0);
        if limit == 0 || from > head {
            return Ok(Vec::new());
        }
        // Entries up to the head were written before the head moved and never change, so
        // this second read needs no script.
        let last = head.min(from.saturating_add(limit as u64 - 1));
        let seqs: Vec<u64> = (from..=last).collect();
        let entries_key = self.keys.log_entries(log.0);
        let fields = seqs.clone();
        let values: Vec<Option<Vec<u8>>> = self
            .call(|mut c| async move {
                redis::cmd("HMGET")
                    .arg(entries_key)
                    .arg(fields)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        if values.len() != seqs.len() {
            return Err(corrupt("HMGET answered the wrong number of entries"));
        }
        seqs.into_iter()
            .zip(values)
            .map(|(seq, bytes)| {
                let bytes =
                    bytes.ok_or_else(|| corrupt("a log entry below the head is missing"))?;
                Ok(LogEntry { seq, bytes })
            })
            .collect()
    }
}

/// The `mode` and `expected version` script arguments for an [`Expect`].
fn expect_args(expect: Expect) -> (&'static str, String) {
    match expect {
        Expect::Any => ("any", String::new()),
        Expect::Absent => ("absent", String::new()),
        Expect::Version(v) => ("version", v.to_string()),
    }
}

fn cas_outcome(status: i64, version: i64) -> Result<CasOutcome, StateError> {
    let to_u64 = |v: i64| u64::try_from(v).map_err(|_| corrupt("negative record version"));
    match (status, version) {
        (1, v) => Ok(CasOutcome::Applied(to_u64(v)?)),
        (0, -1) => Ok(CasOutcome::Conflict(None)),
        (0, v) => Ok(CasOutcome::Conflict(Some(to_u64(v)?))),
        _ => Err(corrupt("unexpected script status")),
    }
}

fn log_entry(seq: u64, bytes: Option<Vec<u8>>) -> Result<Option<LogEntry>, StateError> {
    match (seq, bytes) {
        (0, _) => Ok(None),
        (seq, Some(bytes)) => Ok(Some(LogEntry { seq, bytes })),
        (_, None) => Err(corrupt("the log head has no entry")),
    }
}

fn parse_i64(s: &str) -> Result<i64, StateError> {
    s.parse()
        .map_err(|_| corrupt("a counter is not an integer"))
}

fn corrupt(what: &str) -> StateError {
    StateError::Corrupt(format!("redis store: {what}"))
}

/// Maps a Redis error: data that cannot be read is `Corrupt`; everything else (I/O,
/// timeouts, a loading or read-only server, out of memory, auth) is `Unavailable`, the
/// fail-closed answer where retrying may help.
fn redis_err(e: RedisError) -> StateError {
    let unreadable = matches!(e.kind(), ErrorKind::Parse | ErrorKind::UnexpectedReturnType)
        || e.code() == Some("WRONGTYPE");
    if unreadable {
        StateError::Corrupt(format!("redis store: {e}"))
    } else if e.kind() == ErrorKind::Server(ServerErrorKind::NoPerm) {
        StateError::Unavailable(format!("redis refused a command (ACL): {e}"))
    } else {
        StateError::Unavailable(format!("redis: {e}"))
    }
}
