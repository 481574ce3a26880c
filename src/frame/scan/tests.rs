//! Mask primitives against naive byte-by-byte oracles.

use proptest::prelude::*;

use super::portable::Portable;
use super::stage::{Classify, escaped_bytes};

/// Escaped positions of a byte string, the slow obvious way.
fn naive_escaped(bytes: &[u8]) -> Vec<bool> {
    let mut out = vec![false; bytes.len()];
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 1 < bytes.len() {
            out[i + 1] = true;
            i += 2;
        } else {
            i += 1;
        }
    }
    out
}

fn block_from(bytes: &[u8], k: usize) -> [u8; 64] {
    let mut block = [b' '; 64];
    let chunk = &bytes[k * 64..((k + 1) * 64).min(bytes.len())];
    block[..chunk.len()].copy_from_slice(chunk);
    block
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn escapes_match_naive_across_blocks(bytes in prop::collection::vec(prop::sample::select(vec![b'\\', b'\\', b'\\', b'a', b'"']), 1..300)) {
        let naive = naive_escaped(&bytes);
        let mut carry = 0;
        for k in 0..bytes.len().div_ceil(64) {
            let block = block_from(&bytes, k);
            // SAFETY: the portable classifier needs no CPU features.
            let raw = unsafe { Portable::classify(&block) };
            let escaped = escaped_bytes(raw.backslash, &mut carry);
            for i in 0..64 {
                let at = k * 64 + i;
                if at < bytes.len() {
                    prop_assert_eq!(escaped >> i & 1 == 1, naive[at], "byte {}", at);
                }
            }
        }
    }

    #[test]
    fn prefix_xor_is_running_parity(x in any::<u64>()) {
        let mut parity = 0;
        let mut expect = 0u64;
        for i in 0..64 {
            parity ^= x >> i & 1;
            expect |= parity << i;
        }
        // SAFETY: the portable classifier needs no CPU features.
        prop_assert_eq!(unsafe { Portable::prefix_xor(x) }, expect);
    }
}

#[cfg(target_arch = "x86_64")]
mod x86_agrees {
    use super::*;
    use crate::frame::scan::{x86, x86_512};

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        #[test]
        fn avx2_classifier_equals_portable(block in prop::array::uniform32(any::<u8>()), block2 in prop::array::uniform32(any::<u8>())) {
            if !x86::supported() {
                return Ok(());
            }
            let mut full = [0u8; 64];
            full[..32].copy_from_slice(&block);
            full[32..].copy_from_slice(&block2);
            // SAFETY: features checked above; portable needs none.
            let (a, b) = unsafe { (x86::classify_for_tests(&full), Portable::classify(&full)) };
            prop_assert_eq!(format!("{a:?}"), format!("{b:?}"));
            // SAFETY: as above.
            let (la, lb) = unsafe { (x86::escape_letters_for_tests(&full), Portable::escape_letters(&full)) };
            prop_assert_eq!(la, lb);
            if x86_512::supported() {
                // SAFETY: features checked just above.
                let (c, l) = unsafe { (x86_512::classify_for_tests(&full), x86_512::escape_letters_for_tests(&full)) };
                prop_assert_eq!(format!("{c:?}"), format!("{b:?}"));
                prop_assert_eq!(l, lb);
            }
            for x in [u64::from_le_bytes(full[..8].try_into().unwrap()), u64::from_le_bytes(full[8..16].try_into().unwrap())] {
                let m = u64::from_le_bytes(full[16..24].try_into().unwrap());
                // SAFETY: as above.
                unsafe {
                    prop_assert_eq!(x86::prefix_xor_for_tests(x ^ m), Portable::prefix_xor(x ^ m));
                }
            }
        }
    }
}
