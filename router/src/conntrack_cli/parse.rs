//! The command line parser: getopt_long as conntrack 1.4.7 drives it
//! (bundled short options, attached arguments, unique prefixes of long
//! options, protocol options that exist only after `-p`), then the tool's
//! legality checks.

use super::error::CtError;
use super::option::{
    short_opt, Arg, Cmd, CtTable, Key, Opt, ProtoOpt, EXP_DELETE, EXP_LIST, ICMP_OPTS, LEGAL,
    LONG_OPTS, OPT_NAMES, PORT_OPTS, TCP_STATE_OPT,
};
use super::request::{NatArg, Request};
use super::value::{
    atoi_u16, inet_aton, parse_addr, parse_list, parse_proto, set_family, strtoul, tcp_state,
    EVENT_NAMES, OUTPUT_NAMES, O_EXT, O_ID, O_XML, STATUS_NAMES, UNREPLIED_BIT,
};
use crate::conntrack::{PROTO_ICMP, PROTO_TCP, PROTO_UDP};

/// Parses `conntrack` arguments (without the program name) the way
/// conntrack 1.4.7 does, including its legality checks.
pub fn parse(args: &[String]) -> Result<Request, CtError> {
    parse_warn(args).1
}

/// [`parse`], also returning the warnings the tool prints while parsing
/// (they precede an error message too).
pub fn parse_warn(args: &[String]) -> (Vec<String>, Result<Request, CtError>) {
    let mut warnings = Vec::new();
    let r = parse_inner(args, &mut warnings);
    (
        warnings.clone(),
        r.map(|mut req| {
            req.warnings = warnings;
            req
        }),
    )
}

/// The next word as an optional argument or a table operand: taken (and
/// `i` advanced) only after the last option of a word, and only when it
/// starts with neither `-` nor `!`.
fn next_operand(args: &[String], i: &mut usize, last: bool) -> Option<String> {
    match args.get(*i) {
        Some(a) if last && !a.starts_with('-') && !a.starts_with('!') => {
            *i += 1;
            Some(a.clone())
        }
        _ => None,
    }
}

fn parse_inner(args: &[String], warnings: &mut Vec<String>) -> Result<Request, CtError> {
    let mut cmd: Option<Cmd> = None;
    let mut table = CtTable::Conntrack;
    let mut used = [false; 29];
    let mut family: Option<bool> = None;
    let mut req = Request::new(Cmd::List);
    // Protocol options become known once `-p` has been seen.
    let mut proto_opts: Vec<(&'static str, Arg, Key)> = Vec::new();
    let (mut mask_src, mut mask_dst): (Option<u128>, Option<u128>) = (None, None);
    let mut i = 0;
    while i < args.len() {
        let tok = args[i].as_str();
        i += 1;
        // (key, attached argument, token for messages, arg kind)
        // (key, attached argument, argument kind, last option of its word)
        let mut items: Vec<(Key, Option<String>, Arg, bool)> = Vec::new();
        if let Some(long) = tok.strip_prefix("--") {
            if long.is_empty() {
                // "--" ends the options; the rest are operands (ignored).
                break;
            }
            let (name, attached) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (long, None),
            };
            let all = LONG_OPTS.iter().chain(proto_opts.iter());
            let exact: Vec<_> = all.clone().filter(|(n, _, _)| *n == name).collect();
            let found = if let Some(e) = exact.first() {
                Some(**e)
            } else {
                let pre: Vec<_> = all.filter(|(n, _, _)| n.starts_with(name)).collect();
                match pre.first() {
                    Some(first) if pre.iter().all(|p| p.2 == first.2 && p.1 == first.1) => {
                        Some(**first)
                    }
                    _ => None,
                }
            };
            let Some((_, kind, key)) = found else {
                return Err(CtError::UnknownOption {
                    token: tok.to_string(),
                });
            };
            if kind == Arg::No && attached.is_some() {
                return Err(CtError::UnknownOption {
                    token: tok.to_string(),
                });
            }
            items.push((key, attached, kind, true));
        } else if tok.len() > 1 && tok.starts_with('-') {
            let chars: Vec<char> = tok[1..].chars().collect();
            let mut k = 0;
            while k < chars.len() {
                let Some((kind, key)) = short_opt(chars[k]) else {
                    return Err(CtError::UnknownOption {
                        token: tok.to_string(),
                    });
                };
                let rest: String = chars[k + 1..].iter().collect();
                if kind != Arg::No && !rest.is_empty() {
                    items.push((key, Some(rest), kind, true));
                    break;
                }
                items.push((key, None, kind, k + 1 == chars.len()));
                k += 1;
            }
        } else {
            // Operands are ignored (getopt moves them to the end).
            continue;
        }
        for (key, attached, kind, last) in items {
            let arg = match (kind, attached) {
                (Arg::No, _) => None,
                // conntrack 1.4.7 parses only a separate NAT argument; an
                // attached one (`-n1.2.3.4`, `--src-nat=...`) is ignored
                // and the option filters on "any address".
                (Arg::Optional, Some(_))
                    if matches!(key, Key::Opt(Opt::SrcNat | Opt::DstNat | Opt::AnyNat)) =>
                {
                    None
                }
                // A command's attached argument (`-Lz`, `--dump=x`) is
                // swallowed and ignored; a separate one is the table,
                // read below.
                (Arg::Optional, Some(_)) if matches!(key, Key::Cmd(_)) => Some(String::new()),
                (Arg::Optional, None) if matches!(key, Key::Cmd(_)) => None,
                (_, Some(a)) => Some(a),
                (Arg::Required, None) => match args.get(i) {
                    Some(a) => {
                        i += 1;
                        Some(a.clone())
                    }
                    None => {
                        return Err(CtError::MissingArgument {
                            token: tok.to_string(),
                        })
                    }
                },
                (Arg::Optional, None) => next_operand(args, &mut i, last),
            };
            match key {
                Key::Cmd(c) => {
                    // The table operand is read first (conntrack's
                    // check_type), and only after the last option of a word.
                    {
                        let t = match arg {
                            Some(_) => None,
                            None => next_operand(args, &mut i, last),
                        };
                        if let Some(t) = t {
                            table = if t.starts_with("expect") {
                                CtTable::Expect
                            } else if t.starts_with("conntrack") {
                                CtTable::Conntrack
                            } else if t.starts_with("dying") {
                                CtTable::Dying
                            } else if t.starts_with("unconfirmed") {
                                CtTable::Unconfirmed
                            } else {
                                return Err(CtError::UnknownTable { token: t });
                            };
                            if matches!(table, CtTable::Dying | CtTable::Unconfirmed)
                                && c != Cmd::List
                            {
                                return Err(CtError::DyingTable);
                            }
                        }
                    }
                    if cmd.is_some() {
                        return Err(CtError::CommandCombination);
                    }
                    cmd = Some(c);
                }
                Key::Opt(Opt::NatRange) => {
                    warnings.push("WARNING: ignoring -a, deprecated option.\n".to_string());
                }
                Key::Opt(o) => {
                    used[o as usize] = true;
                    let a = arg.unwrap_or_default();
                    match o {
                        Opt::Src => req.src = parse_addr(&a, &mut family)?,
                        Opt::Dst => req.dst = parse_addr(&a, &mut family)?,
                        // Only -s/-d take ADDR/LEN.
                        Opt::ReplySrc | Opt::ReplyDst | Opt::MaskSrc | Opt::MaskDst
                            if a.contains('/') =>
                        {
                            return Err(CtError::NoCidr(OPT_NAMES[o as usize]));
                        }
                        Opt::ReplySrc => req.reply_src = parse_addr(&a, &mut family)?,
                        Opt::ReplyDst => req.reply_dst = parse_addr(&a, &mut family)?,
                        Opt::MaskSrc | Opt::MaskDst => {
                            let m = match inet_aton(&a) {
                                Some(m) => {
                                    set_family(&mut family, false)?;
                                    Some(m.to_bits() as u128)
                                }
                                None if a.parse::<std::net::Ipv6Addr>().is_ok() => {
                                    set_family(&mut family, true)?;
                                    a.parse::<std::net::Ipv6Addr>().ok().map(|m| m.to_bits())
                                }
                                None => return Err(CtError::BadAddress { token: a }),
                            };
                            if o == Opt::MaskSrc {
                                mask_src = m;
                            } else {
                                mask_dst = m;
                            }
                        }
                        Opt::TupleSrc | Opt::TupleDst => {
                            parse_addr(&a, &mut family)?;
                        }
                        Opt::Proto => {
                            let p = parse_proto(&a)?;
                            req.proto = Some(p);
                            proto_opts.clear();
                            match p {
                                PROTO_TCP => {
                                    proto_opts.extend_from_slice(PORT_OPTS);
                                    proto_opts.push(TCP_STATE_OPT);
                                }
                                PROTO_UDP | 136 | 132 | 33 => {
                                    proto_opts.extend_from_slice(PORT_OPTS)
                                }
                                PROTO_ICMP => proto_opts.extend_from_slice(ICMP_OPTS),
                                _ => {}
                            }
                        }
                        Opt::Status => {
                            let v = parse_list(&a, STATUS_NAMES, |item| {
                                let up = item.to_ascii_uppercase();
                                for (name, opt) in [("SRC_NAT", "src-nat"), ("DST_NAT", "dst-nat")]
                                {
                                    if name.starts_with(&up) {
                                        warnings.push(format!(
                                            "WARNING: ignoring {name}, use --{opt} instead\n"
                                        ));
                                        return Some(Ok(()));
                                    }
                                }
                                if !"ASSURED".starts_with(&up)
                                    && !"SEEN_REPLY".starts_with(&up)
                                    && "UNSET".starts_with(&up)
                                {
                                    return Some(Ok(()));
                                }
                                None
                            })?;
                            req.unreplied = v & UNREPLIED_BIT != 0;
                            req.status = v & !UNREPLIED_BIT;
                            req.status_invalid = req.status == 0 && !req.unreplied;
                        }
                        Opt::EventMask => req.event_mask = parse_list(&a, EVENT_NAMES, |_| None)?,
                        Opt::Output => {
                            let v = parse_list(&a, OUTPUT_NAMES, |_| None)?;
                            req.xml = v & O_XML != 0;
                            req.extended = v & O_EXT != 0;
                            req.show_id = v & O_ID != 0;
                        }
                        Opt::Mark => {
                            let (v, rest) = strtoul(&a);
                            let m = match rest.strip_prefix('/') {
                                Some(m) => strtoul(m).0 as u32,
                                None => u32::MAX,
                            };
                            req.mark = Some((v as u32, m));
                        }
                        Opt::Family => match a.as_str() {
                            "ipv4" => set_family(&mut family, false)?,
                            "ipv6" => set_family(&mut family, true)?,
                            _ => return Err(CtError::BadProtocol { token: a }),
                        },
                        Opt::SrcNat | Opt::DstNat | Opt::AnyNat => {
                            let mut n = NatArg::default();
                            if a.parse::<std::net::Ipv6Addr>().is_ok() {
                                // An IPv6 NAT address: no IPv4 entry has it.
                                set_family(&mut family, true)?;
                            } else if !a.is_empty() {
                                let (addr, port) = match a.split_once(':') {
                                    Some((_, p)) if p.contains(':') => {
                                        return Err(CtError::BadAddress { token: a });
                                    }
                                    Some((ad, p)) => match p.parse::<u16>() {
                                        Ok(port) => (ad, Some(port)),
                                        Err(_) => {
                                            return Err(CtError::BadPort {
                                                token: p.to_string(),
                                            })
                                        }
                                    },
                                    None => (a.as_str(), None),
                                };
                                if addr.contains('/') {
                                    return Err(CtError::NoCidr(OPT_NAMES[o as usize]));
                                }
                                n.port = port;
                                n.addr = parse_addr(addr, &mut family)?.map(|f| f.addr);
                            }
                            match o {
                                Opt::SrcNat => req.src_nat = Some(n),
                                Opt::DstNat => req.dst_nat = Some(n),
                                _ => req.any_nat = Some(n),
                            }
                        }
                        Opt::Zone => req.zone = Some(strtoul(&a).0 as u16),
                        Opt::Timeout => req.timeout = Some(strtoul(&a).0 as u32),
                        Opt::Label => {
                            return Err(CtError::UnknownLabel {
                                token: a.split(',').next().unwrap_or_default().to_string(),
                            })
                        }
                        _ => {}
                    }
                }
                Key::Proto(p) => {
                    let a = arg.unwrap_or_default();
                    match p {
                        ProtoOpt::OrigPortSrc => req.orig_sport = Some(atoi_u16(&a)),
                        ProtoOpt::OrigPortDst => req.orig_dport = Some(atoi_u16(&a)),
                        ProtoOpt::ReplyPortSrc => req.reply_sport = Some(atoi_u16(&a)),
                        ProtoOpt::ReplyPortDst => req.reply_dport = Some(atoi_u16(&a)),
                        ProtoOpt::State => req.tcp_state = Some(tcp_state(&a)?),
                        ProtoOpt::IcmpType => req.icmp_type = Some(atoi_u16(&a) as u8),
                        ProtoOpt::IcmpCode => req.icmp_code = Some(atoi_u16(&a) as u8),
                        ProtoOpt::IcmpId => req.icmp_id = Some(atoi_u16(&a)),
                        ProtoOpt::MaskPortSrc
                        | ProtoOpt::MaskPortDst
                        | ProtoOpt::TuplePortSrc
                        | ProtoOpt::TuplePortDst => {
                            if cmd != Some(Cmd::Create) {
                                return Err(CtError::IllegalOption {
                                    option: match p {
                                        ProtoOpt::MaskPortSrc => "mask-port-src",
                                        ProtoOpt::MaskPortDst => "mask-port-dst",
                                        ProtoOpt::TuplePortSrc => "tuple-port-src",
                                        _ => "tuple-port-dst",
                                    },
                                });
                            }
                        }
                    }
                }
            }
        }
    }
    if used[Opt::AnyNat as usize] && (used[Opt::SrcNat as usize] || used[Opt::DstNat as usize]) {
        return Err(CtError::AnyNatWith);
    }
    let Some(cmd) = cmd else {
        if let Some(first) = used.iter().position(|u| *u) {
            return Err(CtError::IllegalOption {
                option: OPT_NAMES[first],
            });
        }
        let mut r = Request::new(Cmd::Help);
        r.table = table;
        return Ok(r);
    };
    let legal = match (table, cmd) {
        (CtTable::Expect, Cmd::List) => &EXP_LIST,
        (CtTable::Expect, Cmd::Delete | Cmd::Get) => &EXP_DELETE,
        (CtTable::Expect, Cmd::Flush | Cmd::Event | Cmd::Count | Cmd::Update) => &[0; 29],
        _ => {
            &LEGAL
                .iter()
                .find(|(c, _)| *c == cmd)
                .expect("all commands")
                .1
        }
    };
    for (k, &l) in legal.iter().enumerate() {
        if used[k] && l == 0 {
            return Err(CtError::IllegalOption {
                option: OPT_NAMES[k],
            });
        }
        if !used[k] && l == 1 {
            return Err(CtError::RequiredOption {
                option: OPT_NAMES[k],
            });
        }
    }
    for (mask, opt, addr_opt, f, name) in [
        (mask_src, Opt::MaskSrc, Opt::Src, &mut req.src, "src"),
        (mask_dst, Opt::MaskDst, Opt::Dst, &mut req.dst, "dst"),
    ] {
        if used[opt as usize] && !used[addr_opt as usize] {
            return Err(CtError::MaskWithout(name));
        }
        if let (Some(m), Some(f)) = (mask, f.as_mut()) {
            f.mask = m;
        }
    }
    if used[Opt::Zero as usize]
        && [
            Opt::Src,
            Opt::Dst,
            Opt::ReplySrc,
            Opt::ReplyDst,
            Opt::Proto,
            Opt::Mark,
            Opt::Status,
            Opt::Zone,
            Opt::Secmark,
            Opt::OrigZone,
            Opt::ReplyZone,
        ]
        .iter()
        .any(|o| used[*o as usize])
    {
        return Err(CtError::ZeroWithFilter);
    }
    if cmd == Cmd::Get && table == CtTable::Conntrack {
        // The tuple to look up must be complete (conntrack's "3" options).
        let has = |o: Opt| used[o as usize];
        let orig = if has(Opt::Src) || has(Opt::Dst) {
            if !(has(Opt::Src) && has(Opt::Dst)) {
                return Err(CtError::NeedPair("src", "dst"));
            }
            true
        } else if has(Opt::ReplySrc) || has(Opt::ReplyDst) {
            if !(has(Opt::ReplySrc) && has(Opt::ReplyDst)) {
                return Err(CtError::NeedPair("reply-src", "reply-dst"));
            }
            false
        } else {
            return Err(CtError::NeedPair("src", "dst"));
        };
        if matches!(req.proto, Some(PROTO_TCP | PROTO_UDP | 33 | 132 | 136)) {
            let ports = if orig {
                (req.orig_sport, req.orig_dport)
            } else {
                (req.reply_sport, req.reply_dport)
            };
            if ports.0.is_none() || ports.1.is_none() {
                return Err(CtError::NeedPair("sport", "dport"));
            }
        }
    }
    req.cmd = cmd;
    req.table = table;
    req.ipv6 = family == Some(true);
    Ok(req)
}

#[cfg(test)]
mod tests {
    use crate::conntrack_cli::fixture::*;
    use crate::conntrack_cli::{run, CliOptions, EventStream};

    #[test]
    fn bad_command_lines_as_the_real_tool() {
        let t = fixture();
        let cases: &[(&str, &str)] = &[
            ("-L -s foo", "Invalid IP address `foo'"),
            ("-L -d 10.1.2.300", "Invalid IP address `10.1.2.300'"),
            ("-L -s", "option `-s' requires an argument"),
            ("-L -p tcp --sport", "option `--sport' requires an argument"),
            ("-X", "unknown option `-X'"),
            ("--bogus", "unknown option `--bogus'"),
            ("-L --sport 7778", "unknown option `--sport'"),
            ("-L --state ESTABLISHED -p tcp", "unknown option `--state'"),
            ("-L -p udp --state ESTABLISHED", "unknown option `--state'"),
            ("-L --s 1.1.1.1", "unknown option `--s'"),
            ("-L --sr 1.1.1.1", "unknown option `--sr'"),
            ("-L -p foo", "`foo' unsupported protocol"),
            ("-L -p tcp --state FOO", "unknown TCP state `FOO'"),
            (
                "-L -p tcp --state established",
                "unknown TCP state `established'",
            ),
            ("-L -u FOO", "Bad parameter `FOO'"),
            ("-L -u SEEN_REPLY,", "Bad parameter `'"),
            ("-L -o foo", "Bad parameter `foo'"),
            ("-L -o extended,foo", "Bad parameter `foo'"),
            ("-E -e FOO", "Bad parameter `FOO'"),
            ("-L -f inet", "`inet' unsupported protocol"),
            ("-L -f ipv4 -d ::1", "mismatched address family"),
            ("-L -L", "Invalid commands combination"),
            ("-L -D", "Invalid commands combination"),
            ("-L --dump", "Invalid commands combination"),
            ("-S -S", "Invalid commands combination"),
            ("-F -s 1.2.3.4", "Illegal option `--src' with this command"),
            (
                "-F -p tcp -s 1.2.3.4",
                "Illegal option `--src' with this command",
            ),
            ("-C -s 1.2.3.4", "Illegal option `--src' with this command"),
            ("-S -p tcp", "Illegal option `--protonum' with this command"),
            (
                "-L -e NEW",
                "Illegal option `--event-mask' with this command",
            ),
            ("-L -t 10", "Illegal option `--timeout' with this command"),
            ("-D -j", "Illegal option `--any-nat' with this command"),
            ("-j", "Illegal option `--any-nat' with this command"),
            ("-p tcp", "Illegal option `--protonum' with this command"),
            (
                "-G -s 1.2.3.4",
                "You need to supply the `--protonum' option for this command",
            ),
            ("-L extra", "unknown type `extra'"),
            ("-L -n :5000", "Invalid IP address `'"),
            (
                "-L --mask-src 255.0.0.0",
                "Can't use --mask-src without --src",
            ),
            (
                "-L -r 10.0.0.0/8",
                "CIDR notation unavailable for `--reply-src'",
            ),
            (
                "-D dying",
                "Can't do that command with tables `dying' and `unconfirmed'",
            ),
            (
                "-V unconfirmed",
                "Can't do that command with tables `dying' and `unconfirmed'",
            ),
            ("-S foo", "unknown type `foo'"),
            ("-h 0", "unknown type `0'"),
            (
                "-L expect -s 1.1.1.1",
                "Illegal option `--src' with this command",
            ),
            ("-L -u !", "Bad parameter `'"),
            (
                "-L -s 1.1.1.1 --mask-src 255.0.0.0/8",
                "CIDR notation unavailable for `--mask-src'",
            ),
            (
                "-L -n 10.0.0.0/8",
                "CIDR notation unavailable for `--src-nat'",
            ),
            (
                "-L -j -g",
                "cannot specify `--src-nat' or `--dst-nat' with `--any-nat'",
            ),
            (
                "-L -n -j",
                "cannot specify `--src-nat' or `--dst-nat' with `--any-nat'",
            ),
            ("-L -z -p tcp", "Can't use -z with filtering parameters"),
            ("-L -s 1.1.1.1 -z", "Can't use -z with filtering parameters"),
            ("-L -n ::1 -f ipv4", "mismatched address family"),
            (
                "-L --mask-dst 255.0.0.0 -s 1.1.1.1",
                "Can't use --mask-dst without --dst",
            ),
            ("-L -s 10.0.0.0 --mask-src foo", "Invalid IP address `foo'"),
            ("-L -s 10.0.0.0 --mask-src ::1", "mismatched address family"),
            ("-L -s 10.1.1.1/33", "Invalid netmask"),
            ("-L -s 10.1.1.1/x", "Invalid netmask"),
            ("-L -s 10.1.1.1/255.0.0.0", "Invalid netmask"),
            ("-L -n 1.2.3.4:abc", "Invalid port `abc'"),
            ("-L -n 1.2.3.4:1:2", "Invalid IP address `1.2.3.4:1:2'"),
            (
                "-L -p tcp --tuple-port-src 1",
                "Illegal option `--tuple-port-src' with this command",
            ),
        ];
        for (cmd, msg) in cases {
            let o = ct(&t, cmd);
            assert_eq!(o.stderr, err(msg), "{cmd}");
            assert_eq!(o.stdout, "", "{cmd}");
            assert_eq!(o.status, 2, "{cmd}");
        }
        // Refused by the "kernel": exit 1, no hint line.
        let o = ct(&t, "-L -u UNSET");
        assert_eq!(
            (o.stderr.as_str(), o.status),
            (
                "conntrack v1.4.7 (conntrack-tools): Operation failed: invalid parameters\n",
                1
            )
        );
        // -a is deprecated: a warning, also before an error.
        let o = ct(&t, "-a 1.2.3.4 -L -s foo");
        assert_eq!(
            o.stderr,
            format!(
                "WARNING: ignoring -a, deprecated option.\n{}",
                err("Invalid IP address `foo'")
            )
        );
        let o = ct(&t, "-L -a 1.2.3.4 -p icmp");
        assert_eq!(
            (o.stdout, o.stderr),
            (
                lines(&[L_ICMP]),
                format!("WARNING: ignoring -a, deprecated option.\n{}", shown(1))
            )
        );
        assert_eq!(
            ct(&t, "-S expect").stdout,
            "cpu=0   \texpect_new=0 expect_create=0 expect_delete=0 \n"
        );
        assert_eq!(ct(&t, "-L dying").stderr, shown(0));
        // SRC_NAT/DST_NAT are not status filters: a warning, then as if absent.
        let o = ct(&t, "-L -u SRC_NAT,ASSURED");
        assert_eq!(o.stdout, lines(&[L_TCP]));
        assert_eq!(
            o.stderr,
            format!(
                "WARNING: ignoring SRC_NAT, use --src-nat instead\n{}",
                shown(1)
            )
        );
        let o = ct(&t, "-L -u D");
        assert_eq!(
            (o.stderr.as_str(), o.status),
            ("WARNING: ignoring DST_NAT, use --dst-nat instead\nconntrack v1.4.7 (conntrack-tools): Operation failed: invalid parameters\n", 1)
        );
        // UNSET adds no bit.
        assert_eq!(ct(&t, "-L -u UNSET,ASSURED").stdout, lines(&[L_TCP]));
        // Nothing was changed by any of them.
        assert_eq!(t.list(T1).len(), 5);
    }

    /// Arbitrary command lines never panic and always end in one of the
    /// tool's statuses, with a message when they fail.
    #[test]
    fn arbitrary_command_lines_do_not_panic() {
        const POOL: &[&str] = &[
            "-L",
            "-D",
            "-E",
            "-G",
            "-U",
            "-C",
            "-F",
            "-S",
            "-h",
            "-V",
            "-I",
            "-s",
            "-d",
            "-r",
            "-q",
            "1.2.3.4",
            "10.9.0.1",
            "::1",
            "-p",
            "tcp",
            "udp",
            "icmp",
            "47",
            "--sport",
            "--dport",
            "--state",
            "ESTABLISHED",
            "--icmp-id",
            "80",
            "-m",
            "0x1/0x",
            "42/",
            "-u",
            "ASSURED,",
            "UNSET",
            "S",
            "-o",
            "xml,id",
            "extended",
            "-n",
            "-g",
            "-j",
            ":",
            "1:2:3",
            "1.2.3.4:",
            "--",
            "-",
            "expect",
            "--src=",
            "-Lz",
            "-s1",
            "-\u{f1}",
            "\u{e9}",
            "",
            "--orig-src=1.1.1.1",
            "-e",
            "NEW,",
            "-f",
            "ipv6",
            "-w",
            "-t",
            "99999999999999999999",
            "--s",
            "--sp",
            "-nfoo",
            "--src-nat=1.1.1.1:0",
            "-Sx",
            "-c",
            "-l",
            "a,b",
            "-b",
            "--reply-port-src",
            "0x",
            "010.1",
            "1.2.3.4/33",
            "1.2.3.4/-1",
            "-zz",
        ];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..5000 {
            let t = fixture();
            let n = (next() % 8) as usize;
            let argv: Vec<String> = (0..n)
                .map(|_| POOL[(next() % POOL.len() as u64) as usize].to_string())
                .collect();
            let o = run(&t, &argv, T1);
            assert!(matches!(o.status, 0..=2), "{argv:?}: {o:?}");
            if o.status == 2 {
                assert!(o.stderr.contains("Try `conntrack -h'"), "{argv:?}: {o:?}");
            }
            if let Ok(mut st) = EventStream::new(&argv, CliOptions::default()) {
                st.pump(&t, T1, &mut |_| true);
            }
        }
    }
}
