//! TCP header view (RFC 9293 section 3.1).
//!
//! `new_checked` verifies the data offset against the buffer; the buffer is the
//! IP payload (TCP header + data).

use super::{get_u16, set_u16, WireError};

pub mod field {
    pub type Field = std::ops::Range<usize>;
    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const SEQ_NUM: Field = 4..8;
    pub const ACK_NUM: Field = 8..12;
    pub const DATA_OFF: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WIN_SIZE: Field = 14..16;
    pub const CHECKSUM: Field = 16..18;
    pub const URGENT: Field = 18..20;
}

pub const HEADER_LEN: usize = 20;

/// Flag bits of byte 13 (RFC 9293 section 3.1, RFC 3168 for ECE/CWR).
pub mod flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
    pub const ECE: u8 = 0x40;
    pub const CWR: u8 = 0x80;
}

view! {
    /// A read/write view of a TCP segment (header, options and data).
    pub struct TcpPacket;
    /// Checks `20 <= data offset * 4 <= buffer length`.
    fn new_checked(b) {
        let off = ((b[field::DATA_OFF] >> 4) as usize) * 4;
        if off < HEADER_LEN || off > b.len() {
            return Err(WireError::BadLength);
        }
    }
}

fields! {
    TcpPacket {
        src_port, set_src_port: u16 = field::SRC_PORT.start;
        dst_port, set_dst_port: u16 = field::DST_PORT.start;
        seq_number, set_seq_number: u32 = field::SEQ_NUM.start;
        ack_number, set_ack_number: u32 = field::ACK_NUM.start;
        /// The flag byte (FIN..CWR).
        flags, set_flags: u8 = field::FLAGS;
        window, set_window: u16 = field::WIN_SIZE.start;
        checksum, set_checksum: u16 = field::CHECKSUM.start;
    }
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    pub fn header_len(&self) -> usize {
        ((self.buffer.as_ref()[field::DATA_OFF] >> 4) as usize) * 4
    }
    /// Options bytes (between the fixed header and the data).
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.header_len()]
    }
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    pub fn options_mut(&mut self) -> &mut [u8] {
        let h = self.header_len();
        &mut self.buffer.as_mut()[HEADER_LEN..h]
    }
}

/// TCP option kinds (RFC 9293 section 3.2).
pub mod option {
    pub const END: u8 = 0;
    pub const NOP: u8 = 1;
    pub const MSS: u8 = 2;
}

/// The TCPMSS target on an IPv4 packet: if it is a SYN whose MSS option
/// exceeds `mss`, lower it (never raise it, as `xt_TCPMSS`), updating the TCP
/// checksum incrementally (left alone when `partial`: the option lies in the
/// part the receiver sums). A SYN without the option is left as is (adding
/// one would grow the packet). Returns whether the packet changed.
pub fn clamp_mss(ip_packet: &mut [u8], mss: u16, partial: bool) -> Result<bool, WireError> {
    let ip = super::Ipv4Packet::new_checked(&*ip_packet)?;
    if ip.protocol_raw() != 6 || ip.frag_offset() != 0 {
        return Ok(false);
    }
    let (hl, end) = (ip.header_len(), ip.total_len() as usize);
    let l4 = &mut ip_packet[hl..end];
    let t = TcpPacket::new_checked(&*l4)?;
    if t.flags() & flags::SYN == 0 {
        return Ok(false);
    }
    let olen = t.header_len();
    let mut i = HEADER_LEN;
    while i < olen {
        match l4[i] {
            option::END => break,
            option::NOP => i += 1,
            kind => {
                let len = *l4.get(i + 1).unwrap_or(&0) as usize;
                if len < 2 || i + len > olen {
                    return Ok(false);
                }
                if kind == option::MSS && len == 4 {
                    let old = get_u16(l4, i + 2);
                    if old <= mss {
                        return Ok(false);
                    }
                    set_u16(l4, i + 2, mss);
                    if !partial {
                        // The value may sit at an odd offset, straddling two
                        // 16-bit words of the checksum: update each word.
                        let v = i + 2;
                        let mut c = get_u16(l4, 16);
                        if v.is_multiple_of(2) {
                            c = super::checksum::update16(c, old, mss);
                        } else {
                            let (prev, next) = (l4[v - 1], *l4.get(v + 2).unwrap_or(&0));
                            let [oh, ol] = old.to_be_bytes();
                            let [nh, nl] = mss.to_be_bytes();
                            c = super::checksum::update16(
                                c,
                                u16::from_be_bytes([prev, oh]),
                                u16::from_be_bytes([prev, nh]),
                            );
                            c = super::checksum::update16(
                                c,
                                u16::from_be_bytes([ol, next]),
                                u16::from_be_bytes([nl, next]),
                            );
                        }
                        set_u16(l4, 16, c);
                    }
                    return Ok(true);
                }
                i += len;
            }
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ipv4::tests::TCP_SYN;

    #[test]
    fn syn_fixture_fields_and_bounds() {
        let t = TcpPacket::new_checked(&TCP_SYN[20..]).unwrap();
        assert_eq!((t.src_port(), t.dst_port()), (40000, 80));
        assert_eq!(t.flags(), flags::SYN);
        assert_eq!(t.header_len(), 40);
        assert_eq!(&t.options()[..4], &[0x02, 0x04, 0x05, 0xb4]); // MSS 1460
        assert!(t.payload().is_empty());
        assert_eq!(
            TcpPacket::new_checked(&TCP_SYN[20..39]).unwrap_err(),
            WireError::Truncated
        );
        // Data offset beyond the buffer.
        assert_eq!(
            TcpPacket::new_checked(&TCP_SYN[20..50]).unwrap_err(),
            WireError::BadLength
        );
        let mut b = TCP_SYN;
        b[32] = 0x40; // data offset 4 words
        assert_eq!(
            TcpPacket::new_checked(&b[20..]).unwrap_err(),
            WireError::BadLength
        );
        let mut c = TCP_SYN;
        let mut t = TcpPacket::new_checked(&mut c[20..]).unwrap();
        t.set_src_port(1);
        t.set_dst_port(2);
        t.set_flags(flags::RST);
        assert_eq!((t.src_port(), t.dst_port(), t.flags()), (1, 2, flags::RST));
    }

    #[test]
    fn clamp_mss_lowers_only_and_keeps_checksums() {
        use crate::wire::testutil::{assert_checksums, finish_partial, LO_TCP_SYN_PARTIAL};
        // Fill a complete checksum into the real SYN (MSS 65495 on loopback).
        let mut p = LO_TCP_SYN_PARTIAL.to_vec();
        finish_partial(&mut p);
        assert_checksums(&p);
        assert_eq!(get_u16(&p, 42), 65495);
        assert!(clamp_mss(&mut p, 1400, false).unwrap());
        assert_eq!(get_u16(&p, 42), 1400);
        assert_checksums(&p);
        assert!(!clamp_mss(&mut p, 1460, false).unwrap(), "never raised");
        // Partial: the field is untouched and stays the pseudo-header sum.
        let mut q = LO_TCP_SYN_PARTIAL.to_vec();
        assert!(clamp_mss(&mut q, 1200, true).unwrap());
        assert_eq!(&q[36..38], &LO_TCP_SYN_PARTIAL[36..38]);
        finish_partial(&mut q);
        assert_checksums(&q);
        // Odd offset: a NOP before the MSS option.
        let mut r = crate::wire::testutil::tcp("10.0.0.1", "10.0.0.2", 1, 2, flags::SYN, b"");
        r.splice(40..40, [1u8, 2, 4, 0x05, 0xb4, 1, 1, 1]);
        r[32] = 7 << 4;
        let n = r.len() as u16;
        r[2..4].copy_from_slice(&n.to_be_bytes());
        crate::wire::Ipv4Packet::new_unchecked(&mut r[..]).fill_checksum();
        crate::wire::testutil::to_partial(&mut r);
        finish_partial(&mut r);
        assert_checksums(&r);
        assert!(clamp_mss(&mut r, 1000, false).unwrap());
        assert_eq!(get_u16(&r, 43), 1000);
        assert_checksums(&r);
        // Not a SYN: untouched.
        let mut ack = crate::wire::testutil::tcp("10.0.0.1", "10.0.0.2", 1, 2, flags::ACK, b"");
        assert!(!clamp_mss(&mut ack, 100, false).unwrap());
    }
}
