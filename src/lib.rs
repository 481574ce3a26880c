//! kuniq: exact unique users per minute of event time.
pub mod cli;
pub mod count;
pub mod frame;
pub mod generator;
pub mod kafka;
pub mod logging;
pub mod metrics;
pub mod pipeline;
pub mod plot;
pub mod progress;
pub mod query;
pub mod scale;
pub mod sink;
pub mod source;
pub mod stats;
pub mod window;
