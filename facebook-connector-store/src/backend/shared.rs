// The storage ports, written once and `include!`d into `backend::postgres` and
// `backend::sqlite`. The including module defines the backend-specific items: `Db`, `DbPool`,
// `DbRow`, `Ts`, `ts`, `from_ts`, `begin_write`, `MIGRATOR`, `plan_line` (one row of a query
// plan), and the SQL constants whose text differs (`CLAIM_SELECT`, `SETTINGS_SELECT_FOR_UPDATE`,
// `LOCK_PROFILE_OF_JOB`, `LOCK_PROFILE_OF_REVISION`, `MIGRATIONS_TABLE_EXISTS`, `EXPLAIN`).
// Everything else (SQL text included) is shared, so both backends have one behaviour.

use std::time::Duration;

use async_trait::async_trait;
use facebook_connector_core::Result;
use facebook_connector_core::domain::{
    AdAccount, AdAccountId, Audience, AudienceId, Business, BusinessId, Checkpoint, ClaimedJob,
    Command, CommandFile, CompanyId, DeliveryCounters, DeliveryEvent, DeliveryState,
    EncryptedToken, FacebookUser, FacebookUserId, FileRef, Job, JobId, Lease,
    NewCommand, ProfileId, QueueStats, RetryOutcome, Revision, Settings, SettingsId,
    StoredProfile, WorkerId,
};
use facebook_connector_core::ports::{
    CommandFilter, CommandStore, JobFilter, JobQueue, ProfileStore, RecordOutcome,
    SettingsClaim, SettingsStore,
};
use sqlx::Row as _;
use sqlx::types::Json;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::codec::{
    self, LEASE_EXPIRED_LAST_ATTEMPT, PROFILE_ARCHIVED, add, file_status, job_status_from_db,
    revision_from_db, revision_to_db, settings_id_from_db, u32_from_db, u32_to_db, u64_from_db,
    u64_to_db,
};
use crate::error::{StoreError, StoreResult};
use crate::schema::SchemaStatus;

/// Jobs per status: the unfinished states counted from the partial index
/// `jobs_open_status_idx` (it holds only their rows), the finished ones read from the
/// trigger-maintained `job_totals` row, so the cost does not grow with finished jobs.
/// (The repeated `IN` term is the index's own predicate: SQLite only uses a partial index when
/// the query states its condition literally.)
const STATS_SELECT: &str = "SELECT \
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

/// The storage ports on this backend. Cheap to clone (a connection pool).
#[derive(Clone, Debug)]
pub struct SqlStore {
    pub(crate) pool: DbPool,
}

macro_rules! job_columns {
    () => {
        "id, revision, position, profile_id, settings_id, file, status, attempts, max_attempts, \
         run_at, lease_owner, lease_generation, lease_expires_at, checkpoint, counters, \
         last_error, created_at, updated_at"
    };
}

macro_rules! profile_columns {
    () => {
        "id, company_id, ad_account_id, ad_account_name, business_id, business_name, \
         custom_audience_tos_accepted, audience_id, audience_name, token, token_issued_at, \
         facebook_user_id, facebook_user_name, delivery_state, reauth_reason, reauth_since, \
         archived_at, created_at, updated_at"
    };
}

/// `WHERE` clause of every lease-checked job update: `$1` job id, `$2` owner, `$3` generation.
macro_rules! lease_matches {
    () => {
        " WHERE id = $1 AND status = 'running' AND lease_owner = $2 AND lease_generation = $3"
    };
}

/// A job row with the lease columns the domain [`Job`] does not carry.
struct JobRow {
    job: Job,
    lease_generation: u64,
    lease_expires_at: Option<OffsetDateTime>,
}

fn opt_ts(value: Option<Ts>) -> StoreResult<Option<OffsetDateTime>> {
    value.map(from_ts).transpose()
}

fn get<'r, T>(row: &'r DbRow, column: &'static str) -> StoreResult<T>
where
    T: sqlx::Decode<'r, Db> + sqlx::Type<Db>,
{
    row.try_get(column).map_err(|source| StoreError::Query {
        operation: column,
        source,
    })
}

fn job_from_row(row: &DbRow) -> StoreResult<JobRow> {
    let status: String = get(row, "status")?;
    let status = job_status_from_db(&status)?;
    let checkpoint: Option<Json<Checkpoint>> = get(row, "checkpoint")?;
    let file: Json<FileRef> = get(row, "file")?;
    let settings_id: String = get(row, "settings_id")?;
    let job = Job {
        id: JobId(get::<Uuid>(row, "id")?),
        revision: revision_from_db(get(row, "revision")?)?,
        profile_id: ProfileId(get::<Uuid>(row, "profile_id")?),
        settings_id: settings_id_from_db(&settings_id)?,
        file: file.0,
        status,
        attempts: u32_from_db("attempts", get(row, "attempts")?)?,
        max_attempts: u32_from_db("max attempts", get(row, "max_attempts")?)?,
        run_at: from_ts(get(row, "run_at")?)?,
        checkpoint: checkpoint.map(|c| c.0),
        last_error: get(row, "last_error")?,
        created_at: from_ts(get(row, "created_at")?)?,
        updated_at: from_ts(get(row, "updated_at")?)?,
    };
    Ok(JobRow {
        job,
        lease_generation: u64_from_db("lease generation", get(row, "lease_generation")?)?,
        lease_expires_at: opt_ts(get(row, "lease_expires_at")?)?,
    })
}

fn profile_from_row(row: &DbRow) -> StoreResult<StoredProfile> {
    let invalid = |what: &'static str| {
        move |e: facebook_connector_core::InvalidValue| StoreError::corrupt(what)(Box::new(e))
    };
    let ad_account_id: String = get(row, "ad_account_id")?;
    let business_id: Option<String> = get(row, "business_id")?;
    let business_name: Option<String> = get(row, "business_name")?;
    let business = match business_id {
        Some(id) => Some(Business {
            id: BusinessId::new(id).map_err(invalid("business id"))?,
            name: business_name.unwrap_or_default(),
        }),
        None => None,
    };
    let audience_id: Option<String> = get(row, "audience_id")?;
    let audience_name: Option<String> = get(row, "audience_name")?;
    let audience = match audience_id {
        Some(id) => Some(Audience {
            id: AudienceId::parse(&id).map_err(invalid("audience id"))?,
            name: audience_name.unwrap_or_default(),
        }),
        None => None,
    };
    let state: String = get(row, "delivery_state")?;
    let delivery_state = match state.as_str() {
        "ok" => DeliveryState::Ok,
        "needs_reauth" => DeliveryState::NeedsReauth {
            reason: get::<Option<String>>(row, "reauth_reason")?.unwrap_or_default(),
            since: opt_ts(get(row, "reauth_since")?)?.ok_or_else(|| {
                StoreError::corrupt("delivery state")("needs_reauth without a time".into())
            })?,
        },
        other => {
            return Err(StoreError::corrupt("delivery state")(
                format!("unknown delivery state {other:?}").into(),
            ));
        }
    };
    let user_id: String = get(row, "facebook_user_id")?;
    Ok(StoredProfile {
        id: ProfileId(get::<Uuid>(row, "id")?),
        company_id: CompanyId(get(row, "company_id")?),
        ad_account: AdAccount {
            id: AdAccountId::parse(&ad_account_id).map_err(invalid("ad account id"))?,
            name: get(row, "ad_account_name")?,
            business,
            user_accepted_custom_audience_tos: get(row, "custom_audience_tos_accepted")?,
        },
        audience,
        token: EncryptedToken(get(row, "token")?),
        token_issued_at: opt_ts(get(row, "token_issued_at")?)?,
        facebook_user: FacebookUser {
            id: FacebookUserId::new(user_id).map_err(invalid("facebook user id"))?,
            name: get(row, "facebook_user_name")?,
        },
        delivery_state,
        archived_at: opt_ts(get(row, "archived_at")?)?,
        created_at: from_ts(get(row, "created_at")?)?,
        updated_at: from_ts(get(row, "updated_at")?)?,
    })
}

fn lease_conflict(lease: &Lease) -> StoreError {
    StoreError::Conflict {
        what: format!(
            "lease on job {} (generation {}) is no longer held",
            lease.job_id, lease.generation
        ),
    }
}

type DbArguments = <Db as sqlx::Database>::Arguments;

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
    /// Wraps an open pool (the schema is not checked).
    pub fn from_pool(pool: DbPool) -> Self {
        SqlStore { pool }
    }

    /// The connection pool.
    pub fn pool(&self) -> &DbPool {
        &self.pool
    }

    /// Applies this binary's pending migrations. Refuses (with
    /// [`StoreError::SchemaTooNew`]) a database migrated by a newer binary.
    pub async fn migrate(&self) -> StoreResult<SchemaStatus> {
        // check first so that a newer schema gets the clear error, not the migrator's own
        match self.schema_status().await {
            Ok(_) | Err(StoreError::SchemaBehind { .. }) => {}
            Err(other) => return Err(other),
        }
        MIGRATOR.run(&self.pool).await.map_err(|source| match source {
            sqlx::migrate::MigrateError::VersionMissing(version) => StoreError::SchemaTooNew {
                unknown: vec![version],
            },
            source => StoreError::Migrate { source },
        })?;
        self.schema_status().await
    }

    /// Compares the database's applied migrations with this binary's: `Ok` when they match,
    /// [`StoreError::SchemaTooNew`] / [`StoreError::SchemaBehind`] /
    /// [`StoreError::SchemaMismatch`] otherwise.
    pub async fn schema_status(&self) -> StoreResult<SchemaStatus> {
        let exists: Option<i64> = sqlx::query_scalar(MIGRATIONS_TABLE_EXISTS)
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::query("read schema version"))?;
        let applied: Vec<(i64, Vec<u8>, bool)> = if exists.is_some() {
            sqlx::query_as("SELECT version, checksum, success FROM _sqlx_migrations ORDER BY version")
                .fetch_all(&self.pool)
                .await
                .map_err(StoreError::query("read schema version"))?
        } else {
            Vec::new()
        };
        crate::schema::compare(&MIGRATOR, &applied)
    }

    /// Whether the database answers (readiness).
    pub async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(StoreError::query("ping"))
    }

    /// Closes the pool, waiting for connections in use to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The query plan of the claim query, to check that it reads the partial index.
    pub async fn explain_claim(&self) -> StoreResult<String> {
        let now = ts(OffsetDateTime::now_utc());
        self.explain(CLAIM_SELECT, Some(now), "explain claim").await
    }

    /// The query plan of the statistics query, to check that it reads no finished job.
    pub async fn explain_stats(&self) -> StoreResult<String> {
        self.explain(STATS_SELECT, None, "explain stats").await
    }

    /// The plan of `statement`, whose one parameter (if any) is the time `now`.
    async fn explain(
        &self,
        statement: &str,
        now: Option<Ts>,
        operation: &'static str,
    ) -> StoreResult<String> {
        let query = sqlx::query(sqlx::AssertSqlSafe(format!("{EXPLAIN} {statement}")));
        let query = match now {
            Some(now) => query.bind(now),
            None => query,
        };
        let rows = query
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::query(operation))?;
        rows.iter()
            .map(plan_line)
            .collect::<StoreResult<Vec<_>>>()
            .map(|lines| lines.join("\n"))
    }

    async fn fetch_job(&self, id: JobId) -> StoreResult<Option<JobRow>> {
        let row = sqlx::query(concat!("SELECT ", job_columns!(), " FROM jobs WHERE id = $1"))
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

    async fn record_event_inner(
        &self,
        revision: Revision,
        command: Option<NewCommand>,
        now: OffsetDateTime,
    ) -> StoreResult<RecordOutcome> {
        let rev = revision_to_db(revision)?;
        let mut tx = begin_write(&self.pool)
            .await
            .map_err(StoreError::query("begin record event"))?;
        let recorded_command = command.is_some();
        if let Some(command) = command {
            if command.revision != revision {
                return Err(StoreError::Conflict {
                    what: format!(
                        "command revision {} differs from event revision {revision}",
                        command.revision
                    ),
                });
            }
            let profile_id = command.settings_id.profile_id();
            let inserted = sqlx::query(
                "INSERT INTO commands (revision, event, settings_id, profile_id, created_at, \
                 updated_at) VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (revision) DO NOTHING",
            )
            .bind(rev)
            .bind(Json(&command.event))
            .bind(command.settings_id.to_string())
            .bind(profile_id.0)
            .bind(ts(now))
            .execute(&mut *tx)
            .await
            .map_err(StoreError::query("record command"))?
            .rows_affected();
            if inserted == 0 {
                tx.rollback()
                    .await
                    .map_err(StoreError::query("end record event"))?;
                return Ok(RecordOutcome::AlreadyRecorded);
            }
            for (position, job) in command.jobs.iter().enumerate() {
                let position = i32::try_from(position).map_err(|_| StoreError::OutOfRange {
                    what: "files per command",
                    value: position as u64,
                })?;
                sqlx::query(
                    "INSERT INTO jobs (id, revision, position, profile_id, settings_id, file, \
                     status, attempts, max_attempts, run_at, due_at, lease_generation, counters, \
                     created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, \
                     CASE WHEN EXISTS (SELECT 1 FROM profiles p WHERE p.id = $4 \
                     AND p.delivery_state = 'needs_reauth') THEN 'paused' ELSE 'queued' END, \
                     0, $7, $8, $8, 0, $9, $8, $8)",
                )
                .bind(job.id.0)
                .bind(rev)
                .bind(position)
                .bind(profile_id.0)
                .bind(command.settings_id.to_string())
                .bind(Json(&job.file))
                .bind(u32_to_db("max attempts", job.max_attempts.max(1))?)
                .bind(ts(now))
                .bind(Json(DeliveryCounters::default()))
                .execute(&mut *tx)
                .await
                .map_err(StoreError::query("enqueue job"))?;
            }
        }
        let moved = sqlx::query(
            "INSERT INTO event_cursor (id, revision, updated_at) VALUES (1, $1, $2) \
             ON CONFLICT (id) DO UPDATE SET revision = excluded.revision, \
             updated_at = excluded.updated_at WHERE event_cursor.revision < excluded.revision",
        )
        .bind(rev)
        .bind(ts(now))
        .execute(&mut *tx)
        .await
        .map_err(StoreError::query("advance cursor"))?
        .rows_affected();
        tx.commit()
            .await
            .map_err(StoreError::query("commit record event"))?;
        // an event without a command is "recorded" when it moved the cursor; a command that
        // was inserted is recorded even when it is older than the cursor
        Ok(if moved == 0 && !recorded_command {
            RecordOutcome::AlreadyRecorded
        } else {
            RecordOutcome::Recorded
        })
    }
}

#[async_trait]
impl ProfileStore for SqlStore {
    async fn insert_profile(&self, profile: &StoredProfile) -> Result<()> {
        let (state, reason, since) = match &profile.delivery_state {
            DeliveryState::Ok => ("ok", None, None),
            DeliveryState::NeedsReauth { reason, since } => {
                ("needs_reauth", Some(reason.as_str()), Some(ts(*since)))
            }
        };
        sqlx::query(concat!(
            "INSERT INTO profiles (",
            profile_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
             $17, $18, $19)"
        ))
        .bind(profile.id.0)
        .bind(profile.company_id.0)
        .bind(profile.ad_account.id.as_str())
        .bind(profile.ad_account.name.as_str())
        .bind(profile.ad_account.business.as_ref().map(|b| b.id.as_str()))
        .bind(profile.ad_account.business.as_ref().map(|b| b.name.as_str()))
        .bind(profile.ad_account.user_accepted_custom_audience_tos)
        .bind(profile.audience.as_ref().map(|a| a.id.as_str()))
        .bind(profile.audience.as_ref().map(|a| a.name.as_str()))
        .bind(profile.token.0.as_str())
        .bind(profile.token_issued_at.map(ts))
        .bind(profile.facebook_user.id.as_str())
        .bind(profile.facebook_user.name.as_str())
        .bind(state)
        .bind(reason)
        .bind(since)
        .bind(profile.archived_at.map(ts))
        .bind(ts(profile.created_at))
        .bind(ts(profile.updated_at))
        .execute(&self.pool)
        .await
        .map_err(StoreError::query("insert profile"))?;
        Ok(())
    }

    async fn get_profile(&self, id: ProfileId) -> Result<Option<StoredProfile>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            profile_columns!(),
            " FROM profiles WHERE id = $1"
        ))
        .bind(id.0)
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::query("get profile"))?;
        Ok(row.as_ref().map(profile_from_row).transpose()?)
    }

    async fn list_profiles(&self, company_id: CompanyId) -> Result<Vec<StoredProfile>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            profile_columns!(),
            " FROM profiles WHERE company_id = $1 ORDER BY created_at, id"
        ))
        .bind(company_id.0)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query("list profiles"))?;
        Ok(rows
            .iter()
            .map(profile_from_row)
            .collect::<StoreResult<_>>()?)
    }

    async fn update_ad_account(&self, id: ProfileId, ad_account: &AdAccount) -> Result<()> {
        let updated = sqlx::query(
            "UPDATE profiles SET ad_account_id = $2, ad_account_name = $3, business_id = $4, \
             business_name = $5, custom_audience_tos_accepted = $6 WHERE id = $1",
        )
        .bind(id.0)
        .bind(ad_account.id.as_str())
        .bind(ad_account.name.as_str())
        .bind(ad_account.business.as_ref().map(|b| b.id.as_str()))
        .bind(ad_account.business.as_ref().map(|b| b.name.as_str()))
        .bind(ad_account.user_accepted_custom_audience_tos)
        .execute(&self.pool)
        .await
        .map_err(StoreError::query("update ad account"))?
        .rows_affected();
        if updated == 0 {
            return Err(profile_not_found(id).into());
        }
        Ok(())
    }

    async fn set_audience(&self, id: ProfileId, audience: Option<Audience>) -> Result<()> {
        let updated = sqlx::query(
            "UPDATE profiles SET audience_id = $2, audience_name = $3 WHERE id = $1",
        )
        .bind(id.0)
        .bind(audience.as_ref().map(|a| a.id.as_str()))
        .bind(audience.as_ref().map(|a| a.name.as_str()))
        .execute(&self.pool)
        .await
        .map_err(StoreError::query("set audience"))?
        .rows_affected();
        if updated == 0 {
            return Err(profile_not_found(id).into());
        }
        Ok(())
    }

    async fn mark_needs_reauth(
        &self,
        id: ProfileId,
        reason: &str,
        now: OffsetDateTime,
    ) -> Result<u64> {
        let mut tx = begin_write(&self.pool)
            .await
            .map_err(StoreError::query("begin mark needs reauth"))?;
        // the first reason and time are kept when the profile already needs re-authorisation
        let updated = sqlx::query(
            "UPDATE profiles SET \
             reauth_reason = CASE WHEN delivery_state = 'needs_reauth' THEN reauth_reason ELSE $2 END, \
             reauth_since = CASE WHEN delivery_state = 'needs_reauth' THEN reauth_since ELSE $3 END, \
             delivery_state = 'needs_reauth', updated_at = $3 WHERE id = $1",
        )
        .bind(id.0)
        .bind(reason)
        .bind(ts(now))
        .execute(&mut *tx)
        .await
        .map_err(StoreError::query("mark needs reauth"))?
        .rows_affected();
        if updated == 0 {
            return Err(profile_not_found(id).into());
        }
        // queued jobs, and running ones whose holder is gone (lease expired): those would
        // otherwise stay `running` until the profile is re-authorised
        let paused = sqlx::query(
            "UPDATE jobs SET status = 'paused', last_error = $2, lease_owner = NULL, \
             lease_expires_at = NULL, updated_at = $3 WHERE profile_id = $1 \
             AND (status = 'queued' OR (status = 'running' AND lease_expires_at <= $3))",
        )
        .bind(id.0)
        .bind(reason)
        .bind(ts(now))
        .execute(&mut *tx)
        .await
        .map_err(StoreError::query("pause profile jobs"))?
        .rows_affected();
        tx.commit()
            .await
            .map_err(StoreError::query("commit mark needs reauth"))?;
        Ok(paused)
    }

    async fn reauthorize(
        &self,
        id: ProfileId,
        token: &EncryptedToken,
        token_issued_at: Option<OffsetDateTime>,
        user: &FacebookUser,
        now: OffsetDateTime,
    ) -> Result<u64> {
        let mut tx = begin_write(&self.pool)
            .await
            .map_err(StoreError::query("begin reauthorize"))?;
        let updated = sqlx::query(
            "UPDATE profiles SET token = $2, token_issued_at = $3, facebook_user_id = $4, \
             facebook_user_name = $5, delivery_state = 'ok', reauth_reason = NULL, \
             reauth_since = NULL, updated_at = $6 WHERE id = $1",
        )
        .bind(id.0)
        .bind(token.0.as_str())
        .bind(token_issued_at.map(ts))
        .bind(user.id.as_str())
        .bind(user.name.as_str())
        .bind(ts(now))
        .execute(&mut *tx)
        .await
        .map_err(StoreError::query("reauthorize profile"))?
        .rows_affected();
        if updated == 0 {
            return Err(profile_not_found(id).into());
        }
        let resumed = sqlx::query(
            "UPDATE jobs SET status = 'queued', run_at = $2, due_at = $2, updated_at = $2 \
             WHERE profile_id = $1 AND status = 'paused'",
        )
        .bind(id.0)
        .bind(ts(now))
        .execute(&mut *tx)
        .await
        .map_err(StoreError::query("resume profile jobs"))?
        .rows_affected();
        tx.commit()
            .await
            .map_err(StoreError::query("commit reauthorize"))?;
        Ok(resumed)
    }

    async fn archive_profile(&self, id: ProfileId, now: OffsetDateTime) -> Result<bool> {
        let mut tx = begin_write(&self.pool)
            .await
            .map_err(StoreError::query("begin archive profile"))?;
        let updated = sqlx::query(
            "UPDATE profiles SET archived_at = $2, updated_at = $2 \
             WHERE id = $1 AND archived_at IS NULL",
        )
        .bind(id.0)
        .bind(ts(now))
        .execute(&mut *tx)
        .await
        .map_err(StoreError::query("archive profile"))?
        .rows_affected();
        if updated > 0 {
            sqlx::query(
                "UPDATE jobs SET status = 'failed', last_error = $2, lease_owner = NULL, \
                 lease_expires_at = NULL, updated_at = $3 \
                 WHERE profile_id = $1 AND status IN ('queued', 'paused')",
            )
            .bind(id.0)
            .bind(PROFILE_ARCHIVED)
            .bind(ts(now))
            .execute(&mut *tx)
            .await
            .map_err(StoreError::query("fail archived profile jobs"))?;
        }
        tx.commit()
            .await
            .map_err(StoreError::query("commit archive profile"))?;
        Ok(updated > 0)
    }
}

fn profile_not_found(id: ProfileId) -> StoreError {
    StoreError::NotFound {
        what: format!("profile {id}"),
    }
}

fn settings_from_row(id: SettingsId, row: &DbRow) -> StoreResult<Option<Settings>> {
    let audience_id: Option<String> = get(row, "audience_id")?;
    let Some(audience_id) = audience_id else {
        return Ok(None);
    };
    let created_at: Option<Ts> = get(row, "created_at")?;
    let updated_at = from_ts(get(row, "updated_at")?)?;
    Ok(Some(Settings {
        id,
        audience_id: AudienceId::parse(&audience_id)
            .map_err(|e| StoreError::corrupt("audience id")(Box::new(e)))?,
        created_at: opt_ts(created_at)?.unwrap_or(updated_at),
        updated_at,
    }))
}

#[async_trait]
impl SettingsStore for SqlStore {
    async fn get_settings(&self, id: SettingsId) -> Result<Option<Settings>> {
        let row = sqlx::query(
            "SELECT audience_id, created_at, updated_at FROM settings WHERE id = $1",
        )
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::query("get settings"))?;
        match row {
            Some(row) => Ok(settings_from_row(id, &row)?),
            None => Ok(None),
        }
    }

    async fn claim_settings(
        &self,
        id: SettingsId,
        owner: &WorkerId,
        ttl: Duration,
        now: OffsetDateTime,
    ) -> Result<SettingsClaim> {
        let until = add(now, ttl)?;
        let key = id.to_string();
        let mut tx = begin_write(&self.pool)
            .await
            .map_err(StoreError::query("begin claim settings"))?;
        // a new row is the claim; on PostgreSQL a concurrent insert of the same id waits for
        // the other transaction and then does nothing, so only one worker gets here first
        let inserted = sqlx::query(
            "INSERT INTO settings (id, profile_id, claim_owner, claim_until, updated_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING",
        )
        .bind(key.as_str())
        .bind(id.profile_id().0)
        .bind(owner.0.as_str())
        .bind(ts(until))
        .bind(ts(now))
        .execute(&mut *tx)
        .await
        .map_err(StoreError::query("claim settings"))?
        .rows_affected();
        if inserted == 1 {
            tx.commit()
                .await
                .map_err(StoreError::query("commit claim settings"))?;
            return Ok(SettingsClaim::Claimed);
        }
        let row = sqlx::query(SETTINGS_SELECT_FOR_UPDATE)
            .bind(key.as_str())
            .fetch_one(&mut *tx)
            .await
            .map_err(StoreError::query("read settings claim"))?;
        if let Some(existing) = settings_from_row(id, &row)? {
            tx.rollback()
                .await
                .map_err(StoreError::query("end claim settings"))?;
            return Ok(SettingsClaim::Existing(existing));
        }
        let holder: Option<String> = get(&row, "claim_owner")?;
        let held_until = opt_ts(get(&row, "claim_until")?)?;
        match (holder, held_until) {
            (Some(holder), Some(held_until)) if holder != owner.0 && held_until > now => {
                tx.rollback()
                    .await
                    .map_err(StoreError::query("end claim settings"))?;
                Ok(SettingsClaim::HeldByOther { until: held_until })
            }
            _ => {
                sqlx::query(
                    "UPDATE settings SET claim_owner = $2, claim_until = $3, updated_at = $4 \
                     WHERE id = $1",
                )
                .bind(key.as_str())
                .bind(owner.0.as_str())
                .bind(ts(until))
                .bind(ts(now))
                .execute(&mut *tx)
                .await
                .map_err(StoreError::query("claim settings"))?;
                tx.commit()
                    .await
                    .map_err(StoreError::query("commit claim settings"))?;
                Ok(SettingsClaim::Claimed)
            }
        }
    }

    async fn save_settings(
        &self,
        id: SettingsId,
        audience_id: &AudienceId,
        owner: &WorkerId,
        now: OffsetDateTime,
    ) -> Result<Settings> {
        let key = id.to_string();
        let mut tx = begin_write(&self.pool)
            .await
            .map_err(StoreError::query("begin save settings"))?;
        let row = sqlx::query(SETTINGS_SELECT_FOR_UPDATE)
            .bind(key.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(StoreError::query("read settings claim"))?;
        if let Some(row) = row {
            let holder: Option<String> = get(&row, "claim_owner")?;
            let held_until = opt_ts(get(&row, "claim_until")?)?;
            if let (Some(holder), Some(held_until)) = (holder, held_until)
                && holder != owner.0
                && held_until > now
            {
                return Err(StoreError::Conflict {
                    what: format!("settings {id} are being created by another worker"),
                }
                .into());
            }
        }
        let row = sqlx::query(
            "INSERT INTO settings (id, profile_id, audience_id, claim_owner, claim_until, \
             created_at, updated_at) VALUES ($1, $2, $3, NULL, NULL, $4, $4) \
             ON CONFLICT (id) DO UPDATE SET audience_id = excluded.audience_id, \
             claim_owner = NULL, claim_until = NULL, \
             created_at = COALESCE(settings.created_at, excluded.created_at), \
             updated_at = excluded.updated_at \
             RETURNING audience_id, created_at, updated_at",
        )
        .bind(key.as_str())
        .bind(id.profile_id().0)
        .bind(audience_id.as_str())
        .bind(ts(now))
        .fetch_one(&mut *tx)
        .await
        .map_err(StoreError::query("save settings"))?;
        let settings = settings_from_row(id, &row)?.ok_or_else(|| {
            StoreError::corrupt("settings")("saved settings have no audience".into())
        })?;
        tx.commit()
            .await
            .map_err(StoreError::query("commit save settings"))?;
        Ok(settings)
    }

    async fn release_settings(&self, id: SettingsId, owner: &WorkerId) -> Result<()> {
        sqlx::query(
            "UPDATE settings SET claim_owner = NULL, claim_until = NULL \
             WHERE id = $1 AND claim_owner = $2",
        )
        .bind(id.to_string())
        .bind(owner.0.as_str())
        .execute(&self.pool)
        .await
        .map_err(StoreError::query("release settings"))?;
        Ok(())
    }
}

/// Columns of a command joined with its files (jobs), files in position order.
macro_rules! command_with_files {
    ($where:literal) => {
        concat!(
            "SELECT c.revision, c.event, c.settings_id, c.created_at AS c_created_at, \
             c.updated_at AS c_updated_at, j.id AS job_id, j.file, j.status, j.last_error, \
             j.counters, j.updated_at AS j_updated_at \
             FROM (SELECT revision, event, settings_id, created_at, updated_at FROM commands c ",
            $where,
            ") c LEFT JOIN jobs j ON j.revision = c.revision \
             ORDER BY c.revision DESC, j.position"
        )
    };
}

fn commands_from_rows(rows: &[DbRow]) -> StoreResult<Vec<Command>> {
    let mut commands: Vec<Command> = Vec::new();
    for row in rows {
        let revision = revision_from_db(get(row, "revision")?)?;
        if commands.last().is_none_or(|c| c.revision != revision) {
            let event: Json<DeliveryEvent> = get(row, "event")?;
            let settings_id: String = get(row, "settings_id")?;
            commands.push(Command {
                revision,
                event: event.0,
                settings_id: settings_id_from_db(&settings_id)?,
                files: Vec::new(),
                created_at: from_ts(get(row, "c_created_at")?)?,
                updated_at: from_ts(get(row, "c_updated_at")?)?,
            });
        }
        let job_id: Option<Uuid> = get(row, "job_id")?;
        let (Some(job_id), Some(command)) = (job_id, commands.last_mut()) else {
            continue;
        };
        let file: Json<FileRef> = get(row, "file")?;
        let status: String = get(row, "status")?;
        let last_error: Option<String> = get(row, "last_error")?;
        let counters: Json<DeliveryCounters> = get(row, "counters")?;
        let updated_at = from_ts(get(row, "j_updated_at")?)?;
        command.updated_at = command.updated_at.max(updated_at);
        command.files.push(CommandFile {
            file: file.0,
            status: file_status(job_status_from_db(&status)?, last_error.as_deref()),
            counters: counters.0,
            job_id: JobId(job_id),
        });
    }
    Ok(commands)
}

#[async_trait]
impl CommandStore for SqlStore {
    async fn cursor(&self) -> Result<Option<Revision>> {
        let value: Option<i64> =
            sqlx::query_scalar("SELECT revision FROM event_cursor WHERE id = 1")
                .fetch_optional(&self.pool)
                .await
                .map_err(StoreError::query("read cursor"))?;
        Ok(value.map(revision_from_db).transpose()?)
    }

    async fn record_event(
        &self,
        revision: Revision,
        command: Option<NewCommand>,
        now: OffsetDateTime,
    ) -> Result<RecordOutcome> {
        Ok(self.record_event_inner(revision, command, now).await?)
    }

    async fn get_command(&self, revision: Revision) -> Result<Option<Command>> {
        let rows = sqlx::query(command_with_files!("WHERE revision = $1"))
            .bind(revision_to_db(revision)?)
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::query("get command"))?;
        Ok(commands_from_rows(&rows)?.into_iter().next())
    }

    async fn list_commands(&self, filter: &CommandFilter) -> Result<Vec<Command>> {
        let rows = sqlx::query(command_with_files!(
            "WHERE ($1 IS NULL OR c.profile_id = $1) AND ($2 IS NULL OR c.revision < $2) \
             AND ($3 IS NULL OR EXISTS (SELECT 1 FROM jobs f WHERE f.revision = c.revision \
             AND (CASE WHEN f.status IN ('delivered', 'failed') THEN f.status \
             ELSE 'pending' END) = $3)) ORDER BY c.revision DESC LIMIT $4"
        ))
        .bind(filter.profile_id.map(|p| p.0))
        .bind(filter.before.map(revision_to_db).transpose()?)
        .bind(filter.file_status.as_deref())
        .bind(codec::limit(filter.limit))
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query("list commands"))?;
        Ok(commands_from_rows(&rows)?)
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
        lock_profile(&mut tx, LOCK_PROFILE_OF_JOB, lease.job_id.0, "lock profile of job").await?;
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
        lock_profile(&mut tx, LOCK_PROFILE_OF_JOB, lease.job_id.0, "lock profile of job").await?;
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
        lock_profile(&mut tx, LOCK_PROFILE_OF_REVISION, rev, "lock profile of command").await?;
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
