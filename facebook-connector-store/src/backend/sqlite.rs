//! The storage ports on SQLite: the embedded default, one file used by one process (possibly
//! many tasks). Every write runs in a `BEGIN IMMEDIATE` transaction, so writers queue on the
//! database lock (WAL mode, busy timeout) instead of failing on a lock upgrade.

use crate::codec::{from_unix_micros, unix_micros};

type Db = sqlx::Sqlite;
type DbPool = sqlx::SqlitePool;
type DbRow = sqlx::sqlite::SqliteRow;
/// Times are INTEGER unix microseconds (UTC), which sort like the times themselves.
type Ts = i64;

fn ts(t: OffsetDateTime) -> Ts {
    unix_micros(t)
}

fn from_ts(value: Ts) -> StoreResult<OffsetDateTime> {
    from_unix_micros(value)
}

async fn begin_write(
    pool: &DbPool,
) -> std::result::Result<sqlx::Transaction<'static, Db>, sqlx::Error> {
    pool.begin_with("BEGIN IMMEDIATE").await
}

/// The oldest due job (queued and runnable, or running with an expired lease) of a profile
/// that does not need re-authorisation. Served by the partial index `jobs_claimable_idx`;
/// the immediate transaction makes select-then-update atomic.
const CLAIM_SELECT: &str = "SELECT j.id, j.status, j.attempts, j.max_attempts FROM jobs j \
     WHERE j.status IN ('queued', 'running') AND j.due_at <= $1 \
     AND NOT EXISTS (SELECT 1 FROM profiles p WHERE p.id = j.profile_id \
     AND p.delivery_state = 'needs_reauth') \
     ORDER BY j.due_at, j.id LIMIT 1";

const SETTINGS_SELECT_FOR_UPDATE: &str = "SELECT audience_id, claim_owner, claim_until, \
     created_at, updated_at FROM settings WHERE id = $1";

/// Writers are serialised by the database lock already.
const LOCK_PROFILE_OF_JOB: Option<&str> = None;

const MIGRATIONS_TABLE_EXISTS: &str =
    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'";

/// This binary's SQLite migrations.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

include!("shared.rs");

impl SqlStore {
    /// The query plan of the claim query (`EXPLAIN QUERY PLAN`), to check that it reads the
    /// partial index.
    pub async fn explain_claim(&self) -> StoreResult<String> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "EXPLAIN QUERY PLAN {CLAIM_SELECT}"
        )))
        .bind(ts(OffsetDateTime::now_utc()))
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query("explain claim"))?;
        rows.iter()
            .map(|row| get::<String>(row, "detail"))
            .collect::<StoreResult<Vec<_>>>()
            .map(|lines| lines.join("\n"))
    }
}
