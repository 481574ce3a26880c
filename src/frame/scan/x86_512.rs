//! AVX-512 (BW) block classifier: one 64-byte register per block and
//! comparisons straight into 64-bit masks, about half the instructions of
//! the AVX2 classifier, which needs two halves and a movemask per class.

use std::arch::x86_64::*;

use super::stage::{self, Classify, Outcome, Raw, Stage};

/// True when this CPU has every feature [`scan`] is compiled for.
pub(crate) fn supported() -> bool {
    super::x86::supported() && is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bw")
}

/// Scans a frame with the AVX-512 classifier.
///
/// # Safety
/// The CPU must have the features [`supported`] checks.
#[target_feature(enable = "avx512f,avx512bw,avx2,bmi1,bmi2,pclmulqdq,popcnt")]
pub(crate) unsafe fn scan(stage: &mut Stage, frame: &[u8]) -> Outcome {
    // SAFETY: this function's features are those `Avx512` needs.
    unsafe { stage::run::<Avx512>(stage, frame) }
}

/// Scans the line at the start of `data` with the AVX-512 classifier.
///
/// # Safety
/// As for [`scan`].
#[target_feature(enable = "avx512f,avx512bw,avx2,bmi1,bmi2,pclmulqdq,popcnt")]
pub(crate) unsafe fn scan_line(stage: &mut Stage, data: &[u8]) -> (Outcome, usize) {
    // SAFETY: this function's features are those `Avx512` needs.
    unsafe { stage::run_line::<Avx512>(stage, data) }
}

pub(crate) struct Avx512;

#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
fn load(block: &[u8; 64]) -> __m512i {
    // SAFETY: `block` is 64 readable bytes; loadu has no alignment needs.
    unsafe { _mm512_loadu_si512(block.as_ptr().cast()) }
}

/// A 16-byte table repeated in each 128-bit lane, for `vpshufb`.
#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
fn table(bytes: [u8; 16]) -> __m512i {
    // SAFETY: 16 readable bytes; loadu has no alignment needs.
    _mm512_broadcast_i32x4(unsafe { _mm_loadu_si128(bytes.as_ptr().cast()) })
}

#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
fn classify(block: &[u8; 64]) -> Raw {
    let v = load(block);
    let eq = |byte: u8| _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8(byte as i8));
    let v20 = _mm512_or_si512(v, _mm512_set1_epi8(0x20));
    let eq20 = |byte: u8| _mm512_cmpeq_epi8_mask(v20, _mm512_set1_epi8(byte as i8));
    // Whitespace: at each low nibble, the whitespace byte with that nibble
    // or 0xFF (see the AVX2 classifier); vpshufb gives 0 for bytes >= 0x80.
    const FF: u8 = 0xFF;
    let ws_table = table([0x20, FF, FF, FF, FF, FF, FF, FF, FF, 0x09, 0x0A, FF, FF, 0x0D, FF, FF]);
    let ws = _mm512_cmpeq_epi8_mask(_mm512_shuffle_epi8(ws_table, v), v);
    Raw {
        quote: eq(b'"'),
        backslash: eq(b'\\'),
        ws,
        ctrl: _mm512_cmplt_epu8_mask(v, _mm512_set1_epi8(0x20)),
        open: eq20(b'{'),
        close: eq20(b'}'),
        curly: _mm512_test_epi8_mask(v, _mm512_set1_epi8(0x20)),
        colon: eq(b':'),
        comma: eq(b','),
        non_ascii: _mm512_movepi8_mask(v),
        lf: eq(b'\n'),
        lead2: _mm512_cmplt_epu8_mask(_mm512_sub_epi8(v, _mm512_set1_epi8(0xC2_u8 as i8)), _mm512_set1_epi8(0x1E)),
        cont: _mm512_cmplt_epu8_mask(_mm512_sub_epi8(v, _mm512_set1_epi8(0x80_u8 as i8)), _mm512_set1_epi8(0x40)),
        ut: eq20(b'u') | eq20(b't'),
    }
}

#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
fn escape_letters(block: &[u8; 64]) -> (u64, u64) {
    // The nibble tables of the AVX2 classifier: a byte is a valid escape
    // letter when the entries for its two nibbles share a bit; 16 marks `u`.
    let high = table([0, 0, 1, 0, 0, 2, 4, 24, 0, 0, 0, 0, 0, 0, 0, 0]);
    let low = table([0, 0, 13, 0, 8, 16, 4, 0, 0, 0, 0, 0, 2, 0, 4, 1]);
    let nibble = _mm512_set1_epi8(0x0F);
    let v = load(block);
    let h = _mm512_and_si512(_mm512_srli_epi16(v, 4), nibble);
    let l = _mm512_and_si512(v, nibble);
    let both = _mm512_and_si512(_mm512_shuffle_epi8(high, h), _mm512_shuffle_epi8(low, l));
    let letters = _mm512_test_epi8_mask(both, both);
    let u = _mm512_test_epi8_mask(both, _mm512_set1_epi8(16));
    (letters, u)
}

impl Classify for Avx512 {
    #[inline(always)]
    unsafe fn classify(block: &[u8; 64]) -> Raw {
        // SAFETY: the caller guarantees AVX-512 BW.
        unsafe { classify(block) }
    }

    #[inline(always)]
    unsafe fn escape_letters(block: &[u8; 64]) -> (u64, u64) {
        // SAFETY: the caller guarantees AVX-512 BW.
        unsafe { escape_letters(block) }
    }

    #[inline(always)]
    unsafe fn prefix_xor(x: u64) -> u64 {
        // SAFETY: the caller guarantees PCLMULQDQ.
        unsafe { super::x86::prefix_xor(x) }
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

#[cfg(test)]
pub(crate) use test_access::*;

#[cfg(test)]
mod test_access {
    use super::{Avx512, Classify, Raw};

    /// # Safety
    /// The CPU must have the features [`super::supported`] checks.
    pub(crate) unsafe fn classify_for_tests(block: &[u8; 64]) -> Raw {
        // SAFETY: forwarded.
        unsafe { Avx512::classify(block) }
    }
    /// # Safety
    /// As above.
    pub(crate) unsafe fn escape_letters_for_tests(block: &[u8; 64]) -> (u64, u64) {
        // SAFETY: forwarded.
        unsafe { Avx512::escape_letters(block) }
    }
}
