//! Who the client is when the gateway runs behind a load balancer or proxy: pure code, no
//! I/O.
//!
//! * [`v2`] — the PROXY protocol version 2 header a TCP (layer 4) balancer writes before
//!   the client's bytes; read only from `server.proxy_protocol_from`.
//! * [`forwarded`] — `Forwarded` / `X-Forwarded-For` from an HTTP (layer 7) proxy; read
//!   only from `server.trusted_proxies`.
//! * [`Networks`] — those configured lists of CIDR blocks.
//! * [`ClientAddr`] — the one answer every consumer uses (limits, link bindings, the
//!   audit trail): the client, and the peer that spoke for it.
//!
//! Not here: reading the socket (`http::server`), picking header lines out of a request
//! (`http::edge`).

use std::net::IpAddr;

use crate::signed_link::{ClientNet, ClientNetError};

pub mod forwarded;
pub mod v2;

/// The address a request is judged by, with the TCP peer it came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr {
    /// The client: from a PROXY header or a trusted proxy's forwarded field, else the peer.
    pub client: IpAddr,
    /// The TCP peer: the client itself, or the balancer or proxy that connected for it.
    pub peer: IpAddr,
}

impl ClientAddr {
    /// A client that connected itself.
    pub fn direct(peer: IpAddr) -> Self {
        Self { client: peer, peer }
    }

    /// The peer, when it is not the client (what the audit trail records as `peer_addr`).
    pub fn via(&self) -> Option<IpAddr> {
        (self.client != self.peer).then_some(self.peer)
    }
}

/// A list of CIDR blocks (`server.trusted_proxies`, `server.proxy_protocol_from`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Networks(Vec<ClientNet>);

/// Why an entry of a [`Networks`] list is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{entry:?} is not an IP address or canonical CIDR block: {reason}")]
pub struct NetworkError {
    /// The entry as written.
    pub entry: String,
    /// What is wrong with it.
    pub reason: ClientNetError,
}

impl Networks {
    /// Parses `entries`: canonical CIDR blocks (`10.0.0.0/8`, `2001:db8::/32`, host bits
    /// zero) or single addresses (`10.0.0.5`, one host).
    pub fn parse(entries: &[String]) -> Result<Self, NetworkError> {
        let one = |entry: &String| {
            let net = if entry.contains('/') {
                entry.parse::<ClientNet>()
            } else {
                entry
                    .parse::<IpAddr>()
                    .map_err(|_| ClientNetError::Address)
                    .and_then(|ip| ClientNet::new(ip, if ip.is_ipv4() { 32 } else { 128 }))
            };
            net.map_err(|reason| NetworkError {
                entry: entry.clone(),
                reason,
            })
        };
        entries.iter().map(one).collect::<Result<_, _>>().map(Self)
    }

    /// Whether no block is listed (the feature is off).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `ip` is inside one of the blocks (IPv4-mapped IPv6 counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|n| n.contains(ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: &[&str]) -> Result<Networks, NetworkError> {
        Networks::parse(&entries.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
    }

    #[test]
    fn blocks_and_single_addresses() {
        let n = list(&["10.0.0.0/8", "192.0.2.7", "2001:db8::/32"]).expect("valid");
        for (ip, inside) in [
            ("10.200.0.1", true),
            ("::ffff:10.0.0.1", true),
            ("192.0.2.7", true),
            ("192.0.2.8", false),
            ("2001:db8::9", true),
            ("2001:db9::9", false),
        ] {
            assert_eq!(n.contains(ip.parse().expect("ip")), inside, "{ip}");
        }
        assert!(list(&[]).expect("empty").is_empty());
        assert!(!Networks::default().contains("127.0.0.1".parse().expect("ip")));
    }

    #[test]
    fn bad_entries_name_themselves() {
        for (entry, reason) in [
            ("10.0.0.1/8", ClientNetError::HostBits),
            ("10.0.0.0/33", ClientNetError::Prefix),
            ("ten", ClientNetError::Address),
            ("::ffff:10.0.0.1", ClientNetError::Ipv4Mapped),
        ] {
            let e = list(&["10.0.0.0/8", entry]).expect_err(entry);
            assert_eq!(e.entry, entry);
            assert_eq!(e.reason, reason, "{entry}");
            assert!(e.to_string().contains(entry));
        }
    }

    #[test]
    fn via_is_the_peer_only_when_it_differs() {
        let a = ClientAddr::direct("192.0.2.1".parse().expect("ip"));
        assert_eq!(a.via(), None);
        let b = ClientAddr {
            client: "203.0.113.7".parse().expect("ip"),
            peer: "10.0.0.2".parse().expect("ip"),
        };
        assert_eq!(b.via(), Some("10.0.0.2".parse().expect("ip")));
    }
}
