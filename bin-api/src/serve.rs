//! `serve`: configuration (operations.md, "Configuration") and wiring of the HTTP API. SIGTERM
//! or SIGINT stops accepting connections and lets requests in flight finish (each is bounded
//! by the request timeout).

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use facebook_connector_core::ports::SystemClock;
use facebook_connector_core::profiles::{ProfilePorts, ProfileService};
use facebook_connector_host::config::duration;
use facebook_connector_host::{ServiceArgs, exit, ops, require};
use facebook_connector_store::{Store, StoreError, StoreOptions, TokenKeyring};
use facebook_marketing::{GraphClient, GraphConfig, GraphError};
use narrative_client::{HttpConfig, NarrativeError, ProfileClient};

use crate::app::{AppOptions, AppState, CorsOrigins, router};
use crate::auth::AuthCache;

/// `serve`'s flags.
#[derive(Clone, Debug, clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub service: ServiceArgs,
    /// Address to listen on
    #[arg(long, env = "API_HOST", default_value = "0.0.0.0")]
    pub host: IpAddr,
    /// Port to listen on
    #[arg(long, env = "API_PORT", default_value_t = 8080)]
    pub port: u16,
    /// Origins allowed to call the API from a browser: `*` (any, without credentials) or a
    /// comma-separated list such as `https://app.narrative.io`
    #[arg(long, env = "CORS_ALLOWED_ORIGINS", default_value = "*")]
    pub cors_allowed_origins: String,
    /// Longest a request may take before it is answered 504
    #[arg(long, env = "API_REQUEST_TIMEOUT", default_value = "30s", value_parser = duration)]
    pub request_timeout: Duration,
    /// How long the company and installation behind a bearer token are remembered
    #[arg(long, env = "AUTH_CACHE_TTL", default_value = "30s", value_parser = humantime_or_zero)]
    pub auth_cache_ttl: Duration,
}

fn humantime_or_zero(value: &str) -> Result<Duration, String> {
    if value.trim() == "0" || value.trim() == "0s" {
        return Ok(Duration::ZERO);
    }
    duration(value)
}

/// Errors while putting the API together.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// A required value is missing.
    #[error(transparent)]
    Missing(#[from] facebook_connector_host::MissingValue),
    /// The token keys are not a valid key list.
    #[error("invalid TOKEN_ENCRYPTION_KEYS")]
    Keys(#[source] StoreError),
    /// `CORS_ALLOWED_ORIGINS` is not `*` or a list of origins.
    #[error("invalid CORS_ALLOWED_ORIGINS: {0}")]
    Cors(String),
    /// The metrics recorder could not be installed.
    #[error("cannot install the metrics recorder")]
    Metrics(#[source] metrics_exporter_prometheus::BuildError),
    /// The database could not be opened, or its schema is not this binary's.
    #[error("cannot open the database")]
    Store(#[source] StoreError),
    /// The marketplace client could not be built.
    #[error("cannot set up the marketplace client")]
    Narrative(#[source] NarrativeError),
    /// The Graph client could not be built.
    #[error("cannot set up the graph api client")]
    Graph(#[source] GraphError),
    /// The listener could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// Everything `serve` needs, checked before anything connects.
#[derive(Debug)]
pub struct ServeSettings {
    args: ServeArgs,
    keys: TokenKeyring,
    graph: GraphConfig,
    options: AppOptions,
}

impl ServeArgs {
    /// Checks the required values (a one-line error naming flag and variable) and parses the
    /// key list and the origins; nothing connects yet.
    pub fn settings(&self) -> Result<ServeSettings, ServeError> {
        const SERVE: &str = "serve";
        let s = &self.service;
        let token_keys = require(
            s.token_keys.clone(),
            "--token-keys",
            "TOKEN_ENCRYPTION_KEYS",
            SERVE,
        )?;
        let app_id = require(
            s.facebook_app_id.clone(),
            "--facebook-app-id",
            "FACEBOOK_APP_ID",
            SERVE,
        )?;
        let app_secret = require(
            s.facebook_app_secret.clone(),
            "--facebook-app-secret",
            "FACEBOOK_APP_SECRET",
            SERVE,
        )?;
        let keys = TokenKeyring::parse(&token_keys).map_err(ServeError::Keys)?;
        let cors = CorsOrigins::parse(&self.cors_allowed_origins).map_err(ServeError::Cors)?;
        let graph = GraphConfig::new(app_id, app_secret)
            .with_base_url(s.facebook_graph_url.clone())
            .with_api_version(s.facebook_api_version.clone());
        Ok(ServeSettings {
            args: self.clone(),
            keys,
            graph,
            options: AppOptions {
                request_timeout: self.request_timeout,
                cors,
            },
        })
    }
}

/// Runs `serve`; returns the process's exit status.
pub fn main(args: &ServeArgs) -> ExitCode {
    let settings = match args.settings() {
        Ok(settings) => settings,
        Err(e) => return exit::config_error(&e),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("fbc-api")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return exit::failure(&e),
    };
    runtime.block_on(async move {
        match run(settings, facebook_connector_host::shutdown::signal()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => exit::failure(&e),
        }
    })
}

/// Opens the database (checking its schema), builds the clients and serves until `shutdown`
/// resolves, then lets requests in flight finish.
pub async fn run(
    settings: ServeSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let metrics = ops::install_recorder().map_err(ServeError::Metrics)?;
    let store = Store::connect(
        &settings.args.service.database.database_url,
        &StoreOptions::default(),
    )
    .await
    .map_err(ServeError::Store)?;
    let marketplace = ProfileClient::new(
        settings.args.service.narrative_api_base_uri.clone(),
        HttpConfig::default(),
    )
    .map_err(ServeError::Narrative)?;
    let graph = GraphClient::new(settings.graph.clone()).map_err(ServeError::Graph)?;
    let service = ProfileService::new(ProfilePorts {
        marketplace: Arc::new(marketplace),
        facebook: Arc::new(graph),
        store: store.profiles(),
        cipher: Arc::new(settings.keys),
        clock: Arc::new(SystemClock),
    });
    let state = AppState {
        service,
        auth: Arc::new(AuthCache::new(settings.args.auth_cache_ttl)),
    };
    let ready: ops::ReadinessCheck = {
        let store = store.clone();
        Arc::new(move || {
            let store = store.clone();
            Box::pin(async move { store.ping().await.is_ok() })
        })
    };
    let app = router(state, &settings.options, metrics, ready);
    let addr = SocketAddr::new(settings.args.host, settings.args.port);
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(source) => {
            store.close().await;
            return Err(ServeError::Bind { addr, source });
        }
    };
    tracing::info!(addr = %addr, "api started");
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    store.close().await;
    tracing::info!("api stopped");
    served.map_err(|source| ServeError::Bind { addr, source })
}
