//! The client-network binding: an IPv4 or IPv6 CIDR block, parsed strictly.
//!
//! Only one spelling of a block is accepted — the one [`ClientNet`]'s `Display` writes:
//! the address as the standard library prints it (dotted decimal without leading zeros;
//! RFC 5952 IPv6, lowercase and compressed), a `/`, and the prefix length in decimal
//! without leading zeros. Host bits must be zero (`10.0.0.1/8` is rejected, not masked),
//! and IPv4-mapped IPv6 blocks (`::ffff:a.b.c.d`) are refused in favour of the IPv4 form,
//! so one network never has two canonical names.
//!
//! Matching ([`ClientNet::contains`]) first maps an IPv4-mapped IPv6 client address to
//! IPv4, because a dual-stack listener reports IPv4 peers that way.
//!
//! Not here: where the client address comes from (the handler passes the request's
//! `proxy::ClientAddr::client` — the TCP peer, or the client a configured balancer or
//! trusted proxy named; this module reads no header).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An IPv4 or IPv6 network in canonical CIDR form.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientNet {
    addr: IpAddr,
    prefix: u8,
}

/// Why a string is not a canonical CIDR block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ClientNetError {
    /// Not `address/prefix`.
    #[error("a client network is written address/prefix")]
    Syntax,
    /// The address is not an IP address in its canonical spelling.
    #[error("the network address is not a canonically written IP address")]
    Address,
    /// The prefix is not a canonical decimal number within 0–32 (IPv4) or 0–128 (IPv6).
    #[error("the prefix length is out of range or not canonical decimal")]
    Prefix,
    /// Bits beyond the prefix are set in the address.
    #[error("the network address has host bits set")]
    HostBits,
    /// An IPv4-mapped IPv6 block; write the IPv4 block instead.
    #[error("an IPv4-mapped IPv6 network must be written in IPv4 form")]
    Ipv4Mapped,
}

impl ClientNet {
    /// A network from an address and prefix length, with the same rules as parsing.
    pub fn new(addr: IpAddr, prefix: u8) -> Result<Self, ClientNetError> {
        let max = match addr {
            IpAddr::V4(_) => 32,
            IpAddr::V6(v6) => {
                if v6.to_ipv4_mapped().is_some() {
                    return Err(ClientNetError::Ipv4Mapped);
                }
                128
            }
        };
        if prefix > max {
            return Err(ClientNetError::Prefix);
        }
        let net = Self { addr, prefix };
        if net.masked(addr) != addr {
            return Err(ClientNetError::HostBits);
        }
        Ok(net)
    }

    /// The network address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `client` is inside this network (IPv4-mapped IPv6 clients count as IPv4).
    pub fn contains(&self, client: IpAddr) -> bool {
        let client = client.to_canonical();
        let same_family = matches!(
            (client, self.addr),
            (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_))
        );
        same_family && self.masked(client) == self.addr
    }

    /// `ip` with every bit beyond this network's prefix cleared (same family assumed).
    fn masked(&self, ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V4(v4) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask))
            }
            IpAddr::V6(v6) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
            }
        }
    }
}

impl FromStr for ClientNet {
    type Err = ClientNetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr_text, prefix_text) = s.split_once('/').ok_or(ClientNetError::Syntax)?;
        let addr: IpAddr = addr_text.parse().map_err(|_| ClientNetError::Address)?;
        if let IpAddr::V6(v6) = addr
            && v6.to_ipv4_mapped().is_some()
        {
            return Err(ClientNetError::Ipv4Mapped);
        }
        // Canonical spelling: exactly what the standard library prints back.
        if addr.to_string() != addr_text {
            return Err(ClientNetError::Address);
        }
        let prefix = parse_prefix(prefix_text)?;
        Self::new(addr, prefix)
    }
}

/// 1–3 ASCII digits, no leading zero (except "0" itself).
fn parse_prefix(text: &str) -> Result<u8, ClientNetError> {
    let bytes = text.as_bytes();
    let canonical = !bytes.is_empty()
        && bytes.len() <= 3
        && bytes.iter().all(u8::is_ascii_digit)
        && (bytes[0] != b'0' || bytes.len() == 1);
    if !canonical {
        return Err(ClientNetError::Prefix);
    }
    text.parse().map_err(|_| ClientNetError::Prefix)
}

impl fmt::Display for ClientNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl fmt::Debug for ClientNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClientNet({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn net(s: &str) -> ClientNet {
        s.parse().expect("valid test network")
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("valid test address")
    }

    #[test]
    fn accepts_canonical_blocks() {
        for s in [
            "10.0.0.0/8",
            "192.0.2.7/32",
            "0.0.0.0/0",
            "2001:db8::/32",
            "::/0",
            "::1/128",
            "fe80::/10",
            "::102:304/128",
            "1::2:0:0:3:4/128",
            "1:0:0:2::3/128",
            "2001:db8:0:1::/64",
        ] {
            assert_eq!(net(s).to_string(), s);
        }
    }

    #[test]
    fn rejects_non_canonical_and_malformed_blocks() {
        let cases: &[(&str, ClientNetError)] = &[
            ("10.0.0.0", ClientNetError::Syntax),
            ("", ClientNetError::Syntax),
            ("10.0.0.0/8/8", ClientNetError::Prefix),
            ("010.0.0.0/8", ClientNetError::Address),
            ("10.0.0/8", ClientNetError::Address),
            (" 10.0.0.0/8", ClientNetError::Address),
            ("2001:DB8::/32", ClientNetError::Address),
            ("2001:0db8::/32", ClientNetError::Address),
            ("2001:db8:0:0:0:0:0:0/32", ClientNetError::Address),
            ("::ffff:10.0.0.0/104", ClientNetError::Ipv4Mapped),
            ("[::1]/128", ClientNetError::Address),
            ("::1.2.3.4/128", ClientNetError::Address),
            ("1:0:0:2::3:4/128", ClientNetError::Address),
            ("2001:db8::0:1/128", ClientNetError::Address),
            ("2001:db8:0::/48", ClientNetError::Address),
            ("fe80::%1/64", ClientNetError::Address),
            ("10.0.0.0/08", ClientNetError::Prefix),
            ("10.0.0.0/", ClientNetError::Prefix),
            ("10.0.0.0/+8", ClientNetError::Prefix),
            ("10.0.0.0/33", ClientNetError::Prefix),
            ("::/129", ClientNetError::Prefix),
            ("10.0.0.0/1000", ClientNetError::Prefix),
            ("10.0.0.1/8", ClientNetError::HostBits),
            ("2001:db8::1/64", ClientNetError::HostBits),
        ];
        for (s, want) in cases {
            assert_eq!(s.parse::<ClientNet>(), Err(*want), "{s:?}");
        }
    }

    #[test]
    fn containment_including_mapped_clients() {
        let n = net("192.0.2.0/24");
        assert!(n.contains(ip("192.0.2.0")));
        assert!(n.contains(ip("192.0.2.255")));
        assert!(n.contains(ip("::ffff:192.0.2.9")));
        assert!(!n.contains(ip("192.0.3.0")));
        assert!(!n.contains(ip("::1")));
        assert!(net("0.0.0.0/0").contains(ip("8.8.8.8")));
        assert!(!net("0.0.0.0/0").contains(ip("2001:db8::1")));
        let v6 = net("2001:db8::/32");
        assert!(v6.contains(ip("2001:db8:ffff::1")));
        assert!(!v6.contains(ip("2001:db9::")));
        assert!(!v6.contains(ip("10.0.0.1")));
        assert!(net("::/0").contains(ip("::1")));
        assert!(net("192.0.2.7/32").contains(ip("192.0.2.7")));
        assert!(!net("192.0.2.7/32").contains(ip("192.0.2.6")));
    }

    proptest! {
        #[test]
        fn display_parse_round_trip_v4(bits in any::<u32>(), prefix in 0u8..=32) {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            let n = ClientNet::new(IpAddr::V4(Ipv4Addr::from(bits & mask)), prefix).expect("masked");
            prop_assert_eq!(n.to_string().parse::<ClientNet>(), Ok(n));
            prop_assert!(n.contains(IpAddr::V4(Ipv4Addr::from(bits))));
        }

        #[test]
        fn display_parse_round_trip_v6(bits in any::<u128>(), prefix in 0u8..=128) {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            let addr = Ipv6Addr::from(bits & mask);
            prop_assume!(addr.to_ipv4_mapped().is_none());
            let n = ClientNet::new(IpAddr::V6(addr), prefix).expect("masked");
            prop_assert_eq!(n.to_string().parse::<ClientNet>(), Ok(n));
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,60}") {
            let _ = s.parse::<ClientNet>();
        }
    }
}
