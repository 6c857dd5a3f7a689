//! The URL form of a signed link: strict parsing and the one rendering.
//!
//! ```text
//! link   = "/d/" artifact "?" "v=1" "&k=" kid "&g=" grant "&m=" methods
//!          "&nb=" time "&exp=" time [ "&ip=" cidr ] [ "&fp=" b64url32 ] "&sig=" b64url32
//! ```
//!
//! Parsing accepts exactly the strings [`SignedLink::to_url`] writes. The checks run in
//! this order, and the first failure is the reported [`LinkParseError`]: total length;
//! alphabet (`%` reported separately); path; parameter structure (empty elements, missing
//! `=`, empty values, unknown names, duplicates, order); required parameters; then each
//! value in URL order. No byte is ever decoded from percent-encoding and no `+` means a
//! space, so there is no second spelling of any name or value.
//!
//! Not here: the signature check (see [`super::LinkKeyring::verify`]).

use std::fmt;
use std::fmt::Write as _;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::claims::{Bindings, CertFingerprint, LinkClaims, MethodSet, UnixTime, decode_b64url_32};
use super::error::LinkParseError;
use super::ids::{ArtifactId, GrantId, KeyId};
use super::net::ClientNet;

/// The path prefix of every link.
pub const LINK_PATH_PREFIX: &str = "/d/";

/// The longest request target accepted as a link, in bytes. The longest canonical link
/// (32-character key id, 20-digit times, a 39-character IPv6 block and a fingerprint) is
/// 299 bytes.
pub const MAX_LINK_LEN: usize = 512;

/// Query parameter names in canonical order.
const NAMES: [&str; 9] = ["v", "k", "g", "m", "nb", "exp", "ip", "fp", "sig"];
const V: usize = 0;
const K: usize = 1;
const G: usize = 2;
const M: usize = 3;
const NB: usize = 4;
const EXP: usize = 5;
const IP: usize = 6;
const FP: usize = 7;
const SIG: usize = 8;
const REQUIRED: [usize; 7] = [V, K, G, M, NB, EXP, SIG];

/// A parsed link: claims, the key id and the signature, not yet verified.
#[derive(Clone, PartialEq, Eq)]
pub struct SignedLink {
    key_id: KeyId,
    claims: LinkClaims,
    signature: [u8; 32],
}

impl SignedLink {
    /// Parse a request target (`path?query`, as in `Uri::path_and_query`).
    pub fn parse(target: &str) -> Result<Self, LinkParseError> {
        if target.len() > MAX_LINK_LEN {
            return Err(LinkParseError::TooLong);
        }
        check_alphabet(target.as_bytes())?;
        let rest = target
            .strip_prefix(LINK_PATH_PREFIX)
            .ok_or(LinkParseError::Path)?;
        let (artifact_text, query) = rest.split_once('?').ok_or(LinkParseError::Path)?;
        if query.contains('?') {
            return Err(LinkParseError::ForbiddenCharacter);
        }
        let artifact: ArtifactId = artifact_text
            .parse()
            .map_err(|_| LinkParseError::Artifact)?;
        let values = split_parameters(query)?;
        if REQUIRED.iter().any(|&i| values[i].is_none()) {
            return Err(LinkParseError::MissingParameter);
        }
        let value = |i: usize| values[i].unwrap_or("");

        parse_version(value(V))?;
        let key_id: KeyId = value(K).parse().map_err(|_| LinkParseError::KeyId)?;
        let grant: GrantId = value(G).parse().map_err(|_| LinkParseError::Grant)?;
        let methods: MethodSet = value(M).parse().map_err(|_| LinkParseError::Methods)?;
        let not_before: UnixTime = value(NB).parse().map_err(|_| LinkParseError::Time)?;
        let expires: UnixTime = value(EXP).parse().map_err(|_| LinkParseError::Time)?;
        let client_net = values[IP]
            .map(|s| s.parse::<ClientNet>())
            .transpose()
            .map_err(|_| LinkParseError::ClientNet)?;
        let client_cert = values[FP]
            .map(|s| s.parse::<CertFingerprint>())
            .transpose()
            .map_err(|_| LinkParseError::CertFingerprint)?;
        let signature = decode_b64url_32(value(SIG)).map_err(|_| LinkParseError::Signature)?;
        let bindings = Bindings {
            client_net,
            client_cert,
        };
        let claims = LinkClaims::new(artifact, grant, methods, not_before, expires, bindings)
            .map_err(|_| LinkParseError::EmptyWindow)?;
        Ok(Self {
            key_id,
            claims,
            signature,
        })
    }

    /// The key id the link says it was signed with (unverified until
    /// [`super::LinkKeyring::verify`] succeeds).
    pub fn key_id(&self) -> &KeyId {
        &self.key_id
    }

    /// The claims, **not verified**: for audit records of a rejected link only. Never
    /// authorise anything from these; use [`super::VerifiedLink`].
    pub fn unverified_claims(&self) -> &LinkClaims {
        &self.claims
    }

    /// The link as a request target (`/d/...?...`). This string is a bearer credential:
    /// give it to the partner, never log it.
    pub fn to_url(&self) -> String {
        let c = &self.claims;
        let mut url = String::with_capacity(256);
        // `write!` into a String cannot fail; that is why its result is ignored.
        let _ = write!(
            url,
            "{LINK_PATH_PREFIX}{}?v={}&k={}&g={}&m={}&nb={}&exp={}",
            c.artifact(),
            super::LINK_VERSION,
            self.key_id,
            c.grant(),
            c.methods().as_str(),
            c.not_before(),
            c.expires(),
        );
        if let Some(net) = c.bindings().client_net {
            let _ = write!(url, "&ip={net}");
        }
        if let Some(fp) = c.bindings().client_cert {
            let _ = write!(url, "&fp={}", fp.to_text());
        }
        let _ = write!(url, "&sig={}", URL_SAFE_NO_PAD.encode(self.signature));
        url
    }

    pub(super) fn from_parts(key_id: KeyId, claims: LinkClaims, signature: [u8; 32]) -> Self {
        Self {
            key_id,
            claims,
            signature,
        }
    }

    pub(super) fn signature(&self) -> &[u8; 32] {
        &self.signature
    }
}

impl fmt::Debug for SignedLink {
    // The signature makes the URL a bearer credential: never print it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedLink")
            .field("key_id", &self.key_id)
            .field("claims", &self.claims)
            .field("signature", &"<redacted>")
            .finish()
    }
}

/// Every byte must be one a canonical link can contain.
fn check_alphabet(bytes: &[u8]) -> Result<(), LinkParseError> {
    for &b in bytes {
        let ok = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.' | b'_' | b':' | b'/' | b',' | b'=' | b'&' | b'?'
            );
        if !ok {
            return Err(if b == b'%' {
                LinkParseError::PercentEncoded
            } else {
                LinkParseError::ForbiddenCharacter
            });
        }
    }
    Ok(())
}

/// Split the query into the nine slots, enforcing structure, uniqueness and order.
fn split_parameters(query: &str) -> Result<[Option<&str>; 9], LinkParseError> {
    let mut values: [Option<&str>; 9] = [None; 9];
    let mut last: Option<usize> = None;
    for pair in query.split('&') {
        let (name, value) = pair.split_once('=').ok_or(LinkParseError::Parameter)?;
        if name.is_empty() || value.is_empty() {
            return Err(LinkParseError::Parameter);
        }
        let index = NAMES
            .iter()
            .position(|&n| n == name)
            .ok_or(LinkParseError::UnknownParameter)?;
        if values[index].is_some() {
            return Err(LinkParseError::DuplicateParameter);
        }
        if last.is_some_and(|l| index < l) {
            return Err(LinkParseError::ParameterOrder);
        }
        values[index] = Some(value);
        last = Some(index);
    }
    Ok(values)
}

/// `v` must be canonical decimal, and 1.
fn parse_version(text: &str) -> Result<(), LinkParseError> {
    let b = text.as_bytes();
    let canonical = !b.is_empty()
        && b.len() <= 9
        && b.iter().all(u8::is_ascii_digit)
        && (b[0] != b'0' || b.len() == 1);
    if !canonical {
        return Err(LinkParseError::Version);
    }
    if text != "1" {
        return Err(LinkParseError::UnsupportedVersion);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "0000000000000000000000000a";
    const G_ID: &str = "0000000000000000000000000g";
    const SIG_TEXT: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

    fn base() -> String {
        format!("/d/{A}?v=1&k=k1&g={G_ID}&m=GET,HEAD&nb=100&exp=200&sig={SIG_TEXT}")
    }

    #[test]
    fn parses_and_renders_the_same_string() {
        for url in [
            base(),
            base().replace("&sig=", "&ip=10.0.0.0/8&sig="),
            base().replace("&sig=", &format!("&fp={SIG_TEXT}&sig=")),
            base().replace("&sig=", &format!("&ip=2001:db8::/32&fp={SIG_TEXT}&sig=")),
        ] {
            let link = SignedLink::parse(&url).expect(&url);
            assert_eq!(link.to_url(), url);
        }
    }

    #[test]
    fn debug_redacts_the_signature() {
        let url = base().replace(SIG_TEXT, "Zm9vYmFyZm9vYmFyZm9vYmFyZm9vYmFyZm9vYmFyZm8");
        let link = SignedLink::parse(&url).expect("valid");
        let debug = format!("{link:?}");
        assert!(
            debug.contains("<redacted>") && !debug.contains("Zm9v"),
            "{debug}"
        );
    }

    #[test]
    fn structural_rejections() {
        use LinkParseError as E;
        let b = base();
        let cases: Vec<(String, E)> = vec![
            (format!("{b}{}", "a".repeat(MAX_LINK_LEN)), E::TooLong),
            (b.replace("k=k1", "k=k%31"), E::PercentEncoded),
            (b.replace("k=k1", "%6b=k1"), E::PercentEncoded),
            (b.replace("k=k1", "k=k1%00"), E::PercentEncoded),
            (b.replace("m=GET,HEAD", "m=GET%2CHEAD"), E::PercentEncoded),
            (b.replace("k=k1", "k=k+1"), E::ForbiddenCharacter),
            (b.replace("k=k1", "k=k 1"), E::ForbiddenCharacter),
            (b.replace("k=k1", "k=k\u{0}1"), E::ForbiddenCharacter),
            (b.replace("k=k1", "k=kä"), E::ForbiddenCharacter),
            (b.replace("k=k1", "k=k;1"), E::ForbiddenCharacter),
            (format!("{b}#frag"), E::ForbiddenCharacter),
            (b.replace("k=k1", "k=k?1"), E::ForbiddenCharacter),
            (
                b.replace(&format!("&sig={SIG_TEXT}"), &format!("&sig={SIG_TEXT}=")),
                E::Signature,
            ),
            (b.replace("/d/", "/D/"), E::Path),
            (b.replace("/d/", "/d//"), E::Artifact),
            (b.replace("/d/", "//d/"), E::Path),
            (b.replace('?', "/?"), E::Artifact),
            (b.replace(&format!("{A}?"), A), E::Path),
            (b.replace(A, "0000000000000000000000000A"), E::Artifact),
            (format!("{b}&"), E::Parameter),
            (b.replace("&k=", "&&k="), E::Parameter),
            (b.replace("k=k1", "k"), E::Parameter),
            (b.replace("k=k1", "k="), E::Parameter),
            (b.replace("k=k1", "=k1"), E::Parameter),
            (b.replace("k=k1", "K=k1"), E::UnknownParameter),
            (b.replace("k=k1", "k=k1&x=1"), E::UnknownParameter),
            (b.replace("k=k1", "k=k1&name=a.ndjson"), E::UnknownParameter),
            (b.replace("k=k1", "k=k1&k=k1"), E::DuplicateParameter),
            (format!("{b}&v=1"), E::DuplicateParameter),
            (b.replace("v=1&k=k1", "k=k1&v=1"), E::ParameterOrder),
            (
                b.replace(&format!("&sig={SIG_TEXT}"), ""),
                E::MissingParameter,
            ),
            (b.replace("&m=GET,HEAD", ""), E::MissingParameter),
            (b.replace("v=1", "v=2"), E::UnsupportedVersion),
            (b.replace("v=1", "v=01"), E::Version),
            (b.replace("v=1", "v=1.0"), E::Version),
            (b.replace("k=k1", "k=K1"), E::KeyId),
            (b.replace(G_ID, "0000000000000000000000000"), E::Grant),
            (b.replace("m=GET,HEAD", "m=get"), E::Methods),
            (b.replace("m=GET,HEAD", "m=HEAD,GET"), E::Methods),
            (b.replace("nb=100", "nb=0100"), E::Time),
            (b.replace("nb=100", "nb=-1"), E::Time),
            (b.replace("exp=200", "exp=18446744073709551616"), E::Time),
            (b.replace("exp=200", "exp=100"), E::EmptyWindow),
            (b.replace("&sig=", "&ip=10.0.0.1/8&sig="), E::ClientNet),
            (b.replace("&sig=", "&ip=10.0.0.0/08&sig="), E::ClientNet),
            (b.replace("&sig=", "&fp=AAAA&sig="), E::CertFingerprint),
            (b.replace(SIG_TEXT, &SIG_TEXT[..42]), E::Signature),
            (
                b.replace(SIG_TEXT, &format!("{}B", &SIG_TEXT[..42])),
                E::Signature,
            ),
            (
                b.replace(SIG_TEXT, &SIG_TEXT.replace('A', "/")),
                E::Signature,
            ),
        ];
        for (url, want) in cases {
            assert_eq!(SignedLink::parse(&url), Err(want), "{url:?}");
        }
    }

    #[test]
    fn every_prefix_and_truncation_is_rejected_without_panic() {
        let url = base().replace("&sig=", "&ip=2001:db8::/32&sig=");
        for end in 0..url.len() {
            assert!(SignedLink::parse(&url[..end]).is_err(), "prefix {end}");
        }
        assert!(SignedLink::parse(&url).is_ok());
    }
}
