//! Data-driven tests of every row and note of normalization.md, plus the original Scala
//! connector's `AudienceParserSpec` cases.

use super::*;
use crate::member::{MemberKey as K, sha256_hex};

const YEAR: i32 = 2024;

/// A member's value as the string Facebook receives.
trait ValueOf {
    fn value(&self, key: K) -> Option<String>;
}

impl ValueOf for AudienceMember {
    fn value(&self, key: K) -> Option<String> {
        self.get(key).map(|v| v.to_string())
    }
}

fn parse(format: RecordFormat, line: &str) -> ParsedRecord {
    RecordParser::new(format, ParserConfig::with_current_year(YEAR))
        .parse_json(line.as_bytes())
        .unwrap_or_else(|e| panic!("{line}: {e}"))
}

fn h(s: &str) -> String {
    String::from_utf8(sha256_hex(s.as_bytes()).to_vec()).unwrap()
}

/// Expected final values: hashed keys are given as their normalized plaintext, MADID in clear.
fn expected(pairs: &[(K, &str)]) -> Vec<(K, String)> {
    let mut v: Vec<(K, String)> = pairs
        .iter()
        .map(|(k, s)| (*k, if *k == K::MADID { s.to_string() } else { h(s) }))
        .collect();
    v.sort_by_key(|(k, _)| *k);
    v
}

fn actual(member: &AudienceMember) -> Vec<(K, String)> {
    member.iter().map(|(k, v)| (k, v.to_string())).collect()
}

/// Runs one dataset-form case, and the same object as a legacy record's `data`.
fn check(record: &str, want: &[(K, &str)], rejected: &[&str]) {
    for (format, line) in [
        (RecordFormat::Dataset, record.to_string()),
        (RecordFormat::Legacy, format!(r#"{{"data": {record}}}"#)),
    ] {
        let parsed = parse(format, &line);
        assert_eq!(actual(&parsed.member), expected(want), "{format}: {line}");
        let got: Vec<&str> = parsed.rejected_fields.iter().map(Field::as_str).collect();
        let mut want_rejected = rejected.to_vec();
        want_rejected.sort_by_key(|n| Field::parse(n).map(Field::index));
        assert_eq!(got, want_rejected, "rejections of {format}: {line}");
    }
}

fn check_empty(record: &str) {
    check(record, &[], &[]);
}

const HEX_A: &str = "d64ac45af268c53ea74ad3ef3dbc7102cd0aa9b63cb59456122be981d3bf2ade";
const HEX_B: &str = "0b9383907749fcb5121c25f9af1710e192cc521c85f49eeb3742a44bd6af66ea";
const HEX_C: &str = "850a1ec9bdbb01c9650344d96e0403fe27b4ce75efbad620b14b47692340bb78";

#[test]
fn spec_examples() {
    let john = parse(
        RecordFormat::Dataset,
        r#"{"person_name": {"given_name": "John", "family_name": "Smith"}}"#,
    )
    .member;
    let fn_ = john.value(K::FN).unwrap();
    assert!(
        fn_.starts_with("96d9632f") && fn_.ends_with("607a"),
        "{fn_}"
    );
    let fi = john.value(K::FI).unwrap();
    assert!(fi.starts_with("189f4003") && fi.ends_with("57b7"), "{fi}");
    let ln = john.value(K::LN).unwrap();
    assert!(ln.starts_with("6627835f") && ln.ends_with("a2dd"), "{ln}");
    assert!(john.is_matchable());

    check(
        r#"{"birthdate": "1975-07-04T00:00:00Z"}"#,
        &[(K::DOBY, "1975"), (K::DOBM, "07"), (K::DOBD, "04")],
        &[],
    );
    let jane = parse(
        RecordFormat::Dataset,
        r#"{"raw_email": "  Jane@Example.ORG "}"#,
    )
    .member;
    let email = jane.value(K::EMAIL).unwrap();
    assert!(
        email.starts_with("13d855ce") && email.ends_with("ced6"),
        "{email}"
    );
    check(
        r#"{"telephone_number": "+1 (415) 555-0123"}"#,
        &[(K::PHONE, "14155550123")],
        &[],
    );
    check(
        r#"{"apple_idfa": {"value": "AB12CD34-0000-4000-8000-00000000AAAA"}}"#,
        &[(K::MADID, "ab12cd34-0000-4000-8000-00000000aaaa")],
        &[],
    );
    check(
        r#"{"hl7_gender": {"gender": "Female"}, "iso_3166_1_country": "FR"}"#,
        &[(K::GEN, "f"), (K::COUNTRY, "fr")],
        &[],
    );
    // Facebook's documented vector
    let mary = parse(
        RecordFormat::Legacy,
        r#"{"data":{"raw_email":"mary@example.com"}}"#,
    )
    .member;
    assert_eq!(
        mary.value(K::EMAIL),
        Some("f1904cf1a9d73a55fa5de0ac823c4403ded71afd4c3248d00bdcd0866552bb79".to_string())
    );
}

#[test]
fn email_sources_precedence_and_fall_through() {
    let upper = HEX_A.to_uppercase();
    let table: &[(&str, &str, &[&str])] = &[
        // (record, expected EMAIL: "hex:<value>" pre-hashed or raw plaintext, rejections)
        (
            &format!(r#"{{"unique_id": {{"type": "sha256_email", "value": "{HEX_A}"}}}}"#),
            "hex:A",
            &[],
        ),
        (
            &format!(r#"{{"unique_id": {{"type": "sha256_email", "value": "{upper}"}}}}"#),
            "hex:A",
            &[],
        ),
        (
            &format!(r#"{{"hashed_email": {{"type": "sha256_email", "value": "{HEX_B}"}}}}"#),
            "hex:B",
            &[],
        ),
        (
            &format!(r#"{{"sha256_hashed_email": {{"value": "{HEX_C}"}}}}"#),
            "hex:C",
            &[],
        ),
        (
            r#"{"normalized_email": "mary@example.com"}"#,
            "mary@example.com",
            &[],
        ),
        (
            r#"{"normalized_email": {"value": "Mary@Example.com"}}"#,
            "mary@example.com",
            &[],
        ),
        (
            r#"{"raw_email": {"value": " Jane@Example.ORG"}}"#,
            "jane@example.org",
            &[],
        ),
        // precedence: unique_id > hashed_email > sha256_hashed_email > normalized > raw
        (
            &format!(
                r#"{{"hashed_email": {{"type": "sha256_email", "value": "{HEX_B}"}}, "unique_id": {{"type": "sha256_email", "value": "{HEX_A}"}}}}"#
            ),
            "hex:A",
            &[],
        ),
        (
            &format!(
                r#"{{"sha256_hashed_email": {{"value": "{HEX_C}"}}, "hashed_email": {{"type": "sha256_email", "value": "{HEX_B}"}}}}"#
            ),
            "hex:B",
            &[],
        ),
        (
            &format!(r#"{{"raw_email": "x@y.z", "sha256_hashed_email": {{"value": "{HEX_C}"}}}}"#),
            "hex:C",
            &[],
        ),
        (
            r#"{"raw_email": "raw@y.z", "normalized_email": "norm@y.z"}"#,
            "norm@y.z",
            &[],
        ),
        // fall-through on invalid values, each counted
        (
            &format!(
                r#"{{"unique_id": {{"type": "sha256_email", "value": "abc"}}, "hashed_email": {{"type": "sha256_email", "value": "{HEX_B}"}}}}"#
            ),
            "hex:B",
            &["unique_id.value"],
        ),
        (
            &format!(
                r#"{{"sha256_hashed_email": {{"value": "{}"}}, "raw_email": "a@b.c"}}"#,
                &HEX_A[..63]
            ),
            "a@b.c",
            &["sha256_hashed_email.value"],
        ),
        (
            r#"{"normalized_email": "nope", "raw_email": "a@b.c"}"#,
            "a@b.c",
            &["normalized_email"],
        ),
        (
            r#"{"normalized_email": 42, "raw_email": "a@b.c"}"#,
            "a@b.c",
            &["normalized_email"],
        ),
        // a lower-precedence invalid source is still counted
        (
            &format!(r#"{{"sha256_hashed_email": {{"value": "{HEX_C}"}}, "raw_email": "@nope"}}"#),
            "hex:C",
            &["raw_email"],
        ),
        // other hash types are ignored (not counted), like the original
        (
            r#"{"hashed_email": {"type": "sha1_email", "value": "32c281951528fda472cc53ea2c5c81b9d50f184e"}}"#,
            "",
            &[],
        ),
        (
            r#"{"unique_id": {"type": "sha1_email", "value": "32c281951528fda472cc53ea2c5c81b9d50f184e"}}"#,
            "",
            &[],
        ),
        (
            r#"{"sha256_hashed_email": {"value": "32c281951528fda472cc53ea2c5c81b9d50f184e"}}"#,
            "",
            &["sha256_hashed_email.value"],
        ),
        // wrong types
        (
            r#"{"sha256_hashed_email": "abc"}"#,
            "",
            &["sha256_hashed_email"],
        ),
        (r#"{"raw_email": ["a@b.c"]}"#, "", &["raw_email"]),
        (r#"{"raw_email": {"value": true}}"#, "", &["raw_email"]),
        (r#"{"raw_email": {"other": "a@b.c"}}"#, "", &[]),
        (r#"{"raw_email": null}"#, "", &[]),
        (r#"{"raw_email": "   "}"#, "", &[]),
        (
            r#"{"hashed_email": {"type": 1, "value": "x"}}"#,
            "",
            &["hashed_email.type"],
        ),
    ];
    for (record, want, rejected) in table {
        let want: Vec<(K, String)> = match *want {
            "" => vec![],
            "hex:A" => vec![(K::EMAIL, HEX_A.to_string())],
            "hex:B" => vec![(K::EMAIL, HEX_B.to_string())],
            "hex:C" => vec![(K::EMAIL, HEX_C.to_string())],
            raw => vec![(K::EMAIL, h(raw))],
        };
        for format in [RecordFormat::Dataset, RecordFormat::Legacy] {
            let line = match format {
                RecordFormat::Dataset => record.to_string(),
                RecordFormat::Legacy => format!(r#"{{"data":{record}}}"#),
            };
            let parsed = parse(format, &line);
            assert_eq!(actual(&parsed.member), want, "{line}");
            let got: Vec<&str> = parsed.rejected_fields.iter().map(Field::as_str).collect();
            assert_eq!(&got, rejected, "{line}");
        }
    }
}

#[test]
fn phone_sources() {
    let hex = HEX_A.to_uppercase();
    let p = parse(
        RecordFormat::Dataset,
        &format!(
            r#"{{"sha256_hashed_phone_number": {{"value": "{hex}"}}, "e164_phone_number": "+14155550123"}}"#
        ),
    );
    assert_eq!(p.member.value(K::PHONE), Some(HEX_A.to_string()));
    check(
        r#"{"e164_phone_number": "+33612345678", "telephone_number": "555"}"#,
        &[(K::PHONE, "33612345678")],
        &["telephone_number"],
    );
    check(
        r#"{"e164_phone_number": "123", "telephone_number": {"value": "0044 20 7946 0958"}}"#,
        &[(K::PHONE, "442079460958")],
        &["e164_phone_number"],
    );
    check(
        r#"{"telephone_number": 14155550123}"#,
        &[],
        &["telephone_number"],
    );
    check(
        r#"{"telephone_number": "1234567890123456"}"#,
        &[],
        &["telephone_number"],
    );
    check(
        r#"{"sha256_hashed_phone_number": {"value": "123"}}"#,
        &[],
        &["sha256_hashed_phone_number.value"],
    );
    check(r#"{"telephone_number": "n/a"}"#, &[], &[]);
}

#[test]
fn madid_sources() {
    let u = |t: &str, v: &str| format!(r#"{{"unique_id": {{"type": {t}, "value": "{v}"}}}}"#);
    check(
        &u(r#""adid""#, " 966A15B1-6505-4cb7-ba30-3342c5019112 "),
        &[(K::MADID, "966a15b1-6505-4cb7-ba30-3342c5019112")],
        &[],
    );
    check(&u(r#""idfa""#, "X-1"), &[(K::MADID, "x-1")], &[]);
    check(&u("null", "X-2"), &[(K::MADID, "x-2")], &[]);
    check(
        r#"{"unique_id": {"value": "X-3"}}"#,
        &[(K::MADID, "x-3")],
        &[],
    );
    // other types: neither EMAIL nor MADID
    check_empty(&u(r#""ttd_id""#, "4c817c83-61e6-45c1-83d6-17492e04ba97"));
    check_empty(&u(
        r#""sha1_email""#,
        "32c281951528fda472cc53ea2c5c81b9d50f184e",
    ));
    check(&u("7", "x"), &[], &["unique_id.type"]);
    check(r#"{"unique_id": "abc"}"#, &[], &["unique_id"]);
    check(r#"{"unique_id": {"value": 12}}"#, &[], &["unique_id.value"]);
    check(
        r#"{"mobile_id_unique_identifier": {"value": "M"}}"#,
        &[(K::MADID, "m")],
        &[],
    );
    check(
        r#"{"android_advertising_id": {"value": "A"}}"#,
        &[(K::MADID, "a")],
        &[],
    );
    // precedence unique_id > mobile_id > android > apple, falling through empty values
    check(
        r#"{"apple_idfa": {"value": "I"}, "android_advertising_id": {"value": "A"}, "mobile_id_unique_identifier": {"value": "M"}, "unique_id": {"type": "adid", "value": "U"}}"#,
        &[(K::MADID, "u")],
        &[],
    );
    check(
        r#"{"apple_idfa": {"value": "I"}, "android_advertising_id": {"value": "A"}, "unique_id": {"type": "adid", "value": "  "}}"#,
        &[(K::MADID, "a")],
        &[],
    );
    check(
        r#"{"apple_idfa": {"value": "I"}, "android_advertising_id": {"value": 5}}"#,
        &[(K::MADID, "i")],
        &["android_advertising_id.value"],
    );
    check(r#"{"apple_idfa": "I"}"#, &[], &["apple_idfa"]);
}

#[test]
fn names() {
    check(
        r#"{"person_name": {"given_name": " Zoë-Anne ", "family_name": "O'Brien 3rd"}}"#,
        &[(K::FN, "zoëanne"), (K::FI, "z"), (K::LN, "obrienrd")],
        &[],
    );
    check(
        r#"{"person_name": {"given_name": "Émile", "family_name": "Zola"}}"#,
        &[(K::FN, "émile"), (K::FI, "é"), (K::LN, "zola")],
        &[],
    );
    // decomposed input is composed (NFC) first
    check(
        "{\"person_name\": {\"given_name\": \"E\u{301}mile\"}}",
        &[(K::FN, "émile"), (K::FI, "é")],
        &[],
    );
    check(
        r#"{"person_name": {"given_name": "\u00c9MILE"}}"#,
        &[(K::FN, "émile"), (K::FI, "é")],
        &[],
    );
    // full_name alone yields nothing
    check_empty(r#"{"person_name": {"full_name": "Alice Bowers"}}"#);
    // empty after normalization: absent, not rejected
    check_empty(r#"{"person_name": {"given_name": "123", "family_name": "--"}}"#);
    check(
        r#"{"person_name": {"given_name": 5, "family_name": "Smith"}}"#,
        &[(K::LN, "smith")],
        &["person_name.given_name"],
    );
    check(r#"{"person_name": ["John"]}"#, &[], &["person_name"]);
    check_empty(r#"{"person_name": null}"#);
    // FN + LN is matchable, FN alone is not
    let both = parse(
        RecordFormat::Dataset,
        r#"{"person_name": {"given_name": "a", "family_name": "b"}}"#,
    );
    assert!(both.member.is_matchable());
    let first = parse(
        RecordFormat::Dataset,
        r#"{"person_name": {"given_name": "a"}}"#,
    );
    assert!(!first.member.is_matchable());
}

#[test]
fn gender_country_address() {
    check(
        r#"{"hl7_gender": {"gender": " MALE "}}"#,
        &[(K::GEN, "m")],
        &[],
    );
    check(r#"{"hl7_gender": {"gender": "f"}}"#, &[(K::GEN, "f")], &[]);
    check(
        r#"{"hl7_gender": {"gender": "unknown"}}"#,
        &[],
        &["hl7_gender.gender"],
    );
    check(r#"{"hl7_gender": "male"}"#, &[], &["hl7_gender"]);
    check(
        r#"{"iso_3166_1_country": " us "}"#,
        &[(K::COUNTRY, "us")],
        &[],
    );
    check(
        r#"{"iso_3166_1_country": "USA"}"#,
        &[],
        &["iso_3166_1_country"],
    );
    check(
        r#"{"iso_3166_1_country": {"value": "US"}}"#,
        &[],
        &["iso_3166_1_country"],
    );
    check(
        r#"{"postal_address": {"address_locality": "San Francisco", "address_region": "California", "postal_code": "94107-1234"}}"#,
        &[(K::CT, "sanfrancisco"), (K::ST, "ca"), (K::ZIP, "94107")],
        &[],
    );
    check(
        r#"{"postal_address": {"address_locality": "São Paulo", "address_region": "SP", "postal_code": "01310-100"}}"#,
        &[(K::CT, "sãopaulo"), (K::ST, "sp"), (K::ZIP, "01310-100")],
        &[],
    );
    check(
        r#"{"postal_address": {"address_locality": "London", "address_region": "Greater London", "postal_code": "SW1A 1AA"}}"#,
        &[
            (K::CT, "london"),
            (K::ST, "greaterlondon"),
            (K::ZIP, "sw1a1aa"),
        ],
        &[],
    );
    check(
        r#"{"postal_address": {"address_region": "new york", "postal_code": "100011234"}}"#,
        &[(K::ST, "ny"), (K::ZIP, "10001")],
        &[],
    );
    check(
        r#"{"postal_address": {"postal_code": 94107}}"#,
        &[],
        &["postal_address.postal_code"],
    );
    check(
        r#"{"postal_address": "1 Main St"}"#,
        &[],
        &["postal_address"],
    );
}

#[test]
fn birth_dates_and_years() {
    let full = |y: &str, m: &str, d: &str| {
        vec![
            (K::DOBY, y.to_string()),
            (K::DOBM, m.to_string()),
            (K::DOBD, d.to_string()),
        ]
    };
    type Case<'a> = (&'a str, Vec<(K, String)>, &'a [&'a str]);
    let table: Vec<Case<'_>> = vec![
        (
            r#"{"birthdate": "1980-03-10"}"#,
            full("1980", "03", "10"),
            &[],
        ),
        (
            r#"{"birthdate": "1980-03-10T23:30:00-02:00"}"#,
            full("1980", "03", "11"),
            &[],
        ),
        (
            r#"{"birthdate": "1900-01-01T00:00:00Z"}"#,
            full("1900", "01", "01"),
            &[],
        ),
        (
            r#"{"birthdate": "2024-12-31"}"#,
            full("2024", "12", "31"),
            &[],
        ),
        // outside 1900..=current year: falls back to birth_year
        (
            r#"{"birthdate": "1899-12-31", "birth_year": 1980}"#,
            vec![(K::DOBY, "1980".into())],
            &["birthdate"],
        ),
        (
            r#"{"birthdate": "2025-01-01", "birth_year": "1981"}"#,
            vec![(K::DOBY, "1981".into())],
            &["birthdate"],
        ),
        (
            r#"{"birthdate": "garbage", "birth_year": 1982}"#,
            vec![(K::DOBY, "1982".into())],
            &["birthdate"],
        ),
        (
            r#"{"birthdate": 19800310, "birth_year": 1983}"#,
            vec![(K::DOBY, "1983".into())],
            &["birthdate"],
        ),
        // birthdate wins over birth_year; a bad birth_year is still counted
        (
            r#"{"birthdate": "1980-03-10", "birth_year": 1999}"#,
            full("1980", "03", "10"),
            &[],
        ),
        (
            r#"{"birthdate": "1980-03-10", "birth_year": 1800}"#,
            full("1980", "03", "10"),
            &["birth_year"],
        ),
        (
            r#"{"birth_year": 1900}"#,
            vec![(K::DOBY, "1900".into())],
            &[],
        ),
        (
            r#"{"birth_year": 2024}"#,
            vec![(K::DOBY, "2024".into())],
            &[],
        ),
        (r#"{"birth_year": 2025}"#, vec![], &["birth_year"]),
        (r#"{"birth_year": 1899}"#, vec![], &["birth_year"]),
        (r#"{"birth_year": -1980}"#, vec![], &["birth_year"]),
        (r#"{"birth_year": 1980.0}"#, vec![], &["birth_year"]),
        (r#"{"birth_year": "80"}"#, vec![], &["birth_year"]),
        (r#"{"birth_year": "19800"}"#, vec![], &["birth_year"]),
        (r#"{"birth_year": true}"#, vec![], &["birth_year"]),
        (r#"{"birth_year": null, "birthdate": null}"#, vec![], &[]),
        (
            r#"{"birth_year": 99999999999999999999}"#,
            vec![],
            &["birth_year"],
        ),
    ];
    for (record, want, rejected) in table {
        for line in [record.to_string(), format!(r#"{{"data":{record}}}"#)] {
            let format = if line.starts_with(r#"{"data""#) {
                RecordFormat::Legacy
            } else {
                RecordFormat::Dataset
            };
            let parsed = parse(format, &line);
            let mut want: Vec<(K, String)> = want.iter().map(|(k, v)| (*k, h(v))).collect();
            want.sort();
            assert_eq!(actual(&parsed.member), want, "{line}");
            let got: Vec<&str> = parsed.rejected_fields.iter().map(Field::as_str).collect();
            assert_eq!(got, rejected, "{line}");
        }
    }
    // the current year is injectable
    let mut parser =
        RecordParser::new(RecordFormat::Dataset, ParserConfig::with_current_year(2030));
    let p = parser.parse_json(br#"{"birth_year": 2030}"#).unwrap();
    assert_eq!(p.member.value(K::DOBY), Some(h("2030")));
}

#[test]
fn record_shapes_and_rejected_lines() {
    let mut dataset =
        RecordParser::new(RecordFormat::Dataset, ParserConfig::with_current_year(YEAR));
    let mut legacy = RecordParser::new(RecordFormat::Legacy, ParserConfig::with_current_year(YEAR));
    for bad in [
        "",
        "null",
        "[]",
        "[{}]",
        "\"x\"",
        "42",
        "{",
        "{\"a\":1} x",
        "{\"a\":1}{}",
        "{'a':1}",
    ] {
        assert!(dataset.parse_json(bad.as_bytes()).is_err(), "{bad:?}");
        assert!(legacy.parse_json(bad.as_bytes()).is_err(), "{bad:?}");
    }
    assert!(dataset.parse_json(b"{\"raw_email\":\"\xff@b.c\"}").is_err());
    // deep nesting neither overflows the stack nor fails: it is valid JSON, skipped
    for attr in ["x", "raw_email", "person_name"] {
        let deep = format!(
            "{{\"{attr}\":{}{}}}",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        let p = dataset.parse_json(deep.as_bytes()).unwrap();
        assert!(p.member.is_empty());
        let unclosed = format!("{{\"{attr}\":{}", "[".repeat(100_000));
        assert!(dataset.parse_json(unclosed.as_bytes()).is_err());
    }
    // legacy: attributes only under data; other keys ignored
    let p = legacy
        .parse_json(br#"{"raw_email": "a@b.c", "id": 5}"#)
        .unwrap();
    assert!(p.member.is_empty() && p.rejected_fields.is_empty());
    let p = legacy.parse_json(br#"{"data": null}"#).unwrap();
    assert!(p.member.is_empty() && p.rejected_fields.is_empty());
    for bad_data in [r#""x""#, "[1]", "7", "true"] {
        let p = legacy
            .parse_json(format!(r#"{{"data": {bad_data}}}"#).as_bytes())
            .unwrap();
        assert!(p.member.is_empty());
        assert_eq!(
            p.rejected_fields.iter().collect::<Vec<_>>(),
            [Field::Data],
            "{bad_data}"
        );
    }
    let p = legacy
        .parse_json(br#"{"meta": {"raw_email": "x@y.z"}, "data": {"raw_email": "a@b.c"}, "more": [1, {"a": null}]}"#)
        .unwrap();
    assert_eq!(p.member.value(K::EMAIL), Some(h("a@b.c")));
    // dataset: a `data` attribute is just an unknown attribute
    let p = dataset
        .parse_json(br#"{"data": {"raw_email": "a@b.c"}}"#)
        .unwrap();
    assert!(p.member.is_empty() && p.rejected_fields.is_empty());
    // escapes in keys and values
    let p = dataset
        .parse_json(br#"{"raw\u005femail": "J\u0041NE@example.org", "unknown": {"deep": [1, 2, {"x": "y"}]}}"#)
        .unwrap();
    assert_eq!(p.member.value(K::EMAIL), Some(h("jane@example.org")));
    // duplicate keys: the last wins
    let p = dataset
        .parse_json(br#"{"raw_email": "a@b.c", "raw_email": "d@e.f"}"#)
        .unwrap();
    assert_eq!(p.member.value(K::EMAIL), Some(h("d@e.f")));
}

#[test]
fn matchable_rule() {
    for (record, matchable) in [
        (r#"{"raw_email": "a@b.c"}"#, true),
        (r#"{"telephone_number": "14155550123"}"#, true),
        (r#"{"apple_idfa": {"value": "x"}}"#, true),
        (
            r#"{"person_name": {"given_name": "a", "family_name": "b"}}"#,
            true,
        ),
        (
            r#"{"person_name": {"family_name": "b"}, "iso_3166_1_country": "us", "birth_year": 1980, "hl7_gender": {"gender": "m"}, "postal_address": {"postal_code": "94107", "address_locality": "sf", "address_region": "ca"}}"#,
            false,
        ),
        (r#"{}"#, false),
    ] {
        assert_eq!(
            parse(RecordFormat::Dataset, record).member.is_matchable(),
            matchable,
            "{record}"
        );
    }
}

/// The original connector's `AudienceParserSpec`, ported. Where the spec differs from the
/// original, the spec wins and the case says so.
mod original_audience_parser_spec {
    use super::*;

    fn legacy(json: &str) -> AudienceMember {
        parse(RecordFormat::Legacy, json).member
    }

    fn member(pairs: &[(K, &str)]) -> AudienceMember {
        let mut m = AudienceMember::new();
        for (k, v) in pairs {
            m.set(*k, v).unwrap();
        }
        m
    }

    const D10: &str = "4a44dc15364204a80fe80e9039455cc1608281820fe2b24f1e5233ade6af1dd5";
    const M03: &str = "0b8efa5a3bf104413a725c6ff0459a6be12b1fd33314cbb138745baf39504ae5";
    const Y1980: &str = "051c2e380d07844ffaca43743957f8c0efe2bdf74c6c1e6a9dcccb8d1a3c596b";
    const ALICE: &str = "2bd806c97f0e00af1a1fc3328fa763a9269723c8db8fac4f93af71db186d6e90";
    const A: &str = "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb";
    const BOWERS: &str = "c9561ea9ac17200ef167c850f3268f346f737ad0d3c48ed3996a9ca73689803c";
    const SHA1: &str = "32c281951528fda472cc53ea2c5c81b9d50f184e";

    #[test]
    fn parse_birth_info() {
        assert_eq!(
            legacy(r#"{"data": {"birthdate": "1980-03-10T00:00:00Z"}}"#),
            member(&[(K::DOBD, D10), (K::DOBM, M03), (K::DOBY, Y1980)])
        );
        assert_eq!(
            legacy(r#"{"data": {"birth_year": 1999}}"#),
            member(&[(
                K::DOBY,
                "ce8457d59078a699acb70416f88155a96a906b7b7aad43708402e3a3bcc8a4b4"
            )])
        );
        assert_eq!(legacy(r#"{"data": {"foobar": 1999}}"#), member(&[]));
    }

    #[test]
    fn parse_country() {
        assert_eq!(
            legacy(r#"{"data": {"iso_3166_1_country": "CA"}}"#),
            member(&[(
                K::COUNTRY,
                "6959097001d10501ac7d54c0bdb8db61420f658f2922cc26e46d536119a31126"
            )])
        );
        assert_eq!(
            legacy(r#"{"data": {"foo": "bar"}}"#).value(K::COUNTRY),
            None
        );
    }

    #[test]
    fn parse_gender() {
        assert_eq!(
            legacy(r#"{"data": {"hl7_gender": {"gender": "female"}}}"#),
            member(&[(
                K::GEN,
                "252f10c83610ebca1a059c0bae8255eba2f95be4d1d7bcfa89d7248a82d9f111"
            )])
        );
        assert_eq!(
            legacy(r#"{"data": {"hl7_gender": {"gender": "male"}}}"#),
            member(&[(
                K::GEN,
                "62c66a7a5dd70c3146618063c344e531e6d4b59e379808443ce962b3abd63c5a"
            )])
        );
        assert_eq!(legacy(r#"{"data": {"foo": "bar"}}"#).value(K::GEN), None);
    }

    #[test]
    fn parse_hem_from_unique_id_hashed_email_and_sha256() {
        let ok = member(&[(K::EMAIL, HEX_A)]);
        for attr in ["unique_id", "hashed_email"] {
            assert_eq!(
                legacy(&format!(
                    r#"{{"data": {{"{attr}": {{"type": "sha256_email", "value": "{HEX_A}"}}}}}}"#
                )),
                ok
            );
            assert_eq!(
                legacy(&format!(
                    r#"{{"data": {{"{attr}": {{"type": "sha1_email", "value": "{SHA1}"}}}}}}"#
                ))
                .value(K::EMAIL),
                None
            );
        }
        assert_eq!(
            legacy(&format!(
                r#"{{"data": {{"sha256_hashed_email": {{"value": "{HEX_A}"}}}}}}"#
            )),
            ok
        );
    }

    #[test]
    fn parse_hem_with_multiple_valid_sources() {
        let he = |t: &str, v: &str| format!(r#""hashed_email": {{"type": "{t}", "value": "{v}"}}"#);
        let ui = |t: &str, v: &str| format!(r#""unique_id": {{"type": "{t}", "value": "{v}"}}"#);
        let sha = |v: &str| format!(r#""sha256_hashed_email": {{"value": "{v}"}}"#);
        let rec = |a: String, b: String| format!(r#"{{"data": {{{a}, {b}}}}}"#);
        assert_eq!(
            legacy(&rec(he("sha256_email", HEX_B), ui("sha256_email", HEX_A))),
            member(&[(K::EMAIL, HEX_A)])
        );
        assert_eq!(
            legacy(&rec(he("sha256_email", HEX_B), ui("sha1_email", SHA1))),
            member(&[(K::EMAIL, HEX_B)])
        );
        assert_eq!(
            legacy(&rec(he("sha256_email", HEX_B), sha(HEX_C))),
            member(&[(K::EMAIL, HEX_B)])
        );
        assert_eq!(
            legacy(&rec(he("sha1_email", SHA1), sha(HEX_C))),
            member(&[(K::EMAIL, HEX_C)])
        );
    }

    #[test]
    fn parse_maid_from_each_source() {
        let id = "98c4a93c-0101-4898-90b4-9a15c97150cd";
        for attr in [
            "android_advertising_id",
            "apple_idfa",
            "mobile_id_unique_identifier",
        ] {
            assert_eq!(
                legacy(&format!(r#"{{"data": {{"{attr}": {{"value": "{id}"}}}}}}"#)),
                member(&[(K::MADID, id)])
            );
        }
        assert_eq!(legacy(r#"{"data": {"foo": "bar"}}"#).value(K::MADID), None);
        for (t, v) in [
            (
                r#""type": "adid", "#,
                "966a15b1-6505-4cb7-ba30-3342c5019112",
            ),
            (
                r#""type": "idfa", "#,
                "4c817c83-61e6-45c1-83d6-17492e04ba97",
            ),
            ("", id),
        ] {
            assert_eq!(
                legacy(&format!(
                    r#"{{"data": {{"unique_id": {{{t}"value": "{v}"}}}}}}"#
                )),
                member(&[(K::MADID, v)])
            );
        }
        // The original only asserted that a `ttd_id` gives no EMAIL; the spec also says no
        // MADID, so the whole member is empty.
        assert_eq!(
            legacy(
                r#"{"data": {"unique_id": {"type": "ttd_id", "value": "4c817c83-61e6-45c1-83d6-17492e04ba97"}}}"#
            ),
            member(&[])
        );
    }

    #[test]
    fn parse_maid_with_multiple_valid_sources() {
        let idfa = r#""apple_idfa": {"value": "98c4a93c-0101-4898-90b4-9a15c97150cd"}"#;
        let other = "efd1fd36-1827-41a5-8183-b6230a77613f";
        assert_eq!(
            legacy(&format!(
                r#"{{"data": {{{idfa}, "unique_id": {{"type": "adid", "value": "{other}"}}}}}}"#
            )),
            member(&[(K::MADID, other)])
        );
        assert_eq!(
            legacy(&format!(
                r#"{{"data": {{{idfa}, "unique_id": {{"type": "sha1_email", "value": "{SHA1}"}}}}}}"#
            )),
            member(&[(K::MADID, "98c4a93c-0101-4898-90b4-9a15c97150cd")])
        );
        assert_eq!(
            legacy(&format!(
                r#"{{"data": {{{idfa}, "mobile_id_unique_identifier": {{"value": "{other}"}}}}}}"#
            )),
            member(&[(K::MADID, other)])
        );
    }

    #[test]
    fn parse_name() {
        let full = r#""full_name": "Alice Bowers""#;
        assert_eq!(
            legacy(&format!(
                r#"{{"data": {{"person_name": {{"family_name": "Bowers", {full}, "given_name": "Alice"}}}}}}"#
            )),
            member(&[(K::FN, ALICE), (K::FI, A), (K::LN, BOWERS)])
        );
        assert_eq!(
            legacy(&format!(
                r#"{{"data": {{"person_name": {{{full}, "given_name": "Alice"}}}}}}"#
            )),
            member(&[(K::FN, ALICE), (K::FI, A)])
        );
        assert_eq!(
            legacy(&format!(
                r#"{{"data": {{"person_name": {{"family_name": "Bowers", {full}}}}}}}"#
            )),
            member(&[(K::LN, BOWERS)])
        );
        assert_eq!(
            legacy(&format!(r#"{{"data": {{"person_name": {{{full}}}}}}}"#)),
            member(&[])
        );
    }

    #[test]
    fn parse_mix_of_valid_and_invalid_fields() {
        let json = format!(
            r#"{{"data": {{"birthdate": "1980-03-10T00:00:00Z", "iso_3166_1_country": "US",
            "hashed_email": {{"type": "sha1_email", "value": "{SHA1}"}},
            "person_name": {{"family_name": "Bowers", "full_name": "Alice Bowers", "given_name": "Alice"}},
            "sha256_hashed_email": {{"value": "{HEX_A}"}},
            "unique_id": {{"type": "adid", "value": "966a15b1-6505-4cb7-ba30-3342c5019112"}}}}}}"#
        );
        assert_eq!(
            legacy(&json),
            member(&[
                (K::DOBD, D10),
                (K::DOBM, M03),
                (K::DOBY, Y1980),
                (
                    K::COUNTRY,
                    "79adb2a2fce5c6ba215fe5f27f532d4e7edbac4b6a5e09e1ef3a08084a904621"
                ),
                (K::EMAIL, HEX_A),
                (K::FN, ALICE),
                (K::FI, A),
                (K::LN, BOWERS),
                (K::MADID, "966a15b1-6505-4cb7-ba30-3342c5019112"),
            ])
        );
    }

    #[test]
    fn differences_from_the_original() {
        // The original lowercased names only; the spec keeps letters only, so punctuation,
        // digits and spaces go.
        assert_eq!(
            legacy(r#"{"data": {"person_name": {"given_name": "Mary Ann"}}}"#).value(K::FN),
            Some(h("maryann"))
        );
        // The original matched gender exactly (`male`/`female`); the spec is case-insensitive
        // and takes `m`/`f`.
        assert_eq!(
            legacy(r#"{"data": {"hl7_gender": {"gender": "M"}}}"#).value(K::GEN),
            Some(h("m"))
        );
        // The original sent any birth_year and any pre-hashed email as is; the spec checks
        // the year range and the 64-hex shape.
        assert_eq!(
            legacy(r#"{"data": {"birth_year": 1850}}"#).value(K::DOBY),
            None
        );
        assert_eq!(
            legacy(r#"{"data": {"sha256_hashed_email": {"value": "not-a-hash"}}}"#).value(K::EMAIL),
            None
        );
        // The original sent MADIDs as given; the spec lowercases them.
        assert_eq!(
            legacy(r#"{"data": {"apple_idfa": {"value": "AB-CD"}}}"#).value(K::MADID),
            Some("ab-cd".to_string())
        );
        // The original read `iso_3166_1_country` of any length; the spec wants 2 letters.
        assert_eq!(
            legacy(r#"{"data": {"iso_3166_1_country": "USA"}}"#).value(K::COUNTRY),
            None
        );
    }
}
