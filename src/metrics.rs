//! Prometheus metrics. Every metric is a field of [`Metrics`], registered once under a
//! name from [`names`]; handlers and the accept loop update them, `/metrics` encodes them
//! (OpenMetrics text, which Prometheus scrapes natively).
//!
//! Labels are bounded and never carry PHI or client input: the endpoint label is the name
//! of the routed `Endpoint` variant, never a path; status is the numeric code.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Metric names (without the `_total` suffix OpenMetrics adds to counters).
pub mod names {
    /// HTTP requests by endpoint and status.
    pub const HTTP_REQUESTS: &str = "sallyport_http_requests";
    /// HTTP request latency by endpoint, seconds (to the response head).
    pub const HTTP_LATENCY: &str = "sallyport_http_request_duration_seconds";
    /// Bytes read from client connections (after TLS decryption).
    pub const BYTES_IN: &str = "sallyport_bytes_received";
    /// Bytes written to client connections (before TLS encryption).
    pub const BYTES_OUT: &str = "sallyport_bytes_sent";
    /// Connections open now.
    pub const OPEN_CONNECTIONS: &str = "sallyport_open_connections";
    /// Connections accepted.
    pub const CONNECTIONS: &str = "sallyport_connections";
    /// Connections closed at accept because their address had too many open.
    pub const CONNECTIONS_REFUSED: &str = "sallyport_connections_refused";
    /// Connections from a `server.proxy_protocol_from` balancer refused for a missing,
    /// malformed or late PROXY protocol v2 header.
    pub const PROXY_PROTOCOL_REFUSED: &str = "sallyport_proxy_protocol_refused";
    /// HTTP/1 request heads that began but did not arrive within
    /// `server.header_read_timeout` (answered 408).
    pub const HEADER_TIMEOUTS: &str = "sallyport_header_timeouts";
    /// TLS handshakes that failed (bad version, no shared cipher, bad client cert, timeout).
    pub const TLS_HANDSHAKE_FAILURES: &str = "sallyport_tls_handshake_failures";
    /// Audit events written, by action.
    pub const AUDIT_EVENTS: &str = "sallyport_audit_events";
    /// Audit events that could not be written.
    pub const AUDIT_FAILURES: &str = "sallyport_audit_failures";
    /// 1 when the audit writer halted on a lowered head (every audited action refused).
    pub const AUDIT_HALTED: &str = "sallyport_audit_halted";
    /// Outboxed audit entries (durable in the state store) the writer holds for its next
    /// append (`audit::outbox`).
    pub const AUDIT_OUTBOX_HELD: &str = "sallyport_audit_outbox_held";
    /// Signed audit checkpoints taken.
    pub const AUDIT_CHECKPOINTS: &str = "sallyport_audit_checkpoints";
    /// Signed audit checkpoints that could not be written to a sink (`audit.checkpoint_dir`,
    /// `audit.checkpoint_bucket`).
    pub const AUDIT_CHECKPOINT_FAILURES: &str = "sallyport_audit_checkpoint_failures";
    /// Durable appends of a batch of audit entries (group commits).
    pub const AUDIT_COMMITS: &str = "sallyport_audit_commits";
    /// Time of one durable append: written and synced (journal) or committed (state store).
    pub const AUDIT_COMMIT_DURATION: &str = "sallyport_audit_commit_duration_seconds";
    /// Entries per durable append.
    pub const AUDIT_COMMIT_ENTRIES: &str = "sallyport_audit_commit_entries";
    /// Bytes of audit entry lines appended.
    pub const AUDIT_BYTES: &str = "sallyport_audit_bytes";
    /// The audit chain's length as this writer last saw it.
    pub const AUDIT_CHAIN_LENGTH: &str = "sallyport_audit_chain_length";
    /// Appends built again because another instance appended first.
    pub const AUDIT_APPEND_CONFLICTS: &str = "sallyport_audit_append_conflicts";
}

/// Labels of a request counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The routed endpoint's name.
    pub endpoint: &'static str,
    /// The response status code.
    pub status: u16,
}

/// Labels of a latency histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabels {
    /// The routed endpoint's name.
    pub endpoint: &'static str,
}

/// Labels of an audit counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActionLabels {
    /// The audit action.
    pub action: &'static str,
}

fn latency_histogram() -> Histogram {
    // 100 µs to ~52 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 20))
}

fn commit_entries_histogram() -> Histogram {
    // 1 to 1024 entries per commit (audit.batch_max is at most 10000).
    Histogram::new(exponential_buckets(1.0, 2.0, 11))
}

fn commit_duration_histogram() -> Histogram {
    // 25 µs to ~13 s: a commit is one fsync on a fast disk, or a network round trip.
    Histogram::new(exponential_buckets(0.000_025, 2.0, 20))
}

/// Every metric the gateway exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Requests by endpoint and status.
    pub requests: Family<RequestLabels, Counter>,
    /// Latency by endpoint.
    pub latency: Family<EndpointLabels, Histogram, fn() -> Histogram>,
    /// Bytes in.
    pub bytes_in: Counter<u64, AtomicU64>,
    /// Bytes out.
    pub bytes_out: Counter<u64, AtomicU64>,
    /// Open connections.
    pub open_connections: Gauge,
    /// Accepted connections.
    pub connections: Counter,
    /// Connections closed at accept (too many from their address).
    pub connections_refused: Counter,
    /// Balancer connections refused for their PROXY header.
    pub proxy_protocol_refused: Counter,
    /// HTTP/1 request heads that began but were late (answered 408).
    pub header_timeouts: Counter,
    /// Failed TLS handshakes.
    pub tls_handshake_failures: Counter,
    /// Audit events written.
    pub audit_events: Family<ActionLabels, Counter>,
    /// Audit write failures.
    pub audit_failures: Counter,
    /// 1 when the audit writer halted.
    pub audit_halted: Gauge,
    /// Outboxed entries held by the writer.
    pub audit_outbox_held: Gauge,
    /// Checkpoints taken.
    pub audit_checkpoints: Counter,
    /// Checkpoints a sink could not store.
    pub audit_checkpoint_failures: Counter,
    /// Durable appends of the audit chain.
    pub audit_commits: Counter,
    /// Seconds per durable append.
    pub audit_commit_duration: Histogram,
    /// Entries per durable append.
    pub audit_commit_entries: Histogram,
    /// Bytes of entry lines appended.
    pub audit_bytes: Counter<u64, AtomicU64>,
    /// The chain's length as last seen.
    pub audit_chain_length: Gauge<u64, AtomicU64>,
    /// Appends rebuilt after another instance appended first.
    pub audit_append_conflicts: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<EndpointLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        let bytes_in = Counter::<u64, AtomicU64>::default();
        let bytes_out = Counter::<u64, AtomicU64>::default();
        let open_connections = Gauge::default();
        let connections = Counter::default();
        let tls_handshake_failures = Counter::default();
        let connections_refused = Counter::default();
        let proxy_protocol_refused = Counter::default();
        let header_timeouts = Counter::default();
        let audit_events = Family::<ActionLabels, Counter>::default();
        let audit_failures = Counter::default();
        let audit_halted = Gauge::default();
        let audit_outbox_held = Gauge::default();
        let audit_checkpoints = Counter::default();
        let audit_checkpoint_failures = Counter::default();
        let audit_commits = Counter::default();
        let audit_commit_duration = commit_duration_histogram();
        let audit_commit_entries = commit_entries_histogram();
        let audit_bytes = Counter::<u64, AtomicU64>::default();
        let audit_chain_length = Gauge::<u64, AtomicU64>::default();
        let audit_append_conflicts = Counter::default();
        registry.register(
            names::HTTP_REQUESTS,
            "HTTP requests by endpoint and status",
            requests.clone(),
        );
        registry.register(
            names::HTTP_LATENCY,
            "HTTP request latency to the response head",
            latency.clone(),
        );
        registry.register(
            names::BYTES_IN,
            "Bytes read from client connections",
            bytes_in.clone(),
        );
        registry.register(
            names::BYTES_OUT,
            "Bytes written to client connections",
            bytes_out.clone(),
        );
        registry.register(
            names::OPEN_CONNECTIONS,
            "Client connections open now",
            open_connections.clone(),
        );
        registry.register(
            names::CONNECTIONS,
            "Client connections accepted",
            connections.clone(),
        );
        registry.register(
            names::CONNECTIONS_REFUSED,
            "Client connections closed at accept: too many open from their address",
            connections_refused.clone(),
        );
        registry.register(
            names::PROXY_PROTOCOL_REFUSED,
            "Balancer connections refused: PROXY protocol v2 header missing, malformed or late",
            proxy_protocol_refused.clone(),
        );
        registry.register(
            names::HEADER_TIMEOUTS,
            "HTTP/1 request heads begun but not complete within server.header_read_timeout (answered 408)",
            header_timeouts.clone(),
        );
        registry.register(
            names::TLS_HANDSHAKE_FAILURES,
            "Failed TLS handshakes",
            tls_handshake_failures.clone(),
        );
        registry.register(
            names::AUDIT_EVENTS,
            "Audit events written, by action",
            audit_events.clone(),
        );
        registry.register(
            names::AUDIT_FAILURES,
            "Audit events that could not be written",
            audit_failures.clone(),
        );
        registry.register(
            names::AUDIT_HALTED,
            "1 when the audit writer refused to chain over a lost or rewritten tail",
            audit_halted.clone(),
        );
        registry.register(
            names::AUDIT_OUTBOX_HELD,
            "Outboxed audit entries, durable in the state store, held by the writer for its next append",
            audit_outbox_held.clone(),
        );
        registry.register(
            names::AUDIT_CHECKPOINTS,
            "Signed audit checkpoints taken",
            audit_checkpoints.clone(),
        );
        registry.register(
            names::AUDIT_CHECKPOINT_FAILURES,
            "Signed audit checkpoints that could not be written to a sink (checkpoint_dir, checkpoint_bucket)",
            audit_checkpoint_failures.clone(),
        );
        registry.register(
            names::AUDIT_COMMITS,
            "Durable appends of a batch of audit entries (group commits)",
            audit_commits.clone(),
        );
        registry.register(
            names::AUDIT_COMMIT_DURATION,
            "Time of one durable append of audit entries: written and synced, or committed to the state store",
            audit_commit_duration.clone(),
        );
        registry.register(
            names::AUDIT_COMMIT_ENTRIES,
            "Audit entries made durable by one append (group commit size)",
            audit_commit_entries.clone(),
        );
        registry.register(
            names::AUDIT_BYTES,
            "Bytes of audit entry lines appended",
            audit_bytes.clone(),
        );
        registry.register(
            names::AUDIT_CHAIN_LENGTH,
            "The audit chain's length as this gateway last saw it",
            audit_chain_length.clone(),
        );
        registry.register(
            names::AUDIT_APPEND_CONFLICTS,
            "Audit appends built again because another instance appended first",
            audit_append_conflicts.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            bytes_in,
            bytes_out,
            open_connections,
            connections,
            connections_refused,
            proxy_protocol_refused,
            header_timeouts,
            tls_handshake_failures,
            audit_events,
            audit_failures,
            audit_halted,
            audit_outbox_held,
            audit_checkpoints,
            audit_checkpoint_failures,
            audit_commits,
            audit_commit_duration,
            audit_commit_entries,
            audit_bytes,
            audit_chain_length,
            audit_append_conflicts,
        }
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// The exposition's content type.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_labelled_counters_and_histograms() {
        let m = Metrics::new();
        m.requests
            .get_or_create(&RequestLabels {
                endpoint: "healthz",
                status: 200,
            })
            .inc();
        m.latency
            .get_or_create(&EndpointLabels {
                endpoint: "healthz",
            })
            .observe(0.003);
        m.bytes_in.inc_by(42);
        let text = m.encode();
        assert!(
            text.contains(r#"sallyport_http_requests_total{endpoint="healthz",status="200"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"sallyport_http_request_duration_seconds_count{endpoint="healthz"} 1"#),
            "{text}"
        );
        assert!(text.contains("sallyport_bytes_received_total 42"), "{text}");
        assert!(text.ends_with("# EOF\n"));
    }
}
