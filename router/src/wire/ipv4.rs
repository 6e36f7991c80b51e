//! IPv4 header view (RFC 791 section 3.1).
//!
//! [`Ipv4Packet::new_checked`] verifies version, IHL and total length against
//! the buffer once; afterwards every getter is in bounds. The buffer may be
//! longer than the total length (trailing padding); [`Ipv4Packet::payload`]
//! stops at the total length.

use super::{checksum, get_u16, WireError};
use std::net::Ipv4Addr;

/// Byte ranges of the fixed header (RFC 791 section 3.1).
pub mod field {
    pub type Field = std::ops::Range<usize>;
    pub const VER_IHL: usize = 0;
    pub const TOS: usize = 1;
    pub const LENGTH: Field = 2..4;
    pub const IDENT: Field = 4..6;
    pub const FLG_OFF: Field = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Field = 10..12;
    pub const SRC_ADDR: Field = 12..16;
    pub const DST_ADDR: Field = 16..20;
}

/// Fixed header length (RFC 791: IHL >= 5).
pub const HEADER_LEN: usize = 20;
/// Flags (RFC 791): don't fragment, more fragments.
pub const FLAG_DF: u16 = 0x4000;
pub const FLAG_MF: u16 = 0x2000;
pub const OFFSET_MASK: u16 = 0x1fff;

/// IP protocol numbers (IANA "Assigned Internet Protocol Numbers").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpProtocol {
    Icmp,
    Igmp,
    Tcp,
    Udp,
    Gre,
    Esp,
    Ah,
    Sctp,
    Udplite,
    Unknown(u8),
}

impl From<u8> for IpProtocol {
    fn from(v: u8) -> Self {
        match v {
            1 => IpProtocol::Icmp,
            2 => IpProtocol::Igmp,
            6 => IpProtocol::Tcp,
            17 => IpProtocol::Udp,
            47 => IpProtocol::Gre,
            50 => IpProtocol::Esp,
            51 => IpProtocol::Ah,
            132 => IpProtocol::Sctp,
            136 => IpProtocol::Udplite,
            x => IpProtocol::Unknown(x),
        }
    }
}

impl From<IpProtocol> for u8 {
    fn from(p: IpProtocol) -> u8 {
        match p {
            IpProtocol::Icmp => 1,
            IpProtocol::Igmp => 2,
            IpProtocol::Tcp => 6,
            IpProtocol::Udp => 17,
            IpProtocol::Gre => 47,
            IpProtocol::Esp => 50,
            IpProtocol::Ah => 51,
            IpProtocol::Sctp => 132,
            IpProtocol::Udplite => 136,
            IpProtocol::Unknown(x) => x,
        }
    }
}

/// The option list's structure, as ip_options_compile checks it first:
/// EOL ends it, NOP is one byte, every other option has a length of at
/// least 2 that stays inside the header. (The kernel also answers with an
/// ICMP parameter problem; not sent here.)
pub fn options_well_formed(mut o: &[u8]) -> bool {
    while let Some(&kind) = o.first() {
        match kind {
            0 => return true,
            1 => o = &o[1..],
            _ => {
                let Some(&len) = o.get(1) else {
                    return false;
                };
                let len = usize::from(len);
                if len < 2 || len > o.len() {
                    return false;
                }
                o = &o[len..];
            }
        }
    }
    true
}

view! {
    /// A read/write view of an IPv4 packet.
    pub struct Ipv4Packet;
    /// Wraps and checks version 4, `IHL >= 5`, `IHL*4 <= total length <= buffer`.
    fn new_checked(b) {
        if b[0] >> 4 != 4 {
            return Err(WireError::BadVersion);
        }
        let ihl = ((b[0] & 0x0f) as usize) * 4;
        let total = get_u16(b, 2) as usize;
        if ihl < HEADER_LEN || total < ihl || total > b.len() {
            return Err(WireError::BadLength);
        }
    }
}

fields! {
    Ipv4Packet {
        tos, set_tos: u8 = field::TOS;
        total_len, set_total_len: u16 = field::LENGTH.start;
        ident, set_ident: u16 = field::IDENT.start;
        flags_offset, set_flags_offset: u16 = field::FLG_OFF.start;
        ttl, set_ttl: u8 = field::TTL;
        protocol_raw, set_protocol_raw: u8 = field::PROTOCOL;
        checksum, set_checksum: u16 = field::CHECKSUM.start;
    }
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    pub fn header_len(&self) -> usize {
        ((self.buffer.as_ref()[field::VER_IHL] & 0x0f) as usize) * 4
    }
    pub fn dont_frag(&self) -> bool {
        self.flags_offset() & FLAG_DF != 0
    }
    pub fn more_frags(&self) -> bool {
        self.flags_offset() & FLAG_MF != 0
    }
    /// Fragment offset in bytes.
    pub fn frag_offset(&self) -> usize {
        ((self.flags_offset() & OFFSET_MASK) as usize) * 8
    }
    /// True for any fragment (MF set or offset non-zero).
    pub fn is_fragment(&self) -> bool {
        self.flags_offset() & (FLAG_MF | OFFSET_MASK) != 0
    }
    pub fn protocol(&self) -> IpProtocol {
        IpProtocol::from(self.protocol_raw())
    }
    pub fn src_addr(&self) -> Ipv4Addr {
        let b = self.buffer.as_ref();
        Ipv4Addr::new(b[12], b[13], b[14], b[15])
    }
    pub fn dst_addr(&self) -> Ipv4Addr {
        let b = self.buffer.as_ref();
        Ipv4Addr::new(b[16], b[17], b[18], b[19])
    }
    /// True if the header checksum verifies.
    pub fn verify_checksum(&self) -> bool {
        let b = self.buffer.as_ref();
        checksum::fold(checksum::sum(&b[..self.header_len()], 0)) == 0xffff
    }
    /// Header bytes including options.
    pub fn header(&self) -> &[u8] {
        &self.buffer.as_ref()[..self.header_len()]
    }
    /// The payload up to the total length.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..self.total_len() as usize]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    pub fn set_protocol(&mut self, v: IpProtocol) {
        self.set_protocol_raw(v.into());
    }
    pub fn set_src_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&a.octets());
    }
    pub fn set_dst_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&a.octets());
    }
    /// Recomputes the header checksum from scratch.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::checksum(self.header());
        self.set_checksum(c);
    }
    /// Rewrites the source address, updating the header checksum incrementally.
    #[inline]
    pub fn rewrite_src_addr(&mut self, a: Ipv4Addr) {
        let old = self.src_addr();
        let c = checksum::update32(self.checksum(), old.into(), a.into());
        self.set_src_addr(a);
        self.set_checksum(c);
    }
    /// Rewrites the destination address, updating the header checksum incrementally.
    #[inline]
    pub fn rewrite_dst_addr(&mut self, a: Ipv4Addr) {
        let old = self.dst_addr();
        let c = checksum::update32(self.checksum(), old.into(), a.into());
        self.set_dst_addr(a);
        self.set_checksum(c);
    }
    /// Decrements the TTL with an incremental checksum update; returns the new TTL.
    #[inline]
    pub fn decrement_ttl(&mut self) -> u8 {
        let ttl = self.ttl();
        let new = ttl.saturating_sub(1);
        let old_w = u16::from_be_bytes([ttl, self.protocol_raw()]);
        let new_w = u16::from_be_bytes([new, self.protocol_raw()]);
        let c = checksum::update16(self.checksum(), old_w, new_w);
        self.set_ttl(new);
        self.set_checksum(c);
        new
    }
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (h, t) = (self.header_len(), self.total_len() as usize);
        &mut self.buffer.as_mut()[h..t]
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A Linux-shaped TCP SYN 10.0.0.1:40000 -> 10.0.0.2:80 with MSS, SACK-OK,
    /// timestamps and window-scale options (60 bytes; checksums filled by tests).
    pub const TCP_SYN: [u8; 60] = [
        0x45, 0x00, 0x00, 0x3c, 0x1c, 0x46, 0x40, 0x00, 0x40, 0x06, 0x0a, 0x72, 0x0a, 0x00, 0x00,
        0x01, 0x0a, 0x00, 0x00, 0x02, 0x9c, 0x40, 0x00, 0x50, 0xa3, 0x2e, 0x1c, 0x0a, 0x00, 0x00,
        0x00, 0x00, 0xa0, 0x02, 0xfa, 0xf0, 0x00, 0x00, 0x00, 0x00, 0x02, 0x04, 0x05, 0xb4, 0x04,
        0x02, 0x08, 0x0a, 0x00, 0x9d, 0x91, 0x6d, 0x00, 0x00, 0x00, 0x00, 0x01, 0x03, 0x03, 0x07,
    ];

    #[test]
    fn parse_and_checks() {
        let p = Ipv4Packet::new_checked(&TCP_SYN[..]).unwrap();
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.total_len(), 60);
        assert_eq!(p.protocol(), IpProtocol::Tcp);
        assert_eq!(p.src_addr(), Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(p.dst_addr(), Ipv4Addr::new(10, 0, 0, 2));
        assert!(p.dont_frag() && !p.is_fragment());
        assert!(Ipv4Packet::new_checked(&TCP_SYN[..19]).is_err());
        assert!(Ipv4Packet::new_checked(&TCP_SYN[..59]).is_err());
        let mut bad = TCP_SYN;
        bad[0] = 0x44;
        assert_eq!(
            Ipv4Packet::new_checked(&bad[..]).unwrap_err(),
            WireError::BadLength
        );
    }

    #[test]
    fn incremental_rewrite_equals_full() {
        let mut buf = TCP_SYN;
        let mut p = Ipv4Packet::new_checked(&mut buf[..]).unwrap();
        p.fill_checksum();
        assert!(p.verify_checksum());
        p.rewrite_src_addr(Ipv4Addr::new(192, 168, 1, 77));
        p.rewrite_dst_addr(Ipv4Addr::new(172, 16, 0, 9));
        assert_eq!(p.decrement_ttl(), 63);
        let inc = p.checksum();
        p.fill_checksum();
        assert_eq!(inc, p.checksum());
        assert!(p.verify_checksum());
    }
}
