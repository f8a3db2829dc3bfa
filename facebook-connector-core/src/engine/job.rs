//! One claimed job, from its lease to its end: the profile and its token, the target's
//! audience, the download, the upload pipeline with checkpoints, and what the queue is told
//! at the end — decided by one `match` on [`Error::disposition`].
//!
//! A heartbeat task renews the lease every third of it; a renewal (or a checkpoint, which
//! renews too) that finds the lease lost, the profile archived or needing re-authorisation
//! stops the upload at once.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use secrecy::SecretString;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use crate::domain::{
    Checkpoint, ClaimedJob, DeliveryCounters, DeliveryState, FileRef, Job, JobId, Lease, ProfileId,
    ProfileState, Renewal, Revision, SettingsId, StoredProfile,
};
use crate::error::{Disposition, Error, Result, display_chain};
use crate::normalize::ParserConfig;
use crate::ports::{DeliveryReport, UploadTarget};

use super::Inner;
use super::backoff;
use super::pipeline::{BatchAck, Control, FileUpload, Outcome, Progress, ReadCounts, ReadSummary};

/// How soon a job whose target another worker is busy with looks again.
const BUSY_RECHECK: Duration = Duration::from_secs(2);

/// How a job's run ended, as the queue was told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobEnd {
    /// Every batch acknowledged; the file is `delivered`.
    Delivered,
    /// The file failed for good.
    Failed {
        /// Why, in words a customer or operator can act on.
        reason: String,
    },
    /// Handed back after a failure; it runs again at `at` (the attempt counted).
    RetryScheduled {
        /// When.
        at: OffsetDateTime,
        /// Why.
        reason: String,
    },
    /// Handed back without using up an attempt (rate limit, shutdown, another worker busy).
    Deferred {
        /// When it may run again.
        until: OffsetDateTime,
        /// Why.
        reason: String,
    },
    /// Waiting for the profile to be re-authorised.
    Paused {
        /// Why.
        reason: String,
    },
    /// The lease was lost: another worker has the job; nothing was changed.
    Abandoned,
}

/// What one run of a job did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobReport {
    /// The job.
    pub job_id: JobId,
    /// Its command.
    pub revision: Revision,
    /// Its profile.
    pub profile_id: ProfileId,
    /// Its target.
    pub settings_id: SettingsId,
    /// Its file.
    pub file: FileRef,
    /// How it ended.
    pub end: JobEnd,
    /// The file's counters as stored.
    pub counters: DeliveryCounters,
}

/// Why a job stopped before its end.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Halt {
    Shutdown,
    NeedsReauth(String),
    Archived,
    UnknownProfile,
    LeaseLost,
}

impl Halt {
    /// Which reason wins when several arrive.
    fn rank(&self) -> u8 {
        match self {
            Halt::Shutdown => 0,
            Halt::NeedsReauth(_) => 1,
            Halt::Archived | Halt::UnknownProfile => 2,
            Halt::LeaseLost => 3,
        }
    }
}

/// What the job's tasks share: its lease and why it must stop.
struct Shared {
    lease: Mutex<Lease>,
    halt: Mutex<Option<Halt>>,
    control: Control,
}

impl Shared {
    fn lease(&self) -> Lease {
        match self.lease.lock() {
            Ok(l) => l.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn halt(&self) -> Option<Halt> {
        match self.halt.lock() {
            Ok(h) => h.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Records why the job must stop and stops it (a graceful stop for a shutdown, at once
    /// otherwise).
    fn stop(&self, why: Halt) {
        let graceful = why == Halt::Shutdown;
        {
            let mut halt = match self.halt.lock() {
                Ok(h) => h,
                Err(poisoned) => poisoned.into_inner(),
            };
            if halt.as_ref().is_none_or(|h| h.rank() < why.rank()) {
                *halt = Some(why);
            }
        }
        self.control.stop.cancel();
        if !graceful {
            self.control.abort.cancel();
        }
    }

    /// Takes in a renewal: the extended lease, and a stop when the profile cannot be
    /// delivered to any more.
    fn renewed(&self, renewal: Renewal) {
        {
            let mut lease = match self.lease.lock() {
                Ok(l) => l,
                Err(poisoned) => poisoned.into_inner(),
            };
            *lease = renewal.lease;
        }
        match renewal.profile {
            ProfileState::Active => {}
            ProfileState::NeedsReauth => self.stop(Halt::NeedsReauth(
                "the profile's facebook token needs re-authorisation".into(),
            )),
            ProfileState::Archived => self.stop(Halt::Archived),
            ProfileState::Unknown => self.stop(Halt::UnknownProfile),
        }
    }

    /// Takes in a failed renewal.
    fn renewal_failed(&self, error: &Error) {
        if matches!(error.disposition(), Disposition::AbandonJob) {
            self.stop(Halt::LeaseLost);
        }
    }
}

/// Runs a claimed job to its end. `drain` asks for a graceful stop (shutdown).
pub(crate) async fn run(
    engine: &Inner,
    claimed: ClaimedJob,
    drain: CancellationToken,
) -> JobReport {
    let ClaimedJob { job, lease } = claimed;
    let shared = Arc::new(Shared {
        lease: Mutex::new(lease),
        halt: Mutex::new(None),
        control: Control::default(),
    });
    tracing::info!(
        job_id = %job.id,
        revision = %job.revision,
        profile_id = %job.profile_id,
        settings_id = %job.settings_id,
        file = %job.file.file(),
        attempt = job.attempts,
        "job started"
    );
    engine.observer.job_started(&job);
    // both helpers end with the job, also when the job's task is dropped (a host aborting it)
    let heartbeat = AbortOnDrop(tokio::spawn(heartbeat(
        engine.ports.jobs.clone(),
        engine.ports.clock.clone(),
        engine.config.lease,
        shared.clone(),
    )));
    let on_drain = {
        let shared = shared.clone();
        let drain = drain.clone();
        AbortOnDrop(tokio::spawn(async move {
            drain.cancelled().await;
            shared.stop(Halt::Shutdown);
        }))
    };
    let mut context = None;
    let result = deliver(engine, &job, &shared, &mut context).await;
    drop(heartbeat);
    drop(on_drain);
    let report = finish(engine, &job, &shared, context.as_ref(), result).await;
    engine.observer.job_finished(&report);
    report
}

/// Aborts a helper task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What `deliver` learnt that the end of the job needs.
struct Context {
    profile: StoredProfile,
}

/// The work itself. `Ok` carries the upload's outcome; `Err` an error before the upload.
async fn deliver(
    engine: &Inner,
    job: &Job,
    shared: &Arc<Shared>,
    context: &mut Option<Context>,
) -> Result<Outcome> {
    let ports = &engine.ports;
    let start = job.checkpoint.unwrap_or_else(|| Checkpoint::start(job.id));
    let Some(profile) = ports.profiles.get_profile(job.profile_id).await? else {
        return Err(Error::Rejected {
            reason: format!(
                "profile {} is not set up in this connector: create it through the API, then retry the delivery",
                job.profile_id
            ),
            source: None,
        });
    };
    if profile.archived_at.is_some() {
        shared.stop(Halt::Archived);
        return Ok(Outcome::Stopped { checkpoint: start });
    }
    if let DeliveryState::NeedsReauth { reason, .. } = &profile.delivery_state {
        shared.stop(Halt::NeedsReauth(reason.clone()));
        return Ok(Outcome::Stopped { checkpoint: start });
    }
    let token: SecretString = ports.cipher.decrypt(profile.id, &profile.token)?;
    *context = Some(Context {
        profile: profile.clone(),
    });
    let control = &shared.control;
    let audience = tokio::select! {
        biased;
        () = control.stop.cancelled() => return Ok(Outcome::Stopped { checkpoint: start }),
        audience = super::settings::resolve(engine, job, &profile, &token) => audience?,
    };
    let target = UploadTarget {
        ad_account: profile.ad_account.id.clone(),
        audience,
    };
    let download = temp_file(engine, job)?;
    let path = download.path().to_path_buf();
    let bytes = tokio::select! {
        biased;
        () = control.stop.cancelled() => return Ok(Outcome::Stopped { checkpoint: start }),
        bytes = ports.files.download_to(&job.file, &path) => bytes?,
    };
    tracing::debug!(job_id = %job.id, file = %job.file.file(), bytes, "file downloaded");
    let upload = FileUpload {
        sink: ports.audiences.clone(),
        clock: ports.clock.clone(),
        token,
        target: target.clone(),
        job_id: job.id,
        batch_size: engine.config.batch_size,
        uploads_in_flight: engine.config.uploads_in_flight,
        session_max_age: engine.config.session_max_age,
    };
    let mut progress = JobProgress {
        engine,
        job,
        shared: shared.clone(),
    };
    let parser = ParserConfig::default();
    let outcome = upload
        .run(
            path,
            job.file.format(),
            parser,
            start,
            &mut progress,
            control,
        )
        .await;
    // the temporary file goes whatever happened
    drop(download);
    Ok(outcome)
}

/// A temporary file named like the job's file (its extension tells Parquet from JSON lines).
fn temp_file(engine: &Inner, job: &Job) -> Result<tempfile::NamedTempFile> {
    let suffix = if job.file.file().is_parquet() {
        ".parquet"
    } else {
        ".jsonl"
    };
    let mut builder = tempfile::Builder::new();
    builder.prefix("fbc-").suffix(suffix);
    let created = match &engine.config.work_dir {
        Some(dir) => builder.tempfile_in(dir),
        None => builder.tempfile(),
    };
    created.map_err(|e| {
        Error::transient(std::io::Error::new(
            e.kind(),
            format!("cannot create a temporary file for the download: {e}"),
        ))
    })
}

/// Checkpoints go to the queue (extending the lease); acknowledged batches to the observer.
struct JobProgress<'a> {
    engine: &'a Inner,
    job: &'a Job,
    shared: Arc<Shared>,
}

#[async_trait::async_trait]
impl Progress for JobProgress<'_> {
    async fn checkpoint(&mut self, checkpoint: &Checkpoint) -> Result<()> {
        let ports = &self.engine.ports;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let lease = self.shared.lease();
            let renewal = ports
                .jobs
                .checkpoint(
                    &lease,
                    checkpoint,
                    self.engine.config.lease,
                    ports.clock.now(),
                )
                .await;
            match renewal {
                Ok(renewal) => {
                    self.shared.renewed(renewal);
                    return Ok(());
                }
                Err(error) => {
                    self.shared.renewal_failed(&error);
                    // a database blip: the batch is acknowledged, try to record it a few times
                    if attempt >= 3 || !error.is_retryable() {
                        return Err(error);
                    }
                    tracing::warn!(
                        job_id = %self.job.id,
                        error = %display_chain(&error),
                        "checkpoint failed, trying again"
                    );
                    tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
                }
            }
        }
    }

    fn acknowledged(&mut self, ack: &BatchAck) {
        self.engine.observer.batch_acknowledged(self.job, ack);
    }

    fn read(&mut self, _counts: &ReadCounts) {}
}

/// Renews the lease every third of it until aborted; stops the job when the lease is lost or
/// cannot be renewed before it runs out.
async fn heartbeat(
    jobs: Arc<dyn crate::ports::JobQueue>,
    clock: Arc<dyn crate::ports::Clock>,
    lease_for: Duration,
    shared: Arc<Shared>,
) {
    let every = (lease_for / 3).max(Duration::from_millis(100));
    loop {
        tokio::time::sleep(every).await;
        let lease = shared.lease();
        match jobs.heartbeat(&lease, lease_for, clock.now()).await {
            Ok(renewal) => shared.renewed(renewal),
            Err(error) => {
                shared.renewal_failed(&error);
                let left = lease.expires_at - clock.now();
                tracing::warn!(
                    job_id = %lease.job_id,
                    error = %display_chain(&error),
                    lease_left_ms = left.whole_milliseconds() as i64,
                    "cannot renew the job's lease"
                );
                if left < time::Duration::try_from(every).unwrap_or(time::Duration::ZERO) {
                    // another worker may take the job over before we can tell: stop now
                    shared.stop(Halt::LeaseLost);
                }
            }
        }
        if shared.control.abort.is_cancelled() {
            return;
        }
    }
}

/// Tells the queue how the job ended.
async fn finish(
    engine: &Inner,
    job: &Job,
    shared: &Shared,
    context: Option<&Context>,
    result: Result<Outcome>,
) -> JobReport {
    let stored = job.checkpoint.unwrap_or_else(|| Checkpoint::start(job.id));
    let (counters, error, summary) = match result {
        Ok(Outcome::Delivered {
            checkpoint,
            summary,
        }) => (checkpoint.counters, None, Some(summary)),
        Ok(Outcome::Stopped { checkpoint }) => (checkpoint.counters, None, None),
        Ok(Outcome::Failed { checkpoint, error }) => (checkpoint.counters, Some(error), None),
        Err(error) => (stored.counters, Some(error), None),
    };
    let end = match (shared.halt(), error, summary) {
        (Some(Halt::LeaseLost), ..) => JobEnd::Abandoned,
        (Some(Halt::Archived), ..) => {
            fail(engine, shared, "profile archived".into(), &counters).await
        }
        (Some(Halt::UnknownProfile), ..) => {
            let reason = format!(
                "profile {} is no longer set up in this connector",
                job.profile_id
            );
            fail(engine, shared, reason, &counters).await
        }
        (Some(Halt::NeedsReauth(reason)), ..) => pause(engine, job, shared, reason, false).await,
        (_, Some(error), _) => by_disposition(engine, job, shared, context, error, &counters).await,
        (Some(Halt::Shutdown), None, None) => {
            let now = engine.ports.clock.now();
            defer(
                engine,
                shared,
                now,
                "handed back: the worker shut down".into(),
            )
            .await
        }
        (_, None, Some(summary)) => complete(engine, job, shared, &counters, &summary).await,
        (None, None, None) => JobEnd::Failed {
            reason: "the upload stopped without a reason".into(),
        },
    };
    log_end(job, &end, &counters);
    let report = JobReport {
        job_id: job.id,
        revision: job.revision,
        profile_id: job.profile_id,
        settings_id: job.settings_id,
        file: job.file.clone(),
        end,
        counters,
    };
    if let Some(context) = context {
        report_status(engine, &report, &context.profile);
    }
    report
}

async fn by_disposition(
    engine: &Inner,
    job: &Job,
    shared: &Shared,
    context: Option<&Context>,
    error: Error,
    counters: &DeliveryCounters,
) -> JobEnd {
    let reason = error.reason();
    let now = engine.ports.clock.now();
    let cfg = &engine.config;
    match error.disposition() {
        Disposition::RetryLater {
            wait,
            throttled,
            uses_attempt,
        } => {
            if throttled {
                let until = now + backoff::honour(wait, cfg.throttle_backoff);
                if let Some(context) = context {
                    let ad_account = &context.profile.ad_account.id;
                    if let Err(e) = engine
                        .ports
                        .jobs
                        .throttle_ad_account(ad_account, until, now)
                        .await
                    {
                        tracing::warn!(
                            ad_account_id = %ad_account,
                            error = %display_chain(&e),
                            "cannot share the ad account's throttle with the other workers"
                        );
                    }
                }
                defer(engine, shared, until, reason).await
            } else if !uses_attempt {
                // another worker is busy with the same target (creating its audience): that
                // takes a second or two, so look again soon rather than when its claim ends
                let soon = wait.unwrap_or(BUSY_RECHECK).min(BUSY_RECHECK);
                let until = now + backoff::honour(Some(soon), BUSY_RECHECK);
                defer(engine, shared, until, reason).await
            } else {
                let step = backoff::exponential(
                    job.attempts,
                    cfg.retry_initial_backoff,
                    cfg.retry_max_backoff,
                );
                let at = now + wait.map_or(step, |w| w.max(step));
                retry(engine, shared, at, reason, counters).await
            }
        }
        Disposition::PauseProfile => pause(engine, job, shared, reason, true).await,
        Disposition::FailFile => fail(engine, shared, reason, counters).await,
        Disposition::AbandonJob => JobEnd::Abandoned,
        Disposition::Fatal => {
            tracing::error!(
                job_id = %job.id,
                error = %reason,
                "the job hit an error an operator must look at; it is handed back for later"
            );
            retry(engine, shared, now + cfg.fatal_backoff, reason, counters).await
        }
    }
}

async fn complete(
    engine: &Inner,
    job: &Job,
    shared: &Shared,
    counters: &DeliveryCounters,
    summary: &ReadSummary,
) -> JobEnd {
    if summary.counts.rejected_lines > 0 {
        let numbers: Vec<String> = summary
            .rejected_line_numbers
            .iter()
            .take(50)
            .map(u64::to_string)
            .collect();
        tracing::warn!(
            job_id = %job.id,
            file = %job.file.file(),
            rejected_lines = summary.counts.rejected_lines,
            rejected_line_numbers = %numbers.join(","),
            "lines that are not JSON objects were skipped"
        );
    }
    let counters = *counters;
    settle(engine, shared, JobEnd::Delivered, |lease| async move {
        let now = engine.ports.clock.now();
        engine.ports.jobs.complete(&lease, &counters, now).await
    })
    .await
}

async fn fail(
    engine: &Inner,
    shared: &Shared,
    reason: String,
    counters: &DeliveryCounters,
) -> JobEnd {
    let counters = *counters;
    let end = JobEnd::Failed {
        reason: reason.clone(),
    };
    settle(engine, shared, end, |lease| {
        let reason = reason.clone();
        async move {
            let now = engine.ports.clock.now();
            engine
                .ports
                .jobs
                .fail(&lease, &reason, &counters, now)
                .await
        }
    })
    .await
}

async fn retry(
    engine: &Inner,
    shared: &Shared,
    at: OffsetDateTime,
    reason: String,
    counters: &DeliveryCounters,
) -> JobEnd {
    let lease = shared.lease();
    let now = engine.ports.clock.now();
    match with_retries(|| engine.ports.jobs.retry_at(&lease, at, &reason, now)).await {
        Ok(crate::domain::RetryOutcome::Scheduled) => JobEnd::RetryScheduled { at, reason },
        Ok(crate::domain::RetryOutcome::GaveUp) => {
            let _ = counters;
            JobEnd::Failed {
                reason: format!("gave up after the last attempt: {reason}"),
            }
        }
        Err(error) => settle_failed(error),
    }
}

async fn defer(engine: &Inner, shared: &Shared, until: OffsetDateTime, reason: String) -> JobEnd {
    let end = JobEnd::Deferred {
        until,
        reason: reason.clone(),
    };
    settle(engine, shared, end, |lease| {
        let reason = reason.clone();
        async move {
            let now = engine.ports.clock.now();
            engine.ports.jobs.defer(&lease, until, &reason, now).await
        }
    })
    .await
}

/// Pauses the job; with `mark`, first marks the profile `needs_reauth` (which pauses its other
/// waiting jobs too).
async fn pause(engine: &Inner, job: &Job, shared: &Shared, reason: String, mark: bool) -> JobEnd {
    let now = engine.ports.clock.now();
    if mark {
        match with_retries(|| {
            engine
                .ports
                .profiles
                .mark_needs_reauth(job.profile_id, &reason, now)
        })
        .await
        {
            Ok(paused) => tracing::warn!(
                profile_id = %job.profile_id,
                paused_jobs = paused,
                reason = %reason,
                "the profile's facebook token stopped working: its deliveries wait for re-authorisation"
            ),
            Err(error) => tracing::error!(
                profile_id = %job.profile_id,
                error = %display_chain(&error),
                "cannot mark the profile as needing re-authorisation"
            ),
        }
    }
    let end = JobEnd::Paused {
        reason: reason.clone(),
    };
    settle(engine, shared, end, |lease| {
        let reason = reason.clone();
        async move {
            let now = engine.ports.clock.now();
            engine.ports.jobs.pause(&lease, &reason, now).await
        }
    })
    .await
}

/// Runs a lease-taking call of the end of a job (with a few retries on a database blip) and
/// returns `end` when it worked.
async fn settle<F, Fut>(_engine: &Inner, shared: &Shared, end: JobEnd, call: F) -> JobEnd
where
    F: Fn(Lease) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let lease = shared.lease();
    match with_retries(|| call(lease.clone())).await {
        Ok(()) => end,
        Err(error) => settle_failed(error),
    }
}

fn settle_failed(error: Error) -> JobEnd {
    match error.disposition() {
        Disposition::AbandonJob => JobEnd::Abandoned,
        _ => {
            // the lease runs out and another worker resumes from the last checkpoint
            tracing::error!(
                error = %display_chain(&error),
                "cannot record how the job ended; it is taken up again when its lease runs out"
            );
            JobEnd::Abandoned
        }
    }
}

async fn with_retries<T, F, Fut>(call: F) -> Result<T>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        match call().await {
            Ok(value) => return Ok(value),
            Err(error) if attempt < 4 && error.is_retryable() => {
                tokio::time::sleep(Duration::from_millis(250 * u64::from(attempt))).await;
            }
            Err(error) => return Err(error),
        }
    }
}

fn log_end(job: &Job, end: &JobEnd, counters: &DeliveryCounters) {
    let c = counters;
    match end {
        JobEnd::Delivered => tracing::info!(
            job_id = %job.id,
            revision = %job.revision,
            file = %job.file.file(),
            records_read = c.records_read,
            rejected_lines = c.rejected_lines,
            unmatchable = c.unmatchable,
            members_sent = c.members_sent,
            facebook_received = c.facebook_received,
            facebook_invalid = c.facebook_invalid,
            "file delivered"
        ),
        JobEnd::Failed { reason } => tracing::warn!(
            job_id = %job.id,
            revision = %job.revision,
            file = %job.file.file(),
            members_sent = c.members_sent,
            reason = %reason,
            "file failed"
        ),
        JobEnd::RetryScheduled { at, reason } => tracing::warn!(
            job_id = %job.id,
            revision = %job.revision,
            file = %job.file.file(),
            retry_at = %at,
            reason = %reason,
            "job failed, retrying later"
        ),
        JobEnd::Deferred { until, reason } => tracing::info!(
            job_id = %job.id,
            revision = %job.revision,
            file = %job.file.file(),
            until = %until,
            reason = %reason,
            "job handed back"
        ),
        JobEnd::Paused { reason } => tracing::warn!(
            job_id = %job.id,
            revision = %job.revision,
            profile_id = %job.profile_id,
            reason = %reason,
            "job paused until the profile is re-authorised"
        ),
        JobEnd::Abandoned => tracing::warn!(
            job_id = %job.id,
            revision = %job.revision,
            "job abandoned: its lease is no longer ours"
        ),
    }
}

/// Reports a delivered or failed file to the marketplace, if reporting is on. Never fails
/// the delivery: errors are logged.
fn report_status(engine: &Inner, report: &JobReport, profile: &StoredProfile) {
    let Some(reporter) = engine.ports.reporter.clone() else {
        return;
    };
    let outcome = match &report.end {
        JobEnd::Delivered => Ok(report.counters.members_sent),
        JobEnd::Failed { reason } => Err(reason.clone()),
        _ => return,
    };
    let (connection_id, dataset_id) = match (&report.settings_id, &report.file) {
        (SettingsId::Connection { connection_id, .. }, FileRef::Snapshot { dataset_id, .. }) => {
            (Some(*connection_id), Some(*dataset_id))
        }
        (SettingsId::Connection { connection_id, .. }, _) => (Some(*connection_id), None),
        _ => (None, None),
    };
    let status = if outcome.is_ok() {
        "delivered"
    } else {
        "failed"
    };
    let delivery = DeliveryReport {
        idempotency_key: format!("{}:{status}", report.job_id),
        company_id: Some(profile.company_id),
        profile_id: report.profile_id,
        connection_id,
        dataset_id,
        at: engine.ports.clock.now(),
        outcome,
    };
    let job_id = report.job_id;
    tokio::spawn(async move {
        if let Err(error) = reporter.report(&delivery).await {
            tracing::warn!(
                job_id = %job_id,
                error = %display_chain(&error),
                "cannot report the delivery's outcome to the marketplace"
            );
        }
    });
}
