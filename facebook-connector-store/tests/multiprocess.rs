//! Several OS processes claiming from one PostgreSQL database never process a job twice.
//!
//! The parent test fills a fresh database with jobs and starts this same test binary several
//! times, running only `child_worker` (an ignored test: it runs only when asked for). Every
//! child claims in a loop and, for each job, inserts the job id into `mp_active` (primary key:
//! a second concurrent holder would violate it), appends to `mp_done`, removes it from
//! `mp_active` and completes the job. The parent then checks every job was done exactly once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{TestDb, command, profile_id};
use facebook_connector_core::Error;
use facebook_connector_core::domain::{Claim, DeliveryCounters, Revision, WorkerId};
use facebook_connector_store::{Store, StoreOptions};
use time::OffsetDateTime;

const CHILD_ENV: &str = "FBC_MP_CHILD_URL";
const PROCESSES: usize = 4;
const COMMANDS: u64 = 20;
const FILES_PER_COMMAND: usize = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_processes_never_process_a_job_twice() {
    let db = TestDb::postgres().await;
    let pg = db.store.as_postgres().unwrap();
    sqlx::query("CREATE TABLE mp_active (job_id UUID PRIMARY KEY, worker TEXT NOT NULL)")
        .execute(pg.pool())
        .await
        .unwrap();
    sqlx::query("CREATE TABLE mp_done (job_id UUID NOT NULL, worker TEXT NOT NULL)")
        .execute(pg.pool())
        .await
        .unwrap();
    let past = OffsetDateTime::now_utc() - time::Duration::seconds(5);
    for rev in 0..COMMANDS {
        db.store
            .commands()
            .record_event(
                Revision(rev),
                Some(command(rev, profile_id(1), FILES_PER_COMMAND, 3)),
                past,
            )
            .await
            .unwrap();
    }

    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..PROCESSES)
        .map(|_| {
            Command::new(&exe)
                .args([
                    "child_worker",
                    "--ignored",
                    "--exact",
                    "--nocapture",
                    "--test-threads",
                    "1",
                ])
                .env(CHILD_ENV, &db.url)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let output = tokio::task::spawn_blocking(move || child.wait_with_output())
            .await
            .unwrap()
            .unwrap();
        assert!(
            output.status.success(),
            "child failed:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    let total = COMMANDS as i64 * FILES_PER_COMMAND as i64;
    let (done, distinct, workers): (i64, i64, i64) = sqlx::query_as(
        "SELECT COUNT(*), COUNT(DISTINCT job_id), COUNT(DISTINCT worker) FROM mp_done",
    )
    .fetch_one(pg.pool())
    .await
    .unwrap();
    assert_eq!(done, total, "every job processed once");
    assert_eq!(distinct, total, "no job processed twice");
    eprintln!("{total} jobs processed by {workers} processes");
    let stats = db.store.jobs().stats().await.unwrap();
    assert_eq!(stats.delivered, total as u64);
    assert_eq!((stats.queued, stats.running, stats.failed), (0, 0, 0));
    let max_attempts: i32 = sqlx::query_scalar("SELECT MAX(attempts) FROM jobs")
        .fetch_one(pg.pool())
        .await
        .unwrap();
    assert_eq!(max_attempts, 1, "no job was claimed twice");
}

/// The child process body, run only by the parent (`--ignored --exact`): on its own it has
/// no database to work on and fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a child process of several_processes_never_process_a_job_twice"]
async fn child_worker() {
    let url = std::env::var(CHILD_ENV)
        .expect("child_worker runs as a child of several_processes_never_process_a_job_twice");
    let options = StoreOptions {
        max_connections: Some(2),
        ..Default::default()
    };
    let store = Store::connect(&url, &options).await.unwrap();
    let pg = store.as_postgres().unwrap();
    let jobs = store.jobs();
    let me = WorkerId(format!("pid-{}", std::process::id()));
    loop {
        let now = OffsetDateTime::now_utc();
        let claimed = match jobs.claim(&me, Duration::from_secs(300), now).await {
            Ok(Claim::Job(claimed)) => claimed,
            // due work that other processes were claiming at the same moment
            Ok(Claim::Idle { next_due }) if next_due.is_some_and(|d| d <= now) => continue,
            Ok(Claim::Idle { .. }) => break,
            Err(Error::Transient { .. }) => continue,
            Err(e) => panic!("claim failed: {e:?}"),
        };
        sqlx::query("INSERT INTO mp_active (job_id, worker) VALUES ($1, $2)")
            .bind(claimed.job.id.0)
            .bind(&me.0)
            .execute(pg.pool())
            .await
            .expect("job is already being processed by another process");
        tokio::time::sleep(Duration::from_millis(2)).await;
        sqlx::query("INSERT INTO mp_done (job_id, worker) VALUES ($1, $2)")
            .bind(claimed.job.id.0)
            .bind(&me.0)
            .execute(pg.pool())
            .await
            .unwrap();
        sqlx::query("DELETE FROM mp_active WHERE job_id = $1")
            .bind(claimed.job.id.0)
            .execute(pg.pool())
            .await
            .unwrap();
        jobs.complete(
            &claimed.lease,
            &DeliveryCounters::default(),
            OffsetDateTime::now_utc(),
        )
        .await
        .unwrap();
    }
    store.close().await;
}
