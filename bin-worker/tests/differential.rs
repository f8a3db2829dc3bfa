//! The differential check's hand-written cases, frozen: the real binary's `parse` and `payload`
//! output must equal, byte for byte, what the independent reference implementation of
//! normalization.md (scripts/reference_normalizer.py) printed for the same records. The
//! fixtures leave out cases whose outcome depends on the current year. Refresh them with
//! `python3 scripts/diffcheck.py --golden bin-worker/tests/data/differential`; the full check
//! (random records, more batch sizes) is `python3 scripts/diffcheck.py --bin <worker>`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use assert_cmd::Command;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/differential")
        .join(name)
}

fn run(args: &[&str], input: &str) -> Vec<u8> {
    let output = Command::cargo_bin("facebook-connector-worker")
        .unwrap()
        .args(args)
        .arg(fixture(input))
        .output()
        .unwrap();
    assert!(output.status.success(), "{args:?} failed: {output:?}");
    output.stdout
}

/// Compares line by line first, so that a failure names the first differing record.
fn assert_same(got: &[u8], expected_file: &str) {
    let want = std::fs::read(fixture(expected_file)).unwrap();
    let (got_s, want_s) = (String::from_utf8_lossy(got), String::from_utf8_lossy(&want));
    for (i, (g, w)) in got_s.lines().zip(want_s.lines()).enumerate() {
        assert_eq!(g, w, "{expected_file}: output line {} differs", i + 1);
    }
    assert_eq!(
        got_s.lines().count(),
        want_s.lines().count(),
        "{expected_file}: line count"
    );
    assert!(got == want.as_slice(), "{expected_file}: bytes differ");
}

#[test]
fn parse_matches_the_reference_in_both_shapes() {
    for shape in ["dataset", "legacy"] {
        let got = run(&["parse", "--format", shape], &format!("{shape}.jsonl"));
        assert_same(&got, &format!("{shape}.parse.expected"));
    }
}

#[test]
fn payload_matches_the_reference_byte_for_byte() {
    for batch in ["7", "10000"] {
        let got = run(
            &["payload", "--format", "dataset", "--batch-size", batch],
            "dataset.jsonl",
        );
        assert_same(&got, &format!("dataset.payload-{batch}.expected"));
    }
}
