//! The PROXY protocol version 2 header (HAProxy's "The PROXY protocol", section 2.2): a
//! balancer that forwards a TCP connection writes this binary block before the first byte
//! of the client's own stream, so the server learns the client's address.
//!
//! ```text
//! 12 bytes  signature  \r\n\r\n\0\r\nQUIT\n
//!  1 byte   ver_cmd    high nibble 2 (version); low nibble 0 LOCAL, 1 PROXY
//!  1 byte   fam        high nibble 1 INET, 2 INET6 (0 UNSPEC, 3 UNIX); low nibble 1 STREAM
//!  2 bytes  len        big-endian length of everything that follows
//!  len      addresses  INET: src 4, dst 4, src port 2, dst port 2 (12 bytes);
//!                      INET6: src 16, dst 16, src port 2, dst port 2 (36 bytes)
//!           TLVs       type 1, length 2 (big-endian), value — until `len` is used up
//! ```
//!
//! [`parse`] is pure and incremental: bytes in, and out either [`Parse::Incomplete`] with
//! how many more bytes are needed at least (so a reader never takes a byte of the stream
//! that follows), [`Parse::Parsed`] with the header's length and addresses, or a
//! [`ProxyHeaderError`]. A LOCAL command (a balancer's own health check) carries no client:
//! the connection's own peer is the client. TLVs are walked with bounds checks and skipped
//! (nothing here acts on them). The text version 1 (`PROXY TCP4 …`) is refused with its own
//! error, and so is a header longer than [`MAX_HEADER_LEN`].
//!
//! This is the entry point a fuzz target calls: `sallyport::proxy::v2::parse(data)` must
//! never panic, whatever `data` is.
//!
//! Not here: reading from the socket (the accept loop in `http::server` does, with a
//! timeout) and deciding who may send a header (`server.proxy_protocol_from`).

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

/// The 12-byte signature every version 2 header starts with.
pub const SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// Signature, version/command, family and the length field.
pub const FIXED_LEN: usize = 16;
/// The longest header accepted, TLVs included. A balancer's TLVs (unique id, TLS facts,
/// a cloud endpoint id) fit in a few hundred bytes; the field itself allows 64 KiB, which
/// a peer should not make the gateway wait for and buffer.
pub const MAX_HEADER_LEN: usize = 4096;

const INET_LEN: usize = 12;
const INET6_LEN: usize = 36;
/// The start of a version 1 header.
const V1_PREFIX: &[u8] = b"PROXY ";

/// What [`parse`] made of the bytes so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parse {
    /// A valid beginning; at least `needed` more bytes are needed.
    Incomplete {
        /// Bytes still missing at least (never more than the header still has).
        needed: usize,
    },
    /// A complete header.
    Parsed(Header),
}

/// A complete, valid header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Its length in bytes: the client's stream starts right after.
    pub len: usize,
    /// The connection's endpoints as the balancer saw them; `None` for a LOCAL command
    /// (the balancer speaking for itself: use the TCP peer).
    pub proxied: Option<Proxied>,
}

/// The endpoints of a proxied connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proxied {
    /// The client.
    pub src: SocketAddr,
    /// The address the client connected to (the balancer's front end).
    pub dst: SocketAddr,
}

/// Why bytes are not an acceptable version 2 header. Each variant is a reason code
/// (`as_str`) for metrics and the audit trail; none carries the peer's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProxyHeaderError {
    /// The stream does not start with a PROXY header at all.
    #[error("the connection did not start with a PROXY protocol header")]
    Missing,
    /// A text (version 1) header: only version 2 is accepted.
    #[error("PROXY protocol version 1 (text) header; configure the balancer for version 2")]
    Version1,
    /// The signature matched but the version nibble is not 2.
    #[error("unsupported PROXY protocol version")]
    Version,
    /// The command nibble is neither LOCAL nor PROXY.
    #[error("unknown PROXY protocol command")]
    Command,
    /// A PROXY command for a family or transport other than TCP over IPv4/IPv6.
    #[error("PROXY header for an address family or transport other than TCP over IPv4/IPv6")]
    Family,
    /// The length field is too small for the family's addresses.
    #[error("PROXY header length too small for its addresses")]
    Short,
    /// The header is longer than `MAX_HEADER_LEN`.
    #[error("PROXY header longer than the gateway accepts")]
    TooLong,
    /// A TLV runs past the end of the header.
    #[error("malformed TLV in the PROXY header")]
    Tlv,
}

impl ProxyHeaderError {
    /// A stable reason code.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Version1 => "version1",
            Self::Version => "version",
            Self::Command => "command",
            Self::Family => "family",
            Self::Short => "short",
            Self::TooLong => "too_long",
            Self::Tlv => "tlv",
        }
    }
}

/// Parses the start of a connection's bytes as a version 2 header. Bytes after the
/// header are not looked at.
pub fn parse(bytes: &[u8]) -> Result<Parse, ProxyHeaderError> {
    let sig_seen = bytes.len().min(SIGNATURE.len());
    if bytes[..sig_seen] != SIGNATURE[..sig_seen] {
        let v1_seen = bytes.len().min(V1_PREFIX.len());
        return Err(if bytes[..v1_seen] == V1_PREFIX[..v1_seen] {
            ProxyHeaderError::Version1
        } else {
            ProxyHeaderError::Missing
        });
    }
    if bytes.len() > SIGNATURE.len() {
        let ver_cmd = bytes[12];
        if ver_cmd >> 4 != 2 {
            return Err(ProxyHeaderError::Version);
        }
        if ver_cmd & 0x0f > 1 {
            return Err(ProxyHeaderError::Command);
        }
    }
    let Some(fixed) = bytes.get(..FIXED_LEN) else {
        return Ok(Parse::Incomplete {
            needed: FIXED_LEN - bytes.len(),
        });
    };
    let local = fixed[12] & 0x0f == 0;
    let fam = fixed[13];
    let body_len = usize::from(u16::from_be_bytes([fixed[14], fixed[15]]));
    let len = FIXED_LEN + body_len;
    if len > MAX_HEADER_LEN {
        return Err(ProxyHeaderError::TooLong);
    }
    let addr_len = match (local, fam) {
        // LOCAL: whatever the family says, the address block is ignored.
        (true, _) => 0,
        (false, 0x11) => INET_LEN,
        (false, 0x21) => INET6_LEN,
        (false, _) => return Err(ProxyHeaderError::Family),
    };
    if body_len < addr_len {
        return Err(ProxyHeaderError::Short);
    }
    let Some(body) = bytes.get(FIXED_LEN..len) else {
        return Ok(Parse::Incomplete {
            needed: len - bytes.len(),
        });
    };
    if local {
        // The block (addresses of any family, TLVs) is discarded unread, as the
        // specification asks of a receiver.
        return Ok(Parse::Parsed(Header { len, proxied: None }));
    }
    let (addrs, tlvs) = body.split_at(addr_len);
    check_tlvs(tlvs)?;
    Ok(Parse::Parsed(Header {
        len,
        proxied: Some(addresses(fam, addrs)),
    }))
}

/// Walks the TLVs, checking that each lies inside the header; their values are skipped.
fn check_tlvs(mut tlvs: &[u8]) -> Result<(), ProxyHeaderError> {
    while !tlvs.is_empty() {
        let [_, hi, lo, rest @ ..] = tlvs else {
            return Err(ProxyHeaderError::Tlv);
        };
        let value_len = usize::from(u16::from_be_bytes([*hi, *lo]));
        let Some(next) = rest.get(value_len..) else {
            return Err(ProxyHeaderError::Tlv);
        };
        tlvs = next;
    }
    Ok(())
}

/// The endpoints from an address block whose length `parse` checked for `fam`.
fn addresses(fam: u8, a: &[u8]) -> Proxied {
    let port = |i: usize| u16::from_be_bytes([a[i], a[i + 1]]);
    if fam == 0x11 {
        let ip = |i: usize| Ipv4Addr::new(a[i], a[i + 1], a[i + 2], a[i + 3]);
        Proxied {
            src: SocketAddr::from((ip(0), port(8))),
            dst: SocketAddr::from((ip(4), port(10))),
        }
    } else {
        let ip = |i: usize| {
            let mut o = [0u8; 16];
            o.copy_from_slice(&a[i..i + 16]);
            Ipv6Addr::from(o)
        };
        Proxied {
            src: SocketAddr::from((ip(0), port(32))),
            dst: SocketAddr::from((ip(16), port(34))),
        }
    }
}

/// Writes a version 2 PROXY header for `src` → `dst` with `tlvs` appended (for tests and
/// tools; the gateway itself only reads headers). Both addresses must be of one family.
pub fn encode(src: SocketAddr, dst: SocketAddr, tlvs: &[u8]) -> Option<Vec<u8>> {
    let mut addrs = Vec::with_capacity(INET6_LEN);
    let fam = match (src, dst) {
        (SocketAddr::V4(s), SocketAddr::V4(d)) => {
            addrs.extend_from_slice(&s.ip().octets());
            addrs.extend_from_slice(&d.ip().octets());
            0x11
        }
        (SocketAddr::V6(s), SocketAddr::V6(d)) => {
            addrs.extend_from_slice(&s.ip().octets());
            addrs.extend_from_slice(&d.ip().octets());
            0x21
        }
        _ => return None,
    };
    addrs.extend_from_slice(&src.port().to_be_bytes());
    addrs.extend_from_slice(&dst.port().to_be_bytes());
    let body_len = u16::try_from(addrs.len() + tlvs.len()).ok()?;
    let mut out = SIGNATURE.to_vec();
    out.extend_from_slice(&[0x21, fam]);
    out.extend_from_slice(&body_len.to_be_bytes());
    out.extend_from_slice(&addrs);
    out.extend_from_slice(tlvs);
    Some(out)
}

#[cfg(test)]
#[path = "v2_tests.rs"]
mod tests;
