//! Secrets given to kuniq (`-X sasl.password=...`, or in a `-F` file) never
//! appear in what it prints, whatever goes wrong: a bad property next to
//! them, a bad flag, a secret typed without `=`, a client librdkafka cannot
//! create, a broker that cannot be reached. Each case runs the real binary
//! and searches its stdout and stderr for the secret.

mod common;

use std::path::Path;
use std::time::Duration;

use common::cli::run_bounded as run;
use tempfile::TempDir;

/// The secret every case hides; also searched for in parts, in case a
/// message cuts or quotes it.
const SECRET: &str = "hunter2-SECRET";

/// Nothing listens on port 1.
const UNREACHABLE: &str = "127.0.0.1:1";

/// Fails unless kuniq failed with `code`, said `expected` on stderr, and
/// printed the secret nowhere.
fn assert_fails_without_secret(args: &[&str], code: i32, expected: &str) -> String {
    let (output, _) = run(args, Duration::from_secs(20));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    for text in [&stdout, &stderr] {
        assert!(!text.contains(SECRET) && !text.contains("hunter2"), "secret printed by {args:?}:\n{text}");
    }
    assert_eq!(output.status.code(), Some(code), "{args:?}: stderr:\n{stderr}");
    assert!(stderr.contains(expected), "{args:?}: expected '{expected}' on stderr:\n{stderr}");
    stderr.into_owned()
}

fn secret_file(dir: &Path, extra: &str) -> String {
    let path = dir.join("client.properties");
    std::fs::write(&path, format!("# test\nsecurity.protocol=SASL_PLAINTEXT\nsasl.password={SECRET}\n{extra}"))
        .unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn a_bad_property_next_to_a_secret_does_not_show_it() {
    let secret = format!("sasl.password={SECRET}");
    for command in [["count", "-e"], ["produce", "-i"], ["consume", "-e"]] {
        let mut args = vec![command[0], "-b", UNREACHABLE, "-t", "frames", command[1]];
        if command[1] == "-i" {
            args.push("/dev/null");
        }
        args.extend(["-X", &secret, "-X", "socket.timeout.ms=soon"]);
        let stderr = assert_fails_without_secret(&args, 2, "socket.timeout.ms");
        assert!(stderr.contains("refused property"), "{stderr}");
    }
}

#[test]
fn a_bad_flag_next_to_a_secret_does_not_show_it() {
    let secret = format!("sasl.password={SECRET}");
    assert_fails_without_secret(
        &["count", "-b", UNREACHABLE, "-t", "frames", "-X", &secret, "--no-such-flag"],
        2,
        "--no-such-flag",
    );
    assert_fails_without_secret(&["count", "-b", UNREACHABLE, "-X", &secret, "--batch-size", "many"], 2, "many");
}

#[test]
fn a_secret_typed_without_equals_is_not_shown() {
    // The parser takes `sasl.password` as the -X value and complains about
    // an unexpected argument: the secret.
    let stderr = assert_fails_without_secret(
        &["count", "-b", UNREACHABLE, "-t", "x", "-X", "sasl.password", SECRET],
        2,
        "error",
    );
    assert!(stderr.contains("[redacted]"), "{stderr}");
    assert_fails_without_secret(&["count", "-b", UNREACHABLE, "-t", "x", "-X", SECRET], 2, "not shown");
}

#[test]
fn secrets_in_a_config_file_are_not_shown() {
    let dir = TempDir::new().unwrap();
    let file = secret_file(dir.path(), "socket.timeout.ms=soon\n");
    assert_fails_without_secret(
        &["count", "-b", UNREACHABLE, "-t", "frames", "-e", "-F", &file],
        2,
        "socket.timeout.ms",
    );
    // A line that is not key=value is named by its number only.
    let bad = dir.path().join("bad.properties");
    std::fs::write(&bad, format!("client.id=kuniq\n{SECRET}\n")).unwrap();
    assert_fails_without_secret(&["consume", "-b", UNREACHABLE, "-t", "x", "-F", bad.to_str().unwrap()], 2, "line 2");
}

#[test]
fn a_config_file_reaches_librdkafka_and_x_wins_over_it() {
    let dir = TempDir::new().unwrap();
    // The file's bad value is overridden by -X, so this run gets past the
    // configuration and fails on the next property only the file has.
    let file = secret_file(dir.path(), "socket.timeout.ms=soon\nmessage.max.bytes=tiny\n");
    assert_fails_without_secret(
        &["produce", "-b", UNREACHABLE, "-t", "x", "-i", "/dev/null", "-F", &file, "-X", "socket.timeout.ms=1000"],
        2,
        "message.max.bytes",
    );
}

#[test]
#[cfg(feature = "tls")]
fn a_client_that_cannot_be_created_does_not_show_the_secret() {
    let secret = format!("sasl.password={SECRET}");
    let key_secret = format!("ssl.key.password={SECRET}");
    let args = [
        "count",
        "-b",
        UNREACHABLE,
        "-t",
        "frames",
        "-e",
        "-X",
        "security.protocol=SASL_SSL",
        "-X",
        "sasl.mechanism=SCRAM-SHA-512",
        "-X",
        "sasl.username=kuniq",
        "-X",
        "ssl.ca.location=/nonexistent/ca.pem",
        "-X",
        &secret,
        "-X",
        &key_secret,
    ];
    assert_fails_without_secret(&args, 1, "ssl.ca.location");
}

#[test]
fn an_unreachable_broker_does_not_show_the_secret() {
    let dir = TempDir::new().unwrap();
    let file = secret_file(dir.path(), "sasl.mechanism=PLAIN\nsasl.username=kuniq\n");
    let secret = format!("sasl.password={SECRET}");
    // librdkafka's own log (debug=all) is not printed either.
    let args =
        ["count", "-b", UNREACHABLE, "-t", "frames", "-e", "--connect-timeout", "3s", "-F", &file, "-X", &secret]
            .into_iter()
            .chain(["-X", "debug=all"])
            .collect::<Vec<_>>();
    let (output, elapsed) = run(&args, Duration::from_secs(60));
    let stderr = String::from_utf8_lossy(&output.stderr);
    for text in [String::from_utf8_lossy(&output.stdout), stderr.clone()] {
        assert!(!text.contains("hunter2"), "secret printed:\n{text}");
    }
    assert_eq!(output.status.code(), Some(1), "kuniq did not fail within 60 s ({elapsed:?}): {stderr}");
    assert!(stderr.contains(UNREACHABLE), "{stderr}");
}
