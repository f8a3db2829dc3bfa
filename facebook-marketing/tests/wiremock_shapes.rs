//! Exact request shapes of every call and the handling of every error class, against wiremock.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use facebook_connector_core::Error;
use facebook_connector_core::domain::{AdAccountId, AudienceId, FacebookUserId, Received};
use facebook_connector_core::member::MemberKey;
use facebook_connector_core::payload::Payload;
use facebook_connector_core::ports::{
    AudienceSink, FacebookAccounts, UploadOutcome, UploadSession, UploadTarget,
};
use facebook_marketing::{
    GraphClient, GraphConfig, GraphError, LimiterConfig, RetryPolicy, appsecret_proof,
};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use url::Url;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const APP_ID: &str = "4242";
const APP_SECRET: &str = "app-secret-for-tests";
const TOKEN: &str = "EAAB-user-token-0123456789abcdef";

fn secret(s: &str) -> SecretString {
    SecretString::from(s.to_owned())
}

fn config(server: &MockServer) -> GraphConfig {
    GraphConfig::new(APP_ID, secret(APP_SECRET))
        .with_base_url(Url::parse(&server.uri()).unwrap())
        .with_retry(RetryPolicy::fast())
        .with_limiter(LimiterConfig::fast())
        .with_timeout(Duration::from_secs(5))
}

fn client(server: &MockServer) -> GraphClient {
    GraphClient::new(config(server)).unwrap()
}

fn proof() -> String {
    appsecret_proof(&secret(APP_SECRET), &secret(TOKEN))
}

fn query(req: &Request) -> BTreeMap<String, String> {
    let pairs: Vec<(String, String)> = req.url.query_pairs().into_owned().collect();
    let map: BTreeMap<String, String> = pairs.iter().cloned().collect();
    assert_eq!(
        map.len(),
        pairs.len(),
        "duplicate query parameters: {pairs:?}"
    );
    map
}

fn form(req: &Request) -> BTreeMap<String, String> {
    let content_type = req
        .headers
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    assert_eq!(content_type, "application/x-www-form-urlencoded");
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(&req.body)
        .into_owned()
        .collect();
    let map: BTreeMap<String, String> = pairs.iter().cloned().collect();
    assert_eq!(map.len(), pairs.len(), "duplicate form fields: {pairs:?}");
    map
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

async fn requests(server: &MockServer) -> Vec<Request> {
    server.received_requests().await.unwrap()
}

fn graph_error(code: i64, subcode: Option<i64>) -> serde_json::Value {
    let mut e = json!({"message": "failure", "type": "OAuthException", "code": code, "fbtrace_id": "TRACE123"});
    if let Some(s) = subcode {
        e["error_subcode"] = s.into();
    }
    json!({ "error": e })
}

#[tokio::test]
async fn debug_token_uses_the_app_token_and_checks_the_app() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v25.0/debug_token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": {
            "app_id": APP_ID, "type": "USER", "is_valid": true,
            "scopes": ["ads_management", "business_management"],
            "issued_at": 1_700_000_000, "expires_at": 0, "data_access_expires_at": 1_800_000_000,
            "user_id": "555"
        }})))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v25.0/debug_token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": {
            "app_id": "someone-else", "is_valid": true, "scopes": [], "user_id": "555"
        }})))
        .mount(&server)
        .await;
    let c = client(&server);
    let info = c.token_info(&secret(TOKEN)).await.unwrap();
    assert!(info.is_valid);
    assert_eq!(info.scopes, vec!["ads_management", "business_management"]);
    assert_eq!(info.user_id.unwrap().as_str(), "555");
    assert_eq!(info.issued_at.unwrap().unix_timestamp(), 1_700_000_000);
    assert_eq!(info.expires_at, None, "0 means never");
    let reqs = requests(&server).await;
    assert_eq!(
        query(&reqs[0]),
        map(&[
            ("input_token", TOKEN),
            ("access_token", &format!("{APP_ID}|{APP_SECRET}")),
        ])
    );
    // a token issued for another app is not valid for us
    assert!(!c.token_info(&secret(TOKEN)).await.unwrap().is_valid);
}

#[tokio::test]
async fn debug_token_with_rejected_app_credentials_is_not_an_invalid_user_token() {
    let server = MockServer::start().await;
    Mock::given(path("/v25.0/debug_token"))
        .respond_with(ResponseTemplate::new(400).set_body_json(graph_error(190, None)))
        .mount(&server)
        .await;
    let err = client(&server)
        .token_info(&secret(TOKEN))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Rejected { .. }), "{err:?}");
}

#[tokio::test]
async fn me_sends_fields_token_and_proof() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v25.0/me"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "777", "name": "Ada"})))
        .mount(&server)
        .await;
    let user = FacebookAccounts::me(&client(&server), &secret(TOKEN))
        .await
        .unwrap();
    assert_eq!((user.id.as_str(), user.name.as_str()), ("777", "Ada"));
    let reqs = requests(&server).await;
    assert_eq!(
        query(&reqs[0]),
        map(&[
            ("fields", "id,name"),
            ("access_token", TOKEN),
            ("appsecret_proof", &proof()),
        ])
    );
}

#[tokio::test]
async fn long_lived_exchange_uses_client_credentials() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v25.0/oauth/access_token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"access_token": "EAAB-long-lived-xyz", "token_type": "bearer", "expires_in": 5_183_944}),
        ))
        .mount(&server)
        .await;
    let long = client(&server)
        .exchange_long_lived(&secret(TOKEN))
        .await
        .unwrap();
    assert_eq!(long.token.expose_secret(), "EAAB-long-lived-xyz");
    assert_eq!(long.expires_in, Some(5_183_944));
    let reqs = requests(&server).await;
    assert_eq!(
        query(&reqs[0]),
        map(&[
            ("grant_type", "fb_exchange_token"),
            ("client_id", APP_ID),
            ("client_secret", APP_SECRET),
            ("fb_exchange_token", TOKEN),
        ])
    );
}

#[tokio::test]
async fn ad_accounts_follow_paging_next_on_the_same_host_only() {
    let server = MockServer::start().await;
    let next = format!(
        "{}/v25.0/me/adaccounts?access_token=STALE-TOKEN-IN-LINK&fields=id%2Cname%2Cbusiness%2Cuser_tos_accepted&limit=100&after=CURSOR2",
        server.uri()
    );
    Mock::given(method("GET"))
        .and(path("/v25.0/me/adaccounts"))
        .and(wiremock::matchers::query_param("after", "CURSOR2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": [{"id": "act_2", "name": "Two"}],
            "paging": {"cursors": {"before": "x", "after": "y"}}
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v25.0/me/adaccounts"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": [{"id": "act_1", "name": "One",
                      "business": {"id": "99", "name": "Biz"},
                      "user_tos_accepted": {"custom_audience_tos": 1}}],
            "paging": {"next": next}
        })))
        .with_priority(10)
        .mount(&server)
        .await;
    let accounts = client(&server).ad_accounts(&secret(TOKEN)).await.unwrap();
    assert_eq!(accounts.len(), 2);
    assert_eq!(accounts[0].id.as_str(), "act_1");
    assert!(accounts[0].supports_custom_audiences());
    assert_eq!(accounts[0].business.as_ref().unwrap().id.as_str(), "99");
    assert!(!accounts[1].supports_custom_audiences());
    let reqs = requests(&server).await;
    assert_eq!(reqs.len(), 2);
    assert_eq!(
        query(&reqs[0]),
        map(&[
            ("fields", "id,name,business,user_tos_accepted"),
            ("limit", "100"),
            ("access_token", TOKEN),
            ("appsecret_proof", &proof()),
        ])
    );
    assert_eq!(
        query(&reqs[1]),
        map(&[
            ("fields", "id,name,business,user_tos_accepted"),
            ("limit", "100"),
            ("after", "CURSOR2"),
            ("access_token", TOKEN),
            ("appsecret_proof", &proof()),
        ]),
        "the link's stale token is replaced, the proof added"
    );
}

#[tokio::test]
async fn a_paging_link_to_another_host_is_not_followed() {
    let server = MockServer::start().await;
    Mock::given(path("/v25.0/me/adaccounts"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": [{"id": "act_1", "name": "One"}],
            "paging": {"next": "https://attacker.example.invalid/v25.0/me/adaccounts?after=2"}
        })))
        .mount(&server)
        .await;
    let c = client(&server);
    let err = FacebookAccounts::ad_accounts(&c, &secret(TOKEN))
        .await
        .unwrap_err();
    let graph = err.source_graph();
    assert!(
        matches!(graph, Some(GraphError::ForeignPagingLink)),
        "{err:?}"
    );
    assert_eq!(requests(&server).await.len(), 1);
}

/// Finds the crate's error in a core error's source chain.
trait SourceGraph {
    fn source_graph(&self) -> Option<&GraphError>;
}

impl SourceGraph for Error {
    fn source_graph(&self) -> Option<&GraphError> {
        let mut cur: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(self);
        while let Some(e) = cur {
            if let Some(g) = e.downcast_ref::<GraphError>() {
                return Some(g);
            }
            cur = e.source();
        }
        None
    }
}

#[tokio::test]
async fn one_ad_account_or_none() {
    let server = MockServer::start().await;
    Mock::given(path("/v25.0/act_123"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "act_123", "name": "Main", "business": {"id": "9", "name": "B"},
            "user_tos_accepted": {"custom_audience_tos": 1}
        })))
        .mount(&server)
        .await;
    Mock::given(path("/v25.0/act_404"))
        .respond_with(ResponseTemplate::new(400).set_body_json(graph_error(100, Some(33))))
        .mount(&server)
        .await;
    let c = client(&server);
    let id = AdAccountId::parse("123").unwrap();
    let account = c.ad_account(&secret(TOKEN), &id).await.unwrap().unwrap();
    assert!(account.supports_custom_audiences());
    let missing = AdAccountId::parse("act_404").unwrap();
    assert_eq!(c.ad_account(&secret(TOKEN), &missing).await.unwrap(), None);
    let reqs = requests(&server).await;
    assert_eq!(
        query(&reqs[0]),
        map(&[
            ("fields", "id,name,business,user_tos_accepted"),
            ("access_token", TOKEN),
            ("appsecret_proof", &proof()),
        ])
    );
}

#[tokio::test]
async fn audiences_by_ids_with_missing_ones_absent() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v25.0/"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "11": {"id": "11", "account_id": "123", "name": "A", "description": "d", "time_created": 1_700_000_000}
        })))
        .mount(&server)
        .await;
    let c = client(&server);
    let ids = [
        AudienceId::parse("11").unwrap(),
        AudienceId::parse("12").unwrap(),
    ];
    let found = c.audiences(&secret(TOKEN), &ids).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id.as_str(), "11");
    assert_eq!(found[0].account_id.as_deref(), Some("123"));
    assert_eq!(
        found[0].time_created.unwrap().unix_timestamp(),
        1_700_000_000
    );
    let reqs = requests(&server).await;
    assert_eq!(
        query(&reqs[0]),
        map(&[
            ("ids", "11,12"),
            ("fields", "id,account_id,name,description,time_created"),
            ("access_token", TOKEN),
            ("appsecret_proof", &proof()),
        ])
    );
}

#[tokio::test]
async fn audiences_fall_back_to_single_lookups_when_facebook_refuses_unknown_ids() {
    let server = MockServer::start().await;
    Mock::given(path("/v25.0/"))
        .respond_with(ResponseTemplate::new(400).set_body_json(graph_error(803, None)))
        .mount(&server)
        .await;
    Mock::given(path("/v25.0/11"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "11", "name": "A"})))
        .mount(&server)
        .await;
    Mock::given(path("/v25.0/12"))
        .respond_with(ResponseTemplate::new(400).set_body_json(graph_error(100, Some(33))))
        .mount(&server)
        .await;
    let ids = [
        AudienceId::parse("11").unwrap(),
        AudienceId::parse("12").unwrap(),
    ];
    let found = client(&server)
        .find_audiences(&secret(TOKEN), &ids)
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].name, "A");
}

#[tokio::test]
async fn create_audience_form_fields() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v25.0/act_123/customaudiences"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "2384"})))
        .mount(&server)
        .await;
    let long_description = "x".repeat(150);
    let audience = AudienceSink::create_audience(
        &client(&server),
        &secret(TOKEN),
        &AdAccountId::parse("act_123").unwrap(),
        "Subscription 1 Audience",
        &long_description,
    )
    .await
    .unwrap();
    assert_eq!(audience.id.as_str(), "2384");
    assert_eq!(audience.name, "Subscription 1 Audience");
    let reqs = requests(&server).await;
    assert!(reqs[0].url.query().is_none(), "nothing in the url");
    assert_eq!(
        form(&reqs[0]),
        map(&[
            ("name", "Subscription 1 Audience"),
            ("description", &"x".repeat(100)),
            ("subtype", "CUSTOM"),
            ("customer_file_source", "PARTNER_PROVIDED_ONLY"),
            ("access_token", TOKEN),
            ("appsecret_proof", &proof()),
        ])
    );
}

fn payload() -> Payload {
    Payload::from_rows(
        vec![MemberKey::EMAIL, MemberKey::MADID],
        &[vec![
            "973dfe463ec85785f5f95af5ba3906eedb2d931c24e69824a89ea65dba4e813b".into(),
            "".into(),
        ]],
    )
}

#[tokio::test]
async fn add_and_remove_members_send_payload_and_session() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v25.0/2384/users"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "audience_id": "2384", "session_id": "9001", "num_received": 1,
            "num_invalid_entries": 0, "invalid_entry_samples": {}
        })))
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/v25.0/2384/users"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "audience_id": "2384", "session_id": 77, "num_received": 1, "num_invalid_entries": 1
        })))
        .mount(&server)
        .await;
    let c = client(&server);
    let audience = UploadTarget {
        ad_account: AdAccountId::parse("act_1").unwrap(),
        audience: AudienceId::parse("2384").unwrap(),
    };
    let session = UploadSession {
        session_id: 9001,
        batch_seq: 3,
        last_batch: true,
        estimated_num_total: Some(20_001),
    };
    let receipt = AudienceSink::add_members(&c, &secret(TOKEN), &audience, &payload(), &session)
        .await
        .unwrap();
    assert_eq!(
        receipt,
        UploadOutcome::Accepted(Received {
            received: 1,
            invalid: 0
        })
    );
    let removed = AudienceSink::remove_members(&c, &secret(TOKEN), &audience, &payload())
        .await
        .unwrap();
    assert_eq!(
        removed,
        Received {
            received: 1,
            invalid: 1
        }
    );

    let reqs = requests(&server).await;
    // the payload is encoded as the body is written, and still sent with its exact length
    for req in &reqs[..2] {
        assert_eq!(
            req.headers
                .get("content-length")
                .map(|v| v.to_str().unwrap()),
            Some(req.body.len().to_string().as_str())
        );
        assert!(req.headers.get("transfer-encoding").is_none());
    }
    let add = form(&reqs[0]);
    assert_eq!(add["payload"], payload().to_json());
    let session_json: serde_json::Value = serde_json::from_str(&add["session"]).unwrap();
    assert_eq!(
        session_json,
        json!({"session_id": 9001, "batch_seq": 3, "last_batch_flag": true, "estimated_num_total": 20001})
    );
    assert_eq!(add["access_token"], TOKEN);
    assert_eq!(add["appsecret_proof"], proof());
    assert_eq!(add.len(), 4);
    assert_eq!(reqs[1].method.as_str(), "DELETE");
    assert_eq!(
        form(&reqs[1]),
        map(&[
            ("payload", &payload().to_json()),
            ("access_token", TOKEN),
            ("appsecret_proof", &proof()),
        ])
    );
}

#[tokio::test]
async fn revoke_batches_at_most_fifty_with_per_user_results() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v25.0/"))
        .respond_with(|req: &Request| {
            let fields: BTreeMap<String, String> = url::form_urlencoded::parse(&req.body)
                .into_owned()
                .collect();
            let ops: Vec<serde_json::Value> = serde_json::from_str(&fields["batch"]).unwrap();
            let answers: Vec<serde_json::Value> = ops
                .iter()
                .map(|op| {
                    let url = op["relative_url"].as_str().unwrap();
                    if url.starts_with("13/") {
                        json!({"code": 400, "body": graph_error(100, Some(33)).to_string()})
                    } else {
                        json!({"code": 200, "body": "{\"success\":true}"})
                    }
                })
                .collect();
            ResponseTemplate::new(200).set_body_json(answers)
        })
        .mount(&server)
        .await;
    let users: Vec<FacebookUserId> = (1..=120)
        .map(|i| FacebookUserId::new(i.to_string()).unwrap())
        .collect();
    let results = FacebookAccounts::revoke_permissions(&client(&server), &users)
        .await
        .unwrap();
    assert_eq!(results.len(), 120);
    for (i, (user, result)) in results.iter().enumerate() {
        assert_eq!(user, &users[i]);
        if user.as_str() == "13" {
            assert!(matches!(result, Err(Error::Rejected { .. })), "{result:?}");
        } else {
            assert!(result.is_ok(), "{user}: {result:?}");
        }
    }
    let reqs = requests(&server).await;
    assert_eq!(reqs.len(), 3);
    let sizes: Vec<usize> = reqs
        .iter()
        .map(|r| {
            let f = form(r);
            assert_eq!(f["access_token"], format!("{APP_ID}|{APP_SECRET}"));
            assert!(!f.contains_key("appsecret_proof"));
            let ops: Vec<serde_json::Value> = serde_json::from_str(&f["batch"]).unwrap();
            for op in &ops {
                assert_eq!(op["method"], "DELETE");
                assert!(
                    op["relative_url"]
                        .as_str()
                        .unwrap()
                        .ends_with("/permissions")
                );
            }
            ops.len()
        })
        .collect();
    assert_eq!(sizes, vec![50, 50, 20]);
    let first: Vec<serde_json::Value> = serde_json::from_str(&form(&reqs[0])["batch"]).unwrap();
    assert_eq!(
        first[0],
        json!({"method": "DELETE", "relative_url": "1/permissions"})
    );
}

// ------------------------------------------------------------------ error classes and retries

async fn me_error(status: u16, body: serde_json::Value) -> (Error, usize) {
    let server = MockServer::start().await;
    Mock::given(path("/v25.0/me"))
        .respond_with(ResponseTemplate::new(status).set_body_json(body))
        .mount(&server)
        .await;
    let err = FacebookAccounts::me(&client(&server), &secret(TOKEN))
        .await
        .unwrap_err();
    let n = requests(&server).await.len();
    (err, n)
}

#[tokio::test]
async fn every_error_class_maps_to_the_core_error() {
    let attempts = RetryPolicy::fast().max_attempts as usize;
    // invalid token: never retried
    for (code, sub) in [(190, None), (190, Some(463)), (102, None)] {
        let (err, n) = me_error(400, graph_error(code, sub)).await;
        assert!(err.is_invalid_token(), "{code}: {err:?}");
        assert_eq!(n, 1, "{code} must not be retried");
        let g = err.source_graph().unwrap();
        assert_eq!(g.code(), Some(code));
        assert_eq!(g.fbtrace_id(), Some("TRACE123"));
    }
    // permission
    for (code, sub) in [(10, None), (200, Some(1870090)), (294, None)] {
        let (err, n) = me_error(403, graph_error(code, sub)).await;
        assert!(
            matches!(err, Error::PermissionDenied { .. }),
            "{code}: {err:?}"
        );
        assert_eq!(n, 1);
    }
    // flagged audience and bad requests
    let (err, n) = me_error(400, graph_error(100, Some(1713230))).await;
    match &err {
        Error::Rejected { reason, .. } => assert!(reason.contains("flagged"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(n, 1);
    for code in [100, 2650] {
        let (err, n) = me_error(400, graph_error(code, None)).await;
        assert!(matches!(err, Error::Rejected { .. }), "{code}: {err:?}");
        assert_eq!(n, 1);
    }
    // transient and throttled: retried up to the policy, then Transient
    for (status, body) in [
        (500, graph_error(1, None)),
        (500, graph_error(2, None)),
        (
            400,
            json!({"error": {"message": "x", "code": 9999, "is_transient": true}}),
        ),
        (400, graph_error(4, None)),
        (400, graph_error(17, None)),
        (400, graph_error(32, None)),
        (400, graph_error(341, None)),
        (400, graph_error(613, None)),
        (400, graph_error(80003, None)),
        (
            429,
            json!({"error": {"message": "slow down", "code": 9998}}),
        ),
    ] {
        let (err, n) = me_error(status, body.clone()).await;
        assert!(err.is_retryable(), "{body}: {err:?}");
        assert_eq!(n, attempts, "{body}");
    }
    // a policy block asks for a long wait: not slept on, handed back as a throttle at once
    let (err, n) = me_error(400, graph_error(368, None)).await;
    assert!(
        matches!(err, Error::Throttled { retry_after: Some(w), .. } if w >= Duration::from_secs(15 * 60)),
        "{err:?}"
    );
    assert_eq!(n, 1);
}

#[tokio::test]
async fn html_5xx_and_timeouts_are_transient() {
    let server = MockServer::start().await;
    Mock::given(path("/v25.0/me"))
        .respond_with(
            ResponseTemplate::new(502).set_body_raw("<html>bad gateway</html>", "text/html"),
        )
        .mount(&server)
        .await;
    let err = FacebookAccounts::me(&client(&server), &secret(TOKEN))
        .await
        .unwrap_err();
    assert!(err.is_retryable());
    assert!(matches!(
        err.source_graph(),
        Some(GraphError::Http { status: 502, .. })
    ));

    let slow = MockServer::start().await;
    Mock::given(path("/v25.0/me"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"id": "1", "name": "n"}))
                .set_delay(Duration::from_secs(3)),
        )
        .mount(&slow)
        .await;
    let cfg = config(&slow)
        .with_timeout(Duration::from_millis(100))
        .with_retry(RetryPolicy {
            max_attempts: 2,
            ..RetryPolicy::fast()
        });
    let err = FacebookAccounts::me(&GraphClient::new(cfg).unwrap(), &secret(TOKEN))
        .await
        .unwrap_err();
    assert!(err.is_retryable());
    assert!(
        matches!(err.source_graph(), Some(GraphError::Timeout)),
        "{err:?}"
    );
    assert_eq!(requests(&slow).await.len(), 2);
}

#[tokio::test]
async fn transient_failures_are_retried_until_success() {
    let server = MockServer::start().await;
    Mock::given(path("/v25.0/me"))
        .respond_with(ResponseTemplate::new(503).set_body_json(graph_error(2, None)))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(path("/v25.0/me"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "1", "name": "n"})))
        .mount(&server)
        .await;
    let user = FacebookAccounts::me(&client(&server), &secret(TOKEN))
        .await
        .unwrap();
    assert_eq!(user.id.as_str(), "1");
    assert_eq!(requests(&server).await.len(), 3);
}

#[tokio::test]
async fn a_throttle_longer_than_the_budget_gives_up_with_the_wait_and_blocks_that_ad_account() {
    let server = MockServer::start().await;
    Mock::given(path("/v25.0/2384/users"))
        .respond_with(
            ResponseTemplate::new(400)
                .set_body_json(graph_error(80003, Some(2446079)))
                .insert_header(
                    "x-business-use-case-usage",
                    r#"{"99":[{"type":"CUSTOM_AUDIENCE","call_count":100,"total_cputime":10,"total_time":10,"estimated_time_to_regain_access":5}]}"#,
                ),
        )
        .mount(&server)
        .await;
    let c = client(&server);
    let session = UploadSession {
        session_id: 1,
        batch_seq: 1,
        last_batch: false,
        estimated_num_total: None,
    };
    let target = |account: &str| UploadTarget {
        ad_account: AdAccountId::parse(account).unwrap(),
        audience: AudienceId::parse("2384").unwrap(),
    };
    let upload = |account: &'static str| {
        let c = c.clone();
        async move {
            AudienceSink::add_members(&c, &secret(TOKEN), &target(account), &payload(), &session)
                .await
                .unwrap_err()
        }
    };
    let err = upload("act_1").await;
    assert!(matches!(err, Error::Throttled { .. }), "{err:?}");
    let wait = err.retry_after().unwrap();
    assert!(
        wait > Duration::from_secs(290) && wait <= Duration::from_secs(300),
        "{wait:?}"
    );
    assert_eq!(
        requests(&server).await.len(),
        1,
        "no retry inside a 5 minute wait"
    );
    // the limiter now holds that ad account's calls back without asking facebook
    let err = upload("act_1").await;
    assert!(matches!(err, Error::Throttled { .. }), "{err:?}");
    assert!(err.retry_after().unwrap() > Duration::from_secs(200));
    assert_eq!(requests(&server).await.len(), 1);
    // another ad account still calls facebook
    upload("act_2").await;
    assert_eq!(requests(&server).await.len(), 2);
}

#[tokio::test]
async fn create_audience_is_not_retried_after_an_ambiguous_failure() {
    let server = MockServer::start().await;
    Mock::given(path("/v25.0/act_1/customaudiences"))
        .respond_with(ResponseTemplate::new(500).set_body_json(graph_error(2, None)))
        .mount(&server)
        .await;
    let err = AudienceSink::create_audience(
        &client(&server),
        &secret(TOKEN),
        &AdAccountId::parse("1").unwrap(),
        "n",
        "d",
    )
    .await
    .unwrap_err();
    assert!(err.is_retryable());
    assert_eq!(requests(&server).await.len(), 1);
}

#[tokio::test]
async fn upload_803_is_retried_then_succeeds() {
    let server = MockServer::start().await;
    Mock::given(path("/v25.0/5/users"))
        .respond_with(ResponseTemplate::new(400).set_body_json(graph_error(803, None)))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(path("/v25.0/5/users"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"audience_id": "5", "session_id": "1", "num_received": 1, "num_invalid_entries": 0}),
        ))
        .mount(&server)
        .await;
    let session = UploadSession {
        session_id: 1,
        batch_seq: 1,
        last_batch: false,
        estimated_num_total: None,
    };
    let receipt = AudienceSink::add_members(
        &client(&server),
        &secret(TOKEN),
        &UploadTarget {
            ad_account: AdAccountId::parse("act_1").unwrap(),
            audience: AudienceId::parse("5").unwrap(),
        },
        &payload(),
        &session,
    )
    .await
    .unwrap();
    assert!(matches!(
        receipt,
        UploadOutcome::Accepted(Received { received: 1, .. })
    ));
    let reqs = requests(&server).await;
    assert_eq!(reqs.len(), 2);
    assert_eq!(
        form(&reqs[0]),
        form(&reqs[1]),
        "the retry sends the same batch"
    );
}

#[tokio::test]
async fn the_api_version_and_base_path_are_configurable() {
    let server = MockServer::start().await;
    Mock::given(path("/graph/v26.0/me"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "1", "name": "n"})))
        .mount(&server)
        .await;
    let cfg = config(&server)
        .with_base_url(Url::parse(&format!("{}/graph", server.uri())).unwrap())
        .with_api_version("v26.0");
    FacebookAccounts::me(&GraphClient::new(cfg).unwrap(), &secret(TOKEN))
        .await
        .unwrap();
}
