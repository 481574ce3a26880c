//! AVX2 block classifier, with PCLMULQDQ prefix XOR.
//!
//! Detected at run time, so a portable build still scans with SIMD on CPUs
//! that have it.

use std::arch::asm;
use std::arch::x86_64::*;

use super::stage::{self, Classify, Outcome, Raw, Stage};

/// True when this CPU has every feature [`scan`] is compiled for.
pub(crate) fn supported() -> bool {
    is_x86_feature_detected!("avx2")
        && is_x86_feature_detected!("bmi1")
        && is_x86_feature_detected!("bmi2")
        && is_x86_feature_detected!("pclmulqdq")
        && is_x86_feature_detected!("popcnt")
}

/// Scans a frame with the AVX2 classifier.
///
/// # Safety
/// The CPU must have the features [`supported`] checks.
#[target_feature(enable = "avx2,bmi1,bmi2,pclmulqdq,popcnt")]
pub(crate) unsafe fn scan(stage: &mut Stage, frame: &[u8]) -> Outcome {
    // SAFETY: this function's features are those `Avx2` needs.
    unsafe { stage::run::<Avx2>(stage, frame) }
}

/// Scans the line at the start of `data` with the AVX2 classifier.
///
/// # Safety
/// As for [`scan`].
#[target_feature(enable = "avx2,bmi1,bmi2,pclmulqdq,popcnt")]
pub(crate) unsafe fn scan_line(stage: &mut Stage, data: &[u8]) -> (Outcome, usize) {
    // SAFETY: this function's features are those `Avx2` needs.
    unsafe { stage::run_line::<Avx2>(stage, data) }
}

struct Avx2;

#[target_feature(enable = "avx2")]
#[inline]
fn mask(v: __m256i) -> u64 {
    _mm256_movemask_epi8(v) as u32 as u64
}

/// Returns `x` unchanged, hidden from the optimizer. Without it LLVM reads
/// combinations of movemask results as vectors of single bits and, lacking
/// AVX-512 mask registers under AVX2, rebuilds byte vectors from them bit
/// by bit: hundreds of instructions per block. The barrier emits no code.
#[inline(always)]
fn opaque(mut x: u64) -> u64 {
    // SAFETY: an empty template that only claims to read and write one
    // register; it touches no memory, stack or flags.
    unsafe { asm!("/* {0} */", inout(reg) x, options(pure, nomem, nostack, preserves_flags)) };
    x
}

#[target_feature(enable = "avx2")]
#[inline]
fn eq(lo: __m256i, hi: __m256i, byte: u8) -> u64 {
    let c = _mm256_set1_epi8(byte as i8);
    mask(_mm256_cmpeq_epi8(lo, c)) | (mask(_mm256_cmpeq_epi8(hi, c)) << 32)
}

/// Bytes `b` with `from <= b < from + count` (unsigned).
#[target_feature(enable = "avx2")]
#[inline]
fn below(lo: __m256i, hi: __m256i, from: u8, count: u8) -> u64 {
    let shift = _mm256_set1_epi8(from as i8);
    let last = _mm256_set1_epi8((count - 1) as i8);
    // b - from <= count - 1, unsigned: min(x, last) == x.
    let inside = |v: __m256i| {
        let x = _mm256_sub_epi8(v, shift);
        mask(_mm256_cmpeq_epi8(_mm256_min_epu8(x, last), x))
    };
    inside(lo) | (inside(hi) << 32)
}

#[target_feature(enable = "avx2")]
#[inline]
fn load(block: &[u8; 64]) -> (__m256i, __m256i) {
    // SAFETY: `block` is 64 readable bytes; loadu has no alignment needs.
    unsafe { (_mm256_loadu_si256(block.as_ptr().cast()), _mm256_loadu_si256(block.as_ptr().add(32).cast())) }
}

#[target_feature(enable = "avx2")]
#[inline]
fn classify(block: &[u8; 64]) -> Raw {
    let (lo, hi) = load(block);
    let lower = _mm256_set1_epi8(0x20);
    let (lo20, hi20) = (_mm256_or_si256(lo, lower), _mm256_or_si256(hi, lower));
    let bound = _mm256_set1_epi8(0x1F);
    let ctrl = mask(_mm256_cmpeq_epi8(_mm256_max_epu8(lo, bound), bound))
        | (mask(_mm256_cmpeq_epi8(_mm256_max_epu8(hi, bound), bound)) << 32);
    // Whitespace without a branch: the table holds, at each low nibble, the
    // whitespace byte with that nibble (space 0x20, tab 0x09, LF 0x0A,
    // CR 0x0D) or 0xFF, which no byte looks up to itself (pshufb gives 0
    // for bytes >= 0x80).
    let ws_table = _mm256_setr_epi8(
        0x20, -1, -1, -1, -1, -1, -1, -1, -1, 0x09, 0x0A, -1, -1, 0x0D, -1, -1, //
        0x20, -1, -1, -1, -1, -1, -1, -1, -1, 0x09, 0x0A, -1, -1, 0x0D, -1, -1,
    );
    let is_ws = |v: __m256i| mask(_mm256_cmpeq_epi8(_mm256_shuffle_epi8(ws_table, v), v));
    let ws = is_ws(lo) | (is_ws(hi) << 32);
    // `[` and `{` (and `]` and `}`, `T`/`U` and `t`/`u`) differ only in
    // bit 0x20: compare with it set, then tell them apart by that bit.
    let curly = mask(_mm256_slli_epi16(lo, 2)) | (mask(_mm256_slli_epi16(hi, 2)) << 32);
    let ut = eq(lo20, hi20, b'u') | eq(lo20, hi20, b't');
    Raw {
        quote: opaque(eq(lo, hi, b'"')),
        backslash: opaque(eq(lo, hi, b'\\')),
        ws: opaque(ws),
        ctrl: opaque(ctrl),
        open: opaque(eq(lo20, hi20, b'{')),
        close: opaque(eq(lo20, hi20, b'}')),
        curly: opaque(curly),
        colon: opaque(eq(lo, hi, b':')),
        comma: opaque(eq(lo, hi, b',')),
        non_ascii: opaque(mask(lo) | (mask(hi) << 32)),
        lf: opaque(eq(lo, hi, b'\n')),
        lead2: opaque(below(lo, hi, 0xC2, 0x1E)),
        cont: opaque(below(lo, hi, 0x80, 0x40)),
        ut: opaque(ut),
    }
}

#[target_feature(enable = "avx2")]
#[inline]
fn escape_letters(block: &[u8; 64]) -> (u64, u64) {
    // Nibble tables: a byte is a valid escape letter when the entries for
    // its high and low nibble share a bit. Bit 16 marks `u`.
    //   " 0x22  / 0x2F   -> bit 1 (high nibble 2)
    //   \ 0x5C           -> bit 2 (high nibble 5)
    //   b 0x62 f 0x66 n 0x6E -> bit 4 (high nibble 6)
    //   r 0x72 t 0x74    -> bit 8, u 0x75 -> bit 16 (high nibble 7)
    let high = _mm256_setr_epi8(
        0, 0, 1, 0, 0, 2, 4, 24, 0, 0, 0, 0, 0, 0, 0, 0, //
        0, 0, 1, 0, 0, 2, 4, 24, 0, 0, 0, 0, 0, 0, 0, 0,
    );
    let low = _mm256_setr_epi8(
        0, 0, 13, 0, 8, 16, 4, 0, 0, 0, 0, 0, 2, 0, 4, 1, //
        0, 0, 13, 0, 8, 16, 4, 0, 0, 0, 0, 0, 2, 0, 4, 1,
    );
    let nibble = _mm256_set1_epi8(0x0F);
    let (lo, hi) = load(block);
    let lookup = |v: __m256i| {
        let h = _mm256_and_si256(_mm256_srli_epi16(v, 4), nibble);
        let l = _mm256_and_si256(v, nibble);
        _mm256_and_si256(_mm256_shuffle_epi8(high, h), _mm256_shuffle_epi8(low, l))
    };
    let (a, b) = (lookup(lo), lookup(hi));
    // A byte is a letter when its lookup is non-zero: adding 0x7F with
    // unsigned saturation sets the top bit exactly then, and movemask reads
    // it. (Comparing with zero and inverting lets LLVM turn the masks into
    // per-bit vectors and back, which costs hundreds of instructions.)
    let top = _mm256_set1_epi8(0x7F);
    let letters = mask(_mm256_adds_epu8(a, top)) | (mask(_mm256_adds_epu8(b, top)) << 32);
    // `u` alone has bit 16 (0x10): shift it to the top bit.
    let u = mask(_mm256_slli_epi16(a, 3)) | (mask(_mm256_slli_epi16(b, 3)) << 32);
    (opaque(letters), opaque(u))
}

impl Classify for Avx2 {
    #[inline(always)]
    unsafe fn classify(block: &[u8; 64]) -> Raw {
        // SAFETY: the caller guarantees AVX2.
        unsafe { classify(block) }
    }

    #[inline(always)]
    unsafe fn escape_letters(block: &[u8; 64]) -> (u64, u64) {
        // SAFETY: the caller guarantees AVX2.
        unsafe { escape_letters(block) }
    }

    #[inline(always)]
    unsafe fn prefix_xor(x: u64) -> u64 {
        // SAFETY: the caller guarantees PCLMULQDQ.
        unsafe { prefix_xor(x) }
    }

    #[inline(always)]
    unsafe fn pext(x: u64, mask: u64) -> u64 {
        // SAFETY: the caller guarantees BMI2.
        unsafe { _pext_u64(x, mask) }
    }

    #[inline(always)]
    unsafe fn pdep(x: u64, mask: u64) -> u64 {
        // SAFETY: the caller guarantees BMI2.
        unsafe { _pdep_u64(x, mask) }
    }
}

/// Carry-less multiply by all ones: each bit becomes the XOR of itself and
/// all lower bits.
#[target_feature(enable = "pclmulqdq,sse2")]
#[inline]
pub(super) fn prefix_xor(x: u64) -> u64 {
    let product = _mm_clmulepi64_si128(_mm_set_epi64x(0, x as i64), _mm_set1_epi8(-1), 0);
    _mm_cvtsi128_si64(product) as u64
}

#[cfg(test)]
pub(crate) use test_access::*;

#[cfg(test)]
mod test_access {
    use super::{Avx2, Classify, Raw};

    /// # Safety
    /// The CPU must have the features [`super::supported`] checks.
    pub(crate) unsafe fn classify_for_tests(block: &[u8; 64]) -> Raw {
        // SAFETY: forwarded.
        unsafe { Avx2::classify(block) }
    }
    /// # Safety
    /// As above.
    pub(crate) unsafe fn escape_letters_for_tests(block: &[u8; 64]) -> (u64, u64) {
        // SAFETY: forwarded.
        unsafe { Avx2::escape_letters(block) }
    }
    /// # Safety
    /// As above.
    pub(crate) unsafe fn prefix_xor_for_tests(x: u64) -> u64 {
        // SAFETY: forwarded.
        unsafe { Avx2::prefix_xor(x) }
    }
}
