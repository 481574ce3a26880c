//! JSON string bodies: validation and escape decoding.
//!
//! A body is the bytes between a string's quotes. It is valid when it is
//! UTF-8, holds no control character below U+0020, and every backslash
//! starts one of `\" \\ \/ \b \f \n \r \t \uXXXX`. RFC 8259's grammar allows
//! any `\uXXXX`, lone surrogates included, so validation accepts them;
//! decoding reports whether the decoded text is Unicode (it is not when a
//! lone surrogate was decoded; the surrogate is then kept as its 3-byte
//! generalized UTF-8 form so distinct escapes stay distinct).

/// Why a string body is not valid JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidString;

/// Checks that `body` is a valid JSON string body.
pub fn validate_body(body: &[u8]) -> Result<(), InvalidString> {
    if simdutf8::basic::from_utf8(body).is_err() {
        return Err(InvalidString);
    }
    let mut i = 0;
    while i < body.len() {
        let b = body[i];
        if b < 0x20 {
            return Err(InvalidString);
        }
        if b == b'\\' {
            i = validate_escape(body, i)?;
        } else {
            i += 1;
        }
    }
    Ok(())
}

/// Validates the escape starting at `body[at] == b'\\'`; returns the index
/// after it.
fn validate_escape(body: &[u8], at: usize) -> Result<usize, InvalidString> {
    match body.get(at + 1) {
        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => Ok(at + 2),
        Some(b'u') => {
            hex4(body, at + 2)?;
            Ok(at + 6)
        }
        _ => Err(InvalidString),
    }
}

fn hex4(body: &[u8], at: usize) -> Result<u32, InvalidString> {
    let digits = body.get(at..at + 4).ok_or(InvalidString)?;
    digits.iter().try_fold(0u32, |acc, &d| {
        let v = match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            b'A'..=b'F' => d - b'A' + 10,
            _ => return Err(InvalidString),
        };
        Ok(acc * 16 + u32::from(v))
    })
}

/// Decodes a valid-or-not body into `out` (cleared first). Returns whether
/// the decoded text is Unicode (false when it holds a lone surrogate).
pub fn decode_body(body: &[u8], out: &mut Vec<u8>) -> Result<bool, InvalidString> {
    if simdutf8::basic::from_utf8(body).is_err() {
        return Err(InvalidString);
    }
    out.clear();
    let mut unicode = true;
    let mut i = 0;
    while i < body.len() {
        let run_end = body[i..].iter().position(|&b| b == b'\\' || b < 0x20).map_or(body.len(), |p| i + p);
        out.extend_from_slice(&body[i..run_end]);
        i = run_end;
        if i == body.len() {
            break;
        }
        if body[i] < 0x20 {
            return Err(InvalidString);
        }
        let simple = match body.get(i + 1) {
            Some(b'"') => Some(b'"'),
            Some(b'\\') => Some(b'\\'),
            Some(b'/') => Some(b'/'),
            Some(b'b') => Some(0x08),
            Some(b'f') => Some(0x0C),
            Some(b'n') => Some(b'\n'),
            Some(b'r') => Some(b'\r'),
            Some(b't') => Some(b'\t'),
            Some(b'u') => None,
            _ => return Err(InvalidString),
        };
        if let Some(c) = simple {
            out.push(c);
            i += 2;
            continue;
        }
        let unit = hex4(body, i + 2)?;
        i += 6;
        let code = if (0xD800..0xDC00).contains(&unit) {
            // A high surrogate forms a pair only with an escaped low one.
            let low = if body.get(i) == Some(&b'\\') && body.get(i + 1) == Some(&b'u') {
                hex4(body, i + 2).ok().filter(|l| (0xDC00..0xE000).contains(l))
            } else {
                None
            };
            match low {
                Some(low) => {
                    i += 6;
                    0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
                }
                None => {
                    unicode = false;
                    unit
                }
            }
        } else {
            if (0xDC00..0xE000).contains(&unit) {
                unicode = false;
            }
            unit
        };
        push_code_point(out, code);
    }
    Ok(unicode)
}

/// Appends `code` in (generalized) UTF-8: surrogates get the 3-byte form.
fn push_code_point(out: &mut Vec<u8>, code: u32) {
    match code {
        0..=0x7F => out.push(code as u8),
        0x80..=0x7FF => out.extend_from_slice(&[0xC0 | (code >> 6) as u8, 0x80 | (code & 0x3F) as u8]),
        0x800..=0xFFFF => out.extend_from_slice(&[
            0xE0 | (code >> 12) as u8,
            0x80 | ((code >> 6) & 0x3F) as u8,
            0x80 | (code & 0x3F) as u8,
        ]),
        _ => out.extend_from_slice(&[
            0xF0 | (code >> 18) as u8,
            0x80 | ((code >> 12) & 0x3F) as u8,
            0x80 | ((code >> 6) & 0x3F) as u8,
            0x80 | (code & 0x3F) as u8,
        ]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(body: &[u8]) -> Result<(Vec<u8>, bool), InvalidString> {
        let mut out = Vec::new();
        decode_body(body, &mut out).map(|u| (out, u))
    }

    #[test]
    fn decodes_like_serde_json() {
        for body in [
            &br#"abc"#[..],
            br#"a\"b\\c\/d\be\ff\ng\rh\ti"#,
            br#"\u0075id"#,
            br#"\u00e9\u4e2d\ud83d\ude00"#,
            "Ветер гонит".as_bytes(),
        ] {
            let quoted = [&b"\""[..], body, b"\""].concat();
            let expect: String = serde_json::from_slice(&quoted).unwrap();
            assert_eq!(decode(body).unwrap(), (expect.into_bytes(), true));
            assert_eq!(validate_body(body), Ok(()));
        }
    }

    #[test]
    fn lone_surrogates_are_valid_grammar_but_not_unicode() {
        assert_eq!(validate_body(br"\ud800"), Ok(()));
        assert_eq!(validate_body(br"\udc00x"), Ok(()));
        let (a, ua) = decode(br"\ud800").unwrap();
        let (b, ub) = decode(br"\udc00").unwrap();
        assert!(!ua && !ub);
        assert_ne!(a, b);
        assert_eq!(decode(br"\ud800\u0041").unwrap(), (vec![0xED, 0xA0, 0x80, b'A'], false));
    }

    #[test]
    fn rejects_bad_bodies() {
        for body in
            [&br"\x"[..], br"\u12", br"\u12g4", br"\", b"a\x01b", b"tab\there", b"\xff", b"\xd0", b"\xed\xa0\x80"]
        {
            assert_eq!(validate_body(body), Err(InvalidString), "{body:?}");
            assert!(decode(body).is_err(), "{body:?}");
        }
    }
}
