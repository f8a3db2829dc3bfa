//! `deliveries`: the recorded commands, newest first, with each file's status, reason, attempts
//! and counters; a table for people, or one JSON object per line (operations.md's shape) for
//! scripts and harnesses.

use std::io::{self, Write};
use std::process::ExitCode;

use facebook_connector_core::domain::{Command, CommandFile, FileRef, ProfileId, Revision};
use facebook_connector_core::ports::CommandFilter;
use facebook_connector_host::{DatabaseArgs, exit};
use facebook_connector_store::{Store, StoreOptions};
use serde::Serialize;

use crate::records::CliResult;

/// The store answers at most this many commands per call; longer listings are paged.
const PAGE: u32 = 1000;

/// A file state to filter on (operations.md's four).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum StatusFilter {
    /// Queued, waiting for a retry, or being delivered.
    Pending,
    /// Every batch acknowledged by Facebook.
    Delivered,
    /// Given up (see its reason); `retry` puts it back in the queue.
    Failed,
    /// Waiting for its profile to be re-authorised.
    Paused,
}

impl StatusFilter {
    fn as_str(self) -> &'static str {
        match self {
            StatusFilter::Pending => "pending",
            StatusFilter::Delivered => "delivered",
            StatusFilter::Failed => "failed",
            StatusFilter::Paused => "paused",
        }
    }
}

/// `deliveries`' flags.
#[derive(Debug, clap::Args)]
pub struct DeliveriesArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Only this profile's commands (the marketplace profile id)
    #[arg(long = "profile", value_name = "ID")]
    pub profile: Option<ProfileId>,
    /// Only commands with at least one file in this state (all their files are shown)
    #[arg(long, value_enum)]
    pub status: Option<StatusFilter>,
    /// Only the command of this revision
    #[arg(long, value_name = "N")]
    pub revision: Option<u64>,
    /// At most this many commands, newest first
    #[arg(long, value_name = "N", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub limit: u32,
    /// One JSON object per line instead of a table
    #[arg(long)]
    pub json: bool,
}

/// Runs `deliveries`; returns the exit status.
pub fn main(args: &DeliveriesArgs) -> ExitCode {
    block_on(run(args))
}

/// Runs an operator command on a single-threaded runtime: its exit status, or exit status 1
/// with the error's chain on stderr.
pub(crate) fn block_on(
    command: impl Future<Output = Result<ExitCode, Box<dyn std::error::Error + Send + Sync>>>,
) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return exit::failure(&e),
    };
    match runtime.block_on(command) {
        Ok(code) => code,
        Err(e) => exit::failure(e.as_ref()),
    }
}

async fn run(args: &DeliveriesArgs) -> Result<ExitCode, Box<dyn std::error::Error + Send + Sync>> {
    let store = Store::connect(&args.database.database_url, &StoreOptions::default()).await?;
    let listed = list(&store, args).await;
    store.close().await;
    let Some(commands) = listed? else {
        eprintln!(
            "error: no delivery with revision {} (`deliveries` lists them)",
            args.revision.unwrap_or_default()
        );
        return Ok(ExitCode::FAILURE);
    };
    let out = io::stdout().lock();
    if args.json {
        write_json(out, &commands)?;
    } else {
        write_table(out, &commands)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The commands the flags ask for; `None` when `--revision` names no command at all.
async fn list(
    store: &Store,
    args: &DeliveriesArgs,
) -> Result<Option<Vec<Command>>, facebook_connector_core::Error> {
    let commands = store.commands();
    let status = args.status.map(StatusFilter::as_str);
    if let Some(revision) = args.revision {
        let Some(command) = commands.get_command(Revision(revision)).await? else {
            return Ok(None);
        };
        let profile_matches = args
            .profile
            .is_none_or(|p| command.settings_id.profile_id() == p);
        let status_matches =
            status.is_none_or(|s| command.files.iter().any(|f| f.status.as_str() == s));
        return Ok(Some(if profile_matches && status_matches {
            vec![command]
        } else {
            Vec::new()
        }));
    }
    let mut found: Vec<Command> = Vec::new();
    loop {
        let wanted = args.limit.saturating_sub(found.len() as u32);
        if wanted == 0 {
            break;
        }
        let filter = CommandFilter {
            profile_id: args.profile,
            file_status: status.map(str::to_owned),
            before: found.last().map(|c| c.revision),
            limit: wanted.min(PAGE),
        };
        let page = commands.list_commands(&filter).await?;
        let short = (page.len() as u32) < filter.limit;
        found.extend(page);
        if short {
            break;
        }
    }
    Ok(Some(found))
}

/// One command as `deliveries --json` prints it (operations.md).
#[derive(Debug, Serialize)]
pub struct DeliveryLine<'a> {
    revision: u64,
    profile_id: ProfileId,
    settings_id: String,
    created_at: String,
    files: Vec<FileLine<'a>>,
}

/// One file of a [`DeliveryLine`].
#[derive(Debug, Serialize)]
pub struct FileLine<'a> {
    file: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    snapshot_id: Option<&'a str>,
    status: &'static str,
    reason: Option<&'a str>,
    attempts: u32,
    records_read: u64,
    rejected_lines: u64,
    unmatchable: u64,
    members_sent: u64,
    facebook_received: u64,
    facebook_invalid: u64,
}

impl<'a> DeliveryLine<'a> {
    /// The line of one command.
    pub fn of(command: &'a Command) -> DeliveryLine<'a> {
        DeliveryLine {
            revision: command.revision.0,
            profile_id: command.settings_id.profile_id(),
            settings_id: command.settings_id.to_string(),
            created_at: rfc3339(command.created_at),
            files: command.files.iter().map(FileLine::of).collect(),
        }
    }
}

impl<'a> FileLine<'a> {
    fn of(file: &'a CommandFile) -> FileLine<'a> {
        let c = &file.counters;
        FileLine {
            file: file.file.file().as_str(),
            snapshot_id: snapshot_id(&file.file),
            status: file.status.as_str(),
            reason: reason(file),
            attempts: file.attempts,
            records_read: c.records_read,
            rejected_lines: c.rejected_lines,
            unmatchable: c.unmatchable,
            members_sent: c.members_sent,
            facebook_received: c.facebook_received,
            facebook_invalid: c.facebook_invalid,
        }
    }
}

/// Why a file failed or is paused, or what its pending job last ran into.
fn reason(file: &CommandFile) -> Option<&str> {
    match file.status.reason() {
        Some(reason) => Some(reason),
        None if file.status.as_str() == "pending" => file.last_error.as_deref(),
        None => None,
    }
}

/// The snapshot a dataset file came with.
pub fn snapshot_id(file: &FileRef) -> Option<&str> {
    match file {
        FileRef::Snapshot { snapshot_id, .. } => Some(snapshot_id.as_str()),
        FileRef::Legacy { .. } => None,
    }
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

fn write_json(mut out: impl Write, commands: &[Command]) -> CliResult {
    for command in commands {
        serde_json::to_writer(&mut out, &DeliveryLine::of(command))?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}

const FILE_COLUMNS: [&str; 10] = [
    "FILE",
    "STATUS",
    "ATTEMPTS",
    "RECORDS",
    "REJECTED",
    "UNMATCHABLE",
    "SENT",
    "FB RECEIVED",
    "FB INVALID",
    "REASON",
];

fn write_table(mut out: impl Write, commands: &[Command]) -> CliResult {
    if commands.is_empty() {
        writeln!(out, "no deliveries match")?;
        return Ok(out.flush()?);
    }
    for (n, command) in commands.iter().enumerate() {
        if n > 0 {
            writeln!(out)?;
        }
        let line = DeliveryLine::of(command);
        writeln!(
            out,
            "revision {}  {}  {} file{}  recorded {}",
            line.revision,
            event_kind(command),
            line.files.len(),
            if line.files.len() == 1 { "" } else { "s" },
            line.created_at,
        )?;
        writeln!(
            out,
            "  profile {}  settings {}",
            line.profile_id, line.settings_id
        )?;
        if line.files.is_empty() {
            writeln!(out, "  (no files)")?;
            continue;
        }
        let mut rows: Vec<[String; 10]> = vec![FILE_COLUMNS.map(str::to_owned)];
        rows.extend(line.files.iter().map(|f| {
            let file = match f.snapshot_id {
                Some(snapshot) => format!("{} (snapshot {snapshot})", f.file),
                None => f.file.to_owned(),
            };
            [
                file,
                f.status.to_owned(),
                f.attempts.to_string(),
                f.records_read.to_string(),
                f.rejected_lines.to_string(),
                f.unmatchable.to_string(),
                f.members_sent.to_string(),
                f.facebook_received.to_string(),
                f.facebook_invalid.to_string(),
                f.reason.unwrap_or("-").to_owned(),
            ]
        }));
        let mut widths = [0usize; 10];
        for row in &rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        for row in &rows {
            let mut text = String::from("  ");
            for (i, cell) in row.iter().enumerate() {
                let numeric = (2..=8).contains(&i);
                if i + 1 == row.len() {
                    text.push_str(cell);
                } else if numeric {
                    text.push_str(&format!("{cell:>w$}  ", w = widths[i]));
                } else {
                    text.push_str(&format!("{cell:<w$}  ", w = widths[i]));
                }
            }
            writeln!(out, "{}", text.trim_end())?;
        }
    }
    Ok(out.flush()?)
}

/// What recorded the command, in the marketplace's words.
fn event_kind(command: &Command) -> &'static str {
    use facebook_connector_core::domain::DeliveryEvent;
    match command.event {
        DeliveryEvent::SubscriptionDelivery { .. } => "subscription delivery",
        DeliveryEvent::SnapshotAppended { .. } => "snapshot appended",
        DeliveryEvent::ConnectionCreated { .. } => "connection created (backfill)",
        DeliveryEvent::Unknown { .. } => "unknown event",
    }
}
