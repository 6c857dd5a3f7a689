//! The HTTP edge: accept loop, routing, the one error mapping, and the handlers.
//!
//! A request flows: [`server`] accepts a TCP connection (within the connection limit),
//! completes the TLS handshake (within the header-read timeout) and hands the connection
//! to hyper (HTTP/1.1 or HTTP/2 by ALPN); [`edge::handle`] gives the request an id, checks
//! the header size, parses it into an [`endpoint::Endpoint`], dispatches to a handler,
//! turns any error into an RFC 9457 problem through [`problem`] (the only place that
//! decides what a client sees of a failure), adds the security headers, and counts it.
//!
//! Handlers only translate (parse, call a service, map the outcome); the flows themselves —
//! checks, storage, audit — are the services' in [`AppState`] (`uploads`, `links`). See
//! `docs/architecture.md`, "One shape for every flow".
//!
//! Not here: protocol logic (the pure cores the services call) and storage (the services
//! reach it through the ports).

use std::sync::Arc;
use std::time::Instant;

pub mod body;
pub mod context;
pub mod cors;
pub mod edge;
pub mod endpoint;
pub mod handlers;
pub mod page;
pub mod problem;
pub mod server;

use crate::audit::Auditor;
use crate::auth::Authenticator;
use crate::blob::BlobStore;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::state::StateStore;

/// Everything handlers share. Built once at start-up.
#[derive(Debug)]
pub struct AppState {
    /// The validated configuration.
    pub config: Arc<Config>,
    /// Shared state.
    pub state: Arc<dyn StateStore>,
    /// Object bytes (ciphertext only).
    pub blobs: Arc<dyn BlobStore>,
    /// The audit trail.
    pub auditor: Auditor,
    /// Failed authentications and refused handshakes, audited as summaries.
    pub security: crate::audit::security::SecurityEvents,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Authenticators, tried in order.
    pub authenticators: Vec<Arc<dyn Authenticator>>,
    /// When the process started.
    pub started: Instant,
    /// Routing configuration.
    pub routes: endpoint::Routes,
    /// The upload engine.
    pub uploads: crate::upload::Uploads,
    /// Signed links: keys, grants, artifacts, download checks.
    pub links: Arc<crate::links::Links>,
    /// The batch service.
    pub batches: crate::batch::Batches,
    /// SMART Backend Services: the token endpoint.
    pub smart: crate::smart::Smart,
    /// FHIR Bulk Data `$export` over released batches (`None` when no SMART client is
    /// registered: its routes answer 404).
    pub bulk: Option<crate::bulk::Bulk>,
    /// Upload invitations.
    pub invitations: crate::invite::Invitations,
    /// Audit queries and traces.
    pub audit_search: crate::audit::search::AuditSearch,
    /// The audit index, for the indexer task (`None` when it could not be opened).
    pub audit_index: Option<Arc<crate::audit::index::AuditIndex>>,
}
