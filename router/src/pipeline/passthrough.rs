//! `Passthrough`: the stand-in [`Processor`] with no rules, used until the
//! netfilter pipeline is plugged in (and by the dataplane's own tests).
//!
//! It validates the IPv4 header, answers ICMP echo requests addressed to the
//! gateway, routes by longest-prefix match, decrements the TTL with an
//! incremental header-checksum update (RFC 1624) and forwards. The L4 checksum
//! and the vnet header are untouched: a partial checksum stays partial and the
//! receiver finishes it.
#![forbid(unsafe_code)]

use std::net::Ipv4Addr;

use super::{DropReason, Emit, IfIndex, PacketCtx, Processor, Verdict};
use crate::route::{RouteResult, RouteTable};
use crate::wire::vnet::VnetHdr;

const PROTO_ICMP: u8 = 1;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
const TCP_FIN: u8 = 0x01;
const TCP_SYN: u8 = 0x02;
const TCP_RST: u8 = 0x04;
const TCP_ACK: u8 = 0x10;
const ICMP_ECHO_REPLY: u8 = 0;
const ICMP_DEST_UNREACH: u8 = 3;
const ICMP_ECHO_REQUEST: u8 = 8;
const ICMP_TIME_EXCEEDED: u8 = 11;

/// Accept-all forwarder over a [`RouteTable`].
#[derive(Debug, Clone)]
pub struct Passthrough {
    routes: RouteTable,
    /// Egress MTU by interface index (empty: no MTU check).
    mtus: Vec<u16>,
}

impl Passthrough {
    pub fn new(routes: RouteTable) -> Self {
        Passthrough {
            routes,
            mtus: Vec::new(),
        }
    }

    /// With the MTU of each interface (by `IfIndex`): a non-GSO packet with
    /// DF set and larger than the egress MTU gets an ICMP fragmentation
    /// needed (RFC 1191) and is dropped; without DF it is forwarded as is
    /// (no fragmentation in the stand-in).
    pub fn with_mtus(routes: RouteTable, mtus: Vec<u16>) -> Self {
        Passthrough { routes, mtus }
    }
}

/// One's-complement sum of `data` as big-endian 16-bit words (RFC 1071).
fn sum16(data: &[u8], mut acc: u32) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for w in &mut chunks {
        acc += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [b] = chunks.remainder() {
        acc += u32::from(*b) << 8;
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// Internet checksum of `data` (the value to store in the checksum field).
fn checksum(data: &[u8]) -> u16 {
    fold(sum16(data, 0))
}

/// RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m').
fn csum_update(hc: u16, old: u16, new: u16) -> u16 {
    fold(u32::from(!hc) + u32::from(!old) + u32::from(new))
}

/// Writes an IPv4 header (no options) of `total` bytes into `b[..20]`.
fn write_ip_header(b: &mut [u8], total: usize, proto: u8, src: Ipv4Addr, dst: Ipv4Addr) {
    b[0] = 0x45;
    b[1] = 0;
    b[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    b[4..8].copy_from_slice(&[0, 0, 0x40, 0]); // id 0, DF
    b[8] = 64;
    b[9] = proto;
    b[10..12].fill(0);
    b[12..16].copy_from_slice(&src.octets());
    b[16..20].copy_from_slice(&dst.octets());
    let c = checksum(&b[..20]);
    b[10..12].copy_from_slice(&c.to_be_bytes());
}

impl Passthrough {
    /// Destination unreachable, fragmentation needed, with the next-hop MTU
    /// in the second half of the unused word (RFC 1191 section 4).
    fn icmp_frag_needed(
        &self,
        ctx: &PacketCtx,
        pkt: &[u8],
        ihl: usize,
        mtu: u16,
        out: &mut dyn Emit,
    ) {
        let mut cap = EmitCapture::default();
        self.icmp_error(ctx, pkt, ihl, (ICMP_DEST_UNREACH, 4), None, &mut cap);
        if let Some((egress, mut b, n)) = cap.0 {
            b[26..28].copy_from_slice(&mtu.to_be_bytes());
            b[22..24].fill(0);
            let c = checksum(&b[20..n]);
            b[22..24].copy_from_slice(&c.to_be_bytes());
            out.emit(egress, &b[..n]);
        }
    }

    /// RFC 792 error (time exceeded / unreachable) quoting the header + 8
    /// bytes, from `from` (default: the gateway's address on the ingress
    /// interface) back to the packet's source.
    fn icmp_error(
        &self,
        ctx: &PacketCtx,
        pkt: &[u8],
        ihl: usize,
        (ty, code): (u8, u8),
        from: Option<Ipv4Addr>,
        out: &mut dyn Emit,
    ) {
        let src = Ipv4Addr::new(pkt[12], pkt[13], pkt[14], pkt[15]);
        // Never answer an ICMP error with an error (RFC 1122 3.2.2).
        if pkt[9] == PROTO_ICMP && pkt.get(ihl).is_some_and(|&t| ![0, 8].contains(&t)) {
            return;
        }
        let Some(me) = from.or_else(|| self.routes.interface_address(ctx.ingress)) else {
            return;
        };
        let quote = &pkt[..(ihl + 8).min(pkt.len())];
        let mut b = [0u8; 20 + 8 + 60 + 8];
        let total = 28 + quote.len();
        write_ip_header(&mut b, total, PROTO_ICMP, me, src);
        b[20] = ty;
        b[21] = code;
        b[28..total].copy_from_slice(quote);
        let c = checksum(&b[20..total]);
        b[22..24].copy_from_slice(&c.to_be_bytes());
        out.emit(ctx.ingress, &b[..total]);
    }
}

/// Holds one small emitted packet on the stack (to patch it before sending).
#[derive(Default)]
struct EmitCapture(Option<(IfIndex, [u8; 128], usize)>);

impl Emit for EmitCapture {
    fn emit(&mut self, egress: IfIndex, packet: &[u8]) {
        if packet.len() <= 128 {
            let mut b = [0u8; 128];
            b[..packet.len()].copy_from_slice(packet);
            self.0 = Some((egress, b, packet.len()));
        }
    }
}

/// RST in answer to a TCP segment for a closed port (RFC 9293 3.10.7.1, as
/// the kernel's tcp_v4_send_reset): never in answer to a RST.
fn tcp_reset(ctx: &PacketCtx, pkt: &[u8], ihl: usize, out: &mut dyn Emit) {
    let Some(t) = pkt.get(ihl..ihl + 20) else {
        return;
    };
    let flags = t[13];
    if flags & TCP_RST != 0 {
        return;
    }
    let doff = usize::from(t[12] >> 4) * 4;
    let payload = pkt.len().saturating_sub(ihl + doff) as u32;
    let seq = u32::from_be_bytes([t[4], t[5], t[6], t[7]]);
    let ack = u32::from_be_bytes([t[8], t[9], t[10], t[11]]);
    let src = Ipv4Addr::new(pkt[16], pkt[17], pkt[18], pkt[19]);
    let dst = Ipv4Addr::new(pkt[12], pkt[13], pkt[14], pkt[15]);
    let mut b = [0u8; 40];
    write_ip_header(&mut b, 40, PROTO_TCP, src, dst);
    b[20..22].copy_from_slice(&t[2..4]);
    b[22..24].copy_from_slice(&t[0..2]);
    if flags & TCP_ACK != 0 {
        b[24..28].copy_from_slice(&ack.to_be_bytes());
        b[33] = TCP_RST;
    } else {
        let len = payload + u32::from(flags & TCP_SYN != 0) + u32::from(flags & TCP_FIN != 0);
        b[28..32].copy_from_slice(&seq.wrapping_add(len).to_be_bytes());
        b[33] = TCP_RST | TCP_ACK;
    }
    b[32] = 5 << 4;
    // Pseudo-header: addresses, protocol, TCP length (RFC 9293 3.1).
    let mut acc = sum16(&b[12..20], 0);
    acc += u32::from(PROTO_TCP) + 20;
    let c = fold(sum16(&b[20..40], acc));
    b[36..38].copy_from_slice(&c.to_be_bytes());
    out.emit(ctx.ingress, &b);
}

impl Processor for Passthrough {
    fn process(
        &self,
        ctx: &PacketCtx,
        packet: &mut [u8],
        vnet: &mut VnetHdr,
        out: &mut dyn Emit,
    ) -> Verdict {
        let Some(&first) = packet.first() else {
            return Verdict::Drop(DropReason::Malformed);
        };
        match first >> 4 {
            4 => {}
            6 => return Verdict::Drop(DropReason::Ipv6Unsupported),
            _ => return Verdict::Drop(DropReason::BadVersion),
        }
        let ihl = usize::from(first & 0x0f) * 4;
        if ihl < 20 || packet.len() < ihl {
            return Verdict::Drop(DropReason::Malformed);
        }
        let total = usize::from(u16::from_be_bytes([packet[2], packet[3]]));
        if total < ihl || total > packet.len() {
            return Verdict::Drop(DropReason::Malformed);
        }
        if checksum(&packet[..ihl]) != 0 {
            return Verdict::Drop(DropReason::BadIpChecksum);
        }
        if vnet.needs_csum()
            && usize::from(vnet.csum_start) + usize::from(vnet.csum_offset) + 2 > total
        {
            return Verdict::Drop(DropReason::BadVnetHdr);
        }
        let dst = Ipv4Addr::new(packet[16], packet[17], packet[18], packet[19]);
        let pkt = &mut packet[..total];
        match self.routes.lookup(dst) {
            RouteResult::Local(_) => {
                let is_frag = u16::from_be_bytes([pkt[6], pkt[7]]) & 0x3fff != 0;
                if pkt[9] == PROTO_ICMP
                    && !is_frag
                    && total >= ihl + 8
                    && pkt[ihl] == ICMP_ECHO_REQUEST
                    && pkt[ihl + 1] == 0
                {
                    // Echo reply in place: swap addresses, type 8 -> 0.
                    let (s, d) = pkt[12..20].split_at_mut(4);
                    s.swap_with_slice(d);
                    pkt[8] = 64;
                    pkt[10..12].fill(0);
                    let c = checksum(&pkt[..ihl]);
                    pkt[10..12].copy_from_slice(&c.to_be_bytes());
                    pkt[ihl] = ICMP_ECHO_REPLY;
                    pkt[ihl + 2..ihl + 4].fill(0);
                    let c = checksum(&pkt[ihl..]);
                    pkt[ihl + 2..ihl + 4].copy_from_slice(&c.to_be_bytes());
                    out.emit(ctx.ingress, pkt);
                    Verdict::Consumed
                } else {
                    // Nothing listens on the gateway: answer as the kernel
                    // does (RST for TCP, port unreachable for UDP).
                    if !is_frag {
                        match pkt[9] {
                            PROTO_TCP => tcp_reset(ctx, pkt, ihl, out),
                            PROTO_UDP => self.icmp_error(
                                ctx,
                                pkt,
                                ihl,
                                (ICMP_DEST_UNREACH, 3),
                                Some(dst),
                                out,
                            ),
                            _ => {}
                        }
                    }
                    Verdict::Drop(DropReason::LocalNoListener)
                }
            }
            RouteResult::Unreachable => {
                self.icmp_error(ctx, pkt, ihl, (ICMP_DEST_UNREACH, 0), None, out);
                Verdict::Drop(DropReason::NoRoute)
            }
            RouteResult::Forward(egress) => {
                let ttl = pkt[8];
                if ttl <= 1 {
                    self.icmp_error(ctx, pkt, ihl, (ICMP_TIME_EXCEEDED, 0), None, out);
                    return Verdict::Drop(DropReason::TtlExceeded);
                }
                let df = pkt[6] & 0x40 != 0;
                if let Some(&mtu) = self.mtus.get(usize::from(egress.0)) {
                    if df && !vnet.is_gso() && total > usize::from(mtu) {
                        self.icmp_frag_needed(ctx, pkt, ihl, mtu, out);
                        return Verdict::Drop(DropReason::FragNeeded);
                    }
                }
                let old = u16::from_be_bytes([ttl, pkt[9]]);
                pkt[8] = ttl - 1;
                let new = u16::from_be_bytes([ttl - 1, pkt[9]]);
                let hc = u16::from_be_bytes([pkt[10], pkt[11]]);
                pkt[10..12].copy_from_slice(&csum_update(hc, old, new).to_be_bytes());
                Verdict::Forward(egress)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Timestamp;
    use crate::pipeline::EmitVec;

    fn table() -> RouteTable {
        let mut t = RouteTable::new();
        t.add("10.1.0.0/24".parse().unwrap(), IfIndex(0));
        t.add("10.2.0.0/24".parse().unwrap(), IfIndex(1));
        t.add_local(Ipv4Addr::new(10, 1, 0, 1), IfIndex(0));
        t.add_local(Ipv4Addr::new(10, 2, 0, 1), IfIndex(1));
        t
    }

    fn ctx() -> PacketCtx {
        PacketCtx {
            ingress: IfIndex(0),
            worker: 0,
            now: Timestamp::from_secs(1),
        }
    }

    /// A UDP packet 10.1.0.2:1000 -> dst:2000 with 4 bytes payload.
    fn udp(dst: [u8; 4], ttl: u8) -> Vec<u8> {
        let mut p = vec![0u8; 32];
        write_ip_header(
            &mut p,
            32,
            17,
            Ipv4Addr::new(10, 1, 0, 2),
            Ipv4Addr::from(dst),
        );
        p[8] = ttl;
        p[10..12].fill(0);
        let c = checksum(&p[..20]);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        p[20..28].copy_from_slice(&[0x03, 0xe8, 0x07, 0xd0, 0, 12, 0, 0]);
        p[28..].copy_from_slice(b"ping");
        p
    }

    fn run(p: &mut [u8]) -> (Verdict, EmitVec) {
        let mut e = EmitVec::default();
        let v = Passthrough::new(table()).process(&ctx(), p, &mut VnetHdr::default(), &mut e);
        (v, e)
    }

    #[test]
    fn forwards_and_decrements_ttl_with_valid_checksum() {
        let mut p = udp([10, 2, 0, 2], 64);
        let (v, e) = run(&mut p);
        assert_eq!(v, Verdict::Forward(IfIndex(1)));
        assert!(e.0.is_empty());
        assert_eq!(p[8], 63);
        assert_eq!(
            checksum(&p[..20]),
            0,
            "incremental update must keep the header valid"
        );
    }

    #[test]
    fn incremental_update_matches_full_recompute_for_every_ttl() {
        for ttl in 2..=255u8 {
            let mut p = udp([10, 2, 0, 2], ttl);
            let _ = run(&mut p);
            let got = u16::from_be_bytes([p[10], p[11]]);
            p[10..12].fill(0);
            assert_eq!(got, checksum(&p[..20]), "ttl {ttl}");
        }
    }

    #[test]
    fn ttl_expiry_drops_and_emits_time_exceeded() {
        let mut p = udp([10, 2, 0, 2], 1);
        let (v, e) = run(&mut p);
        assert_eq!(v, Verdict::Drop(DropReason::TtlExceeded));
        assert_eq!(e.0.len(), 1);
        let (out, r) = &e.0[0];
        assert_eq!(*out, IfIndex(0));
        assert_eq!(r[20], ICMP_TIME_EXCEEDED);
        assert_eq!(&r[12..16], &[10, 1, 0, 1]);
        assert_eq!(&r[16..20], &[10, 1, 0, 2]);
        assert_eq!(checksum(&r[..20]), 0);
        assert_eq!(checksum(&r[20..]), 0);
        assert_eq!(&r[28..48], &p[..20]);
    }

    #[test]
    fn echo_to_gateway_is_answered() {
        let mut p = vec![0u8; 20 + 8 + 4];
        write_ip_header(
            &mut p,
            32,
            PROTO_ICMP,
            Ipv4Addr::new(10, 1, 0, 2),
            Ipv4Addr::new(10, 2, 0, 1),
        );
        p[20] = ICMP_ECHO_REQUEST;
        p[24..28].copy_from_slice(&[0, 7, 0, 1]);
        p[28..].copy_from_slice(b"abcd");
        let c = checksum(&p[20..]);
        p[22..24].copy_from_slice(&c.to_be_bytes());
        let (v, e) = run(&mut p);
        assert_eq!(v, Verdict::Consumed);
        let (out, r) = &e.0[0];
        assert_eq!(*out, IfIndex(0));
        assert_eq!(r[20], ICMP_ECHO_REPLY);
        assert_eq!(&r[12..16], &[10, 2, 0, 1]);
        assert_eq!(&r[16..20], &[10, 1, 0, 2]);
        assert_eq!(&r[24..], &p[24..]);
        assert_eq!(checksum(&r[..20]), 0);
        assert_eq!(checksum(&r[20..]), 0);
    }

    #[test]
    fn malformed_and_unroutable_are_dropped_not_panicking() {
        assert_eq!(run(&mut []).0, Verdict::Drop(DropReason::Malformed));
        assert_eq!(
            run(&mut [0x45, 0, 0]).0,
            Verdict::Drop(DropReason::Malformed)
        );
        let mut p = udp([10, 2, 0, 2], 64);
        p[2..4].copy_from_slice(&100u16.to_be_bytes());
        assert_eq!(run(&mut p).0, Verdict::Drop(DropReason::Malformed));
        let mut p = udp([10, 2, 0, 2], 64);
        p[0] = 0x44;
        assert_eq!(run(&mut p).0, Verdict::Drop(DropReason::Malformed));
        let mut p = udp([10, 2, 0, 2], 64);
        p[11] ^= 1;
        assert_eq!(run(&mut p).0, Verdict::Drop(DropReason::BadIpChecksum));
        let mut p = udp([10, 2, 0, 2], 64);
        p[0] = 0x65;
        assert_eq!(run(&mut p).0, Verdict::Drop(DropReason::Ipv6Unsupported));
        let mut p = udp([192, 168, 0, 1], 64);
        let (v, e) = run(&mut p);
        assert_eq!(v, Verdict::Drop(DropReason::NoRoute));
        assert_eq!(e.0[0].1[20], ICMP_DEST_UNREACH);
        let mut p = udp([10, 1, 0, 1], 64);
        let (v, e) = run(&mut p);
        assert_eq!(v, Verdict::Drop(DropReason::LocalNoListener));
        let r = &e.0[0].1;
        assert_eq!((r[20], r[21]), (ICMP_DEST_UNREACH, 3), "port unreachable");
        assert_eq!(&r[12..16], &[10, 1, 0, 1]);
        // Every truncation of a valid packet is handled.
        let p = udp([10, 2, 0, 2], 64);
        for n in 0..p.len() {
            let mut q = p[..n].to_vec();
            let _ = run(&mut q);
        }
    }

    #[test]
    fn tcp_to_gateway_gets_a_reset() {
        // SYN 10.1.0.2:40000 -> 10.2.0.1:80, seq 1000.
        let mut p = vec![0u8; 40];
        write_ip_header(
            &mut p,
            40,
            PROTO_TCP,
            Ipv4Addr::new(10, 1, 0, 2),
            Ipv4Addr::new(10, 2, 0, 1),
        );
        p[20..22].copy_from_slice(&40000u16.to_be_bytes());
        p[22..24].copy_from_slice(&80u16.to_be_bytes());
        p[24..28].copy_from_slice(&1000u32.to_be_bytes());
        p[32] = 5 << 4;
        p[33] = TCP_SYN;
        let (v, e) = run(&mut p);
        assert_eq!(v, Verdict::Drop(DropReason::LocalNoListener));
        let r = &e.0[0].1;
        assert_eq!(&r[12..16], &[10, 2, 0, 1]);
        assert_eq!(&r[16..20], &[10, 1, 0, 2]);
        assert_eq!(u16::from_be_bytes([r[20], r[21]]), 80);
        assert_eq!(u16::from_be_bytes([r[22], r[23]]), 40000);
        assert_eq!(r[33], TCP_RST | TCP_ACK);
        assert_eq!(u32::from_be_bytes([r[28], r[29], r[30], r[31]]), 1001);
        assert_eq!(checksum(&r[..20]), 0);
        let mut pseudo = Vec::from(&r[12..20]);
        pseudo.extend_from_slice(&[0, PROTO_TCP, 0, 20]);
        pseudo.extend_from_slice(&r[20..40]);
        assert_eq!(checksum(&pseudo), 0, "TCP checksum");
        // A RST is never answered.
        let mut q = p.clone();
        q[33] = TCP_RST;
        assert!(run(&mut q).1 .0.is_empty());
    }

    #[test]
    fn df_packet_above_egress_mtu_gets_frag_needed() {
        let mut p = vec![0u8; 1400];
        write_ip_header(
            &mut p,
            1400,
            17,
            Ipv4Addr::new(10, 1, 0, 2),
            Ipv4Addr::new(10, 2, 0, 2),
        );
        let pt = Passthrough::with_mtus(table(), vec![1500, 1280]);
        let mut e = EmitVec::default();
        let v = pt.process(&ctx(), &mut p, &mut VnetHdr::default(), &mut e);
        assert_eq!(v, Verdict::Drop(DropReason::FragNeeded));
        let r = &e.0[0].1;
        assert_eq!((r[20], r[21]), (ICMP_DEST_UNREACH, 4));
        assert_eq!(u16::from_be_bytes([r[26], r[27]]), 1280);
        assert_eq!(checksum(&r[20..]), 0);
        // Without DF it is forwarded (the stand-in does not fragment).
        p[6] = 0;
        p[10..12].fill(0);
        let c = checksum(&p[..20]);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        let v = pt.process(
            &ctx(),
            &mut p,
            &mut VnetHdr::default(),
            &mut EmitVec::default(),
        );
        assert_eq!(v, Verdict::Forward(IfIndex(1)));
    }
}
