//! `kuniq plot` through the real binary: PNG files decoded and checked for
//! size and for the colours of what they must show, usage and input errors
//! with their exit codes, and the same picture from an output topic (on
//! Apache Kafka, `common::apache_kafka`) as from the records on stdout.

mod common;

use std::path::Path;

use common::apache_kafka::{ApacheKafka, unique};
use common::cli::run;
use tempfile::TempDir;

/// The final count's line (kuniq::plot::LINE_COLOR).
const LINE: [u8; 3] = [31, 119, 180];
/// Revised windows' dots (kuniq::plot::REVISED_COLOR).
const REVISED: [u8; 3] = [230, 85, 13];

/// A decoded RGB picture.
struct Picture {
    width: u32,
    height: u32,
    rgb: Vec<u8>,
}

impl Picture {
    fn decode(bytes: &[u8]) -> Picture {
        assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG signature");
        let mut reader = png::Decoder::new(std::io::Cursor::new(bytes)).read_info().expect("a PNG header");
        let mut rgb = vec![0; reader.output_buffer_size().expect("a sane size")];
        let info = reader.next_frame(&mut rgb).expect("PNG image data");
        assert_eq!(info.color_type, png::ColorType::Rgb);
        rgb.truncate(info.buffer_size());
        Picture { width: info.width, height: info.height, rgb }
    }

    /// Pixels of exactly this colour.
    fn count(&self, colour: [u8; 3]) -> usize {
        self.rgb.chunks_exact(3).filter(|px| *px == colour).count()
    }

    /// First and last column (x) holding a pixel of this colour in the top
    /// three quarters of the picture (the legend sits below them).
    fn columns(&self, colour: [u8; 3]) -> (u32, u32) {
        let rows = self.height * 3 / 4;
        let mut xs = self
            .rgb
            .chunks_exact(3)
            .take((self.width * rows) as usize)
            .enumerate()
            .filter(|(_, px)| *px == colour)
            .map(|(i, _)| i as u32 % self.width);
        let first = xs.next().expect("the colour is there");
        xs.fold((first, first), |(lo, hi), x| (lo.min(x), hi.max(x)))
    }
}

fn kuniq_ok(args: &[&str], stdin: Option<&[u8]>) -> Vec<u8> {
    let out = run(args, stdin, &[]);
    assert_eq!(out.code, Some(0), "kuniq {args:?} failed:\n{}", out.stderr);
    out.stdout
}

/// Counts generated frames (`gen_args`) and returns kuniq count's records.
fn records(dir: &Path, gen_args: &[&str]) -> Vec<u8> {
    let frames = dir.join("frames.jsonl");
    let mut args = vec!["gen", "-o", frames.to_str().unwrap(), "--progress", "never"];
    args.extend_from_slice(gen_args);
    kuniq_ok(&args, None);
    kuniq_ok(&["count", "-i", frames.to_str().unwrap(), "--summary", "none", "--progress", "never"], None)
}

/// Minute windows with a revision (hour windows' provisional records are
/// not revisions of a closed window).
fn revised_minutes(records: &[u8]) -> usize {
    let mut revised = std::collections::BTreeSet::new();
    for line in records.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let v: serde_json::Value = serde_json::from_slice(line).unwrap();
        if v["window"] == "minute" && v["revision"].as_u64().unwrap() > 0 {
            revised.insert(v["start"].as_u64().unwrap());
        }
    }
    revised.len()
}

#[test]
fn plots_counted_records_with_revised_minutes_marked() {
    let dir = TempDir::new().unwrap();
    // Out-of-order frames (up to 40 s late) make revisions.
    let results = records(dir.path(), &["-c", "40000", "-r", "200", "-n", "3000", "-d", "40", "-p", "20", "-s", "7"]);
    assert!(revised_minutes(&results) >= 1, "the input needs revised minutes");
    let input = dir.path().join("results.jsonl");
    std::fs::write(&input, &results).unwrap();
    let png = dir.path().join("uniques.png");

    let out = run(&["plot", "--input", input.to_str().unwrap(), "-o", png.to_str().unwrap()], None, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stderr.contains("revised") && out.stderr.contains("uniques.png"), "{}", out.stderr);
    let picture = Picture::decode(&std::fs::read(&png).unwrap());
    assert_eq!((picture.width, picture.height), (1600, 600), "default size");
    // The line crosses most of the plot from left to right.
    assert!(picture.count(LINE) > 1000, "line pixels: {}", picture.count(LINE));
    let (left, right) = picture.columns(LINE);
    assert!(left < 300 && right > 1300, "line spans columns {left}..{right}");
    assert!(picture.count(REVISED) > 20, "revised minutes are marked");
    // Background and text.
    assert!(picture.count([255, 255, 255]) > picture.rgb.len() / 3 / 2);
    assert!(picture.count([0, 0, 0]) > 100, "title and labels are drawn");

    // stdin in, PNG on stdout, another size: the same drawing code.
    let bytes = kuniq_ok(&["plot", "-i", "-", "-o", "-", "--width", "800", "--height", "400"], Some(&results));
    let small = Picture::decode(&bytes);
    assert_eq!((small.width, small.height), (800, 400));
    assert!(small.count(LINE) > 300);
}

#[test]
fn ordered_input_has_no_revision_markers_and_other_kinds_are_left_out() {
    let dir = TempDir::new().unwrap();
    let frames = dir.path().join("frames.jsonl");
    kuniq_ok(&["gen", "-o", frames.to_str().unwrap(), "-c", "20000", "-r", "200", "-n", "3000", "-s", "2"], None);
    let results =
        kuniq_ok(&["count", "-i", frames.to_str().unwrap(), "--windows", "minute,hour", "--summary", "none"], None);
    assert_eq!(revised_minutes(&results), 0);
    assert!(String::from_utf8_lossy(&results).contains("\"window\":\"hour\""));

    let minutes = Picture::decode(&kuniq_ok(&["plot", "-i", "-", "-o", "-"], Some(&results)));
    assert!(minutes.count(LINE) > 1000);
    assert_eq!(minutes.count(REVISED), 0, "no minute was revised");

    // One hour window: a dot, no line across the picture.
    let hours = Picture::decode(&kuniq_ok(&["plot", "-i", "-", "-o", "-", "--window", "hour"], Some(&results)));
    let (left, right) = hours.columns(LINE);
    assert!(left > 200 && right - left < 200, "one hour is one dot, not a line: {left}..{right}");
}

#[test]
fn input_and_output_errors_are_clear() {
    let dir = TempDir::new().unwrap();
    let png = dir.path().join("out.png");
    let png = png.to_str().unwrap();
    let record = "{\"window\":\"minute\",\"start\":60,\"end\":120,\"unique_users\":5,\"frames\":5,\"revision\":0,\"estimator\":\"exact\"}\n";

    let out = run(&["plot", "-i", "-", "-o", png], Some(b""), &[]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(out.stderr.contains("no records") && out.stderr.contains("stdin"), "{}", out.stderr);

    let bad = format!("{record}{record}{{\"window\":\"minute\"\n");
    let out = run(&["plot", "-i", "-", "-o", png], Some(bad.as_bytes()), &[]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(out.stderr.contains("line 3 is not a kuniq record"), "{}", out.stderr);

    let frame = "{\"uid\":\"a\",\"ts\":1468244384}\n";
    let out = run(&["plot", "-i", "-", "-o", png], Some(frame.as_bytes()), &[]);
    assert_eq!(out.code, Some(1));
    assert!(out.stderr.contains("line 1 is not a kuniq record: no \"window\" field"), "{}", out.stderr);

    let out = run(&["plot", "-i", "-", "-o", png, "--window", "day"], Some(record.as_bytes()), &[]);
    assert_eq!(out.code, Some(1));
    assert!(out.stderr.contains("no 'day' records") && out.stderr.contains("minute"), "{}", out.stderr);
    assert!(!Path::new(png).exists(), "no picture is written on an error");

    let missing = dir.path().join("missing.jsonl");
    let out = run(&["plot", "-i", missing.to_str().unwrap(), "-o", png], None, &[]);
    assert_eq!(out.code, Some(1));
    assert!(out.stderr.contains("cannot read input") && out.stderr.contains("missing.jsonl"), "{}", out.stderr);

    let unwritable = dir.path().join("no-such-dir").join("out.png");
    let out = run(&["plot", "-i", "-", "-o", unwritable.to_str().unwrap()], Some(record.as_bytes()), &[]);
    assert_eq!(out.code, Some(1));
    assert!(out.stderr.contains("cannot write") && out.stderr.contains("no-such-dir"), "{}", out.stderr);

    // Usage errors: exit 2.
    for args in [
        &["plot", "-i", "-", "-o", png, "--width", "10"][..],
        &["plot", "-i", "-", "-o", png, "--window", "fortnight"],
        &["plot", "-i", "-"],
        &["plot", "-o", png],
        &["plot", "-t", "uniques", "-o", png],
        &["plot", "-i", "-", "-t", "uniques", "-o", png],
    ] {
        let out = run(args, Some(record.as_bytes()), &[]);
        assert_eq!(out.code, Some(2), "{args:?}: {}", out.stderr);
    }
    let out = run(&["plot", "-i", "-", "-o", png, "--height", "5"], Some(record.as_bytes()), &[]);
    assert!(out.stderr.contains("--height must be between"), "{}", out.stderr);

    // Brokers in the environment do not stand in the way of an input file.
    let out = run(&["plot", "-i", "-", "-o", "-"], Some(record.as_bytes()), &[("KUNIQ_BROKERS", "127.0.0.1:1")]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stdout.starts_with(b"\x89PNG"));

    let help = run(&["plot", "--help"], None, &[]);
    assert_eq!(help.code, Some(0));
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in
        ["--input", "--brokers", "--topic", "-X", "--config-file", "--output", "--window", "--width", "--height"]
    {
        assert!(help.contains(flag), "plot --help names {flag}:\n{help}");
    }
}

#[test]
fn an_output_topic_gives_the_same_picture_as_the_records_on_stdout() {
    let broker = ApacheKafka::shared();
    let (topic, uniques) = (unique("frames"), unique("uniques"));
    broker.create_topic(&topic, 2);
    broker.create_topic(&uniques, 1);
    let dir = TempDir::new().unwrap();
    let frames = dir.path().join("frames.jsonl");
    let frames = frames.to_str().unwrap();
    kuniq_ok(&["gen", "-o", frames, "-c", "6000", "-r", "100", "-n", "2000", "-d", "30", "-p", "10", "-s", "9"], None);
    kuniq_ok(&["produce", "-b", &broker.addr, "-t", &topic, "-i", frames, "--progress", "never"], None);
    let count = ["count", "-b", &broker.addr, "-t", &topic, "--offset", "beginning", "-e", "--summary", "none"];
    let stdout = kuniq_ok(&[&count[..], &["-G", &unique("to-stdout")]].concat(), None);
    kuniq_ok(&[&count[..], &["-G", &unique("to-topic"), "-o", &uniques]].concat(), None);

    let from_file = kuniq_ok(&["plot", "-i", "-", "-o", "-"], Some(&stdout));
    let from_topic = kuniq_ok(&["plot", "-b", &broker.addr, "-t", &uniques, "-X", "client.id=plot", "-o", "-"], None);
    assert!(Picture::decode(&from_topic).count(LINE) > 1000);
    assert!(from_file == from_topic, "the topic's picture differs from the records' picture");

    let out = run(&["plot", "-b", &broker.addr, "-t", "no-such-topic", "-o", "-"], None, &[]);
    assert_eq!(out.code, Some(1));
    assert!(out.stderr.contains("no-such-topic"), "{}", out.stderr);
}

#[test]
fn many_windows_draw_a_thin_line_inside_the_chart_and_ticks_for_revisions() {
    // 3000 minutes, values zigzagging, every 7th minute revised.
    let mut text = String::new();
    for i in 0..3000u64 {
        let start = 1_468_244_340 + 60 * i;
        let users = 40_000 + (i * 7919) % 10_000;
        let record = |users: u64, revision: u64| {
            format!(
                "{{\"window\":\"minute\",\"start\":{start},\"end\":{},\"unique_users\":{users},\"frames\":{users},\"revision\":{revision},\"estimator\":\"exact\"}}\n",
                start + 60
            )
        };
        text.push_str(&record(users - 300, 0));
        if i % 7 == 0 {
            text.push_str(&record(users, 1));
        }
    }
    let picture = Picture::decode(&kuniq_ok(&["plot", "-i", "-", "-o", "-"], Some(text.as_bytes())));
    let (left, right) = picture.columns(LINE);
    assert!(left < 300 && right > 1300, "line spans columns {left}..{right}");
    // Nothing of the data reaches into the title (the top 64 rows).
    let title_rows = &picture.rgb[..(picture.width * 64 * 3) as usize];
    assert!(!title_rows.chunks_exact(3).any(|px| px == LINE || px == REVISED), "the line leaves the chart");
    // Revised minutes are ticks on the time axis, in the bottom quarter.
    let bottom = &picture.rgb[(picture.width * (picture.height * 3 / 4) * 3) as usize..];
    let ticks = bottom.chunks_exact(3).filter(|px| *px == REVISED).count();
    assert!(ticks > 300 && ticks == picture.count(REVISED), "revision ticks: {ticks}");
}
