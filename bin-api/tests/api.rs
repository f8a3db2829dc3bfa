//! Every route and error path of the HTTP API over real HTTP, against the fake marketplace and
//! the fake Graph API, on PostgreSQL and on SQLite.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Db, Options, World, create_body};
use facebook_connector_core::domain::{JobStatus, ProfileId, ProfileStatus};
use facebook_connector_core::ports::JobFilter;
use facebook_marketing::testkit::{AdAccountSpec, Endpoint, Fault, TokenSpec};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

on_both_databases!(
    creates_a_profile_and_shows_its_token_expiry,
    creation_refusals_say_why_and_leave_nothing_behind,
    malformed_and_oversized_bodies,
    authentication_errors,
    another_company_cannot_see_or_change_a_profile,
    enable_and_archive,
    reauthorize_resumes_paused_jobs,
    disconnect_revokes_once_per_user_and_archives_all,
    two_profiles_created_at_once,
    token_metadata,
    a_failure_after_the_marketplace_profile_is_archived_again,
    a_timed_out_creation_still_completes_its_compensation,
    upstream_failures_are_502_with_a_request_id,
    routing_probes_metrics_and_middleware,
);

fn assert_profile_shape(p: &Value) {
    for key in [
        "id",
        "name",
        "description",
        "status",
        "ad_account",
        "audience",
        "company_id",
        "created_at",
        "updated_at",
        "token",
        "delivery_state",
    ] {
        assert!(p.get(key).is_some(), "profile lacks {key}: {p}");
    }
    for key in [
        "id",
        "name",
        "business",
        "supports_custom_audiences",
        "user_accepted_custom_audience_tos",
    ] {
        assert!(
            p["ad_account"].get(key).is_some(),
            "ad_account lacks {key}: {p}"
        );
    }
    for key in [
        "is_valid",
        "issued_at",
        "expires_at",
        "data_access_expires_at",
        "expires_in_days",
        "scopes",
        "user",
    ] {
        assert!(p["token"].get(key).is_some(), "token lacks {key}: {p}");
    }
    for key in ["state", "reason", "since"] {
        assert!(
            p["delivery_state"].get(key).is_some(),
            "delivery_state lacks {key}: {p}"
        );
    }
}

async fn creates_a_profile_and_shows_its_token_expiry(db: Db) {
    let w = World::new(db).await;
    let alice = w.customer(1);
    let user = w.fb_user("Ann");
    let p = w.create(&alice, &user, "Main").await;
    assert_profile_shape(&p);
    assert_eq!(p["name"], "Main");
    assert_eq!(p["description"], "a test profile");
    assert_eq!(p["status"], "disabled");
    assert_eq!(p["company_id"], 1);
    assert_eq!(p["ad_account"]["id"], user.ad_account.as_str());
    assert!(p["ad_account"]["id"].as_str().unwrap().starts_with("act_"));
    assert_eq!(p["ad_account"]["supports_custom_audiences"], true);
    assert_eq!(p["ad_account"]["business"]["name"], "Fake business");
    assert_eq!(p["audience"], Value::Null);
    assert_eq!(
        p["delivery_state"],
        json!({"state": "ok", "reason": null, "since": null})
    );
    assert_eq!(p["token"]["is_valid"], true);
    assert_eq!(p["token"]["user"]["id"], user.user.as_str());
    assert_eq!(p["token"]["user"]["name"], "Ann");
    // the long-lived token: 60 days; data access: 90 days (fake's debug_token)
    let days = p["token"]["expires_in_days"].as_i64().unwrap();
    assert!((59..=60).contains(&days), "{p}");
    assert!(p["token"]["expires_at"].is_string(), "{p}");
    assert!(p["token"]["data_access_expires_at"].is_string(), "{p}");
    assert_eq!(
        p["token"]["scopes"],
        json!(["ads_management", "business_management"])
    );
    // stored encrypted, and it is the long-lived exchange of the customer's token
    let id = p["id"].as_str().unwrap();
    let stored = w.stored_token(id).await;
    assert_ne!(stored.expose_secret(), user.token.expose_secret());
    assert_eq!(w.graph.token_is_long_lived(&stored), Some(true));
    let row =
        w.db.store
            .profiles()
            .get_profile(id.parse().unwrap())
            .await
            .unwrap()
            .unwrap();
    assert!(!row.token.0.contains(stored.expose_secret()));
    // the marketplace profile exists, disabled, with the same id
    let listed = w.market.profiles(&alice.bearer);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id.to_string(), id);
    assert_eq!(listed[0].status, ProfileStatus::Disabled);

    let one = w.get(&format!("/profiles/{id}"), Some(&alice.bearer)).await;
    assert_eq!(one.status, 200, "{}", one.text);
    assert_eq!(one.body, p);
    let all = w.get("/profiles", Some(&alice.bearer)).await;
    assert_eq!(all.status, 200);
    assert_eq!(all.body, json!({"records": [p]}));
}

async fn creation_refusals_say_why_and_leave_nothing_behind(db: Db) {
    let w = World::new(db).await;
    let alice = w.customer(1);
    let user = w.fb_user("Ann");
    let post = |body: Value| w.post("/profiles", Some(&alice.bearer), Some(body));

    // one scope missing
    let partial = w.graph.issue_token(
        &user.user,
        TokenSpec {
            scopes: vec!["ads_management".into()],
            ..TokenSpec::default()
        },
    );
    let a = post(create_body("x", user.ad_account.as_str(), &partial)).await;
    assert_eq!((a.status, a.code()), (400, "missing_scopes"), "{}", a.text);
    assert!(a.message().contains("business_management"), "{}", a.text);
    assert!(!a.message().contains("ads_management,"), "{}", a.text);

    // a token Facebook does not know / invalidated
    let garbage = SecretString::from("EAAFnot-a-real-token".to_owned());
    let a = post(create_body("x", user.ad_account.as_str(), &garbage)).await;
    assert_eq!((a.status, a.code()), (400, "invalid_token"), "{}", a.text);
    let revoked = w.fresh_token(&user);
    w.graph.invalidate_token(&revoked);
    let a = post(create_body("x", user.ad_account.as_str(), &revoked)).await;
    assert_eq!((a.status, a.code()), (400, "invalid_token"), "{}", a.text);

    // ad accounts that cannot be used, each saying what to do
    let no_business = w.graph.add_ad_account(
        &user.user,
        AdAccountSpec {
            business: None,
            ..AdAccountSpec::default()
        },
    );
    let a = post(create_body("x", no_business.as_str(), &user.token)).await;
    assert_eq!(
        (a.status, a.code()),
        (400, "invalid_ad_account"),
        "{}",
        a.text
    );
    assert!(a.message().contains("business"), "{}", a.text);
    let no_terms = w.graph.add_ad_account(
        &user.user,
        AdAccountSpec {
            tos_accepted: false,
            ..AdAccountSpec::default()
        },
    );
    let a = post(create_body("x", no_terms.as_str(), &user.token)).await;
    assert_eq!(
        (a.status, a.code()),
        (400, "invalid_ad_account"),
        "{}",
        a.text
    );
    assert!(a.message().contains("terms"), "{}", a.text);
    assert!(a.message().contains(no_terms.digits()), "{}", a.text);
    let someone_else = w.fb_user("Bob");
    let a = post(create_body(
        "x",
        someone_else.ad_account.as_str(),
        &user.token,
    ))
    .await;
    assert_eq!(
        (a.status, a.code()),
        (400, "invalid_ad_account"),
        "{}",
        a.text
    );
    assert!(a.message().contains("cannot be reached"), "{}", a.text);

    // invalid fields are named
    let a = post(create_body("x", "not-an-account", &user.token)).await;
    assert_eq!((a.status, a.code()), (400, "invalid_request"), "{}", a.text);
    assert!(a.message().contains("ad_account_id"), "{}", a.text);
    let a = post(create_body("   ", user.ad_account.as_str(), &user.token)).await;
    assert_eq!((a.status, a.code()), (400, "invalid_request"), "{}", a.text);
    assert!(a.message().contains("name"), "{}", a.text);

    // nothing was created anywhere
    assert!(w.market.profiles(&alice.bearer).is_empty());
    let list = w.get("/profiles", Some(&alice.bearer)).await;
    assert_eq!(list.body, json!({"records": []}));
    // and the digits-only form of an ad account id is accepted, answered canonical
    let p = w
        .post(
            "/profiles",
            Some(&alice.bearer),
            Some(create_body("ok", user.ad_account.digits(), &user.token)),
        )
        .await;
    assert_eq!(p.status, 201, "{}", p.text);
    assert_eq!(p.body["ad_account"]["id"], user.ad_account.as_str());
}

async fn malformed_and_oversized_bodies(db: Db) {
    let w = World::new(db).await;
    let alice = w.customer(1);
    let user = w.fb_user("Ann");
    let raw = |path: &'static str, body: String| {
        let bearer = alice.bearer.clone();
        let w = &w;
        async move {
            w.request(
                reqwest::Method::POST,
                path,
                Some(&bearer),
                Some(reqwest::Body::from(body)),
                &[],
            )
            .await
        }
    };
    let cases: Vec<(String, &str)> = vec![
        (
            r#"{"name": 5, "ad_account_id": "1", "token": "t"}"#.into(),
            "`name`",
        ),
        (
            r#"{"name": "n", "token": "t"}"#.into(),
            "missing field `ad_account_id`",
        ),
        (
            r#"{"name": "n", "ad_account_id": ["1"], "token": "t"}"#.into(),
            "`ad_account_id`",
        ),
        (
            r#"{"name": "n", "ad_account_id": "1", "token": 12}"#.into(),
            "`token`",
        ),
        ("{\"name\": ".into(), "not valid JSON"),
        ("not json".into(), "JSON object"),
        ("".into(), "empty"),
        ("[]".into(), "JSON object"),
    ];
    for (body, says) in cases {
        let a = raw("/profiles", body.clone()).await;
        assert_eq!(
            (a.status, a.code()),
            (400, "invalid_request"),
            "{body}: {}",
            a.text
        );
        assert!(a.message().contains(says), "{body}: {}", a.text);
        assert!(a.body["error"].get("request_id").is_none(), "{}", a.text);
    }
    // a token route's bad body never echoes a string value
    let a = raw(
        "/profiles/00000000-0000-4000-8000-000000000000/reauthorize",
        r#"{"token": {"nested": "EAAF-echo-me"}}"#.into(),
    )
    .await;
    assert_eq!(a.status, 400, "{}", a.text);
    assert!(!a.text.contains("EAAF-echo-me"), "{}", a.text);
    let a = raw("/tokens/metadata", r#"{"token": ["EAAF-echo-me"]}"#.into()).await;
    assert_eq!((a.status, a.code()), (400, "invalid_request"), "{}", a.text);
    assert!(a.message().contains("`token`"), "{}", a.text);
    assert!(!a.text.contains("EAAF-echo-me"), "{}", a.text);

    // over 64 KiB: with a Content-Length, and streamed without one
    let big = format!(
        r#"{{"name": "n", "ad_account_id": "1", "token": "{}", "pad": "{}"}}"#,
        user.token.expose_secret(),
        "x".repeat(70 * 1024)
    );
    for path in ["/profiles", "/tokens/metadata", "/profiles/disconnect"] {
        let a = raw(path, big.clone()).await;
        assert_eq!(
            (a.status, a.code()),
            (413, "payload_too_large"),
            "{path}: {}",
            a.text
        );
    }
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = big
        .as_bytes()
        .chunks(8 * 1024)
        .map(|c| Ok(c.to_vec()))
        .collect();
    let streamed = reqwest::Body::wrap_stream(futures::stream::iter(chunks));
    let a = w
        .request(
            reqwest::Method::POST,
            "/profiles",
            Some(&alice.bearer),
            Some(streamed),
            &[],
        )
        .await;
    assert_eq!(
        (a.status, a.code()),
        (413, "payload_too_large"),
        "{}",
        a.text
    );
    // just under the limit is read (and refused for its content, not its size)
    let fits = format!(
        r#"{{"name": "n", "ad_account_id": "x", "token": "t", "pad": "{}"}}"#,
        "x".repeat(60 * 1024)
    );
    let a = raw("/profiles", fits).await;
    assert_eq!((a.status, a.code()), (400, "invalid_request"), "{}", a.text);
    assert!(w.market.profiles(&alice.bearer).is_empty());
}

async fn authentication_errors(db: Db) {
    let w = World::new(db).await;
    let alice = w.customer(1);
    let no_header = w.get("/profiles", None).await;
    assert_eq!((no_header.status, no_header.code()), (401, "unauthorized"));
    for header in ["Basic abc", "Bearer", "Bearer  ", "token abc"] {
        let a = w
            .request(
                reqwest::Method::GET,
                "/profiles",
                None,
                None,
                &[("authorization", header)],
            )
            .await;
        assert_eq!((a.status, a.code()), (401, "unauthorized"), "{header}");
    }
    // a token the marketplace refuses
    let a = w.get("/profiles", Some("not-a-customer")).await;
    assert_eq!((a.status, a.code()), (401, "unauthorized"), "{}", a.text);
    // every protected route needs it
    let id = "00000000-0000-4000-8000-000000000000";
    for (method, path) in [
        ("GET", format!("/profiles/{id}")),
        ("POST", "/profiles".to_owned()),
        ("POST", format!("/profiles/{id}/enable")),
        ("POST", format!("/profiles/{id}/archive")),
        ("POST", format!("/profiles/{id}/reauthorize")),
        ("POST", "/profiles/disconnect".to_owned()),
    ] {
        let a = w
            .request(method.parse().unwrap(), &path, None, None, &[])
            .await;
        assert_eq!(
            (a.status, a.code()),
            (401, "unauthorized"),
            "{method} {path}"
        );
    }
    // the marketplace's 403 is passed on
    w.market.fail_next("/company-info", 403, 1);
    let a = w.get("/profiles", Some(&alice.bearer)).await;
    assert_eq!((a.status, a.code()), (403, "forbidden"), "{}", a.text);
    // answers are cached briefly: the marketplace is asked once for several requests
    w.market.clear_calls();
    for _ in 0..3 {
        assert_eq!(w.get("/profiles", Some(&alice.bearer)).await.status, 200);
    }
    assert_eq!(w.market.calls_to("/company-info/whoami").len(), 1);
    assert_eq!(w.market.calls_to("/installations/whoami").len(), 1);
}

async fn another_company_cannot_see_or_change_a_profile(db: Db) {
    let w = World::new(db).await;
    let alice = w.customer(1);
    let mallory = w.customer(2);
    let user = w.fb_user("Ann");
    let p = w.create(&alice, &user, "Alice's").await;
    let id = p["id"].as_str().unwrap().to_owned();
    let missing = "00000000-0000-4000-8000-000000000000";
    let fresh = w.fresh_token(&user);
    let reauth = json!({"token": fresh.expose_secret()});
    for (method, suffix, body) in [
        ("GET", "", None),
        ("POST", "/enable", None),
        ("POST", "/archive", None),
        ("POST", "/reauthorize", Some(reauth.clone())),
    ] {
        let call = |target: String| {
            let body = body
                .clone()
                .map(|b: Value| reqwest::Body::from(b.to_string()));
            let bearer = mallory.bearer.clone();
            let w = &w;
            let method: reqwest::Method = method.parse().unwrap();
            async move {
                w.request(
                    method,
                    &format!("/profiles/{target}{suffix}"),
                    Some(&bearer),
                    body,
                    &[],
                )
                .await
            }
        };
        let theirs = call(id.clone()).await;
        let nobody = call(missing.to_owned()).await;
        let not_uuid = call("not-a-uuid".to_owned()).await;
        assert_eq!(theirs.status, 404, "{method} {suffix}: {}", theirs.text);
        assert_eq!(theirs.text, nobody.text, "{method} {suffix}");
        assert_eq!(theirs.text, not_uuid.text, "{method} {suffix}");
        assert_eq!(not_uuid.status, 404);
        assert_eq!(theirs.code(), "not_found");
    }
    // mallory's list and disconnect do not touch alice's profile
    assert_eq!(
        w.get("/profiles", Some(&mallory.bearer)).await.body,
        json!({"records": []})
    );
    let d = w
        .post("/profiles/disconnect", Some(&mallory.bearer), None)
        .await;
    assert_eq!(d.status, 200, "{}", d.text);
    assert_eq!(d.body, json!({"archived": 0, "revoked": 0}));
    assert!(w.graph.revoked_users().is_empty());
    let still = w.get(&format!("/profiles/{id}"), Some(&alice.bearer)).await;
    assert_eq!(still.body, p, "unchanged");
    assert_eq!(
        w.market.profiles(&alice.bearer)[0].status,
        ProfileStatus::Disabled
    );
    // nothing of alice's token changed either
    assert_eq!(w.graph.calls(Endpoint::Batch), 0);
}

async fn enable_and_archive(db: Db) {
    let w = World::new(db).await;
    let alice = w.customer(1);
    let user = w.fb_user("Ann");
    let p = w.create(&alice, &user, "Main").await;
    let id = p["id"].as_str().unwrap();
    let enabled = w
        .post(&format!("/profiles/{id}/enable"), Some(&alice.bearer), None)
        .await;
    assert_eq!(enabled.status, 200, "{}", enabled.text);
    assert_eq!(enabled.body["status"], "enabled");
    assert_profile_shape(&enabled.body);
    assert_eq!(
        w.market.profiles(&alice.bearer)[0].status,
        ProfileStatus::Enabled
    );
    let again = w
        .post(&format!("/profiles/{id}/enable"), Some(&alice.bearer), None)
        .await;
    assert_eq!(
        (again.status, again.code()),
        (409, "invalid_state"),
        "{}",
        again.text
    );

    let archived = w
        .post(
            &format!("/profiles/{id}/archive"),
            Some(&alice.bearer),
            None,
        )
        .await;
    assert_eq!(archived.status, 200, "{}", archived.text);
    assert_eq!(archived.body["status"], "archived");
    assert_eq!(
        w.market.profiles(&alice.bearer)[0].status,
        ProfileStatus::Archived
    );
    let row =
        w.db.store
            .profiles()
            .get_profile(id.parse().unwrap())
            .await
            .unwrap()
            .unwrap();
    assert!(row.archived_at.is_some());
    let shown = w.get(&format!("/profiles/{id}"), Some(&alice.bearer)).await;
    assert_eq!(shown.body["status"], "archived");
    let enable_archived = w
        .post(&format!("/profiles/{id}/enable"), Some(&alice.bearer), None)
        .await;
    assert_eq!(enable_archived.status, 409, "{}", enable_archived.text);
    let again = w
        .post(
            &format!("/profiles/{id}/archive"),
            Some(&alice.bearer),
            None,
        )
        .await;
    assert_eq!(
        again.status, 200,
        "archiving twice is harmless: {}",
        again.text
    );

    // enabling re-validates the ad account
    let q = w.create(&alice, &user, "Second").await;
    let qid = q["id"].as_str().unwrap();
    w.graph
        .fail(Endpoint::AdAccount, 1, Fault::graph(190, None));
    let refused = w
        .post(
            &format!("/profiles/{qid}/enable"),
            Some(&alice.bearer),
            None,
        )
        .await;
    assert_eq!(
        (refused.status, refused.code()),
        (409, "needs_reauth"),
        "{}",
        refused.text
    );
    let shown = w
        .get(&format!("/profiles/{qid}"), Some(&alice.bearer))
        .await;
    assert_eq!(shown.body["delivery_state"]["state"], "needs_reauth");
}

async fn reauthorize_resumes_paused_jobs(db: Db) {
    let w = World::new(db).await;
    let alice = w.customer(1);
    let user = w.fb_user("Ann");
    let p = w.create(&alice, &user, "Main").await;
    let id = p["id"].as_str().unwrap();
    let pid: ProfileId = id.parse().unwrap();
    w.enqueue(id, 1, 3).await;
    // the worker saw a 190: profile needs_reauth, jobs paused
    let old = w.stored_token(id).await;
    w.graph.invalidate_token(&old);
    let paused =
        w.db.store
            .profiles()
            .mark_needs_reauth(
                pid,
                "Error validating access token: the session has expired",
                time::OffsetDateTime::now_utc(),
            )
            .await
            .unwrap();
    assert_eq!(paused, 3);
    let jobs = |status| {
        let store = w.db.store.jobs();
        async move {
            store
                .list_jobs(&JobFilter {
                    profile_id: Some(pid),
                    status: Some(status),
                    limit: 100,
                    ..JobFilter::default()
                })
                .await
                .unwrap()
                .len()
        }
    };
    assert_eq!(jobs(JobStatus::Paused).await, 3);

    let shown = w.get(&format!("/profiles/{id}"), Some(&alice.bearer)).await;
    let state = &shown.body["delivery_state"];
    assert_eq!(state["state"], "needs_reauth");
    assert!(
        state["reason"]
            .as_str()
            .unwrap()
            .contains("session has expired")
    );
    assert!(state["since"].is_string());
    assert_eq!(shown.body["token"]["is_valid"], false);
    // enable says to re-authorise first
    let e = w
        .post(&format!("/profiles/{id}/enable"), Some(&alice.bearer), None)
        .await;
    assert_eq!((e.status, e.code()), (409, "needs_reauth"), "{}", e.text);
    assert!(e.message().contains("re-authorise first"), "{}", e.text);

    // another Facebook user's token is refused, nothing changes
    let bob = w.fb_user("Bob");
    w.graph.grant_ad_account(&bob.user, &user.ad_account);
    let wrong = w
        .post(
            &format!("/profiles/{id}/reauthorize"),
            Some(&alice.bearer),
            Some(json!({"token": bob.token.expose_secret()})),
        )
        .await;
    assert_eq!(
        (wrong.status, wrong.code()),
        (400, "different_facebook_user"),
        "{}",
        wrong.text
    );
    assert_eq!(jobs(JobStatus::Paused).await, 3);
    // missing scopes on re-authorisation are listed too
    let partial = w.graph.issue_token(
        &user.user,
        TokenSpec {
            scopes: vec!["business_management".into()],
            ..TokenSpec::default()
        },
    );
    let a = w
        .post(
            &format!("/profiles/{id}/reauthorize"),
            Some(&alice.bearer),
            Some(json!({"token": partial.expose_secret()})),
        )
        .await;
    assert_eq!((a.status, a.code()), (400, "missing_scopes"), "{}", a.text);

    // the same user's fresh token: stored (long-lived), state ok, jobs resumed
    let fresh = w.fresh_token(&user);
    let ok = w
        .post(
            &format!("/profiles/{id}/reauthorize"),
            Some(&alice.bearer),
            Some(json!({"token": fresh.expose_secret()})),
        )
        .await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert_profile_shape(&ok.body);
    assert_eq!(ok.body["delivery_state"]["state"], "ok");
    assert_eq!(ok.body["token"]["is_valid"], true);
    assert_eq!(jobs(JobStatus::Paused).await, 0);
    assert_eq!(jobs(JobStatus::Queued).await, 3);
    let stored = w.stored_token(id).await;
    assert_ne!(stored.expose_secret(), old.expose_secret());
    assert_ne!(stored.expose_secret(), fresh.expose_secret());
    assert_eq!(w.graph.token_is_long_lived(&stored), Some(true));
    // now it can be enabled
    let e = w
        .post(&format!("/profiles/{id}/enable"), Some(&alice.bearer), None)
        .await;
    assert_eq!(e.status, 200, "{}", e.text);
    // archived profiles cannot be re-authorised
    w.post(
        &format!("/profiles/{id}/archive"),
        Some(&alice.bearer),
        None,
    )
    .await;
    let a = w
        .post(
            &format!("/profiles/{id}/reauthorize"),
            Some(&alice.bearer),
            Some(json!({"token": w.fresh_token(&user).expose_secret()})),
        )
        .await;
    assert_eq!((a.status, a.code()), (409, "invalid_state"), "{}", a.text);
}

async fn disconnect_revokes_once_per_user_and_archives_all(db: Db) {
    let w = World::new(db).await;
    let alice = w.customer(1);
    let bob_co = w.customer(2);
    let ann = w.fb_user("Ann");
    let ann2 = w.graph.add_ad_account(&ann.user, AdAccountSpec::default());
    let cyd = w.fb_user("Cyd");
    let dan = w.fb_user("Dan");
    let a1 = w.create(&alice, &ann, "one").await;
    let mut second = ann.clone();
    second.ad_account = ann2;
    second.token = w.fresh_token(&ann);
    let a2 = w.create(&alice, &second, "two").await;
    let a3 = w.create(&alice, &cyd, "three").await;
    let b1 = w.create(&bob_co, &dan, "bob's").await;
    // cyd's first revocation fails transiently, and is retried
    w.graph.fail_revoke(&cyd.user, 1);
    let d = w
        .post("/profiles/disconnect", Some(&alice.bearer), None)
        .await;
    assert_eq!(d.status, 200, "{}", d.text);
    assert_eq!(d.body, json!({"archived": 3, "revoked": 2}));
    let mut revoked: Vec<String> = w
        .graph
        .revoked_users()
        .iter()
        .map(|u| u.to_string())
        .collect();
    revoked.sort();
    let mut expected = vec![ann.user.to_string(), cyd.user.to_string()];
    expected.sort();
    assert_eq!(
        revoked, expected,
        "each user once, none of another company's"
    );
    for p in [&a1, &a2, &a3] {
        let id = p["id"].as_str().unwrap();
        let shown = w.get(&format!("/profiles/{id}"), Some(&alice.bearer)).await;
        assert_eq!(shown.body["status"], "archived", "{}", shown.text);
    }
    assert!(
        w.market
            .profiles(&alice.bearer)
            .iter()
            .all(|p| p.status == ProfileStatus::Archived)
    );
    let bobs = w
        .get(
            &format!("/profiles/{}", b1["id"].as_str().unwrap()),
            Some(&bob_co.bearer),
        )
        .await;
    assert_eq!(bobs.body["status"], "disabled", "{}", bobs.text);
    // again: nothing left to archive, users revoked again (harmless)
    let d = w
        .post("/profiles/disconnect", Some(&alice.bearer), None)
        .await;
    assert_eq!(d.body["archived"], 0, "{}", d.text);
}

async fn two_profiles_created_at_once(db: Db) {
    let w = World::new(db).await;
    let alice = w.customer(1);
    let ann = w.fb_user("Ann");
    let bob = w.fb_user("Bob");
    let (a, b) = tokio::join!(w.create(&alice, &ann, "a"), w.create(&alice, &bob, "b"));
    assert_ne!(a["id"], b["id"]);
    let list = w.get("/profiles", Some(&alice.bearer)).await;
    let mut names: Vec<&str> = list.body["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, vec!["a", "b"]);
    assert_eq!(w.market.profiles(&alice.bearer).len(), 2);
}

async fn token_metadata(db: Db) {
    let w = World::new(db).await;
    let ann = w.fb_user("Ann");
    let a = w
        .post(
            "/tokens/metadata",
            None,
            Some(json!({"token": ann.token.expose_secret()})),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let t = &a.body["token"];
    assert_eq!(t["is_valid"], true);
    assert_eq!(t["user"]["id"], ann.user.as_str());
    assert_eq!(t["user"]["name"], "Ann");
    assert_eq!(
        t["scopes"],
        json!(["ads_management", "business_management"])
    );
    assert!(t["issued_at"].is_string());
    let accounts = a.body["ad_accounts"].as_array().unwrap();
    assert_eq!(accounts.len(), 1);
    assert_eq!(accounts[0]["id"], ann.ad_account.as_str());
    assert_eq!(accounts[0]["supports_custom_audiences"], true);
    // without ads_management: no ad accounts
    let business_only = w.graph.issue_token(
        &ann.user,
        TokenSpec {
            scopes: vec!["business_management".into()],
            ..TokenSpec::default()
        },
    );
    let a = w
        .post(
            "/tokens/metadata",
            None,
            Some(json!({"token": business_only.expose_secret()})),
        )
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["token"]["is_valid"], true);
    assert_eq!(a.body["ad_accounts"], json!([]));
    // invalid: 200, is_valid false, no ad accounts
    for token in ["EAAFunknown", ann.token.expose_secret()] {
        if token != "EAAFunknown" {
            w.graph.invalidate_token(&ann.token);
        }
        let a = w
            .post("/tokens/metadata", None, Some(json!({"token": token})))
            .await;
        assert_eq!(a.status, 200, "{}", a.text);
        assert_eq!(a.body["token"]["is_valid"], false);
        assert_eq!(a.body["ad_accounts"], json!([]));
    }
    let a = w.post("/tokens/metadata", None, Some(json!({}))).await;
    assert_eq!((a.status, a.code()), (400, "invalid_request"));
    assert!(a.message().contains("token"));
}

async fn a_failure_after_the_marketplace_profile_is_archived_again(db: Db) {
    let w = World::with(
        db,
        Options {
            broken_cipher: true,
            ..Options::default()
        },
    )
    .await;
    let alice = w.customer(1);
    let ann = w.fb_user("Ann");
    let a = w
        .post(
            "/profiles",
            Some(&alice.bearer),
            Some(create_body("x", ann.ad_account.as_str(), &ann.token)),
        )
        .await;
    assert_eq!((a.status, a.code()), (500, "internal_error"), "{}", a.text);
    let request_id = a.headers["x-request-id"].to_str().unwrap();
    assert_eq!(a.body["request_id"], request_id);
    assert_eq!(a.body["error"]["request_id"], request_id);
    let made = w.market.profiles(&alice.bearer);
    assert_eq!(made.len(), 1, "the marketplace profile was created");
    assert_eq!(
        made[0].status,
        ProfileStatus::Archived,
        "and archived again"
    );
    assert_eq!(
        w.get("/profiles", Some(&alice.bearer)).await.body,
        json!({"records": []})
    );
}

async fn a_timed_out_creation_still_completes_its_compensation(db: Db) {
    let w = World::with(
        db,
        Options {
            broken_cipher: true,
            app: facebook_connector_api::AppOptions {
                request_timeout: Duration::from_secs(1),
                ..facebook_connector_api::AppOptions::default()
            },
            ..Options::default()
        },
    )
    .await;
    let alice = w.customer(1);
    let ann = w.fb_user("Ann");
    // authenticate first (cached), so only the archive of the compensation is slow
    assert_eq!(w.get("/profiles", Some(&alice.bearer)).await.status, 200);
    w.market
        .delay_next("/installations/10/profiles/", Duration::from_secs(3), 1);
    let a = w
        .post(
            "/profiles",
            Some(&alice.bearer),
            Some(create_body("x", ann.ad_account.as_str(), &ann.token)),
        )
        .await;
    assert_eq!((a.status, a.code()), (504, "timeout"), "{}", a.text);
    // the operation went on after the answer: the half-made profile is archived again
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let made = w.market.profiles(&alice.bearer);
        if made.len() == 1 && made[0].status == ProfileStatus::Archived {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never archived: {made:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn upstream_failures_are_502_with_a_request_id(db: Db) {
    let w = World::new(db).await;
    let alice = w.customer(1);
    let ann = w.fb_user("Ann");
    w.graph
        .fail_always(Endpoint::DebugToken, Fault::ServerError { status: 503 });
    let a = w
        .post(
            "/tokens/metadata",
            None,
            Some(json!({"token": ann.token.expose_secret()})),
        )
        .await;
    assert_eq!((a.status, a.code()), (502, "upstream_error"), "{}", a.text);
    let rid = a.headers["x-request-id"].to_str().unwrap();
    assert_eq!(a.body["request_id"], rid);
    assert!(!a.text.contains(ann.token.expose_secret()));
    let a = w
        .post(
            "/profiles",
            Some(&alice.bearer),
            Some(create_body("x", ann.ad_account.as_str(), &ann.token)),
        )
        .await;
    assert_eq!((a.status, a.code()), (502, "upstream_error"), "{}", a.text);
    w.graph.clear_faults();
    // Facebook's user-facing refusal is passed on
    w.graph.fail(
        Endpoint::ExchangeToken,
        1,
        Fault::Graph {
            status: 400,
            code: 100,
            subcode: None,
            is_transient: false,
        },
    );
    let a = w
        .post(
            "/profiles",
            Some(&alice.bearer),
            Some(create_body("x", ann.ad_account.as_str(), &ann.token)),
        )
        .await;
    assert_eq!(a.status, 502, "{}", a.text);
    assert!(a.body["request_id"].is_string(), "{}", a.text);
    // the marketplace failing
    w.market.fail_next("/installations", 503, 20);
    let a = w
        .post(
            "/profiles",
            Some(&alice.bearer),
            Some(create_body("x", ann.ad_account.as_str(), &ann.token)),
        )
        .await;
    assert_eq!((a.status, a.code()), (502, "upstream_error"), "{}", a.text);
    assert!(a.message().contains("marketplace"), "{}", a.text);
    assert!(w.market.profiles(&alice.bearer).is_empty());
}

async fn routing_probes_metrics_and_middleware(db: Db) {
    let w = World::with(
        db,
        Options {
            app: facebook_connector_api::AppOptions {
                request_timeout: Duration::from_secs(2),
                cors: facebook_connector_api::CorsOrigins::parse("https://app.example.com")
                    .unwrap(),
            },
            ..Options::default()
        },
    )
    .await;
    let alice = w.customer(1);
    let a = w.get("/nope", Some(&alice.bearer)).await;
    assert_eq!((a.status, a.code()), (404, "not_found"), "{}", a.text);
    let a = w
        .request(
            reqwest::Method::DELETE,
            "/profiles",
            Some(&alice.bearer),
            None,
            &[],
        )
        .await;
    assert_eq!(
        (a.status, a.code()),
        (405, "method_not_allowed"),
        "{}",
        a.text
    );
    let a = w.get("/tokens/metadata", None).await;
    assert_eq!(
        (a.status, a.code()),
        (405, "method_not_allowed"),
        "{}",
        a.text
    );
    assert_eq!(w.get("/healthz", None).await.status, 200);
    assert_eq!(w.get("/readyz", None).await.status, 200);
    let doc = w.get("/openapi.json", None).await;
    assert_eq!(doc.status, 200);
    assert!(doc.body["openapi"].as_str().unwrap().starts_with("3.1"));
    assert!(doc.body["paths"]["/profiles/{id}/reauthorize"]["post"].is_object());

    // request ids: kept when well-formed, generated otherwise, always returned
    let a = w
        .request(
            reqwest::Method::GET,
            "/healthz",
            None,
            None,
            &[("x-request-id", "abc-123")],
        )
        .await;
    assert_eq!(a.headers["x-request-id"], "abc-123");
    let a = w
        .request(
            reqwest::Method::GET,
            "/healthz",
            None,
            None,
            &[("x-request-id", "bad id with spaces")],
        )
        .await;
    let generated = a.headers["x-request-id"].to_str().unwrap();
    assert_ne!(generated, "bad id with spaces");
    assert!(uuid::Uuid::parse_str(generated).is_ok());

    // CORS: the configured origin only
    let preflight = w
        .request(
            reqwest::Method::OPTIONS,
            "/profiles",
            None,
            None,
            &[
                ("origin", "https://app.example.com"),
                ("access-control-request-method", "POST"),
                (
                    "access-control-request-headers",
                    "authorization,content-type",
                ),
            ],
        )
        .await;
    assert!(preflight.status < 300, "{preflight:?}");
    assert_eq!(
        preflight.headers["access-control-allow-origin"],
        "https://app.example.com"
    );
    let other = w
        .request(
            reqwest::Method::GET,
            "/healthz",
            None,
            None,
            &[("origin", "https://evil.example.com")],
        )
        .await;
    assert!(other.headers.get("access-control-allow-origin").is_none());

    // a request slower than the timeout: 504 with the request id
    w.market
        .delay_next("/company-info", Duration::from_secs(8), 1);
    let slow = w.get("/profiles", Some(&alice.bearer)).await;
    assert_eq!(
        (slow.status, slow.code()),
        (504, "timeout"),
        "{}",
        slow.text
    );
    assert!(slow.body["request_id"].is_string());

    // metrics by route template, never raw ids
    let user = w.fb_user("Ann");
    let p = w.create(&alice, &user, "m").await;
    let id = p["id"].as_str().unwrap();
    w.get(&format!("/profiles/{id}"), Some(&alice.bearer)).await;
    let metrics = w.get("/metrics", None).await.text;
    assert!(
        metrics.contains(
            r#"facebook_connector_http_requests_total{route="/profiles/{id}",status="200"}"#
        ),
        "{metrics}"
    );
    assert!(metrics.contains("facebook_connector_http_request_duration_seconds"));
    assert!(!metrics.contains(id), "raw ids in metrics");
}
