//! kuniq: exact unique users per minute of event time.
pub mod generator;
pub mod frame;
pub mod count;
pub mod window;
pub mod pipeline;
pub mod sink;
pub mod source;
pub mod stats;
pub mod cli;
pub mod progress;
