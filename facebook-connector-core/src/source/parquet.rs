//! Parquet files (feature `parquet`): rows are read batch by batch (the reader decodes one
//! row group at a time) and mapped onto the same intermediate representation as JSON, so a
//! row gives exactly what the same object as JSON gives.
//!
//! Column mapping: a top-level column named like an attribute is read with that attribute's
//! shape (for [`RecordFormat::Legacy`] files, the members of a `data` struct column are the
//! attributes). Struct columns map to objects, their child columns to members; string columns
//! (UTF-8, or binary holding UTF-8) to strings; integer columns to integers; timestamp and
//! date columns to dates in UTC (accepted by `birthdate` only); null values (of the column or
//! of an enclosing struct) to absent; anything else (floats, booleans, lists, a struct where a
//! string is expected...) is a wrong type, counted like the same value in JSON.

use std::collections::VecDeque;
use std::fs::File;
use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Date64Type, Int8Type, Int16Type, Int32Type, Int64Type, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType, UInt8Type, UInt16Type,
    UInt32Type, UInt64Type,
};
use arrow_array::{Array, PrimitiveArray, RecordBatch, StructArray};
use arrow_schema::{DataType, TimeUnit};
use parquet::arrow::arrow_reader::{
    ArrowReaderOptions, ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder,
};
use parquet::file::reader::ChunkReader;
use time::Date;

use super::{ParseStats, Record, RecordSource};
use crate::domain::RecordFormat;
use crate::error::Error;
use crate::member::AudienceMember;
use crate::normalize::raw::{Leaf, RawRecord, Shape, attribute, member};
use crate::normalize::{Field, ParserConfig, RecordParser};

/// Rows decoded at a time.
const BATCH_ROWS: usize = 1024;

/// Julian day of 1970-01-01.
const UNIX_EPOCH_JULIAN_DAY: i64 = 2_440_588;

/// Records of a Parquet file. See the module documentation for the column mapping.
pub struct ParquetSource {
    what: String,
    format: RecordFormat,
    reader: ParquetRecordBatchReader,
    parser: RecordParser,
    stats: ParseStats,
    pending: VecDeque<Record>,
    /// The record [`RecordSource::next_record`] lends.
    current: Record,
    rows: u64,
    done: bool,
}

impl ParquetSource {
    /// Opens a Parquet file.
    pub fn open(path: &Path, format: RecordFormat, config: ParserConfig) -> Result<Self, Error> {
        let what = format!("parquet file {}", path.display());
        let file = File::open(path).map_err(|e| Error::Read {
            what: what.clone(),
            source: Box::new(e),
        })?;
        Self::new(file, what, format, config)
    }

    /// Reads Parquet from any [`ChunkReader`] (a file, or [`bytes::Bytes`] in memory);
    /// `what` names it in errors.
    pub fn new<T: ChunkReader + 'static>(
        input: T,
        what: String,
        format: RecordFormat,
        config: ParserConfig,
    ) -> Result<Self, Error> {
        // Skip the embedded Arrow schema: columns come back in their plain Parquet mapping
        // (no dictionary-encoded arrays), which the column mapping understands.
        let options = ArrowReaderOptions::new().with_skip_arrow_metadata(true);
        let reader = ParquetRecordBatchReaderBuilder::try_new_with_options(input, options)
            .and_then(|b| b.with_batch_size(BATCH_ROWS).build())
            .map_err(|e| Error::Read {
                what: what.clone(),
                source: Box::new(e),
            })?;
        Ok(ParquetSource {
            what,
            format,
            reader,
            parser: RecordParser::new(format, config),
            stats: ParseStats::default(),
            pending: VecDeque::with_capacity(BATCH_ROWS),
            current: Record::empty(),
            rows: 0,
            done: false,
        })
    }

    /// Replaces the counters.
    pub fn with_stats(mut self, stats: ParseStats) -> Self {
        self.stats = stats;
        self
    }

    /// The counters, consuming the source.
    pub fn into_stats(self) -> ParseStats {
        self.stats
    }

    fn load(&mut self, batch: &RecordBatch) {
        let bindings = bind(batch, self.format);
        for row in 0..batch.num_rows() {
            let mut raw = RawRecord::default();
            for b in &bindings {
                if !b.parents_valid(row) {
                    continue;
                }
                match &b.kind {
                    Kind::Leaf(field, col) => raw.set(*field, col.get(row)),
                    Kind::Structural(field, array) => {
                        if array.is_valid(row) {
                            raw.reject_structure(*field);
                        }
                    }
                }
            }
            let mut member = AudienceMember::new();
            let rejected_fields = self.parser.normalize_into(&raw, &mut member);
            self.rows += 1;
            self.pending.push_back(Record {
                number: self.rows,
                member: Some(member),
                rejected_fields,
            });
        }
    }
}

impl Iterator for ParquetSource {
    type Item = Result<Record, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(record) = self.pending.pop_front() {
                self.stats.count(&record);
                return Some(Ok(record));
            }
            if self.done {
                return None;
            }
            match self.reader.next() {
                None => self.done = true,
                Some(Ok(batch)) => self.load(&batch),
                Some(Err(e)) => {
                    self.done = true;
                    return Some(Err(Error::Read {
                        what: format!("{} (after row {})", self.what, self.rows),
                        source: Box::new(e),
                    }));
                }
            }
        }
    }
}

impl RecordSource for ParquetSource {
    fn stats(&self) -> &ParseStats {
        &self.stats
    }

    fn next_record(&mut self) -> Option<Result<&Record, Error>> {
        match self.next()? {
            Ok(record) => {
                self.current = record;
                Some(Ok(&self.current))
            }
            Err(e) => Some(Err(e)),
        }
    }
}

/// How one column contributes to each row.
struct Binding<'b> {
    /// Enclosing struct columns (a value under a null struct is absent).
    parents: [Option<&'b StructArray>; 2],
    kind: Kind<'b>,
}

enum Kind<'b> {
    /// A leaf value.
    Leaf(Field, Col<'b>),
    /// An object attribute (or legacy `data`) of the wrong type: rejected where not null.
    Structural(Field, &'b dyn Array),
}

impl Binding<'_> {
    fn parents_valid(&self, row: usize) -> bool {
        self.parents.iter().flatten().all(|p| p.is_valid(row))
    }
}

/// Binds the columns of a batch to fields.
fn bind(batch: &RecordBatch, format: RecordFormat) -> Vec<Binding<'_>> {
    let mut out = Vec::new();
    let schema = batch.schema_ref();
    match format {
        RecordFormat::Dataset => {
            for (f, col) in schema.fields().iter().zip(batch.columns()) {
                bind_attribute(f.name(), col.as_ref(), None, &mut out);
            }
        }
        RecordFormat::Legacy => {
            let Some((_, col)) = schema
                .fields()
                .iter()
                .zip(batch.columns())
                .find(|(f, _)| f.name() == "data")
            else {
                return out;
            };
            match col.as_struct_opt() {
                Some(data) => {
                    for (f, child) in data.fields().iter().zip(data.columns()) {
                        bind_attribute(f.name(), child.as_ref(), Some(data), &mut out);
                    }
                }
                None if *col.data_type() != DataType::Null => out.push(Binding {
                    parents: [None, None],
                    kind: Kind::Structural(Field::Data, col.as_ref()),
                }),
                None => {}
            }
        }
    }
    out
}

fn bind_attribute<'b>(
    name: &str,
    col: &'b dyn Array,
    parent: Option<&'b StructArray>,
    out: &mut Vec<Binding<'b>>,
) {
    let Some(shape) = attribute(name) else { return };
    if *col.data_type() == DataType::Null {
        return;
    }
    match shape {
        Shape::Leaf(field) => out.push(Binding {
            parents: [parent, None],
            kind: Kind::Leaf(field, Col::of(col)),
        }),
        Shape::StrOrValue(field) => match col.as_struct_opt() {
            Some(s) => {
                if let Some(value) = s.column_by_name("value") {
                    out.push(Binding {
                        parents: [parent, Some(s)],
                        kind: Kind::Leaf(field, Col::of(value.as_ref())),
                    });
                }
            }
            None => out.push(Binding {
                parents: [parent, None],
                kind: Kind::Leaf(field, Col::of(col)),
            }),
        },
        Shape::Object(field, children) => match col.as_struct_opt() {
            Some(s) => {
                for (f, child) in s.fields().iter().zip(s.columns()) {
                    if let Some(child_field) = member(children, f.name()) {
                        out.push(Binding {
                            parents: [parent, Some(s)],
                            kind: Kind::Leaf(child_field, Col::of(child.as_ref())),
                        });
                    }
                }
            }
            None => out.push(Binding {
                parents: [parent, None],
                kind: Kind::Structural(field, col),
            }),
        },
    }
}

/// A leaf column, downcast once per batch.
enum Col<'b> {
    Utf8(&'b arrow_array::StringArray),
    LargeUtf8(&'b arrow_array::LargeStringArray),
    Utf8View(&'b arrow_array::StringViewArray),
    Binary(&'b arrow_array::BinaryArray),
    LargeBinary(&'b arrow_array::LargeBinaryArray),
    BinaryView(&'b arrow_array::BinaryViewArray),
    I8(&'b PrimitiveArray<Int8Type>),
    I16(&'b PrimitiveArray<Int16Type>),
    I32(&'b PrimitiveArray<Int32Type>),
    I64(&'b PrimitiveArray<Int64Type>),
    U8(&'b PrimitiveArray<UInt8Type>),
    U16(&'b PrimitiveArray<UInt16Type>),
    U32(&'b PrimitiveArray<UInt32Type>),
    U64(&'b PrimitiveArray<UInt64Type>),
    /// Days since the Unix epoch.
    Date32(&'b PrimitiveArray<Date32Type>),
    /// Milliseconds since the Unix epoch.
    Date64(&'b PrimitiveArray<Date64Type>),
    TsSecond(&'b PrimitiveArray<TimestampSecondType>),
    TsMilli(&'b PrimitiveArray<TimestampMillisecondType>),
    TsMicro(&'b PrimitiveArray<TimestampMicrosecondType>),
    TsNano(&'b PrimitiveArray<TimestampNanosecondType>),
    /// Any other type: a wrong type where not null.
    Other(&'b dyn Array),
}

macro_rules! prim {
    ($col:expr, $variant:ident, $t:ty) => {
        $col.as_primitive_opt::<$t>()
            .map_or(Col::Other($col), Col::$variant)
    };
}

impl<'b> Col<'b> {
    fn of(col: &'b dyn Array) -> Col<'b> {
        match col.data_type() {
            DataType::Utf8 => col
                .as_string_opt::<i32>()
                .map_or(Col::Other(col), Col::Utf8),
            DataType::LargeUtf8 => col
                .as_string_opt::<i64>()
                .map_or(Col::Other(col), Col::LargeUtf8),
            DataType::Utf8View => col
                .as_string_view_opt()
                .map_or(Col::Other(col), Col::Utf8View),
            DataType::Binary => col
                .as_binary_opt::<i32>()
                .map_or(Col::Other(col), Col::Binary),
            DataType::LargeBinary => col
                .as_binary_opt::<i64>()
                .map_or(Col::Other(col), Col::LargeBinary),
            DataType::BinaryView => col
                .as_binary_view_opt()
                .map_or(Col::Other(col), Col::BinaryView),
            DataType::Int8 => prim!(col, I8, Int8Type),
            DataType::Int16 => prim!(col, I16, Int16Type),
            DataType::Int32 => prim!(col, I32, Int32Type),
            DataType::Int64 => prim!(col, I64, Int64Type),
            DataType::UInt8 => prim!(col, U8, UInt8Type),
            DataType::UInt16 => prim!(col, U16, UInt16Type),
            DataType::UInt32 => prim!(col, U32, UInt32Type),
            DataType::UInt64 => prim!(col, U64, UInt64Type),
            DataType::Date32 => prim!(col, Date32, Date32Type),
            DataType::Date64 => prim!(col, Date64, Date64Type),
            DataType::Timestamp(TimeUnit::Second, _) => prim!(col, TsSecond, TimestampSecondType),
            DataType::Timestamp(TimeUnit::Millisecond, _) => {
                prim!(col, TsMilli, TimestampMillisecondType)
            }
            DataType::Timestamp(TimeUnit::Microsecond, _) => {
                prim!(col, TsMicro, TimestampMicrosecondType)
            }
            DataType::Timestamp(TimeUnit::Nanosecond, _) => {
                prim!(col, TsNano, TimestampNanosecondType)
            }
            _ => Col::Other(col),
        }
    }

    fn array(&self) -> &'b dyn Array {
        match self {
            Col::Utf8(a) => *a,
            Col::LargeUtf8(a) => *a,
            Col::Utf8View(a) => *a,
            Col::Binary(a) => *a,
            Col::LargeBinary(a) => *a,
            Col::BinaryView(a) => *a,
            Col::I8(a) => *a,
            Col::I16(a) => *a,
            Col::I32(a) => *a,
            Col::I64(a) => *a,
            Col::U8(a) => *a,
            Col::U16(a) => *a,
            Col::U32(a) => *a,
            Col::U64(a) => *a,
            Col::Date32(a) => *a,
            Col::Date64(a) => *a,
            Col::TsSecond(a) => *a,
            Col::TsMilli(a) => *a,
            Col::TsMicro(a) => *a,
            Col::TsNano(a) => *a,
            Col::Other(a) => *a,
        }
    }

    /// The value at `row` (the row index is within the batch).
    fn get(&self, row: usize) -> Leaf<'b> {
        if row >= self.array().len() || self.array().is_null(row) {
            return Leaf::Missing;
        }
        let bytes =
            |b: &'b [u8]| std::str::from_utf8(b).map_or(Leaf::Wrong, |s| Leaf::Str(s.into()));
        match self {
            Col::Utf8(a) => Leaf::Str(a.value(row).into()),
            Col::LargeUtf8(a) => Leaf::Str(a.value(row).into()),
            Col::Utf8View(a) => Leaf::Str(a.value(row).into()),
            Col::Binary(a) => bytes(a.value(row)),
            Col::LargeBinary(a) => bytes(a.value(row)),
            Col::BinaryView(a) => bytes(a.value(row)),
            Col::I8(a) => Leaf::Int(a.value(row).into()),
            Col::I16(a) => Leaf::Int(a.value(row).into()),
            Col::I32(a) => Leaf::Int(a.value(row).into()),
            Col::I64(a) => Leaf::Int(a.value(row)),
            Col::U8(a) => Leaf::Int(a.value(row).into()),
            Col::U16(a) => Leaf::Int(a.value(row).into()),
            Col::U32(a) => Leaf::Int(a.value(row).into()),
            Col::U64(a) => i64::try_from(a.value(row)).map_or(Leaf::Wrong, Leaf::Int),
            Col::Date32(a) => date_from_days(a.value(row).into()),
            Col::Date64(a) => date_from_units(a.value(row), 1_000),
            Col::TsSecond(a) => date_from_units(a.value(row), 1),
            Col::TsMilli(a) => date_from_units(a.value(row), 1_000),
            Col::TsMicro(a) => date_from_units(a.value(row), 1_000_000),
            Col::TsNano(a) => date_from_units(a.value(row), 1_000_000_000),
            Col::Other(_) => Leaf::Wrong,
        }
    }
}

/// The UTC date of a time `value` counted in `per_second` units since the Unix epoch.
fn date_from_units(value: i64, per_second: i64) -> Leaf<'static> {
    date_from_days(value.div_euclid(per_second * 86_400))
}

fn date_from_days(days: i64) -> Leaf<'static> {
    days.checked_add(UNIX_EPOCH_JULIAN_DAY)
        .and_then(|j| i32::try_from(j).ok())
        .and_then(|j| Date::from_julian_day(j).ok())
        .map_or(Leaf::Wrong, Leaf::Date)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_from_epoch_units() {
        let d = |y, m: u8, day| {
            Leaf::Date(Date::from_calendar_date(y, m.try_into().unwrap(), day).unwrap())
        };
        assert_eq!(date_from_days(0), d(1970, 1, 1));
        assert_eq!(date_from_days(-1), d(1969, 12, 31));
        // 1975-07-04T00:00:00Z
        assert_eq!(date_from_units(173_664_000, 1), d(1975, 7, 4));
        assert_eq!(date_from_units(173_664_000_000 - 1, 1_000), d(1975, 7, 3));
        assert_eq!(date_from_units(i64::MAX, 1), Leaf::Wrong);
    }
}
