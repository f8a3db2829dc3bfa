//! Record sources: JSON lines over any [`BufRead`] and (feature `parquet`) Parquet files,
//! both yielding [`Record`]s with their 1-based line or row number and keeping
//! [`ParseStats`].
//!
//! ```
//! use facebook_connector_core::domain::RecordFormat;
//! use facebook_connector_core::member::MemberKey;
//! use facebook_connector_core::normalize::ParserConfig;
//! use facebook_connector_core::source::{JsonLinesSource, RecordSource};
//!
//! let input = "{\"data\": {\"raw_email\": \"mary@example.com\"}}\nnot json\n";
//! let mut source = JsonLinesSource::new(input.as_bytes(), RecordFormat::Legacy, ParserConfig::default());
//! let records: Vec<_> = source.by_ref().collect::<Result<_, _>>().unwrap();
//! assert_eq!(records[0].member.as_ref().unwrap().get(MemberKey::EMAIL).unwrap(),
//!            "f1904cf1a9d73a55fa5de0ac823c4403ded71afd4c3248d00bdcd0866552bb79");
//! assert!(records[1].member.is_none());
//! assert_eq!(source.stats().rejected_line_numbers(), &[2]);
//! ```

mod json_lines;
#[cfg(feature = "parquet")]
mod parquet;

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::Path;

use serde::Serialize;

use crate::domain::RecordFormat;
use crate::error::Error;
use crate::member::AudienceMember;
use crate::normalize::{Field, FieldSet, ParserConfig};

pub use json_lines::{DEFAULT_MAX_LINE_BYTES, JsonLinesSource};
#[cfg(feature = "parquet")]
pub use parquet::ParquetSource;

/// One record read from a source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// 1-based line number (JSON lines, blank lines included) or row number (Parquet).
    pub number: u64,
    /// The parsed member, or `None` for a rejected line (not a JSON object).
    pub member: Option<AudienceMember>,
    /// Fields this record rejected.
    pub rejected_fields: FieldSet,
}

impl Record {
    /// A record numbered 0 without a member (a buffer to parse into).
    pub fn empty() -> Self {
        Record {
            number: 0,
            member: None,
            rejected_fields: FieldSet::EMPTY,
        }
    }
}

/// A source of records. Iterate it for owned records, or call
/// [`RecordSource::next_record`] for each record parsed into a buffer the source reuses (no
/// copy per record: the way through large files). An `Err` is an I/O or file error: stop
/// there. Read [`RecordSource::stats`] at any time, e.g. at the end.
pub trait RecordSource: Iterator<Item = Result<Record, Error>> {
    /// Counters of what was read so far.
    fn stats(&self) -> &ParseStats;

    /// The next record, borrowed until the next call; `None` at the end. Mixing it with
    /// iteration is fine: both read the same stream.
    fn next_record(&mut self) -> Option<Result<&Record, Error>>;
}

/// How many rejected line numbers [`ParseStats`] keeps by default.
pub const DEFAULT_MAX_REJECTED_LINE_NUMBERS: usize = 1000;

/// Counters of a parse: records, rejected lines (with the first line numbers), per-field
/// rejections, unmatchable records and members. Serialises as
/// `{"records":..,"members":..,"unmatchable":..,"rejected_lines":..,"rejected_line_numbers":[..],"field_rejections":{"raw_email":..}}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseStats {
    records: u64,
    members: u64,
    unmatchable: u64,
    rejected_lines: u64,
    rejected_line_numbers: Vec<u64>,
    max_rejected_line_numbers: usize,
    field_rejections: [u64; Field::ALL.len()],
}

impl Default for ParseStats {
    fn default() -> Self {
        ParseStats::new(DEFAULT_MAX_REJECTED_LINE_NUMBERS)
    }
}

impl ParseStats {
    /// Empty counters keeping at most `max_rejected_line_numbers` line numbers (the total
    /// count is always exact).
    pub fn new(max_rejected_line_numbers: usize) -> Self {
        ParseStats {
            records: 0,
            members: 0,
            unmatchable: 0,
            rejected_lines: 0,
            rejected_line_numbers: Vec::new(),
            max_rejected_line_numbers,
            field_rejections: [0; Field::ALL.len()],
        }
    }

    /// Counts one record (or rejected line).
    pub fn count(&mut self, record: &Record) {
        match &record.member {
            None => {
                self.rejected_lines += 1;
                if self.rejected_line_numbers.len() < self.max_rejected_line_numbers {
                    self.rejected_line_numbers.push(record.number);
                }
            }
            Some(member) => {
                self.records += 1;
                if member.is_matchable() {
                    self.members += 1;
                } else {
                    self.unmatchable += 1;
                }
                for f in record.rejected_fields.iter() {
                    self.field_rejections[f.index()] += 1;
                }
            }
        }
    }

    /// Records read that were JSON objects or rows (`members + unmatchable`).
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Matchable records (members that can be sent).
    pub fn members(&self) -> u64 {
        self.members
    }

    /// Records without EMAIL, PHONE, MADID or FN+LN.
    pub fn unmatchable(&self) -> u64 {
        self.unmatchable
    }

    /// Lines that were not a JSON object (exact count).
    pub fn rejected_lines(&self) -> u64 {
        self.rejected_lines
    }

    /// The first rejected line numbers, in order (bounded, see [`ParseStats::new`]).
    pub fn rejected_line_numbers(&self) -> &[u64] {
        &self.rejected_line_numbers
    }

    /// Rejections of one field.
    pub fn field_rejections(&self, field: Field) -> u64 {
        self.field_rejections[field.index()]
    }

    /// Fields with at least one rejection and their counts, by field name.
    pub fn field_rejection_counts(&self) -> BTreeMap<&'static str, u64> {
        Field::ALL
            .iter()
            .filter(|f| self.field_rejections[f.index()] > 0)
            .map(|f| (f.as_str(), self.field_rejections[f.index()]))
            .collect()
    }

    /// Total field rejections.
    pub fn total_field_rejections(&self) -> u64 {
        self.field_rejections.iter().sum()
    }
}

impl Serialize for ParseStats {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Wire<'a> {
            records: u64,
            members: u64,
            unmatchable: u64,
            rejected_lines: u64,
            rejected_line_numbers: &'a [u64],
            field_rejections: BTreeMap<&'static str, u64>,
        }
        Wire {
            records: self.records,
            members: self.members,
            unmatchable: self.unmatchable,
            rejected_lines: self.rejected_lines,
            rejected_line_numbers: &self.rejected_line_numbers,
            field_rejections: self.field_rejection_counts(),
        }
        .serialize(serializer)
    }
}

/// Either source, chosen at run time (the CLI's `parse`/`payload`, the engine's files).
pub enum RecordReader {
    /// JSON lines.
    JsonLines(JsonLinesSource<Box<dyn BufRead + Send>>),
    /// A Parquet file.
    #[cfg(feature = "parquet")]
    Parquet(ParquetSource),
}

impl RecordReader {
    /// JSON lines from any reader.
    pub fn json_lines(
        reader: Box<dyn BufRead + Send>,
        format: RecordFormat,
        config: ParserConfig,
    ) -> Self {
        RecordReader::JsonLines(JsonLinesSource::new(reader, format, config))
    }

    /// Opens a file: Parquet when its name ends in `.parquet` (feature `parquet`), JSON
    /// lines otherwise.
    pub fn open(path: &Path, format: RecordFormat, config: ParserConfig) -> Result<Self, Error> {
        if is_parquet_path(path) {
            #[cfg(feature = "parquet")]
            return Ok(RecordReader::Parquet(ParquetSource::open(
                path, format, config,
            )?));
            #[cfg(not(feature = "parquet"))]
            return Err(Error::Read {
                what: format!("parquet file {}", path.display()),
                source: "parquet support is not compiled in (feature `parquet`)".into(),
            });
        }
        let file = std::fs::File::open(path).map_err(|e| Error::Read {
            what: format!("file {}", path.display()),
            source: Box::new(e),
        })?;
        let reader: Box<dyn BufRead + Send> =
            Box::new(std::io::BufReader::with_capacity(256 * 1024, file));
        Ok(RecordReader::json_lines(reader, format, config))
    }
}

/// Whether a path names a Parquet file (extension `parquet`, any case).
pub fn is_parquet_path(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("parquet"))
}

impl Iterator for RecordReader {
    type Item = Result<Record, Error>;
    fn next(&mut self) -> Option<Self::Item> {
        match self {
            RecordReader::JsonLines(s) => s.next(),
            #[cfg(feature = "parquet")]
            RecordReader::Parquet(s) => s.next(),
        }
    }
}

impl RecordSource for RecordReader {
    fn stats(&self) -> &ParseStats {
        match self {
            RecordReader::JsonLines(s) => s.stats(),
            #[cfg(feature = "parquet")]
            RecordReader::Parquet(s) => s.stats(),
        }
    }

    fn next_record(&mut self) -> Option<Result<&Record, Error>> {
        match self {
            RecordReader::JsonLines(s) => s.next_record(),
            #[cfg(feature = "parquet")]
            RecordReader::Parquet(s) => s.next_record(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_bound_line_numbers_and_count_fields() {
        let mut stats = ParseStats::new(2);
        for n in 1..=5 {
            stats.count(&Record {
                number: n,
                member: None,
                rejected_fields: FieldSet::EMPTY,
            });
        }
        let mut fields = FieldSet::EMPTY;
        fields.insert(Field::RawEmail);
        stats.count(&Record {
            number: 6,
            member: Some(AudienceMember::new()),
            rejected_fields: fields,
        });
        assert_eq!(stats.rejected_lines(), 5);
        assert_eq!(stats.rejected_line_numbers(), &[1, 2]);
        assert_eq!(stats.records(), 1);
        assert_eq!(stats.unmatchable(), 1);
        assert_eq!(stats.members(), 0);
        assert_eq!(stats.field_rejections(Field::RawEmail), 1);
        assert_eq!(stats.total_field_rejections(), 1);
        assert_eq!(
            serde_json::to_string(&stats).unwrap(),
            r#"{"records":1,"members":0,"unmatchable":1,"rejected_lines":5,"rejected_line_numbers":[1,2],"field_rejections":{"raw_email":1}}"#
        );
        assert!(is_parquet_path(Path::new("x/part-0.PARQUET")));
        assert!(!is_parquet_path(Path::new("x/part-0.jsonl")));
    }
}
