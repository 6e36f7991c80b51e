//! Rule evaluation: one table's chain walk for one packet, as `ipt_do_table`.
//!
//! Semantics kept from the kernel: rules are tried in order, the first whose
//! every condition holds has its counters bumped and its target run; `-j`
//! pushes a return point, `-g` does not; RETURN (or falling off a user chain)
//! pops, and falling off (or RETURN from) a built-in chain applies its policy
//! and bumps the policy counters. Non-terminal targets (LOG, MARK, CONNMARK,
//! NOTRACK, CT, TCPMSS) act and continue.

use super::compile::{CChain, CRule, CTarget, CompiledRuleset, KeyKind, RunKey, NO_RUN};
use crate::clock::Timestamp;
use crate::ruleset::{
    AddrTypes, ConnmarkTarget, ConntrackMatch, CtStateSet, Hook, Match, MultiportKind, Policy,
    RecentCmd, RecentMatch, RejectWith, StatisticMode, TableKind, Target, TtlOp,
};
use crate::wire::PacketRepr;
use std::collections::HashMap;
use std::sync::Mutex;

/// Connection-tracking facts a rule can look at.
#[derive(Debug, Clone, Copy, Default)]
pub struct CtInfo {
    /// INVALID / NEW / ESTABLISHED / RELATED / UNTRACKED, plus SNAT / DNAT.
    pub state: CtStateSet,
    /// IPS_* bits.
    pub status: u32,
    pub proto: u8,
    /// (src, dst, sport, dport) of each direction, host order.
    pub orig: (u32, u32, u16, u16),
    pub reply: (u32, u32, u16, u16),
    pub dir_reply: bool,
    /// Seconds until the entry expires.
    pub expires: u32,
}

/// The packet's [`CtInfo`], computed on first use: most walks never look
/// at the connection, and reading its tuples costs a dozen atomic loads.
pub struct LazyCt<'a> {
    state: std::cell::OnceCell<Option<CtStateSet>>,
    full: std::cell::OnceCell<Option<CtInfo>>,
    make_state: &'a dyn Fn() -> Option<CtStateSet>,
    make_full: &'a dyn Fn() -> Option<CtInfo>,
}

impl<'a> LazyCt<'a> {
    /// `make_state` gives the state bits alone (a `--ctstate` test needs
    /// no tuples); `make_full` everything. `None`: no connection (INVALID).
    pub fn new(
        make_state: &'a dyn Fn() -> Option<CtStateSet>,
        make_full: &'a dyn Fn() -> Option<CtInfo>,
    ) -> Self {
        LazyCt {
            state: std::cell::OnceCell::new(),
            full: std::cell::OnceCell::new(),
            make_state,
            make_full,
        }
    }

    /// The state bits known (they cost one load: computed up front, no
    /// call through `dyn` per `--ctstate` test), the rest on first use.
    pub fn with_state(
        state: Option<CtStateSet>,
        make_full: &'a dyn Fn() -> Option<CtInfo>,
    ) -> Self {
        let cell = std::cell::OnceCell::new();
        let _ = cell.set(state);
        LazyCt {
            state: cell,
            full: std::cell::OnceCell::new(),
            make_state: &|| None,
            make_full,
        }
    }

    /// Already known facts (tests, callers that have them at hand).
    pub fn ready(info: Option<CtInfo>) -> Self {
        let state = std::cell::OnceCell::new();
        let _ = state.set(info.map(|i| i.state));
        let full = std::cell::OnceCell::new();
        let _ = full.set(info);
        LazyCt {
            state,
            full,
            make_state: &|| None,
            make_full: &|| None,
        }
    }

    pub fn get(&self) -> Option<&CtInfo> {
        self.full.get_or_init(|| (self.make_full)()).as_ref()
    }

    pub fn state(&self) -> Option<CtStateSet> {
        if let Some(Some(full)) = self.full.get() {
            return Some(full.state);
        }
        *self.state.get_or_init(|| (self.make_state)())
    }
}

/// Header fields of the packet being evaluated, extracted once.
#[derive(Debug, Clone)]
pub struct PacketFields<'a> {
    /// Host order, an IPv4 address zero-extended (the ruleset model's
    /// form, so rules compare without conversion).
    pub src: u128,
    pub dst: u128,
    pub proto: u8,
    /// Fragment offset (in 8-byte units) is nonzero.
    pub later_fragment: bool,
    pub len: u16,
    pub ttl: u8,
    pub tos: u8,
    pub id: u16,
    pub df: bool,
    /// L4 header present (first fragment with enough bytes).
    pub has_l4: bool,
    pub sport: u16,
    pub dport: u16,
    pub tcp_flags: u8,
    pub icmp_type: u8,
    pub icmp_code: u8,
    /// The L4 header and payload, as far as the packet holds them.
    pub l4: &'a [u8],
    /// The whole packet.
    pub raw: &'a [u8],
    pub in_if: &'a str,
    pub out_if: &'a str,
}

impl<'a> PacketFields<'a> {
    /// The fields of the packet `repr` describes (the pipeline's one
    /// parse, kept in step with NAT and the TTL decrement): no header byte
    /// is read here. `pkt` is the packet itself (LOG, TCP options).
    /// Inlined: built in place, not copied out of a call (a
    /// store-forwarding stall per walk).
    #[inline]
    pub fn from_repr(
        repr: &PacketRepr,
        pkt: &'a [u8],
        in_if: &'a str,
        out_if: &'a str,
    ) -> PacketFields<'a> {
        let ip = repr.v4();
        let l4 = &repr.l4;
        PacketFields {
            src: u128::from(ip.src),
            dst: u128::from(ip.dst),
            proto: ip.proto,
            later_fragment: ip.frag_offset_units() != 0,
            len: ip.total_len,
            ttl: ip.ttl,
            tos: ip.tos,
            id: ip.ident,
            df: ip.dont_frag(),
            has_l4: l4.present,
            sport: l4.sport,
            dport: l4.dport,
            tcp_flags: l4.tcp_flags,
            icmp_type: l4.icmp_type,
            icmp_code: l4.icmp_code,
            l4: repr.l4_bytes(pkt),
            raw: pkt,
            in_if,
            out_if,
        }
    }

    /// Describes and extracts an IPv4 packet on its own (the tests' way in;
    /// the pipeline builds its fields with [`PacketFields::from_repr`]):
    /// `None` unless the header is structurally sound
    /// ([`PacketRepr::parse`]). Missing L4 bytes leave `has_l4` false;
    /// nothing here can panic.
    #[cfg(test)]
    pub(crate) fn parse(
        pkt: &'a [u8],
        in_if: &'a str,
        out_if: &'a str,
    ) -> Option<PacketFields<'a>> {
        let repr = PacketRepr::parse(pkt).ok()?;
        Some(Self::from_repr(&repr, pkt, in_if, out_if))
    }

    /// TCP options bytes (empty if none or malformed).
    fn tcp_options(&self) -> &'a [u8] {
        if self.proto != 6 || !self.has_l4 {
            return &[];
        }
        let doff = ((self.l4[12] >> 4) as usize) * 4;
        if doff < 20 || doff > self.l4.len() {
            return &[];
        }
        &self.l4[20..doff]
    }

    /// Iterates (kind, data) over TCP options; stops at malformed input.
    fn tcp_option(&self, want: u8) -> Option<&'a [u8]> {
        let mut o = self.tcp_options();
        while let Some(&kind) = o.first() {
            match kind {
                0 => return None,
                1 => o = &o[1..],
                _ => {
                    let len = *o.get(1)? as usize;
                    if len < 2 || len > o.len() {
                        return None;
                    }
                    if kind == want {
                        return Some(&o[2..len]);
                    }
                    o = &o[len..];
                }
            }
        }
        None
    }
}

/// Where the walk gets facts beyond the packet.
pub trait Env {
    /// `-m addrtype` type bits of `addr`; `iface` limits LOCAL to addresses
    /// of that interface (`--limit-iface-in/out`).
    fn addr_type(&self, addr: u32, iface: Option<&str>) -> AddrTypes;
    /// A uniformly random u32 (statistic --mode random, NAT --random).
    fn random_u32(&mut self) -> u32;
    /// A LOG target fired.
    fn log(&mut self, target: &crate::ruleset::LogTarget, pkt: &PacketFields<'_>, mark: u32);
}

/// `-m recent` lists, shared by all workers; kept across ruleset swaps as the
/// kernel keeps them by name.
#[derive(Debug, Default)]
pub struct RecentTables {
    lists: Mutex<HashMap<String, HashMap<u128, Vec<Timestamp>>>>,
}

/// Per-list capacity as the kernel's `ip_pkt_list_tot` default.
const RECENT_PKTS: usize = 20;

impl RecentTables {
    fn check(&self, m: &RecentMatch, addr: u128, ttl: u8, now: Timestamp) -> bool {
        let _ = ttl;
        let mut lists = self.lists.lock().unwrap_or_else(|e| e.into_inner());
        let list = lists.entry(m.name.clone()).or_default();
        let key = addr & m.mask;
        let hit = match m.cmd {
            RecentCmd::Set => {
                let e = list.entry(key).or_default();
                e.push(now);
                if e.len() > RECENT_PKTS {
                    e.remove(0);
                }
                true
            }
            RecentCmd::Remove => list.remove(&key).is_some(),
            RecentCmd::Rcheck | RecentCmd::Update => {
                let window = m.seconds as u64 * 1_000_000_000;
                let found = match list.get_mut(&key) {
                    None => false,
                    Some(stamps) => {
                        let in_window = |t: &Timestamp| {
                            m.seconds == 0 || now.as_nanos().saturating_sub(t.as_nanos()) <= window
                        };
                        let n = stamps.iter().filter(|t| in_window(t)).count();
                        let need = m.hit_count.max(1) as usize;
                        if m.reap && m.seconds > 0 {
                            stamps.retain(in_window);
                        }
                        n >= need
                    }
                };
                if found && m.cmd == RecentCmd::Update {
                    let e = list.entry(key).or_default();
                    e.push(now);
                    if e.len() > RECENT_PKTS {
                        e.remove(0);
                    }
                }
                if m.reap {
                    list.retain(|_, v| !v.is_empty());
                }
                found
            }
        };
        hit != m.invert
    }
}

/// Mutable per-packet state the walk reads and writes.
#[derive(Debug, Clone, Copy, Default)]
pub struct PacketMarks {
    /// nfmark.
    pub mark: u32,
    /// Connection mark (written back to the entry by the caller if changed).
    pub ctmark: u32,
    pub ctmark_changed: bool,
    /// NOTRACK / CT --notrack fired (raw table).
    pub notrack: bool,
    /// TCPMSS target asked for this MSS clamp (0 = none; u16::MAX = to PMTU).
    pub set_mss: u16,
}

/// How one table's walk ended. Small enough (16 bytes) to come back in
/// registers: a `Target` by value made it 64 bytes, copied through memory
/// on every walk.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TableVerdict<'r> {
    Accept,
    /// A rule's DROP, or a DROP policy (`policy == true`).
    Drop {
        policy: bool,
    },
    Reject(RejectWith),
    /// A NAT target fired (nat table): the binding to set up.
    Nat(&'r Target),
}

/// Everything the walk needs besides the packet.
pub struct Walk<'e> {
    pub rs: &'e CompiledRuleset,
    pub worker: usize,
    pub now: Timestamp,
    pub recent: &'e RecentTables,
}

const MAX_DEPTH: usize = 64;
/// Return points kept in the walk's stack frame; deeper ones spill to the
/// heap. Zeroing a 64-entry array (512 bytes) on every walk was ~5 % of an
/// established packet's cost; kube rulesets nest at most 4 deep.
const INLINE_DEPTH: usize = 16;

/// The walk's return stack: `INLINE_DEPTH` entries inline, the rest (up to
/// `MAX_DEPTH`) in a vector allocated only by rulesets that nest deeper.
struct ReturnStack {
    inline: [(u32, u32); INLINE_DEPTH],
    spill: Vec<(u32, u32)>,
}

impl ReturnStack {
    #[inline]
    fn new() -> Self {
        ReturnStack {
            inline: [(0, 0); INLINE_DEPTH],
            spill: Vec::new(),
        }
    }

    /// Stores the entry at `depth` (the current depth, below `MAX_DEPTH`).
    #[inline]
    fn push(&mut self, depth: usize, v: (u32, u32)) {
        match self.inline.get_mut(depth) {
            Some(slot) => *slot = v,
            None => {
                self.spill.truncate(depth - INLINE_DEPTH);
                self.spill.push(v);
            }
        }
    }

    /// The entry stored at `depth`.
    #[inline]
    fn pop(&mut self, depth: usize) -> (u32, u32) {
        match self.inline.get(depth) {
            Some(v) => *v,
            None => self.spill.pop().unwrap_or_default(),
        }
    }
}

impl<'e> Walk<'e> {
    /// Runs `table`'s built-in chain for `hook`. Tables without the hook
    /// accept.
    pub fn run(
        &self,
        table: TableKind,
        hook: Hook,
        pkt: &PacketFields<'_>,
        ct: &LazyCt<'_>,
        marks: &mut PacketMarks,
        env: &mut dyn Env,
    ) -> TableVerdict<'e> {
        let t = self.rs.table(table);
        let Some(start) = t.hook_chain[hook as usize] else {
            return TableVerdict::Accept;
        };
        let bytes = pkt.len as u64;
        // Return stack of (chain, next rule index).
        let mut stack = ReturnStack::new();
        let mut depth = 0usize;
        let mut chain = start;
        let mut pos = 0u32;
        loop {
            let ch: &CChain = &t.chains[chain as usize];
            match self.next_match(ch, pos, pkt, ct, marks, env) {
                None => {
                    // Fell off the end of the chain.
                    if depth == 0 {
                        return self.policy(&t.chains[start as usize], bytes);
                    }
                    depth -= 1;
                    (chain, pos) = stack.pop(depth);
                }
                Some(i) => {
                    let r: &CRule = &ch.rules[i as usize];
                    self.rs.counters.bump(self.worker, r.slot, bytes);
                    match r.target {
                        CTarget::None => pos = i + 1,
                        CTarget::Jump(c) => {
                            if depth == MAX_DEPTH {
                                // Validation forbids loops; a chain this
                                // deep is treated as the kernel does an
                                // overflow: drop.
                                return TableVerdict::Drop { policy: false };
                            }
                            stack.push(depth, (chain, i + 1));
                            depth += 1;
                            chain = c;
                            pos = 0;
                        }
                        CTarget::Goto(c) => {
                            chain = c;
                            pos = 0;
                        }
                        CTarget::Other => match &r.rule.target {
                            Target::Accept => return TableVerdict::Accept,
                            Target::Drop => return TableVerdict::Drop { policy: false },
                            Target::Return => {
                                if depth == 0 {
                                    return self.policy(&t.chains[start as usize], bytes);
                                }
                                depth -= 1;
                                (chain, pos) = stack.pop(depth);
                            }
                            Target::Reject(w) => return TableVerdict::Reject(*w),
                            t @ (Target::Dnat(_)
                            | Target::Snat(_)
                            | Target::Masquerade(_)
                            | Target::Redirect(_)) => return TableVerdict::Nat(t),
                            other => {
                                apply_continue(other, pkt, marks, env);
                                pos = i + 1;
                            }
                        },
                    }
                }
            }
        }
    }

    fn policy(&self, ch: &CChain, bytes: u64) -> TableVerdict<'e> {
        self.rs.counters.bump(self.worker, ch.policy_slot, bytes);
        match ch.policy {
            Some(Policy::Drop) => TableVerdict::Drop { policy: true },
            _ => TableVerdict::Accept,
        }
    }

    /// Index of the first rule at or after `pos` that matches.
    fn next_match(
        &self,
        ch: &CChain,
        mut pos: u32,
        pkt: &PacketFields<'_>,
        ct: &LazyCt<'_>,
        marks: &PacketMarks,
        env: &mut dyn Env,
    ) -> Option<u32> {
        let n = ch.rules.len() as u32;
        while pos < n {
            let run = ch.run_at[pos as usize];
            if run != NO_RUN {
                let run = &ch.runs[run as usize];
                let key: RunKey = match run.kind {
                    KeyKind::DstProtoPort => (pkt.dst, pkt.proto, pkt.dport),
                    KeyKind::Dst => (pkt.dst, 0, 0),
                    KeyKind::Src => (pkt.src, 0, 0),
                };
                let usable = run.kind != KeyKind::DstProtoPort || pkt.has_l4;
                if usable {
                    if let Some(cands) = run.map.get(&key) {
                        let from = cands.partition_point(|&c| c < pos);
                        for &c in &cands[from..] {
                            if self.rule_matches(&ch.rules[c as usize], pkt, ct, marks, env) {
                                return Some(c);
                            }
                        }
                    }
                }
                pos = run.end;
                continue;
            }
            if self.rule_matches(&ch.rules[pos as usize], pkt, ct, marks, env) {
                return Some(pos);
            }
            pos += 1;
        }
        None
    }

    fn rule_matches(
        &self,
        cr: &CRule,
        p: &PacketFields<'_>,
        ct: &LazyCt<'_>,
        marks: &PacketMarks,
        env: &mut dyn Env,
    ) -> bool {
        let r = &cr.rule;
        if !r.src.matches(p.src) || !r.dst.matches(p.dst) {
            return false;
        }
        if r.proto != 0 && ((p.proto == r.proto) == r.proto_invert) {
            return false;
        }
        if r.proto == 0 && r.proto_invert {
            // `! -p all` matches nothing.
            return false;
        }
        if let Some(inv) = r.fragment {
            // `-f` (inv false): later fragments only; `! -f`: the rest.
            if p.later_fragment == inv {
                return false;
            }
        }
        if let Some(i) = &r.in_iface {
            if !i.matches(p.in_if) {
                return false;
            }
        }
        if let Some(o) = &r.out_iface {
            if !o.matches(p.out_if) {
                return false;
            }
        }
        r.matches
            .iter()
            .all(|m| self.match_one(cr, m, p, ct, marks, env))
    }

    fn match_one(
        &self,
        cr: &CRule,
        m: &Match,
        p: &PacketFields<'_>,
        ct: &LazyCt<'_>,
        marks: &PacketMarks,
        env: &mut dyn Env,
    ) -> bool {
        match m {
            Match::Tcp {
                sport,
                dport,
                flags,
                option,
            } => {
                if p.proto != 6 || !p.has_l4 {
                    return false;
                }
                sport.is_none_or(|r| r.matches(p.sport))
                    && dport.is_none_or(|r| r.matches(p.dport))
                    && flags.is_none_or(|(mask, cmp, inv)| ((p.tcp_flags & mask) == cmp) != inv)
                    && option.is_none_or(|(kind, inv)| p.tcp_option(kind).is_some() != inv)
            }
            Match::Udp { sport, dport } => {
                if p.proto != 17 || !p.has_l4 {
                    return false;
                }
                sport.is_none_or(|r| r.matches(p.sport)) && dport.is_none_or(|r| r.matches(p.dport))
            }
            Match::Icmp {
                icmp_type,
                code_lo,
                code_hi,
                invert,
            } => {
                if p.proto != 1 || !p.has_l4 {
                    return false;
                }
                let hit = *icmp_type == 255
                    || (p.icmp_type == *icmp_type && (*code_lo..=*code_hi).contains(&p.icmp_code));
                hit != *invert
            }
            Match::Multiport {
                kind,
                ports,
                invert,
            } => {
                if !p.has_l4 || !matches!(p.proto, 6 | 17 | 132 | 33 | 136) {
                    return false;
                }
                let inr = |v: u16| ports.iter().any(|&(lo, hi)| lo <= v && v <= hi);
                let hit = match kind {
                    MultiportKind::Src => inr(p.sport),
                    MultiportKind::Dst => inr(p.dport),
                    MultiportKind::Any => inr(p.sport) || inr(p.dport),
                };
                hit != *invert
            }
            Match::Conntrack(c) => conntrack_match(c, ct),
            Match::State { states, invert } => {
                state_bits(ct.state(), false).intersects(*states) != *invert
            }
            Match::Comment(_) => true,
            Match::Mark(mm) => ((marks.mark & mm.mask) == mm.value) != mm.invert,
            Match::Connmark(mm) => match ct.get() {
                Some(_) => ((marks.ctmark & mm.mask) == mm.value) != mm.invert,
                None => false,
            },
            Match::Statistic { mode, invert } => {
                let hit = match mode {
                    StatisticMode::Random { threshold } => {
                        (env.random_u32() & 0x7fff_ffff) < *threshold
                    }
                    StatisticMode::Nth { every, .. } => {
                        // As xt_statistic: count wraps to 0 after `every`,
                        // the packet that wraps it matches.
                        let c = &cr.state.nth;
                        let mut old = c.load(std::sync::atomic::Ordering::Relaxed);
                        loop {
                            let new = if old >= *every { 0 } else { old + 1 };
                            match c.compare_exchange_weak(
                                old,
                                new,
                                std::sync::atomic::Ordering::Relaxed,
                                std::sync::atomic::Ordering::Relaxed,
                            ) {
                                Ok(_) => break new == 0,
                                Err(o) => old = o,
                            }
                        }
                    }
                };
                hit != *invert
            }
            Match::Addrtype {
                src,
                dst,
                limit_iface_in,
                limit_iface_out,
            } => {
                let iface = if *limit_iface_in {
                    Some(p.in_if)
                } else if *limit_iface_out {
                    Some(p.out_if)
                } else {
                    None
                };
                // Only IPv4 packets reach a hook: the address is the low
                // 32 bits.
                let (s4, d4) = (p.src as u32, p.dst as u32);
                src.is_none_or(|(t, inv)| ((env.addr_type(s4, iface).0 & t.0) != 0) != inv)
                    && dst.is_none_or(|(t, inv)| ((env.addr_type(d4, iface).0 & t.0) != 0) != inv)
            }
            Match::Iprange(r) => {
                r.src
                    .is_none_or(|(lo, hi, inv)| (lo <= p.src && p.src <= hi) != inv)
                    && r.dst
                        .is_none_or(|(lo, hi, inv)| (lo <= p.dst && p.dst <= hi) != inv)
            }
            Match::Limit { avg, burst } => {
                // Token bucket in nanoseconds of credit, as xt_limit's
                // jiffies-based one: one packet costs avg/10000 s, the
                // bucket holds `burst` packets and starts full.
                let cost = (*avg as u64).saturating_mul(100_000).max(1);
                let cap = cost.saturating_mul((*burst).max(1) as u64);
                let now = self.now.as_nanos();
                let mut st = cr.state.limit.lock().unwrap_or_else(|e| e.into_inner());
                let (credit, last) = &mut *st;
                if *last == 0 {
                    *credit = cap;
                } else {
                    *credit = credit.saturating_add(now.saturating_sub(*last)).min(cap);
                }
                *last = now.max(1);
                if *credit >= cost {
                    *credit -= cost;
                    true
                } else {
                    false
                }
            }
            Match::Length(r) => r.matches(p.len),
            Match::Ttl { op, value } => match op {
                TtlOp::Eq => p.ttl == *value,
                TtlOp::Ne => p.ttl != *value,
                TtlOp::Lt => p.ttl < *value,
                TtlOp::Gt => p.ttl > *value,
            },
            Match::Tcpmss(r) => {
                if p.proto != 6 || !p.has_l4 {
                    return false;
                }
                match p.tcp_option(2) {
                    Some(d) if d.len() == 2 => r.matches(u16::from_be_bytes([d[0], d[1]])),
                    // No MSS option: matches only when inverted (xt_tcpmss).
                    _ => r.invert,
                }
            }
            // TUN devices carry no link-layer header: like xt_mac on a
            // device without one, never a match (inverted or not).
            Match::Mac { .. } => false,
            Match::Recent(rm) => {
                let addr = if rm.rdest { p.dst } else { p.src };
                self.recent.check(rm, addr, p.ttl, self.now)
            }
            // ip6tables' own matches: only an IPv6 ruleset holds them, and
            // no IPv6 packet reaches a hook yet (the pipeline drops them
            // before PREROUTING), so they are never asked. When the IPv6
            // packet path lands, their evaluation goes here.
            Match::Icmp6 { .. }
            | Match::Frag(_)
            | Match::Ipv6Header { .. }
            | Match::Hbh(_)
            | Match::Dst(_)
            | Match::Rt(_)
            | Match::Hl { .. }
            | Match::Eui64 => false,
        }
    }
}

/// The state bits of xt_conntrack / xt_state for the packet's connection.
fn state_bits(state: Option<CtStateSet>, with_nat: bool) -> CtStateSet {
    match state {
        None => CtStateSet::INVALID,
        Some(st) => {
            let mut s = st.0;
            if !with_nat {
                s &= !(CtStateSet::SNAT.0 | CtStateSet::DNAT.0);
            }
            CtStateSet(s)
        }
    }
}

fn conntrack_match(c: &ConntrackMatch, lazy: &LazyCt<'_>) -> bool {
    if let Some((states, inv)) = c.state {
        if state_bits(lazy.state(), true).intersects(states) == inv {
            return false;
        }
    }
    let needs_ct = c.proto.is_some()
        || c.orig_src.is_some()
        || c.orig_dst.is_some()
        || c.repl_src.is_some()
        || c.repl_dst.is_some()
        || c.orig_src_port.is_some()
        || c.orig_dst_port.is_some()
        || c.repl_src_port.is_some()
        || c.repl_dst_port.is_some()
        || c.status.is_some()
        || c.expire.is_some()
        || c.dir_reply.is_some();
    if !needs_ct {
        return true;
    }
    // Every other option needs a tracked connection (xt_conntrack returns
    // false without one, whatever the inversion).
    let tracked = lazy
        .get()
        .filter(|c| !c.state.contains(CtStateSet::UNTRACKED));
    let Some(ct) = tracked else {
        return false;
    };
    if let Some((p, inv)) = c.proto {
        if (ct.proto == p) == inv {
            return false;
        }
    }
    let addr_ok =
        |m: &Option<crate::ruleset::AddrMask>, a: u32| m.is_none_or(|m| m.matches(u128::from(a)));
    let port_ok = |m: &Option<crate::ruleset::Range16>, v: u16| m.is_none_or(|r| r.matches(v));
    if !addr_ok(&c.orig_src, ct.orig.0)
        || !addr_ok(&c.orig_dst, ct.orig.1)
        || !addr_ok(&c.repl_src, ct.reply.0)
        || !addr_ok(&c.repl_dst, ct.reply.1)
        || !port_ok(&c.orig_src_port, ct.orig.2)
        || !port_ok(&c.orig_dst_port, ct.orig.3)
        || !port_ok(&c.repl_src_port, ct.reply.2)
        || !port_ok(&c.repl_dst_port, ct.reply.3)
    {
        return false;
    }
    if let Some((st, inv)) = c.status {
        if ((ct.status & st.0) != 0) == inv {
            return false;
        }
    }
    if let Some((lo, hi, inv)) = c.expire {
        if (lo <= ct.expires && ct.expires <= hi) == inv {
            return false;
        }
    }
    if let Some(reply) = c.dir_reply {
        if ct.dir_reply != reply {
            return false;
        }
    }
    true
}

/// Non-terminal targets.
fn apply_continue(t: &Target, p: &PacketFields<'_>, marks: &mut PacketMarks, env: &mut dyn Env) {
    match t {
        Target::Log(l) => env.log(l, p, marks.mark),
        Target::Mark { value, mask } => marks.mark = (marks.mark & !mask) ^ value,
        Target::Connmark(c) => {
            let old = marks.ctmark;
            match *c {
                ConnmarkTarget::SetXmark { value, mask } => {
                    marks.ctmark = (marks.ctmark & !mask) ^ value;
                }
                ConnmarkTarget::Save { nfmask, ctmask } => {
                    marks.ctmark = (marks.ctmark & !ctmask) ^ (marks.mark & nfmask);
                }
                ConnmarkTarget::Restore { nfmask, ctmask } => {
                    marks.mark = (marks.mark & !nfmask) ^ (marks.ctmark & ctmask);
                }
            }
            marks.ctmark_changed |= marks.ctmark != old;
        }
        Target::Notrack => marks.notrack = true,
        Target::Ct(c) => marks.notrack |= c.notrack,
        Target::TcpmssSet(mss) => marks.set_mss = *mss,
        Target::TcpmssClamp => marks.set_mss = u16::MAX,
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ruleset::{AddrMask, Range16, Rule, Ruleset};

    struct TestEnv(u64);
    impl Env for TestEnv {
        fn addr_type(&self, addr: u32, _iface: Option<&str>) -> AddrTypes {
            if addr == 0x0a00_0001 {
                AddrTypes::LOCAL
            } else {
                AddrTypes(1 << 1)
            }
        }
        fn random_u32(&mut self) -> u32 {
            // splitmix64
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            (z ^ (z >> 31)) as u32
        }
        fn log(&mut self, _: &crate::ruleset::LogTarget, _: &PacketFields<'_>, _: u32) {}
    }

    fn tcp_packet(src: u32, dst: u32, sport: u16, dport: u16, flags: u8) -> Vec<u8> {
        let mut p = vec![0u8; 40];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&40u16.to_be_bytes());
        p[8] = 64;
        p[9] = 6;
        p[12..16].copy_from_slice(&src.to_be_bytes());
        p[16..20].copy_from_slice(&dst.to_be_bytes());
        p[20..22].copy_from_slice(&sport.to_be_bytes());
        p[22..24].copy_from_slice(&dport.to_be_bytes());
        p[32] = 0x50;
        p[33] = flags;
        p
    }

    fn host(a: u32) -> AddrMask {
        AddrMask {
            addr: u128::from(a),
            mask: u128::from(u32::MAX),
            invert: false,
        }
    }

    fn dport_rule(dst: u32, port: u16, target: Target) -> Rule {
        Rule {
            dst: host(dst),
            proto: 6,
            matches: vec![Match::Tcp {
                sport: None,
                dport: Some(Range16 {
                    lo: port,
                    hi: port,
                    invert: false,
                }),
                flags: None,
                option: None,
            }],
            target,
            ..Rule::default()
        }
    }

    fn walk<'r>(rs: &'r CompiledRuleset, recent: &'r RecentTables, pkt: &[u8]) -> TableVerdict<'r> {
        let f = PacketFields::parse(pkt, "in0", "out0").unwrap();
        let w = Walk {
            rs,
            worker: 0,
            now: Timestamp::from_secs(1),
            recent,
        };
        w.run(
            TableKind::Filter,
            Hook::Forward,
            &f,
            &LazyCt::ready(None),
            &mut PacketMarks::default(),
            &mut TestEnv(7),
        )
    }

    #[test]
    fn jump_return_goto_and_policy() {
        let mut rs = Ruleset::new();
        let t = rs.table_mut(TableKind::Filter);
        t.add_user_chain("A");
        t.add_user_chain("B");
        t.chain_mut("FORWARD").unwrap().policy = Some(Policy::Drop);
        let fwd = &mut t.chain_mut("FORWARD").unwrap().rules;
        fwd.push(
            Rule {
                target: Target::Jump("A".into()),
                ..Rule::default()
            }
            .into(),
        );
        fwd.push(dport_rule(2, 80, Target::Accept).into());
        let a = &mut t.chain_mut("A").unwrap().rules;
        a.push(dport_rule(2, 22, Target::Goto("B".into())).into());
        a.push(dport_rule(2, 80, Target::Return).into());
        t.chain_mut("B")
            .unwrap()
            .rules
            .push(dport_rule(2, 22, Target::Reject(RejectWith::TcpReset)).into());
        let c = CompiledRuleset::compile(rs, 1);
        let recent = RecentTables::default();
        assert_eq!(
            walk(&c, &recent, &tcp_packet(1, 2, 1000, 80, 2)),
            TableVerdict::Accept
        );
        assert_eq!(
            walk(&c, &recent, &tcp_packet(1, 2, 1000, 22, 2)),
            TableVerdict::Reject(RejectWith::TcpReset)
        );
        assert_eq!(
            walk(&c, &recent, &tcp_packet(1, 2, 1000, 25, 2)),
            TableVerdict::Drop { policy: true }
        );
        let snap = c.snapshot();
        let f = snap.table(TableKind::Filter);
        let fw = f.chain("FORWARD").unwrap();
        assert_eq!(fw.rules[0].counters.packets, 3);
        assert_eq!(fw.rules[1].counters.packets, 1);
        assert_eq!(fw.counters.packets, 1, "policy counter");
        assert_eq!(fw.counters.bytes, 40);
        assert_eq!(f.chain("A").unwrap().rules[1].counters.packets, 1);
    }

    /// The keyed-run form must give the same verdicts and counters as the
    /// plain walk, including RETURN into the middle of a run and duplicate
    /// keys whose first rule does not terminate.
    #[test]
    fn keyed_runs_equal_linear_walk() {
        let mut env = TestEnv(42);
        let mut rs = Ruleset::new();
        let t = rs.table_mut(TableKind::Filter);
        t.add_user_chain("SVC");
        t.add_user_chain("MARKER");
        t.chain_mut("MARKER").unwrap().rules.push(
            Rule {
                target: Target::Mark { value: 1, mask: 1 },
                ..Rule::default()
            }
            .into(),
        );
        t.chain_mut("SVC")
            .unwrap()
            .rules
            .push(dport_rule(5, 5, Target::Drop).into());
        let mut rules = Vec::new();
        for _ in 0..400 {
            let dst = env.random_u32() % 12;
            let port = (env.random_u32() % 6) as u16;
            let target = match env.random_u32() % 5 {
                0 => Target::Accept,
                1 => Target::Drop,
                2 => Target::Jump("MARKER".into()),
                3 => Target::Jump("SVC".into()),
                _ => Target::None,
            };
            let mut r = dport_rule(dst, port, target);
            if env.random_u32().is_multiple_of(10) {
                r.src = AddrMask {
                    addr: 3,
                    mask: u128::from(u32::MAX),
                    invert: true,
                };
            }
            rules.push(r.into());
            if env.random_u32().is_multiple_of(50) {
                // Something unkeyed breaks the run.
                rules.push(
                    Rule {
                        proto: 17,
                        target: Target::Accept,
                        ..Rule::default()
                    }
                    .into(),
                );
            }
        }
        t.chain_mut("FORWARD").unwrap().rules = rules;
        let keyed = CompiledRuleset::compile_with(rs.clone(), 1, true);
        let linear = CompiledRuleset::compile_with(rs, 1, false);
        let runs: usize = keyed
            .table(TableKind::Filter)
            .chains
            .iter()
            .map(|c| c.runs.len())
            .sum();
        assert!(runs > 0, "the test ruleset must exercise keyed runs");
        let recent = RecentTables::default();
        for i in 0..3000u32 {
            let src = env.random_u32() % 5;
            let dst = env.random_u32() % 14;
            let port = (env.random_u32() % 8) as u16;
            let pkt = tcp_packet(src, dst, 1000 + (i % 7) as u16, port, 2);
            assert_eq!(walk(&keyed, &recent, &pkt), walk(&linear, &recent, &pkt));
        }
        assert_eq!(keyed.snapshot(), linear.snapshot());
    }

    /// Jumps nested deeper than the inline return stack: every RETURN
    /// (falling off a user chain) resumes right after its jump, at every
    /// depth, and past `MAX_DEPTH` the packet is dropped as before.
    #[test]
    fn deep_jumps_return_to_the_right_rule() {
        let nested = |levels: usize| {
            let mut rs = Ruleset::new();
            let t = rs.table_mut(TableKind::Filter);
            for i in 0..levels {
                t.add_user_chain(&format!("C{i}"));
            }
            for i in 0..levels {
                let rules = &mut t.chain_mut(&format!("C{i}")).unwrap().rules;
                if i + 1 < levels {
                    rules.push(
                        Rule {
                            target: Target::Jump(format!("C{}", i + 1).into()),
                            ..Rule::default()
                        }
                        .into(),
                    );
                }
                // A counting rule after the jump: reached once per packet
                // only if the return lands here.
                rules.push(Rule::default().into());
            }
            let fwd = t.chain_mut("FORWARD").unwrap();
            fwd.policy = Some(Policy::Drop);
            fwd.rules.push(
                Rule {
                    target: Target::Jump("C0".into()),
                    ..Rule::default()
                }
                .into(),
            );
            fwd.rules.push(
                Rule {
                    target: Target::Accept,
                    ..Rule::default()
                }
                .into(),
            );
            CompiledRuleset::compile(rs, 1)
        };
        let recent = RecentTables::default();
        let pkt = tcp_packet(1, 2, 3, 4, 2);
        let c = nested(40);
        for _ in 0..2 {
            assert_eq!(walk(&c, &recent, &pkt), TableVerdict::Accept);
        }
        let snap = c.snapshot();
        let f = snap.table(TableKind::Filter);
        for i in 0..40 {
            let rules = &f.chain(&format!("C{i}")).unwrap().rules;
            for r in rules {
                assert_eq!(r.counters.packets, 2, "C{i}: {rules:?}");
            }
        }
        assert_eq!(f.chain("FORWARD").unwrap().rules[1].counters.packets, 2);
        assert_eq!(f.chain("FORWARD").unwrap().counters.packets, 0);
        // FORWARD's jump plus 64 nested ones overflow the stack: dropped.
        let c = nested(MAX_DEPTH + 1);
        assert_eq!(
            walk(&c, &recent, &pkt),
            TableVerdict::Drop { policy: false }
        );
        let c = nested(MAX_DEPTH);
        assert_eq!(walk(&c, &recent, &pkt), TableVerdict::Accept);
    }

    #[test]
    fn statistic_nth_and_random_follow_the_kernel() {
        let mut rs = Ruleset::new();
        let fwd = &mut rs
            .table_mut(TableKind::Filter)
            .chain_mut("FORWARD")
            .unwrap()
            .rules;
        fwd.push(
            Rule {
                matches: vec![Match::Statistic {
                    mode: StatisticMode::Nth {
                        every: 2,
                        packet: 0,
                    },
                    invert: false,
                }],
                target: Target::Drop,
                ..Rule::default()
            }
            .into(),
        );
        let c = CompiledRuleset::compile(rs, 1);
        let recent = RecentTables::default();
        let pkt = tcp_packet(1, 2, 3, 4, 2);
        // The model holds the kernel's values: `--every 3 --packet 0` is
        // every = 2; the kernel (counter started at every - packet by
        // libxt_statistic) drops the 1st, 4th, ... packet, as the
        // differential test against the kernel showed.
        let v: Vec<bool> = (0..6)
            .map(|_| walk(&c, &recent, &pkt) != TableVerdict::Accept)
            .collect();
        assert_eq!(v, [true, false, false, true, false, false]);
    }

    #[test]
    fn truncated_packets_do_not_panic_and_do_not_match_l4() {
        let pkt = tcp_packet(1, 2, 3, 4, 2);
        for n in 0..pkt.len() {
            if let Some(f) = PacketFields::parse(&pkt[..n], "a", "b") {
                assert!(!f.has_l4 || n >= 40);
                let _ = f.tcp_option(2);
            }
        }
    }
}
