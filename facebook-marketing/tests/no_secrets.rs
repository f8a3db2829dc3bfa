//! No token or app secret appears in logs, errors (Display, Debug, source chain) or the Debug
//! output of the client and its configuration.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use facebook_connector_core::Error;
use facebook_connector_core::domain::AdAccountId;
use facebook_connector_core::member::MemberKey;
use facebook_connector_core::payload::Payload;
use facebook_connector_core::ports::{AudienceSink, FacebookAccounts, UploadSession, UploadTarget};
use facebook_marketing::testkit::{self, AdAccountSpec, Endpoint, FakeGraph, Fault, TokenSpec};
use facebook_marketing::{GraphClient, GraphConfig, RetryPolicy, appsecret_proof};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use url::Url;
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, ResponseTemplate};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn everything_about(err: &Error) -> String {
    let mut out = format!("{err}\n{err:?}\n");
    let mut cur: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(err);
    while let Some(e) = cur {
        out.push_str(&format!("{e}\n{e:?}\n"));
        cur = e.source();
    }
    out
}

#[tokio::test(flavor = "current_thread")]
async fn tokens_never_leak_into_logs_errors_or_debug_output() {
    let captured = Captured::default();
    let writer = captured.clone();
    // installed globally so that `log` records of the HTTP stack (reqwest, hyper, rustls) are
    // captured too, at every level (this file holds one test, so nothing else shares it)
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .try_init()
        .unwrap();

    let fake = FakeGraph::start().await.unwrap();
    // the fake's configuration, pointed at a wiremock server
    let config_at = |server: &MockServer| {
        fake.config()
            .with_base_url(Url::parse(&server.uri()).unwrap())
    };
    let user = fake.add_user("Secretive");
    let short = fake.issue_token(&user, TokenSpec::default());
    for i in 0..120 {
        fake.add_ad_account(
            &user,
            AdAccountSpec {
                name: format!("acc {i}"),
                ..AdAccountSpec::default()
            },
        );
    }
    let account = fake.add_ad_account(&user, AdAccountSpec::default());
    let client = fake.client();
    let mut secrets: Vec<String> = vec![
        short.expose_secret().to_owned(),
        testkit::APP_SECRET.to_owned(),
        format!("{}|{}", testkit::APP_ID, testkit::APP_SECRET),
    ];
    let mut errors: Vec<Error> = Vec::new();

    // the happy path logs, including paging links that carry the token
    client.token_info(&short).await.unwrap();
    let long = FacebookAccounts::exchange_long_lived(&client, &short)
        .await
        .unwrap();
    secrets.push(long.token.expose_secret().to_owned());
    secrets.push(appsecret_proof(
        &SecretString::from(testkit::APP_SECRET.to_owned()),
        &long.token,
    ));
    assert_eq!(
        FacebookAccounts::ad_accounts(&client, &long.token)
            .await
            .unwrap()
            .len(),
        121
    );
    let audience = AudienceSink::create_audience(&client, &long.token, &account, "a", "b")
        .await
        .unwrap();
    let payload = Payload::from_rows(vec![MemberKey::EMAIL], &[vec![format!("{:064x}", 1)]]);
    let session = UploadSession {
        session_id: 5,
        batch_seq: 1,
        last_batch: true,
        estimated_num_total: None,
    };
    // retries and give-ups log warnings
    fake.fail(Endpoint::AddMembers, 2, Fault::throttle(17, 0));
    fake.fail(Endpoint::AddMembers, 1, Fault::AcceptThenFail);
    let target = UploadTarget {
        ad_account: account.clone(),
        audience: audience.id.clone(),
    };
    AudienceSink::add_members(&client, &long.token, &target, &payload, &session)
        .await
        .unwrap();
    fake.fail_always(Endpoint::Me, Fault::graph(2, None));
    errors.push(
        FacebookAccounts::me(&client, &long.token)
            .await
            .unwrap_err(),
    );
    fake.clear_faults();

    // invalid tokens
    fake.invalidate_token(&long.token);
    errors.push(
        FacebookAccounts::me(&client, &long.token)
            .await
            .unwrap_err(),
    );
    errors.push(
        FacebookAccounts::exchange_long_lived(&client, &long.token)
            .await
            .unwrap_err(),
    );
    errors.push(
        FacebookAccounts::ad_account(&client, &long.token, &AdAccountId::parse("1").unwrap())
            .await
            .unwrap_err(),
    );

    // facebook quoting the token back in its message
    let server = MockServer::start().await;
    let echo = format!("Malformed access token {}", long.token.expose_secret());
    Mock::given(path("/v25.0/me"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "error": {"message": echo, "code": 190, "error_user_msg": echo, "fbtrace_id": "T"}
        })))
        .mount(&server)
        .await;
    let echo_client = GraphClient::new(config_at(&server)).unwrap();
    let err = FacebookAccounts::me(&echo_client, &long.token)
        .await
        .unwrap_err();
    assert!(everything_about(&err).contains("[redacted]"));
    errors.push(err);

    // connection refused (the URL of a GET carries the token)
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let cfg = fake
        .config()
        .with_base_url(Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap())
        .with_retry(RetryPolicy::none());
    let dead = GraphClient::new(cfg).unwrap();
    errors.push(FacebookAccounts::me(&dead, &short).await.unwrap_err());
    errors.push(dead.token_info(&short).await.unwrap_err());
    errors.push(
        FacebookAccounts::exchange_long_lived(&dead, &short)
            .await
            .unwrap_err(),
    );

    // a timeout
    fake.fail(
        Endpoint::DebugToken,
        1,
        Fault::Latency(Duration::from_secs(2)),
    );
    let cfg = fake
        .config()
        .with_timeout(Duration::from_millis(50))
        .with_retry(RetryPolicy::none());
    let impatient = GraphClient::new(cfg).unwrap();
    errors.push(impatient.token_info(&short).await.unwrap_err());

    // a malformed answer: the parser's message would quote the token
    let server = MockServer::start().await;
    Mock::given(path("/v25.0/me/adaccounts"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": long.token.expose_secret(),
            "paging": {"next": format!("{}/v25.0/me/adaccounts?access_token={}", server.uri(), long.token.expose_secret())}
        })))
        .mount(&server)
        .await;
    let cfg = config_at(&server).with_retry(RetryPolicy::none());
    let odd = GraphClient::new(cfg).unwrap();
    errors.push(
        FacebookAccounts::ad_accounts(&odd, &long.token)
            .await
            .unwrap_err(),
    );

    // a redirect whose target carries the token
    let server = MockServer::start().await;
    Mock::given(path("/v25.0/me"))
        .respond_with(
            ResponseTemplate::new(302).insert_header(
                "location",
                format!(
                    "http://127.0.0.1:9/v25.0/me?access_token={}",
                    long.token.expose_secret()
                )
                .as_str(),
            ),
        )
        .mount(&server)
        .await;
    let redirected = GraphClient::new(config_at(&server)).unwrap();
    errors.push(
        FacebookAccounts::me(&redirected, &long.token)
            .await
            .unwrap_err(),
    );

    // a paging link to another host (it carries the token)
    let fresh = fake.issue_token(&user, TokenSpec::default());
    secrets.push(fresh.expose_secret().to_owned());
    fake.set_foreign_paging(true);
    errors.push(
        FacebookAccounts::ad_accounts(&client, &fresh)
            .await
            .unwrap_err(),
    );
    fake.set_foreign_paging(false);

    let mut printed = String::new();
    for err in &errors {
        printed.push_str(&everything_about(err));
    }
    printed.push_str(&format!("{client:?}\n{:?}\n{long:?}\n", fake.config()));
    printed.push_str(&format!(
        "{:?}",
        GraphConfig::new("1", SecretString::from(testkit::APP_SECRET.to_owned()))
    ));
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("graph api"), "the capture works: {logs}");
    assert!(logs.contains("retrying"), "retries were logged: {logs}");
    assert!(
        logs.contains("reqwest::"),
        "the http stack's `log` records are captured too: {logs}"
    );
    for s in &secrets {
        assert!(
            !logs.contains(s.as_str()),
            "a secret leaked into the logs:\n{logs}"
        );
        assert!(
            !printed.contains(s.as_str()),
            "a secret leaked into errors or debug output:\n{printed}"
        );
    }
    assert!(errors[1].is_invalid_token());
}
