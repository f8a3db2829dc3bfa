//! Storage ports. Every method is one atomic unit of work: a backend runs it in one transaction,
//! so a failure part-way leaves nothing behind.

use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::domain::{
    AdAccount, AdAccountId, Audience, Checkpoint, Claim, Command, CompanyId, DeliveryCounters,
    EncryptedToken, FacebookUser, Job, JobId, JobStatus, Lease, NewCommand, ProfileId, QueueStats,
    Renewal, RetryOutcome, Revision, Settings, SettingsId, StoredProfile, TokenMeta, WorkerId,
};
use crate::error::Result;

/// The connector's profiles (token, ad account, delivery state).
#[cfg_attr(any(test, feature = "testkit"), mockall::automock)]
#[async_trait]
pub trait ProfileStore: Send + Sync {
    /// Inserts a new profile; [`Error::AlreadyExists`](crate::Error::AlreadyExists) if the id
    /// exists.
    async fn insert_profile(&self, profile: &StoredProfile) -> Result<()>;

    /// One profile, archived or not.
    async fn get_profile(&self, id: ProfileId) -> Result<Option<StoredProfile>>;

    /// The company's profiles, oldest first (archived ones included).
    async fn list_profiles(&self, company_id: CompanyId) -> Result<Vec<StoredProfile>>;

    /// Refreshes the ad account details (e.g. when a profile is enabled again).
    async fn update_ad_account(&self, id: ProfileId, ad_account: &AdAccount) -> Result<()>;

    /// Sets or clears the profile-wide audience.
    async fn set_audience(&self, id: ProfileId, audience: Option<Audience>) -> Result<()>;

    /// Marks the profile `needs_reauth` and pauses its queued and retrying jobs, atomically.
    /// Returns how many jobs were paused. Idempotent.
    async fn mark_needs_reauth(
        &self,
        id: ProfileId,
        reason: &str,
        now: OffsetDateTime,
    ) -> Result<u64>;

    /// Stores a fresh token, sets the delivery state back to `ok` and resumes the profile's
    /// paused jobs, atomically. Returns how many jobs were resumed.
    async fn reauthorize(
        &self,
        id: ProfileId,
        token: &EncryptedToken,
        token_meta: &TokenMeta,
        user: &FacebookUser,
        now: OffsetDateTime,
    ) -> Result<u64>;

    /// Marks the profile archived; its token is no longer used and its waiting jobs fail with
    /// "profile archived". Returns whether it existed and was not archived already.
    async fn archive_profile(&self, id: ProfileId, now: OffsetDateTime) -> Result<bool>;
}

/// What asking to create a target's settings found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SettingsClaim {
    /// The target already has an audience.
    Existing(Settings),
    /// The caller may create the audience now and must then call
    /// [`SettingsStore::save_settings`] (or [`SettingsStore::release_settings`] on failure)
    /// before the claim expires.
    Claimed,
    /// Another worker is creating it; try again after `until`.
    HeldByOther {
        /// When the other worker's claim runs out.
        until: OffsetDateTime,
    },
}

/// Settings per delivery target, with creation guarded so two workers never create two
/// audiences for one settings id.
#[cfg_attr(any(test, feature = "testkit"), mockall::automock)]
#[async_trait]
pub trait SettingsStore: Send + Sync {
    /// The target's settings, if its audience was resolved before.
    async fn get_settings(&self, id: SettingsId) -> Result<Option<Settings>>;

    /// Returns existing settings, or grants `owner` the exclusive right to create them for
    /// `ttl`, or says who holds that right. With `replacing`, stored settings whose audience
    /// is that one (it vanished from Facebook) count as absent, so the right to create a
    /// replacement is granted to one worker only.
    async fn claim_settings(
        &self,
        id: SettingsId,
        owner: &WorkerId,
        ttl: Duration,
        replacing: Option<crate::domain::AudienceId>,
        now: OffsetDateTime,
    ) -> Result<SettingsClaim>;

    /// Saves the audience for the target (releasing `owner`'s claim). Overwrites an existing
    /// audience (used when the stored audience vanished from Facebook).
    /// [`Error::Busy`](crate::Error::Busy) while another owner's claim is live.
    async fn save_settings(
        &self,
        id: SettingsId,
        audience_id: &crate::domain::AudienceId,
        owner: &WorkerId,
        now: OffsetDateTime,
    ) -> Result<Settings>;

    /// Gives up `owner`'s claim without saving (audience creation failed).
    async fn release_settings(&self, id: SettingsId, owner: &WorkerId) -> Result<()>;
}

/// Whether recording an event changed anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordOutcome {
    /// The command and its jobs were stored and the cursor advanced.
    Recorded,
    /// The revision was recorded before; nothing changed (replays are no-ops).
    AlreadyRecorded,
}

/// Filter for listing commands.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CommandFilter {
    /// Only this profile's commands.
    pub profile_id: Option<ProfileId>,
    /// Only commands with at least one file in this state (`pending`, `paused`, `delivered`,
    /// `failed`: [`FileStatus::as_str`](crate::domain::FileStatus::as_str)).
    pub file_status: Option<String>,
    /// Only revisions strictly below this one (paging, newest first).
    pub before: Option<Revision>,
    /// At most this many (the backend caps it).
    pub limit: u32,
}

/// Commands, the revision cursor and the atomic "record an event" step.
#[cfg_attr(any(test, feature = "testkit"), mockall::automock)]
#[async_trait]
pub trait CommandStore: Send + Sync {
    /// The last revision whose event was fully recorded, if any.
    async fn cursor(&self) -> Result<Option<Revision>>;

    /// In one transaction: store the command (if any) keyed by `revision`, enqueue its jobs
    /// (runnable at `now`), and advance the cursor to `revision` (never backwards). An event
    /// that yields no command (unknown kind, connection gone, nothing to backfill) passes
    /// `None` and only moves the cursor. Replaying a recorded revision changes nothing.
    /// [`Error::Invariant`](crate::Error::Invariant) when the command's revision is not
    /// `revision`.
    async fn record_event(
        &self,
        revision: Revision,
        command: Option<NewCommand>,
        now: OffsetDateTime,
    ) -> Result<RecordOutcome>;

    /// One command with its files' statuses and counters.
    async fn get_command(&self, revision: Revision) -> Result<Option<Command>>;

    /// Commands, newest first.
    async fn list_commands(&self, filter: &CommandFilter) -> Result<Vec<Command>>;
}

/// Filter for listing jobs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobFilter {
    /// Only this command's jobs.
    pub revision: Option<Revision>,
    /// Only this profile's jobs.
    pub profile_id: Option<ProfileId>,
    /// Only jobs in this state.
    pub status: Option<JobStatus>,
    /// At most this many (the backend caps it).
    pub limit: u32,
}

/// The durable job queue. Many workers may share it; each job is leased by at most one at a
/// time. Every operation taking a [`Lease`] fails with
/// [`Error::LeaseLost`](crate::Error::LeaseLost) and changes nothing when the lease is no
/// longer the current one.
///
/// Claims are fair: among the runnable jobs, one of the profile with the fewest running jobs
/// is taken first (oldest first within a profile), so a profile with a thousand queued files
/// does not starve another profile's single file. Jobs of a profile that needs
/// re-authorisation and of an ad account under a throttle
/// ([`JobQueue::throttle_ad_account`]) are not claimed.
#[cfg_attr(any(test, feature = "testkit"), mockall::automock)]
#[async_trait]
pub trait JobQueue: Send + Sync {
    /// Leases the next runnable job: queued with `run_at <= now`, or running with an expired
    /// lease; of a profile that is not `needs_reauth` and whose ad account is not throttled;
    /// fairly across profiles (see the trait). Counts the attempt. When nothing is runnable,
    /// says when the earliest waiting job falls due.
    async fn claim(
        &self,
        owner: &WorkerId,
        lease_for: Duration,
        now: OffsetDateTime,
    ) -> Result<Claim>;

    /// Extends a lease to `now + extend_by`; returns the new lease and the state of the job's
    /// profile (the holder stops when the profile needs re-authorisation or was archived).
    async fn heartbeat(
        &self,
        lease: &Lease,
        extend_by: Duration,
        now: OffsetDateTime,
    ) -> Result<Renewal>;

    /// Records progress after Facebook acknowledged a batch (also copies the counters to the
    /// command's file entry) and extends the lease to `now + extend_by`, in one round trip;
    /// returns what [`JobQueue::heartbeat`] returns.
    async fn checkpoint(
        &self,
        lease: &Lease,
        checkpoint: &Checkpoint,
        extend_by: Duration,
        now: OffsetDateTime,
    ) -> Result<Renewal>;

    /// Finishes the job and marks its file `delivered` with the final counters.
    async fn complete(
        &self,
        lease: &Lease,
        counters: &DeliveryCounters,
        now: OffsetDateTime,
    ) -> Result<()>;

    /// Fails the job for good and marks its file `failed` with `reason`.
    async fn fail(
        &self,
        lease: &Lease,
        reason: &str,
        counters: &DeliveryCounters,
        now: OffsetDateTime,
    ) -> Result<()>;

    /// Releases the job to run again at `run_at`, keeping its checkpoint; the attempt it was
    /// claimed with stays counted, and if no attempts are left it fails (with its file) with
    /// `reason` instead.
    async fn retry_at(
        &self,
        lease: &Lease,
        run_at: OffsetDateTime,
        reason: &str,
        now: OffsetDateTime,
    ) -> Result<RetryOutcome>;

    /// Releases the job to run again at `run_at` without using up the attempt it was claimed
    /// with (a wait for a rate limit, or a job handed back at shutdown). Keeps its checkpoint.
    async fn defer(
        &self,
        lease: &Lease,
        run_at: OffsetDateTime,
        reason: &str,
        now: OffsetDateTime,
    ) -> Result<()>;

    /// Releases the job as `paused` (its profile's token stopped working). The attempt is not
    /// counted against `max_attempts`.
    async fn pause(&self, lease: &Lease, reason: &str, now: OffsetDateTime) -> Result<()>;

    /// Holds back every job of every profile on `ad_account` until `until` (Facebook throttles
    /// per ad account): claims skip them meanwhile, on every worker. A later `until` extends
    /// the hold, an earlier one never shortens it.
    async fn throttle_ad_account(
        &self,
        ad_account: &AdAccountId,
        until: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<()>;

    /// Operator retry: puts failed (or paused) jobs of a revision, or one job, back in the
    /// queue with fresh attempts and their files back to `pending`. Checkpoints are kept, so
    /// acknowledged batches are not sent twice. Returns how many jobs were requeued.
    async fn requeue(
        &self,
        revision: Revision,
        job_id: Option<JobId>,
        now: OffsetDateTime,
    ) -> Result<u64>;

    /// One job.
    async fn get_job(&self, id: JobId) -> Result<Option<Job>>;

    /// Jobs matching the filter, newest first.
    async fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<Job>>;

    /// Jobs per status.
    async fn stats(&self) -> Result<QueueStats>;
}
