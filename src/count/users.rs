//! A window's distinct users, exact or estimated: what `--estimator`
//! chooses.

use std::fmt;
use std::str::FromStr;

use super::UidSet;
use super::sketch::{self, UidCoupon, UidSketch};

/// How windows count distinct users (`--estimator`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Estimator {
    /// Every distinct uid hash is kept: exact (see [`crate::count`]).
    #[default]
    Exact,
    /// An Apache DataSketches HLL_4 sketch with 2^`lg_k` registers
    /// ([`crate::count::sketch`]): fixed memory, an error of about
    /// 1.04 / sqrt(2^lg_k) (relative, one standard deviation).
    Hll {
        /// Log2 of the number of registers.
        lg_k: u8,
    },
}

impl Estimator {
    /// The HLL estimator with kuniq's default size.
    pub const HLL: Estimator = Estimator::Hll { lg_k: sketch::DEFAULT_LG_K };

    /// Empty users of this estimator.
    pub fn users(self) -> Users {
        match self {
            Estimator::Exact => Users::Exact(UidSet::new()),
            Estimator::Hll { lg_k } => Users::Sketch(UidSketch::new(lg_k).unwrap_or_default()),
        }
    }

    /// True for the sketch estimators (frames need their [`UidCoupon`]).
    pub fn is_sketch(self) -> bool {
        matches!(self, Estimator::Hll { .. })
    }
}

impl fmt::Display for Estimator {
    /// The record's `estimator` field: `exact`, or `hll-17` (the sketch's
    /// `lg_k`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Estimator::Exact => f.write_str("exact"),
            Estimator::Hll { lg_k } => write!(f, "hll-{lg_k}"),
        }
    }
}

impl FromStr for Estimator {
    type Err = String;

    /// `exact`, `hll` (lg_k [`sketch::DEFAULT_LG_K`]) or `hll-N` (lg_k N,
    /// [`sketch::MIN_LG_K`]..=[`sketch::MAX_LG_K`]).
    fn from_str(s: &str) -> Result<Estimator, String> {
        let lg_k = match s {
            "exact" => return Ok(Estimator::Exact),
            "hll" => sketch::DEFAULT_LG_K,
            _ => s.strip_prefix("hll-").and_then(|n| n.parse::<u8>().ok()).ok_or_else(|| {
                format!("unknown estimator '{s}': use exact, hll, or hll-N with N the log2 of the sketch's registers")
            })?,
        };
        if !(sketch::MIN_LG_K..=sketch::MAX_LG_K).contains(&lg_k) {
            return Err(format!(
                "hll-{lg_k}: the sketch's lg_k must be within {}..={} (16 is the default)",
                sketch::MIN_LG_K,
                sketch::MAX_LG_K
            ));
        }
        Ok(Estimator::Hll { lg_k })
    }
}

/// One frame's uid as the estimators take it: the portable 64-bit hash
/// (exact), and the DataSketches coupon when a sketch counts (`None` for
/// an empty uid, which DataSketches skips, or when no sketch counts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UidKey {
    /// The portable uid hash ([`super::UidHasher`]).
    pub hash: u64,
    /// The uid's DataSketches coupon ([`UidCoupon::of`]).
    pub coupon: Option<UidCoupon>,
}

/// The distinct users of a window, or of part of one.
///
/// The exact set's 16 shard headers (520 bytes) stay inline, as they were
/// in windows before sketches: boxing them would add a pointer chase to
/// every insert on the hot path; a sketch window wastes the difference.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Users {
    /// Exact: the set of uid hashes.
    Exact(UidSet),
    /// Estimated: an HLL sketch of the uids.
    Sketch(UidSketch),
}

impl Users {
    /// Adds one frame's uid. True when exact users gained a user (a
    /// sketch does not tell).
    #[inline]
    pub fn add(&mut self, key: UidKey) -> bool {
        match self {
            Users::Exact(set) => set.insert(key.hash),
            Users::Sketch(sketch) => {
                if let Some(coupon) = key.coupon {
                    sketch.update_coupon(coupon);
                }
                false
            }
        }
    }

    /// The number of distinct users: exact, or the sketch's order-free
    /// estimate ([`UidSketch::distinct`]), so the same uids give the same
    /// count whatever order they came in.
    #[inline]
    pub fn count(&self) -> u64 {
        match self {
            Users::Exact(set) => set.len(),
            Users::Sketch(sketch) => sketch.distinct(),
        }
    }

    /// True when no uid was added.
    pub fn is_empty(&self) -> bool {
        match self {
            Users::Exact(set) => set.is_empty(),
            Users::Sketch(sketch) => sketch.is_empty(),
        }
    }

    /// Makes `self` the union of both. Exact and estimated users do not
    /// mix: adding the other kind is an error, `self` unchanged.
    pub fn union_with(&mut self, other: &Users) -> Result<(), MixedEstimators> {
        match (self, other) {
            (Users::Exact(a), Users::Exact(b)) => a.union_with(b),
            (Users::Sketch(a), Users::Sketch(b)) => a.merge(b),
            _ => return Err(MixedEstimators),
        }
        Ok(())
    }

    /// No users, counted the same way as `self` (a sketch of its size).
    pub fn empty_like(&self) -> Users {
        match self {
            Users::Exact(_) => Users::Exact(UidSet::new()),
            Users::Sketch(sketch) => Estimator::Hll { lg_k: sketch.lg_k() }.users(),
        }
    }

    /// Bytes held in memory.
    pub fn state_bytes(&self) -> usize {
        match self {
            Users::Exact(set) => set.state_bytes(),
            Users::Sketch(sketch) => sketch.state_bytes(),
        }
    }
}

/// Exact and estimated users cannot be combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MixedEstimators;

impl fmt::Display for MixedEstimators {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("exact users and an HLL sketch cannot be combined (they were counted with different --estimator)")
    }
}

impl std::error::Error for MixedEstimators {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimators_parse_and_print_as_records_name_them() {
        assert_eq!("exact".parse(), Ok(Estimator::Exact));
        assert_eq!("hll".parse(), Ok(Estimator::HLL));
        assert_eq!("hll-12".parse(), Ok(Estimator::Hll { lg_k: 12 }));
        assert_eq!(Estimator::HLL.to_string(), format!("hll-{}", sketch::DEFAULT_LG_K));
        assert_eq!(Estimator::Exact.to_string(), "exact");
        for bad in ["cpc", "hll-", "hll-3", "hll-22", "HLL", ""] {
            let err = bad.parse::<Estimator>().unwrap_err();
            assert!(err.contains("hll"), "{bad}: {err}");
        }
    }

    #[test]
    fn exact_and_sketched_users_do_not_mix() {
        let mut exact = Estimator::Exact.users();
        let sketch = Estimator::HLL.users();
        assert_eq!(exact.union_with(&sketch), Err(MixedEstimators));
    }

    #[test]
    fn both_count_small_sets_exactly() {
        let hasher = super::super::UidHasher::new();
        for estimator in [Estimator::Exact, Estimator::HLL] {
            let mut users = estimator.users();
            for uid in ["a", "b", "a", "c", ""] {
                users.add(UidKey { hash: hasher.hash(uid.as_bytes()), coupon: UidCoupon::of(uid.as_bytes()) });
            }
            // The empty uid is a user for the exact count; DataSketches
            // skips empty strings.
            let expected = if estimator.is_sketch() { 3 } else { 4 };
            assert_eq!(users.count(), expected, "{estimator}");
        }
    }
}
