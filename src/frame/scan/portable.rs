//! Block classifier for any CPU: a byte loop with the same answers as the
//! SIMD one. Used where AVX2/BMI2/PCLMULQDQ are missing, and in tests as
//! the reference the SIMD classifier is compared with.

use super::stage::{self, Classify, Outcome, Raw, Stage};

/// Classifier built from plain integer code.
pub(crate) struct Portable;

impl Classify for Portable {
    /// Its escape letters are a loop over the block's bytes: worth a
    /// branch on whether the block has a backslash.
    const EVERY_BLOCK_ESCAPES: bool = false;

    #[inline(always)]
    unsafe fn classify(block: &[u8; 64]) -> Raw {
        let mut raw = Raw::default();
        for (i, &b) in block.iter().enumerate() {
            let bit = 1u64 << i;
            match b {
                b'"' => raw.quote |= bit,
                b'\\' => raw.backslash |= bit,
                b'{' | b'[' => raw.open |= bit,
                b'}' | b']' => raw.close |= bit,
                b':' => raw.colon |= bit,
                b',' => raw.comma |= bit,
                b' ' | b'\t' | b'\n' | b'\r' => raw.ws |= bit,
                _ => {}
            }
            if b & 0x20 != 0 {
                raw.curly |= bit;
            }
            if matches!(b | 0x20, b'u' | b't') {
                raw.ut |= bit;
            }
            if b < 0x20 {
                raw.ctrl |= bit;
            }
            if b == b'\n' {
                raw.lf |= bit;
            }
            if (0xC2..=0xDF).contains(&b) {
                raw.lead2 |= bit;
            }
            if (0x80..=0xBF).contains(&b) {
                raw.cont |= bit;
            }
            if b >= 0x80 {
                raw.non_ascii |= bit;
            }
        }
        raw
    }

    #[inline(always)]
    unsafe fn escape_letters(block: &[u8; 64]) -> (u64, u64) {
        let (mut letters, mut u) = (0u64, 0u64);
        for (i, &b) in block.iter().enumerate() {
            if matches!(b, b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' | b'u') {
                letters |= 1 << i;
            }
            if b == b'u' {
                u |= 1 << i;
            }
        }
        (letters, u)
    }

    #[inline(always)]
    unsafe fn prefix_xor(mut x: u64) -> u64 {
        x ^= x << 1;
        x ^= x << 2;
        x ^= x << 4;
        x ^= x << 8;
        x ^= x << 16;
        x ^= x << 32;
        x
    }

    #[inline(always)]
    unsafe fn pext(x: u64, mut mask: u64) -> u64 {
        let (mut out, mut k) = (0, 0);
        while mask != 0 {
            let bit = mask & mask.wrapping_neg();
            out |= u64::from(x & bit != 0) << k;
            k += 1;
            mask ^= bit;
        }
        out
    }

    #[inline(always)]
    unsafe fn pdep(x: u64, mut mask: u64) -> u64 {
        let (mut out, mut k) = (0, 0);
        while mask != 0 {
            let bit = mask & mask.wrapping_neg();
            if x >> k & 1 != 0 {
                out |= bit;
            }
            k += 1;
            mask ^= bit;
        }
        out
    }
}

/// Scans a frame with the portable classifier.
pub(crate) fn scan(stage: &mut Stage, frame: &[u8]) -> Outcome {
    // SAFETY: the portable classifier needs no CPU features.
    unsafe { stage::run::<Portable>(stage, frame) }
}

/// Scans the line at the start of `data` with the portable classifier.
pub(crate) fn scan_line(stage: &mut Stage, data: &[u8]) -> (Outcome, usize) {
    // SAFETY: the portable classifier needs no CPU features.
    unsafe { stage::run_line::<Portable>(stage, data) }
}
