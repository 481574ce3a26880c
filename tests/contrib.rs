//! `contrib/`: the systemd unit, its environment file and the Kafka
//! properties example stay in step with the binary. Every flag they pass
//! must exist in `kuniq count --help`, every variable the unit uses must be
//! defined by the environment file, the unit must keep its restart, stop,
//! memory and hardening settings, and librdkafka must accept every property
//! the example shows. No broker and no systemd are needed; when
//! `systemd-analyze` is installed, the unit is also verified with it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const KUNIQ: &str = env!("CARGO_BIN_EXE_kuniq");
const UNIT: &str = "contrib/kuniq.service";
const ENV: &str = "contrib/kuniq.env.example";
const PROPERTIES: &str = "contrib/kafka.properties.example";

/// The variable systemd sets for `LoadCredential=`; the environment file
/// does not define it.
const SYSTEMD_CREDENTIALS: &str = "CREDENTIALS_DIRECTORY";

/// Nothing listens on port 1.
const UNREACHABLE: &str = "127.0.0.1:1";

fn path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(path(relative)).unwrap_or_else(|e| panic!("reading {relative}: {e}"))
}

/// A unit file's settings by section: comments dropped, continuation lines
/// (a trailing backslash) joined, repeated keys kept in order.
fn unit_settings(text: &str) -> BTreeMap<String, Vec<(String, String)>> {
    let mut sections: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    let mut section = String::new();
    let mut logical = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if logical.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';')) {
            continue;
        }
        if let Some(continued) = trimmed.strip_suffix('\\') {
            logical.push_str(continued);
            logical.push(' ');
            continue;
        }
        logical.push_str(trimmed);
        let entry = std::mem::take(&mut logical);
        if let Some(name) = entry.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            section = name.to_string();
            sections.entry(section.clone()).or_default();
        } else {
            let (key, value) = entry.split_once('=').unwrap_or_else(|| panic!("{UNIT}: not key=value: {entry}"));
            assert!(!section.is_empty(), "{UNIT}: {key} outside a section");
            sections.get_mut(&section).unwrap().push((key.trim().to_string(), value.trim().to_string()));
        }
    }
    assert!(logical.is_empty(), "{UNIT}: ends in a continuation line");
    sections
}

/// The last value of `key` in `section` (systemd: a later one wins).
fn setting<'a>(unit: &'a BTreeMap<String, Vec<(String, String)>>, section: &str, key: &str) -> Option<&'a str> {
    unit.get(section)?.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn required<'a>(unit: &'a BTreeMap<String, Vec<(String, String)>>, section: &str, key: &str) -> &'a str {
    setting(unit, section, key).unwrap_or_else(|| panic!("{UNIT}: [{section}] needs {key}="))
}

/// An environment file's assignments: (name, value, commented out).
/// Commented-out lines count when they look like `#NAME=value`.
fn env_assignments(text: &str) -> Vec<(String, String, bool)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        let (body, commented) = match line.strip_prefix('#') {
            Some(rest) => (rest, true),
            None => (line, false),
        };
        let Some((name, value)) = body.split_once('=') else {
            assert!(commented || body.is_empty(), "{ENV}: not NAME=value: {line}");
            continue;
        };
        let is_name = !name.is_empty()
            && name.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            && !name.starts_with(|c: char| c.is_ascii_digit());
        if is_name {
            out.push((name.to_string(), value.trim().to_string(), commented));
        } else {
            assert!(commented, "{ENV}: not NAME=value: {line}");
        }
    }
    out
}

/// Variables a command line or value refers to: `${NAME}` and `$NAME`.
fn variables(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        rest = &rest[at + 1..];
        let (name, after) = match rest.strip_prefix('{') {
            Some(braced) => {
                let end = braced.find('}').expect("an unclosed ${");
                (&braced[..end], &braced[end + 1..])
            }
            None => {
                let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
                (&rest[..end], &rest[end..])
            }
        };
        assert!(!name.is_empty(), "a lone $ in: {text}");
        found.insert(name.to_string());
        rest = after;
    }
    found
}

/// The flags `kuniq count --help` lists (`-b`, `--brokers`, ...) and the
/// environment variables it reads (`[env: KUNIQ_BROKERS=]`).
fn count_help() -> (BTreeSet<String>, BTreeSet<String>) {
    help_of("count")
}

/// [`count_help`] for any subcommand.
fn help_of(command: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let output = Command::new(KUNIQ).args([command, "--help"]).output().expect("running kuniq --help");
    assert!(output.status.success(), "kuniq {command} --help: {:?}", output.status);
    let help = String::from_utf8(output.stdout).expect("help is UTF-8");
    let mut flags = BTreeSet::new();
    let mut env = BTreeSet::new();
    for line in help.lines() {
        let line = line.trim();
        if line.starts_with('-') {
            for part in line.split(", ") {
                let flag = part.split([' ', '=', '<']).next().unwrap_or_default();
                if flag.starts_with('-') {
                    flags.insert(flag.to_string());
                }
            }
        }
        if let Some(at) = line.find("[env: ") {
            let name = line[at + 6..].split('=').next().unwrap_or_default();
            env.insert(name.to_string());
        }
    }
    assert!(flags.contains("--brokers") && flags.contains("-b"), "no flags found in:\n{help}");
    assert!(env.contains("KUNIQ_BROKERS"), "no env vars found in:\n{help}");
    (flags, env)
}

/// The flags among the words of a command line (`--offset=end` gives
/// `--offset`).
fn flags_in(words: &[&str]) -> Vec<String> {
    words
        .iter()
        .filter(|w| w.starts_with('-') && **w != "-" && **w != "--")
        .map(|w| w.split('=').next().unwrap_or(w).to_string())
        .collect()
}

/// Seconds in a systemd time span such as `150s`, `2min 30s` or `90`.
fn seconds(span: &str) -> u64 {
    span.split_whitespace()
        .map(|part| {
            let digits = part.find(|c: char| !c.is_ascii_digit()).unwrap_or(part.len());
            let n: u64 = part[..digits].parse().unwrap_or_else(|_| panic!("a time span: {span}"));
            match &part[digits..] {
                "" | "s" | "sec" => n,
                "m" | "min" => n * 60,
                "h" => n * 3600,
                unit => panic!("time unit {unit} in {span}"),
            }
        })
        .sum()
}

/// Bytes in a systemd size such as `768M` or `1G` (base 1024).
fn bytes(size: &str) -> u64 {
    let digits = size.find(|c: char| !c.is_ascii_digit()).unwrap_or(size.len());
    let n: u64 = size[..digits].parse().unwrap_or_else(|_| panic!("a size: {size}"));
    n * match &size[digits..] {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        unit => panic!("size unit {unit} in {size}"),
    }
}

#[test]
fn unit_has_restart_stop_memory_and_hardening_settings() {
    let unit = unit_settings(&read(UNIT));
    for section in ["Unit", "Service", "Install"] {
        assert!(unit.contains_key(section), "{UNIT}: no [{section}]");
    }

    // Start limits belong in [Unit]; in [Service] systemd ignores them.
    assert!(seconds(required(&unit, "Unit", "StartLimitIntervalSec")) > 0);
    let burst: u64 = required(&unit, "Unit", "StartLimitBurst").parse().expect("StartLimitBurst is a number");
    assert!(burst >= 3, "StartLimitBurst={burst}");
    assert!(
        required(&unit, "Unit", "After").split_whitespace().any(|u| u == "network-online.target"),
        "{UNIT}: start after network-online.target"
    );

    assert_eq!(required(&unit, "Service", "EnvironmentFile"), "/etc/kuniq/kuniq.env");
    let restart = required(&unit, "Service", "Restart");
    assert!(["on-failure", "always"].contains(&restart), "Restart={restart}");
    assert!(seconds(required(&unit, "Service", "RestartSec")) >= 1, "RestartSec too short for a restart loop");
    // Exit status 2 is a usage error: restarting cannot fix it.
    assert!(
        required(&unit, "Service", "RestartPreventExitStatus").split_whitespace().any(|s| s == "2"),
        "{UNIT}: RestartPreventExitStatus should hold 2 (usage errors)"
    );

    // SIGTERM: kuniq acknowledges its records, saves its state and exits 0;
    // each of its two waits on the brokers gives up after 60 s.
    assert_eq!(required(&unit, "Service", "KillSignal"), "SIGTERM");
    let stop = seconds(required(&unit, "Service", "TimeoutStopSec"));
    assert!(stop >= 120, "TimeoutStopSec={stop}s is shorter than kuniq's two 60 s waits at shutdown");

    let high = bytes(required(&unit, "Service", "MemoryHigh"));
    let max = bytes(required(&unit, "Service", "MemoryMax"));
    assert!(high < max, "MemoryHigh ({high}) must be below MemoryMax ({max})");
    let nofile: u64 = required(&unit, "Service", "LimitNOFILE").parse().expect("LimitNOFILE is a number");
    assert!(nofile >= 4096, "LimitNOFILE={nofile}");

    let dynamic = setting(&unit, "Service", "DynamicUser") == Some("yes");
    assert!(dynamic || setting(&unit, "Service", "User").is_some(), "{UNIT}: DynamicUser=yes or User=");
    for (key, value) in [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("CapabilityBoundingSet", ""),
    ] {
        assert_eq!(required(&unit, "Service", key), value, "{UNIT}: {key}");
    }
    let families: BTreeSet<&str> = required(&unit, "Service", "RestrictAddressFamilies").split_whitespace().collect();
    assert_eq!(families, BTreeSet::from(["AF_INET", "AF_INET6", "AF_UNIX"]));
    // Workers pin themselves with sched_setaffinity, in @resources.
    for filter in unit["Service"].iter().filter(|(k, _)| k == "SystemCallFilter") {
        assert!(!filter.1.contains("~@resources"), "{UNIT}: SystemCallFilter must allow @resources (pinning)");
    }

    assert_eq!(required(&unit, "Install", "WantedBy"), "multi-user.target");
}

#[test]
fn unit_and_env_example_pass_only_flags_kuniq_count_has() {
    let (flags, _) = count_help();
    let unit = unit_settings(&read(UNIT));
    let exec = required(&unit, "Service", "ExecStart");
    assert!(!exec.contains(['"', '\'']), "{UNIT}: quotes in ExecStart are not checked here");
    let words: Vec<&str> = exec.split_whitespace().collect();
    assert_eq!(words[..2], ["/usr/local/bin/kuniq", "count"], "{UNIT}: ExecStart runs kuniq count");
    let used = flags_in(&words);
    for flag in ["-b", "-t", "-G", "-o", "-F"] {
        assert!(used.iter().any(|f| f == flag), "{UNIT}: ExecStart should pass {flag}");
    }
    let unknown: Vec<&String> = used.iter().filter(|f| !flags.contains(*f)).collect();
    assert!(unknown.is_empty(), "{UNIT}: flags not in `kuniq count --help`: {unknown:?}");

    // The secrets file is the credential systemd hands over.
    let credential = required(&unit, "Service", "LoadCredential");
    let (name, source) = credential.split_once(':').expect("LoadCredential=NAME:PATH");
    assert_eq!(source, "/etc/kuniq/kafka.properties");
    let config = words.iter().position(|w| *w == "-F").map(|i| words[i + 1]);
    let loaded = format!("${{{SYSTEMD_CREDENTIALS}}}/{name}");
    assert_eq!(config, Some(loaded.as_str()), "{UNIT}: -F reads the loaded credential");

    // Flags in KUNIQ_ARGS, set or shown commented out, exist too.
    for (name, value, _) in env_assignments(&read(ENV)) {
        if name == "KUNIQ_ARGS" {
            let words: Vec<&str> = value.split_whitespace().collect();
            let unknown: Vec<String> = flags_in(&words).into_iter().filter(|f| !flags.contains(f)).collect();
            assert!(unknown.is_empty(), "{ENV}: KUNIQ_ARGS={value}: flags not in `kuniq count --help`: {unknown:?}");
        }
    }
}

#[test]
fn env_example_defines_every_variable_the_unit_uses() {
    let (_, read_by_kuniq) = count_help();
    let unit = unit_settings(&read(UNIT));
    let mut used: BTreeSet<String> = unit.values().flatten().flat_map(|(_, value)| variables(value)).collect();
    assert!(used.remove(SYSTEMD_CREDENTIALS), "{UNIT}: the secrets should come from LoadCredential=");
    assert!(used.contains("KUNIQ_BROKERS"), "{UNIT}: no variables found");

    let assignments = env_assignments(&read(ENV));
    let set: BTreeMap<&str, &str> =
        assignments.iter().filter(|(_, _, commented)| !commented).map(|(n, v, _)| (n.as_str(), v.as_str())).collect();
    let missing: Vec<&String> = used.iter().filter(|v| !set.contains_key(v.as_str())).collect();
    assert!(missing.is_empty(), "{ENV}: does not set {missing:?}, which {UNIT} uses");

    for (name, value) in &set {
        assert!(
            used.contains(*name) || read_by_kuniq.contains(*name),
            "{ENV}: sets {name}, which neither {UNIT} nor kuniq reads"
        );
        // kuniq takes an empty KUNIQ_WORKERS= as a bad value (exit 2).
        assert!(!(read_by_kuniq.contains(*name) && value.is_empty()), "{ENV}: {name} is set but empty");
        assert!(!value.is_empty() || *name == "KUNIQ_ARGS", "{ENV}: {name} is empty");
    }
    for (name, _, _) in assignments.iter().filter(|(_, _, commented)| *commented) {
        assert!(
            used.contains(name) || read_by_kuniq.contains(name),
            "{ENV}: shows {name}, which neither {UNIT} nor kuniq reads"
        );
    }
}

/// Runs `kuniq count` against a broker that does not answer, with `config`
/// as its -F file.
fn count_unreachable(config: &Path) -> Output {
    let started = Instant::now();
    let child = Command::new(KUNIQ)
        .args(["count", "-b", UNREACHABLE, "-t", "frames", "-G", "contrib-test", "--connect-timeout", "1s"])
        .args(["--summary", "none", "--progress", "never", "-F"])
        .arg(config)
        .env_remove("KUNIQ_CONFIG_FILE")
        .env_remove("KUNIQ_BROKERS")
        .env_remove("KUNIQ_WORKERS")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running kuniq");
    let output = child.wait_with_output().expect("waiting for kuniq");
    assert!(started.elapsed() < Duration::from_secs(60), "kuniq took {:?}", started.elapsed());
    output
}

#[test]
fn librdkafka_accepts_the_properties_example() {
    let example = read(PROPERTIES);
    // As shipped (comments only: plaintext brokers), and with every
    // `#key=value` line it shows switched on, except files that exist only
    // on a configured node.
    let shown: String = example
        .lines()
        .filter_map(|line| line.strip_prefix('#'))
        .filter(|line| {
            let key = line.split('=').next().unwrap_or_default();
            line.contains('=') && !key.is_empty() && !key.contains(' ') && !key.ends_with(".location")
        })
        .map(|line| format!("{line}\n"))
        .collect();
    assert!(shown.contains("sasl.password="), "{PROPERTIES}: the SASL example is missing");
    let dir = tempfile::tempdir().expect("a temporary directory");
    for (name, text) in [("as-shipped.properties", example.clone()), ("switched-on.properties", shown)] {
        let file = dir.path().join(name);
        std::fs::write(&file, &text).expect("writing the properties");
        let output = count_unreachable(&file);
        let stderr = String::from_utf8_lossy(&output.stderr);
        // 2 would be a bad property; 1 is the broker that does not answer.
        assert_eq!(output.status.code(), Some(1), "{name}:\n{text}\nkuniq said:\n{stderr}");
        assert!(stderr.contains("cannot reach the Kafka brokers"), "{name}: kuniq said:\n{stderr}");
        assert!(!stderr.contains("CHANGE-ME"), "{name}: the password was printed:\n{stderr}");
    }
}

#[test]
fn systemd_analyze_verify_accepts_the_unit() {
    let found = Command::new("systemd-analyze").arg("--version").stdout(Stdio::null()).status();
    if !found.is_ok_and(|s| s.success()) {
        eprintln!("systemd-analyze is not installed: the unit's syntax was checked by the other tests only");
        return;
    }
    // The unit as installed, but running the binary under test.
    let dir = tempfile::tempdir().expect("a temporary directory");
    let unit = read(UNIT).replace("/usr/local/bin/kuniq", KUNIQ);
    let file = dir.path().join("kuniq.service");
    std::fs::write(&file, unit).expect("writing the unit");
    let output = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&file)
        .env("SYSTEMD_LOG_COLOR", "0")
        .output()
        .expect("running systemd-analyze verify");
    let said = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    // Complaints about the unit name its file; other units on the machine
    // are not ours to judge.
    let ours: Vec<&str> = said.lines().filter(|l| l.contains("kuniq.service")).collect();
    assert!(ours.is_empty() && output.status.success(), "systemd-analyze verify {}:\n{said}", file.display());
}

/// The scale-out units: each runs its stage with flags that stage has,
/// reads the secrets from the loaded credential, and finds every variable
/// it uses in the scale-out environment example; the window flags reach
/// both stages alike.
#[test]
fn scale_out_units_pass_only_flags_their_stage_has() {
    const SCALE_ENV: &str = "contrib/kuniq-scale.env.example";
    let defined: BTreeSet<String> = env_assignments(&read(SCALE_ENV)).into_iter().map(|(n, _, _)| n).collect();
    for (file, command, needed) in [
        ("contrib/kuniq-worker.service", "count", &["-b", "-t", "-G", "--partials-topic", "-F"][..]),
        ("contrib/kuniq-merge.service", "merge", &["-b", "--partials-topic", "-o", "-F"][..]),
    ] {
        let (flags, _) = help_of(command);
        let text = read(file);
        let unit = unit_settings(&text);
        let exec = required(&unit, "Service", "ExecStart");
        let words: Vec<&str> = exec.split_whitespace().collect();
        assert_eq!(words[..2], ["/usr/local/bin/kuniq", command], "{file}");
        let used = flags_in(&words);
        for flag in needed {
            assert!(used.iter().any(|f| f == flag), "{file}: ExecStart should pass {flag}");
        }
        let unknown: Vec<&String> = used.iter().filter(|f| !flags.contains(*f)).collect();
        assert!(unknown.is_empty(), "{file}: flags not in `kuniq {command} --help`: {unknown:?}");
        assert!(exec.contains("$KUNIQ_WINDOW_ARGS"), "{file}: both stages take the same window flags");
        assert_eq!(required(&unit, "Service", "EnvironmentFile"), "/etc/kuniq/kuniq-scale.env");
        let missing: Vec<String> =
            variables(&text).into_iter().filter(|v| !defined.contains(v) && v != SYSTEMD_CREDENTIALS).collect();
        assert!(missing.is_empty(), "{file}: variables {SCALE_ENV} does not define: {missing:?}");
    }
    for (name, value, _) in env_assignments(&read(SCALE_ENV)) {
        if name == "KUNIQ_WINDOW_ARGS" {
            let words: Vec<&str> = value.split_whitespace().collect();
            for command in ["count", "merge"] {
                let (flags, _) = help_of(command);
                let unknown: Vec<String> = flags_in(&words).into_iter().filter(|f| !flags.contains(f)).collect();
                assert!(unknown.is_empty(), "{SCALE_ENV}: {value}: not flags of kuniq {command}: {unknown:?}");
            }
        }
    }
}
