//! The `StateStore` port: every piece of shared, mutable gateway state goes through it.
//!
//! Upload records, chunk ledgers, upload locks, grants and revocations, wrapped data keys,
//! batch records, replay caches and the audit chain's sequence all live behind this one
//! trait, so a single gateway runs on the embedded store (redb in its data directory, the
//! default) and several gateways behind a load balancer share the Redis store.
//!
//! The trait offers a handful of primitives, each with one precise meaning that both
//! implementations must honour (the conformance suite in `tests/state_store.rs` runs
//! against both, and against the in-memory store the tests use, [`memory::MemoryStore`]):
//!
//! * **records**: opaque bytes under `(namespace, id)`, each with a version that starts at 1
//!   and grows by one on every write; writes are compare-and-swap against an [`Expect`];
//!   a record may carry a TTL after which it is gone, and secondary-index entries
//!   (by owner, by batch, …) that [`StateStore::list_index`] lists;
//! * **counters**: atomic signed 64-bit adds, optionally refused when they would pass a
//!   limit (so two instances can never both spend the last download allowance);
//! * **leases**: a named exclusive claim with a TTL; renewed or released only by its
//!   holder's token; a holder that dies simply stops renewing and the lease expires.
//!   Every successful acquire carries a fencing number larger than any before it;
//! * **logs**: gapless append-only sequences (the audit chain). An append names the
//!   sequence number it expects to write next and fails with the current head when another
//!   writer got there first, so callers can chain each entry to its predecessor's hash.
//!
//! Not here: what the bytes mean (each domain module owns its own record encoding), and
//! anything HTTP. Errors are storage errors only; the edge decides what a client sees.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;

pub mod embedded;
pub mod instance;
mod limits;
pub mod memory;
pub mod redis;

/// A record namespace: a static, lowercase name chosen by the module that owns the records
/// (`"upload"`, `"grant"`, `"dek"`…). Never built from client input.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Namespace(&'static str);

impl Namespace {
    /// A namespace. `name` must be 1–32 characters of `[a-z0-9_]`; the constructor is
    /// `const` so a bad name fails the build of the module that declares it.
    pub const fn new(name: &'static str) -> Self {
        let bytes = name.as_bytes();
        assert!(!bytes.is_empty() && bytes.len() <= 32, "namespace length");
        let mut i = 0;
        while i < bytes.len() {
            let c = bytes[i];
            assert!(
                c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_',
                "namespace characters"
            );
            i += 1;
        }
        Self(name)
    }

    /// The namespace's name.
    pub const fn as_str(&self) -> &'static str {
        self.0
    }
}

impl fmt::Debug for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Namespace({})", self.0)
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// A record as stored: its bytes and its version (1 after the first write).
#[derive(Clone, PartialEq, Eq)]
pub struct Versioned {
    /// The record's bytes.
    pub value: Vec<u8>,
    /// Starts at 1; grows by one on every successful write.
    pub version: u64,
}

impl fmt::Debug for Versioned {
    // Record bytes may be sensitive (wrapped keys, encrypted metadata): never print them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Versioned")
            .field("len", &self.value.len())
            .field("version", &self.version)
            .finish()
    }
}

/// The condition a compare-and-swap write or delete requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// The record must not exist (create).
    Absent,
    /// The record must exist at exactly this version.
    Version(u64),
    /// No condition (last writer wins). Use only where that is really meant.
    Any,
}

impl Expect {
    /// Whether the condition holds for a record whose live version is `current` (`None`:
    /// absent or expired). `Any` holds always; `Absent` when there is no live record;
    /// `Version(v)` when the live record has version `v`. Adapters that compare in Rust use
    /// this; the Redis adapter states the same rule in its Lua scripts.
    pub fn holds(self, current: Option<u64>) -> bool {
        match self {
            Expect::Any => true,
            Expect::Absent => current.is_none(),
            Expect::Version(v) => current == Some(v),
        }
    }
}

/// One secondary-index entry: `(index name, indexed value)`, e.g. `("owner", "clinic-7")`.
/// Index values are server-chosen strings (principal names, batch ids), never raw client
/// input, and at most 256 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IndexEntry {
    /// Which index (static, like a [`Namespace`]).
    pub index: &'static str,
    /// The value the record is listed under.
    pub value: String,
}

impl IndexEntry {
    /// An index entry.
    pub fn new(index: &'static str, value: impl Into<String>) -> Self {
        Self {
            index,
            value: value.into(),
        }
    }
}

/// Options for a record write.
#[derive(Debug, Clone, Default)]
pub struct PutOptions {
    /// The record disappears this long after the write (each write sets it anew);
    /// `None` keeps it until deleted.
    pub ttl: Option<Duration>,
    /// The secondary-index entries the record is listed under after this write. They
    /// replace the entries of the previous version.
    pub index: Vec<IndexEntry>,
}

/// The outcome of a compare-and-swap write or delete: a value, not an error, because
/// losing a race is an expected event the caller must handle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CasOutcome {
    /// Done; for a write, the record's new version (0 for a delete).
    Applied(u64),
    /// The condition did not hold; the record's current version (`None`: absent).
    Conflict(Option<u64>),
}

/// The outcome of a bounded counter add.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CounterOutcome {
    /// The add happened; the counter's new value.
    Applied(i64),
    /// The add would have passed the limit and did not happen; the counter's value.
    LimitReached(i64),
}

/// A lease held by this process. Renew it before `ttl` passes or lose it.
#[derive(Clone, PartialEq, Eq)]
pub struct Lease {
    /// The lease's name (e.g. `upload/<id>`), server-chosen.
    pub name: String,
    /// Random 128-bit holder token; only its holder can renew or release the lease.
    pub token: [u8; 16],
    /// Larger than the fencing number of any earlier acquisition of this name.
    pub fence: u64,
}

impl fmt::Debug for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease")
            .field("name", &self.name)
            .field("fence", &self.fence)
            .finish_non_exhaustive()
    }
}

/// The outcome of a lease acquisition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseOutcome {
    /// Acquired.
    Acquired(Lease),
    /// Someone else holds it, for at most this much longer.
    Held {
        /// Time until the current lease expires unless renewed.
        remaining: Duration,
    },
}

/// A gapless append-only log (the audit chain). Static name, like a [`Namespace`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LogName(pub &'static str);

/// One log entry: its sequence number (the first entry is 1) and bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// 1 for the first entry, then +1 each, with no gaps.
    pub seq: u64,
    /// The entry's bytes.
    pub bytes: Vec<u8>,
}

impl fmt::Debug for LogEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogEntry")
            .field("seq", &self.seq)
            .field("len", &self.bytes.len())
            .finish()
    }
}

/// The outcome of a log append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppendOutcome {
    /// Appended; the entries got `first..first + n`.
    Appended {
        /// The sequence number of the first appended entry.
        first: u64,
    },
    /// Another writer appended first; this is the head now (`None`: the log is empty).
    Conflict(Option<LogEntry>),
}

/// A storage failure. These say nothing about HTTP; the edge maps them (mostly to 503,
/// because the store being unreachable is a condition where retrying may help).
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The backend could not be reached or did not answer in time.
    #[error("state store unavailable: {0}")]
    Unavailable(String),
    /// The backend answered with something this code cannot read (corruption or a
    /// different program writing the same keys).
    #[error("state store data is corrupt: {0}")]
    Corrupt(String),
    /// The caller asked for something the store refuses (an oversize key, an empty batch).
    #[error("invalid state store request: {0}")]
    Invalid(&'static str),
    /// The embedded database is locked by another process (a running gateway).
    #[error("the embedded state store at {0} is in use by another process")]
    Locked(String),
}

/// The state store port. Every method is atomic on its own; see the module docs for the
/// meaning of each primitive.
#[async_trait]
pub trait StateStore: Send + Sync + fmt::Debug + 'static {
    /// A short name for logs and `/readyz` (`"embedded"`, `"redis"`).
    fn kind(&self) -> &'static str;

    /// Checks that the backend answers (for `/readyz`).
    async fn ping(&self) -> Result<(), StateError>;

    // --- records ---

    /// The record, or `None` when absent or expired.
    async fn get(&self, ns: Namespace, id: &str) -> Result<Option<Versioned>, StateError>;

    /// Writes the record if `expect` holds.
    async fn put(
        &self,
        ns: Namespace,
        id: &str,
        value: &[u8],
        expect: Expect,
        options: PutOptions,
    ) -> Result<CasOutcome, StateError>;

    /// Deletes the record (and its index entries) if `expect` holds. Deleting an absent
    /// record with `Expect::Any` or `Expect::Absent` is `Applied(0)`.
    async fn delete(
        &self,
        ns: Namespace,
        id: &str,
        expect: Expect,
    ) -> Result<CasOutcome, StateError>;

    /// [`StateStore::put`] whose durability rides on this store's next durable write: it
    /// is exactly as atomic and as conditional, and every reader sees it at once, but a
    /// crash before the next durable write (of anything) may lose it — and then loses
    /// nothing written after it either, because writes persist in order.
    ///
    /// For a caller that always follows it with a durable write before it relies on it —
    /// the upload engine writes a chunk's ledger entry this way and then the upload
    /// record durably, so both cost one commit (one sync) instead of two. The embedded
    /// store commits it without an fsync (the next durable redb commit persists it, as
    /// commits are ordered); Redis and the in-memory store have no such distinction and
    /// do a plain `put`.
    async fn put_deferred(
        &self,
        ns: Namespace,
        id: &str,
        value: &[u8],
        expect: Expect,
        options: PutOptions,
    ) -> Result<CasOutcome, StateError> {
        self.put(ns, id, value, expect, options).await
    }

    /// [`StateStore::delete`] whose durability rides on this store's next durable write
    /// (see [`StateStore::put_deferred`]). For a delete whose loss in a crash is harmless
    /// to the caller: the upload engine clears a chunk's write-ahead record this way once
    /// the chunk is applied and audited (a record that survives a crash only makes its
    /// audit entries be written again, marked recovered).
    async fn delete_deferred(
        &self,
        ns: Namespace,
        id: &str,
        expect: Expect,
    ) -> Result<CasOutcome, StateError> {
        self.delete(ns, id, expect).await
    }

    /// Ids of live records in `ns` listed under `entry`, in ascending id order, starting
    /// after `after` (exclusive), at most `limit`.
    async fn list_index(
        &self,
        ns: Namespace,
        entry: &IndexEntry,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StateError>;

    /// Ids of live records in `ns`, ascending, after `after`, at most `limit` (for sweepers
    /// and `keys rewrap`).
    async fn list(
        &self,
        ns: Namespace,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StateError>;

    // --- counters ---

    /// The counter's value (0 when never written).
    async fn counter_get(&self, ns: Namespace, id: &str) -> Result<i64, StateError>;

    /// Adds `delta`; when `limit` is set and the result would be greater than it, changes
    /// nothing and reports [`CounterOutcome::LimitReached`].
    async fn counter_add(
        &self,
        ns: Namespace,
        id: &str,
        delta: i64,
        limit: Option<i64>,
    ) -> Result<CounterOutcome, StateError>;

    /// [`StateStore::counter_add`] whose durability may ride on this store's next durable
    /// write: it is exactly as atomic and as bounded, and every reader sees it at once, but
    /// a crash before the next durable write (of anything) may lose it.
    ///
    /// For a caller that always makes a durable write before it acts on the result — the
    /// download meter reserves bytes, then writes the download's audit entry durably, and
    /// only then sends a byte — this costs one commit instead of two. The embedded store
    /// commits it without an fsync (the next durable redb commit persists it, as commits
    /// are ordered); Redis has no such distinction and does a plain `counter_add`.
    async fn counter_add_deferred(
        &self,
        ns: Namespace,
        id: &str,
        delta: i64,
        limit: Option<i64>,
    ) -> Result<CounterOutcome, StateError> {
        self.counter_add(ns, id, delta, limit).await
    }

    // --- leases ---
    //
    // A lease is a claim of a live holder, not data: a store may keep leases without
    // syncing them (the embedded store does, and drops every lease it finds at open,
    // since the file lock means their holders are gone). Fencing numbers still grow
    // across every acquisition any live or durable state can have seen.

    /// Takes the lease `name` for `ttl` unless a live lease by that name exists.
    async fn lease_acquire(&self, name: &str, ttl: Duration) -> Result<LeaseOutcome, StateError>;

    /// Extends a lease this process holds; `false` if it was lost (expired and maybe taken).
    async fn lease_renew(&self, lease: &Lease, ttl: Duration) -> Result<bool, StateError>;

    /// Releases a lease this process holds; `false` if it was already lost.
    async fn lease_release(&self, lease: &Lease) -> Result<bool, StateError>;

    // --- logs ---

    /// The last entry of the log, `None` when empty.
    async fn log_head(&self, log: LogName) -> Result<Option<LogEntry>, StateError>;

    /// Appends `entries` (at least one) as `expected_next..`, atomically, if the log's next
    /// sequence number is `expected_next`.
    async fn log_append(
        &self,
        log: LogName,
        expected_next: u64,
        entries: &[Vec<u8>],
    ) -> Result<AppendOutcome, StateError>;

    /// Entries with `seq >= from`, ascending, at most `limit`.
    async fn log_read(
        &self,
        log: LogName,
        from: u64,
        limit: usize,
    ) -> Result<Vec<LogEntry>, StateError>;
}
