//! Progress on stderr: a live line on a terminal, a status sentence every
//! [`STATUS_INTERVAL`] otherwise. Nothing is shown for runs shorter than
//! [`QUIET_START`].

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use crate::pipeline::Progress;
use crate::window::format_utc;

/// Interval between status lines when stderr is not a terminal.
pub const STATUS_INTERVAL: Duration = Duration::from_secs(10);
/// Runs shorter than this show no progress.
pub const QUIET_START: Duration = Duration::from_secs(1);
const TTY_INTERVAL: Duration = Duration::from_millis(250);

/// Writes progress of a count to stderr.
#[derive(Debug)]
pub struct Reporter {
    enabled: bool,
    tty: bool,
    total_bytes: Option<u64>,
    last: Option<Instant>,
    drawn: bool,
}

impl Reporter {
    /// A reporter; `total_bytes` (when known) gives a percentage and ETA.
    pub fn new(enabled: bool, total_bytes: Option<u64>) -> Reporter {
        Reporter { enabled, tty: std::io::stderr().is_terminal(), total_bytes, last: None, drawn: false }
    }

    /// Shows `p` if it is time to.
    pub fn update(&mut self, p: &Progress) {
        if !self.enabled || p.elapsed < QUIET_START {
            return;
        }
        let interval = if self.tty { TTY_INTERVAL } else { STATUS_INTERVAL };
        if self.last.is_some_and(|t| t.elapsed() < interval) {
            return;
        }
        self.last = Some(Instant::now());
        let secs = p.elapsed.as_secs_f64();
        let mb = p.input.bytes as f64 / 1e6;
        let mut line = format!(
            "{:.0} MB, {} frames, {:.0} frames/s, {:.0} MB/s",
            mb,
            p.input.frames,
            p.input.frames as f64 / secs,
            mb / secs
        );
        if let Some(total) = self.total_bytes.filter(|&t| t > 0 && p.input.bytes <= t) {
            let done = p.input.bytes as f64 / total as f64;
            let eta = secs / done.max(1e-9) - secs;
            line = format!("{:5.1}% of {:.0} MB, {line}, ETA {:.0} s", done * 100.0, total as f64 / 1e6, eta);
        }
        if let Some(wm) = p.watermark {
            line.push_str(&format!(", event time {}", format_utc(wm)));
        }
        line.push_str(&format!(", {} open windows", p.open_windows));
        let mut err = std::io::stderr().lock();
        if self.tty {
            let _ = write!(err, "\r\x1b[2K{line}");
            self.drawn = true;
        } else {
            let _ = writeln!(err, "kuniq: {line}");
        }
    }

    /// Clears the live line before the summary.
    pub fn finish(&mut self) {
        if self.drawn {
            let _ = write!(std::io::stderr(), "\r\x1b[2K");
            self.drawn = false;
        }
    }
}
