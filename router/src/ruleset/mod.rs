//! The ruleset model: five netfilter tables, their chains, rules, matches,
//! targets and counters, as plain data (`Clone`, no interior mutability).
//! Tables and rules sit behind `Arc` and are copied on write
//! (`Arc::make_mut`): a copy of a 140,000-rule model costs reference counts,
//! and the compiled form shares the rules instead of copying them.
//!
//! # For the pipeline author
//!
//! * [`Ruleset`] holds the five tables, indexed by [`TableKind`]
//!   (`ruleset.table(TableKind::Nat)`). Each [`Table`] keeps its chains in
//!   hook order first, then user chains in creation order (listings sort user
//!   chains by name, as iptables-nft does: [`Table::chains_listed`]).
//! * A [`Chain`] is built-in (`policy: Some(..)`, with the hook it sits on)
//!   or user-defined (`policy: None`). Built-in chains carry policy counters.
//! * A [`Rule`] is the fixed IPv4 header part (`-s -d -i -o -p -f`, each with
//!   its own inversion), then `matches` in the user's order (all must match,
//!   evaluated in order), then a [`Target`] (`Target::None` when the rule has
//!   no `-j`: it only counts), then its [`Counters`].
//! * A ruleset is of one address [`Family`] (`iptables` or `ip6tables`):
//!   [`Ruleset::new`] is IPv4, [`Ruleset::new_family`] either.
//! * Everything is semantic: addresses and masks are `u128` in host order,
//!   an IPv4 address zero-extended into the low 32 bits (`u32 as u128`),
//!   the family known from the ruleset (`Ipv4Addr::from(a as u32)` or
//!   `Ipv6Addr::from(a)` to print), ports are inclusive `(lo, hi)`
//!   ranges, ctstate is a bit set, marks are `(value, mask)`, the statistic
//!   probability is the kernel's 31-bit threshold (see [`StatisticMode`]),
//!   limit rates are the kernel's average interval between packets in
//!   1/10000 s (`XT_LIMIT_SCALE`: 10000 = 1/sec, 600000 = 1/min).
//! * Jumps name their chain: [`Target::Jump`] / [`Target::Goto`] hold a
//!   [`ChainRef`], the chain name with a position hint.
//!   [`Table::chain_index`] resolves a name, [`Table::resolve`] a
//!   [`ChainRef`]; the compiled,
//!   index-based form belongs to the pipeline (it compiles once per ruleset
//!   replacement, after [`Ruleset::validate`] has passed, so every name
//!   resolves and there are no loops).
//! * Counters: the pipeline keeps live counters itself and copies them back
//!   with [`Ruleset::set_rule_counters`] / [`Ruleset::set_policy_counters`]
//!   (or by writing the public fields) before a listing is printed.
//!
//! Parsing and printing live in `crate::syntax`; this module only defines the
//! data and the edit operations iptables commands perform on it.

mod matches;
mod table;
mod targets;
mod validate;

pub use matches::{
    AddrTypes, ConntrackMatch, CtAddr, CtStateSet, CtStatus, FragMatch, IprangeMatch, MarkMask,
    Match, MultiportKind, OptsMatch, RecentCmd, RecentMatch, RtMatch, StatisticMode, TtlOp,
};
pub use table::{Chain, ChainRef, Table, NO_RECENT};
pub use targets::{
    nat_flags, ConnmarkTarget, CtTarget, HlMode, IntoAddr, LogTarget, NatRange, NflogTarget,
    RejectWith, Target, CT_EVENT_NAMES,
};
pub use validate::ValidateError;

/// Where a target may be used: (name, only-in-table, allowed hook bits,
/// description), or None when it is allowed everywhere.
pub fn target_placement(t: &Target) -> Option<(&'static str, Option<TableKind>, u8, &'static str)> {
    validate::target_rules(t)
}

/// Whether a match may be used from some hooks only (the table's
/// reachability must then be checked when a rule using it is added).
pub fn match_restricted(m: &Match) -> bool {
    validate::match_restricted(m)
}

use std::fmt;
use std::sync::Arc;

/// The address family: what `iptables` (IPv4) and `ip6tables` (IPv6)
/// speak; the crate's one family type.
pub use crate::wire::Family;

/// The five netfilter tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TableKind {
    Raw,
    Mangle,
    Nat,
    Filter,
    Security,
}

impl TableKind {
    /// Order of `iptables-save` output (the nft backend lists tables in the
    /// order they were created; the kernel creates them on first use; our
    /// save prints them in this fixed order).
    pub const ALL: [TableKind; 5] = [
        TableKind::Raw,
        TableKind::Mangle,
        TableKind::Nat,
        TableKind::Filter,
        TableKind::Security,
    ];

    pub fn name(self) -> &'static str {
        match self {
            TableKind::Raw => "raw",
            TableKind::Mangle => "mangle",
            TableKind::Nat => "nat",
            TableKind::Filter => "filter",
            TableKind::Security => "security",
        }
    }

    pub fn from_name(s: &str) -> Option<TableKind> {
        Some(match s {
            "raw" => TableKind::Raw,
            "mangle" => TableKind::Mangle,
            "nat" => TableKind::Nat,
            "filter" => TableKind::Filter,
            "security" => TableKind::Security,
            _ => return None,
        })
    }

    /// The built-in chains (hooks) of this table, in listing order.
    pub fn hooks(self) -> &'static [Hook] {
        use Hook::*;
        match self {
            TableKind::Raw => &[Prerouting, Output],
            TableKind::Mangle => &[Prerouting, Input, Forward, Output, Postrouting],
            TableKind::Nat => &[Prerouting, Input, Output, Postrouting],
            TableKind::Filter | TableKind::Security => &[Input, Forward, Output],
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The five netfilter hooks (names of the built-in chains).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Hook {
    Prerouting,
    Input,
    Forward,
    Output,
    Postrouting,
}

impl Hook {
    pub fn name(self) -> &'static str {
        match self {
            Hook::Prerouting => "PREROUTING",
            Hook::Input => "INPUT",
            Hook::Forward => "FORWARD",
            Hook::Output => "OUTPUT",
            Hook::Postrouting => "POSTROUTING",
        }
    }

    pub fn from_name(s: &str) -> Option<Hook> {
        Some(match s {
            "PREROUTING" => Hook::Prerouting,
            "INPUT" => Hook::Input,
            "FORWARD" => Hook::Forward,
            "OUTPUT" => Hook::Output,
            "POSTROUTING" => Hook::Postrouting,
            _ => return None,
        })
    }

    /// Bit for hook masks (`1 << hook`), as the kernel's `NF_INET_*`.
    pub fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// Packet and byte counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub packets: u64,
    pub bytes: u64,
}

/// Policy of a built-in chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    Accept,
    Drop,
}

impl Policy {
    pub fn name(self) -> &'static str {
        match self {
            Policy::Accept => "ACCEPT",
            Policy::Drop => "DROP",
        }
    }
}

/// The whole ruleset of one family: the five tables. Tables are shared between copies
/// (copy on write): cloning a ruleset costs five reference counts, and
/// `table_mut` copies only the table it changes (itself a shallow copy: its
/// rules are shared too).
#[derive(Debug, Clone, PartialEq)]
pub struct Ruleset {
    tables: [Arc<Table>; 5],
    /// Tables that exist (iptables-nft creates a table on first use; save
    /// prints only those).
    present: [bool; 5],
    family: Family,
}

impl Default for Ruleset {
    fn default() -> Self {
        Self::new()
    }
}

impl Ruleset {
    /// Empty IPv4 tables with their built-in chains, policies ACCEPT,
    /// counters 0.
    pub fn new() -> Ruleset {
        Ruleset::new_family(Family::V4)
    }

    /// [`Ruleset::new`] for either family.
    pub fn new_family(family: Family) -> Ruleset {
        Ruleset {
            tables: TableKind::ALL.map(|k| Arc::new(Table::new_family(k, family))),
            present: [false; 5],
            family,
        }
    }

    /// The family every address of this ruleset belongs to.
    pub fn family(&self) -> Family {
        self.family
    }

    pub fn table(&self, kind: TableKind) -> &Table {
        &self.tables[kind.index()]
    }

    /// Mutable access; marks the table present.
    pub fn table_mut(&mut self, kind: TableKind) -> &mut Table {
        self.present[kind.index()] = true;
        Arc::make_mut(&mut self.tables[kind.index()])
    }

    /// Mutable access that does not create the table (for copying live
    /// counters into a listing: an untouched table stays untouched).
    pub fn table_mut_unmarked(&mut self, kind: TableKind) -> &mut Table {
        Arc::make_mut(&mut self.tables[kind.index()])
    }

    /// Whether `self` and `other` share table `kind` (one was copied from
    /// the other and neither changed that table since).
    pub fn shares_table(&self, other: &Ruleset, kind: TableKind) -> bool {
        Arc::ptr_eq(&self.tables[kind.index()], &other.tables[kind.index()])
    }

    /// Whether the table has been used (created) at all.
    pub fn is_present(&self, kind: TableKind) -> bool {
        self.present[kind.index()]
    }

    /// Replaces a whole table (marks it present); the table takes the
    /// ruleset's family.
    pub fn replace_table(&mut self, mut t: Table) {
        t.family = self.family;
        let i = t.kind.index();
        self.present[i] = true;
        self.tables[i] = Arc::new(t);
    }

    pub fn tables(&self) -> impl Iterator<Item = &Table> {
        self.tables.iter().map(|t| &**t)
    }

    /// Sets the counters of rule `index` (0-based) of `chain`. Returns false
    /// if the chain or rule does not exist.
    pub fn set_rule_counters(
        &mut self,
        table: TableKind,
        chain: &str,
        index: usize,
        c: Counters,
    ) -> bool {
        match self
            .table_mut(table)
            .chain_mut(chain)
            .and_then(|ch| ch.rules.get_mut(index))
        {
            Some(r) => {
                if r.counters != c {
                    Arc::make_mut(r).counters = c;
                }
                true
            }
            None => false,
        }
    }

    /// Sets the policy counters of a built-in chain.
    pub fn set_policy_counters(&mut self, table: TableKind, chain: &str, c: Counters) -> bool {
        match self.table_mut(table).chain_mut(chain) {
            Some(ch) if ch.policy.is_some() => {
                ch.counters = c;
                true
            }
            _ => false,
        }
    }

    /// Checks every table: targets allowed where used, jumps resolve, no
    /// loops, targets only in the tables and hooks netfilter allows (a user
    /// chain counts every hook it is reachable from).
    pub fn validate(&self) -> Result<(), ValidateError> {
        for t in &self.tables {
            t.validate()?;
        }
        Ok(())
    }
}

/// An address match `[!] -s addr/mask`; host order `u128`s (IPv4 in the
/// low 32 bits), `addr` already masked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AddrMask {
    pub addr: u128,
    pub mask: u128,
    pub invert: bool,
}

impl AddrMask {
    /// True when this matches every address (`0.0.0.0/0`, not inverted).
    pub fn is_any(&self) -> bool {
        self.mask == 0 && !self.invert
    }

    #[inline]
    pub fn matches(&self, a: u128) -> bool {
        ((a & self.mask) == self.addr) != self.invert
    }
}

/// An interface match `[!] -i name[+]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Iface {
    /// Name without the trailing `+`.
    pub name: String,
    /// Trailing `+`: prefix match.
    pub wildcard: bool,
    pub invert: bool,
}

impl Iface {
    pub fn matches(&self, ifname: &str) -> bool {
        let m = if self.wildcard {
            ifname.starts_with(&self.name)
        } else {
            ifname == self.name
        };
        m != self.invert
    }
}

/// An inclusive range with inversion, used for ports, lengths, MSS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range16 {
    pub lo: u16,
    pub hi: u16,
    pub invert: bool,
}

impl Range16 {
    pub fn matches(&self, v: u16) -> bool {
        (self.lo <= v && v <= self.hi) != self.invert
    }
}

/// One rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub src: AddrMask,
    pub dst: AddrMask,
    /// Boxed: most rules name no interface (saves 48 bytes a rule).
    pub in_iface: Option<Box<Iface>>,
    pub out_iface: Option<Box<Iface>>,
    /// `-p`: protocol number (0 = all) and inversion.
    pub proto: u8,
    pub proto_invert: bool,
    /// `-f` (`Some(false)`) or `! -f` (`Some(true)`).
    pub fragment: Option<bool>,
    /// Matches in the user's order.
    pub matches: Vec<Match>,
    pub target: Target,
    pub counters: Counters,
}

impl Default for Rule {
    fn default() -> Self {
        Rule {
            src: AddrMask::default(),
            dst: AddrMask::default(),
            in_iface: None,
            out_iface: None,
            proto: 0,
            proto_invert: false,
            fragment: None,
            matches: Vec::new(),
            target: Target::None,
            counters: Counters::default(),
        }
    }
}

impl Rule {
    /// Rule equality as `iptables -D/-C` uses it (everything but counters).
    pub fn same_spec(&self, o: &Rule) -> bool {
        self.src == o.src
            && self.dst == o.dst
            && self.in_iface == o.in_iface
            && self.out_iface == o.out_iface
            && self.proto == o.proto
            && self.proto_invert == o.proto_invert
            && self.fragment == o.fragment
            && self.matches == o.matches
            && self.target == o.target
    }
}

impl fmt::Display for TableKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_stay_small() {
        // Large rulesets (kube-proxy: 100k+ rules) keep these in memory.
        println!(
            "Rule {} Match {} Target {}",
            std::mem::size_of::<Rule>(),
            std::mem::size_of::<Match>(),
            std::mem::size_of::<Target>()
        );
        assert!(std::mem::size_of::<Match>() <= 48);
        assert!(std::mem::size_of::<Target>() <= 40);
        // 128 bytes while addresses were u32s; the two 128-bit AddrMasks
        // (16-byte aligned, 48 bytes each) add 80: 208 bytes, 11 MB more
        // for a 140,000-rule kube ruleset.
        assert!(std::mem::size_of::<Rule>() <= 208);
    }
}
