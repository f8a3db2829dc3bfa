//! The engine's knobs, with the defaults of operations.md.

use std::path::PathBuf;
use std::time::Duration;

use crate::domain::WorkerId;
use crate::error::InvalidValue;
use crate::payload::MAX_BATCH_SIZE;

/// How the engine runs. [`EngineConfig::new`] gives operations.md's defaults.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Names this worker in leases and claims.
    pub worker_id: WorkerId,
    /// Jobs at once in this worker (`WORKER_CONCURRENCY`, default 4).
    pub concurrency: usize,
    /// Batches in flight per file (`UPLOADS_IN_FLIGHT`, default 2).
    pub uploads_in_flight: usize,
    /// Members per batch (`BATCH_SIZE`, default and maximum 10,000).
    pub batch_size: usize,
    /// How often the feed is polled when it is caught up, and the longest an idle job runner
    /// sleeps (`POLL_INTERVAL`, default 5 s).
    pub poll_interval: Duration,
    /// How long a claimed job is ours without a heartbeat (`JOB_LEASE`, default 60 s); a job
    /// whose worker died is taken up again within one lease.
    pub lease: Duration,
    /// Events asked for per feed page.
    pub feed_page_size: u32,
    /// Attempts a job gets before a persistent failure fails it (rate-limit waits and pauses do
    /// not use attempts up).
    pub max_attempts: u32,
    /// First wait after a failed attempt; doubled per attempt (with jitter) up to
    /// `retry_max_backoff`.
    pub retry_initial_backoff: Duration,
    /// Longest wait between two failed attempts.
    pub retry_max_backoff: Duration,
    /// Wait after a rate limit without an estimate from Facebook.
    pub throttle_backoff: Duration,
    /// Wait after a failure that needs an operator (undecryptable token, storage corruption).
    pub fatal_backoff: Duration,
    /// How long this worker may hold the right to create a target's audience.
    pub settings_claim_ttl: Duration,
    /// A session whose first batch is older than this is not continued: Facebook discards
    /// batches arriving 90 minutes after a session's first, so the rest of the file goes into
    /// a new session (default 80 minutes, a margin under Facebook's 90).
    pub session_max_age: Duration,
    /// How long a shutdown waits for in-flight batches and checkpoints before it stops (30 s).
    pub shutdown_grace: Duration,
    /// Read the next batch of a file while earlier ones upload (default on; off reproduces
    /// the original connector's one-batch-at-a-time design, for benchmarks).
    pub read_ahead: bool,
    /// Where files are downloaded to (removed after each job); the system's temporary
    /// directory when `None`.
    pub work_dir: Option<PathBuf>,
}

impl EngineConfig {
    /// operations.md's defaults for a worker with this id.
    pub fn new(worker_id: WorkerId) -> EngineConfig {
        EngineConfig {
            worker_id,
            concurrency: 4,
            uploads_in_flight: 2,
            batch_size: MAX_BATCH_SIZE,
            poll_interval: Duration::from_secs(5),
            lease: Duration::from_secs(60),
            feed_page_size: 100,
            max_attempts: 8,
            retry_initial_backoff: Duration::from_secs(30),
            retry_max_backoff: Duration::from_secs(30 * 60),
            throttle_backoff: Duration::from_secs(60),
            fatal_backoff: Duration::from_secs(10 * 60),
            settings_claim_ttl: Duration::from_secs(120),
            session_max_age: Duration::from_secs(80 * 60),
            shutdown_grace: Duration::from_secs(30),
            read_ahead: true,
            work_dir: None,
        }
    }

    /// Checks the values that have limits.
    pub fn validate(&self) -> Result<(), InvalidValue> {
        let bad = |what: &'static str, value: String, reason: &'static str| {
            Err(InvalidValue::new(what, &value, reason))
        };
        if self.concurrency == 0 {
            return bad("concurrency", "0".into(), "must be at least 1");
        }
        if self.uploads_in_flight == 0 {
            return bad("uploads in flight", "0".into(), "must be at least 1");
        }
        if self.batch_size == 0 || self.batch_size > MAX_BATCH_SIZE {
            return bad(
                "batch size",
                self.batch_size.to_string(),
                "must be between 1 and 10000",
            );
        }
        if self.lease < Duration::from_secs(1) {
            return bad(
                "job lease",
                format!("{:?}", self.lease),
                "must be at least 1s",
            );
        }
        if self.max_attempts == 0 {
            return bad("max attempts", "0".into(), "must be at least 1");
        }
        Ok(())
    }

    /// A worker id from the host name, the process id and a random suffix.
    pub fn default_worker_id() -> WorkerId {
        let host = std::env::var("HOSTNAME")
            .ok()
            .filter(|h| !h.is_empty())
            .or_else(|| {
                std::fs::read_to_string("/etc/hostname")
                    .ok()
                    .map(|h| h.trim().to_owned())
            })
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "worker".to_owned());
        let suffix: u32 = rand::random();
        WorkerId(format!("{host}-{}-{suffix:08x}", std::process::id()))
    }
}
