//! The batch document of the API (`proto/batches-v1.md` §5): what a client sees of a
//! record. Times as RFC 3339; member names are not in it (they are in the manifest).

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::record::{BatchRecord, Decision};

fn when(unix: u64) -> Value {
    OffsetDateTime::from_unix_timestamp(i64::try_from(unix).unwrap_or(i64::MAX))
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .map_or(Value::Null, Value::String)
}

fn decision(d: &Decision) -> Value {
    json!({"by": d.by, "reason": d.reason, "at": when(d.at)})
}

/// The batch document. `admitted` is the number of member uploads bound (when known).
pub fn batch_json(r: &BatchRecord) -> Value {
    json!({
        "id": r.id.to_string(),
        "state": r.state.as_str(),
        "owner": r.owner,
        "profile": r.profile,
        "created_at": when(r.created_at),
        "expires_at": r.expires_at.map_or(Value::Null, when),
        "manifest_sha256": r.manifest.sha256,
        "provenance_sha256": r.provenance.as_ref().map(|d| d.sha256.clone()),
        "members": {"listed": r.listed, "listed_bytes": r.listed_bytes},
        "sealed": r.sealed.as_ref().map(|d| json!({"by": d.by, "at": when(d.at)})),
        "progress": r.progress.as_ref().map(|p| json!({
            "members_checked": p.members_checked,
            "members_total": p.members_total,
            "bytes_checked": p.bytes_checked,
            "bytes_total": p.bytes_total,
        })),
        "verdict": r.verdict.as_ref().map(|v| json!({
            "at": when(v.at),
            "passed": v.passed,
            "findings": v.findings,
            "report_sha256": v.report.sha256,
        })),
        "approvals": r.approvals.iter().map(decision).collect::<Vec<_>>(),
        "released": r.released.as_ref().map(decision),
        "retain_until": r.retain_until.map_or(Value::Null, when),
        "purged": r.purged.as_ref().map(decision),
    })
}
