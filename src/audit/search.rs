//! The audit query service: owns `GET /v1/audit/events` and `GET /v1/audit/trace/{id}`
//! from the parsed query to the typed outcome, reading the chain through one
//! [`EntrySource`] and, when there is one, the [`AuditIndex`]; each query or trace is
//! itself audited (`audit.queried`, naming the filter — ids, names, addresses, never
//! entry contents) before its result is returned.
//!
//! **How a query runs.** Entries up to the index's `through` are found through the index:
//! by the postings of one key of the filter (an id, else the principal, else an exact
//! client address, else an exact action), or — with none of those — by scanning the
//! sequence range the time index gives for `since`/`until`. Entries after `through` (the
//! index lagging, or no index) are scanned. Either way every candidate is matched against
//! the whole filter, in sequence order, and one page examines at most [`MAX_EXAMINED`]
//! entries: a page can come back short with a `next_cursor`, never wrong.
//!
//! Not here: the query model and traces (pure, `query`), the index file (`index`), HTTP.

use std::sync::Arc;

use serde_json::Value;

use super::events::AuditQueried;
use super::index::AuditIndex;
use super::query::mentions::Kind;
use super::query::trace::Trace;
use super::query::{ActionMatch, AddrMatch, Entry, Query, QueryError};
use super::source::EntrySource;
use super::{AuditContext, AuditError, Auditor};
use crate::ids::OpaqueId;
use crate::state::StateError;

/// The most entries one page (or one pass of a trace over the unindexed part) examines.
pub const MAX_EXAMINED: u64 = 200_000;
/// How far behind the others a writer's clock may be for a time-window query through the
/// index to still find its entries (see `AuditIndex::seq_range`).
pub const CLOCK_SKEW_MS: u64 = 5 * 60 * 1000;
/// Passes a trace makes at most (each follows ids the previous one found).
const MAX_TRACE_PASSES: usize = 16;
/// Entries read per request to the source when scanning.
const READ_PAGE: usize = 1000;

/// Why a query or trace failed.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// The query string is not a query.
    #[error(transparent)]
    Query(#[from] QueryError),
    /// The chain could not be read.
    #[error(transparent)]
    Store(#[from] StateError),
    /// The query could not be recorded, so it was not answered.
    #[error(transparent)]
    Audit(#[from] AuditError),
}

/// One page of a query.
#[derive(Debug, Clone)]
pub struct Page {
    /// The entries, as stored, in sequence order.
    pub entries: Vec<Value>,
    /// Where the next page starts, when there may be more.
    pub next_cursor: Option<String>,
    /// The last sequence number the index covers (0: no index).
    pub indexed_through: u64,
    /// The chain's last sequence number when the query ran.
    pub head: u64,
}

/// A trace's outcome.
#[derive(Debug, Clone)]
pub struct TraceResult {
    /// The traced id.
    pub id: String,
    /// The assembled trace.
    pub trace: Trace,
    /// The last sequence number the index covers (0: no index).
    pub indexed_through: u64,
    /// The chain's last sequence number when the trace ran.
    pub head: u64,
}

/// The service. Cheap to clone.
#[derive(Clone)]
pub struct AuditSearch {
    source: Arc<dyn EntrySource>,
    index: Option<Arc<AuditIndex>>,
    auditor: Auditor,
}

impl std::fmt::Debug for AuditSearch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditSearch")
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

impl AuditSearch {
    /// A service over `source`, with `index` when there is one.
    pub fn new(
        source: Arc<dyn EntrySource>,
        index: Option<Arc<AuditIndex>>,
        auditor: Auditor,
    ) -> Self {
        Self {
            source,
            index,
            auditor,
        }
    }

    /// Runs a query (already parsed from the request) for `ctx` and records it.
    pub async fn query(&self, ctx: &AuditContext, query: &Query) -> Result<Page, SearchError> {
        let page = self.run_query(query).await?;
        let event = AuditQueried::events(&query.filter, page.entries.len());
        self.auditor.emit(ctx, &event).await?;
        Ok(page)
    }

    /// The trace of `id` (an upload, batch, artifact or grant id) for `ctx`, recorded.
    pub async fn trace(
        &self,
        ctx: &AuditContext,
        id: &OpaqueId,
    ) -> Result<TraceResult, SearchError> {
        let id = id.to_string();
        let result = self.run_trace(&id).await?;
        let event = AuditQueried::trace(&id, result.trace.len());
        self.auditor.emit(ctx, &event).await?;
        Ok(result)
    }

    /// The query without recording it (for benchmarks and the service's own use).
    pub async fn run_query(&self, query: &Query) -> Result<Page, SearchError> {
        let head = self.source.head_seq().await?;
        let through = self.indexed_through().min(head);
        let filter = &query.filter;
        let mut out = Vec::new();
        let mut examined = 0u64;
        // Resume after this seq on the next page; `None` once the chain is exhausted.
        let mut resume = None;
        let mut pos = query.after;

        if let (Some(index), true) = (&self.index, pos < through) {
            let since = filter.since.as_ref().map(|t| t.unix_ms.max(0) as u64);
            let until = filter.until.as_ref().map(|t| t.unix_ms.max(0) as u64);
            let (lo, hi) = index
                .seq_range(since, until, CLOCK_SKEW_MS)
                .unwrap_or((1, u64::MAX));
            let start = pos.max(lo.saturating_sub(1));
            let end = through.min(hi);
            match index_key(query) {
                Some(key) => {
                    let mut after = start;
                    'postings: loop {
                        let seqs = index
                            .postings(&key, after, end, READ_PAGE)
                            .unwrap_or_default();
                        if seqs.is_empty() {
                            break;
                        }
                        for seq in seqs {
                            examined += 1;
                            after = seq;
                            if let Some(v) = self.read_match(seq, filter).await? {
                                out.push(v);
                                if out.len() >= query.limit {
                                    resume = Some(seq);
                                    break 'postings;
                                }
                            }
                            if examined >= MAX_EXAMINED {
                                resume = Some(seq);
                                break 'postings;
                            }
                        }
                    }
                }
                None if start < end => {
                    let (r, n) = self.scan(start, end, query, &mut out, MAX_EXAMINED).await?;
                    resume = r;
                    examined += n;
                }
                None => {}
            }
            if resume.is_none() {
                pos = pos.max(through);
            }
        }
        if resume.is_none() && pos < head {
            let budget = MAX_EXAMINED.saturating_sub(examined).max(1);
            let (r, _) = self.scan(pos, head, query, &mut out, budget).await?;
            resume = r;
        }
        Ok(Page {
            entries: out,
            next_cursor: resume.filter(|s| *s < head).map(|s| query.next_cursor(s)),
            indexed_through: through,
            head,
        })
    }

    /// Scans `(after, end]`, pushing matches until the page is full or `budget` entries
    /// were examined; returns where to resume (if it stopped early) and how many it read.
    async fn scan(
        &self,
        after: u64,
        end: u64,
        query: &Query,
        out: &mut Vec<Value>,
        budget: u64,
    ) -> Result<(Option<u64>, u64), SearchError> {
        let mut next = after + 1;
        let mut examined = 0;
        while next <= end {
            let want = READ_PAGE.min((end - next + 1) as usize);
            let page = self.source.read(next, want).await?;
            if page.is_empty() {
                break;
            }
            for (seq, bytes) in page {
                examined += 1;
                next = seq + 1;
                let entry = parse(seq, &bytes)?;
                if query.filter.matches(&entry) {
                    out.push(to_value(seq, &bytes)?);
                    if out.len() >= query.limit {
                        return Ok((Some(seq), examined));
                    }
                }
                if examined >= budget {
                    return Ok((Some(seq), examined));
                }
                if seq >= end {
                    break;
                }
            }
        }
        Ok((None, examined))
    }

    async fn read_match(
        &self,
        seq: u64,
        filter: &super::query::Filter,
    ) -> Result<Option<Value>, SearchError> {
        let page = self.source.read(seq, 1).await?;
        if page.first().is_none_or(|(s, _)| *s != seq) && seq < self.source.first_seq().await? {
            // Indexed before its segment was archived: queries cover the live part.
            return Ok(None);
        }
        let Some((s, bytes)) = page.into_iter().next().filter(|(s, _)| *s == seq) else {
            return Err(
                StateError::Corrupt(format!("audit entry {seq} is indexed but missing")).into(),
            );
        };
        let entry = parse(s, &bytes)?;
        Ok(if filter.matches(&entry) {
            Some(to_value(s, &bytes)?)
        } else {
            None
        })
    }

    /// The trace without recording it.
    pub async fn run_trace(&self, id: &str) -> Result<TraceResult, SearchError> {
        let head = self.source.head_seq().await?;
        let through = self.indexed_through().min(head);
        let mut trace = Trace::new(id);
        for _ in 0..MAX_TRACE_PASSES {
            // The indexed part: one lookup per followed id (ids are unique across kinds).
            while let Some(next) = trace.next_pending() {
                let Some(index) = &self.index else { continue };
                for kind in [
                    Kind::Upload,
                    Kind::Batch,
                    Kind::Artifact,
                    Kind::Grant,
                    Kind::Invitation,
                ] {
                    let key = format!("{}:{next}", kind.as_str());
                    let mut after = 0;
                    loop {
                        let seqs = index
                            .postings(&key, after, through, READ_PAGE)
                            .unwrap_or_default();
                        let Some(&last) = seqs.last() else { break };
                        for seq in seqs {
                            let page = self.source.read(seq, 1).await?;
                            if let Some((s, bytes)) = page.first().filter(|(s, _)| *s == seq) {
                                trace.offer(*s, bytes, parse(*s, bytes)?);
                            }
                        }
                        after = last;
                    }
                }
            }
            // The unindexed part (all of it without an index), one pass.
            let mut next = through + 1;
            while next <= head {
                let page = self.source.read(next, READ_PAGE).await?;
                if page.is_empty() {
                    break;
                }
                for (seq, bytes) in page {
                    next = seq + 1;
                    if seq > head {
                        break;
                    }
                    trace.offer(seq, &bytes, parse(seq, &bytes)?);
                }
            }
            if !trace.has_pending() {
                break;
            }
        }
        Ok(TraceResult {
            id: id.to_owned(),
            trace,
            indexed_through: through,
            head,
        })
    }

    fn indexed_through(&self) -> u64 {
        self.index
            .as_ref()
            .and_then(|i| i.through().ok())
            .unwrap_or(0)
    }
}

/// The index key a query's candidates come from: the most selective condition it has.
fn index_key(query: &Query) -> Option<String> {
    let f = &query.filter;
    if let Some(m) = f.ids.first() {
        return Some(format!("{}:{}", m.kind.as_str(), m.id));
    }
    if let Some(p) = &f.principal {
        return Some(format!("principal:{p}"));
    }
    if let Some(AddrMatch::Exact(a)) = f.client {
        return Some(format!("client:{}", a.to_canonical()));
    }
    if let Some(ActionMatch::Exact(a)) = &f.action {
        return Some(format!("action:{a}"));
    }
    None
}

fn parse(seq: u64, bytes: &[u8]) -> Result<Entry, SearchError> {
    Entry::parse(bytes)
        .map_err(|e| StateError::Corrupt(format!("audit entry {seq} is unreadable: {e}")).into())
}

fn to_value(seq: u64, bytes: &[u8]) -> Result<Value, SearchError> {
    serde_json::from_slice(bytes)
        .map_err(|e| StateError::Corrupt(format!("audit entry {seq} is unreadable: {e}")).into())
}
