//! Command-line flags (clap) and their validation into ready-to-run plans.
//!
//! Raw flags are parsed into the `*Args` structs; `*Args::plan` checks them
//! and builds the plan the library runs, so every error a user can make is
//! reported before any work starts, with what to do about it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::count::Estimator;
use crate::frame::ParserKind;
use crate::generator::{DEFAULT_SIZE_LIMIT, GenConfig};
use crate::kafka::Property;
use crate::logging::LogFormat;
use crate::pipeline::CountPlan;
use crate::source::file::DEFAULT_MAX_FRAME_BYTES;
use crate::window::WindowKind;
use crate::window::engine::{
    DEFAULT_ALLOWED_LATENESS_SECS, DEFAULT_EARLY_INTERVAL_SECS, DEFAULT_LATENESS_SECS, DEFAULT_MAX_OPEN_WINDOWS,
    DEFAULT_QUARANTINE_SECS, DEFAULT_REVISION_INTERVAL_SECS, EngineConfig,
};

/// kuniq counts unique users per minute of event time in JSON frames, from
/// files, stdin or Kafka, and writes the counts as JSON lines.
#[derive(Debug, Parser)]
#[command(name = "kuniq", version, about, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,

    /// Log lines on stderr (warnings, errors, status lines): text
    /// (`kuniq: warning: ...`) or json (one object per line with timestamp,
    /// level, message and fields, for log shippers). The end-of-run summary
    /// is set apart by --summary.
    #[arg(long, value_enum, global = true, default_value_t = LogFormat::Text, env = "KUNIQ_LOG_FORMAT")]
    pub log_format: LogFormat,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
// Parsed once per run: the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
pub enum Command {
    /// Count unique users per window from a file, a .gz file or stdin.
    ///
    /// Prints one JSON record per window emission on stdout:
    /// {"window":"minute","start":..,"end":..,"unique_users":..,"frames":..,
    /// "revision":0,"estimator":"exact"}, and a summary on stderr.
    Count(CountArgs),
    /// Generate challenge-style frames (deterministic for a seed).
    Gen(GenArgs),
    /// Load frames (one per line) from a file, a .gz file or stdin into a
    /// Kafka topic, round-robin over its partitions.
    Produce(ProduceArgs),
    /// Print a topic's records, one per line, from the beginning (e.g. the
    /// output topic of `kuniq count -o`).
    Consume(ConsumeArgs),
    /// Draw unique users per window over event time as a PNG chart, from
    /// the records kuniq count prints (a file or stdin) or from its output
    /// topic (read to its end).
    ///
    /// The line is each window's last revision (the highest revision number
    /// wins, in any order); windows that were revised also show their first
    /// emission as a faint ring.
    #[command(after_help = "Examples:\n  \
        kuniq count -i frames.jsonl > results.jsonl\n  \
        kuniq plot -i results.jsonl -o uniques.png\n  \
        kuniq plot -b 127.0.0.1:9092 -t uniques -o uniques.png --width 1200 --height 500")]
    Plot(PlotArgs),
    /// Unique users over any time range, merged from the records of the
    /// windows in it: their sketches (--estimator hll) or exact hashes,
    /// which kuniq count puts in records with --emit-sketch.
    ///
    /// Prints one JSON line: {"from":..,"to":..,"window":"minute",
    /// "unique_users":..,"frames":..,"windows":..,"provisional":..,
    /// "estimator":".."}. Each window's latest record (highest revision)
    /// counts; "provisional" says how many of those were of windows still
    /// open, whose users may still grow.
    #[command(after_help = "Examples:\n  \
        kuniq count -i frames.jsonl --estimator hll --emit-sketch > results.jsonl\n  \
        kuniq query -i results.jsonl --from 2016-07-11T10:03:00Z --to 2016-07-11T14:17:00Z\n  \
        kuniq query -b 127.0.0.1:9092 -t uniques --from 1468195200 --to 1468281600")]
    Query(QueryArgs),
    /// Merge the partial window state that scale-out workers (kuniq count
    /// --partials-topic) send into the records one kuniq count over the
    /// whole input topic would emit.
    ///
    /// Records go to -o TOPIC, or to stdout. Give the merge the same window
    /// flags as the workers (--windows, --lateness, --estimator, ...).
    #[command(after_help = "Examples:\n  \
        kuniq count -b 127.0.0.1:9092 -t frames -G workers --partials-topic frames-partials   # on each node\n  \
        kuniq merge -b 127.0.0.1:9092 --partials-topic frames-partials -o uniques              # once")]
    Merge(MergeArgs),
}

/// When to show progress on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProgressMode {
    /// A bar on a terminal; a status line every --status-interval otherwise
    /// (Kafka runs: status lines always).
    Auto,
    /// Never.
    Never,
}

/// Format of the end-of-run summary on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SummaryFormat {
    /// Sentences for people.
    Text,
    /// One JSON object, for scripts.
    Json,
    /// No summary.
    None,
}

/// librdkafka properties, shared by every subcommand that talks to Kafka.
#[derive(Debug, Args, Clone)]
pub struct ClientArgs {
    /// librdkafka property, as kcat's -X (repeatable; wins over -F), e.g.
    /// -X fetch.wait.max.ms=10, -X security.protocol=SASL_SSL. Values of
    /// keys naming a password, secret, token or key are never printed, but
    /// other users can see a command line: put secrets in a -F file.
    #[arg(short = 'X', value_name = "KEY=VALUE")]
    pub properties: Vec<Property>,

    /// File of librdkafka properties, one key=value per line (# comments),
    /// as kcat's -F: TLS and SASL settings and secrets without showing them
    /// on the command line. -X given too wins over the file.
    #[arg(short = 'F', long = "config-file", value_name = "FILE", env = "KUNIQ_CONFIG_FILE")]
    pub config_file: Option<PathBuf>,
}

impl ClientArgs {
    /// The file's properties, then the `-X` ones (later ones win).
    pub fn properties(&self) -> Result<Vec<Property>, String> {
        let mut all = match &self.config_file {
            Some(path) => crate::kafka::properties::read_file(path)?,
            None => Vec::new(),
        };
        all.extend(self.properties.iter().cloned());
        Ok(all)
    }
}

/// Kafka flags of `kuniq count` (kcat-like).
#[derive(Debug, Args, Clone)]
pub struct KafkaArgs {
    /// Kafka bootstrap brokers, host:port[,host:port...]: read frames from Kafka.
    #[arg(short = 'b', long, value_name = "BROKERS", env = "KUNIQ_BROKERS")]
    pub brokers: Option<String>,

    /// Topic to read frames from.
    #[arg(short = 't', long, value_name = "TOPIC")]
    pub topic: Option<String>,

    /// Consumer group. Alone: names the saved state (a restart resumes it)
    /// and the committed offsets (for lag monitoring); kuniq reads every
    /// partition itself and a second kuniq with the same group is a hot
    /// standby. With --partials-topic: a real Kafka consumer group whose
    /// members (the workers) share the partitions.
    #[arg(short = 'G', long, value_name = "GROUP", default_value = "kuniq")]
    pub group: String,

    /// Scale out: run as a worker of group -G, counting only the partitions
    /// the group assigns this process and sending their partial window
    /// state to this topic (created if missing) for `kuniq merge`, which
    /// emits the records. Give the workers and the merge the same window
    /// flags. See README "Scaling out".
    #[arg(long, value_name = "TOPIC", conflicts_with = "output_topic")]
    pub partials_topic: Option<String>,

    /// Output topic: one record per emission, keyed by window
    /// (e.g. minute:1468244400). Without it, records go to stdout.
    #[arg(short = 'o', long = "output-topic", value_name = "TOPIC")]
    pub output_topic: Option<String>,

    /// librdkafka properties (-X, -F) for the consumer, the producer and the
    /// admin client; consumer-only and producer-only keys go to their client.
    #[command(flatten)]
    pub client: ClientArgs,

    /// Where to start in partitions with no saved state and no committed
    /// offset for the group: beginning or end; `stored` makes that an error.
    #[arg(long, value_name = "WHERE", default_value = "stored")]
    pub offset: String,

    /// Exit at the end: once every partition is read to its end, save the
    /// state, emit all open windows, and exit 0 (as kcat -e).
    #[arg(short = 'e', long = "exit-at-end")]
    pub exit_at_end: bool,

    /// Topic for the saved state (one partition; created if missing). A
    /// restart of the same group and input topic resumes from it.
    #[arg(long, value_name = "TOPIC", default_value = crate::source::kafka::state::DEFAULT_STATE_TOPIC)]
    pub state_topic: String,

    /// Time between checkpoints (open windows longer than a minute and the
    /// state saved, offsets committed); a restart re-reads at most the open
    /// minute windows' frames plus this much.
    #[arg(long, value_name = "DURATION", default_value = "5s")]
    pub commit_interval: String,

    /// Kafka transactions: each checkpoint interval's records, state and
    /// offsets commit together or not at all (readers use
    /// isolation.level=read_committed). Needs -o (or, for a scale-out
    /// worker, --partials-topic: its partials and checkpoints) and a broker
    /// with transactions.
    #[arg(long)]
    pub exactly_once: bool,

    /// transactional.id for --exactly-once [default: kuniq-GROUP-TOPIC]; one
    /// per running kuniq.
    #[arg(long, value_name = "ID", requires = "exactly_once")]
    pub transactional_id: Option<String>,

    /// A caught-up partition with no records for this long stops holding the
    /// watermark back; when all are idle the watermark follows the wall clock,
    /// and after the lateness more it passes the end of the last frame's
    /// minute (e.g. 10s, 500ms).
    #[arg(long, value_name = "DURATION", default_value = "10s")]
    pub idle_timeout: String,

    /// Longest wait for the brokers to answer at start-up before kuniq gives
    /// up with an error (e.g. 30s, 500ms). Once running, kuniq rides out
    /// broker outages: librdkafka reconnects and retries.
    #[arg(long, value_name = "DURATION", default_value = "30s")]
    pub connect_timeout: String,

    /// Most messages one read of a partition queue takes (payloads are
    /// borrowed from librdkafka until the batch is parsed).
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub batch_size: usize,
}

/// Window settings, shared by `kuniq count` and `kuniq merge` (a merge must
/// count with its workers' settings).
#[derive(Debug, Args, Clone)]
pub struct WindowArgs {
    /// Window kinds to count, comma-separated: minute, hour, day, week, month, year.
    #[arg(long, value_name = "LIST", default_value = "minute", value_delimiter = ',')]
    pub windows: Vec<String>,

    /// Watermark bound: a window closes when the highest ts seen passes its
    /// end by this much (e.g. 5, 5s, 1m).
    #[arg(long, value_name = "DURATION", default_value_t = DEFAULT_LATENESS_SECS.to_string())]
    pub lateness: String,

    /// How long after closing a window still accepts late frames, each
    /// batch of them emitting a new revision; later frames are counted as
    /// too late and reported.
    #[arg(long, value_name = "DURATION", default_value_t = DEFAULT_ALLOWED_LATENESS_SECS.to_string())]
    pub allowed_lateness: String,

    /// Event time between revisions of a closed window.
    #[arg(long, value_name = "DURATION", default_value_t = DEFAULT_REVISION_INTERVAL_SECS.to_string())]
    pub revision_interval: String,

    /// Frames further than this ahead of their stream's watermark are
    /// quarantined (not counted, reported) unless the stream really jumped.
    #[arg(long, value_name = "DURATION", default_value_t = format!("{}s", DEFAULT_QUARANTINE_SECS))]
    pub quarantine: String,

    /// Most windows of one kind open at once. Opening one more emits the
    /// oldest early, as final (its later frames count as too late), with a
    /// warning, and counts it as windows_forced. Memory is about N × (0.6 KB
    /// + 16 bytes per distinct uid in a window).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_OPEN_WINDOWS)]
    pub max_open_windows: usize,

    /// Event time between provisional records of an open window longer than
    /// this (hour, day, week, month, year with the default): while open, the
    /// window sends its count so far every interval of event time, marked
    /// "closed": false; 0 turns them off. Minute windows have none.
    #[arg(long, value_name = "DURATION", default_value_t = format!("{}s", DEFAULT_EARLY_INTERVAL_SECS))]
    pub early_interval: String,

    /// How windows count distinct users. exact: every uid (8 bytes per
    /// distinct user in a window, plus table overhead). hll: Apache
    /// DataSketches' HLL_4 sketch with 2^17 registers, at most 64 KiB per
    /// window, within 1 % of the exact count at p99 (measured; README
    /// "Estimators"); hll-N picks 2^N registers (4..=21). The record's
    /// "estimator" field says which (hll-17).
    #[arg(long, value_name = "exact|hll|hll-N", default_value = "exact")]
    pub estimator: Estimator,

    /// Every record carries its window's users as data, for `kuniq query`
    /// to merge into any time range. With --estimator hll: "sketch", the
    /// base64 of the window's DataSketches HLL sketch (compact
    /// serialization), which Apache DataSketches in Python, Java or C++
    /// reads and unions; about 87 KB of base64 once a window has more
    /// than about 12,000 users (hll-17). Exact: "hashes", the base64 of its uid hashes (8
    /// bytes a user: 480 KB for a minute of 45,000 users, 10.7 MB for a day
    /// of a million, over Kafka's default 1 MB record limit).
    #[arg(long)]
    pub emit_sketch: bool,
}

impl WindowArgs {
    /// Validates the window flags.
    pub fn engine_config(&self) -> Result<EngineConfig, String> {
        let mut kinds = Vec::new();
        for name in &self.windows {
            let kind = WindowKind::from_name(name.trim()).ok_or_else(|| {
                format!("unknown window kind '{name}' in --windows; expected minute, hour, day, week, month or year")
            })?;
            if !kinds.contains(&kind) {
                kinds.push(kind);
            }
        }
        kinds.sort();
        let revision_interval = parse_secs("--revision-interval", &self.revision_interval)?;
        if revision_interval == 0 {
            return Err("--revision-interval must be at least 1 second".into());
        }
        if self.max_open_windows == 0 {
            return Err("--max-open-windows must be at least 1".into());
        }
        Ok(EngineConfig {
            kinds,
            lateness_secs: parse_secs("--lateness", &self.lateness)?,
            allowed_lateness_secs: parse_secs("--allowed-lateness", &self.allowed_lateness)?,
            revision_interval_secs: revision_interval,
            quarantine_secs: parse_secs("--quarantine", &self.quarantine)?,
            max_open_windows: self.max_open_windows,
            early_interval_secs: parse_secs("--early-interval", &self.early_interval)?,
            estimator: self.estimator,
            emit_sketch: self.emit_sketch,
        })
    }
}

/// Flags of `kuniq count`.
#[derive(Debug, Args)]
pub struct CountArgs {
    /// Input file: JSON lines, plain or gzip (detected by content); `-` for stdin.
    /// Give this or -b/-t (Kafka).
    #[arg(short, long, value_name = "PATH", required_unless_present = "brokers")]
    pub input: Option<String>,

    #[command(flatten)]
    pub kafka: KafkaArgs,

    /// Frame parser: scan (SIMD, default), sonic (sonic-rs) or serde (serde_json).
    /// Which ones exist depends on the build's features.
    #[arg(long, value_name = "NAME", default_value_t = ParserKind::default_kind().name().to_string())]
    pub parser: String,

    /// Parsing threads [default: number of cores; reading Kafka, one less
    /// (at least 1), leaving a core to librdkafka's fetch threads and the
    /// merge].
    #[arg(long, value_name = "N", env = "KUNIQ_WORKERS")]
    pub workers: Option<usize>,

    /// Do not pin worker threads to cores.
    #[arg(long)]
    pub no_pin: bool,

    #[command(flatten)]
    pub window: WindowArgs,

    /// Lines longer than this are skipped and counted as too_large (e.g. 64MiB).
    #[arg(long, value_name = "SIZE", default_value_t = format!("{}MiB", DEFAULT_MAX_FRAME_BYTES >> 20))]
    pub max_frame_bytes: String,

    /// Progress on stderr.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,

    /// Time between status lines when stderr is not a terminal (and in
    /// Kafka runs), e.g. 10s, 1m, 500ms.
    #[arg(long, value_name = "DURATION", default_value = "10s")]
    pub status_interval: String,

    /// End-of-run summary on stderr.
    #[arg(long, value_enum, default_value_t = SummaryFormat::Text)]
    pub summary: SummaryFormat,

    /// Serve Prometheus metrics at http://ADDR/metrics while counting:
    /// HOST:PORT, or a port alone for 127.0.0.1:PORT (port 0 picks a free
    /// port; the address is printed on stderr). Binds a non-loopback
    /// address only when given one; the endpoint has no authentication.
    #[arg(long, value_name = "ADDR", env = "KUNIQ_METRICS_ADDR")]
    pub metrics_addr: Option<String>,
}

impl KafkaArgs {
    /// The transactional.id for `--exactly-once`.
    pub fn transactional_id(&self) -> Option<String> {
        self.exactly_once.then(|| {
            self.transactional_id
                .clone()
                .unwrap_or_else(|| format!("kuniq-{}-{}", self.group, self.topic.as_deref().unwrap_or_default()))
        })
    }

    /// Validates the Kafka flags; None when reading a file.
    pub fn plan(&self) -> Result<Option<crate::source::kafka::KafkaPlan>, String> {
        let Some(brokers) = &self.brokers else {
            return Ok(None);
        };
        let topic = self.topic.clone().ok_or("-t/--topic is required with -b/--brokers")?;
        if self.exactly_once && self.output_topic.is_none() && self.partials_topic.is_none() {
            return Err("--exactly-once needs -o/--output-topic (the records go to Kafka in transactions)".into());
        }
        let idle_timeout = parse_duration("--idle-timeout", &self.idle_timeout)?;
        let commit_interval = parse_duration("--commit-interval", &self.commit_interval)?;
        if commit_interval < std::time::Duration::from_millis(10) {
            return Err("--commit-interval must be at least 10ms".into());
        }
        if self.batch_size == 0 {
            return Err("--batch-size must be at least 1".into());
        }
        let properties = self.client.properties()?;
        crate::kafka::check_count_properties(&properties).map_err(|e| e.to_string())?;
        // Checks every property now (usage errors, secrets blanked).
        crate::kafka::client_config(brokers, &[], &properties).map_err(|e| e.to_string())?;
        Ok(Some(crate::source::kafka::KafkaPlan {
            brokers: brokers.clone(),
            topic,
            group: self.group.clone(),
            properties,
            start: crate::source::kafka::StartAt::from_name(&self.offset)?,
            exit_at_end: self.exit_at_end,
            idle_timeout,
            connect_timeout: parse_duration("--connect-timeout", &self.connect_timeout)?,
            batch_size: self.batch_size,
            state_topic: self.state_topic.clone(),
            commit_interval,
            exactly_once: self.exactly_once,
        }))
    }
}

/// Parsing workers of a Kafka run when `--workers` is not given: one less
/// than the cores, at least one. librdkafka's fetch threads decompress and
/// copy every record (about a third of kuniq's CPU on Kafka) and need a core
/// of their own; on 2 cores, 1 worker read the official topic from Apache
/// Kafka in 1.75 s against 2.15 s with 2 (medians of 6 alternating runs,
/// profiles/2026-12-07-apache-kafka.md).
pub fn default_kafka_workers() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    cores.saturating_sub(1).max(1)
}

/// Validates `--status-interval`.
pub fn status_interval(text: &str) -> Result<std::time::Duration, String> {
    let interval = parse_duration("--status-interval", text)?;
    if interval < std::time::Duration::from_millis(100) {
        return Err("--status-interval must be at least 100ms".into());
    }
    Ok(interval)
}

impl CountArgs {
    /// The address to serve metrics on, if any.
    pub fn metrics_addr(&self) -> Result<Option<std::net::SocketAddr>, String> {
        self.metrics_addr.as_deref().map(crate::metrics::parse_addr).transpose()
    }

    /// Validates the flags into a plan.
    pub fn plan(&self) -> Result<CountPlan, String> {
        let parser = ParserKind::from_name(&self.parser)?;
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let workers = self.workers.unwrap_or(cores);
        if workers == 0 || workers > 1024 {
            return Err(format!("--workers must be between 1 and 1024, not {workers}"));
        }
        let max_frame_bytes = parse_bytes("--max-frame-bytes", &self.max_frame_bytes)?;
        if max_frame_bytes < 2 {
            return Err("--max-frame-bytes must be at least 2 bytes".into());
        }
        Ok(CountPlan {
            parser,
            workers,
            pin: !self.no_pin,
            engine: self.window.engine_config()?,
            max_frame_bytes: usize::try_from(max_frame_bytes).unwrap_or(usize::MAX),
            metrics: None,
        })
    }
}

/// Flags of `kuniq merge`.
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// Kafka bootstrap brokers, host:port[,host:port...].
    #[arg(short = 'b', long, value_name = "BROKERS", env = "KUNIQ_BROKERS")]
    pub brokers: String,

    /// The topic the workers send partial window state to.
    #[arg(long, value_name = "TOPIC")]
    pub partials_topic: String,

    /// Output topic: one record per emission, keyed by window. Without it,
    /// records go to stdout.
    #[arg(short = 'o', long = "output-topic", value_name = "TOPIC")]
    pub output_topic: Option<String>,

    /// Exit at the end: once the partials are read to their end and every
    /// input partition is idle or ended, emit all open windows and exit 0.
    #[arg(short = 'e', long = "exit-at-end")]
    pub exit_at_end: bool,

    /// Longest wait for the brokers, and for the workers to create the
    /// partials topic, at start-up (e.g. 30s).
    #[arg(long, value_name = "DURATION", default_value = "30s")]
    pub connect_timeout: String,

    /// Names the merge's checkpoint: a merge restarted with the same group
    /// goes on from it (a new group starts from the partials' start).
    #[arg(short = 'G', long, value_name = "GROUP", default_value = "kuniq-merge")]
    pub group: String,

    /// Kafka transactions: each --commit-interval's records and the merge's
    /// checkpoint commit together or not at all, so a read_committed reader
    /// sees every (window, revision) once even across kill -9. Needs -o.
    #[arg(long, requires = "output_topic")]
    pub exactly_once: bool,

    /// Time between the merge's checkpoints (its open windows and where it
    /// is in the partials topic, saved once the records before are
    /// delivered); a restart emits at most this much again.
    #[arg(long, value_name = "DURATION", default_value = "5s")]
    pub commit_interval: String,

    #[command(flatten)]
    pub window: WindowArgs,

    #[command(flatten)]
    pub client: ClientArgs,

    /// End-of-run summary on stderr.
    #[arg(long, value_enum, default_value_t = SummaryFormat::Text)]
    pub summary: SummaryFormat,
}

impl MergeArgs {
    /// Validates the flags into a plan.
    pub fn plan(&self) -> Result<crate::scale::merge::MergePlan, String> {
        let properties = self.client.properties()?;
        crate::kafka::check_count_properties(&properties).map_err(|e| e.to_string())?;
        crate::kafka::client_config(&self.brokers, &[], &properties).map_err(|e| e.to_string())?;
        Ok(crate::scale::merge::MergePlan {
            brokers: self.brokers.clone(),
            partials_topic: self.partials_topic.clone(),
            properties,
            exit_at_end: self.exit_at_end,
            connect_timeout: parse_duration("--connect-timeout", &self.connect_timeout)?,
            group: self.group.clone(),
            commit_interval: parse_duration("--commit-interval", &self.commit_interval)?,
            exactly_once: self.exactly_once,
            engine: self.window.engine_config()?,
        })
    }
}

/// Flags of `kuniq consume`.
#[derive(Debug, Args)]
pub struct ConsumeArgs {
    /// Kafka bootstrap brokers, host:port[,host:port...].
    #[arg(short = 'b', long, value_name = "BROKERS", env = "KUNIQ_BROKERS")]
    pub brokers: String,

    /// Topic to print.
    #[arg(short = 't', long, value_name = "TOPIC")]
    pub topic: String,

    /// Exit once every partition is read to its end.
    #[arg(short = 'e', long = "exit-at-end")]
    pub exit_at_end: bool,

    /// Print each record's key and a tab before its value.
    #[arg(short = 'K', long)]
    pub keys: bool,

    /// librdkafka consumer properties (-X, -F).
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Flags of `kuniq plot`.
#[derive(Debug, Args)]
pub struct PlotArgs {
    /// Where the records to draw are.
    #[command(flatten)]
    pub records: RecordsArgs,

    /// The PNG file to write; `-` for stdout.
    #[arg(short, long, value_name = "PNG")]
    pub output: PathBuf,

    /// Window kind to draw (records of other kinds are left out): minute,
    /// hour, day, week, month or year.
    #[arg(long, value_name = "KIND", default_value = "minute")]
    pub window: String,

    /// Picture width in pixels.
    #[arg(long, value_name = "PIXELS", default_value_t = crate::plot::DEFAULT_WIDTH)]
    pub width: u32,

    /// Picture height in pixels.
    #[arg(long, value_name = "PIXELS", default_value_t = crate::plot::DEFAULT_HEIGHT)]
    pub height: u32,

    /// Title [default: Unique users per KIND].
    #[arg(long, value_name = "TEXT")]
    pub title: Option<String>,
}

/// Where `kuniq plot` and `kuniq query` read kuniq count's records from.
#[derive(Debug, Args)]
pub struct RecordsArgs {
    /// Records: JSON lines as kuniq count prints them; `-` for stdin. Give
    /// this or -t (an output topic).
    #[arg(short, long, value_name = "PATH")]
    pub input: Option<String>,

    /// Kafka bootstrap brokers, host:port[,host:port...], for -t.
    // Checked in `source`, not by clap: a KUNIQ_BROKERS in the environment
    // must not make `-i` a conflict.
    #[arg(short = 'b', long, value_name = "BROKERS", env = "KUNIQ_BROKERS")]
    pub brokers: Option<String>,

    /// Output topic of kuniq count to read the records from, every
    /// partition from the beginning to its end (needs -b).
    #[arg(short = 't', long, value_name = "TOPIC", conflicts_with = "input")]
    pub topic: Option<String>,

    /// librdkafka consumer properties (-X, -F).
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Where records are read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordSource {
    /// A file, or `-` for stdin.
    Input(String),
    /// An output topic, read from the beginning to its end.
    Topic {
        /// Bootstrap brokers.
        brokers: String,
        /// The topic.
        topic: String,
    },
}

impl RecordsArgs {
    /// The input (`-i`) or the topic (`-b`, `-t`).
    pub fn source(&self) -> Result<RecordSource, String> {
        match (&self.input, &self.brokers, &self.topic) {
            (Some(input), _, _) => Ok(RecordSource::Input(input.clone())),
            (None, Some(brokers), Some(topic)) => {
                Ok(RecordSource::Topic { brokers: brokers.clone(), topic: topic.clone() })
            }
            (None, None, Some(_)) => Err("-t/--topic needs -b/--brokers (or KUNIQ_BROKERS)".into()),
            (None, _, None) => Err("give the records: -i PATH (- for stdin) or -b BROKERS -t TOPIC".into()),
        }
    }
}

/// Flags of `kuniq query`.
#[derive(Debug, Args)]
pub struct QueryArgs {
    /// Where the records are: kuniq count's output with --emit-sketch.
    #[command(flatten)]
    pub records: RecordsArgs,

    /// Range start: unix seconds or a UTC time (2016-07-11T10:03:00Z, or a
    /// date); on a window boundary.
    #[arg(long, value_name = "TIME")]
    pub from: String,

    /// Range end, exclusive: unix seconds or a UTC time; on a window
    /// boundary.
    #[arg(long, value_name = "TIME")]
    pub to: String,

    /// Window kind whose records are merged: minute, hour, day, week, month
    /// or year (the range must be made of whole windows of it).
    #[arg(long, value_name = "KIND", default_value = "minute")]
    pub window: String,
}

/// The window kind `--window` names (plot and query).
fn window_flag(text: &str) -> Result<WindowKind, String> {
    WindowKind::from_name(text.trim()).ok_or_else(|| {
        format!("unknown window kind '{text}' for --window; expected minute, hour, day, week, month or year")
    })
}

impl QueryArgs {
    /// The range asked for, checked.
    pub fn range(&self) -> Result<crate::query::Range, String> {
        let kind = window_flag(&self.window)?;
        let from = crate::query::parse_time(self.from.trim()).map_err(|e| format!("--from: {e}"))?;
        let to = crate::query::parse_time(self.to.trim()).map_err(|e| format!("--to: {e}"))?;
        crate::query::Range::new(from, to, kind)
    }
}

impl PlotArgs {
    /// Validates the window kind and the size into drawing options.
    pub fn options(&self) -> Result<(WindowKind, crate::plot::PlotOptions), String> {
        let kind = window_flag(&self.window)?;
        let range = crate::plot::SIZE_RANGE;
        for (flag, pixels) in [("--width", self.width), ("--height", self.height)] {
            if !range.contains(&pixels) {
                return Err(format!(
                    "{flag} must be between {} and {} pixels, not {pixels}",
                    range.start(),
                    range.end()
                ));
            }
        }
        Ok((kind, crate::plot::PlotOptions { width: self.width, height: self.height, title: self.title.clone() }))
    }
}

/// Flags of `kuniq produce`.
#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// Kafka bootstrap brokers, host:port[,host:port...].
    #[arg(short = 'b', long, value_name = "BROKERS", env = "KUNIQ_BROKERS")]
    pub brokers: String,

    /// Topic to produce to (it must exist).
    #[arg(short = 't', long, value_name = "TOPIC")]
    pub topic: String,

    /// Input: JSON lines, plain or gzip; `-` for stdin.
    #[arg(short, long, value_name = "PATH", default_value = "-")]
    pub input: String,

    /// librdkafka producer properties (-X, -F), e.g. -X compression.codec=lz4.
    #[command(flatten)]
    pub client: ClientArgs,

    /// Records per second at most, to replay a file as a live stream
    /// (soak tests, latency checks); 0 or absent: as fast as the broker takes them.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub rate: u64,

    /// Progress on stderr.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,

    /// Time between status lines when stderr is not a terminal (and in
    /// Kafka runs), e.g. 10s, 1m, 500ms.
    #[arg(long, value_name = "DURATION", default_value = "10s")]
    pub status_interval: String,
}

/// Flags of `kuniq gen`, the same as the challenge's official generator's.
#[derive(Debug, Args)]
pub struct GenArgs {
    /// Number of frames.
    #[arg(short = 'c', long = "count", value_name = "N", default_value_t = 1_000_000)]
    pub count: u64,

    /// Average frames per second of event time.
    #[arg(short = 'r', long = "rate", value_name = "N", default_value_t = 1000)]
    pub rate: u64,

    /// Average seconds of event time between frames, for sparse history
    /// (replaces --rate): each frame is 0 to 2 x SECS after the one before.
    /// 158 spreads 400,000 frames over two years.
    #[arg(long = "spacing", value_name = "SECS", conflicts_with = "rate")]
    pub spacing: Option<u64>,

    /// Size of the user pool; 0 gives every frame a fresh uid.
    #[arg(short = 'n', long = "users", value_name = "N", default_value_t = 100_000)]
    pub users: u64,

    /// Maximum delay, in seconds, of delayed frames.
    #[arg(short = 'd', long = "delay", value_name = "SECS", default_value_t = 0)]
    pub delay: u64,

    /// Percentage of frames that are delayed (0 to 100).
    #[arg(short = 'p', long = "delay-percent", value_name = "PERCENT", default_value_t = 0.0)]
    pub delay_percent: f64,

    /// Seed: the same flags and seed give the same bytes.
    #[arg(short = 's', long = "seed", value_name = "N", default_value_t = 1)]
    pub seed: u64,

    /// Frame size limit: bytes (2048) or with a unit (2K, 2KB = 2048 bytes).
    /// Frames grow with random members until they pass it.
    #[arg(short = 'l', long = "size-limit", value_name = "SIZE", default_value_t = DEFAULT_SIZE_LIMIT.to_string())]
    pub size_limit: String,

    /// End lines with CRLF (Windows line endings).
    #[arg(short = 'w', long = "crlf")]
    pub crlf: bool,

    /// Percentage of frames whose ts is a decimal string ("1468244384").
    #[arg(long = "ts-strings", value_name = "PERCENT", default_value_t = 0.0)]
    pub ts_strings: f64,

    /// Output file (gzip when the name ends in .gz); stdout when absent or `-`.
    #[arg(short = 'o', long = "output", value_name = "PATH")]
    pub output: Option<PathBuf>,

    /// gzip level for .gz output (1 fastest, 9 smallest).
    #[arg(long, value_name = "LEVEL", default_value_t = 1, value_parser = clap::value_parser!(u32).range(0..=9))]
    pub gzip_level: u32,

    /// Progress on stderr.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,
}

impl GenArgs {
    /// Validates the flags into a generator configuration.
    pub fn config(&self) -> Result<GenConfig, String> {
        if self.rate == 0 {
            return Err("-r/--rate must be at least 1 frame per second".into());
        }
        if self.spacing == Some(0) {
            return Err("--spacing must be at least 1 second (for dense data use -r/--rate)".into());
        }
        for (flag, v) in [("-p/--delay-percent", self.delay_percent), ("--ts-strings", self.ts_strings)] {
            if !(0.0..=100.0).contains(&v) {
                return Err(format!("{flag} is a percentage between 0 and 100, not {v}"));
            }
        }
        let size_limit = parse_bytes("-l/--size-limit", &self.size_limit)?;
        if size_limit > 1 << 30 {
            return Err("-l/--size-limit above 1 GiB is not supported".into());
        }
        Ok(GenConfig {
            count: self.count,
            rate: self.rate,
            spacing_secs: self.spacing.unwrap_or(0),
            users: self.users,
            delay_secs: self.delay,
            delay_percent: self.delay_percent,
            seed: self.seed,
            size_limit: size_limit as usize,
            crlf: self.crlf,
            ts_string_percent: self.ts_strings,
        })
    }
}

/// Parses a duration: seconds (`90`), or with a unit `s`, `m`, `h`, `d`.
pub fn parse_secs(flag: &str, text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (digits, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let scale = match unit.trim() {
        "" | "s" | "sec" | "secs" => 1,
        "m" | "min" => 60,
        "h" => 3600,
        "d" => 86_400,
        other => return Err(format!("{flag}: unknown unit '{other}' in '{text}'; use s, m, h or d (e.g. 5s, 1m)")),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .filter(|&n| n <= 100 * 365 * 86_400)
        .ok_or_else(|| format!("{flag}: '{text}' is not a duration like 5, 5s, 2m or 1h (at most 100 years)"))
}

/// Parses a wall-clock duration: as [`parse_secs`], or milliseconds
/// (`200ms`).
pub fn parse_duration(flag: &str, text: &str) -> Result<std::time::Duration, String> {
    match text.trim().strip_suffix("ms") {
        Some(ms) => ms
            .trim()
            .parse::<u64>()
            .map(std::time::Duration::from_millis)
            .map_err(|_| format!("{flag}: '{text}' is not a duration like 200ms, 5s or 1m")),
        None => parse_secs(flag, text).map(std::time::Duration::from_secs),
    }
}

/// Parses a size: bytes (`2048`), or with a unit K/KB/KiB, M/MB/MiB, G/GB/GiB
/// (all powers of 1024, as the official generator's KB are).
pub fn parse_bytes(flag: &str, text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (digits, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        other => return Err(format!("{flag}: unknown unit '{other}' in '{text}'; use K, M or G (e.g. 2K, 64MiB)")),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .ok_or_else(|| format!("{flag}: '{text}' is not a size like 2048, 2K or 64MiB"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_secs("x", "5"), Ok(5));
        assert_eq!(parse_secs("x", "5s"), Ok(5));
        assert_eq!(parse_secs("x", "2m"), Ok(120));
        assert_eq!(parse_secs("x", "1h"), Ok(3600));
        assert!(parse_secs("--lateness", "5 parsecs").unwrap_err().contains("--lateness"));
        assert!(parse_secs("x", "-1").is_err());
        assert!(parse_secs("x", "").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("x", "2048"), Ok(2048));
        assert_eq!(parse_bytes("x", "2K"), Ok(2048));
        assert_eq!(parse_bytes("x", "2KB"), Ok(2048));
        assert_eq!(parse_bytes("x", "64MiB"), Ok(64 << 20));
        assert!(parse_bytes("x", "12 parsecs").is_err());
    }

    #[test]
    fn clap_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
