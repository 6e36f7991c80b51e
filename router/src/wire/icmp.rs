//! ICMPv4 view (RFC 792).
//!
//! Echo/timestamp/info/address-mask messages carry an identifier (bytes 4..6),
//! which conntrack uses as the "port". Error messages (destination unreachable,
//! source quench, redirect, time exceeded, parameter problem) embed the IP
//! header of the offending packet plus at least 8 bytes of its payload, from
//! byte 8 on: [`IcmpPacket::embedded`].

use super::WireError;

pub mod field {
    pub type Field = std::ops::Range<usize>;
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Field = 2..4;
    pub const IDENT: Field = 4..6;
    pub const SEQ: Field = 6..8;
    pub const MTU: Field = 6..8;
    /// The whole rest of header (bytes 4..8).
    pub const INFO: Field = 4..8;
    pub const DATA: usize = 8;
}

pub const HEADER_LEN: usize = 8;

/// ICMP types (RFC 792, RFC 950 for address mask).
pub mod types {
    pub const ECHO_REPLY: u8 = 0;
    pub const DEST_UNREACH: u8 = 3;
    pub const SOURCE_QUENCH: u8 = 4;
    pub const REDIRECT: u8 = 5;
    pub const ECHO_REQUEST: u8 = 8;
    pub const TIME_EXCEEDED: u8 = 11;
    pub const PARAM_PROBLEM: u8 = 12;
    pub const TIMESTAMP: u8 = 13;
    pub const TIMESTAMP_REPLY: u8 = 14;
    pub const INFO_REQUEST: u8 = 15;
    pub const INFO_REPLY: u8 = 16;
    pub const ADDRESS_MASK: u8 = 17;
    pub const ADDRESS_MASK_REPLY: u8 = 18;
}

/// Destination-unreachable codes (RFC 792, RFC 1812 section 5.2.7.1).
pub mod unreach {
    pub const NET: u8 = 0;
    pub const HOST: u8 = 1;
    pub const PROTOCOL: u8 = 2;
    pub const PORT: u8 = 3;
    pub const FRAG_NEEDED: u8 = 4;
    pub const NET_PROHIBITED: u8 = 9;
    pub const HOST_PROHIBITED: u8 = 10;
    pub const ADMIN_PROHIBITED: u8 = 13;
}

/// True for the error types conntrack relates to an existing entry.
pub fn is_error(ty: u8) -> bool {
    matches!(
        ty,
        types::DEST_UNREACH
            | types::SOURCE_QUENCH
            | types::REDIRECT
            | types::TIME_EXCEEDED
            | types::PARAM_PROBLEM
    )
}

/// True for the query types that carry an identifier.
pub fn is_query(ty: u8) -> bool {
    matches!(
        ty,
        types::ECHO_REPLY
            | types::ECHO_REQUEST
            | types::TIMESTAMP
            | types::TIMESTAMP_REPLY
            | types::INFO_REQUEST
            | types::INFO_REPLY
            | types::ADDRESS_MASK
            | types::ADDRESS_MASK_REPLY
    )
}

view! {
    /// A read/write view of an ICMP message.
    pub struct IcmpPacket;
    /// Checks the 8-byte header is present.
    fn new_checked(_) {}
}

icmp_header!(IcmpPacket);

impl<T: AsRef<[u8]>> IcmpPacket<T> {
    pub fn is_error(&self) -> bool {
        is_error(self.msg_type())
    }
    /// For error messages: the embedded IP header + leading L4 bytes. Checks
    /// version, IHL and that at least 8 bytes of L4 follow the embedded header
    /// (the embedded total length may exceed what is quoted: not checked).
    pub fn embedded(&self) -> Result<&[u8], WireError> {
        let d = self.data();
        if d.len() < 20 {
            return Err(WireError::Truncated);
        }
        if d[0] >> 4 != 4 {
            return Err(WireError::BadVersion);
        }
        let ihl = ((d[0] & 0x0f) as usize) * 4;
        if ihl < 20 || d.len() < ihl + 8 {
            return Err(WireError::BadLength);
        }
        Ok(d)
    }
    pub fn verify_checksum(&self) -> bool {
        super::checksum::fold(super::checksum::sum(self.buffer.as_ref(), 0)) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> IcmpPacket<T> {
    /// Recomputes the checksum over the whole message.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = super::checksum::checksum(self.buffer.as_ref());
        self.set_checksum(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::testutil;

    #[test]
    fn echo_and_error_views() {
        let p = testutil::echo_request("10.0.0.1", "10.0.0.2", 0x1234, 7);
        let e = IcmpPacket::new_checked(&p[20..]).unwrap();
        assert_eq!(
            (e.msg_type(), e.code(), e.ident(), e.seq()),
            (8, 0, 0x1234, 7)
        );
        assert!(e.verify_checksum() && !e.is_error() && is_query(e.msg_type()));
        assert!(e.embedded().is_err());
        let about = testutil::udp("10.0.0.2", "10.0.0.9", 1000, 53, b"q");
        let err = testutil::icmp_error(
            "10.0.0.9",
            "10.0.0.2",
            types::DEST_UNREACH,
            unreach::PORT,
            &about,
            false,
        );
        let e = IcmpPacket::new_checked(&err[20..]).unwrap();
        assert!(e.is_error() && e.verify_checksum());
        assert_eq!(e.embedded().unwrap(), &about[..28]);
        // Quoting less than IP header + 8 bytes is refused.
        assert_eq!(
            IcmpPacket::new_checked(&err[20..50])
                .unwrap()
                .embedded()
                .unwrap_err(),
            WireError::BadLength
        );
        assert_eq!(
            IcmpPacket::new_checked(&err[20..27]).unwrap_err(),
            WireError::Truncated
        );
        let mut b = p.clone();
        let mut m = IcmpPacket::new_checked(&mut b[20..]).unwrap();
        m.set_ident(9);
        m.fill_checksum();
        assert!(m.verify_checksum());
    }
}
