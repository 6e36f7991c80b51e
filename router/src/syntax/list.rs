//! The `iptables -L` printer: the chain headers with policy or
//! reference count, the column header, and one line per rule (counters
//! with K/M/G suffixes unless `-x`, target, protocol, options, interfaces
//! with `-v`, addresses as names unless `-n`), then the matches and target
//! in -L's own words.

use std::fmt::Write;

use super::format::*;
use super::names;
use crate::ruleset::*;

/// Formatting flags of `iptables -L`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ListFormat {
    pub numeric: bool,
    pub verbose: bool,
    pub exact: bool,
    pub line_numbers: bool,
}

fn num(out: &mut String, n: u64, f: ListFormat, notable: bool) {
    if f.exact {
        if notable {
            let _ = write!(out, "{n} ");
        } else {
            let _ = write!(out, "{n:>8} ");
        }
        return;
    }
    if n <= 99999 {
        if notable {
            let _ = write!(out, "{n} ");
        } else {
            let _ = write!(out, "{n:>5} ");
        }
        return;
    }
    let mut n = n;
    for suffix in ["K", "M", "G", "T"] {
        n = (n + 500) / 1000;
        if n <= 9999 || suffix == "T" {
            if notable {
                let _ = write!(out, "{n}{suffix} ");
            } else {
                let _ = write!(out, "{n:>4}{suffix} ");
            }
            return;
        }
    }
}

fn port_str(p: u16, proto: &str, numeric: bool) -> String {
    if !numeric {
        if let Some(n) = names::port_name(p, proto) {
            return n.to_string();
        }
    }
    p.to_string()
}

/// tcp's and udp's `spt:`/`dpt:` (`spts:`/`dpts:` for a range), unless
/// they match every port.
fn list_ports(
    out: &mut String,
    sport: &Option<Range16>,
    dport: &Option<Range16>,
    proto: &str,
    numeric: bool,
) {
    for (name, r) in [("spt", sport), ("dpt", dport)] {
        let Some(r) = r else { continue };
        if r.lo != 0 || r.hi != 65535 || r.invert {
            let i = if r.invert { "!" } else { "" };
            if r.lo == r.hi {
                let _ = write!(out, " {name}:{i}{}", port_str(r.lo, proto, numeric));
            } else {
                let _ = write!(
                    out,
                    " {name}s:{i}{}:{}",
                    port_str(r.lo, proto, numeric),
                    port_str(r.hi, proto, numeric)
                );
            }
        }
    }
}

fn list_addr(a: u32, mask: u32) -> String {
    if mask == u32::MAX {
        ip(a).to_string()
    } else {
        format!("{}{}", ip(a), mask_suffix(mask))
    }
}

fn match_list(out: &mut String, m: &Match, numeric: bool, proto: &str) {
    match m {
        Match::Tcp {
            sport,
            dport,
            flags,
            option,
        } => {
            out.push_str(" tcp");
            list_ports(out, sport, dport, "tcp", numeric);
            if let Some((o, i)) = option {
                let _ = write!(out, " option={}{o}", if *i { "!" } else { "" });
            }
            if let Some((mask, cmp, i)) = flags {
                if *mask != 0 || *i {
                    let _ = write!(out, " flags:{}", if *i { "!" } else { "" });
                    if numeric {
                        let _ = write!(out, "0x{mask:02X}/0x{cmp:02X}");
                    } else {
                        let _ = write!(out, "{}/{}", tcp_flag_names(*mask), tcp_flag_names(*cmp));
                    }
                }
            }
        }
        Match::Udp { sport, dport } => {
            out.push_str(" udp");
            list_ports(out, sport, dport, "udp", numeric);
        }
        Match::Icmp {
            icmp_type,
            code_lo,
            code_hi,
            invert,
        } => {
            // libipt_icmp's print_icmptype, byte for byte.
            out.push_str(" icmp");
            if !numeric {
                if let Some((n, ..)) = names::ICMP_NAMES
                    .iter()
                    .find(|(_, t, lo, hi)| t == icmp_type && lo == code_lo && hi == code_hi)
                {
                    let _ = write!(out, " {}{n}", if *invert { "!" } else { "" });
                    return;
                }
            }
            if *invert {
                out.push_str(" !");
            }
            let _ = write!(out, "type {icmp_type}");
            if *code_lo == *code_hi {
                let _ = write!(out, " code {code_lo}");
            } else if *code_lo != 0 || *code_hi != 0xFF {
                let _ = write!(out, " codes {code_lo}-{code_hi}");
            }
        }
        Match::Multiport {
            kind,
            ports,
            invert,
        } => {
            out.push_str(" multiport ");
            out.push_str(match kind {
                MultiportKind::Src => "sports ",
                MultiportKind::Dst => "dports ",
                MultiportKind::Any => "ports ",
            });
            if *invert {
                out.push_str(" !");
            }
            for (i, (lo, hi)) in ports.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&port_str(*lo, proto, numeric));
                if lo != hi {
                    let _ = write!(out, ":{}", port_str(*hi, proto, numeric));
                }
            }
        }
        Match::Conntrack(ct) => conntrack_options(out, ct, ""),
        Match::State { states: s, invert } => {
            let _ = write!(
                out,
                "{} state {}",
                if *invert { " !" } else { "" },
                states(*s)
            );
        }
        Match::Comment(c) => {
            let _ = write!(out, " /* {c} */");
        }
        Match::Mark(mk) | Match::Connmark(mk) => {
            let _ = write!(
                out,
                " {} match {}0x{:x}",
                m.name(),
                if mk.invert { "! " } else { "" },
                mk.value
            );
            if mk.mask != u32::MAX {
                let _ = write!(out, "/0x{:x}", mk.mask);
            }
        }
        Match::Statistic { mode, invert } => {
            out.push_str(" statistic");
            let i = if *invert { " !" } else { "" };
            match mode {
                StatisticMode::Random { threshold } => {
                    let _ = write!(
                        out,
                        " mode random{i} probability {:.11}",
                        f64::from(*threshold) / 2147483648.0
                    );
                }
                StatisticMode::Nth { every, packet } => {
                    let _ = write!(out, " mode nth{i} every {}", every + 1);
                    if *packet != 0 {
                        let _ = write!(out, " packet {packet}");
                    }
                }
            }
        }
        Match::Addrtype { .. } => {
            out.push_str(" ADDRTYPE match");
            addrtype_options(
                out,
                m,
                &AddrtypeWords {
                    options: ["src-type", "dst-type", " limit-in", " limit-out"],
                    inv_on_types: true,
                },
            );
        }
        Match::Iprange { src, dst } => {
            for (o, r) in [("source", src), ("destination", dst)] {
                if let Some((a, b, i)) = r {
                    let i = if *i { "! " } else { "" };
                    let _ = write!(out, " {o} IP range {i}{}-{}", ip(*a), ip(*b));
                }
            }
        }
        Match::Limit { avg, burst } => {
            let _ = write!(out, " limit: avg {} burst {burst}", rate(*avg));
        }
        Match::Length(r) | Match::Tcpmss(r) => {
            let what = if matches!(m, Match::Length(_)) {
                "length"
            } else {
                "tcpmss match"
            };
            let _ = write!(out, " {what} {}", if r.invert { "!" } else { "" });
            range(out, r.lo, r.hi, ':');
        }
        Match::Ttl { op, value } => {
            let o = match op {
                TtlOp::Eq => "==",
                TtlOp::Ne => "!=",
                TtlOp::Lt => "<",
                TtlOp::Gt => ">",
            };
            let _ = write!(out, " TTL match TTL {o} {value}");
        }
        Match::Mac { addr, invert } => {
            let _ = write!(out, " MAC{} {}", if *invert { " !" } else { "" }, mac(addr));
        }
        Match::Recent(r) => {
            if r.invert {
                out.push_str(" !");
            }
            out.push_str(" recent:");
            recent_options(
                out,
                r,
                &RecentWords {
                    cmds: [" SET", " CHECK", " UPDATE", " REMOVE"],
                    seconds: " seconds: ",
                    reap: " reap",
                    hit_count: " hit_count: ",
                    rttl: " TTL-Match",
                },
            );
            let _ = write!(
                out,
                " name: {} side: {} mask: {}",
                r.name,
                if r.rdest { "dest" } else { "source" },
                ip(r.mask)
            );
        }
    }
}

fn target_list(out: &mut String, t: &Target, numeric: bool) {
    match t {
        Target::Reject(w) => {
            let _ = write!(out, " reject-with {}", w.name());
        }
        Target::Log(l) => {
            out.push_str(" LOG");
            if numeric {
                let _ = write!(out, " flags {} level {}", l.flags, l.level);
            } else {
                // iptables-nft prints nft's syslog level names.
                let lv = [
                    "emerg", "alert", "crit", "err", "warn", "notice", "info", "debug",
                ]
                .get(usize::from(l.level))
                .copied()
                .unwrap_or("?");
                let _ = write!(out, " level {lv}");
                log_flags(out, l.flags, "");
            }
            if let Some(p) = l.prefix.as_deref().filter(|p| !p.is_empty()) {
                let _ = write!(out, " prefix \"{p}\"");
            }
        }
        Target::Mark { value, mask } => {
            xset(out, "MARK", *value, *mask);
        }
        Target::Connmark(c) => match c {
            ConnmarkTarget::SetXmark { value, mask } => xset(out, "CONNMARK", *value, *mask),
            ConnmarkTarget::Save { nfmask, ctmask } => {
                connmark_copy(out, "save", ("nfmask", *nfmask), ("ctmask", *ctmask))
            }
            ConnmarkTarget::Restore { nfmask, ctmask } => {
                connmark_copy(out, "restore", ("ctmask", *ctmask), ("nfmask", *nfmask))
            }
        },
        Target::Dnat(r) | Target::Snat(r) => {
            out.push_str(" to:");
            nat_range(out, r);
            nat_flag_names(out, r, "");
        }
        Target::Masquerade(r) | Target::Redirect(r) => {
            if let Some((lo, hi)) = r.port_range() {
                out.push_str(if matches!(t, Target::Masquerade(_)) {
                    " masq ports: "
                } else {
                    " redir ports "
                });
                range(out, lo, hi, '-');
            }
            nat_flag_names(out, r, "");
        }
        Target::Notrack => out.push_str(" NOTRACK"),
        Target::Ct(ct) => {
            out.push_str(" CT");
            ct_target_options(out, ct, "");
        }
        Target::TcpmssSet(m) => {
            let _ = write!(out, " TCPMSS set {m}");
        }
        Target::TcpmssClamp => out.push_str(" TCPMSS clamp to PMTU"),
        Target::Nflog(n) => {
            if let Some(p) = n.prefix.as_deref().filter(|p| !p.is_empty()) {
                let _ = write!(out, " nflog-prefix \"{p}\"");
            }
            nflog_options(out, n, "");
        }
        Target::ChecksumFill => out.push_str(" CHECKSUM fill"),
        _ => {}
    }
}

/// CONNMARK `save`/`restore`: no masks when both are all ones, one when
/// they are equal, else `first` and the inverse of `second`.
fn connmark_copy(out: &mut String, copy: &str, first: (&str, u32), second: (&str, u32)) {
    let _ = if first.1 == u32::MAX && second.1 == u32::MAX {
        write!(out, " CONNMARK {copy}")
    } else if first.1 == second.1 {
        write!(out, " CONNMARK {copy} mask 0x{:x}", first.1)
    } else {
        write!(
            out,
            " CONNMARK {copy} {} 0x{:x} {} ~0x{:x}",
            first.0, first.1, second.0, second.1
        )
    };
}

fn xset(out: &mut String, n: &str, v: u32, m: u32) {
    let _ = if v == 0 {
        write!(out, " {n} and 0x{:x}", !m)
    } else if v == m {
        write!(out, " {n} or 0x{v:x}")
    } else if m == 0 {
        write!(out, " {n} xor 0x{v:x}")
    } else if m == u32::MAX {
        write!(out, " {n} set 0x{v:x}")
    } else {
        write!(out, " {n} xset 0x{v:x}/0x{m:x}")
    };
}

fn list_target_name(t: &Target) -> &str {
    match t {
        Target::Notrack => "CT",
        _ => t.name(),
    }
}

/// The matches and target options of a rule as `-L` prints them.
pub fn list_rule_tail(out: &mut String, r: &Rule, numeric: bool) {
    if matches!(r.target, Target::Goto(_)) {
        out.push_str("[goto] ");
    }
    let proto = match r.proto {
        17 => "udp",
        132 => "sctp",
        33 => "dccp",
        _ => "tcp",
    };
    for m in &r.matches {
        match_list(out, m, numeric, proto);
    }
    target_list(out, &r.target, numeric);
}

/// One rule line of `iptables -L` (no newline).
pub fn list_rule(out: &mut String, r: &Rule, n: usize, f: ListFormat) {
    let start = out.len();
    if f.line_numbers {
        let _ = write!(out, "{n:<4} ");
    }
    if f.verbose {
        num(out, r.counters.packets, f, false);
        num(out, r.counters.bytes, f, false);
    }
    let _ = write!(out, "{:<9} ", list_target_name(&r.target));
    out.push(if r.proto_invert { '!' } else { ' ' });
    match names::proto_list_name(r.proto, f.numeric) {
        Some(p) => {
            let _ = write!(out, "{p:<5}");
        }
        None => {
            let _ = write!(out, "{:<5}", r.proto);
        }
    }
    match r.fragment {
        Some(i) => {
            out.push(if i { '!' } else { '-' });
            out.push('f');
        }
        None => out.push_str("--"),
    }
    out.push(' ');
    if f.verbose {
        let any = if f.numeric { "*" } else { "any" };
        for i in [&r.in_iface, &r.out_iface] {
            let s = match i {
                Some(i) => format!(
                    "{}{}{}",
                    if i.invert { "!" } else { "" },
                    i.name,
                    if i.wildcard { "+" } else { "" }
                ),
                None => any.to_string(),
            };
            let _ = write!(out, " {s:<6}");
        }
        out.push(' ');
    }
    for a in [&r.src, &r.dst] {
        let s = if a.mask == 0 && !a.invert && !f.numeric {
            "anywhere".to_string()
        } else if !f.numeric {
            // xtables_ipaddr_to_anyname: host name, else network name.
            match names::host_name(a.addr).or_else(|| names::net_name(a.addr)) {
                Some(h) if a.mask == u32::MAX => h.to_string(),
                Some(h) => format!("{h}{}", mask_suffix(a.mask)),
                None => list_addr_any(a.addr, a.mask),
            }
        } else {
            list_addr_any(a.addr, a.mask)
        };
        out.push(if a.invert { '!' } else { ' ' });
        let _ = write!(out, "{s:<19} ");
    }
    list_rule_tail(out, r, f.numeric);
    let trimmed = out[start..].trim_end().len();
    out.truncate(start + trimmed);
}

pub(crate) fn list_addr_any(a: u32, mask: u32) -> String {
    if mask == 0 {
        format!("{}/0", ip(a))
    } else {
        list_addr(a, mask)
    }
}

/// `iptables -L [chain]` for one table.
pub fn list(out: &mut String, t: &Table, chain: Option<&str>, f: ListFormat) {
    let mut first = true;
    let refs = t.reference_counts();
    for c in t.chains_listed() {
        if let Some(n) = chain {
            if n != c.name {
                continue;
            }
        }
        if !first {
            out.push('\n');
        }
        first = false;
        let _ = write!(out, "Chain {}", c.name);
        match c.policy {
            Some(p) => {
                let _ = write!(out, " (policy {}", p.name());
                if f.verbose {
                    out.push(' ');
                    num(out, c.counters.packets, f, true);
                    out.push_str("packets, ");
                    num(out, c.counters.bytes, f, true);
                    out.push_str("bytes");
                }
                out.push_str(")\n");
            }
            None => {
                let _ = writeln!(
                    out,
                    " ({} references)",
                    refs.get(c.name.as_str()).copied().unwrap_or(0)
                );
            }
        }
        let hstart = out.len();
        if f.line_numbers {
            out.push_str("num  ");
        }
        if f.verbose {
            if f.exact {
                // iptables' header is wider than its -x columns here.
                let _ = write!(out, "{:>8} {:>10} ", "pkts", "bytes");
            } else {
                out.push_str(" pkts bytes ");
            }
        }
        out.push_str("target     prot opt ");
        if f.verbose {
            out.push_str("in     out     ");
        }
        out.push_str("source               destination");
        let trimmed = out[hstart..].trim_end().len();
        out.truncate(hstart + trimmed);
        out.push('\n');
        for (i, r) in c.rules.iter().enumerate() {
            list_rule(out, r, i + 1, f);
            out.push('\n');
        }
    }
}
