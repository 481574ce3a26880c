//! Diagnostics on stderr: warnings, errors and status lines are `tracing`
//! events, written as sentences (`kuniq: warning: ...`) by default or as one
//! JSON object per line (`--log-format json`) for log shippers.
//!
//! Every event's message is a complete sentence for people; its fields
//! (`partition`, `offset`, `frames`, ...) repeat the numbers for machines,
//! so the text format prints the message alone and the JSON format prints
//! both. The end-of-run summary is not an event: it stays on stderr as the
//! README documents it (`--summary text|json`).
//!
//! While a progress bar is drawn on the terminal, each line is written with
//! the bar hidden for the moment ([`crate::progress::suspend_bar`]), so logs
//! and the bar do not tear each other.

use std::fmt;
use std::io::{self, Write};

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{FmtSpan, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

/// How log lines look on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// `kuniq: message`, `kuniq: warning: message`: sentences for people.
    #[default]
    Text,
    /// One JSON object per line: `timestamp` (RFC 3339, UTC), `level`,
    /// `message` and the event's fields.
    Json,
}

/// Installs the process-wide logger; `name` starts each text line
/// (`kuniq`, `kuniq produce`). Events below INFO are not written. A second
/// call does nothing (the first logger stays).
pub fn init(format: LogFormat, name: &'static str) {
    let builder = tracing_subscriber::fmt()
        .with_max_level(Level::INFO)
        .with_writer(Stderr)
        .with_ansi(false)
        .with_span_events(FmtSpan::NONE);
    let _ = match format {
        LogFormat::Text => tracing::subscriber::set_global_default(builder.event_format(Text { name }).finish()),
        LogFormat::Json => tracing::subscriber::set_global_default(
            builder
                .json()
                .flatten_event(true)
                .with_target(false)
                .with_current_span(false)
                .with_span_list(false)
                .finish(),
        ),
    };
}

/// The text format: `NAME: [warning: |error: ]message`, fields left out
/// (the message already says them).
struct Text {
    name: &'static str,
}

impl<S, N> FormatEvent<S, N> for Text
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, _ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let level = match *event.metadata().level() {
            Level::ERROR => "error: ",
            Level::WARN => "warning: ",
            _ => "",
        };
        let mut message = Message(String::new());
        event.record(&mut message);
        writeln!(writer, "{}: {level}{}", self.name, message.0)
    }
}

/// Picks the `message` field out of an event.
struct Message(String);

impl tracing::field::Visit for Message {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            use fmt::Write as _;
            let _ = write!(self.0, "{value:?}");
        }
    }
}

/// stderr, with the progress bar (if one is drawn) hidden while a line is
/// written. The formatter hands over one whole line per `write_all`.
#[derive(Clone, Copy)]
struct Stderr;

impl Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        crate::progress::suspend_bar(|| io::stderr().lock().write_all(buf))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

impl<'a> MakeWriter<'a> for Stderr {
    type Writer = Stderr;

    fn make_writer(&'a self) -> Stderr {
        Stderr
    }
}
