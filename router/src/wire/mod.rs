//! Zero-copy packet views and checksums.
//!
//! Header types wrap a byte buffer (`Ipv4Packet<T: AsRef<[u8]>>`, smoltcp style);
//! untrusted input goes through `new_checked` once, after which getters cannot
//! panic. Setters live in the `AsMut` impl blocks. Field positions are named once
//! as byte ranges in each module's `mod field`.
//!
//! Two families: [`ipv4`] and [`ipv6`] (with [`exthdr`], the extension-header
//! walk, and [`icmpv6`]); [`repr`] describes a packet of either. Addresses are
//! host-order integers: `u32` in the IPv4 views, `u128` in the IPv6 ones, and
//! `u128` with IPv4 zero-extended in the low 32 bits where both families meet
//! (the [`Family`] comes from context).
//!
//! Checksums: [`checksum`] has the full RFC 1071 sum and the RFC 1624 (eqn. 3)
//! incremental update (16-, 32- and 128-bit fields), the pseudo-header sums of
//! both families, plus the CHECKSUM_PARTIAL variant (the L4 field holds the
//! non-complemented pseudo-header sum, see [`vnet::VnetHdr::needs_csum`]).
//! Address/port rewrites of whole connections live in `nat::translate`, on
//! top of these; [`tcp::clamp_mss`] is the TCPMSS rewrite; [`build`] makes
//! the packets the gateway originates (ICMP errors, echo replies, TCP RST),
//! [`build6`] their IPv6 counterparts.
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

/// Getter/setter pairs of a view's fixed-position fields:
/// `name, set_name: type = offset;` reads and writes the big-endian `type`
/// ([`FieldValue`]: `u8`, `u16`, `u32`, `u128`) at byte `offset`. Only for
/// fields inside the `HEADER_LEN` that `new_checked` guarantees.
macro_rules! fields {
    (
        $view:ident {
            $( $(#[$doc:meta])* $get:ident, $set:ident: $ty:ty = $at:expr; )*
        }
    ) => {
        impl<T: AsRef<[u8]>> $view<T> {
            $(
                $(#[$doc])*
                #[inline]
                pub fn $get(&self) -> $ty {
                    <$ty as $crate::wire::FieldValue>::read(self.buffer.as_ref(), $at)
                }
            )*
        }
        impl<T: AsRef<[u8]> + AsMut<[u8]>> $view<T> {
            $(
                #[inline]
                pub fn $set(&mut self, v: $ty) {
                    <$ty as $crate::wire::FieldValue>::write(self.buffer.as_mut(), $at, v)
                }
            )*
        }
    };
}

/// The header ICMP and ICMPv6 share (RFC 4443 section 2.1 keeps RFC 792's
/// layout): type, code, checksum, the 4-byte rest of header (identifier
/// and sequence of a query, MTU or pointer of an error) and the data after
/// it. The checksums differ (ICMPv6 covers a pseudo header): each view has
/// its own.
macro_rules! icmp_header {
    ($view:ident) => {
        fields! {
            $view {
                msg_type, set_msg_type: u8 = field::TYPE;
                code, set_code: u8 = field::CODE;
                checksum, set_checksum: u16 = field::CHECKSUM.start;
                ident, set_ident: u16 = field::IDENT.start;
                seq, set_seq: u16 = field::SEQ.start;
                /// Bytes 4..8 as one value: Packet Too Big's MTU, Parameter
                /// Problem's pointer (ICMPv6); for ICMP, RFC 1191's MTU in
                /// the low half, the pointer in the top byte.
                info, set_info: u32 = field::INFO.start;
            }
        }
        impl<T: AsRef<[u8]>> $view<T> {
            /// Everything after the 8-byte header (for errors: the quoted packet).
            pub fn data(&self) -> &[u8] {
                &self.buffer.as_ref()[HEADER_LEN..]
            }
        }
        impl<T: AsRef<[u8]> + AsMut<[u8]>> $view<T> {
            pub fn data_mut(&mut self) -> &mut [u8] {
                &mut self.buffer.as_mut()[HEADER_LEN..]
            }
        }
    };
}

pub mod build;
pub mod build6;
pub mod checksum;
pub mod exthdr;
pub mod icmp;
pub mod icmpv6;
pub mod ipv4;
pub mod ipv6;
pub mod repr;
pub mod tcp;
pub mod udp;
pub mod vnet;

pub use exthdr::ExtHdrs;
pub use icmp::IcmpPacket;
pub use icmpv6::Icmpv6Packet;
pub use ipv4::{IpProtocol, Ipv4Packet};
pub use ipv6::Ipv6Packet;
pub use repr::{Ipv4Repr, Ipv6Repr, L4Repr, NetRepr, PacketRepr};
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
    /// Not the IP version the view is for.
    BadVersion,
    /// An IPv6 extension header is truncated or runs past the payload.
    BadExtHeader,
}

/// An address family. Where both families meet, addresses are `u128` with
/// IPv4 zero-extended in the low 32 bits; the family says which it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
#[repr(u8)]
pub enum Family {
    #[default]
    V4,
    V6,
}

impl Family {
    /// As iptables names it in messages and conntrack in `/proc` lines.
    pub fn name(self) -> &'static str {
        match self {
            Family::V4 => "ipv4",
            Family::V6 => "ipv6",
        }
    }
    /// The layer-3 protocol number conntrack prints (`AF_INET` 2,
    /// `AF_INET6` 10).
    pub fn l3proto(self) -> u8 {
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
    /// The family of an IP packet's version nibble (first byte >> 4).
    pub fn from_version(v: u8) -> Option<Family> {
        match v {
            4 => Some(Family::V4),
            6 => Some(Family::V6),
            _ => None,
        }
    }
    /// Address width in bits (32 or 128).
    pub fn addr_bits(self) -> u32 {
        match self {
            Family::V4 => 32,
            Family::V6 => 128,
        }
    }
    /// Address width in bits (the ruleset's name for [`Family::addr_bits`]).
    pub fn bits(self) -> u32 {
        self.addr_bits()
    }
    /// The all-ones mask of a host address (`/32` or `/128`).
    pub fn host_mask(self) -> u128 {
        match self {
            Family::V4 => u128::from(u32::MAX),
            Family::V6 => u128::MAX,
        }
    }
    /// The mask of a prefix of `len` bits (`len` at most [`Family::bits`]).
    pub fn prefix_mask(self, len: u32) -> u128 {
        // `>> 128` would overflow: a full-width prefix is the host mask.
        self.host_mask() & !self.host_mask().checked_shr(len).unwrap_or(0)
    }
    /// The tool's name: `iptables` or `ip6tables`.
    pub fn tool(self) -> &'static str {
        match self {
            Family::V4 => "iptables",
            Family::V6 => "ip6tables",
        }
    }
}

/// A fixed-width big-endian header field, read and written by the views'
/// [`fields!`] accessors.
pub trait FieldValue: Copy {
    fn read(b: &[u8], at: usize) -> Self;
    fn write(b: &mut [u8], at: usize, v: Self);
}

/// `FieldValue` through the `get_*` / `set_*` functions below.
macro_rules! field_value {
    ($($t:ty: $get:ident, $set:ident;)*) => {
        $(
            impl FieldValue for $t {
                #[inline]
                fn read(b: &[u8], at: usize) -> $t {
                    $get(b, at)
                }
                #[inline]
                fn write(b: &mut [u8], at: usize, v: $t) {
                    $set(b, at, v)
                }
            }
        )*
    };
}

field_value! {
    u8: get_u8, set_u8;
    u16: get_u16, set_u16;
    u32: get_u32, set_u32;
    u128: get_u128, set_u128;
}

pub fn get_u8(b: &[u8], at: usize) -> u8 {
    b[at]
}

pub fn set_u8(b: &mut [u8], at: usize, v: u8) {
    b[at] = v;
}

pub fn get_u16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

pub fn set_u16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

pub fn get_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

pub fn set_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

/// A 128-bit big-endian field (an IPv6 address) as a host-order integer.
pub fn get_u128(b: &[u8], at: usize) -> u128 {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[at..at + 16]);
    u128::from_be_bytes(a)
}

pub fn set_u128(b: &mut [u8], at: usize, v: u128) {
    b[at..at + 16].copy_from_slice(&v.to_be_bytes());
}

#[cfg(test)]
pub mod testutil;
