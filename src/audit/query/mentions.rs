//! Which ids an audit entry *mentions*: the one place that knows where each event keeps
//! the upload, batch, artifact, grant and partner it is about.
//!
//! An entry mentions an id when its `subject` or one of the `details` members below holds
//! it. Every event of `proto/audit-event-v1.schema.json` keeps its ids in members of these
//! names (checked against the golden entries in `proto/vectors/audit-events/` by this
//! module's tests), so a new event that follows the naming is covered without a change
//! here; one that does not needs its row.
//!
//! | member | kind |
//! |---|---|
//! | `upload` | upload |
//! | `batch` | batch |
//! | `artifact`, `artifacts[]` | artifact |
//! | `grant`, `grants[]` | grant |
//! | `partner` | partner |
//! | `invitation` | invitation |
//! | the actor `invitation:{id}` | invitation (what was done *through* an upload invitation) |
//! | `target` of `link.revoke*` | the kind its `scope` names |
//! | `subject` | the kind of the action's family (below) |
//!
//! Not here: what a trace follows from one id to the next (`query::trace`).

use super::super::siem::Entry;

/// The kinds of id a query or trace can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// A tus upload.
    Upload,
    /// A batch.
    Batch,
    /// A registered artifact.
    Artifact,
    /// A grant (the id of a signed link).
    Grant,
    /// A partner name (a configured name, not PHI).
    Partner,
    /// An upload invitation.
    Invitation,
}

impl Kind {
    /// Every kind, in index order.
    pub const ALL: [Kind; 6] = [
        Kind::Upload,
        Kind::Batch,
        Kind::Artifact,
        Kind::Grant,
        Kind::Partner,
        Kind::Invitation,
    ];

    /// The name used in query parameters and index keys.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Upload => "upload",
            Kind::Batch => "batch",
            Kind::Artifact => "artifact",
            Kind::Grant => "grant",
            Kind::Partner => "partner",
            Kind::Invitation => "invitation",
        }
    }
}

/// One id an entry mentions.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mention {
    /// What it is.
    pub kind: Kind,
    /// The id (or partner name) as stored.
    pub id: String,
}

/// `details` members that hold one id, and their kind.
const SINGLE: [(&str, Kind); 6] = [
    ("upload", Kind::Upload),
    ("batch", Kind::Batch),
    ("artifact", Kind::Artifact),
    ("grant", Kind::Grant),
    ("partner", Kind::Partner),
    ("invitation", Kind::Invitation),
];

/// The actor name prefix of a request made with an upload invitation (`auth::ClientName::invitation`).
const INVITATION_ACTOR: &str = "invitation:";

/// `details` members that hold a list of ids, and their kind.
const LISTS: [(&str, Kind); 2] = [("artifacts", Kind::Artifact), ("grants", Kind::Grant)];

/// Every id `entry` mentions, sorted, without duplicates.
pub fn mentions(entry: &Entry) -> Vec<Mention> {
    let mut out = Vec::new();
    let mut push = |kind: Kind, v: &serde_json::Value| {
        if let Some(id) = v.as_str().filter(|s| !s.is_empty()) {
            out.push(Mention {
                kind,
                id: id.to_owned(),
            });
        }
    };
    for (member, kind) in SINGLE {
        push(kind, &entry.details[member]);
    }
    for (member, kind) in LISTS {
        if let Some(items) = entry.details[member].as_array() {
            for v in items {
                push(kind, v);
            }
        }
    }
    if entry.action.starts_with("link.revoke")
        && let Some(kind) = entry.details["scope"].as_str().and_then(scope_kind)
    {
        push(kind, &entry.details["target"]);
    }
    if let (Some(subject), Some(kind)) = (&entry.subject, subject_kind(entry)) {
        push(kind, &serde_json::Value::String(subject.clone()));
    }
    if let Some(id) = entry.actor["name"]
        .as_str()
        .and_then(|n| n.strip_prefix(INVITATION_ACTOR))
    {
        push(Kind::Invitation, &serde_json::Value::String(id.to_owned()));
    }
    out.sort();
    out.dedup();
    out
}

/// The kind a revocation's `scope` names.
fn scope_kind(scope: &str) -> Option<Kind> {
    match scope {
        "grant" => Some(Kind::Grant),
        "batch" => Some(Kind::Batch),
        "artifact" => Some(Kind::Artifact),
        "partner" => Some(Kind::Partner),
        _ => None,
    }
}

/// The kind of an entry's `subject`, by the action's family. Revocations name their
/// target by scope (above); `publish.out_of_scope` names an artifact or an upload and
/// carries both in its details; key events name KEK versions and objects, which are not
/// traced.
fn subject_kind(entry: &Entry) -> Option<Kind> {
    let family = entry.action.split('.').next().unwrap_or("");
    match family {
        "upload" => Some(Kind::Upload),
        "batch" => Some(Kind::Batch),
        "artifact" => Some(Kind::Artifact),
        "download" => Some(Kind::Grant),
        "link" if !entry.action.starts_with("link.revoke") => Some(Kind::Grant),
        "invitation" => Some(Kind::Invitation),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vector(action: &str) -> Entry {
        let path = format!(
            "{}/proto/vectors/audit-events/{action}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        Entry::parse(bytes.trim_ascii_end()).unwrap()
    }

    fn m(kind: Kind, id: &str) -> Mention {
        Mention {
            kind,
            id: id.into(),
        }
    }

    /// Every golden entry, and exactly the ids it mentions.
    #[test]
    fn golden_entries_mention_exactly_their_ids() {
        use Kind::*;
        let cases: Vec<(&str, Vec<Mention>)> = vec![
            (
                "upload.created",
                vec![m(Upload, "7j2peph3xdnmd4ckef02e8e44e")],
            ),
            (
                "upload.chunk_accepted",
                vec![m(Upload, "7j2peph3xdnmd4ckef02e8e44e")],
            ),
            (
                "upload.completed",
                vec![m(Upload, "7j2peph3xdnmd4ckef02e8e44e")],
            ),
            (
                "upload.shredded",
                vec![m(Upload, "0erbsd9n0yqtax4q2y5fe7e8jt")],
            ),
            (
                "batch.member_added",
                vec![
                    m(Upload, "26qv354spcvr7rkkpy7t9386r7"),
                    m(Batch, "37038mb0r096wq9t15099mtjtv"),
                ],
            ),
            ("batch.opened", vec![m(Batch, "37038mb0r096wq9t15099mtjtv")]),
            (
                "batch.quarantined",
                vec![m(Batch, "37038mb0r096wq9t15099mtjtv")],
            ),
            (
                "artifact.registered",
                vec![m(Artifact, "54hgs7ebt3vn0qr9fg4w51r6sa")],
            ),
            (
                "link.issued",
                vec![
                    m(Artifact, "54hgs7ebt3vn0qr9fg4w51r6sa"),
                    m(Grant, "3tn6eazk7k6nfxbwm4fnb1en57"),
                    m(Partner, "payer-a"),
                ],
            ),
            (
                "link.revoke_requested",
                vec![m(Grant, "2wey0nv2cj7j38tt6z2jk2ed91")],
            ),
            ("link.revoked", vec![m(Grant, "2wey0nv2cj7j38tt6z2jk2ed91")]),
            (
                "download.served",
                vec![
                    m(Artifact, "1av2ze4jcv096x3ze73jxx5pvk"),
                    m(Grant, "5a9rrag4pczeyx681ymyxatxs7"),
                ],
            ),
            (
                "download.aborted",
                vec![
                    m(Artifact, "61y2n6nysn7xq9nxayn44qyavr"),
                    m(Grant, "45ycgx0fh08hjtc82xvwh9mvep"),
                ],
            ),
            ("download.rejected", vec![]),
            (
                "publish.out_of_scope",
                vec![m(Upload, "479xrma0h5y2b3xk2zq5z9c8hb")],
            ),
            ("key.rewrapped", vec![]),
            ("key.rotated", vec![]),
            ("server.started", vec![]),
            ("access.denied", vec![]),
            // Its filter is nested under `filter`: a query names ids without mentioning them.
            ("audit.queried", vec![]),
            ("security.auth_failed", vec![]),
        ];
        for (action, expected) in cases {
            assert_eq!(mentions(&vector(action)), expected, "{action}");
        }
    }

    /// Every golden entry parses, and whatever it mentions is an id of its own details or
    /// subject (no mention is invented).
    #[test]
    fn every_golden_entry_is_mapped() {
        let dir = format!("{}/proto/vectors/audit-events", env!("CARGO_MANIFEST_DIR"));
        let mut n = 0;
        for f in std::fs::read_dir(dir).unwrap() {
            let path = f.unwrap().path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let entry = Entry::parse(text.trim_end().as_bytes()).unwrap();
            for mention in mentions(&entry) {
                assert!(
                    text.contains(&format!("\"{}\"", mention.id)),
                    "{path:?}: {mention:?}"
                );
            }
            n += 1;
        }
        assert!(n >= 40, "only {n} vectors");
    }

    #[test]
    fn a_batch_revocation_mentions_the_batch_and_its_grants() {
        let entry = Entry::parse(
            br#"{"seq":1,"time":"t","instance":"i","action":"link.revoked","outcome":"success","actor":{"kind":"system"},"subject":"b","details":{"scope":"batch","target":"b","grants":["g1","g2"]},"hash":"h"}"#,
        )
        .unwrap();
        assert_eq!(
            mentions(&entry),
            vec![
                m(Kind::Batch, "b"),
                m(Kind::Grant, "g1"),
                m(Kind::Grant, "g2")
            ]
        );
    }
}
