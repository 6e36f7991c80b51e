//! The `virtio_net_hdr` that a TUN device opened with `IFF_VNET_HDR` puts in
//! front of every frame (include/uapi/linux/virtio_net.h). Little-endian on the
//! architectures we run on (the TUN default without TUNSETVNETLE on x86/arm).
#![forbid(unsafe_code)]

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
}
