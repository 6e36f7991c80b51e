//! UDP header view (RFC 768).
//!
//! A checksum of 0 means "no checksum" (RFC 768): rewrites keep it 0, and a
//! computed 0 is sent as 0xffff.

use super::WireError;

pub mod field {
    pub type Field = std::ops::Range<usize>;
    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const LENGTH: Field = 4..6;
    pub const CHECKSUM: Field = 6..8;
}

pub const HEADER_LEN: usize = 8;

view! {
    /// A read/write view of a UDP header and its payload.
    pub struct UdpPacket;
    /// Checks the 8-byte header is present (the length field is not trusted
    /// for slicing: the payload is what the IP header says).
    fn new_checked(_) {}
}

fields! {
    UdpPacket {
        src_port, set_src_port: u16 = field::SRC_PORT.start;
        dst_port, set_dst_port: u16 = field::DST_PORT.start;
        len, set_len: u16 = field::LENGTH.start;
        checksum, set_checksum: u16 = field::CHECKSUM.start;
    }
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    pub fn is_empty(&self) -> bool {
        self.len() <= HEADER_LEN as u16
    }
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::testutil;

    #[test]
    fn fields_and_setters() {
        let p = testutil::udp("10.0.0.1", "10.0.0.2", 5353, 53, b"hello");
        let u = UdpPacket::new_checked(&p[20..]).unwrap();
        assert_eq!((u.src_port(), u.dst_port(), u.len()), (5353, 53, 13));
        assert_eq!(u.payload(), b"hello");
        assert!(!u.is_empty());
        assert_eq!(
            UdpPacket::new_checked(&p[20..27]).unwrap_err(),
            WireError::Truncated
        );
        let mut b = p.clone();
        let mut u = UdpPacket::new_checked(&mut b[20..]).unwrap();
        u.set_src_port(1);
        u.set_dst_port(2);
        u.set_checksum(0);
        assert_eq!((u.src_port(), u.dst_port(), u.checksum()), (1, 2, 0));
    }
}
