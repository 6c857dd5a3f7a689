//! What a configured client's TLS certificate must show to be that client: the SHA-256 of
//! its DER (one certificate, pinned), a subject alternative name (any certificate the
//! configured client CA issues with that name: renewals need no configuration change), or
//! both (both must match).
//!
//! A SAN is only as strong as the client CA (`tls.client_ca`): every certificate that CA
//! signs for the name is the client. Configure a SAN only for a CA that issues that name to
//! that partner alone; pin the SHA-256 otherwise. Wildcards are refused in the
//! configuration, and a certificate's own wildcard SAN (`*.example.org`) is compared as
//! the literal text it is, so it never matches a configured name.
//!
//! Names are compared with the [`ClientIdentity::sans`] the edge extracted: DNS names
//! ASCII case-insensitively (RFC 4343), URIs and e-mail addresses exactly.

use std::fmt;
use std::str::FromStr;

use subtle::ConstantTimeEq;

use super::ClientIdentity;

/// Longest configured SAN value, in bytes.
pub const MAX_SAN_LEN: usize = 255;

/// The kind of a subject alternative name (the prefix in `dns:…`, `uri:…`, `email:…`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SanKind {
    /// `dNSName`.
    Dns,
    /// `uniformResourceIdentifier` (e.g. a SPIFFE id).
    Uri,
    /// `rfc822Name`.
    Email,
}

impl SanKind {
    const fn prefix(self) -> &'static str {
        match self {
            SanKind::Dns => "dns:",
            SanKind::Uri => "uri:",
            SanKind::Email => "email:",
        }
    }
}

/// A configured subject alternative name, `dns:lab.partner.example`,
/// `uri:spiffe://partner.example/exporter` or `email:ops@partner.example`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertSan {
    kind: SanKind,
    value: String,
}

impl CertSan {
    /// Whether one of a certificate's names (as [`ClientIdentity::sans`] writes them) is
    /// this one.
    pub fn matches(&self, sans: &[String]) -> bool {
        let prefix = self.kind.prefix();
        sans.iter().any(|s| {
            s.strip_prefix(prefix).is_some_and(|v| match self.kind {
                SanKind::Dns => v.eq_ignore_ascii_case(&self.value),
                SanKind::Uri | SanKind::Email => v == self.value,
            })
        })
    }

    /// Whether two configured names would match the same certificates.
    fn same_as(&self, other: &CertSan) -> bool {
        self.kind == other.kind
            && match self.kind {
                SanKind::Dns => self.value.eq_ignore_ascii_case(&other.value),
                SanKind::Uri | SanKind::Email => self.value == other.value,
            }
    }
}

impl FromStr for CertSan {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (kind, value) = [SanKind::Dns, SanKind::Uri, SanKind::Email]
            .into_iter()
            .find_map(|k| s.strip_prefix(k.prefix()).map(|v| (k, v)))
            .ok_or(
                "must start with dns:, uri: or email: (as `whoami` lists the certificate's \
                 names), e.g. dns:lab.partner.example",
            )?;
        if value.is_empty() || value.len() > MAX_SAN_LEN {
            return Err(format!(
                "the name after {:?} has 1 to {MAX_SAN_LEN} bytes",
                kind.prefix()
            ));
        }
        if !value.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("the name is printable ASCII without spaces".into());
        }
        if value.contains('*') {
            return Err("wildcards are not accepted: name one certificate identity".into());
        }
        let well_formed = match kind {
            SanKind::Dns => value.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            }),
            SanKind::Uri => value
                .split_once(':')
                .is_some_and(|(scheme, rest)| !scheme.is_empty() && !rest.is_empty()),
            SanKind::Email => value
                .split_once('@')
                .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty()),
        };
        if !well_formed {
            return Err(match kind {
                SanKind::Dns => "not a DNS name (labels of letters, digits and '-')",
                SanKind::Uri => "not an absolute URI (scheme:rest)",
                SanKind::Email => "not an e-mail address (local@domain)",
            }
            .into());
        }
        Ok(Self {
            kind,
            value: value.to_owned(),
        })
    }
}

impl fmt::Display for CertSan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.kind.prefix(), self.value)
    }
}

/// What a client's certificate must show (nothing, when neither is configured).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertBinding {
    /// `cert_sha256`: the SHA-256 of the certificate's DER.
    pub sha256: Option<[u8; 32]>,
    /// `cert_san`: a subject alternative name it must carry.
    pub san: Option<CertSan>,
}

impl CertBinding {
    /// The binding configured by `cert_sha256` and `cert_san`; an error names the key.
    pub fn from_config(
        sha256: Option<&str>,
        san: Option<&str>,
    ) -> Result<Self, (&'static str, String)> {
        Ok(Self {
            sha256: sha256
                .map(parse_sha256)
                .transpose()
                .map_err(|m| ("cert_sha256", m))?,
            san: san
                .map(str::parse)
                .transpose()
                .map_err(|m| ("cert_san", m))?,
        })
    }

    /// Whether a certificate is configured at all.
    pub fn is_set(&self) -> bool {
        self.sha256.is_some() || self.san.is_some()
    }

    /// Whether `cert` is the client's certificate: everything configured matches (the
    /// fingerprint in constant time). `false` when nothing is configured.
    pub fn matches(&self, cert: Option<&ClientIdentity>) -> bool {
        let Some(cert) = cert else {
            return false;
        };
        if !self.is_set() {
            return false;
        }
        let sha_ok = self
            .sha256
            .is_none_or(|fp| bool::from(fp.ct_eq(&cert.fingerprint_sha256)));
        let san_ok = self.san.as_ref().is_none_or(|s| s.matches(&cert.sans));
        sha_ok && san_ok
    }

    /// Whether the two are configured to the same identity (the same pinned SHA-256, or
    /// the same name where they do not pin two different certificates): the registry
    /// refuses that. A pinned certificate and another client's name can still meet in one
    /// certificate; authentication refuses such a certificate instead of choosing.
    pub fn overlaps(&self, other: &CertBinding) -> bool {
        match (self.sha256, other.sha256) {
            (Some(a), Some(b)) => a == b,
            _ => matches!((&self.san, &other.san), (Some(a), Some(b)) if a.same_as(b)),
        }
    }
}

/// A certificate's SHA-256: 64 hex digits, colons allowed (as `openssl x509 -fingerprint
/// -sha256` prints it).
pub fn parse_sha256(s: &str) -> Result<[u8; 32], String> {
    let hexed: String = s.chars().filter(|c| *c != ':').collect();
    let mut out = [0u8; 32];
    if hexed.len() != 64 || hex::decode_to_slice(hexed.as_bytes(), &mut out).is_err() {
        return Err(
            "must be 64 hexadecimal digits (colons allowed): the SHA-256 of the client \
             certificate's DER (`openssl x509 -noout -fingerprint -sha256`)"
                .into(),
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(fp: u8, sans: &[&str]) -> ClientIdentity {
        ClientIdentity {
            fingerprint_sha256: [fp; 32],
            subject: "CN=x".into(),
            sans: sans.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn binding(sha: Option<u8>, san: Option<&str>) -> CertBinding {
        CertBinding {
            sha256: sha.map(|b| [b; 32]),
            san: san.map(|s| s.parse().unwrap()),
        }
    }

    #[test]
    fn names_parse_strictly() {
        for ok in [
            "dns:lab.partner.example",
            "dns:LAB-1.Partner.example",
            "uri:spiffe://partner.example/exporter",
            "email:ops@partner.example",
        ] {
            assert_eq!(ok.parse::<CertSan>().unwrap().to_string(), ok);
        }
        for (bad, says) in [
            ("lab.partner.example", "must start with"),
            ("DNS:lab.partner.example", "must start with"),
            ("ip:10.0.0.1", "must start with"),
            ("dns:", "1 to 255"),
            (&format!("dns:{}", "a".repeat(256)), "1 to 255"),
            ("dns:lab partner", "printable ASCII"),
            ("dns:lab\u{e9}.example", "printable ASCII"),
            ("dns:*.partner.example", "wildcards"),
            ("dns:lab..example", "not a DNS name"),
            ("dns:lab_1.example", "not a DNS name"),
            ("uri:no-scheme", "not an absolute URI"),
            ("email:nobody", "not an e-mail"),
        ] {
            let e = bad.parse::<CertSan>().unwrap_err();
            assert!(e.contains(says), "{bad:?}: {e}");
        }
    }

    #[test]
    fn matching() {
        let dns = binding(None, Some("dns:lab.partner.example"));
        assert!(dns.matches(Some(&identity(1, &["dns:LAB.partner.example"]))));
        assert!(dns.matches(Some(&identity(9, &["uri:x:y", "dns:lab.partner.example"]))));
        assert!(!dns.matches(Some(&identity(1, &["dns:other.partner.example"]))));
        // The same text under another kind, a wildcard certificate, a suffix: no.
        assert!(!dns.matches(Some(&identity(1, &["uri:lab.partner.example"]))));
        assert!(!dns.matches(Some(&identity(1, &["dns:*.partner.example"]))));
        assert!(!dns.matches(Some(&identity(1, &["dns:evil-lab.partner.example"]))));
        assert!(!dns.matches(None));
        let uri = binding(None, Some("uri:spiffe://partner.example/exporter"));
        assert!(!uri.matches(Some(&identity(
            1,
            &["uri:spiffe://PARTNER.example/exporter"]
        ))));
        // Both configured: both must match.
        let both = binding(Some(7), Some("dns:lab.partner.example"));
        assert!(both.matches(Some(&identity(7, &["dns:lab.partner.example"]))));
        assert!(!both.matches(Some(&identity(8, &["dns:lab.partner.example"]))));
        assert!(!both.matches(Some(&identity(7, &["dns:x.partner.example"]))));
        assert!(!CertBinding::default().matches(Some(&identity(7, &[]))));
    }

    #[test]
    fn overlaps() {
        let a = binding(Some(1), None);
        assert!(a.overlaps(&binding(Some(1), Some("dns:a.example"))));
        assert!(!a.overlaps(&binding(Some(2), None)));
        assert!(!a.overlaps(&binding(None, Some("dns:a.example"))));
        let n = binding(None, Some("dns:A.example"));
        assert!(n.overlaps(&binding(None, Some("dns:a.EXAMPLE"))));
        assert!(n.overlaps(&binding(Some(3), Some("dns:a.example"))));
        assert!(!n.overlaps(&binding(None, Some("dns:b.example"))));
        assert!(!n.overlaps(&binding(None, Some("uri:dns:a.example"))));
        assert!(
            !binding(Some(3), Some("dns:a.example"))
                .overlaps(&binding(Some(4), Some("dns:a.example")))
        );
        assert!(!n.overlaps(&CertBinding::default()));
    }
}
