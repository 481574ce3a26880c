//! The sonic parser: sonic-rs lazy iteration over the top-level members.
//!
//! `to_object_iter` (the checked variant: it validates UTF-8, grammar and
//! escapes of the values it skips) yields each top-level key, decoded, with
//! its value's raw text; kuniq records `uid` and `ts` and checks what follows
//! the object itself (sonic stops at the closing brace).
//!
//! Known sonic-rs limits and how this parser stays clear of them:
//! - `get_many` mishandles duplicate keys (cloudwego/sonic-rs#234) and
//!   escaped keys (#241): not used; every member is visited in order.
//! - Checked skipping recurses per nesting level and can overflow the stack
//!   (#232): frames that may nest deeper than
//!   [`super::RECURSION_SAFE_BRACKETS`] go to the iterative strict parser.
//! - sonic rejects lone-surrogate escapes that RFC 8259's grammar allows:
//!   any frame sonic rejects is judged again by the strict parser, so the
//!   verdict (and the reason) is the same as every other parser's. Valid
//!   frames, the common case, pay nothing for this.
//! - Checked skipping does not look at the four hex digits of `\u` escapes
//!   in the values it skips: after sonic accepts a frame, every `\u` escape
//!   is checked (a SIMD search for the byte pair, usually finding none).

use std::sync::LazyLock;

use memchr::memmem::Finder;
use sonic_rs::to_object_iter;

use super::strict::StrictParser;
use super::{FieldSeen, Fields, FrameParser, Reject, Scratch, finish, is_json_ws};

/// sonic-rs based parser with reusable scratch space.
#[derive(Debug, Default)]
pub struct SonicParser {
    scratch: Scratch,
    strict: StrictParser,
}

impl SonicParser {
    /// A parser with empty buffers.
    pub fn new() -> SonicParser {
        SonicParser::default()
    }
}

impl FrameParser for SonicParser {
    fn parse<'a>(&'a mut self, frame: &'a [u8]) -> Result<Fields<'a>, Reject> {
        if super::may_nest_deeper_than(frame, super::RECURSION_SAFE_BRACKETS) {
            return self.strict.parse(frame);
        }
        match members(frame) {
            Some((uid, ts)) if unicode_escapes_ok(frame) => finish(uid, ts, &mut self.scratch),
            _ => self.strict.parse(frame),
        }
    }
}

static UNICODE_ESCAPE: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\\u"));

/// True when every `\u` escape in `frame` has four hex digits. In a frame
/// sonic accepted, backslashes occur only inside strings; `\u` is an escape
/// when an odd number of backslashes ends at it.
fn unicode_escapes_ok(frame: &[u8]) -> bool {
    UNICODE_ESCAPE.find_iter(frame).all(|at| {
        let run = frame[..=at].iter().rev().take_while(|&&b| b == b'\\').count();
        run % 2 == 0 || frame.get(at + 2..at + 6).is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
    })
}

/// The top-level uid/ts of a valid object, or None when sonic rejects it.
fn members(frame: &[u8]) -> Option<(FieldSeen<'_>, FieldSeen<'_>)> {
    let mut uid = FieldSeen::NONE;
    let mut ts = FieldSeen::NONE;
    let open = frame.iter().position(|&b| !is_json_ws(b))?;
    let mut end = open + 1;
    for member in to_object_iter(frame) {
        let (key, value) = member.ok()?;
        let raw = value.as_raw_str().as_bytes();
        // The raw text borrows from `frame`; recover it with `frame`'s lifetime.
        let start = (raw.as_ptr() as usize).checked_sub(frame.as_ptr() as usize)?;
        let raw = frame.get(start..start + raw.len())?;
        end = start + raw.len();
        match &*key {
            "uid" => uid.see(raw),
            "ts" => ts.see(raw),
            _ => {}
        }
    }
    let rest = frame.get(end..)?;
    let close = rest.iter().position(|&b| !is_json_ws(b))?;
    let after = &rest[close + 1..];
    (rest[close] == b'}' && after.iter().all(|&b| is_json_ws(b))).then_some((uid, ts))
}
