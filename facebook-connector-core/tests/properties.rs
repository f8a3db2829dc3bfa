//! Property tests of the parser and the payload builder.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use facebook_connector_core::domain::RecordFormat;
use facebook_connector_core::member::{AudienceMember, MemberKey, is_lower_hex64};
use facebook_connector_core::normalize::{ParserConfig, RecordParser};
use facebook_connector_core::payload::{MAX_BATCH_SIZE, PayloadBuilder};
use facebook_connector_core::source::{JsonLinesSource, RecordSource};
use proptest::prelude::*;
use serde_json::{Map, Value};

const ATTRIBUTES: &[&str] = &[
    "unique_id",
    "hashed_email",
    "sha256_hashed_email",
    "normalized_email",
    "raw_email",
    "sha256_hashed_phone_number",
    "e164_phone_number",
    "telephone_number",
    "mobile_id_unique_identifier",
    "android_advertising_id",
    "apple_idfa",
    "person_name",
    "hl7_gender",
    "birthdate",
    "birth_year",
    "iso_3166_1_country",
    "postal_address",
    "data",
    "other",
];
const MEMBERS: &[&str] = &[
    "type",
    "value",
    "given_name",
    "family_name",
    "full_name",
    "gender",
    "address_locality",
    "address_region",
    "postal_code",
    "x",
];
const STRINGS: &[&str] = &[
    "sha256_email",
    "adid",
    "idfa",
    "ttd_id",
    "d64ac45af268c53ea74ad3ef3dbc7102cd0aa9b63cb59456122be981d3bf2ade",
    "Jane@Example.ORG",
    "a@b@c",
    "+1 (415) 555-0123",
    "John",
    "Zoë",
    "E\u{301}mile",
    "female",
    "M",
    "1975-07-04T00:00:00Z",
    "1980-03-10",
    "1980",
    "US",
    "New York",
    "94107-1234",
    "",
    " ",
];

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (1850i64..2040).prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        prop::sample::select(STRINGS).prop_map(|s| Value::String(s.to_string())),
        any::<String>().prop_map(Value::String),
        "[a-zA-Z0-9@ .+()-]{0,20}".prop_map(Value::String),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(MEMBERS), inner), 0..5).prop_map(|kv| {
                Value::Object(
                    kv.into_iter()
                        .map(|(k, v)| (k.to_string(), v))
                        .collect::<Map<_, _>>(),
                )
            }),
        ]
    })
}

/// An attributes object with realistic keys and arbitrary values.
fn record() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::vec((prop::sample::select(ATTRIBUTES), value()), 0..8)
        .prop_map(|kv| kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

fn parser(format: RecordFormat) -> RecordParser {
    RecordParser::new(format, ParserConfig::with_current_year(2024))
}

fn assert_well_formed(member: &AudienceMember) {
    for (k, v) in member.iter() {
        let v = v.to_string();
        if k.is_hashed() {
            assert!(is_lower_hex64(v.as_bytes()), "{k}: {v}");
        } else {
            assert!(!v.is_empty());
            assert_eq!(v, v.trim());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        for format in [RecordFormat::Legacy, RecordFormat::Dataset] {
            if let Ok(p) = parser(format).parse_json(&bytes) {
                assert_well_formed(&p.member);
            }
            let mut src = JsonLinesSource::new(bytes.as_slice(), format, ParserConfig::default());
            let mut n = 0u64;
            for r in src.by_ref() {
                r.unwrap();
                n += 1;
            }
            let stats = src.stats();
            prop_assert_eq!(n, stats.records() + stats.rejected_lines());
            prop_assert_eq!(stats.records(), stats.members() + stats.unmatchable());
        }
    }

    #[test]
    fn never_panics_on_arbitrary_json(v in value()) {
        let line = v.to_string();
        for format in [RecordFormat::Legacy, RecordFormat::Dataset] {
            let r = parser(format).parse_json(line.as_bytes());
            prop_assert_eq!(r.is_ok(), v.is_object(), "{}", line);
        }
    }

    #[test]
    fn legacy_and_dataset_forms_agree(rec in record()) {
        let dataset = Value::Object(rec.clone()).to_string();
        let legacy = serde_json::json!({"data": Value::Object(rec), "other": 1}).to_string();
        let a = parser(RecordFormat::Dataset).parse_json(dataset.as_bytes()).unwrap();
        let b = parser(RecordFormat::Legacy).parse_json(legacy.as_bytes()).unwrap();
        assert_well_formed(&a.member);
        prop_assert_eq!(&a, &b, "{}", dataset);
        // the JSON form of a member reads back as the same member
        let back: AudienceMember = serde_json::from_str(&a.member.to_json()).unwrap();
        prop_assert_eq!(back, a.member);
    }

    #[test]
    fn payloads_have_schema_width_and_full_batches(
        recs in prop::collection::vec(record(), 0..60),
        batch_size in 1usize..8,
    ) {
        let mut p = parser(RecordFormat::Dataset);
        let members: Vec<AudienceMember> = recs
            .iter()
            .map(|r| p.parse_json(Value::Object(r.clone()).to_string().as_bytes()).unwrap().member)
            .collect();
        let matchable: Vec<&AudienceMember> = members.iter().filter(|m| m.is_matchable()).collect();
        let payloads: Vec<_> = PayloadBuilder::new(batch_size).unwrap().batches(&members).collect();
        let total: usize = payloads.iter().map(|p| p.len()).sum();
        prop_assert_eq!(total, matchable.len());
        let mut next = 0;
        for (i, payload) in payloads.iter().enumerate() {
            prop_assert!(payload.len() <= batch_size && payload.len() <= MAX_BATCH_SIZE);
            if i + 1 < payloads.len() {
                prop_assert_eq!(payload.len(), batch_size);
            }
            let v: Value = serde_json::from_str(&payload.to_json()).unwrap();
            let schema: Vec<MemberKey> = v["schema"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| MemberKey::parse(k.as_str().unwrap()).unwrap())
                .collect();
            prop_assert_eq!(&schema[..], payload.schema());
            prop_assert!(schema.windows(2).all(|w| w[0] < w[1]), "schema order");
            let rows = v["data"].as_array().unwrap();
            prop_assert_eq!(rows.len(), payload.len());
            for key in &schema {
                prop_assert!(rows.iter().any(|r| r[key.index_in(&schema)] != ""), "unused key {}", key);
            }
            for row in rows {
                let row = row.as_array().unwrap();
                prop_assert_eq!(row.len(), schema.len());
                let member = matchable[next];
                next += 1;
                for (key, cell) in schema.iter().zip(row) {
                    prop_assert_eq!(cell.as_str().unwrap(), member.get(*key).map(|v| v.to_string()).unwrap_or_default());
                }
            }
        }
    }
}

trait IndexIn {
    fn index_in(&self, schema: &[MemberKey]) -> usize;
}

impl IndexIn for MemberKey {
    fn index_in(&self, schema: &[MemberKey]) -> usize {
        schema.iter().position(|k| k == self).unwrap()
    }
}
