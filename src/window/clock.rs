//! One input stream's event-time clock: its watermark and what it admits.
//!
//! `max_ts` is the highest ts admitted; the watermark is `max_ts - lateness`.
//! Two defences keep a wrong timestamp from moving the watermark:
//!
//! - **Warm-up.** A stream's first [`WARMUP_FRAMES`] frames are held until
//!   their median is known; frames more than `quarantine` from the median are
//!   set aside (ahead: quarantined; behind: too late), the others are then
//!   admitted in arrival order. A bit-flipped first frame therefore cannot
//!   anchor the stream in 2106 or in 1970.
//! - **Quarantine.** A frame more than `quarantine` seconds ahead of the
//!   watermark is held, not admitted. If [`JUMP_CONFIRM_FRAMES`] such frames
//!   arrive in a row the stream has really jumped (a gap in the data, not a
//!   bit flip): they are re-anchored like a warm-up and admitted. Any
//!   admissible frame in between ends the run, and the held frames are
//!   reported as quarantined.
//!
//! Decisions depend only on the order of frames within the stream, never on
//! wall-clock time, so a replay decides the same way.

use super::Secs;
use crate::count::UidKey;
use crate::count::sketch::UidCoupon;

/// Frames held to find a stream's starting time.
pub const WARMUP_FRAMES: usize = 16;

/// Consecutive far-ahead frames that prove a real jump in time.
pub const JUMP_CONFIRM_FRAMES: usize = 64;

/// A frame as the window engine sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    /// Event time, unix seconds.
    pub ts: Secs,
    /// The uid's 64-bit hash.
    pub hash: u64,
    /// Position in the stream (Kafka offset, or line number for files).
    pub offset: u64,
    /// The uid's DataSketches coupon, when windows count with a sketch
    /// (`--estimator hll`); `None` otherwise, and for an empty uid.
    pub coupon: Option<UidCoupon>,
}

impl Event {
    /// The frame's uid as the estimators take it.
    #[inline]
    pub fn key(&self) -> UidKey {
        UidKey { hash: self.hash, coupon: self.coupon }
    }
}

/// What the clock decided for a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Count it; the stream's watermark just after admitting it.
    Admit {
        /// Stream watermark after this frame.
        watermark: Secs,
    },
    /// Far ahead of the stream's time: set aside and reported.
    Quarantine,
    /// Far behind the stream's starting time: reported as too late.
    BeforeStart,
}

/// One stream's clock.
#[derive(Debug, Clone)]
pub struct Clock {
    lateness: Secs,
    quarantine: Secs,
    max_ts: Option<Secs>,
    warmup: Vec<Event>,
    run: Vec<Event>,
}

impl Clock {
    /// A clock with no frames seen.
    pub fn new(lateness: Secs, quarantine: Secs) -> Clock {
        Clock { lateness, quarantine, max_ts: None, warmup: Vec::new(), run: Vec::new() }
    }

    /// A clock resumed at a known `max_ts` (e.g. from a checkpoint), with no
    /// warm-up.
    pub fn resumed(lateness: Secs, quarantine: Secs, max_ts: Secs) -> Clock {
        Clock { max_ts: Some(max_ts), ..Clock::new(lateness, quarantine) }
    }

    /// The watermark, once the stream has a starting time.
    pub fn watermark(&self) -> Option<Secs> {
        self.max_ts.map(|m| m - self.lateness)
    }

    /// Highest admitted ts.
    pub fn max_ts(&self) -> Option<Secs> {
        self.max_ts
    }

    /// Frames held (warm-up or a possible jump) and not yet decided.
    pub fn held(&self) -> &[Event] {
        if self.warmup.is_empty() { &self.run } else { &self.warmup }
    }

    /// Decides on `ev`, calling `out` for it and for any held frames that
    /// this decides, in arrival order.
    pub fn admit(&mut self, ev: Event, out: &mut impl FnMut(Event, Decision)) {
        let Some(max_ts) = self.max_ts else {
            self.warmup.push(ev);
            if self.warmup.len() >= WARMUP_FRAMES {
                self.end_warmup(out);
            }
            return;
        };
        if ev.ts - (max_ts - self.lateness) > self.quarantine {
            self.run.push(ev);
            if self.run.len() >= JUMP_CONFIRM_FRAMES {
                let run = std::mem::take(&mut self.run);
                self.anchor(run, out);
            }
            return;
        }
        for held in self.run.drain(..) {
            out(held, Decision::Quarantine);
        }
        let max_ts = max_ts.max(ev.ts);
        self.max_ts = Some(max_ts);
        out(ev, Decision::Admit { watermark: max_ts - self.lateness });
    }

    /// Ends the warm-up now (input ended or went idle with fewer frames).
    pub fn end_warmup(&mut self, out: &mut impl FnMut(Event, Decision)) {
        if !self.warmup.is_empty() {
            let held = std::mem::take(&mut self.warmup);
            self.anchor(held, out);
        }
    }

    /// Input ended: decides every held frame.
    pub fn finish(&mut self, out: &mut impl FnMut(Event, Decision)) {
        self.end_warmup(out);
        for held in self.run.drain(..) {
            out(held, Decision::Quarantine);
        }
    }

    /// Admits `held` around their median: frames within `quarantine` of it,
    /// widened by the frames' own spread, in arrival order; the others are
    /// set aside.
    ///
    /// The spread is four times the median absolute deviation from the
    /// median: about the whole span of frames that are evenly spread in
    /// time (sparse history, whose 16 warm-up frames can span hours), and,
    /// like the median, not moved by wrong timestamps as long as they are
    /// fewer than half the frames. Dense frames have almost no spread, so
    /// for them the band is the quarantine alone.
    fn anchor(&mut self, held: Vec<Event>, out: &mut impl FnMut(Event, Decision)) {
        let mut times: Vec<Secs> = held.iter().map(|e| e.ts).collect();
        let mid = times.len() / 2;
        let median = *times.select_nth_unstable(mid).1;
        let mut deviations: Vec<Secs> =
            times.iter().map(|&t| t.abs_diff(median).min(Secs::MAX as u64) as Secs).collect();
        let spread = deviations.select_nth_unstable(mid).1.saturating_mul(4);
        let band = self.quarantine.saturating_add(spread);
        // Re-anchoring after a jump: frames far behind the new time are
        // still far ahead of the old one, so quarantined, not too late.
        let jumped = self.max_ts.is_some();
        for ev in held {
            if ev.ts > median.saturating_add(band) {
                out(ev, Decision::Quarantine);
            } else if ev.ts < median.saturating_sub(band) {
                out(ev, if jumped { Decision::Quarantine } else { Decision::BeforeStart });
            } else {
                let max_ts = self.max_ts.map_or(ev.ts, |m| m.max(ev.ts));
                self.max_ts = Some(max_ts);
                out(ev, Decision::Admit { watermark: max_ts - self.lateness });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(ts: Secs, offset: u64) -> Event {
        Event { ts, hash: offset, offset, coupon: None }
    }

    fn run(clock: &mut Clock, times: &[Secs]) -> Vec<(u64, Decision)> {
        let mut out = Vec::new();
        for (i, &ts) in times.iter().enumerate() {
            clock.admit(ev(ts, i as u64), &mut |e, d| out.push((e.offset, d)));
        }
        clock.finish(&mut |e, d| out.push((e.offset, d)));
        out.sort_by_key(|(o, _)| *o);
        out
    }

    const T: Secs = 1_468_244_384;

    #[test]
    fn a_far_behind_frame_late_in_the_warm_up_is_too_late() {
        let mut clock = Clock::new(5, 3600);
        let mut times: Vec<Secs> = (0..40).map(|i| T + i).collect();
        times.insert(5, 394_502_563);
        let out = run(&mut clock, &times);
        assert_eq!(out[5].1, Decision::BeforeStart);
        assert_eq!(out.iter().filter(|(_, d)| *d == Decision::Quarantine).count(), 0);
    }

    #[test]
    fn ordered_frames_are_admitted_with_a_rising_watermark() {
        let mut clock = Clock::new(5, 3600);
        let times: Vec<Secs> = (0..40).map(|i| T + i).collect();
        let out = run(&mut clock, &times);
        assert!(out.iter().all(|(_, d)| matches!(d, Decision::Admit { .. })));
        assert_eq!(clock.watermark(), Some(T + 39 - 5));
    }

    #[test]
    fn a_bit_flipped_first_frame_does_not_anchor_the_stream() {
        for flipped in [T | (1 << 33), 0, T ^ (1 << 20)] {
            let mut clock = Clock::new(5, 3600);
            let mut times = vec![flipped];
            times.extend((0..30).map(|i| T + i));
            let out = run(&mut clock, &times);
            assert!(matches!(out[0].1, Decision::Quarantine | Decision::BeforeStart), "{flipped}: {:?}", out[0]);
            assert!(out[1..].iter().all(|(_, d)| matches!(d, Decision::Admit { .. })));
            assert_eq!(clock.watermark(), Some(T + 29 - 5));
        }
    }

    #[test]
    fn a_far_future_frame_later_is_quarantined_without_moving_the_watermark() {
        let mut clock = Clock::new(5, 3600);
        let mut times: Vec<Secs> = (0..30).map(|i| T + i).collect();
        times.push(T + 10_000_000);
        times.extend((30..40).map(|i| T + i));
        let out = run(&mut clock, &times);
        assert_eq!(out[30].1, Decision::Quarantine);
        assert_eq!(out.iter().filter(|(_, d)| *d == Decision::Quarantine).count(), 1);
        assert_eq!(clock.watermark(), Some(T + 39 - 5));
    }

    #[test]
    fn a_sparse_warm_up_spanning_hours_is_admitted_whole() {
        // 16 frames 40 minutes apart span 10 hours, far more than the hour
        // of quarantine around their median.
        let mut clock = Clock::new(5, 3600);
        let times: Vec<Secs> = (0..100).map(|i| T + 2400 * i).collect();
        let out = run(&mut clock, &times);
        assert!(out.iter().all(|(_, d)| matches!(d, Decision::Admit { .. })), "{out:?}");
        assert_eq!(clock.watermark(), Some(T + 2400 * 99 - 5));
    }

    #[test]
    fn wrong_frames_in_a_sparse_warm_up_are_still_set_aside() {
        // Sparse frames (40 minutes apart), with a bit-flipped frame ahead
        // and one far behind among the first 16: the spread of the others
        // does not let them in.
        let mut clock = Clock::new(5, 3600);
        let mut times: Vec<Secs> = (0..40).map(|i| T + 2400 * i).collect();
        times[3] = T | (1 << 33);
        times[9] = 394_502_563;
        let out = run(&mut clock, &times);
        assert_eq!(out[3].1, Decision::Quarantine);
        assert_eq!(out[9].1, Decision::BeforeStart);
        let admitted = out.iter().filter(|(_, d)| matches!(d, Decision::Admit { .. })).count();
        assert_eq!(admitted, 38);
        assert_eq!(clock.watermark(), Some(T + 2400 * 39 - 5));
    }

    #[test]
    fn a_real_gap_is_confirmed_and_followed() {
        let mut clock = Clock::new(5, 3600);
        let mut times: Vec<Secs> = (0..30).map(|i| T + i).collect();
        let later = T + 86_400;
        times.extend((0..100).map(|i| later + i));
        let out = run(&mut clock, &times);
        assert!(out.iter().all(|(_, d)| matches!(d, Decision::Admit { .. })), "nothing held forever");
        assert_eq!(clock.watermark(), Some(later + 99 - 5));
    }

    #[test]
    fn a_short_burst_of_far_frames_stays_quarantined() {
        let mut clock = Clock::new(5, 3600);
        let mut times: Vec<Secs> = (0..30).map(|i| T + i).collect();
        times.extend((0..(JUMP_CONFIRM_FRAMES as Secs - 1)).map(|i| (T + 30 + i) ^ (1 << 31)));
        times.extend((30..40).map(|i| T + i));
        let out = run(&mut clock, &times);
        let quarantined = out.iter().filter(|(_, d)| *d == Decision::Quarantine).count();
        assert_eq!(quarantined, JUMP_CONFIRM_FRAMES - 1);
        assert_eq!(clock.watermark(), Some(T + 39 - 5));
    }
}
