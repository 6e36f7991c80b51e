//! TCP header view (RFC 9293 section 3.1).
//!
//! `new_checked` verifies the data offset against the buffer; the buffer is the
//! IP payload (TCP header + data).
#![forbid(unsafe_code)]

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

#[derive(Debug, Clone)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    pub fn new_unchecked(buffer: T) -> Self {
        TcpPacket { buffer }
    }
    /// Checks `20 <= data offset * 4 <= buffer length`.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let b = buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let off = ((b[field::DATA_OFF] >> 4) as usize) * 4;
        if off < HEADER_LEN || off > b.len() {
            return Err(WireError::BadLength);
        }
        Ok(TcpPacket { buffer })
    }
    pub fn src_port(&self) -> u16 {
        get_u16(self.buffer.as_ref(), 0)
    }
    pub fn dst_port(&self) -> u16 {
        get_u16(self.buffer.as_ref(), 2)
    }
    pub fn seq_number(&self) -> u32 {
        let b = self.buffer.as_ref();
        u32::from_be_bytes([b[4], b[5], b[6], b[7]])
    }
    pub fn ack_number(&self) -> u32 {
        let b = self.buffer.as_ref();
        u32::from_be_bytes([b[8], b[9], b[10], b[11]])
    }
    pub fn header_len(&self) -> usize {
        ((self.buffer.as_ref()[field::DATA_OFF] >> 4) as usize) * 4
    }
    /// The flag byte (FIN..CWR).
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }
    pub fn window(&self) -> u16 {
        get_u16(self.buffer.as_ref(), 14)
    }
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), 16)
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
    pub fn set_src_port(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), 0, v)
    }
    pub fn set_dst_port(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), 2, v)
    }
    pub fn set_flags(&mut self, v: u8) {
        self.buffer.as_mut()[field::FLAGS] = v;
    }
    pub fn set_checksum(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), 16, v)
    }
    pub fn options_mut(&mut self) -> &mut [u8] {
        let h = self.header_len();
        &mut self.buffer.as_mut()[HEADER_LEN..h]
    }
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
}
