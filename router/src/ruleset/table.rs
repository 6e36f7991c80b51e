//! One table's chains and the lookup of a chain by name: [`Table`] with
//! its name index (probed by [`name_hash`](crate::hash::name_hash), colliding names in a spill
//! map), the edit operations iptables commands perform on chains,
//! [`Chain`], and [`ChainRef`], a jump's chain name with the hint where
//! the chain was last found.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use super::{validate, Counters, Family, Hook, Policy, Rule, TableKind, ValidateError};
use crate::hash::{name_hash, NameHash, PreHashed};

/// One table: its chains, built-in chains first (hook order), then user
/// chains in creation order. Printers sort user chains by name, as
/// iptables-nft lists them.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub kind: TableKind,
    /// The family of the ruleset it belongs to (its printers' addresses).
    pub family: Family,
    /// Edit through the methods, or call [`Table::reindex`] after changing
    /// names or order directly.
    pub chains: Vec<Chain>,
    /// Chain positions by the name's 64-bit hash ([`name_hash`](crate::hash::name_hash)): a probe
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

impl Table {
    /// An empty IPv4 table with its built-in chains.
    pub fn new(kind: TableKind) -> Table {
        Table::new_family(kind, Family::V4)
    }

    /// An empty table of `family` with its built-in chains.
    pub fn new_family(kind: TableKind, family: Family) -> Table {
        let mut t = Table {
            kind,
            family,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ruleset::Ruleset;

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
}
