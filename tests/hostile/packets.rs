//! Builders for the hostile packets (and the pipeline fuzzer's seeds,
//! `router/tests/fuzz_pipeline.rs`): plain byte vectors, checksums right
//! unless a kind breaks them on purpose.
#![allow(dead_code)]

use std::net::Ipv4Addr;
use tungate::wire::vnet::VnetHdr;

pub fn csum(data: &[u8], init: u32) -> u16 {
    let mut s = init as u64;
    for c in data.chunks(2) {
        s += u64::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// The IPv4 header checksum; nothing on a frame too short for a header.
pub fn fix_ip_csum(p: &mut [u8]) {
    if p.len() < 20 {
        return;
    }
    let ihl = (usize::from(p[0] & 0x0f) * 4).clamp(20, p.len());
    p[10] = 0;
    p[11] = 0;
    let c = csum(&p[..ihl], 0);
    p[10..12].copy_from_slice(&c.to_be_bytes());
}

fn pseudo(p: &[u8], proto: u8, len: usize) -> u32 {
    let mut s = 0u32;
    for i in (12..20).step_by(2) {
        s += u32::from(u16::from_be_bytes([p[i], p[i + 1]]));
    }
    s + u32::from(proto) + len as u32
}

/// The TCP, UDP or ICMP checksum over the IP payload (up to the total
/// length); nothing where the frame has no room for the field.
pub fn fix_l4_csum(p: &mut [u8]) {
    if p.len() < 20 {
        return;
    }
    let ihl = usize::from(p[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([p[2], p[3]])).min(p.len());
    if ihl < 20 || total < ihl {
        return;
    }
    let (at, ps) = match p[9] {
        6 => (16, true),
        17 => (6, true),
        1 => (2, false),
        _ => return,
    };
    if total < ihl + at + 2 {
        return;
    }
    p[ihl + at] = 0;
    p[ihl + at + 1] = 0;
    let init = if ps { pseudo(p, p[9], total - ihl) } else { 0 };
    let c = csum(&p[ihl..total], init);
    p[ihl + at..ihl + at + 2].copy_from_slice(&c.to_be_bytes());
}

pub fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, l4: &[u8]) -> Vec<u8> {
    ipv4_opts(src, dst, proto, &[], l4)
}

/// IPv4 with header options `opts` (padded to 4 bytes), DF clear, TTL 64.
pub fn ipv4_opts(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, opts: &[u8], l4: &[u8]) -> Vec<u8> {
    let mut o = opts.to_vec();
    while !o.len().is_multiple_of(4) {
        o.push(0);
    }
    let ihl = 20 + o.len();
    let total = ihl + l4.len();
    let mut p = vec![0u8; total];
    p[0] = 0x40 | (ihl / 4) as u8;
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p[4..6].copy_from_slice(&0x4242u16.to_be_bytes());
    p[8] = 64;
    p[9] = proto;
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&dst.octets());
    p[20..ihl].copy_from_slice(&o);
    p[ihl..].copy_from_slice(l4);
    fix_l4_csum(&mut p);
    fix_ip_csum(&mut p);
    p
}

pub fn tcp_l4(sport: u16, dport: u16, flags: u8, data: &[u8]) -> Vec<u8> {
    let mut l4 = vec![0u8; 20];
    l4[0..2].copy_from_slice(&sport.to_be_bytes());
    l4[2..4].copy_from_slice(&dport.to_be_bytes());
    l4[4..8].copy_from_slice(&0x0100_0000u32.to_be_bytes());
    if flags & 0x10 != 0 {
        l4[8..12].copy_from_slice(&0x0200_0000u32.to_be_bytes());
    }
    l4[12] = 0x50;
    l4[13] = flags;
    l4[14..16].copy_from_slice(&64240u16.to_be_bytes());
    l4.extend_from_slice(data);
    l4
}

pub fn tcp(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, flags: u8) -> Vec<u8> {
    ipv4(src, dst, 6, &tcp_l4(sport, dport, flags, &[]))
}

pub fn udp_l4(sport: u16, dport: u16, data: &[u8]) -> Vec<u8> {
    let mut l4 = vec![0u8; 8];
    l4[0..2].copy_from_slice(&sport.to_be_bytes());
    l4[2..4].copy_from_slice(&dport.to_be_bytes());
    l4[4..6].copy_from_slice(&((8 + data.len()) as u16).to_be_bytes());
    l4.extend_from_slice(data);
    l4
}

pub fn udp(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, data: &[u8]) -> Vec<u8> {
    ipv4(src, dst, 17, &udp_l4(sport, dport, data))
}

pub fn icmp(src: Ipv4Addr, dst: Ipv4Addr, ty: u8, code: u8, rest: &[u8]) -> Vec<u8> {
    let mut l4 = vec![ty, code, 0, 0];
    l4.extend_from_slice(rest);
    ipv4(src, dst, 1, &l4)
}

pub fn echo(src: Ipv4Addr, dst: Ipv4Addr, id: u16, seq: u16) -> Vec<u8> {
    let mut rest = id.to_be_bytes().to_vec();
    rest.extend_from_slice(&seq.to_be_bytes());
    rest.extend_from_slice(b"hostile-echo");
    icmp(src, dst, 8, 0, &rest)
}

/// An ICMP error of `ty`/`code` quoting `about` (its header + 8 bytes).
pub fn icmp_error(src: Ipv4Addr, dst: Ipv4Addr, ty: u8, code: u8, about: &[u8]) -> Vec<u8> {
    let mut rest = vec![0u8; 4];
    let ihl = usize::from(about.first().map_or(5, |b| b & 0x0f)) * 4;
    rest.extend_from_slice(&about[..(ihl + 8).min(about.len())]);
    icmp(src, dst, ty, code, &rest)
}

/// Fragment of `whole` (an unfragmented packet with a 20-byte header):
/// payload bytes `from..to`, MF as given.
pub fn fragment(whole: &[u8], from: usize, to: usize, mf: bool) -> Vec<u8> {
    let payload = &whole[20..];
    let mut p = whole[..20].to_vec();
    p.extend_from_slice(&payload[from..to]);
    let total = p.len() as u16;
    p[2..4].copy_from_slice(&total.to_be_bytes());
    let off = (from / 8) as u16 | if mf { 0x2000 } else { 0 };
    p[6..8].copy_from_slice(&off.to_be_bytes());
    fix_ip_csum(&mut p);
    p
}

/// A TSO super-packet of `data` as the TUN hands it over (DF set, as TCP
/// sends), with its vnet header: segments of 1448 bytes, the checksum to
/// complete from byte 20 + 16.
pub fn tso(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    flags: u8,
    data: &[u8],
) -> (VnetHdr, Vec<u8>) {
    let mut p = ipv4(src, dst, 6, &tcp_l4(sport, dport, flags, data));
    p[6] = 0x40;
    fix_ip_csum(&mut p);
    let hdr = VnetHdr {
        flags: 1,
        gso_type: 1,
        hdr_len: 40,
        gso_size: 1448,
        csum_start: 20,
        csum_offset: 16,
    };
    (hdr, p)
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
