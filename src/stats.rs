//! Counters of what came in and what became of it: the run's [`Totals`].
//!
//! Workers count into their own [`InputCounters`] per chunk (no shared
//! atomics on the hot path); the merge thread adds them up and, after each
//! step and at the end, puts the run's totals together in one place
//! ([`Totals::of`]). The progress reporter, the metrics and the end-of-run
//! summary all read those totals.

use std::fmt;
use std::time::Duration;

use crate::frame::Reject;
use crate::window::Secs;
use crate::window::engine::{Engine, EngineStats};

/// Frames and bytes read, and rejected frames by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InputCounters {
    /// Frames read (lines or records), usable or not.
    pub frames: u64,
    /// Bytes read, line endings included.
    pub bytes: u64,
    /// Rejected frames, indexed by [`Reject::index`].
    pub rejected: [u64; Reject::ALL.len()],
}

impl InputCounters {
    /// Counts one rejected frame.
    #[inline]
    pub fn reject(&mut self, reason: Reject) {
        self.rejected[reason.index()] += 1;
    }

    /// Total rejected frames.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.iter().sum()
    }

    /// Adds `other` into `self`.
    pub fn add(&mut self, other: &InputCounters) {
        self.frames += other.frames;
        self.bytes += other.bytes;
        for (a, b) in self.rejected.iter_mut().zip(other.rejected) {
            *a += b;
        }
    }
}

/// The run's totals as of the merge's last step: the progress line shows
/// them, the metrics publish them, and at the end they are the summary.
#[derive(Debug, Clone, Copy, Default)]
pub struct Totals {
    /// Input side.
    pub input: InputCounters,
    /// Window side.
    pub engine: EngineStats,
    /// Global watermark, once known.
    pub watermark: Option<Secs>,
    /// Windows open now, all kinds.
    pub open_windows: usize,
    /// Messages behind the end of the input, over all Kafka partitions,
    /// once librdkafka has reported every partition's end; None for files.
    pub lag: Option<i64>,
    /// Wall time since the run started.
    pub elapsed: Duration,
}

impl Totals {
    /// The totals of a run that has read `input` into `engine`.
    pub fn of(input: &InputCounters, engine: &Engine, lag: Option<i64>, elapsed: Duration) -> Totals {
        Totals {
            input: *input,
            engine: engine.stats(),
            watermark: engine.watermark(),
            open_windows: engine.open_windows(),
            lag,
            elapsed,
        }
    }

    /// Frames per second over the run.
    pub fn frames_per_sec(&self) -> f64 {
        self.input.frames as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Megabytes (10^6 bytes) per second over the run.
    pub fn mb_per_sec(&self) -> f64 {
        self.input.bytes as f64 / 1e6 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The end-of-run summary as one JSON object (for scripts).
    pub fn to_json(&self) -> String {
        let reasons: Vec<String> =
            Reject::ALL.iter().map(|r| format!("\"{}\":{}", r.name(), self.input.rejected[r.index()])).collect();
        let e = &self.engine;
        format!(
            concat!(
                r#"{{"frames":{},"bytes":{},"rejected":{},"rejected_by_reason":{{{}}},"counted":{},"late":{},"#,
                r#""too_late":{},"quarantined":{},"reread":{},"records":{},"revisions":{},"provisional":{},"#,
                r#""windows_finalized":{},"#,
                r#""windows_forced":{},"open_windows_peak":{},"state_bytes_peak":{},"#,
                r#""elapsed_secs":{:.6},"frames_per_sec":{:.1},"mb_per_sec":{:.1}}}"#
            ),
            self.input.frames,
            self.input.bytes,
            self.input.rejected_total(),
            reasons.join(","),
            e.counted,
            e.late,
            e.too_late,
            e.quarantined,
            e.reread,
            e.emissions,
            e.revisions,
            e.provisional,
            e.windows_finalized,
            e.windows_forced,
            e.open_windows_peak,
            e.state_bytes_peak,
            self.elapsed.as_secs_f64(),
            self.frames_per_sec(),
            self.mb_per_sec()
        )
    }
}

/// The end-of-run summary, for people.
impl fmt::Display for Totals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.input;
        let e = &self.engine;
        writeln!(
            f,
            "kuniq: {} frames, {:.1} MB in {:.3} s: {:.0} frames/s, {:.0} MB/s",
            i.frames,
            i.bytes as f64 / 1e6,
            self.elapsed.as_secs_f64(),
            self.frames_per_sec(),
            self.mb_per_sec()
        )?;
        writeln!(
            f,
            "  counted {}, late (counted, revised a closed window) {}, too late (not counted) {}, quarantined (not counted) {}",
            e.counted, e.late, e.too_late, e.quarantined
        )?;
        if e.reread > 0 {
            writeln!(f, "  re-read after a restart for windows already final (skipped) {}", e.reread)?;
        }
        write!(f, "  bad frames {}", i.rejected_total())?;
        let reasons: Vec<String> = Reject::ALL
            .iter()
            .filter(|r| i.rejected[r.index()] > 0)
            .map(|r| format!("{} {}", r.name(), i.rejected[r.index()]))
            .collect();
        if !reasons.is_empty() {
            write!(f, " ({})", reasons.join(", "))?;
        }
        writeln!(f)?;
        write!(f, "  records {} ({} revisions", e.emissions, e.revisions)?;
        if e.provisional > 0 {
            write!(f, ", {} provisional", e.provisional)?;
        }
        write!(f, "), windows finalized {}", e.windows_finalized)?;
        if e.windows_forced > 0 {
            write!(f, ", forced out early by --max-open-windows {}", e.windows_forced)?;
        }
        write!(
            f,
            "\n  open windows at most {}, holding at most {:.1} MB",
            e.open_windows_peak,
            e.state_bytes_peak as f64 / 1e6
        )
    }
}
