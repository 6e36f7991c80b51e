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
//! * Everything is semantic: addresses and masks are `u32` in host order
//!   (`Ipv4Addr::from(u32)` to print), ports are inclusive `(lo, hi)`
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
#![forbid(unsafe_code)]

mod validate;

pub use validate::ValidateError;

/// Where a target may be used: (name, only-in-table, allowed hook bits,
/// description), or None when it is allowed everywhere.
pub fn target_placement(t: &Target) -> Option<(&'static str, Option<TableKind>, u8, &'static str)> {
    validate::target_rules(t)
}

use crate::hash::{NameHash, PreHashed};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

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

/// The whole ruleset: the five tables. Tables are shared between copies
/// (copy on write): cloning a ruleset costs five reference counts, and
/// `table_mut` copies only the table it changes (itself a shallow copy: its
/// rules are shared too).
#[derive(Debug, Clone, PartialEq)]
pub struct Ruleset {
    tables: [Arc<Table>; 5],
    /// Tables that exist (iptables-nft creates a table on first use; save
    /// prints only those).
    present: [bool; 5],
}

impl Default for Ruleset {
    fn default() -> Self {
        Self::new()
    }
}

impl Ruleset {
    /// Empty tables with their built-in chains, policies ACCEPT, counters 0.
    pub fn new() -> Ruleset {
        Ruleset {
            tables: TableKind::ALL.map(|k| Arc::new(Table::new(k))),
            present: [false; 5],
        }
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

    /// Replaces a whole table (marks it present).
    pub fn replace_table(&mut self, t: Table) {
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

/// One table: its chains, built-in chains first (hook order), then user
/// chains in creation order. Printers sort user chains by name, as
/// iptables-nft lists them.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub kind: TableKind,
    /// Edit through the methods, or call [`Table::reindex`] after changing
    /// names or order directly.
    pub chains: Vec<Chain>,
    /// Chain positions by the name's 64-bit hash ([`name_hash`]): a probe
    /// compares integers, not strings behind pointers, and the map holds no
    /// copy of the names (a 50,000-chain table is looked up ~300,000 times
    /// per restore, and under load each pointer followed is a cache miss).
    /// The name at the position is still compared before it is trusted.
    index: HashMap<u64, usize, PreHashed>,
    /// Names whose hash another name of the table already has.
    spill: HashMap<String, usize, NameHash>,
}

/// An empty `recent` for [`Table::chain_index_recent`].
pub const NO_RECENT: [usize; 2] = [usize::MAX; 2];

/// The chain index's key: a 64-bit hash of the name that mixes every input
/// bit into every output bit (a multiply folded to 64 bits per word, as
/// wyhash does). FxHash, good enough to pick a bucket, is not good enough
/// here: its multiply carries a difference only upwards, and of 1,000 names
/// `KUBE-SEP-0000000000000NNN` 84 shared a hash with another (test
/// `chain_index_survives_hash_collisions_and_direct_edits`). A shared hash
/// is still correct (the name goes to `spill`), just slower.
fn name_hash(name: &str) -> u64 {
    fn fold(a: u64, b: u64) -> u64 {
        let r = u128::from(a) * u128::from(b);
        (r as u64) ^ ((r >> 64) as u64)
    }
    const K0: u64 = 0xa076_1d64_78bd_642f;
    const K1: u64 = 0xe703_7ed1_a0b4_28db;
    let b = name.as_bytes();
    let mut h = K0 ^ b.len() as u64;
    let mut words = b.chunks_exact(8);
    for w in &mut words {
        let w = u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
        h = fold(h ^ w, K1);
    }
    let mut tail = [0u8; 8];
    tail[..words.remainder().len()].copy_from_slice(words.remainder());
    fold(h ^ u64::from_le_bytes(tail), K1 ^ K0)
}

impl Table {
    pub fn new(kind: TableKind) -> Table {
        let mut t = Table {
            kind,
            chains: kind.hooks().iter().map(|&h| Chain::builtin(h)).collect(),
            index: HashMap::default(),
            spill: HashMap::default(),
        };
        t.reindex();
        t
    }

    /// Rebuilds the name index after direct edits of `chains`.
    pub fn reindex(&mut self) {
        self.index.clear();
        self.spill.clear();
        for i in 0..self.chains.len() {
            let name = std::mem::take(&mut self.chains[i].name);
            self.index_insert(&name, i);
            self.chains[i].name = name;
        }
    }

    fn index_insert(&mut self, name: &str, pos: usize) {
        match self.index.entry(name_hash(name)) {
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(pos);
            }
            std::collections::hash_map::Entry::Occupied(_) => {
                self.spill.insert(name.to_string(), pos);
            }
        }
    }

    pub fn chain_index(&self, name: &str) -> Option<usize> {
        let at = |i: usize| self.chains.get(i).is_some_and(|c| c.name == name);
        match self.index.get(&name_hash(name)) {
            Some(&i) if at(i) => return Some(i),
            Some(_) => {
                // Another name with this hash, or an index gone stale.
                if let Some(&i) = self.spill.get(name) {
                    if at(i) {
                        return Some(i);
                    }
                }
            }
            // A miss is trusted while the index covers every chain; after
            // direct edits of `chains` it may be stale, so scan.
            None if self.index.len() + self.spill.len() == self.chains.len() => return None,
            None => {}
        }
        self.chains.iter().position(|c| c.name == name)
    }

    pub fn chain(&self, name: &str) -> Option<&Chain> {
        self.chain_index(name).map(|i| &self.chains[i])
    }

    pub fn chain_mut(&mut self, name: &str) -> Option<&mut Chain> {
        self.chain_index(name).map(move |i| &mut self.chains[i])
    }

    /// Adds an empty user chain at the end. Returns false if it exists.
    pub fn add_user_chain(&mut self, name: &str) -> bool {
        if self.chain_index(name).is_some() {
            return false;
        }
        self.add_absent_user_chain(name);
        true
    }

    /// [`Table::chain_index`] for callers that resolve the jump targets of
    /// many rules in order: `recent` holds the last two chains found
    /// (start with [`NO_RECENT`]) and is tried first, then the chain after
    /// the last one. Consecutive rules mostly jump to the same few chains
    /// (every KUBE-SEP-* chain's first rule jumps to KUBE-MARK-MASQ) or to
    /// chains declared one after the other (a KUBE-SVC-* chain's rules to
    /// its KUBE-SEP-* chains), and an index lookup in a 50,000-chain table
    /// costs a few cache misses.
    pub fn chain_index_recent(&self, name: &str, recent: &mut [usize; 2]) -> Option<usize> {
        let named = |i: usize| self.chains.get(i).is_some_and(|c| c.name == name);
        let [last, before] = *recent;
        if named(last) {
            return Some(last);
        }
        if named(before) {
            return Some(before);
        }
        let next = last.wrapping_add(1);
        if named(next) {
            recent[0] = next;
            return Some(next);
        }
        let i = self.chain_index(name)?;
        *recent = [i, last];
        Some(i)
    }

    /// The index of the chain `r` names: its hint if the chain there has
    /// that name, else as [`Table::chain_index_recent`].
    pub fn resolve(&self, r: &ChainRef, recent: &mut [usize; 2]) -> Option<usize> {
        if self
            .chains
            .get(r.hint())
            .is_some_and(|c| *c.name == *r.name)
        {
            return Some(r.hint());
        }
        self.chain_index_recent(r, recent)
    }

    /// Adds an empty user chain at the end, for a caller that has just
    /// looked `name` up and not found it (saves the second lookup of
    /// [`Table::add_user_chain`]; a restore declares 50,000 chains).
    pub fn add_absent_user_chain(&mut self, name: &str) {
        debug_assert!(self.chain_index(name).is_none());
        self.index_insert(name, self.chains.len());
        self.chains.push(Chain::user(name));
    }

    /// Removes the chain at `idx` (no reference checks).
    pub fn remove_chain(&mut self, idx: usize) -> Chain {
        let c = self.chains.remove(idx);
        self.reindex();
        c
    }

    /// Renames a chain and every jump to it.
    pub fn rename_chain(&mut self, idx: usize, new: &str) {
        let old = std::mem::replace(&mut self.chains[idx].name, new.to_string());
        for c in &mut self.chains {
            for r in &mut c.rules {
                if r.target.chain_ref().is_some_and(|c| **c == *old) {
                    if let Some(c) = Arc::make_mut(r).target.chain_ref_mut() {
                        *c = ChainRef::new(new);
                    }
                }
            }
        }
        self.reindex();
    }

    /// Chains in listing order: built-ins, then user chains sorted by name.
    pub fn chains_listed(&self) -> Vec<&Chain> {
        let mut v: Vec<&Chain> = self.chains.iter().collect();
        v.sort_by(|a, b| match (a.hook, b.hook) {
            (Some(x), Some(y)) => x.cmp(&y),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => a.name.cmp(&b.name),
        });
        v
    }

    /// Number of rules in this table that jump or go to `name`.
    pub fn references(&self, name: &str) -> usize {
        self.chains
            .iter()
            .flat_map(|c| c.rules.iter())
            .filter(|r| r.target.chain_ref().is_some_and(|c| **c == *name))
            .count()
    }

    /// Reference counts of every chain (name -> count), in one pass.
    pub fn reference_counts(&self) -> HashMap<&str, usize> {
        let mut m = HashMap::new();
        for r in self.chains.iter().flat_map(|c| c.rules.iter()) {
            if let Some(n) = r.target.chain_ref() {
                *m.entry(n.as_str()).or_insert(0) += 1;
            }
        }
        m
    }

    /// Validates this table alone (see [`Ruleset::validate`]).
    pub fn validate(&self) -> Result<(), ValidateError> {
        validate::validate_table(self)
    }
}

/// A chain: built-in (with hook, policy and policy counters) or user.
#[derive(Debug, Clone, PartialEq)]
pub struct Chain {
    pub name: String,
    /// `Some` for built-in chains.
    pub hook: Option<Hook>,
    /// `Some` for built-in chains.
    pub policy: Option<Policy>,
    /// Policy counters (built-in chains only; zero for user chains).
    pub counters: Counters,
    /// Shared with the compiled rulesets built from this model (and with
    /// copies of the model): cloning a chain costs a reference count per
    /// rule, not a deep copy. Edit a rule through `Arc::make_mut`.
    pub rules: Vec<Arc<Rule>>,
}

impl Chain {
    pub fn builtin(h: Hook) -> Chain {
        Chain {
            name: h.name().to_string(),
            hook: Some(h),
            policy: Some(Policy::Accept),
            counters: Counters::default(),
            rules: Vec::new(),
        }
    }

    pub fn user(name: &str) -> Chain {
        Chain {
            name: name.to_string(),
            hook: None,
            policy: None,
            counters: Counters::default(),
            rules: Vec::new(),
        }
    }

    pub fn is_builtin(&self) -> bool {
        self.hook.is_some()
    }
}

/// An address match `[!] -s addr/mask`; host order `u32`s, `addr` already
/// masked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AddrMask {
    pub addr: u32,
    pub mask: u32,
    pub invert: bool,
}

impl AddrMask {
    /// True when this matches every address (`0.0.0.0/0`, not inverted).
    pub fn is_any(&self) -> bool {
        self.mask == 0 && !self.invert
    }

    pub fn matches(&self, a: u32) -> bool {
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

/// Connection tracking states (`--ctstate`, `--state`), bit values as the
/// kernel's `XT_CONNTRACK_STATE_BIT` (plus SNAT/DNAT/UNTRACKED).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct CtState(pub u16);

impl CtState {
    pub const INVALID: CtState = CtState(1 << 0);
    pub const ESTABLISHED: CtState = CtState(1 << 1);
    pub const RELATED: CtState = CtState(1 << 2);
    pub const NEW: CtState = CtState(1 << 3);
    pub const UNTRACKED: CtState = CtState(1 << 8);
    pub const SNAT: CtState = CtState(1 << 9);
    pub const DNAT: CtState = CtState(1 << 10);

    /// Names in the order iptables prints them.
    pub const NAMES: [(CtState, &'static str); 7] = [
        (CtState::INVALID, "INVALID"),
        (CtState::NEW, "NEW"),
        (CtState::RELATED, "RELATED"),
        (CtState::ESTABLISHED, "ESTABLISHED"),
        (CtState::UNTRACKED, "UNTRACKED"),
        (CtState::SNAT, "SNAT"),
        (CtState::DNAT, "DNAT"),
    ];

    pub fn contains(self, o: CtState) -> bool {
        self.0 & o.0 == o.0
    }

    pub fn intersects(self, o: CtState) -> bool {
        self.0 & o.0 != 0
    }
}

/// Conntrack status bits (`--ctstatus`), kernel `IPS_*` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct CtStatus(pub u32);

impl CtStatus {
    pub const NONE: CtStatus = CtStatus(0);
    pub const EXPECTED: CtStatus = CtStatus(1 << 0);
    pub const SEEN_REPLY: CtStatus = CtStatus(1 << 1);
    pub const ASSURED: CtStatus = CtStatus(1 << 2);
    pub const CONFIRMED: CtStatus = CtStatus(1 << 3);

    pub const NAMES: [(CtStatus, &'static str); 4] = [
        (CtStatus::EXPECTED, "EXPECTED"),
        (CtStatus::SEEN_REPLY, "SEEN_REPLY"),
        (CtStatus::ASSURED, "ASSURED"),
        (CtStatus::CONFIRMED, "CONFIRMED"),
    ];
}

/// Value/mask pair; matches when `(x & mask) == value` (mark, connmark).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MarkMask {
    pub value: u32,
    pub mask: u32,
    pub invert: bool,
}

/// A `--ctorigsrc`-style address with mask and inversion.
pub type CtAddr = AddrMask;

/// `-m conntrack`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConntrackMatch {
    pub state: Option<(CtState, bool)>,
    pub proto: Option<(u8, bool)>,
    pub orig_src: Option<CtAddr>,
    pub orig_dst: Option<CtAddr>,
    pub repl_src: Option<CtAddr>,
    pub repl_dst: Option<CtAddr>,
    pub orig_src_port: Option<Range16>,
    pub orig_dst_port: Option<Range16>,
    pub repl_src_port: Option<Range16>,
    pub repl_dst_port: Option<Range16>,
    pub status: Option<(CtStatus, bool)>,
    /// `(lo, hi, invert)` seconds.
    pub expire: Option<(u32, u32, bool)>,
    /// `Some(true)` = `--ctdir REPLY`, `Some(false)` = `ORIGINAL`.
    pub dir_reply: Option<bool>,
}

/// Which ports `-m multiport` looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MultiportKind {
    Src,
    Dst,
    Any,
}

/// `-m statistic` mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatisticMode {
    /// iptables stores `round(probability * 2^31)`; the kernel matches when
    /// `(random_u32() & 0x7FFF_FFFF) < threshold` (then applies `invert`).
    Random { threshold: u32 },
    /// Kernel values: `every` is the user's `--every` minus one. The kernel
    /// keeps a counter `c` per rule: `c = if c + 1 > every { 0 } else { c + 1 }`,
    /// and matches when `c == packet` (then applies `invert`).
    Nth { every: u32, packet: u32 },
}

/// Address types for `-m addrtype` (kernel `XT_ADDRTYPE_*` bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct AddrTypes(pub u16);

impl AddrTypes {
    pub const NAMES: [&'static str; 12] = [
        "UNSPEC",
        "UNICAST",
        "LOCAL",
        "BROADCAST",
        "ANYCAST",
        "MULTICAST",
        "BLACKHOLE",
        "UNREACHABLE",
        "PROHIBIT",
        "THROW",
        "NAT",
        "XRESOLVE",
    ];
    pub const LOCAL: AddrTypes = AddrTypes(1 << 2);
}

/// `--ttl-eq/-lt/-gt` (and `! --ttl-eq` = `Ne`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TtlOp {
    Eq,
    Ne,
    Lt,
    Gt,
}

/// `-m recent` command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecentCmd {
    Set,
    Rcheck,
    Update,
    Remove,
}

/// `-m recent`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecentMatch {
    pub cmd: RecentCmd,
    pub invert: bool,
    pub seconds: u32,
    pub reap: bool,
    pub hit_count: u32,
    pub rttl: bool,
    pub name: String,
    /// true = `--rdest` (default `--rsource`).
    pub rdest: bool,
    pub mask: u32,
}

/// One `-m` match, semantic form.
#[derive(Debug, Clone, PartialEq)]
pub enum Match {
    Tcp {
        sport: Option<Range16>,
        dport: Option<Range16>,
        /// (mask, compare, invert): matches when `flags & mask == compare`.
        flags: Option<(u8, u8, bool)>,
        /// (option kind, invert).
        option: Option<(u8, bool)>,
    },
    Udp {
        sport: Option<Range16>,
        dport: Option<Range16>,
    },
    Icmp {
        /// 255 = any.
        icmp_type: u8,
        code_lo: u8,
        code_hi: u8,
        invert: bool,
    },
    Multiport {
        kind: MultiportKind,
        /// Up to 15 ports; a range counts as two.
        ports: Vec<(u16, u16)>,
        invert: bool,
    },
    Conntrack(Box<ConntrackMatch>),
    State {
        states: CtState,
        invert: bool,
    },
    Comment(String),
    Mark(MarkMask),
    Connmark(MarkMask),
    Statistic {
        mode: StatisticMode,
        invert: bool,
    },
    Addrtype {
        src: Option<(AddrTypes, bool)>,
        dst: Option<(AddrTypes, bool)>,
        limit_iface_in: bool,
        limit_iface_out: bool,
    },
    Iprange {
        /// (from, to, invert), host order.
        src: Option<(u32, u32, bool)>,
        dst: Option<(u32, u32, bool)>,
    },
    Limit {
        /// Average interval in 1/10000 s: `10000 * unit_seconds / n` for
        /// `--limit n/unit`.
        avg: u32,
        burst: u32,
    },
    Length(Range16),
    Ttl {
        op: TtlOp,
        value: u8,
    },
    Tcpmss(Range16),
    Recent(Box<RecentMatch>),
    /// `-m mac --mac-source`: source MAC (no Ethernet header on a TUN
    /// device, so it never matches there; kept for ruleset compatibility).
    Mac {
        addr: [u8; 6],
        invert: bool,
    },
}

impl Match {
    /// The module name printed after `-m`.
    pub fn name(&self) -> &'static str {
        match self {
            Match::Tcp { .. } => "tcp",
            Match::Udp { .. } => "udp",
            Match::Icmp { .. } => "icmp",
            Match::Multiport { .. } => "multiport",
            Match::Conntrack(_) => "conntrack",
            Match::State { .. } => "state",
            Match::Comment(_) => "comment",
            Match::Mark(_) => "mark",
            Match::Connmark(_) => "connmark",
            Match::Statistic { .. } => "statistic",
            Match::Addrtype { .. } => "addrtype",
            Match::Iprange { .. } => "iprange",
            Match::Limit { .. } => "limit",
            Match::Length(_) => "length",
            Match::Ttl { .. } => "ttl",
            Match::Tcpmss(_) => "tcpmss",
            Match::Recent(_) => "recent",
            Match::Mac { .. } => "mac",
        }
    }
}

/// REJECT's `--reject-with`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectWith {
    NetUnreachable,
    HostUnreachable,
    PortUnreachable,
    ProtoUnreachable,
    NetProhibited,
    HostProhibited,
    AdminProhibited,
    TcpReset,
}

impl RejectWith {
    pub const ALL: [(RejectWith, &'static str); 8] = [
        (RejectWith::NetUnreachable, "icmp-net-unreachable"),
        (RejectWith::HostUnreachable, "icmp-host-unreachable"),
        (RejectWith::PortUnreachable, "icmp-port-unreachable"),
        (RejectWith::ProtoUnreachable, "icmp-proto-unreachable"),
        (RejectWith::NetProhibited, "icmp-net-prohibited"),
        (RejectWith::HostProhibited, "icmp-host-prohibited"),
        (RejectWith::AdminProhibited, "icmp-admin-prohibited"),
        (RejectWith::TcpReset, "tcp-reset"),
    ];

    pub fn name(self) -> &'static str {
        RejectWith::ALL.iter().find(|(r, _)| *r == self).unwrap().1
    }
}

/// LOG target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogTarget {
    pub prefix: Option<String>,
    /// syslog level 0..=7; default 4 (warning).
    pub level: u8,
    /// Kernel `XT_LOG_*` flags: 1 tcp-sequence, 2 tcp-options, 4 ip-options,
    /// 8 uid.
    pub flags: u8,
}

/// NAT range of DNAT/SNAT (`--to-destination a[-b][:p[-q][/base]]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NatRange {
    /// None: keep the address (only ports given, e.g. `:80`).
    pub addrs: Option<(u32, u32)>,
    pub ports: Option<(u16, u16)>,
    /// `/base` (port offset base, kernel NF_NAT_RANGE_PROTO_OFFSET).
    pub base_port: Option<u16>,
}

/// NAT flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NatFlags {
    pub random: bool,
    pub random_fully: bool,
    pub persistent: bool,
}

/// CONNMARK target modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnmarkTarget {
    /// ctmark = (ctmark & !mask) ^ value.
    SetXmark { value: u32, mask: u32 },
    /// ctmark = (ctmark & !ctmask) ^ (nfmark & nfmask).
    Save { nfmask: u32, ctmask: u32 },
    /// nfmark = (nfmark & !nfmask) ^ (ctmark & ctmask).
    Restore { nfmask: u32, ctmask: u32 },
}

/// CT target.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CtTarget {
    pub notrack: bool,
    /// `--helper NAME`.
    pub helper: Option<String>,
    /// `--timeout NAME` (a timeout policy name).
    pub timeout: Option<String>,
    pub zone: Option<u16>,
    /// Event bits in the order of `CT_EVENT_NAMES`.
    pub ctevents: u32,
    pub expevents: u32,
}

pub const CT_EVENT_NAMES: [&str; 8] = [
    "new",
    "related",
    "destroy",
    "reply",
    "assured",
    "protoinfo",
    "helper",
    "mark",
];

/// A rule's target.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// No `-j`: the rule only counts, evaluation continues.
    None,
    Accept,
    Drop,
    Return,
    /// `-j CHAIN`: call a user chain.
    Jump(ChainRef),
    /// `-g CHAIN`: go to a user chain (RETURN from it returns to the caller
    /// of the current chain).
    Goto(ChainRef),
    Reject(RejectWith),
    Log(LogTarget),
    /// MARK: nfmark = (nfmark & !mask) ^ value.
    Mark {
        value: u32,
        mask: u32,
    },
    Connmark(ConnmarkTarget),
    Dnat {
        range: NatRange,
        flags: NatFlags,
    },
    Snat {
        range: NatRange,
        flags: NatFlags,
    },
    Masquerade {
        ports: Option<(u16, u16)>,
        flags: NatFlags,
    },
    Redirect {
        ports: Option<(u16, u16)>,
        flags: NatFlags,
    },
    Notrack,
    /// Boxed, as the rare large variants are: keeps `Target` (and so
    /// every rule of a 140,000-rule ruleset) small.
    Ct(Box<CtTarget>),
    /// `--set-mss N`.
    TcpmssSet(u16),
    /// `--clamp-mss-to-pmtu`.
    TcpmssClamp,
    /// NFLOG: hand the packet to a netlink log group.
    Nflog(Box<NflogTarget>),
    /// `CHECKSUM --checksum-fill`: complete a partial checksum.
    ChecksumFill,
}

/// The chain a jump or goto names, and a hint where to find it: the index
/// the chain had when the rule was put into its table. [`Table::resolve`]
/// tries the hint (comparing the name) before the name index. A 140,000-rule
/// kube ruleset has 100,000 jumps, each resolved when the restore appends the
/// rule, again when the table is validated and again when it is compiled;
/// in a 50,000-chain index each lookup by name is a cache miss (measured:
/// a fifth of a restore's CPU), while the hinted chains lie in rule order.
/// A stale hint (chains removed or renamed since) costs one name
/// comparison, never a wrong answer. Equality and printing see only the
/// name.
#[derive(Clone)]
pub struct ChainRef {
    name: Box<str>,
    hint: u32,
}

impl ChainRef {
    const NO_HINT: u32 = u32::MAX;

    pub fn new(name: &str) -> ChainRef {
        ChainRef {
            name: name.into(),
            hint: Self::NO_HINT,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.name
    }

    /// Remembers where the chain was found (see [`Table::resolve`]).
    pub fn set_hint(&mut self, index: usize) {
        self.hint = u32::try_from(index).unwrap_or(Self::NO_HINT);
    }

    fn hint(&self) -> usize {
        self.hint as usize
    }
}

impl std::ops::Deref for ChainRef {
    type Target = str;
    fn deref(&self) -> &str {
        &self.name
    }
}

impl PartialEq for ChainRef {
    fn eq(&self, o: &ChainRef) -> bool {
        self.name == o.name
    }
}

impl Eq for ChainRef {}

impl fmt::Debug for ChainRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.name, f)
    }
}

impl fmt::Display for ChainRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl From<&str> for ChainRef {
    fn from(s: &str) -> ChainRef {
        ChainRef::new(s)
    }
}

impl From<String> for ChainRef {
    fn from(s: String) -> ChainRef {
        ChainRef {
            name: s.into_boxed_str(),
            hint: Self::NO_HINT,
        }
    }
}

/// NFLOG target.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NflogTarget {
    pub group: u16,
    pub prefix: Option<String>,
    /// `--nflog-range` / `--nflog-size` (copy length); `size` flag says which.
    pub len: Option<(u32, bool)>,
    /// Default 1.
    pub threshold: u16,
}

impl Target {
    /// The chain a jump or goto names.
    pub fn chain_ref(&self) -> Option<&ChainRef> {
        match self {
            Target::Jump(c) | Target::Goto(c) => Some(c),
            _ => None,
        }
    }

    /// [`Target::chain_ref`], to set its hint or rename it.
    pub fn chain_ref_mut(&mut self) -> Option<&mut ChainRef> {
        match self {
            Target::Jump(c) | Target::Goto(c) => Some(c),
            _ => None,
        }
    }

    /// Name printed after `-j`/`-g` (empty for none).
    pub fn name(&self) -> &str {
        match self {
            Target::None => "",
            Target::Accept => "ACCEPT",
            Target::Drop => "DROP",
            Target::Return => "RETURN",
            Target::Jump(c) | Target::Goto(c) => c,
            Target::Reject(_) => "REJECT",
            Target::Log(_) => "LOG",
            Target::Mark { .. } => "MARK",
            Target::Connmark(_) => "CONNMARK",
            Target::Dnat { .. } => "DNAT",
            Target::Snat { .. } => "SNAT",
            Target::Masquerade { .. } => "MASQUERADE",
            Target::Redirect { .. } => "REDIRECT",
            Target::Notrack => "NOTRACK",
            Target::Ct(_) => "CT",
            Target::TcpmssSet(_) | Target::TcpmssClamp => "TCPMSS",
            Target::Nflog(_) => "NFLOG",
            Target::ChecksumFill => "CHECKSUM",
        }
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
    fn chain_index_survives_hash_collisions_and_direct_edits() {
        let mut t = Table::new(TableKind::Nat);
        for i in 0..1000 {
            assert!(t.add_user_chain(&format!("KUBE-SEP-{i:016}")));
        }
        let pos = |t: &Table, n: &str| t.chains.iter().position(|c| c.name == n);
        for i in (0..1000).step_by(37) {
            let n = format!("KUBE-SEP-{i:016}");
            assert_eq!(t.chain_index(&n), pos(&t, &n));
        }
        assert_eq!(t.chain_index("KUBE-NONE"), None);
        // A collision: make "B"'s hash point at "A", as if "A" had been
        // indexed first under the same hash; "B" then lives in `spill`.
        let (a, b) = ("KUBE-SEP-0000000000000003", "KUBE-SEP-0000000000000004");
        let (pa, pb) = (pos(&t, a).unwrap(), pos(&t, b).unwrap());
        t.index.insert(name_hash(b), pa);
        t.spill.insert(b.to_string(), pb);
        assert_eq!(t.chain_index(a), Some(pa));
        assert_eq!(t.chain_index(b), Some(pb));
        // An index gone stale (chains reordered without reindex): found by
        // the scan, and right again after reindex.
        t.chains.swap(pa, pb);
        assert_eq!(t.chain_index(a), Some(pb));
        assert_eq!(t.chain_index(b), Some(pa));
        t.reindex();
        assert!(t.spill.is_empty(), "{:?}", t.spill);
        assert_eq!(t.chain_index(a), Some(pb));
        // A chain pushed directly: the counts differ, so a miss is not
        // trusted and the scan finds it.
        t.chains.push(Chain::user("PUSHED"));
        assert_eq!(t.chain_index("PUSHED"), Some(t.chains.len() - 1));
    }

    #[test]
    fn a_jump_hint_is_checked_by_name_and_a_stale_one_is_only_a_miss() {
        let mut t = Table::new(TableKind::Filter);
        for n in ["A", "B", "C"] {
            assert!(t.add_user_chain(n));
        }
        let (b, c) = (t.chain_index("B").unwrap(), t.chain_index("C").unwrap());
        let mut j = ChainRef::new("C");
        assert_eq!(t.resolve(&j, &mut NO_RECENT.clone()), Some(c));
        j.set_hint(c);
        assert_eq!(t.resolve(&j, &mut NO_RECENT.clone()), Some(c));
        // The hint points at another chain, past the end, or at a position
        // that shifted when a chain before it was removed.
        for wrong in [b, 1000, usize::MAX] {
            j.set_hint(wrong);
            assert_eq!(t.resolve(&j, &mut NO_RECENT.clone()), Some(c));
        }
        j.set_hint(c);
        t.remove_chain(t.chain_index("A").unwrap());
        assert_eq!(t.resolve(&j, &mut NO_RECENT.clone()), Some(c - 1));
        t.remove_chain(c - 1);
        assert_eq!(t.resolve(&j, &mut NO_RECENT.clone()), None);
        // A restore leaves every jump hinted at its chain.
        let mut rs = Ruleset::new();
        let text =
            "*filter\n:X - [0:0]\n:Y - [0:0]\n-A INPUT -j Y\n-A X -g Y\n-A INPUT -j X\nCOMMIT\n";
        crate::syntax::restore(&mut rs, text, Default::default()).unwrap();
        let t = rs.table(TableKind::Filter);
        let jumps: Vec<(usize, &str)> = t
            .chains
            .iter()
            .flat_map(|c| c.rules.iter())
            .filter_map(|r| r.target.chain_ref())
            .map(|j| (j.hint(), j.as_str()))
            .collect();
        assert_eq!(jumps.len(), 3);
        for (h, name) in jumps {
            assert_eq!(t.chains[h].name, name);
        }
    }

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
        assert!(std::mem::size_of::<Rule>() <= 128);
    }
}
