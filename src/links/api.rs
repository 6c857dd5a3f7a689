//! The links API's request and response shapes: JSON bodies and query strings parsed into
//! the service's typed requests (refusals are [`LinkError`] variants, one per malformed
//! field), and grants rendered as JSON. Pure: no I/O, no HTTP.
//!
//! * `POST /v1/links` — [`IssueBody`] → [`IssueRequest`] (`client_cert_of` is resolved
//!   against the configured clients to the certificate the link is bound to);
//! * `GET /v1/links?artifact=…|partner=…|batch=…[&after=…][&limit=…]` — [`ListQuery`];
//! * `DELETE /v1/links/{grant}` — [`RevokeBody`] (optional);
//! * `POST /v1/links/revoke` — [`BulkBody`] → a [`GrantFilter`] and a [`Reason`].

use serde::Deserialize;
use serde_json::{Value, json};

use super::{IssueRequest, LinkError};
use crate::auth::{ClientName, ClientRegistry};
use crate::grant::{GrantFilter, GrantRecord, Limits, MAX_PAGE, Reason};
use crate::signed_link::{Bindings, CertFingerprint, ClientNet, GrantId, ResponseFileName};

/// The body of `POST /v1/links`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssueBody {
    artifact: String,
    partner: String,
    ttl: Option<String>,
    not_before: Option<u64>,
    methods: Option<String>,
    max_downloads: Option<u32>,
    max_bytes: Option<u64>,
    client_net: Option<String>,
    client_cert_sha256: Option<String>,
    client_cert_of: Option<String>,
    file_name: Option<String>,
}

impl IssueBody {
    /// The validated request. `client_cert_of` names a configured client whose
    /// certificate (`cert_sha256`) the link is bound to, looked up in `clients`.
    pub fn into_request(self, clients: &ClientRegistry) -> Result<IssueRequest, LinkError> {
        let b = self;
        let artifact = b.artifact.parse().map_err(|_| LinkError::BadArtifact)?;
        let partner = b.partner.parse().map_err(|_| LinkError::BadPartner)?;
        let ttl = b
            .ttl
            .as_deref()
            .map(crate::config::units::parse_duration)
            .transpose()
            .map_err(|_| LinkError::BadTtlFormat)?;
        let methods = match b.methods.as_deref() {
            None => crate::signed_link::MethodSet::GetHead,
            Some(m) => m.parse().map_err(|()| LinkError::BadMethods)?,
        };
        let client_net = b
            .client_net
            .as_deref()
            .map(str::parse::<ClientNet>)
            .transpose()
            .map_err(|_| LinkError::BadClientNet)?;
        let client_cert = match (b.client_cert_sha256.as_deref(), b.client_cert_of.as_deref()) {
            (Some(fp), None) => Some(parse_fingerprint(fp)?),
            (None, Some(name)) => Some(certificate_of(clients, name)?),
            (None, None) => None,
            (Some(_), Some(_)) => return Err(LinkError::BadClientCertOf),
        };
        let file_name = b
            .file_name
            .as_deref()
            .map(ResponseFileName::new)
            .transpose()
            .map_err(|_| LinkError::BadFileName)?;
        Ok(IssueRequest {
            artifact,
            partner,
            ttl,
            not_before: b.not_before,
            methods,
            limits: Limits {
                max_downloads: b.max_downloads,
                max_bytes: b.max_bytes,
            },
            bindings: Bindings {
                client_net,
                client_cert,
            },
            file_name,
        })
    }
}

/// The certificate of the configured client `name`.
fn certificate_of(clients: &ClientRegistry, name: &str) -> Result<CertFingerprint, LinkError> {
    let name: ClientName = name.parse().map_err(|_| LinkError::BadClientCertOf)?;
    let client = clients
        .client(name.as_str())
        .ok_or(LinkError::UnknownClient)?;
    client
        .cert
        .sha256
        .map(CertFingerprint::from_bytes)
        .ok_or(LinkError::ClientWithoutCertificate)
}

/// A certificate fingerprint: 64 hex digits (as `whoami` and `openssl x509 -fingerprint`
/// print it, colons allowed) or 43 characters of unpadded base64url (the link form).
fn parse_fingerprint(s: &str) -> Result<CertFingerprint, LinkError> {
    let hexed: String = s.chars().filter(|c| *c != ':').collect();
    let mut bytes = [0u8; 32];
    if hexed.len() == 64 && hex::decode_to_slice(hexed.as_bytes(), &mut bytes).is_ok() {
        return Ok(CertFingerprint::from_bytes(bytes));
    }
    s.parse().map_err(|()| LinkError::BadClientCert)
}

/// The body of `DELETE /v1/links/{grant}` (optional).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeBody {
    reason: Option<String>,
}

impl RevokeBody {
    /// The revocation reason (`revoked` when none is given).
    pub fn reason(body: Option<&Self>) -> Result<Reason, LinkError> {
        parse_reason(body.and_then(|b| b.reason.as_deref()))
    }
}

/// The body of `POST /v1/links/revoke`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BulkBody {
    artifact: Option<String>,
    partner: Option<String>,
    batch: Option<String>,
    reason: String,
}

impl BulkBody {
    /// The selector (exactly one of artifact, partner, batch) and the reason.
    pub fn parse(&self) -> Result<(GrantFilter, Reason), LinkError> {
        let filter = match (&self.artifact, &self.partner, &self.batch) {
            (Some(a), None, None) => a.parse().ok().map(GrantFilter::Artifact),
            (None, Some(p), None) => p.parse().ok().map(GrantFilter::Partner),
            (None, None, Some(b)) => b.parse().ok().map(GrantFilter::Batch),
            _ => None,
        }
        .ok_or(LinkError::BadSelector)?;
        Ok((filter, parse_reason(Some(&self.reason))?))
    }
}

fn parse_reason(text: Option<&str>) -> Result<Reason, LinkError> {
    text.unwrap_or("revoked")
        .parse()
        .map_err(|_| LinkError::BadReason)
}

/// What was wrong with a listing's query string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// A value is percent- or plus-encoded (ids and names never need it).
    #[error("query values need no encoding")]
    Encoded,
    /// A parameter the listing does not know.
    #[error("unknown query parameter")]
    Unknown,
    /// `after` is not a grant id.
    #[error("after is not a grant id")]
    After,
    /// `limit` is not 1 to [`MAX_PAGE`].
    #[error("limit is out of range")]
    Limit,
    /// `artifact`, `partner` or `batch` is malformed.
    #[error("malformed selector")]
    Selector,
    /// None, or more than one, of `artifact`, `partner`, `batch`.
    #[error("exactly one selector is required")]
    SelectorCount,
}

/// A parsed `GET /v1/links` query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    /// Which grants.
    pub filter: GrantFilter,
    /// Resume after this grant.
    pub after: Option<GrantId>,
    /// Page size.
    pub limit: usize,
}

impl ListQuery {
    /// Parses the query string (without `?`).
    pub fn parse(query: &str) -> Result<Self, QueryError> {
        let mut filter = None;
        let mut after = None;
        let mut limit = 100usize;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            if v.contains('%') || v.contains('+') {
                return Err(QueryError::Encoded);
            }
            let parsed = match k {
                "artifact" => v.parse().ok().map(GrantFilter::Artifact),
                "partner" => v.parse().ok().map(GrantFilter::Partner),
                "batch" => v.parse().ok().map(GrantFilter::Batch),
                "after" => {
                    after = Some(v.parse::<GrantId>().map_err(|_| QueryError::After)?);
                    continue;
                }
                "limit" => {
                    limit = v
                        .parse()
                        .ok()
                        .filter(|n| (1..=MAX_PAGE).contains(n))
                        .ok_or(QueryError::Limit)?;
                    continue;
                }
                _ => return Err(QueryError::Unknown),
            };
            if filter
                .replace(parsed.ok_or(QueryError::Selector)?)
                .is_some()
            {
                return Err(QueryError::SelectorCount);
            }
        }
        Ok(Self {
            filter: filter.ok_or(QueryError::SelectorCount)?,
            after,
            limit,
        })
    }
}

/// The JSON form of a grant (the file name is returned to the publisher that may set it).
pub fn grant_json(g: &GrantRecord, now: u64, usage: Option<Value>) -> Value {
    let status = if g.is_revoked() {
        "revoked"
    } else if now >= g.expires {
        "expired"
    } else if now < g.not_before {
        "not_yet_valid"
    } else {
        "active"
    };
    json!({
        "grant": g.id.to_string(),
        "status": status,
        "issuer": g.issuer,
        "partner": g.partner.as_str(),
        "artifacts": g.scope.artifacts.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "batch": g.scope.batch.as_ref().map(ToString::to_string),
        "methods": g.methods.as_str(),
        "not_before": g.not_before,
        "expires": g.expires,
        "expires_at": rfc3339(g.expires),
        "created_at": g.created_at,
        "key_id": g.key_id.as_str(),
        "limits": {"max_downloads": g.limits.max_downloads, "max_bytes": g.limits.max_bytes},
        "bindings": {
            "client_net": g.bindings.client_net.map(|n| n.to_string()),
            "client_cert_sha256": g.bindings.client_cert.map(|c| hex::encode(c.as_bytes())),
        },
        "file_name": g.file_name.as_ref().map(|n| n.as_str()),
        "revoked": g.revoked.as_ref().map(|r| json!({
            "at": r.at, "by": r.by, "reason": r.reason.as_str(),
        })),
        "usage": usage,
    })
}

fn rfc3339(secs: u64) -> Option<String> {
    let t = time::OffsetDateTime::from_unix_timestamp(i64::try_from(secs).ok()?).ok()?;
    t.format(&time::format_description::well_known::Rfc3339)
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_queries_parse_or_say_what_is_wrong() {
        let a = crate::signed_link::ArtifactId::random();
        let q = ListQuery::parse(&format!("artifact={a}&limit=5")).unwrap();
        assert_eq!(q.filter, GrantFilter::Artifact(a));
        assert_eq!((q.after, q.limit), (None, 5));
        let cases = [
            ("", QueryError::SelectorCount),
            ("partner=clinic-a&batch=b1", QueryError::SelectorCount),
            ("partner=clinic%2Da", QueryError::Encoded),
            ("partner=a+b", QueryError::Encoded),
            ("colour=red", QueryError::Unknown),
            ("partner=clinic-a&after=nope", QueryError::After),
            ("partner=clinic-a&limit=0", QueryError::Limit),
            ("partner=clinic-a&limit=1001", QueryError::Limit),
            ("artifact=not-an-id", QueryError::Selector),
        ];
        for (query, want) in cases {
            assert_eq!(ListQuery::parse(query), Err(want), "{query}");
        }
    }

    #[test]
    fn issue_bodies_name_the_field_that_is_wrong() {
        let a = crate::signed_link::ArtifactId::random();
        let body = |fields: &str| -> IssueBody {
            serde_json::from_str(&format!(r#"{{"artifact":"{a}",{fields}}}"#)).unwrap()
        };
        let ok = r#""partner":"clinic-a""#;
        let clients = ClientRegistry::new(vec![
            crate::auth::ApiClient {
                name: "partner-a".parse().unwrap(),
                hash: None,
                cert: crate::auth::CertBinding {
                    sha256: Some([5; 32]),
                    san: None,
                },
                roles: [crate::auth::Role::Uploader].into_iter().collect(),
                scope: Default::default(),
            },
            crate::auth::ApiClient {
                name: "ops".parse().unwrap(),
                hash: Some(crate::auth::TokenHash::of_token(b"t")),
                cert: Default::default(),
                roles: [crate::auth::Role::Admin].into_iter().collect(),
                scope: Default::default(),
            },
        ])
        .unwrap();
        assert!(body(ok).into_request(&clients).is_ok());
        let bound = body(&format!(r#"{ok},"client_cert_of":"partner-a""#))
            .into_request(&clients)
            .unwrap();
        assert_eq!(
            bound.bindings.client_cert,
            Some(CertFingerprint::from_bytes([5; 32]))
        );
        let wrong = |fields: &str| body(fields).into_request(&clients).unwrap_err();
        assert!(matches!(
            wrong(r#""partner":"Clinic A""#),
            LinkError::BadPartner
        ));
        let with = |extra: &str| wrong(&format!("{ok},{extra}"));
        assert!(matches!(with(r#""ttl":"soon""#), LinkError::BadTtlFormat));
        assert!(matches!(with(r#""methods":"POST""#), LinkError::BadMethods));
        assert!(matches!(
            with(r#""client_net":"10.0.0.1/8""#),
            LinkError::BadClientNet
        ));
        assert!(matches!(
            with(r#""client_cert_sha256":"zz""#),
            LinkError::BadClientCert
        ));
        assert!(matches!(
            with(r#""file_name":"../x""#),
            LinkError::BadFileName
        ));
        assert!(matches!(
            with(r#""client_cert_of":"nobody""#),
            LinkError::UnknownClient
        ));
        assert!(matches!(
            with(r#""client_cert_of":"ops""#),
            LinkError::ClientWithoutCertificate
        ));
        assert!(matches!(
            with(r#""client_cert_of":"a b""#),
            LinkError::BadClientCertOf
        ));
        assert!(matches!(
            with(&format!(
                r#""client_cert_of":"partner-a","client_cert_sha256":"{}""#,
                "ab".repeat(32)
            )),
            LinkError::BadClientCertOf
        ));
        let bad_artifact: IssueBody =
            serde_json::from_str(r#"{"artifact":"nope","partner":"clinic-a"}"#).unwrap();
        assert!(matches!(
            bad_artifact.into_request(&clients),
            Err(LinkError::BadArtifact)
        ));
    }
}
