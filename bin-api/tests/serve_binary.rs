//! `facebook-connector-api serve` as operators run it: configured only through the environment
//! names of operations.md, against the fakes over real HTTP and a real database. Checks the
//! one-line configuration errors (exit 2), the schema check, a profile created through the
//! binary, the probes, JSON logs without secrets, and SIGTERM's graceful exit.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use facebook_connector_core::domain::CompanyId;
use facebook_connector_store::testkit::TestDb;
use facebook_marketing::testkit::{APP_ID, APP_SECRET, FakeGraph, TokenSpec};
use narrative_client::testkit::FakeMarketplace;
use secrecy::ExposeSecret;
use serde_json::json;

const KEYS: &str = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fn bin() -> std::path::PathBuf {
    assert_cmd::cargo::cargo_bin("facebook-connector-api")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn command(envs: &[(&str, &str)], args: &[&str]) -> Command {
    let mut c = Command::new(bin());
    c.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in envs {
        c.env(k, v);
    }
    c
}

fn wait_exit(mut child: Child, limit: Duration) -> (std::process::ExitStatus, String) {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut stderr)
                .unwrap();
            return (status, stderr);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the api did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn missing_or_invalid_configuration_is_one_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("fc.db").display());
    for args in [&["serve"][..], &[][..]] {
        let out = command(&[("DB_URL", &url)], args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(
            stderr,
            "error: missing --token-keys (environment TOKEN_ENCRYPTION_KEYS): required by `serve`\n"
        );
    }
    let out = command(
        &[("DB_URL", &url), ("TOKEN_ENCRYPTION_KEYS", KEYS)],
        &["serve"],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("FACEBOOK_APP_ID"));
    let base = [
        ("DB_URL", url.as_str()),
        ("TOKEN_ENCRYPTION_KEYS", KEYS),
        ("FACEBOOK_APP_ID", APP_ID),
        ("FACEBOOK_APP_SECRET", APP_SECRET),
    ];
    let mut bad_cors = base.to_vec();
    bad_cors.push(("CORS_ALLOWED_ORIGINS", "not an origin"));
    let out = command(&bad_cors, &["serve"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("CORS_ALLOWED_ORIGINS"));
    let mut bad_keys = base.to_vec();
    bad_keys[1] = ("TOKEN_ENCRYPTION_KEYS", "k1:short");
    let out = command(&bad_keys, &["serve"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("short"), "{stderr}");
    // serve's flags without a command are serve's; serve's variables do not bother `migrate`
    let out = command(&[("DB_URL", &url)], &["--port", "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("TOKEN_ENCRYPTION_KEYS"));
    let other = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("other.db").display()
    );
    let out = command(
        &[("DB_URL", &other), ("API_PORT", "not-a-port")],
        &["migrate"],
    )
    .output()
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    // a database that needs migrating is refused with a message saying so
    let mut unmigrated = base.to_vec();
    unmigrated.push(("API_PORT", "0"));
    let out = command(&unmigrated, &["serve"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("migrate"),
        "{out:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_answers_logs_json_without_secrets_and_stops_on_sigterm() {
    let market = FakeMarketplace::start().await.unwrap();
    let graph = FakeGraph::start().await.unwrap();
    let db = TestDb::sqlite().await;
    market.add_customer("bin-customer-bearer-token", CompanyId(3), 30);
    let port = free_port().to_string();
    let child = command(
        &[
            ("DB_URL", db.url.as_str()),
            ("TOKEN_ENCRYPTION_KEYS", KEYS),
            ("NARRATIVE_API_BASE_URI", market.base_url().as_str()),
            ("FACEBOOK_APP_ID", APP_ID),
            ("FACEBOOK_APP_SECRET", APP_SECRET),
            ("FACEBOOK_GRAPH_URL", graph.base_url().as_str()),
            ("API_HOST", "127.0.0.1"),
            ("API_PORT", &port),
            ("LOG_FORMAT", "json"),
            ("RUST_LOG", "debug"),
        ],
        &["serve"],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let http = connector_resilience::client_builder()
        .unwrap()
        .build()
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = http.get(format!("{base}/healthz")).send().await
            && r.status() == 200
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "api never became healthy"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        http.get(format!("{base}/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let user = graph.add_user("Ann");
    let account = graph.add_ad_account(&user, Default::default());
    let token = graph.issue_token(&user, TokenSpec::default());
    let created = http
        .post(format!("{base}/profiles"))
        .bearer_auth("bin-customer-bearer-token")
        .json(&json!({"name": "bin", "ad_account_id": account.as_str(), "token": token.expose_secret()}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .contains(r#"facebook_connector_http_requests_total{route="/profiles",status="201"}"#),
        "{metrics}"
    );
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let (status, stderr) = wait_exit(child, Duration::from_secs(20));
    assert!(status.success(), "{status:?}: {stderr}");
    assert!(stderr.contains("api stopped"), "{stderr}");
    assert!(stderr.contains(r#""route":"/profiles""#), "{stderr}");
    for line in stderr.lines() {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|_| panic!("not a JSON line: {line}"));
        for secret in [
            "bin-customer-bearer-token",
            token.expose_secret(),
            APP_SECRET,
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",
        ] {
            assert!(!line.contains(secret), "secret logged: {line}");
        }
    }
}
