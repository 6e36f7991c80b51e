//! Matches on state kept outside the packet, and on nothing at all:
//! `conntrack` and `state` (the connection), `mark` and `connmark`,
//! `recent` (address lists), `limit` and `statistic` (counters per rule),
//! and `comment`.

use super::{no_check, require, MatchExt};
use crate::ruleset::*;
use crate::syntax::names::parse_proto;
use crate::syntax::rule::{no_inv, once, Arg, S1, S2, S3, S4, S8};
use crate::syntax::values::*;
use crate::syntax::SyntaxError;

/// `-m conntrack`. `S8` records that any option was given.
pub(super) const CONNTRACK: MatchExt = MatchExt {
    name: "conntrack",
    family: None,
    new: |_| Match::Conntrack(Box::default()),
    option: conntrack,
    check: |_, s, _, _| require(s & S8 == 0, "conntrack: at least one option is required"),
};

/// `--ctorigsrc`-style addresses.
fn ct_addr(a: &mut Arg) -> R<CtAddr> {
    let n = a.name;
    let (addr, mask) = parse_addr_mask(a.family, n, a.value()?)?;
    Ok(AddrMask {
        addr,
        mask,
        invert: a.inv,
    })
}

/// `--ctorigsrcport`-style ports.
fn ct_port(a: &mut Arg) -> R<Range16> {
    let n = a.name;
    range16(n, a.value()?, None, a.inv)
}

fn conntrack(m: &mut Match, seen: &mut u32, a: &mut Arg) -> R<bool> {
    ours!(let Match::Conntrack(ct) = m);
    let (name, inv) = (a.name, a.inv);
    match name {
        "--ctstate" => {
            once(seen, S1, name)?;
            ct.state = Some((parse_ctstates(name, a.value()?)?, inv));
        }
        "--ctproto" => {
            once(seen, S2, name)?;
            let v = a.value()?;
            let p = parse_proto(v).ok_or_else(|| SyntaxError::UnknownProtocol {
                value: v.to_string(),
            })?;
            if p == 0 {
                return Err(invalid(
                    "conntrack: --ctproto 0 is not allowed (rule would never match)",
                ));
            }
            ct.proto = Some((p, inv));
        }
        "--ctorigsrc" => ct.orig_src = Some(ct_addr(a)?),
        "--ctorigdst" => ct.orig_dst = Some(ct_addr(a)?),
        "--ctreplsrc" => ct.repl_src = Some(ct_addr(a)?),
        "--ctrepldst" => ct.repl_dst = Some(ct_addr(a)?),
        "--ctorigsrcport" => ct.orig_src_port = Some(ct_port(a)?),
        "--ctorigdstport" => ct.orig_dst_port = Some(ct_port(a)?),
        "--ctreplsrcport" => ct.repl_src_port = Some(ct_port(a)?),
        "--ctrepldstport" => ct.repl_dst_port = Some(ct_port(a)?),
        "--ctstatus" => {
            let v = a.value()?;
            let mut st = 0;
            for w in v.split(',') {
                if w.eq_ignore_ascii_case("NONE") {
                    continue;
                }
                match CtStatus::NAMES
                    .iter()
                    .find(|(_, n)| n.eq_ignore_ascii_case(w))
                {
                    Some((b, _)) => st |= b.0,
                    None => {
                        return Err(err_val(
                            name,
                            w,
                            "NONE, EXPECTED, SEEN_REPLY, ASSURED or CONFIRMED",
                        ))
                    }
                }
            }
            ct.status = Some((CtStatus(st), inv));
        }
        "--ctexpire" => {
            let (lo, hi) = parse_num_range_u32(name, a.value()?)?;
            ct.expire = Some((lo, hi, inv));
        }
        "--ctdir" => {
            if inv {
                return Err(invalid("conntrack: option \"--ctdir\" cannot be inverted."));
            }
            let v = a.value()?;
            ct.dir_reply = Some(match v.to_ascii_uppercase().as_str() {
                "ORIGINAL" => false,
                "REPLY" => true,
                _ => return Err(err_val(name, v, "ORIGINAL or REPLY")),
            });
        }
        _ => return Ok(false),
    }
    *seen |= S8;
    Ok(true)
}

/// `-m state`.
pub(super) const STATE: MatchExt = MatchExt {
    name: "state",
    family: None,
    new: |_| Match::State {
        states: CtStateSet(0),
        invert: false,
    },
    option: state,
    check: |_, s, _, _| require(s & S1 == 0, "state: option \"--state\" must be specified"),
};

fn state(m: &mut Match, seen: &mut u32, a: &mut Arg) -> R<bool> {
    ours!(let Match::State { states, invert } = m);
    let name = a.name;
    if name != "--state" {
        return Ok(false);
    }
    once(seen, S1, name)?;
    *states = parse_ctstates(name, a.value()?)?;
    *invert = a.inv;
    Ok(true)
}

/// `-m mark`.
pub(super) const MARK: MatchExt = MatchExt {
    name: "mark",
    family: None,
    new: |_| Match::Mark(MARK_ANY),
    option: mark,
    check: mark_check,
};

/// `-m connmark`: the conntrack mark, with the options of `-m mark`.
pub(super) const CONNMARK: MatchExt = MatchExt {
    name: "connmark",
    family: None,
    new: |_| Match::Connmark(MARK_ANY),
    option: mark,
    check: mark_check,
};

/// `-m mark` / `-m connmark` before `--mark`.
const MARK_ANY: MarkMask = MarkMask {
    value: 0,
    mask: u32::MAX,
    invert: false,
};

fn mark(m: &mut Match, seen: &mut u32, a: &mut Arg) -> R<bool> {
    let (Match::Mark(m) | Match::Connmark(m)) = m else {
        return Ok(false);
    };
    let name = a.name;
    if name != "--mark" {
        return Ok(false);
    }
    once(seen, S1, name)?;
    let (v, mask) = parse_mark(name, a.value()?)?;
    m.value = v;
    m.mask = mask.unwrap_or(u32::MAX);
    m.invert = a.inv;
    Ok(true)
}

fn mark_check(m: &Match, s: u32, _: u8, _: bool) -> R<()> {
    if s & S1 == 0 {
        return Err(invalid(format!(
            "{}: option \"--mark\" must be specified",
            m.name()
        )));
    }
    Ok(())
}

/// `-m recent`. `S1` a command, `S2` `--seconds`, `S3` `--reap`, `S4`
/// `--rttl`.
pub(super) const RECENT: MatchExt = MatchExt {
    name: "recent",
    family: None,
    new: |family| {
        Match::Recent(Box::new(RecentMatch {
            cmd: RecentCmd::Set,
            invert: false,
            seconds: 0,
            reap: false,
            hit_count: 0,
            rttl: false,
            name: "DEFAULT".to_string(),
            rdest: false,
            mask: family.host_mask(),
        }))
    },
    option: recent,
    check: recent_check,
};

fn recent(m: &mut Match, seen: &mut u32, a: &mut Arg) -> R<bool> {
    ours!(let Match::Recent(r) = m);
    let name = a.name;
    let cmd = match name {
        "--set" => Some(RecentCmd::Set),
        "--rcheck" => Some(RecentCmd::Rcheck),
        "--update" => Some(RecentCmd::Update),
        "--remove" => Some(RecentCmd::Remove),
        _ => None,
    };
    if let Some(cm) = cmd {
        if *seen & S1 != 0 {
            return Err(invalid(
                "recent: use only one of --set, --rcheck, --update or --remove",
            ));
        }
        *seen |= S1;
        r.cmd = cm;
        r.invert = a.inv;
        return Ok(true);
    }
    match name {
        "--seconds" => {
            let v = a.value()?;
            r.seconds = parse_u32_dec(v).ok_or_else(|| err_val(name, v, "seconds"))?;
            *seen |= S2;
        }
        "--reap" => {
            r.reap = true;
            *seen |= S3;
        }
        "--hitcount" => {
            let v = a.value()?;
            // The kernel refuses 65536 and more (XT_RECENT_MAX_NSTAMPS).
            r.hit_count = parse_u32_dec(v)
                .filter(|n| *n < 65536)
                .ok_or_else(|| err_val(name, v, "a hit count 0-65535"))?;
        }
        "--rttl" => {
            r.rttl = true;
            *seen |= S4;
        }
        "--name" => {
            let v = a.value()?;
            simple_name(name, v)?;
            if v.len() > 199 {
                return Err(err_val(name, v, "a list name of 1-199 characters"));
            }
            r.name = v.to_string();
        }
        "--rsource" => r.rdest = false,
        "--rdest" => r.rdest = true,
        "--mask" => {
            let v = a.value()?;
            r.mask = parse_addr(a.family, v).ok_or_else(|| err_val(name, v, "a netmask"))?;
        }
        _ => return Ok(false),
    }
    Ok(true)
}

fn recent_check(m: &Match, s: u32, _: u8, _: bool) -> R<()> {
    let Match::Recent(r) = m else {
        return Ok(());
    };
    if s & S1 == 0 {
        return Err(invalid(
            "recent: you must specify one of `--set', `--rcheck', `--update' or `--remove'",
        ));
    }
    if s & S4 != 0 && !matches!(r.cmd, RecentCmd::Rcheck | RecentCmd::Update) {
        return Err(invalid(
            "recent: --rttl may only be used with --rcheck or --update",
        ));
    }
    if s & S3 != 0 && s & S2 == 0 {
        return Err(invalid("recent: --reap requires --seconds"));
    }
    Ok(())
}

/// `-m limit`.
pub(super) const LIMIT: MatchExt = MatchExt {
    name: "limit",
    family: None,
    new: |_| Match::Limit {
        avg: 10000 * 3600 / 3,
        burst: 5,
    },
    option: limit,
    check: no_check,
};

fn limit(m: &mut Match, seen: &mut u32, a: &mut Arg) -> R<bool> {
    ours!(let Match::Limit { avg, burst } = m);
    let (name, inv) = (a.name, a.inv);
    match name {
        "--limit" => {
            no_inv(inv, name)?;
            once(seen, S1, name)?;
            *avg = parse_limit_rate(name, a.value()?)?;
        }
        "--limit-burst" => {
            no_inv(inv, name)?;
            once(seen, S2, name)?;
            let v = a.value()?;
            *burst = parse_u32_dec(v)
                .filter(|b| *b <= 10000)
                .ok_or_else(|| err_val(name, v, "a burst 0-10000"))?;
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// `-m statistic`.
pub(super) const STATISTIC: MatchExt = MatchExt {
    name: "statistic",
    family: None,
    new: |_| Match::Statistic {
        mode: StatisticMode::Random { threshold: 0 },
        invert: false,
    },
    option: statistic,
    check: statistic_check,
};

fn statistic(m: &mut Match, seen: &mut u32, a: &mut Arg) -> R<bool> {
    ours!(let Match::Statistic { mode, invert } = m);
    let (name, inv) = (a.name, a.inv);
    match name {
        "--mode" => {
            once(seen, S1, name)?;
            let v = a.value()?;
            *mode = match v {
                "random" => StatisticMode::Random { threshold: 0 },
                "nth" => StatisticMode::Nth {
                    every: 0,
                    packet: 0,
                },
                _ => return Err(err_val(name, v, "random or nth")),
            };
            if inv {
                *invert = true;
            }
        }
        "--probability" => {
            once(seen, S2, name)?;
            let v = a.value()?;
            let p: f64 = v
                .parse()
                .ok()
                .filter(|p: &f64| (0.0..=1.0).contains(p))
                .ok_or_else(|| err_val(name, v, "a probability between 0.0 and 1.0"))?;
            if inv {
                *invert = true;
            }
            let th = (0x8000_0000u64 as f64 * p).round() as u32;
            if let StatisticMode::Random { threshold } = mode {
                *threshold = th;
            } else {
                return Err(invalid("--probability can only be used in random mode"));
            }
        }
        "--every" | "--packet" => {
            let v = a.value()?;
            let n = parse_u32_dec(v).ok_or_else(|| err_val(name, v, "a number"))?;
            if inv {
                *invert = true;
            }
            let StatisticMode::Nth { every, packet } = mode else {
                return Err(invalid(format!("{name} can only be used in nth mode")));
            };
            if name == "--every" {
                once(seen, S3, name)?;
                if n == 0 {
                    return Err(err_val(name, v, "a number greater than 0"));
                }
                *every = n - 1;
            } else {
                once(seen, S4, name)?;
                *packet = n;
            }
        }
        _ => return Ok(false),
    }
    Ok(true)
}

fn statistic_check(m: &Match, s: u32, _: u8, _: bool) -> R<()> {
    let Match::Statistic { mode, .. } = m else {
        return Ok(());
    };
    if s & S1 == 0 {
        return Err(invalid("statistic: no mode specified (--mode random|nth)"));
    }
    match mode {
        StatisticMode::Random { .. } if s & S2 == 0 => Err(invalid(
            "--probability must be specified when using random mode",
        )),
        StatisticMode::Nth { every, packet } => {
            if s & S3 == 0 {
                return Err(invalid("--every must be specified when using nth mode"));
            }
            if s & S4 == 0 {
                return Err(invalid(
                    "statistic: option \"--every\" also requires \"--packet\".",
                ));
            }
            if *packet > *every {
                return Err(invalid("the --packet p must be 0 <= p <= n-1"));
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// `-m comment`.
pub(super) const COMMENT: MatchExt = MatchExt {
    name: "comment",
    family: None,
    new: |_| Match::Comment(String::new()),
    option: comment,
    check: |_, s, _, _| {
        require(
            s & S1 == 0,
            "comment: option \"--comment\" must be specified",
        )
    },
};

fn comment(m: &mut Match, seen: &mut u32, a: &mut Arg) -> R<bool> {
    ours!(let Match::Comment(s) = m);
    let name = a.name;
    if name != "--comment" {
        return Ok(false);
    }
    no_inv(a.inv, name)?;
    once(seen, S1, name)?;
    let v = a.value()?;
    if v.len() > 255 {
        return Err(err_val(name, v, "a comment of at most 255 characters"));
    }
    *s = v.to_string();
    Ok(true)
}
