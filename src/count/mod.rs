//! Exact distinct counting: one 64-bit hash per uid, sharded hash sets.
//!
//! Each uid is hashed once, by the worker that parsed it ([`UidHasher`]):
//! XXH3-64 with seed 0 of the uid's decoded bytes, a specified algorithm,
//! so the same uid gives the same 64-bit value on every CPU, target, build
//! and kuniq version (pinned by the reference implementation's values in
//! the tests below; `xxhsum -H3` or Python's `xxhash.xxh3_64_intdigest`
//! give the same numbers). Saved window state and anything merged across
//! processes or machines rely on it. Windows keep only these hashes
//! ([`UidSet`]), 8 bytes per distinct user plus table overhead, so a
//! minute of 45,000 users costs about 0.6 MiB whatever the uid length.
//!
//! Exactness: two different uids collide with probability 2^-64 per pair;
//! with n users in a window the chance of any collision is about
//! n^2 / 2^65 (n = 1e5: 2.7e-10; n = 1e7: 2.7e-6).

pub mod sketch;
mod users;

pub use users::{Estimator, MixedEstimators, UidKey, Users};

use hashbrown::HashTable;
use hashbrown::hash_table::Entry;

/// The seed of the uid hash. Part of the saved-state format: changing it
/// makes every saved set meaningless.
pub const UID_HASH_SEED: u64 = 0;

/// Hashes uids to 64 bits: XXH3-64 with [`UID_HASH_SEED`].
#[derive(Clone)]
pub struct UidHasher(());

impl Default for UidHasher {
    fn default() -> Self {
        UidHasher::new()
    }
}

impl std::fmt::Debug for UidHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UidHasher")
    }
}

impl UidHasher {
    /// The hasher every kuniq process uses.
    pub fn new() -> UidHasher {
        UidHasher(())
    }

    /// The 64-bit hash of a decoded uid.
    #[inline]
    pub fn hash(&self, uid: &[u8]) -> u64 {
        twox_hash::XxHash3_64::oneshot_with_seed(UID_HASH_SEED, uid)
    }
}

/// Number of shards per set. Shards keep each table small, so growth
/// rehashes a sixteenth of the set at a time instead of all of it.
pub const SHARDS: usize = 16;

/// Shard index from hash bits 40..44: independent of the low bits hashbrown
/// uses for the bucket and of the top 7 bits it keeps as tags.
#[inline]
fn shard_of(hash: u64) -> usize {
    ((hash >> 40) as usize) & (SHARDS - 1)
}

/// An exact set of uid hashes.
#[derive(Default, Clone)]
pub struct UidSet {
    shards: [HashTable<u64>; SHARDS],
    len: u64,
}

impl std::fmt::Debug for UidSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "UidSet({} users)", self.len)
    }
}

impl UidSet {
    /// An empty set (allocates nothing until the first insert).
    pub fn new() -> UidSet {
        UidSet::default()
    }

    /// Adds a uid hash; returns true when it was new.
    #[inline]
    pub fn insert(&mut self, hash: u64) -> bool {
        // The value is already a uniform hash: it is its own table hash.
        match self.shards[shard_of(hash)].entry(hash, |&h| h == hash, |&h| h) {
            Entry::Occupied(_) => false,
            Entry::Vacant(slot) => {
                slot.insert(hash);
                self.len += 1;
                true
            }
        }
    }

    /// True when the set holds `hash`.
    pub fn contains(&self, hash: u64) -> bool {
        self.shards[shard_of(hash)].find(hash, |&h| h == hash).is_some()
    }

    /// Number of distinct uids.
    #[inline]
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when no uid was added.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes held by the tables (buckets and control bytes).
    pub fn state_bytes(&self) -> usize {
        self.shards.iter().map(|s| s.allocation_size()).sum()
    }

    /// The hashes, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        self.shards.iter().flat_map(|s| s.iter().copied())
    }

    /// The hashes in ascending order (a canonical form: equal sets give
    /// equal lists).
    pub fn sorted(&self) -> Vec<u64> {
        let mut hashes: Vec<u64> = self.iter().collect();
        hashes.sort_unstable();
        hashes
    }

    /// Adds every hash of `other`: the set becomes the union.
    pub fn union_with(&mut self, other: &UidSet) {
        for hash in other.iter() {
            self.insert(hash);
        }
    }
}

impl Extend<u64> for UidSet {
    fn extend<I: IntoIterator<Item = u64>>(&mut self, hashes: I) {
        for hash in hashes {
            self.insert(hash);
        }
    }
}

impl FromIterator<u64> for UidSet {
    fn from_iter<I: IntoIterator<Item = u64>>(hashes: I) -> UidSet {
        let mut set = UidSet::new();
        for hash in hashes {
            set.insert(hash);
        }
        set
    }
}

impl PartialEq for UidSet {
    fn eq(&self, other: &UidSet) -> bool {
        self.len == other.len && self.iter().all(|h| other.contains(h))
    }
}

impl Eq for UidSet {}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    /// XXH3-64, seed 0, as the reference implementation computes it
    /// (values from Python's `xxhash` 3.x/4.x, which wraps the C reference
    /// libxxhash 0.8): one uid of each length class XXH3 treats apart
    /// (0, 1-3, 4-8, 9-16, 17-128, 129-240, over 240 bytes), UTF-8 too.
    #[test]
    fn uid_hash_is_xxh3_64_on_every_build() {
        let all: Vec<u8> = (0..=255u8).chain(0..=255u8).collect();
        let vectors: [(&[u8], u64); 10] = [
            (b"", 0x2d06_8005_38d3_94c2),
            (b"7", 0x06ee_d105_b822_85fa),
            (b"u42", 0x005a_dc13_735b_6feb),
            (b"user1234", 0xaf72_f277_c899_a31c),
            (b"0123456789abcdef", 0x6443_9946_d8fa_212d),
            (b"3f2504e0-4f89-11d3-9a0c-0305e82c3301", 0xcf25_f48b_2d78_d573),
            ("\u{e9}l\u{e8}ve-\u{4e16}\u{754c}".as_bytes(), 0x7ed4_d52d_73c7_3881),
            (&[b'x'; 100], 0xc909_84ff_df50_ce42),
            (&[b'y'; 200], 0x78c5_ae5c_f7b1_237e),
            (&all, 0x1059_105a_d19b_fa09),
        ];
        let hasher = UidHasher::new();
        for (uid, expected) in vectors {
            assert_eq!(hasher.hash(uid), expected, "uid of {} bytes", uid.len());
        }
    }

    #[test]
    fn hashes_are_fixed_across_hasher_instances() {
        let (a, b) = (UidHasher::new(), UidHasher::new());
        assert_eq!(a.hash(b"62a4c731b0630387913"), b.hash(b"62a4c731b0630387913"));
        assert_ne!(a.hash(b"62a4c731b0630387913"), a.hash(b"62a4c731b0630387914"));
    }

    proptest! {
        #[test]
        fn counts_like_a_hashset(uids in prop::collection::vec("[0-9a-f]{1,3}", 0..2000)) {
            let hasher = UidHasher::new();
            let mut set = UidSet::new();
            let mut oracle = HashSet::new();
            for uid in &uids {
                prop_assert_eq!(set.insert(hasher.hash(uid.as_bytes())), oracle.insert(uid.clone()));
            }
            prop_assert_eq!(set.len(), oracle.len() as u64);
            for uid in &uids {
                prop_assert!(set.contains(hasher.hash(uid.as_bytes())));
            }
        }
    }
}
