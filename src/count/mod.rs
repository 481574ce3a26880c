//! Exact distinct counting: one 64-bit hash per uid, sharded hash sets.
//!
//! Each uid is hashed once, by the worker that parsed it, with ahash under
//! fixed seeds ([`UidHasher`]): the same uid gives the same 64-bit value in
//! every run and every process of the same build. Windows keep only these
//! hashes ([`UidSet`]), 8 bytes per distinct user plus table overhead, so a
//! minute of 45,000 users costs about 0.6 MiB whatever the uid length.
//!
//! Exactness: two different uids collide with probability 2^-64 per pair;
//! with n users in a window the chance of any collision is about
//! n^2 / 2^65 (n = 1e5: 2.7e-10; n = 1e7: 2.7e-6).
//!
//! Hash values depend on ahash's version and on whether the build has AES
//! instructions (ahash picks its algorithm at compile time). Counts do not
//! depend on hash values; only comparing raw hashes across differently built
//! binaries would.

pub mod sketch;

use hashbrown::HashTable;
use hashbrown::hash_table::Entry;

/// Fixed seeds: reproducible hashes (the digits of pi, nothing secret).
const SEEDS: [u64; 4] = [0x243F_6A88_85A3_08D3, 0x1319_8A2E_0370_7344, 0xA409_3822_299F_31D0, 0x082E_FA98_EC4E_6C89];

/// Hashes uids to 64 bits, reproducibly.
#[derive(Clone)]
pub struct UidHasher(ahash::RandomState);

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
        UidHasher(ahash::RandomState::with_seeds(SEEDS[0], SEEDS[1], SEEDS[2], SEEDS[3]))
    }

    /// The 64-bit hash of a decoded uid.
    #[inline]
    pub fn hash(&self, uid: &[u8]) -> u64 {
        self.0.hash_one(uid)
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

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
