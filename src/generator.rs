//! `kuniq gen`: a deterministic generator of challenge-style frames.
//!
//! It writes the shape FORMAT.md describes: one JSON object per line, 0 to 3
//! random pairs before `uid` and `ts` (in random order), then random pairs
//! until the frame reaches the size limit; nested objects carry decoy `uid`
//! and `ts` keys with values of any type; keys repeat at every level;
//! strings join words with JSON escapes or are Cyrillic UTF-8.
//!
//! Invariants:
//! - The same [`GenConfig`] always produces the same bytes, on any machine:
//!   the generator uses its own PRNG ([`Rng`]), never a library one whose
//!   stream may change between versions.
//! - Event time starts at [`START_TS`] and advances by one second with
//!   probability `1/rate` per frame; with `delay_secs`/`delay_percent` a
//!   frame's ts is moved back by a uniform 1..=delay seconds.
//! - The top-level `uid` and `ts` appear exactly once per frame.

use std::io::{self, Write};

/// First event time of every generated stream: 2016-07-11 13:39:44 UTC.
pub const START_TS: u64 = 1_468_244_384;

/// Default frame size limit in bytes; frames end just past it.
pub const DEFAULT_SIZE_LIMIT: usize = 2048;

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenConfig {
    /// Number of frames.
    pub count: u64,
    /// Average frames per second of event time (ts advances with p = 1/rate).
    pub rate: u64,
    /// When not 0, replaces `rate`: each frame's ts is 0 to `2 * spacing_secs`
    /// seconds after the previous frame's (sparse history).
    pub spacing_secs: u64,
    /// Size of the user pool; 0 draws a fresh random uid for every frame.
    pub users: u64,
    /// Maximum delay in seconds for delayed frames.
    pub delay_secs: u64,
    /// Share of frames (in percent, 0 to 100) whose ts is moved back.
    pub delay_percent: f64,
    /// PRNG seed.
    pub seed: u64,
    /// Frames grow until they are at least this many bytes long.
    pub size_limit: usize,
    /// End lines with CRLF instead of LF.
    pub crlf: bool,
    /// Share of frames (in percent) that carry ts as a decimal string.
    pub ts_string_percent: f64,
}

impl Default for GenConfig {
    fn default() -> Self {
        GenConfig {
            count: 1_000_000,
            rate: 1000,
            spacing_secs: 0,
            users: 100_000,
            delay_secs: 0,
            delay_percent: 0.0,
            seed: 1,
            size_limit: DEFAULT_SIZE_LIMIT,
            crlf: false,
            ts_string_percent: 0.0,
        }
    }
}

/// A small, fast PRNG (wyrand) whose output is fixed by its seed forever.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator whose stream is determined by `seed` alone.
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    /// The next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0xA076_1D64_78BD_642F);
        let t = u128::from(self.0) * u128::from(self.0 ^ 0xE703_7ED1_A0B4_28DB);
        ((t >> 64) ^ t) as u64
    }

    /// A uniform integer in `0..n` (n > 0), by multiply-shift.
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// True with probability `percent / 100`.
    #[inline]
    pub fn chance(&mut self, percent: f64) -> bool {
        if percent <= 0.0 {
            return false;
        }
        if percent >= 100.0 {
            return true;
        }
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64) * 100.0 < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// Keys: the words of the classic "Lorem ipsum" passage, punctuation kept,
/// so a key may contain a comma or a dot; repeated words make some keys
/// more frequent, as in the challenge data.
const KEYS: &[&str] = &[
    "Lorem",
    "ipsum",
    "dolor",
    "sit",
    "amet,",
    "consectetur",
    "adipiscing",
    "elit,",
    "sed",
    "do",
    "eiusmod",
    "tempor",
    "incididunt",
    "ut",
    "labore",
    "et",
    "dolore",
    "magna",
    "aliqua.",
    "Ut",
    "enim",
    "ad",
    "minim",
    "veniam,",
    "quis",
    "nostrud",
    "exercitation",
    "ullamco",
    "laboris",
    "nisi",
    "ut",
    "aliquip",
    "ex",
    "ea",
    "commodo",
    "consequat.",
    "Duis",
    "aute",
    "irure",
    "dolor",
    "in",
    "reprehenderit",
    "in",
    "voluptate",
    "velit",
    "esse",
    "cillum",
    "dolore",
    "eu",
    "fugiat",
    "nulla",
    "pariatur.",
    "Excepteur",
    "sint",
    "occaecat",
    "cupidatat",
    "non",
    "proident,",
    "sunt",
    "in",
    "culpa",
    "qui",
    "officia",
    "deserunt",
    "mollit",
    "anim",
    "id",
    "est",
    "laborum.",
];

/// Words for ASCII sentences.
const WORDS: &[&str] = &[
    "streams",
    "of",
    "events",
    "arrive",
    "out",
    "of",
    "order,",
    "and",
    "every",
    "minute",
    "must",
    "still",
    "be",
    "counted",
    "exactly",
    "once.",
    "Brokers",
    "keep",
    "the",
    "log;",
    "consumers",
    "read",
    "it",
    "in",
    "batches",
    "and",
    "commit",
    "offsets",
    "after",
    "the",
    "results",
    "are",
    "safe.",
    "Late",
    "frames",
    "update",
    "a",
    "window",
    "with",
    "a",
    "new",
    "revision;",
    "frames",
    "from",
    "the",
    "far",
    "future",
    "wait",
    "in",
    "quarantine.",
    "(see",
    "the",
    "brief)",
    "Watermarks",
    "follow",
    "event",
    "time,",
    "never",
    "the",
    "wall",
    "clock.",
];

/// Separators between words, already JSON-escaped: space, `\"`, `\\`, `/`,
/// `\b`, `\f`, `\n`, `\r`, `\t`.
const SEPARATORS: &[&str] = &[" ", "\\\"", "\\\\", "/", "\\b", "\\f", "\\n", "\\r", "\\t"];

/// Cyrillic lines (UTF-8, two bytes per letter).
const CYRILLIC: &[&str] = &[
    "Над рекой стоит туман,",
    "Ветер гонит облака;",
    "Тихо спит ночной вокзал -",
    "Поезд ждёт издалека.",
    "Свет в окне горит всю ночь,",
    "Кто-то пишет письма вновь;",
    "Время движется вперёд,",
    "Счёт минутам знает лёд.",
    "Шумит листва, звенит ручей,",
    "И песни слышны у дверей.",
];

/// Generates `cfg.count` frames into `out`, calling `progress` with the
/// number of frames written so far every 65,536 frames and at the end.
pub fn generate<W: Write>(cfg: &GenConfig, out: &mut W, mut progress: impl FnMut(u64)) -> io::Result<()> {
    let mut rng = Rng::new(cfg.seed);
    let pool: Vec<[u8; 19]> = (0..cfg.users).map(|_| random_uid(&mut rng)).collect();
    let rate = cfg.rate.max(1);
    let mut now = START_TS;
    let mut frame = Vec::with_capacity(cfg.size_limit + 4096);
    let mut buf = Vec::with_capacity(1 << 20);
    for i in 0..cfg.count {
        if i > 0 {
            if cfg.spacing_secs > 0 {
                now += rng.below(2 * cfg.spacing_secs + 1);
            } else if rng.below(rate) == 0 {
                now += 1;
            }
        }
        let mut ts = now;
        if cfg.delay_secs > 0 && rng.chance(cfg.delay_percent) {
            ts = ts.saturating_sub(1 + rng.below(cfg.delay_secs));
        }
        let uid = if pool.is_empty() { random_uid(&mut rng) } else { pool[rng.below(pool.len() as u64) as usize] };
        let ts_as_string = rng.chance(cfg.ts_string_percent);
        frame.clear();
        write_frame(&mut rng, &mut frame, &uid, ts, ts_as_string, cfg.size_limit);
        buf.extend_from_slice(&frame);
        buf.extend_from_slice(if cfg.crlf { b"\r\n" } else { b"\n" });
        if buf.len() >= (1 << 20) - 8192 {
            out.write_all(&buf)?;
            buf.clear();
        }
        if (i + 1) % 65_536 == 0 {
            progress(i + 1);
        }
    }
    out.write_all(&buf)?;
    out.flush()?;
    progress(cfg.count);
    Ok(())
}

fn random_uid(rng: &mut Rng) -> [u8; 19] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut uid = [0u8; 19];
    let mut bits = rng.next_u64();
    for (i, b) in uid.iter_mut().enumerate() {
        if i == 16 {
            bits = rng.next_u64();
        }
        *b = HEX[(bits & 15) as usize];
        bits >>= 4;
    }
    uid
}

/// Writes one frame (without line ending) into `out`.
fn write_frame(rng: &mut Rng, out: &mut Vec<u8>, uid: &[u8; 19], ts: u64, ts_str: bool, limit: usize) {
    out.push(b'{');
    let before = rng.below(4);
    for _ in 0..before {
        write_pair(rng, out, limit);
    }
    let uid_first = rng.below(2) == 0;
    for field in 0..2 {
        if out.len() > 1 {
            out.push(b',');
        }
        if (field == 0) == uid_first {
            out.extend_from_slice(b"\"uid\":\"");
            out.extend_from_slice(uid);
            out.push(b'"');
        } else {
            out.extend_from_slice(b"\"ts\":");
            if ts_str {
                out.push(b'"');
            }
            push_u64(out, ts);
            if ts_str {
                out.push(b'"');
            }
        }
    }
    while out.len() < limit {
        write_pair(rng, out, limit);
    }
    out.push(b'}');
}

fn write_pair(rng: &mut Rng, out: &mut Vec<u8>, limit: usize) {
    if out.len() > 1 {
        out.push(b',');
    }
    let key = *rng.pick(KEYS);
    write_string(out, key);
    out.push(b':');
    let budget = limit.saturating_sub(out.len());
    write_value(rng, out, 1, budget);
}

fn write_string(out: &mut Vec<u8>, escaped: &str) {
    out.push(b'"');
    out.extend_from_slice(escaped.as_bytes());
    out.push(b'"');
}

/// Writes a random value nested at `depth`, trying to stay within `budget`
/// bytes so frames end just past the size limit.
fn write_value(rng: &mut Rng, out: &mut Vec<u8>, depth: u32, budget: usize) {
    let roll = rng.below(100);
    let container_ok = depth < 9 && budget > 120;
    match roll {
        0..=61 => write_text(rng, out),
        62..=69 => push_u64(out, rng.below(256)),
        70..=73 => write_fraction(rng, out),
        74..=77 => out.extend_from_slice(if rng.below(2) == 0 { b"true" } else { b"false" }),
        78..=88 if container_ok => write_object(rng, out, depth, budget),
        89..=99 if container_ok => write_array(rng, out, depth, budget),
        78..=88 => out.extend_from_slice(b"{}"),
        _ => out.extend_from_slice(b"[]"),
    }
}

fn write_text(rng: &mut Rng, out: &mut Vec<u8>) {
    out.push(b'"');
    match rng.below(20) {
        0 => out.extend_from_slice(b"example"),
        1 | 2 => out.extend_from_slice(rng.pick(CYRILLIC).as_bytes()),
        _ => {
            let sep = rng.pick(SEPARATORS).as_bytes();
            let n = 5 + rng.below(5) as usize;
            let start = rng.below((WORDS.len() - n) as u64) as usize;
            for (i, w) in WORDS[start..start + n].iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(sep);
                }
                out.extend_from_slice(w.as_bytes());
            }
        }
    }
    out.push(b'"');
}

fn write_fraction(rng: &mut Rng, out: &mut Vec<u8>) {
    let micros = rng.below(1_000_000);
    if micros == 0 {
        out.push(b'0');
        return;
    }
    let mut digits = [b'0'; 6];
    let mut rest = micros;
    for d in digits.iter_mut().rev() {
        *d = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    let len = 6 - digits.iter().rev().take_while(|&&d| d == b'0').count();
    out.extend_from_slice(b"0.");
    out.extend_from_slice(&digits[..len]);
}

fn container_len(rng: &mut Rng, depth: u32) -> u64 {
    if rng.below(100) < 60 + 5 * u64::from(depth) {
        0
    } else {
        1 + rng.below(20u64.saturating_sub(2 * u64::from(depth)).max(2))
    }
}

fn write_object(rng: &mut Rng, out: &mut Vec<u8>, depth: u32, budget: usize) {
    let start = out.len();
    let n = container_len(rng, depth);
    out.push(b'{');
    for i in 0..n {
        let used = out.len() - start;
        if used + 40 > budget {
            break;
        }
        if i > 0 {
            out.push(b',');
        }
        // Decoys: nested objects name some keys `uid` or `ts`, with values
        // of any type, sometimes more than once.
        match rng.below(100) {
            0..=5 => write_string(out, "uid"),
            6..=11 => write_string(out, "ts"),
            _ => write_string(out, KEYS[rng.below(KEYS.len() as u64) as usize]),
        }
        out.push(b':');
        let used = out.len() - start;
        write_value(rng, out, depth + 1, budget.saturating_sub(used));
    }
    out.push(b'}');
}

fn write_array(rng: &mut Rng, out: &mut Vec<u8>, depth: u32, budget: usize) {
    let start = out.len();
    let n = container_len(rng, depth);
    out.push(b'[');
    for i in 0..n {
        let used = out.len() - start;
        if used + 30 > budget {
            break;
        }
        if i > 0 {
            out.push(b',');
        }
        write_value(rng, out, depth + 1, budget.saturating_sub(used));
    }
    out.push(b']');
}

/// Appends the decimal digits of `v`.
pub fn push_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(cfg: &GenConfig) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        generate(cfg, &mut out, |_| {}).unwrap();
        out.split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l.strip_suffix(b"\r").unwrap_or(l)).unwrap())
            .collect()
    }

    #[test]
    fn same_seed_same_bytes_other_seed_other_bytes() {
        let cfg = GenConfig { count: 200, ..GenConfig::default() };
        let (mut a, mut b) = (Vec::new(), Vec::new());
        generate(&cfg, &mut a, |_| {}).unwrap();
        generate(&cfg, &mut b, |_| {}).unwrap();
        assert_eq!(a, b);
        let mut c = Vec::new();
        generate(&GenConfig { seed: 2, ..cfg }, &mut c, |_| {}).unwrap();
        assert_ne!(a, c);
    }

    #[test]
    fn frames_are_valid_json_with_one_uid_and_ts_just_past_the_limit() {
        let cfg = GenConfig { count: 2000, users: 50, ..GenConfig::default() };
        let mut raw = Vec::new();
        generate(&cfg, &mut raw, |_| {}).unwrap();
        for line in raw.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            assert!(line.len() > DEFAULT_SIZE_LIMIT && line.len() < DEFAULT_SIZE_LIMIT + 200, "{}", line.len());
            let text = std::str::from_utf8(line).unwrap();
            assert!(text.contains("\"uid\":\""));
            let v: serde_json::Value = serde_json::from_slice(line).unwrap();
            assert_eq!(v["uid"].as_str().unwrap().len(), 19);
            assert!(v["ts"].as_u64().unwrap() >= START_TS);
        }
        let users: std::collections::HashSet<String> =
            frames(&cfg).iter().map(|v| v["uid"].as_str().unwrap().to_string()).collect();
        assert_eq!(users.len(), 50);
    }

    #[test]
    fn decoys_duplicates_escapes_and_cyrillic_occur() {
        let cfg = GenConfig { count: 300, ..GenConfig::default() };
        let mut raw = Vec::new();
        generate(&cfg, &mut raw, |_| {}).unwrap();
        let text = String::from_utf8(raw).unwrap();
        let decoy_uid = text.matches("\"uid\":").count();
        assert!(decoy_uid > 300, "nested uid decoys expected, saw {decoy_uid} uid keys");
        for needle in ["\\\"", "\\\\", "\\n", "\\t", "\\b", "\\f", "\\r", "Ветер"] {
            assert!(text.contains(needle), "{needle} missing");
        }
    }

    #[test]
    fn delays_ts_strings_and_crlf() {
        let cfg = GenConfig {
            count: 3000,
            rate: 10,
            delay_secs: 20,
            delay_percent: 30.0,
            ts_string_percent: 50.0,
            crlf: true,
            ..GenConfig::default()
        };
        let mut raw = Vec::new();
        generate(&cfg, &mut raw, |_| {}).unwrap();
        assert_eq!(raw.split(|&b| b == b'\n').filter(|l| !l.is_empty()).count(), 3000);
        assert!(raw.split(|&b| b == b'\n').filter(|l| !l.is_empty()).all(|l| l.ends_with(b"\r")));
        let vs = frames(&cfg);
        let strings = vs.iter().filter(|v| v["ts"].is_string()).count();
        assert!((1200..1800).contains(&strings), "{strings}");
        let ts: Vec<u64> = vs
            .iter()
            .map(|v| match &v["ts"] {
                serde_json::Value::String(s) => s.parse().unwrap(),
                n => n.as_u64().unwrap(),
            })
            .collect();
        let backwards = ts.windows(2).filter(|w| w[1] < w[0]).count();
        assert!(backwards > 300, "out-of-order frames expected, saw {backwards}");
        let span = ts.iter().max().unwrap() - ts.iter().min().unwrap();
        assert!((250..=350).contains(&span), "about count/rate seconds expected, saw {span}");
    }
}
