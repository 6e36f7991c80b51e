//! The `iptables -L` printer: the chain headers with policy or
//! reference count, the column header, and one line per rule (counters
//! with K/M/G suffixes unless `-x`, target, protocol, options, interfaces
//! with `-v`, addresses as names unless `-n`), then the matches and target
//! in -L's own words.
#![forbid(unsafe_code)]

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

fn list_ports(out: &mut String, name: &str, r: &Range16, proto: &str, numeric: bool) {
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
            if let Some(r) = sport {
                list_ports(out, "spt", r, "tcp", numeric);
            }
            if let Some(r) = dport {
                list_ports(out, "dpt", r, "tcp", numeric);
            }
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
            if let Some(r) = sport {
                list_ports(out, "spt", r, "udp", numeric);
            }
            if let Some(r) = dport {
                list_ports(out, "dpt", r, "udp", numeric);
            }
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
        Match::Conntrack(ct) => {
            let iv = |b: bool| if b { " !" } else { "" };
            if let Some((s, i)) = ct.state {
                let _ = write!(out, "{} ctstate {}", iv(i), states(s));
            }
            if let Some((p, i)) = ct.proto {
                let _ = write!(out, "{} ctproto {p}", iv(i));
            }
            for (o, a) in [
                ("ctorigsrc", &ct.orig_src),
                ("ctorigdst", &ct.orig_dst),
                ("ctreplsrc", &ct.repl_src),
                ("ctrepldst", &ct.repl_dst),
            ] {
                if let Some(a) = a {
                    let _ = write!(out, "{} {o} {}", iv(a.invert), list_addr(a.addr, a.mask));
                }
            }
            for (o, p) in [
                ("ctorigsrcport", &ct.orig_src_port),
                ("ctorigdstport", &ct.orig_dst_port),
                ("ctreplsrcport", &ct.repl_src_port),
                ("ctrepldstport", &ct.repl_dst_port),
            ] {
                if let Some(r) = p {
                    let _ = write!(out, "{} {o} ", iv(r.invert));
                    range(out, r.lo, r.hi, ':');
                }
            }
            if let Some((s, i)) = ct.status {
                let _ = write!(out, "{} ctstatus {}", iv(i), statuses(s));
            }
            if let Some((lo, hi, i)) = ct.expire {
                let _ = write!(out, "{} ctexpire ", iv(i));
                range(out, lo, hi, ':');
            }
            if let Some(d) = ct.dir_reply {
                out.push_str(if d { " ctdir REPLY" } else { " ctdir ORIGINAL" });
            }
        }
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
        Match::Addrtype {
            src,
            dst,
            limit_iface_in,
            limit_iface_out,
        } => {
            out.push_str(" ADDRTYPE match");
            if let Some((t, i)) = src {
                let _ = write!(
                    out,
                    " src-type {}{}",
                    if *i { "!" } else { "" },
                    addrtypes(*t)
                );
            }
            if let Some((t, i)) = dst {
                let _ = write!(
                    out,
                    " dst-type {}{}",
                    if *i { "!" } else { "" },
                    addrtypes(*t)
                );
            }
            if *limit_iface_in {
                out.push_str(" limit-in");
            }
            if *limit_iface_out {
                out.push_str(" limit-out");
            }
        }
        Match::Iprange { src, dst } => {
            if let Some((a, b, i)) = src {
                let _ = write!(
                    out,
                    " source IP range {}{}-{}",
                    if *i { "! " } else { "" },
                    ip(*a),
                    ip(*b)
                );
            }
            if let Some((a, b, i)) = dst {
                let _ = write!(
                    out,
                    " destination IP range {}{}-{}",
                    if *i { "! " } else { "" },
                    ip(*a),
                    ip(*b)
                );
            }
        }
        Match::Limit { avg, burst } => {
            let _ = write!(out, " limit: avg {} burst {burst}", rate(*avg));
        }
        Match::Length(r) => {
            let _ = write!(out, " length {}", if r.invert { "!" } else { "" });
            range(out, r.lo, r.hi, ':');
        }
        Match::Tcpmss(r) => {
            let _ = write!(out, " tcpmss match {}", if r.invert { "!" } else { "" });
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
            out.push_str(match r.cmd {
                RecentCmd::Set => " SET",
                RecentCmd::Rcheck => " CHECK",
                RecentCmd::Update => " UPDATE",
                RecentCmd::Remove => " REMOVE",
            });
            if r.seconds != 0 {
                let _ = write!(out, " seconds: {}", r.seconds);
            }
            if r.reap {
                out.push_str(" reap");
            }
            if r.hit_count != 0 {
                let _ = write!(out, " hit_count: {}", r.hit_count);
            }
            if r.rttl {
                out.push_str(" TTL-Match");
            }
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
                for (bit, n) in [
                    (1, " tcp-sequence"),
                    (2, " tcp-options"),
                    (4, " ip-options"),
                    (8, " uid"),
                ] {
                    if l.flags & bit != 0 {
                        out.push_str(n);
                    }
                }
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
                let _ = if *nfmask == u32::MAX && *ctmask == u32::MAX {
                    write!(out, " CONNMARK save")
                } else if nfmask == ctmask {
                    write!(out, " CONNMARK save mask 0x{nfmask:x}")
                } else {
                    write!(
                        out,
                        " CONNMARK save nfmask 0x{nfmask:x} ctmask ~0x{ctmask:x}"
                    )
                };
            }
            ConnmarkTarget::Restore { nfmask, ctmask } => {
                let _ = if *nfmask == u32::MAX && *ctmask == u32::MAX {
                    write!(out, " CONNMARK restore")
                } else if nfmask == ctmask {
                    write!(out, " CONNMARK restore mask 0x{nfmask:x}")
                } else {
                    write!(
                        out,
                        " CONNMARK restore ctmask 0x{ctmask:x} nfmask ~0x{nfmask:x}"
                    )
                };
            }
        },
        Target::Dnat { range, flags } | Target::Snat { range, flags } => {
            out.push_str(" to:");
            nat_range(out, range);
            list_flags(out, flags);
        }
        Target::Masquerade { ports, flags } => {
            if let Some((lo, hi)) = ports {
                out.push_str(" masq ports: ");
                range(out, *lo, *hi, '-');
            }
            list_flags(out, flags);
        }
        Target::Redirect { ports, flags } => {
            if let Some((lo, hi)) = ports {
                out.push_str(" redir ports ");
                range(out, *lo, *hi, '-');
            }
            list_flags(out, flags);
        }
        Target::Notrack => out.push_str(" NOTRACK"),
        Target::Ct(ct) => {
            out.push_str(" CT");
            if ct.notrack {
                out.push_str(" notrack");
            }
            if let Some(h) = &ct.helper {
                let _ = write!(out, " helper {h}");
            }
            if let Some(h) = &ct.timeout {
                let _ = write!(out, " timeout {h}");
            }
            if ct.ctevents != 0 {
                let _ = write!(out, " ctevents {}", events(ct.ctevents));
            }
            if ct.expevents != 0 {
                out.push_str(" expevents new");
            }
            if let Some(z) = ct.zone.filter(|z| *z != 0) {
                let _ = write!(out, " zone {z}");
            }
        }
        Target::TcpmssSet(m) => {
            let _ = write!(out, " TCPMSS set {m}");
        }
        Target::TcpmssClamp => out.push_str(" TCPMSS clamp to PMTU"),
        Target::Nflog(n) => {
            if let Some(p) = n.prefix.as_deref().filter(|p| !p.is_empty()) {
                let _ = write!(out, " nflog-prefix \"{p}\"");
            }
            if n.group != 0 {
                let _ = write!(out, " nflog-group {}", n.group);
            }
            match n.len {
                Some((l, true)) => {
                    let _ = write!(out, " nflog-size {l}");
                }
                Some((l, false)) if l != 0 => {
                    let _ = write!(out, " nflog-range {l}");
                }
                _ => {}
            }
            if n.threshold != 1 {
                let _ = write!(out, " nflog-threshold {}", n.threshold);
            }
        }
        Target::ChecksumFill => out.push_str(" CHECKSUM fill"),
        _ => {}
    }
}

fn list_flags(out: &mut String, f: &NatFlags) {
    if f.random {
        out.push_str(" random");
    }
    if f.random_fully {
        out.push_str(" random-fully");
    }
    if f.persistent {
        out.push_str(" persistent");
    }
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
