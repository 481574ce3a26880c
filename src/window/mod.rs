//! Event-time windows: bins, watermarks, revisions, late and quarantined
//! frames.
//!
//! Vocabulary (as in Arroyo/Flink): a window `[start, end)` is a UTC bin of
//! event time; each input stream (a file, a Kafka partition) has a
//! *watermark* `W = max ts seen - lateness`, which asserts that frames with
//! ts < W have arrived; the global watermark is the minimum over streams
//! that are not idle; a window *closes* (is emitted, revision 0) when the
//! global watermark reaches its end.
//!
//! - [`WindowKind`]: minute, hour, day, week (ISO, Monday), month, year.
//! - [`clock`]: one stream's watermark, with warm-up and quarantine.
//! - [`engine`]: the windows of every kind, fed by one parse per frame.
//! - [`state`]: a window's state as data: encoded, merged.

pub mod clock;
pub mod engine;
pub mod partials;
pub mod state;

use std::fmt;

/// Seconds since the epoch (signed: a week bin can start before 1970).
pub type Secs = i64;

/// A kind of tumbling window, aligned to UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WindowKind {
    /// 60 seconds, starting on the minute.
    Minute,
    /// 3600 seconds, starting on the hour.
    Hour,
    /// A UTC day.
    Day,
    /// An ISO week, Monday 00:00 UTC to the next Monday.
    Week,
    /// A calendar month.
    Month,
    /// A calendar year.
    Year,
}

impl WindowKind {
    /// Every kind, shortest first.
    pub const ALL: [WindowKind; 6] =
        [WindowKind::Minute, WindowKind::Hour, WindowKind::Day, WindowKind::Week, WindowKind::Month, WindowKind::Year];

    /// Name used in output records and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            WindowKind::Minute => "minute",
            WindowKind::Hour => "hour",
            WindowKind::Day => "day",
            WindowKind::Week => "week",
            WindowKind::Month => "month",
            WindowKind::Year => "year",
        }
    }

    /// Parses a command-line name.
    pub fn from_name(name: &str) -> Option<WindowKind> {
        WindowKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Start of the window holding `ts`.
    #[inline]
    pub fn start(self, ts: Secs) -> Secs {
        match self {
            WindowKind::Minute => ts.div_euclid(60) * 60,
            WindowKind::Hour => ts.div_euclid(3600) * 3600,
            WindowKind::Day => ts.div_euclid(DAY) * DAY,
            WindowKind::Week => {
                let days = ts.div_euclid(DAY);
                // 1970-01-01 was a Thursday: Monday-based weekday index 3.
                (days - (days + 3).rem_euclid(7)) * DAY
            }
            WindowKind::Month => {
                let (y, m, _) = civil_from_days(ts.div_euclid(DAY));
                days_from_civil(y, m, 1) * DAY
            }
            WindowKind::Year => {
                let (y, _, _) = civil_from_days(ts.div_euclid(DAY));
                days_from_civil(y, 1, 1) * DAY
            }
        }
    }

    /// The longest a window of this kind lasts, in seconds (a 31-day
    /// month, a leap year).
    pub fn longest_secs(self) -> Secs {
        match self {
            WindowKind::Minute => 60,
            WindowKind::Hour => 3600,
            WindowKind::Day => DAY,
            WindowKind::Week => 7 * DAY,
            WindowKind::Month => 31 * DAY,
            WindowKind::Year => 366 * DAY,
        }
    }

    /// End (exclusive) of the window starting at `start`.
    #[inline]
    pub fn end(self, start: Secs) -> Secs {
        match self {
            WindowKind::Minute => start + 60,
            WindowKind::Hour => start + 3600,
            WindowKind::Day => start + DAY,
            WindowKind::Week => start + 7 * DAY,
            WindowKind::Month => {
                let (y, m, _) = civil_from_days(start.div_euclid(DAY));
                let (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                days_from_civil(y, m, 1) * DAY
            }
            WindowKind::Year => {
                let (y, _, _) = civil_from_days(start.div_euclid(DAY));
                days_from_civil(y + 1, 1, 1) * DAY
            }
        }
    }
}

impl fmt::Display for WindowKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

const DAY: Secs = 86_400;

/// `secs` as an RFC 3339 UTC timestamp, e.g. `2016-07-11T13:39:44Z`.
pub fn format_utc(secs: Secs) -> String {
    let (y, m, d) = civil_from_days(secs.div_euclid(DAY));
    let t = secs.rem_euclid(DAY);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", t / 3600, t / 60 % 60, t % 60)
}

/// Parses a UTC time as [`format_utc`] writes it, `2016-07-11T13:39:44Z`;
/// the seconds and the `Z` may be left out, and a date alone
/// (`2016-07-11`) is its midnight. `None` for anything else (other
/// offsets, impossible dates).
pub fn parse_utc(text: &str) -> Option<Secs> {
    let text = text.strip_suffix('Z').unwrap_or(text);
    let (date, time) = text.split_once('T').unwrap_or((text, "00:00"));
    let number = |s: &str, len: usize| {
        (s.len() == len && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse::<i64>().ok()).flatten()
    };
    let mut d = date.splitn(3, '-');
    let (y, m, day) = (number(d.next()?, 4)?, number(d.next()?, 2)?, number(d.next()?, 2)?);
    let mut t = time.splitn(3, ':');
    let (h, min) = (number(t.next()?, 2)?, number(t.next()?, 2)?);
    let sec = match t.next() {
        Some(s) => number(s, 2)?,
        None => 0,
    };
    if !(1..=12).contains(&m) || day < 1 || h > 23 || min > 59 || sec > 59 {
        return None;
    }
    let days = days_from_civil(y, m, day);
    // Rejects 2016-02-30 and the like: the day must exist in its month.
    if civil_from_days(days) != (y, m, day) {
        return None;
    }
    Some(days * DAY + h * 3600 + min * 60 + sec)
}

/// (year, month 1..=12, day 1..=31) of a day count since 1970-01-01, in the
/// proleptic Gregorian calendar (H. Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Day count since 1970-01-01 of a civil date (inverse of `civil_from_days`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_of_a_known_instant() {
        // 2016-07-11 13:39:44 UTC, a Monday.
        let ts = 1_468_244_384;
        assert_eq!(WindowKind::Minute.start(ts), 1_468_244_340);
        assert_eq!(WindowKind::Hour.start(ts), 1_468_242_000);
        assert_eq!(WindowKind::Day.start(ts), 1_468_195_200);
        assert_eq!(WindowKind::Week.start(ts), 1_468_195_200);
        assert_eq!(WindowKind::Month.start(ts), 1_467_331_200); // 2016-07-01
        assert_eq!(WindowKind::Month.end(1_467_331_200), 1_470_009_600); // 2016-08-01
        assert_eq!(WindowKind::Year.start(ts), 1_451_606_400); // 2016-01-01
        assert_eq!(WindowKind::Year.end(1_451_606_400), 1_483_228_800); // 2017-01-01
        assert_eq!(WindowKind::Week.start(0), -3 * DAY); // 1969-12-29, a Monday
    }

    #[test]
    fn every_ts_lies_in_its_bin_and_bins_tile() {
        for kind in WindowKind::ALL {
            let mut ts = 0;
            while ts < 4_102_444_800 {
                let start = kind.start(ts);
                let end = kind.end(start);
                assert!(start <= ts && ts < end, "{kind} {ts}");
                assert_eq!(kind.start(end), end, "{kind}: next bin starts where this ends");
                assert_eq!(kind.start(end - 1), start);
                ts += 7_777_777 + ts % 99_991;
            }
        }
    }

    #[test]
    fn utc_text() {
        assert_eq!(format_utc(1_468_244_384), "2016-07-11T13:39:44Z");
        assert_eq!(format_utc(0), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn civil_round_trip() {
        for days in (-800_000..800_000).step_by(37) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }
}
