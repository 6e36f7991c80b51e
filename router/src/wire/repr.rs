//! The packet description: one checked parse of a packet's network and
//! transport headers, made once at the entry of the pipeline and handed to
//! rule evaluation, conntrack and the hooks, so none of them re-reads the
//! header bytes.
//!
//! [`PacketRepr`] is small and `Copy` (no borrow of the packet): whoever
//! rewrites a header field in the packet (NAT, the TTL decrement) updates
//! the description with it. It is shaped for two families ([`NetRepr`]'s
//! IPv6 arm, with 128-bit addresses after the extension-header walk, is to
//! come); only IPv4 is implemented.

use super::icmp::{self, IcmpPacket};
use super::ipv4::{self, Ipv4Packet};
use super::tcp::TcpPacket;
use super::udp::UdpPacket;
use super::{checksum, WireError};

/// Why [`PacketRepr::parse_checked`] refused a packet (ip_rcv_core's checks,
/// in its order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// Empty, shorter than its IHL, or IHL / total length inconsistent.
    Malformed,
    /// Version 6 (not implemented yet).
    Ipv6,
    /// Neither 4 nor 6.
    BadVersion,
    /// The header checksum does not verify.
    BadChecksum,
    /// The option list is malformed (ip_options_compile's structure check).
    BadOptions,
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

/// The network header, per family. An `V6` arm (128-bit addresses, the
/// extension-header walk's result) slots in here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetRepr {
    V4(Ipv4Repr),
}

/// The transport header as far as the packet holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct L4Repr {
    /// Offset of the L4 header from the start of the packet.
    pub offset: u16,
    /// L4 header and payload bytes up to the network total length.
    pub len: u16,
    /// The header is there: not a later fragment, and at least 20 (TCP),
    /// 8 (UDP) or 4 (ICMP) bytes. Fields below are 0 otherwise.
    pub present: bool,
    pub sport: u16,
    pub dport: u16,
    pub tcp_flags: u8,
    pub icmp_type: u8,
    pub icmp_code: u8,
    /// ICMP query identifier (0 unless a query with its 8-byte header).
    pub icmp_id: u16,
}

/// One packet's description: network header and transport header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketRepr {
    pub net: NetRepr,
    pub l4: L4Repr,
}

impl PacketRepr {
    /// ip_rcv_core's checks (version, IHL, total length within the buffer,
    /// header checksum, option structure) and the description.
    #[inline]
    pub fn parse_checked(p: &[u8]) -> Result<PacketRepr, ParseError> {
        let Some(&b0) = p.first() else {
            return Err(ParseError::Malformed);
        };
        match b0 >> 4 {
            4 => {}
            6 => return Err(ParseError::Ipv6),
            _ => return Err(ParseError::BadVersion),
        }
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

    /// The description of a packet whose header is structurally sound
    /// (`Ipv4Packet::new_checked`), without checksum or option checks: for
    /// packets the gateway reassembled or built itself.
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
            match v4.proto {
                6 if payload.len() >= 20 => {
                    let t = TcpPacket::new_unchecked(payload);
                    l4.present = true;
                    l4.sport = t.src_port();
                    l4.dport = t.dst_port();
                    l4.tcp_flags = t.flags();
                }
                17 if payload.len() >= 8 => {
                    let u = UdpPacket::new_unchecked(payload);
                    l4.present = true;
                    l4.sport = u.src_port();
                    l4.dport = u.dst_port();
                }
                1 if payload.len() >= 4 => {
                    let ic = IcmpPacket::new_unchecked(payload);
                    l4.present = true;
                    l4.icmp_type = ic.msg_type();
                    l4.icmp_code = ic.code();
                    if payload.len() >= icmp::HEADER_LEN && icmp::is_query(l4.icmp_type) {
                        l4.icmp_id = ic.ident();
                    }
                }
                _ => {}
            }
        }
        PacketRepr {
            net: NetRepr::V4(v4),
            l4,
        }
    }

    /// The IPv4 header (the only family so far).
    #[inline]
    pub fn v4(&self) -> &Ipv4Repr {
        let NetRepr::V4(v4) = &self.net;
        v4
    }

    #[inline]
    pub fn v4_mut(&mut self) -> &mut Ipv4Repr {
        let NetRepr::V4(v4) = &mut self.net;
        v4
    }

    /// Network total length (the bytes the packet occupies in its buffer).
    #[inline]
    pub fn total_len(&self) -> u16 {
        self.v4().total_len
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
        assert!(std::mem::size_of::<PacketRepr>() <= 48);
    }

    #[test]
    fn refuses_as_ip_rcv_core() {
        let mut b = TCP_SYN;
        Ipv4Packet::new_unchecked(&mut b[..]).fill_checksum();
        assert_eq!(PacketRepr::parse_checked(&[]), Err(ParseError::Malformed));
        assert_eq!(PacketRepr::parse_checked(&[0x60]), Err(ParseError::Ipv6));
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
