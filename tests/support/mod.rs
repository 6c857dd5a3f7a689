//! Support shared by the integration tests. Each `tests/*.rs` is its own crate and says
//! `mod support;`, so each uses the part it needs (hence `dead_code` is allowed).
//!
//! # Layout
//!
//! - `ci`: the one rule for a missing dependency (Redis, a real client): fail under `CI`,
//!   otherwise skip with a notice.
//! - `gateway`: the real `sallyport` binary on port 0 in a temp dir, the test tokens, and
//!   the CLI (`sallyport()` is the one place the binary is spawned).
//! - `tls`: the rustls client config, reqwest client and raw TLS stream for the gateway.
//! - `audit_probe`: a minimal audit event and `emit`, for the writer in process.
//! - `audit_schema`: `proto/audit-event-v1.schema.json`, asserted on every exported audit
//!   trail.
//! - `data`: deterministic test data and digests.
//! - `fhir`: synthetic FHIR R4 NDJSON, batches of it, their manifests and provenance.
//! - `mem_blob`: an in-memory `BlobStore` that models durability and simulates crashes
//!   (run through the BlobStore conformance suite).
//! - `mem_state`: the library's `MemoryStore` with injected outages and tampering.
//! - `at_rest`: at-rest stores over those two.
//! - `redis`: the test Redis, its availability and per-test key prefixes.
//! - `smart`: a SMART Backend Services client (ES384 key, JWKS, assertion, token).
//! - `batches`: the batches API client, the auditor clients, waiting for a verdict.
//! - `links`, `tus_http`, `tus_e2e`: clients for the link/download and upload tests.
//! - `pip`: pinned Python tools installed once per requirements file.
//! - `s3`: the test S3 server (moto, one per test binary) and a key prefix per test.
//! - `tuspy`: the real Python tus client (installed once per requirements file) and one
//!   run of `tests/clients/tuspy_upload.py`.
//! - `tus_core`: small pure helpers for the tus core tests (limits, principals, headers).
//! - `uploads`: the real upload engine in-process over the in-memory stores.
#![allow(
    dead_code,
    unused_imports,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used
)]

pub mod at_rest;
pub mod audit_probe;
pub mod audit_schema;
pub mod batches;
pub mod ci;
pub mod data;
pub mod fhir;
pub mod gateway;
pub mod links;
pub mod mem_blob;
pub mod mem_state;
pub mod pip;
pub mod redis;
pub mod s3;
pub mod smart;
pub mod tls;
pub mod tus_core;
pub mod tus_e2e;
pub mod tus_http;
pub mod tuspy;
pub mod uploads;

pub use gateway::{
    ADMIN_TOKEN, Gateway, LAB_TOKEN, UPLOADER_TOKEN, cli, cli_output, clients_toml, sallyport,
    token_hash, wait_timeout,
};
pub use tls::{ClientCert, client_tls, openssl_handshake};
