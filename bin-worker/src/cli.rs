//! Command-line interface: parses arguments and hands each command to library code.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use facebook_connector_core::domain::RecordFormat;
use facebook_connector_host::{DatabaseArgs, LogArgs};

use crate::records;
use crate::run::RunArgs;

/// Delivers Narrative marketplace audience data to Facebook Custom Audiences.
#[derive(Debug, Parser)]
#[command(name = "facebook-connector-worker", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    log: LogArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the whole delivery flow on the embedded store against in-process fakes
    ///
    /// No configuration and no account: the embedded SQLite store in a temporary directory
    /// (or `--keep DIR`), an in-process fake marketplace and Facebook Graph API on local
    /// sockets, and the worker's real engine, store and clients. Seeds two customers' profiles,
    /// a legacy subscription delivery, a connection's Parquet snapshot, a backfill, and a token
    /// Facebook revokes mid-file (the profile pauses and is re-authorised). Progress on stderr;
    /// a report on stdout. Exit status 0 only if every delivery ended as the scenario expects.
    Demo(crate::demo::DemoArgs),
    /// Run the delivery daemon: follow the feed, deliver files, serve metrics
    ///
    /// Needs TOKEN_ENCRYPTION_KEYS, FACEBOOK_APP_ID, FACEBOOK_APP_SECRET,
    /// NARRATIVE_API_CLIENT_ID and NARRATIVE_API_CLIENT_SECRET (or their flags). SIGTERM or
    /// SIGINT stops claiming, lets in-flight batches finish and checkpoint (at most 30 s),
    /// hands unfinished jobs back to the queue and exits 0.
    Run(Box<RunArgs>),
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
        #[arg(long, env = "BATCH_SIZE", default_value_t = 10_000,
              value_parser = clap::value_parser!(u64).range(1..=10_000))]
        batch_size: u64,
    },
    /// Apply the database migrations (safe to repeat; refuses a newer schema)
    Migrate(DatabaseArgs),
    /// Upload one local file straight into a Custom Audience
    ///
    /// The user token comes from FACEBOOK_ACCESS_TOKEN; FACEBOOK_APP_ID and FACEBOOK_APP_SECRET
    /// (or their flags) are needed too. Uses the delivery engine's batching, upload sessions and
    /// retries. A progress bar on a terminal, plain lines otherwise (stderr); a summary with
    /// Facebook's receipts on stdout. Ctrl-C stops after the batches in flight (exit 130).
    /// `--dry-run` prints the payloads exactly as `payload` does and sends nothing.
    Upload(Box<crate::upload::UploadArgs>),
    /// List deliveries: commands newest first with each file's status, reason and counters
    ///
    /// A table by default; `--json` prints one JSON object per command and line:
    /// {revision, profile_id, settings_id, created_at, files: [{file, snapshot_id (dataset
    /// files), status, reason, attempts, records_read, rejected_lines, unmatchable,
    /// members_sent, facebook_received, facebook_invalid}]}.
    Deliveries(crate::deliveries::DeliveriesArgs),
    /// Put a revision's failed or paused files (or one file) back in the queue
    ///
    /// Each file keeps its checkpoint: batches Facebook acknowledged are not sent again.
    /// Refuses (exit 1) a delivered file, a file still pending or running, and an unknown
    /// revision or file name.
    Retry(crate::retry::RetryArgs),
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

/// The record shapes of normalization.md, as `--format` names them.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Format {
    /// `{"data": {...}}` JSON lines.
    Legacy,
    /// Attributes at the top level (JSON lines or Parquet columns).
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
    let filter = match cli.command {
        Command::Run(_) => facebook_connector_host::logging::DAEMON_FILTER,
        Command::Demo(_) => crate::demo::LOG_FILTER,
        _ => facebook_connector_host::logging::COMMAND_FILTER,
    };
    facebook_connector_host::logging::init_with_default(cli.log.log_format, filter);
    let outcome = match cli.command {
        Command::Run(args) => return crate::run::main(&args),
        Command::Demo(args) => return crate::demo::main(&args),
        Command::Migrate(database) => return facebook_connector_host::migrate::run(&database),
        Command::Upload(args) => return crate::upload::main(&args),
        Command::Deliveries(args) => return crate::deliveries::main(&args),
        Command::Retry(args) => return crate::retry::main(&args),
        Command::Parse(input) => records::parse(input.file.as_deref(), input.format.into()),
        Command::Payload { input, batch_size } => records::payload(
            input.file.as_deref(),
            input.format.into(),
            // range-checked by clap to 1..=10000
            usize::try_from(batch_size).unwrap_or(facebook_connector_core::payload::MAX_BATCH_SIZE),
        ),
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
