//! The storage contract: every test runs against PostgreSQL and SQLite, each on its own fresh
//! database. PostgreSQL is `DATABASE_URL` or `postgres://postgres@127.0.0.1:5432/postgres`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{
    LEASE, TestDb, at, checkpoint, claim, command, counters, next_due, profile, profile_id, record,
    settings_id, t0, try_claim, worker,
};
use facebook_connector_core::domain::{
    Audience, AudienceId, Claim, CompanyId, DeliveryCounters, DeliveryState, EncryptedToken,
    FacebookUser, FacebookUserId, FileStatus, JobId, JobStatus, ProfileState, RetryOutcome,
    Revision, TokenMeta,
};
use facebook_connector_core::ports::{CommandFilter, JobFilter, RecordOutcome, SettingsClaim};
use facebook_connector_core::{Disposition, Error};
use facebook_connector_store::{Store, StoreError, StoreOptions};

/// What a re-authorisation learnt about the new token.
fn fresh_meta() -> TokenMeta {
    TokenMeta {
        issued_at: Some(at(8)),
        expires_at: Some(at(8) + time::Duration::days(60)),
        data_access_expires_at: None,
        scopes: vec!["ads_management".into()],
    }
}

contract!(
    profiles_round_trip,
    needs_reauth_pauses_and_reauthorize_resumes,
    archive_fails_waiting_jobs,
    settings_claims,
    settings_claim_race_has_one_winner,
    record_event_and_cursor,
    record_event_is_atomic,
    claim_order_and_run_at,
    a_lost_lease_changes_nothing,
    heartbeat_extends_the_lease,
    checkpoint_extends_the_lease,
    renewals_report_the_profile,
    checkpoint_and_complete_update_the_file,
    retry_until_give_up,
    fail_and_requeue,
    lease_expired_on_last_attempt_fails_the_job,
    list_jobs_and_stats,
    concurrent_claimers_never_share_a_job,
    newer_schema_is_refused,
    claim_reads_only_unfinished_jobs,
    released_jobs_of_a_reauth_profile_wait_paused,
    stats_read_no_finished_job,
    command_files_show_attempts_and_paused,
);

async fn profiles_round_trip(db: &TestDb) {
    let profiles = db.store.profiles();
    let a = profile(1, 7, at(0));
    let b = profile(2, 7, at(10));
    let other = profile(3, 8, at(5));
    profiles.insert_profile(&b).await.unwrap();
    profiles.insert_profile(&a).await.unwrap();
    profiles.insert_profile(&other).await.unwrap();
    let duplicate = profiles.insert_profile(&a).await.unwrap_err();
    assert!(
        matches!(&duplicate, Error::AlreadyExists { what } if what == &format!("profile {}", a.id)),
        "{duplicate:?}"
    );

    assert_eq!(profiles.get_profile(a.id).await.unwrap(), Some(a.clone()));
    assert_eq!(profiles.get_profile(profile_id(99)).await.unwrap(), None);
    let listed = profiles.list_profiles(CompanyId(7)).await.unwrap();
    assert_eq!(
        listed,
        vec![a.clone(), b.clone()],
        "oldest first, own company only"
    );

    let mut account = a.ad_account.clone();
    account.name = "renamed".into();
    account.business = None;
    account.user_accepted_custom_audience_tos = false;
    profiles.update_ad_account(a.id, &account).await.unwrap();
    let audience = Audience {
        id: AudienceId::parse("23850000000000001").unwrap(),
        name: "aud".into(),
    };
    profiles
        .set_audience(a.id, Some(audience.clone()))
        .await
        .unwrap();
    let stored = profiles.get_profile(a.id).await.unwrap().unwrap();
    assert_eq!(stored.ad_account, account);
    assert_eq!(stored.audience, Some(audience));
    profiles.set_audience(a.id, None).await.unwrap();
    assert_eq!(
        profiles.get_profile(a.id).await.unwrap().unwrap().audience,
        None
    );

    let missing = profile_id(42);
    assert!(matches!(
        profiles.update_ad_account(missing, &account).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        profiles.set_audience(missing, None).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        profiles.mark_needs_reauth(missing, "x", at(1)).await,
        Err(Error::NotFound { .. })
    ));
}

async fn needs_reauth_pauses_and_reauthorize_resumes(db: &TestDb) {
    let (profiles, commands, jobs) = (db.store.profiles(), db.store.commands(), db.store.jobs());
    let p = profile(1, 7, at(0));
    profiles.insert_profile(&p).await.unwrap();
    record(&*commands, command(1, p.id, 3, 5), at(0)).await;
    let running = claim(&*jobs, "w1", at(1)).await;

    assert_eq!(
        profiles
            .mark_needs_reauth(p.id, "error 190", at(2))
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        profiles
            .mark_needs_reauth(p.id, "again", at(3))
            .await
            .unwrap(),
        0
    );
    let stored = profiles.get_profile(p.id).await.unwrap().unwrap();
    assert_eq!(
        stored.delivery_state,
        DeliveryState::NeedsReauth {
            reason: "error 190".into(),
            since: at(2)
        },
        "idempotent: the first reason and time are kept"
    );
    // nothing of this profile is claimable, even after the running lease expires
    assert!(try_claim(&*jobs, "w2", at(4)).await.is_none());
    assert!(try_claim(&*jobs, "w2", at(100)).await.is_none());

    // a new event for the paused profile is enqueued paused
    record(&*commands, command(2, p.id, 1, 5), at(5)).await;

    // the worker holding a job pauses it; the attempt does not count
    jobs.pause(&running.lease, "token invalid", at(6))
        .await
        .unwrap();
    let paused = jobs.get_job(running.job.id).await.unwrap().unwrap();
    assert_eq!(paused.status, JobStatus::Paused);
    assert_eq!(paused.attempts, 0);
    assert_eq!(paused.last_error.as_deref(), Some("token invalid"));
    let stats = jobs.stats().await.unwrap();
    assert_eq!((stats.paused, stats.queued, stats.running), (4, 0, 0));
    assert!(matches!(
        jobs.pause(&running.lease, "again", at(7)).await,
        Err(Error::LeaseLost { .. })
    ));

    let token = EncryptedToken("k1:fresh".into());
    let user = FacebookUser {
        id: FacebookUserId::new("556").unwrap(),
        name: "Bob".into(),
    };
    assert_eq!(
        profiles
            .reauthorize(p.id, &token, &fresh_meta(), &user, at(9))
            .await
            .unwrap(),
        4
    );
    let stored = profiles.get_profile(p.id).await.unwrap().unwrap();
    assert_eq!(stored.delivery_state, DeliveryState::Ok);
    assert_eq!(stored.token, token);
    assert_eq!(stored.facebook_user, user);
    assert_eq!(stored.token_meta, fresh_meta());
    let mut claimed = HashSet::new();
    while let Some(c) = try_claim(&*jobs, "w3", at(10)).await {
        claimed.insert(c.job.id);
    }
    assert_eq!(claimed.len(), 4, "every paused job resumed");
    assert!(claimed.contains(&running.job.id));

    // a pause while the profile is fine again (re-authorised meanwhile) re-queues instead
    let again = claim(&*jobs, "w3", at(200)).await;
    jobs.pause(&again.lease, "raced", at(201)).await.unwrap();
    assert_eq!(
        jobs.get_job(again.job.id).await.unwrap().unwrap().status,
        JobStatus::Queued
    );
}

async fn archive_fails_waiting_jobs(db: &TestDb) {
    let (profiles, commands, jobs) = (db.store.profiles(), db.store.commands(), db.store.jobs());
    let p = profile(1, 7, at(0));
    profiles.insert_profile(&p).await.unwrap();
    record(&*commands, command(1, p.id, 3, 5), at(0)).await;
    let running = claim(&*jobs, "w", at(1)).await;
    assert!(profiles.archive_profile(p.id, at(2)).await.unwrap());
    assert!(!profiles.archive_profile(p.id, at(3)).await.unwrap());
    assert!(
        !profiles
            .archive_profile(profile_id(9), at(3))
            .await
            .unwrap()
    );
    assert_eq!(
        profiles
            .get_profile(p.id)
            .await
            .unwrap()
            .unwrap()
            .archived_at,
        Some(at(2))
    );
    let cmd = commands.get_command(Revision(1)).await.unwrap().unwrap();
    let failed: Vec<_> = cmd
        .files
        .iter()
        .filter(|f| {
            f.status
                == FileStatus::Failed {
                    reason: "profile archived".into(),
                }
        })
        .collect();
    assert_eq!(failed.len(), 2, "{cmd:?}");
    // the running job is left to its worker
    assert_eq!(
        jobs.get_job(running.job.id).await.unwrap().unwrap().status,
        JobStatus::Running
    );
}

async fn settings_claims(db: &TestDb) {
    let settings = db.store.settings();
    let p = profile_id(1);
    let id = settings_id(p, 1);
    let (a, b) = (worker("a"), worker("b"));
    let ttl = Duration::from_secs(60);
    assert_eq!(settings.get_settings(id).await.unwrap(), None);

    assert_eq!(
        settings
            .claim_settings(id, &a, ttl, None, at(0))
            .await
            .unwrap(),
        SettingsClaim::Claimed
    );
    assert_eq!(
        settings
            .claim_settings(id, &b, ttl, None, at(10))
            .await
            .unwrap(),
        SettingsClaim::HeldByOther { until: at(60) }
    );
    // the holder may renew its own claim
    assert_eq!(
        settings
            .claim_settings(id, &a, ttl, None, at(20))
            .await
            .unwrap(),
        SettingsClaim::Claimed
    );
    assert_eq!(
        settings.get_settings(id).await.unwrap(),
        None,
        "a claim is not settings"
    );
    // the claim runs out: b takes over, and a (stale) may no longer save
    assert_eq!(
        settings
            .claim_settings(id, &b, ttl, None, at(81))
            .await
            .unwrap(),
        SettingsClaim::Claimed
    );
    let audience_a = AudienceId::parse("111").unwrap();
    let audience_b = AudienceId::parse("222").unwrap();
    let busy = settings
        .save_settings(id, &audience_a, &a, at(90))
        .await
        .unwrap_err();
    assert!(
        matches!(busy, Error::Busy { retry_after: Some(wait), .. } if wait == Duration::from_secs(51)),
        "b's claim runs until 141: {busy:?}"
    );
    assert!(busy.is_retryable());
    let saved = settings
        .save_settings(id, &audience_b, &b, at(91))
        .await
        .unwrap();
    assert_eq!(saved.audience_id, audience_b);
    assert_eq!((saved.created_at, saved.updated_at), (at(91), at(91)));
    assert_eq!(
        settings.get_settings(id).await.unwrap(),
        Some(saved.clone())
    );
    assert_eq!(
        settings
            .claim_settings(id, &a, ttl, None, at(92))
            .await
            .unwrap(),
        SettingsClaim::Existing(saved.clone())
    );
    // the stored audience vanished: one worker gets the right to create a replacement, the
    // others wait for it, a caller not replacing it still sees the stored settings
    assert_eq!(
        settings
            .claim_settings(id, &a, ttl, Some(audience_b.clone()), at(95))
            .await
            .unwrap(),
        SettingsClaim::Claimed
    );
    assert_eq!(
        settings
            .claim_settings(id, &b, ttl, Some(audience_b.clone()), at(96))
            .await
            .unwrap(),
        SettingsClaim::HeldByOther { until: at(155) }
    );
    assert!(matches!(
        settings.claim_settings(id, &b, ttl, None, at(96)).await.unwrap(),
        SettingsClaim::Existing(s) if s.audience_id == audience_b
    ));
    // replacing an audience that is no longer the stored one changes nothing
    assert!(matches!(
        settings
            .claim_settings(id, &b, ttl, Some(AudienceId::parse("999").unwrap()), at(97))
            .await
            .unwrap(),
        SettingsClaim::Existing(s) if s.audience_id == audience_b
    ));
    // overwrite (the stored audience vanished): keeps created_at
    let replaced = settings
        .save_settings(id, &audience_a, &a, at(100))
        .await
        .unwrap();
    assert_eq!(replaced.audience_id, audience_a);
    assert_eq!(
        (replaced.created_at, replaced.updated_at),
        (at(91), at(100))
    );

    // release lets another worker claim at once; releasing someone else's claim does nothing
    let other = settings_id(p, 2);
    assert_eq!(
        settings
            .claim_settings(other, &a, ttl, None, at(0))
            .await
            .unwrap(),
        SettingsClaim::Claimed
    );
    settings.release_settings(other, &b).await.unwrap();
    assert!(matches!(
        settings
            .claim_settings(other, &b, ttl, None, at(1))
            .await
            .unwrap(),
        SettingsClaim::HeldByOther { .. }
    ));
    settings.release_settings(other, &a).await.unwrap();
    assert_eq!(
        settings
            .claim_settings(other, &b, ttl, None, at(2))
            .await
            .unwrap(),
        SettingsClaim::Claimed
    );
}

async fn settings_claim_race_has_one_winner(db: &TestDb) {
    let id = settings_id(profile_id(1), 1);
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let settings = db.store.settings();
            tokio::spawn(async move {
                settings
                    .claim_settings(
                        id,
                        &worker(&format!("w{i}")),
                        Duration::from_secs(60),
                        None,
                        at(0),
                    )
                    .await
            })
        })
        .collect();
    let mut claimed = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(SettingsClaim::Claimed) => claimed += 1,
            Ok(SettingsClaim::HeldByOther { until }) => assert_eq!(until, at(60)),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(claimed, 1);
}

async fn record_event_and_cursor(db: &TestDb) {
    let (commands, jobs) = (db.store.commands(), db.store.jobs());
    let p = profile_id(1);
    let q = profile_id(2);
    assert_eq!(commands.cursor().await.unwrap(), None);

    let first = command(5, p, 2, 3);
    assert_eq!(
        commands
            .record_event(Revision(5), Some(first.clone()), at(0))
            .await
            .unwrap(),
        RecordOutcome::Recorded
    );
    assert_eq!(commands.cursor().await.unwrap(), Some(Revision(5)));
    // replay: nothing changes (even with fresh job ids)
    assert_eq!(
        record(&*commands, command(5, p, 2, 3), at(1)).await,
        RecordOutcome::AlreadyRecorded
    );
    assert_eq!(jobs.stats().await.unwrap().queued, 2);
    // an old event without a command does not move the cursor back
    assert_eq!(
        commands
            .record_event(Revision(3), None, at(2))
            .await
            .unwrap(),
        RecordOutcome::AlreadyRecorded
    );
    assert_eq!(commands.cursor().await.unwrap(), Some(Revision(5)));
    assert_eq!(
        commands
            .record_event(Revision(7), None, at(3))
            .await
            .unwrap(),
        RecordOutcome::Recorded
    );
    assert_eq!(commands.cursor().await.unwrap(), Some(Revision(7)));
    // a command older than the cursor is stored, the cursor stays
    assert_eq!(
        record(&*commands, command(6, q, 1, 3), at(4)).await,
        RecordOutcome::Recorded
    );
    assert_eq!(commands.cursor().await.unwrap(), Some(Revision(7)));
    record(&*commands, command(8, p, 0, 3), at(5)).await;
    assert_eq!(commands.cursor().await.unwrap(), Some(Revision(8)));

    let stored = commands.get_command(Revision(5)).await.unwrap().unwrap();
    assert_eq!(stored.revision, Revision(5));
    assert_eq!(stored.event, first.event);
    assert_eq!(stored.settings_id, first.settings_id);
    assert_eq!((stored.created_at, stored.updated_at), (at(0), at(0)));
    let files: Vec<_> = stored
        .files
        .iter()
        .map(|f| (f.job_id, f.file.clone()))
        .collect();
    let expected: Vec<_> = first.jobs.iter().map(|j| (j.id, j.file.clone())).collect();
    assert_eq!(files, expected, "files in order with their job ids");
    assert!(
        stored
            .files
            .iter()
            .all(|f| f.status == FileStatus::Pending && f.counters == DeliveryCounters::default())
    );
    let job = jobs.get_job(first.jobs[0].id).await.unwrap().unwrap();
    assert_eq!(
        (
            job.revision,
            job.profile_id,
            job.settings_id,
            job.status,
            job.attempts,
            job.max_attempts
        ),
        (Revision(5), p, first.settings_id, JobStatus::Queued, 0, 3)
    );
    assert_eq!(
        (job.run_at, job.checkpoint, job.last_error),
        (at(0), None, None)
    );
    assert!(commands.get_command(Revision(7)).await.unwrap().is_none());
    assert!(
        commands
            .get_command(Revision(8))
            .await
            .unwrap()
            .unwrap()
            .files
            .is_empty()
    );

    // listing: newest first, filters, paging
    let all = commands
        .list_commands(&CommandFilter::default())
        .await
        .unwrap();
    let revs: Vec<u64> = all.iter().map(|c| c.revision.0).collect();
    assert_eq!(revs, vec![8, 6, 5]);
    let of_p = CommandFilter {
        profile_id: Some(p),
        ..Default::default()
    };
    let revs: Vec<u64> = commands
        .list_commands(&of_p)
        .await
        .unwrap()
        .iter()
        .map(|c| c.revision.0)
        .collect();
    assert_eq!(revs, vec![8, 5]);
    let page = CommandFilter {
        before: Some(Revision(8)),
        limit: 1,
        ..Default::default()
    };
    let revs: Vec<u64> = commands
        .list_commands(&page)
        .await
        .unwrap()
        .iter()
        .map(|c| c.revision.0)
        .collect();
    assert_eq!(revs, vec![6]);
    // file status filter
    let claimed = claim(&*jobs, "w", at(10)).await;
    jobs.fail(&claimed.lease, "bad file", &counters(10), at(11))
        .await
        .unwrap();
    let failed = CommandFilter {
        file_status: Some("failed".into()),
        ..Default::default()
    };
    let listed = commands.list_commands(&failed).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].revision, claimed.job.revision);
    assert_eq!(listed[0].updated_at, at(11), "updated_at follows its files");
    let pending = CommandFilter {
        file_status: Some("pending".into()),
        ..Default::default()
    };
    assert_eq!(commands.list_commands(&pending).await.unwrap().len(), 2);
}

async fn record_event_is_atomic(db: &TestDb) {
    let (commands, jobs) = (db.store.commands(), db.store.jobs());
    let p = profile_id(1);
    let ok = command(1, p, 1, 3);
    commands
        .record_event(Revision(1), Some(ok.clone()), at(0))
        .await
        .unwrap();

    // the second job collides with the first: fails after the command and one job were written
    let mut colliding = command(2, p, 2, 3);
    colliding.jobs[1].id = colliding.jobs[0].id;
    let err = commands
        .record_event(Revision(2), Some(colliding.clone()), at(1))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err:?}");
    // a collision with an earlier command's job
    let mut colliding_old = command(2, p, 2, 3);
    colliding_old.jobs[1].id = ok.jobs[0].id;
    assert!(
        commands
            .record_event(Revision(2), Some(colliding_old), at(1))
            .await
            .is_err()
    );

    assert_eq!(
        commands.cursor().await.unwrap(),
        Some(Revision(1)),
        "cursor did not move"
    );
    assert!(commands.get_command(Revision(2)).await.unwrap().is_none());
    assert!(jobs.get_job(colliding.jobs[0].id).await.unwrap().is_none());
    assert_eq!(jobs.stats().await.unwrap().queued, 1);
    // and the event can be recorded once fixed
    assert_eq!(
        record(&*commands, command(2, p, 2, 3), at(2)).await,
        RecordOutcome::Recorded
    );
    assert_eq!(commands.cursor().await.unwrap(), Some(Revision(2)));
}

async fn claim_order_and_run_at(db: &TestDb) {
    let (commands, jobs) = (db.store.commands(), db.store.jobs());
    let p = profile_id(1);
    assert!(try_claim(&*jobs, "w", at(0)).await.is_none());
    let first = command(1, p, 1, 3);
    let second = command(2, p, 1, 3);
    commands
        .record_event(Revision(2), Some(second.clone()), at(5))
        .await
        .unwrap();
    commands
        .record_event(Revision(1), Some(first.clone()), at(10))
        .await
        .unwrap();
    // nothing is runnable before its run_at
    assert!(try_claim(&*jobs, "w", at(4)).await.is_none());
    let c = claim(&*jobs, "w", at(20)).await;
    assert_eq!(c.job.id, second.jobs[0].id, "oldest runnable first");
    assert_eq!((c.job.status, c.job.attempts), (JobStatus::Running, 1));
    assert_eq!(c.lease.owner, worker("w"));
    assert_eq!(c.lease.job_id, c.job.id);
    assert_eq!(c.lease.expires_at, at(50));
    assert_eq!(c.lease.generation, 1);
    // a retry later than the other job's run_at goes behind it
    jobs.retry_at(&c.lease, at(100), "throttled", at(21))
        .await
        .unwrap();
    let d = claim(&*jobs, "w", at(22)).await;
    assert_eq!(d.job.id, first.jobs[0].id);
    jobs.complete(&d.lease, &counters(4), at(23)).await.unwrap();
    assert!(try_claim(&*jobs, "w", at(99)).await.is_none());
    let e = claim(&*jobs, "w", at(100)).await;
    assert_eq!(e.job.id, second.jobs[0].id);
    assert_eq!((e.job.attempts, e.lease.generation), (2, 2));
    assert_eq!(e.job.last_error.as_deref(), Some("throttled"));
}

async fn a_lost_lease_changes_nothing(db: &TestDb) {
    let (commands, jobs) = (db.store.commands(), db.store.jobs());
    record(&*commands, command(1, profile_id(1), 1, 5), at(0)).await;
    let a = claim(&*jobs, "a", at(0)).await;
    assert!(try_claim(&*jobs, "b", at(29)).await.is_none(), "lease held");
    let b = claim(&*jobs, "b", at(30)).await;
    assert_eq!(b.job.id, a.job.id, "an expired lease is re-offered");
    assert_eq!(b.lease.generation, a.lease.generation + 1);
    assert_eq!(b.job.attempts, 2);
    let cp = checkpoint(9, 1, counters(10));
    jobs.checkpoint(&b.lease, &cp, LEASE, at(30)).await.unwrap();
    let before = jobs.get_job(a.job.id).await.unwrap().unwrap();

    // the stale holder can do nothing, with any lease-taking call
    let stale = &a.lease;
    let lost = |r: Result<(), Error>| {
        let e = r.unwrap_err();
        assert!(matches!(e, Error::LeaseLost { .. }), "{e:?}");
        assert_eq!(e.disposition(), Disposition::AbandonJob);
    };
    let other_cp = checkpoint(9, 5, counters(99));
    lost(jobs.heartbeat(stale, LEASE, at(31)).await.map(|_| ()));
    lost(
        jobs.checkpoint(stale, &other_cp, LEASE, at(31))
            .await
            .map(|_| ()),
    );
    lost(jobs.complete(stale, &counters(99), at(31)).await);
    lost(jobs.fail(stale, "x", &counters(99), at(31)).await);
    lost(jobs.retry_at(stale, at(40), "x", at(31)).await.map(|_| ()));
    lost(jobs.defer(stale, at(40), "x", at(31)).await);
    lost(jobs.pause(stale, "x", at(31)).await);
    // same generation, other owner: also refused
    let forged = facebook_connector_core::domain::Lease {
        owner: worker("a"),
        ..b.lease.clone()
    };
    lost(jobs.complete(&forged, &counters(99), at(31)).await);
    lost(jobs.defer(&forged, at(40), "x", at(31)).await);
    assert_eq!(
        jobs.get_job(a.job.id).await.unwrap().unwrap(),
        before,
        "nothing changed"
    );
    let file = &commands
        .get_command(Revision(1))
        .await
        .unwrap()
        .unwrap()
        .files[0];
    assert_eq!(file.counters, counters(10), "the file's counters are b's");

    jobs.complete(&b.lease, &counters(20), at(32))
        .await
        .unwrap();
    lost(jobs.complete(&b.lease, &counters(20), at(33)).await);
    lost(jobs.heartbeat(&b.lease, LEASE, at(33)).await.map(|_| ()));
    lost(jobs.defer(&b.lease, at(40), "x", at(33)).await);
    // a finished job is never re-offered
    assert!(try_claim(&*jobs, "c", at(1000)).await.is_none());
}

async fn heartbeat_extends_the_lease(db: &TestDb) {
    let (profiles, commands, jobs) = (db.store.profiles(), db.store.commands(), db.store.jobs());
    let p = profile(1, 7, at(0));
    profiles.insert_profile(&p).await.unwrap();
    record(&*commands, command(1, p.id, 1, 5), at(0)).await;
    let a = claim(&*jobs, "a", at(0)).await;
    let extended = jobs.heartbeat(&a.lease, LEASE, at(20)).await.unwrap();
    assert_eq!(extended.lease.expires_at, at(50));
    assert_eq!(extended.lease.generation, a.lease.generation);
    assert_eq!(extended.profile, ProfileState::Active);
    assert!(try_claim(&*jobs, "b", at(40)).await.is_none());
    // a lease that expired but was not taken over is still the current one
    let late = jobs
        .heartbeat(&extended.lease, LEASE, at(60))
        .await
        .unwrap();
    assert_eq!(late.lease.expires_at, at(90));
    assert!(try_claim(&*jobs, "b", at(89)).await.is_none());
    assert!(try_claim(&*jobs, "b", at(90)).await.is_some());
}

async fn checkpoint_extends_the_lease(db: &TestDb) {
    let (commands, jobs) = (db.store.commands(), db.store.jobs());
    record(&*commands, command(1, profile_id(1), 1, 5), at(0)).await;
    let a = claim(&*jobs, "a", at(0)).await;
    assert_eq!(a.lease.expires_at, at(30));
    let renewed = jobs
        .checkpoint(&a.lease, &checkpoint(7, 1, counters(10)), LEASE, at(25))
        .await
        .unwrap();
    assert_eq!(renewed.lease.expires_at, at(55));
    assert_eq!(renewed.lease.generation, a.lease.generation);
    assert_eq!(renewed.profile, ProfileState::Unknown, "no profile row");
    // after the old expiry, before the new one: nothing for another worker
    assert!(try_claim(&*jobs, "b", at(31)).await.is_none());
    assert_eq!(next_due(&*jobs, at(31)).await, Some(at(55)));
    assert!(try_claim(&*jobs, "b", at(54)).await.is_none());
    // the holder carries on with the renewed lease
    let again = jobs
        .checkpoint(
            &renewed.lease,
            &checkpoint(7, 2, counters(20)),
            LEASE,
            at(50),
        )
        .await
        .unwrap();
    assert_eq!(again.lease.expires_at, at(80));
    let job = jobs.get_job(a.job.id).await.unwrap().unwrap();
    assert_eq!(
        (job.updated_at, job.checkpoint),
        (at(50), Some(checkpoint(7, 2, counters(20))))
    );
    // and after the new expiry another worker takes over
    let b = claim(&*jobs, "b", at(80)).await;
    assert_eq!(b.job.checkpoint, Some(checkpoint(7, 2, counters(20))));
}

async fn renewals_report_the_profile(db: &TestDb) {
    let (profiles, commands, jobs) = (db.store.profiles(), db.store.commands(), db.store.jobs());
    let (reauth, archived) = (profile(1, 7, at(0)), profile(2, 7, at(0)));
    profiles.insert_profile(&reauth).await.unwrap();
    profiles.insert_profile(&archived).await.unwrap();
    record(&*commands, command(1, reauth.id, 1, 5), at(0)).await;
    record(&*commands, command(2, archived.id, 1, 5), at(0)).await;
    record(&*commands, command(3, profile_id(9), 1, 5), at(0)).await;
    let mut held = HashMap::new();
    while let Some(c) = try_claim(&*jobs, "w", at(1)).await {
        held.insert(c.job.profile_id, c.lease);
    }
    assert_eq!(held.len(), 3);
    let cp = checkpoint(1, 1, counters(10));
    for lease in held.values() {
        let renewal = jobs.heartbeat(lease, LEASE, at(2)).await.unwrap();
        let expected = if lease.job_id == held[&profile_id(9)].job_id {
            ProfileState::Unknown
        } else {
            ProfileState::Active
        };
        assert_eq!(renewal.profile, expected);
    }

    profiles
        .mark_needs_reauth(reauth.id, "error 190", at(3))
        .await
        .unwrap();
    assert!(profiles.archive_profile(archived.id, at(3)).await.unwrap());
    for (profile, state) in [
        (reauth.id, ProfileState::NeedsReauth),
        (archived.id, ProfileState::Archived),
        (profile_id(9), ProfileState::Unknown),
    ] {
        let lease = &held[&profile];
        let heartbeat = jobs.heartbeat(lease, LEASE, at(4)).await.unwrap();
        assert_eq!(heartbeat.profile, state, "heartbeat of {profile}");
        let checkpointed = jobs
            .checkpoint(&heartbeat.lease, &cp, LEASE, at(5))
            .await
            .unwrap();
        assert_eq!(checkpointed.profile, state, "checkpoint of {profile}");
        assert_eq!(checkpointed.lease.expires_at, at(35));
    }
    // archived and needing re-authorisation: archived wins (it is final)
    profiles
        .mark_needs_reauth(archived.id, "error 190", at(6))
        .await
        .unwrap();
    let renewal = jobs
        .heartbeat(&held[&archived.id], LEASE, at(6))
        .await
        .unwrap();
    assert_eq!(renewal.profile, ProfileState::Archived);
}

async fn checkpoint_and_complete_update_the_file(db: &TestDb) {
    let (commands, jobs) = (db.store.commands(), db.store.jobs());
    let cmd = command(1, profile_id(1), 2, 5);
    commands
        .record_event(Revision(1), Some(cmd.clone()), at(0))
        .await
        .unwrap();
    let c = claim(&*jobs, "w", at(1)).await;
    let other = claim(&*jobs, "w2", at(1)).await;
    assert_ne!(other.job.id, c.job.id);
    let cp = checkpoint(1234, 2, counters(20_000));
    jobs.checkpoint(&c.lease, &cp, LEASE, at(1)).await.unwrap();
    let job = jobs.get_job(c.job.id).await.unwrap().unwrap();
    assert_eq!(job.checkpoint, Some(cp));
    let file = |command: &facebook_connector_core::domain::Command| {
        command
            .files
            .iter()
            .find(|f| f.job_id == c.job.id)
            .cloned()
            .unwrap()
    };
    let stored = commands.get_command(Revision(1)).await.unwrap().unwrap();
    assert_eq!(file(&stored).status, FileStatus::Pending);
    assert_eq!(file(&stored).counters, cp.counters);

    // a retried job keeps its checkpoint
    jobs.retry_at(&c.lease, at(2), "5xx", at(2)).await.unwrap();
    let again = claim(&*jobs, "w", at(3)).await;
    assert_eq!(again.job.id, c.job.id);
    assert_eq!(again.job.checkpoint, Some(cp));

    jobs.complete(&again.lease, &counters(25_000), at(4))
        .await
        .unwrap();
    let stored = commands.get_command(Revision(1)).await.unwrap().unwrap();
    assert_eq!(file(&stored).status, FileStatus::Delivered);
    assert_eq!(file(&stored).counters, counters(25_000));
    assert_eq!(stored.updated_at, at(4));
    let job = jobs.get_job(c.job.id).await.unwrap().unwrap();
    assert_eq!((job.status, job.updated_at), (JobStatus::Delivered, at(4)));
    assert_eq!(job.checkpoint, Some(cp));
}

async fn retry_until_give_up(db: &TestDb) {
    let (commands, jobs) = (db.store.commands(), db.store.jobs());
    record(&*commands, command(1, profile_id(1), 1, 2), at(0)).await;
    let first = claim(&*jobs, "w", at(0)).await;
    assert_eq!(
        jobs.retry_at(&first.lease, at(60), "timeout", at(1))
            .await
            .unwrap(),
        RetryOutcome::Scheduled
    );
    let job = jobs.get_job(first.job.id).await.unwrap().unwrap();
    assert_eq!(
        (job.status, job.run_at, job.attempts),
        (JobStatus::Queued, at(60), 1)
    );
    assert!(try_claim(&*jobs, "w", at(59)).await.is_none());
    let second = claim(&*jobs, "w", at(60)).await;
    assert_eq!(second.job.attempts, 2);
    assert_eq!(
        jobs.retry_at(&second.lease, at(120), "timeout again", at(61))
            .await
            .unwrap(),
        RetryOutcome::GaveUp
    );
    let job = jobs.get_job(first.job.id).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(job.last_error.as_deref(), Some("timeout again"));
    let cmd = commands.get_command(Revision(1)).await.unwrap().unwrap();
    assert_eq!(
        cmd.files[0].status,
        FileStatus::Failed {
            reason: "timeout again".into()
        }
    );
    assert!(try_claim(&*jobs, "w", at(1000)).await.is_none());
}

async fn fail_and_requeue(db: &TestDb) {
    let (commands, jobs) = (db.store.commands(), db.store.jobs());
    let cmd = command(1, profile_id(1), 3, 3);
    commands
        .record_event(Revision(1), Some(cmd.clone()), at(0))
        .await
        .unwrap();
    let mut claimed = Vec::new();
    while let Some(c) = try_claim(&*jobs, "w", at(1)).await {
        claimed.push(c);
    }
    assert_eq!(claimed.len(), 3);
    let cp = checkpoint(5, 1, counters(10));
    jobs.checkpoint(&claimed[0].lease, &cp, LEASE, at(1))
        .await
        .unwrap();
    jobs.fail(&claimed[0].lease, "cannot read file", &counters(10), at(2))
        .await
        .unwrap();
    jobs.fail(&claimed[1].lease, "audience deleted", &counters(5), at(2))
        .await
        .unwrap();
    jobs.complete(&claimed[2].lease, &counters(7), at(2))
        .await
        .unwrap();
    let stored = commands.get_command(Revision(1)).await.unwrap().unwrap();
    let statuses: HashMap<JobId, FileStatus> = stored
        .files
        .iter()
        .map(|f| (f.job_id, f.status.clone()))
        .collect();
    assert_eq!(
        statuses[&claimed[0].job.id],
        FileStatus::Failed {
            reason: "cannot read file".into()
        }
    );
    assert_eq!(statuses[&claimed[2].job.id], FileStatus::Delivered);

    // one job
    assert_eq!(
        jobs.requeue(Revision(1), Some(claimed[1].job.id), at(3))
            .await
            .unwrap(),
        1
    );
    // the rest of the revision (the delivered job stays delivered)
    assert_eq!(jobs.requeue(Revision(1), None, at(4)).await.unwrap(), 1);
    assert_eq!(jobs.requeue(Revision(1), None, at(5)).await.unwrap(), 0);
    assert_eq!(jobs.requeue(Revision(2), None, at(5)).await.unwrap(), 0);
    let job = jobs.get_job(claimed[0].job.id).await.unwrap().unwrap();
    assert_eq!(
        (job.status, job.attempts, job.run_at),
        (JobStatus::Queued, 0, at(4))
    );
    assert_eq!(
        job.checkpoint,
        Some(cp),
        "acknowledged batches are not sent twice"
    );
    assert_eq!(job.last_error, None);
    let stored = commands.get_command(Revision(1)).await.unwrap().unwrap();
    let pending = stored
        .files
        .iter()
        .filter(|f| f.status == FileStatus::Pending)
        .count();
    assert_eq!(pending, 2);
    let c = claim(&*jobs, "w", at(6)).await;
    assert_eq!(c.job.attempts, 1, "fresh attempts");
}

async fn lease_expired_on_last_attempt_fails_the_job(db: &TestDb) {
    let (commands, jobs) = (db.store.commands(), db.store.jobs());
    record(&*commands, command(1, profile_id(1), 1, 1), at(0)).await;
    let a = claim(&*jobs, "a", at(0)).await;
    assert!(try_claim(&*jobs, "b", at(31)).await.is_none());
    let job = jobs.get_job(a.job.id).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Failed);
    assert!(job.last_error.unwrap().contains("lease expired"));
}

async fn list_jobs_and_stats(db: &TestDb) {
    let (commands, jobs) = (db.store.commands(), db.store.jobs());
    let (p, q) = (profile_id(1), profile_id(2));
    let c1 = command(1, p, 2, 3);
    let c2 = command(2, q, 1, 3);
    commands
        .record_event(Revision(1), Some(c1.clone()), at(0))
        .await
        .unwrap();
    commands
        .record_event(Revision(2), Some(c2.clone()), at(1))
        .await
        .unwrap();
    let claimed = claim(&*jobs, "w", at(2)).await;
    jobs.complete(&claimed.lease, &counters(3), at(3))
        .await
        .unwrap();
    let _running = claim(&*jobs, "w", at(4)).await;

    let all = jobs.list_jobs(&JobFilter::default()).await.unwrap();
    let ids: Vec<JobId> = all.iter().map(|j| j.id).collect();
    assert_eq!(
        ids,
        vec![c2.jobs[0].id, c1.jobs[1].id, c1.jobs[0].id],
        "newest first"
    );
    let of_rev = JobFilter {
        revision: Some(Revision(1)),
        ..Default::default()
    };
    assert_eq!(jobs.list_jobs(&of_rev).await.unwrap().len(), 2);
    let of_q = JobFilter {
        profile_id: Some(q),
        ..Default::default()
    };
    assert_eq!(jobs.list_jobs(&of_q).await.unwrap()[0].id, c2.jobs[0].id);
    let delivered = JobFilter {
        status: Some(JobStatus::Delivered),
        limit: 5,
        ..Default::default()
    };
    let listed = jobs.list_jobs(&delivered).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, claimed.job.id);
    let one = JobFilter {
        limit: 1,
        ..Default::default()
    };
    assert_eq!(jobs.list_jobs(&one).await.unwrap().len(), 1);
    assert_eq!(jobs.get_job(JobId::new_v7()).await.unwrap(), None);

    let stats = jobs.stats().await.unwrap();
    assert_eq!(
        (
            stats.queued,
            stats.running,
            stats.paused,
            stats.delivered,
            stats.failed
        ),
        (1, 1, 0, 1, 0)
    );
}

async fn concurrent_claimers_never_share_a_job(db: &TestDb) {
    const JOBS: usize = 60;
    const WORKERS: usize = 8;
    let commands = db.store.commands();
    for rev in 0..6u64 {
        commands
            .record_event(
                Revision(rev),
                Some(command(rev, profile_id(1), JOBS / 6, 3)),
                at(0),
            )
            .await
            .unwrap();
    }
    let in_progress = Arc::new(Mutex::new(HashSet::new()));
    let done = Arc::new(Mutex::new(Vec::new()));
    let tasks: Vec<_> = (0..WORKERS)
        .map(|i| {
            let jobs = db.store.jobs();
            let (in_progress, done) = (in_progress.clone(), done.clone());
            tokio::spawn(async move {
                let me = worker(&format!("w{i}"));
                loop {
                    let claimed = match jobs.claim(&me, LEASE, at(1)).await {
                        Ok(Claim::Job(c)) => c,
                        // due work that other claimers were taking at the same moment
                        Ok(Claim::Idle { next_due }) if next_due.is_some_and(|d| d <= at(1)) => {
                            continue;
                        }
                        Ok(Claim::Idle { .. }) => break,
                        // a busy database is a transient error the worker retries
                        Err(e) if e.is_retryable() => continue,
                        Err(e) => panic!("claim failed: {e:?}"),
                    };
                    assert!(
                        in_progress.lock().unwrap().insert(claimed.job.id),
                        "job handed to two workers at once"
                    );
                    tokio::task::yield_now().await;
                    in_progress.lock().unwrap().remove(&claimed.job.id);
                    loop {
                        match jobs.complete(&claimed.lease, &counters(4), at(2)).await {
                            Ok(()) => break,
                            Err(Error::Transient { .. }) => continue,
                            Err(e) => panic!("complete failed: {e:?}"),
                        }
                    }
                    done.lock().unwrap().push(claimed.job.id);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let done = done.lock().unwrap().clone();
    let unique: HashSet<_> = done.iter().collect();
    assert_eq!(done.len(), JOBS, "each job processed exactly once");
    assert_eq!(unique.len(), JOBS);
    let stats = db.store.jobs().stats().await.unwrap();
    assert_eq!(
        (stats.delivered, stats.queued, stats.running),
        (JOBS as u64, 0, 0)
    );
}

async fn newer_schema_is_refused(db: &TestDb) {
    // an up-to-date database passes the startup check
    let status = db.store.schema_status().await.unwrap();
    assert!(!status.applied.is_empty());
    let again = Store::connect(&db.url, &StoreOptions::default())
        .await
        .unwrap();
    again.close().await;

    // a newer binary migrated this database
    common::sqlx_exec(
        db,
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (29990101000000, 'from the future', TRUE, '\\x00', 1)",
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (29990101000000, 'from the future', TRUE, X'00', 1)",
    )
    .await;
    let refused = Store::connect(&db.url, &StoreOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, StoreError::SchemaTooNew { unknown } if unknown == &vec![29990101000000]),
        "{refused:?}"
    );
    assert!(refused.to_string().contains("newer"), "{refused}");
    let migrate = StoreOptions {
        migrate: true,
        ..Default::default()
    };
    assert!(matches!(
        Store::connect(&db.url, &migrate).await,
        Err(StoreError::SchemaTooNew { .. })
    ));
    assert!(matches!(
        db.store.migrate().await,
        Err(StoreError::SchemaTooNew { .. })
    ));
}

/// Whether a line of a query plan reads the `jobs` table (PostgreSQL: `… on jobs`; SQLite:
/// `SCAN`/`SEARCH` of `jobs` or of the claim's aliases `j` and `r`).
fn reads_jobs(line: &str) -> bool {
    let step = line.trim_start_matches(|c: char| !c.is_alphabetic());
    let sqlite = ["SCAN ", "SEARCH "].iter().any(|verb| {
        step.strip_prefix(verb).is_some_and(|rest| {
            ["jobs ", "j ", "r "].iter().any(|t| rest.starts_with(t)) || rest == "jobs"
        })
    });
    line.contains(" on jobs ") || line.ends_with(" on jobs") || sqlite
}

async fn claim_reads_only_unfinished_jobs(db: &TestDb) {
    // many finished jobs of one profile, and queued jobs of fifty profiles
    let commands = db.store.commands();
    commands
        .record_event(Revision(1), Some(command(1, profile_id(1), 2, 3)), t0())
        .await
        .unwrap();
    common::sqlx_exec(
        db,
        "INSERT INTO jobs (id, revision, position, profile_id, settings_id, file, status, \
         attempts, max_attempts, run_at, due_at, lease_generation, counters, created_at, \
         updated_at) SELECT gen_random_uuid(), 1, g + 10, \
         CASE WHEN g <= 20000 THEN j.profile_id ELSE gen_random_uuid() END, j.settings_id, \
         j.file, CASE WHEN g <= 20000 THEN 'delivered' ELSE 'queued' END, 1, 3, j.run_at, \
         j.due_at, 1, j.counters, j.created_at, j.updated_at \
         FROM generate_series(1, 20050) g, (SELECT * FROM jobs LIMIT 1) j",
        "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 20050) \
         INSERT INTO jobs (id, revision, position, profile_id, settings_id, file, status, \
         attempts, max_attempts, run_at, due_at, lease_generation, counters, created_at, \
         updated_at) SELECT randomblob(16), 1, g.n + 10, \
         CASE WHEN g.n <= 20000 THEN j.profile_id ELSE randomblob(16) END, j.settings_id, \
         j.file, CASE WHEN g.n <= 20000 THEN 'delivered' ELSE 'queued' END, 1, 3, j.run_at, \
         j.due_at, 1, j.counters, j.created_at, j.updated_at \
         FROM g, (SELECT * FROM jobs LIMIT 1) j",
    )
    .await;
    common::sqlx_exec(db, "ANALYZE jobs", "ANALYZE").await;
    let plan = if let Some(pg) = db.store.as_postgres() {
        pg.explain_claim().await.unwrap()
    } else {
        db.store.as_sqlite().unwrap().explain_claim().await.unwrap()
    };
    eprintln!("claim plan:\n{plan}");
    assert!(
        plan.contains("jobs_profile_due_idx"),
        "claim does not walk the profiles of unfinished jobs:\n{plan}"
    );
    // every read of `jobs` goes through an index that holds only unfinished jobs
    for line in plan.lines().filter(|line| reads_jobs(line)) {
        let partial = [
            "jobs_profile_due_idx",
            "jobs_running_idx",
            "jobs_claimable_idx",
        ]
        .iter()
        .any(|index| line.contains(index));
        assert!(partial, "claim reads finished jobs: {line}\n{plan}");
    }
    let c = try_claim(&*db.store.jobs(), "w", at(1)).await;
    assert!(c.is_some());
}

async fn unmigrated_database_is_behind(db: TestDb) {
    let refused = Store::connect(&db.url, &StoreOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(refused, StoreError::SchemaBehind { .. }),
        "{refused:?}"
    );
    assert!(refused.to_string().contains("run migrate"), "{refused}");
    let migrate = StoreOptions {
        migrate: true,
        ..Default::default()
    };
    let store = Store::connect(&db.url, &migrate).await.unwrap();
    store.ping().await.unwrap();
    assert_eq!(store.commands().cursor().await.unwrap(), None);
    // migrating twice is a no-op
    assert_eq!(
        store.migrate().await.unwrap(),
        db.store.schema_status().await.unwrap()
    );
    store.close().await;
}

async fn migrate_command_prepares_a_database(db: TestDb) {
    let status = facebook_connector_store::migrate_database(&db.url, &StoreOptions::default())
        .await
        .unwrap();
    assert_eq!(status.applied.len(), 3, "{status:?}");
    // again: nothing to do
    let again = facebook_connector_store::migrate_database(&db.url, &StoreOptions::default())
        .await
        .unwrap();
    assert_eq!(again, status);
    let store = Store::connect(&db.url, &StoreOptions::default())
        .await
        .unwrap();
    assert_eq!(store.schema_status().await.unwrap(), status);
    store.close().await;
}

#[tokio::test]
async fn postgres_migrate_command_prepares_a_database() {
    migrate_command_prepares_a_database(TestDb::postgres_empty().await).await;
}

#[tokio::test]
async fn sqlite_migrate_command_prepares_a_database() {
    migrate_command_prepares_a_database(TestDb::sqlite_empty().await).await;
}

#[tokio::test]
async fn postgres_unmigrated_database_is_behind() {
    unmigrated_database_is_behind(TestDb::postgres_empty().await).await;
}

#[tokio::test]
async fn sqlite_unmigrated_database_is_behind() {
    unmigrated_database_is_behind(TestDb::sqlite_empty().await).await;
}

#[tokio::test]
async fn sqlite_lock_timeout_is_transient() {
    let db = TestDb::sqlite().await;
    let options = StoreOptions {
        busy_timeout: Duration::from_millis(50),
        ..Default::default()
    };
    let store = Store::connect(&db.url, &options).await.unwrap();
    // another connection holds the write lock
    let mut holder = db
        .store
        .as_sqlite()
        .unwrap()
        .pool()
        .acquire()
        .await
        .unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut *holder)
        .await
        .unwrap();
    let err = store
        .commands()
        .record_event(Revision(1), None, at(0))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Transient { .. }), "{err:?}");
    sqlx::query("ROLLBACK").execute(&mut *holder).await.unwrap();
    drop(holder);
    store
        .commands()
        .record_event(Revision(1), None, at(0))
        .await
        .unwrap();
    store.close().await;
}

#[tokio::test]
async fn sqlite_in_memory_works() {
    let options = StoreOptions {
        migrate: true,
        ..Default::default()
    };
    let store = Store::connect("sqlite::memory:", &options).await.unwrap();
    store
        .commands()
        .record_event(Revision(3), None, at(0))
        .await
        .unwrap();
    assert_eq!(store.commands().cursor().await.unwrap(), Some(Revision(3)));
}

#[tokio::test]
async fn connection_errors_and_debug_never_show_the_password() {
    let url = facebook_connector_store::testkit::with_database(
        &facebook_connector_store::testkit::admin_url().replacen(
            "postgres://postgres@",
            "postgres://postgres:hunter2@",
            1,
        ),
        "fbc_no_such_database_for_tests",
    );
    let err = Store::connect(&url, &StoreOptions::default())
        .await
        .unwrap_err();
    let mut chain = format!("{err} | {err:?}");
    let mut source = std::error::Error::source(&err);
    while let Some(s) = source {
        chain.push_str(&format!(" | {s}"));
        source = s.source();
    }
    assert!(!chain.contains("hunter2"), "{chain}");
    let core: Error = err.into();
    assert!(!format!("{core:?}").contains("hunter2"));

    let db = TestDb::sqlite().await;
    let printed = format!("{:?}", db.store);
    assert!(printed.contains("Pool"), "{printed}");
}

async fn released_jobs_of_a_reauth_profile_wait_paused(db: &TestDb) {
    let (profiles, commands, jobs) = (db.store.profiles(), db.store.commands(), db.store.jobs());
    let p = profile(1, 7, at(0));
    profiles.insert_profile(&p).await.unwrap();
    record(&*commands, command(1, p.id, 3, 5), at(0)).await;
    let a = claim(&*jobs, "w1", at(1)).await;
    let b = claim(&*jobs, "w2", at(1)).await;
    // the holder of the third job vanished: its lease runs out before the token breaks
    let Claim::Job(gone) = jobs
        .claim(&worker("w9"), Duration::from_secs(1), at(1))
        .await
        .unwrap()
    else {
        panic!("nothing to claim")
    };
    // a and b are held: only the abandoned job is paused
    assert_eq!(
        profiles
            .mark_needs_reauth(p.id, "error 190", at(2))
            .await
            .unwrap(),
        1
    );
    let job = jobs.get_job(gone.job.id).await.unwrap().unwrap();
    assert_eq!((job.status, job.attempts), (JobStatus::Paused, 1));
    assert!(matches!(
        jobs.complete(&gone.lease, &DeliveryCounters::default(), at(3))
            .await,
        Err(Error::LeaseLost { .. })
    ));

    // a transient failure releases the job: it waits paused (the attempt counts), instead of
    // sitting queued where every claim would have to skip it
    assert_eq!(
        jobs.retry_at(&a.lease, at(30), "timeout", at(3))
            .await
            .unwrap(),
        RetryOutcome::Scheduled
    );
    let job = jobs.get_job(a.job.id).await.unwrap().unwrap();
    assert_eq!((job.status, job.attempts), (JobStatus::Paused, 1));

    // an operator retry of a failed job of that profile also waits for re-authorisation
    jobs.fail(&b.lease, "bad file", &DeliveryCounters::default(), at(4))
        .await
        .unwrap();
    assert_eq!(
        jobs.requeue(Revision(1), Some(b.job.id), at(5))
            .await
            .unwrap(),
        1
    );
    let job = jobs.get_job(b.job.id).await.unwrap().unwrap();
    assert_eq!((job.status, job.attempts), (JobStatus::Paused, 0));
    let stats = jobs.stats().await.unwrap();
    assert_eq!((stats.paused, stats.queued, stats.failed), (3, 0, 0));
    assert!(try_claim(&*jobs, "w3", at(100)).await.is_none());

    let token = EncryptedToken("k1:fresh".into());
    let user = FacebookUser {
        id: FacebookUserId::new("556").unwrap(),
        name: "Bob".into(),
    };
    assert_eq!(
        profiles
            .reauthorize(p.id, &token, &TokenMeta::default(), &user, at(101))
            .await
            .unwrap(),
        3
    );
    let mut claimed = HashSet::new();
    while let Some(c) = try_claim(&*jobs, "w3", at(102)).await {
        claimed.insert(c.job.id);
    }
    assert_eq!(claimed, HashSet::from([a.job.id, b.job.id, gone.job.id]));
}

async fn stats_read_no_finished_job(db: &TestDb) {
    let commands = db.store.commands();
    commands
        .record_event(Revision(1), Some(command(1, profile_id(1), 3, 3)), t0())
        .await
        .unwrap();
    // finished jobs inserted behind the store's back are counted too (the triggers see every
    // write), and so are their removal and a change of state
    common::sqlx_exec(
        db,
        "INSERT INTO jobs (id, revision, position, profile_id, settings_id, file, status, \
         attempts, max_attempts, run_at, due_at, lease_generation, counters, created_at, \
         updated_at) SELECT gen_random_uuid(), 1, g + 10, j.profile_id, j.settings_id, \
         j.file, CASE WHEN g % 10 = 0 THEN 'failed' ELSE 'delivered' END, 1, 3, j.run_at, \
         j.due_at, 1, j.counters, j.created_at, j.updated_at \
         FROM generate_series(1, 20000) g, (SELECT * FROM jobs LIMIT 1) j",
        "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 20000) \
         INSERT INTO jobs (id, revision, position, profile_id, settings_id, file, status, \
         attempts, max_attempts, run_at, due_at, lease_generation, counters, created_at, \
         updated_at) SELECT randomblob(16), 1, g.n + 10, j.profile_id, j.settings_id, \
         j.file, CASE WHEN g.n % 10 = 0 THEN 'failed' ELSE 'delivered' END, 1, 3, j.run_at, \
         j.due_at, 1, j.counters, j.created_at, j.updated_at \
         FROM g, (SELECT * FROM jobs LIMIT 1) j",
    )
    .await;
    let delete = "DELETE FROM jobs WHERE position IN (20, 21)";
    common::sqlx_exec(db, delete, delete).await;
    let update = "UPDATE jobs SET status = 'delivered' WHERE position = 30";
    common::sqlx_exec(db, update, update).await;
    common::sqlx_exec(db, "ANALYZE jobs", "ANALYZE").await;
    let plan = if let Some(pg) = db.store.as_postgres() {
        pg.explain_stats().await.unwrap()
    } else {
        db.store.as_sqlite().unwrap().explain_stats().await.unwrap()
    };
    eprintln!("stats plan:\n{plan}");
    let stats = db.store.jobs().stats().await.unwrap();
    // 2000 failed and 18000 delivered, minus one of each deleted, plus one failed → delivered
    assert_eq!(
        (stats.queued, stats.delivered, stats.failed),
        (3, 17_999 + 1, 1_999 - 1)
    );
    assert!(
        plan.contains("jobs_open_status_idx"),
        "stats do not count from the open-jobs index:\n{plan}"
    );
    // every access to `jobs` is a range read of the open-jobs index, or reads the index that
    // holds only running jobs (PostgreSQL: `… on jobs`; SQLite: `SEARCH jobs …`, while
    // `SCAN jobs …` reads the whole table or index)
    for line in plan.lines() {
        let step = line.trim_start_matches(|c: char| !c.is_alphabetic());
        let ranged = (line.contains("jobs_open_status_idx") && !step.starts_with("SCAN"))
            || line.contains("jobs_running_idx");
        assert!(
            !reads_jobs(line) || ranged,
            "stats scan the jobs table:\n{plan}"
        );
    }
}

/// A database migrated by the first release, with finished jobs, gets exact statistics from
/// the migration that introduced the maintained totals (its backfill).
async fn upgrade_from_the_first_schema_counts_existing_jobs(db: TestDb, backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    let first = "20250101000001_initial.sql";
    std::fs::copy(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations")
            .join(backend)
            .join(first),
        dir.path().join(first),
    )
    .unwrap();
    let old = sqlx::migrate::Migrator::new(dir.path()).await.unwrap();
    if let Some(pg) = db.store.as_postgres() {
        old.run(pg.pool()).await.unwrap();
    } else {
        old.run(db.store.as_sqlite().unwrap().pool()).await.unwrap();
    }
    assert!(matches!(
        db.store.schema_status().await,
        Err(StoreError::SchemaBehind { .. })
    ));

    // the old binary did some work: a profile, a command whose files got delivered, failed,
    // leased (until 12:01) and not yet started
    let (commands, jobs) = (db.store.commands(), db.store.jobs());
    record(&*commands, command(1, profile_id(1), 4, 3), at(0)).await;
    common::sqlx_exec(
        &db,
        "INSERT INTO profiles (id, company_id, ad_account_id, ad_account_name, \
         custom_audience_tos_accepted, token, token_issued_at, facebook_user_id, \
         facebook_user_name, delivery_state, created_at, updated_at) VALUES \
         ('0b6d9a50-0000-4a4e-9d7e-000000000001', 7, 'act_1001', 'account 1', TRUE, \
         'k1:ciphertext-1', '2025-03-01 12:00:00+00', '555', 'Ann', 'ok', \
         '2025-03-01 12:00:00+00', '2025-03-01 12:00:00+00')",
        "INSERT INTO profiles (id, company_id, ad_account_id, ad_account_name, \
         custom_audience_tos_accepted, token, token_issued_at, facebook_user_id, \
         facebook_user_name, delivery_state, created_at, updated_at) VALUES \
         (X'0b6d9a5000004a4e9d7e000000000001', 7, 'act_1001', 'account 1', 1, \
         'k1:ciphertext-1', 1740830400000000, '555', 'Ann', 'ok', 1740830400000000, \
         1740830400000000)",
    )
    .await;
    let worked = "UPDATE jobs SET attempts = 1, status = CASE position WHEN 0 THEN 'delivered' \
                  ELSE 'failed' END WHERE position IN (0, 1)";
    common::sqlx_exec(&db, worked, worked).await;
    common::sqlx_exec(
        &db,
        "UPDATE jobs SET status = 'running', attempts = 1, lease_owner = 'w', \
         lease_generation = 1, lease_expires_at = '2025-03-01 12:01:00+00', \
         due_at = '2025-03-01 12:01:00+00' WHERE position = 2",
        "UPDATE jobs SET status = 'running', attempts = 1, lease_owner = 'w', \
         lease_generation = 1, lease_expires_at = 1740830460000000, \
         due_at = 1740830460000000 WHERE position = 2",
    )
    .await;

    let status = db.store.migrate().await.unwrap();
    assert_eq!(status.applied.len(), 3);
    let stats = jobs.stats().await.unwrap();
    assert_eq!(
        (stats.queued, stats.running, stats.delivered, stats.failed),
        (1, 1, 1, 1)
    );
    common::assert_stats_match_rows(&db).await;

    // the old profile reads with what its row knew about the token
    let stored = db
        .store
        .profiles()
        .get_profile(profile_id(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.token_meta,
        TokenMeta {
            issued_at: Some(t0()),
            ..TokenMeta::default()
        }
    );
    // the new claims serve the old queue: the queued job now, the leased one once its lease
    // ran out
    let queued = claim(&*jobs, "w2", at(1)).await;
    assert_eq!(queued.job.attempts, 1);
    jobs.complete(&queued.lease, &counters(5), at(2))
        .await
        .unwrap();
    assert_eq!(next_due(&*jobs, at(2)).await, Some(at(60)));
    let leased = claim(&*jobs, "w2", at(60)).await;
    assert_eq!((leased.job.attempts, leased.lease.generation), (2, 2));
}

#[tokio::test]
async fn postgres_upgrade_from_the_first_schema_counts_existing_jobs() {
    upgrade_from_the_first_schema_counts_existing_jobs(TestDb::postgres_empty().await, "postgres")
        .await;
}

#[tokio::test]
async fn sqlite_upgrade_from_the_first_schema_counts_existing_jobs() {
    upgrade_from_the_first_schema_counts_existing_jobs(TestDb::sqlite_empty().await, "sqlite")
        .await;
}

/// What `deliveries` shows: each file's attempts and last reason, and `paused` for the
/// unfinished files of a profile that needs re-authorisation (also as a listing filter).
async fn command_files_show_attempts_and_paused(db: &TestDb) {
    let (profiles, commands, jobs) = (db.store.profiles(), db.store.commands(), db.store.jobs());
    let (p1, p2) = (profile(1, 7, at(0)), profile(2, 7, at(0)));
    profiles.insert_profile(&p1).await.unwrap();
    profiles.insert_profile(&p2).await.unwrap();
    record(&*commands, command(1, p1.id, 3, 5), at(0)).await;
    record(&*commands, command(2, p2.id, 1, 5), at(1)).await;
    let file_of = |command: &facebook_connector_core::domain::Command, job: JobId| {
        command
            .files
            .iter()
            .find(|f| f.job_id == job)
            .cloned()
            .unwrap()
    };
    let listed = |status: &'static str| {
        let commands = commands.clone();
        async move {
            let filter = CommandFilter {
                file_status: Some(status.into()),
                ..Default::default()
            };
            let found = commands.list_commands(&filter).await.unwrap();
            found.iter().map(|c| c.revision.0).collect::<Vec<u64>>()
        }
    };

    // an attempt that will be retried: pending, one attempt, the reason it waits
    let a = claim(&*jobs, "w", at(2)).await;
    assert_eq!(a.job.revision, Revision(1));
    jobs.retry_at(&a.lease, at(1000), "facebook timed out", at(2))
        .await
        .unwrap();
    let stored = commands.get_command(Revision(1)).await.unwrap().unwrap();
    let fa = file_of(&stored, a.job.id);
    assert_eq!(fa.status, FileStatus::Pending);
    assert_eq!(
        (fa.attempts, fa.last_error.as_deref()),
        (1, Some("facebook timed out"))
    );
    assert!(
        stored
            .files
            .iter()
            .filter(|f| f.job_id != a.job.id)
            .all(|f| f.attempts == 0 && f.last_error.is_none() && f.status == FileStatus::Pending)
    );

    // the profile needs re-authorisation: its waiting files and the one still running show
    // paused, with the profile's reason
    let b = claim(&*jobs, "w", at(3)).await;
    assert_eq!(b.job.revision, Revision(1));
    profiles
        .mark_needs_reauth(p1.id, "error 190", at(4))
        .await
        .unwrap();
    assert_eq!(
        jobs.get_job(b.job.id).await.unwrap().unwrap().status,
        JobStatus::Running,
        "its worker has not noticed yet"
    );
    let stored = commands.get_command(Revision(1)).await.unwrap().unwrap();
    for file in &stored.files {
        assert_eq!(
            file.status,
            FileStatus::Paused {
                reason: "error 190".into()
            },
            "{file:?}"
        );
        assert_eq!(file.status.as_str(), "paused");
    }
    assert_eq!(listed("paused").await, vec![1]);
    assert_eq!(
        listed("pending").await,
        vec![2],
        "paused files are not pending"
    );

    // the worker pauses its job: still the profile's reason, the attempt given back
    jobs.pause(&b.lease, "token invalid", at(5)).await.unwrap();
    let stored = commands.get_command(Revision(1)).await.unwrap().unwrap();
    let fb = file_of(&stored, b.job.id);
    assert_eq!(fb.status.reason(), Some("error 190"));
    assert_eq!(fb.attempts, 0);

    // re-authorised: pending again; delivered files carry no reason
    let user = FacebookUser {
        id: FacebookUserId::new("556").unwrap(),
        name: "Bob".into(),
    };
    profiles
        .reauthorize(
            p1.id,
            &EncryptedToken("k1:fresh".into()),
            &fresh_meta(),
            &user,
            at(6),
        )
        .await
        .unwrap();
    assert!(listed("paused").await.is_empty());
    assert_eq!(listed("pending").await, vec![2, 1]);
    let c = claim(&*jobs, "w", at(7)).await;
    jobs.complete(&c.lease, &counters(10), at(8)).await.unwrap();
    let stored = commands.get_command(c.job.revision).await.unwrap().unwrap();
    let fc = file_of(&stored, c.job.id);
    assert_eq!(fc.status, FileStatus::Delivered);
    assert_eq!((fc.attempts, fc.last_error.as_deref()), (1, None));
    assert_eq!(fc.counters, counters(10));
    assert_eq!(listed("delivered").await, vec![c.job.revision.0]);
}
