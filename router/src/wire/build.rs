//! Builders for the packets the gateway itself originates: ICMP errors
//! (RFC 792, RFC 1812 section 4.3.2), echo replies and TCP resets (the
//! REJECT target, as Linux `nf_send_reset` / `nf_send_unreach`).
//!
//! Each writes a complete IPv4 packet (checksums filled) into `out` (cleared
//! first) and returns `false` when the rules say no packet may be sent.

use super::icmp::{self, types};
use super::ipv4::Ipv4Packet;
use super::tcp::{self, flags as tf, TcpPacket};
use super::{checksum, set_u16};
use std::net::Ipv4Addr;

/// TTL of originated packets (Linux `ip_default_ttl`).
pub const DEFAULT_TTL: u8 = 64;
/// RFC 1812 section 4.3.2.3: an ICMP error holds as much of the original as
/// fits in 576 bytes.
pub const ICMP_ERROR_MAX: usize = 576;

/// How the kernel fills the header of a packet it originates: ICMP errors
/// and echo replies come from the ICMP socket (IP_PMTUDISC_DONT: no DF, an
/// identification from `ip_select_ident`, as the captured
/// `LO_ICMP_PORT_UNREACH` shows); resets from `nf_reject_iphdr_put` (DF,
/// identification 0, as `LO_TCP_RST_ACK`).
#[derive(Clone, Copy)]
struct Origin {
    id: u16,
    df: bool,
}

fn ip_header(out: &mut Vec<u8>, src: Ipv4Addr, dst: Ipv4Addr, proto: u8, tos: u8, o: Origin) {
    let id = o.id.to_be_bytes();
    let df = if o.df { 0x40 } else { 0 };
    out.extend_from_slice(&[
        0x45,
        tos,
        0,
        0,
        id[0],
        id[1],
        df,
        0,
        DEFAULT_TTL,
        proto,
        0,
        0,
    ]);
    out.extend_from_slice(&src.octets());
    out.extend_from_slice(&dst.octets());
}

fn finish_ip(out: &mut [u8]) {
    let len = out.len() as u16;
    let mut ip = Ipv4Packet::new_unchecked(&mut out[..]);
    ip.set_total_len(len);
    ip.fill_checksum();
}

fn special(a: Ipv4Addr) -> bool {
    a.is_broadcast() || a.is_multicast() || a.is_unspecified()
}

/// An ICMP error of `ty`/`code` from `src` about `orig` (RFC 1812 4.3.2.7:
/// never about an ICMP error, a non-first fragment, or a packet from or to a
/// broadcast/multicast address). `rest` is bytes 4..8 (the next-hop MTU for
/// fragmentation-needed, the pointer for parameter-problem, else 0). `id` is
/// the IP identification to use.
pub fn icmp_error(
    orig: &[u8],
    src: Ipv4Addr,
    (ty, code): (u8, u8),
    rest: u32,
    id: u16,
    out: &mut Vec<u8>,
) -> bool {
    out.clear();
    let Ok(ip) = Ipv4Packet::new_checked(orig) else {
        return false;
    };
    if ip.frag_offset() != 0 || special(ip.src_addr()) || special(ip.dst_addr()) {
        return false;
    }
    let hl = ip.header_len();
    if ip.protocol_raw() == 1 {
        let p = ip.payload();
        if p.is_empty() || icmp::is_error(p[0]) {
            return false;
        }
    }
    let quote = (ip.total_len() as usize).min(ICMP_ERROR_MAX - 28).max(hl);
    // Precedence bits kept, as Linux icmp_send (TOS & IPTOS_TOS_MASK | 0xc0).
    let o = Origin { id, df: false };
    ip_header(out, src, ip.src_addr(), 1, (ip.tos() & 0x1e) | 0xc0, o);
    out.extend_from_slice(&[ty, code, 0, 0]);
    out.extend_from_slice(&rest.to_be_bytes());
    out.extend_from_slice(&orig[..quote.min(orig.len())]);
    let c = checksum::checksum(&out[20..]);
    set_u16(out, 22, c);
    finish_ip(out);
    true
}

/// The echo reply to an echo request addressed to the gateway (same id,
/// sequence and data; source = the address that was pinged). `id` is the IP
/// identification to use.
pub fn echo_reply(req: &[u8], id: u16, out: &mut Vec<u8>) -> bool {
    out.clear();
    let Ok(ip) = Ipv4Packet::new_checked(req) else {
        return false;
    };
    let p = ip.payload();
    if ip.protocol_raw() != 1 || ip.is_fragment() || p.len() < 8 || p[0] != types::ECHO_REQUEST {
        return false;
    }
    let o = Origin { id, df: false };
    ip_header(out, ip.dst_addr(), ip.src_addr(), 1, ip.tos(), o);
    out.extend_from_slice(p);
    out[20] = types::ECHO_REPLY;
    out[21] = 0;
    set_u16(out, 22, 0);
    let c = checksum::checksum(&out[20..]);
    set_u16(out, 22, c);
    finish_ip(out);
    true
}

/// The RST answering `orig` (REJECT `--reject-with tcp-reset`, Linux
/// `nf_send_reset`): none for an RST or a fragment; if `orig` carries ACK
/// the reset uses its ack number as sequence, else it ACKs everything
/// `orig` occupied (SYN and FIN count one).
pub fn tcp_reset(orig: &[u8], out: &mut Vec<u8>) -> bool {
    out.clear();
    let Ok(ip) = Ipv4Packet::new_checked(orig) else {
        return false;
    };
    if ip.protocol_raw() != 6 || ip.is_fragment() || special(ip.dst_addr()) {
        return false;
    }
    let Ok(t) = TcpPacket::new_checked(ip.payload()) else {
        return false;
    };
    if t.flags() & tf::RST != 0 {
        return false;
    }
    let o = Origin { id: 0, df: true };
    ip_header(out, ip.dst_addr(), ip.src_addr(), 6, 0, o);
    out.extend_from_slice(&reset_segment(&t));
    let ps = checksum::pseudo_header_sum(ip.dst_addr(), ip.src_addr(), 6, tcp::HEADER_LEN as u16);
    let c = !checksum::fold(checksum::sum(&out[20..], ps));
    set_u16(out, 20 + 16, c);
    finish_ip(out);
    true
}

/// The TCP header of the RST answering segment `t` (checksum 0): if `t`
/// carries ACK the reset uses its ack number as sequence, else it ACKs
/// everything `t` occupied (SYN and FIN count one). Both families.
pub(super) fn reset_segment(t: &TcpPacket<&[u8]>) -> [u8; tcp::HEADER_LEN] {
    let (seq, ack, fl) = if t.flags() & tf::ACK != 0 {
        (t.ack_number(), 0, tf::RST)
    } else {
        let len = t.payload().len() as u32
            + (t.flags() & tf::SYN != 0) as u32
            + (t.flags() & tf::FIN != 0) as u32;
        (0, t.seq_number().wrapping_add(len), tf::RST | tf::ACK)
    };
    let mut h = [0u8; tcp::HEADER_LEN];
    set_u16(&mut h, 0, t.dst_port());
    set_u16(&mut h, 2, t.src_port());
    h[4..8].copy_from_slice(&seq.to_be_bytes());
    h[8..12].copy_from_slice(&ack.to_be_bytes());
    h[12] = 5 << 4;
    h[13] = fl;
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::testutil::{self, a, assert_checksums};

    /// Byte for byte what the kernel sent on loopback (the capture in
    /// testutil): the port unreachable about a UDP datagram, and the RST
    /// answering a SYN to a closed port.
    #[test]
    fn originated_packets_equal_the_kernel_captures() {
        let mut out = Vec::new();
        let id = u16::from_be_bytes([
            testutil::LO_ICMP_PORT_UNREACH[4],
            testutil::LO_ICMP_PORT_UNREACH[5],
        ]);
        assert!(icmp_error(
            &testutil::LO_UDP_PARTIAL,
            a("127.0.0.1"),
            (3, 3),
            0,
            id,
            &mut out
        ));
        assert_eq!(out, testutil::LO_ICMP_PORT_UNREACH);
        assert!(tcp_reset(&testutil::LO_TCP_SYN_PARTIAL, &mut out));
        // The RST's checksum covers the same bytes; compare all but it.
        assert_eq!(out[..36], testutil::LO_TCP_RST_ACK[..36]);
        assert_checksums(&out);
    }

    #[test]
    fn icmp_errors_quote_and_refuse_as_rfc1812() {
        let big = testutil::udp("10.0.0.1", "10.0.0.2", 1000, 53, &[7u8; 1000]);
        let mut out = Vec::new();
        assert!(icmp_error(&big, a("10.0.0.254"), (11, 0), 0, 7, &mut out));
        assert_eq!(out.len(), ICMP_ERROR_MAX);
        assert_checksums(&out);
        assert_eq!(&out[28..48], &big[..20]);
        let ip = Ipv4Packet::new_checked(&out[..]).unwrap();
        assert_eq!(
            (ip.src_addr(), ip.dst_addr(), ip.ttl()),
            (a("10.0.0.254"), a("10.0.0.1"), 64)
        );
        assert!(matches!(
            crate::conntrack::classify(&out).unwrap(),
            crate::conntrack::PacketKey::IcmpError { .. }
        ));
        // Fragmentation needed carries the MTU in bytes 6..8.
        assert!(icmp_error(&big, a("10.0.0.254"), (3, 4), 1400, 7, &mut out));
        assert_eq!(&out[24..28], &[0, 0, 0x05, 0x78]);
        // Never about an ICMP error, to a broadcast, or about a later fragment.
        let err = out.clone();
        assert!(!icmp_error(&err, a("10.0.0.254"), (3, 3), 0, 7, &mut out));
        let bc = testutil::udp("10.0.0.1", "255.255.255.255", 1, 2, b"");
        assert!(!icmp_error(&bc, a("10.0.0.254"), (3, 3), 0, 7, &mut out));
        let mut frag = big.clone();
        frag[6] = 0;
        frag[7] = 10;
        assert!(!icmp_error(&frag, a("10.0.0.254"), (3, 3), 0, 7, &mut out));
        // A small packet is quoted whole.
        let small = testutil::echo_request("10.0.0.1", "10.9.9.9", 1, 1);
        assert!(icmp_error(&small, a("10.0.0.254"), (3, 0), 0, 7, &mut out));
        assert_eq!(out.len(), 28 + small.len());
    }

    #[test]
    fn echo_reply_and_tcp_reset() {
        let mut out = Vec::new();
        let rq = testutil::echo_request("10.0.0.1", "10.0.0.254", 99, 5);
        assert!(echo_reply(&rq, 7, &mut out));
        assert_checksums(&out);
        assert_eq!(out[20], 0);
        assert_eq!(&out[24..], &rq[24..]);
        assert!(!echo_reply(&out.clone(), 7, &mut out));

        let syn = testutil::tcp("10.0.0.1", "10.0.0.254", 40000, 22, tf::SYN, b"");
        assert!(tcp_reset(&syn, &mut out));
        assert_checksums(&out);
        let t = TcpPacket::new_checked(&out[20..]).unwrap();
        assert_eq!(
            (t.src_port(), t.dst_port(), t.flags()),
            (22, 40000, tf::RST | tf::ACK)
        );
        let s = TcpPacket::new_checked(&syn[20..]).unwrap();
        assert_eq!(t.ack_number(), s.seq_number().wrapping_add(1));
        let ack = testutil::tcp("10.0.0.1", "10.0.0.254", 40000, 22, tf::ACK, b"data");
        assert!(tcp_reset(&ack, &mut out));
        let t = TcpPacket::new_checked(&out[20..]).unwrap();
        let s = TcpPacket::new_checked(&ack[20..]).unwrap();
        assert_eq!((t.flags(), t.seq_number()), (tf::RST, s.ack_number()));
        let rst = testutil::tcp("10.0.0.1", "10.0.0.254", 40000, 22, tf::RST, b"");
        assert!(!tcp_reset(&rst, &mut out));
    }
}
