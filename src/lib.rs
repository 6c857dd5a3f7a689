//! Sallyport: a secure file-transfer gateway for healthcare data exchange.
//!
//! One binary terminates TLS itself (rustls), accepts resumable tus uploads with a SHA-256
//! ledger, issues revocable HMAC-signed download links, encrypts everything at rest with
//! envelope keys, and keeps a tamper-evident audit trail.
//!
//! # Layout
//!
//! Layers, dependencies pointing down only:
//!
//! ```text
//! composition root      app
//! cli / main            cli
//! http                  http (accept loop, Endpoint router, the one error table), tls
//! handlers              http::handlers — parse, call a service, map the outcome
//! services              upload, links, grant, artifact, batch, smart, bulk — own a flow, audit
//!                       inside it
//! protocol cores        audit::chain, audit::checkpoint, audit::verify, audit::siem,
//!                       audit::journal::record, audit::query, signed_link,
//!                       range, tus, at_rest::format, rfc9110, manifest, batch::ndjson,
//!                       batch::verdict, proxy, smart::scope, bulk::request,
//!                       bulk::manifest — pure, no I/O
//! ports (traits)        state::StateStore, blob::BlobStore, keys::KeyProvider, audit::log
//! adapters              state::embedded (redb), state::redis, blob::local, keys::keyring,
//!                       audit::journal
//! ```
//!
//! * [`app`] — the composition root: `app::build(config)` wires stores, keys and services.
//! * [`cli`] — the `sallyport` command line: `serve`, `check-config`, `preflight`, `audit
//!   verify`, `keys`, and `link`, `artifact`, `batch`, `audit query|trace` through the
//!   running gateway.
//! * [`config`] — TOML + `SALLYPORT_*` environment, parsed once into validated types.
//! * [`secret`] — secrets from config or files: redacted, zeroised; the one strict
//!   type/owner/mode/size check for every secret file and the config file.
//! * [`ids`] — server-generated opaque ids; no client string becomes a name.
//! * [`tls`] — rustls server config and `[tls]` settings, development CA, SIGHUP reload.
//! * [`http`] — the accept loop, limits and timeouts, the `Endpoint` router, problem+json.
//! * [`auth`] — API clients, bearer tokens (hashed, constant-time), roles, `Principal`,
//!   client-certificate identities.
//! * [`metrics`] — Prometheus registry; metric names are constants there.
//! * [`audit`] — typed audit events, one `emit()`, the hash chain and its verifier, signed
//!   checkpoints (`audit::checkpoint`, `audit::checkpointer`), the `audit::log` port and
//!   its adapters (the state-store log, the `audit::journal` segment files with group
//!   commit; `audit::journal::record` is the pure codec), the chain-against-
//!   checkpoints check (`audit::verify`), SIEM formats (`audit::siem`, pure) and shipping
//!   (`audit::ship`), queries and traces (`audit::query`, pure; `audit::search`, the
//!   service; `audit::index`, the derived redb index; `audit::source`, the one seam they
//!   read the chain through), retention and archive of sealed journal segments
//!   (`audit::archive`).
//! * [`state`] — the `StateStore` port, its embedded (redb) and Redis adapters (with
//!   instance presence and lease takeover), the stable instance id, and an in-memory store
//!   for tests.
//! * [`blob`] — the `BlobStore` port and its local-filesystem adapter.
//! * [`keys`] — the `KeyProvider` port, KEKs and wrapped per-object DEKs.
//! * [`at_rest`] — the segmented AES-256-GCM format, appending writer, random-access reader.
//! * [`tus`] — the tus 1.0.0 protocol core (headers, metadata, checksums), no I/O.
//! * [`upload`] — the upload engine: tus requests to records, ledger, leases, at-rest bytes.
//! * [`signed_link`] — the signed-link canonical form, signing and verification.
//! * [`range`] — RFC 9110 range parsing and planning.
//! * [`rfc9110`] — shared RFC 9110 field syntax: tokens, OWS, lists, parameters; no I/O.
//! * [`artifact`] — downloadable artifacts: the registry of records, import-directory encryption.
//! * [`grant`] — grant records behind signed links: revocation, indexes, download meters.
//! * [`links`] — the signed-link service: the links API, artifact registration, downloads.
//! * [`batch`] — batches (issue 10); today its pure cores: the NDJSON checker and the verdict.
//! * [`proxy`] — the client behind a balancer: PROXY protocol v2 headers, `Forwarded` /
//!   `X-Forwarded-For` from trusted proxies, the one client address; no I/O.
//! * [`manifest`] — batch manifest and provenance parsing (`proto/manifest-v1.md`), no I/O.
//! * [`smart`] — SMART Backend Services: client registration, the token endpoint's flow
//!   (assertions, `jti` replay cache, scopes), HMAC access tokens and their authenticator.
//! * [`bulk`] — FHIR Bulk Data delivery: publications of batches for SMART clients, the
//!   `$export` kick-off, status and cancel flow, complete-status manifests of signed links.

pub mod app;
pub mod artifact;
pub mod at_rest;
pub mod audit;
pub mod auth;
pub mod batch;
pub mod blob;
pub mod bulk;
pub mod cli;
pub mod config;
pub mod grant;
pub mod http;
pub mod ids;
pub mod invite;
pub mod keys;
pub mod links;
pub mod manifest;
pub mod metrics;
pub mod proxy;
pub mod range;
pub mod rfc9110;
pub mod secret;
pub mod signed_link;
pub mod smart;
pub mod state;
pub mod tls;
pub mod tus;
pub mod upload;
