//! The `virtio_net_hdr` that a TUN device opened with `IFF_VNET_HDR` puts in
//! front of every frame (include/uapi/linux/virtio_net.h). Little-endian on the
//! architectures we run on (the TUN default without TUNSETVNETLE on x86/arm).

/// `flags`: the L4 checksum is partial (pseudo-header sum only), finish it at
/// `csum_start + csum_offset`.
pub const F_NEEDS_CSUM: u8 = 1;
/// `flags`: the checksum was validated by the sender.
pub const F_DATA_VALID: u8 = 2;

/// `gso_type` values.
pub const GSO_NONE: u8 = 0;
pub const GSO_TCPV4: u8 = 1;
pub const GSO_UDP: u8 = 3;
pub const GSO_TCPV6: u8 = 4;
pub const GSO_UDP_L4: u8 = 5;
pub const GSO_ECN: u8 = 0x80;

/// Plain representation of the 10-byte header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VnetHdr {
    pub flags: u8,
    pub gso_type: u8,
    /// Length of the headers (IP + L4) to copy into every segment.
    pub hdr_len: u16,
    /// Payload bytes per segment.
    pub gso_size: u16,
    /// Where checksumming starts, counted from the IP header.
    pub csum_start: u16,
    /// Offset of the checksum field from `csum_start`.
    pub csum_offset: u16,
}

impl VnetHdr {
    pub const LEN: usize = 10;

    /// Parses the header from the first 10 bytes; `None` if `buf` is shorter.
    pub fn parse(buf: &[u8]) -> Option<VnetHdr> {
        let b = buf.get(..Self::LEN)?;
        let le = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        Some(VnetHdr {
            flags: b[0],
            gso_type: b[1],
            hdr_len: le(2),
            gso_size: le(4),
            csum_start: le(6),
            csum_offset: le(8),
        })
    }

    /// Writes the header into the first 10 bytes of `buf` (which must hold them).
    pub fn write(&self, buf: &mut [u8]) {
        let b = &mut buf[..Self::LEN];
        b[0] = self.flags;
        b[1] = self.gso_type;
        b[2..4].copy_from_slice(&self.hdr_len.to_le_bytes());
        b[4..6].copy_from_slice(&self.gso_size.to_le_bytes());
        b[6..8].copy_from_slice(&self.csum_start.to_le_bytes());
        b[8..10].copy_from_slice(&self.csum_offset.to_le_bytes());
    }

    /// True when the L4 checksum field holds only the pseudo-header sum
    /// (CHECKSUM_PARTIAL): it must change with addresses, not with ports.
    pub fn needs_csum(&self) -> bool {
        self.flags & F_NEEDS_CSUM != 0
    }

    /// True when this is a GSO super-packet to be segmented by the receiver.
    pub fn is_gso(&self) -> bool {
        self.gso_type & !GSO_ECN != GSO_NONE
    }

    /// True when the header is one the kernel's `tun_get_user` /
    /// `virtio_net_hdr_to_skb` would accept in front of the IP packet
    /// `packet` (no vnet header): `hdr_len` within the frame, a known GSO
    /// type with a non-zero `gso_size` matching the IP protocol, and a
    /// partial checksum field (`csum_start + csum_offset + 2`) inside the
    /// packet and after the IP header. A frame failing this is dropped as
    /// `BadVnetHdr`.
    pub fn consistent_with(&self, packet: &[u8]) -> bool {
        let len = packet.len();
        if usize::from(self.hdr_len) > len {
            return false;
        }
        if self.needs_csum() {
            if usize::from(self.csum_start) + usize::from(self.csum_offset) + 2 > len {
                return false;
            }
            // The checksummed part starts after the IP header: a partial
            // checksum finished inside it would overwrite IP fields.
            let ihl = packet.first().map_or(0, |b| usize::from(b & 0x0f) * 4);
            if packet.first().is_some_and(|b| b >> 4 == 4) && usize::from(self.csum_start) < ihl {
                return false;
            }
        }
        if !self.is_gso() {
            return true;
        }
        if self.gso_size == 0 {
            return false;
        }
        let proto = packet.get(9).copied();
        let v4 = packet.first().is_some_and(|b| b >> 4 == 4);
        match self.gso_type & !GSO_ECN {
            GSO_TCPV4 => v4 && proto == Some(6),
            GSO_UDP | GSO_UDP_L4 => v4 && proto == Some(17),
            GSO_TCPV6 => packet.first().is_some_and(|b| b >> 4 == 6),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_captured_tcp_gso_header() {
        // Captured from a TUN with TSO on: NEEDS_CSUM, TCPV4, hdr_len 52,
        // gso_size 1448, csum_start 20, csum_offset 16.
        let raw = [1u8, 1, 52, 0, 0xa8, 0x05, 20, 0, 16, 0];
        let h = VnetHdr::parse(&raw).unwrap();
        assert!(h.needs_csum() && h.is_gso());
        assert_eq!(
            (h.hdr_len, h.gso_size, h.csum_start, h.csum_offset),
            (52, 1448, 20, 16)
        );
        let mut out = [0u8; 10];
        h.write(&mut out);
        assert_eq!(out, raw);
        assert!(VnetHdr::parse(&raw[..9]).is_none());
    }

    #[test]
    fn inconsistent_headers_are_refused() {
        // A 60-byte IPv4 TCP packet.
        let mut pkt = [0u8; 60];
        pkt[0] = 0x45;
        pkt[9] = 6;
        let gso = VnetHdr {
            flags: F_NEEDS_CSUM,
            gso_type: GSO_TCPV4,
            hdr_len: 40,
            gso_size: 1448,
            csum_start: 20,
            csum_offset: 16,
        };
        assert!(gso.consistent_with(&pkt));
        assert!(VnetHdr::default().consistent_with(&pkt));
        let bad = [
            ("gso_size 0", VnetHdr { gso_size: 0, ..gso }),
            ("hdr_len beyond frame", VnetHdr { hdr_len: 61, ..gso }),
            (
                "csum_start beyond frame",
                VnetHdr {
                    csum_start: 59,
                    ..gso
                },
            ),
            (
                "csum_offset beyond frame",
                VnetHdr {
                    csum_offset: 40,
                    ..gso
                },
            ),
            (
                "csum_start inside the IP header",
                VnetHdr {
                    csum_start: 10,
                    ..gso
                },
            ),
            ("unknown gso type", VnetHdr { gso_type: 7, ..gso }),
            (
                "udp gso on tcp",
                VnetHdr {
                    gso_type: GSO_UDP_L4,
                    ..gso
                },
            ),
            (
                "tcpv6 gso on ipv4",
                VnetHdr {
                    gso_type: GSO_TCPV6,
                    ..gso
                },
            ),
        ];
        for (what, h) in bad {
            assert!(!h.consistent_with(&pkt), "{what} accepted: {h:?}");
        }
    }
}
