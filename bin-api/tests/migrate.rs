//! The API binary's `migrate` command on the embedded database.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use assert_cmd::Command;

#[test]
fn migrate_prepares_an_embedded_database() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("fc.db").display());
    let output = Command::cargo_bin("facebook-connector-api")
        .unwrap()
        .args(["migrate", "--database-url", &url])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        stdout.starts_with("database schema is at version "),
        "{stdout}"
    );
}
