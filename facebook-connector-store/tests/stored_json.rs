//! Golden tests of the JSON the store keeps. File references, checkpoints, counters and events
//! are stored in the serde shape of the core's types, so a change to one of those types would
//! silently change what is written, and what old rows must still decode to: a data migration.
//! Each test compares what the store wrote with a literal, and decodes literals as earlier
//! releases wrote them. When one of these fails, the stored format changed: keep reading the
//! old shape (serde defaults, aliases) or add a migration, then update the literal.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use std::time::Duration;

use common::{TestDb, at, event_json, job_json, json, profile_id, set_job_json};
use facebook_connector_core::domain::{
    AudienceId, Checkpoint, Claim, ClaimedJob, ConnectionId, DatasetId, DeliveryCounters,
    DeliveryEvent, FileName, FileRef, JobId, NewCommand, NewJob, QuickSettings, Received, Revision,
    SettingsId, SnapshotId, SubscriptionId, TransactionBatchId, WorkerId,
};

contract!(
    file_refs_keep_their_shape,
    counters_keep_their_shape,
    checkpoints_keep_their_shape,
    token_meta_keeps_its_shape,
    events_keep_their_shape,
);

const PROFILE: &str = "0b6d9a50-0000-4a4e-9d7e-000000000001";
const SUBSCRIPTION: &str = "1e2d0000-0000-4788-9aab-000000000001";
const BATCH: &str = "7a7a0000-0000-4788-9aab-000000000009";
const CONNECTION: &str = "2e2d3c4b-5a69-4788-9aab-bccddeeff002";

fn subscription() -> SubscriptionId {
    SUBSCRIPTION.parse().unwrap()
}

fn legacy_file() -> FileRef {
    FileRef::Legacy {
        revision: Revision(42),
        file: FileName::new("part-0001.jsonl").unwrap(),
    }
}

fn snapshot_file() -> FileRef {
    FileRef::Snapshot {
        dataset_id: DatasetId(17),
        snapshot_id: SnapshotId::new("snap-2025-03-01").unwrap(),
        file: FileName::new("data/part-00000.snappy.parquet").unwrap(),
    }
}

/// Records `event` at `revision` with one job per file; returns the job ids.
async fn record(
    db: &TestDb,
    revision: u64,
    event: DeliveryEvent,
    files: Vec<FileRef>,
) -> Vec<JobId> {
    let jobs: Vec<NewJob> = files
        .into_iter()
        .map(|file| NewJob {
            id: JobId::new_v7(),
            file,
            max_attempts: 3,
        })
        .collect();
    let ids = jobs.iter().map(|j| j.id).collect();
    let command = NewCommand {
        revision: Revision(revision),
        event,
        settings_id: SettingsId::Subscription {
            profile_id: profile_id(1),
            subscription_id: subscription(),
        },
        jobs,
    };
    db.store
        .commands()
        .record_event(Revision(revision), Some(command), at(0))
        .await
        .unwrap();
    ids
}

/// Records a delivery of one legacy file; returns its job id.
async fn one_file(db: &TestDb) -> JobId {
    let ids = record(
        db,
        1,
        delivery(QuickSettings::default()),
        vec![legacy_file()],
    )
    .await;
    ids[0]
}

/// Claims the only queued job.
async fn claim(db: &TestDb) -> ClaimedJob {
    let claim = db
        .store
        .jobs()
        .claim(&WorkerId("w".into()), Duration::from_secs(30), at(1))
        .await
        .unwrap();
    match claim {
        Claim::Job(claimed) => *claimed,
        Claim::Idle { .. } => panic!("nothing to claim"),
    }
}

fn delivery(quick_settings: QuickSettings) -> DeliveryEvent {
    DeliveryEvent::SubscriptionDelivery {
        profile_id: profile_id(1),
        subscription_id: subscription(),
        transaction_batch_id: BATCH.parse::<TransactionBatchId>().unwrap(),
        quick_settings,
    }
}

async fn file_refs_keep_their_shape(db: &TestDb) {
    let ids = record(
        db,
        1,
        delivery(QuickSettings::default()),
        vec![legacy_file(), snapshot_file()],
    )
    .await;
    assert_eq!(
        job_json(db, "file", ids[0]).await,
        json(r#"{"kind": "legacy", "revision": 42, "file": "part-0001.jsonl"}"#)
    );
    assert_eq!(
        job_json(db, "file", ids[1]).await,
        json(
            r#"{"kind": "snapshot", "dataset_id": 17, "snapshot_id": "snap-2025-03-01",
                "file": "data/part-00000.snappy.parquet"}"#
        )
    );

    // and the literals decode to the values
    let jobs = db.store.jobs();
    set_job_json(
        db,
        "file",
        ids[0],
        r#"{"kind": "snapshot", "dataset_id": 17, "snapshot_id": "snap-2025-03-01",
            "file": "data/part-00000.snappy.parquet"}"#,
    )
    .await;
    set_job_json(
        db,
        "file",
        ids[1],
        r#"{"kind": "legacy", "revision": 42, "file": "part-0001.jsonl"}"#,
    )
    .await;
    assert_eq!(
        jobs.get_job(ids[0]).await.unwrap().unwrap().file,
        snapshot_file()
    );
    assert_eq!(
        jobs.get_job(ids[1]).await.unwrap().unwrap().file,
        legacy_file()
    );
}

const COUNTERS: &str = r#"{"records_read": 10, "rejected_lines": 1, "unmatchable": 2,
    "members_sent": 7, "facebook_received": 6, "facebook_invalid": 1}"#;

fn counters() -> DeliveryCounters {
    DeliveryCounters {
        records_read: 10,
        rejected_lines: 1,
        unmatchable: 2,
        members_sent: 7,
        facebook_received: 6,
        facebook_invalid: 1,
    }
}

async fn counters_keep_their_shape(db: &TestDb) {
    let ids = [one_file(db).await];
    assert_eq!(
        job_json(db, "counters", ids[0]).await,
        json(
            r#"{"records_read": 0, "rejected_lines": 0, "unmatchable": 0, "members_sent": 0,
                "facebook_received": 0, "facebook_invalid": 0}"#
        ),
        "a new file's counters"
    );
    let jobs = db.store.jobs();
    let claimed = claim(db).await;
    jobs.complete(&claimed.lease, &counters(), at(2))
        .await
        .unwrap();
    assert_eq!(job_json(db, "counters", ids[0]).await, json(COUNTERS));

    set_job_json(db, "counters", ids[0], COUNTERS).await;
    let command = db
        .store
        .commands()
        .get_command(Revision(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(command.files[0].counters, counters());
}

async fn checkpoints_keep_their_shape(db: &TestDb) {
    let ids = [one_file(db).await];
    assert_eq!(
        job_json(db, "checkpoint", ids[0]).await,
        serde_json::Value::Null
    );
    let jobs = db.store.jobs();
    let claimed = claim(db).await;
    let checkpoint = Checkpoint {
        session_id: 4_611_686_018_427_387_905,
        session_index: 1,
        session_started_at: Some(at(5)),
        batches_acknowledged: 3,
        counters: counters(),
        session_totals: Received {
            received: 4,
            invalid: 1,
        },
        earlier_sessions: Received {
            received: 2,
            invalid: 0,
        },
    };
    jobs.checkpoint(&claimed.lease, &checkpoint, Duration::from_secs(30), at(6))
        .await
        .unwrap();
    let stored = format!(
        r#"{{"session_id": 4611686018427387905, "session_index": 1,
            "session_started_at": "2025-03-01T12:00:05Z", "batches_acknowledged": 3,
            "counters": {COUNTERS}, "session_totals": {{"received": 4, "invalid": 1}},
            "earlier_sessions": {{"received": 2, "invalid": 0}}}}"#
    );
    assert_eq!(job_json(db, "checkpoint", ids[0]).await, json(&stored));
    set_job_json(db, "checkpoint", ids[0], &stored).await;
    assert_eq!(
        jobs.get_job(ids[0]).await.unwrap().unwrap().checkpoint,
        Some(checkpoint)
    );

    // a checkpoint as the first release wrote it (before sessions were numbered and totals
    // kept) still decodes: the fields added later take their defaults
    let first_release = format!(
        r#"{{"session_id": 4611686018427387905, "batches_acknowledged": 3,
            "counters": {COUNTERS}}}"#
    );
    set_job_json(db, "checkpoint", ids[0], &first_release).await;
    assert_eq!(
        jobs.get_job(ids[0]).await.unwrap().unwrap().checkpoint,
        Some(Checkpoint {
            session_id: 4_611_686_018_427_387_905,
            session_index: 0,
            session_started_at: None,
            batches_acknowledged: 3,
            counters: counters(),
            session_totals: Received::default(),
            earlier_sessions: Received::default(),
        })
    );
}

async fn token_meta_keeps_its_shape(db: &TestDb) {
    let profiles = db.store.profiles();
    let p = common::profile(1, 7, at(0));
    profiles.insert_profile(&p).await.unwrap();
    let sql = "SELECT CAST(token_scopes AS TEXT) FROM profiles";
    let scopes: String = if let Some(pg) = db.store.as_postgres() {
        sqlx::query_scalar(sql).fetch_one(pg.pool()).await.unwrap()
    } else {
        let lite = db.store.as_sqlite().unwrap();
        sqlx::query_scalar(sql)
            .fetch_one(lite.pool())
            .await
            .unwrap()
    };
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&scopes).unwrap(),
        json(r#"["ads_management", "business_management"]"#)
    );
}

async fn events_keep_their_shape(db: &TestDb) {
    let chosen = QuickSettings {
        audience_id: Some(AudienceId::parse("23850000000000001").unwrap()),
        audience_name: Some("Buyers".into()),
        historical_data_enabled: true,
    };
    let connection: ConnectionId = CONNECTION.parse().unwrap();
    let events = [
        (
            delivery(chosen),
            format!(
                r#"{{"type": "subscription_delivery", "profile_id": "{PROFILE}",
                    "subscription_id": "{SUBSCRIPTION}", "transaction_batch_id": "{BATCH}",
                    "quick_settings": {{"audience_id": "23850000000000001",
                    "audience_name": "Buyers", "historical_data_enabled": true}}}}"#
            ),
        ),
        (
            delivery(QuickSettings::default()),
            format!(
                r#"{{"type": "subscription_delivery", "profile_id": "{PROFILE}",
                    "subscription_id": "{SUBSCRIPTION}", "transaction_batch_id": "{BATCH}",
                    "quick_settings": {{}}}}"#
            ),
        ),
        (
            DeliveryEvent::SnapshotAppended {
                connection_id: connection,
                snapshot_id: SnapshotId::new("snap-2025-03-01").unwrap(),
            },
            format!(
                r#"{{"type": "snapshot_appended", "connection_id": "{CONNECTION}",
                    "snapshot_id": "snap-2025-03-01"}}"#
            ),
        ),
        (
            DeliveryEvent::ConnectionCreated {
                connection_id: connection,
            },
            format!(r#"{{"type": "connection_created", "connection_id": "{CONNECTION}"}}"#),
        ),
        (
            DeliveryEvent::Unknown {
                payload_type: "audience_refresh".into(),
            },
            r#"{"type": "unknown", "payload_type": "audience_refresh"}"#.to_owned(),
        ),
    ];
    for (i, (event, literal)) in events.into_iter().enumerate() {
        let revision = Revision(i as u64 + 1);
        record(db, revision.0, event.clone(), Vec::new()).await;
        assert_eq!(event_json(db, revision).await, json(&literal), "{event:?}");
        // the literal decodes to the event
        assert_eq!(
            serde_json::from_str::<DeliveryEvent>(&literal).unwrap(),
            event
        );
        let stored = db.store.commands().get_command(revision).await.unwrap();
        assert_eq!(stored.unwrap().event, event);
    }
    // an event written before quick settings were stored (the field defaults)
    let old = format!(
        r#"{{"type": "subscription_delivery", "profile_id": "{PROFILE}",
            "subscription_id": "{SUBSCRIPTION}", "transaction_batch_id": "{BATCH}"}}"#
    );
    assert_eq!(
        serde_json::from_str::<DeliveryEvent>(&old).unwrap(),
        delivery(QuickSettings::default())
    );
}
