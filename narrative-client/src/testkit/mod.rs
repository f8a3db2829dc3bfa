//! An in-process fake of the marketplace endpoints this crate calls, on a real socket
//! (`127.0.0.1:0`), for behaviour tests and the worker's `demo` command.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use narrative_client::testkit::{FakeMarketplace, LegacyDelivery};
//! use narrative_client::NarrativeClient;
//!
//! let fake = FakeMarketplace::start().await?;
//! let revision = fake.add_legacy_delivery(
//!     LegacyDelivery::new(
//!         "0b6d9a50-1f5c-4a4e-9d7e-3b1a8c1e2f00".parse().unwrap(),
//!         "1e2d3c4b-5a69-4788-9aab-bccddeeff001".parse().unwrap(),
//!         "3e2d3c4b-5a69-4788-9aab-bccddeeff003".parse().unwrap(),
//!     )
//!     .file("part-0.jsonl", &b"{\"data\":{\"email\":\"a@b.c\"}}\n"[..]),
//! );
//! let client = NarrativeClient::new(fake.client_config()).unwrap();
//! # let _ = (revision, client);
//! # Ok(())
//! # }
//! ```
//!
//! What it holds:
//! - app credentials (`fake.client_id()`, `fake.client_secret()`), the app tokens it issued
//!   (lifetimes via [`FakeMarketplace::set_token_lifetimes`], [`FakeMarketplace::expire_app_tokens`],
//!   [`FakeMarketplace::revoke_refresh_tokens`], grants seen via [`FakeMarketplace::token_grants`]);
//! - both feeds. One revision counter is shared: a legacy delivery appears at the same revision
//!   in the legacy commands feed and (as `PerformDelivery`) in the event feed; snapshot and
//!   connection events only in the event feed;
//! - connections, dataset snapshots with their files, legacy delivery files. File bytes are
//!   served as given (JSON lines, Parquet, anything) from presigned-style URLs
//!   (`/presigned/{key}?expires=…&signature=…`) on the same server without auth, optionally
//!   expiring ([`FakeMarketplace::set_download_url_ttl`]);
//! - customers by bearer token (company id, installation id, profiles);
//! - status events posted to `/apps/events`.
//!
//! Failure injection: [`FakeMarketplace::fail_next`] (a status N times on a path prefix),
//! [`FakeMarketplace::delay_next`] (slow responses), [`FakeMarketplace::mark_snapshot_too_old`]
//! (403), [`FakeMarketplace::expire_download`] (451 `expired`),
//! [`FakeMarketplace::truncate_downloads`] (announce more bytes than sent). Every request is
//! recorded ([`FakeMarketplace::calls`]).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod server;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use facebook_connector_core::domain::{
    CompanyId, Connection, ConnectionId, ConnectionStatus, DatasetId, ProfileId, Revision,
    SubscriptionId, TransactionBatchId,
};
use facebook_connector_core::ports::MarketplaceProfile;
use secrecy::SecretString;
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio::sync::oneshot;
use tokio::time::Instant;
use url::Url;

use crate::config::{FeedKind, HttpConfig, NarrativeConfig};

/// A request the fake received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedCall {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path, percent-decoded.
    pub path: String,
    /// The raw query string (empty when none).
    pub query: String,
}

impl RecordedCall {
    /// The value of one query parameter.
    pub fn query_param(&self, key: &str) -> Option<String> {
        url::form_urlencoded::parse(self.query.as_bytes())
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
    }
}

/// A legacy subscription delivery: one `PerformDelivery` command plus its files.
#[derive(Clone, Debug)]
pub struct LegacyDelivery {
    profile_id: ProfileId,
    subscription_id: SubscriptionId,
    transaction_batch_id: TransactionBatchId,
    quick_settings: Value,
    files: Vec<(String, Bytes)>,
    timestamp: Option<OffsetDateTime>,
}

impl LegacyDelivery {
    /// A delivery without quick settings or files.
    pub fn new(
        profile_id: ProfileId,
        subscription_id: SubscriptionId,
        transaction_batch_id: TransactionBatchId,
    ) -> Self {
        LegacyDelivery {
            profile_id,
            subscription_id,
            transaction_batch_id,
            quick_settings: json!({}),
            files: Vec::new(),
            timestamp: None,
        }
    }

    /// Quick settings exactly as the marketplace would send them (camelCase keys, `"true"`
    /// strings and all).
    pub fn quick_settings(mut self, quick_settings: Value) -> Self {
        self.quick_settings = quick_settings;
        self
    }

    /// Adds a file (usually JSON lines with attributes under `data`).
    pub fn file(mut self, name: impl Into<String>, bytes: impl Into<Bytes>) -> Self {
        self.files.push((name.into(), bytes.into()));
        self
    }

    /// The command's timestamp (default: now).
    pub fn at(mut self, timestamp: OffsetDateTime) -> Self {
        self.timestamp = Some(timestamp);
        self
    }
}

/// A dataset snapshot and the files it added.
#[derive(Clone, Debug)]
pub struct Snapshot {
    dataset_id: DatasetId,
    snapshot_id: String,
    timestamp: OffsetDateTime,
    files: Vec<(String, Bytes)>,
    downloadable: bool,
}

impl Snapshot {
    /// A snapshot taken now, without files.
    pub fn new(dataset_id: DatasetId, snapshot_id: impl Into<String>) -> Self {
        Snapshot {
            dataset_id,
            snapshot_id: snapshot_id.into(),
            timestamp: OffsetDateTime::now_utc(),
            files: Vec::new(),
            downloadable: true,
        }
    }

    /// When the snapshot was taken.
    pub fn at(mut self, timestamp: OffsetDateTime) -> Self {
        self.timestamp = timestamp;
        self
    }

    /// Adds a file (usually Parquet bytes).
    pub fn file(mut self, name: impl Into<String>, bytes: impl Into<Bytes>) -> Self {
        self.files.push((name.into(), bytes.into()));
        self
    }

    /// Lists the snapshot in `find-files` as `is_downloadable: false`.
    pub fn not_downloadable(mut self) -> Self {
        self.downloadable = false;
        self
    }
}

pub(crate) struct StoredSnapshot {
    pub(crate) dataset_id: i64,
    pub(crate) snapshot_id: String,
    pub(crate) timestamp: OffsetDateTime,
    pub(crate) files: Vec<(String, Bytes)>,
    pub(crate) downloadable: bool,
    pub(crate) too_old: bool,
}

pub(crate) struct Customer {
    pub(crate) company_id: i64,
    pub(crate) installation_id: Value,
    pub(crate) profiles: Vec<MarketplaceProfile>,
}

pub(crate) struct Blob {
    pub(crate) bytes: Bytes,
    pub(crate) expires_at: Option<Instant>,
}

pub(crate) struct Failure {
    pub(crate) path_prefix: String,
    pub(crate) status: u16,
    pub(crate) remaining: usize,
}

pub(crate) struct Delay {
    pub(crate) path_prefix: String,
    pub(crate) delay: Duration,
    pub(crate) remaining: usize,
}

pub(crate) struct AccessToken {
    pub(crate) expires_at: Instant,
    pub(crate) revoked: bool,
}

pub(crate) struct State {
    pub(crate) base_url: Url,
    pub(crate) client_id: String,
    pub(crate) client_secret: String,
    pub(crate) access_ttl: Duration,
    pub(crate) refresh_ttl: Duration,
    pub(crate) token_delay: Duration,
    pub(crate) access_tokens: HashMap<String, AccessToken>,
    pub(crate) refresh_tokens: HashMap<String, Instant>,
    pub(crate) issued_refresh_tokens: Vec<String>,
    pub(crate) grants: Vec<String>,
    pub(crate) last_revision: u64,
    pub(crate) legacy_feed: Vec<(u64, Value)>,
    pub(crate) event_feed: Vec<(u64, Value)>,
    pub(crate) legacy_files: HashMap<u64, Vec<(String, Bytes)>>,
    pub(crate) connections: HashMap<String, Value>,
    pub(crate) snapshots: Vec<StoredSnapshot>,
    pub(crate) expired_downloads: Vec<String>,
    pub(crate) blobs: HashMap<String, Blob>,
    pub(crate) url_ttl: Option<Duration>,
    pub(crate) truncate_downloads: bool,
    pub(crate) find_files_page_cap: usize,
    pub(crate) customers: HashMap<String, Customer>,
    pub(crate) status_events: Vec<Value>,
    pub(crate) failures: Vec<Failure>,
    pub(crate) delays: Vec<Delay>,
    pub(crate) calls: Vec<RecordedCall>,
}

pub(crate) type Shared = Arc<Mutex<State>>;

pub(crate) fn lock(state: &Shared) -> MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The fake marketplace. Stops serving when dropped.
pub struct FakeMarketplace {
    state: Shared,
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
}

impl std::fmt::Debug for FakeMarketplace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeMarketplace")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for FakeMarketplace {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

impl FakeMarketplace {
    /// Starts the fake on `127.0.0.1:0` with app credentials `fake-client-id` /
    /// `fake-client-secret` and one-hour app tokens.
    pub async fn start() -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let base_url = Url::parse(&format!("http://{addr}/"))
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let state: Shared = Arc::new(Mutex::new(State {
            base_url,
            client_id: "fake-client-id".to_owned(),
            client_secret: "fake-client-secret".to_owned(),
            access_ttl: Duration::from_secs(3600),
            refresh_ttl: Duration::from_secs(86_400),
            token_delay: Duration::ZERO,
            access_tokens: HashMap::new(),
            refresh_tokens: HashMap::new(),
            issued_refresh_tokens: Vec::new(),
            grants: Vec::new(),
            last_revision: 0,
            legacy_feed: Vec::new(),
            event_feed: Vec::new(),
            legacy_files: HashMap::new(),
            connections: HashMap::new(),
            snapshots: Vec::new(),
            expired_downloads: Vec::new(),
            blobs: HashMap::new(),
            url_ttl: None,
            truncate_downloads: false,
            find_files_page_cap: usize::MAX,
            customers: HashMap::new(),
            status_events: Vec::new(),
            failures: Vec::new(),
            delays: Vec::new(),
            calls: Vec::new(),
        }));
        let (tx, rx) = oneshot::channel();
        let router = server::router(state.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(FakeMarketplace {
            state,
            addr,
            shutdown: Some(tx),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// `http://127.0.0.1:<port>/`.
    pub fn base_url(&self) -> Url {
        self.state().base_url.clone()
    }

    /// The app's client id.
    pub fn client_id(&self) -> String {
        self.state().client_id.clone()
    }

    /// The app's client secret.
    pub fn client_secret(&self) -> SecretString {
        SecretString::from(self.state().client_secret.clone())
    }

    /// Replaces the app credentials the token endpoint accepts.
    pub fn set_app_credentials(&self, client_id: &str, client_secret: &str) {
        let mut state = self.state();
        state.client_id = client_id.to_owned();
        state.client_secret = client_secret.to_owned();
    }

    /// A client configuration for this fake: its credentials, the event feed, fast timings.
    pub fn client_config(&self) -> NarrativeConfig {
        NarrativeConfig::new(self.base_url(), self.client_id(), self.client_secret())
            .with_feed_kind(FeedKind::Events)
            .with_http(HttpConfig::fast())
    }

    /// Lifetimes announced for the app tokens issued from now on.
    pub fn set_token_lifetimes(&self, access: Duration, refresh: Duration) {
        let mut state = self.state();
        state.access_ttl = access;
        state.refresh_ttl = refresh;
    }

    /// Makes the token endpoint slow (to widen race windows in concurrency tests).
    pub fn set_token_delay(&self, delay: Duration) {
        self.state().token_delay = delay;
    }

    /// Every access token issued so far is refused with 401 from now on.
    pub fn expire_app_tokens(&self) {
        for token in self.state().access_tokens.values_mut() {
            token.revoked = true;
        }
    }

    /// Every refresh token issued so far is refused (`400 invalid_grant`) from now on.
    pub fn revoke_refresh_tokens(&self) {
        self.state().refresh_tokens.clear();
    }

    /// Every access and refresh token issued so far (to prove none of them leaks).
    pub fn issued_tokens(&self) -> Vec<String> {
        let state = self.state();
        state
            .access_tokens
            .keys()
            .chain(state.issued_refresh_tokens.iter())
            .cloned()
            .collect()
    }

    /// The `grant_type` of every accepted or refused token request, in order.
    pub fn token_grants(&self) -> Vec<String> {
        self.state().grants.clone()
    }

    /// The revision of the newest event or command added, if any.
    pub fn last_revision(&self) -> Option<Revision> {
        let last = self.state().last_revision;
        (last > 0).then_some(Revision(last))
    }

    fn next_revision(state: &mut State) -> u64 {
        state.last_revision += 1;
        state.last_revision
    }

    fn record(revision: u64, at: OffsetDateTime, payload_type: &str, payload: Value) -> Value {
        json!({
            "metadata": {"revision": revision, "timestamp": rfc3339(at)},
            "payload_type": payload_type,
            "payload": payload,
        })
    }

    /// Adds a legacy delivery (camelCase `PerformDelivery` payload) to both feeds, and its files.
    pub fn add_legacy_delivery(&self, delivery: LegacyDelivery) -> Revision {
        let mut state = self.state();
        let revision = Self::next_revision(&mut state);
        let record = Self::record(
            revision,
            delivery.timestamp.unwrap_or_else(OffsetDateTime::now_utc),
            "PerformDelivery",
            json!({
                "subscriptionId": delivery.subscription_id.to_string(),
                "transactionBatchId": delivery.transaction_batch_id.to_string(),
                "profileId": delivery.profile_id.to_string(),
                "quickSettings": delivery.quick_settings,
            }),
        );
        state.legacy_feed.push((revision, record.clone()));
        state.event_feed.push((revision, record));
        state.legacy_files.insert(revision, delivery.files);
        Revision(revision)
    }

    /// Adds a `snapshot-appended` event to the event feed.
    pub fn add_snapshot_appended(
        &self,
        connection_id: ConnectionId,
        snapshot_id: &str,
    ) -> Revision {
        self.add_event(
            "snapshot-appended",
            json!({"connection_id": connection_id.to_string(), "snapshot_id": snapshot_id}),
            OffsetDateTime::now_utc(),
        )
    }

    /// Adds a `connection-created` event emitted at `at` to the event feed.
    pub fn add_connection_created(
        &self,
        connection_id: ConnectionId,
        at: OffsetDateTime,
    ) -> Revision {
        self.add_event(
            "connection-created",
            json!({"connection_id": connection_id.to_string()}),
            at,
        )
    }

    /// Adds any event (unknown kinds, malformed payloads) to the event feed.
    pub fn add_event(&self, payload_type: &str, payload: Value, at: OffsetDateTime) -> Revision {
        let mut state = self.state();
        let revision = Self::next_revision(&mut state);
        let record = Self::record(revision, at, payload_type, payload);
        state.event_feed.push((revision, record));
        Revision(revision)
    }

    /// Adds any command to the legacy commands feed.
    pub fn add_legacy_command(&self, payload_type: &str, payload: Value) -> Revision {
        let mut state = self.state();
        let revision = Self::next_revision(&mut state);
        let record = Self::record(revision, OffsetDateTime::now_utc(), payload_type, payload);
        state.legacy_feed.push((revision, record));
        Revision(revision)
    }

    /// Adds (or replaces) a connection.
    pub fn add_connection(&self, connection: &Connection) {
        let status = match connection.status {
            ConnectionStatus::Active => "active",
            ConnectionStatus::Archived => "archived",
        };
        self.add_connection_json(json!({
            "id": connection.id.to_string(),
            "dataset_id": connection.dataset_id.0,
            "profile_id": connection.profile_id.to_string(),
            "quick_settings": connection.quick_settings,
            "status": status,
        }));
    }

    /// Adds (or replaces) a connection given in its wire form (e.g. with
    /// `"historical_data_enabled": "true"`); keyed by its `id`.
    pub fn add_connection_json(&self, connection: Value) {
        let id = connection
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        self.state().connections.insert(id, connection);
    }

    /// Deletes a connection (its lookups answer 404).
    pub fn remove_connection(&self, id: ConnectionId) {
        self.state().connections.remove(&id.to_string());
    }

    /// Adds a dataset snapshot and its files.
    pub fn add_snapshot(&self, snapshot: Snapshot) {
        self.state().snapshots.push(StoredSnapshot {
            dataset_id: snapshot.dataset_id.0,
            snapshot_id: snapshot.snapshot_id,
            timestamp: snapshot.timestamp,
            files: snapshot.files,
            downloadable: snapshot.downloadable,
            too_old: false,
        });
    }

    /// The snapshot's `files-added` (and its downloads) answer 403, as for snapshots older than
    /// 30 days.
    pub fn mark_snapshot_too_old(&self, dataset_id: DatasetId, snapshot_id: &str) {
        for snapshot in &mut self.state().snapshots {
            if snapshot.dataset_id == dataset_id.0 && snapshot.snapshot_id == snapshot_id {
                snapshot.too_old = true;
            }
        }
    }

    /// Download-link requests for this file name (legacy or snapshot) answer 451 `expired`.
    pub fn expire_download(&self, file: &str) {
        self.state().expired_downloads.push(file.to_owned());
    }

    /// Presigned URLs issued from now on stop working after `ttl` (403, as S3 does).
    pub fn set_download_url_ttl(&self, ttl: Option<Duration>) {
        self.state().url_ttl = ttl;
    }

    /// Presigned downloads announce one byte more than they send (the connection is then closed).
    pub fn truncate_downloads(&self, on: bool) {
        self.state().truncate_downloads = on;
    }

    /// Caps the snapshots per `find-files` page (to exercise paging with few snapshots).
    pub fn set_find_files_page_size(&self, snapshots_per_page: usize) {
        self.state().find_files_page_cap = snapshots_per_page.max(1);
    }

    /// A customer: their bearer token, company and installation id (a number or a uuid string).
    pub fn add_customer(
        &self,
        token: &str,
        company_id: CompanyId,
        installation_id: impl Into<Value>,
    ) {
        self.state().customers.insert(
            token.to_owned(),
            Customer {
                company_id: company_id.0,
                installation_id: installation_id.into(),
                profiles: Vec::new(),
            },
        );
    }

    /// Adds a profile to a customer's installation (no-op for an unknown token).
    pub fn add_profile(&self, token: &str, profile: MarketplaceProfile) {
        if let Some(customer) = self.state().customers.get_mut(token) {
            customer.profiles.push(profile);
        }
    }

    /// A customer's profiles as the fake holds them.
    pub fn profiles(&self, token: &str) -> Vec<MarketplaceProfile> {
        self.state()
            .customers
            .get(token)
            .map(|c| c.profiles.clone())
            .unwrap_or_default()
    }

    /// Bodies posted to `/apps/events`, in order.
    pub fn status_events(&self) -> Vec<Value> {
        self.state().status_events.clone()
    }

    /// The next `times` requests whose path starts with `path_prefix` answer `status`
    /// (before authentication is checked).
    pub fn fail_next(&self, path_prefix: &str, status: u16, times: usize) {
        self.state().failures.push(Failure {
            path_prefix: path_prefix.to_owned(),
            status,
            remaining: times,
        });
    }

    /// The next `times` requests whose path starts with `path_prefix` wait `delay` first.
    pub fn delay_next(&self, path_prefix: &str, delay: Duration, times: usize) {
        self.state().delays.push(Delay {
            path_prefix: path_prefix.to_owned(),
            delay,
            remaining: times,
        });
    }

    /// Every request received so far.
    pub fn calls(&self) -> Vec<RecordedCall> {
        self.state().calls.clone()
    }

    /// The requests whose path starts with `path_prefix`.
    pub fn calls_to(&self, path_prefix: &str) -> Vec<RecordedCall> {
        self.calls()
            .into_iter()
            .filter(|c| c.path.starts_with(path_prefix))
            .collect()
    }

    /// Forgets the recorded requests.
    pub fn clear_calls(&self) {
        self.state().calls.clear();
    }
}
