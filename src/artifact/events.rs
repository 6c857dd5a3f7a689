//! The audit event of the artifact registry. Details never carry the file name (PHI).

use serde::Serialize;

use crate::audit::AuditEvent;

/// An artifact was registered (`artifact.registered`).
#[derive(Debug, Serialize)]
pub struct ArtifactRegistered {
    /// The new artifact.
    pub artifact: String,
    /// `import` or `upload`.
    pub source: &'static str,
    /// The upload, for `upload`.
    pub upload: Option<String>,
    /// Plaintext length.
    pub length: u64,
    /// SHA-256 of the plaintext, hex.
    pub sha256: String,
    /// Media type.
    pub content_type: String,
    /// Batch, if any.
    pub batch: Option<String>,
    /// For imports: whether the source file is to be removed (`[artifacts]
    /// remove_imported`); it is removed only after this entry is durable.
    pub remove_source: Option<bool>,
}

impl AuditEvent for ArtifactRegistered {
    const ACTION: &'static str = "artifact.registered";
    fn subject(&self) -> Option<String> {
        Some(self.artifact.clone())
    }
}
