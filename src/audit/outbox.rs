//! The audit outbox: entries made durable by another commit, that reach the chain after it.
//!
//! A chunk of an upload (`upload.chunk_accepted`) is acknowledged only once its entry is
//! durable. Written to the journal, that is one `fdatasync` of the journal per PATCH on top
//! of the upload record's own commit. With the outbox the entry is instead written,
//! deferred, into the state store's [`OUTBOX`] namespace just before the upload record's
//! durable commit, so that one commit makes the record, the ledger entry and the audit
//! entry durable together; the writer ([`super::Auditor`]) then appends the entry to the
//! chain *lazily* — with the next entry that needs a sync anyway, or after
//! [`OUTBOX_DELAY`] at the latest — and deletes the row (deferred) once the chain holds it.
//! An upload's creation (`upload.created`) rides on the record's creation the same way.
//!
//! At start, before the gateway serves, [`drain`] appends what the outbox still holds: the
//! entries of a process that stopped before its writer got to them. A row whose deletion
//! was lost in a crash while its entry did reach the chain is recognised by the entry's
//! content (time, action, outcome, actor, addresses, subject and details, see
//! [`Row::fingerprint`]) among the chain's entries of that period, and is not appended
//! twice.
//!
//! Only with the journal and the embedded state store (one gateway per data directory):
//! then one process owns both the outbox and the chain. On Redis the chain is itself a
//! state-store log and an entry costs one write either way.
//!
//! The format of a row is this module's; rows live only until their entry is in the chain,
//! and an older gateway ignores the namespace.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::log::AuditLog;
use crate::state::{Namespace, StateError, StateStore};

/// The state-store namespace of outbox rows (`<16 hex: process start µs><8 hex: n>`).
pub const OUTBOX: Namespace = Namespace::new("audit_outbox");

/// The longest an outboxed entry waits for a sync it can share before the writer appends
/// it on its own.
pub const OUTBOX_DELAY: Duration = Duration::from_millis(500);

/// How far before the oldest row's time [`drain`] looks for entries that already reached
/// the chain. An entry is appended after its time (it is timed before its row is written),
/// so this only covers a clock stepped back; the search also stops once every row is found.
pub const LOOK_BACK: time::Duration = time::Duration::minutes(1);

/// Rows read per page while draining, and entries per page read back from the chain.
const PAGE: usize = 500;

/// One outboxed entry: what the chain entry will say, but for its place in the chain
/// (`seq`, `prev`, `hash`) and the writing `instance`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// RFC 3339 UTC time of the event (kept: the entry says when it happened, not when it
    /// reached the chain).
    pub time: String,
    /// The action.
    pub action: String,
    /// `success`, `failure` or `denied`.
    pub outcome: String,
    /// Who acted.
    pub actor: serde_json::Value,
    /// The request id.
    pub request_id: Option<String>,
    /// The client's address.
    pub client_addr: Option<String>,
    /// The TCP peer's address, when not the client's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_addr: Option<String>,
    /// The id acted on.
    pub subject: Option<String>,
    /// Event-specific fields.
    pub details: serde_json::Value,
}

impl Row {
    /// What identifies the entry among others: every field it carries. Two events with
    /// the same fingerprint say the same thing at the same millisecond (a chunk entry
    /// names its upload, index, offset and SHA-256).
    pub fn fingerprint(&self) -> String {
        // Serialising a struct of owned JSON values cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The chain line this entry makes at `seq` after the entry hashed `prev`, written by
    /// `instance`, and its hash.
    pub fn seal(
        &self,
        seq: u64,
        instance: &str,
        prev: &[u8; 32],
    ) -> Result<(Vec<u8>, [u8; 32]), serde_json::Error> {
        super::chain::seal(&super::chain::Body {
            v: 1,
            seq,
            time: &self.time,
            instance,
            action: &self.action,
            outcome: &self.outcome,
            actor: &self.actor,
            request_id: self.request_id.as_deref(),
            client_addr: self.client_addr.as_deref(),
            peer_addr: self.peer_addr.as_deref(),
            subject: self.subject.as_deref(),
            details: &self.details,
            prev: hex::encode(prev),
        })
    }

    /// The row stored in the outbox.
    pub fn encode(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }

    /// A stored row.
    pub fn decode(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// The fingerprint of a stored chain line (its chain fields ignored), `None` when the
    /// line is not an entry.
    pub fn fingerprint_of_line(line: &[u8]) -> Option<String> {
        serde_json::from_slice::<Row>(line)
            .ok()
            .map(|r| r.fingerprint())
    }
}

/// Outbox row ids of this process: ordered by process start, then by staging order.
#[derive(Debug)]
pub struct Keys {
    start: u64,
    next: AtomicU64,
}

impl Keys {
    /// Ids for a process started now.
    pub fn new() -> Self {
        let start = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
            .unwrap_or_default();
        Self {
            start,
            next: AtomicU64::new(0),
        }
    }

    /// The next id.
    pub fn next(&self) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        format!("{:016x}{:08x}", self.start, n)
    }
}

impl Default for Keys {
    fn default() -> Self {
        Self::new()
    }
}

/// The rows left in the outbox, in id order.
pub async fn rows(state: &dyn StateStore) -> Result<Vec<(String, Row)>, StateError> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let ids = state.list(OUTBOX, after.as_deref(), PAGE).await?;
        let Some(last) = ids.last().cloned() else {
            break;
        };
        for id in ids {
            let Some(stored) = state.get(OUTBOX, &id).await? else {
                continue;
            };
            let row = Row::decode(&stored.value).map_err(|e| {
                StateError::Corrupt(format!("audit outbox row {id} unreadable: {e}"))
            })?;
            out.push((id, row));
        }
        after = Some(last);
    }
    Ok(out)
}

/// Which of the `wanted` fingerprints the chain holds, searching from its head back to
/// the entries older than `since` (by entry time), and no further once all are found.
/// Memory stays in proportion to `wanted`; only entries of the `actions` are parsed.
pub async fn chain_holds(
    log: &dyn AuditLog,
    since: time::OffsetDateTime,
    wanted: &HashSet<String>,
    actions: &HashSet<String>,
) -> Result<HashSet<String>, StateError> {
    let mut found = HashSet::new();
    let Some(head) = log.head().await? else {
        return Ok(found);
    };
    // serde_json writes an entry's action as `"action":"<name>"`, with no space.
    let needles: Vec<Vec<u8>> = actions
        .iter()
        .map(|a| format!("\"action\":{}", serde_json::Value::from(a.as_str())).into_bytes())
        .collect();
    let first = log.first_seq().await?;
    let mut end = head.seq; // inclusive
    while end >= first && found.len() < wanted.len() {
        let from = end.saturating_sub(PAGE as u64 - 1).max(first);
        let page = log.read(from, (end - from + 1) as usize).await?;
        let mut older = false;
        for e in &page {
            if needles.iter().any(|n| contains(&e.bytes, n))
                && let Some(f) = Row::fingerprint_of_line(&e.bytes)
                && wanted.contains(&f)
            {
                found.insert(f);
            }
            if entry_time(&e.bytes).is_some_and(|t| t < since) {
                older = true;
            }
        }
        if older || from == first || page.is_empty() {
            break;
        }
        end = from - 1;
    }
    Ok(found)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// An entry's time, read from its `"time":"…"` member (the third of every body) without
/// parsing the rest.
fn entry_time(line: &[u8]) -> Option<time::OffsetDateTime> {
    const KEY: &[u8] = b"\"time\":\"";
    let at = line.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let len = line[at..].iter().position(|&b| b == b'"')?;
    parse_time(std::str::from_utf8(&line[at..at + len]).ok()?)
}

/// An entry's RFC 3339 time.
pub fn parse_time(s: &str) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
}

/// The rows of `rows` whose entry is not among `in_chain` (fingerprints), in order.
pub fn undelivered<'a>(
    rows: &'a [(String, Row)],
    in_chain: &HashSet<String>,
) -> Vec<&'a (String, Row)> {
    rows.iter()
        .filter(|(_, r)| !in_chain.contains(&r.fingerprint()))
        .collect()
}

/// The earliest time among `rows` less [`LOOK_BACK`] (the chain is searched back to it),
/// `None` when no row has a readable time (then the whole chain is searched).
pub fn look_back_from(rows: &[(String, Row)]) -> Option<time::OffsetDateTime> {
    rows.iter()
        .filter_map(|(_, r)| parse_time(&r.time))
        .min()
        .map(|t| t - LOOK_BACK)
}

/// What [`drain`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Drained {
    /// Rows whose entry was appended now.
    pub appended: usize,
    /// Rows whose entry the chain already held (their deletion was lost).
    pub already_in_chain: usize,
}

/// Appends the entries the outbox still holds (see the module docs) through `auditor`,
/// durably, then deletes their rows. Run at start, before serving.
pub async fn drain(
    auditor: &super::Auditor,
    state: &dyn StateStore,
) -> Result<Drained, super::AuditError> {
    let rows = rows(state).await?;
    if rows.is_empty() {
        return Ok(Drained::default());
    }
    let since = look_back_from(&rows).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let wanted: HashSet<String> = rows.iter().map(|(_, r)| r.fingerprint()).collect();
    let actions: HashSet<String> = rows.iter().map(|(_, r)| r.action.clone()).collect();
    let in_chain = chain_holds(&**auditor.log(), since, &wanted, &actions).await?;
    let todo = undelivered(&rows, &in_chain);
    let drained = Drained {
        appended: todo.len(),
        already_in_chain: rows.len() - todo.len(),
    };
    // In order, as one stream: the writer batches them (group commit).
    auditor
        .append_rows(todo.into_iter().map(|(_, r)| r.clone()).collect())
        .await?;
    for (id, _) in &rows {
        state.delete(OUTBOX, id, crate::state::Expect::Any).await?;
    }
    Ok(drained)
}

#[cfg(test)]
mod tests;
