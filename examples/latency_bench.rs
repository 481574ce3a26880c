//! Emission latency of a running `kuniq count`: how long after the frame that
//! pushes the watermark past a minute's end that minute's record is readable
//! on the output topic. `scripts/bench-latency.sh` starts the broker and
//! kuniq and runs this; the target (BRIEF.md) is p99 <= 100 ms.
//!
//! What it does:
//!
//! - **Produces frames live, paced**, to the input topic, round-robin over
//!   its partitions: `{"uid":"u123","ts":...,"n":FRAME_NUMBER}`, event time in order, `-F`
//!   frames per event second, event time advancing `-E` event seconds per
//!   wall second (so a minute closes every `60 / E` s of wall time). The
//!   producer has `linger.ms=0`. Each frame's send instant is taken right
//!   before it is handed to the producer; its delivery acknowledgement is
//!   timed too.
//! - **Knows which frame closes each minute**: the watermark kuniq computes
//!   is, per partition, the highest ts minus the lateness (`--lateness`,
//!   kuniq's default 5 s), and globally the minimum over partitions. The
//!   first frame after which that minimum reaches a minute's end closes the
//!   minute (kuniq emits revision 0 once the watermark is >= its end).
//! - **Reads the output topic** on another thread: a `BaseConsumer` assigned
//!   partition 0 from the beginning (no group join, no commits),
//!   `fetch.wait.max.ms=10` as every client against tansu uses, and takes
//!   the instant each `minute:<start>` record with `"revision":0` is first
//!   read.
//! - **Probes one broker hop** (optional `--probe-topic`, one partition):
//!   every `--probe-ms` (200 ms) the same producer sends a probe record that the same
//!   reader consumes, so the latency of a single produce-to-read hop through
//!   the broker, with exactly the reader's fetch settings, is known (probes
//!   sent from the first measured minute on are reported).
//!
//! Latency of a minute = instant its record is read - instant its closing
//! frame was handed to the producer ("from send"); the same from the
//! closing frame's acknowledgement ("from ack") is shown too, which leaves
//! out the input producer's own hop to the broker.
//!
//! Minutes whose closing frame was sent before the reader saw the first
//! record (kuniq still starting, reading a backlog) are start-up, not
//! measured; so are the next `--warmup` minutes. Percentiles are nearest
//! rank over the measured minutes.
//!
//! Prints a report, then one JSON line (`{"count":..,"p50_ms":..}`) for
//! scripts. Exit status: 0 when every measured minute was read (PASS or
//! FAIL of the target is in the report and the JSON), 1 when records are
//! missing or Kafka fails, 2 for usage errors.
//!
//! Usage: `cargo run --release --example latency_bench -- -b 127.0.0.1:19292 -t frames -o uniques`
//! (`--help` lists the options).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

const USAGE: &str = "\
usage: latency_bench -b BROKERS -t INPUT_TOPIC -o OUTPUT_TOPIC [options]

  -b BROKERS            bootstrap brokers
  -t TOPIC              input topic kuniq reads (frames go round-robin over its partitions)
  -o TOPIC              output topic kuniq writes (partition 0 is read from the beginning)
  --probe-topic TOPIC   one-partition topic for broker-hop probes [default: none]
  --probe-ms N          time between probes [default: 200]
  --watch-input         the reader also reads the input topic and times when each closing frame is readable
                        (a diagnosis: it doubles the fetches of the input partitions)
  -m, --minutes N       minutes to close [default: 200]
  --warmup N            measured minutes skipped after start-up [default: 5]
  -E, --event-rate R    event seconds per wall second [default: 48]
  --jitter-ms N         after each closing frame, pause a random 0..N ms [default: 500]
  -F, --frames-per-sec N  frames per event second [default: 1]
  --lateness S          kuniq's --lateness in seconds [default: 5]
  --start-ts T          event time of the first frame, rounded down to a minute [default: 1700000040]
  --fetch-wait-ms N     the reader's fetch.wait.max.ms [default: 10]
  --wait-secs N         after the last closing frame, wait this long for records [default: 10]
  --csv PATH            write one line per closed minute (instants in ms since the start)
  -h, --help            this text";

struct Args {
    brokers: String,
    input: String,
    output: String,
    probe_topic: Option<String>,
    probe_ms: u64,
    watch_input: bool,
    minutes: usize,
    warmup: usize,
    event_rate: f64,
    jitter_ms: u64,
    frames_per_sec: u64,
    lateness: i64,
    start_ts: i64,
    fetch_wait_ms: u32,
    wait_secs: u64,
    csv: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        brokers: String::new(),
        input: String::new(),
        output: String::new(),
        probe_topic: None,
        probe_ms: 200,
        watch_input: false,
        minutes: 200,
        warmup: 5,
        event_rate: 48.0,
        jitter_ms: 500,
        frames_per_sec: 1,
        lateness: 5,
        start_ts: 1_700_000_040,
        fetch_wait_ms: 10,
        wait_secs: 10,
        csv: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        fn num<T: std::str::FromStr>(name: &str, v: String) -> Result<T, String> {
            v.parse().map_err(|_| format!("{name} needs a number, not '{v}'"))
        }
        match arg.as_str() {
            "-b" | "--brokers" => a.brokers = value("-b")?,
            "-t" | "--topic" => a.input = value("-t")?,
            "-o" | "--output-topic" => a.output = value("-o")?,
            "--probe-topic" => a.probe_topic = Some(value("--probe-topic")?),
            "--probe-ms" => a.probe_ms = num("--probe-ms", value("--probe-ms")?)?,
            "--watch-input" => a.watch_input = true,
            "-m" | "--minutes" => a.minutes = num("--minutes", value("--minutes")?)?,
            "--warmup" => a.warmup = num("--warmup", value("--warmup")?)?,
            "-E" | "--event-rate" => a.event_rate = num("--event-rate", value("--event-rate")?)?,
            "--jitter-ms" => a.jitter_ms = num("--jitter-ms", value("--jitter-ms")?)?,
            "-F" | "--frames-per-sec" => a.frames_per_sec = num("--frames-per-sec", value("--frames-per-sec")?)?,
            "--lateness" => a.lateness = num("--lateness", value("--lateness")?)?,
            "--start-ts" => a.start_ts = num("--start-ts", value("--start-ts")?)?,
            "--fetch-wait-ms" => a.fetch_wait_ms = num("--fetch-wait-ms", value("--fetch-wait-ms")?)?,
            "--wait-secs" => a.wait_secs = num("--wait-secs", value("--wait-secs")?)?,
            "--csv" => a.csv = Some(value("--csv")?),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument '{other}'\n{USAGE}")),
        }
    }
    if a.brokers.is_empty() || a.input.is_empty() || a.output.is_empty() {
        return Err(format!("-b, -t and -o are required\n{USAGE}"));
    }
    if a.minutes == 0 || a.frames_per_sec == 0 || !a.event_rate.is_finite() || a.event_rate <= 0.0 || a.lateness < 0 {
        return Err("--minutes, --frames-per-sec and --event-rate must be positive, --lateness >= 0".into());
    }
    a.start_ts -= a.start_ts.rem_euclid(60);
    Ok(a)
}

/// Acknowledgement instants of the frames that close a minute, by frame
/// index (the delivery opaque is the index + 1; 0 for other frames).
#[derive(Default)]
struct Acks {
    at: Mutex<HashMap<usize, Instant>>,
    failure: Mutex<Option<String>>,
}

impl ClientContext for Acks {}

impl ProducerContext for Acks {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, opaque: usize) {
        let now = Instant::now();
        match result {
            Ok(_) if opaque > 0 => {
                self.at.lock().unwrap().insert(opaque - 1, now);
            }
            Ok(_) => {}
            Err((e, _)) => {
                self.failure.lock().unwrap().get_or_insert_with(|| e.to_string());
            }
        }
    }
}

/// What the reader saw.
#[derive(Default)]
struct Seen {
    /// Revision-0 records by minute start: first read instant and the
    /// record's `frames`.
    minutes: HashMap<i64, (Instant, u64)>,
    /// Probe records by sequence number: read instant.
    probes: HashMap<u64, Instant>,
    /// Input frames by frame number (`--watch-input`): read instant.
    inputs: HashMap<usize, Instant>,
    /// The first record of any kind read from the output topic.
    first_record: Option<Instant>,
    /// Records that were not a revision-0 minute (later revisions, other
    /// windows), and records that did not parse.
    other: u64,
    unparsed: u64,
}

fn reader(
    args: &Args,
    partitions: i32,
    seen: &Mutex<Seen>,
    stop: &AtomicBool,
    ready: &AtomicBool,
) -> Result<(), String> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &args.brokers)
        .set("group.id", "latency-bench-reader")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        .set("fetch.wait.max.ms", args.fetch_wait_ms.to_string())
        .create()
        .map_err(|e| format!("creating the reader: {e}"))?;
    let mut list = TopicPartitionList::new();
    list.add_partition_offset(&args.output, 0, Offset::Beginning).map_err(|e| e.to_string())?;
    if let Some(probe) = &args.probe_topic {
        list.add_partition_offset(probe, 0, Offset::Beginning).map_err(|e| e.to_string())?;
    }
    if args.watch_input {
        for p in 0..partitions {
            list.add_partition_offset(&args.input, p, Offset::Beginning).map_err(|e| e.to_string())?;
        }
    }
    consumer.assign(&list).map_err(|e| format!("assigning the output topic: {e}"))?;
    ready.store(true, Ordering::Release);
    while !stop.load(Ordering::Relaxed) {
        let Some(result) = consumer.poll(Duration::from_millis(50)) else { continue };
        let now = Instant::now();
        let msg = match result {
            Ok(msg) => msg,
            Err(e) => {
                eprintln!("latency_bench: reader: {e}");
                continue;
            }
        };
        let payload = msg.payload().unwrap_or_default();
        let mut seen = seen.lock().unwrap();
        if msg.topic() == args.input {
            let n = std::str::from_utf8(payload)
                .ok()
                .and_then(|s| s.split_once("\"n\":"))
                .and_then(|(_, rest)| rest.trim_end_matches('}').parse::<usize>().ok());
            match n {
                Some(n) => {
                    seen.inputs.entry(n).or_insert(now);
                }
                None => seen.unparsed += 1,
            }
            continue;
        }
        if msg.topic() != args.output {
            match std::str::from_utf8(payload).ok().and_then(|s| s.parse::<u64>().ok()) {
                Some(seq) => {
                    seen.probes.entry(seq).or_insert(now);
                }
                None => seen.unparsed += 1,
            }
            continue;
        }
        seen.first_record.get_or_insert(now);
        let key = msg.key().and_then(|k| std::str::from_utf8(k).ok()).unwrap_or("");
        let value: Option<serde_json::Value> = serde_json::from_slice(payload).ok();
        match (key.strip_prefix("minute:").and_then(|s| s.parse::<i64>().ok()), value) {
            (Some(start), Some(v)) if v["revision"].as_u64() == Some(0) => {
                let frames = v["frames"].as_u64().unwrap_or(0);
                seen.minutes.entry(start).or_insert((now, frames));
            }
            (_, Some(_)) => seen.other += 1,
            (_, None) => seen.unparsed += 1,
        }
    }
    Ok(())
}

/// One closed minute: which frame closed it and when it was sent.
struct Closer {
    start: i64,
    frame: usize,
    partition: i32,
    sent: Instant,
}

/// Nearest-rank percentile of sorted values.
fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Signed milliseconds from `a` to `b`.
fn ms_between(a: Instant, b: Instant) -> f64 {
    if b >= a { ms(b - a) } else { -ms(a - b) }
}

fn line(name: &str, v: &[f64]) -> String {
    if v.is_empty() {
        return format!("{name:<28} (none)");
    }
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    format!(
        "{name:<28} n={:<5} p50 {:7.1}  p90 {:7.1}  p99 {:7.1}  max {:7.1}  min {:7.1}  mean {:7.1} ms",
        v.len(),
        pct(v, 50.0),
        pct(v, 90.0),
        pct(v, 99.0),
        pct(v, 100.0),
        v[0],
        mean
    )
}

fn run(args: &Args) -> Result<bool, String> {
    let producer: ThreadedProducer<Acks> = ClientConfig::new()
        .set("bootstrap.servers", &args.brokers)
        .set("linger.ms", "0")
        .set("acks", "all")
        .create_with_context(Acks::default())
        .map_err(|e| format!("creating the producer: {e}"))?;
    let metadata = producer
        .client()
        .fetch_metadata(Some(&args.input), Duration::from_secs(30))
        .map_err(|e| format!("reading metadata of '{}': {e}", args.input))?;
    let partitions =
        metadata.topics().iter().find(|t| t.name() == args.input).map_or(0, |t| t.partitions().len() as i32);
    if partitions == 0 {
        return Err(format!("topic '{}' does not exist or has no partitions", args.input));
    }

    let seen = Mutex::new(Seen::default());
    let stop = AtomicBool::new(false);
    let ready = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let reader = scope.spawn(|| {
            let r = reader(args, partitions, &seen, &stop, &ready);
            ready.store(true, Ordering::Release);
            r
        });
        while !ready.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(1));
        }
        let produced = produce(args, &producer, partitions, &seen);
        stop.store(true, Ordering::Relaxed);
        let read = reader.join().map_err(|_| "the reader thread panicked".to_string())?;
        read?;
        let (closers, probes, origin) = produced?;
        report(args, partitions, &producer, &seen.lock().unwrap(), &closers, &probes, origin)
    })
}

type Produced = (Vec<Closer>, Vec<(u64, Instant)>, Instant);

fn produce(
    args: &Args,
    producer: &ThreadedProducer<Acks>,
    partitions: i32,
    seen: &Mutex<Seen>,
) -> Result<Produced, String> {
    let fps = args.frames_per_sec;
    let frame_interval = 1.0 / (args.event_rate * fps as f64);
    let mut max_ts: Vec<Option<i64>> = vec![None; partitions as usize];
    let mut next_end = args.start_ts + 60;
    let mut closers: Vec<Closer> = Vec::with_capacity(args.minutes);
    let mut probes: Vec<(u64, Instant)> = Vec::new();
    let probe_every = Duration::from_millis(args.probe_ms.max(1));
    let origin = Instant::now();
    let mut next_probe = origin;
    let mut payload = String::with_capacity(64);
    let mut behind_max = Duration::ZERO;
    // Pauses after closing frames (see `--jitter-ms`), accumulated.
    let mut paused = Duration::ZERO;
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut frame = 0usize;
    while closers.len() < args.minutes {
        let ts = args.start_ts + (frame as u64 / fps) as i64;
        let partition = (frame % partitions as usize) as i32;
        let due = origin + paused + Duration::from_secs_f64(frame as f64 * frame_interval);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        } else {
            behind_max = behind_max.max(now - due);
        }
        if let Some(probe) = &args.probe_topic
            && Instant::now() >= next_probe
        {
            let seq = probes.len() as u64;
            let text = seq.to_string();
            let sent = Instant::now();
            send(producer, BaseRecord::with_opaque_to(probe, 0).partition(0).payload(text.as_bytes()))?;
            probes.push((seq, sent));
            next_probe += probe_every;
        }

        // Does this frame close minutes? Decided before it is sent, so the
        // delivery callback knows to time its acknowledgement.
        let slot = &mut max_ts[partition as usize];
        *slot = Some(slot.map_or(ts, |m| m.max(ts)));
        let watermark = max_ts.iter().try_fold(i64::MAX, |acc, m| m.map(|m| acc.min(m - args.lateness)));
        let closes = watermark.is_some_and(|w| w >= next_end);

        payload.clear();
        let _ = write!(
            payload,
            "{{\"uid\":\"u{}\",\"ts\":{ts},\"n\":{frame}}}",
            (frame as u64).wrapping_mul(7919) % 100_000
        );
        let opaque = if closes { frame + 1 } else { 0 };
        let sent = Instant::now();
        send(
            producer,
            BaseRecord::with_opaque_to(&args.input, opaque).partition(partition).payload(payload.as_bytes()),
        )?;
        if let Some(w) = watermark {
            while w >= next_end && closers.len() < args.minutes {
                closers.push(Closer { start: next_end - 60, frame, partition, sent });
                next_end += 60;
            }
        }
        if closes && args.jitter_ms > 0 {
            paused += Duration::from_micros(splitmix(&mut rng) % (args.jitter_ms * 1000));
        }
        frame += 1;
    }
    let last_sent = closers.last().map_or(origin, |c| c.sent);
    eprintln!(
        "latency_bench: produced {frame} frames in {:.1} s ({} minutes closed; at most {:.1} ms behind schedule)",
        ms(last_sent - origin) / 1e3,
        closers.len(),
        ms(behind_max)
    );
    producer.flush(Duration::from_secs(30)).map_err(|e| format!("flushing the producer: {e}"))?;
    if let Some(e) = producer.context().failure.lock().unwrap().clone() {
        return Err(format!("a frame was not delivered: {e}"));
    }
    // Wait for the last records (and probes).
    let deadline = Instant::now() + Duration::from_secs(args.wait_secs);
    while Instant::now() < deadline {
        {
            let seen = seen.lock().unwrap();
            if closers.iter().all(|c| seen.minutes.contains_key(&c.start)) && seen.probes.len() >= probes.len() {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok((closers, probes, origin))
}

/// splitmix64: a fixed-seed pseudo-random sequence (the same in every run).
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn send(producer: &ThreadedProducer<Acks>, record: BaseRecord<'_, (), [u8], usize>) -> Result<(), String> {
    producer.send(record).map_err(|(e, _)| format!("producing: {e}"))
}

fn report(
    args: &Args,
    partitions: i32,
    producer: &ThreadedProducer<Acks>,
    seen: &Seen,
    closers: &[Closer],
    probes: &[(u64, Instant)],
    origin: Instant,
) -> Result<bool, String> {
    let acks = producer.context().at.lock().unwrap();
    let first = seen.first_record;
    // Start-up: minutes closed before the pipeline was seen to work.
    let startup = closers.iter().take_while(|c| first.is_none_or(|f| c.sent < f)).count();
    let measured = &closers[(startup + args.warmup).min(closers.len())..];

    let mut from_send = Vec::new();
    let mut from_ack = Vec::new();
    let mut ack_delay = Vec::new();
    let mut input_hop = Vec::new();
    let mut after_input = Vec::new();
    let mut missing = Vec::new();
    let mut bad_frames = 0usize;
    let expect_frames = 60 * args.frames_per_sec;
    for c in measured {
        let Some(&(read, frames)) = seen.minutes.get(&c.start) else {
            missing.push(c.start);
            continue;
        };
        from_send.push(ms_between(c.sent, read));
        if let Some(&ack) = acks.get(&c.frame) {
            from_ack.push(ms_between(ack, read));
            ack_delay.push(ms_between(c.sent, ack));
        }
        if let Some(&got) = seen.inputs.get(&c.frame) {
            input_hop.push(ms_between(c.sent, got));
            after_input.push(ms_between(got, read));
        }
        if frames != expect_frames {
            bad_frames += 1;
        }
    }
    // Probes sent during the measured minutes only (not during start-up).
    let probes_from = measured.first().map(|c| c.sent);
    let mut probe_lat: Vec<f64> = probes
        .iter()
        .filter(|(_, sent)| probes_from.is_some_and(|f| *sent >= f))
        .filter_map(|(seq, sent)| seen.probes.get(seq).map(|r| ms_between(*sent, *r)))
        .collect();
    for v in [&mut from_send, &mut from_ack, &mut ack_delay, &mut probe_lat, &mut input_hop, &mut after_input] {
        v.sort_by(f64::total_cmp);
    }

    if let Some(path) = &args.csv {
        let mut out =
            String::from("minute_start,closing_frame,partition,sent_ms,ack_ms,input_read_ms,read_ms,measured\n");
        let rel = |t: Option<Instant>| t.map_or(String::new(), |t| format!("{:.3}", ms_between(origin, t)));
        for (i, c) in closers.iter().enumerate() {
            let read = seen.minutes.get(&c.start).map(|r| r.0);
            let _ = writeln!(
                out,
                "{},{},{},{},{},{},{},{}",
                c.start,
                c.frame,
                c.partition,
                rel(Some(c.sent)),
                rel(acks.get(&c.frame).copied()),
                rel(seen.inputs.get(&c.frame).copied()),
                rel(read),
                u8::from(i >= startup + args.warmup)
            );
        }
        std::fs::write(path, out).map_err(|e| format!("writing {path}: {e}"))?;
    }

    let wall_per_minute = 60.0 / args.event_rate;
    println!(
        "load:      {} partitions, {} frames per event second, {} event s per wall s ({:.0} frames/s), a minute \
         closes every {:.2} s + a random 0-{} ms pause, lateness {} s",
        partitions,
        args.frames_per_sec,
        args.event_rate,
        args.event_rate * args.frames_per_sec as f64,
        wall_per_minute,
        args.jitter_ms,
        args.lateness
    );
    println!(
        "minutes:   {} closed; {} start-up (closed before the first record was read), {} warm-up, {} measured, \
         {} missing",
        closers.len(),
        startup.min(closers.len()),
        args.warmup.min(closers.len() - startup.min(closers.len())),
        measured.len(),
        missing.len()
    );
    println!("{}", line("latency from send", &from_send));
    println!("{}", line("latency from ack", &from_ack));
    println!("{}", line("closing frame send->ack", &ack_delay));
    if args.probe_topic.is_some() {
        println!("{}", line("probe hop (send->read)", &probe_lat));
    }
    if args.watch_input {
        println!("{}", line("closing frame send->read", &input_hop));
        println!("{}", line("frame read->record read", &after_input));
    }
    if bad_frames > 0 {
        println!("warning:   {bad_frames} measured minutes' revision 0 had frames != {expect_frames}");
    }
    if seen.unparsed > 0 {
        println!("warning:   {} records on the output topic did not parse", seen.unparsed);
    }
    let p99 = pct(&from_send, 99.0);
    let pass = missing.is_empty() && !from_send.is_empty() && p99 <= 100.0;
    println!(
        "{}: p99 emission latency <= 100 ms ({:.1} ms over {} minutes{})",
        if pass { "PASS" } else { "FAIL" },
        p99,
        from_send.len(),
        if missing.is_empty() { String::new() } else { format!(", {} minutes missing", missing.len()) }
    );
    let json_num = |v: f64| if v.is_finite() { format!("{v:.3}") } else { "null".into() };
    println!(
        "{{\"count\":{},\"missing\":{},\"p50_ms\":{},\"p90_ms\":{},\"p99_ms\":{},\"max_ms\":{},\
         \"ack_p50_ms\":{},\"ack_p99_ms\":{},\"probe_p50_ms\":{},\"probe_p99_ms\":{},\"pass\":{}}}",
        from_send.len(),
        missing.len(),
        json_num(pct(&from_send, 50.0)),
        json_num(pct(&from_send, 90.0)),
        json_num(p99),
        json_num(pct(&from_send, 100.0)),
        json_num(pct(&from_ack, 50.0)),
        json_num(pct(&from_ack, 99.0)),
        json_num(pct(&probe_lat, 50.0)),
        json_num(pct(&probe_lat, 99.0)),
        pass
    );
    if !missing.is_empty() {
        let shown: Vec<String> = missing.iter().take(10).map(|m| m.to_string()).collect();
        return Err(format!(
            "{} measured minutes never appeared on the output topic: {}",
            missing.len(),
            shown.join(", ")
        ));
    }
    Ok(pass)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
