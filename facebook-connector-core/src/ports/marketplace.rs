//! Marketplace ports: the event feed, connections, delivery files, customer profiles and
//! optional status reporting.

use std::path::Path;
use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::domain::{
    CompanyId, Connection, ConnectionId, DatasetId, EventEnvelope, FileName, FileRef, ProfileId,
    ProfileStatus, Revision, SnapshotId,
};
use crate::error::Result;

/// A page of events.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventPage {
    /// Events in revision order.
    pub events: Vec<EventEnvelope>,
    /// Where the next page starts, when the feed says.
    pub next_revision: Option<Revision>,
}

/// The marketplace's delivery event feed.
#[cfg_attr(any(test, feature = "testkit"), mockall::automock)]
#[async_trait]
pub trait EventSource: Send + Sync {
    /// Events with revision greater than `after` (all when `None`), at most `max`.
    async fn events_after(&self, after: Option<Revision>, max: u32) -> Result<EventPage>;
}

/// Looks up dataset connections.
#[cfg_attr(any(test, feature = "testkit"), mockall::automock)]
#[async_trait]
pub trait ConnectionDirectory: Send + Sync {
    /// The connection, or `None` when it no longer exists.
    async fn connection(&self, id: ConnectionId) -> Result<Option<Connection>>;
}

/// A stream of file bytes.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes>> + Send>>;

/// A file being downloaded.
pub struct Download {
    /// Length announced by the server, when it announced one.
    pub content_length: Option<u64>,
    /// The bytes.
    pub body: ByteStream,
}

impl std::fmt::Debug for Download {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Download")
            .field("content_length", &self.content_length)
            .finish_non_exhaustive()
    }
}

/// Lists and fetches delivery files.
#[cfg_attr(any(test, feature = "testkit"), mockall::automock)]
#[async_trait]
pub trait DeliveryFiles: Send + Sync {
    /// The files of a legacy delivery command.
    async fn legacy_files(&self, revision: Revision) -> Result<Vec<FileName>>;

    /// The files a dataset snapshot added.
    async fn snapshot_files(
        &self,
        dataset_id: DatasetId,
        snapshot_id: &SnapshotId,
    ) -> Result<Vec<FileName>>;

    /// Every downloadable file of the dataset from snapshots taken before `until`, oldest
    /// snapshot first (for historical backfills).
    async fn files_before(
        &self,
        dataset_id: DatasetId,
        until: OffsetDateTime,
    ) -> Result<Vec<(SnapshotId, FileName)>>;

    /// Starts downloading a file.
    async fn open(&self, file: &FileRef) -> Result<Download>;

    /// Downloads a file to `dest` with bounded memory, checking the length when the server
    /// announced one. Returns the number of bytes written.
    async fn download_to(&self, file: &FileRef, dest: &Path) -> Result<u64>;
}

/// A marketplace installation of this app (integer or uuid on the wire).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct InstallationId(pub String);

impl std::fmt::Display for InstallationId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A profile as the marketplace holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarketplaceProfile {
    /// Profile id.
    pub id: ProfileId,
    /// Name shown to the customer.
    pub name: String,
    /// Optional description.
    #[serde(default)]
    pub description: Option<String>,
    /// Lifecycle status.
    pub status: ProfileStatus,
}

/// A lifecycle change of a marketplace profile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProfileTransition {
    /// `POST .../archive`.
    Archive,
    /// `POST .../disable`.
    Disable,
    /// `POST .../enable`.
    Enable,
}

/// Customer-token calls the HTTP API makes on the customer's behalf.
#[cfg_attr(any(test, feature = "testkit"), mockall::automock)]
#[async_trait]
pub trait ProfileDirectory: Send + Sync {
    /// The company behind the customer token;
    /// [`Error::InvalidToken`](crate::Error::InvalidToken) when the marketplace refuses it.
    async fn company(&self, token: &SecretString) -> Result<CompanyId>;

    /// The app installation behind the customer token.
    async fn installation(&self, token: &SecretString) -> Result<InstallationId>;

    /// The installation's profiles.
    async fn list_profiles(
        &self,
        token: &SecretString,
        installation: &InstallationId,
    ) -> Result<Vec<MarketplaceProfile>>;

    /// One profile; `None` when it is not this installation's.
    async fn get_profile(
        &self,
        token: &SecretString,
        installation: &InstallationId,
        id: ProfileId,
    ) -> Result<Option<MarketplaceProfile>>;

    /// Creates a profile (it starts `disabled`).
    async fn create_profile(
        &self,
        token: &SecretString,
        installation: &InstallationId,
        name: &str,
        description: Option<String>,
    ) -> Result<MarketplaceProfile>;

    /// Renames or re-describes a profile; `None` when it is not this installation's.
    async fn update_profile(
        &self,
        token: &SecretString,
        installation: &InstallationId,
        id: ProfileId,
        name: &str,
        description: Option<String>,
    ) -> Result<Option<MarketplaceProfile>>;

    /// Archives, disables or enables a profile; `None` when it is not this installation's.
    async fn transition_profile(
        &self,
        token: &SecretString,
        installation: &InstallationId,
        id: ProfileId,
        transition: ProfileTransition,
    ) -> Result<Option<MarketplaceProfile>>;
}

/// The outcome of one file's delivery, for optional reporting back to the marketplace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryReport {
    /// Unique per file and outcome, so the marketplace can drop duplicates.
    pub idempotency_key: String,
    /// The company delivered for, when known.
    pub company_id: Option<CompanyId>,
    /// The profile delivered to.
    pub profile_id: ProfileId,
    /// The connection, for dataset deliveries.
    pub connection_id: Option<ConnectionId>,
    /// The dataset, for dataset deliveries.
    pub dataset_id: Option<DatasetId>,
    /// When it happened.
    pub at: OffsetDateTime,
    /// `Ok(members sent)` or `Err(reason)`.
    pub outcome: std::result::Result<u64, String>,
}

/// Reports delivery outcomes to the marketplace (`audience.delivery.completed|failed`).
#[cfg_attr(any(test, feature = "testkit"), mockall::automock)]
#[async_trait]
pub trait StatusReporter: Send + Sync {
    /// Sends one report. Failures are the caller's to log; they never fail a delivery.
    async fn report(&self, report: &DeliveryReport) -> Result<()>;
}
