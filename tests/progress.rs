//! Progress and logs on stderr: status lines off a terminal at
//! `--status-interval`, `--log-format json` turning every diagnostic line
//! into one JSON object, and the progress bar on a terminal (through
//! `script`, which gives kuniq a pseudo-terminal).

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

const KUNIQ: &str = env!("CARGO_BIN_EXE_kuniq");

/// Frames of `minutes` minutes from 2016-07-11T13:40:00Z, 20 a second.
fn frames(minutes: u64) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..minutes * 60 * 20 {
        writeln!(out, r#"{{"uid":"u{}","ts":{}}}"#, i % 97, 1_468_244_400 + i / 20).unwrap();
    }
    out
}

/// Runs `kuniq args` with the frames on stdin in two halves 1.5 s apart
/// (progress shows only in runs longer than a second); returns stderr.
fn run_slowly(args: &[&str]) -> String {
    let mut child = Command::new(KUNIQ)
        .args(args)
        .env_remove("KUNIQ_LOG_FORMAT")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting kuniq");
    let input = frames(4);
    let (first, second) = input.split_at(input.len() / 2);
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(first).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    stdin.write_all(second).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "kuniq {args:?} failed:\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

#[test]
fn status_lines_off_a_terminal_at_the_status_interval() {
    let stderr = run_slowly(&["count", "-i", "-", "--workers", "1", "--status-interval", "100ms"]);
    let status: Vec<&str> = stderr.lines().filter(|l| l.contains(" frames/s over the last ")).collect();
    assert!(!status.is_empty(), "no status line:\n{stderr}");
    for line in &status {
        // scripts/soak.sh reads `kuniq: N MB, F frames, ...`.
        let rest = line.strip_prefix("kuniq: ").unwrap_or_else(|| panic!("not a kuniq line: {line}"));
        let (mb, rest) = rest.split_once(" MB, ").unwrap_or_else(|| panic!("no MB: {line}"));
        let (frames, _) = rest.split_once(" frames, ").unwrap_or_else(|| panic!("no frames: {line}"));
        assert!(mb.parse::<u64>().is_ok() && frames.parse::<u64>().unwrap() > 0, "{line}");
        assert!(line.contains("event time 2016-07-11T13:4") && line.contains("open windows"), "{line}");
    }
    // The summary still ends stderr, as text.
    assert!(stderr.lines().last().unwrap().contains("open windows at most"), "{stderr}");

    let quiet = run_slowly(&["count", "-i", "-", "--status-interval", "100ms", "--progress", "never"]);
    assert!(!quiet.contains("frames/s over the last"), "--progress never shows progress:\n{quiet}");
}

#[test]
fn log_format_json_makes_every_diagnostic_line_a_json_object() {
    let stderr = run_slowly(&[
        "--log-format",
        "json",
        "count",
        "-i",
        "-",
        "--workers",
        "1",
        "--status-interval",
        "100ms",
        "--max-open-windows",
        "1",
        "--summary",
        "none",
    ]);
    let mut levels = Vec::new();
    for line in stderr.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON object ({e}): {line}\n{stderr}"));
        let level = v["level"].as_str().unwrap_or_else(|| panic!("no level: {line}"));
        assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "no message: {line}");
        assert!(v["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')), "no UTC timestamp: {line}");
        if level == "INFO" {
            assert!(v["frames"].as_u64().is_some() && v["watermark_utc"].as_str().is_some(), "{line}");
        }
        levels.push((level.to_string(), v["message"].as_str().unwrap().to_string()));
    }
    assert!(
        levels.iter().any(|(l, m)| l == "WARN" && m.contains("--max-open-windows")),
        "no forcing warning:\n{stderr}"
    );
    assert!(levels.iter().any(|(l, _)| l == "INFO"), "no status line:\n{stderr}");

    // Errors too; the flag works after the subcommand as well.
    let out =
        Command::new(KUNIQ).args(["count", "-i", "/nonexistent/frames", "--log-format", "json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let v: serde_json::Value = serde_json::from_str(stderr.trim()).unwrap_or_else(|e| panic!("{e}: {stderr}"));
    assert_eq!(v["level"], "ERROR");
    assert!(v["message"].as_str().unwrap().contains("/nonexistent/frames"), "{stderr}");
}

/// The bar needs a terminal: `script` runs kuniq on a pseudo-terminal and
/// copies what it drew. Skipped (with a note) where `script` is missing.
#[test]
fn a_terminal_gets_a_progress_bar() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("script(1) not found: the progress bar is not tested here");
        return;
    }
    let dir = tempfile::TempDir::new().unwrap();
    let path = dir.path().join("frames.jsonl");
    std::fs::write(&path, frames(4)).unwrap();
    let path = path.to_str().unwrap();
    // Half the frames, a pause, the rest: the run lasts over a second.
    let shell =
        format!("(head -n 2400 {path}; sleep 1.5; tail -n +2401 {path}) | {KUNIQ} count -i - --workers 1 >/dev/null");
    let out = Command::new("script").args(["-qec", &shell, "/dev/null"]).env("TERM", "xterm").output().unwrap();
    let screen = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{screen}");
    assert!(screen.contains("frames/s"), "no bar drawn:\n{screen:?}");
    assert!(!screen.contains("over the last"), "a status line instead of the bar:\n{screen:?}");
    assert!(screen.contains("open windows at most"), "no summary:\n{screen:?}");
}
