//! `parse` and `payload`: the parser and payload builder on files, for people and tests.

use std::collections::BTreeMap;
use std::error::Error as StdError;
use std::io::{self, BufRead, Write};
use std::path::Path;
use std::time::Duration;

use facebook_connector_core::domain::RecordFormat;
use facebook_connector_core::normalize::ParserConfig;
use facebook_connector_core::payload::PayloadBuilder;
use facebook_connector_core::source::{ParseStats, RecordReader, RecordSource};
use indicatif::{ProgressBar, ProgressStyle};

pub type CliResult = Result<(), Box<dyn StdError + Send + Sync>>;

/// Prints one JSON line per record.
pub fn parse(file: Option<&Path>, format: RecordFormat) -> CliResult {
    let mut reader = open(file, format)?;
    let progress = progress_bar(file);
    let mut out = io::BufWriter::with_capacity(256 * 1024, io::stdout().lock());
    let mut line = String::with_capacity(1024);
    while let Some(record) = reader.next_record() {
        let record = record?;
        line.clear();
        match &record.member {
            Some(member) => member.write_json(&mut line),
            None => line.push_str("null"),
        }
        line.push('\n');
        if !write_or_stop(&mut out, line.as_bytes())? {
            return Ok(());
        }
        tick(&progress, record.number);
    }
    if !flush_or_stop(&mut out)? {
        return Ok(());
    }
    progress.finish_and_clear();
    eprint!("{}", summary(reader.stats(), None));
    Ok(())
}

/// Prints one JSON line per upload batch.
pub fn payload(file: Option<&Path>, format: RecordFormat, batch_size: usize) -> CliResult {
    let mut reader = open(file, format)?;
    let mut builder = PayloadBuilder::new(batch_size)?;
    let progress = progress_bar(file);
    let mut out = io::BufWriter::with_capacity(256 * 1024, io::stdout().lock());
    let mut batches = 0u64;
    while let Some(record) = reader.next_record() {
        let record = record?;
        tick(&progress, record.number);
        let Some(member) = &record.member else {
            continue;
        };
        if let Some(payload) = builder.push(member) {
            batches += 1;
            if !write_batch(&mut out, &payload.to_json())? {
                return Ok(());
            }
        }
    }
    if let Some(payload) = builder.finish() {
        batches += 1;
        if !write_batch(&mut out, &payload.to_json())? {
            return Ok(());
        }
    }
    if !flush_or_stop(&mut out)? {
        return Ok(());
    }
    progress.finish_and_clear();
    eprint!("{}", summary(reader.stats(), Some(batches)));
    Ok(())
}

fn open(
    file: Option<&Path>,
    format: RecordFormat,
) -> Result<RecordReader, Box<dyn StdError + Send + Sync>> {
    let config = ParserConfig::default();
    Ok(match file {
        Some(path) if path != Path::new("-") => RecordReader::open(path, format, config)?,
        _ => {
            let stdin: Box<dyn BufRead + Send> =
                Box::new(io::BufReader::with_capacity(256 * 1024, io::stdin()));
            RecordReader::json_lines(stdin, format, config)
        }
    })
}

fn write_batch(out: &mut impl Write, json: &str) -> Result<bool, io::Error> {
    Ok(write_or_stop(out, json.as_bytes())? && write_or_stop(out, b"\n")?)
}

/// Writes; `Ok(false)` when the reader of stdout went away (e.g. `| head`), which is not an error.
fn write_or_stop(out: &mut impl Write, bytes: &[u8]) -> Result<bool, io::Error> {
    unless_broken_pipe(out.write_all(bytes))
}

fn flush_or_stop(out: &mut impl Write) -> Result<bool, io::Error> {
    unless_broken_pipe(out.flush())
}

/// `Ok(false)` for a broken pipe, the outcome otherwise.
fn unless_broken_pipe(outcome: io::Result<()>) -> Result<bool, io::Error> {
    match outcome {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(e),
    }
}

/// A record counter on stderr, shown only when stderr is a terminal and the input a file.
fn progress_bar(file: Option<&Path>) -> ProgressBar {
    if file.is_none() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {human_pos} records read ({per_sec}, {elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

fn tick(bar: &ProgressBar, number: u64) {
    if number.is_multiple_of(65_536) {
        bar.set_position(number);
    }
}

/// The human-readable summary printed on stderr.
pub fn summary(stats: &ParseStats, batches: Option<u64>) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let lines = stats.records() + stats.rejected_lines();
    let _ = writeln!(
        s,
        "records: {} ({} sendable members, {} unmatchable)",
        stats.records(),
        stats.members(),
        stats.unmatchable()
    );
    rejections(
        &mut s,
        stats.rejected_lines(),
        stats.rejected_line_numbers(),
        &stats.field_rejection_counts(),
    );
    if let Some(batches) = batches {
        let _ = writeln!(s, "batches: {batches}");
    }
    let _ = writeln!(s, "lines or rows read: {lines}");
    s
}

/// The `rejected lines: …` and `field rejections: …` lines of a summary (`parse`, `payload`,
/// `upload`): the numbers of the first rejected lines, and the rejected values per field.
pub fn rejections(
    s: &mut String,
    rejected_lines: u64,
    line_numbers: &[u64],
    fields: &BTreeMap<&'static str, u64>,
) {
    use std::fmt::Write as _;
    let _ = write!(s, "rejected lines: {rejected_lines}");
    if rejected_lines > 0 {
        let numbers: Vec<String> = line_numbers.iter().map(u64::to_string).collect();
        let more = rejected_lines.saturating_sub(line_numbers.len() as u64);
        let _ = write!(s, " (line {}", numbers.join(", "));
        if more > 0 {
            let _ = write!(s, " and {more} more");
        }
        s.push(')');
    }
    s.push('\n');
    if fields.is_empty() {
        s.push_str("field rejections: none\n");
    } else {
        let _ = writeln!(s, "field rejections: {}", fields.values().sum::<u64>());
        for (field, count) in fields {
            let _ = writeln!(s, "  {field}: {count}");
        }
    }
}
