//! The delivery engine: marketplace events in, Facebook audiences filled, generic over the
//! ports so that any host (the worker binary, its `demo`, another connector with its own
//! sink) runs the same code.
//!
//! ```text
//!  feed follower (1 task)   events_after(cursor) → files → record_event(command, jobs, cursor)
//!                           never calls Facebook                      │ wake
//!  job runner (N slots)     claim (fair across profiles) ◄────────────┘
//!    per job                heartbeat task ─ lease renewals, stops on lost lease / reauth / archive
//!                           profile, token → settings (claim-guarded audience creation)
//!                           download_to(tempfile) → pipeline (reader on a blocking thread
//!                           → mpsc(1) → uploader: batch 1 alone, ≤ in-flight at once, last last)
//!                           → checkpoint per acknowledged prefix (extends the lease)
//!                           → complete | retry_at | defer (+ ad-account throttle) | pause | fail
//!  stats (1 task)           queue stats and cursor → gauges, every poll interval
//! ```
//!
//! One `match` on [`Error::disposition`](crate::Error::disposition) decides what a failure does
//! (see `job.rs`). Client-level retries stay short, inside the lease; long waits (Facebook
//! throttling, backoff after failures) go back to the queue as `retry_at`/`defer`, so no
//! worker slot is held through a long wait. Time comes from the [`Clock`] port and
//! `tokio::time`, so tests run on paused time.

mod backoff;
mod config;
mod feed;
mod job;
pub mod metrics;
pub mod pipeline;
mod runner;
mod settings;

use std::sync::Arc;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::domain::{Claim, Job};
use crate::error::{Result, display_chain};
use crate::ports::{
    AudienceSink, Clock, CommandStore, ConnectionDirectory, DeliveryFiles, EventSource, JobQueue,
    ProfileStore, SettingsStore, StatusReporter, TokenCipher,
};

pub use config::EngineConfig;
pub use feed::FeedPass;
pub use job::{JobEnd, JobReport};
pub use pipeline::{BatchAck, Control, FileUpload, Outcome, Progress, ReadCounts, ReadSummary};

/// Everything the engine talks to.
#[derive(Clone)]
pub struct Ports {
    /// The marketplace's delivery event feed.
    pub events: Arc<dyn EventSource>,
    /// Dataset connections.
    pub connections: Arc<dyn ConnectionDirectory>,
    /// Delivery files (listing and download).
    pub files: Arc<dyn DeliveryFiles>,
    /// Where members go (Facebook, or another connector's sink).
    pub audiences: Arc<dyn AudienceSink>,
    /// Profiles and their tokens.
    pub profiles: Arc<dyn ProfileStore>,
    /// Per-target settings.
    pub settings: Arc<dyn SettingsStore>,
    /// Commands and the feed cursor.
    pub commands: Arc<dyn CommandStore>,
    /// The job queue.
    pub jobs: Arc<dyn JobQueue>,
    /// Decrypts stored tokens.
    pub cipher: Arc<dyn TokenCipher>,
    /// Optional delivery reports to the marketplace (off when `None`).
    pub reporter: Option<Arc<dyn StatusReporter>>,
    /// Time.
    pub clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Ports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ports")
            .field("reporter", &self.reporter.is_some())
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

/// Hooks for hosts that show progress (the `demo`, tests). Every method has a no-op default.
pub trait Observer: Send + Sync {
    /// A job was claimed and starts.
    fn job_started(&self, _job: &Job) {}
    /// A batch of the job was acknowledged by Facebook.
    fn batch_acknowledged(&self, _job: &Job, _ack: &BatchAck) {}
    /// A job's run ended.
    fn job_finished(&self, _report: &JobReport) {}
}

/// What the engine's tasks share.
pub(crate) struct Inner {
    pub(crate) ports: Ports,
    pub(crate) config: EngineConfig,
    pub(crate) observer: Arc<dyn Observer>,
    /// Wakes idle job slots when the feed follower enqueued jobs.
    pub(crate) wake: Notify,
}

/// The delivery engine; see the module docs.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine over `ports` with `config` (checked).
    pub fn new(ports: Ports, config: EngineConfig) -> Result<Engine> {
        Engine::with_observer(ports, config, Arc::new(()))
    }

    /// An engine that reports progress to `observer`.
    pub fn with_observer(
        ports: Ports,
        config: EngineConfig,
        observer: Arc<dyn Observer>,
    ) -> Result<Engine> {
        config.validate()?;
        Ok(Engine {
            inner: Arc::new(Inner {
                ports,
                config,
                observer,
                wake: Notify::new(),
            }),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// Follows the feed and runs jobs until `shutdown` is cancelled; then stops claiming, lets
    /// running jobs finish their in-flight batches and checkpoint (within the shutdown
    /// grace), hands unfinished jobs back to the queue and returns.
    pub async fn run(&self, shutdown: CancellationToken) {
        let feed = {
            let inner = self.inner.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move { feed::follow(&inner, &shutdown).await })
        };
        let stats = {
            let inner = self.inner.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move { refresh_stats(&inner, &shutdown).await })
        };
        runner::run(self.inner.clone(), shutdown).await;
        let _ = feed.await;
        let _ = stats.await;
    }

    /// Only follows the feed (a host that runs no jobs), until `shutdown`.
    pub async fn follow_feed(&self, shutdown: CancellationToken) {
        feed::follow(&self.inner, &shutdown).await;
    }

    /// Only runs jobs (a host whose events are recorded elsewhere), until `shutdown`.
    pub async fn run_jobs(&self, shutdown: CancellationToken) {
        runner::run(self.inner.clone(), shutdown).await;
    }

    /// Reads one page of the feed and records its events (tests, tools).
    pub async fn follow_feed_once(&self) -> Result<FeedPass> {
        feed::pass(&self.inner, &CancellationToken::new()).await
    }

    /// Claims one runnable job and runs it to its end (tests, tools); `None` when nothing is
    /// runnable.
    pub async fn run_next_job(&self) -> Result<Option<JobReport>> {
        let inner = &self.inner;
        let claim = inner
            .ports
            .jobs
            .claim(
                &inner.config.worker_id,
                inner.config.lease,
                inner.ports.clock.now(),
            )
            .await?;
        match claim {
            Claim::Job(claimed) => Ok(Some(
                job::run(inner, *claimed, CancellationToken::new()).await,
            )),
            Claim::Idle { .. } => Ok(None),
        }
    }
}

/// Refreshes the queue and cursor gauges every poll interval.
async fn refresh_stats(engine: &Inner, shutdown: &CancellationToken) {
    loop {
        match engine.ports.jobs.stats().await {
            Ok(stats) => metrics::queue(&stats),
            Err(error) => tracing::debug!(
                error = %display_chain(&error),
                "cannot read the queue's statistics"
            ),
        }
        if let Ok(Some(revision)) = engine.ports.commands.cursor().await {
            metrics::feed_revision(revision.0);
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(engine.config.poll_interval) => {}
        }
    }
}

impl Observer for () {}

#[cfg(test)]
pub(crate) mod pipeline_tests;
