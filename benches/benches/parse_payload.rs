//! Parse + hash + payload throughput, single thread, on realistic seeded records.
//!
//! `cargo bench -p facebook-connector-benches` — criterion reports records/s ("elem/s").
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use facebook_connector_benches::{json_lines, records, write_parquet};
use facebook_connector_core::domain::RecordFormat;
use facebook_connector_core::normalize::ParserConfig;
use facebook_connector_core::payload::{Encoding, MAX_BATCH_SIZE, Payload, PayloadBuilder};
use facebook_connector_core::source::{JsonLinesSource, ParquetSource, RecordSource};
use parquet::basic::{Compression, ZstdLevel};

const RECORDS: usize = 100_000;
const SEED: u64 = 20_261_126;

/// Writes a payload's text as the Graph client sends it (form-encoded, 256 KiB at a time);
/// returns its length.
fn written(payload: &Payload) -> usize {
    let mut text = payload.text(Encoding::Form);
    let mut bytes = 0;
    while let Some(chunk) = text.next_chunk(256 * 1024) {
        bytes += black_box(chunk).len();
    }
    bytes
}

/// Streams every record through the parser and the payload builder, as the worker does;
/// returns payload bytes.
fn run(mut source: impl RecordSource) -> usize {
    let mut builder = PayloadBuilder::new(MAX_BATCH_SIZE).unwrap();
    let mut bytes = 0;
    while let Some(record) = source.next_record() {
        if let Some(member) = &record.unwrap().member
            && let Some(payload) = builder.push(member)
        {
            bytes += written(&payload);
        }
    }
    if let Some(payload) = builder.finish() {
        bytes += written(&payload);
    }
    bytes
}

fn json_lines_bench(c: &mut Criterion) {
    let generated = records(SEED, RECORDS);
    let mut group = c.benchmark_group("parse_hash_payload");
    group.throughput(Throughput::Elements(RECORDS as u64));
    for (name, legacy, format) in [
        ("json_lines_legacy", true, RecordFormat::Legacy),
        ("json_lines_dataset", false, RecordFormat::Dataset),
    ] {
        let input = json_lines(&generated, legacy);
        eprintln!(
            "{name}: {} records, {:.0} bytes per line on average",
            RECORDS,
            input.len() as f64 / RECORDS as f64
        );
        group.bench_function(name, |b| {
            b.iter(|| {
                let source = JsonLinesSource::new(&input[..], format, ParserConfig::default());
                black_box(run(source))
            })
        });
    }
    let dir = tempfile::tempdir().unwrap();
    for (name, compression) in [
        ("parquet_snappy", Compression::SNAPPY),
        ("parquet_zstd", Compression::ZSTD(ZstdLevel::default())),
    ] {
        let path = dir.path().join(format!("{name}.parquet"));
        write_parquet(&generated, &path, 32_768, compression).unwrap();
        group.bench_function(name, |b| {
            b.iter(|| {
                let source =
                    ParquetSource::open(&path, RecordFormat::Dataset, ParserConfig::default())
                        .unwrap();
                black_box(run(source))
            })
        });
    }
    group.finish();
}

/// The payload builder alone, on members parsed beforehand.
fn payload_bench(c: &mut Criterion) {
    let generated = records(SEED, RECORDS);
    let input = json_lines(&generated, true);
    let members: Vec<_> =
        JsonLinesSource::new(&input[..], RecordFormat::Legacy, ParserConfig::default())
            .filter_map(|r| r.unwrap().member)
            .collect();
    let mut group = c.benchmark_group("payload");
    group.throughput(Throughput::Elements(members.len() as u64));
    group.bench_function("build_payloads", |b| {
        b.iter(|| {
            let bytes: usize = PayloadBuilder::new(MAX_BATCH_SIZE)
                .unwrap()
                .batches(&members)
                .map(|p| written(&p))
                .sum();
            black_box(bytes)
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(8));
    targets = json_lines_bench, payload_bench
}
criterion_main!(benches);
