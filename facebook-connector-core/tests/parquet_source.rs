//! Parquet rows give exactly what the same objects as JSON lines give: member by member,
//! rejected fields and counters, over several row groups, Snappy and Zstd, nulls, missing
//! columns and wrongly typed columns.
#![cfg(feature = "parquet")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use arrow_array::{
    Array, ArrayRef, BooleanArray, Date32Array, Float64Array, Int32Array, Int64Array, RecordBatch,
    StringArray, StructArray, TimestampMicrosecondArray,
};
use arrow_schema::{DataType, Field as AField, Fields, Schema, TimeUnit};
use facebook_connector_core::domain::RecordFormat;
use facebook_connector_core::normalize::ParserConfig;
use facebook_connector_core::source::{
    JsonLinesSource, ParquetSource, Record, RecordReader, RecordSource,
};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A small deterministic generator (no external randomness).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn pick<'a>(&mut self, options: &[Option<&'a str>]) -> Option<&'a str> {
        options[(self.next() as usize) % options.len()]
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

const HEX: &str = "D64AC45AF268C53EA74AD3EF3DBC7102CD0AA9B63CB59456122BE981D3BF2ADE";
const NAMES: &[Option<&str>] = &[
    Some("John"),
    Some("Zoë"),
    Some("E\u{301}mile"),
    Some("O'Brien"),
    Some("123"),
    Some(""),
    Some("Владимир"),
    Some("  Mary Ann "),
    None,
];
const UID_TYPES: &[Option<&str>] = &[
    Some("sha256_email"),
    Some("adid"),
    Some("idfa"),
    Some("ttd_id"),
    None,
];
const UID_VALUES: &[Option<&str>] = &[
    Some(HEX),
    Some("966A15B1-6505-4cb7-ba30-3342c5019112"),
    Some("abc"),
    Some(" "),
    None,
];
const GENDERS: &[Option<&str>] = &[Some("male"), Some("F"), Some("other"), Some(""), None];
const EMAILS: &[Option<&str>] = &[
    Some("Jane@Example.ORG"),
    Some("bad"),
    Some(" "),
    Some("a@b.c"),
    None,
];
const PHONES: &[Option<&str>] = &[
    Some("+1 (415) 555-0123"),
    Some("123"),
    Some("0044 20 7946 0958"),
    None,
];
const DATES: &[Option<&str>] = &[
    Some("1975-07-04T00:00:00Z"),
    Some("1975-07-04"),
    Some("1899-01-01"),
    Some("bad"),
    Some("1980-03-10T23:30:00-02:00"),
    None,
];
const YEARS: &[Option<&str>] = &[Some("1980"), Some("80"), Some("abcd"), Some("2030"), None];
const COUNTRIES: &[Option<&str>] = &[Some("US"), Some("fr"), Some("USA"), Some(""), None];
const CITIES: &[Option<&str>] = &[Some("San Francisco"), Some("São Paulo"), Some("--"), None];
const REGIONS: &[Option<&str>] = &[Some("California"), Some("new york"), Some("ON"), None];
const ZIPS: &[Option<&str>] = &[
    Some("94107-1234"),
    Some("SW1A 1AA"),
    Some("941071234"),
    None,
];

fn utf8(name: &str) -> AField {
    AField::new(name, DataType::Utf8, true)
}

fn strings(v: &[Option<&str>]) -> ArrayRef {
    Arc::new(StringArray::from(v.to_vec()))
}

/// A struct column of string children; `valid[i] == false` makes the whole struct null.
fn string_struct(children: &[(&str, Vec<Option<&str>>)], valid: &[bool]) -> (AField, ArrayRef) {
    let fields: Fields = children
        .iter()
        .map(|(n, _)| utf8(n))
        .collect::<Vec<_>>()
        .into();
    let arrays: Vec<ArrayRef> = children.iter().map(|(_, v)| strings(v)).collect();
    let nulls = arrow_buffer::NullBuffer::from(valid.to_vec());
    let s = StructArray::try_new(fields.clone(), arrays, Some(nulls)).unwrap();
    (
        AField::new("x", DataType::Struct(fields), true),
        Arc::new(s),
    )
}

/// One column being built: its name, Arrow field and array, and each row's JSON value.
struct Column {
    name: &'static str,
    field: AField,
    array: ArrayRef,
    json: Vec<Value>,
}

fn opt_json(v: Option<&str>) -> Value {
    v.map_or(Value::Null, |s| Value::String(s.to_string()))
}

fn struct_column(
    name: &'static str,
    rng: &mut Lcg,
    rows: usize,
    children: &[(&'static str, &[Option<&'static str>])],
) -> Column {
    let mut values: Vec<Vec<Option<&str>>> = vec![Vec::new(); children.len()];
    let mut valid = Vec::new();
    let mut json = Vec::new();
    for _ in 0..rows {
        let ok = !rng.chance(10);
        valid.push(ok);
        let mut obj = Map::new();
        for (i, (child, pool)) in children.iter().enumerate() {
            let v = rng.pick(pool);
            values[i].push(v);
            obj.insert((*child).to_string(), opt_json(v));
        }
        json.push(if ok { Value::Object(obj) } else { Value::Null });
    }
    let spec: Vec<(&str, Vec<Option<&str>>)> =
        children.iter().map(|(n, _)| *n).zip(values).collect();
    let (f, array) = string_struct(&spec, &valid);
    Column {
        name,
        field: f.with_name(name),
        array,
        json,
    }
}

fn string_column(name: &'static str, rng: &mut Lcg, rows: usize, pool: &[Option<&str>]) -> Column {
    let v: Vec<Option<&str>> = (0..rows).map(|_| rng.pick(pool)).collect();
    Column {
        name,
        field: utf8(name),
        array: strings(&v),
        json: v.iter().map(|s| opt_json(*s)).collect(),
    }
}

/// Typical column types.
fn columns_typical(rng: &mut Lcg, rows: usize) -> Vec<Column> {
    let years: Vec<Option<i64>> = (0..rows)
        .map(|_| [Some(1980), Some(1850), Some(2030), Some(1999), None][(rng.next() % 5) as usize])
        .collect();
    vec![
        struct_column(
            "person_name",
            rng,
            rows,
            &[
                ("given_name", NAMES),
                ("family_name", NAMES),
                ("full_name", NAMES),
            ],
        ),
        struct_column(
            "unique_id",
            rng,
            rows,
            &[("type", UID_TYPES), ("value", UID_VALUES)],
        ),
        struct_column("hl7_gender", rng, rows, &[("gender", GENDERS)]),
        struct_column(
            "postal_address",
            rng,
            rows,
            &[
                ("address_locality", CITIES),
                ("address_region", REGIONS),
                ("postal_code", ZIPS),
            ],
        ),
        string_column("raw_email", rng, rows, EMAILS),
        struct_column("telephone_number", rng, rows, &[("value", PHONES)]),
        string_column("e164_phone_number", rng, rows, PHONES),
        Column {
            name: "birth_year",
            field: AField::new("birth_year", DataType::Int64, true),
            array: Arc::new(Int64Array::from(years.clone())),
            json: years
                .iter()
                .map(|y| y.map_or(Value::Null, |y| json!(y)))
                .collect(),
        },
        string_column("birthdate", rng, rows, DATES),
        string_column("iso_3166_1_country", rng, rows, COUNTRIES),
        struct_column("apple_idfa", rng, rows, &[("value", UID_VALUES)]),
        struct_column("sha256_hashed_email", rng, rows, &[("value", UID_VALUES)]),
        string_column("unrelated", rng, rows, EMAILS),
    ]
}

/// Alternative and wrong column types, some attributes missing.
fn columns_alternative(rng: &mut Lcg, rows: usize) -> Vec<Column> {
    let micros: Vec<Option<i64>> = (0..rows)
        .map(|_| {
            // between 1890 and 2030, sometimes null
            if rng.chance(15) {
                None
            } else {
                Some(-2_524_608_000_000_000 + (rng.next() as i64 % 4_418_000_000) * 1_000_000)
            }
        })
        .collect();
    let ts_json = micros
        .iter()
        .map(|m| {
            m.map_or(Value::Null, |m| {
                let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(m) * 1000).unwrap();
                Value::String(t.format(&Rfc3339).unwrap())
            })
        })
        .collect();
    let countries: Vec<Option<i32>> = (0..rows)
        .map(|i| (i % 3 != 0).then_some(i as i32))
        .collect();
    let phones: Vec<Option<f64>> = (0..rows)
        .map(|i| (i % 4 != 0).then_some(4155550123.5))
        .collect();
    let flags: Vec<Option<bool>> = (0..rows).map(|i| (i % 2 == 0).then_some(true)).collect();
    vec![
        struct_column("person_name", rng, rows, &[("given_name", NAMES)]),
        struct_column("raw_email", rng, rows, &[("value", EMAILS)]),
        string_column("birth_year", rng, rows, YEARS),
        Column {
            name: "birthdate",
            field: AField::new(
                "birthdate",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
            array: Arc::new(TimestampMicrosecondArray::from(micros).with_timezone("UTC")),
            json: ts_json,
        },
        // a string where an object is expected: a rejection of `hl7_gender` where not null
        string_column("hl7_gender", rng, rows, GENDERS),
        // numbers where strings are expected
        Column {
            name: "iso_3166_1_country",
            field: AField::new("iso_3166_1_country", DataType::Int32, true),
            array: Arc::new(Int32Array::from(countries.clone())),
            json: countries
                .iter()
                .map(|c| c.map_or(Value::Null, |c| json!(c)))
                .collect(),
        },
        Column {
            name: "telephone_number",
            field: AField::new("telephone_number", DataType::Float64, true),
            array: Arc::new(Float64Array::from(phones.clone())),
            json: phones
                .iter()
                .map(|p| p.map_or(Value::Null, |p| json!(p)))
                .collect(),
        },
        Column {
            name: "e164_phone_number",
            field: AField::new("e164_phone_number", DataType::Boolean, true),
            array: Arc::new(BooleanArray::from(flags.clone())),
            json: flags
                .iter()
                .map(|f| f.map_or(Value::Null, |f| json!(f)))
                .collect(),
        },
        struct_column(
            "mobile_id_unique_identifier",
            rng,
            rows,
            &[("value", UID_VALUES)],
        ),
    ]
}

fn dataset_batch(columns: &[Column]) -> RecordBatch {
    let schema = Schema::new(columns.iter().map(|c| c.field.clone()).collect::<Vec<_>>());
    RecordBatch::try_new(
        Arc::new(schema),
        columns.iter().map(|c| c.array.clone()).collect(),
    )
    .unwrap()
}

/// The same rows as `{"data": {...}}`: a `data` struct column, null for some rows.
fn legacy_batch(columns: &[Column], data_valid: &[bool]) -> RecordBatch {
    let fields: Fields = columns
        .iter()
        .map(|c| c.field.clone())
        .collect::<Vec<_>>()
        .into();
    let arrays = columns.iter().map(|c| c.array.clone()).collect();
    let nulls = arrow_buffer::NullBuffer::from(data_valid.to_vec());
    let data = StructArray::try_new(fields.clone(), arrays, Some(nulls)).unwrap();
    let schema = Schema::new(vec![
        AField::new("data", DataType::Struct(fields), true),
        AField::new("id", DataType::Int64, true),
    ]);
    let ids = Int64Array::from_iter_values(0..data.len() as i64);
    RecordBatch::try_new(Arc::new(schema), vec![Arc::new(data), Arc::new(ids)]).unwrap()
}

fn json_lines(columns: &[Column], rows: usize, legacy_valid: Option<&[bool]>) -> String {
    let mut out = String::new();
    for r in 0..rows {
        let mut obj = Map::new();
        for c in columns {
            // absent and null must agree: omit some nulls entirely
            if c.json[r].is_null() && r % 2 == 0 {
                continue;
            }
            obj.insert(c.name.to_string(), c.json[r].clone());
        }
        let line = match legacy_valid {
            None => Value::Object(obj),
            Some(valid) => {
                json!({"data": if valid[r] { Value::Object(obj) } else { Value::Null }, "id": r})
            }
        };
        out.push_str(&line.to_string());
        out.push('\n');
    }
    out
}

fn write_parquet(path: &std::path::Path, batch: &RecordBatch, compression: Compression) {
    let props = WriterProperties::builder()
        .set_compression(compression)
        .set_max_row_group_row_count(Some(300))
        .build();
    let file = std::fs::File::create(path).unwrap();
    let mut writer = ArrowWriter::try_new(file, batch.schema(), Some(props)).unwrap();
    // written in slices so that row groups and batches do not line up
    let mut offset = 0;
    while offset < batch.num_rows() {
        let len = 137.min(batch.num_rows() - offset);
        writer.write(&batch.slice(offset, len)).unwrap();
        offset += len;
    }
    let meta = writer.close().unwrap();
    assert!(meta.num_row_groups() > 1, "several row groups");
}

fn config() -> ParserConfig {
    ParserConfig::with_current_year(2024)
}

fn compare(parquet: &std::path::Path, json: &str, format: RecordFormat, rows: usize) {
    let mut p = ParquetSource::open(parquet, format, config()).unwrap();
    let from_parquet: Vec<Record> = p.by_ref().map(Result::unwrap).collect();
    let mut j = JsonLinesSource::new(json.as_bytes(), format, config());
    let from_json: Vec<Record> = j.by_ref().map(Result::unwrap).collect();
    assert_eq!(from_parquet.len(), rows);
    assert_eq!(from_json.len(), rows);
    for (a, b) in from_parquet.iter().zip(&from_json) {
        assert_eq!(
            a,
            b,
            "row {} differs; json: {}",
            a.number,
            json.lines().nth(a.number as usize - 1).unwrap()
        );
    }
    assert_eq!(p.stats(), j.stats());
    // the data exercises members, unmatchable records and rejections
    let stats = p.stats();
    assert!(stats.members() > 0 && stats.unmatchable() > 0, "{stats:?}");
    assert!(stats.total_field_rejections() > 0, "{stats:?}");
}

#[test]
fn dataset_rows_match_their_json_form() {
    let rows = 1000;
    let dir = tempfile::tempdir().unwrap();
    for (seed, columns, compression) in [
        (
            1,
            columns_typical as fn(&mut Lcg, usize) -> Vec<Column>,
            Compression::SNAPPY,
        ),
        (
            2,
            columns_alternative,
            Compression::ZSTD(ZstdLevel::try_new(3).unwrap()),
        ),
    ] {
        let cols = columns(&mut Lcg(seed), rows);
        let path = dir.path().join(format!("part-{seed}.parquet"));
        write_parquet(&path, &dataset_batch(&cols), compression);
        compare(
            &path,
            &json_lines(&cols, rows, None),
            RecordFormat::Dataset,
            rows,
        );
    }
}

#[test]
fn legacy_rows_match_their_json_form() {
    let rows = 700;
    let dir = tempfile::tempdir().unwrap();
    let cols = columns_typical(&mut Lcg(3), rows);
    let valid: Vec<bool> = (0..rows).map(|i| i % 7 != 0).collect();
    let path = dir.path().join("legacy.parquet");
    write_parquet(&path, &legacy_batch(&cols, &valid), Compression::SNAPPY);
    compare(
        &path,
        &json_lines(&cols, rows, Some(&valid)),
        RecordFormat::Legacy,
        rows,
    );
}

#[test]
fn a_legacy_data_column_that_is_not_a_struct_is_a_field_rejection() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.parquet");
    let batch = RecordBatch::try_new(
        Arc::new(Schema::new(vec![utf8("data")])),
        vec![strings(&[Some("x"), None])],
    )
    .unwrap();
    write_parquet_single(&path, &batch);
    let mut src = ParquetSource::open(&path, RecordFormat::Legacy, config()).unwrap();
    let records: Vec<Record> = src.by_ref().map(Result::unwrap).collect();
    assert_eq!(records.len(), 2);
    assert!(
        records
            .iter()
            .all(|r| r.member.as_ref().unwrap().is_empty())
    );
    let json = "{\"data\":\"x\"}\n{\"data\":null}\n";
    let from_json: Vec<Record> =
        JsonLinesSource::new(json.as_bytes(), RecordFormat::Legacy, config())
            .map(Result::unwrap)
            .collect();
    assert_eq!(records, from_json);
    assert_eq!(src.stats().field_rejection_counts().get("data"), Some(&1));
}

fn write_parquet_single(path: &std::path::Path, batch: &RecordBatch) {
    let file = std::fs::File::create(path).unwrap();
    let mut writer = ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    writer.write(batch).unwrap();
    writer.close().unwrap();
}

#[test]
fn date_columns_and_integer_years() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dates.parquet");
    let schema = Schema::new(vec![
        AField::new("birthdate", DataType::Date32, true),
        AField::new("birth_year", DataType::Int32, true),
    ]);
    // 1975-07-04 is day 2010 since the epoch
    let batch = RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(Date32Array::from(vec![Some(2010), None, Some(-40_000)])),
            Arc::new(Int32Array::from(vec![Some(1999), Some(1981), Some(1982)])),
        ],
    )
    .unwrap();
    write_parquet_single(&path, &batch);
    let from_parquet: Vec<Record> = ParquetSource::open(&path, RecordFormat::Dataset, config())
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let json = "{\"birthdate\":\"1975-07-04\",\"birth_year\":1999}\n{\"birth_year\":1981}\n{\"birthdate\":\"1860-07-09\",\"birth_year\":1982}\n";
    let from_json: Vec<Record> =
        JsonLinesSource::new(json.as_bytes(), RecordFormat::Dataset, config())
            .map(Result::unwrap)
            .collect();
    assert_eq!(from_parquet, from_json);
    assert_eq!(from_parquet[0].member.as_ref().unwrap().len(), 3);
}

#[test]
fn record_reader_opens_parquet_by_extension_and_reports_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.parquet");
    let cols = columns_typical(&mut Lcg(9), 50);
    write_parquet_single(&path, &dataset_batch(&cols));
    let mut reader = RecordReader::open(&path, RecordFormat::Dataset, config()).unwrap();
    assert!(matches!(reader, RecordReader::Parquet(_)));
    assert_eq!(reader.by_ref().count(), 50);
    assert_eq!(reader.stats().records(), 50);

    let bad = dir.path().join("bad.parquet");
    std::fs::write(&bad, b"{\"not\": \"parquet\"}\n").unwrap();
    let err = match RecordReader::open(&bad, RecordFormat::Dataset, config()) {
        Err(e) => e,
        Ok(_) => panic!("not parquet"),
    };
    assert!(
        err.to_string().starts_with("cannot read parquet file"),
        "{err}"
    );
    assert!(
        RecordReader::open(
            &dir.path().join("missing.parquet"),
            RecordFormat::Dataset,
            config()
        )
        .is_err()
    );

    // in-memory input
    let bytes = bytes::Bytes::from(std::fs::read(&path).unwrap());
    let src = ParquetSource::new(bytes, "memory".into(), RecordFormat::Dataset, config()).unwrap();
    assert_eq!(src.count(), 50);
}
