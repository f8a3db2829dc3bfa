//! A world for end-to-end tests of the engine: the fake marketplace and the fake Graph API on
//! real sockets, a real database (a fresh PostgreSQL database or an SQLite file), profiles
//! with encrypted tokens, and engines wired exactly as `run` wires them.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use facebook_connector_core::domain::{
    AdAccount, AdAccountId, AudienceId, Business, BusinessId, CompanyId, DeliveryState,
    FacebookUser, FacebookUserId, JobStatus, ProfileId, RecordFormat, StoredProfile, TokenMeta,
    WorkerId,
};
use facebook_connector_core::engine::{Engine, EngineConfig, JobReport, Observer};
use facebook_connector_core::normalize::ParserConfig;
use facebook_connector_core::ports::{JobFilter, TokenCipher, TokioClock};
use facebook_connector_core::source::{RecordReader, RecordSource};
use facebook_connector_store::TokenKeyring;
use facebook_connector_store::testkit::TestDb;
use facebook_connector_worker::wiring;
use facebook_marketing::testkit::{AdAccountSpec, FakeGraph, TokenSpec};
use narrative_client::NarrativeClient;
use narrative_client::testkit::FakeMarketplace;
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

/// Which database a test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Db {
    Postgres,
    Sqlite,
}

/// Generates one test per backend for each `async fn name(db: Db)` of the including file.
#[macro_export]
#[allow(clippy::crate_in_macro_def)] // the including test crate's `common` module
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(crate::common::Db::Postgres).await;
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(crate::common::Db::Sqlite).await;
                }
            )*
        }
    };
}

/// A member as key → final value.
pub type Member = BTreeMap<String, String>;

/// A customer's profile as the test set it up.
#[derive(Clone, Debug)]
pub struct TestProfile {
    pub id: ProfileId,
    pub user: FacebookUserId,
    pub token: SecretString,
    pub ad_account: AdAccountId,
}

/// The fakes, the database and the keys.
pub struct World {
    pub market: FakeMarketplace,
    pub graph: FakeGraph,
    pub db: TestDb,
    pub keyring: Arc<TokenKeyring>,
}

/// Collects the engine's job reports.
#[derive(Default)]
pub struct Reports(pub std::sync::Mutex<Vec<JobReport>>);

impl Observer for Reports {
    fn job_finished(&self, report: &JobReport) {
        self.0.lock().unwrap().push(report.clone());
    }
}

impl World {
    pub async fn new(db: Db) -> World {
        // RUST_LOG=facebook_connector_core=debug shows what the engine did
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let db = match db {
            Db::Postgres => TestDb::postgres().await,
            Db::Sqlite => TestDb::sqlite().await,
        };
        let keys = TokenKeyring::generate_key("k1").unwrap();
        World {
            market: FakeMarketplace::start().await.unwrap(),
            graph: FakeGraph::start().await.unwrap(),
            db,
            keyring: Arc::new(TokenKeyring::parse(&keys).unwrap()),
        }
    }

    /// A Facebook user with a long-lived token and a usable ad account, and the connector's
    /// profile for it (token encrypted), in `company`.
    pub async fn profile(&self, company: i64) -> TestProfile {
        let user = self.graph.add_user(&format!("user of {company}"));
        let token = self.graph.issue_token(
            &user,
            TokenSpec {
                long_lived: true,
                ..TokenSpec::default()
            },
        );
        let ad_account = self.graph.add_ad_account(&user, AdAccountSpec::default());
        let id = ProfileId(uuid::Uuid::new_v4());
        let now = time::OffsetDateTime::now_utc();
        let profile = StoredProfile {
            id,
            company_id: CompanyId(company),
            ad_account: AdAccount {
                id: ad_account.clone(),
                name: "Fake ad account".into(),
                business: Some(Business {
                    id: BusinessId::new("700800900").unwrap(),
                    name: "Fake business".into(),
                }),
                user_accepted_custom_audience_tos: true,
            },
            audience: None,
            token: self.keyring.encrypt(id, &token).unwrap(),
            token_meta: TokenMeta::default(),
            facebook_user: FacebookUser {
                id: user.clone(),
                name: "user".into(),
            },
            delivery_state: DeliveryState::Ok,
            archived_at: None,
            created_at: now,
            updated_at: now,
        };
        self.db
            .store
            .profiles()
            .insert_profile(&profile)
            .await
            .unwrap();
        TestProfile {
            id,
            user,
            token,
            ad_account,
        }
    }

    /// Test timings: small batches, fast polls and retries.
    pub fn config(&self, name: &str) -> EngineConfig {
        let mut config = EngineConfig::new(WorkerId(name.to_owned()));
        config.batch_size = 100;
        config.poll_interval = Duration::from_millis(50);
        config.lease = Duration::from_secs(5);
        config.retry_initial_backoff = Duration::from_millis(50);
        config.retry_max_backoff = Duration::from_millis(200);
        config.throttle_backoff = Duration::from_millis(200);
        config.fatal_backoff = Duration::from_millis(200);
        config.max_attempts = 3;
        config
    }

    /// An engine wired as `run` wires it, against the fakes and the test database.
    pub fn engine(&self, config: EngineConfig, observer: Arc<dyn Observer>) -> Engine {
        let narrative = NarrativeClient::new(self.market.client_config()).unwrap();
        let ports = wiring::ports(
            &self.db.store,
            narrative,
            self.graph.client(),
            self.keyring.clone(),
            None,
            Arc::new(TokioClock::new()),
        );
        Engine::with_observer(ports, config, observer).unwrap()
    }

    /// Runs `engine` until every job is finished (or `timeout`), then shuts it down.
    pub async fn run_until_idle(&self, engine: &Engine, timeout: Duration) {
        let shutdown = CancellationToken::new();
        let running = {
            let engine = engine.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move { engine.run(shutdown).await })
        };
        let done = self.wait_idle(timeout).await;
        shutdown.cancel();
        running.await.unwrap();
        assert!(
            done,
            "jobs still open after {timeout:?}: {:?}",
            self.stats().await
        );
    }

    /// Waits until the feed is caught up and no job is queued or running.
    pub async fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // the cursor first: an event's jobs are recorded with the cursor in one
            // transaction, so once the cursor is at the end, the stats read next count them
            // (the other order could read empty stats, then a cursor that moved in between)
            let feed_done = self.cursor_at_feed_end().await;
            let stats = self.stats().await;
            if feed_done && stats.queued == 0 && stats.running == 0 {
                return true;
            }
            if tokio::time::Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn cursor_at_feed_end(&self) -> bool {
        let cursor = self.db.store.commands().cursor().await.unwrap();
        let last = self.market.last_revision();
        match (cursor, last) {
            (_, None) => true,
            (Some(c), Some(l)) => c >= l,
            (None, Some(_)) => false,
        }
    }

    pub async fn stats(&self) -> facebook_connector_core::domain::QueueStats {
        self.db.store.jobs().stats().await.unwrap()
    }

    /// Every job of the database.
    pub async fn jobs(&self) -> Vec<facebook_connector_core::domain::Job> {
        self.db
            .store
            .jobs()
            .list_jobs(&JobFilter {
                limit: 10_000,
                ..JobFilter::default()
            })
            .await
            .unwrap()
    }

    pub async fn jobs_in(&self, status: JobStatus) -> usize {
        self.jobs()
            .await
            .iter()
            .filter(|j| j.status == status)
            .count()
    }

    /// The members an audience holds, each as key → value, sorted (a multiset).
    pub fn audience_members(&self, audience: &AudienceId) -> Vec<BTreeMap<String, String>> {
        let fake = self.graph.audience(audience).expect("audience exists");
        let mut members: Vec<BTreeMap<String, String>> = fake
            .batches
            .iter()
            .flat_map(|batch| {
                batch.rows.iter().map(|row| {
                    batch
                        .schema
                        .iter()
                        .zip(row)
                        .filter(|(_, v)| !v.is_empty())
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect()
                })
            })
            .collect();
        members.sort();
        members
    }
}

/// The members a file should become, each as key → final value, sorted: computed with the
/// parser on its own (the parser itself is checked against the spec's reference elsewhere).
pub fn expected_members(
    bytes: &[u8],
    format: RecordFormat,
    parquet: bool,
) -> Vec<BTreeMap<String, String>> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir
        .path()
        .join(if parquet { "f.parquet" } else { "f.jsonl" });
    std::fs::write(&path, bytes).unwrap();
    let mut reader = RecordReader::open(&path, format, ParserConfig::default()).unwrap();
    let mut members = Vec::new();
    while let Some(record) = reader.next_record() {
        let record = record.unwrap();
        if let Some(member) = &record.member
            && member.is_matchable()
        {
            let value: serde_json::Value = {
                let mut line = String::new();
                member.write_json(&mut line);
                serde_json::from_str(&line).unwrap()
            };
            let map: BTreeMap<String, String> = value
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect();
            members.push(map);
        }
    }
    let _ = reader.stats();
    members.sort();
    members
}

/// `n` generated records as legacy JSON lines.
pub fn legacy_lines(seed: u64, n: usize) -> Vec<u8> {
    facebook_connector_testdata::json_lines(&facebook_connector_testdata::records(seed, n), true)
}

/// `n` generated records as a Parquet file.
pub fn parquet_file(seed: u64, n: usize) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("snapshot.parquet");
    facebook_connector_testdata::write_parquet(
        &facebook_connector_testdata::records(seed, n),
        &path,
        256,
        parquet::basic::Compression::SNAPPY,
    )
    .unwrap();
    std::fs::read(path).unwrap()
}
