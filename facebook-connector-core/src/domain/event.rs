//! Marketplace delivery events, decoded from either feed.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::ids::{
    ConnectionId, DatasetId, ProfileId, Revision, SnapshotId, SubscriptionId, TransactionBatchId,
};
use super::settings::QuickSettings;

/// One event of the feed with its position.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventEnvelope {
    /// Position in the feed; the cursor advances past it once its command is recorded.
    pub revision: Revision,
    /// When the marketplace emitted it.
    #[serde(with = "time::serde::rfc3339")]
    pub timestamp: OffsetDateTime,
    /// What happened.
    pub event: DeliveryEvent,
}

/// What the marketplace asks the connector to do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DeliveryEvent {
    /// Legacy: a subscription's transaction batch is ready for delivery (JSON lines files).
    SubscriptionDelivery {
        /// The profile to deliver to.
        profile_id: ProfileId,
        /// The subscription delivered.
        subscription_id: SubscriptionId,
        /// The transaction batch delivered.
        transaction_batch_id: TransactionBatchId,
        /// Options chosen at checkout.
        #[serde(default)]
        quick_settings: QuickSettings,
    },
    /// New Parquet files were appended to a connected dataset.
    SnapshotAppended {
        /// The connection (dataset → profile).
        connection_id: ConnectionId,
        /// The snapshot holding the new files.
        snapshot_id: SnapshotId,
    },
    /// A dataset was connected to a profile; with `historical_data_enabled` its existing files
    /// are delivered too.
    ConnectionCreated {
        /// The new connection.
        connection_id: ConnectionId,
    },
    /// A kind this connector does not know: logged and skipped, the cursor still advances.
    Unknown {
        /// The feed's `payload_type`.
        payload_type: String,
    },
}

impl DeliveryEvent {
    /// A short name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            DeliveryEvent::SubscriptionDelivery { .. } => "subscription_delivery",
            DeliveryEvent::SnapshotAppended { .. } => "snapshot_appended",
            DeliveryEvent::ConnectionCreated { .. } => "connection_created",
            DeliveryEvent::Unknown { .. } => "unknown",
        }
    }
}

/// Whether a connection still delivers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionStatus {
    /// Delivering.
    Active,
    /// Closed by the customer.
    Archived,
}

/// A dataset connected to a profile.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connection {
    /// Connection id.
    pub id: ConnectionId,
    /// The dataset whose snapshots are delivered.
    pub dataset_id: DatasetId,
    /// The profile they are delivered to.
    pub profile_id: ProfileId,
    /// Options chosen when connecting.
    #[serde(default)]
    pub quick_settings: QuickSettings,
    /// Active or archived.
    pub status: ConnectionStatus,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_through_their_stored_form() {
        let event = DeliveryEvent::SnapshotAppended {
            connection_id: "2e2d3c4b-5a69-4788-9aab-bccddeeff002".parse().unwrap(),
            snapshot_id: SnapshotId::new("snap-1").unwrap(),
        };
        let json = serde_json::to_string(&event).unwrap();
        assert!(json.contains(r#""type":"snapshot_appended""#), "{json}");
        assert_eq!(serde_json::from_str::<DeliveryEvent>(&json).unwrap(), event);
        assert_eq!(event.kind(), "snapshot_appended");
    }
}
