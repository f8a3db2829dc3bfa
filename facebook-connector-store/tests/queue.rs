//! The queue's scheduling contract, on PostgreSQL and SQLite: fair claims across profiles,
//! what an idle claim says, ad-account throttles, and releases that keep the attempt.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use std::time::Duration;

use common::{
    LEASE, TestDb, at, checkpoint, claim, command, counters, next_due, profile, profile_id, record,
    try_claim, worker,
};
use facebook_connector_core::Error;
use facebook_connector_core::domain::{
    AdAccountId, Claim, ClaimedJob, JobStatus, ProfileId, RetryOutcome, Revision,
};
use facebook_connector_core::ports::JobFilter;

contract!(
    claims_are_fair_across_profiles,
    expired_leases_do_not_count_as_running,
    idle_claims_say_when_work_is_due,
    throttles_hold_back_one_ad_account,
    throttles_extend_and_never_shorten,
    defer_gives_the_attempt_back,
    defer_waits_paused_for_reauthorisation,
    a_command_for_another_revision_is_a_bug,
);

fn account(n: u128) -> AdAccountId {
    AdAccountId::parse(&format!("act_{}", 1000 + n)).unwrap()
}

/// Claims until nothing is runnable at `now`; the jobs' profiles in claim order.
async fn drain(db: &TestDb, now: time::OffsetDateTime) -> Vec<ClaimedJob> {
    let jobs = db.store.jobs();
    let mut claimed = Vec::new();
    while let Some(c) = try_claim(&*jobs, "w", now).await {
        claimed.push(c);
    }
    claimed
}

async fn claims_are_fair_across_profiles(db: &TestDb) {
    let (profiles, commands, jobs) = (db.store.profiles(), db.store.commands(), db.store.jobs());
    let (a, b) = (profile(1, 7, at(0)), profile(2, 7, at(0)));
    profiles.insert_profile(&a).await.unwrap();
    profiles.insert_profile(&b).await.unwrap();
    let unknown = profile_id(3); // no profile row: still claimed (the engine fails it)
    record(&*commands, command(1, a.id, 50, 3), at(0)).await;
    record(&*commands, command(2, b.id, 1, 3), at(5)).await;
    record(&*commands, command(3, unknown, 1, 3), at(7)).await;

    // nobody runs anything: the oldest due job (a's) first
    let first = claim(&*jobs, "w1", at(10)).await;
    assert_eq!(first.job.profile_id, a.id);
    // a holds a running job: b's single file is next, though a has 49 older ones queued
    let second = claim(&*jobs, "w2", at(10)).await;
    assert_eq!(second.job.profile_id, b.id, "b is not starved by a's queue");
    let third = claim(&*jobs, "w3", at(10)).await;
    assert_eq!(third.job.profile_id, unknown, "no profile row: claimable");
    // one running each: ties go to the oldest due job; b and the unknown have none left
    let rest: Vec<ProfileId> = drain(db, at(10))
        .await
        .iter()
        .map(|c| c.job.profile_id)
        .collect();
    assert_eq!(rest, vec![a.id; 49]);

    // within a profile, oldest due first
    let mut second_batch = command(4, b.id, 3, 3);
    let ids: Vec<_> = second_batch.jobs.iter().map(|j| j.id).collect();
    second_batch.jobs.reverse();
    record(&*commands, second_batch, at(11)).await;
    jobs.complete(&second.lease, &counters(5), at(12))
        .await
        .unwrap();
    let c = claim(&*jobs, "w", at(13)).await;
    let retried = jobs
        .retry_at(&c.lease, at(14), "5xx", at(13))
        .await
        .unwrap();
    assert_eq!(retried, RetryOutcome::Scheduled);
    // the retried job is due at 14, its siblings since 11
    let order: Vec<_> = drain(db, at(20)).await.iter().map(|c| c.job.id).collect();
    let mut expected: Vec<_> = ids.iter().copied().filter(|id| *id != c.job.id).collect();
    expected.sort_by_key(|id| id.0); // same run_at: by id
    expected.push(c.job.id);
    assert_eq!(order, expected);
}

async fn expired_leases_do_not_count_as_running(db: &TestDb) {
    let (commands, jobs) = (db.store.commands(), db.store.jobs());
    let (a, b) = (profile_id(1), profile_id(2));
    record(&*commands, command(1, a, 1, 3), at(0)).await;
    record(&*commands, command(2, b, 3, 3), at(1)).await;
    // a's holder vanishes: its lease runs out at 5
    let Claim::Job(gone) = jobs
        .claim(&worker("gone"), Duration::from_secs(5), at(0))
        .await
        .unwrap()
    else {
        panic!("nothing to claim")
    };
    assert_eq!(gone.job.profile_id, a);
    // b holds a live lease; a's only running job has expired, so a counts as running nothing
    // and its abandoned job comes back before b's older queued ones
    let held = claim(&*jobs, "w", at(2)).await;
    assert_eq!(held.job.profile_id, b);
    let back = claim(&*jobs, "w", at(6)).await;
    assert_eq!(back.job.id, gone.job.id);
    assert_eq!(back.job.attempts, 2);
}

async fn idle_claims_say_when_work_is_due(db: &TestDb) {
    let (commands, jobs) = (db.store.commands(), db.store.jobs());
    assert_eq!(next_due(&*jobs, at(0)).await, None, "nothing open");
    record(&*commands, command(1, profile_id(1), 2, 3), at(0)).await;
    let a = claim(&*jobs, "w", at(1)).await;
    let b = claim(&*jobs, "w", at(1)).await;
    // both running: the earliest lease expiry is when a job may need a worker again
    jobs.heartbeat(&b.lease, LEASE, at(2)).await.unwrap();
    assert_eq!(next_due(&*jobs, at(3)).await, Some(at(31)));
    jobs.retry_at(&a.lease, at(100), "5xx", at(4))
        .await
        .unwrap();
    assert_eq!(next_due(&*jobs, at(5)).await, Some(at(32)));
    jobs.defer(&b.lease, at(80), "throttled", at(6))
        .await
        .unwrap();
    assert_eq!(next_due(&*jobs, at(7)).await, Some(at(80)));
    // finished jobs are not waited for
    let c = claim(&*jobs, "w", at(80)).await;
    jobs.complete(&c.lease, &counters(5), at(81)).await.unwrap();
    assert_eq!(next_due(&*jobs, at(82)).await, Some(at(100)));
    let d = claim(&*jobs, "w", at(100)).await;
    jobs.fail(&d.lease, "bad file", &counters(5), at(101))
        .await
        .unwrap();
    assert_eq!(next_due(&*jobs, at(102)).await, None);
}

async fn throttles_hold_back_one_ad_account(db: &TestDb) {
    let (profiles, commands, jobs) = (db.store.profiles(), db.store.commands(), db.store.jobs());
    // a1 and a2 share an ad account, b has its own
    let (a1, b) = (profile(1, 7, at(0)), profile(2, 7, at(0)));
    let mut a2 = profile(3, 7, at(0));
    a2.ad_account = a1.ad_account.clone();
    for p in [&a1, &a2, &b] {
        profiles.insert_profile(p).await.unwrap();
    }
    record(&*commands, command(1, a1.id, 2, 3), at(0)).await;
    record(&*commands, command(2, a2.id, 1, 3), at(1)).await;
    record(&*commands, command(3, b.id, 2, 3), at(2)).await;

    jobs.throttle_ad_account(&a1.ad_account.id, at(100), at(3))
        .await
        .unwrap();
    // an unrelated ad account's throttle changes nothing for these profiles
    jobs.throttle_ad_account(&account(99), at(500), at(3))
        .await
        .unwrap();
    let claimed: Vec<ProfileId> = drain(db, at(4))
        .await
        .iter()
        .map(|c| c.job.profile_id)
        .collect();
    assert_eq!(claimed, vec![b.id, b.id], "only b's jobs run meanwhile");
    // b's leases end before the throttle does
    assert_eq!(next_due(&*jobs, at(5)).await, Some(at(34)));
    // with b's jobs done, the throttle's end is what an idle worker waits for
    for c in drain(db, at(40)).await {
        jobs.complete(&c.lease, &counters(5), at(41)).await.unwrap();
    }
    assert_eq!(next_due(&*jobs, at(50)).await, Some(at(100)));
    assert!(try_claim(&*jobs, "w", at(99)).await.is_none());
    // it expires by itself
    let after: Vec<ProfileId> = drain(db, at(100))
        .await
        .iter()
        .map(|c| c.job.profile_id)
        .collect();
    assert_eq!(after, vec![a1.id, a2.id, a1.id]);
}

async fn throttles_extend_and_never_shorten(db: &TestDb) {
    let (profiles, commands, jobs) = (db.store.profiles(), db.store.commands(), db.store.jobs());
    let a = profile(1, 7, at(0));
    profiles.insert_profile(&a).await.unwrap();
    record(&*commands, command(1, a.id, 1, 3), at(0)).await;
    let id = &a.ad_account.id;
    jobs.throttle_ad_account(id, at(100), at(1)).await.unwrap();
    jobs.throttle_ad_account(id, at(50), at(2)).await.unwrap();
    assert_eq!(
        next_due(&*jobs, at(60)).await,
        Some(at(100)),
        "not shortened"
    );
    jobs.throttle_ad_account(id, at(150), at(61)).await.unwrap();
    assert_eq!(next_due(&*jobs, at(120)).await, Some(at(150)), "extended");
    assert!(try_claim(&*jobs, "w", at(149)).await.is_none());

    // once over, a throttle means nothing and the next throttle call cleans it up
    jobs.throttle_ad_account(&account(99), at(300), at(200))
        .await
        .unwrap();
    let count = "SELECT COUNT(*) FROM ad_account_throttles";
    let rows: i64 = if let Some(pg) = db.store.as_postgres() {
        sqlx::query_scalar(count)
            .fetch_one(pg.pool())
            .await
            .unwrap()
    } else {
        let lite = db.store.as_sqlite().unwrap();
        sqlx::query_scalar(count)
            .fetch_one(lite.pool())
            .await
            .unwrap()
    };
    assert_eq!(rows, 1, "the ended throttle was removed");
    // the ad account can be throttled again
    jobs.throttle_ad_account(id, at(260), at(250))
        .await
        .unwrap();
    assert!(try_claim(&*jobs, "w", at(259)).await.is_none());
    assert_eq!(claim(&*jobs, "w", at(260)).await.job.profile_id, a.id);
}

async fn defer_gives_the_attempt_back(db: &TestDb) {
    let (commands, jobs) = (db.store.commands(), db.store.jobs());
    // one attempt allowed: a retry would give up, a deferral never does
    record(&*commands, command(1, profile_id(1), 1, 1), at(0)).await;
    let first = claim(&*jobs, "w", at(1)).await;
    assert_eq!(first.job.attempts, 1);
    let cp = checkpoint(7, 2, counters(20));
    jobs.checkpoint(&first.lease, &cp, LEASE, at(2))
        .await
        .unwrap();
    jobs.defer(&first.lease, at(60), "rate limited", at(3))
        .await
        .unwrap();
    let job = jobs.get_job(first.job.id).await.unwrap().unwrap();
    assert_eq!(
        (job.status, job.attempts, job.run_at),
        (JobStatus::Queued, 0, at(60))
    );
    assert_eq!(job.last_error.as_deref(), Some("rate limited"));
    assert_eq!(job.checkpoint, Some(cp), "the checkpoint is kept");
    assert!(try_claim(&*jobs, "w", at(59)).await.is_none());
    for round in 0..3 {
        let again = claim(&*jobs, "w", at(60 + round)).await;
        assert_eq!(again.job.attempts, 1, "round {round}");
        jobs.defer(&again.lease, at(61 + round), "rate limited", at(60 + round))
            .await
            .unwrap();
    }
    let last = claim(&*jobs, "w", at(63)).await;
    assert_eq!(
        jobs.retry_at(&last.lease, at(70), "5xx", at(64))
            .await
            .unwrap(),
        RetryOutcome::GaveUp,
        "a retry does use the attempt up"
    );
}

async fn defer_waits_paused_for_reauthorisation(db: &TestDb) {
    let (profiles, commands, jobs) = (db.store.profiles(), db.store.commands(), db.store.jobs());
    let p = profile(1, 7, at(0));
    profiles.insert_profile(&p).await.unwrap();
    record(&*commands, command(1, p.id, 1, 3), at(0)).await;
    let c = claim(&*jobs, "w", at(1)).await;
    profiles
        .mark_needs_reauth(p.id, "error 190", at(2))
        .await
        .unwrap();
    jobs.defer(&c.lease, at(10), "shutting down", at(3))
        .await
        .unwrap();
    let job = jobs.get_job(c.job.id).await.unwrap().unwrap();
    assert_eq!((job.status, job.attempts), (JobStatus::Paused, 0));
    assert!(try_claim(&*jobs, "w", at(20)).await.is_none());
}

async fn a_command_for_another_revision_is_a_bug(db: &TestDb) {
    let commands = db.store.commands();
    let err = commands
        .record_event(Revision(2), Some(command(3, profile_id(1), 1, 3)), at(0))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Invariant { .. }), "{err:?}");
    assert_eq!(
        err.disposition(),
        facebook_connector_core::Disposition::Fatal
    );
    assert_eq!(commands.cursor().await.unwrap(), None);
    assert!(commands.get_command(Revision(3)).await.unwrap().is_none());
    assert_eq!(db.store.jobs().stats().await.unwrap().queued, 0);
}

/// An event recorded while its profile's state changes in another transaction (PostgreSQL,
/// where writers run concurrently): the jobs end in the state the profile has once both
/// commit. Each change is made here the way `mark_needs_reauth` / `reauthorize` make it, the
/// profile row first and then its jobs, and held open while the event is recorded; without
/// the profile lock in `record_event` the new jobs were checked against the state before the
/// change, and missed by the change's own update of the jobs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_recorded_during_a_profile_state_change_follow_it() {
    let db = TestDb::postgres().await;
    let pg = db.store.as_postgres().unwrap();
    let (profiles, commands) = (db.store.profiles(), db.store.commands());
    let p = profile(1, 7, at(0));
    profiles.insert_profile(&p).await.unwrap();
    let changes = [
        ("needs_reauth", "queued", "paused", JobStatus::Paused),
        ("ok", "paused", "queued", JobStatus::Queued),
    ];
    for (revision, (state, from, to, expected)) in (1u64..).zip(changes) {
        let mut change = pg.pool().begin().await.unwrap();
        let reason = (state == "needs_reauth").then_some("error 190");
        sqlx::query(
            "UPDATE profiles SET delivery_state = $2, reauth_reason = $3, \
             reauth_since = CASE WHEN $3 IS NULL THEN NULL ELSE updated_at END WHERE id = $1",
        )
        .bind(p.id.0)
        .bind(state)
        .bind(reason)
        .execute(&mut *change)
        .await
        .unwrap();
        sqlx::query("UPDATE jobs SET status = $3 WHERE profile_id = $1 AND status = $2")
            .bind(p.id.0)
            .bind(from)
            .bind(to)
            .execute(&mut *change)
            .await
            .unwrap();
        let recording = {
            let commands = commands.clone();
            let cmd = command(revision, p.id, 2, 3);
            tokio::spawn(async move { record(&*commands, cmd, at(1)).await })
        };
        // the recording waits for the change (it cannot finish while the profile is locked);
        // without the lock it finishes here, before the change commits
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            !recording.is_finished(),
            "recorded while the profile's change was open"
        );
        change.commit().await.unwrap();
        recording.await.unwrap();
        let jobs = db.store.jobs();
        let filter = JobFilter {
            revision: Some(Revision(revision)),
            profile_id: None,
            status: None,
            limit: 10,
        };
        let listed = jobs.list_jobs(&filter).await.unwrap();
        let statuses: Vec<_> = listed.iter().map(|j| j.status).collect();
        assert_eq!(statuses, vec![expected; 2], "after the change to {state}");
    }
}
