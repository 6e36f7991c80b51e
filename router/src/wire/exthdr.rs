//! The IPv6 extension-header walk (RFC 8200 section 4), as the kernel's
//! `ipv6_skip_exthdr` / `ipv6_find_hdr` (target -1, what ip6tables uses to
//! find the protocol) do it: from the fixed header's next header, follow
//! hop-by-hop options, routing, fragment, destination options and AH
//! headers (AH's length is `(len + 2) * 4` bytes, RFC 4302 section 2.2; the
//! others' `(len + 1) * 8`, RFC 8200 section 4.3), and stop at anything
//! else: the upper-layer header (TCP, UDP, ICMPv6, ...), "no next header"
//! (59), ESP (50, encrypted past this point) or an unknown number.
//!
//! A fragment header with a non-zero offset ends the walk: what follows is
//! the middle of the original payload, not a header. The protocol is then
//! the fragment header's next header (as `ipv6_find_hdr` returns it) and the
//! description has no transport header (as for an IPv4 later fragment).
//!
//! The walk records what `-m ipv6header`, `-m frag`, `-m rt`, `-m hbh`,
//! `-m dst` and `-m ah` need: the set of headers seen (the kernel's
//! `ip6t_ipv6header` mask bits) and where the first of each kind sits, so a
//! matcher reads its fields there later without walking again. Every
//! extension header must lie wholly inside the bytes walked (the payload, or
//! the quoted part of an ICMPv6 error); a header that is cut short or runs
//! past them is [`WireError::BadExtHeader`]. Nothing here can panic.

use super::ipv6::{nexthdr, HEADER_LEN};
use super::{get_u16, get_u32, WireError};

/// The `-m ipv6header` bits (include/uapi/linux/netfilter_ipv6/ip6t_ipv6header.h,
/// `MASK_*`), one per header kind seen; `PROTO` when the walk ended at an
/// upper-layer protocol (not NONE or ESP).
pub mod mask {
    pub const HOPOPTS: u8 = 128;
    pub const DSTOPTS: u8 = 64;
    pub const ROUTING: u8 = 32;
    pub const FRAGMENT: u8 = 16;
    pub const AH: u8 = 8;
    pub const ESP: u8 = 4;
    pub const NONE: u8 = 2;
    pub const PROTO: u8 = 1;
}

/// Fragment header fields (RFC 8200 section 4.5).
pub mod frag {
    pub const LEN: usize = 8;
    /// Offset (13 bits, 8-byte units) << 3 | res (2) | M (1).
    pub const OFFSET_SHIFT: u16 = 3;
    pub const FLAG_M: u16 = 1;
}

/// What the walk found. Offsets count from the first byte of the IPv6
/// header; 0 means "not present" (no extension header can sit at 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExtHdrs {
    /// The upper-layer protocol where the walk stopped: TCP, UDP, ICMPv6,
    /// NONE, ESP, an unknown number; for a later fragment, the fragment
    /// header's next header.
    pub proto: u8,
    /// Where the upper-layer header starts (the walk's end): 40 plus the
    /// extension headers walked.
    pub proto_offset: u16,
    /// The [`mask`] bits of the headers seen.
    pub mask: u8,
    /// The first hop-by-hop options header.
    pub hbh: u16,
    /// The first destination options header.
    pub dst: u16,
    /// The first routing header.
    pub routing: u16,
    /// The first authentication header.
    pub ah: u16,
    /// The first fragment header.
    pub frag: u16,
    /// Its fragment offset, in 8-byte units.
    pub frag_offset: u16,
    /// Its M (more fragments) flag.
    pub more_frags: bool,
    /// Its identification.
    pub frag_ident: u32,
}

impl ExtHdrs {
    /// A fragment header is present (an "atomic fragment", offset 0 and no
    /// M flag, RFC 6946, included).
    #[inline]
    pub fn has_frag_header(&self) -> bool {
        self.frag != 0
    }
    /// A part of a fragmented packet: offset non-zero or M set (as IPv4's
    /// `is_fragment`); an atomic fragment is whole.
    #[inline]
    pub fn is_fragment(&self) -> bool {
        self.frag != 0 && (self.frag_offset != 0 || self.more_frags)
    }
    /// A fragment other than the first: no transport header.
    #[inline]
    pub fn later_fragment(&self) -> bool {
        self.frag_offset != 0
    }
    /// All bits of `m` were seen.
    #[inline]
    pub fn has(&self, m: u8) -> bool {
        self.mask & m == m
    }
}

/// True for the next-header values the walk follows.
#[inline]
pub fn is_ext_header(nh: u8) -> bool {
    matches!(
        nh,
        nexthdr::HOPOPTS | nexthdr::ROUTING | nexthdr::FRAGMENT | nexthdr::DSTOPTS | nexthdr::AH
    )
}

/// The mask bit that ends a walk at `nh` (not an extension header).
fn end_bit(nh: u8) -> u8 {
    match nh {
        nexthdr::NONE => mask::NONE,
        nexthdr::ESP => mask::ESP,
        _ if is_ext_header(nh) => 0,
        _ => mask::PROTO,
    }
}

/// Walks the extension headers of the IPv6 packet `packet` (fixed header
/// included, cut to 40 + payload length by the caller; see
/// [`Ipv6Packet::new_checked`](super::Ipv6Packet::new_checked)).
pub fn walk(packet: &[u8]) -> Result<ExtHdrs, WireError> {
    let Some(&first) = packet.get(6) else {
        return Err(WireError::Truncated);
    };
    if packet.len() < HEADER_LEN {
        return Err(WireError::Truncated);
    }
    walk_from(first, packet, HEADER_LEN)
}

/// The walk from `next` (the next-header value that names the header at
/// `start`) over `bytes` (offsets are `bytes`' own; every header must end
/// within them). For a quoted packet inside an ICMPv6 error, pass the
/// quoted bytes: a chain cut by the quote is an error.
pub fn walk_from(next: u8, bytes: &[u8], start: usize) -> Result<ExtHdrs, WireError> {
    let mut e = ExtHdrs::default();
    let (mut nh, mut at) = (next, start);
    while is_ext_header(nh) {
        let Some(h) = bytes.get(at..at + 2) else {
            return Err(WireError::BadExtHeader);
        };
        let len = match nh {
            nexthdr::FRAGMENT => frag::LEN,
            nexthdr::AH => (usize::from(h[1]) + 2) * 4,
            _ => (usize::from(h[1]) + 1) * 8,
        };
        if at + len > bytes.len() || at + len > usize::from(u16::MAX) {
            return Err(WireError::BadExtHeader);
        }
        let (bit, slot) = match nh {
            nexthdr::HOPOPTS => (mask::HOPOPTS, &mut e.hbh),
            nexthdr::DSTOPTS => (mask::DSTOPTS, &mut e.dst),
            nexthdr::ROUTING => (mask::ROUTING, &mut e.routing),
            nexthdr::AH => (mask::AH, &mut e.ah),
            _ => (mask::FRAGMENT, &mut e.frag),
        };
        let first = *slot == 0;
        if first {
            *slot = at as u16;
        }
        e.mask |= bit;
        if nh == nexthdr::FRAGMENT {
            let off_m = get_u16(bytes, at + 2);
            if first {
                e.frag_offset = off_m >> frag::OFFSET_SHIFT;
                e.more_frags = off_m & frag::FLAG_M != 0;
                e.frag_ident = get_u32(bytes, at + 4);
            }
            if off_m >> frag::OFFSET_SHIFT != 0 {
                // A later fragment: its next header names the first
                // header of the original payload, not what follows.
                e.proto = h[0];
                e.proto_offset = (at + len) as u16;
                e.mask |= end_bit(h[0]);
                return Ok(e);
            }
        }
        nh = h[0];
        at += len;
    }
    e.proto = nh;
    e.proto_offset = at as u16;
    e.mask |= end_bit(nh);
    Ok(e)
}

/// The option area of a hop-by-hop or destination options header (RFC
/// 8200 section 4.2) is a well-formed TLV list, as `ip6_parse_tlv` checks
/// its structure first: Pad1 is one byte, every other option has a length
/// byte and stays inside the area. `hdr` is the whole header (next header
/// and length bytes included). Unknown option types are not judged here.
pub fn options_well_formed(hdr: &[u8]) -> bool {
    let mut o = hdr.get(2..).unwrap_or(&[]);
    while let Some(&kind) = o.first() {
        if kind == 0 {
            o = &o[1..];
            continue;
        }
        let Some(&len) = o.get(1) else {
            return false;
        };
        let len = usize::from(len) + 2;
        if len > o.len() {
            return false;
        }
        o = &o[len..];
    }
    true
}

#[cfg(test)]
#[path = "exthdr_tests.rs"]
mod tests;
