//! Prometheus metrics of a `kuniq count` run, served over HTTP at
//! `/metrics` (`--metrics-addr`).
//!
//! Nothing here runs per frame. Workers already count per chunk or per
//! poll into `InputCounters`; the merge thread copies the run's
//! [`Totals`] into a [`Snapshot`] after each step ([`Metrics::publish`]:
//! one uncontended lock and a copy of a few hundred bytes), and a scrape
//! encodes the latest snapshot. Only the emission-latency histogram and the
//! producer-error counter are updated where their events happen (one
//! observation per record, a few per minute of event time).
//!
//! The endpoint is one thread answering one connection at a time with
//! HTTP/1.1 (`GET /metrics`, anything else 404), so a scrape never touches
//! the counting threads and a slow client can delay only other scrapes (by
//! at most [`IO_TIMEOUT`]). No async runtime.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::frame::Reject;
use crate::stats::Totals;
use crate::window::Secs;
use crate::window::engine::Engine;

/// Upper bounds (seconds) of the emission-latency buckets: 1 ms to 10 s,
/// dense around the 100 ms target.
pub const LATENCY_BUCKETS_SECS: [f64; 14] =
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Longest a scrape connection may take to send its request or read the
/// answer before it is dropped.
pub const IO_TIMEOUT: Duration = Duration::from_secs(2);

/// The host `--metrics-addr` binds when given only a port.
pub const DEFAULT_METRICS_HOST: &str = "127.0.0.1";

/// One Kafka partition as the metrics show it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PartitionSnapshot {
    /// The partition's watermark (highest admitted ts − lateness), once it
    /// has one.
    pub watermark: Option<Secs>,
    /// Messages between kuniq's next offset and the partition's end (the
    /// last stable offset, as kuniq reads committed), once both are known.
    pub lag: Option<i64>,
}

/// What a scrape shows: the run's totals as of the merge's last step.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The run's totals.
    pub totals: Totals,
    /// Bytes held by the open windows (computed only when metrics are
    /// served: it walks every open window).
    pub state_bytes: u64,
    /// Kafka partitions, by number (empty for files and stdin).
    pub partitions: Vec<PartitionSnapshot>,
}

/// A run's metrics: published by the merge thread, read by scrapes.
#[derive(Debug)]
pub struct Metrics {
    snapshot: Arc<Mutex<Snapshot>>,
    latency: Histogram,
    producer_errors: Counter,
    registry: Registry,
}

impl Metrics {
    /// Empty metrics (every counter at 0).
    pub fn new() -> Arc<Metrics> {
        let snapshot = Arc::new(Mutex::new(Snapshot::default()));
        let latency = Histogram::new(LATENCY_BUCKETS_SECS);
        let producer_errors = Counter::default();
        let mut registry = Registry::default();
        registry.register_collector(Box::new(SnapshotCollector(Arc::clone(&snapshot))));
        registry.register(
            "kuniq_emission_latency_seconds",
            "Time from the merge applying the batch that completed a window (moved the watermark past its end, or \
             past a revision stage) to the window's record being acknowledged by the output topic's producer, or \
             written and flushed to stdout",
            latency.clone(),
        );
        registry.register(
            "kuniq_producer_errors",
            "Records (and checkpoint state records) the output producer failed to deliver; any failure ends the run",
            producer_errors.clone(),
        );
        Arc::new(Metrics { snapshot, latency, producer_errors, registry })
    }

    /// Publishes the run's totals after a step (merge thread).
    pub fn publish(&self, totals: &Totals, engine: &Engine) {
        let state_bytes = engine.state_bytes() as u64;
        let mut s = self.snapshot.lock().unwrap_or_else(|p| p.into_inner());
        s.totals = *totals;
        s.state_bytes = state_bytes;
    }

    /// Publishes the Kafka partitions' watermarks and lags.
    pub fn publish_partitions(&self, partitions: impl Iterator<Item = PartitionSnapshot>) {
        let mut s = self.snapshot.lock().unwrap_or_else(|p| p.into_inner());
        s.partitions.clear();
        s.partitions.extend(partitions);
    }

    /// The latest published totals.
    pub fn snapshot(&self) -> Snapshot {
        self.snapshot.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Records one emission's latency.
    pub fn observe_latency(&self, latency: Duration) {
        self.latency.observe(latency.as_secs_f64());
    }

    /// Counts one failed delivery.
    pub fn producer_error(&self) {
        self.producer_errors.inc();
    }

    /// The metrics in the OpenMetrics text format (what Prometheus scrapes).
    pub fn render(&self) -> String {
        let mut text = String::with_capacity(4096);
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }

    /// Serves `GET /metrics` on `addr` from a background thread for the rest
    /// of the process; returns the bound address (its port when `addr` asks
    /// for port 0).
    pub fn serve(self: &Arc<Self>, addr: SocketAddr) -> io::Result<SocketAddr> {
        let listener = TcpListener::bind(addr)?;
        let bound = listener.local_addr()?;
        let metrics = Arc::clone(self);
        std::thread::Builder::new().name("kuniq-metrics".into()).spawn(move || {
            for stream in listener.incoming().flatten() {
                // A client that goes away mid-answer is its own problem.
                let _ = answer(&metrics, stream);
            }
        })?;
        Ok(bound)
    }
}

/// Parses `--metrics-addr`: `HOST:PORT`, `[V6]:PORT`, or a port alone
/// (`9898` or `:9898`), which binds [`DEFAULT_METRICS_HOST`].
pub fn parse_addr(text: &str) -> Result<SocketAddr, String> {
    let text = text.trim();
    let port_only = text.strip_prefix(':').unwrap_or(text);
    if let Ok(port) = port_only.parse::<u16>() {
        return Ok(SocketAddr::new(DEFAULT_METRICS_HOST.parse().expect("a valid IPv4 address"), port));
    }
    let resolved = text.to_socket_addrs().map_err(|e| {
        format!("--metrics-addr expects HOST:PORT or a port (e.g. 127.0.0.1:9898 or 9898), not '{text}': {e}")
    })?;
    resolved.into_iter().next().ok_or_else(|| format!("--metrics-addr '{text}' resolves to no address"))
}

/// Answers one connection: the metrics for `GET /metrics` (or `HEAD`), 404
/// for other paths, 405 for other methods.
fn answer(metrics: &Metrics, mut stream: TcpStream) -> io::Result<()> {
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut request = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    // The request line and headers; a body (none expected) is ignored.
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && !request.windows(2).any(|w| w == b"\n\n") {
        let n = stream.read(&mut buf)?;
        if n == 0 || request.len() > 16 << 10 {
            break;
        }
        request.extend_from_slice(&buf[..n]);
    }
    let line = request.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let (status, content_type, body) = match (method, path) {
        ("GET" | "HEAD", "/metrics") => {
            ("200 OK", "application/openmetrics-text; version=1.0.0; charset=utf-8", metrics.render())
        }
        ("GET" | "HEAD", _) => ("404 Not Found", "text/plain; charset=utf-8", "kuniq serves /metrics only\n".into()),
        _ => ("405 Method Not Allowed", "text/plain; charset=utf-8", "GET /metrics\n".into()),
    };
    let mut response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if method != "HEAD" {
        response.push_str(&body);
    }
    stream.write_all(response.as_bytes())?;
    stream.flush()
}

/// Encodes the latest [`Snapshot`] at each scrape.
#[derive(Debug)]
struct SnapshotCollector(Arc<Mutex<Snapshot>>);

fn counter(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> Result<(), std::fmt::Error> {
    let metric = ConstCounter::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

fn gauge(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: i64) -> Result<(), std::fmt::Error> {
    let metric = ConstGauge::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

/// A gauge family with one sample per partition that has a value, labelled
/// `partition`; nothing at all when no partition has one.
fn partition_gauges(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    values: impl Iterator<Item = Option<i64>> + Clone,
) -> Result<(), std::fmt::Error> {
    if values.clone().all(|v| v.is_none()) {
        return Ok(());
    }
    let mut family = encoder.encode_descriptor(name, help, None, ConstGauge::new(0i64).metric_type())?;
    for (p, value) in values.enumerate() {
        if let Some(value) = value {
            let labels = [("partition", p.to_string())];
            ConstGauge::new(value).encode(family.encode_family(&labels)?)?;
        }
    }
    Ok(())
}

impl Collector for SnapshotCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = self.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let (i, e) = (&s.totals.input, &s.totals.engine);
        let e_ = &mut encoder;
        // Counter names get `_total` appended by the encoder.
        counter(e_, "kuniq_frames", "Frames read (lines or Kafka records), usable or not", i.frames)?;
        counter(e_, "kuniq_input_bytes", "Bytes of frames read (line endings included for files)", i.bytes)?;
        {
            let metric = ConstCounter::new(0u64);
            let mut family = encoder.encode_descriptor(
                "kuniq_frames_rejected",
                "Frames skipped as unusable, by reason",
                None,
                metric.metric_type(),
            )?;
            for reason in Reject::ALL {
                let labels = [("reason", reason.name())];
                ConstCounter::new(i.rejected[reason.index()]).encode(family.encode_family(&labels)?)?;
            }
        }
        let e_ = &mut encoder;
        counter(e_, "kuniq_frames_counted", "Frames counted into windows, on time or late", e.counted)?;
        counter(
            e_,
            "kuniq_frames_late",
            "Frames counted after their window was emitted, within the allowed lateness (they make revisions)",
            e.late,
        )?;
        counter(e_, "kuniq_frames_too_late", "Frames beyond the allowed lateness: reported, not counted", e.too_late)?;
        counter(
            e_,
            "kuniq_frames_quarantined",
            "Frames far ahead of their stream's watermark (bit flips): reported, not counted",
            e.quarantined,
        )?;
        counter(e_, "kuniq_records_emitted", "Records emitted (every revision of every window)", e.emissions)?;
        counter(
            e_,
            "kuniq_revisions_emitted",
            "Records that revise a closed window's record (late frames)",
            e.revisions,
        )?;
        counter(
            e_,
            "kuniq_provisional_records_emitted",
            "Provisional records of open windows (\"closed\": false, --early-interval)",
            e.provisional,
        )?;
        counter(e_, "kuniq_windows_finalized", "Windows finalized and freed", e.windows_finalized)?;
        counter(
            e_,
            "kuniq_windows_forced",
            "Windows emitted early as final because --max-open-windows were open",
            e.windows_forced,
        )?;
        gauge(e_, "kuniq_open_windows", "Windows open now, all kinds", s.totals.open_windows as i64)?;
        gauge(
            e_,
            "kuniq_window_state_bytes",
            "Bytes held by the open windows (uid sets, late frames)",
            s.state_bytes as i64,
        )?;
        if let Some(wm) = s.totals.watermark {
            gauge(e_, "kuniq_watermark_seconds", "Global watermark, unix seconds of event time", wm)?;
        }
        partition_gauges(
            &mut encoder,
            "kuniq_partition_watermark_seconds",
            "Watermark of each Kafka partition (highest admitted ts - lateness), unix seconds",
            s.partitions.iter().map(|p| p.watermark),
        )?;
        partition_gauges(
            &mut encoder,
            "kuniq_consumer_lag_messages",
            "Messages of each Kafka partition not read yet: the partition's end (from librdkafka statistics, \
             refreshed every 2 s) minus kuniq's next offset",
            s.partitions.iter().map(|p| p.lag),
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::InputCounters;

    #[test]
    fn addresses_default_to_loopback() {
        assert_eq!(parse_addr("9898").unwrap(), "127.0.0.1:9898".parse().unwrap());
        assert_eq!(parse_addr(":9898").unwrap(), "127.0.0.1:9898".parse().unwrap());
        assert_eq!(parse_addr("0.0.0.0:80").unwrap(), "0.0.0.0:80".parse().unwrap());
        assert_eq!(parse_addr("[::1]:9898").unwrap(), "[::1]:9898".parse().unwrap());
        assert!(parse_addr("nowhere").unwrap_err().contains("--metrics-addr"));
    }

    #[test]
    fn scrape_shows_published_totals() {
        let metrics = Metrics::new();
        let mut input = InputCounters { frames: 7, bytes: 700, ..InputCounters::default() };
        input.reject(Reject::Malformed);
        let engine = Engine::new(crate::window::engine::EngineConfig::default(), 2);
        metrics.publish(&Totals::of(&input, &engine, None, Duration::ZERO), &engine);
        metrics.publish_partitions(
            [PartitionSnapshot { watermark: Some(1_468_244_400), lag: Some(3) }, PartitionSnapshot::default()]
                .into_iter(),
        );
        metrics.observe_latency(Duration::from_millis(20));
        let text = metrics.render();
        for line in [
            "kuniq_frames_total 7",
            "kuniq_input_bytes_total 700",
            "kuniq_frames_rejected_total{reason=\"malformed\"} 1",
            "kuniq_frames_rejected_total{reason=\"empty\"} 0",
            "kuniq_partition_watermark_seconds{partition=\"0\"} 1468244400",
            "kuniq_consumer_lag_messages{partition=\"0\"} 3",
            "kuniq_emission_latency_seconds_count 1",
            "kuniq_producer_errors_total 0",
        ] {
            assert!(text.lines().any(|l| l == line), "no line {line:?} in:\n{text}");
        }
        assert!(!text.contains("partition=\"1\""), "{text}");
        assert!(!text.contains("kuniq_watermark_seconds "), "no global watermark yet:\n{text}");
    }

    #[test]
    fn endpoint_answers_metrics_and_404() {
        let metrics = Metrics::new();
        let addr = metrics.serve("127.0.0.1:0".parse().unwrap()).unwrap();
        let get = |path: &str| {
            let mut stream = TcpStream::connect(addr).unwrap();
            write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            let mut text = String::new();
            stream.read_to_string(&mut text).unwrap();
            text
        };
        let ok = get("/metrics");
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n") && ok.contains("kuniq_frames_total 0"), "{ok}");
        assert!(get("/").starts_with("HTTP/1.1 404 "));
    }
}
