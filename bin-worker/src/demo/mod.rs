//! `demo`: the whole delivery flow with no configuration and no account. The embedded SQLite
//! store in a temporary directory (or `--keep DIR`), the marketplace and the Graph API as the
//! crates' in-process fakes on real sockets, and the worker's own engine, store and clients
//! wired as `run` wires them ([`crate::wiring::ports`]); profiles are created and
//! re-authorised by the API's profile code ([`profiles`]). It seeds a scenario
//! ([`scenario`]), shows progress on stderr, prints a report on stdout and exits 0 only when
//! every delivery ended as the scenario expects ([`verdict`]).

mod data;
mod profiles;
mod progress;
mod report;
pub use report::counted;
mod scenario;
mod verdict;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use facebook_connector_core::domain::{JobStatus, QueueStats, WorkerId};
use facebook_connector_core::engine::{Engine, EngineConfig};
use facebook_connector_core::ports::{
    CommandFilter, FacebookAccounts, JobFilter, ProfileDirectory, SystemClock, TokenCipher,
};
use facebook_connector_core::profiles::{ProfilePorts, ProfileService};
use facebook_connector_host::exit;
use facebook_connector_store::{Store, StoreError, StoreOptions, TokenKeyring};
use facebook_marketing::testkit::{FakeGraph, TokenSpec};
use narrative_client::testkit::FakeMarketplace;
use narrative_client::{NarrativeClient, ProfileClient};
use tokio_util::sync::CancellationToken;

use self::progress::{DemoProgress, Revocation};
use self::verdict::{Observed, PauseObserved};

/// The database's file name in the demo's directory.
pub const DATABASE_FILE: &str = "facebook-connector.db";

/// The longest the deliveries may take before the demo gives up (the issue: under a minute).
const DEADLINE: Duration = Duration::from_secs(60);
/// How often the demo looks at the store while the engine runs.
const TICK: Duration = Duration::from_millis(25);

/// The demo's default log filter: its output is the progress and the report; logs only say
/// what went wrong unexpectedly (`RUST_LOG` overrides).
pub const LOG_FILTER: &str = "error";

/// `demo`'s flags.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Keep the database in DIR (created if missing; it must not hold one already) to look at
    /// it afterwards with `deliveries --database-url sqlite://DIR/facebook-connector.db`
    #[arg(long, value_name = "DIR")]
    pub keep: Option<PathBuf>,
}

/// Why the demo could not run (a verdict that differs is not an error: it is the report).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DemoError {
    /// The working directory or a seeded file could not be written.
    #[error("cannot prepare the demo's files")]
    Io(#[from] std::io::Error),
    /// `--keep DIR` already holds a database.
    #[error(
        "{} already holds a database: choose an empty directory, or remove it",
        .0.display()
    )]
    KeepNotEmpty(PathBuf),
    /// The database could not be opened or migrated.
    #[error("cannot open the demo's database")]
    Store(#[source] StoreError),
    /// A client could not be built.
    #[error("cannot set up the demo's clients")]
    Client(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The engine refused its configuration.
    #[error("cannot set up the engine")]
    Engine(#[source] facebook_connector_core::Error),
    /// The API's profile code refused a profile of the scenario.
    #[error("the profile code refused the demo's profile")]
    Profile(#[source] facebook_connector_core::profiles::ProfileError),
    /// A profile the demo created is not in the store.
    #[error("profile {0} is not in the store")]
    MissingProfile(facebook_connector_core::domain::ProfileId),
    /// The scenario could not be seeded.
    #[error("cannot seed the scenario: {0}")]
    Seed(String),
    /// The outcome could not be read back.
    #[error("cannot read the outcome from the store")]
    Outcome(#[source] facebook_connector_core::Error),
}

/// Runs `demo`; its exit status is the scenario's verdict.
pub fn main(args: &DemoArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("fbc-demo")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return exit::failure(&e),
    };
    match runtime.block_on(run(args.keep.as_deref())) {
        Ok(report) => {
            print!("{}", report.text);
            if report.as_expected {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => exit::failure(&e),
    }
}

/// The report and whether the scenario ended as expected.
#[derive(Debug)]
pub struct Outcome {
    /// The report's text.
    pub text: String,
    /// No difference from the scenario.
    pub as_expected: bool,
}

/// Where the demo works: a temporary directory, or the one `--keep` names.
enum WorkDir {
    Temporary(tempfile::TempDir),
    Kept(PathBuf),
}

impl WorkDir {
    fn open(keep: Option<&Path>) -> Result<WorkDir, DemoError> {
        let Some(dir) = keep else {
            return Ok(WorkDir::Temporary(
                tempfile::Builder::new()
                    .prefix("facebook-connector-demo-")
                    .tempdir()?,
            ));
        };
        std::fs::create_dir_all(dir)?;
        let dir = std::fs::canonicalize(dir)?;
        if dir.join(DATABASE_FILE).exists() {
            return Err(DemoError::KeepNotEmpty(dir));
        }
        Ok(WorkDir::Kept(dir))
    }

    fn path(&self) -> &Path {
        match self {
            WorkDir::Temporary(t) => t.path(),
            WorkDir::Kept(p) => p,
        }
    }

    fn kept(&self) -> Option<&Path> {
        match self {
            WorkDir::Temporary(_) => None,
            WorkDir::Kept(p) => Some(p),
        }
    }
}

/// The demo's engine knobs: operations.md's defaults but smaller batches (several per file)
/// and quick polls (the demo has nothing to wait for).
fn engine_config(dir: &Path) -> EngineConfig {
    let mut config = EngineConfig::new(WorkerId(format!("demo-{}", std::process::id())));
    config.batch_size = scenario::BATCH_SIZE;
    config.uploads_in_flight = scenario::UPLOADS_IN_FLIGHT;
    config.poll_interval = Duration::from_millis(50);
    config.retry_initial_backoff = Duration::from_millis(200);
    config.retry_max_backoff = Duration::from_secs(2);
    config.throttle_backoff = Duration::from_secs(1);
    config.fatal_backoff = Duration::from_secs(2);
    config.work_dir = Some(dir.join("downloads"));
    config
}

/// Runs the scenario and writes the report.
pub async fn run(keep: Option<&Path>) -> Result<Outcome, DemoError> {
    let started = Instant::now();
    let dir = WorkDir::open(keep)?;
    std::fs::create_dir_all(dir.path().join("downloads"))?;
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join(DATABASE_FILE).display()
    );
    let store = Store::connect(
        &url,
        &StoreOptions {
            migrate: true,
            ..StoreOptions::default()
        },
    )
    .await
    .map_err(DemoError::Store)?;
    let outcome = run_on(&store, &dir, started).await;
    store.close().await;
    outcome
}

async fn run_on(store: &Store, dir: &WorkDir, started: Instant) -> Result<Outcome, DemoError> {
    let keys = TokenKeyring::generate_key("demo").map_err(DemoError::Store)?;
    let cipher: Arc<dyn TokenCipher> =
        Arc::new(TokenKeyring::parse(&keys).map_err(DemoError::Store)?);
    let market = FakeMarketplace::start().await?;
    let graph = FakeGraph::start().await?;
    let client_error = |e: Box<dyn std::error::Error + Send + Sync>| DemoError::Client(e);
    let narrative =
        NarrativeClient::new(market.client_config()).map_err(|e| client_error(e.into()))?;
    let customers = ProfileClient::new(market.base_url(), narrative_client::HttpConfig::fast())
        .map_err(|e| client_error(e.into()))?;
    // the API's profile code, wired as bin-api wires it
    let service = ProfileService::new(ProfilePorts {
        marketplace: Arc::new(customers) as Arc<dyn ProfileDirectory>,
        facebook: Arc::new(graph.client()) as Arc<dyn FacebookAccounts>,
        store: store.profiles(),
        cipher: cipher.clone(),
        clock: Arc::new(SystemClock),
    });
    let seeded = scenario::seed(&market, &graph, &service, dir.path()).await?;
    let seeding = started.elapsed();

    // the token Facebook will revoke is the one the profile holds (after the exchange)
    let stored = store
        .profiles()
        .get_profile(seeded.revoked.id)
        .await
        .map_err(DemoError::Outcome)?
        .ok_or(DemoError::MissingProfile(seeded.revoked.id))?;
    let held = cipher
        .decrypt(seeded.revoked.id, &stored.token)
        .map_err(DemoError::Outcome)?;
    let graph = Arc::new(graph);
    let revocation = {
        let graph = graph.clone();
        Revocation {
            profile: seeded.revoked.id,
            profile_name: seeded.revoked.name.clone(),
            after_batches: seeded.revoke_after_batches,
            revoke: Box::new(move || graph.invalidate_token(&held)),
        }
    };
    let progress = Arc::new(DemoProgress::new(
        seeded.members,
        seeded.files,
        Some(revocation),
    ));
    progress.say(
        &format!(
            "seeded {} deliveries: {} files, {} records, for {} profiles",
            seeded.expectations.deliveries.len(),
            seeded.files,
            report::thousands(seeded.records),
            seeded.profiles.len()
        ),
        false,
    );

    let ports = crate::wiring::ports(
        store,
        narrative,
        graph.client(),
        cipher.clone(),
        None,
        Arc::new(SystemClock),
    );
    let engine = Engine::with_observer(ports, engine_config(dir.path()), progress.clone())
        .map_err(DemoError::Engine)?;
    let delivery_started = Instant::now();
    let shutdown = CancellationToken::new();
    let running = {
        let engine = engine.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move { engine.run(shutdown).await })
    };
    let watched = watch(store, &market, &graph, &service, &seeded, &progress).await;
    let delivery = delivery_started.elapsed();
    shutdown.cancel();
    let _ = running.await;
    progress.finish();
    let (mut pause, timed_out) = watched?;
    let revocation = progress.revocation_seen();
    pause.revoked_after = revocation.revoked_after;
    pause.pause_reasons = revocation.pauses;

    let seen = observe(store, &graph, &seeded, pause, timed_out).await?;
    let differences = verdict::differences(&seeded.expectations, &seen);
    let moments = progress.moments();
    let (_, batches) = progress.acknowledged();
    let text = report::Report {
        profiles: &seeded.profiles,
        expect: &seeded.expectations,
        seen: &seen,
        moments: &moments,
        differences: &differences,
        seeding,
        delivery,
        batches,
        kept: dir.kept(),
    }
    .render();
    Ok(Outcome {
        text,
        as_expected: differences.is_empty(),
    })
}

/// Waits until every job is finished, re-authorising the revoked profile once its job paused
/// (as the customer would, through the API). Returns what it saw of the pause, and the open
/// jobs if the deadline passed first.
async fn watch(
    store: &Store,
    market: &FakeMarketplace,
    graph: &FakeGraph,
    service: &ProfileService,
    seeded: &scenario::Seeded,
    progress: &DemoProgress,
) -> Result<(PauseObserved, Option<QueueStats>), DemoError> {
    let revoked = &seeded.revoked;
    let mut pause = PauseObserved::default();
    let deadline = Instant::now() + DEADLINE;
    loop {
        tokio::time::sleep(TICK).await;
        if !pause.reauthorized && !progress.revocation_seen().pauses.is_empty() {
            let profile = store
                .profiles()
                .get_profile(revoked.id)
                .await
                .map_err(DemoError::Outcome)?
                .ok_or(DemoError::MissingProfile(revoked.id))?;
            let paused = store
                .jobs()
                .list_jobs(&JobFilter {
                    profile_id: Some(revoked.id),
                    status: Some(JobStatus::Paused),
                    limit: 1000,
                    ..JobFilter::default()
                })
                .await
                .map_err(DemoError::Outcome)?
                .len() as u64;
            let state = profile.delivery_state.as_str();
            pause.state_when_paused = Some(state.to_owned());
            pause.paused_jobs = paused;
            progress.say(
                &format!(
                    "{} is {state} with {paused} job{} paused; the customer logs in to Facebook again",
                    revoked.name,
                    if paused == 1 { "" } else { "s" }
                ),
                true,
            );
            let fresh = graph.issue_token(&revoked.user, TokenSpec::default());
            let done = profiles::reauthorize(service, &revoked.customer, revoked.id, fresh)
                .await
                .map_err(DemoError::Profile)?;
            pause.reauthorized = true;
            pause.resumed_jobs = done.resumed_jobs;
            progress.say(
                &format!(
                    "re-authorised {} through POST /profiles/{{id}}/reauthorize's code: {} job{} resumed",
                    revoked.name,
                    done.resumed_jobs,
                    if done.resumed_jobs == 1 { "" } else { "s" }
                ),
                true,
            );
        }
        // the cursor before the stats: an event's jobs are recorded with the cursor in one
        // transaction, so a cursor at the end means the stats read next count them all
        let cursor = store
            .commands()
            .cursor()
            .await
            .map_err(DemoError::Outcome)?;
        let stats = store.jobs().stats().await.map_err(DemoError::Outcome)?;
        let caught_up = match (cursor, market.last_revision()) {
            (_, None) => true,
            (Some(c), Some(last)) => c >= last,
            (None, Some(_)) => false,
        };
        if caught_up && stats.queued == 0 && stats.running == 0 && stats.paused == 0 {
            return Ok((pause, None));
        }
        if Instant::now() > deadline {
            return Ok((pause, Some(stats)));
        }
    }
}

/// Reads back what the store recorded and what the fake Graph API received.
async fn observe(
    store: &Store,
    graph: &FakeGraph,
    seeded: &scenario::Seeded,
    mut pause: PauseObserved,
    timed_out: Option<QueueStats>,
) -> Result<Observed, DemoError> {
    let commands = store
        .commands()
        .list_commands(&CommandFilter {
            limit: 1000,
            ..CommandFilter::default()
        })
        .await
        .map_err(DemoError::Outcome)?;
    let mut settings = std::collections::BTreeMap::new();
    let targets: BTreeSet<_> = seeded
        .expectations
        .deliveries
        .iter()
        .map(|d| d.settings_id)
        .collect();
    for target in targets {
        if let Some(s) = store
            .settings()
            .get_settings(target)
            .await
            .map_err(DemoError::Outcome)?
        {
            settings.insert(target, s.audience_id);
        }
    }
    let mut audiences = Vec::new();
    let mut sessions = std::collections::BTreeMap::new();
    for profile in &seeded.profiles {
        let Ok(account) = facebook_connector_core::domain::AdAccountId::parse(&profile.ad_account)
        else {
            continue;
        };
        audiences.extend(graph.audiences_in(&account));
        for command in commands
            .iter()
            .filter(|c| c.settings_id.profile_id() == profile.id)
        {
            for file in &command.files {
                if let Some(session) = graph.session(&account, file.job_id.upload_session_id(0)) {
                    sessions.insert(file.job_id, session);
                }
            }
        }
    }
    pause.final_state = store
        .profiles()
        .get_profile(seeded.revoked.id)
        .await
        .map_err(DemoError::Outcome)?
        .map(|p| p.delivery_state.as_str().to_owned());
    Ok(Observed {
        commands,
        settings,
        audiences,
        sessions,
        pause,
        timed_out,
    })
}
