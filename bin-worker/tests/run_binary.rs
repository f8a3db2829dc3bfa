//! `facebook-connector-worker run` as operators run it: configured only through the
//! environment names of operations.md, against the fakes over real HTTP and a real database.
//! Checks delivery, the probes and metric names, JSON logs without secrets, SIGTERM's
//! graceful hand-back, the one-line configuration errors and the schema check.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{Db, World, legacy_lines};
use facebook_connector_core::domain::JobStatus;
use facebook_marketing::testkit::{APP_ID, APP_SECRET, Endpoint};
use narrative_client::testkit::LegacyDelivery;
use secrecy::ExposeSecret;

fn bin() -> std::path::PathBuf {
    assert_cmd::cargo::cargo_bin("facebook-connector-worker")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Running {
    child: Child,
    metrics: String,
}

const KEYS: &str = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fn start(world: &World, db_url: &str) -> Running {
    let port = free_port();
    let market = world.market.base_url();
    let child = Command::new(bin())
        .arg("run")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DB_URL", db_url)
        .env("TOKEN_ENCRYPTION_KEYS", KEYS)
        .env("NARRATIVE_API_BASE_URI", market.as_str())
        .env("NARRATIVE_API_CLIENT_ID", world.market.client_id())
        .env(
            "NARRATIVE_API_CLIENT_SECRET",
            world.market.client_secret().expose_secret(),
        )
        .env("FACEBOOK_APP_ID", APP_ID)
        .env("FACEBOOK_APP_SECRET", APP_SECRET)
        .env("FACEBOOK_GRAPH_URL", world.graph.base_url().as_str())
        .env("METRICS_ADDR", format!("127.0.0.1:{port}"))
        .env("POLL_INTERVAL", "100ms")
        .env("JOB_LEASE", "10s")
        .env("BATCH_SIZE", "100")
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    Running {
        child,
        metrics: format!("http://127.0.0.1:{port}"),
    }
}

async fn get(url: &str) -> Option<(u16, String)> {
    let client = connector_resilience::client_builder().ok()?.build().ok()?;
    let response = client.get(url).send().await.ok()?;
    let status = response.status().as_u16();
    Some((status, response.text().await.ok()?))
}

async fn wait_for<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn sigterm(child: &Child) {
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

/// Waits for the exit (at most `limit`) and returns (status, stderr).
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
            panic!("the worker did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_delivers_serves_probes_and_hands_back_on_sigterm() {
    let mut world = World::new(Db::Sqlite).await;
    // the worker encrypts nothing; the test stores the profile with the same keys
    world.keyring = std::sync::Arc::new(
        facebook_connector_store::TokenKeyring::parse(&secrecy::SecretString::from(
            KEYS.to_owned(),
        ))
        .unwrap(),
    );
    let profile = world.profile(1).await;
    world.market.add_legacy_delivery(
        LegacyDelivery::new(
            profile.id,
            uuid::Uuid::new_v4().into(),
            uuid::Uuid::new_v4().into(),
        )
        .file("small.jsonl", legacy_lines(1, 250)),
    );
    let url = world.db.url.clone();
    let running = start(&world, &url);

    wait_for("the first delivery", || async {
        world.jobs_in(JobStatus::Delivered).await == 1
    })
    .await;
    let (status, _) = get(&format!("{}/healthz", running.metrics)).await.unwrap();
    assert_eq!(status, 200);
    let (status, _) = get(&format!("{}/readyz", running.metrics)).await.unwrap();
    assert_eq!(status, 200);
    // the gauges are refreshed every poll interval
    let metrics_url = format!("{}/metrics", running.metrics);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let metrics = loop {
        let body = get(&metrics_url)
            .await
            .map(|(_, body)| body)
            .unwrap_or_default();
        if body.contains("facebook_connector_jobs{state=\"delivered\"} 1") {
            break body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no job gauges:\n{body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for name in [
        "facebook_connector_events_total{kind=\"subscription_delivery\"} 1",
        "facebook_connector_records_total{outcome=\"read\"} 250",
        "facebook_connector_records_total{outcome=\"sent\"}",
        "facebook_connector_batches_total{outcome=\"acknowledged\"} 3",
        "facebook_connector_upload_duration_seconds_bucket",
        "facebook_connector_feed_revision 1",
    ] {
        assert!(metrics.contains(name), "{name} missing from\n{metrics}");
    }

    // a big file with slow uploads: SIGTERM mid-file hands the job back with its checkpoint
    world
        .graph
        .set_latency_for(Endpoint::AddMembers, Duration::from_millis(300));
    world.market.add_legacy_delivery(
        LegacyDelivery::new(
            profile.id,
            uuid::Uuid::new_v4().into(),
            uuid::Uuid::new_v4().into(),
        )
        .file("big.jsonl", legacy_lines(2, 5_000)),
    );
    wait_for("the big file to be under way", || async {
        world.jobs().await.iter().any(|j| {
            j.status == JobStatus::Running
                && j.checkpoint.is_some_and(|c| c.batches_acknowledged >= 2)
        })
    })
    .await;
    let started = std::time::Instant::now();
    sigterm(&running.child);
    let (status, stderr) = wait_exit(running.child, Duration::from_secs(35));
    assert!(status.success(), "exit status {status:?}\n{stderr}");
    assert!(started.elapsed() < Duration::from_secs(30));
    let big = world
        .jobs()
        .await
        .into_iter()
        .find(|j| j.file.file().as_str() == "big.jsonl")
        .unwrap();
    assert_eq!(big.status, JobStatus::Queued, "handed back: {big:?}");
    assert_eq!(big.attempts, 0, "a shutdown uses no attempt");
    assert!(big.checkpoint.unwrap().batches_acknowledged >= 2);

    // JSON lines with the fields of operations.md, and no secret anywhere
    let mut lines = 0;
    for line in stderr.lines() {
        let value: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        for field in ["timestamp", "level", "message", "target"] {
            assert!(value.get(field).is_some(), "{field} missing: {line}");
        }
        lines += 1;
    }
    assert!(lines > 5);
    assert!(stderr.contains("\"job_id\""), "structured fields");
    for secret in [
        profile.token.expose_secret(),
        APP_SECRET,
        world.market.client_secret().expose_secret(),
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",
    ] {
        assert!(!stderr.contains(secret), "a secret is in the logs");
    }
    for token in world.market.issued_tokens() {
        assert!(
            !stderr.contains(&token),
            "a marketplace token is in the logs"
        );
    }

    // started again, the worker finishes the big file from its checkpoint
    world
        .graph
        .set_latency_for(Endpoint::AddMembers, Duration::ZERO);
    let again = start(&world, &url);
    wait_for("the big file", || async {
        world.jobs_in(JobStatus::Delivered).await == 2
    })
    .await;
    sigterm(&again.child);
    let (status, _) = wait_exit(again.child, Duration::from_secs(35));
    assert!(status.success());
}

#[test]
fn missing_configuration_is_one_line_naming_flag_and_variable() {
    let output = Command::new(bin())
        .arg("run")
        .env_clear()
        .env("DB_URL", "sqlite::memory:")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("--token-keys") && stderr.contains("TOKEN_ENCRYPTION_KEYS"),
        "{stderr}"
    );
    let output = Command::new(bin())
        .arg("run")
        .env_clear()
        .env("TOKEN_ENCRYPTION_KEYS", KEYS)
        .env("FACEBOOK_APP_ID", "1")
        .env("FACEBOOK_APP_SECRET", "s")
        .env("NARRATIVE_API_CLIENT_ID", "c")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("NARRATIVE_API_CLIENT_SECRET"), "{stderr}");
    // invalid keys are a configuration error too, without key material
    let output = Command::new(bin())
        .arg("run")
        .env_clear()
        .env("TOKEN_ENCRYPTION_KEYS", "k1:c2hvcnQ=")
        .env("FACEBOOK_APP_ID", "1")
        .env("FACEBOOK_APP_SECRET", "s")
        .env("NARRATIVE_API_CLIENT_ID", "c")
        .env("NARRATIVE_API_CLIENT_SECRET", "x")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("TOKEN_ENCRYPTION_KEYS") && !stderr.contains("c2hvcnQ"),
        "{stderr}"
    );
}

#[test]
fn a_database_that_needs_migrating_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("new.db").display());
    let output = Command::new(bin())
        .arg("run")
        .env_clear()
        .env("DB_URL", &url)
        .env("TOKEN_ENCRYPTION_KEYS", KEYS)
        .env("FACEBOOK_APP_ID", "1")
        .env("FACEBOOK_APP_SECRET", "s")
        .env("NARRATIVE_API_CLIENT_ID", "c")
        .env("NARRATIVE_API_CLIENT_SECRET", "x")
        .env("LOG_FORMAT", "json")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("run migrate"), "{stderr}");
}
