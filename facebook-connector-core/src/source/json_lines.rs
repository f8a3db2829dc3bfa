//! JSON lines over any [`BufRead`].

use std::io::{BufRead, Read};

use super::{ParseStats, Record, RecordSource};
use crate::domain::RecordFormat;
use crate::error::Error;
use crate::member::AudienceMember;
use crate::normalize::{FieldSet, ParserConfig, RecordParser};

/// Lines longer than this are rejected without being buffered whole (a record is ~130 bytes).
pub const DEFAULT_MAX_LINE_BYTES: usize = 16 * 1024 * 1024;

/// Reads JSON lines: `\n` or `\r\n` terminated, the last line may lack a terminator. Blank
/// (whitespace-only) lines are skipped but numbered; a UTF-8 byte order mark on the first line
/// is ignored; a line that is not a JSON object — malformed, invalid UTF-8, an array or
/// scalar, longer than the line limit — is a rejected line ([`Record::member`] is `None`).
///
/// Iterate it for owned records, or call [`RecordSource::next_record`] for records parsed
/// into one reused buffer (the fast path: no copy of each member).
pub struct JsonLinesSource<R> {
    lines: Lines<R>,
    current: Record,
}

/// The reading state, apart from the reused record so both can be borrowed at once.
struct Lines<R> {
    reader: R,
    parser: RecordParser,
    stats: ParseStats,
    line: Vec<u8>,
    line_number: u64,
    max_line_bytes: usize,
    done: bool,
}

impl<R: BufRead> JsonLinesSource<R> {
    /// A source of `format` records read from `reader`.
    pub fn new(reader: R, format: RecordFormat, config: ParserConfig) -> Self {
        JsonLinesSource {
            lines: Lines {
                reader,
                parser: RecordParser::new(format, config),
                stats: ParseStats::default(),
                line: Vec::with_capacity(1024),
                line_number: 0,
                max_line_bytes: DEFAULT_MAX_LINE_BYTES,
                done: false,
            },
            current: Record::empty(),
        }
    }

    /// Changes the line length limit (at least 1 byte).
    pub fn with_max_line_bytes(mut self, max: usize) -> Self {
        self.lines.max_line_bytes = max.max(1);
        self
    }

    /// Replaces the counters (e.g. to keep more rejected line numbers).
    pub fn with_stats(mut self, stats: ParseStats) -> Self {
        self.lines.stats = stats;
        self
    }

    /// The counters, consuming the source.
    pub fn into_stats(self) -> ParseStats {
        self.lines.stats
    }
}

impl<R: BufRead> Lines<R> {
    /// Reads the next line into `self.line` (terminator removed). `Ok(None)` at the end;
    /// `Ok(Some(false))` for a line over the limit (skipped to its end).
    fn read_line(&mut self) -> std::io::Result<Option<bool>> {
        self.line.clear();
        let limit = u64::try_from(self.max_line_bytes).unwrap_or(u64::MAX);
        let n = (&mut self.reader)
            .take(limit.saturating_add(1))
            .read_until(b'\n', &mut self.line)?;
        if n == 0 {
            return Ok(None);
        }
        if self.line.last() == Some(&b'\n') {
            self.line.pop();
        } else if self.line.len() > self.max_line_bytes {
            // Too long: drop the rest of the line without keeping it.
            self.line.clear();
            loop {
                let buf = self.reader.fill_buf()?;
                if buf.is_empty() {
                    break;
                }
                if let Some(i) = buf.iter().position(|b| *b == b'\n') {
                    self.reader.consume(i + 1);
                    break;
                }
                let len = buf.len();
                self.reader.consume(len);
            }
            return Ok(Some(false));
        }
        if self.line.last() == Some(&b'\r') {
            self.line.pop();
        }
        Ok(Some(true))
    }

    /// Parses the next non-blank line into `out`; `None` at the end.
    fn advance(&mut self, out: &mut Record) -> Option<Result<(), Error>> {
        while !self.done {
            // Fast path: the whole line is in the reader's buffer; parse it there, no copy.
            let buf = match self.reader.fill_buf() {
                Ok(buf) => buf,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Some(Err(self.read_error(e))),
            };
            if buf.is_empty() {
                self.done = true;
                return None;
            }
            if let Some(end) = memchr::memchr(b'\n', buf).filter(|&i| i <= self.max_line_bytes) {
                let line = &buf[..end];
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                self.line_number += 1;
                let found = line_record(
                    &mut self.parser,
                    &mut self.stats,
                    self.line_number,
                    line,
                    true,
                    out,
                );
                self.reader.consume(end + 1);
                if found {
                    return Some(Ok(()));
                }
                continue;
            }
            // Slow path: a line across buffer refills, the last line without terminator, or
            // a line over the limit.
            let fits = match self.read_line() {
                Ok(Some(fits)) => fits,
                Ok(None) => {
                    self.done = true;
                    return None;
                }
                Err(e) => return Some(Err(self.read_error(e))),
            };
            self.line_number += 1;
            if line_record(
                &mut self.parser,
                &mut self.stats,
                self.line_number,
                &self.line,
                fits,
                out,
            ) {
                return Some(Ok(()));
            }
        }
        None
    }
}

impl<R: BufRead> Iterator for JsonLinesSource<R> {
    type Item = Result<Record, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut record = Record::empty();
        Some(self.lines.advance(&mut record)?.map(|()| record))
    }
}

impl<R> Lines<R> {
    /// Ends the source on an I/O error.
    fn read_error(&mut self, e: std::io::Error) -> Error {
        self.done = true;
        Error::Read {
            what: format!("json lines (after line {})", self.line_number),
            source: Box::new(e),
        }
    }
}

/// Parses line `number` (terminator removed; `fits` is false for a line over the limit) into
/// `out` and counts it in `stats`; `false` for a blank line (`out` untouched).
fn line_record(
    parser: &mut RecordParser,
    stats: &mut ParseStats,
    number: u64,
    mut line: &[u8],
    fits: bool,
    out: &mut Record,
) -> bool {
    if number == 1 {
        line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
    }
    if fits && line.iter().all(|b| matches!(b, b' ' | b'\t' | b'\r')) {
        return false;
    }
    out.number = number;
    let member = out.member.get_or_insert_with(AudienceMember::new);
    let parsed = if fits {
        parser.parse_json_into(line, member).ok()
    } else {
        None
    };
    match parsed {
        Some(rejected_fields) => out.rejected_fields = rejected_fields,
        None => {
            out.member = None;
            out.rejected_fields = FieldSet::EMPTY;
        }
    }
    stats.count(out);
    true
}

impl<R: BufRead> RecordSource for JsonLinesSource<R> {
    fn stats(&self) -> &ParseStats {
        &self.lines.stats
    }

    fn next_record(&mut self) -> Option<Result<&Record, Error>> {
        Some(
            self.lines
                .advance(&mut self.current)?
                .map(|()| &self.current),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::member::MemberKey;

    fn read(input: &[u8], max: usize) -> (Vec<(u64, Option<String>)>, ParseStats) {
        let mut src = JsonLinesSource::new(
            input,
            RecordFormat::Dataset,
            ParserConfig::with_current_year(2024),
        )
        .with_max_line_bytes(max);
        let out = src
            .by_ref()
            .map(|r| {
                let r = r.unwrap();
                (r.number, r.member.map(|m| m.to_json()))
            })
            .collect();
        (out, src.into_stats())
    }

    #[test]
    fn blank_lines_crlf_bom_invalid_utf8_and_long_lines() {
        let mut input = Vec::new();
        input.extend_from_slice(b"\xEF\xBB\xBF{\"iso_3166_1_country\":\"FR\"}\r\n");
        input.extend_from_slice(b"\n   \r\n");
        input.extend_from_slice(b"{\"raw_email\":\"a\xff@b.c\"}\n");
        input.extend_from_slice(b"[1,2]\n");
        input.extend_from_slice(b"{\"raw_email\":\"");
        input.extend(std::iter::repeat_n(b'x', 5000));
        input.extend_from_slice(b"@b.c\"}\n");
        input.extend_from_slice(b"{}\n{\"apple_idfa\":{\"value\":\"X\"}}");
        let (out, stats) = read(&input, 1000);
        let numbers: Vec<u64> = out.iter().map(|(n, _)| *n).collect();
        assert_eq!(numbers, [1, 4, 5, 6, 7, 8]);
        assert!(out[0].1.as_deref().unwrap().starts_with("{\"COUNTRY\":"));
        assert_eq!(out[1].1, None, "invalid utf-8 is a rejected line");
        assert_eq!(out[2].1, None);
        assert_eq!(out[3].1, None, "over-long line is rejected");
        assert_eq!(out[4].1.as_deref(), Some("{}"));
        assert_eq!(out[5].1.as_deref(), Some(r#"{"MADID":"x"}"#));
        assert_eq!(stats.rejected_line_numbers(), &[4, 5, 6]);
        assert_eq!(stats.records(), 3);
        assert_eq!(stats.members(), 1);
        assert_eq!(stats.unmatchable(), 2);
        // the long line fits with a larger limit
        let (out, _) = read(&input, DEFAULT_MAX_LINE_BYTES);
        assert!(out[3].1.as_deref().is_some_and(|j| j.contains("EMAIL")));
    }

    #[test]
    fn lines_across_buffer_refills_read_the_same() {
        let mut input = Vec::new();
        input.extend_from_slice(b"\xEF\xBB\xBF{\"iso_3166_1_country\":\"FR\"}\r\n\n  \r\n[1]\n");
        input.extend_from_slice(b"{\"person_name\":{\"given_name\":\"Jos\xC3\xA9\"}}\r\n");
        input.extend_from_slice(b"{\"raw_email\":\"");
        input.extend(std::iter::repeat_n(b'x', 300));
        input.extend_from_slice(b"@b.c\"}\n{\"apple_idfa\":{\"value\":\"X\"}}\r");
        let whole = {
            let mut src = JsonLinesSource::new(
                &input[..],
                RecordFormat::Dataset,
                ParserConfig::with_current_year(2024),
            )
            .with_max_line_bytes(200);
            let out: Vec<Record> = src.by_ref().map(Result::unwrap).collect();
            (out, src.into_stats())
        };
        assert_eq!(
            whole.0.iter().map(|r| r.number).collect::<Vec<_>>(),
            [1, 4, 5, 6, 7]
        );
        assert!(whole.0[2].member.as_ref().unwrap().has(MemberKey::FN));
        assert!(whole.0[3].member.is_none(), "over the limit");
        assert!(whole.0[4].member.as_ref().unwrap().has(MemberKey::MADID));
        for capacity in [1, 7, 16, 64, 1000] {
            let open = || {
                JsonLinesSource::new(
                    std::io::BufReader::with_capacity(capacity, &input[..]),
                    RecordFormat::Dataset,
                    ParserConfig::with_current_year(2024),
                )
                .with_max_line_bytes(200)
            };
            let mut src = open();
            let out: Vec<Record> = src.by_ref().map(Result::unwrap).collect();
            assert_eq!(out, whole.0, "buffer of {capacity} bytes");
            assert_eq!(src.into_stats(), whole.1, "buffer of {capacity} bytes");
            // the lending API reads the same, through one reused record
            let mut src = open();
            let mut lent = Vec::new();
            while let Some(record) = src.next_record() {
                lent.push(record.unwrap().clone());
            }
            assert_eq!(lent, whole.0, "lent, buffer of {capacity} bytes");
            assert_eq!(
                src.into_stats(),
                whole.1,
                "lent, buffer of {capacity} bytes"
            );
        }
    }

    #[test]
    fn io_errors_are_read_errors() {
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
                Err(std::io::Error::other("disk on fire"))
            }
        }
        let mut src = JsonLinesSource::new(
            std::io::BufReader::new(Failing),
            RecordFormat::Legacy,
            ParserConfig::default(),
        );
        let err = src.next().unwrap().unwrap_err();
        assert!(matches!(err, Error::Read { .. }));
        assert!(src.next().is_none());
        let _ = MemberKey::EMAIL;
    }
}
