//! Formatting that the `iptables-save`/`-S` printer ([`super::save`]) and
//! the `iptables -L` printer ([`super::list`]) share: addresses and masks,
//! ranges, the names of ctstates, conntrack statuses, TCP flags, address
//! types and conntrack events, limit rates, NAT ranges and MAC addresses.

use std::fmt::Write;
use std::net::Ipv4Addr;

use crate::ruleset::*;

pub(super) fn ip(a: u32) -> Ipv4Addr {
    Ipv4Addr::from(a)
}

/// An address of `family` as inet_ntop writes it (the text every printer
/// uses): dotted quad, or IPv6 with the longest run of two or more zero
/// groups as `::` and an embedded IPv4 address in IPv4-compatible and
/// IPv4-mapped addresses (`::1.2.3.4`, `::ffff:1.2.3.4`), as glibc does.
pub(super) fn addr_text(family: Family, a: u128) -> String {
    if family == Family::V4 {
        return ip(a as u32).to_string();
    }
    let words: [u16; 8] = std::array::from_fn(|i| (a >> (112 - 16 * i)) as u16);
    // The longest run of zero words (the first of equal ones), if >= 2.
    let (mut best, mut cur) = ((0usize, 0usize), (0usize, 0usize));
    for (i, w) in words.iter().enumerate() {
        if *w == 0 {
            if cur.1 == 0 {
                cur.0 = i;
            }
            cur.1 += 1;
            if cur.1 > best.1 {
                best = cur;
            }
        } else {
            cur.1 = 0;
        }
    }
    let (base, len) = if best.1 >= 2 { best } else { (usize::MAX, 0) };
    let mut out = String::with_capacity(39);
    let mut i = 0;
    while i < 8 {
        if i == base {
            out.push(':');
            i += len;
            continue;
        }
        if i != 0 {
            out.push(':');
        }
        if i == 6 && base == 0 && (len == 6 || (len == 5 && words[5] == 0xffff)) {
            let _ = write!(out, "{}", ip(a as u32));
            return out;
        }
        let _ = write!(out, "{:x}", words[i]);
        i += 1;
    }
    if base != usize::MAX && base + len == 8 {
        out.push(':');
    }
    out
}

/// The prefix length of `mask` in `family` if it is one (contiguous ones
/// from the top), else None.
pub(super) fn prefix_len(family: Family, mask: u128) -> Option<u32> {
    let bits = family.bits();
    // Left-align the family's mask in 128 bits.
    let m = mask << (128 - bits);
    let l = m.leading_ones().min(bits);
    (l == bits || m << l == 0).then_some(l)
}

/// `/N` when the mask is a prefix (`/32` and `/128` too), else
/// `/address`.
pub(super) fn mask_suffix(family: Family, mask: u128) -> String {
    match prefix_len(family, mask) {
        Some(l) => format!("/{l}"),
        None => format!("/{}", addr_text(family, mask)),
    }
}

pub(super) fn inv(out: &mut String, i: bool) {
    if i {
        out.push_str(" !");
    }
}

pub(super) fn range<T: std::fmt::Display + PartialEq>(out: &mut String, lo: T, hi: T, sep: char) {
    if lo == hi {
        let _ = write!(out, "{lo}");
    } else {
        let _ = write!(out, "{lo}{sep}{hi}");
    }
}

pub(super) fn states(s: CtStateSet) -> String {
    let v: Vec<&str> = CtStateSet::NAMES
        .iter()
        .filter(|(b, _)| s.contains(*b))
        .map(|(_, n)| *n)
        .collect();
    v.join(",")
}

pub(super) fn statuses(s: CtStatus) -> String {
    if s.0 == 0 {
        return "NONE".to_string();
    }
    let v: Vec<&str> = CtStatus::NAMES
        .iter()
        .filter(|(b, _)| s.0 & b.0 != 0)
        .map(|(_, n)| *n)
        .collect();
    v.join(",")
}

pub(super) fn tcp_flag_names(f: u8) -> String {
    if f == 0 {
        return "NONE".to_string();
    }
    let names = ["FIN", "SYN", "RST", "PSH", "ACK", "URG"];
    let v: Vec<&str> = (0..6)
        .filter(|i| f & (1 << i) != 0)
        .map(|i| names[i])
        .collect();
    v.join(",")
}

pub(super) fn addrtypes(t: AddrTypes) -> String {
    let v: Vec<&str> = (0..12)
        .filter(|i| t.0 & (1 << i) != 0)
        .map(|i| AddrTypes::NAMES[i])
        .collect();
    v.join(",")
}

pub(super) fn events(e: u32) -> String {
    let v: Vec<&str> = (0..8)
        .filter(|i| e & (1 << i) != 0)
        .map(|i| CT_EVENT_NAMES[i])
        .collect();
    v.join(",")
}

const RATES: [(&str, u32); 4] = [
    ("day", 10000 * 86400),
    ("hour", 10000 * 3600),
    ("min", 10000 * 60),
    ("sec", 10000),
];

pub(super) fn rate(avg: u32) -> String {
    if avg == 0 {
        return "inf".to_string();
    }
    let mut i = 1;
    while i < RATES.len() {
        let m = RATES[i].1;
        if avg > m || m / avg < m % avg {
            break;
        }
        i += 1;
    }
    format!("{}/{}", RATES[i - 1].1 / avg, RATES[i - 1].0)
}

/// A NAT range as both printers write it; an IPv6 address range with
/// ports goes in brackets (`[dead::beef]:80`).
pub(super) fn nat_range(out: &mut String, r: &NatRange, family: Family) {
    let bracket = family == Family::V6 && r.port_range().is_some();
    if let Some((a, b)) = r.addr_range() {
        if bracket {
            out.push('[');
        }
        out.push_str(&addr_text(family, a));
        if a != b {
            let _ = write!(out, "-{}", addr_text(family, b));
        }
        if bracket {
            out.push(']');
        }
    }
    if let Some((lo, hi)) = r.port_range() {
        out.push(':');
        range(out, lo, hi, '-');
        if r.has(nat_flags::PROTO_OFFSET) {
            let _ = write!(out, "/{}", r.base_port);
        }
    }
}

pub(super) fn mac(a: &[u8; 6]) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        a[0], a[1], a[2], a[3], a[4], a[5]
    )
}

// Option groups both printers write alike but for the option names: save
// writes ` --name value` (`pre` = `--`), -L ` name value` (`pre` = ``).

/// `-m conntrack`'s options, `!` before each inverted one.
pub(super) fn conntrack_options(out: &mut String, ct: &ConntrackMatch, family: Family, pre: &str) {
    if let Some((s, i)) = ct.state {
        inv(out, i);
        let _ = write!(out, " {pre}ctstate {}", states(s));
    }
    if let Some((p, i)) = ct.proto {
        inv(out, i);
        let _ = write!(out, " {pre}ctproto {p}");
    }
    for (o, a) in [
        ("ctorigsrc", &ct.orig_src),
        ("ctorigdst", &ct.orig_dst),
        ("ctreplsrc", &ct.repl_src),
        ("ctrepldst", &ct.repl_dst),
    ] {
        if let Some(a) = a {
            inv(out, a.invert);
            let _ = write!(out, " {pre}{o} {}", addr_text(family, a.addr));
            if a.mask != family.host_mask() {
                out.push_str(&mask_suffix(family, a.mask));
            }
        }
    }
    for (o, p) in [
        ("ctorigsrcport", &ct.orig_src_port),
        ("ctorigdstport", &ct.orig_dst_port),
        ("ctreplsrcport", &ct.repl_src_port),
        ("ctrepldstport", &ct.repl_dst_port),
    ] {
        if let Some(r) = p {
            inv(out, r.invert);
            let _ = write!(out, " {pre}{o} ");
            range(out, r.lo, r.hi, ':');
        }
    }
    if let Some((s, i)) = ct.status {
        inv(out, i);
        let _ = write!(out, " {pre}ctstatus {}", statuses(s));
    }
    if let Some((lo, hi, i)) = ct.expire {
        inv(out, i);
        let _ = write!(out, " {pre}ctexpire ");
        range(out, lo, hi, ':');
    }
    if let Some(d) = ct.dir_reply {
        let dir = if d { "REPLY" } else { "ORIGINAL" };
        let _ = write!(out, " {pre}ctdir {dir}");
    }
}

/// The CT target's options.
pub(super) fn ct_target_options(out: &mut String, ct: &CtTarget, pre: &str) {
    if ct.notrack {
        let _ = write!(out, " {pre}notrack");
    }
    if let Some(h) = &ct.helper {
        let _ = write!(out, " {pre}helper {h}");
    }
    if let Some(h) = &ct.timeout {
        let _ = write!(out, " {pre}timeout {h}");
    }
    if ct.ctevents != 0 {
        let _ = write!(out, " {pre}ctevents {}", events(ct.ctevents));
    }
    if ct.expevents != 0 {
        let _ = write!(out, " {pre}expevents new");
    }
    if let Some(z) = ct.zone.filter(|z| *z != 0) {
        let _ = write!(out, " {pre}zone {z}");
    }
}

/// The NFLOG target's options after the prefix (which the printers quote
/// differently).
pub(super) fn nflog_options(out: &mut String, n: &NflogTarget, pre: &str) {
    if n.group != 0 {
        let _ = write!(out, " {pre}nflog-group {}", n.group);
    }
    match n.len {
        Some((l, true)) => {
            let _ = write!(out, " {pre}nflog-size {l}");
        }
        Some((l, false)) if l != 0 => {
            let _ = write!(out, " {pre}nflog-range {l}");
        }
        _ => {}
    }
    if n.threshold != 1 {
        let _ = write!(out, " {pre}nflog-threshold {}", n.threshold);
    }
}

/// The NAT targets' flags.
pub(super) fn nat_flag_names(out: &mut String, r: &NatRange, pre: &str) {
    for (bit, name) in [
        (nat_flags::PROTO_RANDOM, "random"),
        (nat_flags::PROTO_RANDOM_FULLY, "random-fully"),
        (nat_flags::PERSISTENT, "persistent"),
    ] {
        if r.has(bit) {
            let _ = write!(out, " {pre}{name}");
        }
    }
}

/// The LOG target's flags (`pre` is `--log-` for save).
pub(super) fn log_flags(out: &mut String, flags: u8, pre: &str) {
    for (bit, name) in [
        (1, "tcp-sequence"),
        (2, "tcp-options"),
        (4, "ip-options"),
        (8, "uid"),
    ] {
        if flags & bit != 0 {
            let _ = write!(out, " {pre}{name}");
        }
    }
}

/// The words one printer uses for `-m addrtype`'s options.
pub(super) struct AddrtypeWords {
    /// The source and destination types, then the two interface limits.
    pub(super) options: [&'static str; 4],
    /// `!` on the types (`-L`: ` src-type !LOCAL`), not before the option
    /// (`-S`: ` ! --src-type LOCAL`).
    pub(super) inv_on_types: bool,
}

/// `-m addrtype`'s options as set in `m` (an `Addrtype` match: anything
/// else prints nothing).
pub(super) fn addrtype_options(out: &mut String, m: &Match, w: &AddrtypeWords) {
    let Match::Addrtype {
        src,
        dst,
        limit_iface_in,
        limit_iface_out,
    } = m
    else {
        return;
    };
    for (o, t) in [(w.options[0], src), (w.options[1], dst)] {
        if let Some((t, i)) = t {
            let on_types = if *i && w.inv_on_types { "!" } else { "" };
            if !w.inv_on_types {
                inv(out, *i);
            }
            let _ = write!(out, " {o} {on_types}{}", addrtypes(*t));
        }
    }
    for (o, on) in [
        (w.options[2], limit_iface_in),
        (w.options[3], limit_iface_out),
    ] {
        if *on {
            out.push_str(o);
        }
    }
}

/// The words one printer uses for `-m recent`'s options.
pub(super) struct RecentWords {
    /// `--set`, `--rcheck`, `--update`, `--remove` (each with its blank).
    pub(super) cmds: [&'static str; 4],
    pub(super) seconds: &'static str,
    pub(super) reap: &'static str,
    pub(super) hit_count: &'static str,
    pub(super) rttl: &'static str,
}

/// `-m recent`'s command, then the options that differ from their
/// defaults; the list name, mask and side follow in each printer's order.
pub(super) fn recent_options(out: &mut String, r: &RecentMatch, w: &RecentWords) {
    out.push_str(match r.cmd {
        RecentCmd::Set => w.cmds[0],
        RecentCmd::Rcheck => w.cmds[1],
        RecentCmd::Update => w.cmds[2],
        RecentCmd::Remove => w.cmds[3],
    });
    if r.seconds != 0 {
        let _ = write!(out, "{}{}", w.seconds, r.seconds);
    }
    if r.reap {
        out.push_str(w.reap);
    }
    if r.hit_count != 0 {
        let _ = write!(out, "{}{}", w.hit_count, r.hit_count);
    }
    if r.rttl {
        out.push_str(w.rttl);
    }
}

/// ttl's and hl's comparison as saved (`pre`: `--ttl` or `--hl`).
pub(super) fn ttl_save(out: &mut String, op: TtlOp, value: u8, pre: &str) {
    let _ = match op {
        TtlOp::Eq => write!(out, " {pre}-eq {value}"),
        TtlOp::Ne => write!(out, " ! {pre}-eq {value}"),
        TtlOp::Lt => write!(out, " {pre}-lt {value}"),
        TtlOp::Gt => write!(out, " {pre}-gt {value}"),
    };
}

/// ttl's and hl's comparison as `-L` prints it (`what`: `TTL` or `HL`).
pub(super) fn ttl_list(out: &mut String, op: TtlOp, value: u8, what: &str) {
    let o = match op {
        TtlOp::Eq => "==",
        TtlOp::Ne => "!=",
        TtlOp::Lt => "<",
        TtlOp::Gt => ">",
    };
    let _ = write!(out, " {what} match {what} {o} {value}");
}

/// `--icmp-type` / `--icmpv6-type` as `-L` prints it (libipt_icmp's and
/// libip6t_icmp6's print_icmptype, byte for byte): `label` is ` icmp` or
/// ` ipv6-icmp`, `table` the names to try unless `numeric`.
pub(super) fn icmp_list(
    out: &mut String,
    label: &str,
    (icmp_type, code_lo, code_hi, invert): (u8, u8, u8, bool),
    table: &[(&str, u8, u8, u8)],
    numeric: bool,
) {
    out.push_str(label);
    if !numeric {
        if let Some((n, ..)) = table
            .iter()
            .find(|(_, t, lo, hi)| *t == icmp_type && *lo == code_lo && *hi == code_hi)
        {
            let _ = write!(out, " {}{n}", if invert { "!" } else { "" });
            return;
        }
    }
    if invert {
        out.push_str(" !");
    }
    let _ = write!(out, "type {icmp_type}");
    if code_lo == code_hi {
        let _ = write!(out, " code {code_lo}");
    } else if code_lo != 0 || code_hi != 0xFF {
        let _ = write!(out, " codes {code_lo}-{code_hi}");
    }
}
