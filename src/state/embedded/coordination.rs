//! The embedded store's counters, leases and logs: one synchronous redb transaction each,
//! run by the parent module on the blocking pool. Table layout and rules are in the
//! parent's docs.

use std::time::Duration;

use rand::RngCore;
use redb::{Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata};
use subtle::ConstantTimeEq;

use super::codec::{self, StoredLease};
use super::ops::{
    COUNTERS, LEASES, LOG_ENTRIES, LOG_HEADS, META, META_LEASE_FENCE, META_LEASE_FENCE_CEILING,
    db_err,
};
use super::{write, write_deciding, write_with};

/// How many fencing numbers one durable reservation covers: an acquisition syncs only when
/// it starts a new block.
const FENCE_BLOCK: u64 = 1024;
use crate::state::{AppendOutcome, CounterOutcome, Lease, LeaseOutcome, LogEntry, StateError};

// === counters ===

pub(super) fn counter_get(db: &Database, ns: &str, id: &str) -> Result<i64, StateError> {
    let key = codec::record_key(ns, id)?;
    let txn = db.begin_read().map_err(db_err)?;
    let counters = txn.open_table(COUNTERS).map_err(db_err)?;
    Ok(counters
        .get(key.as_slice())
        .map_err(db_err)?
        .map_or(0, |g| g.value()))
}

pub(super) fn counter_add(
    db: &Database,
    ns: &str,
    id: &str,
    delta: i64,
    limit: Option<i64>,
    durability: Durability,
) -> Result<CounterOutcome, StateError> {
    let key = codec::record_key(ns, id)?;
    write_with(db, durability, |txn| {
        let mut counters = txn.open_table(COUNTERS).map_err(db_err)?;
        let current = counters
            .get(key.as_slice())
            .map_err(db_err)?
            .map_or(0, |g| g.value());
        let next = current
            .checked_add(delta)
            .ok_or(StateError::Invalid("counter overflow"))?;
        if limit.is_some_and(|limit| next > limit) {
            return Ok((CounterOutcome::LimitReached(current), false));
        }
        counters.insert(key.as_slice(), next).map_err(db_err)?;
        Ok((CounterOutcome::Applied(next), true))
    })
}

// === leases ===

pub(super) fn lease_acquire(
    db: &Database,
    name: &str,
    ttl_ms: u64,
    now: u64,
) -> Result<LeaseOutcome, StateError> {
    write_deciding(db, |txn| {
        let mut leases = txn.open_table(LEASES).map_err(db_err)?;
        if let Some(held) = load_lease(&leases, name)?
            && now < held.expires_at_ms
        {
            let remaining = Duration::from_millis(held.expires_at_ms - now);
            return Ok((LeaseOutcome::Held { remaining }, None));
        }
        let mut meta = txn.open_table(META).map_err(db_err)?;
        let last = meta
            .get(META_LEASE_FENCE)
            .map_err(db_err)?
            .map_or(0, |g| g.value());
        let ceiling = meta
            .get(META_LEASE_FENCE_CEILING)
            .map_err(db_err)?
            .map_or(0, |g| g.value());
        let fence = last
            .checked_add(1)
            .ok_or_else(|| StateError::Corrupt("lease fence overflow".into()))?;
        meta.insert(META_LEASE_FENCE, fence).map_err(db_err)?;
        // Fences come from durably reserved blocks: only the acquisition that starts a new
        // block syncs (see the module docs).
        let durability = if fence > ceiling {
            meta.insert(
                META_LEASE_FENCE_CEILING,
                fence.saturating_add(FENCE_BLOCK - 1),
            )
            .map_err(db_err)?;
            Durability::Immediate
        } else {
            Durability::None
        };
        let mut token = [0u8; 16];
        rand::rng().fill_bytes(&mut token);
        let stored = StoredLease {
            token,
            fence,
            expires_at_ms: now.saturating_add(ttl_ms),
        };
        leases
            .insert(name, stored.encode().as_slice())
            .map_err(db_err)?;
        let lease = Lease {
            name: name.to_owned(),
            token,
            fence,
        };
        Ok((LeaseOutcome::Acquired(lease), Some(durability)))
    })
}

pub(super) fn lease_renew(
    db: &Database,
    lease: &Lease,
    ttl_ms: u64,
    now: u64,
) -> Result<bool, StateError> {
    write_with(db, Durability::None, |txn| {
        let mut leases = txn.open_table(LEASES).map_err(db_err)?;
        let Some(mut held) = load_lease(&leases, &lease.name)? else {
            return Ok((false, false));
        };
        if !(now < held.expires_at_ms && is_holder(&held, lease)) {
            return Ok((false, false));
        }
        held.expires_at_ms = now.saturating_add(ttl_ms);
        leases
            .insert(lease.name.as_str(), held.encode().as_slice())
            .map_err(db_err)?;
        Ok((true, true))
    })
}

pub(super) fn lease_release(db: &Database, lease: &Lease, now: u64) -> Result<bool, StateError> {
    write_with(db, Durability::None, |txn| {
        let mut leases = txn.open_table(LEASES).map_err(db_err)?;
        let Some(held) = load_lease(&leases, &lease.name)? else {
            return Ok((false, false));
        };
        if !is_holder(&held, lease) {
            return Ok((false, false));
        }
        // Our own lease is removed even if it already expired; only a live one counts as
        // released.
        leases.remove(lease.name.as_str()).map_err(db_err)?;
        Ok((now < held.expires_at_ms, true))
    })
}

/// Removes every lease, whoever took it, and moves the fence counter past every fence
/// an earlier process may have issued; how many leases there were. Only for
/// [`super::EmbeddedStateStore::open`]: the file lock makes the opener the only process
/// using the file, so every lease found then is held by nobody alive. The earlier process
/// issued fences only up to the durable ceiling of its last reserved block (an acquisition
/// inside a block is not synced and a crash may lose it), so the counter restarts there
/// and the next acquisition of any name gets a higher fence than any the dead process held.
pub(super) fn drop_all_leases(db: &Database) -> Result<u64, StateError> {
    write(db, |txn| {
        let mut leases = txn.open_table(LEASES).map_err(db_err)?;
        let n = leases.len().map_err(db_err)?;
        if n > 0 {
            leases.retain(|_, _| false).map_err(db_err)?;
        }
        let mut meta = txn.open_table(META).map_err(db_err)?;
        let last = meta
            .get(META_LEASE_FENCE)
            .map_err(db_err)?
            .map_or(0, |g| g.value());
        let ceiling = meta
            .get(META_LEASE_FENCE_CEILING)
            .map_err(db_err)?
            .map_or(0, |g| g.value());
        let raised = ceiling > last;
        if raised {
            meta.insert(META_LEASE_FENCE, ceiling).map_err(db_err)?;
        }
        Ok((n, n > 0 || raised))
    })
}

// === logs ===

pub(super) fn log_head(db: &Database, log: &str) -> Result<Option<LogEntry>, StateError> {
    let txn = db.begin_read().map_err(db_err)?;
    let heads = txn.open_table(LOG_HEADS).map_err(db_err)?;
    let entries = txn.open_table(LOG_ENTRIES).map_err(db_err)?;
    head_entry(&heads, &entries, log)
}

pub(super) fn log_append(
    db: &Database,
    log: &str,
    expected_next: u64,
    batch: &[Vec<u8>],
) -> Result<AppendOutcome, StateError> {
    write(db, |txn| {
        let mut heads = txn.open_table(LOG_HEADS).map_err(db_err)?;
        let mut entries = txn.open_table(LOG_ENTRIES).map_err(db_err)?;
        let head = heads.get(log).map_err(db_err)?.map_or(0, |g| g.value());
        if head.checked_add(1) != Some(expected_next) {
            let current = head_entry(&heads, &entries, log)?;
            return Ok((AppendOutcome::Conflict(current), false));
        }
        let mut seq = expected_next;
        for bytes in batch {
            let key = codec::log_key(log, seq)?;
            entries
                .insert(key.as_slice(), bytes.as_slice())
                .map_err(db_err)?;
            seq += 1; // limits::check_append keeps the batch's numbers below 2^53.
        }
        heads.insert(log, seq - 1).map_err(db_err)?;
        let first = expected_next;
        Ok((AppendOutcome::Appended { first }, true))
    })
}

pub(super) fn log_read(
    db: &Database,
    log: &str,
    from: u64,
    limit: usize,
) -> Result<Vec<LogEntry>, StateError> {
    let prefix_len = 2 + log.len();
    let start = codec::log_key(log, from.max(1))?;
    let end = codec::log_key(log, u64::MAX)?;
    let txn = db.begin_read().map_err(db_err)?;
    let entries = txn.open_table(LOG_ENTRIES).map_err(db_err)?;
    let mut out = Vec::new();
    for item in entries
        .range::<&[u8]>(start.as_slice()..=end.as_slice())
        .map_err(db_err)?
        .take(limit)
    {
        let (key, value) = item.map_err(db_err)?;
        out.push(LogEntry {
            seq: codec::log_key_seq(key.value(), prefix_len)?,
            bytes: value.value().to_vec(),
        });
    }
    Ok(out)
}

/// Whether `lease` is the holder of `held`; the token compare is constant-time.
fn is_holder(held: &StoredLease, lease: &Lease) -> bool {
    bool::from(held.token.ct_eq(&lease.token)) && held.fence == lease.fence
}

fn head_entry(
    heads: &impl ReadableTable<&'static str, u64>,
    entries: &impl ReadableTable<&'static [u8], &'static [u8]>,
    log: &str,
) -> Result<Option<LogEntry>, StateError> {
    let Some(seq) = heads.get(log).map_err(db_err)?.map(|g| g.value()) else {
        return Ok(None);
    };
    let key = codec::log_key(log, seq)?;
    let bytes = entries
        .get(key.as_slice())
        .map_err(db_err)?
        .ok_or_else(|| StateError::Corrupt(format!("log {log} head {seq} has no entry")))?
        .value()
        .to_vec();
    Ok(Some(LogEntry { seq, bytes }))
}

fn load_lease(
    leases: &impl ReadableTable<&'static str, &'static [u8]>,
    name: &str,
) -> Result<Option<StoredLease>, StateError> {
    leases
        .get(name)
        .map_err(db_err)?
        .map(|g| StoredLease::decode(g.value()))
        .transpose()
}
