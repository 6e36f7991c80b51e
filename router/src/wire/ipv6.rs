//! IPv6 fixed header view (RFC 8200 section 3).
//!
//! [`Ipv6Packet::new_checked`] verifies version 6, the 40-byte header and
//! that the payload length fits the buffer, as `ip6_rcv_core` does; afterwards
//! every getter is in bounds. The buffer may be longer than `40 + payload
//! length` (trailing padding); [`Ipv6Packet::payload`] stops there. The
//! extension headers between this header and the transport header are
//! walked by [`super::exthdr`]. Addresses are host-order `u128`
//! (`u128::from(Ipv6Addr)`).

use super::{get_u16, get_u32, set_u32, WireError};

/// Byte ranges of the fixed header (RFC 8200 section 3).
pub mod field {
    pub type Field = std::ops::Range<usize>;
    /// Version (4 bits), traffic class (8), flow label (20).
    pub const VER_TC_FLOW: Field = 0..4;
    pub const PAYLOAD_LEN: Field = 4..6;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC_ADDR: Field = 8..24;
    pub const DST_ADDR: Field = 24..40;
}

/// The fixed header's length (RFC 8200 section 3).
pub const HEADER_LEN: usize = 40;
/// RFC 8200 section 5: every link carries packets of 1280 bytes; RFC 4443
/// section 2.4 (c) bounds an ICMPv6 error by it.
pub const MIN_MTU: usize = 1280;
const FLOW_MASK: u32 = 0x000f_ffff;

/// Next-header values of the extension headers and the protocols the walk
/// stops at (IANA "Assigned Internet Protocol Numbers"; RFC 8200 section 4,
/// RFC 4302 AH, RFC 4303 ESP, RFC 6275 mobility).
pub mod nexthdr {
    pub const HOPOPTS: u8 = 0;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const ROUTING: u8 = 43;
    pub const FRAGMENT: u8 = 44;
    pub const ESP: u8 = 50;
    pub const AH: u8 = 51;
    pub const ICMPV6: u8 = 58;
    pub const NONE: u8 = 59;
    pub const DSTOPTS: u8 = 60;
    pub const MH: u8 = 135;
}

/// True for a multicast address (ff00::/8, RFC 4291 section 2.7).
pub fn is_multicast(a: u128) -> bool {
    a >> 120 == 0xff
}

/// The multicast scope (RFC 4291 section 2.7: 1 interface-local, 2
/// link-local, ...) of a multicast address.
pub fn multicast_scope(a: u128) -> u8 {
    ((a >> 112) & 0xf) as u8
}

/// True for an IPv4-mapped address (::ffff:0:0/96, RFC 4291 section 2.5.5.2).
pub fn is_v4_mapped(a: u128) -> bool {
    a >> 32 == 0xffff
}

/// The loopback address ::1.
pub const LOOPBACK: u128 = 1;

view! {
    /// A read/write view of an IPv6 packet (fixed header, then the payload:
    /// extension headers and the upper layer).
    pub struct Ipv6Packet;
    /// Wraps and checks version 6, the 40-byte header and
    /// `40 + payload length <= buffer` (ip6_rcv_core's checks).
    fn new_checked(b) {
        if b[0] >> 4 != 6 {
            return Err(WireError::BadVersion);
        }
        if HEADER_LEN + get_u16(b, field::PAYLOAD_LEN.start) as usize > b.len() {
            return Err(WireError::BadLength);
        }
    }
}

fields! {
    Ipv6Packet {
        payload_len, set_payload_len: u16 = field::PAYLOAD_LEN.start;
        /// The fixed header's next header: the first extension header or
        /// the upper-layer protocol.
        next_header, set_next_header: u8 = field::NEXT_HEADER;
        hop_limit, set_hop_limit: u8 = field::HOP_LIMIT;
        src_addr, set_src_addr: u128 = field::SRC_ADDR.start;
        dst_addr, set_dst_addr: u128 = field::DST_ADDR.start;
    }
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    fn word0(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::VER_TC_FLOW.start)
    }
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[0] >> 4
    }
    /// The traffic class (DSCP and ECN), the IPv4 TOS byte's counterpart.
    pub fn traffic_class(&self) -> u8 {
        (self.word0() >> 20) as u8
    }
    pub fn flow_label(&self) -> u32 {
        self.word0() & FLOW_MASK
    }
    /// The bytes the packet occupies: the fixed header and the payload.
    pub fn total_len(&self) -> usize {
        HEADER_LEN + self.payload_len() as usize
    }
    /// The fixed header.
    pub fn header(&self) -> &[u8] {
        &self.buffer.as_ref()[..HEADER_LEN]
    }
    /// The payload (extension headers and upper layer) up to the payload
    /// length.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.total_len()]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    fn set_word0(&mut self, w: u32) {
        set_u32(self.buffer.as_mut(), field::VER_TC_FLOW.start, w)
    }
    /// Sets version 6 (the rest of the first word kept).
    pub fn set_version(&mut self) {
        let w = self.word0();
        self.set_word0((w & 0x0fff_ffff) | 6 << 28);
    }
    pub fn set_traffic_class(&mut self, v: u8) {
        let w = self.word0();
        self.set_word0((w & 0xf00f_ffff) | u32::from(v) << 20);
    }
    /// Sets the flow label (the low 20 bits of `v`).
    pub fn set_flow_label(&mut self, v: u32) {
        let w = self.word0();
        self.set_word0((w & !FLOW_MASK) | (v & FLOW_MASK));
    }
    /// Decrements the hop limit (no header checksum in IPv6); returns the
    /// new value. 0 stays 0.
    #[inline]
    pub fn decrement_hop_limit(&mut self) -> u8 {
        let new = self.hop_limit().saturating_sub(1);
        self.set_hop_limit(new);
        new
    }
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let t = self.total_len();
        &mut self.buffer.as_mut()[HEADER_LEN..t]
    }
}

#[cfg(test)]
#[path = "ipv6_tests.rs"]
mod tests;
