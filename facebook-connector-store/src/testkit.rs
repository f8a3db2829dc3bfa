//! Test support for this crate and for the crates that test against a real database
//! (feature `testkit`): a fresh, uniquely named PostgreSQL database per test (dropped
//! afterwards, also when the test panics), or an SQLite file in a temporary directory.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sqlx::Connection as _;
use uuid::Uuid;

use crate::{Store, StoreOptions};

/// PostgreSQL server used by the tests; `DATABASE_URL` overrides it.
pub fn admin_url() -> String {
    std::env::var("DATABASE_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// `base` with its database name replaced by `name`.
pub fn with_database(base: &str, name: &str) -> String {
    let (without_query, query) = match base.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (base, None),
    };
    let scheme_end = without_query.find("://").map(|i| i + 3).unwrap_or(0);
    let host_part = match without_query[scheme_end..].find('/') {
        Some(slash) => &without_query[..scheme_end + slash],
        None => without_query,
    };
    match query {
        Some(q) => format!("{host_part}/{name}?{q}"),
        None => format!("{host_part}/{name}"),
    }
}

enum Cleanup {
    Postgres { admin: String, name: String },
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
}

/// A migrated store on its own database.
pub struct TestDb {
    /// The store on it.
    pub store: Store,
    /// Its URL (for binaries under test).
    pub url: String,
    cleanup: Option<Cleanup>,
}

impl TestDb {
    /// A fresh, migrated PostgreSQL database.
    pub async fn postgres() -> TestDb {
        let db = TestDb::postgres_empty().await;
        db.store.migrate().await.unwrap();
        db
    }

    /// A fresh PostgreSQL database without the schema.
    pub async fn postgres_empty() -> TestDb {
        let admin = admin_url();
        let name = format!("fbc_test_{}", Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
        let url = with_database(&admin, &name);
        let store = Store::open(&url, &StoreOptions::default()).await.unwrap();
        TestDb {
            store,
            url,
            cleanup: Some(Cleanup::Postgres { admin, name }),
        }
    }

    /// A fresh, migrated SQLite file.
    pub async fn sqlite() -> TestDb {
        let db = TestDb::sqlite_empty().await;
        db.store.migrate().await.unwrap();
        db
    }

    /// A fresh SQLite file without the schema.
    pub async fn sqlite_empty() -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("fbc.db").display());
        let store = Store::open(&url, &StoreOptions::default()).await.unwrap();
        TestDb {
            store,
            url,
            cleanup: Some(Cleanup::Sqlite(dir)),
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(Cleanup::Postgres { admin, name }) = self.cleanup.take() {
            // runs on its own thread and runtime: Drop cannot await, and this also works
            // while the test's runtime is unwinding from a panic
            let dropped = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(async move {
                    let mut conn = sqlx::PgConnection::connect(&admin).await.ok()?;
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut conn)
                    .await
                    .ok()
                })
            })
            .join();
            if !matches!(dropped, Ok(Some(_))) {
                eprintln!("warning: test database could not be dropped");
            }
        }
    }
}
