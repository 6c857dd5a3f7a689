//! Routing by parsing: a request's method and path become an [`Endpoint`] value before any
//! handler runs. Handlers match on it; the router's tests are a table of
//! `METHOD path => Endpoint`. Path segments that carry ids are parsed into id types here,
//! so a handler never sees a raw path string.

use http::Method;

use super::problem::ApiError;

/// Every endpoint the gateway serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `GET|HEAD /healthz`: the process is alive.
    Healthz,
    /// `GET|HEAD /readyz`: the state and blob stores answer.
    Readyz,
    /// `GET /metrics`: Prometheus exposition.
    Metrics,
    /// `GET /v1/whoami`: the authenticated principal (for checking a token or client cert).
    WhoAmI,
    /// `GET /v1/audit/verify`: verify the audit chain (auditor).
    AuditVerify,
}

impl Endpoint {
    /// A short static name, used as the metrics label.
    pub fn name(&self) -> &'static str {
        match self {
            Endpoint::Healthz => "healthz",
            Endpoint::Readyz => "readyz",
            Endpoint::Metrics => "metrics",
            Endpoint::WhoAmI => "whoami",
            Endpoint::AuditVerify => "audit_verify",
        }
    }

    /// The largest request body the endpoint accepts whole; `None` for endpoints that
    /// stream their body with limits of their own (uploads).
    pub fn body_limit(&self, configured: u64) -> Option<u64> {
        match self {
            Endpoint::Healthz
            | Endpoint::Readyz
            | Endpoint::Metrics
            | Endpoint::WhoAmI
            | Endpoint::AuditVerify => Some(configured),
        }
    }

    /// Whether responses are API responses (`Cache-Control: no-store`).
    pub fn is_api(&self) -> bool {
        true
    }

    /// Parses a method and path.
    pub fn parse(method: &Method, path: &str) -> Result<Endpoint, ApiError> {
        let get_head = |e| match *method {
            Method::GET | Method::HEAD => Ok(e),
            _ => Err(ApiError::MethodNotAllowed { allow: "GET, HEAD" }),
        };
        let get = |e| match *method {
            Method::GET => Ok(e),
            _ => Err(ApiError::MethodNotAllowed { allow: "GET" }),
        };
        match path {
            "/healthz" => get_head(Endpoint::Healthz),
            "/readyz" => get_head(Endpoint::Readyz),
            "/metrics" => get(Endpoint::Metrics),
            "/v1/whoami" => get(Endpoint::WhoAmI),
            "/v1/audit/verify" => get(Endpoint::AuditVerify),
            _ => Err(ApiError::NotFound),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_table() {
        let ok = [
            ("GET", "/healthz", Endpoint::Healthz),
            ("HEAD", "/healthz", Endpoint::Healthz),
            ("GET", "/readyz", Endpoint::Readyz),
            ("GET", "/metrics", Endpoint::Metrics),
            ("GET", "/v1/whoami", Endpoint::WhoAmI),
            ("GET", "/v1/audit/verify", Endpoint::AuditVerify),
        ];
        for (m, p, e) in ok {
            assert_eq!(
                Endpoint::parse(&m.parse().unwrap(), p).unwrap(),
                e,
                "{m} {p}"
            );
        }
        let not_found = [
            "/",
            "/healthz/",
            "/HEALTHZ",
            "/v1/whoami/x",
            "//healthz",
            "/healthz%20",
        ];
        for p in not_found {
            assert!(
                matches!(Endpoint::parse(&Method::GET, p), Err(ApiError::NotFound)),
                "{p}"
            );
        }
        assert!(matches!(
            Endpoint::parse(&Method::POST, "/healthz"),
            Err(ApiError::MethodNotAllowed { allow: "GET, HEAD" })
        ));
        assert!(matches!(
            Endpoint::parse(&Method::DELETE, "/metrics"),
            Err(ApiError::MethodNotAllowed { allow: "GET" })
        ));
    }
}
