//! The delivery engine end to end: 1,000,000 records as 10 files (JSON lines, and again as
//! Parquet) through the real worker (`run`, as its own process) to the fake Graph API answering
//! each upload after 50 ms, on SQLite and on PostgreSQL; once with the defaults (4 jobs,
//! 2 uploads in flight, read-ahead) and once one thing at a time (1 job, 1 upload in flight,
//! no read-ahead: the original connector's design).
//!
//! `cargo bench -p facebook-connector-benches --bench engine` (one configuration: append a
//! filter, e.g. `-- json/sqlite/defaults`). Criterion reports records/s (`elem/s`); after each
//! configuration the harness prints the worker's peak RSS, its CPU seconds per million
//! records, and checks that every file took exactly ⌈members / 10,000⌉ upload calls.
//! PostgreSQL is expected on `DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`).
//! `MALLOC_ARENA_MAX`, when set, is passed on to the worker (the README's deployment advice).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use facebook_connector_benches::{json_lines, records, write_parquet};
use facebook_connector_core::domain::{
    AdAccount, Business, BusinessId, CompanyId, DatasetId, DeliveryState, FacebookUser, JobStatus,
    ProfileId, Revision, StoredProfile, TokenMeta,
};
use facebook_connector_core::ports::{JobFilter, TokenCipher};
use facebook_connector_store::TokenKeyring;
use facebook_connector_store::testkit::TestDb;
use facebook_marketing::testkit::{
    APP_ID, APP_SECRET, AdAccountSpec, Endpoint, FakeGraph, TokenSpec,
};
use narrative_client::testkit::{FakeMarketplace, LegacyDelivery, Snapshot};
use parquet::basic::Compression;
use secrecy::{ExposeSecret, SecretString};

const FILES: usize = 10;
const RECORDS_PER_FILE: usize = 100_000;
const UPLOAD_LATENCY: Duration = Duration::from_millis(50);
const KEYS: &str = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Json,
    Parquet,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// 4 jobs, 2 uploads in flight, read-ahead.
    Defaults,
    /// 1 job, 1 upload in flight, no read-ahead.
    Sequential,
}

/// The fakes, the database, the files and the worker process of one configuration.
struct Harness {
    market: FakeMarketplace,
    graph: FakeGraph,
    db: TestDb,
    profile: ProfileId,
    ad_account: facebook_connector_core::domain::AdAccountId,
    connection: facebook_connector_core::domain::ConnectionId,
    dataset: DatasetId,
    files: Vec<bytes::Bytes>,
    format: Format,
    worker: Child,
    clock_ticks: f64,
    cpu_seconds: f64,
    records: u64,
    round: u64,
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32, ticks: f64) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // fields after the command name, which is in parentheses and may contain spaces
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11).and_then(|f| f.parse().ok()).unwrap_or(0.0);
    let stime: f64 = fields.get(12).and_then(|f| f.parse().ok()).unwrap_or(0.0);
    (utime + stime) / ticks
}

/// Peak resident set size of a process, in MiB.
fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn files(format: Format) -> Vec<bytes::Bytes> {
    let dir = tempfile::tempdir().unwrap();
    (0..FILES)
        .map(|i| {
            let generated = records(1_000 + i as u64, RECORDS_PER_FILE);
            match format {
                Format::Json => json_lines(&generated, true).into(),
                Format::Parquet => {
                    let path = dir.path().join(format!("{i}.parquet"));
                    write_parquet(&generated, &path, 8_192, Compression::SNAPPY).unwrap();
                    std::fs::read(path).unwrap().into()
                }
            }
        })
        .collect()
}

impl Harness {
    async fn start(
        format: Format,
        backend: Backend,
        mode: Mode,
        files: Vec<bytes::Bytes>,
    ) -> Harness {
        let db = match backend {
            Backend::Sqlite => TestDb::sqlite().await,
            Backend::Postgres => TestDb::postgres().await,
        };
        let market = FakeMarketplace::start().await.unwrap();
        let graph = FakeGraph::start().await.unwrap();
        graph.set_latency_for(Endpoint::AddMembers, UPLOAD_LATENCY);
        // the fake checks every row as Facebook does but keeps only the counts: what is
        // measured is the worker, not the fake storing ten million cells
        graph.keep_rows(false);
        let keyring = TokenKeyring::parse(&SecretString::from(KEYS.to_owned())).unwrap();
        let user = graph.add_user("bench");
        let token = graph.issue_token(
            &user,
            TokenSpec {
                long_lived: true,
                ..TokenSpec::default()
            },
        );
        let ad_account = graph.add_ad_account(&user, AdAccountSpec::default());
        let profile = ProfileId(uuid::Uuid::new_v4());
        let now = time::OffsetDateTime::now_utc();
        db.store
            .profiles()
            .insert_profile(&StoredProfile {
                id: profile,
                company_id: CompanyId(1),
                ad_account: AdAccount {
                    id: ad_account.clone(),
                    name: "bench".into(),
                    business: Some(Business {
                        id: BusinessId::new("700800900").unwrap(),
                        name: "bench".into(),
                    }),
                    user_accepted_custom_audience_tos: true,
                },
                audience: None,
                token: keyring.encrypt(profile, &token).unwrap(),
                token_meta: TokenMeta::default(),
                facebook_user: FacebookUser {
                    id: user,
                    name: "bench".into(),
                },
                delivery_state: DeliveryState::Ok,
                archived_at: None,
                created_at: now,
                updated_at: now,
            })
            .await
            .unwrap();
        let dataset = DatasetId(99);
        let connection = facebook_connector_core::domain::ConnectionId(uuid::Uuid::new_v4());
        market.add_connection_json(serde_json::json!({
            "id": connection.to_string(),
            "dataset_id": dataset.0,
            "profile_id": profile.to_string(),
            "quick_settings": {},
            "status": "active",
        }));
        let (concurrency, in_flight, read_ahead) = match mode {
            Mode::Defaults => ("4", "2", "true"),
            Mode::Sequential => ("1", "1", "false"),
        };
        let worker = Command::new(env!("CARGO_BIN_EXE_fbc-worker"))
            .arg("run")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DB_URL", &db.url)
            .env("TOKEN_ENCRYPTION_KEYS", KEYS)
            .env("NARRATIVE_API_BASE_URI", market.base_url().as_str())
            .env("NARRATIVE_API_CLIENT_ID", market.client_id())
            .env(
                "NARRATIVE_API_CLIENT_SECRET",
                market.client_secret().expose_secret(),
            )
            .env("FACEBOOK_APP_ID", APP_ID)
            .env("FACEBOOK_APP_SECRET", APP_SECRET)
            .env("FACEBOOK_GRAPH_URL", graph.base_url().as_str())
            .env("METRICS_ADDR", format!("127.0.0.1:{}", free_port()))
            .env("POLL_INTERVAL", "50ms")
            .env("WORKER_CONCURRENCY", concurrency)
            .env("UPLOADS_IN_FLIGHT", in_flight)
            .env("READ_AHEAD", read_ahead)
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "warn")
            // the README's deployment advice; passed on only when the benchmark run sets it
            .envs(std::env::var("MALLOC_ARENA_MAX").map(|v| ("MALLOC_ARENA_MAX", v)))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        Harness {
            market,
            graph,
            db,
            profile,
            ad_account,
            connection,
            dataset,
            files,
            format,
            worker,
            clock_ticks: clock_ticks(),
            cpu_seconds: 0.0,
            records: 0,
            round: 0,
        }
    }

    /// Adds the 10 files as one event and waits until the worker delivered them all; returns
    /// the time from the event to the last delivery.
    async fn deliver_once(&mut self) -> Duration {
        self.round += 1;
        let cpu_before = cpu_seconds(self.worker.id(), self.clock_ticks);
        let started = Instant::now();
        let revision = match self.format {
            Format::Json => {
                let mut delivery = LegacyDelivery::new(
                    self.profile,
                    uuid::Uuid::new_v4().into(),
                    uuid::Uuid::new_v4().into(),
                );
                for (i, file) in self.files.iter().enumerate() {
                    delivery = delivery.file(format!("part-{i:04}.jsonl"), file.clone());
                }
                self.market.add_legacy_delivery(delivery)
            }
            Format::Parquet => {
                let snapshot_id = format!("snap-{}", self.round);
                let mut snapshot = Snapshot::new(self.dataset, snapshot_id.clone());
                for (i, file) in self.files.iter().enumerate() {
                    snapshot = snapshot.file(format!("part-{i:04}.parquet"), file.clone());
                }
                self.market.add_snapshot(snapshot);
                self.market
                    .add_snapshot_appended(self.connection, &snapshot_id)
            }
        };
        self.wait_delivered(revision).await;
        let elapsed = started.elapsed();
        self.cpu_seconds += cpu_seconds(self.worker.id(), self.clock_ticks) - cpu_before;
        self.records += (FILES * RECORDS_PER_FILE) as u64;
        self.check_upload_calls(revision).await;
        elapsed
    }

    /// The jobs of a revision (one per file).
    async fn jobs(&self, revision: Revision) -> Vec<facebook_connector_core::domain::Job> {
        self.db
            .store
            .jobs()
            .list_jobs(&JobFilter {
                revision: Some(revision),
                limit: 100,
                ..JobFilter::default()
            })
            .await
            .unwrap()
    }

    async fn wait_delivered(&self, revision: Revision) {
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            let jobs = self.jobs(revision).await;
            if jobs.len() == FILES && jobs.iter().all(|j| j.status == JobStatus::Delivered) {
                return;
            }
            assert!(
                !jobs.iter().any(|j| j.status == JobStatus::Failed),
                "a file failed: {jobs:?}"
            );
            assert!(Instant::now() < deadline, "not delivered in time");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Exactly ⌈members / 10,000⌉ upload calls per file: no half-empty batch but the last.
    async fn check_upload_calls(&self, revision: Revision) {
        let jobs = self.jobs(revision).await;
        for job in jobs {
            let members = job.checkpoint.map_or(0, |c| c.counters.members_sent);
            let session = self
                .graph
                .session(&self.ad_account, job.id.upload_session_id(0))
                .expect("every file has its session");
            assert_eq!(
                session.upload_calls as u64,
                members.div_ceil(10_000),
                "upload calls of {}",
                job.file.file()
            );
        }
    }

    fn stop(mut self, label: &str) {
        let rss = peak_rss_mib(self.worker.id());
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.worker.id().to_string())
            .status();
        let _ = self.worker.wait();
        let per_million = self.cpu_seconds / (self.records as f64 / 1e6).max(1e-9);
        println!(
            "{label}: worker peak RSS {rss:.0} MiB, {per_million:.2} CPU s per million records \
             ({} records over {} rounds), upload calls per file = ceil(members / 10000): ok",
            self.records, self.round
        );
    }
}

/// The worker never outlives the harness, even when a check panics.
impl Drop for Harness {
    fn drop(&mut self) {
        let _ = self.worker.kill();
        let _ = self.worker.wait();
    }
}

fn engine(c: &mut Criterion) {
    let runtime = Arc::new(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap(),
    );
    for format in [Format::Json, Format::Parquet] {
        let generated = files(format);
        for backend in [Backend::Sqlite, Backend::Postgres] {
            for mode in [Mode::Defaults, Mode::Sequential] {
                let label = format!(
                    "{}/{}/{}",
                    match format {
                        Format::Json => "json",
                        Format::Parquet => "parquet",
                    },
                    match backend {
                        Backend::Sqlite => "sqlite",
                        Backend::Postgres => "postgres",
                    },
                    match mode {
                        Mode::Defaults => "defaults",
                        Mode::Sequential => "sequential",
                    }
                );
                let mut group = c.benchmark_group("engine");
                group.throughput(Throughput::Elements((FILES * RECORDS_PER_FILE) as u64));
                group.sample_size(10);
                group.warm_up_time(Duration::from_secs(1));
                group.measurement_time(Duration::from_secs(match mode {
                    Mode::Defaults => 20,
                    Mode::Sequential => 60,
                }));
                // criterion skips filtered-out benchmarks without calling the closure: the
                // worker is only started for the configurations that run
                let mut harness: Option<Harness> = None;
                group.bench_function(&label, |b| {
                    let h = harness.get_or_insert_with(|| {
                        runtime.block_on(Harness::start(format, backend, mode, generated.clone()))
                    });
                    b.iter_custom(|iters| {
                        let mut total = Duration::ZERO;
                        for _ in 0..iters {
                            total += runtime.block_on(h.deliver_once());
                        }
                        total
                    });
                });
                group.finish();
                if let Some(h) = harness {
                    h.stop(&label);
                }
            }
        }
    }
}

criterion_group!(benches, engine);
criterion_main!(benches);
