//! A fast path for JSON lines in the common shape: objects, strings (escapes but `\u`),
//! small non-negative integers, `true`/`false`/`null`. It fills the same [`RawRecord`] as the
//! serde reader in `json.rs`, without serde's per-value dispatch (about a third of the
//! parser's time on typical records).
//!
//! It accepts a strict subset of what the serde reader accepts and gives up (`None`) on
//! anything else — a `\u` escape, an escaped key, a control character, a float, a negative
//! or large number, an array, deep nesting, malformed JSON — so the caller re-reads the line
//! with the serde reader, which decides what the line is. Whenever this returns `Some`, the
//! serde reader gives the same record (a property test checks it).

use std::borrow::Cow;

use super::field::Field;
use super::raw::{Leaf, RawRecord, Shape, attribute};
use crate::domain::RecordFormat;

/// Nesting deeper than this gives up (serde_json's limit is 128).
const MAX_DEPTH: usize = 64;

/// Reads `line` into `rec` if it is in the fast subset; `None` otherwise (then `rec` may
/// hold part of the line: start over with a fresh record).
pub(crate) fn read_line<'a>(
    line: &'a str,
    format: RecordFormat,
    rec: &mut RawRecord<'a>,
) -> Option<()> {
    let mut p = Scanner { s: line, i: 0 };
    p.ws();
    match format {
        RecordFormat::Dataset => p.attributes(rec)?,
        RecordFormat::Legacy => p.legacy_top(rec)?,
    }
    p.ws();
    (p.i == line.len()).then_some(())
}

/// The first `"`, `\` or control character of `b` at or after `from`, eight bytes at a
/// time.
fn find_special(b: &[u8], from: usize) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // Bytes below `n` (n <= 128) get their high bit set; only the lowest flag is exact,
    // which is the one used.
    fn below(x: u64, n: u8) -> u64 {
        x.wrapping_sub(ONES * u64::from(n)) & !x & HIGHS
    }
    let mut i = from;
    while let Some(chunk) = b.get(i..i + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word);
        let flags = below(x ^ (ONES * u64::from(b'"')), 1)
            | below(x ^ (ONES * u64::from(b'\\')), 1)
            | below(x, 0x20);
        if flags != 0 {
            return Some(i + (flags.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    b.get(i..)?
        .iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
        .map(|p| i + p)
}

/// A position in the line.
struct Scanner<'a> {
    s: &'a str,
    i: usize,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.i).copied()
    }

    /// Skips JSON whitespace.
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    /// Skips whitespace and consumes `c`.
    fn expect(&mut self, c: u8) -> Option<()> {
        self.ws();
        if self.peek()? != c {
            return None;
        }
        self.i += 1;
        Some(())
    }

    /// A key at the current `"`: a string without escapes (an escaped key gives up).
    fn key(&mut self) -> Option<&'a str> {
        match self.string_value()? {
            Cow::Borrowed(key) => Some(key),
            Cow::Owned(_) => None,
        }
    }

    /// A string at the current `"`, unescaped; `\u` escapes and control characters give up.
    fn string_value(&mut self) -> Option<Cow<'a, str>> {
        let b = self.s.as_bytes();
        let start = self.i + 1;
        let end = find_special(b, start)?;
        if b[end] == b'"' {
            // no escape (nearly always): the string borrowed from the line
            self.i = end + 1;
            return self.s.get(start..end).map(Cow::Borrowed);
        }
        self.escaped_string(start, end)
    }

    /// The rest of [`Scanner::string_value`] for a string whose first special byte, at
    /// `end`, is not its closing quote.
    #[cold]
    fn escaped_string(&mut self, mut start: usize, mut end: usize) -> Option<Cow<'a, str>> {
        let b = self.s.as_bytes();
        let mut owned = String::new();
        loop {
            // `start` and `end` are next to ASCII bytes: char boundaries of the valid line
            owned.push_str(self.s.get(start..end)?);
            match b[end] {
                b'"' => {
                    self.i = end + 1;
                    return Some(Cow::Owned(owned));
                }
                b'\\' => {
                    owned.push(match b.get(end + 1)? {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        _ => return None,
                    });
                    start = end + 2;
                }
                _ => return None,
            }
            end = find_special(b, start)?;
        }
    }

    /// A non-negative integer up to `i64::MAX` without leading zeros, not followed by a
    /// fraction or exponent.
    fn integer(&mut self) -> Option<i64> {
        let b = self.s.as_bytes();
        let start = self.i;
        let digits = b
            .get(start..)?
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        let end = start + digits;
        if digits == 0 || (digits > 1 && b[start] == b'0') || digits > 18 {
            return None;
        }
        if matches!(b.get(end), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        self.i = end;
        Some(
            b[start..end]
                .iter()
                .fold(0i64, |n, d| n * 10 + i64::from(d - b'0')),
        )
    }

    /// `true` or `false` (wrong where a value is read) or `null` (missing), whose first
    /// letter is current.
    fn literal(&mut self) -> Option<Leaf<'a>> {
        let rest = self.s.as_bytes().get(self.i..)?;
        let (len, leaf) = if rest.starts_with(b"true") {
            (4, Leaf::Wrong)
        } else if rest.starts_with(b"false") {
            (5, Leaf::Wrong)
        } else if rest.starts_with(b"null") {
            (4, Leaf::Missing)
        } else {
            return None;
        };
        self.i += len;
        Some(leaf)
    }

    /// A scalar at the current position (after whitespace); `None` for anything else.
    fn scalar(&mut self) -> Option<Leaf<'a>> {
        match self.peek()? {
            b'"' => self.string_value().map(Leaf::Str),
            b'0'..=b'9' => self.integer().map(Leaf::Int),
            b't' | b'f' | b'n' => self.literal(),
            _ => None,
        }
    }

    /// Calls `f` with each key of the object at the current `{` (`f` reads the value).
    fn object(&mut self, mut f: impl FnMut(&mut Self, &'a str) -> Option<()>) -> Option<()> {
        self.expect(b'{')?;
        self.ws();
        if self.peek()? == b'}' {
            self.i += 1;
            return Some(());
        }
        loop {
            self.ws();
            if self.peek()? != b'"' {
                return None;
            }
            let key = self.key()?;
            self.expect(b':')?;
            self.ws();
            f(self, key)?;
            self.ws();
            match self.peek()? {
                b',' => self.i += 1,
                b'}' => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// Skips any value of the subset (objects nest up to [`MAX_DEPTH`]).
    fn skip(&mut self, depth: usize) -> Option<()> {
        if self.peek()? == b'{' {
            if depth >= MAX_DEPTH {
                return None;
            }
            self.object(|p, _| p.skip(depth + 1))
        } else {
            self.scalar().map(|_| ())
        }
    }

    /// A scalar leaf; an object there is skipped and wrong.
    fn leaf(&mut self) -> Option<Leaf<'a>> {
        if self.peek()? == b'{' {
            self.skip(1)?;
            Some(Leaf::Wrong)
        } else {
            self.scalar()
        }
    }

    /// `{"data": {...}}`: only `data` is read.
    fn legacy_top(&mut self, rec: &mut RawRecord<'a>) -> Option<()> {
        self.object(|p, key| {
            if key != "data" {
                return p.skip(1);
            }
            if p.peek()? == b'{' {
                return p.attributes(rec);
            }
            if p.scalar()? != Leaf::Missing {
                rec.reject_structure(Field::Data);
            }
            Some(())
        })
    }

    /// The attributes object.
    fn attributes(&mut self, rec: &mut RawRecord<'a>) -> Option<()> {
        self.object(|p, key| match attribute(key) {
            None => p.skip(2),
            Some(shape) => p.attribute(shape, rec),
        })
    }

    /// One attribute's value, laid out by its [`Shape`].
    fn attribute(&mut self, shape: Shape, rec: &mut RawRecord<'a>) -> Option<()> {
        if self.peek()? != b'{' {
            rec.set_scalar(shape, self.scalar()?);
            return Some(());
        }
        rec.begin_object(shape);
        self.object(|p, key| match shape.member(key) {
            Some(field) => {
                rec.set(field, p.leaf()?);
                Some(())
            }
            None => p.skip(3),
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The serde reader's record, or `None` where it rejects the line.
    fn serde_read(line: &str, format: RecordFormat) -> Option<RawRecord<'_>> {
        let mut rec = RawRecord::default();
        super::super::json::read_line(line, format, &mut rec).ok()?;
        Some(rec)
    }

    fn fast_read(line: &str, format: RecordFormat) -> Option<RawRecord<'_>> {
        let mut rec = RawRecord::default();
        read_line(line, format, &mut rec)?;
        Some(rec)
    }

    /// Where the fast path answers, it answers as serde does.
    fn assert_agrees(line: &str) -> Result<(), TestCaseError> {
        for format in [RecordFormat::Dataset, RecordFormat::Legacy] {
            if let Some(fast) = fast_read(line, format) {
                let slow = serde_read(line, format);
                prop_assert!(slow.is_some(), "serde rejects {line:?} ({format:?})");
                prop_assert_eq!(Some(fast), slow, "{:?} ({:?})", line, format);
            }
        }
        Ok(())
    }

    /// Every name the parser reads (each segment of the field names, `data` included), an
    /// unknown one and the empty one.
    fn keys() -> Vec<&'static str> {
        let mut keys: Vec<&str> = Field::ALL
            .iter()
            .flat_map(|f| f.as_str().split('.'))
            .chain(["other", ""])
            .collect();
        keys.sort_unstable();
        keys.dedup();
        keys
    }

    /// JSON text (not always valid) built from pieces the fast path must get right or give
    /// up on: escapes, control characters, numbers of every form, literals, arrays, nesting.
    fn json_text(depth: u32) -> BoxedStrategy<String> {
        let scalar = prop_oneof![
            "[a-zA-Z0-9 @.éß\u{3a3}-]{0,12}".prop_map(|s| format!("\"{s}\"")),
            prop::sample::select(vec![
                r#""a\"b""#,
                r#""\u00e9""#,
                r#""\ud800""#,
                "\"tab\there\"",
                r#""x\\""#,
                r#""\/\b\f\n\r\t\\\"""#,
                r#""a\\"b""#,
                r#""bad \x escape""#,
                r#""\"#,
                "\"Fernández\\\\Ruiz and \\\"JJ\\\"\"",
                "0",
                "-0",
                "7",
                "1975",
                "01",
                "1.5",
                "1e3",
                "-12",
                "18446744073709551616",
                "9223372036854775807",
                "9223372036854775808",
                "true",
                "false",
                "null",
                "nul",
                "[]",
                "[1, \"a\"]",
                "{}",
                "\"",
                "1.",
                "--1",
                "tru",
            ])
            .prop_map(str::to_string),
        ];
        let ws = prop::sample::select(vec!["", " ", "\t", "\r", "  "]);
        if depth == 0 {
            return scalar.boxed();
        }
        let member = (
            prop::sample::select(keys()),
            ws.clone(),
            json_text(depth - 1),
        )
            .prop_map(|(k, w, v)| format!("\"{k}\"{w}:{w}{v}"));
        let object = (prop::collection::vec(member, 0..5), ws, any::<u8>()).prop_map(
            |(members, w, glitch)| {
                let body = members.join(&format!(",{w}"));
                match glitch % 16 {
                    0 => format!("{{{body},}}"),
                    1 => format!("{{{body}"),
                    2 => format!("{{{body}}} x"),
                    _ => format!("{w}{{{w}{body}{w}}}{w}"),
                }
            },
        );
        prop_oneof![1 => scalar, 3 => object].boxed()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn fast_path_answers_as_serde_does(line in json_text(4)) {
            assert_agrees(&line)?;
            // the same record as a legacy line
            assert_agrees(&format!("{{\"data\": {line}}}"))?;
        }
    }

    proptest! {
        #[test]
        fn find_special_finds_the_first_special_byte(
            bytes in prop::collection::vec(prop_oneof![
                Just(b'"'), Just(b'\\'), 0u8..0x20, 0x20u8..=0xff, Just(b'a'),
            ], 0..40),
            from in 0usize..45,
        ) {
            let want = bytes
                .iter()
                .enumerate()
                .skip(from)
                .find(|(_, c)| **c == b'"' || **c == b'\\' || **c < 0x20)
                .map(|(i, _)| i);
            prop_assert_eq!(find_special(&bytes, from), want);
        }
    }

    #[test]
    fn typical_lines_take_the_fast_path_and_unusual_ones_do_not() {
        let typical = [
            r#"{"data": {"person_name": {"given_name": "José", "family_name": "Smith"}, "raw_email": " a@b.c ", "birth_year": 1975, "hl7_gender": {"gender": "f"}}}"#,
            r#"{"data": {"apple_idfa": {"value": "AB"}, "iso_3166_1_country": null, "unique_id": "wrong", "postal_address": true}}"#,
            r#"{"data": null, "id": 5}"#,
        ];
        for line in &typical {
            let fast = fast_read(line, RecordFormat::Legacy);
            assert!(fast.is_some(), "{line}");
            assert_eq!(fast, serde_read(line, RecordFormat::Legacy), "{line}");
        }
        // an array, even in an ignored attribute, is outside the subset: the serde reader decides
        let with_array = typical[0].replace("}}}", r#"}, "x": {"y": [1]}}}"#);
        assert!(fast_read(&with_array, RecordFormat::Legacy).is_none());
        assert!(serde_read(&with_array, RecordFormat::Legacy).is_some());
        let fast = fast_read(typical[0], RecordFormat::Legacy).unwrap();
        assert_eq!(
            fast.get(Field::GivenName),
            &Leaf::Str(Cow::Borrowed("José"))
        );
        assert_eq!(fast.get(Field::BirthYear), &Leaf::Int(1975));
        for unusual in [
            r#"{"raw_email": "a\u0040b.c"}"#,
            r#"{"birth_year": -1975}"#,
            r#"{"birth_year": 1975.0}"#,
            r#"{"raw_email": "a@b.c",}"#,
            r#"{"raw_email": "a@b.c"} {}"#,
            r#"["raw_email"]"#,
        ] {
            assert!(
                fast_read(unusual, RecordFormat::Dataset).is_none(),
                "{unusual}"
            );
        }
    }
}
