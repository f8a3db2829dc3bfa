//! The store type of one backend: its pool, the schema check and migrations, and (for tests)
//! query plans.

#[cfg(any(test, feature = "testkit"))]
use time::OffsetDateTime;

#[cfg(any(test, feature = "testkit"))]
use super::jobs::{CLAIM_CANDIDATES, CLAIM_PICK, NEXT_DUE, STATS_SELECT};
#[cfg(any(test, feature = "testkit"))]
use super::{Db, EXPLAIN, plan_line, rows::DbArguments, ts};
use super::{DbPool, MIGRATIONS_TABLE_EXISTS, MIGRATOR};
use crate::error::{StoreError, StoreResult};
use crate::schema::SchemaStatus;

/// The storage ports on this backend. Cheap to clone (a connection pool).
#[derive(Clone, Debug)]
pub struct SqlStore {
    pub(super) pool: DbPool,
}

impl SqlStore {
    /// Wraps an open pool (the schema is not checked).
    pub(crate) fn from_pool(pool: DbPool) -> Self {
        SqlStore { pool }
    }

    /// Applies this binary's pending migrations. Refuses (with
    /// [`StoreError::SchemaTooNew`]) a database migrated by a newer binary.
    pub async fn migrate(&self) -> StoreResult<SchemaStatus> {
        // check first so that a newer schema gets the clear error, not the migrator's own
        match self.schema_status().await {
            Ok(_) | Err(StoreError::SchemaBehind { .. }) => {}
            Err(other) => return Err(other),
        }
        MIGRATOR
            .run(&self.pool)
            .await
            .map_err(|source| match source {
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
            sqlx::query_as(
                "SELECT version, checksum, success FROM _sqlx_migrations ORDER BY version",
            )
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
}

/// Test hooks: the pool and query plans (feature `testkit`).
#[cfg(any(test, feature = "testkit"))]
impl SqlStore {
    /// The connection pool.
    pub fn pool(&self) -> &DbPool {
        &self.pool
    }

    /// The query plans of a claim (finding the profiles to serve, picking a job of the first,
    /// and when idle the next due time), to check that they read only the partial indexes of
    /// unfinished jobs.
    pub async fn explain_claim(&self) -> StoreResult<String> {
        let now = ts(OffsetDateTime::now_utc());
        let candidates = self
            .explain(CLAIM_CANDIDATES, |q| q.bind(now), "explain claim")
            .await?;
        let pick = self
            .explain(
                CLAIM_PICK,
                |q| q.bind(uuid::Uuid::nil()).bind(now),
                "explain claim",
            )
            .await?;
        let next_due = self
            .explain(NEXT_DUE, |q| q.bind(now), "explain claim")
            .await?;
        Ok(format!("{candidates}\n{pick}\n{next_due}"))
    }

    /// The query plan of the statistics query, to check that it reads no finished job.
    pub async fn explain_stats(&self) -> StoreResult<String> {
        self.explain(STATS_SELECT, |q| q, "explain stats").await
    }

    /// The plan of `statement` with the parameters `bind` gives it.
    async fn explain<'q>(
        &self,
        statement: &str,
        bind: impl FnOnce(
            sqlx::query::Query<'q, Db, DbArguments>,
        ) -> sqlx::query::Query<'q, Db, DbArguments>,
        operation: &'static str,
    ) -> StoreResult<String> {
        let query = bind(sqlx::query(sqlx::AssertSqlSafe(format!(
            "{EXPLAIN} {statement}"
        ))));
        let rows = query
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::query(operation))?;
        rows.iter()
            .map(plan_line)
            .collect::<StoreResult<Vec<_>>>()
            .map(|lines| lines.join("\n"))
    }
}
