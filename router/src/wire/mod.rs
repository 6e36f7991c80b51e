//! Zero-copy packet views and checksums.
//!
//! Header types wrap a byte buffer (`Ipv4Packet<T: AsRef<[u8]>>`, smoltcp style);
//! untrusted input goes through `new_checked` once, after which getters cannot panic.
#![forbid(unsafe_code)]

pub mod vnet;
