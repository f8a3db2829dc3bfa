//! [`JobQueue`]: fair claims, leases, renewals, throttles and every job transition.

use std::time::Duration;

use async_trait::async_trait;
use facebook_connector_core::Result;
use facebook_connector_core::domain::{
    AdAccountId, Checkpoint, Claim, ClaimedJob, DeliveryCounters, Job, JobId, Lease, ProfileState,
    QueueStats, Renewal, RetryOutcome, Revision, WorkerId,
};
use facebook_connector_core::ports::{JobFilter, JobQueue};
use sqlx::types::Json;
use time::OffsetDateTime;
use uuid::Uuid;

use super::rows::{DbArguments, JobRow, get, job_from_row, opt_ts};
use super::store::SqlStore;
use super::{
    Db, DbRow, LOCK_PROFILE_OF_JOB, LOCK_PROFILE_OF_REVISION, Ts, begin_write, from_ts, ts,
};
use crate::codec::{self, LEASE_EXPIRED_LAST_ATTEMPT, add, revision_to_db, u64_from_db, u64_to_db};
use crate::error::{StoreError, StoreResult};

/// Jobs per status: the unfinished states counted from the partial index
/// `jobs_open_status_idx` (it holds only their rows), the finished ones read from the
/// trigger-maintained `job_totals` row, so the cost does not grow with finished jobs.
/// (The repeated `IN` term is the index's own predicate: SQLite only uses a partial index when
/// the query states its condition literally.)
pub(super) const STATS_SELECT: &str = "SELECT \
     (SELECT COUNT(*) FROM jobs WHERE status IN ('queued', 'running', 'paused') \
     AND status = 'queued') AS queued, \
     (SELECT COUNT(*) FROM jobs WHERE status IN ('queued', 'running', 'paused') \
     AND status = 'running') AS running, \
     (SELECT COUNT(*) FROM jobs WHERE status IN ('queued', 'running', 'paused') \
     AND status = 'paused') AS paused, \
     COALESCE((SELECT delivered FROM job_totals WHERE id = 1), 0) AS delivered, \
     COALESCE((SELECT failed FROM job_totals WHERE id = 1), 0) AS failed";

/// The profiles a claim may serve now, best first (`$1`: now). Each has an unfinished job that
/// is due (queued with `run_at <= now`, or running with an expired lease), does not need
/// re-authorisation and is not on a throttled ad account; a job whose profile has no row is
/// claimable like any other (the engine fails it with a reason). Best is the fewest running
/// jobs with a live lease, then the oldest due job, so a profile with a thousand queued files
/// does not starve another's single file.
///
/// The cost does not depend on how many jobs a profile has queued: `open_profiles` walks the
/// distinct profiles of `jobs_profile_due_idx` (one index probe per profile with unfinished
/// jobs, a loose index scan), `heads` reads each one's oldest due time from the same index,
/// and the running count reads `jobs_running_idx`, which holds only running jobs. Finished
/// jobs are in neither index. When no job at all is due (the usual idle poll), the walk does
/// not start: the first entry of `jobs_claimable_idx` says so. (Every `status` condition
/// states an index's predicate literally, so SQLite uses the partial index; `by_profile_due!`
/// makes SQLite use `jobs_profile_due_idx` for the walk.)
pub(super) const CLAIM_CANDIDATES: &str = concat!(
    "WITH RECURSIVE open_profiles (profile_id) AS (SELECT (SELECT j.profile_id FROM jobs j",
    by_profile_due!(),
    " WHERE j.status IN ('queued', 'running') ORDER BY j.profile_id LIMIT 1) \
     WHERE (SELECT d.due_at FROM jobs d WHERE d.status IN ('queued', 'running') \
     ORDER BY d.due_at LIMIT 1) <= $1 \
     UNION ALL SELECT (SELECT j.profile_id FROM jobs j",
    by_profile_due!(),
    " WHERE j.status IN ('queued', 'running') AND j.profile_id > o.profile_id \
     ORDER BY j.profile_id LIMIT 1) FROM open_profiles o WHERE o.profile_id IS NOT NULL), \
     heads AS MATERIALIZED (SELECT o.profile_id, (SELECT j.due_at FROM jobs j",
    by_profile_due!(),
    " WHERE j.status IN ('queued', 'running') AND j.profile_id = o.profile_id \
     ORDER BY j.due_at LIMIT 1) AS due_at FROM open_profiles o WHERE o.profile_id IS NOT NULL) \
     SELECT h.profile_id, (SELECT COUNT(*) FROM jobs r WHERE r.status = 'running' \
     AND r.profile_id = h.profile_id AND r.lease_expires_at > $1) AS running \
     FROM heads h WHERE h.due_at <= $1 \
     AND NOT EXISTS (SELECT 1 FROM profiles p WHERE p.id = h.profile_id \
     AND p.delivery_state = 'needs_reauth') \
     AND NOT EXISTS (SELECT 1 FROM profiles p JOIN ad_account_throttles t \
     ON t.ad_account_id = p.ad_account_id WHERE p.id = h.profile_id AND t.until > $1) \
     ORDER BY running, h.due_at, h.profile_id LIMIT 8"
);

/// The oldest due job of one profile (`$1` profile, `$2` now), locked for the claim where the
/// backend locks rows (PostgreSQL skips rows other claimers hold, so two never take the same
/// job and neither waits). Served by `jobs_profile_due_idx`.
pub(super) const CLAIM_PICK: &str = concat!(
    "SELECT id, status, attempts, max_attempts FROM jobs \
     WHERE status IN ('queued', 'running') AND profile_id = $1 AND due_at <= $2 \
     ORDER BY due_at, id LIMIT 1",
    claim_lock!()
);

/// When an idle worker should ask again (`$1`: now): the earliest due time of an unfinished
/// job still in the future (`jobs_claimable_idx`), and the earliest end of a live throttle
/// that holds back a job that is due now (the throttles table holds a few rows).
pub(super) const NEXT_DUE: &str = "SELECT \
     (SELECT j.due_at FROM jobs j WHERE j.status IN ('queued', 'running') AND j.due_at > $1 \
     ORDER BY j.due_at LIMIT 1) AS job_due, \
     (SELECT MIN(t.until) FROM ad_account_throttles t WHERE t.until > $1 AND EXISTS ( \
     SELECT 1 FROM profiles p WHERE p.ad_account_id = t.ad_account_id \
     AND p.delivery_state = 'ok' AND EXISTS (SELECT 1 FROM jobs j \
     WHERE j.status IN ('queued', 'running') AND j.profile_id = p.id AND j.due_at <= $1))) \
     AS throttle_end";

/// How often a claim on PostgreSQL looks for candidates again when every one it found was
/// being claimed by another worker at the same moment.
const CLAIM_ROUNDS: usize = 3;

/// The state a job released by a worker goes back to: `paused` while its profile needs
/// re-authorisation (so it waits for `reauthorize` instead of being skipped by every claim),
/// `queued` otherwise.
macro_rules! released_status {
    () => {
        "CASE WHEN EXISTS (SELECT 1 FROM profiles p WHERE p.id = jobs.profile_id \
         AND p.delivery_state = 'needs_reauth') THEN 'paused' ELSE 'queued' END"
    };
}

/// `WHERE` clause of every lease-checked job update: `$1` job id, `$2` owner, `$3` generation.
macro_rules! lease_matches {
    () => {
        " WHERE id = $1 AND status = 'running' AND lease_owner = $2 AND lease_generation = $3"
    };
}

/// `RETURNING` clause of a lease renewal: the new expiry and the state of the job's profile
/// (archived first: it is final).
macro_rules! renewal_returning {
    () => {
        " RETURNING lease_expires_at, COALESCE((SELECT CASE \
         WHEN p.archived_at IS NOT NULL THEN 'archived' \
         WHEN p.delivery_state = 'needs_reauth' THEN 'needs_reauth' ELSE 'active' END \
         FROM profiles p WHERE p.id = jobs.profile_id), 'unknown') AS profile_state"
    };
}

fn lease_lost(lease: &Lease) -> StoreError {
    StoreError::LeaseLost {
        what: format!("job {} (generation {})", lease.job_id, lease.generation),
    }
}

/// A lease-checked job update (its SQL ends with [`lease_matches!`]) with `$1`–`$3` bound to
/// the lease; the caller binds the rest.
fn lease_update<'q>(
    sql: &'static str,
    lease: &Lease,
) -> StoreResult<sqlx::query::Query<'q, Db, DbArguments>> {
    let generation = u64_to_db("lease generation", lease.generation)?;
    Ok(sqlx::query(sql)
        .bind(lease.job_id.0)
        .bind(lease.owner.0.clone())
        .bind(generation))
}

/// [`lease_update`] for an update that returns one column of the job (`RETURNING`).
fn lease_update_returning<'q, O>(
    sql: &'static str,
    lease: &Lease,
) -> StoreResult<sqlx::query::QueryScalar<'q, Db, O, DbArguments>>
where
    (O,): for<'r> sqlx::FromRow<'r, DbRow>,
{
    let generation = u64_to_db("lease generation", lease.generation)?;
    Ok(sqlx::query_scalar(sql)
        .bind(lease.job_id.0)
        .bind(lease.owner.0.clone())
        .bind(generation))
}

/// `Ok` when a lease-checked update changed the job (`updated` rows), [`StoreError::LeaseLost`]
/// when the lease is no longer held.
fn lease_held(updated: u64, lease: &Lease) -> StoreResult<()> {
    if updated == 0 {
        return Err(lease_lost(lease));
    }
    Ok(())
}

/// The renewed lease from a [`renewal_returning!`] row, or the lost lease.
fn renewal_from_row(row: Option<DbRow>, lease: &Lease) -> StoreResult<Renewal> {
    let row = row.ok_or_else(|| lease_lost(lease))?;
    let expires_at: Ts = get(&row, "lease_expires_at")?;
    let state: String = get(&row, "profile_state")?;
    let profile = match state.as_str() {
        "active" => ProfileState::Active,
        "needs_reauth" => ProfileState::NeedsReauth,
        "archived" => ProfileState::Archived,
        "unknown" => ProfileState::Unknown,
        other => {
            return Err(StoreError::corrupt("profile state")(
                format!("unknown profile state {other:?}").into(),
            ));
        }
    };
    Ok(Renewal {
        lease: Lease {
            expires_at: from_ts(expires_at)?,
            ..lease.clone()
        },
        profile,
    })
}

/// Takes the backend's profile lock `lock` (`LOCK_PROFILE_OF_JOB` with the job id,
/// `LOCK_PROFILE_OF_REVISION` with the revision) in `tx`, where the backend has one.
pub(super) async fn lock_profile<T>(
    tx: &mut sqlx::Transaction<'static, Db>,
    lock: Option<&'static str>,
    key: T,
    operation: &'static str,
) -> StoreResult<()>
where
    T: for<'q> sqlx::Encode<'q, Db> + sqlx::Type<Db> + Send + 'static,
{
    if let Some(lock) = lock {
        sqlx::query(lock)
            .bind(key)
            .execute(&mut **tx)
            .await
            .map_err(StoreError::query(operation))?;
    }
    Ok(())
}

impl SqlStore {
    async fn fetch_job(&self, id: JobId) -> StoreResult<Option<JobRow>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            job_columns!(),
            " FROM jobs WHERE id = $1"
        ))
        .bind(id.0)
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::query("get job"))?;
        row.as_ref().map(job_from_row).transpose()
    }

    async fn claim_inner(
        &self,
        owner: &WorkerId,
        lease_for: Duration,
        now: OffsetDateTime,
    ) -> StoreResult<Claim> {
        let expires_at = add(now, lease_for)?;
        let mut rounds = 0;
        loop {
            let mut tx = begin_write(&self.pool)
                .await
                .map_err(StoreError::query("begin claim"))?;
            let candidates: Vec<(Uuid, i64)> = sqlx::query_as(CLAIM_CANDIDATES)
                .bind(ts(now))
                .fetch_all(&mut *tx)
                .await
                .map_err(StoreError::query("find claimable profiles"))?;
            let mut picked = None;
            for (profile_id, _running) in &candidates {
                picked = sqlx::query(CLAIM_PICK)
                    .bind(*profile_id)
                    .bind(ts(now))
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(StoreError::query("find claimable job"))?;
                if picked.is_some() {
                    break;
                }
            }
            let Some(candidate) = picked else {
                if !candidates.is_empty() {
                    // every due job found was being claimed by someone else just now
                    // (PostgreSQL; SQLite's claims run one at a time)
                    tx.rollback()
                        .await
                        .map_err(StoreError::query("end claim"))?;
                    rounds += 1;
                    if rounds < CLAIM_ROUNDS {
                        continue;
                    }
                    return Ok(Claim::Idle {
                        next_due: Some(now),
                    });
                }
                let row = sqlx::query(NEXT_DUE)
                    .bind(ts(now))
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(StoreError::query("find next due job"))?;
                let job_due = opt_ts(get(&row, "job_due")?)?;
                let throttle_end = opt_ts(get(&row, "throttle_end")?)?;
                tx.rollback()
                    .await
                    .map_err(StoreError::query("end claim"))?;
                let next_due = match (job_due, throttle_end) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                return Ok(Claim::Idle { next_due });
            };
            let id: Uuid = get(&candidate, "id")?;
            let status: String = get(&candidate, "status")?;
            let attempts: i32 = get(&candidate, "attempts")?;
            let max_attempts: i32 = get(&candidate, "max_attempts")?;
            if status == "running" && attempts >= max_attempts {
                // the holder of the last attempt vanished: give up instead of retrying forever
                sqlx::query(
                    "UPDATE jobs SET status = 'failed', last_error = $2, lease_owner = NULL, \
                     lease_expires_at = NULL, updated_at = $3 WHERE id = $1",
                )
                .bind(id)
                .bind(LEASE_EXPIRED_LAST_ATTEMPT)
                .bind(ts(now))
                .execute(&mut *tx)
                .await
                .map_err(StoreError::query("fail abandoned job"))?;
                tx.commit()
                    .await
                    .map_err(StoreError::query("commit claim"))?;
                tracing::warn!(job_id = %id, "job failed: lease expired during its last attempt");
                continue;
            }
            let row = sqlx::query(concat!(
                "UPDATE jobs SET status = 'running', attempts = attempts + 1, lease_owner = $2, \
                 lease_generation = lease_generation + 1, lease_expires_at = $3, due_at = $3, \
                 updated_at = $4 WHERE id = $1 RETURNING ",
                job_columns!()
            ))
            .bind(id)
            .bind(owner.0.as_str())
            .bind(ts(expires_at))
            .bind(ts(now))
            .fetch_one(&mut *tx)
            .await
            .map_err(StoreError::query("claim job"))?;
            let job = job_from_row(&row)?;
            tx.commit()
                .await
                .map_err(StoreError::query("commit claim"))?;
            let lease = Lease {
                job_id: job.job.id,
                owner: owner.clone(),
                generation: job.lease_generation,
                expires_at: job.lease_expires_at.unwrap_or(expires_at),
            };
            return Ok(Claim::Job(Box::new(ClaimedJob {
                job: job.job,
                lease,
            })));
        }
    }

    /// Extends `lease` to `now + extend_by` and, with a checkpoint, records it and copies its
    /// counters to the file, in one statement (`heartbeat`, `checkpoint`).
    async fn renew(
        &self,
        lease: &Lease,
        checkpoint: Option<&Checkpoint>,
        extend_by: Duration,
        now: OffsetDateTime,
    ) -> StoreResult<Renewal> {
        let expires_at = add(now, extend_by)?;
        let row = lease_update(
            concat!(
                "UPDATE jobs SET lease_expires_at = $4, due_at = $4, updated_at = $5, \
                 checkpoint = COALESCE($6, checkpoint), counters = COALESCE($7, counters)",
                lease_matches!(),
                renewal_returning!()
            ),
            lease,
        )?
        .bind(ts(expires_at))
        .bind(ts(now))
        .bind(checkpoint.map(Json))
        .bind(checkpoint.map(|c| Json(c.counters)))
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::query(if checkpoint.is_some() {
            "checkpoint job"
        } else {
            "extend lease"
        }))?;
        renewal_from_row(row, lease)
    }

    /// The transaction of a release of `lease`'s job back to the queue. It first takes the
    /// job's profile lock (PostgreSQL), so a release serialises with `mark_needs_reauth` /
    /// `reauthorize` of that profile: a job released while the profile is re-authorised can
    /// neither be left paused nor be queued for a token that does not work.
    async fn begin_release(&self, lease: &Lease) -> StoreResult<sqlx::Transaction<'static, Db>> {
        let mut tx = begin_write(&self.pool)
            .await
            .map_err(StoreError::query("begin release job"))?;
        lock_profile(
            &mut tx,
            LOCK_PROFILE_OF_JOB,
            lease.job_id.0,
            "lock profile of job",
        )
        .await?;
        Ok(tx)
    }

    /// Releases a leased job to run at `run_at` without counting the attempt it was claimed
    /// with (`defer`, and `pause` with `run_at = now`).
    async fn release_keeping_attempt(
        &self,
        lease: &Lease,
        run_at: OffsetDateTime,
        reason: &str,
        now: OffsetDateTime,
        operation: &'static str,
    ) -> StoreResult<()> {
        let mut tx = self.begin_release(lease).await?;
        let updated = lease_update(
            concat!(
                "UPDATE jobs SET status = ",
                released_status!(),
                ", attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END, \
                 run_at = $4, due_at = $4, last_error = $5, lease_owner = NULL, \
                 lease_expires_at = NULL, updated_at = $6",
                lease_matches!()
            ),
            lease,
        )?
        .bind(ts(run_at))
        .bind(reason)
        .bind(ts(now))
        .execute(&mut *tx)
        .await
        .map_err(StoreError::query(operation))?
        .rows_affected();
        lease_held(updated, lease)?;
        tx.commit()
            .await
            .map_err(StoreError::query("commit release job"))?;
        Ok(())
    }
}

#[async_trait]
impl JobQueue for SqlStore {
    async fn claim(
        &self,
        owner: &WorkerId,
        lease_for: Duration,
        now: OffsetDateTime,
    ) -> Result<Claim> {
        Ok(self.claim_inner(owner, lease_for, now).await?)
    }

    async fn heartbeat(
        &self,
        lease: &Lease,
        extend_by: Duration,
        now: OffsetDateTime,
    ) -> Result<Renewal> {
        Ok(self.renew(lease, None, extend_by, now).await?)
    }

    async fn checkpoint(
        &self,
        lease: &Lease,
        checkpoint: &Checkpoint,
        extend_by: Duration,
        now: OffsetDateTime,
    ) -> Result<Renewal> {
        Ok(self.renew(lease, Some(checkpoint), extend_by, now).await?)
    }

    async fn complete(
        &self,
        lease: &Lease,
        counters: &DeliveryCounters,
        now: OffsetDateTime,
    ) -> Result<()> {
        let updated = lease_update(
            concat!(
                "UPDATE jobs SET status = 'delivered', counters = $4, last_error = NULL, \
                 lease_owner = NULL, lease_expires_at = NULL, updated_at = $5",
                lease_matches!()
            ),
            lease,
        )?
        .bind(Json(counters))
        .bind(ts(now))
        .execute(&self.pool)
        .await
        .map_err(StoreError::query("complete job"))?
        .rows_affected();
        Ok(lease_held(updated, lease)?)
    }

    async fn fail(
        &self,
        lease: &Lease,
        reason: &str,
        counters: &DeliveryCounters,
        now: OffsetDateTime,
    ) -> Result<()> {
        let updated = lease_update(
            concat!(
                "UPDATE jobs SET status = 'failed', counters = $4, last_error = $5, \
                 lease_owner = NULL, lease_expires_at = NULL, updated_at = $6",
                lease_matches!()
            ),
            lease,
        )?
        .bind(Json(counters))
        .bind(reason)
        .bind(ts(now))
        .execute(&self.pool)
        .await
        .map_err(StoreError::query("fail job"))?
        .rows_affected();
        Ok(lease_held(updated, lease)?)
    }

    async fn retry_at(
        &self,
        lease: &Lease,
        run_at: OffsetDateTime,
        reason: &str,
        now: OffsetDateTime,
    ) -> Result<RetryOutcome> {
        let mut tx = self.begin_release(lease).await?;
        let status: Option<String> = lease_update_returning(
            concat!(
                "UPDATE jobs SET status = CASE WHEN attempts >= max_attempts THEN 'failed' ELSE ",
                released_status!(),
                " END, run_at = $4, due_at = $4, last_error = $5, lease_owner = NULL, \
                 lease_expires_at = NULL, updated_at = $6",
                lease_matches!(),
                " RETURNING status"
            ),
            lease,
        )?
        .bind(ts(run_at))
        .bind(reason)
        .bind(ts(now))
        .fetch_optional(&mut *tx)
        .await
        .map_err(StoreError::query("retry job"))?;
        let outcome = match status.as_deref() {
            None => return Err(lease_lost(lease).into()),
            Some("failed") => RetryOutcome::GaveUp,
            Some(_) => RetryOutcome::Scheduled,
        };
        tx.commit()
            .await
            .map_err(StoreError::query("commit retry job"))?;
        Ok(outcome)
    }

    async fn defer(
        &self,
        lease: &Lease,
        run_at: OffsetDateTime,
        reason: &str,
        now: OffsetDateTime,
    ) -> Result<()> {
        Ok(self
            .release_keeping_attempt(lease, run_at, reason, now, "defer job")
            .await?)
    }

    async fn pause(&self, lease: &Lease, reason: &str, now: OffsetDateTime) -> Result<()> {
        Ok(self
            .release_keeping_attempt(lease, now, reason, now, "pause job")
            .await?)
    }

    async fn throttle_ad_account(
        &self,
        ad_account: &AdAccountId,
        until: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<()> {
        let mut tx = begin_write(&self.pool)
            .await
            .map_err(StoreError::query("begin throttle ad account"))?;
        // throttles that ended mean nothing: drop them while here (the table stays tiny)
        sqlx::query("DELETE FROM ad_account_throttles WHERE until <= $1")
            .bind(ts(now))
            .execute(&mut *tx)
            .await
            .map_err(StoreError::query("drop ended throttles"))?;
        sqlx::query(
            "INSERT INTO ad_account_throttles (ad_account_id, until, updated_at) \
             VALUES ($1, $2, $3) ON CONFLICT (ad_account_id) DO UPDATE SET \
             until = CASE WHEN excluded.until > ad_account_throttles.until \
             THEN excluded.until ELSE ad_account_throttles.until END, \
             updated_at = excluded.updated_at",
        )
        .bind(ad_account.as_str())
        .bind(ts(until))
        .bind(ts(now))
        .execute(&mut *tx)
        .await
        .map_err(StoreError::query("throttle ad account"))?;
        tx.commit()
            .await
            .map_err(StoreError::query("commit throttle ad account"))?;
        Ok(())
    }

    async fn requeue(
        &self,
        revision: Revision,
        job_id: Option<JobId>,
        now: OffsetDateTime,
    ) -> Result<u64> {
        let rev = revision_to_db(revision)?;
        let mut tx = begin_write(&self.pool)
            .await
            .map_err(StoreError::query("begin requeue jobs"))?;
        // serialise with mark_needs_reauth / reauthorize of the command's profile, so jobs
        // requeued meanwhile are neither left paused after re-authorisation nor queued for a
        // profile whose token does not work
        lock_profile(
            &mut tx,
            LOCK_PROFILE_OF_REVISION,
            rev,
            "lock profile of command",
        )
        .await?;
        let requeued = sqlx::query(concat!(
            "UPDATE jobs SET status = ",
            released_status!(),
            ", attempts = 0, run_at = $3, due_at = $3, last_error = NULL, lease_owner = NULL, \
             lease_expires_at = NULL, updated_at = $3 \
             WHERE revision = $1 AND ($2 IS NULL OR id = $2) AND status IN ('failed', 'paused')"
        ))
        .bind(rev)
        .bind(job_id.map(|j| j.0))
        .bind(ts(now))
        .execute(&mut *tx)
        .await
        .map_err(StoreError::query("requeue jobs"))?
        .rows_affected();
        tx.commit()
            .await
            .map_err(StoreError::query("commit requeue jobs"))?;
        Ok(requeued)
    }

    async fn get_job(&self, id: JobId) -> Result<Option<Job>> {
        Ok(self.fetch_job(id).await?.map(|row| row.job))
    }

    async fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<Job>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            job_columns!(),
            " FROM jobs WHERE ($1 IS NULL OR revision = $1) AND ($2 IS NULL OR profile_id = $2) \
             AND ($3 IS NULL OR status = $3) ORDER BY created_at DESC, id DESC LIMIT $4"
        ))
        .bind(filter.revision.map(revision_to_db).transpose()?)
        .bind(filter.profile_id.map(|p| p.0))
        .bind(filter.status.map(|s| s.as_str()))
        .bind(codec::limit(filter.limit))
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query("list jobs"))?;
        Ok(rows
            .iter()
            .map(|row| job_from_row(row).map(|r| r.job))
            .collect::<StoreResult<_>>()?)
    }

    async fn stats(&self) -> Result<QueueStats> {
        let row = sqlx::query(STATS_SELECT)
            .fetch_one(&self.pool)
            .await
            .map_err(StoreError::query("queue stats"))?;
        let count = |column: &'static str| -> StoreResult<u64> {
            u64_from_db("job count", get::<i64>(&row, column)?)
        };
        Ok(QueueStats {
            queued: count("queued")?,
            running: count("running")?,
            paused: count("paused")?,
            delivered: count("delivered")?,
            failed: count("failed")?,
        })
    }
}
