//! How long a claim takes with a large queue: `cargo test -p facebook-connector-store --test
//! claim_latency -- --ignored --nocapture` (a measurement, not a check: timings on a shared
//! machine are not asserted). Each scenario fills a fresh database with queued jobs spread over
//! profiles, 50,000 finished jobs and a few running ones, then times claims that take a job
//! (each is completed right away, as a worker would eventually) and claims that find nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{TestDb, at, command, counters, profile, profile_id, record};
use facebook_connector_core::domain::{Claim, WorkerId};

const FINISHED: usize = 50_000;
const RUNNING: usize = 20;
const CLAIMS: usize = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; run it with --ignored --nocapture"]
async fn claim_latency_postgres() {
    for (profiles, per_profile) in [(100, 100), (1_000, 10)] {
        measure(TestDb::postgres().await, profiles, per_profile).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; run it with --ignored --nocapture"]
async fn claim_latency_sqlite() {
    for (profiles, per_profile) in [(100, 100), (1_000, 10)] {
        measure(TestDb::sqlite().await, profiles, per_profile).await;
    }
}

async fn measure(db: TestDb, profiles: usize, per_profile: usize) {
    let (store_profiles, commands, jobs) =
        (db.store.profiles(), db.store.commands(), db.store.jobs());
    for p in 0..profiles {
        store_profiles
            .insert_profile(&profile(p as u128, 7, at(0)))
            .await
            .unwrap();
    }
    // the first profile's finished jobs: one command, copied by SQL below
    record(&*commands, command(0, profile_id(0), 1, 3), at(0)).await;
    common::sqlx_exec(
        &db,
        "INSERT INTO jobs (id, revision, position, profile_id, settings_id, file, status, \
         attempts, max_attempts, run_at, due_at, lease_generation, counters, created_at, \
         updated_at) SELECT gen_random_uuid(), 0, g, j.profile_id, j.settings_id, j.file, \
         'delivered', 1, 3, j.run_at, j.due_at, 1, j.counters, j.created_at, j.updated_at \
         FROM generate_series(1, 50000) g, (SELECT * FROM jobs LIMIT 1) j",
        "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 50000) \
         INSERT INTO jobs (id, revision, position, profile_id, settings_id, file, status, \
         attempts, max_attempts, run_at, due_at, lease_generation, counters, created_at, \
         updated_at) SELECT randomblob(16), 0, g.n, j.profile_id, j.settings_id, j.file, \
         'delivered', 1, 3, j.run_at, j.due_at, 1, j.counters, j.created_at, j.updated_at \
         FROM g, (SELECT * FROM jobs LIMIT 1) j",
    )
    .await;
    let filled = Instant::now();
    for p in 0..profiles {
        // one command per profile, all files queued at the same time
        record(
            &*commands,
            command(p as u64 + 1, profile_id(p as u128), per_profile, 3),
            at(p as i64 % 60),
        )
        .await;
    }
    common::sqlx_exec(&db, "ANALYZE", "ANALYZE").await;
    let fill = filled.elapsed();
    // a few jobs are running on other workers
    let me = WorkerId("bench".into());
    let lease = Duration::from_secs(600);
    for _ in 0..RUNNING {
        assert!(matches!(
            jobs.claim(&me, lease, at(100)).await.unwrap(),
            Claim::Job(_)
        ));
    }

    let mut taken = Vec::with_capacity(CLAIMS);
    for _ in 0..CLAIMS {
        let started = Instant::now();
        let claim = jobs.claim(&me, lease, at(100)).await.unwrap();
        taken.push(started.elapsed());
        let Claim::Job(claimed) = claim else {
            panic!("nothing to claim")
        };
        jobs.complete(&claimed.lease, &counters(5), at(101))
            .await
            .unwrap();
    }
    // an idle claim: everything is due later
    let mut idle = Vec::with_capacity(50);
    for _ in 0..50 {
        let started = Instant::now();
        let claim = jobs.claim(&me, lease, at(-100)).await.unwrap();
        idle.push(started.elapsed());
        assert!(matches!(claim, Claim::Idle { next_due: Some(_) }));
    }
    println!(
        "{:?}: {} queued jobs over {profiles} profiles ({fill:.1?} to record), {FINISHED} \
         finished, {RUNNING} running: claim {} | idle claim {}",
        db.store.backend(),
        profiles * per_profile,
        summary(&mut taken),
        summary(&mut idle),
    );
}

fn summary(samples: &mut [Duration]) -> String {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
    format!(
        "p50 {:.2?}, p90 {:.2?}, p99 {:.2?}, max {:.2?}",
        at(0.5),
        at(0.9),
        at(0.99),
        samples[samples.len() - 1]
    )
}
