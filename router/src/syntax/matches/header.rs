//! Matches on what the packet's headers say: `tcp`, `udp` and `icmp`
//! (loaded by `-p` too), `multiport`, `iprange`, `addrtype`, `length`,
//! `ttl`, `tcpmss` and `mac`.

use super::{no_check, require, MatchExt};
use crate::ruleset::*;
use crate::syntax::names;
use crate::syntax::rule::{no_inv, once, Arg, S1, S2, S3, S4};
use crate::syntax::values::*;
use crate::syntax::SyntaxError;

/// `-m tcp` (also loaded by `-p tcp`).
pub(super) const TCP: MatchExt = MatchExt {
    name: "tcp",
    family: None,
    new: |_| Match::Tcp {
        sport: None,
        dport: None,
        flags: None,
        option: None,
    },
    option: tcp,
    check: |_, _, proto, pinv| needs_proto("tcp", 6, proto, pinv),
};

fn tcp(m: &mut Match, seen: &mut u32, a: &mut Arg) -> R<bool> {
    ours!(let Match::Tcp { sport, dport, flags, option } = m);
    if port_option(sport, dport, seen, a, "tcp")? {
        return Ok(true);
    }
    let (name, inv) = (a.name, a.inv);
    match name {
        "--tcp-flags" | "--syn" => {
            once(seen, S3, "--tcp-flags")?;
            if name == "--syn" {
                *flags = Some((0x17, 0x02, inv));
            } else {
                let m = tcp_flags(name, a.value()?)?;
                let cmp = a.next_token().ok_or_else(|| SyntaxError::MissingArgument {
                    option: "--tcp-flags (second argument)".to_string(),
                })?;
                let cmpv = tcp_flags(name, cmp)?;
                *flags = Some((m, cmpv, inv));
            }
        }
        "--tcp-option" => {
            once(seen, S4, name)?;
            let v = a.value()?;
            let n = parse_u32_dec(v)
                .filter(|n| (1..=255).contains(n))
                .ok_or_else(|| err_val(name, v, "an option number 1-255"))?;
            *option = Some((n as u8, inv));
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// `-m udp` (also loaded by `-p udp`).
pub(super) const UDP: MatchExt = MatchExt {
    name: "udp",
    family: None,
    new: |_| Match::Udp {
        sport: None,
        dport: None,
    },
    option: udp,
    check: |_, _, proto, pinv| needs_proto("udp", 17, proto, pinv),
};

fn udp(m: &mut Match, seen: &mut u32, a: &mut Arg) -> R<bool> {
    ours!(let Match::Udp { sport, dport } = m);
    port_option(sport, dport, seen, a, "udp")
}

/// tcp's and udp's `--sport` and `--dport` (`proto` names the services).
fn port_option(
    sport: &mut Option<Range16>,
    dport: &mut Option<Range16>,
    seen: &mut u32,
    a: &mut Arg,
    proto: &str,
) -> R<bool> {
    let (name, inv) = (a.name, a.inv);
    match name {
        "--sport" | "--source-port" => {
            once(seen, S1, name)?;
            *sport = Some(range16("--sport", a.value()?, Some(proto), inv)?);
        }
        "--dport" | "--destination-port" => {
            once(seen, S2, name)?;
            *dport = Some(range16("--dport", a.value()?, Some(proto), inv)?);
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// tcp, udp, icmp and icmp6 need their protocol, not inverted.
pub(super) fn needs_proto(name: &str, want: u8, proto: u8, pinv: bool) -> R<()> {
    if proto != want || pinv {
        return Err(invalid(format!(
            "{name} match: needs `-p {name}' (\"-m {name}\" without it)"
        )));
    }
    Ok(())
}

/// `-m icmp` (also loaded by `-p icmp`).
pub(super) const ICMP: MatchExt = MatchExt {
    name: "icmp",
    family: Some(Family::V4),
    new: |_| Match::Icmp {
        icmp_type: 0xFF,
        code_lo: 0,
        code_hi: 0xFF,
        invert: false,
    },
    option: icmp,
    check: |_, _, proto, pinv| needs_proto("icmp", 1, proto, pinv),
};

fn icmp(m: &mut Match, seen: &mut u32, a: &mut Arg) -> R<bool> {
    ours!(let Match::Icmp { icmp_type, code_lo, code_hi, invert } = m);
    if a.name != "--icmp-type" {
        return Ok(false);
    }
    let v = icmp_type_option(seen, a, &names::ICMP_NAMES, "an ICMP type")?;
    (*icmp_type, *code_lo, *code_hi, *invert) = v;
    Ok(true)
}

/// `--icmp-type` / `--icmpv6-type`: a name from `table` or
/// `type[/code[:code]]`; (type, lowest code, highest code, inversion).
pub(super) fn icmp_type_option(
    seen: &mut u32,
    a: &mut Arg,
    table: &[(&str, u8, u8, u8)],
    what: &'static str,
) -> R<(u8, u8, u8, bool)> {
    let (name, inv) = (a.name, a.inv);
    once(seen, S1, name)?;
    let v = a.value()?;
    if let Some(&(_, t, lo, hi)) = table.iter().find(|(n, ..)| n.eq_ignore_ascii_case(v)) {
        return Ok((t, lo, hi, inv));
    }
    let bad = || {
        err_val(
            name,
            v,
            if what == "an ICMP type" {
                "an ICMP type name or type[/code[:code]]"
            } else {
                "an ICMPv6 type name or type[/code[:code]]"
            },
        )
    };
    let (t, code) = match v.split_once('/') {
        Some((t, cd)) => (t, Some(cd)),
        None => (v, None),
    };
    let t = parse_u32_dec(t).filter(|t| *t <= 255).ok_or_else(bad)?;
    let (lo, hi) = match code {
        None => (0, 255),
        Some(cd) => {
            let p = |x: &str| parse_u32_dec(x).filter(|t| *t <= 255).ok_or_else(bad);
            match cd.split_once(':') {
                Some((a, b)) => (p(a)?, p(b)?),
                None => {
                    let x = p(cd)?;
                    (x, x)
                }
            }
        }
    };
    if lo > hi {
        return Err(bad());
    }
    Ok((t as u8, lo as u8, hi as u8, inv))
}

/// `-m multiport`.
pub(super) const MULTIPORT: MatchExt = MatchExt {
    name: "multiport",
    family: None,
    new: |_| Match::Multiport {
        kind: MultiportKind::Any,
        ports: Vec::new(),
        invert: false,
    },
    option: multiport,
    check: |_, s, proto, pinv| {
        require(
            s & S1 == 0,
            "multiport: one of --sports, --dports or --ports is required",
        )?;
        require(
            pinv || !matches!(proto, 6 | 17 | 132 | 33 | 136),
            "multiport needs `-p tcp', `-p udp', `-p udplite', `-p sctp' or `-p dccp'",
        )
    },
};

fn multiport(m: &mut Match, seen: &mut u32, a: &mut Arg) -> R<bool> {
    ours!(let Match::Multiport { kind, ports, invert } = m);
    let name = a.name;
    // `--sport`/`--dport` are getopt abbreviations of
    // `--sports`/`--dports` once multiport is loaded.
    let k = match name {
        "--sports" | "--source-ports" | "--sport" => MultiportKind::Src,
        "--dports" | "--destination-ports" | "--dport" => MultiportKind::Dst,
        "--ports" => MultiportKind::Any,
        _ => return Ok(false),
    };
    once(seen, S1, "--ports")?;
    *kind = k;
    *invert = a.inv;
    let pname = a.port_proto();
    let v = a.value()?;
    let mut count = 0;
    for part in v.split(',') {
        let r = parse_range(name, part, pname)?;
        count += if r.0 == r.1 { 1 } else { 2 };
        ports.push(r);
    }
    if count > 15 {
        return Err(invalid(format!(
            "too many ports specified in \"{v}\" (at most 15, a range counts as two)"
        )));
    }
    Ok(true)
}

/// `-m addrtype`.
pub(super) const ADDRTYPE: MatchExt = MatchExt {
    name: "addrtype",
    family: None,
    new: |_| Match::Addrtype {
        src: None,
        dst: None,
        limit_iface_in: false,
        limit_iface_out: false,
    },
    option: addrtype,
    check: addrtype_check,
};

fn addrtype(m: &mut Match, seen: &mut u32, a: &mut Arg) -> R<bool> {
    ours!(let Match::Addrtype { src, dst, limit_iface_in, limit_iface_out } = m);
    let (name, inv) = (a.name, a.inv);
    match name {
        "--src-type" => {
            once(seen, S1, name)?;
            *src = Some((parse_addrtypes(name, a.value()?)?, inv));
        }
        "--dst-type" => {
            once(seen, S2, name)?;
            *dst = Some((parse_addrtypes(name, a.value()?)?, inv));
        }
        "--limit-iface-in" => {
            no_inv(inv, name)?;
            *limit_iface_in = true;
        }
        "--limit-iface-out" => {
            no_inv(inv, name)?;
            *limit_iface_out = true;
        }
        _ => return Ok(false),
    }
    Ok(true)
}

fn addrtype_check(m: &Match, _: u32, _: u8, _: bool) -> R<()> {
    let Match::Addrtype {
        src,
        dst,
        limit_iface_in,
        limit_iface_out,
    } = m
    else {
        return Ok(());
    };
    require(
        src.is_none() && dst.is_none(),
        "addrtype: you must specify --src-type or --dst-type",
    )?;
    require(
        *limit_iface_in && *limit_iface_out,
        "addrtype: you can't specify both --limit-iface-in and --limit-iface-out",
    )
}

/// `-m iprange`.
pub(super) const IPRANGE: MatchExt = MatchExt {
    name: "iprange",
    family: None,
    new: |_| Match::Iprange(Box::default()),
    option: iprange,
    check: |m, _, _, _| {
        require(
            matches!(m, Match::Iprange(r) if r.src.is_none() && r.dst.is_none()),
            "iprange match: You must specify `--src-range' or `--dst-range'",
        )
    },
};

fn iprange(m: &mut Match, _: &mut u32, a: &mut Arg) -> R<bool> {
    ours!(let Match::Iprange(r) = m);
    let (name, inv) = (a.name, a.inv);
    match name {
        "--src-range" => {
            let (lo, hi) = parse_iprange(a.family, name, a.value()?)?;
            r.src = Some((lo, hi, inv));
        }
        "--dst-range" => {
            let (lo, hi) = parse_iprange(a.family, name, a.value()?)?;
            r.dst = Some((lo, hi, inv));
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// `-m length`.
pub(super) const LENGTH: MatchExt = MatchExt {
    name: "length",
    family: None,
    new: |_| Match::Length(RANGE_NONE),
    option: |m, seen, a| match m {
        Match::Length(r) => range_option(r, seen, a, "--length"),
        _ => Ok(false),
    },
    check: |m, s, _, _| value_given(m, s),
};

/// `-m tcpmss`.
pub(super) const TCPMSS: MatchExt = MatchExt {
    name: "tcpmss",
    family: None,
    new: |_| Match::Tcpmss(RANGE_NONE),
    option: |m, seen, a| match m {
        Match::Tcpmss(r) => range_option(r, seen, a, "--mss"),
        _ => Ok(false),
    },
    check: |_, s, proto, pinv| {
        require(proto != 6 || pinv, "tcpmss match: needs `-p tcp'")?;
        require(s & S1 == 0, "tcpmss: option \"--mss\" must be specified")
    },
};

/// `-m length` / `-m tcpmss` before their option.
const RANGE_NONE: Range16 = Range16 {
    lo: 0,
    hi: 0,
    invert: false,
};

/// `--length` / `--mss`: a value or range within 0-65535.
fn range_option(r: &mut Range16, seen: &mut u32, a: &mut Arg, want: &str) -> R<bool> {
    let name = a.name;
    if name != want {
        return Ok(false);
    }
    once(seen, S1, name)?;
    let v = a.value()?;
    let (lo, hi) = parse_num_range_u32(name, v)?;
    let hi = if v.ends_with(':') { 65535 } else { hi };
    if hi > 65535 {
        return Err(err_val(name, v, "a value or range within 0-65535"));
    }
    *r = Range16 {
        lo: lo as u16,
        hi: hi as u16,
        invert: a.inv,
    };
    Ok(true)
}

/// `-m length` / `-m ttl` without their value.
fn value_given(m: &Match, s: u32) -> R<()> {
    if s & S1 == 0 {
        return Err(invalid(format!("{}: a value must be specified", m.name())));
    }
    Ok(())
}

/// `-m ttl`.
pub(super) const TTL: MatchExt = MatchExt {
    name: "ttl",
    family: Some(Family::V4),
    new: |_| Match::Ttl {
        op: TtlOp::Eq,
        value: 0,
    },
    option: ttl,
    check: |m, s, _, _| value_given(m, s),
};

fn ttl(m: &mut Match, seen: &mut u32, a: &mut Arg) -> R<bool> {
    ours!(let Match::Ttl { op, value } = m);
    ttl_option(op, value, seen, a, "--ttl")
}

/// ttl's `--ttl-eq/-lt/-gt` and hl's `--hl-eq/-lt/-gt` (`pre`: `--ttl`
/// or `--hl`).
pub(super) fn ttl_option(
    op: &mut TtlOp,
    value: &mut u8,
    seen: &mut u32,
    a: &mut Arg,
    pre: &str,
) -> R<bool> {
    let (name, inv) = (a.name, a.inv);
    let Some(suffix) = name.strip_prefix(pre) else {
        return Ok(false);
    };
    let o2 = match suffix {
        "-eq" if inv => TtlOp::Ne,
        "-eq" => TtlOp::Eq,
        "-lt" => TtlOp::Lt,
        "-gt" => TtlOp::Gt,
        _ => return Ok(false),
    };
    let what = &pre[2..];
    if inv && o2 != TtlOp::Ne {
        return Err(invalid(format!("{what}: unexpected `!' before {name}")));
    }
    once(seen, S1, &format!("{pre}-eq/{pre}-lt/{pre}-gt"))?;
    let v = a.value()?;
    let n = parse_u32_dec(v)
        .filter(|n| *n <= 255)
        .ok_or_else(|| err_val(name, v, "a value 0-255"))?;
    *op = o2;
    *value = n as u8;
    Ok(true)
}

/// `-m mac`.
pub(super) const MAC: MatchExt = MatchExt {
    name: "mac",
    family: None,
    new: |_| Match::Mac {
        addr: [0; 6],
        invert: false,
    },
    option: mac,
    check: no_check,
};

fn mac(m: &mut Match, seen: &mut u32, a: &mut Arg) -> R<bool> {
    ours!(let Match::Mac { addr, invert } = m);
    let name = a.name;
    if name != "--mac-source" {
        return Ok(false);
    }
    once(seen, S1, name)?;
    let v = a.value()?;
    let bad = || err_val(name, v, "a MAC address XX:XX:XX:XX:XX:XX");
    let parts: Vec<&str> = v.split(':').collect();
    if parts.len() != 6 {
        return Err(bad());
    }
    for (i, p) in parts.iter().enumerate() {
        if p.is_empty() || p.len() > 2 {
            return Err(bad());
        }
        addr[i] = u8::from_str_radix(p, 16).map_err(|_| bad())?;
    }
    *invert = a.inv;
    Ok(true)
}
