//! `upload` run as the real binary: `--dry-run` against `payload`, and real uploads into the
//! fake Graph API (started here, on a real socket), including Ctrl-C part-way.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command as StdCommand, Output, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use facebook_connector_core::domain::{AdAccountId, AudienceId};
use facebook_marketing::testkit::{APP_ID, APP_SECRET, Endpoint, FakeGraph, StoredBatch};
use secrecy::ExposeSecret;
use serde_json::Value;

fn worker() -> Command {
    let mut cmd = Command::cargo_bin("facebook-connector-worker").unwrap();
    cmd.env_remove("FACEBOOK_ACCESS_TOKEN")
        .env_remove("FACEBOOK_APP_ID")
        .env_remove("FACEBOOK_APP_SECRET")
        .env_remove("FACEBOOK_GRAPH_URL")
        .env_remove("BATCH_SIZE")
        .env_remove("UPLOADS_IN_FLIGHT");
    cmd
}

fn sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples/legacy-delivery.jsonl")
}

/// `records` legacy lines: mostly emails, every seventh unmatchable, every eleventh not JSON.
fn write_records(dir: &Path, records: usize) -> PathBuf {
    let mut text = String::new();
    for i in 0..records {
        if i % 11 == 10 {
            text.push_str("not json\n");
        } else if i % 7 == 6 {
            text.push_str("{\"data\": {\"hl7_gender\": {\"gender\": \"f\"}}}\n");
        } else {
            text.push_str(&format!(
                "{{\"data\": {{\"raw_email\": \"user{i}@example.com\", \"person_name\": \
                 {{\"given_name\": \"Ann{i}\", \"family_name\": \"Lee\"}}}}}}\n"
            ));
        }
    }
    let path = dir.join("members.jsonl");
    std::fs::write(&path, text).unwrap();
    path
}

/// The batches `payload` makes of `file`, as (schema, rows).
fn payload_batches(file: &Path, batch_size: u32) -> Vec<(Vec<String>, Vec<Vec<String>>)> {
    let output = worker()
        .args(["payload", "--format", "legacy", "--batch-size"])
        .arg(batch_size.to_string())
        .arg(file)
        .output()
        .unwrap();
    assert!(output.status.success());
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).unwrap();
            (
                serde_json::from_value(v["schema"].clone()).unwrap(),
                serde_json::from_value(v["data"].clone()).unwrap(),
            )
        })
        .collect()
}

/// The batches the fake stored for the audience, in `batch_seq` order.
fn stored_batches(fake: &FakeGraph, audience: &AudienceId) -> Vec<StoredBatch> {
    let mut batches = fake.audience(audience).unwrap().batches;
    batches.sort_by_key(|b| b.batch_seq);
    batches
}

/// `name: <number>` from the summary.
fn figure(summary: &str, name: &str) -> u64 {
    let line = summary
        .lines()
        .find(|l| l.starts_with(name))
        .unwrap_or_else(|| panic!("no {name:?} in {summary}"));
    line[name.len()..]
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// The upload session the summary names.
fn session_of(summary: &str) -> u64 {
    let at = summary.find("upload session ").unwrap() + "upload session ".len();
    summary[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

struct Upload {
    fake: FakeGraph,
    token: String,
    ad_account: AdAccountId,
    audience: AudienceId,
}

impl Upload {
    async fn start() -> Upload {
        let fake = FakeGraph::start().await.unwrap();
        let seed = fake.seed();
        let audience = fake.add_audience(&seed.ad_account, "buyers");
        Upload {
            token: seed.token.expose_secret().to_owned(),
            fake,
            ad_account: seed.ad_account,
            audience,
        }
    }

    /// The `upload` command against the fake, with everything it needs in the environment.
    fn command(&self, file: &Path, batch_size: u32) -> StdCommand {
        let mut cmd = StdCommand::new(assert_cmd::cargo::cargo_bin("facebook-connector-worker"));
        cmd.env("FACEBOOK_ACCESS_TOKEN", &self.token)
            .env("FACEBOOK_APP_ID", APP_ID)
            .env("FACEBOOK_APP_SECRET", APP_SECRET)
            .env("FACEBOOK_GRAPH_URL", self.fake.base_url().as_str())
            .env("LOG_FORMAT", "json")
            .env_remove("BATCH_SIZE")
            .env_remove("UPLOADS_IN_FLIGHT")
            .args(["upload", "--audience-id", self.audience.as_str()])
            .args(["--format", "legacy", "--batch-size"])
            .arg(batch_size.to_string())
            .arg(file);
        cmd
    }
}

/// Runs a command off the runtime (the fake serves on the test's runtime meanwhile).
async fn output_of(mut cmd: StdCommand) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

#[test]
fn dry_run_prints_exactly_what_payload_prints_and_needs_no_token() {
    let dir = tempfile::tempdir().unwrap();
    let members = write_records(dir.path(), 60);
    for (file, batch_size) in [(sample(), "3"), (members.clone(), "7"), (members, "10000")] {
        let payload = worker()
            .args(["payload", "--format", "legacy", "--batch-size", batch_size])
            .arg(&file)
            .output()
            .unwrap();
        let dry_run = worker()
            .args(["upload", "--audience-id", "23850000000000001", "--dry-run"])
            .args(["--format", "legacy", "--batch-size", batch_size])
            .arg(&file)
            .output()
            .unwrap();
        assert!(payload.status.success() && dry_run.status.success());
        assert!(!payload.stdout.is_empty());
        assert_eq!(
            dry_run.stdout,
            payload.stdout,
            "payloads of {}",
            file.display()
        );
        assert_eq!(
            dry_run.stderr,
            payload.stderr,
            "summary of {}",
            file.display()
        );
    }
}

/// `upload` of the sample with `env` set: its exit status and stderr.
fn upload_with(env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut cmd = worker();
    cmd.args([
        "upload",
        "--audience-id",
        "23850000000000001",
        "--format",
        "legacy",
    ])
    .arg(sample());
    for (name, value) in env {
        cmd.env(name, value);
    }
    let output = cmd.output().unwrap();
    (
        output.status.code(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

#[test]
fn a_missing_token_or_app_secret_is_a_one_line_error_with_status_2() {
    let (status, stderr) = upload_with(&[
        ("FACEBOOK_APP_ID", APP_ID),
        ("FACEBOOK_APP_SECRET", APP_SECRET),
    ]);
    assert_eq!(status, Some(2));
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("FACEBOOK_ACCESS_TOKEN"), "{stderr}");

    let (status, stderr) = upload_with(&[
        ("FACEBOOK_ACCESS_TOKEN", "some-user-token"),
        ("FACEBOOK_APP_ID", APP_ID),
    ]);
    assert_eq!(status, Some(2));
    assert_eq!(
        stderr.trim(),
        "error: missing --facebook-app-secret (environment FACEBOOK_APP_SECRET): required by `upload`"
    );
    assert!(!stderr.contains("some-user-token"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_delivers_every_member_in_one_session_with_facebook_s_receipts() {
    let up = Upload::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = write_records(dir.path(), 100);
    let output = output_of(up.command(&file, 7)).await;
    let stdout = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(
        !stdout.contains(&up.token) && !stderr.contains(&up.token),
        "the token is never printed"
    );

    // every batch `payload` makes arrived, once, in order, each with its own schema
    let expected = payload_batches(&file, 7);
    let stored = stored_batches(&up.fake, &up.audience);
    let got: Vec<(Vec<String>, Vec<Vec<String>>)> = stored
        .iter()
        .map(|b| (b.schema.clone(), b.rows.clone()))
        .collect();
    assert_eq!(got, expected);
    let session_id = session_of(&stdout);
    let seqs: Vec<Option<u32>> = stored.iter().map(|b| b.batch_seq).collect();
    let want: Vec<Option<u32>> = (1..=expected.len() as u32).map(Some).collect();
    assert_eq!(seqs, want);
    assert!(stored.iter().all(|b| b.session_id == Some(session_id)));
    let session = up.fake.session(&up.ad_account, session_id).unwrap();
    assert!(session.closed, "the last batch carried the last-batch flag");
    assert_eq!(
        session.upload_calls,
        expected.len(),
        "nothing was sent twice"
    );

    // the summary: the file's counters and Facebook's own figures
    let members: u64 = expected.iter().map(|(_, rows)| rows.len() as u64).sum();
    assert!(stdout.starts_with("delivered "), "{stdout}");
    assert_eq!(figure(&stdout, "records read:"), 100);
    assert!(
        stdout.contains("(9 rejected lines, 13 unmatchable)"),
        "{stdout}"
    );
    assert_eq!(figure(&stdout, "members sent:"), members);
    assert!(
        stdout.contains(&format!("in {} batches", expected.len())),
        "{stdout}"
    );
    assert_eq!(figure(&stdout, "facebook received:"), session.num_received);
    assert_eq!(
        figure(&stdout, "facebook invalid:"),
        session.num_invalid_entries
    );
    assert_eq!(session.num_received, members);
    assert!(
        stdout.contains("rejected lines: 9 (line 11, 22"),
        "{stdout}"
    );
    // not a terminal: plain progress lines, never a bar
    assert!(!stderr.contains('\u{1b}'), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_audience_the_token_cannot_see_is_refused_before_anything_is_sent() {
    let up = Upload::start().await;
    let missing = Upload {
        audience: AudienceId::parse("23899999999999999").unwrap(),
        fake: up.fake,
        token: up.token,
        ad_account: up.ad_account,
    };
    let output = output_of(missing.command(&sample(), 10)).await;
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("audience 23899999999999999 does not exist or this token cannot see it"),
        "{stderr}"
    );
    assert_eq!(missing.fake.calls(Endpoint::AddMembers), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_after_the_batches_in_flight_and_says_how_far_it_got() {
    let up = Upload::start().await;
    up.fake
        .set_latency_for(Endpoint::AddMembers, Duration::from_millis(400));
    let dir = tempfile::tempdir().unwrap();
    let file = write_records(dir.path(), 300);
    let expected = payload_batches(&file, 10);
    let mut cmd = up.command(&file, 10);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = cmd.spawn().unwrap();
    let pid = child.id();

    // interrupt once batch 1 was answered and the next ones are in flight
    let deadline = Instant::now() + Duration::from_secs(60);
    while up.fake.calls(Endpoint::AddMembers) < 3 {
        assert!(Instant::now() < deadline, "the upload never got going");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let killed = StdCommand::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let output = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(130), "{stdout}\n{stderr}");
    assert!(stdout.starts_with("stopped: "), "{stdout}");
    assert!(
        stderr.contains("stopping after the batches in flight"),
        "{stderr}"
    );

    // it stopped part-way, and every batch it sent was answered and counted: the in-flight
    // ones finished rather than being abandoned
    let session_id = session_of(&stdout);
    let session = up.fake.session(&up.ad_account, session_id).unwrap();
    let stored = stored_batches(&up.fake, &up.audience);
    assert!(!session.closed, "the last batch was never sent");
    assert!(
        stored.len() >= 2 && stored.len() < expected.len(),
        "{}",
        stored.len()
    );
    let seqs: Vec<u32> = stored.iter().map(|b| b.batch_seq.unwrap()).collect();
    assert_eq!(seqs, (1..=stored.len() as u32).collect::<Vec<_>>());
    assert_eq!(session.upload_calls, stored.len(), "no batch was abandoned");
    assert!(
        stdout.contains(&format!("stopped: {} batches", stored.len())),
        "{stdout}"
    );
    let rows: u64 = stored.iter().map(|b| b.rows.len() as u64).sum();
    assert_eq!(figure(&stdout, "members sent:"), rows);
    assert_eq!(figure(&stdout, "facebook received:"), session.num_received);
    // what arrived is the file's first batches, as `payload` makes them
    for (got, want) in stored.iter().zip(&expected) {
        assert_eq!((&got.schema, &got.rows), (&want.0, &want.1));
    }
}
