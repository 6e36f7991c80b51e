//! The LOG target's line, in the kernel's format (net/netfilter/nf_log_syslog.c):
//! `PREFIX IN=.. OUT=.. MAC= SRC=.. DST=.. LEN=.. TOS=0x.. PREC=0x.. TTL=.. ID=..
//! [DF] PROTO=TCP SPT=.. DPT=.. WINDOW=.. RES=0x.. SYN URGP=0`. LOG is a slow
//! path (it formats a string), as it is in the kernel.

use crate::ruleset::LogTarget;
use std::fmt::Write;
use std::net::Ipv4Addr;

/// `XT_LOG_*` flags.
pub const LOG_TCPSEQ: u8 = 0x01;
pub const LOG_TCPOPT: u8 = 0x02;
pub const LOG_IPOPT: u8 = 0x04;

/// Formats the log line for `pkt` (an IPv4 packet, possibly truncated).
/// `in_if`/`out_if` are empty when not applicable.
pub fn format(t: &LogTarget, in_if: &str, out_if: &str, pkt: &[u8], mark: u32) -> String {
    let mut s = String::with_capacity(200);
    if let Some(p) = &t.prefix {
        s.push_str(p);
    }
    let _ = write!(s, "IN={in_if} OUT={out_if} ");
    if !in_if.is_empty() {
        // TUN devices have no link-layer header.
        s.push_str("MAC= ");
    }
    dump_ipv4(&mut s, t.flags, pkt, false);
    if mark != 0 {
        let _ = write!(s, "MARK=0x{mark:x} ");
    }
    s
}

fn dump_ipv4(s: &mut String, flags: u8, pkt: &[u8], nested: bool) {
    if pkt.len() < 20 {
        let _ = write!(s, "TRUNCATED ");
        return;
    }
    let ihl = ((pkt[0] & 0x0f) as usize) * 4;
    let a = |i: usize| Ipv4Addr::new(pkt[i], pkt[i + 1], pkt[i + 2], pkt[i + 3]);
    let total = be16(pkt, 2);
    let frag = be16(pkt, 6);
    let _ = write!(
        s,
        "SRC={} DST={} LEN={} TOS=0x{:02X} PREC=0x{:02X} TTL={} ID={} ",
        a(12),
        a(16),
        total,
        pkt[1] & 0x1e,
        pkt[1] & 0xe0,
        pkt[8],
        be16(pkt, 4)
    );
    if frag & 0x8000 != 0 {
        s.push_str("CE ");
    }
    if frag & 0x4000 != 0 {
        s.push_str("DF ");
    }
    if frag & 0x2000 != 0 {
        s.push_str("MF ");
    }
    let off = frag & 0x1fff;
    if off != 0 {
        let _ = write!(s, "FRAG:{off} ");
    }
    if flags & LOG_IPOPT != 0 && ihl > 20 && pkt.len() >= ihl {
        dump_options(s, &pkt[20..ihl]);
    }
    let l4 = pkt.get(ihl..).unwrap_or(&[]);
    match pkt[9] {
        6 => {
            if !transport_header(s, "TCP", off, l4, 20) {
                return;
            }
            let _ = write!(s, "SPT={} DPT={} ", be16(l4, 0), be16(l4, 2));
            if flags & LOG_TCPSEQ != 0 {
                let _ = write!(s, "SEQ={} ACK={} ", be32(l4, 4), be32(l4, 8));
            }
            let _ = write!(
                s,
                "WINDOW={} RES=0x{:02x} ",
                be16(l4, 14),
                // TCP_RESERVED_BITS >> 22: the 4 reserved bits of byte 12.
                (l4[12] & 0x0f) << 2
            );
            let fl = l4[13];
            for (bit, name) in [
                (0x80, "CWR "),
                (0x40, "ECE "),
                (0x20, "URG "),
                (0x10, "ACK "),
                (0x08, "PSH "),
                (0x04, "RST "),
                (0x02, "SYN "),
                (0x01, "FIN "),
            ] {
                if fl & bit != 0 {
                    s.push_str(name);
                }
            }
            let _ = write!(s, "URGP={} ", be16(l4, 18));
            let doff = ((l4[12] >> 4) as usize) * 4;
            if flags & LOG_TCPOPT != 0 && doff > 20 && l4.len() >= doff {
                dump_options(s, &l4[20..doff]);
            }
        }
        17 => {
            if !transport_header(s, "UDP", off, l4, 8) {
                return;
            }
            let _ = write!(
                s,
                "SPT={} DPT={} LEN={} ",
                be16(l4, 0),
                be16(l4, 2),
                be16(l4, 4)
            );
        }
        1 => {
            if !transport_header(s, "ICMP", off, l4, 4) {
                return;
            }
            let _ = write!(s, "TYPE={} CODE={} ", l4[0], l4[1]);
            match l4[0] {
                0 | 8 if l4.len() >= 8 => {
                    let _ = write!(s, "ID={} SEQ={} ", be16(l4, 4), be16(l4, 6));
                }
                3 | 4 | 5 | 11 | 12 if l4.len() >= 8 => {
                    if l4[0] == 3 && l4[1] == 4 {
                        let _ = write!(s, "MTU={} ", be16(l4, 6));
                    }
                    if !nested {
                        s.push('[');
                        dump_ipv4(s, flags, &l4[8..], true);
                        s.push_str("] ");
                    }
                }
                _ => {}
            }
        }
        p => {
            let _ = write!(s, "PROTO={p} ");
        }
    }
}

/// The big-endian `u16` at `at` of `b`.
fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// The big-endian `u32` at `at` of `b`.
fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// `PROTO=name`, and whether the transport header `l4` is there to log:
/// not in a later fragment (`off`, nothing more then), and at least `min`
/// bytes of it (else `INCOMPLETE [n bytes]`, as the kernel writes).
fn transport_header(s: &mut String, name: &str, off: u16, l4: &[u8], min: usize) -> bool {
    let _ = write!(s, "PROTO={name} ");
    if off != 0 {
        return false;
    }
    if l4.len() < min {
        let _ = write!(s, "INCOMPLETE [{} bytes] ", l4.len());
        return false;
    }
    true
}

/// IP or TCP options in hex, as `LOG --log-ip-options`/`--log-tcp-options`.
fn dump_options(s: &mut String, opts: &[u8]) {
    s.push_str("OPT (");
    for b in opts {
        let _ = write!(s, "{b:02X}");
    }
    s.push_str(") ");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_syn_line_has_the_kernel_fields_in_order() {
        let mut p = vec![0u8; 40];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&40u16.to_be_bytes());
        p[4..6].copy_from_slice(&777u16.to_be_bytes());
        p[6] = 0x40;
        p[8] = 63;
        p[9] = 6;
        p[12..16].copy_from_slice(&[10, 0, 1, 2]);
        p[16..20].copy_from_slice(&[10, 0, 2, 2]);
        p[20..22].copy_from_slice(&40000u16.to_be_bytes());
        p[22..24].copy_from_slice(&3000u16.to_be_bytes());
        p[32] = 0x50;
        p[33] = 0x02;
        p[34..36].copy_from_slice(&64240u16.to_be_bytes());
        let t = LogTarget {
            prefix: Some("DROP3000: ".into()),
            level: 4,
            flags: 0,
        };
        assert_eq!(
            format(&t, "tg0", "tg1", &p, 0),
            "DROP3000: IN=tg0 OUT=tg1 MAC= SRC=10.0.1.2 DST=10.0.2.2 LEN=40 TOS=0x00 \
             PREC=0x00 TTL=63 ID=777 DF PROTO=TCP SPT=40000 DPT=3000 WINDOW=64240 \
             RES=0x00 SYN URGP=0 "
        );
        // Truncated input never panics.
        for n in 0..p.len() {
            let _ = format(&t, "a", "", &p[..n], 1);
        }
    }
}
