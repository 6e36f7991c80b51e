//! The hashers of a table's chain index: [`name_hash`], the 64-bit key
//! a chain name is indexed under, [`PreHashed`] for the map keyed by it,
//! and [`NameHash`] (FxHash) for the few names whose key is taken.

/// The hasher of maps keyed by a hash already computed: passes it through
/// (built as `route`'s address maps build theirs).
pub type PreHashed = std::hash::BuildHasherDefault<PreHashedHasher>;

#[derive(Debug, Default)]
pub struct PreHashedHasher(u64);

impl std::hash::Hasher for PreHashedHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys are hashed with it; fold anything else anyway.
        for &b in bytes {
            self.0 = (self.0.rotate_left(8)) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = i;
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// The chain index's key: a 64-bit hash of the name that mixes every input
/// bit into every output bit (a multiply folded to 64 bits per word, as
/// wyhash does). FxHash, good enough to pick a bucket, is not good enough
/// here: its multiply carries a difference only upwards, and of 1,000 names
/// `KUBE-SEP-0000000000000NNN` 84 shared a hash with another (test
/// `chain_index_survives_hash_collisions_and_direct_edits`). A shared hash
/// is still correct (the name goes to `spill`), just slower.
pub(super) fn name_hash(name: &str) -> u64 {
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

/// Hasher of maps keyed by chain names (the index's `spill`): FxHash
/// (rustc's), several times faster than SipHash on 20-30 byte names. Chain
/// names come from the local administrator, not from the network, so
/// flooding is no concern. Good for picking buckets, not as a key by itself
/// (see [`name_hash`]).
pub type NameHash = std::hash::BuildHasherDefault<FxHasher>;

#[derive(Debug, Default)]
pub struct FxHasher(u64);

impl std::hash::Hasher for FxHasher {
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
    fn write_u8(&mut self, i: u8) {
        self.0 = (self.0.rotate_left(5) ^ i as u64).wrapping_mul(0xf135_7aea_2e62_a9c5);
    }
    fn finish(&self) -> u64 {
        // The multiply leaves the low bits weak; hashbrown takes the top 7
        // bits for its control bytes and the low bits for the bucket.
        self.0.rotate_left(26)
    }
}
