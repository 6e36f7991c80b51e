//! Builders for the IPv6 packets the gateway originates, as [`super::build`]
//! does for IPv4: ICMPv6 errors (RFC 4443 section 2.4, Linux `icmp6_send`),
//! echo replies (`icmpv6_echo_reply`) and TCP resets (ip6t_REJECT's
//! `nf_send_reset6`; its ICMPv6 answers go through `icmp6_send`, so through
//! [`icmp_error`] here).
//!
//! Each writes a complete IPv6 packet (checksum filled, no extension
//! headers, hop limit 64, flow label 0) into `out` (cleared first) and
//! returns `false` when the rules say no packet may be sent.

use super::exthdr::{self, ExtHdrs};
use super::icmpv6::{self, param_problem, time_exceeded, types};
use super::ipv6::{self, nexthdr, Ipv6Packet};
use super::tcp::{flags as tf, TcpPacket};
use super::{checksum, set_u16};

/// Hop limit of originated packets (Linux `ipv6.conf.default.hop_limit`).
pub const DEFAULT_HOP_LIMIT: u8 = 64;
/// RFC 4443 section 2.4 (c): an error holds as much of the invoking packet
/// as fits without the error exceeding the minimum IPv6 MTU.
pub const ICMP6_ERROR_MAX: usize = ipv6::MIN_MTU;
const ERR_HEAD: usize = ipv6::HEADER_LEN + icmpv6::HEADER_LEN;

fn ip6_header(out: &mut Vec<u8>, src: u128, dst: u128, next: u8, tclass: u8) {
    let w0 = 6u32 << 28 | u32::from(tclass) << 20;
    out.extend_from_slice(&w0.to_be_bytes());
    out.extend_from_slice(&[0, 0, next, DEFAULT_HOP_LIMIT]);
    out.extend_from_slice(&src.to_be_bytes());
    out.extend_from_slice(&dst.to_be_bytes());
}

/// Sets the payload length and the upper-layer checksum (at `csum_at`
/// within the upper layer, which starts right after the fixed header).
fn finish(out: &mut [u8], csum_at: usize) {
    let plen = out.len() - ipv6::HEADER_LEN;
    let ip = Ipv6Packet::new_unchecked(&mut out[..]);
    let (src, dst, next) = (ip.src_addr(), ip.dst_addr(), ip.next_header());
    Ipv6Packet::new_unchecked(&mut out[..]).set_payload_len(plen as u16);
    let upper = &mut out[ipv6::HEADER_LEN..];
    set_u16(upper, csum_at, 0);
    let ps = checksum::pseudo_header_sum_v6(src, dst, next, plen as u32);
    let c = checksum::l4_checksum(ps, upper);
    set_u16(upper, csum_at, c);
}

/// The invoking packet, cut to its payload length, if it is IPv6 at all.
fn checked(orig: &[u8]) -> Option<&[u8]> {
    let ip = Ipv6Packet::new_checked(orig).ok()?;
    Some(&orig[..ip.total_len()])
}

/// A packet to answer directly (echo reply, reset), cut to its payload
/// length, with its walk and addresses: not from or to the unspecified or
/// a multicast address (the caller would pick a source), not a fragment
/// (reassembled first).
fn answerable(orig: &[u8]) -> Option<(&[u8], ExtHdrs, u128, u128)> {
    let pkt = checked(orig)?;
    let ip = Ipv6Packet::new_unchecked(pkt);
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    let special = |a: u128| a == 0 || ipv6::is_multicast(a);
    if special(src) || special(dst) {
        return None;
    }
    let e = exthdr::walk(pkt).ok().filter(|e| !e.is_fragment())?;
    Some((pkt, e, src, dst))
}

/// `icmp6_send`'s `is_ineligible` plus RFC 4443 section 2.4 (e.1, e.2):
/// never about an ICMPv6 error or a redirect, nor about an ICMPv6 packet
/// too short to say its type. A later fragment (no ICMPv6 header to read)
/// and a chain that does not walk are eligible, as in the kernel.
fn ineligible(pkt: &[u8]) -> bool {
    let Ok(e) = exthdr::walk(pkt) else {
        return false;
    };
    if e.proto != nexthdr::ICMPV6 || e.later_fragment() {
        return false;
    }
    match pkt.get(usize::from(e.proto_offset)) {
        None => true,
        Some(&ty) => icmpv6::is_error(ty) || ty == types::REDIRECT,
    }
}

/// An ICMPv6 error of `ty`/`code` from `src` about `orig`. `info` is bytes
/// 4..8 (Packet Too Big's MTU, Parameter Problem's pointer, else 0). Not
/// sent (RFC 4443 section 2.4 (e)) about an ICMPv6 error or redirect, from
/// the unspecified or a multicast source, or to a multicast destination
/// (except Packet Too Big, and Parameter Problem code 2 about an option
/// whose type asks for it, `opt_unrec`). The quote is the invoking packet
/// up to what keeps the error within 1280 bytes.
pub fn icmp_error(
    orig: &[u8],
    src: u128,
    (ty, code): (u8, u8),
    info: u32,
    out: &mut Vec<u8>,
) -> bool {
    out.clear();
    let Some(pkt) = checked(orig) else {
        return false;
    };
    let ip = Ipv6Packet::new_unchecked(pkt);
    let (osrc, odst) = (ip.src_addr(), ip.dst_addr());
    if ipv6::is_multicast(odst) {
        let opt_unrec = || {
            let at = usize::try_from(info).unwrap_or(usize::MAX);
            pkt.get(at).is_some_and(|&o| o & 0xc0 == 0x80)
        };
        let allowed = ty == types::PACKET_TOO_BIG
            || (ty == types::PARAM_PROBLEM && code == param_problem::OPTION && opt_unrec());
        if !allowed {
            return false;
        }
    }
    if osrc == 0 || ipv6::is_multicast(osrc) || ineligible(pkt) {
        return false;
    }
    let quote = pkt.len().min(ICMP6_ERROR_MAX - ERR_HEAD);
    ip6_header(out, src, osrc, nexthdr::ICMPV6, 0);
    out.extend_from_slice(&[ty, code, 0, 0]);
    out.extend_from_slice(&info.to_be_bytes());
    out.extend_from_slice(&pkt[..quote]);
    finish(out, 2);
    true
}

/// Time Exceeded, hop limit exceeded in transit (the forward path's
/// decrement reached 0).
pub fn time_exceeded(orig: &[u8], src: u128, out: &mut Vec<u8>) -> bool {
    let te = (types::TIME_EXCEEDED, time_exceeded::HOP_LIMIT);
    icmp_error(orig, src, te, 0, out)
}

/// Packet Too Big with the next hop's `mtu` (RFC 4443 section 3.2).
pub fn packet_too_big(orig: &[u8], src: u128, mtu: u32, out: &mut Vec<u8>) -> bool {
    icmp_error(orig, src, (types::PACKET_TOO_BIG, 0), mtu, out)
}

/// Destination Unreachable with `code` ([`icmpv6::unreach`]: 0 no route, 1
/// administratively prohibited, 3 address, 4 port, 5 policy fail, 6 reject
/// route: REJECT's `icmp6-*`).
pub fn dest_unreach(orig: &[u8], src: u128, code: u8, out: &mut Vec<u8>) -> bool {
    icmp_error(orig, src, (types::DEST_UNREACH, code), 0, out)
}

/// Parameter Problem with `code` ([`param_problem`]) and `pointer`, the
/// offset of the offending byte in `orig`.
pub fn param_problem(orig: &[u8], src: u128, code: u8, pointer: u32, out: &mut Vec<u8>) -> bool {
    icmp_error(orig, src, (types::PARAM_PROBLEM, code), pointer, out)
}

/// The echo reply to an echo request addressed to the gateway: same
/// identifier, sequence and data, the traffic class reflected
/// (`icmpv6_echo_reply`); source = the address that was pinged. Not for a
/// request to a multicast address (the caller would pick the source), from
/// the unspecified address, or a fragment (reassembled first).
pub fn echo_reply(req: &[u8], out: &mut Vec<u8>) -> bool {
    out.clear();
    let Some((pkt, e, src, dst)) = answerable(req) else {
        return false;
    };
    let body = &pkt[usize::from(e.proto_offset)..];
    if e.proto != nexthdr::ICMPV6
        || body.len() < icmpv6::HEADER_LEN
        || body[0] != types::ECHO_REQUEST
    {
        return false;
    }
    let tclass = Ipv6Packet::new_unchecked(pkt).traffic_class();
    ip6_header(out, dst, src, nexthdr::ICMPV6, tclass);
    out.extend_from_slice(body);
    out[ipv6::HEADER_LEN] = types::ECHO_REPLY;
    out[ipv6::HEADER_LEN + 1] = 0;
    finish(out, 2);
    true
}

/// The RST answering `orig` (`REJECT --reject-with tcp-reset`, Linux
/// `nf_send_reset6`): none for an RST, a fragment, or a packet to a
/// multicast or the unspecified address; sequence and acknowledgement as
/// [`super::build::tcp_reset`]. Traffic class 0, hop limit 64.
pub fn tcp_reset(orig: &[u8], out: &mut Vec<u8>) -> bool {
    out.clear();
    let Some((pkt, e, src, dst)) = answerable(orig) else {
        return false;
    };
    if e.proto != nexthdr::TCP {
        return false;
    }
    let Ok(t) = TcpPacket::new_checked(&pkt[usize::from(e.proto_offset)..]) else {
        return false;
    };
    if t.flags() & tf::RST != 0 {
        return false;
    }
    ip6_header(out, dst, src, nexthdr::TCP, 0);
    out.extend_from_slice(&super::build::reset_segment(&t));
    finish(out, 16);
    true
}

#[cfg(test)]
#[path = "build6_tests.rs"]
mod tests;
