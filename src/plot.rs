//! `kuniq plot`: draws kuniq's own records (the JSON lines `kuniq count`
//! prints, or an output topic's values) as a PNG chart of unique users per
//! window over event time.
//!
//! Reading keeps, for every window of the chosen kind, the record at its
//! close (the first with `"closed": true`; revision 0 unless provisional
//! records came before it) and the highest revision seen (the final value,
//! whatever order the records came in, so a topic read from several
//! partitions or a replay that repeats records draws the same picture).
//! Provisional records of open windows (`"closed": false`) are skipped: the
//! chart shows windows as they closed and were revised. Drawing is
//! deterministic: the same records give the same PNG bytes.
//!
//! Text is drawn with a subset of DejaVu Sans embedded in the binary
//! (`assets/fonts/`), so plotting needs no system fonts or font
//! configuration at run time.

use std::collections::BTreeMap;
use std::fmt;
use std::io::BufRead;

use plotters::prelude::*;

use crate::window::format_utc;

/// Default picture width in pixels.
pub const DEFAULT_WIDTH: u32 = 1600;
/// Default picture height in pixels.
pub const DEFAULT_HEIGHT: u32 = 600;
/// Smallest and largest width or height accepted: below this the axes and
/// legend do not fit; above it one picture takes hundreds of MB to draw.
pub const SIZE_RANGE: std::ops::RangeInclusive<u32> = 200..=16_384;

/// DejaVu Sans (Bitstream Vera license, see `assets/fonts/README.md`),
/// reduced to Latin-1 and some punctuation: 17 KB instead of 760 KB.
static FONT: &[u8] = include_bytes!("../assets/fonts/DejaVuSans-subset.ttf");

/// The final count's line.
pub const LINE_COLOR: RGBColor = RGBColor(31, 119, 180);
/// Revised windows: the final value's dot and the close's ring.
pub const REVISED_COLOR: RGBColor = RGBColor(230, 85, 13);

/// One window of the chosen kind, as its records describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowPoint {
    /// Window start, unix seconds (UTC).
    pub start: i64,
    /// Window end, unix seconds, exclusive.
    pub end: i64,
    /// `unique_users` of the first closed record seen: the window's close
    /// when every record is there (a compacted topic keeps only the
    /// latest).
    pub first: Option<u64>,
    /// `unique_users` of the highest revision.
    pub last: u64,
    /// The highest revision seen.
    pub revision: u64,
    /// The revision of the first closed record seen: the close, after the
    /// window's provisional records (0 without them).
    pub closed_at: u64,
}

impl WindowPoint {
    /// True when late frames revised the window after its close.
    pub fn revised(&self) -> bool {
        self.revision > self.closed_at
    }
}

/// The windows of one kind, in start order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Series {
    /// The window kind (`minute`, `hour`, ...).
    pub kind: String,
    /// One point per window start.
    pub points: Vec<WindowPoint>,
    /// Records read (of every kind).
    pub records: u64,
}

/// Why a chart could not be made.
#[derive(Debug)]
#[non_exhaustive]
pub enum PlotError {
    /// The input holds no records at all.
    Empty,
    /// Line `line` (1-based) is not a kuniq record.
    NotARecord {
        /// 1-based line (or record) number.
        line: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// Reading the input failed.
    Read(std::io::Error),
    /// There are records, but none of the wanted window kind.
    NoWindowOfKind {
        /// The kind asked for.
        wanted: String,
        /// The kinds present.
        found: Vec<String>,
    },
    /// plotters or the PNG encoder failed.
    Draw(String),
}

impl fmt::Display for PlotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlotError::Empty => f.write_str("the input has no records (expected the JSON lines kuniq count prints)"),
            PlotError::NotARecord { line, reason } => write!(f, "line {line} is not a kuniq record: {reason}"),
            PlotError::Read(e) => write!(f, "cannot read the input: {e}"),
            PlotError::NoWindowOfKind { wanted, found } => {
                write!(f, "no '{wanted}' records in the input (it has {}); choose one with --window", found.join(", "))
            }
            PlotError::Draw(e) => write!(f, "cannot draw the chart: {e}"),
        }
    }
}

impl std::error::Error for PlotError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PlotError::Read(e) => Some(e),
            _ => None,
        }
    }
}

/// One parsed record: the fields a chart needs.
struct Record<'a> {
    window: &'a str,
    start: i64,
    end: i64,
    unique_users: u64,
    revision: u64,
    /// False for a provisional record of an open window; records written
    /// before `closed` existed are all closed.
    closed: bool,
}

fn parse_record(value: &serde_json::Value) -> Result<Record<'_>, String> {
    let object = value.as_object().ok_or("not a JSON object")?;
    let field = |name: &str| object.get(name).ok_or_else(|| format!("no \"{name}\" field"));
    let int = |name: &str| field(name)?.as_i64().ok_or_else(|| format!("\"{name}\" is not an integer"));
    let count = |name: &str| field(name)?.as_u64().ok_or_else(|| format!("\"{name}\" is not a non-negative integer"));
    let record = Record {
        window: field("window")?.as_str().ok_or("\"window\" is not a string")?,
        start: int("start")?,
        end: int("end")?,
        unique_users: count("unique_users")?,
        revision: count("revision")?,
        closed: match object.get("closed") {
            None => true,
            Some(value) => value.as_bool().ok_or("\"closed\" is not true or false")?,
        },
    };
    if record.end <= record.start {
        return Err(format!("\"end\" {} is not after \"start\" {}", record.end, record.start));
    }
    Ok(record)
}

/// Reads records, one JSON object per line (blank lines and a trailing `\r`
/// are ignored), and keeps the windows of kind `kind`.
pub fn read_series(input: impl BufRead, kind: &str) -> Result<Series, PlotError> {
    let mut windows: BTreeMap<i64, WindowPoint> = BTreeMap::new();
    let mut kinds: Vec<String> = Vec::new();
    let mut records = 0;
    for (index, line) in input.split(b'\n').enumerate() {
        let line = line.map_err(PlotError::Read)?;
        let line = line.strip_suffix(b"\r").unwrap_or(&line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let not_a_record = |reason: String| PlotError::NotARecord { line: index as u64 + 1, reason };
        let value: serde_json::Value =
            serde_json::from_slice(line).map_err(|e| not_a_record(format!("invalid JSON ({e})")))?;
        let record = parse_record(&value).map_err(not_a_record)?;
        records += 1;
        if !kinds.iter().any(|k| k == record.window) {
            kinds.push(record.window.to_string());
        }
        // The chart shows windows as they closed and were revised;
        // provisional records of open windows are skipped.
        if record.window != kind || !record.closed {
            continue;
        }
        let point = windows.entry(record.start).or_insert(WindowPoint {
            start: record.start,
            end: record.end,
            first: None,
            last: record.unique_users,
            revision: record.revision,
            closed_at: record.revision,
        });
        if record.revision <= point.closed_at {
            point.closed_at = record.revision;
            point.first = Some(record.unique_users);
        }
        // The highest revision wins; on a tie (a replay repeating a record)
        // the later line does.
        if record.revision >= point.revision {
            point.revision = record.revision;
            point.last = record.unique_users;
            point.end = record.end;
        }
    }
    if records == 0 {
        return Err(PlotError::Empty);
    }
    if windows.is_empty() {
        return Err(PlotError::NoWindowOfKind { wanted: kind.to_string(), found: kinds });
    }
    Ok(Series { kind: kind.to_string(), points: windows.into_values().collect(), records })
}

/// What to draw and how big.
#[derive(Debug, Clone)]
pub struct PlotOptions {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Title; None for the default "Unique users per minute".
    pub title: Option<String>,
}

/// Registers the embedded font as plotters' "sans-serif" (the family its
/// axis labels use by default). Once per process.
fn register_font() -> Result<(), PlotError> {
    static REGISTERED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| plotters::style::register_font("sans-serif", FontStyle::Normal, FONT).is_ok());
    if ok { Ok(()) } else { Err(PlotError::Draw("the embedded font cannot be read".into())) }
}

/// Draws `series` and returns the PNG file's bytes.
pub fn render_png(series: &Series, options: &PlotOptions) -> Result<Vec<u8>, PlotError> {
    register_font()?;
    let (width, height) = (options.width, options.height);
    let mut rgb = vec![0u8; width as usize * height as usize * 3];
    draw(series, options, &mut rgb).map_err(|e| PlotError::Draw(e.to_string()))?;
    let mut png_bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut png_bytes, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(|e| PlotError::Draw(e.to_string()))?;
    writer.write_image_data(&rgb).map_err(|e| PlotError::Draw(e.to_string()))?;
    writer.finish().map_err(|e| PlotError::Draw(e.to_string()))?;
    Ok(png_bytes)
}

/// Tick spacings for the time axis, seconds: whole minutes, hours, days.
const TIME_STEPS: [i64; 16] = [
    60,
    120,
    300,
    600,
    900,
    1800,
    3600,
    2 * 3600,
    3 * 3600,
    6 * 3600,
    12 * 3600,
    86_400,
    2 * 86_400,
    7 * 86_400,
    14 * 86_400,
    28 * 86_400,
];

/// Tick positions on whole UTC steps, at most `max_ticks` of them.
fn time_ticks(from: i64, to: i64, max_ticks: i64) -> Vec<i64> {
    let span = (to - from).max(1);
    let step = TIME_STEPS
        .iter()
        .copied()
        .find(|step| span / step <= max_ticks)
        .unwrap_or_else(|| (span / max_ticks.max(1) / 86_400 + 1) * 86_400);
    let first = from.div_euclid(step) * step + if from.rem_euclid(step) == 0 { 0 } else { step };
    (0..).map(|i| first + i * step).take_while(|&t| t <= to).collect()
}

/// `1234567` as `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The chart's words: title, subtitle, the time axis's name, and how the
/// time labels read.
struct Captions {
    title: String,
    subtitle: String,
    x_desc: String,
    /// Windows of a day or longer: dates alone.
    daily: bool,
    /// Every window starts on one day: times of day alone.
    one_day: bool,
}

fn captions(series: &Series, options: &PlotOptions, from: i64, to: i64, revised: usize) -> Captions {
    let (points, kind) = (&series.points, series.kind.as_str());
    let one_day = from.div_euclid(86_400) == to.div_euclid(86_400);
    let daily = points.first().is_some_and(|p| p.end - p.start >= 86_400);
    let x_desc = if one_day && !daily {
        format!("event time, UTC ({})", &format_utc(from)[..10])
    } else {
        "event time, UTC".to_string()
    };
    let title = options.title.clone().unwrap_or_else(|| format!("Unique users per {kind}"));
    let subtitle = format!(
        "{} to {} UTC: {} {kind}{}, {} revised; the line is each {kind}'s last revision",
        &format_utc(from)[..16].replace('T', " "),
        &format_utc(points.last().map_or(to, |p| p.end))[..16].replace('T', " "),
        thousands(points.len() as u64),
        if points.len() == 1 { "" } else { "s" },
        thousands(revised as u64),
    );
    Captions { title, subtitle, x_desc, daily, one_day }
}

fn draw(series: &Series, options: &PlotOptions, rgb: &mut [u8]) -> Result<(), Box<dyn std::error::Error>> {
    let points = &series.points;
    let kind = series.kind.as_str();
    let revised = points.iter().filter(|p| p.revised()).count();
    let from = points.first().map_or(0, |p| p.start);
    let to = points.last().map_or(1, |p| p.start.max(from + 1));
    // The x axis spans window starts with half a window of margin.
    let margin = points.first().map_or(30, |p| ((p.end - p.start) / 2).max(1));
    let (x_from, x_to) = (from - margin, to + margin);
    let y_top = points.iter().map(|p| p.last.max(p.first.unwrap_or(0))).max().unwrap_or(1).max(1);
    let y_top = y_top + y_top / 10 + 1;

    let Captions { title, subtitle, x_desc, daily, one_day } = captions(series, options, from, to, revised);
    // Labels: time of day within one day, date and time across days, and
    // the date alone for windows of a day or longer.
    let label = move |t: &i64| {
        let text = format_utc(*t);
        if daily {
            text[..10].to_string()
        } else if one_day {
            text[11..16].to_string()
        } else {
            format!("{} {}", &text[5..10], &text[11..16])
        }
    };

    let root = BitMapBackend::with_buffer(rgb, (options.width, options.height)).into_drawing_area();
    root.fill(&WHITE)?;
    let (title_area, chart_area) = root.split_vertically(64);
    title_area.draw(&Text::new(title, (60, 8), ("sans-serif", 26).into_font().color(&BLACK)))?;
    title_area.draw(&Text::new(subtitle, (60, 40), ("sans-serif", 15).into_font().color(&RGBColor(90, 90, 90))))?;

    let max_ticks = i64::from(options.width / 110).max(2);
    let ticks = time_ticks(x_from, x_to, max_ticks);
    let x_range = (x_from..x_to).with_key_points(ticks);
    let mut chart = ChartBuilder::on(&chart_area)
        .margin_left(10)
        .margin_right(30)
        .margin_bottom(10)
        .x_label_area_size(44)
        .y_label_area_size(90)
        .build_cartesian_2d(x_range, 0u64..y_top)?;
    chart
        .configure_mesh()
        .x_label_formatter(&label)
        .y_label_formatter(&|v: &u64| thousands(*v))
        .x_desc(x_desc)
        .y_desc("unique users")
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 15))
        .light_line_style(WHITE)
        .bold_line_style(RGBColor(225, 225, 225))
        .draw()?;

    // The final counts: one line per run of adjacent windows, so a gap (a
    // window with no record) shows as a gap.
    let mut runs: Vec<Vec<(i64, u64)>> = Vec::new();
    let mut previous_end = None;
    for p in points {
        if previous_end != Some(p.start) {
            runs.push(Vec::new());
        }
        runs.last_mut().expect("a run was pushed").push((p.start, p.last));
        previous_end = Some(p.end);
    }
    // Windows closer than a few pixels: a thin line (a thick one's mitred
    // corners spike past the data when it zigzags), no dots, and revised
    // windows as ticks on the time axis instead of rings.
    let dense = points.len() as u64 > u64::from(options.width / 4);
    let line_style = LINE_COLOR.stroke_width(if dense { 1 } else { 2 });
    for (i, run) in runs.iter().enumerate() {
        let drawn = chart.draw_series(LineSeries::new(run.iter().copied(), line_style))?;
        if i == 0 {
            drawn
                .label(format!("unique users, last revision of each {kind}"))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], line_style));
        }
    }
    // Dots on every window while they are far enough apart to tell apart.
    if points.len() as u64 <= u64::from(options.width / 12) {
        chart.draw_series(points.iter().map(|p| Circle::new((p.start, p.last), 3, LINE_COLOR.filled())))?;
    }

    // Revised windows: a faint ring at the first emission, a thin stem to
    // the final value, and a dot on it.
    if revised > 0 && dense {
        let tick = y_top / 40 + 1;
        chart
            .draw_series(
                points
                    .iter()
                    .filter(|p| p.revised())
                    .map(|p| PathElement::new(vec![(p.start, 0), (p.start, tick)], REVISED_COLOR.stroke_width(1))),
            )?
            .label(format!("revised {kind} (tick on the time axis)"))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x + 10, y - 5), (x + 10, y + 5)], REVISED_COLOR.stroke_width(2))
            });
    } else if revised > 0 {
        let faint = REVISED_COLOR.mix(0.45);
        chart.draw_series(points.iter().filter(|p| p.revised()).filter_map(|p| {
            p.first.map(|first| PathElement::new(vec![(p.start, first), (p.start, p.last)], faint.stroke_width(1)))
        }))?;
        chart
            .draw_series(
                points
                    .iter()
                    .filter(|p| p.revised())
                    .filter_map(|p| p.first.map(|first| Circle::new((p.start, first), 5, faint.stroke_width(2)))),
            )?
            .label(format!("close (first closed record) of a revised {kind}"))
            .legend(move |(x, y)| Circle::new((x + 10, y), 5, faint.stroke_width(2)));
        chart
            .draw_series(
                points
                    .iter()
                    .filter(|p| p.revised())
                    .map(|p| Circle::new((p.start, p.last), 4, REVISED_COLOR.filled())),
            )?
            .label(format!("last revision of a revised {kind}"))
            .legend(move |(x, y)| Circle::new((x + 10, y), 4, REVISED_COLOR.filled()));
    }

    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.9))
        .border_style(RGBColor(200, 200, 200))
        .label_font(("sans-serif", 14))
        .draw()?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(start: i64, users: u64, revision: u64) -> String {
        format!(
            "{{\"window\":\"minute\",\"start\":{start},\"end\":{},\"unique_users\":{users},\"frames\":{users},\"revision\":{revision},\"estimator\":\"exact\"}}\n",
            start + 60
        )
    }

    #[test]
    fn the_highest_revision_wins_in_any_order() {
        let text = [record(120, 7, 1), record(60, 5, 0), record(120, 6, 0), record(60, 5, 0)].concat();
        let series = read_series(text.as_bytes(), "minute").unwrap();
        assert_eq!(series.records, 4);
        assert_eq!(
            series.points,
            vec![
                WindowPoint { start: 60, end: 120, first: Some(5), last: 5, revision: 0, closed_at: 0 },
                WindowPoint { start: 120, end: 180, first: Some(6), last: 7, revision: 1, closed_at: 0 },
            ]
        );
    }

    #[test]
    fn other_kinds_are_left_out_and_named_when_none_match() {
        let hour = "{\"window\":\"hour\",\"start\":0,\"end\":3600,\"unique_users\":3,\"revision\":0}\n";
        let text = format!("{}{hour}", record(60, 5, 0));
        assert_eq!(read_series(text.as_bytes(), "minute").unwrap().points.len(), 1);
        assert_eq!(read_series(text.as_bytes(), "hour").unwrap().points[0].last, 3);
        let err = read_series(text.as_bytes(), "day").unwrap_err().to_string();
        assert!(err.contains("no 'day' records") && err.contains("minute, hour"), "{err}");
    }

    #[test]
    fn bad_lines_are_named_by_number() {
        let text = format!("{}\n{}not json\n", record(60, 5, 0), record(120, 5, 0));
        let err = read_series(text.as_bytes(), "minute").unwrap_err().to_string();
        assert!(err.starts_with("line 4 is not a kuniq record"), "{err}");
        let err = read_series("{\"window\":\"minute\",\"start\":1}".as_bytes(), "minute").unwrap_err().to_string();
        assert!(err.contains("line 1") && err.contains("\"end\""), "{err}");
        assert!(matches!(read_series(" \n\n".as_bytes(), "minute"), Err(PlotError::Empty)));
    }

    #[test]
    fn time_ticks_sit_on_whole_utc_steps() {
        assert_eq!(
            time_ticks(1_468_244_370, 1_468_244_700, 10),
            vec![1_468_244_400, 1_468_244_460, 1_468_244_520, 1_468_244_580, 1_468_244_640, 1_468_244_700]
        );
        let ticks = time_ticks(0, 10 * 86_400, 8);
        assert!(ticks.len() <= 9 && ticks.iter().all(|t| t % 86_400 == 0), "{ticks:?}");
    }

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(46_470), "46,470");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
