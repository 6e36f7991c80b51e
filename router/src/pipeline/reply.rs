//! Packets the gateway originates: ICMP errors (`icmp_send`), TCP resets
//! (`nf_send_reset`) and echo replies (`icmp_echo`), built the way the Linux
//! kernel builds them. Each builder writes into a caller-provided buffer and
//! returns the length, so the packet path does not allocate.
#![forbid(unsafe_code)]

use crate::wire::checksum;

/// An ICMP error carries at most this much in total (RFC 1812 4.3.2.3, and
/// the kernel's `576 - headers` room).
pub const ICMP_ERROR_MAX: usize = 576;

/// Buffer size that holds any packet built here.
pub const REPLY_BUF: usize = ICMP_ERROR_MAX;

pub const ICMP_ECHO_REPLY: u8 = 0;
pub const ICMP_DEST_UNREACH: u8 = 3;
pub const ICMP_ECHO: u8 = 8;
pub const ICMP_TIME_EXCEEDED: u8 = 11;

/// Codes of destination unreachable (RFC 792, RFC 1812).
pub const UNREACH_NET: u8 = 0;
pub const UNREACH_HOST: u8 = 1;
pub const UNREACH_PROTO: u8 = 2;
pub const UNREACH_PORT: u8 = 3;
pub const UNREACH_FRAG_NEEDED: u8 = 4;
pub const UNREACH_NET_PROHIB: u8 = 9;
pub const UNREACH_HOST_PROHIB: u8 = 10;
pub const UNREACH_ADMIN_PROHIB: u8 = 13;

fn is_special(addr: u32) -> bool {
    addr == 0 || addr == u32::MAX || (addr >> 28) == 0xe
}

/// Whether the kernel would send an ICMP error about `orig` (RFC 1122
/// 3.2.2): not about ICMP errors, non-first fragments, or packets from or to
/// broadcast/multicast/unspecified addresses.
pub fn may_send_error(orig: &[u8]) -> bool {
    if orig.len() < 20 {
        return false;
    }
    let ihl = ((orig[0] & 0x0f) as usize) * 4;
    let frag = u16::from_be_bytes([orig[6], orig[7]]);
    let src = u32::from_be_bytes([orig[12], orig[13], orig[14], orig[15]]);
    let dst = u32::from_be_bytes([orig[16], orig[17], orig[18], orig[19]]);
    if frag & 0x1fff != 0 || is_special(src) || is_special(dst) {
        return false;
    }
    if orig[9] == 1 {
        // ICMP: only queries (echo, timestamp, ...) may provoke errors.
        match orig.get(ihl) {
            Some(&t) => matches!(t, 0 | 8 | 13 | 14 | 15 | 16 | 17 | 18),
            None => false,
        }
    } else {
        true
    }
}

/// Writes a 20-byte IPv4 header (TTL 64, the kernel's default) with its
/// checksum.
fn ip_header(
    buf: &mut [u8],
    total: usize,
    tos: u8,
    id: u16,
    df: bool,
    proto: u8,
    (src, dst): (u32, u32),
) {
    let ttl = 64;
    buf[0] = 0x45;
    buf[1] = tos;
    buf[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    buf[4..6].copy_from_slice(&id.to_be_bytes());
    buf[6..8].copy_from_slice(&(if df { 0x4000u16 } else { 0 }).to_be_bytes());
    buf[8] = ttl;
    buf[9] = proto;
    buf[10..12].fill(0);
    buf[12..16].copy_from_slice(&src.to_be_bytes());
    buf[16..20].copy_from_slice(&dst.to_be_bytes());
    let c = checksum::checksum(&buf[..20]);
    buf[10..12].copy_from_slice(&c.to_be_bytes());
}

/// Builds an ICMP error of `icmp_type`/`code` about `orig`, from `src` (the
/// gateway's address facing the sender). `extra` is the 32-bit field after the
/// checksum (next-hop MTU for frag-needed). Returns the packet length, or 0
/// when no error may be sent about `orig`.
pub fn icmp_error(
    buf: &mut [u8],
    orig: &[u8],
    src: u32,
    icmp_type: u8,
    code: u8,
    extra: u32,
    id: u16,
) -> usize {
    if !may_send_error(orig) || buf.len() < REPLY_BUF {
        return 0;
    }
    let orig_total = u16::from_be_bytes([orig[2], orig[3]]) as usize;
    let quoted = orig.len().min(orig_total.max(20)).min(ICMP_ERROR_MAX - 28);
    let total = 28 + quoted;
    let dst = u32::from_be_bytes([orig[12], orig[13], orig[14], orig[15]]);
    // icmp_send: tos = (orig tos & IPTOS_TOS_MASK) | IPTOS_PREC_INTERNETCONTROL.
    let tos = (orig[1] & 0x1e) | 0xc0;
    ip_header(buf, total, tos, id, false, 1, (src, dst));
    let icmp = &mut buf[20..total];
    icmp[0] = icmp_type;
    icmp[1] = code;
    icmp[2..4].fill(0);
    icmp[4..8].copy_from_slice(&extra.to_be_bytes());
    icmp[8..].copy_from_slice(&orig[..quoted]);
    let c = checksum::checksum(icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    total
}

/// Builds the TCP RST that REJECT --reject-with tcp-reset sends in answer to
/// the TCP segment `orig` (nf_send_reset). Returns 0 when none is due (the
/// segment is itself a RST, a later fragment, or truncated).
pub fn tcp_reset(buf: &mut [u8], orig: &[u8]) -> usize {
    if orig.len() < 20 || buf.len() < 40 {
        return 0;
    }
    let ihl = ((orig[0] & 0x0f) as usize) * 4;
    let frag = u16::from_be_bytes([orig[6], orig[7]]);
    if orig[9] != 6 || frag & 0x1fff != 0 || orig.len() < ihl + 20 {
        return 0;
    }
    let tcp = &orig[ihl..];
    let flags = tcp[13];
    if flags & 0x04 != 0 {
        return 0;
    }
    let src = u32::from_be_bytes([orig[12], orig[13], orig[14], orig[15]]);
    let dst = u32::from_be_bytes([orig[16], orig[17], orig[18], orig[19]]);
    if is_special(src) || is_special(dst) {
        return 0;
    }
    let orig_total = (u16::from_be_bytes([orig[2], orig[3]]) as usize).min(orig.len());
    let doff = ((tcp[12] >> 4) as usize) * 4;
    let payload = orig_total.saturating_sub(ihl + doff) as u32;
    let seq = u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]);
    let ack = u32::from_be_bytes([tcp[8], tcp[9], tcp[10], tcp[11]]);
    let (new_seq, new_ack, new_flags) = if flags & 0x10 != 0 {
        (ack, 0u32, 0x04u8)
    } else {
        let syn_fin = (flags & 0x02 != 0) as u32 + (flags & 0x01 != 0) as u32;
        (0, seq.wrapping_add(payload + syn_fin), 0x14)
    };
    let total = 40;
    // nf_reject_iphdr_put: DF set, id 0, TTL from the route (64), tos 0.
    ip_header(buf, total, 0, 0, true, 6, (dst, src));
    let t = &mut buf[20..40];
    t[0..2].copy_from_slice(&tcp[2..4]);
    t[2..4].copy_from_slice(&tcp[0..2]);
    t[4..8].copy_from_slice(&new_seq.to_be_bytes());
    t[8..12].copy_from_slice(&new_ack.to_be_bytes());
    t[12] = 5 << 4;
    t[13] = new_flags;
    t[14..20].fill(0);
    let ps = checksum::pseudo_header_sum(dst.into(), src.into(), 6, 20);
    let c = !checksum::fold(checksum::sum(t, ps));
    t[16..18].copy_from_slice(&c.to_be_bytes());
    total
}

/// Turns an ICMP echo request addressed to the gateway into the echo reply,
/// written into `buf` (the request may be longer than [`REPLY_BUF`]: the
/// caller passes a buffer of the request's size). Returns 0 if `req` is not a
/// well-formed echo request.
pub fn echo_reply(buf: &mut [u8], req: &[u8], id: u16) -> usize {
    if req.len() < 28 || buf.len() < req.len() {
        return 0;
    }
    let ihl = ((req[0] & 0x0f) as usize) * 4;
    let total = (u16::from_be_bytes([req[2], req[3]]) as usize).min(req.len());
    if req[9] != 1 || total < ihl + 8 || req[ihl] != ICMP_ECHO {
        return 0;
    }
    let src = u32::from_be_bytes([req[12], req[13], req[14], req[15]]);
    let dst = u32::from_be_bytes([req[16], req[17], req[18], req[19]]);
    let icmp_len = total - ihl;
    let out_total = 20 + icmp_len;
    ip_header(buf, out_total, req[1], id, false, 1, (dst, src));
    buf[20..out_total].copy_from_slice(&req[ihl..total]);
    buf[20] = ICMP_ECHO_REPLY;
    buf[21] = 0;
    buf[22..24].fill(0);
    let c = checksum::checksum(&buf[20..out_total]);
    buf[22..24].copy_from_slice(&c.to_be_bytes());
    out_total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verify(pkt: &[u8]) {
        assert_eq!(checksum::checksum(&pkt[..20]), 0, "ip checksum");
    }

    fn syn() -> Vec<u8> {
        let mut p = vec![0u8; 40];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&40u16.to_be_bytes());
        p[8] = 63;
        p[9] = 6;
        p[12..16].copy_from_slice(&[10, 0, 1, 2]);
        p[16..20].copy_from_slice(&[10, 0, 2, 2]);
        p[20..22].copy_from_slice(&40000u16.to_be_bytes());
        p[22..24].copy_from_slice(&80u16.to_be_bytes());
        p[24..28].copy_from_slice(&1000u32.to_be_bytes());
        p[32] = 0x50;
        p[33] = 0x02;
        let c = checksum::checksum(&p[..20]);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        p
    }

    #[test]
    fn reset_answers_syn_with_rst_ack() {
        let mut buf = [0u8; REPLY_BUF];
        let n = tcp_reset(&mut buf, &syn());
        assert_eq!(n, 40);
        let r = &buf[..n];
        verify(r);
        assert_eq!(&r[12..16], &[10, 0, 2, 2]);
        assert_eq!(&r[16..20], &[10, 0, 1, 2]);
        assert_eq!(u16::from_be_bytes([r[20], r[21]]), 80);
        assert_eq!(u16::from_be_bytes([r[22], r[23]]), 40000);
        assert_eq!(u32::from_be_bytes([r[28], r[29], r[30], r[31]]), 1001);
        assert_eq!(r[33], 0x14);
        let ps = checksum::pseudo_header_sum([10, 0, 2, 2].into(), [10, 0, 1, 2].into(), 6, 20);
        assert_eq!(checksum::fold(checksum::sum(&r[20..40], ps)), 0xffff);
        // No RST in answer to a RST.
        let mut rst = syn();
        rst[33] = 0x04;
        assert_eq!(tcp_reset(&mut buf, &rst), 0);
    }

    #[test]
    fn icmp_error_quotes_the_original_and_skips_errors_about_errors() {
        let mut buf = [0u8; REPLY_BUF];
        let orig = syn();
        let n = icmp_error(
            &mut buf,
            &orig,
            0x0a00_0101,
            ICMP_DEST_UNREACH,
            UNREACH_PORT,
            0,
            9,
        );
        assert_eq!(n, 28 + 40);
        verify(&buf[..n]);
        assert_eq!(checksum::checksum(&buf[20..n]), 0);
        assert_eq!(&buf[28..n], &orig[..]);
        assert_eq!(buf[1], 0xc0);
        // An error about that error is not sent.
        let err = buf[..n].to_vec();
        assert_eq!(icmp_error(&mut buf, &err, 1, ICMP_DEST_UNREACH, 1, 0, 1), 0);
    }

    #[test]
    fn echo_reply_swaps_and_keeps_payload() {
        let mut req = vec![0u8; 20 + 8 + 5];
        req[0] = 0x45;
        let n = req.len() as u16;
        req[2..4].copy_from_slice(&n.to_be_bytes());
        req[8] = 64;
        req[9] = 1;
        req[12..16].copy_from_slice(&[10, 0, 1, 2]);
        req[16..20].copy_from_slice(&[10, 0, 1, 1]);
        req[20] = ICMP_ECHO;
        req[24..28].copy_from_slice(&[0, 7, 0, 1]);
        req[28..].copy_from_slice(b"hello");
        let mut buf = vec![0u8; req.len()];
        let n = echo_reply(&mut buf, &req, 3);
        assert_eq!(n, req.len());
        verify(&buf);
        assert_eq!(buf[20], ICMP_ECHO_REPLY);
        assert_eq!(&buf[12..16], &[10, 0, 1, 1]);
        assert_eq!(&buf[24..], &req[24..]);
        assert_eq!(checksum::checksum(&buf[20..]), 0);
    }
}
