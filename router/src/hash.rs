//! The crate's hashers, all in one place. std's SipHash is keyed and
//! flooding-resistant but slow for the short keys the gateway hashes on hot
//! paths, so every map with such keys uses one of these instead. Each map
//! knows where its keys come from, and that decides how much mixing and
//! keying it needs:
//!
//! - [`TupleHasher`] (built by [`TupleHashBuilder`]): connection tuples and
//!   NAT by-source keys in the connection table (`conntrack::table`). These
//!   keys come from packets, so an attacker chooses them: the hasher is
//!   keyed, with a random key per table, and ends in an avalanche so every
//!   key bit reaches the bucket bits (low), the control-byte bits (top 7,
//!   hashbrown) and the shard bits (32 and up).
//! - [`AddrHasher`]: `u32` addresses in `route`'s prefix maps. One multiply
//!   and a fold. Unkeyed, which is safe because the maps hold only the
//!   configured prefixes: packet addresses are looked up, never inserted,
//!   so they cannot make a chain longer.
//! - [`PreHashedHasher`] ([`PreHashed`]): maps whose `u64` key already is a
//!   well-mixed hash (the ruleset's chain index, keyed by a hash of the
//!   name). The key passes through unchanged.
//! - [`FxHasher`] ([`NameHash`]): chain names (strings) in the ruleset's
//!   spill map. rustc's FxHash, unkeyed: chain names come from the local
//!   administrator, not from the network.
//! - [`name_hash`]: the 64-bit key a chain name is indexed under in the
//!   ruleset's chain index; stronger mixing than FxHash (see its docs).
//!
//! The connection table's hint table has a cheaper hash of its own
//! (`HintTable::hash`, beside the table's index): not a `Hasher`, it stays with
//! the direct-mapped table it serves, whose misses cost only a locked lookup.
//!
//! The four hashers only choose buckets. The maps still compare whole keys, so a
//! weak or colliding hash can only make a lookup slower, never return
//! the wrong entry.
//!
//! The four compute four different functions (a keyed chain with an
//! avalanche, a single multiply-fold, the identity, FxHash) over different
//! key types, so none was merged into another: a merge would change the
//! hashes, and with them map iteration orders and the measured speed.
//!
//! This module is at the bottom of the layers: it uses nothing of the crate.

use std::hash::{BuildHasher, BuildHasherDefault, Hasher};

/// Keyed hasher for tuples: multiply-xorshift (64-bit) over the two words
/// written by `Tuple::hash`, finished with the murmur3 fmix64 avalanche.
///
/// The connection table keys it with a random key per table, against
/// collision flooding. std's SipHash made a map lookup 10-30 % slower
/// (`examples/ct_bench.rs`: 20-27 M gets/s vs 28-30 M/s for 1000 tuples,
/// on this shared 2-core machine).
#[derive(Clone, Copy)]
pub struct TupleHasher {
    h: u64,
}

impl Hasher for TupleHasher {
    #[inline]
    fn finish(&self) -> u64 {
        let mut x = self.h;
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^= x >> 33;
        x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        x ^ (x >> 33)
    }
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(*b as u64);
        }
    }
    #[inline]
    fn write_u64(&mut self, v: u64) {
        self.h = (self.h ^ v)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .rotate_left(29);
    }
}

/// Builds [`TupleHasher`]s with a per-table random key.
#[derive(Clone, Copy)]
pub struct TupleHashBuilder {
    key: u64,
}

impl TupleHashBuilder {
    pub fn random() -> Self {
        let k = std::collections::hash_map::RandomState::new().hash_one(0x5eed_u64);
        TupleHashBuilder { key: k | 1 }
    }
    pub fn with_key(key: u64) -> Self {
        TupleHashBuilder { key }
    }
    /// The key (the connection table derives its hint table's key from it).
    pub(crate) fn key(&self) -> u64 {
        self.key
    }
}

impl BuildHasher for TupleHashBuilder {
    type Hasher = TupleHasher;
    #[inline]
    fn build_hasher(&self) -> TupleHasher {
        TupleHasher { h: self.key }
    }
}

/// Hasher for `u32` keys (addresses): a multiply and a fold. SipHash cost
/// 5.6 % of the established-flow pipeline profile (perf, bench/pipeline.sh)
/// for keys that are not attacker-chosen in a way that matters here: the
/// tables hold the configured prefixes, not packet data.
#[derive(Debug, Clone, Copy, Default)]
pub struct AddrHasher(u64);

impl Hasher for AddrHasher {
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ b as u64).wrapping_mul(0x517c_c1b7_2722_0a95);
        }
    }
    #[inline]
    fn write_u32(&mut self, v: u32) {
        // Fold the high product bits down: masked prefixes have zero low
        // bits, and the table indexes buckets by the low bits.
        let m = (v as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.0 = m ^ (m >> 32);
    }
}

/// The hasher of maps keyed by a hash already computed: passes it through
/// (built as `route`'s address maps build theirs).
pub type PreHashed = BuildHasherDefault<PreHashedHasher>;

#[derive(Debug, Default)]
pub struct PreHashedHasher(u64);

impl Hasher for PreHashedHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys are hashed with it; fold anything else anyway.
        for &b in bytes {
            self.0 = (self.0.rotate_left(8)) ^ u64::from(b);
        }
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.0 = i;
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

/// Hasher of maps keyed by chain names (the ruleset index's `spill`):
/// FxHash (rustc's), several times faster than SipHash on 20-30 byte
/// names. Chain names come from the local administrator, not from the
/// network, so flooding is no concern. Good for picking buckets, not as a
/// key by itself (see [`name_hash`]).
pub type NameHash = BuildHasherDefault<FxHasher>;

#[derive(Debug, Default)]
pub struct FxHasher(u64);

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0xf135_7aea_2e62_a9c5;
        let mut h = self.0;
        let mut it = bytes.chunks_exact(8);
        for c in &mut it {
            let w = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
            h = (h.rotate_left(5) ^ w).wrapping_mul(K);
        }
        let mut tail = [0u8; 8];
        let r = it.remainder();
        tail[..r.len()].copy_from_slice(r);
        h = (h.rotate_left(5) ^ u64::from_le_bytes(tail) ^ r.len() as u64).wrapping_mul(K);
        self.0 = h;
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.0 = (self.0.rotate_left(5) ^ i as u64).wrapping_mul(0xf135_7aea_2e62_a9c5);
    }
    #[inline]
    fn finish(&self) -> u64 {
        // The multiply leaves the low bits weak; hashbrown takes the top 7
        // bits for its control bytes and the low bits for the bucket.
        self.0.rotate_left(26)
    }
}

/// The chain index's key: a 64-bit hash of the name that mixes every input
/// bit into every output bit (a multiply folded to 64 bits per word, as
/// wyhash does). FxHash, good enough to pick a bucket, is not good enough
/// here: its multiply carries a difference only upwards, and of 1,000 names
/// `KUBE-SEP-0000000000000NNN` 84 shared a hash with another (test
/// `chain_index_survives_hash_collisions_and_direct_edits`). A shared hash
/// is still correct (the name goes to `spill`), just slower.
pub fn name_hash(name: &str) -> u64 {
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
