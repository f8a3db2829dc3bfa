//! Independent check of the job queue under crashing worker processes on one PostgreSQL.
//!
//! The parent fills a fresh database with jobs, then keeps several OS processes (this test
//! binary again, running only `chaos_child`) working on it. Each child claims jobs and goes
//! through them batch by batch like the delivery engine: "send" a batch, checkpoint it,
//! heartbeat, sometimes release the job for a retry, and complete. Children crash on purpose
//! (exit without completing or releasing, so their leases must expire and the jobs be offered
//! again), and one child stalls past its lease like a frozen process and then tries to carry
//! on. Every step a child took successfully is written to audit tables right after the store
//! accepted it, and children only crash between recorded steps, so the audit is complete.
//!
//! The parent then checks, from the audit alone:
//! - every job was completed exactly once, by its last holder, and is `delivered`;
//! - lease generations of a job are 1, 2, 3… (no generation handed out twice) and each claim
//!   happened only after the previous holder's lease ended (its last successful expiry, or the
//!   time it released the job): never two live leases at once;
//! - a new holder resumes exactly after the last batch a previous holder checkpointed, so no
//!   acknowledged batch is sent twice;
//! - the job's `attempts` equals the number of claims;
//! - the stalled child's late calls were all refused once another worker held the job;
//! - jobs of a profile that needs re-authorisation were never claimed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{TestDb, command, profile, profile_id};
use facebook_connector_core::Error;
use facebook_connector_core::domain::{Checkpoint, Claim, DeliveryCounters, Revision, WorkerId};
use facebook_connector_store::{Store, StoreOptions};
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

const ROLE_ENV: &str = "FBC_CHAOS_URL";
const CHILD_INDEX_ENV: &str = "FBC_CHAOS_CHILD";
const DEADLINE_ENV: &str = "FBC_CHAOS_DEADLINE";

/// Worker processes alive at once.
const PROCESSES: usize = 4;
/// The first this many children crash (deterministically or at random); later ones never do,
/// so the run always finishes.
const CRASHY_CHILDREN: usize = 12;
const COMMANDS: u64 = 8;
const FILES_PER_COMMAND: usize = 6;
const BATCHES: u32 = 3;
/// Long enough that a child busy with a job on a loaded 2-core machine rarely loses it (when it
/// does, that is handled like any lost lease and checked the same way); every crash leaves a
/// job waiting this long.
const LEASE: Duration = Duration::from_secs(3);
/// How often an idle child looks for work at most.
const POLL: Duration = Duration::from_millis(50);
/// Exit code of a child that crashed on purpose.
const CRASHED: i32 = 3;
/// The whole run, children included: only a guard against a hang (a run takes 10-20 s).
const BUDGET: Duration = Duration::from_secs(180);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashing_worker_processes_deliver_every_job_exactly_once() {
    let db = TestDb::postgres().await;
    let pool = db.store.as_postgres().unwrap().pool().clone();
    for ddl in [
        "CREATE TABLE chaos_claims (job_id UUID NOT NULL, generation BIGINT NOT NULL, \
         worker TEXT NOT NULL, claimed_at TIMESTAMPTZ NOT NULL, expires_at TIMESTAMPTZ NOT NULL, \
         start_batch INTEGER NOT NULL, attempts INTEGER NOT NULL, \
         PRIMARY KEY (job_id, generation))",
        "CREATE TABLE chaos_ready (child INTEGER PRIMARY KEY)",
        "CREATE TABLE chaos_events (seq BIGSERIAL PRIMARY KEY, job_id UUID NOT NULL, \
         generation BIGINT NOT NULL, worker TEXT NOT NULL, kind TEXT NOT NULL, ok BOOLEAN NOT NULL, \
         batch INTEGER, at TIMESTAMPTZ)",
    ] {
        sqlx::query(ddl).execute(&pool).await.unwrap();
    }

    // a profile whose token stopped working: its jobs must never be handed out
    let blocked = profile(9, 1, common::t0());
    let profiles = db.store.profiles();
    profiles.insert_profile(&blocked).await.unwrap();
    profiles
        .mark_needs_reauth(blocked.id, "error 190", common::t0())
        .await
        .unwrap();
    let past = OffsetDateTime::now_utc() - time::Duration::seconds(5);
    let commands = db.store.commands();
    for rev in 0..COMMANDS {
        commands
            .record_event(
                Revision(rev),
                Some(command(rev, profile_id(1), FILES_PER_COMMAND, 50)),
                past,
            )
            .await
            .unwrap();
    }
    commands
        .record_event(
            Revision(COMMANDS),
            Some(command(COMMANDS, blocked.id, 3, 50)),
            past,
        )
        .await
        .unwrap();

    let url = db.url.clone();
    let outcome = tokio::task::spawn_blocking(move || supervise(&url))
        .await
        .unwrap();
    eprintln!(
        "chaos: {} children, {} crashed on purpose",
        outcome.spawned, outcome.crashed
    );
    // (children 1-3 crash on their first job; one that started after the queue drained would
    // not, so only one crash is required)
    assert!(outcome.crashed >= 1, "no child crashed: {outcome:?}");

    check_audit(&db, &pool, blocked.id.0).await;
}

/// The children alive; killed (each by its own handle) if the parent gives up early.
struct Fleet(Vec<(usize, Child)>);

impl Drop for Fleet {
    fn drop(&mut self) {
        for (_, child) in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[derive(Debug)]
struct Outcome {
    spawned: usize,
    crashed: usize,
}

/// Keeps `PROCESSES` children running, replacing crashed ones, until one finishes cleanly
/// (which it only does when no job is left to do) and the rest have exited.
fn supervise(url: &str) -> Outcome {
    let exe = std::env::current_exe().unwrap();
    let deadline = OffsetDateTime::now_utc() + BUDGET;
    let started = Instant::now();
    let spawn = |index: usize| -> Child {
        Command::new(&exe)
            .args([
                "chaos_child",
                "--ignored",
                "--exact",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env(ROLE_ENV, url)
            .env(CHILD_INDEX_ENV, index.to_string())
            .env(DEADLINE_ENV, deadline.unix_timestamp().to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut fleet = Fleet((0..PROCESSES).map(|i| (i, spawn(i))).collect());
    let mut spawned = PROCESSES;
    let mut crashed = 0;
    let mut finished_cleanly = false;
    while !fleet.0.is_empty() {
        assert!(
            started.elapsed() < BUDGET + Duration::from_secs(10),
            "children did not finish in time"
        );
        let mut still = Vec::new();
        for (index, mut child) in std::mem::take(&mut fleet.0) {
            match child.try_wait().unwrap() {
                None => still.push((index, child)),
                Some(status) if status.code() == Some(CRASHED) => {
                    crashed += 1;
                    if !finished_cleanly {
                        still.push((spawned, spawn(spawned)));
                        spawned += 1;
                    }
                }
                Some(status) if status.success() => finished_cleanly = true,
                Some(status) => {
                    fleet.0 = still;
                    let output = child.wait_with_output().unwrap();
                    panic!(
                        "child {index} failed ({status}):\n{}\n{}",
                        String::from_utf8_lossy(&output.stdout),
                        String::from_utf8_lossy(&output.stderr)
                    );
                }
            }
        }
        fleet.0 = still;
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(finished_cleanly, "no child saw the queue drained");
    Outcome { spawned, crashed }
}

#[derive(Debug, Clone, sqlx::FromRow)]
struct ClaimRow {
    job_id: Uuid,
    generation: i64,
    worker: String,
    claimed_at: OffsetDateTime,
    expires_at: OffsetDateTime,
    start_batch: i32,
    attempts: i32,
}

#[derive(Debug, Clone, sqlx::FromRow)]
struct EventRow {
    job_id: Uuid,
    generation: i64,
    worker: String,
    kind: String,
    ok: bool,
    batch: Option<i32>,
    at: Option<OffsetDateTime>,
}

async fn check_audit(db: &TestDb, pool: &PgPool, blocked_profile: Uuid) {
    let claims: Vec<ClaimRow> =
        sqlx::query_as("SELECT * FROM chaos_claims ORDER BY job_id, generation")
            .fetch_all(pool)
            .await
            .unwrap();
    let events: Vec<EventRow> = sqlx::query_as(
        "SELECT job_id, generation, worker, kind, ok, batch, at FROM chaos_events ORDER BY seq",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let jobs: Vec<(Uuid, Uuid, String, i32, i64)> = sqlx::query_as(
        "SELECT id, profile_id, status, attempts, lease_generation FROM jobs ORDER BY id",
    )
    .fetch_all(pool)
    .await
    .unwrap();

    let mut claims_of: HashMap<Uuid, Vec<&ClaimRow>> = HashMap::new();
    for c in &claims {
        claims_of.entry(c.job_id).or_default().push(c);
    }
    let mut events_of: HashMap<(Uuid, i64), Vec<&EventRow>> = HashMap::new();
    for e in &events {
        events_of
            .entry((e.job_id, e.generation))
            .or_default()
            .push(e);
    }

    let mut reoffered = 0;
    for (job_id, profile, status, attempts, lease_generation) in &jobs {
        let held = claims_of.get(job_id).cloned().unwrap_or_default();
        if *profile == blocked_profile {
            assert!(
                held.is_empty(),
                "job {job_id} of a needs_reauth profile was claimed"
            );
            assert_eq!(status, "paused");
            continue;
        }
        assert_eq!(status, "delivered", "job {job_id} not delivered");
        // generations 1, 2, 3…: none handed out twice (the primary key), none skipped
        let generations: Vec<i64> = held.iter().map(|c| c.generation).collect();
        let expected: Vec<i64> = (1..=held.len() as i64).collect();
        assert_eq!(generations, expected, "job {job_id}: lease generations");
        assert_eq!(
            *lease_generation,
            held.len() as i64,
            "job {job_id}: claims unaccounted"
        );
        // a deferred claim gives its attempt back
        let deferred = |generation: i64| {
            events_of
                .get(&(*job_id, generation))
                .is_some_and(|e| e.iter().any(|e| e.kind == "defer" && e.ok))
        };
        let defers = held.iter().filter(|c| deferred(c.generation)).count();
        assert_eq!(
            *attempts,
            (held.len() - defers) as i32,
            "job {job_id}: attempts must count every claim but the deferred ones"
        );
        if held.len() > 1 {
            reoffered += 1;
        }

        let mut completions = 0;
        let mut acknowledged = 0; // batches checkpointed by earlier holders
        let mut given_back = 0;
        for (i, claim) in held.iter().enumerate() {
            assert_eq!(
                claim.attempts,
                (claim.generation - given_back) as i32,
                "job {job_id}: the claimed job counts this attempt"
            );
            if deferred(claim.generation) {
                given_back += 1;
            }
            assert_eq!(
                claim.start_batch, acknowledged,
                "job {job_id} generation {}: resumes after the last checkpoint",
                claim.generation
            );
            let mine = events_of
                .get(&(*job_id, claim.generation))
                .cloned()
                .unwrap_or_default();
            for e in &mine {
                assert_eq!(e.worker, claim.worker, "event by a non-holder");
            }
            // the live end of this lease: its release, else its last successful expiry (a
            // checkpoint extends the lease too)
            let released = mine
                .iter()
                .find(|e| (e.kind == "release" || e.kind == "defer") && e.ok)
                .and_then(|e| e.at);
            let last_expiry = mine
                .iter()
                .filter(|e| (e.kind == "heartbeat" || e.kind == "checkpoint") && e.ok)
                .filter_map(|e| e.at)
                .chain([claim.expires_at])
                .max()
                .unwrap();
            let live_until = released.unwrap_or(last_expiry);
            if let Some(next) = held.get(i + 1) {
                assert!(
                    next.claimed_at >= live_until,
                    "job {job_id}: generation {} claimed at {} while generation {} was live \
                     until {live_until}",
                    next.generation,
                    next.claimed_at,
                    claim.generation
                );
            }
            for e in &mine {
                if e.kind == "sent" {
                    let batch = e.batch.unwrap();
                    assert!(
                        batch >= acknowledged,
                        "job {job_id}: batch {batch} sent again after it was acknowledged"
                    );
                }
                if e.kind == "checkpoint" && e.ok {
                    acknowledged = acknowledged.max(e.batch.unwrap());
                }
                if e.kind == "complete" && e.ok {
                    completions += 1;
                    assert_eq!(
                        claim.generation,
                        held.len() as i64,
                        "job {job_id}: completed by a holder that was not the last"
                    );
                }
            }
        }
        assert_eq!(
            completions, 1,
            "job {job_id}: completed {completions} times"
        );
    }

    // the frozen child's late calls were refused: its job had a new holder by then
    let stale: Vec<&EventRow> = events.iter().filter(|e| e.kind == "stale").collect();
    assert!(
        !stale.is_empty(),
        "the stalled child never tried a late call"
    );
    for e in &stale {
        assert!(
            !e.ok,
            "a late call with a superseded lease was accepted: {e:?}"
        );
        let newer = claims_of[&e.job_id]
            .iter()
            .any(|c| c.generation > e.generation);
        assert!(newer, "stale call recorded without a newer holder: {e:?}");
    }
    assert!(reoffered > 0, "no job was offered again after a crash");
    let stats = db.store.jobs().stats().await.unwrap();
    assert_eq!(
        (stats.queued, stats.running, stats.failed, stats.paused),
        (0, 0, 0, 3)
    );
    assert_eq!(stats.delivered, COMMANDS * FILES_PER_COMMAND as u64);
    common::assert_stats_match_rows(db).await;
    eprintln!(
        "chaos: {} claims of {} jobs, {reoffered} jobs offered again, {} late calls refused",
        claims.len(),
        jobs.len(),
        stale.len()
    );
}

/// Where a crashing child dies (always between recorded steps).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CrashPoint {
    Claimed,
    SentNotCheckpointed,
    Checkpointed,
}

/// A tiny deterministic generator (xorshift), seeded per child.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

struct Audit {
    pool: PgPool,
    me: WorkerId,
}

impl Audit {
    async fn claimed(&self, c: &facebook_connector_core::domain::ClaimedJob, now: OffsetDateTime) {
        sqlx::query(
            "INSERT INTO chaos_claims (job_id, generation, worker, claimed_at, expires_at, \
             start_batch, attempts) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(c.job.id.0)
        .bind(c.lease.generation as i64)
        .bind(&self.me.0)
        .bind(now)
        .bind(c.lease.expires_at)
        .bind(
            c.job
                .checkpoint
                .map_or(0, |cp| cp.batches_acknowledged as i32),
        )
        .bind(c.job.attempts as i32)
        .execute(&self.pool)
        .await
        .expect("job generation claimed twice");
    }

    async fn event(
        &self,
        lease: &facebook_connector_core::domain::Lease,
        kind: &str,
        ok: bool,
        batch: Option<u32>,
        at: Option<OffsetDateTime>,
    ) {
        sqlx::query(
            "INSERT INTO chaos_events (job_id, generation, worker, kind, ok, batch, at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(lease.job_id.0)
        .bind(lease.generation as i64)
        .bind(&self.me.0)
        .bind(kind)
        .bind(ok)
        .bind(batch.map(|b| b as i32))
        .bind(at)
        .execute(&self.pool)
        .await
        .unwrap();
    }
}

/// Retries a store call while the database reports a transient failure.
macro_rules! retrying {
    ($call:expr) => {
        loop {
            match $call.await {
                Err(Error::Transient { .. }) => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                other => break other,
            }
        }
    };
}

/// The child process body, run only by the parent (`--ignored --exact`): on its own it has
/// no database to work on and fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a child process of crashing_worker_processes_deliver_every_job_exactly_once"]
async fn chaos_child() {
    let url = std::env::var(ROLE_ENV).expect(
        "chaos_child runs as a child of crashing_worker_processes_deliver_every_job_exactly_once",
    );
    let index: usize = std::env::var(CHILD_INDEX_ENV).unwrap().parse().unwrap();
    let deadline =
        OffsetDateTime::from_unix_timestamp(std::env::var(DEADLINE_ENV).unwrap().parse().unwrap())
            .unwrap();
    let options = StoreOptions {
        max_connections: Some(3),
        ..Default::default()
    };
    let store = Store::connect(&url, &options).await.unwrap();
    let jobs = store.jobs();
    // every process presents the same owner name (like processes restarted on one host), so
    // only the lease generation tells a superseded holder from the current one
    let me = WorkerId("chaos-host".to_owned());
    let audit = Audit {
        pool: store.as_postgres().unwrap().pool().clone(),
        me: WorkerId(format!("child-{index}-pid-{}", std::process::id())),
    };
    let mut rng =
        Rng(0x9e37_79b9_7f4a_7c15 ^ (index as u64 + 1).wrapping_mul(0x2545_f491_4f6c_dd1d));
    // the first children crash on their first job at a fixed point each, the next ones at
    // random points; child 0 instead freezes past its lease on its first job
    let fixed_crash = match index {
        1 => Some(CrashPoint::Claimed),
        2 => Some(CrashPoint::SentNotCheckpointed),
        3 => Some(CrashPoint::Checkpointed),
        _ => None,
    };
    let random_crashes = (PROCESSES..CRASHY_CHILDREN).contains(&index);
    let mut stall_first_job = index == 0;
    let crash_here = |rng: &mut Rng, point: CrashPoint, job_number: usize| {
        if fixed_crash == Some(point) && job_number == 1 {
            return true;
        }
        random_crashes && rng.below(8) == 0
    };

    if index < PROCESSES {
        // the first children start together, so each of them gets a job however slowly the
        // processes were scheduled to start (the crashes and the stall below need one)
        sqlx::query("INSERT INTO chaos_ready (child) VALUES ($1)")
            .bind(index as i32)
            .execute(&audit.pool)
            .await
            .unwrap();
        loop {
            assert!(
                OffsetDateTime::now_utc() < deadline,
                "children never all started"
            );
            let ready: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM chaos_ready")
                .fetch_one(&audit.pool)
                .await
                .unwrap();
            if ready >= PROCESSES as i64 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    let mut job_number = 0;
    loop {
        assert!(
            OffsetDateTime::now_utc() < deadline,
            "child ran out of time"
        );
        let now = OffsetDateTime::now_utc();
        let claimed = match retrying!(jobs.claim(&me, LEASE, now)) {
            Ok(Claim::Job(c)) => *c,
            Ok(Claim::Idle { next_due }) => {
                let stats = store.jobs().stats().await.unwrap();
                if stats.queued == 0 && stats.running == 0 {
                    break;
                }
                // sleep until the next job falls due, but look again soon: a crashed holder's
                // lease is the usual next due time, and a job released by another child may
                // be due at once
                let wait = next_due
                    .map(|due| (due - OffsetDateTime::now_utc()).max(time::Duration::ZERO))
                    .and_then(|d| Duration::try_from(d).ok())
                    .unwrap_or(POLL)
                    .min(POLL);
                tokio::time::sleep(wait).await;
                continue;
            }
            Err(e) => panic!("claim failed: {e:?}"),
        };
        job_number += 1;
        audit.claimed(&claimed, now).await;
        if crash_here(&mut rng, CrashPoint::Claimed, job_number) {
            std::process::exit(CRASHED);
        }
        let mut lease = claimed.lease.clone();

        if stall_first_job {
            // freeze without heartbeats until another worker took the job over, then carry on
            // as if nothing happened: every call must be refused
            stall_first_job = false;
            let mine = lease.generation as i64;
            loop {
                assert!(OffsetDateTime::now_utc() < deadline, "nobody took over");
                let current: i64 =
                    sqlx::query_scalar("SELECT lease_generation FROM jobs WHERE id = $1")
                        .bind(lease.job_id.0)
                        .fetch_one(&audit.pool)
                        .await
                        .unwrap();
                if current > mine {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let cp = checkpoint_after(1);
            let now = OffsetDateTime::now_utc();
            let late = [
                retrying!(jobs.checkpoint(&lease, &cp, LEASE, now)).map(|_| ()),
                retrying!(jobs.heartbeat(&lease, LEASE, now)).map(|_| ()),
                retrying!(jobs.retry_at(&lease, now, "late", now)).map(|_| ()),
                retrying!(jobs.defer(&lease, now, "late", now)),
                retrying!(jobs.pause(&lease, "late", now)),
                retrying!(jobs.fail(&lease, "late", &DeliveryCounters::default(), now)),
                retrying!(jobs.complete(&lease, &DeliveryCounters::default(), now)),
            ];
            for result in late {
                assert!(
                    matches!(result, Err(Error::LeaseLost { .. }) | Ok(())),
                    "late call: {result:?}"
                );
                audit
                    .event(&lease, "stale", result.is_ok(), None, Some(now))
                    .await;
            }
            continue;
        }

        let start = claimed
            .job
            .checkpoint
            .map_or(0, |cp| cp.batches_acknowledged);
        let mut lost = false;
        let mut released = false;
        for batch in start..BATCHES {
            audit.event(&lease, "sent", true, Some(batch), None).await;
            tokio::time::sleep(Duration::from_millis(25)).await;
            if crash_here(&mut rng, CrashPoint::SentNotCheckpointed, job_number) {
                std::process::exit(CRASHED);
            }
            // the checkpoint extends the lease like a heartbeat
            let now = OffsetDateTime::now_utc();
            match retrying!(jobs.checkpoint(&lease, &checkpoint_after(batch + 1), LEASE, now)) {
                Ok(renewal) => {
                    audit
                        .event(
                            &lease,
                            "checkpoint",
                            true,
                            Some(batch + 1),
                            Some(renewal.lease.expires_at),
                        )
                        .await;
                    lease = renewal.lease;
                }
                Err(Error::LeaseLost { .. }) => {
                    audit.event(&lease, "checkpoint", false, None, None).await;
                    lost = true;
                    break;
                }
                Err(e) => panic!("checkpoint failed: {e:?}"),
            }
            if crash_here(&mut rng, CrashPoint::Checkpointed, job_number) {
                std::process::exit(CRASHED);
            }
            let now = OffsetDateTime::now_utc();
            match retrying!(jobs.heartbeat(&lease, LEASE, now)) {
                Ok(renewal) => {
                    audit
                        .event(
                            &lease,
                            "heartbeat",
                            true,
                            None,
                            Some(renewal.lease.expires_at),
                        )
                        .await;
                    lease = renewal.lease;
                }
                Err(Error::LeaseLost { .. }) => {
                    audit.event(&lease, "heartbeat", false, None, None).await;
                    lost = true;
                    break;
                }
                Err(e) => panic!("heartbeat failed: {e:?}"),
            }
            if batch + 1 < BATCHES && rng.below(10) == 0 {
                // a transient Facebook error (the attempt counts) or a rate limit (it does
                // not): release the job to run again right away
                let now = OffsetDateTime::now_utc();
                let deferred = rng.below(2) == 0;
                let result = if deferred {
                    retrying!(jobs.defer(&lease, now, "throttled", now))
                } else {
                    retrying!(jobs.retry_at(&lease, now, "timeout", now)).map(|_| ())
                };
                let kind = if deferred { "defer" } else { "release" };
                match result {
                    Ok(()) => {
                        audit.event(&lease, kind, true, None, Some(now)).await;
                        released = true;
                        break;
                    }
                    Err(Error::LeaseLost { .. }) => {
                        audit.event(&lease, kind, false, None, None).await;
                        lost = true;
                        break;
                    }
                    Err(e) => panic!("release failed: {e:?}"),
                }
            }
        }
        if lost || released {
            continue;
        }
        let counters = DeliveryCounters {
            members_sent: u64::from(BATCHES) * 10,
            ..DeliveryCounters::default()
        };
        match retrying!(jobs.complete(&lease, &counters, OffsetDateTime::now_utc())) {
            Ok(()) => audit.event(&lease, "complete", true, None, None).await,
            Err(Error::LeaseLost { .. }) => {
                audit.event(&lease, "complete", false, None, None).await;
            }
            Err(e) => panic!("complete failed: {e:?}"),
        }
    }
    store.close().await;
}

/// The checkpoint after `batches` acknowledged batches of the job's first session.
fn checkpoint_after(batches: u32) -> Checkpoint {
    Checkpoint {
        session_id: 1,
        batches_acknowledged: batches,
        counters: DeliveryCounters {
            members_sent: u64::from(batches) * 10,
            ..DeliveryCounters::default()
        },
        ..Checkpoint::default()
    }
}
