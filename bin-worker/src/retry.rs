//! `retry`: puts a revision's failed or paused files (or one file of it) back in the queue with
//! fresh attempts. Each job keeps its checkpoint, so a retried file continues its upload session
//! after the batches Facebook acknowledged and sends none of them again. A file that was
//! delivered, or that is still pending (queued, waiting for a retry, or running), is refused:
//! there is nothing to retry.

use std::fmt::Write as _;
use std::process::ExitCode;

use facebook_connector_core::domain::{Command, CommandFile, FileStatus, JobStatus, Revision};
use facebook_connector_core::ports::{Clock, SystemClock};
use facebook_connector_host::DatabaseArgs;
use facebook_connector_store::{Store, StoreOptions};

use crate::deliveries::{block_on, snapshot_id};

/// `retry`'s flags.
#[derive(Debug, clap::Args)]
pub struct RetryArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// The revision (as `deliveries` lists it) whose failed or paused files go back in the queue
    pub revision: u64,
    /// Only this file: its name as the marketplace lists it (`SNAPSHOT_ID/NAME` when two
    /// snapshots of the revision have a file of that name)
    #[arg(long, value_name = "NAME")]
    pub file: Option<String>,
}

/// Why nothing was requeued: said on stderr, exit status 1.
#[derive(Debug)]
struct Refusal(String);

/// Runs `retry`; returns the exit status.
pub fn main(args: &RetryArgs) -> ExitCode {
    block_on(async {
        Ok(match run(args).await? {
            Ok(report) => {
                print!("{report}");
                ExitCode::SUCCESS
            }
            Err(Refusal(why)) => {
                eprintln!("error: {why}");
                ExitCode::FAILURE
            }
        })
    })
}

type Outcome = Result<Result<String, Refusal>, Box<dyn std::error::Error + Send + Sync>>;

async fn run(args: &RetryArgs) -> Outcome {
    let store = Store::connect(&args.database.database_url, &StoreOptions::default()).await?;
    let outcome = retry(&store, Revision(args.revision), args.file.as_deref()).await;
    store.close().await;
    outcome
}

async fn retry(store: &Store, revision: Revision, file: Option<&str>) -> Outcome {
    let commands = store.commands();
    let jobs = store.jobs();
    let Some(command) = commands.get_command(revision).await? else {
        return Ok(Err(Refusal(format!(
            "no delivery with revision {revision} (`deliveries` lists them)"
        ))));
    };
    let chosen: Vec<&CommandFile> = match file {
        Some(name) => match pick(&command, name) {
            Ok(file) => {
                if let Some(refusal) = refuse(store, &command, file).await? {
                    return Ok(Err(refusal));
                }
                vec![file]
            }
            Err(refusal) => return Ok(Err(refusal)),
        },
        None => {
            let retryable: Vec<&CommandFile> =
                command.files.iter().filter(|f| retryable(f)).collect();
            if retryable.is_empty() {
                return Ok(Err(Refusal(format!(
                    "revision {revision} has no failed or paused file to retry ({})",
                    tally(&command)
                ))));
            }
            retryable
        }
    };
    let job_id = file.and(chosen.first().map(|f| f.job_id));
    let requeued = jobs.requeue(revision, job_id, SystemClock.now()).await?;
    if requeued == 0 {
        return Ok(Err(Refusal(format!(
            "nothing was requeued: the file{} of revision {revision} changed state meanwhile \
             (see `deliveries --revision {revision}`)",
            if chosen.len() == 1 { "" } else { "s" }
        ))));
    }
    // what each chosen file is now, and where its upload resumes
    let mut report = String::new();
    let _ = writeln!(
        report,
        "requeued {requeued} file{} of revision {revision}:",
        if requeued == 1 { "" } else { "s" }
    );
    let mut waiting_for_reauth = false;
    for file in &chosen {
        let Some(job) = jobs.get_job(file.job_id).await? else {
            continue;
        };
        let state = match job.status {
            JobStatus::Queued => "queued",
            JobStatus::Paused => {
                waiting_for_reauth = true;
                "paused: waits for the profile's re-authorisation"
            }
            JobStatus::Running => "running",
            JobStatus::Delivered => "delivered",
            JobStatus::Failed => "not requeued (still failed)",
        };
        let resume = match job.checkpoint {
            Some(cp) if cp.counters.members_sent > 0 => format!(
                "resumes after {} members Facebook acknowledged ({} batch{} of upload \
                 session {}); they are not sent again",
                cp.counters.members_sent,
                cp.batches_acknowledged,
                if cp.batches_acknowledged == 1 {
                    ""
                } else {
                    "es"
                },
                cp.session_id
            ),
            _ => "starts from the beginning (no batch was acknowledged)".to_owned(),
        };
        let _ = writeln!(report, "  {}: {state}; {resume}", describe(file));
    }
    if waiting_for_reauth {
        let _ = writeln!(
            report,
            "the profile {} needs re-authorisation (POST /profiles/{}/reauthorize); its files \
             resume as soon as it is re-authorised",
            command.settings_id.profile_id(),
            command.settings_id.profile_id()
        );
    }
    Ok(Ok(report))
}

fn retryable(file: &CommandFile) -> bool {
    matches!(
        file.status,
        FileStatus::Failed { .. } | FileStatus::Paused { .. }
    )
}

/// The file `name` names: its name, or `SNAPSHOT_ID/NAME`.
fn pick<'c>(command: &'c Command, name: &str) -> Result<&'c CommandFile, Refusal> {
    let by_name: Vec<&CommandFile> = command
        .files
        .iter()
        .filter(|f| f.file.file().as_str() == name)
        .collect();
    let found = if by_name.is_empty() {
        command
            .files
            .iter()
            .filter(|f| {
                snapshot_id(&f.file)
                    .is_some_and(|s| format!("{s}/{}", f.file.file().as_str()) == name)
            })
            .collect()
    } else {
        by_name
    };
    match found.as_slice() {
        [one] => Ok(one),
        [] => {
            let names: Vec<String> = command.files.iter().map(describe).collect();
            Err(Refusal(format!(
                "revision {} has no file named {name:?}; its files: {}",
                command.revision,
                if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(", ")
                }
            )))
        }
        several => {
            let names: Vec<String> = several
                .iter()
                .filter_map(|f| {
                    snapshot_id(&f.file).map(|s| format!("{s}/{}", f.file.file().as_str()))
                })
                .collect();
            Err(Refusal(format!(
                "revision {} has {} files named {name:?}: name one as {}",
                command.revision,
                several.len(),
                names.join(" or ")
            )))
        }
    }
}

/// Why one file cannot be retried, if it cannot.
async fn refuse(
    store: &Store,
    command: &Command,
    file: &CommandFile,
) -> Result<Option<Refusal>, facebook_connector_core::Error> {
    let what = format!("file {} of revision {}", describe(file), command.revision);
    Ok(match &file.status {
        FileStatus::Failed { .. } | FileStatus::Paused { .. } => None,
        FileStatus::Delivered => Some(Refusal(format!(
            "{what} was delivered: there is nothing to retry"
        ))),
        FileStatus::Pending => {
            let job = store.jobs().get_job(file.job_id).await?;
            let detail = match job {
                Some(job) if job.status == JobStatus::Running => format!(
                    "it is being delivered right now (attempt {} of {})",
                    job.attempts, job.max_attempts
                ),
                Some(job) if job.attempts > 0 => format!(
                    "it is queued for attempt {} of {}{}",
                    job.attempts + 1,
                    job.max_attempts,
                    job.last_error
                        .map(|e| format!(" after: {e}"))
                        .unwrap_or_default()
                ),
                _ => "it is queued".to_owned(),
            };
            Some(Refusal(format!(
                "{what} is still pending: {detail}; only failed or paused files are retried"
            )))
        }
    })
}

/// A file as `deliveries` names it.
fn describe(file: &CommandFile) -> String {
    match snapshot_id(&file.file) {
        Some(snapshot) => format!("{} (snapshot {snapshot})", file.file.file().as_str()),
        None => file.file.file().as_str().to_owned(),
    }
}

/// `2 delivered, 1 pending`.
fn tally(command: &Command) -> String {
    if command.files.is_empty() {
        return "it has no files".to_owned();
    }
    let mut counts: Vec<(&'static str, usize)> = Vec::new();
    for file in &command.files {
        let status = file.status.as_str();
        match counts.iter_mut().find(|(s, _)| *s == status) {
            Some((_, n)) => *n += 1,
            None => counts.push((status, 1)),
        }
    }
    counts
        .iter()
        .map(|(s, n)| format!("{n} {s}"))
        .collect::<Vec<_>>()
        .join(", ")
}
