//! `Forwarded` (RFC 7239) and `X-Forwarded-For`: the client behind trusted HTTP proxies.
//!
//! Each proxy appends the address it received the request from, so the list reads left to
//! right from the (claimed) client to the last proxy; only the right end is vouched for by
//! someone the gateway trusts. [`client`] therefore walks from the right: starting at the
//! connection's own client address, as long as the current address is a trusted proxy it
//! steps to the entry on its left; the first address that is *not* a trusted proxy is the
//! client. A peer that is not a trusted proxy is its own client and its headers are never
//! read, so an attacker-sent `X-Forwarded-For` changes nothing.
//!
//! Where the walk cannot go on — an entry that is `unknown`, an obfuscated identifier
//! (`_hidden`), or not an address at all, or more than [`MAX_HOPS`] entries — the client is
//! the last address that was reached: a trusted proxy that could not say more. When every
//! entry is a trusted proxy, the left-most one is the client.
//!
//! Lists are split on commas and `;` without regard to quoted strings, on purpose: a node
//! (`for=`) value never holds either, and a proxy's own appended entry — the right end —
//! must stay readable whatever a client wrote to its left (a client's unbalanced quote
//! must not swallow it). Only one of the two fields is read (`server.forwarded_header`):
//! if the gateway read both, a client could write the one its proxy does not rewrite.
//!
//! Not here: which peers are trusted (`server.trusted_proxies`, a [`Networks`]), and the
//! PROXY protocol (`proxy::v2`), which runs before any of this.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::Networks;
use crate::rfc9110::trim_ows;

/// Entries examined at most, from the right.
pub const MAX_HOPS: usize = 32;

/// Which field carries the chain of addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2` (the de-facto standard).
    XForwardedFor,
    /// `Forwarded: for=client, for=proxy1` (RFC 7239).
    Forwarded,
}

impl ForwardedHeader {
    /// The field's name, lowercase.
    pub fn name(self) -> &'static str {
        match self {
            Self::XForwardedFor => "x-forwarded-for",
            Self::Forwarded => "forwarded",
        }
    }
}

/// The client address of a request that came from `origin` carrying `values` (every line
/// of the chosen field, in order).
pub fn client(
    origin: IpAddr,
    trusted: &Networks,
    field: ForwardedHeader,
    values: &[&[u8]],
) -> IpAddr {
    let mut current = origin;
    if !trusted.contains(current) {
        return current;
    }
    let entries = values
        .iter()
        .rev()
        .flat_map(|line| line.rsplit(|&b| b == b',').map(trim_ows))
        .filter(|e| !e.is_empty());
    for entry in entries.take(MAX_HOPS) {
        let node = match field {
            ForwardedHeader::XForwardedFor => node_address(entry),
            ForwardedHeader::Forwarded => forwarded_for(entry).and_then(node_address),
        };
        let Some(ip) = node else {
            return current;
        };
        current = ip;
        if !trusted.contains(ip) {
            return ip;
        }
    }
    current
}

/// The value of the single `for` parameter of one `Forwarded` element, unquoted.
fn forwarded_for(element: &[u8]) -> Option<&[u8]> {
    let mut found = None;
    for pair in element.split(|&b| b == b';').map(trim_ows) {
        let eq = pair.iter().position(|&b| b == b'=')?;
        let (name, value) = (&pair[..eq], &pair[eq + 1..]);
        if name.eq_ignore_ascii_case(b"for") {
            if found.is_some() {
                return None;
            }
            found = Some(value);
        }
    }
    let value = found?;
    match value {
        [b'"', inner @ .., b'"'] if !inner.contains(&b'\\') && !inner.contains(&b'"') => {
            Some(inner)
        }
        [b'"', ..] | [.., b'"'] => None,
        token => Some(token),
    }
}

/// An address, optionally with a port: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`,
/// `[2001:db8::1]`, `[2001:db8::1]:4711`. `unknown`, `_obfuscated` and anything else: `None`.
fn node_address(node: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(node).ok()?;
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = text.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        if !(after.is_empty() || is_port(after.strip_prefix(':')?)) {
            return None;
        }
        return v6.parse::<Ipv6Addr>().ok().map(IpAddr::V6);
    }
    let (v4, port) = text.split_once(':')?;
    is_port(port).then_some(())?;
    v4.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
}

fn is_port(s: &str) -> bool {
    !s.is_empty() && s.len() <= 5 && s.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Networks {
        let owned: Vec<String> = list.iter().map(|s| (*s).to_owned()).collect();
        Networks::parse(&owned).expect("networks")
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn xff(origin: &str, trusted: &[&str], lines: &[&str]) -> IpAddr {
        let values: Vec<&[u8]> = lines.iter().map(|l| l.as_bytes()).collect();
        client(
            ip(origin),
            &nets(trusted),
            ForwardedHeader::XForwardedFor,
            &values,
        )
    }

    fn fwd(origin: &str, trusted: &[&str], lines: &[&str]) -> IpAddr {
        let values: Vec<&[u8]> = lines.iter().map(|l| l.as_bytes()).collect();
        client(
            ip(origin),
            &nets(trusted),
            ForwardedHeader::Forwarded,
            &values,
        )
    }

    #[test]
    fn an_untrusted_peer_is_its_own_client_whatever_it_sends() {
        assert_eq!(xff("198.51.100.9", &[], &["1.2.3.4"]), ip("198.51.100.9"));
        assert_eq!(
            xff("198.51.100.9", &["10.0.0.0/8"], &["10.0.0.1, 1.2.3.4"]),
            ip("198.51.100.9")
        );
        assert_eq!(
            fwd("198.51.100.9", &["10.0.0.0/8"], &["for=1.2.3.4"]),
            ip("198.51.100.9")
        );
    }

    #[test]
    fn the_right_most_untrusted_entry_is_the_client() {
        let t = &["10.0.0.0/8"];
        // What a client wrote itself sits to the left and is never reached.
        assert_eq!(
            xff("10.0.0.2", t, &["6.6.6.6, 203.0.113.7"]),
            ip("203.0.113.7")
        );
        // Through two trusted proxies.
        assert_eq!(
            xff("10.0.0.2", t, &["6.6.6.6, 203.0.113.7, 10.0.0.9"]),
            ip("203.0.113.7")
        );
        // Several lines are one list, in order.
        assert_eq!(
            xff("10.0.0.2", t, &["6.6.6.6", "203.0.113.7 , 10.0.0.9"]),
            ip("203.0.113.7")
        );
        assert_eq!(
            xff("10.0.0.2", t, &["[2001:db8::7]:443"]),
            ip("2001:db8::7")
        );
        assert_eq!(xff("10.0.0.2", t, &["203.0.113.7:80"]), ip("203.0.113.7"));
        // No header: the proxy is the client (its own health check).
        assert_eq!(xff("10.0.0.2", t, &[]), ip("10.0.0.2"));
        // Every entry trusted: the left-most.
        assert_eq!(xff("10.0.0.2", t, &["10.1.1.1, 10.0.0.9"]), ip("10.1.1.1"));
    }

    #[test]
    fn an_unreadable_entry_stops_at_the_last_address_reached() {
        let t = &["10.0.0.0/8"];
        assert_eq!(
            xff("10.0.0.2", t, &["203.0.113.7, unknown, 10.0.0.9"]),
            ip("10.0.0.9")
        );
        assert_eq!(xff("10.0.0.2", t, &["garbage"]), ip("10.0.0.2"));
        // Garbage left of the client cannot hide it.
        assert_eq!(
            xff("10.0.0.2", t, &["\"[, ;;, 203.0.113.7"]),
            ip("203.0.113.7")
        );
        // A long chain of trusted entries is not walked past MAX_HOPS.
        let long = vec!["10.0.0.1"; MAX_HOPS + 5].join(",");
        assert_eq!(
            xff("10.0.0.2", t, &[&format!("203.0.113.7,{long}")]),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn forwarded_nodes_as_rfc_7239_writes_them() {
        let t = &["10.0.0.0/8", "2001:db8:ffff::/48"];
        assert_eq!(
            fwd(
                "10.0.0.2",
                t,
                &["for=192.0.2.60;proto=http;by=203.0.113.43"]
            ),
            ip("192.0.2.60")
        );
        assert_eq!(
            fwd(
                "10.0.0.2",
                t,
                &["for=6.6.6.6, For=\"[2001:db8:cafe::17]:4711\""]
            ),
            ip("2001:db8:cafe::17")
        );
        assert_eq!(
            fwd(
                "10.0.0.2",
                t,
                &["for=192.0.2.43, for=\"[2001:db8:ffff::1]\";proto=https"]
            ),
            ip("192.0.2.43")
        );
        assert_eq!(
            fwd("10.0.0.2", t, &["for=\"192.0.2.60:4711\""]),
            ip("192.0.2.60")
        );
        // unknown, obfuscated, missing or repeated `for`, broken quoting: stop there.
        for v in [
            "for=unknown",
            "for=_hidden",
            "proto=https",
            "for=1.2.3.4;for=5.6.7.8",
            "for=\"1.2.3.4",
            "for=\"1.2\\.3.4\"",
        ] {
            assert_eq!(fwd("10.0.0.2", t, &[v]), ip("10.0.0.2"), "{v}");
        }
    }

    #[test]
    fn nodes() {
        for (text, want) in [
            ("192.0.2.1", Some("192.0.2.1")),
            ("192.0.2.1:65535", Some("192.0.2.1")),
            ("2001:db8::1", Some("2001:db8::1")),
            ("[2001:db8::1]", Some("2001:db8::1")),
            ("[2001:db8::1]:1", Some("2001:db8::1")),
            ("[192.0.2.1]", None),
            ("[2001:db8::1]x", None),
            ("192.0.2.1:", None),
            ("192.0.2.1:123456", None),
            ("192.0.2.1:http", None),
            ("unknown", None),
            ("", None),
        ] {
            assert_eq!(node_address(text.as_bytes()), want.map(ip), "{text}");
        }
    }
}
