//! A minimal audit event for tests that drive the audit writer in process.

use sallyport::audit::{AuditContext, AuditError, AuditEvent, Auditor};

/// `test.probe`, numbered.
#[derive(serde::Serialize)]
pub struct Probe {
    pub n: u64,
}

impl AuditEvent for Probe {
    const ACTION: &'static str = "test.probe";
}

/// Appends probe `n` as the system; its sequence number once durable.
pub async fn emit(a: &Auditor, n: u64) -> Result<u64, AuditError> {
    a.emit(&AuditContext::system(), &Probe { n }).await
}
