//! Commands (one per recorded event), the files they deliver, and the jobs that deliver them.

use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::event::DeliveryEvent;
use super::ids::{DatasetId, FileName, JobId, ProfileId, Revision, SettingsId, SnapshotId};

/// Where a delivery file comes from, enough to list and download it again.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FileRef {
    /// A legacy delivery file (JSON lines, attributes under `data`).
    Legacy {
        /// The delivery command's revision in the legacy feed.
        revision: Revision,
        /// The file's name.
        file: FileName,
    },
    /// A dataset snapshot file (Parquet, flat columns).
    Snapshot {
        /// The dataset.
        dataset_id: DatasetId,
        /// The snapshot that added the file.
        snapshot_id: SnapshotId,
        /// The file's name or path.
        file: FileName,
    },
}

impl FileRef {
    /// The file's name.
    pub fn file(&self) -> &FileName {
        match self {
            FileRef::Legacy { file, .. } | FileRef::Snapshot { file, .. } => file,
        }
    }

    /// The record shape of the file.
    pub fn format(&self) -> RecordFormat {
        match self {
            FileRef::Legacy { .. } => RecordFormat::Legacy,
            FileRef::Snapshot { .. } => RecordFormat::Dataset,
        }
    }
}

/// The two record shapes of normalization.md.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordFormat {
    /// `{"data": {...}}` JSON lines.
    Legacy,
    /// Attributes as top-level fields or Parquet columns.
    Dataset,
}

impl fmt::Display for RecordFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RecordFormat::Legacy => "legacy",
            RecordFormat::Dataset => "dataset",
        })
    }
}

/// Counters of one file's delivery, kept in its status and in job checkpoints.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryCounters {
    /// Records (lines or rows) read from the file.
    pub records_read: u64,
    /// Lines that were not a JSON object.
    pub rejected_lines: u64,
    /// Records without EMAIL, PHONE, MADID or FN+LN; not sent.
    pub unmatchable: u64,
    /// Members sent to Facebook.
    pub members_sent: u64,
    /// Sum of Facebook's `num_received`.
    pub facebook_received: u64,
    /// Sum of Facebook's `num_invalid_entries`.
    pub facebook_invalid: u64,
}

/// Per-file status inside a command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum FileStatus {
    /// Queued or in progress.
    Pending,
    /// Every batch acknowledged by Facebook.
    Delivered,
    /// Given up; `reason` says why in words an operator can act on.
    Failed {
        /// Why.
        reason: String,
    },
}

impl FileStatus {
    /// `pending`, `delivered` or `failed`.
    pub fn as_str(&self) -> &'static str {
        match self {
            FileStatus::Pending => "pending",
            FileStatus::Delivered => "delivered",
            FileStatus::Failed { .. } => "failed",
        }
    }
}

/// One file of a command with its status and counters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandFile {
    /// The file.
    pub file: FileRef,
    /// Where it is.
    pub status: FileStatus,
    /// What happened so far.
    pub counters: DeliveryCounters,
    /// The job delivering it.
    pub job_id: JobId,
}

/// The record of one event: what to deliver, where, and how far each file got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command {
    /// The event's revision (the command's key).
    pub revision: Revision,
    /// The event as received.
    pub event: DeliveryEvent,
    /// The delivery target.
    pub settings_id: SettingsId,
    /// One entry per file.
    pub files: Vec<CommandFile>,
    /// When it was recorded.
    pub created_at: OffsetDateTime,
    /// Last change of any file.
    pub updated_at: OffsetDateTime,
}

/// A command to record together with its jobs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewCommand {
    /// The event's revision.
    pub revision: Revision,
    /// The event as received.
    pub event: DeliveryEvent,
    /// The delivery target.
    pub settings_id: SettingsId,
    /// One job per file (may be empty, e.g. a snapshot without files).
    pub jobs: Vec<NewJob>,
}

/// A job to enqueue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewJob {
    /// Fresh id ([`JobId::new_v7`]).
    pub id: JobId,
    /// The file to deliver.
    pub file: FileRef,
    /// Attempts allowed before the job fails for good.
    pub max_attempts: u32,
}

/// Lifecycle of a job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Waiting for a worker (possibly until `run_at`).
    Queued,
    /// Leased by a worker.
    Running,
    /// Waiting for its profile to be re-authorised.
    Paused,
    /// Done.
    Delivered,
    /// Given up.
    Failed,
}

impl JobStatus {
    /// The snake_case name.
    pub fn as_str(&self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Paused => "paused",
            JobStatus::Delivered => "delivered",
            JobStatus::Failed => "failed",
        }
    }
}

/// How far a job got: everything up to `batches_acknowledged` was accepted by Facebook, so a
/// resumed job skips the first `members_sent` sendable members and continues the same session.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The Facebook upload session of this file (stable across retries).
    pub session_id: u64,
    /// Batches Facebook acknowledged (the next batch has `batch_seq = batches_acknowledged + 1`).
    pub batches_acknowledged: u32,
    /// Counters up to and including the last acknowledged batch.
    pub counters: DeliveryCounters,
}

/// A job as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    /// Job id.
    pub id: JobId,
    /// The command (event revision) it belongs to.
    pub revision: Revision,
    /// Profile delivered to (for pause/resume).
    pub profile_id: ProfileId,
    /// Delivery target.
    pub settings_id: SettingsId,
    /// The file.
    pub file: FileRef,
    /// Lifecycle state.
    pub status: JobStatus,
    /// Attempts started so far.
    pub attempts: u32,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// Not claimable before this time.
    pub run_at: OffsetDateTime,
    /// Progress.
    pub checkpoint: Option<Checkpoint>,
    /// Last failure or pause reason.
    pub last_error: Option<String>,
    /// Creation time.
    pub created_at: OffsetDateTime,
    /// Last change.
    pub updated_at: OffsetDateTime,
}

/// Identifies one worker process (host, pid and a random suffix), so leases name their owner.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WorkerId(pub String);

impl fmt::Display for WorkerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A worker's time-limited right to process one job. Every job operation checks it: if the lease
/// expired and another worker claimed the job, the operation fails with
/// [`Error::Conflict`](crate::Error::Conflict) and changes nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// The job.
    pub job_id: JobId,
    /// Who holds it.
    pub owner: WorkerId,
    /// Incremented at every claim, so a stale holder is told apart from the current one.
    pub generation: u64,
    /// When it runs out unless extended.
    pub expires_at: OffsetDateTime,
}

/// A claimed job with its lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimedJob {
    /// The job (status `running`, `attempts` already counting this attempt).
    pub job: Job,
    /// The lease to present on every later call.
    pub lease: Lease,
}

/// What a retry request did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryOutcome {
    /// The job will run again at the given time.
    Scheduled,
    /// No attempts left: the job (and its file) failed.
    GaveUp,
}

/// Counts of jobs per status, for metrics and the operator.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueStats {
    /// Waiting.
    pub queued: u64,
    /// Leased.
    pub running: u64,
    /// Waiting for re-authorisation.
    pub paused: u64,
    /// Done.
    pub delivered: u64,
    /// Given up.
    pub failed: u64,
}
