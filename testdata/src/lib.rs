//! Seeded generators of realistic marketplace records (the benchmarks, the end-to-end tests and
//! the worker's `demo`): mixes of 3–12
//! attributes per record, JSON escapes, non-ASCII names, pre-hashed and raw identifiers, and
//! the occasional invalid value, rendered as legacy or dataset JSON lines or as a Parquet file
//! with struct columns.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use arrow_array::builder::{Int64Builder, StringBuilder, StructBuilder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Fields, Schema};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

/// A small, fast, deterministic PRNG (xorshift64*), so runs are comparable.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// Seeds the generator (0 is replaced by a fixed non-zero seed).
    pub fn new(seed: u64) -> Self {
        Rng(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// True with probability `p_percent`%.
    pub fn chance(&mut self, p_percent: u64) -> bool {
        self.next_u64() % 100 < p_percent
    }

    /// One element of `items`.
    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

const GIVEN: &[&str] = &[
    "John",
    "Mary",
    "José",
    "Zoë",
    "Łukasz",
    "Søren",
    "Ana-María",
    "O'Brien",
    "Chloé",
    "Björn",
    "Françoise",
    "Mohammed",
    "Yuki",
    "Ærin",
    "Wei",
    "Siobhán",
    "Jean \"JJ\"",
    "Émile",
];
const FAMILY: &[&str] = &[
    "Smith",
    "García",
    "Müller",
    "Nowak",
    "Øvergård",
    "Dupont",
    "O'Neil",
    "van der Berg",
    "Kowalczyk",
    "Ibáñez",
    "Nguyễn",
    "Brontë",
    "Fernández\\Ruiz",
    "Håkansson",
];
const DOMAINS: &[&str] = &[
    "example.com",
    "example.org",
    "mail.example.net",
    "exämple.de",
];
const CITIES: &[&str] = &[
    "San Francisco",
    "New York",
    "Zürich",
    "St. Louis",
    "Montréal",
    "Austin",
];
const REGIONS: &[&str] = &[
    "California",
    "NY",
    "Texas",
    "new york",
    "ZH",
    "Québec",
    "District of Columbia",
];
const COUNTRIES: &[&str] = &["US", "us", "FR", "DE", " CA ", "USA", "GB"];
const GENDERS: &[&str] = &["Male", "female", "M", "f", "unknown", " FEMALE "];

/// One generated record, kept as the attribute values so it can be rendered in every form.
#[derive(Clone, Debug, Default)]
pub struct GeneratedRecord {
    /// `person_name.given_name`.
    pub given_name: Option<String>,
    /// `person_name.family_name`.
    pub family_name: Option<String>,
    /// `raw_email` (string form).
    pub raw_email: Option<String>,
    /// `sha256_hashed_email.value`.
    pub hashed_email: Option<String>,
    /// `telephone_number` (string form).
    pub telephone: Option<String>,
    /// `unique_id` as (type, value).
    pub unique_id: Option<(String, String)>,
    /// `hl7_gender.gender`.
    pub gender: Option<String>,
    /// `birthdate`.
    pub birthdate: Option<String>,
    /// `birth_year`.
    pub birth_year: Option<i64>,
    /// `iso_3166_1_country`.
    pub country: Option<String>,
    /// `postal_address.address_locality`.
    pub city: Option<String>,
    /// `postal_address.address_region`.
    pub region: Option<String>,
    /// `postal_address.postal_code`.
    pub postal_code: Option<String>,
}

fn hex64(rng: &mut Rng) -> String {
    let mut s = String::with_capacity(64);
    for _ in 0..4 {
        write!(s, "{:016x}", rng.next_u64()).unwrap();
    }
    s
}

fn uuid_like(rng: &mut Rng) -> String {
    let a = rng.next_u64();
    let b = rng.next_u64();
    format!(
        "{:08X}-{:04X}-4{:03X}-8{:03X}-{:012X}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        b >> 52,
        b & 0xffff_ffff_ffff
    )
}

impl GeneratedRecord {
    /// A record with 3–12 attributes drawn from realistic values.
    pub fn random(rng: &mut Rng) -> Self {
        let mut r = GeneratedRecord::default();
        // 3–12 attributes, most records carrying few (as marketplace records do): mean ≈ 5.1,
        // which makes legacy lines of about 238 bytes on average (the bench prints it)
        const WEIGHTS: [usize; 10] = [30, 22, 15, 10, 7, 5, 4, 3, 2, 2];
        let mut pick = rng.below(WEIGHTS.iter().sum());
        let mut wanted = 3;
        for w in WEIGHTS {
            if pick < w {
                break;
            }
            pick -= w;
            wanted += 1;
        }
        // attribute slots, shuffled by picking until `wanted` are filled
        let mut slots: Vec<u8> = (0..13).collect();
        for i in (1..slots.len()).rev() {
            let j = rng.below(i + 1);
            slots.swap(i, j);
        }
        for slot in slots.into_iter().take(wanted) {
            match slot {
                0 => r.given_name = Some(rng.pick(GIVEN).to_owned()),
                1 => r.family_name = Some(rng.pick(FAMILY).to_owned()),
                2 => {
                    let user = format!("{}.{}", rng.pick(GIVEN), rng.below(10_000));
                    r.raw_email = Some(if rng.chance(3) {
                        "not-an-email".to_owned()
                    } else {
                        format!(" {user}@{} ", rng.pick(DOMAINS))
                    });
                }
                3 => r.hashed_email = Some(hex64(rng)),
                4 => {
                    r.telephone = Some(format!(
                        "+1 ({}) {}-{:04}",
                        200 + rng.below(800),
                        200 + rng.below(800),
                        rng.below(10_000)
                    ))
                }
                5 => {
                    r.unique_id = Some(if rng.chance(50) {
                        ("idfa".to_owned(), uuid_like(rng))
                    } else {
                        ("sha256_email".to_owned(), hex64(rng))
                    })
                }
                6 => r.gender = Some(rng.pick(GENDERS).to_owned()),
                7 => {
                    r.birthdate = Some(format!(
                        "{}-{:02}-{:02}T00:00:00Z",
                        1940 + rng.below(70),
                        1 + rng.below(12),
                        1 + rng.below(28)
                    ))
                }
                8 => r.birth_year = Some(1930 + rng.below(90) as i64),
                9 => r.country = Some(rng.pick(COUNTRIES).to_owned()),
                10 => r.city = Some(rng.pick(CITIES).to_owned()),
                11 => r.region = Some(rng.pick(REGIONS).to_owned()),
                _ => {
                    r.postal_code = Some(if rng.chance(30) {
                        format!("{:05}-{:04}", rng.below(100_000), rng.below(10_000))
                    } else {
                        format!("{:05}", rng.below(100_000))
                    })
                }
            }
        }
        r
    }

    /// The attributes as one JSON object (the dataset form).
    pub fn to_json_object(&self) -> String {
        let mut o = serde_json::Map::new();
        let s = |v: &String| serde_json::Value::String(v.clone());
        if self.given_name.is_some() || self.family_name.is_some() {
            let mut name = serde_json::Map::new();
            if let Some(v) = &self.given_name {
                name.insert("given_name".into(), s(v));
            }
            if let Some(v) = &self.family_name {
                name.insert("family_name".into(), s(v));
            }
            o.insert("person_name".into(), name.into());
        }
        if let Some(v) = &self.raw_email {
            o.insert("raw_email".into(), s(v));
        }
        if let Some(v) = &self.hashed_email {
            o.insert(
                "sha256_hashed_email".into(),
                serde_json::json!({ "value": v }),
            );
        }
        if let Some(v) = &self.telephone {
            o.insert("telephone_number".into(), s(v));
        }
        if let Some((t, v)) = &self.unique_id {
            o.insert(
                "unique_id".into(),
                serde_json::json!({ "type": t, "value": v }),
            );
        }
        if let Some(v) = &self.gender {
            o.insert("hl7_gender".into(), serde_json::json!({ "gender": v }));
        }
        if let Some(v) = &self.birthdate {
            o.insert("birthdate".into(), s(v));
        }
        if let Some(v) = self.birth_year {
            o.insert("birth_year".into(), v.into());
        }
        if let Some(v) = &self.country {
            o.insert("iso_3166_1_country".into(), s(v));
        }
        if self.city.is_some() || self.region.is_some() || self.postal_code.is_some() {
            let mut a = serde_json::Map::new();
            if let Some(v) = &self.city {
                a.insert("address_locality".into(), s(v));
            }
            if let Some(v) = &self.region {
                a.insert("address_region".into(), s(v));
            }
            if let Some(v) = &self.postal_code {
                a.insert("postal_code".into(), s(v));
            }
            o.insert("postal_address".into(), a.into());
        }
        serde_json::Value::Object(o).to_string()
    }
}

/// `n` records from `seed`.
pub fn records(seed: u64, n: usize) -> Vec<GeneratedRecord> {
    let mut rng = Rng::new(seed);
    (0..n).map(|_| GeneratedRecord::random(&mut rng)).collect()
}

/// Newline-terminated JSON lines; legacy lines wrap the object in `{"data": …}`.
pub fn json_lines(records: &[GeneratedRecord], legacy: bool) -> Vec<u8> {
    let mut out = String::new();
    for r in records {
        if legacy {
            out.push_str("{\"data\":");
            out.push_str(&r.to_json_object());
            out.push('}');
        } else {
            out.push_str(&r.to_json_object());
        }
        out.push('\n');
    }
    out.into_bytes()
}

fn utf8() -> DataType {
    DataType::Utf8
}

fn struct_of(names: &[&str]) -> Fields {
    names
        .iter()
        .map(|n| Field::new(*n, utf8(), true))
        .collect::<Vec<_>>()
        .into()
}

/// Writes the records as a Parquet file with one column per attribute (struct columns for
/// object attributes), `rows_per_group` rows per row group.
pub fn write_parquet(
    records: &[GeneratedRecord],
    path: &Path,
    rows_per_group: usize,
    compression: Compression,
) -> parquet::errors::Result<()> {
    let person = struct_of(&["given_name", "family_name"]);
    let hashed = struct_of(&["value"]);
    let uid = struct_of(&["type", "value"]);
    let gender = struct_of(&["gender"]);
    let address = struct_of(&["address_locality", "address_region", "postal_code"]);
    let schema = Arc::new(Schema::new(vec![
        Field::new("person_name", DataType::Struct(person.clone()), true),
        Field::new("raw_email", utf8(), true),
        Field::new(
            "sha256_hashed_email",
            DataType::Struct(hashed.clone()),
            true,
        ),
        Field::new("telephone_number", utf8(), true),
        Field::new("unique_id", DataType::Struct(uid.clone()), true),
        Field::new("hl7_gender", DataType::Struct(gender.clone()), true),
        Field::new("birthdate", utf8(), true),
        Field::new("birth_year", DataType::Int64, true),
        Field::new("iso_3166_1_country", utf8(), true),
        Field::new("postal_address", DataType::Struct(address.clone()), true),
    ]));
    let props = WriterProperties::builder()
        .set_compression(compression)
        .set_max_row_group_row_count(Some(rows_per_group.max(1)))
        .build();
    let file = std::fs::File::create(path)?;
    let mut writer = ArrowWriter::try_new(file, schema.clone(), Some(props))?;
    for chunk in records.chunks(rows_per_group.max(1)) {
        let mut person_b = StructBuilder::from_fields(person.clone(), chunk.len());
        let mut hashed_b = StructBuilder::from_fields(hashed.clone(), chunk.len());
        let mut uid_b = StructBuilder::from_fields(uid.clone(), chunk.len());
        let mut gender_b = StructBuilder::from_fields(gender.clone(), chunk.len());
        let mut address_b = StructBuilder::from_fields(address.clone(), chunk.len());
        let mut email_b = StringBuilder::new();
        let mut phone_b = StringBuilder::new();
        let mut birthdate_b = StringBuilder::new();
        let mut year_b = Int64Builder::new();
        let mut country_b = StringBuilder::new();
        for r in chunk {
            push_struct(&mut person_b, &[&r.given_name, &r.family_name]);
            push_struct(&mut hashed_b, &[&r.hashed_email]);
            let (t, v) = match &r.unique_id {
                Some((t, v)) => (Some(t.clone()), Some(v.clone())),
                None => (None, None),
            };
            push_struct(&mut uid_b, &[&t, &v]);
            push_struct(&mut gender_b, &[&r.gender]);
            push_struct(&mut address_b, &[&r.city, &r.region, &r.postal_code]);
            email_b.append_option(r.raw_email.as_deref());
            phone_b.append_option(r.telephone.as_deref());
            birthdate_b.append_option(r.birthdate.as_deref());
            year_b.append_option(r.birth_year);
            country_b.append_option(r.country.as_deref());
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(person_b.finish()),
            Arc::new(email_b.finish()),
            Arc::new(hashed_b.finish()),
            Arc::new(phone_b.finish()),
            Arc::new(uid_b.finish()),
            Arc::new(gender_b.finish()),
            Arc::new(birthdate_b.finish()),
            Arc::new(year_b.finish()),
            Arc::new(country_b.finish()),
            Arc::new(address_b.finish()),
        ];
        let batch = RecordBatch::try_new(schema.clone(), columns)
            .map_err(|e| parquet::errors::ParquetError::General(e.to_string()))?;
        writer.write(&batch)?;
        writer.flush()?;
    }
    writer.close()?;
    Ok(())
}

/// Appends one struct value: null when every field is absent, else the fields.
fn push_struct(builder: &mut StructBuilder, values: &[&Option<String>]) {
    let present = values.iter().any(|v| v.is_some());
    for (i, v) in values.iter().enumerate() {
        builder
            .field_builder::<StringBuilder>(i)
            .expect("struct fields are strings")
            .append_option(if present { v.as_deref() } else { None });
    }
    builder.append(present);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generator_is_deterministic_and_varied() {
        let a = json_lines(&records(7, 200), false);
        let b = json_lines(&records(7, 200), false);
        assert_eq!(a, b);
        let text = String::from_utf8(a).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 200);
        for line in &lines {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let n = v.as_object().unwrap().len();
            assert!((2..=12).contains(&n), "{line}");
        }
        assert!(
            text.contains("\\\\") || text.contains("\\\""),
            "escapes are generated"
        );
        assert!(!text.is_ascii(), "non-ASCII names are generated");
        let avg = text.len() / lines.len();
        assert!((60..400).contains(&avg), "average line length {avg}");
    }

    #[test]
    fn parquet_file_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.parquet");
        write_parquet(&records(1, 1000), &path, 256, Compression::SNAPPY).unwrap();
        assert!(std::fs::metadata(&path).unwrap().len() > 1000);
    }
}
