//! Command-line interface: parses arguments and hands each command to library code.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use facebook_connector_core::domain::RecordFormat;

use crate::records;

/// Delivers Narrative marketplace audience data to Facebook Custom Audiences.
#[derive(Debug, Parser)]
#[command(name = "facebook-connector-worker", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print each record as the audience member it becomes (one JSON line per record)
    ///
    /// Each line holds the member's keys and final values (hashed where Facebook expects a
    /// hash), `{}` when nothing maps, `null` for a line that is not a JSON object. A summary
    /// (records, rejected lines with their numbers, rejections per field, unmatchable records)
    /// goes to stderr.
    Parse(InputArgs),
    /// Print the upload payloads the records become (one JSON line per batch)
    ///
    /// Each line is exactly the `payload` object that would be sent to Facebook; unmatchable
    /// records are skipped. A summary goes to stderr.
    Payload {
        #[command(flatten)]
        input: InputArgs,
        /// Members per batch (1..=10000).
        #[arg(long, default_value_t = 10_000,
              value_parser = clap::value_parser!(u64).range(1..=10_000))]
        batch_size: u64,
    },
    /// Apply the database migrations (safe to repeat; refuses a newer schema)
    Migrate {
        /// Database URL: `postgres://…` or `sqlite://path?mode=rwc` (the embedded default).
        #[arg(
            long,
            env = "DB_URL",
            default_value = "sqlite://facebook-connector.db?mode=rwc",
            hide_env_values = true
        )]
        database_url: String,
    },
}

#[derive(Debug, clap::Args)]
struct InputArgs {
    /// Record shape: `legacy` ({"data": {...}} lines) or `dataset` (attributes at top level).
    #[arg(long, value_enum)]
    format: Format,
    /// Input file: JSON lines, or Parquet rows when the name ends in `.parquet`. Standard input
    /// when absent.
    file: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Format {
    Legacy,
    Dataset,
}

impl From<Format> for RecordFormat {
    fn from(f: Format) -> Self {
        match f {
            Format::Legacy => RecordFormat::Legacy,
            Format::Dataset => RecordFormat::Dataset,
        }
    }
}

/// Runs the command line and turns the outcome into an exit status.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Parse(input) => records::parse(input.file.as_deref(), input.format.into()),
        Command::Payload { input, batch_size } => records::payload(
            input.file.as_deref(),
            input.format.into(),
            // range-checked by clap to 1..=10000
            usize::try_from(batch_size).unwrap_or(facebook_connector_core::payload::MAX_BATCH_SIZE),
        ),
        Command::Migrate { database_url } => crate::migrate::run(&database_url),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "error: {}",
                facebook_connector_core::error::display_chain(e.as_ref())
            );
            ExitCode::FAILURE
        }
    }
}
