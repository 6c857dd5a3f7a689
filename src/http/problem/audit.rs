//! Rows for audit queries and traces (`GET /v1/audit/events`, `GET /v1/audit/trace/{id}`):
//! one code per bad parameter, with the parameter's name (never its value) as the
//! `parameter` member of the problem body.

use http::StatusCode;

use super::row::{Describe, Problem, row};
use crate::audit::query::QueryError;
use crate::audit::search::SearchError;

impl Describe for QueryError {
    fn problem(&self) -> Problem {
        let bad = StatusCode::BAD_REQUEST;
        match self {
            QueryError::Unknown => row(
                bad,
                "audit.query_unknown_parameter",
                "Unknown query parameter",
            ),
            QueryError::Duplicate(_) => row(
                bad,
                "audit.query_duplicate_parameter",
                "A query parameter was given twice",
            ),
            QueryError::Encoded(_) => row(
                bad,
                "audit.query_encoded",
                "Query values are taken literally; percent-encoding and '+' are refused",
            ),
            QueryError::Time(_) => row(
                bad,
                "audit.query_bad_time",
                "since and until are RFC 3339 UTC times such as 2026-12-06T02:21:57Z",
            ),
            QueryError::Window => row(bad, "audit.query_bad_window", "since is after until"),
            QueryError::Id(_) => row(
                bad,
                "audit.query_bad_id",
                "upload, batch, artifact and grant are opaque ids (26 lowercase base32 characters)",
            ),
            QueryError::Principal => row(
                bad,
                "audit.query_bad_principal",
                "principal is a client name",
            ),
            QueryError::Client => row(
                bad,
                "audit.query_bad_client",
                "client is an IP address or a CIDR block",
            ),
            QueryError::Action => row(
                bad,
                "audit.query_bad_action",
                "action is an action such as link.issued or a prefix ending in '.'",
            ),
            QueryError::Outcome => row(
                bad,
                "audit.query_bad_outcome",
                "outcome is success, failure or denied",
            ),
            QueryError::Limit => row(
                bad,
                "audit.query_bad_limit",
                "limit is a number from 1 to 1000",
            ),
            QueryError::Cursor => row(bad, "audit.query_bad_cursor", "Malformed cursor"),
            QueryError::CursorMismatch => row(
                bad,
                "audit.query_cursor_mismatch",
                "The cursor belongs to another query; repeat the query's own parameters",
            ),
        }
    }

    fn members(&self) -> Option<serde_json::Map<String, serde_json::Value>> {
        let p = self.parameter()?;
        let mut m = serde_json::Map::new();
        m.insert("parameter".into(), p.into());
        Some(m)
    }
}

impl Describe for SearchError {
    fn problem(&self) -> Problem {
        match self {
            SearchError::Query(e) => e.problem(),
            SearchError::Store(e) => e.problem(),
            SearchError::Audit(e) => e.problem(),
        }
    }

    fn members(&self) -> Option<serde_json::Map<String, serde_json::Value>> {
        match self {
            SearchError::Query(e) => e.members(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_query_error_is_a_400_with_its_own_code() {
        let all = [
            QueryError::Unknown,
            QueryError::Duplicate("limit"),
            QueryError::Encoded("since"),
            QueryError::Time("since"),
            QueryError::Window,
            QueryError::Id("grant"),
            QueryError::Principal,
            QueryError::Client,
            QueryError::Action,
            QueryError::Outcome,
            QueryError::Limit,
            QueryError::Cursor,
            QueryError::CursorMismatch,
        ];
        let mut codes = std::collections::BTreeSet::new();
        for e in &all {
            let p = e.problem();
            assert_eq!(p.status, StatusCode::BAD_REQUEST, "{e:?}");
            assert!(p.code.starts_with("audit."), "{e:?}");
            assert!(codes.insert(p.code), "{} twice", p.code);
        }
        let m = QueryError::Id("grant").members().unwrap();
        assert_eq!(m["parameter"], "grant");
        assert!(QueryError::Window.members().is_none());
    }
}
