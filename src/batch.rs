//! Batches: manifest-checked packages of files (issue 10).
//!
//! This module will hold the batch service — opening a batch with its manifest and
//! provenance, adding members, sealing, the verdict and the quarantine workflow — written in
//! the one shape every flow has (`docs/architecture.md`). Today it holds only the two pure
//! cores that sealing will run:
//!
//! * [`ndjson`] — a streaming checker for FHIR Bulk Data NDJSON members: one JSON object per
//!   line, the declared `resourceType`, the record count, the first bad line numbers per kind;
//!   memory bounded by the maximum line length, whatever the file size.
//! * [`verdict`] — facts in, findings out: what the manifest expected against what arrived
//!   (presence, completeness, sizes, both SHA-256 digests, the NDJSON reports, the batch
//!   totals) gives `Released` or `Quarantined` with findings in a deterministic order, and the
//!   report JSON and its SHA-256 for the audit record.
//!
//! Both import nothing above them: no tokio, axum or http, no state, blob, at-rest, upload or
//! links module; `.ci/layers.py` lists them as cores. Neither keeps or reports record content:
//! members are named by their logical names, lines by their numbers.
//!
//! Not here (yet): the manifest format and its parser (`crate::manifest`), reading members
//! from the blob store, the seal flow and its resumption, storage of verdicts, and audit.

pub mod config;
pub mod ndjson;
pub mod profile;
pub mod verdict;

pub use config::BatchSettings;
