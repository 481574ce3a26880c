//! What every worker does, whatever its source: pick the parser once
//! (one monomorphized loop per parser, no dynamic dispatch per frame),
//! start pinned, and turn each frame into an event or a counted reject.
//!
//! The file pipeline ([`super`]) hands workers chunks of lines; the Kafka
//! source (`crate::source::kafka`) hands them partition batches. Both call
//! [`Frames::line`] or [`Frames::frame`] per frame, so the bookkeeping of a
//! frame (counted, sized, too large, parsed, hashed) exists once.

use std::thread::{Scope, ScopedJoinHandle};

use crate::count::sketch::UidCoupon;
use crate::count::{Estimator, UidHasher};
use crate::frame::{FrameParser, ParserKind, Reject};
use crate::stats::InputCounters;
use crate::window::Secs;
use crate::window::clock::Event;

/// Worker thread stack: the recursive parsers' depth guard needs well
/// under 1 MiB; this leaves room.
const WORKER_STACK_BYTES: usize = 8 << 20;

/// A worker's loop, generic over the frame parser: [`run_with_parser`]
/// calls [`WithParser::run`] with the concrete parser `kind` names.
pub(crate) trait WithParser {
    /// What the loop returns.
    type Output;
    /// Runs the loop with `parser`.
    fn run<P: FrameParser>(self, parser: P) -> Self::Output;
}

/// Runs `work` with the parser `kind` names, monomorphized for the
/// compiled-in parsers (a boxed parser otherwise).
pub(crate) fn run_with_parser<W: WithParser>(kind: ParserKind, work: W) -> W::Output {
    match kind {
        #[cfg(feature = "scan")]
        ParserKind::Scan => work.run(crate::frame::scan::ScanParser::new()),
        #[cfg(feature = "sonic")]
        ParserKind::Sonic => work.run(crate::frame::sonic::SonicParser::new()),
        #[cfg(feature = "serde")]
        ParserKind::Serde => work.run(crate::frame::serdejson::SerdeParser::new()),
        #[allow(unreachable_patterns)]
        _ => work.run(kind.build()),
    }
}

/// Starts worker `index` on `scope`, named `name`, pinned to the `index`-th
/// of `cores` (round robin; not pinned when `cores` is empty).
pub(crate) fn spawn_worker<'scope, T: Send + 'scope>(
    scope: &'scope Scope<'scope, '_>,
    name: String,
    index: usize,
    cores: &[core_affinity::CoreId],
    work: impl FnOnce() -> T + Send + 'scope,
) -> ScopedJoinHandle<'scope, T> {
    let core = (!cores.is_empty()).then(|| cores[index % cores.len()]);
    std::thread::Builder::new()
        .name(name)
        .stack_size(WORKER_STACK_BYTES)
        .spawn_scoped(scope, move || {
            if let Some(core) = core {
                core_affinity::set_for_current(core);
            }
            work()
        })
        .expect("spawning a worker thread")
}

/// The cores workers are pinned to: all of them with `pin`, none without.
pub(crate) fn cores(pin: bool) -> Vec<core_affinity::CoreId> {
    if pin { core_affinity::get_core_ids().unwrap_or_default() } else { Vec::new() }
}

/// A worker's parser and uid hasher, and the frame size limit: turns
/// frames into events and counters.
pub(crate) struct Frames<P> {
    parser: P,
    hasher: UidHasher,
    /// Windows count with a sketch: each frame also gets its uid's
    /// DataSketches coupon (a second hash, MurmurHash3, of the uid).
    coupons: bool,
    max_frame_bytes: usize,
}

impl<P: FrameParser> Frames<P> {
    pub(crate) fn new(parser: P, max_frame_bytes: usize, estimator: Estimator) -> Frames<P> {
        Frames { parser, hasher: UidHasher::new(), coupons: estimator.is_sketch(), max_frame_bytes }
    }

    /// The event of an admitted frame.
    #[inline]
    fn event(hasher: &UidHasher, coupons: bool, ts: u64, uid: &[u8], offset: u64) -> Event {
        let coupon = if coupons { UidCoupon::of(uid) } else { None };
        Event { ts: ts as Secs, hash: hasher.hash(uid), offset, coupon }
    }

    /// One frame (a Kafka record's payload) at `offset`.
    #[inline]
    pub(crate) fn frame(&mut self, payload: &[u8], offset: u64, counters: &mut InputCounters, events: &mut Vec<Event>) {
        counters.frames += 1;
        counters.bytes += payload.len() as u64;
        if payload.len() > self.max_frame_bytes {
            counters.reject(Reject::TooLarge);
            return;
        }
        match self.parser.parse(payload) {
            Ok(fields) => {
                events.push(Self::event(&self.hasher, self.coupons, fields.ts, fields.uid, offset));
            }
            Err(reason) => counters.reject(reason),
        }
    }

    /// The line at the start of `data` (up to its line feed), at `offset`;
    /// returns the line's length without the line feed. Line bytes are
    /// counted by the caller, per chunk.
    #[inline]
    pub(crate) fn line(
        &mut self,
        data: &[u8],
        offset: u64,
        counters: &mut InputCounters,
        events: &mut Vec<Event>,
    ) -> usize {
        let (len, verdict) = self.parser.parse_line(data);
        counters.frames += 1;
        // Checked after parsing, so the scanner can find the line's end as
        // it goes; a too-large line costs a scan but is never counted.
        if len > self.max_frame_bytes {
            counters.reject(Reject::TooLarge);
        } else {
            match verdict {
                Ok(fields) => {
                    events.push(Self::event(&self.hasher, self.coupons, fields.ts, fields.uid, offset));
                }
                Err(reason) => counters.reject(reason),
            }
        }
        len
    }
}

impl FrameParser for Box<dyn FrameParser> {
    fn parse<'a>(&'a mut self, frame: &'a [u8]) -> Result<crate::frame::Fields<'a>, Reject> {
        (**self).parse(frame)
    }

    fn parse_line<'a>(&'a mut self, data: &'a [u8]) -> (usize, Result<crate::frame::Fields<'a>, Reject>) {
        (**self).parse_line(data)
    }
}
