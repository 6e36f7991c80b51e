//! The netfilter hook traversal for one IPv4 packet.
//!
//! ```text
//! ingress -> [checks] -> PREROUTING raw -> conntrack -> mangle -> nat(DNAT)
//!         -> routing: local? -> INPUT mangle -> filter -> security -> nat(SNAT) -> confirm -> deliver
//!                     else   -> (TTL, MTU) FORWARD mangle -> filter -> security
//!                               -> POSTROUTING mangle -> nat(SNAT/MASQUERADE) -> confirm -> egress
//! locally generated (echo replies, REJECT, ICMP errors, RSTs):
//!            OUTPUT raw -> conntrack -> mangle -> nat(DNAT) -> filter -> security
//!         -> routing -> POSTROUTING mangle -> nat -> confirm -> Emit
//! ```
//!
//! As in the kernel, only the first packet of a connection (an unconfirmed
//! [`NewConn`]) walks the nat table; every other packet is rewritten from its
//! conntrack entry at the same hooks (destination part at PREROUTING/OUTPUT,
//! source part at POSTROUTING/INPUT). Packets the gateway originates in answer
//! to a packet carry that packet's connection (the kernel's `nf_ct_attach`),
//! so a REJECT behind a DNAT answers from the address the client talked to.

use super::compile::CompiledRuleset;
use super::eval::{
    CtInfo, Env, LazyCt, PacketFields, PacketMarks, RecentTables, TableVerdict, Walk,
};
use super::{DropReason, Emit, IfIndex, PacketCtx, Processor, Verdict};
use crate::clock::Timestamp;
use crate::conntrack::defrag::{self, Defrag, DefragConfig, DefragOutcome};
use crate::conntrack::{
    self, ClashKind, ConfirmError, ConnRef, ConnTable, ConntrackConfig, CtState, Dir, NewConn,
    Status, Tracked, Tuple,
};
use crate::nat::{self, Manip, NatRange, Rng};
use crate::route::{RouteResult, RouteTable};
use crate::ruleset::{
    AddrTypes, CtStateSet, Hook, LogTarget, RejectWith, Ruleset, TableKind, Target,
};
use crate::wire::repr::ParseError;
use crate::wire::vnet::VnetHdr;
use crate::wire::{build, checksum, icmp, Ipv4Packet, PacketRepr};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// One gateway interface as the pipeline sees it.
#[derive(Debug, Clone)]
pub struct Interface {
    pub name: String,
    /// The gateway's address on this interface and its prefix length.
    pub addr: Ipv4Addr,
    pub prefix_len: u8,
    pub mtu: u16,
}

impl Interface {
    /// The route table of `ifaces` alone: each interface's address is local
    /// and its prefix a connected route (interface `i` is `IfIndex(i)`).
    pub fn connected_routes(ifaces: &[Interface]) -> RouteTable {
        let mut routes = RouteTable::new();
        for (i, f) in ifaces.iter().enumerate() {
            routes.add_local(f.addr, IfIndex(i as u16));
            routes.add(
                crate::route::Cidr {
                    addr: f.addr,
                    len: f.prefix_len,
                },
                IfIndex(i as u16),
            );
        }
        routes
    }

    fn broadcast(&self) -> u32 {
        let mask = if self.prefix_len == 0 {
            0
        } else {
            u32::MAX << (32 - self.prefix_len as u32)
        };
        u32::from(self.addr) | !mask
    }
}

/// Everything the pipeline is built from.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    pub interfaces: Vec<Interface>,
    pub routes: RouteTable,
    pub conntrack: ConntrackConfig,
    pub workers: usize,
    /// Seed of the per-worker RNGs (statistic, NAT port choice). The core
    /// reads no clock and no random source: the edge draws it
    /// (`cli::run` from the OS's), tests fix it.
    pub seed: u64,
}

/// Per-worker mutable state (see [`Worker`]).
struct WorkerState {
    rng: Rng,
    ip_id: u16,
    /// Scratch for packets the gateway originates (ICMP errors, resets,
    /// echo replies); reused, so the packet path does not allocate.
    scratch: Vec<u8>,
    /// LOG lines of the packet being processed (syslog level, text), handed
    /// to [`Emit::log`] when it is done: the pipeline writes no log itself.
    logs: Vec<(u8, String)>,
}

/// One worker's state: its thread owns it ([`Pipeline::worker`]) and passes
/// it to every [`Processor::process`] call as `&mut`, so nothing per packet
/// is locked, shared or thread-local. It holds the ruleset the worker last
/// used, by generation: a packet borrows it without a lock or an atomic
/// read-modify-write, and the pipeline's read lock is taken only after a
/// ruleset swap (one acquire load of the generation per packet; the same
/// scheme as arc-swap's `Cache`, without the dependency).
pub struct Worker {
    index: usize,
    generation: u64,
    rules: Arc<CompiledRuleset>,
    state: WorkerState,
}

impl Worker {
    /// The worker's index (its counter slot and RNG stream).
    pub fn index(&self) -> usize {
        self.index
    }
}

/// Counters the pipeline keeps itself (drops of packets it originated, and
/// events that are not verdicts).
#[derive(Debug, Default)]
pub struct PipelineStats {
    pub drops: [AtomicU64; DropReason::ALL.len()],
    pub emitted: AtomicU64,
    pub icmp_ratelimited: AtomicU64,
    pub log_lines: AtomicU64,
}

/// The netfilter pipeline: ruleset, conntrack, NAT, routing.
pub struct Pipeline {
    ifaces: Vec<Interface>,
    routes: RouteTable,
    conntrack: ConnTable,
    recent: RecentTables,
    rules: RwLock<Arc<CompiledRuleset>>,
    generation: AtomicU64,
    workers: usize,
    seed: u64,
    stats: PipelineStats,
    /// IPv4 reassembly (shared; fragments are rare).
    defrag: Defrag,
    /// icmp_global_allow: 1000 errors/s, burst 50 (credit in ns, last time).
    icmp_bucket: Mutex<(u64, u64)>,
    /// Per-destination ICMP error buckets (inet_peer's rate_tokens).
    icmp_peers: Mutex<std::collections::HashMap<u32, (u64, u64)>>,
}

const ICMP_PER_SEC: u64 = 1000;
const ICMP_BURST: u64 = 50;
const ICMP_PEERS_MAX: usize = 65_536;

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("interfaces", &self.ifaces)
            .field("generation", &self.generation)
            .finish()
    }
}

impl Pipeline {
    /// Builds the pipeline with `ruleset` (already validated).
    pub fn new(cfg: PipelineConfig, ruleset: Ruleset) -> Pipeline {
        let workers = cfg.workers.max(1);
        let seed = cfg.seed;
        let compiled = Arc::new(CompiledRuleset::compile(ruleset, workers));
        Pipeline {
            ifaces: cfg.interfaces,
            routes: cfg.routes,
            conntrack: ConnTable::new(cfg.conntrack),
            recent: RecentTables::default(),
            rules: RwLock::new(compiled),
            generation: AtomicU64::new(1),
            workers,
            seed,

            stats: PipelineStats::default(),
            defrag: Defrag::new(DefragConfig::default()),
            icmp_bucket: Mutex::new((ICMP_BURST * 1_000_000_000 / ICMP_PER_SEC, 0)),
            icmp_peers: Mutex::new(std::collections::HashMap::new()),
        }
    }

    /// Replaces the ruleset in one step. Packets being processed finish on
    /// the old one; conntrack entries (and their NAT bindings) stay. Returns
    /// the new generation.
    pub fn replace_ruleset(&self, compiled: CompiledRuleset) -> u64 {
        let mut g = self.rules.write().unwrap_or_else(|e| e.into_inner());
        *g = Arc::new(compiled);
        self.generation.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// Periodic housekeeping, from the I/O edge's timer: sweeps `budget`
    /// conntrack slots for expired entries and drops expired fragment
    /// queues. Returns the entries removed.
    pub fn maintain(&self, now: Timestamp, budget: usize) -> usize {
        self.defrag.expire(now);
        self.conntrack.gc(now, budget)
    }

    /// The ruleset in force.
    pub fn ruleset(&self) -> Arc<CompiledRuleset> {
        self.rules.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn workers(&self) -> usize {
        self.workers
    }

    /// The state of worker `index` (`0..workers()`), for its thread to own
    /// and pass to every [`Processor::process`] call. Its RNG stream and IP
    /// IDs derive from the pipeline's seed and the index.
    pub fn worker(&self, index: usize) -> Worker {
        let seed = self.seed;
        Worker {
            index: index % self.workers,
            generation: self.generation(),
            rules: self.ruleset(),
            state: WorkerState {
                rng: Rng::new(seed ^ (index as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)),
                ip_id: (seed as u16).wrapping_add(index as u16 * 7919),
                scratch: Vec::with_capacity(2048),
                logs: Vec::new(),
            },
        }
    }

    pub fn conntrack(&self) -> &ConnTable {
        &self.conntrack
    }

    pub fn stats(&self) -> &PipelineStats {
        &self.stats
    }

    pub fn interfaces(&self) -> &[Interface] {
        &self.ifaces
    }

    fn iface_name(&self, i: IfIndex) -> &str {
        self.ifaces
            .get(i.0 as usize)
            .map_or("", |x| x.name.as_str())
    }

    fn iface_addr(&self, i: IfIndex) -> u32 {
        self.ifaces
            .get(i.0 as usize)
            .map(|x| u32::from(x.addr))
            .or_else(|| self.routes.interface_address(i).map(u32::from))
            .unwrap_or(0)
    }

    fn count_drop(&self, r: DropReason) {
        self.stats.drops[r.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// The kernel's two ICMP error limits (net/ipv4/icmp.c), for the types
    /// in `icmp_ratemask` (destination unreachable, source quench, time
    /// exceeded, parameter problem): the global `icmp_msgs_per_sec` /
    /// `icmp_msgs_burst` bucket, then the per-destination inet_peer bucket
    /// (`icmp_ratelimit` 1 s, burst factor 6; a new peer starts full).
    fn icmp_allowed(&self, now: Timestamp, dst: u32, ty: u8) -> bool {
        if !matches!(ty, 3 | 4 | 11 | 12) {
            return true;
        }
        let t = now.as_nanos();
        let allowed = {
            let cost = 1_000_000_000 / ICMP_PER_SEC;
            let cap = cost * ICMP_BURST;
            let mut b = self.icmp_bucket.lock().unwrap_or_else(|e| e.into_inner());
            let (credit, last) = &mut *b;
            *credit = credit.saturating_add(t.saturating_sub(*last)).min(cap);
            *last = t;
            if *credit >= cost {
                *credit -= cost;
                true
            } else {
                false
            }
        } && {
            const TIMEOUT: u64 = 1_000_000_000;
            const BURST: u64 = 6 * TIMEOUT;
            let mut peers = self.icmp_peers.lock().unwrap_or_else(|e| e.into_inner());
            if peers.len() >= ICMP_PEERS_MAX {
                // Bounded memory: forget peers whose bucket is full again.
                peers.retain(|_, (tok, last)| tok.saturating_add(t.saturating_sub(*last)) < BURST);
            }
            let (tok, last) = peers.entry(dst).or_insert((BURST, t));
            *tok = tok.saturating_add(t.saturating_sub(*last)).min(BURST);
            *last = t;
            if *tok >= TIMEOUT {
                *tok -= TIMEOUT;
                true
            } else {
                false
            }
        };
        if !allowed {
            self.stats.icmp_ratelimited.fetch_add(1, Ordering::Relaxed);
        }
        allowed
    }
}

/// The kernel's `-m addrtype` and LOG hooks for one packet.
struct PEnv<'a> {
    p: &'a Pipeline,
    ws: &'a mut WorkerState,
}

impl Env for PEnv<'_> {
    fn addr_type(&self, addr: u32, iface: Option<&str>) -> AddrTypes {
        const UNICAST: u16 = 1 << 1;
        const LOCAL: u16 = 1 << 2;
        const BROADCAST: u16 = 1 << 3;
        const MULTICAST: u16 = 1 << 5;
        if addr >> 28 == 0xe {
            return AddrTypes(MULTICAST);
        }
        if addr == u32::MAX {
            return AddrTypes(BROADCAST);
        }
        let on = |i: &Interface| iface.is_none_or(|n| n == i.name);
        if addr >> 24 == 127 {
            return AddrTypes(LOCAL);
        }
        for i in &self.p.ifaces {
            if u32::from(i.addr) == addr && on(i) {
                return AddrTypes(LOCAL);
            }
            if i.prefix_len < 31 && i.broadcast() == addr && on(i) {
                return AddrTypes(BROADCAST);
            }
        }
        AddrTypes(UNICAST)
    }

    fn random_u32(&mut self) -> u32 {
        self.ws.rng.next_u32()
    }

    fn log(&mut self, t: &LogTarget, pkt: &PacketFields<'_>, mark: u32) {
        self.p.stats.log_lines.fetch_add(1, Ordering::Relaxed);
        // The kernel's syslog level picks the tracing level.
        let line = super::log::format(t, pkt.in_if, pkt.out_if, pkt.raw, mark);
        self.ws.logs.push((t.level, line));
    }
}

/// The connection a packet belongs to during its traversal.
enum Conn<'a> {
    /// NOTRACK, or conntrack could not classify it (INVALID).
    None {
        untracked: bool,
    },
    New(NewConn),
    Known {
        conn: ConnRef<'a>,
        state: CtState,
    },
    Related(ConnRef<'a>),
}

fn pack(t: &Tuple) -> (u32, u32, u16, u16) {
    (
        u32::from(t.src),
        u32::from(t.dst),
        t.sport,
        if t.proto == conntrack::PROTO_ICMP {
            0
        } else {
            t.dport
        },
    )
}

fn nat_bits(s: Status) -> u16 {
    let mut b = 0;
    if s.src_nat() {
        b |= CtStateSet::SNAT.0;
    }
    if s.dst_nat() {
        b |= CtStateSet::DNAT.0;
    }
    b
}

fn cs_bits(state: CtState) -> CtStateSet {
    match state {
        CtState::New => CtStateSet::NEW,
        CtState::Established => CtStateSet::ESTABLISHED,
        CtState::Related => CtStateSet::RELATED,
        CtState::Invalid => CtStateSet::INVALID,
        CtState::Untracked => CtStateSet::UNTRACKED,
    }
}

fn known_info(conn: &ConnRef<'_>, state: CtState, now: Timestamp) -> CtInfo {
    let st = cs_bits(state);
    let status = conn.status();
    CtInfo {
        state: CtStateSet(st.0 | nat_bits(status)),
        status: status.0,
        proto: conn.orig().proto,
        orig: pack(&conn.orig()),
        reply: pack(&conn.reply()),
        dir_reply: conn.dir() == Dir::Reply,
        expires: conn.deadline().as_secs().saturating_sub(now.as_secs()) as u32,
    }
}

impl Conn<'_> {
    /// The state bits rules test (`--ctstate`, `--state`), without the
    /// tuples; `None` for no connection (INVALID).
    fn state_bits(&self) -> Option<CtStateSet> {
        Some(match self {
            Conn::None { untracked: true } => CtStateSet::UNTRACKED,
            Conn::None { untracked: false } => return None,
            Conn::New(nc) => CtStateSet(CtStateSet::NEW.0 | nat_bits(nc.status)),
            Conn::Known { conn, state } => CtStateSet(cs_bits(*state).0 | nat_bits(conn.status())),
            Conn::Related(conn) => CtStateSet(CtStateSet::RELATED.0 | nat_bits(conn.status())),
        })
    }

    fn info(&self, now: Timestamp) -> Option<CtInfo> {
        match self {
            Conn::None { untracked: true } => Some(CtInfo {
                state: CtStateSet::UNTRACKED,
                ..CtInfo::default()
            }),
            Conn::None { untracked: false } => None,
            Conn::New(nc) => Some(CtInfo {
                state: CtStateSet(CtStateSet::NEW.0 | nat_bits(nc.status)),
                status: nc.status.0,
                proto: nc.orig.proto,
                orig: pack(&nc.orig),
                reply: pack(&nc.reply),
                dir_reply: false,
                expires: 0,
            }),
            Conn::Known { conn, state } => Some(known_info(conn, *state, now)),
            Conn::Related(conn) => Some(known_info(conn, CtState::Related, now)),
        }
    }

    fn mark(&self) -> u32 {
        match self {
            Conn::New(nc) => nc.mark,
            Conn::Known { conn, .. } | Conn::Related(conn) => conn.mark(),
            Conn::None { .. } => 0,
        }
    }

    fn set_mark(&mut self, m: u32) {
        match self {
            Conn::New(nc) => nc.mark = m,
            Conn::Known { conn, .. } | Conn::Related(conn) => conn.set_mark(m),
            Conn::None { .. } => {}
        }
    }

    /// NAT binding for packets the gateway sends in answer to this one (in
    /// the opposite direction), as `nf_ct_attach` gives them.
    fn answer(&self) -> Option<Binding> {
        match self {
            Conn::New(nc) => Some(Binding {
                target: nc.orig.inverse(),
                status: nc.status,
                dir: Dir::Reply,
            }),
            Conn::Known { conn, .. } | Conn::Related(conn) => Some(Binding {
                target: conn.tuple(conn.dir()).inverse(),
                status: conn.status(),
                dir: conn.dir().other(),
            }),
            Conn::None { .. } => None,
        }
    }

    /// NAT binding of this packet itself.
    fn binding(&self) -> Option<Binding> {
        match self {
            Conn::New(nc) => Some(Binding {
                target: nc.nat_target(),
                status: nc.status,
                dir: Dir::Original,
            }),
            Conn::Known { conn, .. } | Conn::Related(conn) => Some(Binding {
                target: conn.nat_target(),
                status: conn.status(),
                dir: conn.dir(),
            }),
            Conn::None { .. } => None,
        }
    }
}

/// What NAT does to a packet of a connection: the tuple it must show after
/// NAT in its direction, and the connection's NAT status.
#[derive(Debug, Clone, Copy)]
struct Binding {
    target: Tuple,
    status: Status,
    dir: Dir,
}

impl Binding {
    /// nf_nat_packet / nf_nat_icmp_reply_translation: rewrite the `manip`
    /// half if the connection has that kind of NAT in this direction (an
    /// ORIGINAL packet's SRC manip needs SRC_NAT; a REPLY packet's SRC manip
    /// undoes DST_NAT). ICMP errors get outer and embedded headers rewritten.
    fn apply(&self, pkt: &mut [u8], repr: &mut PacketRepr, partial: bool, manip: Manip) {
        if nat_needed(self.status, self.dir, manip) {
            let _ = nat::translate_repr(pkt, repr, partial, &self.target, manip);
        }
    }
}

/// Whether a packet in `dir` of a connection with `status` has its `manip`
/// half rewritten (see [`Binding::apply`]).
#[inline]
fn nat_needed(status: Status, dir: Dir, manip: Manip) -> bool {
    if matches!(manip, Manip::Src) != (dir == Dir::Reply) {
        status.src_nat()
    } else {
        status.dst_nat()
    }
}

/// Everything one traversal carries along.
struct Trav<'p, 'w> {
    p: &'p Pipeline,
    rules: &'w CompiledRuleset,
    ws: &'w mut WorkerState,
    worker: usize,
    now: Timestamp,
}

/// One packet's journey: its connection, marks and the interfaces the
/// current hook sees.
struct Flow<'p, 'r> {
    conn: Conn<'p>,
    marks: PacketMarks,
    /// Where it came in (None for locally generated packets).
    ingress: Option<IfIndex>,
    in_name: &'p str,
    out_name: &'p str,
    /// The L4 checksum is CHECKSUM_PARTIAL (vnet NEEDS_CSUM).
    partial: bool,
    /// Cache of `conn.binding()`; reset whenever `conn` changes.
    binding: Option<Binding>,
    /// The packet's description (the one parse), updated by whoever
    /// rewrites a header field it holds (NAT, the TTL decrement).
    /// Borrowed from the caller's parse, not copied into the flow (a copy
    /// of the freshly written fields cost a store-forwarding stall).
    repr: &'r mut PacketRepr,
}

impl<'p, 'r> Flow<'p, 'r> {
    fn set_conn(&mut self, conn: Conn<'p>) {
        self.conn = conn;
        self.binding = None;
    }

    /// The connection's NAT binding, read from the entry once per packet.
    fn binding(&mut self) -> Option<Binding> {
        if self.binding.is_none() {
            self.binding = self.conn.binding();
        }
        self.binding
    }

    fn new(
        ingress: Option<IfIndex>,
        in_name: &'p str,
        partial: bool,
        repr: &'r mut PacketRepr,
    ) -> Self {
        Flow {
            conn: Conn::None { untracked: false },
            binding: None,
            repr,
            marks: PacketMarks::default(),
            ingress,
            in_name,
            out_name: "",
            partial,
        }
    }
}

/// An ICMP error to send: type, code, and the 32-bit rest-of-header field.
#[derive(Clone, Copy)]
struct IcmpSpec {
    ty: u8,
    code: u8,
    extra: u32,
}

/// Destination-unreachable codes (RFC 792, RFC 1812 5.2.7.1).
mod unreach_code {
    pub const NET: u8 = 0;
    pub const HOST: u8 = 1;
    pub const PROTO: u8 = 2;
    pub const PORT: u8 = 3;
    pub const FRAG_NEEDED: u8 = 4;
    pub const NET_PROHIB: u8 = 9;
    pub const HOST_PROHIB: u8 = 10;
    pub const ADMIN_PROHIB: u8 = 13;
}

const fn unreach(code: u8) -> IcmpSpec {
    IcmpSpec {
        ty: icmp::types::DEST_UNREACH,
        code,
        extra: 0,
    }
}

impl<'p: 'w, 'w> Trav<'p, 'w> {
    /// Walks `table` at `hook`; the packet's view of interfaces is the flow's
    /// (`in_name` is empty past routing, `out_name` before it).
    fn walk(
        &mut self,
        table: TableKind,
        hook: Hook,
        pkt: &[u8],
        flow: &mut Flow<'p, '_>,
    ) -> TableVerdict<'w> {
        let rules = self.rules;
        // A built-in chain with no rules only counts its policy: skip the
        // parse and the connection lookup (most hooks of most rulesets).
        let h = rules.hook(table, hook);
        if h.chain.is_none() {
            return TableVerdict::Accept;
        }
        if h.empty {
            let len = flow.repr.total_len() as u64;
            rules.counters.bump(self.worker, h.policy_slot, len);
            return if h.policy_drop {
                TableVerdict::Drop { policy: true }
            } else {
                TableVerdict::Accept
            };
        }
        let in_if = if matches!(hook, Hook::Postrouting | Hook::Output) {
            ""
        } else {
            flow.in_name
        };
        let out_if = if matches!(hook, Hook::Prerouting | Hook::Input) {
            ""
        } else {
            flow.out_name
        };
        let f = PacketFields::from_repr(flow.repr, pkt, in_if, out_if);
        let now = self.now;
        let conn = &flow.conn;
        let make_full = || conn.info(now);
        let ct = LazyCt::with_state(conn.state_bits(), &make_full);
        let w = Walk {
            rs: rules,
            worker: self.worker,
            now: self.now,
            recent: &self.p.recent,
        };
        flow.marks.ctmark = flow.conn.mark();
        flow.marks.ctmark_changed = false;
        let mut env = PEnv {
            p: self.p,
            ws: &mut *self.ws,
        };
        let v = w.run(table, hook, &f, &ct, &mut flow.marks, &mut env);
        if flow.marks.ctmark_changed {
            flow.conn.set_mark(flow.marks.ctmark);
        }
        v
    }

    /// Runs a filter-like table; REJECT emits the answer.
    ///
    /// Most hooks of most rulesets are a built-in chain without rules and an
    /// ACCEPT policy, or no chain at all: those are decided here, inline,
    /// with the policy counter bumped as the walk would (an established
    /// flow passes seven such table/hook pairs per packet).
    #[inline(always)]
    fn filter_step(
        &mut self,
        table: TableKind,
        hook: Hook,
        pkt: &mut [u8],
        flow: &mut Flow<'p, '_>,
        out: &mut dyn Emit,
    ) -> Result<(), DropReason> {
        let h = self.rules.hook(table, hook);
        // A pending MSS clamp (left by a nat-table TCPMSS) is applied by
        // the next step's tail: take the full step then.
        if flow.marks.set_mss == 0 {
            if h.chain.is_none() {
                return Ok(());
            }
            if h.empty && !h.policy_drop {
                let len = flow.repr.total_len() as u64;
                self.rules.counters.bump(self.worker, h.policy_slot, len);
                return Ok(());
            }
        }
        self.filter_step_walk(table, hook, pkt, flow, out)
    }

    fn filter_step_walk(
        &mut self,
        table: TableKind,
        hook: Hook,
        pkt: &mut [u8],
        flow: &mut Flow<'p, '_>,
        out: &mut dyn Emit,
    ) -> Result<(), DropReason> {
        match self.walk(table, hook, pkt, flow) {
            TableVerdict::Accept | TableVerdict::Nat(_) => {
                if flow.marks.set_mss != 0 {
                    let mss = if flow.marks.set_mss == u16::MAX {
                        self.p
                            .routes
                            .lookup(flow.repr.v4().dst.into())
                            .forward_if()
                            .and_then(|i| self.p.ifaces.get(i.0 as usize))
                            .map_or(1460, |i| i.mtu.saturating_sub(40))
                    } else {
                        flow.marks.set_mss
                    };
                    let _ = crate::wire::tcp::clamp_mss(pkt, mss, flow.partial);
                    flow.marks.set_mss = 0;
                }
                Ok(())
            }
            TableVerdict::Drop { policy: true } => Err(DropReason::PolicyDrop),
            TableVerdict::Drop { policy: false } => Err(DropReason::RuleDrop),
            TableVerdict::Reject(with) => {
                self.reject(pkt, with, flow, out);
                Err(DropReason::RuleReject)
            }
        }
    }

    /// Runs several filter-like tables at one hook, in order.
    fn filter_steps(
        &mut self,
        tables: &[TableKind],
        hook: Hook,
        pkt: &mut [u8],
        flow: &mut Flow<'p, '_>,
        out: &mut dyn Emit,
    ) -> Result<(), DropReason> {
        for &t in tables {
            self.filter_step(t, hook, pkt, flow, out)?;
        }
        Ok(())
    }

    fn reject(&mut self, pkt: &[u8], with: RejectWith, flow: &Flow<'p, '_>, out: &mut dyn Emit) {
        let attach = flow.conn.answer();
        if with == RejectWith::TcpReset {
            let mut buf = std::mem::take(&mut self.ws.scratch);
            if build::tcp_reset(pkt, &mut buf) {
                self.output(&mut buf, attach, out);
            }
            self.ws.scratch = buf;
            return;
        }
        let code = match with {
            RejectWith::NetUnreachable => unreach_code::NET,
            RejectWith::HostUnreachable => unreach_code::HOST,
            RejectWith::PortUnreachable => unreach_code::PORT,
            RejectWith::ProtoUnreachable => unreach_code::PROTO,
            RejectWith::NetProhibited => unreach_code::NET_PROHIB,
            RejectWith::HostProhibited => unreach_code::HOST_PROHIB,
            RejectWith::AdminProhibited | RejectWith::TcpReset => unreach_code::ADMIN_PROHIB,
        };
        self.icmp_error(pkt, unreach(code), flow.ingress, attach, out);
    }

    /// Sends an ICMP error about `pkt` through OUTPUT.
    fn icmp_error(
        &mut self,
        pkt: &[u8],
        spec: IcmpSpec,
        ingress: Option<IfIndex>,
        attach: Option<Binding>,
        out: &mut dyn Emit,
    ) {
        // icmp_send picks the source from the route back to the sender; the
        // ingress interface's address is that here.
        let src = match ingress {
            Some(i) => self.p.iface_addr(i),
            None => self
                .p
                .routes
                .lookup(src_of(pkt).into())
                .forward_if()
                .map_or(0, |i| self.p.iface_addr(i)),
        };
        if src == 0 {
            return;
        }
        self.ws.ip_id = self.ws.ip_id.wrapping_add(1);
        let id = self.ws.ip_id;
        let mut buf = std::mem::take(&mut self.ws.scratch);
        let built = build::icmp_error(
            pkt,
            src.into(),
            (spec.ty, spec.code),
            spec.extra,
            id,
            &mut buf,
        );
        // Only errors that may be sent at all spend rate-limit credit.
        if built && self.p.icmp_allowed(self.now, src_of(pkt), spec.ty) {
            self.output(&mut buf, attach, out);
        }
        self.ws.scratch = buf;
    }

    /// The OUTPUT path for a packet the gateway originates. `attach`: the NAT
    /// binding of the connection this packet answers (nf_ct_attach); such a
    /// packet is RELATED to it and skips its own conntrack lookup.
    fn output(&mut self, pkt: &mut [u8], attach: Option<Binding>, out: &mut dyn Emit) {
        // Built by the gateway: structurally sound, checksummed.
        let Ok(mut repr) = PacketRepr::parse(pkt) else {
            self.p.count_drop(DropReason::Malformed);
            return;
        };
        let mut flow = Flow::new(None, "", false, &mut repr);
        if let Err(r) = self.output_hooks(pkt, attach, &mut flow, out) {
            self.p.count_drop(r);
        }
    }

    fn output_hooks(
        &mut self,
        pkt: &mut [u8],
        attach: Option<Binding>,
        flow: &mut Flow<'p, '_>,
        out: &mut dyn Emit,
    ) -> Result<(), DropReason> {
        // Locally generated packets are routed before OUTPUT (so `-o`
        // matches there), and routed again after a DNAT in nat OUTPUT.
        let route = |p: &Pipeline, repr: &PacketRepr| {
            p.routes
                .lookup(repr.v4().dst.into())
                .forward_if()
                .ok_or(DropReason::NoRoute)
        };
        let mut egress = route(self.p, flow.repr)?;
        flow.out_name = self.p.iface_name(egress);
        self.filter_step(TableKind::Raw, Hook::Output, pkt, flow, out)?;
        if flow.marks.notrack {
            flow.set_conn(Conn::None { untracked: true });
        } else if attach.is_none() {
            flow.set_conn(self.track(pkt, flow.repr));
        }
        // mangle OUTPUT, nat OUTPUT (DNAT), filter, security.
        self.filter_step(TableKind::Mangle, Hook::Output, pkt, flow, out)?;
        match attach {
            Some(b) => b.apply(pkt, flow.repr, false, Manip::Dst),
            None => self.nat_hook(Hook::Output, Manip::Dst, pkt, None, flow)?,
        }
        egress = route(self.p, flow.repr)?;
        flow.out_name = self.p.iface_name(egress);
        self.filter_steps(
            &[TableKind::Filter, TableKind::Security],
            Hook::Output,
            pkt,
            flow,
            out,
        )?;
        self.filter_step(TableKind::Mangle, Hook::Postrouting, pkt, flow, out)?;
        match attach {
            Some(b) => b.apply(pkt, flow.repr, false, Manip::Src),
            None => {
                self.nat_hook(Hook::Postrouting, Manip::Src, pkt, Some(egress), flow)?;
                self.confirm(pkt, flow)?;
            }
        }
        self.p.stats.emitted.fetch_add(1, Ordering::Relaxed);
        let mtu = self.p.mtu(egress);
        if pkt.len() > mtu {
            // An echo reply to a reassembled large request: the kernel's
            // ICMP socket is IP_PMTUDISC_DONT, so the reply goes out without
            // DF, in fragments of the egress MTU.
            if pkt[6] & 0x40 != 0 {
                let old = u16::from_be_bytes([pkt[6], pkt[7]]);
                pkt[6] &= !0x40;
                let c = u16::from_be_bytes([pkt[10], pkt[11]]);
                let c = checksum::update16(c, old, old & !0x4000);
                pkt[10..12].copy_from_slice(&c.to_be_bytes());
            }
            return defrag::fragment(pkt, mtu, |f| out.emit(egress, f))
                .map(|_| ())
                .map_err(|_| DropReason::Fragment);
        }
        out.emit(egress, pkt);
        Ok(())
    }

    /// Conntrack lookup for a (reassembled) packet. Inlined: the `Conn`
    /// is built in place (returned through memory it cost a
    /// store-forwarding stall per packet).
    #[inline]
    fn track(&mut self, pkt: &[u8], repr: &PacketRepr) -> Conn<'p> {
        let key = conntrack::classify_repr(repr, pkt);
        let len = repr.total_len() as u32;
        match self.p.conntrack.track(&key, len, self.now) {
            Tracked::Known { conn, state } => Conn::Known { conn, state },
            Tracked::Related(c) => Conn::Related(c),
            Tracked::New(nc) => Conn::New(nc),
            Tracked::Invalid => Conn::None { untracked: false },
        }
    }

    /// A nat hook: new connections walk the nat table (and get a binding),
    /// others are rewritten from their entry. `iface` is the interface
    /// MASQUERADE (egress) or REDIRECT (ingress) takes its address from.
    fn nat_hook(
        &mut self,
        hook: Hook,
        manip: Manip,
        pkt: &mut [u8],
        iface: Option<IfIndex>,
        flow: &mut Flow<'p, '_>,
    ) -> Result<(), DropReason> {
        if let Conn::New(_) = flow.conn {
            let v = self.walk(TableKind::Nat, hook, pkt, flow);
            let range = match v {
                TableVerdict::Nat(t) => self.nat_range(t, iface),
                TableVerdict::Drop { policy: true } => return Err(DropReason::PolicyDrop),
                TableVerdict::Drop { policy: false } => return Err(DropReason::RuleDrop),
                _ => None,
            };
            if let (Some(range), Conn::New(nc)) = (range, &mut flow.conn) {
                nat::setup(
                    &self.p.conntrack,
                    nc,
                    &range,
                    manip,
                    &mut self.ws.rng,
                    self.now,
                )
                .map_err(|_| DropReason::NatExhausted)?;
                flow.binding = None;
            }
        }
        match &flow.conn {
            // A confirmed entry's tuples and NAT bits do not change while it
            // lives: read them at each hook, the tuple only when this hook
            // rewrites (caching a `Binding` in the flow cost a
            // store-forwarding stall: its 2-byte-aligned tuple was written
            // and read back in different widths).
            Conn::Known { conn, .. } | Conn::Related(conn) => {
                if nat_needed(conn.status(), conn.dir(), manip) {
                    let target = conn.nat_target();
                    let _ = nat::translate_repr(pkt, flow.repr, flow.partial, &target, manip);
                }
            }
            _ => {
                if let Some(b) = flow.binding() {
                    b.apply(pkt, flow.repr, flow.partial, manip);
                }
            }
        }
        Ok(())
    }

    /// The NAT range a nat-table target asks for.
    fn nat_range(&self, t: &Target, iface: Option<IfIndex>) -> Option<NatRange> {
        let flags = |f: &crate::ruleset::NatFlags| {
            let mut x = 0;
            if f.random {
                x |= nat::flags::PROTO_RANDOM;
            }
            if f.random_fully {
                x |= nat::flags::PROTO_RANDOM_FULLY;
            }
            if f.persistent {
                x |= nat::flags::PERSISTENT;
            }
            x
        };
        let from_model = |r: &crate::ruleset::NatRange, f: &crate::ruleset::NatFlags| {
            // `--to-destination :8080` names no address: the kernel keeps
            // the packet's (no NF_NAT_RANGE_MAP_IPS) and maps only the port.
            let mut nr = match r.addrs {
                Some((a, b)) => NatRange::addrs(a.into(), b.into()),
                None => NatRange::ports_only(),
            }
            .with_flags(flags(f));
            if let Some((lo, hi)) = r.ports {
                nr = nr.with_ports(lo, hi);
            }
            Some(nr)
        };
        match t {
            Target::Dnat { range, flags: f } | Target::Snat { range, flags: f } => {
                from_model(range, f)
            }
            Target::Masquerade { ports, flags: f } => {
                let addr = self.p.iface_addr(iface?);
                if addr == 0 {
                    return None;
                }
                let mut r = NatRange::addr(addr.into()).with_flags(flags(f));
                if let Some((lo, hi)) = ports {
                    r = r.with_ports(*lo, *hi);
                }
                Some(r)
            }
            Target::Redirect { ports, flags: f } => {
                let addr = self.p.iface_addr(iface?);
                Some(NatRange::redirect(addr.into(), *ports).with_flags(flags(f)))
            }
            _ => None,
        }
    }

    /// conntrack confirm at the last hook.
    fn confirm(&mut self, pkt: &mut [u8], flow: &mut Flow<'p, '_>) -> Result<(), DropReason> {
        let Conn::New(nc) = &flow.conn else {
            return Ok(());
        };
        match self.p.conntrack.confirm(nc, self.now) {
            Ok(c) => {
                if c.clash == Some(ClashKind::Retranslate) {
                    let target = c.conn.nat_target();
                    let _ = nat::translate_both_repr(pkt, flow.repr, flow.partial, &target);
                }
                flow.set_conn(Conn::Known {
                    conn: c.conn,
                    state: CtState::New,
                });
                Ok(())
            }
            Err(ConfirmError::Full) => Err(DropReason::ConntrackFull),
            Err(ConfirmError::ReplyTaken) => Err(DropReason::NatExhausted),
        }
    }

    /// Local delivery: the gateway answers as a Linux host with no listening
    /// sockets would (echo reply, TCP RST, ICMP port/protocol unreachable).
    fn deliver_local(&mut self, pkt: &[u8], ingress: IfIndex, out: &mut dyn Emit) -> Verdict {
        let ihl = ((pkt[0] & 0x0f) as usize) * 4;
        match pkt[9] {
            1 if pkt.get(ihl) == Some(&icmp::types::ECHO_REQUEST) => {
                self.ws.ip_id = self.ws.ip_id.wrapping_add(1);
                let id = self.ws.ip_id;
                let mut buf = std::mem::take(&mut self.ws.scratch);
                if build::echo_reply(pkt, id, &mut buf) {
                    self.output(&mut buf, None, out);
                }
                self.ws.scratch = buf;
                Verdict::Consumed
            }
            1 => Verdict::Consumed,
            6 => {
                let mut buf = std::mem::take(&mut self.ws.scratch);
                if build::tcp_reset(pkt, &mut buf) {
                    self.output(&mut buf, None, out);
                }
                self.ws.scratch = buf;
                Verdict::Drop(DropReason::LocalNoListener)
            }
            17 => {
                self.icmp_error(pkt, unreach(unreach_code::PORT), Some(ingress), None, out);
                Verdict::Drop(DropReason::LocalNoListener)
            }
            _ => {
                self.icmp_error(pkt, unreach(unreach_code::PROTO), Some(ingress), None, out);
                Verdict::Drop(DropReason::LocalNoListener)
            }
        }
    }

    /// PREROUTING through POSTROUTING for a packet that arrived on `ingress`.
    fn input(
        &mut self,
        ingress: IfIndex,
        pkt: &mut [u8],
        repr: &mut PacketRepr,
        vnet: &mut VnetHdr,
        out: &mut dyn Emit,
    ) -> Verdict {
        let name = self.p.iface_name(ingress);
        let mut flow = Flow::new(Some(ingress), name, vnet.needs_csum(), repr);
        match self.input_hooks(ingress, pkt, vnet, &mut flow, out) {
            Ok(v) => v,
            Err(r) => Verdict::Drop(r),
        }
    }

    fn input_hooks(
        &mut self,
        ingress: IfIndex,
        pkt: &mut [u8],
        vnet: &VnetHdr,
        flow: &mut Flow<'p, '_>,
        out: &mut dyn Emit,
    ) -> Result<Verdict, DropReason> {
        // PREROUTING: raw, conntrack, mangle, nat (DNAT).
        self.filter_step(TableKind::Raw, Hook::Prerouting, pkt, flow, out)?;
        let conn = if flow.marks.notrack {
            Conn::None { untracked: true }
        } else if !l4_valid(pkt, flow.repr, vnet) {
            // nf_conntrack_checksum: conntrack leaves a packet with a bad
            // L4 checksum or length untracked (INVALID) at PREROUTING.
            Conn::None { untracked: false }
        } else {
            self.track(pkt, flow.repr)
        };
        flow.set_conn(conn);
        self.filter_step(TableKind::Mangle, Hook::Prerouting, pkt, flow, out)?;
        self.nat_hook(Hook::Prerouting, Manip::Dst, pkt, Some(ingress), flow)?;

        // Routing decision.
        let egress = match self.p.routes.lookup(flow.repr.v4().dst.into()) {
            RouteResult::Local(_) => None,
            RouteResult::Forward(i) => Some(i),
            RouteResult::Unreachable => {
                let attach = flow.conn.answer();
                self.icmp_error(pkt, unreach(unreach_code::NET), Some(ingress), attach, out);
                return Err(DropReason::NoRoute);
            }
        };

        let Some(egress) = egress else {
            // INPUT: mangle, filter, security, nat (SNAT), confirm, deliver.
            let tables = [TableKind::Mangle, TableKind::Filter, TableKind::Security];
            self.filter_steps(&tables, Hook::Input, pkt, flow, out)?;
            self.nat_hook(Hook::Input, Manip::Src, pkt, Some(ingress), flow)?;
            self.confirm(pkt, flow)?;
            return Ok(self.deliver_local(pkt, ingress, out));
        };

        // ip_forward: TTL and MTU checks come before the FORWARD hook.
        if flow.repr.v4().ttl <= 1 {
            let attach = flow.conn.answer();
            let spec = IcmpSpec {
                ty: icmp::types::TIME_EXCEEDED,
                code: 0,
                extra: 0,
            };
            self.icmp_error(pkt, spec, Some(ingress), attach, out);
            return Err(DropReason::TtlExceeded);
        }
        let mtu = self
            .p
            .ifaces
            .get(egress.0 as usize)
            .map_or(u16::MAX, |i| i.mtu) as usize;
        let wire_len = if vnet.is_gso() {
            vnet.hdr_len as usize + vnet.gso_size as usize
        } else {
            flow.repr.total_len() as usize
        };
        if wire_len > mtu && (flow.repr.v4().dont_frag() || vnet.is_gso()) {
            let attach = flow.conn.answer();
            let spec = IcmpSpec {
                extra: mtu as u32,
                ..unreach(unreach_code::FRAG_NEEDED)
            };
            self.icmp_error(pkt, spec, Some(ingress), attach, out);
            return Err(DropReason::FragNeeded);
        }
        flow.repr.v4_mut().ttl = Ipv4Packet::new_unchecked(&mut *pkt).decrement_ttl();
        flow.out_name = self.p.iface_name(egress);
        let tables = [TableKind::Mangle, TableKind::Filter, TableKind::Security];
        self.filter_steps(&tables, Hook::Forward, pkt, flow, out)?;
        // POSTROUTING: mangle, nat (SNAT/MASQUERADE), confirm.
        self.filter_step(TableKind::Mangle, Hook::Postrouting, pkt, flow, out)?;
        self.nat_hook(Hook::Postrouting, Manip::Src, pkt, Some(egress), flow)?;
        self.confirm(pkt, flow)?;
        Ok(Verdict::Forward(egress))
    }
}

trait RouteResultExt {
    fn forward_if(self) -> Option<IfIndex>;
}

impl RouteResultExt for RouteResult {
    fn forward_if(self) -> Option<IfIndex> {
        match self {
            RouteResult::Forward(i) | RouteResult::Local(i) => Some(i),
            RouteResult::Unreachable => None,
        }
    }
}

fn src_of(pkt: &[u8]) -> u32 {
    u32::from_be_bytes([pkt[12], pkt[13], pkt[14], pkt[15]])
}

impl Processor for Pipeline {
    type Worker = Worker;

    fn worker(&self, index: usize) -> Worker {
        Pipeline::worker(self, index)
    }

    fn process(
        &self,
        w: &mut Worker,
        ctx: &PacketCtx,
        packet: &mut [u8],
        vnet: &mut VnetHdr,
        out: &mut dyn Emit,
    ) -> Verdict {
        if !vnet.consistent_with(packet) {
            return Verdict::Drop(DropReason::BadVnetHdr);
        }
        let mut repr = match parse_ipv4(packet) {
            Ok(r) => r,
            Err(r) => return Verdict::Drop(r),
        };
        let total = usize::from(repr.total_len());
        if total < packet.len() && !vnet.is_gso() {
            // ip_rcv_core trims bytes past the total length (link padding,
            // or garbage) before anything looks at the packet; the packet
            // that leaves is `total` bytes long.
            let trimmed = &mut packet[..total];
            return match self.process(w, ctx, trimmed, vnet, out) {
                Verdict::Forward(egress) => {
                    if vnet.needs_csum() {
                        finish_partial_csum(trimmed, vnet);
                    }
                    self.emit_fragmented(egress, trimmed, usize::MAX, out)
                }
                other => other,
            };
        }
        if repr.v4().is_fragment() {
            // As nf_defrag_ipv4: reassemble before conntrack, so rules and
            // NAT see the whole datagram; refragment on the way out, no
            // larger than the largest fragment that came in.
            return match self.defrag.process(packet, ctx.now) {
                DefragOutcome::Held => Verdict::Consumed,
                DefragOutcome::Complete {
                    mut packet,
                    max_frag_size,
                } => {
                    // Built by defrag from checked fragments: structurally
                    // sound; described once, as an unfragmented packet.
                    let Ok(mut repr) = PacketRepr::parse(&packet) else {
                        return Verdict::Drop(DropReason::Fragment);
                    };
                    let mut plain = VnetHdr::default();
                    match self.input(w, ctx, &mut packet, &mut repr, &mut plain, out) {
                        Verdict::Forward(egress) => {
                            self.emit_fragmented(egress, &packet, max_frag_size, out)
                        }
                        other => other,
                    }
                }
                DefragOutcome::Dropped(_) | DefragOutcome::NotFragment => {
                    Verdict::Drop(DropReason::Fragment)
                }
            };
        }
        match self.input(w, ctx, packet, &mut repr, vnet, out) {
            Verdict::Forward(egress) if !vnet.is_gso() && packet.len() > self.mtu(egress) => {
                // Larger than the egress MTU without DF (DF was answered
                // with frag-needed before FORWARD): fragment, as ip_fragment.
                self.emit_fragmented(egress, packet, usize::MAX, out)
            }
            v => v,
        }
    }
}

impl Pipeline {
    fn input(
        &self,
        w: &mut Worker,
        ctx: &PacketCtx,
        packet: &mut [u8],
        repr: &mut PacketRepr,
        vnet: &mut VnetHdr,
        out: &mut dyn Emit,
    ) -> Verdict {
        let g = self.generation.load(Ordering::Acquire);
        if w.generation != g {
            w.rules = self.ruleset();
            w.generation = g;
        }
        let mut t = Trav {
            p: self,
            rules: &w.rules,
            ws: &mut w.state,
            worker: w.index,
            now: ctx.now,
        };
        let v = t.input(ctx.ingress, packet, repr, vnet, out);
        // LOG lines leave as events once the packet is done.
        for (level, line) in w.state.logs.drain(..) {
            out.log(level, &line);
        }
        v
    }

    fn mtu(&self, i: IfIndex) -> usize {
        self.ifaces
            .get(i.0 as usize)
            .map_or(usize::MAX, |f| f.mtu as usize)
    }

    /// Writes `packet` out of `egress` in fragments of at most
    /// min(egress MTU, `max_frag`) bytes.
    fn emit_fragmented(
        &self,
        egress: IfIndex,
        packet: &[u8],
        max_frag: usize,
        out: &mut dyn Emit,
    ) -> Verdict {
        let mtu = self.mtu(egress).min(max_frag);
        if packet.len() <= mtu {
            out.emit(egress, packet);
            return Verdict::Consumed;
        }
        match defrag::fragment(packet, mtu, |f| out.emit(egress, f)) {
            Ok(_) => Verdict::Consumed,
            Err(_) => Verdict::Drop(DropReason::Fragment),
        }
    }
}

/// ip_rcv_core's checks: version, IHL, total length, header checksum,
/// option structure (see [`parse_ipv4`]).
pub fn check_ipv4(p: &[u8]) -> Result<(), DropReason> {
    parse_ipv4(p).map(|_| ())
}

/// The pipeline's one parse: ip_rcv_core's checks, then the packet's
/// description ([`PacketRepr::parse_checked`]) that rule evaluation,
/// conntrack and the hooks read instead of the header bytes.
#[inline]
pub fn parse_ipv4(p: &[u8]) -> Result<PacketRepr, DropReason> {
    PacketRepr::parse_checked(p).map_err(|e| match e {
        ParseError::Malformed | ParseError::BadOptions => DropReason::Malformed,
        ParseError::Ipv6 => DropReason::Ipv6Unsupported,
        ParseError::BadVersion => DropReason::BadVersion,
        ParseError::BadChecksum => DropReason::BadIpChecksum,
    })
}

/// Completes a CHECKSUM_PARTIAL L4 checksum (the field holds the
/// pseudo-header sum) so the packet can leave without its vnet header.
/// The caller has checked the field lies inside `pkt`.
fn finish_partial_csum(pkt: &mut [u8], vnet: &VnetHdr) {
    let start = usize::from(vnet.csum_start);
    let at = start + usize::from(vnet.csum_offset);
    let c = !checksum::fold(checksum::sum(&pkt[start..], 0));
    pkt[at..at + 2].copy_from_slice(&c.to_be_bytes());
}

/// What conntrack's `tcp_error`/`udp_error`/`icmp_error` check before
/// tracking a packet at PREROUTING (nf_conntrack_checksum = 1): the UDP
/// length within the packet, and the TCP, UDP (unless 0) and ICMP
/// checksums, unless the vnet header says the checksum is partial or was
/// already validated (CHECKSUM_PARTIAL / CHECKSUM_UNNECESSARY skbs are not
/// checked by the kernel either). Only unfragmented (or reassembled)
/// packets are checked. Header-length errors are left to `classify`.
fn l4_valid(pkt: &[u8], repr: &PacketRepr, vnet: &VnetHdr) -> bool {
    let ip = repr.v4();
    if ip.is_fragment() {
        return true;
    }
    let l4 = repr.l4_bytes(pkt);
    let proto = ip.proto;
    if proto == 17 && l4.len() >= 8 {
        let ulen = usize::from(u16::from_be_bytes([l4[4], l4[5]]));
        if ulen < 8 || ulen > l4.len() {
            return false;
        }
    }
    if vnet.needs_csum() || vnet.flags & crate::wire::vnet::F_DATA_VALID != 0 {
        return true;
    }
    let pseudo = |p: u8| {
        let (src, dst) = (Ipv4Addr::from(ip.src), Ipv4Addr::from(ip.dst));
        checksum::pseudo_header_sum(src, dst, p, l4.len() as u16)
    };
    match proto {
        6 if l4.len() >= 20 => checksum::fold(checksum::sum(l4, pseudo(6))) == 0xffff,
        17 if l4.len() >= 8 && (l4[6] != 0 || l4[7] != 0) => {
            checksum::fold(checksum::sum(l4, pseudo(17))) == 0xffff
        }
        1 if l4.len() >= 4 => checksum::fold(checksum::sum(l4, 0)) == 0xffff,
        _ => true,
    }
}
