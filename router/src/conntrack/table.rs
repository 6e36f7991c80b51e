//! The connection table shared by all worker threads.
//!
//! This file is the table proper: lookup (with its lock-free hints),
//! [`ConnTable::track`], confirm with clash resolution and early drop,
//! removal, and the incremental sweep. Its parts are sibling modules of
//! `conntrack`, one concept each: `slab` (the slots, free list and chunk
//! give-back), `index` (the sharded tuple index, the hint table, the
//! by-source key), `conn` (`NewConn`, and `ConnRef` with the per-packet
//! protocol update), `event` (the `conntrack -E` queue), `snapshot` (entry
//! copies and their `conntrack -L` line), `bulk` (listing, deletion and
//! marking for the `conntrack` command); the hasher is in [`crate::hash`].
//!
//! # Layout
//! Why dashmap plus a slab, measured with `examples/ct_bench.rs` (release,
//! this 2-core EPYC VM): lookup+update 29 M/s on one core at 1k entries and
//! 46 M/s total with two workers on disjoint flows (the shard locks do not
//! serialize them); 184 accounted / ~195 RSS bytes per entry at 1M entries,
//! where `Arc`-per-entry values would cost an estimated ~260 (not measured:
//! two 32-byte map slots at the same load, plus the Arc header and
//! allocator rounding of a ~110-byte entry).
//!
//! - Entries live in a **slab** of fixed-size slots (`Slot`, 128 bytes, all
//!   fields atomics so readers need no lock), allocated lazily in chunks of
//!   4095 up to `max_entries`; freed slots go on a free list. Entry memory is
//!   allocated only when a chunk is first touched, never per packet. A chunk
//!   whose slots are all free (after a mass expiry) is given back to the
//!   kernel at the end of a sweep pass (its pages dropped, reading as zero,
//!   a free slot) and reused before the slab grows; the index shards shrink
//!   at the same moment (see [`ConnTable::shrink_idle`]).
//!   TCP window tracking took the slot from 96 to 128 bytes: at 1M entries
//!   ct_bench accounts 149 bytes per entry (117 before), pipeline_bench
//!   measures 170 RSS (145-157), the soak 178-197 (165 in the same hour).
//! - A **sharded index** (`SlotIndex`: 32+ shards of `hashbrown::HashTable<u32>`,
//!   one `RwLock` each, cache-padded) maps *both* tuples of a connection to
//!   `slot << 1 | direction`, so an ORIGINAL and a REPLY packet find the same
//!   slot. A bucket holds only that `u32` (5 bytes with its control byte);
//!   the key is compared, and rehashed on growth, by reading the tuple from
//!   the slot. With dashmap storing the 16-byte tuple as key (21-byte
//!   buckets) a million entries cost 184 accounted / 192-220 RSS bytes each
//!   and `bench/conntrack-soak.sh` measured 233-235; the key-less index takes
//!   that to 117 accounted (ct_bench) and 162-169 measured by the soak
//!   (issue 6 target <= 200). Cost: hot lookups in a 1M table ~8 % slower
//!   in ct_bench (27-24 M/s vs 29.5 M/s), still far below a packet's cost.
//!   The hasher ([`TupleHasher`](crate::hash::TupleHasher), with the measurement
//!   against SipHash) is a keyed multiply-xorshift over the packed tuple
//!   (two `u64` words), with a random key per table against collision
//!   flooding.
//! - A lookup is: hash, shard read lock, probe, copy out a `u32`, unlock, then
//!   atomic loads from the slot (a generation/live word guards against slot
//!   reuse: the slot's tuple must still equal the key). No allocation.
//!
//! # Expiry
//! Each slot holds its deadline. Expired entries are removed (a) lazily when a
//! lookup or a confirm meets them (the kernel's `nf_ct_is_expired` check), and
//! (b) by an incremental sweep, [`ConnTable::gc`], that examines a fixed
//! number of slots per call from a rotating cursor; `confirm` calls it with
//! `gc_budget` slots, so the cost per new flow is O(1) and the whole slab is
//! visited every `capacity / gc_budget` new flows; the dataplane should also
//! call it periodically when idle. Nothing ever scans the whole table per packet.
//!
//! # Full table
//! As the kernel's `early_drop`: when `entries >= max_entries`, up to
//! [`EARLY_DROP_SCAN`] slots starting at a position derived from the new
//! tuple's hash are examined and the first expired or non-ASSURED entry is
//! evicted; if none is found the new connection is refused
//! (`Stats::insert_failed`, the pipeline drops the packet as `ConntrackFull`).
//!
//! # Clash (nf_ct_resolve_clash)
//! Two workers may build the same ORIGINAL tuple at once (kube DNS: A and AAAA
//! from one UDP socket). The loser of `confirm` gets the winner's entry back
//! (`Confirmed::clash`): `Compatible` when the NAT result is the same (the
//! packet is already right), `Retranslate` when it differs (the caller rewrites
//! the packet to the winner's binding with `nat::translate`). The packet is
//! never dropped for a clash; its counters are added to the winner.

use super::conn::{ConnRef, NewConn};
use super::event::{CtEvent, EventKind, EventQueue};
use super::index::{dir_of, HintTable, SlotIndex, SrcKey, SHRINK_MIN};
use super::slab::{Release, Slab, Slot, BUSY, GEN_SHIFT, LIVE};
use super::tcp::{self, TcpBits};
use super::PACK_V6;
use super::{
    ConntrackConfig, CtState, Dir, Status, Tuple, PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP,
    PROTO_UDPLITE,
};
use crate::clock::Timestamp;
use crate::hash::TupleHashBuilder;
use dashmap::DashMap;
use std::fmt;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering::*};
use std::sync::OnceLock;
use std::time::Duration;

/// Slots examined by early drop (the kernel looks at 8 buckets' chains).
pub const EARLY_DROP_SCAN: usize = 64;

/// How a `confirm` that found the tuple already present was resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClashKind {
    /// Same NAT result: the packet is already correct.
    Compatible,
    /// Different NAT result: rewrite the packet to `conn.nat_target()`.
    Retranslate,
}

/// Result of [`ConnTable::confirm`].
#[derive(Debug)]
pub struct Confirmed<'a> {
    pub conn: ConnRef<'a>,
    pub clash: Option<ClashKind>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfirmError {
    /// Table full and nothing could be evicted (`insert_failed` counted).
    Full,
    /// The REPLY tuple is taken by another connection (a NAT allocation race
    /// or a reply tuple colliding with an existing flow): drop as the kernel does.
    ReplyTaken,
}

/// Counters (`conntrack -S` style).
#[derive(Debug, Default)]
pub struct Stats {
    pub inserted: AtomicU64,
    pub early_drop: AtomicU64,
    pub insert_failed: AtomicU64,
    pub expired: AtomicU64,
    pub deleted: AtomicU64,
    pub clash_resolved: AtomicU64,
    pub invalid: AtomicU64,
    pub events_lost: AtomicU64,
}

/// A point-in-time copy of these counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub entries: usize,
    pub inserted: u64,
    pub early_drop: u64,
    pub insert_failed: u64,
    pub expired: u64,
    pub deleted: u64,
    pub clash_resolved: u64,
    pub invalid: u64,
    pub events_lost: u64,
}

/// Why an entry left the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum KillReason {
    Expired,
    EarlyDrop,
    Deleted,
    Reopen,
}

/// The shared connection table.
pub struct ConnTable {
    pub(super) cfg: ConntrackConfig,
    /// Both tuples of every entry -> `slot << 1 | direction`, sharded by
    /// hash. The buckets hold only the `u32`; the key is read from the slot
    /// (see [`SlotIndex`]).
    pub(super) map: SlotIndex,
    /// Lock-free front of `map` for lookups (see [`ConnTable::lookup`]).
    hints: HintTable,
    /// Source-NATed connections by original source (address, port, proto):
    /// the kernel's `nf_nat_bysource`, for `find_appropriate_src`.
    bysrc: DashMap<SrcKey, u32, TupleHashBuilder>,
    /// The entries' slots, and the free list.
    pub(super) slab: Slab,
    count: AtomicUsize,
    next_id: AtomicU32,
    gc_cursor: AtomicUsize,
    hasher: TupleHashBuilder,
    pub(super) stats: Stats,
    /// `conntrack -E` events and their listeners.
    pub(super) events: EventQueue,
    /// How free slab chunks go back to the operating system; unset (the
    /// sans-IO default, and tests'), they stay allocated and are reused.
    release: OnceLock<Release>,
}

impl fmt::Debug for ConnTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnTable")
            .field("entries", &self.len())
            .finish()
    }
}

/// What [`ConnTable::track`] made of a packet.
#[derive(Debug)]
pub enum Tracked<'a> {
    /// A confirmed entry; the protocol tracker accepted the packet.
    Known { conn: ConnRef<'a>, state: CtState },
    /// An ICMP error about a tracked connection (direction of the error).
    Related(ConnRef<'a>),
    /// First packet of a connection: NAT it, then [`ConnTable::confirm`].
    New(NewConn),
    /// INVALID (no entry; rules see `--ctstate INVALID`).
    Invalid,
    /// Left untracked by conntrack itself (ICMPv6 neighbour and router
    /// discovery, MLD): rules see `--ctstate UNTRACKED`.
    Untracked,
}

impl ConnTable {
    pub fn new(cfg: ConntrackConfig) -> ConnTable {
        Self::with_hasher(cfg, TupleHashBuilder::random())
    }

    /// A table with a fixed hash key (deterministic tests).
    pub fn with_hasher(cfg: ConntrackConfig, hasher: TupleHashBuilder) -> ConnTable {
        let capacity = cfg.max_entries.clamp(1, (u32::MAX >> 2) as usize);
        let shards = (std::thread::available_parallelism().map_or(4, |n| n.get()) * 16)
            .next_power_of_two()
            .max(16);
        ConnTable {
            map: SlotIndex::new(shards),
            hints: HintTable::new(
                capacity,
                hasher.key().rotate_left(17) ^ 0x6a09_e667_f3bc_c909,
            ),
            bysrc: DashMap::with_hasher_and_shard_amount(hasher, shards),
            slab: Slab::new(capacity),
            count: AtomicUsize::new(0),
            next_id: AtomicU32::new(1),
            gc_cursor: AtomicUsize::new(0),
            hasher,
            stats: Stats::default(),
            events: EventQueue::new(cfg.event_queue),
            release: OnceLock::new(),
            cfg,
        }
    }

    /// Sets the step that gives the memory of free slab chunks back to the
    /// operating system (`sys::mem::discard`, passed in by the edge: the
    /// core makes no system call). Once; later calls are ignored.
    pub fn set_release(&self, release: Release) {
        let _ = self.release.set(release);
    }

    pub fn config(&self) -> &ConntrackConfig {
        &self.cfg
    }

    /// Number of confirmed entries.
    pub fn len(&self) -> usize {
        self.count.load(Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn stats(&self) -> StatsSnapshot {
        let s = &self.stats;
        StatsSnapshot {
            entries: self.len(),
            inserted: s.inserted.load(Relaxed),
            early_drop: s.early_drop.load(Relaxed),
            insert_failed: s.insert_failed.load(Relaxed),
            expired: s.expired.load(Relaxed),
            deleted: s.deleted.load(Relaxed),
            clash_resolved: s.clash_resolved.load(Relaxed),
            invalid: s.invalid.load(Relaxed),
            events_lost: s.events_lost.load(Relaxed),
        }
    }

    /// Bytes the table has allocated (slab chunks touched so far, the hash
    /// map's buckets, the free list): an accounting, not a measurement; see
    /// `examples/ct_bench.rs` for the RSS figure.
    pub fn memory_usage(&self) -> usize {
        let slab = self.slab.memory_usage();
        // hashbrown: capacity = 7/8 of the (power of two) buckets; each bucket
        // is one (key, value) pair plus one control byte.
        let buckets = self.map.capacity() * 8 / 7;
        let map = buckets * (std::mem::size_of::<u32>() + 1);
        let bysrc = self.bysrc.capacity() * 8 / 7 * (std::mem::size_of::<(SrcKey, u32)>() + 1);
        let hints = self.hints.memory_usage();
        slab + map + bysrc + hints + std::mem::size_of::<Self>()
    }

    /// The tuple an index value stands for (`slot << 1 | direction`).
    fn key_of(&self, v: u32) -> Tuple {
        self.slab.tuple(v >> 1, self.slab.get(v >> 1), dir_of(v))
    }

    /// The index alone (no hints), for the invariant checks.
    #[cfg(test)]
    fn map_get(&self, t: &Tuple) -> Option<u32> {
        let h = self.hasher.hash_one(t);
        let shard = self.map.shard(h).read().unwrap_or_else(|e| e.into_inner());
        shard.find(h, |&v| self.key_of(v) == *t).copied()
    }

    /// Inserts `t -> v` unless `t` is present: then `Err(existing value)`.
    fn map_insert(&self, t: &Tuple, v: u32) -> Result<(), u32> {
        let h = self.hasher.hash_one(t);
        let mut shard = self.map.shard(h).write().unwrap_or_else(|e| e.into_inner());
        if let Some(&existing) = shard.find(h, |&x| self.key_of(x) == *t) {
            return Err(existing);
        }
        shard.insert_unique(h, v, |&x| self.hasher.hash_one(self.key_of(x)));
        Ok(())
    }

    /// Removes the index entry of `t` if its value is `v` (values are
    /// unique: one per slot and direction).
    fn map_remove(&self, t: &Tuple, v: u32) {
        let h = self.hasher.hash_one(t);
        let mut shard = self.map.shard(h).write().unwrap_or_else(|e| e.into_inner());
        if let Ok(e) = shard.find_entry(h, |&x| x == v) {
            e.remove();
        }
    }

    /// Size of one slab slot (bytes).
    pub const SLOT_BYTES: usize = std::mem::size_of::<Slot>();

    /// Finds the entry one of whose tuples is `t`. An expired entry is
    /// removed on the spot and not returned.
    ///
    /// The lock-free hint table is tried first (see [`HintTable`]); the
    /// index only on a miss, and a live entry found there is hinted.
    pub fn lookup(&self, t: &Tuple, now: Timestamp) -> Option<ConnRef<'_>> {
        let packed = t.pack();
        let hh = self.hints.hash(packed);
        let (s, idx, dir, gl) = match self.hinted(hh, t, packed) {
            Some(hit) => hit,
            None => {
                let h = self.hasher.hash_one(t);
                let v = {
                    let shard = self.map.shard(h).read().unwrap_or_else(|e| e.into_inner());
                    *shard.find(h, |&v| self.key_of(v) == *t)?
                };
                let (idx, dir) = (v >> 1, dir_of(v));
                let s = self.slab.get(idx);
                let gl = s.gen_live.load(Acquire);
                if gl & LIVE == 0 || self.slab.tuple(idx, s, dir) != *t {
                    return None;
                }
                self.hints.set(hh, v);
                (s, idx, dir, gl)
            }
        };
        if s.deadline.load(Relaxed) <= now.0 {
            self.kill(idx, gl >> GEN_SHIFT, KillReason::Expired);
            return None;
        }
        Some(ConnRef {
            table: self,
            slot: s,
            idx,
            gen: gl >> GEN_SHIFT,
            dir,
        })
    }

    /// The hinted entry for the packed tuple (hint hash `h`): (slot, its index, direction,
    /// generation word) if the slot is live and holds `t` in that direction, read as a
    /// seqlock against reuse: `confirm` writes a reused slot's tuples only
    /// after a release fence that follows (through the free list's lock) the
    /// generation bump of its freeing, so tuple words of a new tenant seen
    /// here before the acquire fence imply the second generation read sees
    /// the bump.
    #[inline]
    fn hinted(&self, h: u64, t: &Tuple, packed: (u64, u64)) -> Option<(&Slot, u32, Dir, u32)> {
        let v = self.hints.get(h)?;
        let (idx, dir) = (v >> 1, dir_of(v));
        let s = self.slab.get(idx);
        let gl = s.gen_live.load(Acquire);
        // BUSY: being confirmed, maybe not in the index yet (or a clash
        // loser about to be freed): only the index decides.
        if gl & (LIVE | BUSY) != LIVE {
            return None;
        }
        let i = dir.index() * 2;
        let (a, b) = (s.tuples[i].load(Relaxed), s.tuples[i + 1].load(Relaxed));
        // IPv6: the packed words hold a fold of the addresses; compare the
        // whole tuple (read under the same seqlock).
        let full = (b & PACK_V6 != 0).then(|| self.slab.tuple(idx, s, dir));
        std::sync::atomic::fence(Acquire);
        let again = s.gen_live.load(Relaxed);
        let same = (a, b) == packed && full.is_none_or(|f| f == *t);
        (again == gl && same).then_some((s, idx, dir, gl))
    }

    /// The conntrack hook in one call: lookup (or RELATED lookup), protocol
    /// update, or a new unconfirmed connection. No allocation.
    #[inline]
    pub fn track(&self, key: &super::PacketKey, len: u32, now: Timestamp) -> Tracked<'_> {
        match *key {
            super::PacketKey::Flow { tuple, tcp, .. } => {
                if let Some(conn) = self.lookup(&tuple, now) {
                    match conn.update(&tcp, len, now) {
                        CtState::Invalid => return Tracked::Invalid,
                        CtState::New if !conn.alive() => {} // TCP reopen: the old entry is gone.
                        state => return Tracked::Known { conn, state },
                    }
                }
                match self.new_conn(&tuple, &tcp, len, now) {
                    Some(nc) => Tracked::New(nc),
                    None => Tracked::Invalid,
                }
            }
            super::PacketKey::IcmpError { embedded } => match self.lookup_related(&embedded, now) {
                Some(c) => Tracked::Related(c),
                None => Tracked::Invalid,
            },
            super::PacketKey::Untrackable => Tracked::Invalid,
            super::PacketKey::NoTrack => Tracked::Untracked,
        }
    }

    /// RELATED lookup for an ICMP error: `embedded` is the quoted packet's
    /// tuple as it was sent; the error travels the other way, so the entry is
    /// found by its inverse. The returned direction is that of the error.
    pub fn lookup_related(&self, embedded: &Tuple, now: Timestamp) -> Option<ConnRef<'_>> {
        let inv = embedded.invert()?;
        self.lookup(&inv, now)
    }

    /// The kernel's `find_appropriate_src`: the translated source (address,
    /// port) of a live source-NATed connection from the same original source
    /// address, port and protocol, so a client keeps one mapping across
    /// destinations (when free and in range; the caller checks).
    pub fn find_src_mapping(&self, orig: &Tuple, now: Timestamp) -> Option<(u128, u16)> {
        let idx = *self.bysrc.get(&SrcKey::of(orig))?;
        let s = self.slab.get(idx);
        let gl = s.gen_live.load(Acquire);
        let o = self.slab.tuple(idx, s, Dir::Original);
        let same_src = |t: &Tuple| (t.src, t.sport, t.proto, t.family);
        if gl & LIVE == 0 || s.deadline.load(Relaxed) <= now.0 || same_src(&o) != same_src(orig) {
            return None;
        }
        let r = self.slab.tuple(idx, s, Dir::Reply);
        Some((r.dst, r.dport))
    }

    /// True if some live entry has `t` as one of its tuples (NAT's
    /// `nf_conntrack_tuple_taken`).
    pub fn tuple_taken(&self, t: &Tuple, now: Timestamp) -> bool {
        self.lookup(t, now).is_some()
    }

    /// Builds the unconfirmed connection for the first packet of a flow.
    /// `None` if the packet cannot start a connection (INVALID: a TCP
    /// segment that is not a SYN, or not an ACK when loose pickup is on;
    /// an ICMP reply type; bad TCP flags).
    pub fn new_conn(
        &self,
        t: &Tuple,
        seg: &tcp::Segment,
        len: u32,
        now: Timestamp,
    ) -> Option<NewConn> {
        let mut tcp_win = tcp::Window::default();
        let proto_state = match t.proto {
            PROTO_TCP => match tcp::first(seg, self.cfg.tcp_loose, self.cfg.tcp_be_liberal) {
                Some((b, w)) => {
                    tcp_win = w;
                    b.0
                }
                None => {
                    self.stats.invalid.fetch_add(1, Relaxed);
                    return None;
                }
            },
            // stream_ts: creation + 2 s, milliseconds (wrapping u32).
            PROTO_UDP | PROTO_UDPLITE => ((now.as_nanos() / 1_000_000) as u32).wrapping_add(2000),
            PROTO_ICMP => {
                use crate::wire::icmp::types::*;
                if !matches!(
                    t.icmp_type(),
                    ECHO_REQUEST | TIMESTAMP | INFO_REQUEST | ADDRESS_MASK
                ) {
                    self.stats.invalid.fetch_add(1, Relaxed);
                    return None;
                }
                0
            }
            // icmpv6_new: only echo request and node information query
            // start a connection.
            PROTO_ICMPV6 => {
                if !matches!(t.icmp_type(), 128 | 139) {
                    self.stats.invalid.fetch_add(1, Relaxed);
                    return None;
                }
                0
            }
            _ => 0,
        };
        let reply = t.invert()?;
        Some(NewConn {
            orig: *t,
            reply,
            status: Status::default(),
            proto_state,
            tcp_win,
            mark: 0,
            len,
            created: now,
        })
    }

    fn initial_timeout(&self, nc: &NewConn) -> Duration {
        let to = &self.cfg.timeouts;
        match nc.orig.proto {
            PROTO_TCP => to.tcp(TcpBits(nc.proto_state).state()),
            PROTO_UDP | PROTO_UDPLITE => to.udp_unreplied,
            PROTO_ICMP => to.icmp,
            PROTO_ICMPV6 => to.icmpv6,
            _ => to.generic,
        }
    }

    /// Inserts the connection (both tuples) at the end of POSTROUTING.
    /// A concurrent confirm of the same ORIGINAL tuple is resolved as
    /// described in the module doc; the packet is never lost to a clash.
    pub fn confirm(&self, nc: &NewConn, now: Timestamp) -> Result<Confirmed<'_>, ConfirmError> {
        if self.cfg.gc_budget > 0 {
            self.gc(now, self.cfg.gc_budget);
        }
        // No lookup of `nc.orig` first: the insert below detects a clash
        // (rare) and saves a probe on every new flow.
        if self.count.load(Relaxed) >= self.cfg.max_entries && !self.early_drop(&nc.orig, now) {
            self.stats.insert_failed.fetch_add(1, Relaxed);
            return Err(ConfirmError::Full);
        }
        let Some(idx) = self.slab.alloc() else {
            self.stats.insert_failed.fetch_add(1, Relaxed);
            return Err(ConfirmError::Full);
        };
        let s = self.slab.get(idx);
        // Orders the generation bump that freed this slot (seen through the
        // free list's lock) before the new tuples, for `hinted`'s seqlock.
        std::sync::atomic::fence(Release);
        self.slab.store_tuples(idx, s, &nc.orig, &nc.reply);
        s.status.store(nc.status.0 | Status::CONFIRMED, Relaxed);
        s.proto.store(nc.proto_state, Relaxed);
        for (a, v) in s.tcp_win.iter().zip(nc.tcp_win.to_words()) {
            a.store(v, Relaxed);
        }
        s.deadline
            .store((now + self.initial_timeout(nc)).0, Relaxed);
        s.mark.store(nc.mark, Relaxed);
        s.id.store(self.next_id.fetch_add(1, Relaxed), Relaxed);
        s.packets[0].store(1, Relaxed);
        s.bytes[0].store(nc.len as u64, Relaxed);
        s.packets[1].store(0, Relaxed);
        s.bytes[1].store(0, Relaxed);
        let gen = s.gen_live.load(Relaxed) >> GEN_SHIFT;
        // Visible to lookups (clash detection) but not killable by a
        // concurrent sweep or early drop until both tuples are in.
        s.gen_live.store(gen << GEN_SHIFT | BUSY | LIVE, Release);

        // ORIGINAL tuple: the clash point.
        let mut tries = 0;
        loop {
            let existing = match self.map_insert(&nc.orig, idx << 1) {
                Ok(()) => break,
                Err(existing) => existing,
            };
            // Shard lock released; is the occupant alive?
            tries += 1;
            if let Some(c) = self.lookup(&nc.orig, now) {
                self.slab.release(idx);
                return Ok(self.resolve_clash(c, nc));
            }
            // Stale key (entry dead or expired and killed by lookup): drop it.
            self.map_remove(&nc.orig, existing);
            if tries > 8 {
                self.slab.release(idx);
                self.stats.insert_failed.fetch_add(1, Relaxed);
                return Err(ConfirmError::ReplyTaken);
            }
        }
        // REPLY tuple.
        if nc.reply != nc.orig {
            let mut tries = 0;
            loop {
                let existing = match self.map_insert(&nc.reply, idx << 1 | 1) {
                    Ok(()) => break,
                    Err(existing) => existing,
                };
                tries += 1;
                if self.lookup(&nc.reply, now).is_some() || tries > 8 {
                    self.map_remove(&nc.orig, idx << 1);
                    self.slab.release(idx);
                    self.stats.insert_failed.fetch_add(1, Relaxed);
                    return Err(ConfirmError::ReplyTaken);
                }
                self.map_remove(&nc.reply, existing);
            }
        }
        if nc.status.src_nat() {
            self.bysrc.insert(SrcKey::of(&nc.orig), idx);
        }
        s.gen_live.store(gen << GEN_SHIFT | LIVE, Release);
        self.count.fetch_add(1, Relaxed);
        self.stats.inserted.fetch_add(1, Relaxed);
        self.event(EventKind::New, idx);
        Ok(Confirmed {
            conn: ConnRef {
                table: self,
                slot: s,
                idx,
                gen,
                dir: Dir::Original,
            },
            clash: None,
        })
    }

    fn resolve_clash<'a>(&'a self, c: ConnRef<'a>, nc: &NewConn) -> Confirmed<'a> {
        self.stats.clash_resolved.fetch_add(1, Relaxed);
        let s = c.slot();
        let d = c.dir.index();
        s.packets[d].fetch_add(1, Relaxed);
        s.bytes[d].fetch_add(nc.len as u64, Relaxed);
        let kind = if c.dir == Dir::Original && c.reply() == nc.reply {
            ClashKind::Compatible
        } else {
            ClashKind::Retranslate
        };
        Confirmed {
            conn: c,
            clash: Some(kind),
        }
    }

    /// Evicts one expired or non-ASSURED entry near `t`'s hash position.
    fn early_drop(&self, t: &Tuple, now: Timestamp) -> bool {
        let high = self.slab.high.load(Relaxed) as usize;
        if high == 0 {
            return false;
        }
        let start = (self.hasher.hash_one(t) as usize) % high;
        for k in 0..EARLY_DROP_SCAN.min(high) {
            let idx = ((start + k) % high) as u32;
            let s = self.slab.get(idx);
            let gl = s.gen_live.load(Acquire);
            if gl & LIVE == 0 || gl & BUSY != 0 {
                continue;
            }
            if s.deadline.load(Relaxed) <= now.0 {
                if self.kill(idx, gl >> GEN_SHIFT, KillReason::Expired) {
                    return true;
                }
                continue;
            }
            if !Status(s.status.load(Relaxed)).assured()
                && self.kill(idx, gl >> GEN_SHIFT, KillReason::EarlyDrop)
            {
                return true;
            }
        }
        false
    }

    /// Removes entry `idx` of generation `gen`; false if someone else did.
    pub(super) fn kill(&self, idx: u32, gen: u32, why: KillReason) -> bool {
        let s = self.slab.get(idx);
        // Claim: live -> dying (generation kept, live bit cleared).
        if s.gen_live
            .compare_exchange(gen << GEN_SHIFT | LIVE, gen << GEN_SHIFT, AcqRel, Relaxed)
            .is_err()
        {
            return false;
        }
        s.status.fetch_or(Status::DYING, Relaxed);
        let (o, r) = (
            self.slab.tuple(idx, s, Dir::Original),
            self.slab.tuple(idx, s, Dir::Reply),
        );
        self.map_remove(&o, idx << 1);
        if r != o {
            self.map_remove(&r, idx << 1 | 1);
        }
        if Status(s.status.load(Relaxed)).src_nat() {
            self.bysrc.remove_if(&SrcKey::of(&o), |_, v| *v == idx);
        }
        if self.events_wanted() {
            let snap = self.snapshot_raw(idx, s);
            self.push_event(CtEvent {
                kind: EventKind::Destroy,
                conn: snap,
            });
        }
        match why {
            KillReason::Expired => &self.stats.expired,
            KillReason::EarlyDrop => &self.stats.early_drop,
            KillReason::Deleted | KillReason::Reopen => &self.stats.deleted,
        }
        .fetch_add(1, Relaxed);
        self.count.fetch_sub(1, Relaxed);
        s.gen_live.store(gen.wrapping_add(1) << GEN_SHIFT, Release);
        self.slab.push_free(idx);
        true
    }

    /// Incremental expiry: examines `budget` slots from a rotating cursor
    /// and removes the expired ones. Returns how many were removed.
    pub fn gc(&self, now: Timestamp, budget: usize) -> usize {
        let high = self.slab.high.load(Relaxed) as usize;
        if high == 0 {
            return 0;
        }
        let start = self.gc_cursor.fetch_add(budget, Relaxed);
        let mut n = 0;
        for k in 0..budget.min(high) {
            let idx = ((start + k) % high) as u32;
            let s = self.slab.get(idx);
            let gl = s.gen_live.load(Acquire);
            if gl & LIVE != 0
                && s.deadline.load(Relaxed) <= now.0
                && self.kill(idx, gl >> GEN_SHIFT, KillReason::Expired)
            {
                n += 1;
            }
        }
        // Once per pass over the slab (this call reached its end): hand back
        // the memory that a mass expiry left unused.
        if start % high + budget.min(high) >= high {
            self.discard_free_chunks();
            self.shrink_idle();
        }
        n
    }

    /// Gives the memory of every slab chunk whose slots are all free back to
    /// the kernel (the [`Release`] step, see [`ConnTable::set_release`]);
    /// such a chunk reads as free slots and is reused before the slab grows
    /// (details in `slab`). Returns the bytes given back; without a release
    /// step, nothing is discarded.
    pub fn discard_free_chunks(&self) -> usize {
        match self.release.get() {
            Some(&release) => self.slab.discard_free_chunks(release),
            None => 0,
        }
    }

    /// Shrinks the index shards and the by-source map when they are mostly
    /// empty (hysteresis: see `SlotIndex::shrink_idle`), e.g. after a mass
    /// expiry; the freed memory goes back to the allocator (the gateway then
    /// asks it to return pages to the kernel, see `sys::mem`). The slab
    /// is kept: its slots are read without locks through `&Slot` references,
    /// so a chunk cannot be freed while the table is shared; it is reused by
    /// the next entries. Returns the bytes released (accounting).
    pub fn shrink_idle(&self) -> usize {
        let buckets = self
            .map
            .shrink_idle(|&x| self.hasher.hash_one(self.key_of(x)));
        let mut released = buckets * 8 / 7 * (std::mem::size_of::<u32>() + 1);
        let cap = self.bysrc.capacity();
        if cap > SHRINK_MIN && self.bysrc.len().saturating_mul(4) < cap {
            self.bysrc.shrink_to_fit();
            released += cap.saturating_sub(self.bysrc.capacity()) * 8 / 7
                * (std::mem::size_of::<(SrcKey, u32)>() + 1);
        }
        released
    }

    /// Consistency check for tests (call when no other thread is working):
    /// live slots == `len()`, every live slot's two tuples map to it, the map
    /// holds nothing else, free list + live == slots handed out, no slot twice.
    #[cfg(test)]
    pub(crate) fn check_invariants(&self) {
        let high = self.slab.high.load(Relaxed);
        let seen = self.slab.check_free_list(high);
        let mut live = 0;
        let mut self_inverse = 0;
        for idx in 0..high {
            let s = self.slab.get(idx);
            let gl = s.gen_live.load(Relaxed);
            assert_eq!(gl & BUSY, 0, "slot {idx} left busy");
            if gl & LIVE != 0 {
                assert!(!seen[idx as usize], "live slot {idx} in the free list");
                live += 1;
                let (o, r) = (
                    self.slab.tuple(idx, s, Dir::Original),
                    self.slab.tuple(idx, s, Dir::Reply),
                );
                assert_eq!(self.map_get(&o), Some(idx << 1));
                if r == o {
                    // src == dst and sport == dport: one key serves both.
                    self_inverse += 1;
                } else {
                    assert_eq!(self.map_get(&r), Some(idx << 1 | 1));
                }
            } else {
                assert!(seen[idx as usize], "dead slot {idx} not in the free list");
            }
        }
        assert_eq!(live, self.len());
        assert_eq!(self.map.len(), 2 * live - self_inverse);
        for e in self.bysrc.iter() {
            let s = self.slab.get(*e.value());
            assert!(
                s.gen_live.load(Relaxed) & LIVE != 0,
                "by-source entry of a dead slot"
            );
        }
    }
}
