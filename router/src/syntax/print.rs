//! Printers: the rule specification in iptables-save's canonical order, the
//! `iptables-save` and `iptables -S` forms, and `iptables -L`.

use std::fmt::Write;
use std::net::Ipv4Addr;

use super::names;
use crate::ruleset::*;

fn ip(a: u32) -> Ipv4Addr {
    Ipv4Addr::from(a)
}

/// `/N` when the mask is a prefix, else `/a.b.c.d`.
fn mask_suffix(mask: u32) -> String {
    if mask == u32::MAX {
        return "/32".to_string();
    }
    let l = mask.leading_ones();
    if mask == 0 || (l < 32 && mask << l == 0) {
        format!("/{l}")
    } else {
        format!("/{}", ip(mask))
    }
}

/// `xtables_save_string`: bare when made of safe characters, else quoted.
pub fn save_string(out: &mut String, v: &str) {
    let safe = !v.is_empty()
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    out.push(' ');
    if safe {
        out.push_str(v);
    } else {
        out.push('"');
        for ch in v.chars() {
            if matches!(ch, '"' | '\\' | '\'') {
                out.push('\\');
            }
            out.push(ch);
        }
        out.push('"');
    }
}

fn inv(out: &mut String, i: bool) {
    if i {
        out.push_str(" !");
    }
}

fn range<T: std::fmt::Display + PartialEq>(out: &mut String, lo: T, hi: T, sep: char) {
    if lo == hi {
        let _ = write!(out, "{lo}");
    } else {
        let _ = write!(out, "{lo}{sep}{hi}");
    }
}

fn ct_addr(out: &mut String, opt: &str, a: &AddrMask) {
    inv(out, a.invert);
    let _ = write!(out, " {opt} {}", ip(a.addr));
    if a.mask != u32::MAX {
        out.push_str(&mask_suffix(a.mask));
    }
}

fn states(s: CtState) -> String {
    let v: Vec<&str> = CtState::NAMES
        .iter()
        .filter(|(b, _)| s.contains(*b))
        .map(|(_, n)| *n)
        .collect();
    v.join(",")
}

fn statuses(s: CtStatus) -> String {
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

fn tcp_flag_names(f: u8) -> String {
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

fn addrtypes(t: AddrTypes) -> String {
    let v: Vec<&str> = (0..12)
        .filter(|i| t.0 & (1 << i) != 0)
        .map(|i| AddrTypes::NAMES[i])
        .collect();
    v.join(",")
}

fn events(e: u32) -> String {
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

fn rate(avg: u32) -> String {
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

fn nat_range(out: &mut String, r: &NatRange) {
    if let Some((a, b)) = r.addrs {
        let _ = write!(out, "{}", ip(a));
        if a != b {
            let _ = write!(out, "-{}", ip(b));
        }
    }
    if let Some((lo, hi)) = r.ports {
        out.push(':');
        range(out, lo, hi, '-');
        if let Some(b) = r.base_port {
            let _ = write!(out, "/{b}");
        }
    }
}

fn match_save(out: &mut String, m: &Match) {
    let _ = write!(out, " -m {}", m.name());
    match m {
        Match::Tcp {
            sport,
            dport,
            flags,
            option,
        } => {
            for (o, p) in [("--sport", sport), ("--dport", dport)] {
                if let Some(r) = p {
                    if r.lo != 0 || r.hi != 65535 || r.invert {
                        inv(out, r.invert);
                        let _ = write!(out, " {o} ");
                        range(out, r.lo, r.hi, ':');
                    }
                }
            }
            if let Some((o, i)) = option {
                inv(out, *i);
                let _ = write!(out, " --tcp-option {o}");
            }
            if let Some((mask, cmp, i)) = flags {
                if *mask != 0 || *i {
                    inv(out, *i);
                    let _ = write!(
                        out,
                        " --tcp-flags {} {}",
                        tcp_flag_names(*mask),
                        tcp_flag_names(*cmp)
                    );
                }
            }
        }
        Match::Udp { sport, dport } => {
            for (o, p) in [("--sport", sport), ("--dport", dport)] {
                if let Some(r) = p {
                    if r.lo != 0 || r.hi != 65535 || r.invert {
                        inv(out, r.invert);
                        let _ = write!(out, " {o} ");
                        range(out, r.lo, r.hi, ':');
                    }
                }
            }
        }
        Match::Icmp {
            icmp_type,
            code_lo,
            code_hi,
            invert,
        } => {
            inv(out, *invert);
            if *icmp_type == 0xFF && *code_lo == 0 && *code_hi == 0xFF {
                out.push_str(" --icmp-type any");
            } else {
                let _ = write!(out, " --icmp-type {icmp_type}");
                if *code_lo != 0 || *code_hi != 0xFF {
                    let _ = write!(out, "/{code_lo}");
                    if code_hi != code_lo {
                        let _ = write!(out, ":{code_hi}");
                    }
                }
            }
        }
        Match::Multiport {
            kind,
            ports,
            invert,
        } => {
            inv(out, *invert);
            out.push_str(match kind {
                MultiportKind::Src => " --sports ",
                MultiportKind::Dst => " --dports ",
                MultiportKind::Any => " --ports ",
            });
            for (i, (lo, hi)) in ports.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                range(out, *lo, *hi, ':');
            }
        }
        Match::Conntrack(ct) => {
            if let Some((s, i)) = ct.state {
                inv(out, i);
                let _ = write!(out, " --ctstate {}", states(s));
            }
            if let Some((p, i)) = ct.proto {
                inv(out, i);
                let _ = write!(out, " --ctproto {p}");
            }
            for (o, a) in [
                ("--ctorigsrc", &ct.orig_src),
                ("--ctorigdst", &ct.orig_dst),
                ("--ctreplsrc", &ct.repl_src),
                ("--ctrepldst", &ct.repl_dst),
            ] {
                if let Some(a) = a {
                    ct_addr(out, o, a);
                }
            }
            for (o, p) in [
                ("--ctorigsrcport", &ct.orig_src_port),
                ("--ctorigdstport", &ct.orig_dst_port),
                ("--ctreplsrcport", &ct.repl_src_port),
                ("--ctrepldstport", &ct.repl_dst_port),
            ] {
                if let Some(r) = p {
                    inv(out, r.invert);
                    let _ = write!(out, " {o} ");
                    range(out, r.lo, r.hi, ':');
                }
            }
            if let Some((s, i)) = ct.status {
                inv(out, i);
                let _ = write!(out, " --ctstatus {}", statuses(s));
            }
            if let Some((lo, hi, i)) = ct.expire {
                inv(out, i);
                out.push_str(" --ctexpire ");
                range(out, lo, hi, ':');
            }
            if let Some(d) = ct.dir_reply {
                out.push_str(if d {
                    " --ctdir REPLY"
                } else {
                    " --ctdir ORIGINAL"
                });
            }
        }
        Match::State { states: s, invert } => {
            inv(out, *invert);
            let _ = write!(out, " --state {}", states(*s));
        }
        Match::Comment(c) => {
            out.push_str(" --comment");
            save_string(out, c);
        }
        Match::Mark(m) | Match::Connmark(m) => {
            inv(out, m.invert);
            let _ = write!(out, " --mark 0x{:x}", m.value);
            if m.mask != u32::MAX {
                let _ = write!(out, "/0x{:x}", m.mask);
            }
        }
        Match::Statistic { mode, invert } => match mode {
            StatisticMode::Random { threshold } => {
                out.push_str(" --mode random");
                inv(out, *invert);
                let _ = write!(
                    out,
                    " --probability {:.11}",
                    f64::from(*threshold) / 2147483648.0
                );
            }
            StatisticMode::Nth { every, packet } => {
                out.push_str(" --mode nth");
                inv(out, *invert);
                let _ = write!(out, " --every {} --packet {packet}", every + 1);
            }
        },
        Match::Addrtype {
            src,
            dst,
            limit_iface_in,
            limit_iface_out,
        } => {
            if let Some((t, i)) = src {
                inv(out, *i);
                let _ = write!(out, " --src-type {}", addrtypes(*t));
            }
            if let Some((t, i)) = dst {
                inv(out, *i);
                let _ = write!(out, " --dst-type {}", addrtypes(*t));
            }
            if *limit_iface_in {
                out.push_str(" --limit-iface-in");
            }
            if *limit_iface_out {
                out.push_str(" --limit-iface-out");
            }
        }
        Match::Iprange { src, dst } => {
            for (o, r) in [("--src-range", src), ("--dst-range", dst)] {
                if let Some((a, b, i)) = r {
                    inv(out, *i);
                    let _ = write!(out, " {o} {}-{}", ip(*a), ip(*b));
                }
            }
        }
        Match::Limit { avg, burst } => {
            let _ = write!(out, " --limit {}", rate(*avg));
            if *burst != 5 {
                let _ = write!(out, " --limit-burst {burst}");
            }
        }
        Match::Length(r) => {
            inv(out, r.invert);
            out.push_str(" --length ");
            range(out, r.lo, r.hi, ':');
        }
        Match::Tcpmss(r) => {
            inv(out, r.invert);
            out.push_str(" --mss ");
            range(out, r.lo, r.hi, ':');
        }
        Match::Ttl { op, value } => {
            let _ = match op {
                TtlOp::Eq => write!(out, " --ttl-eq {value}"),
                TtlOp::Ne => write!(out, " ! --ttl-eq {value}"),
                TtlOp::Lt => write!(out, " --ttl-lt {value}"),
                TtlOp::Gt => write!(out, " --ttl-gt {value}"),
            };
        }
        Match::Recent(r) => {
            inv(out, r.invert);
            out.push_str(match r.cmd {
                RecentCmd::Set => " --set",
                RecentCmd::Rcheck => " --rcheck",
                RecentCmd::Update => " --update",
                RecentCmd::Remove => " --remove",
            });
            if r.seconds != 0 {
                let _ = write!(out, " --seconds {}", r.seconds);
            }
            if r.reap {
                out.push_str(" --reap");
            }
            if r.hit_count != 0 {
                let _ = write!(out, " --hitcount {}", r.hit_count);
            }
            if r.rttl {
                out.push_str(" --rttl");
            }
            let _ = write!(out, " --name {} --mask {}", r.name, ip(r.mask));
            out.push_str(if r.rdest { " --rdest" } else { " --rsource" });
        }
        Match::Mac { addr, invert } => {
            inv(out, *invert);
            let _ = write!(out, " --mac-source {}", mac(addr));
        }
    }
}

fn mac(a: &[u8; 6]) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        a[0], a[1], a[2], a[3], a[4], a[5]
    )
}

fn nat_flags(out: &mut String, f: &NatFlags) {
    if f.random {
        out.push_str(" --random");
    }
    if f.random_fully {
        out.push_str(" --random-fully");
    }
    if f.persistent {
        out.push_str(" --persistent");
    }
}

fn target_save(out: &mut String, t: &Target) {
    match t {
        Target::None => {}
        Target::Goto(c) => {
            let _ = write!(out, " -g {c}");
        }
        _ => {
            let _ = write!(out, " -j {}", t.name());
        }
    }
    match t {
        Target::Reject(w) => {
            let _ = write!(out, " --reject-with {}", w.name());
        }
        Target::Log(l) => {
            if let Some(p) = l.prefix.as_deref().filter(|p| !p.is_empty()) {
                out.push_str(" --log-prefix");
                save_string(out, p);
            }
            if l.level != 4 {
                let _ = write!(out, " --log-level {}", l.level);
            }
            for (bit, n) in [
                (1, " --log-tcp-sequence"),
                (2, " --log-tcp-options"),
                (4, " --log-ip-options"),
                (8, " --log-uid"),
            ] {
                if l.flags & bit != 0 {
                    out.push_str(n);
                }
            }
        }
        Target::Mark { value, mask } => {
            let _ = write!(out, " --set-xmark 0x{value:x}/0x{mask:x}");
        }
        Target::Connmark(c) => {
            let _ = match c {
                ConnmarkTarget::SetXmark { value, mask } => {
                    write!(out, " --set-xmark 0x{value:x}/0x{mask:x}")
                }
                ConnmarkTarget::Save { nfmask, ctmask } => {
                    write!(
                        out,
                        " --save-mark --nfmask 0x{nfmask:x} --ctmask 0x{ctmask:x}"
                    )
                }
                ConnmarkTarget::Restore { nfmask, ctmask } => {
                    write!(
                        out,
                        " --restore-mark --nfmask 0x{nfmask:x} --ctmask 0x{ctmask:x}"
                    )
                }
            };
        }
        Target::Dnat { range, flags } | Target::Snat { range, flags } => {
            out.push_str(if matches!(t, Target::Dnat { .. }) {
                " --to-destination "
            } else {
                " --to-source "
            });
            nat_range(out, range);
            nat_flags(out, flags);
        }
        Target::Masquerade { ports, flags } | Target::Redirect { ports, flags } => {
            if let Some((lo, hi)) = ports {
                out.push_str(" --to-ports ");
                range(out, *lo, *hi, '-');
            }
            nat_flags(out, flags);
        }
        Target::Ct(ct) => {
            if ct.notrack {
                out.push_str(" --notrack");
            }
            if let Some(h) = &ct.helper {
                let _ = write!(out, " --helper {h}");
            }
            if let Some(h) = &ct.timeout {
                let _ = write!(out, " --timeout {h}");
            }
            if ct.ctevents != 0 {
                let _ = write!(out, " --ctevents {}", events(ct.ctevents));
            }
            if ct.expevents != 0 {
                out.push_str(" --expevents new");
            }
            if let Some(z) = ct.zone.filter(|z| *z != 0) {
                let _ = write!(out, " --zone {z}");
            }
        }
        Target::TcpmssSet(m) => {
            let _ = write!(out, " --set-mss {m}");
        }
        Target::TcpmssClamp => out.push_str(" --clamp-mss-to-pmtu"),
        Target::Nflog(n) => {
            if let Some(p) = n.prefix.as_deref().filter(|p| !p.is_empty()) {
                out.push_str(" --nflog-prefix");
                save_string(out, p);
            }
            if n.group != 0 {
                let _ = write!(out, " --nflog-group {}", n.group);
            }
            match n.len {
                Some((l, true)) => {
                    let _ = write!(out, " --nflog-size {l}");
                }
                Some((l, false)) if l != 0 => {
                    let _ = write!(out, " --nflog-range {l}");
                }
                _ => {}
            }
            if n.threshold != 1 {
                let _ = write!(out, " --nflog-threshold {}", n.threshold);
            }
        }
        Target::ChecksumFill => out.push_str(" --checksum-fill"),
        _ => {}
    }
}

fn iface(out: &mut String, opt: &str, i: &Option<Box<Iface>>) {
    if let Some(i) = i {
        inv(out, i.invert);
        let _ = write!(
            out,
            " {opt} {}{}",
            i.name,
            if i.wildcard { "+" } else { "" }
        );
    }
}

/// The rule specification after `-A CHAIN` in canonical order. With
/// `counters`, `-c P B` goes before the target (as `iptables -v -S`).
pub fn rule_spec(out: &mut String, r: &Rule, counters: bool) {
    for (o, a) in [("-s", &r.src), ("-d", &r.dst)] {
        if a.mask != 0 || a.invert {
            inv(out, a.invert);
            let _ = write!(out, " {o} {}{}", ip(a.addr), mask_suffix(a.mask));
        }
    }
    iface(out, "-i", &r.in_iface);
    iface(out, "-o", &r.out_iface);
    if r.proto != 0 || r.proto_invert {
        inv(out, r.proto_invert);
        match names::proto_save_name(r.proto) {
            Some(n) => {
                let _ = write!(out, " -p {n}");
            }
            None => {
                let _ = write!(out, " -p {}", r.proto);
            }
        }
    }
    if let Some(i) = r.fragment {
        inv(out, i);
        out.push_str(" -f");
    }
    for m in &r.matches {
        match_save(out, m);
    }
    if counters {
        let _ = write!(out, " -c {} {}", r.counters.packets, r.counters.bytes);
    }
    target_save(out, &r.target);
}

/// `iptables-save` output for one table (no `#` lines). With `counters`,
/// rules get `[p:b]` prefixes (`iptables-save -c`); chain lines always carry
/// counters as iptables-save prints them.
pub fn save_table(out: &mut String, t: &Table, counters: bool) {
    let _ = writeln!(out, "*{}", t.kind.name());
    let chains = t.chains_listed();
    for c in &chains {
        match c.policy {
            Some(p) => {
                let _ = writeln!(
                    out,
                    ":{} {} [{}:{}]",
                    c.name,
                    p.name(),
                    c.counters.packets,
                    c.counters.bytes
                );
            }
            None => {
                let _ = writeln!(out, ":{} - [0:0]", c.name);
            }
        }
    }
    for c in &chains {
        for r in &c.rules {
            if counters {
                let _ = write!(out, "[{}:{}] ", r.counters.packets, r.counters.bytes);
            }
            let _ = write!(out, "-A {}", c.name);
            rule_spec(out, r, false);
            out.push('\n');
        }
    }
    out.push_str("COMMIT\n");
}

/// `iptables-save` for every present table, in iptables-nft's order
/// (mangle, security, raw, filter, nat), without `#` lines.
pub fn save(rs: &Ruleset, counters: bool) -> String {
    let mut out = String::new();
    for k in [
        TableKind::Mangle,
        TableKind::Security,
        TableKind::Raw,
        TableKind::Filter,
        TableKind::Nat,
    ] {
        if rs.is_present(k) {
            save_table(&mut out, rs.table(k), counters);
        }
    }
    out
}

/// `iptables-save` with its `#` lines around each table, as the real tool
/// prints them: `tool` is e.g. `iptables-save v1.8.9 (nf_tables)`, `when`
/// a ctime-style date (`Thu Nov 26 00:21:28 2026`); the caller supplies both
/// (no clock is read here).
pub fn save_with_comments(rs: &Ruleset, counters: bool, tool: &str, when: &str) -> String {
    let mut out = String::new();
    for k in [
        TableKind::Mangle,
        TableKind::Security,
        TableKind::Raw,
        TableKind::Filter,
        TableKind::Nat,
    ] {
        if rs.is_present(k) {
            let _ = writeln!(out, "# Generated by {tool} on {when}");
            save_table(&mut out, rs.table(k), counters);
            let _ = writeln!(out, "# Completed on {when}");
        }
    }
    out
}

/// `iptables -S [chain [num]]`; `verbose` adds `-c` counters.
pub fn list_rules(
    out: &mut String,
    t: &Table,
    chain: Option<&str>,
    num: Option<usize>,
    verbose: bool,
) {
    let chains: Vec<&Chain> = t
        .chains_listed()
        .into_iter()
        .filter(|c| chain.map(|n| n == c.name).unwrap_or(true))
        .collect();
    if num.is_none() || num == Some(0) {
        for c in &chains {
            match c.policy {
                Some(p) => {
                    let _ = write!(out, "-P {} {}", c.name, p.name());
                    if verbose {
                        let _ = write!(out, " -c {} {}", c.counters.packets, c.counters.bytes);
                    }
                    out.push('\n');
                }
                None => {
                    let _ = writeln!(out, "-N {}", c.name);
                }
            }
        }
    }
    for c in &chains {
        for (i, r) in c.rules.iter().enumerate() {
            if let Some(n) = num {
                if n != 0 && n != i + 1 {
                    continue;
                }
            }
            let _ = write!(out, "-A {}", c.name);
            rule_spec(out, r, verbose);
            out.push('\n');
        }
    }
}

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
