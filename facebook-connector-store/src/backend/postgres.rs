//! The storage ports on PostgreSQL: many workers (processes) on one database. Claims use
//! `FOR UPDATE SKIP LOCKED`, so concurrent claimers never wait for nor take the same job.

use time::{OffsetDateTime, UtcOffset};

use crate::codec::truncate_micros;
use crate::error::StoreResult;

type Db = sqlx::Postgres;
type DbPool = sqlx::PgPool;
type DbRow = sqlx::postgres::PgRow;
/// Times are `timestamptz`.
type Ts = OffsetDateTime;

fn ts(t: OffsetDateTime) -> Ts {
    truncate_micros(t)
}

#[allow(clippy::unnecessary_wraps)]
fn from_ts(value: Ts) -> StoreResult<OffsetDateTime> {
    Ok(value.to_offset(UtcOffset::UTC))
}

async fn begin_write(
    pool: &DbPool,
) -> std::result::Result<sqlx::Transaction<'static, Db>, sqlx::Error> {
    pool.begin().await
}

/// The row lock a claim takes on the job it picks: concurrent claimers skip a job another one
/// holds instead of waiting for it (and never take the same job).
macro_rules! claim_lock {
    () => {
        " FOR UPDATE SKIP LOCKED"
    };
}

/// Forces a claim's walk over the profiles with unfinished jobs onto `jobs_profile_due_idx`:
/// PostgreSQL's planner already prefers the partial index, nothing to add.
macro_rules! by_profile_due {
    () => {
        ""
    };
}

const SETTINGS_SELECT_FOR_UPDATE: &str = "SELECT audience_id, claim_owner, claim_until, \
     created_at, updated_at FROM settings WHERE id = $1 FOR UPDATE";

const LOCK_PROFILE_OF_JOB: Option<&str> =
    Some("SELECT 1 FROM profiles WHERE id = (SELECT profile_id FROM jobs WHERE id = $1) FOR SHARE");

const LOCK_PROFILE_OF_REVISION: Option<&str> = Some(
    "SELECT 1 FROM profiles WHERE id = (SELECT profile_id FROM commands WHERE revision = $1) \
     FOR SHARE",
);

const MIGRATIONS_TABLE_EXISTS: &str =
    "SELECT 1::int8 WHERE to_regclass('_sqlx_migrations') IS NOT NULL";

/// Asks for a statement's query plan, one line a row.
#[cfg(any(test, feature = "testkit"))]
const EXPLAIN: &str = "EXPLAIN";

/// The text of one line of a query plan.
#[cfg(any(test, feature = "testkit"))]
fn plan_line(row: &DbRow) -> StoreResult<String> {
    rows::get(row, "QUERY PLAN")
}

/// This binary's PostgreSQL migrations.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

// The ports, written once for both backends: every file below is also a module of the other
// backend (see `backend/mod.rs`), compiled against this module's items.
#[macro_use]
#[path = "shared/rows.rs"]
mod rows;
#[path = "shared/commands.rs"]
mod commands;
#[path = "shared/jobs.rs"]
mod jobs;
#[path = "shared/profiles.rs"]
mod profiles;
#[path = "shared/settings.rs"]
mod settings;
#[path = "shared/store.rs"]
mod store;

pub use store::SqlStore;
