//! The mask logic of the `scan` parser, generic over the block classifier.
//!
//! Conventions: bit `i` of a mask is byte `i` of the 64-byte block. Masks
//! named `*_c` live in "compressed" space, where whitespace between tokens
//! has been squeezed out so adjacent tokens are adjacent bits (when a block
//! has no such whitespace the two spaces are the same). Carries hand the
//! last bit of a block's state to the next block.

/// Per-byte class masks of one block, as produced by a classifier.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Raw {
    /// `"`
    pub quote: u64,
    /// `\`
    pub backslash: u64,
    /// JSON whitespace: space, tab, LF, CR.
    pub ws: u64,
    /// Bytes below 0x20 (whitespace control bytes included).
    pub ctrl: u64,
    /// `{` or `[`.
    pub open: u64,
    /// `}` or `]`.
    pub close: u64,
    /// Bit 0x20 of the byte: tells `{}` (set) from `[]` (clear) at brackets.
    pub curly: u64,
    /// `:`
    pub colon: u64,
    /// `,`
    pub comma: u64,
    /// Bytes 0x80 and above.
    pub non_ascii: u64,
    /// Line feed: where a line ends, when scanning lines.
    pub lf: u64,
    /// Lead bytes of two-byte UTF-8 sequences (0xC2 to 0xDF).
    pub lead2: u64,
    /// UTF-8 continuation bytes (0x80 to 0xBF).
    pub cont: u64,
    /// `u` or `t`: first letters of the keys kuniq looks for.
    pub ut: u64,
}

/// A block classifier and the bit operations it has hardware for.
pub(crate) trait Classify {
    /// Classifies one block.
    ///
    /// # Safety
    /// The CPU must support the implementation's target features.
    unsafe fn classify(block: &[u8; 64]) -> Raw;

    /// Masks of bytes that are valid after a backslash (`"\/bfnrtu`) and of
    /// `u` among them.
    ///
    /// # Safety
    /// As for `classify`.
    unsafe fn escape_letters(block: &[u8; 64]) -> (u64, u64);

    /// Bit `i` of the result is the XOR of bits `0..=i` of `x`.
    ///
    /// # Safety
    /// As for `classify`.
    unsafe fn prefix_xor(x: u64) -> u64;

    /// Gathers the bits of `x` selected by `mask` into the low bits.
    ///
    /// # Safety
    /// As for `classify`.
    unsafe fn pext(x: u64, mask: u64) -> u64;

    /// Scatters the low bits of `x` to the positions selected by `mask`.
    ///
    /// # Safety
    /// As for `classify`.
    unsafe fn pdep(x: u64, mask: u64) -> u64;

    /// True when [`Classify::escape_letters`] is cheap enough to run on
    /// every block rather than behind a branch on backslashes (SIMD
    /// classifiers: a few instructions; the portable one: a byte loop).
    const EVERY_BLOCK_ESCAPES: bool = true;
}

/// Result of the mask pass over a whole frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Valid JSON object; `Stage` holds the top-level uid/ts key positions.
    Valid,
    /// Not valid JSON.
    Invalid,
    /// Holds something the masks do not decide (`\u` escapes, escaped
    /// top-level keys): ask the strict parser.
    Undecided,
}

/// Reusable state and results of a frame scan.
#[derive(Debug, Default)]
pub(crate) struct Stage {
    /// Container kinds of levels deeper than 64 (true = array), outermost
    /// first. Its capacity grows with depth and is kept between frames.
    deep_kinds: Vec<bool>,
    /// Lexed blocks of the current batch (kept here: initialising it per
    /// frame cost 2% of the scan).
    lexed: Box<[Lexed; BATCH]>,
    /// Opening quote of the first top-level `"uid"` key.
    pub uid_key: usize,
    /// Number of top-level `uid` keys.
    pub uid_count: u32,
    /// Opening quote of the first top-level `"ts"` key.
    pub ts_key: usize,
    /// Number of top-level `ts` keys.
    pub ts_count: u32,
    /// Bytes a full UTF-8 validator must check: empty when the frame is
    /// ASCII and two-byte sequences only (checked by the scan), else the
    /// whole frame. (Narrowing it to the blocks with non-ASCII bytes cost
    /// the scan a tenth of its instructions per block to save simdutf8 a
    /// few ASCII bytes in rare frames: official frames hold two-byte
    /// Cyrillic only.)
    pub utf8: std::ops::Range<usize>,
}

/// Carries of the parsing pass from one block to the next.
#[derive(Debug, Default)]
struct Carry {
    /// Compressed-space "the next token follows a ..." bits. `colon` is
    /// for `:` and an array's `,` (both must be followed by a value).
    colon: u64,
    comma_object: u64,
    open_array: u64,
    open_object: u64,
    key_close: u64,
    value_end: u64,
    /// Carry of the key-string fill addition.
    key_fill: u64,
}

/// Walk state over the brackets: a shift register of container kinds,
/// innermost level at bit 0 (1 = array). Levels beyond the register's 64
/// spill to `deep` (any depth works, no recursion).
struct Depth<'k> {
    depth: usize,
    kinds: u64,
    ended: bool,
    deep: &'k mut Vec<bool>,
}

impl Depth<'_> {
    /// Context of the bytes before the next bracket: (inside an array,
    /// directly inside the top-level object), as all-ones/all-zeros masks.
    #[inline(always)]
    fn context(&self) -> (u64, u64) {
        let open = u64::from(self.depth > 0).wrapping_neg();
        let array = (self.kinds & 1).wrapping_neg() & open;
        let top = u64::from(self.depth == 1).wrapping_neg() & !array;
        (array, top)
    }

    /// Applies one bracket; returns false when it closes nothing or a
    /// container of the other kind. Without branches on the bracket, whose
    /// kind no predictor can guess.
    #[inline(always)]
    fn step(&mut self, is_open: bool, is_array: bool) -> bool {
        if self.depth >= 64 {
            return self.step_deep(is_open, is_array);
        }
        let ok = is_open | ((self.depth > 0) & ((self.kinds & 1 != 0) == is_array));
        let pushed = (self.kinds << 1) | u64::from(is_array);
        self.kinds = if is_open { pushed } else { self.kinds >> 1 };
        self.depth = (self.depth + 2 * usize::from(is_open)).wrapping_sub(1);
        if !ok {
            // Keep the walk well-defined after an error (the frame is
            // already invalid).
            self.depth = self.depth.min(64);
        }
        ok
    }

    #[cold]
    fn step_deep(&mut self, is_open: bool, is_array: bool) -> bool {
        if is_open {
            self.deep.push(self.kinds >> 63 != 0);
            self.kinds = (self.kinds << 1) | u64::from(is_array);
            self.depth += 1;
            return true;
        }
        if (self.kinds & 1 != 0) != is_array {
            return false;
        }
        self.kinds >>= 1;
        if self.depth > 64 {
            self.kinds |= u64::from(self.deep.pop().unwrap_or(false)) << 63;
        }
        self.depth -= 1;
        true
    }
}

/// Bits `from..to` (to <= 64).
#[inline(always)]
fn span(from: u32, to: u32) -> u64 {
    let upto = if to >= 64 { u64::MAX } else { (1u64 << to) - 1 };
    let below = if from >= 64 { u64::MAX } else { (1u64 << from) - 1 };
    upto & !below
}

/// Width of a block in compressed space: all 64 bits when the block has no
/// whitespace between tokens (the common case, known at compile time in
/// that instantiation), else the number of bits kept.
trait Width: Copy {
    fn n(self) -> u32;
    #[inline(always)]
    fn len_mask(self) -> u64 {
        if self.n() >= 64 { u64::MAX } else { (1u64 << self.n()) - 1 }
    }
}

#[derive(Clone, Copy)]
struct Full;
impl Width for Full {
    #[inline(always)]
    fn n(self) -> u32 {
        64
    }
}

#[derive(Clone, Copy)]
struct Squeezed(u32);
impl Width for Squeezed {
    #[inline(always)]
    fn n(self) -> u32 {
        self.0
    }
}

/// The bits right after `x`'s in a block of width `w`, with the carry from
/// the previous block at bit 0; updates the carry.
#[inline(always)]
fn follow(x: u64, carry: &mut u64, w: impl Width) -> u64 {
    let n = w.n();
    let next = ((x << 1) | *carry) & w.len_mask();
    if n > 0 {
        *carry = (x >> (n - 1)) & 1;
    }
    next
}

/// Positions escaped by a backslash: the byte after each odd-length run of
/// backslashes (a run may continue from the previous block via `carry`).
#[inline(always)]
pub(crate) fn escaped_bytes(backslash: u64, carry: &mut u64) -> u64 {
    const EVEN: u64 = 0x5555_5555_5555_5555;
    let backslash = backslash & !*carry;
    let follows_escape = (backslash << 1) | *carry;
    // Runs that start on an odd bit: adding the run to its start bit sends a
    // carry to the end of the run, leaving a marker there.
    let odd_starts = backslash & !EVEN & !follows_escape;
    let (ends_of_odd_start_runs, overflow) = odd_starts.overflowing_add(backslash);
    *carry = u64::from(overflow);
    let flip = ends_of_odd_start_runs << 1;
    (EVEN ^ flip) & follows_escape
}

/// Blocks lexed before they are parsed. Two passes over a batch keep each
/// pass's live values in registers (one fused pass spilled a fifth of its
/// instructions to the stack).
const BATCH: usize = 32;

/// What the lexing pass knows of one block (bit i = byte i).
#[derive(Debug, Clone, Copy, Default)]
struct Lexed {
    /// Inside a string: from an opening quote (included) to its closing quote
    /// (excluded).
    in_string: u64,
    /// Unescaped quotes.
    quote: u64,
    /// Whitespace between tokens.
    ws: u64,
    /// `{` or `[` outside strings.
    open: u64,
    /// `}` or `]` outside strings.
    close: u64,
    /// Tells `{}` (set) from `[]` at brackets.
    curly: u64,
    /// `:` outside strings.
    colon: u64,
    /// `,` outside strings.
    comma: u64,
    /// First byte of each number or literal (or stray byte) outside strings.
    scalar_start: u64,
    /// `u` or `t` anywhere.
    ut: u64,
    /// Backslashes anywhere.
    backslash: u64,
}

/// Carries of the lexing pass.
#[derive(Debug, Default)]
struct LexCarry {
    escaped: u64,
    in_string: u64,
    scalar: u64,
    lead2: u64,
}

/// Lexing pass over one block: escapes, strings, byte-level errors.
///
/// # Safety
/// The CPU must support `C`'s target features.
#[inline(always)]
unsafe fn lex<C: Classify, const LINE: bool>(
    block: &[u8; 64],
    carry: &mut LexCarry,
    err: &mut u64,
    undecided: &mut u64,
    utf8_hard: &mut u64,
    line_end: &mut Option<u32>,
) -> Lexed {
    // SAFETY: forwarded from this function's contract.
    let mut raw = unsafe { C::classify(block) };
    if LINE && raw.lf != 0 {
        // The line ends here: what follows belongs to the next line and
        // reads as whitespace.
        let at = raw.lf.trailing_zeros();
        *line_end = Some(at);
        let keep = (1u64 << at) - 1;
        for mask in [
            &mut raw.quote,
            &mut raw.backslash,
            &mut raw.ctrl,
            &mut raw.open,
            &mut raw.close,
            &mut raw.colon,
            &mut raw.comma,
            &mut raw.non_ascii,
            &mut raw.ut,
            &mut raw.lead2,
            &mut raw.cont,
        ] {
            *mask &= keep;
        }
        raw.ws |= !keep;
    }
    // UTF-8 made only of ASCII and two-byte sequences (Latin, Greek,
    // Cyrillic, Hebrew, Arabic...) is checked here: every lead byte is
    // followed by exactly one continuation byte. Anything else (longer
    // sequences, invalid bytes) is left to a full validator.
    let expected_cont = (raw.lead2 << 1) | carry.lead2;
    carry.lead2 = raw.lead2 >> 63;
    *utf8_hard |= (raw.cont ^ expected_cont) | (raw.non_ascii & !(raw.lead2 | raw.cont));
    // The SIMD classifiers check escapes in every block, without a branch:
    // official frames have a backslash in most blocks, and a branch on it
    // was mispredicted on the rest (4% slower on 20,000 official frames).
    let mut escaped = 0;
    if C::EVERY_BLOCK_ESCAPES || raw.backslash | carry.escaped != 0 {
        escaped = escaped_bytes(raw.backslash, &mut carry.escaped);
        // SAFETY: as above.
        let (letters, u) = unsafe { C::escape_letters(block) };
        *err |= escaped & !letters;
        *undecided |= escaped & u;
    }
    let quote = raw.quote & !escaped;
    // SAFETY: as above.
    let in_string = unsafe { C::prefix_xor(quote) } ^ carry.in_string;
    carry.in_string = ((in_string as i64) >> 63) as u64;
    let outside = !in_string;
    // Control bytes: never inside strings; outside only as whitespace.
    *err |= raw.ctrl & (in_string | !raw.ws);
    *err |= raw.non_ascii & outside;
    let scalar = outside & !(raw.quote | raw.ws | raw.open | raw.close | raw.colon | raw.comma);
    let scalar_start = scalar & !((scalar << 1) | carry.scalar);
    carry.scalar = scalar >> 63;
    Lexed {
        in_string,
        quote,
        ws: raw.ws & outside,
        open: raw.open & outside,
        close: raw.close & outside,
        curly: raw.curly,
        colon: raw.colon & outside,
        comma: raw.comma & outside,
        scalar_start,
        ut: raw.ut,
        backslash: raw.backslash,
    }
}

/// Scans `frame` (whose first non-whitespace byte is `{`) and leaves the
/// top-level uid/ts key positions in `stage`.
///
/// # Safety
/// The CPU must support `C`'s target features.
#[inline(always)]
pub(crate) unsafe fn run<C: Classify>(stage: &mut Stage, frame: &[u8]) -> Outcome {
    // SAFETY: forwarded.
    unsafe { scan::<C, false>(stage, frame).0 }
}

/// Scans the line at the start of `data` (up to its first line feed, or all
/// of it), whose first byte is `{`. Returns the outcome and the line's
/// length: finding the line's end costs no separate pass over its bytes.
///
/// # Safety
/// The CPU must support `C`'s target features.
#[inline(always)]
pub(crate) unsafe fn run_line<C: Classify>(stage: &mut Stage, data: &[u8]) -> (Outcome, usize) {
    // SAFETY: forwarded.
    unsafe { scan::<C, true>(stage, data) }
}

/// [`run`] (`LINE` false: the whole of `data` is the frame) and
/// [`run_line`] (`LINE` true: the frame ends at the first line feed).
///
/// In line mode the grammar pass reads scalars and key names from `data`,
/// whose end may lie beyond the frame's. That cannot change a verdict: a
/// scalar or key can only be checked past the frame's end if nothing but
/// whitespace follows it in the frame, and such a frame never closes its
/// top-level object, so it is invalid whatever those checks say.
#[inline(always)]
unsafe fn scan<C: Classify, const LINE: bool>(stage: &mut Stage, data: &[u8]) -> (Outcome, usize) {
    stage.uid_count = 0;
    stage.ts_count = 0;
    stage.utf8 = 0..0;
    let mut lex_carry = LexCarry::default();
    let mut carry = Carry::default();
    stage.deep_kinds.clear();
    let (deep_kinds, lexed) = (&mut stage.deep_kinds, &mut stage.lexed);
    let mut depth = Depth { depth: 0, kinds: 0, ended: false, deep: deep_kinds };
    let mut err = 0u64;
    // Non-zero when the masks cannot decide (a mask, not a bool: OR-ing
    // masks needs no compare per block).
    let mut undecided = 0u64;
    let mut utf8_hard = 0u64;
    let mut keys = Keys::default();

    let (blocks, rest) = data.as_chunks::<64>();
    let total = blocks.len() + usize::from(!rest.is_empty());
    // The last, partial block padded with spaces, made when reached (a
    // line usually ends long before its chunk does).
    let mut tail = [b' '; 64];
    let mut line_end = None;
    let mut len = data.len();
    let mut first = 0;
    while first < total {
        let mut count = BATCH.min(total - first);
        for j in 0..count {
            let block = match blocks.get(first + j) {
                Some(block) => block,
                None => {
                    tail[..rest.len()].copy_from_slice(rest);
                    &tail
                }
            };
            // SAFETY: forwarded from this function's contract.
            lexed[j] = unsafe {
                lex::<C, LINE>(block, &mut lex_carry, &mut err, &mut undecided, &mut utf8_hard, &mut line_end)
            };
            if let Some(at) = line_end {
                len = (first + j) * 64 + at as usize;
                count = j + 1;
                break;
            }
        }
        for (j, l) in lexed[..count].iter().enumerate() {
            // SAFETY: as above.
            unsafe {
                parse_block::<C>(l, (first + j) * 64, data, &mut carry, &mut depth, &mut keys, &mut err, &mut undecided)
            };
        }
        if line_end.is_some() {
            break;
        }
        first += count;
    }

    let pending = carry.colon
        | carry.comma_object
        | carry.open_array
        | carry.open_object
        | carry.key_close
        | carry.key_fill
        | lex_carry.escaped
        | lex_carry.in_string;
    if (utf8_hard | lex_carry.lead2) != 0 {
        stage.utf8 = 0..len;
    }
    if err != 0 || pending != 0 || !depth.ended {
        return (Outcome::Invalid, len);
    }
    if undecided != 0 {
        return (Outcome::Undecided, len);
    }
    stage.uid_key = keys.uid_key;
    stage.uid_count = keys.uid_count;
    stage.ts_key = keys.ts_key;
    stage.ts_count = keys.ts_count;
    (Outcome::Valid, len)
}

/// Parsing pass over one lexed block at byte offset `base`: brackets,
/// grammar, keys, scalars.
///
/// # Safety
/// The CPU must support `C`'s target features.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn parse_block<C: Classify>(
    l: &Lexed,
    base: usize,
    frame: &[u8],
    carry: &mut Carry,
    depth: &mut Depth<'_>,
    keys: &mut Keys,
    err: &mut u64,
    undecided: &mut u64,
) {
    if depth.ended {
        // Only whitespace may follow the top-level object.
        *err |= !l.ws;
        return;
    }
    // Brackets: depth, matching, context masks. Between two brackets the
    // context is constant; blocks without brackets inherit it whole. Empty
    // `{}` and `[]` change neither depth nor context: the grammar masks
    // check them, the walk skips them.
    let same_kind_next = !(l.curly ^ (l.curly >> 1));
    let mut empty_open = l.open & (l.close >> 1) & same_kind_next;
    if depth.depth == 0 {
        // The top-level object itself, even when empty, must be walked.
        empty_open = 0;
    }
    let mut array_ctx = 0u64;
    let mut top_level = 0u64;
    let mut region_start = 0u32;
    let mut brackets = (l.open & !empty_open) | (l.close & !(empty_open << 1));
    while brackets != 0 {
        let i = brackets.trailing_zeros();
        brackets &= brackets - 1;
        let region = span(region_start, i);
        let (array, top) = depth.context();
        array_ctx |= region & array;
        top_level |= region & top;
        let bit = 1u64 << i;
        let is_open = l.open & bit != 0;
        if !depth.step(is_open, l.curly & bit == 0) {
            *err |= bit;
        } else if depth.depth == 0 {
            depth.ended = true;
            *err |= !l.ws & !span(0, i + 1);
            break;
        }
        region_start = i + 1;
    }
    if !depth.ended {
        let region = span(region_start, 64);
        let (array, top) = depth.context();
        array_ctx |= region & array;
        top_level |= region & top;
    }

    // Grammar on adjacent tokens, in compressed space.
    let mut m = Tokens {
        in_string: l.in_string,
        quote_open: l.quote & l.in_string,
        quote_close: l.quote & !l.in_string,
        open_object: l.open & l.curly,
        open_array: l.open & !l.curly,
        close_object: l.close & l.curly,
        close_array: l.close & !l.curly,
        colon: l.colon,
        comma_array: l.comma & array_ctx,
        comma_object: l.comma & !array_ctx,
        scalar_start: l.scalar_start,
        top_level,
        backslash: l.backslash,
    };
    let mut top_keys = if l.ws == 0 {
        grammar(&m, carry, Full, err, undecided)
    } else {
        let keep = !l.ws;
        // SAFETY: forwarded from this function's contract.
        unsafe { m.compress::<C>(keep) };
        let found = grammar(&m, carry, Squeezed(keep.count_ones()), err, undecided);
        // SAFETY: as above.
        unsafe { C::pdep(found, keep) }
    };

    // Top-level keys and scalars, by position. Only keys whose first letter
    // is `u` or `t` can be `uid` or `ts` (a key whose first letter is in the
    // next block is let through and checked).
    top_keys &= (l.ut >> 1) | (1 << 63);
    while top_keys != 0 {
        let at = base + top_keys.trailing_zeros() as usize;
        top_keys &= top_keys - 1;
        keys.see(frame, at);
    }
    let mut starts = l.scalar_start;
    while starts != 0 {
        let at = base + starts.trailing_zeros() as usize;
        starts &= starts - 1;
        if !scalar_ok(frame, at) {
            *err |= 1;
        }
    }
}

/// Checks the "what may follow" rules on one block of width `w` and returns
/// the opening quotes of top-level keys (in the same space as `m`).
#[inline(always)]
fn grammar(m: &Tokens, carry: &mut Carry, w: impl Width, err: &mut u64, undecided: &mut u64) -> u64 {
    let value_start = m.quote_open | m.open_object | m.open_array | m.scalar_start;
    let closers = m.close_object | m.close_array;
    *err |= follow(m.colon | m.comma_array, &mut carry.colon, w) & !value_start;
    *err |= follow(m.open_array, &mut carry.open_array, w) & !(value_start | m.close_array);
    let after_open_object = follow(m.open_object, &mut carry.open_object, w);
    *err |= after_open_object & !(m.quote_open | m.close_object);
    let after_comma_object = follow(m.comma_object, &mut carry.comma_object, w);
    *err |= after_comma_object & !m.quote_open;

    // Keys: strings right after `{` or an object's `,`. Adding their
    // opening-quote bits to the in-string mask carries through each key and
    // lands on its closing quote.
    let key_open = m.quote_open & (after_open_object | after_comma_object);
    let (sum, overflow_a) = m.in_string.overflowing_add(key_open);
    let (sum, overflow_b) = sum.overflowing_add(carry.key_fill);
    let n = w.n();
    carry.key_fill = if n >= 64 { u64::from(overflow_a | overflow_b) } else { (sum >> n) & 1 };
    let sum = sum & w.len_mask();
    let key_close = sum & !m.in_string;
    let key_inside = m.in_string & !sum;
    *undecided |= key_inside & m.top_level & m.backslash;
    *err |= follow(key_close, &mut carry.key_close, w) & !m.colon;
    let value_end = (m.quote_close & !key_close) | closers;
    *err |= follow(value_end, &mut carry.value_end, w) & !(m.comma_array | m.comma_object | closers);
    key_open & m.top_level
}

/// Token masks of one block.
struct Tokens {
    in_string: u64,
    quote_open: u64,
    quote_close: u64,
    open_object: u64,
    open_array: u64,
    close_object: u64,
    close_array: u64,
    colon: u64,
    comma_array: u64,
    comma_object: u64,
    scalar_start: u64,
    top_level: u64,
    backslash: u64,
}

impl Tokens {
    /// Squeezes out the positions not in `keep` from every mask.
    #[inline(always)]
    unsafe fn compress<C: Classify>(&mut self, keep: u64) {
        // SAFETY: forwarded from the caller's contract.
        unsafe {
            self.in_string = C::pext(self.in_string, keep);
            self.quote_open = C::pext(self.quote_open, keep);
            self.quote_close = C::pext(self.quote_close, keep);
            self.open_object = C::pext(self.open_object, keep);
            self.open_array = C::pext(self.open_array, keep);
            self.close_object = C::pext(self.close_object, keep);
            self.close_array = C::pext(self.close_array, keep);
            self.colon = C::pext(self.colon, keep);
            self.comma_array = C::pext(self.comma_array, keep);
            self.comma_object = C::pext(self.comma_object, keep);
            self.scalar_start = C::pext(self.scalar_start, keep);
            self.top_level = C::pext(self.top_level, keep);
            self.backslash = C::pext(self.backslash, keep);
        }
    }
}

/// Top-level `uid`/`ts` keys seen, by the position of their opening quote.
#[derive(Default)]
struct Keys {
    uid_key: usize,
    uid_count: u32,
    ts_key: usize,
    ts_count: u32,
}

impl Keys {
    #[inline(always)]
    fn see(&mut self, frame: &[u8], at: usize) {
        let name = frame.get(at + 1..at + 5);
        if name == Some(b"uid\"") {
            if self.uid_count == 0 {
                self.uid_key = at;
            }
            self.uid_count += 1;
        } else if name.is_some_and(|n| &n[..3] == b"ts\"") {
            if self.ts_count == 0 {
                self.ts_key = at;
            }
            self.ts_count += 1;
        }
    }
}

/// Validates the number or literal starting at `at` and the token after it
/// (which must close the value: `,`, `}` or `]`).
#[inline]
fn scalar_ok(frame: &[u8], at: usize) -> bool {
    match short_scalar_ok(frame, at) {
        Some(ok) => ok,
        None => scalar_ok_slow(frame, at),
    }
}

/// Fast path of [`scalar_ok`] for the most common scalars followed
/// directly by `,`, `}` or `]`: a literal, or a number with up to 15 integer
/// digits and up to 7 fraction digits and no exponent. None when the
/// scalar is anything else (longer, an exponent, whitespace after it, too
/// near the end of the data), for [`scalar_ok_slow`] to decide.
///
/// Without a branch on the kind of scalar: which kind comes next in a
/// frame is random, and the branches of a per-kind check mispredicted
/// about as often as they ran. Both checks are computed and one is picked;
/// the only branch left, to the slow path, is rarely taken.
#[inline(always)]
fn short_scalar_ok(frame: &[u8], at: usize) -> Option<bool> {
    let b: &[u8; 32] = frame.get(at..at + 32)?.try_into().ok()?;
    let word = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("i <= 18: within the 32 bytes"));
    let closes = |c: u8| (c == b',') | (c == b'}') | (c == b']');
    let blank_or_e = |c: u8| crate::frame::is_json_ws(c) | (c | 0x20 == b'e');

    // A number: `-`? int-digits (`.` fraction-digits)?
    let neg = usize::from(b[0] == b'-');
    let high_digits = leading_digits(word(neg));
    // Up to 16 integer digits (a ts has 10), the second word only counting
    // when the first is all digits.
    let low_digits = leading_digits(word(neg + 8));
    let int_digits = high_digits + if high_digits == 8 { low_digits } else { 0 };
    let dot = neg + int_digits;
    let has_fraction = b[dot] == b'.';
    let fraction_digits = leading_digits(word(dot + 1));
    let end = dot + usize::from(has_fraction) * (1 + fraction_digits);
    let number_ok = (int_digits > 0)
        & ((int_digits == 1) | (b[neg] != b'0'))
        & (!has_fraction | (fraction_digits > 0))
        & closes(b[end]);
    let number_unsure = (int_digits == 16) | (has_fraction & (fraction_digits == 8)) | blank_or_e(b[end]);

    // A literal: true, false or null.
    let w = word(0);
    let four = w & 0xFFFF_FFFF;
    let is_false = (w & 0xFF_FFFF_FFFF) == u64::from_le_bytes(*b"false\0\0\0");
    let is_literal = (four == u64::from(u32::from_le_bytes(*b"true")))
        | (four == u64::from(u32::from_le_bytes(*b"null")))
        | is_false;
    let after_literal = b[4 + usize::from(is_false)];
    let literal_ok = is_literal & closes(after_literal);
    let literal_unsure = is_literal & crate::frame::is_json_ws(after_literal);

    let letter = b[0] >= b'a';
    let unsure = if letter { literal_unsure } else { number_unsure };
    if unsure {
        return None;
    }
    Some(if letter { literal_ok } else { number_ok })
}

/// Number of leading ASCII digit bytes of a little-endian word. Carries
/// between bytes start at a non-digit byte and only reach later bytes, so
/// the first non-digit is always found exactly.
#[inline(always)]
fn leading_digits(word: u64) -> usize {
    let x = word ^ 0x3030_3030_3030_3030;
    let non_digit = (x.wrapping_add(0x7676_7676_7676_7676) | x) & 0x8080_8080_8080_8080;
    (non_digit.trailing_zeros() / 8) as usize
}

#[cold]
#[inline(never)]
fn scalar_ok_slow(frame: &[u8], at: usize) -> bool {
    let literal = |word: &[u8]| frame.get(at..at + word.len()).filter(|w| *w == word).map(|_| at + word.len());
    let end = match frame.get(at) {
        Some(b't') => literal(b"true"),
        Some(b'f') => literal(b"false"),
        Some(b'n') => literal(b"null"),
        Some(b'-' | b'0'..=b'9') => crate::frame::strict::number_end(frame, at),
        _ => None,
    };
    let Some(mut end) = end else {
        return false;
    };
    while frame.get(end).is_some_and(|&b| crate::frame::is_json_ws(b)) {
        end += 1;
    }
    matches!(frame.get(end), Some(b',' | b'}' | b']'))
}

#[cfg(test)]
mod tests {
    use super::{scalar_ok, scalar_ok_slow};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        /// The SWAR integer fast path agrees with the full scalar check on
        /// number-like bytes, at every distance from the end of the frame.
        #[test]
        fn integer_fast_path_agrees(
            body in prop::collection::vec(prop::sample::select(b"0123456789-+.eE,}] \t\nxtruefalsnA\xD0".to_vec()), 0..40),
            tail in prop::collection::vec(prop::sample::select(b"0123456789,}] ".to_vec()), 0..20),
        ) {
            let mut frame = body.clone();
            frame.extend_from_slice(&tail);
            prop_assert_eq!(scalar_ok(&frame, 0), scalar_ok_slow(&frame, 0), "{:?}", String::from_utf8_lossy(&frame));
            // Long enough for the fast path whatever the lengths drawn.
            frame.extend_from_slice(&[b'"'; 32]);
            prop_assert_eq!(scalar_ok(&frame, 0), scalar_ok_slow(&frame, 0), "{:?}", String::from_utf8_lossy(&frame));
        }
    }

    #[test]
    fn integer_fast_path_edges() {
        for (frame, ok) in [
            (&b"0,aaaaaaaaaaaaaaaaa"[..], true),
            (b"00,aaaaaaaaaaaaaaaa", false),
            (b"-0}aaaaaaaaaaaaaaaa", true),
            (b"-,aaaaaaaaaaaaaaaaa", false),
            (b"--1,aaaaaaaaaaaaaaa", false),
            (b"123456789012345,aaaa", true),
            (b"1234567890123456,aaa", true),
            (b"12345678901234567890]", true),
            (b"1468244384}", true),
            (b"01}aaaaaaaaaaaaaaaa", false),
            (b"12a,aaaaaaaaaaaaaaa", false),
            (b"0.383716,aaaaaaaaaaaaaaa", true),
            (b"-12.5}aaaaaaaaaaaaaaaaaa", true),
            (b"1.,aaaaaaaaaaaaaaaaaaaaa", false),
            (b"01.5,aaaaaaaaaaaaaaaaaaa", false),
            (b"1.5.5,aaaaaaaaaaaaaaaaaa", false),
            (b"1.12345678,aaaaaaaaaaaaa", true),
            (b"1.5e3,aaaaaaaaaaaaaaaaaa", true),
            (b"1.5 ,aaaaaaaaaaaaaaaaaaa", true),
            (b"true,", true),
            (b"false}", true),
            (b"null]aaaaa", true),
            (b"nul]aaaaaa", false),
            (b"truex,aaaa", false),
            (b"true ,aaaa", true),
            (b"true,aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", true),
            (b"false]aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", true),
            (b"falsy]aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false),
            (b"nullx,aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false),
            (b"0.383716,aaaaaaaaaaaaaaaaaaaaaaaaaaaaa", true),
            (b"-0.5}aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", true),
            (b"-01,aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false),
            (b"1.5.5,aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false),
            (b"1.,aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false),
            (b"255]aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", true),
            (b"1e5,aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", true),
            (b"1.5E-3,aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", true),
            (b"12345678.12345678,aaaaaaaaaaaaaaaaaaaa", true),
            (b"1.123456789,aaaaaaaaaaaaaaaaaaaaaaaaaa", true),
            (b"7 ,aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", true),
            (b"+1,aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false),
            (b"x,aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false),
            (b"A,aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false),
        ] {
            assert_eq!(scalar_ok(frame, 0), ok, "{}", String::from_utf8_lossy(frame));
        }
    }
}
