//! Runs the real `facebook-connector-worker` binary on files and standard input.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;

use arrow_array::builder::{Int64Builder, StringBuilder, StructBuilder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Fields, Schema};
use assert_cmd::Command;
use serde_json::Value;

const MARY_HASH: &str = "f1904cf1a9d73a55fa5de0ac823c4403ded71afd4c3248d00bdcd0866552bb79";

fn worker() -> Command {
    Command::cargo_bin("facebook-connector-worker").unwrap()
}

fn stdout_lines(output: &std::process::Output) -> Vec<Value> {
    String::from_utf8(output.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn sample() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples/legacy-delivery.jsonl")
}

#[test]
fn parse_prints_one_line_per_record_and_a_summary() {
    let output = worker()
        .args(["parse", "--format", "legacy"])
        .arg(sample())
        .output()
        .unwrap();
    assert!(output.status.success());
    let lines = stdout_lines(&output);
    assert_eq!(lines.len(), 13);
    assert_eq!(lines[7], Value::Null, "line 8 is not JSON");
    assert_eq!(lines[11], Value::Null, "line 12 is an array");
    assert_eq!(
        lines[10],
        serde_json::json!({}),
        "full_name alone maps to nothing"
    );
    assert_eq!(lines[3]["EMAIL"], MARY_HASH);
    assert_eq!(lines[2]["MADID"], "ab12cd34-0000-4000-8000-00000000aaaa");
    // keys come in schema order (checked on the raw text: serde_json's map sorts keys)
    let first_line = String::from_utf8(output.stdout.clone()).unwrap();
    let first_line = first_line.lines().next().unwrap();
    let positions: Vec<usize> = ["\"COUNTRY\"", "\"EMAIL\"", "\"FN\"", "\"FI\"", "\"LN\""]
        .iter()
        .map(|k| first_line.find(k).unwrap())
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{first_line}");
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("records: 11 (9 sendable members, 2 unmatchable)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("rejected lines: 2 (line 8, 12)"),
        "{stderr}"
    );
    assert!(stderr.contains("raw_email: 1"), "{stderr}");
}

#[test]
fn parse_reads_standard_input() {
    let output = worker()
        .args(["parse", "--format", "dataset"])
        .write_stdin("{\"raw_email\": \"  Mary@Example.COM \"}\n\"just a string\"\n")
        .output()
        .unwrap();
    assert!(output.status.success());
    let lines = stdout_lines(&output);
    assert_eq!(
        lines,
        vec![serde_json::json!({ "EMAIL": MARY_HASH }), Value::Null]
    );
}

#[test]
fn payload_batches_sendable_members_in_order() {
    let mut input = String::new();
    for i in 0..5 {
        input.push_str(&format!(
            "{{\"data\": {{\"raw_email\": \"user{i}@example.com\"}}}}\n"
        ));
        // unmatchable records in between are skipped
        input.push_str("{\"data\": {\"hl7_gender\": {\"gender\": \"f\"}}}\n");
    }
    input.push_str("{\"data\": {\"apple_idfa\": {\"value\": \"AAAA-BBBB\"}}}\n");
    let output = worker()
        .args(["payload", "--format", "legacy", "--batch-size", "2"])
        .write_stdin(input)
        .output()
        .unwrap();
    assert!(output.status.success());
    let batches = stdout_lines(&output);
    let sizes: Vec<usize> = batches
        .iter()
        .map(|b| b["data"].as_array().unwrap().len())
        .collect();
    assert_eq!(sizes, [2, 2, 2]);
    assert_eq!(batches[0]["schema"], serde_json::json!(["EMAIL"]));
    assert_eq!(batches[2]["schema"], serde_json::json!(["EMAIL", "MADID"]));
    assert_eq!(batches[2]["data"][1], serde_json::json!(["", "aaaa-bbbb"]));
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(
        text.starts_with("{\"schema\":[\"EMAIL\"],\"data\":[[\""),
        "{text}"
    );
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("batches: 3"), "{stderr}");
    assert!(stderr.contains("5 unmatchable"), "{stderr}");
}

#[test]
fn payload_rejects_batch_sizes_facebook_would_refuse() {
    for size in ["0", "10001"] {
        let output = worker()
            .args(["payload", "--format", "legacy", "--batch-size", size])
            .write_stdin("")
            .output()
            .unwrap();
        assert!(!output.status.success(), "batch size {size} accepted");
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert!(stderr.contains("--batch-size"), "{stderr}");
    }
}

#[test]
fn a_missing_file_is_a_clear_error() {
    let output = worker()
        .args(["parse", "--format", "legacy", "/nonexistent/delivery.jsonl"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(stderr.contains("/nonexistent/delivery.jsonl"), "{stderr}");
    assert!(stderr.to_lowercase().contains("no such file"), "{stderr}");
}

#[test]
fn a_corrupt_parquet_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.parquet");
    std::fs::write(&path, b"PAR1 this is not really parquet").unwrap();
    let output = worker()
        .args(["parse", "--format", "dataset"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("broken.parquet"), "{stderr}");
}

/// The same rows as Parquet (struct columns) and as dataset JSON lines give the same output.
#[test]
fn parquet_input_gives_the_same_members_and_payloads_as_json() {
    /// given name, family name, raw email, birth year
    type Row<'a> = (
        Option<&'a str>,
        Option<&'a str>,
        Option<&'a str>,
        Option<i64>,
    );
    let rows: Vec<Row> = vec![
        (
            Some("John"),
            Some("Smith"),
            Some(" John@Example.com"),
            Some(1975),
        ),
        (Some("Zoë"), None, None, Some(1800)),
        (None, None, Some("mary@example.com"), None),
        (Some("José"), Some("García"), None, None),
        (None, None, None, None),
    ];
    let dir = tempfile::tempdir().unwrap();
    let json_path = dir.path().join("rows.jsonl");
    let parquet_path = dir.path().join("rows.parquet");

    let mut json = String::new();
    for (given, family, email, year) in &rows {
        let mut o = serde_json::Map::new();
        if given.is_some() || family.is_some() {
            let mut n = serde_json::Map::new();
            if let Some(g) = given {
                n.insert("given_name".into(), (*g).into());
            }
            if let Some(f) = family {
                n.insert("family_name".into(), (*f).into());
            }
            o.insert("person_name".into(), n.into());
        }
        if let Some(e) = email {
            o.insert("raw_email".into(), (*e).into());
        }
        if let Some(y) = year {
            o.insert("birth_year".into(), (*y).into());
        }
        json.push_str(&Value::Object(o).to_string());
        json.push('\n');
    }
    std::fs::write(&json_path, json).unwrap();

    let name_fields: Fields = vec![
        Field::new("given_name", DataType::Utf8, true),
        Field::new("family_name", DataType::Utf8, true),
    ]
    .into();
    let schema = Arc::new(Schema::new(vec![
        Field::new("person_name", DataType::Struct(name_fields.clone()), true),
        Field::new("raw_email", DataType::Utf8, true),
        Field::new("birth_year", DataType::Int64, true),
    ]));
    let mut names = StructBuilder::from_fields(name_fields, rows.len());
    let mut emails = StringBuilder::new();
    let mut years = Int64Builder::new();
    for (given, family, email, year) in &rows {
        let present = given.is_some() || family.is_some();
        names
            .field_builder::<StringBuilder>(0)
            .unwrap()
            .append_option(*given);
        names
            .field_builder::<StringBuilder>(1)
            .unwrap()
            .append_option(*family);
        names.append(present);
        emails.append_option(*email);
        years.append_option(*year);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(names.finish()),
        Arc::new(emails.finish()),
        Arc::new(years.finish()),
    ];
    let batch = RecordBatch::try_new(schema.clone(), columns).unwrap();
    let file = std::fs::File::create(&parquet_path).unwrap();
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, schema, None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();

    for command in ["parse", "payload"] {
        let from_json = worker()
            .args([command, "--format", "dataset"])
            .arg(&json_path)
            .output()
            .unwrap();
        let from_parquet = worker()
            .args([command, "--format", "dataset"])
            .arg(&parquet_path)
            .output()
            .unwrap();
        assert!(from_json.status.success() && from_parquet.status.success());
        assert_eq!(
            String::from_utf8(from_json.stdout).unwrap(),
            String::from_utf8(from_parquet.stdout).unwrap(),
            "{command} differs between JSON and Parquet"
        );
    }
    let parsed = worker()
        .args(["parse", "--format", "dataset"])
        .arg(&parquet_path)
        .output()
        .unwrap();
    let lines = stdout_lines(&parsed);
    assert_eq!(lines.len(), rows.len());
    assert_eq!(lines[2]["EMAIL"], MARY_HASH);
    assert!(
        lines[1].get("DOBY").is_none(),
        "1800 is outside 1900..=current year"
    );
    assert_eq!(lines[4], serde_json::json!({}));
}

#[test]
fn migrate_prepares_an_embedded_database_and_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("fc.db").display());
    for _ in 0..2 {
        let output = worker()
            .args(["migrate", "--database-url", &url])
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        let stdout = String::from_utf8(output.stdout).unwrap();
        assert!(
            stdout.starts_with("database schema is at version "),
            "{stdout}"
        );
    }
    // the environment variable of the original connector is honoured too
    let output = worker()
        .arg("migrate")
        .env("DB_URL", &url)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
}

#[test]
fn migrate_reports_an_unreachable_database_without_its_password() {
    let output = worker()
        .args([
            "migrate",
            "--database-url",
            "postgres://someone:hunter2-secret@127.0.0.1:1/none?connect_timeout=2",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(!stderr.contains("hunter2-secret"), "{stderr}");
}
