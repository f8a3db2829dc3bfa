//! `run`: the daemon. Follows the feed, runs jobs, serves `/metrics`, `/healthz` and
//! `/readyz` on `METRICS_ADDR`; SIGTERM or SIGINT stops claiming, lets in-flight batches finish
//! and checkpoint (at most 30 s), hands unfinished jobs back and exits 0.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use facebook_connector_core::engine::EngineConfig;
use facebook_connector_core::ports::SystemClock;
use facebook_connector_host::config::{duration, secret};
use facebook_connector_host::{ServiceArgs, exit, ops, require};
use facebook_marketing::GraphConfig;
use narrative_client::{FeedKind, NarrativeConfig};
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

use crate::wiring::{self, WorkerSettings};

/// Which marketplace feed to follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Feed {
    /// `/v2/app/events`: subscription deliveries, appended snapshots, created connections.
    Events,
    /// `/v1/app/commands/delivery`: legacy subscription deliveries only.
    LegacyCommands,
}

/// The engine's knobs (shared by `run` and the benchmarks).
#[derive(Clone, Debug, clap::Args)]
pub struct EngineArgs {
    /// Jobs at once in this worker
    #[arg(long, env = "WORKER_CONCURRENCY", default_value_t = 4,
          value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: u16,
    /// Batches in flight per file
    #[arg(long, env = "UPLOADS_IN_FLIGHT", default_value_t = 2,
          value_parser = clap::value_parser!(u16).range(1..=16))]
    pub uploads_in_flight: u16,
    /// Members per upload batch (at most 10000)
    #[arg(long, env = "BATCH_SIZE", default_value_t = 10_000,
          value_parser = clap::value_parser!(u16).range(1..=10_000))]
    pub batch_size: u16,
    /// How often the feed is polled when it has nothing new
    #[arg(long, env = "POLL_INTERVAL", default_value = "5s", value_parser = duration)]
    pub poll_interval: Duration,
    /// How long a job is ours without a heartbeat; a job whose worker died is taken up again
    /// within one lease
    #[arg(long = "lease", env = "JOB_LEASE", default_value = "60s", value_parser = duration)]
    pub lease: Duration,
    /// Read a file's next batch while earlier ones upload; `false` reproduces the original
    /// connector's one-batch-at-a-time design (for benchmarks)
    #[arg(long, env = "READ_AHEAD", default_value_t = true, action = clap::ArgAction::Set)]
    pub read_ahead: bool,
}

impl EngineArgs {
    /// The engine configuration these flags describe.
    pub fn engine_config(&self) -> EngineConfig {
        let mut config = EngineConfig::new(EngineConfig::default_worker_id());
        config.concurrency = usize::from(self.concurrency);
        config.uploads_in_flight = usize::from(self.uploads_in_flight);
        config.batch_size = usize::from(self.batch_size);
        config.poll_interval = self.poll_interval;
        config.lease = self.lease;
        config.read_ahead = self.read_ahead;
        config
    }
}

/// `run`'s flags (operations.md, "Configuration").
#[derive(Clone, Debug, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub service: ServiceArgs,
    /// OAuth client id of the marketplace app (required by `run`)
    #[arg(long, env = "NARRATIVE_API_CLIENT_ID")]
    pub narrative_client_id: Option<String>,
    /// OAuth client secret of the marketplace app (required by `run`)
    #[arg(long, env = "NARRATIVE_API_CLIENT_SECRET", hide_env_values = true, value_parser = secret)]
    pub narrative_client_secret: Option<SecretString>,
    /// The marketplace feed to follow
    #[arg(long, env = "NARRATIVE_FEED", value_enum, default_value = "events")]
    pub narrative_feed: Feed,
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Where `/metrics`, `/healthz` and `/readyz` are served
    #[arg(long, env = "METRICS_ADDR", default_value = "127.0.0.1:9464")]
    pub metrics_addr: SocketAddr,
    /// Report each file's outcome to the marketplace (`audience.delivery.completed|failed`)
    #[arg(long, env = "REPORT_DELIVERY_STATUS", default_value_t = false)]
    pub report_delivery_status: bool,
}

impl RunArgs {
    /// Checks that every required value is there (a one-line error naming the flag and the
    /// variable otherwise) and resolves the settings; nothing connects yet.
    pub fn settings(&self) -> Result<WorkerSettings, facebook_connector_host::MissingValue> {
        const RUN: &str = "run";
        let s = &self.service;
        let token_keys = require(
            s.token_keys.clone(),
            "--token-keys",
            "TOKEN_ENCRYPTION_KEYS",
            RUN,
        )?;
        let app_id = require(
            s.facebook_app_id.clone(),
            "--facebook-app-id",
            "FACEBOOK_APP_ID",
            RUN,
        )?;
        let app_secret = require(
            s.facebook_app_secret.clone(),
            "--facebook-app-secret",
            "FACEBOOK_APP_SECRET",
            RUN,
        )?;
        let client_id = require(
            self.narrative_client_id.clone(),
            "--narrative-client-id",
            "NARRATIVE_API_CLIENT_ID",
            RUN,
        )?;
        let client_secret = require(
            self.narrative_client_secret.clone(),
            "--narrative-client-secret",
            "NARRATIVE_API_CLIENT_SECRET",
            RUN,
        )?;
        let feed = match self.narrative_feed {
            Feed::Events => FeedKind::Events,
            Feed::LegacyCommands => FeedKind::LegacyCommands,
        };
        let narrative =
            NarrativeConfig::new(s.narrative_api_base_uri.clone(), client_id, client_secret)
                .with_feed_kind(feed);
        let graph = GraphConfig::new(app_id, app_secret)
            .with_base_url(s.facebook_graph_url.clone())
            .with_api_version(s.facebook_api_version.clone());
        Ok(WorkerSettings {
            database_url: s.database.database_url.clone(),
            token_keys,
            narrative,
            graph,
            engine: self.engine.engine_config(),
            report_status: self.report_delivery_status,
        })
    }
}

/// Runs the daemon; returns the process's exit status.
pub fn main(args: &RunArgs) -> ExitCode {
    let settings = match args.settings() {
        Ok(settings) => settings,
        Err(missing) => return exit::config_error(&missing),
    };
    if let Err(e) = wiring::keyring(&settings.token_keys) {
        return exit::config_error(&e);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("fbc-worker")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return exit::failure(&e),
    };
    runtime.block_on(serve(settings, args.metrics_addr))
}

async fn serve(settings: WorkerSettings, metrics_addr: SocketAddr) -> ExitCode {
    let metrics = match ops::install_recorder() {
        Ok(handle) => handle,
        Err(e) => return exit::failure(&e),
    };
    let worker = match wiring::connect(&settings, Arc::new(SystemClock), Arc::new(())).await {
        Ok(worker) => worker,
        Err(e) => return exit::failure(&e),
    };
    let listener = match tokio::net::TcpListener::bind(metrics_addr).await {
        Ok(listener) => listener,
        Err(e) => {
            worker.store.close().await;
            return exit::failure(&e);
        }
    };
    let shutdown = CancellationToken::new();
    let store = worker.store.clone();
    let ready: ops::ReadinessCheck = Arc::new(move || {
        let store = store.clone();
        Box::pin(async move { store.ping().await.is_ok() })
    });
    let ops_server = {
        let shutdown = shutdown.clone();
        let router = ops::router(metrics, ready);
        tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(shutdown.cancelled_owned())
                .await
        })
    };
    tracing::info!(
        worker_id = %worker.engine.config().worker_id,
        metrics_addr = %metrics_addr,
        concurrency = worker.engine.config().concurrency,
        uploads_in_flight = worker.engine.config().uploads_in_flight,
        "worker started"
    );
    {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            facebook_connector_host::shutdown::signal().await;
            shutdown.cancel();
        });
    }
    worker.engine.run(shutdown.clone()).await;
    shutdown.cancel();
    let _ = ops_server.await;
    worker.store.close().await;
    tracing::info!("worker stopped");
    ExitCode::SUCCESS
}
