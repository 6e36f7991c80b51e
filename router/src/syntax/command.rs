//! The iptables command line: the command (`-A -I -D -R -N -X -F -Z -P -E
//! -C -L -S`) with its chain, rule number, policy or new name; the table
//! (`-t`); the listing flags (`-n -v -x --line-numbers`) and `-c`. Every
//! other option belongs to the rule and goes to [`super::rule`]. Tokens are
//! borrowed `&str`s; nothing is allocated per token except the strings the
//! model keeps (chain names, comments).

use super::rule::RuleBuilder;
use super::values::{err_val, invalid, parse_u32_dec, split_byte, R};
use super::SyntaxError;
use crate::ruleset::*;

/// What an iptables invocation asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Append,
    Insert,
    Delete,
    Replace,
    NewChain,
    DeleteChain,
    Flush,
    Zero,
    Policy,
    Rename,
    Check,
    List,
    ListRules,
    /// `-V` / `--version`: print the version line.
    Version,
}

/// A parsed iptables command line.
#[derive(Debug, Clone)]
pub struct Command {
    pub op: Op,
    pub table: TableKind,
    pub chain: Option<String>,
    /// 1-based rule number (`-I c N`, `-D c N`, `-R c N`, `-L c N`...).
    pub rulenum: Option<usize>,
    pub rule: Option<Rule>,
    pub policy: Option<Policy>,
    pub new_name: Option<String>,
    pub verbose: bool,
    pub numeric: bool,
    pub exact: bool,
    pub line_numbers: bool,
    /// `-c P B` was given.
    pub counters: Option<Counters>,
    /// With `-Z` also `-L`/`-S` (`iptables -L -Z`).
    pub zero_too: bool,
    /// `-W` was given (accepted and ignored, with iptables' notice).
    pub wait_interval: bool,
}

/// Token cursor.
pub(super) struct Cursor<'a, 't> {
    toks: &'t [&'a str],
    i: usize,
}

impl<'a> Cursor<'a, '_> {
    pub(super) fn next(&mut self) -> Option<&'a str> {
        let t = self.toks.get(self.i).copied();
        if t.is_some() {
            self.i += 1;
        }
        t
    }
    fn peek(&self) -> Option<&'a str> {
        self.toks.get(self.i).copied()
    }
}

/// An option occurrence: name plus optional `=value`.
pub(super) struct Opt<'a> {
    pub(super) name: &'a str,
    inline: Option<&'a str>,
}

impl<'a> Opt<'a> {
    pub(super) fn arg(&mut self, c: &mut Cursor<'a, '_>) -> R<&'a str> {
        if let Some(v) = self.inline.take() {
            return Ok(v);
        }
        c.next().ok_or_else(|| SyntaxError::MissingArgument {
            option: self.name.to_string(),
        })
    }
}

const SHORT_WITH_ARG: &[u8] = b"AIDRNXFZPECLSptsdiojgmcw";

/// Splits `--opt=value` and glued short options (`-ptcp`).
fn split_opt(tok: &str) -> Opt<'_> {
    if let Some(rest) = tok.strip_prefix("--") {
        if let Some((n, v)) = split_byte(rest, b'=') {
            return Opt {
                name: &tok[..n.len() + 2],
                inline: Some(v),
            };
        }
        return Opt {
            name: tok,
            inline: None,
        };
    }
    let b = tok.as_bytes();
    if b.len() > 2 && b[0] == b'-' && SHORT_WITH_ARG.contains(&b[1]) {
        return Opt {
            name: &tok[..2],
            inline: Some(&tok[2..]),
        };
    }
    Opt {
        name: tok,
        inline: None,
    }
}

pub(super) fn long(o: &str, short: &str, longs: &[&str]) -> bool {
    o == short || longs.contains(&o)
}

/// `-vS` style bundles of short flags, expanded. Only bundles starting with
/// one of the argument-less flags `-v -n -x` are split, so glued values such
/// as `-ptcp` keep working.
fn expand_bundles<'a>(toks: &[&'a str]) -> Vec<&'a str> {
    const SHORT: [&str; 20] = [
        "-v", "-n", "-x", "-A", "-C", "-D", "-E", "-F", "-I", "-L", "-N", "-P", "-R", "-S", "-X",
        "-Z", "-t", "-c", "-w", "-j",
    ];
    let mut v = Vec::with_capacity(toks.len());
    for &t in toks {
        let b = t.as_bytes();
        if b.len() > 2 && b[0] == b'-' && matches!(b[1], b'v' | b'n' | b'x') {
            let all_known = b[1..]
                .iter()
                .all(|c| SHORT.iter().any(|s| s.as_bytes()[1] == *c));
            if all_known {
                for c in &b[1..] {
                    v.push(*SHORT.iter().find(|s| s.as_bytes()[1] == *c).unwrap());
                }
                continue;
            }
        }
        v.push(t);
    }
    v
}

/// Parses a complete iptables argument list (without the program name).
pub fn parse_command(toks: &[&str]) -> Result<Command, SyntaxError> {
    parse_command_for(Family::V4, toks)
}

/// Parses a complete argument list of `iptables` (IPv4) or `ip6tables`
/// (IPv6), without the program name.
pub fn parse_command_for(family: Family, toks: &[&str]) -> Result<Command, SyntaxError> {
    let expanded;
    let toks = if toks
        .iter()
        .any(|t| t.len() > 2 && t.starts_with("-") && !t.starts_with("--"))
    {
        expanded = expand_bundles(toks);
        &expanded[..]
    } else {
        toks
    };
    let mut c = Cursor { toks, i: 0 };
    let mut cmd = Command {
        op: Op::List,
        table: TableKind::Filter,
        chain: None,
        rulenum: None,
        rule: None,
        policy: None,
        new_name: None,
        verbose: false,
        numeric: false,
        exact: false,
        line_numbers: false,
        counters: None,
        zero_too: false,
        wait_interval: false,
    };
    let mut op: Option<Op> = None;
    let mut b = RuleBuilder::new(family);
    let mut rule_opts = false;
    let mut invert = false;
    let mut table_given = false;

    while let Some(tok) = c.next() {
        if tok == "!" {
            if invert {
                return Err(invalid("multiple `!' flags not allowed"));
            }
            invert = true;
            continue;
        }
        let mut o = split_opt(tok);
        let name = o.name;
        let set_op = |op: &mut Option<Op>, new: Op, zero_too: &mut bool| -> R<()> {
            match *op {
                None => {
                    *op = Some(new);
                    Ok(())
                }
                Some(Op::Zero) if matches!(new, Op::List | Op::ListRules) => {
                    *zero_too = true;
                    *op = Some(new);
                    Ok(())
                }
                Some(Op::List) | Some(Op::ListRules) if new == Op::Zero => {
                    *zero_too = true;
                    Ok(())
                }
                Some(_) => Err(invalid("Cannot use more than one command option")),
            }
        };
        let cmd_op = match name {
            "-A" | "--append" => Some(Op::Append),
            "-I" | "--insert" => Some(Op::Insert),
            "-D" | "--delete" => Some(Op::Delete),
            "-R" | "--replace" => Some(Op::Replace),
            "-N" | "--new-chain" => Some(Op::NewChain),
            "-X" | "--delete-chain" => Some(Op::DeleteChain),
            "-F" | "--flush" => Some(Op::Flush),
            "-Z" | "--zero" => Some(Op::Zero),
            "-P" | "--policy" => Some(Op::Policy),
            "-E" | "--rename-chain" => Some(Op::Rename),
            "-C" | "--check" => Some(Op::Check),
            "-L" | "--list" => Some(Op::List),
            "-S" | "--list-rules" => Some(Op::ListRules),
            _ => None,
        };
        if let Some(new) = cmd_op {
            if invert {
                return Err(invalid(format!("cannot have ! before {name}")));
            }
            set_op(&mut op, new, &mut cmd.zero_too)?;
            let needs_chain = matches!(
                new,
                Op::Append
                    | Op::Insert
                    | Op::Delete
                    | Op::Replace
                    | Op::NewChain
                    | Op::Policy
                    | Op::Rename
                    | Op::Check
            );
            let chain = if needs_chain {
                Some(o.arg(&mut c)?)
            } else if let Some(v) = o.inline.take() {
                Some(v)
            } else {
                match c.peek() {
                    Some(t) if !t.starts_with('-') && t != "!" => c.next(),
                    _ => None,
                }
            };
            if let Some(ch) = chain {
                if ch.starts_with('-') || ch == "!" {
                    return Err(invalid(format!(
                        "chain name `{ch}' not allowed to start with `-'"
                    )));
                }
                if cmd.chain.is_none() || new != Op::Zero {
                    cmd.chain = Some(ch.to_string());
                }
            }
            match new {
                Op::Insert | Op::Delete | Op::Zero | Op::List | Op::ListRules => {
                    if let Some(t) = c.peek() {
                        if let Some(n) = parse_u32_dec(t) {
                            c.next();
                            if n == 0 {
                                return Err(invalid("Invalid rule number `0'"));
                            }
                            cmd.rulenum = Some(n as usize);
                            if new == Op::Zero {
                                // `-L -Z chain N` zeroes one rule and lists
                                // nothing (iptables' CMD_ZERO_NUM).
                                op = Some(Op::Zero);
                                cmd.zero_too = false;
                            }
                        }
                    }
                }
                Op::Replace => {
                    let t = c.next().ok_or_else(|| SyntaxError::MissingArgument {
                        option: name.to_string(),
                    })?;
                    let n = parse_u32_dec(t)
                        .filter(|n| *n > 0)
                        .ok_or_else(|| err_val(name, t, "a rule number"))?;
                    cmd.rulenum = Some(n as usize);
                }
                Op::Policy => {
                    let t = c.next().ok_or_else(|| SyntaxError::MissingArgument {
                        option: name.to_string(),
                    })?;
                    cmd.policy = Some(match t {
                        "ACCEPT" => Policy::Accept,
                        "DROP" => Policy::Drop,
                        _ => return Err(invalid(format!("Bad policy name. Run `dmesg' for more information. (\"{t}\": expected ACCEPT or DROP)"))),
                    });
                }
                Op::Rename => {
                    let t = c.next().ok_or_else(|| SyntaxError::MissingArgument {
                        option: name.to_string(),
                    })?;
                    cmd.new_name = Some(t.to_string());
                }
                _ => {}
            }
            continue;
        }
        match name {
            "-V" | "--version" => {
                // Printed as soon as it is read, the rest unread (getopt's
                // order, as iptables does).
                cmd.op = Op::Version;
                return Ok(cmd);
            }
            "-4" | "--ipv4" | "-6" | "--ipv6" => {
                let asked = if name.contains('4') {
                    Family::V4
                } else {
                    Family::V6
                };
                if asked != family {
                    return Err(invalid(match family {
                        Family::V4 => "This is the IPv4 version of iptables.",
                        Family::V6 => "This is the IPv6 version of ip6tables.",
                    }));
                }
                continue;
            }
            "-t" | "--table" => {
                let t = o.arg(&mut c)?;
                if table_given {
                    return Err(invalid("multiple -t flags not allowed"));
                }
                table_given = true;
                cmd.table = TableKind::from_name(t).ok_or_else(|| SyntaxError::UnknownTable {
                    table: t.to_string(),
                })?;
                continue;
            }
            "-n" | "--numeric" => {
                cmd.numeric = true;
                continue;
            }
            "-v" | "--verbose" => {
                cmd.verbose = true;
                continue;
            }
            "-vn" | "-nv" => {
                cmd.verbose = true;
                cmd.numeric = true;
                continue;
            }
            "-x" | "--exact" => {
                cmd.exact = true;
                continue;
            }
            "--line-numbers" => {
                cmd.line_numbers = true;
                continue;
            }
            "-w" | "--wait" => {
                if let Some(t) = c.peek() {
                    if parse_u32_dec(t).is_some() {
                        c.next();
                    }
                }
                continue;
            }
            "-W" | "--wait-interval" => {
                o.arg(&mut c)?;
                cmd.wait_interval = true;
                continue;
            }
            "--modprobe" => {
                o.arg(&mut c)?;
                continue;
            }
            "-c" | "--set-counters" => {
                let p = o.arg(&mut c)?;
                let (p, by) = match p.split_once(',') {
                    Some((a, b)) => (a, b),
                    None => (
                        p,
                        c.next().ok_or_else(|| SyntaxError::MissingArgument {
                            option: name.to_string(),
                        })?,
                    ),
                };
                let pk = p
                    .parse::<u64>()
                    .map_err(|_| err_val(name, p, "a packet count"))?;
                let bc = by
                    .parse::<u64>()
                    .map_err(|_| err_val(name, by, "a byte count"))?;
                cmd.counters = Some(Counters {
                    packets: pk,
                    bytes: bc,
                });
                continue;
            }
            _ => {}
        }
        rule_opts = true;
        b.option(o, invert, &mut c)?;
        invert = false;
    }
    if invert {
        return Err(invalid("unexpected `!' at end of command"));
    }
    let op = op.ok_or_else(|| invalid("no command specified"))?;
    cmd.op = op;
    let takes_rule = matches!(
        op,
        Op::Append | Op::Insert | Op::Replace | Op::Check | Op::Delete
    );
    if takes_rule {
        if op == Op::Delete && cmd.rulenum.is_some() {
            if rule_opts {
                return Err(invalid("-D with a rule number takes no rule specification"));
            }
        } else {
            let mut rule = b.finish()?;
            if let Some(cn) = cmd.counters {
                rule.counters = cn;
            }
            check_chain_iface(&cmd, &rule)?;
            cmd.rule = Some(rule);
        }
    } else if rule_opts {
        return Err(invalid(format!(
            "Illegal option with this command ({})",
            op_letter(op)
        )));
    }
    Ok(cmd)
}

fn op_letter(op: Op) -> &'static str {
    match op {
        Op::Append => "-A",
        Op::Insert => "-I",
        Op::Delete => "-D",
        Op::Replace => "-R",
        Op::NewChain => "-N",
        Op::DeleteChain => "-X",
        Op::Flush => "-F",
        Op::Zero => "-Z",
        Op::Policy => "-P",
        Op::Rename => "-E",
        Op::Check => "-C",
        Op::List => "-L",
        Op::ListRules => "-S",
        Op::Version => "-V",
    }
}

/// `-o` in INPUT/PREROUTING and `-i` in OUTPUT/POSTROUTING are rejected by
/// iptables up front.
fn check_chain_iface(cmd: &Command, r: &Rule) -> R<()> {
    let ch = cmd.chain.as_deref().unwrap_or("");
    if r.out_iface.is_some() && (ch == "INPUT" || ch == "PREROUTING") {
        return Err(invalid(format!("Can't use -o with {ch}")));
    }
    if r.in_iface.is_some() && (ch == "OUTPUT" || ch == "POSTROUTING") {
        return Err(invalid(format!("Can't use -i with {ch}")));
    }
    Ok(())
}
