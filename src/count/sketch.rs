//! Estimated distinct counting: Apache DataSketches' HyperLogLog sketch of a
//! window's uids, in the form other DataSketches implementations read.
//!
//! A [`UidSketch`] wraps the `datasketches` crate's `HllSketch` (pinned to
//! one version in Cargo.toml: the hashing and the serialized bytes must not
//! change under a `cargo update`). It is the `--estimator hll` counterpart of
//! the exact [`UidSet`](super::UidSet): fixed memory per window whatever the
//! number of users, an error documented below, and a compact serialization
//! ([`UidSketch::to_bytes`]) that Apache DataSketches in Python, Java and C++
//! deserialize and union with their own sketches.
//!
//! Compatibility with other systems rests on hashing a uid exactly as their
//! `update(string)` does: the UTF-8 bytes of the string, nothing else,
//! through MurmurHash3 x64 128 with seed 9001, and empty strings skipped.
//! The crate's generic `update(&str)` goes through Rust's `Hash`, which
//! appends a 0xFF byte to a `str` (and a length to a slice), so it would
//! build a sketch of different hashes; [`UidSketch::update`] hashes through
//! the crate's raw-bytes value instead. `tests/sketch_compat.rs` holds this
//! against Python's `datasketches`: the same uids in the same order give
//! byte-identical sketches.
//!
//! Order: an unmerged sketch's in-order (HIP) estimate and its serialized
//! bytes depend on the order of updates; its registers, and so a union's
//! estimate, do not. kuniq's windows are fed in an order that depends on how
//! partitions interleave, so records say [`UidSketch::distinct`] (the
//! composite estimate of the registers, what a union estimates) and carry
//! [`UidSketch::canonical_bytes`]: both functions of the set of uids only.
//!
//! Sizing (profiles/2026-12-07-sketch.md, `examples/sketch_error.rs`): the
//! relative error at p99 must stay within 1 % for every window, with the
//! composite estimate. [`DEFAULT_LG_K`] says why it is 17 (the smallest
//! that met it with a margin in every measured shape); [`HLL_TYPE`] says why
//! its register width was chosen.

use std::fmt;

use datasketches::hash::value::raw_bytes;
use datasketches::hll::{Coupon, HllSketch, HllType, HllUnion};

/// Default log2 of the number of registers: 2^17 registers (64 KiB as
/// HLL_4).
///
/// Window records say the order-free composite estimate
/// ([`UidSketch::distinct`]), which is what a union estimates, so the
/// sizing is by the merged error (profiles/2026-12-07-sketch.md, measured
/// on 100 to 10M distinct users, each once, uniform and skewed repeats):
/// lg_k 17 has a worst p99 of 0.72 % (largest single window 1.003 % of
/// thousands); lg_k 16, half the bytes, reached 0.93 % at p99 and 1.3 % at
/// most (14 of 4,000 windows of 200k users over 1 %): too thin a margin for
/// "within 1 % at p99". `--estimator hll-16` still picks it.
pub const DEFAULT_LG_K: u8 = 17;

/// Smallest `lg_k` the sketch accepts (DataSketches' limit).
pub const MIN_LG_K: u8 = 4;

/// Largest `lg_k` the sketch accepts (DataSketches' limit).
pub const MAX_LG_K: u8 = 21;

/// Register width of kuniq's sketches: HLL_4, 4 bits per register.
///
/// The three widths give identical estimates for the same input (the
/// registers hold the same values; `examples/sketch_error.rs` asserts it), so
/// the choice is memory against update time. HLL_4 holds a 2^16-register
/// window in 33 KiB instead of HLL_8's 64 KiB (2^17: 64 KiB against 128 KiB) and serializes to half the
/// bytes, which is what a record with `--emit-sketch` and a checkpoint carry.
/// Its updates are slower: with the Murmur3 hash, 9.4-10 ns against HLL_8's
/// 6.9-7.4 ns in a window of 45k users, 14-16 ns against 7.6-7.9 ns at 1M
/// (profiles/2026-12-07-sketch.md), a few ns next to a frame's parse.
pub const HLL_TYPE: HllType = HllType::Hll4;

/// A uid's DataSketches hash, reduced to what an HLL sketch keeps: a 26-bit
/// register address and a 6-bit value (4 bytes).
///
/// Computing it costs one MurmurHash3 of the uid; a worker can compute it
/// where it has the uid's bytes and hand the 4 bytes on, and one coupon can
/// update sketches of any `lg_k`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UidCoupon(Coupon);

impl UidCoupon {
    /// The coupon of a decoded uid, hashed as DataSketches' `update(string)`
    /// hashes the string's UTF-8 bytes. `None` for an empty uid, which
    /// DataSketches' string update skips.
    #[inline]
    pub fn of(uid: &[u8]) -> Option<UidCoupon> {
        if uid.is_empty() {
            return None;
        }
        Some(UidCoupon(Coupon::from_value(raw_bytes::from_slice(uid))))
    }
}

/// An HLL sketch of a window's distinct uids.
///
/// Memory is bounded by the register array ([`UidSketch::state_bytes`]):
/// small windows start as a list, then a hash set, of coupons (exact up to a
/// few thousand users), and switch to the registers once those would be
/// larger.
#[derive(Clone)]
pub struct UidSketch {
    sketch: HllSketch,
}

impl fmt::Debug for UidSketch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UidSketch(lg_k {}, about {} users)", self.lg_k(), self.count())
    }
}

impl PartialEq for UidSketch {
    /// Sketches of the same uids are equal, whatever order those came in
    /// (their [`UidSketch::canonical_bytes`] are).
    fn eq(&self, other: &UidSketch) -> bool {
        self.lg_k() == other.lg_k() && self.canonical_bytes() == other.canonical_bytes()
    }
}

impl Default for UidSketch {
    /// An empty sketch with [`DEFAULT_LG_K`] (2^17 registers).
    fn default() -> UidSketch {
        UidSketch::with_lg_k(DEFAULT_LG_K)
    }
}

impl UidSketch {
    /// An empty sketch with 2^`lg_k` registers of type [`HLL_TYPE`].
    ///
    /// Errors with [`SketchError::LgK`] when `lg_k` is outside
    /// [`MIN_LG_K`]..=[`MAX_LG_K`].
    pub fn new(lg_k: u8) -> Result<UidSketch, SketchError> {
        HllSketch::new(lg_k, HLL_TYPE)
            .map(|sketch| UidSketch { sketch })
            .map_err(|source| SketchError::LgK { lg_k, source })
    }

    /// [`UidSketch::new`] for an `lg_k` known to be valid: a value outside
    /// the range is clamped into it.
    fn with_lg_k(lg_k: u8) -> UidSketch {
        let lg_k = lg_k.clamp(MIN_LG_K, MAX_LG_K);
        UidSketch { sketch: HllSketch::new(lg_k, HLL_TYPE).unwrap_or_else(|_| unreachable!("lg_k {lg_k} is in range")) }
    }

    /// Log2 of the number of registers.
    pub fn lg_k(&self) -> u8 {
        self.sketch.lg_config_k()
    }

    /// Adds a decoded uid, hashed as DataSketches' `update(string)` hashes
    /// the string's UTF-8 bytes (an empty uid is skipped, as there).
    #[inline]
    pub fn update(&mut self, uid: &[u8]) {
        if let Some(coupon) = UidCoupon::of(uid) {
            self.update_coupon(coupon);
        }
    }

    /// Adds a uid by its precomputed [`UidCoupon`]; the same as
    /// [`UidSketch::update`] of that uid, without hashing it again.
    #[inline]
    pub fn update_coupon(&mut self, coupon: UidCoupon) {
        self.sketch.update_with_coupon(coupon.0);
    }

    /// True when no uid was added.
    pub fn is_empty(&self) -> bool {
        self.sketch.is_empty()
    }

    /// The estimated number of distinct uids: HIP for a sketch built by
    /// updates, composite for a merged one (see the module docs).
    pub fn estimate(&self) -> f64 {
        self.sketch.estimate()
    }

    /// [`UidSketch::estimate`] rounded to the nearest whole number of users.
    pub fn count(&self) -> u64 {
        // `as` saturates; an estimate is finite and non-negative.
        self.estimate().round() as u64
    }

    /// The estimate that depends only on which uids went in, never on
    /// their order: the coupon count while the sketch is a list or set,
    /// the composite estimator of the registers after that (what a union
    /// estimates). Rounded to whole users. Window records say this, so
    /// that they do not depend on how streams interleave.
    pub fn distinct(&self) -> u64 {
        self.sketch.composite_estimate().round() as u64
    }

    /// The sketch's serialization in a canonical form: the same bytes for
    /// the same set of uids whatever order they came in, and an estimate
    /// from them of [`UidSketch::distinct`].
    ///
    /// A sketch's own serialization records its update order: a list or
    /// set lists coupons as they came, and registers carry the in-order
    /// (HIP) accumulator and a hash table of HLL_4's large values. Here
    /// coupons are sorted, and registers are rebuilt slot by slot through
    /// a union (which marks them out of order, so readers estimate from the
    /// registers alone).
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut bytes = self.sketch.serialize();
        match coupon_list(&bytes) {
            Some(at) => {
                let mut coupons: Vec<u32> =
                    bytes[at..].chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
                coupons.sort_unstable();
                for (slot, coupon) in bytes[at..].chunks_exact_mut(4).zip(coupons) {
                    slot.copy_from_slice(&coupon.to_le_bytes());
                }
                bytes
            }
            None => {
                // Registers: merging twice invalidates the in-order
                // estimate; converting from HLL_8 writes registers in slot
                // order.
                let mut union = new_union(self.lg_k());
                union.update(&self.sketch);
                union.update(&self.sketch);
                union.to_sketch(HLL_TYPE).serialize()
            }
        }
    }

    /// Makes `self` the sketch of the union of both sketches' uids.
    ///
    /// The result's registers are the registerwise maximum, so the union's
    /// estimate does not depend on the order of merges; its `lg_k` is the
    /// smaller of the two (a finer sketch is downsampled), and it estimates
    /// with the composite estimator. Merging an empty sketch changes nothing.
    pub fn merge(&mut self, other: &UidSketch) {
        if other.is_empty() {
            return;
        }
        if self.is_empty() && other.lg_k() <= self.lg_k() {
            *self = other.clone();
            return;
        }
        let mut union = new_union(self.lg_k().max(other.lg_k()));
        union.update(&self.sketch);
        union.update(&other.sketch);
        self.sketch = union.to_sketch(HLL_TYPE);
    }

    /// The union of `sketches`, merged in the iterator's order (the bytes of
    /// the result depend on that order, its estimate does not), at
    /// `lg_k` = the smallest of theirs. Cheaper than repeated
    /// [`UidSketch::merge`]: one union, converted once. An empty sketch of
    /// `lg_k` when there are none.
    pub fn union_of<'a>(lg_k: u8, sketches: impl IntoIterator<Item = &'a UidSketch>) -> UidSketch {
        let mut union = new_union(lg_k);
        for s in sketches {
            union.update(&s.sketch);
        }
        UidSketch { sketch: union.to_sketch(HLL_TYPE) }
    }

    /// DataSketches' compact serialization of the sketch: what
    /// `hll_sketch.deserialize` in Python, `HllSketch.heapify` in Java and
    /// `hll_sketch::deserialize` in C++ read.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.sketch.serialize()
    }

    /// Reads a serialized HLL sketch written by kuniq or by any DataSketches
    /// implementation (any register width, `lg_k` in
    /// [`MIN_LG_K`]..=[`MAX_LG_K`], compact or updatable).
    ///
    /// Errors with [`SketchError::Decode`] when the bytes are not such a
    /// sketch (truncated, another sketch family, an unknown serial version,
    /// inconsistent fields); never panics.
    pub fn from_bytes(bytes: &[u8]) -> Result<UidSketch, SketchError> {
        // datasketches 0.6.0 trusts register values (`1u64 << value` in
        // array8.rs) while it reads an image and while it merges one, which
        // panics in builds with overflow checks when damaged bytes hold a
        // value of 64 or more (and gives garbage without them). So an image
        // is read, then merged once into a union of its own, with panics
        // caught: damaged bytes are an error here, never a panic later.
        if !registers_in_range(bytes) {
            return Err(SketchError::Damaged { len: bytes.len() });
        }
        let read = std::panic::catch_unwind(|| HllSketch::deserialize(bytes));
        match read {
            Ok(Ok(sketch)) => Ok(UidSketch { sketch }),
            Ok(Err(source)) => Err(SketchError::Decode { len: bytes.len(), source }),
            Err(_) => Err(SketchError::Damaged { len: bytes.len() }),
        }
    }

    /// Bytes the sketch holds in memory (its list, hash set or registers,
    /// without the few bytes of the struct itself).
    pub fn state_bytes(&self) -> usize {
        self.sketch.estimated_size()
    }
}

/// False when an HLL-mode image claims a register value of 64 or more,
/// which no sketch holds and which `datasketches` 0.6.0 would shift by:
/// HLL_4's base value (`cur_min`, byte 6) plus a nibble, or an HLL_8
/// register (bytes 40 on). List and set modes carry 6-bit values only.
fn registers_in_range(bytes: &[u8]) -> bool {
    const MODE_BYTE: usize = 7;
    const CUR_MIN_BYTE: usize = 6;
    const HLL_HEADER_BYTES: usize = 40;
    let Some(&mode) = bytes.get(MODE_BYTE) else {
        return true;
    };
    if mode & 3 != 2 {
        return true;
    }
    match (mode >> 2) & 3 {
        0 => bytes[CUR_MIN_BYTE] <= 63 - 15,
        2 => bytes.iter().skip(HLL_HEADER_BYTES).all(|&v| v < 64),
        _ => true,
    }
}

/// Where the coupons start in a compact list- or set-mode image; `None`
/// for registers (HLL mode).
fn coupon_list(bytes: &[u8]) -> Option<usize> {
    const MODE_BYTE: usize = 7;
    const LIST_PREAMBLE: usize = 8;
    const SET_PREAMBLE: usize = 12;
    match bytes.get(MODE_BYTE)? & 3 {
        0 => Some(LIST_PREAMBLE.min(bytes.len())),
        1 => Some(SET_PREAMBLE.min(bytes.len())),
        _ => None,
    }
}

/// A union accumulator of `lg_k` clamped into the valid range.
fn new_union(lg_k: u8) -> HllUnion {
    let lg_k = lg_k.clamp(MIN_LG_K, MAX_LG_K);
    HllUnion::new(lg_k).unwrap_or_else(|_| unreachable!("lg_k {lg_k} is in range"))
}

/// Why a sketch could not be made or read.
#[derive(Debug)]
#[non_exhaustive]
pub enum SketchError {
    /// `lg_k` is outside [`MIN_LG_K`]..=[`MAX_LG_K`].
    LgK {
        /// The `lg_k` asked for.
        lg_k: u8,
        /// The `datasketches` crate's error.
        source: datasketches::error::Error,
    },
    /// The bytes are not a serialized DataSketches HLL sketch.
    Decode {
        /// Length of the rejected bytes.
        len: usize,
        /// The `datasketches` crate's error, saying which field was wrong.
        source: datasketches::error::Error,
    },
    /// The bytes look like a sketch but hold impossible register values
    /// (the `datasketches` crate gave up reading them).
    Damaged {
        /// Length of the rejected bytes.
        len: usize,
    },
}

impl fmt::Display for SketchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SketchError::LgK { lg_k, .. } => {
                write!(f, "lg_k {lg_k} is outside {MIN_LG_K}..={MAX_LG_K}")
            }
            SketchError::Decode { len, source } => {
                write!(f, "{len} bytes are not a DataSketches HLL sketch: {}", source.message())
            }
            SketchError::Damaged { len } => {
                write!(f, "{len} bytes are a damaged DataSketches HLL sketch (impossible register values)")
            }
        }
    }
}

impl std::error::Error for SketchError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SketchError::LgK { source, .. } | SketchError::Decode { source, .. } => Some(source),
            SketchError::Damaged { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::error::Error as _;

    fn uids(range: std::ops::Range<u32>) -> impl Iterator<Item = String> {
        range.map(|i| format!("{:x}", u64::from(i).wrapping_mul(0x9E37_79B9_7F4A_7C15)))
    }

    fn sketch_of(lg_k: u8, range: std::ops::Range<u32>) -> UidSketch {
        let mut s = UidSketch::new(lg_k).unwrap();
        for uid in uids(range) {
            s.update(uid.as_bytes());
        }
        s
    }

    fn rel_err(estimate: f64, truth: f64) -> f64 {
        (estimate - truth).abs() / truth
    }

    #[test]
    fn an_empty_sketch_estimates_zero_and_round_trips() {
        let s = UidSketch::default();
        assert!(s.is_empty());
        assert_eq!(s.lg_k(), DEFAULT_LG_K);
        assert_eq!(s.estimate(), 0.0);
        assert_eq!(s.count(), 0);
        let back = UidSketch::from_bytes(&s.to_bytes()).unwrap();
        assert!(back.is_empty());
        assert_eq!(back.to_bytes(), s.to_bytes());
    }

    #[test]
    fn an_empty_uid_is_skipped_as_datasketches_skips_empty_strings() {
        let mut s = UidSketch::default();
        s.update(b"");
        assert!(s.is_empty());
        assert_eq!(UidCoupon::of(b""), None);
    }

    #[test]
    fn small_windows_are_exact_and_repeats_count_once() {
        let mut s = sketch_of(DEFAULT_LG_K, 0..1000);
        for uid in uids(0..1000) {
            s.update(uid.as_bytes());
        }
        assert_eq!(s.count(), 1000);
    }

    #[test]
    fn a_coupon_updates_as_the_uid_does() {
        let (mut a, mut b) = (UidSketch::default(), UidSketch::default());
        for uid in uids(0..50_000) {
            a.update(uid.as_bytes());
            b.update_coupon(UidCoupon::of(uid.as_bytes()).unwrap());
        }
        assert!(a.to_bytes() == b.to_bytes());
    }

    #[test]
    fn bytes_round_trip_in_every_mode() {
        // List, hash set and register modes.
        for n in [0, 5, 3_000, 200_000] {
            let s = sketch_of(DEFAULT_LG_K, 0..n);
            let bytes = s.to_bytes();
            let back = UidSketch::from_bytes(&bytes).unwrap();
            assert_eq!(back.estimate(), s.estimate(), "{n} users");
            assert_eq!(back.lg_k(), DEFAULT_LG_K);
            // The hash set mode serializes its coupons in table order, which
            // a decoded table need not repeat; the other modes are stable.
            if n != 3_000 {
                assert!(back.to_bytes() == bytes, "{n} users: bytes differ after a round trip");
            }
        }
    }

    #[test]
    fn merging_two_halves_estimates_like_one_sketch_of_all() {
        for (lg_k, n) in [(12, 2_000), (12, 100_000), (DEFAULT_LG_K, 300_000)] {
            let whole = sketch_of(lg_k, 0..n);
            let mut left = sketch_of(lg_k, 0..n / 2);
            left.merge(&sketch_of(lg_k, n / 2..n));
            // Same registers; the merged sketch estimates with the composite
            // estimator, within the union's own bound of the truth.
            let sigma = 1.04 / f64::from(1u32 << lg_k).sqrt();
            assert!(rel_err(left.estimate(), f64::from(n)) < 4.0 * sigma, "lg_k {lg_k}, {n} users: {left:?}");
            assert!(rel_err(whole.estimate(), f64::from(n)) < 4.0 * sigma, "lg_k {lg_k}, {n} users: {whole:?}");
            // The halves' union has the whole sketch's registers: it
            // estimates exactly as the whole sketch unioned with itself.
            let mut whole_twice = whole.clone();
            whole_twice.merge(&whole);
            assert_eq!(left.estimate(), whole_twice.estimate(), "lg_k {lg_k}, {n} users");
        }
    }

    #[test]
    fn the_union_estimate_does_not_depend_on_merge_order() {
        let parts: Vec<UidSketch> = (0..6).map(|i| sketch_of(14, i * 20_000..(i + 2) * 20_000)).collect();
        let forward = UidSketch::union_of(14, &parts);
        let backward = UidSketch::union_of(14, parts.iter().rev());
        let mut pairwise = parts[3].clone();
        for i in [5, 0, 2, 4, 1] {
            pairwise.merge(&parts[i]);
        }
        assert_eq!(forward.estimate(), backward.estimate());
        assert_eq!(forward.estimate(), pairwise.estimate());
        assert!(rel_err(forward.estimate(), 140_000.0) < 0.04, "{forward:?}");
    }

    #[test]
    fn merging_an_empty_sketch_changes_nothing() {
        let s = sketch_of(DEFAULT_LG_K, 0..40_000);
        let mut a = s.clone();
        a.merge(&UidSketch::default());
        assert!(a.to_bytes() == s.to_bytes());
        let mut b = UidSketch::default();
        b.merge(&s);
        assert!(b.to_bytes() == s.to_bytes());
    }

    #[test]
    fn a_union_of_one_sketch_keeps_its_estimate() {
        for n in [5, 3_000, 200_000] {
            let s = sketch_of(DEFAULT_LG_K, 0..n);
            let alone = UidSketch::union_of(DEFAULT_LG_K, [&s, &UidSketch::default()]);
            assert_eq!(alone.estimate(), s.estimate(), "{n} users");
        }
    }

    #[test]
    fn merging_different_lg_k_gives_the_smaller() {
        let mut fine = sketch_of(16, 0..50_000);
        fine.merge(&sketch_of(12, 50_000..100_000));
        assert_eq!(fine.lg_k(), 12);
        assert!(rel_err(fine.estimate(), 100_000.0) < 0.07, "{fine:?}");
    }

    #[test]
    fn an_lg_k_out_of_range_is_an_error() {
        for lg_k in [0, MIN_LG_K - 1, MAX_LG_K + 1, u8::MAX] {
            let e = UidSketch::new(lg_k).unwrap_err();
            assert!(matches!(e, SketchError::LgK { .. }), "{e}");
            assert!(e.source().is_some());
        }
        assert_eq!(UidSketch::new(MIN_LG_K).unwrap().lg_k(), MIN_LG_K);
        assert_eq!(UidSketch::new(MAX_LG_K).unwrap().lg_k(), MAX_LG_K);
    }

    #[test]
    fn bad_bytes_are_an_error() {
        let good = sketch_of(12, 0..10_000).to_bytes();
        let mut other_family = good.clone();
        other_family[2] = 3; // theta
        let mut bad_version = good.clone();
        bad_version[1] = 9;
        let mut bad_lg_k = good.clone();
        bad_lg_k[3] = 30;
        for bytes in [&b""[..], &good[..7], &good[..good.len() - 1], &other_family, &bad_version, &bad_lg_k] {
            let e = UidSketch::from_bytes(bytes).unwrap_err();
            assert!(matches!(e, SketchError::Decode { .. }), "{e}");
            assert!(e.source().is_some());
            assert!(e.to_string().contains("not a DataSketches HLL sketch"), "{e}");
        }
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
            let _ = UidSketch::from_bytes(&bytes);
        }

        /// Canonical bytes and the order-free count depend on the set of
        /// uids only: any order, any repeats, any split into merged parts,
        /// in list, set and register modes (lg_k 10: a list to 7 coupons, a
        /// set to 96, registers beyond).
        #[test]
        fn canonical_bytes_do_not_depend_on_order(
            n in prop::sample::select(vec![1u32, 5, 60, 90, 400, 3_000, 20_000]),
            seed in any::<u64>(),
            cut in any::<prop::sample::Index>(),
        ) {
            let uids: Vec<String> = uids(0..n).collect();
            let mut shuffled: Vec<&String> = uids.iter().chain(uids.iter().take(n as usize / 3)).collect();
            // A seeded Fisher-Yates shuffle.
            let mut state = seed | 1;
            for i in (1..shuffled.len()).rev() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                shuffled.swap(i, (state % (i as u64 + 1)) as usize);
            }
            let mut in_order = UidSketch::new(10).unwrap();
            uids.iter().for_each(|u| in_order.update(u.as_bytes()));
            let mut any_order = UidSketch::new(10).unwrap();
            shuffled.iter().for_each(|u| any_order.update(u.as_bytes()));
            let at = cut.index(shuffled.len());
            let (mut left, mut right) = (UidSketch::new(10).unwrap(), UidSketch::new(10).unwrap());
            shuffled[..at].iter().for_each(|u| left.update(u.as_bytes()));
            shuffled[at..].iter().for_each(|u| right.update(u.as_bytes()));
            left.merge(&right);

            let canonical = in_order.canonical_bytes();
            prop_assert_eq!(&any_order.canonical_bytes(), &canonical);
            prop_assert_eq!(&left.canonical_bytes(), &canonical);
            prop_assert_eq!(any_order.distinct(), in_order.distinct());
            prop_assert_eq!(left.distinct(), in_order.distinct());
            let read = UidSketch::from_bytes(&canonical).unwrap();
            prop_assert_eq!(read.count(), in_order.distinct());
            prop_assert_eq!(read.canonical_bytes(), canonical);
        }

        #[test]
        fn corrupted_sketches_never_panic(
            n in prop::sample::select(vec![3u32, 200, 5_000]),
            flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut bytes = sketch_of(10, 0..n).to_bytes();
            for (at, value) in flips {
                let i = at.index(bytes.len());
                bytes[i] = value;
            }
            if let Ok(s) = UidSketch::from_bytes(&bytes) {
                // A sketch that decodes must also estimate, merge and encode.
                let mut m = sketch_of(10, 0..100);
                m.merge(&s);
                let _ = (s.estimate(), m.estimate(), s.to_bytes());
            }
            let len = cut.index(bytes.len());
            let _ = UidSketch::from_bytes(&bytes[..len]);
        }
    }
}
