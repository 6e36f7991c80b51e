//! Zero-copy packet views and checksums.
//!
//! Header types wrap a byte buffer (`Ipv4Packet<T: AsRef<[u8]>>`, smoltcp style);
//! untrusted input goes through `new_checked` once, after which getters cannot
//! panic. Setters live in the `AsMut` impl blocks. Field positions are named once
//! as byte ranges in each module's `mod field`.
//!
//! Checksums: [`checksum`] has the full RFC 1071 sum and the RFC 1624 (eqn. 3)
//! incremental update, plus the CHECKSUM_PARTIAL variant (the L4 field holds the
//! non-complemented pseudo-header sum, see [`vnet::VnetHdr::needs_csum`]).
//! Address/port rewrites of whole connections live in `nat::translate`, on
//! top of these; [`tcp::clamp_mss`] is the TCPMSS rewrite; [`build`] makes
//! the packets the gateway originates (ICMP errors, echo replies, TCP RST).
//!
//! Unit tests use real packets captured from the kernel (see `testutil`)
//! and check every rewrite against etherparse's independent checksums.

/// A header view over a byte buffer: the struct, `new_unchecked`,
/// `into_inner` and `new_checked`, which refuses a buffer shorter than the
/// module's `HEADER_LEN` (`Truncated`), then runs the type's own checks on
/// the bytes, each returning its `WireError`.
macro_rules! view {
    (
        $(#[$doc:meta])*
        pub struct $name:ident;
        $(#[$check_doc:meta])*
        fn new_checked($b:pat) $check:block
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub struct $name<T: AsRef<[u8]>> {
            buffer: T,
        }

        impl<T: AsRef<[u8]>> $name<T> {
            /// Wraps without checks; getters may panic on a short buffer.
            #[inline]
            pub fn new_unchecked(buffer: T) -> Self {
                $name { buffer }
            }

            $(#[$check_doc])*
            #[inline]
            pub fn new_checked(buffer: T) -> Result<Self, WireError> {
                if buffer.as_ref().len() < HEADER_LEN {
                    return Err(WireError::Truncated);
                }
                let $b: &[u8] = buffer.as_ref();
                $check
                Ok($name { buffer })
            }

            /// The buffer back.
            #[inline]
            pub fn into_inner(self) -> T {
                self.buffer
            }
        }
    };
}

pub mod build;
pub mod checksum;
pub mod icmp;
pub mod ipv4;
pub mod repr;
pub mod tcp;
pub mod udp;
pub mod vnet;

pub use icmp::IcmpPacket;
pub use ipv4::{IpProtocol, Ipv4Packet};
pub use repr::{Ipv4Repr, L4Repr, NetRepr, PacketRepr};
pub use tcp::TcpPacket;
pub use udp::UdpPacket;

/// A view could not be created: the buffer is shorter than the header it
/// claims, or a length field is inconsistent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireError {
    /// Buffer shorter than the fixed header.
    Truncated,
    /// A length field (IHL, total length, data offset) is inconsistent.
    BadLength,
    /// Not IPv4.
    BadVersion,
}

/// The address family of a packet, a tuple or a ruleset. Addresses are
/// host-order integers: `u32` in IPv4-only structures, `u128` where the
/// two families meet, IPv4 zero-extended into the low 32 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
#[repr(u8)]
pub enum Family {
    #[default]
    V4,
    V6,
}

impl Family {
    /// conntrack-tools' name (`-f ipv4|ipv6`, `-o extended`).
    pub fn name(self) -> &'static str {
        match self {
            Family::V4 => "ipv4",
            Family::V6 => "ipv6",
        }
    }
    /// The L3 protocol number conntrack prints (`AF_INET` 2, `AF_INET6` 10).
    pub fn number(self) -> u8 {
        match self {
            Family::V4 => 2,
            Family::V6 => 10,
        }
    }
    /// A `u128` address of this family as a std address.
    pub fn ip(self, a: u128) -> std::net::IpAddr {
        match self {
            Family::V4 => std::net::Ipv4Addr::from(a as u32).into(),
            Family::V6 => std::net::Ipv6Addr::from(a).into(),
        }
    }
}

pub fn get_u16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

pub fn set_u16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

#[cfg(test)]
#[cfg(test)]
pub mod testutil;
