//! The embedding example runs: the bundled sample delivery goes through the engine into the
//! example's stdout sink, in batches the engine cut, with the engine's own counters.

use std::process::Command;

#[test]
fn the_sample_delivery_reaches_the_stdout_sink() {
    let samples = concat!(env!("CARGO_MANIFEST_DIR"), "/../samples");
    let output = Command::new(env!("CARGO_BIN_EXE_embed-engine"))
        .arg(samples)
        .output()
        .expect("the example runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let batches: Vec<serde_json::Value> = stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("one JSON line per batch"))
        .collect();
    assert!(!batches.is_empty(), "{stdout}");
    let last = batches.last().expect("a batch");
    assert_eq!(last["last_batch_flag"], true);
    assert!(
        batches
            .iter()
            .rev()
            .skip(1)
            .all(|b| b["last_batch_flag"] == false),
        "only the last batch carries the flag"
    );
    let seqs: Vec<u64> = batches
        .iter()
        .map(|b| b["batch_seq"].as_u64().expect("batch_seq"))
        .collect();
    assert_eq!(seqs, (1..=batches.len() as u64).collect::<Vec<_>>());
    // the progress and the file's report go to stderr
    assert!(
        stderr.contains("Delivered") && stderr.contains("9 sent"),
        "the report line: {stderr}"
    );
}
