//! The audit events of downloads through signed links, and of publishing refused by a
//! publisher's scope.
//!
//! The actor of these events is the link holder (`{"kind":"link","grant":…}`) when the link
//! verified, anonymous otherwise; the client address is in every entry's context. Details
//! never carry the URL's signature or the response file name.

use serde::Serialize;

use crate::audit::{AuditEvent, Outcome};

/// A download was authorised and its first byte is about to be sent (`download.served`).
/// Written durably *before* the body, so no byte leaves without a record; if the transfer
/// is then cut short, a [`DownloadAborted`] follows with what was actually delivered.
#[derive(Debug, Serialize)]
pub struct DownloadServed {
    /// The grant.
    pub grant: String,
    /// The artifact.
    pub artifact: String,
    /// `GET` or `HEAD`.
    pub method: &'static str,
    /// 200, 206 (HEAD reports what a GET would).
    pub status: u16,
    /// The byte ranges, `first-last`, in the order sent (empty for a whole file).
    pub ranges: Vec<String>,
    /// Body bytes of the artifact to be sent (0 for HEAD).
    pub bytes: u64,
    /// The artifact's length.
    pub length: u64,
    /// `complete` (the whole file), `partial` (ranges) or `head`.
    pub outcome: &'static str,
    /// Negotiated TLS version (`None` over plain HTTP).
    pub tls_version: Option<String>,
    /// Negotiated cipher suite.
    pub tls_cipher: Option<String>,
    /// The key that signed the link.
    pub key_id: String,
}

impl AuditEvent for DownloadServed {
    const ACTION: &'static str = "download.served";
    fn subject(&self) -> Option<String> {
        Some(self.grant.clone())
    }
}

/// A download's connection ended before its last byte (`download.aborted`).
#[derive(Debug, Serialize)]
pub struct DownloadAborted {
    /// The grant.
    pub grant: String,
    /// The artifact.
    pub artifact: String,
    /// Body bytes that were to be sent.
    pub planned: u64,
    /// Artifact bytes handed to the connection before it ended.
    pub delivered: u64,
    /// Bytes given back to the grant's allowance.
    pub refunded: u64,
}

impl AuditEvent for DownloadAborted {
    const ACTION: &'static str = "download.aborted";
    fn outcome(&self) -> Outcome {
        Outcome::Failure
    }
    fn subject(&self) -> Option<String> {
        Some(self.grant.clone())
    }
}

/// A download was refused (`download.rejected`). The client saw one generic 403; the
/// specific reason is only here.
#[derive(Debug, Serialize)]
pub struct DownloadRejected {
    /// The reason code (`proto/signed-link-v1.md` §6 or `proto/grants-v1.md` §Errors).
    pub reason: &'static str,
    /// `GET`, `HEAD` or another method.
    pub method: String,
    /// The grant, when the link's signature verified (never from an unverified link).
    pub grant: Option<String>,
    /// The artifact, when the link's signature verified.
    pub artifact: Option<String>,
    /// Whether this rejection used up the client's allowance of forged links.
    pub client_blocked: bool,
}

impl AuditEvent for DownloadRejected {
    const ACTION: &'static str = "download.rejected";
    fn outcome(&self) -> Outcome {
        Outcome::Denied
    }
    fn subject(&self) -> Option<String> {
        self.grant.clone()
    }
}

/// A publisher tried to publish outside its scope (`publish.out_of_scope`): a link for a
/// partner not in its `publish_for`, or an upload or artifact whose owner is not in its
/// `publish_from_owners`; or to revoke a grant outside that scope. Nothing was published
/// or revoked.
#[derive(Debug, Serialize)]
pub struct PublishOutOfScope {
    /// `artifact.register`, `link.issue` or `link.revoke`.
    pub attempt: &'static str,
    /// `partner` or `owner`: which limit refused it.
    pub limit: &'static str,
    /// The partner asked for (link issue).
    pub partner: Option<String>,
    /// The owner of the upload or artifact (`None`: an import, which has none).
    pub owner: Option<String>,
    /// The artifact (link issue).
    pub artifact: Option<String>,
    /// The upload (registration from an upload).
    pub upload: Option<String>,
}

impl AuditEvent for PublishOutOfScope {
    const ACTION: &'static str = "publish.out_of_scope";
    fn outcome(&self) -> Outcome {
        Outcome::Denied
    }
    fn subject(&self) -> Option<String> {
        self.artifact.clone().or_else(|| self.upload.clone())
    }
}
