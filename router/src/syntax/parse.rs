//! One rule's options: the generic rule options, match and target modules.
//! Tokens are borrowed `&str`s; nothing is allocated per token except the
//! strings the model keeps (chain names, comments).
#![forbid(unsafe_code)]

use super::command::{long, Cursor, Opt};
use super::names::{self, parse_proto};
use super::values::*;
use super::SyntaxError;
use crate::ruleset::*;

/// One loaded match while parsing: the model value plus the options seen.
struct Loaded {
    m: Match,
    seen: u32,
}

/// Rule-building state.
pub(super) struct RuleBuilder {
    rule: Rule,
    loaded: Vec<Loaded>,
    /// Target options seen (bit set) and whether target came after matches.
    target_seen: u32,
    target_given: bool,
    proto_given: bool,
    /// -s/-d/-i/-o seen (G_* bits).
    given: u8,
}

const G_SRC: u8 = 1;
const G_DST: u8 = 2;
const G_IN: u8 = 4;
const G_OUT: u8 = 8;

// Option bits per module (for "given twice" / "required" checks).
const S1: u32 = 1;
const S2: u32 = 2;
const S3: u32 = 4;
const S4: u32 = 8;
const S5: u32 = 16;
const S6: u32 = 32;
const S7: u32 = 64;
const S8: u32 = 128;

/// Match modules tungate knows.
pub const MATCH_NAMES: [&str; 18] = [
    "tcp",
    "udp",
    "icmp",
    "multiport",
    "conntrack",
    "state",
    "comment",
    "mark",
    "connmark",
    "statistic",
    "addrtype",
    "iprange",
    "limit",
    "length",
    "ttl",
    "tcpmss",
    "recent",
    "mac",
];

/// Target names tungate knows (besides user chains).
pub const TARGET_NAMES: [&str; 17] = [
    "ACCEPT",
    "DROP",
    "RETURN",
    "REJECT",
    "LOG",
    "MARK",
    "CONNMARK",
    "DNAT",
    "SNAT",
    "MASQUERADE",
    "REDIRECT",
    "NOTRACK",
    "CT",
    "TCPMSS",
    "NFLOG",
    "CHECKSUM",
    "QUEUE",
];

fn new_match(name: &str) -> R<Match> {
    Ok(match name {
        "tcp" => Match::Tcp {
            sport: None,
            dport: None,
            flags: None,
            option: None,
        },
        "udp" => Match::Udp {
            sport: None,
            dport: None,
        },
        "icmp" => Match::Icmp {
            icmp_type: 0xFF,
            code_lo: 0,
            code_hi: 0xFF,
            invert: false,
        },
        "multiport" => Match::Multiport {
            kind: MultiportKind::Any,
            ports: Vec::new(),
            invert: false,
        },
        "conntrack" => Match::Conntrack(Box::default()),
        "state" => Match::State {
            states: CtState(0),
            invert: false,
        },
        "comment" => Match::Comment(String::new()),
        "mark" => Match::Mark(MarkMask {
            value: 0,
            mask: u32::MAX,
            invert: false,
        }),
        "connmark" => Match::Connmark(MarkMask {
            value: 0,
            mask: u32::MAX,
            invert: false,
        }),
        "statistic" => Match::Statistic {
            mode: StatisticMode::Random { threshold: 0 },
            invert: false,
        },
        "addrtype" => Match::Addrtype {
            src: None,
            dst: None,
            limit_iface_in: false,
            limit_iface_out: false,
        },
        "iprange" => Match::Iprange {
            src: None,
            dst: None,
        },
        "limit" => Match::Limit {
            avg: 10000 * 3600 / 3,
            burst: 5,
        },
        "length" => Match::Length(Range16 {
            lo: 0,
            hi: 0,
            invert: false,
        }),
        "ttl" => Match::Ttl {
            op: TtlOp::Eq,
            value: 0,
        },
        "tcpmss" => Match::Tcpmss(Range16 {
            lo: 0,
            hi: 0,
            invert: false,
        }),
        "recent" => Match::Recent(Box::new(RecentMatch {
            cmd: RecentCmd::Set,
            invert: false,
            seconds: 0,
            reap: false,
            hit_count: 0,
            rttl: false,
            name: "DEFAULT".to_string(),
            rdest: false,
            mask: u32::MAX,
        })),
        "mac" => Match::Mac {
            addr: [0; 6],
            invert: false,
        },
        _ => {
            return Err(SyntaxError::UnknownMatch {
                name: name.to_string(),
                suggest: super::names::suggest(name, MATCH_NAMES.iter().copied()),
            })
        }
    })
}

fn new_target(name: &str) -> Target {
    match name {
        "ACCEPT" => Target::Accept,
        "DROP" => Target::Drop,
        "RETURN" => Target::Return,
        "REJECT" => Target::Reject(RejectWith::PortUnreachable),
        "LOG" => Target::Log(LogTarget {
            prefix: None,
            level: 4,
            flags: 0,
        }),
        "MARK" => Target::Mark { value: 0, mask: 0 },
        "CONNMARK" => Target::Connmark(ConnmarkTarget::SetXmark { value: 0, mask: 0 }),
        "DNAT" => Target::Dnat {
            range: NatRange::default(),
            flags: NatFlags::default(),
        },
        "SNAT" => Target::Snat {
            range: NatRange::default(),
            flags: NatFlags::default(),
        },
        "MASQUERADE" => Target::Masquerade {
            ports: None,
            flags: NatFlags::default(),
        },
        "REDIRECT" => Target::Redirect {
            ports: None,
            flags: NatFlags::default(),
        },
        "NOTRACK" => Target::Notrack,
        "CT" => Target::Ct(Box::default()),
        "TCPMSS" => Target::TcpmssSet(0),
        "NFLOG" => Target::Nflog(Box::new(NflogTarget {
            threshold: 1,
            ..Default::default()
        })),
        "CHECKSUM" => Target::ChecksumFill,
        other => Target::Jump(other.into()),
    }
}

fn once(seen: &mut u32, bit: u32, opt: &str) -> R<()> {
    if *seen & bit != 0 {
        return Err(invalid(format!("option \"{opt}\" can only be used once")));
    }
    *seen |= bit;
    Ok(())
}

fn no_inv(inv: bool, opt: &str) -> R<()> {
    if inv {
        return Err(invalid(format!("option \"{opt}\" cannot be inverted")));
    }
    Ok(())
}

impl RuleBuilder {
    pub(super) fn new() -> RuleBuilder {
        RuleBuilder {
            rule: Rule::default(),
            loaded: Vec::new(),
            target_seen: 0,
            target_given: false,
            proto_given: false,
            given: 0,
        }
    }

    fn proto_name(&self) -> Option<&'static str> {
        if self.rule.proto_invert {
            None
        } else {
            proto_name_for_ports(self.rule.proto)
        }
    }

    pub(super) fn option<'a>(
        &mut self,
        mut o: Opt<'a>,
        inv: bool,
        c: &mut Cursor<'a, '_>,
    ) -> R<()> {
        let name = o.name;
        // Generic rule options.
        if long(name, "-p", &["--protocol", "--proto"]) {
            let v = o.arg(c)?;
            if self.proto_given {
                return Err(invalid("multiple -p flags not allowed"));
            }
            self.proto_given = true;
            let p = parse_proto(v).ok_or_else(|| SyntaxError::UnknownProtocol {
                value: v.to_string(),
            })?;
            if p == 0 && inv {
                return Err(invalid("rule would never match protocol"));
            }
            self.rule.proto = p;
            self.rule.proto_invert = inv;
            return Ok(());
        }
        if long(name, "-s", &["--source", "--src"]) {
            let v = o.arg(c)?;
            let (a, m) = parse_addr_mask("-s", v)?;
            if self.given & G_SRC != 0 {
                return Err(invalid(format!("multiple {} flags not allowed", "-s")));
            }
            self.given |= G_SRC;
            self.rule.src = AddrMask {
                addr: a,
                mask: m,
                invert: inv,
            };
            return Ok(());
        }
        if long(name, "-d", &["--destination", "--dst"]) {
            let v = o.arg(c)?;
            let (a, m) = parse_addr_mask("-d", v)?;
            if self.given & G_DST != 0 {
                return Err(invalid(format!("multiple {} flags not allowed", "-d")));
            }
            self.given |= G_DST;
            self.rule.dst = AddrMask {
                addr: a,
                mask: m,
                invert: inv,
            };
            return Ok(());
        }
        if long(name, "-i", &["--in-interface"]) {
            let v = o.arg(c)?;
            let mut i = parse_iface("-i", v)?;
            let bit = G_IN;
            if self.given & bit != 0 {
                return Err(invalid(format!("multiple {} flags not allowed", "-i")));
            }
            self.given |= bit;
            if let Some(i) = i.as_mut() {
                i.invert = inv;
            }
            self.rule.in_iface = i.map(Box::new);
            return Ok(());
        }
        if long(name, "-o", &["--out-interface"]) {
            let v = o.arg(c)?;
            let mut i = parse_iface("-o", v)?;
            let bit = G_OUT;
            if self.given & bit != 0 {
                return Err(invalid(format!("multiple {} flags not allowed", "-o")));
            }
            self.given |= bit;
            if let Some(i) = i.as_mut() {
                i.invert = inv;
            }
            self.rule.out_iface = i.map(Box::new);
            return Ok(());
        }
        if long(name, "-f", &["--fragment"]) {
            if self.rule.fragment.is_some() {
                return Err(invalid("multiple -f flags not allowed"));
            }
            self.rule.fragment = Some(inv);
            return Ok(());
        }
        if long(name, "-j", &["--jump"]) || long(name, "-g", &["--goto"]) {
            let v = o.arg(c)?;
            no_inv(inv, name)?;
            if self.target_given {
                return Err(invalid("multiple -j flags not allowed"));
            }
            self.target_given = true;
            let goto = name == "-g" || name == "--goto";
            simple_name(name, v)?;
            if goto {
                if matches!(new_target(v), Target::Jump(_)) {
                    self.rule.target = Target::Goto(v.into());
                } else {
                    return Err(invalid(format!("goto '{v}' is not a chain")));
                }
            } else {
                if v.is_empty() {
                    return Err(err_val(name, v, "a target or chain name"));
                }
                self.rule.target = new_target(v);
            }
            return Ok(());
        }
        if long(name, "-m", &["--match"]) {
            let v = o.arg(c)?;
            no_inv(inv, name)?;
            let m = new_match(v)?;
            // S8 marks `length` (shares the Range16 arm with tcpmss).
            let seen = if matches!(m, Match::Length(_)) { S8 } else { 0 };
            self.loaded.push(Loaded { m, seen });
            return Ok(());
        }
        if !name.starts_with('-') || name == "-" {
            return Err(SyntaxError::UnexpectedArgument {
                token: name.to_string(),
            });
        }
        // Target options first (the target is the latest-loaded module in
        // practice), then matches from the latest loaded backwards.
        if self.target_given && self.target_option(&mut o, inv, c)? {
            return Ok(());
        }
        for idx in (0..self.loaded.len()).rev() {
            if self.match_option(idx, &mut o, inv, c)? {
                return Ok(());
            }
        }
        // Implicit protocol match (`-p tcp --dport 22`).
        let implicit = match (self.rule.proto, self.rule.proto_invert) {
            (6, false) => Some("tcp"),
            (17, false) => Some("udp"),
            (1, false) => Some("icmp"),
            _ => None,
        };
        if let Some(p) = implicit {
            if !self.loaded.iter().any(|l| l.m.name() == p) {
                self.loaded.push(Loaded {
                    m: new_match(p)?,
                    seen: 0,
                });
                let idx = self.loaded.len() - 1;
                if self.match_option(idx, &mut o, inv, c)? {
                    return Ok(());
                }
                self.loaded.pop();
            }
        }
        let hint = names::suggest(name, names::ALL_OPTIONS.iter().copied());
        Err(SyntaxError::UnknownOption {
            token: name.to_string(),
            suggest: hint,
        })
    }

    fn match_option<'a>(
        &mut self,
        idx: usize,
        o: &mut Opt<'a>,
        inv: bool,
        c: &mut Cursor<'a, '_>,
    ) -> R<bool> {
        let pname = self.proto_name();
        let name = o.name;
        let l = &mut self.loaded[idx];
        let seen = &mut l.seen;
        match &mut l.m {
            Match::Tcp {
                sport,
                dport,
                flags,
                option,
            } => match name {
                "--sport" | "--source-port" => {
                    once(seen, S1, name)?;
                    *sport = Some(range16("--sport", o.arg(c)?, Some("tcp"), inv)?);
                }
                "--dport" | "--destination-port" => {
                    once(seen, S2, name)?;
                    *dport = Some(range16("--dport", o.arg(c)?, Some("tcp"), inv)?);
                }
                "--tcp-flags" | "--syn" => {
                    once(seen, S3, "--tcp-flags")?;
                    if name == "--syn" {
                        *flags = Some((0x17, 0x02, inv));
                    } else {
                        let m = tcp_flags(name, o.arg(c)?)?;
                        let cmp = c.next().ok_or_else(|| SyntaxError::MissingArgument {
                            option: "--tcp-flags (second argument)".to_string(),
                        })?;
                        let cmpv = tcp_flags(name, cmp)?;
                        *flags = Some((m, cmpv, inv));
                    }
                }
                "--tcp-option" => {
                    once(seen, S4, name)?;
                    let v = o.arg(c)?;
                    let n = parse_u32_dec(v)
                        .filter(|n| (1..=255).contains(n))
                        .ok_or_else(|| err_val(name, v, "an option number 1-255"))?;
                    *option = Some((n as u8, inv));
                }
                _ => return Ok(false),
            },
            Match::Udp { sport, dport } => match name {
                "--sport" | "--source-port" => {
                    once(seen, S1, name)?;
                    *sport = Some(range16("--sport", o.arg(c)?, Some("udp"), inv)?);
                }
                "--dport" | "--destination-port" => {
                    once(seen, S2, name)?;
                    *dport = Some(range16("--dport", o.arg(c)?, Some("udp"), inv)?);
                }
                _ => return Ok(false),
            },
            Match::Icmp {
                icmp_type,
                code_lo,
                code_hi,
                invert,
            } => match name {
                "--icmp-type" => {
                    once(seen, S1, name)?;
                    let v = o.arg(c)?;
                    if let Some(&(_, t, lo, hi)) = names::ICMP_NAMES
                        .iter()
                        .find(|(n, ..)| n.eq_ignore_ascii_case(v))
                    {
                        (*icmp_type, *code_lo, *code_hi) = (t, lo, hi);
                    } else {
                        let bad = || err_val(name, v, "an ICMP type name or type[/code[:code]]");
                        let (t, code) = match v.split_once('/') {
                            Some((t, cd)) => (t, Some(cd)),
                            None => (v, None),
                        };
                        let t = parse_u32_dec(t).filter(|t| *t <= 255).ok_or_else(bad)?;
                        let (lo, hi) = match code {
                            None => (0, 255),
                            Some(cd) => {
                                let p = |x: &str| {
                                    parse_u32_dec(x).filter(|t| *t <= 255).ok_or_else(bad)
                                };
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
                        (*icmp_type, *code_lo, *code_hi) = (t as u8, lo as u8, hi as u8);
                    }
                    *invert = inv;
                }
                _ => return Ok(false),
            },
            Match::Multiport {
                kind,
                ports,
                invert,
            } => {
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
                *invert = inv;
                let v = o.arg(c)?;
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
            }
            Match::Conntrack(ct) => {
                let ctaddr = |o: &mut Opt<'a>, c: &mut Cursor<'a, '_>| -> R<CtAddr> {
                    let n = o.name;
                    let (a, m) = parse_addr_mask(n, o.arg(c)?)?;
                    Ok(AddrMask {
                        addr: a,
                        mask: m,
                        invert: inv,
                    })
                };
                let ctport = |o: &mut Opt<'a>, c: &mut Cursor<'a, '_>| -> R<Range16> {
                    let n = o.name;
                    range16(n, o.arg(c)?, None, inv)
                };
                match name {
                    "--ctstate" => {
                        once(seen, S1, name)?;
                        ct.state = Some((parse_ctstates(name, o.arg(c)?)?, inv));
                    }
                    "--ctproto" => {
                        once(seen, S2, name)?;
                        let v = o.arg(c)?;
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
                    "--ctorigsrc" => ct.orig_src = Some(ctaddr(o, c)?),
                    "--ctorigdst" => ct.orig_dst = Some(ctaddr(o, c)?),
                    "--ctreplsrc" => ct.repl_src = Some(ctaddr(o, c)?),
                    "--ctrepldst" => ct.repl_dst = Some(ctaddr(o, c)?),
                    "--ctorigsrcport" => ct.orig_src_port = Some(ctport(o, c)?),
                    "--ctorigdstport" => ct.orig_dst_port = Some(ctport(o, c)?),
                    "--ctreplsrcport" => ct.repl_src_port = Some(ctport(o, c)?),
                    "--ctrepldstport" => ct.repl_dst_port = Some(ctport(o, c)?),
                    "--ctstatus" => {
                        let v = o.arg(c)?;
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
                        let (lo, hi) = parse_num_range_u32(name, o.arg(c)?)?;
                        ct.expire = Some((lo, hi, inv));
                    }
                    "--ctdir" => {
                        if inv {
                            return Err(invalid(
                                "conntrack: option \"--ctdir\" cannot be inverted.",
                            ));
                        }
                        let v = o.arg(c)?;
                        ct.dir_reply = Some(match v.to_ascii_uppercase().as_str() {
                            "ORIGINAL" => false,
                            "REPLY" => true,
                            _ => return Err(err_val(name, v, "ORIGINAL or REPLY")),
                        });
                    }
                    _ => return Ok(false),
                }
                *seen |= S8;
            }
            Match::State { states, invert } => match name {
                "--state" => {
                    once(seen, S1, name)?;
                    *states = parse_ctstates(name, o.arg(c)?)?;
                    *invert = inv;
                }
                _ => return Ok(false),
            },
            Match::Comment(s) => match name {
                "--comment" => {
                    no_inv(inv, name)?;
                    once(seen, S1, name)?;
                    let v = o.arg(c)?;
                    if v.len() > 255 {
                        return Err(err_val(name, v, "a comment of at most 255 characters"));
                    }
                    *s = v.to_string();
                }
                _ => return Ok(false),
            },
            Match::Mark(m) | Match::Connmark(m) => match name {
                "--mark" => {
                    once(seen, S1, name)?;
                    let (v, mask) = parse_mark(name, o.arg(c)?)?;
                    m.value = v;
                    m.mask = mask.unwrap_or(u32::MAX);
                    m.invert = inv;
                }
                _ => return Ok(false),
            },
            Match::Statistic { mode, invert } => match name {
                "--mode" => {
                    once(seen, S1, name)?;
                    let v = o.arg(c)?;
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
                    let v = o.arg(c)?;
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
                    let v = o.arg(c)?;
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
            },
            Match::Addrtype {
                src,
                dst,
                limit_iface_in,
                limit_iface_out,
            } => match name {
                "--src-type" => {
                    once(seen, S1, name)?;
                    *src = Some((parse_addrtypes(name, o.arg(c)?)?, inv));
                }
                "--dst-type" => {
                    once(seen, S2, name)?;
                    *dst = Some((parse_addrtypes(name, o.arg(c)?)?, inv));
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
            },
            Match::Iprange { src, dst } => match name {
                "--src-range" => {
                    let (a, b2) = parse_iprange(name, o.arg(c)?)?;
                    *src = Some((a, b2, inv));
                }
                "--dst-range" => {
                    let (a, b2) = parse_iprange(name, o.arg(c)?)?;
                    *dst = Some((a, b2, inv));
                }
                _ => return Ok(false),
            },
            Match::Limit { avg, burst } => match name {
                "--limit" => {
                    no_inv(inv, name)?;
                    once(seen, S1, name)?;
                    *avg = parse_limit_rate(name, o.arg(c)?)?;
                }
                "--limit-burst" => {
                    no_inv(inv, name)?;
                    once(seen, S2, name)?;
                    let v = o.arg(c)?;
                    *burst = parse_u32_dec(v)
                        .filter(|b| *b <= 10000)
                        .ok_or_else(|| err_val(name, v, "a burst 0-10000"))?;
                }
                _ => return Ok(false),
            },
            Match::Length(r) | Match::Tcpmss(r) => {
                let is_len = *seen & S8 != 0;
                let want = if is_len { "--length" } else { "--mss" };
                if name != want {
                    return Ok(false);
                }
                once(seen, S1, name)?;
                let v = o.arg(c)?;
                let (lo, hi) = parse_num_range_u32(name, v)?;
                let hi = if v.ends_with(':') { 65535 } else { hi };
                if hi > 65535 {
                    return Err(err_val(name, v, "a value or range within 0-65535"));
                }
                *r = Range16 {
                    lo: lo as u16,
                    hi: hi as u16,
                    invert: inv,
                };
            }
            Match::Ttl { op, value } => {
                let o2 = match name {
                    "--ttl-eq" => {
                        if inv {
                            TtlOp::Ne
                        } else {
                            TtlOp::Eq
                        }
                    }
                    "--ttl-lt" => TtlOp::Lt,
                    "--ttl-gt" => TtlOp::Gt,
                    _ => return Ok(false),
                };
                if inv && o2 != TtlOp::Ne {
                    return Err(invalid(format!("ttl: unexpected `!' before {name}")));
                }
                once(seen, S1, "--ttl-eq/--ttl-lt/--ttl-gt")?;
                let v = o.arg(c)?;
                let n = parse_u32_dec(v)
                    .filter(|n| *n <= 255)
                    .ok_or_else(|| err_val(name, v, "a TTL 0-255"))?;
                *op = o2;
                *value = n as u8;
            }
            Match::Mac { addr, invert } => match name {
                "--mac-source" => {
                    once(seen, S1, name)?;
                    let v = o.arg(c)?;
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
                    *invert = inv;
                }
                _ => return Ok(false),
            },
            Match::Recent(r) => {
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
                    r.invert = inv;
                    return Ok(true);
                }
                match name {
                    "--seconds" => {
                        let v = o.arg(c)?;
                        r.seconds = parse_u32_dec(v).ok_or_else(|| err_val(name, v, "seconds"))?;
                        *seen |= S2;
                    }
                    "--reap" => {
                        r.reap = true;
                        *seen |= S3;
                    }
                    "--hitcount" => {
                        let v = o.arg(c)?;
                        r.hit_count =
                            parse_u32_dec(v).ok_or_else(|| err_val(name, v, "a hit count"))?;
                    }
                    "--rttl" => {
                        r.rttl = true;
                        *seen |= S4;
                    }
                    "--name" => {
                        let v = o.arg(c)?;
                        simple_name(name, v)?;
                        if v.len() > 199 {
                            return Err(err_val(name, v, "a list name of 1-199 characters"));
                        }
                        r.name = v.to_string();
                    }
                    "--rsource" => r.rdest = false,
                    "--rdest" => r.rdest = true,
                    "--mask" => {
                        let v = o.arg(c)?;
                        r.mask = parse_ip(v).ok_or_else(|| err_val(name, v, "a netmask"))?;
                    }
                    _ => return Ok(false),
                }
                let _ = (S5, S6, S7);
            }
        }
        Ok(true)
    }

    fn target_option<'a>(&mut self, o: &mut Opt<'a>, inv: bool, c: &mut Cursor<'a, '_>) -> R<bool> {
        let name = o.name;
        let seen = &mut self.target_seen;
        let proto = self.rule.proto;
        let pinv = self.rule.proto_invert;
        match &mut self.rule.target {
            Target::Reject(w) => match name {
                "--reject-with" => {
                    no_inv(inv, name)?;
                    let v = o.arg(c)?;
                    let alias = match v {
                        "net-unreach" | "icmp-net-unreachable" => "icmp-net-unreachable",
                        "host-unreach" | "icmp-host-unreachable" => "icmp-host-unreachable",
                        "port-unreach" | "icmp-port-unreachable" => "icmp-port-unreachable",
                        "proto-unreach" | "icmp-proto-unreachable" => "icmp-proto-unreachable",
                        "net-prohib" | "icmp-net-prohibited" => "icmp-net-prohibited",
                        "host-prohib" | "icmp-host-prohibited" => "icmp-host-prohibited",
                        "admin-prohib" | "icmp-admin-prohibited" => "icmp-admin-prohibited",
                        "tcp-reset" | "tcp-rst" => "tcp-reset",
                        _ => {
                            return Err(err_val(
                                name,
                                v,
                                "icmp-net-unreachable, icmp-host-unreachable, icmp-port-unreachable, icmp-proto-unreachable, icmp-net-prohibited, icmp-host-prohibited, icmp-admin-prohibited or tcp-reset",
                            ))
                        }
                    };
                    *w = RejectWith::ALL.iter().find(|(_, n)| *n == alias).unwrap().0;
                    if *w == RejectWith::TcpReset && (proto != 6 || pinv) {
                        return Err(invalid(
                            "REJECT: --reject-with tcp-reset is only valid with -p tcp",
                        ));
                    }
                }
                _ => return Ok(false),
            },
            Target::Log(l) => {
                no_inv(inv, name)?;
                match name {
                    "--log-prefix" => {
                        let v = o.arg(c)?;
                        if v.len() > 29 {
                            return Err(err_val(name, v, "a prefix of at most 29 characters"));
                        }
                        l.prefix = Some(v.to_string());
                    }
                    "--log-level" => {
                        let v = o.arg(c)?;
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
            }
            Target::Mark { value, mask } => {
                no_inv(inv, name)?;
                let (v, m) = match name {
                    "--set-xmark" => {
                        let (v, m) = parse_mark(name, o.arg(c)?)?;
                        (v, m.unwrap_or(u32::MAX))
                    }
                    "--set-mark" => {
                        let (v, m) = parse_mark(name, o.arg(c)?)?;
                        (v, v | m.unwrap_or(u32::MAX))
                    }
                    "--and-mark" => {
                        let (v, _) = parse_mark(name, o.arg(c)?)?;
                        (0, !v)
                    }
                    "--or-mark" => {
                        let (v, _) = parse_mark(name, o.arg(c)?)?;
                        (v, v)
                    }
                    "--xor-mark" => {
                        let (v, _) = parse_mark(name, o.arg(c)?)?;
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
            }
            Target::Connmark(cm) => {
                no_inv(inv, name)?;
                match name {
                    "--set-xmark" | "--set-mark" | "--and-mark" | "--or-mark" | "--xor-mark" => {
                        once(seen, S1, "CONNMARK action")?;
                        let (v, m) = parse_mark(name, o.arg(c)?)?;
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
                        let v = o.arg(c)?;
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
            }
            Target::Dnat { range, flags } | Target::Snat { range, flags } => {
                no_inv(inv, name)?;
                match name {
                    "--to-destination" | "--to-source" | "--to" => {
                        let is_dnat = self.rule.target.name() == "DNAT";
                        let want = if is_dnat {
                            "--to-destination"
                        } else {
                            "--to-source"
                        };
                        if name != "--to" && name != want {
                            return Ok(false);
                        }
                        once(seen, S1, want)?;
                        let v = o.arg(c)?;
                        let r = parse_nat_range(want, v, is_dnat)?;
                        if r.ports.is_some() && !nat_ports_ok(proto, pinv) {
                            return Err(invalid(format!(
                                "Need TCP, UDP, SCTP or DCCP with port specification (\"{v}\")"
                            )));
                        }
                        let (Target::Dnat { range, .. } | Target::Snat { range, .. }) =
                            &mut self.rule.target
                        else {
                            unreachable!()
                        };
                        *range = r;
                        return Ok(true);
                    }
                    "--random" => flags.random = true,
                    "--random-fully" => flags.random_fully = true,
                    "--persistent" => flags.persistent = true,
                    _ => return Ok(false),
                }
                let _ = range;
            }
            Target::Masquerade { ports, flags } | Target::Redirect { ports, flags } => {
                no_inv(inv, name)?;
                match name {
                    "--to-ports" => {
                        let v = o.arg(c)?;
                        if !nat_ports_ok(proto, pinv) {
                            return Err(invalid(format!(
                                "Need TCP, UDP, SCTP or DCCP with port specification (\"{v}\")"
                            )));
                        }
                        *ports = Some(parse_to_ports(name, v)?);
                    }
                    "--random" => flags.random = true,
                    "--random-fully" if matches!(self.rule.target, Target::Masquerade { .. }) => {
                        if let Target::Masquerade { flags, .. } = &mut self.rule.target {
                            flags.random_fully = true;
                        }
                    }
                    _ => return Ok(false),
                }
            }
            Target::Ct(ct) => {
                no_inv(inv, name)?;
                match name {
                    "--notrack" => ct.notrack = true,
                    "--zone" => {
                        let v = o.arg(c)?;
                        ct.zone = Some(
                            parse_u32_dec(v)
                                .and_then(|z| u16::try_from(z).ok())
                                .ok_or_else(|| err_val(name, v, "a zone 0-65535"))?,
                        );
                    }
                    "--ctevents" => ct.ctevents = parse_events(name, o.arg(c)?)?,
                    "--helper" => ct.helper = Some(simple_name(name, o.arg(c)?)?.to_string()),
                    "--timeout" => ct.timeout = Some(simple_name(name, o.arg(c)?)?.to_string()),
                    "--expevents" => {
                        let v = o.arg(c)?;
                        if v != "new" {
                            return Err(err_val(name, v, "new"));
                        }
                        ct.expevents = 1;
                    }
                    _ => return Ok(false),
                }
            }
            Target::Nflog(n) => {
                no_inv(inv, name)?;
                match name {
                    "--nflog-group" => {
                        let v = o.arg(c)?;
                        n.group = parse_u32_dec(v)
                            .and_then(|g| u16::try_from(g).ok())
                            .ok_or_else(|| err_val(name, v, "a group 0-65535"))?;
                    }
                    "--nflog-prefix" => {
                        let v = o.arg(c)?;
                        if v.len() > 63 {
                            return Err(err_val(name, v, "a prefix of at most 63 characters"));
                        }
                        n.prefix = Some(v.to_string());
                    }
                    "--nflog-range" | "--nflog-size" => {
                        let v = o.arg(c)?;
                        let l = parse_u32_dec(v).ok_or_else(|| err_val(name, v, "a length"))?;
                        n.len = Some((l, name == "--nflog-size"));
                    }
                    "--nflog-threshold" => {
                        let v = o.arg(c)?;
                        n.threshold = parse_u32_dec(v)
                            .and_then(|g| u16::try_from(g).ok())
                            .ok_or_else(|| err_val(name, v, "a threshold 0-65535"))?;
                    }
                    _ => return Ok(false),
                }
            }
            Target::ChecksumFill => match name {
                "--checksum-fill" => {
                    no_inv(inv, name)?;
                    self.target_seen |= S1;
                }
                _ => return Ok(false),
            },
            Target::TcpmssSet(_) | Target::TcpmssClamp => {
                no_inv(inv, name)?;
                match name {
                    "--set-mss" => {
                        once(seen, S1, "TCPMSS: --set-mss/--clamp-mss-to-pmtu")?;
                        let v = o.arg(c)?;
                        let n = parse_u32_dec(v)
                            .and_then(|z| u16::try_from(z).ok())
                            .ok_or_else(|| err_val(name, v, "an MSS 0-65535"))?;
                        self.rule.target = Target::TcpmssSet(n);
                    }
                    "--clamp-mss-to-pmtu" => {
                        once(seen, S1, "TCPMSS: --set-mss/--clamp-mss-to-pmtu")?;
                        self.rule.target = Target::TcpmssClamp;
                    }
                    _ => return Ok(false),
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Final checks (required options, protocol requirements) and the rule.
    pub(super) fn finish(mut self) -> R<Rule> {
        let proto = self.rule.proto;
        let pinv = self.rule.proto_invert;
        for l in &self.loaded {
            let s = l.seen;
            match &l.m {
                Match::Tcp { .. } if proto != 6 || pinv => {
                    return Err(invalid("tcp match: needs `-p tcp' (\"-m tcp\" without it)"))
                }
                Match::Udp { .. } if proto != 17 || pinv => {
                    return Err(invalid("udp match: needs `-p udp' (\"-m udp\" without it)"))
                }
                Match::Icmp { .. } if proto != 1 || pinv => {
                    return Err(invalid(
                        "icmp match: needs `-p icmp' (\"-m icmp\" without it)",
                    ))
                }
                Match::Tcpmss(_) if proto != 6 || pinv => {
                    return Err(invalid("tcpmss match: needs `-p tcp'"))
                }
                Match::Multiport { .. } => {
                    if s & S1 == 0 {
                        return Err(invalid(
                            "multiport: one of --sports, --dports or --ports is required",
                        ));
                    }
                    if pinv || !matches!(proto, 6 | 17 | 132 | 33 | 136) {
                        return Err(invalid("multiport needs `-p tcp', `-p udp', `-p udplite', `-p sctp' or `-p dccp'"));
                    }
                }
                Match::Conntrack(_) if s & S8 == 0 => {
                    return Err(invalid("conntrack: at least one option is required"))
                }
                Match::State { .. } if s & S1 == 0 => {
                    return Err(invalid("state: option \"--state\" must be specified"))
                }
                Match::Comment(_) if s & S1 == 0 => {
                    return Err(invalid("comment: option \"--comment\" must be specified"))
                }
                Match::Mark(_) | Match::Connmark(_) if s & S1 == 0 => {
                    return Err(invalid(format!(
                        "{}: option \"--mark\" must be specified",
                        l.m.name()
                    )))
                }
                Match::Statistic { mode, .. } => {
                    if s & S1 == 0 {
                        return Err(invalid("statistic: no mode specified (--mode random|nth)"));
                    }
                    match mode {
                        StatisticMode::Random { .. } if s & S2 == 0 => {
                            return Err(invalid(
                                "--probability must be specified when using random mode",
                            ))
                        }
                        StatisticMode::Nth { every, packet } => {
                            if s & S3 == 0 {
                                return Err(invalid(
                                    "--every must be specified when using nth mode",
                                ));
                            }
                            if s & S4 == 0 {
                                return Err(invalid(
                                    "statistic: option \"--every\" also requires \"--packet\".",
                                ));
                            }
                            if *packet > *every {
                                return Err(invalid("the --packet p must be 0 <= p <= n-1"));
                            }
                        }
                        _ => {}
                    }
                }
                Match::Addrtype {
                    src,
                    dst,
                    limit_iface_in,
                    limit_iface_out,
                } => {
                    if src.is_none() && dst.is_none() {
                        return Err(invalid(
                            "addrtype: you must specify --src-type or --dst-type",
                        ));
                    }
                    if *limit_iface_in && *limit_iface_out {
                        return Err(invalid("addrtype: you can't specify both --limit-iface-in and --limit-iface-out"));
                    }
                }
                Match::Iprange { src, dst } if src.is_none() && dst.is_none() => {
                    return Err(invalid(
                        "iprange match: You must specify `--src-range' or `--dst-range'",
                    ))
                }
                Match::Length(_) | Match::Ttl { .. } if s & S1 == 0 => {
                    return Err(invalid(format!(
                        "{}: a value must be specified",
                        l.m.name()
                    )))
                }
                Match::Tcpmss(_) if s & S1 == 0 => {
                    return Err(invalid("tcpmss: option \"--mss\" must be specified"))
                }
                Match::Recent(r) => {
                    if s & S1 == 0 {
                        return Err(invalid("recent: you must specify one of `--set', `--rcheck', `--update' or `--remove'"));
                    }
                    if s & S4 != 0 && !matches!(r.cmd, RecentCmd::Rcheck | RecentCmd::Update) {
                        return Err(invalid(
                            "recent: --rttl may only be used with --rcheck or --update",
                        ));
                    }
                    if s & S3 != 0 && s & S2 == 0 {
                        return Err(invalid("recent: --reap requires --seconds"));
                    }
                }
                _ => {}
            }
        }
        let ts = self.target_seen;
        match &self.rule.target {
            Target::Mark { .. } if ts & S1 == 0 => {
                return Err(invalid("MARK target: one of --set-xmark, --set-mark, --and-mark, --or-mark or --xor-mark is required"))
            }
            Target::Connmark(_) if ts & S1 == 0 => {
                return Err(invalid("CONNMARK target: no operation specified"))
            }
            Target::Dnat { .. } if ts & S1 == 0 => {
                return Err(invalid("DNAT: option \"--to-destination\" must be specified"))
            }
            Target::Snat { .. } if ts & S1 == 0 => {
                return Err(invalid("SNAT: option \"--to-source\" must be specified"))
            }
            Target::ChecksumFill if ts & S1 == 0 => {
                return Err(invalid("CHECKSUM target: option \"--checksum-fill\" must be specified"))
            }
            Target::TcpmssSet(_) if ts & S1 == 0 => {
                return Err(invalid("TCPMSS target: exactly one of --set-mss or --clamp-mss-to-pmtu is required"))
            }
            _ => {}
        }
        if matches!(self.rule.target, Target::TcpmssSet(_) | Target::TcpmssClamp)
            && (proto != 6 || pinv)
        {
            return Err(invalid("TCPMSS target: needs `-p tcp'"));
        }
        // `-i +` / `-o +` match everything: dropped, as iptables-nft does.
        for i in [&mut self.rule.in_iface, &mut self.rule.out_iface] {
            if matches!(i, Some(x) if x.wildcard && x.name.is_empty() && !x.invert) {
                *i = None;
            }
        }
        // Exactly as many as there are: `collect` would reuse the scratch
        // vector (capacity 4 of a larger element, 160 bytes) for every rule
        // of a 140,000-rule restore.
        let mut matches = Vec::with_capacity(self.loaded.len());
        matches.extend(self.loaded.into_iter().map(|l| l.m));
        self.rule.matches = matches;
        Ok(self.rule)
    }
}
