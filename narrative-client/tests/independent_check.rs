//! An independent check of the client, written from `narrative-api.md` alone and without the
//! crate's own fake: wiremock (and, for broken bodies, a raw TCP server) serve the documented
//! shapes — with extra fields, ids as numbers or strings — and inject failures: 5xx then
//! success, 401 then refresh, a refused refresh, 403/404/451, answers slower than the timeout,
//! truncated downloads. Each test checks results and how often each endpoint was called.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{capture_logs, grant_types};
use facebook_connector_core::Error as CoreError;
use facebook_connector_core::domain::{
    CompanyId, ConnectionId, ConnectionStatus, DatasetId, DeliveryEvent, FileName, FileRef,
    ProfileId, ProfileStatus, Revision, SnapshotId,
};
use facebook_connector_core::ports::{
    ConnectionDirectory, DeliveryFiles, DeliveryReport, EventSource, InstallationId,
    ProfileDirectory, ProfileTransition, StatusReporter,
};
use futures::StreamExt;
use narrative_client::{
    FeedKind, HttpConfig, NarrativeClient, NarrativeConfig, ProfileClient, RetryPolicy,
};
use secrecy::SecretString;
use serde_json::{Value, json};
use time::macros::datetime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wiremock::matchers::{body_json, body_string, header, method, path, query_param};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const CLIENT_ID: &str = "chk-client";
const CLIENT_SECRET: &str = "chk-client-secret-XYZ";
/// base64("chk-client:chk-client-secret-XYZ")
const BASIC: &str = "Basic Y2hrLWNsaWVudDpjaGstY2xpZW50LXNlY3JldC1YWVo=";
const PROFILE: &str = "6f1c1f0e-8d7a-4c55-9d0f-0a1b2c3d4e5f";
const SUB: &str = "7a1c1f0e-8d7a-4c55-9d0f-0a1b2c3d4e51";
const BATCH: &str = "8b1c1f0e-8d7a-4c55-9d0f-0a1b2c3d4e52";
const CONN: &str = "9c1c1f0e-8d7a-4c55-9d0f-0a1b2c3d4e53";
/// Attempts per call, the first included.
const ATTEMPTS: u32 = 3;

/// Timeouts generous for a loaded machine.
fn http_config() -> HttpConfig {
    HttpConfig {
        request_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(5),
        read_timeout: Duration::from_secs(5),
        retry: RetryPolicy {
            max_attempts: ATTEMPTS,
            min_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
            budget: Duration::from_secs(30),
        },
        ..HttpConfig::default()
    }
}

/// For the tests of slow answers: 1 s timeouts, still far from the fake's 8 s delay.
fn slow_config(server: &MockServer) -> NarrativeConfig {
    let mut config = config(server);
    config.http.request_timeout = Duration::from_secs(1);
    config.http.read_timeout = Duration::from_secs(1);
    config
}

fn config(server: &MockServer) -> NarrativeConfig {
    NarrativeConfig::new(
        server.uri().parse().unwrap(),
        CLIENT_ID,
        SecretString::from(CLIENT_SECRET),
    )
    .with_http(http_config())
}

fn client(server: &MockServer) -> NarrativeClient {
    NarrativeClient::new(config(server)).unwrap()
}

fn customer(server: &MockServer) -> ProfileClient {
    ProfileClient::new(server.uri().parse().unwrap(), http_config()).unwrap()
}

fn conn_id() -> ConnectionId {
    CONN.parse().unwrap()
}

fn profile_id() -> ProfileId {
    PROFILE.parse().unwrap()
}

/// A documented token answer, with fields the client does not know about.
fn token(access: &str, refresh: &str, expires_in: Value, refresh_expires_in: Value) -> Value {
    json!({"access_token": access, "access_token_expires_in": expires_in,
           "refresh_token": refresh, "refresh_token_expires_in": refresh_expires_in,
           "token_type": "bearer", "scope": "app"})
}

/// A client-credentials grant answering `body` (checked: POST, Basic auth, form body).
fn cc_grant(body: Value) -> Mock {
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .and(header("authorization", BASIC))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .and(body_string("grant_type=client_credentials"))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
}

/// The usual client-credentials grant (`acc-1`, refresh token `ref-1`, valid for an hour and
/// a day), without expectations.
async fn mount_grant(server: &MockServer) {
    cc_grant(token("acc-1", "ref-1", json!(3600), json!(86400)))
        .mount(server)
        .await;
}

/// A refresh grant for `refresh` answering `response`.
fn refresh_grant(refresh: &str, response: ResponseTemplate) -> Mock {
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .and(header("authorization", BASIC))
        .and(body_string(format!(
            "grant_type=refresh_token&refresh_token={refresh}"
        )))
        .respond_with(response)
}

async fn requests(server: &MockServer) -> Vec<Request> {
    server.received_requests().await.unwrap()
}

async fn count(server: &MockServer, verb: &str, at: &str) -> usize {
    requests(server)
        .await
        .iter()
        .filter(|r| r.method.as_str() == verb && r.url.path() == at)
        .count()
}

/// The grant types the token endpoint received, in order.
async fn grants(server: &MockServer) -> Vec<String> {
    grant_types(&requests(server).await)
}

fn connection_body() -> Value {
    json!({"id": CONN, "dataset_id": "42", "profile_id": PROFILE,
           "quick_settings": {"audience_id": 120210, "audience_name": "Buyers",
                              "historical_data_enabled": "true", "other": 1},
           "status": "active", "created_at": "2024-01-01T00:00:00Z"})
}

fn connection_mock(token: &str, response: ResponseTemplate) -> Mock {
    Mock::given(method("GET"))
        .and(path(format!("/connections/{CONN}")))
        .and(header("authorization", format!("Bearer {token}").as_str()))
        .respond_with(response)
}

fn ok(body: Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(body)
}

// ------------------------------------------------------------------ authentication

#[tokio::test]
async fn grant_uses_basic_auth_and_a_form_body_and_is_reused() {
    let server = MockServer::start().await;
    cc_grant(token("acc-1", "ref-1", json!(3600), json!(86400)))
        .expect(1)
        .mount(&server)
        .await;
    connection_mock("acc-1", ok(connection_body()))
        .expect(2)
        .mount(&server)
        .await;
    let client = client(&server);
    for _ in 0..2 {
        let connection = client.connection(conn_id()).await.unwrap().unwrap();
        assert_eq!(connection.dataset_id, DatasetId(42));
        assert_eq!(connection.profile_id, profile_id());
        assert_eq!(connection.status, ConnectionStatus::Active);
        assert!(connection.quick_settings.historical_data_enabled);
        assert_eq!(
            connection.quick_settings.audience_name.as_deref(),
            Some("Buyers")
        );
        assert_eq!(
            connection.quick_settings.audience_id.unwrap().as_str(),
            "120210"
        );
    }
    assert_eq!(grants(&server).await, ["client_credentials"]);
}

#[tokio::test]
async fn a_due_token_is_refreshed_with_the_refresh_grant() {
    let server = MockServer::start().await;
    // lifetime 0: due at once; the refreshed one's lifetimes arrive as strings
    cc_grant(token("acc-1", "ref-1", json!(0), json!(86400)))
        .expect(1)
        .mount(&server)
        .await;
    refresh_grant(
        "ref-1",
        ok(token("acc-2", "ref-2", json!("3600"), json!("86400"))),
    )
    .expect(1)
    .mount(&server)
    .await;
    connection_mock("acc-1", ok(connection_body()))
        .expect(1)
        .mount(&server)
        .await;
    connection_mock("acc-2", ok(connection_body()))
        .expect(2)
        .mount(&server)
        .await;
    let client = client(&server);
    for _ in 0..3 {
        client.connection(conn_id()).await.unwrap().unwrap();
    }
    assert_eq!(
        grants(&server).await,
        ["client_credentials", "refresh_token"]
    );
}

#[tokio::test]
async fn a_401_refreshes_once_and_the_call_is_repeated() {
    let server = MockServer::start().await;
    mount_grant(&server).await;
    refresh_grant(
        "ref-1",
        ok(token("acc-2", "ref-2", json!(3600), json!(86400))),
    )
    .mount(&server)
    .await;
    connection_mock("acc-1", ResponseTemplate::new(401))
        .expect(1)
        .mount(&server)
        .await;
    connection_mock("acc-2", ok(connection_body()))
        .expect(1)
        .mount(&server)
        .await;
    client(&server)
        .connection(conn_id())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        grants(&server).await,
        ["client_credentials", "refresh_token"]
    );
}

#[tokio::test]
async fn a_refused_refresh_falls_back_to_a_new_client_credentials_grant() {
    let server = MockServer::start().await;
    cc_grant(token("acc-1", "ref-1", json!(3600), json!(86400)))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    cc_grant(token("acc-3", "ref-3", json!(3600), json!(86400)))
        .mount(&server)
        .await;
    refresh_grant(
        "ref-1",
        ResponseTemplate::new(400).set_body_json(
            json!({"error": "invalid_grant", "error_description": "refresh token expired"}),
        ),
    )
    .expect(1)
    .mount(&server)
    .await;
    connection_mock("acc-1", ResponseTemplate::new(401))
        .mount(&server)
        .await;
    connection_mock("acc-3", ok(connection_body()))
        .expect(1)
        .mount(&server)
        .await;
    client(&server)
        .connection(conn_id())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        grants(&server).await,
        ["client_credentials", "refresh_token", "client_credentials"]
    );
}

#[tokio::test]
async fn an_expired_refresh_token_is_not_used() {
    let server = MockServer::start().await;
    cc_grant(token("acc-1", "ref-1", json!(0), json!(0)))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    cc_grant(token("acc-2", "ref-2", json!(3600), json!(86400)))
        .mount(&server)
        .await;
    connection_mock("acc-1", ok(connection_body()))
        .mount(&server)
        .await;
    connection_mock("acc-2", ok(connection_body()))
        .expect(1)
        .mount(&server)
        .await;
    let client = client(&server);
    client.connection(conn_id()).await.unwrap();
    client.connection(conn_id()).await.unwrap();
    assert_eq!(
        grants(&server).await,
        ["client_credentials", "client_credentials"]
    );
}

#[tokio::test]
async fn a_token_refused_after_renewal_and_bad_credentials_are_permission_errors() {
    let server = MockServer::start().await;
    mount_grant(&server).await;
    refresh_grant(
        "ref-1",
        ok(token("acc-2", "ref-2", json!(3600), json!(86400))),
    )
    .mount(&server)
    .await;
    Mock::given(path(format!("/connections/{CONN}")))
        .respond_with(ResponseTemplate::new(401))
        .mount(&server)
        .await;
    let error = client(&server).connection(conn_id()).await.unwrap_err();
    assert!(
        matches!(error, CoreError::PermissionDenied { .. }),
        "{error:?}"
    );
    // exactly one renewal, one repeat
    assert_eq!(
        count(&server, "GET", &format!("/connections/{CONN}")).await,
        2
    );

    let server = MockServer::start().await;
    Mock::given(path("/oauth/token"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"error": "invalid_client"})))
        .mount(&server)
        .await;
    let error = client(&server).connection(conn_id()).await.unwrap_err();
    assert!(
        matches!(error, CoreError::PermissionDenied { .. }),
        "{error:?}"
    );
    // a refused grant is not retried
    assert_eq!(grants(&server).await.len(), 1);
}

// ------------------------------------------------------------------ shapes: feeds

fn record(revision: Value, payload_type: &str, payload: Value) -> Value {
    json!({"metadata": {"revision": revision, "timestamp": "2024-05-01T10:00:00Z",
                        "tenant": "x"},
           "payload_type": payload_type, "payload": payload, "unrelated": [1, 2]})
}

#[tokio::test]
async fn the_event_feed_decodes_every_documented_kind() {
    let server = MockServer::start().await;
    mount_grant(&server).await;
    Mock::given(method("GET"))
        .and(path("/v2/app/events"))
        .and(header("authorization", "Bearer acc-1"))
        .and(query_param("from_revision", "0"))
        .and(query_param("max_results", "10"))
        .respond_with(ok(json!({"records": [
            record(json!(1), "PerformDelivery",
                   json!({"subscriptionId": SUB, "transactionBatchId": BATCH,
                          "profileId": PROFILE,
                          "quickSettings": {"audienceId": "120210", "historicalDataEnabled": "false"},
                          "somethingNew": true})),
            record(json!("2"), "snapshot-appended",
                   json!({"connection_id": CONN, "snapshot_id": 9876543210_i64})),
            record(json!(3), "snapshot-appended",
                   json!({"connection_id": CONN, "snapshot_id": "a1b2-c3"})),
            record(json!(4), "connection-created", json!({"connection_id": CONN})),
            record(json!(5), "dataset-deleted", json!({"dataset_id": 1})),
        ], "next_revision": 6, "total": 5})))
        .expect(1)
        .mount(&server)
        .await;
    let page = client(&server).events_after(None, 10).await.unwrap();
    let revisions: Vec<u64> = page.events.iter().map(|e| e.revision.0).collect();
    assert_eq!(revisions, [1, 2, 3, 4, 5]);
    assert_eq!(page.next_revision, Some(Revision(6)));
    assert_eq!(page.events[0].timestamp, datetime!(2024-05-01 10:00 UTC));
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
            assert_eq!(
                quick_settings.audience_id.as_ref().unwrap().as_str(),
                "120210"
            );
            assert!(!quick_settings.historical_data_enabled);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(
        page.events[1].event,
        DeliveryEvent::SnapshotAppended {
            connection_id: conn_id(),
            snapshot_id: SnapshotId::new("9876543210").unwrap()
        }
    );
    assert_eq!(
        page.events[2].event,
        DeliveryEvent::SnapshotAppended {
            connection_id: conn_id(),
            snapshot_id: SnapshotId::new("a1b2-c3").unwrap()
        }
    );
    assert_eq!(
        page.events[3].event,
        DeliveryEvent::ConnectionCreated {
            connection_id: conn_id()
        }
    );
    assert_eq!(
        page.events[4].event,
        DeliveryEvent::Unknown {
            payload_type: "dataset-deleted".into()
        }
    );
}

#[tokio::test]
async fn the_legacy_feed_decodes_camel_case_commands_and_empty_pages() {
    let server = MockServer::start().await;
    mount_grant(&server).await;
    Mock::given(method("GET"))
        .and(path("/v1/app/commands/delivery"))
        .and(query_param("from_revision", "0"))
        .respond_with(ok(json!({"records": [
            record(json!(11), "PerformDelivery",
                   json!({"subscriptionId": SUB, "transactionBatchId": BATCH,
                          "profileId": PROFILE, "quickSettings": null})),
        ], "next_revision": 12})))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/app/commands/delivery"))
        .and(query_param("from_revision", "11"))
        .respond_with(ok(json!({"records": [], "next_revision": 12})))
        .mount(&server)
        .await;
    let client =
        NarrativeClient::new(config(&server).with_feed_kind(FeedKind::LegacyCommands)).unwrap();
    let page = client.events_after(None, 5).await.unwrap();
    assert_eq!(page.events.len(), 1);
    assert_eq!(page.events[0].revision, Revision(11));
    assert!(matches!(
        page.events[0].event,
        DeliveryEvent::SubscriptionDelivery { .. }
    ));
    let empty = client.events_after(Some(Revision(11)), 5).await.unwrap();
    assert!(empty.events.is_empty());
    assert_eq!(empty.next_revision, Some(Revision(12)));
    assert_eq!(count(&server, "GET", "/v2/app/events").await, 0);
}

/// A feed of revisions 1..=last that reads `from_revision` inclusively or exclusively and
/// answers `next_revision` as the next one to ask for.
fn feed(last: u64, inclusive: bool) -> impl Fn(&Request) -> ResponseTemplate + Send + Sync {
    move |request: &Request| {
        let param = |name: &str| {
            request
                .url
                .query_pairs()
                .find(|(k, _)| k == name)
                .and_then(|(_, v)| v.parse::<u64>().ok())
        };
        let from = param("from_revision").unwrap_or(0);
        let max = param("max_results").unwrap_or(100);
        let first = if inclusive { from } else { from + 1 };
        let records: Vec<Value> = (first.max(1)..=last)
            .take(usize::try_from(max).unwrap())
            .map(|r| {
                record(
                    json!(r),
                    "connection-created",
                    json!({"connection_id": CONN}),
                )
            })
            .collect();
        let next = first.max(1) + records.len() as u64;
        ok(json!({"records": records,
                  "next_revision": if inclusive { next } else { next - 1 }}))
    }
}

#[tokio::test]
async fn paging_never_skips_or_repeats_an_event_whatever_from_revision_means() {
    for inclusive in [true, false] {
        for max in [1_u32, 2, 3] {
            let server = MockServer::start().await;
            mount_grant(&server).await;
            Mock::given(path("/v2/app/events"))
                .respond_with(feed(7, inclusive))
                .mount(&server)
                .await;
            let client = client(&server);
            let mut cursor = None;
            let mut seen = Vec::new();
            for _ in 0..20 {
                let page = client.events_after(cursor, max).await.unwrap();
                assert!(page.events.len() <= max as usize);
                let Some(last) = page.events.last() else {
                    break;
                };
                cursor = Some(last.revision);
                seen.extend(page.events.iter().map(|e| e.revision.0));
            }
            assert_eq!(
                seen,
                (1..=7).collect::<Vec<_>>(),
                "inclusive {inclusive}, max {max}"
            );
        }
    }
}

// ------------------------------------------------------------------ shapes: files

#[tokio::test]
async fn legacy_files_are_listed_and_downloaded_from_the_presigned_url() {
    let server = MockServer::start().await;
    mount_grant(&server).await;
    Mock::given(method("GET"))
        .and(path("/v1/app/commands/delivery/7/files"))
        .and(header("authorization", "Bearer acc-1"))
        .respond_with(ok(json!([
            {"company_id": 5, "file": "part 1.jsonl", "size": 12, "subscription_id": SUB,
             "transaction_batch_id": BATCH, "timestamp": "2024-05-01T10:00:00Z", "new": 1},
            {"company_id": "5", "file": "part-2.jsonl", "size": 3, "subscription_id": SUB,
             "transaction_batch_id": BATCH, "timestamp": "2024-05-01T10:00:00Z"},
        ])))
        .expect(2)
        .mount(&server)
        .await;
    let presigned = format!(
        "{}/bucket/part%201.jsonl?X-Amz-Expires=3600&X-Amz-Signature=sig-abc",
        server.uri()
    );
    Mock::given(method("POST"))
        .and(path("/v1/app/commands/delivery/7/download/part%201.jsonl"))
        .and(header("authorization", "Bearer acc-1"))
        .respond_with(ok(json!(presigned)))
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/bucket/part%201.jsonl"))
        .and(query_param("X-Amz-Signature", "sig-abc"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(&b"{\"a\":1}\n{}\n{}\n"[..]))
        .expect(2)
        .mount(&server)
        .await;
    let client = client(&server);
    let listed = client.legacy_delivery_files(Revision(7)).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].file.as_str(), "part 1.jsonl");
    assert_eq!(listed[0].size, Some(12));
    assert_eq!(listed[1].company_id, Some(CompanyId(5)));
    let names = client.legacy_files(Revision(7)).await.unwrap();
    assert_eq!(
        names,
        [
            FileName::new("part 1.jsonl").unwrap(),
            FileName::new("part-2.jsonl").unwrap()
        ]
    );

    let file = FileRef::Legacy {
        revision: Revision(7),
        file: FileName::new("part 1.jsonl").unwrap(),
    };
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out.jsonl");
    assert_eq!(client.download_to(&file, &dest).await.unwrap(), 14);
    assert_eq!(std::fs::read(&dest).unwrap(), b"{\"a\":1}\n{}\n{}\n");
    let download = client.open(&file).await.unwrap();
    assert_eq!(download.content_length, Some(14));
    let body: Vec<u8> = download.body.map(|c| c.unwrap().to_vec()).concat().await;
    assert_eq!(body.len(), 14);
    // the presigned GET carries no marketplace token
    for r in requests(&server).await {
        if r.url.path().starts_with("/bucket/") {
            assert!(!r.headers.contains_key("authorization"));
        }
    }
}

#[tokio::test]
async fn snapshot_files_are_listed_and_downloaded_via_download_url() {
    let server = MockServer::start().await;
    mount_grant(&server).await;
    Mock::given(method("GET"))
        .and(path("/datasets/42/snapshots/s-1/files-added"))
        .respond_with(ok(json!([{"name": "part-0.parquet", "size": 4},
                                 {"name": "part-1.parquet"}])))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(
            "/datasets/42/snapshots/s-1/files-added/part-0.parquet/download",
        ))
        .respond_with(ok(
            json!({"download_url": format!("{}/blob/p0?sig=x", server.uri()), "expires_in": 3600}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/blob/p0"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(&b"PAR1"[..]))
        .expect(2)
        .mount(&server)
        .await;
    // a link answered as plain text is accepted too
    Mock::given(method("POST"))
        .and(path(
            "/datasets/42/snapshots/s-1/files-added/part-1.parquet/download",
        ))
        .respond_with(
            ResponseTemplate::new(200).set_body_string(format!("{}/blob/p0?sig=y\n", server.uri())),
        )
        .expect(1)
        .mount(&server)
        .await;
    let client = client(&server);
    let plain = FileRef::Snapshot {
        dataset_id: DatasetId(42),
        snapshot_id: SnapshotId::new("s-1").unwrap(),
        file: FileName::new("part-1.parquet").unwrap(),
    };
    assert_eq!(client.open(&plain).await.unwrap().content_length, Some(4));
    let files = client
        .snapshot_files(DatasetId(42), &SnapshotId::new("s-1").unwrap())
        .await
        .unwrap();
    assert_eq!(
        files,
        [
            FileName::new("part-0.parquet").unwrap(),
            FileName::new("part-1.parquet").unwrap()
        ]
    );
    let file = FileRef::Snapshot {
        dataset_id: DatasetId(42),
        snapshot_id: SnapshotId::new("s-1").unwrap(),
        file: FileName::new("part-0.parquet").unwrap(),
    };
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("p0");
    assert_eq!(client.download_to(&file, &dest).await.unwrap(), 4);
    assert_eq!(std::fs::read(&dest).unwrap(), b"PAR1");
}

/// `(snapshot id, timestamp, files, downloadable)`
type Snap = (Value, &'static str, &'static [&'static str], bool);

/// find-files over `snapshots`: `per_page` snapshots a page from `from_snapshot_id` (inclusive)
/// plus `offset`; `next_snapshot` names the first snapshot of the next page when `cursor`.
fn find_files(
    snapshots: Vec<Snap>,
    cursor: bool,
) -> impl Fn(&Request) -> ResponseTemplate + Send + Sync {
    move |request: &Request| {
        let param = |name: &str| {
            request
                .url
                .query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        };
        let per_page: usize = param("per_page").unwrap().parse().unwrap();
        let offset: usize = param("offset").unwrap().parse().unwrap();
        let base = match param("from_snapshot_id") {
            Some(id) => snapshots
                .iter()
                .position(|s| match &s.0 {
                    Value::String(text) => *text == id,
                    other => id.parse::<Value>().is_ok_and(|v| v == *other),
                })
                .unwrap(),
            None => 0,
        };
        // the server's page is smaller than asked: at most 2 snapshots
        let size = per_page.min(2);
        let start = base + offset;
        let page: Vec<Value> = snapshots
            .iter()
            .skip(start)
            .take(size)
            .map(|(id, ts, files, downloadable)| {
                json!({"snapshot_id": id, "timestamp": ts, "is_downloadable": downloadable,
                       "files": files.iter().map(|f| json!({"path": f, "size": 10})).collect::<Vec<_>>()})
            })
            .collect();
        let next = snapshots.get(start + size);
        ok(
            json!({"files_per_snapshot": page, "has_next": next.is_some(),
                  "next_snapshot": if cursor { next.map(|n| n.0.clone()) } else { None }}),
        )
    }
}

#[tokio::test]
async fn backfill_pages_through_find_files_and_keeps_snapshots_strictly_before_the_event() {
    let snapshots: Vec<Snap> = vec![
        (
            json!(101),
            "2024-04-01T00:00:00Z",
            &["a/1.parquet", "a/2.parquet"],
            true,
        ),
        (
            json!("s-2"),
            "2024-04-02T00:00:00Z",
            &["b/1.parquet"],
            false,
        ),
        (json!("s-3"), "2024-04-03T00:00:00Z", &["c/1.parquet"], true),
        (json!("s-4"), "2024-04-04T00:00:00Z", &[], true),
        // exactly at the event time: excluded
        (json!("s-5"), "2024-05-01T10:00:00Z", &["e/1.parquet"], true),
        (json!("s-6"), "2024-06-01T00:00:00Z", &["f/1.parquet"], true),
    ];
    let want: Vec<(SnapshotId, FileName)> = [
        ("101", "a/1.parquet"),
        ("101", "a/2.parquet"),
        ("s-3", "c/1.parquet"),
    ]
    .iter()
    .map(|(s, f)| (SnapshotId::new(*s).unwrap(), FileName::new(*f).unwrap()))
    .collect();
    // the server shows a smaller page than asked, so paging must follow its cursor
    let server = MockServer::start().await;
    mount_grant(&server).await;
    Mock::given(method("GET"))
        .and(path("/datasets/42/find-files"))
        .respond_with(find_files(snapshots.clone(), true))
        .mount(&server)
        .await;
    let found = client(&server)
        .files_before(DatasetId(42), datetime!(2024-05-01 10:00 UTC))
        .await
        .unwrap();
    assert_eq!(found, want);
    let pages: Vec<Request> = requests(&server)
        .await
        .into_iter()
        .filter(|r| r.url.path() == "/datasets/42/find-files")
        .collect();
    assert_eq!(pages.len(), 3);
    let first: Vec<(String, String)> = pages[0]
        .url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    assert!(first.iter().any(|(k, _)| k == "per_page"), "{first:?}");
    assert!(
        first.iter().any(|(k, v)| k == "offset" && v == "0"),
        "{first:?}"
    );
    assert!(
        pages[1]
            .url
            .query_pairs()
            .any(|(k, v)| k == "from_snapshot_id" && v == "s-3"),
        "{:?}",
        pages[1].url
    );
}

#[tokio::test]
async fn find_files_without_a_cursor_and_with_an_endless_empty_page_terminates() {
    // one page holding everything, no next_snapshot
    let server = MockServer::start().await;
    mount_grant(&server).await;
    Mock::given(method("GET"))
        .and(path("/datasets/42/find-files"))
        .and(query_param("offset", "0"))
        .respond_with(ok(json!({"files_per_snapshot": [
            {"snapshot_id": "s-1", "timestamp": "2024-04-01T00:00:00Z", "is_downloadable": true,
             "files": [{"path": "x.parquet", "size": 1}]}],
            "has_next": true})))
        .mount(&server)
        .await;
    // a broken server: every later page is empty and claims there is more
    Mock::given(method("GET"))
        .and(path("/datasets/42/find-files"))
        .respond_with(ok(json!({"files_per_snapshot": [], "has_next": true,
                                "next_snapshot": null})))
        .mount(&server)
        .await;
    let found = client(&server)
        .files_before(DatasetId(42), datetime!(2024-05-01 10:00 UTC))
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(count(&server, "GET", "/datasets/42/find-files").await, 2);
}

// ------------------------------------------------------------------ shapes: customer calls

fn profile_json(id: &str, status: &str) -> Value {
    json!({"id": id, "name": "Main", "description": null, "status": status,
           "company_id": 5, "created_at": "2024-01-01T00:00:00Z"})
}

#[tokio::test]
async fn customer_calls_use_the_customer_token_and_the_documented_paths() {
    let server = MockServer::start().await;
    let bearer = "Bearer cust-tok-1";
    let base = "/installations/inst-9/profiles";
    let mocks = [
        Mock::given(method("GET"))
            .and(path("/company-info/whoami"))
            .respond_with(ok(json!({"id": 77, "name": "Acme", "plan": {"x": 1}}))),
        Mock::given(method("GET"))
            .and(path("/installations/whoami"))
            .respond_with(ok(json!({"id": 1234, "app_id": 9}))),
        Mock::given(method("GET")).and(path(base)).respond_with(ok(
            json!({"records": [profile_json(PROFILE, "enabled"),
                                                 profile_json(SUB, "ARCHIVED")],
                                     "total": 2}),
        )),
        Mock::given(method("GET"))
            .and(path(format!("{base}/{PROFILE}")))
            .respond_with(ok(profile_json(PROFILE, "disabled"))),
        Mock::given(method("GET"))
            .and(path(format!("{base}/{SUB}")))
            .respond_with(ResponseTemplate::new(404)),
        Mock::given(method("POST"))
            .and(path(base))
            .and(body_json(json!({"name": "New", "description": "d"})))
            .respond_with(
                ResponseTemplate::new(201).set_body_json(profile_json(PROFILE, "disabled")),
            ),
        Mock::given(method("PUT"))
            .and(path(format!("{base}/{PROFILE}")))
            .and(body_json(json!({"name": "Renamed", "description": null})))
            .respond_with(ok(profile_json(PROFILE, "disabled"))),
        Mock::given(method("POST"))
            .and(path(format!("{base}/{PROFILE}/enable")))
            .respond_with(ok(profile_json(PROFILE, "enabled"))),
        Mock::given(method("POST"))
            .and(path(format!("{base}/{PROFILE}/disable")))
            .respond_with(ok(profile_json(PROFILE, "disabled"))),
        Mock::given(method("POST"))
            .and(path(format!("{base}/{PROFILE}/archive")))
            .respond_with(ok(profile_json(PROFILE, "archived"))),
        Mock::given(method("POST"))
            .and(path(format!("{base}/{SUB}/archive")))
            .respond_with(ResponseTemplate::new(404)),
    ];
    for mock in mocks {
        mock.mount(&server).await;
    }
    let profiles = customer(&server);
    let token = SecretString::from("cust-tok-1");
    let installation = InstallationId("inst-9".into());
    assert_eq!(profiles.company(&token).await.unwrap(), CompanyId(77));
    assert_eq!(profiles.installation(&token).await.unwrap().0, "1234");
    let listed = profiles.list_profiles(&token, &installation).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].status, ProfileStatus::Enabled);
    assert_eq!(listed[1].status, ProfileStatus::Archived);
    let one = profiles
        .get_profile(&token, &installation, profile_id())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(one.status, ProfileStatus::Disabled);
    assert_eq!(one.description, None);
    let other: ProfileId = SUB.parse().unwrap();
    assert!(
        profiles
            .get_profile(&token, &installation, other)
            .await
            .unwrap()
            .is_none()
    );
    let created = profiles
        .create_profile(&token, &installation, "New", Some("d".into()))
        .await
        .unwrap();
    assert_eq!(created.status, ProfileStatus::Disabled);
    assert!(
        profiles
            .update_profile(&token, &installation, profile_id(), "Renamed", None)
            .await
            .unwrap()
            .is_some()
    );
    for (transition, status) in [
        (ProfileTransition::Enable, ProfileStatus::Enabled),
        (ProfileTransition::Disable, ProfileStatus::Disabled),
        (ProfileTransition::Archive, ProfileStatus::Archived),
    ] {
        let profile = profiles
            .transition_profile(&token, &installation, profile_id(), transition)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(profile.status, status);
    }
    assert!(
        profiles
            .transition_profile(&token, &installation, other, ProfileTransition::Archive)
            .await
            .unwrap()
            .is_none()
    );
    let all = requests(&server).await;
    assert_eq!(all.len(), 11);
    for r in &all {
        assert_eq!(
            r.headers.get("authorization").unwrap().to_str().unwrap(),
            bearer
        );
    }
}

#[tokio::test]
async fn installation_ids_may_be_uuids_and_company_ids_strings() {
    let server = MockServer::start().await;
    Mock::given(path("/installations/whoami"))
        .respond_with(ok(json!({"id": "0d5a3f7e-0000-4000-8000-000000000001"})))
        .mount(&server)
        .await;
    Mock::given(path("/company-info/whoami"))
        .respond_with(ok(json!({"id": "77"})))
        .mount(&server)
        .await;
    let profiles = customer(&server);
    let token = SecretString::from("cust-tok-1");
    assert_eq!(
        profiles.installation(&token).await.unwrap().0,
        "0d5a3f7e-0000-4000-8000-000000000001"
    );
    assert_eq!(profiles.company(&token).await.unwrap(), CompanyId(77));
}

// ------------------------------------------------------------------ status events

fn report(outcome: Result<u64, String>) -> DeliveryReport {
    DeliveryReport {
        idempotency_key: "cmd-7:file-1:ok".into(),
        company_id: Some(CompanyId(5)),
        profile_id: profile_id(),
        connection_id: Some(conn_id()),
        dataset_id: Some(DatasetId(42)),
        at: datetime!(2024-05-01 10:00 UTC),
        outcome,
    }
}

#[tokio::test]
async fn status_events_are_camel_case_with_the_app_token() {
    let server = MockServer::start().await;
    mount_grant(&server).await;
    Mock::given(method("POST"))
        .and(path("/apps/events"))
        .and(header("authorization", "Bearer acc-1"))
        .respond_with(ok(
            json!({"enqueued": [{"idempotencyKey": "cmd-7:file-1:ok"}],
                                "rejected": []}),
        ))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/apps/events"))
        .respond_with(ok(json!({"enqueued": [],
            "rejected": [{"error": "duplicate", "message": "already seen"}]})))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/apps/events"))
        .respond_with(ResponseTemplate::new(202))
        .mount(&server)
        .await;
    let client = client(&server);
    client.report(&report(Ok(1500))).await.unwrap();
    let error = client
        .report(&report(Err("audience flagged".into())))
        .await
        .unwrap_err();
    assert!(matches!(error, CoreError::Rejected { .. }), "{error:?}");
    client.report(&report(Ok(1))).await.unwrap();

    let sent: Vec<Value> = requests(&server)
        .await
        .iter()
        .filter(|r| r.url.path() == "/apps/events")
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    assert_eq!(sent.len(), 3);
    let event = &sent[0]["events"][0];
    assert_eq!(
        event["context"],
        json!({"companyId": 5, "connectionId": CONN, "datasetId": 42, "profileId": PROFILE})
    );
    assert_eq!(
        event["eventType"],
        json!({"value": "audience.delivery.completed"})
    );
    assert_eq!(event["idempotencyKey"], json!({"value": "cmd-7:file-1:ok"}));
    assert_eq!(event["eventTimestamp"], "2024-05-01T10:00:00Z");
    assert!(event["payload"]["value"].is_object());
    assert_eq!(
        sent[1]["events"][0]["eventType"]["value"],
        "audience.delivery.failed"
    );
}

// ------------------------------------------------------------------ injected failures

/// Mounts `ok` behind a single 503 for `verb path`.
async fn flaky(server: &MockServer, verb: &str, at: &str, ok: ResponseTemplate) {
    Mock::given(method(verb))
        .and(path(at))
        .respond_with(ResponseTemplate::new(503).set_body_json(json!({"error": "unavailable"})))
        .up_to_n_times(1)
        .mount(server)
        .await;
    Mock::given(method(verb))
        .and(path(at))
        .respond_with(ok)
        .mount(server)
        .await;
}

#[tokio::test]
async fn every_idempotent_call_survives_one_server_error() {
    let server = MockServer::start().await;
    let uri = server.uri();
    flaky(
        &server,
        "POST",
        "/oauth/token",
        ok(token("acc-1", "ref-1", json!(3600), json!(86400))),
    )
    .await;
    let page = json!({"records": [record(json!(1), "connection-created",
                                            json!({"connection_id": CONN}))],
                      "next_revision": 2});
    flaky(&server, "GET", "/v2/app/events", ok(page.clone())).await;
    flaky(&server, "GET", "/v1/app/commands/delivery", ok(page)).await;
    flaky(
        &server,
        "GET",
        &format!("/connections/{CONN}"),
        ok(connection_body()),
    )
    .await;
    flaky(
        &server,
        "GET",
        "/v1/app/commands/delivery/7/files",
        ok(
            json!([{"company_id": 5, "file": "a.jsonl", "size": 3, "subscription_id": SUB,
                   "transaction_batch_id": BATCH, "timestamp": "2024-05-01T10:00:00Z"}]),
        ),
    )
    .await;
    flaky(
        &server,
        "POST",
        "/v1/app/commands/delivery/7/download/a.jsonl",
        ok(json!(format!("{uri}/presigned/a.jsonl?sig=1"))),
    )
    .await;
    flaky(
        &server,
        "GET",
        "/presigned/a.jsonl",
        ResponseTemplate::new(200).set_body_bytes(&b"{}\n"[..]),
    )
    .await;
    flaky(
        &server,
        "GET",
        "/datasets/42/snapshots/s-1/files-added",
        ok(json!([{"name": "p.parquet"}])),
    )
    .await;
    flaky(
        &server,
        "POST",
        "/datasets/42/snapshots/s-1/files-added/p.parquet/download",
        ok(json!({"download_url": format!("{uri}/presigned/p.parquet?sig=2")})),
    )
    .await;
    flaky(
        &server,
        "GET",
        "/presigned/p.parquet",
        ResponseTemplate::new(200).set_body_bytes(&b"PAR1"[..]),
    )
    .await;
    flaky(
        &server,
        "GET",
        "/datasets/42/find-files",
        ok(json!({"files_per_snapshot": [], "has_next": false})),
    )
    .await;
    flaky(
        &server,
        "POST",
        "/apps/events",
        ok(json!({"enqueued": [], "rejected": []})),
    )
    .await;
    flaky(&server, "GET", "/company-info/whoami", ok(json!({"id": 5}))).await;
    flaky(
        &server,
        "GET",
        "/installations/whoami",
        ok(json!({"id": 6})),
    )
    .await;
    let base = "/installations/6/profiles";
    flaky(&server, "GET", base, ok(json!({"records": []}))).await;
    let one = format!("{base}/{PROFILE}");
    flaky(&server, "GET", &one, ok(profile_json(PROFILE, "enabled"))).await;
    flaky(&server, "PUT", &one, ok(profile_json(PROFILE, "enabled"))).await;
    // not idempotent: one 503 is the answer
    flaky(&server, "POST", base, ok(profile_json(PROFILE, "disabled"))).await;
    flaky(
        &server,
        "POST",
        &format!("{one}/archive"),
        ok(profile_json(PROFILE, "archived")),
    )
    .await;

    let client = client(&server);
    assert_eq!(client.events_after(None, 5).await.unwrap().events.len(), 1);
    let legacy =
        NarrativeClient::new(config(&server).with_feed_kind(FeedKind::LegacyCommands)).unwrap();
    assert_eq!(legacy.events_after(None, 5).await.unwrap().events.len(), 1);
    assert!(client.connection(conn_id()).await.unwrap().is_some());
    assert_eq!(client.legacy_files(Revision(7)).await.unwrap().len(), 1);
    let dir = tempfile::tempdir().unwrap();
    let legacy_file = FileRef::Legacy {
        revision: Revision(7),
        file: FileName::new("a.jsonl").unwrap(),
    };
    assert_eq!(
        client
            .download_to(&legacy_file, &dir.path().join("a"))
            .await
            .unwrap(),
        3
    );
    let snapshot = SnapshotId::new("s-1").unwrap();
    assert_eq!(
        client
            .snapshot_files(DatasetId(42), &snapshot)
            .await
            .unwrap()
            .len(),
        1
    );
    let snapshot_file = FileRef::Snapshot {
        dataset_id: DatasetId(42),
        snapshot_id: snapshot,
        file: FileName::new("p.parquet").unwrap(),
    };
    assert_eq!(
        client
            .download_to(&snapshot_file, &dir.path().join("p"))
            .await
            .unwrap(),
        4
    );
    assert!(
        client
            .files_before(DatasetId(42), datetime!(2024-05-01 10:00 UTC))
            .await
            .unwrap()
            .is_empty()
    );
    client.report(&report(Ok(3))).await.unwrap();

    let profiles = customer(&server);
    let token = SecretString::from("cust-tok-1");
    assert_eq!(profiles.company(&token).await.unwrap(), CompanyId(5));
    let installation = profiles.installation(&token).await.unwrap();
    assert!(
        profiles
            .list_profiles(&token, &installation)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        profiles
            .get_profile(&token, &installation, profile_id())
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        profiles
            .update_profile(&token, &installation, profile_id(), "n", None)
            .await
            .unwrap()
            .is_some()
    );
    let error = profiles
        .create_profile(&token, &installation, "n", None)
        .await
        .unwrap_err();
    assert!(error.is_retryable(), "{error:?}");
    let error = profiles
        .transition_profile(
            &token,
            &installation,
            profile_id(),
            ProfileTransition::Archive,
        )
        .await
        .unwrap_err();
    assert!(error.is_retryable(), "{error:?}");

    // one flaky grant for each of the two app clients
    assert_eq!(count(&server, "POST", "/oauth/token").await, 3);
    let twice = [
        ("GET", "/v2/app/events".to_owned()),
        ("GET", "/v1/app/commands/delivery".to_owned()),
        ("GET", format!("/connections/{CONN}")),
        ("GET", "/v1/app/commands/delivery/7/files".to_owned()),
        (
            "POST",
            "/v1/app/commands/delivery/7/download/a.jsonl".to_owned(),
        ),
        ("GET", "/presigned/a.jsonl".to_owned()),
        ("GET", "/datasets/42/snapshots/s-1/files-added".to_owned()),
        (
            "POST",
            "/datasets/42/snapshots/s-1/files-added/p.parquet/download".to_owned(),
        ),
        ("GET", "/presigned/p.parquet".to_owned()),
        ("GET", "/datasets/42/find-files".to_owned()),
        ("POST", "/apps/events".to_owned()),
        ("GET", "/company-info/whoami".to_owned()),
        ("GET", "/installations/whoami".to_owned()),
        ("GET", base.to_owned()),
        ("GET", one.clone()),
        ("PUT", one.clone()),
    ];
    for (verb, at) in &twice {
        assert_eq!(count(&server, verb, at).await, 2, "{verb} {at}");
    }
    assert_eq!(count(&server, "POST", base).await, 1);
    assert_eq!(count(&server, "POST", &format!("{one}/archive")).await, 1);
}

#[tokio::test]
async fn lasting_server_errors_are_transient_after_the_retries() {
    let server = MockServer::start().await;
    mount_grant(&server).await;
    Mock::given(path("/v2/app/events"))
        .respond_with(ResponseTemplate::new(502))
        .mount(&server)
        .await;
    Mock::given(path(format!("/connections/{CONN}")))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "0"))
        .mount(&server)
        .await;
    let client = client(&server);
    let error = client.events_after(None, 5).await.unwrap_err();
    assert!(error.is_retryable(), "{error:?}");
    assert_eq!(
        count(&server, "GET", "/v2/app/events").await,
        ATTEMPTS as usize
    );
    let error = client.connection(conn_id()).await.unwrap_err();
    assert!(error.is_retryable(), "{error:?}");
    assert_eq!(
        count(&server, "GET", &format!("/connections/{CONN}")).await,
        ATTEMPTS as usize
    );
}

#[tokio::test]
async fn client_errors_map_to_clear_classes() {
    let server = MockServer::start().await;
    mount_grant(&server).await;
    let uri = server.uri();
    let mocks = [
        Mock::given(path(format!("/connections/{CONN}"))).respond_with(ResponseTemplate::new(404)),
        Mock::given(path("/datasets/42/snapshots/old/files-added"))
            .respond_with(ResponseTemplate::new(403).set_body_json(json!({"error": "forbidden"}))),
        Mock::given(path(
            "/datasets/42/snapshots/s-1/files-added/gone.parquet/download",
        ))
        .respond_with(ResponseTemplate::new(451).set_body_json(
            json!({"error": "expired", "error_description": "the file is past retention"}),
        )),
        Mock::given(path("/v1/app/commands/delivery/7/download/missing.jsonl"))
            .respond_with(ResponseTemplate::new(404)),
        Mock::given(path("/v1/app/commands/delivery/7/download/stale.jsonl"))
            .respond_with(ok(json!(format!("{uri}/presigned/stale?sig=3")))),
        Mock::given(path("/presigned/stale")).respond_with(ResponseTemplate::new(403)),
        Mock::given(path("/v2/app/events"))
            .respond_with(ResponseTemplate::new(400).set_body_json(
                json!({"error": "bad_request", "error_description": "max_results"}),
            )),
        Mock::given(path("/company-info/whoami")).respond_with(ResponseTemplate::new(401)),
        Mock::given(path("/installations/whoami")).respond_with(ResponseTemplate::new(403)),
    ];
    for mock in mocks {
        mock.mount(&server).await;
    }
    let client = client(&server);
    assert!(client.connection(conn_id()).await.unwrap().is_none());

    let error = client
        .snapshot_files(DatasetId(42), &SnapshotId::new("old").unwrap())
        .await
        .unwrap_err();
    match &error {
        CoreError::Rejected { reason, .. } => assert!(reason.contains("30 days"), "{reason}"),
        other => panic!("unexpected {other:?}"),
    }
    let expired = FileRef::Snapshot {
        dataset_id: DatasetId(42),
        snapshot_id: SnapshotId::new("s-1").unwrap(),
        file: FileName::new("gone.parquet").unwrap(),
    };
    match client.open(&expired).await.unwrap_err() {
        CoreError::Rejected { reason, .. } => {
            assert!(reason.contains("expired"), "{reason}");
            assert!(reason.contains("past retention"), "{reason}");
        }
        other => panic!("unexpected {other:?}"),
    }
    let dir = tempfile::tempdir().unwrap();
    let missing = FileRef::Legacy {
        revision: Revision(7),
        file: FileName::new("missing.jsonl").unwrap(),
    };
    let error = client
        .download_to(&missing, &dir.path().join("m"))
        .await
        .unwrap_err();
    assert!(matches!(error, CoreError::NotFound { .. }), "{error:?}");
    let stale = FileRef::Legacy {
        revision: Revision(7),
        file: FileName::new("stale.jsonl").unwrap(),
    };
    let dest = dir.path().join("s");
    let error = client.download_to(&stale, &dest).await.unwrap_err();
    assert!(matches!(error, CoreError::Rejected { .. }), "{error:?}");
    assert!(!dest.exists());
    // a refused link is asked for once more, then the file is expired
    assert_eq!(
        count(
            &server,
            "POST",
            "/v1/app/commands/delivery/7/download/stale.jsonl"
        )
        .await,
        2
    );
    let error = client.events_after(None, 5).await.unwrap_err();
    assert!(matches!(error, CoreError::Rejected { .. }), "{error:?}");
    assert_eq!(count(&server, "GET", "/v2/app/events").await, 1);

    let profiles = customer(&server);
    let token = SecretString::from("cust-tok-1");
    let error = profiles.company(&token).await.unwrap_err();
    assert!(error.is_invalid_token(), "{error:?}");
    let error = profiles.installation(&token).await.unwrap_err();
    assert!(
        matches!(error, CoreError::PermissionDenied { .. }),
        "{error:?}"
    );
    // a refused customer token is never retried
    assert_eq!(count(&server, "GET", "/company-info/whoami").await, 1);
}

#[tokio::test]
async fn answers_slower_than_the_timeout_are_retried_then_transient() {
    let server = MockServer::start().await;
    mount_grant(&server).await;
    let slow = |body: Value| ok(body).set_delay(Duration::from_secs(8));
    connection_mock("acc-1", slow(connection_body()))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    connection_mock("acc-1", ok(connection_body()))
        .mount(&server)
        .await;
    Mock::given(path("/v2/app/events"))
        .respond_with(slow(json!({"records": []})))
        .mount(&server)
        .await;
    let client = NarrativeClient::new(slow_config(&server)).unwrap();
    assert!(client.connection(conn_id()).await.unwrap().is_some());
    // 2, or 3 should the fast answer itself take over a second on a starved machine
    let calls = count(&server, "GET", &format!("/connections/{CONN}")).await;
    assert!((2..=3).contains(&calls), "{calls}");
    let error = client.events_after(None, 5).await.unwrap_err();
    assert!(error.is_retryable(), "{error:?}");
    assert_eq!(
        count(&server, "GET", "/v2/app/events").await,
        ATTEMPTS as usize
    );
}

/// A raw HTTP server (wiremock always sends whole bodies): connection `n` gets
/// `responses[min(n, last)]`, then the socket is closed. Returns its URL and a connection count.
async fn raw_server(responses: Vec<Vec<u8>>) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = connections.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            let response = responses[n.min(responses.len() - 1)].clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0_u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = socket.write_all(&response).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    (format!("http://{address}"), connections)
}

fn http_response(announced: usize, body: &[u8]) -> Vec<u8> {
    let mut response = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: {announced}\r\nconnection: close\r\n\r\n"
    )
    .into_bytes();
    response.extend_from_slice(body);
    response
}

#[tokio::test]
async fn truncated_downloads_are_downloaded_again_or_fail_transiently() {
    let full = b"0123456789abcdefghij".to_vec();
    let (raw, connections) = raw_server(vec![
        http_response(full.len(), &full[..7]),
        http_response(full.len(), &full),
    ])
    .await;
    let server = MockServer::start().await;
    mount_grant(&server).await;
    Mock::given(path("/v1/app/commands/delivery/7/download/t.jsonl"))
        .respond_with(ok(json!(format!("{raw}/t.jsonl?X-Amz-Signature=s"))))
        .mount(&server)
        .await;
    let client = client(&server);
    let file = FileRef::Legacy {
        revision: Revision(7),
        file: FileName::new("t.jsonl").unwrap(),
    };
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("t");
    assert_eq!(client.download_to(&file, &dest).await.unwrap(), 20);
    assert_eq!(std::fs::read(&dest).unwrap(), full);
    assert_eq!(connections.load(Ordering::SeqCst), 2);
    // a fresh link for each attempt
    assert_eq!(
        count(
            &server,
            "POST",
            "/v1/app/commands/delivery/7/download/t.jsonl"
        )
        .await,
        2
    );

    // always truncated: a transient failure, no partial file left, bounded attempts
    let (raw, connections) = raw_server(vec![http_response(full.len(), &full[..7])]).await;
    let server = MockServer::start().await;
    mount_grant(&server).await;
    Mock::given(path("/v1/app/commands/delivery/7/download/t.jsonl"))
        .respond_with(ok(json!(format!("{raw}/t.jsonl?X-Amz-Signature=s"))))
        .mount(&server)
        .await;
    let client = self::client(&server);
    let error = client.download_to(&file, &dest).await.unwrap_err();
    assert!(error.is_retryable(), "{error:?}");
    assert!(!dest.exists());
    assert_eq!(connections.load(Ordering::SeqCst), ATTEMPTS as usize);

    // the streaming port reports the truncation at the end of the body
    let download = client.open(&file).await.unwrap();
    assert_eq!(download.content_length, Some(20));
    let chunks: Vec<_> = download.body.collect().await;
    let last = chunks.last().unwrap();
    assert!(matches!(last, Err(e) if e.is_retryable()), "{last:?}");
}

// ------------------------------------------------------------------ secrets

/// Display and Debug of an error and of every source under it.
fn render(error: &CoreError) -> String {
    let mut text = format!("{error} | {error:?}");
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(&format!(" | {cause} | {cause:?}"));
        source = cause.source();
    }
    text
}

#[tokio::test]
async fn secrets_and_presigned_urls_never_reach_logs_errors_or_debug() {
    let (logs, _guard) = capture_logs();

    const ACCESS_1: &str = "acc-SECRET-one";
    const ACCESS_2: &str = "acc-SECRET-two";
    const REFRESH_1: &str = "ref-SECRET-one";
    const REFRESH_2: &str = "ref-SECRET-two";
    const REFRESH_BAD: &str = "ref-SECRET-in-a-bad-answer";
    const CUSTOMER: &str = "cust-SECRET-token";
    const SIGNATURE: &str = "SIG-SECRET-0123456789";

    let server = MockServer::start().await;
    let uri = server.uri();
    cc_grant(token(ACCESS_1, REFRESH_1, json!(3600), json!(86400)))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    // the refresh fails; the next grant answers a body that does not decode but holds a token
    refresh_grant(REFRESH_1, ResponseTemplate::new(400).set_body_json(
        json!({"error": "invalid_grant", "error_description": format!("bad token {REFRESH_1}")}),
    ))
    .mount(&server)
    .await;
    cc_grant(token(ACCESS_2, REFRESH_2, json!(3600), json!(86400)))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    cc_grant(json!({"access_token": 12, "refresh_token": REFRESH_BAD}))
        .mount(&server)
        .await;
    connection_mock(ACCESS_1, ResponseTemplate::new(401))
        .mount(&server)
        .await;
    connection_mock(ACCESS_2, ok(connection_body()))
        .mount(&server)
        .await;
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let links = [
        (
            "e500.jsonl",
            format!("{uri}/presigned/e500?X-Amz-Signature={SIGNATURE}"),
        ),
        (
            "slow.jsonl",
            format!("{uri}/presigned/slow?X-Amz-Signature={SIGNATURE}"),
        ),
        (
            "e403.jsonl",
            format!("{uri}/presigned/e403?X-Amz-Signature={SIGNATURE}"),
        ),
        (
            "closed.jsonl",
            format!("http://{closed}/x?X-Amz-Signature={SIGNATURE}"),
        ),
        ("bad.jsonl", format!("::not a url {SIGNATURE}")),
    ];
    for (name, link) in &links {
        Mock::given(path(format!("/v1/app/commands/delivery/7/download/{name}")))
            .respond_with(ok(json!(link)))
            .mount(&server)
            .await;
    }
    Mock::given(path("/presigned/e500"))
        .respond_with(
            ResponseTemplate::new(500).set_body_string(format!("<Error>{SIGNATURE}</Error>")),
        )
        .mount(&server)
        .await;
    Mock::given(path("/presigned/slow"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(8)))
        .mount(&server)
        .await;
    Mock::given(path("/presigned/e403"))
        .respond_with(
            ResponseTemplate::new(403)
                .set_body_json(json!({"error": "SignatureDoesNotMatch", "message": "expired"})),
        )
        .mount(&server)
        .await;
    Mock::given(path("/company-info/whoami"))
        .respond_with(ResponseTemplate::new(401))
        .mount(&server)
        .await;
    Mock::given(path("/installations/whoami"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&server)
        .await;

    let mut config = slow_config(&server);
    config.http.retry.max_attempts = 2;
    let client = NarrativeClient::new(config.clone()).unwrap();
    let mut rendered = vec![format!("{config:?}"), format!("{client:?}")];
    // 401, failed refresh, new grant
    client.connection(conn_id()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (name, _) in &links {
        let file = FileRef::Legacy {
            revision: Revision(7),
            file: FileName::new(*name).unwrap(),
        };
        let error = client
            .download_to(&file, &dir.path().join(name))
            .await
            .unwrap_err();
        rendered.push(render(&error));
        if let Err(error) = client.open(&file).await {
            rendered.push(render(&error));
        }
    }
    // a fresh client whose grant answer does not decode (and holds a refresh token)
    let broken = NarrativeClient::new(config.clone()).unwrap();
    let error = broken.connection(conn_id()).await.unwrap_err();
    rendered.push(render(&error));

    let profiles = customer(&server);
    rendered.push(format!("{profiles:?}"));
    let token = SecretString::from(CUSTOMER);
    rendered.push(format!("{token:?}"));
    for error in [
        profiles.company(&token).await.unwrap_err(),
        profiles.installation(&token).await.unwrap_err(),
    ] {
        rendered.push(render(&error));
    }

    let logs = logs.text();
    assert!(logs.contains("retrying"), "{logs}");
    for secret in [
        CLIENT_SECRET,
        ACCESS_1,
        ACCESS_2,
        REFRESH_1,
        REFRESH_2,
        REFRESH_BAD,
        CUSTOMER,
        SIGNATURE,
        BASIC.trim_start_matches("Basic "),
    ] {
        assert!(!logs.contains(secret), "{secret} logged:\n{logs}");
        for text in &rendered {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }
    // the requests really carried them (the check above is not vacuous)
    let all = requests(&server).await;
    assert!(
        all.iter()
            .any(|r| r.url.query().is_some_and(|q| q.contains(SIGNATURE)))
    );
    assert!(all.iter().any(|r| {
        r.headers
            .get("authorization")
            .is_some_and(|v| v.to_str().unwrap().contains(CUSTOMER))
    }));
}
