//! Fresh databases for tests: a uniquely named PostgreSQL database (dropped afterwards, also
//! when the test panics) or an SQLite file in a temporary directory.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code, unused_macros)]

/// Generates one test per backend for each contract function `name(&TestDb)` of the including
/// test file (declare `#[macro_use] mod common;`).
macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = crate::common::TestDb::postgres().await;
                    super::$name(&db).await;
                    crate::common::assert_stats_match_rows(&db).await;
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = crate::common::TestDb::sqlite().await;
                    super::$name(&db).await;
                    crate::common::assert_stats_match_rows(&db).await;
                }
            )*
        }
    };
}

use std::time::Duration;

use facebook_connector_core::domain::{
    AdAccount, AdAccountId, Business, BusinessId, Checkpoint, Claim, ClaimedJob, CompanyId,
    DeliveryCounters, DeliveryEvent, DeliveryState, EncryptedToken, FacebookUser, FacebookUserId,
    FileName, FileRef, JobId, NewCommand, NewJob, ProfileId, QuickSettings, Revision, SettingsId,
    StoredProfile, TokenMeta, WorkerId,
};
use facebook_connector_core::ports::{CommandStore, JobQueue, RecordOutcome};
use time::OffsetDateTime;
use uuid::Uuid;

pub use facebook_connector_store::testkit::TestDb;

/// A fixed instant all tests count from (whole seconds, so both backends store it exactly).
pub fn t0() -> OffsetDateTime {
    time::macros::datetime!(2025-03-01 12:00:00 UTC)
}

pub fn at(seconds: i64) -> OffsetDateTime {
    t0() + time::Duration::seconds(seconds)
}

pub fn profile_id(n: u128) -> ProfileId {
    ProfileId(Uuid::from_u128(
        0x0b6d_9a50_0000_4a4e_9d7e_0000_0000_0000 + n,
    ))
}

pub fn profile(n: u128, company: i64, created: OffsetDateTime) -> StoredProfile {
    StoredProfile {
        id: profile_id(n),
        company_id: CompanyId(company),
        ad_account: AdAccount {
            id: AdAccountId::parse(&format!("act_{}", 1000 + n)).unwrap(),
            name: format!("account {n}"),
            business: Some(Business {
                id: BusinessId::new("77").unwrap(),
                name: "biz".into(),
            }),
            user_accepted_custom_audience_tos: true,
        },
        audience: None,
        token: EncryptedToken(format!("k1:ciphertext-{n}")),
        token_meta: TokenMeta {
            issued_at: Some(created),
            expires_at: Some(created + time::Duration::days(60)),
            data_access_expires_at: Some(created + time::Duration::days(90)),
            scopes: vec!["ads_management".into(), "business_management".into()],
        },
        facebook_user: FacebookUser {
            id: FacebookUserId::new("555").unwrap(),
            name: "Ann".into(),
        },
        delivery_state: DeliveryState::Ok,
        archived_at: None,
        created_at: created,
        updated_at: created,
    }
}

pub fn settings_id(profile: ProfileId, n: u128) -> SettingsId {
    SettingsId::Subscription {
        profile_id: profile,
        subscription_id: Uuid::from_u128(0x1e2d_0000_0000_4788_9aab_0000_0000_0000 + n).into(),
    }
}

/// A legacy delivery command for `profile` with `files` jobs (fresh v7 ids).
pub fn command(revision: u64, profile: ProfileId, files: usize, max_attempts: u32) -> NewCommand {
    let subscription_id = Uuid::from_u128(0x1e2d_0000_0000_4788_9aab_0000_0000_0000 + 1).into();
    NewCommand {
        revision: Revision(revision),
        event: DeliveryEvent::SubscriptionDelivery {
            profile_id: profile,
            subscription_id,
            transaction_batch_id: Uuid::from_u128(u128::from(revision)).into(),
            quick_settings: QuickSettings::default(),
        },
        settings_id: SettingsId::Subscription {
            profile_id: profile,
            subscription_id,
        },
        jobs: (0..files)
            .map(|i| NewJob {
                id: JobId::new_v7(),
                file: FileRef::Legacy {
                    revision: Revision(revision),
                    file: FileName::new(format!("part-{i:04}.jsonl")).unwrap(),
                },
                max_attempts,
            })
            .collect(),
    }
}

/// `stats()` agrees with a full count of the job rows (the finished counts come from a
/// trigger-maintained row, so every path that moves a job must keep it exact).
pub async fn assert_stats_match_rows(db: &TestDb) {
    const COUNT: &str = "SELECT status, COUNT(*) FROM jobs GROUP BY status";
    let rows: Vec<(String, i64)> = if let Some(pg) = db.store.as_postgres() {
        sqlx::query_as(COUNT).fetch_all(pg.pool()).await.unwrap()
    } else {
        let lite = db.store.as_sqlite().unwrap();
        sqlx::query_as(COUNT).fetch_all(lite.pool()).await.unwrap()
    };
    let count = |status: &str| {
        rows.iter()
            .find(|(s, _)| s == status)
            .map_or(0, |(_, n)| u64::try_from(*n).unwrap())
    };
    let stats = db.store.jobs().stats().await.unwrap();
    assert_eq!(
        (
            stats.queued,
            stats.running,
            stats.paused,
            stats.delivered,
            stats.failed
        ),
        (
            count("queued"),
            count("running"),
            count("paused"),
            count("delivered"),
            count("failed")
        ),
        "stats() disagrees with the job rows"
    );
}

/// Runs a statement on the test database, in its PostgreSQL or SQLite spelling.
pub async fn sqlx_exec(db: &TestDb, postgres: &'static str, sqlite: &'static str) {
    if let Some(pg) = db.store.as_postgres() {
        sqlx::query(postgres).execute(pg.pool()).await.unwrap();
    } else if let Some(lite) = db.store.as_sqlite() {
        sqlx::query(sqlite).execute(lite.pool()).await.unwrap();
    }
}

/// The JSON a job's `column` holds, as the database stores it.
pub async fn job_json(db: &TestDb, column: &str, job: JobId) -> serde_json::Value {
    let sql = format!("SELECT CAST({column} AS TEXT) FROM jobs WHERE id = $1");
    let text: Option<String> = if let Some(pg) = db.store.as_postgres() {
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(job.0)
            .fetch_one(pg.pool())
            .await
            .unwrap()
    } else {
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(job.0)
            .fetch_one(db.store.as_sqlite().unwrap().pool())
            .await
            .unwrap()
    };
    text.map_or(serde_json::Value::Null, |t| {
        serde_json::from_str(&t).unwrap()
    })
}

/// Overwrites a job's JSON `column` with `json`, behind the store's back (a row written by an
/// earlier release).
pub async fn set_job_json(db: &TestDb, column: &str, job: JobId, json: &str) {
    let value: serde_json::Value = serde_json::from_str(json).unwrap();
    let sql = format!("UPDATE jobs SET {column} = $1 WHERE id = $2");
    let updated = if let Some(pg) = db.store.as_postgres() {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(sqlx::types::Json(value))
            .bind(job.0)
            .execute(pg.pool())
            .await
            .unwrap()
            .rows_affected()
    } else {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(sqlx::types::Json(value))
            .bind(job.0)
            .execute(db.store.as_sqlite().unwrap().pool())
            .await
            .unwrap()
            .rows_affected()
    };
    assert_eq!(updated, 1);
}

/// The JSON of a command's event, as the database stores it.
pub async fn event_json(db: &TestDb, revision: Revision) -> serde_json::Value {
    let sql = "SELECT CAST(event AS TEXT) FROM commands WHERE revision = $1";
    let rev = i64::try_from(revision.0).unwrap();
    let text: String = if let Some(pg) = db.store.as_postgres() {
        sqlx::query_scalar(sql)
            .bind(rev)
            .fetch_one(pg.pool())
            .await
            .unwrap()
    } else {
        sqlx::query_scalar(sql)
            .bind(rev)
            .fetch_one(db.store.as_sqlite().unwrap().pool())
            .await
            .unwrap()
    };
    serde_json::from_str(&text).unwrap()
}

/// `literal` parsed, for comparing with what the database holds (key order aside).
pub fn json(literal: &str) -> serde_json::Value {
    serde_json::from_str(literal).unwrap()
}

/// The lease the contract tests claim with.
pub const LEASE: Duration = Duration::from_secs(30);

pub fn worker(name: &str) -> WorkerId {
    WorkerId(name.to_owned())
}

/// The job `name` claims at `now` under a [`LEASE`], if one is claimable.
pub async fn try_claim(jobs: &dyn JobQueue, name: &str, now: OffsetDateTime) -> Option<ClaimedJob> {
    match jobs.claim(&worker(name), LEASE, now).await.unwrap() {
        Claim::Job(claimed) => Some(*claimed),
        Claim::Idle { .. } => None,
    }
}

/// When the queue says the next job falls due, asked at `now`; nothing may be claimable.
pub async fn next_due(jobs: &dyn JobQueue, now: OffsetDateTime) -> Option<OffsetDateTime> {
    match jobs.claim(&worker("idle"), LEASE, now).await.unwrap() {
        Claim::Idle { next_due } => next_due,
        Claim::Job(claimed) => panic!("claimed {claimed:?}, expected an idle queue"),
    }
}

/// The job `name` claims at `now` under a [`LEASE`]; there must be one.
pub async fn claim(jobs: &dyn JobQueue, name: &str, now: OffsetDateTime) -> ClaimedJob {
    try_claim(jobs, name, now).await.unwrap()
}

/// Records `command` with its event (at the command's revision) at `now`.
pub async fn record(
    commands: &dyn CommandStore,
    command: NewCommand,
    now: OffsetDateTime,
) -> RecordOutcome {
    commands
        .record_event(command.revision, Some(command), now)
        .await
        .unwrap()
}

/// A checkpoint of the first session after `batches` acknowledged batches.
pub fn checkpoint(session_id: u64, batches: u32, counters: DeliveryCounters) -> Checkpoint {
    Checkpoint {
        session_id,
        batches_acknowledged: batches,
        counters,
        ..Checkpoint::default()
    }
}

pub fn counters(n: u64) -> DeliveryCounters {
    DeliveryCounters {
        records_read: n,
        rejected_lines: 1,
        unmatchable: 2,
        members_sent: n - 3,
        facebook_received: n - 3,
        facebook_invalid: 0,
    }
}
