//! Why a link is refused, why claims or a keyring cannot be built.
//!
//! Every refusal has a stable, machine-readable code ([`LinkRejection::code`]) for the
//! audit trail and metrics. The client never sees it: the handler answers every refusal
//! with the same generic 403, so an attacker learns nothing about which check failed.
//! Messages and codes never contain input text (which could be a forged link or PHI).

use super::ids::KeyId;

/// Why [`super::LinkClaims::new`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ClaimsError {
    /// `expires` is not after `not_before`.
    #[error("a link's expiry must be after its not-before time")]
    EmptyWindow,
}

/// Why a [`super::LinkKeyring`] cannot be built from the given keys.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyringError {
    /// No key is marked current, so nothing could be signed.
    #[error("the link keyring needs exactly one current key, and has none")]
    NoCurrentKey,
    /// More than one key is marked current.
    #[error("the link keyring needs exactly one current key; {0} is a second one")]
    SeveralCurrentKeys(KeyId),
    /// The same key id appears twice.
    #[error("link key id {0} appears more than once")]
    DuplicateKeyId(KeyId),
    /// A secret shorter than 32 bytes.
    #[error("link key {id} is {len} bytes long; at least 32 bytes are required")]
    SecretTooShort {
        /// The key.
        id: KeyId,
        /// Its length.
        len: usize,
    },
    /// A secret longer than 64 bytes (HMAC would only hash it down).
    #[error("link key {id} is {len} bytes long; at most 64 bytes are allowed")]
    SecretTooLong {
        /// The key.
        id: KeyId,
        /// Its length.
        len: usize,
    },
    /// The clock-skew allowance is larger than one hour.
    #[error("the clock-skew allowance is at most one hour")]
    ClockSkewTooLarge,
}

/// Why a request target is not a well-formed, canonical v1 link. Detected before any
/// cryptography, so these say nothing about who made the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LinkParseError {
    /// Longer than [`super::MAX_LINK_LEN`] bytes.
    #[error("the link is too long")]
    TooLong,
    /// A byte outside the link alphabet (letters, digits, `-._:/,=&?`).
    #[error("the link contains a character that no canonical link contains")]
    ForbiddenCharacter,
    /// A `%`: no canonical link is percent-encoded.
    #[error("the link is percent-encoded")]
    PercentEncoded,
    /// The path is not `/d/{artifact}` followed by `?`.
    #[error("the link path is not /d/{{artifact}}?...")]
    Path,
    /// The artifact id in the path is not an opaque id.
    #[error("the link's artifact id is malformed")]
    Artifact,
    /// An empty `&&` element, a parameter without `=`, or an empty value.
    #[error("a link parameter is empty or has no value")]
    Parameter,
    /// A parameter name that v1 does not define.
    #[error("the link has an unknown parameter")]
    UnknownParameter,
    /// A parameter given twice.
    #[error("a link parameter appears twice")]
    DuplicateParameter,
    /// Parameters out of the canonical order.
    #[error("the link parameters are not in canonical order")]
    ParameterOrder,
    /// A required parameter is absent.
    #[error("a required link parameter is missing")]
    MissingParameter,
    /// `v` is a number other than 1.
    #[error("the link format version is not supported")]
    UnsupportedVersion,
    /// `v` is not a canonical decimal number.
    #[error("the link format version is malformed")]
    Version,
    /// `k` is not a key id.
    #[error("the link's key id is malformed")]
    KeyId,
    /// `g` is not an opaque id.
    #[error("the link's grant id is malformed")]
    Grant,
    /// `m` is not `GET`, `HEAD` or `GET,HEAD`.
    #[error("the link's method set is malformed")]
    Methods,
    /// `nb` or `exp` is not canonical decimal within u64.
    #[error("a link time is malformed")]
    Time,
    /// `exp` is not after `nb`.
    #[error("the link's validity window is empty")]
    EmptyWindow,
    /// `ip` is not a canonical CIDR block.
    #[error("the link's client network is malformed")]
    ClientNet,
    /// `fp` is not 32 bytes of canonical unpadded base64url.
    #[error("the link's certificate fingerprint is malformed")]
    CertFingerprint,
    /// `sig` is not 32 bytes of canonical unpadded base64url.
    #[error("the link's signature is malformed")]
    Signature,
}

impl LinkParseError {
    /// The stable audit code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooLong => "link_too_long",
            Self::ForbiddenCharacter => "forbidden_character",
            Self::PercentEncoded => "percent_encoded",
            Self::Path => "malformed_path",
            Self::Artifact => "malformed_artifact",
            Self::Parameter => "malformed_parameter",
            Self::UnknownParameter => "unknown_parameter",
            Self::DuplicateParameter => "duplicate_parameter",
            Self::ParameterOrder => "parameter_order",
            Self::MissingParameter => "missing_parameter",
            Self::UnsupportedVersion => "unsupported_version",
            Self::Version => "malformed_version",
            Self::KeyId => "malformed_key_id",
            Self::Grant => "malformed_grant",
            Self::Methods => "malformed_methods",
            Self::Time => "malformed_time",
            Self::EmptyWindow => "empty_window",
            Self::ClientNet => "malformed_client_net",
            Self::CertFingerprint => "malformed_cert_fingerprint",
            Self::Signature => "malformed_signature",
        }
    }
}

/// Why a link was refused. The handler audits [`LinkRejection::code`] and answers 403.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkRejection {
    /// The link is not well-formed (no cryptography was done).
    #[error("malformed link: {0}")]
    Malformed(#[from] LinkParseError),
    /// The key id is not in the keyring (never existed here, or was removed entirely).
    #[error("the link names an unknown signing key")]
    UnknownKey,
    /// The key id belongs to a retired key: every link it signed is dead.
    #[error("the link was signed with a retired key")]
    RetiredKey,
    /// The signature does not match the claims.
    #[error("the link signature does not verify")]
    BadSignature,
    /// `now` is at or after `exp`.
    #[error("the link has expired")]
    Expired,
    /// `now` is before `nb` minus the clock-skew allowance.
    #[error("the link is not valid yet")]
    NotYetValid,
    /// The request's method is not in the link's method set.
    #[error("the link does not allow this method")]
    MethodNotAllowed,
    /// The client address is outside the bound network.
    #[error("the client address is outside the link's network")]
    ClientAddressMismatch,
    /// The link is bound to a client certificate and the client presented none.
    #[error("the link requires a client certificate")]
    ClientCertMissing,
    /// The client certificate is not the bound one.
    #[error("the client certificate is not the one the link is bound to")]
    ClientCertMismatch,
}

impl LinkRejection {
    /// The stable audit code (`proto/signed-link-v1.md`, "Rejection codes").
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed(e) => e.code(),
            Self::UnknownKey => "unknown_key",
            Self::RetiredKey => "retired_key",
            Self::BadSignature => "bad_signature",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::ClientAddressMismatch => "client_address_mismatch",
            Self::ClientCertMissing => "client_cert_missing",
            Self::ClientCertMismatch => "client_cert_mismatch",
        }
    }

    /// Whether the link was shown to be forged or tampered with (or unverifiable): the
    /// failures a per-address rate limiter should count. Expiry, method and binding
    /// failures come after a good signature and are not attacks on the MAC.
    pub fn is_forgery_suspect(&self) -> bool {
        matches!(
            self,
            Self::Malformed(_) | Self::UnknownKey | Self::BadSignature
        )
    }
}
