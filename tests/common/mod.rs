//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod broker;
pub mod cli;
pub mod frames;
pub mod hostile;
pub mod kafka;
pub mod oracle;
