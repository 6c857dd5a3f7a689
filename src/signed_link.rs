//! Signed download links: the v1 canonical form, signing and constant-time verification.
//!
//! A partner downloads an export artifact through a short-lived URL that names an artifact
//! and the grant record backing it, and carries an HMAC-SHA256 signature over everything it
//! claims. The normative description, byte by byte, is `proto/signed-link-v1.md`; golden
//! vectors are in `proto/vectors/signed-link-v1.json`. In short:
//!
//! ```text
//! /d/{artifact}?v=1&k={key id}&g={grant}&m={GET|HEAD|GET,HEAD}&nb={not before}&exp={expires}
//!              [&ip={client CIDR}][&fp={client certificate SHA-256}]&sig={HMAC-SHA256}
//! ```
//!
//! * Parameters appear exactly once, in exactly this order; unknown, repeated, reordered or
//!   percent-encoded parameters, `+`, padding and any other non-canonical spelling are
//!   rejected, so every accepted URL is byte-identical to the one [`LinkKeyring::sign`]
//!   produced for its claims (one claim set, one spelling).
//! * The MAC covers a length-delimited canonical string (see [`canonical`]) built from the
//!   *parsed, typed* claims, never from raw URL text.
//! * No PHI travels in the URL: ids are opaque, and the response file name (which may be
//!   PHI) lives only in the grant record; see [`ResponseFileName`].
//!
//! Verification ([`LinkKeyring::verify`]) checks, in this order: key id known and not
//! retired, signature (constant time), validity window (with a clock-skew allowance for
//! not-before), method, client-address binding, client-certificate binding. Every failure
//! is a [`LinkRejection`] variant with a stable audit code ([`LinkRejection::code`]) so the
//! handler can record the specific reason and answer a generic 403.
//!
//! Not here: grant records, revocation and download metering (a verified link only proves
//! the server issued these claims; the handler must still load the grant, check that it is
//! live and covers the artifact), rate limiting, HTTP responses, and loading keys from
//! config or files (the keyring takes secret bytes from the caller and keeps only the
//! pre-keyed, zeroise-on-drop HMAC state).

pub mod canonical;
mod claims;
mod error;
mod file_name;
mod ids;
mod keyring;
mod net;
mod url;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

pub use claims::{Bindings, CertFingerprint, LinkClaims, Method, MethodSet, UnixTime};
pub use error::{ClaimsError, KeyringError, LinkParseError, LinkRejection};
pub use file_name::{FileNameError, MAX_FILE_NAME_LEN, ResponseFileName};
pub use ids::{ArtifactId, GrantId, KeyId, KeyIdError};
pub use keyring::{
    LinkKeySpec, LinkKeyring, LinkRequest, MAX_CLOCK_SKEW, MAX_SECRET_LEN, MIN_SECRET_LEN,
    VerifiedLink,
};
pub use net::{ClientNet, ClientNetError};
pub use url::{LINK_PATH_PREFIX, MAX_LINK_LEN, SignedLink};

/// The format version this module speaks (the `v` parameter).
pub const LINK_VERSION: u32 = 1;
