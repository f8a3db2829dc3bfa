//! The client over real HTTP: the crate's fake marketplace for behaviour, wiremock for exact
//! request shapes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{capture_logs, grant_types};
use facebook_connector_core::Error as CoreError;
use facebook_connector_core::domain::{
    CompanyId, Connection, ConnectionId, ConnectionStatus, DatasetId, DeliveryEvent, FileName,
    FileRef, ProfileId, ProfileStatus, QuickSettings, Revision, SnapshotId,
};
use facebook_connector_core::ports::{
    ConnectionDirectory, DeliveryFiles, DeliveryReport, EventSource, InstallationId,
    MarketplaceProfile, ProfileDirectory, ProfileTransition, StatusReporter,
};
use futures::StreamExt;
use narrative_client::testkit::{FakeMarketplace, LegacyDelivery, Snapshot};
use narrative_client::{FeedKind, HttpConfig, NarrativeClient, NarrativeConfig, ProfileClient};
use secrecy::SecretString;
use serde_json::json;
use time::OffsetDateTime;
use time::macros::datetime;
use wiremock::matchers::{body_string_contains, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const PROFILE: &str = "0b6d9a50-1f5c-4a4e-9d7e-3b1a8c1e2f00";
const SUB: &str = "1e2d3c4b-5a69-4788-9aab-bccddeeff001";
const BATCH: &str = "3e2d3c4b-5a69-4788-9aab-bccddeeff003";
const CONN: &str = "2e2d3c4b-5a69-4788-9aab-bccddeeff002";

fn profile_id() -> ProfileId {
    PROFILE.parse().unwrap()
}
fn conn_id() -> ConnectionId {
    CONN.parse().unwrap()
}

async fn fake_and_client() -> (FakeMarketplace, NarrativeClient) {
    let fake = FakeMarketplace::start().await.unwrap();
    let client = NarrativeClient::new(fake.client_config()).unwrap();
    (fake, client)
}

fn legacy_delivery() -> LegacyDelivery {
    LegacyDelivery::new(profile_id(), SUB.parse().unwrap(), BATCH.parse().unwrap())
}

fn wiremock_config(server: &MockServer) -> NarrativeConfig {
    NarrativeConfig::new(
        server.uri().parse().unwrap(),
        "app-id",
        SecretString::from("app-secret-value"),
    )
    .with_http(HttpConfig::fast())
}

fn token_body(access: &str, expires_in: u64) -> serde_json::Value {
    json!({"access_token": access, "access_token_expires_in": expires_in,
           "refresh_token": format!("refresh-of-{access}"), "refresh_token_expires_in": 86400})
}

/// Any grant answers the access token `tok`, valid for an hour.
async fn mount_token(server: &MockServer) {
    Mock::given(path("/oauth/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(token_body("tok", 3600)))
        .mount(server)
        .await;
}

fn empty_page() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({"records": [], "next_revision": 1}))
}

// ---------------------------------------------------------------- authentication

#[tokio::test]
async fn client_credentials_grant_uses_basic_auth_and_a_form_body() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        // base64("app-id:app-secret-value")
        .and(header(
            "authorization",
            "Basic YXBwLWlkOmFwcC1zZWNyZXQtdmFsdWU=",
        ))
        .and(body_string_contains("grant_type=client_credentials"))
        .respond_with(ResponseTemplate::new(200).set_body_json(token_body("tok-1", 3600)))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/app/events"))
        .and(header("authorization", "Bearer tok-1"))
        .and(query_param("from_revision", "0"))
        .and(query_param("max_results", "50"))
        .respond_with(empty_page())
        .expect(2)
        .mount(&server)
        .await;
    let client = NarrativeClient::new(wiremock_config(&server)).unwrap();
    client.events_after(None, 50).await.unwrap();
    // the token is reused
    client.events_after(None, 50).await.unwrap();
}

#[tokio::test]
async fn token_is_refreshed_before_it_expires() {
    let server = MockServer::start().await;
    Mock::given(path("/oauth/token"))
        .and(body_string_contains("grant_type=client_credentials"))
        .respond_with(ResponseTemplate::new(200).set_body_json(token_body("short", 0)))
        .mount(&server)
        .await;
    Mock::given(path("/oauth/token"))
        .and(body_string_contains("grant_type=refresh_token"))
        .and(body_string_contains("refresh_token=refresh-of-short"))
        .respond_with(ResponseTemplate::new(200).set_body_json(token_body("long", 3600)))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/v2/app/events"))
        .and(header("authorization", "Bearer short"))
        .respond_with(empty_page())
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/v2/app/events"))
        .and(header("authorization", "Bearer long"))
        .respond_with(empty_page())
        .expect(2)
        .mount(&server)
        .await;
    let client = NarrativeClient::new(wiremock_config(&server)).unwrap();
    for _ in 0..3 {
        client.events_after(None, 10).await.unwrap();
    }
    let requests = server.received_requests().await.unwrap();
    assert_eq!(
        grant_types(&requests),
        ["client_credentials", "refresh_token"]
    );
}

#[tokio::test]
async fn a_401_renews_the_token_once_and_retries() {
    let (fake, client) = fake_and_client().await;
    client.events_after(None, 10).await.unwrap();
    fake.expire_app_tokens();
    client.events_after(None, 10).await.unwrap();
    assert_eq!(fake.token_grants(), ["client_credentials", "refresh_token"]);
    assert_eq!(fake.calls_to("/v2/app/events").len(), 3);
}

#[tokio::test]
async fn a_failed_refresh_falls_back_to_a_new_grant() {
    let (fake, client) = fake_and_client().await;
    client.events_after(None, 10).await.unwrap();
    fake.expire_app_tokens();
    fake.revoke_refresh_tokens();
    client.events_after(None, 10).await.unwrap();
    assert_eq!(
        fake.token_grants(),
        ["client_credentials", "refresh_token", "client_credentials"]
    );
}

#[tokio::test]
async fn a_401_after_renewal_is_final_and_a_permission_error() {
    let server = MockServer::start().await;
    mount_token(&server).await;
    Mock::given(path("/connections/".to_owned() + CONN))
        .respond_with(ResponseTemplate::new(401))
        .expect(2)
        .mount(&server)
        .await;
    let client = NarrativeClient::new(wiremock_config(&server)).unwrap();
    let error = client.connection(conn_id()).await.unwrap_err();
    assert!(
        matches!(error, CoreError::PermissionDenied { .. }),
        "{error:?}"
    );
    assert!(!error.is_retryable());
}

#[tokio::test]
async fn wrong_app_credentials_are_a_permission_error() {
    let fake = FakeMarketplace::start().await.unwrap();
    let mut config = fake.client_config();
    config.client_secret = SecretString::from("wrong-secret");
    let client = NarrativeClient::new(config).unwrap();
    let error = client.events_after(None, 10).await.unwrap_err();
    assert!(
        matches!(error, CoreError::PermissionDenied { .. }),
        "{error:?}"
    );
    assert!(!format!("{error:?}").contains("wrong-secret"));
}

#[tokio::test]
async fn concurrent_callers_with_a_rejected_token_share_one_renewal() {
    let (fake, client) = fake_and_client().await;
    client.events_after(None, 10).await.unwrap();
    fake.expire_app_tokens();
    // a slow token endpoint keeps every caller waiting on the same renewal
    fake.set_token_delay(Duration::from_millis(100));
    let calls = (0..16).map(|_| {
        let client = client.clone();
        tokio::spawn(async move { client.events_after(None, 10).await })
    });
    for result in futures::future::join_all(calls).await {
        result.unwrap().unwrap();
    }
    assert_eq!(fake.token_grants(), ["client_credentials", "refresh_token"]);
}

#[tokio::test]
async fn concurrent_first_callers_share_one_grant() {
    let (fake, client) = fake_and_client().await;
    fake.set_token_delay(Duration::from_millis(100));
    let calls = (0..16).map(|_| {
        let client = client.clone();
        tokio::spawn(async move { client.connection(conn_id()).await })
    });
    for result in futures::future::join_all(calls).await {
        assert_eq!(result.unwrap().unwrap(), None);
    }
    assert_eq!(fake.token_grants(), ["client_credentials"]);
}

/// On paused time (the fake runs on the test's runtime and its token expiry follows tokio's
/// clock): no real sleep races the token's lifetime on a loaded machine.
#[tokio::test(start_paused = true)]
async fn concurrent_callers_with_an_expired_token_share_one_refresh() {
    let (fake, client) = fake_and_client().await;
    // the first token lives one second (renewed after half of it)
    fake.set_token_lifetimes(Duration::from_secs(1), Duration::from_secs(86_400));
    fake.set_token_delay(Duration::from_millis(100));
    client.events_after(None, 10).await.unwrap();
    assert_eq!(fake.token_grants(), ["client_credentials"]);
    fake.set_token_lifetimes(Duration::from_secs(3_600), Duration::from_secs(86_400));
    // past the first token's expiry: the fake refuses it (a caller still using it would get a
    // 401 and renew again, which the grant list would show)
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let calls = (0..16).map(|_| {
        let client = client.clone();
        tokio::spawn(async move { client.events_after(None, 10).await })
    });
    for result in futures::future::join_all(calls).await {
        result.unwrap().unwrap();
    }
    assert_eq!(fake.token_grants(), ["client_credentials", "refresh_token"]);
    assert_eq!(fake.calls_to("/v2/app/events").len(), 17);
}

// ---------------------------------------------------------------- feeds

#[tokio::test]
async fn event_feed_decodes_every_kind_and_pages() {
    let (fake, client) = fake_and_client().await;
    let r1 = fake.add_legacy_delivery(
        legacy_delivery()
            .quick_settings(json!({"audienceName": "Buyers", "historicalDataEnabled": "true"})),
    );
    let r2 = fake.add_snapshot_appended(conn_id(), "snap-9");
    let at = datetime!(2024-05-01 10:00 UTC);
    let r3 = fake.add_connection_created(conn_id(), at);
    let r4 = fake.add_event("dataset-deleted", json!({"dataset_id": 3}), at);
    let r5 = fake.add_event("snapshot-appended", json!({"connection_id": 12}), at);

    let page = client.events_after(None, 2).await.unwrap();
    assert_eq!(
        page.events.iter().map(|e| e.revision).collect::<Vec<_>>(),
        [r1, r2]
    );
    match &page.events[0].event {
        DeliveryEvent::SubscriptionDelivery {
            profile_id,
            subscription_id,
            transaction_batch_id,
            quick_settings,
        } => {
            assert_eq!(*profile_id, self::profile_id());
            assert_eq!(subscription_id.to_string(), SUB);
            assert_eq!(transaction_batch_id.to_string(), BATCH);
            assert!(quick_settings.historical_data_enabled);
            assert_eq!(quick_settings.audience_name.as_deref(), Some("Buyers"));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(
        page.events[1].event,
        DeliveryEvent::SnapshotAppended {
            connection_id: conn_id(),
            snapshot_id: SnapshotId::new("snap-9").unwrap()
        }
    );
    assert_eq!(page.next_revision, Some(r2.next()));

    let page = client.events_after(Some(r2), 10).await.unwrap();
    assert_eq!(page.events.len(), 3);
    assert_eq!(page.events[0].revision, r3);
    assert_eq!(page.events[0].timestamp, at);
    assert_eq!(
        page.events[0].event,
        DeliveryEvent::ConnectionCreated {
            connection_id: conn_id()
        }
    );
    assert_eq!(
        page.events[1],
        facebook_connector_core::domain::EventEnvelope {
            revision: r4,
            timestamp: at,
            event: DeliveryEvent::Unknown {
                payload_type: "dataset-deleted".into()
            }
        }
    );
    assert_eq!(page.events[2].revision, r5);
    assert_eq!(
        page.events[2].event,
        DeliveryEvent::Unknown {
            payload_type: "snapshot-appended (malformed)".into()
        }
    );
    let feed_calls = fake.calls_to("/v2/app/events");
    assert_eq!(
        feed_calls[0].query_param("from_revision").as_deref(),
        Some("0")
    );
    // the cursor itself is sent: the inclusive fake repeats r2, which is dropped
    assert_eq!(
        feed_calls[1].query_param("from_revision"),
        Some(r2.to_string())
    );
    assert_eq!(
        feed_calls[1].query_param("max_results").as_deref(),
        Some("10")
    );

    let empty = client.events_after(Some(r5), 10).await.unwrap();
    assert!(empty.events.is_empty());
}

#[tokio::test]
async fn legacy_commands_feed_is_configurable() {
    let fake = FakeMarketplace::start().await.unwrap();
    let client = NarrativeClient::new(
        fake.client_config()
            .with_feed_kind(FeedKind::LegacyCommands),
    )
    .unwrap();
    let r1 = fake.add_legacy_delivery(legacy_delivery());
    fake.add_snapshot_appended(conn_id(), "only-in-event-feed");
    let r3 = fake.add_legacy_command("SomethingNew", json!({}));
    let page = client.events_after(None, 10).await.unwrap();
    assert_eq!(page.events.len(), 2);
    assert_eq!(page.events[0].revision, r1);
    assert!(matches!(
        page.events[0].event,
        DeliveryEvent::SubscriptionDelivery { ref quick_settings, .. } if *quick_settings == QuickSettings::default()
    ));
    assert_eq!(page.events[1].revision, r3);
    assert_eq!(page.events[1].event.kind(), "unknown");
    assert_eq!(fake.calls_to("/v1/app/commands/delivery").len(), 1);
    assert!(fake.calls_to("/v2/").is_empty());

    // paging: one record at a time, continuing after the last revision seen
    let first = client.events_after(None, 1).await.unwrap();
    assert_eq!(first.events.len(), 1);
    assert_eq!(first.events[0].revision, r1);
    let second = client.events_after(Some(r1), 1).await.unwrap();
    assert_eq!(second.events[0].revision, r3);
    assert_eq!(second.next_revision, Some(r3.next()));
    let done = client.events_after(Some(r3), 1).await.unwrap();
    assert!(done.events.is_empty());
    let pages = fake.calls_to("/v1/app/commands/delivery");
    assert_eq!(pages[2].query_param("from_revision"), Some(r1.to_string()));
    // at least 2, so an inclusive feed that repeats the cursor's event still moves on
    assert_eq!(pages[2].query_param("max_results").as_deref(), Some("2"));
}

#[tokio::test]
async fn feed_paths_and_payload_types_come_from_configuration() {
    let server = MockServer::start().await;
    mount_token(&server).await;
    Mock::given(method("GET"))
        .and(path("/v3/feed"))
        .and(query_param("from_revision", "7"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "records": [
                {"metadata": {"revision": "8", "timestamp": 1714557600000_i64},
                 "payload_type": "ConnectionCreatedV3", "payload": {"connectionId": CONN}},
                {"metadata": {"timestamp": "2024-05-01T10:00:00Z"},
                 "payload_type": "ConnectionCreatedV3", "payload": {"connectionId": CONN}}
            ],
            "next_revision": "9"
        })))
        .expect(1)
        .mount(&server)
        .await;
    let mut config = wiremock_config(&server);
    config.feed.events_path = "/v3/feed".into();
    config.feed.payload_types.connection_created = "ConnectionCreatedV3".into();
    let client = NarrativeClient::new(config).unwrap();
    let page = client.events_after(Some(Revision(7)), 5).await.unwrap();
    // the record without a revision is dropped
    assert_eq!(page.events.len(), 1);
    assert_eq!(page.events[0].timestamp, datetime!(2024-05-01 10:00 UTC));
    assert_eq!(
        page.events[0].event,
        DeliveryEvent::ConnectionCreated {
            connection_id: conn_id()
        }
    );
    assert_eq!(page.next_revision, Some(Revision(9)));
}

// ---------------------------------------------------------------- retries and errors

#[tokio::test]
async fn server_errors_are_retried_then_transient() {
    let (fake, client) = fake_and_client().await;
    fake.fail_next("/v2/app/events", 503, 2);
    client.events_after(None, 10).await.unwrap();
    assert_eq!(fake.calls_to("/v2/app/events").len(), 3);

    fake.fail_next("/connections/", 502, 100);
    let error = client.connection(conn_id()).await.unwrap_err();
    assert!(error.is_retryable(), "{error:?}");
    // 4 attempts, the first included (RetryPolicy::fast)
    assert_eq!(fake.calls_to("/connections/").len(), 4);
}

/// On paused time: the 300 ms timeout and the fake's 3 s delay are tokio timers, so a busy
/// machine cannot make an ordinary answer miss the timeout.
#[tokio::test(start_paused = true)]
async fn slow_responses_time_out_and_are_retried() {
    let fake = FakeMarketplace::start().await.unwrap();
    let mut config = fake.client_config();
    config.http.request_timeout = Duration::from_millis(300);
    let client = NarrativeClient::new(config).unwrap();
    client.events_after(None, 1).await.unwrap();
    fake.delay_next("/v2/app/events", Duration::from_secs(3), 1);
    let start = tokio::time::Instant::now();
    client.events_after(None, 1).await.unwrap();
    assert_eq!(fake.calls_to("/v2/app/events").len(), 3);
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(1),
        "the slow attempt was cut at its timeout: {took:?}"
    );

    fake.delay_next("/v2/app/events", Duration::from_secs(3), 10);
    let error = client.events_after(None, 1).await.unwrap_err();
    assert!(error.is_retryable(), "{error:?}");
    // every attempt (RetryPolicy::fast: 4) timed out
    assert_eq!(fake.calls_to("/v2/app/events").len(), 3 + 4);
}

/// A `Retry-After` (seconds or an HTTP date) beyond the client's budget is not slept on: the
/// call fails at once with the wait, for the engine's queue.
#[tokio::test]
async fn retry_after_is_honoured_within_the_budget_and_handed_back_beyond_it() {
    let server = MockServer::start().await;
    mount_token(&server).await;
    Mock::given(path("/v2/app/events"))
        .respond_with(ResponseTemplate::new(503).insert_header("retry-after", "600"))
        .mount(&server)
        .await;
    let client = NarrativeClient::new(wiremock_config(&server)).unwrap();
    let error = client.events_after(None, 10).await.unwrap_err();
    assert!(
        matches!(
            error,
            CoreError::Transient {
                retry_after: Some(wait),
                ..
            } if wait == Duration::from_secs(600)
        ),
        "{error:?}"
    );
    let requests = server.received_requests().await.unwrap();
    let feed_calls = requests
        .iter()
        .filter(|r| r.url.path() == "/v2/app/events")
        .count();
    assert_eq!(feed_calls, 1, "a wait beyond the budget is not taken");

    let date = httpdate_string(std::time::SystemTime::now() + Duration::from_secs(600));
    Mock::given(path(format!("/connections/{CONN}")))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", date.as_str()))
        .mount(&server)
        .await;
    match client.connection(conn_id()).await.unwrap_err() {
        CoreError::Transient {
            retry_after: Some(wait),
            ..
        } => assert!(
            wait > Duration::from_secs(590) && wait <= Duration::from_secs(600),
            "{wait:?}"
        ),
        other => panic!("{other:?}"),
    }
}

fn httpdate_string(at: std::time::SystemTime) -> String {
    let at = OffsetDateTime::from(at);
    at.format(time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    ))
    .unwrap()
}

#[tokio::test]
async fn non_idempotent_calls_are_not_retried() {
    let fake = FakeMarketplace::start().await.unwrap();
    fake.add_customer("cust-token", CompanyId(7), 42);
    let profiles = ProfileClient::new(fake.base_url(), HttpConfig::fast()).unwrap();
    fake.fail_next("/installations/42/profiles", 503, 5);
    let error = profiles
        .create_profile(
            &SecretString::from("cust-token"),
            &InstallationId("42".into()),
            "x",
            None,
        )
        .await
        .unwrap_err();
    assert!(error.is_retryable());
    assert_eq!(fake.calls_to("/installations/42/profiles").len(), 1);
}

#[tokio::test]
async fn connections_are_decoded_and_missing_ones_are_none() {
    let (fake, client) = fake_and_client().await;
    assert_eq!(client.connection(conn_id()).await.unwrap(), None);
    fake.add_connection_json(json!({
        "id": CONN, "dataset_id": "31", "profile_id": PROFILE,
        "quick_settings": {"audience_id": 123, "historical_data_enabled": "true"},
        "status": "active"
    }));
    let connection = client.connection(conn_id()).await.unwrap().unwrap();
    assert_eq!(connection.dataset_id, DatasetId(31));
    assert!(connection.quick_settings.historical_data_enabled);
    assert_eq!(connection.status, ConnectionStatus::Active);

    let archived = Connection {
        id: conn_id(),
        dataset_id: DatasetId(31),
        profile_id: profile_id(),
        quick_settings: QuickSettings::default(),
        status: ConnectionStatus::Archived,
    };
    fake.add_connection(&archived);
    assert_eq!(client.connection(conn_id()).await.unwrap(), Some(archived));
    fake.remove_connection(conn_id());
    assert_eq!(client.connection(conn_id()).await.unwrap(), None);
}

// ---------------------------------------------------------------- files

#[tokio::test]
async fn legacy_files_are_listed_and_downloaded() {
    let (fake, client) = fake_and_client().await;
    let body = b"{\"data\":{\"email\":\"a@example.com\"}}\n".repeat(1000);
    let revision = fake.add_legacy_delivery(
        legacy_delivery()
            .file("part 0.jsonl", body.clone())
            .file("part-1.jsonl", &b""[..]),
    );
    let files = client.legacy_files(revision).await.unwrap();
    assert_eq!(
        files,
        [
            FileName::new("part 0.jsonl").unwrap(),
            FileName::new("part-1.jsonl").unwrap()
        ]
    );
    let detailed = client.legacy_delivery_files(revision).await.unwrap();
    assert_eq!(detailed[0].size, Some(body.len() as u64));

    let file = FileRef::Legacy {
        revision,
        file: files[0].clone(),
    };
    let download = client.open(&file).await.unwrap();
    assert_eq!(download.content_length, Some(body.len() as u64));
    let chunks: Vec<_> = download.body.collect().await;
    let bytes: Vec<u8> = chunks
        .into_iter()
        .flat_map(|c| c.unwrap().to_vec())
        .collect();
    assert_eq!(bytes, body);

    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out.jsonl");
    assert_eq!(
        client.download_to(&file, &dest).await.unwrap(),
        body.len() as u64
    );
    assert_eq!(std::fs::read(&dest).unwrap(), body);
    // presigned downloads carry no app token
    let presigned = fake.calls_to("/presigned/");
    assert_eq!(presigned.len(), 2);
    assert!(presigned[0].query_param("signature").is_some());

    let error = client.legacy_files(Revision(999)).await.unwrap_err();
    assert!(matches!(error, CoreError::NotFound { .. }), "{error:?}");
}

/// The local disk failing while a file downloads (here: the temporary directory is gone) is
/// not the file's fault and not a bug: `Transient`, so the job is tried again later.
#[tokio::test]
async fn local_write_failures_while_downloading_are_transient() {
    let (fake, client) = fake_and_client().await;
    let revision = fake.add_legacy_delivery(legacy_delivery().file("a.jsonl", "line\n"));
    let file = FileRef::Legacy {
        revision,
        file: FileName::new("a.jsonl").unwrap(),
    };
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("gone").join("a.jsonl");
    let error = client.download_to(&file, &dest).await.unwrap_err();
    assert!(matches!(error, CoreError::Transient { .. }), "{error:?}");
}

#[tokio::test]
async fn legacy_download_link_is_a_json_string() {
    let server = MockServer::start().await;
    mount_token(&server).await;
    Mock::given(method("POST"))
        .and(path("/v1/app/commands/delivery/5/download/f.jsonl"))
        .and(header("authorization", "Bearer tok"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!(format!(
            "{}/bucket/f.jsonl?X-Amz-Signature=abc",
            server.uri()
        ))))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/bucket/f.jsonl"))
        .and(query_param("X-Amz-Signature", "abc"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(&b"line\n"[..]))
        .expect(1)
        .mount(&server)
        .await;
    let client = NarrativeClient::new(wiremock_config(&server)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("f");
    let file = FileRef::Legacy {
        revision: Revision(5),
        file: FileName::new("f.jsonl").unwrap(),
    };
    assert_eq!(client.download_to(&file, &dest).await.unwrap(), 5);
    let requests = server.received_requests().await.unwrap();
    let get = requests
        .iter()
        .find(|r| r.url.path() == "/bucket/f.jsonl")
        .unwrap();
    assert!(get.headers.get("authorization").is_none());
}

#[tokio::test]
async fn snapshot_files_are_listed_and_downloaded() {
    let (fake, client) = fake_and_client().await;
    let parquet = vec![b'P', b'A', b'R', b'1', 0, 1, 2, 3, b'P', b'A', b'R', b'1'];
    fake.add_snapshot(
        Snapshot::new(DatasetId(31), "snap-1").file("part-0.parquet", parquet.clone()),
    );
    let snapshot = SnapshotId::new("snap-1").unwrap();
    let files = client
        .snapshot_files(DatasetId(31), &snapshot)
        .await
        .unwrap();
    assert_eq!(files, [FileName::new("part-0.parquet").unwrap()]);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("p.parquet");
    let file = FileRef::Snapshot {
        dataset_id: DatasetId(31),
        snapshot_id: snapshot.clone(),
        file: files[0].clone(),
    };
    client.download_to(&file, &dest).await.unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), parquet);
    let link_calls =
        fake.calls_to("/datasets/31/snapshots/snap-1/files-added/part-0.parquet/download");
    assert_eq!(link_calls.len(), 1);
    assert_eq!(link_calls[0].method, "POST");
}

#[tokio::test]
async fn snapshot_errors_are_clear() {
    let (fake, client) = fake_and_client().await;
    fake.add_snapshot(Snapshot::new(DatasetId(31), "old").file("a.parquet", &b"x"[..]));
    fake.add_snapshot(Snapshot::new(DatasetId(31), "new").file("b.parquet", &b"y"[..]));
    fake.mark_snapshot_too_old(DatasetId(31), "old");
    fake.expire_download("b.parquet");

    let error = client
        .snapshot_files(DatasetId(31), &SnapshotId::new("old").unwrap())
        .await
        .unwrap_err();
    match &error {
        CoreError::Rejected { reason, .. } => {
            assert!(reason.contains("older than 30 days"), "{reason}")
        }
        other => panic!("unexpected {other:?}"),
    }

    let error = client
        .snapshot_files(DatasetId(31), &SnapshotId::new("missing").unwrap())
        .await
        .unwrap_err();
    assert!(matches!(error, CoreError::NotFound { .. }), "{error:?}");

    let file = FileRef::Snapshot {
        dataset_id: DatasetId(31),
        snapshot_id: SnapshotId::new("new").unwrap(),
        file: FileName::new("b.parquet").unwrap(),
    };
    let error = client.open(&file).await.unwrap_err();
    match &error {
        CoreError::Rejected { reason, .. } => {
            assert!(reason.contains("b.parquet expired"), "{reason}");
            assert!(reason.contains("no longer available"), "{reason}");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn expired_presigned_links_are_requested_again_once() {
    let (fake, client) = fake_and_client().await;
    let revision = fake.add_legacy_delivery(legacy_delivery().file("a.jsonl", &b"{}\n"[..]));
    fake.set_download_url_ttl(Some(Duration::ZERO));
    let file = FileRef::Legacy {
        revision,
        file: FileName::new("a.jsonl").unwrap(),
    };
    let error = client.open(&file).await.unwrap_err();
    assert!(matches!(error, CoreError::Rejected { .. }), "{error:?}");
    assert_eq!(fake.calls_to("/presigned/").len(), 2);
    assert_eq!(
        fake.calls_to(&format!("/v1/app/commands/delivery/{revision}/download/"))
            .len(),
        2
    );
    // and a link that expired in transit is replaced
    fake.set_download_url_ttl(None);
    client.open(&file).await.unwrap();
}

#[tokio::test]
async fn truncated_downloads_fail_and_leave_no_file() {
    let (fake, client) = fake_and_client().await;
    let revision = fake.add_legacy_delivery(legacy_delivery().file("a.jsonl", vec![b'x'; 4096]));
    fake.truncate_downloads(true);
    let file = FileRef::Legacy {
        revision,
        file: FileName::new("a.jsonl").unwrap(),
    };
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("a.jsonl");
    let error = client.download_to(&file, &dest).await.unwrap_err();
    assert!(error.is_retryable(), "{error:?}");
    assert!(!dest.exists());
}

#[tokio::test]
async fn length_mismatch_is_detected_on_the_stream() {
    // a raw server that announces 10 bytes, sends 4 and closes the connection
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut buf = [0_u8; 4096];
            let _ = socket.read(&mut buf).await;
            let _ = socket
                .write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\nconnection: close\r\n\r\nabcd",
                )
                .await;
            let _ = socket.shutdown().await;
        }
    });
    let server = MockServer::start().await;
    mount_token(&server).await;
    Mock::given(path(
        "/datasets/1/snapshots/s/files-added/f.parquet/download",
    ))
    .respond_with(
        ResponseTemplate::new(200)
            .set_body_json(json!({"download_url": format!("http://{addr}/f.parquet")})),
    )
    .mount(&server)
    .await;
    let client = NarrativeClient::new(wiremock_config(&server)).unwrap();
    let file = FileRef::Snapshot {
        dataset_id: DatasetId(1),
        snapshot_id: SnapshotId::new("s").unwrap(),
        file: FileName::new("f.parquet").unwrap(),
    };
    let download = client.open(&file).await.unwrap();
    assert_eq!(download.content_length, Some(10));
    let items: Vec<_> = download.body.collect().await;
    let error = items.into_iter().find_map(Result::err).expect("an error");
    assert!(error.is_retryable(), "{error:?}");
}

#[tokio::test]
async fn backfill_pages_through_find_files_with_the_time_bound() {
    let (fake, client) = fake_and_client().await;
    fake.set_find_files_page_size(2);
    let day = |d: u8| {
        OffsetDateTime::new_utc(
            time::Date::from_calendar_date(2024, time::Month::May, d).unwrap(),
            time::Time::MIDNIGHT,
        )
    };
    for (d, id) in [
        (1, "s1"),
        (2, "s2"),
        (3, "s3"),
        (4, "s4"),
        (5, "s5"),
        (6, "s6"),
    ] {
        let mut snapshot = Snapshot::new(DatasetId(31), id)
            .at(day(d))
            .file(format!("{id}-a.parquet"), &b"a"[..])
            .file(format!("{id}-b.parquet"), &b"b"[..]);
        if id == "s2" {
            snapshot = snapshot.not_downloadable();
        }
        fake.add_snapshot(snapshot);
    }
    fake.add_snapshot(
        Snapshot::new(DatasetId(99), "other")
            .at(day(1))
            .file("z.parquet", &b"z"[..]),
    );
    let files = client.files_before(DatasetId(31), day(5)).await.unwrap();
    let names: Vec<(String, String)> = files
        .iter()
        .map(|(s, f)| (s.to_string(), f.to_string()))
        .collect();
    assert_eq!(
        names,
        [
            ("s1", "s1-a.parquet"),
            ("s1", "s1-b.parquet"),
            ("s3", "s3-a.parquet"),
            ("s3", "s3-b.parquet"),
            ("s4", "s4-a.parquet"),
            ("s4", "s4-b.parquet"),
        ]
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
    );
    let pages = fake.calls_to("/datasets/31/find-files");
    assert_eq!(pages.len(), 3);
    assert_eq!(pages[0].query_param("from_snapshot_id"), None);
    assert_eq!(
        pages[1].query_param("from_snapshot_id").as_deref(),
        Some("s3")
    );
    assert_eq!(
        pages[2].query_param("from_snapshot_id").as_deref(),
        Some("s5")
    );
}

#[tokio::test]
async fn find_files_pages_by_offset_without_a_cursor() {
    let server = MockServer::start().await;
    mount_token(&server).await;
    Mock::given(path("/datasets/4/find-files"))
        .and(query_param("offset", "0"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "files_per_snapshot": [{"files": [{"path": "x.parquet", "size": 1}], "snapshot_id": 17,
                                    "timestamp": "2024-01-01T00:00:00Z", "is_downloadable": true}],
            "has_next": true
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/datasets/4/find-files"))
        .and(query_param("offset", "100"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "files_per_snapshot": [{"files": [{"path": "y.parquet", "size": 1}], "snapshot_id": "18",
                                    "timestamp": "2024-01-02T00:00:00Z", "is_downloadable": true}],
            "has_next": false, "next_snapshot": null
        })))
        .expect(1)
        .mount(&server)
        .await;
    let client = NarrativeClient::new(wiremock_config(&server)).unwrap();
    let files = client
        .files_before(DatasetId(4), datetime!(2030-01-01 0:00 UTC))
        .await
        .unwrap();
    assert_eq!(files.len(), 2);
    assert_eq!(files[0].0.as_str(), "17");
}

// ---------------------------------------------------------------- customer calls

#[tokio::test]
async fn customer_calls_cover_whoami_and_the_profile_lifecycle() {
    let fake = FakeMarketplace::start().await.unwrap();
    let uuid_installation = "5e2d3c4b-5a69-4788-9aab-bccddeeff005";
    fake.add_customer("cust-a", CompanyId(7), 42);
    fake.add_customer("cust-b", CompanyId(8), uuid_installation);
    let client = ProfileClient::new(fake.base_url(), HttpConfig::fast()).unwrap();
    let a = SecretString::from("cust-a");
    let b = SecretString::from("cust-b");

    assert_eq!(client.company(&a).await.unwrap(), CompanyId(7));
    let installation = client.installation(&a).await.unwrap();
    assert_eq!(installation, InstallationId("42".into()));
    assert_eq!(
        client.installation(&b).await.unwrap(),
        InstallationId(uuid_installation.into())
    );

    assert!(
        client
            .list_profiles(&a, &installation)
            .await
            .unwrap()
            .is_empty()
    );
    let created = client
        .create_profile(&a, &installation, "Main", Some("ads".into()))
        .await
        .unwrap();
    assert_eq!(created.status, ProfileStatus::Disabled);
    assert_eq!(created.description.as_deref(), Some("ads"));
    assert_eq!(
        client
            .get_profile(&a, &installation, created.id)
            .await
            .unwrap(),
        Some(created.clone())
    );
    let updated = client
        .update_profile(&a, &installation, created.id, "Renamed", None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(updated.name, "Renamed");
    for (transition, status) in [
        (ProfileTransition::Enable, ProfileStatus::Enabled),
        (ProfileTransition::Disable, ProfileStatus::Disabled),
        (ProfileTransition::Archive, ProfileStatus::Archived),
    ] {
        let profile = client
            .transition_profile(&a, &installation, created.id, transition)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(profile.status, status);
    }
    assert_eq!(
        client.list_profiles(&a, &installation).await.unwrap().len(),
        1
    );

    // another customer's profile is "not found", not an error
    let other = fake_profile();
    fake.add_profile("cust-b", other.clone());
    let b_installation = InstallationId(uuid_installation.into());
    assert_eq!(
        client
            .get_profile(&b, &b_installation, other.id)
            .await
            .unwrap(),
        Some(other.clone())
    );
    assert_eq!(
        client
            .get_profile(&a, &installation, other.id)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        client
            .update_profile(&a, &installation, other.id, "x", None)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        client
            .transition_profile(&a, &installation, other.id, ProfileTransition::Archive)
            .await
            .unwrap(),
        None
    );
    assert_eq!(fake.profiles("cust-b")[0].status, ProfileStatus::Enabled);
}

fn fake_profile() -> MarketplaceProfile {
    MarketplaceProfile {
        id: "6e2d3c4b-5a69-4788-9aab-bccddeeff006".parse().unwrap(),
        name: "Other".into(),
        description: None,
        status: ProfileStatus::Enabled,
    }
}

#[tokio::test]
async fn a_refused_customer_token_is_invalid_token_and_never_leaks() {
    let fake = FakeMarketplace::start().await.unwrap();
    let client = ProfileClient::new(fake.base_url(), HttpConfig::fast()).unwrap();
    let token = SecretString::from("customer-secret-token-123");
    let error = client.company(&token).await.unwrap_err();
    assert!(error.is_invalid_token(), "{error:?}");
    let rendered = format!("{error} {error:?} {:?}", std::error::Error::source(&error));
    assert!(
        !rendered.contains("customer-secret-token-123"),
        "{rendered}"
    );
    // one attempt only: a 401 is final
    assert_eq!(fake.calls_to("/company-info/whoami").len(), 1);
}

#[tokio::test]
async fn installation_ids_accept_integers_and_uuids_exactly() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/installations/whoami"))
        .and(header("authorization", "Bearer t"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": 12345})))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/installations/12345/profiles"))
        .and(wiremock::matchers::body_json(
            json!({"name": "n", "description": null}),
        ))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!(
            {"id": PROFILE, "name": "n", "status": "disabled"})))
        .expect(1)
        .mount(&server)
        .await;
    let client = ProfileClient::new(server.uri().parse().unwrap(), HttpConfig::fast()).unwrap();
    let token = SecretString::from("t");
    let installation = client.installation(&token).await.unwrap();
    assert_eq!(installation.0, "12345");
    let profile = client
        .create_profile(&token, &installation, "n", None)
        .await
        .unwrap();
    assert_eq!(profile.id, profile_id());
    assert_eq!(profile.description, None);
}

// ---------------------------------------------------------------- status events

#[tokio::test]
async fn status_reports_are_posted_in_camel_case() {
    let (fake, client) = fake_and_client().await;
    let report = DeliveryReport {
        idempotency_key: "rev-5:file-1:completed".into(),
        company_id: Some(CompanyId(7)),
        profile_id: profile_id(),
        connection_id: Some(conn_id()),
        dataset_id: Some(DatasetId(31)),
        at: datetime!(2024-05-01 10:00 UTC),
        outcome: Ok(1200),
    };
    client.report(&report).await.unwrap();
    let events = fake.status_events();
    assert_eq!(events.len(), 1);
    let event = &events[0]["events"][0];
    assert_eq!(event["eventType"]["value"], "audience.delivery.completed");
    assert_eq!(event["idempotencyKey"]["value"], "rev-5:file-1:completed");
    assert_eq!(event["context"]["connectionId"], CONN);
    assert_eq!(event["context"]["profileId"], PROFILE);
    assert_eq!(event["payload"]["value"]["membersSent"], 1200);
}

#[tokio::test]
async fn rejected_status_reports_are_errors() {
    let server = MockServer::start().await;
    mount_token(&server).await;
    Mock::given(method("POST"))
        .and(path("/apps/events"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(
                json!({"enqueued": [], "rejected": [{"error": "unknown_event_type"}]}),
            ),
        )
        .mount(&server)
        .await;
    let client = NarrativeClient::new(wiremock_config(&server)).unwrap();
    let report = DeliveryReport {
        idempotency_key: "k".into(),
        company_id: None,
        profile_id: profile_id(),
        connection_id: None,
        dataset_id: None,
        at: OffsetDateTime::now_utc(),
        outcome: Err("failed".into()),
    };
    let error = client.report(&report).await.unwrap_err();
    match error {
        CoreError::Rejected { reason, .. } => {
            assert!(reason.contains("unknown_event_type"), "{reason}")
        }
        other => panic!("unexpected {other:?}"),
    }
}

// ---------------------------------------------------------------- secrets

#[tokio::test]
async fn tokens_and_secrets_never_reach_logs_errors_or_debug() {
    let (logs, _guard) = capture_logs();

    let (fake, client) = fake_and_client().await;
    let revision = fake.add_legacy_delivery(legacy_delivery().file("a.jsonl", &b"{}\n"[..]));
    client.events_after(None, 10).await.unwrap();
    fake.expire_app_tokens();
    client.legacy_files(revision).await.unwrap();
    fake.expire_app_tokens();
    fake.revoke_refresh_tokens();
    let file = FileRef::Legacy {
        revision,
        file: FileName::new("a.jsonl").unwrap(),
    };
    client.open(&file).await.unwrap();
    fake.fail_next("/oauth/token", 500, 100);
    fake.expire_app_tokens();
    let grant_error = client.connection(conn_id()).await.unwrap_err();
    fake.set_download_url_ttl(Some(Duration::ZERO));
    fake.fail_next("/oauth/token", 0, 0);
    let mut rendered = vec![
        format!("{client:?}"),
        format!("{grant_error} {grant_error:?}"),
    ];

    let mut wrong = fake.client_config();
    wrong.client_secret = SecretString::from("a-wrong-secret");
    let wrong_client = NarrativeClient::new(wrong.clone()).unwrap();
    let error = wrong_client.events_after(None, 1).await.unwrap_err();
    rendered.push(format!("{error} {error:?} {wrong:?} {wrong_client:?}"));

    let logs = logs.text();
    assert!(
        logs.contains("requesting a marketplace app token"),
        "{logs}"
    );
    let tokens = fake.issued_tokens();
    assert!(tokens.len() >= 4, "{tokens:?}");
    let mut secrets: Vec<String> = tokens;
    secrets.push("fake-client-secret".into());
    secrets.push("a-wrong-secret".into());
    for secret in &secrets {
        assert!(!logs.contains(secret.as_str()), "{secret} logged");
        for text in &rendered {
            assert!(!text.contains(secret.as_str()), "{secret} in {text}");
        }
    }
    assert!(!logs.contains("signature=fake-"), "presigned url logged");
}
