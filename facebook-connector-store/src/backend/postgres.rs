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

/// The oldest due job (queued and runnable, or running with an expired lease) of a profile
/// that does not need re-authorisation. Served by the partial index `jobs_claimable_idx`.
const CLAIM_SELECT: &str = "SELECT j.id, j.status, j.attempts, j.max_attempts FROM jobs j \
     WHERE j.status IN ('queued', 'running') AND j.due_at <= $1 \
     AND NOT EXISTS (SELECT 1 FROM profiles p WHERE p.id = j.profile_id \
     AND p.delivery_state = 'needs_reauth') \
     ORDER BY j.due_at, j.id LIMIT 1 FOR UPDATE OF j SKIP LOCKED";

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
