//! What a link claims: artifact, grant, allowed methods, validity window and bindings.
//!
//! [`LinkClaims`] is built once, validated ([`LinkClaims::new`] refuses an empty window),
//! and is what both signing and verification feed into the canonical string. Each field
//! has exactly one text form, used both in the URL and in the canonical string.
//!
//! Not here: the key id (chosen by the keyring at signing time) and the response file name
//! (kept in the grant record, never in the URL: see [`super::ResponseFileName`]).

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq;

use super::error::ClaimsError;
use super::ids::{ArtifactId, GrantId};
use super::net::ClientNet;

/// Seconds since the Unix epoch (UTC). Written as canonical decimal: no sign, no leading
/// zeros, at most 20 digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UnixTime(pub u64);

impl UnixTime {
    /// The seconds.
    pub fn secs(self) -> u64 {
        self.0
    }
}

impl fmt::Display for UnixTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Debug for UnixTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UnixTime({})", self.0)
    }
}

impl FromStr for UnixTime {
    type Err = ();

    /// Canonical decimal only: `0`, or a non-zero digit followed by digits; must fit u64.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let b = s.as_bytes();
        let canonical = !b.is_empty()
            && b.len() <= 20
            && b.iter().all(u8::is_ascii_digit)
            && (b[0] != b'0' || b.len() == 1);
        if !canonical {
            return Err(());
        }
        s.parse().map(UnixTime).map_err(|_| ())
    }
}

/// An HTTP method a link can allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// `GET`.
    Get,
    /// `HEAD`.
    Head,
}

impl Method {
    /// The method's name, as in the request line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Head => "HEAD",
        }
    }

    /// The method of an HTTP request, if it is one a link can allow.
    pub fn from_http(method: &http::Method) -> Option<Self> {
        if method == http::Method::GET {
            Some(Self::Get)
        } else if method == http::Method::HEAD {
            Some(Self::Head)
        } else {
            None
        }
    }
}

/// The non-empty set of methods a link allows. Text forms: `GET`, `HEAD`, `GET,HEAD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MethodSet {
    /// Only `GET`.
    Get,
    /// Only `HEAD`.
    Head,
    /// `GET` and `HEAD` (what a downloader normally needs).
    GetHead,
}

impl MethodSet {
    /// Whether `method` is allowed.
    pub fn contains(self, method: Method) -> bool {
        matches!(
            (self, method),
            (Self::Get | Self::GetHead, Method::Get) | (Self::Head | Self::GetHead, Method::Head)
        )
    }

    /// The canonical text form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Head => "HEAD",
            Self::GetHead => "GET,HEAD",
        }
    }
}

impl FromStr for MethodSet {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "GET" => Ok(Self::Get),
            "HEAD" => Ok(Self::Head),
            "GET,HEAD" => Ok(Self::GetHead),
            _ => Err(()),
        }
    }
}

/// The SHA-256 fingerprint of a client certificate's DER encoding (mutual TLS). Text form:
/// 43 characters of unpadded base64url.
#[derive(Clone, Copy, Eq)]
pub struct CertFingerprint([u8; 32]);

impl CertFingerprint {
    /// A fingerprint from its 32 bytes (the handler hashes the peer's end-entity certificate).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The canonical text form (unpadded base64url).
    pub fn to_text(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }
}

impl PartialEq for CertFingerprint {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl std::hash::Hash for CertFingerprint {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl FromStr for CertFingerprint {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        decode_b64url_32(s).map(Self)
    }
}

impl fmt::Debug for CertFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CertFingerprint({})", self.to_text())
    }
}

/// Decode exactly 32 bytes of canonical unpadded base64url (43 characters; padding and
/// non-zero trailing bits are refused, so each value has one spelling).
pub(super) fn decode_b64url_32(s: &str) -> Result<[u8; 32], ()> {
    if s.len() != 43 {
        return Err(());
    }
    let mut out = [0u8; 32];
    let n = URL_SAFE_NO_PAD
        .decode_slice(s.as_bytes(), &mut out)
        .map_err(|_| ())?;
    if n != 32 {
        return Err(());
    }
    Ok(out)
}

/// Optional restrictions on who may use a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Bindings {
    /// The client's address (the TCP peer) must be inside this network.
    pub client_net: Option<ClientNet>,
    /// The client must present, over mutual TLS, a certificate with this fingerprint.
    pub client_cert: Option<CertFingerprint>,
}

/// Everything a signed link asserts, except the key id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LinkClaims {
    artifact: ArtifactId,
    grant: GrantId,
    methods: MethodSet,
    not_before: UnixTime,
    expires: UnixTime,
    bindings: Bindings,
}

impl LinkClaims {
    /// Claims for a link valid from `not_before` (inclusive) until `expires` (exclusive).
    pub fn new(
        artifact: ArtifactId,
        grant: GrantId,
        methods: MethodSet,
        not_before: UnixTime,
        expires: UnixTime,
        bindings: Bindings,
    ) -> Result<Self, ClaimsError> {
        if expires <= not_before {
            return Err(ClaimsError::EmptyWindow);
        }
        Ok(Self {
            artifact,
            grant,
            methods,
            not_before,
            expires,
            bindings,
        })
    }

    /// The artifact the link downloads.
    pub fn artifact(&self) -> ArtifactId {
        self.artifact
    }

    /// The grant record backing the link.
    pub fn grant(&self) -> GrantId {
        self.grant
    }

    /// The allowed methods.
    pub fn methods(&self) -> MethodSet {
        self.methods
    }

    /// First second of validity.
    pub fn not_before(&self) -> UnixTime {
        self.not_before
    }

    /// First second of invalidity.
    pub fn expires(&self) -> UnixTime {
        self.expires
    }

    /// The client bindings.
    pub fn bindings(&self) -> &Bindings {
        &self.bindings
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_time_is_canonical_decimal() {
        assert_eq!("0".parse::<UnixTime>(), Ok(UnixTime(0)));
        assert_eq!(
            "1700000000".parse::<UnixTime>(),
            Ok(UnixTime(1_700_000_000))
        );
        assert_eq!(
            "18446744073709551615".parse::<UnixTime>(),
            Ok(UnixTime(u64::MAX))
        );
        for bad in [
            "",
            "00",
            "01",
            "+1",
            "-1",
            " 1",
            "1 ",
            "1e9",
            "0x10",
            "١",
            "18446744073709551616",
            "100000000000000000000",
        ] {
            assert_eq!(bad.parse::<UnixTime>(), Err(()), "{bad:?}");
        }
    }

    #[test]
    fn method_sets() {
        assert!(MethodSet::GetHead.contains(Method::Get));
        assert!(MethodSet::GetHead.contains(Method::Head));
        assert!(MethodSet::Get.contains(Method::Get));
        assert!(!MethodSet::Get.contains(Method::Head));
        assert!(!MethodSet::Head.contains(Method::Get));
        for m in [MethodSet::Get, MethodSet::Head, MethodSet::GetHead] {
            assert_eq!(m.as_str().parse::<MethodSet>(), Ok(m));
        }
        for bad in [
            "",
            "get",
            "HEAD,GET",
            "GET,GET",
            "GET, HEAD",
            "POST",
            "GET,",
        ] {
            assert_eq!(bad.parse::<MethodSet>(), Err(()), "{bad:?}");
        }
        assert_eq!(Method::from_http(&http::Method::GET), Some(Method::Get));
        assert_eq!(Method::from_http(&http::Method::HEAD), Some(Method::Head));
        assert_eq!(Method::from_http(&http::Method::PUT), None);
    }

    #[test]
    fn fingerprint_text_is_canonical_base64url() {
        let fp = CertFingerprint::from_bytes([0xfb; 32]);
        let text = fp.to_text();
        assert_eq!(text.len(), 43);
        assert_eq!(text.parse::<CertFingerprint>(), Ok(fp));
        // Padding, the standard alphabet, wrong lengths and non-zero trailing bits are refused.
        assert!(format!("{text}=").parse::<CertFingerprint>().is_err());
        assert!(text.replace('_', "/").parse::<CertFingerprint>().is_err());
        assert!(text[..42].parse::<CertFingerprint>().is_err());
        // The last character carries 4 significant bits and 2 zero bits: set a zero bit.
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let last = text.as_bytes()[42];
        let index = ALPHABET
            .iter()
            .position(|&c| c == last)
            .expect("base64url char");
        assert_eq!(index & 0b11, 0, "canonical trailing bits are zero");
        let non_canonical = format!("{}{}", &text[..42], ALPHABET[index | 1] as char);
        assert!(non_canonical.parse::<CertFingerprint>().is_err());
    }

    #[test]
    fn claims_refuse_an_empty_window() {
        let a = ArtifactId::random();
        let g = GrantId::random();
        let b = Bindings::default();
        assert_eq!(
            LinkClaims::new(a, g, MethodSet::Get, UnixTime(10), UnixTime(10), b),
            Err(ClaimsError::EmptyWindow)
        );
        assert_eq!(
            LinkClaims::new(a, g, MethodSet::Get, UnixTime(11), UnixTime(10), b),
            Err(ClaimsError::EmptyWindow)
        );
        let ok = LinkClaims::new(a, g, MethodSet::Get, UnixTime(10), UnixTime(11), b)
            .expect("one-second window");
        assert_eq!(
            (ok.not_before(), ok.expires()),
            (UnixTime(10), UnixTime(11))
        );
    }
}
