//! The `scan` parser: full JSON validation with SIMD bitmasks, one pass.
//!
//! A frame is read in 64-byte blocks. For each block a classifier (AVX2 when
//! the CPU has it, a portable byte loop otherwise) turns bytes into one bit
//! per byte for each class that matters: quotes, backslashes, whitespace,
//! control bytes, brackets, colons, commas, non-ASCII. Everything else is
//! integer arithmetic on those 64-bit masks ([`stage`]):
//!
//! 1. Escaped bytes come from the odd-length backslash runs (carry trick);
//!    the escaped bytes must be valid escape letters.
//! 2. The in-string mask is the prefix XOR of unescaped quotes (carry-less
//!    multiply). Control bytes inside strings and stray bytes outside are
//!    errors.
//! 3. A walk over the few brackets per block tracks depth and container
//!    kinds (an explicit bit stack: any depth, no recursion), checks that
//!    brackets match, and builds the masks of array context and of the
//!    top-level object's own members.
//! 4. With whitespace between tokens removed (`pext`), JSON's grammar is a
//!    set of "what may follow" rules on adjacent tokens: after `{` a key or
//!    `}`; after a key `:`; after `:` or `,`-in-array a value; after a value
//!    `,` or a closing bracket; and so on. Each rule is a shift and a mask
//!    test. Keys are strings that follow `{` or an object's `,`; their
//!    closing quotes come from adding the key-start bits to the in-string
//!    mask (carry ripples to the closing quote).
//! 5. Numbers and literals are validated by a short scalar routine at each
//!    scalar start (a handful per frame); top-level keys are compared with
//!    `uid"` / `ts"` at their opening quote.
//!
//! UTF-8 is checked once per frame with simdutf8 when the frame has
//! non-ASCII bytes (outside strings they are already grammar errors).
//! The rare cases the masks do not decide, `\uXXXX` escapes and escaped
//! top-level keys, go to the strict iterative parser, so the verdict is
//! always exactly the strict parser's.

mod portable;
pub(crate) mod stage;
#[cfg(target_arch = "x86_64")]
mod x86;
#[cfg(target_arch = "x86_64")]
mod x86_512;

use super::strict::{StrictParser, number_end};
use super::{FieldSeen, Fields, FrameParser, Reject, Scratch, classify_non_object, finish, is_json_ws};
use stage::{Outcome, Stage};

/// Which block classifier this CPU runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// AVX-512 BW + BMI2 + PCLMULQDQ, detected at run time.
    Avx512,
    /// AVX2 + BMI2 + PCLMULQDQ, detected at run time.
    Avx2,
    /// Byte loop; same answers, slower.
    Portable,
}

impl Isa {
    /// The best classifier this CPU supports.
    pub fn detect() -> Isa {
        #[cfg(target_arch = "x86_64")]
        if x86_512::supported() {
            return Isa::Avx512;
        }
        #[cfg(target_arch = "x86_64")]
        if x86::supported() {
            return Isa::Avx2;
        }
        Isa::Portable
    }

    /// True when this CPU can run the classifier.
    pub fn supported(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => x86_512::supported(),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => x86::supported(),
            Isa::Portable => true,
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }
}

/// SIMD frame scanner with reusable state.
#[derive(Debug)]
pub struct ScanParser {
    isa: Isa,
    stage: Stage,
    scratch: Scratch,
    strict: StrictParser,
}

impl Default for ScanParser {
    fn default() -> Self {
        ScanParser::new()
    }
}

impl ScanParser {
    /// A scanner using the best classifier for this CPU.
    pub fn new() -> ScanParser {
        ScanParser::with_isa(Isa::detect())
    }

    /// A scanner using `isa`, which must be supported by this CPU; asking
    /// for AVX2 on a CPU without it falls back to the portable classifier.
    pub fn with_isa(isa: Isa) -> ScanParser {
        let isa = if isa.supported() { isa } else { Isa::Portable };
        ScanParser { isa, stage: Stage::default(), scratch: Scratch::default(), strict: StrictParser::new() }
    }

    /// The classifier in use.
    pub fn isa(&self) -> Isa {
        self.isa
    }
}

impl FrameParser for ScanParser {
    fn parse<'a>(&'a mut self, frame: &'a [u8]) -> Result<Fields<'a>, Reject> {
        let Some(open) = frame.iter().position(|&b| !is_json_ws(b)) else {
            return Err(Reject::Empty);
        };
        if frame[open] != b'{' {
            return Err(classify_non_object(frame));
        }
        let outcome = match self.isa {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `isa` is Avx512 only when `x86_512::supported()`
            // confirmed every feature that classifier is compiled for.
            Isa::Avx512 => unsafe { x86_512::scan(&mut self.stage, frame) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above, with `x86::supported()`.
            Isa::Avx2 => unsafe { x86::scan(&mut self.stage, frame) },
            _ => portable::scan(&mut self.stage, frame),
        };
        self.verdict(frame, outcome)
    }

    fn parse_line<'a>(&'a mut self, data: &'a [u8]) -> (usize, Result<Fields<'a>, Reject>) {
        if data.first() != Some(&b'{') {
            // Leading whitespace, empty lines, non-objects: rare, and
            // handled on the whole line.
            let len = memchr::memchr(b'\n', data).unwrap_or(data.len());
            return (len, self.parse(&data[..len]));
        }
        let (outcome, len) = match self.isa {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as in `parse`.
            Isa::Avx512 => unsafe { x86_512::scan_line(&mut self.stage, data) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as in `parse`.
            Isa::Avx2 => unsafe { x86::scan_line(&mut self.stage, data) },
            _ => portable::scan_line(&mut self.stage, data),
        };
        (len, self.verdict(&data[..len], outcome))
    }
}

impl ScanParser {
    /// The fields of a scanned frame, or why it is rejected.
    fn verdict<'a>(&'a mut self, frame: &'a [u8], outcome: Outcome) -> Result<Fields<'a>, Reject> {
        match outcome {
            Outcome::Valid => {}
            Outcome::Invalid => return Err(Reject::Malformed),
            Outcome::Undecided => return self.strict.parse(frame),
        }
        if !self.stage.utf8.is_empty() && simdutf8::basic::from_utf8(&frame[self.stage.utf8.clone()]).is_err() {
            return Err(Reject::Malformed);
        }
        let uid = seen_field(frame, self.stage.uid_key, self.stage.uid_count, 5);
        let ts = seen_field(frame, self.stage.ts_key, self.stage.ts_count, 4);
        finish(uid, ts, &mut self.scratch)
    }
}

/// The raw value text of a top-level key whose opening quote is at `key`
/// (`key_len` bytes long with quotes), in a frame already known valid.
fn seen_field(frame: &[u8], key: usize, count: u32, key_len: usize) -> FieldSeen<'_> {
    if count == 0 {
        return FieldSeen::NONE;
    }
    let mut p = key + key_len;
    while frame.get(p).is_some_and(|&b| is_json_ws(b) || b == b':') {
        p += 1;
    }
    let end = match frame.get(p) {
        Some(b'"') => string_end(frame, p),
        Some(b'-' | b'0'..=b'9') => number_end(frame, p).unwrap_or(p + 1),
        _ => p + 1,
    };
    FieldSeen { first: frame.get(p..end.min(frame.len())), count }
}

/// Index after the closing quote of the (valid) string starting at `start`.
fn string_end(frame: &[u8], start: usize) -> usize {
    let mut p = start + 1;
    while let Some(off) = memchr::memchr2(b'"', b'\\', &frame[p.min(frame.len())..]) {
        p += off;
        if frame[p] == b'"' {
            return p + 1;
        }
        p += 2;
    }
    frame.len()
}

#[cfg(test)]
mod tests;
