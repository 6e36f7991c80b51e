//! ICMPv6 view (RFC 4443), with neighbour discovery (RFC 4861) and MLD
//! (RFC 2710, RFC 3810) type numbers.
//!
//! Types 0-127 are errors, 128-255 informational (RFC 4443 section 2.1).
//! Echo request/reply carry an identifier (bytes 4..6), which conntrack
//! uses as the "port". Errors carry a 32-bit field (bytes 4..8: the MTU of
//! Packet Too Big, the pointer of Parameter Problem, else unused) and then
//! as much of the offending packet as fits: [`Icmpv6Packet::embedded`].
//! The checksum covers the IPv6 pseudo header (RFC 4443 section 2.3, RFC
//! 8200 section 8.1): [`Icmpv6Packet::verify_checksum`] takes the addresses.

use super::checksum;
use super::WireError;

/// The header's layout is ICMP's (RFC 4443 section 2.1); `INFO` is bytes
/// 4..8 (Packet Too Big's MTU, Parameter Problem's pointer).
pub use super::icmp::{field, HEADER_LEN};

/// ICMPv6 types (RFC 4443 section 2.1; RFC 2710 / RFC 3810 MLD; RFC 4861
/// neighbour discovery).
pub mod types {
    pub const DEST_UNREACH: u8 = 1;
    pub const PACKET_TOO_BIG: u8 = 2;
    pub const TIME_EXCEEDED: u8 = 3;
    pub const PARAM_PROBLEM: u8 = 4;
    pub const ECHO_REQUEST: u8 = 128;
    pub const ECHO_REPLY: u8 = 129;
    pub const MLD_QUERY: u8 = 130;
    pub const MLD_REPORT: u8 = 131;
    pub const MLD_DONE: u8 = 132;
    pub const ROUTER_SOLICIT: u8 = 133;
    pub const ROUTER_ADVERT: u8 = 134;
    pub const NEIGHBOUR_SOLICIT: u8 = 135;
    pub const NEIGHBOUR_ADVERT: u8 = 136;
    pub const REDIRECT: u8 = 137;
    pub const MLD2_REPORT: u8 = 143;
}

/// Destination Unreachable codes (RFC 4443 section 3.1), with the names of
/// ip6tables' `REJECT --reject-with icmp6-*`.
pub mod unreach {
    /// `icmp6-no-route`
    pub const NO_ROUTE: u8 = 0;
    /// `icmp6-adm-prohibited`
    pub const ADMIN_PROHIBITED: u8 = 1;
    pub const BEYOND_SCOPE: u8 = 2;
    /// `icmp6-addr-unreachable`
    pub const ADDR: u8 = 3;
    /// `icmp6-port-unreachable`
    pub const PORT: u8 = 4;
    /// `icmp6-policy-fail`
    pub const POLICY_FAIL: u8 = 5;
    /// `icmp6-reject-route`
    pub const REJECT_ROUTE: u8 = 6;
}

/// Time Exceeded codes (RFC 4443 section 3.3).
pub mod time_exceeded {
    pub const HOP_LIMIT: u8 = 0;
    pub const REASSEMBLY: u8 = 1;
}

/// Parameter Problem codes (RFC 4443 section 3.4).
pub mod param_problem {
    pub const HEADER_FIELD: u8 = 0;
    pub const NEXT_HEADER: u8 = 1;
    pub const OPTION: u8 = 2;
}

/// An error message (RFC 4443 section 2.1: high bit clear).
#[inline]
pub fn is_error(ty: u8) -> bool {
    ty < 128
}

/// Echo request or reply: the types with an identifier conntrack tracks.
#[inline]
pub fn is_echo(ty: u8) -> bool {
    matches!(ty, types::ECHO_REQUEST | types::ECHO_REPLY)
}

view! {
    /// A read/write view of an ICMPv6 message.
    pub struct Icmpv6Packet;
    /// Checks the 8-byte header is present.
    fn new_checked(_) {}
}

icmp_header!(Icmpv6Packet);

impl<T: AsRef<[u8]>> Icmpv6Packet<T> {
    pub fn is_error(&self) -> bool {
        is_error(self.msg_type())
    }
    /// For error messages: the quoted packet, version 6 with its fixed
    /// header whole (its payload length may exceed what is quoted: not
    /// checked; walk its extension headers over the quoted bytes).
    pub fn embedded(&self) -> Result<&[u8], WireError> {
        let d = self.data();
        if d.len() < super::ipv6::HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if d[0] >> 4 != 6 {
            return Err(WireError::BadVersion);
        }
        Ok(d)
    }
    /// True if the checksum verifies over the IPv6 pseudo header of `src`,
    /// `dst` and this message's length.
    pub fn verify_checksum(&self, src: u128, dst: u128) -> bool {
        let b = self.buffer.as_ref();
        checksum::l4_verify(pseudo(src, dst, b.len()), b)
    }
}

fn pseudo(src: u128, dst: u128, len: usize) -> u32 {
    checksum::pseudo_header_sum_v6(src, dst, super::ipv6::nexthdr::ICMPV6, len as u32)
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv6Packet<T> {
    /// Recomputes the checksum over the IPv6 pseudo header and the whole
    /// message (the buffer is the message: ICMPv6 header to payload end).
    pub fn fill_checksum(&mut self, src: u128, dst: u128) {
        self.set_checksum(0);
        let b = self.buffer.as_ref();
        let c = checksum::l4_checksum(pseudo(src, dst, b.len()), b);
        self.set_checksum(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::testutil::{self, a6};

    #[test]
    fn echo_and_error_views() {
        let (s, d) = (a6("2001:db8::1"), a6("2001:db8::2"));
        let p = testutil::echo_request6("2001:db8::1", "2001:db8::2", 0x1234, 7);
        let e = Icmpv6Packet::new_checked(&p[40..]).unwrap();
        assert_eq!(
            (e.msg_type(), e.code(), e.ident(), e.seq()),
            (types::ECHO_REQUEST, 0, 0x1234, 7)
        );
        assert!(e.verify_checksum(s, d) && !e.is_error() && is_echo(e.msg_type()));
        assert!(!e.verify_checksum(d, d));
        assert_eq!(e.embedded().unwrap_err(), WireError::Truncated);
        let mut b = p.clone();
        let mut m = Icmpv6Packet::new_checked(&mut b[40..]).unwrap();
        m.set_ident(9);
        m.set_seq(10);
        m.fill_checksum(s, d);
        assert!(m.verify_checksum(s, d));
        assert_eq!((m.ident(), m.seq()), (9, 10));
        // etherparse agrees on the checksum we filled.
        let sl = etherparse::Icmpv6Slice::from_slice(&b[40..]).unwrap();
        assert!(sl.is_checksum_valid(s.to_be_bytes(), d.to_be_bytes()));

        let about = testutil::udp6("2001:db8::2", "2001:db8::9", 1000, 53, b"q");
        let err = testutil::icmp6_error(
            "2001:db8::9",
            "2001:db8::2",
            types::DEST_UNREACH,
            unreach::PORT,
            &about,
        );
        let e = Icmpv6Packet::new_checked(&err[40..]).unwrap();
        assert!(e.is_error() && e.verify_checksum(a6("2001:db8::9"), d));
        assert_eq!(e.embedded().unwrap(), &about[..]);
        assert_eq!(e.info(), 0);
        assert_eq!(
            Icmpv6Packet::new_checked(&err[40..80])
                .unwrap()
                .embedded()
                .unwrap_err(),
            WireError::Truncated
        );
        let mut v4 = err.clone();
        v4[48] = 0x45;
        assert_eq!(
            Icmpv6Packet::new_checked(&v4[40..])
                .unwrap()
                .embedded()
                .unwrap_err(),
            WireError::BadVersion
        );
        assert_eq!(
            Icmpv6Packet::new_checked(&err[40..47]).unwrap_err(),
            WireError::Truncated
        );
        let mut ptb = err.clone();
        Icmpv6Packet::new_unchecked(&mut ptb[40..]).set_info(1280);
        assert_eq!(Icmpv6Packet::new_unchecked(&ptb[40..]).info(), 1280);
    }
}
