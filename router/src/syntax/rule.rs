//! One rule while its options are parsed: the generic options (`-p -s -d
//! -i -o -f`), the target (`-j`/`-g`) and the matches (`-m`). Every other
//! option goes to the loaded target, then to the loaded matches from the
//! latest backwards (an implicit `-m tcp`/`udp`/`icmp` after `-p` last);
//! [`RuleBuilder::finish`] runs each extension's final check. The
//! extensions themselves live in [`super::matches`] and [`super::targets`];
//! this file holds what they share: [`Arg`], the option bits and the
//! "given once" and "not invertible" checks.

use super::command::{long, Cursor, Opt};
use super::matches::{self, MatchExt};
use super::names::{self, parse_proto};
use super::targets::{self, TargetExt};
use super::values::*;
use super::SyntaxError;
use crate::ruleset::*;

/// One loaded match while parsing: its extension, the model value and the
/// options seen (`S*` bits, each extension's own).
struct Loaded {
    ext: &'static MatchExt,
    m: Match,
    seen: u32,
}

/// Rule-building state.
pub(super) struct RuleBuilder {
    /// The tool's family: addresses, and which extensions load.
    family: Family,
    rule: Rule,
    loaded: Vec<Loaded>,
    /// The extension of the `-j` target (None for a chain, `-g` or no `-j`).
    target: Option<&'static TargetExt>,
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
pub(super) const S1: u32 = 1;
pub(super) const S2: u32 = 2;
pub(super) const S3: u32 = 4;
pub(super) const S4: u32 = 8;
pub(super) const S8: u32 = 128;

pub(super) fn once(seen: &mut u32, bit: u32, opt: &str) -> R<()> {
    if *seen & bit != 0 {
        return Err(invalid(format!("option \"{opt}\" can only be used once")));
    }
    *seen |= bit;
    Ok(())
}

pub(super) fn no_inv(inv: bool, opt: &str) -> R<()> {
    if inv {
        return Err(invalid(format!("option \"{opt}\" cannot be inverted")));
    }
    Ok(())
}

/// One option occurrence as a match or target sees it: its name, whether
/// `!` came before it, the rule's `-p` so far, and where its argument
/// comes from.
pub(super) struct Arg<'x, 'a, 't> {
    pub(super) name: &'a str,
    pub(super) inv: bool,
    /// The rule's protocol number (0 = all) and its inversion.
    pub(super) proto: u8,
    pub(super) proto_inv: bool,
    /// The tool's family (addresses in option values).
    pub(super) family: Family,
    opt: &'x mut Opt<'a>,
    cur: &'x mut Cursor<'a, 't>,
}

impl<'a> Arg<'_, 'a, '_> {
    /// The option's argument: the `=value` or the next token.
    pub(super) fn value(&mut self) -> R<&'a str> {
        self.opt.arg(self.cur)
    }

    /// One more token (the second argument of `--tcp-flags`).
    pub(super) fn next_token(&mut self) -> Option<&'a str> {
        self.cur.next()
    }

    /// The protocol name service names are looked up under (`-p tcp` etc.,
    /// not inverted), as multiport's ports need it.
    pub(super) fn port_proto(&self) -> Option<&'static str> {
        if self.proto_inv {
            None
        } else {
            proto_name_for_ports(self.proto)
        }
    }
}

impl RuleBuilder {
    pub(super) fn new(family: Family) -> RuleBuilder {
        RuleBuilder {
            family,
            rule: Rule::default(),
            loaded: Vec::new(),
            target: None,
            target_seen: 0,
            target_given: false,
            proto_given: false,
            given: 0,
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
            let (addr, mask) = parse_addr_mask(self.family, "-s", o.arg(c)?)?;
            self.given_once(G_SRC, "-s")?;
            self.rule.src = AddrMask {
                addr,
                mask,
                invert: inv,
            };
            return Ok(());
        }
        if long(name, "-d", &["--destination", "--dst"]) {
            let (addr, mask) = parse_addr_mask(self.family, "-d", o.arg(c)?)?;
            self.given_once(G_DST, "-d")?;
            self.rule.dst = AddrMask {
                addr,
                mask,
                invert: inv,
            };
            return Ok(());
        }
        if long(name, "-i", &["--in-interface"]) {
            let i = parse_iface("-i", o.arg(c)?)?;
            self.given_once(G_IN, "-i")?;
            self.rule.in_iface = i.map(|i| Box::new(Iface { invert: inv, ..i }));
            return Ok(());
        }
        if long(name, "-o", &["--out-interface"]) {
            let i = parse_iface("-o", o.arg(c)?)?;
            self.given_once(G_OUT, "-o")?;
            self.rule.out_iface = i.map(|i| Box::new(Iface { invert: inv, ..i }));
            return Ok(());
        }
        if long(name, "-f", &["--fragment"]) {
            if self.family == Family::V6 {
                return Err(invalid(
                    "`-f' is not supported in IPv6, use -m frag instead",
                ));
            }
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
            let found = targets::find(v, self.family);
            if goto {
                if found.is_none() {
                    self.rule.target = Target::Goto(v.into());
                } else {
                    return Err(invalid(format!("goto '{v}' is not a chain")));
                }
            } else {
                if v.is_empty() {
                    return Err(err_val(name, v, "a target or chain name"));
                }
                match found {
                    Some((ext, t)) => {
                        self.rule.target = t;
                        self.target = Some(ext);
                    }
                    None => self.rule.target = Target::Jump(v.into()),
                }
            }
            return Ok(());
        }
        if long(name, "-m", &["--match"]) {
            let v = o.arg(c)?;
            no_inv(inv, name)?;
            let ext = matches::find(v, self.family)?;
            self.loaded.push(Loaded {
                ext,
                m: (ext.new)(self.family),
                seen: 0,
            });
            return Ok(());
        }
        if !name.starts_with('-') || name == "-" {
            return Err(SyntaxError::UnexpectedArgument {
                token: name.to_string(),
            });
        }
        // Target options first (the target is the latest-loaded module in
        // practice), then matches from the latest loaded backwards.
        let mut a = Arg {
            name,
            inv,
            proto: self.rule.proto,
            proto_inv: self.rule.proto_invert,
            family: self.family,
            opt: &mut o,
            cur: c,
        };
        if let Some(t) = self.target {
            if (t.option)(&mut self.rule.target, &mut self.target_seen, &mut a)? {
                return Ok(());
            }
        }
        for l in self.loaded.iter_mut().rev() {
            if (l.ext.option)(&mut l.m, &mut l.seen, &mut a)? {
                return Ok(());
            }
        }
        // Implicit protocol match (`-p tcp --dport 22`).
        let implicit = match (self.rule.proto, self.rule.proto_invert, self.family) {
            (6, false, _) => Some("tcp"),
            (17, false, _) => Some("udp"),
            (1, false, Family::V4) => Some("icmp"),
            (58, false, Family::V6) => Some("icmp6"),
            _ => None,
        };
        if let Some(p) = implicit {
            if !self.loaded.iter().any(|l| l.ext.name == p) {
                let ext = matches::find(p, self.family)?;
                let mut l = Loaded {
                    ext,
                    m: (ext.new)(self.family),
                    seen: 0,
                };
                if (ext.option)(&mut l.m, &mut l.seen, &mut a)? {
                    self.loaded.push(l);
                    return Ok(());
                }
            }
        }
        let hint = names::suggest(name, names::ALL_OPTIONS.iter().copied());
        Err(SyntaxError::UnknownOption {
            token: name.to_string(),
            suggest: hint,
        })
    }

    /// `-s`, `-d`, `-i` and `-o` may each be given once (`bit`: G_*).
    fn given_once(&mut self, bit: u8, opt: &str) -> R<()> {
        if self.given & bit != 0 {
            return Err(invalid(format!("multiple {opt} flags not allowed")));
        }
        self.given |= bit;
        Ok(())
    }

    /// Final checks (required options, protocol requirements) and the rule.
    pub(super) fn finish(mut self) -> R<Rule> {
        let proto = self.rule.proto;
        let pinv = self.rule.proto_invert;
        for l in &self.loaded {
            (l.ext.check)(&l.m, l.seen, proto, pinv)?;
        }
        if let Some(t) = self.target {
            (t.check)(&self.rule.target, self.target_seen, proto, pinv)?;
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
