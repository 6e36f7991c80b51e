//! Packet builders and checksum verifiers for unit tests (etherparse builds
//! the packets and recomputes checksums independently of our code).

use super::checksum;
use etherparse::{IpHeaders, PacketBuilder, PacketBuilderStep, TcpHeaderSlice, UdpHeaderSlice};
use std::net::{Ipv4Addr, Ipv6Addr};

pub fn a(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

/// An IPv6 address as the crate holds it: a host-order `u128`.
pub fn a6(s: &str) -> u128 {
    u128::from(s.parse::<Ipv6Addr>().unwrap())
}

fn o6(s: &str) -> [u8; 16] {
    a6(s).to_be_bytes()
}

/// An IPv6 TCP segment (etherparse), sequence numbers as [`tcp`]'s.
pub fn tcp6(src: &str, dst: &str, sport: u16, dport: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
    let ip = PacketBuilder::ipv6(o6(src), o6(dst), 64);
    tcp_over(ip, sport, dport, flags, payload)
}

pub fn udp6(src: &str, dst: &str, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    udp_over(
        PacketBuilder::ipv6(o6(src), o6(dst), 64),
        sport,
        dport,
        payload,
    )
}

pub fn echo_request6(src: &str, dst: &str, id: u16, seq: u16) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ipv6(o6(src), o6(dst), 64)
        .icmpv6_echo_request(id, seq)
        .write(&mut v, b"ping-payload")
        .unwrap();
    v
}

/// An ICMPv6 error from `src` to `dst` quoting all of `about`.
pub fn icmp6_error(src: &str, dst: &str, ty: u8, code: u8, about: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ipv6(o6(src), o6(dst), 64)
        .icmpv6_raw(ty, code, [0; 4])
        .write(&mut v, about)
        .unwrap();
    v
}

/// `p` (an IPv6 packet without extension headers) with extension headers
/// inserted after the fixed header: each `(kind, length in bytes)` (a
/// multiple of 8; AH a multiple of 4, at least 8), the next-header chain
/// and payload length fixed. Option areas are Pad1 bytes; a fragment
/// header has offset 0, no M flag and identification 0.
pub fn with_exts(p: &[u8], exts: &[(u8, usize)]) -> Vec<u8> {
    let upper = p[6];
    let mut out = p[..40].to_vec();
    out[6] = exts.first().map_or(upper, |e| e.0);
    for (i, &(kind, len)) in exts.iter().enumerate() {
        let mut h = vec![0u8; len];
        h[0] = exts.get(i + 1).map_or(upper, |e| e.0);
        h[1] = match kind {
            44 => 0,
            51 => (len / 4 - 2) as u8,
            _ => (len / 8 - 1) as u8,
        };
        out.extend(h);
    }
    out.extend_from_slice(&p[40..]);
    let plen = (out.len() - 40) as u16;
    out[4..6].copy_from_slice(&plen.to_be_bytes());
    out
}

/// Asserts an IPv6 packet's TCP, UDP or ICMPv6 checksum with etherparse
/// (which walks the extension headers itself).
pub fn assert_checksums6(p: &[u8]) {
    use etherparse::{NetSlice, SlicedPacket, TransportSlice};
    let s = SlicedPacket::from_ip(p).unwrap();
    let Some(NetSlice::Ipv6(ip)) = &s.net else {
        panic!("not IPv6")
    };
    let (src, dst) = (
        ip.header().source_addr().octets(),
        ip.header().destination_addr().octets(),
    );
    match s.transport.as_ref().expect("a transport header") {
        TransportSlice::Tcp(t) => {
            assert_eq!(t.checksum(), t.calc_checksum_ipv6(src, dst).unwrap())
        }
        TransportSlice::Udp(u) => {
            let want = u
                .to_header()
                .calc_checksum_ipv6_raw(src, dst, u.payload())
                .unwrap();
            assert_eq!(u.checksum(), want, "UDP checksum");
        }
        TransportSlice::Icmpv6(i) => assert!(i.is_checksum_valid(src, dst), "ICMPv6 checksum"),
        other => panic!("unexpected transport {other:?}"),
    }
}

/// A TCP segment with the given flag byte (FIN..URG) and payload.
pub fn tcp(src: &str, dst: &str, sport: u16, dport: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
    let ip = PacketBuilder::ipv4(a(src).octets(), a(dst).octets(), 64);
    tcp_over(ip, sport, dport, flags, payload)
}

/// The TCP segment of [`tcp`] and [`tcp6`] over the IP header `ip`.
fn tcp_over(
    ip: PacketBuilderStep<IpHeaders>,
    sport: u16,
    dport: u16,
    flags: u8,
    payload: &[u8],
) -> Vec<u8> {
    use super::tcp::flags as f;
    // Sequence numbers conntrack's window tracking accepts without knowing
    // the flow's history: the side with the higher port is the client (ISN
    // 999), the other the server (ISN 1999); a SYN carries the ISN, every
    // other segment ISN + 1, and an ACK acknowledges the peer's SYN.
    let (isn, peer) = if sport >= dport {
        (999u32, 1999u32)
    } else {
        (1999, 999)
    };
    let seq = if flags & f::SYN != 0 { isn } else { isn + 1 };
    let mut b = ip.tcp(sport, dport, seq, 64240);
    if flags & f::SYN != 0 {
        b = b.syn();
    }
    if flags & f::ACK != 0 {
        b = b.ack(peer + 1);
    }
    if flags & f::FIN != 0 {
        b = b.fin();
    }
    if flags & f::RST != 0 {
        b = b.rst();
    }
    if flags & f::PSH != 0 {
        b = b.psh();
    }
    let mut v = Vec::new();
    b.write(&mut v, payload).unwrap();
    v
}

fn udp_over(ip: PacketBuilderStep<IpHeaders>, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    ip.udp(sport, dport).write(&mut v, payload).unwrap();
    v
}

pub fn udp(src: &str, dst: &str, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let ip = PacketBuilder::ipv4(a(src).octets(), a(dst).octets(), 64);
    udp_over(ip, sport, dport, payload)
}

pub fn echo_request(src: &str, dst: &str, id: u16, seq: u16) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ipv4(a(src).octets(), a(dst).octets(), 64)
        .icmpv4_echo_request(id, seq)
        .write(&mut v, b"ping-payload")
        .unwrap();
    v
}

pub fn echo_reply(src: &str, dst: &str, id: u16, seq: u16) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ipv4(a(src).octets(), a(dst).octets(), 64)
        .icmpv4_echo_reply(id, seq)
        .write(&mut v, b"ping-payload")
        .unwrap();
    v
}

/// An ICMP error from `src` to `dst` quoting the first 28 bytes (IP header +
/// 8 bytes) of `about`, or all of it with `full`.
pub fn icmp_error(src: &str, dst: &str, ty: u8, code: u8, about: &[u8], full: bool) -> Vec<u8> {
    let n = if full {
        about.len()
    } else {
        28.min(about.len())
    };
    let mut v = Vec::new();
    PacketBuilder::ipv4(a(src).octets(), a(dst).octets(), 64)
        .icmpv4_raw(ty, code, [0; 4])
        .write(&mut v, &about[..n])
        .unwrap();
    v
}

/// Asserts the IPv4 header checksum and the L4 checksum are right (TCP/UDP
/// via etherparse; ICMP by the RFC 1071 property). A UDP checksum of 0 is
/// accepted as "none".
pub fn assert_checksums(p: &[u8]) {
    let (ip, rest) = etherparse::Ipv4Header::from_slice(p).unwrap();
    assert_eq!(
        ip.header_checksum,
        ip.calc_header_checksum(),
        "IPv4 header checksum"
    );
    let l4 = &rest[..(ip.total_len as usize - ip.header_len())];
    match ip.protocol.0 {
        6 => {
            let t = TcpHeaderSlice::from_slice(l4).unwrap();
            let payload = &l4[t.slice().len()..];
            let want = t
                .calc_checksum_ipv4_raw(ip.source, ip.destination, payload)
                .unwrap();
            assert_eq!(t.checksum(), want, "TCP checksum");
        }
        17 => {
            let u = UdpHeaderSlice::from_slice(l4).unwrap();
            if u.checksum() != 0 {
                let want = u
                    .to_header()
                    .calc_checksum_ipv4_raw(ip.source, ip.destination, &l4[8..])
                    .unwrap();
                assert_eq!(u.checksum(), want, "UDP checksum");
            }
        }
        1 => assert_eq!(
            checksum::fold(checksum::sum(l4, 0)),
            0xffff,
            "ICMP checksum"
        ),
        _ => {}
    }
}

fn l4_csum_at(proto: u8) -> usize {
    if proto == 6 {
        16
    } else {
        6
    }
}

/// Turns a complete TCP/UDP packet into its CHECKSUM_PARTIAL form: the L4
/// field holds the folded pseudo-header sum (what the kernel hands a TUN
/// reader with NEEDS_CSUM).
pub fn to_partial(p: &mut [u8]) {
    let hl = ((p[0] & 0xf) as usize) * 4;
    let total = u16::from_be_bytes([p[2], p[3]]) as usize;
    let src = Ipv4Addr::new(p[12], p[13], p[14], p[15]);
    let dst = Ipv4Addr::new(p[16], p[17], p[18], p[19]);
    let s = checksum::fold(checksum::pseudo_header_sum(
        src,
        dst,
        p[9],
        (total - hl) as u16,
    ));
    let at = hl + l4_csum_at(p[9]);
    p[at..at + 2].copy_from_slice(&s.to_be_bytes());
}

/// What the receiver of a partial packet does: sum from the L4 header on
/// (the field holding the pseudo-header sum) and store the complement.
pub fn finish_partial(p: &mut [u8]) {
    let hl = ((p[0] & 0xf) as usize) * 4;
    let total = u16::from_be_bytes([p[2], p[3]]) as usize;
    let at = hl + l4_csum_at(p[9]);
    let c = !checksum::fold(checksum::sum(&p[hl..total], 0));
    p[at..at + 2].copy_from_slice(&c.to_be_bytes());
}

// Real packets captured from Linux 6.18 on the loopback of a scratch network
// namespace (AF_PACKET socket): `curl http://127.0.0.1:80/` with nothing
// listening, and a UDP datagram "hello" to 127.0.0.1:9. On loopback the
// kernel leaves TCP/UDP checksums CHECKSUM_PARTIAL: the field holds the
// pseudo-header sum (0xfe30 = 7f00+0001+7f00+0001+6+40), exactly what a TUN
// reader with IFF_VNET_HDR sees with NEEDS_CSUM. The RST and the ICMP error
// are kernel-generated with complete checksums.

pub const LO_TCP_SYN_PARTIAL: [u8; 60] = [
    0x45, 0x00, 0x00, 0x3c, 0x16, 0xe8, 0x40, 0x00, 0x40, 0x06, 0x25, 0xd2, 0x7f, 0x00, 0x00, 0x01,
    0x7f, 0x00, 0x00, 0x01, 0xb1, 0x70, 0x00, 0x50, 0xaf, 0x89, 0x1d, 0xf8, 0x00, 0x00, 0x00, 0x00,
    0xa0, 0x02, 0xff, 0xd7, 0xfe, 0x30, 0x00, 0x00, 0x02, 0x04, 0xff, 0xd7, 0x04, 0x02, 0x08, 0x0a,
    0x24, 0x07, 0x05, 0xb1, 0x00, 0x00, 0x00, 0x00, 0x01, 0x03, 0x03, 0x0a,
];

pub const LO_TCP_RST_ACK: [u8; 40] = [
    0x45, 0x00, 0x00, 0x28, 0x00, 0x00, 0x40, 0x00, 0x40, 0x06, 0x3c, 0xce, 0x7f, 0x00, 0x00, 0x01,
    0x7f, 0x00, 0x00, 0x01, 0x00, 0x50, 0xb1, 0x70, 0x00, 0x00, 0x00, 0x00, 0xaf, 0x89, 0x1d, 0xf9,
    0x50, 0x14, 0x00, 0x00, 0x32, 0x8b, 0x00, 0x00,
];

pub const LO_UDP_PARTIAL: [u8; 33] = [
    0x45, 0x00, 0x00, 0x21, 0x7f, 0xfe, 0x40, 0x00, 0x40, 0x11, 0xbc, 0xcb, 0x7f, 0x00, 0x00, 0x01,
    0x7f, 0x00, 0x00, 0x01, 0xa9, 0x44, 0x00, 0x09, 0x00, 0x0d, 0xfe, 0x20, 0x68, 0x65, 0x6c, 0x6c,
    0x6f,
];

pub const LO_ICMP_PORT_UNREACH: [u8; 61] = [
    0x45, 0xc0, 0x00, 0x3d, 0xb0, 0x18, 0x00, 0x00, 0x40, 0x01, 0xcb, 0xe5, 0x7f, 0x00, 0x00, 0x01,
    0x7f, 0x00, 0x00, 0x01, 0x03, 0x03, 0x11, 0xaf, 0x00, 0x00, 0x00, 0x00, 0x45, 0x00, 0x00, 0x21,
    0x7f, 0xfe, 0x40, 0x00, 0x40, 0x11, 0xbc, 0xcb, 0x7f, 0x00, 0x00, 0x01, 0x7f, 0x00, 0x00, 0x01,
    0xa9, 0x44, 0x00, 0x09, 0x00, 0x0d, 0xfe, 0x20, 0x68, 0x65, 0x6c, 0x6c, 0x6f,
];
