//! kuniq's HLL sketches against Apache DataSketches in Python.
//!
//! The test writes sketches through the library API ([`UidSketch`]) into a
//! temporary directory, with the uids each was built from, and runs
//! `scripts/sketch_compat.py` on them (its docstring lists the checks): Python
//! must read them, build byte-identical sketches from the same uids, union
//! them with its own without adding anything, and union an hour of minute
//! sketches to kuniq's merged hour.
//!
//! The interpreter is `$KUNIQ_PYTHON` (default `python3`) and needs the PyPI
//! package `datasketches` (scripts/test.sh installs it into target/test-venv).
//! A missing interpreter or package fails the test with the command that
//! installs it: this test is never skipped.

use std::path::{Path, PathBuf};
use std::process::Command;

use kuniq::count::sketch::{DEFAULT_LG_K, UidSketch};

/// The pinned Python package the script is checked against.
const PYTHON_PACKAGE: &str = "datasketches==5.2.0";

/// A deterministic generator (splitmix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// A pool of `n` distinct uids: mostly 19 hex digits as `kuniq gen` writes,
/// one in 50 with non-ASCII characters, so the UTF-8 encoding is exercised.
fn pool(tag: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| if i % 50 == 7 { format!("usér-{tag}-ü{i}-日本") } else { format!("{tag}{i:0>17x}") }).collect()
}

/// `occurrences` uids drawn from `pool`.
fn draw(rng: &mut Rng, pool: &[String], occurrences: usize) -> Vec<String> {
    (0..occurrences).map(|_| pool[rng.below(pool.len())].clone()).collect()
}

/// Writes `<name>.uids` and `<name>.bin` (kuniq's sketch of the uids, in
/// order) and returns the sketch.
fn write_window(dir: &Path, name: &str, uids: &[String]) -> UidSketch {
    let mut sketch = UidSketch::new(DEFAULT_LG_K).expect("the default lg_k is valid");
    let mut text = String::new();
    for uid in uids {
        sketch.update(uid.as_bytes());
        text.push_str(uid);
        text.push('\n');
    }
    std::fs::write(dir.join(format!("{name}.uids")), text).expect("write uids");
    std::fs::write(dir.join(format!("{name}.bin")), sketch.to_bytes()).expect("write sketch");
    sketch
}

fn exact(uids: &[String]) -> usize {
    uids.iter().collect::<std::collections::HashSet<_>>().len()
}

fn python() -> String {
    std::env::var("KUNIQ_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/sketch_compat.py")
}

#[test]
fn python_datasketches_reads_and_unions_kuniqs_sketches() {
    let tmp = tempfile::tempdir().expect("temp dir");
    // KUNIQ_SKETCH_DIR keeps the files for a look afterwards.
    let dir = std::env::var_os("KUNIQ_SKETCH_DIR").map_or_else(|| tmp.path().to_owned(), PathBuf::from);
    std::fs::create_dir_all(&dir).expect("create KUNIQ_SKETCH_DIR");
    let mut rng = Rng(14);
    let mut windows = Vec::new();
    // List, hash set and register modes each serialize differently.
    let hll_pool = pool("h", 150_000);
    for (name, uids) in [
        ("list", draw(&mut rng, &pool("l", 6), 10)),
        ("set", draw(&mut rng, &pool("s", 2_000), 6_000)),
        ("hll", draw(&mut rng, &hll_pool, 300_000)),
    ] {
        let sketch = write_window(&dir, name, &uids);
        windows.push(serde_json::json!({ "name": name, "exact": exact(&uids), "estimate": sketch.estimate() }));
    }

    // An hour: 60 minutes of 20,000 frames from 50,000 users.
    let hour_pool = pool("m", 50_000);
    let mut hour_uids = Vec::new();
    let mut minutes = Vec::new();
    for m in 0..60 {
        let uids = draw(&mut rng, &hour_pool, 20_000);
        minutes.push(write_window(&dir, &format!("minute-{m:02}"), &uids));
        hour_uids.extend(uids);
    }
    let hour = UidSketch::union_of(DEFAULT_LG_K, &minutes);
    let mut pairwise = UidSketch::new(DEFAULT_LG_K).expect("the default lg_k is valid");
    for m in &minutes {
        pairwise.merge(m);
    }
    assert_eq!(pairwise.estimate(), hour.estimate(), "merge and union_of give the same hour");
    std::fs::write(dir.join("hour.bin"), hour.to_bytes()).expect("write hour");

    let meta = serde_json::json!({
        "lg_k": DEFAULT_LG_K,
        "hll_type": "HLL_4",
        "windows": windows,
        "hour": { "exact": exact(&hour_uids), "estimate": hour.estimate() },
    });
    std::fs::write(dir.join("meta.json"), meta.to_string()).expect("write meta");

    let python = python();
    let out = match Command::new(&python).arg(script()).arg(&dir).output() {
        Ok(out) => out,
        Err(e) => panic!(
            "cannot run the Python interpreter `{python}` ({e}). Set KUNIQ_PYTHON to a Python 3 with \
             `pip install {PYTHON_PACKAGE}`, or run scripts/test.sh, which makes target/test-venv"
        ),
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    match out.status.code() {
        Some(0) => println!("{stdout}"),
        Some(2) => panic!(
            "the Python module `datasketches` is missing for `{python}`: install it with \
             `{python} -m pip install {PYTHON_PACKAGE}` (scripts/test.sh does so in target/test-venv \
             and sets KUNIQ_PYTHON)\n{stderr}"
        ),
        _ => panic!("scripts/sketch_compat.py failed ({}):\n{stdout}\n{stderr}", out.status),
    }
}

/// Why `UidSketch::update` hashes raw bytes: the crate's generic update of a
/// `&str` hashes it through Rust's `Hash`, which appends a 0xFF byte, so it
/// would build a sketch no other DataSketches implementation builds from the
/// same strings.
#[test]
fn the_generic_str_update_would_not_be_compatible() {
    use datasketches::hll::{HllSketch, HllType};
    let uids = pool("g", 1_000);
    let mut ours = UidSketch::new(12).expect("valid lg_k");
    let mut generic = HllSketch::new(12, HllType::Hll4).expect("valid lg_k");
    for uid in &uids {
        ours.update(uid.as_bytes());
        generic.update(uid.as_str());
    }
    assert!(ours.to_bytes() != generic.serialize());
}

/// Records of `kuniq count --estimator hll --emit-sketch`: Python reads
/// every record's sketch with the record's count, unions an hour's minutes
/// to the hour's count, and its own sketch of the hour's uids adds nothing
/// to kuniq's (`scripts/sketch_records.py`); `kuniq query` over the hour
/// merges the minutes to the hour's count too.
#[test]
fn records_carry_sketches_that_python_reads_and_query_merges() {
    const HOUR: i64 = 1_468_242_000;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut rng = Rng(15);
    let users = pool("r", 50_000);
    let mut frames = String::new();
    let mut uids = String::new();
    let mut distinct = std::collections::HashSet::new();
    for m in 0..60 {
        for i in 0..20_000 {
            let uid = &users[rng.below(users.len())];
            // Non-ASCII uids go in escaped half the time: the sketch holds
            // the decoded string either way.
            let json_uid = if i % 2 == 0 { serde_json::to_string(uid).expect("a string") } else { escaped(uid) };
            frames.push_str(&format!("{{\"ts\":{},\"uid\":{json_uid}}}\n", HOUR + m * 60 + i * 60 / 20_000));
            uids.push_str(uid);
            uids.push('\n');
            distinct.insert(uid.clone());
        }
    }
    let frames_path = dir.path().join("frames.jsonl");
    let uids_path = dir.path().join("hour.uids");
    std::fs::write(&frames_path, frames).expect("write frames");
    std::fs::write(&uids_path, uids).expect("write uids");
    let out = Command::new(env!("CARGO_BIN_EXE_kuniq"))
        .args(["count", "--windows", "minute,hour", "--estimator", "hll", "--emit-sketch", "-i"])
        .arg(&frames_path)
        .output()
        .expect("run kuniq count");
    assert!(out.status.success(), "kuniq count failed: {}", String::from_utf8_lossy(&out.stderr));
    let records_path = dir.path().join("records.jsonl");
    std::fs::write(&records_path, &out.stdout).expect("write records");
    let hour: serde_json::Value = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("a record"))
        .rfind(|r| r["window"] == "hour" && r["closed"] == true)
        .expect("the hour's closing record");
    let hour_users = hour["unique_users"].as_u64().expect("a count");
    let exact = distinct.len() as u64;
    assert!(hour_users.abs_diff(exact) * 100 <= exact, "the hour's {hour_users} within 1 % of {exact}");

    let query = Command::new(env!("CARGO_BIN_EXE_kuniq"))
        .args(["query", "--from", "2016-07-11T13:00:00Z", "--to", "2016-07-11T14:00Z", "-i"])
        .arg(&records_path)
        .output()
        .expect("run kuniq query");
    assert!(query.status.success(), "kuniq query failed: {}", String::from_utf8_lossy(&query.stderr));
    let answer: serde_json::Value = serde_json::from_slice(&query.stdout).expect("one JSON answer");
    assert_eq!(answer["unique_users"], hour_users, "the hour's minutes merge to the hour: {answer}");
    assert_eq!((answer["windows"].as_u64(), answer["frames"].as_u64()), (Some(60), Some(1_200_000)));
    assert_eq!(answer["estimator"], "hll-17");

    let python = python();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/sketch_records.py");
    let out = match Command::new(&python).arg(script).arg(&records_path).arg(&uids_path).arg(exact.to_string()).output()
    {
        Ok(out) => out,
        Err(e) => panic!(
            "cannot run the Python interpreter `{python}` ({e}). Set KUNIQ_PYTHON to a Python 3 with \
             `pip install {PYTHON_PACKAGE}`, or run scripts/test.sh, which makes target/test-venv"
        ),
    };
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    match out.status.code() {
        Some(0) => println!("{stdout}"),
        Some(2) => {
            panic!("the Python module `datasketches` is missing for `{python}`: install {PYTHON_PACKAGE}\n{stderr}")
        }
        _ => panic!("scripts/sketch_records.py failed ({}):\n{stdout}\n{stderr}", out.status),
    }
}

/// `uid` as a JSON string with every non-ASCII character as a `\u` escape
/// (UTF-16 units, as JSON has them).
fn escaped(uid: &str) -> String {
    let mut out = String::from("\"");
    for unit in uid.encode_utf16() {
        match u8::try_from(unit) {
            Ok(byte) if byte.is_ascii() => out.push(char::from(byte)),
            _ => out.push_str(&format!("\\u{unit:04x}")),
        }
    }
    out.push('"');
    out
}
