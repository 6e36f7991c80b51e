//! Target extensions (`-j NAME`): for each one, the target as `-j` starts
//! it, its options and the check of the complete rule, in one
//! [`TargetExt`] next to its option parser. [`TARGETS`] is the one list of
//! target names: `-j` and `-g` look names up there, a mistyped `-j` gets
//! its suggestion from it, and no user chain may take a name on it.

use super::names;
use super::rule::{no_inv, once, Arg, S1};
use super::values::*;
use crate::ruleset::*;

/// Parses one option if it is this target's (`Ok(false)`: not ours),
/// recording it in the `S*` bits.
type OptionFn = fn(&mut Target, &mut u32, &mut Arg<'_, '_, '_>) -> R<bool>;

/// Checks the target once the whole rule is read: the options seen (`S*`
/// bits), the rule's protocol number and its inversion.
type CheckFn = fn(&Target, u32, u8, bool) -> R<()>;

/// One target extension.
pub(super) struct TargetExt {
    pub(super) name: &'static str,
    /// The family it serves: None for both (libxt_), else IPv4 only
    /// (libipt_) or IPv6 only (libip6t_).
    family: Option<Family>,
    /// The target as `-j NAME` starts it, before any of its options. None
    /// for a name iptables has and tungate does not implement (QUEUE): it
    /// is reserved and suggested like the others, but `-j`/`-g` take it
    /// for a chain's name (and find none: no chain may be called so).
    new: Option<fn(Family) -> Target>,
    pub(super) option: OptionFn,
    pub(super) check: CheckFn,
}

/// Target names tungate knows (besides user chains), in the order names
/// are suggested.
static TARGETS: [TargetExt; 18] = [
    ACCEPT, DROP, RETURN, REJECT, LOG, MARK, CONNMARK, DNAT, SNAT, MASQUERADE, REDIRECT, NOTRACK,
    CT, TCPMSS, NFLOG, CHECKSUM, QUEUE, HL,
];

/// Every name on [`TARGETS`] (as `&'a str`, to chain with chain names).
pub(super) fn all_names<'a>() -> impl Iterator<Item = &'a str> {
    TARGETS.iter().map(|t| -> &'a str { t.name })
}

/// Whether `name` is on [`TARGETS`]: a chain may not take it (`-N`, `-E`
/// and a restore's `:CHAIN` line refuse it).
pub(super) fn is_target_name(name: &str) -> bool {
    TARGETS.iter().any(|t| t.name == name)
}

/// The implemented target `-j name` names in a rule of `family`, and the
/// target it starts; None for a chain's name (another family's target is
/// a chain name too, as the real tools take it).
pub(super) fn find(name: &str, family: Family) -> Option<(&'static TargetExt, Target)> {
    let ext = TARGETS
        .iter()
        .find(|t| t.name == name && t.family.is_none_or(|f| f == family))?;
    Some((ext, (ext.new?)(family)))
}

fn no_options(_: &mut Target, _: &mut u32, _: &mut Arg) -> R<bool> {
    Ok(false)
}

fn no_check(_: &Target, _: u32, _: u8, _: bool) -> R<()> {
    Ok(())
}

/// The error `msg` when none of the target's options (`S1`) was given.
fn required(seen: u32, msg: &str) -> R<()> {
    if seen & S1 == 0 {
        return Err(invalid(msg));
    }
    Ok(())
}

/// A target without options.
const fn plain(name: &'static str, new: fn(Family) -> Target) -> TargetExt {
    TargetExt {
        name,
        family: None,
        new: Some(new),
        option: no_options,
        check: no_check,
    }
}

const ACCEPT: TargetExt = plain("ACCEPT", |_| Target::Accept);
const DROP: TargetExt = plain("DROP", |_| Target::Drop);
const RETURN: TargetExt = plain("RETURN", |_| Target::Return);
const NOTRACK: TargetExt = plain("NOTRACK", |_| Target::Notrack);
const QUEUE: TargetExt = TargetExt {
    name: "QUEUE",
    family: None,
    new: None,
    option: no_options,
    check: no_check,
};

/// `-j REJECT`.
const REJECT: TargetExt = TargetExt {
    name: "REJECT",
    family: None,
    new: Some(|f| {
        Target::Reject(match f {
            Family::V4 => RejectWith::PortUnreachable,
            Family::V6 => RejectWith::Icmp6PortUnreachable,
        })
    }),
    option: reject,
    check: no_check,
};

fn reject(t: &mut Target, _: &mut u32, a: &mut Arg) -> R<bool> {
    ours!(let Target::Reject(w) = t);
    let name = a.name;
    if name != "--reject-with" {
        return Ok(false);
    }
    no_inv(a.inv, name)?;
    let v = a.value()?;
    // Each reply's saved name, then its short alias (libipt_REJECT's and
    // libip6t_REJECT's tables).
    let found = match a.family {
        Family::V4 => RejectWith::ALL
            .iter()
            .zip(REJECT_ALIASES)
            .find(|((_, n), alias)| *n == v || alias.contains(&v)),
        Family::V6 => RejectWith::ALL6
            .iter()
            .zip(REJECT6_ALIASES)
            .find(|((_, n), alias)| *n == v || alias.contains(&v)),
    };
    let Some(((with, _), _)) = found else {
        let known: Vec<&str> = match a.family {
            Family::V4 => RejectWith::ALL.iter().map(|(_, n)| *n).collect(),
            Family::V6 => RejectWith::ALL6.iter().map(|(_, n)| *n).collect(),
        };
        return Err(invalid(format!(
            "unknown reject type \"{v}\" for {name}: expected {}",
            known.join(", ")
        )));
    };
    *w = *with;
    if *w == RejectWith::TcpReset && (a.proto != 6 || a.proto_inv) {
        return Err(invalid(
            "REJECT: --reject-with tcp-reset is only valid with -p tcp",
        ));
    }
    Ok(true)
}

/// The short names of [`RejectWith::ALL`]'s replies, in its order.
const REJECT_ALIASES: [&[&str]; 8] = [
    &["net-unreach"],
    &["host-unreach"],
    &["port-unreach"],
    &["proto-unreach"],
    &["net-prohib"],
    &["host-prohib"],
    &["admin-prohib"],
    &["tcp-rst"],
];

/// The short names of [`RejectWith::ALL6`]'s replies, in its order.
const REJECT6_ALIASES: [&[&str]; 7] = [
    &["no-route"],
    &["adm-prohibited"],
    &["addr-unreach"],
    &["port-unreach"],
    &["policy-fail"],
    &["reject-route"],
    &[],
];

/// `-j LOG`.
const LOG: TargetExt = TargetExt {
    name: "LOG",
    family: None,
    new: Some(|_| {
        Target::Log(LogTarget {
            prefix: None,
            level: 4,
            flags: 0,
        })
    }),
    option: log,
    check: no_check,
};

fn log(t: &mut Target, _: &mut u32, a: &mut Arg) -> R<bool> {
    ours!(let Target::Log(l) = t);
    let name = a.name;
    no_inv(a.inv, name)?;
    match name {
        "--log-prefix" => {
            let v = a.value()?;
            if v.len() > 29 {
                return Err(err_val(name, v, "a prefix of at most 29 characters"));
            }
            l.prefix = Some(v.to_string());
        }
        "--log-level" => {
            let v = a.value()?;
            l.level = match parse_u32_dec(v) {
                Some(n) if n <= 7 => n as u8,
                _ => names::LOG_LEVELS
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(v))
                    .map(|(_, l)| *l)
                    .ok_or_else(|| err_val(name, v, "a log level 0-7 or emerg, alert, crit, error, warning, notice, info, debug"))?,
            };
        }
        "--log-tcp-sequence" => l.flags |= 1,
        "--log-tcp-options" => l.flags |= 2,
        "--log-ip-options" => l.flags |= 4,
        "--log-uid" => l.flags |= 8,
        _ => return Ok(false),
    }
    Ok(true)
}

/// `-j MARK`: every form is kept as `--set-xmark value/mask`.
const MARK: TargetExt = TargetExt {
    name: "MARK",
    family: None,
    new: Some(|_| Target::Mark { value: 0, mask: 0 }),
    option: mark,
    check: |_, s, _, _| {
        required(s, "MARK target: one of --set-xmark, --set-mark, --and-mark, --or-mark or --xor-mark is required")
    },
};

fn mark(t: &mut Target, seen: &mut u32, a: &mut Arg) -> R<bool> {
    ours!(let Target::Mark { value, mask } = t);
    let name = a.name;
    no_inv(a.inv, name)?;
    let (v, m) = match name {
        "--set-xmark" => {
            let (v, m) = parse_mark(name, a.value()?)?;
            (v, m.unwrap_or(u32::MAX))
        }
        "--set-mark" => {
            let (v, m) = parse_mark(name, a.value()?)?;
            (v, v | m.unwrap_or(u32::MAX))
        }
        "--and-mark" => {
            let (v, _) = parse_mark(name, a.value()?)?;
            (0, !v)
        }
        "--or-mark" => {
            let (v, _) = parse_mark(name, a.value()?)?;
            (v, v)
        }
        "--xor-mark" => {
            let (v, _) = parse_mark(name, a.value()?)?;
            (v, 0)
        }
        _ => return Ok(false),
    };
    once(
        seen,
        S1,
        "MARK: --set-xmark/--set-mark/--and-mark/--or-mark/--xor-mark",
    )?;
    *value = v;
    *mask = m;
    Ok(true)
}

/// `-j CONNMARK`.
const CONNMARK: TargetExt = TargetExt {
    name: "CONNMARK",
    family: None,
    new: Some(|_| Target::Connmark(ConnmarkTarget::SetXmark { value: 0, mask: 0 })),
    option: connmark,
    check: |_, s, _, _| required(s, "CONNMARK target: no operation specified"),
};

fn connmark(t: &mut Target, seen: &mut u32, a: &mut Arg) -> R<bool> {
    ours!(let Target::Connmark(cm) = t);
    let name = a.name;
    no_inv(a.inv, name)?;
    match name {
        "--set-xmark" | "--set-mark" | "--and-mark" | "--or-mark" | "--xor-mark" => {
            once(seen, S1, "CONNMARK action")?;
            let (v, m) = parse_mark(name, a.value()?)?;
            let (v, m) = match name {
                "--set-xmark" => (v, m.unwrap_or(u32::MAX)),
                "--set-mark" => (v, v | m.unwrap_or(u32::MAX)),
                "--and-mark" => (0, !v),
                "--or-mark" => (v, v),
                _ => (v, 0),
            };
            *cm = ConnmarkTarget::SetXmark { value: v, mask: m };
        }
        "--save-mark" => {
            once(seen, S1, "CONNMARK action")?;
            *cm = ConnmarkTarget::Save {
                nfmask: u32::MAX,
                ctmask: u32::MAX,
            };
        }
        "--restore-mark" => {
            once(seen, S1, "CONNMARK action")?;
            *cm = ConnmarkTarget::Restore {
                nfmask: u32::MAX,
                ctmask: u32::MAX,
            };
        }
        "--mask" | "--nfmask" | "--ctmask" => {
            let v = a.value()?;
            let x = parse_u32(v).ok_or_else(|| err_val(name, v, "a 32-bit mask"))?;
            match cm {
                ConnmarkTarget::Save { nfmask, ctmask }
                | ConnmarkTarget::Restore { nfmask, ctmask } => {
                    if name != "--ctmask" {
                        *nfmask = x;
                    }
                    if name != "--nfmask" {
                        *ctmask = x;
                    }
                }
                _ => {
                    return Err(invalid(format!(
                        "CONNMARK: {name} requires --save-mark or --restore-mark first"
                    )))
                }
            }
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// `-j DNAT`.
const DNAT: TargetExt = TargetExt {
    name: "DNAT",
    family: None,
    new: Some(|_| Target::Dnat(Box::default())),
    option: nat,
    check: |_, s, _, _| required(s, "DNAT: option \"--to-destination\" must be specified"),
};

/// `-j SNAT`.
const SNAT: TargetExt = TargetExt {
    name: "SNAT",
    family: None,
    new: Some(|_| Target::Snat(Box::default())),
    option: nat,
    check: |_, s, _, _| required(s, "SNAT: option \"--to-source\" must be specified"),
};

/// The options of DNAT and SNAT (`--to` for either).
fn nat(t: &mut Target, seen: &mut u32, a: &mut Arg) -> R<bool> {
    let is_dnat = matches!(t, Target::Dnat(_));
    let (Target::Dnat(range) | Target::Snat(range)) = t else {
        return Ok(false);
    };
    let name = a.name;
    no_inv(a.inv, name)?;
    match name {
        "--to-destination" | "--to-source" | "--to" => {
            let want = if is_dnat {
                "--to-destination"
            } else {
                "--to-source"
            };
            if name != "--to" && name != want {
                return Ok(false);
            }
            once(seen, S1, want)?;
            let v = a.value()?;
            let r = parse_nat_range(a.family, want, v, is_dnat)?;
            if r.port_range().is_some() && !nat_ports_ok(a.proto, a.proto_inv) {
                return Err(invalid(format!(
                    "Need TCP, UDP, SCTP or DCCP with port specification (\"{v}\")"
                )));
            }
            // The flags given before `--to` stay.
            **range = r.with_flags(range.flags);
        }
        "--random" => range.flags |= nat_flags::PROTO_RANDOM,
        "--random-fully" => range.flags |= nat_flags::PROTO_RANDOM_FULLY,
        "--persistent" => range.flags |= nat_flags::PERSISTENT,
        _ => return Ok(false),
    }
    Ok(true)
}

/// `-j MASQUERADE`.
const MASQUERADE: TargetExt = TargetExt {
    name: "MASQUERADE",
    family: None,
    new: Some(|_| Target::Masquerade(Box::default())),
    option: to_ports,
    check: no_check,
};

/// `-j REDIRECT`.
const REDIRECT: TargetExt = TargetExt {
    name: "REDIRECT",
    family: None,
    new: Some(|_| Target::Redirect(Box::default())),
    option: to_ports,
    check: no_check,
};

/// The options of MASQUERADE and REDIRECT (`--random-fully` only for
/// MASQUERADE).
fn to_ports(t: &mut Target, _: &mut u32, a: &mut Arg) -> R<bool> {
    let masquerade = matches!(t, Target::Masquerade(_));
    let (Target::Masquerade(range) | Target::Redirect(range)) = t else {
        return Ok(false);
    };
    let name = a.name;
    no_inv(a.inv, name)?;
    match name {
        "--to-ports" => {
            let v = a.value()?;
            if !nat_ports_ok(a.proto, a.proto_inv) {
                return Err(invalid(format!(
                    "Need TCP, UDP, SCTP or DCCP with port specification (\"{v}\")"
                )));
            }
            let (lo, hi) = parse_to_ports(name, v)?;
            **range = range.with_ports(lo, hi);
        }
        "--random" => range.flags |= nat_flags::PROTO_RANDOM,
        "--random-fully" if masquerade => range.flags |= nat_flags::PROTO_RANDOM_FULLY,
        _ => return Ok(false),
    }
    Ok(true)
}

/// `-j CT`.
const CT: TargetExt = TargetExt {
    name: "CT",
    family: None,
    new: Some(|_| Target::Ct(Box::default())),
    option: ct,
    check: no_check,
};

fn ct(t: &mut Target, _: &mut u32, a: &mut Arg) -> R<bool> {
    ours!(let Target::Ct(ct) = t);
    let name = a.name;
    no_inv(a.inv, name)?;
    match name {
        "--notrack" => ct.notrack = true,
        "--zone" => {
            let v = a.value()?;
            ct.zone = Some(
                parse_u32_dec(v)
                    .and_then(|z| u16::try_from(z).ok())
                    .ok_or_else(|| err_val(name, v, "a zone 0-65535"))?,
            );
        }
        "--ctevents" => ct.ctevents = parse_events(name, a.value()?)?,
        "--helper" => ct.helper = Some(simple_name(name, a.value()?)?.to_string()),
        "--timeout" => ct.timeout = Some(simple_name(name, a.value()?)?.to_string()),
        "--expevents" => {
            let v = a.value()?;
            if v != "new" {
                return Err(err_val(name, v, "new"));
            }
            ct.expevents = 1;
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// `-j TCPMSS`: `--set-mss` or `--clamp-mss-to-pmtu`, with `-p tcp`.
const TCPMSS: TargetExt = TargetExt {
    name: "TCPMSS",
    family: None,
    new: Some(|_| Target::TcpmssSet(0)),
    option: tcpmss,
    check: |t, s, proto, pinv| {
        if matches!(t, Target::TcpmssSet(_)) {
            required(
                s,
                "TCPMSS target: exactly one of --set-mss or --clamp-mss-to-pmtu is required",
            )?;
        }
        if proto != 6 || pinv {
            return Err(invalid("TCPMSS target: needs `-p tcp'"));
        }
        Ok(())
    },
};

fn tcpmss(t: &mut Target, seen: &mut u32, a: &mut Arg) -> R<bool> {
    if !matches!(t, Target::TcpmssSet(_) | Target::TcpmssClamp) {
        return Ok(false);
    }
    let name = a.name;
    no_inv(a.inv, name)?;
    match name {
        "--set-mss" => {
            once(seen, S1, "TCPMSS: --set-mss/--clamp-mss-to-pmtu")?;
            let v = a.value()?;
            let n = parse_u32_dec(v)
                .and_then(|z| u16::try_from(z).ok())
                .ok_or_else(|| err_val(name, v, "an MSS 0-65535"))?;
            *t = Target::TcpmssSet(n);
        }
        "--clamp-mss-to-pmtu" => {
            once(seen, S1, "TCPMSS: --set-mss/--clamp-mss-to-pmtu")?;
            *t = Target::TcpmssClamp;
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// `-j NFLOG`.
const NFLOG: TargetExt = TargetExt {
    name: "NFLOG",
    family: None,
    new: Some(|_| {
        Target::Nflog(Box::new(NflogTarget {
            threshold: 1,
            ..Default::default()
        }))
    }),
    option: nflog,
    check: no_check,
};

fn nflog(t: &mut Target, _: &mut u32, a: &mut Arg) -> R<bool> {
    ours!(let Target::Nflog(n) = t);
    let name = a.name;
    no_inv(a.inv, name)?;
    match name {
        "--nflog-group" => {
            let v = a.value()?;
            n.group = parse_u32_dec(v)
                .and_then(|g| u16::try_from(g).ok())
                .ok_or_else(|| err_val(name, v, "a group 0-65535"))?;
        }
        "--nflog-prefix" => {
            let v = a.value()?;
            if v.len() > 63 {
                return Err(err_val(name, v, "a prefix of at most 63 characters"));
            }
            n.prefix = Some(v.to_string());
        }
        "--nflog-range" | "--nflog-size" => {
            let v = a.value()?;
            let l = parse_u32_dec(v).ok_or_else(|| err_val(name, v, "a length"))?;
            n.len = Some((l, name == "--nflog-size"));
        }
        "--nflog-threshold" => {
            let v = a.value()?;
            n.threshold = parse_u32_dec(v)
                .and_then(|g| u16::try_from(g).ok())
                .ok_or_else(|| err_val(name, v, "a threshold 0-65535"))?;
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// `-j CHECKSUM --checksum-fill`.
const CHECKSUM: TargetExt = TargetExt {
    name: "CHECKSUM",
    family: None,
    new: Some(|_| Target::ChecksumFill),
    option: checksum,
    check: |_, s, _, _| {
        required(
            s,
            "CHECKSUM target: option \"--checksum-fill\" must be specified",
        )
    },
};

fn checksum(t: &mut Target, seen: &mut u32, a: &mut Arg) -> R<bool> {
    if !matches!(t, Target::ChecksumFill) || a.name != "--checksum-fill" {
        return Ok(false);
    }
    no_inv(a.inv, a.name)?;
    *seen |= S1;
    Ok(true)
}

/// `-j HL` (IPv6 only): `--hl-set`, `--hl-inc` or `--hl-dec`.
const HL: TargetExt = TargetExt {
    name: "HL",
    family: Some(Family::V6),
    new: Some(|_| Target::Hl {
        mode: HlMode::Set,
        value: 0,
    }),
    option: hl,
    check: |_, s, _, _| required(s, "HL: You must specify an action"),
};

fn hl(t: &mut Target, seen: &mut u32, a: &mut Arg) -> R<bool> {
    ours!(let Target::Hl { mode, value } = t);
    let name = a.name;
    let m = match name {
        "--hl-set" => HlMode::Set,
        "--hl-inc" => HlMode::Inc,
        "--hl-dec" => HlMode::Dec,
        _ => return Ok(false),
    };
    no_inv(a.inv, name)?;
    once(seen, S1, "HL: --hl-set/--hl-inc/--hl-dec")?;
    let v = a.value()?;
    let n = parse_u32_dec(v)
        .filter(|n| *n <= 255 && (m == HlMode::Set || *n > 0))
        .ok_or_else(|| {
            err_val(
                name,
                v,
                if m == HlMode::Set {
                    "a hop limit 0-255"
                } else {
                    "a change of 1-255"
                },
            )
        })?;
    (*mode, *value) = (m, n as u8);
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syntax::apply_command;

    /// One list decides both: every target name is refused as a chain
    /// name, as iptables 1.8.9 refuses `-N NFLOG` and `-N CHECKSUM` ("chain
    /// name may not clash with target name"), and a mistyped target is
    /// suggested from it. Names are case-sensitive there as here.
    #[test]
    fn no_chain_may_take_a_target_name() {
        for n in all_names() {
            let mut rs = Ruleset::new();
            let o = apply_command(&mut rs, &["-N", n]);
            assert_eq!(o.status, 2, "-N {n}: {o:?}");
            assert!(o.stderr.contains("may not clash with target name"), "{o:?}");
            assert_eq!(apply_command(&mut rs, &["-N", "tmp"]).status, 0);
            let o = apply_command(&mut rs, &["-E", "tmp", n]);
            assert_eq!(o.status, 2, "-E tmp {n}: {o:?}");
        }
        for n in ["nflog", "checksum", "KUBE-NFLOG"] {
            assert_eq!(
                apply_command(&mut Ruleset::new(), &["-N", n]).status,
                0,
                "{n}"
            );
        }
        let mut rs = Ruleset::new();
        let o = apply_command(&mut rs, &["-A", "INPUT", "-j", "CHECKSUMS"]);
        assert!(o.stderr.contains("did you mean \"CHECKSUM\""), "{o:?}");
    }
}
