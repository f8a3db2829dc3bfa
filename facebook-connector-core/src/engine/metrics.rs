//! The engine's metrics, with the names operations.md fixes. They go through the `metrics`
//! facade: without a recorder installed (tests, embedding hosts that do not export) they cost
//! nothing.

use std::time::Duration;

use crate::domain::QueueStats;

use super::pipeline::ReadCounts;

/// `facebook_connector_jobs{state}`: the whole database's jobs.
pub const JOBS: &str = "facebook_connector_jobs";
/// `facebook_connector_events_total{kind}`.
pub const EVENTS_TOTAL: &str = "facebook_connector_events_total";
/// `facebook_connector_records_total{outcome}`: read, rejected, unmatchable, sent.
pub const RECORDS_TOTAL: &str = "facebook_connector_records_total";
/// `facebook_connector_batches_total{outcome}`: acknowledged, retried, failed.
pub const BATCHES_TOTAL: &str = "facebook_connector_batches_total";
/// `facebook_connector_upload_duration_seconds`: one batch upload.
pub const UPLOAD_DURATION_SECONDS: &str = "facebook_connector_upload_duration_seconds";
/// `facebook_connector_feed_revision`: the stored cursor.
pub const FEED_REVISION: &str = "facebook_connector_feed_revision";

pub(crate) fn event(kind: &'static str) {
    metrics::counter!(EVENTS_TOTAL, "kind" => kind).increment(1);
}

pub(crate) fn feed_revision(revision: u64) {
    metrics::gauge!(FEED_REVISION).set(revision as f64);
}

pub(crate) fn queue(stats: &QueueStats) {
    for (state, count) in [
        ("queued", stats.queued),
        ("running", stats.running),
        ("paused", stats.paused),
        ("delivered", stats.delivered),
        ("failed", stats.failed),
    ] {
        metrics::gauge!(JOBS, "state" => state).set(count as f64);
    }
}

pub(crate) fn records_read(before: &ReadCounts, after: &ReadCounts) {
    let delta = |a: u64, b: u64| b.saturating_sub(a);
    let rejected = delta(before.rejected_lines, after.rejected_lines);
    metrics::counter!(RECORDS_TOTAL, "outcome" => "read")
        .increment(delta(before.records_read, after.records_read));
    metrics::counter!(RECORDS_TOTAL, "outcome" => "rejected").increment(rejected);
    metrics::counter!(RECORDS_TOTAL, "outcome" => "unmatchable")
        .increment(delta(before.unmatchable, after.unmatchable));
}

pub(crate) fn batch_acknowledged(rows: u64) {
    metrics::counter!(BATCHES_TOTAL, "outcome" => "acknowledged").increment(1);
    metrics::counter!(RECORDS_TOTAL, "outcome" => "sent").increment(rows);
}

pub(crate) fn batch_retried() {
    metrics::counter!(BATCHES_TOTAL, "outcome" => "retried").increment(1);
}

pub(crate) fn batch_failed() {
    metrics::counter!(BATCHES_TOTAL, "outcome" => "failed").increment(1);
}

pub(crate) fn upload_duration(elapsed: Duration) {
    metrics::histogram!(UPLOAD_DURATION_SECONDS).record(elapsed.as_secs_f64());
}
