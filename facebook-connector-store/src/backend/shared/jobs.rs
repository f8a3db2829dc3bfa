//! [`JobQueue`]: claims, leases and every job transition.

use std::time::Duration;

use async_trait::async_trait;
use facebook_connector_core::Result;
use facebook_connector_core::domain::{
    Checkpoint, ClaimedJob, DeliveryCounters, Job, JobId, Lease, QueueStats, RetryOutcome,
    Revision, WorkerId,
};
use facebook_connector_core::ports::{JobFilter, JobQueue};
use sqlx::types::Json;
use time::OffsetDateTime;
use uuid::Uuid;

use super::rows::{DbArguments, JobRow, get, job_from_row};
use super::store::SqlStore;
use super::{
    CLAIM_SELECT, Db, DbRow, LOCK_PROFILE_OF_JOB, LOCK_PROFILE_OF_REVISION, Ts, begin_write,
    from_ts, ts,
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

fn lease_conflict(lease: &Lease) -> StoreError {
    StoreError::Conflict {
        what: format!(
            "lease on job {} (generation {}) is no longer held",
            lease.job_id, lease.generation
        ),
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

/// `Ok` when a lease-checked update changed the job (`updated` rows), the lease conflict when
/// the lease is no longer held.
fn lease_held(updated: u64, lease: &Lease) -> StoreResult<()> {
    if updated == 0 {
        return Err(lease_conflict(lease));
    }
    Ok(())
}

/// Takes the backend's profile lock `lock` (`LOCK_PROFILE_OF_JOB` with the job id,
/// `LOCK_PROFILE_OF_REVISION` with the revision) in `tx`, where the backend has one.
async fn lock_profile<T>(
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
    ) -> StoreResult<Option<ClaimedJob>> {
        let expires_at = add(now, lease_for)?;
        loop {
            let mut tx = begin_write(&self.pool)
                .await
                .map_err(StoreError::query("begin claim"))?;
            let candidate = sqlx::query(CLAIM_SELECT)
                .bind(ts(now))
                .fetch_optional(&mut *tx)
                .await
                .map_err(StoreError::query("find claimable job"))?;
            let Some(candidate) = candidate else {
                tx.rollback()
                    .await
                    .map_err(StoreError::query("end claim"))?;
                return Ok(None);
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
            return Ok(Some(ClaimedJob {
                job: job.job,
                lease,
            }));
        }
    }
}

#[async_trait]
impl JobQueue for SqlStore {
    async fn claim(
        &self,
        owner: &WorkerId,
        lease_for: Duration,
        now: OffsetDateTime,
    ) -> Result<Option<ClaimedJob>> {
        Ok(self.claim_inner(owner, lease_for, now).await?)
    }

    async fn heartbeat(
        &self,
        lease: &Lease,
        extend_by: Duration,
        now: OffsetDateTime,
    ) -> Result<Lease> {
        let expires_at = add(now, extend_by)?;
        let row: Option<Ts> = lease_update_returning(
            concat!(
                "UPDATE jobs SET lease_expires_at = $4, due_at = $4, updated_at = $5",
                lease_matches!(),
                " RETURNING lease_expires_at"
            ),
            lease,
        )?
        .bind(ts(expires_at))
        .bind(ts(now))
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::query("extend lease"))?;
        let expires_at = row.ok_or_else(|| lease_conflict(lease))?;
        Ok(Lease {
            expires_at: from_ts(expires_at)?,
            ..lease.clone()
        })
    }

    async fn checkpoint(&self, lease: &Lease, checkpoint: &Checkpoint) -> Result<()> {
        let updated = lease_update(
            concat!(
                "UPDATE jobs SET checkpoint = $4, counters = $5",
                lease_matches!()
            ),
            lease,
        )?
        .bind(Json(checkpoint))
        .bind(Json(checkpoint.counters))
        .execute(&self.pool)
        .await
        .map_err(StoreError::query("checkpoint job"))?
        .rows_affected();
        Ok(lease_held(updated, lease)?)
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
        let mut tx = begin_write(&self.pool)
            .await
            .map_err(StoreError::query("begin retry job"))?;
        // serialise with mark_needs_reauth / reauthorize of the job's profile (see `pause`)
        lock_profile(
            &mut tx,
            LOCK_PROFILE_OF_JOB,
            lease.job_id.0,
            "lock profile of job",
        )
        .await?;
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
            None => return Err(lease_conflict(lease).into()),
            Some("failed") => RetryOutcome::GaveUp,
            Some(_) => RetryOutcome::Scheduled,
        };
        tx.commit()
            .await
            .map_err(StoreError::query("commit retry job"))?;
        Ok(outcome)
    }

    async fn pause(&self, lease: &Lease, reason: &str, now: OffsetDateTime) -> Result<()> {
        let mut tx = begin_write(&self.pool)
            .await
            .map_err(StoreError::query("begin pause job"))?;
        // serialise with mark_needs_reauth / reauthorize of the job's profile, so a profile
        // re-authorised meanwhile cannot leave this job paused forever
        lock_profile(
            &mut tx,
            LOCK_PROFILE_OF_JOB,
            lease.job_id.0,
            "lock profile of job",
        )
        .await?;
        let updated = lease_update(
            concat!(
                "UPDATE jobs SET status = ",
                released_status!(),
                ", attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END, \
                 run_at = $4, due_at = $4, last_error = $5, lease_owner = NULL, \
                 lease_expires_at = NULL, updated_at = $4",
                lease_matches!()
            ),
            lease,
        )?
        .bind(ts(now))
        .bind(reason)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::query("pause job"))?
        .rows_affected();
        lease_held(updated, lease)?;
        tx.commit()
            .await
            .map_err(StoreError::query("commit pause job"))?;
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
