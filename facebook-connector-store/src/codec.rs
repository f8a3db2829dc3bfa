//! Conversions between domain values and column values shared by both backends.

use std::time::Duration;

use facebook_connector_core::domain::{FileStatus, JobStatus, Revision, SettingsId};
use time::OffsetDateTime;

use crate::error::{StoreError, StoreResult};

/// Default and maximum page size of the listing methods.
pub(crate) const DEFAULT_LIMIT: i64 = 100;
pub(crate) const MAX_LIMIT: i64 = 1000;

/// Reason stored on jobs failed because their profile was archived.
pub(crate) const PROFILE_ARCHIVED: &str = "profile archived";
/// Reason stored on jobs whose lease expired after their last allowed attempt.
pub(crate) const LEASE_EXPIRED_LAST_ATTEMPT: &str =
    "worker lease expired during the last allowed attempt";

pub(crate) fn limit(requested: u32) -> i64 {
    match i64::from(requested) {
        0 => DEFAULT_LIMIT,
        n => n.min(MAX_LIMIT),
    }
}

pub(crate) fn revision_to_db(revision: Revision) -> StoreResult<i64> {
    i64::try_from(revision.0).map_err(|_| StoreError::OutOfRange {
        what: "revision",
        value: revision.0,
    })
}

pub(crate) fn revision_from_db(value: i64) -> StoreResult<Revision> {
    u64::try_from(value)
        .map(Revision)
        .map_err(|e| StoreError::corrupt("revision")(Box::new(e)))
}

pub(crate) fn u64_to_db(what: &'static str, value: u64) -> StoreResult<i64> {
    i64::try_from(value).map_err(|_| StoreError::OutOfRange { what, value })
}

pub(crate) fn u64_from_db(what: &'static str, value: i64) -> StoreResult<u64> {
    u64::try_from(value).map_err(|e| StoreError::corrupt(what)(Box::new(e)))
}

pub(crate) fn u32_to_db(what: &'static str, value: u32) -> StoreResult<i32> {
    i32::try_from(value).map_err(|_| StoreError::OutOfRange {
        what,
        value: u64::from(value),
    })
}

pub(crate) fn u32_from_db(what: &'static str, value: i32) -> StoreResult<u32> {
    u32::try_from(value).map_err(|e| StoreError::corrupt(what)(Box::new(e)))
}

pub(crate) fn job_status_from_db(value: &str) -> StoreResult<JobStatus> {
    Ok(match value {
        "queued" => JobStatus::Queued,
        "running" => JobStatus::Running,
        "paused" => JobStatus::Paused,
        "delivered" => JobStatus::Delivered,
        "failed" => JobStatus::Failed,
        other => {
            return Err(StoreError::corrupt("job status")(
                format!("unknown job status {other:?}").into(),
            ));
        }
    })
}

/// What the profile of a job says about it: `Some(reason)` when it needs re-authorisation.
pub(crate) type ReauthReason<'a> = Option<Option<&'a str>>;

/// The command file status a job's state stands for: an unfinished job of a profile that
/// needs re-authorisation is `paused` (a running one pauses when its worker notices).
pub(crate) fn file_status(
    status: JobStatus,
    last_error: Option<&str>,
    reauth: ReauthReason<'_>,
) -> FileStatus {
    const NEEDS_REAUTH: &str = "the profile needs re-authorisation";
    match (status, reauth) {
        (JobStatus::Delivered, _) => FileStatus::Delivered,
        (JobStatus::Failed, _) => FileStatus::Failed {
            reason: last_error.unwrap_or("failed").to_owned(),
        },
        (JobStatus::Paused, reauth) => FileStatus::Paused {
            reason: reauth
                .flatten()
                .or(last_error)
                .unwrap_or(NEEDS_REAUTH)
                .to_owned(),
        },
        (JobStatus::Queued | JobStatus::Running, Some(reason)) => FileStatus::Paused {
            reason: reason.unwrap_or(NEEDS_REAUTH).to_owned(),
        },
        (JobStatus::Queued | JobStatus::Running, None) => FileStatus::Pending,
    }
}

pub(crate) fn settings_id_from_db(value: &str) -> StoreResult<SettingsId> {
    value
        .parse()
        .map_err(|e| StoreError::corrupt("settings id")(Box::new(e)))
}

/// Times are kept to the microsecond (what both databases store), in UTC.
pub(crate) fn truncate_micros(t: OffsetDateTime) -> OffsetDateTime {
    let t = t.to_offset(time::UtcOffset::UTC);
    t.replace_nanosecond(t.nanosecond() / 1_000 * 1_000)
        .unwrap_or(t)
}

pub(crate) fn unix_micros(t: OffsetDateTime) -> i64 {
    let micros = t.unix_timestamp_nanos().div_euclid(1_000);
    i64::try_from(micros).unwrap_or(if micros < 0 { i64::MIN } else { i64::MAX })
}

pub(crate) fn from_unix_micros(value: i64) -> StoreResult<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(value) * 1_000)
        .map_err(|e| StoreError::corrupt("timestamp")(Box::new(e)))
}

pub(crate) fn add(t: OffsetDateTime, d: Duration) -> StoreResult<OffsetDateTime> {
    time::Duration::try_from(d)
        .ok()
        .and_then(|d| t.checked_add(d))
        .ok_or(StoreError::OutOfRange {
            what: "duration in seconds",
            value: d.as_secs(),
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn micros_round_trip_and_preserve_order() {
        let a = time::macros::datetime!(2024-05-01 12:00:00.123456789 UTC);
        let b = time::macros::datetime!(1969-12-31 23:59:59.999999 UTC);
        assert_eq!(
            from_unix_micros(unix_micros(a)).unwrap(),
            truncate_micros(a)
        );
        assert_eq!(from_unix_micros(unix_micros(b)).unwrap(), b);
        assert!(unix_micros(b) < unix_micros(a));
        assert_eq!(limit(0), DEFAULT_LIMIT);
        assert_eq!(limit(5), 5);
        assert_eq!(limit(u32::MAX), MAX_LIMIT);
        assert!(revision_to_db(Revision(u64::MAX)).is_err());
    }
}
