//! The `kuniq` binary: parse flags, run, map the outcome to an exit code.
//!
//! Exit codes: 0 success (also when stdout is closed early, as `| head`
//! does), 1 runtime error, 2 usage error.

use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;
use std::sync::atomic::{AtomicBool, Ordering};

use kuniq::cli::{
    Cli, Command, ConsumeArgs, CountArgs, GenArgs, MergeArgs, PlotArgs, ProduceArgs, ProgressMode, QueryArgs,
    RecordSource, RecordsArgs, SummaryFormat,
};
use kuniq::kafka;
use kuniq::pipeline::{self, PipelineError};
use kuniq::progress::{Display, Reporter};
use kuniq::sink::kafka::{KafkaSink, Output};
use kuniq::sink::{LineSink, SinkError};
use kuniq::source::file::{DEFAULT_SEGMENT_BYTES, FileSource};
use kuniq::source::kafka::KafkaPlan;

/// mimalloc: window state is many small, short-lived allocations (hash
/// tables growing, late-frame buffers), where it beats the system
/// allocator, and it returns freed windows' memory to the OS promptly.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = parse_args();
    let name = match cli.command {
        Command::Produce(_) => "kuniq produce",
        Command::Consume(_) => "kuniq consume",
        Command::Plot(_) => "kuniq plot",
        Command::Query(_) => "kuniq query",
        Command::Gen(_) => "kuniq gen",
        Command::Merge(_) => "kuniq merge",
        Command::Count(ref args) if args.kafka.partials_topic.is_some() => "kuniq worker",
        Command::Count(_) => "kuniq",
    };
    kuniq::logging::init(cli.log_format, name);
    let result = match cli.command {
        Command::Count(args) => count(&args),
        Command::Gen(args) => gen_frames(&args),
        Command::Produce(args) => produce(&args),
        Command::Consume(args) => consume(&args),
        Command::Plot(args) => plot(&args),
        Command::Query(args) => query(&args),
        Command::Merge(args) => merge(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<UsageError>().is_some() => {
            tracing::error!("{e:#} (see kuniq --help)");
            ExitCode::from(2)
        }
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Parses the command line. The parser's own errors quote arguments (an
/// unexpected `hunter2` after `-X sasl.password hunter2`), so when secret
/// properties are on the command line they are blanked first.
fn parse_args() -> Cli {
    let args: Vec<String> = std::env::args_os().map(|a| a.to_string_lossy().into_owned()).collect();
    match Cli::try_parse_from(std::env::args_os()) {
        Ok(cli) => cli,
        Err(e) => {
            let secrets = kafka::properties::secrets_in_args(&args);
            if secrets.is_empty() {
                e.exit();
            }
            let text = kafka::properties::redact(&e.render().to_string(), &secrets);
            if e.use_stderr() {
                eprint!("{text}");
            } else {
                print!("{text}");
                let _ = io::stdout().flush();
            }
            std::process::exit(e.exit_code());
        }
    }
}

/// A flag value that parses but makes no sense: exit status 2, like the
/// errors clap reports itself.
#[derive(Debug)]
struct UsageError(String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause.downcast_ref::<io::Error>().is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
            || matches!(cause.downcast_ref::<SinkError>(), Some(SinkError::Write(io)) if io.kind() == io::ErrorKind::BrokenPipe)
    })
}

fn count(args: &CountArgs) -> Result<()> {
    let mut plan = args.plan().map_err(UsageError)?;
    if let Some(addr) = args.metrics_addr().map_err(UsageError)? {
        let metrics = kuniq::metrics::Metrics::new();
        let bound = metrics.serve(addr).with_context(|| format!("cannot serve metrics on {addr} (--metrics-addr)"))?;
        tracing::info!(addr = %bound, "metrics at http://{bound}/metrics");
        plan.metrics = Some(metrics);
    }
    // -i and -b both given: a usage error, unless the brokers come from
    // KUNIQ_BROKERS (set for Kafka runs), which an explicit -i overrides.
    if args.input.is_some() && args.kafka.brokers.is_some() {
        if args.kafka.brokers != std::env::var("KUNIQ_BROKERS").ok() {
            return Err(UsageError("give --input or -b/--brokers, not both".into()).into());
        }
    } else if let Some(kafka) = args.kafka.plan().map_err(UsageError)? {
        if args.workers.is_none() {
            plan.workers = kuniq::cli::default_kafka_workers();
        }
        if let Some(partials_topic) = &args.kafka.partials_topic {
            return count_worker(args, &plan, &kafka, partials_topic);
        }
        return count_kafka(args, &plan, &kafka);
    }
    let input = args.input.as_deref().unwrap_or("-");
    let source = FileSource::open(input, DEFAULT_SEGMENT_BYTES, plan.max_frame_bytes)
        .with_context(|| format!("cannot read input '{input}' (give a JSON-lines file, a .gz file, or - for stdin)"))?;
    let mut sink = LineSink::with_metrics(BufWriter::with_capacity(1 << 16, io::stdout().lock()), plan.metrics.clone());
    let interval = kuniq::cli::status_interval(&args.status_interval).map_err(UsageError)?;
    let mut reporter = Reporter::new(display(args.progress, Display::Auto), source.total_bytes(), interval);
    let summary = pipeline::count_file(&plan, &source, &mut sink, |p| reporter.update(p));
    reporter.finish();
    let summary = match summary {
        Err(PipelineError::Input(e)) => return Err(anyhow::Error::new(e).context(format!("reading '{input}'"))),
        other => other?,
    };
    print_summary(args.summary, &summary, || summary.to_json());
    Ok(())
}

/// `--progress never` silences progress; otherwise `auto` shows it as given.
fn display(mode: ProgressMode, auto: Display) -> Display {
    match mode {
        ProgressMode::Auto => auto,
        ProgressMode::Never => Display::Off,
    }
}

/// A run's end-of-run summary on stderr: `text` or `json` (made only when
/// asked for), as `format` says. Every command that counts prints its
/// summary through here.
fn print_summary(format: SummaryFormat, text: &dyn std::fmt::Display, json: impl FnOnce() -> String) {
    match format {
        SummaryFormat::Text => eprintln!("{text}"),
        SummaryFormat::Json => eprintln!("{}", json()),
        SummaryFormat::None => {}
    }
}

fn count_kafka(args: &CountArgs, plan: &pipeline::CountPlan, kafka: &KafkaPlan) -> Result<()> {
    // SIGINT/SIGTERM: stop reading, save the state (after every emitted
    // record is acknowledged), exit 0; open windows are the next run's.
    static STOP: AtomicBool = AtomicBool::new(false);
    ctrlc::set_handler(|| STOP.store(true, Ordering::Relaxed)).context("installing the signal handler")?;
    let interval = kuniq::cli::status_interval(&args.status_interval).map_err(UsageError)?;
    let mut reporter = Reporter::new(display(args.progress, Display::Status), None, interval);
    let config =
        kafka::client_config(&kafka.brokers, &[("linger.ms", "5")], &kafka::properties_for(&kafka.properties, false))
            .map_err(|e| UsageError(e.to_string()))?;
    let output = Output::new(&config, args.kafka.transactional_id().as_deref(), plan.metrics.clone())?;
    let summary = match &args.kafka.output_topic {
        Some(topic) => {
            let mut sink = KafkaSink::new(output.clone(), topic);
            pipeline::count_kafka(plan, kafka, &mut sink, &output, &STOP, |p| reporter.update(p))
        }
        None => {
            let mut sink =
                LineSink::with_metrics(BufWriter::with_capacity(1 << 16, io::stdout().lock()), plan.metrics.clone());
            pipeline::count_kafka(plan, kafka, &mut sink, &output, &STOP, |p| reporter.update(p))
        }
    };
    reporter.finish();
    let summary = summary.with_context(|| format!("reading topic '{}' from {}", kafka.topic, kafka.brokers))?;
    print_summary(args.summary, &summary, || summary.to_json());
    Ok(())
}

/// `kuniq count --partials-topic`: a scale-out worker.
fn count_worker(args: &CountArgs, plan: &pipeline::CountPlan, kafka: &KafkaPlan, partials_topic: &str) -> Result<()> {
    static STOP: AtomicBool = AtomicBool::new(false);
    ctrlc::set_handler(|| STOP.store(true, Ordering::Relaxed)).context("installing the signal handler")?;
    let summary = kuniq::scale::worker::run(plan, kafka, partials_topic, &STOP)
        .with_context(|| format!("counting topic '{}' from {} as a worker", kafka.topic, kafka.brokers))?;
    print_summary(args.summary, &summary, || summary.to_json());
    Ok(())
}

/// `kuniq merge`: the records of the workers' partials.
fn merge(args: &MergeArgs) -> Result<()> {
    static STOP: AtomicBool = AtomicBool::new(false);
    ctrlc::set_handler(|| STOP.store(true, Ordering::Relaxed)).context("installing the signal handler")?;
    let plan = args.plan().map_err(UsageError)?;
    let config =
        kafka::client_config(&plan.brokers, &[("linger.ms", "5")], &kafka::properties_for(&plan.properties, false))
            .map_err(|e| UsageError(e.to_string()))?;
    let summary = match &args.output_topic {
        Some(topic) => {
            let transactional_id = args.exactly_once.then(|| format!("kuniq-merge-{}", plan.group));
            let output = Output::new(&config, transactional_id.as_deref(), None)?;
            let mut sink = KafkaSink::new(output.clone(), topic);
            let summary = kuniq::scale::merge::run(&plan, &mut sink, Some(&output), &STOP);
            if summary.is_err() {
                output.abort_transaction();
            }
            summary
        }
        None => {
            let mut sink = LineSink::new(BufWriter::with_capacity(1 << 16, io::stdout().lock()));
            kuniq::scale::merge::run(&plan, &mut sink, None, &STOP)
        }
    };
    let summary =
        summary.with_context(|| format!("merging partials topic '{}' from {}", plan.partials_topic, plan.brokers))?;
    print_summary(args.summary, &summary, || summary.to_json());
    Ok(())
}

fn consume(args: &ConsumeArgs) -> Result<()> {
    static STOP: AtomicBool = AtomicBool::new(false);
    ctrlc::set_handler(|| STOP.store(true, Ordering::Relaxed)).context("installing the signal handler")?;
    let config = kafka::client_config(
        &args.brokers,
        &[("fetch.wait.max.ms", kafka::DEFAULT_FETCH_WAIT_MAX_MS)],
        &args.client.properties().map_err(UsageError)?,
    )
    .map_err(|e| UsageError(e.to_string()))?;
    let mut out = BufWriter::with_capacity(1 << 16, io::stdout().lock());
    kafka::consume::consume(&config, &args.topic, args.keys, args.exit_at_end, &mut out, &|| {
        STOP.load(Ordering::Relaxed)
    })?;
    Ok(())
}

/// Opens the records `-i` or `-b`/`-t` name: a file or stdin as it is
/// read, a topic read to its end first. Returns them and their name.
fn open_records(args: &RecordsArgs) -> Result<(Box<dyn io::BufRead>, String)> {
    Ok(match args.source().map_err(UsageError)? {
        RecordSource::Topic { brokers, topic } => {
            let config = kafka::client_config(
                &brokers,
                &[("fetch.wait.max.ms", kafka::DEFAULT_FETCH_WAIT_MAX_MS)],
                &args.client.properties().map_err(UsageError)?,
            )
            .map_err(|e| UsageError(e.to_string()))?;
            let mut records = Vec::new();
            kafka::consume::consume(&config, &topic, false, true, &mut records, &|| false)?;
            (Box::new(io::Cursor::new(records)), format!("topic '{topic}'"))
        }
        RecordSource::Input(input) => match input.as_str() {
            "-" => (Box::new(io::stdin().lock()), "stdin".to_string()),
            path => {
                let file = File::open(path).with_context(|| format!("cannot read input '{path}'"))?;
                (Box::new(io::BufReader::with_capacity(1 << 16, file)), format!("'{path}'"))
            }
        },
    })
}

fn query(args: &QueryArgs) -> Result<()> {
    let range = args.range().map_err(UsageError)?;
    let (records, source) = open_records(&args.records)?;
    let answer = kuniq::query::answer(records, range).with_context(|| format!("answering from {source}"))?;
    let mut out = io::stdout().lock();
    writeln!(out, "{}", answer.to_json()).and_then(|()| out.flush()).context("writing the answer to stdout")?;
    if answer.provisional > 0 {
        tracing::warn!(
            provisional = answer.provisional,
            "{} of the {} windows in the range were still open at their latest record: the answer may grow",
            answer.provisional,
            answer.windows
        );
    }
    Ok(())
}

fn plot(args: &PlotArgs) -> Result<()> {
    let (kind, options) = args.options().map_err(UsageError)?;
    let (records, source) = open_records(&args.records)?;
    let series = kuniq::plot::read_series(records, kind.name());
    let series = series.with_context(|| format!("reading records from {source}"))?;
    let png = kuniq::plot::render_png(&series, &options)?;
    let output = args.output.display();
    if args.output.as_os_str() == "-" {
        let mut out = io::stdout().lock();
        out.write_all(&png).and_then(|()| out.flush()).context("writing the PNG to stdout")?;
    } else {
        std::fs::write(&args.output, &png).with_context(|| format!("cannot write '{output}'"))?;
        let revised = series.points.iter().filter(|p| p.revised()).count();
        eprintln!(
            "kuniq plot: {} {kind} windows ({revised} revised) from {} records to '{output}' ({}x{}, {} KB)",
            series.points.len(),
            series.records,
            options.width,
            options.height,
            png.len().div_ceil(1024)
        );
    }
    Ok(())
}

fn produce(args: &ProduceArgs) -> Result<()> {
    let config = kafka::client_config(
        &args.brokers,
        &[("linger.ms", "20"), ("batch.num.messages", "10000")],
        &args.client.properties().map_err(UsageError)?,
    )
    .map_err(|e| UsageError(e.to_string()))?;
    let source = FileSource::open(&args.input, DEFAULT_SEGMENT_BYTES, usize::MAX).with_context(|| {
        format!("cannot read input '{}' (give a JSON-lines file, a .gz file, or - for stdin)", args.input)
    })?;
    let interval = kuniq::cli::status_interval(&args.status_interval).map_err(UsageError)?;
    let mut reporter = Reporter::loading(display(args.progress, Display::Auto), source.total_bytes(), interval);
    let started = std::time::Instant::now();
    let summary = kafka::produce::produce(&config, &args.topic, &source, args.rate, |records, bytes| {
        let input = kuniq::stats::InputCounters { frames: records, bytes, ..Default::default() };
        reporter.update(&kuniq::stats::Totals { input, elapsed: started.elapsed(), ..Default::default() });
    });
    reporter.finish();
    let summary = summary?;
    let secs = summary.elapsed.as_secs_f64().max(1e-9);
    eprintln!(
        "kuniq produce: {} records ({:.1} MB) to '{}' ({} partitions) in {:.2} s: {:.0} records/s",
        summary.records,
        summary.bytes as f64 / 1e6,
        args.topic,
        summary.partitions,
        secs,
        summary.records as f64 / secs
    );
    Ok(())
}

fn gen_frames(args: &GenArgs) -> Result<()> {
    let cfg = args.config().map_err(UsageError)?;
    let started = std::time::Instant::now();
    let show = args.progress == ProgressMode::Auto;
    // A live line on a terminal; in logs, only the final line.
    let live = show && io::stderr().is_terminal();
    let progress = |done: u64| {
        if live && started.elapsed() > kuniq::progress::QUIET_START {
            eprint!("\rkuniq gen: {done} of {} frames", cfg.count);
        }
    };
    match args.output.as_deref().filter(|p| p.as_os_str() != "-") {
        None => {
            let mut out = BufWriter::with_capacity(1 << 20, io::stdout().lock());
            kuniq::generator::generate(&cfg, &mut out, progress)?;
            out.flush()?;
        }
        Some(path) => {
            let file = File::create(path).with_context(|| format!("cannot create '{}'", path.display()))?;
            if path.extension().is_some_and(|e| e == "gz") {
                let level = flate2::Compression::new(args.gzip_level);
                let mut out = flate2::write::GzEncoder::new(BufWriter::with_capacity(1 << 20, file), level);
                kuniq::generator::generate(&cfg, &mut out, progress)?;
                out.finish()?.flush()?;
            } else {
                let mut out = BufWriter::with_capacity(1 << 20, file);
                kuniq::generator::generate(&cfg, &mut out, progress)?;
                out.flush()?;
            }
        }
    }
    if show && started.elapsed() > kuniq::progress::QUIET_START {
        eprintln!("\rkuniq gen: {} frames in {:.1} s", cfg.count, started.elapsed().as_secs_f64());
    }
    Ok(())
}
