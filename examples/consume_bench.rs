//! The bare consume loop that `scripts/bench-kafka.sh` measures kuniq against:
//! one rdkafka `BaseConsumer` on the calling thread, no parsing, no counting.
//!
//! It subscribes to the topic with a consumer group (`auto.offset.reset=earliest`,
//! `enable.partition.eof=true`, `fetch.wait.max.ms=10` as kuniq sets it, no
//! offset commits), polls one message at a time and touches every payload
//! (sums the lengths, xors the first bytes) so the bytes are really read. It
//! stops once every partition of the topic is at its end and as many
//! messages were seen as the partitions' watermarks say the topic holds, and
//! prints one JSON line on stdout:
//!
//! ```json
//! {"messages":200000,"bytes":416000000,"xor":17,"elapsed_secs":1.52,"first_message_secs":0.48}
//! ```
//!
//! `elapsed_secs` runs from the start of `main` (before the consumer is
//! created, so it includes the group join) to the last message; the time to
//! the first message shows how much of that is start-up.
//!
//! Usage: `cargo run --release --example consume_bench -- -b 127.0.0.1:9092 -t frames -G bench-1`
//! (`-X key=value` adds a librdkafka property, repeatable).

use std::collections::HashSet;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;

struct Args {
    brokers: String,
    topic: String,
    group: String,
    properties: Vec<(String, String)>,
}

const USAGE: &str = "usage: consume_bench -b BROKERS -t TOPIC -G GROUP [-X key=value]...";

fn parse_args() -> Result<Args, String> {
    let mut brokers = None;
    let mut topic = None;
    let mut group = None;
    let mut properties = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "-b" | "--brokers" => brokers = Some(value("-b")?),
            "-t" | "--topic" => topic = Some(value("-t")?),
            "-G" | "--group" => group = Some(value("-G")?),
            "-X" => {
                let kv = value("-X")?;
                let (k, v) = kv.split_once('=').ok_or_else(|| format!("-X needs key=value, not '{kv}'"))?;
                properties.push((k.to_string(), v.to_string()));
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument '{other}'\n{USAGE}")),
        }
    }
    Ok(Args {
        brokers: brokers.ok_or(format!("-b is required\n{USAGE}"))?,
        topic: topic.ok_or(format!("-t is required\n{USAGE}"))?,
        group: group.ok_or(format!("-G is required\n{USAGE}"))?,
        properties,
    })
}

fn run(args: &Args, started: Instant) -> Result<String, String> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &args.brokers)
        .set("group.id", &args.group)
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "true")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "10");
    for (k, v) in &args.properties {
        config.set(k, v);
    }
    let consumer: BaseConsumer = config.create().map_err(|e| format!("creating the consumer: {e}"))?;

    // How many messages the topic holds: the sum of high - low watermarks.
    let metadata = consumer
        .fetch_metadata(Some(&args.topic), Duration::from_secs(30))
        .map_err(|e| format!("reading metadata of '{}': {e}", args.topic))?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .find(|t| t.name() == args.topic)
        .map(|t| t.partitions().iter().map(|p| p.id()).collect())
        .unwrap_or_default();
    if partitions.is_empty() {
        return Err(format!("topic '{}' does not exist or has no partitions", args.topic));
    }
    let mut expected: i64 = 0;
    for &p in &partitions {
        let (low, high) = consumer
            .fetch_watermarks(&args.topic, p, Duration::from_secs(30))
            .map_err(|e| format!("reading watermarks of {}/{p}: {e}", args.topic))?;
        expected += high - low;
    }

    consumer.subscribe(&[&args.topic]).map_err(|e| format!("subscribing: {e}"))?;

    let mut messages: i64 = 0;
    let mut bytes: u64 = 0;
    let mut xor: u8 = 0;
    let mut at_end: HashSet<i32> = HashSet::new();
    let mut first_message: Option<Instant> = None;
    let mut last_message = started;
    let mut last_progress = Instant::now();
    loop {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(msg)) => {
                if let Some(payload) = msg.payload() {
                    bytes += payload.len() as u64;
                    xor ^= payload.first().copied().unwrap_or(0);
                }
                messages += 1;
                at_end.remove(&msg.partition());
                let now = Instant::now();
                first_message.get_or_insert(now);
                last_message = now;
                last_progress = now;
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
                last_progress = Instant::now();
            }
            Some(Err(e)) => return Err(format!("consuming: {e}")),
            None => {}
        }
        if messages >= expected && partitions.iter().all(|p| at_end.contains(p)) {
            break;
        }
        if last_progress.elapsed() > Duration::from_secs(60) {
            return Err(format!(
                "no progress for 60 s: {messages} of {expected} messages, partitions at end {at_end:?} of {partitions:?}"
            ));
        }
    }
    let elapsed = last_message.duration_since(started).as_secs_f64();
    let first = first_message.map_or(0.0, |t| t.duration_since(started).as_secs_f64());
    Ok(format!(
        "{{\"messages\":{messages},\"expected\":{expected},\"bytes\":{bytes},\"xor\":{xor},\
         \"elapsed_secs\":{elapsed:.6},\"first_message_secs\":{first:.6}}}"
    ))
}

fn main() -> ExitCode {
    let started = Instant::now();
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&args, started) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
