//! The `iptables-save` and `iptables -S` printer: each rule's
//! specification in iptables-save's canonical order (`-s -d -i -o -p -f`,
//! the matches with their options, `-c`, the target with its options),
//! whole tables with their chain lines, and `-S`'s `-P`/`-N` lines.

use std::fmt::Write;

use super::format::*;
use super::names;
use crate::ruleset::*;

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

/// tcp's and udp's `--sport`/`--dport`, unless they match every port.
fn port_options(out: &mut String, sport: &Option<Range16>, dport: &Option<Range16>) {
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

fn match_save(out: &mut String, m: &Match, family: Family) {
    let _ = write!(out, " -m {}", m.name());
    match m {
        Match::Tcp {
            sport,
            dport,
            flags,
            option,
        } => {
            port_options(out, sport, dport);
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
        Match::Udp { sport, dport } => port_options(out, sport, dport),
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
        Match::Conntrack(ct) => conntrack_options(out, ct, family, "--"),
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
        Match::Addrtype { .. } => addrtype_options(
            out,
            m,
            &AddrtypeWords {
                options: [
                    "--src-type",
                    "--dst-type",
                    " --limit-iface-in",
                    " --limit-iface-out",
                ],
                inv_on_types: false,
            },
        ),
        Match::Iprange(r) => {
            for (o, r) in [("--src-range", &r.src), ("--dst-range", &r.dst)] {
                if let Some((a, b, i)) = r {
                    inv(out, *i);
                    let (a, b) = (addr_text(family, *a), addr_text(family, *b));
                    let _ = write!(out, " {o} {a}-{b}");
                }
            }
        }
        Match::Limit { avg, burst } => {
            let _ = write!(out, " --limit {}", rate(*avg));
            if *burst != 5 {
                let _ = write!(out, " --limit-burst {burst}");
            }
        }
        Match::Length(r) | Match::Tcpmss(r) => {
            inv(out, r.invert);
            out.push_str(if matches!(m, Match::Length(_)) {
                " --length "
            } else {
                " --mss "
            });
            range(out, r.lo, r.hi, ':');
        }
        Match::Ttl { op, value } => ttl_save(out, *op, *value, "--ttl"),
        Match::Recent(r) => {
            inv(out, r.invert);
            recent_options(
                out,
                r,
                &RecentWords {
                    cmds: [" --set", " --rcheck", " --update", " --remove"],
                    seconds: " --seconds ",
                    reap: " --reap",
                    hit_count: " --hitcount ",
                    rttl: " --rttl",
                },
            );
            let mask = addr_text(family, r.mask);
            let _ = write!(out, " --name {} --mask {mask}", r.name);
            out.push_str(if r.rdest { " --rdest" } else { " --rsource" });
        }
        Match::Mac { addr, invert } => {
            inv(out, *invert);
            let _ = write!(out, " --mac-source {}", mac(addr));
        }
        // ip6tables' own matches (every variant not above).
        _ => super::format6::match_save6(out, m),
    }
}

fn target_save(out: &mut String, t: &Target, family: Family) {
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
            log_flags(out, l.flags, "--log-");
        }
        Target::Mark { value, mask } => {
            let _ = write!(out, " --set-xmark 0x{value:x}/0x{mask:x}");
        }
        Target::Connmark(c) => {
            let _ = match c {
                ConnmarkTarget::SetXmark { value, mask } => {
                    write!(out, " --set-xmark 0x{value:x}/0x{mask:x}")
                }
                ConnmarkTarget::Save { nfmask, ctmask }
                | ConnmarkTarget::Restore { nfmask, ctmask } => {
                    let copy = if matches!(c, ConnmarkTarget::Save { .. }) {
                        "save"
                    } else {
                        "restore"
                    };
                    write!(
                        out,
                        " --{copy}-mark --nfmask 0x{nfmask:x} --ctmask 0x{ctmask:x}"
                    )
                }
            };
        }
        Target::Dnat(r) | Target::Snat(r) => {
            out.push_str(if matches!(t, Target::Dnat(_)) {
                " --to-destination "
            } else {
                " --to-source "
            });
            nat_range(out, r, family);
            nat_flag_names(out, r, "--");
        }
        Target::Masquerade(r) | Target::Redirect(r) => {
            if let Some((lo, hi)) = r.port_range() {
                out.push_str(" --to-ports ");
                range(out, lo, hi, '-');
            }
            nat_flag_names(out, r, "--");
        }
        Target::Ct(ct) => ct_target_options(out, ct, "--"),
        Target::TcpmssSet(m) => {
            let _ = write!(out, " --set-mss {m}");
        }
        Target::TcpmssClamp => out.push_str(" --clamp-mss-to-pmtu"),
        Target::Nflog(n) => {
            if let Some(p) = n.prefix.as_deref().filter(|p| !p.is_empty()) {
                out.push_str(" --nflog-prefix");
                save_string(out, p);
            }
            nflog_options(out, n, "--");
        }
        Target::ChecksumFill => out.push_str(" --checksum-fill"),
        Target::Hl { mode, value } => {
            let _ = write!(out, " --hl-{} {value}", super::format6::hl_mode_word(*mode));
        }
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

/// The rule specification after `-A CHAIN` in canonical order, its
/// addresses of `family`. With `counters`, `-c P B` goes before the
/// target (as `iptables -v -S`).
pub fn rule_spec(out: &mut String, r: &Rule, family: Family, counters: bool) {
    for (o, a) in [("-s", &r.src), ("-d", &r.dst)] {
        if a.mask != 0 || a.invert {
            inv(out, a.invert);
            let (addr, mask) = (addr_text(family, a.addr), mask_suffix(family, a.mask));
            let _ = write!(out, " {o} {addr}{mask}");
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
        match_save(out, m, family);
    }
    if counters {
        let _ = write!(out, " -c {} {}", r.counters.packets, r.counters.bytes);
    }
    target_save(out, &r.target, family);
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
            rule_spec(out, r, t.family, false);
            out.push('\n');
        }
    }
    out.push_str("COMMIT\n");
}

/// iptables-nft's order of tables in `iptables-save`.
const SAVE_ORDER: [TableKind; 5] = [
    TableKind::Mangle,
    TableKind::Security,
    TableKind::Raw,
    TableKind::Filter,
    TableKind::Nat,
];

/// `iptables-save` for every present table, in iptables-nft's order
/// (mangle, security, raw, filter, nat), without `#` lines.
pub fn save(rs: &Ruleset, counters: bool) -> String {
    let mut out = String::new();
    for k in SAVE_ORDER {
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
    for k in SAVE_ORDER {
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
            rule_spec(out, r, t.family, verbose);
            out.push('\n');
        }
    }
}
