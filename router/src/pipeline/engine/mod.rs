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

mod conn;
mod trav;

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
    /// The IPv6 (ip6tables) ruleset: held so that `ip6tables` against the
    /// gateway edits and lists it, not yet evaluated: every IPv6 packet is
    /// dropped before the hooks until the IPv6 packet path lands.
    rules6: RwLock<Arc<Ruleset>>,
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
            rules6: RwLock::new(Arc::new(Ruleset::new_family(crate::ruleset::Family::V6))),
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

    /// The IPv6 ruleset (see `rules6`: held, not evaluated yet).
    pub fn ruleset6(&self) -> Arc<Ruleset> {
        self.rules6
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replaces the IPv6 ruleset (a validated IPv6 model).
    pub fn replace_ruleset6(&self, rs: Ruleset) {
        debug_assert_eq!(rs.family(), crate::ruleset::Family::V6);
        *self.rules6.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(rs);
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

/// What NAT does to a packet of a connection: the tuple it must show after
/// NAT in its direction, and the connection's NAT status.
#[derive(Debug, Clone, Copy)]
struct Binding {
    target: Tuple,
    status: Status,
    dir: Dir,
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
        let total = repr.total_len();
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
/// description ([`PacketRepr::parse_checked_v4_only`]) that rule evaluation,
/// conntrack and the hooks read instead of the header bytes. IPv6 is
/// refused here (counted `ipv6_unsupported`), so every description the
/// pipeline holds is IPv4.
#[inline]
pub fn parse_ipv4(p: &[u8]) -> Result<PacketRepr, DropReason> {
    PacketRepr::parse_checked_v4_only(p).map_err(|e| match e {
        ParseError::Malformed | ParseError::BadOptions => DropReason::Malformed,
        // IPv6 only: parse_checked_v4_only never returns them.
        ParseError::BadExtHeader | ParseError::BadAddress => DropReason::Malformed,
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
