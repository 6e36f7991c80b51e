//! Applying iptables commands and iptables-restore input to a [`Ruleset`].

use std::borrow::Cow;
use std::fmt::Write;
use std::sync::Arc;

use super::command::{parse_command_for, Command, Op};
use super::list::{list, ListFormat};
use super::save::{list_rules, save_table};
use super::SyntaxError;
use crate::ruleset::*;

/// Result of one iptables command: what it prints and its exit status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    pub stdout: String,
    pub stderr: String,
    /// 0 ok, 1 other problem, 2 parameter problem, 4 resource problem
    /// (what iptables returns for each case).
    pub status: i32,
}

/// Why a command failed, with iptables' exit status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CmdError {
    #[error("{0}")]
    Syntax(#[from] SyntaxError),
    /// A failure iptables reports as `iptables: MESSAGE` (the tool's name
    /// is the printer's: see [`apply_command`]).
    #[error("{0}")]
    Other(String),
    #[error("Chain '{chain}' does not exist{}", suggest.as_ref().map(|s| format!(" (did you mean \"{s}\"?)")).unwrap_or_default())]
    NoTargetChain {
        chain: String,
        suggest: Option<String>,
    },
    #[error("{0}")]
    Rejected(#[from] ValidateError),
}

impl CmdError {
    pub fn status(&self) -> i32 {
        match self {
            CmdError::Syntax(e) => e.status(),
            CmdError::NoTargetChain { .. } => 2,
            CmdError::Other(_) => 1,
            CmdError::Rejected(_) => 4,
        }
    }
}

fn other(s: &str) -> CmdError {
    CmdError::Other(s.to_string())
}

const NO_CHAIN: &str = "No chain/target/match by that name.";
const BAD_RULE: &str = "Bad rule (does a matching rule exist in that chain?).";

/// Runs one iptables command line (arguments without the program name) on
/// `rs`, as `iptables` would. Nothing is changed when it fails.
pub fn apply_command(rs: &mut Ruleset, args: &[&str]) -> Output {
    let mut out = Output::default();
    let res = parse_command_for(rs.family(), args)
        .map_err(CmdError::from)
        .and_then(|cmd| {
            if cmd.wait_interval {
                out.stderr
                    .push_str("Ignoring deprecated --wait-interval option.\n");
            }
            exec(rs, &cmd, &mut out.stdout)
        });
    if let Err(e) = res {
        out.status = e.status();
        let tool = rs.family().tool();
        match e {
            CmdError::Other(_) => {
                let _ = writeln!(out.stderr, "{tool}: {e}");
            }
            _ => {
                let _ = writeln!(out.stderr, "{tool} v1.8.9 (nf_tables): {e}");
                if out.status == 2 {
                    // A parameter problem: the real tools point at --help
                    // (after a blank line when a module failed to load).
                    if matches!(e, CmdError::Syntax(SyntaxError::UnknownMatch { .. })) {
                        out.stderr.push('\n');
                    }
                    let _ = writeln!(
                        out.stderr,
                        "Try `{tool} -h' or '{tool} --help' for more information."
                    );
                }
            }
        }
    }
    out
}

/// The one-line rule form `iptables -v -A/-I/-D/-C/-R` prints, its
/// addresses of `family`.
pub fn verbose_rule(r: &Rule, family: Family) -> String {
    let mut s = String::new();
    let proto = super::names::proto_list_name(r.proto, true)
        .map(str::to_string)
        .unwrap_or_else(|| r.proto.to_string());
    let frag = match r.fragment {
        Some(true) => "!f",
        Some(false) => "-f",
        None => "--",
    };
    let ifn = |i: &Option<Box<Iface>>| match i {
        Some(i) => format!(
            "{}{}{}",
            if i.invert { "!" } else { "" },
            i.name,
            if i.wildcard { "+" } else { "" }
        ),
        None => "*".to_string(),
    };
    let addr = |a: &AddrMask| super::list::list_addr_any(family, a.addr, a.mask);
    // 1.8.9's layout; trailing blanks trimmed as in listings.
    let _ = write!(
        s,
        "{} {}{} opt {} in {} out {} {}{}  ->{}{}  ",
        r.target.name(),
        if r.proto_invert { "!" } else { " " },
        proto,
        frag,
        ifn(&r.in_iface),
        ifn(&r.out_iface),
        if r.src.invert { '!' } else { ' ' },
        addr(&r.src),
        if r.dst.invert { '!' } else { ' ' },
        addr(&r.dst)
    );
    super::list::list_rule_tail(&mut s, r, family, true);
    let n = s.trim_end().len();
    s.truncate(n);
    s
}

/// Executes a parsed command. Validation failures leave `rs` unchanged.
pub fn exec(rs: &mut Ruleset, cmd: &Command, out: &mut String) -> Result<(), CmdError> {
    if cmd.op == Op::Version {
        let _ = writeln!(out, "{} v1.8.9 (nf_tables)", rs.family().tool());
        return Ok(());
    }
    let kind = cmd.table;
    let t = rs.table_mut(kind);
    match cmd.op {
        Op::Version => Ok(()),
        Op::List | Op::ListRules => {
            if let Some(c) = &cmd.chain {
                if t.chain(c).is_none() {
                    return Err(other(NO_CHAIN));
                }
            }
            if cmd.op == Op::List {
                let f = ListFormat {
                    numeric: cmd.numeric,
                    verbose: cmd.verbose,
                    exact: cmd.exact,
                    line_numbers: cmd.line_numbers,
                };
                match (cmd.rulenum, cmd.chain.as_deref().and_then(|c| t.chain(c))) {
                    (Some(n), Some(c)) => {
                        if let Some(r) = c.rules.get(n - 1) {
                            super::list::list_rule(out, r, n, f, t.family);
                            out.push('\n');
                        }
                    }
                    _ => list(out, t, cmd.chain.as_deref(), f),
                }
            } else {
                list_rules(out, t, cmd.chain.as_deref(), cmd.rulenum, cmd.verbose);
            }
            if cmd.zero_too {
                zero(t, cmd.chain.as_deref(), None, cmd.verbose, out)?;
            }
            Ok(())
        }
        Op::Zero => zero(t, cmd.chain.as_deref(), cmd.rulenum, cmd.verbose, out),
        Op::Flush => {
            let names: Vec<usize> = match &cmd.chain {
                Some(c) => vec![t.chain_index(c).ok_or_else(|| other(NO_CHAIN))?],
                None => (0..t.chains.len()).collect(),
            };
            let order: Vec<String> = t.chains_listed().iter().map(|c| c.name.clone()).collect();
            for n in order {
                let i = t.chain_index(&n).unwrap();
                if names.contains(&i) {
                    if cmd.verbose {
                        let _ = writeln!(out, "Flushing chain `{n}'");
                    }
                    t.chains[i].rules.clear();
                }
            }
            Ok(())
        }
        Op::NewChain => {
            let n = cmd.chain.as_deref().unwrap_or("");
            check_chain_name(n)?;
            if !t.add_user_chain(n) {
                return Err(other("Chain already exists."));
            }
            Ok(())
        }
        Op::DeleteChain => match &cmd.chain {
            Some(n) => {
                let i = t.chain_index(n).ok_or_else(|| other(NO_CHAIN))?;
                if t.chains[i].is_builtin() {
                    return Err(CmdError::Other(format!(
                        "CHAIN_DEL failed (Device or resource busy): chain {n}"
                    )));
                }
                if t.references(n) > 0 {
                    return Err(other("Too many links."));
                }
                if !t.chains[i].rules.is_empty() {
                    return Err(other("Directory not empty."));
                }
                if cmd.verbose {
                    let _ = writeln!(out, "Deleting chain `{n}'");
                }
                t.remove_chain(i);
                Ok(())
            }
            None => {
                let builtin_refs = t
                    .chains
                    .iter()
                    .filter(|c| c.is_builtin())
                    .flat_map(|c| c.rules.iter())
                    .any(|r| r.target.chain_ref().is_some());
                if builtin_refs {
                    return Err(other("Too many links."));
                }
                t.chains.retain(|c| c.is_builtin());
                t.reindex();
                Ok(())
            }
        },
        Op::Policy => {
            let n = cmd.chain.as_deref().unwrap_or("");
            let c = t
                .chain_mut(n)
                .ok_or_else(|| other("Bad built-in chain name."))?;
            if !c.is_builtin() {
                return Err(other("Bad built-in chain name."));
            }
            c.policy = cmd.policy;
            if let Some(cn) = cmd.counters {
                c.counters = cn;
            }
            Ok(())
        }
        Op::Rename => {
            let n = cmd.chain.as_deref().unwrap_or("");
            let new = cmd.new_name.as_deref().unwrap_or("");
            if t.chain_index(new).is_some() {
                return Err(other("File exists."));
            }
            let i = t.chain_index(n).ok_or_else(|| other(NO_CHAIN))?;
            if t.chains[i].is_builtin() {
                return Err(other("Invalid argument (cannot rename a built-in chain)."));
            }
            check_chain_name(new)?;
            t.rename_chain(i, new);
            Ok(())
        }
        Op::Append | Op::Insert | Op::Replace | Op::Delete | Op::Check => {
            let n = cmd.chain.as_deref().unwrap_or("");
            if cmd.op == Op::Delete {
                if let Some(num) = cmd.rulenum {
                    // iptables-nft: no such chain, or no rule in it, is
                    // ENOENT; a number past the last rule E2BIG.
                    let ci = t.chain_index(n).ok_or_else(|| other(NO_CHAIN))?;
                    let len = t.chains[ci].rules.len();
                    if len == 0 {
                        return Err(other(NO_CHAIN));
                    }
                    if num == 0 || num > len {
                        return Err(other("Index of deletion too big."));
                    }
                    t.chains[ci].rules.remove(num - 1);
                    return Ok(());
                }
            }
            let mut rule = cmd.rule.clone().expect("rule commands carry a rule");
            if matches!(cmd.op, Op::Check | Op::Delete) && t.chain_index(n).is_none() {
                // A rule looked for in a chain that is not there: not found
                // (after the jump target's check, as iptables-nft orders it).
                if let Some(j) = rule.target.chain_ref() {
                    if t.chain_index(j).is_none_or(|i| t.chains[i].is_builtin()) {
                        return Err(no_target(t, j));
                    }
                }
                return Err(other(BAD_RULE));
            }
            let ci = t.chain_index(n).ok_or_else(|| other(NO_CHAIN))?;
            if cmd.verbose {
                let _ = writeln!(out, "{}", verbose_rule(&rule, t.family));
            }
            if let Some(j) = rule.target.chain_ref_mut() {
                match t.chain_index(j) {
                    Some(i) if !t.chains[i].is_builtin() => j.set_hint(i),
                    _ => return Err(no_target(t, j)),
                }
            }
            match cmd.op {
                Op::Delete => {
                    let pos = t.chains[ci]
                        .rules
                        .iter()
                        .position(|r| r.same_spec(&rule))
                        .ok_or_else(|| other(BAD_RULE))?;
                    t.chains[ci].rules.remove(pos);
                    Ok(())
                }
                Op::Check => {
                    if t.chains[ci].rules.iter().any(|r| r.same_spec(&rule)) {
                        Ok(())
                    } else {
                        Err(other(BAD_RULE))
                    }
                }
                _ => {
                    let len = t.chains[ci].rules.len();
                    let (pos, replace) = match cmd.op {
                        Op::Append => (len, false),
                        Op::Insert => {
                            let p = cmd.rulenum.unwrap_or(1);
                            if p > len + 1 {
                                return Err(other("Index of insertion too big."));
                            }
                            (p - 1, false)
                        }
                        _ => {
                            let p = cmd.rulenum.unwrap_or(0);
                            if p == 0 || p > len {
                                return Err(other("Index of replacement too big."));
                            }
                            (p - 1, true)
                        }
                    };
                    let rule = Arc::new(rule);
                    let old = if replace {
                        Some(std::mem::replace(&mut t.chains[ci].rules[pos], rule))
                    } else {
                        t.chains[ci].rules.insert(pos, rule);
                        None
                    };
                    if let Err(e) = check_after_add(t, ci, pos) {
                        match old {
                            Some(o) => t.chains[ci].rules[pos] = o,
                            None => {
                                t.chains[ci].rules.remove(pos);
                            }
                        }
                        return Err(e);
                    }
                    Ok(())
                }
            }
        }
    }
}

/// After one rule was added: placement and loop checks (the whole table
/// when the rule jumps; cheap placement-only otherwise is not enough for
/// user chains, so the table is validated when hooks matter).
fn check_after_add(t: &Table, ci: usize, pos: usize) -> Result<(), CmdError> {
    let r = &t.chains[ci].rules[pos];
    let restricted = r.target.chain_ref().is_some()
        || crate::ruleset::target_placement(&r.target).is_some()
        || r.matches.iter().any(crate::ruleset::match_restricted);
    // A rule that neither jumps nor is restricted to some hooks cannot make
    // the table invalid: skip the whole-table check (O(rules)).
    if !restricted {
        return Ok(());
    }
    t.validate().map_err(CmdError::from)
}

fn no_target(t: &Table, j: &str) -> CmdError {
    let cands = super::targets::all_names().chain(
        t.chains
            .iter()
            .filter(|c| !c.is_builtin())
            .map(|c| c.name.as_str()),
    );
    CmdError::NoTargetChain {
        chain: j.to_string(),
        suggest: super::names::suggest(j, cands).map(str::to_string),
    }
}

fn check_chain_name(n: &str) -> Result<(), CmdError> {
    if n.is_empty() || n.len() > 28 {
        return Err(CmdError::Syntax(SyntaxError::Invalid(format!(
            "chain name `{n}' too long (must be under 29 chars)"
        ))));
    }
    if n.contains(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '\\')) {
        return Err(CmdError::Syntax(SyntaxError::Invalid(format!(
            "chain name `{n}' must not contain white space or quotes"
        ))));
    }
    if n.starts_with('-') || n.starts_with('!') {
        return Err(CmdError::Syntax(SyntaxError::Invalid(format!(
            "chain name not allowed to start with `{}'",
            &n[..1]
        ))));
    }
    if super::targets::is_target_name(n) || Hook::from_name(n).is_some() {
        return Err(CmdError::Syntax(SyntaxError::Invalid(format!(
            "chain name may not clash with target name `{n}'"
        ))));
    }
    Ok(())
}

fn zero(
    t: &mut Table,
    chain: Option<&str>,
    num: Option<usize>,
    verbose: bool,
    out: &mut String,
) -> Result<(), CmdError> {
    if let (Some(n), Some(c)) = (num, chain) {
        // A missing chain or rule is "Bad rule" (iptables-nft 1.8.9's
        // words); a number past the last rule fails, as 1.8.11 has it
        // (shell/iptables_0011-rulenum_0; 1.8.9 zeroes nothing and succeeds).
        let i = t.chain_index(c).ok_or_else(|| other(BAD_RULE))?;
        let r = t.chains[i]
            .rules
            .get_mut(n.wrapping_sub(1))
            .ok_or_else(|| other(BAD_RULE))?;
        if r.counters != Counters::default() {
            Arc::make_mut(r).counters = Counters::default();
        }
        return Ok(());
    }
    let idxs: Vec<usize> = match chain {
        Some(c) => vec![t.chain_index(c).ok_or_else(|| other(NO_CHAIN))?],
        None => (0..t.chains.len()).collect(),
    };
    let order: Vec<String> = t.chains_listed().iter().map(|c| c.name.clone()).collect();
    for n in order {
        let i = t.chain_index(&n).unwrap();
        if !idxs.contains(&i) {
            continue;
        }
        if verbose {
            let _ = writeln!(out, "Zeroing chain `{n}'");
        }
        let c = &mut t.chains[i];
        c.counters = Counters::default();
        for r in &mut c.rules {
            if r.counters != Counters::default() {
                Arc::make_mut(r).counters = Counters::default();
            }
        }
    }
    Ok(())
}

/// Splits a restore line into arguments the way iptables-restore does:
/// whitespace separates, `"` or `'` quote, `\\` escapes the next character
/// inside quotes. Tokens without quotes, and tokens that are one quoted
/// string without escapes (`"kubernetes service portals"`), borrow from the
/// line.
pub fn tokenize(line: &str) -> Result<Vec<Cow<'_, str>>, SyntaxError> {
    let mut v = Vec::with_capacity(24);
    tokenize_into(line, &mut v)?;
    Ok(v)
}

fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t' || b == b'\r'
}

/// [`tokenize`] into a caller's vector (cleared first), so a restore reuses
/// one allocation for all its lines.
pub fn tokenize_into<'a>(line: &'a str, v: &mut Vec<Cow<'a, str>>) -> Result<(), SyntaxError> {
    v.clear();
    let b = line.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && is_blank(b[i]) {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let start = i;
        // Fast path: a plain token (bytes up to a blank; ASCII blanks and
        // quotes never occur inside a UTF-8 sequence, so byte offsets are
        // char boundaries), or a whole "quoted string" without escapes.
        while i < b.len() && !is_blank(b[i]) && b[i] != b'"' && b[i] != b'\'' {
            i += 1;
        }
        if i >= b.len() || is_blank(b[i]) {
            v.push(Cow::Borrowed(&line[start..i]));
            continue;
        }
        if i == start {
            let q = b[i];
            if let Some(n) = b[i + 1..].iter().position(|&c| c == q || c == b'\\') {
                let end = i + 1 + n;
                if b[end] == q && (end + 1 == b.len() || is_blank(b[end + 1])) {
                    v.push(Cow::Borrowed(&line[i + 1..end]));
                    i = end + 1;
                    continue;
                }
            }
        }
        // General case: quotes inside or around parts of the token, escapes.
        i = start;
        let mut owned = String::new();
        let mut quote: Option<u8> = None;
        while i < b.len() {
            let ch = b[i];
            match quote {
                None if is_blank(ch) => break,
                None if ch == b'"' || ch == b'\'' => {
                    quote = Some(ch);
                    i += 1;
                    continue;
                }
                Some(q) if ch == q => {
                    quote = None;
                    i += 1;
                    continue;
                }
                Some(_) if ch == b'\\' && i + 1 < b.len() => {
                    // keep the escaped char, drop the backslash
                    let n = line[i + 1..].chars().next().unwrap_or(' ');
                    owned.push(n);
                    i += 1 + n.len_utf8();
                    continue;
                }
                _ => {}
            }
            let n = line[i..].chars().next().unwrap_or(' ');
            owned.push(n);
            i += n.len_utf8();
        }
        if quote.is_some() {
            return Err(SyntaxError::Invalid("unterminated quoted string".into()));
        }
        v.push(Cow::Owned(owned));
    }
    Ok(())
}

/// iptables-restore options.
#[derive(Debug, Clone, Copy, Default)]
pub struct RestoreOptions {
    /// `--noflush`: add to the tables instead of replacing them.
    pub noflush: bool,
    /// `--counters`: take `[p:b]` counters from the input.
    pub counters: bool,
    /// `--test`: parse and check only, change nothing.
    pub test: bool,
}

/// A restore failure: the line (1-based) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {err}")]
pub struct RestoreError {
    pub line: usize,
    pub err: CmdError,
}

impl RestoreError {
    pub fn status(&self) -> i32 {
        1
    }
}

fn rerr(line: usize, err: impl Into<CmdError>) -> RestoreError {
    RestoreError {
        line,
        err: err.into(),
    }
}

fn parse_counters(s: &str) -> Option<Counters> {
    let inner = s.strip_prefix('[')?.strip_suffix(']')?;
    let (p, b) = inner.split_once(':')?;
    Some(Counters {
        packets: p.parse().ok()?,
        bytes: b.parse().ok()?,
    })
}

/// A parsed rule line, ready for the sequential pass of [`restore`].
enum Staged {
    /// `-A CHAIN ...`, the rule already in its final allocation (parsed on
    /// a helper thread, it is not copied again).
    Append { chain: String, rule: Arc<Rule> },
    /// Any other command (rare in restore files).
    Other(Box<Command>),
}

/// A parsed rule line or its error, boxed: a `SyntaxError` is 64 bytes, a
/// `Staged` 32, and a large restore holds one of these per rule line until
/// the sequential pass takes it (140,000 of them for the kube ruleset).
type RuleLine = Result<Staged, Box<SyntaxError>>;

/// Whether a (left-trimmed) restore line is a rule line, one that
/// [`parse_rule_line`] parses: not blank, a comment, `*table`, `:chain` or
/// `COMMIT`.
fn is_rule_line(line: &str) -> bool {
    !(line.is_empty()
        || line.starts_with('#')
        || line.starts_with('*')
        || line.starts_with(':')
        || line.trim_end() == "COMMIT")
}

/// Whether a rule line is flagged for the other family (`-6 -A ...` in
/// an iptables-restore input, `-4 -A ...` in ip6tables-restore's): the
/// restores skip those, so one file can serve both.
fn other_family_line(line: &str, family: Family) -> bool {
    let other = match family {
        Family::V4 => "-6",
        Family::V6 => "-4",
    };
    let mut words = line.split_ascii_whitespace();
    let first = match words.next() {
        Some(w) if w.starts_with('[') => words.next(),
        w => w,
    };
    first == Some(other)
}

/// Parses one rule line and applies the restore's counter options to it
/// (`[p:b]` prefixes kept with `--counters`, otherwise a rule starts at
/// zero unless the line gave `-c`).
fn stage_rule_line<'a>(
    line: &'a str,
    toks: &mut Vec<Cow<'a, str>>,
    opts: RestoreOptions,
    family: Family,
) -> RuleLine {
    let (pre, mut cmd) = parse_rule_line(line, toks, family).map_err(Box::new)?;
    if let Some(r) = cmd.rule.as_mut() {
        if opts.counters {
            if let Some(c) = pre {
                r.counters = c;
            }
        } else if cmd.counters.is_none() {
            r.counters = Counters::default();
        }
    }
    match (cmd.op, cmd.chain, cmd.rule) {
        (Op::Append, Some(chain), Some(rule)) => Ok(Staged::Append {
            chain,
            rule: Arc::new(rule),
        }),
        (_, chain, rule) => Ok(Staged::Other(Box::new(Command { chain, rule, ..cmd }))),
    }
}

/// Parses one rule line of a restore text (everything a rule line needs
/// but the table it is in: that is the caller's).
fn parse_rule_line<'a>(
    line: &'a str,
    toks: &mut Vec<Cow<'a, str>>,
    family: Family,
) -> Result<(Option<Counters>, Command), SyntaxError> {
    tokenize_into(line, toks)?;
    let mut args: Vec<&str> = toks.iter().map(|c| c.as_ref()).collect();
    let mut pre = None;
    if let Some(first) = args.first() {
        if first.starts_with('[') {
            pre = Some(parse_counters(first).ok_or_else(|| SyntaxError::BadValue {
                option: "counters".into(),
                value: first.to_string(),
                expected: "[packets:bytes]",
            })?);
            args.remove(0);
        }
    }
    if args.iter().any(|a| *a == "-t" || *a == "--table") {
        return Err(SyntaxError::Invalid(
            "-t is not allowed inside a restore table".into(),
        ));
    }
    Ok((pre, parse_command_for(family, &args)?))
}

/// Below this many bytes a restore parses its rule lines on the calling
/// thread only (a thread costs ~30 us; kube-proxy's small restores stay
/// sequential).
const PARALLEL_RESTORE_BYTES: usize = 256 * 1024;

/// At most this many threads parse one restore's rule lines.
const MAX_RESTORE_THREADS: usize = 4;

/// Slices a large restore text is cut into for [`pre_parse`]: threads take
/// the next slice from a shared counter, so a thread that gets little CPU
/// (the cores busy forwarding) holds up the others by one slice at most.
const RESTORE_SLICES: usize = 64;

/// Parses the rule lines of a large restore text on several threads, in
/// order: entry `i` holds the parsed rule lines of the `i`-th slice of the
/// text, cut at line ends. Tokenizing and parsing a rule line needs nothing
/// from the lines before it; what does (tables, chains, jump targets,
/// COMMIT) stays in the one sequential pass of [`restore`], which takes these
/// in line order and so still reports the first bad line, whatever its kind.
/// The parse is most of a 140,000-rule kube ruleset's restore; on a
/// gateway whose cores are busy forwarding, two parsing threads also get two
/// shares of the CPU instead of one. `None` for small texts.
fn pre_parse(
    text: &str,
    opts: RestoreOptions,
    family: Family,
    helper_start: &(dyn Fn() + Sync),
) -> Option<Vec<Vec<RuleLine>>> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::OnceLock;
    if text.len() < PARALLEL_RESTORE_BYTES {
        return None;
    }
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(MAX_RESTORE_THREADS);
    if threads < 2 {
        return None;
    }
    let slices = split_at_lines(text, RESTORE_SLICES);
    let done: Vec<OnceLock<Vec<RuleLine>>> = slices.iter().map(|_| OnceLock::new()).collect();
    let next = AtomicUsize::new(0);
    let work = || {
        let mut toks = Vec::with_capacity(32);
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(slice) = slices.get(i) else { break };
            let parsed = slice
                .lines()
                .map(str::trim_start)
                .filter(|l| is_rule_line(l) && !other_family_line(l, family))
                .map(|l| stage_rule_line(l, &mut toks, opts, family))
                .collect();
            let _ = done[i].set(parsed);
        }
    };
    std::thread::scope(|s| {
        for _ in 1..threads {
            // No thread (resource limits): the others take its share.
            let _ = std::thread::Builder::new()
                .name("tg-restore".into())
                .spawn_scoped(s, move || {
                    helper_start();
                    work()
                });
        }
        work();
    });
    // Every slice was taken by some thread, which finished it before the
    // scope ended (a panic there would have propagated).
    done.into_iter().map(|c| c.into_inner()).collect()
}

/// `text` cut into `n` slices, each ending just after a newline (the last
/// at the end of the text); their `.lines()` together are `text.lines()`.
fn split_at_lines(text: &str, n: usize) -> Vec<&str> {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(n);
    let mut start = 0;
    for i in 1..n {
        let mut cut = (b.len() * i / n).max(start);
        match b[cut..].iter().position(|&c| c == b'\n') {
            Some(p) => cut += p + 1,
            None => cut = b.len(),
        }
        out.push(&text[start..cut]);
        start = cut;
    }
    out.push(&text[start..]);
    out
}

/// Applies an iptables-restore text. Each table takes effect at its COMMIT
/// (all or nothing); the first error stops the restore, tables committed
/// before it stay applied (as iptables-restore does).
pub fn restore(rs: &mut Ruleset, text: &str, opts: RestoreOptions) -> Result<(), RestoreError> {
    restore_with(rs, text, opts, &|| {})
}

/// [`restore`], running `helper_start` first on every thread that helps
/// parse a large text (the gateway lowers those threads' priority: see
/// `control::gateway`).
pub fn restore_with(
    rs: &mut Ruleset,
    text: &str,
    opts: RestoreOptions,
    helper_start: &(dyn Fn() + Sync),
) -> Result<(), RestoreError> {
    let parsed = pre_parse(text, opts, rs.family(), helper_start);
    restore_parsed(rs, text, opts, parsed)
}

/// The sequential pass of a restore, taking each rule line from `parsed`
/// (in line order) when [`pre_parse`] ran, parsing it here otherwise.
fn restore_parsed(
    rs: &mut Ruleset,
    text: &str,
    opts: RestoreOptions,
    parsed: Option<Vec<Vec<RuleLine>>>,
) -> Result<(), RestoreError> {
    // The table being built, held directly: a `&mut Table` taken from a
    // Ruleset per line costs an `Arc::make_mut` (two atomic operations)
    // per line, ~3 % of a 140,000-rule restore.
    let mut work: Option<Table> = None;
    let mut nlines = 0;
    let mut toks = Vec::with_capacity(32);
    let mut last = LastChains::default();
    let mut parsed = parsed.map(|v| v.into_iter().flatten());
    for (ln, raw) in text.lines().enumerate() {
        let ln = ln + 1;
        nlines = ln;
        let line = raw.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('*') {
            if work.is_some() {
                return Err(rerr(ln, other("table declared twice without COMMIT")));
            }
            let name = name.trim();
            let kind = TableKind::from_name(name).ok_or_else(|| {
                rerr(
                    ln,
                    SyntaxError::UnknownTable {
                        table: name.to_string(),
                    },
                )
            })?;
            work = Some(if opts.noflush {
                rs.table(kind).clone()
            } else {
                Table::new_family(kind, rs.family())
            });
            continue;
        }
        let Some(t) = work.as_mut() else {
            return Err(rerr(
                ln,
                SyntaxError::Invalid(format!(
                    "no table specified before \"{}\" (expected a \"*filter\"-style line)",
                    line.split_whitespace().next().unwrap_or("")
                )),
            ));
        };
        let kind = t.kind;
        if line.trim_end() == "COMMIT" {
            let t = work.take().expect("inside a table");
            t.validate().map_err(|e| rerr(ln, e))?;
            if !opts.test {
                rs.replace_table(t);
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix(':') {
            let mut it = rest.split_whitespace();
            let name = it.next().unwrap_or("");
            let pol = it.next().ok_or_else(|| {
                rerr(
                    ln,
                    SyntaxError::MissingArgument {
                        option: format!(":{name} (policy)"),
                    },
                )
            })?;
            let cnt = match it.next() {
                None => None,
                Some(c) => Some(parse_counters(c).ok_or_else(|| {
                    rerr(
                        ln,
                        SyntaxError::BadValue {
                            option: format!(":{name}"),
                            value: c.to_string(),
                            expected: "[packets:bytes]",
                        },
                    )
                })?),
            };
            match t.chain_mut(name) {
                Some(c) if c.is_builtin() => {
                    c.policy = match pol {
                        "ACCEPT" => Some(Policy::Accept),
                        "DROP" => Some(Policy::Drop),
                        "-" => c.policy,
                        _ => {
                            return Err(rerr(
                                ln,
                                SyntaxError::BadValue {
                                    option: format!(":{name}"),
                                    value: pol.to_string(),
                                    expected: "ACCEPT or DROP",
                                },
                            ))
                        }
                    };
                    if opts.counters {
                        if let Some(cn) = cnt {
                            c.counters = cn;
                        }
                    }
                }
                Some(c) => {
                    // Redeclaring a user chain flushes it.
                    c.rules.clear();
                }
                None => {
                    if pol != "-" {
                        return Err(rerr(
                            ln,
                            other("Bad built-in chain name (a user chain takes policy \"-\")."),
                        ));
                    }
                    check_chain_name(name).map_err(|e| rerr(ln, e))?;
                    t.add_absent_user_chain(name);
                }
            }
            continue;
        }
        if other_family_line(line, rs.family()) {
            continue;
        }
        let staged = match &mut parsed {
            Some(it) => it.next().expect("one pre-parsed entry per rule line"),
            None => stage_rule_line(line, &mut toks, opts, rs.family()),
        }
        .map_err(|e| rerr(ln, *e))?;
        match staged {
            Staged::Append { chain, rule } => append_restore(t, &chain, rule, &mut last),
            Staged::Other(mut cmd) => {
                // -I, -D, -N... (every -A is `Staged::Append`), rare in
                // restore files: run on a ruleset lent the table.
                cmd.table = kind;
                let family = rs.family();
                let mut w = Ruleset::new_family(family);
                w.replace_table(std::mem::replace(t, Table::new_family(kind, family)));
                let r = exec(&mut w, &cmd, &mut String::new());
                *t = std::mem::replace(w.table_mut(kind), Table::new_family(kind, family));
                r
            }
        }
        .map_err(|e| rerr(ln, e))?;
    }
    if work.is_some() {
        return Err(rerr(
            nlines + 1,
            SyntaxError::Invalid("COMMIT expected".into()),
        ));
    }
    Ok(())
}

/// The chains the last restore lines appended to and jumped to, for
/// [`Table::chain_index_recent`]: restore files list a chain's rules
/// together and in the order they declared the chains, and many rules jump
/// to the same chain, so most lines skip both name lookups. Entries are
/// checked by name before use, so a stale entry is only a miss.
struct LastChains {
    chain: [usize; 2],
    targets: [usize; 2],
}

impl Default for LastChains {
    fn default() -> Self {
        LastChains {
            chain: NO_RECENT,
            targets: NO_RECENT,
        }
    }
}

/// `-A chain rule` inside a restore: the chain must exist, and a jump
/// target be a user chain; the rest is checked at COMMIT (so a large
/// restore stays linear: [`exec`] validates the table after every append).
fn append_restore(
    t: &mut Table,
    chain: &str,
    mut rule: Arc<Rule>,
    last: &mut LastChains,
) -> Result<(), CmdError> {
    let ci = t
        .chain_index_recent(chain, &mut last.chain)
        .ok_or_else(|| other(NO_CHAIN))?;
    if let Some(j) = rule.target.chain_ref() {
        match t.resolve(j, &mut last.targets) {
            Some(i) if !t.chains[i].is_builtin() => {
                // The rule was just parsed: nothing else holds it yet.
                if let Some(j) = Arc::get_mut(&mut rule).and_then(|r| r.target.chain_ref_mut()) {
                    j.set_hint(i);
                }
            }
            _ => return Err(no_target(t, j)),
        }
    }
    t.chains[ci].rules.push(rule);
    Ok(())
}

/// The iptables-save text of every present table (no `#` lines).
pub fn save_text(rs: &Ruleset, counters: bool) -> String {
    super::save::save(rs, counters)
}

/// iptables-save of one table.
pub fn save_one(rs: &Ruleset, kind: TableKind, counters: bool) -> String {
    let mut s = String::new();
    save_table(&mut s, rs.table(kind), counters);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A restore text above [`PARALLEL_RESTORE_BYTES`]: `n` chains of 4
    /// rules each in nat, then `tail` before COMMIT.
    fn big_restore(n: usize, tail: &str) -> String {
        let mut t = String::from("*nat\n:PREROUTING ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n");
        for i in 0..n {
            t.push_str(&format!(":SVC-{i} - [0:0]\n"));
        }
        for i in 0..n {
            t.push_str(&format!("-A PREROUTING -d 10.0.{}.{}/32 -p tcp --dport 80 -m comment --comment \"svc {i}\" -j SVC-{i}\n", i / 250, i % 250));
            for k in 0..4 {
                t.push_str(&format!("[{i}:{k}] -A SVC-{i} -p tcp -m statistic --mode random --probability 0.25 -j DNAT --to-destination 10.244.{k}.{}:8080\n", i % 250));
            }
        }
        t.push_str(tail);
        t.push_str("COMMIT\n");
        t
    }

    #[test]
    fn a_parsed_rule_line_stays_small() {
        // One per rule line of a large restore is held until applied.
        println!("RuleLine {}", std::mem::size_of::<RuleLine>());
        assert!(std::mem::size_of::<RuleLine>() <= 40);
    }

    #[test]
    fn a_large_restore_parsed_on_threads_equals_the_sequential_parse() {
        let text = big_restore(4000, "");
        assert!(text.len() > PARALLEL_RESTORE_BYTES, "{}", text.len());
        assert!(
            pre_parse(&text, RestoreOptions::default(), Family::V4, &|| {}).is_some()
                || std::thread::available_parallelism().map_or(1, |n| n.get()) < 2
        );
        for counters in [false, true] {
            let opts = RestoreOptions {
                counters,
                ..Default::default()
            };
            let mut par = Ruleset::new();
            restore(&mut par, &text, opts).unwrap();
            // The same text through the sequential pass alone.
            let mut seq = Ruleset::new();
            restore_parsed(&mut seq, &text, opts, None).unwrap();
            assert_eq!(save_text(&par, true), save_text(&seq, true));
            assert_eq!(par.table(TableKind::Nat).chains.len(), 4 + 4000);
        }
    }

    #[test]
    fn threaded_and_sequential_restores_agree_on_damaged_texts() {
        // The same text, parsed with the helper threads and without, must
        // give the same result: the same error at the same line, or the
        // same ruleset. Lines are damaged at random (xorshift, fixed seed).
        let good = big_restore(4000, "");
        let lines: Vec<&str> = good.lines().collect();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = |n: usize| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % n as u64) as usize
        };
        let damage = [
            "-A NO-SUCH-CHAIN -j ACCEPT",
            "-A PREROUTING -p tcp --dport 70000 -j ACCEPT",
            ":SVC-7 - [0:0]",
            "-X SVC-9",
            "-A PREROUTING -j SVC-0",
            "[1:2 -A PREROUTING -j ACCEPT",
            "COMMIT",
            "*filter",
            "-A PREROUTING -t nat -j ACCEPT",
            "-N NEW-ONE",
            "-A PREROUTING -m comment --comment \"unterminated -j ACCEPT",
        ];
        for case in 0..40 {
            let mut v = lines.clone();
            for _ in 0..(1 + case % 3) {
                let at = 3 + next(v.len() - 4);
                v.insert(at, damage[next(damage.len())]);
            }
            let text = v.join("\n") + "\n";
            for counters in [false, true] {
                let opts = RestoreOptions {
                    counters,
                    ..Default::default()
                };
                let pre = pre_parse(&text, opts, Family::V4, &|| {});
                assert!(pre.is_some());
                let (mut a, mut b) = (Ruleset::new(), Ruleset::new());
                let ra = restore_parsed(&mut a, &text, opts, pre);
                let rb = restore_parsed(&mut b, &text, opts, None);
                assert_eq!(ra, rb, "case {case}");
                assert_eq!(save_text(&a, true), save_text(&b, true), "case {case}");
            }
        }
    }

    #[test]
    fn a_large_restore_reports_its_first_bad_line_whichever_thread_parsed_it() {
        // A bad rule near the end (parsed by a helper thread) and a bad
        // chain reference earlier (found by the sequential pass): the
        // earlier line is reported, as iptables-restore does.
        let good = big_restore(4000, "");
        let lines = good.lines().count();
        let text = big_restore(4000, "-A PREROUTING -p tcp --dport 99999 -j ACCEPT\n");
        let e = restore(&mut Ruleset::new(), &text, RestoreOptions::default()).unwrap_err();
        assert_eq!(e.line, lines, "{e}");
        let early = text.replacen("-j SVC-7\n", "-j NO-SUCH-CHAIN\n", 1);
        let want = early
            .lines()
            .position(|l| l.contains("NO-SUCH-CHAIN"))
            .unwrap()
            + 1;
        let e = restore(&mut Ruleset::new(), &early, RestoreOptions::default()).unwrap_err();
        assert_eq!(e.line, want, "{e}");
        // And nothing of a failed restore is applied.
        let mut rs = Ruleset::new();
        let before = save_text(&rs, true);
        assert!(restore(&mut rs, &early, RestoreOptions::default()).is_err());
        assert_eq!(save_text(&rs, true), before);
    }

    #[test]
    fn tokenize_quotes_like_iptables_restore() {
        let t =
            tokenize(r#"-A X -m comment --comment "a b\"c" -j LOG --log-prefix 'x y' "#).unwrap();
        let v: Vec<&str> = t.iter().map(|c| c.as_ref()).collect();
        assert_eq!(
            v,
            [
                "-A",
                "X",
                "-m",
                "comment",
                "--comment",
                "a b\"c",
                "-j",
                "LOG",
                "--log-prefix",
                "x y"
            ]
        );
        assert!(matches!(t[0], Cow::Borrowed(_)), "plain tokens borrow");
        assert!(
            matches!(t[9], Cow::Borrowed(_)),
            "a whole quoted token borrows"
        );
        let v = tokenize(r#"'a'b "x"y"z" "" 'it"s' "a\\b" c\d "q""#).unwrap();
        assert_eq!(v, ["ab", "xyz", "", "it\"s", "a\\b", "c\\d", "q"]);
        assert!(tokenize("'open").is_err());
        assert!(tokenize("-A X --comment \"open").is_err());
        assert_eq!(tokenize("  ").unwrap().len(), 0);
        assert_eq!(tokenize("a\"\"b").unwrap()[0], "ab");
    }

    #[test]
    fn counters_prefix() {
        assert_eq!(
            parse_counters("[12:345]"),
            Some(Counters {
                packets: 12,
                bytes: 345
            })
        );
        assert_eq!(parse_counters("[12:]"), None);
        assert_eq!(parse_counters("12:3"), None);
    }
}
