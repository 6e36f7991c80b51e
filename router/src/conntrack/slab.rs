//! The slab: every connection lives in a fixed-size [`Slot`] of atomics,
//! in chunks of [`CHUNK`] slots allocated on first touch up to the table's
//! capacity and never freed while the table is shared (workers read slots
//! through plain `&Slot` references, without locks). Freed slots go on a
//! FIFO free list; a chunk whose slots are all free is given back to the
//! kernel and reused, lowest first, before the slab grows. The generation
//! word of each slot ([`LIVE`], [`BUSY`], generation above [`GEN_SHIFT`])
//! is how handles and lock-free readers tell a slot's tenants apart.
//!
//! See [`super::table`] for how the table uses it.

use super::{tcp, Dir, Tuple, PACK_V6};
use crate::wire::Family;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::*};
use std::sync::{Mutex, OnceLock};

/// Slots per slab chunk. Not 4096: mimalloc serves a large 8-aligned
/// allocation from `size + 7` bytes, so a chunk of exactly 512 KiB (4096
/// 128-byte slots) lands in the next size class and costs 24 % more RSS
/// (measured: 1.241 x the chunk bytes at 1M entries, 1.013 with 4095).
pub(super) const CHUNK: usize = 4095;
/// `Slot::gen_live` bits: live, busy (being confirmed: visible to lookups,
/// not yet killable), generation above.
pub(super) const LIVE: u32 = 1;
pub(super) const BUSY: u32 = 2;
pub(super) const GEN_SHIFT: u32 = 2;

/// One connection; every field is an atomic so workers read without locks.
/// Only atomics, whose zero is their default: a chunk of free slots is given
/// back to the kernel by the table's [`Release`] step (the edge passes
/// `sys::mem::discard`; `zeroable_atomics!` below has the compiler check that
/// this type may be zeroed so) and reads back as zero.
#[derive(Default)]
pub struct Slot {
    /// `generation << GEN_SHIFT | BUSY? | LIVE?`.
    pub(super) gen_live: AtomicU32,
    /// ORIGINAL tuple (two words), REPLY tuple (two words); see `Tuple::pack`.
    pub(super) tuples: [AtomicU64; 4],
    pub(super) status: AtomicU32,
    /// TCP: `TcpBits`, whose `tcp::LOCKED` bit serializes updates of it and
    /// of `tcp_win` (the kernel's `ct->lock`). UDP: millisecond (of
    /// `Timestamp`, wrapping) after which a replied flow counts as a stream
    /// (the kernel's `stream_ts`, creation + 2 s).
    pub(super) proto: AtomicU32,
    /// TCP window tracking, `tcp::Window::to_words` (36 bytes: the slot
    /// grows from 96 to 128).
    pub(super) tcp_win: [AtomicU32; tcp::Window::WORDS],
    /// Expiry deadline, `Timestamp` nanoseconds.
    pub(super) deadline: AtomicU64,
    pub(super) mark: AtomicU32,
    pub(super) id: AtomicU32,
    pub(super) packets: [AtomicU64; 2],
    pub(super) bytes: [AtomicU64; 2],
}

crate::sys::mem::zeroable_atomics!(Slot {
    gen_live: AtomicU32,
    tuples: [AtomicU64; 4],
    status: AtomicU32,
    proto: AtomicU32,
    tcp_win: [AtomicU32; tcp::Window::WORDS],
    deadline: AtomicU64,
    mark: AtomicU32,
    id: AtomicU32,
    packets: [AtomicU64; 2],
    bytes: [AtomicU64; 2],
});

/// Gives the whole pages inside a run of free slots back to the operating
/// system (their bytes then read as zero) and returns how many bytes it gave
/// back. The core makes no system call: the edge passes its step in
/// ([`super::ConnTable::set_release`], `sys::mem::discard`).
pub type Release = fn(&[Slot]) -> usize;

/// The IPv6 addresses of one entry, beside its slot: ORIGINAL source and
/// destination, REPLY source and destination, two words each (high first).
/// Kept in chunks parallel to the slot chunks and allocated only when an
/// IPv6 entry first lands in that chunk, so an IPv4-only table holds none
/// (its entries stay 128 bytes); an IPv6 entry costs 64 bytes more.
pub(super) type V6Words = [AtomicU64; 8];

/// Freed slots. A chunk whose slots are all free is taken out of the list
/// and its memory given back to the kernel (`discard_free_chunks`, at the
/// end of a sweep pass); it is reused, lowest first, before the slab grows.
struct FreeList {
    /// Freed slots, reused oldest first (FIFO) so a slot that was just
    /// freed is the last to be handed out again: a worker still holding a
    /// handle to its previous tenant finds it dead, not reused.
    fifo: VecDeque<u32>,
    /// Slots of each chunk in `fifo` (CHUNK: the whole chunk is free).
    in_fifo: Vec<u32>,
    /// Chunks given back: their slots are in no list and read as zero.
    discarded: Vec<bool>,
    /// Per chunk, the generation its slots restart from when a discarded
    /// chunk is reused: above every generation they had, so a stale handle
    /// never matches a new tenant.
    gen_base: Vec<u32>,
}

impl FreeList {
    fn new(nchunks: usize) -> FreeList {
        FreeList {
            fifo: VecDeque::new(),
            in_fifo: vec![0; nchunks],
            discarded: vec![false; nchunks],
            gen_base: vec![0; nchunks],
        }
    }

    fn push(&mut self, idx: u32) {
        self.fifo.push_back(idx);
        self.in_fifo[idx as usize / CHUNK] += 1;
    }

    fn pop(&mut self) -> Option<u32> {
        let idx = self.fifo.pop_front()?;
        self.in_fifo[idx as usize / CHUNK] -= 1;
        Some(idx)
    }
}

/// The slab proper: chunks of slots, the bump allocator's high-water mark
/// and the free list.
pub(super) struct Slab {
    chunks: Box<[OnceLock<Box<[Slot]>>]>,
    /// IPv6 addresses ([`V6Words`]), per chunk, on first use.
    v6: Box<[OnceLock<Box<[V6Words]>>]>,
    capacity: u32,
    /// Slots ever handed out (bump allocator high-water mark).
    pub(super) high: AtomicU32,
    /// Freed slots, and the chunks whose memory was given back.
    free: Mutex<FreeList>,
}

impl Slab {
    /// A slab of `capacity` slots, none allocated yet.
    pub(super) fn new(capacity: usize) -> Slab {
        let nchunks = capacity.div_ceil(CHUNK);
        let chunks: Vec<OnceLock<Box<[Slot]>>> = (0..nchunks).map(|_| OnceLock::new()).collect();
        Slab {
            chunks: chunks.into_boxed_slice(),
            v6: (0..nchunks).map(|_| OnceLock::new()).collect(),
            capacity: capacity as u32,
            high: AtomicU32::new(0),
            free: Mutex::new(FreeList::new(nchunks)),
        }
    }

    /// Slot `idx` (its chunk is allocated on first touch).
    #[inline]
    pub(super) fn get(&self, idx: u32) -> &Slot {
        let i = idx as usize;
        let chunk = self.chunks[i / CHUNK].get_or_init(|| {
            (0..CHUNK)
                .map(|_| Slot::default())
                .collect::<Vec<_>>()
                .into_boxed_slice()
        });
        &chunk[i % CHUNK]
    }

    /// The IPv6 address words of slot `idx` (its chunk's are allocated on
    /// first touch).
    #[inline]
    fn v6(&self, idx: u32) -> &V6Words {
        let i = idx as usize;
        let chunk = self.v6[i / CHUNK].get_or_init(|| {
            (0..CHUNK)
                .map(|_| V6Words::default())
                .collect::<Vec<_>>()
                .into_boxed_slice()
        });
        &chunk[i % CHUNK]
    }

    /// The tuple of direction `d` of slot `s` (which is slot `idx`).
    #[inline]
    pub(super) fn tuple(&self, idx: u32, s: &Slot, d: Dir) -> Tuple {
        let i = d.index() * 2;
        let (a, b) = (s.tuples[i].load(Relaxed), s.tuples[i + 1].load(Relaxed));
        if b & PACK_V6 == 0 {
            return Tuple::unpack(a, b);
        }
        let (w, j) = (self.v6(idx), d.index() * 4);
        let word = |k: usize| (w[k].load(Relaxed) as u128) << 64 | w[k + 1].load(Relaxed) as u128;
        Tuple::unpack6(b, word(j), word(j + 2))
    }

    /// Writes both tuples of slot `idx` (before it is published).
    pub(super) fn store_tuples(&self, idx: u32, s: &Slot, orig: &Tuple, reply: &Tuple) {
        let ((a, b), (c, d)) = (orig.pack(), reply.pack());
        for (w, v) in s.tuples.iter().zip([a, b, c, d]) {
            w.store(v, Relaxed);
        }
        if orig.family == Family::V6 {
            let w = self.v6(idx);
            let addrs = [orig.src, orig.dst, reply.src, reply.dst];
            for (k, a) in addrs.into_iter().enumerate() {
                w[2 * k].store((a >> 64) as u64, Relaxed);
                w[2 * k + 1].store(a as u64, Relaxed);
            }
        }
    }

    /// Bytes of the slab chunks in use (touched and not given back) and of
    /// the free list.
    pub(super) fn memory_usage(&self) -> usize {
        let free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        let discarded = free.discarded.iter().filter(|&&d| d).count();
        let free = free.fifo.capacity() * 4;
        let chunks = self.chunks.iter().filter(|c| c.get().is_some()).count();
        let slab = (chunks - discarded) * CHUNK * std::mem::size_of::<Slot>();
        let v6 = self.v6.iter().filter(|c| c.get().is_some()).count();
        slab + free + v6 * CHUNK * std::mem::size_of::<V6Words>()
    }

    /// A free slot: the oldest on the free list, else the first of the
    /// lowest chunk given back, else a new one from the bump allocator;
    /// `None` when all `capacity` slots are in use.
    pub(super) fn alloc(&self) -> Option<u32> {
        {
            let mut f = self.free.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(i) = f.pop() {
                return Some(i);
            }
            // Before the slab grows: the lowest chunk given back, if any.
            if let Some(c) = f.discarded.iter().position(|&d| d) {
                f.discarded[c] = false;
                let base = f.gen_base[c];
                let first = (c * CHUNK) as u32;
                for idx in first..first + CHUNK as u32 {
                    self.get(idx).gen_live.store(base << GEN_SHIFT, Release);
                    f.push(idx);
                }
                return f.pop();
            }
        }
        let mut h = self.high.load(Relaxed);
        loop {
            if h >= self.capacity {
                return None;
            }
            match self.high.compare_exchange_weak(h, h + 1, Relaxed, Relaxed) {
                Ok(_) => return Some(h),
                Err(x) => h = x,
            }
        }
    }

    /// Frees slot `idx`: bumps its generation (clearing live and busy) and
    /// puts it on the free list.
    pub(super) fn release(&self, idx: u32) {
        let s = self.get(idx);
        let gl = s.gen_live.load(Relaxed);
        s.gen_live
            .store((gl >> GEN_SHIFT).wrapping_add(1) << GEN_SHIFT, Release);
        self.push_free(idx);
    }

    /// Puts slot `idx`, already marked free (not live, next generation), on
    /// the free list. Always inlined: with plain `#[inline]` LLVM kept it
    /// out of line, adding a call to every `kill` (expiry, early drop).
    #[inline(always)]
    pub(super) fn push_free(&self, idx: u32) {
        self.free
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(idx);
    }

    /// Gives the memory of every slab chunk whose slots are all free back to
    /// the kernel (`release`): the chunk leaves the free
    /// list, its pages read as zero (a free slot: stale handles and sweeps
    /// see nothing live), and it is reused before the slab grows. Done under
    /// the free-list lock, so no slot of it can be handed out meanwhile.
    /// Returns the bytes given back.
    pub(super) fn discard_free_chunks(&self, release: Release) -> usize {
        let mut f = self.free.lock().unwrap_or_else(|e| e.into_inner());
        if !f.in_fifo.iter().any(|&n| n as usize == CHUNK) {
            return 0;
        }
        let FreeList {
            fifo,
            in_fifo,
            discarded,
            gen_base,
        } = &mut *f;
        fifo.retain(|&i| in_fifo[i as usize / CHUNK] as usize != CHUNK);
        let mut released = 0;
        for c in 0..in_fifo.len() {
            if in_fifo[c] as usize != CHUNK {
                continue;
            }
            let Some(chunk) = self.chunks[c].get() else {
                continue;
            };
            let top = chunk
                .iter()
                .map(|s| s.gen_live.load(Relaxed) >> GEN_SHIFT)
                .max()
                .unwrap_or(0);
            gen_base[c] = top.max(gen_base[c]).wrapping_add(1) & (u32::MAX >> GEN_SHIFT);
            in_fifo[c] = 0;
            discarded[c] = true;
            released += release(chunk);
        }
        if fifo.len() * 4 < fifo.capacity() {
            fifo.shrink_to(fifo.len() * 2);
        }
        released
    }
    /// The free-list part of `ConnTable::check_invariants`: no slot twice
    /// on the list, none of a discarded chunk, each chunk's count right.
    /// Returns, for each slot below `high`, whether it is free (listed, or
    /// in a chunk given back).
    #[cfg(test)]
    pub(super) fn check_free_list(&self, high: u32) -> Vec<bool> {
        let f = self.free.lock().unwrap();
        let mut seen = vec![false; high as usize];
        for &i in &f.fifo {
            assert!(!seen[i as usize], "slot {i} twice in the free list");
            assert!(
                !f.discarded[i as usize / CHUNK],
                "slot {i} of a discarded chunk"
            );
            seen[i as usize] = true;
        }
        for (c, &n) in f.in_fifo.iter().enumerate() {
            let listed = f.fifo.iter().filter(|&&i| i as usize / CHUNK == c).count();
            assert_eq!(n as usize, listed, "chunk {c}'s free count");
        }
        for idx in 0..high {
            if f.discarded[idx as usize / CHUNK] {
                seen[idx as usize] = true;
            }
        }
        seen
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Timestamp;
    use crate::conntrack::index::SHRINK_MIN;
    use crate::conntrack::{ConnTable, ConntrackConfig, PROTO_UDP};
    use std::sync::atomic::AtomicUsize;

    fn tuple(i: u32, dport: u16) -> Tuple {
        Tuple::new(
            std::net::Ipv4Addr::from(0x0a00_0000 | i),
            std::net::Ipv4Addr::new(172, 16, 0, 1),
            PROTO_UDP,
            1024,
            dport,
        )
    }

    /// Chunks given back to the kernel and not reused yet.
    fn discarded_chunks(t: &ConnTable) -> usize {
        t.slab
            .free
            .lock()
            .unwrap()
            .discarded
            .iter()
            .filter(|&&d| d)
            .count()
    }

    /// Tracks and confirms a new UDP entry for `tuple` at `now`.
    fn add(t: &ConnTable, tuple: Tuple, now: Timestamp) {
        let nc = t
            .new_conn(&tuple, &crate::conntrack::tcp::Segment::default(), 60, now)
            .unwrap();
        t.confirm(&nc, now).unwrap();
    }

    /// A mass expiry: the sweep pass after it gives back every slab chunk
    /// whose slots are all free and shrinks the index back to a few small
    /// shards, the table stays consistent, a refill reuses the discarded
    /// chunks (the slab does not grow), a handle to a previous tenant stays
    /// dead, and a full table is not shrunk (hysteresis).
    #[test]
    fn mass_expiry_gives_back_chunks_and_index_and_refill_reuses_them() {
        const N: u32 = 20_000;
        let t = ConnTable::new(ConntrackConfig {
            max_entries: N as usize,
            gc_budget: 0,
            ..Default::default()
        });
        t.set_release(crate::sys::mem::discard);
        let now = Timestamp::from_secs(1);
        for i in 0..N {
            add(&t, tuple(i, 53), now);
        }
        let full_cap = t.map.capacity();
        let full_mem = t.memory_usage();
        assert!(full_cap >= 2 * N as usize, "{full_cap}");
        assert_eq!(t.shrink_idle(), 0, "nothing to shrink in a full table");
        assert_eq!(t.discard_free_chunks(), 0, "no free chunk in a full table");
        let old = t.lookup(&tuple(0, 53), now).unwrap();

        let late = Timestamp::from_secs(10_000);
        while !t.is_empty() {
            t.gc(late, 4096);
        }
        // One more whole pass: it ends at the slab's end, so it shrinks.
        t.gc(late, N as usize);
        let small = t.map.shards.len() * SHRINK_MIN;
        let cap = t.map.capacity();
        assert!(cap <= small && cap < full_cap / 4, "{cap} of {full_cap}");
        // Every whole chunk below the bump pointer went back; the last,
        // partly handed out, stays.
        let gone = discarded_chunks(&t);
        assert_eq!(gone, N as usize / CHUNK);
        let slab_left = (N as usize).div_ceil(CHUNK) - gone;
        assert!(t.memory_usage() < full_mem);
        assert!(t.memory_usage() <= slab_left * CHUNK * ConnTable::SLOT_BYTES + small * 8 + 65536);
        assert!(!old.alive());
        assert_eq!(t.list(late).len(), 0);
        t.check_invariants();

        for i in 0..N {
            add(&t, tuple(i, 54), late);
        }
        assert_eq!(t.len(), N as usize);
        assert_eq!(
            t.slab.high.load(Relaxed),
            N,
            "refill reused the freed slots"
        );
        assert!(t.slab.free.lock().unwrap().discarded.iter().all(|&d| !d));
        assert!(!old.alive(), "a new tenant of slot 0 is not the old one");
        assert!(t.map.capacity() >= 2 * N as usize);
        for i in (0..N).step_by(101) {
            assert_eq!(t.lookup(&tuple(i, 54), late).unwrap().orig(), tuple(i, 54));
            assert!(t.lookup(&tuple(i, 53), late).is_none());
        }
        t.check_invariants();
    }

    /// Four threads, in rounds: each fills its own flows of this round,
    /// checks them, then sweeps at a time past the previous round's
    /// timeout (not this round's): chunks are given back and reused while
    /// other threads insert, look up and sweep. A live entry is never
    /// zeroed (every lookup finds its own tuple) and the table ends
    /// consistent.
    #[test]
    fn chunks_are_given_back_and_reused_under_concurrent_churn() {
        const PER: u32 = 3 * CHUNK as u32;
        let t = ConnTable::new(ConntrackConfig {
            max_entries: 8 * PER as usize + CHUNK,
            gc_budget: 0,
            ..Default::default()
        });
        t.set_release(crate::sys::mem::discard);
        let round_start = std::sync::Barrier::new(4);
        let given_back = AtomicUsize::new(0);
        std::thread::scope(|sc| {
            for w in 0..4u32 {
                let (t, round_start, given_back) = (&t, &round_start, &given_back);
                sc.spawn(move || {
                    for round in 1..8u64 {
                        round_start.wait();
                        let now = Timestamp::from_secs(round * 1000);
                        let port = 1000 + round as u16;
                        for i in 0..PER {
                            add(t, tuple(w << 20 | i, port), now);
                        }
                        for i in (0..PER).step_by(7) {
                            let c = t.lookup(&tuple(w << 20 | i, port), now).unwrap();
                            assert_eq!(c.orig(), tuple(w << 20 | i, port));
                        }
                        let previous = Timestamp::from_secs(round * 1000 - 500);
                        for _ in 0..8 {
                            t.gc(previous, 2 * CHUNK);
                        }
                        given_back.fetch_add(t.discard_free_chunks(), Relaxed);
                        for i in (0..PER).step_by(5) {
                            let c = t.lookup(&tuple(w << 20 | i, port), now).unwrap();
                            assert_eq!(c.orig(), tuple(w << 20 | i, port));
                        }
                    }
                });
            }
        });
        println!(
            "given back during the churn: {} bytes",
            given_back.load(Relaxed)
        );
        let end = Timestamp::from_secs(100_000);
        while !t.is_empty() {
            t.gc(end, 4096);
        }
        t.gc(end, t.slab.high.load(Relaxed) as usize);
        t.check_invariants();
        let gone = discarded_chunks(&t);
        assert!(gone > 0, "no chunk given back");
    }
}
