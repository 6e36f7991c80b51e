//! The tuple index and its lock-free front: [`SlotIndex`] maps both tuples
//! of every connection to `slot << 1 | direction` (sharded hash tables of
//! bare `u32`s whose keys are read from the slab), [`HintTable`] caches
//! recent index answers for lock-free lookups, and [`SrcKey`] keys the NAT
//! by-source map. The operations that need the slab and the hasher as
//! well (insert, remove, lookup) are the table's, in [`super::table`].

use super::{Dir, Tuple};
use hashbrown::HashTable;
use std::hash::Hasher;
use std::sync::atomic::{AtomicU64, Ordering::*};
use std::sync::RwLock;

/// The direction an index value (`slot << 1 | direction`) stands for.
#[inline]
pub(super) fn dir_of(v: u32) -> Dir {
    if v & 1 == 0 {
        Dir::Original
    } else {
        Dir::Reply
    }
}

/// Key of the by-source index: original source address, port, protocol.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) struct SrcKey(u64);

impl SrcKey {
    #[inline]
    pub(super) fn of(t: &Tuple) -> SrcKey {
        // IPv6: a fold of the address (the caller compares the whole).
        let a = t.src as u64 ^ (t.src >> 64) as u64;
        SrcKey((a as u32 as u64 ^ a >> 32) << 32 | (t.sport as u64) << 8 | t.proto as u64)
    }
}

impl std::hash::Hash for SrcKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.0);
    }
}

/// The tuple index: shards of `hashbrown::HashTable<u32>` behind `RwLock`s.
/// A bucket is the value `slot << 1 | direction` and one control byte (5
/// bytes, against 21 for a map that stores the 16-byte tuple as key); the key
/// is compared and rehashed by reading the slot's tuple. That is sound
/// because a slot's tuples are written before its index entries are inserted
/// and the slot is freed only after they are removed, both under the shard's
/// write lock; a reader holding the read lock therefore sees stable tuples.
/// Shard = hash bits 32.., independent of hashbrown's bucket (low) and tag
/// (top 7) bits.
pub(super) struct SlotIndex {
    pub(super) shards: Box<[Shard]>,
    mask: usize,
}

/// Index shards at or below this capacity are never shrunk (a few KiB each:
/// not worth a rehash).
pub(super) const SHRINK_MIN: usize = 1024;

/// One shard on its own cache lines (two, for the adjacent-line
/// prefetcher): workers taking read locks on neighbouring shards must not
/// bounce a shared line (dashmap pads its shards the same way).
#[repr(align(128))]
pub(super) struct Shard(RwLock<HashTable<u32>>);

impl SlotIndex {
    pub(super) fn new(shards: usize) -> SlotIndex {
        let n = shards.next_power_of_two();
        SlotIndex {
            shards: (0..n)
                .map(|_| Shard(RwLock::new(HashTable::new())))
                .collect(),
            mask: n - 1,
        }
    }

    #[inline]
    pub(super) fn shard(&self, h: u64) -> &RwLock<HashTable<u32>> {
        &self.shards[(h >> 32) as usize & self.mask].0
    }

    pub(super) fn capacity(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.0.read().unwrap_or_else(|e| e.into_inner()).capacity())
            .sum()
    }

    /// Gives back the memory of shards that are mostly empty: a shard whose
    /// capacity exceeds [`SHRINK_MIN`] and is more than four times its
    /// entries is rehashed to twice its entries, under its write lock
    /// (`rehash` reads a value's key, as every insert does). The factor 4
    /// against 2 is the hysteresis: a shrunk shard must double before it
    /// grows again, and must lose half before it shrinks again. Returns
    /// the buckets' capacity released.
    pub(super) fn shrink_idle(&self, rehash: impl Fn(&u32) -> u64) -> usize {
        let mut released = 0;
        for s in self.shards.iter() {
            let (len, cap) = {
                let g = s.0.read().unwrap_or_else(|e| e.into_inner());
                (g.len(), g.capacity())
            };
            if cap <= SHRINK_MIN || len.saturating_mul(4) >= cap {
                continue;
            }
            let mut g = s.0.write().unwrap_or_else(|e| e.into_inner());
            let before = g.capacity();
            let len = g.len();
            if len.saturating_mul(4) < before {
                g.shrink_to(len * 2, &rehash);
                released += before.saturating_sub(g.capacity());
            }
        }
        released
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.0.read().unwrap_or_else(|e| e.into_inner()).len())
            .sum()
    }
}

/// A direct-mapped table of hints in front of the index: the word at
/// `hash & mask` is `tag << 32 | VALID | slot << 1 | direction`, written
/// (relaxed, no lock) when an index lookup finds a live entry, `tag` being
/// 32 bits of the hint hash. The hint hash is cheaper than the index's
/// (two independent multiplies of the keyed tuple words, against a chain of
/// four and an avalanche): its position comes from the high bits of the
/// products, which depend on every input bit, and a collision (crafted or
/// not) only costs the index lookup the packet would have made anyway.
/// A hint is never trusted: [`ConnTable::lookup`]
/// reads the slot it names as a seqlock (generation word, tuple, fence,
/// generation word again) and takes it only when the slot is live, not
/// BUSY, and holds the key, unchanged in between. Such a slot is exactly
/// what the index would give: its index entries are inserted before BUSY
/// is cleared and removed only after the live bit is. So a stale, torn or foreign hint costs a miss (the locked
/// index lookup), never a wrong entry; and a hit costs no lock and no
/// atomic read-modify-write (the shard read lock was ~11 % of an
/// established packet's cost). Size: the table's capacity rounded up to a
/// power of two, at most 2^16 words (512 KiB).
pub(super) struct HintTable {
    words: Box<[AtomicU64]>,
    /// log2 of the number of words.
    bits: u32,
    key: u64,
}

/// Marks a used hint word (slot << 1 | direction stays below 2^31).
const HINT_VALID: u64 = 1 << 31;
const HINTS_MAX: usize = 1 << 16;

impl HintTable {
    pub(super) fn new(capacity: usize, key: u64) -> HintTable {
        let n = capacity.next_power_of_two().clamp(64, HINTS_MAX);
        HintTable {
            words: (0..n).map(|_| AtomicU64::new(0)).collect(),
            bits: n.trailing_zeros(),
            key,
        }
    }

    /// Bytes of the hint words.
    pub(super) fn memory_usage(&self) -> usize {
        self.words.len() * std::mem::size_of::<AtomicU64>()
    }

    /// The hint hash of a packed tuple.
    #[inline]
    pub(super) fn hash(&self, (a, b): (u64, u64)) -> u64 {
        (a ^ self.key).wrapping_mul(0x9e37_79b9_7f4a_7c15)
            ^ (b ^ self.key.rotate_left(32)).wrapping_mul(0xc2b2_ae3d_27d4_eb4f)
    }

    /// Word position (high bits) and tag (32 middle bits) of hint hash `h`.
    #[inline]
    fn split(&self, h: u64) -> (usize, u64) {
        ((h >> (64 - self.bits)) as usize, (h >> 16) & 0xffff_ffff)
    }

    /// The index value hinted for hint hash `h`, if the word carries its tag.
    #[inline]
    pub(super) fn get(&self, h: u64) -> Option<u32> {
        let (at, tag) = self.split(h);
        let w = self.words.get(at)?.load(Relaxed);
        (w >> 32 == tag && w & HINT_VALID != 0).then_some(w as u32 & !(HINT_VALID as u32))
    }

    #[inline]
    pub(super) fn set(&self, h: u64, v: u32) {
        let (at, tag) = self.split(h);
        if let Some(word) = self.words.get(at) {
            word.store(tag << 32 | HINT_VALID | v as u64, Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Timestamp;
    use crate::conntrack::{ConnTable, ConntrackConfig, PROTO_UDP};
    use crate::hash::TupleHashBuilder;
    use std::net::Ipv4Addr;
    use std::sync::atomic::AtomicBool;

    /// Tuple `i` of family `f` (the two families hash to different hint
    /// words but reuse each other's slots).
    fn tuple(f: u32, i: u32) -> Tuple {
        Tuple::new(
            Ipv4Addr::from(0x0a00_0000 | f << 16 | i),
            Ipv4Addr::new(10, 9, 9, 9),
            PROTO_UDP,
            1000 + i as u16,
            53,
        )
    }

    /// Lookups through the lock-free hints while another thread frees
    /// slots and refills them with other tuples: whatever a lookup returns
    /// must, while its generation is still live, hold the key in the
    /// returned direction and the key's inverse in the other; and after the
    /// churn every live tuple is found, every deleted one is not.
    #[test]
    fn hints_never_return_a_reused_slot() {
        const N: u32 = 64;
        let t = ConnTable::with_hasher(
            ConntrackConfig {
                max_entries: N as usize,
                gc_budget: 0,
                ..Default::default()
            },
            TupleHashBuilder::with_key(0x1234_5678_9abc_def1),
        );
        let now = Timestamp::from_secs(1);
        let stop = AtomicBool::new(false);
        let hits = AtomicU64::new(0);
        std::thread::scope(|s| {
            for r in 0..2u32 {
                let (t, stop, hits) = (&t, &stop, &hits);
                s.spawn(move || {
                    let mut k = r;
                    while !stop.load(Relaxed) {
                        k = k.wrapping_mul(2_654_435_761).wrapping_add(1);
                        let key = tuple(k & 1, (k >> 1) % N);
                        let key = if k & 0x100 == 0 { key } else { key.inverse() };
                        if let Some(c) = t.lookup(&key, now) {
                            let (this, other) = (c.tuple(c.dir()), c.tuple(c.dir().other()));
                            if c.alive() {
                                assert_eq!(this, key, "a hint returned another tuple's slot");
                                assert_eq!(other, key.inverse());
                                hits.fetch_add(1, Relaxed);
                            }
                        }
                    }
                });
            }
            for round in 0..400u32 {
                let f = round & 1;
                let refs: Vec<_> = (0..N)
                    .map(|i| {
                        let nc = t
                            .new_conn(
                                &tuple(f, i),
                                &crate::conntrack::tcp::Segment::default(),
                                60,
                                now,
                            )
                            .unwrap();
                        t.confirm(&nc, now).unwrap().conn
                    })
                    .collect();
                // Readers get a chance to hint these entries.
                for i in 0..N {
                    assert!(t.lookup(&tuple(f, i), now).is_some());
                    assert!(t.lookup(&tuple(f ^ 1, i), now).is_none());
                }
                if round < 399 {
                    for c in refs {
                        assert!(c.delete());
                    }
                }
            }
            stop.store(true, Relaxed);
        });
        assert!(hits.load(Relaxed) > 0, "the readers never found an entry");
        t.check_invariants();
        // Round 399 (family 1) is live; family 0 was deleted.
        for i in 0..N {
            assert!(t.lookup(&tuple(1, i), now).is_some());
            assert!(t.lookup(&tuple(1, i).inverse(), now).is_some());
            assert!(t.lookup(&tuple(0, i), now).is_none());
        }
    }
}
