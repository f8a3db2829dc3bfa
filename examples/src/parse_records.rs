//! Embedding the core: read a delivery file, normalize and hash its records, and build the
//! upload batches another connector would send to its own audience sink.
//!
//! ```sh
//! cargo run -p facebook-connector-examples --bin parse-records -- samples/legacy-delivery.jsonl legacy
//! ```

use std::path::PathBuf;

use anyhow::{Context, bail};
use facebook_connector_core::domain::RecordFormat;
use facebook_connector_core::normalize::ParserConfig;
use facebook_connector_core::payload::{MAX_BATCH_SIZE, PayloadBuilder};
use facebook_connector_core::source::{RecordReader, RecordSource};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next().map(PathBuf::from) else {
        bail!("usage: parse-records FILE [legacy|dataset]");
    };
    let format = match args.next().as_deref() {
        None | Some("legacy") => RecordFormat::Legacy,
        Some("dataset") => RecordFormat::Dataset,
        Some(other) => bail!("unknown format {other:?}: expected legacy or dataset"),
    };

    let mut reader = RecordReader::open(&path, format, ParserConfig::default())
        .with_context(|| format!("cannot open {}", path.display()))?;
    let mut builder = PayloadBuilder::new(MAX_BATCH_SIZE)?;
    let mut batches = Vec::new();
    for record in reader.by_ref() {
        if let Some(member) = record?.member
            && let Some(payload) = builder.push(&member)
        {
            batches.push(payload);
        }
    }
    batches.extend(builder.finish());

    let stats = reader.stats();
    println!(
        "{} records, {} sendable, {} unmatchable, {} rejected lines",
        stats.records(),
        stats.members(),
        stats.unmatchable(),
        stats.rejected_lines()
    );
    for (i, batch) in batches.iter().enumerate() {
        let schema: Vec<&str> = batch.schema().iter().map(|k| k.as_str()).collect();
        println!(
            "batch {}: {} members, schema {}",
            i + 1,
            batch.len(),
            schema.join(",")
        );
    }
    Ok(())
}
