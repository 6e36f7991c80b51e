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

/// An address with its mask as `-L` prints it: no `/32` or `/128`.
fn list_addr(family: Family, a: u128, mask: u128) -> String {
    if mask == family.host_mask() {
        addr_text(family, a)
    } else {
        format!("{}{}", addr_text(family, a), mask_suffix(family, mask))
    }
}

fn match_list(out: &mut String, m: &Match, family: Family, numeric: bool, proto: &str) {
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
        } => icmp_list(
            out,
            " icmp",
            (*icmp_type, *code_lo, *code_hi, *invert),
            &names::ICMP_NAMES,
            numeric,
        ),
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
        Match::Conntrack(ct) => conntrack_options(out, ct, family, ""),
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
        Match::Iprange(r) => {
            for (o, r) in [("source", &r.src), ("destination", &r.dst)] {
                if let Some((a, b, i)) = r {
                    let i = if *i { "! " } else { "" };
                    let (a, b) = (addr_text(family, *a), addr_text(family, *b));
                    let _ = write!(out, " {o} IP range {i}{a}-{b}");
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
        Match::Ttl { op, value } => ttl_list(out, *op, *value, "TTL"),
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
                addr_text(family, r.mask)
            );
        }
        // ip6tables' own matches (every variant not above).
        _ => super::format6::match_list6(out, m, numeric),
    }
}

fn target_list(out: &mut String, t: &Target, family: Family, numeric: bool) {
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
            nat_range(out, r, family);
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
        Target::Hl { mode, value } => {
            let how = match mode {
                HlMode::Set => "set to",
                HlMode::Inc => "increment by",
                HlMode::Dec => "decrement by",
            };
            let _ = write!(out, " HL {how} {value}");
        }
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

/// The matches and target options of a rule of `family` as `-L` prints
/// them.
pub fn list_rule_tail(out: &mut String, r: &Rule, family: Family, numeric: bool) {
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
        match_list(out, m, family, numeric, proto);
    }
    target_list(out, &r.target, family, numeric);
}

/// One rule line of `iptables -L` (no newline), its addresses of
/// `family`.
pub fn list_rule(out: &mut String, r: &Rule, n: usize, f: ListFormat, family: Family) {
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
    // "%-4s ": a name of five letters or more still gets its blank
    // (`ipv6-icmp --`, `udplite --`).
    match names::proto_list_name(r.proto, f.numeric) {
        Some(p) => {
            let _ = write!(out, "{p:<4} ");
        }
        None => {
            let _ = write!(out, "{:<4} ", r.proto);
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
        // iptables says `anywhere` for a zero mask, ip6tables for the
        // unspecified address (whatever the mask: `::/127` too).
        let anywhere = match family {
            Family::V4 => a.mask == 0 && !a.invert,
            Family::V6 => a.addr == 0,
        };
        let s = if anywhere && !f.numeric {
            "anywhere".to_string()
        } else if !f.numeric {
            // xtables_ipaddr_to_anyname: host name, else network name
            // (IPv4 only).
            let name = names::host_name(family, a.addr).or_else(|| match family {
                Family::V4 => names::net_name(a.addr as u32),
                Family::V6 => None,
            });
            match name {
                Some(h) if a.mask == family.host_mask() => h.to_string(),
                Some(h) => format!("{h}{}", mask_suffix(family, a.mask)),
                None => list_addr_any(family, a.addr, a.mask),
            }
        } else {
            list_addr_any(family, a.addr, a.mask)
        };
        out.push(if a.invert { '!' } else { ' ' });
        let _ = write!(out, "{s:<19} ");
    }
    list_rule_tail(out, r, family, f.numeric);
    let trimmed = out[start..].trim_end().len();
    out.truncate(start + trimmed);
}

pub(crate) fn list_addr_any(family: Family, a: u128, mask: u128) -> String {
    if mask == 0 {
        format!("{}/0", addr_text(family, a))
    } else {
        list_addr(family, a, mask)
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
            list_rule(out, r, i + 1, f, t.family);
            out.push('\n');
        }
    }
}
