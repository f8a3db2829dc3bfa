//! How the worker puts the engine together from configuration: the store, the marketplace
//! client, the Graph client and the token keys behind the core's ports. `run`, the end-to-end
//! tests, the benchmark and the `demo` all build the engine through here.

use std::sync::Arc;

use facebook_connector_core::engine::{Engine, EngineConfig, Observer, Ports};
use facebook_connector_core::ports::{Clock, StatusReporter, TokenCipher};
use facebook_connector_store::{Store, StoreError, StoreOptions, TokenKeyring};
use facebook_marketing::{GraphClient, GraphConfig, GraphError};
use narrative_client::{NarrativeClient, NarrativeConfig, NarrativeError};
use secrecy::SecretString;

/// Errors while putting the worker together.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WiringError {
    /// The database could not be opened, or its schema is not this binary's.
    #[error("cannot open the database")]
    Store(#[source] StoreError),
    /// The token keys are not a valid key list.
    #[error("invalid TOKEN_ENCRYPTION_KEYS")]
    Keys(#[source] StoreError),
    /// The marketplace client could not be built.
    #[error("cannot set up the marketplace client")]
    Narrative(#[source] NarrativeError),
    /// The Graph client could not be built.
    #[error("cannot set up the graph api client")]
    Graph(#[source] GraphError),
    /// The engine refused its configuration.
    #[error("invalid worker configuration")]
    Engine(#[source] facebook_connector_core::Error),
}

/// Everything the worker needs, resolved from flags and environment.
#[derive(Clone, Debug)]
pub struct WorkerSettings {
    /// `DB_URL`.
    pub database_url: String,
    /// `TOKEN_ENCRYPTION_KEYS` (redacted in `Debug`).
    pub token_keys: SecretString,
    /// The marketplace app client.
    pub narrative: NarrativeConfig,
    /// The Graph API client.
    pub graph: GraphConfig,
    /// The engine's knobs.
    pub engine: EngineConfig,
    /// Report `audience.delivery.completed|failed` to the marketplace.
    pub report_status: bool,
}

/// The parts of a running worker.
pub struct Worker {
    /// The delivery engine.
    pub engine: Engine,
    /// The database (for readiness and closing).
    pub store: Store,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("engine", &self.engine)
            .finish_non_exhaustive()
    }
}

/// Parses the key list; the error names the problem, never key material.
pub fn keyring(keys: &SecretString) -> Result<TokenKeyring, WiringError> {
    TokenKeyring::parse(keys).map_err(WiringError::Keys)
}

/// Opens the database (checking its schema) and builds the engine.
pub async fn connect(
    settings: &WorkerSettings,
    clock: Arc<dyn Clock>,
    observer: Arc<dyn Observer>,
) -> Result<Worker, WiringError> {
    let keys = keyring(&settings.token_keys)?;
    let store = Store::connect(&settings.database_url, &StoreOptions::default())
        .await
        .map_err(WiringError::Store)?;
    let narrative =
        NarrativeClient::new(settings.narrative.clone()).map_err(WiringError::Narrative)?;
    let graph = GraphClient::new(settings.graph.clone()).map_err(WiringError::Graph)?;
    let reporter: Option<Arc<dyn StatusReporter>> = settings
        .report_status
        .then(|| Arc::new(narrative.clone()) as Arc<dyn StatusReporter>);
    let ports = ports(&store, narrative, graph, Arc::new(keys), reporter, clock);
    let engine = Engine::with_observer(ports, settings.engine.clone(), observer)
        .map_err(WiringError::Engine)?;
    Ok(Worker { engine, store })
}

/// The engine's ports on the store and the two clients.
pub fn ports(
    store: &Store,
    narrative: NarrativeClient,
    graph: GraphClient,
    cipher: Arc<dyn TokenCipher>,
    reporter: Option<Arc<dyn StatusReporter>>,
    clock: Arc<dyn Clock>,
) -> Ports {
    let narrative = Arc::new(narrative);
    Ports {
        events: narrative.clone(),
        connections: narrative.clone(),
        files: narrative,
        audiences: Arc::new(graph),
        profiles: store.profiles(),
        settings: store.settings(),
        commands: store.commands(),
        jobs: store.jobs(),
        cipher,
        reporter,
        clock,
    }
}
