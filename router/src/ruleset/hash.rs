//! The key a chain name is indexed under ([`name_hash`]). The maps' hashers
//! ([`PreHashed`] for the map keyed by it, [`NameHash`] for the few names
//! whose key is taken) are the crate's `hash` module's.

pub use crate::hash::{FxHasher, NameHash, PreHashed, PreHashedHasher};

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
