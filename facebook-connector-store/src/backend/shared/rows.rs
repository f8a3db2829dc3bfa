//! Decoding rows into domain values, shared by the ports of one backend.

use facebook_connector_core::domain::{Checkpoint, FileRef, Job, JobId, ProfileId};
use sqlx::Row as _;
use sqlx::types::Json;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Db, DbRow, Ts, from_ts};
use crate::codec::{
    job_status_from_db, revision_from_db, settings_id_from_db, u32_from_db, u64_from_db,
};
use crate::error::{StoreError, StoreResult};

macro_rules! job_columns {
    () => {
        "id, revision, position, profile_id, settings_id, file, status, attempts, max_attempts, \
         run_at, lease_owner, lease_generation, lease_expires_at, checkpoint, counters, \
         last_error, created_at, updated_at"
    };
}

/// A job row with the lease columns the domain [`Job`] does not carry.
pub(super) struct JobRow {
    pub(super) job: Job,
    pub(super) lease_generation: u64,
    pub(super) lease_expires_at: Option<OffsetDateTime>,
}

pub(super) fn opt_ts(value: Option<Ts>) -> StoreResult<Option<OffsetDateTime>> {
    value.map(from_ts).transpose()
}

pub(super) fn get<'r, T>(row: &'r DbRow, column: &'static str) -> StoreResult<T>
where
    T: sqlx::Decode<'r, Db> + sqlx::Type<Db>,
{
    row.try_get(column).map_err(|source| StoreError::Query {
        operation: column,
        source,
    })
}

pub(super) fn job_from_row(row: &DbRow) -> StoreResult<JobRow> {
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

pub(super) type DbArguments = <Db as sqlx::Database>::Arguments;
