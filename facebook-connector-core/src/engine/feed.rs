//! The feed follower: reads the marketplace's delivery events after the stored cursor and
//! records each one — its command, one job per file and the cursor — with one
//! [`CommandStore::record_event`](crate::ports::CommandStore::record_event) call.
//!
//! Recording never calls Facebook, so one customer's revoked token or a Facebook outage never
//! holds up another customer's events. Marketplace failures are retried with backoff on the
//! same event; an event is never skipped because it could not be recorded. Unknown kinds,
//! vanished or archived connections and connections without historical data are recorded
//! without a command (the cursor advances).

use std::time::Duration;

use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use crate::domain::{
    Connection, ConnectionId, ConnectionStatus, DeliveryEvent, EventEnvelope, FileRef, NewCommand,
    NewJob, SettingsId,
};
use crate::error::{Disposition, Error, Result, display_chain};
use crate::ports::RecordOutcome;

use super::{Inner, backoff, metrics};

/// Longest wait between two tries of a failing marketplace or database call.
const MAX_FEED_BACKOFF: Duration = Duration::from_secs(5 * 60);
/// Tries of an event whose files the marketplace refuses for good before it is skipped.
const PERMANENT_FAILURES_BEFORE_SKIP: u32 = 5;

/// What one pass over the feed did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FeedPass {
    /// Events recorded (with or without a command).
    pub recorded: u64,
    /// Jobs enqueued.
    pub jobs: u64,
    /// Whether the feed had no more events.
    pub caught_up: bool,
}

/// Follows the feed until `shutdown`.
pub(crate) async fn follow(engine: &Inner, shutdown: &CancellationToken) {
    let mut failures = 0u32;
    loop {
        if shutdown.is_cancelled() {
            return;
        }
        let pass = tokio::select! {
            biased;
            () = shutdown.cancelled() => return,
            pass = pass(engine, shutdown) => pass,
        };
        let wait = match pass {
            Ok(pass) => {
                failures = 0;
                if pass.caught_up {
                    engine.config.poll_interval
                } else {
                    Duration::ZERO
                }
            }
            Err(error) => {
                failures += 1;
                let wait = backoff::exponential(
                    failures,
                    Duration::from_secs(1),
                    MAX_FEED_BACKOFF
                        .min(engine.config.poll_interval.max(Duration::from_secs(1)) * 12),
                )
                .max(error.retry_after().unwrap_or_default());
                tracing::warn!(
                    error = %display_chain(&error),
                    failures,
                    retry_in_ms = wait.as_millis() as u64,
                    "cannot read the marketplace's event feed"
                );
                wait
            }
        };
        if !wait.is_zero() {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
        }
    }
}

/// Reads one page of events after the cursor and records each of them, retrying an event
/// until it is recorded. Errors reading the cursor or the page are returned (the caller backs
/// off); errors recording an event are retried here, so no event is ever skipped.
pub(crate) async fn pass(engine: &Inner, shutdown: &CancellationToken) -> Result<FeedPass> {
    let ports = &engine.ports;
    let cursor = ports.commands.cursor().await?;
    if let Some(revision) = cursor {
        metrics::feed_revision(revision.0);
    }
    let page = ports
        .events
        .events_after(cursor, engine.config.feed_page_size)
        .await?;
    let mut pass = FeedPass {
        caught_up: page.events.is_empty(),
        ..FeedPass::default()
    };
    for envelope in page.events {
        if shutdown.is_cancelled() {
            break;
        }
        let jobs = record_with_retries(engine, &envelope, shutdown).await;
        let Some(jobs) = jobs else {
            break;
        };
        pass.recorded += 1;
        pass.jobs += jobs;
        metrics::feed_revision(envelope.revision.0);
        if jobs > 0 {
            engine.wake.notify_waiters();
        }
    }
    Ok(pass)
}

/// Resolves and records one event, retrying until it is recorded (or shutdown: `None`).
/// Returns the number of jobs enqueued.
async fn record_with_retries(
    engine: &Inner,
    envelope: &EventEnvelope,
    shutdown: &CancellationToken,
) -> Option<u64> {
    let mut failures = 0u32;
    let mut permanent = 0u32;
    loop {
        let resolved = match resolve(engine, envelope).await {
            Ok(command) => Ok(command),
            Err(error) if matches!(error.disposition(), Disposition::RetryLater { .. }) => {
                Err(error)
            }
            Err(error) => {
                permanent += 1;
                if permanent >= PERMANENT_FAILURES_BEFORE_SKIP {
                    tracing::error!(
                        revision = %envelope.revision,
                        kind = envelope.event.kind(),
                        error = %display_chain(&error),
                        "the marketplace refuses this event's files for good: it is skipped"
                    );
                    Ok(None)
                } else {
                    Err(error)
                }
            }
        };
        let outcome = match resolved {
            Ok(command) => {
                let jobs = command.as_ref().map_or(0, |c| c.jobs.len() as u64);
                let now = engine.ports.clock.now();
                match engine
                    .ports
                    .commands
                    .record_event(envelope.revision, command.clone(), now)
                    .await
                {
                    Ok(outcome) => {
                        log_recorded(envelope, command.as_ref(), outcome);
                        if outcome == RecordOutcome::Recorded {
                            metrics::event(envelope.event.kind());
                        }
                        return Some(if outcome == RecordOutcome::Recorded {
                            jobs
                        } else {
                            0
                        });
                    }
                    Err(error) => error,
                }
            }
            Err(error) => error,
        };
        failures += 1;
        let wait = backoff::exponential(failures, Duration::from_millis(500), MAX_FEED_BACKOFF)
            .max(outcome.retry_after().unwrap_or_default());
        tracing::warn!(
            revision = %envelope.revision,
            kind = envelope.event.kind(),
            error = %display_chain(&outcome),
            failures,
            retry_in_ms = wait.as_millis() as u64,
            "cannot record the event yet; the feed waits for it"
        );
        tokio::select! {
            () = shutdown.cancelled() => return None,
            () = tokio::time::sleep(wait) => {}
        }
    }
}

fn log_recorded(envelope: &EventEnvelope, command: Option<&NewCommand>, outcome: RecordOutcome) {
    match (command, outcome) {
        (_, RecordOutcome::AlreadyRecorded) => tracing::debug!(
            revision = %envelope.revision,
            kind = envelope.event.kind(),
            "event recorded before"
        ),
        (Some(command), RecordOutcome::Recorded) => tracing::info!(
            revision = %envelope.revision,
            kind = envelope.event.kind(),
            settings_id = %command.settings_id,
            profile_id = %command.settings_id.profile_id(),
            files = command.jobs.len(),
            "event recorded"
        ),
        (None, RecordOutcome::Recorded) => tracing::info!(
            revision = %envelope.revision,
            kind = envelope.event.kind(),
            "event recorded without deliveries"
        ),
    }
}

/// The command an event asks for, with its jobs; `None` when it delivers nothing.
pub(crate) async fn resolve(
    engine: &Inner,
    envelope: &EventEnvelope,
) -> Result<Option<NewCommand>> {
    let ports = &engine.ports;
    let revision = envelope.revision;
    let max_attempts = engine.config.max_attempts;
    let jobs = |files: Vec<FileRef>| -> Vec<NewJob> {
        files
            .into_iter()
            .map(|file| NewJob {
                id: crate::domain::JobId::new_v7(),
                file,
                max_attempts,
            })
            .collect()
    };
    match &envelope.event {
        DeliveryEvent::SubscriptionDelivery {
            profile_id,
            subscription_id,
            ..
        } => {
            let files = ports.files.legacy_files(revision).await?;
            let files = files
                .into_iter()
                .map(|file| FileRef::Legacy { revision, file })
                .collect();
            Ok(Some(NewCommand {
                revision,
                event: envelope.event.clone(),
                settings_id: SettingsId::Subscription {
                    profile_id: *profile_id,
                    subscription_id: *subscription_id,
                },
                jobs: jobs(files),
            }))
        }
        DeliveryEvent::SnapshotAppended {
            connection_id,
            snapshot_id,
        } => {
            let Some(connection) = live_connection(engine, *connection_id, envelope).await? else {
                return Ok(None);
            };
            let files = ports
                .files
                .snapshot_files(connection.dataset_id, snapshot_id)
                .await?;
            let files = files
                .into_iter()
                .map(|file| FileRef::Snapshot {
                    dataset_id: connection.dataset_id,
                    snapshot_id: snapshot_id.clone(),
                    file,
                })
                .collect();
            Ok(Some(NewCommand {
                revision,
                event: envelope.event.clone(),
                settings_id: connection_settings(&connection),
                jobs: jobs(files),
            }))
        }
        DeliveryEvent::ConnectionCreated { connection_id } => {
            let Some(connection) = live_connection(engine, *connection_id, envelope).await? else {
                return Ok(None);
            };
            if !connection.quick_settings.historical_data_enabled {
                return Ok(None);
            }
            let files = backfill(engine, &connection, envelope.timestamp).await?;
            Ok(Some(NewCommand {
                revision,
                event: envelope.event.clone(),
                settings_id: connection_settings(&connection),
                jobs: jobs(files),
            }))
        }
        DeliveryEvent::Unknown { payload_type } => {
            tracing::warn!(
                revision = %revision,
                payload_type = %payload_type,
                "unknown event kind: skipped"
            );
            Ok(None)
        }
    }
}

/// The files of every snapshot taken before the connection was created.
async fn backfill(
    engine: &Inner,
    connection: &Connection,
    until: OffsetDateTime,
) -> Result<Vec<FileRef>> {
    let files = engine
        .ports
        .files
        .files_before(connection.dataset_id, until)
        .await?;
    tracing::info!(
        connection_id = %connection.id,
        dataset_id = %connection.dataset_id,
        files = files.len(),
        "historical data enabled: backfilling the dataset's earlier snapshots"
    );
    Ok(files
        .into_iter()
        .map(|(snapshot_id, file)| FileRef::Snapshot {
            dataset_id: connection.dataset_id,
            snapshot_id,
            file,
        })
        .collect())
}

/// The connection, or `None` (logged) when it is gone or archived.
async fn live_connection(
    engine: &Inner,
    id: ConnectionId,
    envelope: &EventEnvelope,
) -> Result<Option<Connection>> {
    match engine.ports.connections.connection(id).await {
        Ok(Some(connection)) if connection.status == ConnectionStatus::Active => {
            Ok(Some(connection))
        }
        Ok(Some(_)) => {
            tracing::warn!(
                revision = %envelope.revision,
                connection_id = %id,
                kind = envelope.event.kind(),
                "connection archived: event skipped"
            );
            Ok(None)
        }
        Ok(None) | Err(Error::NotFound { .. }) => {
            tracing::warn!(
                revision = %envelope.revision,
                connection_id = %id,
                kind = envelope.event.kind(),
                "connection no longer exists: event skipped"
            );
            Ok(None)
        }
        Err(error) => Err(error),
    }
}

fn connection_settings(connection: &Connection) -> SettingsId {
    SettingsId::Connection {
        profile_id: connection.profile_id,
        connection_id: connection.id,
    }
}
