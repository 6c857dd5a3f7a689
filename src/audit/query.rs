//! Audit queries, pure: the query model, parsing it from a URL query string with a
//! specific error per bad parameter, matching it against a stored entry, and the
//! pagination cursor. No I/O: the service (`audit::search`) reads entries and the index.
//!
//! Parameters (`GET /v1/audit/events?…`, all optional, combined with AND):
//!
//! | name | value |
//! |---|---|
//! | `since`, `until` | RFC 3339 UTC (`2026-12-06T02:21:57Z`, fraction optional), inclusive |
//! | `principal` | an API client's name (the entry's `actor.name`) |
//! | `client` | the client address, exact (`203.0.113.7`) or a CIDR block (`203.0.113.0/24`) |
//! | `upload`, `batch`, `artifact`, `grant` | an id the entry mentions ([`mentions`]) |
//! | `action` | exact (`link.issued`), or a prefix ending in `.` (`link.`) |
//! | `outcome` | `success`, `failure` or `denied` |
//! | `limit` | 1 to [`MAX_LIMIT`] (default [`DEFAULT_LIMIT`]) |
//! | `cursor` | the `next_cursor` of the previous page of the same query |
//!
//! Values are taken literally: a `%` or `+` is refused (no value needs encoding), and so
//! is a parameter given twice or one not listed.
//!
//! **The cursor** is `<seq>.<tag>`: the last sequence number the previous page examined and
//! 8 hex digits of SHA-256 over the canonical filter. A cursor only moves the start of the
//! scan; every entry returned is matched against the whole filter, so no cursor can read
//! outside it, and a cursor of another query is refused rather than silently applied.
//!
//! Not here: which ids an entry mentions ([`mentions`]), traces ([`trace`]).

use std::net::IpAddr;

use sha2::{Digest, Sha256};

pub mod mentions;
pub mod trace;

pub use super::siem::Entry;
use crate::ids::OpaqueId;
use mentions::{Kind, Mention};

/// The largest page.
pub const MAX_LIMIT: usize = 1000;
/// The page size when none is given.
pub const DEFAULT_LIMIT: usize = 100;

/// What a query asks for: the filter, a page size and where to resume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// Which entries.
    pub filter: Filter,
    /// At most this many entries per page.
    pub limit: usize,
    /// Resume after this sequence number (from a validated cursor).
    pub after: u64,
}

/// Which entries a query selects. Every field that is set must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Entries at or after this time (canonical `YYYY-MM-DDTHH:MM:SS.mmmZ`).
    pub since: Option<Timestamp>,
    /// Entries at or before this time.
    pub until: Option<Timestamp>,
    /// The acting client's name.
    pub principal: Option<String>,
    /// The client address.
    pub client: Option<AddrMatch>,
    /// Ids the entry must mention (at most one per kind).
    pub ids: Vec<Mention>,
    /// The action.
    pub action: Option<ActionMatch>,
    /// The outcome.
    pub outcome: Option<&'static str>,
}

/// A point in time, kept as the entries write it so that comparing two is comparing text.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp {
    /// `YYYY-MM-DDTHH:MM:SS.mmmZ`.
    pub text: String,
    /// Milliseconds since the Unix epoch (for the time index).
    pub unix_ms: i64,
}

/// A client-address condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddrMatch {
    /// This address.
    Exact(IpAddr),
    /// Any address in this block (the network address and prefix length).
    Cidr(IpAddr, u8),
}

/// An action condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionMatch {
    /// Exactly this action.
    Exact(String),
    /// Any action starting with this (which ends in `.`).
    Prefix(String),
}

/// Why a query string is not a query. Each variant is one answer (its problem code is in
/// the error table); `parameter` names the parameter, never echoes its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// A parameter this endpoint does not know.
    #[error("unknown query parameter")]
    Unknown,
    /// The same parameter twice.
    #[error("query parameter {0} given twice")]
    Duplicate(&'static str),
    /// A value with `%` or `+`: values are taken literally.
    #[error("query parameter {0} is percent-encoded; give it literally")]
    Encoded(&'static str),
    /// `since` or `until` is not an RFC 3339 UTC time.
    #[error("{0} is not an RFC 3339 UTC time such as 2026-12-06T02:21:57Z")]
    Time(&'static str),
    /// `since` is after `until`.
    #[error("since is after until")]
    Window,
    /// An id parameter is not an id.
    #[error("{0} is not an id (26 characters of lowercase Crockford base32)")]
    Id(&'static str),
    /// `principal` is not a client name.
    #[error("principal is not a client name")]
    Principal,
    /// `client` is neither an address nor a CIDR block.
    #[error("client is not an IP address or CIDR block")]
    Client,
    /// `action` is not `noun.verb` or a prefix ending in `.`.
    #[error("action is not an action name or a prefix ending in '.'")]
    Action,
    /// `outcome` is not one of the three outcomes.
    #[error("outcome is not success, failure or denied")]
    Outcome,
    /// `limit` is not 1 to [`MAX_LIMIT`].
    #[error("limit is not a number from 1 to 1000")]
    Limit,
    /// `cursor` is not a cursor.
    #[error("cursor is malformed")]
    Cursor,
    /// `cursor` belongs to another query.
    #[error("cursor belongs to another query")]
    CursorMismatch,
}

impl QueryError {
    /// The parameter at fault, when there is one (a static name, never a value).
    pub fn parameter(&self) -> Option<&'static str> {
        match self {
            QueryError::Unknown | QueryError::Window => None,
            QueryError::Duplicate(p) | QueryError::Encoded(p) => Some(p),
            QueryError::Time(p) | QueryError::Id(p) => Some(p),
            QueryError::Principal => Some("principal"),
            QueryError::Client => Some("client"),
            QueryError::Action => Some("action"),
            QueryError::Outcome => Some("outcome"),
            QueryError::Limit => Some("limit"),
            QueryError::Cursor | QueryError::CursorMismatch => Some("cursor"),
        }
    }
}

/// The parameters, in canonical order (also the order of [`Filter::canonical`]).
const PARAMS: [&str; 13] = [
    "since",
    "until",
    "principal",
    "client",
    "upload",
    "batch",
    "artifact",
    "grant",
    "invitation",
    "action",
    "outcome",
    "limit",
    "cursor",
];

impl Query {
    /// Parses a URL query string (without `?`).
    pub fn parse(query: &str) -> Result<Self, QueryError> {
        let mut seen = [false; PARAMS.len()];
        let mut filter = Filter::default();
        let mut limit = DEFAULT_LIMIT;
        let mut cursor = None;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let i = PARAMS
                .iter()
                .position(|p| *p == k)
                .ok_or(QueryError::Unknown)?;
            let name = PARAMS[i];
            if std::mem::replace(&mut seen[i], true) {
                return Err(QueryError::Duplicate(name));
            }
            if v.contains(['%', '+']) {
                return Err(QueryError::Encoded(name));
            }
            match name {
                "since" => filter.since = Some(Timestamp::parse(v, name)?),
                "until" => filter.until = Some(Timestamp::parse(v, name)?),
                "principal" => filter.principal = Some(parse_principal(v)?),
                "client" => filter.client = Some(AddrMatch::parse(v)?),
                "upload" | "batch" | "artifact" | "grant" | "invitation" => {
                    let kind = match name {
                        "upload" => Kind::Upload,
                        "batch" => Kind::Batch,
                        "artifact" => Kind::Artifact,
                        "invitation" => Kind::Invitation,
                        _ => Kind::Grant,
                    };
                    v.parse::<OpaqueId>().map_err(|_| QueryError::Id(name))?;
                    filter.ids.push(Mention {
                        kind,
                        id: v.to_owned(),
                    });
                }
                "action" => filter.action = Some(ActionMatch::parse(v)?),
                "outcome" => filter.outcome = Some(parse_outcome(v)?),
                "limit" => {
                    limit = v
                        .parse()
                        .ok()
                        .filter(|n| (1..=MAX_LIMIT).contains(n))
                        .ok_or(QueryError::Limit)?;
                }
                _ => cursor = Some(v),
            }
        }
        if let (Some(s), Some(u)) = (&filter.since, &filter.until)
            && s > u
        {
            return Err(QueryError::Window);
        }
        filter.ids.sort();
        let after = match cursor {
            None => 0,
            Some(c) => filter.resume_after(c)?,
        };
        Ok(Query {
            filter,
            limit,
            after,
        })
    }

    /// The query string of this query's next page after `seq` (for clients that page).
    pub fn next_cursor(&self, seq: u64) -> String {
        self.filter.cursor(seq)
    }
}

impl Filter {
    /// Whether `entry` matches every condition.
    pub fn matches(&self, entry: &Entry) -> bool {
        if let Some(s) = &self.since
            && entry.time.as_str() < s.text.as_str()
        {
            return false;
        }
        if let Some(u) = &self.until
            && entry.time.as_str() > u.text.as_str()
        {
            return false;
        }
        if let Some(p) = &self.principal
            && entry.actor["name"].as_str() != Some(p.as_str())
        {
            return false;
        }
        if let Some(c) = &self.client {
            let addr = entry.client_addr.as_deref().and_then(|a| a.parse().ok());
            if !addr.is_some_and(|a| c.contains(a)) {
                return false;
            }
        }
        if let Some(a) = &self.action
            && !a.matches(&entry.action)
        {
            return false;
        }
        if let Some(o) = self.outcome
            && entry.outcome != o
        {
            return false;
        }
        if !self.ids.is_empty() {
            let mentioned = mentions::mentions(entry);
            if !self.ids.iter().all(|id| mentioned.contains(id)) {
                return false;
            }
        }
        true
    }

    /// The filter written canonically: equal filters, equal text.
    pub fn canonical(&self) -> String {
        let mut out = String::new();
        let mut put = |k: &str, v: &str| {
            out.push_str(k);
            out.push('=');
            out.push_str(v);
            out.push('\n');
        };
        if let Some(s) = &self.since {
            put("since", &s.text);
        }
        if let Some(u) = &self.until {
            put("until", &u.text);
        }
        if let Some(p) = &self.principal {
            put("principal", p);
        }
        if let Some(c) = &self.client {
            put("client", &c.to_string());
        }
        for m in &self.ids {
            put(m.kind.as_str(), &m.id);
        }
        if let Some(a) = &self.action {
            put("action", a.as_str());
        }
        if let Some(o) = self.outcome {
            put("outcome", o);
        }
        out
    }

    /// The conditions set and their values, canonical, for the `audit.queried` record.
    pub fn conditions_with_values(&self) -> std::collections::BTreeMap<&'static str, String> {
        let mut out = std::collections::BTreeMap::new();
        for line in self.canonical().lines() {
            if let Some((k, v)) = line.split_once('=')
                && let Some(name) = PARAMS.iter().find(|p| **p == k)
            {
                out.insert(*name, v.to_owned());
            }
        }
        out
    }

    /// The names of the conditions set.
    pub fn conditions(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.since.is_some() {
            out.push("since");
        }
        if self.until.is_some() {
            out.push("until");
        }
        if self.principal.is_some() {
            out.push("principal");
        }
        if self.client.is_some() {
            out.push("client");
        }
        out.extend(self.ids.iter().map(|m| m.kind.as_str()));
        if self.action.is_some() {
            out.push("action");
        }
        if self.outcome.is_some() {
            out.push("outcome");
        }
        out
    }

    /// The cursor that resumes this filter after `seq`.
    pub fn cursor(&self, seq: u64) -> String {
        format!("{seq}.{}", self.tag())
    }

    /// The sequence number a cursor resumes after, if it was made for this filter.
    fn resume_after(&self, cursor: &str) -> Result<u64, QueryError> {
        let (seq, tag) = cursor.split_once('.').ok_or(QueryError::Cursor)?;
        if seq.is_empty() || seq.len() > 20 || !seq.bytes().all(|b| b.is_ascii_digit()) {
            return Err(QueryError::Cursor);
        }
        let seq: u64 = seq.parse().map_err(|_| QueryError::Cursor)?;
        if tag.len() != 8 || !tag.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(QueryError::Cursor);
        }
        if tag != self.tag() {
            return Err(QueryError::CursorMismatch);
        }
        Ok(seq)
    }

    fn tag(&self) -> String {
        let digest = Sha256::digest(self.canonical().as_bytes());
        hex::encode(&digest[..4])
    }
}

impl Timestamp {
    /// Parses an RFC 3339 time; only UTC (`Z`) is accepted, so that the value needs no
    /// encoding in a URL and compares with the entries' times as text.
    pub fn parse(s: &str, name: &'static str) -> Result<Self, QueryError> {
        use time::format_description::well_known::Rfc3339;
        if !s.ends_with(['Z', 'z']) || s.len() > 40 {
            return Err(QueryError::Time(name));
        }
        let t = time::OffsetDateTime::parse(s, &Rfc3339).map_err(|_| QueryError::Time(name))?;
        Self::from_unix_ms((t.unix_timestamp_nanos() / 1_000_000) as i64)
            .ok_or(QueryError::Time(name))
    }

    /// The timestamp of `unix_ms` (`None` outside years 0000–9999).
    pub fn from_unix_ms(unix_ms: i64) -> Option<Self> {
        let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_ms) * 1_000_000)
            .ok()?;
        let fmt = time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
        );
        if !(0..=9999).contains(&t.year()) {
            return None;
        }
        Some(Self {
            text: t.format(&fmt).ok()?,
            unix_ms,
        })
    }

    /// The Unix milliseconds of an entry's `time` (`None` if it is not one).
    pub fn entry_ms(time: &str) -> Option<i64> {
        Self::parse(time, "time").ok().map(|t| t.unix_ms)
    }
}

impl AddrMatch {
    /// Parses an address or `address/prefix`.
    pub fn parse(s: &str) -> Result<Self, QueryError> {
        match s.split_once('/') {
            None => s
                .parse()
                .map(AddrMatch::Exact)
                .map_err(|_| QueryError::Client),
            Some((a, p)) => {
                let addr: IpAddr = a.parse().map_err(|_| QueryError::Client)?;
                let max = if addr.is_ipv4() { 32 } else { 128 };
                if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(QueryError::Client);
                }
                let prefix: u8 = p.parse().map_err(|_| QueryError::Client)?;
                if prefix > max {
                    return Err(QueryError::Client);
                }
                Ok(AddrMatch::Cidr(mask(addr, prefix), prefix))
            }
        }
    }

    /// Whether `addr` matches. An IPv4-mapped IPv6 address matches as its IPv4 address.
    pub fn contains(&self, addr: IpAddr) -> bool {
        let addr = addr.to_canonical();
        match *self {
            AddrMatch::Exact(a) => a.to_canonical() == addr,
            AddrMatch::Cidr(net, prefix) => {
                addr.is_ipv4() == net.is_ipv4() && mask(addr, prefix) == net
            }
        }
    }
}

impl std::fmt::Display for AddrMatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AddrMatch::Exact(a) => write!(f, "{a}"),
            AddrMatch::Cidr(a, p) => write!(f, "{a}/{p}"),
        }
    }
}

fn mask(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let m = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4((bits & m).into())
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let m = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6((bits & m).into())
        }
    }
}

impl ActionMatch {
    /// Parses `noun.verb` or a prefix ending in `.`: lowercase letters, digits, `_`, `.`.
    pub fn parse(s: &str) -> Result<Self, QueryError> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && !s.starts_with('.')
            && !s.contains("..")
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.');
        if !ok {
            return Err(QueryError::Action);
        }
        if s.ends_with('.') {
            Ok(ActionMatch::Prefix(s.to_owned()))
        } else if s.contains('.') {
            Ok(ActionMatch::Exact(s.to_owned()))
        } else {
            Err(QueryError::Action)
        }
    }

    /// Whether `action` matches.
    pub fn matches(&self, action: &str) -> bool {
        match self {
            ActionMatch::Exact(a) => action == a,
            ActionMatch::Prefix(p) => action.starts_with(p.as_str()),
        }
    }

    /// As given.
    pub fn as_str(&self) -> &str {
        match self {
            ActionMatch::Exact(a) | ActionMatch::Prefix(a) => a,
        }
    }
}

/// A configured client's name, or an upload invitation's principal (`invitation:{id}`).
fn parse_principal(s: &str) -> Result<String, QueryError> {
    if let Some(id) = s.strip_prefix("invitation:") {
        return id
            .parse::<OpaqueId>()
            .map(|id| crate::auth::ClientName::invitation(&id.to_string()).to_string())
            .map_err(|_| QueryError::Principal);
    }
    s.parse::<crate::auth::ClientName>()
        .map(|n| n.as_str().to_owned())
        .map_err(|_| QueryError::Principal)
}

fn parse_outcome(s: &str) -> Result<&'static str, QueryError> {
    match s {
        "success" => Ok("success"),
        "failure" => Ok("failure"),
        "denied" => Ok("denied"),
        _ => Err(QueryError::Outcome),
    }
}

#[cfg(test)]
mod tests;
