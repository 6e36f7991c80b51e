//! The compiled, index-based form of a [`Ruleset`] the fast path walks.
//!
//! Compilation happens once per ruleset replacement, off the packet path:
//!
//! * Rules are shared with the model, not copied: a [`CRule`] holds the
//!   model's `Arc<Rule>`, so compiling 140,000 rules allocates no rule and a
//!   compiled ruleset costs its indices, counters and keyed-run maps. The
//!   model ([`CompiledRuleset::source`]) is kept whole for listings.
//! * Chains are resolved to indices; `-j`/`-g` targets carry the chain index.
//! * Every rule and every built-in policy gets a slot in a counter array that
//!   is **per worker** (`counters[worker][slot]`), so workers never contend on
//!   a cache line for a hot rule; listings sum the rows.
//! * **Keyed runs.** A run of consecutive rules in one chain that all pin the
//!   same kind of key — `-d A/32 -p tcp|udp --dport P` (KUBE-SERVICES),
//!   `-d A/32`, or `-s A/32` — becomes a hash map from key to the ascending
//!   list of rule positions having that key. A rule in such a run can only
//!   match packets whose key equals its own, so the first rule of the run that
//!   matches a packet is the first one, at or after the current position, in
//!   the packet key's list (each candidate is still checked in full, so other
//!   conditions on a keyed rule stay exact). Packets whose key is in no list
//!   skip the run in one step. The cost per packet is one hash lookup per run,
//!   not one comparison per rule: 10,000 services cost what 10 do. Counters,
//!   first-match order, jumps that RETURN into the middle of a run: all as
//!   the linear walk.
//! * Per-rule state the kernel keeps (statistic nth counters, limit buckets)
//!   lives here, next to the rule.
//! * Counters across a replacement: [`CompiledRuleset::carry_counters`] moves
//!   the live counts of what a change kept (tables it did not touch, rules
//!   that are still the same objects) into the new model, by identity, in
//!   one pass; [`CompiledRuleset::snapshot`] copies only what counted.

use crate::ruleset::{
    Counters, Hook, Match, Policy, Rule, Ruleset, StatisticMode, TableKind, Target,
};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Smallest run worth a hash map.
const MIN_RUN: usize = 6;

/// A rule's target with chain names resolved to indices.
#[derive(Debug, Clone)]
pub enum CTarget {
    None,
    Jump(u32),
    Goto(u32),
    /// Any other target: see the rule's `target` for parameters.
    Other,
}

/// Kernel-side state of stateful matches.
#[derive(Debug, Default)]
pub struct RuleState {
    /// statistic --mode nth counter.
    pub nth: AtomicU32,
    /// limit: remaining credit in nanoseconds and the time of the last update.
    pub limit: Mutex<(u64, u64)>,
}

#[derive(Debug)]
pub struct CRule {
    /// Shared with the model the ruleset was compiled from.
    pub rule: Arc<Rule>,
    pub target: CTarget,
    /// Slot in the counter rows.
    pub slot: u32,
    pub state: RuleState,
}

/// The key kinds a keyed run can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    DstProtoPort,
    Dst,
    Src,
}

/// Packet key for a run: (address, proto, port); unused parts zero.
pub type RunKey = (u128, u8, u16);

#[derive(Debug)]
pub struct KeyedRun {
    pub start: u32,
    pub end: u32,
    pub kind: KeyKind,
    pub map: HashMap<RunKey, Vec<u32>>,
}

#[derive(Debug)]
pub struct CChain {
    pub name: String,
    pub policy: Option<Policy>,
    pub policy_slot: u32,
    pub rules: Vec<CRule>,
    /// Keyed runs sorted by start; `run_at[i]` is the run covering rule i.
    pub runs: Vec<KeyedRun>,
    pub run_at: Vec<u32>,
}

pub const NO_RUN: u32 = u32::MAX;

#[derive(Debug)]
pub struct CTable {
    pub kind: TableKind,
    pub chains: Vec<CChain>,
    /// Chain index of each hook's built-in chain, by `Hook as usize`.
    pub hook_chain: [Option<u32>; 5],
}

/// Counter rows, one per worker: `[packets, bytes]` per slot.
#[derive(Debug)]
pub struct CounterRows {
    slots: usize,
    /// Number of worker rows (kept, not divided out per bump: a division
    /// per counter bump cost ~5 % of the established-flow path).
    rows: usize,
    cells: Box<[AtomicU64]>,
}

impl CounterRows {
    fn new(workers: usize, slots: usize) -> Self {
        let rows = workers.max(1);
        let n = rows * slots * 2;
        CounterRows {
            slots,
            rows,
            cells: (0..n).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    #[inline]
    pub fn bump(&self, worker: usize, slot: u32, bytes: u64) {
        let w = if worker < self.rows { worker } else { 0 };
        let i = (w * self.slots + slot as usize) * 2;
        if let (Some(p), Some(b)) = (self.cells.get(i), self.cells.get(i + 1)) {
            // Each worker owns its row: relaxed load+store is enough and
            // cheaper than a locked add; the rare foreign writer (worker index
            // out of range) shares row 0 and may lose an increment to a race.
            p.store(p.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
            b.store(b.load(Ordering::Relaxed) + bytes, Ordering::Relaxed);
        }
    }

    /// Sum over workers.
    pub fn get(&self, slot: u32) -> Counters {
        let mut c = Counters::default();
        if self.slots == 0 {
            return c;
        }
        for w in 0..self.rows {
            let i = (w * self.slots + slot as usize) * 2;
            c.packets += self.cells[i].load(Ordering::Relaxed);
            c.bytes += self.cells[i + 1].load(Ordering::Relaxed);
        }
        c
    }

    /// Whether no worker counted anything in `slot`.
    pub fn is_zero(&self, slot: u32) -> bool {
        if self.slots == 0 {
            return true;
        }
        (0..self.rows).all(|w| {
            let i = (w * self.slots + slot as usize) * 2;
            self.cells
                .get(i)
                .is_none_or(|p| p.load(Ordering::Relaxed) == 0)
        })
    }

    /// Zeroes one slot in every row.
    pub fn zero(&self, slot: u32) {
        for w in 0..self.rows {
            let i = (w * self.slots + slot as usize) * 2;
            self.cells[i].store(0, Ordering::Relaxed);
            self.cells[i + 1].store(0, Ordering::Relaxed);
        }
    }
}

/// What a hook of a table holds, flattened so the common case (a built-in
/// chain with no rules) costs one load.
#[derive(Debug, Clone, Copy, Default)]
pub struct HookInfo {
    /// The built-in chain, if the table has this hook.
    pub chain: Option<u32>,
    /// The chain has no rules: only its policy applies.
    pub empty: bool,
    pub policy_drop: bool,
    pub policy_slot: u32,
}

/// A ruleset ready for the fast path.
#[derive(Debug)]
pub struct CompiledRuleset {
    /// `hooks[table][hook]`.
    pub hooks: [[HookInfo; 5]; 5],
    /// The model it was compiled from, with the counters it was loaded with
    /// (the base to which live counts are added).
    pub source: Ruleset,
    pub tables: Vec<CTable>,
    pub counters: CounterRows,
    /// Counters each slot started from (restored `[p:b]`, or carried over);
    /// only as long as the last slot that started from non-zero (a restore
    /// without counters allocates none of it).
    base: Vec<Counters>,
}

impl CompiledRuleset {
    /// Compiles a validated ruleset for `workers` worker threads.
    pub fn compile(source: Ruleset, workers: usize) -> CompiledRuleset {
        Self::compile_with(source, workers, true)
    }

    /// As [`compile`](Self::compile); `keyed_runs: false` keeps every chain a
    /// plain linear walk (the reference the keyed form is tested against).
    pub fn compile_with(source: Ruleset, workers: usize, keyed_runs: bool) -> CompiledRuleset {
        let mut nslots = 0u32;
        let mut base = Vec::new();
        let mut tables = Vec::new();
        let host = source.family().host_mask();
        for t in source.tables() {
            let mut chains = Vec::with_capacity(t.chains.len());
            let mut hook_chain = [None; 5];
            let mut recent = crate::ruleset::NO_RECENT;
            for (ci, ch) in t.chains.iter().enumerate() {
                if let Some(h) = ch.hook {
                    hook_chain[h as usize] = Some(ci as u32);
                }
                let policy_slot = nslots;
                nslots += 1;
                set_base(&mut base, policy_slot, ch.counters);
                let rules: Vec<CRule> = ch
                    .rules
                    .iter()
                    .map(|r| {
                        let slot = nslots;
                        nslots += 1;
                        set_base(&mut base, slot, r.counters);
                        let mut resolve = |name: &crate::ruleset::ChainRef| {
                            t.resolve(name, &mut recent).unwrap_or(0) as u32
                        };
                        let target = match &r.target {
                            Target::None => CTarget::None,
                            Target::Jump(c) => CTarget::Jump(resolve(c)),
                            Target::Goto(c) => CTarget::Goto(resolve(c)),
                            _ => CTarget::Other,
                        };
                        let state = RuleState::default();
                        for m in &r.matches {
                            if let Match::Statistic {
                                mode: StatisticMode::Nth { every, packet },
                                ..
                            } = m
                            {
                                // libxt_statistic starts the kernel's counter
                                // at every - packet (every already minus
                                // one), so `--every 3 --packet 0` matches the
                                // 1st, 4th, 7th... packet.
                                state
                                    .nth
                                    .store(every.saturating_sub(*packet), Ordering::Relaxed);
                            }
                        }
                        CRule {
                            rule: r.clone(),
                            target,
                            slot,
                            state,
                        }
                    })
                    .collect();
                let (runs, run_at) = if keyed_runs {
                    build_runs(&rules, host)
                } else {
                    (Vec::new(), vec![NO_RUN; rules.len()])
                };
                chains.push(CChain {
                    name: ch.name.clone(),
                    policy: ch.policy,
                    policy_slot,
                    rules,
                    runs,
                    run_at,
                });
            }
            tables.push(CTable {
                kind: t.kind,
                chains,
                hook_chain,
            });
        }
        let counters = CounterRows::new(workers, nslots as usize);
        let mut hooks = [[HookInfo::default(); 5]; 5];
        for t in &tables {
            for (h, ci) in t.hook_chain.iter().enumerate() {
                if let Some(ci) = *ci {
                    let ch = &t.chains[ci as usize];
                    hooks[t.kind as usize][h] = HookInfo {
                        chain: Some(ci),
                        empty: ch.rules.is_empty(),
                        policy_drop: ch.policy == Some(Policy::Drop),
                        policy_slot: ch.policy_slot,
                    };
                }
            }
        }
        CompiledRuleset {
            hooks,
            source,
            tables,
            counters,
            base,
        }
    }

    pub fn table(&self, kind: TableKind) -> &CTable {
        // `tables` is built in `TableKind::ALL` order, which is declaration order.
        &self.tables[kind as usize]
    }

    /// Built-in chain of `hook` in `kind`, if the table has that hook.
    pub fn hook_chain(&self, kind: TableKind, hook: Hook) -> Option<u32> {
        self.hooks[kind as usize][hook as usize].chain
    }

    /// The flattened facts of `kind`'s `hook`.
    #[inline]
    pub fn hook(&self, kind: TableKind, hook: Hook) -> HookInfo {
        self.hooks[kind as usize][hook as usize]
    }

    /// Current counters of a slot: base plus live.
    pub fn slot_counters(&self, slot: u32) -> Counters {
        let live = self.counters.get(slot);
        let b = self.base.get(slot as usize).copied().unwrap_or_default();
        Counters {
            packets: b.packets + live.packets,
            bytes: b.bytes + live.bytes,
        }
    }

    /// The model with live counters filled in, for listings and saves.
    ///
    /// The copy shares everything with the model but the tables, and in them
    /// the rules, whose counters moved since this ruleset was installed.
    pub fn snapshot(&self) -> Ruleset {
        let mut rs = self.source.clone();
        for kind in TableKind::ALL {
            self.live_table_into(&mut rs, kind);
        }
        rs
    }

    /// Writes the live counters of table `kind` into `rs`, which holds that
    /// table as this ruleset was compiled from it (same chains and rules).
    fn live_table_into(&self, rs: &mut Ruleset, kind: TableKind) {
        let ct = self.table(kind);
        let moved = ct.chains.iter().any(|c| {
            !self.counters.is_zero(c.policy_slot)
                || c.rules.iter().any(|r| !self.counters.is_zero(r.slot))
        });
        if !moved {
            return;
        }
        let t = rs.table_mut_unmarked(kind);
        for (cc, ch) in ct.chains.iter().zip(t.chains.iter_mut()) {
            if !self.counters.is_zero(cc.policy_slot) {
                ch.counters = self.slot_counters(cc.policy_slot);
            }
            for (cr, r) in cc.rules.iter().zip(ch.rules.iter_mut()) {
                if !self.counters.is_zero(cr.slot) {
                    Arc::make_mut(r).counters = self.slot_counters(cr.slot);
                }
            }
        }
    }

    /// After a restore built `rs` from this ruleset's model (`rs` started as
    /// a copy of [`source`](Self::source)), carries the live counters over to
    /// what stayed: tables the restore did not name (still shared with the
    /// model), and with `noflush`, the rules of named tables that stayed
    /// (the same rule objects as here; found by identity, one hash lookup
    /// per rule) and the policy counters the input did not set.
    pub fn carry_counters(&self, rs: &mut Ruleset, noflush: bool) {
        for kind in TableKind::ALL {
            if rs.shares_table(&self.source, kind) {
                self.live_table_into(rs, kind);
                continue;
            }
            if !noflush || !rs.is_present(kind) {
                continue;
            }
            let ct = self.table(kind);
            let old = self.source.table(kind);
            let mut by_rule: HashMap<*const Rule, u32> = HashMap::new();
            for cr in ct.chains.iter().flat_map(|c| c.rules.iter()) {
                if !self.counters.is_zero(cr.slot) {
                    by_rule.insert(Arc::as_ptr(&cr.rule), cr.slot);
                }
            }
            let t = rs.table_mut_unmarked(kind);
            for ch in t.chains.iter_mut() {
                if let Some(h) = ch.hook {
                    if let Some(ci) = ct.hook_chain[h as usize] {
                        let cc = &ct.chains[ci as usize];
                        if ch.counters == old.chains[ci as usize].counters
                            && !self.counters.is_zero(cc.policy_slot)
                        {
                            ch.counters = self.slot_counters(cc.policy_slot);
                        }
                    }
                }
                if by_rule.is_empty() {
                    continue;
                }
                for r in ch.rules.iter_mut() {
                    if let Some(&slot) = by_rule.get(&Arc::as_ptr(r)) {
                        Arc::make_mut(r).counters = self.slot_counters(slot);
                    }
                }
            }
        }
    }
}

/// Records a slot's starting counters; zero ones cost nothing.
fn set_base(base: &mut Vec<Counters>, slot: u32, c: Counters) {
    if c != Counters::default() {
        let i = slot as usize;
        if base.len() <= i {
            base.resize(i + 1, Counters::default());
        }
        base[i] = c;
    }
}

/// The key of `r` under `kind`, if `r` pins one (`host`: the family's
/// host mask, `/32` or `/128`).
fn rule_key(r: &Rule, kind: KeyKind, host: u128) -> Option<RunKey> {
    match kind {
        KeyKind::Src => (r.src.mask == host && !r.src.invert).then_some((r.src.addr, 0, 0)),
        KeyKind::Dst => (r.dst.mask == host && !r.dst.invert).then_some((r.dst.addr, 0, 0)),
        KeyKind::DstProtoPort => {
            if r.dst.mask != host || r.dst.invert || r.proto_invert {
                return None;
            }
            if r.proto != 6 && r.proto != 17 {
                return None;
            }
            let port = r.matches.iter().find_map(|m| match m {
                Match::Tcp { dport: Some(d), .. } | Match::Udp { dport: Some(d), .. }
                    if !d.invert && d.lo == d.hi =>
                {
                    Some(d.lo)
                }
                _ => None,
            })?;
            Some((r.dst.addr, r.proto, port))
        }
    }
}

fn build_runs(rules: &[CRule], host: u128) -> (Vec<KeyedRun>, Vec<u32>) {
    let mut runs = Vec::new();
    let mut run_at = vec![NO_RUN; rules.len()];
    let mut i = 0;
    while i < rules.len() {
        let mut best: Option<(KeyKind, usize)> = None;
        for kind in [KeyKind::DstProtoPort, KeyKind::Dst, KeyKind::Src] {
            let len = rules[i..]
                .iter()
                .take_while(|r| rule_key(&r.rule, kind, host).is_some())
                .count();
            if len >= MIN_RUN && best.is_none_or(|(_, l)| len > l) {
                best = Some((kind, len));
            }
        }
        match best {
            Some((kind, len)) => {
                let mut map: HashMap<RunKey, Vec<u32>> = HashMap::with_capacity(len);
                for (j, r) in rules[i..i + len].iter().enumerate() {
                    if let Some(k) = rule_key(&r.rule, kind, host) {
                        map.entry(k).or_default().push((i + j) as u32);
                    }
                }
                let idx = runs.len() as u32;
                for slot in run_at.iter_mut().skip(i).take(len) {
                    *slot = idx;
                }
                runs.push(KeyedRun {
                    start: i as u32,
                    end: (i + len) as u32,
                    kind,
                    map,
                });
                i += len;
            }
            None => i += 1,
        }
    }
    (runs, run_at)
}
