//! Embedding the delivery engine in another connector, with its own sink: the events come
//! from a local directory (one subscription delivery of every `*.jsonl` file in it), and the
//! "audience" is standard output — one JSON line per upload batch with its session fields.
//! The queue, settings and checkpoints are the real store on an SQLite file; the batching,
//! session rules, retries and receipts are the engine's own.
//!
//! ```sh
//! cargo run -p facebook-connector-examples --bin embed-engine -- samples
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::bail;
use async_trait::async_trait;
use facebook_connector_core::domain::{
    AdAccount, AdAccountId, Audience, AudienceId, Business, BusinessId, CompanyId, Connection,
    ConnectionId, DatasetId, DeliveryEvent, DeliveryState, EventEnvelope, FacebookUser,
    FacebookUserId, FileName, FileRef, ProfileId, QuickSettings, Received, Revision, SnapshotId,
    StoredProfile, SubscriptionId, TokenMeta, TransactionBatchId, WorkerId,
};
use facebook_connector_core::engine::{Engine, EngineConfig, JobEnd, Ports};
use facebook_connector_core::payload::Payload;
use facebook_connector_core::ports::{
    AudienceSink, ConnectionDirectory, DeliveryFiles, Download, EventPage, EventSource,
    SystemClock, TokenCipher, UploadOutcome, UploadSession, UploadTarget,
};
use facebook_connector_store::{Store, StoreOptions, TokenKeyring};
use secrecy::SecretString;
use time::OffsetDateTime;
use uuid::Uuid;

/// One delivery event with every JSON-lines file of a directory.
struct LocalFeed {
    event: EventEnvelope,
}

#[async_trait]
impl EventSource for LocalFeed {
    async fn events_after(
        &self,
        after: Option<Revision>,
        _max: u32,
    ) -> facebook_connector_core::Result<EventPage> {
        let events = if after.is_some_and(|a| a >= self.event.revision) {
            Vec::new()
        } else {
            vec![self.event.clone()]
        };
        Ok(EventPage {
            events,
            next_revision: None,
        })
    }
}

/// No dataset connections in this connector.
struct NoConnections;

#[async_trait]
impl ConnectionDirectory for NoConnections {
    async fn connection(
        &self,
        _id: ConnectionId,
    ) -> facebook_connector_core::Result<Option<Connection>> {
        Ok(None)
    }
}

/// Files from the local directory.
struct LocalFiles {
    dir: PathBuf,
}

impl LocalFiles {
    fn names(&self) -> std::io::Result<Vec<FileName>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let name = entry?.file_name().to_string_lossy().into_owned();
            if name.ends_with(".jsonl")
                && let Ok(file) = FileName::new(name)
            {
                names.push(file);
            }
        }
        names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        Ok(names)
    }
}

#[async_trait]
impl DeliveryFiles for LocalFiles {
    async fn legacy_files(
        &self,
        _revision: Revision,
    ) -> facebook_connector_core::Result<Vec<FileName>> {
        self.names()
            .map_err(facebook_connector_core::Error::transient)
    }

    async fn snapshot_files(
        &self,
        _dataset: DatasetId,
        _snapshot: &SnapshotId,
    ) -> facebook_connector_core::Result<Vec<FileName>> {
        Ok(Vec::new())
    }

    async fn files_before(
        &self,
        _dataset: DatasetId,
        _until: OffsetDateTime,
    ) -> facebook_connector_core::Result<Vec<(SnapshotId, FileName)>> {
        Ok(Vec::new())
    }

    async fn open(&self, file: &FileRef) -> facebook_connector_core::Result<Download> {
        let bytes = tokio::fs::read(self.dir.join(file.file().as_str()))
            .await
            .map_err(facebook_connector_core::Error::transient)?;
        Ok(Download {
            content_length: Some(bytes.len() as u64),
            body: Box::pin(futures::stream::once(async move { Ok(bytes.into()) })),
        })
    }

    async fn download_to(
        &self,
        file: &FileRef,
        dest: &Path,
    ) -> facebook_connector_core::Result<u64> {
        tokio::fs::copy(self.dir.join(file.file().as_str()), dest)
            .await
            .map_err(facebook_connector_core::Error::transient)
    }
}

/// The connector's own sink: prints each batch, answers running totals per session as
/// Facebook does.
#[derive(Default)]
struct StdoutSink {
    sessions: Mutex<HashMap<u64, u64>>,
}

#[async_trait]
impl AudienceSink for StdoutSink {
    async fn find_audiences(
        &self,
        _token: &SecretString,
        ids: &[AudienceId],
    ) -> facebook_connector_core::Result<Vec<Audience>> {
        Ok(ids
            .iter()
            .map(|id| Audience {
                id: id.clone(),
                name: "stdout".into(),
            })
            .collect())
    }

    async fn create_audience(
        &self,
        _token: &SecretString,
        _ad_account: &AdAccountId,
        name: &str,
        _description: &str,
    ) -> facebook_connector_core::Result<Audience> {
        eprintln!("creating audience {name:?}");
        Ok(Audience {
            id: AudienceId::parse("1")?,
            name: name.to_owned(),
        })
    }

    async fn add_members(
        &self,
        _token: &SecretString,
        target: &UploadTarget,
        payload: &Payload,
        session: &UploadSession,
    ) -> facebook_connector_core::Result<UploadOutcome> {
        println!(
            "{{\"audience\":\"{}\",\"session_id\":{},\"batch_seq\":{},\"last_batch_flag\":{},\"payload\":{}}}",
            target.audience,
            session.session_id,
            session.batch_seq,
            session.last_batch,
            payload.to_json()
        );
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        let total = sessions.entry(session.session_id).or_default();
        *total += payload.len() as u64;
        Ok(UploadOutcome::Accepted(Received {
            received: *total,
            invalid: 0,
        }))
    }

    async fn remove_members(
        &self,
        _token: &SecretString,
        _target: &UploadTarget,
        payload: &Payload,
    ) -> facebook_connector_core::Result<Received> {
        Ok(Received {
            received: payload.len() as u64,
            invalid: 0,
        })
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let Some(dir) = std::env::args().nth(1).map(PathBuf::from) else {
        bail!("usage: embed-engine DIRECTORY (its *.jsonl files are delivered)");
    };
    if !dir.is_dir() {
        bail!("{} is not a directory", dir.display());
    }
    // the real store, on a throwaway SQLite file
    let work = tempfile::tempdir()?;
    let url = format!(
        "sqlite://{}?mode=rwc",
        work.path().join("queue.db").display()
    );
    let store = Store::connect(
        &url,
        &StoreOptions {
            migrate: true,
            ..StoreOptions::default()
        },
    )
    .await?;
    let keyring = Arc::new(TokenKeyring::parse(&TokenKeyring::generate_key("k1")?)?);

    // a profile for the deliveries, with its (dummy) token encrypted
    let profile = ProfileId(Uuid::new_v4());
    let now = OffsetDateTime::now_utc();
    store
        .profiles()
        .insert_profile(&StoredProfile {
            id: profile,
            company_id: CompanyId(1),
            ad_account: AdAccount {
                id: AdAccountId::parse("act_1")?,
                name: "local".into(),
                business: Some(Business {
                    id: BusinessId::new("1")?,
                    name: "local".into(),
                }),
                user_accepted_custom_audience_tos: true,
            },
            audience: None,
            token: keyring.encrypt(profile, &SecretString::from("not-a-real-token".to_owned()))?,
            token_meta: TokenMeta::default(),
            facebook_user: FacebookUser {
                id: FacebookUserId::new("1")?,
                name: "local".into(),
            },
            delivery_state: DeliveryState::Ok,
            archived_at: None,
            created_at: now,
            updated_at: now,
        })
        .await?;

    let event = EventEnvelope {
        revision: Revision(1),
        timestamp: now,
        event: DeliveryEvent::SubscriptionDelivery {
            profile_id: profile,
            subscription_id: SubscriptionId(Uuid::new_v4()),
            transaction_batch_id: TransactionBatchId(Uuid::new_v4()),
            quick_settings: QuickSettings {
                audience_name: Some("Local audience".into()),
                ..QuickSettings::default()
            },
        },
    };
    let ports = Ports {
        events: Arc::new(LocalFeed { event }),
        connections: Arc::new(NoConnections),
        files: Arc::new(LocalFiles { dir }),
        audiences: Arc::new(StdoutSink::default()),
        profiles: store.profiles(),
        settings: store.settings(),
        commands: store.commands(),
        jobs: store.jobs(),
        cipher: keyring,
        reporter: None,
        clock: Arc::new(SystemClock),
    };
    let mut config = EngineConfig::new(WorkerId("embed-engine".into()));
    config.batch_size = 5;
    let engine = Engine::new(ports, config)?;

    // drive it step by step (a host would call `engine.run(shutdown)` instead)
    let pass = engine.follow_feed_once().await?;
    eprintln!(
        "recorded {} event(s), {} file(s) queued",
        pass.recorded, pass.jobs
    );
    while let Some(report) = engine.run_next_job().await? {
        let c = report.counters;
        eprintln!(
            "{}: {:?} — {} records read, {} rejected lines, {} unmatchable, {} sent, {} received",
            report.file.file(),
            report.end,
            c.records_read,
            c.rejected_lines,
            c.unmatchable,
            c.members_sent,
            c.facebook_received
        );
        if !matches!(report.end, JobEnd::Delivered) {
            bail!("{} was not delivered", report.file.file());
        }
    }
    store.close().await;
    Ok(())
}
