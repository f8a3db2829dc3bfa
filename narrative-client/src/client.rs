//! [`NarrativeClient`]: the app-token client behind the worker's ports.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use connector_resilience::{Retry, RetryPolicy};
use facebook_connector_core::domain::{
    CompanyId, Connection, ConnectionId, ConnectionStatus, DatasetId, FileName, FileRef, ProfileId,
    QuickSettings, Revision, SnapshotId,
};
use facebook_connector_core::ports::{
    ByteStream, ConnectionDirectory, DeliveryFiles, DeliveryReport, Download, EventPage,
    EventSource, StatusReporter,
};
use futures::{Stream, StreamExt};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio::io::AsyncWriteExt;
use url::Url;

use crate::auth::AppAuth;
use crate::config::{FeedConfig, FeedKind, NarrativeConfig};
use crate::error::NarrativeError;
use crate::events::{RawPage, decode_page, parse_timestamp};
use crate::http::{Call, Credential, Transport, request_error};

/// Files per `find-files` page.
const FIND_FILES_PER_PAGE: u32 = 100;
/// Safety bound on `find-files` pages for one backfill.
const FIND_FILES_MAX_PAGES: usize = 100_000;
/// Path of the status events endpoint.
const STATUS_EVENTS_PATH: &str = "/apps/events";
/// Event type of a successful delivery report.
pub const DELIVERY_COMPLETED: &str = "audience.delivery.completed";
/// Event type of a failed delivery report.
pub const DELIVERY_FAILED: &str = "audience.delivery.failed";

/// The marketplace client used by the worker: app-token calls for the event feed, connections,
/// delivery files and (optionally) status reporting. Cheap to clone; clones share the token.
#[derive(Clone)]
pub struct NarrativeClient {
    inner: Arc<Inner>,
}

struct Inner {
    transport: Transport,
    auth: AppAuth,
    feed: FeedConfig,
}

impl std::fmt::Debug for NarrativeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NarrativeClient")
            .field(
                "base_url",
                &connector_resilience::redacted_url(&self.inner.transport.base),
            )
            .field("auth", &self.inner.auth)
            .field("feed", &self.inner.feed.kind)
            .finish()
    }
}

/// One file of a legacy delivery command, as listed by the marketplace.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct LegacyDeliveryFile {
    /// The file name (what [`FileRef::Legacy`] carries).
    pub file: FileName,
    /// Size in bytes, when listed.
    #[serde(default)]
    pub size: Option<u64>,
    /// The buying company, when listed.
    #[serde(default)]
    pub company_id: Option<CompanyId>,
}

/// A file of `files-added`: `{name}` as documented (`path` or `file` accepted too), or a bare
/// string.
#[derive(Deserialize)]
#[serde(untagged)]
enum AddedFile {
    Named {
        #[serde(alias = "path", alias = "file")]
        name: FileName,
    },
    Bare(FileName),
}

impl AddedFile {
    fn into_name(self) -> FileName {
        match self {
            AddedFile::Named { name } | AddedFile::Bare(name) => name,
        }
    }
}

/// A listing answered as a bare array (as documented) or wrapped in `{records: [...]}`.
#[derive(Deserialize)]
#[serde(untagged)]
enum Listing<T> {
    Bare(Vec<T>),
    Records { records: Vec<T> },
}

impl<T> Listing<T> {
    fn into_vec(self) -> Vec<T> {
        match self {
            Listing::Bare(items) | Listing::Records { records: items } => items,
        }
    }
}

#[derive(Deserialize)]
struct FindFilesPage {
    #[serde(default)]
    files_per_snapshot: Vec<SnapshotFiles>,
    #[serde(default)]
    has_next: bool,
    #[serde(default, deserialize_with = "connector_resilience::lenient::opt_text")]
    next_snapshot: Option<String>,
}

#[derive(Deserialize)]
struct SnapshotFiles {
    #[serde(default)]
    files: Vec<FoundFile>,
    #[serde(default, deserialize_with = "connector_resilience::lenient::opt_text")]
    snapshot_id: Option<SnapshotId>,
    #[serde(default)]
    timestamp: Value,
    #[serde(default = "yes")]
    is_downloadable: bool,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
struct FoundFile {
    path: FileName,
}

#[derive(Deserialize)]
struct RawConnection {
    id: ConnectionId,
    dataset_id: DatasetId,
    profile_id: ProfileId,
    #[serde(default)]
    quick_settings: Option<QuickSettings>,
    #[serde(default)]
    status: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum DownloadUrl {
    Bare(String),
    Object { download_url: String },
}

#[derive(Deserialize, Default)]
struct StatusAnswer {
    #[serde(default)]
    rejected: Vec<Value>,
}

impl NarrativeClient {
    /// Builds the client; no request is made until the first call.
    pub fn new(config: NarrativeConfig) -> Result<Self, NarrativeError> {
        let transport = Transport::new(config.base_url, config.http)?;
        let token_url = transport.url("/oauth/token", &[])?;
        let auth = AppAuth::new(
            token_url,
            config.client_id,
            config.client_secret,
            transport.config.token_refresh_margin,
        );
        Ok(NarrativeClient {
            inner: Arc::new(Inner {
                transport,
                auth,
                feed: config.feed,
            }),
        })
    }

    fn transport(&self) -> &Transport {
        &self.inner.transport
    }

    fn app_call(&self, method: Method, url: Url) -> Call<'_> {
        Call::new(method, url, Credential::App(&self.inner.auth))
    }

    /// One page of the configured feed: events with revision greater than `after`.
    pub async fn fetch_events(
        &self,
        after: Option<Revision>,
        max: u32,
    ) -> Result<EventPage, NarrativeError> {
        let feed = &self.inner.feed;
        let path = match feed.kind {
            FeedKind::LegacyCommands => &feed.legacy_commands_path,
            FeedKind::Events => &feed.events_path,
        };
        // [ASSUMED] whether `from_revision` is inclusive or exclusive is not documented. The
        // cursor itself is sent: an exclusive feed answers the events after it, an inclusive
        // one repeats the cursor's event first, which is dropped here. Either way no event is
        // skipped; at least 2 results are asked for so an inclusive feed always moves on.
        let from = after.map_or(0, |r| r.0);
        let call = self
            .app_call(Method::GET, self.transport().url(path, &[])?)
            .query("from_revision", from)
            .query("max_results", max.max(2));
        let page: RawPage = self.transport().json(&call).await?;
        let mut page = decode_page(page, &feed.payload_types, after);
        let max = usize::try_from(max.max(1)).unwrap_or(usize::MAX);
        if page.events.len() > max {
            // the feed sent more than asked: keep the first ones, the rest comes next time
            page.next_revision = page.events.get(max).map(|e| e.revision);
            page.events.truncate(max);
        }
        Ok(page)
    }

    /// The connection, `None` on 404.
    pub async fn fetch_connection(
        &self,
        id: ConnectionId,
    ) -> Result<Option<Connection>, NarrativeError> {
        let url = self.transport().url("/connections", &[&id.to_string()])?;
        let call = self.app_call(Method::GET, url);
        let Some(raw) = self.transport().json_opt::<RawConnection>(&call).await? else {
            return Ok(None);
        };
        let status = match raw
            .status
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("active") | None => ConnectionStatus::Active,
            Some("archived") => ConnectionStatus::Archived,
            Some(other) => {
                tracing::warn!(connection_id = %id, status = %other, "unknown connection status, treated as archived");
                ConnectionStatus::Archived
            }
        };
        Ok(Some(Connection {
            id: raw.id,
            dataset_id: raw.dataset_id,
            profile_id: raw.profile_id,
            quick_settings: raw.quick_settings.unwrap_or_default(),
            status,
        }))
    }

    /// The files of a legacy delivery command, with sizes when listed.
    pub async fn legacy_delivery_files(
        &self,
        revision: Revision,
    ) -> Result<Vec<LegacyDeliveryFile>, NarrativeError> {
        let url = self.transport().url(
            &self.inner.feed.legacy_commands_path,
            &[&revision.to_string(), "files"],
        )?;
        Ok(self
            .transport()
            .json::<Listing<LegacyDeliveryFile>>(&self.app_call(Method::GET, url))
            .await?
            .into_vec())
    }

    /// The files a snapshot added; a 403 (snapshot older than 30 days) is
    /// [`NarrativeError::SnapshotTooOld`].
    pub async fn snapshot_added_files(
        &self,
        dataset_id: DatasetId,
        snapshot_id: &SnapshotId,
    ) -> Result<Vec<FileName>, NarrativeError> {
        let url = self.transport().url(
            "/datasets",
            &[
                &dataset_id.to_string(),
                "snapshots",
                snapshot_id.as_str(),
                "files-added",
            ],
        )?;
        match self
            .transport()
            .json::<Listing<AddedFile>>(&self.app_call(Method::GET, url))
            .await
        {
            Ok(files) => Ok(files
                .into_vec()
                .into_iter()
                .map(AddedFile::into_name)
                .collect()),
            Err(NarrativeError::Status { status: 403, .. }) => {
                Err(NarrativeError::SnapshotTooOld {
                    dataset_id: dataset_id.0,
                    snapshot_id: snapshot_id.to_string(),
                })
            }
            Err(e) => Err(e),
        }
    }

    /// Downloadable files of snapshots taken strictly before `until`, oldest snapshot first,
    /// paging through `find-files` (`per_page`/`offset`, continuing from `next_snapshot` with
    /// `from_snapshot_id` when the page gives one).
    pub async fn dataset_files_before(
        &self,
        dataset_id: DatasetId,
        until: OffsetDateTime,
    ) -> Result<Vec<(SnapshotId, FileName)>, NarrativeError> {
        let url = self
            .transport()
            .url("/datasets", &[&dataset_id.to_string(), "find-files"])?;
        let mut found: Vec<(OffsetDateTime, SnapshotId, FileName)> = Vec::new();
        let mut offset: u64 = 0;
        let mut from_snapshot: Option<String> = None;
        let mut seen_cursors = std::collections::HashSet::new();
        for _ in 0..FIND_FILES_MAX_PAGES {
            let mut call = self
                .app_call(Method::GET, url.clone())
                .query("per_page", FIND_FILES_PER_PAGE)
                .query("offset", offset);
            if let Some(from) = &from_snapshot {
                call = call.query("from_snapshot_id", from);
            }
            let page: FindFilesPage = self.transport().json(&call).await?;
            let empty_page = page.files_per_snapshot.is_empty();
            for snapshot in page.files_per_snapshot {
                let Some(id) = snapshot.snapshot_id else {
                    tracing::warn!(dataset_id = %dataset_id, "find-files snapshot without a usable id, skipped");
                    continue;
                };
                let Some(taken) = parse_timestamp(&snapshot.timestamp) else {
                    tracing::warn!(dataset_id = %dataset_id, snapshot_id = %id, "find-files snapshot without a usable timestamp, skipped");
                    continue;
                };
                if taken >= until {
                    continue;
                }
                if !snapshot.is_downloadable {
                    tracing::warn!(dataset_id = %dataset_id, snapshot_id = %id, "snapshot is not downloadable, skipped");
                    continue;
                }
                for file in snapshot.files {
                    found.push((taken, id.clone(), file.path));
                }
            }
            if page.has_next && empty_page {
                // an empty page cannot move an offset cursor along: treat it as the end
                tracing::warn!(dataset_id = %dataset_id, "find-files answered an empty page that claims more, stopped paging");
            }
            if !page.has_next || empty_page {
                found.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
                let mut seen = std::collections::HashSet::new();
                return Ok(found
                    .into_iter()
                    .filter(|(_, s, f)| seen.insert((s.clone(), f.clone())))
                    .map(|(_, s, f)| (s, f))
                    .collect());
            }
            match page.next_snapshot {
                Some(next) => {
                    from_snapshot = Some(next);
                    offset = 0;
                }
                None => offset += u64::from(FIND_FILES_PER_PAGE),
            }
            if !seen_cursors.insert((from_snapshot.clone(), offset)) {
                break;
            }
        }
        Err(NarrativeError::PagingStuck {
            endpoint: format!("GET {}", url.path()),
        })
    }

    /// Asks the marketplace for a (presigned) download URL.
    async fn download_url(&self, file: &FileRef) -> Result<Url, NarrativeError> {
        let url = match file {
            FileRef::Legacy { revision, file } => self.transport().url(
                &self.inner.feed.legacy_commands_path,
                &[&revision.to_string(), "download", file.as_str()],
            )?,
            FileRef::Snapshot {
                dataset_id,
                snapshot_id,
                file,
            } => self.transport().url(
                "/datasets",
                &[
                    &dataset_id.to_string(),
                    "snapshots",
                    snapshot_id.as_str(),
                    "files-added",
                    file.as_str(),
                    "download",
                ],
            )?,
        };
        // asking for a link twice is harmless: treated as idempotent
        let call = self.app_call(Method::POST, url).idempotent(true);
        let text = match self.download_answer(&call).await {
            Ok(text) => text,
            Err(NarrativeError::Status {
                status: 451,
                description,
                ..
            }) => {
                return Err(NarrativeError::DownloadExpired {
                    file: file.file().to_string(),
                    description,
                });
            }
            Err(e @ NarrativeError::Status { status: 403, .. }) => {
                return Err(match file {
                    FileRef::Snapshot {
                        dataset_id,
                        snapshot_id,
                        ..
                    } => NarrativeError::SnapshotTooOld {
                        dataset_id: dataset_id.0,
                        snapshot_id: snapshot_id.to_string(),
                    },
                    FileRef::Legacy { .. } => e,
                });
            }
            Err(e) => return Err(e),
        };
        let endpoint = call.endpoint.clone();
        Url::parse(text.trim()).map_err(|source| NarrativeError::Url {
            what: format!("download link answered by {endpoint}"),
            source,
        })
    }

    /// The link in a download answer: a JSON string (legacy), `{download_url}` (datasets), or
    /// plain text. Decode errors never quote the body (it holds a signature).
    async fn download_answer(&self, call: &Call<'_>) -> Result<String, NarrativeError> {
        let response = self.transport().send(call).await?;
        let body = response
            .bytes()
            .await
            .map_err(|e| request_error(&call.endpoint, e))?;
        match serde_json::from_slice::<DownloadUrl>(&body) {
            Ok(DownloadUrl::Bare(url) | DownloadUrl::Object { download_url: url }) => Ok(url),
            Err(_) => {
                let text = std::str::from_utf8(&body).unwrap_or_default().trim();
                if text.starts_with("https://") || text.starts_with("http://") {
                    Ok(text.to_owned())
                } else {
                    Err(NarrativeError::Decode {
                        endpoint: call.endpoint.clone(),
                        source: <serde_json::Error as serde::de::Error>::custom(
                            "expected a json string, an object with download_url, or a url",
                        ),
                    })
                }
            }
        }
    }

    /// Starts downloading a file; the body checks its length against `Content-Length`. A
    /// presigned link refused with 403/410 is asked for once more before giving up.
    pub async fn open_file(
        &self,
        file: &FileRef,
    ) -> Result<
        (
            Option<u64>,
            impl Stream<Item = Result<Bytes, NarrativeError>> + Send + 'static,
        ),
        NarrativeError,
    > {
        let endpoint = format!("GET download of {}", file.file());
        let mut attempt = 0;
        let response = loop {
            attempt += 1;
            let url = self.download_url(file).await?;
            let call = Call::new(Method::GET, url, Credential::None)
                .endpoint(endpoint.clone())
                .streaming();
            match self.transport().send(&call).await {
                Ok(response) => break response,
                Err(NarrativeError::Status {
                    status: 403 | 410,
                    description,
                    ..
                }) => {
                    if attempt >= 2 {
                        return Err(NarrativeError::DownloadExpired {
                            file: file.file().to_string(),
                            description,
                        });
                    }
                    tracing::warn!(file = %file.file(), "download link refused, asking for a new one");
                }
                Err(e) => return Err(e),
            }
        };
        let length = response.content_length();
        let body = response
            .bytes_stream()
            .map(move |chunk| chunk.map_err(|e| request_error(&endpoint, e)));
        Ok((length, check_length(body, file.file().to_string(), length)))
    }

    /// Streams a file to `dest` (created or truncated), checking its length; a partial file is
    /// removed on failure. Returns the bytes written.
    pub async fn download_file(&self, file: &FileRef, dest: &Path) -> Result<u64, NarrativeError> {
        let result = self.download_file_inner(file, dest).await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(dest).await;
        }
        result
    }

    /// Downloads with a fresh link again when the body broke off (reset, truncation, stall):
    /// the request itself is already retried by the transport, so only body failures are
    /// repeated here, under the same policy's attempts and backoff. The policy's budget is not
    /// applied: a large file's download time is not a wait, and each try is bounded by the
    /// read timeout.
    async fn download_file_inner(
        &self,
        file: &FileRef,
        dest: &Path,
    ) -> Result<u64, NarrativeError> {
        let policy = RetryPolicy {
            budget: Duration::MAX,
            ..self.transport().config.retry.clone()
        };
        let what = format!("download of {}", file.file());
        policy
            .run(
                &what,
                |failure: &BodyFailure| match failure {
                    BodyFailure::Body(error) if error.is_transient() => Retry::Backoff,
                    _ => Retry::Never,
                },
                |_| self.download_file_once(file, dest),
            )
            .await
            .map_err(|gave_up| match gave_up.error {
                BodyFailure::Body(error) | BodyFailure::Other(error) => error,
            })
    }

    async fn download_file_once(&self, file: &FileRef, dest: &Path) -> Result<u64, BodyFailure> {
        let io = |source| {
            BodyFailure::Other(NarrativeError::Io {
                path: dest.display().to_string(),
                source,
            })
        };
        let (_, body) = self.open_file(file).await.map_err(BodyFailure::Other)?;
        let mut body = std::pin::pin!(body);
        let mut out = tokio::fs::File::create(dest).await.map_err(io)?;
        let mut written: u64 = 0;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(BodyFailure::Body)?;
            out.write_all(&chunk).await.map_err(io)?;
            written += chunk.len() as u64;
        }
        out.flush().await.map_err(io)?;
        out.sync_all().await.map_err(io)?;
        tracing::debug!(file = %file.file(), bytes = written, "file downloaded");
        Ok(written)
    }

    /// Sends one `audience.delivery.completed|failed` status event.
    pub async fn send_report(&self, report: &DeliveryReport) -> Result<(), NarrativeError> {
        let url = self.transport().url(STATUS_EVENTS_PATH, &[])?;
        let body = status_body(report);
        // the idempotency key makes a repeat harmless
        let call = self.app_call(Method::POST, url).json(body).idempotent(true);
        let response = self.transport().send(&call).await?;
        let body = response
            .bytes()
            .await
            .map_err(|e| request_error(&call.endpoint, e))?;
        // an empty body (e.g. 202/204) is an acceptance too
        let answer: StatusAnswer = if body.iter().all(u8::is_ascii_whitespace) {
            StatusAnswer::default()
        } else {
            serde_json::from_slice(&body).map_err(|source| NarrativeError::Decode {
                endpoint: call.endpoint.clone(),
                source,
            })?
        };
        if let Some(rejected) = answer.rejected.first() {
            let (error, description) = crate::http::error_fields(rejected.to_string().as_bytes());
            return Err(NarrativeError::Status {
                endpoint: call.endpoint.clone(),
                status: 200,
                error: error.or_else(|| Some("status event rejected".to_owned())),
                description,
                retry_after: None,
            });
        }
        Ok(())
    }
}

/// Why one download attempt failed: while reading the body (worth a new attempt when
/// transient) or before/around it (already retried, or final).
#[derive(Debug, thiserror::Error)]
enum BodyFailure {
    #[error(transparent)]
    Body(NarrativeError),
    #[error(transparent)]
    Other(NarrativeError),
}

/// The camelCase body of `POST /apps/events`.
pub(crate) fn status_body(report: &DeliveryReport) -> Value {
    let mut context = serde_json::Map::new();
    if let Some(company) = report.company_id {
        context.insert("companyId".into(), json!(company.0));
    }
    if let Some(connection) = report.connection_id {
        context.insert("connectionId".into(), json!(connection.to_string()));
    }
    if let Some(dataset) = report.dataset_id {
        context.insert("datasetId".into(), json!(dataset.0));
    }
    context.insert("profileId".into(), json!(report.profile_id.to_string()));
    let (event_type, payload) = match &report.outcome {
        Ok(members) => (DELIVERY_COMPLETED, json!({"membersSent": members})),
        Err(reason) => (DELIVERY_FAILED, json!({"reason": reason})),
    };
    let timestamp = report
        .at
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    json!({"events": [{
        "context": context,
        "eventTimestamp": timestamp,
        "eventType": {"value": event_type},
        "idempotencyKey": {"value": report.idempotency_key},
        "payload": {"value": payload},
    }]})
}

/// Passes chunks through and fails at the end (or as soon as it is exceeded) when the total
/// differs from `expected`.
pub(crate) fn check_length<S>(
    inner: S,
    file: String,
    expected: Option<u64>,
) -> impl Stream<Item = Result<Bytes, NarrativeError>> + Send + 'static
where
    S: Stream<Item = Result<Bytes, NarrativeError>> + Send + 'static,
{
    struct State<S> {
        inner: std::pin::Pin<Box<S>>,
        seen: u64,
        done: bool,
        file: String,
        expected: Option<u64>,
    }
    let state = State {
        inner: Box::pin(inner),
        seen: 0,
        done: false,
        file,
        expected,
    };
    futures::stream::unfold(state, |mut st| async move {
        if st.done {
            return None;
        }
        let mismatch = |st: &State<S>| NarrativeError::LengthMismatch {
            file: st.file.clone(),
            expected: st.expected.unwrap_or_default(),
            actual: st.seen,
        };
        match st.inner.next().await {
            Some(Ok(chunk)) => {
                st.seen += chunk.len() as u64;
                if st.expected.is_some_and(|e| st.seen > e) {
                    st.done = true;
                    let error = mismatch(&st);
                    return Some((Err(error), st));
                }
                Some((Ok(chunk), st))
            }
            Some(Err(error)) => {
                st.done = true;
                Some((Err(error), st))
            }
            None => {
                st.done = true;
                if st.expected.is_some_and(|e| st.seen != e) {
                    let error = mismatch(&st);
                    return Some((Err(error), st));
                }
                None
            }
        }
    })
}

#[async_trait]
impl EventSource for NarrativeClient {
    async fn events_after(
        &self,
        after: Option<Revision>,
        max: u32,
    ) -> facebook_connector_core::Result<EventPage> {
        Ok(self.fetch_events(after, max).await?)
    }
}

#[async_trait]
impl ConnectionDirectory for NarrativeClient {
    async fn connection(
        &self,
        id: ConnectionId,
    ) -> facebook_connector_core::Result<Option<Connection>> {
        Ok(self.fetch_connection(id).await?)
    }
}

#[async_trait]
impl DeliveryFiles for NarrativeClient {
    async fn legacy_files(
        &self,
        revision: Revision,
    ) -> facebook_connector_core::Result<Vec<FileName>> {
        Ok(self
            .legacy_delivery_files(revision)
            .await?
            .into_iter()
            .map(|f| f.file)
            .collect())
    }

    async fn snapshot_files(
        &self,
        dataset_id: DatasetId,
        snapshot_id: &SnapshotId,
    ) -> facebook_connector_core::Result<Vec<FileName>> {
        Ok(self.snapshot_added_files(dataset_id, snapshot_id).await?)
    }

    async fn files_before(
        &self,
        dataset_id: DatasetId,
        until: OffsetDateTime,
    ) -> facebook_connector_core::Result<Vec<(SnapshotId, FileName)>> {
        Ok(self.dataset_files_before(dataset_id, until).await?)
    }

    async fn open(&self, file: &FileRef) -> facebook_connector_core::Result<Download> {
        let (content_length, body) = self.open_file(file).await?;
        let body: ByteStream = Box::pin(body.map(|chunk| chunk.map_err(Into::into)));
        Ok(Download {
            content_length,
            body,
        })
    }

    async fn download_to(
        &self,
        file: &FileRef,
        dest: &Path,
    ) -> facebook_connector_core::Result<u64> {
        Ok(self.download_file(file, dest).await?)
    }
}

#[async_trait]
impl StatusReporter for NarrativeClient {
    async fn report(&self, report: &DeliveryReport) -> facebook_connector_core::Result<()> {
        Ok(self.send_report(report).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn length_check_catches_short_and_long_bodies() {
        let chunks = |parts: &[&'static [u8]]| {
            futures::stream::iter(
                parts
                    .iter()
                    .map(|p| Ok::<_, NarrativeError>(Bytes::from_static(p)))
                    .collect::<Vec<_>>(),
            )
        };
        let ok: Vec<_> = check_length(chunks(&[b"ab", b"c"]), "f".into(), Some(3))
            .collect()
            .await;
        assert!(ok.iter().all(Result::is_ok));
        let short: Vec<_> = check_length(chunks(&[b"ab"]), "f".into(), Some(3))
            .collect()
            .await;
        assert!(matches!(
            short.last(),
            Some(Err(NarrativeError::LengthMismatch {
                expected: 3,
                actual: 2,
                ..
            }))
        ));
        let long: Vec<_> = check_length(chunks(&[b"ab", b"cd"]), "f".into(), Some(3))
            .collect()
            .await;
        assert!(matches!(
            long.last(),
            Some(Err(NarrativeError::LengthMismatch { .. }))
        ));
        let unknown: Vec<_> = check_length(chunks(&[b"ab"]), "f".into(), None)
            .collect()
            .await;
        assert_eq!(unknown.len(), 1);
    }

    #[test]
    fn status_bodies_are_camel_case() {
        let report = DeliveryReport {
            idempotency_key: "k1".into(),
            company_id: Some(CompanyId(5)),
            profile_id: "0b6d9a50-1f5c-4a4e-9d7e-3b1a8c1e2f00".parse().unwrap(),
            connection_id: None,
            dataset_id: Some(DatasetId(9)),
            at: time::macros::datetime!(2024-05-01 10:00 UTC),
            outcome: Err("audience flagged".into()),
        };
        let body = status_body(&report);
        let event = &body["events"][0];
        assert_eq!(event["eventType"]["value"], "audience.delivery.failed");
        assert_eq!(event["context"]["companyId"], 5);
        assert_eq!(event["context"]["datasetId"], 9);
        assert!(event["context"].get("connectionId").is_none());
        assert_eq!(event["idempotencyKey"]["value"], "k1");
        assert_eq!(event["eventTimestamp"], "2024-05-01T10:00:00Z");
        assert_eq!(event["payload"]["value"]["reason"], "audience flagged");
    }
}
