//! Security events that happen without a principal — failed authentication, refused TLS
//! handshakes, refused PROXY protocol headers, late request heads, forged or malformed
//! download links — audited as rate-limited summaries, not one entry per attempt.
//!
//! Events are counted by the client address (`proxy::ClientAddr::client`: behind a
//! balancer, the client it named, not the balancer), so one client's flood cannot hide
//! another's attempts; the first entry records the peer too when it differs. A refused
//! PROXY header has no client yet and counts under the balancer's own address.
//!
//! Per window (one minute by default) and per (kind, client address): the **first** event
//! is audited at once with its reason (`security.auth_failed`, `security.tls_refused`),
//! so an investigator sees who tried and why; the repeats are only counted, and when the
//! window closes one `security.summary` entry per (kind, address) says how many more there
//! were. A flood costs at most one entry per address per window plus its summary. A kind
//! may allow more than one entry per address ([`SecurityEvents::note_up_to`]): a refused
//! download link is audited one by one up to the forged-link limiter's burst, which is all
//! an address gets before the limiter answers 429 without reading the link.
//!
//! Memory and audit volume are bounded under a flood from many addresses: at most
//! [`MAX_ADDRESSES`] addresses are tracked per window and at most [`MAX_IMMEDIATE`] first
//! events are audited at once; beyond either, events are counted under the address `*`
//! and appear only in that address's summary.
//!
//! Not here: audit entries of authenticated requests (each service writes its own).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

use super::{Actor, AuditContext, AuditEvent, Auditor, Outcome};
use crate::proxy::ClientAddr;

/// Addresses tracked per window; events from further addresses count under `*`.
pub const MAX_ADDRESSES: usize = 10_000;
/// First events audited at once per window; further first events count under `*`.
pub const MAX_IMMEDIATE: usize = 200;

/// A kind of security event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecurityKind {
    /// A request with missing, malformed or unknown credentials (401).
    AuthFailed,
    /// A TLS handshake that failed or timed out (bad version, no shared cipher, a client
    /// certificate refused, no certificate where one is required).
    TlsRefused,
    /// A connection from a `server.proxy_protocol_from` address without a valid PROXY
    /// protocol v2 header.
    ProxyRefused,
    /// An HTTP/1 request head that began but did not arrive within
    /// `server.header_read_timeout` (slowloris); answered 408.
    HeaderTimeout,
    /// A download link refused before its signature verified (malformed, unknown key, bad
    /// signature, expired, wrong method or client): `download.rejected` with no grant.
    LinkRefused,
    /// A refused SMART token request (`POST /auth/token`): `smart.token_refused`, one by one
    /// up to [`TOKEN_REFUSED_ALLOWANCE`] per address and window.
    TokenRefused,
    /// A request with a validly signed upload invitation that no longer admits it
    /// (revoked, expired, unknown): `invitation.refused`, one by one up to
    /// [`INVITATION_REFUSED_ALLOWANCE`] per address and window.
    InvitationRefused,
}

/// Refused invitation requests audited one by one per address and window; the rest are
/// counted into the window's summary (a page or a client retrying a revoked invitation
/// cannot grow the trail without bound).
pub const INVITATION_REFUSED_ALLOWANCE: u32 = 10;

/// Refused token requests audited one by one per address and window (each names its
/// reason); the rest are counted into the window's summary.
pub const TOKEN_REFUSED_ALLOWANCE: u32 = 10;

impl SecurityKind {
    fn as_str(self) -> &'static str {
        match self {
            SecurityKind::AuthFailed => "auth_failed",
            SecurityKind::TlsRefused => "tls_refused",
            SecurityKind::ProxyRefused => "proxy_refused",
            SecurityKind::HeaderTimeout => "header_timeout",
            SecurityKind::LinkRefused => "link_refused",
            SecurityKind::TokenRefused => "token_refused",
            SecurityKind::InvitationRefused => "invitation_refused",
        }
    }
}

/// The first failed authentication from an address in a window.
#[derive(Debug, Serialize)]
pub struct AuthFailed {
    /// `missing`, `malformed` or `invalid` credentials.
    pub reason: &'static str,
    /// The endpoint tried.
    pub endpoint: &'static str,
}

impl AuditEvent for AuthFailed {
    const ACTION: &'static str = "security.auth_failed";
    fn outcome(&self) -> Outcome {
        Outcome::Denied
    }
}

/// The first refused TLS handshake from an address in a window.
#[derive(Debug, Serialize)]
pub struct TlsRefused {
    /// What failed (`handshake` or `timeout`), never the peer's bytes.
    pub reason: &'static str,
}

impl AuditEvent for TlsRefused {
    const ACTION: &'static str = "security.tls_refused";
    fn outcome(&self) -> Outcome {
        Outcome::Denied
    }
}

/// The first refused PROXY header from a balancer address in a window.
#[derive(Debug, Serialize)]
pub struct ProxyRefused {
    /// What was wrong (`missing`, `version1`, `timeout`, … — `proxy::v2` reason codes),
    /// never the peer's bytes.
    pub reason: &'static str,
}

impl AuditEvent for ProxyRefused {
    const ACTION: &'static str = "security.proxy_refused";
    fn outcome(&self) -> Outcome {
        Outcome::Denied
    }
}

/// The first late request head from an address in a window.
#[derive(Debug, Serialize)]
pub struct HeaderTimeout {
    /// Bytes of the head received before the deadline (never their content).
    pub head_bytes: u64,
}

impl AuditEvent for HeaderTimeout {
    const ACTION: &'static str = "security.header_timeout";
    fn outcome(&self) -> Outcome {
        Outcome::Denied
    }
}

/// The repeats of one kind from one address (or `*`) in a window that closed.
#[derive(Debug, Serialize)]
pub struct SecuritySummary {
    /// `auth_failed`, `tls_refused`, `proxy_refused`, `header_timeout` or `link_refused`.
    pub kind: &'static str,
    /// Events not audited one by one.
    pub repeats: u64,
    /// The window's length in seconds.
    pub window_secs: u64,
}

impl AuditEvent for SecuritySummary {
    const ACTION: &'static str = "security.summary";
    fn outcome(&self) -> Outcome {
        Outcome::Denied
    }
}

/// Where an event came from: an address, or `*` for the overflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum From {
    Address(IpAddr),
    Overflow,
}

/// What one (kind, origin) did in a window.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Tally {
    /// Events audited one by one.
    audited: u32,
    /// Events only counted, for the window's summary.
    repeats: u64,
}

#[derive(Debug, Default)]
struct Window {
    /// Per (kind, origin); an entry exists once the first event was seen.
    counts: HashMap<(SecurityKind, From), Tally>,
    immediate: usize,
}

impl Window {
    /// Counts one event of `kind` from `addr`, of which the first `allowance` per window
    /// are audited one by one (within the window's immediate budget).
    fn note(&mut self, kind: SecurityKind, addr: IpAddr, allowance: u32) -> Noted {
        let key = (kind, From::Address(addr));
        let tracked = self.counts.contains_key(&key);
        if !tracked && self.counts.len() >= MAX_ADDRESSES {
            self.counts
                .entry((kind, From::Overflow))
                .or_default()
                .repeats += 1;
            return Noted::Counted;
        }
        let budget_left = self.immediate < MAX_IMMEDIATE;
        let tally = self.counts.entry(key).or_default();
        if tally.audited < allowance.max(1) {
            if budget_left {
                tally.audited += 1;
                self.immediate += 1;
                return Noted::AuditNow;
            }
            if tally.audited == 0 {
                // Past the immediate budget an address not yet heard from is counted
                // under `*`, so the tracked addresses stay the ones already audited.
                self.counts.remove(&key);
                self.counts
                    .entry((kind, From::Overflow))
                    .or_default()
                    .repeats += 1;
                return Noted::Counted;
            }
        }
        tally.repeats += 1;
        Noted::Counted
    }
}

/// The summarizer: cheap to clone; one per gateway.
#[derive(Debug, Clone)]
pub struct SecurityEvents {
    auditor: Auditor,
    window: Arc<Mutex<Window>>,
    length: Duration,
}

/// What [`SecurityEvents::note`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Noted {
    /// The first from its address in this window: audit it now.
    AuditNow,
    /// Counted for the window's summary.
    Counted,
}

impl SecurityEvents {
    /// A summarizer writing to `auditor`, with windows of `length`.
    pub fn new(auditor: Auditor, length: Duration) -> Self {
        Self {
            auditor,
            window: Arc::default(),
            length,
        }
    }

    /// Counts one event; whether it is the first from its address in this window (and
    /// within the immediate budget), to be audited now.
    pub fn note(&self, kind: SecurityKind, addr: IpAddr) -> Noted {
        self.note_up_to(kind, addr, 1)
    }

    /// Counts one event; whether it is among the first `allowance` from its address in
    /// this window (and within the immediate budget), to be audited now. `u32::MAX`: audit
    /// it whenever the window's budget allows (an event that must not hide in a count).
    pub fn note_up_to(&self, kind: SecurityKind, addr: IpAddr, allowance: u32) -> Noted {
        self.window
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .note(kind, addr, allowance)
    }

    /// A failed authentication from `addr` at `endpoint`. Audit failures are logged, not
    /// returned: the request is refused either way.
    pub async fn auth_failed(
        &self,
        addr: ClientAddr,
        request_id: &str,
        endpoint: &'static str,
        reason: &'static str,
    ) {
        if self.note(SecurityKind::AuthFailed, addr.client) == Noted::AuditNow {
            let ctx = AuditContext {
                request_id: Some(request_id.to_owned()),
                ..anonymous(None).with_addr(addr)
            };
            if let Err(e) = self
                .auditor
                .emit(&ctx, &AuthFailed { reason, endpoint })
                .await
            {
                tracing::warn!(error = %e, "could not audit a failed authentication");
            }
        }
    }

    /// A refused token request from `addr`, described by `event` (the issuer's own event
    /// type: this module knows no SMART). Audit failures are logged, not returned: the
    /// request is refused either way.
    pub async fn token_refused<E: AuditEvent>(
        &self,
        ctx: &AuditContext,
        addr: ClientAddr,
        event: &E,
    ) {
        let noted = self.note_up_to(
            SecurityKind::TokenRefused,
            addr.client,
            TOKEN_REFUSED_ALLOWANCE,
        );
        if noted == Noted::AuditNow
            && let Err(e) = self.auditor.emit(ctx, event).await
        {
            tracing::warn!(error = %e, "could not audit a refused token request");
        }
    }

    /// A request refused for its upload invitation, described by `event` (the invitation
    /// service's own event type), from the client address in `ctx`. Audit failures are
    /// logged, not returned: the request is refused either way.
    pub async fn invitation_refused<E: AuditEvent>(&self, ctx: &AuditContext, event: &E) {
        let addr = ctx
            .client_addr
            .as_deref()
            .and_then(|a| a.parse::<IpAddr>().ok())
            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
        let noted = self.note_up_to(
            SecurityKind::InvitationRefused,
            addr,
            INVITATION_REFUSED_ALLOWANCE,
        );
        if noted == Noted::AuditNow
            && let Err(e) = self.auditor.emit(ctx, event).await
        {
            tracing::warn!(error = %e, "could not audit a refused invitation");
        }
    }

    /// A refused TLS handshake from `addr`.
    pub async fn tls_refused(&self, addr: ClientAddr, reason: &'static str) {
        if self.note(SecurityKind::TlsRefused, addr.client) == Noted::AuditNow {
            let ctx = anonymous(None).with_addr(addr);
            if let Err(e) = self.auditor.emit(&ctx, &TlsRefused { reason }).await {
                tracing::warn!(error = %e, "could not audit a refused TLS handshake");
            }
        }
    }

    /// A connection from the balancer address `peer` refused for its PROXY header.
    pub async fn proxy_refused(&self, peer: IpAddr, reason: &'static str) {
        if self.note(SecurityKind::ProxyRefused, peer) == Noted::AuditNow {
            let ctx = anonymous(Some(peer));
            if let Err(e) = self.auditor.emit(&ctx, &ProxyRefused { reason }).await {
                tracing::warn!(error = %e, "could not audit a refused PROXY header");
            }
        }
    }

    /// A request head from `addr` that began but was not complete within
    /// `server.header_read_timeout`, answered 408 with `request_id`.
    pub async fn header_timeout(&self, addr: ClientAddr, request_id: String, head_bytes: u64) {
        if self.note(SecurityKind::HeaderTimeout, addr.client) == Noted::AuditNow {
            let ctx = AuditContext {
                request_id: Some(request_id),
                ..anonymous(None).with_addr(addr)
            };
            let event = HeaderTimeout { head_bytes };
            if let Err(e) = self.auditor.emit(&ctx, &event).await {
                tracing::warn!(error = %e, "could not audit a late request head");
            }
        }
    }

    /// Closes the window: one `security.summary` per (kind, origin) with repeats; how many
    /// summaries were written.
    pub async fn flush(&self) -> usize {
        let closed = {
            let mut w = self.window.lock().unwrap_or_else(|p| p.into_inner());
            std::mem::take(&mut *w)
        };
        let mut written = 0;
        for ((kind, from), Tally { repeats, .. }) in closed.counts {
            if repeats == 0 {
                continue;
            }
            let ctx = anonymous(match from {
                From::Address(a) => Some(a),
                From::Overflow => None,
            });
            let ctx = AuditContext {
                client_addr: ctx.client_addr.or_else(|| Some("*".to_owned())),
                ..ctx
            };
            let event = SecuritySummary {
                kind: kind.as_str(),
                repeats,
                window_secs: self.length.as_secs(),
            };
            match self.auditor.emit(&ctx, &event).await {
                Ok(_) => written += 1,
                Err(e) => tracing::warn!(error = %e, "could not audit a security summary"),
            }
        }
        written
    }

    /// Flushes every window length, forever (spawn it).
    pub async fn run(self) {
        let mut tick = tokio::time::interval(self.length);
        tick.tick().await;
        loop {
            tick.tick().await;
            self.flush().await;
        }
    }
}

fn anonymous(addr: Option<IpAddr>) -> AuditContext {
    AuditContext {
        actor: Actor::Anonymous,
        request_id: None,
        client_addr: addr.map(|a| a.to_string()),
        peer_addr: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u32) -> IpAddr {
        IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + n))
    }

    #[test]
    fn the_first_per_kind_and_address_is_audited_the_rest_counted() {
        let mut w = Window::default();
        assert_eq!(w.note(SecurityKind::AuthFailed, ip(1), 1), Noted::AuditNow);
        assert_eq!(w.note(SecurityKind::AuthFailed, ip(1), 1), Noted::Counted);
        assert_eq!(w.note(SecurityKind::TlsRefused, ip(1), 1), Noted::AuditNow);
        assert_eq!(w.note(SecurityKind::AuthFailed, ip(2), 1), Noted::AuditNow);
        assert_eq!(w.note(SecurityKind::AuthFailed, ip(1), 1), Noted::Counted);
        assert_eq!(
            w.counts[&(SecurityKind::AuthFailed, From::Address(ip(1)))].repeats,
            2
        );
        assert_eq!(
            w.counts[&(SecurityKind::AuthFailed, From::Address(ip(2)))].repeats,
            0
        );
    }

    #[test]
    fn a_flood_from_many_addresses_stays_bounded() {
        let mut w = Window::default();
        let mut immediate = 0;
        for n in 0..50_000 {
            if w.note(SecurityKind::AuthFailed, ip(n), 1) == Noted::AuditNow {
                immediate += 1;
            }
        }
        assert_eq!(immediate, MAX_IMMEDIATE);
        assert!(w.counts.len() <= MAX_ADDRESSES);
        let overflow = w.counts[&(SecurityKind::AuthFailed, From::Overflow)].repeats;
        assert_eq!(overflow as usize, 50_000 - MAX_IMMEDIATE);
        // Every event is accounted for: audited at once or counted somewhere.
        let counted: u64 = w.counts.values().map(|t| t.repeats).sum();
        assert_eq!(counted as usize + immediate, 50_000);
    }

    #[test]
    fn an_allowance_audits_the_first_few_per_address_then_counts() {
        let mut w = Window::default();
        let k = SecurityKind::LinkRefused;
        for _ in 0..3 {
            assert_eq!(w.note(k, ip(1), 3), Noted::AuditNow);
        }
        assert_eq!(w.note(k, ip(1), 3), Noted::Counted);
        assert_eq!(w.note(k, ip(1), 3), Noted::Counted);
        assert_eq!(w.note(k, ip(2), 3), Noted::AuditNow);
        let one = w.counts[&(k, From::Address(ip(1)))];
        assert_eq!((one.audited, one.repeats), (3, 2));
        // An event that must not hide in a count is audited while the budget lasts.
        assert_eq!(w.note(k, ip(1), u32::MAX), Noted::AuditNow);
        // An allowance of 0 still audits the first (the trail always shows who began).
        assert_eq!(w.note(SecurityKind::AuthFailed, ip(3), 0), Noted::AuditNow);
        assert_eq!(w.note(SecurityKind::AuthFailed, ip(3), 0), Noted::Counted);
    }

    #[test]
    fn an_allowance_never_lifts_the_immediate_budget() {
        let mut w = Window::default();
        let k = SecurityKind::LinkRefused;
        let (mut immediate, mut total) = (0, 0u64);
        // 1,000 addresses with ten refused links each: 10,000 events, 200 audited at once.
        for n in 0..1_000 {
            for _ in 0..10 {
                total += 1;
                if w.note(k, ip(n), 10) == Noted::AuditNow {
                    immediate += 1;
                }
            }
        }
        assert_eq!(immediate, MAX_IMMEDIATE);
        // The first twenty addresses got their ten; the rest are counted under `*`.
        assert_eq!(w.counts[&(k, From::Address(ip(19)))].audited, 10);
        assert!(!w.counts.contains_key(&(k, From::Address(ip(20)))));
        let counted: u64 = w.counts.values().map(|t| t.repeats).sum();
        assert_eq!(counted + immediate as u64, total);
        assert_eq!(
            w.counts[&(k, From::Overflow)].repeats,
            total - immediate as u64
        );
    }
}
