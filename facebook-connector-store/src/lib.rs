//! The connector's storage: the core's storage ports ([`ProfileStore`], [`SettingsStore`],
//! [`CommandStore`], [`JobQueue`]) on PostgreSQL (scale-out: many workers share one database)
//! and SQLite (the embedded default: one file, one process), with one behaviour, plus the
//! token cipher ([`TokenKeyring`], AES-256-GCM).
//!
//! # Entry point
//! [`Store::connect`] picks the backend from the URL (`postgres://…`, `postgresql://…`,
//! `sqlite://path?mode=rwc`, `sqlite::memory:`), opens a pool and checks the schema: it refuses
//! a database migrated by a newer binary ([`StoreError::SchemaTooNew`]) and, unless
//! [`StoreOptions::migrate`] is set, one that still needs migrations
//! ([`StoreError::SchemaBehind`]). The `migrate` command of both binaries calls
//! [`migrate_database`] ([`Store::open`] then [`Store::migrate`]). The ports are handed out as `Arc<dyn …>`
//! ([`Store::profiles`], [`Store::settings`], [`Store::commands`], [`Store::jobs`]), all backed
//! by the same pool.
//!
//! # Schema
//! One migration folder per backend (`migrations/postgres`, `migrations/sqlite`), the same
//! tables: `profiles` (with what `debug_token` said about the stored token: issue and expiry
//! times, scopes), `settings`, `commands`, `jobs` (one per command file; the row is also the
//! file's status entry), `event_cursor`, `job_totals` and `ad_account_throttles`. File
//! references, counters, checkpoints, events and token scopes are stored as JSON in the serde
//! shape of the core's types; `tests/stored_json.rs` pins those shapes. Times are
//! `timestamptz` on PostgreSQL and INTEGER unix microseconds on SQLite; both keep
//! microseconds, so values read back are the values written truncated to the microsecond.
//!
//! # Queue
//! A job's `due_at` is when it next needs a worker: its `run_at` while queued, its lease expiry
//! while running. A job is runnable when it is `queued` or `running` with `due_at <= now`, its
//! profile does not need re-authorisation and the profile's ad account is not throttled. A job
//! whose profile has no row is runnable too (the engine fails it with a reason).
//!
//! **Fair claims.** A claim serves the profile with the fewest running jobs (live leases)
//! among the profiles with a runnable job, ties to the one whose runnable job is oldest, and
//! takes that profile's oldest due job: a profile with a thousand queued files gets one slot
//! while another profile's single file gets the next. The cost does not grow with the number
//! of jobs queued per profile nor with finished jobs: the claim walks the distinct profiles of
//! the partial index `jobs_profile_due_idx` (unfinished jobs only; one probe per profile with
//! unfinished jobs), reads each profile's running count from `jobs_running_idx` (running jobs
//! only), and picks the job from `jobs_profile_due_idx` again. On PostgreSQL the pick locks
//! the job `FOR UPDATE SKIP LOCKED`, so concurrent claimers never wait for nor take the same
//! job (a claimer that finds every candidate taken at that moment looks again, then answers
//! idle, due now); on SQLite claims run one at a time in their immediate transaction.
//!
//! **Idle.** When nothing is runnable, a claim answers [`Claim::Idle`] with the earliest of:
//! the due time of the next unfinished job still in the future (`jobs_claimable_idx`), and
//! the end of a live throttle that holds back a job due now. `None` means nothing is open.
//!
//! **Throttles.** [`JobQueue::throttle_ad_account`] keeps one row per ad account in
//! `ad_account_throttles`; a later `until` extends it, an earlier one never shortens it, and
//! rows whose time passed mean nothing (they are deleted by the next throttle call).
//!
//! **Leases.** Every claim counts an attempt and increments the job's `lease_generation`;
//! lease-checked operations match on (id, owner, generation, running), so a stale holder gets
//! [`Error::LeaseLost`](facebook_connector_core::Error::LeaseLost) and changes nothing, even
//! when it presents the same owner name as the current holder. `heartbeat` and `checkpoint`
//! extend the lease in the same statement (the checkpoint also copies its counters to the
//! file's entry) and return a [`Renewal`] with the state of the job's profile (`Active`,
//! `NeedsReauth`, `Archived` when archived, `Unknown` without a profile row) so the holder
//! stops when it must. A lease that expired but was not taken over is still the current one.
//!
//! **Releases.** `retry_at` keeps the attempt (and fails the job when none is left); `defer`
//! (a rate limit, or a job handed back at shutdown) and `pause` give back the attempt the job
//! was claimed with and never fail it. A job released while its profile needs
//! re-authorisation, or requeued by an operator meanwhile, waits `paused`, so claims never
//! have to step over it; `mark_needs_reauth` also pauses the profile's running jobs whose
//! lease already expired (their holder is gone). A running job whose lease expires later stays
//! `running`, unclaimable, until the profile is re-authorised.
//!
//! # Statistics
//! `stats()` does not grow with finished jobs: the unfinished states are counted from the
//! partial index `jobs_open_status_idx`, and the delivered/failed numbers come from the
//! `job_totals` row, kept exact by triggers on every insert, update and delete of `jobs`
//! (statement-level on PostgreSQL, one update per statement however many jobs it moved).
//!
//! # Transactions
//! Every method is one transaction. On SQLite every multi-statement method starts with
//! `BEGIN IMMEDIATE` (sqlx's `begin()` would issue a deferred `BEGIN`, whose later lock upgrade
//! fails at once, without the busy timeout, when another writer committed in between); the
//! single-statement ones take the write lock with their statement. On PostgreSQL
//! (`READ COMMITTED`), claims lock their row with `FOR UPDATE SKIP LOCKED`, and the operations
//! that release jobs of a profile lock the profile row `FOR SHARE` first, so they serialise
//! with `mark_needs_reauth` / `reauthorize`. Lock order is always profile, then jobs, then
//! `job_totals`, so these transactions cannot deadlock one another. Claims lock only the job
//! they pick.
//!
//! # Errors
//! Every port method returns the core's [`Error`](facebook_connector_core::Error): a lost
//! lease is `LeaseLost`, a settings claim another worker holds is `Busy` (with the time left
//! on it), a taken unique key (a profile id, a job id) is `AlreadyExists`, a command whose
//! revision differs from its event's is `Invariant`; connection loss, pool timeouts,
//! serialization failures, deadlocks and SQLite's `database is locked` are `Transient`; any
//! other database failure is `Storage`.
//!
//! # Test hooks
//! With the `testkit` feature, `Store::as_postgres` / `Store::as_sqlite` give the backend
//! store with its pool and the query plans of the claim and statistics queries.

mod backend;
mod cipher;
mod codec;
mod error;
mod schema;
#[cfg(feature = "testkit")]
pub mod testkit;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

#[cfg(doc)]
use facebook_connector_core::domain::{Claim, Renewal};
use facebook_connector_core::ports::{CommandStore, JobQueue, ProfileStore, SettingsStore};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

#[cfg(any(test, feature = "testkit"))]
pub use backend::postgres::SqlStore as PgStore;
#[cfg(any(test, feature = "testkit"))]
pub use backend::sqlite::SqlStore as SqliteStore;
#[cfg(not(any(test, feature = "testkit")))]
use backend::{postgres::SqlStore as PgStore, sqlite::SqlStore as SqliteStore};
pub use cipher::TokenKeyring;
pub use error::{StoreError, StoreResult};
pub use schema::SchemaStatus;

/// Which database a [`Store`] runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// PostgreSQL (scale-out).
    Postgres,
    /// SQLite (embedded).
    Sqlite,
}

impl Backend {
    /// The backend a URL names, from its scheme.
    pub fn from_url(url: &str) -> StoreResult<Backend> {
        let scheme = url.split(':').next().unwrap_or_default();
        match scheme {
            "postgres" | "postgresql" => Ok(Backend::Postgres),
            "sqlite" => Ok(Backend::Sqlite),
            other => Err(StoreError::UnsupportedUrl {
                scheme: other.chars().take(32).collect(),
            }),
        }
    }

    /// `postgres` or `sqlite`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Backend::Postgres => "postgres",
            Backend::Sqlite => "sqlite",
        }
    }
}

/// Connection settings.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// Pool size (default: 10 on PostgreSQL, 4 on an SQLite file, 1 for `sqlite::memory:`).
    pub max_connections: Option<u32>,
    /// How long to wait for a pooled connection before a transient error.
    pub acquire_timeout: Duration,
    /// SQLite: how long a writer waits for the database lock before a transient error.
    pub busy_timeout: Duration,
    /// Apply pending migrations in [`Store::connect`] instead of refusing to start.
    pub migrate: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            max_connections: None,
            acquire_timeout: Duration::from_secs(10),
            busy_timeout: Duration::from_secs(10),
            migrate: false,
        }
    }
}

#[derive(Clone, Debug)]
enum Inner {
    Postgres(Arc<PgStore>),
    Sqlite(Arc<SqliteStore>),
}

/// The storage the binaries use: one pool on either backend, exposing the ports.
#[derive(Clone, Debug)]
pub struct Store {
    inner: Inner,
}

impl Store {
    /// Opens a pool on the database `url` names and checks its schema (see the crate docs).
    pub async fn connect(url: &str, options: &StoreOptions) -> StoreResult<Store> {
        let store = Store::open(url, options).await?;
        let checked = if options.migrate {
            store.migrate().await
        } else {
            store.schema_status().await
        };
        match checked {
            Ok(status) => {
                tracing::info!(
                    backend = store.backend().as_str(),
                    schema_version = ?status.version(),
                    "storage ready"
                );
                Ok(store)
            }
            Err(error) => {
                store.close().await;
                Err(error)
            }
        }
    }

    /// Opens a pool without looking at the schema (for the `migrate` command).
    pub async fn open(url: &str, options: &StoreOptions) -> StoreResult<Store> {
        let backend = Backend::from_url(url)?;
        let connect_error = |source| StoreError::Connect {
            backend: backend.as_str(),
            source,
        };
        let inner = match backend {
            Backend::Postgres => {
                let connect = PgConnectOptions::from_str(url).map_err(connect_error)?;
                let pool = PgPoolOptions::new()
                    .max_connections(options.max_connections.unwrap_or(10))
                    .acquire_timeout(options.acquire_timeout)
                    .connect_with(connect)
                    .await
                    .map_err(connect_error)?;
                Inner::Postgres(Arc::new(PgStore::from_pool(pool)))
            }
            Backend::Sqlite => {
                let connect = SqliteConnectOptions::from_str(url)
                    .map_err(connect_error)?
                    .foreign_keys(true)
                    .busy_timeout(options.busy_timeout);
                let in_memory = url.contains(":memory:") || url.contains("mode=memory");
                let (connect, pool) = if in_memory {
                    // every connection to `:memory:` is its own database: keep exactly one,
                    // forever
                    (
                        connect,
                        SqlitePoolOptions::new()
                            .max_connections(1)
                            .min_connections(1)
                            .idle_timeout(None)
                            .max_lifetime(None),
                    )
                } else {
                    (
                        connect
                            .journal_mode(SqliteJournalMode::Wal)
                            .synchronous(SqliteSynchronous::Normal),
                        SqlitePoolOptions::new()
                            .max_connections(options.max_connections.unwrap_or(4)),
                    )
                };
                let pool = pool
                    .acquire_timeout(options.acquire_timeout)
                    .connect_with(connect)
                    .await
                    .map_err(connect_error)?;
                Inner::Sqlite(Arc::new(SqliteStore::from_pool(pool)))
            }
        };
        Ok(Store { inner })
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        match &self.inner {
            Inner::Postgres(_) => Backend::Postgres,
            Inner::Sqlite(_) => Backend::Sqlite,
        }
    }

    /// Applies pending migrations; refuses a newer schema. Safe to run from several processes
    /// at once on PostgreSQL (the migrator takes an advisory lock).
    pub async fn migrate(&self) -> StoreResult<SchemaStatus> {
        let status = match &self.inner {
            Inner::Postgres(s) => s.migrate().await,
            Inner::Sqlite(s) => s.migrate().await,
        }?;
        tracing::info!(
            backend = self.backend().as_str(),
            schema_version = ?status.version(),
            "database schema is up to date"
        );
        Ok(status)
    }

    /// `Ok` when the database schema is exactly this binary's; otherwise
    /// [`StoreError::SchemaTooNew`], [`StoreError::SchemaBehind`] or
    /// [`StoreError::SchemaMismatch`].
    pub async fn schema_status(&self) -> StoreResult<SchemaStatus> {
        match &self.inner {
            Inner::Postgres(s) => s.schema_status().await,
            Inner::Sqlite(s) => s.schema_status().await,
        }
    }

    /// Whether the database answers (readiness probe).
    pub async fn ping(&self) -> StoreResult<()> {
        match &self.inner {
            Inner::Postgres(s) => s.ping().await,
            Inner::Sqlite(s) => s.ping().await,
        }
    }

    /// Closes the pool.
    pub async fn close(&self) {
        match &self.inner {
            Inner::Postgres(s) => s.close().await,
            Inner::Sqlite(s) => s.close().await,
        }
    }

    /// Profiles and their tokens.
    pub fn profiles(&self) -> Arc<dyn ProfileStore> {
        match &self.inner {
            Inner::Postgres(s) => s.clone(),
            Inner::Sqlite(s) => s.clone(),
        }
    }

    /// Per-target settings.
    pub fn settings(&self) -> Arc<dyn SettingsStore> {
        match &self.inner {
            Inner::Postgres(s) => s.clone(),
            Inner::Sqlite(s) => s.clone(),
        }
    }

    /// Commands and the revision cursor.
    pub fn commands(&self) -> Arc<dyn CommandStore> {
        match &self.inner {
            Inner::Postgres(s) => s.clone(),
            Inner::Sqlite(s) => s.clone(),
        }
    }

    /// The job queue.
    pub fn jobs(&self) -> Arc<dyn JobQueue> {
        match &self.inner {
            Inner::Postgres(s) => s.clone(),
            Inner::Sqlite(s) => s.clone(),
        }
    }

    /// The PostgreSQL store, when that is the backend (feature `testkit`).
    #[cfg(any(test, feature = "testkit"))]
    pub fn as_postgres(&self) -> Option<&PgStore> {
        match &self.inner {
            Inner::Postgres(s) => Some(s),
            Inner::Sqlite(_) => None,
        }
    }

    /// The SQLite store, when that is the backend (feature `testkit`).
    #[cfg(any(test, feature = "testkit"))]
    pub fn as_sqlite(&self) -> Option<&SqliteStore> {
        match &self.inner {
            Inner::Postgres(_) => None,
            Inner::Sqlite(s) => Some(s),
        }
    }
}

/// The `migrate` command of both binaries: opens the database `url` names, applies this
/// binary's pending migrations (refusing, with [`StoreError::SchemaTooNew`], a database
/// migrated by a newer binary) and closes the pool. Safe to run again and from several
/// processes at once.
pub async fn migrate_database(url: &str, options: &StoreOptions) -> StoreResult<SchemaStatus> {
    let store = Store::open(url, options).await?;
    let status = store.migrate().await;
    store.close().await;
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_comes_from_the_url_scheme() {
        for (url, backend) in [
            ("postgres://u:secret@h/db", Backend::Postgres),
            ("postgresql://h/db", Backend::Postgres),
            ("sqlite::memory:", Backend::Sqlite),
            ("sqlite://data/fbc.db?mode=rwc", Backend::Sqlite),
        ] {
            assert_eq!(Backend::from_url(url).ok(), Some(backend), "{url}");
        }
        let err = Backend::from_url("mysql://u:secret@h/db").err();
        let text = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(text.contains("mysql") && !text.contains("secret"), "{text}");
    }
}
