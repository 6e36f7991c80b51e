//! ip6tables' own matches (iptables' libip6t_ files): `icmp6` (loaded by
//! `-p ipv6-icmp` too), `frag`, `ipv6header`, `hbh` and `dst` (option
//! headers), `rt`, `hl` and `eui64`. `-m` finds them only in a rule of the
//! IPv6 family.

use super::header::{icmp_type_option, needs_proto, ttl_option};
use super::{no_check, require, MatchExt};
use crate::ruleset::*;
use crate::syntax::names;
use crate::syntax::rule::{no_inv, once, Arg, S1, S2, S3};
use crate::syntax::values::*;

/// `-m icmp6` (also loaded by `-p ipv6-icmp`); `--icmpv6-type` is
/// required.
pub(super) const ICMP6: MatchExt = MatchExt {
    name: "icmp6",
    family: Some(Family::V6),
    new: |_| Match::Icmp6 {
        icmp_type: 0xFF,
        code_lo: 0,
        code_hi: 0xFF,
        invert: false,
    },
    option: icmp6,
    check: |_, s, proto, pinv| {
        needs_proto("icmp6", 58, proto, pinv)?;
        require(
            s & S1 == 0,
            "icmp6: option \"--icmpv6-type\" must be specified",
        )
    },
};

fn icmp6(m: &mut Match, seen: &mut u32, a: &mut Arg) -> R<bool> {
    ours!(let Match::Icmp6 { icmp_type, code_lo, code_hi, invert } = m);
    if a.name != "--icmpv6-type" {
        return Ok(false);
    }
    let v = icmp_type_option(seen, a, &names::ICMP6_NAMES, "an ICMPv6 type")?;
    (*icmp_type, *code_lo, *code_hi, *invert) = v;
    Ok(true)
}

/// `lo[:hi]` of 32-bit values (`:`, `:hi`, `lo:` open ends), with the
/// option's inversion.
fn u32_range(a: &mut Arg) -> R<(u32, u32, bool)> {
    let (name, inv) = (a.name, a.inv);
    let (lo, hi) = parse_num_range_u32(name, a.value()?)?;
    Ok((lo, hi, inv))
}

/// A 32-bit value (`--fraglen`, `--hbh-len`, `--rt-len`), with the
/// option's inversion.
fn u32_value(a: &mut Arg) -> R<(u32, bool)> {
    let (name, inv) = (a.name, a.inv);
    let v = a.value()?;
    let n = parse_u32(v).ok_or_else(|| err_val(name, v, "a number 0-4294967295"))?;
    Ok((n, inv))
}

/// `-m frag`.
pub(super) const FRAG: MatchExt = MatchExt {
    name: "frag",
    family: Some(Family::V6),
    new: |_| Match::Frag(Box::default()),
    option: frag,
    check: no_check,
};

fn frag(m: &mut Match, seen: &mut u32, a: &mut Arg) -> R<bool> {
    ours!(let Match::Frag(f) = m);
    let name = a.name;
    match name {
        "--fragid" => {
            once(seen, S1, name)?;
            f.ids = Some(u32_range(a)?);
        }
        "--fraglen" => {
            once(seen, S2, name)?;
            f.len = Some(u32_value(a)?);
        }
        "--fragres" | "--fragfirst" | "--fragmore" | "--fraglast" => {
            no_inv(a.inv, name)?;
            let flag = match name {
                "--fragres" => &mut f.res,
                "--fragfirst" => &mut f.first,
                "--fragmore" => &mut f.more,
                _ => &mut f.last,
            };
            *flag = true;
            if f.more && f.last {
                return Err(invalid(
                    "frag: --fragmore and --fraglast cannot be used together",
                ));
            }
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// `-m ipv6header`; `--header` is required.
pub(super) const IPV6HEADER: MatchExt = MatchExt {
    name: "ipv6header",
    family: Some(Family::V6),
    new: |_| Match::Ipv6Header {
        headers: 0,
        soft: false,
        invert: false,
    },
    option: ipv6header,
    check: |_, s, _, _| {
        require(
            s & S1 == 0,
            "ipv6header: option \"--header\" must be specified",
        )
    },
};

/// ipv6header's short names and numbers for the headers it knows
/// (`chain_protos`), besides /etc/protocols' names.
const HEADER_ALIASES: [(&str, u8); 10] = [
    ("hop-by-hop", 0),
    ("protocol", 255),
    ("hop", 0),
    ("dst", 60),
    ("route", 43),
    ("frag", 44),
    ("auth", 51),
    ("esp", 50),
    ("none", 59),
    ("prot", 255),
];

fn ipv6header(m: &mut Match, seen: &mut u32, a: &mut Arg) -> R<bool> {
    ours!(let Match::Ipv6Header { headers, soft, invert } = m);
    let name = a.name;
    match name {
        "--header" => {
            once(seen, S1, name)?;
            *invert = a.inv;
            for w in a.value()?.split(',') {
                let proto = HEADER_ALIASES
                    .iter()
                    .find(|(n, _)| *n == w)
                    .map(|(_, p)| *p)
                    .or_else(|| names::parse_proto(w))
                    .ok_or_else(|| invalid(format!("unknown header `{w}' specified")))?;
                let bit = names::IPV6_HEADERS
                    .iter()
                    .find(|(p, ..)| *p == proto)
                    .map(|(_, bit, _)| *bit)
                    .ok_or_else(|| invalid(format!("unknown header `{proto}' specified")))?;
                *headers |= bit;
            }
        }
        "--soft" => {
            no_inv(a.inv, name)?;
            *soft = true;
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// `-m hbh` (hop-by-hop options header).
pub(super) const HBH: MatchExt = MatchExt {
    name: "hbh",
    family: Some(Family::V6),
    new: |_| Match::Hbh(Box::default()),
    option: |m, seen, a| match m {
        Match::Hbh(o) => opts_option(o, seen, a, "--hbh-len", "--hbh-opts"),
        _ => Ok(false),
    },
    check: no_check,
};

/// `-m dst` (destination options header).
pub(super) const DST: MatchExt = MatchExt {
    name: "dst",
    family: Some(Family::V6),
    new: |_| Match::Dst(Box::default()),
    option: |m, seen, a| match m {
        Match::Dst(o) => opts_option(o, seen, a, "--dst-len", "--dst-opts"),
        _ => Ok(false),
    },
    check: no_check,
};

/// At most this many options in `--hbh-opts` / `--dst-opts`
/// (`IP6T_OPTS_OPTSNR`).
const MAX_OPTS: usize = 16;

/// hbh's and dst's two options (`len_opt`, `opts_opt`: their names).
fn opts_option(
    o: &mut OptsMatch,
    seen: &mut u32,
    a: &mut Arg,
    len_opt: &str,
    opts_opt: &str,
) -> R<bool> {
    let name = a.name;
    if name == len_opt {
        once(seen, S1, name)?;
        o.len = Some(u32_value(a)?);
    } else if name == opts_opt {
        once(seen, S2, name)?;
        no_inv(a.inv, name)?;
        let v = a.value()?;
        let byte = |x: &str| {
            parse_u32(x)
                .filter(|n| *n <= 255)
                .map(|n| n as u8)
                .ok_or_else(|| err_val(name, v, "type[:length],... with numbers 0-255"))
        };
        for part in v.split(',') {
            let opt = match split_byte(part, b':') {
                Some((t, l)) => (byte(t)?, Some(byte(l)?).filter(|l| *l != 0xFF)),
                None => (byte(part)?, None),
            };
            o.opts.push(opt);
        }
        if o.opts.len() > MAX_OPTS {
            return Err(invalid(format!(
                "too many options in \"{v}\" for {name} (at most {MAX_OPTS})"
            )));
        }
    } else {
        return Ok(false);
    }
    Ok(true)
}

/// `-m rt` (routing header).
pub(super) const RT: MatchExt = MatchExt {
    name: "rt",
    family: Some(Family::V6),
    new: |_| Match::Rt(Box::default()),
    option: rt,
    check: rt_check,
};

/// At most this many addresses in `--rt-0-addrs` (`IP6T_RT_HOPS`).
const MAX_RT_ADDRS: usize = 16;

fn rt(m: &mut Match, seen: &mut u32, a: &mut Arg) -> R<bool> {
    ours!(let Match::Rt(r) = m);
    let name = a.name;
    match name {
        "--rt-type" => {
            once(seen, S1, name)?;
            let (t, inv) = u32_value(a)?;
            let t = u8::try_from(t).map_err(|_| err_val(name, &t.to_string(), "a type 0-255"))?;
            r.rt_type = Some((t, inv));
        }
        "--rt-segsleft" => {
            once(seen, S2, name)?;
            r.segsleft = Some(u32_range(a)?);
        }
        "--rt-len" => {
            once(seen, S3, name)?;
            r.len = Some(u32_value(a)?);
        }
        "--rt-0-res" => {
            no_inv(a.inv, name)?;
            r.res = true;
        }
        "--rt-0-addrs" => {
            no_inv(a.inv, name)?;
            let v = a.value()?;
            for x in v.split(',') {
                let addr = parse_ip6(x)
                    .ok_or_else(|| err_val(name, v, "IPv6 addresses separated by commas"))?;
                r.addrs.push(addr);
            }
            if r.addrs.len() > MAX_RT_ADDRS {
                return Err(invalid(format!(
                    "too many addresses in \"{v}\" for {name} (at most {MAX_RT_ADDRS})"
                )));
            }
        }
        "--rt-0-not-strict" => {
            no_inv(a.inv, name)?;
            r.not_strict = true;
        }
        _ => return Ok(false),
    }
    Ok(true)
}

fn rt_check(m: &Match, _: u32, _: u8, _: bool) -> R<()> {
    let Match::Rt(r) = m else { return Ok(()) };
    require(
        (r.res || !r.addrs.is_empty()) && r.rt_type != Some((0, false)),
        "rt: `--rt-type 0' required before `--rt-0-res' and `--rt-0-addrs'",
    )?;
    require(
        r.not_strict && r.addrs.is_empty(),
        "rt: `--rt-0-addrs ...' required before `--rt-0-not-strict'",
    )
}

/// `-m hl` (the hop limit; ttl's IPv6 twin).
pub(super) const HL: MatchExt = MatchExt {
    name: "hl",
    family: Some(Family::V6),
    new: |_| Match::Hl {
        op: TtlOp::Eq,
        value: 0,
    },
    option: |m, seen, a| match m {
        Match::Hl { op, value } => ttl_option(op, value, seen, a, "--hl"),
        _ => Ok(false),
    },
    check: |_, s, _, _| require(s & S1 == 0, "hl: a value must be specified"),
};

/// `-m eui64`: no options (the hooks it may be used from are checked
/// with the table).
pub(super) const EUI64: MatchExt = MatchExt {
    name: "eui64",
    family: Some(Family::V6),
    new: |_| Match::Eui64,
    option: |_, _, _| Ok(false),
    check: no_check,
};
