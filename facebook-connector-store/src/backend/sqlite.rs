//! The storage ports on SQLite: the embedded default, one file used by one process (possibly
//! many tasks). Every write runs in a `BEGIN IMMEDIATE` transaction, so writers queue on the
//! database lock (WAL mode, busy timeout) instead of failing on a lock upgrade.

use time::OffsetDateTime;

use crate::codec::{from_unix_micros, unix_micros};
use crate::error::StoreResult;

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

/// The row lock a claim takes on the job it picks: none, the immediate transaction already
/// serialises claimers.
macro_rules! claim_lock {
    () => {
        ""
    };
}

/// Forces a claim's walk over the profiles with unfinished jobs onto `jobs_profile_due_idx`:
/// left to itself SQLite prefers the covering `jobs_profile_status_idx`, whose entries of
/// finished jobs the walk would then step over one by one.
macro_rules! by_profile_due {
    () => {
        " INDEXED BY jobs_profile_due_idx"
    };
}

const SETTINGS_SELECT_FOR_UPDATE: &str = "SELECT audience_id, claim_owner, claim_until, \
     created_at, updated_at FROM settings WHERE id = $1";

/// Writers are serialised by the database lock already.
const LOCK_PROFILE_OF_JOB: Option<&str> = None;

const LOCK_PROFILE_OF_REVISION: Option<&str> = None;

const MIGRATIONS_TABLE_EXISTS: &str =
    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'";

/// Asks for a statement's query plan, one step a row.
#[cfg(any(test, feature = "testkit"))]
const EXPLAIN: &str = "EXPLAIN QUERY PLAN";

/// The text of one step of a query plan.
#[cfg(any(test, feature = "testkit"))]
fn plan_line(row: &DbRow) -> StoreResult<String> {
    rows::get(row, "detail")
}

/// This binary's SQLite migrations.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::time::Duration;

    use super::*;
    use crate::{Store, StoreOptions};

    fn is_busy(error: &sqlx::Error) -> bool {
        matches!(error, sqlx::Error::Database(db)
            if db.code().and_then(|c| c.parse::<i64>().ok()).is_some_and(|c| c & 0xff == 5))
    }

    /// sqlx's plain `begin()` issues a deferred `BEGIN`, which takes no lock until the first
    /// write and then fails (without waiting) when another writer committed since its first
    /// read. Every write transaction of this backend must hold the write lock from its start.
    #[tokio::test]
    async fn write_transactions_hold_the_write_lock_from_their_start() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        let options = StoreOptions {
            busy_timeout: Duration::ZERO,
            migrate: true,
            ..StoreOptions::default()
        };
        let store = Store::connect(&url, &options).await.unwrap();
        let lite = store.as_sqlite().unwrap();
        let mut other = lite.pool().acquire().await.unwrap();

        // control: a deferred transaction holds no lock, another writer may begin
        let deferred = lite.pool().begin().await.unwrap();
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut *other)
            .await
            .unwrap();
        sqlx::query("ROLLBACK").execute(&mut *other).await.unwrap();
        deferred.rollback().await.unwrap();

        // the backend's write transaction already holds the lock before any statement ran
        let write = begin_write(lite.pool()).await.unwrap();
        let refused = sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut *other)
            .await
            .unwrap_err();
        assert!(is_busy(&refused), "{refused:?}");
        write.rollback().await.unwrap();
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut *other)
            .await
            .unwrap();
        sqlx::query("ROLLBACK").execute(&mut *other).await.unwrap();
        drop(other);
        store.close().await;
    }

    #[tokio::test]
    async fn file_databases_use_wal_and_the_busy_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        let options = StoreOptions {
            busy_timeout: Duration::from_millis(1234),
            migrate: true,
            ..StoreOptions::default()
        };
        let store = Store::connect(&url, &options).await.unwrap();
        let lite = store.as_sqlite().unwrap();
        let mut conn = lite.pool().acquire().await.unwrap();
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        assert_eq!(mode, "wal");
        let timeout: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        assert_eq!(timeout, 1234);
        let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        assert_eq!(fk, 1);
        drop(conn);
        store.close().await;
    }
}
