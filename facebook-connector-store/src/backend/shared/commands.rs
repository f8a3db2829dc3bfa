//! [`CommandStore`]: commands with their files, the revision cursor and recording an event.

use async_trait::async_trait;
use facebook_connector_core::Result;
use facebook_connector_core::domain::{
    Command, CommandFile, DeliveryCounters, DeliveryEvent, FileRef, JobId, NewCommand, Revision,
};
use facebook_connector_core::ports::{CommandFilter, CommandStore, RecordOutcome};
use sqlx::types::Json;
use time::OffsetDateTime;
use uuid::Uuid;

use super::jobs::lock_profile;
use super::rows::get;
use super::store::SqlStore;
use super::{DbRow, LOCK_PROFILE_OF_REVISION, begin_write, from_ts, ts};
use crate::codec::{
    self, file_status, job_status_from_db, revision_from_db, revision_to_db, settings_id_from_db,
    u32_from_db, u32_to_db,
};
use crate::error::{StoreError, StoreResult};

impl SqlStore {
    async fn record_event_inner(
        &self,
        revision: Revision,
        command: Option<NewCommand>,
        now: OffsetDateTime,
    ) -> StoreResult<RecordOutcome> {
        if let Some(command) = &command
            && command.revision != revision
        {
            return Err(StoreError::Invariant {
                what: format!(
                    "command revision {} differs from event revision {revision}",
                    command.revision
                ),
            });
        }
        let rev = revision_to_db(revision)?;
        let mut tx = begin_write(&self.pool)
            .await
            .map_err(StoreError::query("begin record event"))?;
        let recorded_command = command.is_some();
        if let Some(command) = command {
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
            // serialise with mark_needs_reauth / reauthorize of the profile (PostgreSQL): a job
            // inserted while the profile goes needs_reauth would otherwise be `queued` for a
            // profile no claim serves (mark_needs_reauth's pause does not see the uncommitted
            // insert, and the insert's check does not see the uncommitted state), and one
            // inserted during reauthorize would stay `paused` after it
            lock_profile(
                &mut tx,
                LOCK_PROFILE_OF_REVISION,
                rev,
                "lock profile of command",
            )
            .await?;
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
                .map_err(StoreError::unique("enqueue job", || {
                    format!("job {}", job.id)
                }))?;
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

/// Columns of a command joined with its files (jobs), files in position order.
macro_rules! command_with_files {
    ($where:literal) => {
        concat!(
            "SELECT c.revision, c.event, c.settings_id, c.created_at AS c_created_at, \
             c.updated_at AS c_updated_at, j.id AS job_id, j.file, j.status, j.last_error, \
             j.attempts, j.counters, j.updated_at AS j_updated_at, \
             p.delivery_state, p.reauth_reason \
             FROM (SELECT revision, event, settings_id, created_at, updated_at FROM commands c ",
            $where,
            ") c LEFT JOIN jobs j ON j.revision = c.revision \
             LEFT JOIN profiles p ON p.id = j.profile_id \
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
        let delivery_state: Option<String> = get(row, "delivery_state")?;
        let reauth_reason: Option<String> = get(row, "reauth_reason")?;
        let reauth =
            (delivery_state.as_deref() == Some("needs_reauth")).then_some(reauth_reason.as_deref());
        command.updated_at = command.updated_at.max(updated_at);
        command.files.push(CommandFile {
            file: file.0,
            status: file_status(job_status_from_db(&status)?, last_error.as_deref(), reauth),
            counters: counters.0,
            job_id: JobId(job_id),
            attempts: u32_from_db("attempts", get(row, "attempts")?)?,
            last_error,
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
             WHEN f.status = 'paused' OR EXISTS (SELECT 1 FROM profiles fp \
             WHERE fp.id = f.profile_id AND fp.delivery_state = 'needs_reauth') THEN 'paused' \
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
