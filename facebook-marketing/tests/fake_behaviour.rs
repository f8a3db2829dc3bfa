//! Behaviour against the crate's own fake Graph API, over real HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use facebook_connector_core::Error;
use facebook_connector_core::domain::Received;
use facebook_connector_core::domain::{AudienceId, FacebookUserId};
use facebook_connector_core::member::MemberKey;
use facebook_connector_core::payload::Payload;
use facebook_connector_core::ports::{
    AudienceSink, FacebookAccounts, UploadOutcome, UploadSession, UploadTarget,
};
use facebook_marketing::testkit::Seed;
use facebook_marketing::testkit::{AdAccountSpec, Endpoint, FakeGraph, Fault, TokenSpec};
use facebook_marketing::{GraphClient, RetryPolicy};
use secrecy::{ExposeSecret, SecretString};

fn hash(i: usize) -> String {
    format!("{i:064x}")
}

fn payload(from: usize, n: usize) -> Payload {
    let rows: Vec<Vec<String>> = (from..from + n)
        .map(|i| vec![hash(i), String::new()])
        .collect();
    Payload::from_rows(vec![MemberKey::EMAIL, MemberKey::MADID], &rows)
}

fn target_of(seed: &Seed, audience: &AudienceId) -> UploadTarget {
    UploadTarget {
        ad_account: seed.ad_account.clone(),
        audience: audience.clone(),
    }
}

/// Facebook's running totals of an accepted batch.
fn totals(outcome: UploadOutcome) -> Received {
    match outcome {
        UploadOutcome::Accepted(totals) => totals,
        other => panic!("not accepted: {other:?}"),
    }
}

fn session(id: u64, seq: u32, last: bool) -> UploadSession {
    UploadSession {
        session_id: id,
        batch_seq: seq,
        last_batch: last,
        estimated_num_total: Some(30),
    }
}

#[tokio::test]
async fn profile_flow_token_exchange_accounts_and_audiences() {
    let fake = FakeGraph::start().await.unwrap();
    let user = fake.add_user("Grace");
    let short = fake.issue_token(&user, TokenSpec::default());
    let usable = fake.add_ad_account(&user, AdAccountSpec::default());
    let no_business = fake.add_ad_account(
        &user,
        AdAccountSpec {
            business: None,
            ..AdAccountSpec::default()
        },
    );
    let c = fake.client();

    let info = c.token_info(&short).await.unwrap();
    assert!(info.is_valid);
    assert!(info.missing_scopes().is_empty());
    assert_eq!(info.user_id.as_ref(), Some(&user));
    // both expiries come from debug_token: the token's and its data access's (~90 days)
    let expires = info.expires_at.unwrap();
    let data_access = info.data_access_expires_at.unwrap();
    assert!(data_access > expires, "{expires} {data_access}");

    let long = FacebookAccounts::exchange_long_lived(&c, &short)
        .await
        .unwrap();
    assert_eq!(fake.token_is_long_lived(&long.token), Some(true));
    assert_ne!(long.token.expose_secret(), short.expose_secret());

    let me = FacebookAccounts::me(&c, &long.token).await.unwrap();
    assert_eq!((me.id, me.name.as_str()), (user.clone(), "Grace"));

    let accounts = FacebookAccounts::ad_accounts(&c, &long.token)
        .await
        .unwrap();
    assert_eq!(accounts.len(), 2);
    let found = accounts.iter().find(|a| a.id == usable).unwrap();
    assert!(found.supports_custom_audiences());
    let other = accounts.iter().find(|a| a.id == no_business).unwrap();
    assert!(!other.supports_custom_audiences());
    assert!(
        FacebookAccounts::ad_account(&c, &long.token, &usable)
            .await
            .unwrap()
            .is_some()
    );

    // another user's account is invisible
    let stranger = fake.seed();
    assert_eq!(
        FacebookAccounts::ad_account(&c, &long.token, &stranger.ad_account)
            .await
            .unwrap(),
        None
    );

    let created =
        AudienceSink::create_audience(&c, &long.token, &usable, "Buyers", "people who buy")
            .await
            .unwrap();
    let stored = fake.audience(&created.id).unwrap();
    assert_eq!(stored.ad_account, usable);
    assert_eq!(stored.description, "people who buy");
    let gone = fake.add_audience(&usable, "old");
    fake.delete_audience(&gone);
    let found = c
        .find_audiences(&long.token, &[created.id.clone(), gone])
        .await
        .unwrap();
    assert_eq!(found, vec![created]);

    // an account without accepted terms: permission error with a clear reason
    let no_tos = fake.add_ad_account(
        &user,
        AdAccountSpec {
            tos_accepted: false,
            ..AdAccountSpec::default()
        },
    );
    match AudienceSink::create_audience(&c, &long.token, &no_tos, "x", "").await {
        Err(Error::PermissionDenied { reason, .. }) => {
            assert!(reason.contains("Custom Audience Terms"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn ad_accounts_are_paged_through() {
    let fake = FakeGraph::start().await.unwrap();
    let seed = fake.seed();
    for i in 0..249 {
        fake.add_ad_account(
            &seed.user,
            AdAccountSpec {
                name: format!("account {i}"),
                ..AdAccountSpec::default()
            },
        );
    }
    let c = fake.client();
    let accounts = FacebookAccounts::ad_accounts(&c, &seed.token)
        .await
        .unwrap();
    assert_eq!(accounts.len(), 250);
    let mut ids: Vec<_> = accounts.iter().map(|a| a.id.clone()).collect();
    ids.dedup();
    assert_eq!(ids.len(), 250);
    assert_eq!(fake.calls(Endpoint::AdAccounts), 3);

    fake.set_foreign_paging(true);
    let err = FacebookAccounts::ad_accounts(&c, &seed.token)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Rejected { .. }), "{err:?}");
}

#[tokio::test]
async fn a_session_upload_is_stored_once_per_batch() {
    let fake = FakeGraph::start().await.unwrap();
    let seed = fake.seed();
    let audience = fake.add_audience(&seed.ad_account, "a");
    let target = target_of(&seed, &audience);
    let c = fake.client();
    for seq in 1..=3u32 {
        let receipt = AudienceSink::add_members(
            &c,
            &seed.token,
            &target,
            &payload((seq as usize - 1) * 10, 10),
            &session(42, seq, seq == 3),
        )
        .await
        .unwrap();
        // Facebook's running totals of the session, as reported
        assert_eq!(totals(receipt).received, 10 * u64::from(seq));
        if seq == 1 {
            // a repeated batch of an open session is answered but not counted again
            let again = AudienceSink::add_members(
                &c,
                &seed.token,
                &target,
                &payload(0, 10),
                &session(42, 1, false),
            )
            .await
            .unwrap();
            assert_eq!(totals(again).received, 10);
        }
    }
    let rows = fake.rows(&audience);
    assert_eq!(rows.len(), 30);
    assert_eq!(rows[0][0], hash(0));
    assert_eq!(rows[29][0], hash(29));
    let s = fake.session(&seed.ad_account, 42).unwrap();
    assert_eq!(s.batches_seen, vec![1, 2, 3]);
    assert_eq!(s.num_received, 30);
    assert!(s.closed);
    assert_eq!(s.estimated_num_total, Some(30));
    // the session finished: a re-sent last batch and a new one get 2650/1870159, which the
    // client reports as an outcome; nothing is stored again
    for (seq, last) in [(3, true), (4, false)] {
        let outcome = AudienceSink::add_members(
            &c,
            &seed.token,
            &target,
            &payload(30, 1),
            &session(42, seq, last),
        )
        .await
        .unwrap();
        assert_eq!(outcome, UploadOutcome::SessionFinished);
    }
    assert_eq!(fake.rows(&audience).len(), 30);
    assert_eq!(fake.session(&seed.ad_account, 42).unwrap().upload_calls, 6);
}

#[tokio::test(start_paused = true)]
async fn a_session_older_than_90_minutes_has_expired() {
    let fake = FakeGraph::start().await.unwrap();
    let seed = fake.seed();
    let audience = fake.add_audience(&seed.ad_account, "a");
    let target = target_of(&seed, &audience);
    let c = fake.client();
    let rows = payload(0, 2);
    let (first, second) = (session(5, 1, false), session(5, 2, false));
    let first = AudienceSink::add_members(&c, &seed.token, &target, &rows, &first).await;
    assert!(matches!(first.unwrap(), UploadOutcome::Accepted(_)));
    tokio::time::advance(Duration::from_secs(91 * 60)).await;
    let second = AudienceSink::add_members(&c, &seed.token, &target, &rows, &second).await;
    assert_eq!(second.unwrap(), UploadOutcome::SessionExpired);
    // and on demand
    let other = session(6, 1, false);
    AudienceSink::add_members(&c, &seed.token, &target, &payload(0, 2), &other)
        .await
        .unwrap();
    fake.expire_session(&seed.ad_account, 6);
    let outcome = AudienceSink::add_members(
        &c,
        &seed.token,
        &target,
        &payload(2, 2),
        &session(6, 2, true),
    )
    .await
    .unwrap();
    assert_eq!(outcome, UploadOutcome::SessionExpired);
    assert!(fake.session(&seed.ad_account, 6).unwrap().expired);
    assert_eq!(fake.rows(&audience).len(), 4);
}

#[tokio::test]
async fn an_audience_update_in_progress_is_waited_out() {
    let fake = FakeGraph::start().await.unwrap();
    let seed = fake.seed();
    let audience = fake.add_audience(&seed.ad_account, "a");
    let target = target_of(&seed, &audience);
    let c = fake.client();
    fake.fail(Endpoint::AddMembers, 2, Fault::update_in_progress());
    let outcome = AudienceSink::add_members(
        &c,
        &seed.token,
        &target,
        &payload(0, 3),
        &session(8, 1, true),
    )
    .await
    .unwrap();
    assert_eq!(totals(outcome).received, 3);
    assert_eq!(fake.calls(Endpoint::AddMembers), 3);
    // an update that outlasts the client's short budget is handed back as a throttle
    fake.fail_always(Endpoint::AddMembers, Fault::update_in_progress());
    let err = AudienceSink::add_members(
        &c,
        &seed.token,
        &target,
        &payload(3, 3),
        &session(9, 1, true),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Throttled {
                retry_after: Some(_),
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_throttled_upload_completes_exactly_once() {
    let fake = FakeGraph::start().await.unwrap();
    let seed = fake.seed();
    let audience = fake.add_audience(&seed.ad_account, "a");
    let target = target_of(&seed, &audience);
    let c = fake.client();
    // batch 1 goes through; batch 2 is throttled twice, then accepted but its answer is lost
    AudienceSink::add_members(
        &c,
        &seed.token,
        &target,
        &payload(0, 5),
        &session(7, 1, false),
    )
    .await
    .unwrap();
    fake.fail(Endpoint::AddMembers, 2, Fault::throttle(80003, 0));
    fake.fail(Endpoint::AddMembers, 1, Fault::AcceptThenFail);
    let receipt = AudienceSink::add_members(
        &c,
        &seed.token,
        &target,
        &payload(5, 5),
        &session(7, 2, true),
    )
    .await
    .unwrap();
    // the last batch was processed but its answer lost: the retry finds the session
    // finished, which is what the client reports (the batch counts as acknowledged)
    assert_eq!(receipt, UploadOutcome::SessionFinished);
    assert_eq!(fake.calls(Endpoint::AddMembers), 5);
    let rows = fake.rows(&audience);
    assert_eq!(rows.len(), 10, "each batch stored exactly once");
    let expected: Vec<String> = (0..10).map(hash).collect();
    let got: Vec<String> = rows.into_iter().map(|r| r[0].clone()).collect();
    assert_eq!(got, expected);
    assert_eq!(fake.session(&seed.ad_account, 7).unwrap().num_received, 10);
}

#[tokio::test]
async fn an_upload_interrupted_by_a_long_throttle_is_resumed_by_the_caller_without_duplicates() {
    let fake = FakeGraph::start().await.unwrap();
    let seed = fake.seed();
    let audience = fake.add_audience(&seed.ad_account, "a");
    let target = target_of(&seed, &audience);
    let c = fake.client();
    fake.fail(Endpoint::AddMembers, 1, Fault::AcceptThenFail);
    fake.fail(Endpoint::AddMembers, 1, Fault::throttle(80003, 30));
    // the first answer is lost, the retry is throttled for 30 minutes: the client gives up
    let err = AudienceSink::add_members(
        &c,
        &seed.token,
        &target,
        &payload(0, 4),
        &session(9, 1, true),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::Throttled { .. }), "{err:?}");
    let wait = err.retry_after().unwrap();
    assert!(
        wait > Duration::from_secs(29 * 60) && wait <= Duration::from_secs(30 * 60),
        "{wait:?}"
    );
    // later (a new client, as after a worker restart) the same last batch is sent again:
    // Facebook processed it the first time, the session finished, and that is what the
    // client reports (the engine counts the batch as acknowledged)
    let later = fake.client();
    let outcome = AudienceSink::add_members(
        &later,
        &seed.token,
        &target,
        &payload(0, 4),
        &session(9, 1, true),
    )
    .await
    .unwrap();
    assert_eq!(outcome, UploadOutcome::SessionFinished);
    assert_eq!(fake.rows(&audience).len(), 4);
}

#[tokio::test]
async fn first_upload_803_is_retried() {
    let fake = FakeGraph::start().await.unwrap();
    let seed = fake.seed();
    let audience = fake.add_audience(&seed.ad_account, "new");
    let target = target_of(&seed, &audience);
    fake.fail_first_upload_with_803(&audience);
    let c = fake.client();
    AudienceSink::add_members(
        &c,
        &seed.token,
        &target,
        &payload(0, 3),
        &session(1, 1, true),
    )
    .await
    .unwrap();
    assert_eq!(fake.calls(Endpoint::AddMembers), 2);
    assert_eq!(fake.rows(&audience).len(), 3);
}

#[tokio::test]
async fn an_invalid_token_is_reported_and_never_retried() {
    let fake = FakeGraph::start().await.unwrap();
    let seed = fake.seed();
    let audience = fake.add_audience(&seed.ad_account, "a");
    let target = target_of(&seed, &audience);
    fake.invalidate_token(&seed.token);
    let c = fake.client();
    let err = AudienceSink::add_members(
        &c,
        &seed.token,
        &target,
        &payload(0, 1),
        &session(1, 1, true),
    )
    .await
    .unwrap_err();
    assert!(err.is_invalid_token(), "{err:?}");
    assert_eq!(fake.calls(Endpoint::AddMembers), 1);
    let info = c.token_info(&seed.token).await.unwrap();
    assert!(!info.is_valid);
}

#[tokio::test]
async fn a_wrong_appsecret_proof_is_refused() {
    let fake = FakeGraph::start().await.unwrap();
    let seed = fake.seed();
    let mut cfg = fake.config();
    cfg.app_secret = SecretString::from("not-the-app-secret".to_owned());
    let c = GraphClient::new(cfg).unwrap();
    let err = FacebookAccounts::me(&c, &seed.token).await.unwrap_err();
    match err {
        Error::Rejected { reason, .. } => assert!(reason.contains("appsecret_proof"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn uploads_are_validated_like_facebook() {
    let fake = FakeGraph::start().await.unwrap();
    let seed = fake.seed();
    let audience = fake.add_audience(&seed.ad_account, "a");
    let target = target_of(&seed, &audience);
    let c = fake.client();
    // a row narrower than the schema
    let bad = Payload::from_rows(vec![MemberKey::EMAIL, MemberKey::PHONE], &[vec![hash(1)]]);
    let err = AudienceSink::add_members(&c, &seed.token, &target, &bad, &session(3, 1, false))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Rejected { .. }), "{err:?}");
    // too many rows
    let big = payload(0, 10_001);
    let err = AudienceSink::add_members(&c, &seed.token, &target, &big, &session(3, 1, false))
        .await
        .unwrap_err();
    match err {
        Error::Rejected { reason, .. } => assert!(reason.contains("too many rows"), "{reason}"),
        other => panic!("{other:?}"),
    }
    // value-level problems are counted, not refused
    let mixed = Payload::from_rows(
        vec![MemberKey::EMAIL, MemberKey::MADID],
        &[
            vec![hash(1), String::new()],
            vec!["Not-Hashed@example.com".into(), String::new()],
            vec![String::new(), hash(2)],
            vec![String::new(), "38400000-8cf0-11bd-b23e-10b96e40000d".into()],
        ],
    );
    let receipt = AudienceSink::add_members(&c, &seed.token, &target, &mixed, &session(3, 1, true))
        .await
        .unwrap();
    assert_eq!(
        totals(receipt),
        Received {
            received: 4,
            invalid: 2
        }
    );
    // removals are stored apart
    AudienceSink::remove_members(&c, &seed.token, &target, &payload(0, 2))
        .await
        .unwrap();
    assert_eq!(fake.audience(&audience).unwrap().removals[0].rows.len(), 2);
    // a flagged audience refuses uploads
    fake.flag_audience(&audience);
    match AudienceSink::add_members(
        &c,
        &seed.token,
        &target,
        &payload(0, 1),
        &session(4, 1, true),
    )
    .await
    {
        Err(Error::Rejected { reason, .. }) => assert!(reason.contains("flagged"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn transient_failures_and_latency() {
    let fake = FakeGraph::start().await.unwrap();
    let seed = fake.seed();
    let c = fake.client();
    fake.fail(Endpoint::Me, 2, Fault::ServerError { status: 502 });
    FacebookAccounts::me(&c, &seed.token).await.unwrap();
    assert_eq!(fake.calls(Endpoint::Me), 3);

    fake.fail_always(Endpoint::Me, Fault::graph(2, None));
    let err = FacebookAccounts::me(&c, &seed.token).await.unwrap_err();
    assert!(err.is_retryable());
    assert_eq!(
        fake.calls(Endpoint::Me),
        3 + RetryPolicy::fast().max_attempts as usize
    );
    fake.clear_faults();

    let cfg = fake
        .config()
        .with_timeout(Duration::from_millis(100))
        .with_retry(RetryPolicy::none());
    let impatient = GraphClient::new(cfg).unwrap();
    fake.fail(Endpoint::Me, 1, Fault::Latency(Duration::from_secs(2)));
    let err = FacebookAccounts::me(&impatient, &seed.token)
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
}

/// On paused time (the fake runs on the test's runtime): the waits are the limiter's and
/// nothing else's, so they can be asserted exactly. Without the limiter the calls take no
/// time at all and this fails.
#[tokio::test(start_paused = true)]
async fn usage_headers_slow_down_but_do_not_fail_calls() {
    use tokio::time::Instant;
    let fake = FakeGraph::start().await.unwrap();
    let seed = fake.seed();
    // app usage at 95%: LimiterConfig::fast spaces calls by 20 ms × (95-75)/(100-75) = 16 ms
    fake.set_usage(95, 99);
    let c = fake.client();
    let start = Instant::now();
    for _ in 0..3 {
        FacebookAccounts::me(&c, &seed.token).await.unwrap();
    }
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(32) && took <= Duration::from_millis(50),
        "two spaced calls after the first: {took:?}"
    );
    assert_eq!(fake.calls(Endpoint::Me), 3);
}

/// Business usage paces the ad account it was reported for, not the others.
#[tokio::test(start_paused = true)]
async fn ad_account_usage_paces_that_ad_account_only() {
    use tokio::time::Instant;
    let fake = FakeGraph::start().await.unwrap();
    let seed = fake.seed();
    let other = fake.add_ad_account(&seed.user, Default::default());
    let a = target_of(&seed, &fake.add_audience(&seed.ad_account, "a"));
    let b = UploadTarget {
        ad_account: other.clone(),
        audience: fake.add_audience(&other, "b"),
    };
    fake.set_usage(0, 95);
    let c = fake.client();
    let start = Instant::now();
    for seq in 1..=3 {
        AudienceSink::add_members(&c, &seed.token, &a, &payload(0, 1), &session(1, seq, false))
            .await
            .unwrap();
    }
    let paced = start.elapsed();
    assert!(paced >= Duration::from_millis(32), "{paced:?}");
    let start = Instant::now();
    AudienceSink::add_members(&c, &seed.token, &b, &payload(0, 1), &session(1, 1, false))
        .await
        .unwrap();
    assert_eq!(
        start.elapsed(),
        Duration::ZERO,
        "another ad account is not held back"
    );
}

/// A throttle with a 0.6 s estimate costs about 0.6 s (not the 20 s of a pacing wait taken
/// from its 100% usage figure), and an estimate of 0 means "retry soon" (not 60 s).
#[tokio::test(start_paused = true)]
async fn throttle_estimates_are_honoured_and_zero_means_soon() {
    use tokio::time::Instant;
    let fake = FakeGraph::start().await.unwrap();
    let seed = fake.seed();
    let t = target_of(&seed, &fake.add_audience(&seed.ad_account, "a"));
    // production limiter and retry timings, on paused time
    let production = || {
        GraphClient::new(
            fake.config()
                .with_retry(RetryPolicy::default())
                .with_limiter(Default::default()),
        )
        .unwrap()
    };
    let c = production();
    fake.fail(
        Endpoint::AddMembers,
        1,
        Fault::throttle_for(80003, Duration::from_millis(600)),
    );
    let start = Instant::now();
    AudienceSink::add_members(&c, &seed.token, &t, &payload(0, 1), &session(3, 1, false))
        .await
        .unwrap();
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(600) && took <= Duration::from_millis(700),
        "{took:?}"
    );
    // a fresh client: no slot spacing left over from the first throttle
    let c = production();
    fake.fail(Endpoint::AddMembers, 1, Fault::throttle(17, 0));
    let start = Instant::now();
    AudienceSink::add_members(&c, &seed.token, &t, &payload(1, 1), &session(3, 2, false))
        .await
        .unwrap();
    let took = start.elapsed();
    assert!(
        took <= Duration::from_millis(500),
        "a short backoff: {took:?}"
    );
    assert_eq!(fake.calls(Endpoint::AddMembers), 4);
}

/// Concurrent uploads of one ad account throttled together come back one after another:
/// each reserves its own slot after the throttle's end.
#[tokio::test(start_paused = true)]
async fn concurrent_uploads_after_a_throttle_are_spread_out() {
    use tokio::time::Instant;
    let fake = FakeGraph::start().await.unwrap();
    let seed = fake.seed();
    let t = target_of(&seed, &fake.add_audience(&seed.ad_account, "a"));
    let c = GraphClient::new(
        fake.config()
            .with_retry(RetryPolicy::default())
            .with_limiter(Default::default()),
    )
    .unwrap();
    // the first upload is throttled for 2 s; the others arrive while the block holds
    fake.fail(
        Endpoint::AddMembers,
        1,
        Fault::throttle_for(80003, Duration::from_secs(2)),
    );
    let start = Instant::now();
    AudienceSink::add_members(&c, &seed.token, &t, &payload(0, 1), &session(4, 1, false))
        .await
        .unwrap();
    assert!(start.elapsed() >= Duration::from_secs(2));
    fake.fail(
        Endpoint::AddMembers,
        4,
        Fault::throttle_for(80003, Duration::from_secs(2)),
    );
    let tasks: Vec<_> = (0..4u32)
        .map(|i| {
            let c = c.clone();
            let token = seed.token.clone();
            let t = t.clone();
            tokio::spawn(async move {
                AudienceSink::add_members(
                    &c,
                    &token,
                    &t,
                    &payload(10 + i as usize, 1),
                    &session(5, i + 1, false),
                )
                .await
                .unwrap();
                Instant::now()
            })
        })
        .collect();
    let mut done = Vec::new();
    for task in tasks {
        done.push(task.await.unwrap());
    }
    done.sort();
    for pair in done.windows(2) {
        let gap = pair[1] - pair[0];
        // LimiterConfig::default().queue_spacing: 250 ms, up to 25% jitter
        assert!(gap >= Duration::from_millis(250), "{done:?}");
    }
    assert_eq!(fake.rows(&t.audience).len(), 5);
}

#[tokio::test]
async fn revoking_many_users_batches_by_fifty_and_retries_transient_entries() {
    let fake = FakeGraph::start().await.unwrap();
    let mut users: Vec<FacebookUserId> =
        (0..120).map(|i| fake.add_user(&format!("u{i}"))).collect();
    let token = fake.issue_token(&users[0], TokenSpec::default());
    fake.fail_revoke(&users[7], 1);
    users.push(FacebookUserId::new("999999").unwrap()); // unknown to facebook
    let c = fake.client();
    let results = FacebookAccounts::revoke_permissions(&c, &users)
        .await
        .unwrap();
    assert_eq!(results.len(), 121);
    for (user, result) in &results[..120] {
        assert!(result.is_ok(), "{user}: {result:?}");
    }
    assert!(matches!(results[120].1, Err(Error::Rejected { .. })));
    assert_eq!(fake.largest_batch(), 50);
    let revoked = fake.revoked_users();
    assert_eq!(revoked.len(), 120);
    // revoked users' tokens stop working
    assert!(!c.token_info(&token).await.unwrap().is_valid);
}

#[tokio::test]
async fn audiences_per_ad_account_are_limited() {
    let fake = FakeGraph::start().await.unwrap();
    let seed = fake.seed();
    for i in 0..500 {
        fake.add_audience(&seed.ad_account, &format!("a{i}"));
    }
    let c = fake.client();
    let err = AudienceSink::create_audience(&c, &seed.token, &seed.ad_account, "one too many", "")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Rejected { .. }), "{err:?}");
    let ids: Vec<AudienceId> = fake
        .audiences_in(&seed.ad_account)
        .into_iter()
        .map(|a| a.id)
        .take(120)
        .collect();
    let found = c.find_audiences(&seed.token, &ids).await.unwrap();
    assert_eq!(found.len(), 120, "lookups are chunked");
}

/// A full batch — 10,000 members with all 14 keys hashed, about 10 MB of JSON — is a normal
/// upload, not a body the fake refuses.
#[tokio::test]
async fn a_full_batch_with_every_key_is_accepted() {
    let fake = FakeGraph::start().await.unwrap();
    let seed = fake.seed();
    let audience = fake.add_audience(&seed.ad_account, "full");
    let rows: Vec<Vec<String>> = (0..10_000)
        .map(|i| MemberKey::ALL.iter().map(|_| hash(i)).collect())
        .collect();
    let full = Payload::from_rows(MemberKey::ALL.to_vec(), &rows);
    let c = fake.client();
    let received = totals(
        AudienceSink::add_members(
            &c,
            &seed.token,
            &target_of(&seed, &audience),
            &full,
            &session(7, 1, true),
        )
        .await
        .unwrap(),
    );
    assert_eq!(received.received, 10_000);
    assert_eq!(fake.rows(&audience).len(), 10_000);
}
