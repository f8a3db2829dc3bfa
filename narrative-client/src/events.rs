//! Decoding of both delivery feeds into [`EventEnvelope`]s.
//!
//! A record is `{metadata: {revision, timestamp}, payload_type, payload}` in both feeds. Decisions:
//! - an unknown `payload_type` becomes [`DeliveryEvent::Unknown`] (never an error);
//! - a *known* type whose payload (or timestamp) cannot be decoded also becomes
//!   [`DeliveryEvent::Unknown`], with `payload_type` set to `"<type> (malformed)"` and a warning
//!   log, so one bad event cannot stop the feed and operators can still see what it was;
//! - a record without a readable `metadata.revision` has no position in the feed: it is dropped
//!   with an error log (the page's `next_revision` still moves the cursor past it).

use facebook_connector_core::domain::{
    ConnectionId, DeliveryEvent, EventEnvelope, ProfileId, QuickSettings, Revision, SnapshotId,
    SubscriptionId, TransactionBatchId,
};
use facebook_connector_core::ports::EventPage;
use serde::Deserialize;
use serde_json::Value;
use time::OffsetDateTime;

use crate::config::PayloadTypes;

/// A page of either feed as it arrives.
#[derive(Debug, Deserialize)]
pub(crate) struct RawPage {
    #[serde(default)]
    records: Option<Vec<Value>>,
    #[serde(default, alias = "nextRevision")]
    next_revision: Option<Value>,
}

#[derive(Deserialize)]
struct PerformDelivery {
    #[serde(alias = "profileId")]
    profile_id: ProfileId,
    #[serde(alias = "subscriptionId")]
    subscription_id: SubscriptionId,
    #[serde(alias = "transactionBatchId")]
    transaction_batch_id: TransactionBatchId,
    #[serde(default, alias = "quickSettings")]
    quick_settings: Option<QuickSettings>,
}

#[derive(Deserialize)]
struct SnapshotAppended {
    #[serde(alias = "connectionId")]
    connection_id: ConnectionId,
    #[serde(
        alias = "snapshotId",
        deserialize_with = "connector_resilience::lenient::text"
    )]
    snapshot_id: SnapshotId,
}

#[derive(Deserialize)]
struct ConnectionCreated {
    #[serde(alias = "connectionId")]
    connection_id: ConnectionId,
}

/// Decodes a page, keeping only events after `after`, in revision order.
pub(crate) fn decode_page(
    page: RawPage,
    types: &PayloadTypes,
    after: Option<Revision>,
) -> EventPage {
    let mut events: Vec<EventEnvelope> = page
        .records
        .unwrap_or_default()
        .iter()
        .filter_map(|record| decode_record(record, types))
        .filter(|event| after.is_none_or(|after| event.revision > after))
        .collect();
    events.sort_by_key(|event| event.revision);
    let next_revision = page.next_revision.and_then(|value| {
        if value.is_null() {
            return None;
        }
        Revision::deserialize(&value)
            .inspect_err(|error| {
                tracing::warn!(error = %error, "feed page has an unreadable next_revision, ignored")
            })
            .ok()
    });
    EventPage {
        events,
        next_revision,
    }
}

/// Decodes one record; `None` when it has no readable revision.
pub(crate) fn decode_record(record: &Value, types: &PayloadTypes) -> Option<EventEnvelope> {
    let metadata = record.get("metadata");
    let revision = match metadata
        .and_then(|m| m.get("revision"))
        .map(Revision::deserialize)
    {
        Some(Ok(revision)) => revision,
        Some(Err(error)) => {
            tracing::error!(error = %error, "feed record has an unreadable revision, dropped");
            return None;
        }
        None => {
            tracing::error!("feed record has no revision, dropped");
            return None;
        }
    };
    let payload_type = record
        .get("payload_type")
        .or_else(|| record.get("payloadType"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let payload = record.get("payload").unwrap_or(&Value::Null);
    let timestamp = metadata
        .and_then(|m| m.get("timestamp"))
        .and_then(parse_timestamp);

    let decoded = match timestamp {
        Some(timestamp) => decode_event(&payload_type, payload, types).map(|e| (timestamp, e)),
        None => Err("missing or unreadable metadata.timestamp".to_owned()),
    };
    let (timestamp, event) = match decoded {
        Ok(decoded) => decoded,
        Err(reason) => {
            tracing::warn!(
                revision = %revision,
                payload_type = %payload_type,
                reason = %reason,
                "malformed feed event, passed on as unknown"
            );
            (
                timestamp.unwrap_or_else(OffsetDateTime::now_utc),
                DeliveryEvent::Unknown {
                    payload_type: format!("{payload_type} (malformed)"),
                },
            )
        }
    };
    if let DeliveryEvent::Unknown { payload_type } = &event {
        tracing::debug!(revision = %revision, payload_type = %payload_type, "unknown feed event");
    }
    Some(EventEnvelope {
        revision,
        timestamp,
        event,
    })
}

fn decode_event(
    payload_type: &str,
    payload: &Value,
    types: &PayloadTypes,
) -> Result<DeliveryEvent, String> {
    let reason = |e: serde_json::Error| e.to_string();
    if payload_type == types.perform_delivery {
        let p = PerformDelivery::deserialize(payload).map_err(reason)?;
        Ok(DeliveryEvent::SubscriptionDelivery {
            profile_id: p.profile_id,
            subscription_id: p.subscription_id,
            transaction_batch_id: p.transaction_batch_id,
            quick_settings: p.quick_settings.unwrap_or_default(),
        })
    } else if payload_type == types.snapshot_appended {
        let p = SnapshotAppended::deserialize(payload).map_err(reason)?;
        Ok(DeliveryEvent::SnapshotAppended {
            connection_id: p.connection_id,
            snapshot_id: p.snapshot_id,
        })
    } else if payload_type == types.connection_created {
        let p = ConnectionCreated::deserialize(payload).map_err(reason)?;
        Ok(DeliveryEvent::ConnectionCreated {
            connection_id: p.connection_id,
        })
    } else {
        Ok(DeliveryEvent::Unknown {
            payload_type: payload_type.to_owned(),
        })
    }
}

/// RFC 3339 text, or epoch milliseconds (seconds when the number is small).
pub(crate) fn parse_timestamp(value: &Value) -> Option<OffsetDateTime> {
    match value {
        Value::String(s) => {
            OffsetDateTime::parse(s.trim(), &time::format_description::well_known::Rfc3339).ok()
        }
        Value::Number(n) => {
            let n = n.as_i64()?;
            if n.abs() >= 100_000_000_000 {
                OffsetDateTime::from_unix_timestamp_nanos(i128::from(n) * 1_000_000).ok()
            } else {
                OffsetDateTime::from_unix_timestamp(n).ok()
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const PROFILE: &str = "0b6d9a50-1f5c-4a4e-9d7e-3b1a8c1e2f00";
    const SUB: &str = "1e2d3c4b-5a69-4788-9aab-bccddeeff001";
    const BATCH: &str = "3e2d3c4b-5a69-4788-9aab-bccddeeff003";
    const CONN: &str = "2e2d3c4b-5a69-4788-9aab-bccddeeff002";

    fn record(revision: Value, payload_type: &str, payload: Value) -> Value {
        json!({"metadata": {"revision": revision, "timestamp": "2024-05-01T10:00:00Z"},
               "payload_type": payload_type, "payload": payload})
    }

    #[test]
    fn camel_case_legacy_payloads_decode_with_string_booleans() {
        let r = record(
            json!(7),
            "PerformDelivery",
            json!({"subscriptionId": SUB, "transactionBatchId": BATCH, "profileId": PROFILE,
                   "quickSettings": {"audienceId": "123", "historicalDataEnabled": "true"}}),
        );
        let e = decode_record(&r, &PayloadTypes::default()).unwrap();
        assert_eq!(e.revision, Revision(7));
        match e.event {
            DeliveryEvent::SubscriptionDelivery {
                profile_id,
                quick_settings,
                ..
            } => {
                assert_eq!(profile_id.to_string(), PROFILE);
                assert!(quick_settings.historical_data_enabled);
                assert_eq!(quick_settings.audience_id.unwrap().as_str(), "123");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn null_quick_settings_are_defaults() {
        let r = record(
            json!("8"),
            "PerformDelivery",
            json!({"subscription_id": SUB, "transaction_batch_id": BATCH, "profile_id": PROFILE,
                   "quick_settings": null}),
        );
        let e = decode_record(&r, &PayloadTypes::default()).unwrap();
        assert!(
            matches!(e.event, DeliveryEvent::SubscriptionDelivery { quick_settings, .. } if quick_settings == QuickSettings::default())
        );
    }

    #[test]
    fn unknown_and_malformed_events_become_unknown() {
        let types = PayloadTypes::default();
        let e = decode_record(&record(json!(1), "something-else", json!({})), &types).unwrap();
        assert_eq!(
            e.event,
            DeliveryEvent::Unknown {
                payload_type: "something-else".into()
            }
        );
        let e = decode_record(
            &record(
                json!(2),
                "snapshot-appended",
                json!({"connection_id": "nope"}),
            ),
            &types,
        )
        .unwrap();
        assert_eq!(
            e.event,
            DeliveryEvent::Unknown {
                payload_type: "snapshot-appended (malformed)".into()
            }
        );
        let mut no_time = record(
            json!(3),
            "connection-created",
            json!({"connection_id": CONN}),
        );
        no_time["metadata"]["timestamp"] = json!("yesterday");
        let e = decode_record(&no_time, &types).unwrap();
        assert!(matches!(e.event, DeliveryEvent::Unknown { .. }));
        assert!(decode_record(&json!({"payload_type": "x"}), &types).is_none());
    }

    #[test]
    fn timestamps_accept_rfc3339_and_epoch_numbers() {
        let a = parse_timestamp(&json!("2024-05-01T10:00:00Z")).unwrap();
        let b = parse_timestamp(&json!(1_714_557_600_000_i64)).unwrap();
        let c = parse_timestamp(&json!(1_714_557_600_i64)).unwrap();
        assert_eq!(a, b);
        assert_eq!(a, c);
    }

    #[test]
    fn snapshot_ids_may_be_numbers() {
        let types = PayloadTypes::default();
        let e = decode_record(
            &record(
                json!(9),
                "snapshot-appended",
                json!({"connection_id": CONN, "snapshot_id": 12345, "extra": {"x": 1}}),
            ),
            &types,
        )
        .unwrap();
        match e.event {
            DeliveryEvent::SnapshotAppended { snapshot_id, .. } => {
                assert_eq!(snapshot_id.as_str(), "12345")
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn pages_drop_events_at_or_before_the_cursor() {
        let types = PayloadTypes::default();
        let page = RawPage {
            records: Some(vec![
                record(
                    json!(5),
                    "connection-created",
                    json!({"connectionId": CONN}),
                ),
                record(
                    json!(4),
                    "connection-created",
                    json!({"connection_id": CONN}),
                ),
            ]),
            next_revision: Some(json!(6)),
        };
        let page = decode_page(page, &types, Some(Revision(4)));
        assert_eq!(page.events.len(), 1);
        assert_eq!(page.events[0].revision, Revision(5));
        assert_eq!(page.next_revision, Some(Revision(6)));
    }
}
