//! `deliveries` and `retry` run as the real binary against a store seeded through its ports,
//! on PostgreSQL (a fresh database per test) and SQLite.
#![allow(clippy::unwrap_used, clippy::expect_used)]

// the store's own contract-test helpers (fresh databases per backend, sample profiles and
// commands, `contract!`), not this crate's tests/common: its macro expects them as `common`
#[macro_use]
#[path = "../../facebook-connector-store/tests/common/mod.rs"]
mod common;

use std::process::{Command as StdCommand, Output};

use common::{TestDb, at, checkpoint, claim, command, counters, profile, record};
use facebook_connector_core::domain::{
    DatasetId, DeliveryCounters, DeliveryEvent, FileName, FileRef, JobId, JobStatus, NewCommand,
    NewJob, Revision, SettingsId, SnapshotId,
};
use serde_json::{Value, json};
use uuid::Uuid;

/// Runs the binary with `DB_URL` pointing at the test database.
async fn worker(db: &TestDb, args: &[&str]) -> Output {
    let mut cmd = StdCommand::new(assert_cmd::cargo::cargo_bin("facebook-connector-worker"));
    cmd.env("DB_URL", &db.url)
        .env("LOG_FORMAT", "json")
        .args(args);
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// `deliveries --json …`: one object per line.
async fn listed(db: &TestDb, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["deliveries", "--json"];
    all.extend_from_slice(args);
    let output = worker(db, &all).await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    text(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn revisions(lines: &[Value]) -> Vec<u64> {
    lines
        .iter()
        .map(|l| l["revision"].as_u64().unwrap())
        .collect()
}

/// A refused `retry`: exit status 1 and the message on stderr.
async fn refused(db: &TestDb, args: &[&str]) -> String {
    let output = worker(db, args).await;
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stdout));
    assert!(output.stdout.is_empty(), "{}", text(&output.stdout));
    text(&output.stderr)
}

/// A snapshot command for `profile` with one Parquet file.
fn snapshot_command(
    revision: u64,
    profile: facebook_connector_core::domain::ProfileId,
) -> NewCommand {
    let connection_id = Uuid::from_u128(0xc0_0000_0000_4000_8000_0000_0000_0001).into();
    NewCommand {
        revision: Revision(revision),
        event: DeliveryEvent::SnapshotAppended {
            connection_id,
            snapshot_id: SnapshotId::new("snap-7").unwrap(),
        },
        settings_id: SettingsId::Connection {
            profile_id: profile,
            connection_id,
        },
        jobs: vec![NewJob {
            id: JobId::new_v7(),
            file: FileRef::Snapshot {
                dataset_id: DatasetId(42),
                snapshot_id: SnapshotId::new("snap-7").unwrap(),
                file: FileName::new("part-00000.parquet").unwrap(),
            },
            max_attempts: 5,
        }],
    }
}

contract!(deliveries_and_retry);

/// Revision 1: a failed file (two batches acknowledged first), a delivered one and one queued
/// for a second attempt; revision 2: a dataset snapshot file, queued; revision 3: a file whose
/// profile needs re-authorisation.
async fn deliveries_and_retry(db: &TestDb) {
    let (profiles, commands, jobs) = (db.store.profiles(), db.store.commands(), db.store.jobs());
    let (p1, p2, p3) = (
        profile(1, 7, at(0)),
        profile(2, 7, at(0)),
        profile(3, 8, at(0)),
    );
    for p in [&p1, &p2, &p3] {
        profiles.insert_profile(p).await.unwrap();
    }
    let first = command(1, p1.id, 3, 5);
    let names: Vec<(JobId, String)> = first
        .jobs
        .iter()
        .map(|j| (j.id, j.file.file().as_str().to_owned()))
        .collect();
    record(&*commands, first, at(0)).await;
    let (a, b, c) = (
        claim(&*jobs, "w", at(1)).await,
        claim(&*jobs, "w", at(1)).await,
        claim(&*jobs, "w", at(1)).await,
    );
    let name = |id: JobId| names.iter().find(|(j, _)| *j == id).unwrap().1.clone();
    let acknowledged = DeliveryCounters {
        records_read: 20_150,
        rejected_lines: 3,
        unmatchable: 147,
        members_sent: 20_000,
        facebook_received: 19_990,
        facebook_invalid: 10,
    };
    let cp = checkpoint(a.job.id.upload_session_id(0), 2, acknowledged);
    jobs.checkpoint(&a.lease, &cp, common::LEASE, at(2))
        .await
        .unwrap();
    jobs.fail(
        &a.lease,
        "facebook refused the batch: invalid schema",
        &acknowledged,
        at(3),
    )
    .await
    .unwrap();
    jobs.complete(&b.lease, &counters(10), at(3)).await.unwrap();
    jobs.retry_at(&c.lease, at(10_000), "facebook timed out", at(3))
        .await
        .unwrap();
    record(&*commands, snapshot_command(2, p2.id), at(5)).await;
    record(&*commands, command(3, p3.id, 1, 5), at(6)).await;
    profiles
        .mark_needs_reauth(p3.id, "error 190: the token expired", at(7))
        .await
        .unwrap();
    let settings_1 = commands
        .get_command(Revision(1))
        .await
        .unwrap()
        .unwrap()
        .settings_id
        .to_string();

    // --json: newest first, operations.md's shape, every figure
    let all = listed(db, &[]).await;
    assert_eq!(revisions(&all), [3, 2, 1]);
    let rev1 = &all[2];
    assert_eq!(rev1["profile_id"], json!(p1.id.to_string()));
    assert_eq!(rev1["settings_id"], json!(settings_1));
    assert_eq!(rev1["created_at"], json!("2025-03-01T12:00:00Z"));
    let mut keys: Vec<&String> = rev1.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "created_at",
            "files",
            "profile_id",
            "revision",
            "settings_id"
        ]
    );
    let file = |line: &Value, name: &str| -> Value {
        line["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["file"] == json!(name))
            .cloned()
            .unwrap_or_else(|| panic!("no {name} in {line}"))
    };
    assert_eq!(
        file(rev1, &name(a.job.id)),
        json!({
            "file": name(a.job.id), "status": "failed",
            "reason": "facebook refused the batch: invalid schema", "attempts": 1,
            "records_read": 20150, "rejected_lines": 3, "unmatchable": 147,
            "members_sent": 20000, "facebook_received": 19990, "facebook_invalid": 10
        })
    );
    let ten = counters(10);
    assert_eq!(
        file(rev1, &name(b.job.id)),
        json!({
            "file": name(b.job.id), "status": "delivered", "reason": null, "attempts": 1,
            "records_read": ten.records_read, "rejected_lines": ten.rejected_lines,
            "unmatchable": ten.unmatchable, "members_sent": ten.members_sent,
            "facebook_received": ten.facebook_received, "facebook_invalid": ten.facebook_invalid
        })
    );
    let pending = file(rev1, &name(c.job.id));
    assert_eq!(
        (&pending["status"], &pending["reason"], &pending["attempts"]),
        (&json!("pending"), &json!("facebook timed out"), &json!(1))
    );
    let snapshot = file(&all[1], "part-00000.parquet");
    assert_eq!(snapshot["snapshot_id"], json!("snap-7"));
    assert_eq!(
        (&snapshot["status"], &snapshot["attempts"]),
        (&json!("pending"), &json!(0))
    );
    assert!(
        file(rev1, &name(a.job.id)).get("snapshot_id").is_none(),
        "legacy files have no snapshot id"
    );
    let paused = &all[0]["files"][0];
    assert_eq!(
        (&paused["status"], &paused["reason"]),
        (&json!("paused"), &json!("error 190: the token expired"))
    );

    // filters
    assert_eq!(revisions(&listed(db, &["--status", "failed"]).await), [1]);
    assert_eq!(
        revisions(&listed(db, &["--status", "delivered"]).await),
        [1]
    );
    assert_eq!(
        revisions(&listed(db, &["--status", "pending"]).await),
        [2, 1]
    );
    assert_eq!(revisions(&listed(db, &["--status", "paused"]).await), [3]);
    let p2_id = p2.id.to_string();
    assert_eq!(revisions(&listed(db, &["--profile", &p2_id]).await), [2]);
    assert_eq!(revisions(&listed(db, &["--revision", "1"]).await), [1]);
    assert!(
        listed(db, &["--revision", "1", "--profile", &p2_id])
            .await
            .is_empty()
    );
    assert!(
        listed(db, &["--revision", "2", "--status", "failed"])
            .await
            .is_empty()
    );
    assert_eq!(revisions(&listed(db, &["--limit", "2"]).await), [3, 2]);
    assert_eq!(
        revisions(&listed(db, &["--limit", "1", "--status", "pending"]).await),
        [2]
    );
    let unknown = worker(db, &["deliveries", "--revision", "99"]).await;
    assert_eq!(unknown.status.code(), Some(1));
    assert!(text(&unknown.stderr).contains("no delivery with revision 99"));
    let bad_status = worker(db, &["deliveries", "--status", "lost"]).await;
    assert_eq!(bad_status.status.code(), Some(2), "clap refuses it");

    // the table
    let table = worker(db, &["deliveries"]).await;
    assert!(table.status.success());
    let table = text(&table.stdout);
    assert!(
        table.contains("revision 1  subscription delivery  3 files"),
        "{table}"
    );
    assert!(table.contains("snapshot appended"), "{table}");
    assert!(table.contains(&format!("profile {}", p1.id)), "{table}");
    let row = table
        .lines()
        .skip_while(|l| !l.starts_with("revision 1 "))
        .find(|l| l.trim_start().starts_with(&name(a.job.id)))
        .unwrap();
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        &cells[..9],
        [
            name(a.job.id).as_str(),
            "failed",
            "1",
            "20150",
            "3",
            "147",
            "20000",
            "19990",
            "10"
        ],
        "{table}"
    );
    assert!(
        row.ends_with("facebook refused the batch: invalid schema"),
        "{row}"
    );
    assert!(
        table.contains("part-00000.parquet (snapshot snap-7)"),
        "{table}"
    );
    assert!(table.contains("STATUS"), "{table}");

    // retry refusals: nothing changes
    assert!(
        refused(db, &["retry", "99"])
            .await
            .contains("no delivery with revision 99")
    );
    let delivered = refused(db, &["retry", "1", "--file", &name(b.job.id)]).await;
    assert!(
        delivered.contains("was delivered: there is nothing to retry"),
        "{delivered}"
    );
    let queued = refused(db, &["retry", "1", "--file", &name(c.job.id)]).await;
    assert!(
        queued.contains(
            "is still pending: it is queued for attempt 2 of 5 after: facebook timed out"
        ),
        "{queued}"
    );
    let unknown = refused(db, &["retry", "1", "--file", "nope.jsonl"]).await;
    assert!(
        unknown.contains("has no file named \"nope.jsonl\""),
        "{unknown}"
    );
    assert!(
        unknown.contains(&name(a.job.id)),
        "it lists the files: {unknown}"
    );
    let nothing = refused(db, &["retry", "2"]).await;
    assert!(
        nothing.contains("revision 2 has no failed or paused file to retry (1 pending)"),
        "{nothing}"
    );
    let running = claim(&*jobs, "w", at(8)).await;
    assert_eq!(running.job.revision, Revision(2));
    let busy = refused(db, &["retry", "2", "--file", "part-00000.parquet"]).await;
    assert!(
        busy.contains("it is being delivered right now (attempt 1 of 5)"),
        "{busy}"
    );
    let failed_job = jobs.get_job(a.job.id).await.unwrap().unwrap();
    assert_eq!(failed_job.status, JobStatus::Failed);

    // retry the revision: the failed file goes back with fresh attempts and its checkpoint
    let output = worker(db, &["retry", "1"]).await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    let said = text(&output.stdout);
    assert!(said.starts_with("requeued 1 file of revision 1:"), "{said}");
    assert!(
        said.contains(&format!(
            "{}: queued; resumes after 20000 members Facebook acknowledged (2 batches of upload session {})",
            name(a.job.id),
            cp.session_id
        )),
        "{said}"
    );
    let requeued = jobs.get_job(a.job.id).await.unwrap().unwrap();
    assert_eq!((requeued.status, requeued.attempts), (JobStatus::Queued, 0));
    assert_eq!(
        requeued.checkpoint,
        Some(cp),
        "the acknowledged batches are not sent again"
    );
    let after = listed(db, &["--revision", "1"]).await;
    let retried = file(&after[0], &name(a.job.id));
    assert_eq!(
        (&retried["status"], &retried["reason"], &retried["attempts"]),
        (&json!("pending"), &json!(null), &json!(0))
    );
    assert_eq!(retried["members_sent"], json!(20000), "the counters stay");
    assert_eq!(
        file(&after[0], &name(b.job.id))["status"],
        json!("delivered"),
        "the delivered file is left alone"
    );
    let again = refused(db, &["retry", "1"]).await;
    assert!(again.contains("no failed or paused file"), "{again}");

    // a paused file: requeued, but it waits for the re-authorisation
    let output = worker(db, &["retry", "3", "--file", "part-0000.jsonl"]).await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    let said = text(&output.stdout);
    assert!(
        said.contains("part-0000.jsonl: paused: waits for the profile's re-authorisation"),
        "{said}"
    );
    assert!(
        said.contains(&format!("POST /profiles/{}/reauthorize", p3.id)),
        "{said}"
    );
}
