//! Progress on stderr: a bar on a terminal (indicatif), a status line every
//! status interval otherwise (and always for Kafka runs, which have no end
//! to show a bar towards). Nothing is shown for runs shorter than
//! [`QUIET_START`].
//!
//! Status lines are INFO events (see [`crate::logging`]); in the text format
//! they read `kuniq: 512 MB, 250000 frames, 50000 frames/s, ...`, and
//! scripts/soak.sh reads the frame count from that start, so the first two
//! items keep their place.

use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::stats::Totals;
use crate::window::format_utc;

/// Default interval between status lines (`--status-interval`).
pub const STATUS_INTERVAL: Duration = Duration::from_secs(10);
/// Runs shorter than this show no progress.
pub const QUIET_START: Duration = Duration::from_secs(1);
/// Between updates of the bar's text (the bar redraws itself at most 20
/// times a second whatever is done).
const BAR_INTERVAL: Duration = Duration::from_millis(250);

/// The bar on screen, if any: log lines hide it while they are written.
static BAR: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// Runs `f` with the progress bar (if one is drawn) hidden, so that what
/// `f` writes to stderr is not drawn over.
pub fn suspend_bar<R>(f: impl FnOnce() -> R) -> R {
    let bar = BAR.lock().unwrap_or_else(|p| p.into_inner()).clone();
    match bar {
        Some(bar) => bar.suspend(f),
        None => f(),
    }
}

/// How a [`Reporter`] shows progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Display {
    /// Nothing (`--progress never`).
    Off,
    /// A bar on a terminal, status lines when stderr is not one.
    Auto,
    /// Status lines, even on a terminal (Kafka runs).
    Status,
}

/// Writes progress of a run to stderr.
#[derive(Debug)]
pub struct Reporter {
    display: Display,
    /// Input size, for the bar's length, a percentage and an ETA.
    total_bytes: Option<u64>,
    status_interval: Duration,
    /// Whether frames are counted (event time and open windows shown).
    counting: bool,
    bar: Option<ProgressBar>,
    /// When the last status line or bar text was written, and the frames
    /// read by then (the rate is over the interval since).
    last: Option<(Duration, u64)>,
}

impl Reporter {
    /// A reporter; `total_bytes` (when known) gives a percentage and ETA.
    /// `Display::Auto` draws a bar when stderr is a terminal.
    pub fn new(display: Display, total_bytes: Option<u64>, status_interval: Duration) -> Reporter {
        let display = match display {
            Display::Auto if !std::io::IsTerminal::is_terminal(&std::io::stderr()) => Display::Status,
            other => other,
        };
        Reporter { display, total_bytes, status_interval, counting: true, bar: None, last: None }
    }

    /// A reporter for `kuniq produce`: frames and bytes only.
    pub fn loading(display: Display, total_bytes: Option<u64>, status_interval: Duration) -> Reporter {
        Reporter { counting: false, ..Reporter::new(display, total_bytes, status_interval) }
    }

    /// Shows `p` if it is time to.
    pub fn update(&mut self, p: &Totals) {
        if p.elapsed < QUIET_START {
            return;
        }
        match self.display {
            Display::Off => {}
            Display::Auto => self.draw_bar(p),
            Display::Status => {
                let due = self.last.map_or(self.status_interval, |(at, _)| at + self.status_interval);
                if p.elapsed >= due {
                    self.status_line(p);
                }
            }
        }
    }

    /// The bar: bytes of the total (a spinner and bytes when the size is
    /// unknown), then frames/s and the event time (the watermark). Kept
    /// short so that it fits an 80-column terminal on one line.
    fn draw_bar(&mut self, p: &Totals) {
        let due = self.last.is_none_or(|(at, _)| p.elapsed >= at + BAR_INTERVAL);
        let msg = due.then(|| {
            let mut msg = format!("{:.0} frames/s", self.rate(p));
            if let Some(wm) = p.watermark.filter(|_| self.counting) {
                msg.push_str(&format!(", {}", format_utc(wm)));
            }
            msg
        });
        let total = self.total_bytes.filter(|&t| t > 0);
        let bar = self.bar.get_or_insert_with(|| {
            let (bar, template) = match total {
                Some(total) => (
                    ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr()),
                    "{spinner} {bytes}/{total_bytes} [{wide_bar}] {percent}% {msg}, ETA {eta}",
                ),
                None => (ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()), "{spinner} {bytes}, {msg}"),
            };
            let style = ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar());
            let bar = bar.with_style(style.progress_chars("=> "));
            // The bar appears a second into the run: its ETA starts from
            // here, not from a jump from 0.
            bar.set_position(p.input.bytes);
            bar.reset_eta();
            *BAR.lock().unwrap_or_else(|e| e.into_inner()) = Some(bar.clone());
            bar
        });
        if let Some(msg) = msg {
            bar.set_message(msg);
        }
        bar.set_position(p.input.bytes);
    }

    /// Frames per second since the last update (since the start, first).
    fn rate(&mut self, p: &Totals) -> f64 {
        let (at, frames) = self.last.unwrap_or_default();
        self.last = Some((p.elapsed, p.input.frames));
        let secs = (p.elapsed - at).as_secs_f64().max(1e-9);
        p.input.frames.saturating_sub(frames) as f64 / secs
    }

    fn status_line(&mut self, p: &Totals) {
        let interval = p.elapsed - self.last.map_or(Duration::ZERO, |(at, _)| at);
        let rate = self.rate(p);
        let secs = p.elapsed.as_secs_f64();
        let mb = p.input.bytes as f64 / 1e6;
        let mut line = format!(
            "{mb:.0} MB, {} frames, {rate:.0} frames/s over the last {}, {:.0} MB/s",
            p.input.frames,
            seconds(interval),
            mb / secs
        );
        let mut eta_secs = None;
        if let Some(total) = self.total_bytes.filter(|&t| t > 0 && p.input.bytes <= t) {
            let done = p.input.bytes as f64 / total as f64;
            let eta = secs / done.max(1e-9) - secs;
            eta_secs = Some(eta.round() as u64);
            line.push_str(&format!(", {:.1}% of {:.0} MB, ETA {eta:.0} s", done * 100.0, total as f64 / 1e6));
        }
        if let Some(lag) = p.lag {
            line.push_str(&format!(", lag {lag} messages"));
        }
        let watermark = p.watermark.filter(|_| self.counting);
        if let Some(wm) = watermark {
            line.push_str(&format!(", event time {}", format_utc(wm)));
        }
        if self.counting {
            line.push_str(&format!(", {} open windows", p.open_windows));
        }
        tracing::info!(
            frames = p.input.frames,
            bytes = p.input.bytes,
            frames_per_sec = rate.round() as u64,
            eta_secs,
            lag = p.lag,
            watermark,
            watermark_utc = watermark.map(format_utc).as_deref(),
            open_windows = self.counting.then_some(p.open_windows),
            "{line}"
        );
    }

    /// Clears the bar before the summary.
    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
            *BAR.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
    }
}

/// `10 s`, `1.5 s`: whole seconds unless the interval is short.
fn seconds(d: Duration) -> String {
    if d >= Duration::from_secs(10) { format!("{:.0} s", d.as_secs_f64()) } else { format!("{:.1} s", d.as_secs_f64()) }
}
