//! The packet description: one checked parse of a packet's network and
//! transport headers, made once at the entry of the pipeline and handed to
//! rule evaluation, conntrack and the hooks, so none of them re-reads the
//! header bytes.
//!
//! [`PacketRepr`] is small and `Copy` (no borrow of the packet): whoever
//! rewrites a header field in the packet (NAT, the TTL decrement) updates
//! the description with it. Two families are two [`NetRepr`] arms: IPv4's
//! header fields, or IPv6's with 128-bit addresses and the result of the
//! extension-header walk ([`super::exthdr`]). The family-free accessors
//! (`src_addr() -> u128`, `proto()`, `ttl_or_hop_limit()`, ...) serve code
//! that reads either; [`PacketRepr::v4`] stays for the IPv4-only callers.

use super::exthdr::{self, ExtHdrs};
use super::icmp::{self, IcmpPacket};
use super::icmpv6;
use super::ipv4::{self, Ipv4Packet};
use super::ipv6::{self, nexthdr, Ipv6Packet};
use super::tcp::TcpPacket;
use super::udp::UdpPacket;
use super::{checksum, Family, WireError};

/// Why [`PacketRepr::parse_checked`] refused a packet (ip_rcv_core's checks,
/// in its order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// Empty, shorter than its IHL, or IHL / total length inconsistent.
    Malformed,
    /// Version 6, refused by [`PacketRepr::parse_checked_v4_only`] (the
    /// pipeline's entry while it forwards IPv4 only).
    Ipv6,
    /// Neither 4 nor 6.
    BadVersion,
    /// The header checksum does not verify.
    BadChecksum,
    /// The option list is malformed (ip_options_compile's structure check;
    /// for IPv6, the hop-by-hop header's, as ip6_parse_tlv's).
    BadOptions,
    /// IPv6: an extension header cut short or running past the payload.
    BadExtHeader,
    /// IPv6: an address ip6_rcv_core drops (multicast source, loopback,
    /// IPv4-mapped, a multicast destination of scope 0 or 1).
    BadAddress,
}

/// The IPv4 header's fields (host order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Repr {
    pub src: u32,
    pub dst: u32,
    pub total_len: u16,
    pub ident: u16,
    /// Flags (DF, MF) and fragment offset, as on the wire.
    pub flags_offset: u16,
    pub proto: u8,
    pub ttl: u8,
    pub tos: u8,
    /// Header length in bytes (IHL * 4).
    pub header_len: u8,
}

impl Ipv4Repr {
    #[inline]
    pub fn dont_frag(&self) -> bool {
        self.flags_offset & ipv4::FLAG_DF != 0
    }
    #[inline]
    pub fn more_frags(&self) -> bool {
        self.flags_offset & ipv4::FLAG_MF != 0
    }
    /// Fragment offset in 8-byte units (nonzero: a later fragment).
    #[inline]
    pub fn frag_offset_units(&self) -> u16 {
        self.flags_offset & ipv4::OFFSET_MASK
    }
    /// True for any fragment (MF set or offset non-zero).
    #[inline]
    pub fn is_fragment(&self) -> bool {
        self.flags_offset & (ipv4::FLAG_MF | ipv4::OFFSET_MASK) != 0
    }
}

impl Ipv4Repr {
    /// What [`PacketRepr::v4`] shows for an IPv6 description: all zero (no
    /// caller reaches it: they run after the pipeline refused IPv6).
    pub const UNSPECIFIED: Ipv4Repr = Ipv4Repr {
        src: 0,
        dst: 0,
        total_len: 0,
        ident: 0,
        flags_offset: 0,
        proto: 0,
        ttl: 0,
        tos: 0,
        header_len: 0,
    };
}

/// The IPv6 fixed header's fields (addresses host-order `u128`) and the
/// extension-header walk's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Repr {
    pub src: u128,
    pub dst: u128,
    pub payload_len: u16,
    pub hop_limit: u8,
    pub traffic_class: u8,
    pub flow_label: u32,
    /// The fixed header's next header (the first extension header, or the
    /// upper-layer protocol when there is none).
    pub next_header: u8,
    /// The walk: upper-layer protocol and its offset, fragment header,
    /// the `-m ipv6header` mask, where the other headers sit.
    pub ext: ExtHdrs,
}

impl Ipv6Repr {
    /// The upper-layer protocol (after the extension headers).
    #[inline]
    pub fn proto(&self) -> u8 {
        self.ext.proto
    }
    /// Fixed header plus extension headers: where the transport header is.
    #[inline]
    pub fn header_len(&self) -> u16 {
        self.ext.proto_offset
    }
    /// Fixed header plus payload.
    #[inline]
    pub fn total_len(&self) -> usize {
        ipv6::HEADER_LEN + usize::from(self.payload_len)
    }
    /// Fragment offset in 8-byte units (nonzero: a later fragment).
    #[inline]
    pub fn frag_offset_units(&self) -> u16 {
        self.ext.frag_offset
    }
    /// True for any fragment (M set or offset non-zero).
    #[inline]
    pub fn is_fragment(&self) -> bool {
        self.ext.is_fragment()
    }
}

/// The network header, per family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetRepr {
    V4(Ipv4Repr),
    V6(Ipv6Repr),
}

/// The transport header as far as the packet holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct L4Repr {
    /// Offset of the L4 header from the start of the packet.
    pub offset: u16,
    /// L4 header and payload bytes up to the network total length.
    pub len: u16,
    /// The header is there: not a later fragment, and at least 20 (TCP),
    /// 8 (UDP) or 4 (ICMP, ICMPv6) bytes. Fields below are 0 otherwise.
    pub present: bool,
    pub sport: u16,
    pub dport: u16,
    pub tcp_flags: u8,
    pub icmp_type: u8,
    pub icmp_code: u8,
    /// ICMP query identifier, ICMPv6 echo identifier (0 unless a query
    /// with its 8-byte header).
    pub icmp_id: u16,
}

impl L4Repr {
    /// The transport header's fields from `payload` (the bytes from that
    /// header on): TCP, UDP, or the family's ICMP (`icmp_proto`; its header
    /// layout is the same in both families) with the identifier of the
    /// types `has_id` names.
    #[inline(always)]
    fn fill(&mut self, proto: u8, payload: &[u8], icmp_proto: u8, has_id: fn(u8) -> bool) {
        match proto {
            6 if payload.len() >= 20 => {
                let t = TcpPacket::new_unchecked(payload);
                self.present = true;
                self.sport = t.src_port();
                self.dport = t.dst_port();
                self.tcp_flags = t.flags();
            }
            17 if payload.len() >= 8 => {
                let u = UdpPacket::new_unchecked(payload);
                self.present = true;
                self.sport = u.src_port();
                self.dport = u.dst_port();
            }
            p if p == icmp_proto && payload.len() >= 4 => {
                let ic = IcmpPacket::new_unchecked(payload);
                self.present = true;
                self.icmp_type = ic.msg_type();
                self.icmp_code = ic.code();
                if payload.len() >= icmp::HEADER_LEN && has_id(self.icmp_type) {
                    self.icmp_id = ic.ident();
                }
            }
            _ => {}
        }
    }
}

/// One packet's description: network header and transport header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketRepr {
    pub net: NetRepr,
    pub l4: L4Repr,
}

impl PacketRepr {
    /// The checks of `ip_rcv_core` (IPv4: version, IHL, total length within
    /// the buffer, header checksum, option structure) or `ip6_rcv_core`
    /// (IPv6, see [`Self::parse_checked_v6`]), and the description. Bytes
    /// past the total length are not described: [`Self::total_len`] says
    /// where to trim.
    #[inline]
    pub fn parse_checked(p: &[u8]) -> Result<PacketRepr, ParseError> {
        let Some(&b0) = p.first() else {
            return Err(ParseError::Malformed);
        };
        match b0 >> 4 {
            4 => Self::check_v4(p, b0),
            6 => Self::parse_checked_v6(p),
            _ => Err(ParseError::BadVersion),
        }
    }

    /// [`Self::parse_checked`] for IPv4 only: version 6 is
    /// [`ParseError::Ipv6`]. The pipeline's entry until it forwards IPv6,
    /// so every description it holds is IPv4 by construction.
    #[inline]
    pub fn parse_checked_v4_only(p: &[u8]) -> Result<PacketRepr, ParseError> {
        let Some(&b0) = p.first() else {
            return Err(ParseError::Malformed);
        };
        match b0 >> 4 {
            4 => Self::check_v4(p, b0),
            6 => Err(ParseError::Ipv6),
            _ => Err(ParseError::BadVersion),
        }
    }

    /// ip_rcv_core's checks on a version-4 packet whose first byte is `b0`.
    #[inline(always)]
    fn check_v4(p: &[u8], b0: u8) -> Result<PacketRepr, ParseError> {
        let ihl = ((b0 & 0x0f) as usize) * 4;
        if ihl < ipv4::HEADER_LEN || p.len() < ihl {
            return Err(ParseError::Malformed);
        }
        // ihl >= 20 <= len: the fixed header is there.
        let ip = Ipv4Packet::new_unchecked(p);
        let total = ip.total_len() as usize;
        if total < ihl || total > p.len() {
            return Err(ParseError::Malformed);
        }
        if checksum::checksum(&p[..ihl]) != 0 {
            return Err(ParseError::BadChecksum);
        }
        if ihl > ipv4::HEADER_LEN && !ipv4::options_well_formed(&p[ipv4::HEADER_LEN..ihl]) {
            return Err(ParseError::BadOptions);
        }
        Ok(Self::describe(&ip))
    }

    /// ip6_rcv_core's checks on a version-6 packet, in its order: the
    /// 40-byte header; the addresses (no multicast source, no loopback
    /// from outside, no IPv4-mapped source or destination, no multicast
    /// destination of scope 0 or interface-local); `40 + payload length`
    /// within the buffer; a hop-by-hop header that parses (length and
    /// option structure). Then the extension-header walk, whose failure
    /// the kernel leaves to later stages (conntrack calls the packet
    /// invalid, an ip6tables `-p` match drops it): refused here. A
    /// jumbogram (payload length 0 with a jumbo option) is not supported:
    /// its hop-by-hop header does not fit the empty payload.
    pub fn parse_checked_v6(p: &[u8]) -> Result<PacketRepr, ParseError> {
        if p.len() < ipv6::HEADER_LEN {
            return Err(ParseError::Malformed);
        }
        if p[0] >> 4 != 6 {
            return Err(ParseError::BadVersion);
        }
        let ip = Ipv6Packet::new_unchecked(p);
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        if ipv6::is_multicast(src)
            || src == ipv6::LOOPBACK
            || dst == ipv6::LOOPBACK
            || ipv6::is_v4_mapped(src)
            || ipv6::is_v4_mapped(dst)
            || (ipv6::is_multicast(dst) && ipv6::multicast_scope(dst) <= 1)
        {
            return Err(ParseError::BadAddress);
        }
        if ip.total_len() > p.len() {
            return Err(ParseError::Malformed);
        }
        let pkt = &p[..ip.total_len()];
        let ext = exthdr::walk(pkt).map_err(|_| ParseError::BadExtHeader)?;
        if ip.next_header() == nexthdr::HOPOPTS {
            // The walk saw the whole header inside the payload.
            let len = (usize::from(pkt[ipv6::HEADER_LEN + 1]) + 1) * 8;
            let hbh = &pkt[ipv6::HEADER_LEN..ipv6::HEADER_LEN + len];
            if !exthdr::options_well_formed(hbh) {
                return Err(ParseError::BadOptions);
            }
        }
        Ok(Self::describe_v6(pkt, ext))
    }

    /// The description of an IPv4 packet whose header is structurally sound
    /// (`Ipv4Packet::new_checked`), without checksum or option checks: for
    /// packets the gateway reassembled or built itself. (IPv6 has no header
    /// checksum: its structural parse is [`Self::parse_checked_v6`].)
    #[inline]
    pub fn parse(p: &[u8]) -> Result<PacketRepr, WireError> {
        let ip = Ipv4Packet::new_checked(p)?;
        Ok(Self::describe(&ip))
    }

    /// Reads the fields of a view whose header length and total length
    /// are within the buffer.
    #[inline]
    fn describe(ip: &Ipv4Packet<&[u8]>) -> PacketRepr {
        let v4 = Ipv4Repr {
            src: u32::from(ip.src_addr()),
            dst: u32::from(ip.dst_addr()),
            total_len: ip.total_len(),
            ident: ip.ident(),
            flags_offset: ip.flags_offset(),
            proto: ip.protocol_raw(),
            ttl: ip.ttl(),
            tos: ip.tos(),
            header_len: ip.header_len() as u8,
        };
        let payload = ip.payload();
        let mut l4 = L4Repr {
            offset: v4.header_len as u16,
            len: payload.len() as u16,
            ..L4Repr::default()
        };
        if v4.frag_offset_units() == 0 {
            l4.fill(v4.proto, payload, 1, icmp::is_query);
        }
        PacketRepr {
            net: NetRepr::V4(v4),
            l4,
        }
    }

    /// Reads the fields of an IPv6 packet cut to its total length, whose
    /// extension headers `ext` describes.
    fn describe_v6(pkt: &[u8], ext: ExtHdrs) -> PacketRepr {
        let ip = Ipv6Packet::new_unchecked(pkt);
        let v6 = Ipv6Repr {
            src: ip.src_addr(),
            dst: ip.dst_addr(),
            payload_len: ip.payload_len(),
            hop_limit: ip.hop_limit(),
            traffic_class: ip.traffic_class(),
            flow_label: ip.flow_label(),
            next_header: ip.next_header(),
            ext,
        };
        let upper = pkt.get(usize::from(ext.proto_offset)..).unwrap_or(&[]);
        let mut l4 = L4Repr {
            offset: ext.proto_offset,
            len: upper.len() as u16,
            ..L4Repr::default()
        };
        if !ext.later_fragment() {
            l4.fill(ext.proto, upper, nexthdr::ICMPV6, icmpv6::is_echo);
        }
        PacketRepr {
            net: NetRepr::V6(v6),
            l4,
        }
    }

    /// The IPv4 header. For the IPv4-only callers, which run after the
    /// pipeline refused IPv6 ([`Self::parse_checked_v4_only`]); an IPv6
    /// description reads as [`Ipv4Repr::UNSPECIFIED`] rather than panic.
    #[inline]
    pub fn v4(&self) -> &Ipv4Repr {
        match &self.net {
            NetRepr::V4(v4) => v4,
            NetRepr::V6(_) => &Ipv4Repr::UNSPECIFIED,
        }
    }

    #[inline]
    pub fn v4_mut(&mut self) -> Option<&mut Ipv4Repr> {
        match &mut self.net {
            NetRepr::V4(v4) => Some(v4),
            NetRepr::V6(_) => None,
        }
    }

    /// The IPv6 header, if this is IPv6.
    #[inline]
    pub fn v6(&self) -> Option<&Ipv6Repr> {
        match &self.net {
            NetRepr::V4(_) => None,
            NetRepr::V6(v6) => Some(v6),
        }
    }

    #[inline]
    pub fn v6_mut(&mut self) -> Option<&mut Ipv6Repr> {
        match &mut self.net {
            NetRepr::V4(_) => None,
            NetRepr::V6(v6) => Some(v6),
        }
    }

    #[inline]
    pub fn family(&self) -> Family {
        match self.net {
            NetRepr::V4(_) => Family::V4,
            NetRepr::V6(_) => Family::V6,
        }
    }

    /// The source address; IPv4 zero-extended.
    #[inline]
    pub fn src_addr(&self) -> u128 {
        match &self.net {
            NetRepr::V4(v4) => u128::from(v4.src),
            NetRepr::V6(v6) => v6.src,
        }
    }

    /// The destination address; IPv4 zero-extended.
    #[inline]
    pub fn dst_addr(&self) -> u128 {
        match &self.net {
            NetRepr::V4(v4) => u128::from(v4.dst),
            NetRepr::V6(v6) => v6.dst,
        }
    }

    /// Sets the source address (NAT); for IPv4 the low 32 bits.
    #[inline]
    pub fn set_src_addr(&mut self, a: u128) {
        match &mut self.net {
            NetRepr::V4(v4) => v4.src = a as u32,
            NetRepr::V6(v6) => v6.src = a,
        }
    }

    /// Sets the destination address (NAT); for IPv4 the low 32 bits.
    #[inline]
    pub fn set_dst_addr(&mut self, a: u128) {
        match &mut self.net {
            NetRepr::V4(v4) => v4.dst = a as u32,
            NetRepr::V6(v6) => v6.dst = a,
        }
    }

    /// The transport protocol: IPv4's protocol field, IPv6's protocol
    /// after the extension headers.
    #[inline]
    pub fn proto(&self) -> u8 {
        match &self.net {
            NetRepr::V4(v4) => v4.proto,
            NetRepr::V6(v6) => v6.ext.proto,
        }
    }

    #[inline]
    pub fn ttl_or_hop_limit(&self) -> u8 {
        match &self.net {
            NetRepr::V4(v4) => v4.ttl,
            NetRepr::V6(v6) => v6.hop_limit,
        }
    }

    /// Records a forwarding decrement (or any rewrite) of the TTL / hop limit.
    #[inline]
    pub fn set_ttl_or_hop_limit(&mut self, v: u8) {
        match &mut self.net {
            NetRepr::V4(v4) => v4.ttl = v,
            NetRepr::V6(v6) => v6.hop_limit = v,
        }
    }

    /// A fragment other than the first: no transport header.
    #[inline]
    pub fn later_fragment(&self) -> bool {
        match &self.net {
            NetRepr::V4(v4) => v4.frag_offset_units() != 0,
            NetRepr::V6(v6) => v6.ext.later_fragment(),
        }
    }

    /// Any fragment (IPv4: MF or an offset; IPv6: a fragment header with M
    /// or an offset, an atomic fragment excluded).
    #[inline]
    pub fn is_fragment(&self) -> bool {
        match &self.net {
            NetRepr::V4(v4) => v4.is_fragment(),
            NetRepr::V6(v6) => v6.ext.is_fragment(),
        }
    }

    /// Network total length (the bytes the packet occupies in its buffer;
    /// an IPv6 packet's may exceed 65,535).
    #[inline]
    pub fn total_len(&self) -> usize {
        match &self.net {
            NetRepr::V4(v4) => usize::from(v4.total_len),
            NetRepr::V6(v6) => v6.total_len(),
        }
    }

    /// The L4 header and payload of `packet` (the packet this describes).
    #[inline]
    pub fn l4_bytes<'a>(&self, packet: &'a [u8]) -> &'a [u8] {
        let start = usize::from(self.l4.offset);
        packet
            .get(start..start + usize::from(self.l4.len))
            .unwrap_or(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ipv4::tests::TCP_SYN;

    #[test]
    fn describes_a_tcp_syn() {
        let mut b = TCP_SYN;
        Ipv4Packet::new_unchecked(&mut b[..]).fill_checksum();
        let r = PacketRepr::parse_checked(&b).unwrap();
        assert_eq!(r, PacketRepr::parse(&b).unwrap());
        let v4 = r.v4();
        assert_eq!((v4.src, v4.dst), (0x0a00_0001, 0x0a00_0002));
        assert_eq!(
            (v4.proto, v4.ttl, v4.total_len, v4.header_len),
            (6, 64, 60, 20)
        );
        assert!(v4.dont_frag() && !v4.is_fragment());
        assert!(r.l4.present);
        assert_eq!((r.l4.sport, r.l4.dport, r.l4.tcp_flags), (40000, 80, 0x02));
        assert_eq!((r.l4.offset, r.l4.len), (20, 40));
        assert_eq!(r.l4_bytes(&b).len(), 40);
        // Two 128-bit addresses and the walk's summary: 96 bytes with u128's
        // 16-byte alignment (48 when it was IPv4 only).
        assert!(std::mem::size_of::<PacketRepr>() <= 96);
    }

    #[test]
    fn refuses_as_ip_rcv_core() {
        let mut b = TCP_SYN;
        Ipv4Packet::new_unchecked(&mut b[..]).fill_checksum();
        assert_eq!(PacketRepr::parse_checked(&[]), Err(ParseError::Malformed));
        assert_eq!(
            PacketRepr::parse_checked_v4_only(&[0x60]),
            Err(ParseError::Ipv6)
        );
        assert_eq!(
            PacketRepr::parse_checked(&[0x60]),
            Err(ParseError::Malformed)
        );
        assert_eq!(
            PacketRepr::parse_checked(&[0x50]),
            Err(ParseError::BadVersion)
        );
        assert_eq!(
            PacketRepr::parse_checked(&b[..30]),
            Err(ParseError::Malformed)
        );
        let mut bad = b;
        bad[8] = 1;
        assert_eq!(
            PacketRepr::parse_checked(&bad),
            Err(ParseError::BadChecksum)
        );
    }
}

#[cfg(test)]
#[path = "repr_v6_tests.rs"]
mod v6_tests;
