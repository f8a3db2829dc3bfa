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

/// Per-file status inside a command (operations.md's `deliveries` states).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum FileStatus {
    /// Queued or in progress.
    Pending,
    /// Waiting for its profile to be re-authorised: the job is paused, or its profile needs
    /// re-authorisation and the job will pause as soon as its worker notices.
    Paused {
        /// Why the profile's token stopped working.
        reason: String,
    },
    /// Every batch acknowledged by Facebook.
    Delivered,
    /// Given up; `reason` says why in words an operator can act on.
    Failed {
        /// Why.
        reason: String,
    },
}

impl FileStatus {
    /// `pending`, `paused`, `delivered` or `failed`.
    pub fn as_str(&self) -> &'static str {
        match self {
            FileStatus::Pending => "pending",
            FileStatus::Paused { .. } => "paused",
            FileStatus::Delivered => "delivered",
            FileStatus::Failed { .. } => "failed",
        }
    }

    /// Why the file failed or is paused.
    pub fn reason(&self) -> Option<&str> {
        match self {
            FileStatus::Paused { reason } | FileStatus::Failed { reason } => Some(reason),
            FileStatus::Pending | FileStatus::Delivered => None,
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
    /// Attempts its job started since it was queued (an operator's retry starts again at 0;
    /// rate-limit waits and pauses do not count).
    pub attempts: u32,
    /// The job's last failure, retry or pause reason; `None` once delivered or requeued (a
    /// pending file's shows why it waits, e.g. the error its next attempt follows).
    pub last_error: Option<String>,
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

/// Rows Facebook counted: received, and of those unusable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Received {
    /// Rows Facebook received (`num_received`).
    pub received: u64,
    /// Rows Facebook could not use (`num_invalid_entries`).
    pub invalid: u64,
}

impl Received {
    /// What `later` (a running total) adds to `self` (an earlier one); never negative.
    pub fn added_by(&self, later: Received) -> Received {
        Received {
            received: later.received.saturating_sub(self.received),
            invalid: later.invalid.saturating_sub(self.invalid),
        }
    }

    /// The larger of two running totals of one session, field by field (answers to batches
    /// sent in parallel may arrive in any order).
    pub fn max(self, other: Received) -> Received {
        Received {
            received: self.received.max(other.received),
            invalid: self.invalid.max(other.invalid),
        }
    }

    /// The sum of two counts.
    pub fn plus(self, other: Received) -> Received {
        Received {
            received: self.received.saturating_add(other.received),
            invalid: self.invalid.saturating_add(other.invalid),
        }
    }
}

/// How far a job got: everything up to `batches_acknowledged` of the current upload session
/// was accepted by Facebook, so a resumed job skips the first `counters.members_sent`
/// sendable members and continues the same session at `batch_seq = batches_acknowledged + 1`.
///
/// Facebook's receipts are running totals per session; `session_totals` is the largest one
/// of the current session among acknowledged batches and `earlier_sessions` what the file's
/// earlier sessions (if a session had to be replaced) ended with, so
/// `counters.facebook_received = earlier_sessions.received + session_totals.received`.
///
/// Stored as JSON in this serde shape (see the store's golden tests): fields added later
/// must have a default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The file's current Facebook upload session ([`JobId::upload_session_id`] of
    /// `session_index`).
    pub session_id: u64,
    /// Which session of the file this is (0 for the first).
    #[serde(default)]
    pub session_index: u32,
    /// When batch 1 of the current session was sent (Facebook discards batches that arrive
    /// more than 90 minutes after a session's first one).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub session_started_at: Option<OffsetDateTime>,
    /// Batches of the current session Facebook acknowledged (the next batch has
    /// `batch_seq = batches_acknowledged + 1`).
    pub batches_acknowledged: u32,
    /// Counters up to and including the last acknowledged batch.
    pub counters: DeliveryCounters,
    /// Facebook's largest running total of the current session among acknowledged batches.
    #[serde(default)]
    pub session_totals: Received,
    /// What the file's earlier sessions ended with.
    #[serde(default)]
    pub earlier_sessions: Received,
}

impl Checkpoint {
    /// A fresh checkpoint: nothing sent, the job's first session.
    pub fn start(job: JobId) -> Checkpoint {
        Checkpoint {
            session_id: job.upload_session_id(0),
            ..Checkpoint::default()
        }
    }

    /// Records Facebook's running total of the current session as reported for an
    /// acknowledged batch and returns what it adds to the checkpoint's figures (this batch's
    /// share, when batches are answered in order).
    pub fn absorb_totals(&mut self, reported: Received) -> Received {
        let added = self.session_totals.added_by(reported);
        self.session_totals = self.session_totals.max(reported);
        let file = self.earlier_sessions.plus(self.session_totals);
        self.counters.facebook_received = file.received;
        self.counters.facebook_invalid = file.invalid;
        added
    }

    /// Ends the current session (too old to continue) and starts the job's next one; the
    /// counters and members already sent stay.
    pub fn next_session(&mut self, job: JobId) {
        self.earlier_sessions = self.earlier_sessions.plus(self.session_totals);
        self.session_totals = Received::default();
        self.session_index = self.session_index.saturating_add(1);
        self.session_id = job.upload_session_id(self.session_index);
        self.session_started_at = None;
        self.batches_acknowledged = 0;
    }
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
/// [`Error::LeaseLost`](crate::Error::LeaseLost) and changes nothing.
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

/// What asking the queue for work found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// A job, now leased to the caller.
    Job(Box<ClaimedJob>),
    /// Nothing runnable now.
    Idle {
        /// When the earliest waiting job (or the end of an ad account's throttle) falls due,
        /// if any: the caller may sleep until then (or until new work is recorded).
        next_due: Option<OffsetDateTime>,
    },
}

/// Whether the profile of a leased job can still be delivered to, as seen by a heartbeat or
/// checkpoint: the holder stops when it is not [`ProfileState::Active`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProfileState {
    /// Deliveries run.
    Active,
    /// The token stopped working: pause the job.
    NeedsReauth,
    /// The profile was archived: fail the job with "profile archived".
    Archived,
    /// The connector holds no such profile.
    Unknown,
}

/// A renewed lease and what the holder must know about its job's profile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Renewal {
    /// The extended lease, to present from now on.
    pub lease: Lease,
    /// The profile's state at the time of the renewal.
    pub profile: ProfileState,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_sessions_come_from_the_job_id() {
        let job: JobId = "0193a5f2-7c1e-7d3a-9b8c-0123456789ab".parse().unwrap();
        let first = job.upload_session_id(0);
        assert_eq!(first, job.upload_session_id(0), "stable across calls");
        assert!(first > 0 && first <= i64::MAX as u64);
        assert_ne!(
            first,
            job.upload_session_id(1),
            "a new session gets a new id"
        );
        let other: JobId = "0193a5f2-7c1e-7d3a-9b8c-0123456789ac".parse().unwrap();
        assert_ne!(first, other.upload_session_id(0));
        assert_eq!(Checkpoint::start(job).session_id, first);
    }

    #[test]
    fn receipts_come_from_running_totals_not_from_tallies() {
        // issue 11's case: batch 1 has 10 rows, all received; batch 2 has 10,000 rows of which
        // 9,000 were received. Facebook answers running totals: 10, then 9,010.
        let job = JobId::new_v7();
        let mut cp = Checkpoint::start(job);
        let first = cp.absorb_totals(Received {
            received: 10,
            invalid: 0,
        });
        assert_eq!(first.received, 10);
        let second = cp.absorb_totals(Received {
            received: 9_010,
            invalid: 1_000,
        });
        assert_eq!(second.received, 9_000, "this batch's share");
        assert_eq!(second.invalid, 1_000);
        assert_eq!(cp.counters.facebook_received, 9_010);
        // an answer that arrives late (a parallel batch) never lowers the totals
        let late = cp.absorb_totals(Received {
            received: 5_000,
            invalid: 0,
        });
        assert_eq!(late, Received::default());
        assert_eq!(cp.counters.facebook_received, 9_010);
        // a replaced session keeps what the earlier one received
        cp.next_session(job);
        assert_eq!(cp.session_index, 1);
        assert_eq!(cp.session_id, job.upload_session_id(1));
        assert_eq!(cp.batches_acknowledged, 0);
        cp.absorb_totals(Received {
            received: 100,
            invalid: 1,
        });
        assert_eq!(cp.counters.facebook_received, 9_110);
        assert_eq!(cp.counters.facebook_invalid, 1_001);
    }

    #[test]
    fn old_checkpoints_still_decode() {
        let stored = r#"{"session_id":7,"batches_acknowledged":2,"counters":{"records_read":5,"rejected_lines":0,"unmatchable":0,"members_sent":5,"facebook_received":5,"facebook_invalid":0}}"#;
        let cp: Checkpoint = serde_json::from_str(stored).unwrap();
        assert_eq!(cp.session_id, 7);
        assert_eq!(cp.session_index, 0);
        assert_eq!(cp.session_started_at, None);
        assert_eq!(cp.counters.members_sent, 5);
    }
}
