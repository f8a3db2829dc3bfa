//! `facebook-connector-worker demo` as a newcomer runs it: no configuration, the real binary.
//! Its exit status is the scenario's verdict; the report, the kept database (read back with
//! `deliveries --json`) and the progress lines are checked too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use assert_cmd::prelude::*;

fn bin() -> Command {
    let mut command = Command::cargo_bin("facebook-connector-worker").unwrap();
    // what a newcomer's shell has: no configuration at all
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    command
}

#[test]
fn demo_delivers_the_scenario_and_keeps_the_database_for_deliveries() {
    let dir = tempfile::tempdir().unwrap();
    let keep = dir.path().join("demo-db");
    let output = bin().arg("demo").arg("--keep").arg(&keep).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "exit {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );

    // the report
    for part in [
        "verdict: every delivery ended as the scenario expects",
        "no acknowledged batch sent again",
        "subscription delivery  Acme Retail",
        "connection created (backfill)  Acme Retail",
        "snapshot appended  Acme Retail → audience \"Spring sale lookalike seed\"",
        "Northwind Travel → audience \"Newsletter subscribers\"",
        "existing, named by quick settings",
        "connection created without historical data: nothing to deliver",
        "Facebook revokes Northwind Travel's token mid-file",
        "paused northwind-00000.jsonl",
        "Northwind Travel is needs_reauth with 1 job paused",
        "re-authorised Northwind Travel",
        "1 job resumed",
        "delivered northwind-00000.jsonl: 29,126 members sent",
        "103,150 records (150 rejected lines",
        "records/s",
    ] {
        assert!(stdout.contains(part), "{part:?} missing from:\n{stdout}");
    }
    // the file with malformed lines and unmatchable records, as the store counted it
    let dirty = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("part-00001.jsonl"))
        .unwrap_or_default();
    let cells: Vec<&str> = dirty.split_whitespace().collect();
    assert_eq!(
        cells,
        [
            "part-00001.jsonl",
            "delivered",
            "6,150",
            "150",
            "485",
            "5,515",
            "5,515",
            "0",
            "ok"
        ],
        "{stdout}"
    );
    let created = stdout
        .lines()
        .filter(|l| l.ends_with("created by the engine"))
        .count();
    assert_eq!(created, 3, "{stdout}");
    let database = keep.canonicalize().unwrap().join("facebook-connector.db");
    let url = format!("sqlite://{}", database.display());
    assert!(
        stdout.contains(&format!(
            "facebook-connector-worker deliveries --database-url {url}"
        )),
        "{stdout}"
    );

    // progress went to stderr, as plain lines (not a terminal)
    assert!(stderr.contains("progress: "), "{stderr}");
    assert!(stderr.contains("delivering part-00000.jsonl"), "{stderr}");
    assert!(!stdout.contains("progress: "), "{stdout}");

    // the kept database, through the command the report names
    let listed = bin()
        .args(["deliveries", "--json", "--database-url", &url])
        .output()
        .unwrap();
    assert!(listed.status.success(), "{listed:?}");
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 5, "five commands: {lines:?}");
    let files: Vec<&serde_json::Value> = lines
        .iter()
        .flat_map(|c| c["files"].as_array().unwrap())
        .collect();
    assert_eq!(files.len(), 8);
    assert!(
        files.iter().all(|f| f["status"] == "delivered"),
        "{files:?}"
    );
    let total = |field: &str| -> u64 { files.iter().map(|f| f[field].as_u64().unwrap()).sum() };
    assert_eq!(total("records_read"), 103_150);
    assert_eq!(total("rejected_lines"), 150);
    assert_eq!(total("members_sent"), total("facebook_received"));
    assert_eq!(total("facebook_invalid"), 0);

    // a second run into the same directory is refused: its revisions would clash
    let again = bin().arg("demo").arg("--keep").arg(&keep).output().unwrap();
    assert_eq!(again.status.code(), Some(1));
    let message = String::from_utf8_lossy(&again.stderr);
    assert!(message.contains("already holds a database"), "{message}");
}

#[test]
fn demo_runs_again_in_a_fresh_temporary_directory_and_leaves_nothing_behind() {
    let tmp = tempfile::tempdir().unwrap();
    for _ in 0..2 {
        let output = bin()
            .arg("demo")
            .env("TMPDIR", tmp.path())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(stdout.contains("facebook-connector-worker demo --keep ./demo-db"));
        let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
        assert!(left.is_empty(), "left behind: {left:?}");
    }
}
