//! Traces, pure: the whole story of one upload, batch, artifact or grant, assembled from
//! the entries that mention it or anything it leads to, and rendered for a person.
//!
//! **What a trace follows.** Starting from the id asked for, an entry belongs to the
//! trace when it mentions a followed id ([`super::mentions`]); these entries then add ids:
//!
//! | entry | adds |
//! |---|---|
//! | `batch.member_added` | the batch, when its upload is followed; the upload, when the batch is the traced id |
//! | `artifact.registered` | the artifact, when its upload or batch is followed |
//! | `link.issued` | the grant, when one of its artifacts or its batch is followed |
//! | any entry of a followed invitation (named in it, or its actor) | its batch and upload |
//!
//! So an upload leads to the batch it is in, the artifact registered from it, the links
//! issued for that artifact (or its batch), and their downloads and revocations; a batch
//! also leads to its member uploads; an upload invitation leads to its batch and to every
//! upload made through it. Nothing leads *up*: tracing a grant does not pull in
//! the artifact's other grants. Partner names are never followed (a partner's whole
//! history is a query, not a trace).
//!
//! The builder does no I/O: the caller asks [`Trace::next_pending`] which id to look up,
//! feeds what it found to [`Trace::offer`] (in any order, repeated entries are ignored),
//! and repeats until nothing is pending. With the index that is one lookup per id; with
//! a scan, passes over the log until a pass adds no id.
//!
//! Not here: reading entries, the index, HTTP.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use super::Entry;
use super::mentions::{Kind, Mention, mentions};

/// The most entries one trace holds; past it the trace is cut and says so.
pub const MAX_TRACE_ENTRIES: usize = 10_000;

/// A trace being assembled, then the assembled trace.
#[derive(Debug, Clone)]
pub struct Trace {
    root: String,
    followed: BTreeSet<String>,
    pending: Vec<String>,
    entries: BTreeMap<u64, (Vec<u8>, Entry)>,
    truncated: bool,
}

impl Trace {
    /// A trace of `root` (an upload, batch, artifact, grant or invitation id).
    pub fn new(root: &str) -> Self {
        Self {
            root: root.to_owned(),
            followed: BTreeSet::from([root.to_owned()]),
            pending: vec![root.to_owned()],
            entries: BTreeMap::new(),
            truncated: false,
        }
    }

    /// The next id whose entries the caller should look up, if any.
    pub fn next_pending(&mut self) -> Option<String> {
        self.pending.pop()
    }

    /// Whether ids are waiting to be looked up.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// The ids followed so far.
    pub fn followed(&self) -> &BTreeSet<String> {
        &self.followed
    }

    /// Offers an entry (its stored bytes, parsed). It is kept when it mentions a followed
    /// id; it may add ids to follow. Returns whether it was kept.
    pub fn offer(&mut self, seq: u64, bytes: &[u8], entry: Entry) -> bool {
        if self.entries.contains_key(&seq) {
            return false;
        }
        let mentioned = mentions(&entry);
        if !mentioned
            .iter()
            .any(|m| m.kind != Kind::Partner && self.followed.contains(&m.id))
        {
            return false;
        }
        if self.entries.len() >= MAX_TRACE_ENTRIES {
            self.truncated = true;
            return false;
        }
        for id in self.leads_to(&entry, &mentioned) {
            if self.followed.insert(id.clone()) {
                self.pending.push(id);
            }
        }
        self.entries.insert(seq, (bytes.to_vec(), entry));
        true
    }

    /// Whether the trace was cut at [`MAX_TRACE_ENTRIES`].
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// The entries, by sequence number: `(seq, stored bytes, parsed)`.
    pub fn entries(&self) -> impl Iterator<Item = (u64, &[u8], &Entry)> {
        self.entries
            .iter()
            .map(|(seq, (bytes, entry))| (*seq, bytes.as_slice(), entry))
    }

    /// How many entries the trace holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the trace found nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The ids a kept entry adds (the table in the module docs).
    fn leads_to(&self, entry: &Entry, mentioned: &[Mention]) -> Vec<String> {
        let of = |kind: Kind| mentioned.iter().filter(move |m| m.kind == kind);
        let any_followed = |kind: Kind| of(kind).any(|m| self.followed.contains(&m.id));
        let ids = |kind: Kind| of(kind).map(|m| m.id.clone()).collect::<Vec<_>>();
        match entry.action.as_str() {
            "batch.member_added" => {
                let mut out = Vec::new();
                if any_followed(Kind::Upload) {
                    out.extend(ids(Kind::Batch));
                }
                if of(Kind::Batch).any(|m| m.id == self.root) {
                    out.extend(ids(Kind::Upload));
                }
                out
            }
            "artifact.registered" if any_followed(Kind::Upload) || any_followed(Kind::Batch) => {
                ids(Kind::Artifact)
            }
            "link.issued" if any_followed(Kind::Artifact) || any_followed(Kind::Batch) => {
                ids(Kind::Grant)
            }
            _ if any_followed(Kind::Invitation) => {
                let mut out = ids(Kind::Batch);
                out.extend(ids(Kind::Upload));
                out
            }
            _ => Vec::new(),
        }
    }
}

/// One line of a trace for a person: time, action, outcome, who, from where, what.
pub fn render_line(entry: &Entry) -> String {
    let mut line = format!(
        "{}  #{:<6} {:<24} {:<7} {}",
        entry.time,
        entry.seq,
        entry.action,
        entry.outcome,
        who(entry)
    );
    if let Some(addr) = &entry.client_addr {
        let _ = write!(line, " from {addr}");
        if let Some(peer) = &entry.peer_addr {
            let _ = write!(line, " via {peer}");
        }
    }
    let what = what(entry);
    if !what.is_empty() {
        let _ = write!(line, "  {what}");
    }
    line
}

/// The trace for a person: a heading, then one line per entry.
pub fn render(root: &str, trace: &Trace) -> String {
    let mut out = format!("trace {root}: {} entries\n", trace.len());
    for (_, _, entry) in trace.entries() {
        out.push_str(&render_line(entry));
        out.push('\n');
    }
    if trace.truncated() {
        let _ = writeln!(out, "(cut at {MAX_TRACE_ENTRIES} entries)");
    }
    out
}

/// Who acted: the client and how it authenticated, a link holder, the gateway, an operator.
pub fn who(entry: &Entry) -> String {
    let a = &entry.actor;
    match a["kind"].as_str() {
        Some("client") => {
            let name = a["name"].as_str().unwrap_or("?");
            match a["auth_method"].as_str() {
                Some("client_certificate") => format!("client {name} (TLS client certificate)"),
                Some("bearer_token") => format!("client {name} (token)"),
                _ => format!("client {name}"),
            }
        }
        Some("link") => format!("link holder (grant {})", a["grant"].as_str().unwrap_or("?")),
        Some("operator") => match a["user"].as_str() {
            Some(u) => format!("operator {u}"),
            None => "operator".into(),
        },
        Some("system") => "gateway".into(),
        _ => "anonymous".into(),
    }
}

/// What the entry moved or decided: ids, sizes, ranges, SHA-256 prefixes, reasons.
pub fn what(entry: &Entry) -> String {
    let d = &entry.details;
    let mut parts: Vec<String> = Vec::new();
    for m in mentions(entry) {
        if m.kind != Kind::Partner {
            parts.push(format!("{}={}", m.kind.as_str(), m.id));
        } else {
            parts.push(format!("partner={}", m.id));
        }
    }
    let number = |k: &str| d[k].as_u64();
    if let (Some(o), Some(l)) = (number("offset"), number("length"))
        && entry.action.starts_with("upload.")
    {
        parts.push(format!("bytes {o}..{}", o.saturating_add(l)));
    } else if let Some(l) = number("length") {
        parts.push(format!("length {l}"));
    }
    if let Some(b) = number("bytes") {
        parts.push(format!("sent {b}"));
    }
    if let Some(ranges) = d["ranges"].as_array().filter(|r| !r.is_empty()) {
        let r: Vec<&str> = ranges.iter().filter_map(|v| v.as_str()).collect();
        parts.push(format!("ranges {}", r.join(",")));
    }
    if let Some(s) = d["status"].as_u64() {
        parts.push(format!("status {s}"));
    }
    for key in ["sha256", "manifest_sha256", "report_sha256"] {
        if let Some(h) = d[key].as_str() {
            let prefix: String = h.chars().take(12).collect();
            parts.push(format!("{key} {prefix}…"));
        }
    }
    for key in ["verdict", "reason", "scope", "outcome", "tls_version"] {
        if let Some(v) = d[key].as_str() {
            parts.push(format!("{key} {v}"));
        }
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const U: &str = "0000000000000000000000000u";
    const U2: &str = "0000000000000000000000002u";
    const B: &str = "0000000000000000000000000b";
    const A: &str = "0000000000000000000000000a";
    const A2: &str = "000000000000000000000000a2";
    const G: &str = "0000000000000000000000000g";
    const G2: &str = "000000000000000000000000g2";

    fn entry(seq: u64, action: &str, subject: Option<&str>, details: &str) -> (Vec<u8>, Entry) {
        let subject = subject.map_or("null".to_owned(), |s| format!("\"{s}\""));
        let line = format!(
            r#"{{"v":1,"seq":{seq},"time":"2026-12-06T02:00:00.{seq:03}Z","instance":"t","action":"{action}","outcome":"success","actor":{{"kind":"client","name":"c","auth_method":"bearer_token"}},"request_id":null,"client_addr":"203.0.113.7","subject":{subject},"details":{details},"hash":"h"}}"#
        );
        let e = Entry::parse(line.as_bytes()).unwrap();
        (line.into_bytes(), e)
    }

    /// A small chain: two uploads in a batch, an artifact from each, links, downloads.
    fn story() -> Vec<(Vec<u8>, Entry)> {
        vec![
            entry(1, "batch.opened", Some(B), &format!(r#"{{"batch":"{B}"}}"#)),
            entry(
                2,
                "upload.created",
                Some(U),
                &format!(r#"{{"upload":"{U}"}}"#),
            ),
            entry(
                3,
                "batch.member_added",
                Some(B),
                &format!(r#"{{"batch":"{B}","upload":"{U}"}}"#),
            ),
            entry(
                4,
                "upload.chunk_accepted",
                Some(U),
                &format!(
                    r#"{{"upload":"{U}","offset":0,"length":10,"sha256":"abcdef0123456789"}}"#
                ),
            ),
            entry(
                5,
                "upload.created",
                Some(U2),
                &format!(r#"{{"upload":"{U2}"}}"#),
            ),
            entry(
                6,
                "batch.member_added",
                Some(B),
                &format!(r#"{{"batch":"{B}","upload":"{U2}"}}"#),
            ),
            entry(
                7,
                "artifact.registered",
                Some(A),
                &format!(r#"{{"artifact":"{A}","upload":"{U}","batch":null}}"#),
            ),
            entry(
                8,
                "artifact.registered",
                Some(A2),
                &format!(r#"{{"artifact":"{A2}","upload":"{U2}","batch":null}}"#),
            ),
            entry(
                9,
                "link.issued",
                Some(G),
                &format!(r#"{{"grant":"{G}","artifacts":["{A}"],"partner":"p"}}"#),
            ),
            entry(
                10,
                "link.issued",
                Some(G2),
                &format!(r#"{{"grant":"{G2}","artifacts":["{A2}"],"partner":"p"}}"#),
            ),
            entry(
                11,
                "download.served",
                Some(G),
                &format!(r#"{{"grant":"{G}","artifact":"{A}","ranges":["0-4"],"bytes":5}}"#),
            ),
            entry(
                12,
                "download.served",
                Some(G2),
                &format!(r#"{{"grant":"{G2}","artifact":"{A2}","bytes":5}}"#),
            ),
            entry(
                13,
                "link.revoked",
                Some(G),
                &format!(r#"{{"scope":"grant","target":"{G}","grants":["{G}"]}}"#),
            ),
            entry(14, "server.stopped", None, "{}"),
        ]
    }

    /// Assembles by repeated passes in seq order (the scan strategy).
    fn by_scan(root: &str) -> Vec<u64> {
        let all = story();
        let mut t = Trace::new(root);
        while t.has_pending() {
            while t.next_pending().is_some() {}
            for (bytes, e) in &all {
                t.offer(e.seq, bytes, e.clone());
            }
        }
        t.entries().map(|(s, _, _)| s).collect()
    }

    /// Assembles by one lookup per id (the index strategy), entries offered newest first.
    fn by_lookup(root: &str) -> Vec<u64> {
        let all = story();
        let mut t = Trace::new(root);
        while let Some(id) = t.next_pending() {
            for (bytes, e) in all.iter().rev() {
                if mentions(e).iter().any(|m| m.id == id) {
                    t.offer(e.seq, bytes, e.clone());
                }
            }
        }
        t.entries().map(|(s, _, _)| s).collect()
    }

    #[test]
    fn an_upload_leads_to_its_batch_artifact_links_downloads_and_revocation() {
        let expected = vec![1, 2, 3, 4, 6, 7, 9, 11, 13];
        assert_eq!(by_scan(U), expected);
        assert_eq!(by_lookup(U), expected);
    }

    #[test]
    fn a_batch_leads_to_all_its_members() {
        let expected: Vec<u64> = (1..=13).collect();
        assert_eq!(by_scan(B), expected);
        assert_eq!(by_lookup(B), expected);
    }

    #[test]
    fn a_grant_does_not_lead_up() {
        assert_eq!(by_scan(G), vec![9, 11, 13]);
        assert_eq!(by_lookup(G), vec![9, 11, 13]);
        assert_eq!(by_scan(A2), vec![8, 10, 12]);
    }

    #[test]
    fn an_unknown_id_gives_an_empty_trace() {
        assert!(by_scan("7zzzzzzzzzzzzzzzzzzzzzzzzz").is_empty());
    }

    #[test]
    fn lines_say_who_where_and_what() {
        let (_, e) = &story()[10];
        let line = render_line(e);
        assert!(line.starts_with("2026-12-06T02:00:00.011Z  #11"), "{line}");
        assert!(line.contains("download.served"), "{line}");
        assert!(line.contains("client c (token) from 203.0.113.7"), "{line}");
        assert!(line.contains("ranges 0-4"), "{line}");
        assert!(line.contains(&format!("grant={G}")), "{line}");
        let (_, chunk) = &story()[3];
        let line = render_line(chunk);
        assert!(line.contains("bytes 0..10"), "{line}");
        assert!(line.contains("sha256 abcdef012345…"), "{line}");
    }

    #[test]
    fn a_trace_is_cut_at_its_limit() {
        let mut t = Trace::new(U);
        for seq in 1..=(MAX_TRACE_ENTRIES as u64 + 5) {
            let (b, e) = entry(
                seq,
                "upload.chunk_accepted",
                Some(U),
                &format!(r#"{{"upload":"{U}"}}"#),
            );
            t.offer(seq, &b, e);
        }
        assert_eq!(t.len(), MAX_TRACE_ENTRIES);
        assert!(t.truncated());
        assert!(render(U, &t).ends_with(&format!("(cut at {MAX_TRACE_ENTRIES} entries)\n")));
    }
}
