//! Who is calling: API clients, bearer tokens, roles, and the [`Principal`] every handler
//! receives.
//!
//! API clients are declared in the configuration with a name, roles and the SHA-256 of
//! their bearer token; the token itself is never stored. A presented token is hashed and
//! compared with *every* configured hash in constant time, so neither the comparison nor
//! the loop leaks which client (or which prefix) matched. Tokens are 256-bit random values
//! (`sallyport token generate`), so a plain SHA-256 is the right hash: there is nothing
//! for a slow password hash to protect.
//!
//! Authentication is a list of [`Authenticator`]s tried in order; each says "not mine",
//! "this principal" or "rejected". SMART Backend Services access tokens (`spat1~…`,
//! `smart::access_token::SmartTokens`) are tried first, so the client registry never sees
//! them; then the registry's bearer tokens and client certificates. A SMART principal
//! carries its [`AccessGrant`].
//!
//! Roles: `uploader`, `publisher`, `auditor`, `admin`, `metrics`. `admin` passes every
//! role check (an operator who can reconfigure the gateway can do anything it does).
//! There is no `downloader` role: partners download through signed links, with no
//! account (a configuration naming it is refused with that explanation).
//!
//! A verified TLS client certificate reaches handlers as a [`ClientIdentity`] (defined
//! here; the `tls` module verifies certificates, the edge inserts it into every request
//! of the connection — after removing any the request could carry — and nothing else
//! does). A client entry may name its certificate: its SHA-256 (`cert_sha256`), a subject
//! alternative name (`cert_san`), or both ([`cert::CertBinding`]):
//!
//! * with no token, a request presenting that certificate and no `Authorization` header
//!   authenticates as the client ([`AuthMethod::ClientCertificate`]) — except a
//!   browser-ish request (`Origin` or `Sec-Fetch-Site`), so that a page cannot use a
//!   certificate the browser presents on its own ([`AuthError::Missing`]);
//! * with a token too, the request must present both: the token alone (or with another
//!   certificate) is [`AuthError::CertificateRequired`];
//! * a certificate that is the certificate of two token-less clients (one pins it, the
//!   other names a SAN it carries) authenticates neither: [`AuthError::Invalid`].
//!
//! A publisher may be limited by its [`PublisherScope`] (partners it may issue links
//! for, owners whose uploads it may publish); the links service enforces it.
//!
//! Not here: signed download links (partners hold no account; see `signed_link`), TLS
//! itself (see `tls`) and the HTTP mapping of [`AuthError`] (see `http::problem`).

use std::fmt;
use std::str::FromStr;

use http::request::Parts;
use rustls_pki_types::CertificateDer;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub mod cert;

pub use cert::{CertBinding, CertSan};

/// A role an API client can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// May create uploads and write to its own.
    Uploader,
    /// May register artifacts and issue or revoke links (within its
    /// [`PublisherScope`]).
    Publisher,
    /// May read and verify the audit trail.
    Auditor,
    /// May do anything.
    Admin,
    /// May read `/metrics` when `server.metrics_access = "role"` (a Prometheus scraper's
    /// token; it grants nothing else).
    Metrics,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 5] = [
        Role::Uploader,
        Role::Publisher,
        Role::Auditor,
        Role::Admin,
        Role::Metrics,
    ];

    /// The role's configuration name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Uploader => "uploader",
            Role::Publisher => "publisher",
            Role::Auditor => "auditor",
            Role::Admin => "admin",
            Role::Metrics => "metrics",
        }
    }

    const fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "downloader" {
            // The role existed but no route ever checked it: partners download through
            // signed links, which need no account.
            return Err(
                "the \"downloader\" role was removed (no route ever used it): \
                 partners download through signed links, which need no account; a \
                 publisher issues them (POST /v1/links), bound to a partner's client \
                 certificate with client_cert_of if the link must need one"
                    .into(),
            );
        }
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                format!("unknown role {s:?} (roles: uploader, publisher, auditor, admin, metrics)")
            })
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of roles.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct RoleSet(u8);

impl RoleSet {
    /// No roles.
    pub const fn empty() -> Self {
        Self(0)
    }

    /// Adds a role.
    pub fn insert(&mut self, role: Role) {
        self.0 |= role.bit();
    }

    /// Whether the set has no roles.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether `role` is granted (directly or through `admin`).
    pub fn allows(self, role: Role) -> bool {
        self.0 & (role.bit() | Role::Admin.bit()) != 0
    }

    /// The roles in the set.
    pub fn iter(self) -> impl Iterator<Item = Role> {
        Role::ALL.into_iter().filter(move |r| self.0 & r.bit() != 0)
    }
}

impl fmt::Debug for RoleSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl FromIterator<Role> for RoleSet {
    fn from_iter<I: IntoIterator<Item = Role>>(iter: I) -> Self {
        let mut set = RoleSet::empty();
        for r in iter {
            set.insert(r);
        }
        set
    }
}

/// An API client's name: 1–64 characters of `[A-Za-z0-9._-]`. Safe to log and to use as
/// a state-store index value.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct ClientName(String);

impl ClientName {
    /// The principal of upload invitation `id`: `invitation:{id}`. No configured client
    /// can have it (`:` is not allowed in a client name), so an invitation's uploads and
    /// batch belong to it alone.
    pub fn invitation(id: &str) -> Self {
        Self(format!("invitation:{id}"))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ClientName {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() || s.len() > 64 {
            return Err("a client name has 1 to 64 characters".into());
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return Err("a client name uses only A-Z, a-z, 0-9, '.', '_' and '-'".into());
        }
        Ok(Self(s.to_owned()))
    }
}

impl fmt::Display for ClientName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ClientName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClientName({})", self.0)
    }
}

/// SHA-256 of a bearer token.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    /// Hashes a presented token.
    pub fn of_token(token: &[u8]) -> Self {
        Self(Sha256::digest(token).into())
    }

    /// Parses 64 hex digits.
    pub fn from_hex(hex_digits: &[u8]) -> Result<Self, String> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(hex_digits, &mut out)
            .map_err(|_| "must be 64 hexadecimal digits (the SHA-256 of the token)".to_owned())?;
        Ok(Self(out))
    }

    /// 64 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    fn ct_eq(&self, other: &TokenHash) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenHash([redacted])")
    }
}

/// A configured API client.
#[derive(Debug, Clone)]
pub struct ApiClient {
    /// Its name.
    pub name: ClientName,
    /// Its token's hash; `None` for a client identified by its certificate only.
    pub hash: Option<TokenHash>,
    /// Its TLS client certificate, when it has one: with a token, both must be presented;
    /// without, the certificate alone authenticates it.
    pub cert: CertBinding,
    /// Its roles.
    pub roles: RoleSet,
    /// What it may publish (unlimited unless configured).
    pub scope: std::sync::Arc<PublisherScope>,
}

/// What a publisher may publish: links only for some partners, artifacts only from the
/// uploads of some owners. `None` is unlimited. Partner names are stored as configured
/// (the config validated them as partner names).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublisherScope {
    /// `publish_for`: the partners it may issue links for.
    pub partners: Option<Vec<String>>,
    /// `publish_from_owners`: the clients whose uploads (and artifacts made from them) it
    /// may publish. An imported artifact has no owner and is out of such a scope.
    pub owners: Option<Vec<ClientName>>,
}

impl PublisherScope {
    /// Whether links for `partner` are in scope.
    pub fn allows_partner(&self, partner: &str) -> bool {
        self.partners
            .as_ref()
            .is_none_or(|ps| ps.iter().any(|p| p == partner))
    }

    /// Whether an upload or artifact owned by `owner` (`None`: imported, no owner) is in
    /// scope.
    pub fn allows_owner(&self, owner: Option<&str>) -> bool {
        match (&self.owners, owner) {
            (None, _) => true,
            (Some(os), Some(o)) => os.iter().any(|n| n.as_str() == o),
            (Some(_), None) => false,
        }
    }
}

/// The verified identity of a TLS client certificate, available to handlers as a request
/// extension when mutual TLS is on and the client presented a certificate. `tls` verifies
/// the certificate; this is what authentication learns from it.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    /// SHA-256 of the leaf certificate's DER (what signed links bind to).
    pub fingerprint_sha256: [u8; 32],
    /// The subject distinguished name, RFC 4514 style (`CN=partner-1,O=…`).
    pub subject: String,
    /// The subject alternative names that are text: `dns:…`, `email:…`, `uri:…` (at most
    /// [`MAX_SANS`], in certificate order; informational — identity is the fingerprint).
    pub sans: Vec<String>,
}

/// Most subject alternative names a [`ClientIdentity`] keeps.
pub const MAX_SANS: usize = 16;

impl std::fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientIdentity")
            .field("fingerprint_sha256", &hex::encode(self.fingerprint_sha256))
            .field("subject", &self.subject)
            .field("sans", &self.sans)
            .finish()
    }
}

impl ClientIdentity {
    /// The identity of a verified leaf certificate.
    pub fn from_der(der: &CertificateDer<'_>) -> Self {
        use x509_parser::extensions::GeneralName;
        let fingerprint_sha256 = Sha256::digest(der.as_ref()).into();
        // rustls already verified the certificate, so it parses; an empty subject is
        // still a usable identity through its fingerprint.
        let Ok((_, cert)) = x509_parser::parse_x509_certificate(der.as_ref()) else {
            return Self {
                fingerprint_sha256,
                subject: String::new(),
                sans: Vec::new(),
            };
        };
        let sans = match cert.subject_alternative_name() {
            Ok(Some(ext)) => ext
                .value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    GeneralName::DNSName(d) => Some(format!("dns:{d}")),
                    GeneralName::RFC822Name(e) => Some(format!("email:{e}")),
                    GeneralName::URI(u) => Some(format!("uri:{u}")),
                    _ => None,
                })
                .take(MAX_SANS)
                .collect(),
            _ => Vec::new(),
        };
        Self {
            fingerprint_sha256,
            subject: cert.subject().to_string(),
            sans,
        }
    }
}

/// How a principal proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// A configured bearer token (with the client's certificate too when it has one).
    BearerToken,
    /// A verified mTLS client certificate alone (identity checked by the TLS layer).
    ClientCertificate,
    /// A SMART Backend Services access token from `POST /auth/token` (`smart`).
    SmartAccessToken,
    /// An upload invitation's capability token (`invite`).
    Invitation,
}

impl AuthMethod {
    /// `bearer_token` or `client_certificate` (whoami and the audit trail).
    pub const fn as_str(self) -> &'static str {
        match self {
            AuthMethod::BearerToken => "bearer_token",
            AuthMethod::ClientCertificate => "client_certificate",
            AuthMethod::SmartAccessToken => "smart_access_token",
            AuthMethod::Invitation => "invitation",
        }
    }
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    /// Who.
    pub name: ClientName,
    /// What it may do.
    pub roles: RoleSet,
    /// How it authenticated.
    pub method: AuthMethod,
    /// The verified TLS client certificate on the connection, if any.
    pub tls_client: Option<ClientIdentity>,
    /// What it may publish.
    pub scope: std::sync::Arc<PublisherScope>,
    /// The SMART access grant it presented (`None` for other methods): what the FHIR Bulk
    /// endpoints authorise by.
    pub grant: Option<std::sync::Arc<AccessGrant>>,
    /// The upload invitation it presented (`None` for other methods). Such a principal
    /// holds no role: the upload and invitation endpoints admit it through the invitation
    /// service, which checks the invitation's record (revoked, expired) on every request.
    pub invitation: Option<std::sync::Arc<InvitationPass>>,
}

/// What an upload invitation's token says: which invitation, until when. Defined here (not
/// in `invite`) so that handlers read it from the [`Principal`] like a SMART grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvitationPass {
    /// The invitation id.
    pub id: String,
    /// When the token stops being accepted (Unix seconds).
    pub expires_at: u64,
}

/// What a SMART access token granted: its client and scope. Defined here (not in `smart`)
/// so that every service reads it from the [`Principal`] without importing the issuer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessGrant {
    /// The registered SMART `client_id`.
    pub client_id: String,
    /// The granted scope, space separated (`smart::scope::parse_list` reads it).
    pub scope: String,
    /// The token's random id (what the audit trail names; never the token).
    pub token_id: String,
    /// When the token expires (Unix seconds).
    pub expires_at: u64,
}

impl Principal {
    /// `Ok` when the principal holds `role` (or `admin`).
    pub fn require(&self, role: Role) -> Result<(), AuthError> {
        if self.roles.allows(role) {
            Ok(())
        } else {
            Err(AuthError::MissingRole(role))
        }
    }

    /// Whether the principal is an admin.
    pub fn is_admin(&self) -> bool {
        self.roles.allows(Role::Admin)
    }
}

/// Why a request is not authorised.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No credentials were presented.
    #[error("no credentials")]
    Missing,
    /// The `Authorization` header is not a well-formed bearer token.
    #[error("malformed Authorization header")]
    Malformed,
    /// The credentials match no client.
    #[error("unknown credentials")]
    Invalid,
    /// The token belongs to a client that must also present its TLS client certificate,
    /// and the connection presented none or another.
    #[error("the client's certificate is required with its token")]
    CertificateRequired,
    /// Authenticated, but without the role the action needs.
    #[error("missing role {0}")]
    MissingRole(Role),
}

/// What one authenticator concluded about a request.
#[derive(Debug)]
pub enum AuthOutcome {
    /// The request carries no credentials of this kind.
    NotApplicable,
    /// Authenticated.
    Authenticated(Principal),
    /// Credentials of this kind were presented and are wrong.
    Rejected(AuthError),
}

/// One way of authenticating a request (bearer tokens now; SMART tokens, mTLS later).
pub trait Authenticator: Send + Sync + fmt::Debug {
    /// Looks at the request head.
    fn authenticate(&self, parts: &Parts) -> AuthOutcome;
}

/// The configured API clients; authenticates bearer tokens.
#[derive(Debug, Clone, Default)]
pub struct ClientRegistry {
    clients: Vec<ApiClient>,
}

impl ClientRegistry {
    /// A registry; client names, tokens and certificates must be unique, and each client
    /// has a token or a certificate.
    pub fn new(clients: Vec<ApiClient>) -> Result<Self, String> {
        for (i, c) in clients.iter().enumerate() {
            if c.hash.is_none() && !c.cert.is_set() {
                return Err(format!(
                    "client {:?} has neither a token nor a certificate",
                    c.name.as_str()
                ));
            }
            if clients[..i].iter().any(|o| o.name == c.name) {
                return Err(format!("client name {:?} appears twice", c.name.as_str()));
            }
            if let Some(h) = &c.hash
                && clients[..i]
                    .iter()
                    .any(|o| o.hash.as_ref().is_some_and(|oh| oh.ct_eq(h)))
            {
                return Err(format!(
                    "client {:?} has the same token as another client",
                    c.name.as_str()
                ));
            }
            if clients[..i].iter().any(|o| o.cert.overlaps(&c.cert)) {
                return Err(format!(
                    "client {:?} has the same certificate (cert_sha256) or certificate name \
                     (cert_san) as another client",
                    c.name.as_str()
                ));
            }
        }
        Ok(Self { clients })
    }

    /// The configured clients.
    pub fn clients(&self) -> &[ApiClient] {
        &self.clients
    }

    /// The client named `name`.
    pub fn client(&self, name: &str) -> Option<&ApiClient> {
        self.clients.iter().find(|c| c.name.as_str() == name)
    }

    /// The client whose token this is. Compares against every client, in constant time.
    pub fn authenticate_token(&self, token: &[u8]) -> Option<&ApiClient> {
        let presented = TokenHash::of_token(token);
        let mut found = None;
        for client in &self.clients {
            if let Some(h) = &client.hash
                && h.ct_eq(&presented)
            {
                found = Some(client);
            }
        }
        found
    }

    /// The token-less clients whose certificate this is: `Err` when it is two clients'
    /// (one pins it, another names a SAN it carries), which authenticates neither.
    fn certificate_client(&self, cert: &ClientIdentity) -> Result<Option<&ApiClient>, ()> {
        let mut found = None;
        for c in self.clients.iter().filter(|c| c.hash.is_none()) {
            if c.cert.matches(Some(cert)) {
                if found.is_some() {
                    tracing::warn!(
                        fingerprint_sha256 = %hex::encode(cert.fingerprint_sha256),
                        "a client certificate matches two configured clients; refused"
                    );
                    return Err(());
                }
                found = Some(c);
            }
        }
        Ok(found)
    }

    fn principal(
        client: &ApiClient,
        method: AuthMethod,
        cert: Option<&ClientIdentity>,
    ) -> Principal {
        Principal {
            name: client.name.clone(),
            roles: client.roles,
            method,
            tls_client: cert.cloned(),
            scope: client.scope.clone(),
            grant: None,
            invitation: None,
        }
    }
}

impl Authenticator for ClientRegistry {
    fn authenticate(&self, parts: &Parts) -> AuthOutcome {
        // Only the edge puts this extension on a request (from the TLS session), after
        // removing any other.
        let cert = parts.extensions.get::<ClientIdentity>();
        let mut values = parts.headers.get_all(http::header::AUTHORIZATION).iter();
        let Some(value) = values.next() else {
            let client = match cert.map(|c| self.certificate_client(c)) {
                Some(Err(())) => return AuthOutcome::Rejected(AuthError::Invalid),
                Some(Ok(c)) => c,
                None => None,
            };
            return match client {
                // A browser presents a configured certificate on its own for any page
                // that makes it send a request: never an ambient credential.
                Some(_) if is_browser_request(parts) => AuthOutcome::Rejected(AuthError::Missing),
                Some(client) => AuthOutcome::Authenticated(Self::principal(
                    client,
                    AuthMethod::ClientCertificate,
                    cert,
                )),
                None => AuthOutcome::NotApplicable,
            };
        };
        if values.next().is_some() {
            return AuthOutcome::Rejected(AuthError::Malformed);
        }
        let Some(token) = parse_bearer(value.as_bytes()) else {
            return AuthOutcome::Rejected(AuthError::Malformed);
        };
        match self.authenticate_token(token) {
            Some(client) if client.cert.is_set() && !client.cert.matches(cert) => {
                AuthOutcome::Rejected(AuthError::CertificateRequired)
            }
            Some(client) => {
                AuthOutcome::Authenticated(Self::principal(client, AuthMethod::BearerToken, cert))
            }
            None => AuthOutcome::Rejected(AuthError::Invalid),
        }
    }
}

/// Whether a browser sent the request: browsers add `Origin` to cross-origin and
/// non-GET requests and `Sec-Fetch-Site` to every request; other clients send neither.
fn is_browser_request(parts: &Parts) -> bool {
    parts.headers.contains_key(http::header::ORIGIN) || parts.headers.contains_key("sec-fetch-site")
}

/// Extracts the token from `Bearer <token>` (RFC 6750 §2.1: scheme case-insensitive,
/// token is b64token characters).
fn parse_bearer(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at_checked(7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    let token = rest;
    let b64token = |b: &u8| b.is_ascii_alphanumeric() || b"-._~+/=".contains(b);
    // 4 KiB: room for a SMART access token carrying its granted scope (`smart`).
    if token.is_empty() || token.len() > 4096 || !token.iter().all(b64token) {
        return None;
    }
    Some(token)
}

/// The token of a request's one `Authorization: Bearer <token>` header when it starts with
/// `prefix` (a self-describing token kind, `spat1~`, `inv1~`): what the authenticators of
/// such tokens take; `None` means "not mine" (no header, several, another scheme or kind).
pub fn bearer_with_prefix<'a>(parts: &'a Parts, prefix: &str) -> Option<&'a str> {
    let mut values = parts.headers.get_all(http::header::AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return None;
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.split_at_checked(7))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer "))
        .map(|(_, t)| t)
        .filter(|t| t.starts_with(prefix))
}

/// Runs the authenticators in order: the first that authenticates or rejects decides.
pub fn authenticate(
    authenticators: &[std::sync::Arc<dyn Authenticator>],
    parts: &Parts,
) -> Result<Principal, AuthError> {
    for a in authenticators {
        match a.authenticate(parts) {
            AuthOutcome::NotApplicable => continue,
            AuthOutcome::Authenticated(p) => return Ok(p),
            AuthOutcome::Rejected(e) => return Err(e),
        }
    }
    Err(AuthError::Missing)
}

/// A new random token (256 bits, base64url) and its hash, for `sallyport token generate`.
pub fn generate_token() -> (crate::secret::Secret, TokenHash) {
    use base64::Engine;
    use rand::RngCore;
    let mut raw = zeroize::Zeroizing::new([0u8; 32]);
    rand::rng().fill_bytes(raw.as_mut());
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw.as_ref());
    let hash = TokenHash::of_token(token.as_bytes());
    (crate::secret::Secret::from_string(token), hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> (ClientRegistry, String) {
        let (token, hash) = generate_token();
        let token = token.expose_str().unwrap().to_owned();
        let reg = ClientRegistry::new(vec![
            client("clinic", Some(hash), None, Role::Uploader),
            client(
                "ops",
                Some(TokenHash::of_token(b"another-token")),
                None,
                Role::Admin,
            ),
            client("partner", None, Some([1; 32]), Role::Publisher),
            client(
                "both",
                Some(TokenHash::of_token(b"both-token")),
                Some([2; 32]),
                Role::Auditor,
            ),
        ])
        .unwrap();
        (reg, token)
    }

    fn client(
        name: &str,
        hash: Option<TokenHash>,
        cert_sha256: Option<[u8; 32]>,
        role: Role,
    ) -> ApiClient {
        ApiClient {
            name: name.parse().unwrap(),
            hash,
            cert: CertBinding {
                sha256: cert_sha256,
                san: None,
            },
            roles: [role].into_iter().collect(),
            scope: Default::default(),
        }
    }

    fn with_cert(mut p: Parts, fp: u8) -> Parts {
        p.extensions.insert(ClientIdentity {
            fingerprint_sha256: [fp; 32],
            subject: "CN=x".into(),
            sans: Vec::new(),
        });
        p
    }

    #[test]
    fn certificates() {
        let (reg, token) = registry();
        let reg: Vec<std::sync::Arc<dyn Authenticator>> = vec![std::sync::Arc::new(reg)];
        let p = authenticate(&reg, &with_cert(parts(&[]), 1)).unwrap();
        assert_eq!(
            (p.name.as_str(), p.method),
            ("partner", AuthMethod::ClientCertificate)
        );
        let mut browser = with_cert(parts(&[]), 1);
        browser
            .headers
            .insert("sec-fetch-site", "cross-site".parse().unwrap());
        assert_eq!(
            authenticate(&reg, &browser).unwrap_err(),
            AuthError::Missing
        );
        let mut browser = with_cert(parts(&[]), 1);
        browser
            .headers
            .insert("origin", "https://evil.example".parse().unwrap());
        assert_eq!(
            authenticate(&reg, &browser).unwrap_err(),
            AuthError::Missing
        );
        // Another certificate, or the certificate of a client that also has a token.
        assert_eq!(
            authenticate(&reg, &with_cert(parts(&[]), 9)).unwrap_err(),
            AuthError::Missing
        );
        assert_eq!(
            authenticate(&reg, &with_cert(parts(&[]), 2)).unwrap_err(),
            AuthError::Missing
        );
        // Token and certificate.
        let both = parts(&["Bearer both-token"]);
        assert_eq!(
            authenticate(&reg, &both).unwrap_err(),
            AuthError::CertificateRequired
        );
        assert_eq!(
            authenticate(&reg, &with_cert(parts(&["Bearer both-token"]), 1)).unwrap_err(),
            AuthError::CertificateRequired
        );
        let p = authenticate(&reg, &with_cert(both, 2)).unwrap();
        assert_eq!(
            (p.name.as_str(), p.method),
            ("both", AuthMethod::BearerToken)
        );
        // A token client is not bound to whatever certificate the connection carries.
        let p = authenticate(&reg, &with_cert(parts(&[&format!("Bearer {token}")]), 1)).unwrap();
        assert_eq!(p.name.as_str(), "clinic");
    }

    #[test]
    fn scopes() {
        let s = PublisherScope {
            partners: Some(vec!["payer-a".into()]),
            owners: Some(vec!["clinic".parse().unwrap()]),
        };
        assert!(s.allows_partner("payer-a") && !s.allows_partner("payer-b"));
        assert!(s.allows_owner(Some("clinic")) && !s.allows_owner(Some("lab")));
        assert!(!s.allows_owner(None), "an import has no owner");
        let open = PublisherScope::default();
        assert!(open.allows_partner("x") && open.allows_owner(None));
    }

    fn parts(auth: &[&str]) -> Parts {
        let mut b = http::Request::builder().uri("/x");
        for a in auth {
            b = b.header("authorization", *a);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn bearer_tokens() {
        let (reg, token) = registry();
        let reg: Vec<std::sync::Arc<dyn Authenticator>> = vec![std::sync::Arc::new(reg)];
        let p = authenticate(&reg, &parts(&[&format!("Bearer {token}")])).unwrap();
        assert_eq!(p.name.as_str(), "clinic");
        assert!(p.require(Role::Uploader).is_ok());
        assert_eq!(
            p.require(Role::Publisher),
            Err(AuthError::MissingRole(Role::Publisher))
        );
        let p = authenticate(&reg, &parts(&["bearer another-token"])).unwrap();
        assert!(p.require(Role::Auditor).is_ok(), "admin passes every role");
        assert_eq!(
            authenticate(&reg, &parts(&[])).unwrap_err(),
            AuthError::Missing
        );
        for bad in [
            "Bearer",
            "Bearer ",
            "Basic abc",
            "Bearer a b",
            "Bearer a\tb",
            "Bearer tok%en",
        ] {
            assert_eq!(
                authenticate(&reg, &parts(&[bad])).unwrap_err(),
                AuthError::Malformed,
                "{bad:?}"
            );
        }
        assert_eq!(
            authenticate(&reg, &parts(&["Bearer wrong"])).unwrap_err(),
            AuthError::Invalid
        );
        let t = format!("Bearer {token}");
        assert_eq!(
            authenticate(&reg, &parts(&[&t, &t])).unwrap_err(),
            AuthError::Malformed,
            "two Authorization headers"
        );
    }

    #[test]
    fn registry_rejects_duplicates() {
        let c = client("a", Some(TokenHash::of_token(b"t")), None, Role::Uploader);
        let mut d = c.clone();
        d.name = "b".parse().unwrap();
        assert!(ClientRegistry::new(vec![c.clone(), c.clone()]).is_err());
        assert!(ClientRegistry::new(vec![c, d]).is_err(), "same token twice");
        let e = client("e", None, Some([3; 32]), Role::Uploader);
        let mut f = e.clone();
        f.name = "f".parse().unwrap();
        assert!(
            ClientRegistry::new(vec![e, f]).is_err(),
            "same certificate twice"
        );
        assert!(
            ClientRegistry::new(vec![client("g", None, None, Role::Uploader)]).is_err(),
            "neither token nor certificate"
        );
    }

    #[test]
    fn names_and_roles_parse_strictly() {
        assert!("clinic-7.lab_a".parse::<ClientName>().is_ok());
        assert!("".parse::<ClientName>().is_err());
        assert!("a b".parse::<ClientName>().is_err());
        assert!("ä".parse::<ClientName>().is_err());
        assert!("Admin".parse::<Role>().is_err());
        let e = "downloader".parse::<Role>().unwrap_err();
        assert!(e.contains("removed") && e.contains("signed links"), "{e}");
        assert_eq!(
            format!("{:?}", TokenHash::of_token(b"x")),
            "TokenHash([redacted])"
        );
    }
}
